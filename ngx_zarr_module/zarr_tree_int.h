
/*
 * Internals of the LMDB store shared by its files (zarr_tree.c: the tree,
 * zarr_gate.c: batches and intents).  Not a public interface.
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
    int                 flags;
    uint64_t            map_size;
    uint64_t            visited;      /* entries since the last trim */
    void               *map_addr;     /* the data file's mapping */
    size_t              map_len;
    char               *data_path;
};


typedef struct zarr_apply_s  zarr_apply_t;


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
