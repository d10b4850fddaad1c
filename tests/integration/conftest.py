"""Fixtures for the integration tests: a real RGW, real nginx processes.

- ``rgw`` (session): a throwaway single-node Ceph RGW started with
  scripts/rgw.sh on a free port and stopped at the end of the session.  To
  reuse one that already runs (faster while developing)::

      scripts/rgw.sh start /tmp/rgw 8000
      ZARR_RGW_ENV=/tmp/rgw/credentials.env \\
      ZARR_RGW_ENDPOINT=http://127.0.0.1:8000 /usr/bin/python3 -m pytest ...

- ``s3_client(rgw, user, endpoint=None)``: a boto3 client (SigV4, path-style).
- ``bucket`` / ``bucket_factory``: fresh uniquely named buckets, emptied and
  deleted after the test.
- ``nginx``: a factory rendering a template from conf/ into a fresh prefix
  dir, checking it with ``nginx -t`` and starting nginx; every nginx is
  stopped after the test, and the test fails if its error log has an
  ``[alert]`` or ``[emerg]`` line.

Environment: ZARR_BUILD_DIR (default <repo>/build), ZARR_NGINX (default
/usr/sbin/nginx), ZARR_RGW_STORE (memstore or bluestore, for rgw.sh).
"""

import atexit
import getpass
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Optional

import boto3
import botocore
import pytest
from botocore.config import Config


REPO_ROOT = Path(__file__).resolve().parents[2]
NGINX = os.environ.get("ZARR_NGINX", "/usr/sbin/nginx")
RGW_SH = REPO_ROOT / "scripts" / "rgw.sh"
USERS = ("alice", "bob", "gateway")


def free_port():
    """A TCP port free on 127.0.0.1 right now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=15.0):
    """True once pred() is true, polling every 0.1 s; pred() at the
    deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def wait_for_port(port, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def tail(path, lines=30):
    try:
        return "\n".join(Path(path).read_text(errors="replace")
                         .splitlines()[-lines:])
    except OSError as e:
        return f"({path}: {e})"


# --- paths -----------------------------------------------------------------

@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope="session")
def build_dir():
    return Path(os.environ.get("ZARR_BUILD_DIR",
                               REPO_ROOT / "build")).resolve()


@pytest.fixture(scope="session")
def module_path(build_dir):
    """ngx_http_zarr_module.so, built by `make module`."""
    path = build_dir / "nginx" / "ngx_http_zarr_module.so"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make module`")
    return path


@pytest.fixture(scope="session")
def zarrctl_path(build_dir):
    """The zarrctl binary, built by `make zarrctl`."""
    path = build_dir / "zarrctl"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make zarrctl`")
    return path


# --- RGW -------------------------------------------------------------------

@dataclass
class S3User:
    name: str
    access_key: str
    secret_key: str


@dataclass
class Rgw:
    endpoint: str
    region: str
    users: dict
    dir: Optional[Path] = None          # None when reusing an external RGW
    env: dict = field(default_factory=dict)

    @property
    def port(self):
        return int(self.endpoint.rsplit(":", 1)[1].rstrip("/"))

    @property
    def alice(self):
        return self.users["alice"]

    @property
    def bob(self):
        return self.users["bob"]

    @property
    def gateway(self):
        return self.users["gateway"]


def read_env_file(path):
    env = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            env[k] = v
    return env


def rgw_from_env(env, endpoint=None, rgw_dir=None):
    users = {
        u: S3User(u, env[f"{u.upper()}_ACCESS_KEY"],
                  env[f"{u.upper()}_SECRET_KEY"])
        for u in USERS
    }
    return Rgw(endpoint=(endpoint or env["RGW_ENDPOINT"]).rstrip("/"),
               region=env.get("RGW_REGION", "us-east-1"),
               users=users, dir=rgw_dir, env=env)


def rgw_stop(rgw_dir):
    subprocess.run([str(RGW_SH), "stop", str(rgw_dir)], check=False,
                   timeout=120)


@pytest.fixture(scope="session")
def rgw(tmp_path_factory):
    """A running RGW with users alice, bob and gateway (--system)."""
    env_file = os.environ.get("ZARR_RGW_ENV")
    endpoint = os.environ.get("ZARR_RGW_ENDPOINT")
    if env_file and endpoint:
        yield rgw_from_env(read_env_file(env_file), endpoint=endpoint)
        return
    if env_file or endpoint:
        pytest.fail("set both ZARR_RGW_ENDPOINT and ZARR_RGW_ENV, or neither")

    rgw_dir = tmp_path_factory.mktemp("rgw")
    env = dict(os.environ)
    if "ZARR_RGW_STORE" in os.environ:
        env["RGW_STORE"] = os.environ["ZARR_RGW_STORE"]
    # stop it even if pytest dies without running fixture finalizers
    atexit.register(rgw_stop, rgw_dir)
    try:
        for attempt in range(2):
            port = free_port()
            r = subprocess.run([str(RGW_SH), "start", str(rgw_dir), str(port)],
                               env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               timeout=180)
            if r.returncode == 0:
                break
            if "already in use" not in r.stdout or attempt == 1:
                pytest.fail(f"scripts/rgw.sh start failed:\n{r.stdout}",
                            pytrace=False)
        yield rgw_from_env(read_env_file(rgw_dir / "credentials.env"),
                           rgw_dir=rgw_dir)
    finally:
        rgw_stop(rgw_dir)


def s3_client(rgw, user="alice", endpoint=None, **config):
    """A boto3 S3 client for `user` (a name or an S3User) at `endpoint`
    (default: RGW itself): SigV4, path-style, no retries (a test must see
    every failure)."""
    if isinstance(user, str):
        user = rgw.users[user]
    cfg = dict(signature_version="s3v4",
               s3={"addressing_style": "path"},
               retries={"max_attempts": 1, "mode": "standard"},
               connect_timeout=10, read_timeout=60)
    cfg.update(config)
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint or rgw.endpoint,
        region_name=rgw.region,
        aws_access_key_id=user.access_key,
        aws_secret_access_key=user.secret_key,
        config=Config(**cfg),
    )


def empty_bucket(client, name):
    """Delete every object version, delete marker and multipart upload."""
    paginator = client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=name):
        found = page.get("Versions", []) + page.get("DeleteMarkers", [])
        objs = [{"Key": o["Key"], "VersionId": o["VersionId"]}
                for o in found]
        for i in range(0, len(objs), 1000):
            client.delete_objects(Bucket=name,
                                  Delete={"Objects": objs[i:i + 1000],
                                          "Quiet": True})
    for page in client.get_paginator("list_multipart_uploads").paginate(
            Bucket=name):
        for u in page.get("Uploads", []):
            client.abort_multipart_upload(Bucket=name, Key=u["Key"],
                                          UploadId=u["UploadId"])


@pytest.fixture
def bucket_factory(rgw):
    """bucket_factory(user="alice", prefix="test") -> a new bucket's name,
    owned by `user`, emptied and deleted after the test."""
    made = []

    def make(user="alice", prefix="test"):
        client = s3_client(rgw, user)
        name = f"{prefix}-{uuid.uuid4().hex[:16]}"
        client.create_bucket(Bucket=name)
        made.append((client, name))
        return name

    yield make
    for client, name in made:
        # a gateway still running may mirror a .checksum object in between
        for attempt in range(20):
            try:
                empty_bucket(client, name)
                client.delete_bucket(Bucket=name)
                break
            except client.exceptions.NoSuchBucket:
                break
            except botocore.exceptions.ClientError as e:
                if e.response["Error"]["Code"] != "BucketNotEmpty" \
                        or attempt == 19:
                    raise
                time.sleep(0.5)


@pytest.fixture
def bucket(bucket_factory):
    """A fresh bucket owned by alice."""
    return bucket_factory()


# --- nginx -----------------------------------------------------------------

class Nginx(NamedTuple):
    port: int
    prefix: Path
    error_log: Path

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def access_log(self):
        return self.prefix / "access.log"


def render_template(text, values):
    """Replace @NAME@ placeholders; every one must have a value."""
    def sub(m):
        key = m.group(1)
        if key not in values:
            raise KeyError(f"no value for placeholder @{key}@")
        return str(values[key])
    return re.sub(r"@([A-Z][A-Z0-9_]*)@", sub, text)


def bad_log_lines(path):
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return []
    return [l for l in text.splitlines() if "[alert]" in l or "[emerg]" in l]


def nginx_test_config(prefix, conf):
    return subprocess.run(
        [NGINX, "-t", "-p", str(prefix), "-c", str(conf),
         "-e", str(prefix / "error.log")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=60)


def stop_nginx(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)       # fast shutdown (nginx -s stop)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def nginx_config(tmp_path_factory, module_path, repo_root):
    """nginx_config(template, **values) -> (prefix, conf, port): renders
    conf/<template> into a fresh prefix dir.  Placeholders PREFIX, MODULE,
    USER, WORKERS and LISTEN_PORT have defaults (a free port); pass others
    such as rgw_port=... (names are upper-cased)."""
    def render(template="nginx-proxy.conf.template", **values):
        prefix = tmp_path_factory.mktemp("nginx")
        subs = {
            "PREFIX": prefix,
            "MODULE": module_path,
            # workers run as root when the master does: the prefix dir
            # from tmp_path is private to the user running the tests
            "USER": getpass.getuser(),
            "WORKERS": 1,
            "LISTEN_PORT": free_port(),
            # signature verification (gateway template): RGW's admin API
            "AUTH": "zarr_credentials rgw valid=10s;",
            "LOG_LEVEL": "info",
        }
        subs.update({k.upper(): v for k, v in values.items()})
        text = (repo_root / "conf" / template).read_text()
        conf = prefix / "nginx.conf"
        conf.write_text(render_template(text, subs))
        return prefix, conf, int(subs["LISTEN_PORT"])

    return render


@pytest.fixture
def nginx(request, nginx_config):
    """nginx(template, **values) -> Nginx(port, prefix, error_log): renders
    the template (see nginx_config), runs `nginx -t`, starts nginx in the
    foreground (daemon off) and waits for its port."""
    started = []

    def start(template="nginx-proxy.conf.template", **values):
        prefix, conf, port = nginx_config(template, **values)
        error_log = prefix / "error.log"
        t = nginx_test_config(prefix, conf)
        if t.returncode != 0:
            pytest.fail(f"nginx -t failed for {template}:\n{t.stdout}",
                        pytrace=False)
        proc = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(error_log),
             "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        inst = Nginx(port, prefix, error_log)
        started.append((proc, inst))
        if not wait_for_port(port, proc=proc):
            pytest.fail(f"nginx did not start on port {port}:\n"
                        f"{tail(error_log)}", pytrace=False)
        return inst

    yield start

    problems = []
    for proc, inst in started:
        stop_nginx(proc)
        bad = bad_log_lines(inst.error_log)
        if bad:
            problems.append(f"{inst.error_log}:\n" + "\n".join(bad))
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(f"--- {inst.error_log} (tail) ---\n{tail(inst.error_log)}")
    if problems:
        pytest.fail("nginx error log has [alert]/[emerg] lines:\n"
                    + "\n".join(problems), pytrace=False)


# --- the zarr gateway --------------------------------------------------------

class Gateway(NamedTuple):
    nginx: Nginx
    rgw: Rgw
    store: Path
    cred: Path = None

    @property
    def url(self):
        return self.nginx.url

    def client(self, user="alice", **config):
        return s3_client(self.rgw, user, endpoint=self.url, **config)

    def tree(self, bucket, zarr_id):
        """{dir: digest} from the gateway's store (zarrctl store)."""
        r = subprocess.run([str(ZARRCTL), "store", "--store", str(self.store),
                            "digest", bucket, zarr_id, "--tree"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None
        return dict(l.rsplit("\t", 1) for l in r.stdout.splitlines())

    def listing(self, bucket, zarr_id, prefix="zarr/"):
        """{dir: digest} of what RGW holds (zarrctl checksum --s3)."""
        env = dict(os.environ,
                   AWS_ACCESS_KEY_ID=self.rgw.gateway.access_key,
                   AWS_SECRET_ACCESS_KEY=self.rgw.gateway.secret_key,
                   AWS_REGION=self.rgw.region)
        r = subprocess.run([str(ZARRCTL), "checksum", "--tree", "--s3",
                            f"s3://{bucket}/{prefix}{zarr_id}/", "--endpoint",
                            self.rgw.endpoint],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        return dict(l.rsplit("\t", 1) for l in r.stdout.splitlines())

    def assert_consistent(self, bucket, zarr_id, timeout=0.0, mirror=True):
        """The gateway's tree equals the backend's listing (waiting up to
        timeout seconds, for the resolver); then every .checksum object
        in the backend equals the document of the listing (waiting for the
        mirror)."""
        deadline = time.monotonic() + timeout
        while True:
            want = self.listing(bucket, zarr_id)
            got = self.tree(bucket, zarr_id)
            if got is None and want == {".": EMPTY_DIGEST}:
                break
            if got == want or time.monotonic() >= deadline:
                assert got == want
                break
            time.sleep(0.2)
        if mirror:
            self.assert_mirror(bucket, zarr_id)
        return want

    def assert_mirror(self, bucket, zarr_id, timeout=15.0):
        """{dir: bytes} of the zarr's .checksum objects, once they equal
        the documents computed (zarr_ref) from the backend's listing."""
        from zarr_ref import tree_documents
        direct = s3_client(self.rgw, "gateway")

        def objects(prefix):
            out = []
            for page in direct.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=prefix):
                out += [(o["Key"][len(prefix):], o["Size"],
                         o["ETag"].strip('"'))
                        for o in page.get("Contents", [])]
            return out

        env = dict(os.environ,
                   AWS_ACCESS_KEY_ID=self.rgw.gateway.access_key,
                   AWS_SECRET_ACCESS_KEY=self.rgw.gateway.secret_key,
                   AWS_REGION=self.rgw.region)

        def documents():
            """zarrctl's documents of the backend's listing."""
            r = subprocess.run(
                [str(ZARRCTL), "checksum", "--documents", "--s3",
                 f"s3://{bucket}/zarr/{zarr_id}/", "--endpoint",
                 self.rgw.endpoint], capture_output=True, env=env)
            assert r.returncode == 0, r.stderr
            out = {}
            for line in r.stdout.split(b"\n"):
                if line:
                    d, doc = line.rsplit(b"\t", 1)
                    out["" if d == b"." else d.decode()] = doc
            return out

        deadline = time.monotonic() + timeout
        while True:
            files = objects(f"zarr/{zarr_id}/")
            want = documents() if files else {}
            # the independent Python model agrees with zarrctl
            assert want == (tree_documents(files) if files else {})
            got = {}
            cprefix = f"zarr-checksums/{zarr_id}/"
            for key, _, _ in objects(cprefix):
                d = key[:-len(".checksum")].rstrip("/")
                try:
                    got[d] = direct.get_object(
                        Bucket=bucket, Key=cprefix + key)["Body"].read()
                except direct.exceptions.NoSuchKey:
                    # the mirror deleted it between the list and the read
                    got[d] = None
            if got == want or time.monotonic() >= deadline:
                assert got == want
                return got
            time.sleep(0.2)

    def error_log(self):
        return self.nginx.error_log.read_text(errors="replace")


EMPTY_DIGEST = "481a2f77ab786a0f45aafd5db0971caa-0--0"
ZARRCTL = Path(os.environ.get("ZARR_BUILD_DIR",
                              REPO_ROOT / "build")) / "zarrctl"


@pytest.fixture
def gateway(nginx, rgw, tmp_path_factory):
    """gateway(workers=2, batch_timeout="60s") -> Gateway: nginx with the
    module in front of RGW, its own store under its prefix."""
    cred = tmp_path_factory.mktemp("cred") / "gateway.cred"
    cred.write_text(f"access_key={rgw.gateway.access_key}\n"
                    f"secret_key={rgw.gateway.secret_key}\n"
                    f"region={rgw.region}\n")

    def start(workers=2, batch_timeout="60s", **values):
        ng = nginx("nginx-gateway.conf.template", rgw_port=rgw.port,
                   workers=workers, batch_timeout=batch_timeout,
                   credentials=cred, **values)
        return Gateway(ng, rgw, ng.prefix / "store", cred)
    return start
