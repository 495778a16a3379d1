--- A counter endpoint for examples/openresty/nginx.conf: POST /counter/<name> adds one
-- through ddb.optimistic's with_item (never lost, never counted twice), GET reads it,
-- DELETE removes it. Answers are JSON: {"name": ..., "count": n, "conflicts": n} or
-- {"error": code, "applied": "no"|"maybe"}. metrics.conf sets `on_event` (see configure).
-- luacheck: globals ngx.status ngx.header

local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
-- loaded here, in init_by_lua, so every worker shares it (ddb.new picks it inside nginx)
require "ddb.transport.ngx"

local ngx = ngx
local tonumber, tostring, os_getenv = tonumber, tostring, os.getenv
local encode = ddb.encode_json

local _M = {}

-- One store per worker, made on the first request and shared by every request after it.
-- Safe without a lock: creating it does no I/O, so it cannot yield half-way, and nothing in
-- it belongs to one request (each call opens or borrows its own cosocket; idle connections
-- sit in nginx's per-worker pool). Workers share nothing, so any worker count works.
local store
local on_event   -- the metrics hook, if configure gave one

--- Settings for the stores the workers make, from init_by_lua: `on_event`, the metrics hook
-- (examples/openresty/metrics.lua's).
function _M.configure(opts)
  on_event = opts.on_event
end

local function get_store()
  if store then return store end
  local table_name = os_getenv("DDB_COUNTER_TABLE")
  if not table_name or table_name == "" then
    return nil, { code = "ConfigError", message = "DDB_COUNTER_TABLE is not set " ..
      "(and nginx.conf needs `env DDB_COUNTER_TABLE;`)", applied = "no" }
  end
  -- region, endpoint and credentials come from AWS_* variables passed by `env` directives
  local client, err = ddb.new{ timeout_ms = 2000, deadline_ms = 5000, on_event = on_event }
  if not client then return nil, err end
  local s
  s, err = optimistic.new{ table = table_name, client = client, key = { "pk" },
    max_attempts = 50, deadline_ms = 10000, on_event = on_event }
  if not s then return nil, err end
  store = s
  return store
end

local function reply(status, doc)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(encode(doc))
  return ngx.exit(status)
end

-- What a failed call tells the HTTP client; "applied" says whether the count may have moved.
local STATUS = { ConflictsExhausted = 409, DeadlineExceeded = 504, OutcomeUnknown = 502 }

local function failed(name, err)
  ngx.log(ngx.ERR, "counter ", name, ": ", tostring(err))
  return reply(STATUS[err.code] or (err.retryable and 503) or 500,
    { name = name, error = err.code, message = tostring(err.message), applied = err.applied })
end

local function add_one(item)
  local n = item and tonumber(tostring(item.count)) or 0
  return { count = n + 1 }
end

--- content_by_lua handler; name comes from the location's capture.
function _M.handle(name)
  local s, err = get_store()
  if not s then return failed(name, err) end
  local method = ngx.req.get_method()
  if method == "POST" then
    local item, werr, info = s:with_item({ pk = name }, add_one)
    if werr then return failed(name, werr) end
    return reply(200, { name = name, count = item.count, conflicts = info.conflicts })
  elseif method == "GET" then
    local item, gerr = s:get({ pk = name })
    if gerr then return failed(name, gerr) end
    local count = item ~= ddb.null and tonumber(tostring(item.count)) or 0
    return reply(200, { name = name, count = count })
  elseif method == "DELETE" then
    local _, derr = s:with_item({ pk = name }, function() return optimistic.DELETE end)
    if derr then return failed(name, derr) end
    return reply(200, { name = name, count = 0 })
  end
  ngx.header["Allow"] = "GET, POST, DELETE"
  return reply(405, { error = "MethodNotAllowed" })
end

return _M
