-- Numbers under a host locale whose decimal point is a comma (de_DE): a game server or an
-- nginx module that calls setlocale(LC_NUMERIC) must not change what is sent to DynamoDB or
-- read from it. snprintf's %g and strtod follow LC_NUMERIC; before this spec, 1.25 was
-- stored as "0.1" and "1.5" read back as 1. The locale is compiled here (localedef, from
-- Debian's locales package) into a directory of its own, used through LOCPATH.
local shell = require "support.shell"
local sh, q = shell.sh, shell.q

local CHECKS = [[
assert(os.setlocale("de_DE.UTF-8", "numeric"), "the locale did not load")
assert(os.setlocale(nil, "numeric") == "de_DE.UTF-8", "LC_NUMERIC did not change")
local ddb = require "ddb"
local core = ddb.core
local function same(a, b, what) assert(a == b, what .. ": " .. tostring(a)) end
same(core.encode(ddb.list{ 1.5, 0.1, -2.5e-7, 1e300 }), "[1.5,0.1,-2.5e-07,1e+300]", "encode")
same(core.encode(core.marshal_item{ n = 1.25 }), '{"n":{"N":"1.25"}}', "marshal")
same(core.number_canonical(2.5), "2.5", "number_canonical")
same(core.decode("[1.5]")[1] * 2, 3, "decode")
same(core.unmarshal{ N = "1.5" } * 2, 3, "unmarshal")
local res = core.parse_response(200, '{"Item":{"n":{"N":"0.25"},"l":{"L":[{"N":"-7.5"}]}}}',
  {}, "Item")
same(res.Item.n * 4, 1, "an answer's item")
same(res.Item.l[1] * 2, -15, "an answer's nested number")
same(require("ddb.cli").decode('{"n":2.5}').n * 2, 5, "the CLI's reader")
same(core.decode('{"c":1.0}').c, 1, "a whole number written with a point")
io.write("ok")
]]

describe("a host locale with a decimal comma", function()
  local dir
  setup(function()
    dir = shell.tmpdir("ddb-locale")
    local ok, out = sh("localedef -i de_DE -f UTF-8 " .. q(dir .. "/de_DE.UTF-8"))
    assert(ok or sh("test -d " .. q(dir .. "/de_DE.UTF-8")), "localedef failed (is Debian's " ..
      "locales package installed? spec/support/apt-packages.txt): " .. out)
  end)
  teardown(function()
    if dir then sh("rm -rf " .. q(dir)) end
  end)

  it("changes no number written, read, marshalled or unmarshalled", function()
    local lua = assert(os.getenv("DDB_TEST_LUA"), "DDB_TEST_LUA is not set (run through make)")
    local ok, out = sh("LOCPATH=" .. q(dir) .. " " .. lua .. " -e " .. q(CHECKS))
    assert(ok, out)
    assert.equal("ok", out)
  end)
end)
