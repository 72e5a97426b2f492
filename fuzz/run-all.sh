#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, one after the other, on one core.
#
#   fuzz/run-all.sh SECONDS [TARGET...]
#
# SECONDS is the time per target (default 60); without TARGETs all of them run (`cargo fuzz
# list`, so a new target is included as soon as it is in fuzz/Cargo.toml). The targets are
# built once (`cargo fuzz build`: release, debug assertions, AddressSanitizer) and the built
# binaries are then run directly, so sources edited meanwhile do not trigger a rebuild between
# targets. The committed seeds in fuzz/corpus/<target>/ are read but never written: new inputs
# go to fuzz/corpus-work/<target>/ (gitignored), crashes, timeouts and OOMs to
# fuzz/artifacts/<target>/ (gitignored), the libFuzzer log to fuzz/artifacts/<target>/run.log;
# only inputs written during this run count as failures. A failed target's log tail and every input it left behind (base64 and hex) are printed, so a
# CI log alone is enough to reproduce it. Exits non-zero if any target failed. Runs under
# `nice` with -jobs=1, so it can share a small machine with other builds. Extra libFuzzer flags
# can be given in FUZZ_ARGS, e.g. FUZZ_ARGS=-len_control=0 to try long inputs from the start.
#
# Toolchain: FUZZ_TOOLCHAIN (default `stable`) with RUSTC_BOOTSTRAP=1, which lets a stable
# compiler accept the nightly-only flags cargo-fuzz passes (-Zsanitizer=address and friends), so
# no nightly toolchain is needed (CI machines have none and cannot download one). cargo-fuzz is
# taken from PATH, else from fuzz/target/ci-tools/bin, else installed there from crates.io.
set -euo pipefail

cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true

toolchain="${FUZZ_TOOLCHAIN:-stable}"
export RUSTC_BOOTSTRAP=1
# The built binaries are looked up under fuzz/target, whatever the caller's CARGO_TARGET_DIR.
export CARGO_TARGET_DIR="$PWD/target"
tools="$PWD/target/ci-tools"
if ! command -v cargo-fuzz >/dev/null; then
    export PATH="$tools/bin:$PATH"
    if ! command -v cargo-fuzz >/dev/null; then
        echo "=== installing cargo-fuzz into $tools" >&2
        cargo "+$toolchain" install cargo-fuzz --version 0.13.2 --locked --root "$tools"
    fi
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo "+$toolchain" fuzz list)
fi

triple="$(rustc "+$toolchain" -vV | sed -n 's/^host: //p')"
nice -n 10 cargo "+$toolchain" fuzz build
bin="target/$triple/release"

# The inputs a target's run left behind (crashes, timeouts, OOMs, leaks, slow units): only
# those newer than the run's start marker, so inputs from earlier runs do not fail this one.
new_inputs() {
    find "artifacts/$1" -maxdepth 1 -type f -newer "artifacts/$1/.started" \
        \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \
        -o -name 'slow-unit-*' \) | sort
}

# Prints what a failed target left behind: the end of its log and every input, in full.
report_failure() {
    local t="$1" f
    echo "::: $t FAILED; last lines of fuzz/artifacts/$t/run.log:"
    tail -n 60 "artifacts/$t/run.log" | sed 's/^/    /'
    for f in $(new_inputs "$t"); do
        echo "::: input fuzz/$f ($(wc -c <"$f") bytes), base64:"
        base64 -w 76 "$f"
        echo "::: the same, hex (first 4096 bytes):"
        head -c 4096 "$f" | od -An -tx1 -v
        echo "::: reproduce: save it (base64 -d) to FILE, then in fuzz/: cargo +$toolchain fuzz run $t FILE (with RUSTC_BOOTSTRAP=1)"
    done
}

status=0
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus-work/$t" "artifacts/$t" "corpus/$t"
    log="artifacts/$t/run.log"
    touch "artifacts/$t/.started"
    echo "=== $t: ${seconds}s" >&2
    # With -jobs libFuzzer runs the fuzzing in a child that logs to fuzz-0.log in the current
    # directory, so run from the target's artifacts dir. The first corpus dir receives new
    # inputs; the committed seeds are only read.
    if (cd "artifacts/$t" && nice -n 10 "../../$bin/$t" \
        -max_total_time="$seconds" -rss_limit_mb=1024 -max_len=65536 -timeout=10 \
        -jobs=1 -workers=1 -print_final_stats=1 -artifact_prefix="./" ${FUZZ_ARGS:-} \
        "../../corpus-work/$t" "../../corpus/$t" >run.log 2>&1); then
        result=ok
    else
        result=FAILED
    fi
    [ -f "artifacts/$t/fuzz-0.log" ] && cat "artifacts/$t/fuzz-0.log" >>"$log" && rm -f "artifacts/$t/fuzz-0.log"
    # A crash, timeout or OOM leaves an input behind (and the child's failure may not reach
    # the exit status under -jobs).
    if [ -n "$(new_inputs "$t")" ]; then
        result="FAILED (inputs in artifacts/$t/)"
    fi
    if [ "$result" != ok ]; then
        status=1
        report_failure "$t"
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    summary+=("$(printf '%-20s %6ss  execs=%-10s %s' "$t" "$seconds" "${execs:-?}" "$result")")
done

printf '%s\n' "${summary[@]}"
exit "$status"
