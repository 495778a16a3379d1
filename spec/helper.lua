-- Shared by the integration specs: the local DynamoDB servers started by
-- spec/support/with-servers.sh (moto and dynalite, each behind the SigV4-checking,
-- fault-injecting proxy), clients for them, throwaway tables, and the proxy's controls.
local ddb = require "ddb"
local core = require "ddb.core"

local _M = {}

local function env(name)
  local v = os.getenv(name)
  if v == nil or v == "" then
    error(("integration specs need %s: run them through `make test` or " ..
      "spec/support/with-servers.sh, which start the local DynamoDB servers"):format(name), 0)
  end
  return v
end

_M.access_key = function() return env("DDB_TEST_ACCESS_KEY") end
_M.secret_key = function() return env("DDB_TEST_SECRET_KEY") end
_M.region = function() return env("DDB_TEST_REGION") end

--- The Lua interpreter running the specs, for specs that start worker processes.
function _M.lua_bin()
  return env("DDB_TEST_LUA")
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
_M.shell_quote = shell_quote

--- A shell command running a Lua script under the same interpreter and module paths.
function _M.lua_command(script, ...)
  local parts = { "env", "LUA_PATH=" .. shell_quote(package.path),
    "LUA_CPATH=" .. shell_quote(package.cpath), shell_quote(_M.lua_bin()), shell_quote(script) }
  for _, a in ipairs({ ... }) do parts[#parts + 1] = shell_quote(a) end
  return table.concat(parts, " ")
end

local function self_pid()
  local f = assert(io.open("/proc/self/stat", "r"))
  local line = f:read("*l")
  f:close()
  return line:match("^(%d+)")
end

--- A fresh temporary directory.
function _M.tmpdir()
  local path = os.tmpname()
  os.remove(path)
  assert(os.execute("mkdir -p " .. shell_quote(path)))
  return path
end

local ROOT = (debug.getinfo(1, "S").source:sub(2):gsub("spec/helper%.lua$", ""))
if ROOT == "" then ROOT = "./" end
_M.root = ROOT

--- Starts one of spec/support's Python servers on a free loopback port: the script gets
-- --port-file (where it writes "port pid" once listening) and --owner-pid (it exits when
-- this process does), then args (already quoted). Returns { url, pid, dir, stop = fn };
-- raises with the server's log when it does not start within 20 s.
function _M.python_server(script, args)
  local dir = _M.tmpdir()
  local port_file = dir .. "/port"
  local cmd = ("%s %s --port-file %s --owner-pid %s %s >%s 2>&1 &"):format(
    shell_quote(ROOT .. ".venv/bin/python"), shell_quote(ROOT .. "spec/support/" .. script),
    shell_quote(port_file), self_pid(), args or "", shell_quote(dir .. "/server.log"))
  assert(os.execute(cmd))
  local deadline = core.monotonic_ms() + 20000
  while core.monotonic_ms() < deadline do
    local f = io.open(port_file, "r")
    if f then
      local port, pid = f:read("*l"):match("^(%d+) (%d+)$")
      f:close()
      return { url = "http://127.0.0.1:" .. port, pid = pid, dir = dir,
        stop = function() os.execute("kill " .. pid .. " 2>/dev/null") end }
    end
    core.sleep_ms(50)
  end
  local f = io.open(dir .. "/server.log")
  error(script .. " did not start: " .. (f and f:read("*a") or "no log"), 0)
end

--- Both servers, with what each one supports (see ../shared/FINDINGS.md).
function _M.servers()
  return {
    { name = "moto", url = env("DDB_TEST_MOTO_URL"), direct = env("DDB_TEST_MOTO_DIRECT"),
      transactions = true, returns_item_on_conflict = true },
    { name = "dynalite", url = env("DDB_TEST_DYNALITE_URL"),
      direct = env("DDB_TEST_DYNALITE_DIRECT"), transactions = false,
      returns_item_on_conflict = false },
  }
end

function _M.credentials()
  return { access_key_id = _M.access_key(), secret_access_key = _M.secret_key() }
end

--- A client for one server, through its proxy unless opts.endpoint says otherwise.
function _M.client(server, opts)
  local o = { region = _M.region(), endpoint = server.url, credentials = _M.credentials() }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(ddb.new(o))
end

local counter = 0
--- A table name no other spec (or earlier run) uses.
function _M.table_name(prefix)
  counter = counter + 1
  local rnd = core.random_bytes(4):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
  return ("%s_%s_%d"):format(prefix or "spec", rnd, counter)
end

--- Creates a PAY_PER_REQUEST table with a string hash key (and range key) and waits for it.
function _M.create_table(client, name, hash, range)
  hash = hash or "pk"
  local req = {
    TableName = name,
    KeySchema = { { AttributeName = hash, KeyType = "HASH" } },
    AttributeDefinitions = { { AttributeName = hash, AttributeType = "S" } },
    BillingMode = "PAY_PER_REQUEST",
  }
  if range then
    req.KeySchema[2] = { AttributeName = range, KeyType = "RANGE" }
    req.AttributeDefinitions[2] = { AttributeName = range, AttributeType = "S" }
  end
  assert(client:create_table(req))
  return assert(client:wait_for_table(name, 30000))
end

local control_transport
--- Sends a control document to a server's proxy; returns its stats.
function _M.control(server, doc)
  control_transport = control_transport or core.curl_new{}
  local status, _, body = control_transport:request(server.url:gsub("/$", "") .. "/__control",
    { "Content-Type: application/json" }, core.encode(doc or {}), 10000)
  assert(status == 200, "proxy control failed: " .. tostring(status) .. " " .. tostring(body))
  return core.decode(body)
end

function _M.reset(server)
  return _M.control(server, { reset = true })
end

function _M.stats(server)
  return _M.control(server, {})
end

--- Sets the proxy's faults: a list of { kind = ..., op = ..., count = ... }.
function _M.faults(server, list)
  return _M.control(server, { faults = setmetatable(list, core.mt.list) })
end

--- How many requests for op the proxy counted (received) in stats; 0 when none.
function _M.requests(stats, op)
  return stats.requests[op] or 0
end

--- How many requests for op the proxy passed on to the server in stats; 0 when none.
function _M.forwarded(stats, op)
  return stats.forwarded[op] or 0
end

--- An http:// URL on loopback where nothing listens (connections are refused at once).
function _M.closed_url()
  local probe = core.curl_new{ connect_timeout_ms = 500 }
  for _, port in ipairs{ 1, 9, 47, 61 } do
    local url = "http://127.0.0.1:" .. port .. "/"
    local status, err = probe:request(url, {}, "{}", 1000)
    if not status and err.code == "ConnectError" then
      probe:close()
      return url
    end
  end
  probe:close()
  error("helper.closed_url: every candidate loopback port accepted connections", 0)
end

--- Runs fn with ddb.config seeing vars (name -> value) on top of the real environment.
function _M.with_env(vars, fn)
  local config = require "ddb.config"
  local real = config.getenv
  config.getenv = function(name)
    local v = vars[name]
    if v ~= nil then return v end
    return real(name)
  end
  local ok, a, b = pcall(fn)
  config.getenv = real
  if not ok then error(a, 0) end
  return a, b
end

--- The curl transport, keeping what each request sent: transport.sent is a list of
-- { headers = { name_lowercase = value }, body = string }. With tamper(lines), the header
-- lines can be changed after signing and before sending.
function _M.recording_transport(tamper)
  local inner = ddb.curl_transport()
  local sent = {}
  return {
    name = "recording",
    sent = sent,
    request = function(_, url, lines, body, timeout_ms)
      if tamper then lines = tamper(lines) end
      local h = {}
      for _, line in ipairs(lines) do
        local name, value = line:match("^([^:]+):%s*(.*)$")
        if name then h[name:lower()] = value end
      end
      sent[#sent + 1] = { headers = h, body = body }
      return inner:request(url, lines, body, timeout_ms)
    end,
    sleep = inner.sleep,
    close = inner.close,
  }
end

--- Every string inside v (keys and values, nested tables followed), for leak checks.
function _M.strings(v, out, seen)
  out, seen = out or {}, seen or {}
  if type(v) == "string" then
    out[#out + 1] = v
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do
      _M.strings(k, out, seen)
      _M.strings(x, out, seen)
    end
  end
  return out
end

--- Waits (up to timeout_ms) until the proxy has forwarded every op request it received,
-- so that requests a delay fault holds back do not land in a later test's counts.
function _M.settle(server, op, timeout_ms)
  local deadline = core.monotonic_ms() + (timeout_ms or 5000)
  while true do
    local st = _M.stats(server)
    if _M.forwarded(st, op) >= _M.requests(st, op) then return st end
    if core.monotonic_ms() > deadline then
      error(("helper.settle: %s requests still held by the proxy"):format(op), 2)
    end
    core.sleep_ms(50)
  end
end

return _M
