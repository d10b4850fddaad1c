#!/usr/bin/env bash
# run.sh: what `make run` calls.  Builds nothing.  Starts a throwaway RGW
# (scripts/rgw.sh) and the zarr gateway, nginx from
# conf/nginx-gateway.conf.template, in front of it, under a fresh temporary directory, prints endpoints, credentials and
# example commands, and runs until Ctrl-C (SIGINT) or SIGTERM, which stop
# nginx and RGW.
#
# Environment:
#   NGINX_PORT, RGW_PORT   ports on 127.0.0.1 (default: free ports)
#   NGINX_WORKERS          worker_processes (default 2)
#   BATCH_TIMEOUT          zarr_batch_timeout (default 60s)
#   RGW_STORE, RGW_MEMSTORE_BYTES   see scripts/rgw.sh
#   ZARR_BUILD_DIR         where the module was built (default <repo>/build)
#   ZARR_NGINX             nginx binary (default /usr/sbin/nginx)
#   KEEP_RUN_DIR=1         keep the temporary directory (logs) at exit

set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${ZARR_BUILD_DIR:-$repo/build}
module=$(cd "$build" 2>/dev/null && pwd)/nginx/ngx_http_zarr_module.so
nginx_bin=${ZARR_NGINX:-/usr/sbin/nginx}
template=$repo/conf/nginx-gateway.conf.template

die() {
    echo "run.sh: error: $*" >&2
    exit 1
}

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_open() {
    /usr/bin/python3 -c 'import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
except OSError:
    sys.exit(1)' "$1"
}

[ -f "$module" ] || die "$module is missing: run 'make module'"
[ -x "$nginx_bin" ] || die "$nginx_bin not found (apt-get install nginx)"

rgw_port=${RGW_PORT:-$(free_port)}
nginx_port=${NGINX_PORT:-$(free_port)}
[ "$rgw_port" != "$nginx_port" ] || die "RGW_PORT and NGINX_PORT are equal"
! port_open "$nginx_port" || die "port $nginx_port is already in use"

run_dir=$(mktemp -d "${TMPDIR:-/tmp}/ngx_zarr-run.XXXXXX")
prefix=$run_dir/nginx
mkdir -p "$prefix"
nginx_pid=

# shellcheck disable=SC2317  # called from the traps below
cleanup() {
    trap - EXIT INT TERM
    echo
    echo "run.sh: stopping nginx and RGW"
    if [ -n "$nginx_pid" ] && kill -0 "$nginx_pid" 2>/dev/null; then
        kill -TERM "$nginx_pid" 2>/dev/null || true
        local _
        for _ in $(seq 1 100); do
            kill -0 "$nginx_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$nginx_pid" 2>/dev/null || true
    fi
    "$repo/scripts/rgw.sh" stop "$run_dir/rgw" || true
    if [ -n "${KEEP_RUN_DIR:-}" ]; then
        echo "run.sh: logs kept in $run_dir"
    else
        rm -rf "$run_dir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$repo/scripts/rgw.sh" start "$run_dir/rgw" "$rgw_port"
# shellcheck disable=SC1091
. "$run_dir/rgw/credentials.env"

sed -e "s|@PREFIX@|$prefix|g" \
    -e "s|@MODULE@|$module|g" \
    -e "s|@USER@|$(id -un)|g" \
    -e "s|@WORKERS@|${NGINX_WORKERS:-2}|g" \
    -e "s|@LISTEN_PORT@|$nginx_port|g" \
    -e "s|@RGW_PORT@|$rgw_port|g" \
    -e "s|@CREDENTIALS@|$run_dir/rgw/gateway.cred|g" \
    -e "s|@BATCH_TIMEOUT@|${BATCH_TIMEOUT:-60s}|g" \
    -e "s|@LOG_LEVEL@|${ZARR_LOG_LEVEL:-notice}|g" \
    -e "s|@AUTH@|${ZARR_AUTH-zarr_credentials rgw valid=60s;}|g" \
    "$template" >"$prefix/nginx.conf"
if grep -n '@[A-Z_]*@' "$prefix/nginx.conf" >&2; then
    die "unrendered placeholders in $prefix/nginx.conf"
fi

nginx_args=(-p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log")
"$nginx_bin" -t -q "${nginx_args[@]}" ||
    die "nginx -t failed for $prefix/nginx.conf"
"$nginx_bin" "${nginx_args[@]}" -g 'daemon off;' &
nginx_pid=$!
for _ in $(seq 1 100); do
    port_open "$nginx_port" && break
    kill -0 "$nginx_pid" 2>/dev/null || {
        tail -n 20 "$prefix/error.log" >&2
        die "nginx exited"
    }
    sleep 0.1
done
port_open "$nginx_port" || die "nginx does not listen on $nginx_port"

s3=http://127.0.0.1:$nginx_port
alice="AWS_ACCESS_KEY_ID=$ALICE_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$ALICE_SECRET_KEY AWS_DEFAULT_REGION=$RGW_REGION"
cat <<EOF

ngx_zarr is running: the zarr gateway in front of Ceph RGW.
Objects under s3://BUCKET/zarr/<zarr_id>/ are zarr members: their checksum
tree is kept in $prefix/store.

  S3 endpoint (nginx):  $s3
  RGW endpoint:         $RGW_ENDPOINT
  region:               $RGW_REGION
  alice:                access key $ALICE_ACCESS_KEY
                        secret key $ALICE_SECRET_KEY
  bob:                  access key $BOB_ACCESS_KEY
                        secret key $BOB_SECRET_KEY
  gateway (--system):   $run_dir/rgw/gateway.cred
  all credentials:      $run_dir/rgw/credentials.env
  nginx logs:           $prefix/error.log, $prefix/access.log
  RGW logs:             $run_dir/rgw/log/

Examples (/usr/bin/aws is Debian's awscli; the aws first on PATH may differ):

  $alice \\
    /usr/bin/aws --endpoint-url $s3 s3 mb s3://demo
  $alice \\
    /usr/bin/aws --endpoint-url $s3 s3 cp /etc/hostname s3://demo/zarr/z1/.zgroup
  $alice \\
    /usr/bin/aws --endpoint-url $s3 s3 ls --recursive s3://demo
  $repo/build/zarrctl store --store $prefix/store digest demo z1 --tree
  $alice \\
    $repo/build/zarrctl checksum --s3 s3://demo/zarr/z1/ --endpoint $s3
  s3cmd -c /dev/null --host=127.0.0.1:$nginx_port \\
    --host-bucket=127.0.0.1:$nginx_port \\
    --no-ssl --region=$RGW_REGION \\
    --access_key=$ALICE_ACCESS_KEY --secret_key=$ALICE_SECRET_KEY ls s3://demo
  # rclone breaks on this image's AWS_CA_BUNDLE: unset it
  env -u AWS_CA_BUNDLE rclone ls \\
    ":s3,provider=Other,endpoint='$s3',force_path_style=true,access_key_id=$ALICE_ACCESS_KEY,secret_access_key=$ALICE_SECRET_KEY:demo"

Ctrl-C stops nginx and RGW.
EOF

# returns when nginx exits or a signal arrives (then the traps clean up)
rc=0
wait "$nginx_pid" || rc=$?
nginx_pid=
echo "run.sh: nginx exited with status $rc" >&2
exit "$rc"
