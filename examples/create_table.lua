-- Creates the tables the README's and docs/'s examples use (default: Accounts), each with a
-- string hash key "pk" and on-demand billing, and waits until they are ACTIVE. A table that
-- exists already is left as it is, so the try-it recipe can be run again.
--   lua5.4 examples/create_table.lua [NAME ...]
-- Region, endpoint and credentials come from the environment (AWS_REGION,
-- AWS_ENDPOINT_URL_DYNAMODB, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), as for every example.
local ddb = require "ddb"

local client = assert(ddb.new())
local names = { ... }
if #names == 0 then names = { "Accounts" } end

for _, name in ipairs(names) do
  local _, err = client:create_table{
    TableName = name,
    KeySchema = { { AttributeName = "pk", KeyType = "HASH" } },
    AttributeDefinitions = { { AttributeName = "pk", AttributeType = "S" } },
    BillingMode = "PAY_PER_REQUEST",
  }
  if err and err.code ~= "ResourceInUseException" then
    io.stderr:write("create_table.lua: ", tostring(err), "\n")
    os.exit(1)
  end
  local _, werr = client:wait_for_table(name)
  if werr then
    io.stderr:write("create_table.lua: ", tostring(werr), "\n")
    os.exit(1)
  end
  print(("table %s is ACTIVE (%s)"):format(name, err and "it existed already" or "created"))
end
