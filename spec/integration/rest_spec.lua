-- The example REST resource (examples/openresty/rest.conf and rest.lua) inside a real nginx,
-- driven with curl: ETags from versions, If-Match and If-None-Match over with_item's
-- expect_version (412 on a stale version, 428 without one), and with_each on nginx's light
-- threads.
local helper = require "helper"
local runner = require "support.nginx.runner"
local ddb = require "ddb"

local decode = ddb.decode_json
local q = runner.q

-- curl: status, headers (lower-case names), body
local function http(method, url, headers, body)
  local cmd = "curl -sS -D - -o - -X " .. method .. " --max-time 30 " .. q(url)
  for k, v in pairs(headers or {}) do cmd = cmd .. " -H " .. q(k .. ": " .. v) end
  if body then cmd = cmd .. " -H 'Content-Type: application/json' --data-binary " .. q(body) end
  local ok, out = runner.sh(cmd)
  assert(ok, out)
  local head, rest = out:match("^(.-)\r\n\r\n(.*)$")
  local status = tonumber(head:match("^HTTP/%S+ (%d+)"))
  local h = {}
  for name, value in head:gmatch("\n([^:\r\n]+):%s*([^\r\n]*)") do h[name:lower()] = value end
  return status, h, rest
end

local function conf()
  local text = runner.read(runner.root .. "/examples/openresty/rest.conf")
  text = runner.set_directive(text, "listen", "127.0.0.1:@PORT1@")
  return runner.set_directive(text, "worker_processes", 2)
end

for _, server in ipairs(helper.servers()) do
  describe("the example REST resource on " .. server.name, function()
    local client, tbl, srv

    setup(function()
      client = helper.client(server)
      tbl = helper.table_name("rest")
      helper.create_table(client, tbl, "pk")
      srv = runner.start{ conf = conf(), env = {
        AWS_REGION = helper.region(), AWS_ENDPOINT_URL_DYNAMODB = server.url,
        AWS_ACCESS_KEY_ID = helper.access_key(), AWS_SECRET_ACCESS_KEY = helper.secret_key(),
        DDB_REST_TABLE = tbl } }
    end)

    teardown(function()
      if srv then srv:stop() end
    end)

    local function url(path) return srv:url(path) end

    it("writes only with a precondition: 428 without one, 201 creating, 412 creating twice",
      function()
        local status, _, body = http("PUT", url("/items/a"), nil, '{"name":"ann"}')
        assert.equal(428, status, body)
        status = http("GET", url("/items/a"))
        assert.equal(404, status)
        local h
        status, h, body = http("PUT", url("/items/a"), { ["If-None-Match"] = "*" },
          '{"name":"ann"}')
        assert.equal(201, status, body)
        assert.equal('"1"', h.etag)
        status = http("PUT", url("/items/a"), { ["If-None-Match"] = "*" }, '{"name":"bob"}')
        assert.equal(412, status)
        local got
        status, h, got = http("GET", url("/items/a"))
        assert.equal(200, status)
        assert.equal('"1"', h.etag)
        assert.same({ name = "ann" }, decode(got))
      end)

    it("replaces and merges at the version the client holds, and refuses a stale one (412)",
      function()
        assert.equal(201, (http("PUT", url("/items/b"), { ["If-None-Match"] = "*" },
          '{"name":"ann","age":1}')))
        local status, h, body = http("PUT", url("/items/b"), { ["If-Match"] = '"1"' },
          '{"name":"ann","age":2}')
        assert.equal(200, status, body)
        assert.equal('"2"', h.etag)
        -- the same If-Match again: stale now; the current ETag comes back, nothing changes
        status, h, body = http("PUT", url("/items/b"), { ["If-Match"] = '"1"' },
          '{"name":"eve"}')
        assert.equal(412, status, body)
        assert.equal('"2"', h.etag)
        assert.equal("VersionMismatch", decode(body).error)
        status, h, body = http("PATCH", url("/items/b"), { ["If-Match"] = '"2"' },
          '{"_remove":["age"],"city":"Oslo"}')
        assert.equal(200, status, body)
        assert.equal('"3"', h.etag)
        assert.same({ name = "ann", city = "Oslo" }, decode(body))
        local raw = client:get_item{ TableName = tbl, Key = { pk = { S = "b" } },
          ConsistentRead = true }
        assert.equal("3", raw.Item.version.N)
      end)

    it("lets exactly one of two clients holding the same ETag write", function()
      assert.equal(201, (http("PUT", url("/items/c"), { ["If-None-Match"] = "*" }, '{"n":0}')))
      local dir = runner.tmpdir("rest")
      local cmds = {}
      for i = 1, 2 do
        cmds[i] = ("curl -sS -o /dev/null -w '%%{http_code}' -X PUT -H 'If-Match: \"1\"' " ..
          "-H 'Content-Type: application/json' --data-binary '{\"n\":%d}' %s > %s/%d &")
          :format(i, q(url("/items/c")), q(dir), i)
      end
      assert(runner.sh(table.concat(cmds, " ") .. " wait"))
      local codes = { runner.read(dir .. "/1"), runner.read(dir .. "/2") }
      table.sort(codes)
      assert.same({ "200", "412" }, codes)
      runner.sh("rm -rf " .. q(dir))
    end)

    it("deletes only at the version held", function()
      assert.equal(201, (http("PUT", url("/items/d"), { ["If-None-Match"] = "*" }, '{"n":0}')))
      assert.equal(412, (http("DELETE", url("/items/d"), { ["If-Match"] = '"7"' })))
      assert.equal(428, (http("DELETE", url("/items/d"))))
      assert.equal(204, (http("DELETE", url("/items/d"), { ["If-Match"] = '"1"' })))
      assert.equal(404, (http("GET", url("/items/d"))))
    end)

    it("writes many items at once with with_each on nginx's light threads", function()
      local status, _, body = http("POST", url("/bulk/many?n=24"))
      assert.equal(200, status, body .. srv:log())
      local doc = decode(body)
      assert.equal("ngx.thread", doc.runner)
      assert.equal(8, doc.concurrency)
      assert.equal(24, doc.ok)
      assert.equal(0, doc.failed)
      for i = 1, 24 do
        local _, _, got = http("GET", url("/items/many" .. i))
        assert.equal(1, decode(got).count)
      end
    end)
  end)
end
