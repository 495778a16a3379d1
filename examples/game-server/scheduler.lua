-- A game loop's coroutine scheduler, and a ddb transport that yields to it.
--
-- Game logic runs in coroutines. When the ddb client sends a request, the transport yields
-- the request to the scheduler; the host's loop calls tick() once per frame, which performs
-- the I/O queued since the last frame and resumes each coroutine with its answer, then
-- resumes the coroutines whose sleep (a retry's backoff) is over. The core never calls into
-- Lua, so nothing yields across a C call: this works on Lua 5.1 to 5.4 and LuaJIT.
--
-- The I/O here is a blocking libcurl handle (core.curl_new), one request after another;
-- a host with its own event loop would start the transfer without blocking and resume the
-- coroutine from the completion callback instead. Everything else stays as it is.
local core = require "ddb.core"

local coroutine, table_remove = coroutine, table.remove
local unpack = table.unpack or unpack   -- luacheck: ignore 143
local monotonic_ms = core.monotonic_ms

local _M = {}
local Scheduler = {}
Scheduler.__index = Scheduler

--- A scheduler with its own libcurl handle. opts: connect_timeout_ms.
function _M.new(opts)
  opts = opts or {}
  local self = setmetatable({
    ready = {},      -- coroutines to resume this frame: { co = , args = { n = , ... } }
    io = {},         -- queued requests: { co = , url, headers, body, timeout_ms }
    sleeping = {},   -- { co = , at = monotonic ms }
    tasks = 0,       -- coroutines not finished
    errors = {},
    handle = core.curl_new{ connect_timeout_ms = opts.connect_timeout_ms or 1000 },
    frames = 0, requests = 0,
  }, Scheduler)
  -- The transport the ddb client uses: both methods yield to tick().
  self.transport = {
    name = "game-loop",
    request = function(_, url, headers, body, timeout_ms)
      return coroutine.yield("io", url, headers, body, timeout_ms)
    end,
    sleep = function(_, ms)
      coroutine.yield("sleep", ms)
    end,
  }
  return self
end

--- Starts fn(...) as a task; it first runs on the next tick.
function Scheduler:spawn(fn, ...)
  self.tasks = self.tasks + 1
  self.ready[#self.ready + 1] = { co = coroutine.create(fn), args = { n = select("#", ...), ... } }
end

local function resume(self, co, args)
  local r = { coroutine.resume(co, unpack(args, 1, args.n)) }
  if not r[1] then
    self.errors[#self.errors + 1] = tostring(r[2])
    self.tasks = self.tasks - 1
  elseif coroutine.status(co) == "dead" then
    self.tasks = self.tasks - 1
  elseif r[2] == "io" then
    self.io[#self.io + 1] = { co = co, r[3], r[4], r[5], r[6] }
  elseif r[2] == "sleep" then
    self.sleeping[#self.sleeping + 1] = { co = co, at = monotonic_ms() + (r[3] or 0) }
  else
    -- a task yielding for its own reasons (waiting a frame) runs again next frame
    self.ready[#self.ready + 1] = { co = co, args = { n = 0 } }
  end
end

--- One frame: perform the queued I/O and resume its coroutines, then wake the sleepers
-- that are due and run the tasks that are ready. Returns true when every task has
-- finished, else the milliseconds the host may idle before the next frame (0: at once).
function Scheduler:tick()
  self.frames = self.frames + 1
  local io = self.io
  self.io = {}
  for _, req in ipairs(io) do
    self.requests = self.requests + 1
    local args = { n = 4, self.handle:request(req[1], req[2], req[3], req[4]) }
    resume(self, req.co, args)
  end
  local now = monotonic_ms()
  local i = 1
  while i <= #self.sleeping do
    local s = self.sleeping[i]
    if s.at <= now then
      table_remove(self.sleeping, i)
      self.ready[#self.ready + 1] = { co = s.co, args = { n = 0 } }
    else
      i = i + 1
    end
  end
  local ready = self.ready
  self.ready = {}
  for _, t in ipairs(ready) do resume(self, t.co, t.args) end

  if self.tasks == 0 then return true end
  if #self.io > 0 or #self.ready > 0 then return 0 end
  local next_at
  for _, s in ipairs(self.sleeping) do
    if not next_at or s.at < next_at then next_at = s.at end
  end
  return next_at and math.max(0, next_at - monotonic_ms()) or 0
end

function Scheduler:close()
  self.handle:close()
end

return _M
