-- LuaRocks: `luarocks make` builds and installs the rock from a clean copy of the checkout
-- (its tracked and not-ignored files, no build products) into a temporary tree with only
-- Debian's packages present, and the installed copy works on its own: modules, the C core
-- and the ddb-optimistic command, with the module paths pointing only at that tree.
-- DDB_TEST_ROCKSPEC picks another rockspec (e.g. a proposed one).
local helper = require "helper"

local q = helper.shell_quote
local DEFAULT_ROCKSPEC = "rockspec/ddb-optimistic-0.1.0-1.rockspec"
local ROCKSPEC = os.getenv("DDB_TEST_ROCKSPEC") or DEFAULT_ROCKSPEC
local LUA_VERSION = "5.4"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("exit=(%d+)%s*$"))
  return code, (out:gsub("exit=%d+%s*$", ""))
end

-- The rockspec is Lua that sets globals; read it without running anything else.
local function read_rockspec(path)
  local env = {}
  local chunk
  if setfenv then   -- luacheck: ignore 143 (Lua 5.1, LuaJIT)
    chunk = assert(loadfile(path))
    setfenv(chunk, env)   -- luacheck: ignore 143
  else
    chunk = assert(loadfile(path, "t", env))
  end
  chunk()
  return env
end

local function checkout_files(dirs)
  local _, out = sh("git ls-files --cached --others --exclude-standard -- " .. dirs)
  local files = {}
  for line in out:gmatch("[^\n]+") do files[#files + 1] = line end
  return files
end

describe("the rockspec", function()
  it("lists every Lua module and every C source of the checkout", function()
    local spec = read_rockspec(ROCKSPEC)
    local modules = spec.build.modules
    local listed_sources = {}
    for _, src in ipairs(modules["ddb.core"].sources) do listed_sources[src] = true end
    local listed_files = {}
    for name, file in pairs(modules) do
      if type(file) == "string" then listed_files[file] = name end
    end
    local missing = {}
    for _, f in ipairs(checkout_files("lua csrc")) do
      if f:match("^csrc/.*%.c$") and not listed_sources[f] then
        missing[#missing + 1] = f .. " (not in ddb.core's sources)"
      elseif f:match("^lua/.*%.lua$") then
        local name = f:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
        if listed_files[f] ~= name then
          missing[#missing + 1] = f .. " (not listed as module " .. name .. ")"
        end
      end
    end
    assert.same({}, missing)
  end)
end)

describe("luarocks make into a temporary tree", function()
  local tmp, tree, build_code, build_out

  setup(function()
    local _, dir = sh("mktemp -d \"${TMPDIR:-/tmp}/ddb-rock.XXXXXX\"")
    tmp = dir:gsub("%s+$", "")
    tree = tmp .. "/tree"
    -- a clean copy: what git tracks or would track, nothing built
    local code, out = sh("mkdir -p " .. q(tmp .. "/src") .. " " .. q(tmp .. "/home") ..
      " && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t " ..
      q(tmp .. "/src"))
    assert(code == 0, "copying the checkout failed: " .. out)
    if ROCKSPEC ~= DEFAULT_ROCKSPEC then
      -- luarocks wants the name to end in .rockspec: the other one takes the default's place
      code, out = sh("cp " .. q(ROCKSPEC) .. " " .. q(tmp .. "/src/" .. DEFAULT_ROCKSPEC))
      assert(code == 0, out)
    end
    -- HOME: no user configuration or cache of this machine takes part
    build_code, build_out = sh("cd " .. q(tmp .. "/src") .. " && env HOME=" ..
      q(tmp .. "/home") .. " luarocks --lua-version=" .. LUA_VERSION .. " --tree=" .. q(tree) ..
      " make " .. q(DEFAULT_ROCKSPEC))
  end)

  teardown(function()
    if tmp and tmp:match("ddb%-rock") then sh("rm -rf " .. q(tmp)) end
  end)

  -- Runs a command with the module paths pointing only at the tree.
  local function in_tree(cmd)
    local share = tree .. "/share/lua/" .. LUA_VERSION
    return sh("cd " .. q(tmp) .. " && env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 LUA_PATH=" ..
      q(share .. "/?.lua;" .. share ..
      "/?/init.lua") .. " LUA_CPATH=" .. q(tree .. "/lib/lua/" .. LUA_VERSION .. "/?.so") ..
      " AWS_ACCESS_KEY_ID=" .. q(helper.access_key()) ..
      " AWS_SECRET_ACCESS_KEY=" .. q(helper.secret_key()) .. " AWS_REGION=" ..
      q(helper.region()) .. " " .. cmd)
  end

  it("builds and installs with only the packages present", function()
    assert(build_code == 0, "luarocks make failed:\n" .. build_out)
    assert.matches("is now installed in", build_out)
  end)

  it("installs a copy that works alone: every module loads from the tree and with_item runs",
    function()
      assert(build_code == 0, "luarocks make failed")
      local server = helper.servers()[2]
      local tbl = helper.table_name("rock")
      helper.create_table(helper.client(server), tbl)
      local names = {}
      for name in pairs(read_rockspec(ROCKSPEC).build.modules) do names[#names + 1] = name end
      table.sort(names)
      local script = tmp .. "/use.lua"
      local f = assert(io.open(script, "w"))
      f:write([[
        local tree, endpoint, tbl = arg[1], arg[2], arg[3]
        for i = 4, #arg do
          local name = arg[i]
          local path = package.searchpath(name, package.path) or
            package.searchpath(name, package.cpath)
          assert(path and path:sub(1, #tree) == tree, name .. " is not in the tree: " ..
            tostring(path))
          require(name)
        end
        local optimistic = require "ddb.optimistic"
        local store = assert(optimistic.new{ table = tbl, endpoint = endpoint })
        for _ = 1, 2 do
          assert(store:with_item({ pk = "rock" }, function(item)
            item = item or { n = 0 }
            item.n = item.n + 1
            return item
          end))
        end
        local item = assert(store:get({ pk = "rock" }))
        print(("installed copy works: n=%d version=%d"):format(item.n, item.version))
      ]])
      f:close()
      local args = { q(tree), q(server.url), q(tbl) }
      for _, n in ipairs(names) do args[#args + 1] = q(n) end
      local code, out = in_tree("lua" .. LUA_VERSION .. " " .. q(script) .. " " ..
        table.concat(args, " "))
      assert(code == 0, out)
      assert.matches("installed copy works: n=2 version=2", out)
    end)

  it("installs the ddb-optimistic command, which runs from the tree", function()
    assert(build_code == 0, "luarocks make failed")
    local spec = read_rockspec(ROCKSPEC)
    local bin = spec.build.install and spec.build.install.bin
    if not (bin and bin["ddb-optimistic"]) then
      pending(ROCKSPEC .. " does not install bin/ddb-optimistic yet (build.install.bin)")
      return
    end
    local cmd = tree .. "/bin/ddb-optimistic"
    local code, out = in_tree(q(cmd) .. " --version")
    assert(code == 0, out)
    assert.matches("^ddb%-optimistic %d", out)
    local server = helper.servers()[2]
    local tbl = helper.table_name("rockcli")
    helper.create_table(helper.client(server), tbl)
    code, out = in_tree(q(cmd) .. " update --table " .. q(tbl) .. " --endpoint " ..
      q(server.url) .. " --key '{\"pk\":\"a\"}' --lua 'item.n = (item.n or 0) + 1'")
    assert(code == 0, out)
    assert.equal('{"n":1,"pk":"a","version":1}\n', out)
  end)
end)
