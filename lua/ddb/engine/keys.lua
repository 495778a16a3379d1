--- ddb.engine.keys: an item's key, checked against its table's key schema (from the caller,
-- or one DescribeTable).
-- @module ddb.engine.keys

local ddb = require "ddb"
local core = require "ddb.core"

local pairs, ipairs, pcall, tostring, next = pairs, ipairs, pcall, tostring, next
local marshal_item, key_av = core.marshal_item, core.key_av
local new_error = ddb.new_error

local _M = {}

--- A table's key attribute names (`{ hash[, range] }`) from one DescribeTable.
-- @param client a ddb client
-- @param table_name the table
-- @param call_opts options of `Client:call`
-- @return names | nil, err
function _M.describe(client, table_name, call_opts)
  local res, err = client:describe_table({ TableName = table_name }, call_opts)
  if not res then return nil, err end
  local names = {}
  for _, k in ipairs(res.Table and res.Table.KeySchema or {}) do
    if k.KeyType == "HASH" then names[1] = k.AttributeName
    elseif k.KeyType == "RANGE" then names[2] = k.AttributeName end
  end
  if not names[1] then
    return nil, new_error("InvalidResponse", "DescribeTable returned no key schema for " ..
      table_name)
  end
  return names
end

--- The key's AttributeValues for the table's key names, or nil, err naming what is wrong.
-- @param table_name the table, for messages
-- @param key the key as plain values
-- @param names the table's key attribute names
-- @return AttributeValues | nil, err
function _M.av(table_name, key, names)
  local ok, av = pcall(key_av, key, names[1], names[2])
  if ok and av then return av end
  if not ok then return nil, new_error("ValidationError", "bad key: " .. tostring(av)) end
  -- not the table's key: what is wrong with it
  av = marshal_item(key)
  for name, v in pairs(av) do
    if name ~= names[1] and name ~= names[2] then
      return nil, new_error("ValidationError", ("key has attribute '%s', which is not part " ..
        "of table %s's key (%s)"):format(name, table_name, table.concat(names, ", ")))
    end
    local t = next(v)
    if t ~= "S" and t ~= "N" and t ~= "B" then
      return nil, new_error("ValidationError", ("key attribute '%s' must be a string, " ..
        "number or ddb.binary"):format(name))
    end
  end
  for _, name in ipairs(names) do
    if av[name] == nil then
      return nil, new_error("ValidationError", ("key lacks attribute '%s' of table %s's key")
        :format(name, table_name))
    end
  end
  return av
end

return _M
