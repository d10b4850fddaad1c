"""Unknown outcomes while running: the backend did the write but the
gateway heard a 5xx.  The resolver HEADs the key and the tree catches up;
the client got the 5xx and no lie."""

import signal
import subprocess
import time

import botocore
import pytest

from conftest import NGINX, Gateway, Nginx, free_port, wait_for_port

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


def test_lost_answers_are_resolved(gateway, bucket, flaky, nginx_config):
    gw = gateway()
    c = gw.client()
    c.put_object(Bucket=bucket, Key="zarr/z/a", Body=b"1")
    gw.assert_consistent(bucket, "z")

    # a second gateway on the same kind of config, proxying to the flaky
    # backend (its own HEADs still go to RGW)
    prefix, conf, port = nginx_config(
        "nginx-gateway.conf.template", rgw_port=gw.rgw.port, workers=2,
        batch_timeout="60s",
        credentials=gw.cred)
    text = conf.read_text().replace(
        "server 127.0.0.1:%d;" % gw.rgw.port, "server 127.0.0.1:%d;" % flaky)
    conf.write_text(text)
    proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf),
                             "-e", str(prefix / "error.log"),
                             "-g", "daemon off;"])
    try:
        assert wait_for_port(port, proc=proc)
        g2 = Gateway(Nginx(port, prefix, prefix / "error.log"), gw.rgw,
                     prefix / "store")
        c2 = g2.client()
        c2.put_object(Bucket=bucket, Key="zarr/y/ok", Body=b"ok")
        for i in range(3):
            with pytest.raises(botocore.exceptions.ClientError) as e:
                c2.put_object(Bucket=bucket, Key="zarr/y/lost/%d" % i,
                              Body=b"x" * (i + 1))
            assert e.value.response["ResponseMetadata"][
                "HTTPStatusCode"] == 502
        # right after the 502 the tree does not know yet; within seconds
        # the resolver has HEADed the keys
        tree = g2.assert_consistent(bucket, "y", timeout=10)
        assert tree["lost"].endswith("-3--6")
        assert "intents settled from the backend" in (
            prefix / "error.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
