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
local update_body, decode = core.update_body, core.decode
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

--- An expression builder: placeholders for names (one per name) and values.
function _M.builder()
  return setmetatable({ names = {}, values = {}, nn = 0, nv = 0, by_name = {} }, Names)
end

function Names:name(n)
  local p = self.by_name[n]
  if not p then
    self.nn = self.nn + 1
    p = NAME_P[self.nn]
    self.by_name[n] = p
    self.names[p] = n
  end
  return p
end

function Names:value(av)
  self.nv = self.nv + 1
  local p = VALUE_P[self.nv]
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
-- specs) from the body it sends: core.update_body is the one writer of an update's request.
local LAZY_REQ = { __index = function(a, k)
  if k ~= "req" then return nil end
  local req = assert(decode(rawget(a, "body")))
  rawset(a, "req", req)
  return req
end }

-- The body of the UpdateItem that carries an update (core.update_body): the condition is
-- rules.condition's, its placeholders after the update's own (the sets, the version, the
-- tokens, then the removals). body | nil, "too long" | nil, err
local function update_request(t, s, sets, nav, removes, version_av, tokens_av)
  local cfg, k = t.cfg, #sets
  local nv = k + (tokens_av and 2 or 1)
  local b = setmetatable({ names = {}, values = {}, nn = nv + #removes, nv = nv,
    by_name = { [cfg.version] = NAME_P[k + 1],
      [cfg.token_attr] = tokens_av and NAME_P[k + 2] or nil } }, Names)
  local cond = rules.condition(b, cfg, t.names, s)
  if #cond > _M.MAX_EXPRESSION_BYTES then return nil, "too long" end
  local body, why, detail = update_body(t.table, t.kav, sets, nav, removes, cfg.version,
    version_av, tokens_av and cfg.token_attr, tokens_av, cond, b.names, b.values,
    RETURN_VALUES[cfg.returns or "stored"], _M.MAX_EXPRESSION_BYTES)
  if body then return body end
  if why == "UpdateExpression" then return nil, "too long" end
  return nil, invalid("the write cannot be sent: " .. tostring(detail) .. "; nothing was written")
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
  local override = { [cfg.version] = version_av,
    [cfg.token_attr] = tokens_av or (cfg.mode == "put" and s.hav) or nil }
  for _, n in ipairs(names) do
    if result[n] == nil then override[n] = kav[n] end
  end
  -- the item doc when the read kept one (state.of): compared in C, not made into tables
  local current = s.exists and (s.doc or s.item) or nil
  -- what changed (an update marshals only that) and the size as stored
  local ok, sets, nav, removes, size = pcall(plan_diff, current, result,
    managed_names(cfg, names), override, cfg.mode == "update")
  if not ok then return nil, invalid("item cannot be stored: " .. tostring(sets)) end

  for _, n in ipairs(names) do
    if nav[n] == nil then
      nav[n] = kav[n]
    elseif not av_equal(nav[n], kav[n]) then
      return nil, invalid(("the function changed key attribute '%s'; nothing was written")
        :format(n))
    end
  end
  local given = nav[cfg.version]
  if given ~= nil then
    local stored = current and current[cfg.version]
    if stored == nil or not av_equal(given, stored) then
      return nil, invalid(("the function changed the version attribute '%s' (versions are " ..
        "the module's); nothing was written"):format(cfg.version))
    end
  end
  if current and #sets == 0 and #removes == 0 then return false end
  if size > _M.MAX_ITEM_BYTES then
    return nil, new_error("ItemTooLarge", ("item would be %d bytes; DynamoDB's limit is %d")
      :format(size, _M.MAX_ITEM_BYTES))
  end

  local kind = s.exists and "update" or "create"
  -- op, req, after and whole are set below; named here, the table is made at its size once
  local a = { kind = kind, target = t, read = s, version = version, size = size,
    pushes = cfg.tokens > 0, result = result, version_av = version_av,
    op = nil, req = nil, body = nil, after = nil, whole = nil }
  -- an expired item is replaced whole, as if it were absent
  if cfg.mode == "update" and not s.expired then
    local body, why = update_request(t, s, sets, nav, removes, version_av, tokens_av)
    if body then
      a.op, a.body = "UpdateItem", body
      -- the item as stored after it, made when asked (_M.whole): most calls never ask
      a.after = { current = current, removes = removes, nav = nav, tokens_av = tokens_av }
      return setmetatable(a, LAZY_REQ)
    end
    if why ~= "too long" then return nil, why end
    -- an update DynamoDB cannot take in one expression: the whole item, as in put mode
    ok, sets, nav = pcall(plan_diff, current, result, managed_names(cfg, names), override,
      false)
    if not ok then return nil, invalid("item cannot be stored: " .. tostring(sets)) end
    for _, n in ipairs(names) do nav[n] = nav[n] or kav[n] end
    a.fallback = "put"
  end
  local item = {}
  for n, v in pairs(nav) do item[n] = v end
  -- without tokens of its own, a put keeps the history others wrote: it still tells them
  -- what became of their writes
  item[cfg.version], item[cfg.token_attr] = version_av, tokens_av or s.hav
  local b = _M.builder()
  a.op, a.whole = "PutItem", item
  a.req = finish({ TableName = t.table, Item = item,
    ConditionExpression = rules.condition(b, cfg, names, s) }, b)
  local why = over_limits(a.req)
  if why then return nil, invalid("the write cannot be sent: " .. why) end
  return a
end

--- The item an action stores (an AttributeValue map), false when it stores none.
function _M.whole(a)
  if a.whole == nil and a.after then
    local f, cfg = a.after, a.target.cfg
    local whole = {}
    for n, v in pairs(item_av(f.current or {})) do whole[n] = v end
    for _, n in ipairs(f.removes) do whole[n] = nil end
    for n, v in pairs(f.nav) do whole[n] = v end
    whole[cfg.version], whole[cfg.token_attr] = a.version_av, f.tokens_av
    a.whole, a.after = whole, nil
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
  local c = { token = token, actions = actions, single = single, sends = 0 }
  if not single then
    local items = {}
    for i, a in ipairs(actions) do items[i] = _M.txn_item(a) end
    c.req = { TransactItems = items, ClientRequestToken = token,
      ReturnConsumedCapacity = "TOTAL" }
  end
  return c
end

return _M
