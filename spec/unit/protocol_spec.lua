-- Reading DynamoDB's answers: core.parse_response turns a status, body and headers into a
-- result or a structured error that says whether to retry and whether the write may have run.
local core = require "ddb.core"

local parse = core.parse_response

local REQUEST_ID = "LDM6CJP8RMQ1FHKSC1RBVJFPNVV4KQNSO5AEMF66Q9ASUAAJG"
local DDB = "com.amazonaws.dynamodb.v20120810#"

-- Response headers as the transports give them: names lowercased.
local function headers(extra)
  local h = { ["x-amzn-requestid"] = REQUEST_ID, ["content-type"] = "application/x-amz-json-1.0" }
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

local function with_crc(body, extra)
  local h = headers(extra)
  h["x-amz-crc32"] = tostring(core.crc32(body))
  return h
end

-- parse_response must fail here: returns the error after checking the nil in front of it.
local function parse_error(status, body, h)
  local result, err = parse(status, body, h or headers())
  assert.is_nil(result)
  assert.is_table(err)
  return err
end

-- Only the fields every error carries, for assert.same.
local function summary(err)
  return { code = err.code, message = err.message, status = err.status, applied = err.applied,
    retryable = err.retryable, retry_class = err.retry_class, request_id = err.request_id }
end

describe("successful answers", function()
  it("decode to the result table", function()
    local body = '{"Item":{"pk":{"S":"a"},"n":{"N":"1"}},"ConsumedCapacity":{"CapacityUnits":0.5}}'
    local result = parse(200, body, with_crc(body))
    assert.same({ Item = { pk = { S = "a" }, n = { N = "1" } },
      ConsumedCapacity = { CapacityUnits = 0.5 } }, result)
  end)

  it("accept an empty object (GetItem of a missing item) and need no headers", function()
    assert.same({}, parse(200, "{}"))
    assert.same({}, parse(200, "{}", nil))
  end)
end)

describe("the capacity an answer consumed (client.capacity_units)", function()
  local units = require("ddb.client").capacity_units

  it("reads one table, a list of them (transactions, batches) and nothing else", function()
    assert.equal(0.5, units({ TableName = "t", CapacityUnits = 0.5 }))
    assert.equal(3, units({ { CapacityUnits = 1 }, { TableName = "u" }, { CapacityUnits = 2 } }))
    assert.is_nil(units({ CapacityUnits = "1" }))
    assert.is_nil(units({ { CapacityUnits = "1" }, 7 }))
    assert.is_nil(units({}))
    assert.is_nil(units(nil))
    assert.is_nil(units("1"))
  end)
end)

describe("DynamoDB error bodies", function()
  -- Shapes as DynamoDB sends them (API reference, "Error handling" and "Common errors"):
  -- __type with a namespace, "message" or "Message", extra members for some errors.
  local cases = {
    {
      name = "ResourceNotFoundException (the API reference's example)",
      status = 400,
      body = '{"__type":"' .. DDB .. 'ResourceNotFoundException",' ..
        '"message":"Requested resource not found: Table: tablename not found"}',
      want = { code = "ResourceNotFoundException",
        message = "Requested resource not found: Table: tablename not found",
        retry_class = "none", retryable = false },
    },
    {
      name = "ProvisionedThroughputExceededException",
      status = 400,
      body = '{"__type":"' .. DDB .. 'ProvisionedThroughputExceededException","message":' ..
        '"The level of configured provisioned throughput for the table was exceeded. ' ..
        'Consider increasing your provisioning level with the UpdateTable API."}',
      want = { code = "ProvisionedThroughputExceededException",
        message = "The level of configured provisioned throughput for the table was exceeded. " ..
          "Consider increasing your provisioning level with the UpdateTable API.",
        retry_class = "throttle", retryable = true },
    },
    {
      name = "ThrottlingException from the coral availability namespace",
      status = 400,
      body = '{"__type":"com.amazon.coral.availability#ThrottlingException",' ..
        '"message":"Rate of requests exceeds the allowed throughput."}',
      want = { code = "ThrottlingException", message = "Rate of requests exceeds the allowed throughput.",
        retry_class = "throttle", retryable = true },
    },
    {
      name = "RequestLimitExceeded",
      status = 400,
      body = '{"__type":"' .. DDB .. 'RequestLimitExceeded","message":"Throughput exceeds the ' ..
        'current throughput limit for your account. Please contact AWS Support at ' ..
        'https://aws.amazon.com/support request a limit increase"}',
      want = { code = "RequestLimitExceeded", retry_class = "throttle", retryable = true },
    },
    {
      name = "TransactionConflictException",
      status = 400,
      body = '{"__type":"' .. DDB .. 'TransactionConflictException",' ..
        '"message":"Transaction is ongoing for the item"}',
      want = { code = "TransactionConflictException", message = "Transaction is ongoing for the item",
        retry_class = "transient", retryable = true },
    },
    {
      name = "ValidationException from the coral validate namespace",
      status = 400,
      body = '{"__type":"com.amazon.coral.validate#ValidationException","message":' ..
        '"One or more parameter values were invalid: Missing the key pk in the item"}',
      want = { code = "ValidationException",
        message = "One or more parameter values were invalid: Missing the key pk in the item",
        retry_class = "none", retryable = false },
    },
    {
      name = "UnrecognizedClientException from the coral service namespace",
      status = 400,
      body = '{"__type":"com.amazon.coral.service#UnrecognizedClientException",' ..
        '"message":"The security token included in the request is invalid."}',
      want = { code = "UnrecognizedClientException", retry_class = "none", retryable = false },
    },
    {
      name = "InvalidSignatureException, whose text is under \"Message\"",
      status = 400,
      body = '{"__type":"com.amazon.coral.service#InvalidSignatureException","Message":' ..
        '"Signature expired: 20150830T123600Z is now earlier than 20150830T124100Z ' ..
        '(20150830T124600Z - 5 min.)"}',
      want = { code = "InvalidSignatureException",
        message = "Signature expired: 20150830T123600Z is now earlier than 20150830T124100Z " ..
          "(20150830T124600Z - 5 min.)",
        retry_class = "none", retryable = false },
    },
    {
      name = "SerializationException with \"Message\"",
      status = 400,
      body = '{"__type":"com.amazon.coral.service#SerializationException",' ..
        '"Message":"Start of structure or map found where not expected."}',
      want = { code = "SerializationException",
        message = "Start of structure or map found where not expected." },
    },
    {
      name = "an error type without a namespace (local servers, proxies)",
      status = 400,
      body = '{"__type":"ConditionalCheckFailedException","message":"The conditional request failed"}',
      want = { code = "ConditionalCheckFailedException", message = "The conditional request failed",
        retry_class = "none", retryable = false },
    },
    {
      name = "InternalServerError",
      status = 500,
      body = '{"__type":"' .. DDB .. 'InternalServerError","message":"Internal server error"}',
      want = { code = "InternalServerError", message = "Internal server error",
        retry_class = "transient", retryable = true },
    },
    {
      name = "an unknown error type on a 5xx",
      status = 503,
      body = '{"__type":"com.amazon.coral.availability#ServiceUnavailableException"}',
      want = { code = "ServiceUnavailableException", message = "ServiceUnavailableException",
        retry_class = "transient", retryable = true },
    },
  }

  for _, c in ipairs(cases) do
    it("decodes " .. c.name, function()
      local err = parse_error(c.status, c.body, with_crc(c.body))
      for k, v in pairs(c.want) do
        assert.equal(v, err[k], k)
      end
      assert.equal(c.status, err.status)
      assert.equal(REQUEST_ID, err.request_id)
      assert.equal(c.status >= 500 and "maybe" or "no", err.applied)
    end)
  end

  it("prefers \"message\" to \"Message\" when both are present", function()
    local err = parse_error(400, '{"__type":"X","message":"lower","Message":"upper"}')
    assert.equal("lower", err.message)
  end)

  it("uses the code as the message when the body has none", function()
    local err = parse_error(400, '{"__type":"' .. DDB .. 'LimitExceededException"}')
    assert.equal("LimitExceededException", err.message)
  end)

  it("names a 4xx without __type UnknownError and a 5xx without it InternalServerError", function()
    assert.equal("UnknownError", parse_error(400, '{"message":"who knows"}').code)
    assert.equal("who knows", parse_error(400, '{"message":"who knows"}').message)
    local err = parse_error(500, "{}")
    assert.same({ code = "InternalServerError", message = "InternalServerError", status = 500,
      applied = "maybe", retryable = true, retry_class = "transient", request_id = REQUEST_ID },
      summary(err))
  end)

  it("takes the request id from x-amz-request-id when x-amzn-requestid is absent", function()
    local err = parse_error(400, '{"__type":"X"}', { ["x-amz-request-id"] = "abc-123" })
    assert.equal("abc-123", err.request_id)
    assert.is_nil(parse_error(400, '{"__type":"X"}', {}).request_id)
  end)
end)

describe("errors that carry the item", function()
  it("ConditionalCheckFailedException keeps the item sent for ReturnValuesOnConditionCheckFailure", function()
    local body = '{"__type":"' .. DDB .. 'ConditionalCheckFailedException",' ..
      '"message":"The conditional request failed",' ..
      '"Item":{"pk":{"S":"user#1"},"version":{"N":"7"},"tags":{"SS":["a","b"]}}}'
    local err = parse_error(400, body, with_crc(body))
    assert.same({ code = "ConditionalCheckFailedException", message = "The conditional request failed",
      status = 400, applied = "no", retryable = false, retry_class = "none",
      request_id = REQUEST_ID }, summary(err))
    assert.same({ pk = { S = "user#1" }, version = { N = "7" }, tags = { SS = { "a", "b" } } }, err.item)
  end)

  it("TransactionCanceledException keeps every cancellation reason, in order, with its item", function()
    local body = '{"__type":"' .. DDB .. 'TransactionCanceledException",' ..
      '"Message":"Transaction cancelled, please refer cancellation reasons for specific reasons ' ..
      '[None, ConditionalCheckFailed, TransactionConflict]",' ..
      '"CancellationReasons":[{"Code":"None"},' ..
      '{"Code":"ConditionalCheckFailed","Item":{"pk":{"S":"k2"},"version":{"N":"3"}},' ..
      '"Message":"The conditional request failed"},' ..
      '{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}]}'
    local err = parse_error(400, body, with_crc(body))
    assert.equal("TransactionCanceledException", err.code)
    assert.equal("Transaction cancelled, please refer cancellation reasons for specific reasons " ..
      "[None, ConditionalCheckFailed, TransactionConflict]", err.message)
    assert.equal("no", err.applied)
    assert.equal("none", err.retry_class)
    assert.is_false(err.retryable)
    assert.same({
      { Code = "None" },
      { Code = "ConditionalCheckFailed", Item = { pk = { S = "k2" }, version = { N = "3" } },
        Message = "The conditional request failed" },
      { Code = "TransactionConflict", Message = "Transaction is ongoing for the item" },
    }, err.cancellation_reasons)
    assert.is_nil(err.item)
  end)

  it("leaves item and cancellation_reasons out when the body has none", function()
    local err = parse_error(400, '{"__type":"' .. DDB .. 'ConditionalCheckFailedException"}')
    assert.is_nil(err.item)
    assert.is_nil(err.cancellation_reasons)
  end)
end)

describe("error bodies that are not JSON", function()
  it("give HTTP<status> for a 4xx, not retried, not applied", function()
    local err = parse_error(413, "<html><body>Request Entity Too Large</body></html>")
    assert.same({ code = "HTTP413", message = "DynamoDB answered with an error and an unreadable body",
      status = 413, applied = "no", retryable = false, retry_class = "none",
      request_id = REQUEST_ID }, summary(err))
  end)

  it("give InternalServerError for a 5xx, retried, maybe applied", function()
    for _, status in ipairs({ 500, 502, 503, 504 }) do
      local err = parse_error(status, "<html>" .. status .. " Bad Gateway</html>")
      assert.same({ code = "InternalServerError",
        message = "DynamoDB answered with an error and an unreadable body", status = status,
        applied = "maybe", retryable = true, retry_class = "transient",
        request_id = REQUEST_ID }, summary(err))
    end
  end)

  it("treat empty bodies, JSON that is not an object and cut-off JSON alike", function()
    for _, body in ipairs({ "", '"oops"', "42", '{"__type":"com.amazon', "\255\254" }) do
      assert.equal("HTTP400", parse_error(400, body).code)
      assert.equal("InternalServerError", parse_error(503, body).code)
    end
  end)
end)

describe("answers that are not DynamoDB's (no request id, no DynamoDB JSON)", function()
  local NONE = { ["content-type"] = "text/html" }

  it("are NotDynamoDB, not applied and not retried for a 4xx or a 501", function()
    for _, status in ipairs({ 400, 403, 404, 405, 413, 501 }) do
      local err = parse_error(status, "<html>" .. status .. "</html>", NONE)
      assert.same({ code = "NotDynamoDB", message = "the endpoint answered HTTP " .. status ..
        " with a body that is not JSON and no x-amzn-requestid: is it a DynamoDB endpoint?",
        status = status, applied = "no", retryable = false, retry_class = "none" },
        summary(err))
      assert.equal("a body that is not JSON", err.reason)
    end
  end)

  it("are retried, maybe applied, for a gateway's 5xx (it may have passed the request on)",
    function()
      for _, status in ipairs({ 500, 502, 503, 504 }) do
        local err = parse_error(status, "<html>Bad Gateway</html>", NONE)
        assert.equal("NotDynamoDB", err.code)
        assert.equal("maybe", err.applied)
        assert.equal("transient", err.retry_class)
      end
      assert.equal("throttle", parse_error(429, "", NONE).retry_class)
      assert.equal("an empty body", parse_error(429, "", NONE).reason)
    end)

  it("are NotDynamoDB for a 2xx page, maybe applied, not retried", function()
    local err = parse_error(200, "<!doctype html><html>Welcome</html>", NONE)
    assert.same({ code = "NotDynamoDB", message = "the endpoint answered HTTP 200 with a body " ..
      "that is not a JSON object and no x-amzn-requestid: is it a DynamoDB endpoint?",
      status = 200, applied = "maybe", retryable = false, retry_class = "none" }, summary(err))
  end)

  it("include JSON errors without __type", function()
    local err = parse_error(404, '{"error":"not found"}', {})
    assert.equal("NotDynamoDB", err.code)
    assert.equal("a JSON body without DynamoDB's __type", err.reason)
    assert.equal("no", err.applied)
  end)

  it("do not include DynamoDB's own errors without a request id (a transport that drops " ..
    "headers)", function()
    local err = parse_error(400, '{"__type":"' .. DDB .. 'ValidationException","message":"x"}',
      {})
    assert.equal("ValidationException", err.code)
  end)
end)

describe("where an error leaves the request", function()
  it("is 'no' for every 4xx and 'maybe' for every 5xx", function()
    for status = 400, 599, 3 do
      local err = parse_error(status, '{"__type":"' .. DDB .. 'SomeError"}')
      assert.equal(status >= 500 and "maybe" or "no", err.applied, "status " .. status)
    end
  end)
end)

describe("retry classes", function()
  local function class_of(type_name)
    local err = parse_error(400, '{"__type":"' .. type_name .. '"}')
    return err.retry_class, err.retryable
  end

  it("are 'throttle' for the throttling codes", function()
    for _, code in ipairs({ "ProvisionedThroughputExceededException", "ThrottlingException",
      "RequestLimitExceeded", "Throttling", "ThrottledException", "RequestThrottledException",
      "TooManyRequestsException", "SlowDown", "BandwidthLimitExceeded", "RequestThrottled" }) do
      local cls, retryable = class_of(DDB .. code)
      assert.equal("throttle", cls, code)
      assert.is_true(retryable)
    end
  end)

  it("are 'transient' for conflicts, timeouts and server-side failures", function()
    for _, code in ipairs({ "TransactionConflictException", "TransactionInProgressException",
      "InternalServerError", "InternalFailure", "ServiceUnavailable", "RequestTimeout",
      "RequestTimeoutException", "PriorRequestNotComplete" }) do
      local cls, retryable = class_of(DDB .. code)
      assert.equal("transient", cls, code)
      assert.is_true(retryable)
    end
  end)

  it("are 'none' for client mistakes and for outcomes a retry cannot change", function()
    for _, code in ipairs({ "ValidationException", "ConditionalCheckFailedException",
      "TransactionCanceledException", "ResourceNotFoundException", "AccessDeniedException",
      "UnrecognizedClientException", "ItemCollectionSizeLimitExceededException",
      "IdempotentParameterMismatchException" }) do
      local cls, retryable = class_of(DDB .. code)
      assert.equal("none", cls, code)
      assert.is_false(retryable)
    end
  end)

  it("match the whole code, not a part of it", function()
    assert.equal("none", (class_of(DDB .. "ThrottlingExceptionX")))
    assert.equal("none", (class_of(DDB .. "NotThrottlingException")))
  end)
end)

describe("CRC32 verification", function()
  local body = '{"Item":{"name":{"S":"héllo"}}}'

  it("computes zlib's CRC-32 (values from Python's zlib.crc32)", function()
    assert.equal(0, core.crc32(""))
    assert.equal(3904355907, core.crc32("a"))
    assert.equal(3421780262, core.crc32("123456789"))   -- the CRC-32 check value, 0xCBF43926
    assert.equal(2745614147, core.crc32("{}"))
    assert.equal(1095738169, core.crc32("The quick brown fox jumps over the lazy dog"))
    assert.equal(1314610559, core.crc32(body))
  end)

  it("continues a CRC over more bytes, as zlib.crc32(data, value) does", function()
    assert.equal(3421780262, core.crc32("6789", core.crc32("12345")))
    assert.equal(core.crc32(body), core.crc32(body:sub(12), core.crc32(body:sub(1, 11))))
    assert.has_error(function() core.crc32("x", -1) end)
    assert.has_error(function() core.crc32("x", 2 ^ 32) end)
  end)

  it("gives the bytewise CRC-32 for every length and alignment (8 bytes per step inside)", function()
    -- one byte at a time takes the bytewise loop (checked against zlib above)
    local function reference(s)
      local c = 0
      for i = 1, #s do c = core.crc32(s:sub(i, i), c) end
      return c
    end
    local bytes = {}
    for i = 1, 200 do bytes[i] = string.char((i * 97 + 13) % 256) end
    local text = table.concat(bytes)
    for len = 0, 70 do
      for start = 1, 9 do
        local s = text:sub(start, start + len - 1)
        assert.equal(reference(s), core.crc32(s))
      end
    end
    assert.equal(reference(text), core.crc32(text:sub(101), core.crc32(text:sub(1, 100))))
  end)

  it("accepts a body whose x-amz-crc32 matches", function()
    assert.same({ Item = { name = { S = "héllo" } } },
      parse(200, body, headers{ ["x-amz-crc32"] = "1314610559" }))
    assert.same({}, parse(200, "{}", headers{ ["x-amz-crc32"] = "2745614147" }))
  end)

  it("refuses a body whose x-amz-crc32 does not match: damaged in transit, maybe applied", function()
    local damaged = body:gsub("héllo", "hullo")
    local err = parse_error(200, damaged, headers{ ["x-amz-crc32"] = "1314610559" })
    assert.same({ code = "CRC32Mismatch", message = "response body does not match its x-amz-crc32 checksum",
      status = 200, applied = "maybe", retryable = true, retry_class = "transient",
      request_id = REQUEST_ID }, summary(err))
  end)

  it("checks error bodies too, before reading them", function()
    local e = '{"__type":"' .. DDB .. 'ConditionalCheckFailedException"}'
    local wrong = (core.crc32(e) + 1) % 4294967296
    local err = parse_error(400, e, headers{ ["x-amz-crc32"] = ("%d"):format(wrong) })
    assert.equal("CRC32Mismatch", err.code)
    assert.equal("maybe", err.applied)
  end)

  it("refuses checksums that are not a decimal number", function()
    for _, bad in ipairs({ "", "abc", "1314610559x", "0x4E5B2B7F", "-1" }) do
      assert.equal("CRC32Mismatch", parse_error(200, body, headers{ ["x-amz-crc32"] = bad }).code, bad)
    end
  end)

  it("skips the check when the header is absent", function()
    assert.same({ Item = { name = { S = "héllo" } } }, parse(200, body, headers()))
  end)
end)

describe("unreadable successful answers", function()
  it("become InvalidResponse, maybe applied and retryable", function()
    for _, body in ipairs({
      '{"Attributes":{"n":{"N":"1"}',   -- cut off
      "",                                 -- no body at all
      "null", "42", '"text"',             -- JSON, but not an object
      "[]", '[{"Item":{}}]',              -- an array would pass for an empty result
      "<html>OK</html>",
      '{"a":"\255"}',                     -- not UTF-8
      '{"a":1} trailing',
    }) do
      local err = parse_error(200, body)
      assert.same({ code = "InvalidResponse", message = "DynamoDB answered with a body that is not a " ..
        "JSON object (truncated or damaged)", status = 200, applied = "maybe", retryable = true,
        retry_class = "transient", request_id = REQUEST_ID }, summary(err), body)
    end
  end)

  -- The item kept as nodes ("*Item") is made into values later or never: what the decoder
  -- refuses when it makes them must be refused as the answer is read, on every path alike.
  it("refuse a number beyond a double in the item, whether the item is kept as nodes or not", function()
    local body = '{"Item":{"s":{"S":"x"},"bs":{"BS":[1e999]}}}'
    for _, plain in ipairs({ false, "Item", "+Item", "*Item" }) do
      local result, err = parse(200, body, headers(), plain or nil)
      assert.is_nil(result, tostring(plain))
      assert.equal("InvalidResponse", err.code, tostring(plain))
    end
  end)
end)

describe("core.error", function()
  it("builds the same error shape, classifying the code when no class is given", function()
    assert.same({ code = "ThrottlingException", message = "slow down", status = 400, applied = "no",
      retryable = true, retry_class = "throttle" }, core.error("ThrottlingException", "slow down", 400))
    assert.same({ code = "Timeout", message = "Timeout", applied = "maybe", retryable = true,
      retry_class = "timeout" }, core.error("Timeout", nil, nil, "maybe", "timeout"))
  end)
end)

describe("HTTP 429 without a readable body", function()
  it("is throttling, retried with the throttling backoff", function()
    local _, err = core.parse_response(429, "<html>slow down</html>", {})
    assert.equal("throttle", err.retry_class)
    assert.is_true(err.retryable)
  end)
end)

describe("an item returned as plain values (parse_response's plain member)", function()
  local ITEM = '{"s":{"S":"héllo"},"i":{"N":"42"},"f":{"N":"-1.5"},' ..
    '"big":{"N":"12345678901234567890123456789012345678"},"b":{"B":"AAEC/w=="},' ..
    '"t":{"BOOL":true},"no":{"BOOL":false},"z":{"NULL":true},' ..
    '"l":{"L":[{"S":"a"},{"M":{"k":{"N":"1"}}},{"L":[]}]},"m":{"M":{"x":{"SS":["p","q"]}}},' ..
    '"ss":{"SS":["a","b"]},"ns":{"NS":["1","2.5"]},"bs":{"BS":["AQ=="]},"e":{"M":{}}}'

  it("gives what unmarshal_item gives for the AttributeValues, every type", function()
    local body = '{"Attributes":' .. ITEM .. ',"ConsumedCapacity":{"CapacityUnits":1}}'
    local plain = assert(parse(200, body, with_crc(body), "Attributes"))
    local generic = assert(parse(200, body, with_crc(body)))
    assert.same(core.unmarshal_item(generic.Attributes), plain.Attributes)
    assert.same(generic.ConsumedCapacity, plain.ConsumedCapacity)
    local a = plain.Attributes
    assert.equal(core.mt.number, getmetatable(a.big))
    assert.equal("12345678901234567890123456789012345678", a.big.value)
    assert.equal(core.mt.binary, getmetatable(a.b))
    assert.equal("\0\1\2\255", a.b.value)
    assert.equal(core.null, a.z)
    assert.equal(core.mt.string_set, getmetatable(a.ss))
    assert.equal(core.mt.number_set, getmetatable(a.ns))
    assert.equal(core.mt.binary_set, getmetatable(a.bs))
    assert.equal(core.mt.list, getmetatable(a.l))
    assert.equal(core.mt.list, getmetatable(a.l[3]))
    assert.same({}, a.e)
  end)

  it("leaves the other members and answers without the member as they were", function()
    local body = '{"Item":' .. ITEM .. '}'
    local r = assert(parse(200, body, with_crc(body), "Attributes"))
    assert.same({ S = "héllo" }, r.Item.s)
    -- any top-level member can be asked for: GetItem's Item
    r = assert(parse(200, body, with_crc(body), "Item"))
    assert.equal("héllo", r.Item.s)
    assert.equal(42, r.Item.i)
  end)

  it("with \"+Item\" gives the AttributeValues and, under plain, the plain values of one read",
     function()
    local body = '{"Item":' .. ITEM .. ',"ConsumedCapacity":{"CapacityUnits":1}}'
    local both = assert(parse(200, body, with_crc(body), "+Item"))
    local generic = assert(parse(200, body, with_crc(body)))
    assert.same(generic.Item, both.Item)
    assert.same(core.unmarshal_item(generic.Item), both.plain)
    assert.same(generic.ConsumedCapacity, both.ConsumedCapacity)
    -- two tables: changing the plain copy leaves the AttributeValues as read
    both.plain.s = "changed"
    assert.equal("héllo", both.Item.s.S)
    -- no Item (GetItem of an absent key): neither
    local none = assert(parse(200, "{}", with_crc("{}"), "+Item"))
    assert.is_nil(none.Item)
    assert.is_nil(none.plain)
  end)

  it("with \"+Item\" leaves plain out of a malformed item, whose reader then says why",
     function()
    local body = '{"Item":{"a":{"N":"x"}}}'
    local r = assert(parse(200, body, with_crc(body), "+Item"))
    assert.same({ a = { N = "x" } }, r.Item)
    assert.is_nil(r.plain)
    assert.has_error(function() core.unmarshal_item(r.Item) end)
  end)

  it("turns a malformed item into an InvalidResponse that may have been applied", function()
    for _, bad in ipairs({ '{"a":{"N":"x"}}', '{"a":{"Q":"1"}}', '{"a":{"S":1}}', '{"a":{}}',
      '{"a":{"SS":[1]}}', '{"a":{"B":"!!"}}', '{"a":{"L":{}}}', '[]' }) do
      local body = '{"Attributes":' .. bad .. '}'
      local r, err = parse(200, body, with_crc(body), "Attributes")
      assert.is_nil(r, bad)
      assert.equal("InvalidResponse", err.code)
      assert.equal("maybe", err.applied)
    end
  end)
end)
