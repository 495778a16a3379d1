-- Runs the simulator from the command line (make sim SEEDS=N):
--   lua spec/sim/run.lua [--seeds N] [--start S] [--scenario NAME] [--seconds T]
--                        [--idempotent on|off]
--   lua spec/sim/run.lua --seed S --trace      one seed, its event trace printed
-- Exits 1 when a seed breaks a promise, printing the seed and how to replay it.
local sim = require "sim.sim"

local opts = { seeds = 200, start = 1 }
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--seeds" then opts.seeds = tonumber(arg[i + 1]); i = i + 1
  elseif a == "--start" then opts.start = tonumber(arg[i + 1]); i = i + 1
  elseif a == "--seed" then opts.seed = tonumber(arg[i + 1]); i = i + 1
  elseif a == "--scenario" then opts.scenario = arg[i + 1]; i = i + 1
  elseif a == "--seconds" then opts.seconds = tonumber(arg[i + 1]); i = i + 1
  elseif a == "--trace" then opts.trace = true
  elseif a == "--idempotent" then opts.idempotent = arg[i + 1] == "on"; i = i + 1
  else
    io.stderr:write("run.lua: unknown argument " .. a .. "\n")
    os.exit(2)
  end
  i = i + 1
end

local function summary(results)
  local t = { seeds = 0, calls = 0, unknown = 0, unknown_landed = 0, bad = 0, fired = 0,
    codes = {}, aba = 0, scen = {} }
  for _, r in ipairs(results) do
    t.seeds = t.seeds + 1
    t.calls = t.calls + r.calls
    t.unknown = t.unknown + r.stats.unknown
    t.unknown_landed = t.unknown_landed + r.stats.unknown_landed
    t.aba = t.aba + r.stats.aba_without_history
    t.scen[r.scenario] = (t.scen[r.scenario] or 0) + 1
    t.per = t.per or {}
    local p = t.per[r.scenario] or { calls = 0, unknown = 0 }
    p.calls, p.unknown = p.calls + r.calls, p.unknown + r.stats.unknown
    t.per[r.scenario] = p
    if #r.violations > 0 then t.bad = t.bad + 1 end
    for _, n in pairs(r.fired) do t.fired = t.fired + n end
    for c, n in pairs(r.stats.codes) do t.codes[c] = (t.codes[c] or 0) + n end
  end
  return t
end

if opts.seed then
  local r = sim.run(opts.seed, { trace = opts.trace, scenario = opts.scenario })
  if opts.trace then print(table.concat(r.trace, "\n")) end
  print(("seed %d (%s): %d calls, %d violations"):format(r.seed, r.scenario, r.calls,
    #r.violations))
  for _, v in ipairs(r.violations) do print("  " .. v) end
  os.exit(#r.violations == 0 and 0 or 1)
end

local results, failed = {}, nil
local clock = os.clock
local t0 = clock()
for seed = opts.start, opts.start + opts.seeds - 1 do
  local r = sim.run(seed, { scenario = opts.scenario, idempotent = opts.idempotent })
  results[#results + 1] = r
  if #r.violations > 0 then
    failed = r
    break
  end
  if opts.seconds and clock() - t0 > opts.seconds then break end
end
local t = summary(results)
local codes = {}
for c, n in pairs(t.codes) do codes[#codes + 1] = c .. "=" .. n end
table.sort(codes)
local scen = {}
for c, n in pairs(t.scen) do scen[#scen + 1] = c .. "=" .. n end
table.sort(scen)
print(("%d seeds (%s), %d calls, %d faults injected, %.1f s; OutcomeUnknown %d (%d of them " ..
  "landed); failures %s; ABA on items without history %d"):format(t.seeds,
  table.concat(scen, " "), t.calls, t.fired, clock() - t0, t.unknown, t.unknown_landed,
  #codes > 0 and table.concat(codes, " ") or "none", t.aba))
local per = {}
for name, p in pairs(t.per or {}) do
  per[#per + 1] = ("%s %d/%d (%.1f%%)"):format(name, p.unknown, p.calls, 100 * p.unknown / p.calls)
end
table.sort(per)
print("OutcomeUnknown per scenario: " .. table.concat(per, ", "))
if failed then
  print(("seed %d (%s) broke a promise:"):format(failed.seed, failed.scenario))
  for _, v in ipairs(failed.violations) do print("  " .. v) end
  print(("replay: lua spec/sim/run.lua --seed %d --trace"):format(failed.seed))
  os.exit(1)
end
