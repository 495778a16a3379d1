--- make bench-instructions: instructions per operation of the C core, counted by callgrind
-- with collection switched on only inside the operation's C entry point, for a 1 KB and a
-- 100 KB item. Compared with the recorded spec/bench/instructions.json (drift is reported,
-- never a failure: library updates move these); BENCH_RECORD=1 records the new values.
-- Also checks that the signing key is derived once, not per request: callgrind counts, over
-- 1,000 signatures, the one-shot HMACs (4 derive the key) and the signatures made with the
-- kept HMAC state of that key.
local lib = require "bench.lib"

local q = lib.q
local _M = {}

local RECORDED = lib.dir .. "/instructions.json"

-- operation -> the C function Lua calls for it
local ENTRY = {
  sign = "signer_prepare",
  encode = "core_encode",
  parse = "ddb_proto_lua_parse_response",
  decode = "core_decode",
  marshal = "ddb_av_lua_marshal_item",
  unmarshal = "ddb_av_lua_unmarshal_item",
}
local OPS = { "sign", "encode", "parse", "decode", "marshal", "unmarshal" }
local SIZES = { { "1KB", 1024, 200 }, { "100KB", 102400, 10 } }

local function total_ir(file)
  local text = lib.read(file) or ""
  local total = text:match("\nsummary:%s*(%d+)") or text:match("\ntotals:%s*(%d+)")
  return tonumber(total)
end

local function callgrind(out, extra, ...)
  local wrapper = "valgrind --tool=callgrind --callgrind-out-file=" .. q(out) .. " " .. extra
  lib.must(lib.lua_cmd_via("5.4", wrapper, lib.dir .. "/instr.lua", ...))
end

-- Sums the calls= counts of every call to a function named `name` in a callgrind file.
local function calls_to(file, name)
  local names, current_cfn, total = {}, nil, 0
  for line in (lib.read(file) or ""):gmatch("[^\n]+") do
    local id, nm = line:match("^cfn=%((%d+)%)%s*(.*)$")
    if id then
      if nm ~= "" then names[id] = nm end
      current_cfn = names[id]
    else
      local id2, nm2 = line:match("^fn=%((%d+)%)%s*(.*)$")
      if id2 and nm2 ~= "" then names[id2] = nm2 end
      local c = line:match("^calls=(%d+)")
      if c and current_cfn == name then total = total + tonumber(c) end
    end
  end
  return total
end

function _M.run(ctx)
  local results, say = ctx.results, ctx.say
  ctx.build_tools()
  local dir = lib.tmpdir("callgrind")
  local counts = {}
  for _, s in ipairs(SIZES) do
    local label, size, n = s[1], s[2], s[3]
    counts[label] = {}
    for _, op in ipairs(OPS) do
      local out = dir .. "/" .. op .. "-" .. label .. ".out"
      callgrind(out, "--collect-atstart=no --toggle-collect=" .. ENTRY[op], op, size, n)
      local ir = total_ir(out)
      counts[label][op] = ir and math.floor(ir / n + 0.5)
    end
  end
  -- the signing key: 1,000 signatures; 4 one-shot HMACs derive the key, then each
  -- signature is one MAC from the key's kept HMAC state
  local out = dir .. "/hmac.out"
  callgrind(out, "", "sign", 1024, 999)
  local hmacs = calls_to(out, "HMAC")
  -- a MAC from the kept state copies the inner and the outer digest state (sigv4_hmac_sign,
  -- static and inlined at -O2, so its own calls cannot be counted); OpenSSL's one-shot HMAC
  -- copies the same two inside, so those are taken off
  local macs = calls_to(out, "EVP_MD_CTX_copy_ex") / 2 - hmacs
  local once = hmacs == 4 and macs == 1000
  results.signing_key = { signatures = 1000, hmac_calls = hmacs, kept_state_macs = macs,
    derived_once = once }
  say("  signing key: %d one-shot HMACs (derivation) and %d MACs from the kept key state for " ..
    "1000 signatures (%s)", hmacs, macs, once and "derived once" or "CHECK: expected 4 and 1000")
  lib.sh("rm -rf " .. q(dir))

  local recorded = lib.decode(lib.read(RECORDED) or "null")
  local drift = {}
  for label, ops in pairs(counts) do
    for op, ir in pairs(ops) do
      local was = type(recorded) == "table" and recorded.counts and recorded.counts[label] and
        recorded.counts[label][op]
      if was and ir then
        local d = (ir - was) / was * 100
        drift[label .. " " .. op] = d
        say("  %-6s %-9s %12d instructions/op (recorded %d, %+.1f%%)%s", label, op, ir, was, d,
          math.abs(d) > 5 and "  <-- moved" or "")
      else
        say("  %-6s %-9s %12s instructions/op (nothing recorded)", label, op, tostring(ir))
      end
    end
  end
  results.instructions = { counts = counts, recorded = type(recorded) == "table" and
    recorded.counts or nil, drift_percent = drift }
  if os.getenv("BENCH_RECORD") == "1" or type(recorded) ~= "table" then
    local libs = lib.must("dpkg-query -W -f='${Package} ${Version}\\n' liblua5.4-0 libcurl4 " ..
      "libssl3 libcjson1 valgrind 2>/dev/null || true")
    lib.write(RECORDED, lib.json({
      about = "Instructions per operation of the C core (callgrind, Lua 5.4), by " ..
        "make bench-instructions; BENCH_RECORD=1 rewrites this file.",
      counts = counts, recorded_with = libs:gsub("%s+$", ""):gsub("\n", "; "),
      machine = results.machine and results.machine.cpu,
    }, 2) .. "\n")
    say("  recorded in %s", RECORDED)
  end
end

function _M.table(results, add)
  local i = results.instructions
  if not i then return end
  add("")
  add("2. Instructions per operation (callgrind, Lua 5.4; drift against spec/bench/instructions.json)")
  add("| operation | 1 KB item | 100 KB item |")
  add("|---|---:|---:|")
  local names = { sign = "signing (signer:prepare)", encode = "request building (encode)",
    parse = "response parsing (parse_response)", decode = "JSON decode alone",
    marshal = "marshal_item", unmarshal = "unmarshal_item" }
  for _, op in ipairs(OPS) do
    local function cell(label)
      local v = i.counts[label] and i.counts[label][op]
      local d = i.drift_percent and i.drift_percent[label .. " " .. op]
      if not v then return "-" end
      return ("%d%s"):format(v, d and ("  (%+.1f%%)"):format(d) or "")
    end
    add(("| %s | %s | %s |"):format(names[op], cell("1KB"), cell("100KB")))
  end
end

return _M
