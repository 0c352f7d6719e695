"""The test "internet": services run INSIDE the network namespace a test made.

    python3 internet_services.py STATE_DIR

Standard library only. Serves, on every address of the namespace:
  - HTTP :80   GET /hello -> "hello from ADDR" (the address the client reached);
               /simple/... and /packages/... -> a package index from STATE_DIR/index;
               /git/REPO/... -> `git http-backend` over STATE_DIR/git (no auth)
  - DNS  :53   UDP and TCP: A records from STATE_DIR/zone.json
               ({"name": ["addr", ...], "_ttl": N}), re-read on every query so a
               test can move a name; NXDOMAIN otherwise
  - TCP  :5001 a sink: reads to EOF, answers the byte count (throughput)
Prints "ready" once every socket is bound.
"""

import http.server
import json
import os
import socket
import socketserver
import struct
import subprocess
import sys
import threading

STATE = sys.argv[1]


class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=os.path.join(STATE, "index"), **kwargs)

    def do_GET(self):
        if self.path == "/hello":
            body = f"hello from {self.connection.getsockname()[0]}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith("/git/"):
            self.git()
        else:
            super().do_GET()

    def do_POST(self):
        if self.path.startswith("/git/"):
            self.git()
        else:
            self.send_error(404)

    def git(self):
        path, _, query = self.path[len("/git") :].partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        env = dict(
            os.environ,
            GIT_PROJECT_ROOT=os.path.join(STATE, "git"),
            GIT_HTTP_EXPORT_ALL="1",
            PATH_INFO=path,
            QUERY_STRING=query,
            REQUEST_METHOD=self.command,
            CONTENT_TYPE=self.headers.get("Content-Type", ""),
            CONTENT_LENGTH=str(length),
            REMOTE_ADDR=self.client_address[0],
        )
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
        head, _, payload = out.stdout.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode().split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def dns_answer(query: bytes) -> bytes:
    pos = 12
    labels = []
    while query[pos]:
        labels.append(query[pos + 1 : pos + 1 + query[pos]].decode().lower())
        pos += 1 + query[pos]
    qend = pos + 5
    qtype = struct.unpack_from("!H", query, pos + 1)[0]
    name = ".".join(labels)
    with open(os.path.join(STATE, "zone.json")) as f:
        zone = json.load(f)
    addrs = zone.get(name)
    ttl = int(zone.get("_ttl", 60))
    rcode = 0 if addrs is not None else 3
    answers = b""
    if addrs and qtype == 1:
        for a in addrs:
            answers += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, ttl, 4) + socket.inet_aton(a)
    count = len(addrs) if (addrs and qtype == 1) else 0
    ident = struct.unpack_from("!H", query)[0]
    head = struct.pack("!HHHHHH", ident, 0x8180 | rcode, 1, count, 0, 0)
    return head + query[12:qend] + answers


def serve_dns(sock: socket.socket) -> None:
    while True:
        data, addr = sock.recvfrom(4096)
        try:
            sock.sendto(dns_answer(data), addr)
        except Exception as exc:  # a test's garbage must not end the server
            print("dns:", exc, file=sys.stderr)


class DnsTcp(socketserver.BaseRequestHandler):
    def handle(self):
        while head := self.request.recv(2):
            query = self.request.recv(int.from_bytes(head, "big"), socket.MSG_WAITALL)
            answer = dns_answer(query)
            self.request.sendall(len(answer).to_bytes(2, "big") + answer)


class Sink(socketserver.BaseRequestHandler):
    def handle(self):
        total = 0
        while chunk := self.request.recv(1 << 20):
            total += len(chunk)
        self.request.sendall(f"{total}\n".encode())


class TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main() -> None:
    http_server = http.server.ThreadingHTTPServer(("0.0.0.0", 80), Handler)
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("0.0.0.0", 53))
    sink = TCPServer(("0.0.0.0", 5001), Sink)
    dns_tcp = TCPServer(("0.0.0.0", 53), DnsTcp)
    threading.Thread(target=dns_tcp.serve_forever, daemon=True).start()
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    threading.Thread(target=serve_dns, args=(dns,), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


main()
