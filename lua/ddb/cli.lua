--- ddb.cli: the `ddb-optimistic` command: get, put and delete items, and apply Lua code to
-- an item under optimistic locking, from a shell.
--
--    ddb-optimistic get    --table Accounts --key '{"pk":"a"}'
--    ddb-optimistic put    --table Accounts --item '{"pk":"a","n":1}'
--    ddb-optimistic update --table Accounts --key '{"pk":"a"}' --lua 'item.n = (item.n or 0) + 1'
--    ddb-optimistic delete --table Accounts --key '{"pk":"a"}' --if-version 3
--
-- Items are read and written as plain JSON: numbers print exactly as DynamoDB stores them
-- (38 digits included), `null` is DynamoDB's NULL, binary values are base64 text and sets
-- print as arrays. The item printed is the one stored after the command (`null` when there
-- is none). Exit codes: 0 success, 1 usage or configuration (the command line is wrong: an
-- unknown command or option, a value out of range, JSON that does not parse, a script that
-- does not compile; or no region, no credentials: nothing was sent), 2 the operation failed
-- (nothing was written by it), 3 `OutcomeUnknown` (a write may or may not have been
-- applied: read the item and decide).
-- @module ddb.cli

local argparse = require "argparse"
local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local sandbox = require "ddb.sandbox"
local core = ddb.core

local type, pairs, ipairs, next, tostring, tonumber, pcall, getmetatable, setmetatable =
  type, pairs, ipairs, next, tostring, tonumber, pcall, getmetatable, setmetatable
local concat, insert, sort = table.concat, table.insert, table.sort
local monotonic_ms = core.monotonic_ms

local _M = { _VERSION = ddb._VERSION }

--- Exit codes.
-- @table exit
-- @field OK 0: success
-- @field USAGE 1: the command line or the configuration is wrong; nothing was sent
-- @field FAILED 2: the operation failed; none of its writes was applied
-- @field UNKNOWN 3: OutcomeUnknown, a write may or may not have been applied
_M.exit = { OK = 0, USAGE = 1, FAILED = 2, UNKNOWN = 3 }
local EXIT = _M.exit

-- -----------------------------------------------------------------------------
-- The command line: the tables below say every option, its value and its range, and what
-- each command takes; argparse parses by them and makes the help.
-- -----------------------------------------------------------------------------

local DEFAULT_DEADLINE_MS = 5000

-- Each option: name, the value's placeholder (nil for a flag), kind and range, help text.
local OPTIONS = {
  { "table", "NAME", "table_name", help = "the table (required)" },
  { "key", "JSON", "json", help = "the item's key, e.g. '{\"pk\":\"a\"}'; \"-\" reads it " ..
    "from standard input" },
  { "item", "JSON", "json", help = "the item; \"-\" reads it from standard input" },
  { "lua", "CODE", "text", help = "the update code (or --file PATH): `item` is the item (a " ..
    "new table with just the key when there is none); change it in place or return a new " ..
    "table; return DELETE to delete it, NOTHING to write nothing. Also bound: key, exists, " ..
    "DELETE, NOTHING, print (to stderr), ddb.number/list/map/null/binary/*_set, and the " ..
    "string, table, math and os.time/date/clock functions. It runs in a child process that " ..
    "the deadline stops, and may run several times" },
  { "file", "PATH", "text", help = "the update code, read from a file" },
  { "if-version", "N", "integer", 0, 2 ^ 53 - 1, help = "delete only if the item is at " ..
    "version N (0: only if there is no such item)" },
  { "endpoint", "URL", "url", help = "default: AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, " ..
    "then AWS's endpoint for the region" },
  { "region", "REGION", "region", help = "default: AWS_REGION, AWS_DEFAULT_REGION, the " ..
    "profile's region" },
  { "profile", "NAME", "text", help = "shared credentials/config profile (default: " ..
    "AWS_PROFILE)" },
  { "version-attribute", "NAME", "attribute", help = "default: version" },
  { "max-attempts", "N", "integer", 1, 100, help = "runs of the update code, or tries of a " ..
    "put or delete, before giving up on conflicts (default: 10)" },
  { "deadline-ms", "N", "integer", 1, 86400000, help = "bound on the whole command, retries " ..
    "and update code included (default: " .. DEFAULT_DEADLINE_MS .. ")" },
  { "verbose", help = "attempts, conflicts and requests on stderr" },
}

local BY_NAME = {}
for _, o in ipairs(OPTIONS) do
  o.name, o.arg, o.kind, o.min, o.max = o[1], o[2], o[3], o[4], o[5]
  o.field = o.name:gsub("%-", "_")
  BY_NAME[o.name] = o
end

-- The commands in the order the help lists them: what each needs and what else it takes.
local COMMANDS = {
  { name = "get", need = { "key" }, takes = {},
    help = "print the item (null when there is none)" },
  { name = "put", need = { "item" }, takes = { "max-attempts" },
    help = "store the item, replacing its attributes; with a \"version\" attribute, only if " ..
      "the stored item is still at that version (\"version\":0: only if there is no such item)" },
  { name = "update", need = { "key" }, takes = { "lua", "file", "max-attempts" },
    one_of = { "lua", "file" },
    help = "run the Lua code on the item under optimistic locking and store the result" },
  { name = "delete", need = { "key" }, takes = { "if-version", "max-attempts" },
    help = "delete the item, conditioned on the version read (with --if-version, only at " ..
      "that version); nothing to delete is not an error" },
}

-- Options every command takes (--table is also required by each).
local COMMON = { "table", "endpoint", "region", "profile", "version-attribute", "deadline-ms",
  "verbose" }

-- Checks one value against its option's kind; returns the value to keep | nil, message.
local CHECKS = {
  table_name = function(v)
    if #v >= 3 and #v <= 255 and not v:find("[^%w_%.%-]") then return v end
    return nil, "is not a table name (3 to 255 letters, digits, '_', '-' or '.')"
  end,
  json = function(v)
    if v ~= "" then return v end
    return nil, "is empty (give JSON text, or \"-\" to read standard input)"
  end,
  text = function(v)
    if v ~= "" then return v end
    return nil, "is empty"
  end,
  attribute = function(v)
    if v ~= "" and #v <= 255 then return v end
    return nil, "is not an attribute name (1 to 255 bytes)"
  end,
  url = function(v)
    if v:match("^[hH][tT][tT][pP][sS]?://[^/%s]+") and not v:find("%s") then return v end
    return nil, "is not an http:// or https:// URL"
  end,
  region = function(v)
    if v:match("^[%w%-]+$") and #v <= 64 then return v end
    return nil, "is not a region name (such as us-east-1)"
  end,
  integer = function(v, o)
    local n = v:match("^%d+$") and #v <= 16 and tonumber(v)
    if n and n >= o.min and n <= o.max then return n end
    return nil, ("is not a whole number from %d to %d"):format(o.min, o.max)
  end,
}

local function shown(v)
  if #v > 40 then v = v:sub(1, 37) .. "..." end
  return "'" .. v:gsub("%c", "?") .. "'"
end

-- The value of an option checked by its kind, the message naming the option.
local function converter(o)
  return function(v)
    local kept, why = CHECKS[o.kind](v, o)
    if kept == nil then return nil, ("--%s: %s %s"):format(o.name, shown(v), why) end
    return kept
  end
end

local PARSER = argparse("ddb-optimistic", "Get, put, update and delete DynamoDB items " ..
  "under optimistic locking. `ddb-optimistic COMMAND --help` lists the command's options.",
  "JSON: numbers are kept exactly (up to DynamoDB's 38 digits), null is DynamoDB NULL. " ..
  "Output is one line of JSON on stdout; errors go to stderr.\n\nExit codes: 0 ok, 1 usage " ..
  "or configuration error (nothing was sent), 2 the operation failed (nothing written), 3 " ..
  "OutcomeUnknown (a write may or may not have been applied: read the item).")
  :add_help(false):command_target("command")
  :usage_max_width(92):help_max_width(92):help_description_margin(30)
PARSER:flag("--help", "this text (also -h and the help command)")
PARSER:flag("--version", "the version")

local COMMAND = {}
for _, c in ipairs(COMMANDS) do
  local cmd = PARSER:command(c.name, c.help):add_help(false)
  local takes, opts = {}, {}
  for _, list in ipairs{ COMMON, c.need, c.takes } do
    for _, n in ipairs(list) do takes[n] = true end
  end
  -- every option, those the command does not take hidden: refused after parsing with a
  -- message that says so, and suggested for a typo like the others
  for _, o in ipairs(OPTIONS) do
    local opt = cmd:option("--" .. o.name, o.help):overwrite(false):hidden(not takes[o.name])
    if o.arg then opt:argname(o.arg):convert(converter(o)) else opt:args(0) end
    opts[o.name] = opt
  end
  opts.table:count(1)
  for _, n in ipairs(c.need) do opts[n]:count(1) end
  if c.one_of then cmd:mutex(opts[c.one_of[1]], opts[c.one_of[2]]) end
  cmd:argument("extra"):args("*"):hidden(true)
  c.takes, c.parser, COMMAND[c.name] = takes, cmd, c
end
PARSER:command("help", "this text; `ddb-optimistic help COMMAND`: the command's options")

--- The help text: the commands, or one command's options.
-- @param command optional, the command's name
-- @return text
function _M.help(command)
  local c = COMMAND[command]
  return (c and c.parser or PARSER):get_help() .. "\n"
end
--- The help text without a command (`--help`).
_M.USAGE = _M.help()

--- Parses and checks the arguments (without the program name): every option by name, kind
-- and range, and whether the command takes it.
-- @param argv a list of strings
-- @return options table (`command`, and one field per option given, named with `_` in
--   place of `-`: `deadline_ms`; or `help`, with the command whose help it is, or `version`)
--   | nil, message (one line, ending with the help command to run)
function _M.parse_args(argv)
  -- The command first (it may come anywhere) and each value joined to its option as
  -- --name=value: a value is the argument after its option whatever it looks like, where
  -- argparse would take one that starts with '-' (a Lua comment, -1) for an option.
  local args, command, i = {}, nil, 1
  while i <= #argv do
    local a = argv[i]
    local o = BY_NAME[a:match("^%-%-(.*)") or ""]
    if a == "--help" or a == "-h" then
      return { help = true, command = command }
    elseif a == "--version" then
      return { version = true }
    elseif o and o.arg and argv[i + 1] then
      args[#args + 1] = a .. "=" .. argv[i + 1]
      i = i + 1
    elseif command == nil and a:sub(1, 1) ~= "-" then
      command = a
    else
      args[#args + 1] = a
    end
    i = i + 1
  end
  if command == "help" then return { help = true, command = args[1] } end
  -- the message ends by naming the help that lists what the command takes
  local help = COMMAND[command] and "ddb-optimistic " .. command .. " --help" or
    "ddb-optimistic --help"
  local function refuse(msg) return nil, ("%s (%s)"):format(msg, help) end
  if command == nil then return refuse("no command given (get, put, update, delete)") end
  insert(args, 1, command)
  local ok, r = PARSER:pparse(args)
  if not ok then
    r = r:gsub("\nDid you mean (.-)%?$", " (did you mean %1?)")
      :gsub("^option '(%-%-[%w%-]+)' must be used [%a ]-1 times?$", "%1 given more than once")
    return refuse(r)
  end
  local c = COMMAND[r.command]
  for _, o in ipairs(OPTIONS) do
    if r[o.field] ~= nil and not c.takes[o.name] then
      return refuse(("%s does not take --%s"):format(c.name, o.name))
    end
  end
  if r.extra[1] then return refuse("unexpected argument " .. shown(r.extra[1])) end
  if c.one_of and r[c.one_of[1]] == nil and r[c.one_of[2]] == nil then
    return refuse(("%s needs --%s or --%s"):format(c.name, c.one_of[1], c.one_of[2]))
  end
  local parsed = { command = c.name }
  for _, o in ipairs(OPTIONS) do parsed[o.field] = r[o.field] end
  return parsed
end

-- -----------------------------------------------------------------------------
-- JSON in, numbers exact, with the place of the first mistake
-- -----------------------------------------------------------------------------

-- DynamoDB nests documents 32 levels deep; more is refused before it costs anything.
local MAX_DEPTH = 32
local EXACT = { exact = true, max_depth = MAX_DEPTH }

--- Parses JSON text into Lua values, keeping numbers exact (a Lua number when it holds the
-- value exactly, else `ddb.number`), arrays as `ddb.list` and `null` as `ddb.null`; refuses
-- a member given twice and numbers DynamoDB cannot store. The core's reader (csrc/jsonread.c)
-- does the work.
-- @param text JSON text
-- @return the value | nil, message saying at which byte the text goes wrong and why
function _M.decode(text)
  return core.decode(text, EXACT)
end

-- -----------------------------------------------------------------------------
-- JSON out
-- -----------------------------------------------------------------------------

local encode_string = ddb.encode_json

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  sort(keys)
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
-- The commands
-- -----------------------------------------------------------------------------

local function fail(stderr, code, msg)
  stderr:write("ddb-optimistic: ", msg, "\n")
  return code
end

-- The error as one line without the library's own "ddb: " prefix (the command's is enough).
local function describe(err)
  return (tostring(err):gsub("^ddb: ", ""))
end

local function runtime_failure(stderr, err)
  if type(err) == "table" and err.code == "OutcomeUnknown" then
    stderr:write("ddb-optimistic: ", describe(err), "\n",
      "ddb-optimistic: the write may or may not have been applied; read the item " ..
      "(ddb-optimistic get) and decide\n")
    return EXIT.UNKNOWN
  end
  return fail(stderr, EXIT.FAILED, describe(err))
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
  if text == "-" then text = stdin:read("*a") or "" end
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

local function print_item(o, io_, item, info)
  io_.stdout:write(_M.encode(item), "\n")
  report(io_.stderr, o, info)
  return EXIT.OK
end

local function cmd_get(o, store, io_)
  local key, kerr = json_arg(o, "key", io_.stdin)
  if not key then return fail(io_.stderr, EXIT.USAGE, kerr) end
  local item, err, info = store:get(key)
  if not item then return runtime_failure(io_.stderr, err) end
  return print_item(o, io_, item, info)
end

local function version_mismatch(stderr, exists, at, expected)
  local now = not exists and "there is no such item" or
    ("the item is at version %s"):format(tostring(at))
  return fail(stderr, EXIT.FAILED, ("VersionMismatch: %s, not %s (someone else wrote it); " ..
    "nothing was written"):format(now, tostring(expected)))
end

-- with_item whose function writes only when the item is at the version expected (an absent
-- item, or one without a version, counts as 0): make(current) gives the result otherwise.
-- Returns with_item's results, then the version found when it did not match, and whether
-- the item existed.
local function guarded(store, key, expected, make)
  local vattr, mismatch, exists = store.version, nil, nil
  local item, err, info = store:with_item(key, function(current)
    local at = current and current[vattr] or 0
    exists, mismatch = current ~= nil, nil
    if expected ~= nil and at ~= expected then
      mismatch = at
      return optimistic.NOTHING
    end
    return make(current)
  end)
  return item, err, info, mismatch, exists
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
  local item, err, info, mismatch, exists = guarded(store, key, expected, function()
    local new = {}
    for k, v in pairs(given) do new[k] = v end
    return new
  end)
  if not item then return runtime_failure(io_.stderr, err) end
  if mismatch ~= nil then return version_mismatch(io_.stderr, exists, mismatch, expected) end
  return print_item(o, io_, item, info)
end

-- with_item with DELETE: conditioned on the version read, so a write that lands in between
-- makes it read again (and, with --if-version, refuse).
local function cmd_delete(o, store, io_)
  local key, kerr = json_arg(o, "key", io_.stdin)
  if not key then return fail(io_.stderr, EXIT.USAGE, kerr) end
  local item, err, info, mismatch, exists = guarded(store, key, o.if_version, function(current)
    return current and optimistic.DELETE or optimistic.NOTHING
  end)
  if not item then return runtime_failure(io_.stderr, err) end
  if mismatch ~= nil then return version_mismatch(io_.stderr, exists, mismatch, o.if_version) end
  return print_item(o, io_, item, info)
end

local function cmd_update(o, store, io_, deadline)
  local key, kerr = json_arg(o, "key", io_.stdin)
  if not key then return fail(io_.stderr, EXIT.USAGE, kerr) end
  local code, name = o.lua, "=--lua"
  if o.file then
    local f, ferr = io.open(o.file, "rb")
    if not f then return fail(io_.stderr, EXIT.USAGE, "--file: " .. tostring(ferr)) end
    code, name = f:read("*a") or "", "@" .. o.file
    f:close()
  end
  local _, cerr = sandbox.compile(code, name, {})
  if cerr then return fail(io_.stderr, EXIT.USAGE, "the script does not compile: " .. cerr) end
  local fn = sandbox.runner(code, name, key, { deadline = deadline, stderr = io_.stderr,
    deadline_ms = o.deadline_ms or DEFAULT_DEADLINE_MS, interpreter = io_.interpreter })
  local ok, item, err, info = pcall(store.with_item, store, key, fn)
  if not ok then
    return fail(io_.stderr, EXIT.FAILED, "the script failed, nothing was written: " ..
      tostring(item))
  end
  if not item then return runtime_failure(io_.stderr, err) end
  return print_item(o, io_, item, info)
end

local RUN = { get = cmd_get, put = cmd_put, update = cmd_update, delete = cmd_delete }

--- Runs the command line.
-- @param argv the arguments without the program name (the launcher passes `arg`)
-- @param io_ optional { stdout, stderr, stdin, interpreter } (defaults: io.stdout,
--   io.stderr, io.stdin, and the interpreter running this process, for the update script's
--   child process)
-- @return the exit code (see `exit`)
function _M.main(argv, io_)
  io_ = io_ or {}
  io_ = { stdout = io_.stdout or io.stdout, stderr = io_.stderr or io.stderr,
    stdin = io_.stdin or io.stdin, interpreter = io_.interpreter }
  local started = monotonic_ms()
  local args = {}
  for i, a in ipairs(argv or {}) do args[i] = a end
  if #args == 0 then
    io_.stderr:write(_M.USAGE)
    return EXIT.USAGE
  end
  local o, perr = _M.parse_args(args)
  if not o then
    return fail(io_.stderr, EXIT.USAGE, perr)
  end
  if o.help then
    io_.stdout:write(_M.help(o.command))
    return EXIT.OK
  end
  if o.version then
    io_.stdout:write("ddb-optimistic ", _M._VERSION, "\n")
    return EXIT.OK
  end
  -- nothing was sent yet: a configuration that cannot work is the caller's to fix
  local store, err = make_store(o)
  if not store then return fail(io_.stderr, EXIT.USAGE, describe(err)) end
  local deadline = started + (o.deadline_ms or DEFAULT_DEADLINE_MS)
  local ok, code = pcall(RUN[o.command], o, store, io_, deadline)
  store.client:close()
  if not ok then
    return fail(io_.stderr, EXIT.FAILED, "internal error: " .. tostring(code))
  end
  return code
end

setmetatable(_M, { __call = function(_, ...) return _M.main(...) end })

return _M
