"""Batch locks across workers: 409 with Retry-After and the log line,
the holder's parallel writes, idle expiry, a concurrent storm, writes of
one key in parallel, and a crash of every nginx process in the middle of
an upload."""

import concurrent.futures
import os
import re
import signal
import subprocess
import time

import botocore
import pytest

from conftest import NGINX, wait_for, wait_for_port


CONFLICT_RE = re.compile(
    r'\[warn\] .*zarr batch conflict: zarr="(?P<bucket>[^/"]+)/zarr/'
    r'(?P<zarr>[^"]+)" batch="(?P<batch>\d+)" holder="(?P<holder>[^"]+)" '
    r'requester="(?P<requester>[^"]+)" method=(?P<method>\S+) '
    r'key="(?P<key>[^"]*)"')


def conflicts(gw):
    return [m.groupdict() for m in CONFLICT_RE.finditer(gw.error_log())]


def test_conflict_then_expiry(gateway, bucket_factory):
    gw = gateway(batch_timeout="2s")
    bucket = bucket_factory()
    alice, bob = gw.client("alice"), gw.client("bob")
    # bob may write into alice's bucket
    alice.put_bucket_policy(Bucket=bucket, Policy="""{
      "Version": "2012-10-17", "Statement": [{"Effect": "Allow",
      "Principal": {"AWS": ["arn:aws:iam:::user/bob"]}, "Action": "s3:*",
      "Resource": ["arn:aws:s3:::%s", "arn:aws:s3:::%s/*"]}]}""" % (
        bucket, bucket))

    alice.put_object(Bucket=bucket, Key="zarr/z/a", Body=b"1")

    with pytest.raises(botocore.exceptions.ClientError) as e:
        bob.put_object(Bucket=bucket, Key="zarr/z/b", Body=b"2")
    resp = e.value.response
    assert resp["Error"]["Code"] == "OperationAborted"
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 409
    retry = int(resp["ResponseMetadata"]["HTTPHeaders"]["retry-after"])
    assert 1 <= retry <= 2

    assert wait_for(lambda: len(conflicts(gw)) == 1)
    line = conflicts(gw)[0]
    assert line == {"bucket": bucket, "zarr": "z", "batch": line["batch"],
                    "holder": "alice",
                    "requester": "bob", "method": "PUT",
                    "key": "zarr/z/b"}

    # bob's other zarr is free; his DeleteObjects touching z is refused
    bob.put_object(Bucket=bucket, Key="zarr/other/x", Body=b"3")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        bob.delete_objects(Bucket=bucket, Delete={"Objects": [
            {"Key": "zarr/other/x"}, {"Key": "zarr/z/a"}]})
    assert e.value.response["Error"]["Code"] == "OperationAborted"
    assert sorted(o["Key"] for o in alice.list_objects_v2(
        Bucket=bucket, Prefix="zarr/")["Contents"]) == ["zarr/other/x", "zarr/z/a"]

    # the holder goes on writing, in parallel too
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda i: alice.put_object(
            Bucket=bucket, Key="zarr/z/p/%d" % i, Body=b"%d" % i), range(32)))

    # idle for the timeout: bob's turn
    time.sleep(2.5)
    bob.put_object(Bucket=bucket, Key="zarr/z/b", Body=b"2")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        alice.put_object(Bucket=bucket, Key="zarr/z/c", Body=b"4")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409

    gw.assert_consistent(bucket, "z")
    gw.assert_consistent(bucket, "other")


def test_retry_of_own_request(gateway, bucket):
    gw = gateway()
    c = gw.client()
    for _ in range(3):
        c.put_object(Bucket=bucket, Key="zarr/z/same", Body=b"same")
        c.delete_object(Bucket=bucket, Key="zarr/z/gone")
    tree = gw.assert_consistent(bucket, "z")
    assert tree["."].endswith("-1--4")


def test_same_key_in_parallel(gateway, bucket):
    """Writes of one key at once (PUTs with different bodies, copies onto
    it, deletes), through both workers: the backend keeps one of them,
    and the tree must hold that one. The gateway lets one request per
    key through at a time; without that the tree drifted here within a
    few rounds (checked)."""
    gw = gateway(workers=2)
    clients = [gw.client() for _ in range(8)]
    clients[0].put_object(Bucket=bucket, Key="zarr/k/src", Body=b"source")

    def write(args):
        rnd, i = args
        c, key = clients[i], "zarr/k/key%d" % rnd
        if i == 0:
            c.copy_object(Bucket=bucket, Key=key,
                          CopySource={"Bucket": bucket, "Key": "zarr/k/src"})
        elif i == 1 and rnd % 3 == 0:
            c.delete_object(Bucket=bucket, Key=key)
        else:
            c.put_object(Bucket=bucket, Key=key, Body=os.urandom(100 + i))
        return i

    for rnd in range(20):
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            assert sorted(ex.map(write, [(rnd, i) for i in range(8)])) == \
                list(range(8))

    gw.assert_consistent(bucket, "k")
    assert "stayed busy" not in gw.error_log()


def test_storm(gateway, bucket_factory):
    gw = gateway(workers=2, batch_timeout="1s")
    bucket = bucket_factory()
    alice, bob = gw.client("alice"), gw.client("bob")
    alice.put_bucket_policy(Bucket=bucket, Policy="""{
      "Version": "2012-10-17", "Statement": [{"Effect": "Allow",
      "Principal": {"AWS": ["arn:aws:iam:::user/bob"]}, "Action": "s3:*",
      "Resource": ["arn:aws:s3:::%s", "arn:aws:s3:::%s/*"]}]}""" % (
        bucket, bucket))

    def writer(args):
        who, client, i = args
        key = "zarr/z/%s/%d/%d" % (who, i % 4, i)
        try:
            if i % 5 == 4:
                client.delete_object(Bucket=bucket, Key=key.replace(
                    "/%d" % i, "/%d" % (i - 1)))
            else:
                client.put_object(Bucket=bucket, Key=key, Body=os.urandom(64))
            return "ok"
        except botocore.exceptions.ClientError as e:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 409
            return "conflict"

    jobs = [("alice", alice, i) for i in range(120)] + \
           [("bob", bob, i) for i in range(120)]
    jobs.sort(key=lambda j: (j[2], j[0]))
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        results = list(ex.map(writer, jobs))

    refused = results.count("conflict")
    assert refused > 0 and results.count("ok") > 0
    # every refused request has its log line
    assert wait_for(lambda: len(conflicts(gw)) == refused)
    gw.assert_consistent(bucket, "z")


def test_kill_during_upload(gateway, bucket):
    gw = gateway(workers=2)
    c = gw.client()
    stop = time.monotonic() + 1.5
    done = []

    def writer(i):
        while time.monotonic() < stop:
            try:
                c.put_object(Bucket=bucket, Key="zarr/z/%d/%d" % (i, len(done)),
                             Body=os.urandom(2048))
                done.append(1)
            except Exception:
                return

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(writer, i) for i in range(8)]
        time.sleep(0.7)
        # kill -9 the master and every worker
        pid = int((gw.nginx.prefix / "nginx.pid").read_text())
        workers = subprocess.run(["pgrep", "-P", str(pid)],
                                 capture_output=True, text=True).stdout.split()
        for p in [pid] + [int(w) for w in workers]:
            os.kill(p, signal.SIGKILL)
        for f in futs:
            f.result()
    assert done

    # restart on the same store; the resolver settles the intents
    conf = gw.nginx.prefix / "nginx.conf"
    proc = subprocess.Popen([NGINX, "-p", str(gw.nginx.prefix), "-c",
                             str(conf), "-e", str(gw.nginx.error_log),
                             "-g", "daemon off;"])
    try:
        assert wait_for_port(gw.nginx.port, proc=proc)
        gw.assert_consistent(bucket, "z", timeout=10)
        # and it works on
        c.put_object(Bucket=bucket, Key="zarr/z/after", Body=b"x")
        gw.assert_consistent(bucket, "z")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def test_busy_key_waits_for_the_holder(gateway, bucket):
    """A write of a key that another request is still writing waits
    until that one has landed and is recorded, then goes: the backend and
    the tree see them in the same order."""
    import socket
    gw = gateway(workers=2)
    c = gw.client()
    c.put_object(Bucket=bucket, Key="zarr/w/k", Body=b"first")

    def raw_put(body, sent):
        """A PUT of zarr/w/k signed by alice for body, of which only
        sent bytes go out for now: the backend waits for the rest."""
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        alice = gw.rgw.users["alice"]
        url = "%s/%s/zarr/w/k" % (gw.url, bucket)
        req = AWSRequest(method="PUT", url=url, data=body)
        S3SigV4Auth(Credentials(alice.access_key, alice.secret_key), "s3",
                    gw.rgw.region).add_auth(req)
        head = "PUT /%s/zarr/w/k HTTP/1.1\r\nHost: %s\r\n" % (
            bucket, url.split("/")[2])
        head += "".join("%s: %s\r\n" % kv for kv in req.headers.items())
        head += "Content-Length: %d\r\n\r\n" % len(body)
        s = socket.create_connection(("127.0.0.1", gw.nginx.port))
        s.sendall(head.encode() + body[:sent])
        return s

    # the holder: its intent is recorded, its body trickles in
    holder = raw_put(b"1234567890", 5)
    time.sleep(0.5)

    # two more writes of the key, whole: they wait for the holder
    waiters = [raw_put(b"waiter-%d" % i, 8) for i in range(2)]
    for w in waiters:
        w.settimeout(1.0)
        with pytest.raises(socket.timeout):
            w.recv(100)

    # the holder ends: it lands first, then the waiters go
    holder.sendall(b"67890")
    holder.settimeout(30)
    assert holder.recv(100).startswith(b"HTTP/1.1 200")
    holder.close()
    for w in waiters:
        w.settimeout(30)
        assert w.recv(100).startswith(b"HTTP/1.1 200")
        w.close()

    # so the backend keeps a waiter's body, and the tree says the same
    assert c.get_object(Bucket=bucket, Key="zarr/w/k")["Body"].read() in \
        (b"waiter-0", b"waiter-1")
    gw.assert_consistent(bucket, "w")
