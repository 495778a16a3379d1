--- ddb.options: checks option tables against a specification, for ddb.new and the
-- transports. A wrong option is a programmer's mistake, so it raises, naming the option and
-- what it must be; an unknown name raises too, with the nearest known name when there is
-- one (a typo is the likeliest mistake: `timeout` for `timeout_ms`).
-- @module ddb.options

local type, pairs, ipairs, error, tostring, math_floor, math_huge, math_min =
  type, pairs, ipairs, error, tostring, math.floor, math.huge, math.min
local concat, sort = table.concat, table.sort

local _M = {}

-- Numbers as a message shows them: whole ones without a fraction, NaN and infinities by name.
local function show(v)
  if type(v) == "number" then
    if v ~= v then return "nan" end
    if v == math_huge then return "inf" end
    if v == -math_huge then return "-inf" end
    if v == math_floor(v) and v > -1e15 and v < 1e15 then return ("%d"):format(v) end
    return ("%.17g"):format(v)
  end
  if type(v) == "string" then
    -- concatenated, not formatted: Lua 5.1's %s stops at a NUL byte
    return "'" .. (#v > 40 and v:sub(1, 40) .. "..." or v) .. "'"
  end
  return "a " .. type(v)
end
_M.show = show

--- A number from lo to hi. what: the unit or kind, for the message ("milliseconds");
-- whole: only whole numbers.
function _M.number(lo, hi, what, whole)
  return { kind = "number", lo = lo, hi = hi, what = what, whole = whole }
end

--- A whole number from lo to hi.
function _M.whole(lo, hi, what)
  return _M.number(lo, hi, what, true)
end

--- A value of one of the Lua types listed ("string", "boolean", "function", "table").
function _M.kind(...)
  return { kinds = { ... } }
end

--- A value that check(v) accepts (check returns true, or false and what it must be).
function _M.custom(check)
  return { check = check }
end

local function expected_number(s)
  local range = ("between %s and %s"):format(show(s.lo), show(s.hi))
  local what = s.whole and (s.what and ("a whole number of " .. s.what) or "a whole number")
    or s.what
  return range .. (what and (" (" .. what .. ")") or "")
end

-- nil when v fits s, else what it must be.
local function mismatch(s, v)
  if s.kind == "number" then
    if type(v) ~= "number" then return "must be a number " .. expected_number(s) end
    -- NaN fails both comparisons; infinities fail one
    if not (v >= s.lo and v <= s.hi) or (s.whole and v ~= math_floor(v)) then
      return "must be " .. expected_number(s)
    end
    return nil
  end
  if s.kinds then
    for _, k in ipairs(s.kinds) do
      if type(v) == k then return nil end
    end
    local names = {}
    for i, k in ipairs(s.kinds) do names[i] = "a " .. k end
    return "must be " .. concat(names, " or ")
  end
  local ok, what = s.check(v)
  if ok then return nil end
  return "must be " .. tostring(what)
end

--- The number of single-character edits (insertions, deletions, changes and swaps of two
-- neighbours) between a and b, for suggesting the name meant; huge for long names.
function _M.distance(a, b)
  if #a > 40 or #b > 40 then return math_huge end
  local before, prev = nil, {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math_min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
      if before and j > 1 and a:sub(i, i) == b:sub(j - 1, j - 1) and
          a:sub(i - 1, i - 1) == b:sub(j, j) then
        cur[j] = math_min(cur[j], before[j - 2] + 1)
      end
    end
    before, prev = prev, cur
  end
  return prev[#b]
end
local distance = _M.distance

local function norm(n) return (n:lower():gsub("[%-_]", "")) end

--- The known names an unknown one was most likely meant to be (a list, maybe empty): every
-- name it begins (`version` for `version_start`, `version_step`), else the name a unit
-- suffix or one or two edits away.
function _M.suggest(name, spec)
  local out = {}
  if spec[name .. "_ms"] then return { name .. "_ms" } end
  local n = norm(name)
  if #n >= 3 then
    for known in pairs(spec) do
      if norm(known):find(n, 1, true) == 1 then out[#out + 1] = known end
    end
    if #out > 0 then
      sort(out)
      return out
    end
  end
  local best, best_d
  for known in pairs(spec) do
    local d = distance(n, norm(known))
    if d <= 2 and d < #known / 2 and (not best_d or d < best_d or (d == best_d and known < best)) then
      best, best_d = known, d
    end
  end
  return { best }
end

local function hint_text(list)
  if #list == 0 then return nil end
  if #list == 1 then return "'" .. list[1] .. "'" end
  local last = list[#list]
  local rest = {}
  for i = 1, #list - 1 do rest[i] = "'" .. list[i] .. "'" end
  return concat(rest, ", ") .. " or '" .. last .. "'"
end

local function names_of(spec)
  local names = {}
  for k in pairs(spec) do names[#names + 1] = k end
  sort(names)
  return names
end
_M.names = names_of

--- Checks opts against spec (name -> a constructor's result). where: the function's name for
-- messages ("ddb.new"); label: how an option is called ("option", "retry option"); level: the
-- error level of the caller of the function checking. Raises on the first mistake.
function _M.check(where, opts, spec, level, label)
  label = label or "option"
  level = (level or 2) + 1
  if type(opts) ~= "table" then error(where .. ": options must be a table", level) end
  for name, v in pairs(opts) do
    if type(name) ~= "string" then
      error(where .. ": " .. label .. " names must be strings, got " .. show(name) ..
        " (options are a table of name = value)", level)
    end
    local s = spec[name]
    if s == nil then
      local hint = hint_text(_M.suggest(name, spec))
      error(where .. ": unknown " .. label .. " " .. show(name) .. (hint and
        (" (did you mean " .. hint .. "?)") or
        ("; the " .. label .. "s are: " .. concat(names_of(spec), ", "))), level)
    end
    local why = mismatch(s, v)
    if why then
      error(where .. ": " .. label .. " '" .. name .. "' " .. why .. ", got " .. show(v), level)
    end
  end
  return opts
end

--- A copy of opts with only the names spec knows (for passing a mixed table on).
function _M.pick(opts, spec)
  local out = {}
  for name in pairs(spec) do out[name] = opts[name] end
  return out
end

return _M
