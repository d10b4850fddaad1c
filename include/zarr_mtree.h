
/*
 * An in-memory zarr tree built from a listing (path, size, ETag), for
 * zarrctl checksum: the same digests as the store, computed in one pass.
 */


#ifndef _ZARR_MTREE_H_INCLUDED_
#define _ZARR_MTREE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "zarr_digest.h"
#include "zarr_tree.h"


typedef struct zarr_mtree_s  zarr_mtree_t;


zarr_mtree_t *zarr_mtree_create(void);
void zarr_mtree_free(zarr_mtree_t *t);

/*
 * Adds a file; line is reported in errors (0: none).  The path is
 * checked with zarr_path_check.  Returns ZARR_OK, ZARR_ERR_INVALID or
 * ZARR_ERR_NOMEM, with a message in err.
 */
int zarr_mtree_add(zarr_mtree_t *t, const char *path, size_t path_len,
    uint64_t size, const char *etag, size_t etag_len, uint64_t line,
    zarr_err_t *err);

/*
 * The same without copying path and etag: they must stay valid and
 * unchanged until zarr_mtree_free() (a listing read whole).
 */
int zarr_mtree_add_ref(zarr_mtree_t *t, const char *path, size_t path_len,
    uint64_t size, const char *etag, size_t etag_len, uint64_t line,
    zarr_err_t *err);

/*
 * Adds the files of a tsv listing held whole in data (lines as
 * zarr_listing_tsv() reads them, numbered from 1, blank ones skipped),
 * which must stay valid and unchanged until zarr_mtree_free().  With
 * zarr_mtree_threads(), parts of a large listing are read in parallel.
 * Returns ZARR_OK, or the error of the first bad line, its number in
 * *line: ZARR_ERR_INVALID (a malformed line, a bad path or ETag) or
 * ZARR_ERR_NOMEM, with a message in err; the tree then holds only some
 * of the files.
 */
int zarr_mtree_add_tsv(zarr_mtree_t *t, const char *data, size_t len,
    uint64_t *line, zarr_err_t *err);

/*
 * n threads (default 1) for zarr_mtree_add_tsv() and zarr_mtree_compute():
 * subtrees below the top directories are computed in parallel; cb still
 * sees every directory in order, from the caller's thread.  Computed on
 * one thread with zarr_mtree_keep_manifests().
 */
void zarr_mtree_threads(zarr_mtree_t *t, int n);

/*
 * Computes every digest; cb (may be NULL) sees every directory, children
 * first, root ("") last.  A path given twice is ZARR_ERR_INVALID.
 */
int zarr_mtree_compute(zarr_mtree_t *t, zarr_dir_cb cb, void *ctx,
    zarr_dir_sum_t *root, zarr_err_t *err);


/*
 * With this, zarr_mtree_manifest() gives, during the walk callback, the
 * exact manifest of the directory being reported (for .checksum
 * documents).
 */
void zarr_mtree_keep_manifests(zarr_mtree_t *t);
const zarr_buf_t *zarr_mtree_manifest(zarr_mtree_t *t);


#endif /* _ZARR_MTREE_H_INCLUDED_ */
