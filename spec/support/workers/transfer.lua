-- A worker process for the transfer specs: moves random amounts between accounts with
-- with_items, never below zero, and prints
-- "done <committed> <refused> <failed> <unknown> <conflicts>" (failures listed on stderr).
-- usage: lua transfer.lua ENDPOINT TABLE ACCOUNTS N SEED [LOCKDIR]
-- With LOCKDIR, each request holds a lock shared by the workers (mkdir is atomic), so that
-- the server handles one request at a time: moto runs requests on threads without a lock,
-- and rolls a cancelled transaction back by restoring a copy of the whole table taken when
-- it started, undoing what other requests wrote meanwhile. Reads, functions and commits of
-- different workers still interleave freely, which is what the spec is about.
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local with_items = require("ddb.transact").with_items

local endpoint, table_name = arg[1], arg[2]
local accounts, n, seed = tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
local lockdir = arg[6]
math.randomseed(seed)

local function locked_transport(dir)
  local inner = ddb.curl_transport()
  local function run(cmd)
    local r = os.execute(cmd)
    return r == true or r == 0
  end
  return {
    name = "locked",
    request = function(_, url, lines, body, timeout_ms)
      local give_up = ddb.core.monotonic_ms() + 60000
      while not run("mkdir " .. dir .. " 2>/dev/null") do
        if ddb.core.monotonic_ms() > give_up then error("lock " .. dir .. " held for 60 s") end
        ddb.core.sleep_ms(2)
      end
      local status, headers, rbody, resent = inner:request(url, lines, body, timeout_ms)
      os.remove(dir)
      return status, headers, rbody, resent
    end,
    sleep = inner.sleep,
    close = inner.close,
  }
end

local client = assert(ddb.new{
  transport = lockdir and locked_transport(lockdir) or nil,
  region = os.getenv("DDB_TEST_REGION"), endpoint = endpoint,
  credentials = { access_key_id = os.getenv("DDB_TEST_ACCESS_KEY"),
                  secret_access_key = os.getenv("DDB_TEST_SECRET_KEY") },
})
local store = assert(optimistic.new{ table = table_name, client = client, key = { "pk" },
  max_attempts = 100, deadline_ms = 60000 })

local committed, refused, failed, unknown, conflicts = 0, 0, 0, 0, 0
for _ = 1, n do
  local from = math.random(accounts)
  local to = math.random(accounts - 1)
  if to >= from then to = to + 1 end
  local amount = math.random(1, 40)
  local items, err, info = with_items(store, { from = { pk = "acct" .. from }, to = { pk = "acct" .. to } },
    function(it)
      if it.from.balance < amount then return optimistic.NOTHING end
      it.from.balance = it.from.balance - amount
      it.to.balance = it.to.balance + amount
      it.from.moves = it.from.moves + 1
      it.to.moves = it.to.moves + 1
      return it
    end)
  conflicts = conflicts + ((items and info or err.info or {}).conflicts or 0)
  if items then
    if info.written then committed = committed + 1 else refused = refused + 1 end
  elseif err.code == "OutcomeUnknown" then
    unknown = unknown + 1
    io.stderr:write(tostring(err), "\n")
  else
    failed = failed + 1
    io.stderr:write(tostring(err), "\n")
  end
end
print(("done %d %d %d %d %d"):format(committed, refused, failed, unknown, conflicts))
