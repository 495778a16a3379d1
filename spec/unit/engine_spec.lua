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
