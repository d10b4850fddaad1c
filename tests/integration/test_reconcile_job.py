"""Reconcile as a job (docs/api.md, issue 11 item 4): POST answers 202
with a Location at once, GET there follows the job from any worker until
it is done (its counters are what was listed and applied, tree ==
listing afterwards), one job per zarr at a time (a second POST while one
runs: 409 with the running job), and a kill -9 of nginx while a job runs
leaves it failed ("interrupted by a restart") once nginx is back, and a
new POST is accepted.  The slow tests list through a rate-limited nginx
in front of RGW, so that the job is surely still running."""

import concurrent.futures
import datetime
import os
import signal
import socket
import subprocess
import time

import pytest
import requests

from conftest import (NGINX, EMPTY_DIGEST, Gateway, Nginx, free_port,
                      s3_client, wait_for, wait_for_port)


def api(gw, method, path, **kw):
    kw.setdefault("timeout", 120)
    return requests.request(method, f"{gw.url}/zarr-api/v1/{path}", **kw)


def jpath(bucket, zid):
    return f"buckets/{bucket}/zarrs/{zid}/reconcile"


def rfc3339(s):
    assert s.endswith("Z"), s
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")


def put_direct(gw, bucket, keys):
    """Objects written straight to RGW, behind the gateway's back."""
    direct = s3_client(gw.rgw, "alice")
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda k: direct.put_object(Bucket=bucket, Key=k,
                                                Body=b"x"), keys))


def follow(gw, bucket, zid, timeout=120):
    """GETs the job until it is no longer running; returns every answer."""
    seen = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = api(gw, "GET", jpath(bucket, zid))
        assert r.status_code == 200, r.text
        seen.append(r.json())
        if seen[-1]["state"] != "running":
            return seen
        time.sleep(0.1)
    raise AssertionError("the job still runs: %r" % seen[-1])


def settled(gw, bucket, zid):
    assert wait_for(lambda: api(gw, "GET", f"buckets/{bucket}/zarrs/{zid}")
                    .json().get("mirror_pending", 0) == 0, timeout=60)
    gw.assert_consistent(bucket, zid, timeout=10)


def test_reconcile_job_accepted_then_done(gateway, bucket):
    gw = gateway()
    zid = "job"
    keys = [f"zarr/{zid}/{i // 100}/{i}" for i in range(1500)]
    put_direct(gw, bucket, keys + [f"zarr/{zid}/bad//key"])

    # never asked: 404; a bad wait: 400
    r = api(gw, "GET", jpath(bucket, zid))
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = api(gw, "POST", jpath(bucket, zid) + "?wait=yes")
    assert r.status_code == 400 and r.json()["error"] == "bad_request"
    assert api(gw, "GET", jpath(bucket, zid)).status_code == 404

    r = api(gw, "POST", jpath(bucket, zid))
    assert r.status_code == 202, r.text
    assert r.headers["Location"] == f"/zarr-api/v1/{jpath(bucket, zid)}"
    job = r.json()
    assert job["state"] == "running"
    assert job["ended"] is None and job["error"] is None
    assert job["digest_after"] is None
    started = rfc3339(job["started"])

    # the Location, from any worker (2): the same job until it ends
    seen = follow(gw, bucket, zid)
    assert {j["job_id"] for j in seen} == {job["job_id"]}
    end = seen[-1]
    assert end["state"] == "done", end
    assert end["error"] is None
    assert rfc3339(end["ended"]) >= started
    assert end["started"] == job["started"]

    # its counters: what was listed and applied
    assert end["objects_listed"] == 1501
    assert end["skipped"] == 1
    assert end["added"] == 1500
    assert end["removed"] == end["changed"] == 0
    assert end["mutations_total"] == end["mutations_applied"] == 1500
    assert end["digest_before"] == EMPTY_DIGEST
    for j in seen:
        assert j["objects_listed"] <= 1501
        assert j["mutations_applied"] <= 1500

    s3_client(gw.rgw, "alice").delete_object(Bucket=bucket,
                                             Key=f"zarr/{zid}/bad//key")
    assert end["digest_after"] == gw.listing(bucket, zid)["."]
    settled(gw, bucket, zid)
    assert api(gw, "GET", f"buckets/{bucket}/zarrs/{zid}").json()[
        "digest"] == end["digest_after"]

    # wait=1: the end in the answer, as reconcile answered before jobs
    r = api(gw, "POST", jpath(bucket, zid) + "?wait=1")
    assert r.status_code == 200, r.text
    again = r.json()
    assert again["state"] == "done" and again["job_id"] > job["job_id"]
    assert again["objects_listed"] == 1500
    assert again["mutations_total"] == again["mutations_applied"] == 0
    assert again["digest_before"] == again["digest_after"] == end[
        "digest_after"]
    assert api(gw, "GET", jpath(bucket, zid)).json() == again
    assert "reconciled \"%s/%s\"" % (bucket, zid) in gw.error_log()


def test_reconcile_job_of_a_missing_bucket_fails(gateway, bucket):
    gw = gateway()
    r = api(gw, "POST", jpath("no-such-bucket-here", "z"))
    assert r.status_code == 202, r.text
    end = follow(gw, "no-such-bucket-here", "z")[-1]
    assert end["state"] == "failed"
    assert "bucket" in end["error"]
    assert end["digest_after"] is None and end["ended"] is not None
    # failed: it may be asked again
    assert api(gw, "POST", jpath("no-such-bucket-here", "z")
               ).status_code == 202


SLOW_FRONT = """
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log notice;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {p}/body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            proxy_pass http://127.0.0.1:{rgw};
            proxy_set_header Host $http_host;
            proxy_max_temp_file_size 0;
            limit_rate {rate};
        }}
    }}
}}
"""


@pytest.fixture
def slow_gateway(gateway, nginx_config, tmp_path):
    """A gateway (2 workers) whose own calls to RGW go through an nginx
    sending 200 KB/s: a listing of 3,000 keys takes seconds.  Yields
    (gw, kill9, restart): kill -9 of its nginx, and a start again."""
    base = gateway()            # for its RGW and credentials file
    rgw_port = base.rgw.port
    front = tmp_path / "front"
    front.mkdir()
    fport = free_port()
    (front / "nginx.conf").write_text(SLOW_FRONT.format(
        p=front, port=fport, rgw=rgw_port, rate="200k"))
    prefix, conf, port = nginx_config(
        "nginx-gateway.conf.template", rgw_port=rgw_port, workers=2,
        batch_timeout="60s", credentials=base.cred)
    conf.write_text(conf.read_text().replace(
        "zarr_backend http://127.0.0.1:%d;" % rgw_port,
        "zarr_backend http://127.0.0.1:%d;" % fport))

    procs = []

    def run(binary, p, c, pt):
        procs.append(subprocess.Popen([binary, "-p", str(p), "-c", str(c),
                                       "-e", str(p / "error.log"),
                                       "-g", "daemon off;"]))
        assert wait_for_port(pt, proc=procs[-1])

    # the front is not under test: the system nginx, never under valgrind
    run("/usr/sbin/nginx", front, front / "nginx.conf", fport)
    run(NGINX, prefix, conf, port)
    gw = Gateway(Nginx(port, prefix, prefix / "error.log"), base.rgw,
                 prefix / "store", base.cred)
    def kill9():
        """kill -9 of the gateway's master and workers."""
        master = procs[-1]
        workers = subprocess.run(["pgrep", "-P", str(master.pid)],
                                 capture_output=True, text=True
                                 ).stdout.split()
        assert workers
        for p in [master.pid] + [int(w) for w in workers]:
            os.kill(p, signal.SIGKILL)
        master.wait(timeout=15)
        assert wait_for(lambda: all(gone(w) for w in workers))
        # a worker's threads may outlive its main thread for a moment,
        # and so may the listening socket
        assert wait_for(lambda: not port_open(port))

    try:
        yield gw, kill9, lambda: run(NGINX, prefix, conf, port)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=15)


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def gone(pid):
    """The process is no more, or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def start_job(gw, bucket, zid, n=3000):
    put_direct(gw, bucket, [f"zarr/{zid}/{i // 100}/{i}" for i in range(n)])
    r = api(gw, "POST", jpath(bucket, zid))
    assert r.status_code == 202, r.text
    return r.json()


def test_reconcile_job_one_at_a_time(slow_gateway, bucket):
    gw, _, _ = slow_gateway
    zid = "one-job"
    job = start_job(gw, bucket, zid)

    # while it runs: 409 with the running job, from either worker
    for _ in range(4):
        r = api(gw, "POST", jpath(bucket, zid))
        assert r.status_code == 409, r.text
        body = r.json()
        assert body["error"] == "conflict"
        assert body["job"]["job_id"] == job["job_id"]
        assert body["job"]["state"] == "running", body
        assert "batch" not in body

    # it holds the zarr's batch meanwhile
    b = api(gw, "GET", f"buckets/{bucket}/zarrs/{zid}/batch").json()
    assert b["owner"] == "zarr-api:reconcile"

    seen = follow(gw, bucket, zid)
    end = seen[-1]
    assert end["state"] == "done", end
    assert end["objects_listed"] == 3000
    assert end["added"] == end["mutations_applied"] == 3000
    # progress was shown while it listed (a record about every second)
    assert any(0 < j["objects_listed"] < 3000 for j in seen[:-1]), [
        (j["state"], j["objects_listed"]) for j in seen]
    settled(gw, bucket, zid)

    # done: another is accepted
    r = api(gw, "POST", jpath(bucket, zid) + "?wait=1")
    assert r.status_code == 200, r.text
    assert r.json()["job_id"] > job["job_id"]


def test_reconcile_job_interrupted_by_a_restart(slow_gateway, bucket):
    gw, kill9, restart = slow_gateway
    zid = "killed-job"
    job = start_job(gw, bucket, zid)

    # kill -9 while it lists
    assert wait_for(lambda: api(gw, "GET", jpath(bucket, zid)).json()[
        "objects_listed"] > 0, timeout=30)
    kill9()
    restart()

    r = api(gw, "GET", jpath(bucket, zid))
    assert r.status_code == 200, r.text
    dead = r.json()
    assert dead["job_id"] == job["job_id"]
    assert dead["state"] == "failed", dead
    assert dead["error"] == "interrupted by a restart"
    assert dead["ended"] is not None
    assert dead["objects_listed"] > 0

    # asked again: accepted at once, though the killed job's batch was
    # left active (its timeout is 60 s): the new job lets it go
    r = api(gw, "POST", jpath(bucket, zid))
    assert r.status_code == 202, r.text
    assert r.json()["job_id"] > job["job_id"]
    end = follow(gw, bucket, zid)[-1]
    assert end["state"] == "done", end
    assert end["objects_listed"] == 3000
    settled(gw, bucket, zid)
