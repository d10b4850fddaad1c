
/*
 * DANDI zarr_checksum directory digests (DESIGN section 2).
 *
 * A directory's manifest is built by adding its child directories, then
 * its files, each group sorted by name in byte order; the builder streams
 * the bytes into MD5 and, on request, keeps them for the caller.
 */


#ifndef _ZARR_DIGEST_H_INCLUDED_
#define _ZARR_DIGEST_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "zarr_json.h"


/* "<32 hex>-<count>--<size>": 32 + 1 + 20 + 2 + 20 and a NUL */
#define ZARR_DIGEST_MAX     80

#define ZARR_EMPTY_DIGEST   "481a2f77ab786a0f45aafd5db0971caa-0--0"


typedef enum {
    ZARR_OK = 0,
    ZARR_ERR_NOMEM,
    ZARR_ERR_INVALID,        /* bad input: bad UTF-8, bad order, ... */
    ZARR_ERR_NOTFOUND,
    ZARR_ERR_FULL,           /* the LMDB map is full */
    ZARR_ERR_STORE,          /* any other LMDB or I/O error */
    ZARR_ERR_EXISTS
} zarr_rc_t;


typedef struct {
    char        digest[ZARR_DIGEST_MAX];
    uint64_t    count;
    uint64_t    size;
} zarr_dir_sum_t;


typedef struct {
    void       *md5;           /* zarr_hash_t */
    zarr_buf_t  buf;           /* bytes not hashed yet, or all of them */
    int         keep;
    int         state;         /* 0: no entry, 1: dirs, 2: files */
    uint64_t    count;
    uint64_t    size;
    char       *last;          /* last name added, to check the order */
    size_t      last_len;
    size_t      last_cap;
} zarr_manifest_t;


int zarr_manifest_init(zarr_manifest_t *m, int keep);
void zarr_manifest_free(zarr_manifest_t *m);

/* returns ZARR_OK, ZARR_ERR_NOMEM or ZARR_ERR_INVALID (UTF-8, order) */
int zarr_manifest_add_dir(zarr_manifest_t *m, const char *name,
    size_t name_len, const char *digest, uint64_t count, uint64_t size);
int zarr_manifest_add_file(zarr_manifest_t *m, const char *name,
    size_t name_len, const char *etag, size_t etag_len, uint64_t size);

/*
 * Closes the manifest and writes the directory's digest, count and size.
 * With keep, m->buf then holds the exact manifest bytes.
 */
int zarr_manifest_finish(zarr_manifest_t *m, zarr_dir_sum_t *sum);

/*
 * The .checksum document of DESIGN section 3:
 * {"checksums":<manifest>,"digest":"<digest>","size":<size>}
 */
int zarr_checksum_document(zarr_buf_t *out, const char *manifest,
    size_t manifest_len, const zarr_dir_sum_t *sum);

/* one entry of an unsorted manifest: a file, or a directory with count */
typedef struct {
    const char  *name;
    size_t       name_len;
    const char  *digest;           /* ETag for a file */
    size_t       digest_len;
    uint64_t     size;
} zarr_entry_t;


/*
 * Sorts dirs and files by name (in place) and builds their manifest, as
 * the reference does from unsorted lists; a directory's count is read
 * from its digest.  With manifest, the bytes are appended to it.
 */
int zarr_manifest_build(zarr_entry_t *dirs, size_t ndirs,
    zarr_entry_t *files, size_t nfiles, zarr_dir_sum_t *sum,
    zarr_buf_t *manifest);

/* the file count of a directory digest "<md5>-<count>--<size>" */
int zarr_digest_count(const char *digest, size_t len, uint64_t *count);

/* byte order of UTF-8, shorter first: the order of manifest entries */
int zarr_name_cmp(const char *a, size_t alen, const char *b, size_t blen);


#endif /* _ZARR_DIGEST_H_INCLUDED_ */
