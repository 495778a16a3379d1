-- Deterministic simulation of with_item and with_items against the DynamoDB model, in the
-- spirit of FoundationDB's simulation testing: for one seed, a scenario is drawn (actors,
-- keys, faults, settings), concurrent actors run as coroutines on the seeded scheduler of
-- sim.world, every request goes through the real client and engine, and at the end every
-- call of the engine is checked against the model's ground truth:
--   * a success was applied exactly once (none when it wrote nothing);
--   * a failure other than OutcomeUnknown was applied zero times (also by copies that
--     reached the server after the call returned) and says applied = "no";
--   * an OutcomeUnknown was applied at most once (and how many were is counted);
--   * no call outlived its deadline;
--   * no write landed on a state of its item other than the one its run of the function saw
--     (a lost update), for the attributes it writes.
-- M.run(seed, opts) -> result; a failing seed replays exactly with opts.trace = true.
local ddb = require "ddb"
local core = require "ddb.core"
local optimistic = require "ddb.optimistic"
local world = require "sim.world"
local model = require "sim.model"

local M = {}

local TABLE = "SimTable"

local function pick(rand, list) return list[1 + math.floor(rand() * #list)] end
local function chance(rand, p) return rand() < p end

local function new_client(w, seed, i, timeout_ms)
  return assert(ddb.new{
    region = "sim-1", endpoint = "http://sim.invalid",
    credentials = { access_key_id = "AKIDSIM", secret_access_key = "sim-secret" },
    transport = w:transport(), clock = w.clock, timeout_ms = timeout_ms,
    retry = { seed = seed * 64 + i, base_ms = 5, throttle_base_ms = 10, cap_ms = 200 },
  })
end

local function keystr(pk) return "S:" .. pk end

-- -----------------------------------------------------------------------------
-- Ground truth
-- -----------------------------------------------------------------------------
local UNVERSIONED = { hits = true, expires = true }   -- attributes writers set without versions

local function has_anchor(item)
  local h = item and item._ddb_tokens
  local list = h and h.S and core.history_tokens(h.S)
  return list and list[1] ~= nil
end

local function record_landing(sim, tag, changes)
  local w = sim.w
  for _, ch in ipairs(changes) do
    if ch.post then sim.states[tonumber(ch.post._sim.N)] = ch.post end
  end
  local call = tag and tag.call
  if not call then return end
  call.landed = call.landed + 1
  w:log("LANDED call %d run %d (%s)", call.id, tag.run, changes[1].op)
  local run = call.runs[tag.run]
  if not run then
    sim:violation(call, ("a write of call %d landed that no run planned"):format(call.id))
    return
  end
  for _, ch in ipairs(changes) do
    local seen = run.seen[ch.key]
    if seen ~= nil then
      local s = seen and sim.states[seen] or nil
      local p = ch.pre
      if (s == nil) ~= (p == nil) then
        sim:violation(call, ("call %d run %d landed on %s, having seen %s (%s)"):format(call.id,
          tag.run, p and "an item" or "no item", s and "an item" or "no item", ch.key))
      elseif s and tonumber(p._sim.N) ~= seen then
        -- another state: its differences must not be in what this write writes
        local names = {}
        for n in pairs(s) do names[n] = true end
        for n in pairs(p) do names[n] = true end
        for n in pairs(names) do
          if n ~= "_sim" then
            local differs = (s[n] == nil) ~= (p[n] == nil) or (s[n] and not core.av_equal(s[n], p[n]))
            local post = ch.post and ch.post[n]
            local writes = (post == nil) ~= (p[n] == nil) or (post and not core.av_equal(post, p[n]))
            -- writers without versions are outside what versions protect against a delete
            -- or a whole-item put (docs/with_item.md: put mode); an update leaves their attributes be
            if UNVERSIONED[n] and (ch.post == nil or ch.op == "PutItem" or ch.op == "Put") then
              if differs and writes then
                sim.stats.unversioned_replaced = sim.stats.unversioned_replaced + 1
              end
              writes = false
            end
            if differs and writes then
              if not has_anchor(s) and not has_anchor(p) then
                sim.stats.aba_without_history = sim.stats.aba_without_history + 1
              else
                sim:violation(call, ("lost update: call %d run %d wrote '%s' of %s over a " ..
                  "state it did not see (saw #%d, was #%s)"):format(call.id, tag.run, n, ch.key,
                  seen, p._sim.N))
              end
              break
            end
          end
        end
      end
    end
  end
end

-- -----------------------------------------------------------------------------
-- Actors
-- -----------------------------------------------------------------------------
local function begin_call(sim, a, kind, deadline_ms)
  sim.next_call = sim.next_call + 1
  local call = { id = sim.next_call, actor = a.name, kind = kind, runs = {}, bodies = {},
    landed = 0, started = sim.w.now, deadline_ms = deadline_ms }
  sim.calls[#sim.calls + 1] = call
  a.call = call
  sim.w:log("%s call %d %s", a.name, call.id, kind)
  return call
end

local function end_call(sim, a, call, ok, res, err)
  a.call = nil
  call.ended = sim.w.now
  call.ok, call.res, call.err = ok, res, err
  sim.w:log("%s call %d -> %s", a.name, call.id,
    ok and ("ok " .. tostring(res and res.action)) or (tostring(err.code) .. " applied=" ..
      tostring(err.applied)))
end

local function run_seen(call, seen)
  call.runs[#call.runs + 1] = { seen = seen }
end

local function serial_of(item)
  return item and item._sim and tonumber(item._sim) or false
end

-- with_item: increments, deletes, nothing
local function optimist(sim, cfg)
  return function(a)
    local w, rand = sim.w, sim.w.rand
    local client = new_client(w, sim.seed, #w.actors, cfg.timeout_ms)
    local store = assert(optimistic.new{ table = TABLE, client = client, key = { "pk" },
      tokens = cfg.tokens, mode = cfg.mode, idempotent = cfg.idempotent,
      deadline_ms = cfg.deadline_ms, version_start = cfg.version_start,
      max_attempts = cfg.max_attempts })
    for _ = 1, cfg.calls do
      local pk = pick(rand, sim.keys)
      local r = rand()
      local act = r < cfg.p_delete and "delete" or (r < cfg.p_delete + 0.04 and "nothing" or "incr")
      local call = begin_call(sim, a, "with_item " .. act .. " " .. pk, cfg.deadline_ms)
      local ttl = sim.ttl and chance(rand, 0.3)
      local item, err, info = store:with_item({ pk = pk }, function(it)
        run_seen(call, { [keystr(pk)] = serial_of(it) })
        if act == "delete" then return optimistic.DELETE end
        if act == "nothing" then return optimistic.NOTHING end
        it = it or { pk = pk }
        it.n = (it.n or 0) + 1
        it._sim = nil
        if ttl then it.expires = math.floor(w.now / 1000) + 1 end
        return it
      end)
      if item then
        end_call(sim, a, call, true, info, nil)
        call.written = info.written
        sim.stats.resends = sim.stats.resends + info.resends
        if info.resends > 0 then sim.stats.resent_ok = sim.stats.resent_ok + 1 end
      else
        end_call(sim, a, call, false, nil, err)
        local code = err.code
        sim.stats.codes[code] = (sim.stats.codes[code] or 0) + 1
      end
      sim.stats.requests = sim.stats.requests + ((item and info or err.info or {}).requests or 0)
      w:sleep(rand() * cfg.think_ms)
    end
  end
end

-- with_items: move one unit between two items, creating them when absent
local function transferer(sim, cfg)
  return function(a)
    local w, rand = sim.w, sim.w.rand
    local client = new_client(w, sim.seed, #w.actors, cfg.timeout_ms)
    local store = assert(optimistic.new{ table = TABLE, client = client, key = { "pk" },
      tokens = cfg.tokens, mode = cfg.mode, idempotent = cfg.idempotent,
      deadline_ms = cfg.deadline_ms, max_attempts = cfg.max_attempts })
    for _ = 1, cfg.calls do
      local from = pick(rand, sim.keys)
      local to = pick(rand, sim.keys)
      if to == from then to = from == sim.keys[1] and (sim.keys[2] or "k-other") or sim.keys[1] end
      local call = begin_call(sim, a, "with_items " .. from .. " -> " .. to, cfg.deadline_ms)
      local items, err, info = store:with_items({ from = { pk = from }, to = { pk = to } },
        function(it)
          run_seen(call, { [keystr(from)] = serial_of(it.from), [keystr(to)] = serial_of(it.to) })
          local f = it.from or { pk = from, n = 10 }
          local t = it.to or { pk = to, n = 10 }
          f._sim, t._sim = nil, nil
          f.n, t.n = (f.n or 0) - 1, (t.n or 0) + 1
          return { from = f, to = t }
        end)
      if items then
        end_call(sim, a, call, true, info, nil)
        call.written = info.written
      else
        end_call(sim, a, call, false, nil, err)
        sim.stats.codes[err.code] = (sim.stats.codes[err.code] or 0) + 1
      end
      w:sleep(rand() * cfg.think_ms)
    end
  end
end

-- writers that keep no history, as other SDKs write
local function foreign(sim, cfg, style)
  return function(a)
    local w, rand = sim.w, sim.w.rand
    local client = new_client(w, sim.seed, #w.actors, cfg.timeout_ms)
    local function call(op, req) return client:call(op, req, { deadline_ms = cfg.deadline_ms }) end
    for _ = 1, cfg.calls do
      local pk = pick(rand, sim.keys)
      local key = { pk = { S = pk } }
      w:log("%s %s %s", a.name, style, pk)
      if style == "adder" then
        call("UpdateItem", { TableName = TABLE, Key = key, UpdateExpression = "ADD hits :one",
          ExpressionAttributeValues = { [":one"] = { N = "1" } } })
      elseif style == "deleter" then
        if chance(rand, 0.5) then
          call("DeleteItem", { TableName = TABLE, Key = key })     -- the Java v2 client's delete
        else
          local got = call("GetItem", { TableName = TABLE, Key = key, ConsistentRead = true })
          local item = got and got.Item
          if item and item.version then
            call("DeleteItem", { TableName = TABLE, Key = key, ConditionExpression = "#v = :v",
              ExpressionAttributeNames = { ["#v"] = "version" },
              ExpressionAttributeValues = { [":v"] = item.version } })
          end
        end
      elseif style == "creator" then
        local item = { pk = { S = pk }, n = { N = "100" },
          version = { N = tostring(cfg.foreign_start or 1) } }
        if sim.ttl then item.expires = { N = tostring(math.floor(w.now / 1000) + 1) } end
        call("PutItem", { TableName = TABLE, Item = item,
          ConditionExpression = "attribute_not_exists(pk)" })
      else
        local got = call("GetItem", { TableName = TABLE, Key = key, ConsistentRead = true })
        if got then
          local item = got.Item
          if item and next(item) then
            local v = item.version and item.version.N
            local nextv = v and core.version_add(v, 1) or "1"
            local cond = v and "#v = :v" or "attribute_not_exists(#v)"
            local values = v and { [":v"] = { N = v } } or nil
            if style == "pynamo" then
              -- PynamoDB's save(): the whole item, unknown attributes dropped
              local put = { pk = item.pk, n = { N = tostring((tonumber(item.n and item.n.N) or 0) + 1) },
                version = { N = nextv } }
              call("PutItem", { TableName = TABLE, Item = put, ConditionExpression = cond,
                ExpressionAttributeNames = { ["#v"] = "version" }, ExpressionAttributeValues = values })
            else
              -- the Java v2 enhanced client's updateItem: other attributes kept
              values = values or {}
              values[":n"] = { N = tostring((tonumber(item.n and item.n.N) or 0) + 1) }
              values[":nv"] = { N = nextv }
              call("UpdateItem", { TableName = TABLE, Key = key,
                UpdateExpression = "SET #n = :n, #v = :nv", ConditionExpression = cond,
                ExpressionAttributeNames = { ["#v"] = "version", ["#n"] = "n" },
                ExpressionAttributeValues = values })
            end
          else
            call("PutItem", { TableName = TABLE, Item = { pk = { S = pk }, n = { N = "1" },
              version = { N = tostring(cfg.foreign_start or 1) } },
              ConditionExpression = "attribute_not_exists(pk)" })
          end
        end
      end
      w:sleep(rand() * cfg.think_ms * 2)
    end
  end
end

-- -----------------------------------------------------------------------------
-- Scenarios
-- -----------------------------------------------------------------------------
local ALL_FAULTS = world.FAULT_NAMES

local function draw_faults(rand, level)
  local f = {}
  for _, k in ipairs(ALL_FAULTS) do
    if chance(rand, 0.7) then f[k] = level * rand() end
  end
  return f
end

local FORCE_IDEMPOTENT   -- M.run's opts.idempotent: every with_item store idempotent or not

local function engine_cfg(rand, over)
  local cfg = {
    calls = 3 + math.floor(rand() * 6),
    tokens = pick(rand, { 8, 8, 4, 2, 1, 0 }),
    mode = chance(rand, 0.75) and "update" or "put",
    idempotent = false,
    timeout_ms = pick(rand, { 15, 40, 120 }),
    deadline_ms = pick(rand, { 150, 400, 1500 }),
    think_ms = pick(rand, { 0, 2, 10 }),
    p_delete = 0,
  }
  for k, v in pairs(over or {}) do cfg[k] = v end
  if FORCE_IDEMPOTENT ~= nil then cfg.idempotent = FORCE_IDEMPOTENT end
  return cfg
end

M.SCENARIOS = {
  -- many writers with history on one or two hot items, every fault kind
  hot = function(sim, rand)
    sim.keys = chance(rand, 0.7) and { "k1" } or { "k1", "k2" }
    local n = 2 + math.floor(rand() * 5)
    for i = 1, n do sim.w:spawn("opt" .. i, optimist(sim, engine_cfg(rand)), rand()) end
    return draw_faults(rand, 0.08)
  end,
  -- items deleted (with and without conditions, by TTL) and created again by others
  incarnations = function(sim, rand)
    sim.keys = { "k1" }
    sim.ttl = chance(rand, 0.5)
    local n = 1 + math.floor(rand() * 3)
    for i = 1, n do
      sim.w:spawn("opt" .. i, optimist(sim, engine_cfg(rand, { p_delete = 0.25 })), rand())
    end
    local fc = { calls = 4 + math.floor(rand() * 6), think_ms = pick(rand, { 1, 5, 20 }),
      timeout_ms = 50, deadline_ms = 500, foreign_start = pick(rand, { 1, 0 }) }
    sim.w:spawn("deleter", foreign(sim, fc, "deleter"), rand() * 5)
    sim.w:spawn("creator", foreign(sim, fc, "creator"), rand() * 5)
    if chance(rand, 0.5) then
      sim.w:spawn("creator2", foreign(sim, fc, "creator"), rand() * 5)
    end
    return draw_faults(rand, 0.1)
  end,
  -- other SDKs' writers on the same items: history dropped, kept, or not touched
  foreign = function(sim, rand)
    sim.keys = { "k1" }
    local n = 1 + math.floor(rand() * 3)
    for i = 1, n do
      sim.w:spawn("opt" .. i, optimist(sim, engine_cfg(rand, { p_delete = 0.1,
        version_start = pick(rand, { 1, 0 }) })), rand())
    end
    local fc = { calls = 4 + math.floor(rand() * 6), think_ms = pick(rand, { 1, 5, 20 }),
      timeout_ms = 50, deadline_ms = 500,
      foreign_start = pick(rand, { 1, 0, "100000000000000000000", "9007199254740993",
        "9223372036854775807" }) }
    if chance(rand, 0.5) then sim.w:spawn("creator", foreign(sim, fc, "creator"), 0) end
    for _, style in ipairs({ "pynamo", "javaupd", "adder" }) do
      if chance(rand, 0.7) then sim.w:spawn(style, foreign(sim, fc, style), rand() * 5) end
    end
    if chance(rand, 0.3) then sim.w:spawn("deleter", foreign(sim, fc, "deleter"), rand() * 5) end
    return draw_faults(rand, 0.08)
  end,
  -- with_items transfers among items that with_item writers and deleters also change
  txn = function(sim, rand)
    sim.keys = { "k1", "k2", "k3" }
    local n = 1 + math.floor(rand() * 3)
    -- where the model honours ClientRequestToken, as DynamoDB does, commits may trust it
    local honoured = sim.w.model.tokens_honoured
    for i = 1, n do
      sim.w:spawn("txn" .. i, transferer(sim, engine_cfg(rand, {
        idempotent = honoured and chance(rand, 0.5) })), rand())
    end
    for i = 1, math.floor(rand() * 3) do
      sim.w:spawn("opt" .. i, optimist(sim, engine_cfg(rand, { p_delete = 0.1 })), rand())
    end
    if chance(rand, 0.4) then
      local fc = { calls = 4, think_ms = 10, timeout_ms = 50, deadline_ms = 500 }
      sim.w:spawn("deleter", foreign(sim, fc, "deleter"), rand() * 5)
      sim.w:spawn("creator", foreign(sim, fc, "creator"), rand() * 5)
    end
    return draw_faults(rand, 0.08)
  end,
  -- idempotent commits (TransactWriteItems + ClientRequestToken) on a hot item, with
  -- deleters and creators: what DynamoDB's own deduplication settles
  idempotent = function(sim, rand)
    sim.keys = chance(rand, 0.6) and { "k1" } or { "k1", "k2" }
    local n = 2 + math.floor(rand() * 4)
    for i = 1, n do
      sim.w:spawn("idem" .. i, optimist(sim, engine_cfg(rand, { idempotent = true,
        p_delete = 0.1, tokens = pick(rand, { 8, 2, 0 }) })), rand())
    end
    if chance(rand, 0.4) then
      local fc = { calls = 4, think_ms = 10, timeout_ms = 50, deadline_ms = 500 }
      sim.w:spawn("deleter", foreign(sim, fc, "deleter"), rand() * 5)
      sim.w:spawn("creator", foreign(sim, fc, "creator"), rand() * 5)
    end
    return draw_faults(rand, 0.1)
  end,
}
M.SCENARIO_NAMES = { "hot", "incarnations", "foreign", "txn", "idempotent" }

-- -----------------------------------------------------------------------------
-- One seed
-- -----------------------------------------------------------------------------
local Sim = {}
Sim.__index = Sim

function Sim:violation(_, message)
  self.violations[#self.violations + 1] = message
  self.w:log("VIOLATION %s", message)
end

local function check(sim)
  for _, call in ipairs(sim.calls) do
    if not call.ended then
      sim:violation(call, ("call %d (%s) never returned"):format(call.id, call.kind))
    else
      local took = call.ended - call.started
      if took > call.deadline_ms + 1 then
        sim:violation(call, ("call %d took %.1f ms, past its deadline of %d ms"):format(call.id,
          took, call.deadline_ms))
      end
      if call.ok then
        local want = call.written and 1 or 0
        if call.landed ~= want then
          sim:violation(call, ("call %d (%s) succeeded (%s) but was applied %d times")
            :format(call.id, call.kind, call.written and "written" or "nothing written",
              call.landed))
        end
      elseif call.err.code == "OutcomeUnknown" then
        sim.stats.unknown = sim.stats.unknown + 1
        -- a transport that sent a write twice (reported) may have landed it on two
        -- incarnations of an item without history: counted, and OutcomeUnknown says so
        if call.err.possibly_twice and call.landed == 2 then
          sim.stats.duplicated_twice = sim.stats.duplicated_twice + 1
        elseif call.landed > 1 then
          sim:violation(call, ("call %d answered OutcomeUnknown and was applied %d times")
            :format(call.id, call.landed))
        end
        if call.landed == 1 then sim.stats.unknown_landed = sim.stats.unknown_landed + 1 end
        if call.err.applied ~= "maybe" then
          sim:violation(call, ("call %d: OutcomeUnknown says applied=%s"):format(call.id,
            tostring(call.err.applied)))
        end
      else
        if call.landed ~= 0 then
          sim:violation(call, ("call %d failed with %s but was applied %d times"):format(call.id,
            call.err.code, call.landed))
        end
        if call.err.applied ~= "no" then
          sim:violation(call, ("call %d failed with %s, applied=%s (must be 'no')"):format(
            call.id, call.err.code, tostring(call.err.applied)))
        end
      end
    end
  end
end

--- Runs one seed. opts: scenario (a name; default drawn from the seed), trace (keep the
-- event trace), faults (override), idempotent (force every with_item store's setting; true
-- also makes the model honour ClientRequestToken, as DynamoDB does).
function M.run(seed, opts)
  opts = opts or {}
  local w = world.new(seed, { trace = opts.trace })
  local rand = w.rand
  local name = opts.scenario or M.SCENARIO_NAMES[1 + math.floor(rand() * #M.SCENARIO_NAMES)]
  local sim = setmetatable({ seed = seed, w = w, calls = {}, next_call = 0, violations = {},
    states = {}, scenario = name,
    stats = { unknown = 0, unknown_landed = 0, requests = 0, codes = {},
      aba_without_history = 0, unversioned_replaced = 0, duplicated_twice = 0, resends = 0,
      resent_ok = 0 } }, Sim)
  FORCE_IDEMPOTENT = opts.idempotent
  local idem = name == "idempotent" or opts.idempotent == true
  w.model = model.new({
    returns_item = chance(rand, 0.7),
    tokens_honoured = idem or chance(rand, 0.5),
    remember_cancel = chance(rand, 0.5),
    txn_ms = rand() * 3,
    on_landed = function(tag, changes) record_landing(sim, tag, changes) end,
  })
  w.model:create_table(TABLE, { "pk" }, "expires")
  local faults = M.SCENARIOS[name](sim, rand)
  w.faults = opts.faults or faults
  if sim.ttl then
    local function sweep()
      w.model:sweep(w.now / 1000, rand, 0.3)
      for _, a in ipairs(w.actors) do
        if not a.done then return w:at(w.now + 50, sweep) end
      end
    end
    w:at(0, sweep)
  end
  -- the actors, then whatever copies are still on their way
  w:run(600000)
  check(sim)
  local result = { seed = seed, scenario = name, violations = sim.violations,
    stats = sim.stats, calls = #sim.calls, trace = w.trace, fired = w.fired,
    model = w.model.stats, truncated = w.truncated }
  return result
end

return M
