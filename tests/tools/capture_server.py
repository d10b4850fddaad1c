#!/usr/bin/python3
"""A tiny in-memory S3 look-alike that records every request's raw head.

    capture_server.py OUTDIR PORTFILE LABELFILE

Listens on 127.0.0.1 (a free port, written to PORTFILE), answers what
S3 clients need for uploads, copies, deletes and listings, and writes
the request line and headers of each request, byte for byte as received,
to OUTDIR/<label>-<op>.http: <label> is the content of LABELFILE at that
moment (the driver, capture_clients.sh, sets it per client), <op> what
the request is (put, upload_part, complete_mpu, list, ...).  Only the
first request of each name is kept.  Signatures are not checked here:
the unit test test_auth.c does that with the fixtures.
"""

import hashlib
import os
import re
import sys
import threading
import time
import urllib.parse
import uuid
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape, unescape

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


class Tee:
    """Records the lines of the head while they are read."""

    def __init__(self, f):
        self.f = f
        self.head = bytearray()
        self.recording = True

    def readline(self, *args):
        line = self.f.readline(*args)
        if self.recording:
            self.head += line
            if line in (b"\r\n", b"\n", b""):
                self.recording = False
        return line

    def read(self, *args):
        return self.f.read(*args)


class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.objects = {}       # "bucket/key" -> (body, etag, mtime)
        self.uploads = {}       # upload id -> {part number: (body, etag)}
        self.saved = set()


STORE = Store()


def xml(body):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode()


def aws_chunked(data):
    """the payload of an aws-chunked body"""
    out = bytearray()
    pos = 0
    while True:
        eol = data.index(b"\r\n", pos)
        size = int(data[pos:eol].split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            return bytes(out)
        out += data[pos:pos + size]
        pos += size + 2


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    outdir = "."
    labelfile = None

    def setup(self):
        super().setup()
        self.raw_rfile = self.rfile

    def handle_one_request(self):
        self.rfile = Tee(self.raw_rfile)
        super().handle_one_request()

    def log_message(self, fmt, *args):
        sys.stderr.write("capture: " + (fmt % args) + "\n")

    # the request

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
            data = bytes(data)
        else:
            data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if "aws-chunked" in self.headers.get("Content-Encoding", ""):
            data = aws_chunked(data)
        return data

    def split(self):
        path, _, query = self.path.partition("?")
        parts = urllib.parse.unquote(path).split("/", 2)
        bucket = parts[1] if len(parts) > 1 else ""
        key = parts[2] if len(parts) > 2 else ""
        q = urllib.parse.parse_qs(query, keep_blank_values=True)
        return bucket, key, q

    def op(self, bucket, key, q):
        m = self.command
        pre = ""
        if not bucket:
            return pre + "service"
        if not key:
            if m == "POST" and "delete" in q:
                return pre + "delete_objects"
            if m in ("GET", "HEAD"):
                for sub in ("location", "uploads", "versioning", "acl"):
                    if sub in q:
                        return pre + "get_" + sub
                return pre + ("list" if m == "GET" else "head_bucket")
            return pre + m.lower() + "_bucket"
        if m == "PUT":
            if "uploadId" in q:
                return pre + ("upload_part_copy"
                              if "x-amz-copy-source" in self.headers
                              else "upload_part")
            if "x-amz-copy-source" in self.headers:
                return pre + "copy"
            return pre + "put"
        if m == "POST":
            if "uploads" in q:
                return pre + "create_mpu"
            if "uploadId" in q:
                return pre + "complete_mpu"
            return pre + "post"
        if m == "DELETE":
            return pre + ("abort_mpu" if "uploadId" in q else "delete")
        return pre + m.lower()

    def record(self, op):
        label = "unlabelled"
        if self.labelfile:
            with open(self.labelfile) as f:
                label = f.read().strip() or label
        name = "%s-%s" % (label, op)
        with STORE.lock:
            if name in STORE.saved:
                return
            STORE.saved.add(name)
        with open(os.path.join(self.outdir, name + ".http"), "wb") as f:
            f.write(bytes(self.rfile.head))

    # the answers

    def reply(self, status, body=b"", headers=None, head=False):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body and "Content-Type" not in (headers or {}):
            self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amz-request-id", uuid.uuid4().hex[:16])
        self.end_headers()
        if body and not head:
            self.wfile.write(body)

    def error(self, status, code):
        self.reply(status, xml("<Error><Code>%s</Code><Message></Message>"
                               "</Error>" % code),
                   head=self.command == "HEAD")

    def dispatch(self):
        bucket, key, q = self.split()
        self.record(self.op(bucket, key, q))
        data = self.body()
        getattr(self, "s3_" + self.command.lower())(bucket, key, q, data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = dispatch

    def s3_head(self, bucket, key, q, data):
        self.s3_get(bucket, key, q, data, head=True)

    def s3_get(self, bucket, key, q, data, head=False):
        if not bucket:
            return self.reply(200, xml(
                "<ListAllMyBucketsResult %s><Buckets/>"
                "</ListAllMyBucketsResult>" % NS), head=head)
        if not key:
            if "location" in q:
                return self.reply(200, xml(
                    "<LocationConstraint %s></LocationConstraint>" % NS),
                    head=head)
            if "uploads" in q:
                return self.reply(200, xml(
                    "<ListMultipartUploadsResult %s><Bucket>%s</Bucket>"
                    "<IsTruncated>false</IsTruncated>"
                    "</ListMultipartUploadsResult>" % (NS, escape(bucket))),
                    head=head)
            if "versioning" in q or "acl" in q:
                return self.error(501, "NotImplemented")
            return self.listing(bucket, q, head)
        with STORE.lock:
            obj = STORE.objects.get(bucket + "/" + key)
        if obj is None:
            return self.error(404, "NoSuchKey")
        body, etag, mtime = obj
        self.reply(200, body, {
            "ETag": etag, "Content-Type": "binary/octet-stream",
            "Last-Modified": formatdate(mtime, usegmt=True),
        }, head=head)

    def listing(self, bucket, q, head):
        prefix = q.get("prefix", [""])[0]
        delim = q.get("delimiter", [""])[0]
        contents, prefixes = [], set()
        with STORE.lock:
            items = sorted(STORE.objects.items())
        for full, (body, etag, mtime) in items:
            b, _, k = full.partition("/")
            if b != bucket or not k.startswith(prefix):
                continue
            rest = k[len(prefix):]
            if delim and delim in rest:
                prefixes.add(prefix + rest.split(delim)[0] + delim)
                continue
            contents.append(
                "<Contents><Key>%s</Key><LastModified>%s</LastModified>"
                "<ETag>%s</ETag><Size>%d</Size>"
                "<StorageClass>STANDARD</StorageClass></Contents>"
                % (escape(k), time.strftime("%Y-%m-%dT%H:%M:%S.000Z",
                                            time.gmtime(mtime)),
                   escape(etag), len(body)))
        common = "".join("<CommonPrefixes><Prefix>%s</Prefix>"
                         "</CommonPrefixes>" % escape(p)
                         for p in sorted(prefixes))
        v2 = q.get("list-type", [""])[0] == "2"
        self.reply(200, xml(
            "<ListBucketResult %s><Name>%s</Name><Prefix>%s</Prefix>"
            "%s<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>"
            "%s%s</ListBucketResult>"
            % (NS, escape(bucket), escape(prefix),
               "<KeyCount>%d</KeyCount>" % (len(contents) + len(prefixes))
               if v2 else "<Marker></Marker>",
               "".join(contents), common)), head=head)

    def s3_put(self, bucket, key, q, data):
        if not key:
            return self.reply(200)
        src = self.headers.get("x-amz-copy-source")
        if src is not None:
            src = urllib.parse.unquote(src.split("?")[0]).lstrip("/")
            with STORE.lock:
                obj = STORE.objects.get(src)
            if obj is None:
                return self.error(404, "NoSuchKey")
            data = obj[0]
        etag = '"%s"' % hashlib.md5(data).hexdigest()
        if "uploadId" in q:
            with STORE.lock:
                parts = STORE.uploads.get(q["uploadId"][0])
                if parts is None:
                    return self.error(404, "NoSuchUpload")
                parts[int(q.get("partNumber", ["0"])[0])] = (data, etag)
            if src is not None:
                return self.reply(200, xml(
                    "<CopyPartResult><ETag>%s</ETag></CopyPartResult>"
                    % escape(etag)))
            return self.reply(200, headers={"ETag": etag})
        now = time.time()
        with STORE.lock:
            STORE.objects[bucket + "/" + key] = (data, etag, now)
        if src is not None:
            return self.reply(200, xml(
                "<CopyObjectResult><LastModified>%s</LastModified>"
                "<ETag>%s</ETag></CopyObjectResult>"
                % (time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now)),
                   escape(etag))))
        self.reply(200, headers={"ETag": etag})

    def s3_post(self, bucket, key, q, data):
        if "delete" in q:
            keys = [unescape(k) for k in
                    re.findall(r"<Key>(.*?)</Key>", data.decode())]
            quiet = b"<Quiet>true</Quiet>" in data
            with STORE.lock:
                for k in keys:
                    STORE.objects.pop(bucket + "/" + k, None)
            done = "" if quiet else "".join(
                "<Deleted><Key>%s</Key></Deleted>" % k for k in keys)
            return self.reply(200, xml("<DeleteResult %s>%s</DeleteResult>"
                                       % (NS, done)))
        if "uploads" in q:
            upload = uuid.uuid4().hex
            with STORE.lock:
                STORE.uploads[upload] = {}
            return self.reply(200, xml(
                "<InitiateMultipartUploadResult %s><Bucket>%s</Bucket>"
                "<Key>%s</Key><UploadId>%s</UploadId>"
                "</InitiateMultipartUploadResult>"
                % (NS, escape(bucket), escape(key), upload)))
        if "uploadId" in q:
            with STORE.lock:
                parts = STORE.uploads.pop(q["uploadId"][0], None)
            if parts is None:
                return self.error(404, "NoSuchUpload")
            body = b"".join(parts[n][0] for n in sorted(parts))
            md5 = hashlib.md5(b"".join(
                bytes.fromhex(parts[n][1].strip('"')) for n in sorted(parts)))
            etag = '"%s-%d"' % (md5.hexdigest(), len(parts))
            with STORE.lock:
                STORE.objects[bucket + "/" + key] = (body, etag, time.time())
            return self.reply(200, xml(
                "<CompleteMultipartUploadResult %s><Location>/%s/%s"
                "</Location><Bucket>%s</Bucket><Key>%s</Key><ETag>%s</ETag>"
                "</CompleteMultipartUploadResult>"
                % (NS, escape(bucket), escape(key), escape(bucket),
                   escape(key), escape(etag))))
        self.error(400, "InvalidRequest")

    def s3_delete(self, bucket, key, q, data):
        if "uploadId" in q:
            with STORE.lock:
                STORE.uploads.pop(q["uploadId"][0], None)
        elif key:
            with STORE.lock:
                STORE.objects.pop(bucket + "/" + key, None)
        self.reply(204)


def main():
    outdir, portfile, labelfile = sys.argv[1:4]
    Handler.outdir = outdir
    Handler.labelfile = labelfile
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(portfile + ".tmp", portfile)
    server.serve_forever()


if __name__ == "__main__":
    main()
