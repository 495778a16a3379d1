-- ddb.scheduler: many with_item calls in flight from one Lua state, against both local
-- servers (through the SigV4-checking proxy): every increment lands exactly once, on
-- distinct items and on one hot item, and the requests really are in flight together. Then,
-- against spec/support/wire_server.py (whose answers name their connection), the pool of
-- kept connections under the calls: reuse, the max_connections cap, a call that waits for
-- a connection past its deadline, answers to the right task whatever their framing.
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local scheduler = require "ddb.scheduler"
local helper = require "helper"
local lfs = require "lfs"

local core = ddb.core

local function pack(...) return { n = select("#", ...), ... } end

for _, server in ipairs(helper.servers()) do
  describe("ddb.scheduler on " .. server.name, function()
    local client, table_name

    setup(function()
      client = helper.client(server)
      table_name = helper.table_name("sched")
      helper.create_table(client, table_name, "pk")
    end)

    after_each(function() helper.reset(server) end)

    teardown(function()
      if client then client:delete_table({ TableName = table_name }) end
    end)

    local function store_on(sched, opts)
      local o = { table = table_name, key = { "pk" }, region = helper.region(),
        endpoint = server.url, credentials = helper.credentials(), transport = sched:transport(),
        max_attempts = 100, deadline_ms = 60000 }
      for k, v in pairs(opts or {}) do o[k] = v end
      return assert(optimistic.new(o))
    end

    local function count_of(pk)
      local got = assert(client:get_item{ TableName = table_name, Key = ddb.marshal_item{ pk = pk },
        ConsistentRead = true })
      return got.Item and tonumber(got.Item.n.N) or 0
    end

    local function increment(item, pk)
      item = item or { pk = pk, n = 0 }
      item.n = item.n + 1
      return item
    end

    it("applies 50 concurrent increments of 50 distinct items exactly once each", function()
      local sched = scheduler.new()
      finally(function() sched:close() end)
      local store = store_on(sched)
      local most, results = 0, {}
      for i = 1, 50 do
        sched:spawn(function()
          local pk = "distinct#" .. i
          local item, err, info = store:with_item({ pk = pk }, function(it) return increment(it, pk) end)
          assert(item, tostring(err))
          results[#results + 1] = info
          most = math.max(most, sched:pending())
        end)
      end
      assert.is_true(sched:run())
      assert.are.equal(50, #results)
      for i = 1, 50 do assert.are.equal(1, count_of("distinct#" .. i)) end
      -- the requests were in flight together, not one after the other
      assert.is_true(most > 10, "at most " .. most .. " requests were in flight at once")
    end)

    it("applies 50 concurrent increments of one hot item exactly once each", function()
      local sched = scheduler.new()
      finally(function() sched:close() end)
      local store = store_on(sched, { backoff_base_ms = 2, backoff_cap_ms = 50 })
      local ok, conflicts = 0, 0
      for _ = 1, 50 do
        sched:spawn(function()
          local item, err, info = store:with_item({ pk = "hot" }, function(it)
            return increment(it, "hot")
          end)
          assert(item, tostring(err))
          ok = ok + 1
          conflicts = conflicts + info.conflicts
        end)
      end
      assert.is_true(sched:run())
      assert.are.equal(50, ok)
      assert.are.equal(50, count_of("hot"))
      -- 50 writers on one version: most of them lost a race at least once
      assert.is_true(conflicts > 0)
    end)

    it("runs plain client calls side by side and returns their answers to the right task",
      function()
        local sched = scheduler.new()
        finally(function() sched:close() end)
        local c = helper.client(server, { transport = sched:transport() })
        local got = {}
        for i = 1, 20 do
          sched:spawn(function()
            assert(c:put_item{ TableName = table_name,
              Item = ddb.marshal_item{ pk = "plain#" .. i, v = i } })
            local res = assert(c:get_item{ TableName = table_name,
              Key = ddb.marshal_item{ pk = "plain#" .. i }, ConsistentRead = true })
            got[i] = tonumber(res.Item.v.N)
          end)
        end
        sched:run()
        for i = 1, 20 do assert.are.equal(i, got[i]) end
      end)
  end)
end

describe("ddb.scheduler", function()
  it("parks only the sleeping task", function()
    local sched = scheduler.new()
    finally(function() sched:close() end)
    local t = sched:transport()
    local order = {}
    sched:spawn(function()
      t:sleep(150)
      order[#order + 1] = "slow"
    end)
    sched:spawn(function()
      t:sleep(10)
      order[#order + 1] = "quick"
    end)
    local t0 = core.monotonic_ms()
    sched:run()
    assert.are.same({ "quick", "slow" }, order)
    assert.is_true(core.monotonic_ms() - t0 >= 150)
  end)

  it("reports a refused connection as ConnectError, provably not applied", function()
    local sched = scheduler.new{ connect_timeout_ms = 500 }
    finally(function() sched:close() end)
    local t = sched:transport()
    local status, err
    sched:spawn(function()
      status, err = t:request(helper.closed_url(), { "Content-Type: application/json" }, "{}", 1000)
    end)
    sched:run()
    assert.is_nil(status)
    assert.are.equal("ConnectError", err.code)
    assert.are.equal("no", err.applied)
    assert.is_true(err.retryable)
  end)

  it("raises when its transport is used outside one of its tasks", function()
    local sched = scheduler.new()
    finally(function() sched:close() end)
    local t = sched:transport()
    assert.has_error(function() t:request("http://127.0.0.1:1/", {}, "{}", 100) end,
      "a request on the scheduler's transport must run inside a task of this scheduler " ..
      "(sched:spawn)")
  end)

  it("stops run() with the error of a task that raised", function()
    local sched = scheduler.new()
    finally(function() sched:close() end)
    sched:spawn(function() error("boom", 0) end)
    local ok, err = pcall(sched.run, sched)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("boom", 1, true))
  end)
end)

describe("ddb.scheduler's connections", function()
  local server, signer

  setup(function()
    server = helper.python_server("wire_server.py")
    signer = core.signer_new{ access_key = "AKIDWIRE", secret_key = "wire-secret",
      region = "us-east-1", host = server.url:match("//(.*)$") }
  end)

  teardown(function() server.stop() end)

  -- n tasks, each making the calls ops(i) names one after another; returns every result
  -- as { task, op, res, err } and the most connections open at once.
  local function run_tasks(sched, n, ops, timeout_ms)
    local t, out, most = sched:transport(), {}, 0
    for i = 1, n do
      sched:spawn(function()
        for _, op in ipairs(ops(i)) do
          local res, err = t:call(signer, server.url, op, "{}", timeout_ms or 5000)
          out[#out + 1] = { task = i, op = op, res = res, err = err }
          most = math.max(most, sched:stats().open)
        end
      end)
    end
    assert.is_true(sched:run())
    return out, most
  end

  it("keeps one connection per call in flight, for call after call", function()
    local sched = scheduler.new()
    finally(function() sched:close() end)
    local out = run_tasks(sched, 8, function() return { "Plain", "Plain", "Plain", "Plain" } end)
    assert.equal(32, #out)
    local conns = {}
    for _, r in ipairs(out) do
      assert(r.res, tostring(r.err and r.err.message))
      conns[r.res.Conn] = true
    end
    assert.equal(8, sched:stats().connections)
    local distinct = 0
    for _ in pairs(conns) do distinct = distinct + 1 end
    assert.equal(8, distinct)
  end)

  it("gives each task its own answer, whatever the framing of the others", function()
    local sched = scheduler.new()
    finally(function() sched:close() end)
    local kinds = { "Plain", "Chunked", "Drip", "Continue", "Close", "NoLength", "BigChunked" }
    local out = run_tasks(sched, 14, function(i)
      local k = kinds[(i - 1) % #kinds + 1]
      return { k, "Plain", k }
    end)
    assert.equal(42, #out)
    for _, r in ipairs(out) do
      assert(r.res, tostring(r.err and r.err.message))
      assert.equal(r.op, r.res.Op)
    end
  end)

  it("holds max_connections: the calls beyond it wait for a connection", function()
    local sched = scheduler.new{ max_connections = 2 }
    finally(function() sched:close() end)
    local out, most = run_tasks(sched, 10, function() return { "Drip", "Plain" } end)
    assert.equal(20, #out)
    for _, r in ipairs(out) do assert(r.res, tostring(r.err and r.err.message)) end
    assert.is_true(most <= 2, most .. " connections open at once")
    assert.equal(2, sched:stats().connections)
  end)

  it("ends a call still waiting for a connection at its deadline: Timeout, not applied",
    function()
      local sched = scheduler.new{ max_connections = 1 }
      finally(function() sched:close() end)
      local t = sched:transport()
      local slow, quick
      sched:spawn(function() slow = pack(t:call(signer, server.url, "Slow", "{}", 5000)) end)
      sched:spawn(function() quick = pack(t:call(signer, server.url, "Plain", "{}", 300)) end)
      local t0 = core.monotonic_ms()
      sched:run()
      assert.is_table(slow[1], "the slow call failed")
      assert.is_nil(quick[1])
      local err = quick[2]
      assert.same({ "Timeout", "no", "timeout" }, { err.code, err.applied, err.retry_class })
      assert.matches("waiting for a connection", err.message)
      assert.is_true(core.monotonic_ms() - t0 >= 1400)
    end)

  it("replaces a connection that failed and goes on with the others", function()
    local sched = scheduler.new()
    finally(function() sched:close() end)
    local out = run_tasks(sched, 4, function(i)
      return i == 1 and { "Plain", "Dropped", "Plain" } or { "Plain", "Plain", "Plain" }
    end)
    local failed = 0
    for _, r in ipairs(out) do
      if r.op == "Dropped" then
        assert.is_nil(r.res)
        assert.same({ "NetworkError", "maybe" }, { r.err.code, r.err.applied })
        failed = failed + 1
      else
        assert(r.res, tostring(r.err and r.err.message))
      end
    end
    assert.equal(1, failed)
    -- four in flight open four; the dropped one is replaced by a new connection, or its
    -- task's next call takes another task's connection left idle between two calls
    local made = sched:stats().connections
    assert.is_true(made == 4 or made == 5, made .. " connections for 4 calls in flight")
  end)

  it("replaces a connection the server closed while idle, before anything is sent", function()
    local sched = scheduler.new()
    finally(function() sched:close() end)
    local t = sched:transport()
    local first, second, busy
    -- the other task keeps a call in flight meanwhile (1.5 s), so that the wait sees the close
    sched:spawn(function()
      first = pack(t:call(signer, server.url, "IdleClose", "{}", 5000))
      t:sleep(400)
      second = pack(t:call(signer, server.url, "Plain", "{}", 5000))
    end)
    sched:spawn(function()
      busy = pack(t:call(signer, server.url, "Slow", "{}", 5000))
    end)
    sched:run()
    assert(first[1], tostring(first[2] and first[2].message))
    assert(second[1], tostring(second[2] and second[2].message))
    assert.are_not.equal(first[1].Conn, second[1].Conn)
    assert(busy[1], tostring(busy[2] and busy[2].message))
  end)

  -- a wait of the caller's that does not yield: the scheduler sees nothing meanwhile
  local function spin(ms)
    local t0 = core.monotonic_ms()
    while core.monotonic_ms() - t0 < ms do end
  end

  -- IdleClose: only the check of a kept connection before its next call can see the close;
  -- Trailing: the bytes come with the answer (the connection is not kept) or just after it
  -- (the check sees them)
  for _, case in ipairs({ { "IdleClose", "closed while idle" },
    { "Trailing", "wrote more on than it was asked for" } }) do
    it("replaces a connection the server " .. case[2] .. ", with no wait in between",
      function()
      local sched = scheduler.new()
      finally(function() sched:close() end)
      local t = sched:transport()
      local first, second
      sched:spawn(function()
        first = pack(t:call(signer, server.url, case[1], "{}", 5000))
        spin(300)   -- the server's close (100 ms on) or its bytes arrive meanwhile
        second = pack(t:call(signer, server.url, "Plain", "{}", 5000))
      end)
      assert.is_true(sched:run())
      assert(first[1], tostring(first[2] and first[2].message))
      assert(second[1], tostring(second[2] and second[2].message))
      assert.are_not.equal(first[1].Conn, second[1].Conn)
      assert.equal(2, sched:stats().connections)
    end)
  end

  -- the descriptors this process has open now (garbage holding some collected first), read
  -- in-process: a child's `ls` could list the write end of its own pipe, which the parent
  -- closes only after the child has started (seen once in CI, on a loaded machine)
  local function open_fds()
    collectgarbage()
    collectgarbage()
    local n = 0
    for _ in lfs.dir("/proc/self/fd") do n = n + 1 end
    return n
  end

  it("closes every socket it made, whoever ended the connection", function()
    local before = open_fds()
    local sched = scheduler.new()
    local out = run_tasks(sched, 6, function(i)
      return ({ { "Plain", "Close", "Plain" }, { "IdleClose", "Plain" }, { "Dropped", "Plain" },
        { "Trailing", "Plain" }, { "Garbage", "Plain" }, { "Plain", "Plain" } })[i]
    end)
    assert.equal(13, #out)
    local made = sched:stats().connections
    assert.is_true(made >= 6, made .. " connections")
    assert.is_true(open_fds() > before, "no connection kept")
    sched:close()
    assert.equal(before, open_fds())
  end)

  it("waits on its own connections and on libcurl's transfers together", function()
    local sched = scheduler.new()
    finally(function() sched:close() end)
    local t, out = sched:transport(), {}
    for i = 1, 8 do
      -- a URL with a path is one of libcurl's own transfers; without, the pool's
      local url = i % 2 == 0 and server.url or server.url .. "/transfer"
      sched:spawn(function()
        for _, op in ipairs({ "Drip", "Plain", "Chunked" }) do
          local r = pack(t:call(signer, url, op, "{}", 5000))   -- before #out: it yields
          out[#out + 1] = { op = op, r }
        end
      end)
    end
    assert.is_true(sched:run())
    assert.equal(24, #out)
    for _, r in ipairs(out) do
      local res, err = r[1][1], r[1][2]
      assert(res, tostring(err and err.message))
      assert.equal(r.op, res.Op)
    end
  end)
end)
