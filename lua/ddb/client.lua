--- ddb.client: the DynamoDB client behind `ddb.new`: its options, its transports, the call
-- with retries, deadlines and credential refresh, and one method per operation. Use it
-- through `ddb` (`ddb.new`, `ddb.Client`); this file holds the code.
-- @module ddb.client

local core = require "ddb.core"
local config = require "ddb.config"
local credentials = require "ddb.credentials"
local errors = require "ddb.errors"
local time = require "ddb.time"
local runtime = require "ddb.runtime"
local curl = require "ddb.transport.curl"
local options = require "ddb.options"

local type, setmetatable, tostring, pairs, error, pcall =
  type, setmetatable, tostring, pairs, error, pcall
local math_min, floor = math.min, math.floor
local monotonic_ms = core.monotonic_ms

local _M = {}

local USER_AGENT = "lua-ddb-optimistic/" .. core._VERSION .. " (" .. (jit and jit.version or _VERSION) .. ")"
local wrap_error = errors.wrap

-- -----------------------------------------------------------------------------
-- Options
-- -----------------------------------------------------------------------------
local O = options
local MILLISECONDS = "milliseconds"

-- What goes into a header line must not end it.
local function header_text(v)
  if type(v) == "string" and not v:find("[%c]") then return true end
  return false, "a string without control characters (it goes into the User-Agent header)"
end

local function transport_value(v)
  if v == "curl" or v == "ngx" or (type(v) == "table" and type(v.request) == "function") then
    return true
  end
  return false, "'curl', 'ngx' or a table with a request method"
end

-- The answer limits of every transport: the body (the head has a fixed 64 KiB).
local MAX_ANSWER = O.whole(core.MAX_ANSWER_BYTES_MIN, core.MAX_ANSWER_BYTES_MAX, "bytes")
_M.MAX_ANSWER_BYTES = core.MAX_ANSWER_BYTES

-- Every option of ddb.new and what it must be. pool_size, keepalive_timeout_ms and
-- tls_verify go to the cosocket transport only; the other transports have no use for them.
local CLIENT_SPEC = {
  region = O.kind("string"),
  endpoint = O.kind("string"),
  credentials = O.kind("table", "function"),
  profile = O.kind("string"),
  timeout_ms = O.number(1, 3600000, MILLISECONDS),
  connect_timeout_ms = O.number(1, 600000, MILLISECONDS),
  deadline_ms = O.number(1, 86400000, MILLISECONDS),
  max_attempts = O.whole(1, 100),
  retry = O.kind("table"),
  transport = O.custom(transport_value),
  ca_bundle = O.kind("string"),
  on_event = O.kind("function"),
  log = O.kind("function"),
  user_agent_suffix = O.custom(header_text),
  max_answer_bytes = MAX_ANSWER,
  -- monotonic milliseconds for deadlines and waits (a simulation's virtual clock)
  clock = O.kind("function"),
  -- the cosocket transport's (ignored by the others)
  pool_size = O.whole(1, 100000, "connections per endpoint and worker"),
  keepalive_timeout_ms = O.whole(1, 3600000, MILLISECONDS),
  tls_verify = O.kind("boolean"),
}

local RETRY_SPEC = {
  max_attempts = O.whole(1, 100),
  base_ms = O.number(0, 60000, MILLISECONDS),
  throttle_base_ms = O.number(0, 60000, MILLISECONDS),
  cap_ms = O.number(0, 600000, MILLISECONDS),
  quota = O.number(0, 1e9, "retry tokens"),
  seed = O.number(0, 9007199254740992),
}

local CURL_SPEC = { ca_bundle = CLIENT_SPEC.ca_bundle,
  connect_timeout_ms = CLIENT_SPEC.connect_timeout_ms, max_answer_bytes = MAX_ANSWER }
local NGX_NAMES = { connect_timeout_ms = true, keepalive_timeout_ms = true, pool_size = true,
  tls_verify = true, max_answer_bytes = true, ca_bundle = true }

--- The names ddb.new accepts, as a set (name -> true).
_M.CLIENT_OPTIONS = {}
for name in pairs(CLIENT_SPEC) do _M.CLIENT_OPTIONS[name] = true end

--- A copy of opts with only the options of ddb.new: for callers whose own options table
-- carries ddb.new's options beside theirs.
-- @param opts a table of options
-- @return a new table with the options `ddb.new` takes
function _M.client_options(opts)
  return options.pick(opts, CLIENT_SPEC)
end

-- -----------------------------------------------------------------------------
-- Transports
-- -----------------------------------------------------------------------------

--- The blocking libcurl transport (plain Lua, LuaRocks tooling, threads with their own state).
-- @param opts optional: `ca_bundle` (default: `AWS_CA_BUNDLE`), `connect_timeout_ms` (1000),
--   `max_answer_bytes` (the longest answer body read, 32 MiB)
-- @return the transport, for `ddb.new{ transport = ... }`
function _M.curl_transport(opts)
  opts = options.check("ddb.curl_transport", opts or {}, CURL_SPEC, 2)
  return curl.new{ ca_bundle = opts.ca_bundle or config.getenv("AWS_CA_BUNDLE"),
    connect_timeout_ms = opts.connect_timeout_ms, max_answer_bytes = opts.max_answer_bytes }
end

local function ngx_transport(opts)
  local o = {}
  for name in pairs(NGX_NAMES) do o[name] = opts[name] end
  return require("ddb.transport.ngx").new(o)
end

local function default_transport(opts)
  if runtime.cosockets() then return ngx_transport(opts) end
  return _M.curl_transport(options.pick(opts, CURL_SPEC))
end

-- -----------------------------------------------------------------------------
-- Client
-- -----------------------------------------------------------------------------
local Client = {}
Client.__index = Client
_M.Client = Client

--- Creates a client.
-- Credentials come from ddb.credentials' default chain; nothing is fetched from the network
-- here (sources that need it, such as instance metadata, are asked on the first call, within
-- that call's deadline). Every option is checked by name, type and range.
-- @param opts optional table of options, each optional:
--
--  * `region` (default: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's)
--  * `endpoint` (default: `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL`, then AWS's)
--  * `credentials`: `{ access_key_id, secret_access_key, session_token }` or a function
--    returning that (default: the environment, the shared files, ...)
--  * `profile` (default: `AWS_PROFILE`)
--  * `timeout_ms` (per attempt, 3000), `connect_timeout_ms` (1000), `deadline_ms` (the whole
--    call including retries, 10000)
--  * `max_attempts` (10, or `AWS_MAX_ATTEMPTS`)
--  * `retry`: `{ base_ms, throttle_base_ms, cap_ms, quota }`
--  * `transport`: `"curl"`, `"ngx"` or a table with `request` and `sleep`
--  * `ca_bundle` (libcurl; default: `AWS_CA_BUNDLE`)
--  * `on_event`: `function(ev)`, the metrics hook: one event per attempt, `kind = "request"`,
--    with `op`, `table`, `status`, `code`, `attempt`, `latency_ms`, `request_id`,
--    `consumed_capacity` (docs/metrics.md)
--  * `log`: `function(level, message)` for the credential cache's warnings (default:
--    nginx's error log or stderr)
--  * `clock`: a function returning monotonic milliseconds, for deadlines and waits
--    (deterministic simulations give their own virtual clock)
--  * `user_agent_suffix`: text added to the User-Agent
--  * `max_answer_bytes`: the longest answer body read (32 MiB: twice DynamoDB's largest)
--  * `pool_size` (64) and `keepalive_timeout_ms` (30000): the cosocket connection pool
-- @return the client | nil, err (`ConfigError`, `CredentialsError`: configuration that
--   cannot work)
-- @raise for an option of the wrong type or out of range, naming it
function _M.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("ddb.new: options must be a table", 2) end
  options.check("ddb.new", opts, CLIENT_SPEC, 2)
  if opts.retry ~= nil then options.check("ddb.new", opts.retry, RETRY_SPEC, 2, "retry option") end
  local timeout_ms = opts.timeout_ms or 3000
  local deadline_ms = opts.deadline_ms or 10000
  local max_attempts = opts.max_attempts
  if max_attempts == nil then
    local n, err = config.env_number("AWS_MAX_ATTEMPTS", 1, 100)
    if err then return nil, errors.new("ConfigError", err) end
    max_attempts = n
  end

  local region, rerr = config.region(opts.region)
  if not region then return nil, errors.new("ConfigError", rerr) end
  local ep, eerr = config.endpoint(opts.endpoint, region)
  if not ep then return nil, errors.new("ConfigError", eerr) end

  local retry_opts = {}
  for k, v in pairs(opts.retry or {}) do retry_opts[k] = v end
  retry_opts.max_attempts = max_attempts or retry_opts.max_attempts

  local transport = opts.transport
  if transport == nil then
    transport = default_transport(opts)
  elseif transport == "curl" then
    transport = _M.curl_transport(options.pick(opts, CURL_SPEC))
  elseif transport == "ngx" then
    transport = ngx_transport(opts)
  end

  -- One provider per configuration and Lua state (per nginx worker), so that clients made per
  -- request share the cache. A transport of the caller's carries the providers' requests
  -- too when it can send GET and PUT; otherwise they make their own (cosockets or libcurl).
  local provider, cerr = credentials.default{
    credentials = opts.credentials, profile = opts.profile, region = region, log = opts.log,
    transport = type(opts.transport) == "table" and opts.transport.supports_methods
      and opts.transport or nil,
  }
  if not provider then return nil, wrap_error(cerr) end

  local self = setmetatable({
    region = region,
    endpoint = ep,
    url = ep.url,
    timeout_ms = timeout_ms,
    deadline_ms = deadline_ms,
    max_answer_bytes = opts.max_answer_bytes or core.MAX_ANSWER_BYTES,
    transport = transport,
    retry = core.retry_new(retry_opts),
    on_event = opts.on_event,
    -- monotonic milliseconds for deadlines and waits; a simulation gives its own virtual clock
    clock = opts.clock or monotonic_ms,
    log = opts.log,
    credentials_provider = provider,
    credentials_source = provider:describe(),
    signer_options = { region = region, host = ep.host_header,
      user_agent = USER_AGENT ..
        (opts.user_agent_suffix and (" " .. opts.user_agent_suffix) or "") },
  }, Client)
  -- credentials at hand without I/O (explicit, environment, shared files) make the signer now;
  -- the others make it on the first call
  local creds = provider:peek()
  if creds then self:_use_credentials(creds) end
  return self
end

-- Puts creds into the signer (made on first use); the signing-key cache follows them.
function Client:_use_credentials(creds)
  if creds == self.creds then return end
  if self.signer then
    self.signer:set_credentials(creds)
  else
    local o = { access_key = creds.access_key, secret_key = creds.secret_key,
      session_token = creds.session_token }
    for k, v in pairs(self.signer_options) do o[k] = v end
    self.signer = core.signer_new(o)
  end
  self.creds = creds
end

-- The provider's current credentials into the signer: creds | nil, err. rejected: the
-- credentials a server has just refused as expired (one forced refresh); deadline: the
-- call's (monotonic ms), which a fetch from the network keeps to.
local function current_credentials(self, rejected, deadline)
  local creds, err = self.credentials_provider:get(rejected, deadline)
  if not creds then return nil, wrap_error(err) end
  self:_use_credentials(creds)
  return creds
end

function Client:__tostring()
  return ("ddb.client{region=%s, endpoint=%s, credentials from %s}"):format(
    self.region, self.url, tostring(self.credentials_source))
end

--- Replaces the credentials with fixed ones; the signing key cache follows them.
-- @param c `{ access_key_id, secret_access_key[, session_token] }`
-- @raise when `c` is not such a table
function Client:set_credentials(c)
  if type(c) ~= "table" then error("set_credentials: a table is required", 2) end
  local provider, err = credentials.new{ credentials = c }
  if not provider then error("set_credentials: " .. tostring(err.message), 2) end
  self.credentials_provider = provider
  self.credentials_source = provider:describe()
  self:_use_credentials(provider:peek())
end

-- The server refused the credentials as expired: worth one refresh and one more try.
local EXPIRED_CREDENTIALS = { ExpiredTokenException = true, ExpiredToken = true }

-- "Signature expired" and friends: our clock is off. The server's Date says by how much.
local SKEW_CODES = {
  RequestTimeTooSkewed = true, RequestExpired = true, InvalidSignatureException = true,
}

local parse_http_date = time.parse_http_date

local function skew_fix(self, err, headers)
  if not SKEW_CODES[err.code] then return false end
  -- a clock behind the server's reads "Signature expired", one ahead "Signature not yet current"
  if err.code == "InvalidSignatureException" then
    local msg = tostring(err.message)
    if not (msg:find("expired", 1, true) or msg:find("not yet current", 1, true)) then
      return false
    end
  end
  local server = parse_http_date(headers and headers.date)
  if not server then return false end
  local skew = floor(server - core.now() + 0.5)
  self.signer:skew(skew)
  return true
end

-- What went wrong in a TLS failure and what to do, from the transport's text (OpenSSL's,
-- through libcurl or nginx), which stays at the end for whoever needs the detail.
local function explain_tls(self, err)
  local raw = tostring(err.message)
  local low = raw:lower()
  local host = self.url:match("^%a+://([^/]+)") or self.url
  local ngx_side = self.transport.name == "ngx"
  local trust = ngx_side and "lua_ssl_trusted_certificate in nginx.conf" or
    "AWS_CA_BUNDLE or the ca_bundle option"
  local what
  if low:find("subject name", 1, true) or low:find("host mismatch", 1, true) or
      low:find("does not match", 1, true) then
    what = ("the certificate of %s is for another host name (hostname check failed): use " ..
      "the host name the certificate names in the endpoint URL"):format(host)
  elseif low:find("setting certificate", 1, true) or low:find("cafile", 1, true) or
      (low:find("ca cert", 1, true) and low:find("file", 1, true)) then
    what = ("the CA bundle for %s could not be read: check the file named by %s"):format(
      host, trust)
  elseif low:find("expired", 1, true) or low:find("not yet valid", 1, true) then
    what = ("the certificate of %s has expired or is not valid yet (certificate verify " ..
      "failed): check the server's certificate and this machine's clock"):format(host)
  elseif err.code == "TLSVerifyError" or low:find("certificate", 1, true) then
    what = ("the certificate of %s is not trusted (certificate verify failed): give the " ..
      "CA that signed it with %s"):format(host, trust)
  elseif low:find("wrong version number", 1, true) or low:find("packet length", 1, true) or
      low:find("unknown protocol", 1, true) then
    what = ("the TLS handshake with %s failed: the server does not speak TLS there " ..
      "(an http:// endpoint given as https://?)"):format(host)
  else
    what = ("the TLS handshake with %s failed (the connection closed, or no protocol " ..
      "version or cipher in common): check that the endpoint is an HTTPS one"):format(host)
  end
  err.message = what .. " (" .. (ngx_side and "nginx" or "libcurl") .. ": " .. raw .. ")"
end

-- Messages that say what the raw answer does not: the endpoint an answer that is not
-- DynamoDB's came from, the table DynamoDB did not find, what a TLS failure means.
local function explain(self, err, table_name, rheaders)
  local code = err.code
  if code == "NotDynamoDB" then
    local ctype = rheaders and rheaders["content-type"]
    ctype = type(ctype) == "string" and ctype:match("^[^;%s]+") or nil
    err.endpoint = self.url
    err.message = ("the endpoint %s answered HTTP %s%s with %s and no x-amzn-requestid: is " ..
      "it a DynamoDB endpoint?"):format(self.url, tostring(err.status),
      ctype and (" " .. ctype) or "", tostring(err.reason or "a body that is not DynamoDB's"))
  elseif code == "ResourceNotFoundException" and type(table_name) == "string" then
    local name = table_name
    local msg = tostring(err.message)
    local where = ("region %s, endpoint %s"):format(self.region, self.url)
    if msg:find(name, 1, true) then
      err.message = msg .. " (" .. where .. ")"
    else
      err.message = ("%s: table '%s' (%s)"):format(msg, name, where)
    end
  elseif code == "TLSError" or code == "TLSVerifyError" then
    explain_tls(self, err)
  end
end

--- The capacity units of a ConsumedCapacity answer (one table, or a list of them), or nil.
-- @param cc the answer's `ConsumedCapacity`
-- @return a number | nil
function _M.capacity_units(cc)
  if type(cc) ~= "table" then return nil end
  local one = cc.CapacityUnits
  if one ~= nil then return type(one) == "number" and one or nil end   -- one table: most calls
  local n
  for i = 1, #cc do
    local c = cc[i]
    if type(c) == "table" and type(c.CapacityUnits) == "number" then
      n = (n or 0) + c.CapacityUnits
    end
  end
  return n
end

local function log_to(owner, message)
  local log = owner.log
  if log then return pcall(log, "warn", message) end
  runtime.log("warn", message)
end

--- Runs a metrics hook on an event; a hook that raises is logged once per owner (the client or
-- store it belongs to, whose `log` option is used) and otherwise ignored.
-- @param owner the client or store the hook belongs to
-- @param hook the function, or nil
-- @param ev the event
function _M.run_hook(owner, hook, ev)
  if not hook then return end
  local ok, e = pcall(hook, ev)
  if not ok and not owner.hook_failed then
    owner.hook_failed = true
    log_to(owner, "the on_event hook raised (logged once): " .. tostring(e))
  end
end

local function emit(self, ev)
  _M.run_hook(self, self.on_event, ev)
end

local function sleep(self, ms)
  return runtime.sleep(self.transport, ms)
end

-- Client:call's retries: result, nil, attempts, elapsed_ms, request_id, status,
-- earlier_attempt_applied | nil, err.
local function call_with_retries(self, op, request, opts)
  local clock = self.clock
  local started = clock()
  local deadline = opts and opts.deadline or (started + (opts and opts.deadline_ms or self.deadline_ms))
  local timeout_ms = opts and opts.timeout_ms or self.timeout_ms

  -- the engine's update comes encoded already (core.update_plan), its table named in opts
  local body, table_name = request, opts and opts.table
  if type(request) ~= "string" then
    local jerr
    body, jerr = core.encode(request)
    if not body then
      return nil, errors.new("ValidationError", "request cannot be encoded: " .. jerr)
    end
    table_name = request.TableName
  end
  local creds, cerr = current_credentials(self, nil, deadline)
  if not creds then return nil, cerr end

  local attempt, applied, skew_fixed, renewed, spent = 0, "no", false, false, 0
  local err
  while true do
    attempt = attempt + 1
    local now = clock()
    local remaining = deadline - now
    if remaining <= 0 then
      return nil, errors.new("DeadlineExceeded", "the call's deadline passed" ..
        (err and (" (last error: " .. tostring(err.code) .. ")") or ""),
        { applied = applied, attempts = attempt - 1, cause = err })
    end
    local result, status, rheaders, request_id, resent
    local fast = self.transport.signed_call
    if fast then
      -- libcurl: signing, the transfer and the parse in one C call
      result, err, status, request_id, resent = fast:call(self.signer, self.url, op, body,
        math_min(timeout_ms, remaining), opts and opts.plain)
      if err and status then rheaders, request_id = request_id, nil end
    else
      local rbody
      status, rheaders, rbody, resent = self.transport:request(self.url,
        self.signer:prepare(op, body), body, math_min(timeout_ms, remaining))
      if status and type(rbody) == "string" and #rbody > self.max_answer_bytes then
        -- a transport of the caller's read it all; the limit still holds for what it returns
        err = errors.new("AnswerTooLarge", ("the answer's body is longer than " ..
          "max_answer_bytes (%d); not read (the request was sent)"):format(
          self.max_answer_bytes), { applied = "maybe", retry_class = "none" })
      elseif status then
        result, err = core.parse_response(status, rbody, rheaders, opts and opts.plain)
        request_id = rheaders and rheaders["x-amzn-requestid"]
      else
        err = rheaders
        rheaders = nil
        -- a transport of the caller's may answer nil, "message" as cosockets do
        if type(err) ~= "table" then
          err = errors.new("NetworkError", "transport failed: " .. tostring(err),
            { applied = "maybe", retry_class = "transient", retryable = true })
        end
      end
    end
    -- an error answer to a resent request may hide a first copy that was applied
    if err and resent then err.applied = "maybe" end
    local done = clock()
    if result then
      self.retry:success(attempt > 1 and spent or 1)
      if self.on_event then
        emit(self, { kind = "request", op = op, table = table_name, status = status,
          attempt = attempt, latency_ms = done - now, request_id = request_id,
          consumed_capacity = _M.capacity_units(result.ConsumedCapacity) })
      end
      -- an earlier attempt that may have landed makes an unconditional write at-least-once
      return result, nil, attempt, done - started, request_id, status,
        resent and "maybe" or applied
    end
    wrap_error(err)
    explain(self, err, table_name, rheaders)
    err.attempts = attempt
    if err.applied == "maybe" then applied = "maybe" end
    err.applied = applied
    if self.on_event then
      emit(self, { kind = "request", op = op, table = table_name, status = err.status,
        attempt = attempt, latency_ms = done - now, request_id = err.request_id,
        code = err.code })
    end

    if opts and opts.return_maybe and err.applied == "maybe" then
      -- the caller can find out what happened faster than a blind retry (with_item reads
      -- the item and checks its write token)
      return nil, err
    end
    if not skew_fixed and skew_fix(self, err, rheaders) then
      skew_fixed = true
      attempt = attempt - 1   -- a clock fix is not a failed attempt
    elseif not renewed and EXPIRED_CREDENTIALS[err.code] and err.applied == "no"
        and current_credentials(self, creds, deadline) then
      -- refused before it ran: sign again with the refreshed credentials, once
      renewed = true
      creds = self.creds
      attempt = attempt - 1
    else
      local delay, cost = self.retry:next(attempt, err.retry_class or "none")
      if not delay then
        if cost == "retry_quota" then
          err.message = tostring(err.message) .. " (not retried: retry quota exhausted)"
        end
        return nil, err
      end
      spent = spent + (cost or 0)
      if clock() + delay >= deadline then
        return nil, errors.new("DeadlineExceeded",
          "the call's deadline would pass before the next retry (last error: " ..
          tostring(err.code) .. ")", { applied = applied, attempts = attempt, cause = err })
      end
      sleep(self, delay)
    end
  end
end

--- Sends one DynamoDB operation with retries.
-- @param op the operation name, e.g. "GetItem"
-- @param request the request as a Lua table in DynamoDB's JSON shape
-- @param opts optional: `deadline` (absolute, in `core.monotonic_ms` time), `deadline_ms`
--   (default: the client's), `timeout_ms` (per attempt), `return_maybe = true` (return at
--   once, unretried, a failure that may have been applied), `plain = "Attributes"` (or
--   `"Item"`: that member of the answer as plain values, not AttributeValues)
-- @return result (the decoded answer), nil, info (`attempts`, `elapsed_ms`, `request_id`,
--   `status`, `earlier_attempt_applied`) | nil, err (`err.applied` says whether the
--   operation may have run)
function Client:call(op, request, opts)
  if type(op) ~= "string" then error("bad argument #1 to 'call' (operation name expected)", 2) end
  if type(request) ~= "table" then error("bad argument #2 to 'call' (table expected)", 2) end
  local result, err, attempts, elapsed_ms, request_id, status, earlier =
    call_with_retries(self, op, request, opts)
  if not result then return nil, err end
  -- lua-resty style: the error (none) second, the call's statistics after it
  return result, nil, { attempts = attempts, elapsed_ms = elapsed_ms, request_id = request_id,
    status = status, earlier_attempt_applied = earlier }
end

-- Client:call for the engine, which needs of the call's statistics only whether an earlier
-- attempt may have been applied, so no table is made per call: result, nil,
-- earlier_attempt_applied ("no" or "maybe") | nil, err. request may be the body already
-- encoded, its table named by opts.table.
function Client:_call(op, request, opts)
  local result, err, _, _, _, _, earlier = call_with_retries(self, op, request, opts)
  return result, err, earlier
end

-- Convenience methods named after the operations (documented one by one below the table).
local OPS = {
  get_item = "GetItem", put_item = "PutItem", update_item = "UpdateItem",
  delete_item = "DeleteItem", transact_get_items = "TransactGetItems",
  transact_write_items = "TransactWriteItems", describe_table = "DescribeTable",
  create_table = "CreateTable", delete_table = "DeleteTable", list_tables = "ListTables",
  query = "Query", scan = "Scan", batch_get_item = "BatchGetItem",
  batch_write_item = "BatchWriteItem", update_time_to_live = "UpdateTimeToLive",
}
for name, op in pairs(OPS) do
  Client[name] = function(self, request, opts)
    return self:call(op, request or {}, opts)
  end
end

--- `call("GetItem", request, opts)`.
-- @function Client:get_item
-- @param request the request, e.g. `{ TableName = "T", Key = ddb.marshal_item{ pk = "a" } }`
-- @param opts optional, as for `call`
-- @return result, nil, info | nil, err

--- `call("PutItem", request, opts)`.
-- @function Client:put_item
-- @param request the request (`TableName`, `Item`, ...)
-- @param opts optional, as for `call`
-- @return result, nil, info | nil, err

--- `call("UpdateItem", request, opts)`.
-- @function Client:update_item
-- @param request the request (`TableName`, `Key`, `UpdateExpression`, ...)
-- @param opts optional, as for `call`
-- @return result, nil, info | nil, err

--- `call("DeleteItem", request, opts)`.
-- @function Client:delete_item
-- @param request the request (`TableName`, `Key`, ...)
-- @param opts optional, as for `call`
-- @return result, nil, info | nil, err

--- `call("Query", request, opts)`.
-- @function Client:query
-- @param request the request (`TableName`, `KeyConditionExpression`, ...)
-- @param opts optional, as for `call`
-- @return result, nil, info | nil, err

--- `call("Scan", request, opts)`.
-- @function Client:scan
-- @param request the request (`TableName`, ...)
-- @param opts optional, as for `call`
-- @return result, nil, info | nil, err

--- `call("BatchGetItem", request, opts)`.
-- @function Client:batch_get_item
-- @param request the request (`RequestItems`)
-- @param opts optional, as for `call`
-- @return result, nil, info | nil, err

--- `call("BatchWriteItem", request, opts)`.
-- @function Client:batch_write_item
-- @param request the request (`RequestItems`)
-- @param opts optional, as for `call`
-- @return result, nil, info | nil, err

--- `call("TransactGetItems", request, opts)`.
-- @function Client:transact_get_items
-- @param request the request (`TransactItems`)
-- @param opts optional, as for `call`
-- @return result, nil, info | nil, err

--- `call("TransactWriteItems", request, opts)`.
-- @function Client:transact_write_items
-- @param request the request (`TransactItems`, `ClientRequestToken`)
-- @param opts optional, as for `call`
-- @return result, nil, info | nil, err

--- `call("DescribeTable", request, opts)`.
-- @function Client:describe_table
-- @param request the request (`TableName`)
-- @param opts optional, as for `call`
-- @return result, nil, info | nil, err

--- `call("CreateTable", request, opts)`.
-- @function Client:create_table
-- @param request the request (`TableName`, `KeySchema`, `AttributeDefinitions`, ...)
-- @param opts optional, as for `call`
-- @return result, nil, info | nil, err

--- `call("DeleteTable", request, opts)`.
-- @function Client:delete_table
-- @param request the request (`TableName`)
-- @param opts optional, as for `call`
-- @return result, nil, info | nil, err

--- `call("ListTables", request, opts)`.
-- @function Client:list_tables
-- @param request optional (`ExclusiveStartTableName`, `Limit`)
-- @param opts optional, as for `call`
-- @return result, nil, info | nil, err

--- `call("UpdateTimeToLive", request, opts)`.
-- @function Client:update_time_to_live
-- @param request the request (`TableName`, `TimeToLiveSpecification`)
-- @param opts optional, as for `call`
-- @return result, nil, info | nil, err

--- Waits until a table is ACTIVE (local servers create tables at once; AWS takes seconds).
-- @param name the table's name
-- @param timeout_ms optional, how long to wait (60000)
-- @return the table's description (DescribeTable's `Table`) | nil, err
function Client:wait_for_table(name, timeout_ms)
  local clock = self.clock
  local deadline = clock() + (timeout_ms or 60000)
  while true do
    local res, err = self:describe_table({ TableName = name })
    if res and res.Table and res.Table.TableStatus == "ACTIVE" then return res.Table end
    if not res and err.code ~= "ResourceNotFoundException" then return nil, err end
    if clock() > deadline then
      return nil, errors.new("DeadlineExceeded", "table " .. name .. " did not become ACTIVE")
    end
    sleep(self, 200)
  end
end

--- Closes the transport's connections and wipes the signer's keys; safe to call twice.
function Client:close()
  if self.transport and self.transport.close then self.transport:close() end
  if self.signer then self.signer:close() end
end

return _M
