"""zarrctl checksum --s3 against the live Ceph RGW, directly and through
the nginx pass-through: equal to --listing of the same objects (boto3's
listing) and to the Python reference."""

import os
import subprocess

from boto3.s3.transfer import TransferConfig

from conftest import s3_client
from test_zarrctl import ZARRCTL, parse_tree, tsv
from zarr_ref import tree_digests


def zarrctl_s3(url, endpoint, user, region, tree=True):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=user.access_key,
               AWS_SECRET_ACCESS_KEY=user.secret_key, AWS_REGION=region)
    args = [ZARRCTL, "checksum", "--s3", url, "--endpoint", endpoint]
    if tree:
        args.insert(2, "--tree")
    return subprocess.run(args, capture_output=True, env=env)


def boto_listing(client, bucket, prefix):
    files = []
    for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            files.append((o["Key"][len(prefix):], o["Size"],
                          o["ETag"].strip('"')))
    return files


def fill(client, bucket, prefix, tmp_path):
    keys = [".zgroup", ".zattrs", "arr/.zarray", "arr/0.0", "arr/0.1",
            "arr/1/0", "sp ace/pl+us", "per%cent", "\u00e9t\u00e9/\u65e5",
            "emoji/\U0001f600", "x", "x/y", "q\"uote&<amp>"]
    for i, k in enumerate(keys):
        client.put_object(Bucket=bucket, Key=prefix + k,
                          Body=(k * (i + 1)).encode())
    # enough objects for three listing pages
    for i in range(2100):
        client.put_object(Bucket=bucket, Key="%sbig/%d/%d" % (prefix, i % 3, i),
                          Body=b"%d" % i)
    # a multipart object: its ETag is md5-N
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(6 * 1024 * 1024))
    client.upload_file(str(big), bucket, prefix + "arr/mpu",
                       Config=TransferConfig(multipart_threshold=5 * 2 ** 20,
                                             multipart_chunksize=5 * 2 ** 20))
    # outside the prefix: must not count
    client.put_object(Bucket=bucket, Key="zarr/other/f", Body=b"no")
    client.put_object(Bucket=bucket, Key="zarr/ID", Body=b"no")


def test_s3_equals_listing(rgw, bucket, tmp_path):
    client = s3_client(rgw)
    prefix = "zarr/ID/"
    fill(client, bucket, prefix, tmp_path)
    files = boto_listing(client, bucket, prefix)
    assert len(files) == 13 + 2100 + 1
    assert any(e.endswith("-2") for _, _, e in files)

    r = zarrctl_s3("s3://%s/%s" % (bucket, prefix), rgw.endpoint, rgw.alice,
                   rgw.region)
    assert r.returncode == 0, r.stderr
    listing = subprocess.run([ZARRCTL, "checksum", "--tree", "--listing",
                              "-"], input=tsv(files), capture_output=True)
    assert listing.returncode == 0, listing.stderr
    assert r.stdout == listing.stdout
    assert parse_tree(r.stdout)[0] == tree_digests(files)

    # no trailing slash means the same directory
    r2 = zarrctl_s3("s3://%s/zarr/ID" % bucket, rgw.endpoint, rgw.alice,
                    rgw.region)
    assert r2.stdout == r.stdout

    # the gateway's --system user sees the same
    r3 = zarrctl_s3("s3://%s/%s" % (bucket, prefix), rgw.endpoint,
                    rgw.gateway, rgw.region)
    assert r3.stdout == r.stdout

    # progress on stderr when asked (stderr is a pipe here: none by
    # default), the same result on stdout
    assert r.stderr == b""
    env = dict(os.environ, AWS_ACCESS_KEY_ID=rgw.alice.access_key,
               AWS_SECRET_ACCESS_KEY=rgw.alice.secret_key,
               AWS_REGION=rgw.region)
    p = subprocess.run([ZARRCTL, "checksum", "--tree", "--progress", "--s3",
                        "s3://%s/%s" % (bucket, prefix), "--endpoint",
                        rgw.endpoint], capture_output=True, env=env)
    assert p.returncode == 0 and p.stdout == r.stdout
    last = p.stderr.decode().split("\r")[-1]
    assert last.startswith("zarrctl: %d objects listed (" % len(files))
    assert last.endswith(" s)\n")


def test_s3_through_nginx(rgw, bucket, nginx, tmp_path):
    client = s3_client(rgw)
    client.put_object(Bucket=bucket, Key="zarr/z/a/b", Body=b"1")
    client.put_object(Bucket=bucket, Key="zarr/z/c", Body=b"22")
    ng = nginx(rgw_port=rgw.port)
    r = zarrctl_s3("s3://%s/zarr/z/" % bucket, ng.url, rgw.alice, rgw.region,
                   tree=False)
    assert r.returncode == 0, r.stderr
    want = tree_digests(boto_listing(client, bucket, "zarr/z/"))[""]
    assert r.stdout.decode() == want + "\n"


def test_s3_errors(rgw, bucket):
    bad = rgw.alice.__class__("x", rgw.alice.access_key, "wrong-secret")
    r = zarrctl_s3("s3://%s/zarr/z/" % bucket, rgw.endpoint, bad, rgw.region)
    assert r.returncode == 1
    assert b"403" in r.stderr and b"SignatureDoesNotMatch" in r.stderr

    r = zarrctl_s3("s3://no-such-bucket-zz/zarr/z/", rgw.endpoint, rgw.alice,
                   rgw.region)
    assert r.returncode == 1 and b"NoSuchBucket" in r.stderr

    # an empty prefix is the empty tree
    r = zarrctl_s3("s3://%s/zarr/none/" % bucket, rgw.endpoint, rgw.alice,
                   rgw.region, tree=False)
    assert r.returncode == 0
    assert r.stdout == b"481a2f77ab786a0f45aafd5db0971caa-0--0\n"

    # nothing listens there
    r = zarrctl_s3("s3://%s/zarr/z/" % bucket, "http://127.0.0.1:1",
                   rgw.alice, rgw.region)
    assert r.returncode == 1 and r.stderr


def test_s3_truncated_listing_without_token(rgw, tmp_path):
    """A backend that says "truncated" but gives no new continuation token
    (or the same one again) would make a naive client list forever:
    zarrctl stops with an error after the first repeat."""
    import http.server
    import threading

    page = ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult>'
            '<Name>b</Name><Prefix>zarr/z/</Prefix><KeyCount>1</KeyCount>'
            '<MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType>'
            '<IsTruncated>true</IsTruncated>%s<Contents><Key>zarr/z/a</Key>'
            '<Size>1</Size><ETag>"0cc175b9c0f1b6a831c399e269772661"</ETag>'
            '</Contents></ListBucketResult>')
    seen = []

    for token in ("", "<NextContinuationToken>same</NextContinuationToken>"):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.path)
                body = (page % token).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            del seen[:]
            r = zarrctl_s3("s3://b/zarr/z/", "http://127.0.0.1:%d"
                           % srv.server_address[1], rgw.alice, rgw.region)
        finally:
            srv.shutdown()
            srv.server_close()
        assert r.returncode == 1, r
        assert b"truncated listing without a new NextContinuationToken" \
            in r.stderr, r.stderr
        assert len(seen) == (1 if not token else 2), seen
