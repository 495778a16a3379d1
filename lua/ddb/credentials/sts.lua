--- ddb.credentials.sts: the STS client of the chain: AssumeRole (signed with the source
-- credentials) and AssumeRoleWithWebIdentity (unsigned), their form-encoded requests,
-- retries within the call's deadline, and their XML answers.
-- @module ddb.credentials.sts

local core = require "ddb.core"
local config = require "ddb.config"
local creds = require "ddb.credentials.creds"
local context = require "ddb.credentials.context"
local xml = require "ddb.credentials.xml"

local tostring, ipairs, pairs = tostring, ipairs, pairs
local floor = math.floor
local concat = table.concat
local sfmt = string.format
local cred_error, make_creds, redact = creds.error, creds.make, creds.redact
local env, http, pause = context.env, context.http, context.pause
local unreachable, retryable_http = context.unreachable, context.retryable_http
local USER_AGENT = context.USER_AGENT

local _M = {}

local STS_FIELDS = { { "AccessKeyId", "access_key_id" }, { "SecretAccessKey", "secret_access_key" },
  { "SessionToken", "session_token" }, { "Expiration", "expiration" } }

--- Reads an STS answer: creds-table fields for a 200 answer of `action`, or the error's
-- code and message. Returns { access_key_id, secret_access_key, session_token, expiration }
-- | nil, { code, message } | nil, nil, reason (not a readable answer).
function _M.parse(action, status, body)
  local leaves, why = xml.leaves(body)
  if not leaves then return nil, nil, "unreadable XML (" .. why .. ")" end
  if status == 200 then
    local base = action .. "Response/" .. action .. "Result/Credentials/"
    local out = {}
    for _, fk in ipairs(STS_FIELDS) do
      local field, key = fk[1], fk[2]
      local v = leaves[base .. field]
      if v == false then return nil, nil, "the answer has " .. field .. " twice" end
      if v == nil or v == "" then return nil, nil, "the answer has no " .. field end
      out[key] = v
    end
    return out
  end
  local code = leaves["ErrorResponse/Error/Code"]
  local message = leaves["ErrorResponse/Error/Message"]
  if not code then
    for path, v in pairs(leaves) do
      if v and path:find("Error/Code$") then
        code = v
        message = leaves[path:gsub("Code$", "Message")]
      end
    end
  end
  if not code or code == "" then return nil, nil, "an error answer without an error code" end
  return nil, { code = code, message = message or "" }
end

local function form_encode(params)
  local parts = {}
  for i, kv in ipairs(params) do
    parts[i] = kv[1] .. "=" .. tostring(kv[2]):gsub("[^%w%-%._~]", function(ch)
      return sfmt("%%%02X", ch:byte())
    end)
  end
  return concat(parts, "&")
end
_M.form_encode = form_encode

local function sts_endpoint(ctx)
  local url = ctx.sts_endpoint or env(ctx, "AWS_ENDPOINT_URL_STS") or env(ctx, "AWS_ENDPOINT_URL")
  local region = ctx.region
  if not url then
    if region then
      url = "https://sts." .. region .. ".amazonaws.com" .. (region:find("^cn%-") and ".cn" or "")
    else
      url, region = "https://sts.amazonaws.com", "us-east-1"
    end
  end
  local ep, err = config.parse_endpoint(url)
  if not ep then return nil, cred_error("STS endpoint " .. url .. ": " .. err, "ConfigError") end
  ep.region = region or "us-east-1"
  return ep
end

-- Sends one STS action; signing: a creds object (AssumeRole) or nil (web identity, unsigned).
-- secrets: strings that must not appear in an error (the web identity token).
local function sts_call(ctx, action, params, signing, what, secrets, deadline)
  local ep, eerr = sts_endpoint(ctx)
  if not ep then return nil, eerr end
  local body = form_encode(params)
  local content_type = "application/x-www-form-urlencoded; charset=utf-8"
  secrets = secrets or {}
  if signing then
    secrets[#secrets + 1] = signing.secret_key
    secrets[#secrets + 1] = signing.session_token
  end
  local attempt, last = 0, nil
  while attempt < ctx.sts_attempts do
    attempt = attempt + 1
    local lines = { "Host: " .. ep.host_header, "Content-Type: " .. content_type }
    if signing then
      -- the core's generic SigV4 signer: it adds and signs X-Amz-Date and the session token,
      -- and the signing key never leaves C
      local signer = core.signer_new{ access_key = signing.access_key,
        secret_key = signing.secret_key, session_token = signing.session_token,
        region = ep.region, host = ep.host_header, service = "sts" }
      local signed = signer:sign_request("POST", "/", nil, { { "Content-Type", content_type } },
        body, floor(ctx.now()))
      signer:close()
      for _, line in ipairs(signed) do lines[#lines + 1] = line end
    end
    lines[#lines + 1] = "User-Agent: " .. USER_AGENT
    local status, headers, rbody = http(ctx, "POST", ep.url, lines, body, ctx.sts_timeout_ms,
      deadline)
    if status == 200 then
      local c, _, why = _M.parse(action, status, rbody)
      if not c then
        return nil, cred_error(("%s: STS %s answered, but %s"):format(what, action, why))
      end
      return make_creds(c.access_key_id, c.secret_access_key, c.session_token, c.expiration,
        what)
    end
    if status then
      local _, e, why = _M.parse(action, status, rbody)
      if e then
        last = cred_error(("%s: STS %s failed: %s: %s (HTTP %d)"):format(what, action,
          e.code, redact(e.message, secrets), status))
        last.sts_code = e.code
        -- throttling and the identity provider's hiccups are worth another try
        if not (e.code == "Throttling" or e.code == "IDPCommunicationError"
            or retryable_http(status)) then
          return nil, last
        end
      else
        last = cred_error(("%s: STS %s answered HTTP %d, %s"):format(what, action, status, why))
        if not retryable_http(status) then return nil, last end
      end
    else
      local err = headers
      last = cred_error(("%s: STS %s at %s %s"):format(what, action, ep.host_header,
        unreachable(err, secrets)))
      if not retryable_http(nil, err) then return nil, last end
    end
    if attempt < ctx.sts_attempts and not pause(ctx, 100 * attempt, deadline) then
      last.out_of_time = true   -- no time for another attempt
      break
    end
  end
  return nil, last
end

local function session_name(ctx, configured)
  return configured or ("lua-ddb-" .. floor(ctx.now()))
end

_M.call = sts_call
_M.session_name = session_name

return _M
