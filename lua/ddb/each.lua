--- ddb.each: `store:with_each(keys, fn[, opts])`, independent read-modify-writes of many
-- items at once. DynamoDB's batch writes cannot carry conditions, so a versioned batch is
-- many conditional writes: this runs them as with_item calls, each with with_item's
-- guarantees and its own outcome, under one deadline, `concurrency` at a time, on what the
-- runtime offers: nginx's light threads (`ngx.thread.spawn`/`wait`), the tasks of the
-- store's ddb.scheduler, the caller's `spawn`/`join` (a game host's coroutines), or one after
-- another.
-- @module ddb.each

local core = require "ddb.core"
local runtime = require "ddb.runtime"
local settings = require "ddb.engine.settings"

local type, ipairs, error, pcall, math_min = type, ipairs, error, pcall, math.min

local _M = {}

local DEFAULT_CONCURRENCY = 16

local function in_ngx_thread_phase()
  local ngx = runtime.ngx()
  if not ngx or not ngx.thread then return false end
  local phase = ngx.get_phase()
  return phase == "rewrite" or phase == "access" or phase == "content" or phase == "timer" or
    phase == "ssl_cert" or phase == "ssl_session_fetch"
end

-- A runner: spawn(fn) -> handle; wait(handle) waits for it and returns true, or false and
-- what it raised. wait raises nothing itself: on Lua 5.1 a pcall around a wait that yields
-- (a sub-task of the scheduler) would be "attempt to yield across a C-call boundary".
local function ngx_runner()
  return "ngx.thread", function(fn) return ngx.thread.spawn(fn) end, function(h)
    local ok, err = ngx.thread.wait(h)
    return ok, err
  end
end

local function scheduler_runner(sched, transport)
  local co, main = coroutine.running()
  if co and not main and sched.by_co[co] then
    -- inside a task of that scheduler: sub-tasks, waited for by sleeping on its transport
    return "ddb.scheduler", function(fn) return sched:spawn(fn) end, function(task)
      while not task.done do transport:sleep(1) end
      return task.ok, task.error
    end
  end
  -- outside: the tasks run (all of them) when the first join drives the scheduler
  local ran = false
  return "ddb.scheduler", function(fn) return sched:spawn(fn) end, function(task)
    if not ran then
      ran = true
      sched:run()
    end
    return task.ok, task.error
  end
end

local function sequential_runner()
  -- no pcall: the calls may yield in the caller's transport (a raise goes straight out,
  -- as it would from with_item)
  return "sequential", function(fn) return { fn = fn } end, function(h)
    h.fn()
    return true
  end
end

local function pick_runner(store, opts)
  if opts.spawn or opts.join then
    if not (opts.spawn and opts.join) then
      error("with_each: options 'spawn' and 'join' go together", 3)
    end
    local join = opts.join
    return "spawn/join", opts.spawn, function(h) return pcall(join, h) end
  end
  if in_ngx_thread_phase() then return ngx_runner() end
  local t = store.client.transport
  if type(t) == "table" and t.scheduler then return scheduler_runner(t.scheduler, t) end
  return sequential_runner()
end

--- See Store:with_each in ddb.optimistic.
function _M.run(store, keys, fn, opts)
  if type(keys) ~= "table" then error("bad argument #1 to 'with_each' (list of keys expected)", 3) end
  if type(fn) ~= "function" then error("bad argument #2 to 'with_each' (function expected)", 3) end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #3 to 'with_each' (options table expected)", 3)
  end
  opts = settings.check("with_each", opts, settings.EACH, nil, 3)
  for i, k in ipairs(keys) do
    if type(k) ~= "table" then
      error(("bad argument #1 to 'with_each' (keys[%d] must be a key table)"):format(i), 3)
    end
  end
  local clock = store.client.clock or core.monotonic_ms
  local started = clock()
  local deadline = started + (opts.deadline_ms or store.deadline_ms)
  local name, spawn, wait = pick_runner(store, opts)
  local width = math_min(opts.concurrency or DEFAULT_CONCURRENCY, #keys)
  if name == "sequential" then width = math_min(width, 1) end

  local results, next_i = {}, 0
  local summary = { ok = 0, failed = 0, unknown = 0, concurrency = width, runner = name }
  local function call_opts()
    local left = deadline - clock()
    if left < 1 then left = 1 end   -- past the deadline: the call fails at once, as it says
    return { deadline_ms = left, max_attempts = opts.max_attempts, idempotent = opts.idempotent }
  end
  -- each worker takes the next key until none is left
  local function worker()
    while true do
      next_i = next_i + 1
      local i = next_i
      local key = keys[i]
      if key == nil then return end
      local item, err, info = store:with_item(key, function(it) return fn(it, key) end,
        call_opts())
      results[i] = { item = item, err = err, info = info or (err and err.info) }
      if item then
        summary.ok = summary.ok + 1
      elseif err.code == "OutcomeUnknown" then
        summary.unknown = summary.unknown + 1
      else
        summary.failed = summary.failed + 1
      end
    end
  end
  local handles = {}
  for w = 1, width do handles[w] = spawn(worker) end
  local first_err
  for _, h in ipairs(handles) do
    local ok, e = wait(h)
    if not ok and first_err == nil then first_err = e end
  end
  if first_err ~= nil then error(first_err, 0) end   -- the function raised: as with_item
  summary.elapsed_ms = clock() - started
  return results, nil, summary
end

return _M
