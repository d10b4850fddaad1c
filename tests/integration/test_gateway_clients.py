"""The gateway with real, unmodified S3 clients (BACKEND.md "Clients"):
awscli, s3cmd, rclone and zarr 2.13 over boto3.  Every write goes through
the gateway; each test ends with the gateway's tree equal to the backend's
listing."""

import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import MutableMapping

import numpy as np
import pytest
import zarr
from numcodecs.compat import ensure_bytes

from conftest import EMPTY_DIGEST, ZARRCTL, s3_client, wait_for


AWS = "/usr/bin/aws"
S3CMD = "s3cmd"
RCLONE = "rclone"

SPACE_NAME = "dir with space/file with space.bin"
UTF8_NAME = "données/ünïcødé-ß-日本.bin"


# --- helpers -----------------------------------------------------------------

def run(cmd, env=None, check=True, timeout=120):
    r = subprocess.run([str(c) for c in cmd], env=env, capture_output=True,
                       text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, (
            f"{' '.join(map(str, cmd))} -> exit {r.returncode}\n"
            f"--- stdout ---\n{r.stdout[-3000:]}\n"
            f"--- stderr ---\n{r.stderr[-3000:]}")
    return r


def clean_env(**extra):
    """os.environ without any AWS_*/RCLONE_* setting, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "RCLONE_", "S3CMD"))}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def write(root, rel, data):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def make_tree(root):
    """A small zarr-like directory tree: metadata, 30 chunks of an array
    with "." separators, 12 nested "/" chunks, a name with spaces and a
    UTF-8 name."""
    write(root, ".zgroup", b'{\n    "zarr_format": 2\n}')
    write(root, ".zattrs", b'{\n    "client": "test"\n}')
    write(root, "arr/.zarray", json.dumps({
        "chunks": [10, 10], "compressor": None, "dtype": "<u1",
        "fill_value": 0, "filters": None, "order": "C",
        "shape": [60, 50], "zarr_format": 2}).encode())
    for i in range(6):
        for j in range(5):
            write(root, f"arr/{i}.{j}", os.urandom(100))
    write(root, "nested/x/.zarray", b'{"dimension_separator": "/"}')
    for i in range(3):
        for j in range(4):
            write(root, f"nested/x/{i}/{j}", os.urandom(20 + i * 7 + j))
    write(root, SPACE_NAME, b"a file with a space in its name")
    write(root, UTF8_NAME, "non-ASCII ✓".encode())


def local_files(root):
    """{relative path: md5 hex} of every file under root."""
    return {p.relative_to(root).as_posix():
            hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def remote_files(rgw, bucket, prefix):
    """{key minus prefix: ETag} of what RGW holds (read directly)."""
    c = s3_client(rgw)
    out = {}
    for page in c.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"][len(prefix):]] = o["ETag"].strip('"')
    return out


def logged(gw, line, at_least=1):
    """How often the access log holds line, once it holds it at least
    at_least times (nginx writes it after the response) or after 10 s."""
    def count():
        return gw.nginx.access_log.read_text(errors="replace").count(line)
    wait_for(lambda: count() >= at_least)
    return count()


def zarrctl_checksum(path):
    r = run([ZARRCTL, "checksum", path])
    return r.stdout.strip()


def allow_bob(client, bucket):
    client.put_bucket_policy(Bucket=bucket, Policy="""{
      "Version": "2012-10-17", "Statement": [{"Effect": "Allow",
      "Principal": {"AWS": ["arn:aws:iam:::user/bob"]}, "Action": "s3:*",
      "Resource": ["arn:aws:s3:::%s", "arn:aws:s3:::%s/*"]}]}""" % (
        bucket, bucket))


def aws_env(rgw, user, tmp_path):
    user = rgw.users[user]
    return clean_env(AWS_ACCESS_KEY_ID=user.access_key,
                     AWS_SECRET_ACCESS_KEY=user.secret_key,
                     AWS_DEFAULT_REGION=rgw.region,
                     AWS_CONFIG_FILE=tmp_path / "no-aws-config",
                     AWS_SHARED_CREDENTIALS_FILE=tmp_path / "no-aws-creds",
                     AWS_EC2_METADATA_DISABLED="true",
                     AWS_PAGER="",
                     # a failure must show, not be retried away
                     AWS_MAX_ATTEMPTS=1, AWS_RETRY_MODE="standard")


def aws(gw, env, *args, check=True):
    return run([AWS, "--endpoint-url", gw.url, "s3", *args], env=env,
               check=check)


def s3cmd_config(gw, user, path):
    user = gw.rgw.users[user]
    hostport = gw.url.split("://", 1)[1]
    path.write_text(
        "[default]\n"
        f"host_base = {hostport}\n"
        f"host_bucket = {hostport}\n"
        "use_https = False\n"
        f"access_key = {user.access_key}\n"
        f"secret_key = {user.secret_key}\n"
        f"bucket_location = {gw.rgw.region}\n"
        "signature_v2 = False\n"
        "max_retries = 1\n")
    return path


def s3cmd(cfg, *args, check=True):
    return run([S3CMD, "-c", cfg, "--no-progress", *args], env=clean_env(),
               check=check)


def rclone_config(gw, user, path):
    user = gw.rgw.users[user]
    path.write_text(
        "[gw]\n"
        "type = s3\n"
        "provider = Other\n"
        f"endpoint = {gw.url}\n"
        "force_path_style = true\n"
        f"access_key_id = {user.access_key}\n"
        f"secret_access_key = {user.secret_key}\n"
        f"region = {gw.rgw.region}\n")
    return path


def rclone(cfg, *args, check=True):
    # AWS_CA_BUNDLE (set in this image) breaks this rclone: clean_env drops it
    return run(["env", "-u", "AWS_CA_BUNDLE", RCLONE, "--config", cfg,
                "--retries", "1", "--low-level-retries", "1", *args],
               env=clean_env(), check=check)


# --- awscli ------------------------------------------------------------------

def test_awscli(gateway, bucket, tmp_path):
    gw = gateway()
    env = aws_env(gw.rgw, "alice", tmp_path)
    src = tmp_path / "src"
    make_tree(src)
    prefix = "zarr/a/"

    aws(gw, env, "cp", "--recursive", "--only-show-errors", src,
        f"s3://{bucket}/{prefix}")
    assert remote_files(gw.rgw, bucket, prefix) == local_files(src)
    gw.assert_consistent(bucket, "a")

    # sync: modify (same size, newer mtime), add, delete
    write(src, "arr/0.0", os.urandom(100))
    write(src, "arr/2.3", b"shorter now")
    write(src, "arr/6.0", os.urandom(100))
    write(src, "nested/x/3/0", b"new nested chunk")
    write(src, "nested/new/deeper/still/file", b"deep")
    (src / "arr" / "1.1").unlink()
    (src / "nested" / "x" / "2" / "3").unlink()
    (src / SPACE_NAME).unlink()
    later = time.time() + 60
    for rel in ["arr/0.0", "arr/2.3"]:
        os.utime(src / rel, (later, later))
    aws(gw, env, "sync", "--delete", "--only-show-errors", src,
        f"s3://{bucket}/{prefix}")
    assert remote_files(gw.rgw, bucket, prefix) == local_files(src)
    tree = gw.assert_consistent(bucket, "a")
    assert "dir with space" not in tree
    assert "nested/new/deeper/still" in tree

    # 20 MB: awscli goes multipart above 8 MB (8 MB parts: 3 of them)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(20 * 2 ** 20))
    aws(gw, env, "cp", "--only-show-errors", big,
        f"s3://{bucket}/{prefix}big/0")
    etag = remote_files(gw.rgw, bucket, prefix)["big/0"]
    assert re.fullmatch(r"[0-9a-f]{32}-3", etag), etag
    tree = gw.assert_consistent(bucket, "a")
    assert tree["big"].endswith("-1--%d" % (20 * 2 ** 20))
    assert logged(gw, "op=mpu_complete result=ok zarr=a")

    # rm --recursive of a subtree, then of the whole zarr
    aws(gw, env, "rm", "--recursive", "--only-show-errors",
        f"s3://{bucket}/{prefix}arr/")
    files = remote_files(gw.rgw, bucket, prefix)
    assert files and not any(k.startswith("arr/") for k in files)
    tree = gw.assert_consistent(bucket, "a")
    assert "arr" not in tree
    aws(gw, env, "rm", "--recursive", "--only-show-errors",
        f"s3://{bucket}/{prefix}")
    assert remote_files(gw.rgw, bucket, prefix) == {}
    assert gw.assert_consistent(bucket, "a") == {".": EMPTY_DIGEST}


# --- s3cmd -------------------------------------------------------------------

def test_s3cmd(gateway, bucket, tmp_path):
    gw = gateway()
    cfg = s3cmd_config(gw, "alice", tmp_path / "s3cfg")
    src = tmp_path / "src"
    make_tree(src)
    prefix = "zarr/s/"

    # a single file, then the directory recursively
    s3cmd(cfg, "put", src / ".zgroup", f"s3://{bucket}/{prefix}.zgroup")
    assert remote_files(gw.rgw, bucket, prefix) == {
        ".zgroup": local_files(src)[".zgroup"]}
    gw.assert_consistent(bucket, "s")
    s3cmd(cfg, "put", "--recursive", f"{src}/", f"s3://{bucket}/{prefix}")
    assert remote_files(gw.rgw, bucket, prefix) == local_files(src)
    gw.assert_consistent(bucket, "s")

    # sync --delete-removed after modifying, adding and deleting
    write(src, "arr/0.0", os.urandom(100))
    write(src, "arr/4.4", b"tiny")
    write(src, "extra/a/b", b"added")
    (src / "arr" / "5.4").unlink()
    (src / UTF8_NAME).unlink()
    for p in (src / "nested" / "x" / "1").iterdir():
        p.unlink()
    (src / "nested" / "x" / "1").rmdir()
    s3cmd(cfg, "sync", "--delete-removed", f"{src}/",
          f"s3://{bucket}/{prefix}")
    assert remote_files(gw.rgw, bucket, prefix) == local_files(src)
    tree = gw.assert_consistent(bucket, "s")
    assert "nested/x/1" not in tree and "données" not in tree
    assert "extra/a" in tree

    # del --recursive (s3cmd sends DeleteObjects)
    s3cmd(cfg, "del", "--recursive", f"s3://{bucket}/{prefix}nested/")
    files = remote_files(gw.rgw, bucket, prefix)
    assert files and not any(k.startswith("nested/") for k in files)
    gw.assert_consistent(bucket, "s")
    s3cmd(cfg, "del", "--recursive", f"s3://{bucket}/{prefix}")
    assert remote_files(gw.rgw, bucket, prefix) == {}
    assert gw.assert_consistent(bucket, "s") == {".": EMPTY_DIGEST}
    assert logged(gw, "op=multi_delete result=ok zarr=s")


# --- rclone ------------------------------------------------------------------

def test_rclone(gateway, bucket, tmp_path):
    gw = gateway()
    cfg = rclone_config(gw, "alice", tmp_path / "rclone.conf")
    src = tmp_path / "src"
    make_tree(src)
    prefix = "zarr/r/"
    dest = f"gw:{bucket}/{prefix}"

    rclone(cfg, "copy", src, dest)
    assert remote_files(gw.rgw, bucket, prefix) == local_files(src)
    gw.assert_consistent(bucket, "r")

    # sync: modify, add, delete; and one file only touched (same bytes, new
    # mtime): rclone updates its mtime metadata with a CopyObject onto itself
    write(src, "arr/3.3", os.urandom(77))
    write(src, "arr/9.9", b"added")
    (src / "arr" / "0.4").unlink()
    (src / SPACE_NAME).unlink()
    later = time.time() + 3600
    os.utime(src / "arr" / "1.2", (later, later))
    before = logged(gw, "op=copy result=ok zarr=r", 0)
    rclone(cfg, "sync", src, dest)
    assert remote_files(gw.rgw, bucket, prefix) == local_files(src)
    tree = gw.assert_consistent(bucket, "r")
    assert "dir with space" not in tree
    assert logged(gw, "op=copy result=ok zarr=r", before + 1) == before + 1
    gw.assert_consistent(bucket, "r")

    # deletefile, delete of a subtree, then of everything
    rclone(cfg, "deletefile", f"{dest}{UTF8_NAME}")
    files = remote_files(gw.rgw, bucket, prefix)
    assert UTF8_NAME not in files and "arr/9.9" in files
    gw.assert_consistent(bucket, "r")
    rclone(cfg, "delete", f"{dest}nested")
    files = remote_files(gw.rgw, bucket, prefix)
    assert files and not any(k.startswith("nested/") for k in files)
    tree = gw.assert_consistent(bucket, "r")
    assert "nested" not in tree
    rclone(cfg, "delete", dest)
    assert remote_files(gw.rgw, bucket, prefix) == {}
    assert gw.assert_consistent(bucket, "r") == {".": EMPTY_DIGEST}


# --- zarr --------------------------------------------------------------------

class S3Store(MutableMapping):
    """A minimal zarr store: keys under s3://bucket/prefix through boto3."""

    def __init__(self, client, bucket, prefix):
        self.client, self.bucket, self.prefix = client, bucket, prefix

    def __getitem__(self, key):
        try:
            return self.client.get_object(
                Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise KeyError(key)

    def __setitem__(self, key, value):
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key,
                               Body=ensure_bytes(value))

    def __delitem__(self, key):
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def __iter__(self):
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix):
            for o in page.get("Contents", []):
                yield o["Key"][len(self.prefix):]

    def __len__(self):
        return sum(1 for _ in self)


def test_zarr(gateway, bucket, tmp_path):
    gw = gateway()
    remote = S3Store(gw.client(), bucket, "zarr/zz/")
    local = zarr.DirectoryStore(str(tmp_path / "local.zarr"))
    rng = np.random.default_rng(12345)
    a_data = np.arange(100 * 100, dtype="int32").reshape(100, 100)
    x_data = rng.standard_normal((20, 30))

    def check():
        """the gateway agrees with RGW, and with zarrctl on the same data
        written locally"""
        tree = gw.assert_consistent(bucket, "zz")
        assert set(remote_files(gw.rgw, bucket, "zarr/zz/")) == set(
            local_files(tmp_path / "local.zarr"))
        assert tree["."] == zarrctl_checksum(tmp_path / "local.zarr")
        return tree

    # 1. a group with attrs and an array; a subgroup with a "/" array
    for store in (remote, local):
        g = zarr.group(store=store)
        g.attrs["title"] = "through the gateway"
        a = g.create_dataset("a", shape=(100, 100), chunks=(10, 10),
                             dtype="int32")
        a[:] = a_data
        sub = g.create_group("sub")
        sub.attrs.update({"nested": True, "n": 3})
        x = sub.create_dataset("x", shape=(20, 30), chunks=(5, 10),
                               dtype="float64", dimension_separator="/")
        x[:] = x_data
    keys = set(remote)
    assert {".zgroup", ".zattrs", "a/.zarray", "a/0.0", "a/9.9",
            "sub/.zgroup", "sub/.zattrs", "sub/x/.zarray", "sub/x/0/0",
            "sub/x/3/2"} <= keys
    assert len([k for k in keys if k.startswith("a/")]) == 1 + 100
    tree = check()
    assert "sub/x/3" in tree

    g = zarr.open_group(store=remote, mode="r")
    assert g.attrs["title"] == "through the gateway"
    assert dict(g["sub"].attrs) == {"nested": True, "n": 3}
    np.testing.assert_array_equal(g["a"][:], a_data)
    np.testing.assert_array_equal(g["sub/x"][:], x_data)

    # 2. overwrite a slice: rewrites chunks a/0.0 .. a/2.1
    a_data[5:25, 3:17] = -1
    for store in (remote, local):
        zarr.open_group(store=store)["a"][5:25, 3:17] = -1
    before = tree
    tree = check()
    assert tree["a"] != before["a"] and tree["sub"] == before["sub"]
    np.testing.assert_array_equal(
        zarr.open_group(store=remote, mode="r")["a"][:], a_data)

    # 3. delete a chunk (it reads back as the fill value), then an array
    a_data[30:40, 40:50] = 0
    for store in (remote, local):
        del store["a/3.4"]
    check()
    np.testing.assert_array_equal(
        zarr.open_group(store=remote, mode="r")["a"][:], a_data)
    for store in (remote, local):
        del zarr.open_group(store=store)["sub/x"]
    assert not any(k.startswith("sub/x/") for k in remote)
    tree = check()
    assert "sub/x" not in tree and "sub" in tree
    g = zarr.open_group(store=remote, mode="r")
    assert list(g["sub"].array_keys()) == []
    np.testing.assert_array_equal(g["a"][:], a_data)

    # 4. consolidated metadata (.zmetadata) and reading through it
    for store in (remote, local):
        zarr.consolidate_metadata(store)
    check()
    g = zarr.open_consolidated(remote, mode="r")
    np.testing.assert_array_equal(g["a"][:], a_data)


# --- a conflict seen by real clients -----------------------------------------

def test_conflict_awscli_then_s3cmd(gateway, bucket, tmp_path):
    gw = gateway()
    env = aws_env(gw.rgw, "alice", tmp_path)
    src = tmp_path / "src"
    make_tree(src)
    allow_bob(gw.client("alice"), bucket)
    direct = s3_client(gw.rgw)

    def absent(key):
        with pytest.raises(direct.exceptions.ClientError) as e:
            direct.head_object(Bucket=bucket, Key=key)
        return e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    aws(gw, env, "cp", "--recursive", "--only-show-errors", src,
        f"s3://{bucket}/zarr/c/")
    gw.assert_consistent(bucket, "c")

    cfg = s3cmd_config(gw, "bob", tmp_path / "s3cfg-bob")
    bobfile = write(tmp_path, "bob.bin", b"from bob")
    s3cmd(cfg, "put", bobfile, f"s3://{bucket}/outside/bob.bin")

    # bob uploads into the zarr alice's batch holds: refused.  s3cmd takes
    # OperationAborted for a transient error on uploads and tries 6 times
    # over 45 s (ignoring Retry-After): run it in the background meanwhile
    put = subprocess.Popen(
        [S3CMD, "-c", str(cfg), "--no-progress", "put", str(bobfile),
         f"s3://{bucket}/zarr/c/bob.bin"], env=clean_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # a server-side copy, a delete and a DeleteObjects into the zarr
        # fail at once (s3cmd does not retry a 409 there)
        r = s3cmd(cfg, "cp", f"s3://{bucket}/outside/bob.bin",
                  f"s3://{bucket}/zarr/c/copied.bin", check=False)
        assert r.returncode != 0 and "OperationAborted" in r.stderr, r
        assert absent("zarr/c/copied.bin")
        r = s3cmd(cfg, "del", f"s3://{bucket}/zarr/c/arr/0.0", check=False)
        assert r.returncode != 0 and "OperationAborted" in r.stderr, r
        r = s3cmd(cfg, "del", "--recursive", f"s3://{bucket}/zarr/c/nested/",
                  check=False)
        assert r.returncode != 0 and "OperationAborted" in r.stderr, r
        assert remote_files(gw.rgw, bucket, "zarr/c/") == local_files(src)

        # the holder goes on meanwhile
        write(src, "arr/6.6", b"alice again")
        (src / "arr" / "0.1").unlink()
        aws(gw, env, "sync", "--delete", "--only-show-errors", src,
            f"s3://{bucket}/zarr/c/")
        gw.assert_consistent(bucket, "c")

        out = put.communicate(timeout=120)[0]
    finally:
        if put.poll() is None:
            put.kill()
            put.wait()
    assert put.returncode != 0, out
    retried = out.count("409 (OperationAborted)")
    assert retried >= 1, out
    assert absent("zarr/c/bob.bin")

    # every refused request has its log line
    lines = re.findall(
        r'zarr batch conflict: zarr="%s/zarr/c" batch="\d+" holder="%s" '
        r'requester="%s" method=(\S+) key="([^"]*)"'
        % (bucket, "alice", "bob"),
        gw.error_log())
    # DeleteObjects names its first key in the zarr that is taken
    posts = [k for m, k in lines if m == "POST"]
    assert len(posts) == 1 and posts[0].startswith("zarr/c/nested/"), lines
    assert sorted(set(l for l in lines if l[0] != "POST")) == [
        ("DELETE", "zarr/c/arr/0.0"), ("PUT", "zarr/c/bob.bin"),
        ("PUT", "zarr/c/copied.bin")], lines
    assert lines.count(("PUT", "zarr/c/bob.bin")) == retried + 1
    assert len(lines) == retried + 4
    assert remote_files(gw.rgw, bucket, "zarr/c/") == local_files(src)
    gw.assert_consistent(bucket, "c")

    # after that, bob writing into another zarr works
    s3cmd(cfg, "put", bobfile, f"s3://{bucket}/zarr/other/bob.bin")
    s3cmd(cfg, "cp", f"s3://{bucket}/outside/bob.bin",
          f"s3://{bucket}/zarr/other/copied.bin")
    md5 = hashlib.md5(b"from bob").hexdigest()
    assert remote_files(gw.rgw, bucket, "zarr/other/") == {
        "bob.bin": md5, "copied.bin": md5}
    gw.assert_consistent(bucket, "other")
    gw.assert_consistent(bucket, "c")
