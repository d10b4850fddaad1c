"""The gateway with boto3: every mutation of DESIGN section 4, bad input,
SigV4 pass-through.  Each test ends with the gateway's tree equal to the
backend's listing."""

import os
import re
import time

import botocore
import pytest
import requests
from boto3.s3.transfer import TransferConfig

from conftest import s3_client


def err(e):
    return e.response["Error"]["Code"], e.response["ResponseMetadata"][
        "HTTPStatusCode"]


def keys(client, bucket, prefix=""):
    out = []
    for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return out


def test_put_overwrite_delete(gateway, bucket):
    gw = gateway()
    c = gw.client()
    c.put_object(Bucket=bucket, Key="zarr/z/.zgroup", Body=b'{"zarr_format":2}')
    c.put_object(Bucket=bucket, Key="zarr/z/a/.zarray", Body=b"{}")
    for i in range(5):
        c.put_object(Bucket=bucket, Key="zarr/z/a/0.%d" % i, Body=os.urandom(100))
    gw.assert_consistent(bucket, "z")

    # overwrite with other bytes and sizes
    c.put_object(Bucket=bucket, Key="zarr/z/a/0.1", Body=b"short")
    tree = gw.assert_consistent(bucket, "z")
    assert tree["."].endswith("-7--%d" % (17 + 2 + 100 * 4 + 5))

    # delete the only file of a directory: the directory goes
    c.put_object(Bucket=bucket, Key="zarr/z/b/c/only", Body=b"1")
    gw.assert_consistent(bucket, "z")
    c.delete_object(Bucket=bucket, Key="zarr/z/b/c/only")
    tree = gw.assert_consistent(bucket, "z")
    assert "b" not in tree and "b/c" not in tree

    # deleting what is not there
    c.delete_object(Bucket=bucket, Key="zarr/z/never/was")
    gw.assert_consistent(bucket, "z")

    # outside any zarr: nothing recorded
    c.put_object(Bucket=bucket, Key="elsewhere/file", Body=b"x")
    c.put_object(Bucket=bucket, Key="zarr/z", Body=b"not a member")
    gw.assert_consistent(bucket, "z")


def test_copy(gateway, bucket):
    gw = gateway()
    c = gw.client()
    c.put_object(Bucket=bucket, Key="src/one", Body=b"copied bytes")
    c.put_object(Bucket=bucket, Key="zarr/z/a", Body=b"aa")
    c.copy_object(Bucket=bucket, Key="zarr/z/copy/one",
                  CopySource={"Bucket": bucket, "Key": "src/one"})
    c.copy_object(Bucket=bucket, Key="zarr/z/copy/a",
                  CopySource={"Bucket": bucket, "Key": "zarr/z/a"})
    tree = gw.assert_consistent(bucket, "z")
    assert tree["copy"].endswith("-2--14")

    # a copy from a source that does not exist fails and changes nothing
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.copy_object(Bucket=bucket, Key="zarr/z/copy/none",
                      CopySource={"Bucket": bucket, "Key": "src/missing"})
    assert err(e.value)[1] == 404
    assert gw.tree(bucket, "z") == tree
    gw.assert_consistent(bucket, "z")


def test_multipart(gateway, bucket, tmp_path):
    gw = gateway()
    c = gw.client()
    f = tmp_path / "big"
    f.write_bytes(os.urandom(12 * 1024 * 1024))
    cfg = TransferConfig(multipart_threshold=5 * 2 ** 20,
                         multipart_chunksize=5 * 2 ** 20)
    c.upload_file(str(f), bucket, "zarr/z/big/0", Config=cfg)
    tree = gw.assert_consistent(bucket, "z")
    assert tree["big"].endswith("-1--%d" % (12 * 1024 * 1024))
    head = s3_client(gw.rgw).head_object(Bucket=bucket, Key="zarr/z/big/0")
    assert head["ETag"].strip('"').endswith("-3")

    # an aborted upload leaves nothing
    up = c.create_multipart_upload(Bucket=bucket, Key="zarr/z/big/1")
    c.upload_part(Bucket=bucket, Key="zarr/z/big/1", PartNumber=1,
                  UploadId=up["UploadId"], Body=b"x" * 100)
    c.abort_multipart_upload(Bucket=bucket, Key="zarr/z/big/1",
                             UploadId=up["UploadId"])
    gw.assert_consistent(bucket, "z")

    # UploadPartCopy
    c.put_object(Bucket=bucket, Key="src/part", Body=os.urandom(5 * 2 ** 20))
    up = c.create_multipart_upload(Bucket=bucket, Key="zarr/z/big/2")
    p1 = c.upload_part_copy(Bucket=bucket, Key="zarr/z/big/2", PartNumber=1,
                            UploadId=up["UploadId"],
                            CopySource={"Bucket": bucket, "Key": "src/part"})
    p2 = c.upload_part(Bucket=bucket, Key="zarr/z/big/2", PartNumber=2,
                       UploadId=up["UploadId"], Body=b"tail")
    c.complete_multipart_upload(
        Bucket=bucket, Key="zarr/z/big/2", UploadId=up["UploadId"],
        MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]},
            {"PartNumber": 2, "ETag": p2["ETag"]}]})
    tree = gw.assert_consistent(bucket, "z")
    assert tree["big"].endswith("-2--%d" % (12 * 2 ** 20 + 5 * 2 ** 20 + 4))


def test_delete_objects(gateway, bucket):
    gw = gateway()
    c = gw.client()
    for k in ["a/1", "a/2", "b/1", "c"]:
        c.put_object(Bucket=bucket, Key="zarr/z/" + k, Body=k.encode())
    c.put_object(Bucket=bucket, Key="zarr/y/f", Body=b"other zarr")
    c.put_object(Bucket=bucket, Key="plain", Body=b"outside")
    gw.assert_consistent(bucket, "z")

    r = c.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "zarr/z/a/1"}, {"Key": "zarr/z/b/1"}, {"Key": "zarr/z/missing"},
        {"Key": "zarr/y/f"}, {"Key": "plain"}], "Quiet": False})
    assert not r.get("Errors")
    tree = gw.assert_consistent(bucket, "z")
    assert "b" not in tree
    gw.assert_consistent(bucket, "y")
    assert keys(c, bucket, "zarr/") == ["zarr/z/a/2", "zarr/z/c"]

    # Quiet, as s3fs sends it
    c.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "zarr/z/a/2"}, {"Key": "zarr/z/c"}], "Quiet": True})
    tree = gw.assert_consistent(bucket, "z")
    assert tree == {".": "481a2f77ab786a0f45aafd5db0971caa-0--0"}


def test_bad_keys_refused_never_forwarded(gateway, bucket):
    gw = gateway()
    c = gw.client()
    direct = s3_client(gw.rgw)
    c.put_object(Bucket=bucket, Key="zarr/z/ok", Body=b"1")
    for key in ["zarr/z/a//b", "zarr/z/./a", "zarr/z/a/..", "zarr/z/a/",
                "zarr//x", "zarr/z/"]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.put_object(Bucket=bucket, Key=key, Body=b"x")
        assert err(e.value) == ("InvalidArgument", 400), key
    # invalid UTF-8 in the key (percent-encoded on the wire)
    r = requests.put(gw.url + "/%s/zarr/z/%%ff" % bucket, data=b"x")
    assert r.status_code in (400, 403)
    assert keys(direct, bucket, "zarr/") == ["zarr/z/ok"]
    # nginx logs a request after it has answered: wait for the lines
    for _ in range(100):
        rejected = gw.nginx.access_log.read_text().count("result=rejected")
        if rejected >= 7:
            break
        time.sleep(0.1)
    assert rejected == 7

    # the checksum prefix is the gateway's
    for call in [lambda: c.put_object(Bucket=bucket,
                                      Key="zarr-checksums/z/.checksum",
                                      Body=b"{}"),
                 lambda: c.delete_object(Bucket=bucket,
                                         Key="zarr-checksums/z/.checksum")]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert err(e.value) == ("AccessDenied", 403)

    # DeleteObjects naming one bad key is refused whole
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.delete_objects(Bucket=bucket, Delete={"Objects": [
            {"Key": "zarr/z/ok"}, {"Key": "zarr/z/bad//key"}]})
    assert err(e.value) == ("InvalidArgument", 400)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.delete_objects(Bucket=bucket, Delete={"Objects": [
            {"Key": "zarr/z/ok"}, {"Key": "zarr-checksums/z/.checksum"}]})
    assert err(e.value) == ("AccessDenied", 403)
    assert keys(direct, bucket, "zarr/") == ["zarr/z/ok"]
    gw.assert_consistent(bucket, "z")


def test_malformed_delete_objects(gateway, bucket):
    gw = gateway()
    c = gw.client()
    c.put_object(Bucket=bucket, Key="zarr/z/ok", Body=b"1")

    def send(body):
        req = []

        def inject(request, **kw):
            request.data = body
            request.headers["Content-MD5"] = None
            del request.headers["Content-MD5"]
            request.headers["Content-Length"] = str(len(body))
            req.append(request)

        cl = gw.client()
        cl.meta.events.register("before-sign.s3.DeleteObjects", inject)
        return cl.delete_objects(Bucket=bucket, Delete={"Objects": [
            {"Key": "zarr/z/ok"}]})

    for body in [b"<Delete><Object><Key>zarr/z/ok</Key></Object>",
                 b"not xml at all", b"<Other/>",
                 b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001
                 + b"</Delete>"]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            send(body)
        assert err(e.value) == ("MalformedXML", 400)
    assert keys(c, bucket, "zarr/") == ["zarr/z/ok"]
    gw.assert_consistent(bucket, "z")


def test_sigv4_passthrough(gateway, bucket, rgw):
    gw = gateway()
    c = gw.client()
    c.put_object(Bucket=bucket, Key="zarr/z/a", Body=b"1")
    before = gw.tree(bucket, "z")

    # a wrong secret: RGW refuses, the tree does not move
    bad = s3_client(rgw, rgw.alice.__class__("x", rgw.alice.access_key,
                                              "wrong"), endpoint=gw.url)
    for call in [lambda: bad.put_object(Bucket=bucket, Key="zarr/z/b",
                                        Body=b"2"),
                 lambda: bad.delete_object(Bucket=bucket, Key="zarr/z/a"),
                 lambda: bad.delete_objects(Bucket=bucket, Delete={
                     "Objects": [{"Key": "zarr/z/a"}]})]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert err(e.value) == ("SignatureDoesNotMatch", 403)
    assert gw.tree(bucket, "z") == before

    # presigned PUT and DELETE
    url = c.generate_presigned_url("put_object", Params={
        "Bucket": bucket, "Key": "zarr/z/presigned"}, ExpiresIn=300)
    assert requests.put(url, data=b"via url").status_code == 200
    tree = gw.assert_consistent(bucket, "z")
    assert tree["."].endswith("-2--8")
    url = c.generate_presigned_url("delete_object", Params={
        "Bucket": bucket, "Key": "zarr/z/presigned"}, ExpiresIn=300)
    assert requests.delete(url).status_code == 204
    gw.assert_consistent(bucket, "z")


def test_log_variables(gateway, bucket):
    gw = gateway()
    c = gw.client()
    c.put_object(Bucket=bucket, Key="zarr/z/a", Body=b"1")
    c.get_object(Bucket=bucket, Key="zarr/z/a")["Body"].read()
    # nginx logs after it has sent the answer
    for _ in range(50):
        log = gw.nginx.access_log.read_text()
        if "GET" in log:
            break
        time.sleep(0.1)
    assert re.search(r'"PUT /%s/zarr/z/a [^"]*" 200 op=put result=ok zarr=z '
                     r'batch=\d+ key=ALICEACCESSKEY000001' % bucket, log)
    assert re.search(r'"GET /%s/zarr/z/a [^"]*" 200 op=read result=- '
                     % bucket, log)


def test_versioned_bucket(gateway, bucket):
    gw = gateway()
    c = gw.client()
    c.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={
        "Status": "Enabled"})
    v1 = c.put_object(Bucket=bucket, Key="zarr/z/a", Body=b"one")["VersionId"]
    v2 = c.put_object(Bucket=bucket, Key="zarr/z/a", Body=b"second")[
        "VersionId"]
    assert v1 != v2
    tree = gw.assert_consistent(bucket, "z")
    assert tree["."].endswith("-1--6")

    # deleting the current version brings the older one back
    c.delete_object(Bucket=bucket, Key="zarr/z/a", VersionId=v2)
    tree = gw.assert_consistent(bucket, "z")
    assert tree["."].endswith("-1--3")

    # a plain delete leaves a delete marker: the file is gone
    c.put_object(Bucket=bucket, Key="zarr/z/b", Body=b"bb")
    c.delete_object(Bucket=bucket, Key="zarr/z/a")
    tree = gw.assert_consistent(bucket, "z")
    assert tree["."].endswith("-1--2")

    # DeleteObjects of a version
    vb = c.list_object_versions(Bucket=bucket, Prefix="zarr/z/b")[
        "Versions"][0]["VersionId"]
    c.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "zarr/z/b", "VersionId": vb}]})
    gw.assert_consistent(bucket, "z")
