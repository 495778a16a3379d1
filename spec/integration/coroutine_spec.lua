-- The yield-safe design: a transport whose request and sleep yield to a scheduler outside
-- the coroutine, which does the HTTP itself. Client calls and ddb.optimistic increments run
-- interleaved in several coroutines and give the results blocking calls would.
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local helper = require "helper"

local core = ddb.core
local unpack = table.unpack or unpack   -- luacheck: ignore 143
local marshal_item, unmarshal_item = ddb.marshal_item, ddb.unmarshal_item

-- A transport that never touches the network: every request and every sleep is handed, by
-- yielding, to whoever resumed the coroutine.
local function yielding_transport()
  return {
    name = "yielding",
    request = function(_, url, headers, body, timeout_ms)
      return coroutine.yield{ kind = "request", url = url, headers = headers, body = body,
        timeout = timeout_ms }
    end,
    sleep = function(_, ms)
      return coroutine.yield{ kind = "sleep", ms = ms }
    end,
  }
end

local function pack(...) return { n = select("#", ...), ... } end

local function operation(headers)
  for _, line in ipairs(headers) do
    local op = line:match("^X%-Amz%-Target:%s*DynamoDB_20120810%.(%a+)")
    if op then return op end
  end
end

-- Round-robin scheduler: in each round every runnable task runs until it yields; then the
-- requests they yielded are sent one after the other (so tasks interleave request by
-- request) and each task is resumed with its answer. Sleeps park a task until they end.
-- answer(task, req) may replace the real HTTP exchange by returning a packed answer.
local function scheduler(answer)
  local handle = core.curl_new{}
  local s = { tasks = {}, order = {} }

  function s.spawn(name, fn)
    local task = { name = name, co = coroutine.create(fn), requests = 0, sleeps = 0,
      ops = {}, resume = pack() }
    s.tasks[#s.tasks + 1] = task
    return task
  end

  function s.run(timeout_ms)
    local deadline = core.monotonic_ms() + (timeout_ms or 30000)
    while true do
      local live, pending = 0, {}
      for _, task in ipairs(s.tasks) do
        if not task.done then
          live = live + 1
          if not task.wake or core.monotonic_ms() >= task.wake then
            task.wake = nil
            local out = pack(coroutine.resume(task.co, unpack(task.resume, 1, task.resume.n)))
            if not out[1] then
              error(("task %s raised: %s"):format(task.name, tostring(out[2])), 0)
            end
            if coroutine.status(task.co) == "dead" then
              task.done = true
              task.results = pack(unpack(out, 2, out.n))
            elseif type(out[2]) ~= "table" then
              error(("task %s yielded %s, not a transport request"):format(task.name,
                tostring(out[2])), 0)
            elseif out[2].kind == "request" then
              local req = out[2]
              task.requests = task.requests + 1
              local op = operation(req.headers) or "?"
              task.ops[op] = (task.ops[op] or 0) + 1
              pending[#pending + 1] = { task = task, req = req }
            else
              task.sleeps = task.sleeps + 1
              task.wake = core.monotonic_ms() + out[2].ms
              task.resume = pack()
            end
          end
        end
      end
      if live == 0 then return end
      for _, p in ipairs(pending) do
        s.order[#s.order + 1] = p.task.name
        p.task.resume = answer and answer(p.task, p.req) or
          pack(handle:request(p.req.url, p.req.headers, p.req.body, p.req.timeout))
      end
      if #pending == 0 then core.sleep_ms(1) end
      if core.monotonic_ms() > deadline then error("scheduler: tasks did not finish", 0) end
    end
  end

  function s.total(field)
    local n = 0
    for _, task in ipairs(s.tasks) do n = n + task[field] end
    return n
  end

  -- true when some task sent a request between two requests of another task
  function s.interleaved()
    local last = {}
    for i, name in ipairs(s.order) do
      if last[name] and last[name] < i - 1 then return true end
      last[name] = i
    end
    return false
  end

  function s.close() handle:close() end
  return s
end

local function proxy_total(stats)
  local n = 0
  for _, count in pairs(stats.requests) do n = n + count end
  return n
end

for _, server in ipairs(helper.servers()) do
  describe(server.name .. ":", function()
    local tname

    local function client(opts)
      local o = { transport = yielding_transport() }
      for k, v in pairs(opts or {}) do o[k] = v end
      return helper.client(server, o)
    end

    describe("table creation through a yielding transport", function()
      it("yields every DescribeTable and every wait between them until ACTIVE", function()
        helper.reset(server)
        local s = scheduler()
        tname = helper.table_name("coro")
        local task = s.spawn("create", function()
          local c = client()
          assert(c:create_table{ TableName = tname,
            KeySchema = { { AttributeName = "pk", KeyType = "HASH" } },
            AttributeDefinitions = { { AttributeName = "pk", AttributeType = "S" } },
            BillingMode = "PAY_PER_REQUEST" })
          return c:wait_for_table(tname, 30000)
        end)
        s.run()
        s.close()
        assert.equal("ACTIVE", task.results[1].TableStatus)
        assert.equal(1, task.ops.CreateTable)
        -- one wait after every DescribeTable that did not yet see ACTIVE
        assert.equal(task.ops.DescribeTable - 1, task.sleeps)
        assert.equal(task.requests, proxy_total(helper.stats(server)))
      end)
    end)

    describe("client calls in interleaved coroutines", function()
      it("yield at every request and every retry wait, and give each coroutine its results",
        function()
          helper.reset(server)
          -- three failures to retry: whichever coroutines meet them wait by yielding
          helper.faults(server, { { kind = "status_500", op = "UpdateItem", count = 3 } })
          local s = scheduler()
          local tasks = {}
          for i = 1, 3 do
            local pk = ("call#%d"):format(i)
            tasks[i] = s.spawn("t" .. i, function()
              local c = client()
              local infos = {}
              local _, _, info = assert(c:put_item{ TableName = tname,
                Item = marshal_item{ pk = pk, owner = i, n = 0 } })
              infos[#infos + 1] = info
              for _ = 1, 3 do
                local _, _, uinfo = assert(c:update_item{ TableName = tname,
                  Key = marshal_item{ pk = pk }, UpdateExpression = "ADD n :i",
                  ExpressionAttributeValues = marshal_item{ [":i"] = i } })
                infos[#infos + 1] = uinfo
              end
              local got, _, ginfo = assert(c:get_item{ TableName = tname,
                Key = marshal_item{ pk = pk }, ConsistentRead = true })
              infos[#infos + 1] = ginfo
              return unmarshal_item(got.Item), infos
            end)
          end
          s.run()
          s.close()
          local st = helper.stats(server)
          local attempts = 0
          for i, task in ipairs(tasks) do
            assert.same({ pk = ("call#%d"):format(i), owner = i, n = 3 * i }, task.results[1])
            for _, info in ipairs(task.results[2]) do attempts = attempts + info.attempts end
            assert.equal(1, task.ops.PutItem)
            assert.equal(1, task.ops.GetItem)
          end
          -- every request the proxy saw was one a coroutine yielded, attempt for attempt
          assert.equal(proxy_total(st), s.total("requests"))
          assert.equal(attempts, s.total("requests"))
          assert.equal(3, st.faults_fired.status_500)
          assert.equal(3 * 3 + 3, helper.requests(st, "UpdateItem"))
          assert.equal(3, s.total("sleeps"))
          assert.is_true(s.interleaved(), table.concat(s.order, " "))
        end)

      it("turn a transport's nil, 'message' answer into a retried NetworkError", function()
        helper.reset(server)
        local failed = false
        local s = scheduler(function(_, req)
          if not failed and operation(req.headers) == "GetItem" then
            failed = true
            return pack(nil, "closed")   -- what a cosocket says
          end
        end)
        local events = {}
        local task = s.spawn("t", function()
          local c = client{ on_event = function(ev) events[#events + 1] = ev end }
          return c:get_item{ TableName = tname, Key = marshal_item{ pk = "call#1" } }
        end)
        s.run()
        s.close()
        assert.is_table(task.results[1], tostring(task.results[2]))
        assert.equal(2, task.results[3].attempts)
        assert.equal("NetworkError", events[1].code)
        assert.equal(1, task.sleeps)
        assert.equal(1, helper.requests(helper.stats(server), "GetItem"))
      end)
    end)

    describe("ddb.optimistic in interleaved coroutines", function()
      it("never loses an increment when four coroutines update one item", function()
        helper.reset(server)
        local s = scheduler()
        local per_task, ntasks = 5, 4
        local tasks = {}
        for i = 1, ntasks do
          tasks[i] = s.spawn("w" .. i, function()
            local store = assert(optimistic.new{ table = tname, client = client() })
            local conflicts, written = 0, 0
            for _ = 1, per_task do
              local item, err, info = store:with_item({ pk = "counter" }, function(it)
                it = it or { pk = "counter", n = 0 }
                it.n = it.n + 1
                return it
              end, { deadline_ms = 20000, max_attempts = 50 })
              assert(item, tostring(err))
              assert.is_true(info.written)
              conflicts = conflicts + info.conflicts
              written = written + 1
            end
            return written, conflicts
          end)
        end
        s.run(60000)
        s.close()
        assert.equal(proxy_total(helper.stats(server)), s.total("requests"))
        local conflicts = 0
        for _, task in ipairs(tasks) do
          assert.equal(per_task, task.results[1])
          conflicts = conflicts + task.results[2]
        end
        local c = helper.client(server)
        local got = assert(c:get_item{ TableName = tname, Key = marshal_item{ pk = "counter" },
          ConsistentRead = true })
        local item = unmarshal_item(got.Item)
        assert.equal(per_task * ntasks, item.n)
        assert.equal(per_task * ntasks, item.version)
        -- interleaving request by request makes the coroutines collide
        assert.is_true(conflicts > 0, "no conflicts: the coroutines did not interleave")
        assert.is_true(s.interleaved(), table.concat(s.order, " "))
        c:close()
      end)
    end)
  end)
end
