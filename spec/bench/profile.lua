--- The module's own cost per with_item, without a network: the client runs over an
-- in-process transport that answers from the fixed-response bodies at once. Run under
-- callgrind by make bench-profile (spec/bench/section_profile.lua) to see where the CPU
-- goes; run plainly it prints microseconds per operation.
-- usage: lua profile.lua N
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local lib = require "bench.lib"

local core = ddb.core
local n = tonumber(arg[1] or "20000")

local headers = {}
for op, b in pairs(lib.BODIES) do
  headers[op] = { ["x-amz-crc32"] = tostring(core.crc32(b)), ["x-amzn-requestid"] = "REQ",
    ["content-type"] = "application/x-amz-json-1.0" }
end
local transport = {
  request = function(_, _, lines, _)
    -- signer:prepare puts X-Amz-Target fourth (spec/unit/sigv4_spec.lua checks the order)
    local op = lines[4]:match("^X%-Amz%-Target: DynamoDB_20120810%.(%a+)")
    return 200, headers[op], lib.BODIES[op], false
  end,
  sleep = function() end,
}
local client = assert(ddb.new{ region = lib.REGION, endpoint = "http://127.0.0.1:1",
  transport = transport,
  credentials = { access_key_id = lib.ACCESS_KEY, secret_access_key = lib.SECRET_KEY } })
local store = assert(optimistic.new{ table = "bench", client = client, key = { "pk" } })
local key = { pk = "bench#1" }
local function bump(item)
  item.counter = item.counter + 1
  return item
end

for _ = 1, 200 do assert(store:with_item(key, bump)) end
local c0 = os.clock()
for _ = 1, n do assert(store:with_item(key, bump)) end
print(lib.json({ ops = n, cpu_us_per_op = (os.clock() - c0) / n * 1e6,
  runtime = jit and jit.version or _VERSION }))
