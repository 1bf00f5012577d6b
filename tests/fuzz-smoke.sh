#!/usr/bin/env bash
# A short fuzz run of every target in module/fuzz on its stored corpus: each target starts from
# module/fuzz/corpus/<target>/ and runs for FUZZ_SECONDS (default 45) seconds; any crash, panic,
# sanitizer report, leak or out-of-memory fails the script and leaves the input in
# module/fuzz/artifacts/<target>/. New inputs go to a temporary directory, so the stored corpus
# is unchanged.
#
# Needs the nightly toolchain and cargo-fuzz (installed here if missing). The first build
# compiles aws-lc with sanitizer and coverage instrumentation (see the README of module/fuzz for
# the measured times).
#
#   FUZZ_SECONDS=30 bash tests/fuzz-smoke.sh            # every target
#   bash tests/fuzz-smoke.sh template mech_params       # some targets
#   FUZZ_JOBS=1 bash tests/fuzz-smoke.sh                # one target at a time
#
# FUZZ_ONE_AT_A_TIME_UNTIL=FILE: one target at a time until FILE exists, then FUZZ_JOBS at a time
# (tests/run-all.sh runs this script in the background beside its tests, which leave about one
# processor idle, and creates FILE when they are done).
set -euo pipefail
cd "$(dirname "$0")/../module/fuzz"
seconds=${FUZZ_SECONDS:-45}
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
echo "== build (nightly, address sanitizer, optimised)"
time nice cargo +nightly fuzz build -O
# FUZZ_BUILD_ONLY=1: the build alone.
[ -z "${FUZZ_BUILD_ONLY:-}" ] || exit 0
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
# The targets run side by side, as many at once as there are processors (FUZZ_JOBS to change it):
# each libFuzzer run is one busy thread, so on two cores six 30-second targets take 90 s, not 180.
jobs=${FUZZ_JOBS:-$(nproc)}
run_target() {
    local t=$1
    mkdir -p "$fresh/$t" "corpus/$t"
    if nice cargo +nightly fuzz run -O "$t" "$fresh/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=3072 -print_final_stats=1 >"$fresh/$t.log" 2>&1; then
        echo ok >"$fresh/$t.result"
    else
        echo failed >"$fresh/$t.result"
    fi
}
if [ -n "${FUZZ_ONE_AT_A_TIME_UNTIL:-}" ]; then
    echo "== ${#targets[@]} targets, ${seconds}s each on corpus/<target>, one at a time until $FUZZ_ONE_AT_A_TIME_UNTIL exists, then $jobs at a time"
else
    echo "== ${#targets[@]} targets, ${seconds}s each on corpus/<target>, $jobs at a time"
fi
allowed() {
    if [ -n "${FUZZ_ONE_AT_A_TIME_UNTIL:-}" ] && [ ! -e "$FUZZ_ONE_AT_A_TIME_UNTIL" ]; then
        echo 1
    else
        echo "$jobs"
    fi
}
for t in "${targets[@]}"; do
    # Polled once a second rather than `wait -n`, so that a second target starts as soon as
    # FUZZ_ONE_AT_A_TIME_UNTIL appears, not when the running one ends.
    while [ "$(jobs -rp | wc -l)" -ge "$(allowed)" ]; do
        sleep 1
    done
    echo "== $(date -u +%T) $t"
    run_target "$t" &
done
wait
failed=()
for t in "${targets[@]}"; do
    echo "== $t"
    if [ "$(cat "$fresh/$t.result" 2>/dev/null)" = ok ]; then
        grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$fresh/$t.log" || true
        grep -aE 'DONE +cov:' "$fresh/$t.log" | tail -1 || true
    else
        echo "!! $t failed:"
        grep -E 'ERROR|panicked|SUMMARY|Test unit written' "$fresh/$t.log" | head -20
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz smoke run FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz smoke run: all ${#targets[@]} targets clean"
