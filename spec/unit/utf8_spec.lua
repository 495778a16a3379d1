-- ddb.utf8.char, which STS's XML reader decodes character references with: every length of
-- UTF-8 at its boundaries. (JSON's \u escapes are the core's: csrc/jsonread.c, json_spec.)
local u = require "ddb.utf8"

describe("ddb.utf8.char", function()
  it("writes one to four bytes at each length's boundaries", function()
    local cases = {
      [0x00] = "\0", [0x41] = "A", [0x7F] = "\127",
      [0x80] = "\194\128", [0xE9] = "\195\169", [0x7FF] = "\223\191",
      [0x800] = "\224\160\128", [0x20AC] = "\226\130\172", [0xFFFF] = "\239\191\191",
      [0x10000] = "\240\144\128\128", [0x1F600] = "\240\159\152\128",
      [0x10FFFF] = "\244\143\191\191",
    }
    for cp, bytes in pairs(cases) do
      assert.equal(bytes, u.char(cp), ("U+%X"):format(cp))
    end
  end)

  it("agrees with the core's JSON reader on \\u escapes, surrogate pairs included", function()
    local cli = require "ddb.cli"
    assert.equal(u.char(0xE9) .. u.char(0x1F600) .. "A", cli.decode([["\u00e9\ud83d\ude00A"]]))
  end)
end)
