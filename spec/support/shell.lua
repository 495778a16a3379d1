--- Shell and file helpers shared by the nginx runner of the integration specs and the
-- benchmark scripts: quoting, running a command, files, throwaway directories.
local _M = {}

--- s quoted for /bin/sh.
function _M.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Runs a shell command; returns ok, its output (stdout and stderr), exit code.
function _M.sh(cmd)
  local p = io.popen("(" .. cmd .. ") 2>&1; echo \"__rc=$?\"")
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)%s*$"))
  out = out:gsub("__rc=%d+%s*$", "")
  return rc == 0, out, rc
end

--- Runs a shell command that must succeed; returns its output.
function _M.must(cmd)
  local ok, out = _M.sh(cmd)
  if not ok then error("command failed: " .. cmd .. "\n" .. out, 2) end
  return out
end

function _M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

function _M.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

--- A new directory under $TMPDIR (or /tmp) named prefix.XXXXXX.
function _M.tmpdir(prefix)
  return (_M.must("mktemp -d \"${TMPDIR:-/tmp}/" .. prefix .. ".XXXXXX\""):gsub("%s+$", ""))
end

--- The absolute directory of the calling script.
function _M.script_dir()
  local src = debug.getinfo(2, "S").source:gsub("^@", "")
  local dir = src:match("^(.*)/[^/]*$") or "."
  if dir:sub(1, 1) ~= "/" then
    local p = io.popen("pwd")
    dir = p:read("*l") .. "/" .. dir
    p:close()
  end
  return dir
end

return _M
