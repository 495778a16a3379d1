--- The README's Install commands, in one place: luarocks_spec.lua runs each of them (into a
-- temporary tree), and docs_examples_spec.lua checks that the README's install blocks hold
-- nothing else.
local _M = {}

_M.ROCKSPEC = "rockspec/ddb-optimistic-0.1.0-1.rockspec"

_M.CMD_54 = "luarocks --lua-version 5.4 make " .. _M.ROCKSPEC
_M.LUAJIT_CONFIG = [[printf 'lua_interpreter = "luajit"\nvariables = { LUA_INCDIR = ]] ..
  [["/usr/include/luajit-2.1" }\n' > luajit.lua]]
_M.CMD_JIT = "LUAROCKS_CONFIG=luajit.lua luarocks --lua-version 5.1 make " .. _M.ROCKSPEC
_M.CMD_OPENRESTY = "luarocks --lua-version 5.1 --tree /opt/ddb make " .. _M.ROCKSPEC ..
  " LUA_INCDIR=/usr/include/luajit-2.1"
_M.NGINX_PATH =
  'lua_package_path "/opt/ddb/share/lua/5.1/?.lua;/opt/ddb/share/lua/5.1/?/init.lua;;";'
_M.NGINX_CPATH = 'lua_package_cpath "/opt/ddb/lib/lua/5.1/?.so;;";'

--- Every line above, in the README's order.
_M.ALL = { _M.CMD_54, _M.LUAJIT_CONFIG, _M.CMD_JIT, _M.CMD_OPENRESTY, _M.NGINX_PATH,
  _M.NGINX_CPATH }

return _M
