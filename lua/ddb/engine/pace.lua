--- ddb.engine.pace: when a write goes out. On an item nobody else is writing, at once. Once
-- a store has seen a conflict (for a second after it), a write planned from a fresh read
-- first waits a random part of two write round trips, so that writers that raced do not
-- line up in the same order again; a write planned from the item a conflict's answer
-- returned goes at once: it lost the last race and is a read ahead of the others. Nobody
-- backs off further after losing: a writer that waits while the winners go on starves
-- (8 processes on one dynalite item under exponential backoff: two of them made 5,000
-- writes in 6 s, the six others 1 to 4 each).
-- @module ddb.engine.pace

local _M = {}
local Pacer = {}
Pacer.__index = Pacer

local CONTENDED_MS = 1000

--- A pacer whose waits are at least min_ms and at most max_ms.
function _M.new(min_ms, max_ms)
  return setmetatable({ min = min_ms, max = max_ms, rtt = nil, conflict_at = nil }, Pacer)
end

--- Takes in a write's round trip and whether it met a conflict, at time now.
function Pacer:wrote(rtt, conflicted, now)
  -- a slowly moving average, so that one slow answer does not set the pace
  self.rtt = self.rtt and (self.rtt * 0.8 + rtt * 0.2) or rtt
  if conflicted then self.conflict_at = now end
end

--- How long to wait before a write, at time now, with rng:random() in [0, 1) (the client's
-- retry policy, asked only when the item is contended).
-- from_answer: the write was planned from a conflict's answer, not from a read.
function Pacer:wait(now, from_answer, rng)
  if from_answer or not self.conflict_at or now - self.conflict_at > CONTENDED_MS then
    return 0
  end
  local window = 2 * (self.rtt or 0)
  if window < self.min then window = self.min end
  if window > self.max then window = self.max end
  return window * rng:random()
end

return _M
