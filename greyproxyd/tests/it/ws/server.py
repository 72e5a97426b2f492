#!/usr/bin/env python3
"""WebSocket origin for the greyproxyd WebSocket capture tests and benchmark.

Started by the Rust tests as a child process. Prints one JSON line when listening:
    {"port": N}
and one JSON line per finished connection:
    {"event": "closed", "path": ..., "extensions": ..., "received": [...],
     "close_code": ..., "close_reason": ...}
where each received message is its text, {"b64": ...} for binary, or {"len": N} when over
4 KiB (the client checks big messages through the echo).

Modes:
  echo    (default) answer each message m with '{"echo":' + m + '}' (text) or b'echo:' + m.
  hello   like echo, but first send HELLO right after the handshake.
  bad-rsv1 / bad-opcode
          raw server (no websockets library): after a correct 101 (sent in the same write as
          a first text frame) it reads one client frame, sends an invalid frame (RSV1 without
          any negotiated extension, or reserved opcode 0x3) and a valid one, reads a second
          client frame, echoes it, sends close 1000 "bye" and hangs up.

TLS: --cert/--key/--ca are DER files (leaf, PKCS#8 key, CA), as the Rust test kit writes them.
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import ssl
import struct
import sys
import tempfile

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

HELLO = '{"hello":"from the server","before":"the client says anything"}'
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def summary(msg):
    if len(msg) > 4096:
        return {"len": len(msg)}
    if isinstance(msg, str):
        return msg
    return {"b64": base64.b64encode(msg).decode()}


def reply_for(msg):
    if isinstance(msg, str):
        return '{"echo":' + msg + "}"
    return b"echo:" + msg


def split(msg, n):
    step = max(1, -(-len(msg) // n))
    return [msg[i : i + step] for i in range(0, len(msg), step)]


def tls_context(args):
    if not args.cert:
        return None
    with open(args.cert, "rb") as f:
        pem = ssl.DER_cert_to_PEM_cert(f.read())
    if args.ca:
        with open(args.ca, "rb") as f:
            pem += ssl.DER_cert_to_PEM_cert(f.read())
    with open(args.key, "rb") as f:
        b64 = base64.b64encode(f.read()).decode()
    key = "-----BEGIN PRIVATE KEY-----\n"
    key += "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    key += "\n-----END PRIVATE KEY-----\n"
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as d:
        cp, kp = os.path.join(d, "chain.pem"), os.path.join(d, "key.pem")
        with open(cp, "w") as f:
            f.write(pem)
        with open(kp, "w") as f:
            f.write(key)
        ctx.load_cert_chain(cp, kp)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def compression_kwargs(mode):
    if mode == "none":
        return {"compression": None}
    if mode == "no-context-takeover":
        factory = ServerPerMessageDeflateFactory(
            server_no_context_takeover=True,
            client_no_context_takeover=True,
            compress_settings={"memLevel": 5},
        )
        return {"compression": None, "extensions": [factory]}
    return {"compression": "deflate"}


async def run_library_server(args):
    async def handler(ws):
        received = []
        if args.mode == "hello":
            await ws.send(HELLO)
        try:
            async for msg in ws:
                received.append(summary(msg))
                reply = reply_for(msg)
                if args.fragment_replies > 1:
                    await ws.send(split(reply, args.fragment_replies))
                else:
                    await ws.send(reply)
        except ConnectionClosed:
            pass
        await ws.wait_closed()
        emit(
            {
                "event": "closed",
                "path": ws.request.path,
                "extensions": ws.response.headers.get("Sec-WebSocket-Extensions"),
                "received": received,
                "close_code": ws.close_code,
                "close_reason": ws.close_reason,
            }
        )

    kwargs = compression_kwargs(args.compression)
    async with serve(
        handler,
        args.host,
        args.port,
        ssl=tls_context(args),
        max_size=None,
        ping_interval=None,
        **kwargs,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        emit({"port": port})
        await asyncio.Future()


def frame(opcode, payload, rsv1=False):
    """An unmasked server frame."""
    b0 = 0x80 | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([b0, n])
    elif n < 65536:
        head = bytes([b0, 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, 127]) + struct.pack("!Q", n)
    return head + payload


async def read_frame(reader):
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
    data = await reader.readexactly(n)
    return b0 & 0x0F, bytes(c ^ mask[i % 4] for i, c in enumerate(data))


async def run_bad_server(args):
    bad = (
        frame(0x1, b"not really deflated", rsv1=True)
        if args.mode == "bad-rsv1"
        else frame(0x3, b"reserved opcode")
    )

    async def handler(reader, writer):
        received = []
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            key = b""
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"sec-websocket-key:"):
                    key = line.split(b":", 1)[1].strip()
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                + frame(0x1, b"before-bad")
            )
            await writer.drain()
            _, p = await read_frame(reader)
            received.append(p.decode())
            writer.write(bad + frame(0x1, b"after-bad"))
            await writer.drain()
            _, p = await read_frame(reader)
            received.append(p.decode())
            writer.write(frame(0x1, b"echo:" + p) + frame(0x8, struct.pack("!H", 1000) + b"bye"))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            received.append({"error": str(e)})
        finally:
            writer.close()
            emit({"event": "closed", "received": received})

    server = await asyncio.start_server(handler, args.host, args.port, ssl=tls_context(args))
    emit({"port": server.sockets[0].getsockname()[1]})
    async with server:
        await server.serve_forever()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--ca")
    p.add_argument(
        "--compression", choices=["default", "none", "no-context-takeover"], default="default"
    )
    p.add_argument("--mode", choices=["echo", "hello", "bad-rsv1", "bad-opcode"], default="echo")
    p.add_argument("--fragment-replies", type=int, default=1)
    args = p.parse_args()
    run = run_bad_server if args.mode.startswith("bad-") else run_library_server
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
