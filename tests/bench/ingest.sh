#!/usr/bin/env bash
# Benchmark: ingesting one large zarr through the gateway (issue 9 item 5).
#
# FILES PUTs of SIZE-byte objects (default 1,000,000 of 64 bytes) into one
# zarr, DIRS directories, CONNS connections (default 256), through the
# gateway (conf/nginx-gateway.conf.template, signatures verified with a
# key file) to a stub backend: an nginx answering every request with 200
# and a fixed ETag, discarding the body, except the gateway's .checksum
# objects, which it keeps (WebDAV PUT/DELETE) so that they can be checked.
# Then MORE further writes (default 1,000: new files) into the same zarr.
#
# Every PERIOD seconds: elapsed time, files done, PUT/s of the interval,
# the RSS of each gateway worker, and the CPU of the gateway, the stub, the
# load generator and the rest of the machine ("other": anything else
# running there competes for the same cores).  After each phase, timed from the last
# 2xx the load generator got:
#   (a) the admin API's GET v1/buckets/B/zarrs/ID returning the digest
#       (a call started right away; its duration; a second call)
#                                                       target <= 100 ms
#   (b) the root .checksum object written at the stub (the last PUT of it,
#       once the mirror's backlog is 0)                   target <= 2 s
# and at the end: the PUT rate of the first and the last tenth of the
# files (target: last >= 0.9 x first), worker RSS first/last (flat), the
# PUT/s and the largest RSS of each tenth (ingest_tenths.py), LMDB
# bytes per file, and checks: the digest equals `zarrctl checksum
# --listing` of the keys, sizes and ETags the stub answered, and every
# directory's .checksum document at the stub equals zarrctl's --tree.
#
# usage: tests/bench/ingest.sh [BUILD_DIR]     (make bench-ingest)
# needs: BUILD_DIR/nginx/ngx_http_zarr_module.so, BUILD_DIR/zarrctl,
#        BUILD_DIR/bench/bench_put, nginx, lmdb-utils (mdb_stat)
#
# Environment knobs:
#   FILES=1000000      files of the first phase
#   MORE=1000          files of the second phase (0: none)
#   DIRS=80            directories (file i goes to one of them)
#   ORDER=spread       spread: file i in directory i % DIRS, every
#                      directory grows at once (and stays dirty);
#                      seq: directory after directory, FILES / DIRS each
#   CONNS=256          connections (bench_put threads)
#   SIZE=64            object size in bytes
#   PERIOD=5           seconds between progress lines
#   WORKERS=2          worker_processes of the gateway
#   STUB_WORKERS=1     worker_processes of the stub
#   MIRROR_DELAY=      zarr_mirror_delay of the gateway (default: the
#                      template's, 500ms)
#   BENCH_DIR=/var/tmp where the temporary directory goes (on disk: the
#                      gateway's LMDB fsyncs are real)
#   STUB_DIR=/dev/shm  where the stub keeps its log and the .checksum
#                      objects (tmpfs: the stub's writes, ~90 MB per mirror
#                      round at 1,000,000 files spread, are not the
#                      gateway's cost and would compete with its fsyncs)
#   KEEP_BENCH_DIR=1   keep it (logs, listing, store)
#   ZARR_NGINX         nginx binary (default /usr/sbin/nginx)

set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
module=$build/nginx/ngx_http_zarr_module.so
bench_put=$build/bench/bench_put
zarrctl=$build/zarrctl
nginx_bin=${ZARR_NGINX:-/usr/sbin/nginx}
py=/usr/bin/python3
bench_name=ingest.sh

FILES=${FILES:-1000000}
MORE=${MORE:-1000}
DIRS=${DIRS:-80}
ORDER=${ORDER:-spread}
CONNS=${CONNS:-256}
SIZE=${SIZE:-64}
PERIOD=${PERIOD:-5}
WORKERS=${WORKERS:-2}
STUB_WORKERS=${STUB_WORKERS:-1}
MIRROR_DELAY=${MIRROR_DELAY:-}
BUCKET=bench-ingest
ACCESS_KEY=INGESTACCESSKEY00001
SECRET_KEY=ingest-secret-key-000000000000000000001
REGION=us-east-1

# shellcheck source=tests/bench/lib.sh
. "$repo/tests/bench/lib.sh"

for f in "$module" "$bench_put" "$zarrctl"; do
    [ -f "$f" ] || bench_die "$f is missing: make all $build/bench/bench_put"
done
[ -x "$nginx_bin" ] || bench_die "$nginx_bin not found"
command -v mdb_stat >/dev/null || bench_die "mdb_stat not found (lmdb-utils)"
case $ORDER in spread | seq) ;; *) bench_die "ORDER must be spread or seq" ;; esac
[ "$FILES" -ge 10 ] || bench_die "FILES must be 10 or more"

work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/zarr-ingest-XXXXXX")
stub=$(mktemp -d "${STUB_DIR:-/dev/shm}/zarr-ingest-stub-XXXXXX")

# shellcheck disable=SC2317  # called from the trap
cleanup() {
    trap - EXIT INT TERM
    bench_stop_all
    if [ -n "${KEEP_BENCH_DIR:-}" ]; then
        echo "ingest.sh: kept $work and $stub"
    else
        rm -rf "$work" "$stub"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

per_dir=$(((FILES + DIRS - 1) / DIRS))

echo "== machine"
bench_machine "$module"
echo "knobs     FILES=$FILES MORE=$MORE DIRS=$DIRS ORDER=$ORDER CONNS=$CONNS SIZE=$SIZE WORKERS=$WORKERS STUB_WORKERS=$STUB_WORKERS MIRROR_DELAY=${MIRROR_DELAY:-(template)}"
echo "work dir  $work ($(df -T "$work" | awk 'NR==2 {print $2}')), stub $stub ($(df -T "$stub" | awk 'NR==2 {print $2}'))"

# ---- the stub: 200 + ETag for everything; .checksum objects kept
stub_port=$(free_port)
mkdir -p "$stub/objects"
cat >"$stub/nginx.conf" <<EOF
# stub S3 backend: every request gets 200, an ETag and no body; the request
# body is read and discarded.  The gateway's .checksum objects are kept
# (WebDAV PUT and DELETE under objects/), and every request is logged with
# its time.
user $(id -un);
worker_processes $STUB_WORKERS;
pid $stub/nginx.pid;
error_log $stub/error.log notice;
events {
    worker_connections 4096;
}
http {
    log_format stub '\$msec \$request_method \$request_uri \$status';
    access_log $stub/access.log stub buffer=256k flush=1s;
    client_body_temp_path $stub/client_body_temp;
    proxy_temp_path $stub/proxy_temp;
    fastcgi_temp_path $stub/fastcgi_temp;
    uwsgi_temp_path $stub/uwsgi_temp;
    scgi_temp_path $stub/scgi_temp;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$stub_port;
        client_max_body_size 0;
        underscores_in_headers on;
        ignore_invalid_headers off;
        large_client_header_buffers 8 64k;
        location / {
            add_header ETag '"0123456789abcdef0123456789abcdef"' always;
            return 200;
        }
        location ~ ^/[^/]+/zarr-checksums/ {
            root $stub/objects;
            dav_methods PUT DELETE;
            create_full_put_path on;
            add_header ETag '"0123456789abcdef0123456789abcdef"' always;
        }
    }
}
EOF
start_nginx "$stub" "$stub_port"

# ---- the gateway, its backend the stub; clients verified with a key file
gw=$work/gateway
gw_port=$(free_port)
mkdir -p "$gw"
printf '%s %s ingest\n' "$ACCESS_KEY" "$SECRET_KEY" >"$work/client.keys"
printf 'access_key=%s\nsecret_key=%s\nregion=%s\n' "$ACCESS_KEY" \
    "$SECRET_KEY" "$REGION" >"$work/gateway.cred"
chmod 600 "$work/client.keys" "$work/gateway.cred"
sed -e "s|@MODULE@|$module|g" -e "s|@PREFIX@|$gw|g" \
    -e "s|@USER@|$(id -un)|g" -e "s|@WORKERS@|$WORKERS|g" \
    -e "s|@LISTEN_PORT@|$gw_port|g" -e "s|@RGW_PORT@|$stub_port|g" \
    -e "s|@CREDENTIALS@|$work/gateway.cred|g" \
    -e "s|@BATCH_TIMEOUT@|60s|g" \
    -e "s|@LOG_LEVEL@|notice|g" \
    -e "s|@AUTH@|zarr_credentials file=$work/client.keys;|g" \
    "$repo/conf/nginx-gateway.conf.template" >"$gw/nginx.conf"
if [ -n "$MIRROR_DELAY" ]; then
    sed -i "s|^\( *zarr_mirror_delay\) .*;|\1 $MIRROR_DELAY;|" "$gw/nginx.conf"
fi
# one connection per client connection and one to the stub each, and more
sed -i "s|^\( *worker_connections\) .*;|\1 $((4 * CONNS + 256));|" "$gw/nginx.conf"
start_nginx "$gw" "$gw_port"
read -ra workers <<<"$(nginx_workers "$gw")"
echo "stub :$stub_port  gateway :$gw_port (workers ${workers[*]})"

tag=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
zid=ingest-$tag
api=http://127.0.0.1:$gw_port/zarr-api/v1
export AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY AWS_REGION=$REGION

# phase NAME FIRST COUNT: COUNT files from FIRST on, through the watcher
phase() {
    local name=$1 first=$2 count=$3 rc=0
    : >"$work/series-$name"
    "$bench_put" -e "http://127.0.0.1:$gw_port" -b "$BUCKET" -z "$zid" \
        -t "$CONNS" -S "$SIZE" -N "$count" -k "$first" -D "$DIRS" \
        -O "$ORDER" -P "$per_dir" -p "$PERIOD" \
        -l "$work/listing-$name" -L "$work/latency-$name" |
        $py "$repo/tests/bench/ingest_watch.py" --api "$api" \
            --bucket "$BUCKET" --zarr "$zid" --workers "${workers[*]}" \
            --gateway-pids "$(cat "$gw/nginx.pid") ${workers[*]}" \
            --stub-pids "$(cat "$stub/nginx.pid") $(nginx_workers "$stub")" \
            --stub-log "$stub/access.log" --stub-objects "$stub/objects" \
            --series "$work/series-$name" --out "$work/summary-$name" |
        tee "$work/out-$name" || rc=$?
    grep -q '^result ' "$work/out-$name" || bench_die "bench_put failed"
    [ -s "$work/summary-$name" ] || bench_die "the watcher failed (exit $rc)"
}

# sval NAME KEY: KEY from a phase's summary
sval() {
    sed -n "s/^$2=//p" "$work/summary-$1"
}

# report NAME: the latencies of a phase
report() {
    local n=$1 r=$work/out-$1
    echo
    echo "   PUTs $(field "$r" requests), errors $(field "$r" errors), $(field "$r" seconds) s, $(field "$r" rps) PUT/s; latency p50 $(field "$r" p50_ms) ms, p99 $(field "$r" p99_ms) ms, max $(field "$r" max_ms) ms"
    echo "   after the last 2xx:"
    echo "   (a) API digest          $(sval "$n" a_digest_after_s) s  (target <= 0.100; the call started $(sval "$n" a_gap_ms) ms after it and took $(sval "$n" a_call1_ms) ms; a second call $(sval "$n" a_call2_ms) ms, same digest: $(sval "$n" a_same))"
    echo "   (b) root .checksum      $(sval "$n" b_checksum_after_s) s  (target <= 2; mirror backlog 0 after $(sval "$n" b_backlog0_after_s) s, $(sval "$n" b_docs_after_last) .checksum PUTs after the last 2xx)"
    echo "   digest                  $(sval "$n" a_digest)"
    echo "   root .checksum at stub  $(sval "$n" b_root_doc_digest)"
}

echo
echo "== phase 1: $FILES files, $DIRS directories ($ORDER), $CONNS connections, $SIZE-byte PUTs; zarr $BUCKET/$zid"
phase big 0 "$FILES"
report big

if [ "$MORE" -gt 0 ]; then
    echo
    echo "== phase 2: $MORE more files into the same zarr"
    phase more "$FILES" "$MORE"
    report more
    last="more"
else
    last="big"
fi

# ---- results
echo
echo "== results"
r=$work/out-big
first10=$(field "$r" first10_rps)
last10=$(field "$r" last10_rps)
total_files=$((FILES + MORE))
$py - "$first10" "$last10" <<'EOF'
import sys
a, b = float(sys.argv[1]), float(sys.argv[2])
r = b / a if a else 0
print("   PUT/s first tenth %.0f, last tenth %.0f: ratio %.3f (target >= 0.9: %s)"
      % (a, b, r, "met" if r >= 0.9 else "NOT met"))
EOF
echo "   worker RSS/anon MB (${workers[*]}): first sample $(sval big rss_first), last sample $(sval big rss_last), largest sample $(sval big rss_max), after the last phase $(sval "$last" rss_end)"
echo "   phase 1 per tenth of its files:"
$py "$repo/tests/bench/ingest_tenths.py" "$work/series-big" "$FILES" \
    "$(field "$r" seconds)"

used=$(sval "$last" lmdb_used)
# pages of the map in use minus the free ones: what the data takes
live=$(mdb_stat -ef "$gw/store" | $py -c '
import re, sys
t = sys.stdin.read()
ps = int(re.search(r"Page size: (\d+)", t).group(1))
last = int(re.search(r"Max pages: \d+\s+Number of pages used: (\d+)", t).group(1))
free = int(re.search(r"Free pages: (\d+)", t).group(1))
print((last - free) * ps)')
$py - "$used" "$live" "$total_files" <<'EOF'
import sys
used, live, n = (int(x) for x in sys.argv[1:])
print("   LMDB: %.1f MB of the map used (v1/status), %.1f MB without free pages"
      " (mdb_stat -ef): %.0f / %.0f bytes per file" % (used / 1e6, live / 1e6,
                                                      used / n, live / n))
EOF

# ---- checks: the digest and every .checksum document against zarrctl
big_expected=$("$zarrctl" checksum --listing "$work/listing-big")
if [ "$(sval big a_digest)" = "$big_expected" ]; then
    echo "   phase 1 digest == zarrctl checksum --listing of its files: yes"
else
    echo "   phase 1 digest == zarrctl checksum --listing of its files: NO (API $(sval big a_digest), zarrctl $big_expected)"
fi
if [ "$last" = more ]; then
    cat "$work/listing-big" "$work/listing-more" >"$work/listing"
else
    cp "$work/listing-big" "$work/listing"
fi
lines=$(wc -l <"$work/listing")
"$zarrctl" checksum --tree --listing "$work/listing" >"$work/tree"
expected=$(awk -F'\t' '$1 == "." {print $2}' "$work/tree")
got=$(sval "$last" a_digest)
echo "   listing: $lines files with a 2xx (of $total_files)"
if [ "$got" = "$expected" ] && [ "$(sval "$last" b_root_doc_digest)" = "$expected" ]; then
    echo "   digest == zarrctl checksum --listing: yes ($expected)"
else
    echo "   digest == zarrctl checksum --listing: NO (API $got, root .checksum $(sval "$last" b_root_doc_digest), zarrctl $expected)"
fi
$py - "$work/tree" "$stub/objects/$BUCKET/zarr-checksums/$zid" <<'EOF'
import json, os, sys
tree, root = sys.argv[1], sys.argv[2]
bad = n = 0
for line in open(tree):
    d, digest = line.rstrip("\n").split("\t")
    p = os.path.join(root, "" if d == "." else d, ".checksum")
    try:
        got = json.load(open(p))["digest"]
    except (OSError, ValueError, KeyError):
        got = None
    n += 1
    bad += got != digest
print("   .checksum documents at the stub == zarrctl --tree: %s (%d directories, %d differ)"
      % ("yes" if bad == 0 else "NO", n, bad))
EOF

echo
echo "   gateway error.log lines at warn or above: $(grep -cE '\[(warn|error|crit|alert|emerg)\]' "$gw/error.log" || true)"
{ grep -E '\[(warn|error|crit|alert|emerg)\]' "$gw/error.log" || true; } | sed -n '1,5s/^/     /p'
echo "loadavg   $(cut -d' ' -f1-3 /proc/loadavg) (at the end)"
