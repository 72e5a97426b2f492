#!/usr/bin/env python3
# /// script
# requires-python = ">=3.9"
# dependencies = ["websockets>=12"]
# ///
"""audit-log -- one JSON line per request and per response, nothing else.

Every request and response greyproxyd sees is appended to audit.jsonl in the working directory
(override with AUDIT_LOG_FILE) as one compact JSON object:

  request:  ts, direction, container, method, host, uri, proto, body_bytes, tls
  response: ts, direction, container, method, host, uri, status_code, request_body_bytes,
            response_body_bytes, duration_ms

A *_bytes field is null when greyproxyd did not send the body (over the effective
max_body_bytes). This middleware declares max_body_bytes 0 (no limit of its own). It always
answers allow / passthrough, without tags, also when the file cannot be written. Run it with
on_disconnect = "allow".
"""

import json
import logging
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "_lib"))

from greyproxy_middleware import allow, decode_body, passthrough, run  # noqa: E402

log = logging.getLogger("audit-log")

OUT_FILE = os.environ.get("AUDIT_LOG_FILE") or "audit.jsonl"

_lock = threading.Lock()


def nbytes(b64):
    return None if b64 is None else len(decode_body(b64))


def now():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def write(record):
    line = json.dumps(record, separators=(",", ":")) + "\n"
    with _lock:
        try:
            with open(OUT_FILE, "a", encoding="utf-8") as f:
                f.write(line)
        except OSError as e:
            log.error("cannot append to %s: %s", OUT_FILE, e)


def on_request(msg):
    try:
        write({
            "ts": now(),
            "direction": "request",
            "container": msg.get("container", ""),
            "method": msg.get("method"),
            "host": msg.get("host"),
            "uri": msg.get("uri"),
            "proto": msg.get("proto"),
            "body_bytes": nbytes(msg.get("body")),
            "tls": msg.get("tls"),
        })
    except Exception as e:  # never get in the way of traffic
        log.error("audit record failed: %s", e)
    return allow(msg["id"])


def on_response(msg):
    try:
        write({
            "ts": now(),
            "direction": "response",
            "container": msg.get("container", ""),
            "method": msg.get("method"),
            "host": msg.get("host"),
            "uri": msg.get("uri"),
            "status_code": msg.get("status_code"),
            "request_body_bytes": nbytes(msg.get("request_body")),
            "response_body_bytes": nbytes(msg.get("response_body")),
            "duration_ms": msg.get("duration_ms"),
        })
    except Exception as e:
        log.error("audit record failed: %s", e)
    return passthrough(msg["id"])


if __name__ == "__main__":
    run(name="audit-log", handle_request=on_request, handle_response=on_response, max_body_bytes=0)
