"""Only verified writers hold a zarr (DESIGN 4b): signatures are checked
at the gateway against RGW's admin API or a key file before a mutation
may take, extend or be refused by a batch.  Attackers get the backend's
403 and change nothing; the rightful writer is never blocked by them.
Without a credential source, the fallback: the lock after the body, and
a batch dropped when the backend refuses its opener."""

import datetime
import re
import socket
import subprocess
import time
from unittest import mock

import botocore
import pytest
import requests
from botocore.auth import S3SigV4Auth, HmacV1Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import (Gateway, Nginx, NGINX, free_port, s3_client, wait_for,
                      wait_for_port)


AUTH_LINE = re.compile(r"\[info\] .*zarr: signature refused: "
                       r"reason=(?P<reason>\S+) "
                       r'access_key="(?P<key>[^"]*)" method=(?P<method>\S+)')


def sign(method, url, key, secret, body=b"", headers=None, region="us-east-1",
         when=None):
    """The headers of a SigV4-signed request (botocore, as boto3 signs),
    optionally signed at another time."""
    req = AWSRequest(method=method, url=url, data=body,
                     headers=dict(headers or {}))
    auth = S3SigV4Auth(Credentials(key, secret), "s3", region)
    if when is None:
        auth.add_auth(req)
    else:
        with mock.patch("botocore.auth.datetime") as dt:
            dt.datetime.utcnow.return_value = when
            auth.add_auth(req)
    return dict(req.headers)


def s3_error(r):
    m = re.search(r"<Code>([^<]*)</Code>", r.text)
    return m.group(1) if m else None


def refusals(gw):
    return [m.groupdict() for m in AUTH_LINE.finditer(gw.error_log())]


def metric(gw, name, **labels):
    text = requests.get(gw.url + "/zarr-metrics", timeout=10).text
    sel = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    pat = re.escape(name + ("{%s}" % sel if sel else "")) + r" (\d+)"
    m = re.search(pat, text)
    return int(m.group(1)) if m else None


def batch(gw, bucket, zarr_id):
    r = requests.get("%s/zarr-api/v1/buckets/%s/zarrs/%s/batch"
                     % (gw.url, bucket, zarr_id), timeout=10)
    return r.json() if r.status_code == 200 else None


def rgw_admin(rgw, method, params):
    """RGW's admin API with the gateway's (system) credentials."""
    url = "%s/admin/user?%s&format=json" % (
        rgw.endpoint, "&".join("%s=%s" % kv for kv in params.items()))
    h = sign(method, url, rgw.gateway.access_key, rgw.gateway.secret_key)
    r = requests.request(method, url, headers=h, timeout=10)
    assert r.status_code == 200, r.text
    return r


def attacks(gw, bucket, key):
    """(name, requests.Response) for every forged request of key."""
    url = "%s/%s/%s" % (gw.url, bucket, key)
    alice = gw.rgw.alice
    body = b"forged"
    out = []

    out.append(("anonymous", requests.put(url, data=body, timeout=10)))

    h = sign("PUT", url, "NOSUCHKEY0000000000X", "x" * 40, body)
    out.append(("unknown key", requests.put(url, data=body, headers=h,
                                            timeout=10)))

    h = sign("PUT", url, alice.access_key, "wrong-secret", body)
    out.append(("wrong secret", requests.put(url, data=body, headers=h,
                                             timeout=10)))

    # signed for another key of the zarr, sent to this one
    h = sign("PUT", url + "-other", alice.access_key, alice.secret_key, body)
    out.append(("path altered", requests.put(url, data=body, headers=h,
                                             timeout=10)))

    # a signed header changed after signing
    h = sign("PUT", url, alice.access_key, alice.secret_key, body,
             headers={"x-amz-meta-who": "alice"})
    h["x-amz-meta-who"] = "mallory"
    out.append(("signed header altered",
                requests.put(url, data=body, headers=h, timeout=10)))

    # the query changed after signing (an ACL PUT turned into a PUT of a
    # versioned append would be worse: any change must fail)
    h = sign("PUT", url + "?x-id=PutObject", alice.access_key,
             alice.secret_key, body)
    out.append(("query altered",
                requests.put(url + "?x-id=PutObjekt", data=body, headers=h,
                             timeout=10)))

    # alice's valid signature replayed with bob's access key id
    h = sign("PUT", url, alice.access_key, alice.secret_key, body)
    h["Authorization"] = h["Authorization"].replace(
        alice.access_key, gw.rgw.bob.access_key)
    out.append(("replayed with another key",
                requests.put(url, data=body, headers=h, timeout=10)))

    # a date 20 minutes ago, signed correctly
    past = datetime.datetime.utcnow() - datetime.timedelta(minutes=20)
    h = sign("PUT", url, alice.access_key, alice.secret_key, body, when=past)
    out.append(("skewed", requests.put(url, data=body, headers=h,
                                       timeout=10)))

    # an expired presigned URL
    c = gw.client("alice")
    presigned = c.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=1)
    time.sleep(2.2)
    out.append(("expired presigned",
                requests.put(presigned, data=body, timeout=10)))

    # SigV2, refused for zarr writes (docs/security.md)
    req = AWSRequest(method="PUT", url=url, data=body)
    HmacV1Auth(Credentials(alice.access_key, alice.secret_key)).add_auth(req)
    out.append(("sigv2", requests.put(url, data=body,
                                      headers=dict(req.headers),
                                      timeout=10)))
    return out


EXPECTED = {
    "anonymous": ("AccessDenied", "anonymous"),
    "unknown key": ("InvalidAccessKeyId", "unknown_key"),
    "wrong secret": ("SignatureDoesNotMatch", "mismatch"),
    "path altered": ("SignatureDoesNotMatch", "mismatch"),
    "signed header altered": ("SignatureDoesNotMatch", "mismatch"),
    "query altered": ("SignatureDoesNotMatch", "mismatch"),
    "replayed with another key": ("SignatureDoesNotMatch", "mismatch"),
    "skewed": ("RequestTimeTooSkewed", "skewed"),
    "expired presigned": ("AccessDenied", "expired"),
    "sigv2": ("AccessDenied", "unsupported"),
}


def keyfile(path, rgw, owners=("alice", "bob")):
    """A zarr_credentials key file with alice's and bob's keys."""
    path.write_text("# ACCESS_KEY SECRET OWNER\n" + "".join(
        "%s %s %s\n" % (rgw.users[u].access_key, rgw.users[u].secret_key, o)
        for u, o in zip(("alice", "bob"), owners)))
    return path


def end_batch(gw, bucket, zarr_id):
    requests.delete("%s/zarr-api/v1/buckets/%s/zarrs/%s/batch"
                    % (gw.url, bucket, zarr_id), timeout=10)
    assert batch(gw, bucket, zarr_id) is None


@pytest.mark.parametrize("source", ["rgw", "file"])
def test_attackers_hold_nothing(gateway, bucket_factory, tmp_path, rgw,
                                source):
    """Every forged request gets the backend's 403 from the gateway, is
    not forwarded, takes no batch, and the rightful writer (bob, whose
    bucket it is) writes at once."""
    auth = {}
    if source == "file":
        auth["auth"] = "zarr_credentials file=%s;" % keyfile(
            tmp_path / "zarr.keys", rgw)
    gw = gateway(workers=2, **auth)
    bucket = bucket_factory(user="bob")
    c_bob = gw.client("bob")
    c_bob.put_object(Bucket=bucket, Key="zarr/z/seed", Body=b"seed")
    tree0 = gw.tree(bucket, "z")
    end_batch(gw, bucket, "z")
    n0 = len(refusals(gw))

    results = attacks(gw, bucket, "zarr/z/victim")
    for name, r in results:
        code, _ = EXPECTED[name]
        assert r.status_code == 403, (name, r.status_code, r.text)
        assert s3_error(r) == code, (name, r.text)
        assert r.headers["Content-Type"] == "application/xml", name
        # none of them took or extended a batch
        assert batch(gw, bucket, "z") is None, name

    # nothing reached the backend, the tree did not move
    with pytest.raises(botocore.exceptions.ClientError):
        c_bob.head_object(Bucket=bucket, Key="zarr/z/victim")
    assert gw.tree(bucket, "z") == tree0

    # the rightful writer goes at once: no 409
    c_bob.put_object(Bucket=bucket, Key="zarr/z/bob", Body=b"bob")
    b = batch(gw, bucket, "z")
    assert b is not None and b["owner"] == "bob"

    # one info line and one metric sample per refusal
    assert len(refusals(gw)) - n0 == len(results)
    for reason in set(r for _, r in EXPECTED.values()):
        want = sum(1 for _, rr in EXPECTED.values() if rr == reason)
        assert metric(gw, "zarr_auth_failures_total", reason=reason) == want
    gw.assert_consistent(bucket, "z")


def test_reads_are_untouched(gateway, bucket):
    """Reads are the backend's to check: an anonymous GET of a private
    object gets RGW's own 403, not the gateway's."""
    gw = gateway(workers=1)
    gw.client().put_object(Bucket=bucket, Key="zarr/r/a", Body=b"a")
    n0 = len(refusals(gw))
    r = requests.get("%s/%s/zarr/r/a" % (gw.url, bucket), timeout=10)
    assert r.status_code == 403
    assert len(refusals(gw)) == n0


def test_two_keys_of_one_user_share_a_batch(gateway, bucket, rgw):
    """The batch owner is the RGW user id: a second key of alice, created
    after start-up, writes into the batch of her first key."""
    gw = gateway(workers=2)
    c = gw.client("alice")
    c.put_object(Bucket=bucket, Key="zarr/k/a", Body=b"a")
    assert batch(gw, bucket, "k")["owner"] == "alice"

    ak, sk = "ALICESECONDKEY000002", "alice-second-secret-00000000000000002"
    rgw_admin(rgw, "PUT", {"key": "", "uid": "alice", "access-key": ak,
                           "secret-key": sk})
    c2 = boto_client(gw, ak, sk)
    c2.put_object(Bucket=bucket, Key="zarr/k/b", Body=b"b")
    assert batch(gw, bucket, "k")["owner"] == "alice"

    # deleted: refused once the cached answer expires (valid=10s)
    rgw_admin(rgw, "DELETE", {"key": "", "uid": "alice",
                              "access-key": ak})

    def refused():
        try:
            c2.put_object(Bucket=bucket, Key="zarr/k/c", Body=b"c")
            return False
        except botocore.exceptions.ClientError as e:
            return e.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert wait_for(refused, timeout=20)
    gw.assert_consistent(bucket, "k")


def boto_client(gw, ak, sk):
    import boto3
    from botocore.config import Config
    return boto3.client("s3", endpoint_url=gw.url, aws_access_key_id=ak,
                        aws_secret_access_key=sk,
                        region_name=gw.rgw.region,
                        config=Config(s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}))


def test_key_file_owner_and_reload(gateway, bucket, rgw, tmp_path):
    """A key file's OWNER column is the batch owner; nginx -s reload
    re-reads the file: a key added works, a key removed does not."""
    keys = keyfile(tmp_path / "zarr.keys", rgw, owners=("lab-a", "lab-b"))
    gw = gateway(workers=2, auth="zarr_credentials file=%s;" % keys)
    gw.client("alice").put_object(Bucket=bucket, Key="zarr/f/a", Body=b"a")
    assert batch(gw, bucket, "f")["owner"] == "lab-a"

    # bob is not lab-a: 409, as any other owner
    with pytest.raises(botocore.exceptions.ClientError) as e:
        gw.client("bob").put_object(Bucket=bucket, Key="zarr/f/b", Body=b"b")
    assert e.value.response["Error"]["Code"] == "OperationAborted"
    end_batch(gw, bucket, "f")

    # alice's line removed, reload: her key is unknown now
    keys.write_text("%s %s lab-b\n" % (rgw.bob.access_key,
                                        rgw.bob.secret_key))
    pid = int((gw.nginx.prefix / "nginx.pid").read_text())
    subprocess.run(["kill", "-HUP", str(pid)], check=True)

    def refused():
        try:
            gw.client("alice").put_object(Bucket=bucket, Key="zarr/f/c",
                                          Body=b"c")
            return False
        except botocore.exceptions.ClientError as e:
            return e.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert wait_for(refused, timeout=15)
    gw.assert_consistent(bucket, "f")


def test_key_file_errors(nginx_config, rgw, tmp_path):
    """nginx -t names a malformed line of the key file."""
    from conftest import nginx_test_config
    bad = tmp_path / "bad.keys"
    bad.write_text("# fine\nAKIDONE secret-one alice\nonlyonefield\n")
    cred = tmp_path / "gw.cred"
    cred.write_text("access_key=x\nsecret_key=y\n")
    prefix, conf, _ = nginx_config(
        "nginx-gateway.conf.template", rgw_port=rgw.port, workers=1,
        batch_timeout="60s", credentials=cred,
        auth="zarr_credentials file=%s;" % bad)
    t = nginx_test_config(prefix, conf)
    assert t.returncode != 0
    assert "malformed line 3" in t.stdout and str(bad) in t.stdout

    prefix, conf, _ = nginx_config(
        "nginx-gateway.conf.template", rgw_port=rgw.port, workers=1,
        batch_timeout="60s", credentials=cred, auth="")
    t = nginx_test_config(prefix, conf)
    assert t.returncode == 0
    assert "no \"zarr_credentials\"" in t.stdout


def test_admin_api_down_is_503(gateway, bucket, nginx_config, rgw):
    """The credential lookup fails (the gateway's own calls go to a dead
    port): writers get 503 SlowDown with Retry-After, never admission."""
    gw = gateway()
    prefix, conf, port = nginx_config(
        "nginx-gateway.conf.template", rgw_port=rgw.port, workers=1,
        batch_timeout="60s", credentials=gw.cred)
    conf.write_text(conf.read_text().replace(
        "zarr_backend http://127.0.0.1:%d;" % rgw.port,
        "zarr_backend http://127.0.0.1:%d;" % free_port()))
    proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf),
                             "-e", str(prefix / "error.log"),
                             "-g", "daemon off;"])
    try:
        assert wait_for_port(port, proc=proc)
        g = Gateway(Nginx(port, prefix, prefix / "error.log"), rgw,
                    prefix / "store", gw.cred)
        url = "%s/%s/zarr/d/a" % (g.url, bucket)
        h = sign("PUT", url, rgw.alice.access_key, rgw.alice.secret_key,
                 b"a")
        r = requests.put(url, data=b"a", headers=h, timeout=30)
        assert r.status_code == 503, r.text
        assert s3_error(r) == "SlowDown"
        assert r.headers.get("Retry-After")
        assert batch(g, bucket, "d") is None
        assert "credential lookup of" in g.error_log()
        with pytest.raises(botocore.exceptions.ClientError):
            s3_client(rgw, "alice").head_object(Bucket=bucket,
                                                Key="zarr/d/a")
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_admin_api_signed_requests(gateway, bucket):
    """A signed API request: its signer is the default batch owner; a
    badly signed one gets 403; an unsigned one still works."""
    gw = gateway(workers=1)
    alice = gw.rgw.alice
    gw.client().put_object(Bucket=bucket, Key="zarr/p/a", Body=b"a")
    end_batch(gw, bucket, "p")

    url = "%s/zarr-api/v1/buckets/%s/zarrs/p/batch" % (gw.url, bucket)
    body = b'{"timeout": 30}'
    h = sign("POST", url, alice.access_key, alice.secret_key, body)
    r = requests.post(url, data=body, headers=h, timeout=10)
    assert r.status_code == 201, r.text
    assert r.json()["owner"] == "alice"
    end_batch(gw, bucket, "p")

    h = sign("POST", url, alice.access_key, "wrong", body)
    r = requests.post(url, data=body, headers=h, timeout=10)
    assert r.status_code == 403
    assert r.json()["error"] == "SignatureDoesNotMatch"

    # a body swapped after signing
    h = sign("POST", url, alice.access_key, alice.secret_key, body)
    r = requests.post(url, data=b'{"owner": "mallory"}', headers=h,
                      timeout=10)
    assert r.status_code == 403
    assert batch(gw, bucket, "p") is None

    r = requests.post(url, json={"owner": "carol"}, timeout=10)
    assert r.status_code == 201
    assert r.json()["owner"] == "carol"



def test_admin_api_signature_checked_after_routing(gateway, bucket):
    """The API checks a signature last: an unknown endpoint, a wrong
    method, a bad bucket and a bad body answer as for an unsigned
    request, whatever the signature; then a bad one gets 403."""
    gw = gateway(workers=1)
    alice = gw.rgw.alice
    base = "%s/zarr-api/v1/" % gw.url
    for method, path, body, status, code in (
            ("GET", "nope", b"", 404, "not_found"),
            ("GET", "buckets/%s/zarrs/z/extra" % bucket, b"", 404,
             "not_found"),
            ("PUT", "status", b"", 405, "method_not_allowed"),
            ("GET", "buckets/%s/zarrs" % ("b" * 64), b"", 400,
             "bad_request"),
            ("POST", "buckets/%s/zarrs/z/batch" % bucket, b"{", 400,
             "bad_request"),
            ("GET", "status", b"", 403, "SignatureDoesNotMatch"),
            ("POST", "buckets/%s/zarrs/z/batch" % bucket, b"{}", 403,
             "SignatureDoesNotMatch")):
        url = base + path
        h = sign(method, url, alice.access_key, "wrong", body)
        r = requests.request(method, url, data=body, headers=h, timeout=10)
        assert r.status_code == status, (method, path, r.text)
        assert r.json()["error"] == code, (method, path)
    # signed rightly, the same GET passes
    url = base + "status"
    h = sign("GET", url, alice.access_key, alice.secret_key)
    assert requests.get(url, headers=h, timeout=10).status_code == 200

# --- without a credential source: the fallback ---------------------------

def test_fallback_drops_refused_batch(gateway, bucket_factory):
    """No zarr_credentials: a forged PUT opens a batch, RGW refuses it,
    the batch is dropped at once: the rightful writer gets no 409."""
    gw = gateway(workers=2, auth="")
    assert "no \"zarr_credentials\"" in gw.error_log()
    bucket = bucket_factory(user="bob")
    c_bob = gw.client("bob")
    url = "%s/%s/zarr/fb/x" % (gw.url, bucket)
    for name, r in [
            ("anonymous", requests.put(url, data=b"x", timeout=10)),
            ("wrong secret", requests.put(url, data=b"x", timeout=10,
                                          headers=sign(
                                              "PUT", url,
                                              gw.rgw.alice.access_key,
                                              "wrong", b"x")))]:
        assert r.status_code == 403, (name, r.text)
        # RGW refused it: the batch it opened is dropped (its finish is
        # committed right after the answer went out)
        assert wait_for(lambda: batch(gw, bucket, "fb") is None,
                        timeout=5), name
        c_bob.put_object(Bucket=bucket, Key="zarr/fb/bob", Body=b"b")
        end_batch(gw, bucket, "fb")
    gw.assert_consistent(bucket, "fb")


def test_fallback_locks_after_the_body(gateway, bucket_factory):
    """No zarr_credentials: a forged PUT whose body trickles in holds no
    batch while it trickles."""
    gw = gateway(workers=2, auth="")
    bucket = bucket_factory(user="bob")
    url = "%s/%s/zarr/tb/x" % (gw.url, bucket)
    body = b"0123456789"
    h = sign("PUT", url, gw.rgw.alice.access_key, "wrong", body)
    head = "PUT /%s/zarr/tb/x HTTP/1.1\r\nHost: %s\r\n" % (
        bucket, url.split("/")[2])
    head += "".join("%s: %s\r\n" % kv for kv in h.items())
    head += "Content-Length: %d\r\n\r\n" % len(body)
    s = socket.create_connection(("127.0.0.1", gw.nginx.port))
    try:
        s.sendall(head.encode() + body[:4])
        time.sleep(0.5)
        assert batch(gw, bucket, "tb") is None
        gw.client("bob").put_object(Bucket=bucket, Key="zarr/tb/bob",
                                    Body=b"b")
        assert batch(gw, bucket, "tb")["owner"] == gw.rgw.bob.access_key
        end_batch(gw, bucket, "tb")
        s.sendall(body[4:])
        s.settimeout(30)
        assert b" 403 " in s.recv(200).split(b"\r\n")[0]
    finally:
        s.close()
    # the forged PUT's own batch, if any, is dropped with its finish
    assert wait_for(lambda: batch(gw, bucket, "tb") is None, timeout=5)
    gw.assert_consistent(bucket, "tb")
