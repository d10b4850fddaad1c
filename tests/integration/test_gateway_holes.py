"""Parser holes (issue 8 item 9): request bodies, sizes and names that the
gateway and the backend could read differently are refused whole, or
read as the backend reads them.  Each test ends with the gateway's tree
equal to the backend's listing, and nothing under the checksum prefix
touched by a client."""

import botocore
import pytest

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
