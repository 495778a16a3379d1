#!/usr/bin/env python3
"""Generated SigV4 vectors for DynamoDB-shaped requests, signed by botocore's SigV4Auth.

spec/unit/sigv4_spec.lua runs this with the project's venv and signs every case again
with the C signer, stage by stage, so the two implementations are checked against each
other on many more requests than the official suite has.

Usage: botocore_vectors.py SEED COUNT   (prints one JSON document on stdout)

Each case has two parts:
  "request"/"expected": a request with random header casing, repeats, extra whitespace
      and unsigned headers, its body and date, and botocore's canonical request, string to
      sign, signature and Authorization. The spec feeds "request.headers" to
      signer:stages() unchanged.
  "prepare": the header set signer:prepare() builds for one operation, signed by
      botocore; the spec compares the Authorization line prepare() produces.
  "generic": a request to another service (sts, iam, sqs, execute-api; GET or POST, a
      path, a query of unreserved characters, form or JSON bodies), signed by botocore;
      the spec signs it with signer:sign_request() and compares the Authorization line.

How the header sets are kept comparable:
  * Only headers both signers treat alike are generated. Both leave out user-agent,
    expect, transfer-encoding, x-amzn-trace-id and the hop-by-hop headers (connection,
    keep-alive, te, trailer, upgrade, proxy-*), so those appear as noise that must not
    be signed. botocore also leaves out baggage/traceparent/tracestate and we do not,
    so those are never generated; nor is Date, which botocore would replace.
  * botocore replaces X-Amz-Date and X-Amz-Security-Token while signing; the headers
    written out are the request's headers after signing (without Authorization), which
    is exactly the list botocore signed.
  * Header values hold printable ASCII with runs of spaces and tabs only: botocore folds
    every character str.split() calls whitespace, the SigV4 rules (and we) fold only
    spaces and tabs, and HTTP allows nothing else in a value anyway.
  * botocore.auth.get_current_datetime is replaced to fix the signing time: in this
    botocore version add_auth() overwrites request.context['timestamp'] with the clock,
    so the timestamp is checked afterwards instead of being set beforehand.
"""

import base64
import datetime
import json
import random
import string
import sys

import botocore
import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

OPERATIONS = [
    "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem",
    "BatchWriteItem", "TransactGetItems", "TransactWriteItems", "DescribeTable",
    "CreateTable", "DeleteTable", "ListTables", "UpdateTimeToLive", "DescribeEndpoints",
    "ExecuteStatement", "UpdateTable", "DescribeLimits", "TagResource",
]
REGIONS = [
    "us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2",
    "ap-northeast-1", "sa-east-1", "us-gov-west-1", "cn-north-1", "local",
]
UNSIGNED = [
    ("User-Agent", lambda r: "aws-sdk-lua/0.1  (%s)" % r.choice(["5.4", "LuaJIT 2.1"])),
    ("Connection", lambda r: r.choice(["keep-alive", "close"])),
    ("Keep-Alive", lambda r: "timeout=5, max=%d" % r.randint(1, 1000)),
    ("Expect", lambda r: "100-continue"),
    ("X-Amzn-Trace-Id", lambda r: "Root=1-%08x-%024x" % (r.getrandbits(32), r.getrandbits(96))),
    ("TE", lambda r: "trailers"),
    ("Upgrade", lambda r: "h2c"),
    ("Proxy-Authorization", lambda r: "Basic " + base64.b64encode(b"user:pass").decode()),
    ("Trailer", lambda r: "x-amz-checksum-crc32"),
]
# Code points for string values: ASCII, Latin-1, other BMP scripts, symbols, astral.
UNICODE_RANGES = [(0x20, 0x7E), (0xA0, 0x17F), (0x370, 0x3FF), (0x400, 0x4FF),
                  (0x590, 0x5FF), (0x4E00, 0x4FFF), (0xAC00, 0xACFF), (0xE000, 0xE0FF),
                  (0xFF00, 0xFFEF), (0x1F300, 0x1F64F), (0x10000, 0x1007F)]
SPECIAL_EPOCHS = [0, 59, 86399, 86400, 951782400, 951868799, 1440938160, 2147483647,
                  2147483648, 4102444799]


def rand_case(r, name):
    """Same header name, different spelling: all lower, all upper, or mixed."""
    pick = r.randrange(4)
    if pick == 0:
        return name
    if pick == 1:
        return name.lower()
    if pick == 2:
        return name.upper()
    return "".join(c.upper() if r.random() < 0.5 else c.lower() for c in name)


def spaced(r, value):
    """Pads a value and widens its inner spaces with runs of spaces and tabs."""
    def run():
        return "".join(r.choice(" \t") for _ in range(r.randint(1, 4)))
    if r.random() < 0.5:
        value = value.replace(" ", run())
    if r.random() < 0.5:
        value = run() + value
    if r.random() < 0.5:
        value = value + run()
    return value


def rand_text(r, n):
    out = []
    for _ in range(n):
        lo, hi = r.choice(UNICODE_RANGES)
        out.append(chr(r.randint(lo, hi)))
    return "".join(out)


def rand_token(r, n, alphabet=string.ascii_letters + string.digits + "/+"):
    return "".join(r.choice(alphabet) for _ in range(n))


def rand_body(r, op, kind):
    if kind == "empty":
        return b""
    if kind == "large":
        # about 1 MB of mixed-script text in one attribute (BatchWriteItem-sized)
        big = "".join(rand_text(r, 64) for _ in range(6000))
        doc = {"RequestItems": {"t": [{"PutRequest": {"Item": {
            "pk": {"S": "big-%d" % r.randint(0, 10 ** 6)}, "blob": {"S": big}}}}]}}
    else:
        item = {"pk": {"S": rand_text(r, r.randint(1, 30))},
                "n": {"N": str(r.randint(-10 ** 12, 10 ** 12))},
                "note": {"S": rand_text(r, r.randint(0, 200))},
                "tags": {"SS": [rand_text(r, 5) for _ in range(r.randint(1, 4))]}}
        doc = {"TableName": "t_" + rand_token(r, 8, string.ascii_lowercase), "Item": item}
        if op in ("UpdateItem", "PutItem", "DeleteItem"):
            doc["ConditionExpression"] = "#v = :v"
            doc["ExpressionAttributeNames"] = {"#v": "version"}
            doc["ExpressionAttributeValues"] = {":v": {"N": str(r.randint(0, 99))}}
    text = json.dumps(doc, ensure_ascii=r.random() < 0.3, separators=(",", ":"))
    return text.encode("utf-8")


class RecordingSigV4Auth(SigV4Auth):
    """botocore's signer, unchanged, remembering each stage it computed."""

    def canonical_request(self, request):
        self.recorded_creq = super().canonical_request(request)
        return self.recorded_creq

    def string_to_sign(self, request, canonical_request):
        self.recorded_sts = super().string_to_sign(request, canonical_request)
        return self.recorded_sts

    def signature(self, string_to_sign, request):
        self.recorded_sig = super().signature(string_to_sign, request)
        return self.recorded_sig


def sign(creds, region, url, headers, body, when, method="POST", service="dynamodb"):
    """Signs with SigV4Auth.add_auth at the fixed time; returns the request and signer."""
    request = AWSRequest(method=method, url=url, data=body)
    for name, value in headers:
        request.headers[name] = value    # appends: repeats are kept, in order
    auth = RecordingSigV4Auth(creds, service, region)
    saved = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: when
    try:
        auth.add_auth(request)
    finally:
        botocore.auth.get_current_datetime = saved
    want = when.strftime("%Y%m%dT%H%M%SZ")
    if request.context["timestamp"] != want:
        raise SystemExit("botocore signed with %r, not the fixed time %r"
                         % (request.context["timestamp"], want))
    return request, auth


GENERIC_SERVICES = ["sts", "iam", "sqs", "execute-api"]
UNRESERVED = string.ascii_letters + string.digits + "-_.~"


def make_generic(r, creds, region, scheme, host, when):
    """A request to another service; the caller's headers leave out what the signer owns
    (Host, X-Amz-Date, X-Amz-Security-Token)."""
    service = r.choice(GENERIC_SERVICES)
    method = r.choice(["GET", "POST"])
    segments = [rand_token(r, r.randint(1, 8), string.ascii_letters + string.digits + "-_")
                for _ in range(r.randint(0, 3))]
    path = "/" + "/".join(segments)
    query = None
    if r.random() < 0.6:
        params = [(rand_token(r, r.randint(1, 6), UNRESERVED),
                   rand_token(r, r.randint(0, 10), UNRESERVED))
                  for _ in range(r.randint(1, 4))]
        query = "&".join("%s=%s" % kv for kv in params)
    headers = []
    if method == "POST" and r.random() < 0.5:
        headers.append((rand_case(r, "Content-Type"),
                        "application/x-www-form-urlencoded; charset=utf-8"))
        body = ("Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam"
                "%3A%3A123456789012%3Arole%2F" + rand_token(r, 8)).encode()
    elif method == "POST":
        headers.append((rand_case(r, "Content-Type"), "application/json"))
        body = json.dumps({"note": rand_text(r, r.randint(0, 40))}).encode("utf-8")
    else:
        body = b""
    if r.random() < 0.4:
        headers.append((rand_case(r, "X-Amz-Meta-Note"), spaced(r, "a  b")))
    for name, value in r.sample(UNSIGNED[:4], r.randint(0, 2)):
        headers.append((rand_case(r, name), value(r)))
    url = "%s://%s%s%s" % (scheme, host, path, "?" + query if query else "")
    request, _ = sign(creds, region, url, [("Host", host)] + headers, body, when,
                      method=method, service=service)
    return {"service": service, "method": method, "path": path, "query": query,
            "headers": [[k, v] for k, v in headers], "body": body.decode("utf-8"),
            "authorization": request.headers["Authorization"]}


def make_case(r, i):
    op = r.choice(OPERATIONS)
    region = r.choice(REGIONS)
    host = r.choice(["dynamodb.%s.amazonaws.com" % region, "localhost:8000",
                     "127.0.0.1:4566", "[::1]:8000", "ddb.internal.example"])
    access_key = r.choice(["AKIA", "ASIA"]) + rand_token(r, 16, string.ascii_uppercase +
                                                         string.digits)
    secret_key = rand_token(r, 40)
    token = None
    if r.random() < 0.4:
        token = base64.b64encode(bytes(r.getrandbits(8) for _ in range(r.randint(60, 700))))
        token = token.decode()
    creds = Credentials(access_key, secret_key, token)
    epoch = SPECIAL_EPOCHS[i] if i < len(SPECIAL_EPOCHS) else r.randint(0, 4102444799)
    when = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).replace(tzinfo=None)
    kind = "large" if i % 40 == 7 else ("empty" if r.random() < 0.12 else "json")
    body = rand_body(r, op, kind)
    scheme = "https" if r.random() < 0.7 else "http"
    url = "%s://%s/" % (scheme, host)

    headers = [
        (rand_case(r, "Host"), host),
        (rand_case(r, "Content-Type"), spaced(r, "application/x-amz-json-1.0")),
        (rand_case(r, "X-Amz-Target"), spaced(r, "DynamoDB_20120810." + op)),
    ]
    if r.random() < 0.5:
        headers.append((rand_case(r, "Content-Length"), str(len(body))))
    if r.random() < 0.3:
        headers.append((rand_case(r, "Accept-Encoding"), spaced(r, "gzip, deflate  br")))
    if r.random() < 0.4:
        # the same name twice, spelled differently: values join with a comma, in order
        headers.append((rand_case(r, "X-Amz-Meta-Note"), spaced(r, "first  value")))
        headers.append((rand_case(r, "X-Amz-Meta-Note"), spaced(r, "second value")))
    if r.random() < 0.3:
        headers.append((rand_case(r, "X-Amz-Client-Context"), spaced(r, "a b  c\t d")))
    if r.random() < 0.3:
        # a stale date or token the signer must replace, not sign
        headers.append((rand_case(r, "X-Amz-Date"), "19991231T235959Z"))
    if token and r.random() < 0.3:
        headers.append(("x-amz-security-token", "stale-token"))
    for name, value in r.sample(UNSIGNED, r.randint(0, 4)):
        headers.append((rand_case(r, name), value(r)))
    r.shuffle(headers)

    request, auth = sign(creds, region, url, headers, body, when)
    sent = [[k, v] for k, v in request.headers.items() if k.lower() != "authorization"]

    user_agent = "lua-ddb-optimistic/0.1.0 (vectors %d)" % i
    prep_headers = [("Host", host), ("Content-Type", "application/x-amz-json-1.0"),
                    ("X-Amz-Target", "DynamoDB_20120810." + op), ("User-Agent", user_agent)]
    prep, _ = sign(creds, region, url, prep_headers, body, when)

    generic = make_generic(r, creds, region, scheme, host, when)

    return {
        "id": i,
        "generic": generic,
        "credentials": {"access_key": access_key, "secret_key": secret_key,
                        "session_token": token},
        "region": region,
        "service": "dynamodb",
        "host": host,
        "epoch": epoch,
        "amz_date": request.context["timestamp"],
        "body_kind": kind,
        "request": {"method": "POST", "path": "/", "headers": sent,
                    "body": body.decode("utf-8")},
        "expected": {
            "canonical_request": auth.recorded_creq,
            "string_to_sign": auth.recorded_sts,
            "signature": auth.recorded_sig,
            "authorization": request.headers["Authorization"],
        },
        "prepare": {"op": op, "user_agent": user_agent,
                    "authorization": prep.headers["Authorization"]},
    }


def main(argv):
    if len(argv) != 3:
        raise SystemExit("usage: botocore_vectors.py SEED COUNT")
    seed, count = int(argv[1]), int(argv[2])
    r = random.Random(seed)
    doc = {"generator": "spec/support/botocore_vectors.py", "botocore": botocore.__version__,
           "seed": seed, "count": count, "cases": [make_case(r, i) for i in range(count)]}
    # ensure_ascii=False: the bodies' UTF-8 reaches the spec byte for byte
    sys.stdout.buffer.write(json.dumps(doc, ensure_ascii=False).encode("utf-8"))
    sys.stdout.buffer.write(b"\n")


if __name__ == "__main__":
    main(sys.argv)
