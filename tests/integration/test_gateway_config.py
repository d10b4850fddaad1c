"""Configuration errors: nginx -t names the directive and the reason."""

import pytest

from conftest import nginx_test_config


def render(nginx_config, rgw, tmp_path, edit):
    cred = tmp_path / "gateway.cred"
    cred.write_text("access_key=%s\nsecret_key=%s\nregion=us-east-1\n" % (
        rgw.gateway.access_key, rgw.gateway.secret_key))
    prefix, conf, port = nginx_config(
        "nginx-gateway.conf.template", rgw_port=rgw.port, workers=1,
        batch_timeout="60s", credentials=cred)
    text = conf.read_text()
    for old, new in edit(prefix, cred).items():
        assert old in text, old
        text = text.replace(old, new)
    conf.write_text(text)
    return nginx_test_config(prefix, conf)


def test_valid_config_passes(nginx_config, rgw, tmp_path):
    r = render(nginx_config, rgw, tmp_path, lambda p, c: {})
    assert r.returncode == 0, r.stdout
    assert "test is successful" in r.stdout


CASES = [
    ("no store", lambda p, c: {"zarr_store %s/store size=1g;" % p: ""},
     '"zarr_gateway on" needs "zarr_store"'),
    ("store size", lambda p, c: {"size=1g": "size=10"},
     'invalid store size "size=10"'),
    ("store param", lambda p, c: {"size=1g": "bytes=1g"},
     'invalid parameter "bytes=1g"'),
    ("store is a file", lambda p, c: {"%s/store size" % p: "%s size" % c},
     "is not a directory writable by the worker user"),
    ("prefix slash", lambda p, c: {"zarr_prefix zarr/;": "zarr_prefix /zarr/;"},
     'must not start with "/"'),
    ("prefix end", lambda p, c: {"zarr_prefix zarr/;": "zarr_prefix zarr;"},
     'must end with "/"'),
    ("checksums under zarrs",
     lambda p, c: {"zarr_checksum_prefix zarr-checksums/;":
                   "zarr_checksum_prefix zarr/checksums/;"},
     'zarr_checksum_prefix "zarr/checksums/" must not be under zarr_prefix'),
    ("backend url", lambda p, c: {"zarr_backend http://": "zarr_backend ftp://"},
     "invalid zarr_backend"),
    ("no credentials", lambda p, c: {"zarr_backend_credentials %s;" % c: ""},
     'needs "zarr_backend" and "zarr_backend_credentials"'),
    ("missing credentials file",
     lambda p, c: {"zarr_backend_credentials %s;" % c:
                   "zarr_backend_credentials %s/nope;" % p},
     "failed (2: No such file or directory)"),
    ("log level", lambda p, c: {"zarr_batch_timeout 60s;":
                                "zarr_conflict_log_level loud;"},
     'invalid log level "loud" in "zarr_conflict_log_level"'),
    ("timeout", lambda p, c: {"zarr_batch_timeout 60s;":
                              "zarr_batch_timeout soon;"},
     '"zarr_batch_timeout" directive invalid value'),
    ("duplicate store", lambda p, c: {"zarr_thread_pool zarr;":
                                      "zarr_thread_pool zarr;\n"
                                      "zarr_store /tmp/x;"},
     '"zarr_store" directive is duplicate'),
    ("virtual host port",
     lambda p, c: {"zarr_virtual_host_suffix s3.zarr.test;":
                   "zarr_virtual_host_suffix s3.zarr.test:80;"},
     '"zarr_virtual_host_suffix" directive must be a domain name'),
    ("virtual host empty",
     lambda p, c: {"zarr_virtual_host_suffix s3.zarr.test;":
                   'zarr_virtual_host_suffix "";'},
     '"zarr_virtual_host_suffix" directive must not be empty'),
    ("virtual host twice",
     lambda p, c: {"zarr_virtual_host_suffix s3.zarr.test;":
                   "zarr_virtual_host_suffix a.test;\n"
                   "zarr_virtual_host_suffix b.test;"},
     '"zarr_virtual_host_suffix" directive is duplicate'),
    ("unknown pool", lambda p, c: {"zarr_thread_pool zarr;":
                                   "zarr_thread_pool other;"},
     'unknown thread pool "other"'),
]


@pytest.mark.parametrize("name,edit,message", CASES, ids=[c[0] for c in CASES])
def test_config_errors(nginx_config, rgw, tmp_path, name, edit, message):
    r = render(nginx_config, rgw, tmp_path, edit)
    assert r.returncode != 0, r.stdout
    assert message in r.stdout, r.stdout


def test_credentials_without_secret(nginx_config, rgw, tmp_path):
    def edit(p, c):
        c.write_text("access_key=x\n")
        return {}
    r = render(nginx_config, rgw, tmp_path, edit)
    assert r.returncode != 0
    assert "needs access_key= and secret_key= lines" in r.stdout
