--- make bench-inflight: ddb.scheduler (libcurl multi) with 1, 8, 64 and 256 with_item calls
-- in flight from one Lua state, against the fixed-response server.
local lib = require "bench.lib"

local _M = {}
local LEVELS = { 1, 8, 64, 256 }

function _M.run(ctx)
  local results, say = ctx.results, ctx.say
  ctx.build_tools()
  local srv = lib.fixed_server()
  local ok, err = pcall(function()
    local out = {}
    for _, rt in ipairs({ "5.4", "jit" }) do
      out[rt] = {}
      for _, n in ipairs(LEVELS) do
        local runs = {}
        for r = 1, math.min(ctx.repeat_count, 3) do
          runs[r] = ctx.run_json(lib.lua_cmd(rt, lib.dir .. "/inflight.lua", srv:url(),
            ctx.seconds, n))
        end
        local med = ctx.pick_median(runs, "cpu_us_per_op")
        out[rt][tostring(n)] = { median = med, runs = runs }
        say("  %-4s %3d in flight: %7.0f ops/s, %6.1f us CPU/op, %d failures, VmRSS %d KiB", rt,
          n, med.ops_per_s, med.cpu_us_per_op, med.failures, med.rss_kb)
      end
    end
    results.inflight = out
  end)
  srv:stop()
  if not ok then error(err, 0) end
end

function _M.table(results, add)
  local r = results.inflight
  if not r then return end
  add("")
  add("4. Many in flight: ddb.scheduler (libcurl multi), one Lua state, fixed-response server")
  add("| in flight | Lua 5.4 ops/s | Lua 5.4 CPU/op (us) | LuaJIT ops/s | LuaJIT CPU/op (us) |")
  add("|---:|---:|---:|---:|---:|")
  for _, n in ipairs(LEVELS) do
    local a = r["5.4"] and r["5.4"][tostring(n)]
    local b = r.jit and r.jit[tostring(n)]
    local function f(x, field, fmt) return x and (fmt):format(x.median[field]) or "-" end
    add(("| %d | %s | %s | %s | %s |"):format(n, f(a, "ops_per_s", "%.0f"),
      f(a, "cpu_us_per_op", "%.1f"), f(b, "ops_per_s", "%.0f"), f(b, "cpu_us_per_op", "%.1f")))
  end
end

return _M
