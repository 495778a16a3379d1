--- Many with_item calls in flight from one Lua state (ddb.scheduler on libcurl's multi
-- interface) against the fixed-response server. Prints one JSON line.
-- usage: lua inflight.lua URL SECONDS IN_FLIGHT
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local scheduler = require "ddb.scheduler"
local lib = require "bench.lib"

local url, seconds, n = arg[1], tonumber(arg[2]), tonumber(arg[3])

local sched = scheduler.new()
local client = assert(ddb.new{ region = lib.REGION, endpoint = url, transport = sched:transport(),
  credentials = { access_key_id = lib.ACCESS_KEY, secret_access_key = lib.SECRET_KEY } })
local store = assert(optimistic.new{ table = "bench", client = client, key = { "pk" } })

local function bump(item)
  item.counter = item.counter + 1
  return item
end

local ops, failures = 0, 0
local function worker(key, deadline, count)
  while (deadline and lib.now_ms() < deadline) or (count and count > 0) do
    local item, err = store:with_item(key, bump)
    if item then ops = ops + 1 else
      failures = failures + 1
      if failures == 1 then io.stderr:write(tostring(err), "\n") end
    end
    if count then count = count - 1 end
  end
end

-- warm-up: every task once, so that connections are open before the clock starts
-- (one key for all: the fixed server answers with that item whatever was asked)
local key = { pk = "bench#1" }
for _ = 1, n do sched:spawn(worker, key, nil, 5) end
sched:run()
ops, failures = 0, 0
local c0, t0 = os.clock(), lib.now_ms()
local deadline = t0 + seconds * 1000
for _ = 1, n do sched:spawn(worker, key, deadline) end
sched:run()
local wall = (lib.now_ms() - t0) / 1000
local cpu = os.clock() - c0
print(lib.json({ in_flight = n, ops = ops, failures = failures, wall_s = wall, cpu_s = cpu,
  ops_per_s = ops / wall, requests_per_s = 2 * ops / wall, cpu_us_per_op = cpu / ops * 1e6,
  rss_kb = lib.rss_kb(), runtime = jit and jit.version or _VERSION }))
