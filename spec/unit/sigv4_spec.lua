-- SigV4 signing: the official AWS test suite stage by stage, a cross-check against botocore on
-- generated DynamoDB requests, the signing key cache, session tokens and signer:prepare().
local core = require "ddb.core"

-- The repository root, from this file's path, so the specs run from any directory.
local ROOT = (debug.getinfo(1, "S").source:sub(2):gsub("spec/unit/sigv4_spec%.lua$", ""))
if ROOT == "" then ROOT = "./" end

local SUITE_KEY = {
  access_key = "AKIDEXAMPLE",
  secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
}
local STS_TOKEN = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAe" ..
  "MicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburE" ..
  "Dy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZ" ..
  "bqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

-- The POST cases of the AWS SigV4 test suite (copied as data into spec/fixtures/sigv4/).
local SUITE_CASES = {
  "post-vanilla", "post-vanilla-empty-query-value", "post-vanilla-query",
  "post-header-key-case", "post-header-key-sort", "post-header-value-case",
  "post-x-www-form-urlencoded", "post-x-www-form-urlencoded-parameters",
  "post-sts-header-before", "post-sts-header-after",
}

-- Signing keys derived independently (Python hmac) for the suite's secret key.
local KEY_20150830_SERVICE = "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75"
local KEY_20150831_SERVICE = "4f10458981d9757195ff4a3d55278d32d3c789809c4bb9c0785443035e0c10b2"
local KEY_OTHER_SECRET = "7366aa2e4d063bdc91372b7d0a4a921fc29b8a8a6c4ff2f1a063368fd7fca6f6"
-- The worked example of the AWS documentation ("derive a signing key", service iam).
local KEY_DOCS_IAM = "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"

local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local function fixture(name)
  local doc, err = core.decode(read_all(ROOT .. "spec/fixtures/sigv4/" .. name .. ".json"))
  assert(doc, err)
  return doc
end

local function suite_signer(extra)
  local o = {
    access_key = SUITE_KEY.access_key, secret_key = SUITE_KEY.secret_key,
    region = "us-east-1", service = "service", host = "example.amazonaws.com",
  }
  for k, v in pairs(extra or {}) do o[k] = v end
  return core.signer_new(o)
end

local function sign_case(signer, case)
  local r = case.request
  return signer:stages(r.method, r.path, r.query, r.headers, r.body, case.amz_date)
end

-- HMAC-SHA256 of text under a hex key, by the openssl command (an implementation of its
-- own): the signer keeps its signing key in C, so the specs check the key it derived by the
-- signature it made with it.
local function hmac_hex(key_hex, text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  local p = assert(io.popen(("openssl dgst -sha256 -mac HMAC -macopt hexkey:%s '%s'"):format(
    key_hex, path)))
  local out = p:read("*a")
  p:close()
  os.remove(path)
  local hex = out:match("([0-9a-f]+)%s*$")
  assert(hex and #hex == 64, "openssl dgst gave no HMAC: " .. out)
  return hex
end

-- Whether a stages() result was signed with the key key_hex (its HMAC of the string to sign
-- is the signature).
local function signed_with(st, key_hex)
  return hmac_hex(key_hex, st.string_to_sign) == st.signature
end

-- The value of header line name ("Name: value") in a list of lines, or nil.
local function header(lines, name)
  for _, l in ipairs(lines) do
    local n, v = l:match("^([^:]+): (.*)$")
    if n == name then return v end
  end
end

-- Calls fn(...) and checks that it raises an error whose text contains `text`.
local function assert_raises(text, fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error containing: " .. text)
  assert(tostring(err):find(text, 1, true), ("error '%s' does not contain '%s'"):format(tostring(err), text))
end

local VANILLA_HEADERS = {
  { "Host", "example.amazonaws.com" }, { "X-Amz-Date", "20150830T123600Z" },
}

describe("the AWS SigV4 test suite (POST cases)", function()
  for _, name in ipairs(SUITE_CASES) do
    describe(name, function()
      local case = fixture(name)
      local signer = suite_signer()
      local st = sign_case(signer, case)

      it("builds the suite's canonical request", function()
        assert.equal(case.expected.canonical_request, st.canonical_request)
        assert.equal(case.expected.signed_headers, st.signed_headers)
      end)

      it("builds the suite's string to sign", function()
        assert.equal("20150830/us-east-1/service/aws4_request", st.scope)
        assert.equal(case.expected.string_to_sign, st.string_to_sign)
      end)

      it("computes the suite's signature", function()
        assert.equal(case.expected.signature, st.signature)
      end)

      it("writes the suite's Authorization header", function()
        assert.equal(case.expected.authorization, st.authorization)
      end)
    end)
  end

  it("post-sts-header-after: a token added after signing leaves the signature unchanged", function()
    local case = fixture("post-sts-header-after")
    assert.equal(STS_TOKEN, case.token_added_after_signing)
    local st = sign_case(suite_signer(), case)
    assert.is_nil(st.canonical_request:find("x-amz-security-token", 1, true))
    assert.equal(fixture("post-vanilla").expected.signature, st.signature)
  end)

  it("post-sts-header-before: a token header present when signing is signed", function()
    local case = fixture("post-sts-header-before")
    local st = sign_case(suite_signer(), case)
    assert.truthy(st.canonical_request:find("\nx-amz-security-token:" .. STS_TOKEN .. "\n", 1, true))
    assert.equal("host;x-amz-date;x-amz-security-token", st.signed_headers)
  end)
end)

describe("canonical headers", function()
  local signer = suite_signer()

  it("lowercases names, sorts them, and trims and folds value whitespace", function()
    local st = signer:stages("POST", "/", nil, {
      { "X-AMZ-DATE", "20150830T123600Z" }, { "My-Header1", " \t a   b \t c  " },
      { "HOST", "example.amazonaws.com" },
    }, "", "20150830T123600Z")
    assert.equal("POST\n/\n\nhost:example.amazonaws.com\nmy-header1:a b c\n" ..
      "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n" ..
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", st.canonical_request)
  end)

  it("joins repeated headers with commas in the order given", function()
    local st = signer:stages("POST", "/", nil, {
      { "Host", "example.amazonaws.com" }, { "my-header", "z" }, { "X-Amz-Date", "20150830T123600Z" },
      { "My-Header", "  a  " }, { "MY-HEADER", "m" },
    }, "", "20150830T123600Z")
    assert.truthy(st.canonical_request:find("\nmy-header:z,a,m\n", 1, true))
    assert.equal("host;my-header;x-amz-date", st.signed_headers)
  end)

  it("never signs user-agent, expect, authorization or hop-by-hop headers", function()
    local noise = { "User-Agent", "Expect", "Authorization", "Connection", "Keep-Alive", "TE",
      "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Authorization", "Proxy-Authenticate",
      "X-Amzn-Trace-Id" }
    local headers = { VANILLA_HEADERS[1], VANILLA_HEADERS[2] }
    for _, name in ipairs(noise) do headers[#headers + 1] = { name, "anything" } end
    local st = signer:stages("POST", "/", nil, headers, "", "20150830T123600Z")
    assert.equal("host;x-amz-date", st.signed_headers)
    assert.equal(fixture("post-vanilla").expected.signature, st.signature)
  end)

  it("sorts query parameters by name, then value, and gives a bare name an '='", function()
    local st = signer:stages("POST", "/", "b=2&a=2&a=1&c", VANILLA_HEADERS, "", "20150830T123600Z")
    assert.equal("a=1&a=2&b=2&c=", st.canonical_request:match("^POST\n/\n([^\n]*)\n"))
  end)

  it("hashes the body as given, byte for byte", function()
    local st = signer:stages("POST", "/", nil, VANILLA_HEADERS, "Param1=value1", "20150830T123600Z")
    assert.equal("9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
      st.canonical_request:match("([0-9a-f]+)$"))
  end)
end)

describe("the signing key cache", function()
  it("derives the key of the AWS documentation's worked example", function()
    local s = suite_signer{ service = "iam" }
    local st = s:stages("POST", "/", nil, VANILLA_HEADERS, "", "20150830T123600Z")
    assert.is_true(signed_with(st, KEY_DOCS_IAM))
    assert.is_nil(st.signing_key)
  end)

  it("reuses one key for every time of the same day and key", function()
    local s = suite_signer()
    local a = s:stages("POST", "/", nil, VANILLA_HEADERS, "", "20150830T000000Z")
    local b = s:stages("POST", "/", nil, VANILLA_HEADERS, "", "20150830T235959Z")
    assert.is_true(signed_with(a, KEY_20150830_SERVICE))
    assert.is_true(signed_with(b, KEY_20150830_SERVICE))
    assert.are_not.equal(a.signature, b.signature)
  end)

  it("derives a new key when the date changes, and the old one again when it changes back", function()
    local s = suite_signer()
    local want = { KEY_20150830_SERVICE, KEY_20150831_SERVICE, KEY_20150830_SERVICE }
    for i, date in ipairs({ "20150830T120000Z", "20150831T000001Z", "20150830T120000Z" }) do
      local st = s:stages("POST", "/", nil, VANILLA_HEADERS, "", date)
      assert.is_true(signed_with(st, want[i]), date)
      assert.is_false(signed_with(st, want[i % 2 + 1]), date)
    end
  end)

  it("derives a new key when the credentials change, even on the same day", function()
    local s = suite_signer()
    local date = "20150830T123600Z"
    assert.is_true(signed_with(s:stages("POST", "/", nil, VANILLA_HEADERS, "", date),
      KEY_20150830_SERVICE))
    s:set_credentials{ access_key = "AKIDOTHER", secret_key = "other-secret/+" }
    local st = s:stages("POST", "/", nil, VANILLA_HEADERS, "", date)
    assert.is_true(signed_with(st, KEY_OTHER_SECRET))
    assert.truthy(st.authorization:find("Credential=AKIDOTHER/20150830/", 1, true))
  end)

  it("derives a new key when only the secret is rotated under the same access key", function()
    local s = suite_signer()
    local date = "20150830T123600Z"
    s:stages("POST", "/", nil, VANILLA_HEADERS, "", date)
    s:set_credentials{ access_key = SUITE_KEY.access_key, secret_key = "other-secret/+" }
    assert.is_true(signed_with(s:stages("POST", "/", nil, VANILLA_HEADERS, "", date),
      KEY_OTHER_SECRET))
  end)

  it("signs as a fresh signer does after every change of day and of credentials", function()
    -- the reused HMAC state must follow the key: compare with a signer that never cached
    local s = suite_signer()
    local steps = {
      { date = "20150830T120000Z" }, { date = "20150831T000001Z" },
      { date = "20150831T000002Z", creds = { access_key = "AKIDOTHER", secret_key = "s2" } },
      { date = "20150831T000003Z", creds = SUITE_KEY }, { date = "20150830T120000Z" },
    }
    local current = SUITE_KEY
    for i, step in ipairs(steps) do
      if step.creds then
        s:set_credentials(step.creds)
        current = step.creds
      end
      local body = "body " .. i
      local fresh = suite_signer()
      fresh:set_credentials(current)
      local got = s:stages("POST", "/", nil, VANILLA_HEADERS, body, step.date)
      local want = fresh:stages("POST", "/", nil, VANILLA_HEADERS, body, step.date)
      assert.equal(want.signature, got.signature)
      assert.equal(want.authorization, got.authorization)
    end
  end)

  it("keeps the old credentials when set_credentials is refused", function()
    local s = suite_signer()
    assert.has_error(function() s:set_credentials{ access_key = "AKIDNEW", secret_key = "" } end)
    local st = s:stages("POST", "/", nil, VANILLA_HEADERS, "", "20150830T123600Z")
    assert.is_true(signed_with(st, KEY_20150830_SERVICE))
    assert.equal(fixture("post-vanilla").expected.authorization, st.authorization)
  end)
end)

describe("the session token", function()
  it("goes out as X-Amz-Security-Token and is signed", function()
    local s = suite_signer{ session_token = STS_TOKEN }
    local lines = s:prepare("GetItem", "{}", 1440938160)
    assert.equal(STS_TOKEN, header(lines, "X-Amz-Security-Token"))
    assert.truthy(header(lines, "Authorization"):find(
      "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target,", 1, true))
    assert.is_true(s:get("has_session_token"))
  end)

  it("is absent without a token, and gone after credentials without one are set", function()
    local s = suite_signer()
    assert.is_nil(header(s:prepare("GetItem", "{}", 1440938160), "X-Amz-Security-Token"))
    s:set_credentials{ access_key = "AKIDEXAMPLE", secret_key = "x", session_token = STS_TOKEN }
    assert.equal(STS_TOKEN, header(s:prepare("GetItem", "{}", 1440938160), "X-Amz-Security-Token"))
    s:set_credentials{ access_key = "AKIDEXAMPLE", secret_key = "x" }
    local lines = s:prepare("GetItem", "{}", 1440938160)
    assert.is_nil(header(lines, "X-Amz-Security-Token"))
    assert.is_nil(header(lines, "Authorization"):find("x-amz-security-token", 1, true))
    assert.is_false(s:get("has_session_token"))
  end)
end)

describe("tostring(signer)", function()
  -- Every 6-byte piece of a secret: a printed fragment is a leak too.
  local function assert_no_piece(text, secret)
    for i = 1, #secret - 5 do
      local piece = secret:sub(i, i + 5)
      assert(not text:find(piece, 1, true), ("'%s' shows part of a secret (%s)"):format(text, piece))
    end
  end

  it("never shows the secret key or the session token", function()
    local s = suite_signer{ session_token = STS_TOKEN }
    local text = tostring(s)
    assert.truthy(text:find("ddb{signer}", 1, true))
    assert_no_piece(text, SUITE_KEY.secret_key)
    assert_no_piece(text, STS_TOKEN)
  end)

  it("shows at most the first four characters of the access key", function()
    local text = tostring(suite_signer())
    assert.truthy(text:find("AKID****", 1, true))
    assert.is_nil(text:find("AKIDE", 1, true))
  end)

  it("still works after the signer is closed", function()
    local s = suite_signer{ session_token = STS_TOKEN }
    s:close()
    s:close()
    assert.truthy(tostring(s):find("access_key=none", 1, true))
  end)
end)

describe("signer:prepare", function()
  local HOST = "dynamodb.us-east-1.amazonaws.com"
  local function ddb_signer(extra)
    local o = { access_key = SUITE_KEY.access_key, secret_key = SUITE_KEY.secret_key,
      region = "us-east-1", host = HOST, user_agent = "spec-agent/1.0" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return core.signer_new(o)
  end

  it("produces the DynamoDB header lines in wire order", function()
    local s = ddb_signer{ session_token = "tok" }
    local lines, amz_date = s:prepare("PutItem", '{"TableName":"t"}', 1440938160)
    assert.equal("20150830T123600Z", amz_date)
    local names = {}
    for i, l in ipairs(lines) do names[i] = l:match("^([^:]+): ") end
    assert.same({ "Host", "Content-Type", "X-Amz-Date", "X-Amz-Target", "X-Amz-Security-Token",
      "Authorization", "User-Agent" }, names)
    assert.equal("Host: " .. HOST, lines[1])
    assert.equal("Content-Type: application/x-amz-json-1.0", lines[2])
    assert.equal("X-Amz-Date: 20150830T123600Z", lines[3])
    assert.equal("X-Amz-Target: DynamoDB_20120810.PutItem", lines[4])
    assert.equal("X-Amz-Security-Token: tok", lines[5])
    assert.equal("User-Agent: spec-agent/1.0", lines[7])
  end)

  it("signs exactly the headers it sends, minus User-Agent", function()
    local s = ddb_signer()
    local body = '{"TableName":"t","Key":{"pk":{"S":"héllo"}}}'
    local lines = s:prepare("GetItem", body, 1440938160)
    local st = s:stages("POST", "/", nil, {
      { "Host", HOST }, { "Content-Type", "application/x-amz-json-1.0" },
      { "X-Amz-Date", "20150830T123600Z" }, { "X-Amz-Target", "DynamoDB_20120810.GetItem" },
    }, body, "20150830T123600Z")
    assert.equal("Authorization: " .. st.authorization, lines[5])
    assert.equal("content-type;host;x-amz-date;x-amz-target", st.signed_headers)
    assert.truthy(st.authorization:find("Credential=AKIDEXAMPLE/20150830/us-east-1/dynamodb/aws4_request,",
      1, true))
  end)

  it("leaves User-Agent out when none was configured", function()
    local s = core.signer_new{ access_key = "AKID", secret_key = "s", region = "us-east-1", host = HOST }
    local lines = s:prepare("GetItem", "{}", 0)
    for _, l in ipairs(lines) do assert.is_nil(l:find("^User%-Agent:")) end
    assert.equal(5, #lines)
  end)

  it("uses the configured target prefix", function()
    local lines = ddb_signer{ target_prefix = "DynamoDBStreams_20120810" }:prepare("GetRecords", "{}", 0)
    assert.equal("X-Amz-Target: DynamoDBStreams_20120810.GetRecords", lines[4])
  end)

  it("formats the date of the given epoch in UTC", function()
    local s = ddb_signer()
    assert.equal("19700101T000000Z", select(2, s:prepare("GetItem", "{}", 0)))
    assert.equal("20000229T235959Z", select(2, s:prepare("GetItem", "{}", 951868799)))
    assert.equal("20380119T031408Z", select(2, s:prepare("GetItem", "{}", 2147483648)))
  end)

  it("refuses operation names that are not DynamoDB operation names", function()
    local s = ddb_signer()
    for _, op in ipairs({ "", "Get Item", "GetItem\r\nX-Evil: 1", "DynamoDB_20120810.GetItem",
      "Get-Item", ("A"):rep(65), "GetItem\0" }) do
      assert_raises("operation must be a DynamoDB operation name", s.prepare, s, op, "{}", 0)
    end
    assert.equal(6, #s:prepare(("A"):rep(64), "{}", 0))
  end)

  it("refuses to sign once closed", function()
    local s = ddb_signer()
    s:close()
    assert_raises("signer is closed", s.prepare, s, "GetItem", "{}", 0)
    assert_raises("signer is closed", s.stages, s, "POST", "/", nil, {}, "", "20150830T123600Z")
  end)

  it("refuses option values that could split a header line", function()
    for _, field in ipairs({ "host", "region", "user_agent", "access_key", "session_token" }) do
      local o = { access_key = "AKID", secret_key = "s", region = "us-east-1", host = "h" }
      o[field] = "a\r\nX-Evil: 1"
      assert_raises(("signer option '%s' holds a line break or NUL"):format(field), core.signer_new, o)
    end
  end)
end)

--------------------------------------------------------------------------------
-- botocore cross-check
--------------------------------------------------------------------------------

local VECTOR_SEED, VECTOR_COUNT = 20150830, 240
local vectors_cache

-- Runs spec/support/botocore_vectors.py in the project's venv; fails loudly without it.
local function botocore_vectors()
  if vectors_cache then return vectors_cache end
  local python = ROOT .. ".venv/bin/python"
  local f = io.open(python, "rb")
  if not f then
    error(python .. " is missing: the botocore cross-check needs the project's venv " ..
      "(run `make deps` or spec/support/install-deps.sh)", 0)
  end
  f:close()
  local errfile = os.tmpname()
  local cmd = ("'%s' '%sspec/support/botocore_vectors.py' %d %d 2>'%s'"):format(
    python, ROOT, VECTOR_SEED, VECTOR_COUNT, errfile)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  local stderr = read_all(errfile)
  os.remove(errfile)
  local doc, err = core.decode(out)
  if not doc or type(doc.cases) ~= "table" or #doc.cases ~= VECTOR_COUNT then
    error("botocore_vectors.py gave no usable output (" .. tostring(err) .. "):\n" .. stderr, 0)
  end
  for _, case in ipairs(doc.cases) do
    local c = case.credentials
    local signer = core.signer_new{
      access_key = c.access_key, secret_key = c.secret_key, session_token = c.session_token,
      region = case.region, service = case.service, host = case.host,
      user_agent = case.prepare.user_agent,
    }
    local r = case.request
    case.got = signer:stages(r.method, r.path, nil, r.headers, r.body, case.amz_date)
    case.prepared, case.prepared_date = signer:prepare(case.prepare.op, r.body, case.epoch)
    local g = case.generic
    local generic = core.signer_new{
      access_key = c.access_key, secret_key = c.secret_key, session_token = c.session_token,
      region = case.region, service = g.service, host = case.host,
    }
    case.generic_lines = generic:sign_request(g.method, g.path, g.query, g.headers, g.body,
      case.epoch)
  end
  vectors_cache = doc
  return doc
end

-- Compares one field over all cases; reports the first few differences with their ids.
local function assert_all_agree(field_of_got, field_of_expected)
  local doc = botocore_vectors()
  local bad = {}
  for _, case in ipairs(doc.cases) do
    local got, want = field_of_got(case), field_of_expected(case)
    if got ~= want then
      bad[#bad + 1] = ("case %d:\n  ours:     %s\n  botocore: %s"):format(case.id,
        tostring(got):sub(1, 600), tostring(want):sub(1, 600))
    end
  end
  assert(#bad == 0, ("%d of %d cases differ (seed %d, botocore %s):\n%s"):format(#bad,
    #doc.cases, doc.seed, doc.botocore, table.concat(bad, "\n", 1, math.min(#bad, 3))))
end

describe("the generic request signer (signer:sign_request)", function()
  it("agrees with botocore on requests to other services (sts, iam, sqs, execute-api)", function()
    local services = {}
    for _, case in ipairs(botocore_vectors().cases) do services[case.generic.service] = true end
    assert.same({ sts = true, iam = true, sqs = true, ["execute-api"] = true }, services)
    assert_all_agree(function(case) return header(case.generic_lines, "Authorization") end,
      function(case) return case.generic.authorization end)
  end)

  it("adds X-Amz-Date, the session token and Authorization, and nothing secret", function()
    local secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    local s = suite_signer{ service = "sts", session_token = "TOKEN/abc=" }
    local lines, amz_date = s:sign_request("POST", "/", nil,
      { { "Content-Type", "application/x-www-form-urlencoded; charset=utf-8" } },
      "Action=GetCallerIdentity&Version=2011-06-15", 1440938160)
    assert.equal("20150830T123600Z", amz_date)
    assert.same({ "X-Amz-Date", "X-Amz-Security-Token", "Authorization" },
      { lines[1]:match("^[^:]+"), lines[2]:match("^[^:]+"), lines[3]:match("^[^:]+") })
    assert.equal(3, #lines)
    assert.equal("TOKEN/abc=", header(lines, "X-Amz-Security-Token"))
    assert.truthy(header(lines, "Authorization"):find(
      "Credential=AKIDEXAMPLE/20150830/us-east-1/sts/aws4_request, " ..
      "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=", 1, true))
    for _, l in ipairs(lines) do assert.is_nil(l:find(secret, 1, true)) end
  end)

  it("signs as the DynamoDB wrapper does for a DynamoDB request", function()
    local s = suite_signer{ service = "dynamodb", host = "dynamodb.us-east-1.amazonaws.com" }
    local body = '{"TableName":"t"}'
    local prepared = s:prepare("DescribeTable", body, 1440938160)
    local lines = s:sign_request("POST", "/", nil, {
      { "Content-Type", "application/x-amz-json-1.0" },
      { "X-Amz-Target", "DynamoDB_20120810.DescribeTable" } }, body, 1440938160)
    assert.equal(header(prepared, "Authorization"), header(lines, "Authorization"))
  end)

  it("refuses the headers it owns and line breaks", function()
    local s = suite_signer()
    for _, name in ipairs({ "Host", "x-amz-date", "X-Amz-Security-Token", "authorization" }) do
      assert.has_error(function() s:sign_request("GET", "/", nil, { { name, "x" } }, "") end,
        ("header '%s' is the signer's own; leave it out"):format(name:lower()))
    end
    assert.has_error(function()
      s:sign_request("GET", "/", nil, { { "X-Note", "a\r\nInjected: 1" } }, "")
    end, "header 1 holds a line break")
  end)

  it("uses the clock and the signer's skew without an epoch", function()
    local s = suite_signer()
    s:skew(-86400 * 2)
    local _, amz_date = s:sign_request("GET", "/", nil, {}, "")
    assert.equal(os.date("!%Y%m%d", os.time() - 86400 * 2), amz_date:sub(1, 8))
  end)
end)

describe("agreement with botocore's SigV4Auth on generated DynamoDB requests", function()
  it("covers empty, large and non-ASCII bodies, tokens, repeats and unsigned headers", function()
    local doc = botocore_vectors()
    local seen = { empty = 0, large = 0, utf8 = 0, token = 0, repeated = 0, unsigned = 0,
      padded = 0 }
    for _, case in ipairs(doc.cases) do
      local body = case.request.body
      if body == "" then seen.empty = seen.empty + 1 end
      if #body >= 1000000 then seen.large = seen.large + 1 end
      if body:find("[\128-\255]") then seen.utf8 = seen.utf8 + 1 end
      if case.credentials.session_token then seen.token = seen.token + 1 end
      local names = {}
      for _, h in ipairs(case.request.headers) do
        local n = h[1]:lower()
        if names[n] then seen.repeated = seen.repeated + 1 end
        names[n] = true
        if n == "user-agent" or n == "connection" or n == "expect" then
          seen.unsigned = seen.unsigned + 1
        end
        if h[2]:find("^[ \t]") or h[2]:find("[ \t][ \t]") then seen.padded = seen.padded + 1 end
      end
    end
    assert.is_true(#doc.cases >= 200)
    for what, n in pairs(seen) do
      assert(n >= 3, ("only %d generated cases have %s"):format(n, what))
    end
  end)

  it("builds the same canonical request", function()
    assert_all_agree(function(c) return c.got.canonical_request end,
      function(c) return c.expected.canonical_request end)
  end)

  it("builds the same string to sign", function()
    assert_all_agree(function(c) return c.got.string_to_sign end,
      function(c) return c.expected.string_to_sign end)
  end)

  it("computes the same signature", function()
    assert_all_agree(function(c) return c.got.signature end,
      function(c) return c.expected.signature end)
  end)

  it("writes the same Authorization header", function()
    assert_all_agree(function(c) return c.got.authorization end,
      function(c) return c.expected.authorization end)
  end)

  it("signs what prepare() sends exactly as botocore signs the same DynamoDB request", function()
    assert_all_agree(function(c)
      for _, l in ipairs(c.prepared) do
        local v = l:match("^Authorization: (.*)$")
        if v then return v end
      end
    end, function(c) return c.prepare.authorization end)
    assert_all_agree(function(c) return c.prepared_date end, function(c) return c.amz_date end)
  end)
end)
