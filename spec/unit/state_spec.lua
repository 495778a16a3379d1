-- What one read of an item tells the engine (ddb.engine.state): an item kept as the answer's
-- doc is read in C (core.doc_state), an item of tables in Lua; both must tell the same state,
-- or refuse with the same words.
local ddb = require "ddb"
local state = require "ddb.engine.state"
local settings = require "ddb.engine.settings"

local core = ddb.core

local function doc_of(body)
  return assert(core.parse_response(200, body, {}, "*Item")).Item
end

local function summary(s)
  return { exists = s.exists, version = s.version, hav = s.hav, tokens = s.tokens,
    anchor = s.anchor }
end

describe("the state of an item read", function()
  local cfg = settings.table_settings({})
  local VERSIONS = { '{"N":"7"}', '{"N":"007"}', '{"N":"-3"}', '{"N":"0"}', '{"N":"1e3"}',
    '{"N":"1.5"}', '{"N":"abc"}', '{"N":""}', '{"N":7}', '{"S":"3"}', '{"N":"5","S":"x"}',
    '{"N":null,"S":"y"}', '{"N":"5","N":"6"}', '"7"', '{}', '[1]', 'null', '{"N":"' ..
    ("9"):rep(39) .. '"}', '{"N":"12345678901234567890"}' }
  local HISTORIES = { '{"S":"1 7:QUFBQUFBQUFBQUFB 6:QkJCQkJCQkJCQkJC"}',
    '{"S":"2 AAAAAAAAAAAA BBBBBBBBBBBB"}', '{"S":"2 AAAAAAAAAAAA"}', '{"S":"2"}',
    '{"S":"3 AAAAAAAAAAAA"}', '{"S":"garbage"}', '{"S":""}', '{"N":"1"}', '"2 AAAAAAAAAAAA"',
    'null', '{"S":null}', '{"S":"2 AAAAAAAAAAAA","S":"2 BBBBBBBBBBBB"}' }

  it("is the same from a doc as from its tables, for versions and histories of every kind", function()
    local checked, refused = 0, 0
    for vi = 0, #VERSIONS do
      for hi = 0, #HISTORIES do
        local members = { '"pk":{"S":"k"}', '"n":{"N":"1"}' }
        if vi > 0 then members[#members + 1] = '"version":' .. VERSIONS[vi] end
        if hi > 0 then members[#members + 1] = '"_ddb_tokens":' .. HISTORIES[hi] end
        local body = '{"Item":{' .. table.concat(members, ",") .. '}}'
        local item = doc_of(body)
        local tables = assert(core.decode(body)).Item
        local what = body
        if type(item) == "userdata" then
          checked = checked + 1
          local a, aerr = state.of(cfg, item)
          local b, berr = state.of(cfg, tables)
          if a then
            assert.truthy(b, what)
            assert.same(summary(b), summary(a), what)
            assert.equal(item, rawget(a, "doc"))
            assert.same(tables, a.item, what)
          else
            refused = refused + 1
            assert.is_nil(b, what)
            assert.equal(berr.code, aerr.code, what)
            assert.equal(berr.message, aerr.message, what)
          end
        end
      end
    end
    -- most shapes are docs (a null attribute makes tables), some refused
    assert.is_true(checked >= 200, tostring(checked))
    assert.is_true(refused >= 100, tostring(refused))
  end)

  it("reads a version exactly, past a double and an int64", function()
    local s = assert(state.of(cfg, doc_of('{"Item":{"pk":{"S":"k"},"version":' ..
      '{"N":"9223372036854775808"}}}')))
    assert.equal("9223372036854775808", s.version)
    assert.is_nil(s.hav)
    assert.is_nil(s.tokens)
  end)

  it("takes the table's own attribute names", function()
    local other = settings.table_settings({ version_attribute = "rev", token_attribute = "hist" })
    local s = assert(state.of(other, doc_of('{"Item":{"pk":{"S":"k"},"rev":{"N":"4"},' ..
      '"hist":{"S":"2 AAAAAAAAAAAA"},"version":{"N":"x"}}}')))
    assert.equal("4", s.version)
    assert.same({ "AAAAAAAAAAAA" }, s.tokens)
    assert.equal("AAAAAAAAAAAA", s.anchor)
  end)
end)
