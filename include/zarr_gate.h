
/*
 * Batches and intents (DESIGN section 4), in the same LMDB environment and
 * the same transactions as the tree.
 *
 * A request that mutates zarrs "begins": it takes or extends the batch of
 * every zarr it touches (all of them or none) and records one intent per
 * key it may change, durably, before it is forwarded.  When the backend
 * has answered, it "finishes": the tree effect is applied, the intents are
 * dropped (or kept as unknown for the resolver) and the batch's idle clock
 * starts again.  Many begins and finishes share one transaction (group
 * commit): zarr_gate_commit() applies them in order, each with its own
 * result.
 *
 * One request at a time per key: a begin on a key that still has an
 * intent (a request in flight, or an unknown outcome the resolver has not
 * settled) is ZARR_ERR_BUSY and changes nothing; the caller tries again
 * later.  So the order in which the tree applies a key's writes is the
 * order in which they reached the backend, and a HEAD (copy, complete,
 * resolver) sees the write it is about, not a later one.
 *
 * tables:
 *   batches  bucket NUL zarr_id -> zarr_batchrec (kept when idle: its seq
 *            counts every begin on the zarr, for the resolver)
 *   intents  id (8, BE) -> zarr_intentrec + bucket, key prefix, zarr id,
 *            path (the object key is prefix + zarr id + "/" + path)
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
    int                   rc;            /* ZARR_OK, ZARR_ERR_CONFLICT or
                                            ZARR_ERR_BUSY */
    size_t                conflict;      /* the zarr refused */
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
 * One write transaction: the finishes, then the begins, in order.  A
 * begin or finish that fails on its own (conflict, bad input) says so in
 * its rc; the return value is ZARR_OK unless the transaction failed as a
 * whole (then nothing was written).
 */
int zarr_gate_commit(zarr_store_t *s, zarr_finish_t *f, size_t nf,
    zarr_begin_t *b, size_t nb, uint64_t now_ms, zarr_err_t *err);

/*
 * The same, step by step, for a caller that adds work once it holds
 * LMDB's write lock (requests that queued up while it waited for it):
 * start (waits for the lock), any finishes and begins, end (commits,
 * or aborts when rc is not ZARR_OK; returns the result).
 */
typedef struct zarr_gate_txn_s  zarr_gate_txn_t;

int zarr_gate_txn_start(zarr_store_t *s, uint64_t now_ms,
    zarr_gate_txn_t **t, zarr_err_t *err);
int zarr_gate_txn_finish(zarr_gate_txn_t *t, zarr_finish_t *f);
int zarr_gate_txn_begin(zarr_gate_txn_t *t, zarr_begin_t *b);
int zarr_gate_txn_end(zarr_gate_txn_t *t, int rc);

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

/*
 * Resolves intent id with what the backend holds (m: a PUT, a DELETE or
 * NULL for "nothing to change"); drops the intent and releases its share
 * of the batch.  No other request can have written its key meanwhile: a
 * begin on a key that has an intent is ZARR_ERR_BUSY.
 */
int zarr_gate_resolve(zarr_store_t *s, uint64_t intent_id,
    const zarr_mutation_t *m, uint64_t now_ms, zarr_err_t *err);


#endif /* _ZARR_GATE_H_INCLUDED_ */
