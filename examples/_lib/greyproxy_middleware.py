"""Tiny helper for writing greyproxy middlewares in Python (protocol v1).

A middleware is a separate program that greyproxyd consults for HTTP requests and/or
responses. The same source runs under both transports; the transport is picked from the
environment:

    GREYPROXY_TRANSPORT=stdio   NDJSON on stdin/stdout (greyproxyd sets this when it spawns
                                the program with --middleware-cmd / `command = [...]`)
    anything else / unset       WebSocket server (greyproxyd dials it with --middleware URL)
    GREYPROXY_WS_PORT           WebSocket listen port (default 9000)
    GREYPROXY_WS_HOST           WebSocket bind address (default 127.0.0.1 -- loopback only;
                                set 0.0.0.0 explicitly to accept remote proxies)

The stdio transport needs nothing but the standard library. The WebSocket transport needs the
`websockets` package (>= 12), which is imported only when that transport is used.

Usage:

    from greyproxy_middleware import run, allow, deny, decode_body

    def on_request(msg):
        if b"secret" in decode_body(msg.get("body")):
            return deny(msg["id"], status=403, body=b"no secrets please")
        return allow(msg["id"])

    run(name="my-mw", handle_request=on_request)

Handlers are plain synchronous functions taking the decoded message (a dict) and returning a
decision dict built with the helpers below (or None, meaning allow/passthrough). An exception in
a handler is logged and answered with allow (requests) / passthrough (responses), so the
connection stays up. Handlers are never called concurrently.

Logging goes to stderr only. In stdio mode stdout carries the protocol; the helper moves the
real stdout aside and points file descriptor 1 (and sys.stdout) at stderr, so a stray print()
in a handler -- or a subprocess writing to its stdout -- cannot corrupt the protocol stream.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import threading
import traceback
from typing import Any, Callable, Optional

__all__ = [
    "allow",
    "passthrough",
    "deny",
    "block",
    "rewrite_request",
    "rewrite_response",
    "decode_body",
    "encode_body",
    "walk",
    "run",
    "PROTOCOL_VERSION",
]

PROTOCOL_VERSION = 1
HELLO_TIMEOUT_S = 5.0
DEFAULT_WS_PORT = 9000
DEFAULT_WS_HOST = "127.0.0.1"

log = logging.getLogger("greyproxy_middleware")

Handler = Callable[[dict], Optional[dict]]


# --------------------------------------------------------------------------------------------
# Body helpers
# --------------------------------------------------------------------------------------------


def _to_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    raise TypeError(f"body must be bytes or str, not {type(body).__name__}")


def encode_body(body: Any) -> str:
    """Bytes (or str, encoded as UTF-8) -> standard base64 with padding, as the wire wants."""
    return base64.b64encode(_to_bytes(body)).decode("ascii")


def decode_body(b64: Optional[str]) -> bytes:
    """Decodes a base64 body field. Returns b"" for both an absent and a `null` body.

    `null` means the body was larger than the effective max_body_bytes; check
    `msg.get("body") is None` yourself when you need to tell "empty" from "not sent".
    """
    if not b64:
        return b""
    return base64.b64decode(b64)


def walk(obj, fn):
    """Applies fn to every string value (not keys) of a parsed JSON document; returns the copy."""
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, list):
        return [walk(v, fn) for v in obj]
    if isinstance(obj, dict):
        return {k: walk(v, fn) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------------------------
# Decision builders (all options keyword-only; `tags` included only when truthy)
# --------------------------------------------------------------------------------------------


def _decision(id: str, action: str, tags: Optional[dict]) -> dict:
    d: dict = {"type": "decision", "id": id, "action": action}
    if tags:
        d["tags"] = tags
    return d


def allow(id: str, *, tags: Optional[dict] = None) -> dict:
    """Request hook: let the request continue unchanged."""
    return _decision(id, "allow", tags)


def passthrough(id: str, *, tags: Optional[dict] = None) -> dict:
    """Response hook: let the response continue unchanged."""
    return _decision(id, "passthrough", tags)


def deny(id: str, *, status: int = 403, body: Any = b"Blocked", tags: Optional[dict] = None) -> dict:
    """Request hook: reject the request with `status` and `body`; later middlewares are skipped."""
    d = _decision(id, "deny", tags)
    d["status_code"] = int(status)
    d["body"] = encode_body(body)
    return d


def block(id: str, *, status: int = 502, body: Any = b"Blocked", tags: Optional[dict] = None) -> dict:
    """Response hook: replace the response with `status` and `body`; later middlewares are skipped."""
    d = _decision(id, "block", tags)
    d["status_code"] = int(status)
    d["body"] = encode_body(body)
    return d


def rewrite_request(
    id: str,
    *,
    headers: Optional[dict] = None,
    body: Any = None,
    tags: Optional[dict] = None,
) -> dict:
    """Request hook: replace the body (if given; b"" = empty body) and set/replace headers.

    `headers` maps a name to a list of values (a bare string is wrapped); [] removes the header.
    """
    d = _decision(id, "rewrite", tags)
    if headers is not None:
        d["headers"] = _norm_headers(headers)
    if body is not None:
        d["body"] = encode_body(body)
    return d


def rewrite_response(
    id: str,
    *,
    status: Optional[int] = None,
    headers: Optional[dict] = None,
    body: Any = None,
    tags: Optional[dict] = None,
) -> dict:
    """Response hook: change status (if given), body (if given; drops Content-Encoding) and headers."""
    d = _decision(id, "rewrite", tags)
    if status is not None:
        d["status_code"] = int(status)
    if headers is not None:
        d["headers"] = _norm_headers(headers)
    if body is not None:
        d["body"] = encode_body(body)
    return d


def _norm_headers(headers: dict) -> dict:
    out = {}
    for k, v in headers.items():
        if v is None:
            out[str(k)] = []
        elif isinstance(v, str):
            out[str(k)] = [v]
        else:
            out[str(k)] = [str(x) for x in v]
    return out


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------


class _Dispatcher:
    def __init__(self, handle_request: Optional[Handler], handle_response: Optional[Handler]):
        self.handlers = {"http-request": handle_request, "http-response": handle_response}
        # Handlers are never run concurrently (WS connections each have their own task).
        self.lock = threading.Lock()

    def dispatch(self, raw: Any) -> Optional[dict]:
        """One inbound frame -> the decision to send back, or None for "no reply"."""
        if isinstance(raw, (bytes, bytearray)):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                log.warning("frame is not UTF-8, skipping")
                return None
        raw = raw.strip()
        if not raw:
            return None
        try:
            msg = json.loads(raw)
        except ValueError as e:
            log.warning("malformed frame, skipping: %s", e)
            return None
        if not isinstance(msg, dict):
            log.warning("frame is not a JSON object, skipping")
            return None
        mtype = msg.get("type")
        if mtype not in self.handlers:
            log.warning("unknown message type %r, not replying", mtype)
            return None
        mid = msg.get("id")
        if not isinstance(mid, str):
            log.warning("%s message without a string id, skipping", mtype)
            return None
        fallback = allow if mtype == "http-request" else passthrough
        handler = self.handlers[mtype]
        if handler is None:
            # We did not ask for this hook; never leave the proxy waiting.
            return fallback(mid)
        with self.lock:
            try:
                decision = handler(msg)
            except Exception:
                log.error("handler for %s raised; replying %s:\n%s", mtype,
                          fallback.__name__, traceback.format_exc().rstrip())
                return fallback(mid)
        if decision is None:
            return fallback(mid)
        if not isinstance(decision, dict):
            log.error("handler for %s returned %r, not a dict; replying %s", mtype,
                      type(decision).__name__, fallback.__name__)
            return fallback(mid)
        decision.setdefault("type", "decision")
        decision["id"] = mid
        return decision


def _encode(obj: dict) -> str:
    # json.dumps never emits raw newlines, so one document == one line.
    return json.dumps(obj, separators=(",", ":"))


def _check_proxy_hello(raw: Any, min_version: int) -> bool:
    if isinstance(raw, (bytes, bytearray)):
        raw = raw.decode("utf-8", "replace")
    try:
        hello = json.loads(raw)
    except ValueError as e:
        log.error("expected the proxy hello, got malformed JSON: %s", e)
        return False
    if not isinstance(hello, dict) or hello.get("type") != "hello":
        log.error("expected the proxy hello, got %r", raw[:200])
        return False
    version = hello.get("version")
    log.info("proxy hello: protocol version %s", version)
    if isinstance(version, int) and version < min_version:
        log.warning("proxy speaks up to v%s but we need v>=%s; it will refuse us", version, min_version)
    return True


# --------------------------------------------------------------------------------------------
# Transports
# --------------------------------------------------------------------------------------------


def _run_stdio(hello: dict, dispatcher: _Dispatcher, min_version: int) -> None:
    # Keep the real stdout for protocol lines only; everything else written to fd 1 or
    # sys.stdout from now on (print(), child processes) lands on stderr.
    sys.stdout.flush()
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    out = os.fdopen(out_fd, "wb", buffering=0)
    inp = sys.stdin.buffer

    def write(obj: dict) -> None:
        out.write(_encode(obj).encode("utf-8") + b"\n")

    line = inp.readline()
    while line and not line.strip():
        line = inp.readline()
    if not line:
        log.info("stdin closed before the proxy hello; exiting")
        return
    if not _check_proxy_hello(line, min_version):
        return
    write(hello)
    log.info("ready (stdio)")
    try:
        for line in inp:
            reply = dispatcher.dispatch(line)
            if reply is not None:
                write(reply)
    except BrokenPipeError:
        log.info("stdout closed; exiting")
        return
    log.info("stdin closed; exiting")


def _run_ws(hello: dict, dispatcher: _Dispatcher, min_version: int) -> None:
    import asyncio
    import signal

    try:
        import websockets  # noqa: F401  (lazy: only the WS transport needs it)
    except ImportError:
        log.error("the WebSocket transport needs the 'websockets' package (pip install 'websockets>=12'); "
                  "or run under greyproxyd with --middleware-cmd (stdio)")
        sys.exit(2)

    host = os.environ.get("GREYPROXY_WS_HOST") or DEFAULT_WS_HOST
    port_s = os.environ.get("GREYPROXY_WS_PORT") or str(DEFAULT_WS_PORT)
    try:
        port = int(port_s)
    except ValueError:
        log.error("GREYPROXY_WS_PORT=%r is not a port number", port_s)
        sys.exit(2)

    async def handler(ws, *_legacy_path):
        peer = getattr(ws, "remote_address", None)
        try:
            first = await asyncio.wait_for(ws.recv(), HELLO_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning("no proxy hello from %s within %.0f s; closing", peer, HELLO_TIMEOUT_S)
            await ws.close()
            return
        except websockets.ConnectionClosed:
            return
        if not _check_proxy_hello(first, min_version):
            await ws.close()
            return
        await ws.send(_encode(hello))
        log.info("proxy connected from %s", peer)
        loop = asyncio.get_running_loop()
        try:
            async for frame in ws:
                # Run the (synchronous) handler off the event loop so pings keep flowing.
                reply = await loop.run_in_executor(None, dispatcher.dispatch, frame)
                if reply is not None:
                    await ws.send(_encode(reply))
        except websockets.ConnectionClosed:
            pass
        log.info("proxy %s disconnected", peer)

    async def main():
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
            except (NotImplementedError, RuntimeError):
                pass
        # max_size=None: bodies arrive inline (base64), far beyond websockets' 1 MiB default.
        async with websockets.serve(handler, host, port, max_size=None, compression=None):
            log.info("listening on ws://%s:%d/middleware (any path works)", host, port)
            await stop
        log.info("shutting down")

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except OSError as e:
        log.error("cannot listen on %s:%d: %s", host, port, e)
        sys.exit(1)


def run(
    *,
    name: str = "",
    handle_request: Optional[Handler] = None,
    handle_response: Optional[Handler] = None,
    filters_request: Optional[dict] = None,
    filters_response: Optional[dict] = None,
    max_body_bytes: int = 1_048_576,
    min_version: int = 1,
    max_version: int = 1,
) -> None:
    """Serve the middleware until the proxy goes away (stdio) or until SIGINT/SIGTERM (WS)."""
    if handle_request is None and handle_response is None:
        raise ValueError("run() needs handle_request and/or handle_response")

    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s [{name or 'middleware'}] %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    hooks = []
    if handle_request is not None:
        spec: dict = {"type": "http-request"}
        if filters_request:
            spec["filters"] = filters_request
        hooks.append(spec)
    if handle_response is not None:
        spec = {"type": "http-response"}
        if filters_response:
            spec["filters"] = filters_response
        hooks.append(spec)
    hello = {
        "type": "hello",
        "name": name,
        "min_version": min_version,
        "max_version": max_version,
        "hooks": hooks,
        "max_body_bytes": max_body_bytes,
    }
    dispatcher = _Dispatcher(handle_request, handle_response)

    if os.environ.get("GREYPROXY_TRANSPORT", "ws") == "stdio":
        try:
            _run_stdio(hello, dispatcher, min_version)
        except KeyboardInterrupt:
            pass
    else:
        _run_ws(hello, dispatcher, min_version)
