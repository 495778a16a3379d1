--- ddb.transport.ngx: the non-blocking transport for OpenResty, on ngx_lua cosockets.
-- HTTP/1.1 POST with Content-Length; answers framed by Content-Length, chunked or close;
-- TLS with certificate and host-name verification (SNI set); connections kept in nginx's
-- cosocket pool. `ddb.new` picks it by itself inside nginx; `transport = "ngx"` asks for it.
-- This file moves the bytes; the HTTP/1.1 is the core's, shared with the libcurl path
-- (csrc/answer.c through a ddb{exchange}): a DynamoDB call is signed and built in C in one
-- string, and the answer's bytes are fed to the same reader, with the same limits and
-- failure classes, as they arrive. Nothing in C calls back into Lua, so the cosocket calls
-- may yield between any two of its calls.
--
-- What it needs from nginx.conf (examples/openresty/nginx.conf sets both):
-- * `resolver` for endpoint host names: cosockets resolve through nginx's own resolver,
--   never /etc/hosts or getaddrinfo. Only "localhost" is mapped to 127.0.0.1 without asking
--   (RFC 6761; curl does the same).
-- * `lua_ssl_trusted_certificate` (e.g. /etc/ssl/certs/ca-certificates.crt) and
--   `lua_ssl_verify_depth 3` for https endpoints: cosockets verify against that file only,
--   so the `ca_bundle` option and AWS_CA_BUNDLE cannot apply here (the option raises).
--   https endpoints need a host name: nginx checks the certificate against a DNS name,
--   not against an IP address.
--
-- Phases. Cosockets exist in rewrite, access, content, timer and the ssl_* certificate and
-- session phases. Anywhere else (init, init_worker, set, header_filter, body_filter, log,
-- balancer, exit_worker) a request returns nil, err with err.code "PhaseError" at once:
-- run the call from `ngx.timer.at(0, fn)` instead. There is no blocking fallback.
--
-- Proxies: HTTPS_PROXY / NO_PROXY are not supported here (the curl transport honours them
-- through libcurl). nginx workers only see environment variables named by `env`
-- directives, and cosockets have no proxy support of their own, so honouring them would
-- mean a CONNECT tunnel, NO_PROXY matching and proxy pools written anew in Lua; nginx
-- deployments route egress at the network level instead. A warning is logged when such a
-- variable is visible, so that a direct connection is never a silent surprise.
--
-- Outcomes. A failure before the request can have reached the server whole (connect, DNS,
-- TLS handshake, or a send that fails, see below) is applied = "no"; one after it (timeout
-- or close while reading, an answer too large to read) is applied = "maybe". maybe_resent
-- is always false: nothing is ever sent twice behind the caller's back.
--
-- Bounds. Every read waits at most for what is left of the request's time, and takes what
-- has arrived (receiveany) rather than waiting for a count or a pattern: nginx restarts a
-- cosocket's read timeout whenever bytes arrive, so one receive(n) or receiveuntil() of an
-- answer dripping in a byte at a time could outlast any deadline. An answer's head may be
-- 64 KiB, its body max_answer_bytes (32 MiB by default); a Content-Length over the limit is
-- refused before any of the body is read, a chunk on its size line, and nothing else is read
-- much past it (AnswerTooLarge). Repeated headers: the last counts, as on the libcurl path.
--
-- Stale pooled connections. nginx drops a pooled connection as soon as its event loop sees
-- the server close it; one closed since then is only found by using it. The whole request
-- goes out in one send; when that send fails, at most part of the request has left (the
-- body short of its Content-Length), and no server acts on that. Such a pooled connection
-- (typically reset by the server) is dropped and the request goes out on the next one, or
-- on a new connection, which gets no second chance. Every later failure is "maybe": after a
-- plain close (FIN) the kernel still accepts the request, so that case cannot be told from
-- a server that read the request and died. TCP_NODELAY is set on new connections.
--
-- Aborted requests. If the downstream client goes away while a call is in flight, nginx
-- lets the handler run on unless `lua_check_client_abort on` is set; with it (and no
-- `ngx.on_abort` handler), or when a light thread is killed with `ngx.thread.kill`, the
-- coroutine is simply never resumed: the caller sees no return at all, the connection is
-- closed, and a write in flight may or may not have been applied. Code after the call does
-- not run, so treat such a write as applied = "maybe"; to have it finish, keep
-- lua_check_client_abort off (the default) or run the write in `ngx.timer.at`.
-- @module ddb.transport.ngx

local core = require "ddb.core"
local config = require "ddb.config"

local options = require "ddb.options"

local ngx = ngx
local type, tostring, error, ipairs = type, tostring, error, ipairs
local os_getenv = os.getenv
local floor = math.floor
local monotonic_ms = core.monotonic_ms
local ngx_socket_tcp = ngx and ngx.socket and ngx.socket.tcp
local ngx_sleep = ngx and ngx.sleep
local get_phase = ngx and ngx.get_phase

local _M = { _VERSION = core._VERSION }

-- ngx_lua's yieldable contexts: the only phases where cosockets and ngx.sleep work.
local COSOCKET_PHASES = {
  rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}
_M.COSOCKET_PHASES = COSOCKET_PHASES

-- what credential providers need besides DynamoDB's POST (instance and container metadata)
local METHODS = { POST = true, GET = true, PUT = true }

local function fail(code, message, applied, retry_class)
  return nil, core.error(code, message, nil, applied, retry_class)
end

local READ_SIZE = 65536
local MAX_FREE = 16   -- exchanges kept for reuse per transport
local exchange_new = core.exchange_new

local function phase_error(phase)
  return fail("PhaseError", ("cannot send a DynamoDB request in nginx's '%s' phase: " ..
    "cosockets are not available there; make the call from ngx.timer.at(0, fn), or from " ..
    "a rewrite, access or content handler"):format(tostring(phase)), "no", "none")
end

-- A failed send or receive; whether the request may have been applied is the caller's to say.
local function io_error(what, err, applied)
  if err == "timeout" then
    return fail("Timeout", what .. " timed out", applied, "timeout")
  end
  return fail("NetworkError", what .. " failed: " .. tostring(err), applied, "transient")
end

-- What is left of the deadline, in whole milliseconds: nginx keeps a cosocket's timeouts so.
local function remaining(deadline)
  return floor(deadline - monotonic_ms())
end

-- Endpoint URL -> what connecting needs; cached per URL (a client has one).
local function target_of(self, url)
  local t = self.targets[url]
  if t then return t end
  -- a path (metadata endpoints have one) goes into the request line, so it must be one token
  local base, path = url:match("^(https?://[^/]+)(/.*)$")
  if not base then base, path = url, "/" end
  if path:find("[%s%z]") then return nil, "the URL's path holds white space or NUL" end
  local ep, err = config.parse_endpoint(base)
  if not ep then return nil, err end
  local host = ep.host
  local connect_host = host
  if host == "localhost" or host:match("%.localhost$") then
    connect_host = "127.0.0.1"
  elseif host:find(":", 1, true) then
    connect_host = "[" .. host .. "]"
  end
  local sni = ep.tls and host or nil
  t = {
    host = host, port = ep.port, tls = ep.tls, sni = sni, connect_host = connect_host,
    path = path,
    where = host .. ":" .. ep.port,
    -- everything that makes two connections not interchangeable
    pool = ("ddb:%s:%s:%d:%s:%s"):format(ep.scheme, host, ep.port, sni or "",
      self.verify and "verify" or "noverify"),
  }
  t.connect_opts = { pool = t.pool, pool_size = self.pool_size }   -- one table, every connect
  self.targets[url] = t
  return t
end

-- A connected (and, for https, verified) socket, whether it came from the pool, and the
-- send and read timeouts it was given (whole ms, as nginx keeps them) | nil, err.
local function open(self, t, deadline)
  local sock, err = ngx_socket_tcp()
  if not sock then return fail("NetworkError", "no cosocket: " .. tostring(err), "no", "transient") end
  local left = remaining(deadline)
  if left < 1 then return fail("Timeout", "no time left to connect to " .. t.where, "no", "timeout") end
  local ct = left < self.connect_timeout_ms and left or self.connect_timeout_ms
  sock:settimeouts(ct, left, left)
  local ok
  ok, err = sock:connect(t.connect_host, t.port, t.connect_opts)
  if not ok then
    if err == "timeout" then
      return fail("Timeout", "connecting to " .. t.where .. " timed out", "no", "timeout")
    end
    if type(err) == "string" and err:find("no resolver defined", 1, true) then
      return fail("ConnectError", "cannot connect to " .. t.where .. ": " .. err ..
        " (set nginx's 'resolver' directive)", "no", "none")
    end
    return fail("ConnectError", "cannot connect to " .. t.where .. ": " .. tostring(err),
      "no", "transient")
  end
  local stats = self.stats
  local reused = sock:getreusedtimes() > 0
  if reused then
    stats.reused = stats.reused + 1
    return sock, true, left
  end
  stats.connects = stats.connects + 1
  sock:setoption("tcp-nodelay", 1)
  if t.tls then
    -- false: no session object wanted back; the pool keeps the TLS connection itself
    ok, err = sock:sslhandshake(false, t.sni, self.verify)
    if not ok then
      sock:close()
      if err == "timeout" then
        return fail("Timeout", "TLS handshake with " .. t.where .. " timed out", "no", "timeout")
      end
      err = tostring(err)
      -- "<openssl verify code>: <text>" or nginx's host-name check
      if err:match("^%d+: ") or err == "certificate host mismatch" then
        return fail("TLSVerifyError", "certificate of " .. t.where .. " not accepted: " .. err ..
          " (trusted CAs come from lua_ssl_trusted_certificate)", "no", "none")
      end
      return fail("TLSError", "TLS handshake with " .. t.where .. " failed: " .. err, "no",
        "transient")
    end
  end
  return sock, false, left
end

-- The HTTP/1.1 itself is the core's (csrc/answer.c through a ddb{exchange}), as on the
-- libcurl path: the same framing, limits and failure classes for the same bytes. One exchange
-- per call in flight (the calls of a worker share the transport), kept for the next call.
local function take_exchange(self)
  local free = self.free
  local n = #free
  if n == 0 then return exchange_new(self.max_answer_bytes) end
  local x = free[n]
  free[n] = nil
  return x
end

local function give_exchange(self, x)
  local free = self.free
  if #free < MAX_FREE then free[#free + 1] = x end
end

-- Feeds x what the socket receives until the answer is complete: true | nil, err. Every
-- read waits at most for what is left of the deadline and takes what has arrived. set: the
-- socket's read timeout now (whole ms); it is set again only when what is left differs.
local function read_answer(sock, x, deadline, where, set)
  while true do
    local left = remaining(deadline)
    if left < 1 then return io_error("reading the answer from " .. where, "timeout", "maybe") end
    if left ~= set then
      sock:settimeout(left)
      set = left
    end
    local data, err = sock:receiveany(READ_SIZE)
    local done, xerr
    if data then
      done, xerr = x:feed(data)
    elseif err == "closed" then
      done, xerr = x:closed()
    else
      return io_error("reading the answer from " .. where, err, "maybe")
    end
    if done then return true end
    if done == nil then return nil, xerr end
  end
end

-- Checks what every request needs before it is sent: t | nil, err.
local function target_for(self, url)
  local phase = get_phase()
  if not COSOCKET_PHASES[phase] then return phase_error(phase) end
  local t, terr = target_of(self, url)
  if not t then return fail("ConfigError", terr, "no", "none") end
  return t
end

-- Sends req (one string or a list of them) and reads the answer into x (started):
-- true | nil, err.
local function exchange(self, t, req, x, deadline)
  local stale = 0
  while true do
    local sock, reused, set = open(self, t, deadline)
    if not sock then return nil, reused end   -- reused is the error here
    local left = remaining(deadline)
    if left < 1 then
      sock:close()
      return fail("Timeout", "request to " .. t.where .. " timed out", "no", "timeout")
    end
    -- the timeouts open() gave, unless connecting took a millisecond or more
    if left ~= set then
      sock:settimeout(left)
      set = left
    end
    local ok, err = sock:send(req)
    if not ok then
      sock:close()
      -- A send that fails left at most part of the request with the server, which no
      -- server acts on (the body is short of its Content-Length). A pooled connection that
      -- fails here was closed by the server while idle: drop it and take the next, until a
      -- new connection is made (which gets no second chance) or the pool could not hold any
      -- more.
      if not reused or stale >= self.pool_size then
        return io_error("sending to " .. t.where, err, "no")
      end
      stale = stale + 1
      self.stats.stale_retries = self.stats.stale_retries + 1
    else
      ok, err = read_answer(sock, x, deadline, t.where, set)
      if not ok then
        sock:close()
        return nil, err
      end
      if x:keep() then
        sock:setkeepalive(self.keepalive_timeout_ms, self.pool_size)
      else
        sock:close()
      end
      return true
    end
  end
end

-- request(url, header_lines, body, timeout_ms[, method]): method "POST" (the default),
-- "GET" (no body, no Content-Length) or "PUT". Returns status, headers (lowercase names,
-- the last of repeated ones), body, false | nil, err.
local function request(self, url, header_lines, body, timeout_ms, method)
  local t, terr = target_for(self, url)
  if not t then return nil, terr end
  method = method or "POST"
  if not METHODS[method] or (method == "GET" and body ~= "") then
    return fail("ConfigError", "cannot send " .. tostring(method) .. " with this transport" ..
      (method == "GET" and " (a GET has no body)" or ""), "no", "none")
  end
  local deadline = monotonic_ms() + (timeout_ms or 10000)
  -- the whole request in one send (one system call, one segment for a small request)
  local n = #header_lines
  local req = { method, " ", t.path, " HTTP/1.1\r\n" }
  for i = 1, n do
    req[2 * i + 3] = header_lines[i]
    req[2 * i + 4] = "\r\n"
  end
  if method == "GET" then
    req[2 * n + 5] = "\r\n"
  else
    req[2 * n + 5] = "Content-Length: "
    req[2 * n + 6] = #body
    req[2 * n + 7] = "\r\n\r\n"
    req[2 * n + 8] = body
  end
  local x = take_exchange(self)
  x:start()
  local ok, err = exchange(self, t, req, x, deadline)
  if not ok then return nil, err end   -- x is dropped: a failed answer may have grown it
  local status, headers, rbody = x:answer()
  give_exchange(self, x)
  return status, headers, rbody, false
end

-- call(signer, url, op, body, timeout_ms[, plain]): a DynamoDB call signed, sent and parsed
-- with the request built and the answer read in C, as the libcurl handle's call() does (and
-- with its results): result, nil, status, request_id | nil, err, status, headers, false |
-- nil, err.
local function call(self, signer, url, op, body, timeout_ms, plain)
  local t, terr = target_for(self, url)
  if not t then return nil, terr end
  local deadline = monotonic_ms() + timeout_ms
  local x = take_exchange(self)
  local ok, err = exchange(self, t, x:request(signer, op, body, t.path), x, deadline)
  if not ok then return nil, err end
  local result, rerr, status, extra = x:result(plain)
  give_exchange(self, x)
  return result, rerr, status, extra, false
end

local function sleep(_, ms)
  -- Outside yieldable phases there is nothing to wait for: the request already failed.
  -- nginx's timers count whole milliseconds; a shorter wait would be a bare yield.
  if ms >= 1 and COSOCKET_PHASES[get_phase()] then ngx_sleep(ms / 1000) end
end

local SPEC = {
  connect_timeout_ms = options.number(1, 600000, "milliseconds"),
  keepalive_timeout_ms = options.whole(1, 3600000, "milliseconds"),
  pool_size = options.whole(1, 100000, "connections per endpoint and worker"),
  tls_verify = options.kind("boolean"),
  max_answer_bytes = options.whole(core.MAX_ANSWER_BYTES_MIN, core.MAX_ANSWER_BYTES_MAX,
    "bytes"),
  -- refused below with the reason; named here so that it is not "unknown"
  ca_bundle = options.custom(function() return true end),
}

--- Creates the transport. Options (all optional): connect_timeout_ms (1000),
-- keepalive_timeout_ms (idle time in the pool, 30000), pool_size (per endpoint and worker,
-- 64), max_answer_bytes (the longest answer body read, 32 MiB), tls_verify (true; false only
-- for tests against self-signed servers).
function _M.new(opts)
  opts = opts or {}
  if type(ngx_socket_tcp) ~= "function" then
    error("ddb.transport.ngx: needs OpenResty's ngx_lua (ngx.socket.tcp); outside nginx " ..
      "use the curl transport", 2)
  end
  options.check("ddb.transport.ngx", opts, SPEC, 2)
  if opts.ca_bundle ~= nil then
    error("ddb.transport.ngx: option 'ca_bundle' cannot apply to cosockets, which verify " ..
      "against nginx's lua_ssl_trusted_certificate; set that directive instead", 3)
  end
  local self = {
    name = "ngx",
    supports_methods = true,
    verify = opts.tls_verify ~= false,
    connect_timeout_ms = opts.connect_timeout_ms or 1000,
    keepalive_timeout_ms = opts.keepalive_timeout_ms or 30000,
    pool_size = opts.pool_size or 64,
    max_answer_bytes = opts.max_answer_bytes or core.MAX_ANSWER_BYTES,
    targets = {},
    -- per worker: new connections, pooled ones reused, stale pooled ones replaced
    stats = { connects = 0, reused = 0, stale_retries = 0 },
    free = {},   -- exchanges between calls
    request = request,
    call = call,
    sleep = sleep,
    close = function() end,   -- the connections belong to nginx's pool
  }
  -- visible only when nginx.conf passes them on with `env`; then say they do not apply
  for _, name in ipairs({ "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy" }) do
    local v = os_getenv(name)
    if v and v ~= "" then
      ngx.log(ngx.WARN, "ddb: ", name, " is set, but the cosocket transport does not use ",
        "proxies; connecting directly")
      break
    end
  end
  -- Client:call signs, sends and parses through call() (the shape of the curl handle's)
  self.signed_call = self
  local bundle = os_getenv("AWS_CA_BUNDLE")
  if bundle and bundle ~= "" then
    ngx.log(ngx.WARN, "ddb: AWS_CA_BUNDLE is set, but cosockets trust only ",
      "lua_ssl_trusted_certificate")
  end
  return self
end

return _M
