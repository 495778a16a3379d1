-- ddb.core inside host programs: one that has its own uses for the libraries it links (the
-- module leaves their process-wide state to the host, issue 16.2), one that forks (as nginx
-- does after loading the module). Each host is a small C program (spec/embed/) compiled here
-- for the runtime that runs busted.
local core_path = assert(package.searchpath("ddb.core", package.cpath), "ddb.core not built")
-- the sanitized builds (make asan) need a host with the same runtime
local sanitized = core_path:find("/asan%-") ~= nil

local sh = require("support.shell").sh   -- ok, output (stdout and stderr)

local function build_host(tmp, name, libs)
  local inc, lib
  if jit then
    inc, lib = "-I/usr/include/luajit-2.1", "-lluajit-5.1"
  else
    local v = _VERSION:match("%d+%.%d+")
    inc, lib = "-I/usr/include/lua" .. v, "-llua" .. v
  end
  local cc = sanitized and "gcc -fsanitize=address,undefined -fno-omit-frame-pointer" or "cc"
  local exe = tmp .. "/" .. name
  local ok, out = sh(table.concat({ cc, "-std=c99 -Wall -Wextra -Werror -O1 -g", inc,
    "spec/embed/" .. name .. ".c -o", exe, "-Wl,-E", lib, libs, "-lm -ldl" }, " "))
  assert(ok, out)
  return exe
end

describe("a host that sets its own cJSON allocator", function()
  local tmp, exe
  setup(function()
    tmp = os.tmpname()
    os.remove(tmp)
    assert(os.execute("mkdir -p " .. tmp))
    exe = build_host(tmp, "cjson_host", "-lcjson")
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

describe("a host that forks with the module loaded", function()
  local tmp, exe
  setup(function()
    tmp = os.tmpname()
    os.remove(tmp)
    assert(os.execute("mkdir -p " .. tmp))
    exe = build_host(tmp, "fork_host", "")
  end)
  teardown(function() os.execute("rm -rf " .. tmp) end)

  it("never hands out a write token in the child that the parent also hands out, and " ..
     "forks cleanly once the module is unloaded", function()
    local pattern = core_path:gsub("ddb/core%.so$", "?.so")
    local ok, out = sh(exe .. " '" .. pattern .. "'")
    assert(ok, out)
    assert.matches("^ok 40 tokens on each side of 3 forks", out)
  end)
end)
