-- The retry policy (core.retry_new): how many attempts, how long to wait before each, and
-- the retry quota that stops a client from multiplying its load while a service struggles.
local core = require "ddb.core"

local function policy(opts)
  opts = opts or {}
  if opts.seed == nil then opts.seed = 42 end
  return core.retry_new(opts)
end

-- Draws n delays for one attempt number and class, with a quota too large to run out.
local function samples(opts, n, attempt, class)
  opts.quota = 1e9
  local p = policy(opts)
  local out = {}
  for i = 1, n do
    out[i] = assert(p:next(attempt, class))
  end
  return out
end

local function stats(xs)
  local lo, hi, sum = math.huge, -math.huge, 0
  for _, x in ipairs(xs) do
    lo, hi, sum = math.min(lo, x), math.max(hi, x), sum + x
  end
  return lo, hi, sum / #xs
end

describe("the attempt bound", function()
  it("allows retries until max_attempts attempts have been made", function()
    local p = policy{ max_attempts = 3 }
    assert.is_number(p:next(1, "transient"))
    assert.is_number(p:next(2, "transient"))
    local delay, reason = p:next(3, "transient")
    assert.is_nil(delay)
    assert.equal("max_attempts", reason)
  end)

  it("allows no retry at all with max_attempts = 1", function()
    local delay, reason = policy{ max_attempts = 1 }:next(1, "throttle")
    assert.is_nil(delay)
    assert.equal("max_attempts", reason)
  end)

  it("defaults to 10 attempts, as the AWS SDKs do for DynamoDB", function()
    local p = policy()
    assert.equal(10, p:info().max_attempts)
    assert.is_number(p:next(9, "transient"))
    assert.is_nil(p:next(10, "transient"))
  end)
end)

describe("errors of class 'none'", function()
  it("are never retried, and cost no quota", function()
    local p = policy{ quota = 10 }
    for attempt = 1, 5 do
      local delay, reason = p:next(attempt, "none")
      assert.is_nil(delay)
      assert.equal("not retryable", reason)
    end
    assert.equal(10, p:info().quota)
  end)
end)

describe("backoff", function()
  it("waits within the full-jitter window [0, base * 2^(attempt-1)]", function()
    for attempt = 1, 5 do
      local window = 10 * 2 ^ (attempt - 1)
      local lo, hi, mean = stats(samples({ base_ms = 10, cap_ms = 1e5 }, 2000, attempt, "transient"))
      assert(lo >= 0 and hi <= window,
        ("attempt %d: [%g, %g] outside [0, %g]"):format(attempt, lo, hi, window))
      -- spread over the whole window, not a fixed wait or half of it
      assert(lo < window * 0.01 and hi > window * 0.99, ("attempt %d: [%g, %g] does not fill [0, %g]")
        :format(attempt, lo, hi, window))
      assert(math.abs(mean - window / 2) < window * 0.05, ("attempt %d: mean %g"):format(attempt, mean))
    end
  end)

  it("never waits longer than cap_ms", function()
    local lo, hi = stats(samples({ base_ms = 100, cap_ms = 250 }, 2000, 8, "transient"))
    assert.is_true(lo >= 0)
    assert.is_true(hi <= 250)
    assert.is_true(hi > 240)
  end)

  it("stays capped for attempt numbers far beyond 30", function()
    local p = policy{ base_ms = 1, cap_ms = 50, max_attempts = 100, quota = 1e9 }
    for _ = 1, 200 do
      local d = p:next(99, "transient")
      assert.is_true(d >= 0 and d <= 50)
    end
  end)

  it("uses throttle_base_ms for throttling and base_ms for the rest", function()
    local opts = { base_ms = 1, throttle_base_ms = 1000, cap_ms = 1e5 }
    local _, hi_throttle = stats(samples(opts, 500, 1, "throttle"))
    local _, hi_transient = stats(samples(opts, 500, 1, "transient"))
    local _, hi_timeout = stats(samples(opts, 500, 1, "timeout"))
    assert.is_true(hi_throttle > 900 and hi_throttle <= 1000)
    assert.is_true(hi_transient <= 1)
    assert.is_true(hi_timeout <= 1)
  end)

  it("draws the same delays from the same seed and different ones from another", function()
    local a = samples({ seed = 7 }, 50, 3, "transient")
    local b = samples({ seed = 7 }, 50, 3, "transient")
    local c = samples({ seed = 8 }, 50, 3, "transient")
    assert.same(a, b)
    assert.are_not.same(a, c)
  end)

  it("is also available on its own as backoff(base, cap, attempt)", function()
    local p = policy()
    for _ = 1, 500 do
      local d = p:backoff(20, 70, 3)
      assert.is_true(d >= 0 and d <= 70)
    end
  end)
end)

describe("the retry quota", function()
  it("drains by 5 per retry and stops retries with reason 'retry_quota'", function()
    local p = policy{ quota = 12 }
    local d1, cost1 = p:next(1, "transient")
    local d2, cost2 = p:next(1, "transient")
    assert.is_number(d1)
    assert.is_number(d2)
    assert.same({ 5, 5 }, { cost1, cost2 })
    assert.equal(2, p:info().quota)
    local delay, reason = p:next(1, "transient")
    assert.is_nil(delay)
    assert.equal("retry_quota", reason)
    assert.equal(2, p:info().quota)
  end)

  it("drains by 10 per timeout", function()
    local p = policy{ quota = 25 }
    assert.equal(10, select(2, p:next(1, "timeout")))
    assert.equal(10, select(2, p:next(1, "timeout")))
    assert.equal(5, p:info().quota)
    assert.equal("retry_quota", select(2, p:next(1, "timeout")))
    assert.equal(5, select(2, p:next(1, "transient")))   -- a cheaper retry still fits
    assert.equal(0, p:info().quota)
  end)

  it("is not drained by throttling, which reports a cost of 0", function()
    local p = policy{ quota = 5 }
    for _ = 1, 100 do
      local delay, cost = p:next(1, "throttle")
      assert.is_number(delay)
      assert.equal(0, cost)
    end
    assert.equal(5, p:info().quota)
  end)

  it("with quota = 0 allows throttling retries only", function()
    local p = policy{ quota = 0 }
    assert.equal("retry_quota", select(2, p:next(1, "transient")))
    assert.is_number(p:next(1, "throttle"))
  end)

  it("starts full at 500 tokens by default", function()
    local info = policy():info()
    assert.equal(500, info.quota)
    assert.equal(500, info.quota_max)
  end)
end)

describe("success", function()
  it("refills the quota by the refund, 1 by default", function()
    local p = policy{ quota = 20 }
    for _ = 1, 4 do p:next(1, "transient") end
    assert.equal(0, p:info().quota)
    p:success(10)
    assert.equal(10, p:info().quota)
    p:success()
    assert.equal(11, p:info().quota)
  end)

  it("never refills beyond the maximum, however large the refund", function()
    local p = policy{ quota = 20 }
    p:next(1, "transient")
    p:success(100)
    assert.equal(20, p:info().quota)
    p:next(1, "transient")
    p:success(2 ^ 40)
    assert.equal(20, p:info().quota)
    p:success(2 ^ 31 - 1)
    assert.equal(20, p:info().quota)
  end)

  it("lets retries run again once the quota has refilled", function()
    local p = policy{ quota = 5 }
    p:next(1, "transient")
    assert.equal("retry_quota", select(2, p:next(1, "transient")))
    p:success(5)
    assert.is_number(p:next(1, "transient"))
  end)

  it("refuses a negative refund", function()
    local p = policy{ quota = 20 }
    assert.has_error(function() p:success(-5) end)
    assert.equal(20, p:info().quota)
  end)
end)

describe("options", function()
  it("are reported back by info()", function()
    assert.same({ max_attempts = 4, base_ms = 5, throttle_base_ms = 50, cap_ms = 800, quota = 30,
      quota_max = 30 }, policy{ max_attempts = 4, base_ms = 5, throttle_base_ms = 50, cap_ms = 800,
      quota = 30 }:info())
  end)

  it("may be left out entirely", function()
    assert.equal(10, core.retry_new():info().max_attempts)
    assert.equal(10, core.retry_new(nil):info().max_attempts)
  end)

  local function raises(opts, text)
    local ok, err = pcall(core.retry_new, opts)
    assert.is_false(ok)
    assert(tostring(err):find(text, 1, true), ("'%s' does not name '%s'"):format(tostring(err), text))
  end

  it("raise an error naming the option when one is not a number", function()
    for _, name in ipairs({ "max_attempts", "base_ms", "throttle_base_ms", "cap_ms", "quota", "seed" }) do
      raises({ [name] = "10" }, "retry option '" .. name .. "' must be a number")
    end
  end)

  it("raise an error naming the option when one is out of range", function()
    local bad = {
      max_attempts = { 0, 101, -1 }, base_ms = { -1, 60001 }, throttle_base_ms = { -0.5, 1e7 },
      cap_ms = { -1, 600001 }, quota = { -1, 2e9 }, seed = { -1, 2 ^ 54 },
    }
    for name, values in pairs(bad) do
      for _, v in ipairs(values) do
        raises({ [name] = v }, "retry option '" .. name .. "' must be between")
      end
      raises({ [name] = 0 / 0 }, "retry option '" .. name .. "'")
    end
  end)

  it("must be a table", function()
    raises(5, "retry options must be a table")
    raises("max_attempts=3", "retry options must be a table")
  end)
end)
