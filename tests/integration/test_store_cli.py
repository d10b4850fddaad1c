"""zarrctl store (read-only queries) on stores written by the core library
(tests/tools/store_apply), including two writers at once and a reader
beside a writer."""

import os
import random
import subprocess

from zarr_ref import tree_digests
from test_zarrctl import ZARRCTL, BUILD, parse_tree

STORE_APPLY = os.path.join(BUILD, "tools", "store_apply")


def apply(store, zarr, lines, group=50, bucket="bkt"):
    r = subprocess.run([STORE_APPLY, str(store), bucket, zarr, str(group)],
                       input="".join(l + "\n" for l in lines).encode(),
                       capture_output=True)
    assert r.returncode == 0, r.stderr


def store(args):
    return subprocess.run([ZARRCTL, "store"] + args, capture_output=True)


def random_ops(rnd, n, model):
    ops = []
    paths = ["%s/%d/%d" % (rnd.choice(["a", "b", "a/c"]), i % 5, i)
             for i in range(80)] + [".zattrs", ".zgroup", "x", "x/y"]
    for _ in range(n):
        p = rnd.choice(paths)
        if model and rnd.random() < 0.3:
            p = rnd.choice(sorted(model))
            ops.append("del\t" + p)
            model.pop(p, None)
        else:
            size = rnd.randint(0, 10 ** 6)
            etag = "%032x" % rnd.getrandbits(128)
            ops.append("put\t%s\t%d\t%s" % (p, size, etag))
            model[p] = (size, etag)
    return ops


def test_digest_list_status(tmp_path):
    rnd = random.Random(11)
    model = {}
    st = tmp_path / "store"
    for rounds in range(5):
        apply(st, "z1", random_ops(rnd, 200, model), group=rnd.randint(1, 90))
        if rounds == 2:
            apply(st, "z1", ["flush"])
        want = tree_digests([(p, s, e) for p, (s, e) in model.items()])

        r = store(["--store", str(st), "digest", "bkt", "z1"])
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode() == want[""] + "\n"

        r = store(["--store", str(st), "digest", "bkt", "z1", "--tree"])
        tree, lines = parse_tree(r.stdout)
        assert tree == want
        assert lines[-1] == ".\t" + want[""]

    apply(st, "z2", ["put\tonly\t1\tabc"])
    r = store(["--store", str(st), "list"])
    rows = [l.split("\t") for l in r.stdout.decode().splitlines()]
    assert [row[:2] for row in rows] == [["bkt", "z1"], ["bkt", "z2"]]
    want = tree_digests([(p, s, e) for p, (s, e) in model.items()])
    assert rows[0][2] == want[""]
    assert rows[0][3] == str(len(model))
    assert rows[0][4] == str(sum(s for s, _ in model.values()))
    assert rows[1][2:] == [tree_digests([("only", 1, "abc")])[""], "1", "1"]

    r = store(["--store", str(st), "status"])
    status = dict(l.split("\t") for l in r.stdout.decode().splitlines())
    assert status["zarrs"] == "2"
    assert int(status["map_used"]) > 0

    r = store(["--store", str(st), "digest", "bkt", "nope"])
    assert r.returncode == 2 and b"unknown" in r.stderr
    r = store(["--store", str(tmp_path / "missing"), "list"])
    assert r.returncode == 1 and r.stderr


def test_two_writers_and_a_reader(tmp_path):
    st = tmp_path / "store"
    apply(st, "z", [])
    procs = []
    files = []
    for w in range(2):
        lines = []
        for i in range(3000):
            path = "w%d/%d/%d" % (w, i % 10, i)
            lines.append("put\t%s\t%d\t%032x" % (path, i, i + w))
            files.append((path, i, "%032x" % (i + w)))
        procs.append(subprocess.Popen(
            [STORE_APPLY, str(st), "bkt", "z", "7"], stdin=subprocess.PIPE,
            stderr=subprocess.PIPE))
        procs[-1].stdin.write("".join(l + "\n" for l in lines).encode())
    for p in procs:
        p.stdin.close()
    # a read-only reader while both write: always a valid answer
    seen = 0
    while any(p.poll() is None for p in procs):
        r = store(["--store", str(st), "digest", "bkt", "z"])
        if r.returncode == 0:
            seen += 1
            assert r.stdout.decode().count("-") == 3
        else:
            assert b"unknown" in r.stderr
    for p in procs:
        assert p.wait() == 0, p.stderr.read()
    r = store(["--store", str(st), "digest", "bkt", "z"])
    assert r.stdout.decode() == tree_digests(files)[""] + "\n"
    assert tree_digests(files)[""].endswith("-6000--%d" % (2 * sum(
        range(3000))))
