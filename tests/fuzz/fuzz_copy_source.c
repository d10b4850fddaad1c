
/*
 * x-amz-copy-source values (zarr_s3_copy_source): the whole input is the
 * header value; the buffer is exactly as long as the value.
 */


#include "fuzz.h"
#include "zarr_s3op.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                     rc;
    char                   *buf;
    const char             *v;
    zarr_s3_copy_source_t   cs;

    v = (const char *) data;

    buf = malloc(size ? size : 1);
    FUZZ_CHECK(buf != NULL);

    rc = zarr_s3_copy_source(v, size, buf, size, &cs);

    FUZZ_CHECK(rc == 0 || rc == -1);

    if (rc == 0) {
        FUZZ_CHECK(cs.bucket_len > 0 && cs.key_len > 0);
        FUZZ_CHECK(FUZZ_INSIDE(cs.bucket, cs.bucket_len, buf, size)
                   || FUZZ_INSIDE(cs.bucket, cs.bucket_len, v, size));
        FUZZ_CHECK(FUZZ_INSIDE(cs.key, cs.key_len, buf, size)
                   || FUZZ_INSIDE(cs.key, cs.key_len, v, size));
        FUZZ_CHECK(memchr(cs.bucket, '/', cs.bucket_len) == NULL);
        FUZZ_CHECK(cs.bucket_len + cs.key_len < size);

        if (cs.version_id) {
            FUZZ_CHECK(FUZZ_INSIDE(cs.version_id, cs.version_id_len, buf,
                                   size)
                       || FUZZ_INSIDE(cs.version_id, cs.version_id_len, v,
                                      size));
        }
    }

    free(buf);

    return 0;
}
