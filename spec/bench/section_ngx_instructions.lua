--- lua5.4 spec/bench/run.lua ngx_instructions: userland instructions (callgrind) per with_item
-- of the nginx worker (master_process off, the bench-ngx handler) net of /noop, and of the
-- libcurl path's loop (LuaJIT, spec/bench/loop.lua), against one fixed-response server.
-- Unlike CPU time on a shared machine these repeat to within a percent, so a change to
-- either path shows; the kernel's share (system calls, the same count on both paths) is not
-- in them. BENCH_NGX_BASE=<dir>: a second source tree (built for jit) measured the same way.
local lib = require "bench.lib"
local ngx_section = require "bench.section_ngx"

local q, must, sh = lib.q, lib.must, lib.sh
local N = tonumber(os.getenv("BENCH_NGX_OPS") or "1000")

local _M = {}

local function total(file)
  local out = must("callgrind_annotate " .. q(file) .. " 2>/dev/null | grep -m1 'PROGRAM TOTALS'")
  return tonumber((assert(out:match("([%d,]+)"), "no totals in " .. file):gsub(",", "")))
end

-- n requests to path over one keep-alive connection (curl reuses it across URLs).
local function requests(url, n)
  local urls = {}
  for i = 1, n do urls[i] = q(url) end
  must("curl -s -o /dev/null " .. table.concat(urls, " "))
end

-- The worker's instructions per /op and per /noop for the tree at root.
local function nginx_side(root, upstream, tag)
  local prefix = lib.tmpdir("cg-" .. tag)
  must("mkdir -p " .. q(prefix .. "/logs") .. " && chmod -R a+rwX " .. q(prefix))
  local port = lib.random_port()
  local conf = ngx_section.CONF:gsub("@UPSTREAM@", upstream):gsub("@AK@", lib.ACCESS_KEY)
    :gsub("@SK@", lib.SECRET_KEY):gsub("@ROOT@", root):gsub("@PORT1@", tostring(port))
  lib.write(prefix .. "/nginx.conf", "master_process off;\ndaemon off;\n" .. conf)
  local out = prefix .. "/cg.out"
  must(("valgrind --tool=callgrind --callgrind-out-file=%s nginx -p %s -c %s > %s 2>&1 & " ..
    "echo $! > %s"):format(q(out), q(prefix), q(prefix .. "/nginx.conf"),
    q(prefix .. "/valgrind.log"), q(prefix .. "/vg.pid")))
  local pid = tonumber(lib.read(prefix .. "/vg.pid"))
  local url = "http://127.0.0.1:" .. port
  for _ = 1, 100 do
    if sh("curl -s -o /dev/null " .. q(url .. "/noop")) then break end
    lib.sleep_ms(300)
  end
  local ok, err = pcall(function()
    requests(url .. "/op", 300)   -- warm-up: LuaJIT's traces, the pools, the signing key
    must("callgrind_control -z " .. pid)
    requests(url .. "/op", N)
    must("callgrind_control -d op " .. pid)
    requests(url .. "/noop", N)
    must("callgrind_control -d noop " .. pid)
  end)
  lib.kill(pid)
  local op, noop
  if ok then
    ok, err = pcall(function() op, noop = total(out .. ".1"), total(out .. ".2") end)
  end
  if not ok then err = tostring(err) .. "\n" .. (lib.read(prefix .. "/valgrind.log") or "") end
  -- the worker's profiles are a few hundred KB a run; BENCH_KEEP=1 keeps them to read
  if os.getenv("BENCH_KEEP") ~= "1" then sh("rm -rf " .. q(prefix)) end
  if not ok then error(err, 0) end
  return { op = op / N, noop = noop / N, net = (op - noop) / N }
end

-- The libcurl loop's instructions per with_item: the difference of two runs, so that start-up
-- and warm-up cancel out.
local function curl_side(upstream)
  local counts = {}
  for _, n in ipairs({ 300, 300 + N }) do
    local file = lib.out .. "/cg-curl." .. n
    must(lib.lua_cmd_via("jit", "valgrind --tool=callgrind --callgrind-out-file=" .. q(file),
      lib.root .. "/spec/bench/loop.lua", upstream, n, "ops") .. " >/dev/null 2>&1")
    counts[n] = total(file)
  end
  return (counts[300 + N] - counts[300]) / N
end

function _M.run(ctx)
  local say = ctx.say
  if not sh("command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null") then
    ctx.results.ngx_instructions = { ok = false, reason = "valgrind is not installed" }
    return
  end
  ctx.build_tools()
  local fixed = lib.fixed_server()
  local ok, err = pcall(function()
    local r = { ok = true, ops = N }
    r.curl = curl_side(fixed:url())
    r.ngx = nginx_side(lib.root, fixed:url(), "ngx")
    r.ratio = r.ngx.net / r.curl
    say("  libcurl path (LuaJIT): %.0f instructions per with_item", r.curl)
    say("  inside nginx: %.0f per /op, %.0f per /noop, %.0f net per with_item: %.2fx the " ..
      "libcurl path", r.ngx.op, r.ngx.noop, r.ngx.net, r.ratio)
    local base = os.getenv("BENCH_NGX_BASE")
    if base and base ~= "" then
      r.base = nginx_side(base, fixed:url(), "ngx-base")
      r.base.root = base
      say("  inside nginx, %s: %.0f net per with_item: %.2fx the libcurl path", base,
        r.base.net, r.base.net / r.curl)
    end
    ctx.results.ngx_instructions = r
  end)
  fixed:stop()
  if not ok then
    ctx.results.ngx_instructions = { ok = false, reason = tostring(err):sub(1, 300) }
    error(err, 0)
  end
end

return _M
