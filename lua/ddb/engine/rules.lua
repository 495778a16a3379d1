--- ddb.engine.rules: the rules that carry the exactly-once promise, and nothing else. Pure
-- functions over states (ddb.engine.state): which condition a write carries, and what the
-- items, read again after an answer was lost, prove about the commit that was sent.
--
-- A write is planned from a state S of its item and may only land on S: its condition is S's
-- identity (absent; or the version as read AND the history as read). A history holds random
-- tokens, so once an item has one, S can never come back after the item moved on, was
-- deleted or was created again. Every copy of a commit carries the same condition, so at most
-- one copy lands, and once S is gone none can land any more.
--
-- After an answer is lost, the items are read again (the view) and for each item written:
--   * the commit's token is in its history -> the commit landed (it is all or nothing);
--   * the item is still in its state S, S having an anchor (the head of its history) -> the
--     commit did not land (a landing changes the version, or ends the item, for good);
--   * S's anchor is there and the commit's token is not -> the item descends from S and the
--     commit did not land on it (a landing would have pushed its token above the anchor, or,
--     for a delete, ended the item);
-- and for every item of the commit, written or only checked:
--   * it is not in its state S while S had an anchor -> S is gone for good: the commit can
--     never land.
-- Verdicts: "applied"; "refuted" (did not land and never will: run the function again);
-- "pending" (did not land so far and every item is still as read: send the same commit
-- again); "unknown" (nothing less can be proven: OutcomeUnknown). Without an anchor (an item
-- absent when read, or one no writer with tokens wrote) only "applied" can be proven, since
-- the item may have been written, deleted and created again in between.
--
-- With trust_idempotency (TransactWriteItems with a ClientRequestToken that DynamoDB honours
-- for 10 minutes), a copy cancelled by a failed condition also proves that no earlier copy
-- succeeded.
-- Exposed as a table so that the simulator can plant known-bad variants and show that it
-- catches them (spec/sim).
-- @module ddb.engine.rules

local state = require "ddb.engine.state"

local ipairs = ipairs
local same, has = state.same, state.has

local _M = {}

--- The condition a write or check planned from state s carries, written with the
-- expression builder b (names and values placeholders); names: the key attribute names.
function _M.condition(b, cfg, names, s)
  if s.expired then
    -- absent, or still the expired item it was read as (DynamoDB deletes it lazily)
    return "(attribute_not_exists(" .. b:name(names[1]) .. ") OR (" ..
      _M.condition(b, cfg, names, s.expired) .. "))"
  end
  if not s.exists then
    return "attribute_not_exists(" .. b:name(names[1]) .. ")"
  end
  local parts = {}
  if s.version then
    parts[1] = b:name(cfg.version) .. " = " .. b:value({ N = s.version })
  else
    parts[1] = "attribute_exists(" .. b:name(names[1]) .. ") AND attribute_not_exists(" ..
      b:name(cfg.version) .. ")"
  end
  if s.hav ~= nil then
    parts[2] = b:name(cfg.token_attr) .. " = " .. b:value(s.hav)
  else
    parts[2] = "attribute_not_exists(" .. b:name(cfg.token_attr) .. ")"
  end
  return parts[1] .. " AND " .. parts[2]
end

local WRITTEN = { create = true, update = true, delete = true }

--- What the view (per action of commit c, the item's state now) proves about c.
-- opts.cancelled: the view comes from a cancellation of a copy of c, and opts.trusted says
-- that the server deduplicates copies by ClientRequestToken.
-- Returns verdict, detail ("which evidence").
function _M.resolve(c, view, opts)
  local landed, not_landed, gone, all_same = false, false, false, true
  for i, a in ipairs(c.actions) do
    local s, now = a.read, view[i]
    if s then   -- an overwrite carries no condition: it proves nothing and blocks nothing
      local here = same(s, now)
      -- an expired item read as absent: only the expired item itself, still there, proves
      -- anything (absence may follow a landing and a delete), and nothing is for good (it
      -- may be deleted at any time, and the condition hold again)
      local exact = here
      if s.expired then exact = same(s.expired, now) end
      if not here then all_same = false end
      if WRITTEN[a.kind] then
        local mine = a.pushes and has(now, c.token)
        if mine then landed = true end
        if s.anchor and not mine and (exact or (not s.expired and has(now, s.anchor) and
          (a.pushes or a.kind == "delete"))) then
          not_landed = true
        end
      end
      if s.anchor and not here and not s.expired then gone = true end
    end
  end
  if landed then return "applied", "its token is in an item it wrote" end
  if opts and opts.cancelled and opts.trusted then not_landed = true end
  if not_landed then
    if gone then return "refuted", "an item it was conditioned on has moved on for good" end
    if all_same then return "pending", "every item is still as read" end
  end
  return "unknown", "the items cannot prove it either way"
end

--- Whether copies of commit c can land at most once between them: each copy is
-- conditioned on an anchored state of some item it writes (that state ends when one lands),
-- or DynamoDB deduplicates them by ClientRequestToken (trusted).
function _M.lands_once(c, trusted)
  if trusted and not c.single then return true end
  for _, a in ipairs(c.actions) do
    if WRITTEN[a.kind] and a.read and a.read.anchor then return true end
  end
  return false
end

--- Whether anything can ever be proven about commit c after a lost answer: some item it
-- writes either gets its token, or was read with an anchor.
function _M.can_settle(c)
  for _, a in ipairs(c.actions) do
    if WRITTEN[a.kind] and (a.pushes or (a.read and a.read.anchor)) then return true end
  end
  return false
end

return _M
