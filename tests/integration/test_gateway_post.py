"""POST object (browser form uploads): forwarded unchanged outside the
zarrs, refused inside them (and under the checksum prefix) with nothing
written, refused when the form cannot be read beyond doubt."""

import os
import re
import socket

import botocore
import pytest
import requests

from conftest import s3_client


def presigned(gw, bucket, key, user="alice"):
    """url, fields of a SigV4 POST policy signed by boto3 for the
    gateway's endpoint."""
    c = gw.client(user)
    p = c.generate_presigned_post(Bucket=bucket, Key=key, ExpiresIn=600)
    return p["url"], p["fields"]


def post(url, fields, data, filename="data.bin", **kw):
    # requests sends the fields in order, then the file part
    return requests.post(url, data=fields,
                         files={"file": (filename, data)}, timeout=30, **kw)


def code(r):
    m = re.search(rb"<Code>([^<]*)</Code>", r.content)
    return m.group(1).decode() if m else None


def exists(gw, bucket, key):
    direct = s3_client(gw.rgw)
    try:
        direct.head_object(Bucket=bucket, Key=key)
        return True
    except botocore.exceptions.ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        return False


def test_post_outside_zarr_forwarded(gateway, bucket):
    gw = gateway()
    data = os.urandom(3000)
    url, fields = presigned(gw, bucket, "uploads/form.bin")
    assert url.startswith(gw.url)
    r = post(url, fields, data)
    assert r.status_code == 204, r.text
    got = gw.client().get_object(Bucket=bucket, Key="uploads/form.bin")
    assert got["Body"].read() == data

    # ${filename} resolved outside a zarr, a body larger than nginx's
    # in-memory buffer (read back from the temporary file)
    big = os.urandom(300 * 1024)
    url, fields = presigned(gw, bucket, "uploads/${filename}")
    r = post(url, fields, big, filename="named.bin")
    assert r.status_code == 204, r.text
    got = gw.client().get_object(Bucket=bucket, Key="uploads/named.bin")
    assert got["Body"].read() == big

    # "zarr/ID" alone is no member, as for PUT
    url, fields = presigned(gw, bucket, "zarr/z")
    assert post(url, fields, b"x").status_code == 204
    assert gw.tree(bucket, "z") is None

    assert '"POST /%s HTTP/1.1" 204 op=post' % bucket in \
        gw.nginx.access_log.read_text()


def test_post_into_zarr_refused(gateway, bucket):
    gw = gateway()
    c = gw.client()
    c.put_object(Bucket=bucket, Key="zarr/z/a/0.0", Body=b"kept")
    tree = gw.assert_consistent(bucket, "z")

    cases = [
        ("zarr/z/a/0.1", "data.bin"),         # a member key
        ("zarr/new/x", "data.bin"),           # a new zarr
        ("zarr/z/a/${filename}", "0.2"),      # resolved into the zarr
        ("${filename}", "zarr/z/b"),          # the whole key from the file
        ("zarr/z/a//bad", "data.bin"),        # a bad member key: refused too
    ]
    for key, filename in cases:
        url, fields = presigned(gw, bucket, key)
        r = post(url, fields, b"payload", filename=filename)
        assert r.status_code == 501, (key, r.status_code, r.text)
        assert code(r) == "NotImplemented"
        assert b"use PUT" in r.content

    for key in ("zarr/z/a/0.1", "zarr/new/x", "zarr/z/a/0.2", "zarr/z/b"):
        assert not exists(gw, bucket, key), key
    assert gw.tree(bucket, "z") == tree
    assert gw.tree(bucket, "new") is None
    gw.assert_consistent(bucket, "z")

    # under the checksum prefix: 403, as any client write there
    url, fields = presigned(gw, bucket, "zarr-checksums/z/.checksum")
    r = post(url, fields, b"forged")
    assert r.status_code == 403 and code(r) == "AccessDenied"
    gw.assert_consistent(bucket, "z")

    # the access log tells what happened
    assert "op=post result=rejected" in gw.nginx.access_log.read_text()


def test_post_unreadable_forms_refused(gateway, bucket):
    gw = gateway()
    url, fields = presigned(gw, bucket, "uploads/x")

    # not a form
    r = requests.post(url, data=b"key=uploads/x",
                      headers={"Content-Type":
                               "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and code(r) == "MalformedPOSTRequest"

    # a form without the key field
    no_key = {k: v for k, v in fields.items() if k != "key"}
    r = post(url, no_key, b"x")
    assert r.status_code == 400 and code(r) == "InvalidArgument"

    # two key fields (which one would the backend take?)
    body = b"".join(
        b"--XX\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
        % (k.encode(), v.encode())
        for k, v in list(fields.items()) + [("KEY", "zarr/z/k")])
    body += (b"--XX\r\nContent-Disposition: form-data; name=\"file\"; "
             b"filename=\"f\"\r\n\r\ndata\r\n--XX--\r\n")
    r = requests.post(url, data=body, headers={
        "Content-Type": "multipart/form-data; boundary=XX"})
    assert r.status_code == 400 and code(r) == "InvalidArgument"

    # the form ends before its file field
    r = requests.post(url, data=body[:body.index(b"name=\"file\"") - 30],
                      headers={"Content-Type":
                               "multipart/form-data; boundary=XX"})
    assert r.status_code == 400 and code(r) == "MalformedPOSTRequest"

    # ${filename} with a filename parsers read differently
    url2, fields2 = presigned(gw, bucket, "uploads/${filename}")
    body = b"".join(
        b"--XX\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
        % (k.encode(), v.encode()) for k, v in fields2.items())
    body += (b"--XX\r\nContent-Disposition: form-data; name=\"file\"; "
             b"filename=\"a;b\"\r\n\r\ndata\r\n--XX--\r\n")
    r = requests.post(url2, data=body, headers={
        "Content-Type": "multipart/form-data; boundary=XX"})
    assert r.status_code == 400 and code(r) == "InvalidArgument"

    assert not exists(gw, bucket, "uploads/x")
    assert not exists(gw, bucket, "uploads/a;b")
    assert not exists(gw, bucket, "zarr/z/k")
    assert gw.tree(bucket, "z") is None


def test_post_duplicate_content_type_refused(gateway, bucket):
    gw = gateway()
    url, fields = presigned(gw, bucket, "uploads/dup")
    body = b"".join(
        b"--XX\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
        % (k.encode(), v.encode()) for k, v in fields.items())
    body += (b"--XX\r\nContent-Disposition: form-data; name=\"file\"; "
             b"filename=\"f\"\r\n\r\ndata\r\n--XX--\r\n")
    path = url[len(gw.url):]
    req = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{gw.nginx.port}\r\n"
           f"Content-Type: multipart/form-data; boundary=XX\r\n"
           f"Content-Type: multipart/form-data; boundary=YY\r\n"
           f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", gw.nginx.port)) as s:
        s.sendall(req.encode() + body)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    assert out.split()[1] == b"400", out[:200]
    assert b"MalformedPOSTRequest" in out
    assert not exists(gw, bucket, "uploads/dup")


def test_post_virtual_host_into_zarr_refused(gateway, bucket):
    """POST / with Host <bucket>.s3.zarr.test (see test_gateway_vhost.py
    for how the name reaches the gateway)."""
    gw = gateway()
    proxies = {"http": gw.url}
    c = s3_client(gw.rgw, endpoint=f"http://s3.zarr.test:{gw.nginx.port}",
                  s3={"addressing_style": "virtual"})
    for key, status in (("zarr/z/v", 501), ("vhost/ok", 204)):
        p = c.generate_presigned_post(Bucket=bucket, Key=key)
        assert p["url"].startswith(f"http://{bucket}.s3.zarr.test")
        r = post(p["url"], p["fields"], b"v", proxies=proxies)
        assert r.status_code == status, (key, r.text)
    assert not exists(gw, bucket, "zarr/z/v")
    assert exists(gw, bucket, "vhost/ok")
    assert gw.tree(bucket, "z") is None
