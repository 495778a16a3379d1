-- Configuration (lua/ddb/config.lua and ddb.new): where region, endpoint and credentials come
-- from, in the order the AWS SDKs use, and what happens when they are missing or wrong.
local config = require "ddb.config"
local ddb = require "ddb"

local SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
local TOKEN = "FwoGZXIvYXdzEXAMPLETOKEN//////////wEaDEXAMPLE+token/value=="

-- A scratch directory per test, and an environment the module sees instead of the real one.
local env, dir
local real_getenv = config.getenv

local function path(name) return dir .. "/" .. name end

local function write(name, text)
  local f = assert(io.open(path(name), "wb"))
  f:write(text)
  f:close()
  return path(name)
end

before_each(function()
  dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. "/home/.aws'"))
  -- HOME points at an empty directory: the real ~/.aws never leaks into a test
  env = { HOME = path("home") }
  config.getenv = function(name) return env[name] end
end)

after_each(function()
  config.getenv = real_getenv
  os.execute("rm -rf '" .. dir .. "'")
end)

-- Shared files under the scratch directory, named by the environment variables.
local function shared_files(credentials, conf)
  if credentials then env.AWS_SHARED_CREDENTIALS_FILE = write("credentials", credentials) end
  if conf then env.AWS_CONFIG_FILE = write("config", conf) end
end

describe("INI parsing", function()
  it("reads sections and key = value pairs, lowercasing keys and trimming around '='", function()
    assert.same({
      default = { region = "us-east-1", aws_access_key_id = "AKID" },
      ["profile dev"] = { region = "eu-west-1" },
    }, config.parse_ini("[default]\nregion=us-east-1\nAWS_Access_Key_ID   =   AKID  \n" ..
      "[ profile dev ]\nregion = eu-west-1"))
  end)

  it("skips blank lines and comments, and strips comments after a value", function()
    assert.same({ default = { region = "us-east-1", output = "json", hash = "a#b" } },
      config.parse_ini("# leading comment\n\n; another\n[default]\n   \n" ..
        "region = us-east-1 # where we live\n  # indented comment\noutput = json ; format\n" ..
        "hash = a#b\n"))
  end)

  it("reads CRLF line endings", function()
    assert.same({ default = { aws_access_key_id = "AKID", aws_secret_access_key = "S" } },
      config.parse_ini("[default]\r\naws_access_key_id = AKID\r\naws_secret_access_key = S\r\n"))
  end)

  it("merges a repeated section, the later value winning", function()
    assert.same({ default = { a = "1", b = "3" } }, config.parse_ini("[default]\na=1\nb=2\n[default]\nb=3"))
  end)

  -- as in botocore (Python's configparser), a line indented under a key continues its value
  it("keeps nested settings as the text of their key instead of overriding the profile's keys", function()
    local t = config.parse_ini("[default]\nregion = us-east-1\ns3 =\n  region = eu-west-1\n" ..
      "  max_concurrent_requests = 20\noutput = json\n")
    assert.equal("us-east-1", t.default.region)
    assert.equal("\nregion = eu-west-1\nmax_concurrent_requests = 20", t.default.s3)
    assert.equal("json", t.default.output)
  end)

  it("accepts keys that are all indented alike", function()
    assert.same({ default = { a = "1", b = "2" } }, config.parse_ini("[default]\n  a = 1\n  b = 2\n"))
  end)

  it("refuses malformed lines, naming the line", function()
    local cases = {
      { "[default]\nregion = x\nnot a setting\n", "line 3: expected key = value" },
      { "[default]\n= value\n", "line 2: expected key = value" },
      { "\n\nregion = x\n", "line 3: key outside any section" },
      { "[default]\n[ ]\n", "line 2: malformed section header" },
      { "# c\r\n[default\r\n", "line 2: malformed section header" },
    }
    for _, c in ipairs(cases) do
      local t, err = config.parse_ini(c[1])
      assert.is_nil(t)
      assert.equal(c[2], err)
    end
  end)
end)

describe("profiles", function()
  it("merge the credentials file's [default] over the config file's [default]", function()
    shared_files("[default]\naws_access_key_id = FROM_CREDS\n",
      "[default]\naws_access_key_id = FROM_CONFIG\nregion = eu-west-2\n")
    assert.same({ aws_access_key_id = "FROM_CREDS", region = "eu-west-2" }, (config.profile()))
  end)

  it("read [profile x] from the config file and [x] from the credentials file", function()
    shared_files("[dev]\naws_access_key_id = DEV\n[profile dev]\naws_access_key_id = WRONG\n",
      "[profile dev]\nregion = ap-south-1\n[dev]\nregion = wrong-1\n")
    assert.same({ aws_access_key_id = "DEV", region = "ap-south-1" }, (config.profile("dev")))
  end)

  it("accept [profile default] in the config file", function()
    shared_files(nil, "[profile default]\nregion = sa-east-1\n")
    assert.equal("sa-east-1", config.profile().region)
  end)

  it("are chosen by AWS_PROFILE, unless a name is given", function()
    shared_files("[default]\nk = default\n[a]\nk = a\n[b]\nk = b\n")
    assert.equal("default", config.profile().k)
    env.AWS_PROFILE = "a"
    assert.equal("a", config.profile().k)
    assert.equal("b", config.profile("b").k)
    local _, _, where = config.profile()
    assert.equal("a", where.name)
  end)

  it("come from ~/.aws/credentials and ~/.aws/config unless the environment names other files", function()
    write("home/.aws/credentials", "[default]\naws_access_key_id = HOME_CREDS\n")
    write("home/.aws/config", "[default]\nregion = us-west-1\n")
    assert.same({ aws_access_key_id = "HOME_CREDS", region = "us-west-1" }, (config.profile()))
    shared_files("[default]\naws_access_key_id = ENV_CREDS\n", "[default]\nregion = us-west-2\n")
    assert.same({ aws_access_key_id = "ENV_CREDS", region = "us-west-2" }, (config.profile()))
  end)

  it("are empty when the files do not exist", function()
    env.AWS_SHARED_CREDENTIALS_FILE = path("missing-credentials")
    env.AWS_CONFIG_FILE = path("missing-config")
    assert.same({}, (config.profile()))
  end)

  it("fail with the file and line when a file is malformed", function()
    local p = write("credentials", "[default]\naws_secret_access_key = " .. SECRET .. "\noops\n")
    env.AWS_SHARED_CREDENTIALS_FILE = p
    local prof, err = config.profile()
    assert.is_nil(prof)
    assert.equal(p .. ": line 3: expected key = value", err)
  end)
end)


describe("region", function()
  it("is taken from the option, then AWS_REGION, then AWS_DEFAULT_REGION, then the profile", function()
    shared_files(nil, "[default]\nregion = profile-region-1\n")
    env.AWS_DEFAULT_REGION = "default-region-1"
    env.AWS_REGION = "region-1"
    assert.equal("option-1", config.region("option-1"))
    assert.equal("region-1", config.region())
    env.AWS_REGION = nil
    assert.equal("default-region-1", config.region())
    env.AWS_DEFAULT_REGION = ""
    assert.equal("profile-region-1", config.region())
  end)

  it("follows AWS_PROFILE into the config file", function()
    shared_files(nil, "[default]\nregion = us-east-1\n[profile eu]\nregion = eu-north-1\n")
    env.AWS_PROFILE = "eu"
    assert.equal("eu-north-1", config.region())
  end)

  it("is missing when nothing names one", function()
    local r, err = config.region()
    assert.is_nil(r)
    assert.equal("no region: set the 'region' option, AWS_REGION or AWS_DEFAULT_REGION", err)
  end)

  it("must be a plain name, wherever it comes from", function()
    for _, bad in ipairs({ "us east 1", "us-east-1\n", "", "eu/west", 42 }) do
      local r, err = config.region(bad)
      assert.is_nil(r)
      assert.equal("region must be a name such as 'us-east-1'", err)
    end
    env.AWS_REGION = "eu-west-1 "
    assert.equal("region from AWS_REGION must be a name such as 'us-east-1'", select(2, config.region()))
    env.AWS_REGION = nil
    env.AWS_DEFAULT_REGION = "a.b"
    assert.equal("region from AWS_DEFAULT_REGION must be a name such as 'us-east-1'",
      select(2, config.region()))
    env.AWS_DEFAULT_REGION = nil
    shared_files(nil, "[default]\nregion = us-east-1; rm -rf\n")
    assert.equal("region from the shared AWS files must be a name such as 'us-east-1'",
      select(2, config.region()))
  end)
end)

describe("endpoint", function()
  it("is taken from the option, then AWS_ENDPOINT_URL_DYNAMODB, then AWS_ENDPOINT_URL", function()
    env.AWS_ENDPOINT_URL = "http://generic:1000"
    env.AWS_ENDPOINT_URL_DYNAMODB = "http://dynamo:2000"
    assert.equal("http://option:3000/", config.endpoint("http://option:3000", "us-east-1").url)
    assert.equal("http://dynamo:2000/", config.endpoint(nil, "us-east-1").url)
    env.AWS_ENDPOINT_URL_DYNAMODB = ""
    assert.equal("http://generic:1000/", config.endpoint(nil, "us-east-1").url)
  end)

  it("defaults to the regional HTTPS endpoint", function()
    assert.same({ scheme = "https", host = "dynamodb.eu-west-1.amazonaws.com", port = 443, tls = true,
      host_header = "dynamodb.eu-west-1.amazonaws.com",
      url = "https://dynamodb.eu-west-1.amazonaws.com/" }, config.endpoint(nil, "eu-west-1"))
  end)

  it("keeps a port in the Host header unless it is the scheme's default", function()
    local cases = {
      { "http://localhost:8000", "localhost", 8000, "localhost:8000" },
      { "http://localhost:8000/", "localhost", 8000, "localhost:8000" },
      { "http://127.0.0.1", "127.0.0.1", 80, "127.0.0.1" },
      { "http://example.com:80", "example.com", 80, "example.com" },
      { "https://example.com:443/", "example.com", 443, "example.com" },
      { "http://example.com:443", "example.com", 443, "example.com:443" },
      { "https://my_host.internal:8443", "my_host.internal", 8443, "my_host.internal:8443" },
    }
    for _, c in ipairs(cases) do
      local ep = assert(config.parse_endpoint(c[1]))
      assert.same({ c[2], c[3], c[4] }, { ep.host, ep.port, ep.host_header }, c[1])
    end
  end)

  it("reads IPv6 addresses in brackets", function()
    local cases = {
      { "http://[::1]:8000", "::1", 8000, "[::1]:8000", "http://[::1]:8000/" },
      { "https://[2001:db8::1]", "2001:db8::1", 443, "[2001:db8::1]", "https://[2001:db8::1]/" },
      { "http://[::1]:80/", "::1", 80, "[::1]", "http://[::1]:80/" },
      { "http://[::ffff:127.0.0.1]:9000", "::ffff:127.0.0.1", 9000, "[::ffff:127.0.0.1]:9000",
        "http://[::ffff:127.0.0.1]:9000/" },
    }
    for _, c in ipairs(cases) do
      local ep = assert(config.parse_endpoint(c[1]))
      assert.same({ c[2], c[3], c[4], c[5] }, { ep.host, ep.port, ep.host_header, ep.url }, c[1])
    end
  end)

  it("refuses what is not http(s)://host[:port][/]", function()
    local cases = {
      { "ftp://example.com", "endpoint must start with http:// or https://" },
      { "localhost:8000", "endpoint must start with http:// or https://" },
      { "HTTP://example.com", "endpoint must start with http:// or https://" },
      { "http://", "endpoint must start with http:// or https://" },
      { "http://example.com/dynamodb", "endpoint must be scheme://host[:port] with no path" },
      { "http://example.com:0", "endpoint port out of range" },
      { "http://example.com:65536", "endpoint port out of range" },
      { "http://example.com:", "endpoint has a bad port" },
      { "http://example.com:80:90", "endpoint has a bad port" },
      { "http://example.com:http", "endpoint has a bad port" },
      { "http://[::1]8000", "endpoint has a bad port" },
      { "http://user@example.com", "endpoint has a bad host" },
      { "http://example.com?x=1", "endpoint has a bad host" },
      { "http://example.com#top", "endpoint has a bad host" },
      { "http://exa mple.com", "endpoint has a bad host" },
      { "http://::1:8000", "endpoint has a bad host" },
      { "http://[]:80", "endpoint has a bad host" },
      { "http://[1.2.3.4]", "endpoint has a bad host" },
      { "http://[::1", "endpoint has a bad host" },
      { "http://:8000", "endpoint has a bad host" },
      { 8000, "endpoint must be a string URL" },
    }
    for _, c in ipairs(cases) do
      local ep, err = config.parse_endpoint(c[1])
      assert.is_nil(ep, tostring(c[1]))
      assert.equal(c[2], err, tostring(c[1]))
    end
  end)
end)

describe("numbers from the environment", function()
  it("are whole numbers within bounds, or an error naming the variable", function()
    assert.is_nil(config.env_number("AWS_MAX_ATTEMPTS", 1, 100))
    env.AWS_MAX_ATTEMPTS = "7"
    assert.equal(7, config.env_number("AWS_MAX_ATTEMPTS", 1, 100))
    for _, bad in ipairs({ "0", "101", "2.5", "many" }) do
      env.AWS_MAX_ATTEMPTS = bad
      local n, err = config.env_number("AWS_MAX_ATTEMPTS", 1, 100)
      assert.is_nil(n)
      assert.equal("AWS_MAX_ATTEMPTS must be a whole number from 1 to 100", err)
    end
  end)
end)

describe("a broken shared file", function()
  it("is reported with its path and line where a region is looked for, not as no region",
    function()
      write("home/.aws/config", "[default]\nregion = eu-west-1\nthis line is wrong\n")
      local r, err = config.region()
      assert.is_nil(r)
      assert.equal("cannot read the shared AWS files: " .. path("home/.aws/config") ..
        ": line 3: expected key = value", err)
      local client, cerr = ddb.new{ transport = { request = function() end },
        credentials = { access_key_id = "AKID", secret_access_key = "s" } }
      assert.is_nil(client)
      assert.equal("ConfigError", cerr.code)
      assert.matches("config: line 3: expected key = value$", cerr.message)
    end)

  it("is reported the same by the credential chain, which reads the files with one loader",
    function()
      env.AWS_REGION = "us-east-1"
      write("home/.aws/credentials", "[default]\naws_access_key_id = AKID\n[broken\n")
      local client, err = ddb.new{ transport = { request = function() end } }
      assert.is_nil(client)
      assert.equal("ConfigError", err.code)
      assert.equal("cannot read the shared AWS files: " .. path("home/.aws/credentials") ..
        ": line 3: malformed section header", err.message)
    end)

  it("expands ~/ in AWS_CONFIG_FILE for the region as for credentials", function()
    write("home/.aws/other", "[default]\nregion = ca-central-1\n")
    env.AWS_CONFIG_FILE = "~/.aws/other"
    assert.equal("ca-central-1", config.region())
  end)
end)

describe("ddb.new", function()
  local transport = { name = "fake", request = function() return nil, "unused" end }

  local function good(opts)
    local o = { region = "us-east-1", transport = transport,
      credentials = { access_key_id = "AKIDNEW", secret_access_key = SECRET, session_token = TOKEN } }
    for k, v in pairs(opts or {}) do o[k] = v end
    return o
  end

  -- Every string a client or an error could show.
  local function assert_no_secret(text)
    text = tostring(text)
    assert(not text:find(SECRET, 1, true), "secret key shown: " .. text)
    assert(not text:find(TOKEN, 1, true), "session token shown: " .. text)
    assert(not text:find(SECRET:sub(1, 12), 1, true), "part of the secret shown: " .. text)
  end

  it("builds a client from options", function()
    local client = assert(ddb.new(good{ endpoint = "http://localhost:8000" }))
    assert.equal("us-east-1", client.region)
    assert.equal("http://localhost:8000/", client.url)
    assert.equal("localhost:8000", client.signer:get("host"))
    assert.equal("explicit", client.credentials_source)
  end)

  it("builds a client from the environment alone", function()
    env.AWS_REGION = "eu-central-1"
    env.AWS_ACCESS_KEY_ID = "AKIDENV"
    env.AWS_SECRET_ACCESS_KEY = SECRET
    env.AWS_ENDPOINT_URL_DYNAMODB = "http://[::1]:8000"
    local client = assert(ddb.new{ transport = transport })
    assert.equal("eu-central-1", client.region)
    assert.equal("[::1]:8000", client.signer:get("host"))
    assert.equal("environment", client.credentials_source)
  end)

  it("returns nil and a ConfigError when there is no region", function()
    local client, err = ddb.new{ transport = transport, credentials = good().credentials }
    assert.is_nil(client)
    assert.is_true(ddb.is_error(err))
    assert.equal("ConfigError", err.code)
    assert.equal("no region: set the 'region' option, AWS_REGION or AWS_DEFAULT_REGION", err.message)
    assert.equal("no", err.applied)
  end)

  it("returns nil and a ConfigError for a bad endpoint", function()
    local client, err = ddb.new(good{ endpoint = "http://example.com/path" })
    assert.is_nil(client)
    assert.equal("ConfigError", err.code)
    assert.equal("endpoint must be scheme://host[:port] with no path", err.message)
    assert_no_secret(err)
    assert_no_secret(err.message)
  end)

  it("returns nil and a ConfigError for a bad AWS_MAX_ATTEMPTS", function()
    env.AWS_MAX_ATTEMPTS = "lots"
    local client, err = ddb.new(good())
    assert.is_nil(client)
    assert.equal("ConfigError", err.code)
  end)

  it("returns nil and a CredentialsError listing where it looked", function()
    env.AWS_SECRET_ACCESS_KEY = SECRET
    env.AWS_EC2_METADATA_DISABLED = "true"   -- else instance metadata is asked on first call
    local client, err = ddb.new{ region = "us-east-1", transport = transport }
    assert.is_nil(client)
    assert.equal("CredentialsError", err.code)
    assert.matches("^no credentials found; tried: explicit option %(not given%), environment",
      err.message)
    assert_no_secret(err)
    assert_no_secret(err.message)
  end)

  it("raises, naming the option, for options of the wrong type", function()
    local cases = {
      { "fast", "ddb.new: options must be a table" },
      { good{ timeout_ms = "fast" }, "ddb.new: option 'timeout_ms' must be a number" },
      { good{ deadline_ms = 0 }, "ddb.new: option 'deadline_ms' must be between 1 and 86400000" },
      { good{ connect_timeout_ms = true }, "ddb.new: option 'connect_timeout_ms' must be a number" },
      { good{ max_attempts = "3" }, "ddb.new: option 'max_attempts' must be a number" },
      { good{ on_event = "print" }, "ddb.new: option 'on_event' must be a function" },
      { good{ retry = 5 }, "ddb.new: option 'retry' must be a table" },
      { good{ transport = 5 }, "ddb.new: option 'transport' must be 'curl', 'ngx' or a table" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(ddb.new, c[1])
      assert.is_false(ok)
      assert(tostring(err):find(c[2], 1, true), ("'%s' does not say '%s'"):format(tostring(err), c[2]))
      assert_no_secret(err)
    end
  end)

  it("never shows a secret in tostring(client) or tostring(client.signer)", function()
    local client = assert(ddb.new(good()))
    assert.matches("^ddb%.client{region=us%-east%-1, endpoint=https://dynamodb%.us%-east%-1%.amazonaws%.com/",
      tostring(client))
    assert_no_secret(tostring(client))
    assert_no_secret(tostring(client.signer))
  end)
end)
