--- ddb.transact: optimistic read-modify-write of several items at once (in one or several
-- tables), read with one TransactGetItems and committed with one TransactWriteItems.
-- It is ddb.optimistic's with_item for many items, and is attached to it as
-- `optimistic.with_items`.
--
--     local items, info = optimistic.with_items(client_or_store, keys, fn[, opts])
--
-- `keys` names up to 100 items, as a list or as a map of names (your choice):
--
--     { from = { table = "Accounts", key = { pk = "alice" } },
--       to = { table = ..., key = ... } }
--
-- With a store (`optimistic.new{...}`) as the first argument, a bare key map means an item
-- of the store's table: `{ { pk = "alice" }, { pk = "bob" } }`.
--
-- `fn(items)` gets a fresh copy of each item under the same index or name (nil when the
-- item does not exist) and returns `results[, puts]`.
--
-- `results`: a table with the same indices or names (usually `items` itself, changed in
-- place); per item:
--
-- - the item (a plain table): written if it changed (only what changed, version + 1,
--   write tokens carried forward), created if it was absent;
-- - `optimistic.DELETE`: deleted;
-- - nil, `optimistic.NOTHING`, or the item unchanged: not written.
--
-- Every item read and not written gets a ConditionCheck on the version read (or on its
-- absence), so the commit lands only if nothing the function read has moved.
-- `results == optimistic.NOTHING` writes nothing at all; nil is refused (a forgotten
-- return is never taken as "no change"), as by with_item.
--
-- `puts` (optional): items the function did not read, a list of
-- `{ table = "T", item = {...} }` (table defaults to the store's), created at version 1
-- conditioned on their absence. With `overwrite = true` the attributes given are set
-- whatever is stored (others are kept) and the version is incremented: no condition.
-- A put whose item exists already fails with `err.code == "ItemExists"` (running the
-- function again could not change that: it never sees that item) unless an item the
-- function read conflicted too, in which case it runs again.
--
-- Every item and every put is one action; at most 100 actions, 4 MB in all (the items as
-- they will be stored, and as read for deletes and checks), 400 KB per item, no item twice:
-- checked before sending (ValidationError, ItemTooLarge), nothing written.
--
-- Returns `items, info` on success: items under the same indices or names, each what is
-- now stored (`ddb.null` for none); `info` has `attempts`, `conflicts`, `requests`,
-- `resends`, `elapsed_ms`, `consumed_capacity`, `written`, `action` ("commit" or "none"),
-- `actions` (per index or name: "create", "update", "delete" or "none"), `extra` (the puts
-- as stored) and `conflicted` (the indices or names of the items that conflicted, first
-- conflict first). On failure `nil, err` as with_item: ConflictsExhausted,
-- DeadlineExceeded, OutcomeUnknown, ValidationError, ItemTooLarge, ItemExists, or the
-- server's error (a TransactionCanceledException for a reason other than a conflict has
-- `err.reasons`: `{ name, label, code, message }` per action that failed, named in
-- `err.message`).
--
-- Options (per call; with a store its settings are the defaults): `deadline_ms` (5000),
-- `max_attempts` (runs of the function, 10), `version_attribute`, `token_attribute`,
-- `tokens`, `mode` ("update" or "put"), `backoff_base_ms`, `backoff_cap_ms`, `on_conflict`
-- (`function(ctx)` with `keys`, `conflicted`, `attempt`, `conflicts`, `elapsed_ms`),
-- `key_schemas` (`{ [table] = { hash [, range] } }`; otherwise one DescribeTable per table
-- and client, cached).
--
-- Exactly once. Every commit carries a ClientRequestToken (its write token, 16 characters)
-- that the client's transport retries resend unchanged (the request body is encoded once),
-- and that is new for every run of the function; the same token goes into the write-token
-- history of every item the commit creates or updates. After a commit whose outcome is
-- unknown (`err.applied == "maybe"`), the items are read (or taken from the cancellation
-- reasons of a resend) and, transactions being all or nothing:
--
-- - any written item holds the commit's token: it was applied, success;
-- - any written item proves it can never land (another writer's token holds the version
--   it would have written): the function runs again;
-- - every written item is still as read: it has not landed so far, and the same commit is
--   sent again, same token (which DynamoDB deduplicates; both copies being conditioned
--   on the same versions, at most one can land where tokens are ignored), or, if some
--   other condition of it fails now, it cannot land and the function runs again;
-- - otherwise: OutcomeUnknown (`err.applied == "maybe"`).
--
-- Deletes leave no token: a commit made only of deletes (and checks) is proven not applied
-- while its items are still there unchanged, and is OutcomeUnknown when they are gone
-- after a lost answer (another writer may have deleted them). In a commit that also
-- creates or updates, those items decide for the deletes.
-- @module ddb.transact

local ddb = require "ddb"
local core = ddb.core

local type, pairs, ipairs, pcall, error, tostring, setmetatable, getmetatable, next =
  type, pairs, ipairs, pcall, error, tostring, setmetatable, getmetatable, next
local concat, sort, floor = table.concat, table.sort, math.floor
local monotonic_ms, marshal_item, item_size = core.monotonic_ms, core.marshal_item, core.item_size
local new_error = ddb.new_error

local _M = { _VERSION = ddb._VERSION }

_M.MAX_ACTIONS = 100
_M.MAX_TRANSACTION_BYTES = 4 * 1024 * 1024

-- ddb.optimistic is looked up on first use: it attaches with_items from this module, so
-- requiring it while this module loads would be a require loop.
local OPT, I
local function optimistic()
  if not OPT then
    OPT = require "ddb.optimistic"
    I = OPT._internal
  end
  return OPT
end

-- Cancellation reasons that say "try again later", not "your data moved" or "never".
local TRANSIENT = { TransactionConflict = true, ProvisionedThroughputExceeded = true,
  ThrottlingError = true, RequestLimitExceeded = true }

local WRITE_OP = { UpdateItem = "Update", PutItem = "Put", DeleteItem = "Delete" }

-- -----------------------------------------------------------------------------
-- Settings, keys and names
-- -----------------------------------------------------------------------------
local function opt_check(cond, name, what)
  if not cond then error(("with_items: option '%s' must be %s"):format(name, what), 4) end
end

local function settings(target, opts)
  local o = optimistic()
  local store = type(target) == "table" and getmetatable(target) == o.Store and target or nil
  local client = store and store.client or target
  if type(client) ~= "table" or type(client.call) ~= "function" then
    error("bad argument #1 to 'with_items' (a ddb client or an optimistic store expected)", 3)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #4 to 'with_items' (options table expected)", 3)
  end
  opts = opts or {}
  local function pick(name, field, default)
    local v = opts[name]
    if v == nil and store then v = store[field] end
    if v == nil then v = default end
    return v
  end
  local s = {
    client = client, store = store, default_table = store and store.table,
    version = pick("version_attribute", "version", "version"),
    token_attr = pick("token_attribute", "token_attr", "_ddb_tokens"),
    tokens = pick("tokens", "tokens", 8),
    mode = pick("mode", "mode", "update"),
    max_attempts = pick("max_attempts", "max_attempts", 10),
    deadline_ms = pick("deadline_ms", "deadline_ms", 5000),
    backoff_base_ms = pick("backoff_base_ms", "backoff_base_ms", 10),
    backoff_cap_ms = pick("backoff_cap_ms", "backoff_cap_ms", 200),
    on_conflict = pick("on_conflict", "on_conflict", nil),
    key_schemas = opts.key_schemas,
    per_table = {},
  }
  if s.tokens == false then s.tokens = 0 end
  opt_check(type(s.version) == "string" and #s.version > 0, "version_attribute",
    "a non-empty string")
  opt_check(type(s.token_attr) == "string" and #s.token_attr > 0 and s.token_attr ~= s.version,
    "token_attribute", "a non-empty string other than the version attribute")
  opt_check(type(s.tokens) == "number" and s.tokens >= 0 and s.tokens <= 100 and
    s.tokens == floor(s.tokens), "tokens", "a whole number from 0 to 100")
  opt_check(s.mode == "update" or s.mode == "put", "mode", "'update' or 'put'")
  opt_check(type(s.max_attempts) == "number" and s.max_attempts >= 1, "max_attempts",
    "a number >= 1")
  opt_check(type(s.deadline_ms) == "number" and s.deadline_ms > 0, "deadline_ms",
    "a positive number")
  opt_check(s.on_conflict == nil or type(s.on_conflict) == "function", "on_conflict",
    "a function")
  opt_check(s.key_schemas == nil or type(s.key_schemas) == "table", "key_schemas",
    "a table of table name -> key attribute names")
  return s
end

-- What optimistic's building blocks call `self`: one per table, sharing the settings.
local function table_store(s, name)
  local ps = s.per_table[name]
  if not ps then
    ps = { table = name, version = s.version, token_attr = s.token_attr, tokens = s.tokens,
      mode = s.mode }
    s.per_table[name] = ps
  end
  return ps
end

-- client -> { table -> key attribute names }, so DescribeTable runs once per table.
local schema_cache = setmetatable({}, { __mode = "k" })

local function key_schema(s, name, copts)
  local given = s.key_schemas and s.key_schemas[name]
  if given ~= nil then
    if type(given) ~= "table" or type(given[1]) ~= "string" then
      error(("with_items: key_schemas['%s'] must be a list of one or two attribute names")
        :format(name), 4)
    end
    return given
  end
  if s.store and name == s.store.table then return s.store:key_schema(copts) end
  local cache = schema_cache[s.client]
  if not cache then
    cache = {}
    schema_cache[s.client] = cache
  end
  if cache[name] then return cache[name] end
  local names, err = I.describe_key(s.client, name, copts)
  if not names then return nil, err end
  cache[name] = names
  return names
end

local function key_text(kav, names)
  local parts = {}
  for _, n in ipairs(names) do
    local _, v = next(kav[n])
    parts[#parts + 1] = n .. "=" .. tostring(v)
  end
  return concat(parts, ", ")
end

-- One string per item, for "no two actions on one item" (numbers compare by value).
local function identity(table_name, kav, names)
  local parts = { table_name }
  for _, n in ipairs(names) do
    local t, v = next(kav[n])
    if t == "N" then v = core.number_canonical(v) or v end
    parts[#parts + 1] = n .. "\0" .. t .. "\0" .. v
  end
  return concat(parts, "\0\0")
end

local function describe_name(name)
  return type(name) == "number" and ("#" .. name) or ("'" .. tostring(name) .. "'")
end

local function names_text(names)
  local t = {}
  for _, n in ipairs(names) do t[#t + 1] = describe_name(n) end
  return #t > 0 and concat(t, ", ") or "no item read"
end

-- keys (a list, or a map of string names) -> refs { name, table, key } in a stable order.
local function collect_refs(keys, s)
  local refs, count = {}, 0
  for _ in pairs(keys) do count = count + 1 end
  if count > 0 and #keys == count then
    for i = 1, count do refs[i] = { name = i, spec = keys[i] } end
  else
    local names = {}
    for k in pairs(keys) do
      if type(k) ~= "string" then
        error("bad argument #2 to 'with_items' (keys must be a list, or a map with string " ..
          "names)", 3)
      end
      names[#names + 1] = k
    end
    sort(names)
    for i, k in ipairs(names) do refs[i] = { name = k, spec = keys[k] } end
  end
  for _, r in ipairs(refs) do
    local e = r.spec
    local where = "keys[" .. describe_name(r.name) .. "]"
    if type(e) ~= "table" then
      error("bad argument #2 to 'with_items' (" .. where .. " must be a table)", 3)
    end
    if type(e.key) == "table" and getmetatable(e.key) == nil then
      r.table, r.key = e.table or s.default_table, e.key
    elseif s.default_table and e.table == nil then
      r.table, r.key = s.default_table, e
    else
      error("bad argument #2 to 'with_items' (" .. where .. " must be { table = name, key = " ..
        "{...} }" .. (s.default_table and " or a key" or "") .. ")", 3)
    end
    if type(r.table) ~= "string" or r.table == "" then
      error("bad argument #2 to 'with_items' (" .. where .. ".table must be a table name)", 3)
    end
    r.spec = nil
  end
  return refs
end

-- Resolves each ref's key schema and AttributeValue key; refuses an item named twice.
local function bind_keys(s, refs, seen, copts)
  for _, r in ipairs(refs) do
    if not r.kav then
      local names, err = key_schema(s, r.table, copts)
      if not names then return nil, err end
      r.names, r.ps = names, table_store(s, r.table)
      local kav, kerr = I.key_av(r.ps, r.key, names)
      if not kav then
        kerr.message = r.what .. " " .. describe_name(r.name) .. ": " .. kerr.message
        return nil, kerr
      end
      r.kav = kav
      r.label = describe_name(r.name) .. " (" .. r.table .. " " .. key_text(kav, names) .. ")"
      if r.what ~= "item" then r.label = r.what .. " " .. r.label end
    end
    local id = identity(r.table, r.kav, r.names)
    if seen[id] then
      return nil, new_error("ValidationError", ("%s and %s are the same item; a transaction " ..
        "can act on an item only once"):format(seen[id], r.label))
    end
    seen[id] = r.label
  end
  return true
end

-- -----------------------------------------------------------------------------
-- Requests
-- -----------------------------------------------------------------------------
local function add_capacity(info, res)
  local cc = res and res.ConsumedCapacity
  if type(cc) ~= "table" then return end
  if cc.CapacityUnits ~= nil then cc = { cc } end
  for _, c in ipairs(cc) do
    if type(c) == "table" and type(c.CapacityUnits) == "number" then
      info.consumed_capacity = info.consumed_capacity + c.CapacityUnits
    end
  end
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

local function pause(s, ms, deadline)
  if monotonic_ms() + ms >= deadline then return false end
  if ms > 0 then
    local t = s.client.transport
    if t and t.sleep then t:sleep(ms) else core.sleep_ms(ms) end
  end
  return true
end

-- Reads targets ({ table, kav }) in one strongly consistent snapshot: a list of
-- AttributeValue maps, false where there is no item.
local function read_all(s, targets, info, copts, deadline)
  if #targets == 0 then return {} end
  local gets = {}
  for i, t in ipairs(targets) do gets[i] = { Get = { TableName = t.table, Key = t.kav } } end
  local tries = 0
  while true do
    tries = tries + 1
    info.requests = info.requests + 1
    local res, err = s.client:call("TransactGetItems", { TransactItems = gets,
      ReturnConsumedCapacity = "TOTAL" }, copts)
    if res then
      add_capacity(info, res)
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
    if err.code ~= "TransactionCanceledException" or tries >= s.max_attempts or
      not only_transient(reasons_of(err, #targets)) then
      return nil, err
    end
    if not pause(s, s.client.retry:backoff(s.backoff_base_ms, s.backoff_cap_ms, tries),
      deadline) then
      return nil, new_error("DeadlineExceeded", "the call's deadline passed while reads met " ..
        "transactions in progress", { cause = err })
    end
  end
end

-- -----------------------------------------------------------------------------
-- Planning a commit
-- -----------------------------------------------------------------------------
local function finish_action(a, op, req)
  local body = { TableName = req.TableName, Key = req.Key, Item = req.Item,
    UpdateExpression = req.UpdateExpression, ConditionExpression = req.ConditionExpression,
    ExpressionAttributeNames = req.ExpressionAttributeNames,
    ExpressionAttributeValues = req.ExpressionAttributeValues,
    ReturnValuesOnConditionCheckFailure = "ALL_OLD" }
  a.action = { [op] = body }
  return a
end

local function check_action(r, cur, read_version)
  local b = I.expr_builder()
  local req = { TableName = r.table, Key = r.kav,
    ConditionExpression = I.condition(r.ps, b, read_version, cur and true or false, r.names) }
  if next(b.names) then req.ExpressionAttributeNames = b.names end
  if next(b.values) then req.ExpressionAttributeValues = b.values end
  return finish_action({ kind = "check" }, "ConditionCheck", req)
end

-- A put with overwrite = true: the given attributes set whatever is stored, the version
-- moved on atomically, the token history left as it is (it stays true for the versions it
-- names; this write adds no entry, so it proves nothing about this commit).
local function overwrite_action(r, nav)
  local b = I.expr_builder()
  local attrs = {}
  for n in pairs(nav) do
    if n ~= r.names[1] and n ~= r.names[2] then attrs[#attrs + 1] = n end
  end
  sort(attrs)
  local parts = {}
  for _, n in ipairs(attrs) do parts[#parts + 1] = b:name(n) .. " = " .. b:value(nav[n]) end
  local v = b:name(r.ps.version)
  parts[#parts + 1] = v .. " = if_not_exists(" .. v .. ", " .. b:value({ N = "0" }) .. ") + " ..
    b:value({ N = "1" })
  local req = { TableName = r.table, Key = r.kav, UpdateExpression = "SET " .. concat(parts, ", "),
    ExpressionAttributeNames = b.names, ExpressionAttributeValues = b.values }
  return finish_action({ kind = "overwrite", whole = nav }, "Update", req)
end

local function invalid(message, fields)
  return new_error("ValidationError", message, fields)
end

-- The function's second result: items it did not read, as refs with the item attached.
local function collect_puts(s, puts)
  if puts == nil then return {} end
  if type(puts) ~= "table" or getmetatable(puts) ~= nil then
    return nil, invalid("the function's second result must be a list of puts " ..
      "({ table = name, item = {...} }); it returned " .. tostring(puts))
  end
  local count = 0
  for _ in pairs(puts) do count = count + 1 end
  if count ~= #puts then return nil, invalid("the function's puts must be a list") end
  local out = {}
  for i, p in ipairs(puts) do
    local where = "put #" .. i
    if type(p) ~= "table" or type(p.item) ~= "table" or getmetatable(p.item) ~= nil then
      return nil, invalid(where .. " must be { table = name, item = {...} }")
    end
    local tname = p.table or s.default_table
    if type(tname) ~= "string" or tname == "" then
      return nil, invalid(where .. " names no table (and there is no store's table to default to)")
    end
    if p.overwrite ~= nil and type(p.overwrite) ~= "boolean" then
      return nil, invalid(where .. ": overwrite must be a boolean")
    end
    if p.item[s.version] ~= nil or p.item[s.token_attr] ~= nil then
      return nil, invalid(("%s sets '%s' or '%s', which belong to the module")
        :format(where, s.version, s.token_attr))
    end
    local ok, nav = pcall(marshal_item, p.item)
    if not ok then return nil, invalid(where .. ": item cannot be stored: " .. tostring(nav)) end
    out[i] = { name = i, what = "put", table = tname, nav = nav, item = p.item,
      overwrite = p.overwrite or false }
  end
  return out
end

local function key_from_item(r, s, copts)
  local names, err = key_schema(s, r.table, copts)
  if not names then return nil, err end
  local key = {}
  for _, n in ipairs(names) do
    if r.item[n] == nil then
      return nil, invalid(("put #%d (%s) lacks key attribute '%s'"):format(r.name, r.table, n))
    end
    key[n] = r.item[n]
  end
  r.key = key
  return true
end

-- Builds the commit for one run of the function: one action per item read (written, or
-- checked), one per put. Returns the commit, or false when there is nothing to write.
local function plan(refs, puts, current, versions, histories, results, token)
  local O = optimistic()
  local actions, writes, bytes = {}, 0, 0
  for i, r in ipairs(refs) do
    local cur = current[i] or nil
    local res = results[r.name]
    local a
    if res ~= nil and res ~= O.NOTHING then
      local op, req, kind, whole = I.plan_write(r.ps, r.names, r.kav, cur, versions[i], res,
        token, true)
      if op then
        a = finish_action({ kind = kind, whole = whole or req.Item }, WRITE_OP[op], req)
        writes = writes + 1
      elseif req ~= nil then
        req.message = "item " .. r.label .. ": " .. tostring(req.message)
        req.item = r.name
        return nil, req
      end
    end
    a = a or check_action(r, cur, versions[i])
    a.ref, a.ps, a.read, a.read_version = r, r.ps, cur, versions[i]
    a.version = versions[i] + 1
    a.read_top = histories[i] and histories[i][1] and histories[i][1].token
    bytes = bytes + item_size(a.whole or cur or r.kav)
    actions[i] = a
  end
  for _, p in ipairs(puts) do
    local a
    if p.overwrite then
      a = overwrite_action(p, p.nav)
    else
      local op, req, kind, whole = I.plan_write(p.ps, p.names, p.kav, nil, 0, p.item, token, true)
      if not op then
        req.message = p.label .. ": " .. tostring(req.message)
        return nil, req
      end
      a = finish_action({ kind = kind, whole = whole or req.Item }, WRITE_OP[op], req)
    end
    local size = item_size(a.whole)
    if size > O.MAX_ITEM_BYTES then
      return nil, new_error("ItemTooLarge", ("%s would be %d bytes; DynamoDB's limit is %d")
        :format(p.label, size, O.MAX_ITEM_BYTES))
    end
    a.ref, a.ps, a.read, a.read_version, a.version = p, p.ps, nil, 0, 1
    bytes = bytes + size
    writes = writes + 1
    actions[#actions + 1] = a
  end
  if writes == 0 then return false end
  if #actions > _M.MAX_ACTIONS then
    return nil, invalid(("the transaction would have %d actions (%d items read, %d puts); " ..
      "DynamoDB's limit is %d"):format(#actions, #refs, #puts, _M.MAX_ACTIONS))
  end
  if bytes > _M.MAX_TRANSACTION_BYTES then
    return nil, invalid(("the transaction's items would be %d bytes; DynamoDB's limit is %d")
      :format(bytes, _M.MAX_TRANSACTION_BYTES))
  end
  local items = {}
  for k, a in ipairs(actions) do items[k] = a.action end
  return { token = token, actions = actions, req = { TransactItems = items,
    ClientRequestToken = token, ReturnConsumedCapacity = "TOTAL" } }
end

-- -----------------------------------------------------------------------------
-- Resolving a commit whose outcome is unknown
-- -----------------------------------------------------------------------------
local function holds(a, cur)
  if a.read then
    return cur and I.version_of(a.ps, cur) == a.read_version or false
  end
  return not cur
end

-- view: per action of commit c, the item as it is now (false: absent).
-- "applied", "refuted" (can never land), "pending" (not landed; the same commit may be sent
-- again), "blocked" (not landed, and cannot land now: run the function again), "unknown".
local function resolve_commit(c, view)
  local pending, refuted, all_hold = false, false, true
  for k, a in ipairs(c.actions) do
    local cur = view[k] or nil
    if a.kind == "check" then
      if not holds(a, cur) then all_hold = false end
    elseif a.kind ~= "overwrite" then
      local r = I.resolve_write(a.ps, { token = c.token, kind = a.kind,
        read_version = a.read_version, version = a.version, read_top = a.read_top }, cur)
      if r == "applied" then return "applied" end
      if r == "refuted" then refuted = true
      elseif r == "pending" then pending = true
      else all_hold = false end
    end
  end
  if refuted then return "refuted" end
  if pending then return all_hold and "pending" or "blocked" end
  return "unknown"
end

-- What a cancellation's reasons say each item holds now; nil when some are not known.
local function view_from_reasons(c, reasons)
  local view = {}
  for k, a in ipairs(c.actions) do
    local r = reasons[k]
    if r.code == "None" then
      view[k] = a.read or false         -- its condition held: the item is as read
    elseif r.code == "ConditionalCheckFailed" and r.item then
      view[k] = r.item
    else
      return nil
    end
  end
  return view
end

-- -----------------------------------------------------------------------------
-- with_items
-- -----------------------------------------------------------------------------

--- Reads several items, runs fn on fresh copies, commits the result in one transaction
-- conditioned on every version read. See the module's header for the whole contract.
-- @param target a ddb client, or an optimistic store (its client, settings and table)
-- @param keys a list or a map of { table = name, key = {...} } (a bare key with a store)
-- @param fn function(items) -> results[, puts] | optimistic.NOTHING
-- @param opts optional options (deadline_ms, max_attempts, key_schemas, ...)
-- @return items, info | nil, err
function _M.with_items(target, keys, fn, opts)
  local O = optimistic()
  local s = settings(target, opts)
  if type(keys) ~= "table" then
    error("bad argument #2 to 'with_items' (table of keys expected)", 2)
  end
  if type(fn) ~= "function" then error("bad argument #3 to 'with_items' (function expected)", 2) end
  local refs = collect_refs(keys, s)
  local by_name = {}
  for _, r in ipairs(refs) do
    r.what = "item"
    by_name[r.name] = r
  end

  local started = monotonic_ms()
  local deadline = started + s.deadline_ms
  local copts = { deadline = deadline }
  local info = { attempts = 0, conflicts = 0, requests = 0, resends = 0, consumed_capacity = 0,
    written = false, conflicted = {}, actions = {} }
  local conflicted_seen = {}
  local live          -- the last commit sent while its outcome is unknown

  local function unknown(message, cause)
    info.elapsed_ms = monotonic_ms() - started
    return nil, new_error("OutcomeUnknown", message, { applied = "maybe", cause = cause,
      info = info, token = live.token })
  end

  local function fail(err)
    info.elapsed_ms = monotonic_ms() - started
    err.info = info
    if live then
      return unknown("a commit of this call may or may not have been applied, and its items " ..
        "cannot tell (" .. tostring(err.code) .. ")", err)
    end
    return nil, err
  end


  local function output(get)
    local out = {}
    for i, r in ipairs(refs) do
      local av = get(i)
      out[r.name] = av and I.strip(r.ps, av) or I.NO_ITEM
    end
    info.elapsed_ms = monotonic_ms() - started
    return out, info
  end

  local function note_conflict(names)
    info.conflicts = info.conflicts + 1
    for _, n in ipairs(names) do
      if not conflicted_seen[n] then
        conflicted_seen[n] = true
        info.conflicted[#info.conflicted + 1] = n
      end
    end
    if s.on_conflict then
      pcall(s.on_conflict, { keys = keys, conflicted = names, attempt = info.attempts,
        conflicts = info.conflicts, elapsed_ms = monotonic_ms() - started })
    end
  end

  if #refs > _M.MAX_ACTIONS then
    return fail(invalid(("%d items to read; a transaction holds at most %d")
      :format(#refs, _M.MAX_ACTIONS)))
  end
  local ok, berr = bind_keys(s, refs, {}, copts)
  if not ok then return fail(berr) end

  local function success(c, view)
    info.written = true
    info.action = "commit"
    info.extra = {}
    for k, a in ipairs(c.actions) do
      local now
      if view then now = view[k]
      elseif a.kind == "delete" then now = false
      elseif a.kind == "check" then now = a.read or false
      else now = a.whole end
      if k <= #refs then
        info.actions[a.ref.name] = a.kind == "check" and "none" or a.kind
      else
        info.extra[k - #refs] = now and I.strip(a.ps, now) or I.NO_ITEM
      end
      c.actions[k].now = now
    end
    return output(function(i) return c.actions[i].now end)
  end

  local current        -- per ref: AttributeValue map, false (absent), or nil: read them
  local view           -- per action of `live`: the item now; nil: read
  local resend = false

  local function nothing()
    info.action = "none"
    for _, r in ipairs(refs) do info.actions[r.name] = "none" end
    return output(function(i) return current[i] end)
  end

  while true do
    if live and not view then
      local targets = {}
      for k, a in ipairs(live.actions) do targets[k] = a.ref end
      local got, err = read_all(s, targets, info, copts, deadline)
      if not got then return fail(err) end
      view = got
    elseif not live and current == nil then
      local got, err = read_all(s, refs, info, copts, deadline)
      if not got then return fail(err) end
      current = got
    end

    if live then
      local state = resolve_commit(live, view)
      if state == "applied" then return success(live, view) end
      if state == "unknown" then
        return unknown("a commit's answer was lost and its items cannot prove whether it " ..
          "was applied (their write-token histories do not cover it, or they are gone); " ..
          "read them and decide")
      end
      current = {}
      for i = 1, #refs do current[i] = view[i] end
      if state == "pending" then
        if live.fatal then
          local fatal = live.fatal
          live = nil    -- the same commit was refused for good: it never applied
          return fail(fatal)
        end
        resend = true
      else
        -- it can never land: the function runs again on the items as they are now
        local moved = {}
        for i, r in ipairs(refs) do
          local a = live.actions[i]
          if not holds(a, view[i] or nil) then moved[#moved + 1] = r.name end
        end
        live = nil
        note_conflict(moved)
      end
      view = nil
    end

    local commit
    if resend then
      resend = false
      if info.resends >= s.max_attempts then
        return fail(new_error("ConflictsExhausted", ("sent one commit %d times without an " ..
          "answer"):format(info.resends + 1)))
      end
      info.resends = info.resends + 1
      commit = live
    else
      if info.attempts >= s.max_attempts then
        return fail(new_error("ConflictsExhausted", ("gave up after %d runs of the function " ..
          "(%d conflicts, on %s)"):format(info.attempts, info.conflicts,
          names_text(info.conflicted))))
      end
      if info.conflicts > 0 and not pause(s, s.client.retry:backoff(s.backoff_base_ms,
        s.backoff_cap_ms, info.conflicts), deadline) then
        return fail(new_error("DeadlineExceeded", ("the call's deadline passed after %d " ..
          "conflicts"):format(info.conflicts)))
      end

      local versions, histories, items = {}, {}, {}
      for i, r in ipairs(refs) do
        local cur = current[i] or nil
        local v, verr = I.version_of(r.ps, cur)
        if not v then
          verr.message = "item " .. r.label .. ": " .. verr.message
          return fail(verr)
        end
        versions[i] = v
        histories[i] = cur and I.parse_history(cur[s.token_attr])
        items[r.name] = cur and I.strip(r.ps, cur) or nil
      end
      info.attempts = info.attempts + 1
      local fok, results, puts_given = I.call_protected(fn, items)
      if not fok then error(results, 0) end
      if results == nil then
        return fail(invalid("the function returned nil: return the results (usually the " ..
          "items it was given), or optimistic.NOTHING; nothing was written"))
      end
      if results == O.NOTHING then return nothing() end
      if type(results) ~= "table" or getmetatable(results) ~= nil then
        return fail(invalid("the function must return a table of results per item, or " ..
          "optimistic.NOTHING; it returned " .. tostring(results)))
      end
      for k in pairs(results) do
        if not by_name[k] then
          return fail(invalid(("the function's results name %s, which is not one of the " ..
            "items read; return items it did not read as its second result (puts)")
            :format(describe_name(k))))
        end
      end
      local puts, perr = collect_puts(s, puts_given)
      if not puts then return fail(perr) end
      local seen = {}
      ok, berr = bind_keys(s, refs, seen, copts)
      for _, p in ipairs(puts) do
        if not ok then break end
        ok, berr = key_from_item(p, s, copts)
        if ok then ok, berr = bind_keys(s, { p }, seen, copts) end
      end
      if not ok then return fail(berr) end

      local c, cerr = plan(refs, puts, current, versions, histories, results,
        I.new_token())
      if c == nil then return fail(cerr) end
      if not c then return nothing() end
      commit = c
    end

    info.requests = info.requests + 1
    local res, err = s.client:call("TransactWriteItems", commit.req, copts)
    if res then
      add_capacity(info, res)
      live = nil
      return success(commit)
    end

    local maybe = err.applied == "maybe" or commit.maybe
    local reasons = err.code == "TransactionCanceledException" and
      reasons_of(err, #commit.actions) or nil
    local fatal = {}
    for k, r in ipairs(reasons or {}) do
      if r.code ~= "None" and r.code ~= "ConditionalCheckFailed" and not TRANSIENT[r.code] then
        fatal[#fatal + 1] = { name = commit.actions[k].ref.name,
          label = commit.actions[k].ref.label, code = r.code, message = r.message }
      end
    end
    if #fatal > 0 then
      local parts = {}
      for _, f in ipairs(fatal) do
        parts[#parts + 1] = f.label .. ": " .. f.code .. (f.message and (" (" ..
          tostring(f.message) .. ")") or "")
      end
      err.reasons = fatal
      err.message = "transaction cancelled: " .. concat(parts, "; ")
    end

    if maybe then
      if s.tokens == 0 then
        live = commit
        return unknown("the commit may or may not have been applied (" .. tostring(err.code) ..
          ") and write tokens are off", err)
      end
      commit.maybe = true
      if #fatal > 0 then commit.fatal = err end
      live = commit
      view = reasons and view_from_reasons(commit, reasons) or nil
    elseif reasons then
      if #fatal > 0 then return fail(err) end
      local moved, puts_failed, reread = {}, {}, false
      for k, r in ipairs(reasons) do
        local a = commit.actions[k]
        if r.code == "ConditionalCheckFailed" then
          if k <= #refs then
            moved[#moved + 1] = a.ref.name
            if r.item then current[k] = r.item else reread = true end
          else
            puts_failed[#puts_failed + 1] = a.ref.label
          end
        elseif TRANSIENT[r.code] then
          if k <= #refs then moved[#moved + 1] = a.ref.name end
          reread = true
        end
      end
      if #moved == 0 and #puts_failed > 0 then
        return fail(new_error("ItemExists", concat(puts_failed, ", ") .. ": an item with " ..
          "this key exists already, and the function did not read it; nothing was written"))
      end
      if reread then current = nil end
      note_conflict(moved)
    else
      return fail(err)
    end
  end
end

return _M
