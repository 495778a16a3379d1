--- make bench-ngx: the module inside nginx (ngx_lua, cosockets): each request to /op runs
-- one with_item against the fixed-response server; wrk -t1 -c1 drives it. Client CPU is
-- the nginx worker's (user + system from /proc), measured again on /noop (the same
-- request answered without a DynamoDB call) to take out what the inbound request costs.
-- Each round also runs the libcurl path's loop (LuaJIT, spec/bench/loop.lua) against the same
-- server, so that the ratio of the two (target: at most 1.2x) comes from the same minutes.
-- BENCH_NGX_BASE=<dir>: a second source tree (built for jit) in its own nginx, driven in every
-- round beside this one, for a before/after from the same minutes. BENCH_NGX_ROUNDS: rounds
-- (default: BENCH_REPEAT, at most 3).
local lib = require "bench.lib"

local _M = {}

local CONF = [[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path logs/body;
    proxy_temp_path logs/proxy;
    fastcgi_temp_path logs/fastcgi;
    uwsgi_temp_path logs/uwsgi;
    scgi_temp_path logs/scgi;
    keepalive_requests 100000000;
    lua_package_path "@ROOT@/lua/?.lua;@ROOT@/lua/?/init.lua;;";
    lua_package_cpath "@ROOT@/build/jit/?.so;;";
    server {
        listen 127.0.0.1:@PORT1@;
        location = /op {
            content_by_lua_block {
                local store = package.loaded.bench_store
                if not store then
                    store = assert(require("ddb.optimistic").new{ table = "bench",
                        key = { "pk" }, region = "us-east-1", endpoint = "@UPSTREAM@",
                        transport = "ngx",
                        credentials = { access_key_id = "@AK@", secret_access_key = "@SK@" } })
                    package.loaded.bench_store = store
                end
                local item, err = store:with_item({ pk = "bench#1" }, function(it)
                    it.counter = it.counter + 1
                    return it
                end)
                if not item then
                    ngx.status = 500
                    ngx.say(tostring(err))
                    return
                end
                ngx.say("ok")
            }
        }
        location = /noop { content_by_lua_block { ngx.say("ok") } }
    }
}
]]

local function drive(srv, path, seconds)
  local c0 = srv:worker_cpu()
  local out = lib.must("wrk -t1 -c1 -d" .. seconds .. "s " .. srv:url() .. path)
  local cpu = srv:worker_cpu() - c0
  local n = tonumber(out:match("(%d+) requests in"))
  local rps = tonumber(out:match("Requests/sec:%s*([%d%.]+)"))
  local non2xx = tonumber(out:match("Non%-2xx or 3xx responses:%s*(%d+)")) or 0
  return { requests = n, per_s = rps, cpu_s = cpu, cpu_us = cpu / n * 1e6, errors = non2xx }
end

_M.CONF = CONF   -- for profiling by hand (perf record -p on the worker)

function _M.run(ctx)
  local results, say = ctx.results, ctx.say
  if not lib.read("/usr/lib/nginx/modules/ngx_http_lua_module.so") then
    results.ngx = { ok = false, reason = "ngx_http_lua_module is not installed" }
    return
  end
  if not lib.read(lib.root .. "/lua/ddb/transport/ngx.lua") then
    results.ngx = { ok = false, reason = "lua/ddb/transport/ngx.lua is not there yet" }
    return
  end
  ctx.build_tools()
  local fixed = lib.fixed_server()
  local srv, base
  local base_root = os.getenv("BENCH_NGX_BASE")
  local ok, err = pcall(function()
    local conf = CONF:gsub("@UPSTREAM@", fixed:url()):gsub("@AK@", lib.ACCESS_KEY)
      :gsub("@SK@", lib.SECRET_KEY)
    srv = lib.nginx(conf, 1, "ngx")
    if base_root and base_root ~= "" then
      base = lib.nginx((conf:gsub("@ROOT@", base_root)), 1, "ngx-base")
    end
    for _, s in ipairs({ srv, base }) do
      local okc, body = lib.sh("curl -s " .. s:url() .. "/op")
      if not okc or not body:find("^ok") then
        error("the /op handler failed: " .. tostring(body) .. "\n" .. s:log(), 0)
      end
      lib.must("wrk -t1 -c1 -d1s " .. s:url() .. "/op")   -- warm-up (LuaJIT traces)
    end
    local runs = {}
    local rounds = tonumber(os.getenv("BENCH_NGX_ROUNDS") or "") or math.min(ctx.repeat_count, 3)
    for r = 1, rounds do
      local b
      if base then
        local bop = drive(base, "/op", ctx.seconds)
        local bnoop = drive(base, "/noop", math.max(2, ctx.seconds // 2))
        b = { cpu_us_per_op = bop.cpu_us, noop_cpu_us = bnoop.cpu_us, ops_per_s = bop.per_s,
          net_cpu_us_per_op = bop.cpu_us - bnoop.cpu_us }
      end
      local op = drive(srv, "/op", ctx.seconds)
      local noop = drive(srv, "/noop", math.max(2, ctx.seconds // 2))
      if op.errors > 0 then error(op.errors .. " /op requests failed:\n" .. srv:log(), 0) end
      local curl = ctx.run_json(lib.lua_cmd("jit", lib.root .. "/spec/bench/loop.lua",
        fixed:url(), ctx.seconds))
      local net = op.cpu_us - noop.cpu_us
      runs[r] = { ops_per_s = op.per_s, cpu_us_per_op = op.cpu_us, noop_cpu_us = noop.cpu_us,
        net_cpu_us_per_op = net, noop_per_s = noop.per_s,
        curl_cpu_us_per_op = curl.cpu_us_per_op, ratio_to_curl = net / curl.cpu_us_per_op,
        base = b, loadavg = lib.loadavg() }
      say("  run %d/%d: %.0f with_item/s, worker CPU %.1f us per request (%.1f for /noop; " ..
        "%.1f net); libcurl path (LuaJIT) %.1f us: %.2fx", r, rounds, op.per_s, op.cpu_us,
        noop.cpu_us, net, curl.cpu_us_per_op, net / curl.cpu_us_per_op)
      if b then
        say("           %s: %.0f with_item/s, %.1f us (%.1f for /noop; %.1f net): %.2fx",
          base_root, b.ops_per_s, b.cpu_us_per_op, b.noop_cpu_us, b.net_cpu_us_per_op,
          b.net_cpu_us_per_op / curl.cpu_us_per_op)
      end
    end
    local med = {}
    for k, v in pairs(ctx.pick_median(runs, "ratio_to_curl")) do med[k] = v end
    med.ok = true
    med.runs = runs
    results.ngx = med
  end)
  if srv then srv:stop() end
  if base then base:stop() end
  fixed:stop()
  if not ok then
    results.ngx = { ok = false, reason = tostring(err):sub(1, 300) }
    error(err, 0)
  end
end

return _M
