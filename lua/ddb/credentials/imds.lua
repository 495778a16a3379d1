--- ddb.credentials.imds: EC2 instance metadata, IMDSv2 (a PUT for a session token, then the
-- role's credentials; IMDSv1 only where the token PUT is refused, unless
-- AWS_EC2_METADATA_V1_DISABLED).
-- @module ddb.credentials.imds

local creds = require "ddb.credentials.creds"
local context = require "ddb.credentials.context"

local tostring = tostring
local concat = table.concat
local cred_error, json_creds = creds.error, creds.from_json
local env, env_true, http = context.env, context.env_true, context.http
local unreachable, url_parts, retryable_http = context.unreachable, context.url_parts,
  context.retryable_http
local USER_AGENT = context.USER_AGENT

local _M = {}

local IMDS_BASE = "http://169.254.169.254"
local IMDS_BASE_IPV6 = "http://[fd00:ec2::254]"
local IMDS_TOKEN_TTL = "21600"

-- tried: what the default chain tried before (IMDS comes last there); nil when a profile's
-- credential_source names it.
local function imds_source(ctx, tried)
  local base = env(ctx, "AWS_EC2_METADATA_SERVICE_ENDPOINT")
  if not base then
    local mode = env(ctx, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")
    base = mode and mode:lower() == "ipv6" and IMDS_BASE_IPV6 or IMDS_BASE
  end
  base = base:gsub("/+$", "")
  local parts = url_parts(base .. "/")
  local name = "EC2 instance metadata (" .. base .. ")"
  local v1_disabled = env_true(ctx, "AWS_EC2_METADATA_V1_DISABLED")
  local timeout = ctx.imds_timeout_ms
  local attempts = ctx.imds_attempts
  -- Every failure, when IMDS was the last thing to try, also says what was tried before and
  -- why each was passed over: off EC2 this is the error a user sees when nothing is set up.
  local function unavailable(why)
    if tried then
      return nil, cred_error("no credentials found; tried: " .. concat(tried, ", ") ..
        ", " .. name .. ": " .. why)
    end
    return nil, cred_error(name .. ": " .. why)
  end
  local function exchange(method, path, lines, deadline)
    local status, headers, body
    for _ = 1, attempts do
      status, headers, body = http(ctx, method, base .. path, lines, "", timeout, deadline)
      if status or not retryable_http(nil, headers) then break end
    end
    if not status then return nil, { message = unreachable(headers) } end
    return status, headers, body
  end
  local function token(deadline)
    local status, err, body = exchange("PUT", "/latest/api/token", { "Host: " .. parts.hostport,
      "X-aws-ec2-metadata-token-ttl-seconds: " .. IMDS_TOKEN_TTL, "User-Agent: " .. USER_AGENT },
      deadline)
    if status == 200 and body ~= "" and not body:find("[\r\n%z]") then return body end
    if status == 403 or status == 404 or status == 405 then
      if v1_disabled then
        return nil, "the token request was refused (HTTP " .. status ..
          ") and AWS_EC2_METADATA_V1_DISABLED forbids IMDSv1"
      end
      return false   -- IMDSv1
    end
    if status == 200 then return nil, "the token request answered an unusable token" end
    if status then return nil, "the token request answered HTTP " .. status end
    return nil, err.message
  end
  return {
    name = name,
    fetch = function(_, deadline)
      local tok, why = token(deadline)
      if tok == nil then return unavailable(why) end
      local renewed = false
      local function get(path)
        while true do
          local lines = { "Host: " .. parts.hostport, "User-Agent: " .. USER_AGENT }
          if tok then lines[#lines + 1] = "X-aws-ec2-metadata-token: " .. tok end
          local status, err, body = exchange("GET", path, lines, deadline)
          -- a token that expired since the PUT: one new token per fetch
          if status ~= 401 or not tok or renewed then return status, err, body end
          renewed = true
          tok, why = token(deadline)
          if tok == nil then return nil, { message = why } end
        end
      end
      local path = "/latest/meta-data/iam/security-credentials/"
      local status, err, body = get(path)
      if status == 404 then return unavailable("no IAM role is attached to this instance") end
      if not status then return unavailable(tostring(err.message)) end
      if status ~= 200 then return unavailable("answered HTTP " .. status) end
      local role = body:match("^%s*([^\r\n]+)")
      if not role or not role:match("^[%w%+=,%.@_%-]+$") then
        return unavailable("answered a role name that is not one")
      end
      status, err, body = get(path .. role)
      if not status then return unavailable(tostring(err.message)) end
      if status ~= 200 then
        return unavailable("answered HTTP " .. status .. " for role " .. role)
      end
      return json_creds(body, name, "Token")
    end,
  }
end

-- credential_process ------------------------------------------------------------------------

_M.source = imds_source

return _M
