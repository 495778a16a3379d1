--- ddb.credentials.provider: one credential source behind a cache. Credentials with an
-- expiry are refreshed ahead of it, with jitter; refreshes are single-flight (others keep the
-- current credentials, or wait for the refresh's result with the transport's sleep); a failed
-- early refresh keeps the current ones while they are valid.
-- @module ddb.credentials.provider

local core = require "ddb.core"
local creds = require "ddb.credentials.creds"
local context = require "ddb.credentials.context"

local type, tostring, setmetatable, pcall, error, rawget =
  type, tostring, setmetatable, pcall, error, rawget
local huge = math.huge
local co_running = coroutine.running
local _G = _G
local cred_error, iso8601 = creds.error, creds.iso8601
local sleep, past = context.sleep, context.past

local _M = {}

local Provider = {}
Provider.__index = Provider
_M.Provider = Provider

function Provider.__tostring(p)
  return "ddb.credentials.provider{" .. p.source.name .. "}"
end

local function new_provider(ctx, source)
  return setmetatable({ ctx = ctx, source = source, name = source.name, refresh_at = huge,
    retry_at = 0 }, Provider)
end

local function jitter(ctx)
  local b = core.random_bytes(2)
  return ctx.refresh_jitter_s * (b:byte(1) * 256 + b:byte(2)) / 65536
end

local function schedule(ctx, c, now)
  if not c.expiration then return huge end
  local at = c.expiration - ctx.refresh_ahead_s - jitter(ctx)
  local half = now + (c.expiration - now) / 2
  if at < half then at = half end
  return at
end

local function usable(ctx, c, now)
  return c ~= nil and (c.expiration == nil or now < c.expiration - ctx.expiry_margin_s)
end

-- pcall lets a coroutine yield inside it everywhere but on PUC Lua 5.1, where a fetch that
-- yields (a cosocket, a game loop's transport) must run unprotected.
local YIELDABLE_PCALL = _VERSION ~= "Lua 5.1" or rawget(_G, "jit") ~= nil

-- A fetch that failed once the caller's deadline had passed, or that stopped retrying
-- because the next attempt could not finish before it, failed for lack of time, whatever the
-- last attempt said: DeadlineExceeded, with that as the reason.
local function deadline_error(name, err, deadline)
  if type(err) ~= "table" or err.code == "DeadlineExceeded" or
      not (past(deadline) or err.out_of_time) then
    return err
  end
  return cred_error(("the call's deadline passed while fetching credentials from %s (%s)"):format(
    name, tostring(err.message)), "DeadlineExceeded")
end

function Provider:_refresh(old, forced, deadline)
  local ctx = self.ctx
  local mark = { co = co_running(), deadline = ctx.now() + ctx.refresh_timeout_s }
  self.inflight = mark
  local ok, new, err
  if YIELDABLE_PCALL or co_running() == nil then   -- (5.1's main thread cannot yield anyway)
    ok, new, err = pcall(self.source.fetch, ctx, deadline)
  else
    ok, new, err = true, self.source.fetch(ctx, deadline)
  end
  if self.inflight == mark then self.inflight = nil end
  -- a raising fetch is a bug (or a programmer's mistake): the state stays sound, the error goes on
  if not ok then error(new, 0) end
  local now = ctx.now()
  if new and not usable(ctx, new, now) then
    new, err = nil, cred_error(("%s gave credentials that expire at %s, already expired or " ..
      "too close to it"):format(self.name, iso8601(new.expiration)))
  end
  if not new then err = deadline_error(self.name, err, deadline) end
  if new then
    self.creds, self.refresh_at, self.retry_at, self.last_error = new, schedule(ctx, new, now),
      0, nil
    self.fetches = (self.fetches or 0) + 1
    if self.warned then
      self.warned = false
      ctx.log("info", "credentials from " .. self.name .. " refreshed again")
    end
    return new
  end
  if type(err) ~= "table" then err = cred_error(tostring(err)) end
  self.last_error = err
  if not forced and old and old.expiration and usable(ctx, old, now) then
    self.retry_at = now + ctx.retry_failed_s
    if not self.warned then
      self.warned = true
      ctx.log("warn", ("refreshing credentials from %s failed; the current ones stay in use " ..
        "until %s: %s"):format(self.name, iso8601(old.expiration), tostring(err.message)))
    end
    return old
  end
  return nil, err
end

function Provider:_wait(old, forced, deadline)
  local ctx = self.ctx
  local mark = self.inflight
  if mark.co == co_running() then
    return nil, cred_error("credentials from " .. self.name .. " were asked for while being " ..
      "fetched by the same caller (does a credentials function call the client?)")
  end
  while self.inflight == mark and ctx.now() < mark.deadline do
    -- another caller's fetch may run to its own (later) deadline: this one keeps to its own
    if past(deadline) then
      return nil, cred_error(("the call's deadline passed while waiting for credentials " ..
        "from %s, which another caller is fetching"):format(self.name), "DeadlineExceeded")
    end
    sleep(ctx, ctx.wait_step_ms)
  end
  if self.inflight == mark then
    -- the refreshing coroutine never came back (killed, aborted): take over
    self.inflight = nil
    return self:_refresh(old, forced, deadline)
  end
  if self.creds ~= old and usable(ctx, self.creds, ctx.now()) then return self.creds end
  if self.last_error then return nil, self.last_error end
  return self:_refresh(old, forced, deadline)
end

--- Current credentials: creds | nil, err. `rejected`: true, or the credentials a server has
-- just refused as expired, to force one refresh (skipped when another caller already
-- replaced those credentials). `deadline`: the calling operation's, in monotonic ms
-- (core.monotonic_ms), which a fetch keeps to (nil: only each request's own timeout).
function Provider:get(rejected, deadline)
  local ctx = self.ctx
  local now = ctx.now()
  local c = self.creds
  local forced = rejected == true or (rejected ~= nil and rejected ~= false and rejected == c)
  if c and not forced then
    if now < self.refresh_at then return c end
    if usable(ctx, c, now) and (self.inflight or now < self.retry_at) then return c end
  end
  if self.inflight then return self:_wait(c, forced, deadline) end
  if c and forced and self.source.static and not self.source.user then
    -- nothing else to get from a fixed source
    return nil, cred_error("the credentials from " .. self.name .. " were refused as expired")
  end
  return self:_refresh(c, forced, deadline)
end

--- What the credentials come from, for messages ("environment", "EC2 instance metadata (…)").
function Provider:describe()
  return self.name
end

--- Credentials already at hand without any I/O, or nil.
function Provider:peek()
  local c = self.creds
  if c and usable(self.ctx, c, self.ctx.now()) then return c end
  return nil
end

--- A provider for one source (a table with `name` and `fetch(ctx, deadline)`), its cache empty.
-- @param ctx the chain's context (ddb.credentials.context.new)
-- @param source the source
-- @return the provider
-- @function new
_M.new = new_provider

return _M
