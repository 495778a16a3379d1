-- LuaRocks: each `luarocks make` command of the README's Install section (Lua 5.4, LuaJIT,
-- OpenResty's LuaJIT) builds and installs the rock from a clean copy of the checkout (its
-- tracked and not-ignored files, no build products) into a temporary tree with only
-- Debian's packages present (argparse, the one rock it depends on, from a local rocks server
-- offering Debian's copy), and the installed copy works on its own: modules, the C core and
-- the ddb-optimistic command (bound to the interpreter it was built for), and inside nginx
-- with lua_package_path/cpath naming that tree alone.
-- DDB_TEST_ROCKSPEC picks another rockspec (e.g. a proposed one).
local helper = require "helper"

local q = helper.shell_quote
local install = require "support.install_commands"
local DEFAULT_ROCKSPEC = install.ROCKSPEC
local ROCKSPEC = os.getenv("DDB_TEST_ROCKSPEC") or DEFAULT_ROCKSPEC
local runner = require "support.nginx.runner"

-- The README's commands (spec/support/install_commands.lua), run as written plus --tree (and
-- the config file the LuaJIT one writes first); the last spec checks that the README still
-- says them, and docs_examples_spec that its install blocks say nothing else.
local CMD_54, LUAJIT_CONFIG, CMD_JIT, CMD_OPENRESTY =
  install.CMD_54, install.LUAJIT_CONFIG, install.CMD_JIT, install.CMD_OPENRESTY

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

-- A clean copy of the checkout in a fresh directory (readable by nginx's workers, which run
-- as nobody): { dir, src, home }.
local function clean_copy()
  local _, dir = sh("mktemp -d \"${TMPDIR:-/tmp}/ddb-rock.XXXXXX\"")
  dir = dir:gsub("%s+$", "")
  local code, out = sh("chmod 755 " .. q(dir) .. " && mkdir -p " .. q(dir .. "/src") .. " " ..
    q(dir .. "/home") .. " && git ls-files -z --cached --others --exclude-standard | " ..
    "xargs -0 cp --parents -t " .. q(dir .. "/src"))
  assert(code == 0, "copying the checkout failed: " .. out)
  if ROCKSPEC ~= DEFAULT_ROCKSPEC then
    -- luarocks wants the name to end in .rockspec: the other one takes the default's place
    code, out = sh("cp " .. q(ROCKSPEC) .. " " .. q(dir .. "/src/" .. DEFAULT_ROCKSPEC))
    assert(code == 0, out)
  end
  return { dir = dir, src = dir .. "/src", home = dir .. "/home" }
end

-- A local rocks server in the copy holding the rock's dependencies (argparse), since
-- luarocks.org is out of reach here: the file:// URL to give luarocks.
local function rocks_server(copy)
  local dir = copy.dir .. "/rocks"
  local code, out = sh("mkdir -p " .. q(dir) .. " && cp " ..
    q(copy.src .. "/spec/support/rocks/argparse-0.7.1-1.rockspec") .. " " .. q(dir) ..
    " && env HOME=" .. q(copy.home) .. " luarocks-admin make_manifest " .. q(dir))
  assert(code == 0, "making the local rocks server failed: " .. out)
  return "file://" .. dir
end

-- Runs one of the README's commands in the copy with --tree and --only-server (the local
-- rocks server) added after `luarocks`; HOME: no user configuration or cache of this
-- machine takes part.
local function build(copy, cmd, tree)
  cmd = cmd:gsub("luarocks ", "luarocks --tree=" .. q(tree) .. " --only-server=" ..
    q(rocks_server(copy)) .. " ", 1):gsub(" %-%-tree /opt/ddb", "")
  return sh("cd " .. q(copy.src) .. " && env HOME=" .. q(copy.home) .. " sh -c " .. q(cmd))
end

local function remove(copy)
  if copy and copy.dir:match("ddb%-rock") then sh("rm -rf " .. q(copy.dir)) end
end

-- Runs a command with the module paths pointing only at the tree (runtime "5.4" or "5.1").
local function in_tree(tree, runtime, cmd)
  local share = tree .. "/share/lua/" .. runtime
  return sh("cd / && env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 LUA_PATH=" ..
    q(share .. "/?.lua;" .. share .. "/?/init.lua") .. " LUA_CPATH=" ..
    q(tree .. "/lib/lua/" .. runtime .. "/?.so") ..
    " AWS_ACCESS_KEY_ID=" .. q(helper.access_key()) ..
    " AWS_SECRET_ACCESS_KEY=" .. q(helper.secret_key()) .. " AWS_REGION=" ..
    q(helper.region()) .. " " .. cmd)
end

-- Runs the installed launcher with no module path at all in the environment: it must set
-- them itself.
local function launcher(tree, args)
  return sh("cd / && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 " ..
    "-u LUA_INIT AWS_ACCESS_KEY_ID=" .. q(helper.access_key()) ..
    " AWS_SECRET_ACCESS_KEY=" .. q(helper.secret_key()) .. " AWS_REGION=" ..
    q(helper.region()) .. " " .. q(tree .. "/bin/ddb-optimistic") .. " " .. args)
end

-- Every module of the rockspec loads from the tree under lua, and with_item runs.
local function check_modules(copy, tree, runtime, lua)
  local server = helper.servers()[2]
  local tbl = helper.table_name("rock")
  helper.create_table(helper.client(server), tbl)
  local names = {}
  for name in pairs(read_rockspec(ROCKSPEC).build.modules) do names[#names + 1] = name end
  table.sort(names)
  local script = copy.dir .. "/use.lua"
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
  local code, out = in_tree(tree, runtime, lua .. " " .. q(script) .. " " ..
    table.concat(args, " "))
  assert(code == 0, out)
  assert.matches("installed copy works: n=2 version=2", out)
end

-- The installed command is bound to interpreter and runs get and update (whose script runs
-- in a child process of that interpreter) with no module path set.
local function check_command(tree, interpreter)
  local wrapper = assert(io.open(tree .. "/bin/ddb-optimistic")):read("*a")
  assert.truthy(wrapper:find("exec '" .. interpreter .. "' ", 1, true), wrapper)
  local code, out = launcher(tree, "--version")
  assert(code == 0, out)
  assert.matches("^ddb%-optimistic %d", out)
  local server = helper.servers()[2]
  local tbl = helper.table_name("rockcli")
  helper.create_table(helper.client(server), tbl)
  code, out = launcher(tree, "update --table " .. q(tbl) .. " --endpoint " .. q(server.url) ..
    " --key '{\"pk\":\"a\"}' --lua 'item.n = (item.n or 0) + 1'")
  assert(code == 0, out)
  assert.equal('{"n":1,"pk":"a","version":1}\n', out)
  code, out = launcher(tree, "delete --table " .. q(tbl) .. " --endpoint " .. q(server.url) ..
    " --key '{\"pk\":\"a\"}' --if-version 1")
  assert(code == 0, out)
  assert.equal("null\n", out)
end

describe("luarocks --lua-version 5.4 make (the README's command)", function()
  local copy, tree, build_code, build_out

  setup(function()
    copy = clean_copy()
    tree = copy.dir .. "/tree"
    build_code, build_out = build(copy, CMD_54, tree)
  end)

  teardown(function() remove(copy) end)

  it("builds and installs with only the packages present", function()
    assert(build_code == 0, "luarocks make failed:\n" .. build_out)
    assert.matches("is now installed in", build_out)
    assert.matches("%-I/usr/include/lua5%.4", build_out)
  end)

  it("installs a copy that works alone: every module loads from the tree and with_item runs",
    function()
      assert(build_code == 0, "luarocks make failed")
      check_modules(copy, tree, "5.4", "lua5.4")
    end)

  it("installs the ddb-optimistic command, bound to Lua 5.4, which runs from the tree",
    function()
      assert(build_code == 0, "luarocks make failed")
      check_command(tree, "/usr/bin/lua5.4")
    end)
end)

describe("luarocks --lua-version 5.1 make with LuaJIT's headers (the README's command)",
  function()
    local copy, tree, build_code, build_out

    setup(function()
      copy = clean_copy()
      tree = copy.dir .. "/tree"
      local code, out = sh("cd " .. q(copy.src) .. " && " .. LUAJIT_CONFIG)
      assert(code == 0, out)
      build_code, build_out = build(copy, CMD_JIT, tree)
    end)

    teardown(function() remove(copy) end)

    it("compiles against LuaJIT's headers", function()
      assert(build_code == 0, "luarocks make failed:\n" .. build_out)
      assert.matches("%-I/usr/include/luajit%-2%.1", build_out)
      assert.is_nil(build_out:find("-I/usr/include/lua5.1", 1, true), build_out)
    end)

    it("installs a copy that works alone under luajit", function()
      assert(build_code == 0, "luarocks make failed")
      check_modules(copy, tree, "5.1", "luajit")
    end)

    it("installs the ddb-optimistic command, bound to luajit", function()
      assert(build_code == 0, "luarocks make failed")
      check_command(tree, "/usr/bin/luajit")
    end)
  end)

describe("the rock in OpenResty's LuaJIT (nginx with libnginx-mod-http-lua)", function()
  local copy, tree, build_code, build_out, nginx

  setup(function()
    copy = clean_copy()
    tree = copy.dir .. "/tree"
    build_code, build_out = build(copy, CMD_OPENRESTY, tree)
  end)

  teardown(function()
    if nginx then nginx:stop() end
    remove(copy)
  end)

  it("runs with_item in a request, its modules from the tree lua_package_path/cpath name",
    function()
      assert(build_code == 0, "luarocks make failed:\n" .. build_out)
      local server = helper.servers()[2]
      local tbl = helper.table_name("rockngx")
      helper.create_table(helper.client(server), tbl)
      local share, lib = tree .. "/share/lua/5.1", tree .. "/lib/lua/5.1"
      nginx = runner.start{ conf = ([[
load_module @MODULES@/ndk_http_module.so;
load_module @MODULES@/ngx_http_lua_module.so;
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path logs/client_body;
    proxy_temp_path logs/proxy;
    fastcgi_temp_path logs/fastcgi;
    uwsgi_temp_path logs/uwsgi;
    scgi_temp_path logs/scgi;
    lua_package_path "%s/?.lua;%s/?/init.lua;;";
    lua_package_cpath "%s/?.so;;";
    server {
        listen 127.0.0.1:@PORT1@;
        location = /t {
            content_by_lua_block {
                local optimistic = require "ddb.optimistic"
                local store = assert(optimistic.new{ table = "@TABLE@", key = { "pk" },
                  endpoint = "@ENDPOINT@", region = "@REGION@", credentials = {
                  access_key_id = "@ACCESS_KEY@", secret_access_key = "@SECRET_KEY@" } })
                local item, err = store:with_item({ pk = "ngx" }, function(i)
                  i = i or { n = 0 }
                  i.n = i.n + 1
                  return i
                end)
                ngx.say(item and ("n=" .. item.n .. " transport=" .. store.client.transport.name ..
                  " core=" .. package.searchpath("ddb.core", package.cpath) .. " lua=" ..
                  package.searchpath("ddb.optimistic", package.path)) or tostring(err))
            }
        }
    }
}
]]):format(share, share, lib), vars = { TABLE = tbl, ENDPOINT = server.url,
        REGION = helper.region(), ACCESS_KEY = helper.access_key(),
        SECRET_KEY = helper.secret_key() } }
      for i = 1, 2 do
        local status, body = runner.http("GET", nginx:url("/t"))
        assert.equal(200, status, tostring(body) .. "\n" .. nginx:log())
        assert.equal(("n=%d transport=ngx core=%s/ddb/core.so lua=%s/ddb/optimistic.lua\n")
          :format(i, lib, share), body)
      end
    end)
end)

describe("the README's Install section", function()
  it("gives the commands these specs run", function()
    local f = assert(io.open(helper.root .. "README.md"))
    local readme = f:read("*a")
    f:close()
    for _, cmd in ipairs(install.ALL) do
      assert.truthy(readme:find(cmd, 1, true), cmd)
    end
  end)
end)
