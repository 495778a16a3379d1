-- A trade between two players with optimistic.with_items: an item goes one way, gold the
-- other, and a receipt is recorded, all in one DynamoDB transaction that lands only if
-- neither player changed since they were read. Needs a server with transactions (DynamoDB,
-- or moto locally); region, endpoint and credentials come from the environment as in a
-- deployment. From the repository, after `make`:
--
--   sh spec/support/with-servers.sh sh -c 'AWS_ENDPOINT_URL_DYNAMODB=$DDB_TEST_MOTO_URL \
--     AWS_REGION=$DDB_TEST_REGION AWS_ACCESS_KEY_ID=$DDB_TEST_ACCESS_KEY \
--     AWS_SECRET_ACCESS_KEY=$DDB_TEST_SECRET_KEY LUA_PATH="lua/?.lua;lua/?/init.lua;;" \
--     LUA_CPATH="build/5.4/?.so;;" lua5.4 examples/trade.lua'
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local with_items = optimistic.with_items or require("ddb.transact").with_items

local client = assert(ddb.new())
local suffix = os.time()
local players_table, trades_table = "trade_players_" .. suffix, "trade_receipts_" .. suffix
for _, name in ipairs{ players_table, trades_table } do
  assert(client:create_table{
    TableName = name,
    KeySchema = { { AttributeName = "pk", KeyType = "HASH" } },
    AttributeDefinitions = { { AttributeName = "pk", AttributeType = "S" } },
    BillingMode = "PAY_PER_REQUEST",
  })
  assert(client:wait_for_table(name))
end
local players = assert(optimistic.new{ table = players_table, client = client })

local function show(label, p)
  local inv = {}
  for name, count in pairs(p.inventory) do inv[#inv + 1] = name .. " x" .. count end
  table.sort(inv)
  print(("  %-6s gold %3d, inventory: %s (version %d)"):format(label, p.gold,
    #inv > 0 and table.concat(inv, ", ") or "nothing", p.version))
end

-- 1. Both players are created in one commit (each conditioned on being absent).
local start = assert(with_items(players, { alice = { pk = "alice" }, bob = { pk = "bob" } },
  function()
    return { alice = { gold = 10, inventory = { sword = 1, potion = 3 } },
             bob = { gold = 100, inventory = { shield = 1 } } }
  end))
print("players created:")
show("alice", start.alice)
show("bob", start.bob)

local trades = 0
-- seller gives one `thing` to buyer for `price` gold. The receipt's id is chosen once,
-- outside the function, which may run several times.
local function trade(seller, buyer, thing, price, meanwhile)
  trades = trades + 1
  local receipt = "trade#" .. trades
  local runs = 0
  return with_items(players, { seller = { pk = seller }, buyer = { pk = buyer } }, function(p)
    runs = runs + 1
    if meanwhile and runs == 1 then meanwhile() end
    local s, b = p.seller, p.buyer
    if (s.inventory[thing] or 0) < 1 or b.gold < price then
      return optimistic.NOTHING      -- the trade is off: nothing is written
    end
    s.inventory[thing] = s.inventory[thing] > 1 and s.inventory[thing] - 1 or nil
    b.inventory[thing] = (b.inventory[thing] or 0) + 1
    s.gold, b.gold = s.gold + price, b.gold - price
    return p, { { table = trades_table, item = { pk = receipt, seller = seller, buyer = buyer,
      thing = thing, price = price } } }
  end)
end

-- 2. Alice sells her sword to Bob for 60 gold.
local after, _, info = assert(trade("alice", "bob", "sword", 60))
print(("\nalice sells the sword for 60: %s in %d run(s), %d requests"):format(
  info.action, info.attempts, info.requests))
show("alice", after.seller)
show("bob", after.buyer)

-- 3. While Bob buys a potion, he also spends gold elsewhere between our read and our
--    commit: the commit is cancelled (bob's version moved), the function runs again on
--    the fresh player and the trade goes through with the right balance.
after, _, info = assert(trade("alice", "bob", "potion", 20, function()
  print("\n  (meanwhile bob pays 10 gold for a repair)")
  assert(players:with_item({ pk = "bob" }, function(b) b.gold = b.gold - 10 return b end))
end))
print(("bob buys a potion for 20: %s after %d runs; conflicted: %s"):format(
  info.action, info.attempts, table.concat(info.conflicted, ", ")))
show("alice", after.seller)
show("bob", after.buyer)

-- 4. Bob cannot afford a second sword from Alice (she has none left anyway): nothing written.
after, _, info = assert(trade("alice", "bob", "sword", 500))
print(("\nalice sells a sword she no longer has: %s, written: %s"):format(info.action,
  tostring(info.written)))

-- 5. Gold is conserved: the players hold the 110 they started with, less the repair.
local total = after.seller.gold + after.buyer.gold
print(("\ngold in all: %d (110 at the start, 10 spent on the repair)"):format(total))
assert(total == 100)
local receipts = assert(client:scan{ TableName = trades_table })
print(("receipts recorded: %d"):format(#receipts.Items))

for _, name in ipairs{ players_table, trades_table } do
  assert(client:delete_table{ TableName = name })
end
print("trade example finished")
