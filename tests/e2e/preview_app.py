"""A small web app run INSIDE a sandbox by the preview tests (standard library only).

Usage: python3 preview_app.py PORT [--foreground]: it listens, then forks and the
parent exits, so the command that started it returns once the port is listening; connections
are kept alive between requests unless the client says `Connection: close`
(with --foreground it stays, and prints "listening" then: the bench's direct run). Routes:
  GET  /          an HTML page whose script opens a WebSocket back to `ws` (relative)
                  and shows the echo in #result (the browser test reads it)
  GET  /hello     text, plus the request's headers as JSON on the next lines
  GET  /stream    "first" at once, "second" only after GET /release: a proxy that
                  buffered the answer whole would never show "first" alone
  GET  /release   lets /stream finish
  GET  /connections  how many connections it has accepted
  GET  /drop-idle  closes every kept-alive connection, its own too after answering
  GET  /streams   how many /stream answers are open now (a client that left ends its own)
  POST /echo      the body back, with its length (Content-Length or chunked)
  GET  /redirect  302 to the absolute path /hello
  GET  /big?n=N   N bytes
  GET  /absolute  a page whose script is at an absolute path, /app.js
  WS   /ws        echoes every text message, prefixed with "echo:" (compressed when
                  the client offers permessage-deflate)
"""

import asyncio
import base64
import hashlib
import json
import os
import socket
import struct
import sys
import zlib

PAGE = b"""<!doctype html><html><head><title>preview app</title></head><body>
<h1>Hello from the sandbox</h1><div id="result">waiting</div>
<script>
const url = new URL("ws", location.href);
url.protocol = url.protocol.replace("http", "ws");
const ws = new WebSocket(url);
ws.onopen = () => ws.send("ping-from-browser");
ws.onmessage = (e) => {
  document.getElementById("result").textContent = "round trip: " + e.data;
  document.title = "done";
};
ws.onerror = () => { document.getElementById("result").textContent = "ws error"; };
</script></body></html>"""

release = asyncio.Event()
streams = set()
idle = set()  # connections waiting for their next request
accepted = [0]


def answer(status, body, ctype="text/plain", extra=()):
    head = [f"HTTP/1.1 {status}", f"Content-Type: {ctype}", f"Content-Length: {len(body)}"]
    head += list(extra)
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


DEFLATE = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


async def websocket(reader, writer, headers):
    """Echo text messages; with permessage-deflate (RFC 7692) when the client offers it,
    each message compressed on its own (no context takeover either way)."""
    key = headers["sec-websocket-key"]
    accept = base64.b64encode(
        hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    ).decode()
    deflate = "permessage-deflate" in headers.get("sec-websocket-extensions", "")
    extension = f"Sec-WebSocket-Extensions: {DEFLATE}\r\n" if deflate else ""
    writer.write(
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n{extension}\r\n"
        ).encode()
    )
    while True:
        b0, b1 = await reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", await reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await reader.readexactly(8))[0]
        mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(await reader.readexactly(n)))
        opcode = b0 & 0x0F
        if opcode == 8:
            writer.write(b"\x88\x02" + data[:2])
            await writer.drain()
            return
        if opcode == 1:
            if b0 & 0x40:  # RSV1: a compressed message
                data = zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")
            out = b"echo:" + data
            first = 0x81
            if deflate:
                packer = zlib.compressobj(wbits=-15)
                out = (packer.compress(out) + packer.flush(zlib.Z_SYNC_FLUSH))[:-4]
                first |= 0x40
            size = bytes([len(out)]) if len(out) < 126 else b"\x7e" + struct.pack("!H", len(out))
            writer.write(bytes([first]) + size + out)
            await writer.drain()


async def handle(reader, writer):
    """Requests on one connection, kept alive unless the client says close."""
    accepted[0] += 1
    try:
        while True:
            idle.add(writer)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            finally:
                idle.discard(writer)
            if not await one(head, reader, writer):
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def one(head, reader, writer):
    """Answer one request; whether the connection stays open for another."""
    lines = head.decode("latin-1").split("\r\n")
    _, target, _ = lines[0].split(" ")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    path = target.split("?")[0]
    if headers.get("upgrade", "").lower() == "websocket":
        await websocket(reader, writer, headers)
        return False
    if path == "/":
        writer.write(answer("200 OK", PAGE, "text/html"))
    elif path == "/hello":
        info = json.dumps({"target": target, "headers": headers}).encode()
        writer.write(answer("200 OK", b"hello from the sandbox\n" + info))
    elif path == "/stream":
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n"
        )
        writer.write(b"6\r\nfirst\n\r\n")
        await writer.drain()
        streams.add(writer)
        try:
            # Until released, or until the connection ends (EOF from the proxy).
            released = asyncio.ensure_future(release.wait())
            gone = asyncio.ensure_future(reader.read())
            await asyncio.wait({released, gone}, return_when=asyncio.FIRST_COMPLETED)
            released.cancel()
            gone.cancel()
        finally:
            streams.discard(writer)
        if release.is_set():
            release.clear()
            writer.write(b"7\r\nsecond\n\r\n0\r\n\r\n")
            await writer.drain()
        return False
    elif path == "/connections":
        writer.write(answer("200 OK", str(accepted[0]).encode()))
    elif path == "/drop-idle":
        for other in list(idle):
            other.close()
        writer.write(answer("200 OK", b"dropped"))
        await writer.drain()
        return False  # this one too, though its answer did not say so (a stale keep-alive)
    elif path == "/streams":
        writer.write(answer("200 OK", str(len(streams)).encode()))
    elif path == "/release":
        release.set()
        writer.write(answer("200 OK", b"released"))
    elif path == "/echo":
        if "chunked" in headers.get("transfer-encoding", ""):
            body = b""
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                body += await reader.readexactly(size)
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")  # the empty trailer
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        writer.write(answer("200 OK", f"{len(body)}:".encode() + body))
    elif path == "/redirect":
        writer.write(
            answer("302 Found", b"", extra=["Location: /hello", "Set-Cookie: app=1; Path=/"])
        )
    elif path == "/absolute":
        page = b'<!doctype html><div id="result">waiting</div><script src="/app.js"></script>'
        writer.write(answer("200 OK", page, "text/html"))
    elif path == "/app.js":
        script = b'document.getElementById("result").textContent = "script ran";'
        writer.write(answer("200 OK", script, "text/javascript"))
    elif path == "/big":
        n = int(target.split("n=")[1])
        writer.write(answer("200 OK", b"x" * n, "application/octet-stream"))
    else:
        writer.write(answer("404 Not Found", b"no such page"))
    await writer.drain()
    return headers.get("connection", "").lower() != "close"


async def main(sock):
    server = await asyncio.start_server(handle, sock=sock)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(sys.argv[1])))
    listener.listen(64)
    if "--foreground" in sys.argv:
        print("listening", flush=True)
    elif os.fork():
        os._exit(0)
    else:
        os.setsid()
        sys.stdin.close()
    asyncio.run(main(listener))
