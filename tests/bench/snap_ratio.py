#!/usr/bin/python3
"""Benchmark (issue 10, docs/PERFORMANCE.md): reading a snapshot through
the gateway against reading the same data straight from RGW.

  GET    small objects (SIZE bytes) of a snapshot through the gateway
         (B/zarr-snapshots/ID/v1/PATH: a store lookup, then the proxied
         GET ?versionId=V) vs GET of the same versions straight from RGW
         (B/zarr/ID/PATH?versionId=V), THREADS keep-alive connections
         each (build/bench/bench_get); target ratio >= 0.9
  (and  GET of the same versions through the gateway as plain S3
         requests, B/zarr/ID/PATH?versionId=V with the client's own
         signature: the proxy hop alone, for reference)
  LIST   every page of 1,000 keys of the snapshot (answered from the
         gateway's store) vs RGW listing the draft's prefix, one
         connection; target ratio >= 1

  CREATE the API's snapshot call (POST .../snapshots, the whole HTTP
         call: versioning and lifecycle checks, the records in bounded
         transactions, the manifest streamed to RGW) on a zarr of
         CREATE_FILES (1,000,000) files put into the gateway's store
         before it starts (build/bench/bench_snap fill mode, the layout
         of tests/bench/bench_layout.h); target <= 10 s; prints the
         manifest's size as RGW stores it

Rounds alternate A, B, B, A, ...; each figure is the median of ROUNDS.
Needs a running RGW (as the integration tests: ZARR_RGW_ENV, the
credentials file scripts/rgw.sh writes, and ZARR_RGW_ENDPOINT), the
module and build/bench/bench_get.  Run it under flock /tmp/bench.lock.

usage: tests/bench/snap_ratio.py [BUILD_DIR]
env:   FILES=5000 SIZE=4096 THREADS=32 ROUNDS=3 SECONDS_PER_ROUND=10
       WORKERS=2 MODES=get,list,create CREATE_FILES=1000000
"""

import concurrent.futures
import getpass
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import botocore.exceptions
import requests
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "build").resolve()
FILES = int(os.environ.get("FILES", 5000))
SIZE = int(os.environ.get("SIZE", 4096))
THREADS = int(os.environ.get("THREADS", 32))
ROUNDS = int(os.environ.get("ROUNDS", 3))
SECS = float(os.environ.get("SECONDS_PER_ROUND", 10))
WORKERS = int(os.environ.get("WORKERS", 2))
MODES = os.environ.get("MODES", "get,list,create").split(",")
CREATE_FILES = int(os.environ.get("CREATE_FILES", 1000000))


def env_file(path):
    out = {}
    for line in Path(path).read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(endpoint, key, secret, region):
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=region,
        aws_access_key_id=key, aws_secret_access_key=secret,
        config=Config(signature_version="s3v4",
                      s3={"addressing_style": "path"},
                      max_pool_connections=16))


def bench_get(args):
    r = subprocess.run([str(BUILD / "bench" / "bench_get")] + args,
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("bench_get failed: %s %s" % (r.stdout, r.stderr))
    return float(r.stdout.split()[-1]), r.stdout.strip()


def main():
    creds = env_file(os.environ["ZARR_RGW_ENV"])
    rgw = os.environ.get("ZARR_RGW_ENDPOINT", creds["RGW_ENDPOINT"])
    region = creds.get("RGW_REGION", "us-east-1")
    alice = (creds["ALICE_ACCESS_KEY"], creds["ALICE_SECRET_KEY"])
    work = Path(tempfile.mkdtemp(prefix="zarr-snapbench-",
                                 dir=os.environ.get("BENCH_DIR", "/var/tmp")))
    cred = work / "gateway.cred"
    cred.write_text("access_key=%s\nsecret_key=%s\nregion=%s\n" % (
        creds["GATEWAY_ACCESS_KEY"], creds["GATEWAY_SECRET_KEY"], region))
    port = free_port()
    text = (REPO / "conf" / "nginx-gateway.conf.template").read_text()
    values = {"PREFIX": work, "MODULE": BUILD / "nginx" /
              "ngx_http_zarr_module.so", "USER": getpass.getuser(),
              "WORKERS": WORKERS, "LISTEN_PORT": port,
              "AUTH": "zarr_credentials rgw valid=60s;",
              "LOG_LEVEL": "warn", "RGW_PORT": rgw.rsplit(":", 1)[1],
              "CREDENTIALS": cred, "BATCH_TIMEOUT": "60s"}
    big = None
    if "create" in MODES:
        big = fill_store(rgw, region, alice, work)
    conf = work / "nginx.conf"
    conf.write_text(re.sub(r"@([A-Z_]+)@", lambda m: str(values[m.group(1)]),
                           text))
    ng = subprocess.Popen(["/usr/sbin/nginx", "-p", str(work), "-c",
                           str(conf), "-e", str(work / "error.log"), "-g",
                           "daemon off;"])
    gw = "http://127.0.0.1:%d" % port
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.1)
        if big:
            create(gw, rgw, region, alice, big)
        if "get" in MODES or "list" in MODES:
            run(gw, rgw, region, alice, work)
    finally:
        ng.terminate()
        ng.wait(timeout=30)
        if not os.environ.get("KEEP_BENCH_DIR"):
            shutil.rmtree(work, ignore_errors=True)


def drop_bucket(direct, bucket):
    """Deletes every version of every key, then the bucket (again while
    the gateway's mirror still writes .checksum objects into it)."""
    for attempt in range(30):
        for page in direct.get_paginator("list_object_versions").paginate(
                Bucket=bucket):
            objs = [{"Key": o["Key"], "VersionId": o["VersionId"]}
                    for o in page.get("Versions", []) +
                    page.get("DeleteMarkers", [])]
            for i in range(0, len(objs), 1000):
                direct.delete_objects(Bucket=bucket, Delete={
                    "Objects": objs[i:i + 1000], "Quiet": True})
        try:
            direct.delete_bucket(Bucket=bucket)
            return
        except botocore.exceptions.ClientError as e:
            if e.response["Error"]["Code"] != "BucketNotEmpty":
                raise
            time.sleep(1)
    sys.exit("bucket %s: still not empty" % bucket)


def fill_store(rgw, region, alice, work):
    """A versioned bucket, and a CREATE_FILES-file zarr "bench" of it in
    the store the gateway will open (its objects are not in RGW: a
    snapshot's creation reads the store only)."""
    direct = client(rgw, *alice, region)
    bucket = "snapcreate-" + uuid.uuid4().hex[:12]
    direct.create_bucket(Bucket=bucket)
    direct.put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    t0 = time.monotonic()
    out = subprocess.run([str(BUILD / "bench" / "bench_snap"),
                          str(work / "store"), str(CREATE_FILES), bucket,
                          "bench"], capture_output=True, text=True)
    if out.returncode != 0:
        drop_bucket(direct, bucket)
        sys.exit("bench_snap fill failed: %s" % out.stderr)
    digest = re.search(r"digest\s+(\S+)", out.stdout).group(1)
    print("== create: %d files put into the store in %.1f s (digest %s)"
          % (CREATE_FILES, time.monotonic() - t0, digest))
    return bucket, digest


def create(gw, rgw, region, alice, big):
    bucket, digest = big
    direct = client(rgw, *alice, region)
    api = gw + "/zarr-api/v1/buckets/%s/zarrs/bench" % bucket
    try:
        t0 = time.monotonic()
        r = requests.post(api + "/snapshots", json={"name": "v1"},
                          timeout=600)
        t = time.monotonic() - t0
        assert r.status_code == 201, r.text
        snap = r.json()
        assert snap["file_count"] == CREATE_FILES, snap
        assert snap["digest"] == digest, (snap["digest"], digest)
        head = direct.head_object(
            Bucket=bucket, Key=snap["manifest_key"])
        print("CREATE snapshot of %d files: %.2f s (the whole HTTP call; "
              "target <= 10 s), manifest %.1f MB in RGW"
              % (snap["file_count"], t, head["ContentLength"] / 1e6))
        t0 = time.monotonic()
        r = requests.delete(api + "/snapshots/v1", timeout=600)
        assert r.status_code in (200, 204), r.text
        print("CREATE delete of that snapshot: %.2f s"
              % (time.monotonic() - t0))
    finally:
        drop_bucket(direct, bucket)


def run(gw, rgw, region, alice, work):
    direct = client(rgw, *alice, region)
    through = client(gw, *alice, region)
    bucket = "snapbench-" + uuid.uuid4().hex[:12]
    direct.create_bucket(Bucket=bucket)
    direct.put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    body = os.urandom(SIZE)
    paths = ["d%d/%d" % (i // 100, i) for i in range(FILES)]
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda p: through.put_object(
            Bucket=bucket, Key="zarr/bench/" + p, Body=body), paths))
    print("== setup: %d objects of %d bytes through the gateway in %.1f s"
          % (FILES, SIZE, time.monotonic() - t0))
    api = gw + "/zarr-api/v1/buckets/%s/zarrs/bench" % bucket
    requests.delete(api + "/batch")
    t0 = time.monotonic()
    r = requests.post(api + "/snapshots", json={"name": "v1"})
    assert r.status_code == 201, r.text
    print("snapshot: %d files in %.2f s (HTTP)" % (r.json()["file_count"],
                                                  time.monotonic() - t0))

    out = subprocess.run([str(BUILD / "zarrctl"), "store", "--store",
                          str(work / "store"), "files", bucket, "bench"],
                         capture_output=True, text=True, check=True).stdout
    direct_keys = work / "direct.keys"
    snap_keys = work / "snap.keys"
    modes = MODES
    with open(direct_keys, "w") as d, open(snap_keys, "w") as s:
        for line in out.splitlines():
            path, _, _, version = line.split("\t")
            d.write("zarr/bench/%s\t%s\n" % (path, version))
            s.write("zarr-snapshots/bench/v1/%s\n" % path)

    common = ["-a", alice[0], "-s", alice[1], "-r", region, "-b", bucket,
              "-d", str(SECS)]
    sides = {
        "GET rgw direct": ["-e", rgw, "-t", str(THREADS), "-k",
                           str(direct_keys)],
        "GET gateway draft": ["-e", gw, "-t", str(THREADS), "-k",
                              str(direct_keys)],
        "GET gateway snapshot": ["-e", gw, "-t", str(THREADS), "-k",
                                 str(snap_keys)],
        "LIST rgw draft": ["-e", rgw, "-t", "1", "-l", "zarr/bench/"],
        "LIST gateway snapshot": ["-e", gw, "-t", "1", "-l",
                                  "zarr-snapshots/bench/v1/"],
    }
    results = {k: [] for k in sides}
    groups = []
    if "get" in modes:
        groups.append(("GET rgw direct", "GET gateway snapshot",
                       "GET gateway draft"))
    if "list" in modes:
        groups.append(("LIST rgw draft", "LIST gateway snapshot"))
    for pair in groups:
        for i in range(ROUNDS):
            order = pair if i % 2 == 0 else pair[::-1]
            for side in order:
                rate, line = bench_get(common + sides[side])
                results[side].append(rate)
                print("%-22s round %d: %s" % (side, i + 1, line))
    print("== results (median of %d rounds)" % ROUNDS)
    med = {k: statistics.median(v) for k, v in results.items() if v}
    for k, v in med.items():
        print("%-22s %10.1f /s" % (k, v))
    if "get" in modes:
        print("GET ratio  gateway snapshot / rgw direct = %.3f"
              % (med["GET gateway snapshot"] / med["GET rgw direct"]))
        print("GET ratio  gateway draft / rgw direct    = %.3f"
              % (med["GET gateway draft"] / med["GET rgw direct"]))
    if "list" in modes:
        print("LIST ratio gateway snapshot / rgw draft  = %.3f"
              % (med["LIST gateway snapshot"] / med["LIST rgw draft"]))

    drop_bucket(direct, bucket)


if __name__ == "__main__":
    main()
