--- ddb: a low-level Amazon DynamoDB client for Lua with a C core.
-- The core signs, encodes, decodes and classifies; a transport moves the bytes and a sleep
-- function waits, both called from Lua so that a yielding transport (OpenResty cosockets,
-- a game loop's coroutines) never has to yield across a C call.
-- @module ddb

local core = require "ddb.core"
local errors = require "ddb.errors"
local client = require "ddb.client"

local type, setmetatable, getmetatable, error = type, setmetatable, getmetatable, error

local _M = { _VERSION = core._VERSION, core = core }


-- -----------------------------------------------------------------------------
-- Values
-- -----------------------------------------------------------------------------
local mt = core.mt

--- DynamoDB's NULL: store it as a value (`{ gone = ddb.null }`), and it comes back as such.
-- `with_item` and `get` return it in place of an item when none is stored. Immutable.
-- @table null
_M.null = core.null

mt.number.__tostring = function(n) return n.value end
mt.number.__eq = function(a, b)
  return core.number_canonical(a.value) == core.number_canonical(b.value)
end
mt.binary.__tostring = function(b) return ("ddb.binary(%d bytes)"):format(#b.value) end
mt.binary.__eq = function(a, b) return a.value == b.value end
mt.null.__tostring = function() return "ddb.null" end
mt.null.__newindex = function() error("ddb.null is immutable", 2) end

--- A number DynamoDB keeps exactly (up to 38 digits) where a Lua number would round.
-- `tostring` gives its text; `==` compares by value (`"2.50"` equals `"2.5"`).
-- @param text the number as text, e.g. `"12345678901234567890.5"` (or a Lua number)
-- @return the number value
-- @raise when `text` is not a number DynamoDB can store
function _M.number(text)
  if type(text) == "number" then text = core.number_canonical(text) end
  local canonical, err = core.number_canonical(text)
  if not canonical then error("ddb.number: " .. err, 2) end
  return setmetatable({ value = text }, mt.number)
end

--- Bytes to store as B (binary) rather than S (UTF-8 text).
-- @param bytes a string of any bytes; `.value` holds it
-- @return the binary value
function _M.binary(bytes)
  if type(bytes) ~= "string" then error("ddb.binary: bytes must be a string", 2) end
  return setmetatable({ value = bytes }, mt.binary)
end

local function mark(t, which, name)
  if t == nil then t = {} end
  if type(t) ~= "table" then error(name .. ": a table is required", 3) end
  return setmetatable(t, which)
end

--- Marks a table as a list (L), so that an empty one stays a list.
-- @param t a sequence (default: a new empty table)
-- @return `t`, marked
function _M.list(t) return mark(t, mt.list, "ddb.list") end
--- Marks a table as a map (M); plain tables with string keys are maps already.
-- @param t a table with string keys (default: a new empty table)
-- @return `t`, marked
function _M.map(t) return mark(t, mt.map, "ddb.map") end
--- Marks a sequence of strings as a string set (SS).
-- @param t a non-empty sequence of distinct strings
-- @return `t`, marked
function _M.string_set(t) return mark(t, mt.string_set, "ddb.string_set") end
--- Marks a sequence of numbers as a number set (NS).
-- @param t a non-empty sequence of distinct numbers (Lua numbers, `ddb.number` or text)
-- @return `t`, marked
function _M.number_set(t) return mark(t, mt.number_set, "ddb.number_set") end
--- Marks a sequence of byte strings as a binary set (BS).
-- @param t a non-empty sequence of distinct strings or `ddb.binary` values
-- @return `t`, marked
function _M.binary_set(t) return mark(t, mt.binary_set, "ddb.binary_set") end

--- What kind of DynamoDB value a Lua value stands for: "S", "N", "B", "BOOL", "NULL",
-- "L", "M", "SS", "NS", "BS".
-- @param v any Lua value
-- @return the type's name, or nil for a value DynamoDB cannot hold (a function, ...)
function _M.type(v)
  local t = type(v)
  if t == "string" then return "S" end
  if t == "number" then return "N" end
  if t == "boolean" then return "BOOL" end
  if t ~= "table" then return nil end
  local m = getmetatable(v)
  if m == mt.number then return "N" end
  if m == mt.binary then return "B" end
  if m == mt.null then return "NULL" end
  if m == mt.string_set then return "SS" end
  if m == mt.number_set then return "NS" end
  if m == mt.binary_set then return "BS" end
  if m == mt.list then return "L" end
  if m == mt.map then return "M" end
  if v[1] ~= nil then return "L" end
  return "M"
end

--- One Lua value as a DynamoDB AttributeValue (`42` becomes `{ N = "42" }`).
-- @function marshal
-- @param v the value (see the table of values in docs/client.md)
-- @return the AttributeValue table
-- @raise naming the attribute path, for a value DynamoDB cannot store
_M.marshal = core.marshal
--- One AttributeValue as a Lua value: the inverse of `marshal`.
-- @function unmarshal
-- @param av an AttributeValue table, e.g. `{ SS = { "a" } }`
-- @return the Lua value
_M.unmarshal = core.unmarshal
--- A whole item as the map of AttributeValues a request carries (`Item`, `Key`).
-- @function marshal_item
-- @param item a table of attribute names to Lua values
-- @return the table of AttributeValues
-- @raise naming the attribute path, for a value DynamoDB cannot store
_M.marshal_item = core.marshal_item
--- A map of AttributeValues (an answer's `Item`) as plain Lua values.
-- @function unmarshal_item
-- @param avs the table of AttributeValues
-- @return the item
_M.unmarshal_item = core.unmarshal_item
--- JSON text for a Lua value, as requests are encoded (`ddb.list` marks arrays).
-- @function encode_json
-- @param v a string, number, boolean or table
-- @return the JSON text | nil, message
_M.encode_json = core.encode
--- A Lua value for JSON text, as answers are decoded (numbers as Lua numbers).
-- @function decode_json
-- @param text the JSON text
-- @return the value | nil, message
_M.decode_json = core.decode

-- -----------------------------------------------------------------------------
-- Errors
-- -----------------------------------------------------------------------------
local error_mt = errors.mt
_M.error_mt = error_mt

--- Makes a structured error, as every failure of the module is (ddb.errors).
-- @param code the error code, e.g. `"ValidationError"`
-- @param message what happened, for people
-- @param fields optional: `status`, `applied` (`"no"`, provably not applied, the default,
--   or `"maybe"`), `retry_class` (`"none"`, `"transient"`, `"throttle"`, `"timeout"`), and
--   any other field to copy into the error
-- @return the error table (`tostring` gives `"ddb: <code>: <message>"`)
-- @function new_error
_M.new_error = errors.new


--- Whether a value is an error of this module (made by `new_error` or returned by a call).
-- @param e any value
-- @return boolean
-- @function is_error
_M.is_error = errors.is_error

-- -----------------------------------------------------------------------------
-- The client (ddb.client holds it)
-- -----------------------------------------------------------------------------
_M.new = client.new
_M.Client = client.Client
_M.curl_transport = client.curl_transport
_M.client_options = client.client_options
_M.CLIENT_OPTIONS = client.CLIENT_OPTIONS
_M.MAX_ANSWER_BYTES = client.MAX_ANSWER_BYTES
_M.capacity_units = client.capacity_units
_M.run_hook = client.run_hook

return _M
