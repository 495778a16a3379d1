--- Runs real nginx (Debian's, with ngx_lua) for the integration specs, from plain Lua 5.x
-- or LuaJIT: renders a configuration into a throwaway prefix, starts `nginx -p PREFIX -c
-- nginx.conf` on free loopback ports, and stops it again (spec teardown, or a watchdog
-- shell should the spec process die first). Also starts spec/support/nginx/oddserver.py
-- and drives nginx with parallel curl.
local core = require "ddb.core"
local shell = require "support.shell"

local _M = {}

_M.support_dir = shell.script_dir()
_M.root = (_M.support_dir:gsub("/spec/support/nginx$", ""))
_M.nginx_bin = os.getenv("DDB_TEST_NGINX") or "nginx"
_M.modules_dir = "/usr/lib/nginx/modules"

--- Quotes a string for /bin/sh.
_M.q = shell.q
local q = _M.q
--- Runs a shell command; returns ok, its output (stdout and stderr), exit code.
_M.sh = shell.sh
local must, read, write = shell.must, shell.read, shell.write
_M.read = read

local function sleep_ms(ms) core.sleep_ms(ms) end

-- Running, not a zombie: a daemon's exit is reaped by init, which may take its time.
local function pid_alive(pid)
  local stat = read("/proc/" .. pid .. "/stat")
  if not stat then return false end
  return stat:match("^%d+ %b() (%a)") ~= "Z"
end

-- This process's pid: the parent of the shell io.popen starts.
local owner_pid
local function self_pid()
  if not owner_pid then
    local p = io.popen("echo $PPID")
    owner_pid = tonumber(p:read("*l"))
    p:close()
  end
  return owner_pid
end

--- A fresh directory under TMPDIR.
function _M.tmpdir(tag)
  return shell.tmpdir("ddb-" .. (tag or "nginx"))
end

--- Builds the C core for LuaJIT (the VM inside ngx_lua) unless it is up to date.
function _M.build_jit()
  must("make -s -C " .. q(_M.root) .. " build LUA_VERSION=jit")
  return _M.root .. "/build/jit"
end

--- Replaces @NAME@ placeholders; an unknown one is an error.
function _M.render(text, vars)
  return (text:gsub("@([%u%d_]+)@", function(k)
    local v = vars[k]
    if v == nil then error("template needs a value for @" .. k .. "@", 3) end
    return tostring(v)
  end))
end

--- Replaces the argument of a directive that must occur exactly once (for running the
-- example configuration itself with a test port, worker count or trust file).
function _M.set_directive(text, name, value)
  local n
  text, n = text:gsub("(\n%s*" .. name:gsub("_", "%%_") .. "%s+)[^;\n]+;", "%1" ..
    tostring(value):gsub("%%", "%%%%") .. ";")
  if n ~= 1 then error(("directive '%s' occurs %d times, expected once"):format(name, n), 2) end
  return text
end

local function random_port()
  local b1, b2 = core.random_bytes(2):byte(1, 2)
  return 20000 + (b1 * 256 + b2) % 12000   -- below Linux's ephemeral range (32768+)
end

local Nginx = {}
Nginx.__index = Nginx

--- Starts nginx. opts: conf (text with @PORT1@.. @PORTn@ and any opts.vars), ports (how
-- many free ports the conf needs, 1), env (variables for the workers; the conf must name
-- them with `env`), vars. Returns the running server; raises with nginx's log otherwise.
function _M.start(opts)
  _M.build_jit()
  local prefix = _M.tmpdir("nginx")
  -- workers run as nobody: they must be able to reach the modules they require lazily
  must("chmod 755 " .. q(prefix) .. " && mkdir -p " .. q(prefix .. "/logs") ..
    " && ln -s " .. q(_M.root .. "/lua") .. " " ..
    q(_M.root .. "/build") .. " " .. q(_M.root .. "/examples") .. " " .. q(prefix .. "/"))
  local envs = {}
  for k, v in pairs(opts.env or {}) do envs[#envs + 1] = k .. "=" .. q(v) end
  table.sort(envs)
  local last_err
  for _ = 1, 8 do
    local vars = { ROOT = _M.root, PREFIX = prefix, MODULES = _M.modules_dir }
    for k, v in pairs(opts.vars or {}) do vars[k] = v end
    local ports, used = {}, {}
    for i = 1, opts.ports or 1 do
      local p
      repeat p = random_port() until not used[p]
      used[p] = true
      ports[i] = p
      vars["PORT" .. i] = p
    end
    write(prefix .. "/nginx.conf", _M.render(opts.conf, vars))
    local ok, out = _M.sh("cd " .. q(prefix) .. " && env " .. table.concat(envs, " ") .. " " ..
      q(_M.nginx_bin) .. " -p " .. q(prefix) .. " -c nginx.conf")
    if ok then
      local self = setmetatable({ prefix = prefix, ports = ports, port = ports[1] }, Nginx)
      -- the master writes its pid file after detaching: wait for it
      for _ = 1, 200 do
        self.pid = tonumber(read(prefix .. "/logs/nginx.pid") or "")
        if self.pid then break end
        sleep_ms(25)
      end
      if not self.pid then
        error("nginx started but wrote no pid file:\n" .. self:log())
      end
      -- stops nginx should this process die without running the spec's teardown
      _M.sh(("(while kill -0 %d 2>/dev/null && [ -f %s ]; do sleep 1; done; " ..
        "[ -f %s ] && kill -TERM %d) >/dev/null 2>&1 &"):format(self_pid(),
        q(prefix .. "/logs/nginx.pid"), q(prefix .. "/logs/nginx.pid"), self.pid))
      return self
    end
    last_err = out .. (read(prefix .. "/logs/error.log") or "")
    if not last_err:find("Address already in use", 1, true) then break end
  end
  _M.sh("rm -rf " .. q(prefix))
  error("nginx did not start:\n" .. tostring(last_err), 2)
end

function Nginx:url(path, port)
  return ("http://127.0.0.1:%d%s"):format(port or self.port, path or "/")
end

--- nginx's error log so far.
function Nginx:log()
  return read(self.prefix .. "/logs/error.log") or "(no error log)"
end

--- Stops nginx (TERM, then KILL of its process group) and removes the prefix unless
-- keep is set or DDB_TEST_KEEP_STATE=1. Safe to call twice.
function Nginx:stop(keep)
  if self.pid then
    local pid = self.pid
    self.pid = nil
    _M.sh("kill -TERM " .. pid .. " 2>/dev/null")
    for _ = 1, 200 do
      if not pid_alive(pid) then break end
      sleep_ms(25)
    end
    if pid_alive(pid) then _M.sh("kill -KILL -- -" .. pid .. " 2>/dev/null") end
  end
  if self.prefix and not keep and os.getenv("DDB_TEST_KEEP_STATE") ~= "1" then
    _M.sh("rm -rf " .. q(self.prefix))
    self.prefix = nil
  end
end

--- Sends one HTTP request with curl: status, body.
function _M.http(method, url, body, timeout_s)
  local cmd = "curl -sS -o - -w '\\n%{http_code}' -X " .. method .. " --max-time " ..
    (timeout_s or 30) .. " " .. q(url)
  if body then cmd = cmd .. " -H 'Content-Type: application/json' --data-binary " .. q(body) end
  local ok, out = _M.sh(cmd)
  if not ok then return nil, out end
  local text, status = out:match("^(.*)\n(%d+)$")
  return tonumber(status), text
end

--- Many requests at once from one curl process: each url once, at most `parallel` in
-- flight. Returns the list of response bodies (one line each) and the elapsed ms.
function _M.parallel(method, urls, parallel, timeout_s)
  local list = _M.tmpdir("curl") .. "/urls"
  local lines = {}
  for i, u in ipairs(urls) do lines[i] = "url = " .. q(u):gsub("'", "\"") end
  write(list, table.concat(lines, "\n") .. "\n")
  local t0 = core.monotonic_ms()
  local out = must("curl -s --no-progress-meter --parallel --parallel-immediate " ..
    "--parallel-max " .. parallel .. " --max-time " .. (timeout_s or 60) .. " -X " .. method ..
    " -K " .. q(list))
  local elapsed = core.monotonic_ms() - t0
  _M.sh("rm -rf " .. q(list:gsub("/urls$", "")))
  local bodies = {}
  for line in out:gmatch("[^\n]+") do bodies[#bodies + 1] = line end
  return bodies, elapsed
end

--- Starts spec/support/nginx/oddserver.py; returns { port, url, stop }.
function _M.oddserver()
  local dir = _M.tmpdir("odd")
  local python = _M.root .. "/.venv/bin/python"
  if not read(python) then python = "python3" end
  local out = must(q(python) .. " " .. q(_M.support_dir .. "/oddserver.py") .. " " ..
    q(dir .. "/port") .. " >" .. q(dir .. "/log") .. " 2>&1 & echo $!")
  local pid = tonumber(out:match("%d+"))
  local port
  for _ = 1, 200 do
    port = tonumber(read(dir .. "/port") or "")
    if port then break end
    sleep_ms(25)
  end
  local srv = { pid = pid, port = port, dir = dir }
  function srv.stop()
    if srv.pid then
      _M.sh("kill -TERM " .. srv.pid .. " 2>/dev/null")
      srv.pid = nil
    end
    _M.sh("rm -rf " .. q(dir))
  end
  if not port then
    local log = read(dir .. "/log") or ""
    srv.stop()
    error("oddserver.py did not start:\n" .. log)
  end
  srv.url = "http://127.0.0.1:" .. port
  -- stop it too should this process die first
  _M.sh(("(while kill -0 %d 2>/dev/null && [ -d %s ]; do sleep 1; done; " ..
    "[ -d %s ] && kill -TERM %d) >/dev/null 2>&1 &"):format(self_pid(), q(dir), q(dir), pid))
  return srv
end

return _M
