"""zarr_metrics: valid Prometheus text (parsed by the reference client
library's parser) whose values move with activity, shared by workers."""

import time

import botocore
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families


def scrape(gw):
    r = requests.get(gw.url + "/zarr-metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    types = {}
    for fam in text_string_to_metric_families(r.text):
        types[fam.name] = fam.type
        for s in fam.samples:
            key = s.name + "".join('{%s=%s}' % kv for kv in
                                   sorted(s.labels.items()))
            samples[key] = s.value
    return samples, types


def req(op, result):
    return "zarr_requests_total{op=%s}{result=%s}" % (op, result)


def test_metrics_move(gateway, bucket_factory):
    gw = gateway(workers=2, batch_timeout="60s")
    bucket = bucket_factory()
    before, types = scrape(gw)
    assert types["zarr_requests"] == "counter"
    assert types["zarr_commit_seconds"] == "histogram"
    assert types["zarr_active_batches"] == "gauge"
    for name in ["zarr_conflicts_total", "zarr_mirror_backlog",
                 "zarr_lmdb_used_bytes", "zarr_lmdb_map_bytes",
                 "zarr_intents_resolved_total", "zarr_zarrs"]:
        assert name in before, name

    alice, bob = gw.client("alice"), gw.client("bob")
    alice.put_bucket_policy(Bucket=bucket, Policy="""{
      "Version": "2012-10-17", "Statement": [{"Effect": "Allow",
      "Principal": {"AWS": ["arn:aws:iam:::user/bob"]}, "Action": "s3:*",
      "Resource": ["arn:aws:s3:::%s", "arn:aws:s3:::%s/*"]}]}""" % (
        bucket, bucket))
    # requests spread over both workers (new connections each time)
    for i in range(10):
        requests.get(gw.url + "/zarr-metrics")
        alice.put_object(Bucket=bucket, Key="zarr/m/%d" % i, Body=b"x")
    alice.delete_object(Bucket=bucket, Key="zarr/m/0")
    with pytest.raises(botocore.exceptions.ClientError):
        bob.put_object(Bucket=bucket, Key="zarr/m/bob", Body=b"x")
    with pytest.raises(botocore.exceptions.ClientError):
        alice.put_object(Bucket=bucket, Key="zarr/m/a//b", Body=b"x")
    alice.get_object(Bucket=bucket, Key="zarr/m/1")["Body"].read()
    gw.assert_consistent(bucket, "m")

    # counted at the log phase, after each answer: wait for the last ones
    for _ in range(50):
        after, _ = scrape(gw)
        if after[req("put", "rejected")] > before[req("put", "rejected")]:
            break
        time.sleep(0.1)
    assert after[req("put", "ok")] - before[req("put", "ok")] == 10
    assert after[req("delete", "ok")] - before[req("delete", "ok")] == 1
    assert after[req("put", "conflict")] - before[req("put", "conflict")] == 1
    assert after[req("put", "rejected")] - before[req("put", "rejected")] == 1
    assert after["zarr_conflicts_total"] - before["zarr_conflicts_total"] == 1
    assert after["zarr_active_batches"] >= 1
    assert after["zarr_zarrs"] >= 1
    assert after["zarr_commit_seconds_count"] > before[
        "zarr_commit_seconds_count"]
    assert after["zarr_commit_seconds_sum"] > before["zarr_commit_seconds_sum"]
    inf = after["zarr_commit_seconds_bucket{le=+Inf}"]
    assert inf == after["zarr_commit_seconds_count"]
    assert after['zarr_mirror_writes_total{kind=put}'] > before[
        'zarr_mirror_writes_total{kind=put}']
    assert after["zarr_mirror_backlog"] == 0
    assert after["zarr_lmdb_used_bytes"] > 0

    # only GET and HEAD
    assert requests.post(gw.url + "/zarr-metrics").status_code == 405
