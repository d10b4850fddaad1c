
/*
 * Internals of the LMDB store shared by its files (zarr_tree.c: opening,
 * keys and records; zarr_tree_read.c: digests and walks; zarr_tree_apply.c:
 * mutations and flush; zarr_gate.c: batches and intents; zarr_outbox.c:
 * the mirror's queue).  Not a public interface.
 */


#ifndef _ZARR_TREE_INT_H_INCLUDED_
#define _ZARR_TREE_INT_H_INCLUDED_


#include <lmdb.h>

#include "zarr_tree.h"


struct zarr_store_s {
    MDB_env            *env;
    MDB_dbi             zarrs;
    MDB_dbi             entries;
    MDB_dbi             meta;
    MDB_dbi             batches;
    MDB_dbi             intents;
    MDB_dbi             outbox;
    MDB_dbi             zmeta;
    MDB_dbi             recover;      /* zarrs to rebuild from a listing */

    /*
     * the gate's environment (DESIGN 4, contract v2): live batches and
     * intents, apart from the tree and never fsynced; NULL read-only
     */
    MDB_env            *genv;
    MDB_dbi             gbatches;
    MDB_dbi             gintents;
    MDB_dbi             gkeys;
    MDB_dbi             gmeta;
    int                 flags;
    uint64_t            map_size;
    uint64_t            visited;      /* entries since the last trim */
    void               *map_addr;     /* the data file's mapping */
    size_t              map_len;
    char               *data_path;
    char               *flush_path;   /* flush.lock; NULL: none */
    uint64_t            calc_renew;   /* entries; ZARR_CALC_RENEW */
    size_t              trim_bytes;   /* ZARR_TRIM_BYTES */
};


typedef struct zarr_apply_s  zarr_apply_t;

/* entries: id (8, BE) type name -> a file or a directory record */
#define ZARR_TYPE_DIR        'd'
#define ZARR_TYPE_FILE       'f'

#define ZARR_DIR_DIRTY       0x01

#define ZARR_ID_LEN          8
#define ZARR_KEY_MAX         (ZARR_ID_LEN + 1 + ZARR_NAME_MAX)


/*
 * A directory record: fixed size, so updates are in place.  epoch: the
 * flush epoch (meta "epoch") in which a mutation last marked the
 * directory dirty.  A flush starts a new epoch, computes the dirty
 * digests from a snapshot without holding the write lock, and writes back
 * only the directories still marked in an older epoch: untouched since
 * the snapshot.  A directory marked in the current epoch has ancestors
 * marked in it too.  (Records written before epochs existed have 0 here,
 * the bytes were padding.)
 */
typedef struct {
    uint8_t             flags;
    uint8_t             digest_len;
    uint8_t             pad[2];
    uint32_t            epoch;
    uint64_t            id;
    uint64_t            count;
    uint64_t            size;
    char                digest[ZARR_DIGEST_MAX];
} zarr_dirrec_t;


/*
 * A recomputation over a read transaction.  With kept, the records of the
 * dirty directories it recomputed are appended there (zarr_kept_add), for
 * a flush to write back.  With renew, the read transaction is renewed
 * every ZARR_CALC_RENEW entries (s->calc_renew: a newer snapshot; gen
 * counts them), so
 * that a long flush does not keep LMDB from reusing the pages that
 * writers free meanwhile; only a flush may ask for that (it keeps nothing
 * that changed since it began).  The entries it visits count toward
 * dropping the map's pages (zarr_tree_visit) once the outermost
 * zarr_calc_dir() returns, not while it runs: a page dropped in the
 * middle of a recomputation is faulted in again by the next one, and on
 * some virtual machines those faults cost more than the work itself (a
 * recomputation of 1,000,000 entries in 80 directories took 0.85 s with a
 * drop every 65,536 entries, 0.25-0.35 s with one at its end).
 */
typedef struct {
    zarr_store_t       *s;
    MDB_txn            *txn;
    zarr_buf_t         *kept;
    zarr_dir_cb         cb;
    void               *ctx;
    zarr_buf_t          path;
    zarr_err_t         *err;
    int                 renew;
    uint64_t            since;        /* entries since the last renewal */
    uint64_t            gen;
    unsigned            depth;        /* zarr_calc_dir() calls under way */
    uint64_t            visits;       /* entries, counted when they end */
} zarr_calc_t;

#define ZARR_CALC_RENEW      4096

/*
 * What a mutation counts toward dropping the map's pages from the process
 * (zarr_tree_visit), on top of the 1 its commit counts: it reads (and
 * copies) several pages in several tables, and under steady writes the
 * pages it touches move through the whole file (copy-on-write), so the
 * process would map all of it between two trims.
 */
#define ZARR_MUTATION_VISITS 7


/* keys and records (zarr_tree.c) */
void zarr_make_zkey(zarr_buf_t *b, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len);
size_t zarr_entry_key(char *key, uint64_t parent, int type,
    const char *name, size_t name_len);
void zarr_dirrec_set(zarr_dirrec_t *d, const zarr_dir_sum_t *sum);
int zarr_kept_add(zarr_buf_t *kept, const char *key, size_t key_len,
    const zarr_dirrec_t *d);

/* flush epochs (zarr_tree.c) */
int zarr_tree_epoch(zarr_store_t *s, MDB_txn *txn, uint32_t *epoch,
    zarr_err_t *err);

/*
 * One flush at a time over the store, in every process and thread
 * (flock() of flush.lock, opened by each flush): a flush that waited
 * finds the digests the other one wrote back instead of computing them
 * again beside it.  Returns the descriptor to give back, or -1 (no lock
 * file: flushes then go side by side, as they may).
 */
int zarr_tree_flush_lock(zarr_store_t *s);
void zarr_tree_flush_unlock(int fd);

/* epoch a came before epoch b (they wrap) */
#define zarr_epoch_older(a, b)                                               \
    ((int32_t) ((uint32_t) (a) - (uint32_t) (b)) < 0)
void zarr_dirrec_sum(const zarr_dirrec_t *d, zarr_dir_sum_t *sum);
int zarr_dirrec_get(MDB_val *v, zarr_dirrec_t *d);

/* reading the tree (zarr_tree_read.c) */
int zarr_calc_dir(zarr_calc_t *c, uint64_t id, int dirty,
    zarr_dir_sum_t *sum, zarr_buf_t *manifest);
int zarr_get_root(zarr_store_t *s, MDB_txn *txn, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    zarr_dirrec_t *root, zarr_err_t *err);
int zarr_find_dir(zarr_store_t *s, MDB_txn *txn, uint64_t root,
    const char *dir, size_t dir_len, zarr_dirrec_t *d, zarr_err_t *err);



int zarr_tree_err(zarr_err_t *err, int rc, const char *fmt, ...);
int zarr_tree_mdb_err(zarr_store_t *s, zarr_err_t *err, int mrc,
    const char *what);
int zarr_tree_txn_begin(zarr_store_t *s, int rdonly, MDB_txn **txn,
    zarr_err_t *err);
void zarr_tree_visit(zarr_store_t *s, uint64_t n);

int zarr_tree_find_dir(zarr_store_t *s, MDB_txn *txn, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    const char *dir, size_t dir_len, uint64_t *id, int *dirty,
    zarr_dir_sum_t *sum, zarr_err_t *err);

int zarr_tree_zmeta_put(zarr_store_t *s, MDB_txn *txn, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    const char *cprefix, size_t cprefix_len, zarr_err_t *err);

/* an internal result of zarr_outbox_done() */
#define ZARR_ERR_STALE_DOC  200

/* checks a mutation before any transaction (ZARR_ERR_INVALID) */
int zarr_tree_check(const zarr_mutation_t *m, zarr_err_t *err);

/* applying mutations inside a write transaction the caller owns */
zarr_apply_t *zarr_tree_apply_start(zarr_store_t *s, MDB_txn *txn);
int zarr_tree_apply_one(zarr_apply_t *a, const zarr_mutation_t *m,
    zarr_err_t *err);
int zarr_tree_apply_end(zarr_apply_t *a, zarr_err_t *err);
void zarr_tree_apply_free(zarr_apply_t *a);


#endif /* _ZARR_TREE_INT_H_INCLUDED_ */
