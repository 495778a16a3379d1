--- make bench-contention: 8 worker processes incrementing one hot item, on moto and on
-- dynalite (directly, not through the test proxy): with_item beside the naive boto3 loop
-- (read, conditional write, read again on conflict). Needs the servers of
-- spec/support/with-servers.sh (DDB_TEST_MOTO_DIRECT, DDB_TEST_DYNALITE_DIRECT).
local lib = require "bench.lib"
local ddb = require "ddb"

local q = lib.q
local _M = {}

local WORKERS = 8
local FAIR_CALLS = tonumber(os.getenv("DDB_BENCH_FAIR_CALLS") or "10000")

local function env(name)
  local v = os.getenv(name)
  if not v or v == "" then
    error("contention needs the local servers: run it through make bench-contention " ..
      "(spec/support/with-servers.sh sets " .. name .. ")", 0)
  end
  return v
end

local function read_item_n(client, table_name, key)
  local got = assert(client:get_item{ TableName = table_name,
    Key = ddb.marshal_item{ pk = key }, ConsistentRead = true })
  return got.Item and tonumber(got.Item.n.N) or 0
end

local function one(ctx, server, url, client, table_name, kind, seconds)
  local key = kind .. "#" .. lib.random_port()
  local dir = lib.tmpdir("contend")
  local start = math.floor(ddb.core.now() * 1000) + 2500   -- python needs time to import
  local pids = {}
  for w = 1, WORKERS do
    local out = dir .. "/w" .. w .. ".json"
    local cmd
    if kind == "with_item" then
      cmd = lib.lua_cmd("5.4", lib.dir .. "/contend.lua", url, table_name, key, start, seconds, out)
    else
      cmd = q(lib.root .. "/.venv/bin/python") .. " " .. q(lib.dir .. "/contend_boto3.py") .. " " ..
        table.concat({ q(url), q(table_name), q(key), start, seconds, q(out) }, " ")
    end
    pids[w] = tonumber(lib.must(cmd .. " >" .. q(dir .. "/w" .. w .. ".log") .. " 2>&1 & echo $!")
      :match("%d+"))
  end
  for _, pid in ipairs(pids) do
    while lib.pid_alive(pid) do lib.sleep_ms(100) end
  end
  local agg = { successes = 0, failures = 0, requests = 0, conflicts = 0, cpu_s = 0 }
  local most_attempts, wall_s = 0, 0
  local lat, codes = {}, {}
  for w = 1, WORKERS do
    local doc = lib.decode(lib.read(dir .. "/w" .. w .. ".json") or "null")
    if type(doc) ~= "table" then
      error(("worker %d of %s on %s wrote no result:\n%s"):format(w, kind, server,
        lib.read(dir .. "/w" .. w .. ".log") or ""), 0)
    end
    for k in pairs(agg) do agg[k] = agg[k] + (doc[k] or 0) end
    for code, count in pairs(doc.failure_codes or {}) do
      codes[code] = (codes[code] or 0) + count
    end
    for _, l in ipairs(doc.latencies_ms or {}) do lat[#lat + 1] = l end
    most_attempts = math.max(most_attempts, doc.most_attempts or 0)
    wall_s = math.max(wall_s, doc.wall_s or 0)
  end
  if type(seconds) == "string" then seconds = wall_s end
  table.sort(lat)
  lib.sh("rm -rf " .. q(dir))
  local stored = read_item_n(client, table_name, key)
  local r = {
    successes = agg.successes, failures = agg.failures, seconds = seconds,
    updates_per_s = agg.successes / seconds,
    requests_per_update = agg.requests / math.max(1, agg.successes),
    conflicts_per_update = agg.conflicts / math.max(1, agg.successes),
    p50_ms = lib.percentile(lat, 50), p99_ms = lib.percentile(lat, 99),
    client_cpu_s = agg.cpu_s, stored_count = stored, lost_or_doubled = stored - agg.successes,
    failure_codes = codes, most_attempts = most_attempts,
  }
  ctx.say("  %-8s %-9s %6.1f updates/s, %.2f requests/update, %.2f conflicts/update, p50 %.1f ms, " ..
    "p99 %.1f ms, %d failures; item says %d for %d successes", server, kind, r.updates_per_s,
    r.requests_per_update, r.conflicts_per_update, r.p50_ms or -1, r.p99_ms or -1, r.failures,
    stored, agg.successes)
  for code, count in pairs(codes) do ctx.say("           failures: %d x %s", count, code) end
  return r
end

function _M.run(ctx)
  local results = ctx.results
  ctx.build_tools()
  local seconds = math.max(5, ctx.seconds * 2)
  local out = {}
  for _, s in ipairs({ { "moto", "DDB_TEST_MOTO_DIRECT" }, { "dynalite", "DDB_TEST_DYNALITE_DIRECT" } }) do
    local name, url = s[1], env(s[2])
    local client = assert(ddb.new{ region = env("DDB_TEST_REGION"), endpoint = url,
      credentials = { access_key_id = env("DDB_TEST_ACCESS_KEY"),
        secret_access_key = env("DDB_TEST_SECRET_KEY") } })
    local table_name = "bench_contention_" .. lib.random_port()
    assert(client:create_table{ TableName = table_name,
      KeySchema = { { AttributeName = "pk", KeyType = "HASH" } },
      AttributeDefinitions = { { AttributeName = "pk", AttributeType = "S" } },
      BillingMode = "PAY_PER_REQUEST" })
    assert(client:wait_for_table(table_name, 30000))
    out[name] = {
      with_item = one(ctx, name, url, client, table_name, "with_item", seconds),
      naive_boto3 = one(ctx, name, url, client, table_name, "naive", seconds),
      -- fairness: 10,000 calls at default settings, none may fail
      fair = one(ctx, name, url, client, table_name, "with_item",
        "calls:" .. math.floor(FAIR_CALLS / WORKERS)),
    }
    client:delete_table{ TableName = table_name }
  end
  results.contention = { workers = WORKERS, servers = out }
end

function _M.table(results, add)
  local c = results.contention
  if not c then return end
  add("")
  add(("3. Contention: %d processes incrementing one hot item (%ds; servers reached directly)")
    :format(c.workers, (c.servers.moto or c.servers.dynalite).with_item.seconds))
  add("| server | loop | updates/s | requests/update | conflicts/update | p50 ms | p99 ms | " ..
    "failures | lost or doubled |")
  add("|---|---|---:|---:|---:|---:|---:|---:|---:|")
  for _, name in ipairs({ "moto", "dynalite" }) do
    local s = c.servers[name]
    if s then
      for _, kind in ipairs({ "with_item", "naive_boto3" }) do
        local r = s[kind]
        add(("| %s | %s | %.1f | %.2f | %.2f | %.1f | %.1f | %d | %d |"):format(name,
          kind == "with_item" and "with_item (Lua 5.4)" or "naive boto3 loop", r.updates_per_s,
          r.requests_per_update, r.conflicts_per_update, r.p50_ms or 0, r.p99_ms or 0,
          r.failures, r.lost_or_doubled))
      end
    end
  end
  add("moto is reached directly (not through the test proxy, which serialises it): its threaded " ..
    "server does not apply a conditional write atomically (spec/support/sigproxy.py), so its " ..
    "counts can come out short for any client; dynalite's cannot.")
  for _, name in ipairs({ "moto", "dynalite" }) do
    local f = c.servers[name] and c.servers[name].fair
    if f then
      local codes = {}
      for code, n in pairs(f.failure_codes or {}) do codes[#codes + 1] = code .. " " .. n end
      table.sort(codes)
      add(("Fairness (%s): %d calls by %d processes at default settings in %.0f s: %d failed%s " ..
        "(target 0: %s); p50 %.1f ms, p99 %.1f ms, at most %d runs of the function in one call")
        :format(name, f.successes + f.failures, c.workers, f.seconds, f.failures,
          #codes > 0 and (" (" .. table.concat(codes, ", ") .. ")") or "",
          f.failures == 0 and "met" or "MISSED", f.p50_ms or 0, f.p99_ms or 0, f.most_attempts))
    end
  end
  local m = c.servers.moto
  if m then
    local w, n = m.with_item, m.naive_boto3
    add(("Target (moto): fewer requests per success than the naive loop: %s (%.2f vs %.2f); " ..
      "at least its throughput: %s (%.1f vs %.1f updates/s)"):format(
      w.requests_per_update < n.requests_per_update and "met" or "MISSED",
      w.requests_per_update, n.requests_per_update,
      w.updates_per_s >= n.updates_per_s and "met" or "MISSED", w.updates_per_s, n.updates_per_s))
  end
end

return _M
