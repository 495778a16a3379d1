-- The HTTP/1.1 reader of the transports that read HTTP themselves (csrc/http1.c, answer.c): answer
-- heads (status, framing, whether the connection stays open), chunked bodies, whole answers.
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

-- The answer reader every transport that reads HTTP itself goes through (csrc/answer.c):
-- the libcurl one-call path (wire.c) from C, the cosocket transport through a ddb{exchange}.
describe("an exchange (the cosocket transport's HTTP/1.1)", function()
  local MAX = 4096

  -- Feeds the bytes in pieces of step (all at once by default), then the close when asked:
  -- "more" | "done", status, headers, body, keep | "error", err.
  local function read(bytes, opts)
    opts = opts or {}
    local x = core.exchange_new(opts.max or MAX)
    x:start()
    local step, i, done, err = opts.step or #bytes + 1, 1, false, nil
    while i <= #bytes do
      done, err = x:feed(bytes:sub(i, i + step - 1))
      i = i + step
      if done ~= false then break end
    end
    if done == false and opts.close then done, err = x:closed() end
    if done == nil then return "error", err end
    if not done then return "more" end
    local status, headers, body = x:answer()
    return "done", status, headers, body, x:keep()
  end

  local function crc_answer(body, extra)
    return "HTTP/1.1 200 OK\r\nx-amzn-RequestId: R1\r\nx-amz-crc32: " .. core.crc32(body) ..
      "\r\nContent-Length: " .. #body .. "\r\n" .. (extra or "") .. "\r\n" .. body
  end

  it("gives the status, the headers (lowercase names) and the body of a whole answer, and " ..
    "keeps the connection", function()
    local what, status, headers, body, keep = read(OK .. "{}")
    assert.same({ "done", 200, "2", "{}", true },
      { what, status, headers["content-length"], body, keep })
  end)

  it("gives the same answer whatever pieces the bytes arrive in", function()
    local chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" ..
      "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
    for step = 1, 9 do
      assert.same({ "done", 200, nil, "abcde", true },
        { (function(w, s, _, b, k) return w, s, nil, b, k end)(read(chunked, { step = step })) },
        "pieces of " .. step)
    end
  end)

  it("keeps the last of repeated headers, as the libcurl transport does (no joining)", function()
    local _, _, headers = read("HTTP/1.1 200 OK\r\nX-A: one\r\nx-a: two\r\nContent-Length: 0\r\n\r\n")
    assert.equal("two", headers["x-a"])
    -- so a second x-amz-crc32 is the one checked, never "a, b"
    local x = core.exchange_new(MAX)
    x:start()
    assert.is_true(x:feed(crc_answer("{}", "x-amz-crc32: " .. core.crc32("{}") .. "\r\n")
      :gsub("x%-amz%-crc32: %d+", "x-amz-crc32: 1", 1)))
    local result, err, status, request_id = x:result()
    assert.is_nil(err)
    assert.same({}, result)
    assert.same({ 200, "R1" }, { status, request_id })
  end)

  it("refuses malformed chunk sizes as the libcurl transport does", function()
    for _, size in ipairs({ " 3", "0x3", "3 x", "", "g", "1000000000000000" }) do
      local what, err = read("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" .. size ..
        "\r\nabc\r\n0\r\n\r\n")
      assert.equal("error", what, ("size line %q"):format(size))
      assert.same({ "NetworkError", "maybe", "transient",
        "the answer's chunked body is malformed" },
        { err.code, err.applied, err.retry_class, err.message }, ("size line %q"):format(size))
    end
  end)

  it("refuses a head over 64 KiB, fed in any pieces: AnswerTooLarge, applied maybe", function()
    local huge = "HTTP/1.1 200 OK\r\n" .. ("X-Pad: " .. ("p"):rep(1000) .. "\r\n"):rep(70)
    for _, step in ipairs({ 100, 4096, #huge }) do
      local what, err = read(huge, { step = step })
      assert.equal("error", what)
      assert.same({ "AnswerTooLarge", "maybe", "none" },
        { err.code, err.applied, err.retry_class })
      assert.truthy(err.message:find("head is longer than 64 KiB", 1, true), err.message)
    end
  end)

  it("refuses a body over the limit: by its Content-Length before it arrives, by its chunk " ..
    "sizes, or as it runs to the close", function()
    local cases = {
      { "HTTP/1.1 200 OK\r\nContent-Length: 4097\r\n\r\n", "(Content-Length)" },
      { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1001\r\n", "chunked body" },
      { "HTTP/1.1 200 OK\r\n\r\n" .. ("x"):rep(4097), "running to the close" },
    }
    for _, c in ipairs(cases) do
      local what, err = read(c[1])
      assert.equal("error", what, c[2])
      assert.same({ "AnswerTooLarge", "maybe", "none" },
        { err.code, err.applied, err.retry_class }, c[2])
      assert.truthy(err.message:find(c[2], 1, true), err.message)
      assert.truthy(err.message:find("max_answer_bytes (4096)", 1, true), err.message)
    end
    assert.equal("done", (read("HTTP/1.1 200 OK\r\n\r\n" .. ("x"):rep(4096), { close = true })))
  end)

  it("tells a close before the answer from the end of a body that runs to the close", function()
    local what, status, _, body, keep = read("HTTP/1.1 200 OK\r\n\r\nabc", { close = true })
    assert.same({ "done", 200, "abc", false }, { what, status, body, keep })
    local _, err = read("", { close = true })
    assert.same({ "NetworkError", "maybe", "the connection closed without an answer" },
      { err.code, err.applied, err.message })
    _, err = read(OK .. "{", { close = true })
    assert.same({ "NetworkError", "the connection closed before the answer was complete" },
      { err.code, err.message })
  end)

  it("does not keep a connection that closes, or that sent bytes past the answer", function()
    assert.is_false(select(5, read(OK:gsub("\r\n\r\n$", "\r\nConnection: close\r\n\r\n") .. "{}")))
    assert.is_false(select(5, read(OK .. "{}HTTP/1.1 200 OK\r\n")))
    assert.is_true(select(5, read("HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n\r\n")))
    assert.is_false(select(5, read("HTTP/1.0 204 No Content\r\n\r\n")))
  end)

  it("skips interim 1xx answers and reads no body after 204 or 304", function()
    local what, status, _, body = read("HTTP/1.1 100 Continue\r\n\r\n" .. OK .. "{}")
    assert.same({ "done", 200, "{}" }, { what, status, body })
    what, status, _, body = read("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")
    assert.same({ "done", 304, "" }, { what, status, body })
  end)

  it("calls something that is not HTTP a NetworkError, applied maybe", function()
    local what, err = read("SSH-2.0-OpenSSH_9.2\r\n\r\n")
    assert.equal("error", what)
    assert.same({ "NetworkError", "maybe", "transient",
      "the answer is not a well-formed HTTP/1.1 answer" },
      { err.code, err.applied, err.retry_class, err.message })
  end)

  it("parses a DynamoDB answer as the libcurl handle's call() does, request id included",
    function()
      local x = core.exchange_new(MAX)
      x:start()
      assert.is_true(x:feed(crc_answer('{"Item":{"pk":{"S":"a"}}}')))
      local result, err, status, request_id = x:result("Item")
      assert.is_nil(err)
      assert.same({ { pk = "a" }, 200, "R1" }, { result.Item, status, request_id })
      -- the fallback header for the request id, and an error answer with its headers
      x:start()
      local body = '{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",' ..
        '"message":"no table"}'
      assert.is_true(x:feed((crc_answer(body):gsub("x%-amzn%-RequestId", "x-amz-request-id")
        :gsub("200 OK", "400 Bad Request"))))
      local res, e, st, headers, resent = x:result()
      assert.is_nil(res)
      assert.same({ "ResourceNotFoundException", "R1", "no", 400, "R1", false },
        { e.code, e.request_id, e.applied, st, headers["x-amz-request-id"], resent })
    end)

  it("reads the CRC and the request id in any case and order, x-amzn-requestid before the " ..
    "fallback wherever it comes", function()
    local x = core.exchange_new(MAX)
    for _, order in ipairs({ "new first", "old first" }) do
      local ids = order == "new first" and "X-AMZN-REQUESTID: N1\r\nx-amz-request-id: O1\r\n"
        or "X-Amz-Request-Id: O1\r\nx-amzn-requestid: N1\r\n"
      x:start()
      assert.is_true(x:feed("HTTP/1.1 200 OK\r\n" .. ids .. "X-Amz-CRC32: " ..
        core.crc32("{}") .. "\r\nContent-Length: 2\r\n\r\n{}"))
      local result, err, status, request_id = x:result()
      assert.is_nil(err, order)
      assert.same({ {}, 200, "N1" }, { result, status, request_id }, order)
      -- a wrong CRC under a name in capitals is still checked
      x:start()
      assert.is_true(x:feed("HTTP/1.1 200 OK\r\n" .. ids ..
        "X-AMZ-CRC32: 1\r\nContent-Length: 2\r\n\r\n{}"))
      local res, e = x:result()
      assert.is_nil(res, order)
      assert.equal("CRC32Mismatch", e.code, order)
    end
  end)

  it("builds the whole signed request in one string", function()
    local signer = core.signer_new{ region = "us-east-1", host = "localhost:8000",
      access_key = "AKID", secret_key = "secret" }
    local x = core.exchange_new(MAX)
    local req = x:request(signer, "GetItem", '{"TableName":"T"}')
    local lines = signer:prepare("GetItem", '{"TableName":"T"}')
    assert.equal("POST / HTTP/1.1\r\n", req:sub(1, 17))
    for _, l in ipairs(lines) do
      if not l:find("^Authorization") and not l:find("^X%-Amz%-Date") then
        assert.truthy(req:find("\r\n" .. l .. "\r\n", 1, true), l)
      end
    end
    assert.truthy(req:find("\r\nAuthorization: AWS4%-HMAC%-SHA256 "))
    assert.equal('Content-Length: 17\r\n\r\n{"TableName":"T"}', req:sub(-39))
    assert.has_error(function() x:request(signer, "Get Item", "{}") end)
  end)

  it("refuses to be fed before it is started or after its answer is complete", function()
    local x = core.exchange_new(MAX)
    assert.has_error(function() x:feed("HTTP/1.1") end)
    x:start()
    assert.is_true(x:feed(OK .. "{}"))
    assert.has_error(function() x:feed("more") end)
  end)
end)
