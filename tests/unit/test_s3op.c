
/*
 * S3 request classification: operations as boto3, awscli, s3cmd, rclone
 * and s3fs send them, decoding, malformed requests, access keys and copy
 * sources.
 */


#include "zarr_test.h"
#include "zarr_s3op.h"


#define BUF_SIZE  4096


typedef struct {
    int           rc;
    zarr_s3op_t   op;
    char          buf[BUF_SIZE];
} classified_t;


/* uri may hold the query ("/b/k?uploads"): args is taken from it */
static int
classify_full(const char *method, const char *uri, int copy,
    classified_t *c)
{
    zarr_s3op_request_t  req;

    memset(&req, 0, sizeof(req));
    req.method = method;
    req.method_len = strlen(method);
    req.uri = uri;
    req.uri_len = strlen(uri);
    req.args = NULL;
    req.copy_source = copy;

    c->rc = zarr_s3op_classify(&req, c->buf, sizeof(c->buf), &c->op);

    if (c->rc == ZARR_S3OP_OK) {
        assert_null(c->op.error);

    } else {
        assert_non_null(c->op.error);
    }

    return c->rc;
}


static void
expect(const char *method, const char *uri, int copy, zarr_s3op_e op,
    const char *bucket, const char *key)
{
    classified_t  c;

    if (classify_full(method, uri, copy, &c) != ZARR_S3OP_OK) {
        fail_msg("%s %s: rc %d (%s)", method, uri, c.rc, c.op.error);
    }

    if (c.op.op != op) {
        fail_msg("%s %s: op %s, expected %s", method, uri,
                 zarr_s3op_name(c.op.op), zarr_s3op_name(op));
    }

    assert_int_equal(c.op.bucket_len, strlen(bucket));
    assert_memory_equal(c.op.bucket, bucket, c.op.bucket_len);
    assert_int_equal(c.op.key_len, strlen(key));
    assert_memory_equal(c.op.key, key, c.op.key_len);
}


static void
expect_rc(const char *method, const char *uri, int copy, int rc)
{
    classified_t  c;

    if (classify_full(method, uri, copy, &c) != rc) {
        fail_msg("%s %s: rc %d, expected %d", method, uri, c.rc, rc);
    }
}


static void
assert_str(const char *p, size_t len, const char *expected)
{
    assert_non_null(p);
    assert_int_equal(len, strlen(expected));
    assert_memory_equal(p, expected, len);
}


static void
test_reads(void **state)
{
    (void) state;

    /* boto3 list_objects_v2 / awscli s3 ls */
    expect("GET", "/b?list-type=2&prefix=zarr%2F&encoding-type=url", 0,
           ZARR_S3OP_READ, "b", "");
    expect("GET", "/b/?list-type=2&delimiter=%2F", 0, ZARR_S3OP_READ,
           "b", "");
    expect("GET", "/b/zarr/x/0.0", 0, ZARR_S3OP_READ, "b", "zarr/x/0.0");
    expect("HEAD", "/b/zarr/x/.zarray", 0, ZARR_S3OP_READ, "b",
           "zarr/x/.zarray");
    expect("GET", "/b/zarr/x/0.0?x-id=GetObject", 0, ZARR_S3OP_READ, "b",
           "zarr/x/0.0");
    expect("GET", "/b/k?acl", 0, ZARR_S3OP_READ, "b", "k");
    expect("GET", "/b/k?tagging", 0, ZARR_S3OP_READ, "b", "k");
    expect("GET", "/b?uploads", 0, ZARR_S3OP_READ, "b", "");
    expect("GET", "/b?uploads&prefix=zarr%2F", 0, ZARR_S3OP_READ, "b", "");
    expect("GET", "/b/k?uploadId=2~abc&max-parts=1000", 0, ZARR_S3OP_READ,
           "b", "k");
    expect("GET", "/b?versioning", 0, ZARR_S3OP_READ, "b", "");
    expect("GET", "/b?location", 0, ZARR_S3OP_READ, "b", "");
    expect("OPTIONS", "/b/k", 0, ZARR_S3OP_READ, "b", "k");
    expect("HEAD", "/b", 0, ZARR_S3OP_READ, "b", "");

    /* a read with a copy-source header is still a read */
    expect("GET", "/b/k", 1, ZARR_S3OP_READ, "b", "k");

    /* reads are not refused for a query they do not need */
    expect("GET", "/b?prefix=100%", 0, ZARR_S3OP_READ, "b", "");
    expect("GET", "/b/k?uploadId=1&uploadId=2", 0, ZARR_S3OP_READ, "b", "k");
    expect("GET", "/b/k?%zz", 0, ZARR_S3OP_READ, "b", "k");
}


static void
test_service(void **state)
{
    classified_t  c;

    (void) state;

    expect("GET", "/", 0, ZARR_S3OP_SERVICE, "", "");
    expect("GET", "/?x-id=ListBuckets", 0, ZARR_S3OP_SERVICE, "", "");
    expect("PUT", "/", 0, ZARR_S3OP_SERVICE, "", "");

    assert_int_equal(classify_full("GET", "/", 0, &c), ZARR_S3OP_OK);
    assert_string_equal(zarr_s3op_name(c.op.op), "service");
}


static void
test_put(void **state)
{
    classified_t  c;

    (void) state;

    expect("PUT", "/b/zarr/x/0.0", 0, ZARR_S3OP_PUT_OBJECT, "b",
           "zarr/x/0.0");
    expect("PUT", "/b/zarr/x/0.0?x-id=PutObject", 0, ZARR_S3OP_PUT_OBJECT,
           "b", "zarr/x/0.0");

    /* a boto3 presigned PUT */
    assert_int_equal(classify_full("PUT",
        "/b/zarr/x/0.0?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1"
        "%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z"
        "&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d"
        "157751f604d404", 0, &c), ZARR_S3OP_OK);
    assert_int_equal(c.op.op, ZARR_S3OP_PUT_OBJECT);
    assert_str(c.op.key, c.op.key_len, "zarr/x/0.0");
    assert_null(c.op.upload_id);
    assert_null(c.op.part_number);

    /* PUT ?uploads or ?delete is still an upload of the object */
    expect("PUT", "/b/k?uploads", 0, ZARR_S3OP_PUT_OBJECT, "b", "k");
    expect("PUT", "/b/k?delete", 0, ZARR_S3OP_PUT_OBJECT, "b", "k");

    assert_string_equal(zarr_s3op_name(ZARR_S3OP_PUT_OBJECT), "put");
}


/* RGW's appendable objects: the parameter is there, value or not */

static void
test_put_append(void **state)
{
    size_t         i;
    classified_t   c;
    const char    *yes[] = {
        "/b/k?append", "/b/k?append=", "/b/k?append&position=0",
        "/b/k?position=3&append=&x-id=PutObject", "/b/k?appen%64",
        "/b/k?&append&", "/b/k?append=false"
    };
    const char    *no[] = {
        "/b/k", "/b/k?Append", "/b/k?appendx", "/b/k?position=0",
        "/b/k?x-append", "/b/k?x=append"
    };

    (void) state;

    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        assert_int_equal(classify_full("PUT", yes[i], 0, &c), ZARR_S3OP_OK);
        assert_int_equal(c.op.op, ZARR_S3OP_PUT_OBJECT);
        if (!c.op.append) {
            fail_msg("not an append: %s", yes[i]);
        }
    }

    for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        assert_int_equal(classify_full("PUT", no[i], 0, &c), ZARR_S3OP_OK);
        assert_int_equal(c.op.op, ZARR_S3OP_PUT_OBJECT);
        if (c.op.append) {
            fail_msg("taken for an append: %s", no[i]);
        }
    }

    /* a copy too; multipart steps and other methods never */
    assert_int_equal(classify_full("PUT", "/b/k?append", 1, &c),
                     ZARR_S3OP_OK);
    assert_int_equal(c.op.op, ZARR_S3OP_COPY_OBJECT);
    assert_true(c.op.append);
    assert_int_equal(classify_full("PUT", "/b/k?append&partNumber=1"
                                   "&uploadId=u", 0, &c), ZARR_S3OP_OK);
    assert_int_equal(c.op.op, ZARR_S3OP_UPLOAD_PART);
    assert_false(c.op.append);
    assert_int_equal(classify_full("DELETE", "/b/k?append", 0, &c),
                     ZARR_S3OP_OK);
    assert_false(c.op.append);
}


static int
chunked(const char *sha, const char *enc)
{
    return zarr_s3_aws_chunked(sha, sha ? strlen(sha) : 0, enc,
                               enc ? strlen(enc) : 0);
}


static void
test_aws_chunked(void **state)
{
    (void) state;

    assert_int_equal(chunked("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", NULL), 1);
    assert_int_equal(chunked("STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                             "aws-chunked"), 1);
    assert_int_equal(chunked(NULL, NULL), 0);
    assert_int_equal(chunked("UNSIGNED-PAYLOAD", NULL), 0);
    assert_int_equal(chunked("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934"
                             "ca495991b7852b855", "gzip"), 0);
    assert_int_equal(chunked("streaming-aws4-hmac-sha256-payload", NULL), 0);
    assert_int_equal(chunked("STREAMING", NULL), 0);
    assert_int_equal(chunked(NULL, ""), 0);
    assert_int_equal(chunked(NULL, "aws-chunkedx, gzip"), 0);

    /* only the encoding says so: the backends differ */
    assert_int_equal(chunked(NULL, "aws-chunked"), -1);
    assert_int_equal(chunked("UNSIGNED-PAYLOAD", "gzip, AWS-Chunked "), -1);
    assert_int_equal(chunked(NULL, " ,aws-chunked,"), -1);
}


static void
test_copy(void **state)
{
    (void) state;

    expect("PUT", "/b/zarr/x/0.1", 1, ZARR_S3OP_COPY_OBJECT, "b",
           "zarr/x/0.1");
    expect("PUT", "/b/zarr/x/0.1?x-id=CopyObject", 1, ZARR_S3OP_COPY_OBJECT,
           "b", "zarr/x/0.1");
    assert_string_equal(zarr_s3op_name(ZARR_S3OP_COPY_OBJECT), "copy");
}


static void
test_multipart(void **state)
{
    classified_t  c;

    (void) state;

    /* boto3 / awscli */
    expect("POST", "/b/zarr/x/0.0?uploads", 0, ZARR_S3OP_CREATE_MPU, "b",
           "zarr/x/0.0");
    /* rclone, s3cmd */
    expect("POST", "/b/zarr/x/0.0?uploads=", 0, ZARR_S3OP_CREATE_MPU, "b",
           "zarr/x/0.0");
    expect("POST", "/b/k?uploads&x-id=CreateMultipartUpload", 0,
           ZARR_S3OP_CREATE_MPU, "b", "k");

    assert_int_equal(classify_full("PUT",
        "/b/zarr/x/0.0?partNumber=1&uploadId=2~abc", 0, &c), ZARR_S3OP_OK);
    assert_int_equal(c.op.op, ZARR_S3OP_UPLOAD_PART);
    assert_str(c.op.upload_id, c.op.upload_id_len, "2~abc");
    assert_str(c.op.part_number, c.op.part_number_len, "1");
    assert_string_equal(zarr_s3op_name(c.op.op), "mpu_part");

    /* any order, encoded values, x-id */
    assert_int_equal(classify_full("PUT",
        "/b/k?uploadId=VXBsb2FkSUQ%3D%2B.x&x-id=UploadPart&partNumber=10000",
        0, &c), ZARR_S3OP_OK);
    assert_int_equal(c.op.op, ZARR_S3OP_UPLOAD_PART);
    assert_str(c.op.upload_id, c.op.upload_id_len, "VXBsb2FkSUQ=+.x");
    assert_str(c.op.part_number, c.op.part_number_len, "10000");

    /* encoded parameter names match too */
    assert_int_equal(classify_full("PUT",
        "/b/k?%75ploadId=u&part%4Eumber=2", 0, &c), ZARR_S3OP_OK);
    assert_int_equal(c.op.op, ZARR_S3OP_UPLOAD_PART);

    assert_int_equal(classify_full("PUT",
        "/b/zarr/x/0.0?partNumber=3&uploadId=2~abc", 1, &c), ZARR_S3OP_OK);
    assert_int_equal(c.op.op, ZARR_S3OP_UPLOAD_PART_COPY);
    assert_string_equal(zarr_s3op_name(c.op.op), "mpu_part_copy");

    assert_int_equal(classify_full("POST", "/b/zarr/x/0.0?uploadId=2~abc",
                                   0, &c), ZARR_S3OP_OK);
    assert_int_equal(c.op.op, ZARR_S3OP_COMPLETE_MPU);
    assert_str(c.op.upload_id, c.op.upload_id_len, "2~abc");
    assert_null(c.op.part_number);
    assert_string_equal(zarr_s3op_name(c.op.op), "mpu_complete");

    /* RGW completes when both are there */
    expect("POST", "/b/k?uploads&uploadId=u", 0, ZARR_S3OP_COMPLETE_MPU, "b",
           "k");

    assert_int_equal(classify_full("DELETE", "/b/zarr/x/0.0?uploadId=2~abc",
                                   0, &c), ZARR_S3OP_OK);
    assert_int_equal(c.op.op, ZARR_S3OP_ABORT_MPU);
    assert_str(c.op.upload_id, c.op.upload_id_len, "2~abc");
    assert_string_equal(zarr_s3op_name(c.op.op), "mpu_abort");

    assert_string_equal(zarr_s3op_name(ZARR_S3OP_CREATE_MPU), "mpu_create");
}


static void
test_multipart_ambiguous(void **state)
{
    (void) state;

    /* one of the two: RGW and AWS would not agree */
    expect_rc("PUT", "/b/k?partNumber=1", 0, ZARR_S3OP_BAD_ARGS);
    expect_rc("PUT", "/b/k?uploadId=u", 0, ZARR_S3OP_BAD_ARGS);
    expect_rc("PUT", "/b/k?uploadId=u", 1, ZARR_S3OP_BAD_ARGS);

    /* empty: RGW deletes the object on "DELETE ?uploadId=" */
    expect_rc("DELETE", "/b/k?uploadId=", 0, ZARR_S3OP_BAD_ARGS);
    expect_rc("DELETE", "/b/k?uploadId", 0, ZARR_S3OP_BAD_ARGS);
    expect_rc("POST", "/b/k?uploadId=", 0, ZARR_S3OP_BAD_ARGS);
    expect_rc("PUT", "/b/k?partNumber=&uploadId=u", 0, ZARR_S3OP_BAD_ARGS);

    /* repeated */
    expect_rc("DELETE", "/b/k?uploadId=a&uploadId=b", 0, ZARR_S3OP_BAD_ARGS);
    expect_rc("PUT", "/b/k?partNumber=1&uploadId=u&partNumber=2", 0,
              ZARR_S3OP_BAD_ARGS);

    /* a write whose query cannot be decoded */
    expect_rc("PUT", "/b/k?partNumber=1&uploadId=%zz", 0,
              ZARR_S3OP_BAD_ARGS);
    expect_rc("PUT", "/b/k?x=%4", 0, ZARR_S3OP_BAD_ARGS);
    expect_rc("DELETE", "/b/k?upload%GGId=u", 0, ZARR_S3OP_BAD_ARGS);
    expect_rc("POST", "/b?delete&%", 0, ZARR_S3OP_BAD_ARGS);
}


static void
test_delete(void **state)
{
    classified_t  c;

    (void) state;

    expect("DELETE", "/b/zarr/x/0.0", 0, ZARR_S3OP_DELETE_OBJECT, "b",
           "zarr/x/0.0");
    expect("DELETE", "/b/zarr/x/0.0?x-id=DeleteObject", 0,
           ZARR_S3OP_DELETE_OBJECT, "b", "zarr/x/0.0");

    assert_int_equal(classify_full("DELETE",
        "/b/k?versionId=3HL4kqtJlcpXroDTDmJ%2BrmSpXd3dIbrHY", 0, &c),
        ZARR_S3OP_OK);
    assert_int_equal(c.op.op, ZARR_S3OP_DELETE_OBJECT);
    assert_str(c.op.version_id, c.op.version_id_len,
               "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY");
    assert_string_equal(zarr_s3op_name(c.op.op), "delete");

    /* boto3: POST /b?delete; older clients and s3cmd: /b/?delete= */
    expect("POST", "/b?delete", 0, ZARR_S3OP_DELETE_OBJECTS, "b", "");
    expect("POST", "/b/?delete=", 0, ZARR_S3OP_DELETE_OBJECTS, "b", "");
    expect("POST", "/b?delete&x-id=DeleteObjects", 0,
           ZARR_S3OP_DELETE_OBJECTS, "b", "");
    assert_string_equal(zarr_s3op_name(ZARR_S3OP_DELETE_OBJECTS),
                        "multi_delete");

    /* a name that only starts like it */
    expect("POST", "/b?deletex", 0, ZARR_S3OP_POST_OBJECT, "b", "");
    expect("POST", "/b?Delete", 0, ZARR_S3OP_POST_OBJECT, "b", "");
}


static void
test_other_writes(void **state)
{
    (void) state;

    expect("PUT", "/b/k?acl", 0, ZARR_S3OP_OTHER_WRITE, "b", "k");
    expect("PUT", "/b/k?acl", 1, ZARR_S3OP_OTHER_WRITE, "b", "k");
    expect("PUT", "/b/k?tagging", 0, ZARR_S3OP_OTHER_WRITE, "b", "k");
    expect("PUT", "/b/k?retention", 0, ZARR_S3OP_OTHER_WRITE, "b", "k");
    expect("PUT", "/b/k?legal-hold", 0, ZARR_S3OP_OTHER_WRITE, "b", "k");
    expect("PUT", "/b/k?versionId=v&acl=", 0, ZARR_S3OP_OTHER_WRITE, "b",
           "k");
    expect("DELETE", "/b/k?tagging", 0, ZARR_S3OP_OTHER_WRITE, "b", "k");
    expect("POST", "/b/k?restore", 0, ZARR_S3OP_OTHER_WRITE, "b", "k");
    expect("POST", "/b/k?select&select-type=2", 0, ZARR_S3OP_OTHER_WRITE,
           "b", "k");
    expect("PATCH", "/b/k", 0, ZARR_S3OP_OTHER_WRITE, "b", "k");
    expect("put", "/b/k", 0, ZARR_S3OP_OTHER_WRITE, "b", "k");
    assert_string_equal(zarr_s3op_name(ZARR_S3OP_OTHER_WRITE), "other");

    /* form uploads: the key is in the body */
    expect("POST", "/b", 0, ZARR_S3OP_POST_OBJECT, "b", "");
    expect("POST", "/b/", 0, ZARR_S3OP_POST_OBJECT, "b", "");
    expect("POST", "/b/k", 0, ZARR_S3OP_POST_OBJECT, "b", "k");
    expect("POST", "/b/k?delete", 0, ZARR_S3OP_POST_OBJECT, "b", "k");
    assert_string_equal(zarr_s3op_name(ZARR_S3OP_POST_OBJECT), "post");
}


static void
test_bucket_ops(void **state)
{
    (void) state;

    expect("PUT", "/b", 0, ZARR_S3OP_BUCKET_OP, "b", "");
    expect("PUT", "/b/", 0, ZARR_S3OP_BUCKET_OP, "b", "");
    expect("DELETE", "/b", 0, ZARR_S3OP_BUCKET_OP, "b", "");
    expect("DELETE", "/b/", 0, ZARR_S3OP_BUCKET_OP, "b", "");
    expect("PUT", "/b?policy", 0, ZARR_S3OP_BUCKET_OP, "b", "");
    expect("PUT", "/b?versioning", 0, ZARR_S3OP_BUCKET_OP, "b", "");
    expect("DELETE", "/b?cors", 0, ZARR_S3OP_BUCKET_OP, "b", "");
    expect("DELETE", "/b?uploadId=u", 0, ZARR_S3OP_BUCKET_OP, "b", "");
    expect("PUT", "/b?partNumber=1", 0, ZARR_S3OP_BUCKET_OP, "b", "");
    expect("POST", "/b?mdsearch", 0, ZARR_S3OP_BUCKET_OP, "b", "");
    expect("PATCH", "/b", 0, ZARR_S3OP_BUCKET_OP, "b", "");
    assert_string_equal(zarr_s3op_name(ZARR_S3OP_BUCKET_OP), "bucket");
    assert_string_equal(zarr_s3op_name(ZARR_S3OP_READ), "read");
}


static void
test_key_decoding(void **state)
{
    classified_t  c;

    (void) state;

    expect("PUT", "/b/zarr%2Fx%2F0.0", 0, ZARR_S3OP_PUT_OBJECT, "b",
           "zarr/x/0.0");
    expect("PUT", "/b/zarr/x/a%20b", 0, ZARR_S3OP_PUT_OBJECT, "b",
           "zarr/x/a b");

    /* '+' in a path is a plus; %2B too */
    expect("PUT", "/b/zarr/x/a+b", 0, ZARR_S3OP_PUT_OBJECT, "b",
           "zarr/x/a+b");
    expect("PUT", "/b/zarr/x/a%2Bb", 0, ZARR_S3OP_PUT_OBJECT, "b",
           "zarr/x/a+b");

    /* UTF-8, encoded or raw */
    expect("PUT", "/b/zarr/x/%C3%A9t%C3%A9", 0, ZARR_S3OP_PUT_OBJECT, "b",
           "zarr/x/\xc3\xa9t\xc3\xa9");
    expect("PUT", "/b/zarr/x/\xc3\xa9t\xc3\xa9", 0, ZARR_S3OP_PUT_OBJECT,
           "b", "zarr/x/\xc3\xa9t\xc3\xa9");

    /* lowercase hex, reserved characters */
    expect("PUT", "/b/k%3fx%3D1%26y%23z", 0, ZARR_S3OP_PUT_OBJECT, "b",
           "k?x=1&y#z");

    /* "//" is kept: the key rules reject it later */
    expect("PUT", "/b//x", 0, ZARR_S3OP_PUT_OBJECT, "b", "/x");
    expect("PUT", "/b/zarr//x", 0, ZARR_S3OP_PUT_OBJECT, "b", "zarr//x");
    expect("PUT", "/b/zarr/x/", 0, ZARR_S3OP_PUT_OBJECT, "b", "zarr/x/");
    expect("PUT", "/b/zarr/x/./y", 0, ZARR_S3OP_PUT_OBJECT, "b",
           "zarr/x/./y");

    /* a NUL is decoded as any byte */
    assert_int_equal(classify_full("PUT", "/b/a%00b", 0, &c), ZARR_S3OP_OK);
    assert_int_equal(c.op.key_len, 3);
    assert_memory_equal(c.op.key, "a\0b", 3);

    /* the bucket is decoded as well */
    expect("GET", "/my%2Dbucket/k", 0, ZARR_S3OP_READ, "my-bucket", "k");
}


static void
test_bad_uri(void **state)
{
    (void) state;

    expect_rc("PUT", "/b/k%", 0, ZARR_S3OP_BAD_URI);
    expect_rc("PUT", "/b/k%2", 0, ZARR_S3OP_BAD_URI);
    expect_rc("PUT", "/b/k%zz", 0, ZARR_S3OP_BAD_URI);
    expect_rc("PUT", "/b/k%2G", 0, ZARR_S3OP_BAD_URI);
    expect_rc("GET", "/b/k%", 0, ZARR_S3OP_BAD_URI);
    expect_rc("GET", "/b%/k", 0, ZARR_S3OP_BAD_URI);
    expect_rc("PUT", "", 0, ZARR_S3OP_BAD_URI);
    expect_rc("PUT", "b/k", 0, ZARR_S3OP_BAD_URI);
    expect_rc("PUT", "http://host/b/k", 0, ZARR_S3OP_BAD_URI);
    expect_rc("PUT", "//k", 0, ZARR_S3OP_BAD_URI);
    expect_rc("GET", "//", 0, ZARR_S3OP_BAD_URI);
    expect_rc("PUT", "/b%2Fc/k", 0, ZARR_S3OP_BAD_URI);
    expect_rc("PUT", "/%2F", 0, ZARR_S3OP_BAD_URI);
}


static void
test_args_given(void **state)
{
    int                  rc;
    char                 buf[64];
    zarr_s3op_t          op;
    zarr_s3op_request_t  req;

    (void) state;

    /* the query passed on its own; a '?' in uri is then a plain byte */

    memset(&req, 0, sizeof(req));
    req.method = "DELETE";
    req.method_len = 6;
    req.uri = "/b/zarr/k";
    req.uri_len = 9;
    req.args = "uploadId=2~x";
    req.args_len = 12;

    rc = zarr_s3op_classify(&req, buf, sizeof(buf), &op);
    assert_int_equal(rc, ZARR_S3OP_OK);
    assert_int_equal(op.op, ZARR_S3OP_ABORT_MPU);
    assert_str(op.upload_id, op.upload_id_len, "2~x");

    req.args = "";
    req.args_len = 0;
    rc = zarr_s3op_classify(&req, buf, sizeof(buf), &op);
    assert_int_equal(rc, ZARR_S3OP_OK);
    assert_int_equal(op.op, ZARR_S3OP_DELETE_OBJECT);

    /* not NUL-terminated input: only the lengths count */
    req.method = "PUTX";
    req.method_len = 3;
    req.uri = "/b/kXYZ";
    req.uri_len = 4;
    req.args = "partNumber=1&uploadId=9";
    req.args_len = 12;
    rc = zarr_s3op_classify(&req, buf, sizeof(buf), &op);
    assert_int_equal(rc, ZARR_S3OP_BAD_ARGS);

    req.args_len = 0;
    rc = zarr_s3op_classify(&req, buf, sizeof(buf), &op);
    assert_int_equal(rc, ZARR_S3OP_OK);
    assert_int_equal(op.op, ZARR_S3OP_PUT_OBJECT);
    assert_str(op.key, op.key_len, "k");

    /* the buffer must hold uri and args */
    req.args = "uploads";
    req.args_len = 7;
    rc = zarr_s3op_classify(&req, buf, ZARR_S3OP_BUF_SIZE(4, 7) - 1, &op);
    assert_int_equal(rc, ZARR_S3OP_SMALL_BUF);
    rc = zarr_s3op_classify(&req, buf, ZARR_S3OP_BUF_SIZE(4, 7), &op);
    assert_int_equal(rc, ZARR_S3OP_OK);
}


static void
test_buffer_exact(void **state)
{
    size_t               n;
    char                *buf;
    const char          *uri;
    zarr_s3op_t          op;
    zarr_s3op_request_t  req;

    (void) state;

    /* every value decoded: the buffer of exactly the promised size */

    uri = "/b/k?partNumber=12&uploadId=abc&versionId=v1";
    n = strlen(uri);

    buf = malloc(n);
    assert_non_null(buf);

    memset(&req, 0, sizeof(req));
    req.method = "PUT";
    req.method_len = 3;
    req.uri = uri;
    req.uri_len = n;

    assert_int_equal(zarr_s3op_classify(&req, buf, n - 1, &op),
                     ZARR_S3OP_OK);
    assert_int_equal(op.op, ZARR_S3OP_UPLOAD_PART);
    assert_str(op.part_number, op.part_number_len, "12");
    assert_str(op.upload_id, op.upload_id_len, "abc");
    assert_str(op.version_id, op.version_id_len, "v1");
    assert_str(op.bucket, op.bucket_len, "b");
    assert_str(op.key, op.key_len, "k");

    free(buf);
}


static void
test_names(void **state)
{
    int  op;

    (void) state;

    for (op = ZARR_S3OP_READ; op <= ZARR_S3OP_SERVICE; op++) {
        assert_string_not_equal(zarr_s3op_name(op), "unknown");
    }

    assert_string_equal(zarr_s3op_name((zarr_s3op_e) 99), "unknown");
}


/* access keys */


static int
access_key(const char *auth, const char *args, char *out)
{
    int          rc;
    char         buf[ZARR_S3_ACCESS_KEY_MAX];
    size_t       len;
    const char  *key;

    rc = zarr_s3_access_key(auth, strlen(auth), args, strlen(args), buf,
                            sizeof(buf), &key, &len);

    memcpy(out, key, len);
    out[len] = '\0';

    return rc;
}


static void
test_access_key_header(void **state)
{
    char  key[ZARR_S3_ACCESS_KEY_MAX + 1];

    (void) state;

    /* as botocore sends it */
    assert_int_equal(access_key(
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/"
        "us-east-1/s3/aws4_request, SignedHeaders=host;range;"
        "x-amz-content-sha256;x-amz-date, Signature=fe5f80f77d5fa3beca038a"
        "248ff027d0445342fe2855ddc963176630326f1024", "", key), 0);
    assert_string_equal(key, "AKIAIOSFODNN7EXAMPLE");

    /* without spaces (minio-go, rclone) */
    assert_int_equal(access_key(
        "AWS4-HMAC-SHA256 Credential=AK/20240101/us-east-1/s3/aws4_request,"
        "SignedHeaders=host;x-amz-date,Signature=abc", "", key), 0);
    assert_string_equal(key, "AK");

    /* other orders, extra spaces, tabs, lowercase name */
    assert_int_equal(access_key(
        "  AWS4-HMAC-SHA256   SignedHeaders=host ,  Signature=abc,"
        "\tcredential = user:sub/20240101/default/s3/aws4_request  ", "",
        key), 0);
    assert_string_equal(key, "user:sub");

    /* SigV4a */
    assert_int_equal(access_key(
        "AWS4-ECDSA-P256-SHA256 Credential=AKV4A/20240101/s3/aws4_request, "
        "SignedHeaders=host, Signature=3045", "", key), 0);
    assert_string_equal(key, "AKV4A");

    /* SigV2 (s3cmd --signature-v2) */
    assert_int_equal(access_key("AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLC"
                                "wo//yllqDzg=", "", key), 0);
    assert_string_equal(key, "AKIAIOSFODNN7EXAMPLE");
    assert_int_equal(access_key("AWS  AK :sig", "", key), 0);
    assert_string_equal(key, "AK");

    /* the header wins over the query */
    assert_int_equal(access_key("AWS hdr:sig", "AWSAccessKeyId=query", key),
                     0);
    assert_string_equal(key, "hdr");
}


static void
test_access_key_bad(void **state)
{
    char  key[ZARR_S3_ACCESS_KEY_MAX + 1];

    (void) state;

    assert_int_equal(access_key("AWS4-HMAC-SHA256 SignedHeaders=host, "
                                "Signature=abc", "", key), -1);
    assert_string_equal(key, "");
    assert_int_equal(access_key("AWS4-HMAC-SHA256 Credential=AKID, "
                                "Signature=abc", "", key), -1);
    assert_int_equal(access_key("AWS4-HMAC-SHA256 Credential=/2024/r/s3/"
                                "aws4_request", "", key), -1);
    assert_int_equal(access_key("AWS4-HMAC-SHA256", "", key), -1);
    assert_int_equal(access_key("AWS AKID", "", key), -1);
    assert_int_equal(access_key("AWS :sig", "", key), -1);
    assert_int_equal(access_key("AWS", "", key), -1);
    assert_int_equal(access_key("Bearer xyz", "", key), -1);
    assert_int_equal(access_key("Basic dXNlcjpwYXNz", "", key), -1);
    assert_string_equal(key, "");
}


static void
test_access_key_presigned(void **state)
{
    int          rc;
    char         key[ZARR_S3_ACCESS_KEY_MAX + 1], small[4];
    size_t       len;
    const char  *k, *args;

    (void) state;

    assert_int_equal(access_key("",
        "X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1"
        "%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z"
        "&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d"
        "157751f604d404", key), 0);
    assert_string_equal(key, "AKIAIOSFODNN7EXAMPLE");

    /* an unencoded '/' works too; order does not matter */
    assert_int_equal(access_key("  ",
        "partNumber=1&X-Amz-Credential=AK%3Ax/20130524/us-east-1/s3/"
        "aws4_request&uploadId=u", key), 0);
    assert_string_equal(key, "AK:x");

    /* SigV2 presigned (s3cmd signurl) */
    assert_int_equal(access_key("",
        "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1141889120"
        "&Signature=vjbyPxybdZaNmGa%2ByT272YEAiv4%3D", key), 0);
    assert_string_equal(key, "AKIAIOSFODNN7EXAMPLE");

    /* anonymous */
    assert_int_equal(access_key("", "", key), 0);
    assert_string_equal(key, "");
    assert_int_equal(access_key("", "list-type=2&prefix=zarr%2F", key), 0);
    assert_string_equal(key, "");

    /* malformed */
    assert_int_equal(access_key("", "X-Amz-Credential=AK%zz%2Fx", key), -1);
    assert_int_equal(access_key("", "X-Amz-Credential=AKID", key), -1);
    assert_int_equal(access_key("", "X-Amz-Credential=%2Fx", key), -1);
    assert_int_equal(access_key("", "X-Amz-Credential=", key), -1);
    assert_int_equal(access_key("", "AWSAccessKeyId=", key), -1);

    /* nginx's absent values: NULL data */
    rc = zarr_s3_access_key(NULL, 0, NULL, 0, key, sizeof(key), &k, &len);
    assert_int_equal(rc, 0);
    assert_int_equal(len, 0);
    args = "AWSAccessKeyId=AK";
    rc = zarr_s3_access_key(NULL, 0, args, strlen(args), key, sizeof(key),
                            &k, &len);
    assert_int_equal(rc, 0);
    assert_str(k, len, "AK");

    /* a key longer than the buffer */
    args = "X-Amz-Credential=ABCDEFGH%2Fx";
    rc = zarr_s3_access_key("", 0, args, strlen(args), small, sizeof(small),
                            &k, &len);
    assert_int_equal(rc, -1);
    assert_int_equal(len, 0);

    rc = zarr_s3_access_key("", 0, args, strlen(args), key, 8, &k, &len);
    assert_int_equal(rc, 0);
    assert_str(k, len, "ABCDEFGH");
}


/* key ids end up as batch owners and in log lines: bounded, printable */

static void
test_access_key_limits(void **state)
{
    char    key[ZARR_S3_ACCESS_KEY_MAX + 1], hdr[512], args[512];
    size_t  i;

    (void) state;

    /* ZARR_S3_ACCESS_KEY_MAX bytes: fine; one more: malformed */
    for (i = 0; i <= ZARR_S3_ACCESS_KEY_MAX; i += ZARR_S3_ACCESS_KEY_MAX) {
        snprintf(hdr, sizeof(hdr), "AWS4-HMAC-SHA256 Credential=%0*d/"
                 "20240101/us-east-1/s3/aws4_request, Signature=abc",
                 (int) i + 1, 7);
        assert_int_equal(access_key(hdr, "", key), i ? -1 : 0);
        assert_int_equal(strlen(key), i ? 0 : 1);

        snprintf(hdr, sizeof(hdr), "AWS %0*d:sig", (int) i + 1, 7);
        assert_int_equal(access_key(hdr, "", key), i ? -1 : 0);

        snprintf(args, sizeof(args), "X-Amz-Credential=%0*d%%2Fx",
                 (int) i + 1, 7);
        assert_int_equal(access_key("", args, key), i ? -1 : 0);

        snprintf(args, sizeof(args), "AWSAccessKeyId=%0*d", (int) i + 1, 7);
        assert_int_equal(access_key("", args, key), i ? -1 : 0);
    }

    snprintf(hdr, sizeof(hdr), "AWS4-HMAC-SHA256 Credential=%0*d/"
             "20240101/us-east-1/s3/aws4_request",
             ZARR_S3_ACCESS_KEY_MAX, 7);
    assert_int_equal(access_key(hdr, "", key), 0);
    assert_int_equal(strlen(key), ZARR_S3_ACCESS_KEY_MAX);

    /* control bytes, as sent percent-encoded in a presigned URL */
    assert_int_equal(access_key("", "X-Amz-Credential=A%01B%2Fx", key), -1);
    assert_string_equal(key, "");
    assert_int_equal(access_key("", "X-Amz-Credential=A%0D%0AB%2Fx", key),
                     -1);
    assert_int_equal(access_key("", "AWSAccessKeyId=A%7FB", key), -1);
    assert_int_equal(access_key("", "AWSAccessKeyId=A%00B", key), -1);
    assert_int_equal(access_key("AWS A\x01B:sig", "", key), -1);
    assert_int_equal(access_key("AWS4-HMAC-SHA256 Credential=A\x1b[1mB/"
                                "20240101/us-east-1/s3/aws4_request", "",
                                key), -1);

    /* printable non-ASCII passes: the backend judges it */
    assert_int_equal(access_key("", "AWSAccessKeyId=%C3%A9", key), 0);
    assert_string_equal(key, "\xc3\xa9");
}


/* copy sources */


static int
copy_source(const char *value, zarr_s3_copy_source_t *cs, char *buf)
{
    return zarr_s3_copy_source(value, strlen(value), buf, strlen(value),
                               cs);
}


static void
test_copy_source(void **state)
{
    char                   buf[512];
    zarr_s3_copy_source_t  cs;

    (void) state;

    /* botocore: "bucket/key", '/' kept, the rest encoded */
    assert_int_equal(copy_source("b/zarr/x/0.0", &cs, buf), 0);
    assert_str(cs.bucket, cs.bucket_len, "b");
    assert_str(cs.key, cs.key_len, "zarr/x/0.0");
    assert_null(cs.version_id);

    /* AWS documentation form, with a version */
    assert_int_equal(copy_source("/b/zarr/x/a%20b%2Bc+d?versionId=v%2B1",
                                 &cs, buf), 0);
    assert_str(cs.bucket, cs.bucket_len, "b");
    assert_str(cs.key, cs.key_len, "zarr/x/a b+c+d");
    assert_str(cs.version_id, cs.version_id_len, "v+1");

    /* an encoded '?' belongs to the key */
    assert_int_equal(copy_source("b/k%3Fv%3D1?x=1&versionId=null", &cs, buf),
                     0);
    assert_str(cs.key, cs.key_len, "k?v=1");
    assert_str(cs.version_id, cs.version_id_len, "null");

    /* an encoded first '/' (RGW decodes, then splits) */
    assert_int_equal(copy_source("b%2Fzarr%2Fk", &cs, buf), 0);
    assert_str(cs.bucket, cs.bucket_len, "b");
    assert_str(cs.key, cs.key_len, "zarr/k");

    /* UTF-8, "//" kept */
    assert_int_equal(copy_source("b/%C3%A9//x", &cs, buf), 0);
    assert_str(cs.key, cs.key_len, "\xc3\xa9//x");

    /* no version id value */
    assert_int_equal(copy_source("b/k?versionId", &cs, buf), 0);
    assert_str(cs.version_id, cs.version_id_len, "");

    assert_int_equal(copy_source(" b/k ", &cs, buf), 0);
    assert_str(cs.key, cs.key_len, "k");
}


static void
test_copy_source_bad(void **state)
{
    char                   buf[512];
    zarr_s3_copy_source_t  cs;

    (void) state;

    assert_int_equal(copy_source("", &cs, buf), -1);
    assert_int_equal(copy_source("/", &cs, buf), -1);
    assert_int_equal(copy_source("b", &cs, buf), -1);
    assert_int_equal(copy_source("b/", &cs, buf), -1);
    assert_int_equal(copy_source("/b/", &cs, buf), -1);
    assert_int_equal(copy_source("//k", &cs, buf), -1);
    assert_int_equal(copy_source("b/k%zz", &cs, buf), -1);
    assert_int_equal(copy_source("b/k%", &cs, buf), -1);
    assert_int_equal(copy_source("b/k?versionId=%", &cs, buf), -1);
    assert_int_equal(copy_source(
        "arn:aws:s3:us-west-2:123456789012:accesspoint/ap/object/k",
        &cs, buf), -1);

    assert_int_equal(zarr_s3_copy_source(NULL, 0, buf, sizeof(buf), &cs),
                     -1);

    /* the buffer must hold the value */
    assert_int_equal(zarr_s3_copy_source("b/k", 3, buf, 2, &cs), -1);
}


/* virtual-hosted style */


static int
classify_host(const char *method, const char *uri, const char *host,
    const char *domain, classified_t *c)
{
    zarr_s3op_request_t  req;

    memset(&req, 0, sizeof(req));
    req.method = method;
    req.method_len = strlen(method);
    req.uri = uri;
    req.uri_len = strlen(uri);
    req.host = host;
    req.host_len = host ? strlen(host) : 0;
    req.host_suffix = domain;
    req.host_suffix_len = domain ? strlen(domain) : 0;

    c->rc = zarr_s3op_classify(&req, c->buf, sizeof(c->buf), &c->op);

    return c->rc;
}


static void
expect_host(const char *method, const char *uri, const char *host,
    const char *domain, zarr_s3op_e op, const char *bucket, const char *key)
{
    classified_t  c;

    if (classify_host(method, uri, host, domain, &c) != ZARR_S3OP_OK) {
        fail_msg("%s %s Host %s: rc %d (%s)", method, uri, host, c.rc,
                 c.op.error);
    }

    if (c.op.op != op) {
        fail_msg("%s %s Host %s: op %s, expected %s", method, uri, host,
                 zarr_s3op_name(c.op.op), zarr_s3op_name(op));
    }

    assert_str(c.op.bucket, c.op.bucket_len, bucket);
    assert_int_equal(c.op.key_len, strlen(key));
    assert_memory_equal(c.op.key, key, c.op.key_len);
}


static void
test_host_bucket(void **state)
{
    int          rc;
    size_t       len;
    const char  *b;

    (void) state;

#define HB(host, domain)                                                    \
    zarr_s3op_host_bucket(host, strlen(host), domain, strlen(domain), &b,  \
                          &len)

    assert_int_equal(HB("demo.s3.zarr.test", "s3.zarr.test"), 1);
    assert_str(b, len, "demo");
    assert_int_equal(HB("demo.s3.zarr.test:8080", "s3.zarr.test"), 1);
    assert_str(b, len, "demo");
    assert_int_equal(HB("demo.S3.Zarr.TEST", "s3.zarr.test"), 1);
    assert_str(b, len, "demo");
    assert_int_equal(HB("demo.s3.zarr.test.", "s3.zarr.test"), 1);
    assert_str(b, len, "demo");
    assert_int_equal(HB("demo.s3.zarr.test.:80", "s3.zarr.test"), 1);
    assert_str(b, len, "demo");
    assert_int_equal(HB("demo.s3.zarr.test", ".s3.zarr.test."), 1);
    assert_str(b, len, "demo");
    /* bucket names may hold dots */
    assert_int_equal(HB("a.b.c.s3.zarr.test", "s3.zarr.test"), 1);
    assert_str(b, len, "a.b.c");

    /* path-style */
    rc = zarr_s3op_host_bucket(NULL, 0, "s3.zarr.test", 12, &b, &len);
    assert_int_equal(rc, 0);
    rc = zarr_s3op_host_bucket("demo.s3.zarr.test", 17, NULL, 0, &b, &len);
    assert_int_equal(rc, 0);
    assert_int_equal(HB("demo.s3.zarr.test", ""), 0);
    assert_int_equal(HB("s3.zarr.test", "s3.zarr.test"), 0);
    assert_int_equal(HB("s3.zarr.test:8080", "s3.zarr.test"), 0);
    assert_int_equal(HB(".s3.zarr.test", "s3.zarr.test"), 0);
    assert_int_equal(HB("demos3.zarr.test", "s3.zarr.test"), 0);
    assert_int_equal(HB("demo.s3.zarr.test.evil", "s3.zarr.test"), 0);
    assert_int_equal(HB("127.0.0.1:8080", "s3.zarr.test"), 0);
    assert_int_equal(HB("[::1]:8080", "s3.zarr.test"), 0);
    assert_int_equal(HB("", "s3.zarr.test"), 0);
    assert_null(b);

    /* no DNS name has upper case: the backend may fold it or not */
    assert_int_equal(HB("Demo.s3.zarr.test", "s3.zarr.test"), -1);

#undef HB
}


static void
test_virtual_host(void **state)
{
    classified_t  c;
    const char   *d = "s3.zarr.test";
    const char   *h = "demo.s3.zarr.test:8080";

    (void) state;

    /* the whole path is the key */
    expect_host("PUT", "/zarr/ID/k", h, d, ZARR_S3OP_PUT_OBJECT, "demo",
                "zarr/ID/k");
    expect_host("PUT", "/zarr/ID/a%20b?x-id=PutObject", h, d,
                ZARR_S3OP_PUT_OBJECT, "demo", "zarr/ID/a b");
    expect_host("DELETE", "/zarr/ID/k", h, d, ZARR_S3OP_DELETE_OBJECT,
                "demo", "zarr/ID/k");
    expect_host("POST", "/zarr/ID/k?uploads", h, d, ZARR_S3OP_CREATE_MPU,
                "demo", "zarr/ID/k");
    expect_host("POST", "/?delete", h, d, ZARR_S3OP_DELETE_OBJECTS, "demo",
                "");
    expect_host("POST", "/", h, d, ZARR_S3OP_POST_OBJECT, "demo", "");
    expect_host("GET", "/?list-type=2", h, d, ZARR_S3OP_READ, "demo", "");
    expect_host("PUT", "/", h, d, ZARR_S3OP_BUCKET_OP, "demo", "");
    expect_host("PUT", "//x", h, d, ZARR_S3OP_PUT_OBJECT, "demo", "/x");
    /* a first path segment is not a bucket */
    expect_host("PUT", "/other/zarr/ID/k", h, d, ZARR_S3OP_PUT_OBJECT,
                "demo", "other/zarr/ID/k");

    /* the domain itself, another name, no domain: path-style */
    expect_host("PUT", "/zarr/ID/k", "s3.zarr.test", d,
                ZARR_S3OP_PUT_OBJECT, "zarr", "ID/k");
    expect_host("PUT", "/zarr/ID/k", "127.0.0.1:8080", d,
                ZARR_S3OP_PUT_OBJECT, "zarr", "ID/k");
    expect_host("PUT", "/zarr/ID/k", h, NULL, ZARR_S3OP_PUT_OBJECT, "zarr",
                "ID/k");
    expect_host("GET", "/", "s3.zarr.test", d, ZARR_S3OP_SERVICE, "", "");

    assert_int_equal(classify_host("PUT", "/zarr/ID/k",
                                   "DEMO.s3.zarr.test", d, &c),
                     ZARR_S3OP_BAD_URI);
    assert_non_null(c.op.error);
    assert_int_equal(classify_host("PUT", "/zarr/%zz", h, d, &c),
                     ZARR_S3OP_BAD_URI);
}


static void
test_host_name(void **state)
{
    size_t       len;
    const char  *n;

    (void) state;

#define HN(host)  zarr_s3op_host_name(host, strlen(host), &n, &len)

    assert_int_equal(HN("demo.s3.example.org:8080"), 1);
    assert_str(n, len, "demo.s3.example.org");
    assert_int_equal(HN("s3.example.org."), 1);
    assert_str(n, len, "s3.example.org");
    assert_int_equal(HN("a.b"), 1);
    assert_int_equal(HN("10.0.0.1x"), 1);

    /* no bucket anywhere */
    assert_int_equal(HN("127.0.0.1:8080"), 0);
    assert_null(n);
    assert_int_equal(HN("10.1.2.3"), 0);
    assert_int_equal(HN("[::1]:80"), 0);
    assert_int_equal(HN(""), 0);
    assert_int_equal(HN(":80"), 0);

    /* RGW with rgw_dns_name takes these for buckets */
    assert_int_equal(HN("localhost:8080"), 1);
    assert_str(n, len, "localhost");
    assert_int_equal(HN("gateway."), 1);
    assert_str(n, len, "gateway");
    assert_int_equal(zarr_s3op_host_name(NULL, 0, &n, &len), 0);

#undef HN
}


static void
expect_unknown(const char *method, const char *uri, zarr_s3op_e op,
    const char *key)
{
    classified_t         c;
    zarr_s3op_request_t  req;

    memset(&req, 0, sizeof(req));
    req.method = method;
    req.method_len = strlen(method);
    req.uri = uri;
    req.uri_len = strlen(uri);

    c.rc = zarr_s3op_classify_unknown_host(&req, c.buf, sizeof(c.buf),
                                           &c.op);

    if (c.rc != ZARR_S3OP_OK) {
        fail_msg("%s %s: rc %d (%s)", method, uri, c.rc, c.op.error);
    }

    if (c.op.op != op) {
        fail_msg("%s %s: op %s, expected %s", method, uri,
                 zarr_s3op_name(c.op.op), zarr_s3op_name(op));
    }

    assert_int_equal(c.op.bucket_len, 0);
    assert_int_equal(c.op.key_len, strlen(key));
    assert_memory_equal(c.op.key, key, c.op.key_len);
}


static void
test_unknown_host(void **state)
{
    (void) state;

    /* what a backend serving virtual hosts would do with it */
    expect_unknown("PUT", "/zarr/ID/k", ZARR_S3OP_PUT_OBJECT, "zarr/ID/k");
    expect_unknown("DELETE", "/zarr/ID/k", ZARR_S3OP_DELETE_OBJECT,
                   "zarr/ID/k");
    expect_unknown("POST", "/?delete", ZARR_S3OP_DELETE_OBJECTS, "");
    expect_unknown("POST", "/", ZARR_S3OP_POST_OBJECT, "");
    expect_unknown("PUT", "/", ZARR_S3OP_BUCKET_OP, "");
    expect_unknown("GET", "/", ZARR_S3OP_READ, "");
    expect_unknown("PUT", "/b/zarr/ID/k", ZARR_S3OP_PUT_OBJECT,
                   "b/zarr/ID/k");
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads),
        cmocka_unit_test(test_service),
        cmocka_unit_test(test_put),
        cmocka_unit_test(test_put_append),
        cmocka_unit_test(test_aws_chunked),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_multipart_ambiguous),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_other_writes),
        cmocka_unit_test(test_bucket_ops),
        cmocka_unit_test(test_key_decoding),
        cmocka_unit_test(test_bad_uri),
        cmocka_unit_test(test_args_given),
        cmocka_unit_test(test_buffer_exact),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_access_key_header),
        cmocka_unit_test(test_access_key_bad),
        cmocka_unit_test(test_access_key_presigned),
        cmocka_unit_test(test_access_key_limits),
        cmocka_unit_test(test_copy_source),
        cmocka_unit_test(test_copy_source_bad),
        cmocka_unit_test(test_host_bucket),
        cmocka_unit_test(test_virtual_host),
        cmocka_unit_test(test_host_name),
        cmocka_unit_test(test_unknown_host),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
