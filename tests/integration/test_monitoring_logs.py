"""The logs an operator counts conflicts from: the JSON access log of
conf/nginx-gateway.conf.template (log_format zarr_json) parsed line by
line, and the grep/awk and jq one-liners of docs/monitoring.md run on
real logs (a put, 409s between alice and bob, a forged request)."""

import json
import re
import subprocess
from collections import Counter

import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import REPO_ROOT, wait_for


DOC = (REPO_ROOT / "docs" / "monitoring.md").read_text()

# the one-liners exactly as docs/monitoring.md shows them
ERROR_LOG = "/var/log/nginx/error.log"
ACCESS_JSON = "/var/log/nginx/access.json"
BY_ZARR_ERR = (
    "awk '/zarr batch conflict:/ { match($0, / zarr=\"[^\"]*\"/);\n"
    "    print substr($0, RSTART + 7, RLENGTH - 8) }' "
    "/var/log/nginx/error.log | sort | uniq -c | sort -rn")
BY_REQUESTER_ERR = (
    "awk '/zarr batch conflict:/ { match($0, / requester=\"[^\"]*\"/);\n"
    "    print substr($0, RSTART + 12, RLENGTH - 13) }' "
    "/var/log/nginx/error.log | sort | uniq -c | sort -rn")
BY_ZARR_JSON = (
    "jq -r 'select(.zarr_result == \"conflict\")\n"
    "    | (.uri | ltrimstr(\"/\") | split(\"/\")[0]) + \" \" + .zarr_id' "
    "/var/log/nginx/access.json | sort | uniq -c | sort -rn")
BY_REQUESTER_JSON = (
    "jq -r 'select(.zarr_result == \"conflict\") | .zarr_access_key' "
    "/var/log/nginx/access.json | sort | uniq -c | sort -rn")

FIELDS = {"time", "remote_addr", "request_id", "method", "uri", "status",
          "request_length", "body_bytes_sent", "request_time",
          "upstream_status", "zarr_op", "zarr_result", "zarr_id",
          "zarr_batch", "zarr_access_key"}


def one_liner(cmd, gw):
    """Runs a documented one-liner on this gateway's logs; {value: count}."""
    assert cmd in DOC, "docs/monitoring.md no longer shows:\n" + cmd
    cmd = cmd.replace(ERROR_LOG, str(gw.nginx.error_log)).replace(
        ACCESS_JSON, str(gw.nginx.prefix / "access.json"))
    r = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    out = {}
    for line in r.stdout.splitlines():
        n, value = line.strip().split(" ", 1)
        out[value] = int(n)
    return out


def json_lines(gw):
    text = (gw.nginx.prefix / "access.json").read_text()
    return [json.loads(l) for l in text.splitlines()]


def test_json_log_and_conflict_counts(gateway, bucket):
    gw = gateway()
    alice, bob = gw.client("alice"), gw.client("bob")
    alice.put_bucket_policy(Bucket=bucket, Policy="""{
      "Version": "2012-10-17", "Statement": [{"Effect": "Allow",
      "Principal": {"AWS": ["arn:aws:iam:::user/bob"]}, "Action": "s3:*",
      "Resource": ["arn:aws:s3:::%s", "arn:aws:s3:::%s/*"]}]}""" % (
        bucket, bucket))

    # alice holds z, bob holds w; each is refused in the other's zarr
    alice.put_object(Bucket=bucket, Key="zarr/z/a", Body=b"1")
    bob.put_object(Bucket=bucket, Key="zarr/w/a", Body=b"2")
    refused = [(bob, "zarr/z/b"), (bob, "zarr/z/c"), (alice, "zarr/w/b")]
    for client, key in refused:
        with pytest.raises(bob.exceptions.ClientError) as e:
            client.put_object(Bucket=bucket, Key=key, Body=b"x")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409

    # a forged write: alice's key id, a wrong secret
    url = "%s/%s/zarr/z/forged" % (gw.url, bucket)
    req = AWSRequest(method="PUT", url=url, data=b"forged")
    S3SigV4Auth(Credentials(gw.rgw.alice.access_key, "wrong-secret"), "s3",
                gw.rgw.region).add_auth(req)
    r = requests.put(url, data=b"forged", headers=dict(req.headers),
                     timeout=10)
    assert r.status_code == 403 and b"SignatureDoesNotMatch" in r.content

    # every line of the JSON log is one JSON object with every field
    # (put_bucket_policy, 2 puts, 3 conflicts, 1 forged)
    assert wait_for(lambda: len(json_lines(gw)) == 7)
    lines = json_lines(gw)
    for rec in lines:
        assert set(rec) == FIELDS, rec
        assert isinstance(rec["status"], int)
        assert isinstance(rec["request_time"], float)
        assert re.fullmatch(r"[0-9a-f]{32}", rec["request_id"])
    assert lines[0]["zarr_op"] == "bucket" and lines[0]["status"] == 204
    puts = [l for l in lines if l["zarr_op"] == "put"]
    assert [(l["status"], l["zarr_op"], l["zarr_result"], l["zarr_id"])
            for l in puts] == [
        (200, "put", "ok", "z"), (200, "put", "ok", "w"),
        (409, "put", "conflict", "z"), (409, "put", "conflict", "z"),
        (409, "put", "conflict", "w"), (403, "put", "rejected", "z")]
    keys = [l["zarr_access_key"] for l in puts]
    a, b = gw.rgw.alice.access_key, gw.rgw.bob.access_key
    assert keys == [a, b, b, b, a, a]
    assert puts[0]["uri"] == "/%s/zarr/z/a" % bucket
    assert re.fullmatch(r"\d+", puts[0]["zarr_batch"])
    assert puts[0]["upstream_status"] == "200"
    # refused at the gateway: RGW never saw the 409s nor the forgery
    assert {l["upstream_status"] for l in puts[2:]} == {""}

    # the documented one-liners count the same conflicts
    assert wait_for(lambda: "zarr/w" in gw.error_log())
    assert one_liner(BY_ZARR_ERR, gw) == {
        "%s/zarr/z" % bucket: 2, "%s/zarr/w" % bucket: 1}
    assert one_liner(BY_REQUESTER_ERR, gw) == {"bob": 2, "alice": 1}
    assert one_liner(BY_ZARR_JSON, gw) == {
        "%s z" % bucket: 2, "%s w" % bucket: 1}
    assert one_liner(BY_REQUESTER_JSON, gw) == {b: 2, a: 1}
    assert Counter(l["zarr_result"] for l in lines)["conflict"] == 3

    gw.assert_consistent(bucket, "z")
    gw.assert_consistent(bucket, "w")
