-- Options are checked by name, type and range (lua/ddb/options.lua) in ddb.new, the
-- transports and ddb.scheduler: a mistake raises at once, naming the option and what it must
-- be, and an unknown name is refused with the name it was most likely meant to be.
local ddb = require "ddb"
local options = require "ddb.options"
local scheduler = require "ddb.scheduler"

local transport = { name = "fake", request = function() return nil, "unused" end }

local function good(opts)
  local o = { region = "us-east-1", transport = transport,
    credentials = { access_key_id = "AKIDOPT", secret_access_key = "opt-secret" } }
  for k, v in pairs(opts or {}) do o[k] = v end
  return o
end

-- The message a call raises (it must raise).
local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "did not raise")
  return tostring(err)
end

local function assert_says(text, ...)
  for i = 1, select("#", ...) do
    local part = select(i, ...)
    assert(text:find(part, 1, true), ("%q does not say %q"):format(text, part))
  end
end

describe("ddb.new's options", function()
  it("refuses an unknown name, suggesting the one it was likely meant to be", function()
    assert_says(raised(ddb.new, good{ timeout = 500 }),
      "ddb.new: unknown option 'timeout' (did you mean 'timeout_ms'?)")
    assert_says(raised(ddb.new, good{ regoin = "eu-west-1" }), "did you mean 'region'?")
    assert_says(raised(ddb.new, good{ max_attempt = 3 }), "did you mean 'max_attempts'?")
    assert_says(raised(ddb.new, good{ Deadline_MS = 3 }), "did you mean 'deadline_ms'?")
  end)

  it("lists the options when no name is near", function()
    local text = raised(ddb.new, good{ frobnicate = true })
    assert_says(text, "unknown option 'frobnicate'; the options are: ", "ca_bundle",
      "max_answer_bytes", "pool_size", "timeout_ms")
  end)

  it("refuses positional entries", function()
    assert_says(raised(ddb.new, { "us-east-1" }), "option names must be strings, got 1")
  end)

  it("refuses NaN and infinities, naming the option and the range", function()
    for _, v in ipairs({ 0 / 0, math.huge, -math.huge }) do
      local text = raised(ddb.new, good{ timeout_ms = v })
      assert_says(text, "option 'timeout_ms' must be between 1 and 3600000 (milliseconds), got ")
    end
    assert_says(raised(ddb.new, good{ deadline_ms = 0 / 0 }), "got nan")
    assert_says(raised(ddb.new, good{ max_answer_bytes = math.huge }), "got inf")
  end)

  it("refuses wrong types and values out of range, saying what is expected", function()
    local cases = {
      { { timeout_ms = "fast" }, "option 'timeout_ms' must be a number between 1 and 3600000 " ..
        "(milliseconds), got 'fast'" },
      { { max_attempts = 2.5 }, "option 'max_attempts' must be between 1 and 100 (a whole " ..
        "number), got 2.5" },
      { { max_attempts = 0 }, "option 'max_attempts' must be between 1 and 100" },
      { { max_answer_bytes = 100 }, "option 'max_answer_bytes' must be between 1024 and " ..
        "1073741824 (a whole number of bytes), got 100" },
      { { pool_size = 0 }, "option 'pool_size' must be between 1 and 100000" },
      { { keepalive_timeout_ms = -1 }, "option 'keepalive_timeout_ms' must be between 1 and " ..
        "3600000" },
      { { region = 5 }, "option 'region' must be a string, got 5" },
      { { endpoint = {} }, "option 'endpoint' must be a string, got a table" },
      { { credentials = "AKID" }, "option 'credentials' must be a table or a function" },
      { { log = true }, "option 'log' must be a function, got a boolean" },
      { { tls_verify = "no" }, "option 'tls_verify' must be a boolean" },
      { { user_agent_suffix = "x\r\nX-Evil: 1" }, "option 'user_agent_suffix' must be a string " ..
        "without control characters" },
      { { transport = "curlx" }, "option 'transport' must be 'curl', 'ngx' or a table" },
      { { retry = { base = 5 } }, "ddb.new: unknown retry option 'base' (did you mean 'base_ms'?)" },
      { { retry = { cap_ms = 0 / 0 } }, "retry option 'cap_ms' must be between 0 and 600000" },
    }
    for _, c in ipairs(cases) do
      assert_says(raised(ddb.new, good(c[1])), "ddb.new: ", c[2])
    end
  end)

  it("accepts every option it documents", function()
    local client = assert(ddb.new(good{ endpoint = "http://localhost:8000", profile = "x",
      timeout_ms = 100.5, connect_timeout_ms = 50, deadline_ms = 1000, max_attempts = 3,
      retry = { base_ms = 1, throttle_base_ms = 2, cap_ms = 3, quota = 4, seed = 5,
        max_attempts = 2 },
      ca_bundle = "/etc/ssl/certs/ca-certificates.crt", on_event = print, log = print,
      user_agent_suffix = "app/1.0", max_answer_bytes = 4096, pool_size = 8,
      keepalive_timeout_ms = 10000, tls_verify = true }))
    assert.equal(4096, client.max_answer_bytes)
  end)

  it("exports the names it accepts, and a filter for tables that carry them among others",
    function()
      for _, name in ipairs({ "region", "endpoint", "credentials", "timeout_ms", "deadline_ms",
          "max_answer_bytes", "pool_size", "keepalive_timeout_ms" }) do
        assert.is_true(ddb.CLIENT_OPTIONS[name], name)
      end
      assert.is_nil(ddb.CLIENT_OPTIONS.table)
      local picked = ddb.client_options({ table = "T", region = "us-east-1", tokens = 8,
        deadline_ms = 50 })
      assert.same({ region = "us-east-1", deadline_ms = 50 }, picked)
      assert.is_truthy(ddb.new(good(ddb.client_options({ version_attribute = "v" }))))
    end)

  it("defaults the answer limit to 32 MiB", function()
    assert.equal(32 * 1024 * 1024, ddb.MAX_ANSWER_BYTES)
    assert.equal(32 * 1024 * 1024, assert(ddb.new(good())).max_answer_bytes)
  end)
end)

describe("the transports' options", function()
  it("are checked by ddb.curl_transport", function()
    assert_says(raised(ddb.curl_transport, { connect_timeout = 5 }),
      "ddb.curl_transport: unknown option 'connect_timeout' (did you mean 'connect_timeout_ms'?)")
    assert_says(raised(ddb.curl_transport, { max_answer_bytes = 0 / 0 }),
      "option 'max_answer_bytes' must be between 1024 and 1073741824")
    local t = ddb.curl_transport({ max_answer_bytes = 2048, connect_timeout_ms = 100 })
    t:close()
  end)

  it("are checked by ddb.scheduler", function()
    assert_says(raised(scheduler.new, { max_connection = 5 }),
      "scheduler.new: unknown option 'max_connection' (did you mean 'max_connections'?)")
    assert_says(raised(scheduler.new, { max_connections = -1 }),
      "option 'max_connections' must be between 0 and 1000000")
    scheduler.new({ max_answer_bytes = 4096, max_connections = 4 }):close()
  end)

  it("are checked again in C, NaN included, for whoever calls the core directly", function()
    for _, v in ipairs({ 0 / 0, 10, 2 ^ 31 }) do
      assert_says(raised(ddb.core.curl_new, { max_answer_bytes = v }),
        "option 'max_answer_bytes' must be a number from 1024 to 1073741824")
      assert_says(raised(ddb.core.multi_new, { max_answer_bytes = v }),
        "option 'max_answer_bytes' must be a number from 1024 to 1073741824")
    end
  end)
end)

describe("ddb.options.suggest", function()
  local spec = { timeout_ms = true, region = true, max_attempts = true, pool_size = true }

  it("adds a missing _ms first, then every name it begins, then a near name", function()
    assert.same({ "timeout_ms" }, options.suggest("timeout", spec))
    assert.same({ "region" }, options.suggest("reigon", spec))
    assert.same({ "pool_size" }, options.suggest("poolsize", spec))
    assert.same({ "max_attempts" }, options.suggest("max", spec))
    local more = { version_start = true, version_step = true, region = true }
    assert.same({ "version_start", "version_step" }, options.suggest("version", more))
  end)

  it("suggests nothing for names that are not near", function()
    assert.same({}, options.suggest("x", spec))
    assert.same({}, options.suggest("size", spec))
    assert.same({}, options.suggest(("a"):rep(100), spec))
  end)
end)
