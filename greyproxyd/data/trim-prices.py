#!/usr/bin/env python3
"""Regenerate llm-prices.json from LiteLLM's price table (see README.md in this directory).

Usage:
    pip download litellm --no-deps -d /tmp/litellm
    python3 trim-prices.py /tmp/litellm/litellm-<ver>-*.whl --date YYYY-MM-DD > llm-prices.json

The argument is the wheel (the table is read from
litellm/model_prices_and_context_window_backup.json inside it, the version from its
METADATA) or the JSON file itself (then pass --version too). --date is the wheel's
upload date on PyPI: the wheel does not record it.
"""

import argparse
import json
import sys
import zipfile

SOURCE = (
    "LiteLLM model_prices_and_context_window.json "
    "(https://github.com/BerriAI/litellm), as shipped in the litellm wheel on PyPI "
    "(litellm/model_prices_and_context_window_backup.json)"
)
TABLE_IN_WHEEL = "litellm/model_prices_and_context_window_backup.json"

# Providers whose prices greyproxyd uses (LiteLLM's `litellm_provider`). `gemini` is Google AI
# Studio: its keys are `gemini/<model>` plus a few bare names.
PROVIDERS = {"anthropic", "openai", "gemini", "openrouter"}
# `responses` holds the models OpenAI serves only over the Responses API (the codex family,
# the -pro models): conversational like `chat`, and what codex calls.
MODES = {"chat", "responses"}
PRICE_FIELDS = [
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "cache_creation_input_token_cost_above_1hr",
    "output_cost_per_reasoning_token",
]
FIELDS = (
    PRICE_FIELDS
    + [f + "_above_200k_tokens" for f in PRICE_FIELDS]
    + ["max_input_tokens", "litellm_provider"]
)


def load(path, version):
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as whl:
            table = json.loads(whl.read(TABLE_IN_WHEEL))
            if version is None:
                meta = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
                for line in whl.read(meta).decode().splitlines():
                    if line.startswith("Version: "):
                        version = line.split(": ", 1)[1].strip()
                        break
        return table, version
    with open(path) as f:
        return json.load(f), version


def trim(table):
    models = {}
    for key, entry in table.items():
        if not isinstance(entry, dict):
            continue
        if entry.get("litellm_provider") not in PROVIDERS or entry.get("mode") not in MODES:
            continue
        # An entry we cannot price (no per-token input or output price) is left out: the
        # daemon then says "unpriced" rather than guessing.
        if not isinstance(entry.get("input_cost_per_token"), (int, float)):
            continue
        if not isinstance(entry.get("output_cost_per_token"), (int, float)):
            continue
        models[key] = {f: entry[f] for f in FIELDS if f in entry}
    return dict(sorted(models.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table", help="litellm wheel (.whl) or the price JSON")
    ap.add_argument("--date", required=True, help="release date of that litellm version")
    ap.add_argument("--version", help="litellm version (read from the wheel when omitted)")
    args = ap.parse_args()
    table, version = load(args.table, args.version)
    if version is None:
        sys.exit("--version is required when reading the JSON file directly")
    out = {
        "source": SOURCE,
        "version": f"litellm {version} ({args.date})",
        "models": trim(table),
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
