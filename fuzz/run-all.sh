#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, one after the other, on one core.
#
#   fuzz/run-all.sh SECONDS [TARGET...]
#
# SECONDS is the time per target (default 60); without TARGETs all of them run. The targets
# are built once (`cargo +nightly fuzz build`: release, debug assertions, AddressSanitizer) and
# the built binaries are then run directly, so sources edited meanwhile do not trigger a
# rebuild between targets. The committed seeds in fuzz/corpus/<target>/ are read but never
# written: new inputs go to fuzz/corpus-work/<target>/ (gitignored), crashes, timeouts and OOMs
# to fuzz/artifacts/<target>/ (gitignored), the libFuzzer log to fuzz/artifacts/<target>/run.log.
# Exits non-zero if any target failed. Runs under `nice` with -jobs=1, so it can share a small
# machine with other builds. Extra libFuzzer flags can be given in FUZZ_ARGS, e.g.
# FUZZ_ARGS=-len_control=0 to try long inputs from the start.
set -euo pipefail

cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"
nice -n 10 cargo +nightly fuzz build
bin="target/$triple/release"

status=0
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus-work/$t" "artifacts/$t" "corpus/$t"
    log="artifacts/$t/run.log"
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
    if compgen -G "artifacts/$t/crash-*" >/dev/null || compgen -G "artifacts/$t/timeout-*" >/dev/null ||
        compgen -G "artifacts/$t/oom-*" >/dev/null || compgen -G "artifacts/$t/slow-unit-*" >/dev/null; then
        result="FAILED (inputs in artifacts/$t/)"
    fi
    [ "$result" = ok ] || status=1
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    summary+=("$(printf '%-20s %6ss  execs=%-10s %s' "$t" "$seconds" "${execs:-?}" "$result")")
done

printf '%s\n' "${summary[@]}"
exit "$status"
