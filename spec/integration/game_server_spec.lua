-- The game-server example (examples/game-server): a C host with the ddb core linked in,
-- several threads each with its own lua_State, coroutines in each driven by the host's
-- frame loop through a yielding transport. Built and run against both local servers; every
-- update a player session reports must be in the player items exactly once.
local ddb = require "ddb"
local helper = require "helper"

local q = helper.shell_quote
local DIR = "examples/game-server"
local HOST = "build/game-server/host"
local HOST_TSAN = "build/game-server/host-tsan"

local function root()
  local p = assert(io.popen("pwd"))
  local dir = p:read("*l")
  p:close()
  return dir
end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("exit=(%d+)%s*$"))
  return code, out:gsub("exit=%d+%s*$", "")
end

-- Runs the host; returns the reports (decoded), the summary, and the exit code and output.
local function run_host(binary, script, server, params)
  local dir = root()
  local lua_path = ("%s/lua/?.lua;%s/lua/?/init.lua;%s/%s/?.lua"):format(dir, dir, dir, DIR)
  local args = {}
  for k, v in pairs(params or {}) do
    if k ~= "threads" then args[#args + 1] = q(k .. "=" .. tostring(v)) end
  end
  if server then
    args[#args + 1] = q("endpoint=" .. server.url)
    args[#args + 1] = q("region=" .. helper.region())
  end
  table.sort(args)
  local cmd = ("env LUA_PATH=%s LUA_PATH_5_4=%s AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s " ..
    "%s -t %d %s %s"):format(q(lua_path), q(lua_path), q(helper.access_key()),
    q(helper.secret_key()), q(binary), params and params.threads or 1, q(script),
    table.concat(args, " "))
  local code, out = sh(cmd)
  local reports, summary = {}, nil
  for line in out:gmatch("[^\n]+") do
    local kind, json = line:match("^(%a+) (.*)$")
    if kind == "report" then
      reports[#reports + 1] = ddb.decode_json(json) or json
    elseif kind == "summary" then
      summary = ddb.decode_json(json)
    end
  end
  return reports, summary, code, out
end

local function scan_all(client, tbl)
  local items, start = {}, nil
  repeat
    local res = assert(client:scan{ TableName = tbl, ConsistentRead = true,
      ExclusiveStartKey = start })
    for _, av in ipairs(res.Items or {}) do
      local item = ddb.unmarshal_item(av)
      items[item.pk] = item
    end
    start = res.LastEvaluatedKey
  until start == nil
  return items
end

-- Every update a session reports as done is in its player's item once; an update that ended
-- OutcomeUnknown may or may not be there, and nothing else is.
local function check_exactly_once(items, reports)
  local ok, unknown = {}, {}
  for _, r in ipairs(reports) do
    assert.equal("table", type(r), "a report is not JSON: " .. tostring(r))
    for pk, per in pairs(r.by or {}) do
      for who, n in pairs(per) do ok[pk .. " " .. who] = n end
    end
    for pk, per in pairs(r.unknown_by or {}) do
      for who, n in pairs(per) do unknown[pk .. " " .. who] = n end
    end
  end
  local landed = 0
  for pk, item in pairs(items) do
    local sum = 0
    for who, n in pairs(item.by) do
      sum = sum + n
      local want, maybe = ok[pk .. " " .. who] or 0, unknown[pk .. " " .. who] or 0
      assert(n >= want and n <= want + maybe, ("%s: %s's updates landed %d times, it " ..
        "reported %d done and %d unknown"):format(pk, who, n, want, maybe))
      ok[pk .. " " .. who] = nil
    end
    assert.equal(sum, item.score, pk .. ": score and per-session counts disagree")
    assert.equal(sum, item.version, pk .. ": one version per update")
    landed = landed + sum
  end
  assert.same({}, ok, "updates reported done but missing from the items")
  return landed
end

describe("the game-server host", function()
  setup(function()
    local code, out = sh("make -s -C " .. DIR)
    assert(code == 0, "building the host failed:\n" .. out)
  end)

  it("links the ddb core statically: require finds it with package.cpath empty", function()
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
      local core = require "ddb.core"
      assert(package.cpath == "", "the host left a cpath")
      assert(package.loaded["ddb.core"] == core)
      local ddb = require "ddb"
      local json = ddb.encode_json(ddb.marshal_item{ n = ddb.number("0.1") })
      return { tick = function() return true end,
               report = function() return core._VERSION .. " " .. json, 0 end }
    ]])
    f:close()
    local reports, summary, code, out = run_host(HOST, script, nil, { threads = 3 })
    os.remove(script)
    assert.equal(0, code, out)
    assert.equal(3, #reports)
    for _, r in ipairs(reports) do assert.equal('0.1.0 {"n":{"N":"0.1"}}', r) end
    assert.equal(3, summary.threads)
  end)

  for _, server in ipairs(helper.servers()) do
    describe("on " .. server.name, function()
      local client

      setup(function()
        client = helper.client(server)
      end)

      before_each(function()
        helper.reset(server)
      end)

      it("applies every update exactly once: 4 threads x 3 sessions racing on 5 players",
        function()
          local tbl = helper.table_name("game")
          helper.create_table(client, tbl)
          local params = { threads = 4, tasks = 3, updates = 10, players = 5, table = tbl }
          local reports, summary, code, out = run_host(HOST, DIR .. "/game.lua", server, params)
          assert.equal(0, code, out)
          assert.equal(4, #reports)
          local conflicts = 0
          for _, r in ipairs(reports) do
            assert.same({}, r.errors)
            assert.equal(0, r.failed)
            assert.equal(0, r.unknown)
            assert.equal(30, r.ok)
            conflicts = conflicts + r.conflicts
          end
          assert.equal(120, summary.updates)
          assert.equal(120, check_exactly_once(scan_all(client, tbl), reports))
          -- the sessions did race: otherwise this proves nothing about conflicts
          assert.is_true(conflicts > 0)
          print(("  %s: game server, 4 threads x 3 sessions, 120 updates on 5 players: " ..
            "%.0f updates/s, %d conflicts"):format(server.name, summary.updates_per_s, conflicts))
        end)

      it("never doubles an update when answers to writes are lost", function()
        local tbl = helper.table_name("game")
        helper.create_table(client, tbl)
        helper.faults(server, { { kind = "drop_after_forward", op = "UpdateItem",
          probability = 0.15 } })
        local params = { threads = 3, tasks = 2, updates = 10, players = 4, table = tbl }
        local reports, _, code, out = run_host(HOST, DIR .. "/game.lua", server, params)
        local fired = helper.stats(server).faults_fired.drop_after_forward or 0
        helper.reset(server)
        assert.equal(0, code, out)
        local done, unknown = 0, 0
        for _, r in ipairs(reports) do
          assert.equal(0, r.failed, table.concat(r.errors, "\n"))
          done, unknown = done + r.ok, unknown + r.unknown
        end
        assert.equal(60, done + unknown)
        local landed = check_exactly_once(scan_all(client, tbl), reports)
        assert.is_true(landed >= done and landed <= done + unknown)
        assert.is_true(fired > 0, "no answer was dropped")
        print(("  %s: game server with %d write answers dropped: %d updates done exactly " ..
          "once, %d OutcomeUnknown"):format(server.name, fired, done, unknown))
      end)
    end)
  end

  it("shows no data race under ThreadSanitizer (8 threads, one state each)", function()
    local code, out = sh("make -s -C " .. DIR .. " tsan")
    if code ~= 0 then
      pending("cannot build with -fsanitize=thread here: " .. out)
      return
    end
    local server = helper.servers()[2]
    local client = helper.client(server)
    local tbl = helper.table_name("game")
    helper.create_table(client, tbl)
    local params = { threads = 8, tasks = 2, updates = 5, players = 4, table = tbl }
    local reports, summary, rc, output = run_host(HOST_TSAN, DIR .. "/game.lua", server, params)
    assert.is_nil(output:find("ThreadSanitizer", 1, true), output)
    assert.equal(0, rc, output)
    assert.equal(8, #reports)
    assert.equal(80, summary.updates)
    assert.equal(80, check_exactly_once(scan_all(client, tbl), reports))
  end)
end)
