#!/bin/sh
# nginx under valgrind memcheck, for the integration tests:
#   make valgrind   (= ZARR_NGINX=tests/integration/valgrind-nginx.sh pytest ...)
# Every nginx process (master, workers, nginx -t) writes its report to
# $ZARR_VALGRIND_DIR/<pid>.log; make valgrind fails when one is not empty.
# Leaks are not checked: nginx frees its pools at exit only in part.
dir=${ZARR_VALGRIND_DIR:-/tmp/zarr-valgrind}
mkdir -p "$dir"
exec valgrind --quiet --trace-children=yes --leak-check=no \
    --log-file="$dir/%p.log" /usr/sbin/nginx "$@"
