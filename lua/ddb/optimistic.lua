--- ddb.optimistic: read-modify-write of DynamoDB items that never loses an update and never
-- applies one twice.
--
-- Each item carries a version number (1 on creation, +1 per write, as the Java SDKs and
-- PynamoDB do; `version_start` and `version_step` as the Java SDK v2's startAt and
-- incrementBy). Every write is conditioned on the item being exactly as read; on a conflict
-- the caller's function runs again on the fresh item. Each write also records a random token
-- in a short history kept in the item, so that a write whose answer was lost can be settled
-- later: applied (success, exactly once), provably not applied (run again), or unknowable
-- (err.code == "OutcomeUnknown", never a guess). The rules are in ddb.engine.rules; the
-- steps of a call in ddb.engine.
-- @module ddb.optimistic

local ddb = require "ddb"
local core = ddb.core
local engine = require "ddb.engine"
local settings = require "ddb.engine.settings"
local state = require "ddb.engine.state"
local plan = require "ddb.engine.plan"
local history = require "ddb.engine.history"
local keyschema = require "ddb.engine.keys"
local ops = require "ddb.engine.ops"
local pace = require "ddb.engine.pace"

local type, pairs, pcall, error, tostring, setmetatable, next =
  type, pairs, pcall, error, tostring, setmetatable, next
local new_error = ddb.new_error

local _M = { _VERSION = ddb._VERSION }

local function sentinel(name)
  return setmetatable({}, { __tostring = function() return name end,
    __newindex = function() error(name .. " is immutable", 2) end })
end

--- Return this from the function to delete the item (conditioned on the item as read).
_M.DELETE = sentinel("optimistic.DELETE")
--- Return this from the function to write nothing.
_M.NOTHING = sentinel("optimistic.NOTHING")

--- DynamoDB's item size limit.
_M.MAX_ITEM_BYTES = plan.MAX_ITEM_BYTES

-- Returned in place of an item when none is stored, so that success is never nil
-- (nil, err is failure), as OpenResty libraries return ngx.null for a missing value.
local NO_ITEM = ddb.null
_M.NO_ITEM = NO_ITEM

local Store = {}
Store.__index = Store
_M.Store = Store

--- Creates a store for one table.
-- @param opts `table` (required); `client` (a ddb client) or the options of `ddb.new`
--   (`region`, `endpoint`, `credentials`, ...); `key` (list of key attribute names;
--   default: one DescribeTable, cached); `version_attribute` ("version"); `version_start`
--   (1: what a created item gets; 0 for .NET's DynamoDBContext); `version_step` (1);
--   `token_attribute` ("_ddb_tokens"); `tokens` (write tokens kept in each item, 8; 0 turns
--   exactly-once resolution off); `tokens_max` (128: a hot item's history grows with the
--   write rate the engine observes, up to this); `mode` ("update": send only what changed,
--   or "put": write the whole item); `deadline_ms` (whole call, 5000); `max_attempts` (runs
--   of the function; default: as many as the deadline allows); `backoff_base_ms` (0) and
--   `backoff_cap_ms` (100), the bounds of the random wait before a write on an item others
--   are writing (two round trips); `idempotent` (commit through
--   TransactWriteItems with a ClientRequestToken, so that DynamoDB settles lost answers;
--   twice the write cost); `on_conflict` (`function(ctx)` with `key`, `table`, `attempt`,
--   `conflicts`, `elapsed_ms`); `on_event` (`function(ev)`, the metrics hook: one
--   `kind = "call"` event per call, and the client's request events when the store makes
--   the client; docs/metrics.md).
-- Unknown option names and values of the wrong type or range raise, naming the option.
-- @return store | nil, err (the client could not be made)
function _M.new(opts)
  if type(opts) ~= "table" then error("optimistic.new: options table expected", 2) end
  local client_names = settings.client_options()
  settings.check("optimistic.new", opts, settings.STORE, client_names, 2)
  if opts.table == nil then error("optimistic.new: option 'table' is required", 2) end
  local cfg = settings.table_settings(opts)
  settings.check_table("optimistic.new", cfg, opts.key, 2)
  if opts.client ~= nil then
    for n in pairs(opts) do
      if client_names[n] and not settings.STORE[n] then
        error(("optimistic.new: option '%s' is an option of ddb.new; give it to the " ..
          "client, or leave 'client' out"):format(n), 2)
      end
    end
  end

  local client = opts.client
  if client == nil then
    local copts = {}
    for n, v in pairs(opts) do
      -- the store's deadline and attempts are its own; the client keeps its defaults
      if client_names[n] and n ~= "deadline_ms" and n ~= "max_attempts" then copts[n] = v end
    end
    local err
    client, err = ddb.new(copts)
    if not client then return nil, err end
  end
  local d = settings.DEFAULTS
  local tokens_max = opts.tokens_max or d.tokens_max
  if cfg.tokens > tokens_max then tokens_max = cfg.tokens end
  return setmetatable({
    client = client,
    table = opts.table,
    cfg = cfg,
    version = cfg.version,
    token_attr = cfg.token_attr,
    tokens = cfg.tokens,
    mode = cfg.mode,
    max_attempts = opts.max_attempts,
    deadline_ms = opts.deadline_ms or d.deadline_ms,
    backoff_base_ms = opts.backoff_base_ms or d.backoff_base_ms,
    backoff_cap_ms = opts.backoff_cap_ms or d.backoff_cap_ms,
    idempotent = opts.idempotent or false,
    on_conflict = opts.on_conflict,
    on_event = opts.on_event,
    log = opts.log,
    key_names = opts.key and { opts.key[1], opts.key[2] } or nil,
    sizer = cfg.tokens > 0 and history.new(cfg.tokens, tokens_max, client.timeout_ms) or nil,
    pacer = pace.new(opts.backoff_base_ms or d.backoff_base_ms,
      opts.backoff_cap_ms or d.backoff_cap_ms),
  }, Store)
end

function Store:__tostring()
  return ("optimistic.store{table=%s, version=%s}"):format(self.table, self.version)
end

--- The table's key attribute names, from the option or one cached DescribeTable.
-- @param call_opts optional options of `Client:call` for the DescribeTable
-- @return the list of names (`{ hash[, range] }`) | nil, err
function Store:key_schema(call_opts)
  if self.key_names then return self.key_names end
  local names, err = keyschema.describe(self.client, self.table, call_opts)
  if not names then return nil, err end
  local ok, e = pcall(settings.check_table, "optimistic.new", self.cfg, names, 1)
  if not ok then return nil, new_error("ConfigError", (tostring(e):gsub("^[^:]*:%d+: ", ""))) end
  self.key_names = names
  return names
end

-- The key names for a call that ends at deadline: the DescribeTable's options are made only
-- when it has to be asked (once per store), not on every call.
local function key_names_by(self, deadline)
  if self.key_names then return self.key_names end
  return self:key_schema({ deadline = deadline })
end

-- -----------------------------------------------------------------------------
-- with_item: the engine's one-item case
-- -----------------------------------------------------------------------------
local One = {}

-- expect_version: the item must be at that version (false: it must not exist), else
-- VersionMismatch carrying the item as it is, and the function does not run.
local function mismatch(ctx, s)
  local want = ctx.expect
  local at = s.exists and s.version or nil
  if want == false then
    if not s.exists then return nil end
  elseif at == want then
    return nil
  end
  local plain = state.plain(ctx.targets[1].cfg, s)
  return new_error("VersionMismatch", ("the item is %s, not %s; nothing was written"):format(
    s.exists and ("at version " .. tostring(at)) or "absent",
    want == false and "absent" or ("at version " .. want)), { item = plain or NO_ITEM,
    version = plain and plain[ctx.targets[1].cfg.version], expected = ctx.expect_given })
end

function One.run(ctx, states, token)
  local t, s = ctx.targets[1], states[1]
  if ctx.expect ~= nil then
    local err = mismatch(ctx, s)
    if err then return nil, err end
  end
  t.keep = ctx.sizer and ctx.sizer:keep(s) or nil
  local ok, result = engine.call_protected(ctx.fn, state.plain(t.cfg, s))
  if not ok then error(result, 0) end
  if result == nil then
    return nil, plan.invalid("the function returned nil: return the item, " ..
      "optimistic.DELETE or optimistic.NOTHING; nothing was written")
  end
  if result == _M.NOTHING then return false end
  local a, err
  if result == _M.DELETE then
    a = plan.delete(t, s)
    if not a then return false end
  else
    a, err = plan.write(t, s, result, token)
    if not a then return a, err end
  end
  return plan.commit({ a }, token, not ctx.idempotent)
end

local function plain_of(cfg, av)
  local item = core.unmarshal_item(av)
  item[cfg.token_attr] = nil
  return item
end

-- The item as a write wrote it, without converting the item back: the function's result (a
-- fresh table, the caller's own) copied, with the key and the version written, and what the
-- answer says of the attributes an update set (UPDATED_NEW: DynamoDB's form of them). The
-- write was conditioned on the item being as read, so only attributes others change without
-- a version (ADD counters) can differ from the item stored.
local function written_item(cfg, a, res)
  local item = {}
  for n, v in pairs(a.result) do item[n] = v end
  local t = a.target
  local small = { [cfg.version] = a.version_av }
  for _, n in ipairs(t.names) do small[n] = t.kav[n] end
  for n, v in pairs(core.unmarshal_item(small)) do item[n] = v end
  local set = res and res.Attributes
  if type(set) == "table" then
    for n, v in pairs(set) do item[n] = v end
  end
  item[cfg.token_attr] = nil
  return item
end

function One.success(ctx, c, view, res)
  local a, info = c.actions[1], ctx.info
  info.written, info.action = true, a.kind
  local cfg = a.target.cfg
  local item
  if view then
    item = state.plain(cfg, view[1])     -- settled after a lost answer: the item now
  elseif a.kind == "delete" then
    item = nil
  elseif cfg.returns == "written" and a.result then
    item = written_item(cfg, a, res)      -- no second copy of the item converted
  elseif res and type(res.Attributes) == "table" and next(res.Attributes) ~= nil then
    item = res.Attributes                 -- ALL_NEW, already plain values
    item[cfg.token_attr] = nil
  else
    item = plain_of(cfg, plan.whole(a))   -- what the write stored
  end
  return item or NO_ITEM, nil, info
end

function One.nothing(ctx, states)
  ctx.info.action = "none"
  return state.plain(ctx.targets[1].cfg, states[1]) or NO_ITEM, nil, ctx.info
end

function One.exhausted(ctx)
  return new_error("ConflictsExhausted", ("gave up after %d runs of the function (%d " ..
    "conflicts)"):format(ctx.info.attempts, ctx.info.conflicts))
end

function One.conflict_event(ctx)
  local info = ctx.info
  return { key = ctx.key, table = ctx.targets[1].table, attempt = info.attempts,
    conflicts = info.conflicts, elapsed_ms = ctx.clock() - ctx.started }
end

local GET_OPTIONS = { deadline_ms = true }

-- A call given no options reads them from this one table, made once: nothing writes to it.
local NO_OPTS = setmetatable({}, { __newindex = function() error("NO_OPTS is read-only", 2) end })

local function check_call_opts(opts, where)
  if opts == nil then return NO_OPTS end
  if type(opts) ~= "table" then
    error("bad argument #3 to '" .. where .. "' (options table expected)", 3)
  end
  return settings.check(where, opts, settings.CALL, nil, 3)
end

local function new_info()
  return { attempts = 0, conflicts = 0, requests = 0, resends = 0, consumed_capacity = 0,
    written = false }
end
_M._new_info = new_info

--- Reads the item, runs fn on a fresh copy, writes the result conditioned on the item as read.
-- fn(item) receives a fresh copy (nil when the item does not exist) and returns the item
-- to store, optimistic.DELETE, or optimistic.NOTHING. It may run several times: keep it
-- free of side effects. If it raises, nothing is written and the error propagates.
-- @param key the item's key, e.g. { pk = "user#1" }
-- @param fn the function
-- @param opts optional `{ deadline_ms, max_attempts, idempotent, expect_version }`:
--   `expect_version` writes only if the item is at that version (`false`: only if it does
--   not exist), running the function once; otherwise `nil, err` with
--   `err.code == "VersionMismatch"` and `err.item`, the item as it is (an HTTP API's
--   `If-Match`)
-- @return item (what is stored now; ddb.null when no item is stored), nil, info | nil, err
function Store:with_item(key, fn, opts)
  if type(key) ~= "table" then error("bad argument #1 to 'with_item' (key table expected)", 2) end
  if type(fn) ~= "function" then error("bad argument #2 to 'with_item' (function expected)", 2) end
  opts = check_call_opts(opts, "with_item")
  local clock = self.client.clock or core.monotonic_ms
  local started = clock()
  local idempotent = opts.idempotent
  if idempotent == nil then idempotent = self.idempotent end
  local ctx = {
    client = self.client, clock = clock, started = started,
    deadline = started + (opts.deadline_ms or self.deadline_ms),
    info = new_info(), adapter = One, fn = fn, key = key,
    max_attempts = opts.max_attempts or self.max_attempts,
    backoff_base_ms = self.backoff_base_ms, backoff_cap_ms = self.backoff_cap_ms,
    idempotent = idempotent, trusted = idempotent, on_conflict = self.on_conflict,
    sizer = self.sizer, pacer = self.pacer, on_event = self.on_event, owner = self,
    op = "with_item",
  }
  if opts.expect_version ~= nil then
    ctx.expect_given = opts.expect_version
    ctx.expect = opts.expect_version and core.version_parse(tostring(opts.expect_version))
  end
  -- kav, names and get_body (ops.read) are set later; named here, the table is made at its
  -- full size at once
  ctx.targets = { { name = 1, table = self.table, key = key, cfg = self.cfg, label = "item",
    kav = nil, names = nil, get_body = nil } }
  local names, kerr = key_names_by(self, ctx.deadline)
  if not names then return engine.refuse(ctx, kerr) end
  local kav, verr = keyschema.av(self.table, key, names)
  if not kav then return engine.refuse(ctx, verr) end
  ctx.targets[1].kav, ctx.targets[1].names = kav, names
  return engine.call(ctx)
end

--- What with_item would send for the item as stored, without sending anything: the dry run,
-- for unit tests of a function with no server.
-- @param key the item's key
-- @param fn the function, as for with_item
-- @param stored the item as stored (plain values, its version and write tokens included if
--   it has them), or nil for no item
-- @param opts optional `{ token }`: the write token to use (default: a random one)
-- @return `{ op, request }` (the request as DynamoDB's JSON takes it), or false when nothing
--   would be written; nil; info (`action`) | nil, err (a result with_item would refuse)
function Store:plan(key, fn, stored, opts)
  if type(key) ~= "table" then error("bad argument #1 to 'plan' (key table expected)", 2) end
  if type(fn) ~= "function" then error("bad argument #2 to 'plan' (function expected)", 2) end
  if stored ~= nil and type(stored) ~= "table" then
    error("bad argument #3 to 'plan' (the stored item, a table, or nil)", 2)
  end
  local token = opts and opts.token or engine.new_token()
  local names = self.key_names
  if not names then
    names = {}
    for n in pairs(key) do names[#names + 1] = n end
    table.sort(names)
  end
  local kav, kerr = keyschema.av(self.table, key, names)
  if not kav then return nil, kerr end
  local av
  if stored then
    local ok, m = pcall(core.marshal_item, stored)
    if not ok then return nil, new_error("ValidationError", "bad stored item: " .. tostring(m)) end
    av = m
  end
  local s, serr = state.of(self.cfg, av, core.now())
  if not s then return nil, serr end
  local info = new_info()
  local ctx = { targets = { { name = 1, table = self.table, key = key, kav = kav,
    names = names, cfg = self.cfg, label = "item" } }, fn = fn, info = info,
    idempotent = self.idempotent }
  local c, err = One.run(ctx, { s }, token)
  if c == nil then return nil, err end
  if c == false then
    info.action = "none"
    return false, nil, info
  end
  local a = c.actions[1]
  info.action = a.kind
  if c.single then return { op = a.op, request = a.req }, nil, info end
  return { op = "TransactWriteItems", request = c.req }, nil, info
end

--- Independent with_item calls on many items at once, each with with_item's guarantees:
-- per key an outcome, one deadline for them all. The calls run concurrently where the
-- runtime allows: on light threads inside nginx (`ngx.thread`), as tasks of the store's
-- ddb.scheduler (its transport), on the caller's `spawn`/`join`, else one after another.
-- @param keys a list of keys
-- @param fn `function(item, key)`, as for with_item (it also gets the key)
-- @param opts optional `{ deadline_ms (for all), concurrency (16), max_attempts,
--   idempotent, spawn, join }`
-- @return results (per key, in order: `{ item = ..., err = ..., info = ... }`), nil, info
--   (`ok`, `failed`, `unknown`, `elapsed_ms`, `concurrency`, `runner`)
function Store:with_each(keys, fn, opts)
  return require("ddb.each").run(self, keys, fn, opts)
end

--- Several items, possibly in several tables, in one transaction: see ddb.transact.
-- @function with_items
-- @param ... a client or store, keys, fn[, opts], as `ddb.transact.with_items` takes them
-- @return items, nil, info | nil, err
_M.with_items = function(...) return require("ddb.transact").with_items(...) end

--- with_items with this store's table and settings as the defaults.
-- @param keys a list or map of keys (of this table) or of `{ table = name, key = {...} }`
-- @param fn `function(items)`, as for `ddb.transact.with_items`
-- @param opts optional per-call options
-- @return items, nil, info | nil, err
function Store:with_items(keys, fn, opts)
  return _M.with_items(self, keys, fn, opts)
end

--- Reads an item (strongly consistent) without changing it; ddb.null when there is none.
-- @param key the item's key, e.g. `{ pk = "user#1" }`
-- @param opts optional `{ deadline_ms }`
-- @return item (or ddb.null), nil, info | nil, err
function Store:get(key, opts)
  if type(key) ~= "table" then error("bad argument #1 to 'get' (key table expected)", 2) end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'get' (options table expected)", 2)
  end
  opts = settings.check("get", opts, GET_OPTIONS, nil, 2)
  local clock = self.client.clock or core.monotonic_ms
  local deadline = clock() + (opts.deadline_ms or self.deadline_ms)
  local names, err = key_names_by(self, deadline)
  if not names then return nil, err end
  local kav, verr = keyschema.av(self.table, key, names)
  if not kav then return nil, verr end
  local info = { requests = 1, consumed_capacity = 0 }
  local res, rerr = self.client:get_item({ TableName = self.table, Key = kav,
    ConsistentRead = true, ReturnConsumedCapacity = "TOTAL" }, { deadline = deadline })
  if not res then return nil, rerr end
  ops.add_capacity(info, res)
  local item = type(res.Item) == "table" and next(res.Item) ~= nil and res.Item or nil
  return item and plain_of(self.cfg, item) or NO_ITEM, nil, info
end

return _M
