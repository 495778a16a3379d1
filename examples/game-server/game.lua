-- The game logic one host thread runs in its own lua_State: `tasks` player sessions as
-- coroutines, each applying `updates` score changes to shared player items with
-- with_item, all driven by the host's loop through scheduler.lua.
--
-- The host calls this chunk with a config table (thread, threads and the key=value pairs
-- of its command line) and gets back { tick = fn, report = fn }: it calls tick() every
-- frame until it returns true, then report(), which returns one line of JSON and the
-- number of updates that succeeded.
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local scheduler = require "scheduler"

local cfg = ...
local function num(name, default)
  local v = tonumber(cfg[name])
  if v == nil then return default end
  return v
end

local thread = num("thread", 1)
local tasks, updates, players = num("tasks", 4), num("updates", 25), num("players", 8)

local sched = scheduler.new()
local client = assert(ddb.new{
  endpoint = cfg.endpoint, region = cfg.region,   -- credentials from the environment
  transport = sched.transport,
  deadline_ms = 30000,
})
local store = assert(optimistic.new{ table = assert(cfg.table, "table=NAME is required"),
  client = client, key = { "pk" }, max_attempts = 200, deadline_ms = 60000 })

-- by[pk][who]: updates that succeeded; unknown_by[pk][who]: OutcomeUnknown (may have landed)
local stats = { thread = thread, ok = 0, failed = 0, unknown = 0, conflicts = 0,
  attempts = 0, errors = ddb.list(), by = {}, unknown_by = {} }

local function count(t, pk, who)
  local per = t[pk] or {}
  t[pk] = per
  per[who] = (per[who] or 0) + 1
end

-- A small deterministic generator per task, so that runs can be compared.
local function lcg(seed)
  local x = seed
  return function(n)
    x = (x * 1103515245 + 12345) % 2147483648
    return x % n + 1
  end
end

local function session(task)
  local who = ("t%dc%d"):format(thread, task)
  local pick = lcg(thread * 7919 + task * 104729)
  for _ = 1, updates do
    local pk = "player#" .. pick(players)
    local item, err, info = store:with_item({ pk = pk }, function(player)
      player = player or { pk = pk, score = 0, by = {} }
      player.score = player.score + 1
      player.by[who] = (player.by[who] or 0) + 1
      return player
    end)
    if item then
      stats.ok = stats.ok + 1
      stats.conflicts = stats.conflicts + info.conflicts
      stats.attempts = stats.attempts + info.attempts
      count(stats.by, pk, who)
    elseif err.code == "OutcomeUnknown" then
      stats.unknown = stats.unknown + 1
      count(stats.unknown_by, pk, who)
      stats.errors[#stats.errors + 1] = who .. " " .. pk .. ": " .. tostring(err)
    else
      stats.failed = stats.failed + 1
      stats.errors[#stats.errors + 1] = who .. " " .. pk .. ": " .. tostring(err)
    end
  end
end

for task = 1, tasks do sched:spawn(session, task) end

return {
  tick = function()
    return sched:tick()
  end,
  report = function()
    for _, e in ipairs(sched.errors) do stats.errors[#stats.errors + 1] = "task raised: " .. e end
    stats.frames, stats.requests = sched.frames, sched.requests
    sched:close()
    client:close()
    return ddb.encode_json(stats), stats.ok
  end,
}
