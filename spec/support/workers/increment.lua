-- A worker process for the lost-update specs: increments one counter N times with
-- with_item and prints "done <successes> <failures> <unknown>" (failures listed on stderr).
-- usage: lua increment.lua ENDPOINT TABLE KEY N [field] [defaults]
-- With "defaults", the store keeps every default setting (deadline, attempts, backoff);
-- failures are counted by code on the last line: "codes <code>:<n> ...".
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"

local endpoint, table_name, key, n, field = arg[1], arg[2], arg[3], tonumber(arg[4]), arg[5] or "n"
local defaults = arg[6] == "defaults"
local client = assert(ddb.new{
  region = os.getenv("DDB_TEST_REGION"), endpoint = endpoint,
  credentials = { access_key_id = os.getenv("DDB_TEST_ACCESS_KEY"),
                  secret_access_key = os.getenv("DDB_TEST_SECRET_KEY") },
})
local store = assert(optimistic.new{ table = table_name, client = client, key = { "pk" },
  max_attempts = not defaults and 100 or nil, deadline_ms = not defaults and 60000 or nil })

local ok_count, failed, unknown = 0, 0, 0
local codes = {}
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
    codes[err.code] = (codes[err.code] or 0) + 1
    io.stderr:write(tostring(err), "\n")
  end
end
local list = {}
for code, c in pairs(codes) do list[#list + 1] = code .. ":" .. c end
table.sort(list)
print(("done %d %d %d"):format(ok_count, failed, unknown))
print("codes " .. table.concat(list, " "))
