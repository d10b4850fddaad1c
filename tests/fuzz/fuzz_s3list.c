
/*
 * ListObjectsV2 bodies (zarr_s3.c): parsed whole with zarr_s3_list_parse
 * and fed in chunks to the streaming parser, with the same objects and
 * page state; zarr_s3_parse_error on the same bytes.  Byte 0: the
 * chunking, and after how many objects the handler stops (0: never).
 */


#include "fuzz.h"
#include "zarr_s3.h"


typedef struct {
    size_t       len;
    uint64_t     count;
    uint64_t     stop_after;
    uint64_t     hash;
} fuzz_list_t;


static int fuzz_object(const zarr_s3_object_t *obj, void *data);
static uint64_t fuzz_hash(uint64_t h, const void *p, size_t n);


static uint64_t
fuzz_hash(uint64_t h, const void *p, size_t n)
{
    size_t                i;
    const unsigned char  *c;

    c = p;

    for (i = 0; i < n; i++) {
        h = (h ^ c[i]) * 0x100000001b3ULL;
    }

    return h;
}


static int
fuzz_object(const zarr_s3_object_t *obj, void *data)
{
    fuzz_list_t  *l = data;

    /* decoding (XML, then %XX) never grows a key */
    FUZZ_CHECK(obj->key != NULL || obj->key_len == 0);
    FUZZ_CHECK(obj->key_len <= l->len);
    FUZZ_CHECK(obj->etag != NULL);
    FUZZ_CHECK(strlen(obj->etag) == obj->etag_len);
    FUZZ_CHECK(obj->etag_len <= l->len);

    l->hash = fuzz_hash(l->hash, &obj->key_len, sizeof(size_t));
    l->hash = fuzz_hash(l->hash, obj->key, obj->key_len);
    l->hash = fuzz_hash(l->hash, &obj->size, sizeof(uint64_t));
    l->hash = fuzz_hash(l->hash, obj->etag, obj->etag_len + 1);

    /* a <Version>'s id, NUL-terminated */
    if (obj->version_id) {
        FUZZ_CHECK(strlen(obj->version_id) == obj->version_id_len);
        FUZZ_CHECK(obj->version_id_len <= l->len);
        l->hash = fuzz_hash(l->hash, obj->version_id,
                            obj->version_id_len + 1);
    }

    l->count++;

    return l->stop_after && l->count == l->stop_after;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                         rc, src;
    size_t                      len, off, n;
    uint32_t                    state;
    const char                 *body;
    fuzz_list_t                 whole, chunked;
    zarr_s3_error_t             err;
    zarr_s3_list_page_t         page;
    zarr_s3_list_parser_t      *p;
    const zarr_s3_list_page_t  *sp;

    if (size == 0) {
        return 0;
    }

    body = (const char *) data + 1;
    len = size - 1;
    state = data[0] >> 3;

    memset(&whole, 0, sizeof(fuzz_list_t));
    whole.len = len;
    whole.stop_after = data[0] & 7;
    chunked = whole;

    memset(&page, 0, sizeof(page));
    rc = zarr_s3_list_parse(body, len, fuzz_object, &whole, &page);

    FUZZ_CHECK(rc == ZARR_S3_OK || rc == ZARR_S3_ERROR
               || rc == ZARR_S3_STOPPED);
    FUZZ_CHECK(memchr(page.error.code, '\0', ZARR_S3_CODE_MAX) != NULL);
    FUZZ_CHECK(memchr(page.error.message, '\0', ZARR_S3_MESSAGE_MAX)
               != NULL);
    FUZZ_CHECK(rc != ZARR_S3_STOPPED || whole.count == whole.stop_after);

    if (rc == ZARR_S3_OK) {
        FUZZ_CHECK(page.objects == whole.count);
    }

    p = zarr_s3_list_parser_create(fuzz_object, &chunked);
    FUZZ_CHECK(p != NULL);

    off = 0;

    do {
        n = len - off ? fuzz_chunk(&state, len - off) : 0;
        src = zarr_s3_list_parser_feed(p, body + off, n, off + n == len);
        off += n;
    } while (src == ZARR_S3_OK && off < len);

    sp = zarr_s3_list_parser_page(p);

    /* whole or in chunks: the same objects and the same page */
    if (strcmp(page.error.message, "out of memory") != 0
        && strcmp(sp->error.message, "out of memory") != 0)
    {
        FUZZ_CHECK(src == rc);
        FUZZ_CHECK(chunked.count == whole.count);
        FUZZ_CHECK(chunked.hash == whole.hash);

        if (rc == ZARR_S3_OK) {
            FUZZ_CHECK(sp->is_truncated == page.is_truncated);
            FUZZ_CHECK(sp->url_encoded == page.url_encoded);
            FUZZ_CHECK(sp->objects == page.objects);
            FUZZ_CHECK((sp->next_token == NULL) == (page.next_token == NULL));
            FUZZ_CHECK(page.next_token == NULL
                       || strcmp(sp->next_token, page.next_token) == 0);
            FUZZ_CHECK((sp->next_key == NULL) == (page.next_key == NULL));
            FUZZ_CHECK(page.next_key == NULL
                       || strcmp(sp->next_key, page.next_key) == 0);
            FUZZ_CHECK((sp->upload_id == NULL) == (page.upload_id == NULL));
            FUZZ_CHECK(strcmp(sp->versioning, page.versioning) == 0);
            FUZZ_CHECK(sp->expires_noncurrent == page.expires_noncurrent);
        }

        if (rc == ZARR_S3_ERROR) {
            FUZZ_CHECK(strcmp(sp->error.code, page.error.code) == 0);
        }
    }

    zarr_s3_list_parser_destroy(p);
    zarr_s3_list_page_free(&page);

    memset(&err, 0, sizeof(err));

    if (zarr_s3_parse_error(body, len, &err) == 0) {
        FUZZ_CHECK(memchr(err.code, '\0', sizeof(err.code)) != NULL);
        FUZZ_CHECK(memchr(err.message, '\0', sizeof(err.message)) != NULL);
    }

    return 0;
}
