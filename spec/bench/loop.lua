--- The module's with_item loop against the fixed-response server, one process, one client
-- (libcurl, one easy handle): read, modify, conditional write. Prints one JSON line.
-- usage: lua loop.lua URL SECONDS [mode] [returns]
--   mode "cpu" (default): ops/s and client CPU per op (os.clock: user + system)
--   mode "ops": exactly SECONDS operations, no warm-up (for callgrind profiles)
--   mode "memory": VmRSS after 1,000, 10,000 and 100,000 operations
--   mode "connections": the TCP connections the client's libcurl handle made (its stats)
--   mode "client": as "cpu", but each operation sends the two requests one with_item sent
--     (its GetItem and its UpdateItem, taken from a first with_item) through the same client,
--     without the engine: signing, the JSON and the HTTP/1.1 alone, the module's floor on
--     this path
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local lib = require "bench.lib"

--   returns: the store's `returns` ("stored", the default, or "written")
local url, seconds, mode, returns = arg[1], tonumber(arg[2] or "5"), arg[3] or "cpu", arg[4]

local opts = { region = lib.REGION, endpoint = url,
  credentials = { access_key_id = lib.ACCESS_KEY, secret_access_key = lib.SECRET_KEY } }
local client = assert(ddb.new(opts))
local store = assert(optimistic.new{ table = "bench", client = client, key = { "pk" },
  returns = returns })
local key = { pk = "bench#1" }

local function bump(item)
  item.counter = item.counter + 1
  return item
end

local function one()
  local item, err = store:with_item(key, bump)
  if not item then error(tostring(err)) end
end

if mode == "client" then
  -- the requests of one with_item, as the engine gave them to the client
  local sent, call = {}, client._call
  client._call = function(self, op, req, o)
    sent[#sent + 1] = { op = op, req = req, opts = { plain = o and o.plain,
      return_maybe = o and o.return_maybe } }
    return call(self, op, req, o)
  end
  one()
  client._call = call
  assert(#sent == 2, "a with_item against the fixed server sends two requests")
  one = function()
    for i = 1, #sent do
      local r = sent[i]
      local res, err = client:_call(r.op, r.req, r.opts)
      if not res then error(tostring(err)) end
    end
  end
end

local out = {}
if mode == "ops" then
  for _ = 1, seconds do one() end
  return
end
for _ = 1, 200 do one() end   -- warm-up (and LuaJIT's traces)

if mode == "memory" then
  local done, marks = 0, { 1000, 10000, 100000 }
  out.rss_kb_start = lib.rss_kb()
  for _, m in ipairs(marks) do
    while done < m do
      one()
      done = done + 1
    end
    out["rss_kb_after_" .. m] = lib.rss_kb()
  end
  collectgarbage("collect")
  out.rss_kb_after_gc = lib.rss_kb()
  out.lua_kb_after_gc = collectgarbage("count")
else
  local clock, now = os.clock, lib.now_ms
  local c0, t0 = clock(), now()
  local deadline = t0 + seconds * 1000
  local ops = 0
  repeat
    for _ = 1, 50 do one() end
    ops = ops + 50
  until now() >= deadline
  local wall = (now() - t0) / 1000
  out.ops = ops
  out.wall_s = wall
  out.cpu_s = clock() - c0
  out.ops_per_s = ops / wall
  out.cpu_us_per_op = out.cpu_s / ops * 1e6
  out.requests_per_s = 2 * ops / wall
  if mode == "connections" then
    out.new_connections = client.transport.handle:stats().connections
    out.requests = 2 * (ops + 200)
  end
end
out.runtime = jit and jit.version or _VERSION
print(lib.json(out))
