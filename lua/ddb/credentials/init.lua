--- ddb.credentials: where a client's AWS credentials come from, and keeping them fresh.
--
-- The default chain follows botocore's documented order (botocore/credentials.py,
-- `create_credential_resolver` and `ProfileProviderBuilder.providers`; the boto3 guide,
-- https://boto3.amazonaws.com/v1/documentation/api/latest/guide/credentials.html, describes
-- the same order). The first source that is configured is used, and
-- stays the source for the life of the provider (as in botocore, a configured source that
-- fails is an error, never a reason to try the next one):
--
--   1. the `credentials` option: a table of keys, or a function of yours returning one;
--   2. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
--      (AWS_CREDENTIAL_EXPIRATION); a key id without its secret is an error, a secret alone
--      is ignored; skipped when the `profile` option names a profile (all as botocore does);
--   3. the profile's role_arn with source_profile or credential_source: STS AssumeRole,
--      signed with the source credentials (role chains followed, loops refused);
--   4. web identity: AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN, AWS_ROLE_SESSION_NAME (or
--      the profile's web_identity_token_file, role_arn, role_session_name): STS
--      AssumeRoleWithWebIdentity, as EKS service accounts use;
--   5. the profile's keys in the shared credentials file (AWS_SHARED_CREDENTIALS_FILE);
--   6. the profile's credential_process (run by the shell; refused inside nginx request
--      phases, where spawning a process would block the worker);
--   7. the profile's keys in the config file (AWS_CONFIG_FILE);
--   8. container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (169.254.170.2) or
--      AWS_CONTAINER_CREDENTIALS_FULL_URI, with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or
--      AWS_CONTAINER_AUTHORIZATION_TOKEN (ECS, EKS Pod Identity);
--   9. EC2 instance metadata, IMDSv2 (a PUT for a session token, then the role's
--      credentials; IMDSv1 only where the token PUT is refused, as botocore does, unless
--      AWS_EC2_METADATA_V1_DISABLED), 1 s timeout; AWS_EC2_METADATA_DISABLED=true turns it off,
--      AWS_EC2_METADATA_SERVICE_ENDPOINT moves it.
-- AWS_PROFILE (or the `profile` option) picks the profile. SSO profiles and mfa_serial are
-- refused with an error rather than skipped: falling through to another source would
-- quietly sign with credentials nobody meant to use.
--
-- STS answers in XML, read by ddb.credentials.xml, a small reader of exactly the subset STS
-- writes: four credential fields and an error's Code and Message are all that is needed, so
-- a dependency (lua-expat would be one more C module to build for every runtime, LuaRocks
-- tree and nginx) buys nothing.
--
-- HTTP. Providers send through a transport's `request(self, url, header_lines, body,
-- timeout_ms, method)`, method "POST" (STS), "GET" or "PUT" (metadata endpoints). The
-- transport is injectable (`transport` option, for coroutine hosts); by default the chain
-- makes its own: cosockets inside nginx, else a libcurl handle of its own (separate from the
-- client's, so metadata requests never disturb its DynamoDB connection). A transport must
-- set `supports_methods = true` to be used for GET and PUT.
--
-- Caching. Credentials with an expiry are refreshed ahead of it (5 minutes before, minus up
-- to a minute of random jitter so that many processes do not refresh together, and never
-- before half of their remaining lifetime has passed). Refreshes are single-flight: while one
-- caller refreshes, others keep using the current credentials, or, when those are no longer
-- usable, wait for the refresh's result (with the transport's sleep, so coroutines yield).
-- A failed refresh while the current credentials are still valid keeps them, logs once, and
-- is tried again 30 s later; credentials are not used in their last 15 seconds.
--
-- Bounds. `get(rejected, deadline)` takes the calling operation's deadline (monotonic ms,
-- as core.monotonic_ms): every request of a fetch waits at most for what is left of it, no
-- retry waits past it, a credential_process is stopped at it (coreutils' timeout), and a
-- fetch that runs out of it fails with DeadlineExceeded naming the source. Every answer a
-- source reads (an endpoint's body, a process's output) is cut off at max_answer_bytes
-- (64 KiB; the real ones are a few KB): CredentialsError, nothing more read.
-- `get(rejected)` forces a refresh when the server refused `rejected` (ExpiredToken), unless
-- another caller has replaced them already. Under OpenResty, `_M.default` keeps one provider
-- per configuration in each worker, so per-request clients share the cache.
--
-- No secret or token appears in an error, a log line or a `tostring`.
--
-- One file per concern under ddb/credentials/: creds (the credentials object, its errors,
-- which are ddb.errors', and redaction), context (options, environment, HTTP), xml, sts,
-- and the sources env, profile (shared files, AssumeRole), web_identity, process, container
-- and imds; provider is the cache; this file is the chain. Times are read by ddb.time.
-- @module ddb.credentials

local core = require "ddb.core"
local config = require "ddb.config"
local options = require "ddb.options"
local time = require "ddb.time"
local credential = require "ddb.credentials.creds"
local context = require "ddb.credentials.context"
local xml = require "ddb.credentials.xml"
local sts = require "ddb.credentials.sts"
local provider = require "ddb.credentials.provider"
local profile = require "ddb.credentials.profile"
local env_creds = require "ddb.credentials.env"
local container = require "ddb.credentials.container"
local imds = require "ddb.credentials.imds"

local type, tostring, ipairs, pcall = type, tostring, ipairs, pcall
local concat = table.concat
local cred_error, make_creds, static_source = credential.error, credential.make,
  credential.static_source
local env, env_true, make_ctx = context.env, context.env_true, context.new
local new_provider = provider.new
local load_files, profile_chain, assume_role_source = profile.load_files, profile.chain,
  profile.assume_role
local env_source, container_from_env, imds_source = env_creds.source, container.from_env,
  imds.source

local _M = { _VERSION = core._VERSION }

_M.Provider = provider.Provider

--- Seconds since the epoch for an ISO 8601 / RFC 3339 time ("2026-11-25T17:44:51Z",
-- "…T17:44:51.718318Z", "…+01:00"); nil for anything else.
-- @function parse_time
_M.parse_time = time.parse_iso8601

--- Reads an XML document into { ["Root/Child/Leaf"] = text } for its leaf elements
-- (namespace prefixes dropped). A path seen twice maps to false. nil, err for anything
-- outside the subset ddb.credentials.xml reads, or over 64 KiB.
-- @function xml_leaves
_M.xml_leaves = xml.leaves

--- Reads an STS answer: creds-table fields for a 200 answer of `action`, or the error's
-- code and message. Returns { access_key_id, secret_access_key, session_token, expiration }
-- | nil, { code, message } | nil, nil, reason (not a readable answer).
-- @function parse_sts
_M.parse_sts = sts.parse

local function user_source(fn)
  return {
    name = "credentials function",
    fetch = function()
      local ok, c, perr = pcall(fn)
      if not ok then
        return nil, cred_error("the credentials function raised an error: " .. tostring(c))
      end
      if c == nil then
        return nil, cred_error("the credentials function failed: " .. tostring(perr))
      end
      local norm, nerr = credential.from_table(c)
      if not norm then return nil, cred_error("the credentials function: " .. nerr) end
      return make_creds(norm.access_key, norm.secret_key, norm.session_token,
        norm.expiration, "credentials function")
    end,
  }
end

-- The first configured source: source | nil, err (err lists what was tried when nothing is).
local function select_source(ctx, opts)
  local explicit = opts.credentials
  if explicit ~= nil then
    if type(explicit) == "function" then
      local s = user_source(explicit)
      s.user = true
      return s
    end
    local c, err = credential.from_table(explicit)
    if not c then return nil, cred_error(err) end
    local creds, cerr = make_creds(c.access_key, c.secret_key, c.session_token, c.expiration,
      "explicit")
    if not creds then return nil, cerr end
    return static_source("explicit", creds)
  end
  -- what each source was, and why it was passed over: the error when none is configured
  local tried = { "explicit option (not given)" }
  if ctx.explicit_profile then
    tried[#tried + 1] = "environment (skipped: the profile option was given)"
  else
    local src, err = env_source(ctx)
    if src or err then return src, err end
    tried[#tried + 1] = "environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: not set)"
  end

  local files, ferr = load_files(ctx)
  if not files then return nil, ferr end
  local name = opts.profile or env(ctx, "AWS_PROFILE") or "default"
  local p = files.profile(name)
  if not p and name ~= "default" then
    return nil, cred_error(("profile %s (from %s) is in neither %s nor %s"):format(name,
      opts.profile and "the profile option" or "AWS_PROFILE", files.cred_path, files.conf_path),
      "ConfigError")
  end
  if p and p.role_arn and not p.web_identity_token_file then
    return assume_role_source(ctx, files, name, { name })
  end
  local src, err = profile_chain(ctx, files, name, true)
  if src or err then return src, err end
  local from_conf, from_creds = files.section(name)
  local function file_says(found, path, section, label)
    if not found then return path .. ": not found" end
    if not section then return path .. ": no " .. label .. " section" end
    return path .. ": " .. label .. " has no aws_access_key_id"
  end
  tried[#tried + 1] = ("web identity (%sprofile %s has no web_identity_token_file)"):format(
    ctx.explicit_profile and "" or "AWS_WEB_IDENTITY_TOKEN_FILE not set, and ", name)
  tried[#tried + 1] = "shared credentials file (" .. file_says(files.cred_found, files.cred_path,
    from_creds, "[" .. name .. "]") .. ")"
  tried[#tried + 1] = "credential_process (profile " .. name .. " has none)"
  tried[#tried + 1] = "config file (" .. file_says(files.conf_found, files.conf_path, from_conf,
    name == "default" and "[default]" or ("[profile " .. name .. "]")) .. ")"

  src, err = container_from_env(ctx)
  if src or err then return src, err end
  tried[#tried + 1] = "container (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, _FULL_URI: not set)"

  if env_true(ctx, "AWS_EC2_METADATA_DISABLED") then
    tried[#tried + 1] = "EC2 instance metadata (disabled by AWS_EC2_METADATA_DISABLED)"
    return nil, cred_error("no credentials found; tried: " .. concat(tried, ", "))
  end
  return imds_source(ctx, tried)
end

--- A provider for the default chain. Options: credentials (table or function), profile,
-- region (for STS), sts_endpoint, transport (a table with request(...) and
-- supports_methods), sleep(ms), log(level, message), now() (seconds), getenv(name),
-- container_base_url, and the timing numbers of DEFAULTS. Selecting the source reads only
-- the environment and the shared files; nothing is fetched until get().
-- Returns the provider, or nil, err when the configuration cannot work.
function _M.new(opts)
  opts = options.check("ddb.credentials.new", opts or {}, context.SPEC, 2)
  local ctx = make_ctx(opts)
  local src, err = select_source(ctx, opts)
  if not src then return nil, err end
  local p = new_provider(ctx, src)
  if src.static then
    local c, cerr = src.fetch(ctx)
    if not c then return nil, cerr end
    p.creds = c
  end
  return p
end

local shared = {}
local ENV_KEYS = { "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
  "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_ROLE_ARN",
  "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
  "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_EC2_METADATA_DISABLED",
  "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL", "HOME" }

--- Like new, but one provider per configuration is kept for the life of the Lua state (an
-- nginx worker): clients made per request share its cache and its single refresh. Explicit
-- credentials and functions are not shared (each client has its own).
function _M.default(opts)
  opts = options.check("ddb.credentials.default", opts or {}, context.SPEC, 2)
  if opts.credentials ~= nil or opts.now or opts.getenv then return _M.new(opts) end
  local parts = { tostring(opts.profile), tostring(opts.region), tostring(opts.sts_endpoint),
    tostring(opts.container_base_url), tostring(opts.transport), tostring(opts.log),
    tostring(opts.sleep) }
  for _, k in ipairs(ENV_KEYS) do parts[#parts + 1] = tostring(config.getenv(k)) end
  local key = concat(parts, "\0")
  local p = shared[key]
  if p then return p end
  local err
  p, err = _M.new(opts)
  if not p then return nil, err end
  shared[key] = p
  return p
end

--- Forgets the shared providers (tests; a process that changed its configuration).
function _M.reset_shared()
  shared = {}
end

return _M
