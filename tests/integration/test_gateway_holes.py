"""Parser holes (issue 8 item 9): request bodies, sizes and names that the
gateway and the backend could read differently are refused whole, or
read as the backend reads them.  Each test ends with the gateway's tree
equal to the backend's listing, and nothing under the checksum prefix
touched by a client."""

import json
import re
import socket
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


def sign(gw, method, path, body):
    """SigV4 headers of alice for the whole body (sent chunked or not)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    alice = gw.rgw.users["alice"]
    req = AWSRequest(method=method, url=gw.url + path, data=body)
    S3SigV4Auth(Credentials(alice.access_key, alice.secret_key), "s3",
                gw.rgw.region).add_auth(req)
    return {k: v for k, v in req.headers.items()
            if k.lower() != "content-length"}


def chunked_request(gw, method, path, headers, body, sent, chunk=65536):
    """Sends the header and the first sent bytes of body in chunks (the
    rest, and the last chunk, never), then reads the answer; None when
    none came within 10 s (the server still waits for the body)."""
    s = socket.create_connection(("127.0.0.1", gw.nginx.port))
    s.settimeout(10)
    head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % (
        method, path, gw.nginx.port)
    head += "".join("%s: %s\r\n" % kv for kv in headers.items())
    head += "Transfer-Encoding: chunked\r\n\r\n"
    try:
        s.sendall(head.encode())
        for i in range(0, sent, chunk):
            part = body[i:min(i + chunk, sent)]
            s.sendall(b"%x\r\n%s\r\n" % (len(part), part))
    except OSError:
        pass    # the server answered and stopped reading: fine
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            got = s.recv(65536)
            if not got:
                break
            data += got
        if b"\r\n\r\n" in data:
            hdr, rest = data.split(b"\r\n\r\n", 1)
            n = int(re.search(rb"(?i)content-length: *(\d+)", hdr).group(1))
            while len(rest) < n:
                got = s.recv(65536)
                if not got:
                    break
                rest += got
            return hdr.decode(), rest
    except socket.timeout:
        pass
    finally:
        s.close()
    return None


def test_chunked_delete_objects_limit_while_reading(gateway, bucket):
    """A chunked DeleteObjects body over 4 MiB is refused as soon as the
    limit is passed, not after the whole body was spooled to disk."""
    gw = gateway()
    c = gw.client()
    direct = s3_client(gw.rgw)
    c.put_object(Bucket=bucket, Key="zarr/z/a", Body=b"1")
    c.put_object(Bucket=bucket, Key="zarr/z/b", Body=b"2")
    gw.assert_consistent(bucket, "z")

    path = "/%s?delete" % bucket
    body = (b"<Delete><Object><Key>zarr/z/a</Key></Object><!--"
            + b"x" * (5 * 2 ** 20) + b"--></Delete>")
    headers = sign(gw, "POST", path, body)
    # 4.5 MiB sent, the rest held back: the answer must come anyway
    answer = chunked_request(gw, "POST", path, headers, body,
                             4 * 2 ** 20 + 2 ** 19)
    assert answer is not None, "no answer before the end of the body"
    hdr, xml = answer
    assert hdr.startswith("HTTP/1.1 400"), hdr
    assert re.search(r"(?i)\r\nconnection: close", hdr), hdr
    assert b"<Code>MalformedXML</Code>" in xml
    assert b"too large" in xml

    # the same declared by Content-Length: refused before reading
    with pytest.raises(botocore.exceptions.ClientError) as e:
        delete_with_body(gw, bucket, body)
    assert err(e.value) == ("MalformedXML", 400)

    assert keys(direct, bucket, "zarr/") == ["zarr/z/a", "zarr/z/b"]
    assert not list((gw.nginx.prefix / "client_body_temp").rglob("0*"))

    # a chunked body under the limit is read and forwarded whole
    small = (b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
             b'<Object><Key>zarr/z/a</Key></Object><!--'
             + b"y" * 300000 + b"--></Delete>")
    headers = sign(gw, "POST", path, small)
    r = requests.post(gw.url + path, data=iter([small[:100000],
                                                 small[100000:]]),
                      headers=headers)
    assert r.status_code == 200, r.text
    assert keys(direct, bucket, "zarr/") == ["zarr/z/b"]
    gw.assert_consistent(bucket, "z")


def test_chunked_api_body_limit_while_reading(gateway, bucket):
    """The admin API's 64 KiB limit holds for a chunked body too: 413
    with a JSON error before the body ends."""
    gw = gateway()
    path = "/zarr-api/v1/buckets/%s/zarrs" % bucket
    body = b'{"zarr_id": "x"' + b" " * 200000 + b"}"
    answer = chunked_request(gw, "POST", path, {}, body, 100000,
                             chunk=4096)
    assert answer is not None, "no answer before the end of the body"
    hdr, doc = answer
    assert hdr.startswith("HTTP/1.1 413"), hdr
    assert json.loads(doc)["error"] == "bad_request"
    # small chunked bodies still work
    r = requests.post(gw.url + path, data=iter([b'{"zarr_id":', b' "y"}']))
    assert r.status_code in (200, 201), r.text
