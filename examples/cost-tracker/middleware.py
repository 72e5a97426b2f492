#!/usr/bin/env python3
# /// script
# requires-python = ">=3.9"
# dependencies = ["websockets>=12"]
# ///
"""cost-tracker -- estimates what each LLM call costs, per client, without touching traffic.

JSON responses from *.openai.com and *.anthropic.com are parsed for `model` and `usage`
(OpenAI: prompt_tokens / completion_tokens, or input_tokens / output_tokens for the Responses
API; Anthropic: input_tokens / output_tokens). The price comes from the longest model-name
prefix in PRICES (USD per million tokens; illustrative -- edit to your contract).

Every priced response appends one JSON line to costs.jsonl in the working directory (override
with COST_TRACKER_FILE) with the per-container running total, and is answered `passthrough`
with tags cost.model / cost.prompt_tokens / cost.completion_tokens / cost.usd, which greyproxyd
shows as a tagged-passthrough row in Activity. Run it with on_disconnect = "allow": it only
observes.
"""

import json
import logging
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "_lib"))

from greyproxy_middleware import decode_body, passthrough, run  # noqa: E402

log = logging.getLogger("cost-tracker")

OUT_FILE = os.environ.get("COST_TRACKER_FILE") or "costs.jsonl"

# model-name prefix -> (USD per 1M prompt tokens, USD per 1M completion tokens)
PRICES = {
    "gpt-5-nano": (0.05, 0.40),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5": (1.25, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o4-mini": (1.10, 4.40),
    "o3-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "o1-mini": (1.10, 4.40),
    "o1": (15.00, 60.00),
    "claude-opus-4-5": (5.00, 25.00),
    "claude-opus-4": (15.00, 75.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-haiku-4": (1.00, 5.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-opus": (15.00, 75.00),
    "claude-3-haiku": (0.25, 1.25),
}

_lock = threading.Lock()
_totals = {}  # container -> cumulative USD


def price_for(model: str):
    best = None
    for prefix in PRICES:
        if model.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return PRICES[best] if best else None


def usage_of(doc):
    """(prompt_tokens, completion_tokens) or None."""
    usage = doc.get("usage") if isinstance(doc, dict) else None
    if not isinstance(usage, dict):
        return None
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
    elif "input_tokens" in usage or "output_tokens" in usage:
        p, c = usage.get("input_tokens"), usage.get("output_tokens")
    else:
        return None
    p = p if isinstance(p, int) else 0
    c = c if isinstance(c, int) else 0
    return p, c


def on_response(msg):
    mid = msg["id"]
    if msg.get("response_body") is None:
        return passthrough(mid)
    try:
        doc = json.loads(decode_body(msg["response_body"]))
    except ValueError:
        return passthrough(mid)
    usage = usage_of(doc)
    if usage is None:
        return passthrough(mid)
    prompt, completion = usage
    model = doc.get("model") if isinstance(doc.get("model"), str) else ""
    price = price_for(model)
    if price is None:
        log.info("no price for model %r; counting tokens only", model)
        usd = 0.0
    else:
        usd = (prompt * price[0] + completion * price[1]) / 1_000_000
    usd = round(usd, 6)
    container = msg.get("container", "")
    with _lock:
        total = round(_totals.get(container, 0.0) + usd, 6)
        _totals[container] = total
        record = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "container": container,
            "host": msg.get("host"),
            "uri": msg.get("uri"),
            "model": model,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "usd": usd,
            "cumulative_usd": total,
        }
        try:
            with open(OUT_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, separators=(",", ":")) + "\n")
        except OSError as e:
            log.error("cannot append to %s: %s", OUT_FILE, e)
    log.info("%s %s: %d+%d tokens = $%.6f (container %r total $%.6f)",
             msg.get("host"), model, prompt, completion, usd, container, total)
    return passthrough(mid, tags={
        "cost.model": model,
        "cost.prompt_tokens": prompt,
        "cost.completion_tokens": completion,
        "cost.usd": usd,
    })


if __name__ == "__main__":
    run(
        name="cost-tracker",
        handle_response=on_response,
        filters_response={"host": ["*.openai.com", "*.anthropic.com"], "content_type": ["application/json"]},
        max_body_bytes=2_097_152,
    )
