#!/usr/bin/env python3
# /// script
# requires-python = ">=3.9"
# dependencies = ["websockets>=12"]
# ///
"""pii-redactor -- the upstream LLM never sees personal data; the client never notices.

Requests (POST JSON to OpenAI / Anthropic / Google APIs): e-mail addresses, US social security
numbers, phone numbers and "Firstname Lastname" pairs inside JSON string values are replaced by
placeholders (EMAIL_A, PERSON_B, PHONE_C, ... and numeric suffixes after the 26th), answered
with `rewrite` + tags {"pii.redacted": n}.

Responses from the same hosts: every placeholder is replaced back by the original text
(longest placeholder first), answered with `rewrite` + tags {"pii.restored": n}. greyproxyd
sends the response body decompressed and drops Content-Encoding when a rewrite replaces it.

The mapping lives in this process only (there is no request/response correlation id on the
wire): one placeholder per distinct value, shared by all clients, lost on restart.
"""

import json
import logging
import os
import re
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "_lib"))

from greyproxy_middleware import (  # noqa: E402
    allow,
    decode_body,
    passthrough,
    rewrite_request,
    rewrite_response,
    run,
    walk,
)

log = logging.getLogger("pii-redactor")

HOSTS = ["*.openai.com", "*.anthropic.com", "*.googleapis.com"]

# Order matters: SSNs before phone numbers (a phone regex could eat an SSN otherwise).
PATTERNS = [
    ("EMAIL", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")),
    ("SSN", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    ("PHONE", re.compile(r"(?<![\w+])(?:\+?1[-.\s]?)?(?:\(\d{3}\)\s?|\d{3}[-.\s])\d{3}[-.\s]\d{4}\b")),
    ("PERSON", re.compile(r"\b[A-Z][a-z]+ [A-Z][a-z]+\b")),
]

# Capitalised words that start sentences/titles far more often than they start names.
NOT_FIRST_NAMES = {
    "The", "This", "That", "These", "Those", "Hello", "Hi", "Dear", "Thanks", "Thank", "Please",
    "What", "When", "Where", "Which", "Who", "Why", "How", "You", "Your", "My", "Our", "New",
    "United", "North", "South", "East", "West", "Good", "Best", "Kind", "Happy", "Monday",
    "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "Human", "Assistant",
}

_lock = threading.Lock()
_to_placeholder = {}  # original -> placeholder
_to_original = {}     # placeholder -> original
_counter = [0]


def _suffix(n: int) -> str:
    return chr(ord("A") + n) if n < 26 else str(n + 1)


def placeholder_for(kind: str, value: str) -> str:
    with _lock:
        ph = _to_placeholder.get(value)
        if ph is None:
            ph = f"{kind}_{_suffix(_counter[0])}"
            _counter[0] += 1
            _to_placeholder[value] = ph
            _to_original[ph] = value
        return ph


def redact_text(text: str, count: list) -> str:
    for kind, rx in PATTERNS:
        def sub(m, kind=kind):
            value = m.group(0)
            if kind == "PERSON" and value.split(" ", 1)[0] in NOT_FIRST_NAMES:
                return value
            if value in _to_original:  # already a placeholder
                return value
            count[0] += 1
            return placeholder_for(kind, value)
        text = rx.sub(sub, text)
    return text


def on_request(msg):
    mid = msg["id"]
    if msg.get("body") is None:
        log.warning("request body over max_body_bytes: forwarded unredacted")
        return allow(mid)
    raw = decode_body(msg["body"])
    if not raw:
        return allow(mid)
    count = [0]
    text = raw.decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except ValueError:
        new = redact_text(text, count)
    else:
        new = json.dumps(walk(doc, lambda s: redact_text(s, count)), ensure_ascii=False)
    if count[0] == 0:
        return allow(mid)
    log.info("%s %s: redacted %d value(s)", msg.get("host"), msg.get("uri"), count[0])
    return rewrite_request(mid, body=new.encode("utf-8"), tags={"pii.redacted": count[0]})


_restore_cache = [0, None, {}]  # (mapping size, compiled regex, snapshot of the mapping)


def restore_text(text: str, count: list) -> str:
    with _lock:
        if not _to_original:
            return text
        if _restore_cache[0] != len(_to_original):
            names = sorted(_to_original, key=len, reverse=True)
            _restore_cache[:] = [
                len(_to_original),
                re.compile(r"(?<![A-Za-z0-9_])(?:" + "|".join(map(re.escape, names)) + r")(?![A-Za-z0-9])"),
                dict(_to_original),
            ]
        _, rx, originals = _restore_cache

    def sub(m):
        count[0] += 1
        return originals[m.group(0)]

    return rx.sub(sub, text)


def on_response(msg):
    mid = msg["id"]
    if msg.get("response_body") is None:
        return passthrough(mid)
    raw = decode_body(msg["response_body"])
    if not raw:
        return passthrough(mid)
    count = [0]
    text = raw.decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except ValueError:
        new = restore_text(text, count)
    else:
        # Restore inside decoded strings so JSON escaping stays correct.
        new = json.dumps(walk(doc, lambda s: restore_text(s, count)), ensure_ascii=False)
    if count[0] == 0:
        return passthrough(mid)
    log.info("%s %s: restored %d placeholder(s)", msg.get("host"), msg.get("uri"), count[0])
    return rewrite_response(mid, body=new.encode("utf-8"), tags={"pii.restored": count[0]})


if __name__ == "__main__":
    run(
        name="pii-redactor",
        handle_request=on_request,
        handle_response=on_response,
        filters_request={"host": HOSTS, "method": ["POST"], "content_type": ["application/json"]},
        filters_response={"host": HOSTS, "content_type": ["application/json"]},
        max_body_bytes=2_097_152,
    )
