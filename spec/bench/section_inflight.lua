--- make bench-inflight: ddb.scheduler with 1, 8, 64 and 256 with_item calls in flight from one
-- Lua state, against the fixed-response server. Each round also runs the single-call libcurl
-- path (spec/bench/loop.lua, one blocking client) on the same runtime, so that the ratio of
-- the scheduler's CPU per operation to it (issue 18.2: at most 1.2x) comes from the same
-- minutes; the ratio given is the median of the rounds' ratios.
-- BENCH_INFLIGHT_BASE=<dir>: a second source tree (built for 5.4 and jit) run at every level
-- in every round beside this one, for a before/after from the same minutes.
-- BENCH_INFLIGHT_ROUNDS: rounds (default: BENCH_REPEAT, at most 3).
local lib = require "bench.lib"

local _M = {}
local LEVELS = { 1, 8, 64, 256 }
local RUNTIMES = { "5.4", "jit" }

local function median_of(list)
  local t = {}
  for i, v in ipairs(list) do t[i] = v end
  return lib.median(t)
end

-- { runs = {...}, cpu = median CPU/op, ops = median ops/s, ratio = median of per-round
-- ratios to the single-call path }
local function summarise(runs, single_runs)
  local cpu, ops, ratio, failures = {}, {}, {}, 0
  for r, d in ipairs(runs) do
    cpu[r], ops[r] = d.cpu_us_per_op, d.ops_per_s
    if single_runs then ratio[r] = d.cpu_us_per_op / single_runs[r].cpu_us_per_op end
    failures = failures + (d.failures or 0)
  end
  return { runs = runs, cpu_us_per_op = median_of(cpu), ops_per_s = median_of(ops),
    ratio = single_runs and median_of(ratio) or nil, failures = failures }
end

function _M.run(ctx)
  local results, say = ctx.results, ctx.say
  ctx.build_tools()
  local base = os.getenv("BENCH_INFLIGHT_BASE")
  if base == "" then base = nil end
  local rounds = tonumber(os.getenv("BENCH_INFLIGHT_ROUNDS") or "") or
    math.min(ctx.repeat_count, 3)
  local srv = lib.fixed_server()
  local ok, err = pcall(function()
    local url = srv:url()
    local raw = {}   -- raw[rt].single, raw[rt].this[n], raw[rt].base[n]: lists of runs
    for _, rt in ipairs(RUNTIMES) do raw[rt] = { single = {}, this = {}, base = {} } end
    for r = 1, rounds do
      for _, rt in ipairs(RUNTIMES) do
        local R = raw[rt]
        local s = ctx.run_json(lib.lua_cmd(rt, lib.dir .. "/loop.lua", url, ctx.seconds))
        R.single[r] = s
        say("  round %d/%d %-4s single call      : %7.0f ops/s, %6.1f us CPU/op", r, rounds, rt,
          s.ops_per_s, s.cpu_us_per_op)
        for _, n in ipairs(LEVELS) do
          local d = ctx.run_json(lib.lua_cmd(rt, lib.dir .. "/inflight.lua", url, ctx.seconds, n))
          R.this[n] = R.this[n] or {}
          R.this[n][r] = d
          say("  round %d/%d %-4s %3d in flight    : %7.0f ops/s, %6.1f us CPU/op (%.2fx), " ..
            "%d failures, VmRSS %d KiB", r, rounds, rt, n, d.ops_per_s, d.cpu_us_per_op,
            d.cpu_us_per_op / s.cpu_us_per_op, d.failures, d.rss_kb)
          if base then
            local b = ctx.run_json(lib.lua_cmd_in(base, rt, nil, base .. "/spec/bench/inflight.lua",
              url, ctx.seconds, n))
            R.base[n] = R.base[n] or {}
            R.base[n][r] = b
            say("  round %d/%d %-4s %3d in flight, base: %7.0f ops/s, %6.1f us CPU/op (%.2fx)", r,
              rounds, rt, n, b.ops_per_s, b.cpu_us_per_op, b.cpu_us_per_op / s.cpu_us_per_op)
          end
        end
      end
    end
    local out = { rounds = rounds, seconds = ctx.seconds, base = base }
    for _, rt in ipairs(RUNTIMES) do
      local R = raw[rt]
      local o = { single = summarise(R.single) }
      for _, n in ipairs(LEVELS) do
        o[tostring(n)] = summarise(R.this[n], R.single)
        if base then o["base_" .. n] = summarise(R.base[n], R.single) end
      end
      out[rt] = o
    end
    results.inflight = out
  end)
  srv:stop()
  if not ok then error(err, 0) end
end

function _M.table(results, add)
  local r = results.inflight
  if not r or not r.rounds then return end
  add("")
  add(("4. Many in flight: ddb.scheduler, one Lua state, fixed-response server (medians of %d " ..
    "rounds; x: CPU per op over the single-call libcurl path's, median of the rounds' ratios)")
    :format(r.rounds))
  for _, rt in ipairs(RUNTIMES) do
    local o = r[rt]
    if o then
      add("")
      add(("%s: single-call libcurl path %.0f ops/s, %.1f us CPU/op"):format(
        rt == "jit" and "LuaJIT" or "Lua 5.4", o.single.ops_per_s, o.single.cpu_us_per_op))
      if r.base then
        add("| in flight | base ops/s | base CPU/op (us) | base x | ops/s | CPU/op (us) | x |")
        add("|---:|---:|---:|---:|---:|---:|---:|")
      else
        add("| in flight | ops/s | CPU/op (us) | x |")
        add("|---:|---:|---:|---:|")
      end
      for _, n in ipairs(LEVELS) do
        local a = o[tostring(n)]
        local cells = ("%.0f | %.1f | %.2fx"):format(a.ops_per_s, a.cpu_us_per_op, a.ratio)
        if r.base then
          local b = o["base_" .. n]
          cells = ("%.0f | %.1f | %.2fx | "):format(b.ops_per_s, b.cpu_us_per_op, b.ratio) .. cells
        end
        add(("| %d | %s |"):format(n, cells))
      end
    end
  end
end

return _M
