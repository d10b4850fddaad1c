
/*
 * The requester's access key id (zarr_s3_access_key) from an
 * Authorization header and a query.  Input: byte 0 (bit 0: the header
 * is absent), then AUTH [LF ARGS].
 */


#include "fuzz.h"
#include "zarr_s3op.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int          rc;
    char        *buf;
    size_t       len, auth_len, args_len, key_len;
    const char  *s, *lf, *auth, *args, *key;

    if (size == 0) {
        return 0;
    }

    s = (const char *) data + 1;
    len = size - 1;

    lf = memchr(s, '\n', len);

    auth = s;
    auth_len = lf ? (size_t) (lf - s) : len;
    args = lf ? lf + 1 : NULL;
    args_len = lf ? (size_t) (s + len - args) : 0;

    if (data[0] & 1) {
        auth = NULL;
        auth_len = 0;
    }

    buf = malloc(ZARR_S3_ACCESS_KEY_MAX);
    FUZZ_CHECK(buf != NULL);

    key = NULL;
    key_len = 12345;

    rc = zarr_s3_access_key(auth, auth_len, args, args_len, buf,
                            ZARR_S3_ACCESS_KEY_MAX, &key, &key_len);

    FUZZ_CHECK(rc == 0 || rc == -1);

    if (rc == -1) {
        FUZZ_CHECK(key_len == 0);
    }

    if (rc == 0 && key_len > 0) {
        FUZZ_CHECK(key != NULL);
        FUZZ_CHECK((auth && FUZZ_INSIDE(key, key_len, auth, auth_len))
                   || FUZZ_INSIDE(key, key_len, buf,
                                  ZARR_S3_ACCESS_KEY_MAX));
        FUZZ_CHECK(key_len <= auth_len || key_len <= args_len);
    }

    free(buf);

    return 0;
}
