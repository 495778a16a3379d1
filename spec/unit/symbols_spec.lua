-- The C core exports luaopen_ddb_core and nothing else, and every function its files share
-- carries the ddb_ prefix, so that a static embedding (examples/game-server) or a build
-- without -fvisibility=hidden (LuaRocks' builtin backend) clashes with nothing (issue 16.7).
local core_path = assert(package.searchpath("ddb.core", package.cpath), "ddb.core not built")

local sh = require("support.shell").sh   -- ok, output (stdout and stderr)

-- name -> true for the defined external symbols nm lists
local function defined(args)
  local ok, out = sh("nm " .. args)
  assert(ok, out)
  local names = {}
  for name in out:gmatch("%x+ [A-Z] ([%w_.@]+)") do names[#names + 1] = name end
  table.sort(names)
  return names
end

local function offenders(names, allowed)
  local bad = {}
  for _, name in ipairs(names) do
    if not allowed(name) then bad[#bad + 1] = name end
  end
  return bad
end

local function luaopen(name) return name:match("^luaopen_") ~= nil end
-- sanitizer runtimes add symbols of their own to an instrumented object
local function project(name) return name:match("^_") ~= nil end

describe("the C core's symbols", function()
  it("the built module exports only luaopen_*", function()
    local names = defined("-D --defined-only " .. core_path)
    assert.same({}, offenders(names, function(n) return luaopen(n) or project(n) end))
    assert.same({ "luaopen_ddb_core" }, offenders(names, function(n) return project(n) end))
  end)

  describe("built without -fvisibility=hidden, as LuaRocks builds it", function()
    local tmp, objs
    setup(function()
      tmp = os.tmpname()
      os.remove(tmp)
      assert(os.execute("mkdir -p " .. tmp))
      local inc = jit and "-I/usr/include/luajit-2.1" or
        "-I/usr/include/lua" .. _VERSION:match("%d+%.%d+")
      local ok, list = sh("ls csrc/*.c csrc/av/*.c")
      assert(ok, list)
      objs = {}
      for src in list:gmatch("%S+") do
        local obj = tmp .. "/" .. src:gsub("[/.]", "_") .. ".o"
        local built, out = sh(table.concat({ "cc -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -O0",
          inc, "-c", src, "-o", obj }, " "))
        assert(built, out)
        objs[#objs + 1] = obj
      end
    end)
    teardown(function() os.execute("rm -rf " .. tmp) end)

    it("every external function of every object is ddb_* or luaopen_*", function()
      local names = defined("-g --defined-only " .. table.concat(objs, " "))
      assert.is_true(#names > 50)
      assert.same({}, offenders(names, function(n)
        return luaopen(n) or n:match("^ddb_") ~= nil
      end))
    end)

    it("the shared object linked from them exports only luaopen_*", function()
      local so = tmp .. "/core.so"
      local ok, out = sh("cc -shared " .. table.concat(objs, " ") .. " -o " .. so ..
        " -lcurl -lcrypto -lz -lpthread")
      assert(ok, out)
      assert.same({ "luaopen_ddb_core" }, defined("-D --defined-only " .. so))
    end)
  end)
end)
