-- examples/openresty/metrics.conf in a real nginx (two workers, one lua_shared_dict) against
-- each local DynamoDB server: counter calls that succeed, one that meets a conflict made on
-- purpose (its write is held by the proxy while another writer changes the item), and one
-- delete whose answer is lost (OutcomeUnknown); then GET /metrics must be valid Prometheus
-- text exposition and count exactly those calls, conflicts and outcomes.
local helper = require "helper"
local runner = require "support.nginx.runner"
local ddb = require "ddb"
local core = require "ddb.core"
local optimistic = require "ddb.optimistic"

local decode = ddb.decode_json
local q = runner.q

local function start(server, table_name)
  local text = runner.read(runner.root .. "/examples/openresty/metrics.conf")
  text = runner.set_directive(text, "listen", "127.0.0.1:@PORT1@")
  text = runner.set_directive(text, "worker_processes", 2)
  return runner.start{ conf = text, env = {
    AWS_REGION = helper.region(), AWS_ENDPOINT_URL_DYNAMODB = server.url,
    AWS_ACCESS_KEY_ID = helper.access_key(), AWS_SECRET_ACCESS_KEY = helper.secret_key(),
    DDB_COUNTER_TABLE = table_name,
  } }
end

-- GET with curl: status, content type, body.
local function scrape(srv)
  local ok, out = runner.sh("curl -sS --max-time 30 -D - -o - " .. q(srv:url("/metrics")))
  assert(ok, out)
  local head, body = out:match("^(.-)\r\n\r\n(.*)$")
  assert(head, out)
  return tonumber(head:match("^HTTP/%S+ (%d+)")), head:lower():match("\ncontent%-type: ([^\r\n]+)"),
    body
end

-- The label pairs of a sample, k="v" separated by commas, values with \\, \" and \n escapes.
local function labels_of(text, line)
  local labels, pos = {}, 1
  while pos <= #text do
    local k, after = text:match('^([%a_][%w_]*)="()', pos)
    assert(k, "bad labels in: " .. line)
    local value, i = {}, after
    while true do
      local c = text:sub(i, i)
      assert(c ~= "" and c ~= "\n", "unterminated label value in: " .. line)
      if c == '"' then break end
      if c == "\\" then
        local e = text:sub(i + 1, i + 1)
        local map = { ["\\"] = "\\", ['"'] = '"', n = "\n" }
        assert(map[e], "bad escape in: " .. line)
        value[#value + 1] = map[e]
        i = i + 2
      else
        value[#value + 1] = c
        i = i + 1
      end
    end
    assert.is_nil(labels[k], "label " .. k .. " twice in: " .. line)
    labels[k] = table.concat(value)
    pos = i + 1
    if text:sub(pos, pos) == "," then pos = pos + 1 end
  end
  return labels
end

-- A strict reader of the text format (version 0.0.4) as far as metrics.lua uses it: every
-- line a comment (# HELP / # TYPE) or a sample; per family one HELP and one TYPE before its
-- samples, and its samples together. Returns families: name -> { type, help, samples =
-- { { name, labels = {k = v}, value } } }.
local function parse(text)
  assert.are.equal("\n", text:sub(-1), "the exposition ends with a newline")
  local families, order, current = {}, {}, nil
  local function family_of(sample)
    for _, suffix in ipairs{ "_bucket", "_sum", "_count" } do
      local base = sample:match("^(.-)" .. suffix .. "$")
      if base and families[base] and families[base].type == "histogram" then return base end
    end
    return sample
  end
  for line in text:gmatch("([^\n]*)\n") do
    local kind, name, rest = line:match("^# (%u+) ([%a_:][%w_:]*) (.+)$")
    if kind then
      assert.is_true(kind == "HELP" or kind == "TYPE", line)
      local f = families[name]
      if not f then
        f = { name = name, samples = {} }
        families[name] = f
        order[#order + 1] = name
      end
      assert.are.equal(0, #f.samples, "comment after samples: " .. line)
      if kind == "HELP" then
        assert.is_nil(f.help, "second HELP: " .. line)
        f.help = rest
      else
        assert.is_nil(f.type, "second TYPE: " .. line)
        assert.truthy(({ counter = 1, gauge = 1, histogram = 1, summary = 1, untyped = 1 })[rest],
          line)
        f.type = rest
      end
      current = f
    else
      local sname, labels, value = line:match("^([%a_:][%w_:]*){(.*)} (%S+)$")
      assert(sname, "not a sample line: " .. line)
      local fname = family_of(sname)
      assert.are.equal(current and current.name, fname, "samples of " .. fname ..
        " are not together under their HELP/TYPE: " .. line)
      local parsed = labels_of(labels, line)
      local n = tonumber(value) or (value == "+Inf" and math.huge) or nil
      assert(n, "bad value in: " .. line)
      current.samples[#current.samples + 1] = { name = sname, labels = parsed, value = n }
    end
  end
  return families, order
end

local function find(families, family, sample, labels)
  local f = families[family]
  if not f then return nil end
  for _, s in ipairs(f.samples) do
    if s.name == sample then
      local all = true
      for k, v in pairs(labels) do
        if s.labels[k] ~= v then all = false end
      end
      if all then return s.value end
    end
  end
  return nil
end

for _, server in ipairs(helper.servers()) do
  describe("examples/openresty/metrics.conf on " .. server.name, function()
    local client, table_name, srv

    setup(function()
      client = helper.client(server)
      table_name = helper.table_name("metrics")
      helper.create_table(client, table_name, "pk")
      srv = start(server, table_name)
    end)

    teardown(function()
      if srv then srv:stop() end
      if client then client:delete_table({ TableName = table_name }) end
    end)

    after_each(function() helper.reset(server) end)

    it("counts calls, conflicts and OutcomeUnknown per table, and exposes them in " ..
      "Prometheus' text format", function()
      local conflicts = 0
      local function post(name)
        local status, body = runner.http("POST", srv:url("/counter/" .. name))
        assert.are.equal(200, status, tostring(body) .. "\n" .. srv:log())
        local doc = decode(body)
        conflicts = conflicts + doc.conflicts
        return doc
      end

      -- 1. five calls that succeed
      for i = 1, 5 do assert.are.equal(i, post("m1").count) end

      -- 2. one conflict: the service's write is held by the proxy while the item changes
      helper.faults(server, { { kind = "delay_ms", op = "UpdateItem", ms = 1500, count = 1 } })
      local pending = assert(io.popen("curl -sS --max-time 30 -X POST " ..
        q(srv:url("/counter/m2"))))
      local deadline = core.monotonic_ms() + 20000
      while (helper.stats(server).faults_fired.delay_ms or 0) < 1 do
        assert.is_true(core.monotonic_ms() < deadline, "the service's write never came")
        core.sleep_ms(20)
      end
      -- the other writer goes straight to the server, past the held write
      local other = assert(optimistic.new{ table = table_name, key = { "pk" },
        client = helper.client(server, { endpoint = server.direct }) })
      assert(other:with_item({ pk = "m2" }, function() return { count = 10 } end))
      local held = decode(pending:read("*a"))
      pending:close()
      assert.are.equal(11, held.count, "the held write ran again on the other writer's item")
      assert.are.equal(1, held.conflicts)
      conflicts = conflicts + held.conflicts

      -- 3. one OutcomeUnknown: a delete whose answer is lost leaves no proof either way
      post("m3")
      helper.faults(server, { { kind = "drop_after_forward", op = "DeleteItem", count = 1 } })
      local status, body = runner.http("DELETE", srv:url("/counter/m3"))
      assert.are.equal(502, status, body)
      assert.are.equal("OutcomeUnknown", decode(body).error)
      assert.are.equal("maybe", decode(body).applied)

      local code, ctype, text = scrape(srv)
      assert.are.equal(200, code, text)
      assert.are.equal("text/plain; version=0.0.4", ctype)
      local families = parse(text)
      local base = { table = table_name, op = "with_item" }
      local function value(family, sample, extra)
        local labels = {}
        for k, v in pairs(base) do labels[k] = v end
        for k, v in pairs(extra or {}) do labels[k] = v end
        return find(families, family, sample or family, labels)
      end
      assert.are.equal("counter", families.ddb_calls_total.type)
      assert.are.equal("histogram", families.ddb_call_duration_seconds.type)
      -- m1 five times, m2 once, m3's create once; m3's delete is the unknown one
      assert.are.equal(7, value("ddb_calls_total", nil, { outcome = "ok" }))
      assert.are.equal(1, value("ddb_calls_total", nil, { outcome = "OutcomeUnknown" }))
      assert.are.equal(1, value("ddb_outcome_unknown_total"))
      assert.are.equal(conflicts, value("ddb_conflicts_total"))
      assert.are.equal(1, conflicts)

      -- the histogram: cumulative buckets, +Inf = _count = the calls; the held call took
      -- over a second
      local count = value("ddb_call_duration_seconds", "ddb_call_duration_seconds_count")
      assert.are.equal(8, count)
      local previous = 0
      for _, le in ipairs{ "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
          "5", "10", "+Inf" } do
        local b = value("ddb_call_duration_seconds", "ddb_call_duration_seconds_bucket",
          { le = le })
        assert(b, "no bucket le=" .. le .. " in:\n" .. text)
        assert.is_true(b >= previous, "bucket le=" .. le .. " is below the one before it")
        previous = b
        if le == "1" then assert.is_true(b <= count - 1, text) end
      end
      assert.are.equal(count, previous)
      assert.is_true(value("ddb_call_duration_seconds", "ddb_call_duration_seconds_sum") >= 1.5)

      -- requests, per operation of this table
      local gets = find(families, "ddb_requests_total", "ddb_requests_total",
        { table = table_name, op = "GetItem", code = "ok" })
      assert.is_true(gets >= 8, text)
      assert.is_true(find(families, "ddb_requests_total", "ddb_requests_total",
        { table = table_name, op = "UpdateItem", code = "ok" }) >= 7, text)
      assert.is_true(find(families, "ddb_requests_total", "ddb_requests_total",
        { table = table_name, op = "UpdateItem", code = "ConditionalCheckFailedException" }) >= 1,
        text)
      assert.are.equal("counter", families.ddb_consumed_capacity_total.type)
      -- the hook never failed and the dict never filled up
      assert.is_nil(srv:log():find("on_event hook raised", 1, true), srv:log())
      assert.is_nil(srv:log():find("metrics: cannot count", 1, true), srv:log())
    end)
  end)
end
