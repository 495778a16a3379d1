-- The deterministic simulator (spec/sim) in the test suite: a batch of seeds, each a
-- scenario of concurrent writers, deleters, re-creators and other SDKs' writers under
-- network faults, checked against the model's ground truth; and the proof that it catches
-- known-bad rules. `make sim SEEDS=N` runs as many seeds as you like.
local sim = require "sim.sim"
local mutants = require "sim.mutants"

local SEEDS = tonumber(os.getenv("DDB_SIM_SEEDS") or "1500")

local function say(fmt, ...)
  io.stdout:write("\n    ", fmt:format(...))
  io.stdout:flush()
end

describe("the simulator", function()
  it("replays a seed exactly", function()
    for _, seed in ipairs({ 3, 296, 1234 }) do
      local a = sim.run(seed, { trace = true })
      local b = sim.run(seed, { trace = true })
      assert.is_true(#a.trace > 50, "a trace of a few events at least")
      assert.equal(table.concat(a.trace, "\n"), table.concat(b.trace, "\n"))
    end
  end)

  it("finds no broken promise in " .. SEEDS .. " seeds of every scenario", function()
    local totals = { calls = 0, unknown = 0, landed = 0, resent_ok = 0, fired = 0, scen = {},
      twice = 0, aba = 0 }
    for seed = 1, SEEDS do
      local r = sim.run(seed)
      if #r.violations > 0 then
        error(("seed %d (%s) broke a promise: %s\nreplay: lua spec/sim/run.lua --seed %d " ..
          "--trace"):format(seed, r.scenario, table.concat(r.violations, "; "), seed), 0)
      end
      assert.is_falsy(r.truncated, "seed " .. seed .. " ran out of virtual time")
      totals.calls = totals.calls + r.calls
      totals.unknown = totals.unknown + r.stats.unknown
      totals.landed = totals.landed + r.stats.unknown_landed
      totals.resent_ok = totals.resent_ok + r.stats.resent_ok
      totals.twice = totals.twice + r.stats.duplicated_twice
      totals.aba = totals.aba + r.stats.aba_without_history
      totals.scen[r.scenario] = (totals.scen[r.scenario] or 0) + 1
      for _, n in pairs(r.fired) do totals.fired = totals.fired + n end
    end
    -- the batch exercised what it is meant to: every scenario, faults, lost answers settled
    -- by sending the same commit again, and honest unknowns
    for _, name in ipairs(sim.SCENARIO_NAMES) do
      assert.is_true((totals.scen[name] or 0) >= SEEDS / 10, name)
    end
    assert.is_true(totals.fired > SEEDS * 5)
    assert.is_true(totals.resent_ok > 0)
    assert.is_true(totals.unknown > 0)
    say("%d seeds, %d calls, %d faults; %d OutcomeUnknown (%d of them landed), %d calls " ..
      "settled by sending the same commit again, %d duplicated writes on items without " ..
      "history, %d writes on an item recreated without history", SEEDS, totals.calls,
      totals.fired, totals.unknown, totals.landed, totals.resent_ok, totals.twice, totals.aba)
  end)

  for _, m in ipairs(mutants.list) do
    it("catches a planted bug: " .. m.name, function()
      local unplant = mutants.plant(m)
      local caught
      local ok, err = pcall(function()
        for seed = 1, 4000 do
          local r = sim.run(seed)
          if #r.violations > 0 then
            caught = { seed = seed, scenario = r.scenario, what = r.violations[1] }
            return
          end
        end
      end)
      unplant()
      if not ok then caught = { seed = "?", scenario = "?", what = "raised: " .. tostring(err) } end
      assert.truthy(caught, "the simulator did not catch it in 4000 seeds")
      say("caught at seed %s (%s): %s", caught.seed, caught.scenario, caught.what)
    end)
  end
end)
