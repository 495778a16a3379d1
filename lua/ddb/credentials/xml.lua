--- ddb.credentials.xml: a reader of exactly the XML subset STS writes (elements, attributes,
-- the five predefined entities and character references, comments, an XML declaration).
-- Anything else (DOCTYPE, CDATA, processing instructions, unbalanced tags) is malformed; the
-- reader never expands declared entities, so no DOCTYPE trick can make it fetch or grow
-- anything. It does no I/O.
-- @module ddb.credentials.xml

local type, tonumber = type, tonumber
local concat = table.concat

local _M = {}

local ENTITIES = { lt = "<", gt = ">", amp = "&", quot = '"', apos = "'" }

local utf8_char = require("ddb.utf8").char

local function decode_text(s)
  if not s:find("&", 1, true) then return s end
  local bad = false
  local out = s:gsub("&([^;]*);?", function(ref)
    local e = ENTITIES[ref]
    if e then return e end
    local n = ref:match("^#x(%x+)$")
    n = n and tonumber(n, 16) or tonumber(ref:match("^#(%d+)$") or "")
    if n and n > 0 and n <= 0x10FFFF and not (n >= 0xD800 and n <= 0xDFFF) then
      return utf8_char(n)
    end
    bad = true
    return ""
  end)
  if bad then return nil end
  -- a "&" without its ";" matched too: make sure every reference was terminated
  local _, amps = s:gsub("&", "")
  local _, semis = s:gsub("&[^;&]*;", "")
  if amps ~= semis then return nil end
  return out
end

local NAME = "[%a_][%w_%.%-]*"
local QNAME = "[%a_][%w_%.%-]*:?[%w_%.%-]*"   -- with an optional namespace prefix

local function local_name(qname)
  return qname:match(":(.+)$") or qname
end

--- Reads an XML document into { ["Root/Child/Leaf"] = text } for its leaf elements
-- (namespace prefixes dropped). A path seen twice maps to false. nil, err for anything
-- outside the subset described in the module header, or over 64 KiB.
function _M.leaves(text)
  if type(text) ~= "string" then return nil, "not a string" end
  if #text > 65536 then return nil, "document too large" end
  local pos = 1
  if text:sub(1, 3) == "\239\187\191" then pos = 4 end
  local decl = text:match("^%s*<%?xml[^>]-%?>()", pos)
  if decl then pos = decl end
  local stack, leaves = {}, {}
  local had_child, text_of = {}, {}
  local roots = 0
  local n = #text
  while pos <= n do
    local lt = text:find("<", pos, true)
    local chunk = text:sub(pos, (lt or n + 1) - 1)
    if chunk:find("%S") then
      if #stack == 0 then return nil, "text outside the root element" end
      local t = decode_text(chunk)
      if not t then return nil, "bad character or entity reference" end
      text_of[#stack][#text_of[#stack] + 1] = t
    elseif #stack > 0 and chunk ~= "" then
      text_of[#stack][#text_of[#stack] + 1] = chunk
    end
    if not lt then break end
    if text:sub(lt, lt + 3) == "<!--" then
      local close = text:find("-->", lt + 4, true)
      if not close then return nil, "unterminated comment" end
      pos = close + 3
    elseif text:sub(lt + 1, lt + 1) == "/" then
      local name, close_end = text:match("^</(" .. QNAME .. ")%s*>()", lt)
      if not name then return nil, "malformed end tag" end
      name = local_name(name)
      local depth = #stack
      if depth == 0 or stack[depth] ~= name then return nil, "mismatched end tag" end
      if not had_child[depth] then
        local path = concat(stack, "/")
        local value = concat(text_of[depth])
        if leaves[path] == nil then leaves[path] = value else leaves[path] = false end
      end
      stack[depth], had_child[depth], text_of[depth] = nil, nil, nil
      pos = close_end
    elseif text:find("^<" .. NAME, lt) then
      local close = text:find(">", lt, true)
      if not close then return nil, "unterminated tag" end
      local inner = text:sub(lt + 1, close - 1)
      local self_closing = inner:sub(-1) == "/"
      if self_closing then inner = inner:sub(1, -2) end
      local name, attrs = inner:match("^(" .. QNAME .. ")(.*)$")
      name = local_name(name)
      -- attributes: name="value" or name='value', each after white space
      local rest = attrs:gsub("%s+" .. QNAME .. "%s*=%s*\"[^\"<]*\"", "")
        :gsub("%s+" .. QNAME .. "%s*=%s*'[^'<]*'", "")
      if rest:find("%S") then return nil, "malformed attributes" end
      if #stack == 0 then
        roots = roots + 1
        if roots > 1 then return nil, "more than one root element" end
      else
        had_child[#stack] = true
      end
      if self_closing then
        stack[#stack + 1] = name
        local path = concat(stack, "/")
        if leaves[path] == nil then leaves[path] = "" else leaves[path] = false end
        stack[#stack] = nil
      else
        stack[#stack + 1] = name
        had_child[#stack], text_of[#stack] = false, {}
      end
      pos = close + 1
    else
      return nil, "unsupported XML construct"
    end
  end
  if #stack > 0 then return nil, "unclosed element <" .. stack[#stack] .. ">" end
  if roots == 0 then return nil, "no root element" end
  return leaves
end

return _M
