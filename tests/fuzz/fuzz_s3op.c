
/*
 * Request classification (zarr_s3op_classify): method, raw URI, query
 * and the presence of x-amz-copy-source from the input.  Input: byte 0
 * flags (bit 0: copy source, bit 1: the query apart from the URI, as
 * args), then METHOD SP URI [LF ARGS].  The buffer is exactly
 * ZARR_S3OP_BUF_SIZE() bytes, so that ASan sees any overrun.
 */


#include "fuzz.h"
#include "zarr_s3op.h"


static void fuzz_check_str(const char *s, size_t len, const char *buf,
    size_t size, const zarr_s3op_request_t *req);


/* a decoded string points into buf or into the request */

static void
fuzz_check_str(const char *s, size_t len, const char *buf, size_t size,
    const zarr_s3op_request_t *req)
{
    if (s == NULL) {
        FUZZ_CHECK(len == 0);
        return;
    }

    FUZZ_CHECK(FUZZ_INSIDE(s, len, buf, size)
               || FUZZ_INSIDE(s, len, req->uri, req->uri_len)
               || (req->args
                   && FUZZ_INSIDE(s, len, req->args, req->args_len))
               || len == 0);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                   rc;
    char                 *buf;
    size_t                len, bsize;
    const char           *s, *sp, *lf;
    zarr_s3op_t           op;
    zarr_s3op_request_t   req;

    if (size == 0) {
        return 0;
    }

    s = (const char *) data + 1;
    len = size - 1;

    memset(&req, 0, sizeof(req));
    req.copy_source = data[0] & 1;

    sp = memchr(s, ' ', len);
    if (sp == NULL) {
        return 0;
    }

    req.method = s;
    req.method_len = sp - s;
    req.uri = sp + 1;
    req.uri_len = s + len - req.uri;

    if (data[0] & 2) {
        lf = memchr(req.uri, '\n', req.uri_len);

        req.args = lf ? lf + 1 : "";
        req.args_len = lf ? (size_t) (s + len - req.args) : 0;
        req.uri_len = lf ? (size_t) (lf - req.uri) : req.uri_len;
    }

    bsize = ZARR_S3OP_BUF_SIZE(req.uri_len, req.args ? req.args_len : 0);
    buf = malloc(bsize ? bsize : 1);
    FUZZ_CHECK(buf != NULL);

    memset(&op, 0xa5, sizeof(op));
    rc = zarr_s3op_classify(&req, buf, bsize, &op);

    FUZZ_CHECK(rc == ZARR_S3OP_OK || rc == ZARR_S3OP_BAD_URI
               || rc == ZARR_S3OP_BAD_ARGS);
    FUZZ_CHECK((rc == ZARR_S3OP_OK) == (op.error == NULL));

    if (rc == ZARR_S3OP_OK) {
        FUZZ_CHECK(op.op >= ZARR_S3OP_READ && op.op <= ZARR_S3OP_SERVICE);
        FUZZ_CHECK(zarr_s3op_name(op.op) != NULL);

        fuzz_check_str(op.bucket, op.bucket_len, buf, bsize, &req);
        fuzz_check_str(op.key, op.key_len, buf, bsize, &req);
        fuzz_check_str(op.upload_id, op.upload_id_len, buf, bsize, &req);
        fuzz_check_str(op.part_number, op.part_number_len, buf, bsize,
                       &req);
        fuzz_check_str(op.version_id, op.version_id_len, buf, bsize, &req);

        /* decoding never grows the path */
        FUZZ_CHECK(op.bucket_len + op.key_len <= req.uri_len);
        FUZZ_CHECK(op.bucket_len == 0
                   || memchr(op.bucket, '/', op.bucket_len) == NULL);
        FUZZ_CHECK(op.key_len == 0 || op.bucket_len > 0);

        if (op.op == ZARR_S3OP_SERVICE) {
            FUZZ_CHECK(op.bucket_len == 0 && op.key_len == 0);
        }

        if (op.op >= ZARR_S3OP_PUT_OBJECT && op.op <= ZARR_S3OP_ABORT_MPU)
        {
            FUZZ_CHECK(op.key_len > 0);
        }

        if (op.op == ZARR_S3OP_COPY_OBJECT
            || op.op == ZARR_S3OP_UPLOAD_PART_COPY)
        {
            FUZZ_CHECK(req.copy_source);
        }

        if (op.op == ZARR_S3OP_UPLOAD_PART
            || op.op == ZARR_S3OP_UPLOAD_PART_COPY)
        {
            FUZZ_CHECK(op.upload_id != NULL && op.part_number != NULL);
        }
    }

    /* one byte short of the documented size is refused, never overrun */
    if (bsize > 0) {
        free(buf);
        buf = malloc(bsize - 1 ? bsize - 1 : 1);
        FUZZ_CHECK(buf != NULL);
        (void) zarr_s3op_classify(&req, buf, bsize - 1, &op);
    }

    free(buf);

    return 0;
}
