
/*
 * Manifests and digests of arbitrary names (zarr_digest.c, zarr_json.c):
 * the names are the input's lines.  Every name is JSON-escaped and must
 * read back with jansson as the same bytes; the manifest built unsorted
 * (zarr_manifest_build) equals the one added in order; a digest's count
 * reads back.
 */


#include <jansson.h>

#include "fuzz.h"
#include "zarr_digest.h"
#include "zarr_json.h"


#define FUZZ_NAMES_MAX  64


static void fuzz_json_roundtrip(const char *s, size_t len);


static void
fuzz_json_roundtrip(const char *s, size_t len)
{
    int          rc;
    json_t      *j;
    zarr_buf_t   b;

    zarr_buf_init(&b);

    rc = zarr_json_add_string(&b, s, len);

    if (zarr_utf8_valid_prefix(s, len) != len) {
        FUZZ_CHECK(rc == -2);
        FUZZ_CHECK(b.len == 0);
        zarr_buf_free(&b);
        return;
    }

    if (rc == -1) {
        zarr_buf_free(&b);
        return;
    }

    FUZZ_CHECK(rc == 0);

    /* ensure_ascii: nothing but printable ASCII */
    for (size_t i = 0; i < b.len; i++) {
        FUZZ_CHECK(b.data[i] >= 0x20 && b.data[i] < 0x7f);
    }

    j = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    FUZZ_CHECK(j != NULL);
    FUZZ_CHECK(json_is_string(j));
    FUZZ_CHECK(json_string_length(j) == len);
    FUZZ_CHECK(memcmp(json_string_value(j), s, len) == 0);

    json_decref(j);
    zarr_buf_free(&b);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              rc, rc2;
    size_t           n, i, off;
    uint64_t         count;
    const char      *s, *lf;
    zarr_entry_t     files[FUZZ_NAMES_MAX];
    zarr_dir_sum_t   sum, sum2;
    zarr_manifest_t  m;

    s = (const char *) data;
    n = 0;
    off = 0;

    while (off < size && n < FUZZ_NAMES_MAX) {
        lf = memchr(s + off, '\n', size - off);

        files[n].name = s + off;
        files[n].name_len = lf ? (size_t) (lf - s - off) : size - off;
        files[n].digest = "0123456789abcdef0123456789abcdef";
        files[n].digest_len = 32;
        files[n].size = n * 1000003;

        fuzz_json_roundtrip(files[n].name, files[n].name_len);

        if (n > 0) {
            FUZZ_CHECK((zarr_name_cmp(files[n].name, files[n].name_len,
                                      files[n - 1].name,
                                      files[n - 1].name_len) > 0)
                       == (zarr_name_cmp(files[n - 1].name,
                                         files[n - 1].name_len,
                                         files[n].name,
                                         files[n].name_len) < 0));
        }

        off += files[n].name_len + 1;
        n++;
    }

    rc = zarr_manifest_build(NULL, 0, files, n, &sum, NULL);

    FUZZ_CHECK(rc == ZARR_OK || rc == ZARR_ERR_INVALID
               || rc == ZARR_ERR_NOMEM);

    if (rc != ZARR_OK) {
        return 0;
    }

    FUZZ_CHECK(strlen(sum.digest) < ZARR_DIGEST_MAX);
    FUZZ_CHECK(sum.count == n);
    FUZZ_CHECK(zarr_digest_count(sum.digest, strlen(sum.digest), &count)
               == 0);
    FUZZ_CHECK(count == n);

    /* files[] is sorted now: added in order, the same digest */

    FUZZ_CHECK(zarr_manifest_init(&m, 0) == ZARR_OK);

    rc2 = ZARR_OK;

    for (i = 0; i < n && rc2 == ZARR_OK; i++) {
        rc2 = zarr_manifest_add_file(&m, files[i].name, files[i].name_len,
                                     files[i].digest, files[i].digest_len,
                                     files[i].size);
    }

    if (rc2 == ZARR_OK) {
        rc2 = zarr_manifest_finish(&m, &sum2);
    }

    if (rc2 == ZARR_OK) {
        FUZZ_CHECK(strcmp(sum.digest, sum2.digest) == 0);
        FUZZ_CHECK(sum.size == sum2.size && sum.count == sum2.count);
    }

    zarr_manifest_free(&m);

    return 0;
}
