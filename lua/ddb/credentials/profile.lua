--- ddb.credentials.profile: the shared config and credentials files' sources for a profile:
-- its web identity, static keys and credential_process (botocore's ProfileProviderBuilder),
-- and AssumeRole from source_profile or credential_source (role chains followed, loops
-- refused).
-- @module ddb.credentials.profile

local config = require "ddb.config"
local creds = require "ddb.credentials.creds"
local context = require "ddb.credentials.context"
local provider = require "ddb.credentials.provider"
local sts = require "ddb.credentials.sts"
local env_creds = require "ddb.credentials.env"
local web_identity = require "ddb.credentials.web_identity"
local container = require "ddb.credentials.container"
local imds = require "ddb.credentials.imds"
local process = require "ddb.credentials.process"

local tonumber, ipairs = tonumber, ipairs
local floor = math.floor
local concat = table.concat
local cred_error, make_creds, static_source = creds.error, creds.make, creds.static_source
local env = context.env
local new_provider = provider.new
local sts_call, session_name = sts.call, sts.session_name
local env_source, web_identity_source = env_creds.source, web_identity.source
local container_from_env, imds_source = container.from_env, imds.source
local process_source = process.source

local _M = {}

-- -----------------------------------------------------------------------------
-- The shared files through ddb.config's loader (the region's too): files | nil, err.
local function load_files(ctx)
  local files, err = config.load_files(function(name) return env(ctx, name) end)
  if not files then
    return nil, cred_error("cannot read the shared AWS files: " .. err, "ConfigError")
  end
  return files
end

local function static_from(section, what)
  if not section then return nil end
  local ak, sk = section.aws_access_key_id, section.aws_secret_access_key
  if not ak and not sk then return nil end
  if not (ak and sk) then
    return nil, cred_error(what .. " has only one of aws_access_key_id and aws_secret_access_key",
      "ConfigError")
  end
  local c, err = make_creds(ak, sk, section.aws_session_token, nil, what)
  if not c then return nil, err end
  return static_source(what, c)
end

local function has_static(p)
  return p.aws_access_key_id ~= nil or p.aws_secret_access_key ~= nil
end

local function refuse_unsupported(p, name)
  if p.sso_start_url or p.sso_session or p.login_session then
    return cred_error(("profile %s uses AWS IAM Identity Center (SSO) or console login, " ..
      "which this client does not support; export credentials (aws configure " ..
      "export-credentials) or use credential_process"):format(name), "ConfigError")
  end
end

local assume_role_source, profile_chain   -- mutually recursive

-- The profile-only providers of botocore's ProfileProviderBuilder: web identity (from the
-- profile; the environment's only for the top profile), static keys in the credentials file,
-- credential_process, static keys in the config file. nil when none applies.
function profile_chain(ctx, files, name, top)
  local p = files.profile(name) or {}
  local bad = refuse_unsupported(p, name)
  if bad then return nil, bad end
  -- web identity
  local function cfg(key, env_name)
    if top and not ctx.explicit_profile then
      local v = env(ctx, env_name)
      if v then return v, env_name end
    end
    if p[key] then return p[key], "profile " .. name end
  end
  local token_file, origin = cfg("web_identity_token_file", "AWS_WEB_IDENTITY_TOKEN_FILE")
  if token_file then
    local role_arn = cfg("role_arn", "AWS_ROLE_ARN")
    if not role_arn then
      return nil, cred_error(("%s names a web identity token file but no role: set " ..
        "AWS_ROLE_ARN or the profile's role_arn"):format(origin), "ConfigError")
    end
    return web_identity_source(ctx, token_file, role_arn,
      (cfg("role_session_name", "AWS_ROLE_SESSION_NAME")), origin)
  end
  local from_conf, from_creds = files.section(name)
  local src, err = static_from(from_creds, "shared credentials file (profile " .. name .. ")")
  if src or err then return src, err end
  if p.credential_process then return process_source(ctx, p.credential_process, name) end
  src, err = static_from(from_conf, "config file (profile " .. name .. ")")
  if src or err then return src, err end
  return nil
end

local function named_source(ctx, source_name, profile)
  local src, err
  if source_name == "Environment" then
    src, err = env_source(ctx)
    if not src and not err then
      err = cred_error("profile " .. profile .. " has credential_source Environment, but " ..
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set", "ConfigError")
    end
  elseif source_name == "EcsContainer" then
    src, err = container_from_env(ctx)
    if not src and not err then
      err = cred_error("profile " .. profile .. " has credential_source EcsContainer, but " ..
        "neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor _FULL_URI is set", "ConfigError")
    end
  elseif source_name == "Ec2InstanceMetadata" then
    src = imds_source(ctx)
  else
    err = cred_error(("profile %s has credential_source %s; the valid ones are Environment, " ..
      "EcsContainer and Ec2InstanceMetadata"):format(profile, source_name), "ConfigError")
  end
  return src, err
end

-- AssumeRole for profile `name`, whose source credentials come from source_profile or
-- credential_source. visited: the profiles of this chain so far (loops are refused).
function assume_role_source(ctx, files, name, visited)
  local p = files.profile(name)
  local bad = refuse_unsupported(p, name)
  if bad then return nil, bad end
  if p.mfa_serial then
    return nil, cred_error("profile " .. name .. " needs an MFA code (mfa_serial), which a " ..
      "library cannot prompt for", "ConfigError")
  end
  local duration = p.duration_seconds
  if duration ~= nil then
    duration = tonumber(duration)
    if not duration or duration ~= floor(duration) or duration < 1 or duration > 43200 then
      return nil, cred_error("profile " .. name .. ": duration_seconds must be a whole number " ..
        "of seconds up to 43200", "ConfigError")
    end
  end
  local source_profile, credential_source = p.source_profile, p.credential_source
  local src, err
  if source_profile and credential_source then
    return nil, cred_error("profile " .. name .. " has both source_profile and " ..
      "credential_source", "ConfigError")
  elseif credential_source then
    src, err = named_source(ctx, credential_source, name)
  elseif source_profile then
    local sp = files.profile(source_profile)
    if not sp then
      return nil, cred_error(("profile %s names source_profile %s, which does not exist in %s " ..
        "or %s"):format(name, source_profile, files.cred_path, files.conf_path), "ConfigError")
    end
    local seen = false
    for _, v in ipairs(visited) do if v == source_profile then seen = true end end
    -- a profile may name itself to take its own static keys; any other repeat is a loop
    if seen and not (source_profile == name and has_static(sp)) then
      visited[#visited + 1] = source_profile
      return nil, cred_error("source_profile loop: " .. concat(visited, " -> "), "ConfigError")
    end
    visited[#visited + 1] = source_profile
    if has_static(sp) or not sp.role_arn or source_profile == name then
      src, err = profile_chain(ctx, files, source_profile, false)
      if not src and not err then
        err = cred_error("source_profile " .. source_profile .. " (of profile " .. name ..
          ") has no credentials", "ConfigError")
      end
    else
      src, err = assume_role_source(ctx, files, source_profile, visited)
    end
  else
    return nil, cred_error("profile " .. name .. " has role_arn but neither source_profile " ..
      "nor credential_source", "ConfigError")
  end
  if not src then return nil, err end
  local inner = new_provider(ctx, src)
  local role_arn = p.role_arn
  local what = "profile " .. name .. " (AssumeRole " .. role_arn .. ")"
  return {
    name = what,
    fetch = function(_, deadline)
      local c, cerr = inner:get(nil, deadline)
      if not c then return nil, cerr end
      local params = { { "Action", "AssumeRole" }, { "Version", "2011-06-15" },
        { "RoleArn", role_arn }, { "RoleSessionName", session_name(ctx, p.role_session_name) } }
      if duration then params[#params + 1] = { "DurationSeconds", duration } end
      if p.external_id then params[#params + 1] = { "ExternalId", p.external_id } end
      local r, rerr = sts_call(ctx, "AssumeRole", params, c, what, nil, deadline)
      if not r and rerr.sts_code == "ExpiredToken" then
        -- the source credentials went stale under us: renew them once
        c, cerr = inner:get(c, deadline)
        if not c then return nil, cerr end
        r, rerr = sts_call(ctx, "AssumeRole", params, c, what, nil, deadline)
      end
      return r, rerr
    end,
  }
end

_M.load_files = load_files
_M.chain = profile_chain
_M.assume_role = assume_role_source

return _M
