"""A scripted HTTP/1.1 server for spec/integration/wire_spec.lua: the libcurl transport's
one-call path (csrc/wire.c) against the answers a real server or a middlebox can give.

The operation name of each request (X-Amz-Target: DynamoDB_20120810.<Op>) says how to answer:
  Plain      200, Content-Length
  Chunked    200, chunked in pieces of 1 to 7 bytes, with a trailer
  Close      200, Connection: close, then the server closes
  NoLength   200 without Content-Length or chunks: the body runs to the close
  Continue   100 Continue first, then 200
  Drip       200 sent a byte at a time
  IdleClose  200, then the server closes the idle connection 100 ms later
  Trailing   200 followed by bytes that answer nothing
  Dropped    closes without answering
  Garbage    answers with something that is not HTTP
  Slow       answers after 1.5 s
  Big        200, Content-Length, a 4000-byte body ({"Op": ..., "Pad": "..."})
  BigChunked the same body chunked, in pieces of 1000 bytes
  BigNoLength the same body running to the close
  Stats      200 with the counts: requests per operation, connections accepted
  RepeatedCrc  200 with a wrong x-amz-crc32 and then the right one (the last counts)
  BadChunkSize 200 chunked, its size line starting with a space
  LongChunkSize 200 chunked, a size of 16 hex digits
  HugeHead   200 whose head is 70 KiB of headers
Every answer body is {"Op": ..., "Conn": connection number, "N": request number on it}
with a correct x-amz-crc32. Usage: wire_server.py --port-file F --owner-pid PID
"""
import argparse
import json
import os
import socket
import socketserver
import threading
import time
import zlib

LOCK = threading.Lock()
COUNTS = {"requests": {}, "connections": 0}


def read_request(rfile):
    """The request's operation name, or None when the client closed."""
    line = rfile.readline()
    if not line:
        return None
    length, op = 0, ""
    while True:
        h = rfile.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip()
        if name == "content-length":
            length = int(value)
        elif name == "x-amz-target":
            op = value.rpartition(".")[2]
    if length:
        rfile.read(length)
    return op


def answer(body, extra=b"", length=True):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
    head += b"x-amzn-RequestId: WIRE0001\r\n"
    head += ("x-amz-crc32: %d\r\n" % zlib.crc32(body)).encode()
    if length:
        head += ("Content-Length: %d\r\n" % len(body)).encode()
    return head + extra + b"\r\n" + body


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        with LOCK:
            COUNTS["connections"] += 1
            conn = COUNTS["connections"]
        n = 0
        sock = self.connection
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            try:
                op = read_request(self.rfile)
            except (ConnectionError, OSError):
                return
            if op is None:
                return
            n += 1
            with LOCK:
                COUNTS["requests"][op] = COUNTS["requests"].get(op, 0) + 1
                stats = json.dumps(COUNTS).encode()
            body = json.dumps({"Op": op, "Conn": conn, "N": n}).encode()
            if op == "Stats":
                body = stats
            elif op.startswith("Big"):
                doc = {"Op": op, "Conn": conn, "N": n, "Pad": ""}
                doc["Pad"] = "p" * (4000 - len(json.dumps(doc)))
                body = json.dumps(doc).encode()
            try:
                if not self.respond(op, body, sock):
                    return
            except (ConnectionError, OSError):
                return

    def respond(self, op, body, sock):
        """Sends the answer op asks for; False when the connection ends with it."""
        w = self.wfile
        if op == "Chunked":
            out, i, size = [], 0, 1
            while i < len(body):
                piece = body[i:i + size]
                out.append(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
                i += size
                size = size % 7 + 1
            raw = answer(b"", b"Transfer-Encoding: chunked\r\n", length=False)
            raw = raw.replace(("x-amz-crc32: %d" % zlib.crc32(b"")).encode(),
                              ("x-amz-crc32: %d" % zlib.crc32(body)).encode())
            w.write(raw + b"".join(out) + b"0\r\nX-Trailer: t\r\n\r\n")
        elif op == "BigChunked":
            pieces = [body[i:i + 1000] for i in range(0, len(body), 1000)]
            raw = answer(b"", b"Transfer-Encoding: chunked\r\n", length=False)
            raw = raw.replace(("x-amz-crc32: %d" % zlib.crc32(b"")).encode(),
                              ("x-amz-crc32: %d" % zlib.crc32(body)).encode())
            w.write(raw + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) +
                    b"0\r\n\r\n")
        elif op == "BigNoLength":
            w.write(answer(body, b"", length=False))
            return False
        elif op == "Close":
            w.write(answer(body, b"Connection: close\r\n"))
            return False
        elif op == "NoLength":
            w.write(answer(body, b"", length=False))
            return False
        elif op == "Continue":
            w.write(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(body))
        elif op == "Drip":
            for b in answer(body):
                w.write(bytes([b]))
                w.flush()
                time.sleep(0.0005)
        elif op == "IdleClose":
            w.write(answer(body))
            w.flush()
            time.sleep(0.1)
            return False
        elif op == "Trailing":
            w.write(answer(body) + b"HTTP/1.1 200 OK\r\n")
        elif op == "RepeatedCrc":
            w.write(answer(body, b"x-amz-crc32: %d\r\n" % zlib.crc32(body)).replace(
                b"x-amz-crc32: %d\r\n" % zlib.crc32(body), b"x-amz-crc32: 1\r\n", 1))
        elif op in ("BadChunkSize", "LongChunkSize"):
            size = b" %x" % len(body) if op == "BadChunkSize" else b"%016x" % len(body)
            raw = answer(b"", b"Transfer-Encoding: chunked\r\n", length=False)
            w.write(raw + size + b"\r\n" + body + b"\r\n0\r\n\r\n")
            return False
        elif op == "HugeHead":
            w.write(answer(body, (b"X-Pad: " + b"p" * 1000 + b"\r\n") * 70))
            return False
        elif op == "Dropped":
            return False
        elif op == "Garbage":
            w.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
            return False
        elif op == "Slow":
            time.sleep(1.5)
            w.write(answer(body))
        else:
            w.write(answer(body))
        w.flush()
        return True


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    # many connections made at once (ddb.scheduler's specs): the default backlog of 5 drops
    # the others' SYNs, which come again only after a second
    request_queue_size = 128


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
