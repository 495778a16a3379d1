--- ddb.runtime: what the Lua state runs in, asked in one place: whether ngx_lua is there
-- (and with cosockets), where the default log goes, and how to wait (the transport's sleep,
-- which yields under cosockets and coroutine hosts, else the C core's blocking one).
-- @module ddb.runtime

local core = require "ddb.core"

local type, rawget = type, rawget
local _G = _G
local io_stderr = io.stderr

local _M = {}

--- The ngx table when running under ngx_lua (it has `get_phase`), else nil.
-- @return ngx | nil
function _M.ngx()
  local ngx = rawget(_G, "ngx")
  return type(ngx) == "table" and type(ngx.get_phase) == "function" and ngx or nil
end

--- Whether ngx_lua's cosockets are there (ngx.socket), so that the default transport is
-- theirs.
-- @return boolean
function _M.cosockets()
  local ngx = _M.ngx()
  return ngx ~= nil and type(ngx.socket) == "table"
end

--- The default log: nginx's error log (WARN for "warn", else INFO) when there is one, else
-- stderr; every line starts with "ddb: ".
-- @param level "warn" or "info"
-- @param message the text
function _M.log(level, message)
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and ngx.log then
    ngx.log(level == "warn" and ngx.WARN or ngx.INFO, "ddb: ", message)
  else
    io_stderr:write("ddb: ", level, ": ", message, "\n")
  end
end

--- Waits ms milliseconds with the transport's sleep, or the C core's when it has none.
-- @param transport a transport, or nil
-- @param ms milliseconds
function _M.sleep(transport, ms)
  if transport and transport.sleep then return transport:sleep(ms) end
  return core.sleep_ms(ms)
end

return _M
