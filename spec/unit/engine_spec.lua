-- The engine's behaviour without a server: against the simulator's DynamoDB model through a
-- synchronous transport, with answers replaced where a case needs it. Options checked at
-- once, configuration mistakes named, answers that lack what they should carry, other
-- Regions' conflicts.
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local model = require "sim.model"

local core = ddb.core
local DDB = "com.amazonaws.dynamodb.v20120810#"

-- A transport answering from the model; override(op, req) may answer instead
-- (status, document), or return nil to let the model answer.
local function fake(override)
  local m = model.new()
  m:create_table("T", { "pk" })
  local t = { model = m, ops = {} }
  t.request = function(_, _, lines, body)
    local op
    for _, l in ipairs(lines) do op = op or l:match("^X%-Amz%-Target:%s*DynamoDB_%d+%.(%w+)") end
    t.ops[#t.ops + 1] = op
    local req = core.decode(body)
    local status, doc
    if override then status, doc = override(op, req, #t.ops) end
    if not status then status, doc = m:handle(op, req, 0, {}) end
    return status, { ["x-amzn-requestid"] = "fake" }, core.encode(doc)
  end
  t.sleep = function() end
  return t
end

local function client(transport, opts)
  local o = { region = "us-east-1", endpoint = "http://fake.invalid",
    credentials = { access_key_id = "AKID", secret_access_key = "secret" },
    transport = transport, retry = { base_ms = 0, throttle_base_ms = 0 } }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(ddb.new(o))
end

local function incr(item)
  item = item or {}
  item.n = (item.n or 0) + 1
  return item
end

describe("optimistic.new and with_item refuse mistakes at once, naming them", function()
  local c = client(fake())

  local function refused(opts, pattern)
    local o = { table = "T", client = c }
    for k, v in pairs(opts) do o[k] = v end
    local ok, err = pcall(optimistic.new, o)
    assert.is_false(ok)
    assert.matches(pattern, tostring(err), 1, true)
  end

  it("unknown names, with the name meant", function()
    refused({ deadline = 5 }, "unknown option 'deadline' (did you mean 'deadline_ms'?)")
    refused({ maxattempts = 3 }, "unknown option 'maxattempts' (did you mean 'max_attempts'?)")
    refused({ version = "v" },
      "did you mean 'version_attribute', 'version_start' or 'version_step'?")
  end)

  it("values of the wrong type or range, with what they must be", function()
    refused({ deadline_ms = 0 / 0 }, "option 'deadline_ms' must be a number of milliseconds")
    refused({ deadline_ms = "abc" }, "option 'deadline_ms' must be")
    refused({ deadline_ms = {} }, "option 'deadline_ms' must be")
    refused({ tokens = 1.5 }, "option 'tokens' must be a whole number")
    refused({ mode = "upsert" }, "option 'mode' must be 'update' or 'put', got 'upsert'")
    refused({ version_step = 0 }, "option 'version_step' must be a whole number >= 1")
  end)

  it("a key option that is not a list of distinct names", function()
    refused({ key = { 1 } }, "option 'key' must be a list of one or two different attribute names")
    refused({ key = { "pk", "pk" } }, "option 'key' must be a list of one or two different")
    refused({ key = "pk" }, "option 'key' must be")
  end)

  it("a version or token attribute that is a key attribute", function()
    refused({ key = { "pk" }, version_attribute = "pk" },
      "option 'version_attribute' names 'pk', which is a key attribute")
    refused({ key = { "pk" }, token_attribute = "pk" },
      "option 'token_attribute' names 'pk', which is a key attribute")
    refused({ token_attribute = "version" }, "name the same attribute 'version'")
  end)

  it("finds a key attribute named as the version once DescribeTable answers", function()
    local s = assert(optimistic.new{ table = "T", client = c, version_attribute = "pk" })
    local item, err = s:with_item({ pk = "x" }, incr)
    assert.is_nil(item)
    assert.equal("ConfigError", err.code)
    assert.matches("'version_attribute' names 'pk', which is a key attribute", err.message, 1, true)
  end)

  it("per-call options of with_item, with the name meant", function()
    local s = assert(optimistic.new{ table = "T", client = c, key = { "pk" } })
    for _, case in ipairs({
      { { deadline = 5 }, "unknown option 'deadline' (did you mean 'deadline_ms'?)" },
      { { deadline_ms = 0 / 0 }, "option 'deadline_ms' must be a number of milliseconds" },
      { { deadline_ms = "abc" }, "option 'deadline_ms' must be" },
      { { max_attempts = 0 }, "option 'max_attempts' must be a whole number >= 1" },
    }) do
      local ok, err = pcall(s.with_item, s, { pk = "x" }, incr, case[1])
      assert.is_false(ok)
      assert.matches(case[2], tostring(err), 1, true)
    end
    assert.is_nil(c.transport.model:item("T", "S:x"))
  end)

  it("options of ddb.new given beside a client", function()
    refused({ region = "eu-west-1" }, "option 'region' is an option of ddb.new")
  end)
end)

describe("answers that lack what they should carry", function()
  it("an UpdateItem answer without Attributes: the item as written, not an empty table",
    function()
      -- the model answers, then the answer loses its Attributes
      local t = fake()
      local inner = t.request
      t.request = function(self, url, lines, body, timeout)
        local status, headers, answer = inner(self, url, lines, body, timeout)
        local doc = core.decode(answer)
        if doc.Attributes then
          doc.Attributes = nil
          answer = core.encode(doc)
        end
        return status, headers, answer
      end
      local s = assert(optimistic.new{ table = "T", client = client(t), key = { "pk" } })
      local item = assert(s:with_item({ pk = "a" }, function() return { n = 7, s = "x" } end))
      assert.same({ pk = "a", n = 7, s = "x", version = 1 }, item)
    end)
end)

describe("what with_item returns", function()
  local function count(...) return select("#", ...), ... end

  it("item, nil, info on success; nil, err on a failure", function()
    local s = assert(optimistic.new{ table = "T", client = client(fake()), key = { "pk" } })
    local n, item, err, info = count(s:with_item({ pk = "a" }, incr))
    assert.equal(3, n)
    assert.equal(1, item.n)
    assert.equal(1, item.version)
    assert.is_nil(err)
    assert.equal(1, info.attempts)
    -- nothing to write: the item as it is, nil, info
    n, item, err, info = count(s:with_item({ pk = "a" }, function() return optimistic.NOTHING end))
    assert.equal(3, n)
    assert.equal(1, item.n)
    assert.is_nil(err)
    assert.equal("none", info.action)
    -- the function's result cannot be written: nil, err (and nothing after that)
    n, item, err, info = count(s:with_item({ pk = "a" }, function() return 42 end))
    assert.is_true(n <= 3)
    assert.is_nil(item)
    assert.is_nil(info)
    assert.equal("ValidationError", err.code)
    assert.equal("no", err.applied)
  end)
end)

describe("another Region writing the item (multi-Region strong consistency)", function()
  local function rwce()
    return 400, { __type = DDB .. "ReplicatedWriteConflictException",
      message = "one or more items are being modified by a request in another Region" }
  end

  it("is retried by the client, as botocore retries it", function()
    local first = true
    local t = fake(function(op)
      if op == "UpdateItem" and first then
        first = false
        return rwce()
      end
    end)
    local s = assert(optimistic.new{ table = "T", client = client(t), key = { "pk" } })
    local item, err, info = s:with_item({ pk = "r" }, incr)
    assert.truthy(item, tostring(err))
    assert.equal(1, item.n)
    assert.equal(0, info.conflicts)
    assert.same({ "GetItem", "UpdateItem", "UpdateItem" }, t.ops)
  end)

  it("is a conflict for with_item once the client's attempts are spent", function()
    local first = true
    local t = fake(function(op)
      if op == "UpdateItem" and first then
        first = false
        return rwce()
      end
    end)
    local s = assert(optimistic.new{ table = "T", client = client(t, { max_attempts = 1 }),
      key = { "pk" } })
    local item, err, info = s:with_item({ pk = "r" }, incr)
    assert.truthy(item, tostring(err))
    assert.equal(1, info.conflicts)
    assert.equal(2, info.attempts)
    assert.same({ "GetItem", "UpdateItem", "GetItem", "UpdateItem" }, t.ops)
  end)
end)

describe("metrics", function()
  it("one summary event per call, with the table and the outcome, beside each request's",
    function()
      local events = {}
      local t = fake()
      local s = assert(optimistic.new{ table = "T", key = { "pk" }, region = "us-east-1",
        endpoint = "http://fake.invalid", transport = t,
        credentials = { access_key_id = "AKID", secret_access_key = "secret" },
        on_event = function(ev) events[#events + 1] = ev end })
      assert(s:with_item({ pk = "m" }, incr))
      local _, err = s:with_item({ pk = "m" }, function() return { pk = "other" } end)
      assert.equal("ValidationError", err.code)
      local kinds, calls = {}, {}
      for _, ev in ipairs(events) do
        kinds[#kinds + 1] = ev.kind .. ":" .. ev.op
        if ev.kind == "call" then calls[#calls + 1] = ev end
        assert.equal("T", ev.table)
      end
      assert.same({ "request:GetItem", "request:UpdateItem", "call:with_item",
        "request:GetItem", "call:with_item" }, kinds)
      assert.equal("ok", calls[1].outcome)
      assert.equal("create", calls[1].action)
      assert.equal(2, calls[1].requests)
      assert.equal("number", type(calls[1].consumed_capacity))
      assert.equal("ValidationError", calls[2].outcome)
      assert.equal("number", type(events[2].consumed_capacity))
    end)

  it("logs a hook that raises once, and carries on", function()
    local logged = {}
    local t = fake()
    local s = assert(optimistic.new{ table = "T", key = { "pk" }, region = "us-east-1",
      endpoint = "http://fake.invalid", transport = t,
      credentials = { access_key_id = "AKID", secret_access_key = "secret" },
      log = function(level, message) logged[#logged + 1] = level .. " " .. message end,
      on_event = function() error("metrics backend down") end })
    for _ = 1, 3 do assert(s:with_item({ pk = "h" }, incr)) end
    -- once for the client's request events, once for the store's call events
    assert.equal(2, #logged)
    assert.matches("metrics backend down", logged[1], 1, true)
    assert.equal(3, assert(s:get({ pk = "h" })).n)
  end)
end)

describe("expect_version: writing from a version the caller holds (an If-Match)", function()
  local t, s
  before_each(function()
    t = fake()
    s = assert(optimistic.new{ table = "T", client = client(t), key = { "pk" } })
    assert(s:with_item({ pk = "e" }, function() return { n = 1 } end))   -- version 1
  end)

  it("writes once when the item is at that version", function()
    local runs = 0
    local item, err, info = s:with_item({ pk = "e" }, function(it)
      runs = runs + 1
      it.n = 2
      return it
    end, { expect_version = 1 })
    assert.truthy(item, tostring(err))
    assert.equal(2, item.version)
    assert.equal(1, runs)
    assert.equal("update", info.action)
  end)

  it("refuses another version without running the function, carrying the item", function()
    local item, err = s:with_item({ pk = "e" }, function() error("must not run") end,
      { expect_version = 7 })
    assert.is_nil(item)
    assert.equal("VersionMismatch", err.code)
    assert.equal("no", err.applied)
    assert.equal(1, err.item.n)
    assert.equal(1, err.version)
    assert.equal(7, err.expected)
  end)

  it("refuses when another writer moves the item between the read and the write", function()
    local other = assert(optimistic.new{ table = "T", client = client(t), key = { "pk" } })
    local runs = 0
    local item, err = s:with_item({ pk = "e" }, function(it)
      runs = runs + 1
      assert(other:with_item({ pk = "e" }, function(x) x.n = 10 return x end))
      it.n = 3
      return it
    end, { expect_version = "1" })
    assert.is_nil(item)
    assert.equal("VersionMismatch", err.code)
    assert.equal(1, runs)
    assert.equal(10, err.item.n)
    assert.equal(2, err.version)
    assert.equal(10, assert(s:get({ pk = "e" })).n)
  end)

  it("expect_version = false: creates only what does not exist (If-None-Match: *)", function()
    local _, err = s:with_item({ pk = "e" }, function() return { n = 9 } end,
      { expect_version = false })
    assert.equal("VersionMismatch", err.code)
    local item = assert(s:with_item({ pk = "new" }, function() return { n = 9 } end,
      { expect_version = false }))
    assert.equal(1, item.version)
  end)

  it("refuses an expect_version that is not a version, by raising", function()
    assert.has_error(function()
      s:with_item({ pk = "e" }, function(it) return it end, { expect_version = 1.5 })
    end)
  end)
end)

describe("ttl_attribute: an item whose TTL has passed is absent", function()
  it("the function sees nil, and the create replaces the expired item whole", function()
    local t = fake()
    local s = assert(optimistic.new{ table = "T", client = client(t), key = { "pk" },
      ttl_attribute = "expires" })
    local past = math.floor(core.now()) - 60
    t.model:handle("PutItem", { TableName = "T", Item = { pk = { S = "lease" },
      owner = { S = "old" }, stale = { S = "x" }, version = { N = "4" },
      expires = { N = tostring(past) } } }, 0, {})
    local seen = "unset"
    local item, err, info = s:with_item({ pk = "lease" }, function(it)
      seen = it
      return { owner = "me", expires = past + 3600 }
    end)
    assert.truthy(item, tostring(err))
    assert.is_nil(seen)
    assert.equal("create", info.action)
    assert.equal("me", item.owner)
    assert.equal(1, item.version)
    assert.is_nil(item.stale)   -- nothing of the expired item survives
    -- an item whose TTL has not passed is as usual
    local live = assert(s:with_item({ pk = "lease" }, function(it)
      assert.equal("me", it.owner)
      it.owner = "me2"
      return it
    end))
    assert.equal(2, live.version)
  end)

  it("does not overwrite an expired item that another writer renewed meanwhile", function()
    local t = fake()
    local s = assert(optimistic.new{ table = "T", client = client(t), key = { "pk" },
      ttl_attribute = "expires" })
    local other = assert(optimistic.new{ table = "T", client = client(t), key = { "pk" } })
    local past = math.floor(core.now()) - 60
    assert(other:with_item({ pk = "l2" }, function() return { owner = "old", expires = past } end))
    local runs = 0
    local item = assert(s:with_item({ pk = "l2" }, function(it)
      runs = runs + 1
      if runs == 1 then
        assert.is_nil(it)
        -- another writer renews the lease before our create lands
        assert(other:with_item({ pk = "l2" }, function(x) x.expires = past + 7200 return x end))
        return { owner = "me", expires = past + 3600 }
      end
      return optimistic.NOTHING   -- the lease is live again: leave it
    end))
    assert.equal(2, runs)
    assert.equal("old", item.owner)
  end)
end)

describe("store:plan, the dry run", function()
  it("returns the request with_item would send, sending nothing", function()
    local t = fake()
    local s = assert(optimistic.new{ table = "T", client = client(t), key = { "pk" } })
    local stored = { pk = "p", n = 4, version = 3, _ddb_tokens = "2 AAAAAAAAAAAA" }
    local planned, err, info = s:plan({ pk = "p" }, function(it) it.n = it.n + 1 return it end,
      stored, { token = "BBBBBBBBBBBB" })
    assert.truthy(planned, tostring(err))
    assert.equal("UpdateItem", planned.op)
    assert.equal("update", info.action)
    assert.same({ N = "5" }, planned.request.ExpressionAttributeValues[":v1"])
    assert.same({ N = "4" }, planned.request.ExpressionAttributeValues[":v2"])
    assert.same({ S = "2 BBBBBBBBBBBB AAAAAAAAAAAA" }, planned.request.ExpressionAttributeValues[":v3"])
    assert.equal("#n2 = :v4 AND #n3 = :v5", planned.request.ConditionExpression)
    assert.same({}, t.ops)
    -- and it is what with_item sends for that item
    t.model:handle("PutItem", { TableName = "T", Item = core.marshal_item(stored) }, 0, {})
    local sent
    local inner = t.request
    t.request = function(self, url, lines, body, ...)
      if body:find("UpdateExpression", 1, true) then sent = core.decode(body) end
      return inner(self, url, lines, body, ...)
    end
    assert(s:with_item({ pk = "p" }, function(it) it.n = it.n + 1 return it end))
    planned.request.ExpressionAttributeValues[":v3"] = nil
    sent.ExpressionAttributeValues[":v3"] = nil   -- the token differs
    assert.same(planned.request, sent)
  end)

  it("says when nothing would be written, and what with_item would refuse", function()
    local s = assert(optimistic.new{ table = "T", client = client(fake()), key = { "pk" } })
    local planned, _, info = s:plan({ pk = "p" }, function(it) return it end, { pk = "p", n = 1 })
    assert.is_false(planned)
    assert.equal("none", info.action)
    local _, err = s:plan({ pk = "p" }, function(it) it.pk = "q" return it end, { pk = "p" })
    assert.equal("ValidationError", err.code)
    planned = s:plan({ pk = "p" }, function() return optimistic.DELETE end, { pk = "p", version = 2 })
    assert.equal("DeleteItem", planned.op)
    planned = s:plan({ pk = "p" }, function() return { n = 1 } end, nil)
    assert.equal("attribute_not_exists(#n4)", planned.request.ConditionExpression)
  end)
end)

describe("store:with_each", function()
  local function incr_by_key(item, key)
    item = item or {}
    item.n = (item.n or 0) + #key.pk
    return item
  end

  it("runs independent calls, one outcome per key, one after another without a runtime",
    function()
      local t = fake()
      local s = assert(optimistic.new{ table = "T", client = client(t), key = { "pk" } })
      local keys = { { pk = "a" }, { pk = "bb" }, { pk = "ccc" } }
      local results, err, info = s:with_each(keys, incr_by_key)
      assert.is_nil(err)
      assert.equal(3, info.ok)
      assert.equal("sequential", info.runner)
      assert.equal(2, results[2].item.n)
      assert.equal(3, results[3].item.n)
    end)

  it("gives each key its own outcome: one refused, the others written", function()
    local s = assert(optimistic.new{ table = "T", client = client(fake()), key = { "pk" } })
    local results, _, info = s:with_each({ { pk = "x" }, { pk = "bad" }, { pk = "y" } },
      function(item, key)
        if key.pk == "bad" then return { pk = "other" } end
        return incr_by_key(item, key)
      end)
    assert.equal(2, info.ok)
    assert.equal(1, info.failed)
    assert.equal("ValidationError", results[2].err.code)
    assert.truthy(results[3].item)
  end)

  it("runs on the caller's spawn and join (a game host's coroutines), interleaved", function()
    local order = {}
    local t = fake()
    -- the transport yields on every request, as a game loop's would
    local inner = t.request
    t.request = function(self, ...)
      coroutine.yield()
      return inner(self, ...)
    end
    local s = assert(optimistic.new{ table = "T", client = client(t), key = { "pk" } })
    local tasks = {}
    local function spawn(fn)
      local co = coroutine.create(fn)
      tasks[#tasks + 1] = co
      return co
    end
    local function join(co)
      -- drive every task a step at a time until this one is done
      while coroutine.status(co) ~= "dead" do
        for _, c in ipairs(tasks) do
          if coroutine.status(c) ~= "dead" then
            order[#order + 1] = c
            assert(coroutine.resume(c))
          end
        end
      end
    end
    local keys = {}
    for i = 1, 8 do keys[i] = { pk = "k" .. i } end
    local _, _, info = s:with_each(keys, incr_by_key, { spawn = spawn, join = join,
      concurrency = 4 })
    assert.equal(8, info.ok)
    assert.equal(4, info.concurrency)
    assert.equal("spawn/join", info.runner)
    -- the four workers took turns
    local distinct = {}
    for i = 1, 4 do distinct[order[i]] = true end
    local n = 0
    for _ in pairs(distinct) do n = n + 1 end
    assert.equal(4, n)
  end)

  it("passes a function's error on, as with_item does", function()
    local s = assert(optimistic.new{ table = "T", client = client(fake()), key = { "pk" } })
    assert.has_error(function()
      s:with_each({ { pk = "a" } }, function() error("boom") end)
    end, "boom")
  end)
end)

describe("metrics for calls refused before their first read", function()
  it("still send the call's summary, with the error's code and elapsed time", function()
    local events = {}
    local s = assert(optimistic.new{ table = "T", client = client(fake()), key = { "pk" },
      on_event = function(ev) if ev.kind == "call" then events[#events + 1] = ev end end })
    local _, err = s:with_item({ id = "not the key" }, incr)
    assert.equal("ValidationError", err.code)
    assert.is_number(err.info.elapsed_ms)
    assert.equal(1, #events)
    assert.equal("ValidationError", events[1].outcome)
    assert.same({ "T" }, events[1].tables)
    assert.has_error(function() s:get({ pk = "x" }, { max_attempts = 3 }) end)
  end)
end)
