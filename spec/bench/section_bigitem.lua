--- make bench-bigitem: a with_item that changes one attribute of a 10 KB and of a 100 KB item,
-- client CPU per read-modify-write side by side with boto3 and the AWS SDK for JavaScript v3
-- doing the same (GetItem, the change, a conditional UpdateItem with ReturnValues ALL_NEW).
--
-- The server (nginx with the Lua module) answers every GetItem with the big item and every
-- UpdateItem with what the request asked for: the whole item for ALL_NEW (the peers, and
-- with_item by default: returns = "stored"), the attributes set for UPDATED_NEW (with_item
-- with returns = "written").
local lib = require "bench.lib"
local core = require "ddb.core"

local q = lib.q
local _M = {}
local SIZES = { 10 * 1024, 100 * 1024 }

local CONF = [[
# Big-item DynamoDB stand-in for make bench-bigitem (the answers read once, at start).
@HEAD@
    access_log off;
    client_body_buffer_size 1m;
    init_by_lua_block {
        local bodies = {}
        for line in io.lines("@ANSWERS@/answers.txt") do
            local key, file, crc = line:match("^(%S+ %S+) (%S+) (%d+)$")
            local f = assert(io.open(file, "rb"))
            bodies[key] = { f:read("*a"), crc }
            f:close()
        end
        BIG_BODIES = bodies
        function BIG_ANSWER(variant)
            ngx.req.read_body()
            local target = ngx.var.http_x_amz_target or ""
            local b = BIG_BODIES[variant .. " " .. target]
            if target == "DynamoDB_20120810.UpdateItem" and
               (ngx.req.get_body_data() or ""):find('"ReturnValues":"UPDATED_NEW"', 1, true) then
                b = BIG_BODIES[variant .. " UPDATED_NEW"] or b
            end
            b = b or { "{}", "2745614147" }
            ngx.header["Content-Type"] = "application/x-amz-json-1.0"
            ngx.header["x-amzn-requestid"] = "BENCHREQUESTID0000000000000000000000000000000000"
            ngx.header["x-amz-crc32"] = b[2]
            ngx.print(b[1])
        end
    }
@SERVERS@
}
]]

local function capacity(units)
  return ('"ConsumedCapacity":{"TableName":"bench","CapacityUnits":%s}'):format(units)
end

-- Writes the answers for each item size into dir (variant i: SIZES[i]). Returns the items'
-- sizes as DynamoDB JSON.
local function write_answers(dir)
  local lines, sizes = {}, {}
  for i, size in ipairs(SIZES) do
    local item = lib.big_item(size)
    local av_json = core.encode(core.marshal_item(item))
    sizes[i] = #av_json
    local bumped = {}
    for k, v in pairs(item) do bumped[k] = v end
    bumped.version, bumped.counter = 8, 42
    local texts = {
      get = '{"Item":' .. av_json .. ',' .. capacity("13.0") .. '}',
      all_new = '{"Attributes":' .. core.encode(core.marshal_item(bumped)) .. ',' ..
        capacity("100.0") .. '}',
      updated = '{"Attributes":{"counter":{"N":"42"},"version":{"N":"8"},' ..
        '"_ddb_tokens":{"S":"2 QUFBQUFBQUFBQUFB"}},' .. capacity("100.0") .. '}',
    }
    local files = {}
    for name, text in pairs(texts) do
      local path = ("%s/%d-%s.json"):format(dir, size, name)
      lib.write(path, text)
      files[name] = ("%s %d"):format(path, core.crc32(text))
    end
    lines[#lines + 1] = ("%d DynamoDB_20120810.GetItem %s"):format(i, files.get)
    lines[#lines + 1] = ("%d DynamoDB_20120810.UpdateItem %s"):format(i, files.all_new)
    lines[#lines + 1] = ("%d UPDATED_NEW %s"):format(i, files.updated)
  end
  lib.write(dir .. "/answers.txt", table.concat(lines, "\n") .. "\n")
  return sizes
end

local function start()
  local dir = lib.tmpdir("bigitem-answers")
  local sizes = write_answers(dir)
  local servers = {}
  for v = 1, #SIZES do
    servers[v] = ("    server { listen 127.0.0.1:@PORT%d@; location / { content_by_lua_block " ..
      "{ BIG_ANSWER(%d) } } }"):format(v, v)
  end
  local conf = CONF:gsub("@HEAD@", function() return lib.nginx_head(true) end)
    :gsub("@ANSWERS@", dir):gsub("@SERVERS@", table.concat(servers, "\n"))
  local srv = lib.nginx(conf, #SIZES, "bigitem")
  srv.item_bytes, srv.answers = sizes, dir
  return srv
end

--- The server alone (for profiles): srv:url(srv.ports[i]) answers with the item of SIZES[i]
-- (10 KB, 100 KB). srv:stop() ends it.
_M.server = start

function _M.run(ctx)
  local results, say = ctx.results, ctx.say
  ctx.build_tools()
  local srv = start()
  local PY = lib.root .. "/.venv/bin/python"
  local node = lib.read(lib.root .. "/spec/bench/node/node_modules/@aws-sdk/client-dynamodb/" ..
    "package.json")
  local ok, err = pcall(function()
    local out = { item_bytes = {} }
    for i, size in ipairs(SIZES) do
      local label = ("%d KB"):format(size // 1024)
      out.item_bytes[label] = srv.item_bytes[i]
      local url = srv:url(srv.ports[i])
            local clients = {
        { name = "ddb (Lua 5.4), returns written", cmd = lib.lua_cmd("5.4", lib.dir ..
          "/loop.lua", url, ctx.seconds, "cpu", "written") },
        { name = "ddb (LuaJIT), returns written", cmd = lib.lua_cmd("jit", lib.dir ..
          "/loop.lua", url, ctx.seconds, "cpu", "written") },
        { name = "ddb (Lua 5.4), returns stored", cmd = lib.lua_cmd("5.4", lib.dir ..
          "/loop.lua", url, ctx.seconds, "cpu", "stored") },
        { name = "ddb (LuaJIT), returns stored", cmd = lib.lua_cmd("jit", lib.dir ..
          "/loop.lua", url, ctx.seconds, "cpu", "stored") },
        { name = "boto3 (client API)", cmd = q(PY) .. " " .. q(lib.dir .. "/boto3_loop.py") ..
          " " .. url .. " " .. ctx.seconds .. " client" },
        { name = "boto3 (resource API)", cmd = q(PY) .. " " .. q(lib.dir .. "/boto3_loop.py") ..
          " " .. url .. " " .. ctx.seconds .. " resource" },
      }
      if node then
        clients[#clients + 1] = { name = "AWS SDK for JavaScript v3", cmd = "cd " ..
          q(lib.dir .. "/node") .. " && node --no-warnings sdk_loop.mjs " .. url .. " " ..
          ctx.seconds }
      else
        say("  (AWS SDK for JavaScript v3 not installed: make bench-deps)")
      end
      local runs = {}
      for r = 1, math.min(ctx.repeat_count, 5) do
        for _, c in ipairs(clients) do
          local doc = ctx.run_json(c.cmd)
          runs[c.name] = runs[c.name] or {}
          table.insert(runs[c.name], doc)
          say("  %s run %d %-30s %8.1f ops/s %9.1f us CPU/op", label, r, c.name, doc.ops_per_s,
            doc.cpu_us_per_op)
        end
      end
      local rows = {}
      for _, c in ipairs(clients) do
        local med = ctx.pick_median(runs[c.name], "cpu_us_per_op")
        local lo, hi = math.huge, 0
        for _, d in ipairs(runs[c.name]) do
          lo, hi = math.min(lo, d.cpu_us_per_op), math.max(hi, d.cpu_us_per_op)
        end
        rows[#rows + 1] = { name = c.name, median = med, min_us = lo, max_us = hi }
      end
      out[label] = rows
    end
    results.bigitem = out
  end)
  srv:stop()
  lib.sh("rm -rf " .. q(srv.answers))
  if not ok then error(err, 0) end
end

function _M.table(results, add)
  local r = results.bigitem
  if not r then return end
  add("")
  add("7. Big items: with_item changing one attribute; client CPU per read-modify-write")
  for _, label in ipairs({ "10 KB", "100 KB" }) do
    local rows = r[label]
    if rows then
      local base
      for _, row in ipairs(rows) do
        if row.name == "ddb (Lua 5.4), returns written" then base = row.median.cpu_us_per_op end
      end
      add("")
      add(("%s item (%d bytes as DynamoDB JSON)"):format(label, r.item_bytes[label] or 0))
      add("| client | CPU/op (us), median | range | x ddb (Lua 5.4, written) | ops/s |")
      add("|---|---:|---:|---:|---:|")
      for _, row in ipairs(rows) do
        add(("| %s | %.0f | %.0f-%.0f | %.1f | %.0f |"):format(row.name, row.median.cpu_us_per_op,
          row.min_us, row.max_us, base and row.median.cpu_us_per_op / base or 0,
          row.median.ops_per_s))
      end
    end
  end
end

return _M
