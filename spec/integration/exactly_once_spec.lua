-- The exactly-once promise against both local servers, in the schedules that broke 0.1.0
-- (issue #14, failures 1-9): answers lost around a delete and a re-create, versions other
-- SDKs write, reads that fail, hot items under every fault kind, tight loops. Each schedule
-- is made exactly: the test proxy loses one answer, and the client's on_event hook lets
-- another writer act at the moment the answer is lost, before the item is read again.
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local transact = require "ddb.transact"
local helper = require "helper"

local core = ddb.core

local function raw_item(client, tbl, pk)
  local res = assert(client:get_item{ TableName = tbl, Key = { pk = { S = pk } },
    ConsistentRead = true })
  return res.Item
end

local function say(fmt, ...)
  io.stdout:write("\n    ", fmt:format(...))
  io.stdout:flush()
end

local function incr(item)
  item = item or {}
  item.n = (item.n or 0) + 1
  return item
end

-- A store whose client lets `act` run once, when an answer to op is lost (the proxy's fault
-- fires), before with_item reads the item again. One attempt per request, so the client
-- does not retry the write itself.
local function store_with_hook(server, tbl, op, act, opts)
  local armed = true
  local c = helper.client(server, { max_attempts = 1, on_event = function(ev)
    if armed and ev.op == op and ev.code then
      armed = false
      act()
    end
  end })
  local o = { table = tbl, client = c }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(optimistic.new(o))
end

for _, server in ipairs(helper.servers()) do
  describe("exactly once on " .. server.name, function()
    local client, tbl, store, other

    setup(function()
      client = helper.client(server)
      tbl = helper.table_name("once")
      helper.create_table(client, tbl)
      store = assert(optimistic.new{ table = tbl, client = client })
      other = assert(optimistic.new{ table = tbl, client = helper.client(server) })
    end)

    before_each(function()
      helper.reset(server)
    end)

    describe("answers lost around a delete and a re-create (#14.1-3)", function()
      it("never sends a lost update again onto the item created anew (#14.1)", function()
        assert(store:with_item({ pk = "f1" }, function() return { n = 5 } end))
        -- the update never reaches the server; meanwhile another writer deletes the item
        -- and creates it again at version 1, as 0.1.0 read it
        local s1 = store_with_hook(server, tbl, "UpdateItem", function()
          assert(client:delete_item{ TableName = tbl, Key = { pk = { S = "f1" } } })
          assert(client:put_item{ TableName = tbl, Item = ddb.marshal_item{ pk = "f1",
            n = 1000, version = 1 } })
        end)
        helper.faults(server, { { kind = "status_500", op = "UpdateItem", count = 1 } })
        local item, err = s1:with_item({ pk = "f1" }, incr)
        assert.is_nil(item)
        assert.equal("OutcomeUnknown", err.code)
        assert.equal("maybe", err.applied)
        -- 0.1.0 sent the write again, and it landed: n became 6
        assert.equal("1000", raw_item(client, tbl, "f1").n.N)
      end)

      for _, again in ipairs({ false, true }) do
        it("never runs a lost create again after the item was deleted and created anew" ..
          (again and " and written once more" or "") .. " (#14.2)", function()
          local runs = 0
          local s1 = store_with_hook(server, tbl, "UpdateItem", function()
            -- the create landed; another writer deletes it and creates the item again
            assert(client:delete_item{ TableName = tbl, Key = { pk = { S = "f2" .. tostring(again) } } })
            assert(other:with_item({ pk = "f2" .. tostring(again) }, function()
              return { n = 100 }
            end))
            if again then assert(other:with_item({ pk = "f2" .. tostring(again) }, incr)) end
          end)
          helper.faults(server, { { kind = "drop_after_forward", op = "UpdateItem", count = 1 } })
          local item, err = s1:with_item({ pk = "f2" .. tostring(again) }, function(it)
            runs = runs + 1
            return incr(it)
          end)
          -- 0.1.0 took the other writer's token for proof that the create never landed, ran
          -- the function again and succeeded: the change applied twice
          assert.is_nil(item)
          assert.equal("OutcomeUnknown", err.code)
          assert.equal(1, runs)
          assert.equal(again and "101" or "100", raw_item(client, tbl, "f2" .. tostring(again)).n.N)
        end)
      end

      it("never deletes the item another writer created after a lost delete (#14.3)", function()
        assert(store:with_item({ pk = "f3" }, function() return { n = 1 } end))
        local s1 = store_with_hook(server, tbl, "DeleteItem", function()
          -- the delete landed; another writer creates the item and writes it once
          assert(other:with_item({ pk = "f3" }, function() return { n = 7 } end))
          assert(other:with_item({ pk = "f3" }, incr))
        end)
        helper.faults(server, { { kind = "drop_after_forward", op = "DeleteItem", count = 1 } })
        local item, err = s1:with_item({ pk = "f3" }, function() return optimistic.DELETE end)
        assert.is_nil(item)
        assert.equal("OutcomeUnknown", err.code)
        -- 0.1.0 judged the delete refuted, ran the function again and deleted this item
        assert.equal("8", raw_item(client, tbl, "f3").n.N)
      end)

      if server.transactions then
        it("never applies a lost commit twice after its items were created anew (#14.4)",
          function()
            assert(store:with_item({ pk = "f4a" }, function() return { n = 10 } end))
            assert(store:with_item({ pk = "f4b" }, function() return { n = 10 } end))
            local runs = 0
            local c = helper.client(server, { max_attempts = 1, on_event = function(ev)
              if runs == 1 and ev.op == "TransactWriteItems" and ev.code then
                runs = runs + 0.5
                -- the commit landed; another writer deletes both items and creates them again
                for _, pk in ipairs({ "f4a", "f4b" }) do
                  assert(client:delete_item{ TableName = tbl, Key = { pk = { S = pk } } })
                  assert(other:with_item({ pk = pk }, function() return { n = 10 } end))
                end
              end
            end })
            local s1 = assert(optimistic.new{ table = tbl, client = c })
            helper.faults(server, { { kind = "drop_after_forward", op = "TransactWriteItems",
              count = 1 } })
            local items, err = transact.with_items(s1, { a = { pk = "f4a" }, b = { pk = "f4b" } },
              function(it)
                runs = runs + 1
                it.a.n, it.b.n = it.a.n - 1, it.b.n + 1
                return it
              end)
            assert.is_nil(items)
            assert.equal("OutcomeUnknown", err.code)
            assert.equal(1.5, runs)
            assert.equal("10", raw_item(client, tbl, "f4a").n.N)
            assert.equal("10", raw_item(client, tbl, "f4b").n.N)
          end)
      end
    end)

    describe("versions as other SDKs write them (#14.5-6)", function()
      it("updates an item stored at version 0, as .NET and the Java SDK v2 create them (#14.5)",
        function()
          assert(client:put_item{ TableName = tbl, Item = ddb.marshal_item{ pk = "v0", n = 1,
            version = 0 } })
          local item, err, info = store:with_item({ pk = "v0" }, incr)
          assert.truthy(item, tostring(err))
          assert.equal(1, item.version)
          assert.equal(2, item.n)
          assert.equal(0, info.conflicts)
          -- and creates at 0 when told to, then steps from there
          local net = assert(optimistic.new{ table = tbl, client = client, version_start = 0 })
          assert.equal(0, assert(net:with_item({ pk = "v0new" }, incr)).version)
          assert.equal(1, assert(net:with_item({ pk = "v0new" }, incr)).version)
        end)

      for _, case in ipairs({
        { stored = "100000000000000000000", want = "100000000000000000002" },
        { stored = "9223372036854775807", want = "9223372036854775809" },
        { stored = "9007199254740992", want = "9007199254740994" },
      }) do
        for _, tokens in ipairs({ 0, 8 }) do
          it(("steps a stored version %s exactly, twice, tokens %d (#14.6)"):format(case.stored,
            tokens),
            function()
              local pk = "big" .. case.stored .. "-" .. tokens
              assert(client:put_item{ TableName = tbl, Item = { pk = { S = pk },
                n = { N = "1" }, version = { N = case.stored } } })
              local s = assert(optimistic.new{ table = tbl, client = client, tokens = tokens })
              for i = 1, 2 do
                local item, err, info = s:with_item({ pk = pk }, incr)
                assert.truthy(item, tostring(err))
                assert.equal(0, info.conflicts)
                assert.equal(1 + i, item.n)
              end
              assert.equal(case.want, raw_item(client, tbl, pk).version.N)
            end)
        end
      end

      it("refuses a version it cannot step exactly, writing nothing", function()
        assert(client:put_item{ TableName = tbl, Item = { pk = { S = "v38" }, n = { N = "1" },
          version = { N = ("9"):rep(38) } } })
        local item, err = store:with_item({ pk = "v38" }, incr)
        assert.is_nil(item)
        assert.equal("ValidationError", err.code)
        assert.equal("no", err.applied)
        assert.equal("1", raw_item(client, tbl, "v38").n.N)
      end)
    end)

    describe("failures that wrote nothing say so (#14.7)", function()
      local function fails_with(kind, code, extra)
        local o = { max_attempts = 2, retry = { base_ms = 1 } }
        for k, v in pairs(extra or {}) do o[k] = v end
        local s = assert(optimistic.new{ table = tbl, client = helper.client(server, o),
          deadline_ms = o.deadline_ms })
        helper.reset(server)
        helper.faults(server, { kind, })
        local item, err = s:with_item({ pk = "reads" }, incr)
        assert.is_nil(item)
        assert.equal(code, err.code)
        assert.equal("no", err.applied, tostring(err))
        assert.equal(0, helper.requests(helper.stats(server), "UpdateItem"))
        if kind.kind == "delay_ms" then helper.settle(server, "GetItem") end
      end

      it("after every read failed: InternalServerError, applied 'no'", function()
        fails_with({ kind = "status_500", op = "GetItem" }, "InternalServerError")
      end)
      it("after reads that never answered: Timeout, applied 'no'", function()
        fails_with({ kind = "delay_ms", op = "GetItem", ms = 300 }, "Timeout",
          { timeout_ms = 100 })
      end)
      it("after reads cut off: NetworkError, applied 'no'", function()
        fails_with({ kind = "reset_before_forward", op = "GetItem" }, "NetworkError")
      end)
      it("when the deadline passed while reading: DeadlineExceeded, applied 'no'", function()
        fails_with({ kind = "delay_ms", op = "GetItem", ms = 600 }, "DeadlineExceeded",
          { deadline_ms = 250, max_attempts = 5 })
      end)
    end)

    describe("hot items", function()
      it("settles almost every lost answer: 8 processes, 3% of nine fault kinds each (#14.8)",
        function()
          -- 480 calls: enough that the share of OutcomeUnknown is a measurement, not luck;
          -- attempts time out at 1 s and the held answers come at 1.4 s, so a loaded machine
          -- adds few timeouts of its own to the ones injected
          local pk, procs, per = "hot", 8, 60
          local kinds = { "reset_before_forward", "drop_after_forward", "status_500",
            "status_503", "throttle", "delay_ms", "truncate_after_forward",
            "bad_crc_after_forward", "not_json_after_forward" }
          local faults = {}
          for i, kind in ipairs(kinds) do
            faults[i] = { kind = kind, probability = 0.03, ms = kind == "delay_ms" and 1400 or nil }
          end
          helper.control(server, { seed = 14 })
          helper.faults(server, faults)
          local cmds = {}
          for i = 1, procs do
            cmds[i] = io.popen(helper.lua_command("spec/support/workers/soak_counter.lua",
              server.url, tbl, pk, per, 1000, 6000) .. " 2>/dev/null")
          end
          local s, u, failures = 0, 0, 0
          for i = 1, procs do
            local line = cmds[i]:read("*a"):match("soak [^\n]*")
            cmds[i]:close()
            assert.truthy(line)
            s = s + tonumber(line:match("ok=(%d+)"))
            u = u + tonumber(line:match("unknown=(%d+)"))
            failures = failures + tonumber(line:match("failed=(%d+)"))
            assert.equal("0", line:match("bad=(%d+)"), line)
            assert.equal("0", line:match("overrun=(%d+)"), line)
          end
          helper.reset(server)
          core.sleep_ms(2000)    -- a held copy may still land (or fail)
          local stored = tonumber(raw_item(client, tbl, pk).n.N)
          say("%s: %d calls, %d successes, %d OutcomeUnknown, %d other failures, stored %d",
            server.name, procs * per, s, u, failures, stored)
          assert.is_true(stored >= s and stored <= s + u)
          -- 0.1.0 left 5% of such calls OutcomeUnknown (42 of 800); now 0-0.6% even beside
          -- two CPU-bound processes
          assert.is_true(u <= 0.02 * procs * per, ("%d OutcomeUnknown"):format(u))
        end)

      it("starves no writer: 4 processes in tight loops, default settings (#14.9)", function()
        local pk, procs, per = "tight", 4, 150
        local cmds = {}
        for i = 1, procs do
          cmds[i] = io.popen(helper.lua_command("spec/support/workers/increment.lua",
            server.url, tbl, pk, per, "n", "defaults") .. " 2>&1")
        end
        local total = 0
        for i = 1, procs do
          local out = cmds[i]:read("*a")
          cmds[i]:close()
          local ok_n, failed, unknown = out:match("done (%d+) (%d+) (%d+)")
          assert.truthy(ok_n, out)
          -- 0.1.0 gave 1-1.5% of such calls ConflictsExhausted after 10 conflicts
          assert.equal("0", failed, out)
          assert.equal("0", unknown, out)
          total = total + tonumber(ok_n)
        end
        assert.equal(procs * per, total)
        assert.equal(tostring(total), raw_item(client, tbl, pk).n.N)
      end)
    end)
  end)
end
