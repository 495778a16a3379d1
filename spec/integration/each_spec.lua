-- store:with_each against both local servers: many independent read-modify-writes at once
-- as tasks of a ddb.scheduler (one Lua state, many calls in flight), each with its own
-- outcome, beside the same calls one after another with with_item.
local helper = require "helper"
local optimistic = require "ddb.optimistic"
local scheduler = require "ddb.scheduler"
local ddb = require "ddb"

local monotonic_ms = ddb.core.monotonic_ms

local function say(fmt, ...)
  io.stdout:write("\n    ", fmt:format(...))
  io.stdout:flush()
end

local function incr(item)
  item = item or {}
  item.n = (item.n or 0) + 1
  return item
end

for _, server in ipairs(helper.servers()) do
  describe("with_each on " .. server.name, function()
    local client, tbl

    setup(function()
      client = helper.client(server)
      tbl = helper.table_name("each")
      helper.create_table(client, tbl)
    end)

    before_each(function() helper.reset(server) end)

    local function keys(prefix, n)
      local out = {}
      for i = 1, n do out[i] = { pk = prefix .. i } end
      return out
    end

    it("runs its calls as tasks of the store's scheduler, each exactly once", function()
      local sched = scheduler.new()
      local store = assert(optimistic.new{ table = tbl, key = { "pk" },
        client = helper.client(server, { transport = sched:transport() }) })
      local n = 200
      local t0 = monotonic_ms()
      local results, err, info = store:with_each(keys("s", n), incr, { concurrency = 16 })
      local each_ms = monotonic_ms() - t0
      sched:close()
      assert.is_nil(err)
      assert.equal("ddb.scheduler", info.runner)
      assert.equal(n, info.ok)
      for i = 1, n do assert.equal(1, results[i].item.n) end
      -- the same calls one after another
      local loop = assert(optimistic.new{ table = tbl, client = client, key = { "pk" } })
      t0 = monotonic_ms()
      for i = 1, n do assert(loop:with_item({ pk = "l" .. i }, incr)) end
      local loop_ms = monotonic_ms() - t0
      say("%s: %d keys, with_each on the scheduler (16 at once) %.0f ms; with_item in a loop " ..
        "%.0f ms", server.name, n, each_ms, loop_ms)
      local got = assert(client:get_item{ TableName = tbl, Key = { pk = { S = "s" .. n } },
        ConsistentRead = true })
      assert.equal("1", got.Item.n.N)
    end)

    it("overlaps the round trips of a network further away (every answer 20 ms late)",
      function()
        helper.faults(server, { { kind = "delay_ms", ms = 20 } })
        local sched = scheduler.new()
        local store = assert(optimistic.new{ table = tbl, key = { "pk" },
          client = helper.client(server, { transport = sched:transport() }) })
        local n = 50
        local t0 = monotonic_ms()
        local _, _, info = store:with_each(keys("d", n), incr, { concurrency = 16 })
        local each_ms = monotonic_ms() - t0
        sched:close()
        assert.equal(n, info.ok)
        local loop = assert(optimistic.new{ table = tbl, client = client, key = { "pk" } })
        t0 = monotonic_ms()
        for i = 1, n do assert(loop:with_item({ pk = "dl" .. i }, incr)) end
        local loop_ms = monotonic_ms() - t0
        say("%s, 20 ms per request: %d keys, with_each (16 at once) %.0f ms; with_item in a " ..
          "loop %.0f ms", server.name, n, each_ms, loop_ms)
        helper.settle(server, "UpdateItem")
      end)

    it("gives each key its outcome under one deadline, with faults", function()
      local sched = scheduler.new()
      local store = assert(optimistic.new{ table = tbl, key = { "pk" },
        client = helper.client(server, { transport = sched:transport(), max_attempts = 1 }) })
      helper.faults(server, { { kind = "status_500", op = "GetItem", probability = 0.2 } })
      local results, _, info = store:with_each(keys("f", 60), incr, { deadline_ms = 10000 })
      sched:close()
      assert.equal(60, info.ok + info.failed + info.unknown)
      assert.is_true(info.failed > 0 and info.ok > 0)
      for i = 1, 60 do
        local r = results[i]
        if r.err then
          assert.equal("InternalServerError", r.err.code)
          assert.equal("no", r.err.applied)
        else
          assert.equal(1, r.item.n)
        end
      end
    end)

    it("runs inside a task of the scheduler too, as sub-tasks", function()
      local sched = scheduler.new()
      local store = assert(optimistic.new{ table = tbl, key = { "pk" },
        client = helper.client(server, { transport = sched:transport() }) })
      local out
      sched:spawn(function()
        out = { store:with_each(keys("t", 20), incr) }
      end)
      sched:run()
      sched:close()
      assert.equal(20, out[3].ok)
      assert.equal("ddb.scheduler", out[3].runner)
    end)
  end)
end
