# shellcheck shell=bash
# shellcheck disable=SC2154  # bench_name, py, nginx_bin, repo: the caller's
# Shell helpers of the benchmark scripts (tests/bench/*.sh), sourced:
#
#   . "$repo/tests/bench/lib.sh"
#
# The caller sets before using them:
#   bench_name   its name, for messages ("ingest.sh")
#   nginx_bin    the nginx binary
#   py           /usr/bin/python3
# and gets:
#   masters      pid files of the nginx instances started (bench_stop_all)
#
# put_ratio.sh keeps its own copies of these for now (they are the same).

masters=""

bench_die() {
    echo "$bench_name: error: $*" >&2
    exit 1
}

free_port() {
    $py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT: until something listens on 127.0.0.1:PORT (10 s at most)
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
        { tail -n 20 "$prefix/error.log" >&2; bench_die "nginx in $prefix did not start"; }
    masters="$masters $prefix/nginx.pid"
    wait_port "$port" || bench_die "nginx in $prefix does not listen on $port"
}

# stops every nginx started with start_nginx: TERM, then KILL after 10 s
bench_stop_all() {
    local pf pid _
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
    masters=""
}

# nginx_workers PREFIX: the worker pids of an nginx instance
nginx_workers() {
    pgrep -P "$(cat "$1/nginx.pid")" | tr '\n' ' '
}

# field FILE NAME: NAME=value from the result line of a bench_put output
field() {
    sed -n "s/^result .*\<$2=\([^ ]*\).*/\1/p" "$1"
}

# the machine and the build, for the record
bench_machine() {
    local module=$1
    echo "date      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu       $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "cores     $(nproc)"
    echo "memory    $(free -g | awk '/Mem:/ {print $2 " GiB"}')"
    echo "kernel    $(uname -r)"
    # shellcheck disable=SC1091  # a system file
    echo "os        $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "loadavg   $(cut -d' ' -f1-3 /proc/loadavg) (before start)"
    echo "nginx     $("$nginx_bin" -v 2>&1 | sed 's/.*: //')"
    echo "commit    $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
    echo "module    $module ($(stat -c %y "$module" | cut -d. -f1), sha256 $(sha256sum "$module" | cut -c1-12))"
}
