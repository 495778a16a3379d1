-- ddb.credentials against real servers on loopback: moto's STS (AssumeRole,
-- AssumeRoleWithWebIdentity) behind spec/support/metadata_server.py, which checks every
-- AssumeRole signature with botocore, and that server's instance-metadata (IMDSv2) and
-- container endpoints, which follow their documented protocols. The server is started here
-- on a free port and stopped at the end.
local helper = require "helper"
local credentials = require "ddb.credentials"
local core = require "ddb.core"
local ddb = require "ddb"

-- GET and PUT (the metadata endpoints) need the method parameter of the curl transport.
local METHODS = core.curl_new{}.supports_methods == true
local it_methods = METHODS and it or function(name)
  pending(name .. " (needs the curl transport's method parameter, csrc/transport_curl.c)")
end

local q = helper.shell_quote

local tmpdir = helper.tmpdir

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- Everything the specs saw that could carry a secret (errors, log lines, what tostring
-- shows), checked at the end against every secret issued.
local texts, all_secrets = {}, {}
local function keep(...)
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if v ~= nil then
      texts[#texts + 1] = tostring(v)
      -- an error's every field; a credentials object holds its secrets, so only its tostring
      if type(v) == "table" and v.code then
        for _, s in ipairs(helper.strings(v)) do texts[#texts + 1] = s end
      end
    end
  end
  return ...
end

local server = {}

local function start_server()
  local started = helper.python_server("metadata_server.py", ("--sts-backend %s --cred %s"):format(
    q(helper.servers()[1].direct), q(helper.access_key() .. ":" .. helper.secret_key())))
  server.url, server.pid, server.dir = started.url, started.pid, started.dir
  server.http = core.curl_new{}
end

local function stop_server()
  if server.pid then os.execute("kill " .. server.pid .. " 2>/dev/null") end
  if server.http then server.http:close() end
  server = {}
end

-- Sends a control document; returns the server's counters, issued credentials and views.
local function control(doc)
  local status, _, body = server.http:request(server.url .. "/__control",
    { "Content-Type: application/json" }, core.encode(doc or {}), 10000)
  assert(status == 200, "control failed: " .. tostring(status) .. " " .. tostring(body))
  return core.decode(body)
end

local function stats() return control({}) end

-- An environment of exactly these variables, isolated from the machine's.
local HOME = tmpdir()
local function env_of(vars)
  local t = { HOME = HOME, AWS_EC2_METADATA_DISABLED = "true" }
  for k, v in pairs(vars or {}) do t[k] = v end
  return function(name)
    local v = t[name]
    if v == false then return nil end
    return v
  end
end

local logs
local function provider(vars, opts)
  opts = opts or {}
  opts.getenv = env_of(vars)
  opts.region = opts.region or helper.region()
  opts.retry_sleep_ms = opts.retry_sleep_ms or 20
  opts.log = function(level, message) logs[#logs + 1] = { level = level, message = message } end
  return keep(credentials.new(opts))
end

local function get(p, ...)
  return keep(p:get(...))
end

-- Every secret the server has issued (and the test's own), for the leak checks.
local function issued_secrets(st)
  local out = { helper.secret_key() }
  for _, c in pairs(st.issued) do
    out[#out + 1] = c.SecretAccessKey
    out[#out + 1] = c.Token or c.SessionToken
  end
  return out
end

local function assert_no_secret(secrets, list)
  for _, text in ipairs(list) do
    for _, s in ipairs(secrets) do
      assert(not text:find(s, 1, true), ("a secret appears in %q"):format(text))
    end
  end
end

describe("credential providers against real endpoints", function()
  local dir

  setup(start_server)
  teardown(stop_server)

  before_each(function()
    control({ reset = true })
    logs = {}
    dir = tmpdir()
  end)

  after_each(function()
    for _, l in ipairs(logs) do keep(l.message) end
    for _, secret in ipairs(issued_secrets(stats())) do all_secrets[#all_secrets + 1] = secret end
  end)

  describe("AssumeRole (moto's STS, signatures checked with botocore)", function()
    local function profiles(text, creds_text)
      write(dir .. "/config", text)
      write(dir .. "/credentials", creds_text or ("[base]\naws_access_key_id = " ..
        helper.access_key() .. "\naws_secret_access_key = " .. helper.secret_key() .. "\n"))
      return { AWS_CONFIG_FILE = dir .. "/config", AWS_SHARED_CREDENTIALS_FILE = dir .. "/credentials",
        AWS_ENDPOINT_URL_STS = server.url }
    end

    it("assumes the profile's role with the source profile's keys", function()
      local vars = profiles("[profile ops]\nrole_arn = arn:aws:iam::123456789012:role/ops\n" ..
        "source_profile = base\nrole_session_name = spec-session\n")
      vars.AWS_PROFILE = "ops"
      local p = assert(provider(vars))
      local c = assert(get(p))
      local st = stats()
      assert.equal(1, st.counts["sts:AssumeRole"])
      assert.equal(st.issued["sts:AssumeRole"].AccessKeyId, c.access_key)
      assert.equal(st.issued["sts:AssumeRole"].SecretAccessKey, c.secret_key)
      assert.equal(st.issued["sts:AssumeRole"].SessionToken, c.session_token)
      assert.equal("arn:aws:iam::123456789012:role/ops", st.seen["sts:AssumeRole"].params.RoleArn)
      assert.equal("spec-session", st.seen["sts:AssumeRole"].params.RoleSessionName)
      assert.is_true(st.seen["sts:AssumeRole"].signed)
      -- moto's default lifetime is an hour
      assert.is_true(math.abs(c.expiration - (core.now() + 3600)) < 60)
      -- cached: no second call
      assert.equal(c, get(p))
      assert.equal(1, stats().counts["sts:AssumeRole"])
    end)

    it("follows a role chain, signing the next call with the session credentials", function()
      local vars = profiles("[profile a]\nrole_arn = arn:aws:iam::123456789012:role/a\n" ..
        "source_profile = b\n[profile b]\nrole_arn = arn:aws:iam::123456789012:role/b\n" ..
        "source_profile = base\n")
      vars.AWS_PROFILE = "a"
      local c = assert(get(assert(provider(vars))))
      local st = stats()
      assert.equal(2, st.counts["sts:AssumeRole"])
      assert.equal("arn:aws:iam::123456789012:role/a", st.seen["sts:AssumeRole"].params.RoleArn)
      assert.equal(st.issued["sts:AssumeRole"].AccessKeyId, c.access_key)
    end)

    it("surfaces STS's refusal of a wrong secret, without the secret", function()
      local vars = profiles("[profile ops]\nrole_arn = arn:aws:iam::123456789012:role/ops\n" ..
        "source_profile = base\n", "[base]\naws_access_key_id = " .. helper.access_key() ..
        "\naws_secret_access_key = not-the-right-secret\n")
      vars.AWS_PROFILE = "ops"
      local c, err = get(assert(provider(vars)))
      assert.is_nil(c)
      assert.equal("CredentialsError", err.code)
      assert.matches("STS AssumeRole failed: SignatureDoesNotMatch: ", err.message)
      assert.matches("%(HTTP 403%)", err.message)
      assert_no_secret({ "not-the-right-secret" }, { err.message, tostring(err) })
    end)

    it("takes the source credentials from the environment with credential_source", function()
      local vars = profiles("[profile ops]\nrole_arn = arn:aws:iam::123456789012:role/ops\n" ..
        "credential_source = Environment\n")
      vars.AWS_ACCESS_KEY_ID, vars.AWS_SECRET_ACCESS_KEY = helper.access_key(), helper.secret_key()
      -- named by the option: with AWS_PROFILE, the environment's keys would come first
      local c = assert(get(assert(provider(vars, { profile = "ops" }))))
      assert.equal(stats().issued["sts:AssumeRole"].AccessKeyId, c.access_key)
    end)

    it("retries STS's 5xx answers", function()
      local vars = profiles("[profile ops]\nrole_arn = arn:aws:iam::123456789012:role/ops\n" ..
        "source_profile = base\n")
      vars.AWS_PROFILE = "ops"
      control({ sts = { fail = { status = 500, code = "InternalFailure", count = 2 } } })
      assert.is_truthy(get(assert(provider(vars))))
      assert.equal(3, stats().counts["sts:AssumeRole"])
    end)

    it("reports answers it cannot use", function()
      local vars = profiles("[profile ops]\nrole_arn = arn:aws:iam::123456789012:role/ops\n" ..
        "source_profile = base\n")
      vars.AWS_PROFILE = "ops"
      for kind, text in pairs({ truncated = "unreadable XML", no_secret = "no SecretAccessKey",
          html = "no AccessKeyId" }) do
        control({ sts = { malformed = kind } })
        local c, err = get(assert(provider(vars)))
        assert.is_nil(c, kind)
        assert.matches(text, err.message)
      end
    end)

    it("refreshes short-lived role credentials ahead of their expiry", function()
      local vars = profiles("[profile ops]\nrole_arn = arn:aws:iam::123456789012:role/ops\n" ..
        "source_profile = base\nduration_seconds = 6\n")
      vars.AWS_PROFILE = "ops"
      local p = assert(provider(vars, { refresh_ahead_s = 3, refresh_jitter_s = 0,
        expiry_margin_s = 1 }))
      local c1 = assert(get(p))
      core.sleep_ms(1000)
      assert.equal(c1, get(p))
      core.sleep_ms(2500)
      local c2 = assert(get(p))
      assert.are_not.equal(c1.access_key, c2.access_key)
      assert.equal(2, stats().counts["sts:AssumeRole"])
      assert.is_true(c2.expiration > c1.expiration)
    end)

    it("signs DynamoDB requests with the assumed role", function()
      local vars = profiles("[profile ops]\nrole_arn = arn:aws:iam::123456789012:role/ops\n" ..
        "source_profile = base\n")
      vars.AWS_PROFILE = "ops"
      local p = assert(provider(vars))
      -- moto itself, not its proxy: the proxy only knows the test's own keys
      local client = assert(ddb.new{ region = helper.region(), endpoint = helper.servers()[1].direct,
        credentials = function() return p:get() end })
      assert.is_truthy(client:list_tables{})
      assert.equal(stats().issued["sts:AssumeRole"].AccessKeyId, client.signer:get("access_key"))
      keep(tostring(client), tostring(client.signer))
      client:close()
    end)
  end)

  describe("AssumeRoleWithWebIdentity (moto's STS)", function()
    local function web_env(token)
      write(dir .. "/token", token)
      return { AWS_WEB_IDENTITY_TOKEN_FILE = dir .. "/token",
        AWS_ROLE_ARN = "arn:aws:iam::123456789012:role/web", AWS_ROLE_SESSION_NAME = "pod-7",
        AWS_ENDPOINT_URL_STS = server.url }
    end

    it("exchanges the token file's token, unsigned", function()
      control({ sts = { web_identity_token = "eyJ.first.token" } })
      local c = assert(get(assert(provider(web_env("eyJ.first.token\n")))))
      local st = stats()
      local seen = st.seen["sts:AssumeRoleWithWebIdentity"]
      assert.is_false(seen.signed)
      assert.equal("eyJ.first.token", seen.params.WebIdentityToken)
      assert.equal("pod-7", seen.params.RoleSessionName)
      assert.equal("arn:aws:iam::123456789012:role/web", seen.params.RoleArn)
      assert.equal(st.issued["sts:AssumeRoleWithWebIdentity"].AccessKeyId, c.access_key)
    end)

    it("reads the token file again on every refresh, as the platform rotates it", function()
      local vars = web_env("eyJ.first.token")
      local p = assert(provider(vars))
      local c1 = assert(get(p))
      write(dir .. "/token", "eyJ.second.token")
      control({ sts = { web_identity_token = "eyJ.second.token" } })
      local c2 = assert(get(p, c1))   -- as after an ExpiredTokenException
      assert.are_not.equal(c1.access_key, c2.access_key)
      assert.equal("eyJ.second.token", stats().seen["sts:AssumeRoleWithWebIdentity"].params.WebIdentityToken)
    end)

    it("surfaces a refused token without repeating it", function()
      control({ sts = { web_identity_token = "eyJ.expected" } })
      local c, err = get(assert(provider(web_env("eyJ.stolen.or.stale.token"))))
      assert.is_nil(c)
      assert.matches("STS AssumeRoleWithWebIdentity failed: InvalidIdentityToken: ", err.message)
      assert.matches("%*%*%*%*", err.message)   -- the server echoed it; it was blanked
      assert_no_secret({ "eyJ.stolen.or.stale.token" }, { err.message })
    end)
  end)

  describe("container credentials", function()
    it_methods("GETs the relative URI from the container host, with the token", function()
      control({ container = { token = "Bearer ecs-token-1" } })
      local p = assert(provider({ AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = "/container/v2/abc",
        AWS_CONTAINER_AUTHORIZATION_TOKEN = "Bearer ecs-token-1" }, { container_base_url = server.url }))
      local c = assert(get(p))
      local st = stats()
      assert.equal(st.issued.container.AccessKeyId, c.access_key)
      assert.equal(st.issued.container.Token, c.session_token)
      assert.equal("/container/v2/abc", st.seen.container.path)
      assert.equal("application/json", st.seen.container.accept)
      assert.equal(c, get(p))
      assert.equal(1, stats().counts.container)
    end)

    it_methods("reads the token file on every fetch (EKS Pod Identity rotates it)", function()
      write(dir .. "/eks-token", "pod-identity-token-1\n")
      control({ container = { token = "pod-identity-token-1" } })
      local p = assert(provider({ AWS_CONTAINER_CREDENTIALS_FULL_URI = server.url .. "/container/eks",
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = dir .. "/eks-token",
        AWS_CONTAINER_AUTHORIZATION_TOKEN = "ignored-when-the-file-is-set" }))
      local c1 = assert(get(p))
      write(dir .. "/eks-token", "pod-identity-token-2\n")
      control({ container = { token = "pod-identity-token-2" } })
      local c2 = assert(get(p, c1))
      assert.are_not.equal(c1.access_key, c2.access_key)
      assert.equal("pod-identity-token-2", stats().seen.container.authorization)
    end)

    it_methods("reports a refused token without repeating it", function()
      control({ container = { token = "right-token", echo_token_in_error = true } })
      local c, err = get(assert(provider({
        AWS_CONTAINER_CREDENTIALS_FULL_URI = server.url .. "/container/x",
        AWS_CONTAINER_AUTHORIZATION_TOKEN = "wrong-container-token" })))
      assert.is_nil(c)
      assert.matches("answered HTTP 403: invalid authorization token: %*%*%*%*", err.message)
      assert_no_secret({ "wrong-container-token", "right-token" }, { err.message })
      assert.equal(1, stats().counts.container)   -- a refusal is not retried
    end)

    it_methods("tries three times on 5xx answers", function()
      local vars = { AWS_CONTAINER_CREDENTIALS_FULL_URI = server.url .. "/container/x" }
      control({ container = { fail = { status = 500, count = 2 } } })
      assert.is_truthy(get(assert(provider(vars))))
      assert.equal(3, stats().counts.container)
      control({ reset = true, container = { fail = { status = 503 } } })
      local c, err = get(assert(provider(vars)))
      assert.is_nil(c)
      assert.matches("answered HTTP 503", err.message)
      assert.equal(3, stats().counts.container)
    end)

    it_methods("reports malformed answers", function()
      local vars = { AWS_CONTAINER_CREDENTIALS_FULL_URI = server.url .. "/container/x" }
      control({ container = { malformed = "not_json" } })
      assert.matches("not JSON", select(2, get(assert(provider(vars)))).message)
      control({ container = { malformed = "no_secret" } })
      assert.matches("without SecretAccessKey", select(2, get(assert(provider(vars)))).message)
    end)

    it_methods("keeps valid credentials through a failed refresh, logging once", function()
      -- the endpoint writes whole seconds: the expiry is 9 to 10 s away, the refresh window
      -- opens 4 s before it, the credentials are used until 1 s before it
      control({ container = { expires_in = 10 } })
      local p = assert(provider({ AWS_CONTAINER_CREDENTIALS_FULL_URI = server.url .. "/container/x" },
        { refresh_ahead_s = 4, refresh_jitter_s = 0, expiry_margin_s = 1, retry_failed_s = 0.5,
          container_attempts = 1 }))
      local c1 = assert(get(p))
      core.sleep_ms(6200)                        -- inside the refresh window
      control({ container = { fail = { status = 500 } } })
      assert.equal(c1, get(p))
      core.sleep_ms(600)
      assert.equal(c1, get(p))
      assert.equal(3, stats().counts.container)
      assert.equal(1, #logs)
      assert.equal("warn", logs[1].level)
      assert.matches("refreshing credentials from container credentials", logs[1].message)
      core.sleep_ms(2500)                        -- past the usable life: now it is an error
      local c, err = get(p)
      assert.is_nil(c)
      assert.matches("answered HTTP 500", err.message)
      control({ container = { fail = false } })
      local c3 = assert(get(p))
      assert.are_not.equal(c1.access_key, c3.access_key)
      assert.equal("info", logs[#logs].level)
    end)
  end)

  describe("EC2 instance metadata", function()
    local function imds_env(extra)
      local vars = { AWS_EC2_METADATA_DISABLED = false, AWS_EC2_METADATA_SERVICE_ENDPOINT = server.url }
      for k, v in pairs(extra or {}) do vars[k] = v end
      return vars
    end

    it_methods("PUTs for a session token, then GETs the role and its credentials", function()
      local c = assert(get(assert(provider(imds_env()))))
      local st = stats()
      assert.equal(1, st.counts.imds_token)
      assert.equal(1, st.counts.imds_role)
      assert.equal(1, st.counts.imds_credentials)
      assert.equal("PUT", st.seen.imds_token.method)
      assert.equal("21600", st.seen.imds_token.headers["X-aws-ec2-metadata-token-ttl-seconds"])
      assert.is_true(st.seen.imds_role.token_sent)
      assert.is_true(st.seen.imds_credentials.token_sent)
      assert.equal("/latest/meta-data/iam/security-credentials/ddb-test-role",
        st.seen.imds_credentials.path)
      assert.equal(st.issued.imds.AccessKeyId, c.access_key)
      assert.equal(st.issued.imds.Token, c.session_token)
    end)

    it_methods("falls back to IMDSv1 where tokens are refused, unless that is disabled", function()
      control({ imds = { mode = "v1", v1_status = 403 } })
      local c = assert(get(assert(provider(imds_env()))))
      local st = stats()
      assert.is_false(st.seen.imds_credentials.token_sent)
      assert.equal(st.issued.imds.AccessKeyId, c.access_key)
      local none, err = get(assert(provider(imds_env{ AWS_EC2_METADATA_V1_DISABLED = "true" })))
      assert.is_nil(none)
      assert.matches("AWS_EC2_METADATA_V1_DISABLED forbids IMDSv1", err.message)
    end)

    it_methods("asks for a new token once when its token is refused", function()
      control({ imds = { token_ttl_seconds = -1 } })   -- expired as soon as issued
      local c, err = get(assert(provider(imds_env())))
      assert.is_nil(c)
      assert.matches("answered HTTP 401", tostring(err and err.message))
      assert.equal(2, stats().counts.imds_token)
    end)

    it_methods("says what it tried when the instance has no role", function()
      control({ imds = { role = false } })
      local c, err = get(assert(provider(imds_env())))
      assert.is_nil(c)
      assert.matches("^no credentials found; tried: explicit option %(not given%), environment",
        err.message)
      assert.matches("EC2 instance metadata %(http://127%.0%.0%.1:%d+%): no IAM role is attached",
        err.message)
    end)

    it_methods("reports malformed credentials", function()
      for kind, text in pairs({ not_json = "not JSON", no_token = "without Token",
          bad_expiration = "not an ISO 8601 time", code_failure = "Code AssumeRoleUnauthorizedAccess" }) do
        control({ imds = { malformed = kind } })
        local c, err = get(assert(provider(imds_env())))
        assert.is_nil(c, kind)
        assert.matches(text, err.message)
      end
    end)

    it_methods("gives up quickly off EC2: refused connections and the 1 s timeout", function()
      local started = core.monotonic_ms()
      local c, err = get(assert(provider(imds_env{
        AWS_EC2_METADATA_SERVICE_ENDPOINT = helper.closed_url() })))
      assert.is_nil(c)
      assert.is_true(core.monotonic_ms() - started < 1000)
      assert.matches("^no credentials found; tried: .*EC2 instance metadata .*: not reachable",
        err.message)
      control({ imds = { hang_seconds = 3 } })
      started = core.monotonic_ms()
      c, err = get(assert(provider(imds_env())))
      local elapsed = core.monotonic_ms() - started
      assert.is_nil(c)
      assert.is_true(elapsed >= 900 and elapsed < 2000, tostring(elapsed))
      assert.matches("not reachable %(.*timed out", err.message)
    end)

    it_methods("refreshes instance credentials ahead of expiry", function()
      control({ imds = { expires_in = 5 } })   -- 4 to 5 s: IMDS writes whole seconds
      local p = assert(provider(imds_env(), { refresh_ahead_s = 3, refresh_jitter_s = 0,
        expiry_margin_s = 1 }))
      local c1 = assert(get(p))
      core.sleep_ms(500)
      assert.equal(c1, get(p))
      core.sleep_ms(2300)
      local c2 = assert(get(p))
      assert.are_not.equal(c1.access_key, c2.access_key)
      assert.equal(2, stats().counts.imds_credentials)
    end)

    it_methods("signs DynamoDB requests the proxy verifies with botocore", function()
      control({ imds = { issue = { AccessKeyId = helper.access_key(),
        SecretAccessKey = helper.secret_key() } } })
      local p = assert(provider(imds_env()))
      local moto = helper.servers()[1]
      local client = assert(ddb.new{ region = helper.region(), endpoint = moto.url,
        credentials = function() return p:get() end })
      assert.is_truthy(client:list_tables{})
      local sent = stats().issued.imds.Token
      assert.is_true(client.signer:get("has_session_token"))
      keep(tostring(client), tostring(client.signer))
      assert.is_nil(tostring(client):find(sent, 1, true))
      client:close()
    end)
  end)

  describe("inside nginx (cosockets, one cache per worker)", function()
    local runner = require "support.nginx.runner"
    local nginx

    -- /creds?VAR=value&...: a provider for exactly those variables (one per worker and
    -- `key`, when given), asked once; answers what it got as JSON.
    local CONF = [[
load_module @MODULES@/ndk_http_module.so;
load_module @MODULES@/ngx_http_lua_module.so;
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path logs/client_body;
    proxy_temp_path logs/proxy;
    fastcgi_temp_path logs/fastcgi;
    uwsgi_temp_path logs/uwsgi;
    scgi_temp_path logs/scgi;
    lua_package_path "@ROOT@/lua/?.lua;@ROOT@/lua/?/init.lua;;";
    lua_package_cpath "@ROOT@/build/jit/?.so;;";
    lua_socket_log_errors off;
    server {
        listen 127.0.0.1:@PORT1@;
        location = /creds {
            content_by_lua_block {
                local credentials = require "ddb.credentials"
                local ddb = require "ddb"
                local vars = ngx.req.get_uri_args()
                local cache = package.loaded.credentials_spec_cache or {}
                package.loaded.credentials_spec_cache = cache
                local p, err = vars.key and cache[vars.key]
                if not p then
                    p, err = credentials.new{ region = "us-east-1", retry_sleep_ms = 10,
                        getenv = function(name) return vars[name] end }
                    if p and vars.key then cache[vars.key] = p end
                end
                local c
                if p then c, err = p:get() end
                local t = p and p.ctx.transport
                ngx.say(ddb.encode_json{ ok = c ~= nil, source = p and p:describe(),
                    access_key = c and c.access_key, code = err and err.code,
                    message = err and tostring(err.message),
                    transport = t and t.name, methods = t and t.supports_methods == true })
            }
        }
    }
}
]]

    local function escape(s)
      return (tostring(s):gsub("[^%w%-%._~/]", function(ch) return ("%%%02X"):format(ch:byte()) end))
    end

    local function url_for(vars)
      local parts = {}
      local all = { HOME = HOME, AWS_EC2_METADATA_DISABLED = "true" }
      for k, v in pairs(vars) do all[k] = v end
      for k, v in pairs(all) do
        if v ~= false then parts[#parts + 1] = escape(k) .. "=" .. escape(v) end
      end
      table.sort(parts)
      return nginx:url("/creds?" .. table.concat(parts, "&"))
    end

    local function creds_in_nginx(vars)
      local status, body = runner.http("GET", url_for(vars), nil, 20)
      assert.equal(200, status, tostring(body) .. "\n" .. nginx:log())
      local doc = core.decode(body)
      keep(doc.message, doc.source)
      return doc
    end

    local function needs_methods(doc)
      if doc.methods == false then
        pending("needs the cosocket transport's method parameter (lua/ddb/transport/ngx.lua)")
      end
    end

    setup(function() nginx = runner.start{ conf = CONF } end)
    teardown(function() if nginx then nginx:stop() end end)

    it("assumes a role with a web identity through STS", function()
      write(dir .. "/token", "eyJ.nginx.token")
      local doc = creds_in_nginx{ AWS_WEB_IDENTITY_TOKEN_FILE = dir .. "/token",
        AWS_ROLE_ARN = "arn:aws:iam::123456789012:role/web", AWS_ENDPOINT_URL_STS = server.url }
      assert.is_true(doc.ok, doc.message)
      assert.equal("ngx", doc.transport)
      assert.equal(stats().issued["sts:AssumeRoleWithWebIdentity"].AccessKeyId, doc.access_key)
    end)

    it("fetches container credentials", function()
      local doc = creds_in_nginx{ AWS_CONTAINER_CREDENTIALS_FULL_URI = server.url .. "/container/ngx" }
      needs_methods(doc)
      assert.is_true(doc.ok, doc.message)
      assert.equal(stats().issued.container.AccessKeyId, doc.access_key)
    end)

    it("fetches instance credentials with IMDSv2", function()
      local doc = creds_in_nginx{ AWS_EC2_METADATA_DISABLED = false,
        AWS_EC2_METADATA_SERVICE_ENDPOINT = server.url }
      needs_methods(doc)
      assert.is_true(doc.ok, doc.message)
      local st = stats()
      assert.equal(st.issued.imds.AccessKeyId, doc.access_key)
      assert.equal("PUT", st.seen.imds_token.method)
    end)

    it("fetches once for requests that arrive together in one worker", function()
      local probe = creds_in_nginx{ AWS_CONTAINER_CREDENTIALS_FULL_URI = server.url .. "/container/p" }
      needs_methods(probe)
      control({ reset = true, container = { delay_seconds = 0.5 } })
      local urls = {}
      for i = 1, 8 do
        urls[i] = url_for{ key = "shared", AWS_CONTAINER_CREDENTIALS_FULL_URI = server.url ..
          "/container/shared" }
      end
      local bodies = runner.parallel("GET", urls, 8, 20)
      assert.equal(8, #bodies)
      local first
      for _, body in ipairs(bodies) do
        local doc = core.decode(body)
        assert.is_true(doc.ok, body)
        first = first or doc.access_key
        assert.equal(first, doc.access_key)
      end
      assert.equal(1, stats().counts.container)
    end)

    it("refuses credential_process, which would block the worker", function()
      write(dir .. "/config", "[default]\ncredential_process = /bin/echo {}\n")
      local doc = creds_in_nginx{ AWS_CONFIG_FILE = dir .. "/config" }
      assert.is_false(doc.ok)
      assert.matches("cannot run in nginx's 'content' phase", doc.message)
    end)
  end)

  it("never shows a secret or token in an error, a log line or a tostring", function()
    local secrets = all_secrets
    for _, t in ipairs({ "eyJ.first.token", "eyJ.second.token", "eyJ.stolen.or.stale.token",
        "eyJ.nginx.token",
        "Bearer ecs-token-1", "pod-identity-token-1", "pod-identity-token-2",
        "wrong-container-token", "not-the-right-secret" }) do
      secrets[#secrets + 1] = t
    end
    assert.is_true(#texts > 50)
    assert.is_true(#secrets > 20)
    assert_no_secret(secrets, texts)
  end)
end)
