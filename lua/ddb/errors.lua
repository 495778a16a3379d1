--- ddb.errors: the one error type of the module. Every failure is a table with `code`,
-- `message`, `applied` ("no": provably not applied, or "maybe") and `retry_class`, made by
-- core.error (the C core's constructor) under one metatable, whose tostring shows the code,
-- the HTTP status, the message and the request id, never a secret.
-- @module ddb.errors

local core = require "ddb.core"

local type, tostring, pairs, setmetatable, getmetatable =
  type, tostring, pairs, setmetatable, getmetatable

local _M = {}

local mt = {}
mt.__index = mt
mt.__tostring = function(e)
  local s = "ddb: " .. tostring(e.code)
  if e.status then s = s .. " (HTTP " .. e.status .. ")" end
  if e.message and e.message ~= e.code then s = s .. ": " .. tostring(e.message) end
  if e.request_id then s = s .. " [request " .. tostring(e.request_id) .. "]" end
  return s
end
_M.mt = mt

--- Makes a structured error.
-- @param code the error code, e.g. `"ValidationError"`
-- @param message what happened, for people
-- @param fields optional: `status`, `applied` (`"no"`, the default, or `"maybe"`),
--   `retry_class` (`"none"`, the default, `"transient"`, `"throttle"`, `"timeout"`), and any
--   other field to copy into the error
-- @return the error table
function _M.new(code, message, fields)
  local e = core.error(code, message, fields and fields.status, fields and fields.applied or "no",
    fields and fields.retry_class or "none")
  if fields then
    for k, v in pairs(fields) do e[k] = v end
  end
  return setmetatable(e, mt)
end

--- Gives a table made by core.error (a transport's, the C core's) the error metatable.
-- @param e the error table
-- @return e
function _M.wrap(e)
  if getmetatable(e) ~= mt then setmetatable(e, mt) end
  return e
end

--- Whether a value is an error of this module.
-- @param e any value
-- @return boolean
function _M.is_error(e) return type(e) == "table" and getmetatable(e) == mt end

return _M
