--- ddb.engine.history: how many write tokens an item's history keeps. A lost answer is
-- settled from the tokens written since the item was read, so the history must reach back
-- over the writes an item takes while an answer is lost and looked up: the write rate times
-- the attempt's timeout. The engine observes that rate (how far an item moved between a read
-- and a later look at it) and sizes the histories it writes from it, between the store's
-- `tokens` and `tokens_max`; a history never shrinks by more than one entry per write, so a
-- writer that has not seen the rate does not cut what another one needs.
-- @module ddb.engine.history

local math_max, math_min, ceil = math.max, math.min, math.ceil

local _M = {}
local Sizer = {}
Sizer.__index = Sizer

--- A sizer for writes with at least `min` and at most `max` tokens, for a client whose
-- attempts time out after timeout_ms.
function _M.new(min, max, timeout_ms)
  return setmetatable({ min = min, max = math_max(min, max), timeout_ms = timeout_ms or 3000,
    need = min }, Sizer)
end

-- entries pushed in front of the anchor of s in c; exact = false when the anchor is gone
local function pushed(s, c)
  local list = c.tokens
  if not list then return nil end
  if s.anchor then
    for i = 1, #list do
      if list[i] == s.anchor then return i - 1, true end
    end
  end
  return #list, false
end

--- Takes in what was seen: state s (read at some time), state c seen dt ms later.
function Sizer:observe(s, c, dt)
  if self.max <= self.min or not s.exists or not c.exists or not c.tokens then return end
  local n, exact = pushed(s, c)
  if not n or n == 0 then return end
  local want
  if exact then
    -- rate x (an attempt's timeout + the read that looks again), with room to spare
    local rate = n / math_max(dt, 1)
    want = ceil(rate * (self.timeout_ms + 200) * 1.5) + 2
  else
    want = 2 * n   -- the history did not reach back far enough: at least twice as long
  end
  if want > self.need then self.need = math_min(self.max, want) end
end

--- How many entries a write from state s keeps (its own included).
function Sizer:keep(s)
  local k = self.need
  -- decay slowly towards the minimum, one entry per write
  if self.need > self.min then self.need = self.need - 0.25 end
  local old = s.tokens and #s.tokens or 0
  if old - 1 > k then k = old - 1 end
  k = ceil(k)
  if k < self.min then k = self.min end
  if k > self.max then k = self.max end
  return k
end

return _M
