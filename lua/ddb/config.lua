--- Configuration resolution: region and endpoint from options, the environment and the
-- shared AWS files, in the order the AWS SDKs use, and the one loader of those files (the
-- credential chain, ddb.credentials, reads them through it too).
-- @module ddb.config

local type, pairs, tonumber = type, pairs, tonumber
local io_open, os_getenv = io.open, os.getenv

local _M = {}

-- Tests replace this to control what the module sees of the environment.
_M.getenv = os_getenv

local function env(name)
  local v = _M.getenv(name)
  if v == "" then return nil end
  return v
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

--- Parses an INI-style AWS file into { section = { key = value } }.
-- Returns nil, err when the file exists but cannot be read; {} when it does not exist.
function _M.parse_ini(text)
  local sections, current = {}, nil
  local n = 0
  local last_key, last_indent
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = line:gsub("\r$", "")
    local stripped = trim(line)
    local blank = stripped == "" or stripped:match("^[#;]")
    local indent = #line:match("^%s*")
    if not blank and stripped:match("^%[") then
      local name = stripped:match("^%[%s*(.-)%s*%]$")
      if not name or name == "" then
        return nil, "line " .. n .. ": malformed section header"
      end
      current = sections[name] or {}
      sections[name] = current
      last_key = nil
    elseif not blank and last_key and indent > last_indent then
      -- a line indented under a key continues its value (as in Python's configparser):
      -- nested settings ("s3 =" then "  max_concurrent_requests = 20") stay plain text
      -- instead of overriding the profile's own keys
      current[last_key] = current[last_key] .. "\n" .. stripped
    elseif not blank then
      local k, v = stripped:match("^([^=]-)%s*=%s*(.*)$")
      if not k or k == "" then
        return nil, "line " .. n .. ": expected key = value"
      end
      if not current then
        return nil, "line " .. n .. ": key outside any section"
      end
      last_key, last_indent = trim(k):lower(), indent
      current[last_key] = v:gsub("%s+[#;].*$", "")
    end
  end
  return sections
end

local function read_file(path)
  local f = io_open(path, "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return text
end

-- A shared file: its sections, and whether it exists | nil, "PATH: line N: what". A file
-- that cannot be opened counts as absent, as in the AWS SDKs (nginx workers, running as
-- nobody, cannot open /root/.aws).
local function load_ini(path)
  local text = read_file(path)
  if not text then return {}, false end
  local t, err = _M.parse_ini(text)
  if not t then return nil, path .. ": " .. err end
  return t, true
end

--- The shared AWS files, read once: the one loader of both the region and the credential
-- chain. getenv(name) gives the environment (nil for unset or empty); the file variables
-- may start with "~/". Returns { cred_path, conf_path, creds, conf, cred_found, conf_found,
-- section(name) -> config file's section, credentials file's section, profile(name) -> the
-- two merged, the credentials file's on top, or nil when neither has it } | nil, err naming
-- the file and the line that does not parse.
function _M.load_files(getenv)
  local home = getenv("HOME") or "/root"
  local function expand(path)
    if path:sub(1, 2) == "~/" then return home .. path:sub(2) end
    return path
  end
  local cred_path = expand(getenv("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials")
  local conf_path = expand(getenv("AWS_CONFIG_FILE") or "~/.aws/config")
  local creds, cred_found = load_ini(cred_path)
  if not creds then return nil, cred_found end
  local conf, conf_found = load_ini(conf_path)
  if not conf then return nil, conf_found end
  local files = { cred_path = cred_path, conf_path = conf_path, creds = creds, conf = conf,
    cred_found = cred_found, conf_found = conf_found }
  -- the profile as botocore sees it: the config file's section, the credentials file's on top
  function files.section(name)
    local sec = name == "default" and (conf.default or conf["profile default"])
      or conf["profile " .. name]
    return sec, creds[name]
  end
  function files.profile(name)
    local from_conf, from_creds = files.section(name)
    if not from_conf and not from_creds then return nil end
    local merged = {}
    for k, v in pairs(from_conf or {}) do merged[k] = v end
    for k, v in pairs(from_creds or {}) do merged[k] = v end
    return merged
  end
  return files
end

--- The active profile's settings: the credentials file's [name] over the config file's
-- [profile name] ([default] in both for the default profile); {} when neither has it.
-- Returns settings, nil, { cred_path, conf_path, name } | nil, err (a file that does not
-- parse, with its path and line).
function _M.profile(name)
  name = name or env("AWS_PROFILE") or "default"
  local files, err = _M.load_files(env)
  if not files then return nil, err end
  return files.profile(name) or {}, nil,
    { cred_path = files.cred_path, conf_path = files.conf_path, name = name }
end

--- Region: option, AWS_REGION, AWS_DEFAULT_REGION, the profile's region. Never parsed
-- from an endpoint host.
function _M.region(opt)
  if opt ~= nil then
    if type(opt) ~= "string" or not opt:match("^[%w%-]+$") then
      return nil, "region must be a name such as 'us-east-1'"
    end
    return opt
  end
  -- names from the environment or a file are checked like the option: they end up in the
  -- endpoint's host name and in every signature's scope
  local r, source = env("AWS_REGION"), "AWS_REGION"
  if not r then r, source = env("AWS_DEFAULT_REGION"), "AWS_DEFAULT_REGION" end
  if not r then
    local prof, err = _M.profile()
    -- a broken file is reported as such, not as a missing region
    if not prof then return nil, "cannot read the shared AWS files: " .. err end
    r, source = prof.region, "the shared AWS files"
  end
  if r then
    if not r:match("^[%w%-]+$") then
      return nil, ("region from %s must be a name such as 'us-east-1'"):format(source)
    end
    return r
  end
  return nil, "no region: set the 'region' option, AWS_REGION or AWS_DEFAULT_REGION"
end

--- Splits an endpoint URL into its parts; nil, err for anything but http(s)://host[:port][/].
function _M.parse_endpoint(url)
  if type(url) ~= "string" then return nil, "endpoint must be a string URL" end
  local scheme, rest = url:match("^(https?)://(.+)$")
  if not scheme then return nil, "endpoint must start with http:// or https://" end
  local hostport, path = rest:match("^([^/]+)(/?.*)$")
  if not hostport or (path ~= "" and path ~= "/") then
    return nil, "endpoint must be scheme://host[:port] with no path"
  end
  -- host: a name or IPv4 address, or an IPv6 address in brackets; then an optional :port
  local host, after = hostport:match("^%[([%x:%.]*)%](.*)$")
  if host then
    if not host:find(":", 1, true) then return nil, "endpoint has a bad host" end
  else
    host, after = hostport:match("^([^:]*)(.*)$")
    if not host:match("^[%w%-_%.]+$") then return nil, "endpoint has a bad host" end
  end
  local port
  if after ~= "" then
    port = after:match("^:(%d+)$")
    if not port then return nil, "endpoint has a bad port" end
  end
  local default_port = scheme == "https" and 443 or 80
  port = tonumber(port) or default_port
  if port < 1 or port > 65535 then return nil, "endpoint port out of range" end
  local host_header = hostport
  if port == default_port then
    host_header = hostport:gsub(":%d+$", "")
  end
  return {
    scheme = scheme, host = host, port = port, tls = scheme == "https",
    host_header = host_header, url = scheme .. "://" .. hostport .. "/",
  }
end

--- Endpoint: option, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, else the regional one.
function _M.endpoint(opt, region)
  local url = opt or env("AWS_ENDPOINT_URL_DYNAMODB") or env("AWS_ENDPOINT_URL")
    or ("https://dynamodb." .. region .. ".amazonaws.com")
  return _M.parse_endpoint(url)
end

--- A number from the environment, validated.
function _M.env_number(name, lo, hi)
  local v = env(name)
  if v == nil then return nil end
  local n = tonumber(v)
  if not n or n < lo or n > hi or n ~= math.floor(n) then
    return nil, ("%s must be a whole number from %d to %d"):format(name, lo, hi)
  end
  return n
end

return _M
