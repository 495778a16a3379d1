-- JSON for the DynamoDB wire: core.encode writes Lua values as JSON text, core.decode reads
-- JSON text back; what one refuses the other never produces.
local core = require "ddb.core"

local encode, decode = core.encode, core.decode
local LIST = core.mt.list

local function list(t) return setmetatable(t, LIST) end

-- n tables, each holding the next: the nesting a deep DynamoDB item turns into.
local function nested(n)
  local v = "leaf"
  for _ = 1, n do v = { v } end
  return v
end

describe("string escapes", function()
  it("escapes quotes, backslashes and the named control characters", function()
    assert.equal([["a\"b\\c\nd\re\tf\bg\fh"]], encode('a"b\\c\nd\re\tf\bg\fh'))
  end)

  it("writes the other control characters as \\u00XX and leaves '/' and DEL alone", function()
    assert.equal([["\u0001\u001f/]] .. "\127" .. [["]], encode("\1\31/\127"))
  end)

  it("reads every escape back to the same bytes", function()
    local s = 'q"b\\s/n\nr\rt\tb\bf\f' .. "\1\31"
    assert.equal(s, decode(encode(s)))
    assert.equal("/", decode([["\/"]]))
  end)

  -- The encoder steps over 8 plain bytes at a time: every byte that needs an escape (or a
  -- UTF-8 check) must be seen wherever it falls in or across those steps.
  it("writes every byte as one byte-by-byte escaper would, at any offset", function()
    local NAMED = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r",
      ["\t"] = "\\t", ["\b"] = "\\b", ["\f"] = "\\f" }
    local function reference(s)
      return '"' .. s:gsub("[%c\"\\]", function(c)
        if c == "\127" then return c end
        return NAMED[c] or ("\\u%04x"):format(c:byte())
      end) .. '"'
    end
    local pieces = { "a", "Z", " ", "~", "\127", '"', "\\", "\n", "\1", "\31", "é", "€", "😀" }
    local rng = 12345
    local function rand(n)
      rng = (rng * 1103515245 + 12345) % 2147483648
      return rng % n + 1
    end
    for _ = 1, 2000 do
      local parts = {}
      for i = 1, rand(24) - 1 do parts[i] = pieces[rand(#pieces)] end
      local s = table.concat(parts)
      local got = encode(s)
      assert.equal(reference(s), got)
      assert.equal(s, decode(got))
      local t = encode({ [s] = true })
      assert.equal("{" .. reference(s) .. ":true}", t)
    end
  end)
end)

describe("unicode", function()
  local text = "héllo wörld – 日本語 – 😀 – \239\191\189"

  it("writes UTF-8 text as it is, without \\u escapes", function()
    assert.equal('"' .. text .. '"', encode(text))
  end)

  it("reads UTF-8 text and \\u escapes, surrogate pairs included, to the same bytes", function()
    assert.equal(text, decode('"' .. text .. '"'))
    assert.equal("é😀", decode([["\u00e9\ud83d\ude00"]]))
  end)

  it("refuses lone surrogate escapes", function()
    assert.is_nil(decode([["\ud800"]]))
    assert.is_nil(decode([["\udc00x"]]))
  end)
end)

describe("NUL characters", function()
  it("are refused by the encoder, in values and in map keys", function()
    local s, err = encode("a\0b")
    assert.is_nil(s)
    assert.matches("NUL byte", err)
    assert.is_nil(encode({ ["k\0"] = 1 }))
  end)

  it("are named as the reason even after invalid UTF-8 or past the 8-byte steps", function()
    for _, s in ipairs({ "\255a\0", "abcdefghijklmnop\0", "\0\255", "abcdefgh\195\0" }) do
      local v, err = encode(s)
      assert.is_nil(v)
      assert.matches("NUL byte", err)
    end
  end)

  it("are refused by the decoder when escaped as \\u0000, with a message that says so", function()
    local v, err = decode([[{"k":"a\u0000b"}]])
    assert.is_nil(v)
    assert.equal("at byte 8: a string holds \\u0000 (a NUL character), which this module does " ..
      "not represent", err)
    assert.is_nil(decode([["\\\u0000"]]))   -- an escaped backslash, then the NUL escape
  end)

  it("are refused by the decoder as raw bytes instead of cutting the string short", function()
    local v, err = decode('"a\0b"')
    assert.is_nil(v)
    assert.equal("not valid JSON at byte 3: expected a character (control characters must be " ..
      "escaped), found '?b\"'", err)
    assert.is_nil(decode('{"a\0b":1}'))
  end)

  it("are not confused with an escaped backslash followed by the text u0000", function()
    assert.equal("\\u0000", decode([["\\u0000"]]))
    assert.equal("a\\\\u0000", decode([["a\\\\u0000"]]))
  end)
end)

describe("invalid UTF-8", function()
  local bad = {
    ["a stray continuation byte"] = "\128",
    ["a truncated sequence"] = "\226\130",
    ["an overlong encoding of '/'"] = "\192\175",
    ["an encoded surrogate"] = "\237\160\128",
    ["a code point above U+10FFFF"] = "\244\144\128\128",
    ["a byte that never occurs"] = "\255",
  }
  for what, bytes in pairs(bad) do
    it("is refused by the encoder: " .. what, function()
      local s, err = encode("ok" .. bytes)
      assert.is_nil(s)
      assert.equal("string is not valid UTF-8 (use ddb.binary for bytes)", err)
      assert.is_nil(encode({ ["k" .. bytes] = true }))
    end)

    it("is refused by the decoder: " .. what, function()
      local v, err = decode('"ok' .. bytes .. '"')
      assert.is_nil(v)
      assert.equal("at byte 4: the text is not valid UTF-8", err)
    end)

    it("is found at any offset from the 8-byte steps over ASCII: " .. what, function()
      for off = 0, 17 do
        local pad = ("a"):rep(off)
        assert.is_nil(encode(pad .. bytes .. ("b"):rep(off % 9)))
        assert.is_nil(decode('"' .. pad .. bytes .. '"'))
      end
    end)
  end

  it("is told from valid multi-byte text at any offset", function()
    for off = 0, 17 do
      local text = ("a"):rep(off) .. "é€😀" .. ("b"):rep(off % 9)
      assert.equal(text, decode(assert(encode(text))))
    end
  end)
end)

describe("arrays and objects", function()
  it("writes a sequence as an array and string keys as an object", function()
    assert.equal('[1,"two",true]', encode({ 1, "two", true }))
    assert.equal('{"k":"v"}', encode({ k = "v" }))
  end)

  it("reads arrays as sequences marked as lists and objects as plain tables", function()
    local a = decode('[1,"two",{"k":false}]')
    assert.same({ 1, "two", { k = false } }, a)
    assert.equal(LIST, getmetatable(a))
    assert.is_nil(getmetatable(a[3]))
  end)

  it("refuses tables that are neither: holes, mixed keys, other key types", function()
    local cases = {
      { { 1, nil, 3 }, "list has holes (2 items, highest index 3)" },
      { { 1, k = 2 }, "table mixes list indexes and string keys" },
      { { [1.5] = true }, "table has a key that is neither a string nor a list index" },
      { { [true] = 1 }, "table has a key that is neither a string nor a list index" },
    }
    for _, c in ipairs(cases) do
      local s, err = encode(c[1])
      assert.is_nil(s)
      assert.equal(c[2], err)
    end
  end)

  -- A table whose first key (in next's order) is a string is written as it is walked: a key
  -- met later must fail it as the scan of the whole table would have.
  it("refuses a bad key met after string keys, wherever next() puts it", function()
    for _, bad in ipairs({ { 100, "table mixes list indexes and string keys" },
        { 2.5, "table has a key that is neither a string nor a list index" },
        { true, "table has a key that is neither a string nor a list index" } }) do
      for n = 1, 12 do
        local t = {}
        for i = 1, n do t["k" .. i] = i end
        t[bad[1]] = "x"
        local s, err = encode({ wrap = t })
        assert.is_nil(s)
        assert.equal(bad[2], err)
      end
    end
  end)

  it("refuses non-string keys in a table marked as a map instead of failing inside next()", function()
    local s, err = encode(setmetatable({ 1, 2 }, core.mt.map))
    assert.is_nil(s)
    assert.equal("map key is a number, not a string", err)
    s, err = encode(setmetatable({ [true] = 1 }, core.mt.map))
    assert.is_nil(s)
    assert.equal("map key is a boolean, not a string", err)
  end)

  it("refuses values JSON has no place for", function()
    assert.is_nil(encode(function() end))
    assert.is_nil(encode(0 / 0))
    assert.is_nil(encode(1 / 0))
    assert.is_nil(encode(setmetatable({}, { __index = {} })))
  end)

  it("drops null members of objects: nil is absence in Lua", function()
    assert.same({ a = 1 }, decode('{"a":1,"b":null}'))
    assert.equal("null", encode(nil))
  end)
end)

describe("the empty list marker", function()
  it("writes a plain empty table as an object and a marked one as an array", function()
    assert.equal("{}", encode({}))
    assert.equal("[]", encode(list({})))
    assert.equal("{}", encode(setmetatable({}, core.mt.map)))
  end)

  it("keeps an empty array an array through a decode and an encode", function()
    local v = decode('{"L":[],"M":{}}')
    assert.equal("[]", encode(v.L))
    assert.equal("{}", encode(v.M))
    assert.equal("[]", encode(decode("[]")))
  end)
end)

describe("the nesting limit", function()
  it("writes 128 levels of nesting", function()
    assert.equal(("["):rep(128) .. '"leaf"' .. ("]"):rep(128), encode(nested(128)))
  end)

  it("refuses a 129th level with a message", function()
    local s, err = encode(nested(129))
    assert.is_nil(s)
    assert.equal("nesting deeper than 128 levels (or a cyclic table)", err)
  end)

  it("refuses a cyclic table instead of recursing forever", function()
    local t = {}
    t.self = t
    local s, err = encode(t)
    assert.is_nil(s)
    assert.matches("cyclic", err)
  end)

  it("fits a DynamoDB item nested as deep as DynamoDB allows, inside a transaction", function()
    local deep = "leaf"
    for _ = 1, 30 do deep = { k = deep } end
    local item = core.marshal_item({ pk = "a", deep = deep })
    local req = { TransactItems = list({ { Put = { TableName = "t", Item = item } } }) }
    local s, err = encode(req)
    assert(s, err)
    assert.same(req, decode(s))
  end)

  it("reads deep documents and refuses absurdly deep ones without overflowing", function()
    assert.same(nested(200), decode(("["):rep(200) .. '"leaf"' .. ("]"):rep(200)))
    local v, err = decode(("["):rep(100000) .. ("]"):rep(100000))
    assert.is_nil(v)
    assert.equal("at byte 201: nested more than 200 levels deep", err)
  end)
end)

describe("malformed text", function()
  it("refuses trailing garbage but allows trailing whitespace", function()
    local v, err = decode('{"a":1} x')
    assert.is_nil(v)
    assert.equal("not valid JSON at byte 9: expected the end of the text, found 'x'", err)
    assert.is_nil(decode("{}{}"))
    assert.same({ a = 1 }, decode('{"a":1} \r\n\t'))
  end)

  it("refuses empty, truncated and non-JSON text", function()
    for _, text in ipairs({ "", "   ", '{"a":', "[1,2", "<html>503</html>", "{'a':1}", "nul" }) do
      local v, err = decode(text)
      assert.is_nil(v)
      assert.matches("^not valid JSON at byte %d+: expected ", err)
    end
  end)
end)

describe("numbers", function()
  it("keeps integers exact up to 2^53", function()
    for _, n in ipairs({ 0, 1, -1, 2 ^ 31, 2 ^ 32 + 1, 2 ^ 53 - 1, -(2 ^ 53 - 1), -0.0, 1e15 - 1,
      -123.0, 10 ^ 14 }) do
      local text = encode(n)
      assert.equal(("%.0f"):format(n), text)
      assert.equal(n, decode(text))
    end
    assert.equal(9007199254740991, decode("9007199254740991"))
    assert.equal("9007199254740992", encode(decode("9007199254740992")))
  end)

  if math.type then   -- Lua 5.3 and later
    it("reads integers as Lua integers", function()
      assert.equal("integer", math.type(decode("42")))
      assert.equal("integer", math.type(decode("-9007199254740991")))
      assert.equal("float", math.type(decode("1.5")))
    end)

    it("writes Lua integers beyond 2^53 digit for digit", function()
      assert.equal("9223372036854775807", encode(math.maxinteger))
      assert.equal("-9223372036854775808", encode(math.mininteger))
    end)
  end

  it("round-trips floats exactly", function()
    local values = { 0.1, -0.5, 1 / 3, 2 / 3 * 1e-300, 1e300, 5e-324, 123456.789, 2 ^ -1074,
      1.7976931348623157e308, 2 ^ 60 + 2 ^ 8, 1e15, 1e16 + 2 }
    -- Park-Miller: products stay below 2^53, so every runtime draws the same values
    local seed = 12345
    local function draw()
      seed = seed * 16807 % 2147483647
      return seed
    end
    for _ = 1, 500 do
      local m = draw() / 2147483647
      values[#values + 1] = (m - 0.5) * 10 ^ (draw() % 600 - 300)
    end
    for _, x in ipairs(values) do
      local text = encode(x)
      assert(decode(text) == x, ("%.17g came back as %s (text %s)"):format(x, tostring(decode(text)), text))
    end
  end)

  it("reads exponents and negative zero", function()
    assert.equal(1500, decode("1.5e3"))
    assert.equal(0.015, decode("1.5E-2"))
    assert.equal(0, decode("-0"))
  end)
end)

describe("lists marked with ddb.list", function()
  it("refuse string keys instead of dropping them", function()
    local value, err = core.encode(setmetatable({ 1, x = 2 }, core.mt.list))
    assert.is_nil(value)
    assert.truthy(err:find("string key", 1, true), err)
  end)
end)

describe("errors", function()
  it("name the byte where the text goes wrong and what was expected there", function()
    local cases = {
      { '{"a":1,}', "not valid JSON at byte 8: expected a member name in double quotes, found '}'" },
      { '[1 2]', "not valid JSON at byte 4: expected ',' or ']', found '2]'" },
      { '{"a" 1}', "not valid JSON at byte 6: expected ':' after the member name, found '1}'" },
      { '"abc', "not valid JSON at byte 5: expected '\"' closing the string that starts at " ..
        "byte 1, found the end of the text" },
      { '[-]', "not valid JSON at byte 3: expected a digit, found ']'" },
      { '[1.]', "not valid JSON at byte 4: expected a digit after the decimal point, found ']'" },
      { '[1e+]', "not valid JSON at byte 4: expected the exponent's digits, found '+]'" },
      { '["\\q"]', "not valid JSON at byte 4: expected an escape" },
      { '["\\u12g4"]', "not valid JSON at byte 5: expected four hex digits after \\u" },
      { '["\\ud800\\u0041"]', "not valid JSON at byte 9: expected the low half of a surrogate pair" },
      { '[tru]', "not valid JSON at byte 2: expected a value" },
      { '[1e999]', "at byte 2: JSON holds a number beyond the range of a double" },
    }
    for _, c in ipairs(cases) do
      local v, err = decode(c[1])
      assert.is_nil(v, c[1])
      assert.equal(c[2], err:sub(1, #c[2]), c[1])
    end
  end)

  it("show at most 12 bytes of what was found, control characters as '?'", function()
    local _, err = decode('{"a":1 "\1bcdefghijklmnopq"}')
    assert.equal("not valid JSON at byte 8: expected ',' or '}', found '\"?bcdefghijk'", err)
  end)
end)

describe("exact reading (core.decode(text, { exact = true }), the CLI's)", function()
  local EXACT = { exact = true }
  local null = core.null

  it("keeps numbers a double cannot hold as ddb.number text", function()
    local v = assert(decode('{"big":123456789012345678901234567890,"pi":3.14159265358979323846,' ..
      '"small":12,"half":0.5}', EXACT))
    assert.equal(core.mt.number, getmetatable(v.big))
    assert.equal("123456789012345678901234567890", v.big.value)
    assert.equal("3.14159265358979323846", v.pi.value)
    assert.equal(12, v.small)
    assert.equal(0.5, v.half)
  end)

  it("refuses numbers DynamoDB cannot store, naming them", function()
    local v, err = decode('{"n":1e999999}', EXACT)
    assert.is_nil(v)
    assert.matches("^at byte 6: 1e999999 is not a number DynamoDB can store %(", err)
    assert.is_nil((decode("[" .. ("9"):rep(39) .. "]", EXACT)))
  end)

  it("reads null as ddb.null, in maps and in lists", function()
    local v = assert(decode('{"a":null,"l":[1,null,2]}', EXACT))
    assert.equal(null, v.a)
    assert.same({ 1, null, 2 }, { v.l[1], v.l[2], v.l[3] })
    assert.same({ l = list({ 1, 2 }) }, decode('{"a":null,"l":[1,null,2]}'))   -- not exact
  end)

  it("refuses a member given twice (the last would win silently)", function()
    local v, err = decode('{"pk":"a","pk":"b"}', EXACT)
    assert.is_nil(v)
    assert.equal("at byte 11: member 'pk' given twice", err)
    assert.same({ pk = "b" }, decode('{"pk":"a","pk":"b"}'))
  end)

  it("refuses nesting beyond max_depth at the bracket that goes too deep", function()
    assert.truthy(decode(("["):rep(32) .. ("]"):rep(32), { max_depth = 32 }))
    local v, err = decode(("["):rep(33) .. ("]"):rep(33), { exact = true, max_depth = 32 })
    assert.is_nil(v)
    assert.equal("at byte 33: nested more than 32 levels deep", err)
    assert.has_error(function() decode("[]", { max_depth = 1000 }) end)
  end)
end)

describe("strings read with escapes beside strings without", function()
  it("keeps each string's own bytes (escaped ones are built in a buffer of their own)", function()
    local v = assert(decode('{"a":"x\\ny","b":"plain","c":"\\u00e9\\t","d":"\\"q\\"","e":""}'))
    assert.same({ a = "x\ny", b = "plain", c = "é\t", d = '"q"', e = "" }, v)
    local item = assert(core.parse_response(200,
      '{"Item":{"n":{"N":"\\u0031\\u0032"},"m":{"N":"34"},"s":{"S":"\\u00e9"}}}', {}, "Item"))
    assert.same({ n = 12, m = 34, s = "é" }, item.Item)
  end)
end)
