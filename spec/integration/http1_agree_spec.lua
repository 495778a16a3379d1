-- One HTTP/1.1 for the transports that read it themselves: the libcurl one-call path
-- (csrc/wire.c), ddb.scheduler's calls (csrc/pool.c) and the cosocket transport inside nginx
-- (a ddb{exchange}) all go through csrc/answer.c, so the same bytes from a server give the
-- same result or the same error (code, applied, retry class, message) through each.
-- spec/support/wire_server.py gives the bytes; the operation name picks them.
local helper = require "helper"
local runner = require "support.nginx.runner"
local ddb = require "ddb"
local scheduler = require "ddb.scheduler"

local encode, decode = ddb.encode_json, ddb.decode_json

local KEY, SECRET = "AKIDAGREE", "agree-secret"

-- What a call ended with, in the terms both sides can report.
local function outcome(ok, result, err)
  if ok then
    result.Conn, result.N = nil, nil   -- which connection: the transports' own business
    return { ok = true, result = result }
  end
  return { ok = false, code = err.code, applied = err.applied, retry_class = err.retry_class,
    message = err.message }
end

describe("the same answer bytes through the libcurl path, the scheduler and cosockets", function()
  local server, srv

  setup(function()
    server = helper.python_server("wire_server.py")
    srv = runner.start{ conf = runner.read(runner.support_dir .. "/harness.conf"), ports = 3,
      vars = { ENDPOINT = server.url, REGION = "us-east-1", ACCESS_KEY = KEY,
        SECRET_KEY = SECRET } }
  end)

  teardown(function()
    if srv then srv:stop() end
    if server then server.stop() end
  end)

  local function through_curl(op, opts)
    local o = { endpoint = server.url, region = "us-east-1", transport = "curl",
      max_attempts = 1, credentials = { access_key_id = KEY, secret_access_key = SECRET } }
    for k, v in pairs(opts or {}) do o[k] = v end
    local client = assert(ddb.new(o))
    local res, err = client:call(op, {})
    client:close()
    -- through JSON, as the nginx side's result comes
    return outcome(res ~= nil, res and decode(encode(res)), err)
  end

  local function through_scheduler(op, opts)
    local sched = scheduler.new{ max_answer_bytes = opts and opts.max_answer_bytes }
    local client = assert(ddb.new{ endpoint = server.url, region = "us-east-1",
      transport = sched:transport(), max_attempts = 1,
      credentials = { access_key_id = KEY, secret_access_key = SECRET } })
    local res, err
    sched:spawn(function() res, err = client:call(op, {}) end)
    sched:run()
    sched:close()
    return outcome(res ~= nil, res and decode(encode(res)), err)
  end

  local function through_cosockets(op, opts)
    local o = { max_attempts = 1 }
    for k, v in pairs(opts or {}) do o[k] = v end
    local status, body = runner.http("POST", srv:url("/call"), encode{ endpoint = server.url,
      op = op, request = {}, opts = o })
    assert.equal(200, status, tostring(body) .. srv:log())
    local doc = decode(body)
    return outcome(doc.ok, doc.result, doc.err)
  end

  local CASES = {
    { "Plain" }, { "Chunked" }, { "Close" }, { "NoLength" }, { "Continue" }, { "Drip" },
    { "Trailing" }, { "Big" }, { "BigChunked" }, { "BigNoLength" },
    -- the cases where the cosocket transport's own reader used to differ
    { "RepeatedCrc", ok = true },          -- the last x-amz-crc32 counts (it joined them)
    { "BadChunkSize", code = "NetworkError" },   -- " 5": refused (it took it)
    { "LongChunkSize", code = "NetworkError" },  -- 16 hex digits: refused as malformed
    { "HugeHead", code = "AnswerTooLarge" },
    { "Garbage", code = "NetworkError" }, { "Dropped", code = "NetworkError" },
    -- the body limit, on each framing
    { "Big", code = "AnswerTooLarge", opts = { max_answer_bytes = 2000 } },
    { "BigChunked", code = "AnswerTooLarge", opts = { max_answer_bytes = 2000 } },
    { "BigNoLength", code = "AnswerTooLarge", opts = { max_answer_bytes = 2000 } },
  }

  for _, c in ipairs(CASES) do
    local op = c[1]
    local label = op .. (c.opts and (" with max_answer_bytes = " .. c.opts.max_answer_bytes) or "")
    it(("%s: %s through both"):format(label, c.code or "the same result"), function()
      local curl = through_curl(op, c.opts)
      local cosockets = through_cosockets(op, c.opts)
      assert.same(curl, cosockets, label)
      assert.same(curl, through_scheduler(op, c.opts), label .. " (the scheduler)")
      if c.code then
        assert.same({ false, c.code, "maybe" }, { curl.ok, curl.code, curl.applied }, label)
      else
        assert.is_true(curl.ok, label .. ": " .. tostring(curl.message))
        assert.equal(op, curl.result.Op)
      end
    end)
  end
end)
