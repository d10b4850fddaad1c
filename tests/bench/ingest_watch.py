#!/usr/bin/python3
"""The watcher of tests/bench/ingest.sh: reads bench_put's output (-N ...
-p SECONDS) on stdin and

- prints each progress line with the RSS of every gateway worker
  (VmRSS of /proc/PID/status);
- on bench_put's "finished ... last_epoch=T" line (printed within 10 ms of
  the last answer), measures at once:
  (a) the admin API's GET v1/buckets/B/zarrs/ID: when the first call,
      started right away, returned the digest (seconds after the last
      2xx), how long that call took, and a second call;
  (b) when the root .checksum object reached the stub: the stub logs every
      request ($msec $request_method $request_uri $status); once the
      gateway's mirror backlog (v1/status) is 0, the last PUT of
      <checksum prefix><zarr id>/.checksum is the one that wrote the final
      document (no write follows it); its time minus the last 2xx.  The
      stub keeps the documents (WebDAV PUT): the root's digest must be the
      API's.
- writes what it measured to --out as NAME=VALUE lines.
"""

import argparse
import json
import os
import sys
import time
import urllib.request


def rss_mb(pid):
    """VmRSS and, of it, RssAnon (heap, stacks) in MB; the rest is mostly
    pages of the LMDB map (file-backed: page cache mapped in)"""
    rss = anon = float("nan")
    try:
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024.0
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return rss, anon


HZ = os.sysconf("SC_CLK_TCK")


def proc_cpu(pids):
    """CPU seconds (user + system, all threads) of these processes"""
    t = 0
    for p in pids:
        try:
            with open("/proc/%s/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            t += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return t / HZ


def sys_cpu():
    """busy CPU seconds of the whole machine"""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / HZ


def fmt_rss(samples):
    return " ".join("%.1f/%.1f" % x for x in samples)


def get(url):
    t0 = time.time()
    with urllib.request.urlopen(url, timeout=600) as r:
        body = r.read()
    t1 = time.time()
    return t0, t1, json.loads(body)


def kv(line):
    return dict(x.split("=", 1) for x in line.split()[1:] if "=" in x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--api", required=True, help="http://HOST:PORT/zarr-api/v1")
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--zarr", required=True)
    ap.add_argument("--workers", required=True, help="worker pids")
    ap.add_argument("--gateway-pids", required=True,
                    help="the gateway's master and workers")
    ap.add_argument("--stub-pids", required=True,
                    help="the stub's master and workers")
    ap.add_argument("--stub-log", required=True)
    ap.add_argument("--stub-objects", required=True)
    ap.add_argument("--checksum-prefix", default="zarr-checksums/")
    ap.add_argument("--series", required=True, help="time series file")
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()

    workers = a.workers.split()
    info_url = "%s/buckets/%s/zarrs/%s" % (a.api, a.bucket, a.zarr)
    status_url = "%s/status" % a.api
    out = {}
    series = open(a.series, "a")

    gw_pids = a.gateway_pids.split()
    stub_pids = a.stub_pids.split()

    print("   %8s %9s %8s  %-23s  %s" % ("t s", "files", "PUT/s",
          "RSS/anon MB of workers", "CPU %: gateway stub client other"),
          flush=True)

    finished = None
    peak = []
    last_t = time.time()
    last_cpu = (proc_cpu(gw_pids), proc_cpu(stub_pids), 0.0, sys_cpu())
    for line in sys.stdin:
        if line.startswith("progress "):
            p = kv(line)
            rss = [rss_mb(w) for w in workers]
            now = time.time()
            cpu = (proc_cpu(gw_pids), proc_cpu(stub_pids),
                   float(p.get("cpu", 0)), sys_cpu())
            d = [(x - y) * 100 / (now - last_t) for x, y in zip(cpu, last_cpu)]
            share = (d[0], d[1], d[2], max(d[3] - d[0] - d[1] - d[2], 0))
            last_t, last_cpu = now, cpu
            print("   %8s %9s %8s  %-23s  %4.0f %4.0f %4.0f %4.0f" % (
                  p["t"], p["done"], p["rps"],
                  " ".join("%.1f/%.1f" % x for x in rss), *share),
                  flush=True)
            series.write("%s %s %s %s %s %s\n" % (
                         p["t"], p["done"], p["rps"], p["errors"],
                         fmt_rss(rss), " ".join("%.0f" % x for x in share)))
            series.flush()
            if "rss_first" not in out:
                out["rss_first"] = fmt_rss(rss)
                peak = rss
            out["rss_last"] = fmt_rss(rss)
            peak = [(max(a[0], b[0]), max(a[1], b[1]))
                    for a, b in zip(peak, rss)]
            out["rss_max"] = fmt_rss(peak)
        elif line.startswith("finished "):
            finished = kv(line)
            break
        else:
            sys.stdout.write(line)
            sys.stdout.flush()

    if finished is None:
        print("ingest_watch: bench_put ended without its finished line",
              file=sys.stderr)
        return 1

    last = float(finished["last_epoch"])

    # (a) the digest, asked for right away, then once more
    t0, t1, j = get(info_url)
    out["a_gap_ms"] = "%.1f" % (1000 * (t0 - last))
    out["a_digest_after_s"] = "%.3f" % (t1 - last)
    out["a_call1_ms"] = "%.1f" % (1000 * (t1 - t0))
    out["a_digest"] = j["digest"]
    out["a_pending"] = j["mirror_pending"]
    t0, t1, j2 = get(info_url)
    out["a_call2_ms"] = "%.1f" % (1000 * (t1 - t0))
    out["a_same"] = "yes" if j2["digest"] == j["digest"] else "no"
    out["rss_end"] = fmt_rss([rss_mb(w) for w in workers])

    # (b) the mirror drains; then the stub's log says when the root went
    deadline = time.time() + a.timeout
    while True:
        _, t1, st = get(status_url)
        if st["mirror_backlog"] == 0:
            break
        if time.time() > deadline:
            out["b_error"] = "backlog %d after %.0f s" % (st["mirror_backlog"],
                                                          a.timeout)
            break
        time.sleep(0.1)
    out["b_backlog0_after_s"] = "%.3f" % (t1 - last)
    out["lmdb_used"] = st["lmdb"]["used"]
    out["mirror_puts"] = st["mirror_puts"]

    time.sleep(1.5)  # the stub's access log is buffered (flush=1s)

    root_uri = "/%s/%s%s/.checksum" % (a.bucket, a.checksum_prefix, a.zarr)
    dir_prefix = "/%s/%s%s/" % (a.bucket, a.checksum_prefix, a.zarr)
    root_t = None
    docs_after = 0
    data_puts = 0
    with open(a.stub_log) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 4 or parts[1] != "PUT":
                continue
            if not parts[2].startswith(dir_prefix):
                data_puts += 1
                continue
            t = float(parts[0])
            if t >= last:
                docs_after += 1
            if parts[2] == root_uri and parts[3].startswith("2"):
                root_t = t
    out["stub_other_puts"] = data_puts
    out["b_docs_after_last"] = docs_after
    if root_t is not None and root_t >= last:
        out["b_checksum_after_s"] = "%.3f" % (root_t - last)
    else:
        out["b_checksum_after_s"] = "none"

    path = os.path.join(a.stub_objects, root_uri.lstrip("/"))
    try:
        with open(path) as f:
            doc = json.load(f)
        out["b_root_doc_digest"] = doc["digest"]
    except (OSError, ValueError, KeyError) as e:
        out["b_root_doc_digest"] = "unreadable: %s" % e

    # the rest of bench_put's output (its result line)
    for line in sys.stdin:
        if not line.startswith("progress "):
            sys.stdout.write(line)
    sys.stdout.flush()

    with open(a.out, "w") as f:
        for k, v in out.items():
            f.write("%s=%s\n" % (k, v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
