--- ddb.engine.plan: turns what the caller's function returned for one item into the write
-- (or check) that carries it, conditioned on the state it was planned from (ddb.engine.rules),
-- with the version stepped exactly and the commit's token pushed into the item's history.
-- Checks DynamoDB's documented limits before anything is sent.
-- @module ddb.engine.plan

local core = require "ddb.core"
local ddb = require "ddb"
local rules = require "ddb.engine.rules"

local type, pairs, ipairs, pcall, tostring, setmetatable, getmetatable, next =
  type, pairs, ipairs, pcall, tostring, setmetatable, getmetatable, next
local rawget, rawset, assert = rawget, rawset, assert
local concat, sort = table.concat, table.sort
local plan_diff, history_push, av_equal = core.plan_diff, core.history_push, core.av_equal
local update_plan, decode = core.update_plan, core.decode
local version_add, item_size, item_av = core.version_add, core.item_size, core.item_av
local new_error = ddb.new_error

local _M = {}

_M.MAX_ITEM_BYTES = 400 * 1024
_M.MAX_EXPRESSION_BYTES = 4096          -- "the maximum length of any expression string"
_M.MAX_SUBSTITUTION_BYTES = 2 * 1024 * 1024

local function invalid(message)
  return new_error("ValidationError", message)
end
_M.invalid = invalid

-- -----------------------------------------------------------------------------
-- Expressions
-- -----------------------------------------------------------------------------
local Names = {}
Names.__index = Names

-- "#n1", ":v1", ...: made once, not per write
local function placeholders(prefix)
  return setmetatable({}, { __index = function(t, i)
    local p = prefix .. i
    t[i] = p
    return p
  end })
end
local NAME_P, VALUE_P = placeholders("#n"), placeholders(":v")
-- an update's condition is written before the update knows how many placeholders it takes
-- itself: core.update_plan numbers these after its own
local COND_NAME_P, COND_VALUE_P = placeholders("#c"), placeholders(":c")

--- An expression builder: placeholders for names (one per name) and values. by_name: names
-- that have placeholders already; name_p, value_p: the placeholders (default #n1, :v1, ...).
function _M.builder(by_name, name_p, value_p)
  return setmetatable({ names = {}, values = {}, nn = 0, nv = 0, by_name = by_name or {},
    name_p = name_p or NAME_P, value_p = value_p or VALUE_P }, Names)
end

function Names:name(n)
  local p = self.by_name[n]
  if not p then
    self.nn = self.nn + 1
    p = self.name_p[self.nn]
    self.by_name[n] = p
    self.names[p] = n
  end
  return p
end

function Names:value(av)
  self.nv = self.nv + 1
  local p = self.value_p[self.nv]
  self.values[p] = av
  return p
end

function Names:into(req)
  if next(self.names) then req.ExpressionAttributeNames = self.names end
  if next(self.values) then req.ExpressionAttributeValues = self.values end
  return req
end

-- A request's sizes against DynamoDB's expression limits: nil when it fits, else the reason.
local EXPRESSIONS = { "UpdateExpression", "ConditionExpression" }
local function over_limits(req)
  for i = 1, #EXPRESSIONS do
    local field = EXPRESSIONS[i]
    local e = req[field]
    if e and #e > _M.MAX_EXPRESSION_BYTES then
      return ("its %s would be %d bytes (DynamoDB's limit is %d)"):format(field, #e,
        _M.MAX_EXPRESSION_BYTES)
    end
  end
  return nil
end
_M.over_limits = over_limits

-- -----------------------------------------------------------------------------
-- One item's write
-- -----------------------------------------------------------------------------
-- The attributes a write sets itself: the version, the tokens and the key. Made once per
-- store (its cfg and key names), not per write; plan_diff only reads it.
local MANAGED = setmetatable({}, { __mode = "k" })
local function managed_names(cfg, names)
  local known = MANAGED[cfg]
  if known and known.names == names then return known.set end
  local m = { [cfg.version] = true, [cfg.token_attr] = true }
  for _, n in ipairs(names) do m[n] = true end
  MANAGED[cfg] = { names = names, set = m }
  return m
end

--- The version a write from state s stores: version_start for an item without one, else
-- s.version + version_step, exactly. version text | nil, err.
function _M.next_version(cfg, s)
  if not s.exists or not s.version then
    return (core.version_parse(cfg.version_start))
  end
  local v, why = version_add(s.version, cfg.version_step)
  if not v then
    return nil, invalid(("the item's version %s cannot be stepped: %s; nothing was written")
      :format(s.version, why))
  end
  return v
end

-- ReturnValues of an update, by the table's `returns` setting
local RETURN_VALUES = { stored = "ALL_NEW", written = "UPDATED_NEW" }

-- An update's request, made only when something asks for it (a dry run, a transaction, the
-- specs) from the body it sends: core.update_plan is the one writer of an update's request.
local LAZY_REQ = { __index = function(a, k)
  if k ~= "req" then return nil end
  local req = assert(decode(rawget(a, "body")))
  rawset(a, "req", req)
  return req
end }

-- What a write refuses when the function changed what only the module writes.
local function changed_key(name)
  return invalid(("the function changed key attribute '%s'; nothing was written"):format(name))
end

local function changed_version(name)
  return invalid(("the function changed the version attribute '%s' (versions are the " ..
    "module's); nothing was written"):format(name))
end

-- The update of target t from state s to result, planned and written in C (core.update_plan):
-- body, size | false (nothing changed) | nil, err | nil, "too long", size (an update
-- DynamoDB cannot take in one expression). The condition is rules.condition's, written with
-- placeholders that core.update_plan numbers after the update's own (the version and the
-- tokens named once).
local function update(t, s, result, current, version_av, tokens_av)
  local cfg = t.cfg
  local b = _M.builder({ [cfg.version] = "#V", [cfg.token_attr] = tokens_av and "#T" or nil },
    COND_NAME_P, COND_VALUE_P)
  local cond = rules.condition(b, cfg, t.names, s)
  local ok, body, size, detail, full = pcall(update_plan, t.table, t.kav, t.names, current,
    result, cfg.version, version_av, cfg.token_attr, tokens_av, cond, b.names, b.values,
    RETURN_VALUES[cfg.returns or "stored"], _M.MAX_EXPRESSION_BYTES)
  if not ok then return nil, invalid("item cannot be stored: " .. tostring(body)) end
  if body ~= nil then return body, size end
  if size == "key" then
    return nil, changed_key(detail)
  elseif size == "version" then
    return nil, changed_version(detail)
  elseif size == "encode" then
    return nil, invalid("the write cannot be sent: " .. tostring(detail) ..
      "; nothing was written")
  end
  return nil, "too long", full
end

-- A request's condition members (the builder's names and values) and what every write asks
-- for back.
local function finish(req, b)
  b:into(req)
  req.ReturnValuesOnConditionCheckFailure = "ALL_OLD"
  req.ReturnConsumedCapacity = "TOTAL"
  return req
end

--- The delete of an item read in state s (nil when there is nothing to delete).
function _M.delete(t, s)
  if not s.exists then return nil end
  local b = _M.builder()
  local req = { TableName = t.table, Key = t.kav,
    ConditionExpression = rules.condition(b, t.cfg, t.names, s) }
  return { kind = "delete", target = t, read = s, op = "DeleteItem", req = finish(req, b),
    whole = false, pushes = false }
end

--- A ConditionCheck that the item is still in state s (transactions).
function _M.check(t, s)
  local b = _M.builder()
  local req = { TableName = t.table, Key = t.kav,
    ConditionExpression = rules.condition(b, t.cfg, t.names, s) }
  b:into(req)
  return { kind = "check", target = t, read = s, op = "ConditionCheck", req = req,
    whole = s.exists and s.item or false, pushes = false }
end

-- The checks a put makes itself (an update's are core.update_plan's): the key and the
-- version as the item has them (nav: the AttributeValues plan_diff made; key attributes the
-- function left out are added from the key). nil | err
local function put_checks(t, nav, current)
  local cfg, kav = t.cfg, t.kav
  for _, n in ipairs(t.names) do
    if nav[n] == nil then
      nav[n] = kav[n]
    elseif not av_equal(nav[n], kav[n]) then
      return changed_key(n)
    end
  end
  local given = nav[cfg.version]
  if given ~= nil then
    local stored = current and current[cfg.version]
    if stored == nil or not av_equal(given, stored) then return changed_version(cfg.version) end
  end
  return nil
end

local function too_large(size)
  return new_error("ItemTooLarge", ("item would be %d bytes; DynamoDB's limit is %d")
    :format(size, _M.MAX_ITEM_BYTES))
end

--- The write that stores result (a plain item the function returned) for target t read in
-- state s, with the commit's token. Returns the action, false when nothing changed, or
-- nil, err for a result that cannot be written.
function _M.write(t, s, result, token)
  local cfg, names, kav = t.cfg, t.names, t.kav
  if type(result) ~= "table" or getmetatable(result) ~= nil then
    return nil, invalid("the function must return the item (a plain table), " ..
      "optimistic.DELETE or optimistic.NOTHING; it returned " .. tostring(result))
  end
  if result[cfg.token_attr] ~= nil then
    return nil, invalid(("attribute '%s' holds the module's write tokens and cannot be set")
      :format(cfg.token_attr))
  end
  local version, verr = _M.next_version(cfg, s)
  if not version then return nil, verr end
  local version_av = { N = version }
  local tokens_av
  if cfg.tokens > 0 then
    tokens_av = { S = history_push(s.hav and type(s.hav.S) == "string" and s.hav.S or nil,
      token, t.keep or cfg.tokens) }
  end
  -- the item doc when the read kept one (state.of): compared in C, not made into tables
  local current = s.exists and (s.doc or s.item) or nil
  local kind = s.exists and "update" or "create"
  -- op, req, body and whole are set below; named here, the table is made at its size once
  local a = { kind = kind, target = t, read = s, version = version, size = nil,
    pushes = cfg.tokens > 0, result = result, version_av = version_av, tokens_av = tokens_av,
    current = current, op = nil, req = nil, body = nil, whole = nil }
  -- an expired item is replaced whole, as if it were absent
  if cfg.mode == "update" and not s.expired then
    local body, size, full = update(t, s, result, current, version_av, tokens_av)
    if body then
      if size > _M.MAX_ITEM_BYTES then return nil, too_large(size) end
      -- the item as stored after it is made when asked (_M.whole): most calls never ask
      a.op, a.body, a.size = "UpdateItem", body, size
      return setmetatable(a, LAZY_REQ)
    end
    if body == false then return false end
    if size ~= "too long" then return nil, size end
    if full > _M.MAX_ITEM_BYTES then return nil, too_large(full) end
    -- an update DynamoDB cannot take in one expression: the whole item, as in put mode
    a.fallback = "put"
  end
  local override = { [cfg.version] = version_av,
    [cfg.token_attr] = tokens_av or (cfg.mode == "put" and s.hav) or nil }
  for _, n in ipairs(names) do
    if result[n] == nil then override[n] = kav[n] end
  end
  local ok, sets, nav, removes, size = pcall(plan_diff, current, result,
    managed_names(cfg, names), override, false)
  if not ok then return nil, invalid("item cannot be stored: " .. tostring(sets)) end
  local err = put_checks(t, nav, current)
  if err then return nil, err end
  if current and #sets == 0 and #removes == 0 and not a.fallback then return false end
  if size > _M.MAX_ITEM_BYTES then return nil, too_large(size) end
  local item = {}
  for n, v in pairs(nav) do item[n] = v end
  -- without tokens of its own, a put keeps the history others wrote: it still tells them
  -- what became of their writes
  item[cfg.version], item[cfg.token_attr] = version_av, tokens_av or s.hav
  local b = _M.builder()
  a.op, a.whole, a.size = "PutItem", item, size
  a.req = finish({ TableName = t.table, Item = item,
    ConditionExpression = rules.condition(b, cfg, names, s) }, b)
  local why = over_limits(a.req)
  if why then return nil, invalid("the write cannot be sent: " .. why) end
  return a
end

--- The item an action stores (an AttributeValue map), false when it stores none.
function _M.whole(a)
  if a.whole == nil and a.op == "UpdateItem" and a.result then
    -- an update's: the item as read, what changed set and what went removed
    local t, cfg = a.target, a.target.cfg
    local _, nav, removes = plan_diff(a.current, a.result, managed_names(cfg, t.names), nil,
      true)
    local whole = {}
    for n, v in pairs(item_av(a.current or {})) do whole[n] = v end
    for _, n in ipairs(removes) do whole[n] = nil end
    for n, v in pairs(nav) do whole[n] = v end
    for _, n in ipairs(t.names) do
      if nav[n] == nil then whole[n] = t.kav[n] end
    end
    whole[cfg.version], whole[cfg.token_attr] = a.version_av, a.tokens_av
    a.whole = whole
  end
  return a.whole
end

--- A put of an item the function did not read, with overwrite: the attributes given set
-- whatever is stored, the version stepped in the expression; no condition, so it proves and
-- blocks nothing when an answer is lost.
function _M.overwrite(t, nav)
  local cfg = t.cfg
  local b = _M.builder()
  local attrs = {}
  for n in pairs(nav) do
    if n ~= t.names[1] and n ~= t.names[2] then attrs[#attrs + 1] = n end
  end
  sort(attrs)
  local parts = {}
  for _, n in ipairs(attrs) do parts[#parts + 1] = b:name(n) .. " = " .. b:value(nav[n]) end
  local v = b:name(cfg.version)
  parts[#parts + 1] = v .. " = if_not_exists(" .. v .. ", " ..
    b:value({ N = tostring(cfg.version_start - cfg.version_step) }) .. ") + " ..
    b:value({ N = tostring(cfg.version_step) })
  local req = b:into({ TableName = t.table, Key = t.kav,
    UpdateExpression = "SET " .. concat(parts, ", ") })
  local why = over_limits(req)
  if why then return nil, invalid(t.label .. " cannot be sent: " .. why) end
  return { kind = "overwrite", target = t, read = nil, op = "UpdateItem", req = req,
    whole = nav, size = item_size(nav), pushes = false }
end

-- -----------------------------------------------------------------------------
-- Commits
-- -----------------------------------------------------------------------------
local TXN_OP = { UpdateItem = "Update", PutItem = "Put", DeleteItem = "Delete",
  ConditionCheck = "ConditionCheck" }

--- The TransactWriteItems element of an action.
function _M.txn_item(a)
  local r = a.req
  return { [TXN_OP[a.op]] = {
    TableName = r.TableName, Key = r.Key, Item = r.Item, UpdateExpression = r.UpdateExpression,
    ConditionExpression = r.ConditionExpression,
    ExpressionAttributeNames = r.ExpressionAttributeNames,
    ExpressionAttributeValues = r.ExpressionAttributeValues,
    ReturnValuesOnConditionCheckFailure = r.ConditionExpression and "ALL_OLD" or nil,
  } }
end

--- A commit of actions under one token: sent as the one action's own request (single), or as
-- one TransactWriteItems carrying the token as ClientRequestToken.
function _M.commit(actions, token, single)
  -- req, first_sent, maybe and cause are set later; named here, the table is made at its
  -- size once
  local c = { token = token, actions = actions, single = single, sends = 0, req = nil,
    first_sent = nil, maybe = nil, cause = nil }
  if not single then
    local items = {}
    for i, a in ipairs(actions) do items[i] = _M.txn_item(a) end
    c.req = { TransactItems = items, ClientRequestToken = token,
      ReturnConsumedCapacity = "TOTAL" }
  end
  return c
end

return _M
