
/*
 * Key rules (DESIGN section 4): which keys belong to a zarr and which of
 * those are acceptable.
 */


#ifndef _ZARR_PATH_H_INCLUDED_
#define _ZARR_PATH_H_INCLUDED_


#include <stddef.h>


/* longest path component: entry keys must fit LMDB's 511-byte keys */
#define ZARR_NAME_MAX    480
#define ZARR_ID_MAX      255
#define ZARR_BUCKET_MAX  63


typedef enum {
    ZARR_PATH_OK = 0,
    ZARR_PATH_NOT_ZARR,            /* not under prefix<id>/ */
    ZARR_PATH_EMPTY_SEGMENT,
    ZARR_PATH_DOT_SEGMENT,
    ZARR_PATH_DOTDOT_SEGMENT,
    ZARR_PATH_TRAILING_SLASH,
    ZARR_PATH_BAD_UTF8,
    ZARR_PATH_NUL,
    ZARR_PATH_TOO_LONG,
    ZARR_PATH_ID_TOO_LONG          /* zarr id over ZARR_ID_MAX bytes */
} zarr_path_rc_t;


typedef struct {
    const char  *zarr_id;
    size_t       zarr_id_len;
    const char  *path;             /* relative to the zarr root */
    size_t       path_len;
    size_t       error_offset;     /* where the rule was broken, in key */
} zarr_key_t;


/*
 * Splits key (without the bucket) into zarr id and path for prefix.
 * "zarr/ID" alone, and keys outside prefix, are ZARR_PATH_NOT_ZARR.
 * An id longer than ZARR_ID_MAX is ZARR_PATH_ID_TOO_LONG (the store
 * cannot hold it: a bad request, not a failure of the gateway).
 * Prefix "" makes the first component the zarr id.
 */
int zarr_key_split(const char *key, size_t key_len, const char *prefix,
    size_t prefix_len, zarr_key_t *out);

/* checks a relative path: components non-empty, not . or .., UTF-8 */
int zarr_path_check(const char *path, size_t len, size_t *error_offset);

const char *zarr_path_strerror(int rc);


#endif /* _ZARR_PATH_H_INCLUDED_ */
