--- nginx-side half of spec/integration/openresty_spec.lua and tls_spec.lua: locations that
-- make a DynamoDB call (or one bare transport request) inside nginx and answer, as JSON,
-- with exactly what the caller saw; and hooks that try a call in phases without cosockets.
-- luacheck: globals ngx.status ngx.header
local ddb = require "ddb"
local credentials = require "ddb.credentials"
local ngx_transport = require "ddb.transport.ngx"

local ngx = ngx
local core = ddb.core
local encode, decode = ddb.encode_json, ddb.decode_json

local _M = {}

local settings = {}

--- From init_by_lua: what every client here uses.
function _M.configure(s)
  settings = s
end

local function client(endpoint, opts)
  local o = {
    region = settings.region, endpoint = endpoint or settings.endpoint,
    credentials = { access_key_id = settings.access_key, secret_access_key = settings.secret_key },
  }
  for k, v in pairs(opts or {}) do o[k] = v end
  return ddb.new(o)
end

local function err_doc(err)
  if err == nil then return nil end
  return { code = err.code, message = tostring(err.message), applied = err.applied,
    retry_class = err.retry_class, retryable = err.retryable, attempts = err.attempts }
end

local function reply(doc)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(encode(doc))
end

local function body_doc()
  ngx.req.read_body()
  return decode(ngx.req.get_body_data() or "{}")
end

local dict = function() return ngx.shared.harness end

--- Tries a call where cosockets may not exist; records what it saw under `name` and
-- returns the error code (set_by_lua wants a string).
function _M.in_phase(name)
  local t0 = core.monotonic_ms()
  local c, cerr = client(nil, { max_attempts = 3 })
  local res, err
  if c then res, err = c:list_tables({}) else err = cerr end
  if res then err = nil end   -- (result, info) on success
  local doc = { phase = ngx.get_phase(), ok = res ~= nil, err = err_doc(err),
    transport = c and c.transport.name, ms = core.monotonic_ms() - t0 }
  dict():set(name, encode(doc))
  return err and err.code or "ok"
end

--- The way out the PhaseError names: the same call from a timer.
function _M.from_timer(name)
  local ok, terr = ngx.timer.at(0, function(premature)
    if premature then return end
    _M.in_phase(name)
  end)
  if not ok then dict():set(name, encode({ timer_error = terr })) end
end

--- GET /phases: everything in_phase recorded.
function _M.phases()
  local out = {}
  for _, k in ipairs(dict():get_keys(0)) do out[k] = decode(dict():get(k)) end
  reply(out)
end

--- POST /call {endpoint, op, request, opts}: one client call with the cosocket transport.
function _M.call()
  local doc = body_doc()
  local opts = doc.opts or {}
  opts.transport = opts.transport or "ngx"
  local c, cerr = client(doc.endpoint, opts)
  if not c then return reply({ ok = false, err = err_doc(cerr) }) end
  local t0 = core.monotonic_ms()
  local res, err = c:call(doc.op or "ListTables", doc.request or {})
  if res then err = nil end
  reply({ ok = res ~= nil, result = res, err = err_doc(err), ms = core.monotonic_ms() - t0,
    transport = c.transport.name, stats = c.transport.stats,
    pool = { size = c.transport.pool_size, keepalive_ms = c.transport.keepalive_timeout_ms } })
end

--- POST /hostile {endpoint, op, deadline_ms} | {container_url, deadline_ms}: one DynamoDB
-- call, or one fetch of container credentials, for hostile_spec.lua, which reads this
-- worker's memory from /proc by the pid in the answer.
function _M.hostile()
  local doc = body_doc()
  local t0 = core.monotonic_ms()
  local res, err
  if doc.container_url then
    local env = { AWS_CONTAINER_CREDENTIALS_FULL_URI = doc.container_url,
      AWS_EC2_METADATA_DISABLED = "true" }
    local p, perr = credentials.new{ region = settings.region,
      getenv = function(name) return env[name] end }
    if p then res, err = p:get(nil, t0 + doc.deadline_ms) else err = perr end
  else
    local c, cerr = client(doc.endpoint, { transport = "ngx", deadline_ms = doc.deadline_ms })
    if c then res, err = c:call(doc.op, {}) else err = cerr end
  end
  if res then err = nil end
  reply({ ok = res ~= nil, err = err_doc(err), ms = core.monotonic_ms() - t0,
    pid = ngx.worker.pid() })
end

local shared_transport

local function raw_request(t, url, body, timeout_ms)
  local host = url:match("^https?://([^/]+)")
  local status, headers, rbody, resent = t:request(url, { "Host: " .. host,
    "Content-Type: application/json" }, body, timeout_ms or 3000)
  if not status then return { ok = false, err = err_doc(headers) } end
  return { ok = true, status = status, headers = headers, body = rbody, resent = resent }
end

--- POST /raw {url, body, timeout_ms, shared}: one bare transport request. shared uses one
-- transport for the worker, so its stats show connection reuse across requests.
function _M.raw()
  local doc = body_doc()
  local t
  if doc.shared then
    shared_transport = shared_transport or ngx_transport.new()
    t = shared_transport
  else
    t = ngx_transport.new()
  end
  local out = raw_request(t, doc.url, doc.body or "{}", doc.timeout_ms)
  out.stats = t.stats
  reply(out)
end

--- POST /stale {url, mode, spin_ms}: a request that leaves its connection in the pool, a
-- busy wait without yielding (so nginx cannot notice what the server does meanwhile),
-- then a second request, which gets that same pooled connection.
function _M.stale()
  local doc = body_doc()
  local t = ngx_transport.new()
  local first = raw_request(t, doc.url, encode({ mode = doc.mode }))
  local until_ms = core.monotonic_ms() + (doc.spin_ms or 400)
  while core.monotonic_ms() < until_ms do end
  local second = raw_request(t, doc.url, encode({ mode = "plain" }))
  reply({ first = first, second = second, stats = t.stats })
end

--- POST / on the answering server: answers in the framing the request body asks for
-- ({"mode": "chunked"|"length"|"close", "size": n}); the body is JSON of that size.
function _M.answer()
  local doc = body_doc()
  local size = doc.size or 100
  local pad = string.rep("y", size)
  local text = encode({ pad = pad })
  if doc.mode == "length" then ngx.header["Content-Length"] = #text end
  -- several flushes: the answer goes out in as many chunks
  local step = math.max(1, math.floor(#text / 4))
  for i = 1, #text, step do
    ngx.print(text:sub(i, i + step - 1))
    ngx.flush(true)
  end
end

return _M
