"""Snapshots (DESIGN section 10, docs/snapshots.md) on a versioned bucket
of RGW: the version ids the tree keeps for every kind of write and what
reconcile reads with ListObjectVersions; the snapshot API."""

import datetime
import json
import hashlib
import subprocess

import botocore
import pytest
import requests

from conftest import ZARRCTL, s3_client, wait_for


@pytest.fixture
def gw(gateway, bucket):
    g = gateway()
    yield g
    wait_for(lambda: api(g, "GET", "status").json()["mirror_backlog"] == 0)


def api(gw, method, path, **kw):
    kw.setdefault("timeout", 120)
    return requests.request(method, f"{gw.url}/zarr-api/v1/{path}", **kw)


def versioned(rgw, bucket):
    s3_client(rgw, "alice").put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def end_batch(gw, bucket, zarr_id):
    """Ends the implicit batch the writes opened (owner alice)."""
    r = api(gw, "DELETE", f"buckets/{bucket}/zarrs/{zarr_id}/batch")
    assert r.status_code in (204, 404), r.text


def store_files(gw, bucket, zarr_id):
    """{path: (size, etag, version id)} of the gateway's tree."""
    r = subprocess.run([str(ZARRCTL), "store", "--store", str(gw.store),
                        "files", bucket, zarr_id],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        path, size, etag, version = line.split("\t")
        out[path] = (int(size), etag, version)
    return out


def backend_latest(rgw, bucket, zarr_id, prefix="zarr/"):
    """{path: (size, etag, version id)} of the latest versions at RGW
    that are not delete markers."""
    direct = s3_client(rgw, "gateway")
    out = {}
    p = f"{prefix}{zarr_id}/"
    for page in direct.get_paginator("list_object_versions").paginate(
            Bucket=bucket, Prefix=p):
        for v in page.get("Versions", []):
            if v["IsLatest"]:
                out[v["Key"][len(p):]] = (v["Size"], v["ETag"].strip('"'),
                                          v["VersionId"])
    return out


def test_version_ids_of_writes(gw, bucket):
    versioned(gw.rgw, bucket)
    c = gw.client()
    z = "zarr/vz/"

    r = c.put_object(Bucket=bucket, Key=z + ".zgroup", Body=b"{}")
    put_version = r["VersionId"]
    c.put_object(Bucket=bucket, Key=z + "a/0", Body=b"x" * 10)
    c.put_object(Bucket=bucket, Key=z + "a/0", Body=b"y" * 11)
    c.put_object(Bucket=bucket, Key=z + "a/1", Body=b"gone")
    c.copy_object(Bucket=bucket, Key=z + "b/copy",
                  CopySource={"Bucket": bucket, "Key": z + "a/0"})

    mpu = c.create_multipart_upload(Bucket=bucket, Key=z + "big")
    part = c.upload_part(Bucket=bucket, Key=z + "big", PartNumber=1,
                         UploadId=mpu["UploadId"], Body=b"m" * 1000)
    c.complete_multipart_upload(
        Bucket=bucket, Key=z + "big", UploadId=mpu["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"],
                                    "PartNumber": 1}]})

    # a delete marker removes the file from the draft
    r = c.delete_object(Bucket=bucket, Key=z + "a/1")
    assert r["DeleteMarker"] is True

    want = backend_latest(gw.rgw, bucket, "vz")
    assert sorted(want) == [".zgroup", "a/0", "b/copy", "big"]
    assert all(v[2] for v in want.values())
    assert want[".zgroup"][2] == put_version
    assert wait_for(lambda: store_files(gw, bucket, "vz") == want)

    # removing the latest version brings the older one back
    old = want["a/0"][2]
    c.delete_object(Bucket=bucket, Key=z + "a/0", VersionId=old)
    want = backend_latest(gw.rgw, bucket, "vz")
    assert want["a/0"][0] == 10 and want["a/0"][2] != old
    assert wait_for(lambda: store_files(gw, bucket, "vz") == want)
    gw.assert_consistent(bucket, "vz", timeout=10)


def test_unversioned_bucket_has_no_version_ids(gw, bucket):
    c = gw.client()
    c.put_object(Bucket=bucket, Key="zarr/u/x", Body=b"1")
    assert store_files(gw, bucket, "u") == {
        "x": (1, "c4ca4238a0b923820dcc509a6f75849b", "")}

    end_batch(gw, bucket, "u")
    r = api(gw, "POST", f"buckets/{bucket}/zarrs/u/reconcile?wait=1")
    assert r.status_code == 200, r.text
    assert r.json()["changed"] == 0
    assert store_files(gw, bucket, "u")["x"][2] == ""


def test_reconcile_reads_versions(gw, bucket):
    versioned(gw.rgw, bucket)
    c = gw.client()
    direct = s3_client(gw.rgw, "alice")
    z = "zarr/rz/"

    for i in range(5):
        c.put_object(Bucket=bucket, Key=z + f"d/{i}", Body=b"%d" % i)

    # behind the gateway's back: the same bytes again (a new version
    # only), a new file, a deleted one (a delete marker)
    direct.put_object(Bucket=bucket, Key=z + "d/0", Body=b"0")
    direct.put_object(Bucket=bucket, Key=z + "new", Body=b"n")
    direct.delete_object(Bucket=bucket, Key=z + "d/4")

    end_batch(gw, bucket, "rz")
    r = api(gw, "POST", f"buckets/{bucket}/zarrs/rz/reconcile?wait=1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["added"], body["removed"], body["changed"]) == (1, 1, 1)
    assert body["digest_before"] != body["digest_after"]

    want = backend_latest(gw.rgw, bucket, "rz")
    assert sorted(want) == ["d/0", "d/1", "d/2", "d/3", "new"]
    assert store_files(gw, bucket, "rz") == want

    # nothing to do the second time
    r = api(gw, "POST", f"buckets/{bucket}/zarrs/rz/reconcile?wait=1")
    body = r.json()
    assert (body["added"], body["removed"], body["changed"]) == (0, 0, 0)
    gw.assert_consistent(bucket, "rz", timeout=10)


# --- the snapshot API --------------------------------------------------------

def snap_path(bucket, zarr_id, rest=""):
    return f"buckets/{bucket}/zarrs/{zarr_id}/snapshots{rest}"


def write_zarr(gw, bucket, zarr_id, files):
    c = gw.client()
    for path, body in files.items():
        c.put_object(Bucket=bucket, Key=f"zarr/{zarr_id}/{path}", Body=body)
    end_batch(gw, bucket, zarr_id)


def test_snapshot_api(gw, bucket):
    versioned(gw.rgw, bucket)
    write_zarr(gw, bucket, "s", {".zgroup": b"{}", "a/.zarray": b"{1}",
                                 "a/0.0": b"x" * 100, "a/b/c": b"deep",
                                 "a.b": b"dot"})
    info = api(gw, "GET", f"buckets/{bucket}/zarrs/s").json()
    docs = {d: api(gw, "GET", f"buckets/{bucket}/zarrs/s/checksum",
                   params={"path": d}).content
            for d in ("", "a", "a/b")}

    r = api(gw, "POST", snap_path(bucket, "s"),
            json={"name": "v1", "expected_digest": info["digest"]})
    assert r.status_code == 201, r.text
    v1 = r.json()
    assert v1["name"] == "v1"
    assert v1["digest"] == info["digest"]
    assert v1["file_count"] == 5 and v1["size"] == info["size"]
    assert v1["manifest_key"] == "zarr-snapshots/s/v1.json"
    assert v1["created"].endswith("Z") and "warnings" not in v1
    # the snapshot's batch is over: writers may go on at once
    assert api(gw, "GET", f"buckets/{bucket}/zarrs/s/batch").status_code \
        == 404

    # the draft changes; the snapshot does not
    write_zarr(gw, bucket, "s", {"a/0.0": b"y" * 7, "new": b"n"})
    assert api(gw, "GET", snap_path(bucket, "s", "/v1")).json() == v1
    for d, doc in docs.items():
        r = api(gw, "GET", snap_path(bucket, "s", "/v1/checksum"),
                params={"path": d})
        assert r.status_code == 200 and r.content == doc
    r = api(gw, "GET", snap_path(bucket, "s", "/v1/checksum"),
            params={"path": "a/"})
    assert r.content == docs["a"]
    r = api(gw, "GET", snap_path(bucket, "s", "/v1/checksum"),
            params={"path": "nope"})
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert "directory" in r.json()["message"]

    # a default name: a UTC timestamp
    r = api(gw, "POST", snap_path(bucket, "s"))
    assert r.status_code == 201, r.text
    auto = r.json()
    assert len(auto["name"]) == 16 and auto["name"].endswith("Z")
    assert auto["digest"] != v1["digest"]
    assert auto["digest"] == api(
        gw, "GET", f"buckets/{bucket}/zarrs/s").json()["digest"]

    r = api(gw, "GET", snap_path(bucket, "s"))
    assert r.status_code == 200
    assert [s["name"] for s in r.json()["snapshots"]] == sorted(
        [auto["name"], "v1"])

    # errors
    r = api(gw, "POST", snap_path(bucket, "s"), json={"name": "v1"})
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    for bad in ("a/b", "", "x" * 65, "sp ace", "é", ".", ".."):
        r = api(gw, "POST", snap_path(bucket, "s"), json={"name": bad})
        assert r.status_code == 400, bad
        assert "not . or .." in r.json()["message"], r.text
    r = api(gw, "POST", snap_path(bucket, "s"), json={"name": 3})
    assert r.status_code == 400
    r = api(gw, "POST", snap_path(bucket, "s"),
            json={"name": "v9", "expected_digest": v1["digest"]})
    assert r.status_code == 412, r.text
    assert r.json()["error"] == "digest_mismatch"
    assert r.json()["digest"] == auto["digest"]
    assert api(gw, "GET", snap_path(bucket, "s", "/v9")).status_code == 404
    r = api(gw, "GET", snap_path(bucket, "s", "/v9"))
    assert r.status_code == 404 and "v9" in r.json()["message"]
    r = api(gw, "GET", snap_path(bucket, "nozarr", "/v1"))
    assert r.status_code == 404 and "unknown" in r.json()["message"]
    r = api(gw, "POST", snap_path(bucket, "nozarr"), json={"name": "a"})
    assert r.status_code == 404
    assert api(gw, "GET", snap_path(bucket, "s", "/bad%20name")) \
        .status_code == 400
    assert api(gw, "PUT", snap_path(bucket, "s", "/v1")).status_code == 405

    # an active batch: 409 with that batch
    gw.client().put_object(Bucket=bucket, Key="zarr/s/late", Body=b"l")
    r = api(gw, "POST", snap_path(bucket, "s"), json={"name": "v3"})
    assert r.status_code == 409, r.text
    active = api(gw, "GET", f"buckets/{bucket}/zarrs/s/batch").json()
    assert r.json()["batch"]["batch_id"] == active["batch_id"]
    assert active["owner"] != "zarr-api:snapshot"
    end_batch(gw, bucket, "s")

    # the store's figures (zarrctl, read-only beside nginx)
    st = subprocess.run([str(ZARRCTL), "store", "--store", str(gw.store),
                         "status"], capture_output=True, text=True)
    status = dict(l.split("\t") for l in st.stdout.splitlines())
    assert status["snapshots"] == "2"
    # per snapshot: files, held versions, directories ("", a, a/b):
    # v1 5 + 5 + 3, the other 6 + 6 + 3
    assert status["snapshot_records"] == str(13 + 15)

    # delete
    r = api(gw, "DELETE", snap_path(bucket, "s", "/v1"))
    assert r.status_code == 204, r.text
    assert api(gw, "GET", snap_path(bucket, "s", "/v1")).status_code == 404
    assert api(gw, "DELETE", snap_path(bucket, "s", "/v1")).status_code \
        == 404
    r = api(gw, "GET", snap_path(bucket, "s"))
    assert [s["name"] for s in r.json()["snapshots"]] == [auto["name"]]
    r = api(gw, "POST", snap_path(bucket, "s"), json={"name": "v1"})
    assert r.status_code == 201


def test_snapshot_unversioned_bucket(gw, bucket):
    write_zarr(gw, bucket, "u", {"x": b"1"})
    r = api(gw, "POST", snap_path(bucket, "u"), json={"name": "v1"})
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "unversioned"
    assert api(gw, "GET", snap_path(bucket, "u")).json() == {
        "snapshots": []}

    # versioning turned on later: files written before have no version
    # id in the tree until a reconcile reads them
    versioned(gw.rgw, bucket)
    r = api(gw, "POST", snap_path(bucket, "u"), json={"name": "v1"})
    assert r.status_code == 409 and r.json()["error"] == "unversioned"
    assert '"x"' in r.json()["message"]
    assert api(gw, "POST", f"buckets/{bucket}/zarrs/u/reconcile?wait=1") \
        .status_code == 200
    r = api(gw, "POST", snap_path(bucket, "u"), json={"name": "v1"})
    assert r.status_code == 201, r.text


def test_snapshot_lifecycle_warning(gw, bucket):
    versioned(gw.rgw, bucket)
    write_zarr(gw, bucket, "l", {"x": b"1"})
    s3_client(gw.rgw, "alice").put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [{
            "ID": "old", "Status": "Enabled", "Filter": {"Prefix": ""},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 30}}]})
    r = api(gw, "POST", snap_path(bucket, "l"), json={"name": "v1"})
    assert r.status_code == 201, r.text
    assert len(r.json()["warnings"]) == 1
    assert "noncurrent" in r.json()["warnings"][0]


# --- reading snapshots through the gateway ------------------------------------

def draft_listing(gw, bucket, zarr_id):
    """{path: (size, etag)} the gateway lists for the draft (RGW's)."""
    out = {}
    p = f"zarr/{zarr_id}/"
    for page in gw.client().get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=p):
        for o in page.get("Contents", []):
            out[o["Key"][len(p):]] = (o["Size"], o["ETag"])
    return out


def raw(gw, method, path, **kw):
    """An unsigned request to the gateway (anonymous)."""
    kw.setdefault("timeout", 60)
    return requests.request(method, f"{gw.url}/{path}", **kw)


def test_snapshot_read_objects(gw, bucket):
    versioned(gw.rgw, bucket)
    c = gw.client()
    files = {".zgroup": b"{}", "a/0.0": bytes(range(256)) * 4,
             "a/1.0": b"one", "sp ace/+plus%": b"odd key"}
    write_zarr(gw, bucket, "r", files)
    assert api(gw, "POST", snap_path(bucket, "r"),
               json={"name": "v1"}).status_code == 201

    # the draft moves on: overwritten, deleted, added
    write_zarr(gw, bucket, "r", {"a/0.0": b"new", "b": b"later"})
    c.delete_object(Bucket=bucket, Key="zarr/r/a/1.0")
    end_batch(gw, bucket, "r")

    s = "zarr-snapshots/r/v1/"
    for path, body in files.items():
        r = c.get_object(Bucket=bucket, Key=s + path)
        assert r["Body"].read() == body, path
        assert r["ETag"] == '"%s"' % hashlib.md5(body).hexdigest()
        assert r["ContentLength"] == len(body)
    assert c.get_object(Bucket=bucket, Key="zarr/r/a/0.0")["Body"].read() \
        == b"new"

    h = c.head_object(Bucket=bucket, Key=s + "a/0.0")
    assert h["ContentLength"] == 1024
    etag = h["ETag"]

    # Range and conditionals
    r = c.get_object(Bucket=bucket, Key=s + "a/0.0", Range="bytes=2-5")
    assert r["Body"].read() == bytes([2, 3, 4, 5])
    assert r["ContentRange"] == "bytes 2-5/1024"
    r = c.get_object(Bucket=bucket, Key=s + "a/0.0", IfMatch=etag)
    assert r["Body"].read() == files["a/0.0"]
    for kw, code in ((dict(IfNoneMatch=etag), "304"),
                     (dict(IfMatch='"0000"'), "PreconditionFailed"),
                     (dict(IfModifiedSince=datetime.datetime(
                         2100, 1, 1, tzinfo=datetime.timezone.utc)), "304")):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.get_object(Bucket=bucket, Key=s + "a/0.0", **kw)
        assert e.value.response["Error"]["Code"] == code

    # missing: a path, a snapshot, a zarr; the prefix itself
    for key in (s + "b", s + "a", s + "a/0.0/x", "zarr-snapshots/r/v9/.zgroup",
                "zarr-snapshots/nope/v1/.zgroup", s):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.get_object(Bucket=bucket, Key=key)
        assert e.value.response["Error"]["Code"] == "NoSuchKey", key
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    # read-only
    for call in (lambda: c.put_object(Bucket=bucket, Key=s + "x", Body=b"1"),
                 lambda: c.delete_object(Bucket=bucket, Key=s + ".zgroup"),
                 lambda: c.copy_object(Bucket=bucket, Key=s + "y",
                                       CopySource=f"{bucket}/zarr/r/b")):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert e.value.response["Error"]["Code"] == "AccessDenied"

    # who may read: verified keys only; a bad signature is refused
    r = raw(gw, "GET", f"{bucket}/{s}.zgroup")
    assert r.status_code == 403 and b"AccessDenied" in r.content
    bad = s3_client(gw.rgw, "alice", endpoint=gw.url)
    bad._request_signer._credentials.secret_key = "wrong"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        bad.get_object(Bucket=bucket, Key=s + ".zgroup")
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    # bob, another user, reads through the gateway's credentials
    assert gw.client("bob").get_object(
        Bucket=bucket, Key=s + ".zgroup")["Body"].read() == b"{}"

    # after the snapshot is deleted: gone
    assert api(gw, "DELETE", snap_path(bucket, "r", "/v1")).status_code \
        == 204
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_object(Bucket=bucket, Key=s + ".zgroup")
    assert e.value.response["Error"]["Code"] == "NoSuchKey"


def test_snapshot_read_public(gateway, bucket):
    g = gateway(auth="zarr_credentials rgw valid=10s; "
                     "zarr_snapshot_read public;")
    versioned(g.rgw, bucket)
    write_zarr(g, bucket, "p", {"x/y": b"open data"})
    assert api(g, "POST", snap_path(bucket, "p"),
               json={"name": "pub"}).status_code == 201
    r = raw(g, "GET", f"{bucket}/zarr-snapshots/p/pub/x/y")
    assert r.status_code == 200 and r.content == b"open data"
    r = raw(g, "GET", f"{bucket}", params={
        "list-type": "2", "prefix": "zarr-snapshots/p/pub/"})
    assert r.status_code == 200
    assert b"<Key>zarr-snapshots/p/pub/x/y</Key>" in r.content
    # the draft stays private
    assert raw(g, "GET", f"{bucket}/zarr/p/x/y").status_code == 403
    r = raw(g, "PUT", f"{bucket}/zarr-snapshots/p/pub/x/y", data=b"no")
    assert r.status_code == 403


def listing(client, bucket, prefix, v2=True, **kw):
    """(keys with (size, etag), common prefixes) of a paginated listing."""
    keys, prefixes = {}, []
    op = "list_objects_v2" if v2 else "list_objects"
    for page in client.get_paginator(op).paginate(
            Bucket=bucket, Prefix=prefix, **kw):
        for o in page.get("Contents", []):
            keys[o["Key"][len(prefix):]] = (o["Size"], o["ETag"])
        prefixes += [p["Prefix"][len(prefix):]
                     for p in page.get("CommonPrefixes", [])]
    return keys, prefixes


def test_snapshot_listing(gw, bucket):
    versioned(gw.rgw, bucket)
    files = {".zattrs": b"{}", ".zgroup": b"{}"}
    for i in range(7):
        for j in range(3):
            files[f"arr/{i}.{j}"] = b"%d" % (i * j)
    files.update({"arr/.zarray": b"{}", "arr.b": b"x", "g/h/0": b"0",
                  "sp ace+%": b"s"})
    write_zarr(gw, bucket, "L", files)
    want = draft_listing(gw, bucket, "L")
    assert len(want) == len(files)
    r = api(gw, "POST", snap_path(bucket, "L"), json={"name": "v1"})
    snap = r.json()
    write_zarr(gw, bucket, "L", {"arr/0.0": b"changed", "zz": b"new"})

    c = gw.client()
    base = "zarr-snapshots/L/v1/"
    for v2 in (True, False):
        for size in (1000, 5, 1):
            keys, prefixes = listing(c, bucket, base, v2=v2,
                                     PaginationConfig={"PageSize": size})
            assert keys == want and prefixes == []
        keys, prefixes = listing(c, bucket, base, v2=v2, Delimiter="/",
                                 PaginationConfig={"PageSize": 2})
        assert keys == {k: v for k, v in want.items() if "/" not in k}
        assert prefixes == ["arr/", "g/"]
        keys, prefixes = listing(c, bucket, base + "arr/", v2=v2,
                                 Delimiter="/",
                                 PaginationConfig={"PageSize": 4})
        assert sorted(keys) == sorted(
            k[4:] for k in want if k.startswith("arr/"))
        keys, prefixes = listing(c, bucket, base + "g/", v2=v2,
                                 Delimiter="/")
        assert keys == {} and prefixes == ["h/"]

    r = c.list_objects_v2(Bucket=bucket, Prefix=base, StartAfter=base + "arr/6",
                          MaxKeys=3)
    assert [o["Key"][len(base):] for o in r["Contents"]] == [
        "arr/6.0", "arr/6.1", "arr/6.2"]
    assert r["IsTruncated"] and r["KeyCount"] == 3
    r = c.list_objects_v2(Bucket=bucket, Prefix=base + "nothing/")
    assert r["KeyCount"] == 0 and "Contents" not in r
    r = c.list_objects_v2(Bucket=bucket, Prefix="zarr-snapshots/L/v9/")
    assert r["KeyCount"] == 0

    # the listing's checksum is the snapshot's digest (zarrctl)
    lines = "".join("%s\t%d\t%s\n" % (k, s, e.strip('"'))
                    for k, (s, e) in listing(c, bucket, base)[0].items())
    out = subprocess.run([str(ZARRCTL), "checksum", "--listing", "-"],
                         input=lines, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == snap["digest"]

    # without encoding-type: raw keys in the XML
    r = requests.get(f"{gw.url}/{bucket}", params={
        "list-type": "2", "prefix": base + "sp"},
        auth=_SigV4(gw.rgw, "alice"))
    assert r.status_code == 200, r.text
    assert "<Key>%ssp ace+%%</Key>" % base in r.text


class _SigV4(requests.auth.AuthBase):
    """botocore's SigV4 for a plain requests call."""

    def __init__(self, rgw, user):
        import botocore.auth
        import botocore.credentials
        u = rgw.users[user]
        self.signer = botocore.auth.S3SigV4Auth(
            botocore.credentials.Credentials(u.access_key, u.secret_key),
            "s3", rgw.region)

    def __call__(self, r):
        import botocore.awsrequest
        req = botocore.awsrequest.AWSRequest(method=r.method, url=r.url,
                                             data=r.body or b"")
        self.signer.add_auth(req)
        r.headers.update(dict(req.headers))
        return r


def test_snapshot_zarr_open(gw, bucket):
    """zarr through s3fs: v1 and v2 of an array and a group read back
    exactly through the gateway while the draft changes."""
    import numpy as np
    import zarr
    from test_gateway_s3fs import fs_for

    versioned(gw.rgw, bucket)
    fs = fs_for(gw)
    root = f"s3://{bucket}/zarr/zs/"
    rng = np.random.default_rng(3)
    a = rng.integers(0, 1000, size=(40, 30), dtype="int32")

    g = zarr.group(store=zarr.storage.FSStore(root, fs=fs))
    g.attrs["v"] = 1
    g.create_dataset("a", data=a, chunks=(10, 10))
    g.create_group("sub").create_dataset("x", data=np.arange(16.0),
                                         chunks=(4,))
    end_batch(gw, bucket, "zs")
    assert api(gw, "POST", snap_path(bucket, "zs"),
               json={"name": "v1"}).status_code == 201

    b = a.copy()
    b[0:10, 0:10] = -1
    g = zarr.open_group(store=zarr.storage.FSStore(root, fs=fs))
    g["a"][0:10, 0:10] = -1
    g.attrs["v"] = 2
    g["a"].resize(20, 30)
    del g["sub"]
    end_batch(gw, bucket, "zs")
    assert api(gw, "POST", snap_path(bucket, "zs"),
               json={"name": "v2"}).status_code == 201
    g["a"][:] = 0
    end_batch(gw, bucket, "zs")

    def at(name):
        return zarr.open_group(zarr.storage.FSStore(
            f"s3://{bucket}/zarr-snapshots/zs/{name}/", fs=fs_for(gw)),
            mode="r")

    v1 = at("v1")
    assert v1.attrs["v"] == 1
    np.testing.assert_array_equal(v1["a"][:], a)
    np.testing.assert_array_equal(v1["sub/x"][:], np.arange(16.0))
    v2 = at("v2")
    assert v2.attrs["v"] == 2
    np.testing.assert_array_equal(v2["a"][:], b[:20])
    assert "sub" not in v2
    np.testing.assert_array_equal(
        zarr.open_group(zarr.storage.FSStore(root, fs=fs_for(gw)),
                        mode="r")["a"][:], np.zeros((20, 30)))


def test_snapshot_protects_versions(gw, bucket):
    versioned(gw.rgw, bucket)
    c = gw.client()
    write_zarr(gw, bucket, "pr", {"a": b"1", "b": b"2", "c": b"3"})
    held = backend_latest(gw.rgw, bucket, "pr")
    assert api(gw, "POST", snap_path(bucket, "pr"),
               json={"name": "keep"}).status_code == 201

    # the draft changes as usual: overwrites and deletes are allowed
    write_zarr(gw, bucket, "pr", {"a": b"1 again"})
    c.delete_object(Bucket=bucket, Key="zarr/pr/b")
    end_batch(gw, bucket, "pr")
    newer = backend_latest(gw.rgw, bucket, "pr")["a"][2]

    # permanent deletes of held versions: refused, not forwarded
    for path in ("a", "b", "c"):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.delete_object(Bucket=bucket, Key="zarr/pr/" + path,
                            VersionId=held[path][2])
        err = e.value.response["Error"]
        assert err["Code"] == "AccessDenied"
        assert '"keep"' in err["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.delete_objects(Bucket=bucket, Delete={"Objects": [
            {"Key": "zarr/pr/a", "VersionId": newer},
            {"Key": "zarr/pr/c", "VersionId": held["c"][2]}]})
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    versions = {v["VersionId"] for v in s3_client(gw.rgw, "gateway")
                .list_object_versions(Bucket=bucket, Prefix="zarr/pr/")
                .get("Versions", [])}
    assert {held[p][2] for p in "abc"} | {newer} <= versions
    r = c.get_object(Bucket=bucket, Key="zarr-snapshots/pr/keep/b")
    assert r["Body"].read() == b"2"

    # a version no snapshot holds may go
    c.delete_object(Bucket=bucket, Key="zarr/pr/a", VersionId=newer)
    end_batch(gw, bucket, "pr")

    # DeleteObjects under the snapshot prefix: refused
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.delete_objects(Bucket=bucket, Delete={"Objects": [
            {"Key": "zarr-snapshots/pr/keep/a"}]})
    assert e.value.response["Error"]["Code"] == "AccessDenied"

    # once the snapshot is gone, its versions may be deleted
    assert api(gw, "DELETE", snap_path(bucket, "pr", "/keep")) \
        .status_code == 204
    c.delete_object(Bucket=bucket, Key="zarr/pr/c", VersionId=held["c"][2])
    c.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "zarr/pr/b", "VersionId": held["b"][2]}]})
    end_batch(gw, bucket, "pr")
    versions = {v["VersionId"] for v in s3_client(gw.rgw, "gateway")
                .list_object_versions(Bucket=bucket, Prefix="zarr/pr/")
                .get("Versions", [])}
    assert held["c"][2] not in versions and held["b"][2] not in versions
    gw.assert_consistent(bucket, "pr", timeout=10)


def reference_group(gw, bucket, manifest):
    """The zarr group a manifest describes, read with fsspec's reference
    filesystem straight from RGW (s3fs from ../shared/pylib, version
    aware), without the gateway."""
    import fsspec
    import zarr
    import test_gateway_s3fs  # noqa: F401  (puts s3fs on sys.path)

    u = gw.rgw.users["alice"]
    m = fsspec.get_mapper(
        "reference://", fo=manifest, remote_protocol="s3",
        remote_options={"key": u.access_key, "secret": u.secret_key,
                        "version_aware": True,
                        "client_kwargs": {"endpoint_url": gw.rgw.endpoint,
                                          "region_name": gw.rgw.region}})
    return zarr.open_group(m, mode="r")


def test_snapshot_manifest(gw, bucket):
    import numpy as np
    import zarr
    from test_gateway_s3fs import fs_for

    versioned(gw.rgw, bucket)
    direct = s3_client(gw.rgw, "alice")
    root = f"s3://{bucket}/zarr/mf/"
    a = np.arange(600, dtype="int16").reshape(20, 30)
    g = zarr.group(store=zarr.storage.FSStore(root, fs=fs_for(gw)))
    g.attrs["v"] = 1
    g.create_dataset("a", data=a, chunks=(7, 7))
    end_batch(gw, bucket, "mf")
    r = api(gw, "POST", snap_path(bucket, "mf"), json={"name": "v1"})
    assert r.status_code == 201 and "warnings" not in r.json(), r.text
    v1 = r.json()

    g["a"][:] = 5
    g.attrs["v"] = 2
    end_batch(gw, bucket, "mf")
    r = api(gw, "POST", snap_path(bucket, "mf"), json={"name": "v2"})
    assert r.status_code == 201

    # the manifest object, straight from RGW
    body = direct.get_object(Bucket=bucket,
                             Key=v1["manifest_key"])["Body"].read()
    man = json.loads(body)
    assert man["version"] == 1 and man["digest"] == v1["digest"]
    assert man["file_count"] == v1["file_count"] == len(man["refs"])
    latest = backend_latest(gw.rgw, bucket, "mf")
    ref = man["refs"]["a/.zarray"]
    assert ref == ["s3://%s/zarr/mf/a/.zarray?versionId=%s"
                   % (bucket, latest["a/.zarray"][2])]

    # read without the gateway: both versions, while the draft changed
    g1 = reference_group(gw, bucket, man)
    assert g1.attrs["v"] == 1
    np.testing.assert_array_equal(g1["a"][:], a)
    man2 = json.loads(direct.get_object(
        Bucket=bucket, Key="zarr-snapshots/mf/v2.json")["Body"].read())
    g2 = reference_group(gw, bucket, man2)
    assert g2.attrs["v"] == 2
    np.testing.assert_array_equal(g2["a"][:], np.full((20, 30), 5))

    # the manifest reads through the gateway too (the client's signature)
    assert gw.client().get_object(
        Bucket=bucket, Key=v1["manifest_key"])["Body"].read() == body

    # a deleted snapshot's manifest goes
    assert api(gw, "DELETE", snap_path(bucket, "mf", "/v1")).status_code \
        == 204
    with pytest.raises(botocore.exceptions.ClientError) as e:
        direct.get_object(Bucket=bucket, Key=v1["manifest_key"])
    assert e.value.response["Error"]["Code"] == "NoSuchKey"


def test_snapshot_manifest_multipart(gw, bucket):
    """A manifest over one part (8 MiB) is a multipart upload, streamed:
    120,000 files written into the gateway's store by the core library."""
    from conftest import ZARRCTL

    versioned(gw.rgw, bucket)
    n = 120000
    lines = "".join("put\tbig/%06d\t%d\t%032x\tv%06d\n" % (i, i, i, i)
                    for i in range(n))
    r = subprocess.run([str(ZARRCTL.parent / "tools" / "store_apply"),
                        str(gw.store), bucket, "mp", "20000"],
                       input=lines.encode(), capture_output=True)
    assert r.returncode == 0, r.stderr

    r = api(gw, "POST", snap_path(bucket, "mp"), json={"name": "big"})
    assert r.status_code == 201, r.text
    assert "warnings" not in r.json()
    assert r.json()["file_count"] == n

    obj = s3_client(gw.rgw, "alice").get_object(
        Bucket=bucket, Key="zarr-snapshots/mp/big.json")
    assert obj["ETag"].strip('"').endswith("-2")      # two parts
    man = json.loads(obj["Body"].read())
    assert len(man["refs"]) == n
    assert man["refs"]["big/000007"] == [
        "s3://%s/zarr/mp/big/000007?versionId=v000007" % bucket]
    assert man["digest"] == r.json()["digest"]


def test_snapshot_races(gw, bucket):
    """Careless and hostile concurrency on the API: the same name created
    by 8 requests at once, creates and deletes of one name interleaved.
    Exactly one create of a name wins; whatever the interleaving, the end
    state is one the API, the read path and the protection agree on."""
    import concurrent.futures

    versioned(gw.rgw, bucket)
    c = gw.client()
    write_zarr(gw, bucket, "race", {"a": b"1", "b/c": b"2"})
    held = backend_latest(gw.rgw, bucket, "race")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(
            lambda _: api(gw, "POST", snap_path(bucket, "race"),
                          json={"name": "same"}).status_code, range(8)))
    assert codes.count(201) == 1, codes
    assert set(codes) <= {201, 409}, codes
    r = api(gw, "GET", snap_path(bucket, "race"))
    assert [s["name"] for s in r.json()["snapshots"]] == ["same"]

    # creates and deletes of "flip", interleaved
    def flip(i):
        if i % 2:
            return "POST", api(gw, "POST", snap_path(bucket, "race"),
                               json={"name": "flip"}).status_code
        return "DELETE", api(gw, "DELETE", snap_path(
            bucket, "race", "/flip")).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(flip, range(24)))
    for method, code in results:
        assert code in ({201, 409} if method == "POST" else {204, 404}), \
            results
    exists = api(gw, "GET", snap_path(bucket, "race", "/flip"))
    assert exists.status_code in (200, 404)
    names = [s["name"] for s in api(gw, "GET", snap_path(bucket, "race"))
             .json()["snapshots"]]
    assert names == (["flip", "same"] if exists.status_code == 200
                     else ["same"])
    if exists.status_code == 200:
        assert c.get_object(Bucket=bucket, Key="zarr-snapshots/race/flip/a")[
            "Body"].read() == b"1"
        assert api(gw, "DELETE", snap_path(bucket, "race", "/flip")) \
            .status_code == 204
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_object(Bucket=bucket, Key="zarr-snapshots/race/flip/a")
    assert e.value.response["Error"]["Code"] == "NoSuchKey"

    # "same" still holds the versions; "flip", deleted, holds nothing
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.delete_object(Bucket=bucket, Key="zarr/race/a",
                        VersionId=held["a"][2])
    assert '"same"' in e.value.response["Error"]["Message"]
    assert api(gw, "DELETE", snap_path(bucket, "race", "/same")) \
        .status_code == 204
    c.delete_object(Bucket=bucket, Key="zarr/race/a", VersionId=held["a"][2])
    end_batch(gw, bucket, "race")
    gw.assert_consistent(bucket, "race", timeout=10)
    crit = [line for line in gw.nginx.error_log.read_text(
        errors="replace").splitlines() if "[crit]" in line]
    assert not crit, crit
