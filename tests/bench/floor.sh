#!/usr/bin/env bash
# The floor of the PUT benchmark (tests/bench/put_ratio.sh): what the
# gateway's request path costs when its LMDB transactions do no tree, batch
# or intent work.  Builds the committed tree (HEAD) with
# tests/bench/floor.patch in a temporary directory, then runs put_ratio.sh
# with ZARR_BENCH_FLOOR set in the gateway's environment:
#   sync    every begin and finish writes one counter: each group commit is
#           a minimal LMDB commit with its fsyncs (what DESIGN section 4
#           asks for: intent before forwarding, result before the 2xx)
#   nosync  nothing is written: LMDB skips the commits and their fsyncs;
#           what is left is the thread-pool hand-offs and the glue
# First it prints what a durable write costs on the disk of BENCH_DIR
# (tests/bench/fsync_cost.c).  The difference between the real gateway (make bench-put) and "sync" is
# the cost of the tree and batch work; between "sync" and "nosync", the
# cost of the fsyncs on this machine.
#
# usage: tests/bench/floor.sh
# env:   FLOORS="sync nosync" and every knob of put_ratio.sh
#        (BACKENDS, ROUNDS, SECONDS_PER_ROUND, ...)

set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d "${BENCH_DIR:-/var/tmp}/zarr-floor-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

git -C "$repo" archive HEAD | tar -x -C "$tmp"
(cd "$tmp" && patch -p1 -s <"$repo/tests/bench/floor.patch")

echo "floor build of $(git -C "$repo" rev-parse --short HEAD) in $tmp"
make -C "$tmp" module zarrctl build/bench/bench_put build/bench/fsync_cost \
    >"$tmp/build.log" 2>&1 || { tail -n 30 "$tmp/build.log" >&2; exit 1; }

echo
echo "######## a durable write on this disk (tests/bench/fsync_cost.c)"
"$tmp/build/bench/fsync_cost" "$tmp/fsync-cost" 26

for f in ${FLOORS:-sync nosync}; do
    echo
    echo "######## floor: ZARR_BENCH_FLOOR=$f"
    ZARR_BENCH_FLOOR=$f "$tmp/tests/bench/put_ratio.sh" "$tmp/build"
done
