"""The JSON admin API (DESIGN section 7, docs/api.md) under
location /zarr-api/ of the gateway template: every endpoint, its errors,
explicit batches against S3 writers, the checksum documents against the
mirrored .checksum objects, reconcile after writes that bypassed the
gateway."""

import concurrent.futures
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
import uuid

import botocore
import pytest
import requests

from conftest import EMPTY_DIGEST, s3_client, wait_for


UUID4_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture
def gw(gateway, bucket):
    """The gateway; at the end, waits for its mirror to settle, before the
    bucket (set up first) is emptied and deleted."""
    g = gateway()
    yield g
    wait_for(lambda: api(g, "GET", "status").json()["mirror_backlog"] == 0)


def api(gw, method, path, **kw):
    """A request to the gateway's admin API; path is after v1/."""
    kw.setdefault("timeout", 120)
    return requests.request(method, f"{gw.url}/zarr-api/v1/{path}", **kw)


def zpath(bucket, zarr_id="", rest=""):
    p = f"buckets/{bucket}/zarrs"
    if zarr_id:
        p += "/" + requests.utils.quote(zarr_id, safe="")
    return p + rest


def assert_error(r, status, code):
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body


def share_with_bob(client, bucket):
    client.put_bucket_policy(Bucket=bucket, Policy="""{
      "Version": "2012-10-17", "Statement": [{"Effect": "Allow",
      "Principal": {"AWS": ["arn:aws:iam:::user/bob"]}, "Action": "s3:*",
      "Resource": ["arn:aws:s3:::%s", "arn:aws:s3:::%s/*"]}]}""" % (
        bucket, bucket))


def conflict(fn):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        fn()
    resp = e.value.response
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert resp["Error"]["Code"] == "OperationAborted"


# --- routes, methods, bad input ----------------------------------------------

def test_routes_methods_and_bad_input(gw, bucket):

    for path in ("nope", "", "status/x", "buckets", f"buckets/{bucket}",
                 zpath(bucket, "z", "/nope"), zpath(bucket, "z", "/batch/x"),
                 zpath(bucket, "z", "/checksum/x")):
        assert_error(api(gw, "GET", path), 404, "not_found")
    r = requests.get(f"{gw.url}/zarr-api/v2/status", timeout=10)
    assert_error(r, 404, "not_found")

    for method, path, allow in (
            ("PUT", "status", "GET, HEAD"),
            ("POST", "status", "GET, HEAD"),
            ("DELETE", zpath(bucket), "GET, HEAD, POST"),
            ("POST", zpath(bucket, "z"), "GET, HEAD"),
            ("POST", zpath(bucket, "z", "/checksum"), "GET, HEAD"),
            ("PUT", zpath(bucket, "z", "/batch"), "GET, HEAD, POST, DELETE"),
            ("GET", zpath(bucket, "z", "/batch/complete"), "POST"),
            ("GET", zpath(bucket, "z", "/reconcile"), "POST")):
        r = api(gw, method, path, data=b"{}")
        assert_error(r, 405, "method_not_allowed")
        assert r.headers["Allow"] == allow

    # bad ids and buckets in the path
    assert_error(api(gw, "GET", zpath(bucket) + "/%FF"), 400, "bad_request")
    assert_error(api(gw, "GET", zpath(bucket, "x" * 256)), 400,
                 "bad_request")
    assert_error(api(gw, "GET", zpath("b" * 64, "z")), 400, "bad_request")

    # bad bodies
    for body in (b"{", b"[1]", b'"x"', b'{"zarr_id": "a", "zarr_id": "b"}',
                 b"\xff"):
        assert_error(api(gw, "POST", zpath(bucket), data=body), 400,
                     "bad_request")
    assert_error(api(gw, "POST", zpath(bucket), data=b" " * 70000), 413,
                 "bad_request")

    # bad zarr ids in the body
    for zid in ("", "a/b", ".", "..", "x" * 256, 12, ["a"]):
        assert_error(api(gw, "POST", zpath(bucket), json={"zarr_id": zid}),
                     400, "bad_request")

    # bad query arguments
    for q in ("limit=0", "limit=-1", "limit=abc", "limit="):
        assert_error(api(gw, "GET", zpath(bucket) + "?" + q), 400,
                     "bad_request")
    # (requests would re-quote a bad escape: http.client sends it as is)
    conn = http.client.HTTPConnection("127.0.0.1", gw.nginx.port, timeout=10)
    conn.request("GET", f"/zarr-api/v1/{zpath(bucket)}?after=%G1")
    resp = conn.getresponse()
    assert resp.status == 400
    assert json.loads(resp.read())["error"] == "bad_request"
    conn.close()

    # unknown zarr
    for method, rest in (("GET", ""), ("GET", "/checksum"),
                         ("POST", "/batch")):
        body = assert_error(api(gw, method, zpath(bucket, "nobody", rest),
                                json={"owner": "x"}), 404, "not_found")
        assert "unknown" in body["message"]
    for method, rest in (("GET", "/batch"), ("DELETE", "/batch"),
                         ("POST", "/batch/complete")):
        body = assert_error(api(gw, method, zpath(bucket, "nobody", rest)),
                            404, "not_found")
        assert "no active batch" in body["message"]

    # HEAD answers the headers of GET
    r = api(gw, "HEAD", "status")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["Content-Type"] == "application/json"

    # still a working gateway
    assert api(gw, "GET", "status").status_code == 200


# every endpoint path, and the methods it takes (the Allow header's value)
ENDPOINTS = (
    ("status", "GET, HEAD"),
    ("buckets/{b}/zarrs", "GET, HEAD, POST"),
    ("buckets/{b}/zarrs/z", "GET, HEAD"),
    ("buckets/{b}/zarrs/z/checksum", "GET, HEAD"),
    ("buckets/{b}/zarrs/z/batch", "GET, HEAD, POST, DELETE"),
    ("buckets/{b}/zarrs/z/batch/complete", "POST"),
    ("buckets/{b}/zarrs/z/reconcile", "POST"),
)


def test_routing_edges(gw, bucket):
    """The edges of routing: 405 and Allow for each method an endpoint
    does not take, 404 on near misses, the order of the checks (path,
    then the bucket and id, then the method), and which endpoints read
    a body."""

    for path, allow in ENDPOINTS:
        path = path.format(b=bucket)
        for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH",
                       "OPTIONS"):
            if method in allow.split(", "):
                continue
            r = api(gw, method, path)
            assert r.status_code == 405, (method, path, r.text)
            assert r.headers["Allow"] == allow, (method, path)
            if method == "HEAD":
                assert r.content == b""
                continue
            body = assert_error(r, 405, "method_not_allowed")
            assert body["message"] == (
                f"method {method} not allowed here; allowed: {allow}")

    # near misses: a trailing slash, one segment too many or too few, a
    # wrong case; the bucket and id are not looked at then
    for path in ("status/", "STATUS", "buckets/" + bucket,
                 f"buckets/{bucket}/zarr", f"buckets/{bucket}/zarrs/z/",
                 f"buckets/{bucket}/zarrs/z/extra",
                 f"buckets/{bucket}/zarrs/z/batch/",
                 f"buckets/{bucket}/zarrs/z/batch/complete/",
                 f"buckets/{bucket}/zarrs/z/batch/complete/x",
                 f"buckets/{bucket}/zarrs/z/checksum/",
                 f"buckets/{bucket}/zarrs/z/reconcile/",
                 f"buckets/{bucket}/zarrs/z/reconcile/x",
                 f"buckets/{bucket}/zarrs/z/a/b/c/d/e/f/g/h",
                 "buckets/" + "b" * 64 + "/zarrs/z/extra",
                 f"buckets/{bucket}/zarrs/%FF/extra"):
        for method in ("GET", "POST"):
            body = assert_error(api(gw, method, path), 404, "not_found")
            assert body["message"] == "no such endpoint", path
    r = requests.get(f"{gw.url}/zarr-api/V1/status", timeout=10)
    assert r.status_code == 404
    assert r.json()["message"] == "no such endpoint"
    r = requests.get(f"{gw.url}/zarr-api/v1", timeout=10)
    assert r.status_code == 404

    # empty segments are a bucket or an id: "zarrs/" is an empty id
    bad_bucket = "invalid bucket name"
    bad_id = ("invalid zarr id: 1 to 255 bytes of UTF-8, no \"/\", "
              "not \".\" or \"..\"")
    for path, message in (
            ("buckets//zarrs", bad_bucket),
            ("buckets//zarrs/z/batch", bad_bucket),
            (f"buckets/{bucket}/zarrs/", bad_id),
            (f"buckets/{bucket}/zarrs//batch", bad_id),
            (f"buckets/{bucket}/zarrs/%FF/checksum", bad_id),
            # the bucket is checked before the id
            ("buckets/" + "b" * 64 + "/zarrs/%FF", bad_bucket)):
        body = assert_error(api(gw, "GET", path), 400, "bad_request")
        assert body["message"] == message, path

    # a bad bucket or id wins over a wrong method
    for path in ("buckets/" + "b" * 64 + "/zarrs",
                 f"buckets/{bucket}/zarrs/%FF/batch/complete"):
        r = api(gw, "PUT", path)
        assert_error(r, 400, "bad_request")
        assert "Allow" not in r.headers

    # the body: read (and limited) by create, batch open and complete only
    for path in (zpath(bucket), zpath(bucket, "nobody", "/batch"),
                 zpath(bucket, "nobody", "/batch/complete")):
        body = assert_error(api(gw, "POST", path, data=b"{"), 400,
                            "bad_request")
        assert body["message"] == "the request body is not valid JSON"
        assert_error(api(gw, "POST", path, data=b" " * 70000), 413,
                     "bad_request")
    # reconcile ignores its body (here: a bucket the backend lacks)
    for data in (b"{", b" " * 70000):
        body = assert_error(api(gw, "POST", zpath("no-such-bucket-here", "z",
                                                  "/reconcile"), data=data),
                            404, "not_found")
        assert "bucket" in body["message"]
    # ... and so do GET, HEAD and DELETE
    r = api(gw, "GET", zpath(bucket), data=b"{")
    assert r.status_code == 200 and r.json()["zarrs"] == []
    r = api(gw, "HEAD", zpath(bucket), data=b"{")
    assert r.status_code == 200 and r.content == b""
    body = assert_error(api(gw, "DELETE", zpath(bucket, "nobody", "/batch"),
                            data=b"{"), 404, "not_found")
    assert "no active batch" in body["message"]

    # HEAD wherever GET: the GET's status, no body
    for path, status in ((zpath(bucket), 200),
                         (zpath(bucket, "nobody"), 404),
                         (zpath(bucket, "nobody", "/checksum"), 404),
                         (zpath(bucket, "nobody", "/batch"), 404)):
        r = api(gw, "HEAD", path)
        assert r.status_code == status, path
        assert r.content == b""
        assert r.headers["Content-Type"] == "application/json"


# --- zarrs: create, list, info -----------------------------------------------

def test_create_list_info(gw, bucket):

    r = api(gw, "POST", zpath(bucket))
    assert r.status_code == 201, r.text
    generated = r.json()
    assert UUID4_RE.match(generated["zarr_id"])
    assert generated == {"zarr_id": generated["zarr_id"],
                         "digest": EMPTY_DIGEST}

    r = api(gw, "POST", zpath(bucket), json={})
    assert r.status_code == 201
    assert UUID4_RE.match(r.json()["zarr_id"])
    assert r.json()["zarr_id"] != generated["zarr_id"]

    r = api(gw, "POST", zpath(bucket), json={"zarr_id": "mine"})
    assert r.status_code == 201
    assert r.json() == {"zarr_id": "mine", "digest": EMPTY_DIGEST}
    assert_error(api(gw, "POST", zpath(bucket), json={"zarr_id": "mine"}),
                 409, "conflict")

    # a body larger than client_body_buffer_size (in a temporary file),
    # and a chunked one
    r = api(gw, "POST", zpath(bucket),
            json={"zarr_id": "big-body", "pad": "p" * 40000})
    assert r.status_code == 201 and r.json()["zarr_id"] == "big-body"
    r = api(gw, "POST", zpath(bucket),
            data=iter([b'{"zarr_id":', b' "chunked"}']))
    assert r.status_code == 201 and r.json()["zarr_id"] == "chunked"

    # any UTF-8 id without "/"
    odd = "ü ž+%?#&.x"
    r = api(gw, "POST", zpath(bucket), json={"zarr_id": odd})
    assert r.status_code == 201 and r.json()["zarr_id"] == odd
    r = api(gw, "GET", zpath(bucket, odd))
    assert r.status_code == 200 and r.json()["zarr_id"] == odd

    info = api(gw, "GET", zpath(bucket, "mine")).json()
    assert info == {"bucket": bucket, "zarr_id": "mine", "state": "ready",
                    "digest": EMPTY_DIGEST, "file_count": 0, "size": 0,
                    "batch": None, "mirror_pending": 0}

    # list: every zarr of the bucket, in byte order; other buckets apart
    ids = ["p%02d" % i for i in range(7)]
    for zid in ids:
        assert api(gw, "POST", zpath(bucket),
                   json={"zarr_id": zid}).status_code == 201
    other = f"other-{uuid.uuid4().hex[:12]}"
    assert api(gw, "POST", zpath(other),
               json={"zarr_id": "elsewhere"}).status_code == 201

    listed = api(gw, "GET", zpath(bucket)).json()
    assert listed["next"] is None
    got = [z["zarr_id"] for z in listed["zarrs"]]
    want = sorted(got, key=lambda s: s.encode())
    assert got == want
    assert set(ids) | {"mine", odd, generated["zarr_id"], "big-body",
                       "chunked"} <= set(got)
    assert len(got) == 13
    assert "elsewhere" not in got
    for z in listed["zarrs"]:
        assert z == {"zarr_id": z["zarr_id"], "digest": EMPTY_DIGEST,
                     "file_count": 0, "size": 0, "batch": None}

    # pages
    pages, after = [], ""
    while True:
        q = "?limit=3" + (f"&after={requests.utils.quote(after)}"
                          if after else "")
        page = api(gw, "GET", zpath(bucket) + q).json()
        pages.append([z["zarr_id"] for z in page["zarrs"]])
        if page["next"] is None:
            break
        assert page["next"] == pages[-1][-1]
        after = page["next"]
    assert [len(p) for p in pages] == [3, 3, 3, 3, 1]
    assert sum(pages, []) == got

    # a limit above the maximum is the maximum
    assert len(api(gw, "GET", zpath(bucket) + "?limit=5000").json()[
        "zarrs"]) == 13
    # an exact page: no next
    page = api(gw, "GET", zpath(bucket) + "?limit=13").json()
    assert len(page["zarrs"]) == 13 and page["next"] is None
    # after the last one: nothing
    page = api(gw, "GET", zpath(bucket) + "?after=" +
               requests.utils.quote(got[-1])).json()
    assert page == {"zarrs": [], "next": None}
    # an unknown bucket: an empty list
    assert api(gw, "GET", zpath("nosuchbucket")).json() == {
        "zarrs": [], "next": None}


def test_info_follows_writes_and_deletes(gw, bucket):
    alice = gw.client("alice")
    zid = "info"

    files = {"a/0": b"x" * 10, "a/1": b"y" * 20, "b": b"z" * 5}
    for k, v in files.items():
        alice.put_object(Bucket=bucket, Key=f"zarr/{zid}/{k}", Body=v)

    info = api(gw, "GET", zpath(bucket, zid)).json()
    assert info["digest"] == gw.listing(bucket, zid)["."]
    assert info["file_count"] == 3 and info["size"] == 35
    assert info["batch"]["owner"] == owner(gw, "alice")
    assert info["batch"]["explicit"] is False
    assert 0 < info["batch"]["expires_in"] <= 60
    assert isinstance(info["mirror_pending"], int)
    assert wait_for(lambda: api(gw, "GET", zpath(bucket, zid)).json()[
        "mirror_pending"] == 0)

    # in the list too, with its batch
    z = api(gw, "GET", zpath(bucket)).json()["zarrs"][0]
    assert z["zarr_id"] == zid and z["digest"] == info["digest"]
    assert z["batch"]["owner"] == owner(gw, "alice")

    for k in files:
        alice.delete_object(Bucket=bucket, Key=f"zarr/{zid}/{k}")

    info = api(gw, "GET", zpath(bucket, zid)).json()
    assert info["digest"] == EMPTY_DIGEST
    assert info["file_count"] == 0 and info["size"] == 0
    consistent(gw, bucket, zid)


def consistent(gw, bucket, zid, **kw):
    """gw.assert_consistent, once the zarr's mirror backlog is empty
    (assert_mirror lists the .checksum objects, then reads them: a delete
    of the mirror in between would fail it)."""
    assert wait_for(lambda: api(gw, "GET", zpath(bucket, zid)).json().get(
        "mirror_pending", 0) == 0)
    return gw.assert_consistent(bucket, zid, **kw)


def owner(gw, user):
    """The batch owner of a user's writes: with signature verification
    (zarr_credentials rgw), the RGW user id, whichever key signed."""
    return user


# --- the .checksum documents -------------------------------------------------

def test_checksum_equals_mirror(gw, bucket):
    alice = gw.client("alice")
    zid = "cs"
    keys = ["a/b/c/0", "a/b/c/1", "a/b/d", "a/e", "f", "g h/ü/\"q\"",
            "g h/ü/x+y", "x", "x/y"]
    for i, k in enumerate(keys):
        alice.put_object(Bucket=bucket, Key=f"zarr/{zid}/{k}",
                         Body=b"%d" % i * (i + 1))

    consistent(gw, bucket, zid)
    mirrored = gw.assert_mirror(bucket, zid)
    assert set(mirrored) == {"", "a", "a/b", "a/b/c", "g h", "g h/ü", "x"}

    for d, doc in mirrored.items():
        r = api(gw, "GET", zpath(bucket, zid, "/checksum"),
                params={"path": d} if d else None)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"] == "application/json"
        assert r.content == doc
        assert r.json()["digest"] == gw.listing(bucket, zid)[d or "."]

    # the root: no path, an empty one; a trailing "/" is ignored
    root = api(gw, "GET", zpath(bucket, zid, "/checksum?path=")).content
    assert root == mirrored[""]
    assert api(gw, "GET", zpath(bucket, zid, "/checksum"),
               params={"path": "a/b/"}).content == mirrored["a/b"]
    # '+' is a space in a query (form encoding), %2B a plus
    assert api(gw, "GET", zpath(bucket, zid, "/checksum?path=g+h")
               ).content == mirrored["g h"]

    for d in ("nope", "a/nope", "f", "a//b", "/a"):
        body = assert_error(api(gw, "GET", zpath(bucket, zid, "/checksum"),
                                params={"path": d}), 404, "not_found")
        assert "no directory" in body["message"]
    body = assert_error(api(gw, "GET", zpath(bucket, "unknown", "/checksum")),
                        404, "not_found")
    assert "unknown" in body["message"]


# --- batches -----------------------------------------------------------------

def test_explicit_batch_conflict_and_complete(gw, bucket):
    alice, bob = gw.client("alice"), gw.client("bob")
    share_with_bob(alice, bucket)
    zid = "explicit"
    akey = owner(gw, "alice")

    assert api(gw, "POST", zpath(bucket),
               json={"zarr_id": zid}).status_code == 201

    # bad owners and timeouts
    for body in ({}, {"owner": ""}, {"owner": 1}, {"owner": "x" * 257},
                 {"owner": "x", "timeout": 0}, {"owner": "x", "timeout": -1},
                 {"owner": "x", "timeout": "10"},
                 {"owner": "x", "timeout": 86401}):
        assert_error(api(gw, "POST", zpath(bucket, zid, "/batch"),
                         json=body), 400, "bad_request")

    r = api(gw, "POST", zpath(bucket, zid, "/batch"),
            json={"owner": akey, "timeout": 30})
    assert r.status_code == 201, r.text
    batch = r.json()
    assert batch["owner"] == akey and batch["explicit"] is True
    assert 29 <= batch["expires_in"] <= 30
    assert isinstance(batch["batch_id"], int) and batch["batch_id"] > 0

    got = api(gw, "GET", zpath(bucket, zid, "/batch")).json()
    assert got["batch_id"] == batch["batch_id"] and got["owner"] == akey

    # a second batch: 409, with the one in the way
    r = api(gw, "POST", zpath(bucket, zid, "/batch"), json={"owner": "x"})
    body = assert_error(r, 409, "conflict")
    assert body["batch"]["batch_id"] == batch["batch_id"]

    # the owner writes, anybody else gets 409
    for i in range(5):
        alice.put_object(Bucket=bucket, Key=f"zarr/{zid}/d/{i}",
                         Body=b"%d" % i)
    conflict(lambda: bob.put_object(Bucket=bucket, Key=f"zarr/{zid}/bob",
                                    Body=b"b"))
    assert api(gw, "GET", zpath(bucket, zid, "/batch")).json()[
        "batch_id"] == batch["batch_id"]

    want = gw.listing(bucket, zid)["."]

    # a wrong digest: 412 with the real one; the batch stays
    r = api(gw, "POST", zpath(bucket, zid, "/batch/complete"),
            json={"expected_digest": EMPTY_DIGEST})
    body = assert_error(r, 412, "digest_mismatch")
    assert body["digest"] == want and body["match"] is False
    assert body["file_count"] == 5 and body["size"] == 5
    assert api(gw, "GET", zpath(bucket, zid, "/batch")).json()[
        "batch_id"] == batch["batch_id"]
    conflict(lambda: bob.put_object(Bucket=bucket, Key=f"zarr/{zid}/bob",
                                    Body=b"b"))

    # the client fixes its upload and completes with the right digest
    alice.put_object(Bucket=bucket, Key=f"zarr/{zid}/d/5", Body=b"5")
    want = gw.listing(bucket, zid)["."]
    r = api(gw, "POST", zpath(bucket, zid, "/batch/complete"),
            json={"expected_digest": want})
    assert r.status_code == 200, r.text
    assert r.json() == {"digest": want, "file_count": 6, "size": 6,
                        "match": True}

    # the mirror was flushed before the answer
    assert api(gw, "GET", zpath(bucket, zid)).json()["mirror_pending"] == 0
    gw.assert_mirror(bucket, zid, timeout=0)

    # the batch is gone: bob's turn
    assert_error(api(gw, "GET", zpath(bucket, zid, "/batch")), 404,
                 "not_found")
    assert_error(api(gw, "POST", zpath(bucket, zid, "/batch/complete")),
                 404, "not_found")
    bob.put_object(Bucket=bucket, Key=f"zarr/{zid}/bob", Body=b"b")
    assert api(gw, "GET", zpath(bucket, zid, "/batch")).json()[
        "owner"] == owner(gw, "bob")

    # complete without an expected digest: match is null
    r = api(gw, "POST", zpath(bucket, zid, "/batch/complete"))
    assert r.status_code == 200, r.text
    assert r.json()["match"] is None
    assert r.json()["digest"] == gw.listing(bucket, zid)["."]
    consistent(gw, bucket, zid)


def test_cancel_then_another_user_writes(gw, bucket):
    alice, bob = gw.client("alice"), gw.client("bob")
    share_with_bob(alice, bucket)
    zid = "takeover"

    alice.put_object(Bucket=bucket, Key=f"zarr/{zid}/a", Body=b"a")
    conflict(lambda: bob.put_object(Bucket=bucket, Key=f"zarr/{zid}/b",
                                    Body=b"b"))

    r = api(gw, "DELETE", zpath(bucket, zid, "/batch"))
    assert r.status_code == 204 and r.content == b""
    assert_error(api(gw, "DELETE", zpath(bucket, zid, "/batch")), 404,
                 "not_found")
    assert "batch of \"%s/%s\" cancelled" % (bucket, zid) in gw.error_log()

    bob.put_object(Bucket=bucket, Key=f"zarr/{zid}/b", Body=b"b")
    conflict(lambda: alice.put_object(Bucket=bucket, Key=f"zarr/{zid}/c",
                                      Body=b"c"))
    consistent(gw, bucket, zid)

    # an explicit batch can be cancelled as well
    assert api(gw, "DELETE", zpath(bucket, zid, "/batch")).status_code == 204
    assert api(gw, "POST", zpath(bucket, zid, "/batch"),
               json={"owner": "nobody-writes"}).status_code == 201
    conflict(lambda: alice.put_object(Bucket=bucket, Key=f"zarr/{zid}/c",
                                      Body=b"c"))
    assert api(gw, "DELETE", zpath(bucket, zid, "/batch")).status_code == 204
    alice.put_object(Bucket=bucket, Key=f"zarr/{zid}/c", Body=b"c")
    consistent(gw, bucket, zid)


def test_batch_expires(gw, bucket):
    zid = "short"
    assert api(gw, "POST", zpath(bucket),
               json={"zarr_id": zid}).status_code == 201
    r = api(gw, "POST", zpath(bucket, zid, "/batch"),
            json={"owner": "x", "timeout": 0.5})
    assert r.status_code == 201 and r.json()["expires_in"] == 1
    time.sleep(0.8)
    assert_error(api(gw, "GET", zpath(bucket, zid, "/batch")), 404,
                 "not_found")
    assert api(gw, "POST", zpath(bucket, zid, "/batch"),
               json={"owner": "y"}).status_code == 201


# --- reconcile ---------------------------------------------------------------

def test_reconcile_repairs_tree_and_mirror(gw, bucket):
    alice = gw.client("alice")
    direct = s3_client(gw.rgw, "alice")          # RGW itself: no gateway
    zid = "drift"

    for k in ("keep", "change", "gone", "dir/gone", "dir/keep"):
        alice.put_object(Bucket=bucket, Key=f"zarr/{zid}/{k}", Body=k.encode())
    consistent(gw, bucket, zid)
    assert api(gw, "DELETE", zpath(bucket, zid, "/batch")).status_code == 204
    before = gw.tree(bucket, zid)["."]

    # writes that bypass the gateway
    direct.put_object(Bucket=bucket, Key=f"zarr/{zid}/change", Body=b"new!")
    direct.delete_object(Bucket=bucket, Key=f"zarr/{zid}/gone")
    direct.delete_object(Bucket=bucket, Key=f"zarr/{zid}/dir/gone")
    direct.put_object(Bucket=bucket, Key=f"zarr/{zid}/new/a/b", Body=b"b")
    direct.put_object(Bucket=bucket, Key=f"zarr/{zid}/new/c", Body=b"c")
    # keys the gateway refuses are left out
    direct.put_object(Bucket=bucket, Key=f"zarr/{zid}/bad//key", Body=b"x")
    direct.put_object(Bucket=bucket, Key=f"zarr/{zid}/bad/", Body=b"")
    # a stale .checksum of a directory that does not exist
    stale = f"zarr-checksums/{zid}/nonexistent/.checksum"
    direct.put_object(Bucket=bucket, Key=stale, Body=b"{}")
    direct.put_object(Bucket=bucket,
                      Key=f"zarr-checksums/{zid}/new/zz/.checksum",
                      Body=b"{}")

    assert gw.tree(bucket, zid)["."] == before

    r = api(gw, "POST", zpath(bucket, zid, "/reconcile"))
    assert r.status_code == 200, r.text
    res = r.json()
    assert res == {"added": 2, "removed": 2, "changed": 1, "skipped": 2,
                   "digest_before": before,
                   "digest_after": res["digest_after"],
                   "stale_checksums_removed": 2}
    assert res["digest_after"] != before
    assert "reconciled \"%s/%s\"" % (bucket, zid) in gw.error_log()

    # what assert_consistent cannot list: the refused keys
    direct.delete_object(Bucket=bucket, Key=f"zarr/{zid}/bad//key")
    direct.delete_object(Bucket=bucket, Key=f"zarr/{zid}/bad/")

    consistent(gw, bucket, zid)
    assert res["digest_after"] == gw.listing(bucket, zid)["."]
    assert api(gw, "GET", zpath(bucket, zid)).json()["digest"] == res[
        "digest_after"]
    with pytest.raises(botocore.exceptions.ClientError):
        direct.head_object(Bucket=bucket, Key=stale)

    # again: nothing to do
    r = api(gw, "POST", zpath(bucket, zid, "/reconcile"))
    assert r.json() == {"added": 0, "removed": 0, "changed": 0,
                        "skipped": 0, "digest_before": res["digest_after"],
                        "digest_after": res["digest_after"],
                        "stale_checksums_removed": 0}
    consistent(gw, bucket, zid)


def test_reconcile_unknown_zarr_and_bucket(gw, bucket):
    direct = s3_client(gw.rgw, "alice")
    zid = "only-in-rgw"

    # a zarr written before the gateway existed: reconcile adopts it; more
    # files than one apply group (1000) and than one listing page
    keys = [f"zarr/{zid}/{i // 100}/{i}" for i in range(1203)]
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda k: direct.put_object(Bucket=bucket, Key=k,
                                                Body=b"x"), keys))

    assert_error(api(gw, "GET", zpath(bucket, zid)), 404, "not_found")
    r = api(gw, "POST", zpath(bucket, zid, "/reconcile"))
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["added"] == 1203 and res["removed"] == 0
    assert res["digest_before"] == EMPTY_DIGEST
    info = api(gw, "GET", zpath(bucket, zid)).json()
    assert info["file_count"] == 1203 and info["size"] == 1203
    assert info["digest"] == res["digest_after"]
    consistent(gw, bucket, zid, timeout=5)

    # nothing at all: an empty zarr, registered
    r = api(gw, "POST", zpath(bucket, "empty", "/reconcile"))
    assert r.status_code == 200
    assert r.json()["digest_after"] == EMPTY_DIGEST
    assert api(gw, "GET", zpath(bucket, "empty")).status_code == 200

    # a bucket the backend does not have
    body = assert_error(api(gw, "POST", zpath("no-such-bucket-here", "z",
                                               "/reconcile")),
                        404, "not_found")
    assert "bucket" in body["message"]
    assert_error(api(gw, "GET", zpath("no-such-bucket-here", "z")), 404,
                 "not_found")


def test_reconcile_holds_the_batch(gw, bucket):
    alice = gw.client("alice")
    direct = s3_client(gw.rgw, "alice")
    zid = "reconcile-lock"

    alice.put_object(Bucket=bucket, Key=f"zarr/{zid}/a", Body=b"a")
    before = gw.tree(bucket, zid)["."]
    keys = [f"zarr/{zid}/behind/{i // 100}/{i}" for i in range(3000)]
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda k: direct.put_object(Bucket=bucket, Key=k,
                                                Body=b"x"), keys))

    # alice's batch is active: reconcile refuses and changes nothing
    body = assert_error(api(gw, "POST", zpath(bucket, zid, "/reconcile")),
                        409, "conflict")
    assert body["batch"]["owner"] == "alice"  # the verified RGW user id
    assert gw.tree(bucket, zid)["."] == before

    assert api(gw, "DELETE", zpath(bucket, zid, "/batch")).status_code == 204

    # while it runs, reconcile holds the batch: S3 writers get 409
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = ex.submit(api, gw, "POST", zpath(bucket, zid, "/reconcile"))
        owner = None
        while not fut.done() and owner != "zarr-api:reconcile":
            owner = api(gw, "GET", zpath(bucket, zid, "/batch")).json().get(
                "owner")
        assert owner == "zarr-api:reconcile", "reconcile ended unseen"
        conflict(lambda: alice.put_object(Bucket=bucket,
                                          Key=f"zarr/{zid}/during",
                                          Body=b"d"))
        r = fut.result()

    assert r.status_code == 200, r.text
    assert r.json()["added"] == 3000
    assert ('holder="zarr-api:reconcile"' in gw.error_log())

    # released at the end: the writer proceeds
    assert_error(api(gw, "GET", zpath(bucket, zid, "/batch")), 404,
                 "not_found")
    alice.put_object(Bucket=bucket, Key=f"zarr/{zid}/after", Body=b"c")
    consistent(gw, bucket, zid, timeout=10)


SLOW_FRONT = """
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log notice;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {p}/body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            proxy_pass http://127.0.0.1:{rgw};
            proxy_set_header Host $http_host;
            proxy_max_temp_file_size 0;
            limit_rate {rate};
        }}
    }}
}}
"""


def test_reconcile_keeps_its_batch_past_the_timeout(gateway, bucket,
                                                     nginx_config, tmp_path):
    """A reconcile that lasts longer than zarr_batch_timeout keeps the zarr
    to itself: it restarts its batch's idle clock while it lists (slowly:
    the gateway's own calls go through an nginx sending 400 KB/s) and
    applies, so a writer trying all along gets 409 until it is done."""
    from conftest import NGINX, Gateway, Nginx, free_port, wait_for_port

    # under `make valgrind` every nginx runs 20-50 times slower: a longer
    # timeout, a slower listing, and still reconcile must outlast it twice
    if os.environ.get("ZARR_VALGRIND_DIR"):
        timeout, rate, least = "3s", "100k", 6.0
    else:
        timeout, rate, least = "300ms", "400k", 1.0

    base = gateway()            # for its RGW and credentials file
    rgw_port = base.rgw.port
    front = tmp_path / "front"
    front.mkdir()
    fport = free_port()
    (front / "nginx.conf").write_text(SLOW_FRONT.format(
        p=front, port=fport, rgw=rgw_port, rate=rate))
    prefix, conf, port = nginx_config(
        "nginx-gateway.conf.template", rgw_port=rgw_port, workers=2,
        batch_timeout=timeout, credentials=base.cred)
    conf.write_text(conf.read_text().replace(
        "zarr_backend http://127.0.0.1:%d;" % rgw_port,
        "zarr_backend http://127.0.0.1:%d;" % fport))

    # the front is not under test: the system nginx, never under valgrind
    procs = []
    for binary, p, c, pt in (
            ("/usr/sbin/nginx", front, front / "nginx.conf", fport),
            (NGINX, prefix, conf, port)):
        procs.append(subprocess.Popen([binary, "-p", str(p), "-c", str(c),
                                       "-e", str(p / "error.log"),
                                       "-g", "daemon off;"]))
        assert wait_for_port(pt, proc=procs[-1])
    try:
        gw = Gateway(Nginx(port, prefix, prefix / "error.log"), base.rgw,
                     prefix / "store", base.cred)
        alice = gw.client("alice")
        direct = s3_client(gw.rgw, "alice")
        zid = "reconcile-long"

        keys = [f"zarr/{zid}/{i // 100}/{i}" for i in range(2500)]
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            list(ex.map(lambda k: direct.put_object(Bucket=bucket, Key=k,
                                                    Body=b"x"), keys))

        refused = 0
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            fut = ex.submit(api, gw, "POST",
                            zpath(bucket, zid, "/reconcile"))
            owner = None
            while not fut.done() and owner != "zarr-api:reconcile":
                owner = api(gw, "GET", zpath(bucket, zid, "/batch")).json(
                    ).get("owner")
            assert owner == "zarr-api:reconcile", "reconcile ended unseen"
            while True:
                try:
                    alice.put_object(Bucket=bucket, Key=f"zarr/{zid}/w",
                                     Body=b"w")
                    break
                except botocore.exceptions.ClientError as e:
                    assert e.response["Error"]["Code"] == "OperationAborted"
                    refused += 1
                    time.sleep(0.02)
            r = fut.result()
        took = time.monotonic() - start

        # had alice's write taken the batch while reconcile ran, reconcile
        # would have found it gone and answered 409
        assert r.status_code == 200, r.text
        assert r.json()["added"] == 2500
        assert refused > 0
        # the test means something only if reconcile outlasted the timeout
        assert took > least, took
        consistent(gw, bucket, zid, timeout=10)
        wait_for(lambda: api(gw, "GET", "status").json()[
            "mirror_backlog"] == 0, timeout=60)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)


# --- status ------------------------------------------------------------------

def test_status_fields_and_moves(gw, bucket):
    alice = gw.client("alice")

    s0 = api(gw, "GET", "status").json()
    assert set(s0) == {"zarrs", "active_batches", "mirror_backlog",
                       "mutations", "conflicts", "backend_errors",
                       "mirror_puts", "mirror_deletes", "mirror_errors",
                       "intents_resolved", "intent_resolve_errors",
                       "commits", "lmdb"}
    assert set(s0["lmdb"]) == {"map_size", "used", "entries"}
    assert s0["lmdb"]["map_size"] == 1 << 30
    assert 0 < s0["lmdb"]["used"] < s0["lmdb"]["map_size"]
    assert all(isinstance(v, int) for k, v in s0.items() if k != "lmdb")

    for i in range(4):
        alice.put_object(Bucket=bucket, Key=f"zarr/st/{i}/x", Body=b"x")

    # requests are counted in nginx's log phase, which may run a moment
    # after the client has its answer
    assert wait_for(lambda: api(gw, "GET", "status").json()["mutations"]
                    == s0["mutations"] + 4)
    s1 = api(gw, "GET", "status").json()
    assert s1["zarrs"] == s0["zarrs"] + 1
    assert s1["active_batches"] == s0["active_batches"] + 1
    assert s1["mutations"] == s0["mutations"] + 4
    assert s1["commits"] > s0["commits"]
    assert s1["lmdb"]["entries"] > s0["lmdb"]["entries"]

    assert wait_for(lambda: api(gw, "GET", "status").json()[
        "mirror_backlog"] == 0)
    s2 = api(gw, "GET", "status").json()
    assert s2["mirror_puts"] >= s0["mirror_puts"] + 5

    # a conflict counts
    share_with_bob(alice, bucket)
    conflict(lambda: gw.client("bob").put_object(
        Bucket=bucket, Key="zarr/st/bob", Body=b"b"))
    assert wait_for(lambda: api(gw, "GET", "status").json()["conflicts"]
                    == s2["conflicts"] + 1)

    assert api(gw, "DELETE", zpath(bucket, "st", "/batch")).status_code == 204
    assert api(gw, "GET", "status").json()["active_batches"] == \
        s0["active_batches"]


# --- reads in the thread pool ------------------------------------------------

def test_heavy_reads_many_at_once_and_dropped(gw, bucket):
    """The reads whose cost grows with the store run in the thread pool
    (their effect on the event loop is measured by
    tests/bench/api_stall.py): many at once, HEAD among them, all give
    the right answers; clients that hang up while their task runs leave
    the worker serving and nothing logged above warn."""
    from conftest import ZARRCTL
    from zarr_ref import tree_digests, tree_documents

    # 20,000 files in one directory, written into the gateway's store by
    # the core library (another process), left dirty: every read
    # recomputes the directory until the mirror flushes it
    files = [("big/%d" % i, 100 + i % 7, "%032x" % (i + 1))
             for i in range(20000)] + [(".zgroup", 24, "%032x" % 99)]
    r = subprocess.run(
        [str(ZARRCTL.parent / "tools" / "store_apply"), str(gw.store),
         bucket, "big", "5000"],
        input="".join("put\t%s\t%d\t%s\n" % f for f in files).encode(),
        capture_output=True)
    assert r.returncode == 0, r.stderr
    digests = tree_digests(files)
    doc = tree_documents(files)["big"]

    # hang up at once, while the task is in the thread
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", gw.nginx.port))
        s.sendall(("GET /zarr-api/v1/%s?path=big HTTP/1.1\r\n"
                   "Host: x\r\n\r\n" % zpath(bucket, "big", "/checksum")
                   ).encode())
        s.close()

    def one(i):
        kind = i % 5
        if kind == 0:
            r = api(gw, "GET", zpath(bucket, "big", "/checksum"),
                    params={"path": "big"})
            assert r.status_code == 200 and r.content == doc
        elif kind == 1:
            r = api(gw, "GET", zpath(bucket, "big"))
            assert r.status_code == 200, r.text
            assert r.json()["digest"] == digests[""]
            assert r.json()["file_count"] == 20001
        elif kind == 2:
            r = api(gw, "GET", zpath(bucket), params={"limit": 1})
            assert r.status_code == 200, r.text
            assert r.json()["zarrs"][0]["zarr_id"] == "big"
            assert r.json()["zarrs"][0]["digest"] == digests[""]
        elif kind == 3:
            r = api(gw, "HEAD", zpath(bucket, "big"))
            assert r.status_code == 200 and r.content == b""
            assert int(r.headers["Content-Length"]) > 0
        else:
            r = api(gw, "GET", "status")
            assert r.status_code == 200 and r.json()["zarrs"] >= 1

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        list(ex.map(one, range(80)))

    # unknown zarr / directory: still the right 404s from the thread
    assert_error(api(gw, "GET", zpath(bucket, "nope", "/checksum")), 404,
                 "not_found")
    body = assert_error(api(gw, "GET", zpath(bucket, "big", "/checksum"),
                            params={"path": "big/0"}), 404, "not_found")
    assert "no directory" in body["message"]

    log = gw.error_log()
    assert not re.search(r"\[(alert|crit|emerg)\]", log), log[-2000:]
