"""Virtual-hosted-style addressing (zarr_virtual_host_suffix): a request
whose Host is <bucket>.s3.zarr.test addresses <bucket>, with the whole path
as the key, at RGW (rgw dns name in scripts/rgw.sh) and at the gateway
alike; path-style keeps working beside it.

Name resolution: nothing resolves s3.zarr.test (the .test TLD is reserved,
RFC 6761) and /etc/hosts is left alone.  boto3 is given the gateway as an
HTTP proxy (botocore's `proxies` config): urllib3 then connects to nginx
and sends the request line in absolute form
("PUT http://demo.s3.zarr.test:PORT/zarr/z/k HTTP/1.1") with the Host
header "demo.s3.zarr.test:PORT", which is what a client resolving the name
to the gateway would send, and what SigV4 signs.  nginx accepts the
absolute form; the module classifies on the Host header, which is what
proxy_pass forwards to RGW (proxy_set_header Host $http_host).
"""

import os
import socket
import subprocess

import botocore
import pytest

from conftest import (NGINX, Gateway, Nginx, bad_log_lines,
                      nginx_test_config, s3_client, stop_nginx,
                      wait_for_port)


DOMAIN = "s3.zarr.test"


def err(e):
    return e.response["Error"]["Code"], e.response["ResponseMetadata"][
        "HTTPStatusCode"]


def client(gw, user="alice", style="virtual"):
    """boto3 at http://s3.zarr.test:PORT, every request sent to the gateway
    as to an HTTP proxy (see the module docstring)."""
    return s3_client(gw.rgw, user,
                     endpoint=f"http://{DOMAIN}:{gw.nginx.port}",
                     s3={"addressing_style": style},
                     proxies={"http": gw.url})


def raw(gw, method, path, host, body=b""):
    """One unsigned HTTP/1.1 request to the gateway with this Host."""
    return raw_at(gw.nginx.port, method, path, host, body)


def raw_at(port, method, path, host, body=b""):
    req = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
           f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(req.encode() + body)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    head, _, rest = out.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest


def test_virtual_host_writes_are_tracked(gateway, bucket):
    gw = gateway()
    alice = client(gw)
    alice.put_object(Bucket=bucket, Key="zarr/z/.zgroup",
                     Body=b'{"zarr_format":2}')
    for i in range(3):
        alice.put_object(Bucket=bucket, Key=f"zarr/z/a/0.{i}",
                         Body=os.urandom(50 + i))
    tree = gw.assert_consistent(bucket, "z")
    assert gw.tree(bucket, "z") == tree and "a" in tree

    # the access log shows the bucket and zarr the gateway saw
    log = gw.nginx.access_log.read_text()
    assert f"PUT http://{bucket}.{DOMAIN}" in log or \
        "PUT /zarr/z/a/0.2" in log
    assert "op=put result=ok zarr=z" in log

    # the batch is alice's: bob gets 409 in both styles, nothing written
    for style in ("virtual", "path"):
        bob = client(gw, "bob", style)
        with pytest.raises(botocore.exceptions.ClientError) as e:
            bob.put_object(Bucket=bucket, Key="zarr/z/bob", Body=b"b")
        assert err(e.value) == ("OperationAborted", 409), style
        with pytest.raises(botocore.exceptions.ClientError) as e:
            bob.delete_object(Bucket=bucket, Key="zarr/z/a/0.0")
        assert err(e.value) == ("OperationAborted", 409), style
    assert gw.tree(bucket, "z") == tree
    assert "zarr batch conflict: zarr=\"%s/zarr/z\"" % bucket \
        in gw.error_log()

    # the same batch through the other style, and through 127.0.0.1
    client(gw, style="path").put_object(Bucket=bucket, Key="zarr/z/p",
                                        Body=b"path")
    gw.client().put_object(Bucket=bucket, Key="zarr/z/q", Body=b"ip")
    alice.delete_object(Bucket=bucket, Key="zarr/z/a/0.1")
    alice.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "zarr/z/a/0.2"}, {"Key": "elsewhere"}]})
    tree = gw.assert_consistent(bucket, "z")
    assert set(tree) == {".", "a"}

    # multipart through the virtual host
    mpu = alice.create_multipart_upload(Bucket=bucket, Key="zarr/z/m")
    part = alice.upload_part(Bucket=bucket, Key="zarr/z/m", PartNumber=1,
                             UploadId=mpu["UploadId"], Body=b"m" * 100)
    alice.complete_multipart_upload(
        Bucket=bucket, Key="zarr/z/m", UploadId=mpu["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1,
                                    "ETag": part["ETag"]}]})
    gw.assert_consistent(bucket, "z")

    # reads of the checksum mirror through the virtual host
    body = alice.get_object(Bucket=bucket,
                            Key="zarr-checksums/z/.checksum")["Body"].read()
    assert body.startswith(b'{"checksums"')


def test_virtual_host_refusals(gateway, bucket):
    gw = gateway()
    alice = client(gw)

    # bad keys and the checksum prefix, as in path-style
    with pytest.raises(botocore.exceptions.ClientError) as e:
        alice.put_object(Bucket=bucket, Key="zarr/z/a//b", Body=b"x")
    assert err(e.value) == ("InvalidArgument", 400)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        alice.put_object(Bucket=bucket, Key="zarr-checksums/z/.checksum",
                         Body=b"x")
    assert err(e.value) == ("AccessDenied", 403)
    assert gw.tree(bucket, "z") is None

    # a key whose first segment names another bucket is still a key
    alice.put_object(Bucket=bucket, Key=f"{bucket}/zarr/z/k", Body=b"k")
    assert gw.tree(bucket, "z") is None

    # an upper-case bucket in Host: no DNS name has one, the backend may
    # fold it or not; refused before anything is forwarded
    status, body = raw(gw, "PUT", "/zarr/z/k",
                       f"{bucket.upper()}.{DOMAIN}", b"x")
    assert status == 400 and b"<Code>InvalidURI</Code>" in body
    assert gw.tree(bucket, "z") is None


def test_domain_itself_is_path_style(gateway, bucket):
    gw = gateway()
    # Host s3.zarr.test: path-style at RGW and at the gateway
    c = client(gw, style="path")
    c.put_object(Bucket=bucket, Key="zarr/y/a", Body=b"a")
    c.put_object(Bucket=bucket, Key="zarr/y/b/c", Body=b"bc")
    tree = gw.assert_consistent(bucket, "y")
    assert "b" in tree
    assert [o["Key"] for o in c.list_objects_v2(
        Bucket=bucket, Prefix="zarr/y/")["Contents"]] == \
        ["zarr/y/a", "zarr/y/b/c"]


def test_rgw_serves_virtual_hosts(rgw, bucket):
    """The premise: RGW itself reads Host <bucket>.s3.zarr.test as the
    bucket (else the tests above prove nothing)."""
    port = rgw.port
    c = s3_client(rgw, endpoint=f"http://{DOMAIN}:{port}",
                  s3={"addressing_style": "virtual"},
                  proxies={"http": rgw.endpoint})
    c.put_object(Bucket=bucket, Key="k", Body=b"v")
    direct = s3_client(rgw)
    assert direct.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_rgw_takes_other_names_for_buckets(rgw):
    """The premise of test_unknown_domain_writes_refused: with rgw dns
    name set, RGW reads a Host outside its domain, "localhost" included,
    as a bucket name (the whole path is the key); an IP address is
    path-style."""
    def bucket_named(host):
        status, body = raw_at(rgw.port, "GET", "/nosuchbucket-x/k", host)
        assert status == 404
        return body.split(b"<BucketName>")[1].split(b"<")[0].decode()

    assert bucket_named("s3.other.test") == "s3.other.test"
    assert bucket_named("localhost:%d" % rgw.port) == "localhost"
    assert bucket_named("127.0.0.1:%d" % rgw.port) == "nosuchbucket-x"
    assert bucket_named(DOMAIN) == "nosuchbucket-x"
    assert bucket_named("b1." + DOMAIN) == "b1"


def test_unknown_domain_writes_refused(gateway, bucket):
    """A Host under a domain the gateway is not told about (here
    s3.other.test): a backend serving that domain reads the whole path as
    the key, and RGW with rgw dns name takes the whole Host for a bucket
    name (test_rgw_takes_other_names_for_buckets), the whole path again
    the key.  Writes that would then touch a zarr are refused, as are
    DeleteObjects and form uploads that the path-style reading takes for
    service requests."""
    gw = gateway()
    other = s3_client(gw.rgw, endpoint=f"http://s3.other.test:{gw.nginx.port}",
                      s3={"addressing_style": "virtual"},
                      proxies={"http": gw.url})

    for call in (
            lambda: other.put_object(Bucket=bucket, Key="zarr/z/k",
                                     Body=b"x"),
            lambda: other.delete_object(Bucket=bucket, Key="zarr/z/k"),
            lambda: other.create_multipart_upload(Bucket=bucket,
                                                  Key="zarr/z/m"),
            lambda: other.put_object(Bucket=bucket,
                                     Key="zarr-checksums/z/.checksum",
                                     Body=b"x"),
            lambda: other.delete_objects(Bucket=bucket, Delete={
                "Objects": [{"Key": "zarr/z/k"}]})):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert err(e.value) == ("InvalidRequest", 400)

    # a form upload to "/" under that Host
    status, body = raw(gw, "POST", "/", f"{bucket}.s3.other.test",
                       b"--x--\r\n")
    assert status == 400 and b"<Code>InvalidRequest</Code>" in body

    # nothing reached RGW
    assert not s3_client(gw.rgw).list_objects_v2(Bucket=bucket).get(
        "Contents")
    assert gw.tree(bucket, "z") is None

    # writes whose whole path is outside the zarrs are forwarded (RGW
    # answers them: no bucket "<bucket>.s3.other.test"), reads too
    status, _ = raw(gw, "PUT", "/elsewhere/k", f"{bucket}.s3.other.test",
                    b"x")
    assert status != 400
    status, _ = raw(gw, "GET", "/zarr/z/k", f"{bucket}.s3.other.test")
    assert status != 400

    # a single label: RGW takes the whole Host for a bucket name
    status, body = raw(gw, "PUT", "/zarr/z/k", "localhost", b"x")
    assert status == 400 and b"<Code>InvalidRequest</Code>" in body

    # 127.0.0.1 is no bucket anywhere: path-style, tracked
    gw.client().put_object(Bucket=bucket, Key="zarr/z/k", Body=b"tracked")
    tree = gw.assert_consistent(bucket, "z")
    assert tree["."].endswith("-1--7")


def test_server_name_is_known(nginx_config, rgw, tmp_path, bucket):
    """The server's name (its first server_name) is a name the gateway
    serves path-style: a write through it is not refused; another name
    still is.  (Without zarr_virtual_host_suffix here.)"""
    cred = tmp_path / "gateway.cred"
    cred.write_text(f"access_key={rgw.gateway.access_key}\n"
                    f"secret_key={rgw.gateway.secret_key}\n"
                    f"region={rgw.region}\n")
    prefix, conf, port = nginx_config(
        "nginx-gateway.conf.template", rgw_port=rgw.port, workers=1,
        batch_timeout="60s", credentials=cred)
    text = conf.read_text()
    for old, new in (
            ("zarr_virtual_host_suffix s3.zarr.test;", ""),
            ("client_max_body_size 0;",
             "client_max_body_size 0;\n        server_name s3.zarr.test;")):
        assert old in text
        text = text.replace(old, new)
    conf.write_text(text)
    t = nginx_test_config(prefix, conf)
    assert t.returncode == 0, t.stdout
    proc = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(conf), "-e",
         str(prefix / "error.log"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for_port(port, proc=proc)
        gw = Gateway(Nginx(port, prefix, prefix / "error.log"), rgw,
                     prefix / "store", cred)

        # Host s3.zarr.test: RGW and the gateway read it path-style
        c = client(gw, style="path")
        c.put_object(Bucket=bucket, Key="zarr/n/k", Body=b"named")
        gw.assert_consistent(bucket, "n")

        # the bucket "zarr" path-style: its whole path is a zarr key, yet
        # under the server's name it is forwarded (RGW refuses the
        # unsigned write), under another name refused
        status, body = raw(gw, "PUT", "/zarr/n/k", f"{DOMAIN}:{port}", b"x")
        assert status in (403, 404) and b"InvalidRequest" not in body
        status, body = raw(gw, "PUT", "/zarr/n/k", "s3.other.test", b"x")
        assert status == 400 and b"<Code>InvalidRequest</Code>" in body

        # virtual-hosted under it: the gateway is not told, so a write
        # whose whole path is a zarr key is refused
        with pytest.raises(botocore.exceptions.ClientError) as e:
            client(gw).put_object(Bucket=bucket, Key="zarr/n/v", Body=b"v")
        assert err(e.value) == ("InvalidRequest", 400)
        assert gw.tree(bucket, "n") == gw.listing(bucket, "n")
        assert not bad_log_lines(prefix / "error.log")
    finally:
        stop_nginx(proc)


def test_virtual_host_snapshot_reads(gateway, bucket):
    """A snapshot (DESIGN section 10) read, listed and protected through
    <bucket>.s3.zarr.test as through the path style."""
    import requests

    gw = gateway()
    alice = client(gw)
    alice.put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    files = {".zgroup": b"{}", "a/.zarray": b"{}",
             "a/0.0": bytes(range(256)), "a/0.1": b"one"}
    for path, body in files.items():
        alice.put_object(Bucket=bucket, Key="zarr/vs/" + path, Body=body)
    api = f"{gw.url}/zarr-api/v1/buckets/{bucket}/zarrs/vs"
    assert requests.delete(api + "/batch", timeout=60).status_code == 204
    r = requests.post(api + "/snapshots", json={"name": "v1"}, timeout=60)
    assert r.status_code == 201, r.text

    # the draft moves on through the virtual host
    alice.put_object(Bucket=bucket, Key="zarr/vs/a/0.0", Body=b"new")
    alice.delete_object(Bucket=bucket, Key="zarr/vs/a/0.1")
    assert requests.delete(api + "/batch", timeout=60).status_code == 204

    s = "zarr-snapshots/vs/v1/"
    for style in ("virtual", "path"):
        c = client(gw, style=style)
        for path, body in files.items():
            assert c.get_object(Bucket=bucket, Key=s + path)[
                "Body"].read() == body, (style, path)
        r = c.get_object(Bucket=bucket, Key=s + "a/0.0", Range="bytes=1-3")
        assert r["Body"].read() == bytes([1, 2, 3])
        assert c.head_object(Bucket=bucket, Key=s + "a/0.1")[
            "ContentLength"] == 3
        keys = [o["Key"] for page in c.get_paginator(
            "list_objects_v2").paginate(Bucket=bucket, Prefix=s,
                                        PaginationConfig={"PageSize": 2})
                for o in page.get("Contents", [])]
        assert keys == sorted(s + p for p in files), style
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.get_object(Bucket=bucket, Key=s + "a/9.9")
        assert err(e.value) == ("NoSuchKey", 404), style
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.put_object(Bucket=bucket, Key=s + "x", Body=b"no")
        assert err(e.value) == ("AccessDenied", 403), style

    # a version the snapshot holds cannot be deleted through the host
    held = [v for v in alice.list_object_versions(
        Bucket=bucket, Prefix="zarr/vs/a/0.0")["Versions"]
        if not v["IsLatest"]][0]["VersionId"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        alice.delete_object(Bucket=bucket, Key="zarr/vs/a/0.0",
                            VersionId=held)
    assert err(e.value) == ("AccessDenied", 403)
    assert b"v1" in e.value.response["Error"]["Message"].encode()
    assert alice.get_object(Bucket=bucket, Key="zarr/vs/a/0.0",
                            VersionId=held)["Body"].read() == files["a/0.0"]
