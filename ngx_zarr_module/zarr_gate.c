
/*
 * Batches and intents.  See zarr_gate.h.
 */


#include <stdlib.h>
#include <string.h>

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


/*
 * The keys that have an intent, as 64-bit hashes (open addressing; 0 is
 * a free slot).  Built from the intents table at a transaction's first
 * begin, then kept up to date by its begins; a release drops it.  Two
 * keys with the same hash only make one wait for the other.
 */
typedef struct {
    uint64_t        *slot;
    size_t           mask;
    size_t           n;
} zarr_keyset_t;


typedef struct {
    zarr_store_t    *s;
    MDB_txn         *txn;
    int              rdonly;
    uint64_t         now;
    uint64_t         next_batch;
    uint64_t         next_intent;
    zarr_buf_t       zkey;
    zarr_keyset_t   *keys;
    zarr_err_t      *err;
} zarr_gate_t;


static int zarr_gate_open(zarr_gate_t *g, zarr_store_t *s, int rdonly,
    uint64_t now, const zarr_zref_t *z, zarr_batch_t *b, zarr_err_t *err);
static int zarr_gate_close(zarr_gate_t *g, int rc);
static int zarr_gate_counter(zarr_gate_t *g, const char *name,
    uint64_t *value);
static int zarr_gate_counter_save(zarr_gate_t *g, const char *name,
    uint64_t value);
static int zarr_gate_next_intent(zarr_gate_t *g);
static int zarr_gate_zkey(zarr_gate_t *g, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len);
static int zarr_gate_get(zarr_gate_t *g, zarr_batch_t *b);
static int zarr_gate_put(zarr_gate_t *g, zarr_batch_t *b);
static int zarr_gate_active(const zarr_batch_t *b, uint64_t now);
static void zarr_gate_key(char *key, uint64_t id);
static int zarr_gate_begin(zarr_gate_t *g, zarr_begin_t *b);
static int zarr_gate_dropped(const zarr_finish_t *f, uint64_t batch_id);
static int zarr_gate_release(zarr_gate_t *g, uint64_t id, int unknown,
    const zarr_finish_t *f);
static int zarr_gate_finish(zarr_gate_t *g, zarr_apply_t *a,
    zarr_finish_t *f);
static uint64_t zarr_gate_key_hash(const char *bucket, size_t bucket_len,
    const char *prefix, size_t prefix_len, const char *zarr_id,
    size_t zarr_id_len, const char *path, size_t path_len);
static const char *zarr_gate_intent_read(const MDB_val *v,
    zarr_intentrec_t *in);
static uint64_t zarr_gate_intent_hash(const zarr_intentrec_t *in,
    const char *p);
static int zarr_gate_keys_build(zarr_gate_t *g);
static int zarr_keyset_add(zarr_keyset_t *ks, uint64_t h);
static int zarr_keyset_has(const zarr_keyset_t *ks, uint64_t h);
static void zarr_keyset_free(zarr_keyset_t *ks);


/*
 * Starts a transaction for g; with z, makes z the current zarr and reads
 * its batch record into b.  On failure nothing is left open.
 */

static int
zarr_gate_open(zarr_gate_t *g, zarr_store_t *s, int rdonly, uint64_t now,
    const zarr_zref_t *z, zarr_batch_t *b, zarr_err_t *err)
{
    int  rc;

    memset(g, 0, sizeof(zarr_gate_t));
    g->s = s;
    g->rdonly = rdonly;
    g->now = now;
    g->err = err;
    zarr_buf_init(&g->zkey);

    rc = zarr_tree_txn_begin(s, rdonly, &g->txn, err);
    if (rc != ZARR_OK) {
        g->txn = NULL;
        return rc;
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
    zarr_keyset_free(g->keys);
    g->keys = NULL;

    if (g->txn == NULL) {
        return rc;
    }

    if (rc != ZARR_OK || g->rdonly) {
        mdb_txn_abort(g->txn);
        g->txn = NULL;
        return rc;
    }

    mrc = mdb_txn_commit(g->txn);
    g->txn = NULL;

    if (mrc != 0) {
        return zarr_tree_mdb_err(g->s, g->err, mrc, "mdb_txn_commit()");
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


static int
zarr_gate_counter(zarr_gate_t *g, const char *name, uint64_t *value)
{
    int      mrc;
    MDB_val  k, v;

    if (*value) {
        return ZARR_OK;
    }

    k.mv_data = (void *) name;
    k.mv_size = strlen(name);

    mrc = mdb_get(g->txn, g->s->meta, &k, &v);

    if (mrc == MDB_NOTFOUND) {
        *value = 1;
        return ZARR_OK;
    }

    if (mrc != 0 || v.mv_size != sizeof(uint64_t)) {
        return zarr_tree_mdb_err(g->s, g->err, mrc ? mrc : MDB_CORRUPTED,
                                 "reading a counter");
    }

    memcpy(value, v.mv_data, sizeof(uint64_t));

    return ZARR_OK;
}


/*
 * The next intent id: one more than the highest in the table.  An id may
 * come again once its intent is gone (nothing refers to it then; the
 * resolver checks the zarr's seq anyway), and no counter has to be
 * written with every commit.
 */

static int
zarr_gate_next_intent(zarr_gate_t *g)
{
    int          mrc, i;
    uint64_t     id;
    MDB_cursor  *cur;
    MDB_val      k, v;

    mrc = mdb_cursor_open(g->txn, g->s->intents, &cur);
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
zarr_gate_counter_save(zarr_gate_t *g, const char *name, uint64_t value)
{
    int      mrc;
    MDB_val  k, v;

    if (value == 0) {
        return ZARR_OK;
    }

    k.mv_data = (void *) name;
    k.mv_size = strlen(name);
    v.mv_data = &value;
    v.mv_size = sizeof(uint64_t);

    mrc = mdb_put(g->txn, g->s->meta, &k, &v, 0);
    if (mrc != 0) {
        return zarr_tree_mdb_err(g->s, g->err, mrc, "writing a counter");
    }

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

    mrc = mdb_get(g->txn, g->s->batches, &k, &v);

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

    mrc = mdb_put(g->txn, g->s->batches, &k, &v, 0);
    if (mrc != 0) {
        return zarr_tree_mdb_err(g->s, g->err, mrc, "writing a batch");
    }

    return ZARR_OK;
}


static int
zarr_gate_begin(zarr_gate_t *g, zarr_begin_t *b)
{
    int                 rc, mrc;
    char                key[8], *p;
    size_t              i;
    uint64_t            expires;
    MDB_val             k, v;
    zarr_batch_t        cur;
    zarr_intentrec_t    in;
    const zarr_zref_t  *z;

    b->rc = ZARR_OK;
    b->nopened = 0;
    b->intent_id = 0;

    if (b->nzarrs == 0 || b->owner_len > ZARR_OWNER_MAX) {
        b->rc = ZARR_ERR_INVALID;
        return ZARR_OK;
    }

    if (b->prefix_len > 1024) {
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

    /* all or nothing: look at every zarr before taking any */

    for (i = 0; i < b->nzarrs; i++) {
        z = &b->zarrs[i];

        rc = zarr_gate_zkey(g, z->bucket, z->bucket_len, z->zarr_id,
                            z->zarr_id_len);
        if (rc == ZARR_ERR_INVALID) {
            b->rc = rc;
            return ZARR_OK;
        }

        if (rc != ZARR_OK || (rc = zarr_gate_get(g, &cur)) != ZARR_OK) {
            return rc;
        }

        if (zarr_gate_active(&cur, g->now)
            && (cur.owner_len != b->owner_len
                || memcmp(cur.owner, b->owner, b->owner_len) != 0))
        {
            b->rc = ZARR_ERR_CONFLICT;
            b->conflict = i;
            b->batch = cur;
            return ZARR_OK;
        }
    }

    /* one request at a time per key (a request's own keys may repeat) */

    if (b->nintents && g->keys == NULL) {
        rc = zarr_gate_keys_build(g);
        if (rc != ZARR_OK) {
            return rc;
        }
    }

    for (i = 0; i < b->nintents; i++) {
        z = &b->zarrs[b->intents[i].zarr];

        if (b->intents[i].op != ZARR_OP_NONE
            && zarr_keyset_has(g->keys,
                   zarr_gate_key_hash(z->bucket, z->bucket_len, b->prefix,
                                      b->prefix_len, z->zarr_id,
                                      z->zarr_id_len, b->intents[i].path,
                                      b->intents[i].path_len)))
        {
            b->rc = ZARR_ERR_BUSY;
            b->busy = i;
            return ZARR_OK;
        }
    }

    for (i = 0; i < b->nzarrs; i++) {
        z = &b->zarrs[i];

        if ((rc = zarr_gate_zkey(g, z->bucket, z->bucket_len, z->zarr_id,
                                 z->zarr_id_len)) != ZARR_OK
            || (rc = zarr_gate_get(g, &cur)) != ZARR_OK)
        {
            return rc;
        }

        if (!zarr_gate_active(&cur, g->now)) {
            rc = zarr_gate_counter(g, "next_batch", &g->next_batch);
            if (rc != ZARR_OK) {
                return rc;
            }

            cur.id = g->next_batch++;

            if (b->nopened < ZARR_GATE_OPENED_MAX) {
                b->opened[b->nopened++] = cur.id;
            }

            cur.timeout_ms = b->timeout_ms;
            cur.expires_ms = 0;
            cur.inflight = 0;
            cur.explicit_batch = 0;
            cur.owner_len = b->owner_len;
            memset(cur.owner, 0, sizeof(cur.owner));
            memcpy(cur.owner, b->owner, b->owner_len);
        }

        cur.seq++;
        cur.inflight++;

        expires = g->now + cur.timeout_ms;
        if (expires > cur.expires_ms) {
            cur.expires_ms = expires;
        }

        rc = zarr_gate_put(g, &cur);
        if (rc != ZARR_OK) {
            return rc;
        }

        if (i == 0) {
            b->batch = cur;
        }

        if (b->checksum_prefix) {
            rc = zarr_tree_zmeta_put(g->s, g->txn, z->bucket, z->bucket_len,
                                     z->zarr_id, z->zarr_id_len,
                                     b->checksum_prefix,
                                     b->checksum_prefix_len, g->err);
            if (rc != ZARR_OK) {
                return rc;
            }
        }
    }

    if (g->next_intent == 0) {
        rc = zarr_gate_next_intent(g);
        if (rc != ZARR_OK) {
            return rc;
        }
    }

    /*
     * Intents: one per key, plus one without a key for every zarr that
     * has none, so that the finish finds every batch it counted in.
     */

    b->intent_id = g->next_intent;

    for (i = 0; i < b->nintents + b->nzarrs; i++) {
        size_t              zi, plen;
        const char         *path;
        int                 op, needed;

        if (i < b->nintents) {
            zi = b->intents[i].zarr;
            path = b->intents[i].path;
            plen = b->intents[i].path_len;
            op = b->intents[i].op;

        } else {
            zi = i - b->nintents;
            needed = 1;

            for (size_t j = 0; j < b->nintents; j++) {
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

        if ((rc = zarr_gate_zkey(g, z->bucket, z->bucket_len, z->zarr_id,
                                 z->zarr_id_len)) != ZARR_OK
            || (rc = zarr_gate_get(g, &cur)) != ZARR_OK)
        {
            return rc;
        }

        memset(&in, 0, sizeof(zarr_intentrec_t));
        in.batch_id = cur.id;
        in.created_ms = g->now;
        in.pid = b->proc.pid;
        in.pstart = b->proc.start;
        in.op = (uint8_t) op;
        in.state = ZARR_INTENT_PENDING;
        in.flags = ZARR_INTENT_COUNTED;
        in.bucket_len = (uint16_t) z->bucket_len;
        in.zarr_id_len = (uint16_t) z->zarr_id_len;
        in.path_len = (uint16_t) plen;
        in.prefix_len = (uint16_t) b->prefix_len;

        zarr_gate_key(key, g->next_intent++);
        k.mv_data = key;
        k.mv_size = 8;
        v.mv_size = sizeof(zarr_intentrec_t) + z->bucket_len
                    + b->prefix_len + z->zarr_id_len + plen;

        mrc = mdb_put(g->txn, g->s->intents, &k, &v, MDB_RESERVE);
        if (mrc != 0) {
            return zarr_tree_mdb_err(g->s, g->err, mrc, "writing an intent");
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

        if (op != ZARR_OP_NONE
            && zarr_keyset_add(g->keys,
                   zarr_gate_key_hash(z->bucket, z->bucket_len, b->prefix,
                                      b->prefix_len, z->zarr_id,
                                      z->zarr_id_len, path, plen))
               != 0)
        {
            return zarr_tree_err(g->err, ZARR_ERR_NOMEM, "out of memory");
        }
    }

    return ZARR_OK;
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
zarr_gate_release(zarr_gate_t *g, uint64_t id, int unknown,
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

    mrc = mdb_get(g->txn, g->s->intents, &k, &v);

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

        mrc = mdb_put(g->txn, g->s->intents, &k, &v, 0);
        free(p);

    } else {
        mrc = mdb_del(g->txn, g->s->intents, &k, NULL);

        /* its key is free again: a later begin rebuilds the set */
        zarr_keyset_free(g->keys);
        g->keys = NULL;
    }

    if (mrc != 0) {
        return zarr_tree_mdb_err(g->s, g->err, mrc, "updating an intent");
    }

    return ZARR_OK;
}


static int
zarr_gate_finish(zarr_gate_t *g, zarr_apply_t *a, zarr_finish_t *f)
{
    int     rc;
    size_t  i;

    f->rc = ZARR_OK;

    for (i = 0; i < f->n; i++) {
        if (zarr_tree_check(&f->m[i], NULL) != ZARR_OK) {
            f->rc = ZARR_ERR_INVALID;
            break;
        }
    }

    if (f->rc == ZARR_OK) {
        for (i = 0; i < f->n; i++) {
            rc = zarr_tree_apply_one(a, &f->m[i], g->err);
            if (rc != ZARR_OK) {
                return rc;
            }
        }
    }

    for (i = 0; i < f->nintents; i++) {
        rc = zarr_gate_release(g, f->intent_id + i, f->unknown, f);
        if (rc != ZARR_OK) {
            return rc;
        }
    }

    return ZARR_OK;
}


struct zarr_gate_txn_s {
    zarr_gate_t      g;
    zarr_apply_t    *a;
    size_t           n;
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

    rc = zarr_gate_open(&t->g, s, 0, now_ms, NULL, NULL, err);
    if (rc != ZARR_OK) {
        free(t);
        return rc;
    }

    t->a = zarr_tree_apply_start(s, t->g.txn);
    if (t->a == NULL) {
        rc = zarr_gate_close(&t->g, zarr_tree_err(err, ZARR_ERR_NOMEM,
                                                  "out of memory"));
        free(t);
        return rc;
    }

    *tp = t;

    return ZARR_OK;
}


int
zarr_gate_txn_finish(zarr_gate_txn_t *t, zarr_finish_t *f)
{
    t->n += f->n + f->nintents;

    return zarr_gate_finish(&t->g, t->a, f);
}


int
zarr_gate_txn_begin(zarr_gate_txn_t *t, zarr_begin_t *b)
{
    t->n += b->nintents + 1;

    return zarr_gate_begin(&t->g, b);
}


int
zarr_gate_txn_end(zarr_gate_txn_t *t, int rc)
{
    zarr_store_t  *s;

    s = t->g.s;

    if (rc == ZARR_OK) {
        rc = zarr_tree_apply_end(t->a, t->g.err);
    }

    if (rc == ZARR_OK) {
        rc = zarr_gate_counter_save(&t->g, "next_batch", t->g.next_batch);
    }

    zarr_tree_apply_free(t->a);

    rc = zarr_gate_close(&t->g, rc);

    if (rc == ZARR_OK) {
        zarr_tree_visit(s, t->n);
    }

    free(t);

    return rc;
}


int
zarr_gate_commit(zarr_store_t *s, zarr_finish_t *f, size_t nf,
    zarr_begin_t *b, size_t nb, uint64_t now_ms, zarr_err_t *err)
{
    int               rc;
    size_t            i;
    zarr_gate_txn_t  *t;

    rc = zarr_gate_txn_start(s, now_ms, &t, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    for (i = 0; rc == ZARR_OK && i < nf; i++) {
        rc = zarr_gate_txn_finish(t, &f[i]);
    }

    for (i = 0; rc == ZARR_OK && i < nb; i++) {
        rc = zarr_gate_txn_begin(t, &b[i]);
    }

    return zarr_gate_txn_end(t, rc);
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
        /* batch->seq stays valid: the resolver uses it */
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
    int           rc;
    zarr_gate_t   g;

    if (owner_len == 0 || owner_len > ZARR_OWNER_MAX) {
        return zarr_tree_err(err, ZARR_ERR_INVALID, "invalid owner");
    }

    rc = zarr_gate_open(&g, s, 0, now_ms, z, batch, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    if (zarr_gate_active(batch, now_ms)) {
        return zarr_gate_close(&g, ZARR_ERR_CONFLICT);
    }

    rc = zarr_gate_counter(&g, "next_batch", &g.next_batch);

    if (rc == ZARR_OK) {
        batch->id = g.next_batch++;
        batch->timeout_ms = timeout_ms;
        batch->expires_ms = now_ms + timeout_ms;
        batch->inflight = 0;
        batch->explicit_batch = 1;
        batch->owner_len = owner_len;
        memset(batch->owner, 0, sizeof(batch->owner));
        memcpy(batch->owner, owner, owner_len);

        rc = zarr_gate_put(&g, batch);
    }

    if (rc == ZARR_OK) {
        rc = zarr_gate_counter_save(&g, "next_batch", g.next_batch);
    }

    return zarr_gate_close(&g, rc);
}


int
zarr_gate_batch_end(zarr_store_t *s, const zarr_zref_t *z, uint64_t id,
    zarr_err_t *err)
{
    int           rc;
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

    /* the seq survives: the resolver must see that things moved */
    cur.id = 0;
    cur.inflight = 0;
    cur.expires_ms = 0;
    cur.seq++;

    return zarr_gate_close(&g, zarr_gate_put(&g, &cur));
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
    MDB_txn            *txn;
    MDB_cursor         *cur;
    MDB_val             k, v;
    zarr_intentrec_t    in;
    zarr_intent_info_t  info;

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    mrc = mdb_cursor_open(txn, s->intents, &cur);
    if (mrc != 0) {
        mdb_txn_abort(txn);
        return zarr_tree_mdb_err(s, err, mrc, "mdb_cursor_open()");
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
    mdb_txn_abort(txn);

    return rc;
}


int
zarr_gate_resolve(zarr_store_t *s, uint64_t intent_id,
    const zarr_mutation_t *m, uint64_t now_ms, zarr_err_t *err)
{
    int               rc, mrc;
    char              key[8];
    MDB_val           k, v;
    zarr_gate_t       g;
    zarr_apply_t     *a;
    zarr_intentrec_t  in;

    if (m && (rc = zarr_tree_check(m, err)) != ZARR_OK) {
        return rc;
    }

    rc = zarr_gate_open(&g, s, 0, now_ms, NULL, NULL, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    zarr_gate_key(key, intent_id);
    k.mv_data = key;
    k.mv_size = 8;

    mrc = mdb_get(g.txn, s->intents, &k, &v);

    if (mrc == MDB_NOTFOUND) {
        /* someone resolved it: nothing to do */
        g.rdonly = 1;
        return zarr_gate_close(&g, ZARR_OK);
    }

    if (mrc != 0) {
        return zarr_gate_close(&g, zarr_tree_mdb_err(s, err, mrc,
                                                     "reading an intent"));
    }

    if (zarr_gate_intent_read(&v, &in) == NULL) {
        return zarr_gate_close(&g, zarr_tree_err(err, ZARR_ERR_STORE,
                                                 "corrupt intent"));
    }

    /* the intent holds its key: nobody else wrote it since the HEAD */

    rc = ZARR_OK;
    a = NULL;

    if (rc == ZARR_OK && m) {
        a = zarr_tree_apply_start(s, g.txn);

        if (a == NULL) {
            rc = zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");

        } else if ((rc = zarr_tree_apply_one(a, m, err)) == ZARR_OK) {
            rc = zarr_tree_apply_end(a, err);
        }
    }

    if (rc == ZARR_OK) {
        rc = zarr_gate_release(&g, intent_id, 0, NULL);
    }

    zarr_tree_apply_free(a);

    return zarr_gate_close(&g, rc);
}


int
zarr_gate_count_active(zarr_store_t *s, uint64_t now_ms, uint64_t *n,
    zarr_err_t *err)
{
    int            rc, mrc;
    MDB_txn       *txn;
    MDB_cursor    *cur;
    MDB_val        k, v;
    zarr_batch_t   b;

    *n = 0;

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    mrc = mdb_cursor_open(txn, s->batches, &cur);
    if (mrc != 0) {
        mdb_txn_abort(txn);
        return zarr_tree_mdb_err(s, err, mrc, "mdb_cursor_open()");
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
    mdb_txn_abort(txn);

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


/* g->keys: the key of every intent that has one, from the table */

static int
zarr_gate_keys_build(zarr_gate_t *g)
{
    int                mrc;
    const char        *p;
    MDB_val            k, v;
    MDB_cursor        *cur;
    zarr_keyset_t     *ks;
    zarr_intentrec_t   in;

    ks = calloc(1, sizeof(zarr_keyset_t));
    if (ks == NULL) {
        return zarr_tree_err(g->err, ZARR_ERR_NOMEM, "out of memory");
    }

    g->keys = ks;

    mrc = mdb_cursor_open(g->txn, g->s->intents, &cur);
    if (mrc != 0) {
        return zarr_tree_mdb_err(g->s, g->err, mrc, "mdb_cursor_open()");
    }

    mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);

    while (mrc == 0) {
        p = zarr_gate_intent_read(&v, &in);

        if (p == NULL) {
            mdb_cursor_close(cur);
            return zarr_tree_err(g->err, ZARR_ERR_STORE, "corrupt intent");
        }

        if (in.op != ZARR_OP_NONE
            && zarr_keyset_add(ks, zarr_gate_intent_hash(&in, p)) != 0)
        {
            mdb_cursor_close(cur);
            return zarr_tree_err(g->err, ZARR_ERR_NOMEM, "out of memory");
        }

        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }

    mdb_cursor_close(cur);

    if (mrc != MDB_NOTFOUND) {
        return zarr_tree_mdb_err(g->s, g->err, mrc, "listing intents");
    }

    return ZARR_OK;
}


static int
zarr_keyset_add(zarr_keyset_t *ks, uint64_t h)
{
    size_t     i, size;
    uint64_t  *old;

    if (2 * (ks->n + 1) > (ks->slot ? ks->mask + 1 : 0)) {
        old = ks->slot;
        size = ks->slot ? 2 * (ks->mask + 1) : 64;

        ks->slot = calloc(size, sizeof(uint64_t));
        if (ks->slot == NULL) {
            ks->slot = old;
            return -1;
        }

        ks->mask = size - 1;
        ks->n = 0;

        if (old) {
            for (i = 0; i < size / 2; i++) {
                if (old[i]) {
                    (void) zarr_keyset_add(ks, old[i]);
                }
            }

            free(old);
        }
    }

    for (i = h & ks->mask; ks->slot[i]; i = (i + 1) & ks->mask) {
        if (ks->slot[i] == h) {
            return 0;
        }
    }

    ks->slot[i] = h;
    ks->n++;

    return 0;
}


static int
zarr_keyset_has(const zarr_keyset_t *ks, uint64_t h)
{
    size_t  i;

    if (ks == NULL || ks->slot == NULL) {
        return 0;
    }

    for (i = h & ks->mask; ks->slot[i]; i = (i + 1) & ks->mask) {
        if (ks->slot[i] == h) {
            return 1;
        }
    }

    return 0;
}


static void
zarr_keyset_free(zarr_keyset_t *ks)
{
    if (ks) {
        free(ks->slot);
        free(ks);
    }
}
