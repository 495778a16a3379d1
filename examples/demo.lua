-- The README's demo: optimistic read-modify-write on a local DynamoDB.
-- `make demo` starts a local server and runs this with AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION
-- and test credentials in the environment, the same variables a real deployment uses.
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"

local client = assert(ddb.new())   -- region, endpoint and credentials from the environment
print("client: " .. tostring(client))

local table_name = "demo_accounts_" .. os.time()
assert(client:create_table{
  TableName = table_name,
  KeySchema = { { AttributeName = "pk", KeyType = "HASH" } },
  AttributeDefinitions = { { AttributeName = "pk", AttributeType = "S" } },
  BillingMode = "PAY_PER_REQUEST",
})
assert(client:wait_for_table(table_name))
print("created table " .. table_name)

local accounts = assert(optimistic.new{ table = table_name, client = client })

local function deposit(amount)
  return function(item)
    item = item or { pk = "user#1", balance = 0, history = ddb.list() }
    item.balance = item.balance + amount
    item.history[#item.history + 1] = amount
    return item
  end
end

-- 1. Create the item, then update it: version 1, then 2.
for _, amount in ipairs{ 10, 5 } do
  local item, _, info = assert(accounts:with_item({ pk = "user#1" }, deposit(amount)))
  print(("deposit %2d -> balance %d, version %d (%s, %d requests)"):format(
    amount, item.balance, item.version, info.action, info.requests))
end

-- 2. Another writer changes the item between our read and our write: the function runs
--    again on the fresh item, and neither deposit is lost.
local runs = 0
local item, _, info = assert(accounts:with_item({ pk = "user#1" }, function(current)
  runs = runs + 1
  if runs == 1 then
    print("  (meanwhile another writer deposits 100)")
    assert(accounts:with_item({ pk = "user#1" }, deposit(100)))
  end
  return deposit(1)(current)
end))
print(("deposit  1 -> balance %d, version %d after %d runs and %d conflict"):format(
  item.balance, item.version, info.attempts, info.conflicts))

-- 3. Bad results are refused before anything is written.
local _, err = accounts:with_item({ pk = "user#1" }, function(current)
  current.pk = "user#2"
  return current
end)
print("changing the key is refused: " .. tostring(err))

-- 4. Delete, conditioned on the version read.
assert(accounts:with_item({ pk = "user#1" }, function() return optimistic.DELETE end))
local now = assert(accounts:get({ pk = "user#1" }))
print("deleted; reading it now gives " .. tostring(now))

assert(client:delete_table{ TableName = table_name })
print("demo finished")
