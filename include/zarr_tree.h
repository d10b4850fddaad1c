
/*
 * The checksum tree store on LMDB (DESIGN section 5).
 *
 * Tables ("named databases"):
 *   zarrs    bucket NUL zarr_id        -> root directory record
 *   entries  parent id (8, BE) 'd' name -> directory record
 *            parent id (8, BE) 'f' name -> file record
 *   meta     "schema", "next_id"
 *
 * Entries of one directory are adjacent and sorted as the manifest wants
 * them: directories, then files, each in byte order of the name.
 * A mutation costs O(depth): it resolves its directory chain, writes one
 * file record, and flags the chain dirty.  Digests of dirty directories
 * are recomputed lazily, deepest first, by a flush (persisted), or on the
 * fly by readers (read-only, nothing written).
 */


#ifndef _ZARR_TREE_H_INCLUDED_
#define _ZARR_TREE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "zarr_json.h"
#include "zarr_digest.h"


#define ZARR_STORE_RDONLY      0x01
#define ZARR_STORE_NOSYNC      0x02      /* tests and benchmarks only */
#define ZARR_STORE_NOGATE      0x04      /* the tree alone (start-up) */

/* the gate's environment: a directory of the store's */
#define ZARR_GATE_DIR          "gate"
#define ZARR_GATE_MAP_SIZE     (256ULL << 20)

#define ZARR_ETAG_MAX          1024
#define ZARR_VERSION_ID_MAX    1024


typedef struct zarr_store_s  zarr_store_t;


typedef struct {
    char        msg[512];
} zarr_err_t;


typedef enum {
    ZARR_MUT_PUT = 1,
    ZARR_MUT_DELETE
} zarr_mut_op_t;


typedef struct {
    int          op;
    const char  *bucket;
    size_t       bucket_len;
    const char  *zarr_id;
    size_t       zarr_id_len;
    const char  *path;               /* relative to the zarr root */
    size_t       path_len;
    const char  *etag;               /* PUT: without quotes */
    size_t       etag_len;
    uint64_t     size;               /* PUT */
    const char  *version_id;         /* PUT: may be NULL */
    size_t       version_id_len;
} zarr_mutation_t;


typedef struct {
    uint64_t     map_size;
    uint64_t     used;               /* bytes of the map in use */
    uint64_t     zarrs;
    uint64_t     entries;
} zarr_store_stat_t;


/* every directory of a zarr, children before parents, root ("") last */
typedef int (*zarr_dir_cb)(void *ctx, const char *dir, size_t dir_len,
    const zarr_dir_sum_t *sum);

/* every file of a zarr, in the store's order (per directory, by name) */
typedef int (*zarr_file_cb)(void *ctx, const char *path, size_t path_len,
    const char *etag, size_t etag_len, uint64_t size);

typedef int (*zarr_zarr_cb)(void *ctx, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    const zarr_dir_sum_t *sum);


int zarr_store_open(zarr_store_t **sp, const char *dir, uint64_t map_size,
    int flags, zarr_err_t *err);
void zarr_store_close(zarr_store_t *s);

/*
 * Applies n mutations in one write transaction (one commit, one fsync).
 * Either all are applied or none; on ZARR_ERR_INVALID *bad is the index
 * of the offending mutation.
 */
int zarr_store_apply(zarr_store_t *s, const zarr_mutation_t *m, size_t n,
    size_t *bad, zarr_err_t *err);

/*
 * Recomputes and persists dirty digests; bucket NULL: every zarr.  The
 * recomputation runs in a read transaction: writers do not wait for it.
 * A directory that a mutation changed meanwhile stays dirty (for the
 * next flush or reader).
 */
int zarr_store_flush(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, zarr_err_t *err);

/*
 * The up-to-date digest of a zarr, as zarr_store_get_zarr() gives it,
 * and when the zarr was dirty its flush as well (zarr_store_flush()), so
 * that the next reader finds the digests computed.
 */
int zarr_store_sync_zarr(zarr_store_t *s, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    zarr_dir_sum_t *sum, zarr_err_t *err);

/* registers an empty zarr; ZARR_ERR_EXISTS if it is known */
int zarr_store_create_zarr(zarr_store_t *s, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    zarr_err_t *err);

/* up-to-date digest of a zarr (computed in memory when dirty) */
int zarr_store_get_zarr(zarr_store_t *s, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    zarr_dir_sum_t *sum, zarr_err_t *err);

/*
 * A directory ("" is the root): its sum and, when manifest is not NULL,
 * its exact manifest bytes appended to manifest.
 */
int zarr_store_get_dir(zarr_store_t *s, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    const char *dir, size_t dir_len, zarr_dir_sum_t *sum,
    zarr_buf_t *manifest, zarr_err_t *err);

/* the .checksum document of a directory, appended to doc */
int zarr_store_checksum_doc(zarr_store_t *s, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    const char *dir, size_t dir_len, zarr_buf_t *doc, zarr_err_t *err);

int zarr_store_walk(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, zarr_dir_cb cb, void *ctx,
    zarr_err_t *err);

int zarr_store_list(zarr_store_t *s, zarr_zarr_cb cb, void *ctx,
    zarr_err_t *err);

/*
 * The zarrs of one bucket whose ids sort after "after" (after_len 0: all
 * of them), in byte order; a seek, not a walk from the first zarr.
 */
int zarr_store_list_from(zarr_store_t *s, const char *bucket,
    size_t bucket_len, const char *after, size_t after_len, zarr_zarr_cb cb,
    void *ctx, zarr_err_t *err);

/* calls cb for every file of a zarr; ZARR_ERR_NOTFOUND: unknown zarr */
int zarr_store_files(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, zarr_file_cb cb, void *ctx,
    zarr_err_t *err);

int zarr_store_stat(zarr_store_t *s, zarr_store_stat_t *st, zarr_err_t *err);

/*
 * Tests: a flush takes a newer snapshot every this many entries it reads
 * (default 4,096; see zarr_store_flush()).
 */
void zarr_store_set_flush_renew(zarr_store_t *s, uint64_t entries);

/*
 * Tests: the map's pages are dropped from the process when its resident
 * file-backed and shared pages exceed this many bytes (default 32 MiB),
 * looked at every 2,048 entries visited and when a recomputation ends.
 */
void zarr_store_set_trim(zarr_store_t *s, size_t bytes);

/* clears stale reader slots of dead processes; returns how many */
int zarr_store_reader_check(zarr_store_t *s);


#endif /* _ZARR_TREE_H_INCLUDED_ */
