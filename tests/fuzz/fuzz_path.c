
/*
 * The key rules (zarr_path.c): zarr_key_split with a prefix from the
 * input, zarr_path_check on the whole key.  Input: byte 0 gives the
 * prefix length (bits 0-3) and whether the key starts after the prefix
 * (bit 4; otherwise the key is the whole rest, starting with it).
 */


#include "fuzz.h"
#include "zarr_json.h"
#include "zarr_path.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int          rc;
    size_t       len, plen, off;
    const char  *s, *prefix, *key;
    zarr_key_t   k;

    if (size == 0) {
        return 0;
    }

    s = (const char *) data + 1;
    len = size - 1;
    plen = data[0] % 16;

    if (plen > len) {
        plen = len;
    }

    prefix = s;
    key = s;

    if (data[0] & 0x10) {
        key += plen;
        len -= plen;
    }

    memset(&k, 0, sizeof(k));
    rc = zarr_key_split(key, len, prefix, plen, &k);

    FUZZ_CHECK(rc >= ZARR_PATH_OK && rc <= ZARR_PATH_ID_TOO_LONG);
    FUZZ_CHECK(zarr_path_strerror(rc) != NULL);

    if (rc == ZARR_PATH_OK) {
        /* key = prefix ID "/" PATH, both parts inside the key */
        FUZZ_CHECK(k.zarr_id == key + plen);
        FUZZ_CHECK(k.zarr_id_len > 0 && k.zarr_id_len <= ZARR_NAME_MAX);
        FUZZ_CHECK(k.path == k.zarr_id + k.zarr_id_len + 1);
        FUZZ_CHECK(k.zarr_id[k.zarr_id_len] == '/');
        FUZZ_CHECK(k.path + k.path_len == key + len);
        FUZZ_CHECK(k.path_len > 0);
        FUZZ_CHECK(memcmp(key, prefix, plen) == 0);
        FUZZ_CHECK(memchr(k.zarr_id, '/', k.zarr_id_len) == NULL);

        FUZZ_CHECK(zarr_path_check(k.path, k.path_len, &off)
                   == ZARR_PATH_OK);
        FUZZ_CHECK(zarr_path_check(k.zarr_id, k.zarr_id_len, &off)
                   == ZARR_PATH_OK);

    } else if (rc != ZARR_PATH_NOT_ZARR) {
        FUZZ_CHECK(k.error_offset <= len);
    }

    off = (size_t) -1;
    rc = zarr_path_check(key, len, &off);

    FUZZ_CHECK(rc >= ZARR_PATH_OK && rc <= ZARR_PATH_ID_TOO_LONG);

    if (rc == ZARR_PATH_OK) {
        /* an accepted path is UTF-8 without NUL, no empty component */
        FUZZ_CHECK(zarr_utf8_valid_prefix(key, len) == len);
        FUZZ_CHECK(memchr(key, '\0', len) == NULL);
        FUZZ_CHECK(len > 0 && key[0] != '/' && key[len - 1] != '/');
        FUZZ_CHECK(len < 2 || memmem(key, len, "//", 2) == NULL);

    } else {
        FUZZ_CHECK(off <= len);
    }

    return 0;
}
