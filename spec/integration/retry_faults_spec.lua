-- Retries, deadlines and the "applied" verdict under faults the proxy injects (5xx,
-- throttling, resets, dropped or damaged answers, delays), counted request by request.
local ddb = require "ddb"
local helper = require "helper"

local core = ddb.core
local monotonic_ms = core.monotonic_ms
local marshal_item, unmarshal_item = ddb.marshal_item, ddb.unmarshal_item

-- Slack for timing bounds: process scheduling and the proxy's own latency.
local SLACK_MS = 150

describe("a server that is down", function()
  local url
  setup(function() url = helper.closed_url() end)

  local function down_client(opts)
    local o = { region = helper.region(), endpoint = url, credentials = helper.credentials() }
    for k, v in pairs(opts or {}) do o[k] = v end
    return assert(ddb.new(o))
  end

  it("gives ConnectError, applied 'no', quickly", function()
    local c = down_client{ max_attempts = 3 }
    local t0 = monotonic_ms()
    local res, err = c:list_tables{}
    local elapsed = monotonic_ms() - t0
    assert.is_nil(res)
    assert.equal("ConnectError", err.code)
    assert.equal("no", err.applied)
    assert.equal(3, err.attempts)
    assert.is_true(elapsed < 500, ("took %.0f ms"):format(elapsed))
    c:close()
  end)

  it("stops at the deadline with the default retries, still saying applied 'no'", function()
    local c = down_client{ deadline_ms = 300, retry = { base_ms = 200, cap_ms = 200 } }
    local t0 = monotonic_ms()
    local res, err = c:list_tables{}
    local elapsed = monotonic_ms() - t0
    assert.is_nil(res)
    assert.equal("DeadlineExceeded", err.code)
    assert.equal("ConnectError", err.cause.code)
    assert.equal("no", err.applied)
    assert.is_true(elapsed <= 300 + SLACK_MS, ("took %.0f ms"):format(elapsed))
    c:close()
  end)
end)

for _, server in ipairs(helper.servers()) do
  describe(server.name .. ":", function()
    local setup_client, tname
    local n = 0

    -- A fresh key per test, so that late arrivals never meet another test's items.
    local function next_key()
      n = n + 1
      return "k" .. n
    end
    local function key(pk) return marshal_item{ pk = pk } end
    local function put(c, pk, extra)
      local item = { pk = pk }
      for k, v in pairs(extra or {}) do item[k] = v end
      return c:put_item{ TableName = tname, Item = marshal_item(item) }
    end
    local function read(pk)
      local res = assert(setup_client:get_item{ TableName = tname, Key = key(pk),
        ConsistentRead = true })
      return res.Item and unmarshal_item(res.Item)
    end
    local function add_one(c, pk)
      return c:update_item{ TableName = tname, Key = key(pk), UpdateExpression = "ADD n :one",
        ExpressionAttributeValues = marshal_item{ [":one"] = 1 } }
    end
    -- Resets the proxy, then installs faults.
    local function faults(list)
      helper.reset(server)
      helper.faults(server, list)
    end
    local function stats() return helper.stats(server) end

    setup(function()
      helper.reset(server)
      setup_client = helper.client(server)
      tname = helper.table_name("faults")
      helper.create_table(setup_client, tname)
    end)

    teardown(function()
      helper.reset(server)
      setup_client:delete_table{ TableName = tname }
      setup_client:close()
    end)

    describe("server errors (5xx)", function()
      it("retries status 500 twice and succeeds on the third attempt", function()
        local c = helper.client(server)
        local pk = next_key()
        faults{ { kind = "status_500", op = "PutItem", count = 2 } }
        local res, _, info = put(c, pk)
        assert(res, tostring(info))
        assert.equal(3, info.attempts)
        local st = stats()
        assert.equal(3, helper.requests(st, "PutItem"))
        assert.equal(1, helper.forwarded(st, "PutItem"))
        assert.same({ pk = pk }, read(pk))
        c:close()
      end)

      it("retries status 503 (ServiceUnavailable) and succeeds", function()
        local c = helper.client(server)
        faults{ { kind = "status_503", op = "PutItem", count = 2 } }
        local res, _, info = put(c, next_key())
        assert(res, tostring(info))
        assert.equal(3, info.attempts)
        assert.equal(3, helper.requests(stats(), "PutItem"))
        c:close()
      end)

      it("reports a 500 as maybe applied once every attempt failed", function()
        local c = helper.client(server, { max_attempts = 3 })
        faults{ { kind = "status_500", op = "PutItem" } }
        local res, err = put(c, next_key())
        assert.is_nil(res)
        assert.equal("InternalServerError", err.code)
        assert.equal(500, err.status)
        assert.equal("maybe", err.applied)
        assert.is_true(err.retryable)
        assert.equal(3, err.attempts)
        assert.equal(3, helper.requests(stats(), "PutItem"))
        c:close()
      end)
    end)

    describe("throttling", function()
      it("retries ProvisionedThroughputExceededException and succeeds", function()
        local c = helper.client(server)
        faults{ { kind = "throttle", op = "GetItem", count = 2 } }
        local res, err, info = c:get_item{ TableName = tname, Key = key("none") }
        assert(res, tostring(err))
        assert.equal(3, info.attempts)
        assert.equal(3, helper.requests(stats(), "GetItem"))
        c:close()
      end)

      it("retries throttling even with an empty retry quota, unlike other errors", function()
        local c = helper.client(server, { retry = { quota = 0 } })
        faults{ { kind = "throttle", op = "GetItem", count = 2 } }
        local res, err, info = c:get_item{ TableName = tname, Key = key("none") }
        assert(res, tostring(err))
        assert.equal(3, info.attempts)

        faults{ { kind = "status_500", op = "GetItem", count = 1 } }
        local res2, err2 = c:get_item{ TableName = tname, Key = key("none") }
        assert.is_nil(res2)
        assert.equal("InternalServerError", err2.code)
        assert.is_truthy(err2.message:find("retry quota exhausted", 1, true), err2.message)
        assert.equal(1, helper.requests(stats(), "GetItem"))
        c:close()
      end)

      it("gives the throttling error once max_attempts are spent", function()
        local c = helper.client(server, { max_attempts = 2 })
        faults{ { kind = "throttle", op = "GetItem" } }
        local res, err = c:get_item{ TableName = tname, Key = key("none") }
        assert.is_nil(res)
        assert.equal("ProvisionedThroughputExceededException", err.code)
        assert.equal(400, err.status)
        assert.equal("throttle", err.retry_class)
        assert.equal(2, err.attempts)
        assert.equal(2, helper.requests(stats(), "GetItem"))
        c:close()
      end)
    end)

    describe("connections reset before the request was forwarded", function()
      for _, kind in ipairs{ "refuse", "reset_before_forward" } do
        it(("retries after %s and succeeds"):format(kind), function()
          local c = helper.client(server)
          local pk = next_key()
          faults{ { kind = kind, op = "PutItem", count = 2 } }
          local res, err, info = put(c, pk)
          assert(res, tostring(err))
          assert.equal(3, info.attempts)
          local st = stats()
          assert.equal(3, helper.requests(st, "PutItem"))
          assert.equal(1, helper.forwarded(st, "PutItem"))
          c:close()
        end)

        it(("says 'maybe' after %s on every attempt: a reset after sending cannot prove " ..
          "that nothing was applied"):format(kind), function()
          local c = helper.client(server, { max_attempts = 3 })
          local pk = next_key()
          faults{ { kind = kind, op = "PutItem" } }
          local res, err = put(c, pk)
          assert.is_nil(res)
          assert.equal("NetworkError", err.code)
          assert.equal("maybe", err.applied)
          assert.equal(3, err.attempts)
          local st = stats()
          assert.equal(3, helper.requests(st, "PutItem"))
          assert.equal(0, helper.forwarded(st, "PutItem"))
          assert.is_nil(read(pk))
          c:close()
        end)
      end
    end)

    describe("answers lost after the server applied the request", function()
      it("reports a dropped answer as NetworkError, applied 'maybe', with max_attempts=1",
        function()
          local c = helper.client(server, { max_attempts = 1 })
          local pk = next_key()
          faults{ { kind = "drop_after_forward", op = "PutItem", count = 1 } }
          local res, err = put(c, pk)
          assert.is_nil(res)
          assert.equal("NetworkError", err.code)
          assert.equal("maybe", err.applied)
          assert.is_true(err.retryable)
          assert.equal(1, helper.forwarded(stats(), "PutItem"))
          assert.same({ pk = pk }, read(pk))
          c:close()
        end)

      it("never lets libcurl resend a request whose answer was lost on a reused connection",
        function()
          local c = helper.client(server, { max_attempts = 1 })
          local pk = next_key()
          assert(put(c, pk, { n = 0 }))   -- leaves a kept-alive connection to reuse
          faults{ { kind = "drop_after_forward", op = "UpdateItem", count = 1 } }
          local res, err = add_one(c, pk)
          assert.is_nil(res, "the increment was sent again behind max_attempts = 1")
          assert.equal("NetworkError", err.code)
          assert.equal("maybe", err.applied)
          assert.equal(1, err.attempts)
          assert.equal(1, helper.requests(stats(), "UpdateItem"))
          assert.equal(1, read(pk).n)
          c:close()
        end)

      it("retries a dropped PutItem: the second copy lands and the call reports plain success",
        function()
          local c = helper.client(server)
          local pk = next_key()
          faults{ { kind = "drop_after_forward", op = "PutItem", count = 1 } }
          local res, err, info = put(c, pk, { v = "x" })
          assert(res, tostring(err))
          assert.equal(2, info.attempts)
          assert.equal(2, helper.forwarded(stats(), "PutItem"))
          assert.same({ pk = pk, v = "x" }, read(pk))
          c:close()
        end)

      it("retries a dropped UpdateItem ADD too, so an unconditional increment can land twice",
        function()
          local c = helper.client(server)
          local pk = next_key()
          assert(put(c, pk, { n = 0 }))
          faults{ { kind = "drop_after_forward", op = "UpdateItem", count = 1 } }
          local res, err, info = add_one(c, pk)
          assert(res, tostring(err))
          assert.equal(2, info.attempts)
          assert.equal(2, helper.forwarded(stats(), "UpdateItem"))
          assert.equal(2, read(pk).n)
          c:close()
        end)

      it("gives the error of a conditional write retried after a lost answer as 'maybe'",
        function()
          local c = helper.client(server)
          local pk = next_key()
          faults{ { kind = "drop_after_forward", op = "PutItem", count = 1 } }
          local res, err = c:put_item{ TableName = tname, Item = marshal_item{ pk = pk },
            ConditionExpression = "attribute_not_exists(pk)" }
          assert.is_nil(res)
          -- our own first copy created the item; the retry's conflict cannot be trusted
          assert.equal("ConditionalCheckFailedException", err.code)
          assert.equal("maybe", err.applied)
          assert.equal(2, err.attempts)
          c:close()
        end)

      local damaged = {
        { kind = "truncate_after_forward", code = "NetworkError" },
        { kind = "not_json_after_forward", code = "InvalidResponse", status = 200 },
        { kind = "bad_crc_after_forward", code = "CRC32Mismatch", status = 200 },
        { kind = "status_500_after_forward", code = "InternalServerError", status = 500 },
      }
      for _, case in ipairs(damaged) do
        it(("classifies %s as %s, applied 'maybe' and retryable"):format(case.kind, case.code),
          function()
            local c = helper.client(server, { max_attempts = 1 })
            local pk = next_key()
            faults{ { kind = case.kind, op = "PutItem", count = 1 } }
            local res, err = put(c, pk)
            assert.is_nil(res)
            assert.equal(case.code, err.code)
            assert.equal(case.status, err.status)
            assert.equal("maybe", err.applied)
            assert.is_true(err.retryable)
            assert.equal(1, helper.forwarded(stats(), "PutItem"))
            assert.same({ pk = pk }, read(pk))
            c:close()
          end)

        it(("retries after %s and succeeds"):format(case.kind), function()
          local c = helper.client(server)
          faults{ { kind = case.kind, op = "GetItem", count = 1 } }
          local res, err, info = c:get_item{ TableName = tname, Key = key("none") }
          assert(res, tostring(err))
          assert.equal(2, info.attempts)
          assert.equal(2, helper.requests(stats(), "GetItem"))
          c:close()
        end)
      end
    end)

    describe("timeouts", function()
      it("classifies a timeout as 'maybe' and retries it within the deadline", function()
        local events = {}
        local c = helper.client(server, { timeout_ms = 250,
          on_event = function(ev) events[#events + 1] = ev end })
        local pk = next_key()
        faults{ { kind = "delay_ms", op = "PutItem", ms = 700, count = 1 } }
        local t0 = monotonic_ms()
        local res, err, info = put(c, pk)
        local elapsed = monotonic_ms() - t0
        assert(res, tostring(err))
        assert.equal(2, info.attempts)
        assert.equal("Timeout", events[1].code)
        assert.is_true(elapsed < 700, ("took %.0f ms"):format(elapsed))
        -- the first copy lands after its delay, although its caller gave up on it
        helper.settle(server, "PutItem")
        assert.equal(2, helper.forwarded(stats(), "PutItem"))
        c:close()
      end)

      it("gives Timeout, applied 'maybe', after timeout_ms with max_attempts=1", function()
        local c = helper.client(server, { timeout_ms = 250, max_attempts = 1 })
        faults{ { kind = "delay_ms", op = "PutItem", ms = 600, count = 1 } }
        local t0 = monotonic_ms()
        local res, err = put(c, next_key())
        local elapsed = monotonic_ms() - t0
        assert.is_nil(res)
        assert.equal("Timeout", err.code)
        assert.equal("maybe", err.applied)
        assert.equal("timeout", err.retry_class)
        assert.is_true(elapsed >= 240 and elapsed <= 250 + SLACK_MS, ("took %.0f ms"):format(elapsed))
        helper.settle(server, "PutItem")
        c:close()
      end)
    end)

    describe("the deadline", function()
      it("bounds the whole call, retries included, when every attempt times out", function()
        local c = helper.client(server, { timeout_ms = 200, deadline_ms = 700 })
        faults{ { kind = "delay_ms", op = "PutItem", ms = 900 } }
        local t0 = monotonic_ms()
        local res, err = put(c, next_key())
        local elapsed = monotonic_ms() - t0
        assert.is_nil(res)
        assert.equal("DeadlineExceeded", err.code)
        assert.equal("Timeout", err.cause.code)
        assert.equal("maybe", err.applied)
        assert.is_true(err.attempts >= 3, "attempts: " .. tostring(err.attempts))
        assert.is_true(elapsed <= 700 + SLACK_MS, ("took %.0f ms"):format(elapsed))
        helper.settle(server, "PutItem", 3000)   -- before the reset zeroes the counts
        c:close()
      end)

      it("takes a per-call deadline_ms over the client's", function()
        local c = helper.client(server, { deadline_ms = 60000 })
        faults{ { kind = "throttle", op = "GetItem" } }
        local t0 = monotonic_ms()
        local res, err = c:get_item({ TableName = tname, Key = key("none") },
          { deadline_ms = 400 })
        local elapsed = monotonic_ms() - t0
        assert.is_nil(res)
        assert.equal("DeadlineExceeded", err.code)
        -- the last attempt was throttled, or (on a loaded machine) cut by the deadline while
        -- its answer was on the way: either way the call ends at 400 ms, not at 60 s
        if err.cause.code == "Timeout" then
          assert.equal("maybe", err.applied)
        else
          assert.equal("ProvisionedThroughputExceededException", err.cause.code)
          assert.equal("no", err.applied)
        end
        assert.is_true(elapsed <= 400 + SLACK_MS, ("took %.0f ms"):format(elapsed))
        c:close()
      end)
    end)

    describe("max_attempts", function()
      for _, max in ipairs{ 1, 2, 5 } do
        it(("sends exactly %d request(s) with max_attempts=%d"):format(max, max), function()
          local c = helper.client(server, { max_attempts = max })
          faults{ { kind = "status_500", op = "GetItem" } }
          local res, err = c:get_item{ TableName = tname, Key = key("none") }
          assert.is_nil(res)
          assert.equal(max, err.attempts)
          assert.equal(max, helper.requests(stats(), "GetItem"))
          c:close()
        end)
      end

      it("honours AWS_MAX_ATTEMPTS when the option is not given", function()
        local c = helper.with_env({ AWS_MAX_ATTEMPTS = "3" }, function()
          return helper.client(server)
        end)
        faults{ { kind = "status_500", op = "GetItem" } }
        local _, err = c:get_item{ TableName = tname, Key = key("none") }
        assert.equal(3, err.attempts)
        assert.equal(3, helper.requests(stats(), "GetItem"))
        c:close()
      end)

      it("lets the max_attempts option win over AWS_MAX_ATTEMPTS", function()
        local c = helper.with_env({ AWS_MAX_ATTEMPTS = "6" }, function()
          return helper.client(server, { max_attempts = 2 })
        end)
        faults{ { kind = "status_500", op = "GetItem" } }
        local _, err = c:get_item{ TableName = tname, Key = key("none") }
        assert.equal(2, err.attempts)
        assert.equal(2, helper.requests(stats(), "GetItem"))
        c:close()
      end)

      it("refuses an AWS_MAX_ATTEMPTS that is not a whole number from 1 to 100", function()
        for _, bad in ipairs{ "0", "three", "2.5", "101" } do
          local c, err = helper.with_env({ AWS_MAX_ATTEMPTS = bad }, function()
            return ddb.new{ region = helper.region(), endpoint = server.url,
              credentials = helper.credentials() }
          end)
          assert.is_nil(c)
          assert.equal("ConfigError", err.code)
          assert.is_truthy(err.message:find("AWS_MAX_ATTEMPTS", 1, true), err.message)
        end
      end)
    end)

    describe("the retry quota", function()
      it("stops retrying once spent and then fails fast, one request per call", function()
        local c = helper.client(server, { retry = { quota = 20 } })
        faults{ { kind = "status_500", op = "GetItem" } }
        local _, err = c:get_item{ TableName = tname, Key = key("none") }
        assert.equal("InternalServerError", err.code)
        -- 20 tokens pay for four retries at 5 each: five requests, not max_attempts' ten
        assert.equal(5, err.attempts)
        assert.is_truthy(err.message:find("retry quota exhausted", 1, true), err.message)
        assert.equal(5, helper.requests(stats(), "GetItem"))
        assert.equal(0, c.retry:info().quota)
        for call = 2, 3 do
          local t0 = monotonic_ms()
          local _, again = c:get_item{ TableName = tname, Key = key("none") }
          assert.equal(1, again.attempts)
          assert.is_true(monotonic_ms() - t0 < 200)
          assert.equal(5 + call - 1, helper.requests(stats(), "GetItem"))
        end
        c:close()
      end)

      it("earns tokens back on success after retries", function()
        local c = helper.client(server, { retry = { quota = 20 } })
        faults{ { kind = "status_500", op = "GetItem", count = 2 } }
        local res, err, info = c:get_item{ TableName = tname, Key = key("none") }
        assert(res, tostring(err))
        assert.equal(3, info.attempts)
        assert.equal(20, c.retry:info().quota)
        c:close()
      end)
    end)
  end)
end
