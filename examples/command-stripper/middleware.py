#!/usr/bin/env python3
# /// script
# requires-python = ">=3.9"
# dependencies = ["websockets>=12"]
# ///
"""command-stripper -- removes dangerous shell commands from LLM API responses.

Only JSON responses of the chat/completions/responses/messages endpoints are sent here (the
filter is evaluated inside greyproxyd). greyproxyd hands over the body already decompressed
(gzip/deflate/zstd/br), so plain-text matching works; when this middleware rewrites the body,
greyproxyd drops the upstream Content-Encoding and fixes the framing.

Each match is replaced by
    [STRIPPED: command removed by middleware -- flagged as: <label>]
and the decision is tagged {"command-stripper.flags": [labels...]}.
"""

import json
import logging
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "_lib"))

from greyproxy_middleware import (  # noqa: E402
    decode_body,
    passthrough,
    rewrite_response,
    run,
    walk,
)

log = logging.getLogger("command-stripper")

# A command ends at a newline or a shell separator.
_END = r"[^\n;&|]*"
# "/" (optionally "/*") not followed by more path: the root itself.
_ROOT = r"/\*?(?![\w.~/-])"

RULES = [
    ("rm -rf /", re.compile(
        r"\brm\s+(?:-{1,2}[\w-]+\s+)*-[a-zA-Z]*(?:r[a-zA-Z]*f|f[a-zA-Z]*r)[a-zA-Z]*"
        r"(?:\s+-{1,2}[\w-]+)*\s+" + _ROOT)),
    ("mkfs", re.compile(r"\bmkfs(?:\.[A-Za-z0-9]+)?\s" + _END)),
    ("dd to device", re.compile(r"\bdd\s[^\n;&|]*\bof=/dev/" + _END)),
    ("chmod -R 777 /", re.compile(r"\bchmod\s+(?:-R\s+777|777\s+-R)\s+" + _ROOT)),
    ("pipe to shell", re.compile(r"\b(?:curl|wget)\b[^\n;&|]*\|\s*(?:sudo\s+)?(?:ba|z|da|k)?sh\b")),
    ("fork bomb", re.compile(r":\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:")),
    ("overwrite disk device", re.compile(r">\s*/dev/(?:sd[a-z]|hd[a-z]|nvme\d+n\d+|vd[a-z])\w*")),
    ("shutdown now", re.compile(r"\bshutdown\s+(?:-[a-zA-Z]+\s+)*now\b")),
    ("init 0", re.compile(r"\binit\s+0\b")),
]


def marker(label: str) -> str:
    return f"[STRIPPED: command removed by middleware -- flagged as: {label}]"


def strip_text(text: str, flags: list) -> str:
    for label, rx in RULES:
        new, n = rx.subn(marker(label), text)
        if n:
            text = new
            if label not in flags:
                flags.append(label)
    return text


def on_response(msg):
    mid = msg["id"]
    if msg.get("response_body") is None:
        log.warning("%s %s: response over max_body_bytes, not inspected", msg.get("host"), msg.get("uri"))
        return passthrough(mid)
    raw = decode_body(msg["response_body"])
    if not raw:
        return passthrough(mid)
    flags = []
    text = raw.decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except ValueError:
        new = strip_text(text, flags)
    else:
        # Work on decoded strings: a command in a JSON string has its newlines escaped.
        new = json.dumps(walk(doc, lambda s: strip_text(s, flags)), ensure_ascii=False)
    if not flags:
        return passthrough(mid)
    log.warning("%s %s (container %r): stripped %s", msg.get("host"), msg.get("uri"),
                msg.get("container", ""), ", ".join(flags))
    return rewrite_response(mid, body=new.encode("utf-8"), tags={"command-stripper.flags": flags})


if __name__ == "__main__":
    run(
        name="command-stripper",
        handle_response=on_response,
        filters_response={
            "path": ["/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages"],
            "content_type": ["application/json"],
        },
        max_body_bytes=2_097_152,
    )
