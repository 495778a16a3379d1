-- A worker process for spec/integration/hostile_spec.lua: one DynamoDB call against
-- spec/support/hostile_server.py, in a process of its own so that its resident memory can be
-- read from /proc without the rest of the suite in it. Prints one JSON line: the call's wall
-- time, VmRSS before it, the peak (VmHWM, reset just before the call) and the error.
-- usage: lua hostile_call.lua PATH MODE ENDPOINT DEADLINE_MS
--   PATH "client": the client's default transport (libcurl; its one-call path unless the
--        environment names a proxy); "scheduler": ddb.scheduler's transport. The credential
--        sources are set up by the environment the spec gives this process.
local ddb = require "ddb"

local path, mode, endpoint, deadline_ms = arg[1], arg[2], arg[3], tonumber(arg[4])

local function status_kb(field)
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^" .. field .. ":%s*(%d+) kB")
    if kb then return tonumber(kb) end
  end
  error("no " .. field .. " in /proc/self/status", 0)
end

local opts = { region = "us-east-1", endpoint = endpoint, deadline_ms = deadline_ms }
if os.getenv("HOSTILE_KEYS") then
  opts.credentials = { access_key_id = "AKIDHOSTILE", secret_access_key = "hostile-secret" }
end
local sched
if path == "scheduler" then
  sched = require("ddb.scheduler").new()
  opts.transport = sched:transport()
end
local client = assert(ddb.new(opts))

-- the peak is measured from here: what the call itself makes resident
collectgarbage()
collectgarbage()
local clear = assert(io.open("/proc/self/clear_refs", "w"))
assert(clear:write("5"))
clear:close()
local rss0 = status_kb("VmRSS")
local t0 = ddb.core.monotonic_ms()
local res, err
if sched then
  sched:spawn(function() res, err = client:call(mode, {}) end)
  sched:run()
else
  res, err = client:call(mode, {})
end
local ms = ddb.core.monotonic_ms() - t0
local hwm = status_kb("VmHWM")
print(ddb.encode_json{ ms = ms, rss0_kb = rss0, hwm_kb = hwm, ok = res ~= nil,
  code = err and err.code or ddb.null, applied = err and err.applied or ddb.null,
  message = err and tostring(err.message) or ddb.null })
