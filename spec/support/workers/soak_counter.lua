-- A soak worker: increments one counter N times with with_item while the proxy injects
-- faults, timing every call against its deadline. Prints one summary line:
--   soak ok=S unknown=U failed=F bad=B overrun=O max_ms=M calls=N codes=code:n,...
-- bad: failures other than OutcomeUnknown whose err.applied is not "no"; overrun: calls
-- that returned later than their deadline plus SLACK_MS. Details of both go to stderr.
-- usage: lua soak_counter.lua ENDPOINT TABLE KEY N [timeout_ms] [deadline_ms] [tokens]
--          [idempotent: 1 or 0]
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"

local endpoint, table_name, key = arg[1], arg[2], arg[3]
local n = tonumber(arg[4])
local timeout_ms = tonumber(arg[5] or "500")
local deadline_ms = tonumber(arg[6] or "4000")
local tokens = tonumber(arg[7] or "8")
local idempotent = arg[8] == "1"
-- Past the deadline, a call may still be finishing the step it was in: the wait for a
-- response is cut at the deadline, but returning takes a little while.
local SLACK_MS = 100

local monotonic_ms = ddb.core.monotonic_ms

local client = assert(ddb.new{
  region = os.getenv("DDB_TEST_REGION"), endpoint = endpoint, timeout_ms = timeout_ms,
  credentials = { access_key_id = os.getenv("DDB_TEST_ACCESS_KEY"),
                  secret_access_key = os.getenv("DDB_TEST_SECRET_KEY") },
})
local store = assert(optimistic.new{ table = table_name, client = client, key = { "pk" },
  deadline_ms = deadline_ms, tokens = tokens, idempotent = idempotent })

local ok_count, unknown, failed, bad, overrun, max_ms = 0, 0, 0, 0, 0, 0
local codes = {}
for _ = 1, n do
  local t0 = monotonic_ms()
  local item, err = store:with_item({ pk = key }, function(it)
    it = it or {}
    it.n = (it.n or 0) + 1
    return it
  end)
  local elapsed = monotonic_ms() - t0
  if elapsed > max_ms then max_ms = elapsed end
  if elapsed > deadline_ms + SLACK_MS then
    overrun = overrun + 1
    io.stderr:write(("overrun: %.0f ms (%s)\n"):format(elapsed, item and "ok" or tostring(err)))
  end
  if item then
    ok_count = ok_count + 1
  else
    codes[err.code] = (codes[err.code] or 0) + 1
    if err.code == "OutcomeUnknown" then
      unknown = unknown + 1
      io.stderr:write(("unknown: %s (cause: %s; %d runs, %d conflicts, %d requests)\n"):format(
        tostring(err.message), err.cause and tostring(err.cause) or "none",
        err.info and err.info.attempts or -1, err.info and err.info.conflicts or -1,
        err.info and err.info.requests or -1))
    else
      failed = failed + 1
      if err.applied ~= "no" then
        bad = bad + 1
        io.stderr:write("maybe-applied failure: ", tostring(err), "\n")
      end
    end
  end
end
local list = {}
for code, c in pairs(codes) do list[#list + 1] = code .. ":" .. c end
table.sort(list)
print(("soak ok=%d unknown=%d failed=%d bad=%d overrun=%d max_ms=%.0f calls=%d codes=%s"):format(
  ok_count, unknown, failed, bad, overrun, max_ms, n, table.concat(list, ",")))
