--- One operation of the C core, N times, for callgrind (spec/bench/section_instructions.lua
-- collects only inside the C entry point of that operation).
-- usage: lua instr.lua OP SIZE N
--   OP: sign | encode | parse | decode | marshal | unmarshal
--   SIZE: bytes of the item as DynamoDB JSON (about; 1024 or 102400)
local ddb = require "ddb"
local core = ddb.core

local op, target_size, iterations = arg[1], tonumber(arg[2]), tonumber(arg[3])

local lib = require "bench.lib"
local item = lib.big_item(target_size, { pk = "order#000123" })
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
