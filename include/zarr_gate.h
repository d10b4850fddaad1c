
/*
 * Batches and intents (DESIGN section 4, durability contract v2).
 *
 * Two LMDB environments: the tree's (fsynced: files, directories, the
 * durable record of every opened batch, the zarrs to recover) and the
 * gate's (never fsynced: live batches, intents, the keys in flight).
 *
 * A request that mutates zarrs "begins" (zarr_gate_begin(), one short
 * transaction of the gate's, no fsync): it takes or extends the batch of
 * every zarr it touches (all of them or none) and records one intent per
 * key it may change.  A batch that has no durable record yet
 * (b->nundurable) gets one in a tree transaction (zarr_gate_txn_durable()
 * in a group commit, with fsync) before the request is forwarded, and is
 * then marked durable (zarr_gate_mark_durable()).  When the backend has
 * answered, the tree effect is committed (zarr_gate_txn_finish(), group
 * commit, the one fsync of a request) and then the intents are released
 * (zarr_gate_release(): dropped, or kept as unknown for the resolver).
 * A process that dies between the two leaves intents that the resolver
 * settles from the backend (HEAD); applying a state twice is harmless.
 *
 * One request at a time per key: a begin on a key that still has an
 * intent (a request in flight, or an unknown outcome the resolver has not
 * settled) is ZARR_ERR_BUSY and changes nothing; the caller tries again
 * later.  So the order in which the tree applies a key's writes is the
 * order in which they reached the backend, and a HEAD (copy, complete,
 * resolver) sees the write it is about, not a later one.
 *
 * A zarr marked for recovery (zarr_recover.h: the intents were lost) is
 * ZARR_ERR_RECOVERING for every begin until it is rebuilt.
 *
 * tables of the gate:
 *   batches  bucket NUL zarr_id -> zarr_batch_t (kept when idle: its seq
 *            counts every begin on the zarr)
 *   intents  id (8, BE) -> zarr_intentrec + bucket, key prefix, zarr id,
 *            path (the object key is prefix + zarr id + "/" + path)
 *   keys     hash of an object key (8) -> how many intents hold it (4)
 *   meta     "next_batch"
 * tables of the tree:
 *   batches  bucket NUL zarr_id -> batch id (8), key prefix NUL checksum
 *            prefix: opened, maybe active
 *   recover  bucket NUL zarr_id -> key prefix NUL checksum prefix: to
 *            rebuild from a listing
 */


#ifndef _ZARR_GATE_H_INCLUDED_
#define _ZARR_GATE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "zarr_tree.h"


#define ZARR_OWNER_MAX        256

#define ZARR_ERR_CONFLICT     100      /* another owner's batch is active */
#define ZARR_ERR_STALE        101      /* resolver: the zarr moved on */
#define ZARR_ERR_BUSY         102      /* begin: a key has a request in
                                          flight or an unknown outcome */
#define ZARR_ERR_RECOVERING   103      /* the zarr is being rebuilt */

/* zarr_batch_t.flags */
#define ZARR_BATCH_DURABLE    0x01     /* its tree record is committed */

/* how many opened batches a begin reports (zarr_begin_t.opened) */
#define ZARR_GATE_OPENED_MAX  4

#define ZARR_INTENT_PENDING   0
#define ZARR_INTENT_UNKNOWN   1


typedef struct {
    uint64_t         id;             /* 0: no active batch */
    uint64_t         expires_ms;     /* wall clock; idle expiry */
    uint64_t         timeout_ms;
    uint64_t         inflight;       /* begun, not finished requests */
    uint64_t         seq;            /* begins on this zarr, ever */
    int              explicit_batch;
    uint32_t         flags;
    size_t           owner_len;
    char             owner[ZARR_OWNER_MAX];
} zarr_batch_t;


typedef struct {
    const char      *bucket;
    size_t           bucket_len;
    const char      *zarr_id;
    size_t           zarr_id_len;
} zarr_zref_t;


typedef struct {
    int              op;             /* ZARR_MUT_PUT, ZARR_MUT_DELETE */
    size_t           zarr;           /* index into the begin's zarrs */
    const char      *path;
    size_t           path_len;
} zarr_intent_t;


/* the process that owns intents: a dead one's intents are orphans */
typedef struct {
    uint32_t         pid;
    uint64_t         start;          /* process start time, any unit */
} zarr_proc_t;


typedef struct {
    /* in */
    const char           *owner;
    size_t                owner_len;
    uint64_t              timeout_ms;    /* for a batch this opens */
    const zarr_zref_t    *zarrs;
    size_t                nzarrs;
    const zarr_intent_t  *intents;
    size_t                nintents;
    zarr_proc_t           proc;
    const char           *prefix;        /* of the zarrs' keys: "zarr/" */
    size_t                prefix_len;
    const char           *checksum_prefix;   /* recorded for the mirror */
    size_t                checksum_prefix_len;

    /* out */
    int                   rc;            /* ZARR_OK, ZARR_ERR_CONFLICT,
                                            ZARR_ERR_BUSY or
                                            ZARR_ERR_RECOVERING */
    size_t                conflict;      /* the zarr refused */
    size_t                nundurable;    /* batches without a tree record:
                                            zarr_gate_txn_durable() */
    size_t                busy;          /* the intent whose key is busy */
    zarr_batch_t          batch;         /* taken, or in the way */
    uint64_t              intent_id;     /* the first; consecutive ids */

    /* the batches this begin opened (the first ZARR_GATE_OPENED_MAX) */
    uint64_t              opened[ZARR_GATE_OPENED_MAX];
    size_t                nopened;
} zarr_begin_t;


typedef struct {
    /* in */
    const zarr_zref_t    *zarrs;         /* as begun */
    size_t                nzarrs;
    uint64_t              batch_id;      /* of the begin */
    uint64_t              intent_id;
    size_t                nintents;
    int                   unknown;       /* keep the intents: resolve */
    const zarr_mutation_t *m;            /* the tree effect */
    size_t                n;

    /*
     * the backend refused the request as unauthenticated (401/403): the
     * batches its begin opened (drop[]) end at once unless another
     * request is in flight in them or they are explicit
     */
    const uint64_t       *drop;
    size_t                ndrop;

    /* out */
    int                   rc;
} zarr_finish_t;


typedef struct {
    uint64_t         id;
    uint64_t         batch_id;
    uint64_t         created_ms;     /* unknown: since when */
    zarr_proc_t      proc;
    int              op;
    int              state;
    const char      *bucket;
    size_t           bucket_len;
    const char      *prefix;
    size_t           prefix_len;
    const char      *zarr_id;
    size_t           zarr_id_len;
    const char      *path;
    size_t           path_len;
} zarr_intent_info_t;


typedef int (*zarr_intent_cb)(void *ctx, const zarr_intent_info_t *in);


/*
 * A begin: one transaction of the gate's, no fsync.  Its own result is in
 * b->rc; the return value is ZARR_OK unless the store failed.
 */
int zarr_gate_begin(zarr_store_t *s, zarr_begin_t *b, uint64_t now_ms,
    zarr_err_t *err);

/*
 * A tree transaction, for a caller that adds work once it holds LMDB's
 * write lock (requests that queued up while it waited for it): start
 * (waits for the lock), any finishes (their tree effect) and durable
 * records, end (commits with fsync, or aborts when rc is not ZARR_OK;
 * returns the result).
 */
typedef struct zarr_gate_txn_s  zarr_gate_txn_t;

int zarr_gate_txn_start(zarr_store_t *s, uint64_t now_ms,
    zarr_gate_txn_t **t, zarr_err_t *err);
int zarr_gate_txn_finish(zarr_gate_txn_t *t, zarr_finish_t *f);

/*
 * The durable record of the batch of every zarr of b (ids[i]: the batch
 * id recorded for b->zarrs[i], 0 when it has none active), and the zarr's
 * checksum prefix for the mirror.
 */
int zarr_gate_txn_durable(zarr_gate_txn_t *t, const zarr_begin_t *b,
    uint64_t *ids);
int zarr_gate_txn_end(zarr_gate_txn_t *t, int rc);

/* after zarr_gate_txn_durable() committed: the batches are durable */
int zarr_gate_mark_durable(zarr_store_t *s, const zarr_begin_t *b,
    const uint64_t *ids, zarr_err_t *err);

/*
 * After the tree effect of f committed (or without one): its intents are
 * dropped (kept as unknown with f->unknown), its batches' idle clocks
 * start again.  A gate transaction, no fsync.
 */
int zarr_gate_release(zarr_store_t *s, zarr_finish_t *f, uint64_t now_ms,
    zarr_err_t *err);

/*
 * Tests and tools: the finishes (tree, then release), then the begins
 * (with their durable records), in order.  A begin or finish that fails
 * on its own says so in its rc; the return value is ZARR_OK unless the
 * store failed.
 */
int zarr_gate_commit(zarr_store_t *s, zarr_finish_t *f, size_t nf,
    zarr_begin_t *b, size_t nb, uint64_t now_ms, zarr_err_t *err);

/*
 * Drops the durable records of batches that are no longer active (ended,
 * or idle past their timeout with nothing in flight); *n: how many.
 */
int zarr_gate_sweep(zarr_store_t *s, uint64_t now_ms, uint64_t *n,
    zarr_err_t *err);

/* the batch of a zarr; ZARR_ERR_NOTFOUND when none is active */
int zarr_gate_batch(zarr_store_t *s, const zarr_zref_t *z, uint64_t now_ms,
    zarr_batch_t *batch, zarr_err_t *err);

/* opens an explicit batch; ZARR_ERR_CONFLICT when another is active */
int zarr_gate_batch_open(zarr_store_t *s, const zarr_zref_t *z,
    const char *owner, size_t owner_len, uint64_t timeout_ms,
    uint64_t now_ms, zarr_batch_t *batch, zarr_err_t *err);

/*
 * Ends the zarr's batch: batch id, or whatever batch when id is 0
 * (complete, cancel).  ZARR_ERR_NOTFOUND when there is none,
 * ZARR_ERR_CONFLICT when the batch is another than id.
 */
int zarr_gate_batch_end(zarr_store_t *s, const zarr_zref_t *z, uint64_t id,
    zarr_err_t *err);

/*
 * Starts the idle clock of batch id again (a long task holding it, such
 * as reconcile); ZARR_ERR_CONFLICT when id is not the zarr's batch any
 * more (ended, cancelled, or expired and taken by another owner).
 */
int zarr_gate_batch_touch(zarr_store_t *s, const zarr_zref_t *z, uint64_t id,
    uint64_t now_ms, zarr_err_t *err);

/* how many batches are active */
int zarr_gate_count_active(zarr_store_t *s, uint64_t now_ms, uint64_t *n,
    zarr_err_t *err);

/* calls cb for every intent, in id order (read-only) */
int zarr_gate_intents(zarr_store_t *s, zarr_intent_cb cb, void *ctx,
    zarr_err_t *err);

/* zarrs to recover (zarr_recover_startup() marks them) */
int zarr_gate_recovering(zarr_store_t *s, const zarr_zref_t *z, int *yes,
    zarr_err_t *err);
int zarr_gate_recover_count(zarr_store_t *s, uint64_t *n, zarr_err_t *err);
/*
 * rec: what was recorded with the batch, the zarrs' key prefix NUL the
 * checksum prefix ("zarr/\0zarr-checksums/")
 */
typedef int (*zarr_zref_cb)(void *ctx, const zarr_zref_t *z,
    const char *rec, size_t rec_len);
int zarr_gate_recover_list(zarr_store_t *s, zarr_zref_cb cb, void *ctx,
    zarr_err_t *err);
int zarr_gate_recover_done(zarr_store_t *s, const zarr_zref_t *z,
    zarr_err_t *err);

/*
 * Start-up, before any worker (zarr_recover.c): with lost, every zarr
 * with a durable batch record is marked to recover and the records go;
 * in any case the zarrs with intents of the first version (kept in the
 * tree) are marked and those intents go.  *n: zarrs newly marked.  One
 * tree transaction, fsynced.
 */
int zarr_gate_recover_mark(zarr_store_t *s, int lost, uint64_t *n,
    zarr_err_t *err);

/*
 * Resolves intent id with what the backend holds (m: a PUT, a DELETE or
 * NULL for "nothing to change"); drops the intent and releases its share
 * of the batch.  No other request can have written its key meanwhile: a
 * begin on a key that has an intent is ZARR_ERR_BUSY.
 */
int zarr_gate_resolve(zarr_store_t *s, uint64_t intent_id,
    const zarr_mutation_t *m, uint64_t now_ms, zarr_err_t *err);


#endif /* _ZARR_GATE_H_INCLUDED_ */
