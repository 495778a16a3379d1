--- ddb.engine: the one read-modify-write engine under with_item and with_items.
--
-- One call goes through named steps, in a loop bounded by the call's deadline:
--
--     read ──► run ──► plan ──► commit ──► classify
--      ▲                          ▲           │ landed ─────────────────► success
--      │                          │           │ refused by a condition ─► (conflict) run
--      │                          │           │ refused for good ───────► failure, applied "no"
--      │                          │           ▼ lost (no answer)
--      └──────────── resolve ◄── view ◄── read again (or, trusted, the same commit again)
--                       │ applied ──► success      │ pending ──► commit the same again
--                       │ refuted ──► run again    │ unknown ──► OutcomeUnknown
--
--   read      the items, strongly consistent (ddb.engine.ops)
--   run       the caller's function on fresh copies (adapter.run: with_item's one item, or
--             with_items' map of items and its puts)
--   plan      the commit: one action per item, each conditioned on the state it was planned
--             from, under one new random token (ddb.engine.plan)
--   commit    one request (ddb.engine.ops.send)
--   classify  what the answer proves (ops' outcomes)
--   resolve   what the items, read again, prove about a commit whose answer was lost
--             (ddb.engine.rules)
--
-- At most one commit is live (sent, outcome unknown) at a time: a new run starts only once
-- the last commit is proven not to have landed and never to land. A call that fails with
-- anything but OutcomeUnknown has written nothing, and nothing it sent can land later.
-- @module ddb.engine

local ddb = require "ddb"
local core = require "ddb.core"
local state = require "ddb.engine.state"
local rules = require "ddb.engine.rules"
local ops = require "ddb.engine.ops"

local ipairs, tostring = ipairs, tostring
local new_error = ddb.new_error

local _M = {}

local TOKEN_BYTES = 9       -- 72 random bits: 12 base64url characters per history entry
local TOKEN_WINDOW_MS = 9 * 60 * 1000   -- within DynamoDB's 10-minute idempotency window

function _M.new_token()
  return core.random_token(TOKEN_BYTES)
end

-- Runs fn(...) as pcall does, but lets fn yield on every runtime: PUC Lua 5.1 cannot yield
-- across pcall, so there fn runs in a coroutine of its own whose yields are passed on.
local PUC51 = _VERSION == "Lua 5.1" and not jit
local unpack = table.unpack or unpack   -- luacheck: ignore 143
local function pack(...) return { n = select("#", ...), ... } end
function _M.call_protected(fn, ...)
  if not PUC51 then return pcall(fn, ...) end
  local co = coroutine.create(fn)
  local r = pack(coroutine.resume(co, ...))
  while r[1] and coroutine.status(co) ~= "dead" do
    r = pack(coroutine.resume(co, coroutine.yield(unpack(r, 2, r.n))))
  end
  return unpack(r, 1, r.n)
end

local function elapsed(ctx)
  ctx.info.elapsed_ms = ctx.clock() - ctx.started
end

-- Every failure but OutcomeUnknown: provably nothing written, whatever the request said.
local function fail(ctx, err)
  elapsed(ctx)
  err.applied = "no"
  err.info = ctx.info
  return nil, err
end

local function unknown(ctx, c, message, cause, possibly_twice)
  elapsed(ctx)
  return nil, new_error("OutcomeUnknown", message, { applied = "maybe", cause = cause,
    info = ctx.info, token = c.token, possibly_twice = possibly_twice })
end

local function lost_unknown(ctx, c, cause)
  return unknown(ctx, c, "a commit's answer was lost and its items cannot prove whether it " ..
    "was applied (" .. tostring(cause and cause.code or "no answer") .. "); read them and decide",
    cause)
end

-- The states of items read (AV maps or false) for the targets; nil, err for a bad version.
local function states_of(targets, items, now_s)
  local out = {}
  for i, t in ipairs(targets) do
    local s, err = state.of(t.cfg, items[i], now_s)
    if not s then
      err.message = t.label and (t.label .. ": " .. err.message) or err.message
      return nil, err
    end
    out[i] = s
  end
  return out
end

local function commit_targets(c)
  local targets = {}
  for i, a in ipairs(c.actions) do targets[i] = a.target end
  return targets
end

-- The view of commit c from an answer's items: per action the state now, or nil when some
-- item's state is not known from it.
local function view_from(c, items, now_s)
  local view = {}
  for i, a in ipairs(c.actions) do
    local it = items[i]
    if it == "as read" then
      if not a.read then return nil end
      view[i] = a.read
    elseif it == nil or it == "moved" then
      return nil
    else
      local s = state.of(a.target.cfg, it, now_s)
      if not s then return nil end
      view[i] = s
    end
  end
  return view
end

-- What a view tells the history sizer: how far the items moved since they were read.
local function observe(ctx, c, view)
  local sizer = ctx.sizer
  if not sizer or not ctx.read_at then return end
  local dt = ctx.clock() - ctx.read_at
  for i, a in ipairs(c.actions) do
    if a.read and view[i] then sizer:observe(a.read, view[i], dt) end
  end
end

local function hook(ctx, name, ev)
  ddb.run_hook(ctx.owner or ctx, ctx[name], ev)
end

local function note_conflict(ctx, moved)
  local info = ctx.info
  info.conflicts = info.conflicts + 1
  if ctx.adapter.note_conflict then ctx.adapter.note_conflict(ctx, moved) end
  hook(ctx, "on_conflict", ctx.adapter.conflict_event(ctx, moved))
end

-- The items (indices of targets) whose state moved between the states a commit was planned
-- from and a view.
local function moved_in(c, view, n)
  local moved = {}
  for i = 1, n do
    local a = c.actions[i]
    if a.read and not state.same(a.read, view[i]) then moved[#moved + 1] = i end
  end
  return moved
end

-- One summary event per call for the metrics hook: what the call did and what it cost.
local function summary(ctx, ok, err, info)
  local on_event = ctx.on_event
  if not on_event then return end
  info = info or (err and err.info) or ctx.info
  local tables, seen = {}, {}
  for _, t in ipairs(ctx.targets or {}) do
    if not seen[t.table] then
      seen[t.table] = true
      tables[#tables + 1] = t.table
    end
  end
  ddb.run_hook(ctx.owner or ctx, on_event, {
    kind = "call", op = ctx.op, table = tables[1], tables = tables,
    outcome = ok and "ok" or tostring(err and err.code), action = info.action,
    attempts = info.attempts, conflicts = info.conflicts, requests = info.requests,
    resends = info.resends, elapsed_ms = info.elapsed_ms,
    consumed_capacity = info.consumed_capacity,
  })
end

--- Ends a call refused before its first step (a key that does not fit the table, a failed
-- DescribeTable) as every failure ends: applied "no", its statistics, its summary event.
function _M.refuse(ctx, err)
  local res, e, info = fail(ctx, err)
  summary(ctx, false, e, info)
  return res, e, info
end

--- Runs one call and reports it to the metrics hook (ctx.on_event, ctx.op).
function _M.call(ctx)
  local res, err, info = _M.run(ctx)
  summary(ctx, res ~= nil, err, info)
  return res, err, info
end

-- -----------------------------------------------------------------------------
-- The steps. Each takes the call's context and its loop state k (current: per target the
-- item as last known, AV map or false, nil: read them; live: the commit sent whose outcome
-- is not known; view: per action of live, its state now; resolve_opts: how that view was
-- obtained; resend: send live again at once) and returns nothing to go on, or k with the
-- call's results in it (done(k, ...)) to end it.
-- -----------------------------------------------------------------------------
local function done(k, ...)
  if select("#", ...) > 3 then error("engine: a call ends with at most three results", 2) end
  k.r1, k.r2, k.r3 = ...
  return k
end

-- The results done() kept (_M.call gives the caller three, whatever a step gave).
local function results(k)
  return k.r1, k.r2, k.r3
end

local function current_from(k, n, states)
  k.current = {}
  for i = 1, n do k.current[i] = state.raw(states[i]) end
end

-- read: the items, when nothing is live and nothing is known of them
local function step_read(ctx, k)
  local items, err = ops.read(ctx, ctx.targets)
  if not items then return done(k, fail(ctx, err)) end
  k.current = items
  ctx.read_at, ctx.from_answer = ctx.clock(), false
end

-- resolve: what the items, read again (or brought by an answer), prove about the live commit
local function step_resolve(ctx, k)
  local live, targets = k.live, ctx.targets
  if not k.view then
    local items, err = ops.read(ctx, commit_targets(live))
    if not items then return done(k, lost_unknown(ctx, live, err)) end
    k.view, k.resolve_opts = view_from(live, items, ctx.now_s()), nil
  end
  local view = k.view
  observe(ctx, live, view)
  local verdict = rules.resolve(live, view, k.resolve_opts)
  k.view = nil
  if verdict == "applied" then
    elapsed(ctx)
    return done(k, ctx.adapter.success(ctx, live, view))
  elseif verdict == "pending" then
    k.resend = true
    local read = {}
    for i = 1, #targets do read[i] = live.actions[i].read end
    current_from(k, #targets, read)
  elseif verdict == "refuted" then
    current_from(k, #targets, view)
    ctx.read_at, ctx.from_answer = ctx.clock(), false
    note_conflict(ctx, moved_in(live, view, #targets))
    k.live = nil
  else
    return done(k, lost_unknown(ctx, live, live.cause))
  end
end

-- plan: the commit to send, the live one again or a new run's; c | done
local function step_plan(ctx, k)
  local info = ctx.info
  if k.resend then
    k.resend = false
    info.resends = info.resends + 1
    if not ops.pause(ctx, ctx.client.retry:backoff(10, 500, info.resends)) then
      return nil, done(k, lost_unknown(ctx, k.live, new_error("DeadlineExceeded", "the call's " ..
        "deadline passed before the commit could be sent again", { cause = k.live.cause })))
    end
    return k.live
  end
  if ctx.max_attempts and info.attempts >= ctx.max_attempts then
    return nil, done(k, fail(ctx, ctx.adapter.exhausted(ctx)))
  end
  if ctx.clock() >= ctx.deadline then
    return nil, done(k, fail(ctx, new_error("DeadlineExceeded", ("the call's deadline passed " ..
      "after %d conflicts"):format(info.conflicts))))
  end
  local states, serr = states_of(ctx.targets, k.current, ctx.now_s())
  if not states then return nil, done(k, fail(ctx, serr)) end
  info.attempts = info.attempts + 1
  local planned, perr = ctx.adapter.run(ctx, states, _M.new_token())
  if planned == nil then return nil, done(k, fail(ctx, perr)) end
  if planned == false then
    elapsed(ctx)
    return nil, done(k, ctx.adapter.nothing(ctx, states))
  end
  return planned
end

-- commit: paced on a contended item, sent once; the outcome | nil, done
local function step_commit(ctx, k, c)
  local pacer = ctx.pacer
  if pacer and c ~= k.live then
    local ms = pacer:wait(ctx.clock(), ctx.from_answer, ctx.client.retry)
    if ms > 0 and not ops.pause(ctx, ms) then
      if c.maybe then return nil, done(k, lost_unknown(ctx, c, c.cause)) end
      return nil, done(k, fail(ctx, new_error("DeadlineExceeded", ("the call's deadline " ..
        "passed after %d conflicts"):format(ctx.info.conflicts))))
    end
  end
  local sent_at = ctx.clock()
  local out = ops.send(ctx, c, sent_at)
  if pacer then
    local now = ctx.clock()
    pacer:wrote(now - sent_at, out.conflict or out.transient, now)
  end
  return out
end

-- classify: what the answer to commit c proves
local function step_classify(ctx, k, c, out)
  local targets = ctx.targets
  if out.ok then
    if out.twice and not rules.lands_once(c, ctx.trusted) then
      -- two copies conditioned on a state without an anchor can land on two incarnations
      -- of the item (deleted and created again in between)
      return done(k, unknown(ctx, c, "the commit landed, but the transport sent it twice and " ..
        "its items cannot prove that only one copy did", nil, true))
    end
    elapsed(ctx)
    return done(k, ctx.adapter.success(ctx, c, nil, out.res))
  elseif out.conflict then
    local v = view_from(c, out.items, ctx.now_s())
    if v then observe(ctx, c, v) end
    if out.maybe or c.maybe then
      -- an earlier copy may have landed: what the items say decides; DynamoDB keeps a
      -- ClientRequestToken for 10 minutes after its first use
      k.live, c.cause, k.view = c, out.err, v
      k.resolve_opts = { cancelled = true, trusted = ctx.trusted and not c.single and
        ctx.clock() - c.first_sent < TOKEN_WINDOW_MS }
    elseif v and rules.resolve(c, v) == "applied" then
      -- the server saw this commit twice (a copy resent on the way): the first landed
      elapsed(ctx)
      return done(k, ctx.adapter.success(ctx, c, v))
    else
      local final = ctx.adapter.refused and ctx.adapter.refused(ctx, c, out.items)
      if final then return done(k, fail(ctx, final)) end
      if v then
        current_from(k, #targets, v)
        ctx.read_at, ctx.from_answer = ctx.clock(), true
        note_conflict(ctx, moved_in(c, v, #targets))
      else
        k.current = nil
        note_conflict(ctx, {})
      end
      k.live = nil
    end
  elseif out.transient then
    if c.maybe then
      k.live, c.cause, k.view = c, out.err, nil
    else
      k.current, k.live = nil, nil
      local moved = {}
      for _, i in ipairs(out.moved or {}) do
        if i <= #targets then moved[#moved + 1] = i end
      end
      note_conflict(ctx, moved)
    end
  elseif out.lost then
    c.maybe, c.cause, k.live, k.view = true, out.err, c, nil
    if not rules.can_settle(c) and not ctx.trusted then
      return done(k, unknown(ctx, c, "the commit may or may not have been applied (" ..
        tostring(out.err.code) .. "), and its items keep no write tokens that could tell",
        out.err))
    end
    -- trusted: DynamoDB settles it, the same token lands at most once
    if ctx.trusted and not c.single then k.resend = true end
  elseif c.maybe then
    -- refused now, but an earlier copy may have landed: read and resolve
    k.live, c.cause, k.view = c, out.err, nil
  else
    return done(k, fail(ctx, out.err))
  end
end

--- Runs one call. ctx: client, clock, started, deadline, info, targets, adapter, fn,
-- max_attempts (nil: as many as the deadline allows), pacer, sizer, trusted (a
-- ClientRequestToken DynamoDB honours: resend instead of reading), on_conflict.
function _M.run(ctx)
  ctx.now_s = ctx.now_s or core.now
  -- every field the steps set, named here so that the table is made at its size once
  local k = { resend = false, current = nil, live = nil, view = nil, resolve_opts = nil,
    r1 = nil, r2 = nil, r3 = nil }
  while true do
    local result
    if k.live and not k.resend then
      result = step_resolve(ctx, k)
    elseif not k.live and k.current == nil then
      result = step_read(ctx, k)
    end
    if result then return results(result) end
    local c
    c, result = step_plan(ctx, k)
    if result then return results(result) end
    local out
    out, result = step_commit(ctx, k, c)
    if result then return results(result) end
    result = step_classify(ctx, k, c, out)
    if result then return results(result) end
  end
end

return _M
