#!/usr/bin/env python3
"""SigV4-checking, fault-injecting HTTP/1.1 reverse proxy for a local DynamoDB.

Neither moto nor dynalite verifies request signatures, so this proxy sits in
front of one of them and verifies every request with botocore (independently
of the C signer under test) before forwarding it.  It can also misbehave on
purpose (connection resets, dropped answers, 5xx, throttling, delays, corrupt
answers) so the client's error handling can be tested.

Runtime control, on the same port and unsigned:
  POST /__control  JSON, e.g. {"faults": [{"op": "PutItem",
                   "kind": "drop_after_forward", "count": 1}],
                   "seed": 1, "skew_seconds": 0}  or  {"reset": true}
  GET  /__stats    JSON counters
See FAULT_KINDS and ProxyState.configure for the exact semantics.

Usage: sigproxy.py --listen-port P --backend http://127.0.0.1:Q
                   [--cred AKID:SECRET[:TOKEN] ...] [--verbose]
"""

import argparse
import base64
import binascii
import calendar
import datetime
import email.utils
import hashlib
import hmac
import http.client
import http.server
import json
import os
import random
import re
import select
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

DEFAULT_ACCESS_KEY = "AKIDDDBTEST"
DEFAULT_SECRET_KEY = "ddb-test-secret-key/with+slashes"
CREDS_ENV_VAR = "SIGPROXY_CREDS"

JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
SIGV4_ALGORITHM = "AWS4-HMAC-SHA256"
SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
MAX_CLOCK_SKEW_SECONDS = 300
SERVICE = "dynamodb"
# DynamoDB refuses requests that leave any of these out of the signature.
REQUIRED_SIGNED_HEADERS = ("content-type", "host", "x-amz-date", "x-amz-target")

CORAL = "com.amazon.coral.service#"
DYNAMODB = "com.amazonaws.dynamodb.v20120810#"

# Headers that describe one hop, not the request; never forwarded or relayed.
# content-length is recomputed, expect is answered by this proxy itself.
HOP_BY_HOP_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
    "content-length", "expect",
})

BACKEND_TIMEOUT_SECONDS = 60

# Fault kinds.  REFUSE is decided as soon as the request headers are parsed
# (before the body is read); every other kind only after the signature is
# valid, so rejected requests never consume a fault.
REFUSE = "refuse"
RESET_BEFORE_FORWARD = "reset_before_forward"
DROP_AFTER_FORWARD = "drop_after_forward"
STATUS_500_AFTER_FORWARD = "status_500_after_forward"
STATUS_500 = "status_500"
STATUS_503 = "status_503"
THROTTLE = "throttle"
DELAY_MS = "delay_ms"
TRUNCATE_AFTER_FORWARD = "truncate_after_forward"
NOT_JSON_AFTER_FORWARD = "not_json_after_forward"
BAD_CRC_AFTER_FORWARD = "bad_crc_after_forward"

FAULT_KINDS = (
    REFUSE, RESET_BEFORE_FORWARD, DROP_AFTER_FORWARD, STATUS_500_AFTER_FORWARD,
    STATUS_500, STATUS_503, THROTTLE, DELAY_MS, TRUNCATE_AFTER_FORWARD,
    NOT_JSON_AFTER_FORWARD, BAD_CRC_AFTER_FORWARD,
)
FORWARDING_KINDS = frozenset({
    DROP_AFTER_FORWARD, STATUS_500_AFTER_FORWARD, TRUNCATE_AFTER_FORWARD,
    NOT_JSON_AFTER_FORWARD, BAD_CRC_AFTER_FORWARD,
})

# Canned answers for the kinds that answer instead of forwarding.
CANNED_ERRORS = {
    STATUS_500: (500, DYNAMODB + "InternalServerError", "injected"),
    STATUS_503: (503, DYNAMODB + "ServiceUnavailable", "injected"),
    THROTTLE: (400, DYNAMODB + "ProvisionedThroughputExceededException",
               "The level of configured provisioned throughput for the table "
               "was exceeded. Consider increasing your provisioning level "
               "with the UpdateTable API. (injected)"),
}
INJECTED_500 = CANNED_ERRORS[STATUS_500]
NOT_JSON_BODY = b"<html>oops</html>"

SIGNATURE_MISMATCH_MESSAGE = (
    "The request signature we calculated does not match the signature you "
    "provided. Check your AWS Secret Access Key and signing method. Consult "
    "the service documentation for details.")


# --------------------------------------------------------------------------
# Signature verification


class Rejection(Exception):
    """A request that DynamoDB would refuse before looking at its content."""

    def __init__(self, error_type, message):
        super().__init__(message)
        self.error_type = error_type  # short name, e.g. InvalidSignatureException
        self.message = message


def invalid_signature(message):
    return Rejection("InvalidSignatureException", message)


@dataclass(frozen=True)
class AuthorizationHeader:
    access_key: str
    scope_date: str
    region: str
    service: str
    signed_headers: tuple
    signature: str


def parse_authorization(value):
    """Split an `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...` header."""
    if not value:
        raise invalid_signature("Request is missing the Authorization header.")
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != SIGV4_ALGORITHM:
        raise invalid_signature(
            f"Unsupported AWS 'algorithm': '{algorithm}' (only {SIGV4_ALGORITHM}).")
    fields = {}
    for part in rest.split(","):
        key, equals, val = part.strip().partition("=")
        if not equals or key in fields:
            raise invalid_signature(f"Malformed Authorization header: '{value}'.")
        fields[key] = val
    if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
        raise invalid_signature(
            "Authorization header must have exactly Credential, SignedHeaders "
            f"and Signature: '{value}'.")
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or not all(scope):
        raise invalid_signature(
            "Credential must have exactly 5 slash-delimited elements, e.g. "
            f"keyid/date/region/service/term, got '{fields['Credential']}'.")
    access_key, scope_date, region, service, terminator = scope
    if terminator != "aws4_request":
        raise invalid_signature(
            "Credential should be scoped with a valid terminator: "
            f"'aws4_request', not '{terminator}'.")
    signed = fields["SignedHeaders"].split(";")
    if not all(signed) or signed != sorted(set(h.lower() for h in signed)):
        raise invalid_signature(
            "SignedHeaders must be lowercase, sorted, non-empty and unique: "
            f"'{fields['SignedHeaders']}'.")
    if not re.fullmatch(r"[0-9a-f]{64}", fields["Signature"]):
        raise invalid_signature(
            f"Signature must be 64 lowercase hex digits: '{fields['Signature']}'.")
    return AuthorizationHeader(access_key, scope_date, region, service,
                               tuple(signed), fields["Signature"])


def parse_amz_date(value):
    """X-Amz-Date (ISO 8601 basic, UTC) -> seconds since the epoch."""
    if not value or not re.fullmatch(r"\d{8}T\d{6}Z", value):
        raise invalid_signature(
            f"X-Amz-Date must be in ISO-8601 basic format YYYYMMDDTHHMMSSZ, got '{value}'.")
    try:
        parsed = datetime.datetime.strptime(value, SIGV4_TIMESTAMP)
    except ValueError:
        raise invalid_signature(f"X-Amz-Date is not a valid date: '{value}'.") from None
    return calendar.timegm(parsed.timetuple())


def format_amz_date(epoch_seconds):
    return time.strftime(SIGV4_TIMESTAMP, time.gmtime(int(epoch_seconds)))


def check_clock(amz_date, request_time, now):
    """Refuse timestamps more than 5 minutes away from `now`, in AWS's words."""
    now_text = format_amz_date(now)
    if request_time < now - MAX_CLOCK_SKEW_SECONDS:
        raise invalid_signature(
            f"Signature expired: {amz_date} is now earlier than "
            f"{format_amz_date(now - MAX_CLOCK_SKEW_SECONDS)} ({now_text} - 5 min.)")
    if request_time > now + MAX_CLOCK_SKEW_SECONDS:
        raise invalid_signature(
            f"Signature not yet current: {amz_date} is still later than "
            f"{format_amz_date(now + MAX_CLOCK_SKEW_SECONDS)} ({now_text} + 5 min.)")


def check_signed_header_set(signed_headers, headers):
    """The signature must cover DynamoDB's mandatory headers and only present ones."""
    required = list(REQUIRED_SIGNED_HEADERS)
    if "x-amz-security-token" in headers:
        required.append("x-amz-security-token")
    for name in required:
        if name not in signed_headers:
            raise invalid_signature(
                f"'{name}' must be a 'SignedHeader' in the AWS Authorization.")
    for name in signed_headers:
        if name not in headers:
            raise invalid_signature(
                f"SignedHeaders names '{name}', which is not in the request.")


def check_content_sha256(headers, body):
    """botocore trusts a signed X-Amz-Content-SHA256 header instead of hashing
    the body, so make sure that header really is the body's hash."""
    claimed = headers.get("x-amz-content-sha256")
    if claimed is not None and claimed != hashlib.sha256(body).hexdigest():
        raise invalid_signature(
            f"X-Amz-Content-SHA256 '{claimed}' is not the SHA256 of the body.")


class _ExactHeadersSigV4Auth(SigV4Auth):
    """SigV4Auth that canonicalises exactly the headers on the request.

    botocore's signer silently leaves some headers (user-agent, expect, ...)
    out of what it signs; a verifier must instead use the client's list.
    """

    def headers_to_sign(self, request):
        header_map = HTTPHeaders()
        for name, value in request.headers.items():
            header_map[name.lower()] = value
        return header_map


def expected_signature(auth, secret_key, token, method, path, headers, body, amz_date):
    """Recompute the signature with botocore: (signature, canonical request, string to sign)."""
    request = AWSRequest(method=method, url=f"http://{headers.get('host', '')}{path}",
                         data=body)
    for name, value in headers.items():  # keeps repeated headers, in order
        if name.lower() in auth.signed_headers:
            request.headers[name] = value
    request.context["timestamp"] = amz_date
    signer = _ExactHeadersSigV4Auth(
        Credentials(auth.access_key, secret_key, token), auth.service, auth.region)
    canonical_request = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical_request)
    return signer.signature(string_to_sign, request), canonical_request, string_to_sign


class SignatureVerifier:
    """Checks requests the way DynamoDB does, for a fixed set of credentials."""

    def __init__(self, credentials):
        # access key -> (secret key, session token that must be sent or None)
        self._credentials = dict(credentials)

    def verify(self, method, path, headers, body, now):
        """Raise Rejection unless the request is correctly signed at time `now`."""
        auth = parse_authorization(headers.get("authorization"))
        amz_date = headers.get("x-amz-date")
        request_time = parse_amz_date(amz_date)
        check_clock(amz_date, request_time, now)
        if auth.scope_date != amz_date[:8]:
            raise invalid_signature(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 "
                f"version of date from HTTP: '{auth.scope_date}' != "
                f"'{amz_date[:8]}', from '{amz_date}'.")
        if auth.service != SERVICE:
            raise invalid_signature(
                f"Credential should be scoped to correct service: '{SERVICE}'.")
        secret_key, required_token = self._lookup(auth.access_key)
        token = headers.get("x-amz-security-token")
        if required_token is not None and token != required_token:
            raise Rejection("UnrecognizedClientException",
                            "The security token included in the request is invalid.")
        check_signed_header_set(auth.signed_headers, headers)
        check_content_sha256(headers, body)
        signature, canonical, string_to_sign = expected_signature(
            auth, secret_key, token, method, path, headers, body, amz_date)
        if not hmac.compare_digest(signature, auth.signature):
            raise invalid_signature(
                f"{SIGNATURE_MISMATCH_MESSAGE}\n\nThe Canonical String for this "
                f"request should have been\n'{canonical}'\n\nThe String-to-Sign "
                f"should have been\n'{string_to_sign}'\n")

    def _lookup(self, access_key):
        try:
            return self._credentials[access_key]
        except KeyError:
            raise Rejection("UnrecognizedClientException",
                            "The security token included in the request is invalid.") from None


# --------------------------------------------------------------------------
# Faults and counters


# DynamoDB's documented expression limits (developer guide, "Expression parameters"): any
# expression string at most 4 KB, any placeholder at most 255 bytes, all substitution
# values and names together at most 2 MB. Neither moto nor dynalite enforces them.
EXPRESSION_FIELDS = ("ConditionExpression", "UpdateExpression", "KeyConditionExpression",
                     "FilterExpression", "ProjectionExpression")
MAX_EXPRESSION_BYTES = 4096
MAX_PLACEHOLDER_BYTES = 255
MAX_SUBSTITUTION_BYTES = 2 * 1024 * 1024


def _expression_problems(doc):
    if not isinstance(doc, dict):
        return None
    for field in EXPRESSION_FIELDS:
        value = doc.get(field)
        if isinstance(value, str) and len(value.encode("utf-8")) > MAX_EXPRESSION_BYTES:
            return (f"Invalid {field}: Expression size has exceeded the maximum allowed "
                    f"size; expression size: {len(value.encode('utf-8'))}")
    total = 0
    for field in ("ExpressionAttributeNames", "ExpressionAttributeValues"):
        mapping = doc.get(field)
        if isinstance(mapping, dict):
            for placeholder, value in mapping.items():
                if len(placeholder.encode("utf-8")) > MAX_PLACEHOLDER_BYTES:
                    return f"{field} contains a placeholder longer than 255 bytes"
                total += len(placeholder.encode("utf-8")) + len(json.dumps(value))
    if total > MAX_SUBSTITUTION_BYTES:
        return "ExpressionAttributeNames and ExpressionAttributeValues exceed 2 MB"
    for item in doc.get("TransactItems") or []:
        if isinstance(item, dict):
            for action in item.values():
                problem = _expression_problems(action)
                if problem:
                    return problem
    return None


def expression_limit_error(body):
    """The ValidationException message DynamoDB would answer body with, or None."""
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return None
    return _expression_problems(doc)


class ControlError(ValueError):
    """An invalid /__control request."""


@dataclass
class Fault:
    kind: str
    op: str = "*"
    count: int | None = None  # remaining firings; None = unlimited
    probability: float | None = None  # chance per matching request; None = always
    ms: float = 0  # delay_ms only

    FIELDS = ("kind", "op", "count", "probability", "ms")

    @classmethod
    def from_json(cls, spec):
        if not isinstance(spec, dict):
            raise ControlError(f"a fault must be an object, got {spec!r}")
        unknown = set(spec) - set(cls.FIELDS)
        if unknown:
            raise ControlError(f"unknown fault field(s) {sorted(unknown)}")
        kind = spec.get("kind")
        if kind not in FAULT_KINDS:
            raise ControlError(f"fault kind must be one of {list(FAULT_KINDS)}, got {kind!r}")
        op = spec.get("op", "*")
        if not isinstance(op, str) or not op:
            raise ControlError(f"op must be an operation name or '*', got {op!r}")
        count = spec.get("count")
        if count is not None and (type(count) is not int or count < 0):
            raise ControlError(f"count must be a non-negative integer, got {count!r}")
        probability = spec.get("probability")
        if probability is not None and (not _is_number(probability) or not 0 <= probability <= 1):
            raise ControlError(f"probability must be between 0 and 1, got {probability!r}")
        if (kind == DELAY_MS) != ("ms" in spec):
            raise ControlError("'ms' is required for delay_ms and only allowed there")
        ms = spec.get("ms", 0)
        if not _is_number(ms) or ms < 0:
            raise ControlError(f"ms must be a non-negative number, got {ms!r}")
        return cls(kind=kind, op=op, count=count, probability=probability, ms=ms)

    def to_json(self):
        spec = {"kind": self.kind, "op": self.op}
        if self.count is not None:
            spec["count"] = self.count
        if self.probability is not None:
            spec["probability"] = self.probability
        if self.kind == DELAY_MS:
            spec["ms"] = self.ms
        return spec

    def matches(self, op):
        return self.op in ("*", op)

    def fire(self, rng):
        """Decide whether this fault acts on the current request; consumes a count."""
        if self.count is not None and self.count <= 0:
            return False
        if self.probability is not None and rng.random() >= self.probability:
            return False
        if self.count is not None:
            self.count -= 1
        return True


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class Counters:
    requests: dict = field(default_factory=dict)       # op -> count
    forwarded: dict = field(default_factory=dict)      # op -> count
    faults_fired: dict = field(default_factory=dict)   # kind -> count
    rejections: int = 0
    rejections_by_type: dict = field(default_factory=dict)
    last_rejection: dict | None = None
    backend_errors: int = 0


def _bump(counts, key):
    counts[key] = counts.get(key, 0) + 1


class ProxyState:
    """Fault list, clock skew and counters; shared by all handler threads."""

    CONTROL_FIELDS = ("reset", "faults", "seed", "skew_seconds")

    def __init__(self, skew_seconds=0.0):
        self._lock = threading.Lock()
        self._faults = []
        self._rng = random.Random(0)
        self._initial_skew = skew_seconds  # --skew-seconds; "reset" returns to it
        self._skew = skew_seconds
        self._counters = Counters()

    def now(self):
        """The proxy's idea of the current time: the real clock plus the skew."""
        with self._lock:
            return time.time() + self._skew

    def configure(self, command):
        """Apply a /__control body.  Everything is validated before anything
        changes.  Order: reset (empty fault list, zero counters, the
        startup skew, seed 0), then seed, skew_seconds, and faults (replaces
        the list)."""
        if not isinstance(command, dict):
            raise ControlError("control body must be a JSON object")
        unknown = set(command) - set(self.CONTROL_FIELDS)
        if unknown:
            raise ControlError(f"unknown control field(s) {sorted(unknown)}")
        faults = None
        if "faults" in command:
            if not isinstance(command["faults"], list):
                raise ControlError("faults must be a list")
            faults = [Fault.from_json(spec) for spec in command["faults"]]
        seed = command.get("seed")
        if seed is not None and type(seed) is not int:
            raise ControlError(f"seed must be an integer, got {seed!r}")
        skew = command.get("skew_seconds")
        if skew is not None and not _is_number(skew):
            raise ControlError(f"skew_seconds must be a number, got {skew!r}")
        with self._lock:
            if command.get("reset"):
                self._faults, self._skew = [], self._initial_skew
                self._rng.seed(0)
                self._counters = Counters()
            if seed is not None:
                self._rng.seed(seed)
            if skew is not None:
                self._skew = float(skew)
            if faults is not None:
                self._faults = faults

    def take_refusal(self, op):
        """True if a `refuse` fault fires for this request."""
        with self._lock:
            return self._fire_first(op, lambda f: f.kind == REFUSE) is not None

    def take_delay_ms(self, op):
        """Total delay of every delay_ms fault that fires (they add up)."""
        with self._lock:
            total = 0
            for fault in self._faults:
                if fault.kind == DELAY_MS and fault.matches(op) and fault.fire(self._rng):
                    _bump(self._counters.faults_fired, DELAY_MS)
                    total += fault.ms
            return total

    def take_action(self, op):
        """Kind of the first other fault (list order) that fires, or None."""
        with self._lock:
            fault = self._fire_first(op, lambda f: f.kind not in (REFUSE, DELAY_MS))
            return fault.kind if fault else None

    def _fire_first(self, op, wanted):
        for fault in self._faults:
            if wanted(fault) and fault.matches(op) and fault.fire(self._rng):
                _bump(self._counters.faults_fired, fault.kind)
                return fault
        return None

    def count_request(self, op):
        with self._lock:
            _bump(self._counters.requests, op)

    def count_forwarded(self, op):
        with self._lock:
            _bump(self._counters.forwarded, op)

    def count_backend_error(self):
        with self._lock:
            self._counters.backend_errors += 1

    def count_rejection(self, rejection):
        with self._lock:
            self._counters.rejections += 1
            _bump(self._counters.rejections_by_type, rejection.error_type)
            self._counters.last_rejection = {
                "type": rejection.error_type, "message": rejection.message}

    def stats(self):
        with self._lock:
            c = self._counters
            return {
                "requests": dict(c.requests),
                "forwarded": dict(c.forwarded),
                "faults_fired": dict(c.faults_fired),
                "rejections": c.rejections,
                "rejections_by_type": dict(c.rejections_by_type),
                "last_rejection": c.last_rejection,
                "backend_errors": c.backend_errors,
                "skew_seconds": self._skew,
                "faults": [f.to_json() for f in self._faults],
            }


# --------------------------------------------------------------------------
# HTTP plumbing


class BackendError(Exception):
    """The backend could not be reached or did not answer."""


def operation_of(headers):
    """`DynamoDB_20120810.PutItem` -> `PutItem`; requests without a target count as "-"."""
    target = headers.get("x-amz-target") or ""
    return target.rpartition(".")[2] or "-"


def crc32_of(body):
    return binascii.crc32(body) & 0xFFFFFFFF


def new_request_id():
    # DynamoDB request ids are 52 characters of [A-Z0-9].
    return base64.b32encode(os.urandom(35)).decode("ascii")[:52]


def json_error(status, error_type, message):
    """(status, headers, body) of a DynamoDB-style error answer."""
    if "#" not in error_type:
        error_type = CORAL + error_type
    body = json.dumps({"__type": error_type, "message": message}).encode()
    headers = [("Content-Type", JSON_CONTENT_TYPE),
               ("x-amzn-RequestId", new_request_id()),
               ("x-amz-crc32", str(crc32_of(body)))]
    return status, headers, body


def connection_tokens(headers):
    """Header names listed in Connection, which are hop-by-hop too."""
    tokens = set()
    for value in headers.get_all("connection") or ():
        tokens.update(t.strip().lower() for t in value.split(","))
    return tokens


def end_to_end_headers(headers):
    """(name, value) pairs of `headers` without the hop-by-hop ones."""
    skip = HOP_BY_HOP_HEADERS | connection_tokens(headers)
    return [(k, v) for k, v in headers.items() if k.lower() not in skip]


def replace_header(headers, name, value):
    kept = [(k, v) for k, v in headers if k.lower() != name.lower()]
    return kept + [(name, value)]


class ProxyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # benchmarks open many connections at once

    def __init__(self, address, backend_url, verifier, state, verbose=False,
                 serialize_backend=False):
        backend = urllib.parse.urlsplit(backend_url)
        # moto's threaded server does not apply a conditional write atomically: measured
        # here, 8 threads racing 30 version steps with "v = :old" conditions won 31 times.
        # DynamoDB guarantees that atomicity, so for such a backend the proxy forwards one
        # request at a time (fault delays happen before this lock, so they still overlap).
        self.backend_lock = threading.Lock() if serialize_backend else None
        if backend.scheme != "http" or not backend.hostname:
            raise ValueError(f"backend must be an http:// URL, got {backend_url!r}")
        self.backend_host = backend.hostname
        self.backend_port = backend.port or 80
        self.verifier = verifier
        self.state = state
        self.verbose = verbose
        super().__init__(address, ProxyHandler)

    def server_bind(self):
        # HTTPServer.server_bind does a reverse DNS lookup; not needed here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    """One instance per client connection; owns one backend connection."""

    protocol_version = "HTTP/1.1"
    # Small answers must not wait for the client's delayed ACK (Nagle): ~40 ms a request.
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        self._backend = None
        self._abort = False  # finish() resets the connection instead of closing it

    def handle(self):
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as exc:
            # The client went away mid-exchange (its timeout fired, or a test
            # hung up on purpose); there is nobody left to answer.
            self._log("client connection lost: %r", exc)
            self.close_connection = True

    def finish(self):
        try:
            super().finish()
        finally:
            if self._backend is not None:
                self._backend.close()
            if self._abort:
                self._reset_connection()

    # -- routing ----------------------------------------------------------

    def do_GET(self):
        if self.path == "/__stats":
            self._send_json(200, self.server.state.stats())
        else:
            self._proxy()

    def do_POST(self):
        if self.path == "/__control":
            self._control()
        else:
            self._proxy()

    # -- control ----------------------------------------------------------

    def _control(self):
        try:
            command = json.loads(self._read_body() or b"{}")
            self.server.state.configure(command)
        except (ValueError, ControlError) as exc:  # JSONDecodeError is a ValueError
            self._send_json(400, {"error": str(exc)})
            return
        self._log("control: %s", json.dumps(command))
        self._send_json(200, self.server.state.stats())

    # -- proxying ---------------------------------------------------------

    def _proxy(self):
        state = self.server.state
        op = operation_of(self.headers)
        state.count_request(op)
        if state.take_refusal(op):
            self._log("fault %s on %s", REFUSE, op)
            self._abort_connection()
            return
        try:
            body = self._read_body()
        except ValueError:
            self.send_error(400, "Bad request body framing")
            self.close_connection = True
            return
        try:
            self.server.verifier.verify(self.command, self.path, self.headers,
                                        body, state.now())
        except Rejection as rejection:
            state.count_rejection(rejection)
            self._log("rejected %s: %s", op, rejection.message)
            self._send(*json_error(400, rejection.error_type, rejection.message))
            return
        limit = expression_limit_error(body)
        if limit:
            # what DynamoDB refuses and the local servers take: tests must not pass where
            # DynamoDB would not
            state.count_rejection(Rejection("ValidationException", limit))
            self._send(*json_error(400, "ValidationException", limit))
            return
        delay_ms = state.take_delay_ms(op)
        if delay_ms:
            time.sleep(delay_ms / 1000.0)
        kind = state.take_action(op)
        if kind:
            self._log("fault %s on %s", kind, op)
        if kind == RESET_BEFORE_FORWARD:
            self._abort_connection()
        elif kind in CANNED_ERRORS:
            self._send(*json_error(*CANNED_ERRORS[kind]))
        else:
            self._forward_and_answer(op, body, kind)

    def _forward_and_answer(self, op, body, kind):
        try:
            if self.server.backend_lock is not None:
                with self.server.backend_lock:
                    status, headers, answer = self._exchange(body)
            else:
                status, headers, answer = self._exchange(body)
        except BackendError as exc:
            self.server.state.count_backend_error()
            self._send(*json_error(502, "sigproxy#BackendUnavailable", str(exc)))
            return
        self.server.state.count_forwarded(op)
        if kind == DROP_AFTER_FORWARD:
            self.close_connection = True
        elif kind == STATUS_500_AFTER_FORWARD:
            self._send(*json_error(*INJECTED_500))
        elif kind == NOT_JSON_AFTER_FORWARD:
            self._send(200, [("Content-Type", "text/html"),
                             ("x-amzn-RequestId", new_request_id()),
                             ("x-amz-crc32", str(crc32_of(NOT_JSON_BODY)))], NOT_JSON_BODY)
        elif kind == BAD_CRC_AFTER_FORWARD:
            wrong = (crc32_of(answer) + 1) & 0xFFFFFFFF
            self._send(status, replace_header(headers, "x-amz-crc32", str(wrong)), answer)
        elif kind == TRUNCATE_AFTER_FORWARD:
            self._send(status, headers, answer, truncate=True)
        else:
            self._send(status, headers, answer)

    # -- backend ----------------------------------------------------------

    def _exchange(self, body):
        """Send the request to the backend; (status, headers, body) of its answer.

        A kept-alive backend connection may have been closed while idle (Node
        closes them after 5 s).  Such a connection is detected before use, and
        a reset on a reused connection is retried once on a fresh one.
        """
        headers = end_to_end_headers(self.headers) + [("Content-Length", str(len(body)))]
        for attempt in (1, 2):
            conn, reused = self._backend_connection()
            try:
                conn.putrequest(self.command, self.path, skip_host=True,
                                skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                conn.endheaders(body)
                response = conn.getresponse()
                answer = response.read()
                return response.status, end_to_end_headers(response.msg), answer
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as exc:
                self._drop_backend()
                if not reused or attempt == 2:
                    raise BackendError(f"backend connection failed: {exc!r}") from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop_backend()
                raise BackendError(f"backend request failed: {exc!r}") from None
        raise AssertionError("unreachable")

    def _backend_connection(self):
        """The persistent backend connection, and whether it was used before."""
        conn = self._backend
        if conn is not None and conn.sock is not None and _readable_now(conn.sock):
            # An idle HTTP connection only becomes readable when the peer closed it.
            self._drop_backend()
            conn = None
        if conn is None:
            conn = http.client.HTTPConnection(self.server.backend_host,
                                              self.server.backend_port,
                                              timeout=BACKEND_TIMEOUT_SECONDS)
            self._backend = conn
        return conn, conn.sock is not None

    def _drop_backend(self):
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    # -- client side ------------------------------------------------------

    def _read_body(self):
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            return self._read_chunked_body()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length)

    def _read_chunked_body(self):
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                break
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # CRLF after each chunk
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailer section
        return b"".join(chunks)

    def _send(self, status, headers, body, truncate=False):
        """Answer with Content-Length and this proxy's Date (its clock, maybe
        skewed, is the one clients must see, not the backend's); with
        `truncate`, send only half the body and close, leaving the client short."""
        self.log_request(status, len(body))  # silent unless --verbose
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        for name, value in headers:
            if name.lower() not in ("date", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if truncate else body)
        if truncate:
            self.close_connection = True

    def _send_json(self, status, document):
        body = json.dumps(document, indent=1, sort_keys=True).encode() + b"\n"
        self._send(status, [("Content-Type", "application/json")], body)

    def _abort_connection(self):
        """Close the client connection with a TCP reset once this request ends."""
        self._abort = True
        self.close_connection = True

    def _reset_connection(self):
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        # socketserver's own shutdown/close of this socket afterwards then
        # fails harmlessly (it ignores OSError).
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def date_time_string(self, timestamp=None):
        # Clients compute their clock offset from Date; it must follow the skew.
        when = self.server.state.now() if timestamp is None else timestamp
        return email.utils.formatdate(when, usegmt=True)

    def _log(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("sigproxy: " + (fmt % args) + "\n")

    def log_message(self, format, *args):  # noqa: A002 - base class signature
        if self.server.verbose:
            super().log_message(format, *args)


def _readable_now(sock):
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


# --------------------------------------------------------------------------
# Command line


def parse_credential(text):
    """`AKID:SECRET` or `AKID:SECRET:TOKEN` -> (akid, (secret, token or None))."""
    parts = text.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise argparse.ArgumentTypeError(
            f"credential must be AKID:SECRET or AKID:SECRET:TOKEN, got {text!r}")
    token = parts[2] if len(parts) == 3 and parts[2] else None
    return parts[0], (parts[1], token)


def credentials_from(cli_values, env_value):
    """--cred values plus $SIGPROXY_CREDS (space/comma separated); the
    built-in test credential only when neither gives any."""
    creds = dict(cli_values or ())
    for item in re.split(r"[\s,]+", env_value or ""):
        if item:
            akid, secret = parse_credential(item)
            creds.setdefault(akid, secret)
    return creds or {DEFAULT_ACCESS_KEY: (DEFAULT_SECRET_KEY, None)}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen-port", type=int, required=True)
    parser.add_argument("--listen-host", default="127.0.0.1")
    parser.add_argument("--backend", required=True,
                        help="backend base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--cred", action="append", type=parse_credential,
                        metavar="AKID:SECRET[:TOKEN]",
                        help=f"accepted credential (repeatable; also ${CREDS_ENV_VAR}); "
                             "with TOKEN, requests must carry that session token")
    parser.add_argument("--skew-seconds", type=float, default=0.0,
                        help="offset added to this proxy's clock")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument("--serialize-backend", action="store_true",
                        help="forward one request at a time (for backends whose conditional "
                             "writes are not atomic, such as moto)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    verifier = SignatureVerifier(credentials_from(args.cred, os.environ.get(CREDS_ENV_VAR)))
    state = ProxyState(skew_seconds=args.skew_seconds)
    try:
        server = ProxyServer((args.listen_host, args.listen_port), args.backend,
                             verifier, state, verbose=args.verbose,
                             serialize_backend=args.serialize_backend)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"sigproxy: cannot listen on {args.listen_host}:"
                         f"{args.listen_port} for {args.backend}: {exc}\n")
        return 1
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
