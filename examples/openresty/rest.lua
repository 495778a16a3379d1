--- A REST resource on DynamoDB with optimistic concurrency over HTTP, for
-- examples/openresty/rest.conf. Each item's version is its ETag:
--   GET    /items/<id>   200 with the item and ETag: "<version>" (404 when there is none)
--   PUT    /items/<id>   replaces it, only with If-Match: "<version>" (the version the client
--                        read: 412 Precondition Failed once another writer moved it on, with
--                        the current ETag), or If-None-Match: * to create it (412 if it
--                        exists); 428 Precondition Required with neither
--   PATCH  /items/<id>   merges the JSON object into it (the names in its "_remove" list are
--                        removed), If-Match
--   DELETE /items/<id>   deletes it, If-Match
--   POST   /bulk/<prefix>?n=N   adds one to N items <prefix>1..<prefix>N at once with
--                        store:with_each (on light threads), one outcome per item
-- The write is ddb.optimistic's with_item with expect_version: no re-read and no re-run
-- when the version has moved, and exactly once even when DynamoDB's answer is lost.
-- luacheck: globals ngx.status ngx.header

local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
require "ddb.transport.ngx"

local ngx = ngx
local type, pairs, ipairs, tostring, tonumber, os_getenv =
  type, pairs, ipairs, tostring, tonumber, os.getenv
local encode, decode = ddb.encode_json, ddb.decode_json

local _M = {}

-- One store per worker, made on the first request: it does no I/O, and holds no cosocket
-- (each call borrows one from nginx's pool and gives it back).
local store

local function get_store()
  if store then return store end
  local s, err = optimistic.new{ table = os_getenv("DDB_REST_TABLE"), key = { "pk" },
    timeout_ms = 2000, deadline_ms = 5000 }
  if not s then return nil, err end
  store = s
  return store
end

local function reply(status, doc, etag)
  ngx.status = status
  if etag then ngx.header["ETag"] = etag end
  if doc ~= nil then
    ngx.header["Content-Type"] = "application/json"
    ngx.say(encode(doc))
  end
  return ngx.exit(status)
end

local function etag_of(item)
  return '"' .. tostring(item.version) .. '"'
end

-- If-Match: "<version>" (a weak W/ tag compares the same here)
local function version_of(tag)
  local v = tag and tag:match('^%s*W?/?"(%-?%d+)"%s*$')
  return v
end

local function public(item)
  local out = {}
  for k, v in pairs(item) do
    if k ~= "pk" and k ~= "version" then out[k] = v end
  end
  return out
end

local STATUS = { VersionMismatch = 412, ValidationError = 400, ItemTooLarge = 413,
  OutcomeUnknown = 502, DeadlineExceeded = 504 }

local function failed(id, err)
  if err.code == "VersionMismatch" then
    -- the client's copy is stale: tell it the current version, so it can read and retry
    local tag = err.item ~= ddb.null and etag_of(err.item) or nil
    return reply(412, { error = err.code, message = err.message }, tag)
  end
  ngx.log(ngx.ERR, "items ", id, ": ", tostring(err))
  return reply(STATUS[err.code] or (err.retryable and 503) or 500,
    { error = err.code, message = tostring(err.message), applied = err.applied })
end

local function body_object()
  ngx.req.read_body()
  local doc = decode(ngx.req.get_body_data() or "")
  if type(doc) ~= "table" or doc[1] ~= nil then return nil end
  return doc
end

local function write(s, id, method)
  local h = ngx.req.get_headers()
  -- nginx's not-modified filter compares a request's If-Match with the ETag of a 200 and
  -- would turn the new version's answer into a 412: the precondition is ours to check
  ngx.req.clear_header("If-Match")
  ngx.req.clear_header("If-None-Match")
  local create = method == "PUT" and h["if-none-match"] == "*"
  local expect
  if create then
    expect = false
  else
    if not h["if-match"] then
      return reply(428, { error = "PreconditionRequired",
        message = "send If-Match with the ETag you read (or If-None-Match: * to create)" })
    end
    expect = version_of(h["if-match"])
    if not expect then return reply(412, { error = "BadETag" }) end
  end
  local doc
  if method ~= "DELETE" then
    doc = body_object()
    if not doc then return reply(400, { error = "ValidationError", message = "a JSON object" }) end
  end
  local item, err = s:with_item({ pk = id }, function(current)
    if method == "DELETE" then return optimistic.DELETE end
    local new = method == "PATCH" and current or { pk = id, version = current and current.version }
    for k, v in pairs(doc) do
      if k ~= "pk" and k ~= "version" and k ~= "_remove" then new[k] = v end
    end
    if method == "PATCH" and type(doc._remove) == "table" then
      for _, k in ipairs(doc._remove) do
        if k ~= "pk" and k ~= "version" then new[k] = nil end
      end
    end
    return new
  end, { expect_version = expect })
  if not item then return failed(id, err) end
  if method == "DELETE" then return reply(204) end
  return reply(create and 201 or 200, public(item), etag_of(item))
end

--- content_by_lua handler for /items/<id>.
function _M.item(id)
  local s, err = get_store()
  if not s then return failed(id, err) end
  local method = ngx.req.get_method()
  if method == "GET" then
    local item, gerr = s:get({ pk = id })
    if not item then return failed(id, gerr) end
    if item == ddb.null then return reply(404, { error = "NotFound" }) end
    return reply(200, public(item), etag_of(item))
  elseif method == "PUT" or method == "PATCH" or method == "DELETE" then
    return write(s, id, method)
  end
  return reply(405, { error = "MethodNotAllowed" })
end

--- content_by_lua handler for POST /bulk/<prefix>?n=N.
function _M.bulk(prefix)
  local s, err = get_store()
  if not s then return failed(prefix, err) end
  local n = tonumber(ngx.var.arg_n) or 10
  local keys = {}
  for i = 1, n do keys[i] = { pk = prefix .. i } end
  local results, _, info = s:with_each(keys, function(item)
    item = item or {}
    item.count = (tonumber(tostring(item.count)) or 0) + 1
    return item
  end, { concurrency = 8 })
  local codes = {}
  for _, r in ipairs(results) do
    if r.err then codes[r.err.code] = (codes[r.err.code] or 0) + 1 end
  end
  return reply(200, { ok = info.ok, failed = info.failed, unknown = info.unknown,
    runner = info.runner, concurrency = info.concurrency, codes = codes })
end

return _M
