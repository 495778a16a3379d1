--- ddb.engine.ops: the engine's requests to DynamoDB and what their answers mean for it.
-- Reads are strongly consistent (GetItem, or one TransactGetItems for several items); a
-- commit goes out as its one action's own request or as one TransactWriteItems; every answer
-- becomes one of a few outcomes, so that the engine never looks at error codes itself.
-- @module ddb.engine.ops

local ddb = require "ddb"
local core = require "ddb.core"
local runtime = require "ddb.runtime"
local state = require "ddb.engine.state"

local type, ipairs, next, tostring = type, ipairs, next, tostring
local new_error = ddb.new_error
local get_body = core.get_body

local _M = {}

-- Cancellation reasons that say "try again later", not "your data moved" or "never".
local TRANSIENT = { TransactionConflict = true, ProvisionedThroughputExceeded = true,
  ThrottlingError = true, RequestLimitExceeded = true }
_M.TRANSIENT = TRANSIENT

-- Refused before anything changed, and worth reading again: another Region is writing the
-- item (multi-Region strongly consistent tables), as botocore treats it.
local CONFLICT_CODES = { ReplicatedWriteConflictException = true }

function _M.add_capacity(info, res)
  local n = ddb.capacity_units(res and res.ConsumedCapacity)
  if n then info.consumed_capacity = info.consumed_capacity + n end
end

local function reasons_of(err, n)
  local list = err.cancellation_reasons
  if type(list) ~= "table" or #list ~= n then return nil end
  local out = {}
  for i = 1, n do
    local r = list[i]
    if type(r) ~= "table" then return nil end
    out[i] = { code = type(r.Code) == "string" and r.Code or "None", message = r.Message,
      item = type(r.Item) == "table" and next(r.Item) ~= nil and r.Item or nil }
  end
  return out
end

local function only_transient(reasons)
  if not reasons then return false end
  local any = false
  for _, r in ipairs(reasons) do
    if TRANSIENT[r.code] then any = true
    elseif r.code ~= "None" then return false end
  end
  return any
end

local function pause(ctx, ms)
  if ctx.clock() + ms >= ctx.deadline then return false end
  if ms > 0 then
    runtime.sleep(ctx.client.transport, ms)
  end
  return true
end
_M.pause = pause

--- Reads the targets' items ({ table, kav }) in one strongly consistent snapshot: a list of
-- AttributeValue maps, false where there is no item | nil, err.
function _M.read(ctx, targets)
  local info = ctx.info
  if #targets == 1 then
    local t = targets[1]
    info.requests = info.requests + 1
    -- the item as AttributeValues (the engine's) and as plain values from the same bytes:
    -- the caller's first copy, without converting the item twice (state.plain)
    -- its body written once per call, in C (core.get_body), and sent again to read again
    local body = t.get_body
    if not body then
      local why
      body, why = get_body(t.table, t.kav)
      if not body then
        return nil, new_error("ValidationError", "the read cannot be sent: " .. tostring(why))
      end
      t.get_body = body
    end
    local res, err = ctx.client:_call("GetItem", body,
      { deadline = ctx.deadline, plain = "*Item", table = t.table })
    if not res then return nil, err end
    _M.add_capacity(info, res)
    -- an item doc (the answer's nodes: AttributeValues made only where asked), or tables
    local item = res.Item
    if type(item) ~= "userdata" and (type(item) ~= "table" or next(item) == nil) then
      return { false }
    end
    if res.plain then state.offer_plain(item, res.plain) end
    return { item }
  end
  local gets = {}
  for i, t in ipairs(targets) do gets[i] = { Get = { TableName = t.table, Key = t.kav } } end
  local tries = 0
  while true do
    tries = tries + 1
    info.requests = info.requests + 1
    local res, err = ctx.client:_call("TransactGetItems", { TransactItems = gets,
      ReturnConsumedCapacity = "TOTAL" }, { deadline = ctx.deadline })
    if res then
      _M.add_capacity(info, res)
      local responses = res.Responses
      if type(responses) ~= "table" or #responses ~= #targets then
        return nil, new_error("InvalidResponse", "TransactGetItems answered with " ..
          tostring(type(responses) == "table" and #responses or "no") .. " responses for " ..
          #targets .. " items")
      end
      local out = {}
      for i = 1, #targets do
        local item = type(responses[i]) == "table" and responses[i].Item
        out[i] = type(item) == "table" and next(item) ~= nil and item or false
      end
      return out
    end
    -- a read that meets a transaction in progress is cancelled (TransactionConflict)
    if err.code ~= "TransactionCanceledException" or
      not only_transient(reasons_of(err, #targets)) then
      return nil, err
    end
    if not pause(ctx, ctx.client.retry:backoff(10, 200, tries)) then
      return nil, new_error("DeadlineExceeded", "the call's deadline passed while reads met " ..
        "transactions in progress", { cause = err })
    end
  end
end

--- Sends commit c once (now: the time it goes, when the caller has it). Outcomes:
--   { ok = true, res, twice }            it landed (this copy, or an earlier one: trusted);
--                                        twice: the transport sent it twice
--   { conflict = true, items, maybe }    refused by a condition; items: per action the item
--                                        the server returned (AV map), "moved" (its
--                                        condition failed, the item untold), "as read" (its
--                                        condition held), or nil (not said); maybe: an
--                                        earlier copy may have landed
--   { transient = true, err, moved }     refused for now (a transaction in progress, another
--                                        Region writing): read again and run again; moved:
--                                        the actions the reasons name
--   { lost = true, err }                 no answer that says: it may or may not have landed
--   { fatal = true, err }                refused for good (this copy did not land)
function _M.send(ctx, c, now)
  local info = ctx.info
  info.requests = info.requests + 1
  c.sends = c.sends + 1
  c.first_sent = c.first_sent or now or ctx.clock()
  local res, err, earlier
  if c.single then
    local a = c.actions[1]
    -- an update is sent as the body its plan wrote (plan.write), other writes as requests
    res, err, earlier = ctx.client:_call(a.op, a.body or a.req, { deadline = ctx.deadline,
      plain = a.op == "UpdateItem" and "Attributes" or nil, return_maybe = true,
      table = a.target.table })
  else
    res, err, earlier = ctx.client:_call("TransactWriteItems", c.req, { deadline = ctx.deadline,
      return_maybe = true })
  end
  if res then
    _M.add_capacity(info, res)
    -- a transport that sent the request twice says so
    return { ok = true, res = res, twice = earlier == "maybe" }
  end
  local maybe = err.applied == "maybe"
  if c.single and err.code == "ConditionalCheckFailedException" then
    -- ALL_OLD: the item as it is now; a server that ignores it says nothing (nil)
    return { conflict = true, items = { err.item }, maybe = maybe, err = err }
  end
  if not c.single and err.code == "TransactionCanceledException" then
    local reasons = reasons_of(err, #c.actions)
    if reasons and only_transient(reasons) then
      local busy = {}
      for k, r in ipairs(reasons) do
        if r.code ~= "None" then busy[#busy + 1] = k end
      end
      return { transient = true, err = err, moved = busy }
    end
    local fatal = {}
    for k, r in ipairs(reasons or {}) do
      if r.code ~= "None" and r.code ~= "ConditionalCheckFailed" and not TRANSIENT[r.code] then
        local t = c.actions[k].target
        fatal[#fatal + 1] = { name = t.name, label = t.label, code = r.code,
          message = r.message }
      end
    end
    if reasons and #fatal == 0 then
      local items, any = {}, false
      for k, r in ipairs(reasons) do
        if r.code == "ConditionalCheckFailed" then
          any = true
          items[k] = r.item or "moved"   -- "moved": the server did not say how
        elseif r.code == "None" then
          items[k] = "as read"    -- its condition held: the item is in the state it was read in
        end
      end
      if any then return { conflict = true, items = items, maybe = maybe, err = err } end
      return { transient = true, err = err }
    end
    if #fatal > 0 then
      local parts = {}
      for _, f in ipairs(fatal) do
        parts[#parts + 1] = f.label .. ": " .. f.code .. (f.message and (" (" ..
          tostring(f.message) .. ")") or "")
      end
      err.reasons = fatal
      err.message = "transaction cancelled: " .. table.concat(parts, "; ")
    end
    return { fatal = true, err = err }
  end
  if CONFLICT_CODES[err.code] then return { transient = true, err = err } end
  if maybe then return { lost = true, err = err } end
  return { fatal = true, err = err }
end

return _M
