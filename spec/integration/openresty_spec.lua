-- The library inside a real nginx (Debian's, with ngx_lua), started on loopback for each
-- local DynamoDB server: the example configuration (examples/openresty) under concurrent
-- clients, and the cosocket transport's framing, keep-alive, error classification and
-- refusal to work in phases without cosockets (spec/support/nginx/harness.*). nginx runs
-- as a subprocess, so this spec behaves the same under any interpreter busted uses.
local helper = require "helper"
local runner = require "support.nginx.runner"
local example = require "support.nginx.example"
local ddb = require "ddb"

local encode, decode = ddb.encode_json, ddb.decode_json

local function harness_vars(server)
  return { ENDPOINT = server.url, REGION = helper.region(), ACCESS_KEY = helper.access_key(),
    SECRET_KEY = helper.secret_key() }
end

local function post(srv, path, doc, timeout_s)
  local status, body = runner.http("POST", srv:url(path), encode(doc), timeout_s)
  assert.are.equal(200, status, tostring(body) .. "\n" .. srv:log())
  return decode(body)
end

for _, server in ipairs(helper.servers()) do
  describe("the example OpenResty counter on " .. server.name, function()
    local client, table_name

    setup(function()
      client = helper.client(server)
      table_name = helper.table_name("counter")
      helper.create_table(client, table_name, "pk")
    end)

    after_each(function() helper.reset(server) end)

    teardown(function()
      if client then client:delete_table({ TableName = table_name }) end
    end)

    it("counts every concurrent increment exactly once, over two workers", function()
      local srv = example.start(server, table_name, 2)
      finally(function() srv:stop() end)
      local successes, failures, elapsed = example.assert_exactly_once(srv, 8, 25, 16)
      -- contention is per counter; with 8 counters nearly everything lands
      assert.is_true(successes >= 190, ("%d of 200 succeeded"):format(successes))
      print(("\n  %s: 200 increments over 8 counters, 16 in flight: %d ok, %d refused, " ..
        "%.0f ms"):format(server.name, successes, failures.no, elapsed))
    end)

    it("never counts an increment twice or loses a successful one while a fifth of the " ..
      "write answers are lost",
      function()
        local srv = example.start(server, table_name, 2)
        finally(function() srv:stop() end)
        helper.control(server, { seed = 4, faults = ddb.list({
          { kind = "drop_after_forward", op = "UpdateItem", probability = 0.2 } }) })
        local successes, failures = example.assert_exactly_once(srv, 4, 20, 8,
          { prefix = "lossy", lossy = true })
        local dropped = helper.stats(server).faults_fired.drop_after_forward or 0
        print(("\n  %s: 80 increments, %d write answers dropped: %d ok, %d refused, " ..
          "%d unknown"):format(server.name, dropped, successes, failures.no, failures.maybe))
        assert.is_true(dropped > 0)
        assert.is_true(successes >= 72, successes .. " of 80 succeeded")
      end)

    it("serves requests waiting on DynamoDB side by side in one worker", function()
      local srv = example.start(server, table_name, 1)
      finally(function() srv:stop() end)
      local delay = 300
      helper.faults(server, { { kind = "delay_ms", ms = delay } })
      -- one increment alone: a read and a write, each delayed
      local _, one = runner.parallel("POST", { srv:url("/counter/solo") }, 1)
      local urls = {}
      for i = 1, 10 do urls[i] = srv:url("/counter/side" .. i) end
      local bodies, ten = runner.parallel("POST", urls, 10)
      for _, body in ipairs(bodies) do assert.are.equal(1, decode(body).count, body) end
      print(("\n  %s: every DynamoDB answer delayed %d ms; 1 increment %.0f ms, " ..
        "10 at once in 1 worker %.0f ms"):format(server.name, delay, one, ten))
      assert.is_true(one >= 2 * delay)
      -- blocked, the ten would take 10 times as long as one
      assert.is_true(ten < 2 * one, ("10 concurrent took %.0f ms, one %.0f ms"):format(ten, one))
    end)
  end)

  describe("the cosocket transport inside nginx, against " .. server.name, function()
    local srv, odd

    setup(function()
      srv = runner.start{ conf = runner.read(runner.support_dir .. "/harness.conf"), ports = 3,
        vars = harness_vars(server) }
      odd = runner.oddserver()
    end)

    teardown(function()
      if srv then srv:stop() end
      if odd then odd.stop() end
    end)

    after_each(function() helper.reset(server) end)

    describe("in phases without cosockets", function()
      it("returns PhaseError at once, naming the phase and ngx.timer.at", function()
        assert.are.equal("PhaseError\n", select(2, runner.http("GET", srv:url("/set"))))
        runner.http("GET", srv:url("/log"))
        runner.http("GET", srv:url("/filters"))
        local phases = decode(select(2, runner.http("GET", srv:url("/phases"))))
        for _, phase in ipairs({ "init", "init_worker", "set", "header_filter", "body_filter",
          "log" }) do
          local rec = phases[phase]
          assert.is_table(rec, "nothing recorded in phase " .. phase)
          assert.are.equal("ngx", rec.transport)
          assert.is_false(rec.ok)
          assert.are.equal("PhaseError", rec.err.code)
          assert.are.equal("no", rec.err.applied)
          assert.are.equal("none", rec.err.retry_class)
          assert.are.equal(1, rec.err.attempts)
          assert.truthy(rec.err.message:find("'" .. phase .. "' phase", 1, true), rec.err.message)
          assert.truthy(rec.err.message:find("ngx.timer.at", 1, true))
          assert.is_true(rec.ms < 50, phase .. " took " .. rec.ms .. " ms")
        end
      end)

      it("works from the timer the error points to", function()
        local phases = decode(select(2, runner.http("GET", srv:url("/phases"))))
        assert.are.same({ phase = "timer", ok = true, transport = "ngx" },
          { phase = phases.init_worker_timer.phase, ok = phases.init_worker_timer.ok,
            transport = phases.init_worker_timer.transport })
      end)
    end)

    describe("framing", function()
      it("reads chunked answers byte for byte", function()
        local out = post(srv, "/raw", { url = srv:url("", srv.ports[2]),
          body = encode({ size = 100000 }) })
        assert.is_true(out.ok, encode(out))
        assert.are.equal("chunked", out.headers["transfer-encoding"])
        assert.are.equal(("y"):rep(100000), decode(out.body).pad)
      end)

      it("reads chunk extensions, trailers, interim 100 answers and close-delimited bodies",
        function()
          for _, mode in ipairs({ "chunked", "interim", "close", "plain" }) do
            local out = post(srv, "/raw", { url = odd.url,
              body = encode({ mode = mode, size = 3500 }) })
            assert.is_true(out.ok, encode(out))
            assert.are.equal(200, out.status)
            assert.are.equal(3500, #out.body)
            assert.are.equal(mode, decode(out.body).mode)
          end
        end)

      it("reports maybe_resent = false: nothing is ever sent twice behind the caller", function()
        local out = post(srv, "/raw", { url = odd.url })
        assert.is_false(out.resent)
      end)
    end)

    describe("keep-alive", function()
      it("sends later requests on the pooled connection", function()
        local conns = {}
        local out
        for i = 1, 4 do
          out = post(srv, "/raw", { url = odd.url, shared = true })
          conns[i] = decode(out.body).conn
        end
        assert.are.same({ conns[1], conns[1], conns[1], conns[1] }, conns)
        -- the first may already find one in the pool, left by an earlier test
        assert.is_true(out.stats.connects <= 1 and out.stats.reused >= 3, encode(out.stats))
      end)

      it("uses one more connection, once, when a pooled one was reset before the request " ..
        "line could leave", function()
        local out = post(srv, "/stale", { url = odd.url, mode = "rst_idle" })
        assert.is_true(out.first.ok and out.second.ok, encode(out))
        assert.are.equal(1, out.stats.stale_retries)
        assert.are_not.equal(decode(out.first.body).conn, decode(out.second.body).conn)
      end)

      it("says applied = maybe, never resending, when a pooled connection failed after the " ..
        "request line left", function()
        -- a FIN does not stop the first send; the server's RST then breaks the rest
        local out = post(srv, "/stale", { url = odd.url, mode = "fin_idle" })
        assert.is_true(out.first.ok)
        assert.is_false(out.second.ok)
        assert.are.equal("maybe", out.second.err.applied)
        assert.are.equal(0, out.stats.stale_retries)
      end)
    end)

    describe("errors, classified as the curl transport does", function()
      local function call(doc, path)
        doc.opts = doc.opts or {}
        doc.opts.max_attempts = doc.opts.max_attempts or 1
        return post(srv, path or "/call", doc)
      end

      it("succeeds against the server", function()
        local out = call({ endpoint = server.url })
        assert.is_true(out.ok, encode(out))
        assert.are.equal("ngx", out.transport)
      end)

      it("takes the pool settings from ddb.new's options", function()
        local out = call({ endpoint = server.url })
        assert.are.same({ size = 64, keepalive_ms = 30000 }, out.pool)
        out = call({ endpoint = server.url, opts = { pool_size = 4, keepalive_timeout_ms = 5000 } })
        assert.is_true(out.ok, encode(out))
        assert.are.same({ size = 4, keepalive_ms = 5000 }, out.pool)
      end)

      it("connection refused: ConnectError, applied no", function()
        local out = call({ endpoint = "http://127.0.0.1:" .. srv.ports[3] })
        assert.are.equal("ConnectError", out.err.code)
        assert.are.equal("no", out.err.applied)
        assert.are.equal("transient", out.err.retry_class)
      end)

      it("a name that does not resolve: ConnectError, applied no", function()
        local out = call({ endpoint = "http://ddb.invalid:8000" }, "/call_dns")
        assert.are.equal("ConnectError", out.err.code)
        assert.are.equal("no", out.err.applied)
        assert.truthy(out.err.message:find("could not be resolved", 1, true), out.err.message)
      end)

      it("no resolver configured: ConnectError naming the directive, not retried", function()
        local out = call({ endpoint = "http://ddb.invalid:8000", opts = { max_attempts = 5 } })
        assert.are.equal("ConnectError", out.err.code)
        assert.are.equal("none", out.err.retry_class)
        assert.are.equal(1, out.err.attempts)
        assert.truthy(out.err.message:find("resolver", 1, true))
      end)

      it("answer dropped after the request was forwarded: applied maybe", function()
        helper.faults(server, { { kind = "drop_after_forward", op = "ListTables", count = 1 } })
        local out = call({ endpoint = server.url })
        assert.are.equal("NetworkError", out.err.code)
        assert.are.equal("maybe", out.err.applied)
        assert.are.equal("transient", out.err.retry_class)
      end)

      it("connection reset before the request was forwarded: still maybe (the client " ..
        "cannot tell)", function()
        helper.faults(server, { { kind = "reset_before_forward", op = "ListTables", count = 1 } })
        local out = call({ endpoint = server.url })
        assert.are.equal("NetworkError", out.err.code)
        assert.are.equal("maybe", out.err.applied)
      end)

      it("no answer within timeout_ms: Timeout, applied maybe, retry class timeout", function()
        helper.faults(server, { { kind = "delay_ms", op = "ListTables", ms = 1500, count = 1 } })
        local out = call({ endpoint = server.url, opts = { timeout_ms = 300 } })
        assert.are.equal("Timeout", out.err.code)
        assert.are.equal("maybe", out.err.applied)
        assert.are.equal("timeout", out.err.retry_class)
        assert.is_true(out.ms >= 290 and out.ms < 1000, "took " .. out.ms .. " ms")
      end)

      it("lets the client retry a transient failure, which then succeeds", function()
        helper.faults(server, { { kind = "drop_after_forward", op = "ListTables", count = 1 } })
        local out = call({ endpoint = server.url, opts = { max_attempts = 3 } })
        assert.is_true(out.ok, encode(out))
      end)
    end)
  end)
end
