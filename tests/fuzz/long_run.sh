#!/bin/sh
# The long fuzzing run recorded in docs/security.md: every harness, one
# after the other (the machine's cores are shared), for RUNS executions
# (default 10 million) on a copy of its committed corpus, in one process.
# Run from the repository root after make fuzz-build:
#
#   tests/fuzz/long_run.sh [NAME...]        (default: every harness built)
#
# Results: build/fuzz/long/<name>/{log,crash/,corpus/}; a summary line per
# harness (executions, seconds, exec/s, result) in build/fuzz/long/summary.

set -u

# as in tests/fuzz/fuzz.mk: a smaller quarantine, 2-3 times faster
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=16}

BUILD=${BUILD:-build}
RUNS=${RUNS:-10000000}
OUT=$BUILD/fuzz/long

if [ $# -eq 0 ]; then
    set -- $(ls "$BUILD"/fuzz/ | sed -n 's/^fuzz_//p')
fi

mkdir -p "$OUT"

for n in "$@"; do
    bin=$BUILD/fuzz/fuzz_$n
    w=$OUT/$n

    if [ ! -x "$bin" ]; then
        echo "$n: $bin not built (make fuzz-build)" | tee -a "$OUT/summary"
        continue
    fi

    mkdir -p "$w/corpus" "$w/crash"
    cp -n tests/fuzz/corpus/$n/* "$w/corpus/" 2>/dev/null || true
    regr=
    [ -d tests/fuzz/regressions/$n ] && regr=tests/fuzz/regressions/$n

    start=$(date +%s)
    # one process (no -jobs/-workers: with them libFuzzer forks a child
    # that logs to ./fuzz-N.log)
    "$bin" -runs="$RUNS" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$w/crash/" \
        "$w/corpus" $regr > "$w/log" 2>&1
    rc=$?
    [ -n "$(ls "$w/crash")" ] && [ $rc -eq 0 ] && rc=99
    secs=$(( $(date +%s) - start ))

    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$w/log")
    cov=$(grep -o 'cov: [0-9]*' "$w/log" | tail -1)
    [ $rc -eq 0 ] && result=ok || result="FAILED rc=$rc, see $w/crash"

    printf '%s: %s executions in %s s (%s exec/s), %s, corpus %s files: %s\n' \
        "$n" "${execs:-?}" "$secs" \
        "$(( ${execs:-0} / (secs > 0 ? secs : 1) ))" "${cov:-cov ?}" \
        "$(ls "$w/corpus" | wc -l)" "$result" | tee -a "$OUT/summary"
done
