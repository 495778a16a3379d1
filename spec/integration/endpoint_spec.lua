-- An endpoint that is not DynamoDB (a web server on the wrong port, a site, a proxy's error
-- page) is named as such at once, with what it answered, instead of "InternalServerError
-- ... unreadable body" after seconds of retries; the table DynamoDB does not find is named;
-- a TLS failure says what failed and what to do, OpenSSL's text at the end.
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local helper = require "helper"

local monotonic_ms = ddb.core.monotonic_ms

local function client_for(url, opts)
  local o = { region = helper.region(), endpoint = url, credentials = helper.credentials(),
    transport = "curl" }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(ddb.new(o))
end

-- POSTs a web server received (endpoints have no path: each answer kind has its server).
local function posts(server)
  local p = assert(io.popen("curl -s --max-time 5 " .. helper.shell_quote(server.url .. "/")))
  local body = p:read("*a")
  p:close()
  local n = 0
  for _, c in pairs(ddb.decode_json(body)) do n = n + c end
  return n
end

describe("an endpoint that is not DynamoDB", function()
  local web = {}

  setup(function()
    for _, kind in ipairs{ "501", "404", "json", "200", "502" } do
      web["/" .. kind] = helper.python_server("web_server.py", "--default " .. kind)
    end
  end)

  teardown(function()
    for _, w in pairs(web) do w.stop() end
  end)

  -- url, what it answers, applied
  local refused = {
    { "/501", "HTTP 501 text/html with a body that is not JSON", "no" },
    { "/404", "HTTP 404 text/html with a body that is not JSON", "no" },
    { "/json", "HTTP 404 application/json with a JSON body without DynamoDB's __type", "no" },
    { "/200", "HTTP 200 text/html with a body that is not a JSON object", "maybe" },
  }
  for _, case in ipairs(refused) do
    it("answering " .. case[1] .. " is NotDynamoDB at the first attempt, naming the endpoint",
      function()
        local url = web[case[1]].url
        local c = client_for(url)
        local started = monotonic_ms()
        local res, err = c:list_tables({})
        local elapsed = monotonic_ms() - started
        assert.is_nil(res)
        assert.equal("NotDynamoDB", err.code)
        assert.equal("the endpoint " .. c.url .. " answered " .. case[2] .. " and no " ..
          "x-amzn-requestid: is it a DynamoDB endpoint?", err.message)
        assert.equal(case[3], err.applied)
        assert.equal(1, err.attempts)
        assert.is_false(err.retryable)
        assert.is_true(elapsed < 1500, elapsed .. " ms")
        assert.equal(1, posts(web[case[1]]))
        assert.equal("ddb: NotDynamoDB (HTTP " .. err.status .. "): " .. err.message,
          tostring(err))
        c:close()
      end)
  end

  it("is recognised through a transport of the caller's too (request + parse_response)",
    function()
      local c = client_for(web["/501"].url, { transport = helper.recording_transport() })
      local res, err = c:get_item({ TableName = "T", Key = ddb.marshal_item{ pk = "a" } })
      c:close()
      assert.is_nil(res)
      assert.equal("NotDynamoDB", err.code)
      assert.equal("no", err.applied)
      assert.equal(1, err.attempts)
      assert.matches("answered HTTP 501 text/html", err.message)
    end)

  it("retries a gateway's 5xx page, which may have passed the request on", function()
    local before = posts(web["/502"])
    local c = client_for(web["/502"].url, { max_attempts = 3, retry = { base_ms = 1 } })
    local _, err = c:list_tables({})
    c:close()
    assert.equal("NotDynamoDB", err.code)
    assert.equal("maybe", err.applied)
    assert.equal(3, err.attempts)
    assert.equal(before + 3, posts(web["/502"]))
  end)

  it("ends with_item at once with NotDynamoDB, not OutcomeUnknown", function()
    local store = assert(optimistic.new{ table = "T", key = { "pk" },
      client = client_for(web["/501"].url) })
    local started = monotonic_ms()
    local item, err = store:with_item({ pk = "a" }, function(i) return i or { n = 1 } end)
    assert.is_nil(item)
    assert.equal("NotDynamoDB", err.code)
    assert.is_true(monotonic_ms() - started < 1500)
  end)

  it("gives a TLS error that says the server does not speak TLS, OpenSSL's text last",
    function()
      local url = web["/200"].url:gsub("^http:", "https:")
      local c = client_for(url, { max_attempts = 1 })
      local _, err = c:list_tables({})
      c:close()
      assert.equal("TLSError", err.code)
      assert.equal("no", err.applied)
      assert.matches("^the TLS handshake with 127%.0%.0%.1:%d+ failed: the server does not " ..
        "speak TLS there %(an http:// endpoint given as https://%?%) %(libcurl: .+%)$",
        err.message)
    end)
end)

for _, server in ipairs(helper.servers()) do
  describe("a table that does not exist on " .. server.name, function()
    it("is named in the error, with the region and endpoint asked", function()
      local c = helper.client(server)
      local name = helper.table_name("absent")
      local _, err = c:get_item({ TableName = name, Key = ddb.marshal_item{ pk = "a" } })
      c:close()
      assert.equal("ResourceNotFoundException", err.code)
      assert.truthy(err.message:find(name, 1, true), err.message)
      assert.truthy(err.message:find("region " .. helper.region() .. ", endpoint " ..
        server.url, 1, true), err.message)
    end)
  end)
end
