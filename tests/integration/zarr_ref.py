"""An independent Python model of the DANDI zarr checksum (DESIGN section 2)
and of the .checksum documents (section 3), written from the algorithm's
description, to cross-check zarrctl and the gateway on inputs that the
vectors do not cover (random trees, local directories, the mirror)."""

import hashlib
import json


def _dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True)


def _digest(manifest):
    count = len(manifest["files"]) + sum(
        int(d["digest"].split("-")[1]) for d in manifest["directories"])
    size = sum(e["size"] for e in manifest["files"]) + sum(
        e["size"] for e in manifest["directories"])
    data = _dumps(manifest)
    return "%s-%d--%d" % (hashlib.md5(data.encode()).hexdigest(), count,
                          size), size


def _tree(files):
    """{dir: (digest, document bytes)} for (path, size, etag) files, the
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
        manifest = {"directories": dirs, "files": files}
        d, s = _digest(manifest)
        doc = _dumps({"checksums": manifest, "digest": d, "size": s})
        out[prefix] = (d, doc.encode())
        return d, s

    walk(root, "")
    return out


def tree_digests(files):
    """{dir: digest}, the root as ''."""
    return {d: v[0] for d, v in _tree(files).items()}


def tree_documents(files):
    """{dir: .checksum document bytes}, the root as ''."""
    return {d: v[1] for d, v in _tree(files).items()}
