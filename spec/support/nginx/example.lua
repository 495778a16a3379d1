--- Runs examples/openresty/nginx.conf itself (only the port, the worker count and, for a
-- TLS upstream, the trust file changed) against a local DynamoDB server, and checks the
-- counter's promise. Shared by openresty_spec.lua and tls_spec.lua.
local helper = require "helper"
local runner = require "support.nginx.runner"
local ddb = require "ddb"
local assert = require "luassert"

local decode = ddb.decode_json

local _M = {}

function _M.conf(workers, trust)
  local text = runner.read(runner.root .. "/examples/openresty/nginx.conf")
  text = runner.set_directive(text, "listen", "127.0.0.1:@PORT1@")
  text = runner.set_directive(text, "worker_processes", workers)
  if trust then text = runner.set_directive(text, "lua_ssl_trusted_certificate", trust) end
  return text
end

--- Starts it; opts: endpoint (default server.url), trust (a CA file).
function _M.start(server, table_name, workers, opts)
  opts = opts or {}
  return runner.start{ conf = _M.conf(workers, opts.trust), env = {
    AWS_REGION = helper.region(), AWS_ENDPOINT_URL_DYNAMODB = opts.endpoint or server.url,
    AWS_ACCESS_KEY_ID = helper.access_key(), AWS_SECRET_ACCESS_KEY = helper.secret_key(),
    DDB_COUNTER_TABLE = table_name,
  } }
end

--- POSTs per_key increments to each of `keys` counters, `parallel` at a time, and checks
-- the promise: per counter, the stored count is the number of successful answers, each
-- success carries a different count from 1 to that number, and every failed answer says
-- applied = "no". With opts.lossy (answers are being lost on purpose) a failure may also
-- say applied = "maybe" (with_item's OutcomeUnknown, when the item can no longer prove
-- it), so the stored count must lie between the successes and the successes plus those;
-- and since a resolved write returns the item as it is by then, counts may repeat.
-- opts.prefix names the counters (prefix .. n, "k" by default).
-- Returns successes, failures (a table: applied value -> number), elapsed ms.
function _M.assert_exactly_once(srv, keys, per_key, parallel, opts)
  opts = opts or {}
  local prefix = opts.prefix or "k"
  local urls = {}
  for i = 1, per_key do
    for k = 1, keys do urls[#urls + 1] = srv:url("/counter/" .. prefix .. k .. "?i=" .. i) end
  end
  local bodies, elapsed = runner.parallel("POST", urls, parallel)
  assert.are.equal(#urls, #bodies, "one answer per request")
  local ok, maybe, counts, failures = {}, {}, {}, { no = 0, maybe = 0 }
  for _, body in ipairs(bodies) do
    local doc = decode(body)
    if doc.count then
      ok[doc.name] = (ok[doc.name] or 0) + 1
      counts[doc.name] = counts[doc.name] or {}
      if not opts.lossy then
        assert.is_nil(counts[doc.name][doc.count], "count " .. doc.count .. " answered twice")
      end
      counts[doc.name][doc.count] = true
    elseif opts.lossy and doc.applied == "maybe" then
      failures.maybe = failures.maybe + 1
      maybe[doc.name] = (maybe[doc.name] or 0) + 1
    else
      assert.are.equal("no", doc.applied, "a failed increment may have landed: " .. body)
      failures.no = failures.no + 1
    end
  end
  local successes = 0
  for k = 1, keys do
    local name = prefix .. k
    local n = ok[name] or 0
    if not opts.lossy then
      for c = 1, n do assert.is_true(counts[name][c], name .. " lacks count " .. c) end
    end
    local status, body = runner.http("GET", srv:url("/counter/" .. name))
    assert.are.equal(200, status, body)
    local stored = decode(body).count
    local most = n + (maybe[name] or 0)
    assert.is_true(stored >= n and stored <= most, ("%s: stored %d, answered %d ok and %d " ..
      "maybe"):format(name, stored, n, maybe[name] or 0))
    successes = successes + n
  end
  return successes, failures, elapsed
end

return _M
