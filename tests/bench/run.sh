#!/usr/bin/env bash
# Benchmarks of the core (issue 2), not part of `make test`:
#   a. 1,000,000 files through the LMDB store in groups of 1,000
#      mutations, then the final root digest;
#   b. zarrctl checksum --listing of the same 1,000,000-line listing.
# usage: tests/bench/run.sh [BUILD_DIR]   (make bench)
# env: BENCH_FILES (default 1000000), BENCH_DIR (default: a temp dir under
# /var/tmp, on disk, so that fsync is real)
set -euo pipefail

build=${1:-build}
files=${BENCH_FILES:-1000000}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/zarr-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "== machine"
echo "date      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "cpu       $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "cores     $(nproc)"
echo "memory    $(free -g | awk '/Mem:/ {print $2 " GiB"}')"
echo "kernel    $(uname -r)"
echo "disk      $(df -h "$work" | awk 'NR==2 {print $1 " " $2}')"
echo "liblmdb   $(dpkg-query -W -f='${Version}' liblmdb0 2>/dev/null || echo '?')"

# the smaller run shows that memory does not grow with the tree
for n in 250000 "$files"; do
    echo
    echo "== a. store: $n files, groups of 1000, fsync per group"
    rm -rf "$work/store"
    "$build/bench/bench_store" "$work/store" "$n" 1000
done

echo
echo "== b. zarrctl checksum --listing ($files lines)"
"$build/bench/gen_listing" "$files" > "$work/listing.tsv"
for i in 1 2 3; do
    /usr/bin/time -f "run $i: %e s, peak RSS %M KB" \
        "$build/zarrctl" checksum --listing "$work/listing.tsv"
done
