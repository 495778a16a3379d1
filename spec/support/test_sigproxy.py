#!/usr/bin/env python3
"""Self-check of sigproxy.py and servers.py against moto and dynalite.

  .venv/bin/python spec/support/test_sigproxy.py [-v] [unittest args]

Starts its own servers (servers.py) unless DDB_TEST_MOTO_URL etc. are already
set, e.g. under spec/support/with-servers.sh.  Every check runs once per
backend.
"""

import binascii
import calendar
import hashlib
import hmac
import http.client
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid
from email.utils import parsedate_to_datetime
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers  # noqa: E402
import sigproxy  # noqa: E402

ENV_NAMES = ("DDB_TEST_MOTO_URL", "DDB_TEST_DYNALITE_URL", "DDB_TEST_MOTO_DIRECT",
             "DDB_TEST_DYNALITE_DIRECT", "DDB_TEST_ACCESS_KEY", "DDB_TEST_SECRET_KEY",
             "DDB_TEST_REGION")


class Servers:
    """The servers under test: taken from the environment, or started here."""

    def __init__(self):
        self.env = {}
        self.state_dir = None

    def up(self):
        if all(name in os.environ for name in ENV_NAMES):
            self.env = {name: os.environ[name] for name in ENV_NAMES}
            return
        self.state_dir = tempfile.mkdtemp(prefix="sigproxy-selfcheck.")
        # As a separate process, the way the test suite uses it.
        started = subprocess.run([sys.executable, servers.__file__, "start", self.state_dir])
        if started.returncode != 0:
            raise RuntimeError(f"servers.py start failed; logs in {self.state_dir}")
        self.env = read_env_sh(Path(self.state_dir) / "env.sh")

    def down(self):
        if self.state_dir is not None:
            servers.stop(self.state_dir)
            shutil.rmtree(self.state_dir, ignore_errors=True)


def read_env_sh(path):
    env = {}
    for line in Path(path).read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0]
    return env


SERVERS = Servers()


def setUpModule():
    SERVERS.up()


def tearDownModule():
    SERVERS.down()


# --------------------------------------------------------------------------
# A deliberately separate, minimal SigV4 signer (hashlib/hmac only), so the
# tests can sign header sets botocore would not (user-agent, odd spacing) and
# cross-check the proxy rather than botocore against itself.


def hand_signed(url, target_op, body, access_key, secret_key, region, amz_date=None,
                scope_date=None, extra=(), signed=None):
    """Return a list of (name, value) headers with an Authorization header.

    `extra` adds headers; `signed` restricts which header names are signed
    (default: all of them).
    """
    netloc = urllib.parse.urlsplit(url).netloc
    amz_date = amz_date or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    scope_date = scope_date or amz_date[:8]
    headers = [("Host", netloc), ("Content-Type", sigproxy.JSON_CONTENT_TYPE),
               ("X-Amz-Date", amz_date),
               ("X-Amz-Target", f"DynamoDB_20120810.{target_op}")] + list(extra)
    names = sorted({n.lower() for n, _ in headers} if signed is None else signed)
    canonical_headers = "".join(
        f"{name}:{','.join(' '.join(v.split()) for n, v in headers if n.lower() == name)}\n"
        for name in names)
    canonical_request = "\n".join(["POST", "/", "", canonical_headers, ";".join(names),
                                   hashlib.sha256(body).hexdigest()])
    scope = f"{scope_date}/{region}/dynamodb/aws4_request"
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                                hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (scope_date, region, "dynamodb", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    authorization = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                     f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return headers + [("Authorization", authorization)]


def send_raw(url, headers, body, timeout=10):
    """POST with exactly these headers (list of pairs, repeats allowed)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.putrequest("POST", "/", skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.msg, response.read()
    finally:
        conn.close()


def error_type(body):
    return json.loads(body)["__type"].rpartition("#")[2]


def parse_amz(text):
    return calendar.timegm(time.strptime(text, "%Y%m%dT%H%M%SZ"))


# --------------------------------------------------------------------------


class ProxyChecks:
    """Checks run against one backend; subclasses set `backend`."""

    backend = None
    table = None

    @classmethod
    def setUpClass(cls):
        env = SERVERS.env
        cls.proxy = env[f"DDB_TEST_{cls.backend.upper()}_URL"]
        cls.direct = env[f"DDB_TEST_{cls.backend.upper()}_DIRECT"]
        cls.creds = dict(access_key=env["DDB_TEST_ACCESS_KEY"],
                         secret_key=env["DDB_TEST_SECRET_KEY"], region=env["DDB_TEST_REGION"])
        cls.control_json({"reset": True})
        cls.table = f"sigproxy_check_{uuid.uuid4().hex[:8]}"
        client = cls.client()
        client.create_table(
            TableName=cls.table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        # dynalite keeps new tables CREATING for 500 ms.
        client.get_waiter("table_exists").wait(
            TableName=cls.table, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})

    def setUp(self):
        self.control_json({"reset": True})

    # -- helpers ------------------------------------------------------------

    @classmethod
    def client(cls, url=None):
        return boto3.client(
            "dynamodb", endpoint_url=url or cls.proxy, region_name=cls.creds["region"],
            aws_access_key_id=cls.creds["access_key"],
            aws_secret_access_key=cls.creds["secret_key"],
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=5,
                          read_timeout=10))

    @classmethod
    def control_json(cls, command, expect=200):
        status, _, body = servers.send(cls.proxy.rstrip("/") + "/__control", {
            "Content-Type": "application/json"}, json.dumps(command).encode())
        assert status == expect, (status, body)
        return json.loads(body)

    def stats(self):
        parts = urllib.parse.urlsplit(self.proxy)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        try:
            conn.request("GET", "/__stats")
            response = conn.getresponse()
            self.assertEqual(response.status, 200)
            return json.loads(response.read())
        finally:
            conn.close()

    def faults(self, *faults, **extra):
        self.control_json(dict(extra, faults=list(faults)))

    def call(self, op, payload, url=None, **signing):
        return servers.signed_call(url or self.proxy, op, payload, **dict(self.creds, **signing))

    def new_key(self):
        return uuid.uuid4().hex

    def put_payload(self, key):
        return {"TableName": self.table, "Item": {"pk": {"S": key}, "v": {"N": "1"}}}

    def stored(self, key):
        """Whether the backend has the item, asked directly (no proxy)."""
        status, _, body = self.call("GetItem", {"TableName": self.table,
                                                "Key": {"pk": {"S": key}},
                                                "ConsistentRead": True}, url=self.direct)
        self.assertEqual(status, 200, body)
        return "Item" in json.loads(body)

    def assert_rejected(self, result, error, message_pattern=None):
        status, headers, body = result
        self.assertEqual(status, 400, body)
        self.assertEqual(error_type(body), error)
        self.assertEqual(headers["content-type"], sigproxy.JSON_CONTENT_TYPE)
        self.assertRegex(headers["x-amzn-requestid"], r"^[A-Z0-9]{52}$")
        self.assertEqual(int(headers["x-amz-crc32"]), binascii.crc32(body))
        if message_pattern:
            self.assertRegex(json.loads(body)["message"], message_pattern)
        stats = self.stats()
        self.assertEqual(stats["rejections"], 1)
        self.assertEqual(stats["forwarded"], {})
        self.assertEqual(stats["last_rejection"]["type"], error)

    # -- happy path ---------------------------------------------------------

    def test_boto3_put_get_through_proxy(self):
        client = self.client()
        client.put_item(TableName=self.table,
                        Item={"pk": {"S": "hello"}, "text": {"S": "wörld ✓"}})
        item = client.get_item(TableName=self.table, Key={"pk": {"S": "hello"}},
                               ConsistentRead=True)["Item"]
        self.assertEqual(item["text"]["S"], "wörld ✓")
        stats = self.stats()
        self.assertEqual(stats["forwarded"], {"PutItem": 1, "GetItem": 1})
        self.assertEqual(stats["rejections"], 0)

    def test_relays_backend_errors_and_headers(self):
        status, headers, body = self.call("GetItem", {"TableName": "no_such_table",
                                                      "Key": {"pk": {"S": "x"}}})
        self.assertEqual(status, 400)
        self.assertEqual(error_type(body), "ResourceNotFoundException")
        self.assertIn("x-amzn-requestid", headers)
        self.assertEqual(int(headers["x-amz-crc32"]), binascii.crc32(body))
        self.assertEqual(headers.get_all("content-length"), [str(len(body))])

    def test_keep_alive_reuses_one_connection(self):
        parts = urllib.parse.urlsplit(self.proxy)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        sockets = set()
        for _ in range(5):
            headers, body = servers.sign_request(self.proxy, "ListTables", {}, **self.creds)
            conn.request("POST", "/", body=body, headers=headers)
            response = conn.getresponse()
            self.assertEqual(response.status, 200)
            response.read()
            sockets.add(id(conn.sock))
        conn.close()
        self.assertEqual(len(sockets), 1)

    def test_backend_idle_close_is_survived(self):
        # Node closes idle keep-alive connections after 5 s; the proxy must
        # notice and reconnect instead of failing the client's next request.
        parts = urllib.parse.urlsplit(self.proxy)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        for pause in (0, 6):
            time.sleep(pause)
            headers, body = servers.sign_request(self.proxy, "ListTables", {}, **self.creds)
            conn.request("POST", "/", body=body, headers=headers)
            response = conn.getresponse()
            self.assertEqual(response.status, 200, response.read())
            response.read()
        conn.close()
        self.assertEqual(self.stats()["backend_errors"], 0)

    def test_hand_signed_user_agent_and_token_accepted(self):
        # botocore never signs user-agent; the proxy must still accept it.
        body = json.dumps({}).encode()
        headers = hand_signed(self.proxy, "ListTables", body,
                              extra=[("User-Agent", "ddb-c/1.0  test"),
                                     ("X-Amz-Security-Token", "session/token+=")],
                              **self.creds)
        status, _, answer = send_raw(self.proxy, headers, body)
        self.assertEqual(status, 200, answer)

    def test_botocore_session_token_accepted(self):
        status, _, body = self.call("ListTables", {}, token="FwoGZXIvYXdzE//token==")
        self.assertEqual(status, 200, body)

    # -- signature rejections -----------------------------------------------

    def test_tampered_signature_rejected(self):
        headers, body = servers.sign_request(self.proxy, "ListTables", {}, **self.creds)
        auth = headers["Authorization"]
        last = auth[-1]
        headers["Authorization"] = auth[:-1] + ("0" if last != "0" else "1")
        self.assert_rejected(servers.send(self.proxy, headers, body),
                             "InvalidSignatureException",
                             r"(?s)does not match.*Canonical String.*String-to-Sign")

    def test_tampered_body_rejected(self):
        key = self.new_key()
        headers, body = servers.sign_request(self.proxy, "PutItem", self.put_payload(key),
                                             **self.creds)
        tampered = body.replace(b'"1"', b'"2"')
        self.assertEqual(len(tampered), len(body))
        self.assert_rejected(servers.send(self.proxy, headers, tampered),
                             "InvalidSignatureException", "does not match")
        self.assertFalse(self.stored(key))

    def test_wrong_secret_rejected(self):
        self.assert_rejected(self.call("ListTables", {}, secret_key="not-the-secret"),
                             "InvalidSignatureException", "does not match")

    def test_unknown_access_key_rejected(self):
        self.assert_rejected(self.call("ListTables", {}, access_key="AKIDUNKNOWN"),
                             "UnrecognizedClientException", "security token")

    def test_missing_authorization_rejected(self):
        headers, body = servers.sign_request(self.proxy, "ListTables", {}, **self.creds)
        del headers["Authorization"]
        self.assert_rejected(servers.send(self.proxy, headers, body),
                             "InvalidSignatureException", "missing")

    def test_malformed_authorization_rejected(self):
        headers, body = servers.sign_request(self.proxy, "ListTables", {}, **self.creds)
        headers["Authorization"] = headers["Authorization"].replace("SignedHeaders=", "Signed=")
        self.assert_rejected(servers.send(self.proxy, headers, body),
                             "InvalidSignatureException", "exactly Credential")

    def test_unsigned_target_rejected(self):
        body = b"{}"
        headers = hand_signed(self.proxy, "ListTables", body,
                              signed=["content-type", "host", "x-amz-date"], **self.creds)
        self.assert_rejected(send_raw(self.proxy, headers, body),
                             "InvalidSignatureException", "'x-amz-target' must be a")

    def test_unsigned_security_token_rejected(self):
        headers, body = servers.sign_request(self.proxy, "ListTables", {}, **self.creds)
        headers["X-Amz-Security-Token"] = "added-after-signing"
        self.assert_rejected(servers.send(self.proxy, headers, body),
                             "InvalidSignatureException", "x-amz-security-token")

    def test_scope_date_mismatch_rejected(self):
        body = b"{}"
        headers = hand_signed(self.proxy, "ListTables", body, scope_date="20200101",
                              **self.creds)
        self.assert_rejected(send_raw(self.proxy, headers, body),
                             "InvalidSignatureException", "Date in Credential scope")

    def test_wrong_content_sha256_rejected(self):
        headers, body = servers.sign_request(
            self.proxy, "ListTables", {}, extra_headers={"X-Amz-Content-SHA256": "0" * 64},
            **self.creds)
        self.assert_rejected(servers.send(self.proxy, headers, body),
                             "InvalidSignatureException", "X-Amz-Content-SHA256")

    def test_expired_signature_and_skewed_date(self):
        self.control_json({"skew_seconds": 600})
        before = time.time()
        result = self.call("ListTables", {})
        status, headers, body = result
        self.assert_rejected(result, "InvalidSignatureException")
        match = re.fullmatch(r"Signature expired: (\d{8}T\d{6}Z) is now earlier than "
                             r"(\d{8}T\d{6}Z) \((\d{8}T\d{6}Z) - 5 min\.\)",
                             json.loads(body)["message"])
        self.assertIsNotNone(match, body)
        signed, limit, now = (parse_amz(g) for g in match.groups())
        self.assertEqual(now - limit, 300)
        self.assertAlmostEqual(now, before + 600, delta=3)
        self.assertAlmostEqual(signed, before, delta=3)
        date = parsedate_to_datetime(headers["date"]).timestamp()
        self.assertAlmostEqual(date, before + 600, delta=3)

    def test_signature_from_the_future_rejected(self):
        self.control_json({"skew_seconds": -600})
        self.assert_rejected(self.call("ListTables", {}), "InvalidSignatureException",
                             r"^Signature not yet current: .* is still later than .* \+ 5 min\.\)$")

    def test_small_skew_accepted(self):
        self.control_json({"skew_seconds": 290})
        status, headers, body = self.call("ListTables", {})
        self.assertEqual(status, 200, body)
        date = parsedate_to_datetime(headers["date"]).timestamp()
        self.assertAlmostEqual(date, time.time() + 290, delta=3)

    # -- faults -------------------------------------------------------------

    def put(self, key, timeout=10):
        return self.call("PutItem", self.put_payload(key), timeout=timeout)

    def assert_fault_counts(self, kind, forwarded):
        stats = self.stats()
        self.assertEqual(stats["faults_fired"], {kind: 1})
        self.assertEqual(stats["forwarded"].get("PutItem", 0), forwarded)
        self.assertEqual(stats["requests"]["PutItem"], 1)

    def test_fault_refuse(self):
        self.faults({"op": "PutItem", "kind": "refuse", "count": 1})
        key = self.new_key()
        with self.assertRaises(ConnectionResetError):
            self.put(key)
        self.assert_fault_counts("refuse", forwarded=0)
        self.assertFalse(self.stored(key))

    def test_fault_refuse_large_body_resets_mid_send(self):
        # The body is still being sent when the proxy resets the connection.
        self.faults({"op": "PutItem", "kind": "refuse", "count": 1})
        key = self.new_key()
        payload = self.put_payload(key)
        payload["Item"]["blob"] = {"S": "x" * 300_000}
        with self.assertRaises((ConnectionResetError, BrokenPipeError)):
            self.call("PutItem", payload)
        self.assertFalse(self.stored(key))

    def test_fault_reset_before_forward(self):
        self.faults({"op": "PutItem", "kind": "reset_before_forward", "count": 1})
        key = self.new_key()
        with self.assertRaises(ConnectionResetError):
            self.put(key)
        self.assert_fault_counts("reset_before_forward", forwarded=0)
        self.assertFalse(self.stored(key))

    def test_fault_drop_after_forward(self):
        self.faults({"op": "PutItem", "kind": "drop_after_forward", "count": 1})
        key = self.new_key()
        with self.assertRaises(http.client.RemoteDisconnected):
            self.put(key)
        self.assert_fault_counts("drop_after_forward", forwarded=1)
        self.assertTrue(self.stored(key))

    def test_fault_drop_after_forward_boto3(self):
        self.faults({"op": "PutItem", "kind": "drop_after_forward", "count": 1})
        key = self.new_key()
        from botocore.exceptions import ConnectionClosedError
        with self.assertRaises(ConnectionClosedError):
            self.client().put_item(**self.put_payload(key))
        self.assertTrue(self.stored(key))

    def test_fault_status_500_after_forward(self):
        self.faults({"op": "PutItem", "kind": "status_500_after_forward", "count": 1})
        key = self.new_key()
        status, headers, body = self.put(key)
        self.assertEqual(status, 500)
        self.assertEqual(json.loads(body), {
            "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
            "message": "injected"})
        self.assertEqual(int(headers["x-amz-crc32"]), binascii.crc32(body))
        self.assert_fault_counts("status_500_after_forward", forwarded=1)
        self.assertTrue(self.stored(key))

    def test_fault_status_500(self):
        self.faults({"op": "PutItem", "kind": "status_500", "count": 1})
        key = self.new_key()
        status, _, body = self.put(key)
        self.assertEqual((status, error_type(body)), (500, "InternalServerError"))
        self.assert_fault_counts("status_500", forwarded=0)
        self.assertFalse(self.stored(key))

    def test_fault_status_503(self):
        self.faults({"op": "PutItem", "kind": "status_503", "count": 1})
        key = self.new_key()
        status, _, body = self.put(key)
        self.assertEqual((status, error_type(body)), (503, "ServiceUnavailable"))
        self.assert_fault_counts("status_503", forwarded=0)
        self.assertFalse(self.stored(key))

    def test_fault_throttle(self):
        self.faults({"op": "PutItem", "kind": "throttle", "count": 1})
        key = self.new_key()
        with self.assertRaises(ClientError) as caught:
            self.client().put_item(**self.put_payload(key))
        self.assertEqual(caught.exception.response["Error"]["Code"],
                         "ProvisionedThroughputExceededException")
        self.assertEqual(caught.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)
        self.assert_fault_counts("throttle", forwarded=0)
        self.assertFalse(self.stored(key))

    def test_fault_delay_ms(self):
        self.faults({"op": "PutItem", "kind": "delay_ms", "ms": 400, "count": 1})
        key = self.new_key()
        started = time.monotonic()
        status, _, body = self.put(key)
        self.assertEqual(status, 200, body)
        self.assertGreaterEqual(time.monotonic() - started, 0.4)
        self.assert_fault_counts("delay_ms", forwarded=1)
        self.assertTrue(self.stored(key))

    def test_fault_delay_ms_causes_client_timeout(self):
        self.faults({"op": "PutItem", "kind": "delay_ms", "ms": 1500, "count": 1})
        key = self.new_key()
        with self.assertRaises(TimeoutError):
            self.put(key, timeout=0.5)
        time.sleep(1.5)  # the proxy still forwards once the delay is over
        self.assertTrue(self.stored(key))

    def test_delays_are_concurrent(self):
        self.faults({"kind": "delay_ms", "ms": 500})  # every request
        results = []

        def one():
            results.append(self.call("ListTables", {})[0])
        threads = [threading.Thread(target=one) for _ in range(8)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        self.assertEqual(results, [200] * 8)
        self.assertLess(elapsed, 2.0)
        self.assertEqual(self.stats()["faults_fired"], {"delay_ms": 8})

    def test_fault_truncate_after_forward(self):
        self.faults({"op": "PutItem", "kind": "truncate_after_forward", "count": 1})
        key = self.new_key()
        with self.assertRaises(http.client.IncompleteRead):
            self.put(key)
        self.assert_fault_counts("truncate_after_forward", forwarded=1)
        self.assertTrue(self.stored(key))

    def test_fault_not_json_after_forward(self):
        self.faults({"op": "PutItem", "kind": "not_json_after_forward", "count": 1})
        key = self.new_key()
        status, headers, body = self.put(key)
        self.assertEqual((status, body), (200, b"<html>oops</html>"))
        self.assertEqual(int(headers["x-amz-crc32"]), binascii.crc32(body))
        self.assert_fault_counts("not_json_after_forward", forwarded=1)
        self.assertTrue(self.stored(key))

    def test_fault_bad_crc_after_forward(self):
        self.faults({"op": "PutItem", "kind": "bad_crc_after_forward", "count": 1})
        key = self.new_key()
        status, headers, body = self.put(key)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), {})
        self.assertNotEqual(int(headers["x-amz-crc32"]), binascii.crc32(body))
        self.assert_fault_counts("bad_crc_after_forward", forwarded=1)
        self.assertTrue(self.stored(key))

    def test_fault_count_and_operation_matching(self):
        self.faults({"op": "PutItem", "kind": "status_500", "count": 2})
        statuses = [self.put(self.new_key())[0] for _ in range(3)]
        self.assertEqual(statuses, [500, 500, 200])
        self.assertEqual(self.call("ListTables", {})[0], 200)
        stats = self.stats()
        self.assertEqual(stats["faults_fired"], {"status_500": 2})
        self.assertEqual(stats["faults"], [{"op": "PutItem", "kind": "status_500",
                                            "count": 0}])

    def test_fault_probability_is_seeded(self):
        self.faults({"op": "ListTables", "kind": "status_503", "probability": 0.5}, seed=7)
        statuses = [self.call("ListTables", {})[0] for _ in range(20)]
        rng = random.Random(7)
        self.assertEqual(statuses, [503 if rng.random() < 0.5 else 200 for _ in range(20)])
        self.assertIn(503, statuses)
        self.assertIn(200, statuses)

    def test_first_firing_fault_wins_and_delays_add_up(self):
        self.faults({"kind": "delay_ms", "ms": 150, "count": 1},
                    {"kind": "delay_ms", "ms": 150, "count": 1},
                    {"op": "ListTables", "kind": "throttle", "count": 1},
                    {"op": "ListTables", "kind": "status_500", "count": 1})
        started = time.monotonic()
        status, _, body = self.call("ListTables", {})
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        self.assertEqual(error_type(body), "ProvisionedThroughputExceededException")
        self.assertEqual(self.call("ListTables", {})[0], 500)
        self.assertEqual(self.call("ListTables", {})[0], 200)

    def test_rejected_requests_do_not_consume_faults(self):
        self.faults({"kind": "status_500", "count": 1})
        self.assertEqual(self.call("ListTables", {}, secret_key="wrong")[0], 400)
        self.assertEqual(self.call("ListTables", {})[0], 500)

    def test_control_validation_and_reset(self):
        self.faults({"kind": "throttle", "count": 5})
        for bad in ({"faults": [{"kind": "explode"}]},
                    {"faults": [{"kind": "delay_ms"}]},
                    {"faults": [{"kind": "throttle", "probability": 2}]},
                    {"faults": [{"kind": "throttle", "typo": 1}]},
                    {"skew_seconds": "soon"},
                    {"frobnicate": True}):
            self.assertIn("error", self.control_json(bad, expect=400))
        self.assertEqual(self.stats()["faults"], [{"op": "*", "kind": "throttle", "count": 5}])
        self.call("ListTables", {})
        stats = self.control_json({"reset": True})
        self.assertEqual(stats, {"requests": {}, "forwarded": {}, "faults_fired": {},
                                 "rejections": 0, "rejections_by_type": {},
                                 "last_rejection": None, "backend_errors": 0,
                                 "skew_seconds": 0.0, "faults": []})


class MotoProxyTest(ProxyChecks, unittest.TestCase):
    backend = "moto"


class DynaliteProxyTest(ProxyChecks, unittest.TestCase):
    backend = "dynalite"


if __name__ == "__main__":
    unittest.main()
