-- Every block of code in README.md and docs/*.md runs here, so that none can drift from the
-- code: in the environment the README's try-it recipe sets up (its `env` block, evaluated
-- with the DDB_TEST_* variables of spec/support/with-servers.sh, a HOME of its own and no
-- other AWS_* variable), from the repository root, in the order of the pages (README first),
-- on the table the recipe creates (dropped first, so every run starts from the same state).
--
-- A block runs by its language: ```lua as a script under the interpreter running the specs
-- (LUA_CPATH pointed at its build), ```sh with `sh -e`. Any other block, and any block that
-- cannot run as it stands, says what to do with it in an HTML comment on the line above the
-- fence, `<!-- doctest: KIND ARGS -->`:
--   env                      the recipe's exports: evaluated once, given to every block
--   servers                  the recipe's server command: run with a script on its stdin
--   setup                    the two set-up commands: the demo one runs as written, the test
--                            one must be .ci/run's (it is this suite)
--   install                  luarocks commands and nginx lines: each must be one that
--                            luarocks_spec.lua runs (spec/support/install_commands.lua)
--   excerpt FILE             every line must be a line of FILE, in order ("..." skips)
--   nginx-module NAME        Lua saved as NAME.lua for the page's nginx (and compiled by luajit)
--   nginx-server METHOD PATH [ANSWER]
--                            nginx locations put in the page's nginx (one per page, with
--                            every nginx-module of the page, spec/support/nginx/docs.conf),
--                            then METHOD PATH asked twice: 200 each time (the second answer
--                            matching the Lua pattern ANSWER, when given), nothing logged at
--                            error level or above
--   skip REASON              not run; the reason is printed (busted counts it pending)
-- An unmarked block in another language, an unknown kind, a skip without a reason, or a
-- marker that is not right above a fence fails.
local helper = require "helper"
local runner = require "support.nginx.runner"
local shell = require "support.shell"
local install = require "support.install_commands"
local ddb = require "ddb"

local q = helper.shell_quote
local ROOT = runner.root
local RUNTIME = jit and "jit" or _VERSION:match("%d+%.%d+")

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- The pages: README.md, then docs/*.md by name.
local function pages()
  local list = { "README.md" }
  local ok, out = runner.sh("cd " .. q(ROOT) .. " && ls docs/*.md")
  assert(ok, out)
  for name in out:gmatch("[^\n]+") do list[#list + 1] = name end
  return list
end

-- The fenced blocks of a page: { page, line, lang, code, kind, args }.
local function blocks_of(page)
  local lines = {}
  for line in (read(ROOT .. "/" .. page) .. "\n"):gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line
  end
  local out, i = {}, 1
  while i <= #lines do
    local line = lines[i]
    local fence, lang = line:match("^(```+)%s*([%w_+-]*)%s*$")
    local marker = line:match("^<!%-%-%s*doctest:(.-)%-%->%s*$")
    if marker then
      assert(lines[i + 1] and lines[i + 1]:match("^```"), ("%s:%d: a doctest marker must be " ..
        "on the line right above a fence"):format(page, i))
    elseif line:match("doctest") and line:match("^<!%-%-") then
      error(("%s:%d: not a doctest marker: %s"):format(page, i, line))
    end
    if fence then
      local start, body = i, {}
      i = i + 1
      while i <= #lines and lines[i] ~= fence do
        body[#body + 1] = lines[i]
        i = i + 1
      end
      assert(i <= #lines, ("%s:%d: the fence is never closed"):format(page, start))
      local m = start > 1 and lines[start - 1]:match("^<!%-%-%s*doctest:(.-)%-%->%s*$")
      local kind, args
      if m then kind, args = m:match("^%s*(%S+)%s*(.-)%s*$") end
      out[#out + 1] = { page = page, line = start, lang = lang, kind = kind, args = args,
        code = table.concat(body, "\n") .. "\n" }
    end
    i = i + 1
  end
  return out
end

local KINDS = { env = true, servers = true, setup = true, install = true, excerpt = true,
  ["nginx-module"] = true, ["nginx-server"] = true, skip = true }

-- Non-empty lines that are not comments (for sh: "#", for nginx: "#"), trailing comments cut.
local function commands(code)
  local list = {}
  for line in code:gmatch("[^\n]+") do
    local cmd = line:gsub("^%s+", ""):gsub("%s+#%s.*$", ""):gsub("%s+$", "")
    if cmd ~= "" and not cmd:match("^#") then list[#list + 1] = cmd end
  end
  return list
end

describe("the code blocks of the README and docs/", function()
  local all = {}
  for _, page in ipairs(pages()) do
    for _, b in ipairs(blocks_of(page)) do all[#all + 1] = b end
  end

  local base_env          -- the recipe's environment, as `env` arguments, for sh blocks
  local lua_env           -- the same with LUA_CPATH naming the build of the specs' runtime
  local home, workdir     -- a HOME of its own; where blocks are written
  local env_vars = {}     -- name -> value, from the recipe's env block
  local counts = { run = 0, checked = 0, skipped = {} }

  -- the environment a block runs in: this process's, less every AWS_* and LUA_* variable,
  -- plus the recipe's
  local function env_prefix(runtime)
    local parts = { "env" }
    local p = io.popen("env")
    for line in p:lines() do
      local name = line:match("^([%w_]+)=")
      if name and (name:match("^AWS_") or name:match("^LUA_") or name == "HOME" or
          name:match("^MAKE") or name == "MFLAGS") then
        parts[#parts + 1] = "-u " .. name
      end
    end
    p:close()
    parts[#parts + 1] = "HOME=" .. q(home)
    local names = {}
    for k in pairs(env_vars) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do
      local v = env_vars[k]
      if k == "LUA_CPATH" and runtime then
        v = v:gsub("/build/5%.4/", "/build/" .. runtime .. "/")
      end
      parts[#parts + 1] = k .. "=" .. q(v)
    end
    return table.concat(parts, " ")
  end

  -- sh blocks run in the recipe's environment as it is (they name lua5.4 themselves); Lua
  -- blocks under the interpreter running the specs, with the C module built for it
  local function run(cmd, timeout_s, prefix)
    return runner.sh("cd " .. q(ROOT) .. " && " .. (prefix or base_env) .. " timeout " ..
      (timeout_s or 120) .. " " .. cmd)
  end

  setup(function()
    home = runner.tmpdir("docs-home")
    workdir = runner.tmpdir("docs-blocks")
    -- the recipe's env block, evaluated as a reader's shell would, with DDB_TEST_* set
    local env_blocks = {}
    for _, b in ipairs(all) do
      if b.kind == "env" then env_blocks[#env_blocks + 1] = b end
    end
    assert.are.equal(1, #env_blocks, "exactly one doctest env block")
    local script = workdir .. "/env.sh"
    write(script, env_blocks[1].code .. "\nenv\n")
    local ok, out = runner.sh("cd " .. q(ROOT) .. " && env -i PATH=\"$PATH\" " ..
      "DDB_TEST_MOTO_URL=" .. q(helper.servers()[1].url) ..
      " DDB_TEST_DYNALITE_URL=" .. q(helper.servers()[2].url) ..
      " DDB_TEST_REGION=" .. q(helper.region()) ..
      " DDB_TEST_ACCESS_KEY=" .. q(helper.access_key()) ..
      " DDB_TEST_SECRET_KEY=" .. q(helper.secret_key()) .. " sh -e " .. q(script))
    assert(ok, out)
    local skip = { PWD = true, OLDPWD = true, SHLVL = true, _ = true }
    for line in out:gmatch("[^\n]+") do
      local k, v = line:match("^([%w_]+)=(.*)$")
      if k and not k:match("^DDB_TEST_") and not skip[k] then env_vars[k] = v end
    end
    base_env, lua_env = env_prefix(), env_prefix(RUNTIME)
    -- the recipe creates the table: start from none, so every run sees the same state
    local client = assert(ddb.new{ endpoint = env_vars.AWS_ENDPOINT_URL_DYNAMODB,
      region = env_vars.AWS_REGION, credentials = helper.credentials() })
    local _, err = client:delete_table{ TableName = "Accounts" }
    assert(not err or err.code == "ResourceNotFoundException", tostring(err))
  end)

  teardown(function()
    if home then runner.sh("rm -rf " .. q(home) .. " " .. q(workdir)) end
    local skipped = {}
    for _, s in ipairs(counts.skipped) do skipped[#skipped + 1] = "  not run: " .. s end
    print(("\n  docs: %d of %d blocks run, %d checked without running, %d not run\n%s"):format(
      counts.run, #all, counts.checked, #counts.skipped, table.concat(skipped, "\n")))
  end)

  it("finds blocks on every page, each with a language or a marker", function()
    assert.is_true(#all >= 20, #all .. " blocks")
    for _, b in ipairs(all) do
      local where = b.page .. ":" .. b.line
      if b.kind then
        assert.is_true(KINDS[b.kind], where .. ": unknown doctest kind '" .. b.kind .. "'")
        if b.kind == "skip" then
          assert.is_true(#b.args >= 10, where .. ": a skip says why the block cannot run")
        end
      else
        assert.is_true(b.lang == "lua" or b.lang == "sh", where .. ": a ```" .. b.lang ..
          " block runs only with a doctest marker saying how (or why not)")
      end
    end
  end)

  it("gives the recipe's variables: endpoint, region, keys, the checkout's modules and command",
    function()
      assert.are.equal(helper.servers()[1].url, env_vars.AWS_ENDPOINT_URL_DYNAMODB)
      assert.are.equal(helper.region(), env_vars.AWS_REGION)
      assert.are.equal(helper.access_key(), env_vars.AWS_ACCESS_KEY_ID)
      assert.are.equal(helper.secret_key(), env_vars.AWS_SECRET_ACCESS_KEY)
      assert.truthy(env_vars.LUA_PATH:find(ROOT .. "/lua/?.lua", 1, true), env_vars.LUA_PATH)
      assert.truthy(env_vars.LUA_CPATH:find(ROOT .. "/build/5.4/?.so", 1, true))
      assert.truthy(env_vars.PATH:find(ROOT .. "/bin", 1, true))
    end)

  -- One nginx per page with OpenResty blocks, started on first use.
  local nginx = {}
  local function nginx_for(page)
    if nginx[page] then return nginx[page] end
    local moddir = runner.tmpdir("docs-modules")
    local servers = {}
    for _, b in ipairs(all) do
      if b.page == page and b.kind == "nginx-module" then
        write(moddir .. "/" .. b.args .. ".lua", b.code)
      elseif b.page == page and b.kind == "nginx-server" then
        servers[#servers + 1] = b.code
      end
    end
    shell.must("chmod -R a+rX " .. q(moddir))
    local srv = runner.start{ conf = read(runner.support_dir .. "/docs.conf"), vars = {
      MODDIR = moddir, SERVER = table.concat(servers, "\n") }, env = {
      AWS_REGION = env_vars.AWS_REGION,
      AWS_ENDPOINT_URL_DYNAMODB = env_vars.AWS_ENDPOINT_URL_DYNAMODB,
      AWS_ACCESS_KEY_ID = env_vars.AWS_ACCESS_KEY_ID,
      AWS_SECRET_ACCESS_KEY = env_vars.AWS_SECRET_ACCESS_KEY } }
    srv.moddir = moddir
    nginx[page] = srv
    return srv
  end

  teardown(function()
    for _, srv in pairs(nginx) do
      runner.sh("rm -rf " .. q(srv.moddir))
      srv:stop()
    end
  end)

  local HANDLERS = {}

  function HANDLERS.run(b)
    -- a module would "run" without running anything: it needs its nginx-module marker
    assert.is_nil(b.code:match("\nreturn%s+[%w_]+%s*$"), b.page .. ":" .. b.line ..
      ": a module; mark it nginx-module NAME and give it an nginx-server block")
    local file = ("%s/%s-%d.%s"):format(workdir, (b.page:gsub("[/.]", "_")), b.line, b.lang)
    write(file, b.code)
    local ok, out
    if b.lang == "lua" then
      ok, out = run(q(helper.lua_bin()) .. " " .. q(file), nil, lua_env)
    else
      ok, out = run("sh -e " .. q(file))
    end
    assert(ok, b.page .. ":" .. b.line .. " failed:\n" .. b.code .. "\n--- output:\n" .. out)
    assert.is_nil(out:find("ddb: warn", 1, true), out)
    counts.run = counts.run + 1
    return out
  end

  HANDLERS.env = function(b)
    -- evaluated in setup; here it must also run as a block of its own
    HANDLERS.run(b)
  end

  function HANDLERS.servers(b)
    assert.are.same({ "sh spec/support/with-servers.sh bash" }, commands(b.code))
    local ok, out = runner.sh("cd " .. q(ROOT) .. " && echo 'echo \"up: $DDB_TEST_MOTO_URL " ..
      "$DDB_TEST_REGION\"' | env -u DDB_TEST_MOTO_URL -u DDB_TEST_REGION timeout 120 sh -e -c " ..
      q(b.code))
    assert(ok, out)
    assert.matches("up: http://127%.0%.0%.1:%d+ %S+", out)
    assert.matches("stopped 5 process", out)
    counts.run = counts.run + 1
  end

  function HANDLERS.setup(b)
    local cmds = commands(b.code)
    assert.are.same({ "sh bootstrap.sh && make demo", "sh bootstrap.sh && make test" }, cmds)
    -- the test command is this suite: CI runs it, through .ci/run, word for word
    local ci = commands(read(ROOT .. "/.ci/run"))
    assert.are.equal(cmds[2], ci[#ci])
    local ok, out = run("sh -c " .. q(cmds[1]), 300)
    assert(ok, out)
    assert.matches("demo finished", out)
    counts.run = counts.run + 1
  end

  function HANDLERS.install(b)
    local known = {}
    for _, c in ipairs(install.ALL) do known[c] = true end
    for _, c in ipairs(commands(b.code)) do
      assert.is_true(known[c], b.page .. ":" .. b.line .. ": luarocks_spec.lua does not run: " .. c)
    end
    counts.checked = counts.checked + 1
  end

  function HANDLERS.excerpt(b)
    local lines = {}
    for line in read(ROOT .. "/" .. b.args):gmatch("[^\n]+") do
      lines[#lines + 1] = line:gsub("^%s+", ""):gsub("%s+$", "")
    end
    local at = 1
    for line in b.code:gmatch("[^\n]+") do
      local want = line:gsub("^%s+", ""):gsub("%s+$", "")
      if want ~= "" and want ~= "..." then
        while at <= #lines and lines[at] ~= want do at = at + 1 end
        assert.is_true(at <= #lines, b.page .. ":" .. b.line .. ": not in " .. b.args ..
          " (or out of order): " .. want)
        at = at + 1
      end
    end
    counts.checked = counts.checked + 1
  end

  HANDLERS["nginx-module"] = function(b)
    assert.truthy(b.args:match("^[%w_]+$"), "a module name: " .. tostring(b.args))
    local used = false
    for _, s in ipairs(all) do
      if s.page == b.page and s.kind == "nginx-server" and
          s.code:find('require("' .. b.args .. '")', 1, true) then
        used = true
      end
    end
    assert.is_true(used, b.page .. ":" .. b.line .. ": no nginx-server block of the page " ..
      "requires " .. b.args)
    local file = ("%s/%s.lua"):format(workdir, b.args)
    write(file, b.code)
    local ok, out = runner.sh("luajit -bl " .. q(file) .. " >/dev/null")
    assert(ok, "luajit does not compile " .. b.page .. ":" .. b.line .. ":\n" .. out)
    counts.checked = counts.checked + 1
  end

  HANDLERS["nginx-server"] = function(b)
    local method, path, want = b.args:match("^(%u+) (/%S*)%s*(.-)$")
    assert(method, b.page .. ":" .. b.line .. ": nginx-server needs METHOD PATH [ANSWER]")
    local srv = nginx_for(b.page)
    for i = 1, 2 do
      local status, body = runner.http(method, srv:url(path))
      assert.are.equal(200, status, ("%s %s (%d): %s\n%s"):format(method, path, i,
        tostring(body), srv:log()))
      -- the second answer, from the same worker, may have to say what the first left behind
      if i == 2 and want ~= "" then
        assert.matches(want, (body:gsub("%s+$", "")))
      end
    end
    for _, level in ipairs{ "[error]", "[alert]", "[crit]", "[emerg]" } do
      assert.is_nil(srv:log():find(level, 1, true), srv:log())
    end
    counts.run = counts.run + 1
  end

  for _, b in ipairs(all) do
    local where = b.page .. ":" .. b.line
    local name = ("%s (%s%s)"):format(where, b.lang ~= "" and b.lang or "text",
      b.kind and (", " .. b.kind .. (b.args ~= "" and (" " .. b.args) or "")) or "")
    if b.kind == "skip" then
      -- not run, and said so: busted lists it as pending, the teardown with its reason
      counts.skipped[#counts.skipped + 1] = where .. " (" .. b.args .. ")"
      pending(where .. " not run: " .. b.args)
    elseif KINDS[b.kind] or (not b.kind and (b.lang == "lua" or b.lang == "sh")) then
      it(name, function() (HANDLERS[b.kind or "run"])(b) end)
    end
  end

  it("prints an error table only through tostring inside nginx, as docs/openresty.md says",
    function()
      local srv = nginx_for("docs/openresty.md")
      local status, body = runner.http("GET", srv:url("/__error_table"))
      assert.are.equal(200, status, tostring(body) .. srv:log())
      local doc = ddb.decode_json(body)
      assert.is_false(doc.say_ok)
      assert.truthy(doc.say_err:find("non-array table", 1, true), doc.say_err)
      assert.is_true(doc.log_ok)
      assert.are.equal("ddb: OutcomeUnknown: a test", doc.line)
      assert.truthy(srv:log():find("logged: ddb: OutcomeUnknown: a test", 1, true), srv:log())
    end)
end)

describe("docs/configuration.md", function()
  local page = read(ROOT .. "/docs/configuration.md")
  local function named(name)
    return page:find("`" .. name .. "`", 1, true) or page:find("`" .. name .. " ", 1, true) or
      page:find("`--" .. name, 1, true)
  end
  -- The names an options checker lists for a name it cannot place.
  local function listed(fn, ...)
    local ok, msg = pcall(fn, ...)
    assert.is_false(ok)
    local list = assert(tostring(msg):match("options are: ([%w_, ]+)"), tostring(msg))
    local names = {}
    for n in list:gmatch("[%w_]+") do names[#names + 1] = n end
    return names
  end

  it("names every option of ddb.new, optimistic.new, the calls and the transports", function()
    local settings = require "ddb.engine.settings"
    local names = {}
    for _, set in ipairs{ ddb.CLIENT_OPTIONS, settings.STORE, settings.CALL, settings.MANY } do
      for n in pairs(set) do names[#names + 1] = n end
    end
    for _, list in ipairs{
      listed(ddb.new, { retry = { zzzzzzzzzz = 1 } }),
      listed(ddb.curl_transport, { zzzzzzzzzz = 1 }),
      listed(require("ddb.scheduler").new, { zzzzzzzzzz = 1 }),
    } do
      for _, n in ipairs(list) do names[#names + 1] = n end
    end
    -- the cosocket transport cannot be made outside nginx: its names from its source
    local src = read(ROOT .. "/lua/ddb/transport/ngx.lua"):match("local SPEC = (%b{})")
    for n in src:gmatch("\n%s+([%w_]+) = options%.") do names[#names + 1] = n end
    local missing = {}
    for _, n in ipairs(names) do
      if not named(n) then missing[#missing + 1] = n end
    end
    table.sort(missing)
    assert.are.same({}, missing)
  end)

  it("names every flag of the command line and every AWS_ variable the code reads", function()
    local missing = {}
    local cli = require "ddb.cli"
    for _, text in ipairs{ cli.USAGE, cli.help("get"), cli.help("put"), cli.help("update"),
      cli.help("delete") } do
      for flag in text:gmatch("%-%-([%a][%w-]*)") do
        if not page:find("--" .. flag, 1, true) then missing[#missing + 1] = "--" .. flag end
      end
    end
    local ok, out = runner.sh("cd " .. q(ROOT) .. " && grep -oh 'AWS_[A-Z0-9_]*[A-Z0-9]' " ..
      "lua/ddb/*.lua lua/ddb/*/*.lua | sort -u")
    assert(ok, out)
    for var in out:gmatch("[^\n]+") do
      if not page:find(var, 1, true) then missing[#missing + 1] = var end
    end
    assert.are.same({}, missing)
  end)
end)
