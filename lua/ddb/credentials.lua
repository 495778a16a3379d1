--- ddb.credentials: where a client's AWS credentials come from, and keeping them fresh.
--
-- The default chain follows botocore's documented order (botocore/credentials.py,
-- `create_credential_resolver` and `ProfileProviderBuilder.providers`; the boto3 guide,
-- https://boto3.amazonaws.com/v1/documentation/api/latest/guide/credentials.html, describes
-- the same order). The first source that is configured is used, and
-- stays the source for the life of the provider (as in botocore, a configured source that
-- fails is an error, never a reason to try the next one):
--
--   1. the `credentials` option: a table of keys, or a function of yours returning one;
--   2. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
--      (AWS_CREDENTIAL_EXPIRATION); a key id without its secret is an error, a secret alone
--      is ignored; skipped when the `profile` option names a profile (all as botocore does);
--   3. the profile's role_arn with source_profile or credential_source: STS AssumeRole,
--      signed with the source credentials (role chains followed, loops refused);
--   4. web identity: AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN, AWS_ROLE_SESSION_NAME (or
--      the profile's web_identity_token_file, role_arn, role_session_name): STS
--      AssumeRoleWithWebIdentity, as EKS service accounts use;
--   5. the profile's keys in the shared credentials file (AWS_SHARED_CREDENTIALS_FILE);
--   6. the profile's credential_process (run by the shell; refused inside nginx request
--      phases, where spawning a process would block the worker);
--   7. the profile's keys in the config file (AWS_CONFIG_FILE);
--   8. container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (169.254.170.2) or
--      AWS_CONTAINER_CREDENTIALS_FULL_URI, with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or
--      AWS_CONTAINER_AUTHORIZATION_TOKEN (ECS, EKS Pod Identity);
--   9. EC2 instance metadata, IMDSv2 (a PUT for a session token, then the role's
--      credentials; IMDSv1 only where the token PUT is refused, as botocore does, unless
--      AWS_EC2_METADATA_V1_DISABLED), 1 s timeout; AWS_EC2_METADATA_DISABLED=true turns it off,
--      AWS_EC2_METADATA_SERVICE_ENDPOINT moves it.
-- AWS_PROFILE (or the `profile` option) picks the profile. SSO profiles and mfa_serial are
-- refused with an error rather than skipped: falling through to another source would
-- quietly sign with credentials nobody meant to use.
--
-- STS answers in XML. It is read here by a small reader of exactly the subset STS writes
-- (elements, attributes, the five predefined entities and character references, comments,
-- an XML declaration); anything else (DOCTYPE, CDATA, processing instructions, unbalanced
-- tags) makes the answer malformed. Four credential fields and an error's Code and Message
-- are all that is needed, so a dependency (lua-expat would be one more C module to build for
-- every runtime, LuaRocks tree and nginx) buys nothing; the reader never expands
-- declared entities, so no DOCTYPE trick can make it fetch or grow anything.
--
-- HTTP. Providers send through a transport's `request(self, url, header_lines, body,
-- timeout_ms, method)`, method "POST" (STS), "GET" or "PUT" (metadata endpoints). The
-- transport is injectable (`transport` option, for coroutine hosts); by default the chain
-- makes its own: cosockets inside nginx, else a libcurl handle of its own (separate from the
-- client's, so metadata requests never disturb its DynamoDB connection). A transport must
-- set `supports_methods = true` to be used for GET and PUT.
--
-- Caching. Credentials with an expiry are refreshed ahead of it (5 minutes before, minus up
-- to a minute of random jitter so that many processes do not refresh together, and never
-- before half of their remaining lifetime has passed). Refreshes are single-flight: while one
-- caller refreshes, others keep using the current credentials, or, when those are no longer
-- usable, wait for the refresh's result (with the transport's sleep, so coroutines yield).
-- A failed refresh while the current credentials are still valid keeps them, logs once, and
-- is tried again 30 s later; credentials are not used in their last 15 seconds.
--
-- Bounds. `get(rejected, deadline)` takes the calling operation's deadline (monotonic ms,
-- as core.monotonic_ms): every request of a fetch waits at most for what is left of it, no
-- retry waits past it, a credential_process is stopped at it (coreutils' timeout), and a
-- fetch that runs out of it fails with DeadlineExceeded naming the source. Every answer a
-- source reads (an endpoint's body, a process's output) is cut off at max_answer_bytes
-- (64 KiB; the real ones are a few KB): CredentialsError, nothing more read.
-- `get(rejected)` forces a refresh when the server refused `rejected` (ExpiredToken), unless
-- another caller has replaced them already. Under OpenResty, `_M.default` keeps one provider
-- per configuration in each worker, so per-request clients share the cache.
--
-- No secret or token appears in an error, a log line or a `tostring`.
-- @module ddb.credentials

local core = require "ddb.core"
local config = require "ddb.config"

local type, tostring, tonumber, pairs, ipairs, setmetatable, pcall, error, rawget =
  type, tostring, tonumber, pairs, ipairs, setmetatable, pcall, error, rawget
local monotonic_ms = core.monotonic_ms
local floor, huge = math.floor, math.huge
local concat = table.concat
local io_open, io_popen, io_stderr, os_date = io.open, io.popen, io.stderr, os.date
local co_running = coroutine.running
local sfmt, schar = string.format, string.char
local _G = _G

local _M = { _VERSION = "0.1.0" }

local USER_AGENT = "lua-ddb-optimistic/" .. _M._VERSION .. " credentials"

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
local IMDS_BASE = "http://169.254.169.254"
local IMDS_BASE_IPV6 = "http://[fd00:ec2::254]"
local IMDS_TOKEN_TTL = "21600"
-- hosts an http:// AWS_CONTAINER_CREDENTIALS_FULL_URI may name (botocore's list, plus loopback)
local CONTAINER_HOSTS = { ["169.254.170.2"] = true, ["169.254.170.23"] = true,
  ["fd00:ec2::23"] = true, localhost = true }

-- -----------------------------------------------------------------------------
-- Errors, credentials objects, logging
-- -----------------------------------------------------------------------------
local error_mt = {
  __tostring = function(e) return "ddb: " .. tostring(e.code) .. ": " .. tostring(e.message) end,
}

-- Nothing reached DynamoDB when a credential source fails: never applied, not retried.
local function cred_error(message, code)
  return setmetatable(core.error(code or "CredentialsError", message, nil, "no", "none"),
    error_mt)
end
_M.error_mt = error_mt

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
_M._redact = redact

local function iso8601(t)
  return os_date("!%Y-%m-%dT%H:%M:%SZ", floor(t))
end

local creds_mt = {
  __tostring = function(c)
    return sfmt("ddb.credentials{source=%s, access_key=%s****%s%s}", tostring(c.source),
      c.access_key:sub(1, 4), c.session_token and ", session token" or "",
      c.expiration and (", expires " .. iso8601(c.expiration)) or "")
  end,
}

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local doy = floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

--- Seconds since the epoch for an ISO 8601 / RFC 3339 time ("2026-11-25T17:44:51Z",
-- "…T17:44:51.718318Z", "…+01:00"); nil for anything else.
function _M.parse_time(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec, rest =
    s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  y, mo, d, h, mi, sec = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi),
    tonumber(sec)
  local frac = 0
  local digits = rest:match("^%.(%d+)")
  if digits then
    frac = tonumber("0." .. digits)
    rest = rest:sub(#digits + 2)
  end
  local offset
  if rest == "Z" or rest == "z" then
    offset = 0
  else
    local sign, oh, om = rest:match("^([%+%-])(%d%d):?(%d%d)$")
    if not sign then return nil end
    offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1)
  end
  local mdays = { 31, (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) and 29 or 28, 31, 30, 31,
    30, 31, 31, 30, 31, 30, 31 }
  if mo < 1 or mo > 12 or d < 1 or d > mdays[mo] or h > 23 or mi > 59 or sec > 60 then
    return nil
  end
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec + frac - offset
end

local function bad_field(v)
  return type(v) ~= "string" or v == "" or v:find("[%z\r\n]")
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
    exp = _M.parse_time(exp)
    if not exp then
      return nil, cred_error(source .. " gave an expiration that is not an ISO 8601 time")
    end
  elseif exp ~= nil and type(exp) ~= "number" then
    return nil, cred_error(source .. " gave an expiration that is neither a time nor a number")
  end
  return setmetatable({ access_key = ak, secret_key = sk, session_token = token,
    expiration = exp, source = source }, creds_mt)
end
_M._make_creds = make_creds

local function default_log(level, message)
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and ngx.log then
    ngx.log(level == "warn" and ngx.WARN or ngx.INFO, "ddb: ", message)
  else
    io_stderr:write("ddb: ", level, ": ", message, "\n")
  end
end

-- -----------------------------------------------------------------------------
-- The XML subset STS writes
-- -----------------------------------------------------------------------------
local ENTITIES = { lt = "<", gt = ">", amp = "&", quot = '"', apos = "'" }

local function utf8_char(cp)
  if cp < 0x80 then return schar(cp) end
  if cp < 0x800 then return schar(0xC0 + floor(cp / 0x40), 0x80 + cp % 0x40) end
  if cp < 0x10000 then
    return schar(0xE0 + floor(cp / 0x1000), 0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
  end
  return schar(0xF0 + floor(cp / 0x40000), 0x80 + floor(cp / 0x1000) % 0x40,
    0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local function decode_text(s)
  if not s:find("&", 1, true) then return s end
  local bad = false
  local out = s:gsub("&([^;]*);?", function(ref)
    local e = ENTITIES[ref]
    if e then return e end
    local n = ref:match("^#x(%x+)$")
    n = n and tonumber(n, 16) or tonumber(ref:match("^#(%d+)$") or "")
    if n and n > 0 and n <= 0x10FFFF and not (n >= 0xD800 and n <= 0xDFFF) then
      return utf8_char(n)
    end
    bad = true
    return ""
  end)
  if bad then return nil end
  -- a "&" without its ";" matched too: make sure every reference was terminated
  local _, amps = s:gsub("&", "")
  local _, semis = s:gsub("&[^;&]*;", "")
  if amps ~= semis then return nil end
  return out
end

local NAME = "[%a_][%w_%.%-]*"
local QNAME = "[%a_][%w_%.%-]*:?[%w_%.%-]*"   -- with an optional namespace prefix

local function local_name(qname)
  return qname:match(":(.+)$") or qname
end

--- Reads an XML document into { ["Root/Child/Leaf"] = text } for its leaf elements
-- (namespace prefixes dropped). A path seen twice maps to false. nil, err for anything
-- outside the subset described in the module header, or over 64 KiB.
function _M.xml_leaves(text)
  if type(text) ~= "string" then return nil, "not a string" end
  if #text > 65536 then return nil, "document too large" end
  local pos = 1
  if text:sub(1, 3) == "\239\187\191" then pos = 4 end
  local decl = text:match("^%s*<%?xml[^>]-%?>()", pos)
  if decl then pos = decl end
  local stack, leaves = {}, {}
  local had_child, text_of = {}, {}
  local roots = 0
  local n = #text
  while pos <= n do
    local lt = text:find("<", pos, true)
    local chunk = text:sub(pos, (lt or n + 1) - 1)
    if chunk:find("%S") then
      if #stack == 0 then return nil, "text outside the root element" end
      local t = decode_text(chunk)
      if not t then return nil, "bad character or entity reference" end
      text_of[#stack][#text_of[#stack] + 1] = t
    elseif #stack > 0 and chunk ~= "" then
      text_of[#stack][#text_of[#stack] + 1] = chunk
    end
    if not lt then break end
    if text:sub(lt, lt + 3) == "<!--" then
      local close = text:find("-->", lt + 4, true)
      if not close then return nil, "unterminated comment" end
      pos = close + 3
    elseif text:sub(lt + 1, lt + 1) == "/" then
      local name, close_end = text:match("^</(" .. QNAME .. ")%s*>()", lt)
      if not name then return nil, "malformed end tag" end
      name = local_name(name)
      local depth = #stack
      if depth == 0 or stack[depth] ~= name then return nil, "mismatched end tag" end
      if not had_child[depth] then
        local path = concat(stack, "/")
        local value = concat(text_of[depth])
        if leaves[path] == nil then leaves[path] = value else leaves[path] = false end
      end
      stack[depth], had_child[depth], text_of[depth] = nil, nil, nil
      pos = close_end
    elseif text:find("^<" .. NAME, lt) then
      local close = text:find(">", lt, true)
      if not close then return nil, "unterminated tag" end
      local inner = text:sub(lt + 1, close - 1)
      local self_closing = inner:sub(-1) == "/"
      if self_closing then inner = inner:sub(1, -2) end
      local name, attrs = inner:match("^(" .. QNAME .. ")(.*)$")
      name = local_name(name)
      -- attributes: name="value" or name='value', each after white space
      local rest = attrs:gsub("%s+" .. QNAME .. "%s*=%s*\"[^\"<]*\"", "")
        :gsub("%s+" .. QNAME .. "%s*=%s*'[^'<]*'", "")
      if rest:find("%S") then return nil, "malformed attributes" end
      if #stack == 0 then
        roots = roots + 1
        if roots > 1 then return nil, "more than one root element" end
      else
        had_child[#stack] = true
      end
      if self_closing then
        stack[#stack + 1] = name
        local path = concat(stack, "/")
        if leaves[path] == nil then leaves[path] = "" else leaves[path] = false end
        stack[#stack] = nil
      else
        stack[#stack + 1] = name
        had_child[#stack], text_of[#stack] = false, {}
      end
      pos = close + 1
    else
      return nil, "unsupported XML construct"
    end
  end
  if #stack > 0 then return nil, "unclosed element <" .. stack[#stack] .. ">" end
  if roots == 0 then return nil, "no root element" end
  return leaves
end

local STS_FIELDS = { { "AccessKeyId", "access_key_id" }, { "SecretAccessKey", "secret_access_key" },
  { "SessionToken", "session_token" }, { "Expiration", "expiration" } }

--- Reads an STS answer: creds-table fields for a 200 answer of `action`, or the error's
-- code and message. Returns { access_key_id, secret_access_key, session_token, expiration }
-- | nil, { code, message } | nil, nil, reason (not a readable answer).
function _M.parse_sts(action, status, body)
  local leaves, why = _M.xml_leaves(body)
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

-- -----------------------------------------------------------------------------
-- Context: options, environment, HTTP
-- -----------------------------------------------------------------------------
local function env(ctx, name)
  local v = ctx.getenv(name)
  if v == "" then return nil end
  return v
end

local function env_true(ctx, name)
  local v = env(ctx, name)
  return v ~= nil and v:lower() == "true"
end

local function in_ngx()
  local ngx = rawget(_G, "ngx")
  return type(ngx) == "table" and type(ngx.get_phase) == "function" and ngx or nil
end

local function curl_transport(ctx)
  local ca = env(ctx, "AWS_CA_BUNDLE")
  local handle = core.curl_new{ ca_bundle = ca, connect_timeout_ms = 1000,
    max_answer_bytes = ctx.max_answer_bytes }
  return {
    name = "curl",
    supports_methods = handle.supports_methods == true,
    request = function(_, url, lines, body, timeout_ms, method)
      return handle:request(url, lines, body, timeout_ms, method)
    end,
    sleep = function(_, ms) return core.sleep_ms(ms) end,
    close = function() return handle:close() end,
  }
end

local function transport_of(ctx)
  if not ctx.transport then
    if in_ngx() and type(rawget(_G, "ngx").socket) == "table" then
      ctx.transport = require("ddb.transport.ngx").new{ max_answer_bytes = ctx.max_answer_bytes }
    else
      ctx.transport = curl_transport(ctx)
    end
  end
  return ctx.transport
end

local function sleep(ctx, ms)
  if ctx.sleep then return ctx.sleep(ms) end
  local t = transport_of(ctx)
  if t.sleep then return t:sleep(ms) end
  return core.sleep_ms(ms)
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
      return nil, core.error("Timeout", "no time left before the call's deadline", nil, "no",
        "timeout")
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
    return nil, core.error("AnswerTooLarge", ("the answer's body is longer than %d bytes"):format(
      ctx.max_answer_bytes), nil, "no", "none")
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

-- -----------------------------------------------------------------------------
-- Sources: each has a name (shown in tostring, logs and errors) and
-- fetch(ctx, deadline) -> creds | nil, err, deadline being the calling operation's (or nil)
-- -----------------------------------------------------------------------------
local function static_source(name, creds)
  return { name = name, static = true, fetch = function() return creds end }
end

local function user_source(fn)
  return {
    name = "credentials function",
    fetch = function()
      local ok, c, perr = pcall(fn)
      if not ok then
        return nil, cred_error("the credentials function raised an error: " .. tostring(c))
      end
      if c == nil then
        return nil, cred_error("the credentials function failed: " .. tostring(perr))
      end
      local norm, nerr = config.credentials(c)
      if not norm then return nil, cred_error("the credentials function: " .. nerr) end
      return make_creds(norm.access_key, norm.secret_key, norm.session_token,
        norm.expiration, "credentials function")
    end,
  }
end

local function env_source(ctx)
  local ak, sk = env(ctx, "AWS_ACCESS_KEY_ID"), env(ctx, "AWS_SECRET_ACCESS_KEY")
  -- botocore's EnvProvider: no key id, no environment credentials; a key id alone is an error
  if not ak then return nil end
  if not sk then
    return nil, cred_error("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
  end
  local src = { name = "environment" }
  src.fetch = function()
    -- read again on every fetch: a process that rewrites its environment gets the new keys
    return make_creds(env(ctx, "AWS_ACCESS_KEY_ID"), env(ctx, "AWS_SECRET_ACCESS_KEY"),
      env(ctx, "AWS_SESSION_TOKEN") or env(ctx, "AWS_SECURITY_TOKEN"),
      env(ctx, "AWS_CREDENTIAL_EXPIRATION"), "environment")
  end
  local c, err = src.fetch()
  if not c then return nil, err end
  src.static = c.expiration == nil
  return src
end

-- STS ---------------------------------------------------------------------------------------

local function form_encode(params)
  local parts = {}
  for i, kv in ipairs(params) do
    parts[i] = kv[1] .. "=" .. tostring(kv[2]):gsub("[^%w%-%._~]", function(ch)
      return sfmt("%%%02X", ch:byte())
    end)
  end
  return concat(parts, "&")
end
_M._form_encode = form_encode

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
  local attempt, last = 0, nil
  while attempt < ctx.sts_attempts do
    attempt = attempt + 1
    local lines = { "Host: " .. ep.host_header, "Content-Type: " .. content_type }
    if signing then
      local amz_date = os_date("!%Y%m%dT%H%M%SZ", floor(ctx.now()))
      local pairs_to_sign = { { "Host", ep.host_header }, { "Content-Type", content_type },
        { "X-Amz-Date", amz_date } }
      lines[#lines + 1] = "X-Amz-Date: " .. amz_date
      if signing.session_token then
        pairs_to_sign[#pairs_to_sign + 1] = { "X-Amz-Security-Token", signing.session_token }
        lines[#lines + 1] = "X-Amz-Security-Token: " .. signing.session_token
      end
      local signer = core.signer_new{ access_key = signing.access_key,
        secret_key = signing.secret_key, session_token = signing.session_token,
        region = ep.region, host = ep.host_header, service = "sts" }
      local stages = signer:stages("POST", "/", nil, pairs_to_sign, body, amz_date)
      signer:close()
      lines[#lines + 1] = "Authorization: " .. stages.authorization
      secrets[#secrets + 1] = signing.secret_key
      secrets[#secrets + 1] = signing.session_token
    end
    lines[#lines + 1] = "User-Agent: " .. USER_AGENT
    local status, headers, rbody = http(ctx, "POST", ep.url, lines, body, ctx.sts_timeout_ms,
      deadline)
    if status == 200 then
      local c, _, why = _M.parse_sts(action, status, rbody)
      if not c then
        return nil, cred_error(("%s: STS %s answered, but %s"):format(what, action, why))
      end
      return make_creds(c.access_key_id, c.secret_access_key, c.session_token, c.expiration,
        what)
    end
    if status then
      local _, e, why = _M.parse_sts(action, status, rbody)
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

local function web_identity_source(ctx, token_file, role_arn, role_session_name, origin)
  local name = "web identity (" .. origin .. ", role " .. role_arn .. ")"
  return {
    name = name,
    fetch = function(_, deadline)
      -- read on every refresh: the platform rotates the token file
      local f = io_open(token_file, "rb")
      local token = f and f:read("*a")
      if f then f:close() end
      if not token then
        return nil, cred_error(name .. ": cannot read the token file " .. token_file)
      end
      token = token:gsub("%s+$", "")
      if token == "" then
        return nil, cred_error(name .. ": the token file " .. token_file .. " is empty")
      end
      return sts_call(ctx, "AssumeRoleWithWebIdentity", {
        { "Action", "AssumeRoleWithWebIdentity" }, { "Version", "2011-06-15" },
        { "RoleArn", role_arn }, { "RoleSessionName", session_name(ctx, role_session_name) },
        { "WebIdentityToken", token },
      }, nil, name, { token }, deadline)
    end,
  }
end

-- Container ---------------------------------------------------------------------------------

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

-- Instance metadata -------------------------------------------------------------------------

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

local EXIT_MARK = "__ddb_credential_process_exit "

local function shell_quote(text)
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

local function process_source(ctx, command, profile)
  local name = "credential_process (profile " .. profile .. ")"
  return {
    name = name,
    fetch = function(_, deadline)
      local ngx = in_ngx()
      if ngx then
        local phase = ngx.get_phase()
        if phase ~= "init" and phase ~= "init_worker" then
          return nil, cred_error(("%s cannot run in nginx's '%s' phase: spawning a process " ..
            "blocks the whole worker; use another credential source under nginx (or fetch " ..
            "non-expiring credentials in init_by_lua)"):format(name, tostring(phase)))
        end
      end
      -- the shell runs the command as the AWS CLI documents it, with no stdin; the subshell
      -- keeps an `exit` inside the command from skipping the status line
      local run = "( " .. command .. "\n) </dev/null"
      if deadline then
        local left = deadline - monotonic_ms()
        if left < 1 then return nil, cred_error(name .. ": no time left to run it") end
        -- coreutils' timeout puts the command in a process group of its own and signals the
        -- whole group at the deadline (TERM, then KILL a second later), so nothing it started
        -- keeps the pipe open; where it is missing, only the output limit applies
        run = ("if command -v timeout >/dev/null 2>&1; then timeout -k 1 %.3f sh -c %s " ..
          "</dev/null; else %s; fi"):format(left / 1000, shell_quote(command), run)
      end
      local f = io_popen(run .. "; printf '\\n" .. EXIT_MARK .. "%d\\n' $?", "r")
      if not f then return nil, cred_error(name .. ": cannot start the command") end
      -- read up to the limit (and the status line after it), no further: closing the pipe
      -- then ends a command that goes on writing (SIGPIPE)
      local limit = ctx.max_answer_bytes + #EXIT_MARK + 16
      local parts, have = {}, 0
      while have <= limit do
        local chunk = f:read(4096)
        if not chunk then break end
        parts[#parts + 1] = chunk
        have = have + #chunk
      end
      f:close()
      if have > limit then
        return nil, cred_error(("%s: the command's output is longer than %d bytes"):format(name,
          ctx.max_answer_bytes))
      end
      local out = concat(parts)
      local body, code = out:match("^(.*)\n" .. EXIT_MARK .. "(%d+)\n$")
      if not body then return nil, cred_error(name .. ": the command's exit status is unknown") end
      if (code == "124" or code == "137") and past(deadline) then
        return nil, cred_error(name .. ": the command had not finished at the call's deadline " ..
          "and was stopped")
      end
      if code ~= "0" then
        return nil, cred_error(name .. ": the command exited with status " .. code)
      end
      local doc = core.decode(body)
      if type(doc) ~= "table" then
        return nil, cred_error(name .. ": the command's output is not a JSON object")
      end
      if doc.Version ~= 1 then
        return nil, cred_error(name .. ": the command's output has Version " ..
          tostring(doc.Version):sub(1, 16) .. "; only Version 1 is supported")
      end
      return make_creds(doc.AccessKeyId, doc.SecretAccessKey, doc.SessionToken, doc.Expiration,
        name)
    end,
  }
end

-- -----------------------------------------------------------------------------
-- The provider: one source behind a cache
-- -----------------------------------------------------------------------------
local Provider = {}
Provider.__index = Provider
_M.Provider = Provider

function Provider.__tostring(p)
  return "ddb.credentials.provider{" .. p.source.name .. "}"
end

local function new_provider(ctx, source)
  return setmetatable({ ctx = ctx, source = source, name = source.name, refresh_at = huge,
    retry_at = 0 }, Provider)
end

local function jitter(ctx)
  local b = core.random_bytes(2)
  return ctx.refresh_jitter_s * (b:byte(1) * 256 + b:byte(2)) / 65536
end

local function schedule(ctx, c, now)
  if not c.expiration then return huge end
  local at = c.expiration - ctx.refresh_ahead_s - jitter(ctx)
  local half = now + (c.expiration - now) / 2
  if at < half then at = half end
  return at
end

local function usable(ctx, c, now)
  return c ~= nil and (c.expiration == nil or now < c.expiration - ctx.expiry_margin_s)
end

-- pcall lets a coroutine yield inside it everywhere but on PUC Lua 5.1, where a fetch that
-- yields (a cosocket, a game loop's transport) must run unprotected.
local YIELDABLE_PCALL = _VERSION ~= "Lua 5.1" or rawget(_G, "jit") ~= nil

-- A fetch that failed once the caller's deadline had passed, or that stopped retrying
-- because the next attempt could not finish before it, failed for lack of time, whatever the
-- last attempt said: DeadlineExceeded, with that as the reason.
local function deadline_error(name, err, deadline)
  if type(err) ~= "table" or err.code == "DeadlineExceeded" or
      not (past(deadline) or err.out_of_time) then
    return err
  end
  return cred_error(("the call's deadline passed while fetching credentials from %s (%s)"):format(
    name, tostring(err.message)), "DeadlineExceeded")
end

function Provider:_refresh(old, forced, deadline)
  local ctx = self.ctx
  local mark = { co = co_running(), deadline = ctx.now() + ctx.refresh_timeout_s }
  self.inflight = mark
  local ok, new, err
  if YIELDABLE_PCALL or co_running() == nil then   -- (5.1's main thread cannot yield anyway)
    ok, new, err = pcall(self.source.fetch, ctx, deadline)
  else
    ok, new, err = true, self.source.fetch(ctx, deadline)
  end
  if self.inflight == mark then self.inflight = nil end
  -- a raising fetch is a bug (or a programmer's mistake): the state stays sound, the error goes on
  if not ok then error(new, 0) end
  local now = ctx.now()
  if new and not usable(ctx, new, now) then
    new, err = nil, cred_error(("%s gave credentials that expire at %s, already expired or " ..
      "too close to it"):format(self.name, iso8601(new.expiration)))
  end
  if not new then err = deadline_error(self.name, err, deadline) end
  if new then
    self.creds, self.refresh_at, self.retry_at, self.last_error = new, schedule(ctx, new, now),
      0, nil
    self.fetches = (self.fetches or 0) + 1
    if self.warned then
      self.warned = false
      ctx.log("info", "credentials from " .. self.name .. " refreshed again")
    end
    return new
  end
  if type(err) ~= "table" then err = cred_error(tostring(err)) end
  self.last_error = err
  if not forced and old and old.expiration and usable(ctx, old, now) then
    self.retry_at = now + ctx.retry_failed_s
    if not self.warned then
      self.warned = true
      ctx.log("warn", ("refreshing credentials from %s failed; the current ones stay in use " ..
        "until %s: %s"):format(self.name, iso8601(old.expiration), tostring(err.message)))
    end
    return old
  end
  return nil, err
end

function Provider:_wait(old, forced, deadline)
  local ctx = self.ctx
  local mark = self.inflight
  if mark.co == co_running() then
    return nil, cred_error("credentials from " .. self.name .. " were asked for while being " ..
      "fetched by the same caller (does a credentials function call the client?)")
  end
  while self.inflight == mark and ctx.now() < mark.deadline do
    -- another caller's fetch may run to its own (later) deadline: this one keeps to its own
    if past(deadline) then
      return nil, cred_error(("the call's deadline passed while waiting for credentials " ..
        "from %s, which another caller is fetching"):format(self.name), "DeadlineExceeded")
    end
    sleep(ctx, ctx.wait_step_ms)
  end
  if self.inflight == mark then
    -- the refreshing coroutine never came back (killed, aborted): take over
    self.inflight = nil
    return self:_refresh(old, forced, deadline)
  end
  if self.creds ~= old and usable(ctx, self.creds, ctx.now()) then return self.creds end
  if self.last_error then return nil, self.last_error end
  return self:_refresh(old, forced, deadline)
end

--- Current credentials: creds | nil, err. `rejected`: true, or the credentials a server has
-- just refused as expired, to force one refresh (skipped when another caller already
-- replaced those credentials). `deadline`: the calling operation's, in monotonic ms
-- (core.monotonic_ms), which a fetch keeps to (nil: only each request's own timeout).
function Provider:get(rejected, deadline)
  local ctx = self.ctx
  local now = ctx.now()
  local c = self.creds
  local forced = rejected == true or (rejected ~= nil and rejected ~= false and rejected == c)
  if c and not forced then
    if now < self.refresh_at then return c end
    if usable(ctx, c, now) and (self.inflight or now < self.retry_at) then return c end
  end
  if self.inflight then return self:_wait(c, forced, deadline) end
  if c and forced and self.source.static and not self.source.user then
    -- nothing else to get from a fixed source
    return nil, cred_error("the credentials from " .. self.name .. " were refused as expired")
  end
  return self:_refresh(c, forced, deadline)
end

--- What the credentials come from, for messages ("environment", "EC2 instance metadata (…)").
function Provider:describe()
  return self.name
end

--- Credentials already at hand without any I/O, or nil.
function Provider:peek()
  local c = self.creds
  if c and usable(self.ctx, c, self.ctx.now()) then return c end
  return nil
end

-- -----------------------------------------------------------------------------
-- Shared files and profiles
-- -----------------------------------------------------------------------------
-- The shared files through ddb.config's loader (the region's too): files | nil, err.
local function load_files(ctx)
  local files, err = config.load_files(function(name) return env(ctx, name) end)
  if not files then
    return nil, cred_error("cannot read the shared AWS files: " .. err, "ConfigError")
  end
  return files
end

local function static_from(section, what)
  if not section then return nil end
  local ak, sk = section.aws_access_key_id, section.aws_secret_access_key
  if not ak and not sk then return nil end
  if not (ak and sk) then
    return nil, cred_error(what .. " has only one of aws_access_key_id and aws_secret_access_key",
      "ConfigError")
  end
  local c, err = make_creds(ak, sk, section.aws_session_token, nil, what)
  if not c then return nil, err end
  return static_source(what, c)
end

local function has_static(p)
  return p.aws_access_key_id ~= nil or p.aws_secret_access_key ~= nil
end

local function refuse_unsupported(p, name)
  if p.sso_start_url or p.sso_session or p.login_session then
    return cred_error(("profile %s uses AWS IAM Identity Center (SSO) or console login, " ..
      "which this client does not support; export credentials (aws configure " ..
      "export-credentials) or use credential_process"):format(name), "ConfigError")
  end
end

local assume_role_source, profile_chain   -- mutually recursive

-- The profile-only providers of botocore's ProfileProviderBuilder: web identity (from the
-- profile; the environment's only for the top profile), static keys in the credentials file,
-- credential_process, static keys in the config file. nil when none applies.
function profile_chain(ctx, files, name, top)
  local p = files.profile(name) or {}
  local bad = refuse_unsupported(p, name)
  if bad then return nil, bad end
  -- web identity
  local function cfg(key, env_name)
    if top and not ctx.explicit_profile then
      local v = env(ctx, env_name)
      if v then return v, env_name end
    end
    if p[key] then return p[key], "profile " .. name end
  end
  local token_file, origin = cfg("web_identity_token_file", "AWS_WEB_IDENTITY_TOKEN_FILE")
  if token_file then
    local role_arn = cfg("role_arn", "AWS_ROLE_ARN")
    if not role_arn then
      return nil, cred_error(("%s names a web identity token file but no role: set " ..
        "AWS_ROLE_ARN or the profile's role_arn"):format(origin), "ConfigError")
    end
    return web_identity_source(ctx, token_file, role_arn,
      (cfg("role_session_name", "AWS_ROLE_SESSION_NAME")), origin)
  end
  local from_conf, from_creds = files.section(name)
  local src, err = static_from(from_creds, "shared credentials file (profile " .. name .. ")")
  if src or err then return src, err end
  if p.credential_process then return process_source(ctx, p.credential_process, name) end
  src, err = static_from(from_conf, "config file (profile " .. name .. ")")
  if src or err then return src, err end
  return nil
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

local function named_source(ctx, source_name, profile)
  local src, err
  if source_name == "Environment" then
    src, err = env_source(ctx)
    if not src and not err then
      err = cred_error("profile " .. profile .. " has credential_source Environment, but " ..
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set", "ConfigError")
    end
  elseif source_name == "EcsContainer" then
    src, err = container_from_env(ctx)
    if not src and not err then
      err = cred_error("profile " .. profile .. " has credential_source EcsContainer, but " ..
        "neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor _FULL_URI is set", "ConfigError")
    end
  elseif source_name == "Ec2InstanceMetadata" then
    src = imds_source(ctx)
  else
    err = cred_error(("profile %s has credential_source %s; the valid ones are Environment, " ..
      "EcsContainer and Ec2InstanceMetadata"):format(profile, source_name), "ConfigError")
  end
  return src, err
end

-- AssumeRole for profile `name`, whose source credentials come from source_profile or
-- credential_source. visited: the profiles of this chain so far (loops are refused).
function assume_role_source(ctx, files, name, visited)
  local p = files.profile(name)
  local bad = refuse_unsupported(p, name)
  if bad then return nil, bad end
  if p.mfa_serial then
    return nil, cred_error("profile " .. name .. " needs an MFA code (mfa_serial), which a " ..
      "library cannot prompt for", "ConfigError")
  end
  local duration = p.duration_seconds
  if duration ~= nil then
    duration = tonumber(duration)
    if not duration or duration ~= floor(duration) or duration < 1 or duration > 43200 then
      return nil, cred_error("profile " .. name .. ": duration_seconds must be a whole number " ..
        "of seconds up to 43200", "ConfigError")
    end
  end
  local source_profile, credential_source = p.source_profile, p.credential_source
  local src, err
  if source_profile and credential_source then
    return nil, cred_error("profile " .. name .. " has both source_profile and " ..
      "credential_source", "ConfigError")
  elseif credential_source then
    src, err = named_source(ctx, credential_source, name)
  elseif source_profile then
    local sp = files.profile(source_profile)
    if not sp then
      return nil, cred_error(("profile %s names source_profile %s, which does not exist in %s " ..
        "or %s"):format(name, source_profile, files.cred_path, files.conf_path), "ConfigError")
    end
    local seen = false
    for _, v in ipairs(visited) do if v == source_profile then seen = true end end
    -- a profile may name itself to take its own static keys; any other repeat is a loop
    if seen and not (source_profile == name and has_static(sp)) then
      visited[#visited + 1] = source_profile
      return nil, cred_error("source_profile loop: " .. concat(visited, " -> "), "ConfigError")
    end
    visited[#visited + 1] = source_profile
    if has_static(sp) or not sp.role_arn or source_profile == name then
      src, err = profile_chain(ctx, files, source_profile, false)
      if not src and not err then
        err = cred_error("source_profile " .. source_profile .. " (of profile " .. name ..
          ") has no credentials", "ConfigError")
      end
    else
      src, err = assume_role_source(ctx, files, source_profile, visited)
    end
  else
    return nil, cred_error("profile " .. name .. " has role_arn but neither source_profile " ..
      "nor credential_source", "ConfigError")
  end
  if not src then return nil, err end
  local inner = new_provider(ctx, src)
  local role_arn = p.role_arn
  local what = "profile " .. name .. " (AssumeRole " .. role_arn .. ")"
  return {
    name = what,
    fetch = function(_, deadline)
      local c, cerr = inner:get(nil, deadline)
      if not c then return nil, cerr end
      local params = { { "Action", "AssumeRole" }, { "Version", "2011-06-15" },
        { "RoleArn", role_arn }, { "RoleSessionName", session_name(ctx, p.role_session_name) } }
      if duration then params[#params + 1] = { "DurationSeconds", duration } end
      if p.external_id then params[#params + 1] = { "ExternalId", p.external_id } end
      local r, rerr = sts_call(ctx, "AssumeRole", params, c, what, nil, deadline)
      if not r and rerr.sts_code == "ExpiredToken" then
        -- the source credentials went stale under us: renew them once
        c, cerr = inner:get(c, deadline)
        if not c then return nil, cerr end
        r, rerr = sts_call(ctx, "AssumeRole", params, c, what, nil, deadline)
      end
      return r, rerr
    end,
  }
end

-- -----------------------------------------------------------------------------
-- The default chain
-- -----------------------------------------------------------------------------
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
  if opts.transport ~= nil and type(opts.transport) ~= "table" then
    error("ddb.credentials: option 'transport' must be a table", 3)
  end
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

-- The first configured source: source | nil, err (err lists what was tried when nothing is).
local function select_source(ctx, opts)
  local explicit = opts.credentials
  if explicit ~= nil then
    if type(explicit) == "function" then
      local s = user_source(explicit)
      s.user = true
      return s
    end
    local c, err = config.credentials(explicit)
    if not c then return nil, cred_error(err) end
    local creds, cerr = make_creds(c.access_key, c.secret_key, c.session_token, c.expiration,
      "explicit")
    if not creds then return nil, cerr end
    return static_source("explicit", creds)
  end
  -- what each source was, and why it was passed over: the error when none is configured
  local tried = { "explicit option (not given)" }
  if ctx.explicit_profile then
    tried[#tried + 1] = "environment (skipped: the profile option was given)"
  else
    local src, err = env_source(ctx)
    if src or err then return src, err end
    tried[#tried + 1] = "environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: not set)"
  end

  local files, ferr = load_files(ctx)
  if not files then return nil, ferr end
  local name = opts.profile or env(ctx, "AWS_PROFILE") or "default"
  local p = files.profile(name)
  if not p and name ~= "default" then
    return nil, cred_error(("profile %s (from %s) is in neither %s nor %s"):format(name,
      opts.profile and "the profile option" or "AWS_PROFILE", files.cred_path, files.conf_path),
      "ConfigError")
  end
  if p and p.role_arn and not p.web_identity_token_file then
    return assume_role_source(ctx, files, name, { name })
  end
  local src, err = profile_chain(ctx, files, name, true)
  if src or err then return src, err end
  local from_conf, from_creds = files.section(name)
  local function file_says(found, path, section, label)
    if not found then return path .. ": not found" end
    if not section then return path .. ": no " .. label .. " section" end
    return path .. ": " .. label .. " has no aws_access_key_id"
  end
  tried[#tried + 1] = ("web identity (%sprofile %s has no web_identity_token_file)"):format(
    ctx.explicit_profile and "" or "AWS_WEB_IDENTITY_TOKEN_FILE not set, and ", name)
  tried[#tried + 1] = "shared credentials file (" .. file_says(files.cred_found, files.cred_path,
    from_creds, "[" .. name .. "]") .. ")"
  tried[#tried + 1] = "credential_process (profile " .. name .. " has none)"
  tried[#tried + 1] = "config file (" .. file_says(files.conf_found, files.conf_path, from_conf,
    name == "default" and "[default]" or ("[profile " .. name .. "]")) .. ")"

  src, err = container_from_env(ctx)
  if src or err then return src, err end
  tried[#tried + 1] = "container (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, _FULL_URI: not set)"

  if env_true(ctx, "AWS_EC2_METADATA_DISABLED") then
    tried[#tried + 1] = "EC2 instance metadata (disabled by AWS_EC2_METADATA_DISABLED)"
    return nil, cred_error("no credentials found; tried: " .. concat(tried, ", "))
  end
  return imds_source(ctx, tried)
end

--- A provider for the default chain. Options: credentials (table or function), profile,
-- region (for STS), sts_endpoint, transport (a table with request(...) and
-- supports_methods), sleep(ms), log(level, message), now() (seconds), getenv(name),
-- container_base_url, and the timing numbers of DEFAULTS. Selecting the source reads only
-- the environment and the shared files; nothing is fetched until get().
-- Returns the provider, or nil, err when the configuration cannot work.
function _M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("ddb.credentials.new: options must be a table", 2) end
  local ct = type(opts.credentials)
  if opts.credentials ~= nil and ct ~= "table" and ct ~= "function" then
    error("ddb.credentials.new: option 'credentials' must be a table or a function", 2)
  end
  local ctx = make_ctx(opts)
  local src, err = select_source(ctx, opts)
  if not src then return nil, err end
  local p = new_provider(ctx, src)
  if src.static then
    local c, cerr = src.fetch(ctx)
    if not c then return nil, cerr end
    p.creds = c
  end
  return p
end

local shared = {}
local ENV_KEYS = { "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
  "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_ROLE_ARN",
  "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
  "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_EC2_METADATA_DISABLED",
  "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL", "HOME" }

--- Like new, but one provider per configuration is kept for the life of the Lua state (an
-- nginx worker): clients made per request share its cache and its single refresh. Explicit
-- credentials and functions are not shared (each client has its own).
function _M.default(opts)
  opts = opts or {}
  if opts.credentials ~= nil or opts.now or opts.getenv then return _M.new(opts) end
  local parts = { tostring(opts.profile), tostring(opts.region), tostring(opts.sts_endpoint),
    tostring(opts.container_base_url), tostring(opts.transport), tostring(opts.log),
    tostring(opts.sleep) }
  for _, k in ipairs(ENV_KEYS) do parts[#parts + 1] = tostring(config.getenv(k)) end
  local key = concat(parts, "\0")
  local p = shared[key]
  if p then return p end
  local err
  p, err = _M.new(opts)
  if not p then return nil, err end
  shared[key] = p
  return p
end

--- Forgets the shared providers (tests; a process that changed its configuration).
function _M.reset_shared()
  shared = {}
end

return _M
