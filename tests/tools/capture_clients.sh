#!/bin/sh
# Regenerates tests/unit/auth_requests: runs real S3 clients against
# tests/tools/capture_server.py and keeps the raw head of each request.
#
#   tests/tools/capture_clients.sh [OUTDIR]     (default tests/unit/auth_requests)
#
# Every client signs with AWS's example key, region us-east-1, path-style
# addressing, over http.  Needs the Debian packages of the Makefile's
# DEPS_TEST (python3-boto3, python3-requests, awscli, s3cmd, rclone) and
# ../shared/pylib (s3fs) beside the repository; a client that is missing
# is skipped with a message.

set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/tests/unit/auth_requests}
pylib=${PYLIB:-$root/../shared/pylib}
[ -d "$pylib/s3fs" ] || pylib=/work/shared/pylib

tmp=$(mktemp -d /tmp/capture.XXXXXX)
trap 'kill $server 2>/dev/null || true; rm -rf "$tmp"' EXIT INT TERM

mkdir -p "$out"
echo setup > "$tmp/label"
/usr/bin/python3 "$here/capture_server.py" "$out" "$tmp/port" "$tmp/label" \
    2> "$tmp/server.log" &
server=$!

for _ in $(seq 50); do
    [ -s "$tmp/port" ] && break
    sleep 0.1
done

port=$(cat "$tmp/port")
url=http://127.0.0.1:$port

export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE
export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export AWS_CONFIG_FILE=$tmp/aws-config AWS_SHARED_CREDENTIALS_FILE=$tmp/aws-cred
export ENDPOINT=$url
printf '[default]\ns3 =\n    addressing_style = path\n' > "$AWS_CONFIG_FILE"
: > "$AWS_SHARED_CREDENTIALS_FILE"

label() {
    echo "$1" > "$tmp/label"
}

have() {
    command -v "$1" > /dev/null 2>&1 || { echo "skipped: no $1" >&2; return 1; }
}

head -c 1000 /dev/urandom > "$tmp/small.bin"
head -c 9000000 /dev/urandom > "$tmp/big.bin"

# boto3: put, presigned PUT (sent with requests), multipart, copy,
# delete_objects
label boto3
/usr/bin/python3 - "$tmp/label" <<'PY'
import os, sys
import boto3, botocore.config, requests

def label(s):
    open(sys.argv[1], "w").write(s + "\n")

s3 = boto3.client("s3", endpoint_url=os.environ["ENDPOINT"],
                  config=botocore.config.Config(
                      s3={"addressing_style": "path"}))
b = "capture"
s3.put_object(Bucket=b, Key="zarr/x/.zgroup", Body=b'{"zarr_format":2}')
s3.put_object(Bucket=b, Key="zarr/x/a b+c/0.0", Body=b"\0" * 100,
              Metadata={"note": "two  spaces"})
# botocore 1.29 presigns S3 URLs with SigV2 unless told otherwise
label("boto3-presigned_sigv2")
u = s3.generate_presigned_url("put_object", ExpiresIn=3600,
                              Params={"Bucket": b, "Key": "zarr/x/p q/0.1"})
r = requests.put(u, data=b"presigned body")
assert r.status_code == 200, r.text
label("boto3-presigned_v4")
v4 = boto3.client("s3", endpoint_url=os.environ["ENDPOINT"],
                  config=botocore.config.Config(
                      signature_version="s3v4",
                      s3={"addressing_style": "path"}))
u = v4.generate_presigned_url("put_object", ExpiresIn=3600,
                              Params={"Bucket": b, "Key": "zarr/x/p q/0.2"})
r = requests.put(u, data=b"presigned body")
assert r.status_code == 200, r.text
u = v4.generate_presigned_url("get_object", ExpiresIn=600,
                              Params={"Bucket": b, "Key": "zarr/x/p q/0.2"})
r = requests.get(u)
assert r.status_code == 200, r.text
label("boto3")
m = s3.create_multipart_upload(Bucket=b, Key="zarr/x/big")
p = s3.upload_part(Bucket=b, Key="zarr/x/big", UploadId=m["UploadId"],
                   PartNumber=1, Body=b"x" * 1000)
s3.complete_multipart_upload(
    Bucket=b, Key="zarr/x/big", UploadId=m["UploadId"],
    MultipartUpload={"Parts": [{"ETag": p["ETag"], "PartNumber": 1}]})
s3.copy_object(Bucket=b, Key="zarr/x/copy", CopySource=b + "/zarr/x/big")
s3.list_objects_v2(Bucket=b, Prefix="zarr/x/", Delimiter="/")
s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "zarr/x/copy"},
                                               {"Key": "zarr/x/big"}]})
s3.delete_object(Bucket=b, Key="zarr/x/.zgroup")
PY

# awscli: s3 cp (small, and > 8 MB: multipart), s3api put-object
if have /usr/bin/aws; then
    label awscli-cp
    /usr/bin/aws --endpoint-url "$url" s3 cp "$tmp/small.bin" \
        "s3://capture/zarr/y/small (1).bin" > /dev/null
    label awscli-cp_multipart
    /usr/bin/aws --endpoint-url "$url" s3 cp "$tmp/big.bin" \
        s3://capture/zarr/y/big.bin > /dev/null
    label awscli-s3api
    /usr/bin/aws --endpoint-url "$url" s3api put-object --bucket capture \
        --key 'zarr/y/api~x' --body "$tmp/small.bin" > /dev/null
    label awscli-rm
    /usr/bin/aws --endpoint-url "$url" s3 rm s3://capture/zarr/y/big.bin \
        > /dev/null
fi

# s3cmd put (SigV4)
if have s3cmd; then
    cat > "$tmp/s3cfg" <<CFG
[default]
access_key = $AWS_ACCESS_KEY_ID
secret_key = $AWS_SECRET_ACCESS_KEY
host_base = 127.0.0.1:$port
host_bucket = 127.0.0.1:$port
bucket_location = us-east-1
use_https = False
signature_v2 = False
CFG
    label s3cmd
    s3cmd -c "$tmp/s3cfg" -q put "$tmp/small.bin" \
        s3://capture/zarr/z/s3cmd.bin
    s3cmd -c "$tmp/s3cfg" -q del s3://capture/zarr/z/s3cmd.bin
fi

# rclone (aws-sdk-go)
if have rclone; then
    export RCLONE_CONFIG=$tmp/rclone.conf
    cat > "$RCLONE_CONFIG" <<CFG
[cap]
type = s3
provider = Other
access_key_id = $AWS_ACCESS_KEY_ID
secret_access_key = $AWS_SECRET_ACCESS_KEY
region = us-east-1
endpoint = $url
force_path_style = true
CFG
    label rclone
    env -u AWS_CA_BUNDLE rclone copyto "$tmp/small.bin" \
        cap:capture/zarr/r/rclone.bin
    env -u AWS_CA_BUNDLE rclone deletefile cap:capture/zarr/r/rclone.bin
fi

# s3fs (aiobotocore), as zarr writes through fsspec
if [ -d "$pylib/s3fs" ]; then
    label s3fs
    PYTHONPATH=$pylib /usr/bin/python3 - <<'PY'
import os
import s3fs
fs = s3fs.S3FileSystem(key=os.environ["AWS_ACCESS_KEY_ID"],
                       secret=os.environ["AWS_SECRET_ACCESS_KEY"],
                       client_kwargs={"endpoint_url": os.environ["ENDPOINT"],
                                      "region_name": "us-east-1"})
with fs.open("capture/zarr/f/0.0", "wb") as f:
    f.write(b"s3fs chunk")
fs.rm("capture/zarr/f/0.0")
PY
else
    echo "skipped: no s3fs in $pylib" >&2
fi

ls "$out"
