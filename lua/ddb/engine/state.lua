--- ddb.engine.state: what one read of an item tells the engine. A state is the item (or its
-- absence), its version as exact canonical text, and its write-token history: the random
-- token at the head of that history (the anchor) names this state of this item and no
-- other, ever, which is what lets the rules tell "still as read" from "deleted, created
-- again and brought back to the same version".
-- @module ddb.engine.state

local core = require "ddb.core"
local ddb = require "ddb"

local type, tostring, next, rawget, rawset = type, tostring, next, rawget, rawset
local setmetatable = setmetatable
local version_parse, history_tokens, doc_state =
  core.version_parse, core.history_tokens, core.doc_state
local unmarshal_item, av_equal, item_av = core.unmarshal_item, core.av_equal, core.item_av

local _M = {}

local ABSENT = { exists = false }
_M.ABSENT = ABSENT

-- A state read from an item doc (ops.read) keeps it as doc and makes item, its AttributeValue
-- map, only when something asks for it; the engine's own steps use the doc.
local LAZY_ITEM = { __index = function(s, k)
  if k ~= "item" then return nil end
  local item = item_av(rawget(s, "doc"))
  rawset(s, "item", item)
  return item
end }

local function bad_version(cfg, shown, why)
  return ddb.new_error("ValidationError", ("the item's version attribute '%s' holds %s, " ..
    "which is not a version (%s); nothing was written"):format(cfg.version, tostring(shown),
    why or "not a number"))
end

--- The state of item (an AttributeValue map or an item doc, or false/nil for no item) for a
-- table's settings cfg: { exists, item (or doc), version, hav, tokens, anchor } | nil, err.
-- With a TTL attribute (cfg.ttl) and the time now_s (epoch seconds), an item whose TTL has
-- passed is absent, as it will be once DynamoDB gets round to deleting it: { exists = false,
-- expired = the item's own state }.
function _M.of(cfg, item, now_s)
  if not item then return ABSENT end
  if cfg.ttl and now_s then
    local e = item[cfg.ttl]
    local at = type(e) == "table" and tonumber(e.N)
    if at and at < now_s then
      local s, err = _M.of({ version = cfg.version, token_attr = cfg.token_attr }, item)
      if not s then return nil, err end
      return { exists = false, expired = s, anchor = s.anchor }
    end
  end
  if type(item) == "userdata" then
    -- an item doc: its version and history read in C, no AttributeValue made for the version
    local version, hav, tokens = doc_state(item, cfg.version, cfg.token_attr)
    if version == false then return nil, bad_version(cfg, tokens, hav) end
    return setmetatable({ exists = true, version = version, hav = hav, tokens = tokens,
      anchor = tokens and tokens[1], doc = item }, LAZY_ITEM)
  end
  local vav = item[cfg.version]
  local version
  if vav ~= nil then
    local n = type(vav) == "table" and vav.N
    local why
    if type(n) == "string" then version, why = version_parse(n) end
    if not version then
      local _, shown = next(type(vav) == "table" and vav or {})
      return nil, bad_version(cfg, shown, why)
    end
  end
  local hav = item[cfg.token_attr]
  local tokens = hav ~= nil and type(hav) == "table" and history_tokens(hav.S) or nil
  return { exists = true, version = version, hav = hav, tokens = tokens,
    anchor = tokens and tokens[1], item = item }
end

--- Whether two states are the same state of the item: a condition made from one holds on the
-- other (absence, the version and the history as conditions compare them).
function _M.same(s, c)
  if s.expired then return not c.exists or _M.same(s.expired, c) end
  if c.expired then return not s.exists or _M.same(s, c.expired) end
  if not s.exists or not c.exists then return s.exists == c.exists end
  if s.version ~= c.version then return false end
  if s.hav == nil or c.hav == nil then return s.hav == c.hav end
  return av_equal(s.hav, c.hav)
end

--- Whether the token is in the state's history.
function _M.has(state, token)
  local list = state.expired and state.expired.tokens or state.tokens
  if not list or not token then return false end
  for i = 1, #list do
    if list[i] == token then return true end
  end
  return false
end

--- The item as stored (an AttributeValue map or its doc), expired or not; false for none.
function _M.raw(state)
  local s = state.exists and state or state.expired
  if not s then return false end
  return rawget(s, "doc") or s.item
end

-- Plain copies of items read, made from the answer's bytes with the AttributeValues (ops.read):
-- each is handed out once, as the first plain copy of its item; weak, so an item no state
-- holds any more takes its copy with it.
local offered = setmetatable({}, { __mode = "k" })

--- Keeps plain, the item's values converted from the same answer, for the next plain(item).
function _M.offer_plain(item, plain)
  offered[item] = plain
end

--- The item as the caller's function sees it: plain values, without the token history; a new
-- copy on every call.
function _M.plain(cfg, state)
  if not state.exists then return nil end
  local item = _M.raw(state)
  local plain = offered[item]
  if plain then
    offered[item] = nil
  else
    plain = unmarshal_item(item)
  end
  plain[cfg.token_attr] = nil
  return plain
end

return _M
