"""DESIGN 4, durability contract v2: intents live in a store of their own
(<store>/gate, never fsynced).  kill -9 of every nginx process loses
nothing: the resolver settles the surviving intents and no zarr is listed.
An operating-system crash (simulated: the intent store missing, truncated
or garbage, or intact but the boot id in gate.state another one) makes the
zarrs that had batches be rebuilt from listings; writers get 503 SlowDown
meanwhile, the API says "recovering"; then tree == listing and the mirror
converges.  A zarr that had no batch is not listed."""

import concurrent.futures
import os
import signal
import subprocess
import time

import botocore
import pytest
import requests

from conftest import NGINX, s3_client, wait_for, wait_for_port


def start(gw, conf=None):
    conf = conf or gw.nginx.prefix / "nginx.conf"
    proc = subprocess.Popen([NGINX, "-p", str(gw.nginx.prefix), "-c",
                             str(conf), "-e", str(gw.nginx.error_log),
                             "-g", "daemon off;"])
    assert wait_for_port(gw.nginx.port, proc=proc)
    return proc


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=15)


def kill9(gw):
    pid = int((gw.nginx.prefix / "nginx.pid").read_text())
    workers = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                             text=True).stdout.split()
    for p in [pid] + [int(w) for w in workers]:
        os.kill(p, signal.SIGKILL)
    wait_for(lambda: subprocess.run(["pgrep", "-P", str(pid)],
                                    capture_output=True).returncode != 0)


def metric(gw, name):
    text = requests.get(gw.url + "/zarr-metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no metric " + name)


def upload_and_kill(gw, bucket, zarr_id):
    """8 writers into zarr_id; kill -9 of every nginx process while they
    go on.  Returns how many PUTs succeeded."""
    c = gw.client()
    stop_at = time.monotonic() + 1.5
    done = []

    def writer(i):
        while time.monotonic() < stop_at:
            try:
                c.put_object(Bucket=bucket,
                             Key="zarr/%s/%d/%d" % (zarr_id, i, len(done)),
                             Body=os.urandom(1024))
                done.append(1)
            except Exception:
                return

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(writer, i) for i in range(8)]
        time.sleep(0.7)
        kill9(gw)
        for f in futs:
            f.result()
    return len(done)


def test_kill9_recovers_from_intents_without_a_listing(gateway, bucket):
    gw = gateway(workers=2)
    proc = None
    assert upload_and_kill(gw, bucket, "k") > 0
    # the intent store survived the processes
    assert (gw.store / "gate" / "data.mdb").exists()
    try:
        proc = start(gw)
        gw.assert_consistent(bucket, "k", timeout=10)
        # settled from the intents: no zarr was rebuilt from a listing
        assert metric(gw, "zarr_recoveries_total") == 0
        assert metric(gw, "zarr_recovering_zarrs") == 0
        assert "zarr recovery" not in gw.error_log()
        assert "intents lost" not in gw.error_log()
        gw.client().put_object(Bucket=bucket, Key="zarr/k/after", Body=b"x")
        gw.assert_consistent(bucket, "k")
    finally:
        if proc:
            stop(proc)


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                         text=True).stdout.split()
    return set(int(p) for p in out)


def state(url):
    """The zarr's state, None while nginx reloads (old workers close
    their connections)."""
    try:
        return requests.get(url, timeout=5).json()["state"]
    except requests.exceptions.ConnectionError:
        return None


def crash_gate(store, how):
    """What an OS crash may leave of the intent store, and a gate.state
    that says "not stopped cleanly, another boot"."""
    data = store / "gate" / "data.mdb"
    if how == "missing":
        for f in (store / "gate").iterdir():
            f.unlink()
        (store / "gate").rmdir()
    elif how == "truncated":
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 3)
    elif how == "garbage":
        size = os.path.getsize(data)
        with open(data, "r+b") as f:
            f.write(os.urandom(size))
    state = (store / "gate.state").read_text()
    assert "clean=0" in state
    (store / "gate.state").write_text(
        "boot=00000000-0000-0000-0000-000000000000\nclean=0\n")


@pytest.mark.parametrize("how", ["boot", "missing", "truncated", "garbage"])
def test_os_crash_rebuilds_zarrs_with_batches(gateway, rgw, bucket, how,
                                              tmp_path):
    # secrets from a key file: the gateway's own backend requests are
    # made to fail below, and signatures must still verify
    keys = tmp_path / "zarr.keys"
    keys.write_text("".join("%s %s %s\n" % (rgw.users[u].access_key,
                                            rgw.users[u].secret_key, u)
                            for u in ("alice", "bob")))
    gw = gateway(workers=2, auth="zarr_credentials file=%s;" % keys)
    c = gw.client()
    api = gw.url + "/zarr-api/v1/buckets/%s/zarrs/" % bucket
    # a zarr without a batch at the time of the crash
    c.put_object(Bucket=bucket, Key="zarr/quiet/a", Body=b"quiet")
    r = requests.delete(api + "quiet/batch", timeout=5)
    assert r.status_code in (200, 204), r.text
    assert upload_and_kill(gw, bucket, "busy") > 0
    crash_gate(gw.store, how)

    # what the lost intents may hide: writes the tree never heard of
    direct = s3_client(gw.rgw, "alice")
    direct.put_object(Bucket=bucket, Key="zarr/busy/unseen", Body=b"u")
    direct.put_object(Bucket=bucket, Key="zarr/quiet/unseen", Body=b"u")
    quiet_before = gw.tree(bucket, "quiet")

    # first with a backend the gateway cannot reach for its own requests:
    # the rebuild cannot finish, and writers are held off meanwhile
    conf = gw.nginx.prefix / "nginx.conf"
    text = conf.read_text()
    dead = gw.nginx.prefix / "nginx-dead-backend.conf"
    dead.write_text(text.replace(
        "zarr_backend http://127.0.0.1:%d;" % gw.rgw.port,
        "zarr_backend http://127.0.0.1:1;"))
    assert dead.read_text() != text
    proc = start(gw, dead)
    try:
        assert wait_for(lambda: "intents lost" in gw.error_log())
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.put_object(Bucket=bucket, Key="zarr/busy/x", Body=b"x")
        err = e.value.response
        assert err["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert err["Error"]["Code"] == "SlowDown"
        assert err["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "5"
        info = requests.get(api + "busy", timeout=5).json()
        assert info["state"] == "recovering" and info["digest"] is None
        r = requests.get(api + "busy/checksum", timeout=5)
        assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        # no snapshot of a tree that may be wrong
        r = requests.post(api + "busy/snapshots", json={"name": "s"},
                          timeout=30)
        assert r.status_code == 503 and r.json()["error"] == "recovering" \
            and r.headers["Retry-After"] == "5", \
            r.text
        assert metric(gw, "zarr_recovering_zarrs") == 1
        # the quiet zarr takes writes as ever
        c.put_object(Bucket=bucket, Key="zarr/quiet/b", Body=b"b")
        assert requests.get(api + "quiet", timeout=5).json()["state"] \
            == "ready"

        # the backend back (a reload): the rebuild runs, writes go again
        conf.write_text(text)
        os.replace(conf, dead)
        old = children(proc.pid)
        assert old
        os.kill(proc.pid, signal.SIGHUP)
        # nothing asked of the old workers while they go: a request that
        # waits for a thread task when its worker exits is cut (nginx's
        # graceful exit waits for timers only) and says "open socket left"
        assert wait_for(lambda: not old & children(proc.pid), timeout=30)
        assert wait_for(lambda: state(api + "busy") == "ready", timeout=30)
        gw.assert_consistent(bucket, "busy", timeout=5)
        assert metric(gw, "zarr_recovering_zarrs") == 0
        assert metric(gw, "zarr_recoveries_total") >= 1
        c.put_object(Bucket=bucket, Key="zarr/busy/after", Body=b"a")
        gw.assert_consistent(bucket, "busy")
        log = gw.error_log()
        assert 'rebuilt "%s/busy"' % bucket in log
        # the quiet zarr was not listed: it never heard of the direct write
        assert 'rebuilt "%s/quiet"' % bucket not in log
        quiet = gw.tree(bucket, "quiet")
        assert quiet != quiet_before
        assert quiet != gw.listing(bucket, "quiet")
    finally:
        stop(proc)
