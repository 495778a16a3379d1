-- The module's own HTTP/1.1 on connections libcurl makes: the blocking transport's one-call
-- path (handle:call, csrc/wire.c) and ddb.scheduler's calls (csrc/pool.c), which write the
-- request and read the answer the same way (csrc/answer.c). spec/support/wire_server.py gives
-- them the answers real servers and middleboxes give (chunks, closes, 100 Continue, a body to
-- the close, an answer in single bytes, a connection closed while idle, bytes that answer
-- nothing, garbage, silence); the operation name picks the answer. Every answer carries the
-- connection's number and the request's number on it, so the specs see reuse; the server
-- counts requests per operation, so they see that nothing is sent twice.
local helper = require "helper"
local core = require "ddb.core"
local scheduler = require "ddb.scheduler"

local unpack = table.unpack or unpack

local function pack(...) return { n = select("#", ...), ... } end

-- Each path as one object: call (handle:call's arguments and results), request,
-- connections (made so far by the own HTTP/1.1), close.
local PATHS = {
  { name = "handle:call's own HTTP/1.1", new = function(opts)
    local h = core.curl_new(opts)
    return { handle = h,
      call = function(_, ...) return h:call(...) end,
      request = function(_, ...) return h:request(...) end,
      connections = function() return h:stats().connections end,
      close = function() h:close() end }
  end },
  { name = "ddb.scheduler's own HTTP/1.1", new = function(opts)
    local sched = scheduler.new(opts)
    local t = sched:transport()
    -- one task per call, run to its end
    local function run(method, ...)
      local args, out = pack(...)
      sched:spawn(function() out = pack(t[method](t, unpack(args, 1, args.n))) end)
      sched:run()
      return unpack(out, 1, out.n)
    end
    return { sched = sched,
      call = function(_, ...) return run("call", ...) end,
      request = function(_, ...) return run("request", ...) end,
      connections = function() return sched:stats().connections end,
      close = function() sched:close() end }
  end },
}

for _, path in ipairs(PATHS) do
  describe(path.name, function()
    local server, signer, handle

    setup(function()
      server = helper.python_server("wire_server.py")
      signer = core.signer_new{ access_key = "AKIDWIRE", secret_key = "wire-secret",
        region = "us-east-1", host = server.url:match("//(.*)$") }
    end)

    teardown(function()
      if handle then handle:close() end
      server.stop()
    end)

    before_each(function()
      if handle then handle:close() end
      handle = path.new{}
    end)

    local function call(op, timeout_ms)
      return handle:call(signer, server.url, op, "{}", timeout_ms or 3000)
    end

    local function ok(op)
      local res, err, status, request_id = call(op)
      assert(res, tostring(err and err.message))
      assert.equal(200, status)
      assert.equal("WIRE0001", request_id)
      assert.equal(op, res.Op)
      return res
    end

    local function sent(op)
      local res = assert(call("Stats"))
      return res.requests[op] or 0
    end

    it("keeps one connection for request after request", function()
      local first = ok("Plain")
      for n = 2, 20 do
        local res = ok("Plain")
        assert.equal(first.Conn, res.Conn)
        assert.equal(n, res.N)
      end
      assert.equal(1, handle:connections())
    end)

    it("reads chunked answers, 100 Continue before the answer, and answers a byte at a time",
      function()
        local conn = ok("Plain").Conn
        for _ = 1, 3 do
          assert.equal(conn, ok("Chunked").Conn)
          assert.equal(conn, ok("Continue").Conn)
          assert.equal(conn, ok("Drip").Conn)
        end
      end)

    it("reads an answer the server ends with Connection: close, then connects again", function()
      local before = ok("Plain").Conn
      assert.equal(before, ok("Close").Conn)
      assert.are_not.equal(before, ok("Plain").Conn)
    end)

    it("reads a body that runs to the close, then connects again", function()
      local before = ok("Plain").Conn
      assert.equal(before, ok("NoLength").Conn)
      assert.are_not.equal(before, ok("Plain").Conn)
    end)

    it("sends on a new connection, once, when the server closed the kept one while idle",
      function()
        local before = ok("IdleClose").Conn
        core.sleep_ms(300)
        local n = sent("Plain")
        local res = ok("Plain")
        assert.are_not.equal(before, res.Conn)
        assert.equal(n + 1, sent("Plain"))
      end)

    it("drops a connection that sent bytes answering no request", function()
      local before = ok("Trailing").Conn
      assert.are_not.equal(before, ok("Plain").Conn)
    end)

    it("gives a request that got no answer as NetworkError, maybe applied, sent once", function()
      ok("Plain")
      local n = sent("Dropped")
      local res, err = call("Dropped")
      assert.is_nil(res)
      assert.equal("NetworkError", err.code)
      assert.equal("maybe", err.applied)
      assert.is_true(err.retryable)
      assert.equal(n + 1, sent("Dropped"))
      ok("Plain")   -- and the next call connects again
    end)

    it("gives an answer that is not HTTP as NetworkError, maybe applied", function()
      local res, err = call("Garbage")
      assert.is_nil(res)
      assert.equal("NetworkError", err.code)
      assert.equal("maybe", err.applied)
      assert.matches("not a well%-formed HTTP/1%.1 answer", err.message)
      ok("Plain")
    end)

    it("gives Timeout, maybe applied, when the answer is later than timeout_ms", function()
      local t0 = core.monotonic_ms()
      local res, err = call("Slow", 300)
      local took = core.monotonic_ms() - t0
      assert.is_nil(res)
      assert.equal("Timeout", err.code)
      assert.equal("maybe", err.applied)
      assert.equal("timeout", err.retry_class)
      assert.is_true(took >= 290 and took < 1200, "took " .. took .. " ms")
      ok("Plain")   -- on a new connection: the late answer must not be read as this one's
    end)

    describe("with max_answer_bytes", function()
      local function limited(max)
        handle:close()
        handle = path.new{ max_answer_bytes = max }
      end

      it("reads answers up to the limit, in every framing", function()
        limited(4000)
        for _, op in ipairs({ "Big", "BigChunked", "BigNoLength" }) do
          local res = ok(op)   -- a body of exactly 4000 bytes
          assert.is_true(#res.Pad > 3900, op)
        end
      end)

      it("refuses an answer over it: AnswerTooLarge, maybe applied, not retryable, and the " ..
        "next call on a new connection", function()
        limited(3999)
        for _, op in ipairs({ "Big", "BigChunked", "BigNoLength" }) do
          local before = ok("Plain").Conn
          local res, err = call(op)
          assert.is_nil(res)
          assert.equal("AnswerTooLarge", err.code, op)
          assert.equal("maybe", err.applied)
          assert.equal("none", err.retry_class)
          assert.is_false(err.retryable)
          assert.matches("longer than max_answer_bytes %(3999%)", err.message)
          assert.are_not.equal(before, ok("Plain").Conn)
        end
      end)

      it("holds on libcurl's own transfers too (a URL with a path)", function()
        limited(3999)
        local res, err = handle:call(signer, server.url .. "/x/", "Big", "{}", 3000)
        assert.is_nil(res)
        assert.equal("AnswerTooLarge", err.code)
        local status = handle:request(server.url .. "/x/",
          { "X-Amz-Target: DynamoDB_20120810.Big" }, "{}", 3000)
        assert.is_nil(status)
        res = assert(handle:call(signer, server.url .. "/x/", "Plain", "{}", 3000))
        assert.equal("Plain", res.Op)
      end)
    end)

    it("gives ConnectError, not applied, when nothing listens", function()
      local res, err = handle:call(signer, helper.closed_url(), "Plain", "{}", 1000)
      assert.is_nil(res)
      assert.equal("ConnectError", err.code)
      assert.equal("no", err.applied)
    end)

    it("leaves a URL with a path to libcurl's own transfers", function()
      ok("Plain")
      local own = handle:connections()
      local res, err, status, request_id = handle:call(signer, server.url .. "/x/", "Plain", "{}",
        3000)
      assert(res, tostring(err and err.message))
      assert.same({ "Plain", 200, "WIRE0001" }, { res.Op, status, request_id })
      if handle.handle then
        assert.equal(1, handle.handle:stats().new_connections)
        assert.equal(own + 1, handle:connections())   -- libcurl's transfers' count with it
      else
        assert.equal(own, handle:connections())   -- the scheduler's counts only its own
      end
    end)
  end)
end
