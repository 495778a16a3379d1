-- The HTTP/1.1 reader of the libcurl transport's one-call path (csrc/http1.c): answer heads
-- (status, framing, whether the connection stays open) and chunked bodies, fed as bytes.
local core = require("ddb").core

local head, dechunk = core.http1_head, core.http1_dechunk

local OK = "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n" ..
  "Content-Length: 2\r\nx-amz-crc32: 2745614147\r\n\r\n"

describe("http1_head", function()
  it("reads the status, the head's length and the Content-Length of a complete head", function()
    local h = head(OK .. "{}")
    assert.same({ status = 200, head_len = #OK, content_length = 2, chunked = false,
      close = false, no_body = false }, h)
  end)

  it("asks for more bytes at every point before the blank line", function()
    for i = 0, #OK - 1 do
      assert.is_false(head(OK:sub(1, i)), "prefix of " .. i .. " bytes")
    end
  end)

  it("takes bare LF line ends and a status line without a reason", function()
    local h = head("HTTP/1.1 400\nContent-Length: 10\n\n")
    assert.equal(400, h.status)
    assert.equal(10, h.content_length)
    assert.equal(#"HTTP/1.1 400\nContent-Length: 10\n\n", h.head_len)
  end)

  it("knows when the server ends the connection with the answer", function()
    assert.is_true(head("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").close)
    assert.is_true(head("HTTP/1.1 200 OK\r\nconnection: Keep-Alive, CLOSE\r\n" ..
      "Content-Length: 0\r\n\r\n").close)
    assert.is_true(head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").close)
    assert.is_false(head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
      .close)
    -- a body with neither a length nor chunks runs to the close
    local h = head("HTTP/1.1 200 OK\r\nContent-Type: x\r\n\r\n")
    assert.equal(-1, h.content_length)
    assert.is_true(h.close)
  end)

  it("reads chunked framing, also after another coding's name", function()
    assert.is_true(head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").chunked)
    assert.is_true(head("HTTP/1.1 200 OK\r\ntransfer-encoding: identity , Chunked\r\n\r\n")
      .chunked)
    assert.is_false(head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").close)
  end)

  it("gives 1xx, 204 and 304 no body whatever the headers say", function()
    for _, s in ipairs{ 100, 101, 204, 304 } do
      assert.is_true(head(("HTTP/1.1 %d X\r\nContent-Length: 5\r\n\r\n"):format(s)).no_body)
    end
    assert.is_false(head("HTTP/1.1 205 X\r\nContent-Length: 0\r\n\r\n").no_body)
  end)

  it("refuses what is not a well-formed HTTP/1.x answer head", function()
    local bad = {
      "FOO/1.1 200 OK\r\n\r\n",
      "HTTP/2 200 OK\r\n\r\n",
      "HTTP/1.1 2000 OK\r\n\r\n",
      "HTTP/1.1 20 OK\r\n\r\n",
      "HTTP/1.1 600 OK\r\n\r\n",
      "HTTP/1.1 200OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
      "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    }
    for _, b in ipairs(bad) do
      local h, err = head(b)
      assert.is_nil(h, b)
      assert.equal("malformed", err)
    end
    -- the same length twice is one length
    assert.equal(1, head("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n")
      .content_length)
  end)

  it("refuses a garbage start at once and a head that never ends past 64 KiB", function()
    assert.same({ nil, "malformed" }, { head("<html>") })
    local long = "HTTP/1.1 200 OK\r\n" .. ("X-Pad: " .. ("a"):rep(1000) .. "\r\n"):rep(70)
    -- too large, not malformed: the reader reports AnswerTooLarge for it
    assert.same({ nil, "too large" }, { head(long) })
    assert.is_false(head(long:sub(1, 60000)))
    -- a head that ends just within the limit is read
    local fits = "HTTP/1.1 200 OK\r\n" .. ("X: " .. ("b"):rep(1000) .. "\r\n"):rep(64)
    fits = fits .. "Content-Length: 0\r\n\r\n"
    assert(#fits <= 65536)
    assert.equal(#fits, head(fits).head_len)
  end)
end)

describe("http1_dechunk", function()
  it("decodes chunks, extensions, hex in either case and trailers", function()
    assert.same({ "hello", 15 }, { dechunk("5\r\nhello\r\n0\r\n\r\n") })
    assert.same({ "hello world", 47 },
      { dechunk("5;name=v\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n") })
    local big = ("x"):rep(0xAB)
    assert.equal(big, (dechunk("aB\r\n" .. big .. "\r\n0\r\n\r\n")))
    assert.same({ "", 5 }, { dechunk("0\r\n\r\n") })
    assert.same({ "ok", 8 }, { dechunk("2\nok\n0\n\n") })
  end)

  it("starts where the head ends and stops at the body's end, leaving what follows", function()
    local raw = "HEAD" .. "3\r\nabc\r\n0\r\n\r\n" .. "NEXT"
    assert.same({ "abc", #raw - 4 }, { dechunk(raw, 5) })
  end)

  it("asks for more at every point before the end, and resumes where it stopped", function()
    local body = "4\r\nwxyz\r\n0\r\n\r\n"
    for i = 0, #body - 1 do
      assert.is_false((dechunk(body:sub(1, i))), "prefix of " .. i .. " bytes")
      assert.is_false((dechunk(body:sub(1, i), 1, 1)), "prefix of " .. i .. " bytes, bytewise")
    end
    for step = 1, #body do
      assert.same({ "wxyz", #body }, { dechunk(body, 1, step) }, "pieces of " .. step)
    end
  end)

  it("refuses malformed chunking", function()
    for _, b in ipairs{ "g\r\n", "\r\n", "5\r\nhelloXX0\r\n\r\n", "5 x\r\nhello\r\n0\r\n\r\n",
      "1000000000000000\r\n", ("1"):rep(5000) } do
      local body, err = dechunk(b)
      assert.is_nil(body, b:sub(1, 40))
      assert.equal("malformed", err)
    end
  end)

  it("refuses a chunk that would take the body past the limit, on its size line", function()
    local body = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    assert.same({ "hello world", #body }, { dechunk(body, 1, nil, 11) })
    assert.same({ nil, "too large" }, { dechunk(body, 1, nil, 10) })
    -- decided before the chunk's data arrives: a size line alone is enough
    assert.same({ nil, "too large" }, { dechunk("7fffffff\r\n", 1, nil, 1024) })
    for step = 1, #body do
      assert.same({ nil, "too large" }, { dechunk(body, 1, step, 10) }, "pieces of " .. step)
    end
  end)

  it("refuses trailers past 64 KiB, and lines past 4 KiB whether their end has come or not",
    function()
      local trailer = ("X-T: " .. ("v"):rep(1000) .. "\r\n"):rep(70)
      assert.same({ nil, "too large" }, { dechunk("0\r\n" .. trailer .. "\r\n") })
      assert.same({ nil, "too large" }, { dechunk("0\r\n" .. trailer) })
      local padded = "1" .. (" "):rep(5000) .. "\r\nx\r\n0\r\n\r\n"
      assert.same({ nil, "malformed" }, { dechunk(padded) })
      assert.same({ nil, "malformed" }, { dechunk(padded, 1, 100) })
    end)

  it("gives back any body cut into any chunks (random, 300 cases)", function()
    math.randomseed(20261125)
    for _ = 1, 300 do
      local parts, raw = {}, {}
      for p = 1, math.random(0, 6) do
        local n = math.random(1, 300)
        local s = {}
        for k = 1, n do s[k] = string.char(math.random(0, 255)) end
        parts[p] = table.concat(s)
        -- concatenated, not formatted: Lua 5.1's %s stops at a NUL byte
        raw[#raw + 1] = ("%x\r\n"):format(n) .. parts[p] .. "\r\n"
      end
      raw[#raw + 1] = "0\r\n\r\n"
      local wire = table.concat(raw)
      local body, stop = dechunk(wire)
      assert.equal(table.concat(parts), body)
      assert.equal(#wire, stop)
      -- the same when the bytes arrive in pieces of any size
      local step = math.random(1, 64)
      assert.same({ body, stop }, { dechunk(wire .. "tail", 1, step) }, "pieces of " .. step)
    end
  end)
end)
