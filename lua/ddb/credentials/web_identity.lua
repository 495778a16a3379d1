--- ddb.credentials.web_identity: credentials for a web identity token (EKS service accounts):
-- the token file read on every refresh, exchanged by STS AssumeRoleWithWebIdentity.
-- @module ddb.credentials.web_identity

local creds = require "ddb.credentials.creds"
local sts = require "ddb.credentials.sts"

local io_open = io.open
local cred_error = creds.error
local sts_call, session_name = sts.call, sts.session_name

local _M = {}

local function web_identity_source(ctx, token_file, role_arn, role_session_name, origin)
  local name = "web identity (" .. origin .. ", role " .. role_arn .. ")"
  return {
    name = name,
    fetch = function(_, deadline)
      -- read on every refresh: the platform rotates the token file
      local f = io_open(token_file, "rb")
      local token = f and f:read("*a")
      if f then f:close() end
      if not token then
        return nil, cred_error(name .. ": cannot read the token file " .. token_file)
      end
      token = token:gsub("%s+$", "")
      if token == "" then
        return nil, cred_error(name .. ": the token file " .. token_file .. " is empty")
      end
      return sts_call(ctx, "AssumeRoleWithWebIdentity", {
        { "Action", "AssumeRoleWithWebIdentity" }, { "Version", "2011-06-15" },
        { "RoleArn", role_arn }, { "RoleSessionName", session_name(ctx, role_session_name) },
        { "WebIdentityToken", token },
      }, nil, name, { token }, deadline)
    end,
  }
end

_M.source = web_identity_source

return _M
