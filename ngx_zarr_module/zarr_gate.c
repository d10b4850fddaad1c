
/*
 * Batches and intents.  See zarr_gate.h.
 */


#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zarr_gate.h"
#include "zarr_path.h"
#include "zarr_tree_int.h"


#define ZARR_OP_NONE   0

/* intent record flags */
#define ZARR_INTENT_COUNTED  0x01    /* still counted in the batch */


typedef struct {
    uint64_t         batch_id;
    uint64_t         created_ms;
    uint64_t         pstart;
    uint32_t         pid;
    uint8_t          op;
    uint8_t          state;
    uint8_t          flags;
    uint8_t          pad;
    uint16_t         bucket_len;
    uint16_t         zarr_id_len;
    uint16_t         path_len;
    uint16_t         prefix_len;
} zarr_intentrec_t;


/* a transaction of the gate's environment */
typedef struct {
    zarr_store_t    *s;
    MDB_txn         *txn;
    int              rdonly;
    uint64_t         now;
    uint64_t         next_batch;
    uint64_t         next_intent;
    zarr_buf_t       zkey;
    zarr_err_t      *err;
} zarr_gate_t;


static int zarr_gate_open(zarr_gate_t *g, zarr_store_t *s, int rdonly,
    uint64_t now, const zarr_zref_t *z, zarr_batch_t *b, zarr_err_t *err);
static int zarr_gate_close(zarr_gate_t *g, int rc);
static int zarr_gate_next_batch(zarr_gate_t *g);
static int zarr_gate_next_intent(zarr_gate_t *g);
static int zarr_gate_zkey(zarr_gate_t *g, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len);
static int zarr_gate_get(zarr_gate_t *g, zarr_batch_t *b);
static int zarr_gate_put(zarr_gate_t *g, zarr_batch_t *b);
static int zarr_gate_active(const zarr_batch_t *b, uint64_t now);
static void zarr_gate_key(char *key, uint64_t id);
static int zarr_gate_dropped(const zarr_finish_t *f, uint64_t batch_id);
static int zarr_gate_release_one(zarr_gate_t *g, uint64_t id, int unknown,
    const zarr_finish_t *f);
static int zarr_gate_keys(zarr_gate_t *g, uint64_t h, int delta);
static int zarr_gate_key_busy(zarr_gate_t *g, uint64_t h, int *busy);
static uint64_t zarr_gate_key_hash(const char *bucket, size_t bucket_len,
    const char *prefix, size_t prefix_len, const char *zarr_id,
    size_t zarr_id_len, const char *path, size_t path_len);
static const char *zarr_gate_intent_read(const MDB_val *v,
    zarr_intentrec_t *in);
static uint64_t zarr_gate_intent_hash(const zarr_intentrec_t *in,
    const char *p);
static int zarr_gate_durable_put(zarr_store_t *s, MDB_txn *txn,
    const zarr_zref_t *z, uint64_t id, const zarr_begin_t *b,
    zarr_err_t *err);
static int zarr_gate_durable_del(zarr_store_t *s, const zarr_zref_t *z,
    uint64_t id, zarr_err_t *err);


/*
 * Starts a transaction of the gate's for g; with z, makes z the current
 * zarr and reads its batch record into b.  On failure nothing is left
 * open.
 */

static int
zarr_gate_open(zarr_gate_t *g, zarr_store_t *s, int rdonly, uint64_t now,
    const zarr_zref_t *z, zarr_batch_t *b, zarr_err_t *err)
{
    int  rc, mrc;

    memset(g, 0, sizeof(zarr_gate_t));
    g->s = s;
    g->rdonly = rdonly;
    g->now = now;
    g->err = err;
    zarr_buf_init(&g->zkey);

    if (s->genv == NULL) {
        g->txn = NULL;
        return zarr_tree_err(err, ZARR_ERR_STORE,
                             "the store is open without its gate");
    }

    mrc = mdb_txn_begin(s->genv, NULL, rdonly ? MDB_RDONLY : 0, &g->txn);
    if (mrc != 0) {
        g->txn = NULL;
        return zarr_tree_mdb_err(s, err, mrc, "mdb_txn_begin() (gate)");
    }

    if (z) {
        rc = zarr_gate_zkey(g, z->bucket, z->bucket_len, z->zarr_id,
                            z->zarr_id_len);

        if (rc == ZARR_OK) {
            rc = zarr_gate_get(g, b);
        }

        if (rc != ZARR_OK) {
            return zarr_gate_close(g, rc);
        }
    }

    return ZARR_OK;
}


/* ends g's transaction: commits a write that went well, else aborts */

static int
zarr_gate_close(zarr_gate_t *g, int rc)
{
    int  mrc;

    zarr_buf_free(&g->zkey);

    if (g->txn == NULL) {
        return rc;
    }

    if (rc != ZARR_OK || g->rdonly) {
        mdb_txn_abort(g->txn);
        g->txn = NULL;
        return rc;
    }

    if (g->next_batch) {
        MDB_val  k, v;

        k.mv_data = "next_batch";
        k.mv_size = sizeof("next_batch") - 1;
        v.mv_data = &g->next_batch;
        v.mv_size = sizeof(uint64_t);

        mrc = mdb_put(g->txn, g->s->gmeta, &k, &v, 0);
        if (mrc != 0) {
            mdb_txn_abort(g->txn);
            g->txn = NULL;
            return zarr_tree_mdb_err(g->s, g->err, mrc, "writing a counter");
        }
    }

    mrc = mdb_txn_commit(g->txn);
    g->txn = NULL;

    if (mrc != 0) {
        return zarr_tree_mdb_err(g->s, g->err, mrc, "mdb_txn_commit() (gate)");
    }

    return ZARR_OK;
}


static int
zarr_gate_active(const zarr_batch_t *b, uint64_t now)
{
    return b->id != 0 && (b->inflight > 0 || b->expires_ms > now);
}


static void
zarr_gate_key(char *key, uint64_t id)
{
    int  i;

    for (i = 7; i >= 0; i--) {
        key[i] = (char) (id & 0xff);
        id >>= 8;
    }
}


/*
 * The next batch id.  A new gate (the old one lost) starts from the
 * clock, in microseconds: ids never come again, not even then.
 */

static int
zarr_gate_next_batch(zarr_gate_t *g)
{
    int              mrc;
    MDB_val          k, v;
    struct timespec  ts;

    if (g->next_batch) {
        return ZARR_OK;
    }

    k.mv_data = "next_batch";
    k.mv_size = sizeof("next_batch") - 1;

    mrc = mdb_get(g->txn, g->s->gmeta, &k, &v);

    if (mrc == MDB_NOTFOUND) {
        clock_gettime(CLOCK_REALTIME, &ts);
        g->next_batch = (uint64_t) ts.tv_sec * 1000000
                        + ts.tv_nsec / 1000;
        return ZARR_OK;
    }

    if (mrc != 0 || v.mv_size != sizeof(uint64_t)) {
        return zarr_tree_mdb_err(g->s, g->err, mrc ? mrc : MDB_CORRUPTED,
                                 "reading a counter");
    }

    memcpy(&g->next_batch, v.mv_data, sizeof(uint64_t));

    return ZARR_OK;
}


/*
 * The next intent id: one more than the highest in the table.  An id may
 * come again once its intent is gone (nothing refers to it then), and no
 * counter has to be written with every begin.
 */

static int
zarr_gate_next_intent(zarr_gate_t *g)
{
    int          mrc, i;
    uint64_t     id;
    MDB_cursor  *cur;
    MDB_val      k, v;

    mrc = mdb_cursor_open(g->txn, g->s->gintents, &cur);
    if (mrc != 0) {
        return zarr_tree_mdb_err(g->s, g->err, mrc, "mdb_cursor_open()");
    }

    mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    id = 0;

    if (mrc == 0 && k.mv_size == 8) {
        for (i = 0; i < 8; i++) {
            id = (id << 8) | ((unsigned char *) k.mv_data)[i];
        }
    }

    mdb_cursor_close(cur);

    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        return zarr_tree_mdb_err(g->s, g->err, mrc, "reading intents");
    }

    g->next_intent = id + 1;

    return ZARR_OK;
}


static int
zarr_gate_zkey(zarr_gate_t *g, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len)
{
    if (bucket_len == 0 || bucket_len > ZARR_BUCKET_MAX || zarr_id_len == 0
        || zarr_id_len > ZARR_ID_MAX
        || memchr(bucket, '\0', bucket_len) != NULL)
    {
        return zarr_tree_err(g->err, ZARR_ERR_INVALID,
                             "invalid bucket or zarr id");
    }

    g->zkey.len = 0;

    if (zarr_buf_add(&g->zkey, bucket, bucket_len) != 0
        || zarr_buf_add(&g->zkey, "", 1) != 0
        || zarr_buf_add(&g->zkey, zarr_id, zarr_id_len) != 0)
    {
        return zarr_tree_err(g->err, ZARR_ERR_NOMEM, "out of memory");
    }

    return ZARR_OK;
}


/* the batch record of g->zkey; zeroed when there is none */

static int
zarr_gate_get(zarr_gate_t *g, zarr_batch_t *b)
{
    int      mrc;
    MDB_val  k, v;

    k.mv_data = g->zkey.data;
    k.mv_size = g->zkey.len;

    mrc = mdb_get(g->txn, g->s->gbatches, &k, &v);

    if (mrc == MDB_NOTFOUND) {
        memset(b, 0, sizeof(zarr_batch_t));
        return ZARR_OK;
    }

    if (mrc != 0 || v.mv_size != sizeof(zarr_batch_t)) {
        return zarr_tree_mdb_err(g->s, g->err, mrc ? mrc : MDB_CORRUPTED,
                                 "reading a batch");
    }

    memcpy(b, v.mv_data, sizeof(zarr_batch_t));

    return ZARR_OK;
}


static int
zarr_gate_put(zarr_gate_t *g, zarr_batch_t *b)
{
    int      mrc;
    MDB_val  k, v;

    k.mv_data = g->zkey.data;
    k.mv_size = g->zkey.len;
    v.mv_data = b;
    v.mv_size = sizeof(zarr_batch_t);

    mrc = mdb_put(g->txn, g->s->gbatches, &k, &v, 0);
    if (mrc != 0) {
        return zarr_tree_mdb_err(g->s, g->err, mrc, "writing a batch");
    }

    return ZARR_OK;
}


/* the keys table: how many intents hold the key of hash h */

static int
zarr_gate_key_busy(zarr_gate_t *g, uint64_t h, int *busy)
{
    int      mrc;
    char     key[8];
    MDB_val  k, v;

    zarr_gate_key(key, h);
    k.mv_data = key;
    k.mv_size = 8;

    mrc = mdb_get(g->txn, g->s->gkeys, &k, &v);

    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        return zarr_tree_mdb_err(g->s, g->err, mrc, "reading a key");
    }

    *busy = (mrc == 0);

    return ZARR_OK;
}


static int
zarr_gate_keys(zarr_gate_t *g, uint64_t h, int delta)
{
    int       mrc;
    char      key[8];
    uint32_t  n;
    MDB_val   k, v;

    zarr_gate_key(key, h);
    k.mv_data = key;
    k.mv_size = 8;

    n = 0;

    mrc = mdb_get(g->txn, g->s->gkeys, &k, &v);

    if (mrc == 0 && v.mv_size == sizeof(uint32_t)) {
        memcpy(&n, v.mv_data, sizeof(uint32_t));

    } else if (mrc != 0 && mrc != MDB_NOTFOUND) {
        return zarr_tree_mdb_err(g->s, g->err, mrc, "reading a key");
    }

    if (delta < 0 && n <= (uint32_t) -delta) {
        mrc = mdb_del(g->txn, g->s->gkeys, &k, NULL);
        if (mrc == MDB_NOTFOUND) {
            mrc = 0;
        }

    } else {
        n += delta;
        v.mv_data = &n;
        v.mv_size = sizeof(uint32_t);
        mrc = mdb_put(g->txn, g->s->gkeys, &k, &v, 0);
    }

    if (mrc != 0) {
        return zarr_tree_mdb_err(g->s, g->err, mrc, "writing a key");
    }

    return ZARR_OK;
}


int
zarr_gate_begin(zarr_store_t *s, zarr_begin_t *b, uint64_t now_ms,
    zarr_err_t *err)
{
    int                 rc, mrc, busy;
    char                key[8], *p;
    size_t              i, j;
    uint64_t            expires;
    MDB_val             k, v;
    zarr_gate_t         g;
    zarr_batch_t        cur;
    zarr_intentrec_t    in;
    const zarr_zref_t  *z;

    b->rc = ZARR_OK;
    b->nopened = 0;
    b->nundurable = 0;
    b->intent_id = 0;

    if (b->nzarrs == 0 || b->owner_len > ZARR_OWNER_MAX
        || b->prefix_len > 1024)
    {
        b->rc = ZARR_ERR_INVALID;
        return ZARR_OK;
    }

    for (i = 0; i < b->nintents; i++) {
        if (b->intents[i].zarr >= b->nzarrs
            || b->intents[i].path_len > 0xffff)
        {
            b->rc = ZARR_ERR_INVALID;
            return ZARR_OK;
        }
    }

    /* a zarr being rebuilt takes no writes (a read of the tree) */

    for (i = 0; i < b->nzarrs; i++) {
        rc = zarr_gate_recovering(s, &b->zarrs[i], &busy, err);

        if (rc == ZARR_ERR_INVALID) {
            b->rc = rc;
            return ZARR_OK;
        }

        if (rc != ZARR_OK) {
            return rc;
        }

        if (busy) {
            b->rc = ZARR_ERR_RECOVERING;
            b->conflict = i;
            return ZARR_OK;
        }
    }

    rc = zarr_gate_open(&g, s, 0, now_ms, NULL, NULL, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    /* all or nothing: look at every zarr before taking any */

    for (i = 0; i < b->nzarrs; i++) {
        z = &b->zarrs[i];

        rc = zarr_gate_zkey(&g, z->bucket, z->bucket_len, z->zarr_id,
                            z->zarr_id_len);
        if (rc == ZARR_ERR_INVALID) {
            b->rc = rc;
            g.rdonly = 1;
            return zarr_gate_close(&g, ZARR_OK);
        }

        if (rc != ZARR_OK || (rc = zarr_gate_get(&g, &cur)) != ZARR_OK) {
            return zarr_gate_close(&g, rc);
        }

        if (zarr_gate_active(&cur, now_ms)
            && (cur.owner_len != b->owner_len
                || memcmp(cur.owner, b->owner, b->owner_len) != 0))
        {
            b->rc = ZARR_ERR_CONFLICT;
            b->conflict = i;
            b->batch = cur;
            g.rdonly = 1;
            return zarr_gate_close(&g, ZARR_OK);
        }
    }

    /* one request at a time per key (a request's own keys may repeat) */

    for (i = 0; i < b->nintents; i++) {
        z = &b->zarrs[b->intents[i].zarr];

        if (b->intents[i].op == ZARR_OP_NONE) {
            continue;
        }

        rc = zarr_gate_key_busy(&g,
                 zarr_gate_key_hash(z->bucket, z->bucket_len, b->prefix,
                                    b->prefix_len, z->zarr_id,
                                    z->zarr_id_len, b->intents[i].path,
                                    b->intents[i].path_len),
                 &busy);
        if (rc != ZARR_OK) {
            return zarr_gate_close(&g, rc);
        }

        if (busy) {
            b->rc = ZARR_ERR_BUSY;
            b->busy = i;
            g.rdonly = 1;
            return zarr_gate_close(&g, ZARR_OK);
        }
    }

    for (i = 0; i < b->nzarrs; i++) {
        z = &b->zarrs[i];

        if ((rc = zarr_gate_zkey(&g, z->bucket, z->bucket_len, z->zarr_id,
                                 z->zarr_id_len)) != ZARR_OK
            || (rc = zarr_gate_get(&g, &cur)) != ZARR_OK)
        {
            return zarr_gate_close(&g, rc);
        }

        if (!zarr_gate_active(&cur, now_ms)) {
            rc = zarr_gate_next_batch(&g);
            if (rc != ZARR_OK) {
                return zarr_gate_close(&g, rc);
            }

            cur.id = g.next_batch++;

            if (b->nopened < ZARR_GATE_OPENED_MAX) {
                b->opened[b->nopened++] = cur.id;
            }

            cur.timeout_ms = b->timeout_ms;
            cur.expires_ms = 0;
            cur.inflight = 0;
            cur.explicit_batch = 0;
            cur.flags = 0;
            cur.owner_len = b->owner_len;
            memset(cur.owner, 0, sizeof(cur.owner));
            memcpy(cur.owner, b->owner, b->owner_len);
        }

        if (!(cur.flags & ZARR_BATCH_DURABLE)) {
            b->nundurable++;
        }

        cur.seq++;
        cur.inflight++;

        expires = now_ms + cur.timeout_ms;
        if (expires > cur.expires_ms) {
            cur.expires_ms = expires;
        }

        rc = zarr_gate_put(&g, &cur);
        if (rc != ZARR_OK) {
            return zarr_gate_close(&g, rc);
        }

        if (i == 0) {
            b->batch = cur;
        }
    }

    rc = zarr_gate_next_intent(&g);
    if (rc != ZARR_OK) {
        return zarr_gate_close(&g, rc);
    }

    /*
     * Intents: one per key, plus one without a key for every zarr that
     * has none, so that the finish finds every batch it counted in.
     */

    b->intent_id = g.next_intent;

    for (i = 0; i < b->nintents + b->nzarrs; i++) {
        size_t       zi, plen;
        const char  *path;
        int          op, needed;

        if (i < b->nintents) {
            zi = b->intents[i].zarr;
            path = b->intents[i].path;
            plen = b->intents[i].path_len;
            op = b->intents[i].op;

        } else {
            zi = i - b->nintents;
            needed = 1;

            for (j = 0; j < b->nintents; j++) {
                if (b->intents[j].zarr == zi) {
                    needed = 0;
                    break;
                }
            }

            if (!needed) {
                continue;
            }

            path = "";
            plen = 0;
            op = ZARR_OP_NONE;
        }

        z = &b->zarrs[zi];

        if ((rc = zarr_gate_zkey(&g, z->bucket, z->bucket_len, z->zarr_id,
                                 z->zarr_id_len)) != ZARR_OK
            || (rc = zarr_gate_get(&g, &cur)) != ZARR_OK)
        {
            return zarr_gate_close(&g, rc);
        }

        memset(&in, 0, sizeof(zarr_intentrec_t));
        in.batch_id = cur.id;
        in.created_ms = now_ms;
        in.pid = b->proc.pid;
        in.pstart = b->proc.start;
        in.op = (uint8_t) op;
        in.state = ZARR_INTENT_PENDING;
        in.flags = ZARR_INTENT_COUNTED;
        in.bucket_len = (uint16_t) z->bucket_len;
        in.zarr_id_len = (uint16_t) z->zarr_id_len;
        in.path_len = (uint16_t) plen;
        in.prefix_len = (uint16_t) b->prefix_len;

        zarr_gate_key(key, g.next_intent++);
        k.mv_data = key;
        k.mv_size = 8;
        v.mv_size = sizeof(zarr_intentrec_t) + z->bucket_len
                    + b->prefix_len + z->zarr_id_len + plen;

        mrc = mdb_put(g.txn, s->gintents, &k, &v, MDB_RESERVE);
        if (mrc != 0) {
            return zarr_gate_close(&g, zarr_tree_mdb_err(s, err, mrc,
                                                     "writing an intent"));
        }

        p = v.mv_data;
        memcpy(p, &in, sizeof(zarr_intentrec_t));
        p += sizeof(zarr_intentrec_t);
        memcpy(p, z->bucket, z->bucket_len);
        p += z->bucket_len;

        if (b->prefix_len) {
            memcpy(p, b->prefix, b->prefix_len);
            p += b->prefix_len;
        }

        memcpy(p, z->zarr_id, z->zarr_id_len);
        p += z->zarr_id_len;

        if (plen) {
            memcpy(p, path, plen);
        }

        if (op != ZARR_OP_NONE) {
            rc = zarr_gate_keys(&g, zarr_gate_key_hash(z->bucket,
                                    z->bucket_len, b->prefix, b->prefix_len,
                                    z->zarr_id, z->zarr_id_len, path, plen),
                                1);
            if (rc != ZARR_OK) {
                return zarr_gate_close(&g, rc);
            }
        }
    }

    return zarr_gate_close(&g, ZARR_OK);
}


/*
 * Drops (or, with unknown, keeps for the resolver) intent id and gives
 * back its share of the batch, whose idle clock starts again.  A batch
 * that f drops ends when this was its last request in flight.
 */

static int
zarr_gate_dropped(const zarr_finish_t *f, uint64_t batch_id)
{
    size_t  i;

    for (i = 0; f && i < f->ndrop; i++) {
        if (f->drop[i] == batch_id) {
            return 1;
        }
    }

    return 0;
}


static int
zarr_gate_release_one(zarr_gate_t *g, uint64_t id, int unknown,
    const zarr_finish_t *f)
{
    int               rc, mrc;
    char              key[8], *p;
    const char       *str;
    MDB_val           k, v;
    zarr_batch_t      cur;
    zarr_intentrec_t  in;

    zarr_gate_key(key, id);
    k.mv_data = key;
    k.mv_size = 8;

    mrc = mdb_get(g->txn, g->s->gintents, &k, &v);

    if (mrc == MDB_NOTFOUND) {
        return ZARR_OK;
    }

    if (mrc != 0) {
        return zarr_tree_mdb_err(g->s, g->err, mrc, "reading an intent");
    }

    str = zarr_gate_intent_read(&v, &in);
    if (str == NULL) {
        return zarr_tree_err(g->err, ZARR_ERR_STORE, "corrupt intent");
    }

    if (in.flags & ZARR_INTENT_COUNTED) {
        rc = zarr_gate_zkey(g, str, in.bucket_len,
                            str + in.bucket_len + in.prefix_len,
                            in.zarr_id_len);

        if (rc == ZARR_OK) {
            rc = zarr_gate_get(g, &cur);
        }

        if (rc != ZARR_OK) {
            return rc;
        }

        if (cur.id == in.batch_id && cur.inflight > 0) {
            cur.inflight--;

            if (cur.expires_ms < g->now + cur.timeout_ms) {
                cur.expires_ms = g->now + cur.timeout_ms;
            }

            if (cur.inflight == 0 && !cur.explicit_batch
                && zarr_gate_dropped(f, cur.id))
            {
                /* as zarr_gate_batch_end(): the seq moves on */
                cur.id = 0;
                cur.expires_ms = 0;
                cur.flags = 0;
                cur.seq++;
            }

            rc = zarr_gate_put(g, &cur);
            if (rc != ZARR_OK) {
                return rc;
            }
        }
    }

    if (unknown && in.op != ZARR_OP_NONE) {
        /* since when the outcome is unknown: the resolver waits a while */
        in.state = ZARR_INTENT_UNKNOWN;
        in.flags &= ~ZARR_INTENT_COUNTED;
        in.created_ms = g->now;

        /* LMDB's pages are read-only: write a modified copy */
        p = malloc(v.mv_size);
        if (p == NULL) {
            return zarr_tree_err(g->err, ZARR_ERR_NOMEM, "out of memory");
        }

        memcpy(p, v.mv_data, v.mv_size);
        memcpy(p, &in, sizeof(zarr_intentrec_t));
        v.mv_data = p;

        mrc = mdb_put(g->txn, g->s->gintents, &k, &v, 0);
        free(p);

        if (mrc != 0) {
            return zarr_tree_mdb_err(g->s, g->err, mrc, "updating an intent");
        }

        return ZARR_OK;
    }

    /* its key is free again */

    if (in.op != ZARR_OP_NONE) {
        rc = zarr_gate_keys(g, zarr_gate_intent_hash(&in, str), -1);
        if (rc != ZARR_OK) {
            return rc;
        }
    }

    mrc = mdb_del(g->txn, g->s->gintents, &k, NULL);
    if (mrc != 0) {
        return zarr_tree_mdb_err(g->s, g->err, mrc, "dropping an intent");
    }

    return ZARR_OK;
}


int
zarr_gate_release(zarr_store_t *s, zarr_finish_t *f, uint64_t now_ms,
    zarr_err_t *err)
{
    int          rc;
    size_t       i;
    zarr_gate_t  g;

    rc = zarr_gate_open(&g, s, 0, now_ms, NULL, NULL, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    for (i = 0; rc == ZARR_OK && i < f->nintents; i++) {
        rc = zarr_gate_release_one(&g, f->intent_id + i, f->unknown, f);
    }

    return zarr_gate_close(&g, rc);
}


/* the tree's part: effects and durable batch records, one commit */

struct zarr_gate_txn_s {
    zarr_store_t    *s;
    MDB_txn         *txn;
    zarr_apply_t    *a;
    size_t           n;
    uint64_t         now;
    zarr_err_t      *err;
};


int
zarr_gate_txn_start(zarr_store_t *s, uint64_t now_ms, zarr_gate_txn_t **tp,
    zarr_err_t *err)
{
    int               rc;
    zarr_gate_txn_t  *t;

    t = calloc(1, sizeof(zarr_gate_txn_t));
    if (t == NULL) {
        return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    t->s = s;
    t->now = now_ms;
    t->err = err;

    rc = zarr_tree_txn_begin(s, 0, &t->txn, err);
    if (rc != ZARR_OK) {
        free(t);
        return rc;
    }

    t->a = zarr_tree_apply_start(s, t->txn);
    if (t->a == NULL) {
        mdb_txn_abort(t->txn);
        free(t);
        return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    *tp = t;

    return ZARR_OK;
}


int
zarr_gate_txn_finish(zarr_gate_txn_t *t, zarr_finish_t *f)
{
    int     rc;
    size_t  i;

    f->rc = ZARR_OK;
    t->n += f->n;

    for (i = 0; i < f->n; i++) {
        if (zarr_tree_check(&f->m[i], NULL) != ZARR_OK) {
            f->rc = ZARR_ERR_INVALID;
            return ZARR_OK;
        }
    }

    for (i = 0; i < f->n; i++) {
        rc = zarr_tree_apply_one(t->a, &f->m[i], t->err);
        if (rc != ZARR_OK) {
            return rc;
        }
    }

    return ZARR_OK;
}


int
zarr_gate_txn_durable(zarr_gate_txn_t *t, const zarr_begin_t *b,
    uint64_t *ids)
{
    int                 rc;
    size_t              i;
    zarr_gate_t         g;
    zarr_batch_t        cur;
    const zarr_zref_t  *z;

    /* the batch ids, as the gate has them now (a read) */

    rc = zarr_gate_open(&g, t->s, 1, t->now, NULL, NULL, t->err);
    if (rc != ZARR_OK) {
        return rc;
    }

    for (i = 0; i < b->nzarrs; i++) {
        z = &b->zarrs[i];

        if ((rc = zarr_gate_zkey(&g, z->bucket, z->bucket_len, z->zarr_id,
                                 z->zarr_id_len)) != ZARR_OK
            || (rc = zarr_gate_get(&g, &cur)) != ZARR_OK)
        {
            return zarr_gate_close(&g, rc);
        }

        ids[i] = zarr_gate_active(&cur, t->now) ? cur.id : 0;
    }

    (void) zarr_gate_close(&g, ZARR_OK);

    for (i = 0; i < b->nzarrs; i++) {
        z = &b->zarrs[i];

        if (ids[i] == 0) {
            continue;
        }

        rc = zarr_gate_durable_put(t->s, t->txn, z, ids[i], b, t->err);
        if (rc != ZARR_OK) {
            return rc;
        }

        if (b->checksum_prefix) {
            rc = zarr_tree_zmeta_put(t->s, t->txn, z->bucket, z->bucket_len,
                                     z->zarr_id, z->zarr_id_len,
                                     b->checksum_prefix,
                                     b->checksum_prefix_len, t->err);
            if (rc != ZARR_OK) {
                return rc;
            }
        }

        t->n++;
    }

    return ZARR_OK;
}


int
zarr_gate_txn_end(zarr_gate_txn_t *t, int rc)
{
    int            mrc;
    zarr_store_t  *s;

    s = t->s;

    if (rc == ZARR_OK) {
        rc = zarr_tree_apply_end(t->a, t->err);
    }

    zarr_tree_apply_free(t->a);

    if (rc == ZARR_OK) {
        mrc = mdb_txn_commit(t->txn);

        if (mrc != 0) {
            rc = zarr_tree_mdb_err(s, t->err, mrc, "mdb_txn_commit()");
        }

    } else {
        mdb_txn_abort(t->txn);
    }

    if (rc == ZARR_OK) {
        zarr_tree_visit(s, t->n);
    }

    free(t);

    return rc;
}


int
zarr_gate_mark_durable(zarr_store_t *s, const zarr_begin_t *b,
    const uint64_t *ids, zarr_err_t *err)
{
    int                 rc;
    size_t              i;
    zarr_gate_t         g;
    zarr_batch_t        cur;
    const zarr_zref_t  *z;

    rc = zarr_gate_open(&g, s, 0, 0, NULL, NULL, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    for (i = 0; i < b->nzarrs; i++) {
        z = &b->zarrs[i];

        if (ids[i] == 0) {
            continue;
        }

        if ((rc = zarr_gate_zkey(&g, z->bucket, z->bucket_len, z->zarr_id,
                                 z->zarr_id_len)) != ZARR_OK
            || (rc = zarr_gate_get(&g, &cur)) != ZARR_OK)
        {
            return zarr_gate_close(&g, rc);
        }

        if (cur.id == ids[i] && !(cur.flags & ZARR_BATCH_DURABLE)) {
            cur.flags |= ZARR_BATCH_DURABLE;

            rc = zarr_gate_put(&g, &cur);
            if (rc != ZARR_OK) {
                return zarr_gate_close(&g, rc);
            }
        }
    }

    return zarr_gate_close(&g, ZARR_OK);
}


int
zarr_gate_commit(zarr_store_t *s, zarr_finish_t *f, size_t nf,
    zarr_begin_t *b, size_t nb, uint64_t now_ms, zarr_err_t *err)
{
    int               rc;
    size_t            i;
    uint64_t         *ids;
    zarr_gate_txn_t  *t;

    if (nf) {
        rc = zarr_gate_txn_start(s, now_ms, &t, err);
        if (rc != ZARR_OK) {
            return rc;
        }

        for (i = 0; rc == ZARR_OK && i < nf; i++) {
            rc = zarr_gate_txn_finish(t, &f[i]);
        }

        rc = zarr_gate_txn_end(t, rc);

        for (i = 0; rc == ZARR_OK && i < nf; i++) {
            rc = zarr_gate_release(s, &f[i], now_ms, err);
        }

        if (rc != ZARR_OK) {
            return rc;
        }
    }

    for (i = 0; i < nb; i++) {
        rc = zarr_gate_begin(s, &b[i], now_ms, err);
        if (rc != ZARR_OK) {
            return rc;
        }

        if (b[i].rc != ZARR_OK || b[i].nundurable == 0) {
            continue;
        }

        ids = calloc(b[i].nzarrs, sizeof(uint64_t));
        if (ids == NULL) {
            return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
        }

        rc = zarr_gate_txn_start(s, now_ms, &t, err);

        if (rc == ZARR_OK) {
            rc = zarr_gate_txn_end(t, zarr_gate_txn_durable(t, &b[i], ids));
        }

        if (rc == ZARR_OK) {
            rc = zarr_gate_mark_durable(s, &b[i], ids, err);
        }

        free(ids);

        if (rc != ZARR_OK) {
            return rc;
        }
    }

    return ZARR_OK;
}


int
zarr_gate_batch(zarr_store_t *s, const zarr_zref_t *z, uint64_t now_ms,
    zarr_batch_t *batch, zarr_err_t *err)
{
    int          rc;
    zarr_gate_t  g;

    rc = zarr_gate_open(&g, s, 1, now_ms, z, batch, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    if (!zarr_gate_active(batch, now_ms)) {
        /* batch->seq stays valid */
        batch->id = 0;
        rc = ZARR_ERR_NOTFOUND;
    }

    return zarr_gate_close(&g, rc);
}


int
zarr_gate_batch_open(zarr_store_t *s, const zarr_zref_t *z,
    const char *owner, size_t owner_len, uint64_t timeout_ms,
    uint64_t now_ms, zarr_batch_t *batch, zarr_err_t *err)
{
    int               rc, yes;
    uint64_t          id;
    zarr_gate_t       g;
    zarr_begin_t      b;
    zarr_gate_txn_t  *t;

    if (owner_len == 0 || owner_len > ZARR_OWNER_MAX) {
        return zarr_tree_err(err, ZARR_ERR_INVALID, "invalid owner");
    }

    rc = zarr_gate_recovering(s, z, &yes, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    if (yes) {
        return zarr_tree_err(err, ZARR_ERR_RECOVERING, "the zarr is being "
                             "rebuilt from a listing");
    }

    rc = zarr_gate_open(&g, s, 0, now_ms, z, batch, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    if (zarr_gate_active(batch, now_ms)) {
        return zarr_gate_close(&g, ZARR_ERR_CONFLICT);
    }

    rc = zarr_gate_next_batch(&g);

    if (rc == ZARR_OK) {
        batch->id = g.next_batch++;
        batch->timeout_ms = timeout_ms;
        batch->expires_ms = now_ms + timeout_ms;
        batch->inflight = 0;
        batch->explicit_batch = 1;
        batch->flags = 0;
        batch->owner_len = owner_len;
        memset(batch->owner, 0, sizeof(batch->owner));
        memcpy(batch->owner, owner, owner_len);

        rc = zarr_gate_put(&g, batch);
    }

    rc = zarr_gate_close(&g, rc);
    if (rc != ZARR_OK) {
        return rc;
    }

    /* durable before anyone writes under it (DESIGN 4, v2 item 3) */

    memset(&b, 0, sizeof(zarr_begin_t));
    b.zarrs = z;
    b.nzarrs = 1;
    id = 0;

    rc = zarr_gate_txn_start(s, now_ms, &t, err);

    if (rc == ZARR_OK) {
        rc = zarr_gate_txn_end(t, zarr_gate_txn_durable(t, &b, &id));
    }

    if (rc == ZARR_OK) {
        rc = zarr_gate_mark_durable(s, &b, &id, err);
    }

    if (rc == ZARR_OK && id == batch->id) {
        batch->flags |= ZARR_BATCH_DURABLE;
    }

    return rc;
}


int
zarr_gate_batch_end(zarr_store_t *s, const zarr_zref_t *z, uint64_t id,
    zarr_err_t *err)
{
    int           rc;
    uint64_t      ended;
    zarr_gate_t   g;
    zarr_batch_t  cur;

    rc = zarr_gate_open(&g, s, 0, 0, z, &cur, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    if (cur.id == 0) {
        return zarr_gate_close(&g, ZARR_ERR_NOTFOUND);
    }

    if (id != 0 && cur.id != id) {
        return zarr_gate_close(&g, ZARR_ERR_CONFLICT);
    }

    /* the seq survives */
    ended = cur.id;
    cur.id = 0;
    cur.inflight = 0;
    cur.expires_ms = 0;
    cur.flags = 0;
    cur.seq++;

    rc = zarr_gate_close(&g, zarr_gate_put(&g, &cur));
    if (rc != ZARR_OK) {
        return rc;
    }

    /* its durable record goes too (a sweep would take it later) */

    return zarr_gate_durable_del(s, z, ended, err);
}


int
zarr_gate_batch_touch(zarr_store_t *s, const zarr_zref_t *z, uint64_t id,
    uint64_t now_ms, zarr_err_t *err)
{
    int           rc;
    zarr_gate_t   g;
    zarr_batch_t  cur;

    rc = zarr_gate_open(&g, s, 0, now_ms, z, &cur, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    if (cur.id == 0 || cur.id != id) {
        return zarr_gate_close(&g, ZARR_ERR_CONFLICT);
    }

    cur.expires_ms = now_ms + cur.timeout_ms;

    return zarr_gate_close(&g, zarr_gate_put(&g, &cur));
}


int
zarr_gate_intents(zarr_store_t *s, zarr_intent_cb cb, void *ctx,
    zarr_err_t *err)
{
    int                 rc, mrc;
    const char         *p;
    MDB_cursor         *cur;
    MDB_val             k, v;
    zarr_gate_t         g;
    zarr_intentrec_t    in;
    zarr_intent_info_t  info;

    rc = zarr_gate_open(&g, s, 1, 0, NULL, NULL, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    mrc = mdb_cursor_open(g.txn, s->gintents, &cur);
    if (mrc != 0) {
        return zarr_gate_close(&g, zarr_tree_mdb_err(s, err, mrc,
                                                     "mdb_cursor_open()"));
    }

    mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);

    while (mrc == 0) {
        p = zarr_gate_intent_read(&v, &in);

        if (k.mv_size != 8 || p == NULL) {
            rc = zarr_tree_err(err, ZARR_ERR_STORE, "corrupt intent");
            break;
        }

        memset(&info, 0, sizeof(zarr_intent_info_t));

        for (int i = 0; i < 8; i++) {
            info.id = (info.id << 8) | ((unsigned char *) k.mv_data)[i];
        }

        info.batch_id = in.batch_id;
        info.created_ms = in.created_ms;
        info.proc.pid = in.pid;
        info.proc.start = in.pstart;
        info.op = in.op;
        info.state = in.state;
        info.bucket = p;
        info.bucket_len = in.bucket_len;
        info.prefix = p + in.bucket_len;
        info.prefix_len = in.prefix_len;
        info.zarr_id = info.prefix + in.prefix_len;
        info.zarr_id_len = in.zarr_id_len;
        info.path = info.zarr_id + in.zarr_id_len;
        info.path_len = in.path_len;

        if (cb(ctx, &info) != 0) {
            break;
        }

        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }

    if (rc == ZARR_OK && mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = zarr_tree_mdb_err(s, err, mrc, "listing intents");
    }

    mdb_cursor_close(cur);

    return zarr_gate_close(&g, rc);
}


int
zarr_gate_resolve(zarr_store_t *s, uint64_t intent_id,
    const zarr_mutation_t *m, uint64_t now_ms, zarr_err_t *err)
{
    int               rc, mrc;
    char              key[8];
    MDB_val           k, v;
    zarr_gate_t       g;
    zarr_gate_txn_t  *t;
    zarr_finish_t     f;

    if (m && (rc = zarr_tree_check(m, err)) != ZARR_OK) {
        return rc;
    }

    /* still there? (someone may have resolved it) */

    rc = zarr_gate_open(&g, s, 1, now_ms, NULL, NULL, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    zarr_gate_key(key, intent_id);
    k.mv_data = key;
    k.mv_size = 8;

    mrc = mdb_get(g.txn, s->gintents, &k, &v);
    (void) zarr_gate_close(&g, ZARR_OK);

    if (mrc == MDB_NOTFOUND) {
        return ZARR_OK;
    }

    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "reading an intent");
    }

    /* the intent holds its key: nobody else wrote it since the HEAD */

    memset(&f, 0, sizeof(zarr_finish_t));
    f.m = m;
    f.n = m ? 1 : 0;
    f.intent_id = intent_id;
    f.nintents = 1;

    if (m) {
        rc = zarr_gate_txn_start(s, now_ms, &t, err);

        if (rc == ZARR_OK) {
            rc = zarr_gate_txn_end(t, zarr_gate_txn_finish(t, &f));
        }

        if (rc != ZARR_OK) {
            return rc;
        }
    }

    return zarr_gate_release(s, &f, now_ms, err);
}


int
zarr_gate_count_active(zarr_store_t *s, uint64_t now_ms, uint64_t *n,
    zarr_err_t *err)
{
    int            rc, mrc;
    MDB_cursor    *cur;
    MDB_val        k, v;
    zarr_gate_t    g;
    zarr_batch_t   b;

    *n = 0;

    rc = zarr_gate_open(&g, s, 1, now_ms, NULL, NULL, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    mrc = mdb_cursor_open(g.txn, s->gbatches, &cur);
    if (mrc != 0) {
        return zarr_gate_close(&g, zarr_tree_mdb_err(s, err, mrc,
                                                     "mdb_cursor_open()"));
    }

    mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);

    while (mrc == 0) {
        if (v.mv_size == sizeof(zarr_batch_t)) {
            memcpy(&b, v.mv_data, sizeof(zarr_batch_t));

            if (zarr_gate_active(&b, now_ms)) {
                (*n)++;
            }
        }

        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }

    mdb_cursor_close(cur);

    return zarr_gate_close(&g, ZARR_OK);
}


/* the zarr's key in the batches and recover dbis: bucket NUL zarr_id */

static int
zarr_gate_tree_zkey(zarr_buf_t *b, const zarr_zref_t *z)
{
    if (zarr_buf_reserve(b, z->bucket_len + z->zarr_id_len + 1) != 0) {
        return -1;
    }

    zarr_make_zkey(b, z->bucket, z->bucket_len, z->zarr_id, z->zarr_id_len);

    return 0;
}


/* durable batch records, in the tree */

static int
zarr_gate_durable_put(zarr_store_t *s, MDB_txn *txn, const zarr_zref_t *z,
    uint64_t id, const zarr_begin_t *b, zarr_err_t *err)
{
    int          mrc;
    char         val[8 + 2 * 1024 + 1];
    size_t       len, cplen;
    MDB_val      k, v;
    zarr_buf_t   zkey;

    /*
     * the batch id, then the zarrs' key prefix NUL checksum prefix: what
     * a recovery needs to list the zarr and rewrite its mirror
     */

    cplen = b->checksum_prefix ? b->checksum_prefix_len : 0;

    if (b->prefix_len > 1024 || cplen > 1024) {
        return zarr_tree_err(err, ZARR_ERR_INVALID, "zarr prefix too long");
    }

    memcpy(val, &id, 8);
    len = 8;

    if (b->prefix_len) {
        memcpy(val + len, b->prefix, b->prefix_len);
        len += b->prefix_len;
    }

    val[len++] = '\0';

    if (cplen) {
        memcpy(val + len, b->checksum_prefix, cplen);
        len += cplen;
    }

    zarr_buf_init(&zkey);

    if (zarr_gate_tree_zkey(&zkey, z) != 0) {
        return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    k.mv_data = zkey.data;
    k.mv_size = zkey.len;

    mrc = mdb_get(txn, s->batches, &k, &v);

    if (mrc == 0 && v.mv_size == len && memcmp(v.mv_data, val, len) == 0) {
        zarr_buf_free(&zkey);
        return ZARR_OK;
    }

    v.mv_data = val;
    v.mv_size = len;

    mrc = mdb_put(txn, s->batches, &k, &v, 0);
    zarr_buf_free(&zkey);

    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "writing a batch record");
    }

    return ZARR_OK;
}


/* drops the zarr's durable record if it is batch id's (0: any) */

static int
zarr_gate_durable_del(zarr_store_t *s, const zarr_zref_t *z, uint64_t id,
    zarr_err_t *err)
{
    int          rc, mrc;
    MDB_txn     *txn;
    MDB_val      k, v;
    zarr_buf_t   zkey;

    zarr_buf_init(&zkey);

    if (zarr_gate_tree_zkey(&zkey, z) != 0) {
        return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    rc = zarr_tree_txn_begin(s, 0, &txn, err);
    if (rc != ZARR_OK) {
        zarr_buf_free(&zkey);
        return rc;
    }

    k.mv_data = zkey.data;
    k.mv_size = zkey.len;

    mrc = mdb_get(txn, s->batches, &k, &v);

    if (mrc == 0 && (id == 0 || (v.mv_size >= 8
                                 && memcmp(v.mv_data, &id, 8) == 0)))
    {
        mrc = mdb_del(txn, s->batches, &k, NULL);

        if (mrc == 0) {
            mrc = mdb_txn_commit(txn);
            txn = NULL;
        }
    }

    if (txn) {
        mdb_txn_abort(txn);
    }

    zarr_buf_free(&zkey);

    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        return zarr_tree_mdb_err(s, err, mrc, "dropping a batch record");
    }

    return ZARR_OK;
}


int
zarr_gate_sweep(zarr_store_t *s, uint64_t now_ms, uint64_t *n,
    zarr_err_t *err)
{
    int            rc, mrc, gone;
    uint64_t       id;
    MDB_txn       *txn;
    MDB_cursor    *cur;
    MDB_val        k, v, gv;
    zarr_gate_t    g;
    zarr_batch_t   b;

    *n = 0;

    rc = zarr_tree_txn_begin(s, 0, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    rc = zarr_gate_open(&g, s, 1, now_ms, NULL, NULL, err);
    if (rc != ZARR_OK) {
        mdb_txn_abort(txn);
        return rc;
    }

    mrc = mdb_cursor_open(txn, s->batches, &cur);
    if (mrc != 0) {
        (void) zarr_gate_close(&g, ZARR_OK);
        mdb_txn_abort(txn);
        return zarr_tree_mdb_err(s, err, mrc, "mdb_cursor_open()");
    }

    mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);

    while (mrc == 0) {
        gone = 1;

        if (v.mv_size >= 8) {
            memcpy(&id, v.mv_data, 8);

            mrc = mdb_get(g.txn, s->gbatches, &k, &gv);

            if (mrc == 0 && gv.mv_size == sizeof(zarr_batch_t)) {
                memcpy(&b, gv.mv_data, sizeof(zarr_batch_t));
                gone = !(b.id == id && zarr_gate_active(&b, now_ms));
            }
        }

        if (gone) {
            mrc = mdb_cursor_del(cur, 0);
            if (mrc != 0) {
                break;
            }

            (*n)++;
        }

        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }

    mdb_cursor_close(cur);
    (void) zarr_gate_close(&g, ZARR_OK);

    if (mrc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return zarr_tree_mdb_err(s, err, mrc, "sweeping batch records");
    }

    if (*n == 0) {
        mdb_txn_abort(txn);
        return ZARR_OK;
    }

    mrc = mdb_txn_commit(txn);
    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "mdb_txn_commit()");
    }

    return ZARR_OK;
}


/* zarrs to recover, in the tree */

int
zarr_gate_recovering(zarr_store_t *s, const zarr_zref_t *z, int *yes,
    zarr_err_t *err)
{
    int          rc, mrc;
    MDB_txn     *txn;
    MDB_val      k, v;
    zarr_buf_t   zkey;

    *yes = 0;

    if (z->bucket_len == 0 || z->bucket_len > ZARR_BUCKET_MAX
        || z->zarr_id_len == 0 || z->zarr_id_len > ZARR_ID_MAX)
    {
        return zarr_tree_err(err, ZARR_ERR_INVALID,
                             "invalid bucket or zarr id");
    }

    zarr_buf_init(&zkey);

    if (zarr_gate_tree_zkey(&zkey, z) != 0) {
        return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        zarr_buf_free(&zkey);
        return rc;
    }

    k.mv_data = zkey.data;
    k.mv_size = zkey.len;

    mrc = mdb_get(txn, s->recover, &k, &v);
    mdb_txn_abort(txn);
    zarr_buf_free(&zkey);

    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        return zarr_tree_mdb_err(s, err, mrc, "reading a recovery mark");
    }

    *yes = (mrc == 0);

    return ZARR_OK;
}


int
zarr_gate_recover_count(zarr_store_t *s, uint64_t *n, zarr_err_t *err)
{
    int        rc, mrc;
    MDB_txn   *txn;
    MDB_stat   st;

    *n = 0;

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    mrc = mdb_stat(txn, s->recover, &st);
    mdb_txn_abort(txn);

    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "mdb_stat()");
    }

    *n = st.ms_entries;

    return ZARR_OK;
}


int
zarr_gate_recover_list(zarr_store_t *s, zarr_zref_cb cb, void *ctx,
    zarr_err_t *err)
{
    int           rc, mrc;
    char         *nul;
    MDB_txn      *txn;
    MDB_cursor   *cur;
    MDB_val       k, v;
    zarr_zref_t   z;

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    mrc = mdb_cursor_open(txn, s->recover, &cur);
    if (mrc != 0) {
        mdb_txn_abort(txn);
        return zarr_tree_mdb_err(s, err, mrc, "mdb_cursor_open()");
    }

    mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);

    while (mrc == 0) {
        nul = memchr(k.mv_data, '\0', k.mv_size);

        if (nul != NULL) {
            z.bucket = k.mv_data;
            z.bucket_len = nul - (char *) k.mv_data;
            z.zarr_id = nul + 1;
            z.zarr_id_len = k.mv_size - z.bucket_len - 1;

            if (cb(ctx, &z, v.mv_data, v.mv_size) != 0) {
                break;
            }
        }

        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }

    mdb_cursor_close(cur);
    mdb_txn_abort(txn);

    return ZARR_OK;
}


int
zarr_gate_recover_done(zarr_store_t *s, const zarr_zref_t *z,
    zarr_err_t *err)
{
    int          rc, mrc;
    MDB_txn     *txn;
    MDB_val      k;
    zarr_buf_t   zkey;

    zarr_buf_init(&zkey);

    if (zarr_gate_tree_zkey(&zkey, z) != 0) {
        return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    rc = zarr_tree_txn_begin(s, 0, &txn, err);
    if (rc != ZARR_OK) {
        zarr_buf_free(&zkey);
        return rc;
    }

    k.mv_data = zkey.data;
    k.mv_size = zkey.len;

    mrc = mdb_del(txn, s->recover, &k, NULL);
    zarr_buf_free(&zkey);

    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return zarr_tree_mdb_err(s, err, mrc, "dropping a recovery mark");
    }

    mrc = mdb_txn_commit(txn);
    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "mdb_txn_commit()");
    }

    return ZARR_OK;
}


/*
 * An intent record: its fixed part into in; returns its strings (bucket,
 * prefix, zarr id, path), or NULL when the record is corrupt.
 */

static const char *
zarr_gate_intent_read(const MDB_val *v, zarr_intentrec_t *in)
{
    if (v->mv_size < sizeof(zarr_intentrec_t)) {
        return NULL;
    }

    memcpy(in, v->mv_data, sizeof(zarr_intentrec_t));

    if (v->mv_size != sizeof(zarr_intentrec_t) + in->bucket_len
                      + in->prefix_len + in->zarr_id_len + in->path_len)
    {
        return NULL;
    }

    return (const char *) v->mv_data + sizeof(zarr_intentrec_t);
}


/* the key hash of an intent read by zarr_gate_intent_read() */

static uint64_t
zarr_gate_intent_hash(const zarr_intentrec_t *in, const char *p)
{
    const char  *prefix, *zarr_id, *path;

    prefix = p + in->bucket_len;
    zarr_id = prefix + in->prefix_len;
    path = zarr_id + in->zarr_id_len;

    return zarr_gate_key_hash(p, in->bucket_len, prefix, in->prefix_len,
                              zarr_id, in->zarr_id_len, path, in->path_len);
}


/* FNV-1a over bucket NUL prefix zarr_id "/" path: the object key */

static uint64_t
zarr_gate_key_hash(const char *bucket, size_t bucket_len, const char *prefix,
    size_t prefix_len, const char *zarr_id, size_t zarr_id_len,
    const char *path, size_t path_len)
{
    size_t                i, j;
    uint64_t              h;
    const unsigned char  *part[4];
    size_t                len[4];

    part[0] = (const unsigned char *) bucket;
    len[0] = bucket_len;
    part[1] = (const unsigned char *) prefix;
    len[1] = prefix_len;
    part[2] = (const unsigned char *) zarr_id;
    len[2] = zarr_id_len;
    part[3] = (const unsigned char *) path;
    len[3] = path_len;

    h = 14695981039346656037ULL;

    for (i = 0; i < 4; i++) {
        for (j = 0; j < len[i]; j++) {
            h = (h ^ part[i][j]) * 1099511628211ULL;
        }

        if (i == 0 || i == 2) {
            h = (h ^ (i == 0 ? '\0' : '/')) * 1099511628211ULL;
        }
    }

    /* 0 marks a free slot */
    return h ? h : 1;
}




/* a mark for zarr key k with what the recovery needs (rec) */

static int
zarr_gate_mark(zarr_store_t *s, MDB_txn *txn, MDB_val *k, const char *rec,
    size_t rec_len, uint64_t *n, zarr_err_t *err)
{
    int      mrc;
    MDB_val  v;

    v.mv_data = (void *) rec;
    v.mv_size = rec_len;

    mrc = mdb_put(txn, s->recover, k, &v, MDB_NOOVERWRITE);

    if (mrc == MDB_KEYEXIST) {
        return ZARR_OK;
    }

    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "writing a recovery mark");
    }

    (*n)++;

    return ZARR_OK;
}


int
zarr_gate_recover_mark(zarr_store_t *s, int lost, uint64_t *n,
    zarr_err_t *err)
{
    int                rc, mrc;
    char               rec[2048];
    size_t             len;
    MDB_dbi            legacy;
    MDB_txn           *txn;
    MDB_val            k, v, zk;
    MDB_cursor        *cur;
    zarr_buf_t         zkey;
    zarr_intentrec_t   in;
    const char        *p;

    static const char  defrec[] = "zarr/\0zarr-checksums/";

    *n = 0;
    cur = NULL;
    zarr_buf_init(&zkey);

    rc = zarr_tree_txn_begin(s, 0, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    /* the zarrs whose batches were open: their intents are gone */

    if (lost) {
        mrc = mdb_cursor_open(txn, s->batches, &cur);
        if (mrc != 0) {
            goto failed;
        }

        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);

        while (mrc == 0) {
            /* id, key prefix NUL checksum prefix */
            p = (const char *) v.mv_data + 8;
            len = v.mv_size - 8;

            if (v.mv_size < 9 || memchr(p, '\0', len) == NULL) {
                p = defrec;
                len = sizeof(defrec) - 1;
            }

            rc = zarr_gate_mark(s, txn, &k, p, len, n, err);
            if (rc != ZARR_OK) {
                goto done;
            }

            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }

        mdb_cursor_close(cur);
        cur = NULL;

        if (mrc != MDB_NOTFOUND
            || (mrc = mdb_drop(txn, s->batches, 0)) != 0)
        {
            goto failed;
        }
    }

    /*
     * intents of the first version, kept in the tree: their zarrs are
     * rebuilt too (cheaper to write than a resolver for the old format)
     */

    mrc = mdb_cursor_open(txn, s->intents, &cur);
    if (mrc != 0) {
        goto failed;
    }

    mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);

    while (mrc == 0) {
        p = zarr_gate_intent_read(&v, &in);

        if (p != NULL && in.prefix_len < 1024
            && zarr_buf_reserve(&zkey, in.bucket_len + in.zarr_id_len + 1)
               == 0)
        {
            zarr_make_zkey(&zkey, p, in.bucket_len,
                           p + in.bucket_len + in.prefix_len,
                           in.zarr_id_len);

            memcpy(rec, p + in.bucket_len, in.prefix_len);
            memcpy(rec + in.prefix_len, "\0zarr-checksums/", 16);

            zk.mv_data = zkey.data;
            zk.mv_size = zkey.len;

            rc = zarr_gate_mark(s, txn, &zk, rec, in.prefix_len + 16, n,
                                err);
            if (rc != ZARR_OK) {
                goto done;
            }
        }

        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }

    mdb_cursor_close(cur);
    cur = NULL;

    if (mrc != MDB_NOTFOUND || (mrc = mdb_drop(txn, s->intents, 0)) != 0) {
        goto failed;
    }

    /* the first version's batch table: live batches, now in the gate */

    mrc = mdb_dbi_open(txn, "batches", 0, &legacy);

    if (mrc == 0) {
        mrc = mdb_drop(txn, legacy, 1);
    }

    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        goto failed;
    }

    mrc = mdb_txn_commit(txn);
    txn = NULL;

    if (mrc != 0) {
        goto failed;
    }

    zarr_buf_free(&zkey);

    return ZARR_OK;

failed:

    rc = zarr_tree_mdb_err(s, err, mrc, "marking zarrs to recover");

done:

    if (cur) {
        mdb_cursor_close(cur);
    }

    if (txn) {
        mdb_txn_abort(txn);
    }

    zarr_buf_free(&zkey);

    return rc;
}
