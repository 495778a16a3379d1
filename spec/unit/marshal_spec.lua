-- Plain Lua values <-> DynamoDB AttributeValues: every type, every edge, exact numbers.
local ddb = require "ddb"

local marshal, unmarshal = ddb.marshal, ddb.unmarshal
local encode = ddb.encode_json

-- A wrapper built around ddb.number's own check, as a careless caller might.
local function raw_number(text)
  return setmetatable({ value = text }, ddb.core.mt.number)
end

describe("marshal", function()
  it("maps Lua scalars to S, N and BOOL", function()
    assert.same({ S = "héllo" }, marshal("héllo"))
    assert.same({ N = "42" }, marshal(42))
    assert.same({ N = "-1.5" }, marshal(-1.5))
    assert.same({ BOOL = true }, marshal(true))
    assert.same({ BOOL = false }, marshal(false))
  end)

  it("writes floats with the fewest digits that read back exactly", function()
    assert.same({ N = "0.1" }, marshal(0.1))
    assert.same({ N = "0.30000000000000004" }, marshal(0.1 + 0.2))
    assert.same({ N = "100000000000000000000" }, marshal(1e20))
    assert.same({ N = "0.00000015" }, marshal(1.5e-7))
    assert.same({ N = "1.5E-25" }, marshal(1.5e-25))
  end)

  it("turns sequences into L and string-keyed tables into M", function()
    assert.equal('{"L":[{"N":"1"},{"S":"a"}]}', encode(marshal({ 1, "a" })))
    assert.equal('{"M":{"k":{"BOOL":true}}}', encode(marshal({ k = true })))
  end)

  it("keeps an empty list a list and an empty table a map", function()
    assert.equal('{"L":[]}', encode(marshal(ddb.list())))
    assert.equal('{"M":{}}', encode(marshal({})))
    assert.equal('{"M":{}}', encode(marshal(ddb.map())))
  end)

  it("stores NULL, binary and the three set types", function()
    assert.same({ NULL = true }, marshal(ddb.null))
    assert.same({ B = "AAH/" }, marshal(ddb.binary("\0\1\255")))
    assert.same({ SS = { "a", "b" } }, marshal(ddb.string_set{ "a", "b" }))
    assert.same({ NS = { "1", "2.5" } }, marshal(ddb.number_set{ 1, "2.50" }))
    assert.same({ BS = { "AA==", "AQI=" } }, marshal(ddb.binary_set{ "\0", "\1\2" }))
  end)

  it("checks numbers as they are wrapped", function()
    assert.has_error(function() ddb.number("1e200") end)
    assert.has_error(function() ddb.number("one") end)
  end)

  it("keeps numbers beyond double precision digit for digit", function()
    local big = ddb.number("12345678901234567890123456789012345678")
    assert.same({ N = "12345678901234567890123456789012345678" }, marshal(big))
    assert.same({ N = "1E-38" },
      marshal(ddb.number("1e-38")))
  end)

  local bad = {
    { "a function", print, "function cannot be stored" },
    { "a coroutine", coroutine.create(function() end), "thread cannot be stored" },
    { "userdata", io.stdout, "userdata cannot be stored" },
    { "NaN", 0 / 0, "NaN and infinity" },
    { "infinity", math.huge, "NaN and infinity" },
    { "invalid UTF-8", "\255\254", "not valid UTF-8" },
    { "a NUL byte in text", "a\0b", "NUL byte" },
    { "a table mixing list and map", { 1, x = 2 }, "mixes list indexes and string keys" },
    { "a list with holes", { [1] = 1, [3] = 3 }, "holes" },
    { "a non-string map key", { [true] = 1 }, "neither a string nor a list index" },
    { "an empty string set", ddb.string_set{}, "empty set" },
    { "a duplicate in a set", ddb.string_set{ "a", "a" }, "same value twice" },
    { "numerically equal set members", ddb.number_set{ "1.0", 1 }, "same value twice" },
    { "39 significant digits", raw_number("123456789012345678901234567890123456789"),
      "38 significant digits" },
    { "a number too large", raw_number("1e126"), "larger than DynamoDB's maximum" },
    { "a number too small", raw_number("1e-131"), "smaller than DynamoDB's minimum" },
    { "a wrapped non-number", raw_number("12abc"), "not a number" },
    { "a foreign metatable", setmetatable({}, {}), "foreign metatable" },
  }
  for _, case in ipairs(bad) do
    it("refuses " .. case[1] .. " with a clear error", function()
      local ok, err = pcall(marshal, case[2])
      assert.is_false(ok)
      assert.truthy(tostring(err):find(case[3], 1, true), tostring(err))
    end)
  end

  it("refuses a bad key met after string keys, wherever next() puts it", function()
    for _, key in ipairs({ { 100, "mixes list indexes and string keys" },
        { 2.5, "neither a string nor a list index" }, { true, "neither a string nor a list index" } }) do
      for n = 1, 12 do
        local t = {}
        for i = 1, n do t["k" .. i] = i end
        t[key[1]] = "x"
        local ok, err = pcall(marshal, { wrap = t })
        assert.is_false(ok)
        assert.truthy(tostring(err):find("wrap: ", 1, true), tostring(err))
        assert.truthy(tostring(err):find(key[2], 1, true), tostring(err))
      end
    end
  end)

  it("names the path of a bad value inside an item", function()
    local ok, err = pcall(ddb.marshal_item, { profile = { tags = { 1, print } } })
    assert.is_false(ok)
    assert.truthy(err:find("profile.tags[2]", 1, true), err)
  end)

  it("refuses a cyclic table instead of looping", function()
    local t = {}
    t.self = t
    local ok, err = pcall(marshal, t)
    assert.is_false(ok)
    assert.truthy(err:find("deeper than", 1, true), err)
  end)
end)

describe("unmarshal", function()
  it("gives Lua numbers when they hold the exact value", function()
    assert.equal(2.5, unmarshal{ N = "2.50" })
    assert.equal(100, unmarshal{ N = "1E2" })
    assert.equal(-0.001, unmarshal{ N = "-0.001" })
  end)

  it("gives a ddb.number wrapper, keeping the text, when a Lua number would round", function()
    local n = unmarshal{ N = "3.14159265358979323846264338327950288" }
    assert.equal("N", ddb.type(n))
    assert.equal("3.14159265358979323846264338327950288", n.value)
    assert.equal("3.14159265358979323846264338327950288", marshal(n).N)
  end)

  it("compares wrapped numbers by value", function()
    assert.is_true(ddb.number("2.50") == ddb.number("2.5"))
    assert.is_false(ddb.number("2.51") == ddb.number("2.5"))
  end)

  it("round-trips every type unchanged", function()
    local item = {
      s = "text", n = 7, f = 0.25, t = true, nul = ddb.null,
      bin = ddb.binary("\0\255"), empty_list = ddb.list(), empty_map = {},
      ss = ddb.string_set{ "x", "y" }, ns = ddb.number_set{ 1, 2 },
      bs = ddb.binary_set{ "\1" }, nested = { l = { 1, { m = "v" } } },
      big = ddb.number("99999999999999999999999999999999999999"),
    }
    local av = ddb.marshal_item(item)
    local back = ddb.unmarshal_item(av)
    for k, v in pairs(av) do
      assert.is_true(ddb.core.av_equal(v, marshal(back[k])), k)
    end
    assert.equal("L", ddb.type(back.empty_list))
    assert.equal(ddb.null, back.nul)
    assert.equal("\0\255", back.bin.value)
  end)

  it("refuses malformed AttributeValues with a clear error", function()
    for _, av in ipairs{ { N = "abc" }, { B = "***" }, { X = "1" }, {}, { L = "no" } } do
      local ok, err = pcall(unmarshal, av)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("malformed AttributeValue", 1, true), tostring(err))
    end
  end)
end)

describe("binary values (B, BS) as base64 text", function()
  local core = ddb.core

  -- the value a B reads as, or nil and the error
  local function read(text)
    local ok, v = pcall(unmarshal, { B = text })
    if ok then return v.value end
    return nil, tostring(v)
  end

  it("reads canonical base64, padded, of every length", function()
    assert.equal("", read(""))
    assert.equal("\0", read("AA=="))
    assert.equal("\0\1", read("AAE="))
    assert.equal("\0\1\255", read("AAH/"))
    assert.equal("\251\255", read("+/8="))
    for n = 0, 9 do
      local bytes = ("\7\200\255"):rep(4):sub(1, n)
      assert.equal(bytes, read(marshal(ddb.binary(bytes)).B), n)
    end
  end)

  it("refuses padding out of place, too much of it, or missing", function()
    for _, text in ipairs{ "A===", "====", "AA=A", "=AAA", "AA==AA==", "AAAA====", "AA", "AAE" } do
      local v, err = read(text)
      assert.is_nil(v, text)
      assert.matches("B is not base64", err, 1, true)
    end
  end)

  it("refuses whitespace anywhere, which OpenSSL's decoder would skip", function()
    for _, text in ipairs{ " AAH/", "AAH/ ", "AAH/    ", "    AAH/", "AA==    ", "AAH/\n", "AA\nA",
                           "A\tA=" } do
      assert.is_nil(read(text), text)
    end
  end)

  it("refuses characters outside the alphabet (base64url, NUL) and stray bits in the padding",
     function()
    for _, text in ipairs{ "AA-_", "AA.=", "\0AAA", "AB==", "AAF=" } do
      assert.is_nil(read(text), text)
    end
  end)

  it("holds binary sets and answers read from JSON to the same rules", function()
    assert.has_error(function() unmarshal{ BS = { "AA==", "A===" } } end)
    local item = assert(core.decode('{"b":{"B":"AQI="},"s":{"BS":["AA=="]}}'))
    assert.equal("\1\2", core.unmarshal_item(item).b.value)
    local res = core.parse_response(200, '{"Item":{"b":{"B":"AA=="}}}', {}, "Item")
    assert.equal("\0", res.Item.b.value)
    assert.is_nil(core.parse_response(200, '{"Item":{"b":{"B":"AA==    "}}}', {}, "Item"))
  end)
end)

describe("AttributeValue equality", function()
  local eq = ddb.core.av_equal
  it("compares numbers by value, as DynamoDB normalises their text", function()
    assert.is_true(eq({ N = "2.50" }, { N = "2.5" }))
    assert.is_true(eq({ N = "1e3" }, { N = "1000" }))
    assert.is_false(eq({ N = "1" }, { S = "1" }))
  end)
  it("compares sets without regard to order", function()
    assert.is_true(eq({ SS = { "a", "b" } }, { SS = { "b", "a" } }))
    assert.is_true(eq({ NS = { "1.0", "2" } }, { NS = { "2", "1" } }))
    assert.is_false(eq({ SS = { "a" } }, { SS = { "a", "b" } }))
  end)
  it("compares lists in order and maps by key", function()
    assert.is_false(eq({ L = { { N = "1" }, { N = "2" } } }, { L = { { N = "2" }, { N = "1" } } }))
    assert.is_true(eq({ M = { a = { N = "1" } } }, { M = { a = { N = "1.0" } } }))
    assert.is_false(eq({ M = { a = { N = "1" } } }, { M = { a = { N = "1" }, b = { NULL = true } } }))
  end)
end)

describe("item size", function()
  it("counts names and values as DynamoDB does, closely enough to refuse 400 KB items", function()
    local size = ddb.core.item_size(ddb.marshal_item{ name = ("x"):rep(1000) })
    assert.equal(4 + 1000, size)
  end)
end)
