-- What each Lua runtime allows a coroutine-driven host: the client and with_item run in
-- coroutines whose transport yields on every request and every wait (Lua 5.1 to 5.4 and
-- LuaJIT alike), while the function given to with_item may yield only where pcall is
-- yieldable (Lua 5.2+, LuaJIT); on PUC Lua 5.1 that is refused with a clear error.
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local core = ddb.core
local expr = require "sim.expr"

local runtime = jit and jit.version or _VERSION
local puc51 = _VERSION == "Lua 5.1" and not jit

local CCF = "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"

-- A one-table DynamoDB in memory, enough for with_item in put mode: GetItem, and PutItem
-- with the conditions with_item sends (evaluated as the simulator's model does).
local function fake_dynamodb()
  local items, ops = {}, {}
  local function answer(status, doc)
    return status, { ["content-type"] = "application/x-amz-json-1.0" }, core.encode(doc)
  end
  local self = { items = items, ops = ops, throttle = 0 }
  function self.handle(lines, body)
    local op
    for _, line in ipairs(lines) do
      op = op or line:match("^X%-Amz%-Target:%s*DynamoDB_20120810%.(%a+)")
    end
    ops[#ops + 1] = op
    if self.throttle > 0 then
      self.throttle = self.throttle - 1
      return answer(400, { __type = "com.amazonaws.dynamodb.v20120810#ThrottlingException",
        message = "slow down" })
    end
    local req = assert(core.decode(body))
    if op == "GetItem" then
      return answer(200, { Item = items[req.Key.pk.S] })
    elseif op == "PutItem" then
      local pk = req.Item.pk.S
      local current = items[pk]
      local ok = expr.condition(req.ConditionExpression, req.ExpressionAttributeNames,
        req.ExpressionAttributeValues)(current)
      if not ok then
        return answer(400, { __type = CCF, message = "The conditional request failed",
          Item = current })
      end
      items[pk] = req.Item
      return answer(200, {})
    end
    return answer(400, { __type = "com.amazonaws.dynamodb.v20120810#UnknownOperationException" })
  end
  return self
end

-- A transport whose request and sleep yield to the loop that drives the coroutines.
local yielding_transport = {
  name = "yielding",
  request = function(_, _, lines, body)
    return coroutine.yield("io", lines, body)
  end,
  sleep = function(_, ms)
    coroutine.yield("sleep", ms)
  end,
}

local unpack = table.unpack or unpack   -- luacheck: ignore 143 (5.1's global)

local function unpack_args(t)
  return unpack(t, 1, t.n or #t)
end

-- Runs the functions as coroutines, round robin, one step each per turn, answering their
-- I/O from the fake. Returns { ok = {...}, err = {...}, yields = {kind = n} }.
local function run_all(fake, fns)
  local tasks, out = {}, { results = {}, errors = {}, yields = {} }
  for i, fn in ipairs(fns) do tasks[i] = { co = coroutine.create(fn), resume = {} } end
  local alive = #tasks
  while alive > 0 do
    for i, t in ipairs(tasks) do
      if coroutine.status(t.co) ~= "dead" then
        local r = { coroutine.resume(t.co, unpack_args(t.resume)) }
        if not r[1] then
          out.errors[i] = r[2]
        elseif coroutine.status(t.co) == "dead" then
          out.results[i] = { r[2], r[4] or r[3] }   -- item, info | nil, err
        else
          local kind = r[2]
          out.yields[kind] = (out.yields[kind] or 0) + 1
          if kind == "io" then
            t.resume = { n = 4, fake.handle(r[3], r[4]) }
          else
            t.resume = { n = 0 }
          end
        end
        if coroutine.status(t.co) == "dead" then alive = alive - 1 end
      end
    end
  end
  return out
end

local function store_for()
  local client = assert(ddb.new{ region = "us-east-1", endpoint = "http://fake.invalid",
    credentials = { access_key_id = "AKIDEXAMPLE", secret_access_key = "secret" },
    transport = yielding_transport, retry = { base_ms = 1, throttle_base_ms = 1 } })
  return assert(optimistic.new{ table = "T", client = client, key = { "pk" }, mode = "put",
    max_attempts = 50 })
end

local function increment(item)
  item = item or { pk = "p" }
  item.n = (item.n or 0) + 1
  return item
end

describe("coroutine-driven hosts on " .. runtime, function()
  it("run with_item through a transport that yields on every request", function()
    local fake, store = fake_dynamodb(), store_for()
    local out = run_all(fake, { function() return store:with_item({ pk = "p" }, increment) end })
    assert.same({}, out.errors)
    local item, info = out.results[1][1], out.results[1][2]
    assert.equal(1, item.n)
    assert.equal(1, item.version)
    assert.equal("create", info.action)
    assert.same({ "GetItem", "PutItem" }, fake.ops)
    assert.equal(2, out.yields.io)
  end)

  it("let the transport's sleep yield while the client waits to retry", function()
    local fake, store = fake_dynamodb(), store_for()
    fake.throttle = 2
    local out = run_all(fake, { function() return store:with_item({ pk = "p" }, increment) end })
    assert.same({}, out.errors)
    assert.equal(1, out.results[1][1].n)
    assert.equal(2, out.yields.sleep)
  end)

  it("lose no update when coroutines of one state interleave on the same item", function()
    local fake, store = fake_dynamodb(), store_for()
    local fns = {}
    for i = 1, 4 do
      fns[i] = function()
        for _ = 1, 5 do assert(store:with_item({ pk = "p" }, increment)) end
        return true
      end
    end
    local out = run_all(fake, fns)
    assert.same({}, out.errors)
    local stored = ddb.unmarshal_item(fake.items.p)
    assert.equal(20, stored.n)
    assert.equal(20, stored.version)
  end)
end)

describe("a function given to with_item that yields, on " .. runtime, function()
  local function yielding_increment(item)
    coroutine.yield("frame")   -- e.g. waits for the next frame of a game loop
    return increment(item)
  end

  if puc51 then
    -- with_item runs the function under pcall, which 5.1 cannot yield across: either the
    -- module passes the yield on (running the function in a coroutine of its own) or the
    -- call fails with an error that names the limit; never a half-done write
    it("works, or is refused with an error naming the limit and nothing written (PUC 5.1)",
      function()
        local fake, store = fake_dynamodb(), store_for()
        local out = run_all(fake, { function()
          return store:with_item({ pk = "p" }, yielding_increment)
        end })
        if out.errors[1] ~= nil then
          assert.matches("yield", tostring(out.errors[1]))
          assert.is_nil(fake.items.p)
        else
          assert.equal(1, out.results[1][1].n)
        end
        -- the client is still usable afterwards
        out = run_all(fake, { function() return store:with_item({ pk = "p" }, increment) end })
        assert.same({}, out.errors)
        assert.equal(fake.items.p and ddb.unmarshal_item(fake.items.p).n, out.results[1][1].n)
      end)
  else
    it("works: pcall is yieldable on Lua 5.2+ and LuaJIT", function()
      local fake, store = fake_dynamodb(), store_for()
      local out = run_all(fake, { function()
        return store:with_item({ pk = "p" }, yielding_increment)
      end })
      assert.same({}, out.errors)
      assert.equal(1, out.results[1][1].n)
      assert.equal(1, out.yields.frame)
    end)
  end
end)

describe("the module's version", function()
  it("is written once, in the C core, and every module and the rockspec carry it", function()
    for _, name in ipairs{ "ddb", "ddb.optimistic", "ddb.transact", "ddb.cli", "ddb.scheduler",
        "ddb.credentials", "ddb.transport.ngx" } do
      assert.equal(core._VERSION, require(name)._VERSION, name)
    end
    local root = (debug.getinfo(1, "S").source:sub(2):gsub("spec/unit/runtime_spec%.lua$", ""))
    local f = assert(io.open((root == "" and "./" or root) .. "rockspec/ddb-optimistic-" ..
      core._VERSION .. "-1.rockspec", "rb"))
    local text = f:read("*a")
    f:close()
    assert.truthy(text:find('version = "' .. core._VERSION .. '-1"', 1, true))
  end)
end)
