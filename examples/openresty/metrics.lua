--- Per-table metrics of ddb-optimistic in Prometheus' text format, for nginx + ngx_lua
-- (examples/openresty/metrics.conf). `on_event` is the hook to give to optimistic.new (or
-- ddb.new): it adds each event to counters in a lua_shared_dict, so every worker's calls
-- land in one place; `serve` is the content handler of the /metrics location.
--
--   ddb_calls_total{table,op,outcome}      with_item/with_items calls; outcome "ok" or the
--                                          error code (OutcomeUnknown among them)
--   ddb_conflicts_total{table,op}          conflicts met by those calls
--   ddb_outcome_unknown_total{table,op}    calls that ended in OutcomeUnknown
--   ddb_call_duration_seconds{table,op}    histogram of the calls' elapsed time
--   ddb_consumed_capacity_total{table,op}  capacity units the calls consumed
--   ddb_requests_total{table,op,code}      requests to DynamoDB (code "ok" or the error's)
-- luacheck: globals ngx.header ngx.status

local ngx = ngx
local tostring, tonumber, pairs, ipairs, floor = tostring, tonumber, pairs, ipairs, math.floor
local concat, sort = table.concat, table.sort

local _M = {}

--- The lua_shared_dict that holds the counters (`lua_shared_dict ddb_metrics 1m;`).
_M.DICT = "ddb_metrics"

--- Upper bounds of the duration histogram, in seconds.
_M.BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }

local FAMILIES = {
  ddb_calls_total = { "counter", "with_item/with_items calls by outcome (ok or the error code)" },
  ddb_conflicts_total = { "counter", "conflicts met by with_item/with_items calls" },
  ddb_outcome_unknown_total = { "counter", "calls whose write may or may not have been applied" },
  ddb_call_duration_seconds = { "histogram", "elapsed time of with_item/with_items calls" },
  ddb_consumed_capacity_total = { "counter", "capacity units consumed by the calls" },
  ddb_requests_total = { "counter", "requests sent to DynamoDB, by answer (ok or the error code)" },
}

-- Label values as the text format wants them: backslash, double quote and newline escaped.
local function label(v)
  return (tostring(v):gsub("[\\\"\n]", { ["\\"] = "\\\\", ["\""] = "\\\"", ["\n"] = "\\n" }))
end

-- The dict key of one sample: family, a tab, the label pairs as they will be printed.
local function key(family, labels)
  return family .. "\t" .. labels
end

local warned = false
local function add(dict, k, n)
  local ok, err = dict:incr(k, n, 0)
  if not ok and not warned then
    warned = true   -- once per worker: a full dict must not flood the log
    ngx.log(ngx.WARN, "metrics: cannot count ", k, ": ", err)
  end
end

--- The hook: `optimistic.new{ ..., on_event = metrics.on_event }`. Runs in the request, under
-- the library's pcall; shared-dict operations never yield.
function _M.on_event(ev)
  local dict = ngx.shared[_M.DICT]
  if not dict then return end
  local base = 'table="' .. label(ev.table or "") .. '",op="' .. label(ev.op or "") .. '"'
  if ev.kind == "call" then
    local outcome = ev.outcome or "unknown"
    add(dict, key("ddb_calls_total", base .. ',outcome="' .. label(outcome) .. '"'), 1)
    add(dict, key("ddb_conflicts_total", base), ev.conflicts or 0)
    add(dict, key("ddb_outcome_unknown_total", base), outcome == "OutcomeUnknown" and 1 or 0)
    add(dict, key("ddb_consumed_capacity_total", base), tonumber(ev.consumed_capacity) or 0)
    local seconds = (ev.elapsed_ms or 0) / 1000
    for i, le in ipairs(_M.BUCKETS) do
      -- cumulative: a call counts in every bucket at or above its duration
      add(dict, key("ddb_call_duration_seconds_bucket", base .. ",le=" .. i), seconds <= le and 1 or 0)
    end
    add(dict, key("ddb_call_duration_seconds_sum", base), seconds)
    add(dict, key("ddb_call_duration_seconds_count", base), 1)
  elseif ev.kind == "request" then
    add(dict, key("ddb_requests_total", base .. ',code="' .. label(ev.code or "ok") .. '"'), 1)
  end
end

local function number(v)
  if v == floor(v) and v > -1e15 and v < 1e15 then return ("%d"):format(v) end
  return ("%.9g"):format(v)
end

--- The samples, as exposition text: one # HELP and # TYPE per family, then its samples,
-- series sorted by their labels and a histogram's buckets in increasing order.
function _M.render(dict)
  local by_family = {}
  for _, k in ipairs(dict:get_keys(0)) do
    local name, labels = k:match("^([%w_]+)\t(.*)$")
    if name then
      local family = name:gsub("_bucket$", ""):gsub("_sum$", ""):gsub("_count$", "")
      if not FAMILIES[family] then family = name end
      by_family[family] = by_family[family] or {}
      by_family[family][#by_family[family] + 1] = { name = name, labels = labels,
        value = dict:get(k) or 0 }
    end
  end
  local names = {}
  for family in pairs(by_family) do names[#names + 1] = family end
  sort(names)
  local out = {}
  for _, family in ipairs(names) do
    local meta = FAMILIES[family] or { "untyped", family }
    out[#out + 1] = "# HELP " .. family .. " " .. meta[2]
    out[#out + 1] = "# TYPE " .. family .. " " .. meta[1]
    local samples = by_family[family]
    if meta[1] == "histogram" then
      -- per series (its labels without le): buckets 1..n, +Inf, _sum, _count
      local series = {}
      for _, s in ipairs(samples) do
        local labels, le = s.labels:match("^(.*),le=(%d+)$")
        labels = labels or s.labels
        series[labels] = series[labels] or { buckets = {} }
        if le then
          series[labels].buckets[tonumber(le)] = s.value
        elseif s.name:match("_sum$") then
          series[labels].sum = s.value
        else
          series[labels].count = s.value
        end
      end
      local order = {}
      for labels in pairs(series) do order[#order + 1] = labels end
      sort(order)
      for _, labels in ipairs(order) do
        local s = series[labels]
        for i, le in ipairs(_M.BUCKETS) do
          out[#out + 1] = ("%s_bucket{%s,le=\"%s\"} %s"):format(family, labels, number(le),
            number(s.buckets[i] or 0))
        end
        out[#out + 1] = ("%s_bucket{%s,le=\"+Inf\"} %s"):format(family, labels,
          number(s.count or 0))
        out[#out + 1] = ("%s_sum{%s} %s"):format(family, labels, number(s.sum or 0))
        out[#out + 1] = ("%s_count{%s} %s"):format(family, labels, number(s.count or 0))
      end
    else
      sort(samples, function(a, b) return a.labels < b.labels end)
      for _, s in ipairs(samples) do
        out[#out + 1] = ("%s{%s} %s"):format(s.name, s.labels, number(s.value))
      end
    end
  end
  return concat(out, "\n") .. "\n"
end

--- content_by_lua handler of the /metrics location.
function _M.serve()
  local dict = ngx.shared[_M.DICT]
  if not dict then
    ngx.status = 500
    ngx.say("lua_shared_dict ", _M.DICT, " is not defined in nginx.conf")
    return ngx.exit(500)
  end
  ngx.header["Content-Type"] = "text/plain; version=0.0.4"
  ngx.print(_M.render(dict))
end

return _M
