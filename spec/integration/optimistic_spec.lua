-- ddb.optimistic against both local DynamoDB servers: every outcome of with_item, lost
-- updates under real concurrency, and writes whose answer is lost on the way back.
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local helper = require "helper"

local function raw_item(client, tbl, pk)
  local res = assert(client:get_item{ TableName = tbl, Key = { pk = { S = pk } },
    ConsistentRead = true })
  return res.Item
end

local function incr(field)
  return function(item)
    item = item or {}
    item[field or "n"] = (item[field or "n"] or 0) + 1
    return item
  end
end

for _, server in ipairs(helper.servers()) do
  describe("with_item on " .. server.name, function()
    local client, tbl, store

    setup(function()
      client = helper.client(server)
      tbl = helper.table_name("opt")
      helper.create_table(client, tbl)
      store = assert(optimistic.new{ table = tbl, client = client })
    end)

    before_each(function()
      helper.reset(server)
    end)

    describe("creating", function()
      it("creates an absent item at version 1 with a write token", function()
        local item, _, info = store:with_item({ pk = "create" }, function(it)
          assert.is_nil(it)
          return { pk = "create", balance = 10 }
        end)
        assert.are.same({ pk = "create", balance = 10, version = 1 }, item)
        assert.equal("create", info.action)
        assert.is_true(info.written)
        local raw = raw_item(client, tbl, "create")
        assert.equal("1", raw.version.N)
        assert.truthy(raw._ddb_tokens.S:match("^2 [%w%-_]+$"), raw._ddb_tokens.S)
      end)

      it("fills in the key when the function returns an item without it", function()
        local item = assert(store:with_item({ pk = "nokey" }, function() return { a = 1 } end))
        assert.equal("nokey", item.pk)
      end)

      it("loses neither create when two callers race to create", function()
        local runs = 0
        local item, _, info = store:with_item({ pk = "race-create" }, function(it)
          runs = runs + 1
          if runs == 1 then
            -- another writer creates the item between our read and our write
            assert(store:with_item({ pk = "race-create" }, incr("n")))
          end
          return incr("n")(it)
        end)
        assert.equal(2, item.n)
        assert.equal(2, item.version)
        assert.equal(1, info.conflicts)
        assert.equal(2, info.attempts)
      end)
    end)

    describe("updating", function()
      it("increments the version by one per write", function()
        for i = 1, 3 do
          local item = assert(store:with_item({ pk = "versions" }, incr("n")))
          assert.equal(i, item.version)
          assert.equal(i, item.n)
        end
      end)

      it("re-runs the function on fresh data after a conflict", function()
        assert(store:with_item({ pk = "conflict" }, incr("n")))
        local seen = {}
        local item, _, info = store:with_item({ pk = "conflict" }, function(it)
          seen[#seen + 1] = it.n
          if #seen == 1 then assert(store:with_item({ pk = "conflict" }, incr("n"))) end
          return incr("n")(it)
        end)
        assert.same({ 1, 2 }, seen)
        assert.equal(3, item.n)
        assert.equal(1, info.conflicts)
      end)

      it("sends only what changed, keeping attributes other writers manage", function()
        assert(store:with_item({ pk = "partial" }, function() return { pk = "partial", a = 1 } end))
        -- a writer that does not use versions (an ADD counter) works alongside
        local item = assert(store:with_item({ pk = "partial" }, function(it)
          assert(client:update_item{ TableName = tbl, Key = { pk = { S = "partial" } },
            UpdateExpression = "ADD hits :one",
            ExpressionAttributeValues = { [":one"] = { N = "1" } } })
          it.a = 2
          return it
        end))
        assert.equal(2, item.a)
        assert.equal(1, item.hits)
        assert.equal(2, item.version)
      end)

      it("returns the item as written with returns = 'written' (no second copy read)", function()
        local w = assert(optimistic.new{ table = tbl, client = client, key = { "pk" },
          returns = "written" })
        assert(w:with_item({ pk = "written" }, function()
          return { pk = "written", a = 1, doc = { deep = { 1, 2, "three" } } }
        end))
        local item = assert(w:with_item({ pk = "written" }, function(it)
          -- another writer that keeps no version: the item as written does not show it
          assert(client:update_item{ TableName = tbl, Key = { pk = { S = "written" } },
            UpdateExpression = "ADD hits :one",
            ExpressionAttributeValues = { [":one"] = { N = "1" } } })
          it.a = 2
          return it
        end))
        assert.same({ pk = "written", a = 2, version = 2, doc = { deep = { 1, 2, "three" } } },
          item)
        local stored = assert(store:get({ pk = "written" }))
        assert.equal(1, stored.hits)
        stored.hits = nil
        assert.same(item, stored)
        assert.has_error(function()
          optimistic.new{ table = tbl, client = client, key = { "pk" }, returns = "all" }
        end)
      end)

      it("removes attributes the function removed", function()
        assert(store:with_item({ pk = "remove" }, function() return { x = 1, y = 2 } end))
        local item = assert(store:with_item({ pk = "remove" }, function(it)
          it.y = nil
          return it
        end))
        assert.is_nil(item.y)
        assert.is_nil(raw_item(client, tbl, "remove").y)
      end)

      it("counts an existing item without a version attribute as version 0", function()
        assert(client:put_item{ TableName = tbl, Item = ddb.marshal_item{ pk = "legacy", n = 5 } })
        local item = assert(store:with_item({ pk = "legacy" }, function(it)
          assert.is_nil(it.version)
          return incr("n")(it)
        end))
        assert.equal(6, item.n)
        assert.equal(1, item.version)
      end)

      it("writes the whole item in put mode", function()
        local put = assert(optimistic.new{ table = tbl, client = client, mode = "put" })
        assert(put:with_item({ pk = "put" }, function() return { a = 1, b = 2 } end))
        local item = assert(put:with_item({ pk = "put" }, function(it)
          it.b = nil
          it.a = 3
          return it
        end))
        assert.same({ pk = "put", a = 3, version = 2 }, item)
        assert.is_nil(raw_item(client, tbl, "put").b)
      end)
    end)

    describe("writing nothing", function()
      it("writes nothing when the function returns the item unchanged", function()
        assert(store:with_item({ pk = "same" }, function() return { a = 1 } end))
        local item, _, info = store:with_item({ pk = "same" }, function(it) return it end)
        assert.equal(1, item.version)
        assert.equal("none", info.action)
        assert.is_false(info.written)
        assert.equal(1, info.requests)
      end)

      it("writes nothing for optimistic.NOTHING", function()
        local item, _, info = store:with_item({ pk = "nothing" }, function()
          return optimistic.NOTHING
        end)
        assert.equal(ddb.null, item)
        assert.is_false(info.written)
        assert.is_nil(raw_item(client, tbl, "nothing"))
      end)

      it("treats numbers that differ only in their text as unchanged", function()
        assert(store:with_item({ pk = "numtext" }, function() return { price = 2.5 } end))
        local _, _, info = store:with_item({ pk = "numtext" }, function(it)
          it.price = ddb.number("2.50")
          return it
        end)
        assert.is_false(info.written)
      end)
    end)

    describe("deleting", function()
      it("deletes the item for optimistic.DELETE", function()
        assert(store:with_item({ pk = "del" }, incr("n")))
        local item, _, info = store:with_item({ pk = "del" }, function() return optimistic.DELETE end)
        assert.equal(ddb.null, item)
        assert.equal("delete", info.action)
        assert.is_nil(raw_item(client, tbl, "del"))
      end)

      it("re-runs a delete when the item changed after it was read", function()
        assert(store:with_item({ pk = "delrace" }, incr("n")))
        local seen = {}
        store:with_item({ pk = "delrace" }, function(it)
          seen[#seen + 1] = it.n
          if #seen == 1 then
            assert(store:with_item({ pk = "delrace" }, incr("n")))
            return optimistic.DELETE
          end
          return optimistic.NOTHING   -- seeing n == 2, the caller changes its mind
        end)
        assert.same({ 1, 2 }, seen)
        assert.equal("2", raw_item(client, tbl, "delrace").n.N)
      end)

      it("does nothing when asked to delete an absent item", function()
        local item, _, info = store:with_item({ pk = "delabsent" }, function()
          return optimistic.DELETE
        end)
        assert.equal(ddb.null, item)
        assert.is_false(info.written)
      end)
    end)

    describe("refusing bad results", function()
      local function refused(pk, fn, pattern)
        local before = raw_item(client, tbl, pk)
        local item, err = store:with_item({ pk = pk }, fn)
        assert.is_nil(item)
        assert.equal("ValidationError", err.code)
        assert.truthy(tostring(err):find(pattern, 1, true), tostring(err))
        assert.are.same(before, raw_item(client, tbl, pk))
      end

      it("refuses a function that changes the key, writing nothing", function()
        assert(store:with_item({ pk = "k1" }, incr("n")))
        refused("k1", function(it) it.pk = "k2"; return it end, "changed key attribute 'pk'")
        assert.is_nil(raw_item(client, tbl, "k2"))
      end)

      it("refuses a forged version, writing nothing", function()
        assert(store:with_item({ pk = "forge" }, incr("n")))
        refused("forge", function(it) it.version = 99; return it end, "changed the version")
      end)

      it("refuses a nil result instead of guessing", function()
        refused("nilres", function() end, "returned nil")
      end)

      it("refuses values DynamoDB cannot store, naming the attribute", function()
        refused("badval", function() return { f = print } end, "f: a function")
      end)

      it("writes an update past DynamoDB's 4 KB expressions as a whole-item put", function()
        -- the test proxy refuses what DynamoDB refuses (moto and dynalite take it)
        local names, values, parts = {}, {}, {}
        for i = 1, 300 do
          names["#a" .. i], values[":v" .. i] = "attr" .. i, { N = tostring(i) }
          parts[i] = "#a" .. i .. " = :v" .. i
        end
        local _, err = client:update_item{ TableName = tbl, Key = { pk = { S = "wide0" } },
          UpdateExpression = "SET " .. table.concat(parts, ", "),
          ExpressionAttributeNames = names, ExpressionAttributeValues = values }
        assert.equal("ValidationException", err.code)
        assert.matches("Expression size has exceeded", err.message, 1, true)

        assert(store:with_item({ pk = "wide" }, function() return { n = 1 } end))
        local before = helper.stats(server)
        local item, werr, info = store:with_item({ pk = "wide" }, function(it)
          for i = 1, 300 do it["attr" .. i] = i end
          return it
        end)
        assert.truthy(item, tostring(werr))
        assert.equal("update", info.action)
        assert.equal(300, item.attr300)
        local after = helper.stats(server)
        assert.equal(helper.requests(before, "UpdateItem"), helper.requests(after, "UpdateItem"))
        assert.equal(helper.requests(before, "PutItem") + 1, helper.requests(after, "PutItem"))
        assert.equal("300", raw_item(client, tbl, "wide").attr300.N)
      end)

      it("refuses an item over 400 KB before sending it", function()
        local before = helper.stats(server).requests.UpdateItem or 0
        local item, err = store:with_item({ pk = "big" }, function()
          return { blob = ("x"):rep(410 * 1024) }
        end)
        assert.is_nil(item)
        assert.equal("ItemTooLarge", err.code)
        assert.equal(before, helper.stats(server).requests.UpdateItem or 0)
      end)

      it("refuses a key with the wrong attributes", function()
        local item, err = store:with_item({ id = "x" }, incr("n"))
        assert.is_nil(item)
        assert.equal("ValidationError", err.code)
        item, err = store:with_item({ pk = { nested = true } }, incr("n"))
        assert.is_nil(item)
        assert.equal("ValidationError", err.code)
      end)

      it("raises for arguments of the wrong type", function()
        assert.has_error(function() store:with_item("pk", incr("n")) end)
        assert.has_error(function() store:with_item({ pk = "x" }, "fn") end)
      end)
    end)

    describe("a function that raises", function()
      it("writes nothing, retries nothing, and passes the original error on", function()
        local marker = setmetatable({}, { __tostring = function() return "marker" end })
        local runs = 0
        local ok, err = pcall(store.with_item, store, { pk = "raise" }, function()
          runs = runs + 1
          error(marker)
        end)
        assert.is_false(ok)
        assert.equal(marker, err)
        assert.equal(1, runs)
        assert.is_nil(raw_item(client, tbl, "raise"))
      end)
    end)

    describe("bounds", function()
      it("gives up after max_attempts runs when every write conflicts", function()
        assert(store:with_item({ pk = "hot" }, incr("n")))
        local runs = 0
        local item, err = store:with_item({ pk = "hot" }, function(it)
          runs = runs + 1
          assert(store:with_item({ pk = "hot" }, incr("other")))
          return incr("n")(it)
        end, { max_attempts = 3 })
        assert.is_nil(item)
        assert.equal("ConflictsExhausted", err.code)
        assert.equal("no", err.applied)
        assert.equal(3, runs)
        assert.equal("1", raw_item(client, tbl, "hot").n.N)
      end)

      it("stops at the call's deadline", function()
        assert(store:with_item({ pk = "slow" }, incr("n")))
        helper.faults(server, { { kind = "delay_ms", op = "GetItem", ms = 600 } })
        local t0 = ddb.core.monotonic_ms()
        local item, err = store:with_item({ pk = "slow" }, incr("n"), { deadline_ms = 300 })
        local elapsed = ddb.core.monotonic_ms() - t0
        assert.is_nil(item)
        assert.equal("DeadlineExceeded", err.code)
        assert.is_true(elapsed >= 290 and elapsed < 300 + 250, "elapsed " .. elapsed)
        helper.settle(server, "GetItem")
        helper.reset(server)
        assert.equal("1", raw_item(client, tbl, "slow").n.N)
      end)

      it("never reports a write that may have landed as a plain failure", function()
        assert(store:with_item({ pk = "slowwrite" }, incr("n")))
        helper.faults(server, { { kind = "delay_ms", op = "UpdateItem", ms = 600 } })
        local item, err = store:with_item({ pk = "slowwrite" }, incr("n"), { deadline_ms = 300 })
        assert.is_nil(item)
        -- the write timed out in flight: it may land, so the call cannot say it failed
        assert.equal("OutcomeUnknown", err.code)
        assert.equal("maybe", err.applied)
        helper.settle(server, "UpdateItem")
      end)

      it("sends a lost write that has not landed yet again instead of re-running", function()
        local once = helper.client(server, { max_attempts = 1, timeout_ms = 300 })
        local s1 = assert(optimistic.new{ table = tbl, client = once })
        assert(s1:with_item({ pk = "resend" }, incr("n")))
        -- the first copy is held past the client's timeout, then still lands (or not)
        helper.faults(server, { { kind = "delay_ms", op = "UpdateItem", ms = 1500, count = 1 } })
        local runs = 0
        local item, err, info = s1:with_item({ pk = "resend" }, function(it)
          runs = runs + 1
          return incr("n")(it)
        end)
        assert.truthy(item, tostring(err))
        assert.equal(1, runs)
        assert.equal(1, info.resends)
        assert.equal(2, item.n)
        helper.settle(server, "UpdateItem")
        assert.equal("2", raw_item(client, tbl, "resend").n.N)
      end)

      it("calls on_conflict with the conflict count", function()
        local calls = {}
        local hooked = assert(optimistic.new{ table = tbl, client = client,
          on_conflict = function(ctx) calls[#calls + 1] = ctx.conflicts end })
        assert(hooked:with_item({ pk = "hook" }, incr("n")))
        local first = true
        assert(hooked:with_item({ pk = "hook" }, function(it)
          if first then
            first = false
            assert(store:with_item({ pk = "hook" }, incr("n")))
          end
          return incr("n")(it)
        end))
        assert.same({ 1 }, calls)
      end)
    end)

    describe("type fidelity", function()
      it("stores attributes the function did not touch exactly as they were", function()
        local original = ddb.marshal_item{
          pk = "types", s = "ü", n = ddb.number("12345678901234567890.123456789"),
          b = ddb.binary("\0\1\2"), t = true, nul = ddb.null, l = ddb.list(), m = {},
          ss = ddb.string_set{ "a", "b" }, ns = ddb.number_set{ 1, 2.5 },
          bs = ddb.binary_set{ "\255" }, deep = { list = { 1, "two", { three = 3 } } },
        }
        assert(client:put_item{ TableName = tbl, Item = original })
        assert(store:with_item({ pk = "types" }, function(it)
          it.touched = true
          return it
        end))
        local raw = raw_item(client, tbl, "types")
        for name, av in pairs(original) do
          assert.is_true(ddb.core.av_equal(av, raw[name]), name)
        end
      end)
    end)

    describe("writes whose answer is lost", function()
      local faults = { "drop_after_forward", "status_500_after_forward", "truncate_after_forward" }
      for _, kind in ipairs(faults) do
        it("applies an increment exactly once when the answer is lost (" .. kind .. ")", function()
          assert(store:with_item({ pk = "lost-" .. kind }, incr("n")))
          helper.faults(server, { { kind = kind, op = "UpdateItem", count = 1 } })
          local item, err, info = store:with_item({ pk = "lost-" .. kind }, incr("n"))
          assert.truthy(item, info and tostring(err))
          assert.equal(2, item.n)
          assert.equal("2", raw_item(client, tbl, "lost-" .. kind).n.N)
          assert.equal(1, helper.stats(server).faults_fired[kind])
        end)
      end

      it("resolves a lost answer without a transport retry by reading the token", function()
        local once = helper.client(server, { max_attempts = 1 })
        local s1 = assert(optimistic.new{ table = tbl, client = once })
        assert(s1:with_item({ pk = "lost-once" }, incr("n")))
        helper.faults(server, { { kind = "drop_after_forward", op = "UpdateItem", count = 1 } })
        local item, err = s1:with_item({ pk = "lost-once" }, incr("n"))
        assert.truthy(item, tostring(err))
        assert.equal(2, item.n)
        assert.equal("2", raw_item(client, tbl, "lost-once").n.N)
      end)

      it("answers OutcomeUnknown when a foreign writer broke the token history", function()
        local foreign = helper.client(server)
        local armed = true
        local watched = helper.client(server, {
          max_attempts = 1,
          on_event = function(ev)
            if armed and ev.op == "UpdateItem" and ev.code then
              armed = false
              -- a writer that keeps the version but not the tokens overwrites the item
              local raw = raw_item(foreign, tbl, "broken")
              raw.version = { N = tostring(tonumber(raw.version.N) + 1) }
              raw._ddb_tokens = nil
              assert(foreign:put_item{ TableName = tbl, Item = raw })
            end
          end,
        })
        local s1 = assert(optimistic.new{ table = tbl, client = watched })
        assert(s1:with_item({ pk = "broken" }, incr("n")))
        -- a 500 after the write landed: no silent resend, so the item is read again after
        -- the foreign writer was there
        helper.faults(server, { { kind = "status_500_after_forward", op = "UpdateItem",
          count = 1 } })
        local item, err = s1:with_item({ pk = "broken" }, incr("n"))
        assert.is_nil(item)
        assert.equal("OutcomeUnknown", err.code)
        assert.equal("maybe", err.applied)
      end)

      it("answers OutcomeUnknown at once when tokens are off", function()
        local once = helper.client(server, { max_attempts = 1 })
        local s0 = assert(optimistic.new{ table = tbl, client = once, tokens = 0 })
        assert(s0:with_item({ pk = "notokens" }, incr("n")))
        assert.is_nil(raw_item(client, tbl, "notokens")._ddb_tokens)
        helper.faults(server, { { kind = "drop_after_forward", op = "UpdateItem", count = 1 } })
        local item, err = s0:with_item({ pk = "notokens" }, incr("n"))
        assert.is_nil(item)
        assert.equal("OutcomeUnknown", err.code)
      end)
    end)

    describe("many processes on one hot item", function()
      it("loses no update: the stored count equals the successful calls", function()
        local procs, per = 4, 15
        local pk = "stress"
        local cmds = {}
        for i = 1, procs do
          cmds[i] = io.popen(helper.lua_command("spec/support/workers/increment.lua",
            server.url, tbl, pk, per) .. " 2>&1")
        end
        local successes = 0
        for i = 1, procs do
          local out = cmds[i]:read("*a")
          cmds[i]:close()
          local ok_n, failed, unknown = out:match("done (%d+) (%d+) (%d+)")
          assert.truthy(ok_n, out)
          assert.equal("0", failed, out)
          assert.equal("0", unknown, out)
          successes = successes + tonumber(ok_n)
        end
        assert.equal(procs * per, successes)
        assert.equal(tostring(successes), raw_item(client, tbl, pk).n.N)
      end)
    end)
  end)
end
