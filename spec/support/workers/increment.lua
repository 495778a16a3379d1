-- A worker process for the lost-update specs: increments one counter N times with
-- with_item and prints "done <successes> <failures> <unknown>" (failures listed on stderr).
-- usage: lua increment.lua ENDPOINT TABLE KEY N [field]
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"

local endpoint, table_name, key, n, field = arg[1], arg[2], arg[3], tonumber(arg[4]), arg[5] or "n"
local client = assert(ddb.new{
  region = os.getenv("DDB_TEST_REGION"), endpoint = endpoint,
  credentials = { access_key_id = os.getenv("DDB_TEST_ACCESS_KEY"),
                  secret_access_key = os.getenv("DDB_TEST_SECRET_KEY") },
})
local store = assert(optimistic.new{ table = table_name, client = client, key = { "pk" },
  max_attempts = 100, deadline_ms = 60000 })

local ok_count, failed, unknown = 0, 0, 0
for _ = 1, n do
  local item, err = store:with_item({ pk = key }, function(item)
    item = item or { pk = key }
    item[field] = (item[field] or 0) + 1
    return item
  end)
  if item then
    ok_count = ok_count + 1
  elseif err.code == "OutcomeUnknown" then
    unknown = unknown + 1
  else
    failed = failed + 1
    io.stderr:write(tostring(err), "\n")
  end
end
print(("done %d %d %d"):format(ok_count, failed, unknown))
