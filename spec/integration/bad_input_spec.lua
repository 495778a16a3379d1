-- Bad input, table-driven, on both servers: every case ends in a clear error (its code and
-- a message that names the problem) and writes nothing, which the proxy's request counts
-- and the stored item prove. Attribute names that expressions cannot hold as they are
-- (reserved words, dots, '#', ':') are not bad input: they round-trip.
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local helper = require "helper"

local core = ddb.core
local mt = core.mt

local WRITES = { "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems" }

local function incr(item)
  item = item or {}
  item.n = (item.n or 0) + 1
  return item
end

-- A result holding value under attribute v (the function's answer to the stored item).
local function returns(value)
  return function(item)
    item.v = value
    return item
  end
end

local function cyclic()
  local t = { a = 1 }
  t.self = t
  return t
end

local function nested(depth)
  local t = { leaf = 1 }
  for _ = 1, depth do t = { down = t } end
  return t
end

-- Raw wrappers, for values the constructors (which check) would refuse before the marshaller.
local function raw_number(text) return setmetatable({ value = text }, mt.number) end

-- Each case: name; run(ctx) returning nil, err (or raising when raises = true); code; msg,
-- a plain fragment of the message (or a list of fragments, one per server's wording).
-- ctx has the store, the client, the table names. server_refuses: only the server can tell
-- (a write may be sent; it is refused, and the table is unchanged).
local CASES = {
  -- keys
  { name = "a key attribute that is not the table's", code = "ValidationError",
    msg = "key has attribute 'id', which is not part of table",
    run = function(c) return c.store:with_item({ id = "x" }, incr) end },
  { name = "a key without the table's range key", code = "ValidationError",
    msg = "key lacks attribute 'sk'",
    run = function(c) return c.store2:with_item({ pk = "x" }, incr) end },
  { name = "a key with an extra attribute", code = "ValidationError",
    msg = "key has attribute 'extra', which is not part of table",
    run = function(c) return c.store:with_item({ pk = "bad", extra = "y" }, incr) end },
  { name = "a key that is a map", code = "ValidationError",
    msg = "key attribute 'pk' must be a string, number or ddb.binary",
    run = function(c) return c.store:with_item({ pk = { nested = true } }, incr) end },
  { name = "a key that is a boolean", code = "ValidationError",
    msg = "key attribute 'pk' must be a string, number or ddb.binary",
    run = function(c) return c.store:with_item({ pk = true }, incr) end },
  -- the key's types are the table's business: the server refuses, and nothing changes
  { name = "a key that is a number where the table has a string", code = "ValidationException",
    msg = { "Type mismatch", "does not match the schema" }, server_refuses = true,
    run = function(c) return c.store:with_item({ pk = 7 }, incr) end },
  { name = "a key that is an empty string", code = "ValidationException",
    msg = { "empty string" }, server_refuses = true,
    run = function(c) return c.store:with_item({ pk = "" }, incr) end },
  { name = "a key that is not valid UTF-8", code = "ValidationError",
    msg = "pk: string is not valid UTF-8",
    run = function(c) return c.store:with_item({ pk = "\255\254" }, incr) end },
  { name = "a key that is NaN", code = "ValidationError", msg = "pk: NaN and infinity",
    run = function(c) return c.store:with_item({ pk = 0 / 0 }, incr) end },

  -- values Lua has and DynamoDB does not
  { name = "a function", code = "ValidationError", msg = "v: a function cannot be stored",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns(print)) end },
  { name = "a userdata", code = "ValidationError", msg = "v: a userdata cannot be stored",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns(io.stdout)) end },
  { name = "a thread", code = "ValidationError", msg = "v: a thread cannot be stored",
    run = function(c)
      return c.store:with_item({ pk = "bad" }, returns(coroutine.create(function() end)))
    end },
  { name = "a cyclic table", code = "ValidationError", msg = "or a cyclic table",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns(cyclic())) end },
  { name = "nesting deeper than 32 levels", code = "ValidationError",
    msg = "nesting deeper than DynamoDB's 32 levels",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns(nested(40))) end },
  { name = "NaN", code = "ValidationError", msg = "v: NaN and infinity cannot be stored",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns(0 / 0)) end },
  { name = "infinity", code = "ValidationError", msg = "v: NaN and infinity cannot be stored",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns(math.huge)) end },
  { name = "minus infinity in a list", code = "ValidationError",
    msg = "v[2]: NaN and infinity cannot be stored",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns({ 1, -math.huge })) end },
  { name = "a table mixing list indexes and string keys", code = "ValidationError",
    msg = "v: table mixes list indexes and string keys",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns({ 1, 2, x = 3 })) end },
  { name = "a list with holes", code = "ValidationError", msg = "v: list has holes",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns({ 1, nil, 3 })) end },
  { name = "a table with a boolean key", code = "ValidationError",
    msg = "v: table has a key that is neither a string nor a list index",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns({ [true] = 1 })) end },
  { name = "a table with a fractional key", code = "ValidationError",
    msg = "v: table has a key that is neither a string nor a list index",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns({ [1.5] = 1 })) end },
  { name = "a ddb.map with a boolean key", code = "ValidationError",
    msg = "v: map key is a boolean, not a string",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns(ddb.map{ [true] = 1 })) end },
  { name = "a ddb.map with list indexes", code = "ValidationError",
    msg = "v: map key is a number, not a string",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns(ddb.map{ "a", "b" })) end },
  { name = "a table with a foreign metatable", code = "ValidationError",
    msg = "v: table with a foreign metatable cannot be stored",
    run = function(c)
      return c.store:with_item({ pk = "bad" }, returns(setmetatable({}, { __index = {} })))
    end },
  { name = "a ddb.binary that holds no string", code = "ValidationError",
    msg = "v: ddb.binary value is not a string",
    run = function(c)
      return c.store:with_item({ pk = "bad" }, returns(setmetatable({ value = 1 }, mt.binary)))
    end },

  -- text
  { name = "a string that is not valid UTF-8", code = "ValidationError",
    msg = "v: string is not valid UTF-8; store bytes with ddb.binary",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns("caf\233")) end },
  { name = "a string with a surrogate encoded in UTF-8", code = "ValidationError",
    msg = "v: string is not valid UTF-8",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns("\237\160\128")) end },
  { name = "an attribute name that is not valid UTF-8", code = "ValidationError",
    msg = "string is not valid UTF-8",
    run = function(c)
      return c.store:with_item({ pk = "bad" }, function(it) it["na\255me"] = 1; return it end)
    end },
  { name = "a string with a NUL byte", code = "ValidationError", msg = "v: string contains a NUL byte",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns("a\0b")) end },
  { name = "a string set element that is not valid UTF-8", code = "ValidationError",
    msg = "v[2]: string is not valid UTF-8",
    run = function(c)
      return c.store:with_item({ pk = "bad" }, returns(ddb.string_set{ "ok", "\192\128" }))
    end },

  -- numbers
  { name = "a number above DynamoDB's range", code = "ValidationError",
    msg = "v: number is larger than DynamoDB's maximum",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns(1e200)) end },
  { name = "a number below DynamoDB's smallest magnitude", code = "ValidationError",
    msg = "v: number is smaller than DynamoDB's minimum magnitude",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns(-1e-200)) end },
  { name = "a number with 39 significant digits", code = "ValidationError",
    msg = "v: number has more than 38 significant digits",
    run = function(c)
      return c.store:with_item({ pk = "bad" },
        returns(raw_number("123456789012345678901234567890123456789")))
    end },
  { name = "a ddb.number holding text that is not a number", code = "ValidationError",
    msg = "v: not a number",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns(raw_number("12abc"))) end },
  { name = "a number set element beyond the range", code = "ValidationError",
    msg = "v[1]: number is larger than DynamoDB's maximum",
    run = function(c)
      return c.store:with_item({ pk = "bad" }, returns(ddb.number_set{ "1E+126" }))
    end },

  -- sets
  { name = "an empty string set", code = "ValidationError",
    msg = "v: DynamoDB cannot store an empty set",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns(ddb.string_set{})) end },
  { name = "an empty number set", code = "ValidationError",
    msg = "v: DynamoDB cannot store an empty set",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns(ddb.number_set{})) end },
  { name = "an empty binary set", code = "ValidationError",
    msg = "v: DynamoDB cannot store an empty set",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns(ddb.binary_set{})) end },
  { name = "a set holding one value twice", code = "ValidationError",
    msg = "v[2]: set holds the same value twice",
    run = function(c)
      return c.store:with_item({ pk = "bad" }, returns(ddb.number_set{ "2.5", "2.50" }))
    end },
  { name = "a string set holding a number", code = "ValidationError",
    msg = "v[1]: string set element is not a string",
    run = function(c) return c.store:with_item({ pk = "bad" }, returns(ddb.string_set{ 1 })) end },

  -- size
  { name = "an item over 400 KB", code = "ItemTooLarge", msg = "DynamoDB's limit is 409600",
    run = function(c)
      return c.store:with_item({ pk = "bad" }, returns(("x"):rep(400 * 1024)))
    end },
  { name = "an item over 400 KB counted in its attribute names", code = "ItemTooLarge",
    msg = "DynamoDB's limit is 409600",
    run = function(c)
      return c.store:with_item({ pk = "bad" }, function(it)
        for i = 1, 2100 do it[("name%04d"):format(i) .. ("n"):rep(190)] = true end
        return it
      end)
    end },

  -- the low-level client refuses what it cannot encode before sending
  { name = "a low-level request with invalid UTF-8", code = "ValidationError",
    msg = "request cannot be encoded: string is not valid UTF-8",
    run = function(c)
      return c.client:put_item{ TableName = c.tbl, Item = { pk = { S = "bad" }, v = { S = "\255" } } }
    end },
  { name = "a low-level request holding a function", code = "ValidationError",
    msg = "request cannot be encoded: a function cannot be sent as JSON",
    run = function(c)
      return c.client:put_item{ TableName = c.tbl, Item = { pk = { S = "bad" }, v = { S = print } } }
    end },

  -- what the server refuses: an unknown table, rejected credentials
  { name = "an unknown table (key schema from DescribeTable)", code = "ResourceNotFoundException",
    msg = "not found",
    run = function(c)
      local s = assert(optimistic.new{ table = c.tbl .. "_missing", client = c.client })
      return s:with_item({ pk = "bad" }, incr)
    end },
  { name = "an unknown table (key given)", code = "ResourceNotFoundException", msg = "not found",
    run = function(c)
      local s = assert(optimistic.new{ table = c.tbl .. "_missing", client = c.client,
        key = { "pk" } })
      return s:with_item({ pk = "bad" }, incr)
    end },
  { name = "a wrong secret key", code = "InvalidSignatureException",
    msg = "The request signature we calculated does not match",
    run = function(c)
      local s = assert(optimistic.new{ table = c.tbl, key = { "pk" },
        client = helper.client(c.server, { credentials = { access_key_id = helper.access_key(),
          secret_access_key = "not-the-secret" } }) })
      return s:with_item({ pk = "bad" }, incr)
    end },
  { name = "an unknown access key", code = "UnrecognizedClientException",
    msg = "security token included in the request is invalid",
    run = function(c)
      local s = assert(optimistic.new{ table = c.tbl, key = { "pk" },
        client = helper.client(c.server, { credentials = { access_key_id = "AKIDNOBODY",
          secret_access_key = helper.secret_key() } }) })
      return s:with_item({ pk = "bad" }, incr)
    end },

  -- configuration that cannot work: nil, err before any request
  { name = "an endpoint that is not http(s)", code = "ConfigError",
    msg = "endpoint must start with http:// or https://",
    run = function(c) return optimistic.new{ table = c.tbl, region = helper.region(),
      endpoint = "ftp://127.0.0.1:1/", credentials = helper.credentials() } end },
  { name = "an endpoint with a path", code = "ConfigError", msg = "with no path",
    run = function(c) return optimistic.new{ table = c.tbl, region = helper.region(),
      endpoint = c.server.url:gsub("/?$", "/v1"), credentials = helper.credentials() } end },
  { name = "an endpoint port out of range", code = "ConfigError", msg = "port out of range",
    run = function(c) return optimistic.new{ table = c.tbl, region = helper.region(),
      endpoint = "http://127.0.0.1:70000", credentials = helper.credentials() } end },
  { name = "an endpoint host with a space", code = "ConfigError", msg = "endpoint has a bad host",
    run = function(c) return optimistic.new{ table = c.tbl, region = helper.region(),
      endpoint = "http://local host:8000", credentials = helper.credentials() } end },
  { name = "no region anywhere", code = "ConfigError", msg = "no region",
    run = function(c)
      return helper.with_env({ AWS_REGION = "", AWS_DEFAULT_REGION = "", AWS_PROFILE = "",
        AWS_CONFIG_FILE = "/nonexistent/config", AWS_SHARED_CREDENTIALS_FILE = "/nonexistent/c" },
        function() return optimistic.new{ table = c.tbl, endpoint = c.server.url,
          credentials = helper.credentials() } end)
    end },
  { name = "a region that is not a name", code = "ConfigError",
    msg = "region must be a name such as 'us-east-1'",
    run = function(c) return optimistic.new{ table = c.tbl, region = "us east 1",
      endpoint = c.server.url, credentials = helper.credentials() } end },
  { name = "credentials without a secret", code = "CredentialsError",
    msg = "needs access_key_id and secret_access_key",
    run = function(c) return optimistic.new{ table = c.tbl, region = helper.region(),
      endpoint = c.server.url, credentials = { access_key_id = "AKID" } } end },
  { name = "AWS_MAX_ATTEMPTS that is not a number", code = "ConfigError",
    msg = "AWS_MAX_ATTEMPTS must be a whole number",
    run = function(c)
      return helper.with_env({ AWS_MAX_ATTEMPTS = "many" }, function()
        return optimistic.new{ table = c.tbl, region = helper.region(), endpoint = c.server.url,
          credentials = helper.credentials() }
      end)
    end },

  -- option types: programmer mistakes raise, naming the option
  { name = "timeout_ms that is a string", raises = true,
    msg = "option 'timeout_ms' must be a number",
    run = function(c) return ddb.new{ region = helper.region(), endpoint = c.server.url,
      credentials = helper.credentials(), timeout_ms = "fast" } end },
  { name = "max_attempts of 0", raises = true, msg = "option 'max_attempts' must be between",
    run = function(c) return ddb.new{ region = helper.region(), endpoint = c.server.url,
      credentials = helper.credentials(), max_attempts = 0 } end },
  { name = "retry that is not a table", raises = true, msg = "option 'retry' must be a table",
    run = function(c) return ddb.new{ region = helper.region(), endpoint = c.server.url,
      credentials = helper.credentials(), retry = 3 } end },
  { name = "a retry base that is negative", raises = true,
    msg = "retry option 'base_ms' must be between",
    run = function(c) return ddb.new{ region = helper.region(), endpoint = c.server.url,
      credentials = helper.credentials(), retry = { base_ms = -1 } } end },
  { name = "a transport that is a number", raises = true, msg = "option 'transport' must be",
    run = function(c) return ddb.new{ region = helper.region(), endpoint = c.server.url,
      credentials = helper.credentials(), transport = 5 } end },
  { name = "on_event that is a string", raises = true, msg = "option 'on_event' must be a function",
    run = function(c) return ddb.new{ region = helper.region(), endpoint = c.server.url,
      credentials = helper.credentials(), on_event = "log" } end },
  { name = "a table name that is a number", raises = true, msg = "option 'table' must be",
    run = function(c) return optimistic.new{ table = 5, client = c.client } end },
  { name = "a negative tokens count", raises = true, msg = "option 'tokens' must be",
    run = function(c) return optimistic.new{ table = c.tbl, client = c.client, tokens = -1 } end },
  { name = "a mode that does not exist", raises = true, msg = "option 'mode' must be",
    run = function(c) return optimistic.new{ table = c.tbl, client = c.client, mode = "merge" } end },
  { name = "a key of three attributes", raises = true, msg = "option 'key' must be",
    run = function(c)
      return optimistic.new{ table = c.tbl, client = c.client, key = { "a", "b", "c" } }
    end },
  { name = "a with_item key that is a string", raises = true,
    msg = "bad argument #1 to 'with_item'",
    run = function(c) return c.store:with_item("bad", incr) end },
  { name = "with_item options that are a number", raises = true,
    msg = "bad argument #3 to 'with_item'",
    run = function(c) return c.store:with_item({ pk = "bad" }, incr, 5) end },
}

-- Names that expressions cannot carry as they are; the module escapes every one.
local AWKWARD_NAMES = { "name", "status", "size", "count", "data", "a.b", "#x", ":y", "a b",
  "x-y", "[0]", "ünïcode", "SET", "attribute_exists(pk)" }

for _, server in ipairs(helper.servers()) do
  describe("bad input on " .. server.name, function()
    local ctx = { server = server }
    local raw_before

    local function raw(tbl, key)
      local res = assert(ctx.client:get_item{ TableName = tbl, Key = ddb.marshal_item(key),
        ConsistentRead = true })
      return res.Item
    end

    local function count(tbl)
      return assert(ctx.client:scan{ TableName = tbl, Select = "COUNT", ConsistentRead = true }).Count
    end

    setup(function()
      helper.reset(server)
      ctx.client = helper.client(server)
      ctx.tbl = helper.table_name("bad")
      ctx.tbl2 = helper.table_name("bad2")
      helper.create_table(ctx.client, ctx.tbl)
      helper.create_table(ctx.client, ctx.tbl2, "pk", "sk")
      ctx.store = assert(optimistic.new{ table = ctx.tbl, client = ctx.client })
      ctx.store2 = assert(optimistic.new{ table = ctx.tbl2, client = ctx.client })
      assert(ctx.store:with_item({ pk = "bad" }, function() return { n = 1, keep = "me" } end))
      -- the key schemas are cached now: each case's requests are its own
      assert(ctx.store:key_schema())
      assert(ctx.store2:key_schema())
      raw_before = raw(ctx.tbl, { pk = "bad" })
    end)

    teardown(function()
      helper.reset(server)
      ctx.client:delete_table{ TableName = ctx.tbl }
      ctx.client:delete_table{ TableName = ctx.tbl2 }
    end)

    before_each(function() helper.reset(server) end)

    for _, case in ipairs(CASES) do
      it("refuses " .. case.name .. (case.raises and " by raising" or (" with " .. case.code)) ..
        " and writes nothing", function()
        if case.raises then
          local ok, msg = pcall(case.run, ctx)
          assert.is_false(ok, "did not raise")
          assert.truthy(tostring(msg):find(case.msg, 1, true), tostring(msg))
        else
          local res, err = case.run(ctx)
          assert.is_nil(res, "succeeded")
          assert.is_table(err)
          assert.equal(case.code, err.code, tostring(err))
          local found = false
          for _, fragment in ipairs(type(case.msg) == "table" and case.msg or { case.msg }) do
            found = found or tostring(err.message):find(fragment, 1, true) ~= nil
          end
          assert.is_true(found, tostring(err))
          assert.equal("no", err.applied, tostring(err))
          -- tostring gives one readable line with the code
          assert.truthy(tostring(err):find(case.code, 1, true))
        end
        local st = helper.stats(server)
        if not case.server_refuses then
          for _, op in ipairs(WRITES) do
            assert.equal(0, helper.requests(st, op), op .. " was sent")
          end
        end
        assert.same(raw_before, raw(ctx.tbl, { pk = "bad" }))
        assert.equal(1, count(ctx.tbl))
        assert.equal(0, count(ctx.tbl2))
      end)
    end

    it("has at least 30 cases", function()
      assert.is_true(#CASES >= 30, #CASES .. " cases")
    end)

    describe("attribute names needing escapes", function()
      for _, mode in ipairs{ "update", "put" } do
        it("round-trip reserved words, dots, '#' and ':' in " .. mode .. " mode", function()
          local store = assert(optimistic.new{ table = ctx.tbl, client = ctx.client, mode = mode })
          local pk = "names-" .. mode
          assert(store:with_item({ pk = pk }, function()
            local it = {}
            for i, name in ipairs(AWKWARD_NAMES) do it[name] = i end
            return it
          end))
          -- change every one, remove one: SET and REMOVE both carry the names
          local item = assert(store:with_item({ pk = pk }, function(it)
            for _, name in ipairs(AWKWARD_NAMES) do it[name] = it[name] * 10 end
            it["a.b"] = nil
            return it
          end))
          local stored = ddb.unmarshal_item(raw(ctx.tbl, { pk = pk }))
          for i, name in ipairs(AWKWARD_NAMES) do
            local want = name ~= "a.b" and i * 10 or nil
            assert.equal(want, item[name], name)
            assert.equal(want, stored[name], name)
          end
          assert.equal(2, stored.version)
          -- no attribute named after a path piece appeared
          assert.is_nil(stored.a)
          assert.is_nil(stored.b)
        end)
      end

      it("round-trip a version attribute and key named after reserved words", function()
        local tbl = helper.table_name("names")
        helper.create_table(ctx.client, tbl, "name")
        local store = assert(optimistic.new{ table = tbl, client = ctx.client,
          version_attribute = "size" })
        for _ = 1, 2 do
          assert(store:with_item({ name = "k.1#:" }, function(it)
            it = it or {}
            it.status = (it.status or 0) + 1
            return it
          end))
        end
        local stored = ddb.unmarshal_item(raw(tbl, { name = "k.1#:" }))
        assert.equal(2, stored.status)
        assert.equal(2, stored.size)
        ctx.client:delete_table{ TableName = tbl }
      end)
    end)
  end)
end
