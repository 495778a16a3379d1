--- with_item calls for make bench-allocations (spec/bench/section_allocations.lua): on the
-- single-call libcurl path ("single") or n at a time on ddb.scheduler ("inflight"), against
-- the fixed-response server. Every task's first calls are warm-up; then `ops` calls in all.
-- Under spec/bench/allocs.c (the global `allocs`) it counts their allocations and prints
-- them as one JSON line; under lua5.4 (for cachegrind, which counts the whole run) it only
-- runs them.
-- usage: alloc_loop.lua URL single OPS | alloc_loop.lua URL inflight N OPS_PER_TASK
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local scheduler = require "ddb.scheduler"
local lib = require "bench.lib"

local url, mode = arg[1], arg[2]
local counter = rawget(_G, "allocs")

local function bump(item)
  item.counter = item.counter + 1
  return item
end

local sched = mode == "inflight" and scheduler.new() or nil
local client = assert(ddb.new{ region = lib.REGION, endpoint = url,
  transport = sched and sched:transport() or nil,
  credentials = { access_key_id = lib.ACCESS_KEY, secret_access_key = lib.SECRET_KEY } })
local store = assert(optimistic.new{ table = "bench", client = client, key = { "pk" } })
local key = { pk = "bench#1" }   -- the fixed server answers with its one item whatever is asked

local function calls(n)
  for _ = 1, n do assert(store:with_item(key, bump)) end
end

local ops, run
if mode == "single" then
  ops = assert(tonumber(arg[3]), "OPS")
  calls(5)
  run = function() calls(ops) end
elseif mode == "inflight" then
  local n, each = assert(tonumber(arg[3]), "N"), assert(tonumber(arg[4]), "OPS_PER_TASK")
  ops = n * each
  for _ = 1, n do sched:spawn(calls, 3) end
  sched:run()
  run = function()
    for _ = 1, n do sched:spawn(calls, each) end
    sched:run()
  end
else
  error("mode: single or inflight")
end

collectgarbage()
if counter then counter.start() end
run()
if not counter then return end
local r = counter.stop()
local top = {}
for i = 1, math.min(15, #r.lines) do
  local l = r.lines[i]
  top[i] = { where = (l.where:gsub("^.*/lua/", "lua/")), per_op = l.count / ops,
    bytes_per_op = l.bytes / ops }
end
print(lib.json({ mode = mode, ops = ops, allocations_per_op = r.count / ops,
  bytes_per_op = r.bytes / ops, top = top }))
