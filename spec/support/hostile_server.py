"""A hostile HTTP/1.1 server for spec/integration/hostile_spec.lua: answers that never end,
never fit, or never come, to check that every transport keeps to the call's deadline and to
its answer-size limit.

The mode of an answer comes from the first segment of the request's path ("/Drip/latest/..."
answers in Drip mode: metadata endpoints are pointed at such a path), else from the operation
name (X-Amz-Target: DynamoDB_20120810.<Mode>: modes are named as operations are), else from
an STS request's RoleSessionName; a request through it as a proxy ("POST http://host/
HTTP/1.1") is answered the same way:
  HugeLength      200 with Content-Length: 2000000000, then body bytes as fast as they go
  EndlessChunked  200, chunked, 64 KiB chunks for ever
  EndlessClose    200 without a length: body bytes for ever (a body that runs to the close)
  Drip            200 with Content-Length: 1000000, one byte every 100 ms, head included
  HugeHeaders     a status line, then header lines for ever
  Stall           reads the request and never answers
Anything else gets a small 200. Every mode streams until the client goes away.
Usage: hostile_server.py --port-file F --owner-pid PID
"""
import argparse
import os
import re
import socket
import socketserver
import threading
import time

BLOCK = b"x" * 65536
# Body bytes that never repeat a block: a reader that interns strings (LuaJIT, inside nginx)
# would hold one copy of a block sent over and over, and its memory would not show growth.
POOL = os.urandom(1 << 22)


def blocks():
    off = 0
    while True:
        yield POOL[off:off + len(BLOCK)]
        off = (off + 65537 * 7) % (len(POOL) - len(BLOCK))


def read_request(rfile):
    """(method, path, operation, body) of the next request, or None when the client closed."""
    line = rfile.readline(65536)
    if not line:
        return None
    parts = line.decode("latin-1").split()
    method, target = (parts + ["", ""])[:2]
    length, op = 0, ""
    while True:
        h = rfile.readline(65536)
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip()
        if name == "content-length":
            length = int(value)
        elif name == "x-amz-target":
            op = value.rpartition(".")[2]
    body = rfile.read(length) if length else b""
    return method, target, op, body


def mode_of(target, op, body):
    if "://" in target:   # through it as a proxy: the request line has the absolute form
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    first = target.lstrip("/").split("/", 1)[0]
    # STS takes no path: its RoleSessionName names the mode
    named = re.search(rb"RoleSessionName=(\w+)", body)
    return first or op or (named.group(1).decode() if named else "")


def head(extra):
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
            b"x-amzn-RequestId: HOSTILE\r\n" + extra + b"\r\n")


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        sock = self.connection
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            req = read_request(self.rfile)
            if req is not None:
                self.respond(mode_of(req[1], req[2], req[3]), sock)
        except (ConnectionError, OSError):
            pass   # the client went away: that is how every mode ends

    def respond(self, mode, sock):
        w = sock.sendall
        if mode == "HugeLength":
            w(head(b"Content-Length: 2000000000\r\n"))
            for block in blocks():
                w(block)
        elif mode == "EndlessChunked":
            w(head(b"Transfer-Encoding: chunked\r\n"))
            for block in blocks():
                w(b"%x\r\n" % len(block) + block + b"\r\n")
        elif mode == "EndlessClose":
            w(head(b"Connection: close\r\n"))
            for block in blocks():
                w(block)
        elif mode == "Drip":
            for b in head(b"Content-Length: 1000000\r\n") + BLOCK * 16:
                w(bytes([b]))
                time.sleep(0.1)
        elif mode == "HugeHeaders":
            w(b"HTTP/1.1 200 OK\r\n")
            n = 0
            while True:
                n += 1
                w(b"X-Pad-%d: %s\r\n" % (n, BLOCK[:1000]))
        elif mode == "Stall":
            while sock.recv(65536):
                pass   # until the client closes
        else:
            body = b"{}"
            w(head(b"Content-Length: %d\r\n" % len(body)) + body)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--owner-pid", type=int, required=True)
    args = ap.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
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
