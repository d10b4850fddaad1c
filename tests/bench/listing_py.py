#!/usr/bin/python3
"""The root digest of a PATH<TAB>SIZE<TAB>ETAG listing in Python, for
tests/bench/listing_ratio.sh:

  listing_py.py ref LISTING            tests/integration/zarr_ref.py, the
                                       project's own Python model
  listing_py.py zarr_checksum LISTING  DANDI's zarr_checksum package (its
                                       compute_zarr_checksum), importable
                                       from PYTHONPATH; exit 3 if it is not

Lines are split at their last two TABs and the ETag's quotes cut, as
zarrctl does.  Prints the root digest."""

import os
import sys


def lines(path):
    with open(path, encoding="utf-8", newline="\n") as f:
        for line in f:
            line = line.rstrip("\n").rstrip("\r")
            if not line:
                continue
            p, s, e = line.rsplit("\t", 2)
            if len(e) >= 2 and e[0] == '"' and e[-1] == '"':
                e = e[1:-1]
            yield p, int(s), e


def run_ref(path):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "integration"))
    from zarr_ref import tree_digests
    return tree_digests(lines(path))[""]


def run_zarr_checksum(path):
    from pathlib import Path
    try:
        from zarr_checksum import compute_zarr_checksum
        from zarr_checksum.generators import ZarrArchiveFile
    except ImportError as e:
        print("zarr_checksum cannot be imported: %s" % e, file=sys.stderr)
        sys.exit(3)
    files = (ZarrArchiveFile(path=Path(p), size=s, digest=e)
             for p, s, e in lines(path))
    return str(compute_zarr_checksum(files))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("ref", "zarr_checksum"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    if sys.argv[1] == "ref":
        print(run_ref(sys.argv[2]))
    else:
        print(run_zarr_checksum(sys.argv[2]))


if __name__ == "__main__":
    main()
