#!/usr/bin/python3
"""Asks a real RGW how it judges edge cases of SigV4 canonicalisation.

    capture_rgw.py PORT OUTDIR

Signs requests with alice's key of scripts/rgw.sh, computing the
canonical request by hand, and sends them with another but equivalent
(or not) spelling of the path, query or headers.  Each request's head
goes to OUTDIR/rgw-<verdict>-<case>.http, where <verdict> is what RGW
said: "ok" (the signature passed: 404 NoSuchBucket for the too-short
bucket name "t", which RGW checks only after the signature) or
"mismatch" (403 SignatureDoesNotMatch).  test_auth.c then checks that
zarr_auth agrees (test_rgw_agreement).

    scripts/rgw.sh start /tmp/rgw PORT
    tests/tools/capture_rgw.py PORT tests/unit/auth_requests/rgw
    scripts/rgw.sh stop /tmp/rgw
"""

import datetime
import hashlib
import hmac
import http.client
import os
import sys

AK = "ALICEACCESSKEY000001"
SK = "alice-secret-key-0000000000000000000001"


def mac(k, m):
    return hmac.new(k, m.encode(), hashlib.sha256).digest()


def send(port, outdir, name, method, canon_path, canon_query, target,
         signed=(), sent=None, unsigned=()):
    """signed: (name, canonical value) pairs; sent: the headers as sent
    (default: the signed ones); unsigned: more headers, not signed"""
    t = datetime.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
    ph = hashlib.sha256(b"").hexdigest()
    host = "127.0.0.1:%d" % port
    hs = sorted([("host", host), ("x-amz-content-sha256", ph),
                 ("x-amz-date", t)] + list(signed))
    sh = ";".join(k for k, _ in hs)
    cr = "\n".join([method, canon_path, canon_query,
                    "".join("%s:%s\n" % kv for kv in hs), sh, ph])
    scope = t[:8] + "/us-east-1/s3/aws4_request"
    sts = "AWS4-HMAC-SHA256\n%s\n%s\n%s" % (
        t, scope, hashlib.sha256(cr.encode()).hexdigest())
    k = mac(mac(mac(mac(("AWS4" + SK).encode(), t[:8]), "us-east-1"), "s3"),
            "aws4_request")
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    auth = ("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, "
            "Signature=%s" % (AK, scope, sh, sig))
    hdrs = [("Host", host), ("x-amz-date", t), ("x-amz-content-sha256", ph)]
    hdrs += list(sent if sent is not None else signed) + list(unsigned)
    hdrs += [("Authorization", auth), ("Content-Length", "0")]

    c = http.client.HTTPConnection("127.0.0.1", port)
    c.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    for kk, vv in hdrs:
        c.putheader(kk, vv)
    c.endheaders()
    r = c.getresponse()
    r.read()
    c.close()

    verdict = {404: "ok", 403: "mismatch"}.get(r.status, "status%d" % r.status)
    fn = "rgw-%s-%s.http" % (verdict, name)
    with open(os.path.join(outdir, fn), "w", newline="") as f:
        f.write("%s %s HTTP/1.1\r\n" % (method, target))
        for kk, vv in hdrs:
            f.write("%s: %s\r\n" % (kk, vv))
        f.write("\r\n")
    print(fn)


def main():
    port, outdir = int(sys.argv[1]), sys.argv[2]
    os.makedirs(outdir, exist_ok=True)

    def s(*args, **kw):
        send(port, outdir, *args, **kw)

    s("dollar_raw", "PUT", "/t/a%24b", "", "/t/a$b")
    s("dollar_encoded", "PUT", "/t/a%24b", "", "/t/a%24b")
    s("tilde_encoded", "PUT", "/t/a~b", "", "/t/a%7Eb")
    s("path_plus_is_plus", "PUT", "/t/a%2Bb", "", "/t/a+b")
    s("path_plus_not_space", "PUT", "/t/a%20b", "", "/t/a+b")
    s("path_2F_is_slash", "PUT", "/t/a/b", "", "/t/a%2Fb")
    s("path_2F_not_2F", "PUT", "/t/a%2Fb", "", "/t/a%2Fb")
    s("path_dot_segments_kept", "PUT", "/t/a/./b/../c", "", "/t/a/./b/../c")
    s("path_dot_segments_not_normalised", "PUT", "/t/a/c", "",
      "/t/a/./b/../c")
    s("path_lowercase_hex", "PUT", "/t/a%C3%A9", "", "/t/a%c3%a9")
    s("query_plus_is_space", "GET", "/t", "prefix=a%20b", "/t?prefix=a+b")
    s("query_plus_not_plus", "GET", "/t", "prefix=a%2Bb", "/t?prefix=a+b")
    s("query_raw_slash", "GET", "/t", "prefix=a%2Fb", "/t?prefix=a/b")
    s("query_order", "GET", "/t", "delimiter=%2F&prefix=a",
      "/t?prefix=a&delimiter=/")
    s("query_empty_pairs", "GET", "/t", "delimiter=%2F&prefix=a",
      "/t?prefix=a&&delimiter=/&")
    s("query_no_value", "GET", "/t", "acl=", "/t?acl")
    s("header_spaces_collapsed", "GET", "/t", "", "/t",
      signed=[("x-amz-meta-a", "b c d")],
      sent=[("x-amz-meta-a", "b   c \t d")])
    s("header_unsigned_user_agent", "GET", "/t", "", "/t",
      unsigned=[("User-Agent", "x")])
    s("header_unsigned_x_amz", "GET", "/t", "", "/t",
      unsigned=[("x-amz-meta-b", "x")])

    # a repeated header: AWS joins the values with ',', RGW 16.2 keeps the
    # last one
    for hdr, sent_name in (("x-amz-meta-a", "X-Amz-Meta-A"),
                           ("range", "Range")):
        for case, v in (("comma_space", "1, 2"), ("last", "2"),
                        ("comma", "1,2"), ("first", "1")):
            s("repeat_%s%s" % ("range_" if hdr == "range" else "", case),
              "GET", "/t", "", "/t", signed=[(hdr, v)],
              sent=[(hdr, "1"), (sent_name, "2")])


if __name__ == "__main__":
    main()
