-- The simulator's DynamoDB: one item's semantics as the API reference documents them, in
-- process and in virtual time. Conditional PutItem / UpdateItem / DeleteItem with
-- ReturnValues and ReturnValuesOnConditionCheckFailure, consistent GetItem,
-- TransactGetItems, TransactWriteItems with ClientRequestToken idempotency (10 minutes,
-- IdempotentParameterMismatch, TransactionInProgressException), TTL deletion, and capacity
-- units as DynamoDB bills them. Every write that lands is reported to on_landed with the
-- item before and after, which is the ground truth the simulator checks calls against.
-- Options make it behave like the local servers where they differ: returns_item (false:
-- dynalite's failed conditions carry no item), tokens_honoured (false: moto ignores
-- ClientRequestToken), remember_cancel (a cancelled token answers its cancellation again).
local core = require "ddb.core"
local expr = require "sim.expr"

local copy, refuse = expr.copy, expr.refuse
local ceil = math.ceil

local Model = {}
Model.__index = Model

local DDB = "com.amazonaws.dynamodb.v20120810#"
local TOKEN_WINDOW_MS = 10 * 60 * 1000

local M = {}

function M.new(opts)
  opts = opts or {}
  return setmetatable({
    tables = {}, serial = 0, tokens = {},
    returns_item = opts.returns_item ~= false,
    tokens_honoured = opts.tokens_honoured ~= false,
    remember_cancel = opts.remember_cancel or false,
    txn_ms = opts.txn_ms or 2,
    on_landed = opts.on_landed or function() end,
    stats = { wcu = 0, rcu = 0, writes = 0, item_bytes_max = 0 },
  }, Model)
end

function Model:create_table(name, key, ttl)
  self.tables[name] = { name = name, key = key, ttl = ttl, items = {} }
end

local function fail(status, kind, message, extra)
  local e = { sim_error = true, status = status, type = kind, message = message }
  for k, v in pairs(extra or {}) do e[k] = v end
  error(e, 0)
end

function Model:table(name)
  local t = self.tables[name]
  if not t then fail(400, "ResourceNotFoundException", "Requested resource not found") end
  return t
end

-- The item's key string; refuses a key that does not match the schema.
local function key_of(t, key, whole_item)
  local parts, count = {}, 0
  if type(key) ~= "table" then refuse("the key is missing") end
  for _, n in ipairs(t.key) do
    local av = key[n]
    if type(av) ~= "table" then refuse("the provided key element %s does not match the schema", n) end
    local kind, v = next(av)
    if (kind ~= "S" and kind ~= "N" and kind ~= "B") or next(av, kind) ~= nil then
      refuse("key attribute %s must be S, N or B", n)
    end
    if kind == "N" then v = core.number_canonical(v) end
    parts[#parts + 1] = kind .. ":" .. tostring(v)
  end
  if not whole_item then
    for _ in pairs(key) do count = count + 1 end
    if count ~= #t.key then refuse("the provided key element does not match the schema") end
  end
  return table.concat(parts, "|")
end

local function size(item)
  if not item then return 0 end
  return core.item_size(item)
end

local function bill_write(self, pre, post, factor)
  local s = math.max(size(pre), size(post))
  self.stats.wcu = self.stats.wcu + factor * math.max(1, ceil(s / 1024))
  if s > self.stats.item_bytes_max then self.stats.item_bytes_max = s end
end

local function bill_read(self, item, factor)
  self.stats.rcu = self.stats.rcu + factor * math.max(1, ceil(size(item) / 4096))
end

local function capacity(t, units)
  return { TableName = t.name, CapacityUnits = units }
end

-- The condition of a request, checked against item; placeholders must all be used.
local function condition_holds(req, item, update_parser)
  local parsers = { update_parser }
  local ok = true
  if req.ConditionExpression ~= nil then
    local cond, p = expr.condition(req.ConditionExpression, req.ExpressionAttributeNames,
      req.ExpressionAttributeValues)
    parsers[#parsers + 1] = p
    ok = cond(item)
  end
  expr.check_unused(parsers, req.ExpressionAttributeNames, req.ExpressionAttributeValues)
  return ok
end

local function stamp(self, item)
  self.serial = self.serial + 1
  item._sim = { N = tostring(self.serial) }
  return item
end

-- What one write does to an item: the item after (nil: deleted), or raises refusals.
local function apply(self, t, kind, req, item)
  if kind == "Put" then
    local new = copy(req.Item)
    if type(new) ~= "table" then refuse("Item is missing") end
    key_of(t, new, true)
    return stamp(self, new)
  elseif kind == "Update" then
    local fn = req._update
    local new = fn(item)
    for _, n in ipairs(t.key) do
      if new[n] ~= nil and item and not core.av_equal(new[n], item[n]) then
        refuse("cannot update attribute %s: it is part of the key", n)
      end
      new[n] = req.Key[n]
    end
    return stamp(self, new)
  elseif kind == "Delete" then
    return nil
  end
  return item   -- ConditionCheck
end

local function prepare(kind, req)
  if kind == "Update" then
    local fn, p = expr.update(req.UpdateExpression, req.ExpressionAttributeNames,
      req.ExpressionAttributeValues)
    req._update, req._parser = fn, p
  end
end

local function check_size(item)
  if item and size(item) > 400 * 1024 then refuse("Item size has exceeded the maximum allowed size") end
end

local function ccf(self, req, item)
  local extra = {}
  if item and self.returns_item and req.ReturnValuesOnConditionCheckFailure == "ALL_OLD" then
    extra.Item = copy(item)
  end
  fail(400, "ConditionalCheckFailedException", "The conditional request failed", extra)
end

local WRITE_KIND = { PutItem = "Put", UpdateItem = "Update", DeleteItem = "Delete" }

function Model:single(op, req, now, tag)
  local kind = WRITE_KIND[op]
  local t = self:table(req.TableName)
  local k = key_of(t, kind == "Put" and req.Item or req.Key, kind == "Put")
  local item = t.items[k]
  prepare(kind, req)
  if not condition_holds(req, item, req._parser) then
    bill_write(self, item, nil, 1)
    ccf(self, req, item)
  end
  local new = apply(self, t, kind, req, item)
  check_size(new)
  bill_write(self, item, new, 1)
  t.items[k] = new
  self.stats.writes = self.stats.writes + 1
  self.on_landed(tag, { { table = t.name, key = k, pre = item, post = new, op = op } }, now)
  local res = { ConsumedCapacity = req.ReturnConsumedCapacity and capacity(t, 1) or nil }
  local rv = req.ReturnValues
  if rv == "ALL_NEW" and new then res.Attributes = copy(new)
  elseif rv == "ALL_OLD" and item then res.Attributes = copy(item)
  elseif rv == "UPDATED_NEW" and new then
    res.Attributes = {}
    for n, v in pairs(new) do
      if not item or not item[n] or not core.av_equal(item[n], v) then res.Attributes[n] = copy(v) end
    end
  end
  return res
end

function Model:get(req)
  local t = self:table(req.TableName)
  local item = t.items[key_of(t, req.Key)]
  bill_read(self, item, req.ConsistentRead and 1 or 0.5)
  return { Item = item and copy(item) or nil,
    ConsumedCapacity = req.ReturnConsumedCapacity and capacity(t, 1) or nil }
end

function Model:transact_get(req)
  local out = {}
  for i, g in ipairs(req.TransactItems or {}) do
    local get = g.Get
    local t = self:table(get.TableName)
    local item = t.items[key_of(t, get.Key)]
    bill_read(self, item, 2)
    out[i] = item and { Item = copy(item) } or {}
  end
  return { Responses = out }
end

-- A canonical text of a request, for "the same parameters" (keys sorted).
local function canonical(v)
  if type(v) ~= "table" then return type(v) .. ":" .. tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do
    if k ~= "_update" and k ~= "_parser" then
      parts[#parts + 1] = tostring(k) .. "=" .. canonical(v[k])
    end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local TXN_KINDS = { "Put", "Update", "Delete", "ConditionCheck" }

function Model:transact_write(req, now, tag)
  local items = req.TransactItems
  if type(items) ~= "table" or #items == 0 or #items > 100 then
    refuse("TransactItems must hold 1 to 100 actions")
  end
  local token = req.ClientRequestToken
  if token ~= nil and (type(token) ~= "string" or #token < 1 or #token > 36) then
    refuse("ClientRequestToken must be 1 to 36 characters")
  end
  local body = canonical(items)
  if token and self.tokens_honoured then
    local rec = self.tokens[token]
    if rec and now - (rec.done_at or now) < TOKEN_WINDOW_MS then
      if rec.body ~= body then
        fail(400, "IdempotentParameterMismatchException", "the token was used with other parameters")
      end
      if now < rec.done_at then
        fail(400, "TransactionInProgressException", "the transaction with this token is in progress")
      end
      if rec.succeeded then
        for _ in ipairs(items) do self.stats.rcu = self.stats.rcu + 2 end
        return {}
      end
      if rec.cancelled and self.remember_cancel then error(copy(rec.cancelled), 0) end
    end
  end
  local acts, seen = {}, {}
  for i, ti in ipairs(items) do
    local kind, r
    for _, kk in ipairs(TXN_KINDS) do
      if ti[kk] then
        if kind then refuse("one action per TransactWriteItem") end
        kind, r = kk, ti[kk]
      end
    end
    if not kind then refuse("TransactItems[%d] has no action", i) end
    local t = self:table(r.TableName)
    local k = key_of(t, kind == "Put" and r.Item or r.Key, kind == "Put")
    if seen[t.name .. "/" .. k] then
      refuse("Transaction request cannot include multiple operations on one item")
    end
    seen[t.name .. "/" .. k] = true
    if kind == "ConditionCheck" and not r.ConditionExpression then
      refuse("a ConditionCheck needs a ConditionExpression")
    end
    prepare(kind, r)
    acts[i] = { kind = kind, req = r, t = t, k = k }
  end
  local reasons, failed = {}, false
  for i, a in ipairs(acts) do
    local item = a.t.items[a.k]
    if condition_holds(a.req, item, a.req._parser) then
      reasons[i] = { Code = "None" }
    else
      failed = true
      reasons[i] = { Code = "ConditionalCheckFailed", Message = "The conditional request failed" }
      if item and self.returns_item and a.req.ReturnValuesOnConditionCheckFailure == "ALL_OLD" then
        reasons[i].Item = copy(item)
      end
    end
  end
  local done_at = now + self.txn_ms
  if failed then
    local codes = {}
    for i, r in ipairs(reasons) do codes[i] = r.Code end
    local e = { sim_error = true, status = 400, type = "TransactionCanceledException",
      message = "Transaction cancelled, please refer cancellation reasons for specific " ..
        "reasons [" .. table.concat(codes, ", ") .. "]", CancellationReasons = reasons }
    if token then self.tokens[token] = { body = body, done_at = done_at, cancelled = e } end
    for _, a in ipairs(acts) do bill_write(self, a.t.items[a.k], nil, 2) end
    error(e, 0)
  end
  local landed = {}
  for i, a in ipairs(acts) do
    local item = a.t.items[a.k]
    local new = apply(self, a.t, a.kind, a.req, item)
    check_size(new)
    acts[i].new = new
  end
  for i, a in ipairs(acts) do
    local item = a.t.items[a.k]
    bill_write(self, item, a.new, 2)
    if a.kind ~= "ConditionCheck" then
      a.t.items[a.k] = a.new
      landed[#landed + 1] = { table = a.t.name, key = a.k, pre = item, post = a.new,
        op = a.kind }
    end
    acts[i] = nil
  end
  self.stats.writes = self.stats.writes + 1
  if token then self.tokens[token] = { body = body, done_at = done_at, succeeded = true } end
  self.on_landed(tag, landed, now)
  return {}
end

--- Deletes expired items of tables with a TTL attribute (lazily: each with probability p).
function Model:sweep(now_s, rng, p)
  local tnames = {}
  for n in pairs(self.tables) do tnames[#tnames + 1] = n end
  table.sort(tnames)
  for _, n in ipairs(tnames) do
    local t = self.tables[n]
    if t.ttl then
      local keys = {}
      for k in pairs(t.items) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do
        local item = t.items[k]
        local e = item[t.ttl]
        if e and e.N and tonumber(e.N) < now_s and rng() < p then
          t.items[k] = nil
          self.on_landed({ ttl = true }, { { table = n, key = k, pre = item, post = nil,
            op = "TTL" } }, now_s * 1000)
        end
      end
    end
  end
end

--- Answers one request: status, answer table (an error document for errors).
function Model:handle(op, req, now, tag)
  local ok, res = pcall(function()
    if op == "GetItem" then return self:get(req) end
    if WRITE_KIND[op] then return self:single(op, req, now, tag) end
    if op == "TransactWriteItems" then return self:transact_write(req, now, tag) end
    if op == "TransactGetItems" then return self:transact_get(req) end
    if op == "DescribeTable" then
      local t = self:table(req.TableName)
      local ks = {}
      for i, n in ipairs(t.key) do ks[i] = { AttributeName = n, KeyType = i == 1 and "HASH" or "RANGE" } end
      return { Table = { TableName = t.name, KeySchema = ks, TableStatus = "ACTIVE" } }
    end
    fail(400, "UnknownOperationException", "unknown operation " .. tostring(op))
  end)
  if ok then return 200, res end
  if type(res) ~= "table" or not res.sim_error then error(res, 0) end
  local doc = { __type = DDB .. res.type, message = res.message, Item = res.Item,
    CancellationReasons = res.CancellationReasons }
  if doc.CancellationReasons then setmetatable(doc.CancellationReasons, core.mt.list) end
  return res.status, doc
end

function Model:item(tname, key_string)
  return self.tables[tname].items[key_string]
end

M.key_of = key_of
M.canonical = canonical
return M
