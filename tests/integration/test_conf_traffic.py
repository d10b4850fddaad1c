"""The conf/ examples against real traffic: request bodies of a
1,000-key DeleteObjects and of a 10,000-part CompleteMultipartUpload
without nginx's "buffered to a temporary file" warning, and the TLS
server block example (nginx -t with a self-signed certificate, then a
PUT over HTTPS)."""

import concurrent.futures
import getpass
import re
import subprocess

import boto3
import botocore
import pytest
from botocore.config import Config

from conftest import (REPO_ROOT, Gateway, Nginx, free_port,
                      nginx_test_config, render_template, stop_nginx, tail,
                      wait_for_port, NGINX)


TEMP_FILE_WARNING = "a client request body is buffered to a temporary file"


def body_sizes(client, operation):
    """[request body sizes] of the operation's requests client sends."""
    sizes = []

    def record(request, **kw):
        sizes.append(len(request.body or b""))

    client.meta.events.register("before-send.s3.%s" % operation, record)
    return sizes


def test_delete_objects_1000_keys(gateway, bucket):
    gw = gateway()
    c = gw.client()
    # realistic zarr chunk keys: a uuid-named zarr, nested chunk paths
    zid = "2f0d4e5c-7a1b-4c3d-9e8f-0a1b2c3d4e5f"
    keys = ["zarr/%s/0/image/c/%d/%d/%d" % (zid, i // 100, i // 10 % 10,
                                            i % 10) for i in range(1000)]
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda k: c.put_object(Bucket=bucket, Key=k, Body=b"x"),
                    keys[::5]))
    gw.assert_consistent(bucket, zid, mirror=False)

    sizes = body_sizes(c, "DeleteObjects")
    r = c.delete_objects(Bucket=bucket, Delete={
        "Objects": [{"Key": k} for k in keys], "Quiet": True})
    assert r.get("Errors", []) == []
    sent = max(sizes)
    # over the default client_body_buffer_size: the test means something
    assert 60 * 1024 < sent < 256 * 1024, sent

    assert c.list_objects_v2(Bucket=bucket, Prefix="zarr/")["KeyCount"] == 0
    gw.assert_consistent(bucket, zid)
    assert TEMP_FILE_WARNING not in gw.error_log()


def test_complete_10000_parts(gateway, bucket):
    """A CompleteMultipartUpload body of 10,000 parts (~1 MB) streams to
    the backend: no temporary file, and RGW's refusal (the parts were
    never uploaded) changes nothing."""
    gw = gateway()
    c = gw.client()
    key = "zarr/mpu/big"
    c.put_object(Bucket=bucket, Key="zarr/mpu/.zgroup", Body=b"{}")
    up = c.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    sizes = body_sizes(c, "CompleteMultipartUpload")
    parts = [{"PartNumber": n, "ETag": '"%032x"' % n}
             for n in range(1, 10001)]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up,
                                    MultipartUpload={"Parts": parts})
    assert e.value.response["Error"]["Code"] == "InvalidPart", \
        e.value.response
    sent = max(sizes)
    assert sent > 700 * 1024, sent

    c.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=up)
    gw.assert_consistent(bucket, "mpu")
    assert TEMP_FILE_WARNING not in gw.error_log()


def tls_locations(text):
    """The server block's settings and locations, from the first
    client_max_body_size line to the block's end."""
    start = text.index("        # no limit on object or part size")
    end = text.rindex("\n    }\n")
    return text[start:end]


def test_tls_example(rgw, bucket, tmp_path, module_path):
    example = (REPO_ROOT / "conf" / "nginx-gateway-tls.conf.example"
               ).read_text()
    template = (REPO_ROOT / "conf" / "nginx-gateway.conf.template"
                ).read_text()
    # the same locations and settings as the plain HTTP server
    assert tls_locations(example) == tls_locations(
        render_template(template[template.index("    server {"):],
                        {"LISTEN_PORT": 0, "BATCH_TIMEOUT": "60s"}))

    # a self-signed certificate for 127.0.0.1
    crt, key = tmp_path / "gw.crt", tmp_path / "gw.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True, timeout=60)

    tls_port = free_port()
    block = example.replace("/etc/nginx/tls/s3.example.org.crt", str(crt))
    block = block.replace("/etc/nginx/tls/s3.example.org.key", str(key))
    block = block.replace("listen 443 ssl;",
                          "listen 127.0.0.1:%d ssl;" % tls_port)
    assert str(crt) in block and str(key) in block

    # the gateway template with the TLS server added to its http block
    cut = template.rindex("}")
    text = template[:cut] + block + template[cut:]
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    cred = tmp_path / "gateway.cred"
    cred.write_text(f"access_key={rgw.gateway.access_key}\n"
                    f"secret_key={rgw.gateway.secret_key}\n"
                    f"region={rgw.region}\n")
    http_port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(render_template(text, {
        "PREFIX": prefix, "MODULE": module_path, "USER": getpass.getuser(),
        "WORKERS": 1, "LISTEN_PORT": http_port, "RGW_PORT": rgw.port,
        "CREDENTIALS": cred, "BATCH_TIMEOUT": "60s", "LOG_LEVEL": "info",
        "AUTH": "zarr_credentials rgw valid=10s;"}))
    t = nginx_test_config(prefix, conf)
    assert t.returncode == 0, t.stdout

    error_log = prefix / "error.log"
    proc = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(error_log),
         "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for_port(tls_port, proc=proc), tail(error_log)
        s3 = boto3.session.Session().client(
            "s3", endpoint_url="https://127.0.0.1:%d" % tls_port,
            region_name=rgw.region, verify=str(crt),
            aws_access_key_id=rgw.alice.access_key,
            aws_secret_access_key=rgw.alice.secret_key,
            config=Config(signature_version="s3v4",
                          s3={"addressing_style": "path"},
                          retries={"max_attempts": 1}))
        s3.put_object(Bucket=bucket, Key="zarr/tls/.zgroup", Body=b"{}")
        s3.put_object(Bucket=bucket, Key="zarr/tls/a/0", Body=b"chunk")
        assert s3.get_object(Bucket=bucket, Key="zarr/tls/a/0")[
            "Body"].read() == b"chunk"
        gw = Gateway(Nginx(http_port, prefix, error_log), rgw,
                     prefix / "store", cred)
        gw.assert_consistent(bucket, "tls")
    finally:
        stop_nginx(proc)
    assert not re.search(r"\[(alert|emerg)\]", error_log.read_text())
