"""The Debian packages (make deb, DESIGN section 11) on the system nginx.

Builds libnginx-mod-http-zarr and zarrctl, installs them with apt-get,
runs the SYSTEM nginx (/usr/sbin/nginx) with the packaged module enabled
through /etc/nginx/modules-enabled/ (the test config includes that
directory and has no load_module line of its own) as a gateway in front
of the test RGW, and purges both packages at the end: the system nginx
must still pass `nginx -t` and no zarr link may be left behind.

It changes the machine's packages: it runs only as root (as in CI) and
purges libnginx-mod-http-zarr and zarrctl even if they were installed
before it ran.
"""

import getpass
import os
import subprocess
from pathlib import Path

import pytest

from conftest import (Gateway, Nginx, bad_log_lines, free_port,
                      nginx_test_config, render_template, stop_nginx, tail,
                      wait_for_port)


PACKAGES = ("libnginx-mod-http-zarr", "zarrctl")
SO = Path("/usr/lib/nginx/modules/ngx_http_zarr_module.so")
SNIPPET = Path("/usr/share/nginx/modules-available/mod-http-zarr.conf")
ENABLED = Path("/etc/nginx/modules-enabled")
LINK = ENABLED / "50-mod-http-zarr.conf"
SYSTEM_NGINX = "/usr/sbin/nginx"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="installs Debian packages: needs root")


def run(cmd, timeout=600, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout, **kw)
    assert r.returncode == 0, f"{cmd} failed:\n{r.stdout[-4000:]}"
    return r.stdout


def apt_get(*args):
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # other apt users on the machine: wait for the dpkg lock
    return run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "-y", *args],
               timeout=900, env=env)


def installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                       capture_output=True, text=True)
    return r.returncode == 0 and "install ok installed" in r.stdout


def zarr_links():
    return [p.name for p in ENABLED.iterdir() if "zarr" in p.name]


@pytest.fixture(scope="module")
def debs(repo_root, build_dir):
    """The two .debs, built by `make deb` (lintian included)."""
    run(["make", "deb", f"BUILD={build_dir}"], timeout=1800, cwd=repo_root)
    out = {}
    for pkg in PACKAGES:
        found = sorted((build_dir / "deb").glob(f"{pkg}_*.deb"))
        assert len(found) == 1, found
        out[pkg] = found[0]
    return out


@pytest.fixture
def packages(debs):
    """Installs the packages; purges them afterwards whatever happened."""
    apt_get("install", *[str(p) for p in debs.values()])
    yield debs
    if any(installed(p) for p in PACKAGES):
        apt_get("purge", *PACKAGES)


def gateway_conf(repo_root, rgw, prefix, cred):
    """conf/nginx-gateway.conf.template with its load_module line replaced
    by the include of modules-enabled, as in /etc/nginx/nginx.conf."""
    text = (repo_root / "conf" / "nginx-gateway.conf.template").read_text()
    assert "load_module @MODULE@;\n" in text
    text = text.replace("load_module @MODULE@;\n",
                        "include /etc/nginx/modules-enabled/*.conf;\n")
    assert "load_module" not in text
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(render_template(text, {
        # @MODULE@ is left in the template's comments only
        "MODULE": SO, "PREFIX": prefix, "USER": getpass.getuser(),
        "WORKERS": 2,
        "LISTEN_PORT": port, "RGW_PORT": rgw.port, "CREDENTIALS": cred,
        "BATCH_TIMEOUT": "60s", "LOG_LEVEL": "info",
        "AUTH": "zarr_credentials rgw valid=10s;",
    }))
    return conf, port


def test_packages_on_system_nginx(packages, repo_root, rgw, bucket,
                                  tmp_path):
    # the layout of Debian's own libnginx-mod-* packages
    assert SO.is_file()
    assert SNIPPET.read_text().strip().endswith(
        "load_module /usr/lib/nginx/modules/ngx_http_zarr_module.so;")
    assert LINK.is_symlink() and os.readlink(LINK) == str(SNIPPET)
    depends = run(["dpkg-query", "-W", "-f=${Depends}",
                   "libnginx-mod-http-zarr"])
    # the ABI the system nginx provides, as dh_nginx reads it
    abi = [l.split("=", 1)[1] for l in Path(
        "/usr/share/nginx/src/debian/libnginx-mod.abisubstvars")
        .read_text().splitlines() if l.startswith("nginx:abi=")]
    assert abi and abi[0] in depends.split(", "), depends
    assert abi[0] in run(["dpkg-query", "-W", "-f=${Provides}", "nginx"])
    assert Path("/usr/share/man/man1/zarrctl.1.gz").is_file()

    # the system nginx's own configuration loads the module
    run([SYSTEM_NGINX, "-t"])

    # a gateway on a test port, the module from modules-enabled
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    cred = tmp_path / "gateway.cred"
    cred.write_text(f"access_key={rgw.gateway.access_key}\n"
                    f"secret_key={rgw.gateway.secret_key}\n"
                    f"region={rgw.region}\n")
    conf, port = gateway_conf(repo_root, rgw, prefix, cred)
    t = nginx_test_config(prefix, conf)
    assert t.returncode == 0, t.stdout
    error_log = prefix / "error.log"
    proc = subprocess.Popen(
        [SYSTEM_NGINX, "-p", str(prefix), "-c", str(conf), "-e",
         str(error_log), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for_port(port, proc=proc), tail(error_log)
        gw = Gateway(Nginx(port, prefix, error_log), rgw, prefix / "store",
                     cred)
        c = gw.client()
        c.put_object(Bucket=bucket, Key="zarr/deb/.zgroup",
                     Body=b'{"zarr_format":2}')
        c.put_object(Bucket=bucket, Key="zarr/deb/a/.zarray", Body=b"{}")
        for i in range(4):
            c.put_object(Bucket=bucket, Key=f"zarr/deb/a/0.{i}",
                         Body=os.urandom(64 + i))
        c.delete_object(Bucket=bucket, Key="zarr/deb/a/0.3")
        tree = gw.assert_consistent(bucket, "deb")
        assert tree["."].endswith("-5--%d" % (17 + 2 + 64 + 65 + 66))

        # the packaged zarrctl reads the same store
        got = run(["/usr/bin/zarrctl", "store", "--store", str(gw.store),
                   "digest", bucket, "deb"]).strip()
        assert got == tree["."]
    finally:
        stop_nginx(proc)
    assert bad_log_lines(error_log) == [], tail(error_log)

    # purge leaves a working nginx and no zarr link
    apt_get("purge", *PACKAGES)
    assert not any(installed(p) for p in PACKAGES)
    assert not SO.exists() and not SNIPPET.exists()
    assert zarr_links() == []
    run([SYSTEM_NGINX, "-t"])
    assert not Path("/usr/bin/zarrctl").exists()
