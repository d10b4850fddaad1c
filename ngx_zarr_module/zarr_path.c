
/*
 * Key rules for zarr members.
 */


#include <string.h>

#include "zarr_json.h"
#include "zarr_path.h"


static int zarr_segment_check(const char *s, size_t len);


static int
zarr_segment_check(const char *s, size_t len)
{
    if (len == 0) {
        return ZARR_PATH_EMPTY_SEGMENT;
    }

    if (len == 1 && s[0] == '.') {
        return ZARR_PATH_DOT_SEGMENT;
    }

    if (len == 2 && s[0] == '.' && s[1] == '.') {
        return ZARR_PATH_DOTDOT_SEGMENT;
    }

    if (len > ZARR_NAME_MAX) {
        return ZARR_PATH_TOO_LONG;
    }

    return ZARR_PATH_OK;
}


int
zarr_path_check(const char *path, size_t len, size_t *error_offset)
{
    size_t       i, start, valid;
    int          rc;
    const char  *nul;

    *error_offset = 0;

    valid = zarr_utf8_valid_prefix(path, len);
    if (valid != len) {
        *error_offset = valid;
        return ZARR_PATH_BAD_UTF8;
    }

    nul = memchr(path, '\0', len);
    if (nul) {
        *error_offset = nul - path;
        return ZARR_PATH_NUL;
    }

    if (len > 0 && path[len - 1] == '/') {
        *error_offset = len - 1;
        return ZARR_PATH_TRAILING_SLASH;
    }

    start = 0;

    for (i = 0; i <= len; i++) {
        if (i < len && path[i] != '/') {
            continue;
        }

        rc = zarr_segment_check(path + start, i - start);
        if (rc != ZARR_PATH_OK) {
            *error_offset = start;
            return rc;
        }

        start = i + 1;
    }

    return ZARR_PATH_OK;
}


int
zarr_key_split(const char *key, size_t key_len, const char *prefix,
    size_t prefix_len, zarr_key_t *out)
{
    const char  *id, *slash, *end;
    size_t       off;
    int          rc;

    memset(out, 0, sizeof(zarr_key_t));

    if (key_len < prefix_len || memcmp(key, prefix, prefix_len) != 0) {
        return ZARR_PATH_NOT_ZARR;
    }

    id = key + prefix_len;
    end = key + key_len;

    slash = memchr(id, '/', end - id);
    if (slash == NULL) {
        /* "zarr/ID" itself, or "zarr/": not a member of a zarr */
        return ZARR_PATH_NOT_ZARR;
    }

    out->zarr_id = id;
    out->zarr_id_len = slash - id;
    out->path = slash + 1;
    out->path_len = end - slash - 1;

    /* check "ID/path" as a whole: the id is a component as well */

    rc = zarr_path_check(id, end - id, &off);
    out->error_offset = prefix_len + off;

    if (rc == ZARR_PATH_OK && out->path_len == 0) {
        /* "zarr/ID/" */
        out->error_offset = key_len - 1;
        return ZARR_PATH_TRAILING_SLASH;
    }

    if (rc == ZARR_PATH_OK && out->zarr_id_len > ZARR_ID_MAX) {
        out->error_offset = prefix_len + ZARR_ID_MAX;
        return ZARR_PATH_ID_TOO_LONG;
    }

    return rc;
}


const char *
zarr_path_strerror(int rc)
{
    switch (rc) {
    case ZARR_PATH_OK:
        return "ok";
    case ZARR_PATH_NOT_ZARR:
        return "key is not inside a zarr";
    case ZARR_PATH_EMPTY_SEGMENT:
        return "key has an empty path segment";
    case ZARR_PATH_DOT_SEGMENT:
        return "key has a \".\" path segment";
    case ZARR_PATH_DOTDOT_SEGMENT:
        return "key has a \"..\" path segment";
    case ZARR_PATH_TRAILING_SLASH:
        return "key ends with \"/\"";
    case ZARR_PATH_BAD_UTF8:
        return "key is not valid UTF-8";
    case ZARR_PATH_NUL:
        return "key contains a NUL byte";
    case ZARR_PATH_TOO_LONG:
        return "key has a path segment longer than 480 bytes";
    case ZARR_PATH_ID_TOO_LONG:
        return "zarr id longer than 255 bytes";
    }

    return "unknown key error";
}
