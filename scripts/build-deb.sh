#!/usr/bin/env bash
# Builds the Debian packages libnginx-mod-http-zarr and zarrctl (make deb)
# from a copy of the working tree, so that dpkg-buildpackage's residue
# (debian/build, debian/<package>/, the .debs it writes into the parent
# directory) stays under DEB_DIR; then runs lintian on the .debs and
# fails on errors (warnings are printed).
#
# usage: scripts/build-deb.sh DEB_DIR
# result: DEB_DIR/libnginx-mod-http-zarr_<version>_<arch>.deb,
#         DEB_DIR/zarrctl_<version>_<arch>.deb; their debug symbols in
#         DEB_DIR/dbgsym/ (so that apt-get install DEB_DIR/*.deb installs
#         just the two)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
src="$out/ngx-zarr"

for tool in dpkg-buildpackage dh dh_nginx lintian; do
    if ! command -v "$tool" > /dev/null; then
        echo "build-deb: $tool is missing: run 'make deps'" >&2
        exit 1
    fi
done

rm -rf "$src"
rm -rf "$out/dbgsym"
rm -f "$out"/*.deb "$out"/*.ddeb "$out"/*.buildinfo "$out"/*.changes
mkdir -p "$src"
(cd "$repo" && tar -c --exclude=./.git --exclude=./build \
     --exclude="./${out#"$repo"/}" .) | tar -x -C "$src"

(cd "$src" && dpkg-buildpackage -b -us -uc) > "$out/build.log" 2>&1 || {
    tail -40 "$out/build.log" >&2
    echo "build-deb: dpkg-buildpackage failed (log: $out/build.log)" >&2
    exit 1
}

mkdir -p "$out/dbgsym"
mv "$out"/*-dbgsym_*.*deb "$out/dbgsym/"
ls "$out"/*.deb
lintian --fail-on error --info "$out"/*.deb
