-- ddb.engine.keys: an item's key checked against its table's key schema, in one C call for a
-- key that fits (core.key_av) and with the reason when it does not.
local ddb = require "ddb"
local keys = require "ddb.engine.keys"

local core = ddb.core

-- What a key gave before core.key_av, written here without it: marshalled, then checked
-- name by name, with the same messages.
local function reference(key, names)
  local ok, av = pcall(core.marshal_item, key)
  if not ok then return nil, "bad key: " .. tostring(av) end
  for name, v in pairs(av) do
    if name ~= names[1] and name ~= names[2] then
      return nil, ("key has attribute '%s', which is not part of table t's key (%s)")
        :format(name, table.concat(names, ", "))
    end
    local t = next(v)
    if t ~= "S" and t ~= "N" and t ~= "B" then
      return nil, ("key attribute '%s' must be a string, number or ddb.binary"):format(name)
    end
  end
  for _, name in ipairs(names) do
    if av[name] == nil then return nil, ("key lacks attribute '%s' of table t's key"):format(name) end
  end
  return av
end

describe("a key against the table's key schema", function()
  local rnd = math.random
  local function value()
    local k = rnd(9)
    if k <= 3 then return ({ "a", "k#1", "\195\169", "" })[rnd(4)] end
    if k <= 5 then return rnd(-100, 100) end
    if k == 6 then return ddb.binary("\0\1") end
    if k == 7 then return true end
    if k == 8 then return { 1 } end
    return "bad\255"
  end

  it("gives on 3,000 random keys what marshalling and checking each name gives", function()
    math.randomseed(20261208)
    local kinds = {}
    for _ = 1, 3000 do
      local names = rnd(2) == 1 and { "pk" } or { "pk", "sk" }
      local key = {}
      for _, n in ipairs({ "pk", "sk", "other" }) do
        if rnd(10) <= (n == "other" and 1 or 8) then key[n] = value() end
      end
      if rnd(40) == 1 then key[1] = "x" end
      local want, why = reference(key, names)
      local got, err = keys.av("t", key, names)
      if want then
        assert.same(want, got)
        assert.equal(getmetatable(want), getmetatable(got))
        kinds.ok = true
      else
        assert.is_nil(got)
        assert.equal("ValidationError", err.code)
        assert.equal(why, err.message)
        kinds[why:match("^bad key") and "bad key" or why:match("not part") and "not part" or
          why:match("must be") and "must be" or "lacks"] = true
      end
    end
    for _, k in ipairs({ "ok", "bad key", "not part", "must be", "lacks" }) do
      assert.is_true(kinds[k], k)
    end
  end)

  it("is one AttributeValue map from core.key_av, or false when the names or kinds differ",
    function()
      assert.same({ pk = { S = "a" } }, core.key_av({ pk = "a" }, "pk"))
      assert.same({ pk = { N = "1" }, sk = { B = "AAE=" } },
        core.key_av({ pk = 1, sk = ddb.binary("\0\1") }, "pk", "sk"))
      assert.is_false(core.key_av({ pk = "a" }, "pk", "sk"))
      assert.is_false(core.key_av({ pk = "a", sk = "b" }, "pk"))
      assert.is_false(core.key_av({ id = "a" }, "pk"))
      assert.is_false(core.key_av({ pk = true }, "pk"))
      assert.is_false(core.key_av({}, "pk"))
      assert.has_error(function() core.key_av({ pk = "bad\255" }, "pk") end)
    end)
end)
