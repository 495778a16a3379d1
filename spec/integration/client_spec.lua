-- The client end to end against moto and dynalite, each behind the SigV4-checking proxy:
-- item round trips, decoded server errors, signatures, clock-skew correction, and what error
-- objects, call info and the on_event hook reveal (never a secret, never a body).
local ddb = require "ddb"
local helper = require "helper"

local marshal_item, unmarshal_item = ddb.marshal_item, ddb.unmarshal_item
local av_equal = ddb.core.av_equal

-- Every type DynamoDB stores, in the shapes the Lua side gives them.
local function every_type(pk)
  return {
    pk = pk,
    s = "héllo, wörld ✓",
    n = 42,
    f = -0.25,
    big = ddb.number("12345678901234567890123456789012345678"),
    tiny = ddb.number("1E-130"),
    t = true,
    no = false,
    nul = ddb.null,
    bin = ddb.binary("\0\1\2\255\254"),
    empty_list = ddb.list{},
    list = { 1, "two", { three = 3 }, ddb.list{} },
    empty_map = {},
    map = { nested = { deeper = ddb.list{ ddb.null, false } } },
    ss = ddb.string_set{ "a", "b", "ç" },
    ns = ddb.number_set{ 1, "2.50", ddb.number("99999999999999999999999999999999999999") },
    bs = ddb.binary_set{ "\0", "\255\254" },
  }
end

-- Asserts that two AttributeValue maps hold the same attributes with equal values.
local function assert_same_item(want, got)
  assert.is_table(got)
  for name, av in pairs(want) do
    assert.is_truthy(got[name], "attribute " .. name .. " is missing")
    assert.is_true(av_equal(av, got[name]), "attribute " .. name .. " differs: " ..
      ddb.encode_json(av) .. " vs " .. ddb.encode_json(got[name]))
  end
  for name in pairs(got) do
    assert.is_truthy(want[name], "unexpected attribute " .. name)
  end
end

local REQUEST_ID = "^[%w%-]+$"

for _, server in ipairs(helper.servers()) do
  describe(server.name .. ":", function()
    local client, tname
    -- Requests and rejections the proxy saw before each reset, so that the last test can
    -- check every signature this file produced (deliberately bad ones are left out).
    local seen = { requests = 0, rejections = 0 }

    local function fresh()
      local st = helper.stats(server)
      for _, n in pairs(st.requests) do seen.requests = seen.requests + n end
      seen.rejections = seen.rejections + st.rejections
      helper.reset(server)
    end

    local function key(pk) return marshal_item{ pk = pk } end

    setup(function()
      helper.reset(server)
      client = helper.client(server)
      tname = helper.table_name("client")
      helper.create_table(client, tname)
    end)

    teardown(function()
      client:delete_table{ TableName = tname }
      client:close()
      helper.reset(server)
    end)

    describe("CreateTable", function()
      it("creates a table that becomes ACTIVE with the key schema asked for", function()
        local name = helper.table_name("create")
        local res = assert(client:create_table{
          TableName = name,
          KeySchema = { { AttributeName = "h", KeyType = "HASH" },
            { AttributeName = "r", KeyType = "RANGE" } },
          AttributeDefinitions = { { AttributeName = "h", AttributeType = "S" },
            { AttributeName = "r", AttributeType = "N" } },
          BillingMode = "PAY_PER_REQUEST",
        })
        assert.equal(name, res.TableDescription.TableName)
        local desc = assert(client:wait_for_table(name, 30000))
        assert.equal("ACTIVE", desc.TableStatus)
        local kinds = {}
        for _, k in ipairs(desc.KeySchema) do kinds[k.AttributeName] = k.KeyType end
        assert.same({ h = "HASH", r = "RANGE" }, kinds)
        assert(client:delete_table{ TableName = name })
      end)
    end)

    describe("item round trips", function()
      it("gives back every attribute type unchanged through PutItem and GetItem", function()
        local item = marshal_item(every_type("types#1"))
        assert(client:put_item{ TableName = tname, Item = item })
        local res = assert(client:get_item{ TableName = tname, Key = key("types#1"),
          ConsistentRead = true })
        assert_same_item(item, res.Item)

        local back = unmarshal_item(res.Item)
        assert.equal("héllo, wörld ✓", back.s)
        assert.equal(42, back.n)
        assert.equal(-0.25, back.f)
        assert.equal("12345678901234567890123456789012345678", ddb.core.number_canonical(
          back.big.value))
        assert.is_true(av_equal({ N = "1E-130" }, ddb.marshal(back.tiny)))
        assert.is_true(back.t)
        assert.is_false(back.no)
        assert.equal(ddb.null, back.nul)
        assert.equal("\0\1\2\255\254", back.bin.value)
        assert.equal("L", ddb.type(back.empty_list))
        assert.equal(0, #back.empty_list)
        assert.equal("M", ddb.type(back.empty_map))
        assert.equal("two", back.list[2])
        assert.equal(3, back.list[3].three)
        assert.equal("L", ddb.type(back.list[4]))
        assert.equal(ddb.null, back.map.nested.deeper[1])
        assert.equal("SS", ddb.type(back.ss))
        assert.equal("NS", ddb.type(back.ns))
        assert.equal("BS", ddb.type(back.bs))
        assert_same_item(item, marshal_item(back))
      end)

      it("updates attributes of every type with UpdateItem and returns the new item", function()
        assert(client:put_item{ TableName = tname, Item = marshal_item{ pk = "upd#1", n = 1,
          gone = "x" } })
        local values = marshal_item{
          [":b"] = ddb.binary("\255"), [":l"] = ddb.list{ ddb.null }, [":m"] = { k = "v" },
          [":big"] = ddb.number("-98765432109876543210987654321098765432"),
          [":one"] = 1, [":ss"] = ddb.string_set{ "x" },
        }
        local res = assert(client:update_item{
          TableName = tname, Key = key("upd#1"),
          UpdateExpression = "SET b = :b, l = :l, m = :m, big = :big ADD n :one, ss :ss " ..
            "REMOVE gone",
          ExpressionAttributeValues = values,
          ReturnValues = "ALL_NEW",
        })
        local want = marshal_item{ pk = "upd#1", n = 2, b = ddb.binary("\255"),
          l = ddb.list{ ddb.null }, m = { k = "v" },
          big = ddb.number("-98765432109876543210987654321098765432"),
          ss = ddb.string_set{ "x" } }
        assert_same_item(want, res.Attributes)
        local got = assert(client:get_item{ TableName = tname, Key = key("upd#1"),
          ConsistentRead = true })
        assert_same_item(want, got.Item)
      end)

      it("deletes an item with DeleteItem, returning what it held", function()
        local item = marshal_item(every_type("del#1"))
        assert(client:put_item{ TableName = tname, Item = item })
        local res = assert(client:delete_item{ TableName = tname, Key = key("del#1"),
          ReturnValues = "ALL_OLD" })
        assert_same_item(item, res.Attributes)
        local got = assert(client:get_item{ TableName = tname, Key = key("del#1"),
          ConsistentRead = true })
        assert.is_nil(got.Item)
      end)
    end)

    describe("a failed condition", function()
      local item = marshal_item{ pk = "cond#1", v = 1, note = "first" }

      it("is decoded as ConditionalCheckFailedException, not applied, and never retried",
        function()
          assert(client:put_item{ TableName = tname, Item = item })
          fresh()
          local res, err = client:put_item{ TableName = tname,
            Item = marshal_item{ pk = "cond#1", v = 2 },
            ConditionExpression = "attribute_not_exists(pk)" }
          assert.is_nil(res)
          assert.is_true(ddb.is_error(err))
          assert.equal("ConditionalCheckFailedException", err.code)
          assert.is_string(err.message)
          assert.is_truthy(err.message:lower():find("conditional request failed", 1, true))
          assert.equal(400, err.status)
          assert.equal("no", err.applied)
          assert.is_false(err.retryable)
          assert.equal(1, err.attempts)
          assert.matches(REQUEST_ID, err.request_id)
          assert.equal(1, helper.requests(helper.stats(server), "PutItem"))
          local got = assert(client:get_item{ TableName = tname, Key = key("cond#1"),
            ConsistentRead = true })
          assert_same_item(item, got.Item)
        end)

      it("carries the current item in err.item with ReturnValuesOnConditionCheckFailure",
        function()
          assert(client:put_item{ TableName = tname, Item = item })
          local _, err = client:put_item{ TableName = tname,
            Item = marshal_item{ pk = "cond#1", v = 2 },
            ConditionExpression = "v = :two",
            ExpressionAttributeValues = marshal_item{ [":two"] = 2 },
            ReturnValuesOnConditionCheckFailure = "ALL_OLD" }
          assert.equal("ConditionalCheckFailedException", err.code)
          if not server.returns_item_on_conflict then
            assert.is_nil(err.item)
            pending(server.name .. " lacks ReturnValuesOnConditionCheckFailure: a failed " ..
              "condition carries no Item")
          end
          assert_same_item(item, err.item)
        end)
    end)

    describe("transactions", function()
      it("writes and reads items atomically with TransactWriteItems/TransactGetItems",
        function()
          local res, err = client:transact_write_items{ TransactItems = {
            { Put = { TableName = tname, Item = marshal_item{ pk = "tx#1", n = 1 } } },
            { Put = { TableName = tname, Item = marshal_item{ pk = "tx#2", n = 2 } } },
          } }
          if not server.transactions then
            assert.equal("UnknownOperationException", err.code)
            pending(server.name .. " lacks TransactWriteItems/TransactGetItems " ..
              "(UnknownOperationException)")
          end
          assert(res, tostring(err))
          local got = assert(client:transact_get_items{ TransactItems = {
            { Get = { TableName = tname, Key = key("tx#1") } },
            { Get = { TableName = tname, Key = key("tx#2") } },
          } })
          assert.equal(2, #got.Responses)
          assert.same({ pk = "tx#1", n = 1 }, unmarshal_item(got.Responses[1].Item))
          assert.same({ pk = "tx#2", n = 2 }, unmarshal_item(got.Responses[2].Item))
        end)

      it("decodes TransactionCanceledException with its cancellation reasons, applying nothing",
        function()
          assert(client:put_item{ TableName = tname, Item = marshal_item{ pk = "tx#3", n = 3 } })
          fresh()
          local res, err = client:transact_write_items{ TransactItems = {
            { Put = { TableName = tname, Item = marshal_item{ pk = "tx#4", n = 4 } } },
            { ConditionCheck = { TableName = tname, Key = key("tx#3"),
              ConditionExpression = "attribute_not_exists(pk)",
              ReturnValuesOnConditionCheckFailure = "ALL_OLD" } },
          } }
          assert.is_nil(res)
          if not server.transactions then
            assert.equal("UnknownOperationException", err.code)
            pending(server.name .. " lacks TransactWriteItems (UnknownOperationException)")
          end
          assert.equal("TransactionCanceledException", err.code)
          assert.equal(400, err.status)
          assert.equal("no", err.applied)
          assert.is_false(err.retryable)
          assert.matches(REQUEST_ID, err.request_id)
          local reasons = err.cancellation_reasons
          assert.is_table(reasons)
          assert.equal(2, #reasons)
          assert.equal("None", reasons[1].Code)
          assert.equal("ConditionalCheckFailed", reasons[2].Code)
          assert.same({ pk = "tx#3", n = 3 }, unmarshal_item(reasons[2].Item))
          assert.equal(1, helper.requests(helper.stats(server), "TransactWriteItems"))
          local got = assert(client:get_item{ TableName = tname, Key = key("tx#4"),
            ConsistentRead = true })
          assert.is_nil(got.Item)
        end)
    end)

    describe("errors the server reports", function()
      it("decodes ValidationException and does not retry it", function()
        fresh()
        local res, err = client:put_item{ TableName = tname, Item = marshal_item{ other = "x" } }
        assert.is_nil(res)
        assert.equal("ValidationException", err.code)
        assert.equal(400, err.status)
        assert.is_truthy(err.message:find("pk", 1, true), err.message)
        assert.equal("no", err.applied)
        assert.is_false(err.retryable)
        assert.matches(REQUEST_ID, err.request_id)
        assert.equal(1, helper.requests(helper.stats(server), "PutItem"))
      end)

      it("decodes ResourceNotFoundException for a table that does not exist", function()
        fresh()
        local res, err = client:get_item{ TableName = helper.table_name("missing"),
          Key = key("x") }
        assert.is_nil(res)
        assert.equal("ResourceNotFoundException", err.code)
        assert.equal(400, err.status)
        assert.equal("no", err.applied)
        assert.is_false(err.retryable)
        assert.equal(1, helper.requests(helper.stats(server), "GetItem"))
      end)
    end)

    describe("signatures", function()
      it("sends requests whose signature the proxy verifies (rejections stay 0)", function()
        fresh()
        for i = 1, 5 do
          assert(client:put_item{ TableName = tname, Item = marshal_item{ pk = "sig#" .. i,
            text = ("ünïcode & spaces  and / slashes + pluses %d"):format(i) } })
          assert(client:get_item{ TableName = tname, Key = key("sig#" .. i) })
        end
        local st = helper.stats(server)
        assert.equal(5, helper.forwarded(st, "PutItem"))
        assert.equal(5, helper.forwarded(st, "GetItem"))
        assert.equal(0, st.rejections)
      end)

      it("gets InvalidSignatureException, not retried, when the secret key is wrong", function()
        fresh()
        local bad = helper.client(server, { credentials = {
          access_key_id = helper.access_key(), secret_access_key = "not-the-secret" } })
        local res, err = bad:list_tables{}
        assert.is_nil(res)
        assert.equal("InvalidSignatureException", err.code)
        assert.equal(400, err.status)
        assert.equal("no", err.applied)
        assert.is_false(err.retryable)
        assert.equal(1, err.attempts)
        local st = helper.stats(server)
        assert.equal(1, helper.requests(st, "ListTables"))
        assert.equal(0, helper.forwarded(st, "ListTables"))
        assert.equal(1, st.rejections_by_type.InvalidSignatureException)
        assert.is_nil(tostring(err):find("not-the-secret", 1, true))
        bad:close()
        helper.reset(server)   -- the rejection was the point; keep it out of the tally
      end)

      it("sends the session token and signs it", function()
        fresh()
        local token = "FwoGZXIvYXdzE/session+token=="
        local transport = helper.recording_transport()
        local c = helper.client(server, { transport = transport, credentials = {
          access_key_id = helper.access_key(), secret_access_key = helper.secret_key(),
          session_token = token } })
        assert(c:get_item{ TableName = tname, Key = key("sig#1") })
        local sent = transport.sent[1].headers
        assert.equal(token, sent["x-amz-security-token"])
        local signed = sent.authorization:match("SignedHeaders=([^,]+)")
        assert.is_truthy((";" .. signed .. ";"):find(";x-amz-security-token;", 1, true), signed)
        assert.equal(0, helper.stats(server).rejections)
        c:close()
      end)

      it("sends a verified request when the header list outgrows the handle's own nodes",
        function()
          fresh()
          -- 20 unsigned lines after the signed ones: the transport copies such a list
          -- instead of pointing at the Lua strings; a lost or damaged signed line would
          -- fail the signature check
          local transport = helper.recording_transport(function(lines)
            local out = {}
            for i, line in ipairs(lines) do out[i] = line end
            for i = 1, 20 do out[#out + 1] = ("X-Ddb-Extra-%d: %d"):format(i, i) end
            return out
          end)
          local c = helper.client(server, { transport = transport })
          assert(c:get_item{ TableName = tname, Key = key("sig#1") })
          assert.equal("20", transport.sent[1].headers["x-ddb-extra-20"])
          assert.equal(0, helper.stats(server).rejections)
          c:close()
        end)

      it("has the token covered by the signature: a token changed after signing is refused",
        function()
          fresh()
          local transport = helper.recording_transport(function(lines)
            local out = {}
            for i, line in ipairs(lines) do
              out[i] = line:gsub("^(X%-Amz%-Security%-Token:%s*).*$", "%1changed-token")
            end
            return out
          end)
          local c = helper.client(server, { transport = transport, credentials = {
            access_key_id = helper.access_key(), secret_access_key = helper.secret_key(),
            session_token = "original-token" } })
          local res, err = c:get_item{ TableName = tname, Key = key("sig#1") }
          assert.is_nil(res)
          assert.equal("changed-token", transport.sent[1].headers["x-amz-security-token"])
          assert.equal("InvalidSignatureException", err.code)
          assert.equal(1, helper.stats(server).rejections)
          c:close()
          helper.reset(server)
        end)
    end)

    describe("the libcurl transport's one-call path (handle:call)", function()
      -- Client:call signs, sends and parses through handle:call when the transport is the
      -- library's libcurl one; any other transport takes signer:prepare + request +
      -- core.parse_response. Both must give the same answers.
      local function both(op, req, plain)
        local t = ddb.curl_transport()
        local fast = { t.handle:call(client.signer, server.url, op, ddb.encode_json(req), 3000,
          plain) }
        local body = ddb.encode_json(req)
        local status, headers, rbody = t.handle:request(server.url,
          client.signer:prepare(op, body), body, 3000)
        local res, err = ddb.core.parse_response(status, rbody, headers, plain)
        t:close()
        return fast, { res, err, status, headers }
      end

      it("is the path a default client takes", function()
        assert.is_truthy(client.transport.signed_call)
        assert.is_nil(helper.client(server, { transport = helper.recording_transport() })
          .transport.signed_call)
      end)

      it("gives the result, status and request id the separate steps give", function()
        fresh()
        assert(client:put_item{ TableName = tname, Item = marshal_item{ pk = "fast#1", n = 7 } })
        local fast, slow = both("GetItem", { TableName = tname, Key = key("fast#1") })
        assert.same(slow[1], fast[1])
        assert.is_nil(fast[2])
        assert.equal(200, fast[3])
        assert.matches(REQUEST_ID, fast[4])
        local fast_plain, slow_plain = both("GetItem", { TableName = tname, Key = key("fast#1") },
          "Item")
        assert.same({ pk = "fast#1", n = 7 }, fast_plain[1].Item)
        assert.same(slow_plain[1], fast_plain[1])
        assert.equal(0, helper.stats(server).rejections)
      end)

      it("gives an error answer as the separate steps do, with the answer's headers", function()
        fresh()
        local fast, slow = both("GetItem", { TableName = tname .. "_missing", Key = key("x") })
        assert.is_nil(fast[1])
        assert.equal("ResourceNotFoundException", fast[2].code)
        assert.equal(slow[2].code, fast[2].code)
        assert.equal(slow[2].applied, fast[2].applied)
        assert.equal(400, fast[3])
        assert.is_table(fast[4])
        assert.matches(REQUEST_ID, fast[2].request_id)
        assert.equal(fast[2].request_id, fast[4]["x-amzn-requestid"])
        assert.is_string(fast[4].date)
      end)

      it("gives a transfer that fails as the transport's error, before anything is sent",
        function()
          local t = ddb.curl_transport()
          local res, err = t.handle:call(client.signer, "http://127.0.0.1:1", "GetItem", "{}",
            1000)
          t:close()
          assert.is_nil(res)
          assert.equal("ConnectError", err.code)
          assert.equal("no", err.applied)
        end)

      it("refuses an operation name that is not one before sending", function()
        local t = ddb.curl_transport()
        assert.has_error(function()
          t.handle:call(client.signer, server.url, "Get Item", "{}", 1000)
        end, "operation must be a DynamoDB operation name")
        t:close()
      end)
    end)

    describe("clock skew", function()
      for _, skew in ipairs{ 3600, -3600 } do
        it(("corrects a clock %s the server's by an hour from its Date header, in one extra " ..
          "request"):format(skew > 0 and "behind" or "ahead of"), function()
          fresh()
          helper.control(server, { skew_seconds = skew })
          local c = helper.client(server)
          local res, err, info = c:get_item{ TableName = tname, Key = key("sig#1") }
          local st = helper.stats(server)
          helper.reset(server)
          assert(res, tostring(err))
          assert.equal(2, helper.requests(st, "GetItem"))
          assert.equal(1, st.rejections)
          assert.equal(1, st.rejections_by_type.InvalidSignatureException)
          assert.equal(1, helper.forwarded(st, "GetItem"))
          -- the clock fix is not counted as a failed attempt
          assert.equal(1, info.attempts)
          assert.is_true(math.abs(c.signer:skew() - skew) <= 2, tostring(c.signer:skew()))
          c:close()
        end)
      end
    end)

    describe("what errors, info and events reveal", function()
      it("gives an error whose tostring names the code and request id, never the secret",
        function()
          local _, err = client:put_item{ TableName = tname, Item = marshal_item{ pk = "cond#1" },
            ConditionExpression = "attribute_not_exists(pk)" }
          local text = tostring(err)
          assert.is_truthy(text:find("ConditionalCheckFailedException", 1, true), text)
          assert.is_truthy(text:find(err.request_id, 1, true), text)
          for _, s in ipairs(helper.strings(err)) do
            assert.is_nil(s:find(helper.secret_key(), 1, true))
          end
          assert.is_nil(tostring(client):find(helper.secret_key(), 1, true))
          assert.is_nil(tostring(client.signer):find(helper.secret_key(), 1, true))
        end)

      it("returns info with the attempt count, request id and status", function()
        local res, _, info = client:get_item{ TableName = tname, Key = key("sig#1") }
        assert.is_table(res)
        assert.equal(1, info.attempts)
        assert.equal(200, info.status)
        assert.matches(REQUEST_ID, info.request_id)
        assert.is_number(info.elapsed_ms)
        assert.is_true(info.elapsed_ms >= 0)
      end)

      it("calls on_event with op, status, attempt and latency, never a body or secret",
        function()
          local events = {}
          local c = helper.client(server, { on_event = function(ev) events[#events + 1] = ev end })
          local marker = "body-marker-7f3a"
          assert(c:put_item{ TableName = tname, Item = marshal_item{ pk = "ev#1", secret = marker } })
          local _, err = c:put_item{ TableName = tname, Item = marshal_item{ pk = "ev#1" },
            ConditionExpression = "attribute_not_exists(pk)" }
          assert.equal("ConditionalCheckFailedException", err.code)
          assert.equal(2, #events)
          local allowed = { kind = true, op = true, table = true, status = true, attempt = true,
            latency_ms = true, request_id = true, consumed_capacity = true, code = true }
          for _, ev in ipairs(events) do
            assert.equal("request", ev.kind)
            assert.equal(tname, ev.table)
            assert.equal("PutItem", ev.op)
            assert.equal(1, ev.attempt)
            assert.is_number(ev.latency_ms)
            assert.is_true(ev.latency_ms >= 0)
            for k in pairs(ev) do assert.is_true(allowed[k], "unexpected event field " .. k) end
            for _, s in ipairs(helper.strings(ev)) do
              assert.is_nil(s:find(marker, 1, true))
              assert.is_nil(s:find(helper.secret_key(), 1, true))
            end
          end
          assert.equal(200, events[1].status)
          assert.is_nil(events[1].code)
          assert.equal(400, events[2].status)
          assert.equal("ConditionalCheckFailedException", events[2].code)
          assert.equal(err.request_id, events[2].request_id)
          c:close()
        end)
    end)

    describe("the whole file's traffic", function()
      it("had every request's signature accepted by the proxy", function()
        fresh()
        assert.is_true(seen.requests >= 20, "only " .. seen.requests .. " requests counted")
        assert.equal(0, seen.rejections)
      end)
    end)
  end)
end
