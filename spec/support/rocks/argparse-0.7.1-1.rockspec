-- luarocks_spec's stand-in for luarocks.org's argparse rock, which the specs cannot reach
-- (they run offline): Debian's lua-argparse file (spec/support/apt-packages.txt), served
-- from a local rocks server so that `luarocks make` resolves the dependency by itself.
package = "argparse"
version = "0.7.1-1"
source = {
  url = "file:///usr/share/lua/5.1/argparse.lua",
}
description = {
  summary = "Debian's lua-argparse, as a rock for the LuaRocks specs",
  license = "MIT",
}
dependencies = {
  "lua >= 5.1",
}
build = {
  type = "builtin",
  modules = { argparse = "argparse.lua" },
}
