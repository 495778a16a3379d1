-- Known-bad variants of the engine's rules, planted into ddb.engine.rules and
-- ddb.engine.plan to show that the simulator catches them (spec/unit/sim_spec.lua). The first
-- three are the rules of 0.1.0 that issue #14 reported broken; the others are tempting
-- shortcuts that look right in every example.
local rules = require "ddb.engine.rules"
local plan = require "ddb.engine.plan"
local state = require "ddb.engine.state"
local core = require "ddb.core"

local same, has = state.same, state.has
local real_resolve = rules.resolve
local M = {}

-- the conditions of 0.1.0: the version alone (absence of a version for a stored 0)
local function version_condition(b, cfg, names, s)
  if not s.exists then return "attribute_not_exists(" .. b:name(names[1]) .. ")" end
  if not s.version then
    return "attribute_exists(" .. b:name(names[1]) .. ") AND attribute_not_exists(" ..
      b:name(cfg.version) .. ")"
  end
  return b:name(cfg.version) .. " = " .. b:value({ N = s.version })
end

local function version_of(s) return s.exists and (s.version or "0") or nil end

-- 0.1.0's resolution: a token found is applied; an item "at the version read" is pending;
-- another token where this write's version would be is refuted; a delete's item at the
-- version read is pending, and one further along is refuted.
local function old_resolve(c, view)
  for i, a in ipairs(c.actions) do
    local s, now = a.read, view[i]
    if s and a.pushes and has(now, c.token) then return "applied" end
    if s and a.kind ~= "check" then
      if a.kind == "delete" then
        if not now.exists then return "unknown" end
        if now.version == s.version then return "pending" end
        return "refuted"
      end
      if not now.exists then return a.kind == "create" and "pending" or "unknown" end
      if a.kind ~= "create" and now.version == s.version then return "pending" end
      if now.tokens and #now.tokens > 0 then return "refuted" end
    end
  end
  return "unknown"
end

M.list = {
  {
    name = "0.1.0: the version alone identifies the item (lost update after delete and " ..
      "create again, issue #14.1)",
    plant = { rules = { condition = version_condition, resolve = old_resolve } },
  },
  {
    name = "0.1.0: another writer's token refutes a lost create or update (applied twice, " ..
      "issue #14.2)",
    plant = { rules = { resolve = function(c, view, opts)
      for i, a in ipairs(c.actions) do
        local now = view[i]
        if a.read and a.pushes and now.exists and not has(now, c.token) and now.tokens and
          #now.tokens > 0 and not same(a.read, now) then
          return "refuted"
        end
      end
      return real_resolve(c, view, opts)
    end } },
  },
  {
    name = "0.1.0: a lost delete is refuted once the item moved (deletes another writer's " ..
      "item, issue #14.3)",
    plant = { rules = { resolve = function(c, view, opts)
      for i, a in ipairs(c.actions) do
        local now = view[i]
        if a.kind == "delete" and now.exists and not same(a.read, now) then return "refuted" end
      end
      return real_resolve(c, view, opts)
    end } },
  },
  {
    name = "an item still as read is pending even without an anchor (a lost create sent " ..
      "again after the item was created and deleted)",
    plant = { rules = { resolve = function(c, view, opts)
      local all = true
      for i, a in ipairs(c.actions) do
        if a.read and not same(a.read, view[i]) then all = false end
        if a.read and a.pushes and has(view[i], c.token) then return "applied" end
      end
      if all then return "pending" end
      return real_resolve(c, view, opts)
    end } },
  },
  {
    name = "continuity taken from the version number instead of the anchor",
    plant = { rules = { resolve = function(c, view, opts)
      for i, a in ipairs(c.actions) do
        local s, now = a.read, view[i]
        if s and a.pushes and has(now, c.token) then return "applied" end
      end
      for i, a in ipairs(c.actions) do
        local s, now = a.read, view[i]
        if s and s.exists and now.exists and a.kind == "update" and
          tonumber(version_of(now)) > tonumber(version_of(s)) then
          return "refuted"
        end
      end
      return real_resolve(c, view, opts)
    end } },
  },
  {
    name = "versions stepped as Lua numbers (1e20 + 1 == 1e20)",
    plant = { plan = { next_version = function(cfg, s)
      if not s.exists or not s.version then return (core.version_parse(cfg.version_start)) end
      return core.number_canonical(tonumber(s.version) + cfg.version_step)
    end } },
  },
}

--- Plants a mutant; returns a function that takes it out again.
function M.plant(m)
  local saved = {}
  for modname, fns in pairs(m.plant) do
    local mod = modname == "rules" and rules or plan
    for k, f in pairs(fns) do
      saved[#saved + 1] = { mod, k, mod[k] }
      mod[k] = f
    end
  end
  return function()
    for i = #saved, 1, -1 do
      local s = saved[i]
      s[1][s[2]] = s[3]
    end
  end
end

return M
