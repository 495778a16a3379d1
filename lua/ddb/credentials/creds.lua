--- ddb.credentials.creds: a credentials object (checked fields, a tostring without secrets),
-- the errors a credential source returns (ddb.errors', never applied, not retried), and the
-- redaction of secrets from their messages.
-- @module ddb.credentials.creds

local core = require "ddb.core"
local errors = require "ddb.errors"
local time = require "ddb.time"

local type, tostring, ipairs, setmetatable = type, tostring, ipairs, setmetatable
local sfmt = string.format
local new_error = errors.new
local parse_time = time.parse_iso8601

local _M = {}

-- Nothing reached DynamoDB when a credential source fails: never applied, not retried.
local function cred_error(message, code)
  return new_error(code or "CredentialsError", message)
end

-- Replaces every secret in text with "****" (an STS or endpoint message might echo one).
local function redact(text, secrets)
  text = tostring(text)
  for _, s in ipairs(secrets or {}) do
    if type(s) == "string" and #s >= 4 then
      local from = 1
      while true do
        local i, j = text:find(s, from, true)
        if not i then break end
        text = text:sub(1, i - 1) .. "****" .. text:sub(j + 1)
        from = i + 4
      end
    end
  end
  if #text > 300 then text = text:sub(1, 300) .. "..." end
  return text
end
_M.redact = redact

local iso8601 = time.format_iso8601

local creds_mt = {
  __tostring = function(c)
    return sfmt("ddb.credentials{source=%s, access_key=%s****%s%s}", tostring(c.source),
      c.access_key:sub(1, 4), c.session_token and ", session token" or "",
      c.expiration and (", expires " .. iso8601(c.expiration)) or "")
  end,
}

local function bad_field(v)
  return type(v) ~= "string" or v == "" or v:find("[%z\r\n]")
end

--- The fields of a credentials table as a caller gives it (the credentials option, what a
-- credentials function returns): access_key_id (or access_key, aws_access_key_id),
-- secret_access_key (or secret_key, aws_secret_access_key), session_token (or
-- aws_session_token), expiration.
-- @param c the table
-- @return { access_key, secret_key, session_token, expiration } | nil, err (never echoing c)
function _M.from_table(c)
  if type(c) == "table" then
    local ak = c.access_key_id or c.access_key or c.aws_access_key_id
    local sk = c.secret_access_key or c.secret_key or c.aws_secret_access_key
    if type(ak) == "string" and ak ~= "" and type(sk) == "string" and sk ~= "" then
      return { access_key = ak, secret_key = sk,
        session_token = c.session_token or c.aws_session_token, expiration = c.expiration }
    end
  end
  return nil, "credentials option needs access_key_id and secret_access_key strings"
end

-- A credentials object, or nil, err. expiration: epoch seconds, an ISO 8601 string or nil.
local function make_creds(ak, sk, token, expiration, source)
  if bad_field(ak) or #ak >= 128 or bad_field(sk) then
    return nil, cred_error(source .. " gave no usable access key id and secret access key")
  end
  if token ~= nil and (token == "" or token == false) then token = nil end
  if token ~= nil and bad_field(token) then
    return nil, cred_error(source .. " gave a session token that is not a one-line string")
  end
  local exp = expiration
  if type(exp) == "string" then
    exp = parse_time(exp)
    if not exp then
      return nil, cred_error(source .. " gave an expiration that is not an ISO 8601 time")
    end
  elseif exp ~= nil and type(exp) ~= "number" then
    return nil, cred_error(source .. " gave an expiration that is neither a time nor a number")
  end
  return setmetatable({ access_key = ak, secret_key = sk, session_token = token,
    expiration = exp, source = source }, creds_mt)
end
_M.make = make_creds

local function static_source(name, creds)
  return { name = name, static = true, fetch = function() return creds end }
end

local function json_creds(body, name, token_field)
  local doc = core.decode(body)
  if type(doc) ~= "table" then return nil, cred_error(name .. " answered something that is not JSON") end
  if doc.Code ~= nil and doc.Code ~= "Success" then
    return nil, cred_error(name .. " answered Code " .. tostring(doc.Code):sub(1, 64))
  end
  for _, f in ipairs({ "AccessKeyId", "SecretAccessKey", token_field, "Expiration" }) do
    if type(doc[f]) ~= "string" or doc[f] == "" then
      return nil, cred_error(name .. " answered without " .. f)
    end
  end
  return make_creds(doc.AccessKeyId, doc.SecretAccessKey, doc[token_field], doc.Expiration, name)
end

_M.error = cred_error
_M.iso8601 = iso8601
_M.static_source = static_source
_M.from_json = json_creds

return _M
