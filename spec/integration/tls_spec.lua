-- HTTPS with verification on, for real: nginx terminates TLS in front of each local
-- DynamoDB server (its signature-checking proxy) with certificates from a throwaway CA
-- (spec/support/nginx/gen-certs.sh). Both transports succeed when told to trust that CA,
-- and both refuse, with TLSVerifyError, a certificate from another CA and one for another
-- host name. The libcurl transport and ddb.scheduler run here; the cosocket one inside nginx.
local helper = require "helper"
local runner = require "support.nginx.runner"
local example = require "support.nginx.example"
local ddb = require "ddb"
local scheduler = require "ddb.scheduler"

local encode, decode = ddb.encode_json, ddb.decode_json
local q = runner.q

local GOOD, OTHER_CA, WRONG_HOST = 2, 3, 4   -- ports of tls.conf's servers

local certs

setup(function()
  certs = runner.tmpdir("pki")
  local ok, out = runner.sh("sh " .. q(runner.support_dir .. "/gen-certs.sh") .. " " .. q(certs))
  assert(ok, "gen-certs.sh failed: " .. out)
end)

teardown(function()
  if certs then runner.sh("rm -rf " .. q(certs)) end
end)

local function assert_verify_error(err, what)
  assert.is_table(err, what .. " was accepted")
  assert.are.equal("TLSVerifyError", err.code, tostring(err.message))
  assert.are.equal("no", err.applied)
  assert.are.equal("none", err.retry_class)
  assert.are.equal(1, err.attempts)
end

-- A client in a separate interpreter whose environment sets AWS_CA_BUNDLE; returns what
-- its list_tables returned ("ok" or the error code).
local function list_tables_with_env_bundle(endpoint, bundle)
  local dir = runner.tmpdir("envca")
  local script = dir .. "/probe.lua"
  local f = assert(io.open(script, "w"))
  f:write(("package.path = %q\npackage.cpath = %q\n"):format(
    runner.root .. "/lua/?.lua;" .. runner.root .. "/lua/?/init.lua;" .. package.path,
    package.cpath))
  f:write([[
local ddb = require "ddb"
local c = assert(ddb.new{ region = arg[1], endpoint = arg[2], transport = "curl",
  credentials = { access_key_id = arg[3], secret_access_key = arg[4] }, max_attempts = 1 })
local res, err = c:list_tables({})
io.write(res and "ok" or tostring(err.code) .. ": " .. tostring(err.message))
]])
  f:close()
  local ok, out = runner.sh("AWS_CA_BUNDLE=" .. q(bundle) .. " " .. q(helper.lua_bin()) .. " " ..
    q(script) .. " " .. q(helper.region()) .. " " .. q(endpoint) .. " " ..
    q(helper.access_key()) .. " " .. q(helper.secret_key()))
  runner.sh("rm -rf " .. q(dir))
  assert(ok, out)
  return out
end

for _, server in ipairs(helper.servers()) do
  describe("TLS in front of " .. server.name, function()
    local srv

    local function https(which) return "https://localhost:" .. srv.ports[which] end

    setup(function()
      srv = runner.start{ conf = runner.read(runner.support_dir .. "/tls.conf"), ports = 4,
        vars = { CERTS = certs, UPSTREAM = (server.url:gsub("/$", "")), REGION = helper.region(),
          ACCESS_KEY = helper.access_key(), SECRET_KEY = helper.secret_key() } }
    end)

    teardown(function()
      if srv then srv:stop() end
    end)

    describe("with the libcurl transport", function()
      local function curl_client(which, opts)
        local o = { endpoint = https(which), transport = "curl", max_attempts = 3 }
        for k, v in pairs(opts or {}) do o[k] = v end
        return helper.client(server, o)
      end

      it("talks HTTPS with verification on, trusting the test CA given as ca_bundle", function()
        local c = curl_client(GOOD, { ca_bundle = certs .. "/ca.pem" })
        local res, err = c:list_tables({})
        assert.is_table(res, tostring(err))
        c:close()
      end)

      it("trusts the CA named by AWS_CA_BUNDLE", function()
        assert.are.equal("ok", list_tables_with_env_bundle(https(GOOD), certs .. "/ca.pem"))
        assert.truthy(list_tables_with_env_bundle(https(OTHER_CA), certs .. "/ca.pem")
          :find("^TLSVerifyError"))
      end)

      it("refuses a certificate from another CA: TLSVerifyError, not retried", function()
        local c = curl_client(OTHER_CA, { ca_bundle = certs .. "/ca.pem" })
        local res, err = c:list_tables({})
        assert.is_nil(res)
        assert_verify_error(err, "a certificate from an untrusted CA")
        -- what failed and what to do, then libcurl's (OpenSSL's) own text
        assert.matches("^the certificate of localhost:%d+ is not trusted %(certificate " ..
          "verify failed%): give the CA that signed it with AWS_CA_BUNDLE or the ca_bundle " ..
          "option %(libcurl: .*certificate.*%)$", err.message)
      end)

      it("refuses a certificate for another host name: TLSVerifyError", function()
        local c = curl_client(WRONG_HOST, { ca_bundle = certs .. "/ca.pem" })
        local res, err = c:list_tables({})
        assert.is_nil(res)
        assert_verify_error(err, "a certificate for other.test")
        assert.matches("^the certificate of localhost:%d+ is for another host name " ..
          "%(hostname check failed%): .* %(libcurl: .+%)$", err.message)
      end)

      it("verifies by default: the usual trust store (or AWS_CA_BUNDLE as set) does not " ..
        "know the test CA", function()
        local c = curl_client(GOOD)
        local res, err = c:list_tables({})
        assert.is_nil(res)
        assert_verify_error(err, "a certificate from the test CA, not trusted")
      end)
    end)

    describe("with ddb.scheduler (its own HTTP/1.1 over libcurl's TLS)", function()
      -- n tasks, each listing the tables twice; the errors, and the scheduler's stats
      local function run(which, n, opts)
        local sched = scheduler.new(opts)
        local c = helper.client(server, { endpoint = https(which), transport = sched:transport(),
          max_attempts = 3 })
        local errs = {}
        for _ = 1, n do
          sched:spawn(function()
            for _ = 1, 2 do
              local res, err = c:list_tables({})
              if not res then errs[#errs + 1] = err end
            end
          end)
        end
        sched:run()
        local stats = sched:stats()
        sched:close()
        return errs, stats
      end

      it("talks HTTPS with verification on, calls in flight on kept TLS connections", function()
        local errs, stats = run(GOOD, 4, { ca_bundle = certs .. "/ca.pem" })
        assert.same({}, errs)
        assert.equal(4, stats.connections)
      end)

      it("refuses a certificate from another CA, and one for another host name", function()
        for _, which in ipairs({ OTHER_CA, WRONG_HOST }) do
          local errs = run(which, 1, { ca_bundle = certs .. "/ca.pem" })
          assert.equal(2, #errs)
          assert_verify_error(errs[1], "port " .. which)
        end
      end)
    end)

    describe("with the cosocket transport inside nginx (lua_ssl_trusted_certificate)", function()
      local function call(which)
        local status, body = runner.http("POST", srv:url("/call"), encode({
          endpoint = https(which), opts = { max_attempts = 3 } }))
        assert.are.equal(200, status, tostring(body) .. "\n" .. srv:log())
        return decode(body)
      end

      it("talks HTTPS with verification on and keeps the TLS connection alive", function()
        local first = call(GOOD)
        assert.is_true(first.ok, encode(first))
        assert.are.equal("ngx", first.transport)
        local second = call(GOOD)
        assert.is_true(second.ok, encode(second))
        assert.are.equal(1, second.stats.reused, "the second call found the connection pooled")
      end)

      it("refuses a certificate from another CA: TLSVerifyError, not retried", function()
        local out = call(OTHER_CA)
        assert.is_false(out.ok)
        assert_verify_error(out.err, "a certificate from an untrusted CA")
        -- OpenSSL's verify result, e.g. "21: unable to verify the first certificate", after
        -- what failed and what to do
        assert.truthy(out.err.message:find("not accepted: %d+: "), out.err.message)
        assert.matches("^the certificate of localhost:%d+ is not trusted %(certificate " ..
          "verify failed%): give the CA that signed it with lua_ssl_trusted_certificate in " ..
          "nginx.conf %(nginx: ", out.err.message)
      end)

      it("refuses a certificate for another host name: TLSVerifyError", function()
        local out = call(WRONG_HOST)
        assert.is_false(out.ok)
        assert_verify_error(out.err, "a certificate for other.test")
        assert.truthy(out.err.message:find("host mismatch", 1, true), out.err.message)
        assert.matches("^the certificate of localhost:%d+ is for another host name",
          out.err.message)
      end)
    end)

    it("serves the example counter over an HTTPS upstream, every increment once", function()
      local client = helper.client(server)
      local table_name = helper.table_name("tlscounter")
      helper.create_table(client, table_name, "pk")
      local ex = example.start(server, table_name, 2, { endpoint = https(GOOD),
        trust = certs .. "/ca.pem" })
      finally(function()
        ex:stop()
        client:delete_table({ TableName = table_name })
      end)
      local successes = example.assert_exactly_once(ex, 4, 10, 8)
      assert.is_true(successes >= 38, successes .. " of 40 succeeded")
    end)
  end)
end
