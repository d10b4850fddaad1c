
/*
 * The mirror's outbox.  See zarr_outbox.h.
 */


#include <stdlib.h>
#include <string.h>

#include "zarr_outbox.h"
#include "zarr_path.h"
#include "zarr_tree_int.h"


static int zarr_outbox_prefix(zarr_store_t *s, MDB_txn *txn,
    const char *zkey, size_t zkey_len, const char **p, size_t *len);


/* the zarr's checksum prefix, "zarr-checksums/" when none was recorded */

static int
zarr_outbox_prefix(zarr_store_t *s, MDB_txn *txn, const char *zkey,
    size_t zkey_len, const char **p, size_t *len)
{
    MDB_val  k, v;

    k.mv_data = (void *) zkey;
    k.mv_size = zkey_len;

    if (mdb_get(txn, s->zmeta, &k, &v) == 0 && v.mv_size >= 1
        && ((char *) v.mv_data)[0] == 'c')
    {
        *p = (char *) v.mv_data + 1;
        *len = v.mv_size - 1;
        return ZARR_OK;
    }

    *p = "zarr-checksums/";
    *len = sizeof("zarr-checksums/") - 1;

    return ZARR_OK;
}


int
zarr_outbox_list(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, zarr_outbox_cb cb, void *ctx,
    zarr_err_t *err)
{
    int                  rc, mrc, i;
    char                *key, *nul, prefix[ZARR_BUCKET_MAX + ZARR_ID_MAX + 3];
    size_t               plen, zlen;
    MDB_txn             *txn;
    MDB_cursor          *cur;
    MDB_val              k, v;
    zarr_outbox_entry_t  e;

    plen = 0;

    if (bucket) {
        if (bucket_len + zarr_id_len + 2 > sizeof(prefix)) {
            return zarr_tree_err(err, ZARR_ERR_INVALID, "invalid zarr");
        }

        memcpy(prefix, bucket, bucket_len);
        prefix[bucket_len] = '\0';
        memcpy(prefix + bucket_len + 1, zarr_id, zarr_id_len);
        prefix[bucket_len + 1 + zarr_id_len] = '\0';
        plen = bucket_len + zarr_id_len + 2;
    }

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    mrc = mdb_cursor_open(txn, s->outbox, &cur);
    if (mrc != 0) {
        mdb_txn_abort(txn);
        return zarr_tree_mdb_err(s, err, mrc, "mdb_cursor_open()");
    }

    k.mv_data = prefix;
    k.mv_size = plen;

    mrc = mdb_cursor_get(cur, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST);

    while (mrc == 0) {
        key = k.mv_data;

        if (plen && (k.mv_size < plen || memcmp(key, prefix, plen) != 0)) {
            break;
        }

        nul = memchr(key, '\0', k.mv_size);

        if (nul == NULL || k.mv_size < (size_t) (nul - key) + 2 + 8) {
            rc = zarr_tree_err(err, ZARR_ERR_STORE, "corrupt outbox entry");
            break;
        }

        memset(&e, 0, sizeof(zarr_outbox_entry_t));
        e.bucket = key;
        e.bucket_len = nul - key;
        e.zarr_id = nul + 1;
        zlen = k.mv_size - e.bucket_len - 1 - 1 - 8;
        e.zarr_id_len = zlen;
        e.dir = v.mv_data;
        e.dir_len = v.mv_size;

        for (i = 0; i < 8; i++) {
            e.id = (e.id << 8)
                   | ((unsigned char *) key)[k.mv_size - 8 + i];
        }

        zarr_outbox_prefix(s, txn, key, e.bucket_len + 1 + zlen,
                           &e.checksum_prefix, &e.checksum_prefix_len);

        if (cb(ctx, &e) != 0) {
            break;
        }

        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }

    if (rc == ZARR_OK && mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = zarr_tree_mdb_err(s, err, mrc, "listing the outbox");
    }

    mdb_cursor_close(cur);
    mdb_txn_abort(txn);

    return rc;
}


static int
zarr_outbox_counter(void *ctx, const zarr_outbox_entry_t *e)
{
    (void) e;
    (*(uint64_t *) ctx)++;

    return 0;
}


int
zarr_outbox_count(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, uint64_t *n, zarr_err_t *err)
{
    MDB_txn   *txn;
    MDB_stat   st;
    int        rc;

    *n = 0;

    if (bucket) {
        return zarr_outbox_list(s, bucket, bucket_len, zarr_id, zarr_id_len,
                                zarr_outbox_counter, n, err);
    }

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    if (mdb_stat(txn, s->outbox, &st) == 0) {
        *n = st.ms_entries;
    }

    mdb_txn_abort(txn);

    return ZARR_OK;
}


int
zarr_outbox_done(zarr_store_t *s, const zarr_outbox_entry_t *e,
    const char *digest, zarr_err_t *err)
{
    int             rc, mrc, dirty, i;
    char            key[ZARR_BUCKET_MAX + ZARR_ID_MAX + 2 + 8];
    uint64_t        id, x;
    MDB_txn        *txn;
    MDB_val         k;
    zarr_dir_sum_t  sum;

    if (e->bucket_len + e->zarr_id_len + 2 + 8 > sizeof(key)) {
        return zarr_tree_err(err, ZARR_ERR_INVALID, "invalid zarr");
    }

    rc = zarr_tree_txn_begin(s, 0, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    rc = zarr_tree_find_dir(s, txn, e->bucket, e->bucket_len, e->zarr_id,
                            e->zarr_id_len, e->dir, e->dir_len, &id, &dirty,
                            &sum, err);

    if (rc == ZARR_ERR_NOTFOUND) {
        /* the directory is gone: sent right if a delete was sent */
        rc = digest == NULL ? ZARR_OK : ZARR_ERR_STALE_DOC;

    } else if (rc == ZARR_OK && digest == NULL) {
        /* an empty zarr has no .checksum either: its root is "gone" */
        rc = (!dirty && e->dir_len == 0 && sum.count == 0)
             ? ZARR_OK : ZARR_ERR_STALE_DOC;

    } else if (rc == ZARR_OK) {
        rc = (!dirty && strcmp(sum.digest, digest) == 0)
             ? ZARR_OK : ZARR_ERR_STALE_DOC;
    }

    if (rc == ZARR_ERR_STALE_DOC) {
        /* it moved on: the next round sends it again */
        mdb_txn_abort(txn);
        return ZARR_OK;
    }

    if (rc != ZARR_OK) {
        mdb_txn_abort(txn);
        return rc;
    }

    memcpy(key, e->bucket, e->bucket_len);
    key[e->bucket_len] = '\0';
    memcpy(key + e->bucket_len + 1, e->zarr_id, e->zarr_id_len);
    key[e->bucket_len + 1 + e->zarr_id_len] = '\0';

    x = e->id;

    for (i = 7; i >= 0; i--) {
        key[e->bucket_len + e->zarr_id_len + 2 + i] = (char) (x & 0xff);
        x >>= 8;
    }

    k.mv_data = key;
    k.mv_size = e->bucket_len + e->zarr_id_len + 2 + 8;

    mrc = mdb_del(txn, s->outbox, &k, NULL);

    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return zarr_tree_mdb_err(s, err, mrc, "dropping an outbox entry");
    }

    mrc = mdb_txn_commit(txn);
    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "mdb_txn_commit()");
    }

    return ZARR_OK;
}


int
zarr_zmeta_set(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, const char *checksum_prefix,
    size_t checksum_prefix_len, zarr_err_t *err)
{
    int         rc;
    MDB_txn    *txn;

    rc = zarr_tree_txn_begin(s, 0, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    rc = zarr_tree_zmeta_put(s, txn, bucket, bucket_len, zarr_id, zarr_id_len,
                             checksum_prefix, checksum_prefix_len, err);

    if (rc != ZARR_OK) {
        mdb_txn_abort(txn);
        return rc;
    }

    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        return zarr_tree_mdb_err(s, err, rc, "mdb_txn_commit()");
    }

    return ZARR_OK;
}


uint64_t
zarr_mirror_next_ms(uint64_t delay_ms, uint64_t took_ms, int more)
{
    uint64_t  next;

    if (more) {
        return 1;
    }

    next = took_ms * ZARR_MIRROR_IDLE_PER_BUSY;

    if (next > ZARR_MIRROR_MAX_IDLE_MS) {
        next = ZARR_MIRROR_MAX_IDLE_MS;
    }

    return next > delay_ms ? next : delay_ms;
}
