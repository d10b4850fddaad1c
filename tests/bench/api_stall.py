#!/usr/bin/python3
"""Benchmark: does a heavy admin API read stall the worker's other
connections?

One nginx worker serves both a probe (GET /ping, `return 204`, one
request every PROBE_MS on a keep-alive connection) and the admin API. Its
store holds one zarr with FILES files in one directory, left dirty (no
flush; zarr_mirror_delay 1h keeps the mirror from flushing it). The probe
runs alone, then while a client loops GET .../checksum?path=big (the
directory's whole .checksum document), then while a client loops
GET .../zarrs/z (the zarr's digest: the dirty directory recomputed).
Reported per phase: probe latency p50 / p99 / max (ms) and the API
requests' count and mean time. Several module builds run one after the
other, side by side, in one run.

usage: tests/bench/api_stall.py [MODULE.so ...]
       (default: build/nginx/ngx_http_zarr_module.so)
env:   FILES=100000  SECONDS_PER_PHASE=10  PROBE_MS=5
       ZARR_BUILD_DIR=build (for tools/store_apply)
needs: /usr/sbin/nginx, build/tools/store_apply (make build/tools/store_apply)
"""

import http.client
import os
import pwd
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ZARR_BUILD_DIR", REPO / "build"))
FILES = int(os.environ.get("FILES", "100000"))
SECONDS = float(os.environ.get("SECONDS_PER_PHASE", "10"))
PROBE_MS = float(os.environ.get("PROBE_MS", "5"))
NGINX = os.environ.get("ZARR_NGINX", "/usr/sbin/nginx")

CONF = """
load_module {module};
thread_pool zarr threads=4;
user {user};
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log notice;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    zarr_store {p}/store size=1g;
    zarr_thread_pool zarr;
    zarr_backend http://127.0.0.1:9;
    zarr_backend_credentials {p}/cred;
    zarr_mirror_delay 1h;
    client_body_temp_path {p}/tmp;
    proxy_temp_path {p}/tmp;
    fastcgi_temp_path {p}/tmp;
    uwsgi_temp_path {p}/tmp;
    scgi_temp_path {p}/tmp;
    server {{
        listen 127.0.0.1:{port};
        location = /ping {{ return 204; }}
        location /zarr-api/ {{ zarr_api; }}
        location / {{
            zarr_gateway on;
            zarr_prefix zarr/;
            zarr_checksum_prefix zarr-checksums/;
            proxy_pass http://127.0.0.1:9;
        }}
    }}
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fill(store):
    """FILES files in big/ plus two at the root; the tree stays dirty."""
    lines = ["put\t.zgroup\t24\t%032x" % 1, "put\ta\t1\t%032x" % 2]
    lines += ["put\tbig/%d.0.0\t%d\t%032x" % (i, 1000 + i % 97, i + 3)
              for i in range(FILES)]
    r = subprocess.run([str(BUILD / "tools" / "store_apply"), str(store),
                        "bench", "z", "10000"],
                       input="\n".join(lines) + "\n", text=True,
                       capture_output=True)
    if r.returncode != 0:
        sys.exit("store_apply: " + r.stderr)


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def probe(port, stop, out):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while not stop.is_set():
        t0 = time.perf_counter()
        c.request("GET", "/ping")
        r = c.getresponse()
        r.read()
        assert r.status == 204, r.status
        out.append((time.perf_counter() - t0) * 1000)
        time.sleep(PROBE_MS / 1000)


def load(port, path, stop, out):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while not stop.is_set():
        t0 = time.perf_counter()
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        assert r.status == 200, (r.status, body[:200])
        out.append((time.perf_counter() - t0) * 1000)


def phase(port, path):
    stop = threading.Event()
    lat, api = [], []
    threads = [threading.Thread(target=probe, args=(port, stop, lat))]
    if path:
        threads.append(threading.Thread(target=load,
                                        args=(port, path, stop, api)))
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join()
    if not lat or (path and not api):
        sys.exit("a phase failed: see the traceback above")
    return lat, api


def run(module):
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        p = Path(d)
        (p / "tmp").mkdir()
        (p / "cred").write_text("access_key=x\nsecret_key=y\nregion=z\n")
        fill(p / "store")
        port = free_port()
        (p / "nginx.conf").write_text(CONF.format(
            module=module, p=p, port=port,
            user=pwd.getpwuid(os.geteuid()).pw_name))
        proc = subprocess.Popen([NGINX, "-p", str(p), "-c",
                                 str(p / "nginx.conf"), "-e",
                                 str(p / "error.log"), "-g", "daemon off;"])
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), 1).close()
                    break
                except OSError:
                    if proc.poll() is not None:
                        sys.exit("nginx did not start: %s"
                                 % (p / "error.log").read_text())
                    time.sleep(0.05)
            api = "/zarr-api/v1/buckets/bench/zarrs/z"
            rows = []
            for name, path in [("probe alone", None),
                               ("+ checksum?path=big loop",
                                api + "/checksum?path=big"),
                               ("+ zarr info loop (dirty)", api)]:
                lat, calls = phase(port, path)
                rows.append((name, lat, calls))
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    print("module: %s" % module)
    print("| phase | probe p50 ms | probe p99 ms | probe max ms "
          "| API calls | API mean ms |")
    print("|---|---|---|---|---|---|")
    for name, lat, calls in rows:
        print("| %s | %.2f | %.2f | %.1f | %d | %s |" % (
            name, percentile(lat, 0.5), percentile(lat, 0.99), max(lat),
            len(calls),
            "%.1f" % (sum(calls) / len(calls)) if calls else "-"))
    print()


def main():
    modules = sys.argv[1:] or [str(BUILD / "nginx" /
                                   "ngx_http_zarr_module.so")]
    print("FILES=%d SECONDS_PER_PHASE=%g PROBE_MS=%g, %s, %d CPUs" % (
        FILES, SECONDS, PROBE_MS, time.strftime("%Y-%m-%d %H:%M UTC",
                                                time.gmtime()),
        os.cpu_count()))
    for m in modules:
        run(os.path.abspath(m))


if __name__ == "__main__":
    main()
