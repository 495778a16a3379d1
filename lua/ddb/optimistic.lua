--- ddb.optimistic: read-modify-write of DynamoDB items that never loses an update and never
-- applies one twice.
--
-- Each item carries a version number (1 on creation, +1 per write, as DynamoDBMapper and
-- PynamoDB do). Every write is conditioned on the version read; on a conflict the caller's
-- function runs again on the fresh item. Each write also records a random token in a short
-- history kept in the item, so that a write whose answer was lost can be recognised later:
-- applied (success, exactly once), provably not applied (run again), or unknowable
-- (err.code == "OutcomeUnknown", never a guess).
-- @module ddb.optimistic

local ddb = require "ddb"
local core = ddb.core

local type, pairs, ipairs, pcall, error, tostring, tonumber, setmetatable, next =
  type, pairs, ipairs, pcall, error, tostring, tonumber, setmetatable, next
local concat, floor = table.concat, math.floor
local monotonic_ms = core.monotonic_ms
local marshal_item, unmarshal_item, av_equal = core.marshal_item, core.unmarshal_item, core.av_equal
local plan_diff, history_push = core.plan_diff, core.history_push

local _M = { _VERSION = ddb._VERSION }

-- Runs fn(...) as pcall does, but lets fn yield on every runtime: PUC Lua 5.1 cannot yield
-- across pcall, so there fn runs in a coroutine of its own whose yields are passed on.
local PUC51 = _VERSION == "Lua 5.1" and not jit
local unpack = table.unpack or unpack   -- luacheck: ignore 143
local function pack(...) return { n = select("#", ...), ... } end
local function call_protected(fn, ...)
  if not PUC51 then return pcall(fn, ...) end
  local co = coroutine.create(fn)
  local r = pack(coroutine.resume(co, ...))
  while r[1] and coroutine.status(co) ~= "dead" do
    r = pack(coroutine.resume(co, coroutine.yield(unpack(r, 2, r.n))))
  end
  return unpack(r, 1, r.n)
end

local function sentinel(name)
  return setmetatable({}, { __tostring = function() return name end,
    __newindex = function() error(name .. " is immutable", 2) end })
end

--- Return this from the function to delete the item (conditioned on the version read).
_M.DELETE = sentinel("optimistic.DELETE")
--- Return this from the function to write nothing.
_M.NOTHING = sentinel("optimistic.NOTHING")

--- DynamoDB's item size limit.
_M.MAX_ITEM_BYTES = 400 * 1024

local TOKEN_FORMAT = "1"

-- Returned in place of an item when none is stored, so that success is never nil
-- (nil, err is failure), as OpenResty libraries return ngx.null for a missing value.
local NO_ITEM = ddb.null

local Store = {}
Store.__index = Store
_M.Store = Store

local function new_error(code, message, fields)
  return ddb.new_error(code, message, fields)
end

local function check(cond, name, what)
  if not cond then error(("optimistic.new: option '%s' must be %s"):format(name, what), 3) end
end

--- Creates a store for one table.
-- Options: table (required); client (a ddb client) or the options of ddb.new (region,
-- endpoint, credentials, ...); version_attribute ("version"); key (list of key attribute
-- names; default: one DescribeTable, cached); max_attempts (runs of the function, 10);
-- deadline_ms (whole call, 5000); mode ("update": send only what changed, or "put": write
-- the whole item); tokens (write tokens kept in the item, 8; 0 turns exactly-once
-- resolution off); token_attribute ("_ddb_tokens"); backoff_base_ms (10), backoff_cap_ms
-- (200); on_conflict (function(ctx)).
-- @return store | nil, err
function _M.new(opts)
  if type(opts) ~= "table" then error("optimistic.new: options table expected", 2) end
  check(type(opts.table) == "string" and #opts.table > 0, "table", "a table name")
  local version = opts.version_attribute or "version"
  check(type(version) == "string" and #version > 0, "version_attribute", "a non-empty string")
  local tokens = opts.tokens
  if tokens == nil then tokens = 8 end
  if tokens == false then tokens = 0 end
  check(type(tokens) == "number" and tokens >= 0 and tokens <= 100 and tokens == floor(tokens),
    "tokens", "a whole number from 0 to 100")
  local token_attr = opts.token_attribute or "_ddb_tokens"
  check(type(token_attr) == "string" and #token_attr > 0 and token_attr ~= version,
    "token_attribute", "a non-empty string other than the version attribute")
  local mode = opts.mode or "update"
  check(mode == "update" or mode == "put", "mode", "'update' or 'put'")
  local max_attempts = opts.max_attempts or 10
  check(type(max_attempts) == "number" and max_attempts >= 1, "max_attempts", "a number >= 1")
  local deadline_ms = opts.deadline_ms or 5000
  check(type(deadline_ms) == "number" and deadline_ms > 0, "deadline_ms", "a positive number")
  check(opts.on_conflict == nil or type(opts.on_conflict) == "function", "on_conflict",
    "a function")
  if opts.key ~= nil then
    check(type(opts.key) == "table" and #opts.key >= 1 and #opts.key <= 2, "key",
      "a list of one or two attribute names")
  end

  local client = opts.client
  if client == nil then
    local err
    client, err = ddb.new(ddb.client_options(opts))
    if not client then return nil, err end
  end
  return setmetatable({
    client = client,
    table = opts.table,
    version = version,
    tokens = tokens,
    token_attr = token_attr,
    mode = mode,
    max_attempts = max_attempts,
    deadline_ms = deadline_ms,
    backoff_base_ms = opts.backoff_base_ms or 10,
    backoff_cap_ms = opts.backoff_cap_ms or 200,
    on_conflict = opts.on_conflict,
    key_names = opts.key and { opts.key[1], opts.key[2] } or nil,
  }, Store)
end

function Store:__tostring()
  return ("optimistic.store{table=%s, version=%s}"):format(self.table, self.version)
end

-- A table's key attribute names ({ hash[, range] }) from one DescribeTable.
local function describe_key(client, table_name, call_opts)
  local res, err = client:describe_table({ TableName = table_name }, call_opts)
  if not res then return nil, err end
  local names = {}
  for _, k in ipairs(res.Table and res.Table.KeySchema or {}) do
    if k.KeyType == "HASH" then names[1] = k.AttributeName
    elseif k.KeyType == "RANGE" then names[2] = k.AttributeName end
  end
  if not names[1] then
    return nil, new_error("InvalidResponse", "DescribeTable returned no key schema for " ..
      table_name)
  end
  return names
end

--- The table's key attribute names, from the option or one cached DescribeTable.
function Store:key_schema(call_opts)
  if self.key_names then return self.key_names end
  local names, err = describe_key(self.client, self.table, call_opts)
  if not names then return nil, err end
  self.key_names = names
  return names
end

-- -----------------------------------------------------------------------------
-- Write tokens: "1 <version>:<token> <version>:<token> ..." newest first.
-- -----------------------------------------------------------------------------
-- 12 random bytes as 16 base64url characters (made in C: it runs once per write)
local random_token = core.random_token
local function new_token()
  return random_token(12)
end

-- Returns a list of { version = n, token = s }, or nil when the history is absent or not
-- in a format this module wrote.
local function parse_history(av)
  if type(av) ~= "table" or type(av.S) ~= "string" then return nil end
  local entries, first = {}, true
  for field in av.S:gmatch("%S+") do
    if first then
      if field ~= TOKEN_FORMAT then return nil end
      first = false
    else
      local v, tok = field:match("^(%d+):([%w%-_]+)$")
      if not v then return nil end
      entries[#entries + 1] = { version = tonumber(v), token = tok }
    end
  end
  if first then return nil end
  return entries
end
_M._parse_history = parse_history

local function version_of(self, item)
  if not item then return 0 end
  local av = item[self.version]
  if av == nil then return 0 end
  local n = type(av) == "table" and tonumber(av.N)
  if not n or n < 0 or n ~= floor(n) then
    return nil, new_error("ValidationError", ("item's version attribute '%s' is not a " ..
      "non-negative integer number"):format(self.version))
  end
  return n
end

local function history_entry(entries, version)
  for _, e in ipairs(entries or {}) do
    if e.version == version then return e end
  end
  return nil
end

-- What the current item says about one write of ours:
-- "applied", "pending" (not applied so far; it could still land), "refuted" (can never
-- land), or "unknown".
local function resolve_write(self, w, current)
  local entries = current and parse_history(current[self.token_attr])
  for _, e in ipairs(entries or {}) do
    if e.token == w.token then return "applied" end
  end
  local ver = current and version_of(self, current)
  if w.kind == "delete" then
    if not current then return "unknown" end
    -- the newest token when the write's item was read (transactions note it when planning)
    local read_top = w.read_top
    if read_top == nil and w.read_history then
      local h = parse_history(w.read_history)
      read_top = h and h[1] and h[1].token
    end
    if ver == w.read_version and current[self.token_attr] and read_top and
      entries and entries[1] and entries[1].token == read_top then
      return "pending"
    end
    if ver and ver > w.read_version and w.read_version >= 1 and
      history_entry(entries, w.read_version + 1) then
      return "refuted"
    end
    return "unknown"
  end
  -- creates and updates wrote version w.version, conditioned on w.read_version
  if not current then
    return w.kind == "create" and "pending" or "unknown"
  end
  if not ver then return "unknown" end
  if ver == w.read_version and (w.kind ~= "create") then return "pending" end
  if ver >= w.version then
    local e = history_entry(entries, w.version)
    if e then return "refuted" end   -- another writer's token holds that version
  end
  return "unknown"
end

-- -----------------------------------------------------------------------------
-- The read-modify-write loop
-- -----------------------------------------------------------------------------
local function strip(self, item_av)
  if not item_av then return nil end
  local plain = unmarshal_item(item_av)
  plain[self.token_attr] = nil
  return plain
end

local function add_capacity(info, res)
  local cc = res and res.ConsumedCapacity
  if type(cc) == "table" and type(cc.CapacityUnits) == "number" then
    info.consumed_capacity = info.consumed_capacity + cc.CapacityUnits
  end
end

-- Validates the caller's key against the schema; returns the key's AttributeValues.
local function key_av(self, key, names)
  local ok, av = pcall(marshal_item, key)
  if not ok then return nil, new_error("ValidationError", "bad key: " .. tostring(av)) end
  local count = 0
  for name, v in pairs(av) do
    count = count + 1
    if name ~= names[1] and name ~= names[2] then
      return nil, new_error("ValidationError", ("key has attribute '%s', which is not part " ..
        "of table %s's key"):format(name, self.table))
    end
    local t = next(v)
    if t ~= "S" and t ~= "N" and t ~= "B" then
      return nil, new_error("ValidationError", ("key attribute '%s' must be a string, " ..
        "number or ddb.binary"):format(name))
    end
  end
  for _, name in ipairs(names) do
    if av[name] == nil then
      return nil, new_error("ValidationError", ("key lacks attribute '%s'"):format(name))
    end
  end
  if count ~= #names then
    return nil, new_error("ValidationError", "key has the wrong number of attributes")
  end
  return av
end

local Names = {}
Names.__index = Names

local function expr_builder()
  return setmetatable({ names = {}, values = {}, nn = 0, nv = 0, by_name = {} }, Names)
end

-- "#n1", ":v1", ...: made once, not per write
local function placeholders(prefix)
  return setmetatable({}, { __index = function(t, i)
    local p = prefix .. i
    t[i] = p
    return p
  end })
end
local NAME_P, VALUE_P = placeholders("#n"), placeholders(":v")

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

-- The condition every write carries: the item is as we read it.
local function condition(self, b, read_version, exists, names)
  if not exists then
    return "attribute_not_exists(" .. b:name(names[1]) .. ")"
  end
  if read_version == 0 then
    return "attribute_exists(" .. b:name(names[1]) .. ") AND attribute_not_exists(" ..
      b:name(self.version) .. ")"
  end
  return b:name(self.version) .. " = " .. b:value({ N = tostring(read_version) })
end

local function finish_request(req, b)
  if next(b.names) then req.ExpressionAttributeNames = b.names end
  if next(b.values) then req.ExpressionAttributeValues = b.values end
  req.ReturnValuesOnConditionCheckFailure = "ALL_OLD"
  req.ReturnConsumedCapacity = "TOTAL"
  return req
end

-- "#n1 = :v1", ...
local ASSIGN_P = setmetatable({}, { __index = function(t, i)
  local p = NAME_P[i] .. " = " .. VALUE_P[i]
  t[i] = p
  return p
end })

-- The UpdateItem of a planned write, numbered as the expression builder numbers (sets, the
-- version, the tokens, removals, then the condition); the assignments are written out with
-- cached placeholders: this runs on every write.
local function update_request(self, kav, sets, nav, removes, version_av, tokens_av,
                              read_version, exists, names)
  local en, ev, parts = {}, {}, {}
  local i = 0
  for _, n in ipairs(sets) do
    i = i + 1
    en[NAME_P[i]], ev[VALUE_P[i]], parts[i] = n, nav[n], ASSIGN_P[i]
  end
  i = i + 1
  local version_p = NAME_P[i]
  en[version_p], ev[VALUE_P[i]], parts[i] = self.version, version_av, ASSIGN_P[i]
  if tokens_av then
    i = i + 1
    en[NAME_P[i]], ev[VALUE_P[i]], parts[i] = self.token_attr, tokens_av, ASSIGN_P[i]
  end
  local nn = i
  local update = "SET " .. concat(parts, ", ")
  if #removes > 0 then
    local r = {}
    for j, n in ipairs(removes) do
      nn = nn + 1
      en[NAME_P[nn]], r[j] = n, NAME_P[nn]
    end
    update = update .. " REMOVE " .. concat(r, ", ")
  end
  -- the builder takes over for the condition: it knows the version's placeholder, and the
  -- key's (the only other name a condition uses) is never among the names set or removed
  local b = setmetatable({ names = en, values = ev, nn = nn, nv = i,
    by_name = { [self.version] = version_p } }, Names)
  return finish_request({ TableName = self.table, Key = kav, UpdateExpression = update,
    ConditionExpression = condition(self, b, read_version, exists, names),
    ReturnValues = "ALL_NEW" }, b)
end

-- The attributes with_item writes itself (key, version, tokens): never in the diff.
local function managed_names(self, names)
  if self.managed_for ~= names then
    local m = { [self.version] = true, [self.token_attr] = true }
    for _, n in ipairs(names) do m[n] = true end
    self.managed, self.managed_for = m, names
  end
  return self.managed
end

-- Turns the function's result into a write request; nil request means nothing to write.
-- want_whole: also return the whole item as an update leaves it (transactions keep it).
local function plan_write(self, names, kav, current, read_version, result, token, want_whole)
  local new_version = read_version + 1

  if result == _M.DELETE then
    if not current then return nil end
    local b = expr_builder()
    local req = { TableName = self.table, Key = kav,
      ConditionExpression = condition(self, b, read_version, true, names) }
    return "DeleteItem", finish_request(req, b), "delete"
  end
  if type(result) ~= "table" or getmetatable(result) ~= nil then
    return nil, new_error("ValidationError", "the function must return the item (a plain " ..
      "table), optimistic.DELETE or optimistic.NOTHING; it returned " .. tostring(result))
  end
  if result[self.token_attr] ~= nil then
    return nil, new_error("ValidationError", ("attribute '%s' holds the module's write " ..
      "tokens and cannot be set"):format(self.token_attr))
  end
  local version_av = { N = tostring(new_version) }
  local tokens_av
  if self.tokens > 0 then
    local old = current and current[self.token_attr]
    tokens_av = { S = history_push(type(old) == "table" and old.S or nil, new_version, token,
      self.tokens) }
  end
  local override = { [self.version] = version_av, [self.token_attr] = tokens_av }
  for _, n in ipairs(names) do
    if result[n] == nil then override[n] = kav[n] end
  end
  -- what changed (an update marshals only that: a value provably equal to the stored one is
  -- left alone), and the size as stored (the new attributes plus what an update keeps)
  local ok, sets, nav, removes, size = pcall(plan_diff, current, result,
    managed_names(self, names), override, self.mode == "update")
  if not ok then return nil, new_error("ValidationError", "item cannot be stored: " .. tostring(sets)) end

  for _, n in ipairs(names) do
    if nav[n] == nil then
      nav[n] = kav[n]
    elseif not av_equal(nav[n], kav[n]) then
      return nil, new_error("ValidationError", ("the function changed key attribute '%s'; " ..
        "nothing was written"):format(n))
    end
  end
  local given = nav[self.version]
  if given ~= nil and not av_equal(given, { N = tostring(read_version) }) then
    return nil, new_error("ValidationError", ("the function changed the version attribute " ..
      "'%s' (versions are the module's); nothing was written"):format(self.version))
  end
  if current and #sets == 0 and #removes == 0 then return nil end
  if size > _M.MAX_ITEM_BYTES then
    return nil, new_error("ItemTooLarge", ("item would be %d bytes; DynamoDB's limit is %d")
      :format(size, _M.MAX_ITEM_BYTES))
  end

  local exists = current and true or false
  local kind = exists and "update" or "create"
  if self.mode == "put" then
    local item = {}
    for n, v in pairs(nav) do item[n] = v end
    item[self.version] = version_av
    item[self.token_attr] = tokens_av
    local b = expr_builder()
    local req = { TableName = self.table, Item = item,
      ConditionExpression = condition(self, b, read_version, exists, names) }
    return "PutItem", finish_request(req, b), kind
  end
  local req = update_request(self, kav, sets, nav, removes, version_av, tokens_av, read_version,
    exists, names)
  local whole
  if want_whole then
    whole = {}
    for n, v in pairs(current or {}) do whole[n] = v end
    for _, n in ipairs(removes) do whole[n] = nil end
    for n, v in pairs(nav) do whole[n] = v end
    whole[self.version] = version_av
    whole[self.token_attr] = tokens_av
  end
  return "UpdateItem", req, kind, whole
end

local function read_item(self, kav, info, copts)
  info.requests = info.requests + 1
  local res, err = self.client:get_item({ TableName = self.table, Key = kav,
    ConsistentRead = true, ReturnConsumedCapacity = "TOTAL" }, copts)
  if not res then return nil, err end
  add_capacity(info, res)
  return res.Item or false
end

--- Reads the item, runs fn on a fresh copy, writes the result conditioned on the version.
-- fn(item) receives a fresh copy (nil when the item does not exist) and returns the item
-- to store, optimistic.DELETE, or optimistic.NOTHING. It may run several times: keep it
-- free of side effects. If it raises, nothing is written and the error propagates.
-- @param key the item's key, e.g. { pk = "user#1" }
-- @param fn the function
-- @param opts optional { deadline_ms, max_attempts }
-- @return item (what is stored now; ddb.null when no item is stored), info | nil, err
function Store:with_item(key, fn, opts)
  if type(key) ~= "table" then error("bad argument #1 to 'with_item' (key table expected)", 2) end
  if type(fn) ~= "function" then error("bad argument #2 to 'with_item' (function expected)", 2) end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #3 to 'with_item' (options table expected)", 2)
  end
  opts = opts or {}
  local started = monotonic_ms()
  local deadline = started + (opts.deadline_ms or self.deadline_ms)
  local max_attempts = opts.max_attempts or self.max_attempts
  local copts = { deadline = deadline }
  -- writes: the item in the answer (ALL_NEW) comes back as plain values, ready to return
  local wopts = { deadline = deadline, plain = "Attributes", return_maybe = self.tokens > 0 }
  local info = { attempts = 0, conflicts = 0, requests = 0, consumed_capacity = 0,
    written = false }

  local function finish(item, action)
    info.elapsed_ms = monotonic_ms() - started
    info.action = action
    return item, info
  end

  local writes = {}   -- every write this call sent that might be in the item
  local function fail(err)
    info.elapsed_ms = monotonic_ms() - started
    err.info = info
    for _, w in ipairs(writes) do
      if w.state ~= "refuted" then
        return nil, new_error("OutcomeUnknown", "a write of this call may or may not have " ..
          "been applied, and the item cannot tell (" .. tostring(err.code) .. ")",
          { applied = "maybe", cause = err, info = info, token = w.token })
      end
    end
    return nil, err
  end

  local names, kerr = self:key_schema(copts)
  if not names then return fail(kerr) end
  local kav, verr = key_av(self, key, names)
  if not kav then return fail(verr) end

  local current = nil        -- AttributeValue map; false = absent; nil = must read
  while true do
    if current == nil then
      local item, err = read_item(self, kav, info, copts)
      if item == nil then return fail(err) end
      current = item
    end

    if #writes > 0 then
      local unknown
      for _, w in ipairs(writes) do
        if w.state ~= "refuted" then
          local r = resolve_write(self, w, current or nil)
          if r == "applied" then
            info.written = true
            return finish(current and strip(self, current) or NO_ITEM, w.kind)
          end
          if r == "unknown" then unknown = w end
          w.state = r
        end
      end
      if unknown then
        info.elapsed_ms = monotonic_ms() - started
        return nil, new_error("OutcomeUnknown", "the write's answer was lost and the item " ..
          "cannot prove whether it was applied (its write-token history does not cover " ..
          "that version); read the item and decide", { applied = "maybe", info = info,
          token = unknown.token })
      end
    end

    -- A lost write that has not landed yet is sent again as it was (same token, same
    -- condition) rather than replaced by a new run of the function: of two copies
    -- conditioned on one version at most one can land, whereas a new run that chose to
    -- write nothing would leave the old copy free to land after the call returned.
    local pending
    for _, w in ipairs(writes) do
      if w.state == "pending" then pending = w end
    end

    local op, req, kind, w
    if pending then
      op, req, kind, w = pending.op, pending.req, pending.kind, pending
      info.resends = (info.resends or 0) + 1
    else
      if info.attempts >= max_attempts then
        return fail(new_error("ConflictsExhausted", ("gave up after %d runs of the " ..
          "function (%d conflicts)"):format(info.attempts, info.conflicts)))
      end
      if info.conflicts > 0 then
        local delay = self.client.retry:backoff(self.backoff_base_ms, self.backoff_cap_ms,
          info.conflicts)
        if monotonic_ms() + delay >= deadline then
          return fail(new_error("DeadlineExceeded", ("the call's deadline passed after %d " ..
            "conflicts"):format(info.conflicts)))
        end
        if delay > 0 then
          local t = self.client.transport
          if t.sleep then t:sleep(delay) else core.sleep_ms(delay) end
        end
      end

      local read_version, vberr = version_of(self, current)
      if not read_version then return fail(vberr) end
      info.attempts = info.attempts + 1
      local copy = current and strip(self, current) or nil
      local ok, result = call_protected(fn, copy)
      if not ok then error(result, 0) end
      if result == nil then
        return fail(new_error("ValidationError", "the function returned nil: return the " ..
          "item, optimistic.DELETE or optimistic.NOTHING; nothing was written"))
      end
      if result == _M.NOTHING then
        return finish(current and strip(self, current) or NO_ITEM, "none")
      end
      local token = self.tokens > 0 and new_token() or nil
      op, req, kind = plan_write(self, names, kav, current, read_version, result, token)
      if op == nil then
        if req ~= nil then return fail(req) end   -- a validation error
        return finish(current and strip(self, current) or NO_ITEM, "none")
      end
      w = { token = token, kind = kind, read_version = read_version,
        version = read_version + 1, state = "sent", op = op, req = req,
        read_history = current and current[self.token_attr] }
    end

    info.requests = info.requests + 1
    -- with tokens, a lost answer is resolved by reading the item at once: quicker than
    -- the client's blind retries, and before other writers push the token out of history
    local res, err = self.client:call(op, req, wopts)
    if res then
      add_capacity(info, res)
      info.written = true
      if kind == "delete" then return finish(NO_ITEM, "delete") end
      if op == "UpdateItem" and res.Attributes then
        local item = res.Attributes
        item[self.token_attr] = nil
        return finish(item, kind)
      end
      local stored = {}
      for n, v in pairs(req.Item or {}) do stored[n] = v end
      return finish(strip(self, stored), kind)
    end

    -- A clean conflict proves this write was not applied; one that may follow an earlier
    -- attempt of ours (a timeout, a silent resend on a new connection) has to be resolved.
    local maybe = err.applied == "maybe"
    if err.code == "ConditionalCheckFailedException" then
      info.conflicts = info.conflicts + 1
      current = err.item or nil   -- ALL_OLD: the item as it is now; else read it again
      if self.on_conflict then
        pcall(self.on_conflict, { key = key, attempt = info.attempts,
          conflicts = info.conflicts, elapsed_ms = monotonic_ms() - started })
      end
      if maybe then
        if self.tokens == 0 then
          return nil, new_error("OutcomeUnknown", "the write may have been applied before " ..
            "a conflict was reported, and write tokens are off", { applied = "maybe",
              cause = err, info = info })
        end
        if w ~= pending then writes[#writes + 1] = w end
        w.state = "sent"
      end
    elseif maybe then
      if self.tokens == 0 then
        return nil, new_error("OutcomeUnknown", "the write may or may not have been applied " ..
          "(" .. tostring(err.code) .. ") and write tokens are off", { applied = "maybe",
            cause = err, info = info })
      end
      if w ~= pending then writes[#writes + 1] = w end
      w.state = "sent"
      current = nil   -- read again and resolve
    else
      return fail(err)
    end
  end
end

--- Several items, possibly in several tables, in one transaction: see ddb.transact.
_M.with_items = function(...) return require("ddb.transact").with_items(...) end

--- with_items with this store's table and settings as the defaults.
function Store:with_items(keys, fn, opts)
  return _M.with_items(self, keys, fn, opts)
end

-- The building blocks, for multi-item transactions and tests; not a stable API.
_M._internal = {
  new_token = new_token, parse_history = parse_history,
  version_of = version_of, resolve_write = resolve_write, plan_write = plan_write,
  key_av = key_av, strip = strip, expr_builder = expr_builder, condition = condition,
  add_capacity = add_capacity, NO_ITEM = NO_ITEM, call_protected = call_protected,
  describe_key = describe_key,
}

--- Reads an item (strongly consistent) without changing it; ddb.null when there is none.
function Store:get(key, opts)
  local copts = { deadline = monotonic_ms() + (opts and opts.deadline_ms or self.deadline_ms) }
  local names, err = self:key_schema(copts)
  if not names then return nil, err end
  local kav, verr = key_av(self, key, names)
  if not kav then return nil, verr end
  local info = { requests = 0, consumed_capacity = 0 }
  local item, rerr = read_item(self, kav, info, copts)
  if item == nil then return nil, rerr end
  return item and strip(self, item) or NO_ITEM, info
end

return _M
