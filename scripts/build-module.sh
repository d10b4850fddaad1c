#!/usr/bin/env bash
# Builds ngx_http_zarr_module.so against Debian's nginx-dev sources
# (/usr/share/nginx/src), with the same configure flags as the system
# nginx, so that the system nginx can load_module it (--with-compat).
#
# usage: scripts/build-module.sh BUILD_DIR
# result: BUILD_DIR/nginx/ngx_http_zarr_module.so
#
# ZARR_CC_OPT and ZARR_LD_OPT, when set, are passed to configure as
# --with-cc-opt and --with-ld-opt (debian/rules: dpkg-buildflags).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=$(mkdir -p "$1" && cd "$1" && pwd)
src=/usr/share/nginx/src

if [ ! -f "$src/conf_flags" ]; then
    echo "build-module: $src/conf_flags is missing: run 'make deps'" \
         "(package nginx-dev)" >&2
    exit 1
fi

# configure writes its Makefile into the current directory: work on a
# private copy of the sources, never in /usr/share/nginx/src
tree="$build/nginx-src"
stamp="$tree/.zarr-configured"
cc_opt=${ZARR_CC_OPT:-}
ld_opt=${ZARR_LD_OPT:-}
want="$( (cat "$src/conf_flags" "$repo/config"; echo "$cc_opt"; echo "$ld_opt") \
        | md5sum | cut -d' ' -f1)"
extra=()
if [ -n "$cc_opt" ]; then
    extra+=(--with-cc-opt="$cc_opt")
fi
if [ -n "$ld_opt" ]; then
    extra+=(--with-ld-opt="$ld_opt")
fi

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    rm -rf "$tree"
    cp -a "$src" "$tree"
    # shellcheck disable=SC1091
    . "$src/conf_flags"
    (cd "$tree" && ./configure "${NGX_CONF_FLAGS[@]}" \
        ${extra[@]+"${extra[@]}"} \
        --add-dynamic-module="$repo" --builddir="$build/nginx" \
        > "$build/configure.log" 2>&1) || {
        tail -30 "$build/configure.log" >&2
        echo "build-module: nginx configure failed (log:" \
             "$build/configure.log)" >&2
        exit 1
    }
    echo "$want" > "$stamp"
fi

make -C "$tree" -f "$build/nginx/Makefile" modules \
    > "$build/module-make.log" 2>&1 || {
    grep -E 'error|warning' "$build/module-make.log" | head -40 >&2
    tail -20 "$build/module-make.log" >&2
    echo "build-module: make modules failed (log: $build/module-make.log)" >&2
    exit 1
}

echo "built $build/nginx/ngx_http_zarr_module.so"
