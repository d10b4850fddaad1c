#!/usr/bin/env bash
# The floor of the PUT benchmark (tests/bench/put_ratio.sh): what the
# gateway's request path costs when its LMDB transactions do no tree, batch
# or intent work.  Builds the committed tree (HEAD) with
# tests/bench/floor.patch in a temporary directory, then runs put_ratio.sh
# with ZARR_BENCH_FLOOR set in the gateway's environment (durability
# contract v2; see the patch's header):
#   sync    the tree's group commit writes one counter: one hand-off and a
#           real, minimal LMDB commit with its fsync per group
#   nosync  the group commit writes nothing: LMDB skips the commit and its
#           fsync; the hand-off and the held 2xx remain
#   nohold  no group commit: the 2xx leaves when the backend answers
#           (classification, verification, the gate's begin and release)
# First it prints what a durable write costs on the disk of BENCH_DIR
# (tests/bench/fsync_cost.c).  Real gateway (make bench-put) minus "sync"
# is the tree work; "sync" minus "nosync" the fsync; "nosync" minus
# "nohold" the hand-off and the held answer; "nohold" minus plain proxy
# what is left of the module on the request path.
#
# usage: tests/bench/floor.sh
# env:   FLOORS="sync nosync nohold" and every knob of put_ratio.sh
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

for f in ${FLOORS:-sync nosync nohold}; do
    echo
    echo "######## floor: ZARR_BENCH_FLOOR=$f"
    ZARR_BENCH_FLOOR=$f "$tmp/tests/bench/put_ratio.sh" "$tmp/build"
done
