#!/usr/bin/env python3
"""A deliberately odd HTTP/1.1 server for the cosocket transport's specs.

  oddserver.py PORT_FILE

Listens on a free loopback port, writes it to PORT_FILE, and answers every
POST by the "mode" field of its JSON body (the answer's body is JSON too):
  plain     200 with Content-Length; the connection stays open
  rst_idle  as plain, then resets the idle connection (TCP RST) 100 ms later
  fin_idle  as plain, then closes the idle connection (FIN) 100 ms later
  chunked   200 in chunks of 1000 bytes, with chunk extensions and a trailer
  interim   a 100 Continue first, then as plain
  close     200 without a length, delimited by closing the connection
"size" (default 50) pads the answer to at least that many bytes.  Every
answer carries "conn" (this connection's number, from 1) and "seq" (the
request's number on it, from 1), so a spec can see which connection served it.
Runs until killed.
"""

import json
import os
import socket
import socketserver
import struct
import sys
import threading
import time

IDLE_CLOSE_SECONDS = 0.1


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        with self.server.lock:
            self.server.connections += 1
            conn_no = self.server.connections
        reader = sock.makefile("rb")
        seq = 0
        while True:
            request = read_request(reader)
            if request is None:
                return
            seq += 1
            try:
                doc = json.loads(request or b"{}")
            except ValueError:
                doc = {}
            mode = doc.get("mode", "plain")
            body = answer_body(mode, conn_no, seq, int(doc.get("size", 50)))
            if mode == "interim":
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            if mode == "chunked":
                send_chunked(sock, body)
            elif mode == "close":
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Connection: close\r\n\r\n" + body)
                return
            else:
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body) + body)
            if mode in ("rst_idle", "fin_idle"):
                time.sleep(IDLE_CLOSE_SECONDS)
                if mode == "rst_idle":  # SO_LINGER 0: close() sends RST, not FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                sock.close()
                return


def read_request(reader):
    """The body of the next request, or None once the client has gone."""
    line = reader.readline()
    if not line:
        return None
    length = 0
    while True:
        header = reader.readline()
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return reader.read(length)


def answer_body(mode, conn_no, seq, size):
    doc = {"mode": mode, "conn": conn_no, "seq": seq, "pad": ""}
    short = len(json.dumps(doc))
    doc["pad"] = "x" * max(0, size - short)
    return json.dumps(doc).encode()


def send_chunked(sock, body):
    out = [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"]
    for i in range(0, len(body), 1000):
        piece = body[i:i + 1000]
        out.append(b"%x;piece=%d\r\n" % (len(piece), i // 1000) + piece + b"\r\n")
    out.append(b"0\r\nX-Checksum: none\r\n\r\n")
    sock.sendall(b"".join(out))


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.connections = 0


def main():
    server = Server()
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
