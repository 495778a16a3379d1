--- ddb.transact: optimistic read-modify-write of several items at once (in one or several
-- tables), read with one TransactGetItems and committed with one TransactWriteItems.
-- It is ddb.optimistic's with_item for many items, on the same engine (ddb.engine), and is
-- attached to it as `optimistic.with_items`.
--
--     local items, err, info = optimistic.with_items(client_or_store, keys, fn[, opts])
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
-- - the item (a plain table): written if it changed (only what changed, the version
--   stepped, the commit's token pushed into its history), created if it was absent;
-- - `optimistic.DELETE`: deleted;
-- - nil, `optimistic.NOTHING`, or the item unchanged: not written.
--
-- Every item read and not written gets a ConditionCheck that it is still as read, so the
-- commit lands only if nothing the function read has moved. `results == optimistic.NOTHING`
-- writes nothing at all; nil is refused (a forgotten return is never taken as "no change"),
-- as by with_item.
--
-- `puts` (optional): items the function did not read, a list of
-- `{ table = "T", item = {...} }` (table defaults to the store's), created at the first
-- version conditioned on their absence. With `overwrite = true` the attributes given are set
-- whatever is stored (others are kept) and the version is stepped: no condition. A put whose
-- item exists already fails with `err.code == "ItemExists"` (running the function again
-- could not change that: it never sees that item) unless an item the function read
-- conflicted too, in which case it runs again.
--
-- Every item and every put is one action; at most 100 actions, 4 MB in all (the items as
-- they will be stored, and as read for deletes and checks), 400 KB per item, no item twice:
-- checked before sending (ValidationError, ItemTooLarge), nothing written.
--
-- Returns `items, nil, info` on success: items under the same indices or names, each what is
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
-- `max_attempts` (runs of the function; default: as many as the deadline allows),
-- `version_attribute`, `version_start`, `version_step`, `token_attribute`, `tokens`, `mode`
-- ("update" or "put"), `backoff_base_ms`, `backoff_cap_ms`, `idempotent`, `on_conflict`
-- (`function(ctx)` with `keys`, `conflicted`, `attempt`, `conflicts`, `elapsed_ms`),
-- `key_schemas` (`{ [table] = { hash [, range] } }`; otherwise one DescribeTable per table
-- and client, cached).
--
-- Exactly once, as with_item (ddb.engine.rules): every commit carries a new random token,
-- as its ClientRequestToken and in the history of every item it creates or updates, and is
-- conditioned on every item being exactly as read. After an answer is lost the items are
-- read again: an item that holds the token proves the commit landed (it is all or nothing);
-- an item it wrote that still descends from the state read, without the token, proves it
-- did not, and it never will once an item it was conditioned on has moved on; the same
-- commit is sent again while every item is still as read; anything else is
-- `OutcomeUnknown`. With `idempotent = true` a lost answer is settled by sending the same
-- commit (same ClientRequestToken) again, which DynamoDB deduplicates for 10 minutes (moto
-- does not).
-- @module ddb.transact

local ddb = require "ddb"
local core = ddb.core
local engine = require "ddb.engine"
local settings = require "ddb.engine.settings"
local state = require "ddb.engine.state"
local plan = require "ddb.engine.plan"
local keyschema = require "ddb.engine.keys"
local pace = require "ddb.engine.pace"

local type, pairs, ipairs, error, tostring, setmetatable, getmetatable, next, pcall =
  type, pairs, ipairs, error, tostring, setmetatable, getmetatable, next, pcall
local concat, sort = table.concat, table.sort
local marshal_item, item_size = core.marshal_item, core.item_size
local new_error, invalid = ddb.new_error, plan.invalid

local _M = { _VERSION = ddb._VERSION }

_M.MAX_ACTIONS = 100
_M.MAX_TRANSACTION_BYTES = 4 * 1024 * 1024

-- ddb.optimistic is looked up on first use: it attaches with_items from this module, so
-- requiring it while this module loads would be a require loop.
local OPT
local function optimistic()
  OPT = OPT or require "ddb.optimistic"
  return OPT
end

-- -----------------------------------------------------------------------------
-- Settings, keys and names
-- -----------------------------------------------------------------------------
local function call_settings(target, opts)
  local O = optimistic()
  local store = type(target) == "table" and getmetatable(target) == O.Store and target or nil
  local client = store and store.client or target
  if type(client) ~= "table" or type(client.call) ~= "function" then
    error("bad argument #1 to 'with_items' (a ddb client or an optimistic store expected)", 3)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #4 to 'with_items' (options table expected)", 3)
  end
  opts = settings.check("with_items", opts, settings.MANY, nil, 3)
  local d = settings.DEFAULTS
  local function pick(name, field)
    local v = opts[name]
    if v == nil and store then v = store[field or name] end
    if v == nil then v = d[name] end
    return v
  end
  local base = {}
  for k, v in pairs(d) do base[k] = v end
  if store then
    base.version_attribute, base.token_attribute = store.cfg.version, store.cfg.token_attr
    base.version_start, base.version_step = store.cfg.version_start, store.cfg.version_step
    base.tokens, base.mode = store.cfg.tokens, store.cfg.mode
  end
  local cfg = settings.table_settings(opts, base)
  settings.check_table("with_items", cfg, nil, 3)
  local idempotent = pick("idempotent")
  return {
    client = client, store = store, default_table = store and store.table, cfg = cfg,
    max_attempts = pick("max_attempts"), deadline_ms = pick("deadline_ms"),
    backoff_base_ms = pick("backoff_base_ms"), backoff_cap_ms = pick("backoff_cap_ms"),
    on_conflict = pick("on_conflict"), idempotent = idempotent, on_event = pick("on_event"),
    key_schemas = opts.key_schemas,
  }
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
  local names, err = keyschema.describe(s.client, name, copts)
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
    r.spec, r.what, r.cfg = nil, "item", s.cfg
  end
  return refs
end

-- Resolves each ref's key schema and AttributeValue key; refuses an item named twice.
local function bind_keys(s, refs, seen, copts)
  for _, r in ipairs(refs) do
    if not r.kav then
      local names, err = key_schema(s, r.table, copts)
      if not names then return nil, err end
      local ok, e = pcall(settings.check_table, "with_items", s.cfg, names, 1)
      if not ok then
        return nil, new_error("ConfigError", (tostring(e):gsub("^[^:]*:%d+: ", "")))
      end
      r.names = names
      local kav, kerr = keyschema.av(r.table, r.key, names)
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
      return nil, invalid(("%s and %s are the same item; a transaction can act on an item " ..
        "only once"):format(seen[id], r.label))
    end
    seen[id] = r.label
  end
  return true
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
    if p.item[s.cfg.version] ~= nil or p.item[s.cfg.token_attr] ~= nil then
      return nil, invalid(("%s sets '%s' or '%s', which belong to the module")
        :format(where, s.cfg.version, s.cfg.token_attr))
    end
    local ok, nav = pcall(marshal_item, p.item)
    if not ok then return nil, invalid(where .. ": item cannot be stored: " .. tostring(nav)) end
    out[i] = { name = i, what = "put", table = tname, nav = nav, item = p.item,
      overwrite = p.overwrite or false, cfg = s.cfg }
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

-- -----------------------------------------------------------------------------
-- The engine's adapter for several items
-- -----------------------------------------------------------------------------
local Many = {}

-- One action per item read (written, or checked), one per put; false when nothing is written.
local function plan_commit(ctx, states, results, puts, token)
  local refs = ctx.targets
  local actions, writes, bytes = {}, 0, 0
  for i, r in ipairs(refs) do
    local s = states[i]
    local res = results[r.name]
    local a
    if res == optimistic().DELETE then
      a = plan.delete(r, s)
    elseif res ~= nil and res ~= optimistic().NOTHING then
      local err
      a, err = plan.write(r, s, res, token)
      if a == nil then
        err.message = "item " .. r.label .. ": " .. tostring(err.message)
        err.item = r.name
        return nil, err
      end
    end
    if a then
      writes = writes + 1
    else
      a = plan.check(r, s)
    end
    bytes = bytes + item_size(plan.whole(a) or (s.exists and s.item) or r.kav)
    actions[i] = a
  end
  for _, p in ipairs(puts) do
    local a, err
    if p.overwrite then
      a, err = plan.overwrite(p, p.nav)
    else
      a, err = plan.write(p, state.ABSENT, p.item, token)
    end
    if not a then
      err.message = p.label .. ": " .. tostring(err.message)
      return nil, err
    end
    local size = item_size(plan.whole(a))
    if size > plan.MAX_ITEM_BYTES then
      return nil, new_error("ItemTooLarge", ("%s would be %d bytes; DynamoDB's limit is %d")
        :format(p.label, size, plan.MAX_ITEM_BYTES))
    end
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
  return plan.commit(actions, token, false)
end

function Many.run(ctx, states, token)
  local O = optimistic()
  local refs = ctx.targets
  local items = {}
  for i, r in ipairs(refs) do items[r.name] = state.plain(r.cfg, states[i]) end
  local fok, results, puts_given = engine.call_protected(ctx.fn, items)
  if not fok then error(results, 0) end
  if results == nil then
    return nil, invalid("the function returned nil: return the results (usually the " ..
      "items it was given), or optimistic.NOTHING; nothing was written")
  end
  if results == O.NOTHING then return false end
  if type(results) ~= "table" or getmetatable(results) ~= nil then
    return nil, invalid("the function must return a table of results per item, or " ..
      "optimistic.NOTHING; it returned " .. tostring(results))
  end
  for k in pairs(results) do
    if not ctx.by_name[k] then
      return nil, invalid(("the function's results name %s, which is not one of the " ..
        "items read; return items it did not read as its second result (puts)")
        :format(describe_name(k)))
    end
  end
  local puts, perr = collect_puts(ctx.s, puts_given)
  if not puts then return nil, perr end
  local seen = {}
  local copts = { deadline = ctx.deadline }
  local ok, berr = bind_keys(ctx.s, refs, seen, copts)
  for _, p in ipairs(puts) do
    if not ok then break end
    ok, berr = key_from_item(p, ctx.s, copts)
    if ok then ok, berr = bind_keys(ctx.s, { p }, seen, copts) end
  end
  if not ok then return nil, berr end
  return plan_commit(ctx, states, results, puts, token)
end

local function output(ctx, get)
  local out = {}
  for i, r in ipairs(ctx.targets) do
    out[r.name] = state.plain(r.cfg, get(i)) or optimistic().NO_ITEM
  end
  return out, nil, ctx.info
end

function Many.success(ctx, c, view)
  local info, n = ctx.info, #ctx.targets
  info.written, info.action, info.extra = true, "commit", {}
  local now = {}
  for k, a in ipairs(c.actions) do
    local s
    if view then s = view[k]
    elseif a.kind == "delete" then s = state.ABSENT
    elseif a.kind == "check" then s = a.read
    else s = { exists = true, item = plan.whole(a) } end
    now[k] = s
    if k <= n then
      info.actions[a.target.name] = a.kind == "check" and "none" or a.kind
    else
      info.extra[k - n] = s.exists and state.plain(a.target.cfg, s) or optimistic().NO_ITEM
    end
  end
  return output(ctx, function(i) return now[i] end)
end

function Many.nothing(ctx, states)
  ctx.info.action = "none"
  for _, r in ipairs(ctx.targets) do ctx.info.actions[r.name] = "none" end
  return output(ctx, function(i) return states[i] end)
end

function Many.exhausted(ctx)
  local info = ctx.info
  return new_error("ConflictsExhausted", ("gave up after %d runs of the function (%d " ..
    "conflicts, on %s)"):format(info.attempts, info.conflicts, names_text(info.conflicted)))
end

-- moved: indices of the targets whose items moved
function Many.note_conflict(ctx, moved)
  local names = {}
  for _, i in ipairs(moved) do
    local n = ctx.targets[i].name
    names[#names + 1] = n
    if not ctx.conflicted_seen[n] then
      ctx.conflicted_seen[n] = true
      ctx.info.conflicted[#ctx.info.conflicted + 1] = n
    end
  end
  ctx.moved_names = names
end

function Many.conflict_event(ctx)
  local info = ctx.info
  return { keys = ctx.keys, conflicted = ctx.moved_names, attempt = info.attempts,
    conflicts = info.conflicts, elapsed_ms = ctx.clock() - ctx.started }
end

-- A put whose item exists already fails for good: running the function again could not
-- change that, as it never sees that item; unless an item it read moved too.
local function puts_exist(ctx, c, items)
  local failed, moved = {}, false
  for k, a in ipairs(c.actions) do
    local it = items[k]
    if it ~= nil and it ~= "as read" then   -- its condition failed
      if k > #ctx.targets then failed[#failed + 1] = a.target.label else moved = true end
    end
  end
  if #failed > 0 and not moved then
    return new_error("ItemExists", concat(failed, ", ") .. ": an item with this key exists " ..
      "already, and the function did not read it; nothing was written")
  end
  return nil
end
Many.refused = puts_exist

--- Reads several items, runs fn on fresh copies, commits the result in one transaction
-- conditioned on every item being as read. See the module's header for the whole contract.
-- @param target a ddb client, or an optimistic store (its client, settings and table)
-- @param keys a list or a map of { table = name, key = {...} } (a bare key with a store)
-- @param fn function(items) -> results[, puts] | optimistic.NOTHING
-- @param opts optional options (deadline_ms, max_attempts, key_schemas, ...)
-- @return items, nil, info | nil, err
function _M.with_items(target, keys, fn, opts)
  local s = call_settings(target, opts)
  if type(keys) ~= "table" then
    error("bad argument #2 to 'with_items' (table of keys expected)", 2)
  end
  if type(fn) ~= "function" then error("bad argument #3 to 'with_items' (function expected)", 2) end
  local refs = collect_refs(keys, s)
  local by_name = {}
  for _, r in ipairs(refs) do by_name[r.name] = r end

  local clock = s.client.clock or core.monotonic_ms
  local started = clock()
  local info = optimistic()._new_info()
  info.conflicted, info.actions = {}, {}
  local ctx = {
    client = s.client, clock = clock, started = started, deadline = started + s.deadline_ms,
    info = info, adapter = Many, fn = fn, keys = keys, targets = refs, by_name = by_name,
    s = s, conflicted_seen = {},
    max_attempts = s.max_attempts, backoff_base_ms = s.backoff_base_ms,
    backoff_cap_ms = s.backoff_cap_ms, idempotent = s.idempotent, trusted = s.idempotent,
    on_conflict = s.on_conflict,
    pacer = s.store and s.store.pacer or pace.new(s.backoff_base_ms, s.backoff_cap_ms),
    on_event = s.on_event, owner = s.store or s.client, op = "with_items",
  }
  local function refuse(err) return engine.refuse(ctx, err) end
  if #refs > _M.MAX_ACTIONS then
    return refuse(invalid(("%d items to read; a transaction holds at most %d")
      :format(#refs, _M.MAX_ACTIONS)))
  end
  local ok, berr = bind_keys(s, refs, {}, { deadline = ctx.deadline })
  if not ok then return refuse(berr) end
  return engine.call(ctx)
end

return _M
