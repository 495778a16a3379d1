--- ddb.scheduler: many DynamoDB calls in flight from one Lua state, without threads.
-- Each task is a coroutine; its client's transport starts the request without blocking and
-- yields, and the scheduler resumes the task when the answer is in. A DynamoDB call is
-- signed, sent and parsed in C as on the blocking libcurl path, on kept connections that
-- libcurl makes and the module writes to and reads from itself (csrc/pool.c); other
-- requests (the credential providers', endpoints with a path, proxies) are libcurl's own
-- transfers on its multi interface. For tooling and batch jobs (a backfill, a migration, a
-- load generator) on plain Lua 5.2+ or LuaJIT.
--
--   local scheduler = require "ddb.scheduler"
--   local sched = scheduler.new()
--   local store = optimistic.new{ table = "Accounts", transport = sched:transport() }
--   for i = 1, 100 do
--     sched:spawn(function()
--       assert(store:with_item({ pk = "user#" .. i }, function(item) ... end))
--     end)
--   end
--   sched:run()   -- returns when every task has finished
--
-- A task that raises stops run() with that error (the others stay where they were; run()
-- can be called again). Tasks may spawn tasks. Sleeping (retry and conflict backoff)
-- parks only the task. The transport only works inside a task of its scheduler.
-- @module ddb.scheduler

local core = require "ddb.core"
local options = require "ddb.options"

local type, error, tostring, setmetatable, select, unpack =
  type, error, tostring, setmetatable, select, table.unpack or unpack
local co_create, co_resume, co_yield, co_running, co_status =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.running, coroutine.status
local monotonic_ms = core.monotonic_ms
local traceback = debug.traceback

local _M = { _VERSION = core._VERSION }

-- What a transport yields, so that a task's own yields can be told apart.
local WAIT = setmetatable({}, { __tostring = function() return "ddb.scheduler.WAIT" end })

local Scheduler = {}
Scheduler.__index = Scheduler

local SPEC = {
  ca_bundle = options.kind("string"),
  connect_timeout_ms = options.number(1, 600000, "milliseconds"),
  max_connections = options.whole(0, 1000000, "connections; 0: no cap"),
  max_answer_bytes = options.whole(core.MAX_ANSWER_BYTES_MIN, core.MAX_ANSWER_BYTES_MAX,
    "bytes"),
}

--- Creates a scheduler. opts: ca_bundle (or AWS_CA_BUNDLE), connect_timeout_ms (1000),
-- max_connections (the cap on open connections, for the DynamoDB calls' and for libcurl's
-- own transfers each; a call beyond it waits for a connection, within its deadline;
-- unlimited by default: one per request in flight), max_answer_bytes (the longest answer
-- body read, 32 MiB).
function _M.new(opts)
  opts = options.check("scheduler.new", opts or {}, SPEC, 2)
  local ca = opts.ca_bundle or os.getenv("AWS_CA_BUNDLE")
  if ca == "" then ca = nil end
  return setmetatable({
    multi = core.multi_new{ ca_bundle = ca, connect_timeout_ms = opts.connect_timeout_ms,
      max_connections = opts.max_connections, max_answer_bytes = opts.max_answer_bytes },
    ready = {},        -- coroutines to resume, in order
    spare = {},        -- the other ready list (the two are swapped on every pass)
    finished = {},     -- what multi:poll fills: ids of requests that finished
    waiting = {},      -- request id -> task coroutine
    timers = {},       -- sorted by time: { at, co }
    tasks = 0,         -- tasks started and not finished
    by_co = {},        -- coroutine -> task record
  }, Scheduler)
end

local function push_ready(self, co)
  local r = self.ready
  r[#r + 1] = co
end

--- Starts fn(...) as a task (it first runs inside run()). Returns the task record:
-- { done = bool, ok = bool, results = {...} | error = message }.
function Scheduler:spawn(fn, ...)
  if type(fn) ~= "function" then error("bad argument #1 to 'spawn' (function expected)", 2) end
  local args, n = { ... }, select("#", ...)
  local task = { done = false }
  local co = co_create(function()
    return fn(unpack(args, 1, n))
  end)
  task.co = co
  self.by_co[co] = task
  self.tasks = self.tasks + 1
  push_ready(self, co)
  return task
end

local function add_timer(self, at, co)
  local t = self.timers
  local i = #t + 1
  while i > 1 and t[i - 1][1] > at do
    t[i] = t[i - 1]
    i = i - 1
  end
  t[i] = { at, co }
end

local function current_task(self, what)
  local co, main = co_running()
  if not co or main or not self.by_co[co] then
    error(what .. " must run inside a task of this scheduler (sched:spawn)", 3)
  end
  return co
end

--- The transport for ddb.new / optimistic.new: its call (a DynamoDB request, signed, sent
-- and parsed in C) and its request (any other) start the request and yield until the answer
-- is in; its sleep yields until the time has passed.
function Scheduler:transport()
  local sched = self
  local multi = self.multi
  local waiting = self.waiting
  local t = {
    name = "multi",
    scheduler = sched,   -- for store:with_each, which runs its calls as tasks
    request = function(_, url, header_lines, body, timeout_ms)
      local co = current_task(sched, "a request on the scheduler's transport")
      local id, err = multi:add(url, header_lines, body, timeout_ms)
      if not id then return nil, err end
      waiting[id] = co
      co_yield(WAIT)
      return multi:finish(id)
    end,
    -- Client:call's one-call path, as the blocking libcurl handle's call(): result, nil,
    -- status, request_id | nil, err, status, headers, false | nil, err
    call = function(_, signer, url, op, body, timeout_ms, plain)
      local co = current_task(sched, "a request on the scheduler's transport")
      local id, err = multi:call(signer, url, op, body, timeout_ms)
      if not id then return nil, err end
      waiting[id] = co
      co_yield(WAIT)
      return multi:finish(id, plain)
    end,
    sleep = function(_, ms)
      local co = current_task(sched, "sleep on the scheduler's transport")
      if ms and ms > 0 then
        add_timer(sched, monotonic_ms() + ms, co)
        co_yield(WAIT)
      end
    end,
    close = function() end,   -- the scheduler owns the connections (sched:close())
  }
  t.signed_call = t   -- Client:call signs, sends and parses through t:call
  return t
end

-- Runs co until it yields or ends: the error message (with its traceback) of a task that
-- raised, else nil.
local function resume(self, co)
  local ok, first = co_resume(co)
  if co_status(co) == "dead" then
    local task = self.by_co[co]
    self.by_co[co] = nil
    self.tasks = self.tasks - 1
    task.done = true
    task.ok = ok
    if not ok then
      task.error = first
      return traceback(co, tostring(first))
    end
    return nil
  end
  -- a yield that is not ours (the task's own coroutine protocol): resume it again later
  if first ~= WAIT then push_ready(self, co) end
  return nil
end

--- Runs until every task has finished. Raises the error of a task that raised.
function Scheduler:run()
  local multi = self.multi
  local finished, waiting = self.finished, self.waiting
  while true do
    -- what is ready now; what they make ready waits for the next pass (after a poll)
    local batch = self.ready
    local n = #batch
    self.ready = self.spare
    for i = 1, n do
      local err = resume(self, batch[i])
      batch[i] = nil
      if err then
        -- the tasks after it in this pass stay ready for the next run()
        for j = i + 1, n do
          push_ready(self, batch[j])
          batch[j] = nil
        end
        self.spare = batch
        error(err, 0)
      end
    end
    self.spare = batch
    if self.tasks == 0 then return true end

    local timers = self.timers
    local wait = 1000
    if #self.ready > 0 then
      wait = 0
    elseif #timers > 0 then
      wait = math.max(0, math.ceil(timers[1][1] - monotonic_ms()))
    end
    if multi:pending() > 0 then
      for i = 1, multi:poll(wait, finished) do
        local id = finished[i]
        local co = waiting[id]
        if co then
          waiting[id] = nil
          push_ready(self, co)
        end
      end
    elseif #timers > 0 then
      if wait > 0 then core.sleep_ms(wait) end
    elseif #self.ready == 0 then
      error("scheduler: tasks are waiting, but on nothing this scheduler drives " ..
        "(did a task yield for another reason?)", 2)
    end
    local now = monotonic_ms()
    while #timers > 0 and timers[1][1] <= now do
      local t = table.remove(timers, 1)
      push_ready(self, t[2])
    end
  end
end

--- Requests in flight.
function Scheduler:pending()
  return self.multi:pending()
end

--- The connections of the DynamoDB calls: { connections = made so far, open = open now }.
function Scheduler:stats()
  return self.multi:stats()
end

--- Closes the connections (tasks still waiting are never resumed).
function Scheduler:close()
  self.multi:close()
end

return _M
