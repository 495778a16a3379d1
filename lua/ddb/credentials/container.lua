--- ddb.credentials.container: container credentials (ECS, EKS Pod Identity):
-- AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI, with
-- AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or AWS_CONTAINER_AUTHORIZATION_TOKEN.
-- @module ddb.credentials.container

local core = require "ddb.core"
local creds = require "ddb.credentials.creds"
local context = require "ddb.credentials.context"

local type = type
local io_open = io.open
local cred_error, redact, json_creds = creds.error, creds.redact, creds.from_json
local env, http, pause = context.env, context.http, context.pause
local unreachable, url_parts, retryable_http = context.unreachable, context.url_parts,
  context.retryable_http
local USER_AGENT = context.USER_AGENT

local _M = {}

-- hosts an http:// AWS_CONTAINER_CREDENTIALS_FULL_URI may name (botocore's list, plus loopback)
local CONTAINER_HOSTS = { ["169.254.170.2"] = true, ["169.254.170.23"] = true,
  ["fd00:ec2::23"] = true, localhost = true }

local function container_source(ctx, url, where)
  local parts = url_parts(url)
  local name = "container credentials (" .. where .. ", " .. parts.scheme .. "://" ..
    parts.hostport .. ")"
  return {
    name = name,
    fetch = function(_, deadline)
      local auth
      local file = env(ctx, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
      if file then
        local f = io_open(file, "rb")
        auth = f and f:read("*a")
        if f then f:close() end
        if not auth then
          return nil, cred_error(name .. ": cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE " .. file)
        end
        auth = auth:gsub("%s+$", "")   -- the file usually ends with a newline; a header cannot
      else
        auth = env(ctx, "AWS_CONTAINER_AUTHORIZATION_TOKEN")
      end
      if auth and auth:find("[\r\n%z]") then
        return nil, cred_error(name .. ": the authorization token is not a legal header value")
      end
      local lines = { "Host: " .. parts.hostport, "Accept: application/json",
        "User-Agent: " .. USER_AGENT }
      if auth then lines[#lines + 1] = "Authorization: " .. auth end
      local last
      for attempt = 1, ctx.container_attempts do
        local status, herr, body = http(ctx, "GET", url, lines, "", ctx.container_timeout_ms,
          deadline)
        if status == 200 then return json_creds(body, name, "Token") end
        if status then
          local doc = core.decode(body)
          local msg = type(doc) == "table" and (doc.message or doc.Message)
          last = cred_error(("%s answered HTTP %d%s"):format(name, status,
            type(msg) == "string" and (": " .. redact(msg, { auth })) or ""))
          if status < 500 and status ~= 429 then return nil, last end
        else
          last = cred_error(("%s: %s"):format(name, unreachable(herr, { auth })))
          if not retryable_http(nil, herr) then return nil, last end
        end
        if attempt < ctx.container_attempts and not pause(ctx, ctx.retry_sleep_ms, deadline) then
          last.out_of_time = true   -- no time for another attempt
          break
        end
      end
      return nil, last
    end,
  }
end

-- The container source the environment configures: source | nil | nil, err.
local function container_from_env(ctx)
  local rel = env(ctx, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
  if rel then
    if rel:sub(1, 1) ~= "/" then
      return nil, cred_error("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must start with /",
        "ConfigError")
    end
    return container_source(ctx, ctx.container_base .. rel,
      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
  end
  local full = env(ctx, "AWS_CONTAINER_CREDENTIALS_FULL_URI")
  if not full then return nil end
  local parts = url_parts(full)
  if not parts then
    return nil, cred_error("AWS_CONTAINER_CREDENTIALS_FULL_URI is not an http(s) URL",
      "ConfigError")
  end
  local host = parts.host:lower()
  if parts.scheme == "http" and not (CONTAINER_HOSTS[host] or host:match("^127%.%d+%.%d+%.%d+$")
      or host == "::1") then
    return nil, cred_error(("AWS_CONTAINER_CREDENTIALS_FULL_URI names host %s: plain http is " ..
      "only allowed to a loopback address or %s"):format(host,
      "169.254.170.2, 169.254.170.23, fd00:ec2::23"), "ConfigError")
  end
  return container_source(ctx, full, "AWS_CONTAINER_CREDENTIALS_FULL_URI")
end

_M.source = container_source
_M.from_env = container_from_env

return _M
