"""zarrctl checksum: listings (vectors, errors), local directories, S3."""

import hashlib
import json
import os
import random
import subprocess

import pytest

from zarr_ref import tree_digests

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.environ.get("ZARR_BUILD_DIR", os.path.join(REPO, "build"))
ZARRCTL = os.path.join(BUILD, "zarrctl")
VECTORS = os.path.join(REPO, "tests", "zarr_checksum_vectors.json")


def run(args, input=None, env=None):
    return subprocess.run([ZARRCTL] + args, input=input, capture_output=True,
                          env=env)


def parse_tree(out):
    tree = {}
    lines = out.decode().splitlines()
    for line in lines:
        d, digest = line.rsplit("\t", 1)
        tree["" if d == "." else d] = digest
    return tree, lines


def tsv(files):
    return "".join("%s\t%d\t%s\n" % f for f in files).encode()


def vector_cases():
    with open(VECTORS) as f:
        return json.load(f)["cases"]


@pytest.mark.parametrize("case", vector_cases(), ids=lambda c: c["name"])
def test_vectors_listing(case):
    files = [(f["path"], f["size"], f["md5"]) for f in case["files"]]
    r = run(["checksum", "--tree", "--listing", "-"], input=tsv(files))
    assert r.returncode == 0, r.stderr
    tree, lines = parse_tree(r.stdout)
    assert tree == case["directories"]
    assert lines[-1] == ".\t" + case["root_digest"]

    r = run(["checksum", "--listing", "-"], input=tsv(files))
    assert r.stdout.decode() == case["root_digest"] + "\n"

    # --documents: each directory's .checksum document (DESIGN section 3)
    r = run(["checksum", "--documents", "--listing", "-"], input=tsv(files))
    assert r.returncode == 0, r.stderr
    docs = {}
    for line in r.stdout.split(b"\n"):
        if line:
            d, doc = line.rsplit(b"\t", 1)
            docs["" if d == b"." else d.decode()] = doc
    assert set(docs) == set(case["directories"])
    for d, doc in docs.items():
        size = int(case["directories"][d].rsplit("--", 1)[1])
        want = ('{"checksums":%s,"digest":"%s","size":%d}' % (
            case["manifests"][d], case["directories"][d], size)).encode()
        assert doc == want

    jl = "".join(json.dumps({"path": p, "size": s, "etag": e}) + "\n"
                 for p, s, e in files).encode()
    r = run(["checksum", "--tree", "--listing", "-", "--format", "jsonl"],
            input=jl)
    assert r.returncode == 0, r.stderr
    assert parse_tree(r.stdout)[0] == case["directories"]


def test_random_trees_match_reference():
    rnd = random.Random(7)
    names = ["a", "b", "0", "10", "9", ".zarray", "x.y", "x", "\u00e9",
             "\U0001f600", "sp ace", "q\"uote", "t\tab", "A"]
    for _ in range(30):
        files = {}
        for _ in range(rnd.randint(1, 60)):
            depth = rnd.randint(1, 5)
            path = "/".join(rnd.choice(names) for _ in range(depth))
            files[path] = (rnd.randint(0, 2 ** 40),
                           hashlib.md5(path.encode()).hexdigest()
                           + rnd.choice(["", "-3"]))
        listing = [(p, s, e) for p, (s, e) in files.items()]
        rnd.shuffle(listing)
        r = run(["checksum", "--tree", "--listing", "-"], input=tsv(listing))
        assert r.returncode == 0, r.stderr
        assert parse_tree(r.stdout)[0] == tree_digests(listing)


def big_listing(rnd, n):
    names = ["a", "b", "0", "10", "9", ".zarray", "x", "\u00e9",
             "\U0001f600", "q\"uote", "t\tab", "A"]
    files = []
    for i in range(n):
        d = "/".join(rnd.choice(names) for _ in range(rnd.randint(0, 4)))
        name = "%d" % i
        if rnd.random() < 0.3:
            name = rnd.choice(names) + "-" + name
        files.append(((d + "/" if d else "") + name, rnd.randint(0, 2 ** 40),
                      "%032x" % rnd.getrandbits(128)))
    return files


def test_large_listing_matches_reference():
    # enough files (2 MB) for zarrctl to read the listing and compute the
    # tree on several threads (on a machine with more than one core); the
    # files of a directory scattered
    rnd = random.Random(11)
    files = big_listing(rnd, 30000)
    r = run(["checksum", "--tree", "--listing", "-"], input=tsv(files))
    assert r.returncode == 0, r.stderr
    tree, lines = parse_tree(r.stdout)
    assert tree == tree_digests(files)
    assert lines[-1] == ".\t" + tree[""]
    assert len(lines) == len(tree) > 500

    # from a file, as from stdin; jsonl the same
    r2 = run(["checksum", "--listing", "-"], input=tsv(files))
    assert r2.stdout.decode() == tree[""] + "\n"
    jl = "".join(json.dumps({"path": p, "size": s, "etag": e}) + "\n"
                 for p, s, e in files).encode()
    r3 = run(["checksum", "--tree", "--listing", "-", "--format", "jsonl"],
             input=jl)
    assert r3.stdout == r.stdout


def test_large_listing_file_and_errors(tmp_path):
    rnd = random.Random(12)
    files = big_listing(rnd, 25000)
    f = tmp_path / "listing.tsv"
    f.write_bytes(tsv(files))
    r = run(["checksum", "--listing", str(f)])
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == tree_digests(files)[""] + "\n"

    # a path twice, deep in the tree, at both ends: the lines of both
    dup = next(i for i, (p, _, _) in enumerate(files) if p.count("/") == 3)
    f.write_bytes(tsv(files + [files[dup]]))
    r = run(["checksum", "--tree", "--listing", str(f)])
    assert r.returncode == 2
    assert ("lines %d and %d" % (dup + 1, len(files) + 1)).encode() \
        in r.stderr
    assert b"is listed twice" in r.stderr

    # blank lines and CRLF count as lines
    blank = tsv(files[:100]) + b"\n\r\n" + tsv(files[100:]).replace(
        b"\n", b"\r\n", 50)
    f.write_bytes(blank)
    r = run(["checksum", "--listing", str(f)])
    assert r.stdout.decode() == tree_digests(files)[""] + "\n", r.stderr

    # a bad line near the end, then one near the start too: the first
    bad = tsv(files) + b"bad\n" + tsv(files[:3])
    for data, line in [(bad, len(files) + 1),
                       (tsv(files[:7]) + b"a\t1\t\n" + bad, 8),
                       (tsv(files[:7]) + b"a/\t1\te\n" + bad, 8)]:
        f.write_bytes(data)
        r = run(["checksum", "--listing", str(f)])
        assert r.returncode == 2
        assert r.stderr.startswith(("zarrctl: %s:%d: " % (f, line))
                                   .encode()), r.stderr
        assert r.stdout == b""
    r = run(["checksum", "--listing", str(f)])
    assert b'ends with "/"' in r.stderr


def test_path_with_tabs_splits_at_last_two():
    files = [("a\tb/c\td", 5, "e" * 32)]
    r = run(["checksum", "--tree", "--listing", "-"], input=tsv(files))
    assert r.returncode == 0, r.stderr
    assert parse_tree(r.stdout)[0] == tree_digests(files)


def test_quoted_etags_are_taken(tmp_path):
    a = run(["checksum", "--listing", "-"], input=b'x\t1\t"abc"\n')
    b = run(["checksum", "--listing", "-"], input=b"x\t1\tabc\n")
    assert a.returncode == 0 and a.stdout == b.stdout


@pytest.mark.parametrize("data,line,what", [
    (b"good\t1\tabc\nbad line\n", 2, "PATH<TAB>SIZE<TAB>ETAG"),
    (b"a\t1\tabc\nb\tx1\tabc\n", 2, "bad size"),
    (b"a\t1\tabc\nb\t-1\tabc\n", 2, "bad size"),
    (b"a//b\t1\tabc\n", 1, "empty path segment"),
    (b"a/../b\t1\tabc\n", 1, '".."'),
    (b"a/\t1\tabc\n", 1, 'ends with "/"'),
    (b"\xff\t1\tabc\n", 1, "UTF-8"),
    (b"a\t99999999999999999999\tabc\n", 1, "bad size"),
])
def test_malformed_listing(data, line, what):
    r = run(["checksum", "--listing", "-"], input=data)
    assert r.returncode == 2
    err = r.stderr.decode(errors="replace")
    assert "-:%d:" % line in err
    assert what in err
    assert r.stdout == b""


@pytest.mark.parametrize("data,line,what", [
    # zarrctl printed the size from freed memory here
    (b"a\t1\tabc\nb\tx\te\n", 2, 'bad size "x"'),
    (b"a\t\te\n", 1, 'bad size ""'),
    (b"a\t1\x00\te\n", 1, 'bad size "1\\x00"'),
    (b"a\t1\te\x00f\n", 1, "control byte 0x00 in the ETag at offset 1"),
    (b"a\t1\te\rf\n", 1, "control byte 0x0d in the ETag at offset 1"),
    (b"a\t1\tabc\nb\t1\te\r\r\n", 2,
     "control byte 0x0d in the ETag at offset 1"),
    (b"a\t1\t\"e\x1b\"\n", 1, "control byte 0x1b in the ETag at offset 1"),
])
def test_malformed_size_and_etag(data, line, what):
    r = run(["checksum", "--listing", "-"], input=data)
    assert r.returncode == 2
    err = r.stderr.decode(errors="replace")
    assert err == "zarrctl: -:%d: %s\n" % (line, what), err
    assert r.stdout == b""


def test_jsonl_etag_control_bytes():
    for etag in [r"e\u0000", r"\t", r"a\rb", r"\u007f"]:
        line = '{"path":"a","size":1,"etag":"%s"}\n' % etag
        r = run(["checksum", "--listing", "-", "--format", "jsonl"],
                input=b'{"path":"b","size":1,"etag":"x"}\n'
                + line.encode())
        assert r.returncode == 2, etag
        assert b"-:2: control byte" in r.stderr and b"ETag" in r.stderr
        assert r.stdout == b""


def test_crlf_listing_is_taken():
    a = run(["checksum", "--listing", "-"], input=b"x\t1\tabc\r\n")
    b = run(["checksum", "--listing", "-"], input=b"x\t1\tabc\n")
    assert a.returncode == 0 and a.stdout == b.stdout


def test_duplicate_path_is_an_error():
    r = run(["checksum", "--listing", "-"],
            input=b"a/b\t1\tx\nc\t1\ty\na/b\t2\tz\n")
    assert r.returncode == 2
    assert b"listed twice" in r.stderr and b"lines 1 and 3" in r.stderr


def test_malformed_jsonl():
    r = run(["checksum", "--listing", "-", "--format", "jsonl"],
            input=b'{"path":"a","size":1,"etag":"x"}\n{"path":"b"}\n')
    assert r.returncode == 2
    assert b"-:2:" in r.stderr
    r = run(["checksum", "--listing", "-", "--format", "jsonl"],
            input=b'{"path":"a",\n')
    assert r.returncode == 2 and b"-:1:" in r.stderr


@pytest.mark.parametrize("args", [
    [], ["frobnicate"], ["checksum", "--listing"],
    ["checksum", "--format", "xml", "--listing", "-"],
    ["checksum", "/nonexistent/dir"],
    ["checksum", "--s3", "s3://b/p/"],
    ["store", "list"],
])
def test_usage_errors(args):
    r = run(args, input=b"")
    assert r.returncode == 2
    assert r.stderr


def test_local_directory(tmp_path):
    rnd = random.Random(3)
    files = []
    for rel in [".zgroup", ".zattrs", "arr/.zarray", "arr/0.0", "arr/0.1",
                "arr/1/0", "arr/1/1", "labels/x/.zattrs", "labels/x/0/0/0",
                "empty", "\u00e9t\u00e9/f"]:
        data = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 3000)))
        if rel == "empty":
            data = b""
        p = tmp_path / "z" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        files.append((rel, len(data), hashlib.md5(data).hexdigest()))
    # a directory with no files leaves no trace, as in S3
    (tmp_path / "z" / "nothing" / "here").mkdir(parents=True)

    r = run(["checksum", "--tree", str(tmp_path / "z")])
    assert r.returncode == 0, r.stderr
    tree, lines = parse_tree(r.stdout)
    assert tree == tree_digests(files)
    assert lines[-1].startswith(".\t")

    # the same as the listing of the same files
    r2 = run(["checksum", "--tree", "--listing", "-"], input=tsv(files))
    assert r2.stdout == r.stdout

    # a trailing slash does not matter
    r3 = run(["checksum", str(tmp_path / "z") + "/"])
    assert r3.stdout.decode() == tree[""] + "\n"


def test_large_sizes_are_64_bit():
    files = [("big", 2 ** 50 + 3, "e" * 32), ("b/big", 2 ** 33, "f" * 32)]
    r = run(["checksum", "--listing", "-"], input=tsv(files))
    assert r.stdout.decode().strip() == tree_digests(files)[""]
    assert r.stdout.decode().strip().endswith("-2--%d" % (2 ** 50 + 3
                                                          + 2 ** 33))


def test_progress_of_a_directory_walk(tmp_path):
    """--progress: files and bytes read so far on stderr, the last line
    ending with a newline; none by default when stderr is not a terminal
    (here a pipe), none with --no-progress; stdout the same."""
    for i in range(600):
        d = tmp_path / "z" / str(i % 7)
        d.mkdir(parents=True, exist_ok=True)
        (d / str(i)).write_bytes(b"x" * i)
    plain = run(["checksum", "--tree", str(tmp_path / "z")])
    assert plain.returncode == 0 and plain.stderr == b""
    quiet = run(["checksum", "--tree", "--no-progress", str(tmp_path / "z")])
    assert quiet.stdout == plain.stdout and quiet.stderr == b""
    p = run(["checksum", "--tree", "--progress", str(tmp_path / "z")])
    assert p.returncode == 0 and p.stdout == plain.stdout
    last = p.stderr.decode().split("\r")[-1]
    size = sum(range(600)) / 1e6
    assert last.startswith("zarrctl: 600 files read, %.1f MB (" % size)
    assert last.endswith(" s)\n")
