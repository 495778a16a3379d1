-- Every call is bounded, whatever the server does: against spec/support/hostile_server.py
-- (a Content-Length of 2 GB streamed, an endless chunked body, a body that never ends, one
-- byte every 100 ms, headers that never end, a request never answered), each transport and
-- each credential source returns within the call's deadline (plus a margin a loaded 2-core
-- machine keeps to) and without making much more memory resident than the answer-size
-- limit. Each call runs in a worker process of its own (spec/support/workers/hostile_call.lua),
-- whose peak resident memory (VmHWM, reset just before the call) is read from /proc; the
-- calls inside nginx are measured on the nginx worker the same way.
local helper = require "helper"
local ddb = require "ddb"
local runner = require "support.nginx.runner"

local decode, encode = ddb.decode_json, ddb.encode_json
local q = helper.shell_quote

local DEADLINE_MS = 1500
-- generous: the call stops at the deadline, the process around it needs some scheduling
local SLACK_MS = 1500
-- the answer limit (32 MiB by default) and the buffers around it; the old code grew to GBs.
-- Under AddressSanitizer (make asan-integration) freed blocks stay resident in its
-- quarantine, so a buffer that doubles as it grows counts several times: 256 MiB there.
local ASAN = os.getenv("ASAN_OPTIONS") ~= nil
local MAX_GROWTH_KB = (ASAN and 256 or 64) * 1024
-- a worker that runs away is stopped here, and cannot take the machine's memory with it
local WORKER_TIMEOUT_S = tonumber(os.getenv("DDB_TEST_HOSTILE_TIMEOUT_S")) or 40
-- (not under AddressSanitizer, which reserves terabytes of address space for its shadow)
local WORKER_VMEM_KB = not ASAN and 3 * 1024 * 1024 or nil

local function kb_of(pid, field)
  local f = assert(io.open("/proc/" .. pid .. "/status"))
  local text = f:read("*a")
  f:close()
  return tonumber((assert(text:match(field .. ":%s*(%d+) kB"), "no " .. field)))
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- Runs hostile_call.lua in a clean environment plus vars; returns what it printed.
local function run_worker(path, mode, endpoint, vars)
  local env = { "PATH=" .. q(os.getenv("PATH")), "LUA_PATH=" .. q(package.path),
    "LUA_CPATH=" .. q(package.cpath) }
  for k, v in pairs(vars) do env[#env + 1] = k .. "=" .. q(v) end
  table.sort(env)
  -- the sanitizers' settings go on to a sanitized worker
  for _, k in ipairs({ "ASAN_OPTIONS", "UBSAN_OPTIONS" }) do
    if os.getenv(k) then env[#env + 1] = k .. "=" .. q(os.getenv(k)) end
  end
  local cmd = ("%senv -i %s timeout -s KILL %d %s %s %s %s %s %d 2>&1"):format(
    WORKER_VMEM_KB and ("ulimit -v " .. WORKER_VMEM_KB .. "; ") or "", table.concat(env, " "),
    WORKER_TIMEOUT_S, q(helper.lua_bin()),
    q(helper.root .. "spec/support/workers/hostile_call.lua"), q(path), q(mode), q(endpoint),
    DEADLINE_MS)
  local t0 = ddb.core.monotonic_ms()
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  local line = out:match("({[^\n]*})%s*$")
  assert(line, ("the worker printed no result after %.0f ms (killed?):\n%s"):format(
    ddb.core.monotonic_ms() - t0, out))
  return decode(line), out
end

-- What every hostile call must show: an error, soon enough, with little memory.
local function assert_bounded(r, codes, applied, label)
  local text = label .. ": " .. encode(r)
  local growth = r.hwm_kb - r.rss0_kb
  print(("\n  %-58s %5.0f ms, +%7d KiB resident, %s"):format(label, r.ms, growth,
    tostring(r.code)))
  assert.is_false(r.ok, text)
  local known = false
  for _, c in ipairs(codes) do known = known or r.code == c end
  assert(known, ("%s: expected %s"):format(text, table.concat(codes, " or ")))
  if applied then assert.equal(applied, r.applied, text) end
  assert(r.ms < DEADLINE_MS + SLACK_MS, ("%s: took %.0f ms"):format(text, r.ms))
  assert(growth < MAX_GROWTH_KB, ("%s: resident memory grew by %d KiB"):format(text, growth))
end

-- mode -> the codes a DynamoDB call ends with: the limit, or the deadline
local CALL_MODES = {
  { "HugeLength", { "AnswerTooLarge" } },
  { "EndlessChunked", { "AnswerTooLarge" } },
  { "EndlessClose", { "AnswerTooLarge" } },
  { "HugeHeaders", { "AnswerTooLarge" } },
  { "Drip", { "DeadlineExceeded" }, slow = true },
  { "Stall", { "DeadlineExceeded" }, slow = true },
}

describe("a hostile server", function()
  local server, home

  setup(function()
    server = helper.python_server("hostile_server.py")
    home = helper.tmpdir()
  end)

  teardown(function()
    if server then server.stop() end
  end)

  local function base_env(extra)
    local vars = { HOME = home, AWS_EC2_METADATA_DISABLED = "true" }
    for k, v in pairs(extra or {}) do vars[k] = v end
    return vars
  end

  local PATHS = {
    { "libcurl, the one-call path", "client" },
    { "libcurl, its own transfers (through a proxy)", "client", proxy = true },
    { "ddb.scheduler, its own HTTP/1.1", "scheduler" },
    { "ddb.scheduler, libcurl's own transfers (through a proxy)", "scheduler", proxy = true },
  }

  for _, p in ipairs(PATHS) do
    describe("through " .. p[1], function()
      for _, m in ipairs(CALL_MODES) do
        local mode, codes = m[1], m[2]
        it(("stops a %s answer within the deadline and the memory limit"):format(mode),
          function()
            local vars = base_env{ HOSTILE_KEYS = "1" }
            local endpoint = server.url
            if p.proxy then
              -- the endpoint is never resolved: the proxy (the hostile server) answers
              vars.http_proxy = server.url
              endpoint = "http://ddb.invalid:8000"
            end
            local r = run_worker(p[2], mode, endpoint, vars)
            -- a request that has left may have been applied: every such failure is "maybe"
            assert_bounded(r, codes, "maybe", p[1] .. ", " .. mode)
            if m.slow then
              assert(r.ms >= DEADLINE_MS - 100, ("gave up after %.0f ms"):format(r.ms))
            end
          end)
      end
    end)
  end

  describe("when fetching credentials", function()
    -- What each source ends with: the call's deadline (a stall, a drip), or a refusal of the
    -- oversized answer (CredentialsError). Instance metadata gives up on its own 1 s timeout
    -- before a 1.5 s deadline.
    local TOO_LARGE, LATE = "CredentialsError", "DeadlineExceeded"
    local SOURCES = {
      { "container credentials", function(mode)
          return { AWS_CONTAINER_CREDENTIALS_FULL_URI = server.url .. "/" .. mode .. "/creds" }
        end, { HugeLength = TOO_LARGE, EndlessChunked = TOO_LARGE, HugeHeaders = TOO_LARGE,
          Drip = LATE, Stall = LATE } },
      { "EC2 instance metadata", function(mode)
          return { AWS_EC2_METADATA_DISABLED = "false",
            AWS_EC2_METADATA_SERVICE_ENDPOINT = server.url .. "/" .. mode }
        end, { HugeLength = TOO_LARGE, EndlessChunked = TOO_LARGE, EndlessClose = TOO_LARGE,
          Stall = "CredentialsError" } },
      { "STS (web identity)", function(mode)
          return { AWS_WEB_IDENTITY_TOKEN_FILE = write(home .. "/token", "a-token\n"),
            AWS_ROLE_ARN = "arn:aws:iam::123456789012:role/hostile",
            AWS_ROLE_SESSION_NAME = mode, AWS_ENDPOINT_URL_STS = server.url }
        end, { HugeLength = TOO_LARGE, EndlessChunked = TOO_LARGE, Drip = LATE, Stall = LATE } },
      { "credential_process", function(mode)
          local command = ({ Endless = "yes", Stall = "sleep 30",
            HugeLine = "head -c 50000000 /dev/zero | tr '\\0' x" })[mode]
          return { AWS_CONFIG_FILE = write(home .. "/config",
            "[default]\ncredential_process = " .. command .. "\n") }
        end, { Endless = TOO_LARGE, HugeLine = TOO_LARGE, Stall = LATE } },
    }
    for _, s in ipairs(SOURCES) do
      local modes = {}
      for mode in pairs(s[3]) do modes[#modes + 1] = mode end
      table.sort(modes)
      for _, mode in ipairs(modes) do
        it(("stops %s answering %s within the deadline and the memory limit"):format(s[1], mode),
          function()
            local r = run_worker("client", "Plain", server.url, base_env(s[2](mode)))
            -- nothing reached DynamoDB: not applied
            assert_bounded(r, { s[3][mode] }, "no", s[1] .. ", " .. mode)
            if s[3][mode] == TOO_LARGE and mode ~= "Stall" then
              assert(r.message:find("more than it may", 1, true) or
                r.message:find("longer than", 1, true), r.message)
            end
          end)
      end
    end
  end)

  describe("inside nginx (cosockets)", function()
    local srv

    setup(function()
      srv = runner.start{ conf = runner.read(runner.support_dir .. "/harness.conf"), ports = 3,
        vars = { ENDPOINT = server.url, REGION = "us-east-1", ACCESS_KEY = "AKIDHOSTILE",
          SECRET_KEY = "hostile-secret" } }
    end)

    teardown(function()
      if srv then srv:stop() end
    end)

    -- One call in the worker; its time as the worker saw it, its peak memory from /proc.
    local function hostile(doc)
      local status, body = runner.http("POST", srv:url("/hostile"), encode{ op = "Plain",
        deadline_ms = DEADLINE_MS, endpoint = server.url })
      assert.equal(200, status, tostring(body) .. srv:log())
      local pid = decode(body).pid
      collectgarbage()
      write("/proc/" .. pid .. "/clear_refs", "5")
      local rss0 = kb_of(pid, "VmRSS")
      doc.deadline_ms = DEADLINE_MS
      status, body = runner.http("POST", srv:url("/hostile"), encode(doc), WORKER_TIMEOUT_S)
      assert.equal(200, status, tostring(body) .. srv:log())
      local r = decode(body)
      assert.equal(pid, r.pid, "the call ran in another worker")
      r.rss0_kb, r.hwm_kb = rss0, kb_of(pid, "VmHWM")
      r.ok, r.code, r.applied = r.ok, r.err and r.err.code, r.err and r.err.applied
      return r
    end

    for _, m in ipairs(CALL_MODES) do
      local mode, codes = m[1], m[2]
      it(("stops a %s answer within the deadline and the memory limit"):format(mode), function()
        local r = hostile({ op = mode, endpoint = server.url })
        assert_bounded(r, codes, "maybe", "cosockets, " .. mode)
      end)
    end

    for _, m in ipairs({ { "HugeLength", "CredentialsError" },
        { "EndlessChunked", "CredentialsError" }, { "Stall", "DeadlineExceeded" } }) do
      it(("stops container credentials answering %s within the deadline and the memory " ..
        "limit"):format(m[1]), function()
        local r = hostile({ container_url = server.url .. "/" .. m[1] .. "/creds" })
        assert_bounded(r, { m[2] }, "no", "cosockets, container credentials, " .. m[1])
      end)
    end
  end)
end)
