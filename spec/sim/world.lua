-- The simulator's world: a seeded scheduler in virtual time, the network between the actors
-- and the DynamoDB model with its faults, and the transport that plugs the real client
-- (and so the real engine) into it. Everything is decided by one pseudo-random stream, so a
-- seed replays exactly.
local core = require "ddb.core"
local ddb = require "ddb"

local World = {}
World.__index = World

local M = {}

-- Park-Miller: exact in doubles, the same stream on every Lua runtime
local function rng(seed)
  local x = (seed * 7919 + 12345) % 2147483646 + 1
  local function nxt()
    x = (x * 48271) % 2147483647
    return x / 2147483647
  end
  for _ = 1, 8 do nxt() end   -- neighbouring seeds start far apart
  return nxt
end
M.rng = rng

-- the event queue: a binary heap ordered by (time, sequence)
local function less(a, b)
  if a.t ~= b.t then return a.t < b.t end
  return a.seq < b.seq
end

function World:at(t, fn)
  self.seq = self.seq + 1
  local h = self.heap
  local e = { t = t, seq = self.seq, fn = fn }
  h[#h + 1] = e
  local i = #h
  while i > 1 do
    local p = (i - i % 2) / 2
    if less(h[i], h[p]) then h[i], h[p] = h[p], h[i]; i = p else break end
  end
end

local function pop(h)
  local top = h[1]
  local last = h[#h]
  h[#h] = nil
  if #h > 0 then
    h[1] = last
    local i = 1
    while true do
      local l, r, m = 2 * i, 2 * i + 1, i
      if l <= #h and less(h[l], h[m]) then m = l end
      if r <= #h and less(h[r], h[m]) then m = r end
      if m == i then break end
      h[i], h[m] = h[m], h[i]
      i = m
    end
  end
  return top
end

function World:log(fmt, ...)
  if self.tracing then
    self.trace[#self.trace + 1] = ("%9.3f %s"):format(self.now, fmt:format(...))
  end
end

function World:resume(a, ...)
  local prev = self.current
  self.current = a
  local ok, err = coroutine.resume(a.co, ...)
  self.current = prev
  if not ok then
    error(("actor %s failed at t=%.3f: %s\n%s"):format(a.name, self.now, tostring(err),
      debug.traceback(a.co)), 0)
  end
  if coroutine.status(a.co) == "dead" then a.done = true end
end

function World:spawn(name, fn, delay)
  local a = { name = name }
  a.co = coroutine.create(function() fn(a) end)
  self.actors[#self.actors + 1] = a
  self:at(self.now + (delay or 0), function() self:resume(a) end)
  return a
end

--- From inside an actor: waits ms of virtual time.
function World:sleep(ms)
  local a = self.current
  self:at(self.now + (ms > 0 and ms or 0), function() self:resume(a) end)
  coroutine.yield()
end

--- Runs events until none is left or time passes limit.
function World:run(limit)
  local h = self.heap
  while #h > 0 do
    local e = pop(h)
    if e.t > limit then
      self.truncated = true
      break
    end
    if e.t > self.now then self.now = e.t end
    e.fn()
  end
end

-- -----------------------------------------------------------------------------
-- The network and its faults
-- -----------------------------------------------------------------------------
-- Each kind: what the copy of the request does. "before" kinds never reach the server.
M.FAULTS = {
  refuse = "before",            -- connection refused: nothing sent (applied "no")
  reset_before = "before",      -- reset after sending, before the server read it
  status_500 = "before",        -- a 500 from a front end that did not forward it
  status_503 = "before",
  throttle = "before",
  late = "delay",               -- the request reaches the server after the client gave up
  duplicate = "twice",          -- reaches the server twice (a transport's own resend)
  drop_after = "after",         -- executed, then the connection reset
  hold = "after",               -- executed, the answer held past the client's timeout
  status_500_after = "after",
  truncate = "after",
  not_json = "after",
}
local FAULT_NAMES = {}
for k in pairs(M.FAULTS) do FAULT_NAMES[#FAULT_NAMES + 1] = k end
table.sort(FAULT_NAMES)
M.FAULT_NAMES = FAULT_NAMES

local DDB = "com.amazonaws.dynamodb.v20120810#"

local function op_of(lines)
  for _, l in ipairs(lines) do
    local op = l:match("^[Xx]%-[Aa]mz%-[Tt]arget:%s*DynamoDB_%d+%.(%w+)")
    if op then return op end
  end
  error("sim: request without X-Amz-Target", 0)
end

function World:pick_fault(op)
  local rates = self.faults
  if not rates then return nil end
  local r = self.rand()
  for _, k in ipairs(FAULT_NAMES) do
    local p = rates[k]
    if p and (not self.fault_ops or self.fault_ops[op]) then
      if r < p then return k end
      r = r - p
    end
  end
  return nil
end

local function transport_error(code, message, applied, class)
  return ddb.new_error(code, message, { applied = applied, retry_class = class,
    retryable = class ~= "none" })
end

-- The copy's tag: which call of which actor sent it, and which run of the caller's
-- function planned it (the run current when its body was first sent).
local function tag_of(a, body)
  local call = a and a.call
  if not call then return { actor = a and a.name } end
  local run = call.bodies[body]
  if not run then
    run = #call.runs
    call.bodies[body] = run
  end
  return { call = call, run = run }
end

function World:exchange(op, body, tag)
  local req = core.decode(body)
  local status, doc = self.model:handle(op, req, self.now, tag)
  return status, doc
end

--- The transport a client of actor a uses: request() yields until the answer or the timeout.
function World:transport()
  local w = self
  return {
    name = "sim",
    request = function(_, _, lines, body, timeout_ms)
      local a = w.current
      local op = op_of(lines)
      local tag = tag_of(a, body)
      local fault = w:pick_fault(op)
      w.copies = w.copies + 1
      local id = w.copies
      if fault then w.fired[fault] = (w.fired[fault] or 0) + 1 end
      w:log("%s -> %s #%d%s%s", a and a.name or "?", op, id, fault and (" [" .. fault .. "]") or "",
        tag.call and (" call " .. tag.call.id .. " run " .. tag.run) or "")
      local waiting = true
      local function answer(status, headers, rbody, resent)
        if not waiting then return end
        waiting = false
        w:resume(a, status, headers, rbody, resent)
      end
      local function fail_with(err)
        if not waiting then return end
        waiting = false
        w:resume(a, nil, err)
      end
      local t0 = w.now
      local lat = function() return 0.05 + w.rand() * w.latency_ms end
      w:at(t0 + timeout_ms, function()
        if waiting then
          w:log("%s timeout #%d", a.name, id)
          fail_with(transport_error("Timeout", ("no answer within %s ms"):format(timeout_ms),
            "maybe", "timeout"))
        end
      end)
      local kind = fault and M.FAULTS[fault]
      if fault == "refuse" then
        w:at(t0 + lat(), function()
          fail_with(transport_error("ConnectError", "connection refused", "no", "transient"))
        end)
      elseif kind == "before" then
        w:at(t0 + lat() + lat(), function()
          if fault == "reset_before" then
            fail_with(transport_error("NetworkError", "connection reset by peer", "maybe",
              "transient"))
          else
            local code = fault == "throttle" and 400 or (fault == "status_503" and 503 or 500)
            local kindname = fault == "throttle" and "ProvisionedThroughputExceededException" or
              (fault == "status_503" and "ServiceUnavailable" or "InternalServerError")
            answer(code, { ["x-amzn-requestid"] = "sim" .. id },
              core.encode({ __type = DDB .. kindname, message = "injected" }))
          end
        end)
      else
        local d_send = lat()
        if kind == "delay" then d_send = timeout_ms * (0.5 + 2.5 * w.rand()) end
        w:at(t0 + d_send, function()
          local status, doc = w:exchange(op, body, tag)
          w:log("server #%d %s: %d %s", id, op, status, doc.__type and doc.__type:match("#(.*)") or "ok")
          local resent = nil
          local function deliver()
            local rbody = core.encode(doc)
            if fault == "drop_after" then
              fail_with(transport_error("NetworkError", "connection reset after sending",
                "maybe", "transient"))
            elseif fault == "hold" then
              return
            elseif fault == "status_500_after" then
              answer(500, { ["x-amzn-requestid"] = "sim" .. id }, core.encode({
                __type = DDB .. "InternalServerError", message = "injected after forwarding" }),
                resent)
            elseif fault == "truncate" then
              -- cut short: the transport sees the connection end before Content-Length
              fail_with(transport_error("NetworkError", ("the connection closed after %d of " ..
                "%d bytes of the answer"):format(math.floor(#rbody / 2), #rbody), "maybe",
                "transient"))
            elseif fault == "not_json" then
              answer(200, { ["x-amzn-requestid"] = "sim" .. id }, "<html>oops</html>", resent)
            else
              answer(status, { ["x-amzn-requestid"] = "sim" .. id }, rbody, resent)
            end
          end
          if kind == "twice" then
            resent = true
            w:at(w.now + w.rand() * 2, function()
              status, doc = w:exchange(op, body, tag)
              w:log("server #%d again %s: %d %s", id, op, status,
                doc.__type and doc.__type:match("#(.*)") or "ok")
              w:at(w.now + lat(), deliver)
            end)
          else
            w:at(w.now + lat(), deliver)
          end
        end)
      end
      local status, headers, rbody, resent = coroutine.yield()
      return status, headers, rbody, resent
    end,
    sleep = function(_, ms) w:sleep(ms) end,
  }
end

function M.new(seed, opts)
  opts = opts or {}
  local w = setmetatable({ now = 0, seq = 0, heap = {}, actors = {}, trace = {},
    tracing = opts.trace, copies = 0, fired = {}, latency_ms = opts.latency_ms or 1.0,
    faults = opts.faults, fault_ops = opts.fault_ops }, World)
  w.rand = rng(seed)
  w.clock = function() return w.now end
  return w
end

return M
