"""A backend that misbehaves on some keys (an nginx between the gateway and
RGW): the backend did the write but the gateway heard a 5xx (the resolver
HEADs the key and the tree catches up); a copy answered 200 with an
<Error> body (nothing changes); an aws-chunked upload (the size is the
decoded one)."""

import signal
import subprocess

import botocore
import pytest
import requests

from conftest import NGINX, Gateway, Nginx, free_port, wait_for_port
from zarr_ref import tree_digests

FLAKY = """
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log notice;
events {{ worker_connections 256; }}
http {{
    access_log {p}/access.log;
    client_body_temp_path {p}/body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        underscores_in_headers on;
        ignore_invalid_headers off;
        merge_slashes off;
        location / {{
            proxy_pass http://127.0.0.1:{rgw};
            proxy_set_header Host $http_host;
        }}
        # keys with "lost" in them: the write reaches RGW (a mirror of the
        # request), the answer is a 502 from a dead upstream
        location ~ lost {{
            mirror /mirror;
            mirror_request_body on;
            proxy_pass http://127.0.0.1:1;
        }}
        # a copy that failed although the status says 200
        location ~ copyerror {{
            default_type application/xml;
            return 200 '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code><Message>copy failed</Message></Error>';
        }}
        # accepts an aws-chunked body as S3 would (not checking it)
        location ~ chunked {{
            add_header ETag '"5d41402abc4b2a76b9719d911017c592"';
            return 200;
        }}
        location = /mirror {{
            internal;
            proxy_pass http://127.0.0.1:{rgw}$request_uri;
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""


@pytest.fixture
def flaky(rgw, tmp_path):
    port = free_port()
    p = tmp_path / "flaky"
    p.mkdir()
    (p / "nginx.conf").write_text(FLAKY.format(p=p, port=port, rgw=rgw.port))
    proc = subprocess.Popen([NGINX, "-p", str(p), "-c", str(p / "nginx.conf"),
                             "-e", str(p / "error.log"), "-g", "daemon off;"])
    assert wait_for_port(port, proc=proc)
    yield port
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=15)


@pytest.fixture
def faulty_gateway(gateway, flaky, nginx_config):
    """A gateway whose proxy_pass goes through the flaky nginx (its own
    HEADs still go to RGW)."""
    gw = gateway()
    prefix, conf, port = nginx_config(
        "nginx-gateway.conf.template", rgw_port=gw.rgw.port, workers=2,
        batch_timeout="60s", credentials=gw.cred)
    text = conf.read_text().replace(
        "server 127.0.0.1:%d;" % gw.rgw.port, "server 127.0.0.1:%d;" % flaky)
    conf.write_text(text)
    proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf),
                             "-e", str(prefix / "error.log"),
                             "-g", "daemon off;"])
    assert wait_for_port(port, proc=proc)
    yield Gateway(Nginx(port, prefix, prefix / "error.log"), gw.rgw,
                  prefix / "store", gw.cred)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=15)


def test_lost_answers_are_resolved(faulty_gateway, bucket):
    g2 = faulty_gateway
    c2 = g2.client()
    c2.put_object(Bucket=bucket, Key="zarr/y/ok", Body=b"ok")
    for i in range(3):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c2.put_object(Bucket=bucket, Key="zarr/y/lost/%d" % i,
                          Body=b"x" * (i + 1))
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 502
    # the write landed at RGW although the gateway heard 502; within
    # seconds the resolver has HEADed the keys
    tree = g2.assert_consistent(bucket, "y", timeout=10)
    assert tree["lost"].endswith("-3--6")
    assert "intents settled from the backend" in g2.error_log()


def test_copy_answered_200_with_error(faulty_gateway, bucket):
    g2 = faulty_gateway
    c2 = g2.client()
    c2.put_object(Bucket=bucket, Key="zarr/y/src", Body=b"source")
    before = g2.tree(bucket, "y")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c2.copy_object(Bucket=bucket, Key="zarr/y/copyerror",
                       CopySource={"Bucket": bucket, "Key": "zarr/y/src"})
    # (botocore sees the <Error> in the 200 and fails the call)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert g2.tree(bucket, "y") == before
    g2.assert_consistent(bucket, "y")


def test_aws_chunked_size_is_decoded(faulty_gateway, bucket):
    g2 = faulty_gateway
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    body = (b"5;chunk-signature=" + b"0" * 64 + b"\r\nhello\r\n"
            b"0;chunk-signature=" + b"0" * 64 + b"\r\n\r\n")
    url = g2.url + "/%s/zarr/w/chunked/x" % bucket
    # the seed signature is right (the gateway checks it); the chunk
    # signatures are the backend's to check, and this stub does not
    headers = {"Content-Encoding": "aws-chunked",
               "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
               "x-amz-decoded-content-length": "5"}
    req = AWSRequest(method="PUT", url=url, data=body, headers=headers)
    alice = g2.rgw.alice
    SigV4Auth(Credentials(alice.access_key, alice.secret_key), "s3",
              g2.rgw.region).add_auth(req)
    r = requests.put(url, data=body, headers=dict(req.headers))
    assert r.status_code == 200, r.text
    assert len(body) != 5
    want = tree_digests([("chunked/x", 5, "5d41402abc4b2a76b9719d911017c592")])
    want["."] = want.pop("")
    assert g2.tree(bucket, "w") == want
