--- make bench-allocations: what a with_item costs in memory traffic, in figures that do not
-- move with the machine's phase (not in `make bench`: cachegrind takes minutes).
--   allocations  blocks Lua asks its allocator for per with_item, and the source lines that
--                ask most (spec/bench/allocs.c, a Lua 5.4 host with an allocation hook), on
--                the single-call libcurl path and on ddb.scheduler at 1 and 256 in flight
--   cache        cachegrind (Lua 5.4) simulating this CPU's L1 data cache and, as its last
--                level, its L2 (from /sys): instructions, L1 and L2 misses per with_item on
--                the scheduler at 1 and 256 in flight. Two runs of different lengths, so
--                that start-up and warm-up cancel out.
-- BENCH_ALLOC_BASE=<dir>: another source tree (built for 5.4) measured beside this one.
local lib = require "bench.lib"

local q, must, sh = lib.q, lib.must, lib.sh

local _M = {}

local LEVELS = { 1, 256 }
-- per level: tasks' calls in the short and the long cachegrind run
local CACHE_RUNS = { [1] = { 200, 1200 }, [256] = { 2, 6 } }

-- The host, linked with Debian's static Lua 5.4 (liblua5.4-dev) and its symbols exported, so
-- that the core (built for lua5.4) loads into it.
local function host()
  local out = lib.root .. "/build/bench/lua-allocs"
  local libdir = must("pkg-config --variable=libdir lua5.4"):gsub("%s+$", "")
  must("mkdir -p " .. q(lib.root .. "/build/bench") .. " && cc -std=c99 -O2 -Wall -Wextra -o " ..
    q(out) .. " " .. q(lib.dir .. "/allocs.c") .. " " .. q(libdir .. "/liblua5.4.a") ..
    " -lm -ldl -Wl,-E")
  return out
end

-- A cache of cpu0 ("1", "Data") as cachegrind's size,assoc,line | nil.
local function cache_spec(level, kind)
  for i = 0, 9 do
    local d = "/sys/devices/system/cpu/cpu0/cache/index" .. i .. "/"
    local lv = lib.read(d .. "level")
    if not lv then break end
    local ty = (lib.read(d .. "type") or ""):gsub("%s+", "")
    if lv:gsub("%s+", "") == level and ty == kind then
      local size = (lib.read(d .. "size") or ""):match("(%d+)K")
      local ways = (lib.read(d .. "ways_of_associativity") or ""):match("%d+")
      local line = (lib.read(d .. "coherency_line_size") or ""):match("%d+")
      if size and ways and line then return ("%d,%s,%s"):format(size * 1024, ways, line) end
    end
  end
  return nil
end

local function loop_args(url, n, each)
  if n == "single" then return url, "single", each end
  return url, "inflight", n, each
end

local function allocations(root, exe, url)
  local out = {}
  local runs = { { "single", "single", 1000 }, { "1", 1, 1000 }, { "256", 256, 4 } }
  for _, r in ipairs(runs) do
    local cmd = lib.lua_cmd_in(root, "5.4", nil, lib.dir .. "/alloc_loop.lua",
      loop_args(url, r[2], r[3])):gsub(" lua5%.4 ", " " .. q(exe) .. " ", 1)
    local line = must(cmd):match("{.*}")
    out[r[1]] = assert(lib.decode(line), "no JSON from " .. cmd)
  end
  return out
end

-- cachegrind's totals for one run: { ir, d1, ll } (data misses, reads and writes).
local function cachegrind(root, url, d1, ll, n, each)
  local wrapper = "valgrind --tool=cachegrind --cache-sim=yes --cachegrind-out-file=/dev/null" ..
    (d1 and (" --D1=" .. d1) or "") .. (ll and (" --LL=" .. ll) or "")
  local ok, text = sh(lib.lua_cmd_in(root, "5.4", wrapper, lib.dir .. "/alloc_loop.lua",
    loop_args(url, n, each)) .. " 2>&1")
  assert(ok, "cachegrind failed: " .. tostring(text):sub(-400))
  local function num(pattern)
    local v = text:match(pattern)
    return v and tonumber((v:gsub(",", "")))
  end
  return { ir = num("I%s+refs:%s+([%d,]+)"), d1 = num("D1%s+misses:%s+([%d,]+)"),
    ll = num("LLd misses:%s+([%d,]+)") }
end

local function cache(root, url, d1, ll)
  local out = {}
  for _, n in ipairs(LEVELS) do
    local short, long = CACHE_RUNS[n][1], CACHE_RUNS[n][2]
    local a = cachegrind(root, url, d1, ll, n, short)
    local b = cachegrind(root, url, d1, ll, n, long)
    local ops = n * (long - short)
    out[tostring(n)] = { ops = ops, instructions = (b.ir - a.ir) / ops,
      l1_misses = (b.d1 - a.d1) / ops, ll_misses = (b.ll - a.ll) / ops }
  end
  return out
end

local function say_tree(say, tag, a, c)
  for _, k in ipairs({ "single", "1", "256" }) do
    local r = a[k]
    say("  %-5s %-22s %6.1f allocations, %7.0f bytes per with_item", tag,
      k == "single" and "libcurl path" or ("scheduler, " .. k .. " in flight"),
      r.allocations_per_op, r.bytes_per_op)
  end
  for _, n in ipairs(LEVELS) do
    local r = c[tostring(n)]
    say("  %-5s %-22s %8.0f instructions, %6.0f L1 misses, %6.0f L2 misses per " ..
      "with_item", tag, "scheduler, " .. n .. " in flight", r.instructions, r.l1_misses,
      r.ll_misses)
  end
end

function _M.run(ctx)
  local results, say = ctx.results, ctx.say
  ctx.build_tools()
  local base = os.getenv("BENCH_ALLOC_BASE")
  if base == "" then base = nil end
  local exe = host()
  local d1, ll = cache_spec("1", "Data"), cache_spec("2", "Unified")
  say("  simulated caches: D1 %s, LL (this CPU's L2) %s", tostring(d1), tostring(ll))
  local srv = lib.fixed_server()
  local ok, err = pcall(function()
    local url = srv:url()
    local out = { d1 = d1, ll = ll, base = base }
    out.this = { allocations = allocations(lib.root, exe, url), cache = cache(lib.root, url, d1, ll) }
    say_tree(say, "this", out.this.allocations, out.this.cache)
    if base then
      out.base = { root = base, allocations = allocations(base, exe, url),
        cache = cache(base, url, d1, ll) }
      say_tree(say, "base", out.base.allocations, out.base.cache)
    end
    local top = out.this.allocations.single.top
    say("  busiest lines (libcurl path, allocations per with_item):")
    for i = 1, math.min(12, #top) do
      say("    %5.1f %7.0f B  %s", top[i].per_op, top[i].bytes_per_op, top[i].where)
    end
    results.allocations = out
  end)
  srv:stop()
  if not ok then error(err, 0) end
end

function _M.table(results, add)
  local r = results.allocations
  if not r or not r.this then return end
  add("")
  add("Allocations and cache misses per with_item (Lua 5.4; cachegrind with D1 " ..
    tostring(r.d1) .. " and this CPU's L2 " .. tostring(r.ll) .. " as the last level)")
  add("| tree | path | allocations | bytes | instructions | L1 misses | L2 misses |")
  add("|---|---|---:|---:|---:|---:|---:|")
  local function rows(tag, t)
    if not t then return end
    add(("| %s | libcurl | %.1f | %.0f | | | |"):format(tag, t.allocations.single.allocations_per_op,
      t.allocations.single.bytes_per_op))
    for _, n in ipairs(LEVELS) do
      local a, c = t.allocations[tostring(n)], t.cache[tostring(n)]
      add(("| %s | scheduler, %d in flight | %.1f | %.0f | %.0f | %.0f | %.0f |"):format(tag, n,
        a.allocations_per_op, a.bytes_per_op, c.instructions, c.l1_misses, c.ll_misses))
    end
  end
  rows("base", type(r.base) == "table" and r.base or nil)
  rows("this", r.this)
end

return _M
