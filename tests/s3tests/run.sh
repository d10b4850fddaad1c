#!/usr/bin/env bash
# run.sh: ceph/s3-tests against RGW directly, then through the zarr gateway,
# and the difference between the two.  What `make s3-tests` calls; not part
# of `make test` (it needs a checkout of ceph/s3-tests, which CI does not
# have, and takes a while).  Builds nothing: run `make all` first.
#
#   tests/s3tests/run.sh [S3TESTS]
#
# S3TESTS (argument or environment) is a ceph/s3-tests checkout, or any git
# repository of it (a bare mirror too): it is cloned into the output
# directory, so that nothing is written into it.
#
# Steps: start a throwaway RGW (scripts/rgw.sh); create the users s3-tests
# needs (main, alt, tenant, iam, iam root, iam alt root) with radosgw-admin
# and write its conf (S3TEST_CONF); run s3tests/functional/test_s3.py against
# RGW (direct), then through nginx with the module built in this tree
# (conf/nginx-gateway.conf.template, rendered as scripts/run.sh does); each
# run with `-p no:cacheprovider --junitxml`; compare the two junit files
# (tests/s3tests/compare.py).  Exit status: 0 when every test that passes
# directly passes through the gateway too, apart from those listed in
# tests/s3tests/known_differences.txt; 1 when there is another regression;
# 2 when the harness itself failed.
#
# Environment:
#   S3TESTS_OUT        output directory (default build/s3tests/run-DATE):
#                      junit-{direct,gateway}.xml, pytest-*.log, summary.txt,
#                      s3tests.conf, s3tests.keys, nginx/ (conf, logs), rgw/
#                      (ceph.conf, logs); kept after the run
#   S3TESTS_MODES      "direct gateway" (default), or only one of them: a
#                      later `compare.py` can take junit files of two runs
#   S3TESTS_MARKERS    pytest -m expression (default: see MARKERS below)
#   S3TESTS_DESELECT   test names to leave out (default: see DESELECT below)
#   S3TESTS_K          pytest -k expression (a subset, e.g. to rerun failures)
#   S3TESTS_FILES      test files relative to the checkout (default:
#                      s3tests/functional/test_s3.py, or the older
#                      s3tests_boto3/functional/test_s3.py layout)
#   S3TESTS_TIMEOUT    per-test timeout in seconds (default 600; needs
#                      python3-pytest-timeout, else no timeout)
#   S3TESTS_PYTEST_ARGS  more pytest arguments (e.g. "-x")
#   GATEWAY_AUTH       where the gateway finds the secrets to verify signatures
#                      (DESIGN 4b, the template's @AUTH@): "rgw" (default, as
#                      conf/ and `make run`: `zarr_credentials rgw valid=60s;`,
#                      RGW's admin API with the gateway's system user), "file"
#                      (or 1: `zarr_credentials file=<out>/s3tests.keys;`, the
#                      s3-tests users' keys as ACCESS SECRET OWNER lines), or
#                      "none" (or 0: no verification, the fallback)
#   ZARR_LOG_LEVEL     the gateway's error_log level (default notice; info logs
#                      every refused signature)
#   NGINX_WORKERS      worker_processes of the gateway (default 2)
#   KNOWN_DIFFERENCES  allow-list (default tests/s3tests/known_differences.txt)
#   RGW_STORE, RGW_MEMSTORE_BYTES   see scripts/rgw.sh (default here:
#                      memstore of 8 GiB; gc after 10 s keeps it small)
#   ZARR_BUILD_DIR     where the module was built (default <repo>/build)
#   ZARR_NGINX         nginx binary (default /usr/sbin/nginx)
#   KEEP_RUNNING=1     leave RGW (and nginx) running at the end, for reruns
#                      by hand; the commands to stop them are printed

set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
here=$repo/tests/s3tests
build=${ZARR_BUILD_DIR:-$repo/build}
nginx_bin=${ZARR_NGINX:-/usr/sbin/nginx}
python=/usr/bin/python3
template=$repo/conf/nginx-gateway.conf.template
known=${KNOWN_DIFFERENCES:-$here/known_differences.txt}
modes=${S3TESTS_MODES:-direct gateway}
timeout_s=${S3TESTS_TIMEOUT:-600}

# Tests to leave out.  s3-tests' README: `-m 'not fails_on_rgw'` for RGW.
# Beyond that, what ceph's own qa (qa/tasks/s3tests.py) leaves out when the
# feature is not configured, and what this RGW (16.2) lacks:
#   lifecycle_expiration, lifecycle_transition: need `rgw lc debug interval`
#     and sleep up to 2 minutes each (no lifecycle work at the gateway);
#   cloud_transition, cloud_restore: need a second S3 as cloud tier;
#   test_of_sts, webidentity_test: STS and Keycloak;
#   sse_s3: needs Vault;
#   fails_with_subdomain: virtual-hosted addressing (we use path-style);
#   bucket_logging: not in RGW before 19 (squid); the tests wait for
#     log-object roll-overs.
MARKERS=${S3TESTS_MARKERS:-not fails_on_rgw and not lifecycle_expiration}
MARKERS="$MARKERS and not lifecycle_transition and not cloud_transition"
MARKERS="$MARKERS and not cloud_restore and not test_of_sts"
MARKERS="$MARKERS and not webidentity_test and not sse_s3"
MARKERS="$MARKERS and not fails_with_subdomain and not bucket_logging"
[ -z "${S3TESTS_MARKERS:-}" ] || MARKERS=$S3TESTS_MARKERS

# Tests that crash this radosgw (16.2.15), so that every later test fails:
#   test_upload_part_copy_percent_encoded_key: UploadPartCopy from a key
#     with a '%' aborts radosgw in RGWObjectCtx::set_atomic (BACKEND.md)
DESELECT=${S3TESTS_DESELECT-test_upload_part_copy_percent_encoded_key}

die() {
    echo "s3tests/run.sh: error: $*" >&2
    exit 2
}

log() {
    echo "s3tests/run.sh: $*"
}

free_port() {
    $python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_open() {
    $python -c 'import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
except OSError:
    sys.exit(1)' "$1"
}

src=${1:-${S3TESTS:-}}
[ -n "$src" ] || die "usage: run.sh S3TESTS_CHECKOUT (or S3TESTS=...): a ceph/s3-tests checkout or git repository"
[ -e "$src" ] || die "$src does not exist"
module=$(cd "$build" 2>/dev/null && pwd)/nginx/ngx_http_zarr_module.so ||
    die "$build does not exist: run 'make all'"
[ -f "$module" ] || die "$module is missing: run 'make all'"
[ -x "$nginx_bin" ] || die "$nginx_bin not found (apt-get install nginx)"
for m in pytest boto3 munch isodate lxml dateutil pytz requests yaml; do
    $python -c "import $m" 2>/dev/null ||
        die "python module $m missing for $python (make deps: DEPS_TEST)"
done
timeout_args=()
if $python -c 'import pytest_timeout' 2>/dev/null; then
    timeout_args=(--timeout "$timeout_s")
else
    log "warning: python3-pytest-timeout not installed: no per-test timeout"
fi

out=${S3TESTS_OUT:-$build/s3tests/run-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
rgw_dir=$out/rgw
prefix=$out/nginx
nginx_pid=
keys=$out/s3tests.keys

# the gateway's credential source (GATEWAY_AUTH)
case ${GATEWAY_AUTH:-rgw} in
rgw) auth="zarr_credentials rgw valid=60s;" ;;
file | 1) auth="zarr_credentials file=$keys;" ;;
none | 0) auth="" ;;
*) die "GATEWAY_AUTH must be rgw, file or none" ;;
esac

# shellcheck disable=SC2317  # called from the trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "${KEEP_RUNNING:-}" ]; then
        log "left running: RGW ($rgw_dir)${nginx_pid:+, nginx pid $nginx_pid}"
        log "stop with: ${nginx_pid:+kill $nginx_pid; }$repo/scripts/rgw.sh stop $rgw_dir"
        exit $rc
    fi
    if [ -n "$nginx_pid" ] && kill -0 "$nginx_pid" 2>/dev/null; then
        kill -TERM "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
    fi
    "$repo/scripts/rgw.sh" stop "$rgw_dir" || true
    log "results and logs in $out"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the s3-tests checkout ---------------------------------------------------

checkout=$out/s3-tests
if [ ! -d "$checkout" ]; then
    git clone -q "$src" "$checkout" || die "git clone $src failed"
fi
log "s3-tests $(git -C "$checkout" log -1 --format='%h %cs %s')"
if [ -z "${S3TESTS_FILES:-}" ]; then
    if [ -f "$checkout/s3tests/functional/test_s3.py" ] &&
        grep -q '^import boto3' "$checkout/s3tests/functional/__init__.py"; then
        S3TESTS_FILES=s3tests/functional/test_s3.py
    else
        S3TESTS_FILES=s3tests_boto3/functional/test_s3.py
    fi
fi
for f in $S3TESTS_FILES; do
    [ -f "$checkout/$f" ] || die "$checkout/$f not found"
done

# --- RGW and the s3-tests users ------------------------------------------------

export RGW_STORE=${RGW_STORE:-memstore}
# s3-tests' SSE-C and SSE-KMS tests over plain http need these, as ceph's qa
# sets them (they cannot be changed on a running radosgw); lifecycle work
# every 10 s stands for a day
export RGW_EXTRA_CONF="rgw crypt require ssl = false
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = testkey-1=YmluCmJvb3N0CmJvb3N0LWJ1aWxkCmNlcGguY29uZgo= testkey-2=aWIKTWFrZWZpbGUKbWFuCm91dApzcmMKVGVzdGluZwo=
rgw lc debug interval = 10${RGW_EXTRA_CONF:+
$RGW_EXTRA_CONF}"
export RGW_MEMSTORE_BYTES=${RGW_MEMSTORE_BYTES:-8589934592}
rgw_port=$(free_port)
"$repo/scripts/rgw.sh" start "$rgw_dir" "$rgw_port" || die "rgw.sh start failed"
export CEPH_CONF=$rgw_dir/ceph.conf

# Fixed, well-known test credentials of this throwaway cluster: those of
# s3-tests' s3tests.conf.SAMPLE (the users ceph's vstart.sh creates).
# name|uid|tenant|display name|email|access key|secret key|caps
users='main|testid||M. Tester|tester@ceph.com|0555b35654ad1656d804|h7GhxuBLTrlhVUyxSPUKUV8r/2EI4ngqJxD7iBdBYLhwluN30JaT3Q==|
alt|56789abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234||john.doe|john.doe@example.com|NOPQRSTUVWXYZABCDEFG|nopqrstuvwxyzabcdefghijklmnabcdefghijklm|
tenant|9876543210abcdef0123456789abcdef0123456789abcdef0123456789abcdef|testx|tenanteduser|tenanteduser@example.com|HIJKLMNOPQRSTUVWXYZA|opqrstuvwxyzabcdefghijklmnopqrstuvwxyzab|
iam|0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef||youruseridhere|s3@example.com|ABCDEFGHIJKLMNOPQRST|abcdefghijklmnopqrstuvwxyzabcdefghijklmn|roles=*;user-policy=*;users=*
iamroot|RGW11111111111111111||iam root|account1@ceph.com|AAAAAAAAAAAAAAAAAAaa|aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa|
iamaltroot|RGW22222222222222222||iam alt root|account2@ceph.com|BBBBBBBBBBBBBBBBBBbb|bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb|'

# RGW 16.2 has no IAM accounts: "iam root" and "iam alt root" are plain
# users here, so that their keys at least authenticate (the iam_account
# tests are in test_iam.py, not run by default).
create_s3tests_user() {
    local name=$1 uid=$2 tenant=$3 display=$4 email=$5 access=$6 secret=$7
    local caps=$8
    local args=(--uid "$uid" --display-name "$display" --email "$email"
        --access-key "$access" --secret-key "$secret")
    [ -z "$tenant" ] || args+=(--tenant "$tenant")
    timeout 60 radosgw-admin user create "${args[@]}" \
        >"$rgw_dir/log/s3tests-user-$name.out" 2>&1 || {
        cat "$rgw_dir/log/s3tests-user-$name.out" >&2
        return 1
    }
    if [ -n "$caps" ]; then
        timeout 60 radosgw-admin caps add --uid "$uid" --caps "$caps" \
            >>"$rgw_dir/log/s3tests-user-$name.out" 2>&1 || {
            cat "$rgw_dir/log/s3tests-user-$name.out" >&2
            return 1
        }
    fi
}

pids=()
while IFS='|' read -r name uid tenant display email access secret caps; do
    create_s3tests_user "$name" "$uid" "$tenant" "$display" "$email" \
        "$access" "$secret" "$caps" &
    pids+=($!)
done <<<"$users"
for p in "${pids[@]}"; do
    wait "$p" || die "radosgw-admin user create failed"
done

field() {
    # field NAME COLUMN: a column (1-based) of a user's line above
    awk -F'|' -v n="$1" -v c="$2" '$1 == n { print $c }' <<<"$users"
}

# ACCESS_KEY SECRET OWNER lines for `zarr_credentials file=` (DESIGN 4b);
# the owner is the RGW user id ("tenant$uid" for a tenant's user)
(
    umask 077
    while IFS='|' read -r name uid tenant display email access secret caps; do
        echo "$access $secret ${tenant:+$tenant\$}$uid"
    done <<<"$users" >"$keys"
)

write_conf() {
    # write_conf FILE PORT
    cat >"$1" <<EOF
# generated by tests/s3tests/run.sh
[DEFAULT]
host = 127.0.0.1
port = $2
is_secure = False
ssl_verify = False

[fixtures]
bucket prefix = s3t-{random}-

[s3 main]
display_name = $(field main 4)
user_id = $(field main 2)
email = $(field main 5)
api_name = default
access_key = $(field main 6)
secret_key = $(field main 7)

[s3 alt]
display_name = $(field alt 4)
user_id = $(field alt 2)
email = $(field alt 5)
access_key = $(field alt 6)
secret_key = $(field alt 7)

[s3 tenant]
display_name = $(field tenant 4)
user_id = $(field tenant 2)
email = $(field tenant 5)
access_key = $(field tenant 6)
secret_key = $(field tenant 7)
tenant = $(field tenant 3)

[iam]
display_name = $(field iam 4)
user_id = $(field iam 2)
email = $(field iam 5)
access_key = $(field iam 6)
secret_key = $(field iam 7)

[iam root]
user_id = $(field iamroot 2)
email = $(field iamroot 5)
access_key = $(field iamroot 6)
secret_key = $(field iamroot 7)

[iam alt root]
user_id = $(field iamaltroot 2)
email = $(field iamaltroot 5)
access_key = $(field iamaltroot 6)
secret_key = $(field iamaltroot 7)
EOF
}

# --- the gateway ----------------------------------------------------------------

start_gateway() {
    local port conf
    port=$(free_port)
    mkdir -p "$prefix"
    conf=$prefix/nginx.conf
    sed -e "s|@PREFIX@|$prefix|g" \
        -e "s|@MODULE@|$module|g" \
        -e "s|@USER@|$(id -un)|g" \
        -e "s|@WORKERS@|${NGINX_WORKERS:-2}|g" \
        -e "s|@LISTEN_PORT@|$port|g" \
        -e "s|@RGW_PORT@|$rgw_port|g" \
        -e "s|@CREDENTIALS@|$rgw_dir/gateway.cred|g" \
        -e "s|@BATCH_TIMEOUT@|60s|g" \
        -e "s|@LOG_LEVEL@|${ZARR_LOG_LEVEL:-notice}|g" \
        -e "s|@AUTH@|$auth|g" \
        "$template" >"$conf"
    if grep -n '@[A-Z_]*@' "$conf" >&2; then
        die "unrendered placeholders in $conf"
    fi
    log "gateway: signature verification: ${auth:-off (GATEWAY_AUTH=none)}"
    local args=(-p "$prefix" -c "$conf" -e "$prefix/error.log")
    "$nginx_bin" -t -q "${args[@]}" || die "nginx -t failed for $conf"
    "$nginx_bin" "${args[@]}" -g 'daemon off;' &
    nginx_pid=$!
    local _
    for _ in $(seq 1 100); do
        port_open "$port" && break
        kill -0 "$nginx_pid" 2>/dev/null || {
            tail -n 20 "$prefix/error.log" >&2
            die "nginx exited"
        }
        sleep 0.1
    done
    port_open "$port" || die "nginx does not listen on $port"
    gateway_port=$port
}

# --- the runs --------------------------------------------------------------------

run_suite() {
    # run_suite MODE PORT
    local mode=$1 port=$2 t0 t1 rc=0
    local conf=$out/s3tests-$mode.conf
    write_conf "$conf" "$port"
    local args=(-p no:cacheprovider "${timeout_args[@]}" -q -rfE
        --junitxml "$out/junit-$mode.xml" -m "$MARKERS")
    [ -z "${S3TESTS_K:-}" ] || args+=(-k "$S3TESTS_K")
    local f t
    for f in $S3TESTS_FILES; do
        for t in $DESELECT; do
            args+=(--deselect "$f::$t")
        done
    done
    # shellcheck disable=SC2206  # word splitting wanted
    args+=(${S3TESTS_PYTEST_ARGS:-} $S3TESTS_FILES)
    log "$mode: pytest against 127.0.0.1:$port (log: $out/pytest-$mode.log)"
    t0=$(date +%s)
    (cd "$checkout" && S3TEST_CONF=$conf PYTHONDONTWRITEBYTECODE=1 \
        $python -m pytest "${args[@]}") >"$out/pytest-$mode.log" 2>&1 || rc=$?
    t1=$(date +%s)
    echo "$mode $((t1 - t0))" >>"$out/times"
    log "$mode: pytest exited $rc after $((t1 - t0)) s: $(tail -n 1 "$out/pytest-$mode.log")"
    # 0 all passed, 1 some failed; anything else: pytest itself failed
    [ "$rc" -le 1 ] || die "pytest ($mode) exited $rc; see $out/pytest-$mode.log"
    [ -s "$out/junit-$mode.xml" ] || die "no junit file from the $mode run"
    # a backend that died mid-run fails every later test: not a result
    "$repo/scripts/rgw.sh" status "$rgw_dir" >/dev/null ||
        die "radosgw died during the $mode run (see $rgw_dir/log/client.rgw.a.log and the last test in $out/pytest-$mode.log); add the test that killed it to S3TESTS_DESELECT"
    if [ "$mode" = gateway ]; then
        kill -0 "$nginx_pid" 2>/dev/null ||
            die "nginx exited during the gateway run (see $prefix/error.log)"
        local bad
        bad=$(grep -c '\[alert\]\|\[emerg\]\|\[crit\]' "$prefix/error.log" || true)
        log "gateway: $bad [alert]/[emerg]/[crit] lines in $prefix/error.log"
        grep '\[alert\]\|\[emerg\]\|\[crit\]' "$prefix/error.log" | head -n 20 || true
        grep -c 'worker process .* exited on signal' "$prefix/error.log" |
            sed 's/^/s3tests\/run.sh: gateway: workers that died on a signal: /' || true
        # how much of the suite the gateway took for zarr requests, and how
        # many signatures it refused itself (DESIGN 4b)
        curl -s --max-time 10 "http://127.0.0.1:$gateway_port/zarr-metrics" |
            awk '/^zarr_requests_total/ { r += $NF }
                 /^zarr_auth_failures_total/ { a += $NF }
                 END { printf "s3tests/run.sh: gateway: zarr_requests_total %d, " \
                       "zarr_auth_failures_total %d\n", r, a }' || true
    fi
}

: >"$out/times"
for mode in $modes; do
    case $mode in
    direct)
        run_suite direct "$rgw_port"
        ;;
    gateway)
        start_gateway
        run_suite gateway "$gateway_port"
        ;;
    *) die "unknown mode '$mode' in S3TESTS_MODES (direct, gateway)" ;;
    esac
done

if [ -s "$out/junit-direct.xml" ] && [ -s "$out/junit-gateway.xml" ]; then
    rc=0
    $python "$here/compare.py" --known "$known" --times "$out/times" \
        "$out/junit-direct.xml" "$out/junit-gateway.xml" |
        tee "$out/summary.txt" || rc=${PIPESTATUS[0]}
    [ "$rc" -le 1 ] || die "compare.py failed"
    exit "$rc"
fi
log "one mode only: nothing to compare"
