
/*
 * Changing the checksum tree: mutations applied in a write transaction
 * (O(depth) puts, directory chains marked dirty, the mirror's outbox
 * queued), zarrs created, and the flush that persists dirty digests.
 */


#include <stdlib.h>
#include <string.h>

#include "zarr_outbox.h"
#include "zarr_path.h"
#include "zarr_tree_int.h"


/* a key of 1024 bytes has at most 512 components */
#define ZARR_DEPTH_MAX       520


typedef struct {
    uint64_t            id;
    int                 dirty;
    size_t              end;          /* end of the component in path */
} zarr_level_t;


/* state of one write transaction applying mutations */
struct zarr_apply_s {
    zarr_store_t       *s;
    MDB_txn            *txn;
    uint64_t            next_id;
    int                 next_id_changed;
    uint32_t            epoch;        /* the flush epoch, read once */
    int                 have_epoch;

    /* the current zarr */
    zarr_buf_t          zkey;
    zarr_dirrec_t       root;
    int                 have_zarr;
    int                 root_changed;

    /* the last resolved directory chain of the current zarr */
    zarr_buf_t          path;
    zarr_level_t        levels[ZARR_DEPTH_MAX + 1];
    size_t              nlevels;
};


static int zarr_apply_zarr(zarr_apply_t *a, const zarr_mutation_t *m,
    int create, zarr_err_t *err);
static int zarr_apply_finish_zarr(zarr_apply_t *a, zarr_err_t *err);
static int zarr_apply_resolve(zarr_apply_t *a, const char *dir,
    size_t dir_len, int create, zarr_err_t *err);
static int zarr_apply_mark_dirty(zarr_apply_t *a, size_t nlevels,
    zarr_err_t *err);
static int zarr_apply_outbox(zarr_apply_t *a, size_t level, zarr_err_t *err);
static int zarr_dir_is_empty(zarr_apply_t *a, uint64_t id, int *empty,
    zarr_err_t *err);
static int zarr_flush(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, zarr_dir_sum_t *sum,
    zarr_err_t *err);


/*
 * A flush (DESIGN section 5: digests recomputed lazily, deepest first)
 * in three steps, so that writers never wait for the recomputation:
 *
 * 1. a new epoch begins (a small write transaction): from now on a
 *    mutation marks its directory chain again, with the new epoch;
 * 2. in a read transaction begun after that, the dirty directories of
 *    the zarrs are recomputed, their new records listed;
 * 3. in a write transaction, each listed directory whose record is still
 *    marked in an older epoch (nothing changed it, or anything below it,
 *    since step 1) gets its new digest and becomes clean; the others
 *    stay dirty for the next flush.
 *
 * Nothing dirty: nothing written.  One zarr (bucket not NULL): *sum, when
 * not NULL, gets its digest as of step 2, whatever step 3 could keep.
 */

static int
zarr_flush(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, zarr_dir_sum_t *sum,
    zarr_err_t *err)
{
    int             rc, mrc, any, lock;
    uint16_t        klen;
    uint32_t        epoch;
    uint64_t        gen;
    MDB_txn        *txn;
    MDB_cursor     *cur;
    MDB_val         k, v;
    zarr_buf_t      zkey, kept, roots;
    zarr_dirrec_t   root, d, cur_d;
    zarr_calc_t     c;
    zarr_dir_sum_t  rsum;
    size_t          off, i;
    zarr_buf_t     *list;
    char            zk[ZARR_BUCKET_MAX + ZARR_ID_MAX + 2];
    size_t          zk_len;

    zarr_buf_init(&zkey);
    zarr_buf_init(&kept);
    zarr_buf_init(&roots);

    cur = NULL;
    txn = NULL;

    if (bucket) {
        if (zarr_buf_reserve(&zkey, bucket_len + zarr_id_len + 1) != 0) {
            return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
        }

        zarr_make_zkey(&zkey, bucket, bucket_len, zarr_id, zarr_id_len);
    }

    /*
     * after the flush under way, if any: what it wrote back is not
     * computed twice (the API's info and the mirror, right after a burst)
     */

    lock = zarr_tree_flush_lock(s);

    /* anything to do? */

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        goto done;
    }

    any = 0;

    if (bucket) {
        rc = zarr_get_root(s, txn, bucket, bucket_len, zarr_id, zarr_id_len,
                           &root, err);
        if (rc != ZARR_OK) {
            goto done;
        }

        any = root.flags & ZARR_DIR_DIRTY;

        if (!any && sum) {
            zarr_dirrec_sum(&root, sum);
        }

    } else {
        mrc = mdb_cursor_open(txn, s->zarrs, &cur);
        if (mrc != 0) {
            rc = zarr_tree_mdb_err(s, err, mrc, "mdb_cursor_open()");
            goto done;
        }

        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
             mrc == 0 && !any;
             mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        {
            if (zarr_dirrec_get(&v, &root) != ZARR_OK) {
                rc = zarr_tree_err(err, ZARR_ERR_STORE, "corrupt zarr record");
                goto done;
            }

            any = root.flags & ZARR_DIR_DIRTY;
        }

        mdb_cursor_close(cur);
        cur = NULL;
    }

    mdb_txn_abort(txn);
    txn = NULL;

    if (!any) {
        goto done;
    }

    /* 1. a new epoch */

    rc = zarr_tree_txn_begin(s, 0, &txn, err);
    if (rc != ZARR_OK) {
        goto done;
    }

    rc = zarr_tree_epoch(s, txn, &epoch, err);
    if (rc != ZARR_OK) {
        goto done;
    }

    epoch++;

    k.mv_data = "epoch";
    k.mv_size = 5;
    v.mv_data = &epoch;
    v.mv_size = sizeof(uint32_t);

    mrc = mdb_put(txn, s->meta, &k, &v, 0);
    if (mrc == 0) {
        mrc = mdb_txn_commit(txn);
        txn = NULL;
    }

    if (mrc != 0) {
        rc = zarr_tree_mdb_err(s, err, mrc, "starting a flush epoch");
        goto done;
    }

    /* 2. the dirty digests, from a snapshot */

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        goto done;
    }

    memset(&c, 0, sizeof(zarr_calc_t));
    c.s = s;
    c.txn = txn;
    c.err = err;
    c.kept = &kept;
    zarr_buf_init(&c.path);

    /* a digest to return needs one snapshot; else newer ones as it goes */
    c.renew = (sum == NULL);

    mrc = mdb_cursor_open(txn, s->zarrs, &cur);
    if (mrc != 0) {
        zarr_buf_free(&c.path);
        rc = zarr_tree_mdb_err(s, err, mrc, "mdb_cursor_open()");
        goto done;
    }

    if (bucket) {
        k.mv_data = zkey.data;
        k.mv_size = zkey.len;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);

    } else {
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }

    while (mrc == 0) {
        if (zarr_dirrec_get(&v, &root) != ZARR_OK || k.mv_size > sizeof(zk))
        {
            rc = zarr_tree_err(err, ZARR_ERR_STORE, "corrupt zarr record");
            break;
        }

        /* the key outlives a renewed snapshot */
        zk_len = k.mv_size;
        memcpy(zk, k.mv_data, zk_len);

        zarr_dirrec_sum(&root, &rsum);

        if (root.flags & ZARR_DIR_DIRTY) {
            gen = c.gen;

            rc = zarr_calc_dir(&c, root.id, 1, &rsum, NULL);
            if (rc != ZARR_OK) {
                break;
            }

            d = root;
            zarr_dirrec_set(&d, &rsum);

            if (zarr_kept_add(&roots, zk, zk_len, &d) != ZARR_OK) {
                rc = zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
                break;
            }

            if (c.gen != gen) {
                mrc = mdb_cursor_renew(c.txn, cur);
                if (mrc != 0) {
                    rc = zarr_tree_mdb_err(s, err, mrc,
                                           "mdb_cursor_renew()");
                    break;
                }

                k.mv_data = zk;
                k.mv_size = zk_len;

                mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);

                if (mrc == MDB_NOTFOUND && !bucket) {
                    /* the zarr went meanwhile: the next one */
                    k.mv_data = zk;
                    k.mv_size = zk_len;
                    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
                    continue;
                }

                if (mrc != 0) {
                    break;
                }
            }
        }

        if (bucket) {
            if (sum) {
                *sum = rsum;
            }

            break;
        }

        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }

    zarr_buf_free(&c.path);

    if (rc == ZARR_OK && mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = zarr_tree_mdb_err(s, err, mrc, bucket ? "reading a zarr"
                                                   : "listing zarrs");
    }

    if (rc == ZARR_OK && bucket && mrc == MDB_NOTFOUND) {
        /* gone meanwhile */
        rc = zarr_tree_err(err, ZARR_ERR_NOTFOUND, "zarr \"%.*s/%.*s\" is "
                           "unknown", (int) bucket_len, bucket,
                           (int) zarr_id_len, zarr_id);
    }

    mdb_cursor_close(cur);
    cur = NULL;
    mdb_txn_abort(txn);
    txn = NULL;

    if (rc != ZARR_OK) {
        goto done;
    }

    /* 3. what did not change since, written back clean */

    rc = zarr_tree_txn_begin(s, 0, &txn, err);
    if (rc != ZARR_OK) {
        goto done;
    }

    for (i = 0; i < 2 && rc == ZARR_OK; i++) {
        list = i ? &roots : &kept;

        for (off = 0; off < list->len; off += klen + sizeof(zarr_dirrec_t)) {
            memcpy(&klen, list->data + off, sizeof(uint16_t));
            off += sizeof(uint16_t);

            k.mv_data = list->data + off;
            k.mv_size = klen;
            memcpy(&d, list->data + off + klen, sizeof(zarr_dirrec_t));

            mrc = mdb_get(txn, i ? s->zarrs : s->entries, &k, &v);

            if (mrc == MDB_NOTFOUND) {
                /* deleted since */
                continue;
            }

            if (mrc != 0 || zarr_dirrec_get(&v, &cur_d) != ZARR_OK) {
                rc = zarr_tree_mdb_err(s, err, mrc ? mrc : MDB_CORRUPTED,
                                       "reading a directory");
                break;
            }

            if (cur_d.id != d.id || !(cur_d.flags & ZARR_DIR_DIRTY)
                || !zarr_epoch_older(cur_d.epoch, epoch))
            {
                /* made again, flushed by another, or changed since */
                continue;
            }

            memcpy(cur_d.digest, d.digest, sizeof(d.digest));
            cur_d.digest_len = d.digest_len;
            cur_d.count = d.count;
            cur_d.size = d.size;
            cur_d.flags &= ~ZARR_DIR_DIRTY;

            v.mv_data = &cur_d;
            v.mv_size = sizeof(zarr_dirrec_t);

            mrc = mdb_put(txn, i ? s->zarrs : s->entries, &k, &v, 0);
            if (mrc != 0) {
                rc = zarr_tree_mdb_err(s, err, mrc,
                                       "writing a directory digest");
                break;
            }
        }
    }

    if (rc == ZARR_OK) {
        mrc = mdb_txn_commit(txn);
        txn = NULL;

        if (mrc != 0) {
            rc = zarr_tree_mdb_err(s, err, mrc, "mdb_txn_commit()");
        }
    }

done:

    if (cur) {
        mdb_cursor_close(cur);
    }

    if (txn) {
        mdb_txn_abort(txn);
    }

    zarr_tree_flush_unlock(lock);

    zarr_buf_free(&zkey);
    zarr_buf_free(&kept);
    zarr_buf_free(&roots);

    return rc;
}


int
zarr_store_flush(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, zarr_err_t *err)
{
    return zarr_flush(s, bucket, bucket_len, zarr_id, zarr_id_len, NULL, err);
}


int
zarr_store_sync_zarr(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, zarr_dir_sum_t *sum,
    zarr_err_t *err)
{
    return zarr_flush(s, bucket, bucket_len, zarr_id, zarr_id_len, sum, err);
}


int
zarr_store_create_zarr(zarr_store_t *s, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    zarr_err_t *err)
{
    int              rc, mrc;
    MDB_txn         *txn;
    zarr_apply_t    *a;
    zarr_mutation_t  m;

    memset(&m, 0, sizeof(zarr_mutation_t));
    m.bucket = bucket;
    m.bucket_len = bucket_len;
    m.zarr_id = zarr_id;
    m.zarr_id_len = zarr_id_len;

    if (bucket_len == 0 || bucket_len > ZARR_BUCKET_MAX
        || zarr_id_len == 0 || zarr_id_len > ZARR_ID_MAX
        || memchr(bucket, '\0', bucket_len) != NULL
        || memchr(zarr_id, '/', zarr_id_len) != NULL)
    {
        return zarr_tree_err(err, ZARR_ERR_INVALID,
                             "invalid bucket or zarr id");
    }

    rc = zarr_tree_txn_begin(s, 0, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    a = zarr_tree_apply_start(s, txn);
    if (a == NULL) {
        mdb_txn_abort(txn);
        return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    rc = zarr_apply_zarr(a, &m, 0, err);

    if (rc == ZARR_OK) {
        rc = zarr_tree_err(err, ZARR_ERR_EXISTS, "zarr \"%.*s/%.*s\" exists",
                      (int) bucket_len, bucket, (int) zarr_id_len, zarr_id);

    } else if (rc == ZARR_ERR_NOTFOUND) {
        rc = zarr_apply_zarr(a, &m, 1, err);

        if (rc == ZARR_OK) {
            rc = zarr_tree_apply_end(a, err);
        }
    }

    zarr_tree_apply_free(a);

    if (rc != ZARR_OK) {
        mdb_txn_abort(txn);
        return rc;
    }

    mrc = mdb_txn_commit(txn);
    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "mdb_txn_commit()");
    }

    return ZARR_OK;
}


int
zarr_tree_check(const zarr_mutation_t *m, zarr_err_t *err)
{
    int     rc;
    size_t  off;

    if (m->op != ZARR_MUT_PUT && m->op != ZARR_MUT_DELETE) {
        return zarr_tree_err(err, ZARR_ERR_INVALID, "unknown operation %d",
                             m->op);
    }

    if (m->bucket_len == 0 || m->bucket_len > ZARR_BUCKET_MAX
        || memchr(m->bucket, '\0', m->bucket_len) != NULL)
    {
        return zarr_tree_err(err, ZARR_ERR_INVALID, "invalid bucket name");
    }

    if (m->zarr_id_len == 0 || m->zarr_id_len > ZARR_ID_MAX
        || zarr_path_check(m->zarr_id, m->zarr_id_len, &off) != ZARR_PATH_OK
        || memchr(m->zarr_id, '/', m->zarr_id_len) != NULL)
    {
        return zarr_tree_err(err, ZARR_ERR_INVALID, "invalid zarr id");
    }

    rc = zarr_path_check(m->path, m->path_len, &off);

    if (rc == ZARR_PATH_OK && m->path_len == 0) {
        rc = ZARR_PATH_EMPTY_SEGMENT;
    }

    if (rc != ZARR_PATH_OK) {
        return zarr_tree_err(err, ZARR_ERR_INVALID, "path \"%.*s\": %s",
                             (int) m->path_len, m->path,
                             zarr_path_strerror(rc));
    }

    if (m->op == ZARR_MUT_PUT
        && (m->etag_len > ZARR_ETAG_MAX
            || m->version_id_len > ZARR_VERSION_ID_MAX))
    {
        return zarr_tree_err(err, ZARR_ERR_INVALID,
                             "ETag or version id too long");
    }

    return ZARR_OK;
}


zarr_apply_t *
zarr_tree_apply_start(zarr_store_t *s, MDB_txn *txn)
{
    zarr_apply_t  *a;

    a = calloc(1, sizeof(zarr_apply_t));
    if (a == NULL) {
        return NULL;
    }

    a->s = s;
    a->txn = txn;

    return a;
}


int
zarr_tree_apply_end(zarr_apply_t *a, zarr_err_t *err)
{
    int      rc, mrc;
    MDB_val  k, v;

    rc = zarr_apply_finish_zarr(a, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    /* later mutations in the same transaction start afresh */
    a->have_zarr = 0;
    a->nlevels = 0;

    if (a->next_id_changed) {
        k.mv_data = "next_id";
        k.mv_size = 7;
        v.mv_data = &a->next_id;
        v.mv_size = sizeof(uint64_t);

        mrc = mdb_put(a->txn, a->s->meta, &k, &v, 0);
        if (mrc != 0) {
            return zarr_tree_mdb_err(a->s, err, mrc,
                                     "writing the id counter");
        }

        a->next_id_changed = 0;
    }

    return ZARR_OK;
}


void
zarr_tree_apply_free(zarr_apply_t *a)
{
    if (a) {
        zarr_buf_free(&a->zkey);
        zarr_buf_free(&a->path);
        free(a);
    }
}


int
zarr_store_apply(zarr_store_t *s, const zarr_mutation_t *m, size_t n,
    size_t *bad, zarr_err_t *err)
{
    int            rc, mrc;
    size_t         i;
    MDB_txn       *txn;
    zarr_apply_t  *a;

    /* validate everything first: a group is applied whole or not at all */

    for (i = 0; i < n; i++) {
        *bad = i;

        rc = zarr_tree_check(&m[i], err);
        if (rc != ZARR_OK) {
            return rc;
        }
    }

    *bad = n;

    rc = zarr_tree_txn_begin(s, 0, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    a = zarr_tree_apply_start(s, txn);
    if (a == NULL) {
        mdb_txn_abort(txn);
        return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    for (i = 0; i < n; i++) {
        rc = zarr_tree_apply_one(a, &m[i], err);
        if (rc != ZARR_OK) {
            *bad = i;
            goto failed;
        }
    }

    rc = zarr_tree_apply_end(a, err);
    if (rc != ZARR_OK) {
        goto failed;
    }

    zarr_tree_apply_free(a);

    mrc = mdb_txn_commit(txn);
    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "mdb_txn_commit()");
    }

    zarr_tree_visit(s, n);

    return ZARR_OK;

failed:

    mdb_txn_abort(txn);
    zarr_tree_apply_free(a);

    return rc;
}


static int
zarr_new_id(zarr_apply_t *a, uint64_t *id, zarr_err_t *err)
{
    int      mrc;
    MDB_val  k, v;

    if (a->next_id == 0) {
        k.mv_data = "next_id";
        k.mv_size = 7;

        mrc = mdb_get(a->txn, a->s->meta, &k, &v);

        if (mrc == MDB_NOTFOUND) {
            a->next_id = 1;

        } else if (mrc == 0 && v.mv_size == sizeof(uint64_t)) {
            memcpy(&a->next_id, v.mv_data, sizeof(uint64_t));

        } else {
            return zarr_tree_mdb_err(a->s, err, mrc ? mrc : MDB_CORRUPTED,
                                "reading the id counter");
        }
    }

    *id = a->next_id++;
    a->next_id_changed = 1;

    return ZARR_OK;
}


/* writes back the current zarr's root record when it changed */

static int
zarr_apply_finish_zarr(zarr_apply_t *a, zarr_err_t *err)
{
    int      mrc;
    MDB_val  k, v;

    if (a->have_zarr && a->root_changed) {
        k.mv_data = a->zkey.data;
        k.mv_size = a->zkey.len;
        v.mv_data = &a->root;
        v.mv_size = sizeof(zarr_dirrec_t);

        mrc = mdb_put(a->txn, a->s->zarrs, &k, &v, 0);
        if (mrc != 0) {
            return zarr_tree_mdb_err(a->s, err, mrc, "writing a zarr");
        }
    }

    a->root_changed = 0;

    return ZARR_OK;
}


/* makes m's zarr the current one; creates it when asked */

static int
zarr_apply_zarr(zarr_apply_t *a, const zarr_mutation_t *m, int create,
    zarr_err_t *err)
{
    int      rc, mrc;
    MDB_val  k, v;

    if (a->have_zarr
        && a->zkey.len == m->bucket_len + 1 + m->zarr_id_len
        && memcmp(a->zkey.data, m->bucket, m->bucket_len) == 0
        && memcmp(a->zkey.data + m->bucket_len + 1, m->zarr_id,
                  m->zarr_id_len) == 0)
    {
        return ZARR_OK;
    }

    rc = zarr_apply_finish_zarr(a, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    a->have_zarr = 0;
    a->nlevels = 0;

    if (zarr_buf_reserve(&a->zkey, m->bucket_len + m->zarr_id_len + 1) != 0)
    {
        return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    zarr_make_zkey(&a->zkey, m->bucket, m->bucket_len, m->zarr_id,
                   m->zarr_id_len);

    k.mv_data = a->zkey.data;
    k.mv_size = a->zkey.len;

    mrc = mdb_get(a->txn, a->s->zarrs, &k, &v);

    if (mrc == 0) {
        if (zarr_dirrec_get(&v, &a->root) != ZARR_OK) {
            return zarr_tree_err(err, ZARR_ERR_STORE, "corrupt zarr record");
        }

    } else if (mrc == MDB_NOTFOUND) {
        if (!create) {
            return ZARR_ERR_NOTFOUND;
        }

        memset(&a->root, 0, sizeof(zarr_dirrec_t));

        rc = zarr_new_id(a, &a->root.id, err);
        if (rc != ZARR_OK) {
            return rc;
        }

        a->root.digest_len = sizeof(ZARR_EMPTY_DIGEST) - 1;
        memcpy(a->root.digest, ZARR_EMPTY_DIGEST, a->root.digest_len);
        a->root_changed = 1;

    } else {
        return zarr_tree_mdb_err(a->s, err, mrc, "reading a zarr");
    }

    if (!a->have_epoch) {
        rc = zarr_tree_epoch(a->s, a->txn, &a->epoch, err);
        if (rc != ZARR_OK) {
            return rc;
        }

        a->have_epoch = 1;
    }

    a->have_zarr = 1;

    /* "dirty" here: marked in this epoch (its ancestors are, too) */
    a->levels[0].id = a->root.id;
    a->levels[0].dirty = (a->root.flags & ZARR_DIR_DIRTY)
                         && a->root.epoch == a->epoch;
    a->levels[0].end = 0;
    a->nlevels = 1;
    a->path.len = 0;

    return ZARR_OK;
}


/*
 * Resolves the directory chain of dir ("" is the root) into a->levels,
 * reusing the levels it shares with the previous chain.  Missing
 * directories are created (dirty) with create, else ZARR_ERR_NOTFOUND.
 */

static int
zarr_apply_resolve(zarr_apply_t *a, const char *dir, size_t dir_len,
    int create, zarr_err_t *err)
{
    int            rc, mrc, created;
    char           kbuf[ZARR_KEY_MAX];
    size_t         keep, i, start, end;
    MDB_val        k, v;
    zarr_dirrec_t  d;

    /* how many levels of the cached chain are a prefix of dir */

    for (keep = 1; keep < a->nlevels; keep++) {
        end = a->levels[keep].end;

        if (end > dir_len
            || (end < dir_len && dir[end] != '/')
            || memcmp(a->path.data, dir, end) != 0)
        {
            break;
        }
    }

    a->nlevels = keep;
    a->path.len = a->levels[keep - 1].end;

    if (a->path.len == dir_len) {
        /* the whole chain is known already */
        return ZARR_OK;
    }

    if (zarr_buf_reserve(&a->path, dir_len + 1) != 0) {
        return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    start = a->path.len ? a->path.len + 1 : 0;

    for (i = start; i <= dir_len; i++) {
        if (i < dir_len && dir[i] != '/') {
            continue;
        }

        if (a->nlevels > ZARR_DEPTH_MAX) {
            return zarr_tree_err(err, ZARR_ERR_INVALID, "path too deep");
        }

        k.mv_data = kbuf;
        k.mv_size = zarr_entry_key(kbuf, a->levels[a->nlevels - 1].id,
                                   ZARR_TYPE_DIR, dir + start, i - start);

        mrc = mdb_get(a->txn, a->s->entries, &k, &v);
        created = 0;

        if (mrc == 0) {
            if (zarr_dirrec_get(&v, &d) != ZARR_OK) {
                return zarr_tree_err(err, ZARR_ERR_STORE,
                                "corrupt directory record");
            }

        } else if (mrc == MDB_NOTFOUND) {
            created = 1;

            if (!create) {
                return ZARR_ERR_NOTFOUND;
            }

            /* a new directory is dirty: so must its ancestors be */
            rc = zarr_apply_mark_dirty(a, a->nlevels, err);
            if (rc != ZARR_OK) {
                return rc;
            }

            memset(&d, 0, sizeof(zarr_dirrec_t));

            rc = zarr_new_id(a, &d.id, err);
            if (rc != ZARR_OK) {
                return rc;
            }

            d.flags = ZARR_DIR_DIRTY;
            d.epoch = a->epoch;
            d.digest_len = sizeof(ZARR_EMPTY_DIGEST) - 1;
            memcpy(d.digest, ZARR_EMPTY_DIGEST, d.digest_len);

            v.mv_data = &d;
            v.mv_size = sizeof(zarr_dirrec_t);

            mrc = mdb_put(a->txn, a->s->entries, &k, &v, 0);
            if (mrc != 0) {
                return zarr_tree_mdb_err(a->s, err, mrc, "adding a directory");
            }

        } else {
            return zarr_tree_mdb_err(a->s, err, mrc, "reading a directory");
        }

        if (a->path.len) {
            a->path.data[a->path.len++] = '/';
        }

        memcpy(a->path.data + a->path.len, dir + start, i - start);
        a->path.len += i - start;

        a->levels[a->nlevels].id = d.id;
        a->levels[a->nlevels].dirty = (d.flags & ZARR_DIR_DIRTY)
                                      && d.epoch == a->epoch;
        a->levels[a->nlevels].end = a->path.len;
        a->nlevels++;

        if (created) {
            rc = zarr_apply_outbox(a, a->nlevels - 1, err);
            if (rc != ZARR_OK) {
                return rc;
            }
        }

        start = i + 1;
    }

    return ZARR_OK;
}


/*
 * Flags the first nlevels levels of the resolved chain dirty in this
 * epoch, deepest first, up to a level that is so already.  A directory
 * that was clean is queued for the mirror (a dirty one is queued).
 */

static int
zarr_apply_mark_dirty(zarr_apply_t *a, size_t nlevels, zarr_err_t *err)
{
    int            rc, mrc, was_dirty;
    char           kbuf[ZARR_KEY_MAX];
    size_t         i, start;
    MDB_val        k, v;
    zarr_dirrec_t  d;

    for (i = nlevels - 1; i > 0; i--) {
        if (a->levels[i].dirty) {
            /* marked in this epoch: so are its ancestors */
            return ZARR_OK;
        }

        start = a->levels[i - 1].end;
        if (start) {
            start++;
        }

        k.mv_data = kbuf;
        k.mv_size = zarr_entry_key(kbuf, a->levels[i - 1].id, ZARR_TYPE_DIR,
                                   a->path.data + start,
                                   a->levels[i].end - start);

        mrc = mdb_get(a->txn, a->s->entries, &k, &v);
        if (mrc != 0 || zarr_dirrec_get(&v, &d) != ZARR_OK) {
            return zarr_tree_mdb_err(a->s, err, mrc ? mrc : MDB_CORRUPTED,
                                "reading a directory");
        }

        was_dirty = d.flags & ZARR_DIR_DIRTY;

        d.flags |= ZARR_DIR_DIRTY;
        d.epoch = a->epoch;
        v.mv_data = &d;
        v.mv_size = sizeof(zarr_dirrec_t);

        mrc = mdb_put(a->txn, a->s->entries, &k, &v, 0);
        if (mrc != 0) {
            return zarr_tree_mdb_err(a->s, err, mrc, "flagging a directory");
        }

        a->levels[i].dirty = 1;

        if (!was_dirty) {
            rc = zarr_apply_outbox(a, i, err);
            if (rc != ZARR_OK) {
                return rc;
            }
        }
    }

    if (!a->levels[0].dirty) {
        was_dirty = a->root.flags & ZARR_DIR_DIRTY;

        a->root.flags |= ZARR_DIR_DIRTY;
        a->root.epoch = a->epoch;
        a->root_changed = 1;
        a->levels[0].dirty = 1;

        if (!was_dirty) {
            return zarr_apply_outbox(a, 0, err);
        }
    }

    return ZARR_OK;
}


/*
 * Queues level's directory for the mirror: its .checksum document is to
 * be written (or deleted when the directory is gone).  The key is the
 * directory's id, unique for ever: a directory deleted and made again is
 * another entry; the mirror looks at the path's state when it sends.
 */

static int
zarr_apply_outbox(zarr_apply_t *a, size_t level, zarr_err_t *err)
{
    int       mrc, i;
    char      kbuf[ZARR_BUCKET_MAX + ZARR_ID_MAX + 2 + 8];
    uint64_t  id;
    MDB_val   k, v;

    if (a->zkey.len + 1 + 8 > sizeof(kbuf)) {
        return zarr_tree_err(err, ZARR_ERR_INVALID, "zarr key too long");
    }

    memcpy(kbuf, a->zkey.data, a->zkey.len);
    kbuf[a->zkey.len] = '\0';

    id = a->levels[level].id;

    for (i = 7; i >= 0; i--) {
        kbuf[a->zkey.len + 1 + i] = (char) (id & 0xff);
        id >>= 8;
    }

    k.mv_data = kbuf;
    k.mv_size = a->zkey.len + 1 + 8;
    v.mv_data = a->path.data;
    v.mv_size = a->levels[level].end;

    mrc = mdb_put(a->txn, a->s->outbox, &k, &v, 0);
    if (mrc != 0) {
        return zarr_tree_mdb_err(a->s, err, mrc, "queueing a directory");
    }

    return ZARR_OK;
}


static int
zarr_dir_is_empty(zarr_apply_t *a, uint64_t id, int *empty, zarr_err_t *err)
{
    int          mrc;
    char         kbuf[ZARR_ID_LEN + 1];
    MDB_cursor  *cur;
    MDB_val      k, v;

    mrc = mdb_cursor_open(a->txn, a->s->entries, &cur);
    if (mrc != 0) {
        return zarr_tree_mdb_err(a->s, err, mrc, "mdb_cursor_open()");
    }

    k.mv_data = kbuf;
    k.mv_size = zarr_entry_key(kbuf, id, ZARR_TYPE_DIR, NULL, 0);

    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);

    *empty = (mrc == MDB_NOTFOUND
              || (mrc == 0
                  && (k.mv_size < ZARR_ID_LEN
                      || memcmp(k.mv_data, kbuf, ZARR_ID_LEN) != 0)));

    mdb_cursor_close(cur);

    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        return zarr_tree_mdb_err(a->s, err, mrc, "reading entries");
    }

    return ZARR_OK;
}


int
zarr_tree_apply_one(zarr_apply_t *a, const zarr_mutation_t *m, zarr_err_t *err)
{
    int          rc, mrc, empty;
    char         kbuf[ZARR_KEY_MAX];
    char         fv[12 + ZARR_ETAG_MAX + ZARR_VERSION_ID_MAX];
    const char  *slash, *name;
    size_t       dir_len, name_len, vlen, i, start;
    uint16_t     len16;
    MDB_val      k, v;

    zarr_tree_visit(a->s, ZARR_MUTATION_VISITS);

    rc = zarr_apply_zarr(a, m, m->op == ZARR_MUT_PUT, err);

    if (rc == ZARR_ERR_NOTFOUND) {
        /* deleting from a zarr never seen: nothing to do */
        return ZARR_OK;
    }

    if (rc != ZARR_OK) {
        return rc;
    }

    slash = NULL;

    for (i = m->path_len; i > 0; i--) {
        if (m->path[i - 1] == '/') {
            slash = m->path + i - 1;
            break;
        }
    }

    if (slash) {
        dir_len = slash - m->path;
        name = slash + 1;

    } else {
        dir_len = 0;
        name = m->path;
    }

    name_len = m->path + m->path_len - name;

    rc = zarr_apply_resolve(a, m->path, dir_len, m->op == ZARR_MUT_PUT, err);

    if (rc == ZARR_ERR_NOTFOUND) {
        return ZARR_OK;
    }

    if (rc != ZARR_OK) {
        return rc;
    }

    k.mv_data = kbuf;
    k.mv_size = zarr_entry_key(kbuf, a->levels[a->nlevels - 1].id,
                               ZARR_TYPE_FILE, name, name_len);

    if (m->op == ZARR_MUT_PUT) {
        vlen = 8 + 2 + m->etag_len + 2 + m->version_id_len;

        memcpy(fv, &m->size, 8);
        len16 = (uint16_t) m->etag_len;
        memcpy(fv + 8, &len16, 2);
        memcpy(fv + 10, m->etag, m->etag_len);
        len16 = (uint16_t) m->version_id_len;
        memcpy(fv + 10 + m->etag_len, &len16, 2);

        if (m->version_id_len) {
            memcpy(fv + 12 + m->etag_len, m->version_id, m->version_id_len);
        }

        mrc = mdb_get(a->txn, a->s->entries, &k, &v);

        if (mrc == 0 && v.mv_size == vlen && memcmp(v.mv_data, fv, vlen) == 0)
        {
            /* the same file again (a retry): nothing changes */
            return ZARR_OK;
        }

        if (mrc != 0 && mrc != MDB_NOTFOUND) {
            return zarr_tree_mdb_err(a->s, err, mrc, "reading a file");
        }

        v.mv_data = fv;
        v.mv_size = vlen;

        mrc = mdb_put(a->txn, a->s->entries, &k, &v, 0);
        if (mrc != 0) {
            return zarr_tree_mdb_err(a->s, err, mrc, "writing a file");
        }

        return zarr_apply_mark_dirty(a, a->nlevels, err);
    }

    /* delete */

    mrc = mdb_del(a->txn, a->s->entries, &k, NULL);

    if (mrc == MDB_NOTFOUND) {
        return ZARR_OK;
    }

    if (mrc != 0) {
        return zarr_tree_mdb_err(a->s, err, mrc, "deleting a file");
    }

    /* remove the directories the delete left empty, deepest first */

    while (a->nlevels > 1) {
        rc = zarr_dir_is_empty(a, a->levels[a->nlevels - 1].id, &empty, err);
        if (rc != ZARR_OK) {
            return rc;
        }

        if (!empty) {
            break;
        }

        start = a->levels[a->nlevels - 2].end;
        if (start) {
            start++;
        }

        k.mv_data = kbuf;
        k.mv_size = zarr_entry_key(kbuf, a->levels[a->nlevels - 2].id,
                                   ZARR_TYPE_DIR, a->path.data + start,
                                   a->levels[a->nlevels - 1].end - start);

        mrc = mdb_del(a->txn, a->s->entries, &k, NULL);
        if (mrc != 0) {
            return zarr_tree_mdb_err(a->s, err, mrc, "deleting a directory");
        }

        /* its .checksum object goes too */
        rc = zarr_apply_outbox(a, a->nlevels - 1, err);
        if (rc != ZARR_OK) {
            return rc;
        }

        a->nlevels--;
        a->path.len = a->levels[a->nlevels - 1].end;
    }

    return zarr_apply_mark_dirty(a, a->nlevels, err);
}


/* records the zarr's checksum prefix when it is not the one recorded */

int
zarr_tree_zmeta_put(zarr_store_t *s, MDB_txn *txn, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    const char *cprefix, size_t cprefix_len, zarr_err_t *err)
{
    int       mrc;
    char      key[ZARR_BUCKET_MAX + ZARR_ID_MAX + 2];
    char      val[1024 + 1];
    MDB_val   k, v;

    if (bucket_len > ZARR_BUCKET_MAX || zarr_id_len > ZARR_ID_MAX
        || cprefix_len > 1024)
    {
        return zarr_tree_err(err, ZARR_ERR_INVALID, "invalid zarr");
    }

    memcpy(key, bucket, bucket_len);
    key[bucket_len] = '\0';
    memcpy(key + bucket_len + 1, zarr_id, zarr_id_len);

    k.mv_data = key;
    k.mv_size = bucket_len + 1 + zarr_id_len;

    val[0] = 'c';
    memcpy(val + 1, cprefix, cprefix_len);

    mrc = mdb_get(txn, s->zmeta, &k, &v);

    if (mrc == 0 && v.mv_size == cprefix_len + 1
        && memcmp(v.mv_data, val, cprefix_len + 1) == 0)
    {
        return ZARR_OK;
    }

    v.mv_data = val;
    v.mv_size = cprefix_len + 1;

    mrc = mdb_put(txn, s->zmeta, &k, &v, 0);
    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "writing zarr metadata");
    }

    return ZARR_OK;
}


static int
zarr_queue_dirs(zarr_store_t *s, MDB_txn *txn, zarr_buf_t *zkey,
    zarr_buf_t *path, uint64_t id, zarr_err_t *err)
{
    int          rc, mrc, i;
    char         kbuf[ZARR_KEY_MAX], okey[ZARR_BUCKET_MAX + ZARR_ID_MAX + 10];
    size_t       plen, name_len;
    uint64_t     x;
    MDB_cursor  *cur;
    MDB_val      k, v;
    zarr_dirrec_t  d;
    char         name[ZARR_NAME_MAX];

    /* this directory */

    memcpy(okey, zkey->data, zkey->len);
    okey[zkey->len] = '\0';
    x = id;

    for (i = 7; i >= 0; i--) {
        okey[zkey->len + 1 + i] = (char) (x & 0xff);
        x >>= 8;
    }

    k.mv_data = okey;
    k.mv_size = zkey->len + 1 + 8;
    v.mv_data = path->data;
    v.mv_size = path->len;

    mrc = mdb_put(txn, s->outbox, &k, &v, 0);
    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "queueing a directory");
    }

    /* and its subdirectories */

    mrc = mdb_cursor_open(txn, s->entries, &cur);
    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "mdb_cursor_open()");
    }

    k.mv_data = kbuf;
    k.mv_size = zarr_entry_key(kbuf, id, ZARR_TYPE_DIR, NULL, 0);

    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    rc = ZARR_OK;

    while (mrc == 0) {
        if (k.mv_size <= ZARR_ID_LEN + 1
            || memcmp(k.mv_data, kbuf, ZARR_ID_LEN) != 0
            || ((char *) k.mv_data)[ZARR_ID_LEN] != ZARR_TYPE_DIR)
        {
            break;
        }

        name_len = k.mv_size - ZARR_ID_LEN - 1;

        if (name_len > ZARR_NAME_MAX || zarr_dirrec_get(&v, &d) != ZARR_OK) {
            rc = zarr_tree_err(err, ZARR_ERR_STORE, "corrupt entry");
            break;
        }

        memcpy(name, (char *) k.mv_data + ZARR_ID_LEN + 1, name_len);
        plen = path->len;

        if ((plen && zarr_buf_add(path, "/", 1) != 0)
            || zarr_buf_add(path, name, name_len) != 0)
        {
            rc = zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
            break;
        }

        rc = zarr_queue_dirs(s, txn, zkey, path, d.id, err);
        path->len = plen;

        if (rc != ZARR_OK) {
            break;
        }

        /* the puts may have moved the cursor's page: find our place */
        k.mv_data = kbuf;
        k.mv_size = zarr_entry_key(kbuf, id, ZARR_TYPE_DIR, name, name_len);

        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET);
        if (mrc == 0) {
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
    }

    if (rc == ZARR_OK && mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = zarr_tree_mdb_err(s, err, mrc, "reading entries");
    }

    mdb_cursor_close(cur);

    return rc;
}


int
zarr_outbox_queue_all(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, zarr_err_t *err)
{
    int            rc, mrc;
    MDB_txn       *txn;
    zarr_buf_t     zkey, path;
    zarr_dirrec_t  root;

    rc = zarr_tree_txn_begin(s, 0, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    rc = zarr_get_root(s, txn, bucket, bucket_len, zarr_id, zarr_id_len,
                       &root, err);
    if (rc != ZARR_OK) {
        mdb_txn_abort(txn);
        return rc;
    }

    zarr_buf_init(&zkey);
    zarr_buf_init(&path);

    if (zarr_buf_reserve(&zkey, bucket_len + zarr_id_len + 1) != 0) {
        mdb_txn_abort(txn);
        return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    zarr_make_zkey(&zkey, bucket, bucket_len, zarr_id, zarr_id_len);

    rc = zarr_queue_dirs(s, txn, &zkey, &path, root.id, err);

    zarr_buf_free(&zkey);
    zarr_buf_free(&path);

    if (rc != ZARR_OK) {
        mdb_txn_abort(txn);
        return rc;
    }

    mrc = mdb_txn_commit(txn);
    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "mdb_txn_commit()");
    }

    return ZARR_OK;
}
