-- The ddb-optimistic command (bin/ddb-optimistic, lua/ddb/cli.lua) against both local
-- servers: what it prints, what it stores, and the exit code that tells a shell script
-- what happened.
local ddb = require "ddb"
local helper = require "helper"

local q = helper.shell_quote

-- The checkout's root as an absolute path (helper.root may be relative).
local ROOT = helper.root
if ROOT:sub(1, 1) ~= "/" then
  local p = assert(io.popen("cd " .. q(ROOT) .. " && pwd"))
  ROOT = p:read("*l") .. "/"
  p:close()
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  os.remove(path)
  return s
end

-- Runs the command; returns exit code, stdout, stderr. opts.endpoint, opts.stdin.
local function cli(args, opts)
  opts = opts or {}
  local out, err, rc = os.tmpname(), os.tmpname(), os.tmpname()
  local parts = {}
  for i, a in ipairs(args) do parts[i] = q(a) end
  local cmd = "env AWS_ACCESS_KEY_ID=" .. q(helper.access_key()) ..
    " AWS_SECRET_ACCESS_KEY=" .. q(helper.secret_key()) ..
    " AWS_REGION=" .. q(opts.region or helper.region()) .. " AWS_DEFAULT_REGION=" ..
    " AWS_PROFILE= AWS_CONFIG_FILE=/dev/null" ..
    " AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_ENDPOINT_URL_DYNAMODB= AWS_ENDPOINT_URL= " ..
    helper.lua_command("bin/ddb-optimistic") .. " " .. table.concat(parts, " ")
  if opts.stdin then
    local inp = os.tmpname()
    local f = assert(io.open(inp, "wb"))
    f:write(opts.stdin)
    f:close()
    cmd = cmd .. " < " .. q(inp)
  end
  os.execute(("sh -c %s"):format(q(cmd .. " > " .. q(out) .. " 2> " .. q(err) ..
    "; echo $? > " .. q(rc))))
  return tonumber(slurp(rc)), slurp(out), slurp(err)
end

-- Runs a shell command; returns exit code, stdout and stderr together.
local function sh(cmd)
  local p = assert(io.popen("sh -c " .. q(cmd) .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("*a")
  p:close()
  return tonumber(out:match("exit=(%d+)%s*$")), (out:gsub("exit=%d+%s*$", ""))
end

describe("ddb-optimistic, on the command line", function()
  it("prints its usage with --help and exits 0: the commands, and where their options are",
    function()
      local code, out = cli{ "--help" }
      assert.equal(0, code)
      assert.matches("^Usage: ddb%-optimistic", out)
      assert.matches("\n   update +run the Lua code", out)
      assert.matches("ddb%-optimistic COMMAND%s+%-%-help` lists the command's options", out)
      assert.matches("Exit codes", out)
      assert.equal(out, (select(2, cli{ "help" })))
    end)

  it("prints a command's usage and options with COMMAND --help, -h or help COMMAND", function()
    local code, out = cli{ "update", "--help" }
    assert.equal(0, code)
    assert.matches("^Usage: ddb%-optimistic update", out)
    assert.matches("\n   %-%-lua CODE +the update code", out)
    -- an option the command does not take is not listed
    assert.is_nil(out:find("--if-version", 1, true), out)
    assert.equal(out, (select(2, cli{ "update", "--table", "Tab", "-h" })))
    assert.equal(out, (select(2, cli{ "help", "update" })))
  end)

  it("prints every option's help whole, within 92 columns", function()
    local flat = {}
    for _, command in ipairs{ "get", "put", "update", "delete" } do
      local code, out = cli{ command, "--help" }
      assert.equal(0, code)
      for line in out:gmatch("[^\n]+") do
        assert.is_true(#line <= 92, line)
      end
      flat[command] = out:gsub("%s+", " ")
    end
    for _, case in ipairs{
      { "get", "--endpoint URL default: AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, then " ..
        "AWS's endpoint for the region" },
      { "put", "--region REGION default: AWS_REGION, AWS_DEFAULT_REGION, the profile's region" },
      { "delete", "Usage: ddb-optimistic delete --table NAME --key JSON [--if-version N]" },
      { "update", "([--lua CODE] | [--file PATH])" },
      { "update", "--deadline-ms N bound on the whole command, retries and update code " ..
        "included (default: 5000)" },
    } do
      assert.truthy(flat[case[1]]:find(case[2], 1, true), case[2])
    end
  end)

  it("runs as a program from the checkout, whatever LUA_PATH and the default lua say",
    function()
      -- `#!/usr/bin/env lua` was Debian's Lua 5.3, and LUA_PATH pointed elsewhere
      local code, out = sh("cd / && env LUA_PATH='/nowhere/?.lua' LUA_CPATH='/nowhere/?.so' " ..
        q(ROOT .. "bin/ddb-optimistic") .. " --version")
      assert.equal(0, code, out)
      assert.equal("ddb-optimistic " .. ddb._VERSION .. "\n", out)
      -- through a symbolic link elsewhere on PATH, as an install by hand makes it
      local dir = helper.tmpdir()
      assert(os.execute("ln -s " .. q(ROOT .. "bin/ddb-optimistic") .. " " ..
        q(dir .. "/ddb-optimistic")))
      code, out = sh("cd / && env PATH=" .. q(dir .. ":" .. os.getenv("PATH")) ..
        " ddb-optimistic --version")
      os.execute("rm -rf " .. q(dir))
      assert.equal(0, code, out)
      assert.equal("ddb-optimistic " .. ddb._VERSION .. "\n", out)
    end)

  it("says that make is needed in a checkout where nothing is built", function()
    local dir = helper.tmpdir()
    assert(os.execute("mkdir -p " .. q(dir .. "/bin") .. " && cp -r " ..
      q(ROOT .. "lua") .. " " .. q(dir) .. " && cp " ..
      q(ROOT .. "bin/ddb-optimistic") .. " " .. q(dir .. "/bin/")))
    local code, out = sh(q(dir .. "/bin/ddb-optimistic") .. " --version")
    assert.equal(1, code, out)
    assert.matches("the C module is not built in .*/build/: run make there", out)
    -- started with an interpreter of its own choosing, it names the build that is missing
    code, out = sh(q(helper.lua_bin()) .. " " .. q(dir .. "/bin/ddb-optimistic") .. " --version")
    os.execute("rm -rf " .. q(dir))
    assert.equal(1, code, out)
    assert.matches("no C module for this Lua .* run make LUA_VERSION=", out)
  end)

  it("prints its version with --version", function()
    local code, out = cli{ "--version" }
    assert.equal(0, code)
    assert.equal("ddb-optimistic " .. ddb._VERSION .. "\n", out)
  end)

  local usage_errors = {
    { "no arguments", {}, "^Usage:" },
    { "no command", { "--table", "Tab" },
      "no command given %(get, put, update, delete%) %(ddb%-optimistic %-%-help%)" },
    { "an unknown command", { "frob", "--table", "Tab" },
      "unknown command 'frob' %(ddb%-optimistic %-%-help%)" },
    { "a misspelt command", { "gte", "--table", "Tab" },
      "unknown command 'gte' %(did you mean 'get'%?%)" },
    { "an unknown option", { "get", "--table", "Tab", "--key", "{}", "--frob" },
      "unknown option '%-%-frob' %(ddb%-optimistic get %-%-help%)" },
    { "a misspelt option", { "get", "--table", "Tab", "--key", "{}", "--dedline-ms", "9" },
      "unknown option '%-%-dedline%-ms' %(did you mean '%-%-deadline%-ms'%?%)" },
    { "a single-dash option", { "get", "-t", "Tab" }, "unknown option '%-t'" },
    { "no --table", { "get", "--key", "{}" }, "missing option '%-%-table'" },
    { "get without --key", { "get", "--table", "Tab" }, "missing option '%-%-key'" },
    { "update without code", { "update", "--table", "Tab", "--key", "{}" },
      "update needs %-%-lua or %-%-file" },
    { "update with both codes", { "update", "--table", "Tab", "--key", "{}", "--lua", "x",
      "--file", "x.lua" }, "option '%-%-file' can not be used together with option '%-%-lua'" },
    { "an option a command does not take", { "get", "--table", "Tab", "--key", "{}",
      "--lua", "x" }, "get does not take %-%-lua" },
    { "--if-version on another command", { "put", "--table", "Tab", "--item", "{}",
      "--if-version", "1" }, "put does not take %-%-if%-version" },
    { "an argument after the options", { "get", "--table", "Tab", "--key", "{}", "extra" },
      "unexpected argument 'extra'" },
    { "a value missing", { "get", "--table" }, "option '%-%-table' requires an argument" },
    { "an option given twice", { "get", "--table", "Tab", "--table", "Tab" },
      "%-%-table given more than once" },
    { "an optional option given twice", { "get", "--table", "Tab", "--key", "{}",
      "--region", "us-east-1", "--region", "us-east-1" }, "%-%-region given more than once" },
    { "a value given to a flag", { "get", "--verbose=yes" },
      "option '%-%-verbose' does not take arguments" },
    { "a deadline beyond every float", { "get", "--table", "Tab", "--key", "{}",
      "--deadline-ms", "1e999" },
      "%-%-deadline%-ms: '1e999' is not a whole number from 1 to 86400000" },
    { "a deadline of 0", { "get", "--table", "Tab", "--key", "{}", "--deadline-ms", "0" },
      "%-%-deadline%-ms: '0' is not a whole number from 1 to 86400000" },
    { "a deadline past a day", { "get", "--table", "Tab", "--key", "{}", "--deadline-ms",
      "86400001" }, "%-%-deadline%-ms: '86400001' is not a whole number" },
    { "no attempts", { "update", "--table", "Tab", "--key", "{}", "--lua", "x=1",
      "--max-attempts", "0" }, "%-%-max%-attempts: '0' is not a whole number from 1 to 100" },
    { "a fraction of an attempt", { "update", "--table", "Tab", "--key", "{}", "--lua",
      "x=1", "--max-attempts=1.5" }, "%-%-max%-attempts: '1.5' is not a whole number" },
    { "a negative version", { "delete", "--table", "Tab", "--key", "{}", "--if-version",
      "-1" }, "%-%-if%-version: '%-1' is not a whole number from 0" },
    { "a version that is not a number", { "delete", "--table", "Tab", "--key", "{}",
      "--if-version=v1" }, "%-%-if%-version: 'v1' is not a whole number from 0" },
    { "a table name DynamoDB refuses", { "get", "--table", "my table", "--key", "{}" },
      "%-%-table: 'my table' is not a table name" },
    { "an endpoint that is not a URL", { "get", "--table", "Tab", "--key", "{}",
      "--endpoint", "localhost:8000" }, "%-%-endpoint: 'localhost:8000' is not an http://" },
    { "a region with a space", { "get", "--table", "Tab", "--key", "{}", "--region",
      "us east 1" }, "%-%-region: 'us east 1' is not a region name" },
    { "an empty version attribute", { "get", "--table", "Tab", "--key", "{}",
      "--version-attribute=" }, "%-%-version%-attribute: '' is not an attribute name" },
    { "an empty --lua", { "update", "--table", "Tab", "--key", "{}", "--lua", "" },
      "%-%-lua: '' is empty" },
  }
  for _, case in ipairs(usage_errors) do
    it("exits 1 with a message on stderr for " .. case[1], function()
      local code, out, err = cli(case[2])
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches(case[3], err)
      assert.is_nil(err:find("traceback", 1, true), err)
      if #case[2] > 0 then
        assert.matches("^ddb%-optimistic: [^\n]*\n$", err)
      end
    end)
  end

  it("exits 1 with one prefix when no region is configured, sending nothing", function()
    local code, out, err = cli({ "get", "--table", "Tab", "--key", '{"pk":"a"}' },
      { region = "" })
    assert.equal(1, code)
    assert.equal("", out)
    assert.equal("ddb-optimistic: ConfigError: no region: set the 'region' option, " ..
      "AWS_REGION or AWS_DEFAULT_REGION\n", err)
  end)

  it("exits 2 at once, naming the endpoint, when it is not DynamoDB", function()
    local web = helper.python_server("web_server.py", "--default 501")
    local code, out, err = cli{ "get", "--table", "Tab", "--key", '{"pk":"a"}', "--endpoint",
      web.url }
    web.stop()
    assert.equal(2, code)
    assert.equal("", out)
    assert.equal("ddb-optimistic: NotDynamoDB (HTTP 501): the endpoint " .. web.url ..
      "/ answered HTTP 501 text/html with a body that is not JSON and no x-amzn-requestid: " ..
      "is it a DynamoDB endpoint?\n", err)
  end)

  local json_errors = {
    { '{"pk":', "not valid JSON at byte 7: expected a value %(an object, array, string, " ..
      "number, true, false or null%), found the end of the text" },
    { '{"pk" "a"}', "at byte 7: expected ':' after the member name, found '\"a\"}'" },
    { '{"pk":"a",}', "at byte 11: expected a member name in double quotes, found '}'" },
    { '{"pk":"a"} x', "at byte 12: expected the end of the text, found 'x'" },
    { '{"pk":01}', "at byte 8: expected ',' or '}', found '1}'" },
    { '{"pk":"a","pk":"b"}', "at byte 11: member 'pk' given twice" },
    { '{"n":1e999999}', "at byte 6: 1e999999 is not a number DynamoDB can store" },
    { '{"pk":"\\x"}', "at byte 9: expected an escape" },
  }
  for _, case in ipairs(json_errors) do
    it("says where JSON goes wrong: " .. case[1], function()
      local code, out, err = cli{ "get", "--table", "Tab", "--key", case[1],
        "--endpoint", helper.closed_url() }
      assert.equal(1, code, err)
      assert.equal("", out)
      assert.matches("^ddb%-optimistic: %-%-key: .*" .. case[2], err)
    end)
  end
end)

for _, server in ipairs(helper.servers()) do
  describe("ddb-optimistic on " .. server.name, function()
    local client, tbl

    local function run(args, opts)
      local full = { args[1], "--table", tbl, "--endpoint", server.url }
      for i = 2, #args do full[#full + 1] = args[i] end
      return cli(full, opts)
    end

    local function raw(pk)
      local res = assert(client:get_item{ TableName = tbl, Key = { pk = { S = pk } },
        ConsistentRead = true })
      return res.Item
    end

    setup(function()
      client = helper.client(server)
      tbl = helper.table_name("cli")
      helper.create_table(client, tbl)
    end)

    before_each(function()
      helper.reset(server)
    end)

    describe("get", function()
      it("prints null for an absent item and exits 0", function()
        local code, out, err = run{ "get", "--key", '{"pk":"absent"}' }
        assert.equal(0, code, err)
        assert.equal("null\n", out)
      end)

      it("prints DynamoDB's NULL as null, sets as arrays and binary as base64, keys sorted",
        function()
          assert(client:put_item{ TableName = tbl, Item = ddb.marshal_item{ pk = "kinds",
            z = ddb.null, ss = ddb.string_set{ "a" }, ns = ddb.number_set{ "2.50" },
            bin = ddb.binary("\0\1"), ok = true, l = ddb.list(), m = {} } })
          local code, out = run{ "get", "--key", '{"pk":"kinds"}' }
          assert.equal(0, code)
          assert.equal('{"bin":"AAE=","l":[],"m":{},"ns":[2.5],"ok":true,"pk":"kinds",' ..
            '"ss":["a"],"z":null}\n', out)
        end)

      it("exits 2 with the service's error on stderr for a table that does not exist",
        function()
          local code, out, err = cli{ "get", "--table", tbl .. "_none", "--endpoint", server.url,
            "--key", '{"pk":"a"}' }
          assert.equal(2, code)
          assert.equal("", out)
          assert.matches("^ddb%-optimistic: ResourceNotFoundException", err)
          assert.truthy(err:find(tbl .. "_none", 1, true), err)
        end)

      it("exits 2 for a key that does not match the table's", function()
        local code, _, err = run{ "get", "--key", '{"id":"a"}' }
        assert.equal(2, code)
        assert.matches("ValidationError: key has attribute 'id'", err)
      end)
    end)

    describe("update", function()
      it("creates the item, then increments it, one version per write", function()
        for i = 1, 2 do
          local code, out, err = run{ "update", "--key", '{"pk":"counter"}',
            "--lua", "item.n = (item.n or 0) + 1" }
          assert.equal(0, code, err)
          assert.equal(('{"n":%d,"pk":"counter","version":%d}\n'):format(i, i), out)
        end
        assert.equal("2", raw("counter").version.N)
      end)

      it("runs a script file, which may replace the item by returning a table", function()
        local path = os.tmpname()
        local f = assert(io.open(path, "w"))
        f:write("-- keeps only a summary\nreturn { total = (item.a or 0) + (item.b or 0) }\n")
        f:close()
        assert(client:put_item{ TableName = tbl, Item = ddb.marshal_item{ pk = "file", a = 2,
          b = 3 } })
        local code, out, err = run{ "update", "--key", '{"pk":"file"}', "--file", path }
        os.remove(path)
        assert.equal(0, code, err)
        assert.equal('{"pk":"file","total":5,"version":1}\n', out)
        assert.is_nil(raw("file").a)
      end)

      it("takes a value that starts with '-' (a Lua comment) and options before the command",
        function()
          local code, out, err = cli{ "--table", tbl, "--endpoint", server.url, "update",
            "--key", '{"pk":"dash"}', "--lua", "-- the first write\nitem.n = 1" }
          assert.equal(0, code, err)
          assert.equal('{"n":1,"pk":"dash","version":1}\n', out)
        end)

      it("deletes the item when the script returns DELETE", function()
        assert.equal(0, (run{ "update", "--key", '{"pk":"del"}', "--lua", "item.x = 1" }))
        local code, out = run{ "update", "--key", '{"pk":"del"}', "--lua", "return DELETE" }
        assert.equal(0, code)
        assert.equal("null\n", out)
        assert.is_nil(raw("del"))
      end)

      it("creates nothing when the script leaves an absent item empty", function()
        local code, out, err = run{ "update", "--key", '{"pk":"noop"}',
          "--lua", "print('exists:', exists)" }
        assert.equal(0, code)
        assert.equal("null\n", out)
        assert.equal("exists:\tfalse\n", err)
        assert.is_nil(raw("noop"))
      end)

      it("exits 2 and writes nothing when the script raises", function()
        local code, out, err = run{ "update", "--key", '{"pk":"raise"}',
          "--lua", "item.n = 1; error('refused by the script')" }
        assert.equal(2, code)
        assert.equal("", out)
        assert.matches("refused by the script", err)
        assert.equal(0, helper.requests(helper.stats(server), "UpdateItem"))
      end)

      it("exits 1 and sends nothing when the script does not compile", function()
        local code, _, err = run{ "update", "--key", '{"pk":"syntax"}', "--lua", "item.n =" }
        assert.equal(1, code)
        assert.matches("does not compile", err)
        local st = helper.stats(server)
        assert.equal(0, helper.requests(st, "GetItem") + helper.requests(st, "UpdateItem"))
      end)

      it("stops a script that never ends at the deadline", function()
        local code, _, err = run{ "update", "--key", '{"pk":"loop"}', "--deadline-ms", "1500",
          "--lua", "while true do end" }
        assert.equal(2, code)
        assert.matches("the script was stopped: it ran past the command's deadline " ..
          "%(%-%-deadline%-ms 1500%)", err)
        assert.is_nil(raw("loop"))
      end)

      it("stops a backtracking pattern inside one C call at the deadline, writing nothing",
        function()
          -- string.find runs for minutes here, out of reach of any Lua hook
          local started = ddb.core.monotonic_ms()
          local code, out, err = run{ "update", "--key", '{"pk":"regex"}', "--deadline-ms",
            "2000", "--lua", 'item.hit = string.find(string.rep("a", 30) .. "b", ' ..
            '("a*"):rep(20) .. "c") or 0' }
          local elapsed = ddb.core.monotonic_ms() - started
          assert.equal(2, code, err)
          assert.equal("", out)
          assert.matches("ran past the command's deadline", err)
          assert.is_true(elapsed < 2000 + 3000, "took " .. elapsed .. " ms")
          assert.is_true(elapsed >= 1500, "stopped after " .. elapsed .. " ms")
          assert.is_nil(raw("regex"))
          assert.equal(0, helper.requests(helper.stats(server), "UpdateItem"))
        end)

      it("stops a script that takes all the memory, writing nothing", function()
        local code, _, err = run{ "update", "--key", '{"pk":"mem"}', "--lua",
          "local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(1e7) .. i end" }
        assert.equal(2, code, err)
        if os.getenv("ASAN_OPTIONS") then
          -- under AddressSanitizer (make asan-integration) the sandbox sets no address-space
          -- limit (ASan reserves terabytes), so the deadline is what stops the script
          assert.matches("^ddb%-optimistic: the script failed, nothing was written: the " ..
            "script was stopped: it ran past the command's deadline", err)
        else
          assert.matches("^ddb%-optimistic: the script failed, nothing was written: .*not " ..
            "enough memory\n$", err)
        end
        assert.is_nil(raw("mem"))
      end)

      it("runs the script in a child process: the item's kinds arrive and return intact",
        function()
          assert(client:put_item{ TableName = tbl, Item = ddb.marshal_item{ pk = "kinds",
            ss = ddb.string_set{ "a", "b" }, bin = ddb.binary("\0\1"),
            big = ddb.number("12345678901234567890123456789012345678"), z = ddb.null,
            l = ddb.list(), m = { x = 1 } } })
          local code, out, err = run{ "update", "--key", '{"pk":"kinds"}', "--lua",
            "assert(ddb.type(item.ss) == 'SS' and ddb.type(item.bin) == 'B' and " ..
            "ddb.type(item.l) == 'L' and item.z == ddb.null and tostring(item.big) == " ..
            "'12345678901234567890123456789012345678'); item.n = 1; print('pid', exists)" }
          assert.equal(0, code, err)
          assert.equal('{"big":12345678901234567890123456789012345678,"bin":"AAE=","l":[],' ..
            '"m":{"x":1},"n":1,"pk":"kinds","ss":["a","b"],"version":1,"z":null}\n', out)
          assert.equal("pid\ttrue\n", err)
        end)

      it("keeps the sandbox: no io, no os.execute, no require", function()
        local code, _, err = run{ "update", "--key", '{"pk":"sandbox"}', "--lua",
          "item.x = io and 1 or os.execute and 2 or require and 3 or 0" }
        assert.equal(0, code, err)
        assert.equal("0", raw("sandbox").x.N)
      end)

      it("loses no update when several commands update one item at once", function()
        local cmds = {}
        for i = 1, 4 do
          local args = { "update", "--table", tbl, "--endpoint", server.url, "--key",
            '{"pk":"shared"}', "--max-attempts", "50", "--deadline-ms", "30000", "--lua",
            "item.n = (item.n or 0) + 1" }
          for j, a in ipairs(args) do args[j] = q(a) end
          cmds[i] = "(for k in 1 2 3 4 5; do env AWS_ACCESS_KEY_ID=" .. q(helper.access_key()) ..
            " AWS_SECRET_ACCESS_KEY=" .. q(helper.secret_key()) .. " AWS_REGION=" ..
            q(helper.region()) .. " " .. helper.lua_command("bin/ddb-optimistic") .. " " ..
            table.concat(args, " ") .. " > /dev/null || echo failed; done) &"
        end
        local p = io.popen("sh -c " .. q(table.concat(cmds, "\n") .. "\nwait"))
        local failures = p:read("*a")
        p:close()
        assert.equal("", failures)
        assert.equal("20", raw("shared").n.N)
        assert.equal("20", raw("shared").version.N)
      end)

      it("exits 3 (OutcomeUnknown) when a write's answer does not come back in time",
        function()
          helper.faults(server, { { kind = "delay_ms", op = "UpdateItem", ms = 1500,
            count = 1 } })
          local code, out, err = run{ "update", "--key", '{"pk":"late"}', "--deadline-ms",
            "700", "--lua", "item.n = 1" }
          helper.settle(server, "UpdateItem")
          assert.equal(3, code, err)
          assert.equal("", out)
          assert.matches("OutcomeUnknown", err)
          assert.matches("read the item", err)
          -- the delayed write did land: the exit code was right not to say "failed"
          assert.equal("1", raw("late").n.N)
        end)
    end)

    describe("put", function()
      it("keeps numbers exact both ways: 38 digits, 0.1, tiny exponents, beyond 2^53",
        function()
          local json = '{"big":12345678901234567890123456789012345678,"f":0.1,' ..
            '"i":9007199254740993,"neg":-1E-130,"pk":"exact"}'
          local code, out, err = run{ "put", "--item", json }
          assert.equal(0, code, err)
          assert.equal(json:sub(1, -2) .. ',"version":1}\n', out)
          local item = raw("exact")
          assert.equal("12345678901234567890123456789012345678", item.big.N)
          assert.equal("9007199254740993", item.i.N)
          assert.equal("0.1", item.f.N)
          local _, got = run{ "get", "--key", '{"pk":"exact"}' }
          assert.equal(out, got)
        end)

      it("stores JSON null as DynamoDB NULL and keeps empty lists and maps", function()
        local code, out = run{ "put", "--item", '{"pk":"null","z":null,"l":[],"m":{}}' }
        assert.equal(0, code)
        assert.equal('{"l":[],"m":{},"pk":"null","version":1,"z":null}\n', out)
        assert.same({ NULL = true }, raw("null").z)
      end)

      it("replaces the item's attributes and bumps the version", function()
        assert.equal(0, (run{ "put", "--item", '{"pk":"replace","a":1,"b":2}' }))
        local code, out = run{ "put", "--item", '{"pk":"replace","c":3}' }
        assert.equal(0, code)
        assert.equal('{"c":3,"pk":"replace","version":2}\n', out)
      end)

      it("with a version, writes only if the item is still at that version", function()
        assert.equal(0, (run{ "put", "--item", '{"pk":"cas","a":1}' }))
        local code, out, err = run{ "put", "--item", '{"pk":"cas","a":2,"version":7}' }
        assert.equal(2, code)
        assert.equal("", out)
        assert.matches("VersionMismatch: the item is at version 1, not 7", err)
        code, out = run{ "put", "--item", '{"pk":"cas","a":3,"version":1}' }
        assert.equal(0, code)
        assert.equal('{"a":3,"pk":"cas","version":2}\n', out)
      end)

      it("with version 0, creates the item only if there is none", function()
        local code, out = run{ "put", "--item", '{"pk":"once","a":1,"version":0}' }
        assert.equal(0, code)
        assert.equal('{"a":1,"pk":"once","version":1}\n', out)
        local err
        code, out, err = run{ "put", "--item", '{"pk":"once","a":2,"version":0}' }
        assert.equal(2, code)
        assert.equal("", out)
        assert.matches("the item is at version 1, not 0", err)
        code, out, err = run{ "put", "--item", '{"pk":"never","a":2,"version":3}' }
        assert.equal("", out)
        assert.equal(2, code)
        assert.matches("there is no such item, not 3", err)
      end)

      it("reads the item from standard input with --item -", function()
        local code, out = run({ "put", "--item", "-" }, { stdin = '{"pk":"stdin","x":"y"}' })
        assert.equal(0, code)
        assert.equal('{"pk":"stdin","version":1,"x":"y"}\n', out)
      end)

      it("exits 1 for JSON that does not parse, sending nothing", function()
        local code, _, err = run{ "put", "--item", '{"pk":' }
        assert.equal(1, code)
        assert.matches("%-%-item: not valid JSON at byte 7", err)
        assert.equal(0, helper.requests(helper.stats(server), "DescribeTable"))
      end)
    end)

    describe("delete", function()
      it("deletes the item, conditioned on the version read, and prints null", function()
        assert.equal(0, (run{ "put", "--item", '{"pk":"gone","a":1}' }))
        local code, out, err = run{ "delete", "--key", '{"pk":"gone"}', "--verbose" }
        assert.equal(0, code, err)
        assert.equal("null\n", out)
        assert.matches("action=delete", err)
        assert.is_nil(raw("gone"))
        -- the DeleteItem carried the version read as its condition
        assert.equal(1, helper.requests(helper.stats(server), "DeleteItem"))
      end)

      it("exits 0 with null when there is nothing to delete, writing nothing", function()
        local code, out = run{ "delete", "--key", '{"pk":"never"}' }
        assert.equal(0, code)
        assert.equal("null\n", out)
        assert.equal(0, helper.requests(helper.stats(server), "DeleteItem"))
      end)

      it("with --if-version, deletes only an item at that version", function()
        assert.equal(0, (run{ "put", "--item", '{"pk":"v","a":1}' }))
        assert.equal(0, (run{ "put", "--item", '{"pk":"v","a":2}' }))
        local code, out, err = run{ "delete", "--key", '{"pk":"v"}', "--if-version", "1" }
        assert.equal(2, code)
        assert.equal("", out)
        assert.matches("VersionMismatch: the item is at version 2, not 1", err)
        assert.equal("2", raw("v").version.N)
        code, out = run{ "delete", "--key", '{"pk":"v"}', "--if-version", "2" }
        assert.equal(0, code)
        assert.equal("null\n", out)
        assert.is_nil(raw("v"))
        code, _, err = run{ "delete", "--key", '{"pk":"v"}', "--if-version", "2" }
        assert.equal(2, code)
        assert.matches("there is no such item, not 2", err)
      end)
    end)
  end)
end
