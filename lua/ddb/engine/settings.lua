--- ddb.engine.settings: the options of optimistic stores, of with_item's and with_items'
-- calls, checked by name, type and range in one place. A mistake raises at once, naming the
-- option and what it takes (a misspelt name is the most common mistake: it is refused with
-- the name meant).
-- @module ddb.engine.settings

local core = require "ddb.core"
local options = require "ddb.options"

local type, pairs, ipairs, error, tostring, floor, huge, getmetatable =
  type, pairs, ipairs, error, tostring, math.floor, math.huge, getmetatable
local concat, sort = table.concat, table.sort

local _M = {}

local function whole(v) return type(v) == "number" and v == v and v ~= huge and v ~= -huge and
  floor(v) == v end
local function finite(v) return type(v) == "number" and v == v and v ~= huge and v ~= -huge end

-- name -> { check(v) -> ok, what it takes }
local SPECS = {
  table = { function(v) return type(v) == "string" and #v > 0 end, "a table name" },
  client = { function(v) return type(v) == "table" and type(v.call) == "function" end,
    "a ddb client (ddb.new)" },
  key = { function(v)
      if type(v) ~= "table" or #v < 1 or #v > 2 then return false end
      for k, n in pairs(v) do
        if type(k) ~= "number" or type(n) ~= "string" or n == "" then return false end
      end
      return v[1] ~= v[2]
    end, "a list of one or two different attribute names, e.g. { \"pk\", \"sk\" }" },
  version_attribute = { function(v) return type(v) == "string" and #v > 0 end,
    "a non-empty attribute name" },
  token_attribute = { function(v) return type(v) == "string" and #v > 0 end,
    "a non-empty attribute name" },
  version_start = { function(v) return whole(v) and v >= -1e15 and v <= 1e15 end,
    "a whole number (the version a created item gets; 0 for .NET's DynamoDBContext)" },
  version_step = { function(v) return whole(v) and v >= 1 and v <= 1e15 end,
    "a whole number >= 1 (what each write adds to the version)" },
  tokens = { function(v) return v == false or (whole(v) and v >= 0 and v <= 1000) end,
    "a whole number from 0 to 1000, or false (write tokens kept in each item)" },
  tokens_max = { function(v) return whole(v) and v >= 1 and v <= 1000 end,
    "a whole number from 1 to 1000 (the most write tokens a hot item keeps)" },
  mode = { function(v) return v == "update" or v == "put" end, "'update' or 'put'" },
  returns = { function(v) return v == "stored" or v == "written" end,
    "'stored' (the item as stored after the write) or 'written' (as this call wrote it)" },
  max_attempts = { function(v) return whole(v) and v >= 1 end,
    "a whole number >= 1 (runs of the function), or nil for as many as the deadline allows" },
  deadline_ms = { function(v) return finite(v) and v > 0 and v <= 86400000 end,
    "a number of milliseconds above 0 (at most a day)" },
  backoff_base_ms = { function(v) return finite(v) and v >= 0 and v <= 60000 end,
    "a number of milliseconds from 0 to 60000" },
  backoff_cap_ms = { function(v) return finite(v) and v >= 0 and v <= 600000 end,
    "a number of milliseconds from 0 to 600000" },
  on_conflict = { function(v) return type(v) == "function" end, "a function(ctx)" },
  on_event = { function(v) return type(v) == "function" end, "a function(event)" },
  idempotent = { function(v) return type(v) == "boolean" end,
    "a boolean (commit through TransactWriteItems with a ClientRequestToken)" },
  key_schemas = { function(v) return type(v) == "table" end,
    "a table of table name -> list of key attribute names" },
  ttl_attribute = { function(v) return type(v) == "string" and #v > 0 end,
    "the name of the table's TTL attribute (epoch seconds)" },
  expect_version = { function(v)
      if v == false then return true end
      if type(v) == "table" and getmetatable(v) ~= nil then v = tostring(v) end
      return (type(v) == "number" or type(v) == "string") and core.version_parse(v) ~= nil
    end, "the version the item must be at (a whole number), or false: it must not exist" },
  concurrency = { function(v) return whole(v) and v >= 1 and v <= 10000 end,
    "a whole number from 1 to 10000 (calls in flight at once)" },
  spawn = { function(v) return type(v) == "function" end,
    "a function(fn) that runs fn concurrently and returns a handle for join" },
  join = { function(v) return type(v) == "function" end, "a function(handle) that waits for it" },
}

-- What each kind of options table may hold (names of ddb.new come on top for stores).
local STORE = { "table", "client", "key", "version_attribute", "token_attribute",
  "version_start", "version_step", "tokens", "tokens_max", "mode", "max_attempts", "deadline_ms",
  "backoff_base_ms", "backoff_cap_ms", "on_conflict", "on_event", "idempotent", "ttl_attribute",
  "returns" }
local CALL = { "deadline_ms", "max_attempts", "idempotent", "expect_version" }
local EACH = { "deadline_ms", "max_attempts", "idempotent", "concurrency", "spawn", "join" }
local MANY = { "deadline_ms", "max_attempts", "idempotent", "version_attribute",
  "token_attribute", "version_start", "version_step", "tokens", "mode", "backoff_base_ms",
  "backoff_cap_ms", "on_conflict", "on_event", "key_schemas", "ttl_attribute" }

local function set_of(list)
  local s = {}
  for _, n in ipairs(list) do s[n] = true end
  return s
end
local STORE_SET, CALL_SET, MANY_SET, EACH_SET = set_of(STORE), set_of(CALL), set_of(MANY),
  set_of(EACH)

_M.DEFAULTS = {
  version_attribute = "version", token_attribute = "_ddb_tokens", version_start = 1,
  version_step = 1, tokens = 8, tokens_max = 128, mode = "update", deadline_ms = 5000,
  backoff_base_ms = 0,
  backoff_cap_ms = 100, idempotent = false, returns = "stored",
}

local function refuse(where, message, level)
  error(where .. ": " .. message, level + 1)
end

-- Every option a store or a call takes a value for, in ddb.options' terms.
local OPTION_SPECS = {}
for name, spec in pairs(SPECS) do
  local ok_fn, what = spec[1], spec[2]
  OPTION_SPECS[name] = options.custom(function(v) return ok_fn(v), what end)
end
local ANY = options.custom(function() return true end)

--- Checks opts against the names allowed (a set) and their types; raises naming the option.
-- extra: a set of further names allowed without a check here (ddb.new's own).
function _M.check(where, opts, allowed, extra, level)
  level = (level or 1) + 1
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(where .. ": options must be a table", level) end
  local spec = {}
  for n in pairs(extra or {}) do spec[n] = ANY end
  for n in pairs(allowed) do spec[n] = OPTION_SPECS[n] or ANY end
  return options.check(where, opts, spec, level - 1)
end

_M.STORE, _M.CALL, _M.MANY, _M.EACH = STORE_SET, CALL_SET, MANY_SET, EACH_SET

--- The names of ddb.new's options (what a store passes on to the client it makes).
function _M.client_options()
  local ddb = require "ddb"
  if type(ddb.CLIENT_OPTIONS) == "table" then return ddb.CLIENT_OPTIONS end
  return set_of({ "region", "endpoint", "credentials", "profile", "timeout_ms",
    "connect_timeout_ms", "deadline_ms", "max_attempts", "retry", "transport", "ca_bundle",
    "on_event", "clock", "log", "user_agent_suffix", "pool_size", "keepalive_timeout_ms",
    "pool", "ssl_verify" })
end

--- Settings for one table, from the given options over the defaults.
function _M.table_settings(opts, base)
  base = base or _M.DEFAULTS
  local function pick(name)
    local v = opts[name]
    if v == nil then v = base[name] end
    return v
  end
  local tokens = pick("tokens")
  if tokens == false then tokens = 0 end
  local s = {
    version = pick("version_attribute"), token_attr = pick("token_attribute"),
    version_start = pick("version_start"), version_step = pick("version_step"),
    tokens = tokens, mode = pick("mode"), ttl = pick("ttl_attribute"),
    returns = pick("returns"),
  }
  return s
end

--- Refuses settings that cannot work together (key attributes as version or tokens, ...).
function _M.check_table(where, s, key_names, level)
  level = (level or 1) + 1
  if s.ttl and (s.ttl == s.version or s.ttl == s.token_attr) then
    refuse(where, ("option 'ttl_attribute' names '%s', which the module writes itself")
      :format(s.ttl), level)
  end
  if s.token_attr == s.version then
    refuse(where, ("options 'token_attribute' and 'version_attribute' name the same " ..
      "attribute '%s'"):format(s.version), level)
  end
  for _, n in ipairs(key_names or {}) do
    if n == s.version then
      refuse(where, ("option 'version_attribute' names '%s', which is a key attribute of " ..
        "the table: the version must be an attribute of its own"):format(n), level)
    end
    if n == s.token_attr then
      refuse(where, ("option 'token_attribute' names '%s', which is a key attribute of the " ..
        "table: the write tokens must be an attribute of their own"):format(n), level)
    end
  end
end

--- A one-line list of the allowed names, for messages.
function _M.list(set)
  local names = {}
  for n in pairs(set) do names[#names + 1] = n end
  sort(names)
  return concat(names, ", ")
end

return _M
