--- ddb.credentials.context: what every credential source shares: the options and timing
-- numbers of a chain, its environment, its HTTP exchange (with the call's deadline and the
-- answer limit) and its log.
-- @module ddb.credentials.context

local core = require "ddb.core"
local config = require "ddb.config"
local creds = require "ddb.credentials.creds"
local errors = require "ddb.errors"
local runtime = require "ddb.runtime"
local curl = require "ddb.transport.curl"
local options = require "ddb.options"

local type, tostring, tonumber, pairs = type, tostring, tonumber, pairs
local monotonic_ms = core.monotonic_ms
local floor = math.floor
local cred_error, redact = creds.error, creds.redact
local new_error = errors.new

local _M = {}

local O = options
local MS, S = "milliseconds", "seconds"

-- Every option of ddb.credentials.new and what it must be (the timing numbers are DEFAULTS').
_M.SPEC = {
  credentials = O.kind("table", "function"),
  profile = O.kind("string"),
  region = O.kind("string"),
  sts_endpoint = O.kind("string"),
  transport = O.kind("table"),
  sleep = O.kind("function"),
  log = O.kind("function"),
  now = O.kind("function"),
  getenv = O.kind("function"),
  container_base_url = O.kind("string"),
  refresh_timeout_s = O.number(0, 86400, S),
  refresh_ahead_s = O.number(0, 86400, S),
  refresh_jitter_s = O.number(0, 86400, S),
  expiry_margin_s = O.number(0, 86400, S),
  retry_failed_s = O.number(0, 86400, S),
  wait_step_ms = O.number(0, 60000, MS),
  sts_timeout_ms = O.number(1, 600000, MS),
  sts_attempts = O.whole(1, 100),
  container_timeout_ms = O.number(1, 600000, MS),
  container_attempts = O.whole(1, 100),
  retry_sleep_ms = O.number(0, 600000, MS),
  imds_timeout_ms = O.number(1, 600000, MS),
  imds_attempts = O.whole(1, 100),
  max_answer_bytes = O.whole(1, 2147483647, "bytes"),
}

local USER_AGENT = "lua-ddb-optimistic/" .. core._VERSION .. " credentials"
_M.USER_AGENT = USER_AGENT

local DEFAULTS = {
  refresh_ahead_s = 300,      -- refresh this long before expiry...
  refresh_jitter_s = 60,      -- ...minus up to this much, at random
  expiry_margin_s = 15,       -- credentials are not used in their last seconds
  retry_failed_s = 30,        -- after a failed early refresh, wait this long to try again
  wait_step_ms = 10,          -- polling step while another coroutine refreshes
  sts_timeout_ms = 5000,
  sts_attempts = 3,
  container_timeout_ms = 2000, -- botocore's ContainerMetadataFetcher: 2 s, 3 attempts, 1 s apart
  container_attempts = 3,
  retry_sleep_ms = 1000,
  imds_timeout_ms = 1000,     -- botocore's DEFAULT_METADATA_SERVICE_TIMEOUT
  imds_attempts = 1,
  max_answer_bytes = 65536,   -- STS, metadata and process answers are a few KB
}

local CONTAINER_BASE = "http://169.254.170.2"

local default_log = runtime.log

local function env(ctx, name)
  local v = ctx.getenv(name)
  if v == "" then return nil end
  return v
end

local function env_true(ctx, name)
  local v = env(ctx, name)
  return v ~= nil and v:lower() == "true"
end

local in_ngx = runtime.ngx

local function curl_transport(ctx)
  -- a handle of the chain's own: metadata requests never disturb the client's connection
  local t = curl.new{ ca_bundle = env(ctx, "AWS_CA_BUNDLE"), connect_timeout_ms = 1000,
    max_answer_bytes = ctx.max_answer_bytes }
  t.supports_methods = t.handle.supports_methods == true
  return t
end

local function transport_of(ctx)
  if not ctx.transport then
    if runtime.cosockets() then
      ctx.transport = require("ddb.transport.ngx").new{ max_answer_bytes = ctx.max_answer_bytes }
    else
      ctx.transport = curl_transport(ctx)
    end
  end
  return ctx.transport
end

local function sleep(ctx, ms)
  if ctx.sleep then return ctx.sleep(ms) end
  return runtime.sleep(transport_of(ctx), ms)
end

-- Waits ms before a retry, unless that would take the fetch past its deadline (monotonic ms
-- or nil): true when it waited, false when there is no time for another attempt.
local function pause(ctx, ms, deadline)
  if deadline and monotonic_ms() + ms >= deadline then return false end
  sleep(ctx, ms)
  return true
end

local function past(deadline)
  return deadline ~= nil and monotonic_ms() >= deadline
end

-- One HTTP exchange within timeout_ms and the deadline: status, headers, body | nil, err
-- (err.code, err.message).
local function http(ctx, method, url, lines, body, timeout_ms, deadline)
  local t = transport_of(ctx)
  if method ~= "POST" and not t.supports_methods then
    return nil, cred_error(("the %s transport can only send POST requests, and %s needs %s " ..
      "(the transport must set supports_methods)"):format(tostring(t.name), url:match("^%a+://[^/]*"),
      method), "ConfigError")
  end
  if deadline then
    local left = deadline - monotonic_ms()
    if left < 1 then
      return nil, new_error("Timeout", "no time left before the call's deadline",
        { retry_class = "timeout" })
    end
    if left < timeout_ms then timeout_ms = left end
  end
  local status, headers, rbody = t:request(url, lines, body or "", timeout_ms, method)
  if not status then
    local err = headers
    if type(err) ~= "table" then
      err = { code = "NetworkError", message = tostring(err), retryable = true }
    end
    return nil, err
  end
  rbody = rbody or ""
  -- a transport of the caller's may have read more than the limit: it still holds
  if #rbody > ctx.max_answer_bytes then
    return nil, new_error("AnswerTooLarge", ("the answer's body is longer than %d bytes"):format(
      ctx.max_answer_bytes))
  end
  return status, headers or {}, rbody
end

-- What a source says about a failed exchange: the answer was too large, or the endpoint
-- could not be reached (and why).
local function unreachable(err, secrets)
  if err.code == "AnswerTooLarge" then
    return "answered more than it may (" .. redact(err.message, secrets) .. ")"
  end
  return "not reachable (" .. redact(err.message, secrets) .. ")"
end

local function url_parts(url)
  local scheme, hostport, path = url:match("^(https?)://([^/]+)(.*)$")
  if not scheme then return nil end
  local host = hostport:match("^%[([^%]]+)%]") or hostport:match("^[^:]+")
  return { scheme = scheme, hostport = hostport, host = host, path = path ~= "" and path or "/" }
end

local function retryable_http(status, err)
  if status then return status >= 500 or status == 429 end
  return err and err.code ~= "ConfigError" and err.code ~= "TLSVerifyError"
    and err.code ~= "PhaseError" and err.code ~= "AnswerTooLarge"
end

local function make_ctx(opts)
  local ctx = {}
  for k, v in pairs(DEFAULTS) do ctx[k] = opts[k] or v end
  ctx.getenv = opts.getenv or function(name) return config.getenv(name) end
  ctx.now = opts.now or core.now
  ctx.log = opts.log or default_log
  ctx.sleep = opts.sleep
  ctx.transport = opts.transport
  ctx.region = opts.region
  ctx.sts_endpoint = opts.sts_endpoint
  ctx.container_base = (opts.container_base_url or CONTAINER_BASE):gsub("/+$", "")
  ctx.explicit_profile = opts.profile ~= nil
  -- a refresh that has not come back by then is taken over by the next caller
  ctx.refresh_timeout_s = opts.refresh_timeout_s or 30
  local v = env(ctx, "AWS_METADATA_SERVICE_TIMEOUT")
  if v and not opts.imds_timeout_ms and tonumber(v) and tonumber(v) > 0 then
    ctx.imds_timeout_ms = tonumber(v) * 1000
  end
  v = env(ctx, "AWS_METADATA_SERVICE_NUM_ATTEMPTS")
  if v and not opts.imds_attempts and tonumber(v) and tonumber(v) >= 1 then
    ctx.imds_attempts = floor(tonumber(v))
  end
  return ctx
end

_M.env, _M.env_true, _M.in_ngx, _M.transport_of = env, env_true, in_ngx, transport_of
_M.sleep, _M.pause, _M.past, _M.http = sleep, pause, past, http
_M.unreachable, _M.url_parts, _M.retryable_http = unreachable, url_parts, retryable_http
_M.new = make_ctx

return _M
