--- make bench: the benchmark suite of issue 9. Runs the sections named on the command line
-- (default: all), merges the raw numbers into build/bench/results.json and prints a table.
--   lua5.4 spec/bench/run.lua [overhead] [module] [ngx] [memory] [instructions]
--                             [inflight] [bigitem] [contention] [table]
-- Environment: BENCH_SECONDS (per measured run, 3), BENCH_REPEAT (runs per client, 7; the
-- median by CPU per operation is reported, with the range), BENCH_OUT (build/bench).
local lib = require "bench.lib"

local q, must, sh = lib.q, lib.must, lib.sh
-- Short runs, many rounds: on a shared 2-core VM the speed of everything drifts by up to 3x
-- over minutes, so every client gets a run in every round and the median is reported.
local SECONDS = tonumber(os.getenv("BENCH_SECONDS") or "3")
local REPEAT = tonumber(os.getenv("BENCH_REPEAT") or "7")
local ROOT = lib.root
local OUT = lib.out
local RESULTS = OUT .. "/results.json"

must("mkdir -p " .. q(OUT))

local results = lib.decode(lib.read(RESULTS) or "{}") or {}

local function save()
  lib.write(RESULTS, lib.json(results, 1) .. "\n")
end

local function say(fmt, ...)
  io.stdout:write(fmt:format(...), "\n")
  io.stdout:flush()
end

local function machine()
  local cpu = (must("lscpu"):match("Model name:%s*([^\n]+)") or "?")
  return {
    cpu = cpu, cores = tonumber((must("nproc"):match("%d+"))),
    kernel = (must("uname -r"):gsub("%s+$", "")),
    mem_mb = tonumber(must("free -m"):match("Mem:%s+(%d+)")),
    date = (must("date -u +%Y-%m-%dT%H:%M:%SZ"):gsub("%s+$", "")),
    loadavg_start = lib.loadavg(),
  }
end

-- Runs a command that prints one JSON line; returns the decoded table (raises otherwise).
local function run_json(cmd)
  local ok, out = sh(cmd)
  local line
  for l in out:gmatch("[^\n]+") do
    if l:match("^%s*{") then line = l end
  end
  local doc = line and lib.decode(line)
  if not ok or type(doc) ~= "table" then
    error("benchmark command failed: " .. cmd .. "\n" .. out, 2)
  end
  doc.loadavg = lib.loadavg()
  return doc
end

local function pick_median(runs, field)
  local sorted = {}
  for i, r in ipairs(runs) do sorted[i] = r end
  table.sort(sorted, function(a, b) return a[field] < b[field] end)
  return sorted[math.ceil(#sorted / 2)]
end

local function build_tools()
  must("make -s -C " .. q(ROOT) .. " build LUA_VERSION=5.4")
  must("make -s -C " .. q(ROOT) .. " build LUA_VERSION=jit")
  must("cc -O2 -o " .. q(OUT .. "/curl_loop") .. " " .. q(ROOT .. "/spec/bench/curl_loop.c") ..
    " -lcurl")
end

local function have_node_sdk()
  return lib.read(ROOT .. "/spec/bench/node/node_modules/@aws-sdk/client-dynamodb/package.json")
end

local PY = ROOT .. "/.venv/bin/python"

--------------------------------------------------------------------------------
-- 1. Client overhead against the fixed-response server
--------------------------------------------------------------------------------

local sections = {}

function sections.overhead()
  build_tools()
  local srv = lib.fixed_server()
  local ok, err = pcall(function()
    local url = srv:url()
    local clients = {
      { name = "boto3 (client API)", cmd = q(PY) .. " " .. q(ROOT .. "/spec/bench/boto3_loop.py") ..
        " " .. url .. " " .. SECONDS .. " client" },
      { name = "boto3 (resource API)", cmd = q(PY) .. " " ..
        q(ROOT .. "/spec/bench/boto3_loop.py") .. " " .. url .. " " .. SECONDS .. " resource" },
      { name = "ddb (Lua 5.4, libcurl)", cmd = lib.lua_cmd("5.4", ROOT .. "/spec/bench/loop.lua",
        url, SECONDS) },
      { name = "ddb (LuaJIT, libcurl)", cmd = lib.lua_cmd("jit", ROOT .. "/spec/bench/loop.lua",
        url, SECONDS) },
      -- the same two requests through the same client without the engine: what of the gap to
      -- the bare loop is the engine's (issue 18.4)
      { name = "ddb client alone, no engine (Lua 5.4)", cmd = lib.lua_cmd("5.4",
        ROOT .. "/spec/bench/loop.lua", url, SECONDS, "client") },
      { name = "ddb client alone, no engine (LuaJIT)", cmd = lib.lua_cmd("jit",
        ROOT .. "/spec/bench/loop.lua", url, SECONDS, "client") },
      { name = "bare libcurl loop (no signing)", per_request = true,
        cmd = q(OUT .. "/curl_loop") .. " " .. url .. " " .. SECONDS },
      { name = "server, wrk -t1 -c1", wrk = true },
    }
    if have_node_sdk() then
      table.insert(clients, 3, { name = "AWS SDK for JavaScript v3",
        cmd = "cd " .. q(ROOT .. "/spec/bench/node") .. " && node --no-warnings sdk_loop.mjs " ..
          url .. " " .. SECONDS })
    else
      say("  (AWS SDK for JavaScript v3 not installed: make bench-deps)")
    end
    local runs = {}
    for r = 1, REPEAT do
      for _, c in ipairs(clients) do
        local doc
        local busy0, srv0 = lib.machine_cpu(), srv:worker_cpu()
        if c.wrk then
          local out = must("wrk -t1 -c1 -d" .. SECONDS .. "s -s " ..
            q(ROOT .. "/spec/bench/wrk_post.lua") .. " " .. url)
          doc = { requests_per_s = tonumber(out:match("Requests/sec:%s*([%d%.]+)")),
            loadavg = lib.loadavg() }
        else
          doc = run_json(c.cmd)
        end
        -- CPU that neither this client nor the server used: other people's work on the
        -- machine while this run went on (noise; reported beside every run)
        doc.server_cpu_s = srv:worker_cpu() - srv0
        doc.others_cpu_s = math.max(0, lib.machine_cpu() - busy0 - doc.server_cpu_s -
          (doc.cpu_s or 0))
        if c.per_request then
          -- two requests make one operation of the others
          doc.cpu_us_per_op = doc.cpu_us_per_request * 2
          doc.ops_per_s = doc.requests_per_s / 2
        end
        runs[c.name] = runs[c.name] or {}
        table.insert(runs[c.name], doc)
        say("  run %d/%d %-32s %8.1f req/s %s  (others used %.1f CPU-s)", r, REPEAT, c.name,
          doc.requests_per_s,
          doc.cpu_us_per_op and ("%7.1f us CPU/op"):format(doc.cpu_us_per_op) or "",
          doc.others_cpu_s)
      end
    end
    local summary = {}
    for _, c in ipairs(clients) do
      local list = runs[c.name]
      local field = c.wrk and "requests_per_s" or "cpu_us_per_op"
      local med = pick_median(list, field)
      local lo, hi = math.huge, -math.huge
      for _, d in ipairs(list) do
        lo, hi = math.min(lo, d[field]), math.max(hi, d[field])
      end
      summary[#summary + 1] = { name = c.name, median = med, runs = list, min = lo, max = hi,
        median_requests_per_s = lib.median((function()
          local t = {}
          for i, d in ipairs(list) do t[i] = d.requests_per_s end
          return t
        end)()) }
    end
    results.overhead = { seconds = SECONDS, repeat_count = REPEAT, clients = summary,
      server = "nginx " .. (must("nginx -v 2>&1"):match("nginx/([%d%.]+)") or "?") ..
        ", fixed bodies, 1 worker" }

    -- one TCP connection for the whole run, and the signing key derived once
    local conn = run_json(lib.lua_cmd("5.4", ROOT .. "/spec/bench/loop.lua", srv.log_url, 2,
      "connections"))
    local distinct, logged = lib.count_connections(srv.conn_log)
    results.connections = { client_new_connections = conn.new_connections,
      requests = conn.requests, server_distinct_connections = distinct,
      server_logged_requests = logged }
    say("  connections: libcurl made %d new connection(s) for %d requests; nginx saw %d " ..
      "connection(s) for %d requests", conn.new_connections, conn.requests, distinct, logged)
  end)
  srv:stop()
  if not ok then error(err, 0) end
  save()
end

--------------------------------------------------------------------------------
-- The module's own CPU per with_item, without a network (in-process fixed answers)
--------------------------------------------------------------------------------

function sections.module()
  build_tools()
  results.module = {}
  for _, rt in ipairs({ "5.4", "jit" }) do
    local runs = {}
    for r = 1, math.min(REPEAT, 3) do
      runs[r] = run_json(lib.lua_cmd(rt, ROOT .. "/spec/bench/profile.lua", 20000))
    end
    local med = pick_median(runs, "cpu_us_per_op")
    results.module[rt] = { cpu_us_per_op = med.cpu_us_per_op, runs = runs }
    say("  module alone (%s): %.1f us CPU per with_item", rt, med.cpu_us_per_op)
  end
  save()
end

--------------------------------------------------------------------------------
-- 5. Memory
--------------------------------------------------------------------------------

function sections.memory()
  build_tools()
  local srv = lib.fixed_server()
  local ok, err = pcall(function()
    results.memory = {}
    for _, rt in ipairs({ "5.4", "jit" }) do
      local doc = run_json(lib.lua_cmd(rt, ROOT .. "/spec/bench/loop.lua", srv:url(), 0,
        "memory"))
      results.memory[rt] = doc
      say("  memory (%s): VmRSS %d KiB at start, %d after 1,000 ops, %d after 10,000, %d " ..
        "after 100,000", rt, doc.rss_kb_start, doc.rss_kb_after_1000, doc.rss_kb_after_10000,
        doc.rss_kb_after_100000)
    end
  end)
  srv:stop()
  if not ok then error(err, 0) end
  save()
end

--------------------------------------------------------------------------------
-- Table
--------------------------------------------------------------------------------

local function fmt(v, f)
  if v == nil then return "-" end
  return (f or "%.0f"):format(v)
end

function sections.table()
  local lines = {}
  local function add(s) lines[#lines + 1] = s end
  local m = results.machine or {}
  add(("Machine: %s, %s cores, %s MiB, Linux %s; %s; load at start %s"):format(
    tostring(m.cpu), tostring(m.cores), tostring(m.mem_mb), tostring(m.kernel),
    tostring(m.date), tostring(m.loadavg_start)))
  local o = results.overhead
  if o then
    add("")
    add(("1. with_item loop against a fixed-response nginx (one connection; %d rounds of %ds runs)")
      :format(o.repeat_count, o.seconds))
    add("| client | requests/s (median) | client CPU per op, us (median) | range over the runs |")
    add("|---|---:|---:|---:|")
    local by = {}
    for _, c in ipairs(o.clients) do
      by[c.name] = { cpu_us_per_op = c.median.cpu_us_per_op,
        requests_per_s = c.median_requests_per_s or c.median.requests_per_s }
      local range = "-"
      if c.min then
        range = c.median.cpu_us_per_op and ("%.0f - %.0f us"):format(c.min, c.max) or
          ("%.0f - %.0f requests/s"):format(c.min, c.max)
      end
      add(("| %s | %s | %s | %s |"):format(c.name, fmt(by[c.name].requests_per_s),
        fmt(c.median.cpu_us_per_op, "%.1f"), range))
    end
    local ngx = results.ngx
    if ngx and ngx.ok then
      add(("| ddb inside nginx (cosockets), driven by wrk -c1 | %s | %s (nginx worker; %s without " ..
        "the inbound request; %sx the libcurl path's %s in the same round) | |"):format(
          fmt(ngx.ops_per_s * 2), fmt(ngx.cpu_us_per_op, "%.1f"),
          fmt(ngx.net_cpu_us_per_op, "%.1f"), fmt(ngx.ratio_to_curl, "%.2f"),
          fmt(ngx.curl_cpu_us_per_op, "%.1f")))
    elseif ngx then
      add("| ddb inside nginx (cosockets) | not measurable: " .. tostring(ngx.reason) .. " |||")
    end
    local mod = results.module
    if mod then
      add(("| ddb without a network (in-process answers): the module's own cost | | %s (Lua 5.4), " ..
        "%s (LuaJIT) | |"):format(fmt(mod["5.4"] and mod["5.4"].cpu_us_per_op, "%.1f"),
        fmt(mod.jit and mod.jit.cpu_us_per_op, "%.1f")))
    end
    local mine = by["ddb (Lua 5.4, libcurl)"]
    local jitm = by["ddb (LuaJIT, libcurl)"]
    -- Targets from ratios paired round by round (runs of one round are seconds apart, so
    -- they share the machine's mood), then the median over the rounds.
    local runs_of = {}
    for _, c in ipairs(o.clients) do runs_of[c.name] = c.runs end
    -- the per-round ratios a/b of field: their median, lowest and highest (issue 18.4 asks
    -- for 1.2x the bare loop in every run)
    local function paired(a, b, field)
      local ra, rb = runs_of[a], runs_of[b]
      if not ra or not rb then return nil end
      local list = {}
      for i = 1, math.min(#ra, #rb) do
        if ra[i][field] and rb[i][field] then list[#list + 1] = ra[i][field] / rb[i][field] end
      end
      if #list == 0 then return nil end
      table.sort(list)
      return lib.median(list), list[1], list[#list]
    end
    local targets = {}
    local BARE = "bare libcurl loop (no signing)"
    for _, pair in ipairs({ { "Lua 5.4", mine, "ddb (Lua 5.4, libcurl)",
                              "ddb client alone, no engine (Lua 5.4)" },
                            { "LuaJIT", jitm, "ddb (LuaJIT, libcurl)",
                              "ddb client alone, no engine (LuaJIT)" } }) do
      local name, me, key, alone = pair[1], pair[2], pair[3], pair[4]
      if me then
        local vb, vb_lo, vb_hi = paired(key, BARE, "cpu_us_per_op")
        local cb, cb_lo, cb_hi = paired(alone, BARE, "cpu_us_per_op")
        local ce = paired(alone, key, "cpu_us_per_op")
        if vb then
          add(("CPU per op x the bare loop (%s; median of the per-round ratios, lowest and " ..
            "highest): with_item %sx (%s - %s; target 1.2x in every round: %s); the client " ..
            "alone, the same two requests without the engine, %sx (%s - %s); the engine's " ..
            "share of a with_item's CPU: %s%%"):format(name, fmt(vb, "%.2f"),
            fmt(vb_lo, "%.2f"), fmt(vb_hi, "%.2f"), vb_hi <= 1.2 and "met" or "MISSED",
            fmt(cb, "%.2f"), fmt(cb_lo, "%.2f"), fmt(cb_hi, "%.2f"),
            fmt(ce and (1 - ce) * 100, "%.0f")))
        end
        results.vs_bare = results.vs_bare or {}
        results.vs_bare[name] = { with_item = vb, with_item_max = vb_hi, client_alone = cb,
          engine_share = ce and 1 - ce }
        local rb = paired("boto3 (client API)", key, "cpu_us_per_op")
        local rj = paired("AWS SDK for JavaScript v3", key, "cpu_us_per_op")
        local share = paired(key, BARE, "requests_per_s")
        targets[#targets + 1] = {
          runtime = name, vs_boto3 = rb, vs_js = rj, share_of_bare_curl = share,
          boto3_met = rb and rb >= 10, js_met = rj and rj >= 3, curl_met = share and share >= 0.7 }
        add(("Targets (%s; median of the per-round ratios): %sx less CPU/op than boto3 " ..
          "(target 10x: %s); %sx less than the JS SDK (target 3x: %s); %s%% of the bare " ..
          "libcurl loop's requests/s (target 70%%: %s)")
          :format(name, fmt(rb, "%.1f"), rb and (rb >= 10 and "met" or "MISSED") or "-",
            fmt(rj, "%.1f"), rj and (rj >= 3 and "met" or "MISSED") or "-",
            fmt(share and share * 100), share and (share >= 0.7 and "met" or "MISSED") or "-"))
      end
    end
    results.targets = targets
  end
  local c = results.connections
  if c then
    add(("Connections: libcurl opened %d for %d requests; nginx logged %d connection(s) for %d " ..
      "requests"):format(c.client_new_connections, c.requests, c.server_distinct_connections,
      c.server_logged_requests))
  end
  local k = results.signing_key
  if k then
    add(("Signing key: %d one-shot HMACs and %d MACs from the kept key state for %d " ..
      "signatures (derivation = 4 HMACs, once)"):format(k.hmac_calls, k.kept_state_macs or 0,
      k.signatures))
  end
  local mem = results.memory
  if mem then
    add("")
    add("5. Resident memory (VmRSS, KiB) of a client process")
    add("| runtime | start | after 1,000 ops | after 10,000 | after 100,000 |")
    add("|---|---:|---:|---:|---:|")
    for _, rt in ipairs({ "5.4", "jit" }) do
      local d = mem[rt]
      if d then
        add(("| %s | %d | %d | %d | %d |"):format(rt == "jit" and "LuaJIT" or "Lua 5.4",
          d.rss_kb_start, d.rss_kb_after_1000, d.rss_kb_after_10000, d.rss_kb_after_100000))
      end
    end
  end
  for _, name in ipairs({ "instructions", "inflight", "contention", "bigitem",
    "allocations" }) do
    local okm, mod = pcall(require, "bench.section_" .. name)
    if okm and type(mod) == "table" and mod.table then mod.table(results, add) end
  end
  local text = table.concat(lines, "\n")
  lib.write(OUT .. "/table.md", text .. "\n")
  print(text)
  save()
end

--------------------------------------------------------------------------------

local ORDER = { "overhead", "module", "ngx", "memory", "instructions", "inflight", "bigitem",
  "contention" }

local function main(...)
  local want = { ... }
  if #want == 0 then want = ORDER end
  results.machine = machine()
  for _, name in ipairs(want) do
    local fn = sections[name] or (name ~= "table" and require("bench.section_" .. name))
    if type(fn) == "table" then fn = fn.run end
    if name ~= "table" then
      say("== %s (load %s)", name, lib.loadavg())
      local ok, err = pcall(fn, { results = results, save = save, say = say, run_json = run_json,
        build_tools = build_tools, seconds = SECONDS, repeat_count = REPEAT,
        pick_median = pick_median })
      if not ok then
        say("!! section %s failed: %s", name, tostring(err))
        results.failures = results.failures or {}
        results.failures[name] = tostring(err)
      elseif results.failures then
        results.failures[name] = nil
      end
      save()
    end
  end
  results.machine.loadavg_end = lib.loadavg()
  save()
  sections.table()
end

main(...)
