"""An independent Python model of the DANDI zarr checksum (DESIGN section 2),
written from the algorithm's description, to cross-check zarrctl on inputs
that the vectors do not cover (random trees, local directories)."""

import hashlib
import json


def _digest(manifest):
    count = len(manifest["files"]) + sum(
        int(d["digest"].split("-")[1]) for d in manifest["directories"])
    size = sum(e["size"] for e in manifest["files"]) + sum(
        e["size"] for e in manifest["directories"])
    data = json.dumps(manifest, separators=(",", ":"), ensure_ascii=True)
    return "%s-%d--%d" % (hashlib.md5(data.encode()).hexdigest(), count,
                          size), size


def tree_digests(files):
    """files: iterable of (path, size, etag).  Returns {dir: digest}, the
    root as ''."""
    root = {"dirs": {}, "files": {}}
    for path, size, etag in files:
        node = root
        parts = path.split("/")
        for p in parts[:-1]:
            node = node["dirs"].setdefault(p, {"dirs": {}, "files": {}})
        node["files"][parts[-1]] = (size, etag)

    out = {}

    def walk(node, prefix):
        dirs = []
        for name in sorted(node["dirs"], key=lambda s: s.encode()):
            d, s = walk(node["dirs"][name],
                        prefix + "/" + name if prefix else name)
            dirs.append({"digest": d, "name": name, "size": s})
        files = [{"digest": etag, "name": name, "size": size}
                 for name, (size, etag) in sorted(
                     node["files"].items(), key=lambda kv: kv[0].encode())]
        d, s = _digest({"directories": dirs, "files": files})
        out[prefix] = d
        return d, s

    walk(root, "")
    return out


def tree_documents(files):
    """{dir: .checksum document bytes} (DESIGN section 3), the root as ''."""
    root = {"dirs": {}, "files": {}}
    for path, size, etag in files:
        node = root
        parts = path.split("/")
        for p in parts[:-1]:
            node = node["dirs"].setdefault(p, {"dirs": {}, "files": {}})
        node["files"][parts[-1]] = (size, etag)

    out = {}

    def walk(node, prefix):
        dirs = []
        for name in sorted(node["dirs"], key=lambda s: s.encode()):
            d, s = walk(node["dirs"][name],
                        prefix + "/" + name if prefix else name)
            dirs.append({"digest": d, "name": name, "size": s})
        files = [{"digest": etag, "name": name, "size": size}
                 for name, (size, etag) in sorted(
                     node["files"].items(), key=lambda kv: kv[0].encode())]
        manifest = {"directories": dirs, "files": files}
        d, s = _digest(manifest)
        out[prefix] = json.dumps({"checksums": manifest, "digest": d,
                                  "size": s}, separators=(",", ":"),
                                 ensure_ascii=True).encode()
        return d, s

    walk(root, "")
    return out
