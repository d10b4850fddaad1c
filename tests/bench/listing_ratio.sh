#!/usr/bin/env bash
# zarrctl checksum --listing against Python implementations of the same
# algorithm, in one run, on the same listing (docs/PERFORMANCE.md "b."):
#
#   zarrctl        BUILD_DIR/zarrctl checksum --listing FILE
#   python ref     tests/integration/zarr_ref.py (tests/bench/listing_py.py)
#   zarr_checksum  DANDI's zarr_checksum package, compute_zarr_checksum()
#                  over the same lines, when ZARR_CHECKSUM_SRC names a
#                  directory holding its zarr_checksum/ package (pure Python;
#                  its generators module imports tqdm: python3-tqdm).
#                  Without it the zarr_checksum figure is estimated as
#                  1.35 x python ref and marked so.
#   floor          BUILD_DIR/bench/listing_floor: reading the lines plus the
#                  md5 of every directory's manifest, on one core
#
# Each figure is the median wall time of its runs (process start to exit,
# the listing in the page cache).  Every digest printed must be the same:
# the script fails otherwise.
#
# usage: tests/bench/listing_ratio.sh [BUILD_DIR]    (make bench-listing)
# env:   BENCH_FILES=1000000   lines of the listing (tests/bench/gen_listing)
#        RUNS=7                zarrctl runs
#        PY_RUNS=3             runs of each Python implementation
#        ZARR_CHECKSUM_SRC     see above
#        BENCH_DIR=/var/tmp    where the temporary directory goes
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
files=${BENCH_FILES:-1000000}
runs=${RUNS:-7}
py_runs=${PY_RUNS:-3}
py=/usr/bin/python3
zarrctl=$build/zarrctl

work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/zarr-listing-XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "== machine"
echo "date      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit    $(git -C "$repo" rev-parse --short HEAD 2> /dev/null)"
echo "cpu       $(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2-)"
echo "cores     $(nproc)"
echo "memory    $(free -g | awk '/Mem:/ {print $2 " GiB"}')"
echo "kernel    $(uname -r)"
echo "python    $($py -c 'import sys; print(sys.version.split()[0])')"
echo "load      $(cut -d' ' -f1-3 /proc/loadavg)"

listing=$work/listing.tsv
"$build/bench/gen_listing" "$files" > "$listing"
cat "$listing" > /dev/null
echo "listing   $files lines, $(stat -c %s "$listing") bytes"

# run_timed NAME RUNS CMD...: runs CMD RUNS times, stdout to
# $work/NAME.out (the last run's), prints each time; the median goes to
# $work/NAME.median, the peak RSS (KB, largest run) to $work/NAME.rss
run_timed() {
    local name=$1 n=$2 i t0 t1 rss
    shift 2
    : > "$work/$name.times"
    : > "$work/$name.rsss"
    for i in $(seq 1 "$n"); do
        t0=$(date +%s%N)
        /usr/bin/time -f %M -o "$work/$name.rss1" "$@" > "$work/$name.out"
        t1=$(date +%s%N)
        rss=$(tail -1 "$work/$name.rss1")
        echo "$(( (t1 - t0) / 1000 ))" >> "$work/$name.times"
        echo "$rss" >> "$work/$name.rsss"
        printf '  %-14s run %d: %8.3f s  peak RSS %6d MB  %s\n' "$name" "$i" \
            "$(echo "$(( (t1 - t0) / 1000 ))" | awk '{print $1 / 1e6}')" \
            "$(( rss / 1024 ))" "$(cat "$work/$name.out")"
    done
    sort -n "$work/$name.times" | awk '{ a[NR] = $1 }
        END {
            if (NR % 2) m = a[(NR + 1) / 2]
            else m = (a[NR / 2] + a[NR / 2 + 1]) / 2
            printf "%.3f\n", m / 1e6
        }' > "$work/$name.median"
    sort -n "$work/$name.rsss" | tail -1 > "$work/$name.rss"
}

echo
echo "== runs"
run_timed zarrctl "$runs" "$zarrctl" checksum --listing "$listing"
run_timed python_ref "$py_runs" "$py" "$repo/tests/bench/listing_py.py" \
    ref "$listing"

zc=estimated
if [ -n "${ZARR_CHECKSUM_SRC:-}" ] \
   && PYTHONPATH=$ZARR_CHECKSUM_SRC $py -c \
      'import zarr_checksum, zarr_checksum.generators' 2> /dev/null
then
    zc=measured
    zc_version=$(sed -n 's/^version = "\(.*\)"/\1/p' \
        "$ZARR_CHECKSUM_SRC/pyproject.toml" 2> /dev/null | head -1 || true)
    PYTHONPATH=$ZARR_CHECKSUM_SRC run_timed zarr_checksum "$py_runs" \
        "$py" "$repo/tests/bench/listing_py.py" zarr_checksum "$listing"
else
    echo "  zarr_checksum: not run (set ZARR_CHECKSUM_SRC to a directory" \
         "holding the zarr_checksum package); estimated as 1.35 x python ref"
fi

echo
echo "== floor (one core)"
"$build/bench/listing_floor" "$listing" | tee "$work/floor.out" \
    | sed 's/^/  /'

# every digest the same
digests=$(cat "$work"/*.out | grep -E '^[0-9a-f]{32}-' | sort -u)
if [ "$(echo "$digests" | wc -l)" -ne 1 ]; then
    echo "FAIL: the digests differ:" >&2
    grep -H . "$work"/*.out >&2
    exit 1
fi

t_c=$(cat "$work/zarrctl.median")
t_p=$(cat "$work/python_ref.median")
if [ "$zc" = measured ]; then
    t_z=$(cat "$work/zarr_checksum.median")
else
    t_z=$(awk -v p="$t_p" 'BEGIN {printf "%.3f", p * 1.35}')
fi
t_read=$(awk '$1 == "read" {print $2}' "$work/floor.out")
t_md5=$(awk '$1 == "md5" {print $2}' "$work/floor.out")
t_floor=$(awk '$1 == "floor" {print $2}' "$work/floor.out")

echo
echo "== summary (median seconds; digest $digests)"
printf '  %-34s %8s %10s\n' "" seconds "peak RSS"
printf '  %-34s %8.3f %7d MB\n' "zarrctl checksum --listing" "$t_c" \
    "$(( $(cat "$work/zarrctl.rss") / 1024 ))"
printf '  %-34s %8.3f %7d MB\n' "python ref (zarr_ref.py)" "$t_p" \
    "$(( $(cat "$work/python_ref.rss") / 1024 ))"
if [ "$zc" = measured ]; then
    printf '  %-34s %8.3f %7d MB\n' "zarr_checksum $zc_version (measured)" \
        "$t_z" "$(( $(cat "$work/zarr_checksum.rss") / 1024 ))"
else
    printf '  %-34s %8.3f\n' "zarr_checksum (estimated, 1.35 x ref)" "$t_z"
fi
printf '  %-34s %8.3f\n' "floor: read lines" "$t_read"
printf '  %-34s %8.3f\n' "floor: md5 of the manifests" "$t_md5"
printf '  %-34s %8.3f\n' "floor: one core (sum)" "$t_floor"
printf '  %-34s %8.3f\n' "floor: two cores (sum / 2)" \
    "$(awk -v f="$t_floor" 'BEGIN {print f / 2}')"
echo
awk -v c="$t_c" -v p="$t_p" -v z="$t_z" -v f="$t_floor" -v zc="$zc" 'BEGIN {
    printf "  zarrctl vs python ref:           %6.1fx faster\n", p / c
    printf "  zarrctl vs zarr_checksum (%s): %6.1fx faster (target >= 20x)\n",
        zc, z / c
    if (zc == "measured")
        printf "  python ref vs zarr_checksum:     %6.2fx faster\n", z / p
    printf "  zarrctl / one-core floor:        %6.2f\n", c / f
}'
