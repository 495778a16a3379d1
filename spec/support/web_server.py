"""A plain web server, not DynamoDB, for spec/integration/endpoint_spec.lua: what a client
meets when its endpoint points at the wrong port or host. The request path says how to
answer (the client posts to the endpoint URL it was given):
  /501    501 Not Implemented, text/html (Python's http.server answering a POST)
  /404    404 Not Found, text/html
  /200    200 OK, text/html (a site's home page)
  /502    502 Bad Gateway, text/html (a proxy whose upstream is down)
  /json   404 with a JSON body that is not DynamoDB's ({"error": "not found"})
and / as --default says (200 unless told). None of them sends x-amzn-requestid. A GET
gives the number of POSTs per path as JSON.
Usage: web_server.py --port-file F --owner-pid PID [--default 501]
"""
import argparse
import http.server
import json
import os
import threading
import time

LOCK = threading.Lock()
COUNTS = {}
DEFAULT = ["/200"]

ANSWERS = {
    "/501": (501, "text/html;charset=utf-8",
             b"<html><body><h1>Error response</h1><p>Error code: 501</p>"
             b"<p>Message: Unsupported method ('POST').</p></body></html>"),
    "/404": (404, "text/html", b"<html><body><h1>Not Found</h1></body></html>"),
    "/200": (200, "text/html", b"<!doctype html><html><body>Welcome</body></html>"),
    "/502": (502, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    "/json": (404, "application/json", b'{"error": "not found"}'),
}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # without it each keep-alive answer waits ~40 ms for the client's ACK
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def send(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path.rstrip("/") or DEFAULT[0]
        with LOCK:
            COUNTS[path] = COUNTS.get(path, 0) + 1
        self.send(*ANSWERS.get(path, ANSWERS["/404"]))

    def do_GET(self):
        with LOCK:
            body = json.dumps(COUNTS).encode()
        self.send(200, "application/json", body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--owner-pid", type=int, required=True)
    ap.add_argument("--default", default="200", choices=[k[1:] for k in ANSWERS])
    args = ap.parse_args()
    DEFAULT[0] = "/" + args.default
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d\n" % (srv.server_address[1], os.getpid()))
    os.rename(tmp, args.port_file)
    # dies with the spec that started it
    while True:
        try:
            os.kill(args.owner_pid, 0)
        except OSError:
            break
        time.sleep(0.5)
    srv.shutdown()


if __name__ == "__main__":
    main()
