--- ddb.sandbox: runs the `ddb-optimistic update` script on an item in a child process whose
-- time and memory are bounded by the kernel, so that no script (a loop, a backtracking
-- `string.find` deep inside one C call, a table that grows without end) outlives the
-- command's deadline. A count hook cannot do that: it never fires inside a C function.
--
-- The child only computes: it gets the item and the key as DynamoDB JSON on standard
-- input, runs the script in an environment without I/O, and prints the result. It never
-- talks to DynamoDB; the parent does the conditional write (and may run the script again,
-- in a new child, after a conflict).
-- @module ddb.sandbox

local ddb = require "ddb"
local optimistic = require "ddb.optimistic"
local core = ddb.core

local type, pairs, ipairs, next, tostring, tonumber, pcall, error, select, assert =
  type, pairs, ipairs, next, tostring, tonumber, pcall, error, select, assert
local getmetatable = getmetatable
local concat = table.concat
local floor, ceil = math.floor, math.ceil
local load, loadstring, setfenv = load, loadstring, setfenv   -- luacheck: ignore 143
local monotonic_ms = core.monotonic_ms

local _M = {}

--- Address space the child may use, in KiB (`ulimit -v`): a script cannot take the
-- machine's memory. An item is at most 400 KB; the interpreter and the core need ~60 MB.
_M.MEMORY_KB = 256 * 1024

local function copy(t, skip)
  local c = {}
  for k, v in pairs(t or {}) do
    if not (skip and skip[k]) then c[k] = v end
  end
  return c
end

-- What the script sees: its item and key, pure functions, and print (to stderr).
local function environment(item, key, exists, stderr)
  local env = {
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
    select = select, tonumber = tonumber, tostring = tostring, type = type,
    unpack = table.unpack or unpack,   -- luacheck: ignore 143
    string = copy(string, { dump = true }), table = copy(table),
    math = copy(math), utf8 = utf8 and copy(utf8) or nil,   -- luacheck: ignore 143
    os = { time = os.time, date = os.date, clock = os.clock },
    ddb = { number = ddb.number, list = ddb.list, map = ddb.map, null = ddb.null,
      binary = ddb.binary, string_set = ddb.string_set, number_set = ddb.number_set,
      binary_set = ddb.binary_set, type = ddb.type },
    DELETE = optimistic.DELETE, NOTHING = optimistic.NOTHING,
    item = item, key = copy(key), exists = exists,
  }
  env.print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    stderr:write(concat(parts, "\t"), "\n")
  end
  return env
end

--- Compiles the script's text in env (text only: bytecode could break out of the sandbox).
-- @param code the Lua text
-- @param name the chunk name for messages (`"=--lua"` or `"@path"`)
-- @param env the environment (a table; `{}` to check the syntax alone)
-- @return the function | nil, message
function _M.compile(code, name, env)
  if code:byte(1) == 27 then return nil, name:gsub("^[=@]", "") .. ": bytecode is refused" end
  if setfenv and loadstring then
    local f, err = loadstring(code, name)
    if not f then return nil, err end
    return setfenv(f, env)
  end
  return load(code, name, "t", env)
end

-- Runs the script on the item; returns "item", item | "DELETE" | "NOTHING" | nil, message.
local function apply(code, name, key, current, stderr)
  local exists = current ~= nil
  local item = current or copy(key)
  local env = environment(item, key, exists, stderr)
  local f, cerr = _M.compile(code, name, env)
  if not f then return nil, cerr end
  local ok, result = pcall(f)
  if not ok then return nil, tostring(result) end
  if result == nil then result = env.item end
  if result == optimistic.DELETE then return "DELETE" end
  if result == optimistic.NOTHING then return "NOTHING" end
  if type(result) ~= "table" or getmetatable(result) ~= nil then
    return nil, "the script must leave a table in `item` or return one, DELETE or NOTHING; " ..
      "it returned " .. tostring(result)
  end
  if not exists then
    -- nothing beyond the key: creating an empty item is never what was meant
    local only_key = true
    for k in pairs(result) do
      if key[k] == nil then only_key = false end
    end
    if only_key then return "NOTHING" end
  end
  return "item", result
end

--- The child's side: reads the script and the item from standard input, writes the outcome
-- on standard output (`ok item` and the item as DynamoDB JSON, `ok DELETE`, `ok NOTHING`, or
-- `error` and a message). The parent starts it; it is not for use on its own.
-- @param stdin optional file to read (io.stdin)
-- @param stdout optional file to write (io.stdout)
-- @param stderr optional file for the script's print (io.stderr)
-- @return the process's exit code (0: an outcome was written)
function _M.child(stdin, stdout, stderr)
  stdin, stdout, stderr = stdin or io.stdin, stdout or io.stdout, stderr or io.stderr
  local input = stdin:read("*a") or ""
  local len, rest = input:match("^(%d+)\n()")
  local function answer(kind, text)
    stdout:write(kind, text and ("\n" .. text) or "")
    stdout:flush()
    return 0
  end
  if not len then return answer("error", "the sandbox got no script") end
  len = tonumber(len)
  local code = input:sub(rest, rest + len - 1)
  local name, name_end = input:match("^([^\n]*)\n()", rest + len)
  local doc = name and ddb.decode_json(input:sub(name_end))
  if type(doc) ~= "table" or type(doc.key) ~= "table" then
    return answer("error", "the sandbox got an unreadable item")
  end
  local key = ddb.unmarshal_item(doc.key)
  local current = type(doc.item) == "table" and ddb.unmarshal_item(doc.item) or nil
  local kind, result = apply(code, name, key, current, stderr)
  if not kind then return answer("error", result) end
  if kind ~= "item" then return answer("ok " .. kind) end
  local ok, avs = pcall(ddb.marshal_item, result)
  if not ok then
    return answer("error", "the script's item cannot be stored: " .. tostring(avs))
  end
  local json, jerr = ddb.encode_json(avs)
  if not json then return answer("error", "the script's item cannot be stored: " .. jerr) end
  return answer("ok item", json)
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- The interpreter running this process (`arg`'s first entry), for the child.
-- @return its path or name
function _M.interpreter()
  if type(arg) ~= "table" then return "lua" end   -- luacheck: ignore 113
  local i = 0
  while arg[i - 1] ~= nil do i = i - 1 end   -- luacheck: ignore 113
  return arg[i] or "lua"   -- luacheck: ignore 113
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a") or ""
  f:close()
  return s
end

--- Makes the function with_item runs: each call runs the script on the item it is given in
-- a new child process, stopped by the kernel when the time left before `deadline` is spent.
-- @param code the Lua text (already checked to compile)
-- @param name the chunk name for messages (`"=--lua"` or `"@path"`)
-- @param key the item's key, a table
-- @param opts `deadline` (absolute, in `ddb.core.monotonic_ms` time; required), `stderr`
--   (where the script's print goes; default io.stderr), `interpreter` (default: this
--   process's), `deadline_ms` (the bound as the user gave it, for messages)
-- @return function(item) returning the item to write, optimistic.DELETE or NOTHING; it
--   raises with a message when the script fails or runs out of time
function _M.runner(code, name, key, opts)
  local stderr = opts.stderr or io.stderr
  local interpreter = opts.interpreter or _M.interpreter()
  local deadline = assert(opts.deadline, "sandbox.runner: opts.deadline is required")
  local key_json = assert(ddb.encode_json(ddb.marshal_item(key)))
  return function(current)
    local left = floor(deadline - monotonic_ms())
    if left < 1 then
      error("no time left to run the script (--deadline-ms " ..
        tostring(opts.deadline_ms or "") .. "); nothing was written", 0)
    end
    local input, errs = os.tmpname(), os.tmpname()
    local f = assert(io.open(input, "wb"))
    local item_json = current and assert(ddb.encode_json(ddb.marshal_item(current))) or "null"
    f:write(#code, "\n", code, name:gsub("\n", " "), "\n",
      '{"key":', key_json, ',"item":', item_json, "}")
    f:close()
    -- `timeout` bounds the wall clock to the time left; ulimit -t bounds the CPU even where
    -- the child outlives timeout. ASan reserves terabytes of address space: no -v there.
    -- Everything the child and its shell print on stderr goes to errs (the shell that
    -- popen starts would report "Killed" on ours).
    local script = ("exec 2> %s < %s; ulimit -t %d; " ..
      "[ -n \"${ASAN_OPTIONS:-}\" ] || ulimit -v %d; " ..
      "unset LUA_INIT LUA_INIT_5_2 LUA_INIT_5_3 LUA_INIT_5_4; " ..
      "if command -v timeout >/dev/null 2>&1; then set -- timeout -s KILL %.3f; fi; " ..
      "exec \"$@\" %s -e %s"):format(shell_quote(errs), shell_quote(input), ceil(left / 1000),
      _M.MEMORY_KB, left / 1000, shell_quote(interpreter),
      shell_quote('package.path = os.getenv"DDB_SANDBOX_PATH" package.cpath = ' ..
        'os.getenv"DDB_SANDBOX_CPATH" os.exit(require"ddb.sandbox".child())'))
    local p = io.popen("DDB_SANDBOX_PATH=" .. shell_quote(package.path) ..
      " DDB_SANDBOX_CPATH=" .. shell_quote(package.cpath) .. " sh -c " .. shell_quote(script) ..
      " sh 2>/dev/null", "r")
    local out = p:read("*a") or ""
    p:close()
    os.remove(input)
    local printed = slurp(errs)
    os.remove(errs)
    local kind, rest = out:match("^([^\n]*)\n?(.*)$")
    if kind ~= "ok item" and kind ~= "ok DELETE" and kind ~= "ok NOTHING" and
        kind ~= "error" then
      -- killed (the time or memory ran out), or the interpreter could not start
      stderr:write(printed)
      if floor(deadline - monotonic_ms()) < 1 then
        error(("the script was stopped: it ran past the command's deadline " ..
          "(--deadline-ms %s)"):format(tostring(opts.deadline_ms or left)), 0)
      end
      error("the script was stopped before it finished (out of memory, or the sandbox " ..
        "could not start: " .. (printed:match("[^\n]+") or "no message") .. ")", 0)
    end
    stderr:write(printed)
    if kind == "error" then error(rest, 0) end
    if kind == "ok DELETE" then return optimistic.DELETE end
    if kind == "ok NOTHING" then return optimistic.NOTHING end
    local avs = ddb.decode_json(rest)
    if type(avs) ~= "table" then error("the sandbox returned an unreadable item", 0) end
    return ddb.unmarshal_item(avs)
  end
end

return _M
