#!/usr/bin/env python3
"""Credential endpoints for spec/integration/credentials_spec.lua, on one loopback port.

  metadata_server.py --port-file PATH [--owner-pid PID] [--sts-backend URL]
                     [--cred AKID:SECRET[:TOKEN] ...]

Serves, following each one's documented protocol:
  * EC2 instance metadata, IMDSv2: PUT /latest/api/token (with
    X-aws-ec2-metadata-token-ttl-seconds) gives a session token; GET
    /latest/meta-data/iam/security-credentials/ lists the role, GET .../<role>
    gives its credentials, both with X-aws-ec2-metadata-token (or, in "v1"
    mode, without).
  * Container credentials (ECS, EKS Pod Identity): GET /container/<anything>,
    with the Authorization header checked when a token is required.
  * STS: POST / is checked the way STS checks it (AssumeRole must carry a
    valid SigV4 signature for service "sts", recomputed with botocore through
    sigproxy's verifier; AssumeRoleWithWebIdentity must be unsigned and carry
    the expected token), then passed to moto (--sts-backend). Credentials that
    STS issues are learnt from its answers, so a chained AssumeRole signed
    with them is verified too.
Control, unsigned: POST /__control with a JSON document ({"reset": true},
{"imds": {...}}, {"container": {...}}, {"sts": {...}}, see DEFAULT_CONFIG)
answers the counters and what was issued; {} just reads them.

Writes "PORT PID" to --port-file once listening; exits when --owner-pid is gone.
"""

import argparse
import copy
import datetime
import json
import os
import secrets
import sys
import threading
import time
import urllib.parse
import http.client
import http.server
import xml.etree.ElementTree as ElementTree
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sigproxy  # noqa: E402  (the SigV4 verifier the DynamoDB proxy uses)

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
IMDS_CREDS_PATH = "/latest/meta-data/iam/security-credentials/"

DEFAULT_CONFIG = {
    "imds": {
        "mode": "v2",          # "v2": tokens accepted, none required (like IMDS with
                               # v1 allowed); "v2_only": a token is required;
                               # "v1": the token PUT is refused with v1_status
        "v1_status": 404,
        "role": "ddb-test-role",   # false: no role attached (404)
        "expires_in": 3600,
        "fail": None,          # {"status": 500, "count": n}: the credentials GET fails
        "malformed": None,     # "not_json" | "no_token" | "bad_expiration" | "code_failure"
        "issue": None,         # {"AccessKeyId", "SecretAccessKey", "Token"}: fixed values
        "token_ttl_seconds": None,   # overrides the TTL asked for (to expire tokens)
        "hang_seconds": 0,     # the token PUT answers only after this long
    },
    "container": {
        "token": None,         # the Authorization value required, if any
        "expires_in": 3600,
        "fail": None,          # {"status": 500, "count": n}
        "malformed": None,     # "not_json" | "no_secret"
        "echo_token_in_error": False,  # a 401 whose message repeats the header sent
        "issue": None,
        "delay_seconds": 0,    # every answer waits this long (requests in flight overlap)
    },
    "sts": {
        "web_identity_token": None,   # the WebIdentityToken accepted (null: any)
        "fail": None,          # {"status": 500, "code": "InternalFailure", "count": n,
                               #  "message": "..."}
        "malformed": None,     # "truncated" | "no_secret" | "html"
    },
}


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def random_creds(prefix, expires_in):
    return {
        "AccessKeyId": prefix + secrets.token_hex(6).upper(),
        "SecretAccessKey": secrets.token_urlsafe(30),
        "Token": "tok-" + secrets.token_urlsafe(48),
        "Expiration": iso(now_utc() + datetime.timedelta(seconds=expires_in)),
    }


class State:
    def __init__(self, credentials, sts_backend):
        self.lock = threading.Lock()
        self.base_credentials = dict(credentials)
        self.sts_backend = sts_backend
        self.reset()

    def reset(self):
        self.config = copy.deepcopy(DEFAULT_CONFIG)
        self.counts = {}
        self.issued = {}        # endpoint -> the last credentials it issued
        self.seen = {}          # endpoint -> details of the last request (headers, params)
        self.imds_tokens = {}   # token -> expiry (monotonic)
        # access key -> (secret, token) that a signed STS request may use
        self.known = dict(self.base_credentials)

    def configure(self, doc):
        if doc.get("reset"):
            self.reset()
        for section in ("imds", "container", "sts"):
            for key, value in (doc.get(section) or {}).items():
                if key not in self.config[section]:
                    raise ValueError(f"unknown {section} setting {key!r}")
                self.config[section][key] = value

    def count(self, key):
        self.counts[key] = self.counts.get(key, 0) + 1

    def take_failure(self, section):
        fail = self.config[section]["fail"]
        if not fail:
            return None
        count = fail.get("count")
        if count is not None:
            if count <= 0:
                return None
            fail["count"] = count - 1
        return fail

    def snapshot(self):
        return {"counts": self.counts, "issued": self.issued, "seen": self.seen}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "metadata-test/1"

    def log_message(self, fmt, *args):  # quiet: the spec reads counters instead
        pass

    @property
    def state(self):
        return self.server.state

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def answer(self, status, body, content_type="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    # ---------------------------------------------------------------- dispatch

    def do_PUT(self):
        self.body()  # read and ignored: IMDS's token PUT has none
        if self.path == "/latest/api/token":
            return self.imds_token()
        return self.answer(404, {"message": "no such resource"})

    def do_GET(self):
        if self.path.startswith(IMDS_CREDS_PATH):
            return self.imds_credentials()
        if self.path.startswith("/container/"):
            return self.container()
        return self.answer(404, {"message": "no such resource"})

    def do_POST(self):
        body = self.body()
        if self.path == "/__control":
            try:
                doc = json.loads(body or b"{}")
                with self.state.lock:
                    self.state.configure(doc)
                    return self.answer(200, self.state.snapshot())
            except ValueError as exc:
                return self.answer(400, {"message": str(exc)})
        if self.path == "/":
            return self.sts(body)
        return self.answer(404, {"message": "no such resource"})

    # ---------------------------------------------------------------- IMDS

    def imds_token(self):
        st = self.state
        with st.lock:
            hang = st.config["imds"]["hang_seconds"]
        if hang:
            time.sleep(hang)
        with st.lock:
            st.count("imds_token")
            cfg = st.config["imds"]
            st.seen["imds_token"] = {"method": self.command, "headers": dict(self.headers)}
            if cfg["mode"] == "v1":
                return self.answer(cfg["v1_status"], "", "text/plain")
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            if ttl is None or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return self.answer(400, "", "text/plain")
            token = secrets.token_urlsafe(32)
            lifetime = cfg["token_ttl_seconds"] or int(ttl)
            st.imds_tokens[token] = time.monotonic() + lifetime
            return self.answer(200, token, "text/plain",
                               {"X-aws-ec2-metadata-token-ttl-seconds": str(lifetime)})

    def imds_credentials(self):
        st = self.state
        with st.lock:
            cfg = st.config["imds"]
            role_requested = self.path[len(IMDS_CREDS_PATH):]
            key = "imds_role" if role_requested == "" else "imds_credentials"
            st.count(key)
            token = self.headers.get("X-aws-ec2-metadata-token")
            st.seen[key] = {"token_sent": token is not None, "path": self.path}
            if token is not None:
                expiry = st.imds_tokens.get(token)
                if expiry is None or expiry < time.monotonic():
                    return self.answer(401, "", "text/plain")
            elif cfg["mode"] == "v2_only":
                return self.answer(401, "", "text/plain")
            if not cfg["role"]:
                return self.answer(404, "", "text/plain")
            if role_requested == "":
                return self.answer(200, cfg["role"] + "\n", "text/plain")
            if role_requested != cfg["role"]:
                return self.answer(404, "", "text/plain")
            fail = st.take_failure("imds")
            if fail:
                return self.answer(fail.get("status", 500), "", "text/plain")
            creds = random_creds("ASIAIMDS", cfg["expires_in"])
            if cfg["issue"]:
                creds.update(cfg["issue"])
            st.issued["imds"] = creds
            doc = {"Code": "Success", "LastUpdated": iso(now_utc()), "Type": "AWS-HMAC", **creds}
            bad = cfg["malformed"]
            if bad == "not_json":
                return self.answer(200, "<html>not json</html>", "text/html")
            if bad == "no_token":
                del doc["Token"]
            elif bad == "bad_expiration":
                doc["Expiration"] = "next tuesday"
            elif bad == "code_failure":
                doc["Code"] = "AssumeRoleUnauthorizedAccess"
            return self.answer(200, doc, "text/plain")

    # ---------------------------------------------------------------- container

    def container(self):
        st = self.state
        with st.lock:
            delay = st.config["container"]["delay_seconds"]
        if delay:
            time.sleep(delay)
        with st.lock:
            st.count("container")
            cfg = st.config["container"]
            sent = self.headers.get("Authorization")
            st.seen["container"] = {"authorization": sent, "path": self.path,
                                    "accept": self.headers.get("Accept")}
            if cfg["token"] is not None and sent != cfg["token"]:
                message = "invalid authorization token"
                if cfg["echo_token_in_error"]:
                    message += f": {sent}"
                return self.answer(401 if sent is None else 403, {"message": message})
            fail = st.take_failure("container")
            if fail:
                return self.answer(fail.get("status", 500), {"message": "injected failure"})
            creds = random_creds("ASIACONT", cfg["expires_in"])
            if cfg["issue"]:
                creds.update(cfg["issue"])
            st.issued["container"] = creds
            doc = {**creds, "RoleArn": "arn:aws:iam::123456789012:role/task"}
            bad = cfg["malformed"]
            if bad == "not_json":
                return self.answer(200, "{not json")
            if bad == "no_secret":
                del doc["SecretAccessKey"]
            return self.answer(200, doc)

    # ---------------------------------------------------------------- STS

    def sts_error(self, status, code, message):
        body = (f'<ErrorResponse xmlns="{STS_NS}"><Error><Type>Sender</Type>'
                f"<Code>{code}</Code><Message>{escape(message)}</Message></Error>"
                f"<RequestId>{secrets.token_hex(8)}</RequestId></ErrorResponse>")
        return self.answer(status, body, "text/xml")

    def sts(self, body):
        st = self.state
        params = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(),
                                                            keep_blank_values=True).items()}
        action = params.get("Action", "")
        headers = {k.lower(): v for k, v in self.headers.items()}
        with st.lock:
            st.count("sts:" + action)
            st.seen["sts:" + action] = {"params": params,
                                        "signed": "authorization" in headers,
                                        "content_type": headers.get("content-type")}
            cfg = st.config["sts"]
            if action == "AssumeRole":
                rejection = self.check_signature(headers, body)
                if rejection:
                    return self.sts_error(403, *rejection)
            elif action == "AssumeRoleWithWebIdentity":
                if "authorization" in headers:
                    return self.sts_error(400, "InvalidParameterValue",
                                          "AssumeRoleWithWebIdentity must not be signed here")
                expected = cfg["web_identity_token"]
                if expected is not None and params.get("WebIdentityToken") != expected:
                    return self.sts_error(400, "InvalidIdentityToken",
                                          "The web identity token "
                                          f"{params.get('WebIdentityToken')} is not valid")
            else:
                return self.sts_error(400, "InvalidAction", f"unsupported action {action}")
            fail = st.take_failure("sts")
            if fail:
                return self.sts_error(fail.get("status", 500), fail.get("code", "InternalFailure"),
                                      fail.get("message", "injected failure"))
            malformed = cfg["malformed"]
        status, answer = self.forward(body, headers)
        if status != 200:
            return self.answer(status, answer, "text/xml")
        creds = read_sts_credentials(answer)
        with st.lock:
            if creds:
                st.known[creds["AccessKeyId"]] = (creds["SecretAccessKey"],
                                                  creds["SessionToken"])
                st.issued["sts:" + action] = creds
        if malformed == "truncated":
            answer = answer[: len(answer) // 2]
        elif malformed == "no_secret" and creds:
            answer = answer.replace(f"<SecretAccessKey>{creds['SecretAccessKey']}"
                                    "</SecretAccessKey>".encode(), b"")
        elif malformed == "html":
            answer = b"<html><body>gateway</body></html>"
        return self.answer(200, answer, "text/xml")

    def check_signature(self, headers, body):
        """None if the request is signed as STS requires, else (code, message)."""
        st = self.state
        try:
            auth = sigproxy.parse_authorization(headers.get("authorization"))
            amz_date = headers.get("x-amz-date")
            sigproxy.check_clock(amz_date, sigproxy.parse_amz_date(amz_date), time.time())
        except sigproxy.Rejection as exc:
            return ("SignatureDoesNotMatch", exc.message)
        if auth.service != "sts":
            return ("SignatureDoesNotMatch", f"Credential should be scoped to correct service: "
                                             f"'sts', not '{auth.service}'.")
        if auth.access_key not in st.known:
            return ("InvalidClientTokenId", "The security token included in the request is "
                                            "invalid.")
        secret, token = st.known[auth.access_key]
        if token is not None and headers.get("x-amz-security-token") != token:
            return ("InvalidClientTokenId", "The security token included in the request is "
                                            "invalid.")
        for name in ("host", "x-amz-date"):
            if name not in auth.signed_headers:
                return ("SignatureDoesNotMatch", f"'{name}' must be a 'SignedHeader'.")
        if "x-amz-security-token" in headers and \
                "x-amz-security-token" not in auth.signed_headers:
            return ("SignatureDoesNotMatch", "'x-amz-security-token' must be signed.")
        signature, _, _ = sigproxy.expected_signature(
            auth, secret, headers.get("x-amz-security-token"), "POST", "/", headers, body,
            amz_date)
        if signature != auth.signature:
            return ("SignatureDoesNotMatch", sigproxy.SIGNATURE_MISMATCH_MESSAGE)
        return None

    def forward(self, body, headers):
        parts = urllib.parse.urlsplit(self.state.sts_backend)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            out = {"Content-Type": headers.get("content-type",
                                               "application/x-www-form-urlencoded")}
            if "authorization" in headers:
                out["Authorization"] = headers["authorization"]
            conn.request("POST", "/", body=body, headers=out)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


def escape(text):
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def read_sts_credentials(answer):
    try:
        root = ElementTree.fromstring(answer)
    except ElementTree.ParseError:
        return None
    found = {}
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag in ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"):
            found[tag] = element.text
    return found if len(found) == 4 else None


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def watch_owner(pid):
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass
        time.sleep(0.5)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--owner-pid", type=int)
    parser.add_argument("--sts-backend", default=None)
    parser.add_argument("--cred", action="append", default=[],
                        help="AKID:SECRET[:TOKEN] accepted for a signed AssumeRole")
    args = parser.parse_args(argv)
    credentials = {}
    for text in args.cred:
        akid, secret, *token = text.split(":", 2)
        credentials[akid] = (secret, token[0] if token else None)
    server = Server(("127.0.0.1", 0), Handler)
    server.state = State(credentials, args.sts_backend)
    if args.owner_pid:
        threading.Thread(target=watch_owner, args=(args.owner_pid,), daemon=True).start()
    tmp = Path(args.port_file + ".tmp")
    tmp.write_text(f"{server.server_address[1]} {os.getpid()}\n")
    tmp.replace(args.port_file)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
