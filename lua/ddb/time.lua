--- ddb.time: the times the module reads and writes, without os.time's local-time trap:
-- ISO 8601 (credential expirations), HTTP dates (a server's Date, for clock skew), and the
-- ISO 8601 text of a time.
-- @module ddb.time

local type, tonumber = type, tonumber
local floor = math.floor
local os_date = os.date

local _M = {}

--- Days since 1970-01-01 of a date of the proleptic Gregorian calendar (Howard Hinnant's
-- days_from_civil).
-- @param y the year
-- @param m the month, 1 to 12
-- @param d the day of the month
-- @return a whole number of days (negative before 1970)
function _M.days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local doy = floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end
local days_from_civil = _M.days_from_civil

--- Seconds since the epoch for an ISO 8601 / RFC 3339 time ("2026-11-25T17:44:51Z",
-- "…T17:44:51.718318Z", "…+01:00"); nil for anything else.
function _M.parse_iso8601(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec, rest =
    s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  y, mo, d, h, mi, sec = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi),
    tonumber(sec)
  local frac = 0
  local digits = rest:match("^%.(%d+)")
  if digits then
    frac = tonumber("0." .. digits)
    rest = rest:sub(#digits + 2)
  end
  local offset
  if rest == "Z" or rest == "z" then
    offset = 0
  else
    local sign, oh, om = rest:match("^([%+%-])(%d%d):?(%d%d)$")
    if not sign then return nil end
    offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1)
  end
  local mdays = { 31, (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) and 29 or 28, 31, 30, 31,
    30, 31, 31, 30, 31, 30, 31 }
  if mo < 1 or mo > 12 or d < 1 or d > mdays[mo] or h > 23 or mi > 59 or sec > 60 then
    return nil
  end
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec + frac - offset
end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8,
  Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

--- Seconds since the epoch for an RFC 1123 date ("Sun, 06 Nov 1994 08:49:37 GMT"), or nil.
-- @param s the text
-- @return seconds | nil
function _M.parse_http_date(s)
  if type(s) ~= "string" then return nil end
  local d, mon, y, h, mi, sec = s:match("%a+, (%d+) (%a+) (%d+) (%d+):(%d+):(%d+)")
  local m = MONTHS[mon or ""]
  if not m then return nil end
  return days_from_civil(tonumber(y), m, tonumber(d)) * 86400 + tonumber(h) * 3600 +
    tonumber(mi) * 60 + tonumber(sec)
end

--- The ISO 8601 text (UTC, whole seconds) of a time in seconds since the epoch.
-- @param t seconds
-- @return text such as "2026-11-25T17:44:51Z"
function _M.format_iso8601(t)
  return os_date("!%Y-%m-%dT%H:%M:%SZ", floor(t))
end

return _M
