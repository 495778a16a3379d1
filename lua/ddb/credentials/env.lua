--- ddb.credentials.env: credentials from the environment (AWS_ACCESS_KEY_ID,
-- AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_CREDENTIAL_EXPIRATION), read again on every
-- fetch.
-- @module ddb.credentials.env

local creds = require "ddb.credentials.creds"
local context = require "ddb.credentials.context"

local cred_error, make_creds = creds.error, creds.make
local env = context.env

local _M = {}

local function env_source(ctx)
  local ak, sk = env(ctx, "AWS_ACCESS_KEY_ID"), env(ctx, "AWS_SECRET_ACCESS_KEY")
  -- botocore's EnvProvider: no key id, no environment credentials; a key id alone is an error
  if not ak then return nil end
  if not sk then
    return nil, cred_error("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
  end
  local src = { name = "environment" }
  src.fetch = function()
    -- read again on every fetch: a process that rewrites its environment gets the new keys
    return make_creds(env(ctx, "AWS_ACCESS_KEY_ID"), env(ctx, "AWS_SECRET_ACCESS_KEY"),
      env(ctx, "AWS_SESSION_TOKEN") or env(ctx, "AWS_SECURITY_TOKEN"),
      env(ctx, "AWS_CREDENTIAL_EXPIRATION"), "environment")
  end
  local c, err = src.fetch()
  if not c then return nil, err end
  src.static = c.expiration == nil
  return src
end

_M.source = env_source

return _M
