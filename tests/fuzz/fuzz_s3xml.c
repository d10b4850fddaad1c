
/*
 * The S3 XML bodies the gateway reads (zarr_s3xml.c), with the gateway's
 * limits: DeleteObjects requests, DeleteObjects, CopyObject and
 * CompleteMultipartUpload results, and <Error> documents in their place.
 * The first byte picks the kind and the chunking; the body is parsed
 * whole and fed in chunks, and both must agree.
 */


#include "fuzz.h"
#include "zarr_s3xml.h"


/* NGX_HTTP_ZARR_BODY_MAX */
#define FUZZ_BODY_MAX  (4 * 1024 * 1024)


static void fuzz_check_object(const zarr_s3xml_object_t *o, size_t len,
    int error);
static void fuzz_check_result(const zarr_s3xml_result_t *r, int rc,
    zarr_s3xml_kind_e kind, size_t len, size_t max_objects);
static int fuzz_same_object(const zarr_s3xml_object_t *a,
    const zarr_s3xml_object_t *b);
static int fuzz_same_str(const char *a, size_t alen, const char *b,
    size_t blen);


static void
fuzz_check_object(const zarr_s3xml_object_t *o, size_t len, int error)
{
    /* XML text cannot hold NUL, and decoding never grows text */
    FUZZ_CHECK(o->key != NULL);
    FUZZ_CHECK(strlen(o->key) == o->key_len);
    FUZZ_CHECK(o->key_len <= len);

    if (o->version_id) {
        FUZZ_CHECK(strlen(o->version_id) == o->version_id_len);
        FUZZ_CHECK(o->version_id_len <= len);
    }

    if (!error) {
        FUZZ_CHECK(o->code == NULL && o->message == NULL);

    } else {
        FUZZ_CHECK(o->code != NULL);
        FUZZ_CHECK(strlen(o->code) <= len);

        if (o->message) {
            FUZZ_CHECK(strlen(o->message) <= len);
        }
    }
}


static void
fuzz_check_result(const zarr_s3xml_result_t *r, int rc,
    zarr_s3xml_kind_e kind, size_t len, size_t max_objects)
{
    size_t  i;

    FUZZ_CHECK(rc == ZARR_S3XML_OK || rc == ZARR_S3XML_S3_ERROR
               || rc == ZARR_S3XML_MALFORMED || rc == ZARR_S3XML_TOO_LARGE
               || rc == ZARR_S3XML_TOO_MANY || rc == ZARR_S3XML_NOMEM);

    FUZZ_CHECK(memchr(r->code, '\0', sizeof(r->code)) != NULL);
    FUZZ_CHECK(memchr(r->message, '\0', sizeof(r->message)) != NULL);

    if (rc != ZARR_S3XML_OK && rc != ZARR_S3XML_S3_ERROR) {
        /* a failure says why */
        FUZZ_CHECK(r->code[0] == '\0' && r->message[0] != '\0');
        return;
    }

    if (max_objects) {
        FUZZ_CHECK(r->nobjects + r->nerrors <= max_objects);
    }

    FUZZ_CHECK(r->nobjects == 0 || r->objects != NULL);
    FUZZ_CHECK(r->nerrors == 0 || r->errors != NULL);

    for (i = 0; i < r->nobjects; i++) {
        fuzz_check_object(&r->objects[i], len, 0);
    }

    for (i = 0; i < r->nerrors; i++) {
        fuzz_check_object(&r->errors[i], len, 1);
    }

    if (rc == ZARR_S3XML_S3_ERROR) {
        return;
    }

    if (kind != ZARR_S3XML_DELETE_RESULT) {
        FUZZ_CHECK(r->nerrors == 0);
    }

    if (kind == ZARR_S3XML_COPY_RESULT || kind == ZARR_S3XML_COMPLETE_RESULT)
    {
        FUZZ_CHECK(r->nobjects == 0);
    }

    if (kind == ZARR_S3XML_COPY_RESULT) {
        FUZZ_CHECK(r->etag != NULL);
    }

    if (r->etag) {
        FUZZ_CHECK(strlen(r->etag) == r->etag_len);
        FUZZ_CHECK(r->etag_len <= len);
    }
}


static int
fuzz_same_str(const char *a, size_t alen, const char *b, size_t blen)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }

    return alen == blen && memcmp(a, b, alen) == 0;
}


static int
fuzz_same_object(const zarr_s3xml_object_t *a, const zarr_s3xml_object_t *b)
{
    return fuzz_same_str(a->key, a->key_len, b->key, b->key_len)
           && fuzz_same_str(a->version_id, a->version_id_len,
                            b->version_id, b->version_id_len)
           && fuzz_same_str(a->code, a->code ? strlen(a->code) : 0,
                            b->code, b->code ? strlen(b->code) : 0)
           && fuzz_same_str(a->message, a->message ? strlen(a->message) : 0,
                            b->message, b->message ? strlen(b->message) : 0);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                         rc, src;
    size_t                      len, off, n, i, max_objects;
    uint32_t                    state;
    const char                 *body;
    zarr_s3xml_kind_e           kind;
    zarr_s3xml_parser_t        *p;
    zarr_s3xml_result_t         res;
    const zarr_s3xml_result_t  *sr;

    if (size == 0) {
        return 0;
    }

    kind = (zarr_s3xml_kind_e) (data[0] & 3);
    state = data[0] >> 2;
    body = (const char *) data + 1;
    len = size - 1;

    /* the request is held to S3's 1000 objects, responses are not */
    max_objects = kind == ZARR_S3XML_DELETE ? ZARR_S3XML_DELETE_MAX : 0;

    rc = zarr_s3xml_parse(kind, body, len, FUZZ_BODY_MAX, max_objects, &res);
    fuzz_check_result(&res, rc, kind, len, max_objects);

    if (rc == ZARR_S3XML_NOMEM) {
        zarr_s3xml_result_free(&res);
        return 0;
    }

    p = zarr_s3xml_create(kind, FUZZ_BODY_MAX, max_objects);
    FUZZ_CHECK(p != NULL);

    src = ZARR_S3XML_OK;
    off = 0;

    do {
        n = len - off ? fuzz_chunk(&state, len - off) : 0;
        src = zarr_s3xml_feed(p, body + off, n, off + n == len);
        off += n;
    } while (src == ZARR_S3XML_OK && off < len);

    sr = zarr_s3xml_result(p);

    /* whole or in chunks: the same answer */
    FUZZ_CHECK(src == rc);

    if (rc == ZARR_S3XML_OK || rc == ZARR_S3XML_S3_ERROR) {
        fuzz_check_result(sr, src, kind, len, max_objects);

        FUZZ_CHECK(sr->nobjects == res.nobjects);
        FUZZ_CHECK(sr->nerrors == res.nerrors);
        FUZZ_CHECK(sr->quiet == res.quiet);
        FUZZ_CHECK(fuzz_same_str(sr->etag, sr->etag_len, res.etag,
                                 res.etag_len));
        FUZZ_CHECK(strcmp(sr->code, res.code) == 0);
        FUZZ_CHECK(strcmp(sr->message, res.message) == 0);

        for (i = 0; i < res.nobjects; i++) {
            FUZZ_CHECK(fuzz_same_object(&sr->objects[i], &res.objects[i]));
        }

        for (i = 0; i < res.nerrors; i++) {
            FUZZ_CHECK(fuzz_same_object(&sr->errors[i], &res.errors[i]));
        }
    }

    zarr_s3xml_destroy(p);
    zarr_s3xml_result_free(&res);

    return 0;
}
