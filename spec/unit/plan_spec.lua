-- The engine's pure parts without a server: write tokens, their history, exact versions,
-- and the write requests planned from the function's result (exact requests, so that a
-- faster planner has to produce the same bytes).
local ddb = require "ddb"
local engine = require "ddb.engine"
local plan = require "ddb.engine.plan"
local state = require "ddb.engine.state"
local settings = require "ddb.engine.settings"
local optimistic = require "ddb.optimistic"

local core = ddb.core

local KAV = { pk = { S = "k1" } }

local function target(opts)
  local cfg = settings.table_settings(opts or {})
  return { name = 1, table = "t", key = { pk = "k1" }, kav = KAV, names = { "pk" }, cfg = cfg,
    label = "item" }
end

-- the item as GetItem returns it: version 3 with a two-entry history
local function current()
  return {
    pk = { S = "k1" }, version = { N = "3" }, counter = { N = "7" }, name = { S = "ann" },
    tags = { SS = { "a", "b" } }, _ddb_tokens = { S = "2 TOKEN3TOKEN3 TOKEN2TOKEN2" },
  }
end

local function planned(t, result, cur, token)
  if cur == nil then cur = current() end
  local s = assert(state.of(t.cfg, cur or nil))
  if result == optimistic.DELETE then return plan.delete(t, s) end
  return plan.write(t, s, result, token or "NEWTOKEN1234")
end

describe("write tokens", function()
  it("are 12 base64url characters from 9 random bytes, all different", function()
    local seen = {}
    for _ = 1, 2000 do
      local t = engine.new_token()
      assert.equal(12, #t)
      assert.is_truthy(t:match("^[A-Za-z0-9_-]+$"))
      assert.is_nil(seen[t])
      seen[t] = true
    end
  end)

  it("use every character of the alphabet", function()
    local chars = {}
    for _ = 1, 400 do
      for c in engine.new_token():gmatch(".") do chars[c] = true end
    end
    local n = 0
    for _ in pairs(chars) do n = n + 1 end
    assert.equal(64, n)
  end)

  it("refuse a length that base64 would pad", function()
    assert.has_error(function() core.random_token(4) end)
    assert.has_error(function() core.random_token(0) end)
    assert.has_error(function() core.random_token(51) end)
  end)
end)

describe("token history (csrc/tokens.c owns its format)", function()
  it("reads newest first, and 0.1.0's format too, refusing what this module did not write",
    function()
      assert.same({ "abc", "de-f_" }, core.history_tokens("2 abc de-f_"))
      assert.same({ "abc", "de-f_" }, core.history_tokens("1 5:abc 4:de-f_"))
      assert.same({}, core.history_tokens("2"))
      for _, bad in ipairs({ "3 abc", "2 a!b", "1 5:a b", "1 x:abc", "", "abc", "1 5:" }) do
        assert.is_nil(core.history_tokens(bad), bad)
      end
      assert.is_nil(core.history_tokens(nil))
    end)

  it("grows newest first and keeps at most the given number of entries", function()
    local h
    for v = 1, 10 do h = core.history_push(h, "t" .. v, 3) end
    assert.equal("2 t10 t9 t8", h)
    assert.equal("2 t11", core.history_push(h, "t11", 1))
    assert.equal("2 new x", core.history_push(" 2  x\n", "new", 5))
    -- 0.1.0's entries keep their tokens, so that continuity survives the upgrade
    assert.equal("2 new b a", core.history_push("1 7:b 6:a", "new", 5))
  end)

  it("starts again from a history in another format", function()
    for _, old in ipairs({ "", "3 x", "2 x!", "1 3:x 4", "1 3:x :y", "1 a:x", "13:x" }) do
      assert.is_nil(core.history_tokens(old), old)
      assert.equal("2 tok", core.history_push(old, "tok", 8), old)
    end
    assert.equal("2 tok", core.history_push(nil, "tok", 8))
  end)

  it("refuses a token or size that would corrupt the history", function()
    assert.has_error(function() core.history_push(nil, "a b", 8) end)
    assert.has_error(function() core.history_push(nil, "", 8) end)
    assert.has_error(function() core.history_push(nil, "t", 0) end)
    assert.has_error(function() core.history_push(nil, "t", 1001) end)
  end)
end)

describe("versions, exactly", function()
  it("are read as canonical integer text", function()
    assert.equal("100000000000000000000", core.version_parse("1e20"))
    assert.equal("9223372036854775807", core.version_parse("9223372036854775807"))
    assert.equal("0", core.version_parse("-0"))
    assert.equal("7", core.version_parse(7))
    for _, bad in ipairs({ "1.5", "abc", "", "1e39", "1e-3", 0.5 }) do
      assert.is_nil((core.version_parse(bad)), tostring(bad))
    end
  end)

  it("step without rounding or wrapping, within DynamoDB's 38 digits", function()
    assert.equal("9223372036854775808", core.version_add("9223372036854775807", 1))
    assert.equal("100000000000000000001", core.version_add("1e20", 1))
    assert.equal("9007199254740993", core.version_add("9007199254740992", 1))
    assert.equal("0", core.version_add("-1", 1))
    assert.equal("-2", core.version_add("5", -7))
    assert.equal(("9"):rep(38), core.version_add(("9"):rep(37) .. "8", 1))
    local v, why = core.version_add(("9"):rep(38), 1)
    assert.is_nil(v)
    assert.matches("38 digits", why)
  end)
end)

describe("plan.write in update mode", function()
  it("sets only what changed, steps the version and pushes the token", function()
    local t = target()
    local res = core.unmarshal_item(current())
    res._ddb_tokens = nil
    res.counter = 8
    local a = planned(t, res)
    assert.equal("UpdateItem", a.op)
    assert.equal("update", a.kind)
    assert.same({
      TableName = "t", Key = KAV,
      UpdateExpression = "SET #n1 = :v1, #n2 = :v2, #n3 = :v3",
      ConditionExpression = "#n2 = :v4 AND #n3 = :v5",
      ExpressionAttributeNames = { ["#n1"] = "counter", ["#n2"] = "version",
        ["#n3"] = "_ddb_tokens" },
      ExpressionAttributeValues = { [":v1"] = { N = "8" }, [":v2"] = { N = "4" },
        [":v3"] = { S = "2 NEWTOKEN1234 TOKEN3TOKEN3 TOKEN2TOKEN2" },
        [":v4"] = { N = "3" }, [":v5"] = { S = "2 TOKEN3TOKEN3 TOKEN2TOKEN2" } },
      ReturnValues = "ALL_NEW",
      ReturnValuesOnConditionCheckFailure = "ALL_OLD",
      ReturnConsumedCapacity = "TOTAL",
    }, a.req)
  end)

  it("asks for the attributes it set, not the whole item, with returns = 'written'", function()
    local res = core.unmarshal_item(current())
    res._ddb_tokens = nil
    res.counter = 8
    local a = planned(target{ returns = "written" }, res)
    assert.equal("UPDATED_NEW", a.req.ReturnValues)
    assert.equal(res, a.result)
    assert.same({ N = "4" }, a.version_av)
    assert.equal("ALL_NEW", planned(target{ returns = "stored" }, res).req.ReturnValues)
  end)

  it("sorts what it sets and removes, and removes attributes the function dropped", function()
    local a = planned(target(), { pk = "k1", version = 3, zeta = true, alpha = { 1, 2 },
      counter = 7 })
    assert.equal("UpdateItem", a.op)
    assert.equal("SET #n1 = :v1, #n2 = :v2, #n3 = :v3, #n4 = :v4 REMOVE #n5, #n6",
      a.req.UpdateExpression)
    assert.same({ ["#n1"] = "alpha", ["#n2"] = "zeta", ["#n3"] = "version",
      ["#n4"] = "_ddb_tokens", ["#n5"] = "name", ["#n6"] = "tags" },
      a.req.ExpressionAttributeNames)
    assert.same({ L = { { N = "1" }, { N = "2" } } }, a.req.ExpressionAttributeValues[":v1"])
    assert.same({ BOOL = true }, a.req.ExpressionAttributeValues[":v2"])
    assert.equal("#n3 = :v5 AND #n4 = :v6", a.req.ConditionExpression)
  end)

  it("writes nothing when nothing changed, whatever the number's spelling", function()
    local res = core.unmarshal_item(current())
    res._ddb_tokens = nil
    res.counter = ddb.number("7.0")
    assert.is_false(planned(target(), res))
  end)

  it("creates a missing item at version_start, conditioned on its absence", function()
    local a = planned(target(), { n = 1 }, false)
    assert.equal("UpdateItem", a.op)
    assert.equal("create", a.kind)
    assert.equal("SET #n1 = :v1, #n2 = :v2, #n3 = :v3", a.req.UpdateExpression)
    assert.equal("attribute_not_exists(#n4)", a.req.ConditionExpression)
    assert.same({ ["#n1"] = "n", ["#n2"] = "version", ["#n3"] = "_ddb_tokens", ["#n4"] = "pk" },
      a.req.ExpressionAttributeNames)
    assert.same({ N = "1" }, a.req.ExpressionAttributeValues[":v2"])
    assert.same({ S = "2 NEWTOKEN1234" }, a.req.ExpressionAttributeValues[":v3"])
    assert.same({ N = "0" }, planned(target{ version_start = 0 }, { n = 1 }, false)
      .req.ExpressionAttributeValues[":v2"])
  end)

  it("conditions an item without a version or history on their absence", function()
    local cur = current()
    cur.version, cur._ddb_tokens = nil, nil
    local a = planned(target(), { pk = "k1", counter = 1 }, cur)
    assert.equal("attribute_exists(#n6) AND attribute_not_exists(#n2) AND " ..
      "attribute_not_exists(#n3)", a.req.ConditionExpression)
    assert.equal("pk", a.req.ExpressionAttributeNames["#n6"])
    assert.same({ N = "1" }, a.req.ExpressionAttributeValues[":v2"])
  end)

  it("takes a stored version 0 as a version, stepping it to 1", function()
    local cur = current()
    cur.version = { N = "0" }
    local a = planned(target(), { pk = "k1", counter = 1 }, cur)
    assert.equal("#n2 = :v4 AND #n3 = :v5", a.req.ConditionExpression)
    assert.same({ N = "0" }, a.req.ExpressionAttributeValues[":v4"])
    assert.same({ N = "1" }, a.req.ExpressionAttributeValues[":v2"])
  end)

  it("steps versions beyond a double's and an int64's range exactly", function()
    for stored, want in pairs({ ["1e20"] = "100000000000000000001",
      ["9223372036854775807"] = "9223372036854775808",
      ["9007199254740992"] = "9007199254740993" }) do
      local cur = current()
      cur.version = { N = stored }
      local a = planned(target(), { pk = "k1", counter = 1 }, cur)
      assert.same({ N = want }, a.req.ExpressionAttributeValues[":v2"], stored)
    end
    local cur = current()
    cur.version = { N = ("9"):rep(38) }
    local a, err = planned(target(), { pk = "k1", counter = 1 }, cur)
    assert.is_nil(a)
    assert.equal("ValidationError", err.code)
    assert.matches("38 digits", err.message)
  end)

  it("steps by version_step", function()
    local a = planned(target{ version_step = 5 }, { pk = "k1", counter = 1 })
    assert.same({ N = "8" }, a.req.ExpressionAttributeValues[":v2"])
  end)

  it("refuses a version that is not a whole number, naming it", function()
    local cur = current()
    cur.version = { N = "1.5" }
    local s, err = state.of(target().cfg, cur)
    assert.is_nil(s)
    assert.equal("ValidationError", err.code)
    assert.matches("'version' holds 1.5", err.message)
    cur.version = { S = "3" }
    assert.is_nil((state.of(target().cfg, cur)))
  end)

  it("leaves the history alone when tokens are off, still conditioning on it", function()
    local a = planned(target{ tokens = 0 }, { pk = "k1", counter = 9, name = "ann",
      tags = ddb.string_set{ "a", "b" } })
    assert.equal("SET #n1 = :v1, #n2 = :v2", a.req.UpdateExpression)
    assert.equal("version", a.req.ExpressionAttributeNames["#n2"])
    assert.equal("#n2 = :v3 AND #n3 = :v4", a.req.ConditionExpression)
    assert.equal("_ddb_tokens", a.req.ExpressionAttributeNames["#n3"])
  end)

  it("refuses a changed key, a changed version, the token attribute and non-items", function()
    local t = target()
    local _, err = planned(t, { pk = "k2" })
    assert.equal("ValidationError", err.code)
    assert.matches("key attribute 'pk'", err.message)
    _, err = planned(t, { version = 9 })
    assert.matches("version attribute", err.message)
    _, err = planned(t, { version = 1 }, false)
    assert.matches("version attribute", err.message)
    _, err = planned(t, { _ddb_tokens = "x" })
    assert.matches("write tokens", err.message)
    _, err = planned(t, "text")
    assert.matches("must return the item", err.message)
    _, err = planned(t, setmetatable({}, {}))
    assert.matches("must return the item", err.message)
    _, err = planned(t, { f = function() end })
    assert.matches("cannot be stored", err.message)
  end)

  it("refuses an item over DynamoDB's size limit, counting what the update keeps", function()
    local big = core.unmarshal_item(current())
    big._ddb_tokens = nil
    big.blob = ("x"):rep(optimistic.MAX_ITEM_BYTES - 40)
    local _, err = planned(target(), big)
    assert.equal("ItemTooLarge", err.code)
  end)

  it("writes the whole item when the update would pass DynamoDB's 4 KB expressions", function()
    local res = core.unmarshal_item(current())
    res._ddb_tokens = nil
    for i = 1, 300 do res[("attr%03d"):format(i)] = i end
    local a = planned(target(), res)
    assert.equal("PutItem", a.op)
    assert.equal("put", a.fallback)
    assert.equal(306, (function() local n = 0 for _ in pairs(a.req.Item) do n = n + 1 end return n end)())
    assert.equal("#n1 = :v1 AND #n2 = :v2", a.req.ConditionExpression)
    res.attr001 = nil
    for i = 1, 200 do res[("attr%03d"):format(i)] = nil end
    assert.equal("UpdateItem", planned(target(), res).op)
  end)
end)

describe("plan.write in put mode and plan.delete", function()
  it("puts the whole item with the new version and history", function()
    local a = planned(target{ mode = "put" }, { pk = "k1", counter = 8 })
    assert.equal("PutItem", a.op)
    assert.equal("update", a.kind)
    assert.same({ pk = { S = "k1" }, counter = { N = "8" }, version = { N = "4" },
      _ddb_tokens = { S = "2 NEWTOKEN1234 TOKEN3TOKEN3 TOKEN2TOKEN2" } }, a.req.Item)
    assert.equal("#n1 = :v1 AND #n2 = :v2", a.req.ConditionExpression)
    assert.same({ ["#n1"] = "version", ["#n2"] = "_ddb_tokens" }, a.req.ExpressionAttributeNames)
  end)

  it("keeps the history others wrote in a put without tokens of its own", function()
    local a = planned(target{ mode = "put", tokens = 0 }, { pk = "k1", counter = 8 })
    assert.same({ S = "2 TOKEN3TOKEN3 TOKEN2TOKEN2" }, a.req.Item._ddb_tokens)
  end)

  it("deletes conditioned on the item as read, and skips deleting what is absent", function()
    local a = planned(target(), optimistic.DELETE)
    assert.equal("DeleteItem", a.op)
    assert.equal("delete", a.kind)
    assert.same({ TableName = "t", Key = KAV, ConditionExpression = "#n1 = :v1 AND #n2 = :v2",
      ExpressionAttributeNames = { ["#n1"] = "version", ["#n2"] = "_ddb_tokens" },
      ExpressionAttributeValues = { [":v1"] = { N = "3" },
        [":v2"] = { S = "2 TOKEN3TOKEN3 TOKEN2TOKEN2" } },
      ReturnValuesOnConditionCheckFailure = "ALL_OLD", ReturnConsumedCapacity = "TOTAL" }, a.req)
    assert.is_nil((planned(target(), optimistic.DELETE, false)))
  end)

  it("keeps the whole item as the update leaves it, for transactions", function()
    local a = planned(target(), { pk = "k1", counter = 8, name = "ann" })
    assert.same({ pk = { S = "k1" }, counter = { N = "8" }, name = { S = "ann" },
      version = { N = "4" }, _ddb_tokens = { S = "2 NEWTOKEN1234 TOKEN3TOKEN3 TOKEN2TOKEN2" } },
      plan.whole(a))
  end)
end)

describe("core.plan_diff", function()
  local diff, size_of, marshal_item = core.plan_diff, core.item_size, core.marshal_item

  it("lists changed and dropped attributes, sorted, leaving out the skipped ones", function()
    local old = { pk = { S = "k" }, a = { N = "1" }, b = { S = "x" }, c = { BOOL = true },
      version = { N = "2" } }
    local new = { pk = "k", a = ddb.number("1.0"), b = "y", z = ddb.null, y = ddb.list() }
    local sets, avs, removes = diff(old, new, { pk = true, version = true }, nil, true)
    assert.same({ "b", "y", "z" }, sets)
    assert.same({ "c" }, removes)
    -- AttributeValues for what is set (pk, skipped and unchanged, needs none)
    assert.same({ b = { S = "y" }, y = { L = {} }, z = { NULL = true } }, avs)
    -- a skipped attribute that changed comes with its AttributeValue, for the caller's checks
    local _, changed = diff(old, { pk = "other" }, { pk = true }, nil, true)
    assert.same({ pk = { S = "other" } }, changed)
  end)

  it("leaves equal scalars alone, numbers compared by value", function()
    local old = { s = { S = "x" }, i = { N = "7" }, f = { N = "2.50" }, t = { BOOL = true },
      big = { N = "12345678901234567890" } }
    local sets, avs = diff(old, { s = "x", i = 7, f = 2.5, t = true,
      big = ddb.number("12345678901234567890") }, nil, nil, true)
    assert.same({}, sets)
    assert.same({}, avs)
    sets = diff(old, { s = "y", i = 7.5, f = 2.5, t = false, big = 12345678901234567890 },
      nil, nil, true)
    -- 12345678901234567890 as a Lua float is 12345678901234567168: a change
    assert.same({ "big", "i", "s", "t" }, sets)
  end)

  it("compares floats by value at the edges of a double's precision", function()
    local old = { a = { N = "0.1" }, b = { N = "0.3" }, c = { N = "0.10000000000000001" },
      d = { N = "1E-129" }, e = { N = "123456789012345" }, f = { N = "-0" },
      h = { N = "1234567890123456" },
      g = { N = "0.30000000000000004" } }
    local sets = diff(old, { a = 0.1, b = 0.1 + 0.2, c = 0.1, d = 1e-129, e = 123456789012345.0,
      f = 0.0, g = 0.1 + 0.2, h = 1234567890123456.0 }, nil, nil, true)
    -- b holds 0.3, not 0.30000000000000004; c is 0.10000000000000001 exactly, not 0.1
    assert.same({ "b", "c" }, sets)
  end)

  it("says a number is unchanged exactly when marshalling it gives the stored value " ..
     "(20,000 spellings: integers, exponents, leading and trailing zeros, 17 digits)", function()
    -- the planner's shortcuts (integers compared as integers, short decimals as doubles)
    -- against the definition: marshal the value and compare the decimals
    local seed = 20261207
    local function rand(n)
      seed = seed * 16807 % 2147483647
      return seed % n
    end
    local function digits(n)
      local t = {}
      for i = 1, n do t[i] = tostring(rand(10)) end
      return table.concat(t)
    end
    local function spelling(v)
      -- the text of v as DynamoDB might store it, or a near miss
      local forms = {
        function() return ("%.17g"):format(v) end,
        function() return ("%.15g"):format(v) end,
        function() return ("%.3f"):format(v) end,
        function() return ("%dE%d"):format(rand(2000) - 1000, rand(40) - 20) end,
        function() return "000" .. ("%.17g"):format(math.abs(v)) end,
        function() return ("%.17g"):format(v) .. (tostring(v):find("[.e]") and "" or ".000") end,
        function() return ("%.17g"):format(-v) end,
        function() return ("%.17g"):format(v * 10) end,
        function() return (rand(2) == 0 and "-" or "") .. digits(1 + rand(19)) end,
        function() return (rand(2) == 0 and "-" or "") .. digits(1 + rand(8)) .. "." ..
          digits(1 + rand(9)) end,
      }
      return forms[1 + rand(#forms)]()
    end
    local values = { 0, 1, -1, 0.5, 1250.75, 9007199254740993, 2 ^ 53, 1e22, 1e23, 1e-5,
      -0.0, 123456789012345678 }
    local checked, same = 0, 0
    for i = 1, 20000 do
      local v
      if i <= #values * 50 then
        v = values[1 + (i - 1) % #values]
      elseif rand(2) == 0 then
        v = math.tointeger and math.tointeger(rand(2000000) - 1000000) or (rand(2000000) - 1000000)
        if rand(3) == 0 then v = v * 10 ^ rand(12) end
        if math.tointeger and rand(2) == 0 then v = math.tointeger(v) or v end
      else
        v = (rand(2000000) - 1000000) / 10 ^ rand(8)
      end
      local text = spelling(v)
      if core.number_canonical(text) then
        local ok_m, want_av = pcall(core.marshal, v)
        local want = ok_m and core.av_equal(want_av, { N = text })
        local sets = diff({ a = { N = text } }, { a = v }, nil, nil, true)
        if (#sets == 0) ~= want then
          error(("%s against stored %q: the planner says %s, marshalling says %s"):format(
            tostring(v), text, #sets == 0 and "unchanged" or "changed",
            want and "unchanged" or "changed"))
        end
        checked = checked + 1
        if want then same = same + 1 end
      end
    end
    assert.is_true(checked > 15000)
    assert.is_true(same > 2000)   -- both verdicts are exercised
  end)

  it("compares a scalar with a stored value of another type as a change", function()
    local old = { a = { N = "1" }, b = { S = "1" }, c = { BOOL = true }, d = { NULL = true } }
    local sets = diff(old, { a = "1", b = 1, c = 1, d = false }, nil, nil, true)
    assert.same({ "a", "b", "c", "d" }, sets)
  end)

  it("sets everything but the skipped names when nothing is stored", function()
    local sets, _, removes = diff(nil, { pk = "k", b = 1, a = 2 }, { pk = true }, nil, true)
    assert.same({ "a", "b" }, sets)
    assert.same({}, removes)
  end)

  it("compares sets unordered and maps and lists deeply", function()
    local old = { s = { SS = { "a", "b" } }, m = { M = { x = { L = { { N = "1" } } } } } }
    assert.same({}, (diff(old, { s = ddb.string_set{ "b", "a" }, m = { x = { 1.0 } } }, nil,
      nil, true)))
    assert.same({ "m" }, (diff(old, { s = ddb.string_set{ "b", "a" }, m = { x = { 1, 2 } } },
      nil, nil, true)))
  end)

  it("handles items with more attributes than its scratch space on the stack", function()
    local old, new = {}, {}
    for i = 1, 100 do
      old[("a%03d"):format(i)] = { N = tostring(i) }
      new[("a%03d"):format(i)] = i % 10 == 0 and -i or i
    end
    new.extra = "x"
    local sets, _, removes = diff(old, new, nil, nil, true)
    assert.equal(11, #sets)
    assert.equal("a010", sets[1])
    assert.equal("extra", sets[11])
    assert.same({}, removes)
    new.a001 = nil
    assert.same({ "a001" }, select(3, diff(old, new, nil, nil, true)))
  end)

  it("gives a put every attribute, changed or not", function()
    local old = { pk = { S = "k" }, a = { N = "1" } }
    local sets, avs = diff(old, { pk = "k", a = 1, b = "new" }, { pk = true }, nil, false)
    assert.same({ "b" }, sets)
    assert.same({ pk = { S = "k" }, a = { N = "1" }, b = { S = "new" } }, avs)
  end)

  it("sizes the item as stored: what an update keeps, with the overrides in place", function()
    local old = { pk = { S = "k" }, keep = { S = ("k"):rep(50) }, drop = { S = ("d"):rep(70) },
      same = { N = "99.5" }, version = { N = "2" }, tok = { S = "1 2:abc" } }
    local new = { pk = "k", changed = 12345, same = 99.5 }
    local over = { version = { N = "3" }, tok = { S = "1 3:def 2:abc" } }
    -- an update leaves a skipped attribute the new item lacks as it is: "keep"
    local skip = { pk = true, version = true, tok = true, keep = true }
    local _, _, removes, size = diff(old, new, skip, over, true)
    assert.same({ "drop" }, removes)
    local whole = { pk = old.pk, keep = old.keep, changed = { N = "12345" }, same = old.same,
      version = over.version, tok = over.tok }
    assert.equal(size_of(whole), size)
    -- a put replaces the item: only the new attributes and the overrides count
    local _, _, _, put_size = diff(old, new, skip, over, false)
    local put = marshal_item(new)
    put.version, put.tok = over.version, over.tok
    assert.equal(size_of(put), put_size)
  end)

  it("refuses what cannot be stored, naming the attribute, changed or not", function()
    local old = { a = { S = "x" } }
    for _, bad in ipairs({ { [1] = "x" }, { [""] = 1 }, { a = 0 / 0 }, { a = function() end },
      { a = "\0" }, { a = ddb.string_set{} }, { ["\255"] = 1 } }) do
      assert.has_error(function() diff(old, bad, nil, nil, true) end)
    end
    local ok, err = pcall(diff, old, { a = { b = 1 / 0 } }, nil, nil, true)
    assert.is_false(ok)
    assert.matches("a.b", err, 1, true)
  end)
end)

describe("core.plan_diff against marshal + av_equal, on random items and changes", function()
  -- plan_diff leaves values it can prove equal unmarshalled: every verdict must be the one
  -- marshalling and comparing gives, or an update would be lost (or sent for nothing)
  local marshal, av_equal, size_of = core.marshal, core.av_equal, core.item_size
  local rnd = math.random
  local WORDS = { "a", "b", "ç", "dd", "", "e e" }

  local function scalar()
    local k = rnd(6)
    if k == 1 then return WORDS[rnd(#WORDS)] end
    if k == 2 then return rnd(-5, 5) end
    if k == 3 then return rnd(-5, 5) / 4 end
    if k == 4 then return rnd(2) == 1 end
    if k == 5 then return ddb.null end
    return ddb.number(("%d.%d"):format(rnd(0, 9), rnd(0, 9)))
  end

  local function value(depth)
    local k = depth > 2 and 1 or rnd(5)
    if k <= 2 then return scalar() end
    if k == 3 then
      local l = ddb.list()
      for i = 1, rnd(0, 3) do l[i] = value(depth + 1) end
      return l
    end
    if k == 4 then
      local m = {}
      for i = 1, rnd(0, 3) do m["k" .. i] = value(depth + 1) end
      return m
    end
    local set, seen = {}, {}
    for _ = 1, rnd(1, 4) do
      local w = "w" .. rnd(1, 5)
      if not seen[w] then seen[w] = true; set[#set + 1] = w end
    end
    return ddb.string_set(set)
  end

  -- a copy of v (as with_item's function receives it), changed or not
  local function mutate(v, depth)
    local r = rnd(10)
    if r == 1 then return value(depth) end
    if type(v) == "number" and r == 2 then return v + 0.0 end   -- same value, float
    if type(v) ~= "table" or v == ddb.null then return v end
    local mt = getmetatable(v)
    local c = setmetatable({}, mt)
    for k, x in pairs(v) do c[k] = mutate(x, depth + 1) end
    if r == 3 then
      if mt == core.mt.string_set then
        c[#c + 1] = "w" .. rnd(6, 9)
      elseif mt == core.mt.list then
        c[#c + 1] = scalar()
      else
        c["new" .. rnd(3)] = scalar()
      end
    elseif r == 4 and #c > 1 then
      table.remove(c)
    elseif r == 5 and mt == core.mt.string_set and #c > 1 then
      c[1], c[#c] = c[#c], c[1]   -- a set in another order is the same set
    end
    return c
  end

  it("gives the same changes and size on 3,000 random updates", function()
    math.randomseed(20261125)
    for _ = 1, 3000 do
      local plain = {}
      for i = 1, rnd(1, 6) do plain["a" .. i] = value(1) end
      local old = core.marshal_item(plain)
      local new = {}
      for k, v in pairs(core.unmarshal_item(old)) do
        if rnd(8) > 1 then new[k] = mutate(v, 1) end
      end
      if rnd(4) == 1 then new["a" .. rnd(7, 8)] = value(1) end
      local ok, sets, avs, removes, size = pcall(core.plan_diff, old, new, nil, nil, true)
      local ref_ok, ref = pcall(function()
        local changed, whole = {}, {}
        for k, v in pairs(old) do whole[k] = v end
        for k in pairs(old) do if new[k] == nil then whole[k] = nil end end
        for k, v in pairs(new) do
          local av = marshal(v)
          if not (old[k] and av_equal(old[k], av)) then changed[#changed + 1] = k end
          whole[k] = av
        end
        table.sort(changed)
        return { changed = changed, size = size_of(whole) }
      end)
      assert.equal(ref_ok, ok, tostring(sets))
      if ok then
        assert.same(ref.changed, sets)
        assert.equal(ref.size, size)
        for _, k in ipairs(sets) do assert.is_true(av_equal(avs[k], marshal(new[k]))) end
        for _, k in ipairs(removes) do assert.is_nil(new[k]) end
      end
    end
  end)
  -- GetItem's Item is kept as the answer's nodes (an item doc, csrc/av/doc.c), compared in C
  -- without AttributeValue tables: every verdict must be the one its tables give
  local function respell(av)
    if type(av) ~= "table" then return av end
    local out = setmetatable({}, getmetatable(av))
    for k, v in pairs(av) do
      if k == "N" and type(v) == "string" and rnd(2) == 1 then
        v = v:find(".", 1, true) and v .. "0" or v .. "e0"
      end
      out[k] = respell(v)
    end
    return out
  end

  it("gives the same changes, AttributeValues and size against an item doc", function()
    math.randomseed(20261207)
    local skip = { a1 = true }
    for _ = 1, 3000 do
      local plain = {}
      for i = 1, rnd(1, 6) do plain["a" .. i] = value(1) end
      local old = respell(core.marshal_item(plain))
      local res = assert(core.parse_response(200, core.encode({ Item = old }), {}, "*Item"))
      local doc = res.Item
      assert.equal("userdata", type(doc))
      assert.same(core.unmarshal_item(old), res.plain)
      assert.same(old, core.item_av(doc))
      assert.equal(size_of(old), size_of(doc))
      for k, v in pairs(old) do assert.same(v, doc[k]) end
      assert.is_nil(doc.nothing)
      local new = {}
      for k, v in pairs(core.unmarshal_item(doc)) do
        if rnd(8) > 1 then new[k] = mutate(v, 1) end
      end
      if rnd(4) == 1 then new["a" .. rnd(7, 8)] = value(1) end
      local over = rnd(3) == 1 and { a2 = { N = "5" } } or nil
      for _, keep in ipairs({ true, false }) do
        local want = { pcall(core.plan_diff, old, new, skip, over, keep) }
        local got = { pcall(core.plan_diff, doc, new, skip, over, keep) }
        assert.equal(want[1], got[1], tostring(got[2]))
        if want[1] then
          assert.same(want[2], got[2])
          assert.same(want[3], got[3])
          assert.same(want[4], got[4])
          assert.equal(want[5], got[5])
        end
      end
    end
  end)
end)

describe("an item doc", function()
  local function item_of(body)
    return assert(core.parse_response(200, body, {}, "*Item")).Item
  end

  it("is tables when the Item is empty, holds a null or names an attribute twice", function()
    assert.same({}, item_of('{"Item":{}}'))
    assert.same({ a = { S = "x" } }, item_of('{"Item":{"a":{"S":"x"},"b":null}}'))
    assert.same({ a = { S = "y" } }, item_of('{"Item":{"a":{"S":"x"},"a":{"S":"y"}}}'))
    assert.is_nil(item_of('{"Count":0}'))
    assert.equal("userdata", type(item_of('{"Item":{"a":{"S":"x"}}}')))
  end)

  it("compares a value it cannot read alone through its tables", function()
    -- an AttributeValue with a null beside its value: the tables drop the null
    local doc = item_of('{"Item":{"pk":{"S":"k"},"m":{"M":{"x":{"N":"1","S":null}}}}}')
    assert.equal("userdata", type(doc))
    local sets = core.plan_diff(doc, { pk = "k", m = { x = 1 } }, nil, nil, true)
    assert.same({}, sets)
    sets = core.plan_diff(doc, { pk = "k", m = { x = 2 } }, nil, nil, true)
    assert.same({ "m" }, sets)
  end)

  it("finds every change and removal of items too big for the diff's first walk", function()
    -- the diff's scratch holds 64 names: a stored item and changes around that, from a doc
    -- and from tables, each against the same walk made in Lua
    for _, stored_n in ipairs({ 0, 1, 10, 40, 63, 64, 65, 90 }) do
      for _, changed_n in ipairs({ 0, 1, 23, 54, 55, 63, 64, 65, 100 }) do
        local stored, result = { pk = { S = "k" } }, { pk = "k" }
        for i = 1, stored_n do stored[("s%03d"):format(i)] = { N = tostring(i) } end
        for i = 1, stored_n, 2 do result[("s%03d"):format(i)] = i end     -- kept as stored
        for i = 1, changed_n do result[("c%03d"):format(i)] = i end       -- new
        local want_sets, want_removes = {}, {}
        for i = 1, changed_n do want_sets[#want_sets + 1] = ("c%03d"):format(i) end
        for i = 2, stored_n, 2 do want_removes[#want_removes + 1] = ("s%03d"):format(i) end
        local doc = item_of(core.encode({ Item = stored }))
        for _, old in ipairs({ stored, doc }) do
          local sets, avs, removes, size = core.plan_diff(old, result, { pk = true }, nil, true)
          local what = ("%d stored, %d new, %s"):format(stored_n, changed_n, type(old))
          assert.same(want_sets, sets, what)
          assert.same(want_removes, removes, what)
          assert.equal(changed_n, (function() local k = 0 for _ in pairs(avs) do k = k + 1 end
            return k end)(), what)
          local kept = {}
          for n, v in pairs(result) do kept[n] = core.marshal(v) end
          assert.equal(core.item_size(kept), size, what)
        end
      end
    end
  end)

  it("sizes a nested map that names a member twice as its tables do", function()
    -- found by fuzz_response: the nodes hold both members, the tables the last one
    for _, n in ipairs({ 2, 9, 70 }) do
      local members = {}
      for i = 1, n do members[i] = ('"m%d":{"S":"%s"}'):format(i, ("x"):rep(i)) end
      members[#members + 1] = '"m1":{"S":"y"}'
      local doc = item_of('{"Item":{"pk":{"S":"k"},"m":{"M":{' .. table.concat(members, ",") ..
        '}}}}')
      assert.equal("userdata", type(doc))
      assert.equal(core.item_size(core.item_av(doc)), core.item_size(doc), n)
      -- kept by an update that does not name it (as the tokens are)
      local keep = { m = true }
      local _, _, _, size = core.plan_diff(doc, { pk = "k" }, keep, nil, true)
      local _, _, _, want = core.plan_diff(core.item_av(doc), { pk = "k" }, keep, nil, true)
      assert.equal(want, size, n)
      assert.is_true(want > 10 + n)
    end
  end)

  it("keeps its strings when the answer's escapes were unescaped", function()
    local doc = item_of('{"Item":{"a\\u00e7":{"S":"x\\ny"},"n":{"N":"\\u0031"}}}')
    assert.same({ ["a\195\167"] = { S = "x\ny" }, n = { N = "1" } }, core.item_av(doc))
    assert.same({}, (core.plan_diff(doc, { ["a\195\167"] = "x\ny", n = 1 }, nil, nil, true)))
    collectgarbage()
    assert.same({ S = "x\ny" }, doc["a\195\167"])
  end)
end)

describe("the plain copy of an item read", function()
  local cfg = settings.table_settings({})

  it("is the one the answer brought, once, then a new conversion each time", function()
    local item = current()
    local from_answer = core.unmarshal_item(item)
    state.offer_plain(item, from_answer)
    local s = assert(state.of(cfg, item))
    local first = state.plain(cfg, s)
    assert.equal(from_answer, first)               -- no conversion for the first copy
    assert.is_nil(first._ddb_tokens)               -- the history is the module's, not shown
    first.counter = 99                             -- the function changes its copy
    local second = state.plain(cfg, s)
    assert.are_not.equal(first, second)
    assert.equal(7, second.counter)                -- read again from the AttributeValues
    assert.same(core.unmarshal_item(item).tags, second.tags)
  end)

  it("is made from the AttributeValues when no answer brought one", function()
    local s = assert(state.of(cfg, current()))
    local a, b = state.plain(cfg, s), state.plain(cfg, s)
    assert.are_not.equal(a, b)
    assert.same(a, b)
  end)
end)

describe("an update's body (core.update_plan plans and writes the request an update sends)", function()
  local rnd = math.random
  local NAMES = { "a", "b", "counter", "name", 'quo"te', "back\\slash", "tab\tname",
    "\195\169t\195\169", "x.y", "#n1", ":v1", "#c1", ":c1", "#V", "sp ace" }

  -- The request as this module has always laid it out, written here without the module's
  -- planner (what changed found with marshal and av_equal): the sets, the version and the
  -- tokens as #n1 = :v1 ..., the removals after them, then the condition's own placeholders
  -- (the version and the tokens named once).
  local function reference(t, s, a, stored, result)
    local cfg = t.cfg
    local own = { [cfg.version] = true, [cfg.token_attr] = true, [t.names[1]] = true }
    local sets, removes, nav = {}, {}, {}
    for n, v in pairs(result) do
      local av = core.marshal(v)
      if not own[n] and not (stored and stored[n] and core.av_equal(stored[n], av)) then
        sets[#sets + 1], nav[n] = n, av
      end
    end
    for n in pairs(stored or {}) do
      if not own[n] and result[n] == nil then removes[#removes + 1] = n end
    end
    table.sort(sets)
    table.sort(removes)
    local f = { nav = nav, removes = removes, tokens_av = a.tokens_av }
    local names, values, assign, i = {}, {}, {}, 0
    local function both(n, av)
      i = i + 1
      names["#n" .. i], values[":v" .. i] = n, av
      assign[#assign + 1] = ("#n%d = :v%d"):format(i, i)
      return "#n" .. i
    end
    for _, n in ipairs(sets) do both(n, f.nav[n]) end
    local by = { [cfg.version] = both(cfg.version, a.version_av) }
    if f.tokens_av then by[cfg.token_attr] = both(cfg.token_attr, f.tokens_av) end
    local nv, nn, rem = i, i, {}
    for _, n in ipairs(f.removes) do
      nn = nn + 1
      names["#n" .. nn], rem[#rem + 1] = n, "#n" .. nn
    end
    local function name(n)
      if not by[n] then
        nn = nn + 1
        by[n], names["#n" .. nn] = "#n" .. nn, n
      end
      return by[n]
    end
    local function value(av)
      nv = nv + 1
      values[":v" .. nv] = av
      return ":v" .. nv
    end
    local cond
    if not s.exists then
      cond = "attribute_not_exists(" .. name(t.names[1]) .. ")"
    else
      cond = (s.version and (name(cfg.version) .. " = " .. value({ N = s.version })) or
        ("attribute_exists(" .. name(t.names[1]) .. ") AND attribute_not_exists(" ..
          name(cfg.version) .. ")")) .. " AND " ..
        (s.hav and (name(cfg.token_attr) .. " = " .. value(s.hav)) or
          ("attribute_not_exists(" .. name(cfg.token_attr) .. ")"))
    end
    return { TableName = t.table, Key = t.kav,
      UpdateExpression = "SET " .. table.concat(assign, ", ") ..
        (#rem > 0 and (" REMOVE " .. table.concat(rem, ", ")) or ""),
      ConditionExpression = cond, ExpressionAttributeNames = names,
      ExpressionAttributeValues = values,
      ReturnValues = cfg.returns == "written" and "UPDATED_NEW" or "ALL_NEW",
      ReturnValuesOnConditionCheckFailure = "ALL_OLD", ReturnConsumedCapacity = "TOTAL" }
  end

  it("lays out 2,000 random updates as the request they plan, names escaped", function()
    math.randomseed(20261208)
    local seen = { removes = 0, no_version = 0, no_history = 0, absent = 0, many = 0 }
    for _ = 1, 2000 do
      local opts = { tokens = rnd(4) == 1 and 0 or rnd(1, 5),
        returns = rnd(2) == 1 and "written" or nil }
      local t = target(opts)
      local stored = false
      if rnd(6) > 1 then
        stored = { pk = { S = "k1" } }
        if rnd(5) > 1 then stored.version = { N = tostring(rnd(0, 99)) } end
        if rnd(5) > 1 then stored._ddb_tokens = { S = "1 TOKENAAAAAAA" } end
        for _ = 1, rnd(0, 8) do stored[NAMES[rnd(#NAMES)]] = { N = tostring(rnd(9)) } end
      end
      local result = {}
      if stored then
        for n, av in pairs(core.unmarshal_item(stored)) do
          if n ~= "_ddb_tokens" and (n == "pk" or n == "version" or rnd(3) > 1) then
            result[n] = av
          end
        end
      end
      for _ = 1, rnd(0, rnd(2) == 1 and 14 or 3) do result[NAMES[rnd(#NAMES)] .. rnd(0, 2)] = rnd(9) end
      local s = assert(state.of(t.cfg, stored or nil))
      local a = plan.write(t, s, result, "NEWTOKEN1234")
      if a then
        assert.equal("UpdateItem", a.op)
        local body = assert(core.decode(a.body))
        assert.same(reference(t, s, a, stored, result), body)
        assert.same(body, a.req)
        if body.UpdateExpression:find("REMOVE", 1, true) then seen.removes = seen.removes + 1 end
        if s.exists and not s.version then seen.no_version = seen.no_version + 1 end
        if s.exists and not s.hav then seen.no_history = seen.no_history + 1 end
        if not s.exists then seen.absent = seen.absent + 1 end
        if select(2, body.UpdateExpression:gsub("#n", "")) >= 10 then seen.many = seen.many + 1 end
      end
    end
    -- every shape of the condition and of the expression came up
    for what, n in pairs(seen) do assert.is_true(n >= 20, what .. ": " .. n) end
  end)

  it("is what the update sends, and made into a request only when asked", function()
    local res = core.unmarshal_item(current())
    res._ddb_tokens = nil
    res.counter = 8
    local a = planned(target(), res)
    assert.is_string(a.body)
    assert.is_nil(rawget(a, "req"))
    assert.same(core.decode(a.body), a.req)
    assert.equal(a.req, a.req)               -- made once
  end)

  it("leaves out an expression over the limit, and says why it cannot write", function()
    local function plan_of(result, max, opts)
      opts = opts or {}
      return core.update_plan(opts.table or "t", KAV, { "pk" }, opts.old, result, "version",
        { N = "2" }, "_ddb_tokens", { S = "1 T" }, opts.cond or "#V = :c1",
        nil, opts.values or { [":c1"] = { N = "1" } }, nil, max)
    end
    local ok, size = plan_of({ a = 1 }, 4096)
    local req = core.decode(assert(ok))
    assert.same({ N = "1" }, req.ExpressionAttributeValues[":v1"])
    assert.same({ N = "1" }, req.ExpressionAttributeValues[":v4"])
    assert.equal("#n2 = :v4", req.ConditionExpression)
    assert.is_nil(req.ReturnValues)
    assert.equal(core.item_size({ a = { N = "1" }, version = { N = "2" },
      _ddb_tokens = { S = "1 T" }, pk = { S = "k1" } }), size)
    local none, why, len, full = plan_of({ a = 1, b = 2 }, 20)
    assert.is_nil(none)
    assert.equal("UpdateExpression", why)
    assert.equal(#"SET #n1 = :v1, #n2 = :v2, #n3 = :v3, #n4 = :v4", len)
    assert.equal(core.item_size({ a = { N = "1" }, b = { N = "2" }, version = { N = "2" },
      _ddb_tokens = { S = "1 T" }, pk = { S = "k1" } }), full)
    none, why, len = plan_of({ a = 1 }, 40, { cond = ("#V = :c1 AND "):rep(3) .. "#T = :c1" })
    assert.is_nil(none)
    assert.equal("ConditionExpression", why)
    assert.equal(#(("#n2 = :v4 AND "):rep(3) .. "#n3 = :v4"), len)
    none, why, len = plan_of({ a = 1 }, 4096, { table = "t\255" })
    assert.is_nil(none)
    assert.equal("encode", why)
    assert.matches("UTF%-8", len)
    -- only the placeholders the condition's builder makes are numbered
    for _, cond in ipairs({ "#n1 = :c1", "#V = :v1", "#c0 = :c1", "#X", "a:b", "#c" }) do
      none, why, len = plan_of({ a = 1 }, 4096, { cond = cond })
      assert.is_nil(none, cond)
      assert.equal("encode", why)
      assert.matches("placeholder", len)
    end
    none, why, len = plan_of({ a = 1 }, 4096, { values = { [":v1"] = { N = "1" } } })
    assert.is_nil(none)
    assert.equal("encode", why)
    assert.matches("placeholder", len)
  end)

  it("refuses a changed key or version, and writes nothing when nothing changed", function()
    local old = { pk = { S = "k1" }, version = { N = "1" }, a = { N = "1" } }
    local function plan_of(result)
      return core.update_plan("t", KAV, { "pk" }, old, result, "version", { N = "2" },
        "_ddb_tokens", nil, "#V = :c1", nil, { [":c1"] = { N = "1" } }, nil, 4096)
    end
    assert.same({ nil, "key", "pk" }, { plan_of({ pk = "k2", a = 1 }) })
    assert.same({ nil, "version", "version" }, { plan_of({ version = 5, a = 1 }) })
    local same, size = plan_of({ pk = "k1", version = ddb.number("1.0"), a = 1 })
    assert.is_false(same)
    assert.equal(core.item_size({ pk = { S = "k1" }, version = { N = "2" }, a = { N = "1" } }),
      size)
    assert.is_false((plan_of({ a = 1 })))
    assert.is_string((plan_of({ a = 2 })))
    assert.has_error(function() plan_of({ a = function() end }) end)
  end)

  it("writes the body of the read (core.get_body) as the request it stands for", function()
    local key = { pk = { S = "k\"1" }, sk = { N = "2" } }
    assert.same({ TableName = "t", Key = key, ConsistentRead = true,
      ReturnConsumedCapacity = "TOTAL" }, core.decode(assert(core.get_body("t", key))))
    local none, why = core.get_body("t\255", key)
    assert.is_nil(none)
    assert.matches("UTF%-8", why)
  end)

  it("refuses an update it cannot encode, writing nothing", function()
    local t = target()
    t.table = "bad\255name"
    local res = core.unmarshal_item(current())
    res._ddb_tokens = nil
    res.counter = 8
    local a, err = planned(t, res)
    assert.is_nil(a)
    assert.equal("ValidationError", err.code)
    assert.matches("cannot be sent: .*UTF%-8.*nothing was written", err.message)
  end)
end)
