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

-- Builds spec/embed/<name>.c in a directory of its own for the block, and runs it with the
-- directory of ddb/core.so as a cpath pattern: ok, output.
local function host(name, libs)
  local h = {}
  setup(function()
    h.tmp = os.tmpname()
    os.remove(h.tmp)
    assert(os.execute("mkdir -p " .. h.tmp))
    h.exe = build_host(h.tmp, name, libs)
  end)
  teardown(function() os.execute("rm -rf " .. h.tmp) end)
  return function()
    return sh(h.exe .. " '" .. core_path:gsub("ddb/core%.so$", "?.so") .. "'")
  end
end

describe("a host that sets its own cJSON allocator", function()
  local run = host("cjson_host", "-lcjson")

  it("keeps it through encode, decode and the module's unloading, and frees its objects " ..
     "with it", function()
    local ok, out = run()
    assert(ok, out)
    assert.matches("^ok %d+ allocations", out)
  end)
end)

describe("a host that forks with the module loaded", function()
  local run = host("fork_host", "")

  it("never hands out a write token in the child that the parent also hands out, and " ..
     "forks cleanly once the module is unloaded", function()
    local ok, out = run()
    assert(ok, out)
    assert.matches("^ok 40 tokens on each side of 3 forks", out)
  end)
end)
