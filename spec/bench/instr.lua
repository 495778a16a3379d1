--- One operation of the C core, N times, for callgrind (spec/bench/section_instructions.lua
-- collects only inside the C entry point of that operation).
-- usage: lua instr.lua OP SIZE N
--   OP: sign | encode | parse | decode | marshal | unmarshal
--   SIZE: bytes of the item as DynamoDB JSON (about; 1024 or 102400)
local ddb = require "ddb"
local core = ddb.core

local op, target_size, iterations = arg[1], tonumber(arg[2]), tonumber(arg[3])

-- A plain item of about `size` bytes as AttributeValue JSON: a few top-level attributes and
-- a map of line records (strings, numbers with decimals, a set, a nested map).
local function make_item(target)
  local item = { pk = "order#000123", version = 7, status = "open", created = 1767225600,
    customer = { name = "Ada Lovelace", tier = "gold", id = 42 }, lines = {} }
  local function size() return #core.encode(core.marshal_item(item)) end
  local function add(i)
    item.lines[("line%04d"):format(i)] = { sku = ("SKU-%06d"):format(i * 7919 % 1000000),
      qty = i % 9 + 1, price = ddb.number(("%d.%02d"):format(i % 500, i % 100)),
      tags = ddb.string_set{ "a" .. i % 5, "b" .. i % 3 }, gift = i % 2 == 0 }
  end
  -- estimate the number of lines from the first one, then top up one by one
  local base = size()
  add(1)
  local per_line = size() - base
  local n = math.max(1, math.floor((target - base) / per_line))
  for i = 2, n do add(i) end
  while size() < target do
    n = n + 1
    add(n)
  end
  return item
end

local item = make_item(target_size)
local av = core.marshal_item(item)
local av_json = core.encode(av)
local put = { TableName = "bench", Item = av, ConditionExpression = "#v = :v",
  ExpressionAttributeNames = { ["#v"] = "version" },
  ExpressionAttributeValues = { [":v"] = { N = "6" } }, ReturnConsumedCapacity = "TOTAL" }
local body = core.encode(put)
local answer = '{"Item":' .. av_json .. ',"ConsumedCapacity":{"TableName":"bench",' ..
  '"CapacityUnits":1.0}}'
local headers = { ["x-amz-crc32"] = tostring(core.crc32(answer)),
  ["x-amzn-requestid"] = "REQ", ["content-type"] = "application/x-amz-json-1.0" }
local signer = core.signer_new{ access_key = "AKIDBENCHMARK0000000",
  secret_key = "benchmarkbenchmarkbenchmarkbenchmark0000", region = "us-east-1",
  host = "dynamodb.us-east-1.amazonaws.com", user_agent = "bench" }

local ops = {
  sign = function() return signer:prepare("PutItem", body) end,
  encode = function() return core.encode(put) end,
  parse = function() return core.parse_response(200, answer, headers) end,
  decode = function() return core.decode(answer) end,
  marshal = function() return core.marshal_item(item) end,
  unmarshal = function() return core.unmarshal_item(av) end,
}
local fn = assert(ops[op], "unknown operation")
assert(fn())   -- one outside the measurement: first-use costs (the signing key) excluded
for _ = 1, iterations do fn() end
io.stdout:write(("%s %d %d\n"):format(op, #av_json, #body))
