-- optimistic.with_items against the local servers: several items read in one snapshot and
-- committed in one transaction conditioned on every version read; conflicts, limits, lost
-- answers and many processes moving money between accounts. Transactions need moto
-- (dynalite answers UnknownOperationException: reported as pending there, never skipped).
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local transact = require "ddb.transact"
local helper = require "helper"

local with_items = transact.with_items
local core = ddb.core

local function raw_item(client, tbl, pk)
  local res = assert(client:get_item{ TableName = tbl, Key = { pk = { S = pk } },
    ConsistentRead = true })
  return res.Item
end

local function balance(client, tbl, pk)
  local raw = raw_item(client, tbl, pk)
  return raw and tonumber(raw.balance.N)
end

local function open(store, pk, amount)
  assert(store:with_item({ pk = pk }, function() return { balance = amount } end))
end

-- fn for with_items: move amount from items.from to items.to, never below zero.
local function transfer(amount)
  return function(items)
    if items.from.balance < amount then return optimistic.NOTHING end
    items.from.balance = items.from.balance - amount
    items.to.balance = items.to.balance + amount
    return items
  end
end

local function pair(a, b)
  return { from = { pk = a }, to = { pk = b } }
end

-- A transport that answers TransactWriteItems itself while answers() gives a canned
-- (status, body), and passes everything else on.
local function canned_transport(answers)
  local inner = ddb.curl_transport()
  return {
    name = "canned",
    request = function(_, url, lines, body, timeout_ms)
      for _, line in ipairs(lines) do
        if line:find("TransactWriteItems", 1, true) then
          local status, answer = answers()
          if status then
            return status, { ["content-type"] = "application/x-amz-json-1.0",
              ["x-amzn-requestid"] = "CANNED" }, answer
          end
        end
      end
      return inner:request(url, lines, body, timeout_ms)
    end,
    sleep = inner.sleep,
    close = inner.close,
  }
end

local function cancelled(reasons)
  return core.encode{ __type = "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
    Message = "Transaction cancelled", CancellationReasons = setmetatable(reasons, core.mt.list) }
end

for _, server in ipairs(helper.servers()) do
  if not server.transactions then
    describe("with_items on " .. server.name, function()
      it("answers the server's UnknownOperationException, writing nothing", function()
        local client = helper.client(server)
        local tbl = helper.table_name("tx")
        helper.create_table(client, tbl)
        local store = assert(optimistic.new{ table = tbl, client = client })
        local items, err = with_items(store, pair("a", "b"), function(it) return it end)
        assert.is_nil(items)
        assert.equal("UnknownOperationException", err.code)
        assert.equal("no", err.applied)
      end)

      it("runs transactions", function()
        pending(server.name .. " lacks TransactWriteItems: UnknownOperationException")
      end)
    end)
  else
  describe("with_items on " .. server.name, function()
    local client, tbl, tbl2, store

    setup(function()
      client = helper.client(server)
      tbl = helper.table_name("tx")
      tbl2 = helper.table_name("tx2")
      helper.create_table(client, tbl)
      helper.create_table(client, tbl2, "owner", "sk")
      store = assert(optimistic.new{ table = tbl, client = client })
    end)

    before_each(function()
      helper.reset(server)
    end)

    describe("reading and committing", function()
      it("creates absent items at version 1 in one read and one commit", function()
        local items, err, info = with_items(store, pair("c1", "c2"), function(it)
          assert.is_nil(it.from)
          assert.is_nil(it.to)
          return { from = { balance = 5 }, to = { balance = 7 } }
        end)
        assert.truthy(items, tostring(err))
        assert.same({ pk = "c1", balance = 5, version = 1 }, items.from)
        assert.same({ pk = "c2", balance = 7, version = 1 }, items.to)
        assert.same({ from = "create", to = "create" }, info.actions)
        assert.equal(2, info.requests)
        local st = helper.stats(server)
        assert.equal(1, helper.requests(st, "TransactGetItems"))
        assert.equal(1, helper.requests(st, "TransactWriteItems"))
        local t1 = raw_item(client, tbl, "c1")._ddb_tokens.S
        local t2 = raw_item(client, tbl, "c2")._ddb_tokens.S
        assert.truthy(t1:match("^2 [%w%-_]+$"), t1)
        assert.equal(t1, t2)   -- one commit, one token in every item it wrote
      end)

      it("moves an amount between two items, each at version + 1 with its tokens kept", function()
        open(store, "m1", 100)
        open(store, "m2", 0)
        local before = raw_item(client, tbl, "m1")._ddb_tokens.S
        local items, _, info = assert(with_items(store, pair("m1", "m2"), transfer(30)))
        assert.equal(70, items.from.balance)
        assert.equal(30, items.to.balance)
        assert.equal(2, items.from.version)
        assert.equal(2, items.to.version)
        assert.equal(1, info.attempts)
        assert.is_true(info.written)
        assert.equal(70, balance(client, tbl, "m1"))
        assert.equal(30, balance(client, tbl, "m2"))
        local after = raw_item(client, tbl, "m1")._ddb_tokens.S
        -- the commit's token pushed in front of the token the item had
        assert.equal(before:sub(3), after:match("^2 %S+ (.*)$"))
      end)

      it("reads and writes across tables through a client and a list of keys", function()
        local items, err = with_items(client, {
          { table = tbl, key = { pk = "x1" } },
          { table = tbl2, key = { owner = "ann", sk = "sword" } },
        }, function()
          return { { balance = 1 }, { power = 9 } }
        end)
        assert.truthy(items, tostring(err))
        assert.equal(1, items[1].balance)
        assert.same({ owner = "ann", sk = "sword", power = 9, version = 1 }, items[2])
        local got = assert(client:get_item{ TableName = tbl2,
          Key = { owner = { S = "ann" }, sk = { S = "sword" } }, ConsistentRead = true })
        assert.equal("9", got.Item.power.N)
      end)

      it("sends only what changed, keeping attributes other writers manage", function()
        open(store, "p1", 10)
        open(store, "p2", 10)
        local items = assert(with_items(store, pair("p1", "p2"), function(it)
          -- a writer that does not use versions (an ADD counter) works alongside
          assert(client:update_item{ TableName = tbl, Key = { pk = { S = "p1" } },
            UpdateExpression = "ADD hits :one",
            ExpressionAttributeValues = { [":one"] = { N = "1" } } })
          return transfer(4)(it)
        end))
        assert.equal(6, items.from.balance)
        assert.equal("1", raw_item(client, tbl, "p1").hits.N)
        assert.equal("6", raw_item(client, tbl, "p1").balance.N)
      end)

      it("writes nothing for optimistic.NOTHING or when no item changed", function()
        open(store, "n1", 1)
        local items, _, info = with_items(store, pair("n1", "n2"), function()
          return optimistic.NOTHING
        end)
        assert.equal(1, items.from.balance)
        assert.equal(ddb.null, items.to)
        assert.is_false(info.written)
        assert.equal("none", info.action)
        items, _, info = with_items(store, pair("n1", "n2"), function(it) return it end)
        assert.equal(1, items.from.version)
        assert.is_false(info.written)
        assert.equal(0, helper.requests(helper.stats(server), "TransactWriteItems"))
      end)

      it("keeps numbers and every other type exactly", function()
        local big = ddb.number("12345678901234567890.123456789")
        assert(with_items(store, { { pk = "types" } }, function()
          return { { n = big, b = ddb.binary("\0\1"), ss = ddb.string_set{ "a" }, l = ddb.list() } }
        end))
        local raw = raw_item(client, tbl, "types")
        assert.equal("12345678901234567890.123456789", raw.n.N)
        assert.is_true(core.av_equal({ B = "AAE=" }, raw.b))
        assert.same({ "a" }, raw.ss.SS)
        assert.same({}, raw.l.L)
      end)
    end)

    describe("conflicts", function()
      it("re-runs when an item it read but did not write changed in between", function()
        open(store, "ra", 1)
        open(store, "rb", 0)
        local seen = {}
        local items, err, info = with_items(store, { a = { pk = "ra" }, b = { pk = "rb" } }, function(it)
          seen[#seen + 1] = it.a.balance
          if #seen == 1 then
            assert(store:with_item({ pk = "ra" }, function(a) a.balance = 2 return a end))
          end
          it.b.balance = it.b.balance + it.a.balance   -- b depends on a, a is not written
          return { b = it.b }
        end)
        assert.truthy(items, tostring(err))
        assert.same({ 1, 2 }, seen)
        assert.equal(2, items.b.balance)
        assert.equal(2, items.b.version)   -- written once, by the second run
        assert.equal(1, info.conflicts)
        assert.same({ "a" }, info.conflicted)
        assert.same({ a = "none", b = "update" }, info.actions)
        -- the reasons carried the fresh item: no second read
        assert.equal(1, helper.requests(helper.stats(server), "TransactGetItems"))
      end)

      it("reads again when the reasons carry no item (it was deleted meanwhile)", function()
        open(store, "da", 1)
        local runs = 0
        local items = assert(with_items(store, { a = { pk = "da" }, b = { pk = "db" } }, function(it)
          runs = runs + 1
          if runs == 1 then
            assert(store:with_item({ pk = "da" }, function() return optimistic.DELETE end))
            assert.truthy(it.a)
          else
            assert.is_nil(it.a)
          end
          return { b = { seen = it.a ~= nil } }
        end))
        assert.equal(2, runs)
        assert.is_false(items.b.seen)
        assert.equal(2, helper.requests(helper.stats(server), "TransactGetItems"))
      end)

      it("loses neither create when two callers race to create", function()
        local runs = 0
        local items, _, info = assert(with_items(store, pair("rc1", "rc2"), function(it)
          runs = runs + 1
          if runs == 1 then
            assert(store:with_item({ pk = "rc2" }, function() return { balance = 5 } end))
          end
          return { from = { balance = 1 }, to = { balance = (it.to and it.to.balance or 0) + 1 } }
        end))
        assert.equal(6, items.to.balance)
        assert.equal(2, items.to.version)
        assert.same({ "to" }, info.conflicted)
      end)

      it("gives up after max_attempts runs, naming the items that conflicted", function()
        open(store, "h1", 10)
        open(store, "h2", 10)
        local runs = 0
        local items, err = with_items(store, pair("h1", "h2"), function(it)
          runs = runs + 1
          assert(store:with_item({ pk = "h2" }, function(x) x.other = runs return x end))
          return transfer(1)(it)
        end, { max_attempts = 3 })
        assert.is_nil(items)
        assert.equal("ConflictsExhausted", err.code)
        assert.equal("no", err.applied)
        assert.matches("'to'", err.message)
        assert.equal(3, runs)
        assert.equal(10, balance(client, tbl, "h1"))
      end)

      it("calls on_conflict with the conflict count and the items that moved", function()
        open(store, "oc1", 10)
        open(store, "oc2", 10)
        local calls = {}
        local first = true
        assert(with_items(store, pair("oc1", "oc2"), function(it)
          if first then
            first = false
            assert(store:with_item({ pk = "oc1" }, function(x) x.balance = 11 return x end))
          end
          return transfer(1)(it)
        end, { on_conflict = function(ctx)
          calls[#calls + 1] = { ctx.conflicts, ctx.conflicted[1], ctx.attempt }
        end }))
        assert.same({ { 1, "from", 1 } }, calls)
        assert.equal(10, balance(client, tbl, "oc1"))
      end)

      it("re-runs a transaction cancelled by a conflicting transaction in progress", function()
        local reply = { cancelled{ { Code = "None" }, { Code = "TransactionConflict",
          Message = "Transaction is ongoing for the item" } } }
        local c2 = helper.client(server, { transport = canned_transport(function()
          local r = table.remove(reply, 1)
          if r then return 400, r end
        end) })
        local s2 = assert(optimistic.new{ table = tbl, client = c2 })
        local items, err, info = with_items(s2, pair("tc1", "tc2"), function(it)
          return { from = { balance = (it.from and it.from.balance or 0) + 1 }, to = { n = 1 } }
        end)
        assert.truthy(items, tostring(err))
        assert.equal(2, info.attempts)
        assert.same({ "to" }, info.conflicted)
        assert.equal(1, balance(client, tbl, "tc1"))
      end)

      it("leaves TransactionConflictException and throttling to the client's retries", function()
        local reply = { core.encode{
          __type = "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
          message = "Transaction is ongoing for the item" } }
        local c2 = helper.client(server, { retry = { base_ms = 1 }, transport = canned_transport(
          function()
            local r = table.remove(reply, 1)
            if r then return 400, r end
          end) })
        local s2 = assert(optimistic.new{ table = tbl, client = c2 })
        local items, err, info = with_items(s2, pair("te1", "te2"), function()
          return { from = { balance = 1 }, to = { balance = 1 } }
        end)
        assert.truthy(items, tostring(err))
        assert.equal(1, info.attempts)
        assert.equal(0, info.conflicts)

        helper.reset(server)
        helper.faults(server, { { kind = "throttle", op = "TransactWriteItems", count = 2 } })
        items, err, info = with_items(store, pair("te1", "te2"), transfer(1))
        assert.truthy(items, tostring(err))
        assert.equal(1, info.attempts)
        assert.equal(3, helper.requests(helper.stats(server), "TransactWriteItems"))
        assert.equal(0, balance(client, tbl, "te1"))
      end)
    end)

    describe("deleting", function()
      it("deletes items in a transaction, conditioned on the version read", function()
        open(store, "d1", 3)
        open(store, "d2", 4)
        local items, _, info = assert(with_items(store, pair("d1", "d2"), function(it)
          return { from = optimistic.DELETE, to = { balance = it.to.balance + it.from.balance } }
        end))
        assert.equal(ddb.null, items.from)
        assert.equal(7, items.to.balance)
        assert.equal("delete", info.actions.from)
        assert.is_nil(raw_item(client, tbl, "d1"))
      end)

      it("re-runs a delete when the item changed after it was read", function()
        open(store, "dr1", 3)
        local seen = {}
        assert(with_items(store, { { pk = "dr1" } }, function(it)
          seen[#seen + 1] = it[1].balance
          if #seen == 1 then
            assert(store:with_item({ pk = "dr1" }, function(x) x.balance = 9 return x end))
            return { optimistic.DELETE }
          end
          return optimistic.NOTHING    -- seeing 9, the caller keeps it
        end))
        assert.same({ 3, 9 }, seen)
        assert.equal(9, balance(client, tbl, "dr1"))
      end)
    end)

    describe("items the function did not read", function()
      it("creates them at version 1, conditioned on their absence", function()
        open(store, "pa", 10)
        local items, _, info = assert(with_items(store, { a = { pk = "pa" } }, function(it)
          it.a.balance = it.a.balance - 1
          return it, { { item = { pk = "receipt#1", amount = 1 } },
                       { table = tbl2, item = { owner = "ann", sk = "receipt", n = 1 } } }
        end))
        assert.equal(9, items.a.balance)
        assert.same({ pk = "receipt#1", amount = 1, version = 1 }, info.extra[1])
        assert.equal(1, info.extra[2].n)
        local raw = raw_item(client, tbl, "receipt#1")
        assert.equal("1", raw.version.N)
        -- one commit, one token: the receipt's version 1 and the account's version 2
        local token = raw._ddb_tokens.S:match("^2 (%S+)$")
        assert.truthy(token)
        assert.equal(token, raw_item(client, tbl, "pa")._ddb_tokens.S:match("^2 (%S+)"))
      end)

      it("fails with ItemExists, writing nothing, when such an item exists", function()
        open(store, "pe", 10)
        open(store, "receipt#2", 0)
        local runs = 0
        local items, err = with_items(store, { a = { pk = "pe" } }, function(it)
          runs = runs + 1
          it.a.balance = 0
          return it, { { item = { pk = "receipt#2" } } }
        end)
        assert.is_nil(items)
        assert.equal("ItemExists", err.code)
        assert.matches("receipt#2", err.message, 1, true)
        assert.equal(1, runs)
        assert.equal(10, balance(client, tbl, "pe"))
      end)

      it("with overwrite = true, sets the attributes whatever is stored", function()
        open(store, "ow", 10)
        assert(with_items(store, {}, function()
          return {}, { { item = { pk = "ow", note = "x" }, overwrite = true },
                       { item = { pk = "ow-new", note = "y" }, overwrite = true } }
        end))
        local raw = raw_item(client, tbl, "ow")
        assert.equal("2", raw.version.N)
        assert.equal("10", raw.balance.N)
        assert.equal("x", raw.note.S)
        assert.equal("1", raw_item(client, tbl, "ow-new").version.N)
        -- with_item keeps working on it
        assert(store:with_item({ pk = "ow" }, function(x) x.balance = 11 return x end))
        assert.equal("3", raw_item(client, tbl, "ow").version.N)
      end)
    end)

    describe("limits, checked before sending", function()
      local function nothing_sent()
        local st = helper.stats(server)
        assert.equal(0, helper.requests(st, "TransactWriteItems"))
      end

      it("refuses more than 100 items to read", function()
        local keys = {}
        for i = 1, 101 do keys[i] = { pk = "k" .. i } end
        local items, err = with_items(store, keys, function(it) return it end)
        assert.is_nil(items)
        assert.equal("ValidationError", err.code)
        assert.matches("101 items", err.message)
        assert.equal(0, helper.requests(helper.stats(server), "TransactGetItems"))
      end)

      it("refuses more than 100 actions, counting items read and puts", function()
        -- (moto refuses TransactGetItems over 25 items, DynamoDB's old limit; 100 now)
        local keys = {}
        for i = 1, 20 do keys[i] = { pk = "lim" .. i } end
        local items, err = with_items(store, keys, function(it)
          local puts = {}
          for i = 1, 81 do puts[i] = { item = { pk = "limput" .. i } } end
          it[1] = { n = 1 }
          return it, puts
        end)
        assert.is_nil(items)
        assert.equal("ValidationError", err.code)
        assert.matches("101 actions", err.message)
        nothing_sent()
      end)

      it("refuses a transaction over 4 MB", function()
        local blob = string.rep("x", 390 * 1024)
        local keys = {}
        for i = 1, 11 do keys[i] = { pk = "big" .. i } end
        local items, err = with_items(store, keys, function()
          local out = {}
          for i = 1, 11 do out[i] = { blob = blob } end
          return out
        end)
        assert.is_nil(items)
        assert.equal("ValidationError", err.code)
        assert.matches("4194304", err.message)
        nothing_sent()
      end)

      it("refuses an item over 400 KB, naming it", function()
        local items, err = with_items(store, pair("small", "huge"), function()
          return { from = { a = 1 }, to = { blob = string.rep("x", 401 * 1024) } }
        end)
        assert.is_nil(items)
        assert.equal("ItemTooLarge", err.code)
        assert.matches("'to'", err.message)
        nothing_sent()
      end)

      it("refuses two actions on one item", function()
        local items, err = with_items(store, pair("same", "same"), function(it) return it end)
        assert.is_nil(items)
        assert.equal("ValidationError", err.code)
        assert.matches("same item", err.message)
        items, err = with_items(store, { { pk = "same" } }, function(it)
          return it, { { item = { pk = "same" } } }
        end)
        assert.is_nil(items)
        assert.equal("ValidationError", err.code)
        nothing_sent()
      end)
    end)

    describe("refusing bad results and arguments", function()
      local function refused(fn, pattern, code)
        open(store, "bad", 1)
        local items, err = with_items(store, { a = { pk = "bad" } }, fn)
        assert.is_nil(items)
        assert.equal(code or "ValidationError", err.code)
        assert.matches(pattern, err.message)
        assert.equal(0, helper.requests(helper.stats(server), "TransactWriteItems"))
      end

      it("refuses nil (a forgotten return)", function()
        refused(function() end, "returned nil")
      end)

      it("refuses results naming an item that was not read", function()
        refused(function(it) return { a = it.a, b = { x = 1 } } end, "'b'.*not one of the items")
      end)

      it("refuses a changed key or version", function()
        refused(function(it) it.a.pk = "other" return it end, "key attribute 'pk'")
        refused(function(it) it.a.version = 7 return it end, "version attribute")
      end)

      it("refuses puts that are not a list of { table, item }", function()
        refused(function(it) return it, { { pk = "x" } } end, "put #1 must be")
        refused(function(it) return it, { { item = { nokey = 1 } } } end, "lacks key attribute")
        refused(function(it) return it, { { item = { pk = "v", version = 3 } } } end,
          "belong to the module")
      end)

      it("propagates an error the function raises, writing nothing", function()
        local ok, err = pcall(with_items, store, pair("e1", "e2"), function() error("boom", 0) end)
        assert.is_false(ok)
        assert.equal("boom", err)
      end)

      it("raises for programmer mistakes, naming the argument", function()
        assert.has_error(function() with_items(42, {}, function() end) end,
          "bad argument #1 to 'with_items' (a ddb client or an optimistic store expected)")
        assert.has_error(function() with_items(store, "k", function() end) end,
          "bad argument #2 to 'with_items' (table of keys expected)")
        assert.has_error(function() with_items(store, {}, 1) end,
          "bad argument #3 to 'with_items' (function expected)")
        assert.has_error(function() with_items(client, { { pk = "a" } }, function() end) end)
        assert.has_error(function()
          with_items(store, {}, function() end, { deadline_ms = -1 })
        end, "with_items: option 'deadline_ms' must be a number of milliseconds above 0 " ..
          "(at most a day), got -1")
      end)

      it("answers the server's error for a table that does not exist", function()
        local items, err = with_items(client, { { table = "no_such_table", key = { pk = "a" } } },
          function(it) return it end)
        assert.is_nil(items)
        assert.equal("ResourceNotFoundException", err.code)
      end)

      it("names the items when the server cancels for a reason other than a conflict", function()
        local c2 = helper.client(server, { transport = canned_transport(function()
          return 400, cancelled{ { Code = "None" }, { Code = "ValidationError",
            Message = "Item size has exceeded the maximum allowed size" } }
        end) })
        local s2 = assert(optimistic.new{ table = tbl, client = c2 })
        local items, err = with_items(s2, pair("v1", "v2"), function()
          return { from = { a = 1 }, to = { a = 2 } }
        end)
        assert.is_nil(items)
        assert.equal("TransactionCanceledException", err.code)
        assert.equal("no", err.applied)
        assert.equal("to", err.reasons[1].name)
        assert.equal("ValidationError", err.reasons[1].code)
        assert.matches("'to' %(" .. tbl .. " pk=v2%): ValidationError", err.message)
      end)
    end)

    describe("deadline", function()
      it("stops at the call's deadline while reading", function()
        helper.faults(server, { { kind = "delay_ms", op = "TransactGetItems", ms = 600 } })
        local t0 = core.monotonic_ms()
        local items, err = with_items(store, pair("dl1", "dl2"), function(it) return it end,
          { deadline_ms = 300 })
        local elapsed = core.monotonic_ms() - t0
        assert.is_nil(items)
        assert.equal("DeadlineExceeded", err.code)
        assert.is_true(elapsed >= 290 and elapsed < 300 + 250, "elapsed " .. elapsed)
        -- let the held-back request through before clearing the faults: reset zeroes the
        -- counts settle waits on, and a straggler would take the next test's fault
        helper.settle(server, "TransactGetItems")
        helper.reset(server)
      end)

      it("never reports a commit that may have landed as a plain failure", function()
        helper.faults(server, { { kind = "delay_ms", op = "TransactWriteItems", ms = 600 } })
        local items, err = with_items(store, pair("dw1", "dw2"), function()
          return { from = { a = 1 }, to = { a = 1 } }
        end, { deadline_ms = 300 })
        assert.is_nil(items)
        assert.equal("OutcomeUnknown", err.code)
        assert.equal("maybe", err.applied)
        -- let the held-back request through before clearing the faults: reset zeroes the
        -- counts settle waits on, and a straggler would take the next test's fault
        helper.settle(server, "TransactWriteItems")
        helper.reset(server)
      end)
    end)

    describe("exactly once", function()
      it("sends a commit again with its ClientRequestToken, a new token per run", function()
        local rec = helper.recording_transport()
        local c2 = helper.client(server, { transport = rec, retry = { base_ms = 1 } })
        local s2 = assert(optimistic.new{ table = tbl, client = c2 })
        open(store, "tok1", 10)
        open(store, "tok2", 10)
        -- a 500 before the commit reached the server: its items are still as read, so the
        -- same commit goes again; then a conflict's re-run commits under a new token
        helper.faults(server, { { kind = "status_500", op = "TransactWriteItems", count = 1 } })
        local runs = 0
        assert(with_items(s2, pair("tok1", "tok2"), transfer(1)))
        assert(with_items(s2, pair("tok1", "tok2"), function(it)
          runs = runs + 1
          if runs == 1 then
            assert(store:with_item({ pk = "tok2" }, function(x) x.other = 1 return x end))
          end
          return transfer(1)(it)
        end))
        local tokens = {}
        for _, sent in ipairs(rec.sent) do
          if sent.headers["x-amz-target"]:find("TransactWriteItems", 1, true) then
            tokens[#tokens + 1] = { token = core.decode(sent.body).ClientRequestToken,
              body = sent.body }
          end
        end
        assert.equal(4, #tokens)
        assert.equal(tokens[1].body, tokens[2].body)
        assert.is_true(#tokens[1].token >= 1 and #tokens[1].token <= 36)
        assert.are_not.equal(tokens[2].token, tokens[3].token)
        assert.are_not.equal(tokens[3].token, tokens[4].token)
        assert.equal(2, runs)
        assert.equal(8, balance(client, tbl, "tok1"))
      end)

      local faults = { "drop_after_forward", "status_500_after_forward", "truncate_after_forward" }
      for _, kind in ipairs(faults) do
        it("lands a transfer exactly once when its answer is lost (" .. kind .. ")", function()
          open(store, "lost1-" .. kind, 100)
          open(store, "lost2-" .. kind, 0)
          helper.faults(server, { { kind = kind, op = "TransactWriteItems", count = 1 } })
          local items, err, info = with_items(store, pair("lost1-" .. kind, "lost2-" .. kind),
            function(it)
              return transfer(25)(it), { { item = { pk = "log-" .. kind, amount = 25 } } }
            end)
          assert.truthy(items, tostring(err))
          assert.equal(75, items.from.balance)
          assert.equal(25, items.to.balance)
          assert.equal(75, balance(client, tbl, "lost1-" .. kind))
          assert.equal(25, balance(client, tbl, "lost2-" .. kind))
          assert.equal("1", raw_item(client, tbl, "log-" .. kind).version.N)
          assert.equal(1, helper.stats(server).faults_fired[kind])
          assert.equal(1, info.attempts)
        end)
      end

      it("resolves a lost answer without a transport retry by reading the tokens", function()
        local once = helper.client(server, { max_attempts = 1 })
        local s1 = assert(optimistic.new{ table = tbl, client = once })
        open(store, "once1", 10)
        open(store, "once2", 0)
        helper.faults(server, { { kind = "drop_after_forward", op = "TransactWriteItems",
          count = 1 } })
        local items, err = with_items(s1, pair("once1", "once2"), transfer(10))
        assert.truthy(items, tostring(err))
        assert.equal(0, items.from.balance)
        assert.equal(0, balance(client, tbl, "once1"))
        assert.equal(10, balance(client, tbl, "once2"))
        assert.equal(2, helper.requests(helper.stats(server), "TransactGetItems"))
      end)

      it("sends the same commit again when its items show it has not landed yet", function()
        -- the first copy is held back by the proxy past the client's timeout; the items are
        -- still as read, so the same commit (same token) goes again; at most one lands
        local slow = helper.client(server, { max_attempts = 1, timeout_ms = 400 })
        local s1 = assert(optimistic.new{ table = tbl, client = slow })
        open(store, "rs1", 10)
        open(store, "rs2", 0)
        helper.faults(server, { { kind = "delay_ms", op = "TransactWriteItems", ms = 1500,
          count = 1 } })
        local items, err, info = with_items(s1, pair("rs1", "rs2"), transfer(4))
        assert.truthy(items, tostring(err))
        assert.equal(1, info.resends)
        assert.equal(1, info.attempts)
        helper.settle(server, "TransactWriteItems")
        assert.equal(6, balance(client, tbl, "rs1"))
        assert.equal(4, balance(client, tbl, "rs2"))
        assert.equal("2", raw_item(client, tbl, "rs1").version.N)
      end)

      -- The first copy of the commit is held back by the proxy past the client's timeout;
      -- when the client gives up, another writer changes `pk` before the items are read.
      local function held_back_while(pk, change)
        local armed = true
        local slow = helper.client(server, { max_attempts = 1, timeout_ms = 400,
          on_event = function(ev)
            if armed and ev.op == "TransactWriteItems" and ev.code then
              armed = false
              assert(store:with_item({ pk = pk }, change))
            end
          end })
        helper.faults(server, { { kind = "delay_ms", op = "TransactWriteItems", ms = 1500,
          count = 1 } })
        return assert(optimistic.new{ table = tbl, client = slow })
      end

      it("runs the function again when another writer took the version it would write",
        function()
          open(store, "rf1", 10)
          open(store, "rf2", 0)
          local s1 = held_back_while("rf1", function(x) x.balance = x.balance + 100 return x end)
          local items, err, info = with_items(s1, pair("rf1", "rf2"), transfer(4))
          assert.truthy(items, tostring(err))
          assert.equal(2, info.attempts)
          assert.equal(0, info.resends)
          helper.settle(server, "TransactWriteItems")   -- the held copy fails its condition
          assert.equal(106, balance(client, tbl, "rf1"))
          assert.equal(4, balance(client, tbl, "rf2"))
        end)

      it("runs the function again when an item it only checked moved meanwhile", function()
        open(store, "bl1", 10)
        open(store, "bl2", 0)
        open(store, "bl3", 1)
        local s1 = held_back_while("bl3", function(x) x.balance = 2 return x end)
        local seen = {}
        local items, err, info = with_items(s1, { from = { pk = "bl1" }, to = { pk = "bl2" },
          rate = { pk = "bl3" } }, function(it)
            seen[#seen + 1] = it.rate.balance
            return transfer(it.rate.balance)(it)    -- reads rate, writes from and to
          end)
        assert.truthy(items, tostring(err))
        assert.same({ 1, 2 }, seen)
        assert.equal(0, info.resends)
        helper.settle(server, "TransactWriteItems")
        assert.equal(8, balance(client, tbl, "bl1"))
        assert.equal(2, balance(client, tbl, "bl2"))
      end)

      it("resolves a lost delete through the item its commit updated", function()
        local once = helper.client(server, { max_attempts = 1 })
        local s1 = assert(optimistic.new{ table = tbl, client = once })
        open(store, "ld1", 3)
        open(store, "ld2", 4)
        helper.faults(server, { { kind = "drop_after_forward", op = "TransactWriteItems",
          count = 1 } })
        local items, err = with_items(s1, pair("ld1", "ld2"), function(it)
          return { from = optimistic.DELETE, to = { balance = it.to.balance + it.from.balance } }
        end)
        assert.truthy(items, tostring(err))
        assert.equal(ddb.null, items.from)
        assert.equal(7, balance(client, tbl, "ld2"))
      end)

      it("answers OutcomeUnknown for a lost commit of deletes whose items are gone", function()
        local once = helper.client(server, { max_attempts = 1 })
        local s1 = assert(optimistic.new{ table = tbl, client = once })
        open(store, "lg1", 3)
        open(store, "lg2", 4)
        helper.faults(server, { { kind = "drop_after_forward", op = "TransactWriteItems",
          count = 1 } })
        local items, err = with_items(s1, pair("lg1", "lg2"), function()
          return { from = optimistic.DELETE, to = optimistic.DELETE }
        end)
        assert.is_nil(items)
        assert.equal("OutcomeUnknown", err.code)
        assert.equal("maybe", err.applied)
        assert.is_nil(raw_item(client, tbl, "lg1"))
      end)

      it("answers OutcomeUnknown when tokens are off and the commit moved its items", function()
        local once = helper.client(server, { max_attempts = 1 })
        open(store, "nt1", 3)
        open(store, "nt2", 4)
        helper.faults(server, { { kind = "drop_after_forward", op = "TransactWriteItems",
          count = 1 } })
        local items, err = with_items(once, { { table = tbl, key = { pk = "nt1" } },
          { table = tbl, key = { pk = "nt2" } } }, function(it)
            it[1].balance = 0
            return it
          end, { tokens = 0 })
        assert.is_nil(items)
        assert.equal("OutcomeUnknown", err.code)
        -- read once to run, once to settle: the commit landed, and without a token of its
        -- own nothing tells whether it was this commit
        assert.equal(2, helper.requests(helper.stats(server), "TransactGetItems"))
        assert.equal(0, balance(client, tbl, "nt1"))
      end)
    end)

    describe("many processes moving money between accounts", function()
      it("keeps the total exactly and no balance below zero", function()
        local accounts, start, procs, per = 5, 100, 4, 12
        local bank = helper.table_name("bank")
        helper.create_table(client, bank)
        local bstore = assert(optimistic.new{ table = bank, client = client })
        for i = 1, accounts do
          assert(bstore:with_item({ pk = "acct" .. i }, function()
            return { balance = start, moves = 0 }
          end))
        end
        -- some commit answers are lost on the way back, to be resolved under contention
        helper.faults(server, { { kind = "drop_after_forward", op = "TransactWriteItems",
          probability = 0.05 } })
        -- moto is not atomic under concurrent requests (see the worker): the workers take
        -- turns per request, as DynamoDB's own atomicity would have them
        local lockdir = os.tmpname()
        os.remove(lockdir)
        local cmds = {}
        for i = 1, procs do
          cmds[i] = io.popen(helper.lua_command("spec/support/workers/transfer.lua",
            server.url, bank, accounts, per, 1000 + i, lockdir) .. " 2>&1")
        end
        local committed, unknown, conflicts = 0, 0, 0
        for i = 1, procs do
          local out = cmds[i]:read("*a")
          cmds[i]:close()
          local c, r, f, u, k = out:match("done (%d+) (%d+) (%d+) (%d+) (%d+)")
          assert.truthy(c, out)
          assert.equal("0", f, out)
          assert.equal(per, tonumber(c) + tonumber(r) + tonumber(u), out)
          committed, unknown = committed + tonumber(c), unknown + tonumber(u)
          conflicts = conflicts + tonumber(k)
        end
        os.remove(lockdir)
        helper.reset(server)
        local total, moves = 0, 0
        for i = 1, accounts do
          local raw = raw_item(client, bank, "acct" .. i)
          local b = tonumber(raw.balance.N)
          assert.is_true(b >= 0, "acct" .. i .. " went below zero: " .. b)
          total = total + b
          moves = moves + tonumber(raw.moves.N)
        end
        assert.equal(accounts * start, total)
        -- every committed transfer moved exactly two accounts once
        assert.is_true(moves >= 2 * committed and moves <= 2 * (committed + unknown),
          ("moves %d, committed %d, unknown %d"):format(moves, committed, unknown))
        assert.is_true(committed > 0)
        assert.is_true(conflicts > 0, "the workers never met: no conflict to resolve")
      end)
    end)
  end)
  end
end
