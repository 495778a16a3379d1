--- ddb.cli: the `ddb-optimistic` command: get and put items, and apply Lua code to an item
-- under optimistic locking, from a shell.
--
--    ddb-optimistic get    --table T --key '{"pk":"a"}'
--    ddb-optimistic put    --table T --item '{"pk":"a","n":1}'
--    ddb-optimistic update --table T --key '{"pk":"a"}' --lua 'item.n = (item.n or 0) + 1'
--
-- Items are read and written as plain JSON: numbers print exactly as DynamoDB stores them
-- (38 digits included), `null` is DynamoDB's NULL, binary values are base64 text and sets
-- print as arrays. The item printed is the one stored after the command (`null` when there
-- is none). Exit codes: 0 success, 1 usage (the command line is wrong: unknown command or
-- option, a missing value, JSON that does not parse, a script that does not compile),
-- 2 the operation failed (nothing was written by it), 3 `OutcomeUnknown` (a write may or may
-- not have been applied: read the item and decide).
-- @module ddb.cli

local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local core = ddb.core

local type, pairs, ipairs, next, tostring, tonumber, pcall, error, select, assert =
  type, pairs, ipairs, next, tostring, tonumber, pcall, error, select, assert
local getmetatable, setmetatable = getmetatable, setmetatable
local concat = table.concat
local load, loadstring, setfenv = load, loadstring, setfenv   -- luacheck: ignore 143
local sethook = debug.sethook

local _M = { _VERSION = ddb._VERSION }

--- Exit codes.
-- @table exit
-- @field OK 0: success
-- @field USAGE 1: the command line is wrong; nothing was sent
-- @field FAILED 2: the operation failed; none of its writes was applied
-- @field UNKNOWN 3: OutcomeUnknown, a write may or may not have been applied
_M.exit = { OK = 0, USAGE = 1, FAILED = 2, UNKNOWN = 3 }
local EXIT = _M.exit

--- Instructions one run of an update script may execute before it is stopped.
_M.MAX_INSTRUCTIONS = 10000000

local USAGE = [[
usage: ddb-optimistic <command> --table NAME [options]

commands:
  get     --key JSON              print the item (null when there is none)
  put     --item JSON             store the item, replacing its attributes; with a "version"
                                  attribute, only if the stored item is still at that version
                                  ("version":0: only if there is no such item)
  update  --key JSON (--lua CODE | --file PATH)
                                  run the Lua code on the item under optimistic locking and
                                  store the result (the code may run several times)

options:
  --table NAME                    the table (required)
  --key JSON                      the item's key, e.g. '{"pk":"a"}'
  --item JSON                     the item; "-" reads it from standard input
  --lua CODE, --file PATH         the update code: `item` is the item (a new table with just
                                  the key when there is none); change it in place or return a
                                  new table; return DELETE to delete it, NOTHING to write
                                  nothing. Also bound: key, exists, DELETE, NOTHING, print (to
                                  stderr), ddb.number/list/map/null/binary/*_set, and the
                                  string, table, math and os.time/date/clock functions.
  --endpoint URL                  default: AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, AWS
  --region REGION                 default: AWS_REGION, AWS_DEFAULT_REGION, the profile's
  --profile NAME                  shared credentials/config profile (default: AWS_PROFILE)
  --version-attribute NAME        default: version
  --max-attempts N                runs of the update code before giving up (default: 10)
  --deadline-ms N                 bound on the whole command, retries included (default: 5000)
  --verbose                       attempts, conflicts and requests on stderr
  -h, --help                      this text
  --version                       the version

JSON: numbers are kept exactly (up to DynamoDB's 38 digits), null is DynamoDB NULL. Output is
one line of JSON on stdout; errors go to stderr.

exit codes: 0 ok, 1 usage error, 2 the operation failed (nothing written),
            3 OutcomeUnknown (a write may or may not have been applied: read the item)
]]

local COMMANDS = { get = true, put = true, update = true }

-- option name -> the field it fills; true marks a flag without a value
local OPTIONS = {
  ["table"] = "table", key = "key", item = "item", lua = "lua", file = "file",
  endpoint = "endpoint", region = "region", profile = "profile",
  ["version-attribute"] = "version_attribute", ["max-attempts"] = "max_attempts",
  ["deadline-ms"] = "deadline_ms", verbose = true, help = true, version = true,
}

local function usage_error(msg)
  return nil, msg
end

--- Parses the arguments (without the program name).
-- @param argv a list of strings
-- @return options table (`command` plus one field per option) | nil, message
function _M.parse_args(argv)
  local o = {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "-h" then a = "--help" end
    if a:sub(1, 2) == "--" then
      local name, value = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:sub(3)
      local field = OPTIONS[name]
      if field == nil then
        return usage_error(("unknown option --%s"):format(name))
      elseif field == true then
        if value ~= nil then return usage_error(("--%s takes no value"):format(name)) end
        o[name] = true
      else
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then return usage_error(("--%s needs a value"):format(name)) end
        end
        if o[field] ~= nil then return usage_error(("--%s given twice"):format(name)) end
        o[field] = value
      end
    elseif o.command == nil then
      if not COMMANDS[a] and a ~= "help" then
        return usage_error(("unknown command '%s' (get, put or update)"):format(a))
      end
      o.command = a
    else
      return usage_error(("unexpected argument '%s'"):format(a))
    end
    i = i + 1
  end
  if o.command == "help" then o.help = true end
  if o.help or o.version then return o end
  if o.command == nil then return usage_error("no command given (get, put or update)") end
  if not o.table or o.table == "" then return usage_error("--table is required") end
  local need = { get = { "key" }, put = { "item" }, update = { "key" } }
  for _, f in ipairs(need[o.command]) do
    if o[f] == nil then return usage_error(("%s needs --%s"):format(o.command, f)) end
  end
  local allowed = {
    get = { key = true }, put = { item = true },
    update = { key = true, lua = true, file = true, max_attempts = true },
  }
  for _, f in ipairs{ "key", "item", "lua", "file", "max_attempts" } do
    if o[f] ~= nil and not allowed[o.command][f] then
      return usage_error(("%s does not take --%s"):format(o.command, f:gsub("_", "-")))
    end
  end
  if o.command == "update" and (o.lua == nil) == (o.file == nil) then
    return usage_error("update needs exactly one of --lua and --file")
  end
  for _, f in ipairs{ "max_attempts", "deadline_ms" } do
    if o[f] ~= nil then
      local n = tonumber(o[f])
      if not n or n < 1 or n ~= math.floor(n) then
        return usage_error(("--%s must be a positive whole number"):format(f:gsub("_", "-")))
      end
      o[f] = n
    end
  end
  return o
end

-- -----------------------------------------------------------------------------
-- JSON in and out, numbers exact
-- -----------------------------------------------------------------------------

-- A marker no JSON text the user gives or DynamoDB stores will hold by accident.
local function new_marker()
  return "ddbcli" .. core.random_bytes(8):gsub(".", function(c)
    return ("%02x"):format(c:byte())
  end) .. "#"
end

-- The JSON number grammar (RFC 8259), which Lua patterns cannot say in one piece.
local function json_number_at(s, i)
  local j = i
  if s:sub(j, j) == "-" then j = j + 1 end
  if s:sub(j, j) == "0" then
    j = j + 1
  else
    local d = s:match("^[1-9]%d*", j)
    if not d then return nil end
    j = j + #d
  end
  local frac = s:match("^%.%d+", j)
  if frac then j = j + #frac end
  local exp = s:match("^[eE][-+]?%d+", j)
  if exp then j = j + #exp end
  return j - 1
end

-- cJSON reads every number as a double and drops nulls, so before decoding, each number
-- and null outside strings becomes a marked string, turned back into the exact value after.
local function protect(text, marker, slots)
  local out, i, n = {}, 1, #text
  while i <= n do
    local c = text:sub(i, i)
    if c == '"' then
      local j = i + 1
      while j <= n do
        local d = text:sub(j, j)
        if d == "\\" then j = j + 2
        elseif d == '"' then break
        else j = j + 1 end
      end
      out[#out + 1] = text:sub(i, j)
      i = j + 1
    elseif c == "-" or c:match("%d") then
      local e = json_number_at(text, i)
      if not e then return nil, ("bad number at character %d"):format(i) end
      slots[#slots + 1] = { number = text:sub(i, e) }
      out[#out + 1] = '"' .. marker .. #slots .. '"'
      i = e + 1
    elseif text:sub(i, i + 3) == "null" then
      slots[#slots + 1] = { null = true }
      out[#out + 1] = '"' .. marker .. #slots .. '"'
      i = i + 4
    else
      local j = text:find('[-"%dn]', i + 1) or n + 1
      out[#out + 1] = text:sub(i, j - 1)
      i = j
    end
  end
  return concat(out)
end

-- A Lua number when it holds the text's value exactly, else ddb.number(text).
local function exact_number(text)
  local ok, canonical, reason = pcall(core.number_canonical, text)
  if not ok or not canonical then
    return nil, ("%s is not a number DynamoDB can store (%s)"):format(text,
      tostring(ok and reason or canonical))
  end
  local n = tonumber(text)
  local same, c2 = pcall(core.number_canonical, n)
  if n and same and c2 == canonical then return n end
  return ddb.number(text)
end

local function restore(v, marker, slots)
  if type(v) == "string" then
    local idx = v:sub(1, #marker) == marker and tonumber(v:sub(#marker + 1))
    if not idx then return v end
    local slot = slots[idx]
    if slot.null then return ddb.null end
    return exact_number(slot.number)
  end
  if type(v) == "table" then
    for k, x in pairs(v) do
      local r, err = restore(x, marker, slots)
      if r == nil then return nil, err end
      v[k] = r
    end
  end
  return v
end

--- Parses JSON text into Lua values, keeping numbers exact and `null` as ddb.null.
-- @param text JSON text
-- @return the value | nil, message
function _M.decode(text)
  local marker, slots = new_marker(), {}
  local protected, perr = protect(text, marker, slots)
  if not protected then return nil, perr end
  local v = ddb.decode_json(protected)
  if v == nil then return nil, "not valid JSON" end
  return restore(v, marker, slots)
end

local encode_string = ddb.encode_json

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- JSON for an AttributeValue: numbers as DynamoDB keeps their text, maps with sorted keys
-- (the same item always prints the same), sets as arrays, binary as its base64 text.
local function av_json(av, out)
  local kind, v = next(av)
  if kind == "S" or kind == "B" then
    out[#out + 1] = encode_string(v)
  elseif kind == "N" then
    out[#out + 1] = v
  elseif kind == "BOOL" then
    out[#out + 1] = v and "true" or "false"
  elseif kind == "NULL" then
    out[#out + 1] = "null"
  elseif kind == "SS" or kind == "BS" or kind == "NS" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = kind == "NS" and x or encode_string(x) end
    out[#out + 1] = "[" .. concat(parts, ",") .. "]"
  elseif kind == "L" then
    out[#out + 1] = "["
    for i, x in ipairs(v) do
      if i > 1 then out[#out + 1] = "," end
      av_json(x, out)
    end
    out[#out + 1] = "]"
  else
    out[#out + 1] = "{"
    for i, k in ipairs(sorted_keys(v)) do
      if i > 1 then out[#out + 1] = "," end
      out[#out + 1] = encode_string(k) .. ":"
      av_json(v[k], out)
    end
    out[#out + 1] = "}"
  end
end

--- Encodes an item (as with_item and get return it) as one line of plain JSON.
-- Numbers come out exactly as DynamoDB keeps them, keys sorted; ddb.null (no item) is
-- `null`. Strings go through ddb.encode_json.
-- @param item a table of attributes, or ddb.null
-- @return JSON text
function _M.encode(item)
  if item == nil or item == ddb.null then return "null" end
  local out = {}
  av_json({ M = ddb.marshal_item(item) }, out)
  return concat(out)
end

-- -----------------------------------------------------------------------------
-- The update script's sandbox
-- -----------------------------------------------------------------------------

local function copy_lib(lib, skip)
  local t = {}
  for k, v in pairs(lib or {}) do
    if not (skip and skip[k]) then t[k] = v end
  end
  return t
end

local function sandbox(item, key, exists, stderr)
  local env = {
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
    select = select, tonumber = tonumber, tostring = tostring, type = type,
    unpack = table.unpack or unpack,   -- luacheck: ignore 143
    string = copy_lib(string, { dump = true }), table = copy_lib(table),
    math = copy_lib(math), utf8 = utf8 and copy_lib(utf8) or nil,   -- luacheck: ignore 143
    os = { time = os.time, date = os.date, clock = os.clock },
    ddb = { number = ddb.number, list = ddb.list, map = ddb.map, null = ddb.null,
      binary = ddb.binary, string_set = ddb.string_set, number_set = ddb.number_set,
      binary_set = ddb.binary_set, type = ddb.type },
    DELETE = optimistic.DELETE, NOTHING = optimistic.NOTHING,
    item = item, key = copy_lib(key), exists = exists,
  }
  env.print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    stderr:write(concat(parts, "\t"), "\n")
  end
  return env
end

-- Compiles text in env (text only, never bytecode). Returns the function | nil, message.
local function compile(code, name, env)
  if code:byte(1) == 27 then return nil, name:gsub("^[=@]", "") .. ": bytecode is refused" end
  if setfenv and loadstring then
    local f, err = loadstring(code, name)
    if not f then return nil, err end
    return setfenv(f, env)
  end
  return load(code, name, "t", env)
end

-- Runs f with an instruction budget, so that a script stuck in a loop ends. LuaJIT calls
-- count hooks from interpreted code only, so the script is kept out of the JIT compiler.
local function run_bounded(f, budget)
  if jit then jit.off(f, true) end
  local used = 0
  sethook(function()
    used = used + 1000
    if used > budget then
      error(("the script ran more than %d instructions"):format(budget), 2)
    end
  end, "", 1000)
  local ok, r = pcall(f)
  sethook()
  if not ok then error(r, 0) end
  return r
end

--- Makes the function with_item runs from update code.
-- @param code the Lua text
-- @param name the chunk name for messages ("=--lua" or "@path")
-- @param key the key table
-- @param stderr where the script's print writes
-- @return function(item) | nil, message (the code does not compile)
function _M.update_function(code, name, key, stderr)
  local _, cerr = compile(code, name, {})
  if cerr then return nil, cerr end
  return function(current)
    local exists = current ~= nil
    local item = current or copy_lib(key)
    local env = sandbox(item, key, exists, stderr)
    local f = assert(compile(code, name, env))
    local result = run_bounded(f, _M.MAX_INSTRUCTIONS)
    if result == nil then result = env.item end
    if result == optimistic.DELETE or result == optimistic.NOTHING then return result end
    if type(result) ~= "table" or getmetatable(result) ~= nil then
      error("the script must leave a table in `item` or return one, DELETE or NOTHING; " ..
        "it returned " .. tostring(result), 0)
    end
    if not exists then
      -- nothing beyond the key: creating an empty item is never what was meant
      local only_key = true
      for k in pairs(result) do
        if key[k] == nil then only_key = false end
      end
      if only_key then return optimistic.NOTHING end
    end
    return result
  end
end

-- -----------------------------------------------------------------------------
-- The commands
-- -----------------------------------------------------------------------------

local function read_all(f)
  local text = f:read("*a")
  return text
end

local function fail(stderr, code, msg)
  stderr:write("ddb-optimistic: ", msg, "\n")
  return code
end

local function runtime_failure(stderr, err)
  if type(err) == "table" and err.code == "OutcomeUnknown" then
    stderr:write("ddb-optimistic: ", tostring(err), "\n",
      "ddb-optimistic: the write may or may not have been applied; read the item " ..
      "(ddb-optimistic get) and decide\n")
    return EXIT.UNKNOWN
  end
  return fail(stderr, EXIT.FAILED, tostring(err))
end

local function report(stderr, o, info)
  if o.verbose and info then
    stderr:write(("ddb-optimistic: action=%s attempts=%s conflicts=%s requests=%s " ..
      "elapsed_ms=%.0f\n"):format(tostring(info.action or "read"), tostring(info.attempts or 0),
      tostring(info.conflicts or 0), tostring(info.requests or 0), info.elapsed_ms or 0))
  end
end

local function json_arg(o, field, stdin)
  local text = o[field]
  if text == "-" then text = read_all(stdin) or "" end
  local v, err = _M.decode(text)
  if v == nil then return nil, ("--%s: %s"):format(field, tostring(err)) end
  if type(v) ~= "table" or getmetatable(v) ~= nil then
    return nil, ("--%s must be a JSON object"):format(field)
  end
  return v
end

local function make_store(o)
  local client, err = ddb.new{ endpoint = o.endpoint, region = o.region, profile = o.profile,
    deadline_ms = o.deadline_ms }
  if not client then return nil, err end
  return optimistic.new{ table = o.table, client = client,
    version_attribute = o.version_attribute, max_attempts = o.max_attempts,
    deadline_ms = o.deadline_ms }
end

local function cmd_get(o, store, io_)
  local key, kerr = json_arg(o, "key", io_.stdin)
  if not key then return fail(io_.stderr, EXIT.USAGE, kerr) end
  local item, info = store:get(key)
  if not item then return runtime_failure(io_.stderr, info) end
  io_.stdout:write(_M.encode(item), "\n")
  report(io_.stderr, o, info)
  return EXIT.OK
end

local function cmd_put(o, store, io_)
  local given, ierr = json_arg(o, "item", io_.stdin)
  if not given then return fail(io_.stderr, EXIT.USAGE, ierr) end
  local names, serr = store:key_schema()
  if not names then return runtime_failure(io_.stderr, serr) end
  local key = {}
  for _, n in ipairs(names) do key[n] = given[n] end
  local vattr = store.version
  local expected = given[vattr]
  given[vattr] = nil
  if expected ~= nil and type(expected) ~= "number" then
    return fail(io_.stderr, EXIT.USAGE, ("--item: '%s' must be a number"):format(vattr))
  end
  local mismatch, exists
  local item, info = store:with_item(key, function(current)
    local at = current and current[vattr] or 0
    exists = current ~= nil
    if expected ~= nil and at ~= expected then
      mismatch = at
      return optimistic.NOTHING
    end
    mismatch = nil
    local new = {}
    for k, v in pairs(given) do new[k] = v end
    return new
  end)
  if not item then return runtime_failure(io_.stderr, info) end
  if mismatch ~= nil then
    local now = not exists and "there is no such item" or
      ("the item is at version %s"):format(tostring(mismatch))
    return fail(io_.stderr, EXIT.FAILED, ("VersionMismatch: %s, not %s (someone else " ..
      "wrote it); nothing was written"):format(now, tostring(expected)))
  end
  io_.stdout:write(_M.encode(item), "\n")
  report(io_.stderr, o, info)
  return EXIT.OK
end

local function cmd_update(o, store, io_)
  local key, kerr = json_arg(o, "key", io_.stdin)
  if not key then return fail(io_.stderr, EXIT.USAGE, kerr) end
  local code, name = o.lua, "=--lua"
  if o.file then
    local f, ferr = io.open(o.file, "rb")
    if not f then return fail(io_.stderr, EXIT.USAGE, "--file: " .. tostring(ferr)) end
    code, name = read_all(f), "@" .. o.file
    f:close()
  end
  local fn, cerr = _M.update_function(code, name, key, io_.stderr)
  if not fn then return fail(io_.stderr, EXIT.USAGE, "the script does not compile: " .. cerr) end
  local ok, item, info = pcall(store.with_item, store, key, fn)
  if not ok then
    return fail(io_.stderr, EXIT.FAILED, "the script failed, nothing was written: " ..
      tostring(item))
  end
  if not item then return runtime_failure(io_.stderr, info) end
  io_.stdout:write(_M.encode(item), "\n")
  report(io_.stderr, o, info)
  return EXIT.OK
end

--- Runs the command line.
-- @param argv the arguments without the program name (the launcher passes `arg`)
-- @param io_ optional { stdout, stderr, stdin } (defaults: io.stdout, io.stderr, io.stdin)
-- @return the exit code (see `exit`)
function _M.main(argv, io_)
  io_ = io_ or {}
  io_ = { stdout = io_.stdout or io.stdout, stderr = io_.stderr or io.stderr,
    stdin = io_.stdin or io.stdin }
  local args = {}
  for i, a in ipairs(argv or {}) do args[i] = a end
  if #args == 0 then
    io_.stderr:write(USAGE)
    return EXIT.USAGE
  end
  local o, perr = _M.parse_args(args)
  if not o then
    return fail(io_.stderr, EXIT.USAGE, perr .. " (ddb-optimistic --help)")
  end
  if o.help then
    io_.stdout:write(USAGE)
    return EXIT.OK
  end
  if o.version then
    io_.stdout:write("ddb-optimistic ", _M._VERSION, "\n")
    return EXIT.OK
  end
  local store, err = make_store(o)
  if not store then return runtime_failure(io_.stderr, err) end
  local run = ({ get = cmd_get, put = cmd_put, update = cmd_update })[o.command]
  local ok, code = pcall(run, o, store, io_)
  store.client:close()
  if not ok then
    return fail(io_.stderr, EXIT.FAILED, "internal error: " .. tostring(code))
  end
  return code
end

setmetatable(_M, { __call = function(_, ...) return _M.main(...) end })

return _M
