--- One contention worker: with_item increments of one hot item until a deadline (or for a
-- number of calls: SECONDS given as "calls:N"), starting at a given time so that all
-- workers start together. Writes a JSON summary to OUTFILE.
-- usage: lua contend.lua ENDPOINT TABLE KEY START_EPOCH_MS SECONDS|calls:N OUTFILE
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local lib = require "bench.lib"

local endpoint, table_name, key = arg[1], arg[2], arg[3]
local start_ms, seconds, outfile = tonumber(arg[4]), tonumber(arg[5]), arg[6]
local calls = tonumber(tostring(arg[5]):match("^calls:(%d+)$"))
local core = ddb.core

local client = assert(ddb.new{ region = os.getenv("DDB_TEST_REGION"), endpoint = endpoint,
  credentials = { access_key_id = os.getenv("DDB_TEST_ACCESS_KEY"),
    secret_access_key = os.getenv("DDB_TEST_SECRET_KEY") } })
-- the library's defaults: a call tries again until its deadline (5 s)
local store = assert(optimistic.new{ table = table_name, client = client, key = { "pk" } })

local function bump(item)
  item = item or { pk = key, n = 0 }
  item.n = item.n + 1
  return item
end

-- one read before the clock: connection open, server warmed up
assert(store:get({ pk = key }))
local wait = start_ms - core.now() * 1000
if wait > 0 then core.sleep_ms(wait) end
local deadline = lib.now_ms() + (seconds or 3600) * 1000
local lat, ok, failed, requests, conflicts, codes = {}, 0, 0, 0, 0, {}
local most_attempts = 0
local c0 = os.clock()
local t_begin = lib.now_ms()
while lib.now_ms() < deadline and (not calls or ok + failed < calls) do
  local t0 = lib.now_ms()
  local item, err, info = store:with_item({ pk = key }, bump)
  local info_ = item and info or (err and err.info) or {}
  requests = requests + (info_.requests or 0)
  conflicts = conflicts + (info_.conflicts or 0)
  if (info_.attempts or 0) > most_attempts then most_attempts = info_.attempts end
  if item then
    ok = ok + 1
    lat[#lat + 1] = lib.now_ms() - t0
  else
    failed = failed + 1
    local code = tostring(err and err.code)
    if code == "OutcomeUnknown" and err.cause then code = code .. "/" .. tostring(err.cause.code) end
    codes[code] = (codes[code] or 0) + 1
    io.stderr:write(tostring(err), "\n")
  end
end
lib.write(outfile, lib.json({ successes = ok, failures = failed, requests = requests,
  conflicts = conflicts, latencies_ms = lat, cpu_s = os.clock() - c0, failure_codes = codes,
  most_attempts = most_attempts, wall_s = (lib.now_ms() - t_begin) / 1000 }))
