"""Parser holes (issue 8 item 9): request bodies, sizes and names that the
gateway and the backend could read differently are refused whole, or
read as the backend reads them.  Each test ends with the gateway's tree
equal to the backend's listing, and nothing under the checksum prefix
touched by a client."""

import time

import botocore
import pytest
import requests

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


def delete_with_body(gw, bucket, body):
    """DeleteObjects signed by alice with body as the request body."""
    def inject(request, **kw):
        request.data = body
        request.headers["Content-MD5"] = None
        del request.headers["Content-MD5"]
        request.headers["Content-Length"] = str(len(body))

    cl = gw.client()
    cl.meta.events.register("before-sign.s3.DeleteObjects", inject)
    return cl.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "placeholder"}]})


def test_delete_objects_namespace_tricks(gateway, bucket):
    """RGW reads element names as written: <Object xmlns="urn:x"> is an
    Object to it (and was skipped by the gateway), <s3:Object> is not (and
    was taken by the gateway).  Both are refused whole, nothing sent."""
    gw = gateway()
    c = gw.client()
    direct = s3_client(gw.rgw)
    for k in ["a", "b", "c/d", "c/e"]:
        c.put_object(Bucket=bucket, Key="zarr/z/" + k, Body=k.encode())
    mirror = gw.assert_consistent(bucket, "z")
    checksums = keys(direct, bucket, "zarr-checksums/z/")
    assert "zarr-checksums/z/.checksum" in checksums

    s3 = b"http://s3.amazonaws.com/doc/2006-03-01/"
    bodies = [
        # the hole: RGW deletes both, the gateway saw nothing to check
        b'<Delete><Object xmlns="urn:x"><Key>zarr-checksums/z/.checksum'
        b'</Key></Object><Object xmlns="urn:x"><Key>zarr/z/a</Key>'
        b'</Object></Delete>',
        b'<Delete xmlns="urn:x"><Object><Key>zarr/z/a</Key></Object>'
        b'</Delete>',
        b'<Delete xmlns="' + s3 + b'"><Object><Key xmlns="">zarr/z/a'
        b'</Key></Object></Delete>',
        # the reverse: the gateway would record a delete RGW never does
        b'<s3:Delete xmlns:s3="' + s3 + b'"><s3:Object><s3:Key>zarr/z/b'
        b'</s3:Key></s3:Object></s3:Delete>',
        b'<Delete xmlns:s3="' + s3 + b'"><s3:Object><s3:Key>zarr/z/b'
        b'</s3:Key></s3:Object><Object><Key>plain</Key></Object>'
        b'</Delete>',
        # read as quiet by one reader and not by another
        b'<Delete><Quiet>1</Quiet><Object><Key>zarr/z/b</Key></Object>'
        b'</Delete>',
        b'<Delete><Quiet> true </Quiet><Object><Key>zarr/z/b</Key>'
        b'</Object></Delete>',
        # entities declared in a DOCTYPE
        b'<!DOCTYPE Delete [<!ENTITY k "zarr/z/c/d">]><Delete><Object>'
        b'<Key>&k;</Key></Object></Delete>',
    ]
    for body in bodies:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            delete_with_body(gw, bucket, body)
        assert err(e.value) == ("MalformedXML", 400), body

    assert keys(direct, bucket, "zarr/") == [
        "zarr/z/a", "zarr/z/b", "zarr/z/c/d", "zarr/z/c/e"]
    assert keys(direct, bucket, "zarr-checksums/z/") == checksums
    assert gw.assert_consistent(bucket, "z") == mirror

    # S3's namespace, on the root or repeated inside, is what SDKs send
    delete_with_body(
        gw, bucket, b'<Delete xmlns="' + s3 + b'"><Object xmlns="' + s3
        + b'"><Key>zarr/z/a</Key></Object><Quiet>true</Quiet></Delete>')
    assert keys(direct, bucket, "zarr/") == [
        "zarr/z/b", "zarr/z/c/d", "zarr/z/c/e"]
    gw.assert_consistent(bucket, "z")


def test_long_zarr_id_is_a_bad_request(gateway, bucket):
    """A zarr id over 255 bytes cannot be stored: 400 InvalidArgument
    (not a 503 that SDKs retry), on a PUT and for a whole DeleteObjects;
    nothing reaches the backend."""
    gw = gateway()
    c = gw.client()
    direct = s3_client(gw.rgw)
    ok, long = "i" * 255, "i" * 256
    c.put_object(Bucket=bucket, Key="zarr/%s/a" % ok, Body=b"1")
    c.put_object(Bucket=bucket, Key="zarr/z/a", Body=b"2")
    gw.assert_consistent(bucket, ok)

    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_object(Bucket=bucket, Key="zarr/%s/a" % long, Body=b"x")
    assert err(e.value) == ("InvalidArgument", 400)
    assert "255" in e.value.response["Error"]["Message"]

    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.delete_objects(Bucket=bucket, Delete={"Objects": [
            {"Key": "zarr/z/a"}, {"Key": "zarr/%s/a" % long}]})
    assert err(e.value) == ("InvalidArgument", 400)

    assert keys(direct, bucket, "zarr/") == ["zarr/%s/a" % ok, "zarr/z/a"]
    gw.assert_consistent(bucket, "z")
    gw.assert_consistent(bucket, ok)
    assert "[error]" not in gw.error_log()


def test_unreadable_access_key_is_no_owner(gateway, bucket):
    """$zarr_access_key (the default batch owner, in log lines) is empty
    for a key id with control bytes or over 128 bytes."""
    gw = gateway()
    base = "%s/%s/zarr/z/b?X-Amz-Algorithm=AWS4-HMAC-SHA256" % (gw.url,
                                                               bucket)
    for cred in ["EVIL%01%1B%5B1mKEY", "K" * 129]:
        r = requests.put(base + "&X-Amz-Credential=%s%%2F20240101%%2F"
                         "us-east-1%%2Fs3%%2Faws4_request&X-Amz-Date="
                         "20240101T000000Z&X-Amz-Expires=60"
                         "&X-Amz-SignedHeaders=host&X-Amz-Signature=00"
                         % cred, data=b"x")
        assert r.status_code in (400, 403), r.text
    for _ in range(100):
        lines = [l for l in gw.nginx.access_log.read_text().splitlines()
                 if "zarr/z/b" in l]
        if len(lines) == 2:
            break
        time.sleep(0.1)
    assert len(lines) == 2
    for line in lines:
        assert line.endswith(" key=-"), line
    gw.assert_consistent(bucket, "z")


def test_decoded_length_only_for_aws_chunked(gateway, bucket):
    """x-amz-decoded-content-length on a plain PUT is the client's word:
    the backend stores the body, and so the tree takes the body's size."""
    gw = gateway()

    def lie(value, encoding=None):
        def add(request, **kw):
            request.headers["x-amz-decoded-content-length"] = value
            if encoding:
                request.headers["Content-Encoding"] = encoding
        cl = gw.client()
        cl.meta.events.register("before-sign.s3.PutObject", add)
        return cl

    lie("1").put_object(Bucket=bucket, Key="zarr/z/a", Body=b"0123456789")
    tree = gw.assert_consistent(bucket, "z")
    assert tree["."].endswith("-1--10")
    lie("100000").put_object(Bucket=bucket, Key="zarr/z/b", Body=b"xyz")
    lie("not a number").put_object(Bucket=bucket, Key="zarr/z/c", Body=b"c")
    # Content-Encoding alone does not make RGW decode: asked for (HEAD)
    lie("2", "aws-chunked").put_object(Bucket=bucket, Key="zarr/z/d",
                                       Body=b"dddd")
    tree = gw.assert_consistent(bucket, "z")
    assert tree["."].endswith("-4--18")


def signed(gw, method, path, body=b""):
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    alice = gw.rgw.users["alice"]
    req = AWSRequest(method=method, url=gw.url + path, data=body)
    S3SigV4Auth(Credentials(alice.access_key, alice.secret_key), "s3",
                gw.rgw.region).add_auth(req)
    return requests.request(method, gw.url + path, data=body,
                            headers=dict(req.headers.items()))


def test_append_detected_as_rgw_does(gateway, bucket):
    """RGW appends on ?append whatever its value (none, empty): the object
    grows, its size is not the body's; the tree follows."""
    gw = gateway()
    c = gw.client()
    direct = s3_client(gw.rgw)
    total = 0
    for query, part in [("append&position=0", b"12345"),
                        ("append&position=5", b"678"),
                        ("position=8&append=", b"90"),
                        ("append&position=10", b"abcdef")]:
        r = signed(gw, "PUT", "/%s/zarr/z/log?%s" % (bucket, query), part)
        assert r.status_code == 200, (query, r.text)
        total += len(part)
        assert direct.head_object(Bucket=bucket, Key="zarr/z/log")[
            "ContentLength"] == total
        tree = gw.assert_consistent(bucket, "z")
        assert tree["."].endswith("-1--%d" % total)
    c.put_object(Bucket=bucket, Key="zarr/z/log", Body=b"plain again")
    gw.assert_consistent(bucket, "z")
