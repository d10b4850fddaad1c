#!/usr/bin/env bash
# Benchmark 9: PUT of small objects (4 KiB) over concurrent keep-alive
# connections through (A) plain nginx proxy_pass and (B) nginx with ngx_zarr,
# to the same backend, A and B interleaved in one run; reports throughput,
# ratio B/A, p50/p99 latency and the CPU of nginx per PUT.  Two backends:
#   rgw   a throwaway Ceph RGW (scripts/rgw.sh), 32 connections:
#         target ratio >= 0.95
#   stub  a separate nginx answering every request with 200 and an ETag,
#         discarding the body (the module's own cost): 32 connections
#         (latency-bound: target <= 1.5 ms added to the p50) and 256
#         (saturation: target ratio >= 0.8)
# and for every case: nginx CPU per PUT of B minus A <= 35 us (issue 9).
# The summary at the end has one line per case (a markdown table).
#
# Signature verification is on at B (DESIGN 4b): against RGW the gateway
# looks secrets up in RGW's admin API (`zarr_credentials rgw`, as conf/ and
# `make run` do; cached in shared memory for 60 s, so a request costs the
# same verification as with a key file), against the stub in a key file
# with the benchmark's key (the stub answers the admin API's lookups with
# an empty 200: `zarr_credentials rgw` cannot work there).  Before the
# rounds, one PUT signed with a wrong secret goes to every B: it must get
# 403 from the gateway itself (zarr_auth_failures_total goes up by one),
# else the script stops.
# After the RGW rounds, the gateway's tree of its zarr is compared with the
# checksum of RGW's listing of the same prefix.
#
# usage: tests/bench/put_ratio.sh [BUILD_DIR]
# needs: BUILD_DIR/nginx/ngx_http_zarr_module.so (make module),
#        BUILD_DIR/zarrctl, BUILD_DIR/bench/bench_put
#        (make zarrctl build/bench/bench_put), nginx, radosgw & co,
#        python3-boto3; run as root or as a user that can run RGW.
#
# Environment knobs:
#   ROUNDS=5              measured rounds per side and backend
#   SECONDS_PER_ROUND=10  length of a round
#   RGW_CONNS=32          concurrent connections (bench_put threads) against
#                         RGW; a list ("32 64") runs each in turn
#   STUB_CONNS="32 256"   the same against the stub
#   THREADS=N             both of the above N (the former knob)
#   AUTH_RGW=rgw          credential source of B against RGW: rgw (the admin
#                         API), file (a key file with the benchmark's key) or
#                         none (no verification: the fallback)
#   AUTH_STUB=file        the same against the stub: file or none
#   SIZE=4096             object size in bytes
#   WARMUP=5              seconds of warm-up per side before the rounds
#   ROUND_WARMUP=1        seconds at the start of every round on its fresh
#                         connections, not counted
#   ORDER=abba            round order: abba (A,B then B,A, ...: cancels a
#                         linear drift of the backend) or ab (A,B,A,B,...)
#   BACKENDS="rgw stub"   which backends, in this order
#   WORKERS=2             worker_processes of the nginx under test
#   STUB_WORKERS=1        worker_processes of the stub backend
#   BATCH_TIMEOUT=60s     zarr_batch_timeout of the gateway
#   RGW_STORE=memstore    (or bluestore) and RGW_MEMSTORE_BYTES (default here
#                         8 GiB; memstore takes ~55 KB per small object)
#   BENCH_DIR=/var/tmp    where the temporary directory goes (on disk: the
#                         gateway's LMDB fsyncs are real)
#   PERF=1                after the rounds of each backend, one extra gateway
#                         round under `perf record -a -g` (not counted);
#                         prints the CPU split by command and the top symbols
#   KEEP_BENCH_DIR=1      keep the temporary directory (logs, latencies)
#   HOLD=1                start everything, print the ports and the bench_put
#                         command line, then wait until Ctrl-C or kill (for
#                         profiling by hand)
#   MIRROR_DELAY=1h       zarr_mirror_delay of the gateway (default: the
#                         template's, 500ms); a long one keeps the mirror
#                         out of the rounds, to tell its CPU from the
#                         request path's
#   ZARR_NGINX            nginx binary (default /usr/sbin/nginx)

set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
module=$build/nginx/ngx_http_zarr_module.so
bench_put=$build/bench/bench_put
zarrctl=$build/zarrctl
nginx_bin=${ZARR_NGINX:-/usr/sbin/nginx}
py=/usr/bin/python3

ROUNDS=${ROUNDS:-5}
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-10}
# THREADS (the former knob) sets both lists
RGW_CONNS=${RGW_CONNS:-${THREADS:-32}}
STUB_CONNS=${STUB_CONNS:-${THREADS:-32 256}}
AUTH_RGW=${AUTH_RGW:-rgw}
AUTH_STUB=${AUTH_STUB:-file}
SIZE=${SIZE:-4096}
WARMUP=${WARMUP:-5}
ROUND_WARMUP=${ROUND_WARMUP:-1}
ORDER=${ORDER:-abba}
BACKENDS=${BACKENDS:-rgw stub}
WORKERS=${WORKERS:-2}
STUB_WORKERS=${STUB_WORKERS:-1}
BATCH_TIMEOUT=${BATCH_TIMEOUT:-60s}
export RGW_STORE=${RGW_STORE:-memstore}
export RGW_MEMSTORE_BYTES=${RGW_MEMSTORE_BYTES:-8589934592}
BUCKET=bench-put
CLK_TCK=$(getconf CLK_TCK)

die() {
    echo "put_ratio.sh: error: $*" >&2
    exit 1
}

for f in "$module" "$bench_put" "$zarrctl"; do
    [ -f "$f" ] || die "$f is missing: make module zarrctl $build/bench/bench_put"
done
[ -x "$nginx_bin" ] || die "$nginx_bin not found"
case $ORDER in ab | abba) ;; *) die "ORDER must be ab or abba" ;; esac
for b in $BACKENDS; do
    case $b in rgw | stub) ;; *) die "unknown backend '$b'" ;; esac
done
for c in $RGW_CONNS $STUB_CONNS; do
    case $c in '' | *[!0-9]*) die "bad connection count '$c'" ;; esac
done
case $AUTH_RGW in rgw | file | none) ;; *) die "AUTH_RGW must be rgw, file or none" ;; esac
case $AUTH_STUB in file | none) ;;
rgw) die "AUTH_STUB=rgw: the stub cannot answer RGW's admin API" ;;
*) die "AUTH_STUB must be file or none" ;;
esac

work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/zarr-put-XXXXXX")
rgw_dir=$work/rgw
masters=""          # pid files of the nginx instances we started
rgw_started=
hold_sleep=         # HOLD: the sleep we wait for

# shellcheck disable=SC2317  # called from the trap
cleanup() {
    trap - EXIT INT TERM
    local pf pid _
    if [ -n "$hold_sleep" ]; then
        kill "$hold_sleep" 2>/dev/null || true
    fi
    for pf in $masters; do
        [ -s "$pf" ] || continue
        pid=$(cat "$pf")
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ -n "$rgw_started" ]; then
        "$repo/scripts/rgw.sh" stop "$rgw_dir" >/dev/null 2>&1 || true
    fi
    if [ -n "${KEEP_BENCH_DIR:-}" ]; then
        echo "put_ratio.sh: kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    $py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
    $py - "$1" <<'EOF'
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
EOF
}

# start_nginx PREFIX PORT: the config is PREFIX/nginx.conf
start_nginx() {
    local prefix=$1 port=$2
    "$nginx_bin" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" ||
        { tail -n 20 "$prefix/error.log" >&2; die "nginx in $prefix did not start"; }
    masters="$masters $prefix/nginx.pid"
    wait_port "$port" || die "nginx in $prefix does not listen on $port"
}

# render TEMPLATE PREFIX PORT BACKEND_PORT AUTH: AUTH the zarr_credentials
# directive of the gateway (empty: none)
render() {
    local template=$1 prefix=$2 port=$3 backend_port=$4 auth=$5
    mkdir -p "$prefix"
    sed -e "s|@MODULE@|$module|g" -e "s|@PREFIX@|$prefix|g" \
        -e "s|@USER@|$(id -un)|g" -e "s|@WORKERS@|$WORKERS|g" \
        -e "s|@LISTEN_PORT@|$port|g" -e "s|@RGW_PORT@|$backend_port|g" \
        -e "s|@CREDENTIALS@|$rgw_dir/gateway.cred|g" \
        -e "s|@BATCH_TIMEOUT@|$BATCH_TIMEOUT|g" \
        -e "s|@LOG_LEVEL@|${ZARR_LOG_LEVEL:-notice}|g" \
        -e "s|@AUTH@|$auth|g" \
        "$template" >"$prefix/nginx.conf"
    # a client connection and an upstream one each, and more
    sed -i "s|^\( *worker_connections\) .*;|\1 $worker_conns;|" "$prefix/nginx.conf"
    if [ -n "${MIRROR_DELAY:-}" ]; then
        sed -i "s|^\( *zarr_mirror_delay\) .*;|\1 $MIRROR_DELAY;|" \
            "$prefix/nginx.conf"
    fi
}

start_stub() {
    local prefix=$1 port=$2
    mkdir -p "$prefix"
    cat >"$prefix/nginx.conf" <<EOF
# stub S3 backend: every request gets 200, an ETag and no body; the request
# body is read and discarded (ngx_http_send_response discards it), the
# connection stays alive
user $(id -un);
worker_processes $STUB_WORKERS;
pid $prefix/nginx.pid;
error_log $prefix/error.log notice;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path $prefix/client_body_temp;
    proxy_temp_path $prefix/proxy_temp;
    fastcgi_temp_path $prefix/fastcgi_temp;
    uwsgi_temp_path $prefix/uwsgi_temp;
    scgi_temp_path $prefix/scgi_temp;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$port;
        client_max_body_size 0;
        underscores_in_headers on;
        ignore_invalid_headers off;
        large_client_header_buffers 8 64k;
        location / {
            add_header ETag '"0123456789abcdef0123456789abcdef"' always;
            return 200;
        }
    }
}
EOF
    start_nginx "$prefix" "$port"
}

# sum of utime+stime (clock ticks) of the given pids, all their threads
ticks() {
    local p sum=0 t
    for p in "$@"; do
        t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) || t=0
        sum=$((sum + ${t:-0}))
    done
    echo "$sum"
}

# busy ticks of the whole machine (all CPUs)
sys_ticks() {
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat
}

# pids of an nginx instance: the master and its children
nginx_pids() {
    local m
    m=$(cat "$1/nginx.pid")
    echo "$m $(pgrep -P "$m" | tr '\n' ' ')"
}

rgw_pids() {
    cat "$rgw_dir"/run/mon.a.pid "$rgw_dir"/run/osd.0.pid \
        "$rgw_dir"/run/client.rgw.a.pid 2>/dev/null | tr '\n' ' '
}

# PUT requests radosgw has served so far (its perf counter rgw.put)
rgw_puts() {
    timeout 20 ceph --admin-daemon "$rgw_dir/run/client.rgw.a.asok" perf dump rgw 2>/dev/null |
        $py -c 'import json, sys; print(json.load(sys.stdin)["rgw"]["put"])' 2>/dev/null ||
        echo 0
}

# zarr_auth_failures_total of a gateway, all reasons
auth_failures() {
    { curl -s --max-time 10 "http://127.0.0.1:$1/zarr-metrics" || true; } |
        awk '/^zarr_auth_failures_total/ { n += $NF } END { print n + 0 }'
}

# the zarr_credentials directive for a source: rgw, file or none
auth_directive() {
    case $1 in
    rgw) echo "zarr_credentials rgw valid=60s;" ;;
    file) echo "zarr_credentials file=$keys;" ;;
    none) echo "" ;;
    esac
}

# field NAME from the result line of a bench_put output file
field() {
    sed -n "s/^result .*\<$2=\([^ ]*\).*/\1/p" "$1"
}

echo "== machine"
echo "date      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "cpu       $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "cores     $(nproc)"
echo "memory    $(free -g | awk '/Mem:/ {print $2 " GiB"}')"
echo "kernel    $(uname -r)"
echo "loadavg   $(cut -d' ' -f1-3 /proc/loadavg) (before start)"
echo "nginx     $("$nginx_bin" -v 2>&1 | sed 's/.*: //')"
echo "radosgw   $(dpkg-query -W -f='${Version}' radosgw 2>/dev/null || echo '?')"
echo "commit    $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
echo "module    $module ($(stat -c %y "$module" | cut -d. -f1), sha256 $(sha256sum "$module" | cut -c1-12))"
echo "knobs     ROUNDS=$ROUNDS SECONDS_PER_ROUND=$SECONDS_PER_ROUND RGW_CONNS=\"$RGW_CONNS\" STUB_CONNS=\"$STUB_CONNS\" SIZE=$SIZE WARMUP=$WARMUP ROUND_WARMUP=$ROUND_WARMUP ORDER=$ORDER WORKERS=$WORKERS STUB_WORKERS=$STUB_WORKERS BATCH_TIMEOUT=$BATCH_TIMEOUT RGW_STORE=$RGW_STORE"
echo "work dir  $work ($(df -T "$work" | awk 'NR==2 {print $2}'))"
echo "auth      B against RGW: AUTH_RGW=$AUTH_RGW, against the stub: AUTH_STUB=$AUTH_STUB (signature verification at the gateway)"

# ---- RGW: always started, it provides the gateway's credentials file
echo
echo "== starting RGW, the stub and the nginx instances"
rgw_port=$(free_port)
rgw_started=1
"$repo/scripts/rgw.sh" start "$rgw_dir" "$rgw_port"
# shellcheck disable=SC1091
. "$rgw_dir/credentials.env"
export AWS_ACCESS_KEY_ID=$ALICE_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$ALICE_SECRET_KEY
export AWS_REGION=$RGW_REGION

# the key file of `zarr_credentials file=`: the benchmark's key, owned by
# its RGW user (alice, as the admin API would say)
keys=$work/client.keys
(umask 077 && printf '%s %s alice\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$keys")

$py - "$RGW_ENDPOINT" "$BUCKET" <<'EOF'
import sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1],
                  config=Config(s3={"addressing_style": "path"}))
s3.create_bucket(Bucket=sys.argv[2])
EOF

stub_port=$(free_port)
start_stub "$work/stub" "$stub_port"

# the cases: backend:connections, in order
cases=()
maxconns=0
for b in $BACKENDS; do
    case $b in rgw) cl=$RGW_CONNS ;; stub) cl=$STUB_CONNS ;; esac
    for c in $cl; do
        cases+=("$b:$c")
        [ "$c" -le "$maxconns" ] || maxconns=$c
    done
done
worker_conns=$((2 * maxconns + 256))
[ "$worker_conns" -ge 1024 ] || worker_conns=1024

declare -A port prefix auth
for b in $BACKENDS; do
    case $b in
    rgw) bport=$rgw_port; auth[$b]=$AUTH_RGW ;;
    stub) bport=$stub_port; auth[$b]=$AUTH_STUB ;;
    esac
    for side in a b; do
        p=$(free_port)
        pre=$work/nginx-$side-$b
        case $side in
        a) render "$repo/conf/nginx-proxy.conf.template" "$pre" "$p" "$bport" "" ;;
        b) render "$repo/conf/nginx-gateway.conf.template" "$pre" "$p" "$bport" \
            "$(auth_directive "${auth[$b]}")" ;;
        esac
        start_nginx "$pre" "$p"
        port[$side-$b]=$p
        prefix[$side-$b]=$pre
    done
done
echo "rgw :$rgw_port  stub :$stub_port  $(for k in "${!port[@]}"; do printf '%s :%s  ' "$k" "${port[$k]}"; done)"

tag=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')

# Does B verify?  One PUT signed with a wrong secret: the gateway must answer
# 403 itself (its zarr_auth_failures_total goes up; the stub would say 200)
echo
echo "== signature verification at B: one PUT signed with a wrong secret"
for b in $BACKENDS; do
    out=$work/verify-$b
    if [ "${auth[$b]}" = none ]; then
        echo "   B $b: verification off (AUTH_${b^^}=none): the figures are without it"
        continue
    fi
    f0=$(auth_failures "${port[b-$b]}")
    "$bench_put" -e "http://127.0.0.1:${port[b-$b]}" -b "$BUCKET" \
        -z "verify-$tag" -s "wrong-$AWS_SECRET_ACCESS_KEY" -t 1 -n 1 \
        >"$out" 2>&1 || true
    f1=$(auth_failures "${port[b-$b]}")
    st=$(sed -n 's/^first failure .*: status \([0-9]*\) key [^:]*: \(.*\)/\1 \2/p' "$out")
    echo "   B $b (${auth[$b]}): ${st:-2xx}; zarr_auth_failures_total +$((f1 - f0))"
    case $st in
    403*) [ $((f1 - f0)) = 1 ] ||
        die "B $b: the 403 did not come from the gateway's verifier" ;;
    *) cat "$out" >&2; die "B $b: a wrong secret was not refused with 403" ;;
    esac
done

if [ -n "${HOLD:-}" ]; then
    echo
    echo "HOLD: for example"
    echo "  $bench_put -e http://127.0.0.1:PORT -b $BUCKET -z ZARR -t 32 -S $SIZE -d 10"
    echo "  with AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY AWS_REGION=$AWS_REGION"
    echo "HOLD: waiting; stop with Ctrl-C or kill $$"
    while :; do
        # in the background: a TERM runs the trap at once, not after an hour
        sleep 3600 &
        hold_sleep=$!
        wait "$hold_sleep" || true
        hold_sleep=
    done
fi
declare -A zid
for k in "${cases[@]}"; do
    b=${k%:*}
    c=${k#*:}
    zid[a-$b-$c]=put-a-$b$c-$tag
    zid[b-$b-$c]=put-b-$b$c-$tag
done

# run_side SIDE BACKEND CONNS FIRST_N SECONDS WARMUP OUT: one bench_put run
run_side() {
    local side=$1 b=$2 c=$3 first=$4 secs=$5 warm=$6 out=$7
    local rc=0
    "$bench_put" -e "http://127.0.0.1:${port[$side-$b]}" -b "$BUCKET" \
        -z "${zid[$side-$b-$c]}" -t "$c" -S "$SIZE" -d "$secs" \
        -w "$warm" -k "$first" -L "$out.lat" >"$out" 2>&1 || rc=$?
    if [ "$rc" != 0 ] && ! grep -q '^result ' "$out"; then
        cat "$out" >&2
        die "bench_put failed (exit $rc)"
    fi
}

label() {
    case $1 in a) echo "A proxy  " ;; b) echo "B gateway" ;; esac
}

declare -A sum_req sum_sec sum_err sum_warm
results=$work/results
mkdir -p "$results"
summary=$results/summary.md

for k in "${cases[@]}"; do
    b=${k%:*}
    c=${k#*:}
    kk=$b-$c
    case $b in
    rgw) read -ra backend_pids <<<"$(rgw_pids)" ;;
    stub) read -ra backend_pids <<<"$(nginx_pids "$work/stub")" ;;
    esac

    echo
    echo "== backend $b, $c connections: $ROUNDS rounds x ${SECONDS_PER_ROUND}s per side, $SIZE-byte PUTs"
    echo "   zarr ids: A ${zid[a-$kk]}  B ${zid[b-$kk]}"

    for side in a b; do
        run_side "$side" "$b" "$c" 0 "$WARMUP" 0 "$results/$kk-$side-warmup"
        sum_warm[$side-$kk]=$(field "$results/$kk-$side-warmup" requests)
        sum_req[$side-$kk]=0
        sum_sec[$side-$kk]=0
        sum_err[$side-$kk]=$(field "$results/$kk-$side-warmup" errors)
        echo "   warm-up $(label $side): $(field "$results/$kk-$side-warmup" rps)/s, errors ${sum_err[$side-$kk]}"
    done

    echo
    hdr=
    [ "$b" = rgw ] && hdr="  RGW PUTs per client PUT"
    printf '   %-5s %-9s %8s %8s %8s %6s  %s  %s%s\n' round side "req/s" "p50 ms" "p99 ms" errors \
        "CPU, % of one core: client nginx backend other" "nginx us/PUT" "$hdr"
    echo "   (CPU over each run; other = the rest of the machine: kernel threads, softirq,"
    echo "   other processes; other well above ~15 means outside interference; nginx us/PUT:"
    echo "   CPU time of the nginx master and workers over the run / PUTs answered in it)"
    for r in $(seq 1 "$ROUNDS"); do
        if [ "$ORDER" = abba ] && [ $((r % 2)) = 0 ]; then
            sides="b a"
        else
            sides="a b"
        fi
        for side in $sides; do
            out=$results/$kk-$side-$r
            read -ra npids <<<"$(nginx_pids "${prefix[$side-$b]}")"
            if [ "$b" = rgw ]; then p0=$(rgw_puts); fi
            n0=$(ticks "${npids[@]}"); k0=$(ticks "${backend_pids[@]}"); s0=$(sys_ticks)
            run_side "$side" "$b" "$c" $((r * 1000000)) "$SECONDS_PER_ROUND" \
                "$ROUND_WARMUP" "$out"
            n1=$(ticks "${npids[@]}"); k1=$(ticks "${backend_pids[@]}"); s1=$(sys_ticks)
            rps=$(field "$out" rps)
            secs=$(field "$out" seconds)
            req=$(field "$out" requests)
            wreq=$(field "$out" warmup_requests)
            err=$(($(field "$out" errors) + $(field "$out" warmup_errors)))
            ccpu=$(field "$out" client_cpu_s)
            # nginx CPU of this run and the PUTs it answered, for the totals
            echo "$((n1 - n0)) $((req + wreq))" >"$out.cpu"
            extra=
            if [ "$b" = rgw ]; then
                p1=$(rgw_puts)
                extra=$(awk -v p=$((p1 - p0)) -v n=$((req + wreq)) \
                    'BEGIN {printf "   %.3f", n ? p / n : 0}')
            fi
            sum_req[$side-$kk]=$((${sum_req[$side-$kk]} + req))
            sum_err[$side-$kk]=$((${sum_err[$side-$kk]} + err))
            sum_sec[$side-$kk]=$(awk -v x="${sum_sec[$side-$kk]}" -v y="$secs" 'BEGIN {print x + y}')
            sum_warm[$side-$kk]=$((${sum_warm[$side-$kk]} + wreq))
            # CPU shares over the whole bench_put run (warm-up included)
            wall=$(awk -v x="$secs" -v y="$ROUND_WARMUP" 'BEGIN {print x + y}')
            cpu=$($py - "$CLK_TCK" "$wall" "$ccpu" $((n1 - n0)) $((k1 - k0)) $((s1 - s0)) $((req + wreq)) <<'EOF'
import sys
hz, wall, client = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
ng, be, tot = (int(x) / hz for x in sys.argv[4:7])
puts = int(sys.argv[7])
other = max(tot - client - ng - be, 0)
print("%6.0f %6.0f %6.0f %6.0f  %28.0f"
      % (tuple(100 * x / wall for x in (client, ng, be, other))
         + (1e6 * ng / puts if puts else 0,)))
EOF
)
            printf '   %-5s %-9s %8s %8s %8s %6s  %s%s\n' "$r" "$(label "$side")" \
                "$rps" "$(field "$out" p50_ms)" "$(field "$out" p99_ms)" "$err" "$cpu" "$extra"
            if [ "$err" != 0 ]; then
                grep -E '^(status|first failure)' "$out" | sed 's/^/         /'
            fi
        done
    done

    # totals: throughput over all rounds, percentiles over all latencies,
    # nginx CPU per PUT over all rounds; one summary line per case
    echo
    echo "   totals over $ROUNDS rounds:"
    $py - "$b" "$c" "$ROUNDS" "$results" "$CLK_TCK" "$summary" \
        "${sum_err[a-$kk]}" "${sum_err[b-$kk]}" <<'EOF'
import math, sys
b, c, rounds, d, hz, summary = (sys.argv[1], int(sys.argv[2]),
                                int(sys.argv[3]), sys.argv[4],
                                float(sys.argv[5]), sys.argv[6])
errs = {"a": sys.argv[7], "b": sys.argv[8]}
base = "%s/%s-%d" % (d, b, c)

def res(side, r):
    with open("%s-%s-%d" % (base, side, r)) as f:
        for line in f:
            if line.startswith("result "):
                return dict(kv.split("=") for kv in line.split()[1:])

tot = {}
for side, name in (("a", "A proxy  "), ("b", "B gateway")):
    req, sec, lat, ticks, puts = 0, 0.0, [], 0, 0
    for r in range(1, rounds + 1):
        x = res(side, r)
        req += int(x["requests"])
        sec += float(x["seconds"])
        with open("%s-%s-%d.lat" % (base, side, r)) as f:
            lat.extend(int(v) for v in f)
        with open("%s-%s-%d.cpu" % (base, side, r)) as f:
            t, n = f.read().split()
            ticks += int(t)
            puts += int(n)
    lat.sort()

    def pct(p):
        return lat[max(1, math.ceil(p / 100 * len(lat))) - 1] / 1000 if lat else 0

    t = {"rps": req / sec, "p50": pct(50), "p99": pct(99),
         "us": 1e6 * ticks / hz / puts if puts else 0}
    tot[side] = t
    print("   %s %8.1f req/s  p50 %7.2f ms  p99 %7.2f ms  requests %d  errors %s"
          "  nginx %5.0f us/PUT"
          % (name, t["rps"], t["p50"], t["p99"], req, errs[side], t["us"]))

ratios, ra, rb, sa, sb = [], 0, 0, 0.0, 0.0
for r in range(1, rounds + 1):
    a, g = res("a", r), res("b", r)
    ratios.append(float(g["rps"]) / float(a["rps"]))
    ra += int(a["requests"]); sa += float(a["seconds"])
    rb += int(g["requests"]); sb += float(g["seconds"])
total = (rb / sb) / (ra / sa)
added = tot["b"]["p50"] - tot["a"]["p50"]
dcpu = tot["b"]["us"] - tot["a"]["us"]
print("   ratio B/A per round: %s" % " ".join("%.3f" % x for x in ratios))
# targets of issue 9: RGW >= 0.95; the stub at 256 connections (the cores
# are the limit) >= 0.8; the stub at 32 (latency-bound): p50 + <= 1.5 ms
if b == "rgw":
    target, met = ">= 0.95", total >= 0.95
elif c >= 256:
    target, met = ">= 0.8", total >= 0.8
else:
    target, met = "p50 + <= 1.5 ms", added <= 1.5
verdict = "met" if met else "NOT met"
print("   ratio B/A total:     %.3f  (min %.3f, max %.3f)" % (total, min(ratios), max(ratios)))
print("   p50 added by B:      %+.2f ms" % added)
print("   target %s: %s" % (target, verdict))
print("   nginx CPU per PUT:   A %.0f us, B %.0f us, B - A %+.0f us (target <= 35: %s)"
      % (tot["a"]["us"], tot["b"]["us"], dcpu, "met" if dcpu <= 35 else "NOT met"))
with open(summary, "a") as f:
    f.write("| %s, %d | %.0f | %.0f | **%.2f** (%.2f-%.2f) | %.1f / %.1f (%+.1f) "
            "| %.0f / %.0f | %.0f / %.0f (%+.0f) | %s: %s |\n"
            % ("RGW" if b == "rgw" else "stub", c, tot["a"]["rps"],
               tot["b"]["rps"], total, min(ratios), max(ratios),
               tot["a"]["p50"], tot["b"]["p50"], added,
               tot["a"]["p99"], tot["b"]["p99"],
               tot["a"]["us"], tot["b"]["us"], dcpu, target, verdict))
EOF

    if [ -n "${PERF:-}" ]; then
        echo
        echo "   perf: one extra gateway round (not counted), perf record -a -g"
        perf record -a -g -o "$results/perf-$kk.data" -- sleep "$SECONDS_PER_ROUND" \
            >"$results/perf-$kk.log" 2>&1 &
        perf_pid=$!
        run_side b "$b" "$c" 9000000 "$SECONDS_PER_ROUND" 0 "$results/$kk-b-perf"
        wait "$perf_pid" || true
        echo "   req/s under perf: $(field "$results/$kk-b-perf" rps)"
        sum_warm[b-$kk]=$((${sum_warm[b-$kk]} + $(field "$results/$kk-b-perf" requests)))
        echo "   CPU by command:"
        { perf report -i "$results/perf-$kk.data" --stdio --no-children \
            --sort comm -g none 2>/dev/null || true; } |
            grep -E '^ +[0-9.]+%' | sed -n '1,15s/^/     /p'
        echo "   top symbols in nginx processes (share of nginx samples):"
        { perf report -i "$results/perf-$kk.data" --stdio --no-children \
            --comm nginx --percentage relative --sort dso,sym -g none \
            2>/dev/null || true; } |
            grep -E '^ +[0-9.]+%' | sed -n '1,30s/^/     /p'
        echo "   nginx samples by DSO (share of all samples):"
        { perf report -i "$results/perf-$kk.data" --stdio --no-children \
            --sort comm,dso -g none 2>/dev/null || true; } |
            awk '$2 == "nginx"' | sed -n '1,12s/^/     /p'
    fi

    echo
    echo "   gateway metrics (B against $b since it started, warm-ups and earlier cases included):"
    { curl -s --max-time 10 "http://127.0.0.1:${port[b-$b]}/zarr-metrics" || true; } |
        $py -c '
import re, sys
m = {}
for line in sys.stdin:
    if line.startswith("#") or not line.strip():
        continue
    name, value = line.rsplit(None, 1)
    m[name] = float(value)
if not m:
    print("     (no metrics location)")
    sys.exit(0)
puts = sum(v for k, v in m.items() if k.startswith("zarr_requests_total{op=\"put\""))
n, t = m.get("zarr_commit_seconds_count", 0), m.get("zarr_commit_seconds_sum", 0)
print("     PUTs seen %d: %s" % (puts, ", ".join("%s %d" % (re.search("result=\"(\\w+)", k).group(1), v)
      for k, v in m.items() if k.startswith("zarr_requests_total{op=\"put\"") and v)))
if n:
    print("     LMDB group commits %d (%.2f per PUT), mean %.3f ms, total %.1f s" % (n, n / max(puts, 1), 1000 * t / n, t))
auth = ["%s %d" % (re.search("reason=\"(\\w+)", k).group(1), v)
        for k, v in m.items() if k.startswith("zarr_auth_failures_total") and v]
print("     signatures refused: %s" % (", ".join(auth) or "none"))
for k in ("zarr_mirror_writes_total{kind=\"put\"}", "zarr_mirror_writes_total{kind=\"delete\"}",
          "zarr_mirror_errors_total", "zarr_mirror_backlog", "zarr_conflicts_total",
          "zarr_backend_errors_total", "zarr_intents_resolved_total"):
    if k in m:
        print("     %s %d" % (k, m[k]))
'

    echo
    echo "   error.log lines at warn or above (since start):"
    for pre in "${prefix[a-$b]}" "${prefix[b-$b]}"; do
        n=$(grep -cE '\[(warn|error|crit|alert|emerg)\]' "$pre/error.log" || true)
        echo "     $(basename "$pre"): $n"
        { grep -E '\[(warn|error|crit|alert|emerg)\]' "$pre/error.log" || true; } |
            sed -n '1,5s/^/       /p'
    done

    # the gateway's tree of its zarr against the backend
    expected=$((${sum_warm[b-$kk]} + ${sum_req[b-$kk]}))
    echo
    echo "   gateway store (zarrctl store list, zarr B); PUTs sent to B: $expected, non-2xx: ${sum_err[b-$kk]}"
    "$zarrctl" store --store "${prefix[b-$b]}/store" list |
        grep -F "${zid[b-$kk]}" | sed 's/^/     /' || echo "     (zarr not in the store)"
    if [ "$b" = rgw ]; then
        gw=$("$zarrctl" store --store "${prefix[b-rgw]}/store" digest "$BUCKET" "${zid[b-$kk]}" 2>&1) || true
        be=$("$zarrctl" checksum --s3 "s3://$BUCKET/zarr/${zid[b-$kk]}/" --endpoint "$RGW_ENDPOINT" 2>&1) || true
        echo "   gateway tree digest:   $gw"
        echo "   RGW listing checksum:  $be"
        if [ -n "$gw" ] && [ "$gw" = "$be" ]; then
            echo "   consistent: yes"
        else
            echo "   consistent: no"
        fi
    fi
done

echo
echo "== summary (A plain proxy_pass, B the gateway with signature verification: B against RGW AUTH_RGW=$AUTH_RGW, against the stub AUTH_STUB=$AUTH_STUB)"
echo
echo "| backend, connections | A req/s | B req/s | B/A (per round) | p50 A / B ms (added) | p99 A / B ms | nginx CPU us/PUT A / B (B - A) | target |"
echo "|---|---|---|---|---|---|---|---|"
cat "$summary"
echo
echo "loadavg   $(cut -d' ' -f1-3 /proc/loadavg) (at the end; counts this benchmark's own threads)"
