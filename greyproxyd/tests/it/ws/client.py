#!/usr/bin/env python3
"""WebSocket client for the greyproxyd WebSocket capture tests and benchmark.

Reads one JSON object on stdin, runs it, prints one JSON object on stdout, exits 0 (non-zero
with the reason on stderr when anything fails). Input:

  url          ws:// or wss:// URL of the origin
  via          direct | http (websockets' own proxy=, i.e. CONNECT) | socks (SOCKS5 handshake
               done here, the socket handed to websockets) | absolute (plain ws:// sent to the
               HTTP proxy as an absolute-form GET, no CONNECT)
  proxy        host:port of the proxy (not for direct)
  user         proxy user name (password "x"), optional
  cafile       root for wss (the daemon's ca-cert.pem through the proxy)
  compression  default | none | client-no-context-takeover
  mode         library (default) | raw | bench
  actions      library: {"send": text} {"send_binary": b64} {"send_fragments": [text...]}
               {"recv": n} {"ping": text} {"sleep": s} {"close": {"code": c, "reason": r}}
               raw: {"send_frame": text} {"read_until": text} {"read_eof": true}
  count, size  bench: messages and their approximate size; each is echoed by server.py

Output (library): received (texts, {"b64": …} for binary), extensions, pongs, close_code,
close_reason. Raw: status, received_hex (every byte after the 101 head). Bench: messages,
payload_bytes, seconds, cpu_seconds (this process).
"""

import asyncio
import base64
import json
import os
import socket
import ssl
import struct
import sys
import time
import urllib.parse

from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

WAIT = 20


def auth_header(user):
    return "Basic " + base64.b64encode(f"{user}:x".encode()).decode()


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("proxy closed during the handshake")
        buf += chunk
    return buf


def socks5(proxy, host, port, user):
    """A blocking SOCKS5 CONNECT to an IPv4 literal; returns the socket."""
    ph, pp = proxy.rsplit(":", 1)
    s = socket.create_connection((ph, int(pp)), timeout=WAIT)
    s.sendall(b"\x05\x01\x02" if user else b"\x05\x01\x00")
    ver, method = recv_exact(s, 2)
    if method == 0x02:
        u = user.encode()
        s.sendall(b"\x01" + bytes([len(u)]) + u + b"\x01x")
        if recv_exact(s, 2)[1] != 0:
            raise ConnectionError("SOCKS5 authentication refused")
    elif method != 0x00:
        raise ConnectionError(f"SOCKS5 method {method} refused")
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(host) + struct.pack("!H", port))
    rep = recv_exact(s, 10)
    if rep[1] != 0:
        raise ConnectionError(f"SOCKS5 CONNECT refused: {rep[1]}")
    s.settimeout(None)
    return s


def client_ssl(cfg):
    ctx = ssl.create_default_context(cafile=cfg["cafile"])
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def connect_kwargs(cfg):
    u = urllib.parse.urlsplit(cfg["url"])
    kw = {"max_size": None, "ping_interval": None, "open_timeout": WAIT, "proxy": None}
    comp = cfg.get("compression", "default")
    if comp == "none":
        kw["compression"] = None
    elif comp == "client-no-context-takeover":
        kw["compression"] = None
        kw["extensions"] = [
            ClientPerMessageDeflateFactory(
                client_no_context_takeover=True,
                server_no_context_takeover=True,
                compress_settings={"memLevel": 5},
            )
        ]
    if u.scheme == "wss":
        kw["ssl"] = client_ssl(cfg)
    via, user = cfg.get("via", "direct"), cfg.get("user")
    if via == "http":
        cred = f"{user}:x@" if user else ""
        kw["proxy"] = f"http://{cred}{cfg['proxy']}"
    elif via == "socks":
        kw["sock"] = socks5(cfg["proxy"], u.hostname, u.port, user)
        if u.scheme == "wss":
            kw["server_hostname"] = u.hostname
    elif via == "absolute":
        assert u.scheme == "ws", "absolute-form is for plain ws://"
        ph, pp = cfg["proxy"].rsplit(":", 1)
        kw["sock"] = socket.create_connection((ph, int(pp)), timeout=WAIT)
        kw["sock"].settimeout(None)
        if user:
            kw["additional_headers"] = {"Proxy-Authorization": auth_header(user)}
        # websockets writes an origin-form request line; a plain HTTP proxy needs the full URL.
        origin = f"http://{u.hostname}:{u.port}"
        plain_send = ClientProtocol.send_request

        def send_request(self, request):
            if request.path.startswith("/"):
                request.path = origin + request.path
            plain_send(self, request)

        ClientProtocol.send_request = send_request
    return kw


def shown(msg):
    if isinstance(msg, str):
        return msg
    return {"b64": base64.b64encode(msg).decode(), "len": len(msg)}


async def run_library(cfg):
    out = {"received": [], "pongs": 0}
    async with connect(cfg["url"], **connect_kwargs(cfg)) as ws:
        out["extensions"] = ws.response.headers.get("Sec-WebSocket-Extensions")
        for a in cfg.get("actions", []):
            if "send" in a:
                await ws.send(a["send"])
            elif "send_binary" in a:
                await ws.send(base64.b64decode(a["send_binary"]))
            elif "send_fragments" in a:
                await ws.send(list(a["send_fragments"]))
            elif "recv" in a:
                for _ in range(a["recv"]):
                    out["received"].append(shown(await asyncio.wait_for(ws.recv(), WAIT)))
            elif "ping" in a:
                waiter = await ws.ping(a["ping"])
                await asyncio.wait_for(waiter, WAIT)
                out["pongs"] += 1
            elif "sleep" in a:
                await asyncio.sleep(a["sleep"])
            elif "close" in a:
                await ws.close(a["close"]["code"], a["close"]["reason"])
            else:
                raise ValueError(f"unknown action {a}")
        await ws.close()
    out["close_code"] = ws.close_code
    out["close_reason"] = ws.close_reason
    return out


def mask_frame(opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


async def run_raw(cfg):
    """Upgrade by hand and exchange raw frames; reports every byte the server sent."""
    u = urllib.parse.urlsplit(cfg["url"])
    authority = f"{u.hostname}:{u.port}"
    if cfg.get("via") == "http":
        ph, pp = cfg["proxy"].rsplit(":", 1)
        reader, writer = await asyncio.open_connection(ph, int(pp))
        auth = f"Proxy-Authorization: {auth_header(cfg['user'])}\r\n" if cfg.get("user") else ""
        writer.write(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{auth}\r\n".encode())
        reply = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        if b" 200" not in reply.split(b"\r\n")[0]:
            raise ConnectionError(f"CONNECT refused: {reply!r}")
    else:
        reader, writer = await asyncio.open_connection(u.hostname, u.port)
    if u.scheme == "wss":
        await writer.start_tls(client_ssl(cfg), server_hostname=u.hostname)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {u.path or '/'} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    status = int(head.split(b" ", 2)[1])
    got = b""
    for a in cfg.get("actions", []):
        if "send_frame" in a:
            writer.write(mask_frame(0x1, a["send_frame"].encode()))
            await writer.drain()
        elif "read_until" in a:
            marker = a["read_until"].encode()
            while marker not in got:
                chunk = await asyncio.wait_for(reader.read(65536), WAIT)
                if not chunk:
                    raise ConnectionError(f"EOF before {marker!r}; got {got!r}")
                got += chunk
        elif "read_eof" in a:
            while chunk := await asyncio.wait_for(reader.read(65536), WAIT):
                got += chunk
        else:
            raise ValueError(f"unknown action {a}")
    writer.close()
    return {"status": status, "received_hex": got.hex()}


def bench_message(i, size):
    """A ~size-byte JSON message, similar to its neighbours (like an agent's chat events)."""
    body = {
        "type": "response.output_text.delta",
        "sequence_number": i,
        "item_id": f"msg_{i // 50:08d}",
        "delta": "",
    }
    filler = f"token {i} of the streamed answer about src/capture/ws/tap.rs; "
    base = len(json.dumps(body))
    body["delta"] = (filler * (size // len(filler) + 1))[: max(0, size - base)]
    return json.dumps(body)


async def run_bench(cfg):
    n, size = cfg["count"], cfg["size"]
    msgs = [bench_message(i, size) for i in range(n)]
    async with connect(cfg["url"], **connect_kwargs(cfg)) as ws:
        done = asyncio.get_running_loop().create_future()

        async def reader():
            for i in range(n):
                r = await ws.recv()
                if r != '{"echo":' + msgs[i] + "}":
                    raise AssertionError(f"reply {i} differs")
            done.set_result(None)

        start, cpu = time.perf_counter(), time.process_time()
        task = asyncio.create_task(reader())
        for m in msgs:
            await ws.send(m)
        await asyncio.wait_for(done, 600)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        await task
        ext = ws.response.headers.get("Sec-WebSocket-Extensions")
    return {
        "messages": n,
        "payload_bytes": sum(len(m) for m in msgs),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "extensions": ext,
    }


def main():
    cfg = json.load(sys.stdin)
    mode = cfg.get("mode", "library")
    run = {"library": run_library, "raw": run_raw, "bench": run_bench}[mode]
    out = asyncio.run(run(cfg))
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
