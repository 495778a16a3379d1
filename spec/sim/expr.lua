-- The simulator's DynamoDB expressions: ConditionExpression and UpdateExpression parsed and
-- evaluated on AttributeValue maps, for top-level attributes. What it does not know
-- (nested paths, functions it lacks) raises a ValidationException, so a request the model
-- cannot judge fails loudly instead of being judged wrongly.
local core = require "ddb.core"

local _M = {}

local function refuse(fmt, ...)
  error({ sim_error = true, status = 400, type = "ValidationException",
    message = fmt:format(...) }, 0)
end
_M.refuse = refuse

local KEYWORDS = { AND = true, OR = true, NOT = true, SET = true, REMOVE = true, ADD = true,
  DELETE = true, BETWEEN = true, IN = true }

local function tokenize(s)
  local toks, i, n = {}, 1, #s
  while i <= n do
    local c = s:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c == "#" or c == ":" then
      local j = i + 1
      while j <= n and s:sub(j, j):match("[%w_]") do j = j + 1 end
      if j == i + 1 then refuse("bad placeholder at %d in '%s'", i, s) end
      toks[#toks + 1] = { kind = c == "#" and "name" or "value", text = s:sub(i, j - 1) }
      i = j
    elseif c:match("[%a_]") then
      local j = i
      while j <= n and s:sub(j, j):match("[%w_]") do j = j + 1 end
      local word = s:sub(i, j - 1)
      toks[#toks + 1] = { kind = KEYWORDS[word:upper()] and "kw" or "word",
        text = KEYWORDS[word:upper()] and word:upper() or word }
      i = j
    elseif s:sub(i, i + 1) == "<>" or s:sub(i, i + 1) == "<=" or s:sub(i, i + 1) == ">=" then
      toks[#toks + 1] = { kind = "op", text = s:sub(i, i + 1) }
      i = i + 2
    elseif c:match("[=<>%(%),%+%-]") then
      toks[#toks + 1] = { kind = "op", text = c }
      i = i + 1
    elseif c == "." or c == "[" then
      refuse("nested attribute paths are not simulated ('%s')", s)
    else
      refuse("unexpected '%s' at %d in '%s'", c, i, s)
    end
  end
  return toks
end

local Parser = {}
Parser.__index = Parser

local function parser(s, names, values)
  if type(s) ~= "string" or s == "" then refuse("empty expression") end
  if #s > 4096 then refuse("expression of %d bytes exceeds 4 KB", #s) end
  return setmetatable({ toks = tokenize(s), pos = 1, s = s, names = names or {},
    values = values or {}, used_names = {}, used_values = {} }, Parser)
end

function Parser:peek() return self.toks[self.pos] end
function Parser:next()
  local t = self.toks[self.pos]
  self.pos = self.pos + 1
  return t
end
function Parser:accept(text)
  local t = self.toks[self.pos]
  if t and t.text == text and (t.kind == "op" or t.kind == "kw") then
    self.pos = self.pos + 1
    return true
  end
  return false
end
function Parser:expect(text)
  if not self:accept(text) then
    local t = self:peek()
    refuse("expected '%s' but found '%s' in '%s'", text, t and t.text or "end", self.s)
  end
end

function Parser:path()
  local t = self:next()
  if not t then refuse("expected an attribute in '%s'", self.s) end
  if t.kind == "name" then
    local n = self.names[t.text]
    if n == nil then refuse("undefined name placeholder %s", t.text) end
    self.used_names[t.text] = true
    return { path = n }
  elseif t.kind == "word" then
    return { path = t.text }
  end
  refuse("expected an attribute, found '%s' in '%s'", t.text, self.s)
end

function Parser:operand()
  local t = self:peek()
  if not t then refuse("expected an operand in '%s'", self.s) end
  if t.kind == "value" then
    self:next()
    local v = self.values[t.text]
    if v == nil then refuse("undefined value placeholder %s", t.text) end
    self.used_values[t.text] = true
    return { value = v }
  end
  if t.kind == "word" and t.text == "size" then
    self:next()
    self:expect("(")
    local p = self:path()
    self:expect(")")
    return { size = p }
  end
  return self:path()
end

local FUNCS = { attribute_exists = 1, attribute_not_exists = 1, begins_with = 2 }

function Parser:primary()
  if self:accept("(") then
    local c = self:cond()
    self:expect(")")
    return c
  end
  local t = self:peek()
  if t and t.kind == "word" and FUNCS[t.text] then
    self:next()
    self:expect("(")
    local args = { self:operand() }
    for _ = 2, FUNCS[t.text] do
      self:expect(",")
      args[#args + 1] = self:operand()
    end
    self:expect(")")
    return { fn = t.text, args = args }
  end
  local a = self:operand()
  local op = self:next()
  if not op or op.kind ~= "op" or not (op.text == "=" or op.text == "<>" or op.text == "<" or
    op.text == "<=" or op.text == ">" or op.text == ">=") then
    refuse("expected a comparison in '%s'", self.s)
  end
  return { cmp = op.text, a = a, b = self:operand() }
end

function Parser:negation()
  if self:accept("NOT") then return { ["not"] = self:negation() } end
  return self:primary()
end

function Parser:conj()
  local c = self:negation()
  while self:accept("AND") do c = { ["and"] = { c, self:negation() } } end
  return c
end

function Parser:cond()
  local c = self:conj()
  while self:accept("OR") do c = { ["or"] = { c, self:conj() } } end
  return c
end

function Parser:done()
  if self.pos <= #self.toks then
    refuse("unexpected '%s' in '%s'", self.toks[self.pos].text, self.s)
  end
end

-- DynamoDB refuses placeholders that an expression does not use
local function check_unused(parsers, names, values)
  for p in pairs(names or {}) do
    local used = false
    for _, ps in ipairs(parsers) do used = used or ps.used_names[p] end
    if not used then refuse("ExpressionAttributeNames unused in expressions: %s", p) end
  end
  for p in pairs(values or {}) do
    local used = false
    for _, ps in ipairs(parsers) do used = used or ps.used_values[p] end
    if not used then refuse("ExpressionAttributeValues unused in expressions: %s", p) end
  end
end

local function value_of(item, o)
  if o.value then return o.value end
  if o.size then
    local v = item and item[o.size.path]
    if not v then return nil end
    local t, x = next(v)
    if t == "S" or t == "B" then return { N = tostring(#x) } end
    if t == "L" or t == "SS" or t == "NS" or t == "BS" then return { N = tostring(#x) } end
    if t == "M" then
      local k = 0
      for _ in pairs(x) do k = k + 1 end
      return { N = tostring(k) }
    end
    return nil
  end
  return item and item[o.path]
end

local function order(a, b)
  local ta, xa = next(a)
  local tb, xb = next(b)
  if ta ~= tb then return nil end
  if ta == "N" then
    local na, nb = tonumber(xa), tonumber(xb)
    return na < nb and -1 or (na > nb and 1 or 0)
  end
  if ta == "S" or ta == "B" then return xa < xb and -1 or (xa > xb and 1 or 0) end
  return nil
end

local function eval(c, item)
  if c["and"] then return eval(c["and"][1], item) and eval(c["and"][2], item) end
  if c["or"] then return eval(c["or"][1], item) or eval(c["or"][2], item) end
  if c["not"] then return not eval(c["not"], item) end
  if c.fn == "attribute_exists" then return value_of(item, c.args[1]) ~= nil end
  if c.fn == "attribute_not_exists" then return value_of(item, c.args[1]) == nil end
  if c.fn == "begins_with" then
    local a, b = value_of(item, c.args[1]), value_of(item, c.args[2])
    if not a or not b or not a.S or not b.S then return false end
    return a.S:sub(1, #b.S) == b.S
  end
  local a, b = value_of(item, c.a), value_of(item, c.b)
  if a == nil or b == nil then return false end
  if c.cmp == "=" then return core.av_equal(a, b) end
  if c.cmp == "<>" then return not core.av_equal(a, b) end
  local o = order(a, b)
  if o == nil then return false end
  if c.cmp == "<" then return o < 0 end
  if c.cmp == "<=" then return o <= 0 end
  if c.cmp == ">" then return o > 0 end
  return o >= 0
end

--- Parses a condition; returns a function(item) -> boolean and its parser (for unused checks).
function _M.condition(s, names, values)
  local p = parser(s, names, values)
  local c = p:cond()
  p:done()
  return function(item) return eval(c, item) end, p
end

local function add_numbers(a, b)
  local s = core.version_add(a, b)
  if s then return s end
  return core.number_canonical(tonumber(a) + tonumber(b)) or tostring(tonumber(a) + tonumber(b))
end

local function negate(n)
  if n:sub(1, 1) == "-" then return n:sub(2) end
  return "-" .. n
end

function Parser:set_value()
  local function term()
    local t = self:peek()
    if t and t.kind == "word" and t.text == "if_not_exists" then
      self:next()
      self:expect("(")
      local p = self:path()
      self:expect(",")
      local d = self:set_value()
      self:expect(")")
      return { if_not_exists = p, default = d }
    end
    return self:operand()
  end
  local a = term()
  if self:accept("+") then return { plus = { a, term() } } end
  if self:accept("-") then return { minus = { a, term() } } end
  return a
end

local function set_eval(v, item)
  if v.if_not_exists then
    return (item and item[v.if_not_exists.path]) or set_eval(v.default, item)
  end
  if v.plus or v.minus then
    local pair = v.plus or v.minus
    local a, b = set_eval(pair[1], item), set_eval(pair[2], item)
    if not a or not b or not a.N or not b.N then
      refuse("an operand in the update expression is not a number")
    end
    return { N = add_numbers(a.N, v.plus and b.N or negate(b.N)) }
  end
  local x = value_of(item, v)
  if x == nil then refuse("the provided expression refers to an attribute that does not exist") end
  return x
end

local function copy(t)
  if type(t) ~= "table" then return t end
  local o = {}
  for k, v in pairs(t) do o[k] = copy(v) end
  return setmetatable(o, getmetatable(t))   -- keeps lists marked as lists
end
_M.copy = copy

--- Parses an update expression; returns function(item) -> new item (a copy).
function _M.update(s, names, values)
  local p = parser(s, names, values)
  local actions, seen = {}, {}
  while p:peek() do
    local kw = p:next()
    if kw.kind ~= "kw" or not (kw.text == "SET" or kw.text == "REMOVE" or kw.text == "ADD") then
      refuse("expected SET, REMOVE or ADD in '%s'", s)
    end
    repeat
      local path = p:path()
      if seen[path.path] then refuse("two actions on attribute '%s'", path.path) end
      seen[path.path] = true
      if kw.text == "SET" then
        p:expect("=")
        actions[#actions + 1] = { set = path.path, v = p:set_value() }
      elseif kw.text == "REMOVE" then
        actions[#actions + 1] = { remove = path.path }
      else
        actions[#actions + 1] = { add = path.path, v = p:operand() }
      end
      local more = p:accept(",")
    until not more
  end
  return function(item)
    local new = copy(item or {})
    local computed = {}
    for i, a in ipairs(actions) do
      if a.set then computed[i] = set_eval(a.v, item) end
      if a.add then
        local v = value_of(item, a.v)
        local old = item and item[a.add]
        if v.N then
          computed[i] = { N = old and add_numbers(old.N, v.N) or v.N }
        elseif v.SS or v.NS then
          local kind = v.SS and "SS" or "NS"
          local out, have = {}, {}
          for _, x in ipairs(old and old[kind] or {}) do out[#out + 1] = x; have[x] = true end
          for _, x in ipairs(v[kind]) do if not have[x] then out[#out + 1] = x end end
          computed[i] = { [kind] = out }
        else
          refuse("ADD takes a number or a set")
        end
      end
    end
    for i, a in ipairs(actions) do
      if a.set then new[a.set] = copy(computed[i])
      elseif a.add then new[a.add] = computed[i]
      else new[a.remove] = nil end
    end
    return new
  end, p
end

_M.check_unused = check_unused

return _M
