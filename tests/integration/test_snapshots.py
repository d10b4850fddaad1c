"""Snapshots (DESIGN section 10, docs/snapshots.md) on a versioned bucket
of RGW: the version ids the tree keeps for every kind of write and what
reconcile reads with ListObjectVersions; the snapshot API."""

import subprocess

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
    r = api(gw, "POST", f"buckets/{bucket}/zarrs/u/reconcile")
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
    r = api(gw, "POST", f"buckets/{bucket}/zarrs/rz/reconcile")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["added"], body["removed"], body["changed"]) == (1, 1, 1)
    assert body["digest_before"] != body["digest_after"]

    want = backend_latest(gw.rgw, bucket, "rz")
    assert sorted(want) == ["d/0", "d/1", "d/2", "d/3", "new"]
    assert store_files(gw, bucket, "rz") == want

    # nothing to do the second time
    r = api(gw, "POST", f"buckets/{bucket}/zarrs/rz/reconcile")
    body = r.json()
    assert (body["added"], body["removed"], body["changed"]) == (0, 0, 0)
    gw.assert_consistent(bucket, "rz", timeout=10)
