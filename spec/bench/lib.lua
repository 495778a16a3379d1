--- Shared by the benchmark scripts (make bench): processes, /proc readings, statistics,
-- stable JSON, and the fixed-response DynamoDB stand-in (nginx answering from a map).
local core = require "ddb.core"

local _M = {}

local shell = require "support.shell"

_M.dir = shell.script_dir()
_M.root = (_M.dir:gsub("/spec/bench$", ""))
_M.out = os.getenv("BENCH_OUT") or (_M.root .. "/build/bench")

_M.q = shell.q
local q = _M.q
--- Runs a shell command: ok, output (stdout and stderr).
_M.sh = shell.sh
_M.must = shell.must
_M.read = shell.read
_M.write = shell.write

_M.sleep_ms = core.sleep_ms
_M.now_ms = core.monotonic_ms

function _M.tmpdir(tag)
  return shell.tmpdir("ddb-bench-" .. tag)
end

--------------------------------------------------------------------------------
-- /proc
--------------------------------------------------------------------------------

local clk_tck
--- user + system CPU seconds of a process (all its threads), from /proc/PID/stat.
function _M.proc_cpu(pid)
  if not clk_tck then
    local ok, out = _M.sh("getconf CLK_TCK")
    clk_tck = ok and tonumber(out:match("%d+")) or 100
  end
  local stat = _M.read("/proc/" .. pid .. "/stat")
  if not stat then return nil end
  local rest = stat:match("^%d+ %b() (.*)$")
  local f = {}
  for w in rest:gmatch("%S+") do f[#f + 1] = w end
  -- fields 14 and 15 of stat(5); rest starts at field 3
  return (tonumber(f[12]) + tonumber(f[13])) / clk_tck
end

--- VmRSS of a process in KiB ("self" for this one).
function _M.rss_kb(pid)
  local s = _M.read("/proc/" .. (pid or "self") .. "/status") or ""
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

function _M.children(pid)
  local s = _M.read(("/proc/%d/task/%d/children"):format(pid, pid)) or ""
  local list = {}
  for c in s:gmatch("%d+") do list[#list + 1] = tonumber(c) end
  return list
end

--- Busy and total CPU seconds of the whole machine (all cores), from /proc/stat.
function _M.machine_cpu()
  local line = (_M.read("/proc/stat") or ""):match("^cpu%s+([^\n]+)")
  local f = {}
  for w in (line or ""):gmatch("%d+") do f[#f + 1] = tonumber(w) end
  if #f < 4 then return 0, 0 end
  local total = 0
  for _, v in ipairs(f) do total = total + v end
  local idle = f[4] + (f[5] or 0)   -- idle + iowait
  local hz = 100
  return (total - idle) / hz, total / hz
end

function _M.loadavg()
  return (_M.read("/proc/loadavg") or ""):match("^(%S+ %S+ %S+)")
end

--------------------------------------------------------------------------------
-- Statistics
--------------------------------------------------------------------------------

function _M.percentile(sorted, p)
  if #sorted == 0 then return nil end
  local idx = math.max(1, math.min(#sorted, math.ceil(p / 100 * #sorted)))
  return sorted[idx]
end

function _M.median(list)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  return _M.percentile(s, 50)
end

--------------------------------------------------------------------------------
-- JSON with sorted keys (files that are committed or diffed stay stable)
--------------------------------------------------------------------------------

local function encode(v, indent, lvl)
  local t = type(v)
  if t == "table" then
    local pad = indent and ("\n" .. (" "):rep(indent * (lvl + 1))) or ""
    local close = indent and ("\n" .. (" "):rep(indent * lvl)) or ""
    local sep = indent and ": " or ":"
    if v[1] ~= nil or next(v) == nil and getmetatable(v) == core.mt.list then
      local parts = {}
      for i, x in ipairs(v) do parts[i] = pad .. encode(x, indent, lvl + 1) end
      return "[" .. table.concat(parts, ",") .. close .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    if #keys == 0 then return "{}" end
    local parts = {}
    for i, k in ipairs(keys) do
      parts[i] = pad .. core.encode(k) .. sep .. encode(v[k], indent, lvl + 1)
    end
    return "{" .. table.concat(parts, ",") .. close .. "}"
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    if math.type and math.type(v) == "integer" then return tostring(v) end
    if v == math.floor(v) and math.abs(v) < 1e15 then return ("%.0f"):format(v) end
    return ("%.6g"):format(v)
  elseif t == "nil" then
    return "null"
  end
  return core.encode(v)
end

function _M.json(v, indent)
  return encode(v, indent, 0)
end

function _M.decode(s)
  return core.decode(s)
end

--------------------------------------------------------------------------------
-- Ports and nginx
--------------------------------------------------------------------------------

function _M.random_port()
  local b1, b2 = core.random_bytes(2):byte(1, 2)
  return 20000 + (b1 * 256 + b2) % 12000   -- below Linux's ephemeral range
end

local function pid_alive(pid)
  local stat = _M.read("/proc/" .. pid .. "/stat")
  return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end
_M.pid_alive = pid_alive

--- Kills one process we started (TERM, then KILL) and waits for it.
function _M.kill(pid)
  if not pid then return end
  _M.sh("kill -TERM " .. pid .. " 2>/dev/null")
  for _ = 1, 200 do
    if not pid_alive(pid) then return end
    _M.sleep_ms(25)
  end
  _M.sh("kill -KILL " .. pid .. " 2>/dev/null")
end

local owner
--- This process's pid (the parent of the shell io.popen starts).
function _M.self_pid()
  if not owner then
    local p = io.popen("echo $PPID")
    owner = tonumber(p:read("*l"))
    p:close()
  end
  return owner
end

local Nginx = {}
Nginx.__index = Nginx

--- Starts nginx from a configuration text with @PORT1@..@PORTn@ and @PREFIX@ filled in.
-- Returns { prefix, ports, port, pid (master), workers = {pid...}, stop }.
function _M.nginx(conf, nports, tag)
  local prefix = _M.tmpdir(tag or "nginx")
  _M.must("mkdir -p " .. q(prefix .. "/logs"))
  local last
  for _ = 1, 8 do
    local ports, vars = {}, { PREFIX = prefix, ROOT = _M.root }
    for i = 1, nports or 1 do
      ports[i] = _M.random_port()
      vars["PORT" .. i] = ports[i]
    end
    local text = conf:gsub("@([%u%d_]+)@", function(k)
      if vars[k] == nil then error("conf needs @" .. k .. "@") end
      return tostring(vars[k])
    end)
    _M.write(prefix .. "/nginx.conf", text)
    local ok, out = _M.sh("cd " .. q(prefix) .. " && nginx -p " .. q(prefix) ..
      " -c nginx.conf -e logs/error.log")
    if ok then
      local self = setmetatable({ prefix = prefix, ports = ports, port = ports[1] }, Nginx)
      for _ = 1, 200 do
        self.pid = tonumber(_M.read(prefix .. "/logs/nginx.pid") or "")
        if self.pid then
          self.workers = _M.children(self.pid)
          if #self.workers > 0 then break end
        end
        _M.sleep_ms(25)
      end
      if not self.pid then error("nginx wrote no pid file:\n" .. self:log()) end
      -- stops nginx should this process die without calling stop()
      local pidfile = q(prefix .. "/logs/nginx.pid")
      _M.sh(("(while kill -0 %d 2>/dev/null && [ -f %s ]; do sleep 1; done; " ..
        "[ -f %s ] && kill -TERM %d) >/dev/null 2>&1 &"):format(_M.self_pid(), pidfile, pidfile,
        self.pid))
      return self
    end
    last = out .. (_M.read(prefix .. "/logs/error.log") or "")
    if not last:find("Address already in use", 1, true) then break end
  end
  error("nginx did not start:\n" .. tostring(last), 2)
end

function Nginx:url(port)
  return ("http://127.0.0.1:%d"):format(port or self.port)
end

function Nginx:log()
  return _M.read(self.prefix .. "/logs/error.log") or ""
end

function Nginx:worker_cpu()
  local s = 0
  for _, w in ipairs(self.workers) do s = s + (_M.proc_cpu(w) or 0) end
  return s
end

function Nginx:stop()
  if self.pid then
    _M.kill(self.pid)
    self.pid = nil
  end
  if self.prefix and os.getenv("BENCH_KEEP") ~= "1" then
    _M.sh("rm -rf " .. q(self.prefix))
    self.prefix = nil
  end
end

--------------------------------------------------------------------------------
-- Big items
--------------------------------------------------------------------------------

--- A plain item of about `target` bytes as AttributeValue JSON: a few top-level attributes
-- (pk, version, counter among them) and a map of line records (strings, numbers with
-- decimals, a set, a nested map, booleans), as game profiles and orders have.
function _M.big_item(target, fields)
  local ddb = require "ddb"
  local item = { pk = "bench#1", version = 7, counter = 41, status = "open",
    created = 1767225600, customer = { name = "Ada Lovelace", tier = "gold", id = 42 },
    lines = {} }
  for k, v in pairs(fields or {}) do item[k] = v end
  local function size() return #core.encode(core.marshal_item(item)) end
  local function add(i)
    item.lines[("line%04d"):format(i)] = { sku = ("SKU-%06d"):format(i * 7919 % 1000000),
      qty = i % 9 + 1, price = ddb.number(("%d.%02d"):format(i % 500, i % 100)),
      tags = ddb.string_set{ "a" .. i % 5, "b" .. i % 3 }, gift = i % 2 == 0 }
  end
  -- estimate the number of lines from the first one, then top up one by one
  local base = size()
  add(1)
  local per_line = size() - base
  local n = math.max(1, math.floor((target - base) / per_line))
  for i = 2, n do add(i) end
  while size() < target do
    n = n + 1
    add(n)
  end
  return item
end

--------------------------------------------------------------------------------
-- The fixed-response server
--------------------------------------------------------------------------------

-- The item every GetItem returns: a realistic small record (~0.4 KB as JSON) carrying the
-- version and write-token attributes with_item keeps.
local function item_json(version, counter)
  return ('{"pk":{"S":"bench#1"},"version":{"N":"%d"},"counter":{"N":"%d"},' ..
    '"owner":{"S":"user#1234"},"email":{"S":"someone@example.com"},' ..
    '"balance":{"N":"1250.75"},"tags":{"SS":["alpha","beta","gamma"]},' ..
    '"profile":{"M":{"name":{"S":"Ada"},"level":{"N":"12"},"active":{"BOOL":true}}},' ..
    '"updated_at":{"S":"2026-01-01T00:00:00Z"},' ..
    '"_ddb_tokens":{"S":"1 %d:QUFBQUFBQUFBQUFB %d:QkJCQkJCQkJCQkJC"}}'):format(
    version, counter, version, version - 1)
end

_M.BODIES = {
  GetItem = '{"Item":' .. item_json(7, 41) .. ',"ConsumedCapacity":{"TableName":"bench",' ..
    '"CapacityUnits":1.0}}',
  UpdateItem = '{"Attributes":' .. item_json(8, 42) .. ',"ConsumedCapacity":{"TableName":' ..
    '"bench","CapacityUnits":1.0}}',
  PutItem = '{"ConsumedCapacity":{"TableName":"bench","CapacityUnits":1.0}}',
  DescribeTable = '{"Table":{"TableName":"bench","TableStatus":"ACTIVE","KeySchema":' ..
    '[{"AttributeName":"pk","KeyType":"HASH"}],"AttributeDefinitions":[{"AttributeName":' ..
    '"pk","AttributeType":"S"}]}}',
}

--- The start of a bench server's nginx.conf, up to and into the http block: one worker,
-- logs and temporary files under the prefix, connections kept for the whole run; with_lua
-- loads the Lua module first.
function _M.nginx_head(with_lua)
  return (with_lua and "load_module /usr/lib/nginx/modules/ndk_http_module.so;\n" ..
    "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;\n" or "") .. [[
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log warn;
events { worker_connections 1024; }
http {
    client_body_temp_path logs/body;
    proxy_temp_path logs/proxy;
    fastcgi_temp_path logs/fastcgi;
    uwsgi_temp_path logs/uwsgi;
    scgi_temp_path logs/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 600s;]]
end

--- The configuration of the fixed-response server: port 1 plain, port 2 the same with an
-- access log of $connection per request (to count TCP connections).
function _M.fixed_conf()
  local bodies, crcs = {}, {}
  local ops = {}
  for op in pairs(_M.BODIES) do ops[#ops + 1] = op end
  table.sort(ops)
  for _, op in ipairs(ops) do
    local body = _M.BODIES[op]
    assert(not body:find("[$'\\]"), "body must not need nginx escaping")
    bodies[#bodies + 1] = ("        DynamoDB_20120810.%s '%s';"):format(op, body)
    crcs[#crcs + 1] = ("        DynamoDB_20120810.%s %d;"):format(op, core.crc32(body))
  end
  return ([[
# Fixed-response DynamoDB stand-in for make bench: answers by X-Amz-Target with a constant
# body and its x-amz-crc32, so that the server costs next to nothing.
%s
    default_type application/x-amz-json-1.0;
    server_tokens off;
    map $http_x_amz_target $ddb_body {
        default '{}';
%s
    }
    map $http_x_amz_target $ddb_crc {
        default 2745614147;
%s
    }
    log_format conn '$connection $connection_requests $http_x_amz_target';
    server {
        listen 127.0.0.1:@PORT1@ backlog=1024;
        access_log off;
        location / {
            add_header x-amzn-requestid BENCHREQUESTID0000000000000000000000000000000000;
            add_header x-amz-crc32 $ddb_crc;
            return 200 $ddb_body;
        }
    }
    server {
        listen 127.0.0.1:@PORT2@;
        access_log logs/conn.log conn;
        location / {
            add_header x-amzn-requestid BENCHREQUESTID0000000000000000000000000000000000;
            add_header x-amz-crc32 $ddb_crc;
            return 200 $ddb_body;
        }
    }
}
]]):format(_M.nginx_head(), table.concat(bodies, "\n"), table.concat(crcs, "\n"))
end

function _M.fixed_server()
  assert(core.crc32("{}") == 2745614147)
  local srv = _M.nginx(_M.fixed_conf(), 2, "fixed")
  srv.log_url = srv:url(srv.ports[2])
  srv.conn_log = srv.prefix .. "/logs/conn.log"
  return srv
end

--- Distinct connections and requests in the fixed server's access log.
function _M.count_connections(path)
  local conns, n = {}, 0
  for line in (_M.read(path) or ""):gmatch("[^\n]+") do
    local c = line:match("^(%d+)")
    if c then
      n = n + 1
      conns[c] = true
    end
  end
  local k = 0
  for _ in pairs(conns) do k = k + 1 end
  return k, n
end

--- A shell command running a Lua script under runtime "5.4" or "jit" with the module's
-- paths (the C core from build/<runtime>).
function _M.lua_cmd(runtime, script, ...)
  return _M.lua_cmd_via(runtime, nil, script, ...)
end

--- The same, with the interpreter run under a wrapper command (valgrind ...).
function _M.lua_cmd_via(runtime, wrapper, script, ...)
  return _M.lua_cmd_in(_M.root, runtime, wrapper, script, ...)
end

--- The same, with the module (lua/, spec/, build/<runtime>) of another source tree at root.
function _M.lua_cmd_in(root, runtime, wrapper, script, ...)
  local bin = runtime == "jit" and "luajit" or ("lua" .. runtime)
  if wrapper then bin = wrapper .. " " .. bin end
  local parts = { "env", "LUA_PATH=" .. q(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" ..
    root .. "/spec/?.lua;;"), "LUA_CPATH=" .. q(root .. "/build/" .. runtime .. "/?.so;;"),
    bin, q(script) }
  for _, a in ipairs({ ... }) do parts[#parts + 1] = q(a) end
  return table.concat(parts, " ")
end

_M.ACCESS_KEY = "AKIDBENCHMARK0000000"
_M.SECRET_KEY = "benchmarkbenchmarkbenchmarkbenchmark0000"
_M.REGION = "us-east-1"

return _M
