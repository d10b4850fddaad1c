"""The .checksum mirror: after every change, each directory's object in
RGW equals, byte for byte, the document computed from the backend listing;
removed directories leave none; a backend outage delays it, loses nothing,
and a restart resumes it."""

import signal
import subprocess
import time

import pytest

from conftest import NGINX, s3_client, wait_for_port
from test_gateway_resolver import FLAKY
from conftest import free_port


def listing(client, bucket, prefix):
    files = []
    for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            files.append((o["Key"][len(prefix):], o["Size"],
                          o["ETag"].strip('"')))
    return files


def assert_mirror(gw, bucket, zarr_id, timeout=10):
    """Gateway.assert_mirror: the .checksum objects equal the documents
    of the backend listing (zarrctl and the Python model), once the
    mirror has caught up; a document the mirror deletes between the
    list and the read counts as absent."""
    return gw.assert_mirror(bucket, zarr_id, timeout=timeout)


def metrics(gw):
    import requests
    text = requests.get(gw.url + "/zarr-metrics").text
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_mirror_follows_the_tree(gateway, bucket):
    gw = gateway()
    c = gw.client()
    for k in [".zgroup", "a/.zarray", "a/0.0", "a/0.1", "a/b/c/d", "x",
              "x/y", "q\"uote/\u00e9"]:
        c.put_object(Bucket=bucket, Key="zarr/z/" + k, Body=k.encode())
    docs = assert_mirror(gw, bucket, "z")
    assert set(docs) == {"", "a", "a/b", "a/b/c", "x", "q\"uote"}

    # every directory's document is the one the gateway's API would give
    gw.assert_consistent(bucket, "z")

    # the object is readable by the bucket owner and has the ACL asked for
    direct = s3_client(gw.rgw)
    acl = direct.get_object_acl(Bucket=bucket, Key="zarr-checksums/z/.checksum")
    assert acl["Grants"]

    # changes: the documents follow, removed directories lose theirs
    c.put_object(Bucket=bucket, Key="zarr/z/a/0.0", Body=b"changed")
    c.delete_object(Bucket=bucket, Key="zarr/z/a/b/c/d")
    c.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "zarr/z/x/y"}]})
    docs = assert_mirror(gw, bucket, "z")
    assert "a/b" not in docs and "a/b/c" not in docs and "x" not in docs

    # everything deleted: no documents left
    keys = [o[0] for o in listing(direct, bucket, "zarr/z/")]
    c.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "zarr/z/" + k} for k in keys]})
    assert assert_mirror(gw, bucket, "z") == {}

    m = metrics(gw)
    assert m['zarr_mirror_writes_total{kind="put"}'] >= 6
    assert m['zarr_mirror_writes_total{kind="delete"}'] >= 6
    assert m["zarr_mirror_backlog"] == 0


def test_burst_is_coalesced(gateway, bucket):
    gw = gateway()
    c = gw.client()
    before = metrics(gw)['zarr_mirror_writes_total{kind="put"}']
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda i: c.put_object(
            Bucket=bucket, Key="zarr/b/chunks/%d" % i, Body=b"%d" % i),
            range(200)))
    assert_mirror(gw, bucket, "b")
    puts = metrics(gw)['zarr_mirror_writes_total{kind="put"}'] - before
    # 200 writes into one directory: a handful of rounds, not 400 PUTs
    assert 1 <= puts <= 40, puts


@pytest.fixture
def outage(rgw, tmp_path):
    """An nginx in front of RGW that can be stopped and started."""
    port = free_port()
    p = tmp_path / "front"
    p.mkdir()
    (p / "nginx.conf").write_text(FLAKY.format(p=p, port=port, rgw=rgw.port))

    class Front:
        proc = None

        def start(self):
            self.proc = subprocess.Popen(
                [NGINX, "-p", str(p), "-c", str(p / "nginx.conf"), "-e",
                 str(p / "error.log"), "-g", "daemon off;"])
            assert wait_for_port(port, proc=self.proc)

        def stop(self):
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=15)

    f = Front()
    f.port = port
    f.start()
    yield f
    if f.proc.poll() is None:
        f.stop()


def test_backend_outage_and_restart(gateway, bucket, outage, nginx_config):
    # the gateway's own calls (mirror, HEAD) go through the front
    gw = gateway()
    prefix, conf, port = nginx_config(
        "nginx-gateway.conf.template", rgw_port=gw.rgw.port, workers=2,
        batch_timeout="60s", credentials=gw.cred)
    conf.write_text(conf.read_text().replace(
        "zarr_backend http://127.0.0.1:%d;" % gw.rgw.port,
        "zarr_backend http://127.0.0.1:%d;" % outage.port))

    def start():
        proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf),
                                 "-e", str(prefix / "error.log"),
                                 "-g", "daemon off;"])
        assert wait_for_port(port, proc=proc)
        return proc

    from conftest import Gateway, Nginx
    g = Gateway(Nginx(port, prefix, prefix / "error.log"), gw.rgw,
                prefix / "store", gw.cred)
    proc = start()
    try:
        c = g.client()
        c.put_object(Bucket=bucket, Key="zarr/o/a/1", Body=b"1")
        assert_mirror(g, bucket, "o")

        outage.stop()
        for i in range(5):
            c.put_object(Bucket=bucket, Key="zarr/o/b%d/f" % i, Body=b"x")
        time.sleep(2)
        m = metrics(g)
        assert m["zarr_mirror_backlog"] >= 5
        assert m["zarr_mirror_errors_total"] >= 1
        assert "zarr mirror:" in g.error_log()

        # restart nginx with the backlog; the outage goes on meanwhile
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        proc = start()
        time.sleep(1)
        assert metrics(g)["zarr_mirror_backlog"] >= 5

        outage.start()
        assert_mirror(g, bucket, "o", timeout=40)
        assert metrics(g)["zarr_mirror_backlog"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def test_readme_tour_awscli_reads_checksum(gateway, bucket, tmp_path):
    """README: write with awscli through the gateway, read the root's
    .checksum back with `aws s3 cp ... -`."""
    import os
    gw = gateway()
    src = tmp_path / "my.zarr"
    (src / "arr").mkdir(parents=True)
    (src / ".zgroup").write_text('{"zarr_format": 2}')
    (src / "arr" / ".zarray").write_text("{}")
    (src / "arr" / "0.0").write_bytes(b"chunk")
    env = dict(os.environ, AWS_ACCESS_KEY_ID=gw.rgw.alice.access_key,
               AWS_SECRET_ACCESS_KEY=gw.rgw.alice.secret_key,
               AWS_DEFAULT_REGION=gw.rgw.region,
               AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    aws = ["/usr/bin/aws", "--endpoint-url", gw.url, "s3"]
    subprocess.run(aws + ["cp", "--recursive", "--only-show-errors", str(src),
                          "s3://%s/zarr/my-zarr/" % bucket], env=env,
                   check=True)
    docs = gw.assert_consistent(bucket, "my-zarr")
    out = subprocess.run(aws + ["cp", "s3://%s/zarr-checksums/my-zarr/"
                                ".checksum" % bucket, "-"], env=env,
                         check=True, capture_output=True).stdout
    want = gw.assert_mirror(bucket, "my-zarr")[""]
    assert out == want
    assert out.startswith(b'{"checksums":{"directories":[{"digest":"')
    assert docs["."] in out.decode()
