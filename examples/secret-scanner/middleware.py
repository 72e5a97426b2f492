#!/usr/bin/env python3
# /// script
# requires-python = ">=3.9"
# dependencies = ["websockets>=12"]
# ///
"""secret-scanner -- blocks outbound requests whose body contains leaked credentials.

Every request body is scanned with a set of regexes (AWS keys, OpenAI-style `sk-` keys, GitHub
tokens, private keys, Slack and Stripe tokens, passwords in JSON, bearer tokens, generic
api_key=... assignments). On a hit the request is denied with 403 and a message naming the
kinds of secret found (never the secret itself), tagged {"secret-scanner.labels": [...]}.

OAuth token endpoints legitimately carry secrets in their bodies and are skipped.
Run it with the default on_disconnect = "deny": if the scanner is down, nothing leaks.
"""

import logging
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "_lib"))

from greyproxy_middleware import allow, decode_body, deny, run  # noqa: E402

log = logging.getLogger("secret-scanner")

# Hosts whose request bodies carry credentials legitimately (OAuth token exchanges).
SKIP_HOSTS = {
    "login.microsoftonline.com",
    "accounts.google.com",
    "oauth2.googleapis.com",
}

# (label, pattern) -- checked in this order; each label is reported once.
RULES = [
    ("aws-access-key-id", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA)[0-9A-Z]{16}\b")),
    ("aws-secret-access-key", re.compile(
        r"(?i)aws_?secret_?(?:access_?)?key[\"'\s]*[:=]\s*[\"']?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])")),
    ("private-key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----")),
    ("github-token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}")),
    ("github-pat", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}")),
    ("slack-token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("stripe-live-key", re.compile(r"\b(?:sk|rk)_live_[A-Za-z0-9]{20,}")),
    # OpenAI / Anthropic style keys: "sk-" then 20 or more letters, digits, "-" or "_".
    ("sk-api-key", re.compile(r"sk-[A-Za-z0-9_-]{20,}")),
    ("bearer-token", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{20,}=*")),
    ("generic-api-key", re.compile(
        r"(?i)\b(?:api[_-]?key|api[_-]?token|access[_-]?token|auth[_-]?token|secret[_-]?key|client[_-]?secret)"
        r"[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9_\-./+]{16,}")),
    ("json-password", re.compile(r"(?i)\"(?:password|passwd|pwd)\"\s*:\s*\"[^\"]+\"")),
]


def strip_port(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [v6]:port
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def scan(text: str) -> list:
    return [label for label, rx in RULES if rx.search(text)]


def on_request(msg):
    mid = msg["id"]
    host = strip_port(msg.get("host", ""))
    if host in SKIP_HOSTS:
        return allow(mid)
    if msg.get("body") is None:
        log.warning("%s %s: body over max_body_bytes, not scanned", msg.get("method"), msg.get("uri"))
        return allow(mid)
    body = decode_body(msg["body"])
    if not body:
        return allow(mid)
    labels = scan(body.decode("utf-8", "replace"))
    if not labels:
        return allow(mid)
    log.warning("blocked %s %s %s (container %r): %s", msg.get("method"), msg.get("host"),
                msg.get("uri"), msg.get("container", ""), ", ".join(labels))
    text = (
        f"Request blocked: detected leaked credentials ({', '.join(labels)}). "
        "Remove secrets from the request body before retrying."
    )
    return deny(mid, status=403, body=text.encode(), tags={"secret-scanner.labels": labels})


if __name__ == "__main__":
    run(name="secret-scanner", handle_request=on_request, max_body_bytes=2_097_152)
