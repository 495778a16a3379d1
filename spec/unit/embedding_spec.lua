-- ddb.core inside a host program that has its own uses for the libraries it links: the
-- module leaves their process-wide state to the host (issue 16.2). The host is a small C
-- program (spec/embed/cjson_host.c) compiled here for the runtime that runs busted.
local core_path = assert(package.searchpath("ddb.core", package.cpath), "ddb.core not built")
-- the sanitized builds (make asan) need a host with the same runtime
local sanitized = core_path:find("/asan%-") ~= nil

local sh = require("support.shell").sh   -- ok, output (stdout and stderr)

local function build_host(tmp)
  local inc, lib
  if jit then
    inc, lib = "-I/usr/include/luajit-2.1", "-lluajit-5.1"
  else
    local v = _VERSION:match("%d+%.%d+")
    inc, lib = "-I/usr/include/lua" .. v, "-llua" .. v
  end
  local cc = sanitized and "gcc -fsanitize=address,undefined -fno-omit-frame-pointer" or "cc"
  local exe = tmp .. "/cjson_host"
  local ok, out = sh(table.concat({ cc, "-std=c99 -Wall -Wextra -Werror -O1 -g", inc,
    "spec/embed/cjson_host.c -o", exe, "-Wl,-E", lib, "-lcjson -lm -ldl" }, " "))
  assert(ok, out)
  return exe
end

describe("a host that sets its own cJSON allocator", function()
  local tmp, exe
  setup(function()
    tmp = os.tmpname()
    os.remove(tmp)
    assert(os.execute("mkdir -p " .. tmp))
    exe = build_host(tmp)
  end)
  teardown(function() os.execute("rm -rf " .. tmp) end)

  it("keeps it through encode, decode and the module's unloading, and frees its objects " ..
     "with it", function()
    -- the directory of ddb/core.so, as a cpath pattern
    local pattern = core_path:gsub("ddb/core%.so$", "?.so")
    local ok, out = sh(exe .. " '" .. pattern .. "'")
    assert(ok, out)
    assert.matches("^ok %d+ allocations", out)
  end)
end)
