#!/usr/bin/python3
"""Writes the seed corpora of the fuzz harnesses (tests/fuzz/corpus/).

Run from the repository root; the output is committed.  Small, real-looking
inputs: what S3, RGW and the clients send, with the harness's leading
selector byte where it has one (see each fuzz_<name>.c).
"""

import hashlib
import hmac
import os
import shutil
import urllib.parse

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
NS = "http://s3.amazonaws.com/doc/2006-03-01/"
DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'


def write(name, seeds):
    d = os.path.join(ROOT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for i, s in enumerate(seeds):
        if isinstance(s, str):
            s = s.encode()
        with open(os.path.join(d, "seed-%02d" % i), "wb") as f:
            f.write(s)


def s3xml():
    # byte 0: kind in bits 0-1 (delete, delete result, copy, complete)
    delete = DECL + ('<Delete xmlns="%s"><Quiet>true</Quiet>'
                     '<Object><Key>zarr/z1/a/0.0</Key></Object>'
                     '<Object><Key>zarr/z1/.zattrs</Key>'
                     '<VersionId>3sL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY</VersionId>'
                     '</Object></Delete>' % NS)
    result = DECL + ('<DeleteResult xmlns="%s"><Deleted><Key>zarr/z1/a/0.0'
                     '</Key></Deleted><Error><Key>zarr/z1/b</Key><Code>'
                     'AccessDenied</Code><Message>Access Denied</Message>'
                     '</Error></DeleteResult>' % NS)
    copy = DECL + ('<CopyObjectResult xmlns="%s"><LastModified>'
                   '2026-12-04T12:00:00.000Z</LastModified><ETag>'
                   '&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>'
                   '</CopyObjectResult>' % NS)
    part = DECL + ('<CopyPartResult><LastModified>2026-12-04T12:00:00.000Z'
                   '</LastModified><ETag>"b1946ac92492d2347c6235b4d2611184"'
                   '</ETag></CopyPartResult>')
    complete = DECL + ('<CompleteMultipartUploadResult xmlns="%s"><Location>'
                       'http://127.0.0.1:8000/b/zarr/z1/big</Location>'
                       '<Bucket>b</Bucket><Key>zarr/z1/big</Key><ETag>'
                       '"3858f62230ac3c915f300c664312c11f-2"</ETag>'
                       '</CompleteMultipartUploadResult>' % NS)
    error = DECL + ('<Error><Code>InternalError</Code><Message>We '
                    'encountered an internal error.</Message><RequestId>'
                    'tx000001</RequestId></Error>')
    padded = "\n\n  \n" + error
    return [b"\x00" + delete.encode(), b"\x04" + delete.encode(),
            b"\x01" + result.encode(), b"\x02" + copy.encode(),
            b"\x06" + part.encode(), b"\x03" + complete.encode(),
            b"\x02" + padded.encode(), b"\x01" + error.encode(),
            b"\x00<Delete><Object><Key>a&amp;b&#x10FFFF;</Key></Object>"
            b"</Delete>"]


def s3xml_error():
    error = DECL + ('<Error><Code>NoSuchKey</Code><Message>The specified '
                    'key does not exist.</Message><Key>zarr/z1/x</Key>'
                    '<RequestId>tx0000</RequestId><HostId>h</HostId></Error>')
    return [b"\x09\x20" + error.encode(),
            b"\x0b\x05NoSuchKeyThe key \xc3\xa9\t\r\n<&>\"'",
            b"\x03\x03abc\x00\x01\x7f\xc2\x80\xef\xbf\xbe\xff"]


def s3list():
    page = DECL + ('<ListBucketResult xmlns="%s"><Name>b</Name><Prefix>'
                   'zarr%%2Fz1%%2F</Prefix><KeyCount>2</KeyCount><MaxKeys>'
                   '1000</MaxKeys><EncodingType>url</EncodingType>'
                   '<IsTruncated>true</IsTruncated><NextContinuationToken>'
                   '1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM='
                   '</NextContinuationToken><Contents><Key>zarr%%2Fz1%%2Fa'
                   '+b%%2F0.0</Key><LastModified>2026-12-04T12:00:00.000Z'
                   '</LastModified><ETag>&quot;9b2cf535f27731c974343645a3985'
                   '328&quot;</ETag><Size>1024</Size><StorageClass>STANDARD'
                   '</StorageClass></Contents><Contents><Key>zarr%%2Fz1%%2F'
                   'caf%%C3%%A9</Key><ETag>"d41d8cd98f00b204e9800998ecf8427e'
                   '"</ETag><Size>0</Size></Contents></ListBucketResult>'
                   % NS)
    plain = DECL + ('<ListBucketResult><IsTruncated>false</IsTruncated>'
                    '<Contents><Key>zarr/z1/.zgroup</Key><ETag>"abc-2"'
                    '</ETag><Size>18446744073709551615</Size></Contents>'
                    '</ListBucketResult>')
    error = DECL + ('<Error><Code>NoSuchBucket</Code><Message>The specified'
                    ' bucket does not exist</Message></Error>')
    versions = DECL + ('<ListVersionsResult xmlns="%s"><Name>b</Name>'
                       '<NextKeyMarker>zarr%%2Fz%%2Fb</NextKeyMarker>'
                       '<NextVersionIdMarker>v3</NextVersionIdMarker>'
                       '<EncodingType>url</EncodingType><IsTruncated>true'
                       '</IsTruncated><Version><Key>zarr%%2Fz%%2Fa</Key>'
                       '<VersionId>v2</VersionId><IsLatest>true</IsLatest>'
                       '<ETag>"e2"</ETag><Size>2</Size></Version><Version>'
                       '<Key>zarr%%2Fz%%2Fa</Key><VersionId>v1</VersionId>'
                       '<IsLatest>false</IsLatest><ETag>"e1"</ETag><Size>1'
                       '</Size></Version><DeleteMarker><Key>zarr%%2Fz%%2Fb'
                       '</Key><VersionId>v3</VersionId><IsLatest>true'
                       '</IsLatest></DeleteMarker></ListVersionsResult>' % NS)
    other = DECL + ('<VersioningConfiguration xmlns="%s"><Status>Enabled'
                    '</Status></VersioningConfiguration>' % NS)
    rules = DECL + ('<LifecycleConfiguration xmlns="%s"><Rule><ID>a</ID>'
                    '<Filter/><Status>Enabled</Status>'
                    '<NoncurrentVersionExpiration><NoncurrentDays>1'
                    '</NoncurrentDays></NoncurrentVersionExpiration></Rule>'
                    '</LifecycleConfiguration>' % NS)
    upload = DECL + ('<InitiateMultipartUploadResult xmlns="%s"><Bucket>b'
                     '</Bucket><Key>k</Key><UploadId>2~abc</UploadId>'
                     '</InitiateMultipartUploadResult>' % NS)
    return [b"\x00" + page.encode(), b"\x09" + page.encode(),
            b"\x10" + plain.encode(), b"\x00" + error.encode(),
            b"\x00" + versions.encode(), b"\x21" + versions.encode(),
            b"\x00" + other.encode(), b"\x00" + rules.encode(),
            b"\x00" + upload.encode()]


def s3op():
    # byte 0: bit 0 copy source, bit 1 the query apart (after LF)
    return [b"\x00PUT /b/zarr/z1/a/0.0",
            b"\x01PUT /b/zarr/z1/a/0.0?x-id=CopyObject",
            b"\x00POST /b/zarr/z1/big?uploads",
            b"\x02PUT /b/zarr/z1/big\npartNumber=2&uploadId=2~abc%2Bd",
            b"\x03PUT /b/zarr/z1/big\nuploadId=2~abc&partNumber=1",
            b"\x00POST /b/zarr/z1/big?uploadId=2~abc",
            b"\x00DELETE /b/zarr/z1/big?uploadId=2~abc",
            b"\x00DELETE /b/zarr/z1/caf%C3%A9/x?versionId=v+1",
            b"\x00POST /b?delete",
            b"\x00POST /b/",
            b"\x00PUT /b/zarr/z1/x?acl",
            b"\x00GET /",
            b"\x00GET /b?list-type=2&prefix=zarr%2F&encoding-type=url",
            b"\x00PUT /b//x%2F..%2Fy",
            b"\x00PROPFIND /b/k"]


def access_key():
    # byte 0: bit 0 no header; AUTH LF ARGS
    return [b"\x00AWS4-HMAC-SHA256 Credential=ALICEACCESSKEY000001/20261204"
            b"/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-"
            b"sha256;x-amz-date, Signature=" + b"0" * 64,
            b"\x00AWS ALICEACCESSKEY000001:frJIUN8DYpKDtOLCwo//yllqDzg=",
            b"\x01\nX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
            b"ALICEACCESSKEY000001%2F20261204%2Fus-east-1%2Fs3%2F"
            b"aws4_request&X-Amz-Date=20261204T120000Z&X-Amz-Expires=3600",
            b"\x01\nAWSAccessKeyId=ALICE&Expires=1796385600&Signature=x%2By",
            b"\x00Bearer abc\nx=y"]


def copy_source():
    return [b"/b/zarr/z1/a/0.0", b"b/zarr/z1/caf%C3%A9",
            b"b/zarr/z1/a?versionId=3sL4kq", b"/b/a+b%2Fc",
            b"arn:aws:s3:us-west-2:123456789012:accesspoint/ap/object/k"]


def path():
    # byte 0: bits 0-3 prefix length, bit 4 the key starts after it
    return [b"\x05zarr/z1/a/0.0", b"\x05zarr/z1/.zgroup",
            b"\x05zarr/z1/a//b", b"\x05zarr/z1/a/../b", b"\x05zarr/z1/",
            b"\x00id/x", b"\x15zarr/other/x",
            b"\x05zarr/z1/caf\xc3\xa9/\xe6\x97\xa5",
            b"\x05zarr/z1/\xff", b"\x05zarr/z1/a\x00b"]


def digest():
    return [b".zattrs\n.zgroup\n0.0\n0.1",
            b"b\na\ncaf\xc3\xa9\n\xe6\x97\xa5\n\xf0\x9f\x98\x80\nA",
            b"x\x00y\n\"q\\\x7f\n\xff"]


def listing():
    tsv = (b"\x00a/0.0\t1024\t9b2cf535f27731c974343645a3985328\n"
           b"a/0.1\t512\t\"d41d8cd98f00b204e9800998ecf8427e\"\r\n"
           b".zattrs\t2\tabc-2\n\n"
           b"b\twith\ttabs\t0\te\n")
    jsonl = (b'\x01{"path":"a/0.0","size":1024,"etag":"9b2cf535"}\n'
             b'{"path":"caf\\u00e9/x","size":0,"etag":"\\"e\\""}\n'
             b'\n{"path":"n\\u0000l","size":1,"etag":"x"}\n')
    return [tsv, jsonl, b"\x00a\tx\te\n", b"\x00a\t1\te\rf\n",
            b"\x00a//b\t1\te\nc\t18446744073709551615\t\n"]


NOW = "20261204T120000Z"
KEY = "ALICEACCESSKEY000001"
SECRET = "alice-secret-key-0000000000000000000001"


def sign(method, path, query, headers, payload, presign=False):
    """A SigV4 request as the harness reads it: METHOD LF URI LF headers."""
    scope = "20261204/us-east-1/s3/aws4_request"
    hdrs = dict((k.lower(), v) for k, v in headers)
    signed = sorted(hdrs)
    q = list(query)
    if presign:
        q += [("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
              ("X-Amz-Credential", "%s/%s" % (KEY, scope)),
              ("X-Amz-Date", NOW), ("X-Amz-Expires", "3600"),
              ("X-Amz-SignedHeaders", ";".join(signed))]

    def enc(s):
        return urllib.parse.quote(s, safe="-_.~")

    cq = "&".join("%s=%s" % (enc(k), enc(v)) for k, v in sorted(q))
    creq = "\n".join([method, urllib.parse.quote(path, safe="/-_.~"), cq]
                     + ["%s:%s" % (h, hdrs[h].strip()) for h in signed]
                     + ["", ";".join(signed), payload])
    sts = "\n".join(["AWS4-HMAC-SHA256", NOW, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + SECRET).encode()
    for part in ["20261204", "us-east-1", "s3", "aws4_request"]:
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    if presign:
        q.append(("X-Amz-Signature", sig))
    else:
        headers = headers + [("Authorization",
                              "AWS4-HMAC-SHA256 Credential=%s/%s, "
                              "SignedHeaders=%s, Signature=%s"
                              % (KEY, scope, ";".join(signed), sig))]
    uri = urllib.parse.quote(path, safe="/-_.~")
    if q:
        uri += "?" + "&".join("%s=%s" % (enc(k), enc(v)) for k, v in q)
    out = "%s\n%s\n" % (method, uri)
    out += "".join("%s: %s\n" % h for h in headers)
    return b"\x00" + out.encode()


def auth():
    empty = hashlib.sha256(b"").hexdigest()
    seeds = [
        sign("GET", "/b/zarr/z1/a/0.0", [],
             [("Host", "127.0.0.1:8080"), ("x-amz-date", NOW),
              ("x-amz-content-sha256", empty)], empty),
        sign("PUT", "/b/zarr/z1/caf\u00e9 x", [("x-id", "PutObject")],
             [("Host", "127.0.0.1:8080"), ("x-amz-date", NOW),
              ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
              ("Content-Type", "application/octet-stream")],
             "UNSIGNED-PAYLOAD"),
        sign("GET", "/b/zarr/z1/a", [], [("Host", "127.0.0.1:8080")],
             "UNSIGNED-PAYLOAD", presign=True),
        b"\x00GET\n/b/k\nHost: h\nAuthorization: AWS AKID:c2ln\n",
        b"\x00GET\n/b/k\nHost: h\n",
        b"\x01# keys\nALICEACCESSKEY000001 alice-secret alice\n"
        b"BOBACCESSKEY0000001\tbob-secret\n\nbad\n",
        b'\x02{"user_id":"alice","display_name":"Alice","keys":[{"user":'
        b'"alice","access_key":"ALICEACCESSKEY000001","secret_key":'
        b'"alice-secret-key-0000000000000000000001"}],"swift_keys":[]}',
        b'\x02{"user_id":"alice","keys":[{"user":"alice:sub","access_key":'
        b'"OTHER","secret_key":"s"}]}',
    ]
    return seeds


def main():
    for name, fn in [("s3xml", s3xml), ("s3xml_error", s3xml_error),
                     ("s3list", s3list), ("s3op", s3op),
                     ("access_key", access_key),
                     ("copy_source", copy_source), ("path", path),
                     ("digest", digest), ("listing", listing),
                     ("auth", auth)]:
        write(name, fn())


if __name__ == "__main__":
    main()
