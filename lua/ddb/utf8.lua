--- ddb.utf8: one code point as UTF-8 text, for STS's XML reader (character references) on
-- every runtime (Lua 5.1 and LuaJIT have no `utf8.char`). JSON escapes are read in C.
-- @module ddb.utf8

local floor, schar = math.floor, string.char

local _M = {}

--- The UTF-8 bytes of a code point.
-- @param cp the code point, 0 to 0x10FFFF (the caller checks the range)
-- @return the text
function _M.char(cp)
  if cp < 0x80 then return schar(cp) end
  if cp < 0x800 then return schar(0xC0 + floor(cp / 0x40), 0x80 + cp % 0x40) end
  if cp < 0x10000 then
    return schar(0xE0 + floor(cp / 0x1000), 0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
  end
  return schar(0xF0 + floor(cp / 0x40000), 0x80 + floor(cp / 0x1000) % 0x40,
    0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

return _M
