#!/usr/bin/env python3
# /// script
# requires-python = ">=3.9"
# dependencies = ["websockets>=12"]
# ///
"""passthrough -- logs every request and response and lets everything through.

Copy this file as the starting point of a new middleware. Logs go to stderr (greyproxyd shows
them as `mw[<label>] ...` in stdio mode).
"""

import logging
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "_lib"))

from greyproxy_middleware import allow, decode_body, passthrough, run  # noqa: E402

log = logging.getLogger("passthrough")


def size(b64):
    """Body size for the log; `null` means the body was over the size limit."""
    if b64 is None:
        return "over limit"
    return f"{len(decode_body(b64))} bytes"


def on_request(msg):
    log.info(
        "request %s %s %s body=%s container=%r tls=%s",
        msg.get("method"), msg.get("host"), msg.get("uri"), size(msg.get("body")),
        msg.get("container", ""), msg.get("tls"),
    )
    return allow(msg["id"])


def on_response(msg):
    log.info(
        "response %s %s %s -> %s body=%s duration=%sms container=%r",
        msg.get("method"), msg.get("host"), msg.get("uri"), msg.get("status_code"),
        size(msg.get("response_body")), msg.get("duration_ms"), msg.get("container", ""),
    )
    return passthrough(msg["id"])


if __name__ == "__main__":
    run(
        name="passthrough",
        handle_request=on_request,
        handle_response=on_response,
        max_body_bytes=1_048_576,
    )
