
/*
 * Reading the checksum tree: digests (dirty directories recomputed on the
 * fly, or persisted by a flush), directory records, walks over a zarr's
 * directories and files, the list of zarrs.
 */


#include <stdlib.h>
#include <string.h>

#include "zarr_path.h"
#include "zarr_tree_int.h"


/*
 * Computes directory id.  With dirty, its manifest is rebuilt from its
 * entries; dirty children are recomputed first (deepest first) and, with
 * c->kept, their new records are listed there.  Without dirty only the
 * walk callback is served.
 */

int
zarr_calc_dir(zarr_calc_t *c, uint64_t id, int dirty, zarr_dir_sum_t *sum,
    zarr_buf_t *manifest)
{
    int              rc, mrc, child_dirty, type;
    char             kbuf[ZARR_KEY_MAX];
    char             name[ZARR_NAME_MAX];
    size_t           klen, name_len, plen, etag_len;
    uint64_t         fsize, gen;
    uint16_t         elen;
    uint64_t         visited;
    MDB_cursor      *cur;
    MDB_val          k, v;
    zarr_dirrec_t    d;
    zarr_dir_sum_t   child;
    zarr_manifest_t  m;
    const char      *fv;

    cur = NULL;
    rc = ZARR_OK;
    visited = 0;
    gen = c->gen;

    if (dirty) {
        if (zarr_manifest_init(&m, manifest != NULL) != ZARR_OK) {
            zarr_manifest_free(&m);
            return zarr_tree_err(c->err, ZARR_ERR_NOMEM, "out of memory");
        }
    }

    c->depth++;

    mrc = mdb_cursor_open(c->txn, c->s->entries, &cur);
    if (mrc != 0) {
        rc = zarr_tree_mdb_err(c->s, c->err, mrc, "mdb_cursor_open()");
        goto done;
    }

    klen = zarr_entry_key(kbuf, id, ZARR_TYPE_DIR, NULL, 0);
    k.mv_data = kbuf;
    k.mv_size = klen;

    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);

    while (mrc == 0) {
        if (k.mv_size <= ZARR_ID_LEN
            || memcmp(k.mv_data, kbuf, ZARR_ID_LEN) != 0)
        {
            break;
        }

        name_len = k.mv_size - ZARR_ID_LEN - 1;
        if (name_len > ZARR_NAME_MAX) {
            rc = zarr_tree_err(c->err, ZARR_ERR_STORE, "corrupt entry key");
            goto done;
        }

        memcpy(name, (char *) k.mv_data + ZARR_ID_LEN + 1, name_len);
        type = ((char *) k.mv_data)[ZARR_ID_LEN];

        if (type == ZARR_TYPE_DIR) {

            if (zarr_dirrec_get(&v, &d) != ZARR_OK) {
                rc = zarr_tree_err(c->err, ZARR_ERR_STORE,
                              "corrupt directory record");
                goto done;
            }

            child_dirty = d.flags & ZARR_DIR_DIRTY;

            if (child_dirty || c->cb) {
                plen = c->path.len;

                if ((plen && zarr_buf_add(&c->path, "/", 1) != 0)
                    || zarr_buf_add(&c->path, name, name_len) != 0)
                {
                    rc = zarr_tree_err(c->err, ZARR_ERR_NOMEM, "out of memory");
                    goto done;
                }

                zarr_dirrec_sum(&d, &child);

                rc = zarr_calc_dir(c, d.id, child_dirty, &child, NULL);

                c->path.len = plen;

                if (rc != ZARR_OK) {
                    goto done;
                }

                if (child_dirty) {
                    zarr_dirrec_set(&d, &child);

                    if (c->kept) {
                        klen = zarr_entry_key(kbuf, id, ZARR_TYPE_DIR, name,
                                              name_len);

                        if (zarr_kept_add(c->kept, kbuf, klen, &d) != ZARR_OK)
                        {
                            rc = zarr_tree_err(c->err, ZARR_ERR_NOMEM,
                                               "out of memory");
                            goto done;
                        }
                    }
                }
            }

            if (dirty) {
                rc = zarr_manifest_add_dir(&m, name, name_len, d.digest,
                                           d.count, d.size);
                if (rc != ZARR_OK) {
                    rc = zarr_tree_err(c->err, rc, "cannot add a directory to "
                                  "a manifest");
                    goto done;
                }
            }

        } else {
            if (!dirty) {
                /* files come after directories: nothing left to walk */
                break;
            }

            if (v.mv_size < 10) {
                rc = zarr_tree_err(c->err, ZARR_ERR_STORE,
                                   "corrupt file record");
                goto done;
            }

            fv = v.mv_data;
            memcpy(&fsize, fv, 8);
            memcpy(&elen, fv + 8, 2);
            etag_len = elen;

            if (10 + etag_len > v.mv_size) {
                rc = zarr_tree_err(c->err, ZARR_ERR_STORE,
                                   "corrupt file record");
                goto done;
            }

            rc = zarr_manifest_add_file(&m, name, name_len, fv + 10,
                                        etag_len, fsize);
            if (rc != ZARR_OK) {
                rc = zarr_tree_err(c->err, rc,
                                   "cannot add a file to a manifest");
                goto done;
            }
        }

        visited++;

        if (c->renew && ++c->since >= c->s->calc_renew) {
            mdb_txn_reset(c->txn);

            mrc = mdb_txn_renew(c->txn);
            if (mrc != 0) {
                rc = zarr_tree_mdb_err(c->s, c->err, mrc, "mdb_txn_renew()");
                goto done;
            }

            c->since = 0;
            c->gen++;
        }

        if (gen != c->gen) {
            /* a newer snapshot (here or below): find our place in it */
            gen = c->gen;

            mrc = mdb_cursor_renew(c->txn, cur);
            if (mrc != 0) {
                rc = zarr_tree_mdb_err(c->s, c->err, mrc,
                                       "mdb_cursor_renew()");
                goto done;
            }

            klen = zarr_entry_key(kbuf, id, type, name, name_len);
            k.mv_data = kbuf;
            k.mv_size = klen;

            mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);

            if (mrc == 0 && k.mv_size == klen
                && memcmp(k.mv_data, kbuf, klen) == 0)
            {
                mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            }

            /* else the entry went: what follows it is next */
            continue;
        }

        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }

    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = zarr_tree_mdb_err(c->s, c->err, mrc, "reading entries");
        goto done;
    }

    if (dirty) {
        rc = zarr_manifest_finish(&m, sum);
        if (rc != ZARR_OK) {
            rc = zarr_tree_err(c->err, rc, "out of memory");
            goto done;
        }

        if (manifest
            && zarr_buf_add(manifest, m.buf.data, m.buf.len) != 0)
        {
            rc = zarr_tree_err(c->err, ZARR_ERR_NOMEM, "out of memory");
            goto done;
        }
    }

    if (c->cb && c->cb(c->ctx, c->path.data, c->path.len, sum) != 0) {
        rc = zarr_tree_err(c->err, ZARR_ERR_INVALID, "walk stopped");
    }

done:

    if (cur) {
        mdb_cursor_close(cur);
    }

    /* the map's pages are dropped, if need be, when the outermost ends */

    c->visits += visited;

    if (--c->depth == 0) {
        zarr_tree_visit(c->s, c->visits);
        c->visits = 0;
    }

    if (dirty) {
        zarr_manifest_free(&m);
    }

    return rc;
}


int
zarr_get_root(zarr_store_t *s, MDB_txn *txn, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    zarr_dirrec_t *root, zarr_err_t *err)
{
    int          mrc;
    MDB_val      k, v;
    zarr_buf_t   zkey;

    zarr_buf_init(&zkey);

    if (zarr_buf_reserve(&zkey, bucket_len + zarr_id_len + 1) != 0) {
        return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    zarr_make_zkey(&zkey, bucket, bucket_len, zarr_id, zarr_id_len);

    k.mv_data = zkey.data;
    k.mv_size = zkey.len;

    mrc = mdb_get(txn, s->zarrs, &k, &v);

    zarr_buf_free(&zkey);

    if (mrc == MDB_NOTFOUND) {
        return zarr_tree_err(err, ZARR_ERR_NOTFOUND, "zarr \"%.*s/%.*s\" is "
                        "unknown", (int) bucket_len, bucket,
                        (int) zarr_id_len, zarr_id);
    }

    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "reading a zarr");
    }

    if (zarr_dirrec_get(&v, root) != ZARR_OK) {
        return zarr_tree_err(err, ZARR_ERR_STORE, "corrupt zarr record");
    }

    return ZARR_OK;
}


int
zarr_find_dir(zarr_store_t *s, MDB_txn *txn, uint64_t root, const char *dir,
    size_t dir_len, zarr_dirrec_t *d, zarr_err_t *err)
{
    int          mrc;
    char         kbuf[ZARR_KEY_MAX];
    size_t       i, start;
    uint64_t     id;
    MDB_val      k, v;

    id = root;
    start = 0;

    for (i = 0; i <= dir_len; i++) {
        if (i < dir_len && dir[i] != '/') {
            continue;
        }

        if (i - start == 0 || i - start > ZARR_NAME_MAX) {
            return zarr_tree_err(err, ZARR_ERR_NOTFOUND, "no such directory");
        }

        k.mv_data = kbuf;
        k.mv_size = zarr_entry_key(kbuf, id, ZARR_TYPE_DIR, dir + start,
                                   i - start);

        mrc = mdb_get(txn, s->entries, &k, &v);

        if (mrc == MDB_NOTFOUND) {
            return zarr_tree_err(err, ZARR_ERR_NOTFOUND, "no such directory");
        }

        if (mrc != 0) {
            return zarr_tree_mdb_err(s, err, mrc, "reading a directory");
        }

        if (zarr_dirrec_get(&v, d) != ZARR_OK) {
            return zarr_tree_err(err, ZARR_ERR_STORE,
                                 "corrupt directory record");
        }

        id = d->id;
        start = i + 1;
    }

    return ZARR_OK;
}


int
zarr_store_get_zarr(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, zarr_dir_sum_t *sum,
    zarr_err_t *err)
{
    return zarr_store_get_dir(s, bucket, bucket_len, zarr_id, zarr_id_len,
                              "", 0, sum, NULL, err);
}


int
zarr_store_get_dir(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, const char *dir, size_t dir_len,
    zarr_dir_sum_t *sum, zarr_buf_t *manifest, zarr_err_t *err)
{
    int            rc;
    MDB_txn       *txn;
    zarr_dirrec_t  root, d;
    zarr_calc_t    c;

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    rc = zarr_get_root(s, txn, bucket, bucket_len, zarr_id, zarr_id_len,
                       &root, err);
    if (rc != ZARR_OK) {
        goto done;
    }

    d = root;

    if (dir_len) {
        rc = zarr_find_dir(s, txn, root.id, dir, dir_len, &d, err);
        if (rc != ZARR_OK) {
            goto done;
        }
    }

    zarr_dirrec_sum(&d, sum);

    if ((d.flags & ZARR_DIR_DIRTY) || manifest) {
        memset(&c, 0, sizeof(zarr_calc_t));
        c.s = s;
        c.txn = txn;
        c.err = err;
        zarr_buf_init(&c.path);

        rc = zarr_calc_dir(&c, d.id, 1, sum, manifest);

        zarr_buf_free(&c.path);
    }

done:

    mdb_txn_abort(txn);

    return rc;
}


int
zarr_store_checksum_doc(zarr_store_t *s, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    const char *dir, size_t dir_len, zarr_buf_t *doc, zarr_err_t *err)
{
    int             rc;
    zarr_buf_t      manifest;
    zarr_dir_sum_t  sum;

    zarr_buf_init(&manifest);

    rc = zarr_store_get_dir(s, bucket, bucket_len, zarr_id, zarr_id_len,
                            dir, dir_len, &sum, &manifest, err);

    if (rc == ZARR_OK) {
        rc = zarr_checksum_document(doc, manifest.data, manifest.len, &sum);
        if (rc != ZARR_OK) {
            zarr_tree_err(err, rc, "out of memory");
        }
    }

    zarr_buf_free(&manifest);

    return rc;
}


int
zarr_store_walk(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, zarr_dir_cb cb, void *ctx,
    zarr_err_t *err)
{
    int             rc;
    MDB_txn        *txn;
    zarr_dirrec_t   root;
    zarr_dir_sum_t  sum;
    zarr_calc_t     c;

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    rc = zarr_get_root(s, txn, bucket, bucket_len, zarr_id, zarr_id_len,
                       &root, err);

    if (rc == ZARR_OK) {
        memset(&c, 0, sizeof(zarr_calc_t));
        c.s = s;
        c.txn = txn;
        c.err = err;
        c.cb = cb;
        c.ctx = ctx;
        zarr_buf_init(&c.path);

        zarr_dirrec_sum(&root, &sum);

        rc = zarr_calc_dir(&c, root.id, root.flags & ZARR_DIR_DIRTY, &sum,
                           NULL);

        zarr_buf_free(&c.path);
    }

    mdb_txn_abort(txn);

    return rc;
}


int
zarr_store_list(zarr_store_t *s, zarr_zarr_cb cb, void *ctx,
    zarr_err_t *err)
{
    return zarr_store_list_from(s, NULL, 0, NULL, 0, cb, ctx, err);
}


int
zarr_store_list_from(zarr_store_t *s, const char *from_bucket,
    size_t from_bucket_len, const char *after, size_t after_len,
    zarr_zarr_cb cb, void *ctx, zarr_err_t *err)
{
    int             rc, mrc;
    char           *bucket, *nul;
    char            key[ZARR_BUCKET_MAX + ZARR_ID_MAX + 2];
    size_t          blen;
    MDB_txn        *txn;
    MDB_cursor     *cur;
    MDB_val         k, v;
    zarr_dirrec_t   root;
    zarr_dir_sum_t  sum;
    zarr_calc_t     c;

    if (from_bucket
        && (from_bucket_len > ZARR_BUCKET_MAX || after_len > ZARR_ID_MAX))
    {
        return zarr_tree_err(err, ZARR_ERR_INVALID, "invalid zarr");
    }

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    mrc = mdb_cursor_open(txn, s->zarrs, &cur);
    if (mrc != 0) {
        mdb_txn_abort(txn);
        return zarr_tree_mdb_err(s, err, mrc, "mdb_cursor_open()");
    }

    memset(&c, 0, sizeof(zarr_calc_t));
    c.s = s;
    c.txn = txn;
    c.err = err;
    zarr_buf_init(&c.path);

    if (from_bucket) {
        /* the first key at or after "bucket NUL after" */
        memcpy(key, from_bucket, from_bucket_len);
        key[from_bucket_len] = '\0';
        memcpy(key + from_bucket_len + 1, after, after_len);
        k.mv_data = key;
        k.mv_size = from_bucket_len + 1 + after_len;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);

    } else {
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }

    while (mrc == 0) {
        bucket = k.mv_data;
        nul = memchr(bucket, '\0', k.mv_size);

        if (nul == NULL || zarr_dirrec_get(&v, &root) != ZARR_OK) {
            rc = zarr_tree_err(err, ZARR_ERR_STORE, "corrupt zarr record");
            break;
        }

        blen = nul - bucket;

        if (from_bucket) {
            if (blen != from_bucket_len
                || memcmp(bucket, from_bucket, blen) != 0)
            {
                /* past the bucket */
                break;
            }

            if (after_len && k.mv_size - blen - 1 == after_len
                && memcmp(nul + 1, after, after_len) == 0)
            {
                /* "after" itself */
                mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
                continue;
            }
        }

        zarr_dirrec_sum(&root, &sum);

        if (root.flags & ZARR_DIR_DIRTY) {
            rc = zarr_calc_dir(&c, root.id, 1, &sum, NULL);
            if (rc != ZARR_OK) {
                break;
            }
        }

        if (cb(ctx, bucket, blen, nul + 1, k.mv_size - blen - 1, &sum) != 0)
        {
            break;
        }

        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }

    if (rc == ZARR_OK && mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = zarr_tree_mdb_err(s, err, mrc, "listing zarrs");
    }

    zarr_buf_free(&c.path);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);

    return rc;
}


int
zarr_tree_find_dir(zarr_store_t *s, MDB_txn *txn, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    const char *dir, size_t dir_len, uint64_t *id, int *dirty,
    zarr_dir_sum_t *sum, zarr_err_t *err)
{
    int            rc;
    zarr_dirrec_t  root, d;

    rc = zarr_get_root(s, txn, bucket, bucket_len, zarr_id, zarr_id_len,
                       &root, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    d = root;

    if (dir_len) {
        rc = zarr_find_dir(s, txn, root.id, dir, dir_len, &d, err);
        if (rc != ZARR_OK) {
            return rc;
        }
    }

    *id = d.id;
    *dirty = d.flags & ZARR_DIR_DIRTY;
    zarr_dirrec_sum(&d, sum);

    return ZARR_OK;
}


typedef struct {
    zarr_store_t     *s;
    MDB_txn          *txn;
    zarr_file_cb      cb;
    void             *ctx;
    zarr_buf_t        path;
    zarr_err_t       *err;
} zarr_files_t;


static int
zarr_files_dir(zarr_files_t *f, uint64_t id)
{
    int            rc, mrc;
    char           kbuf[ZARR_KEY_MAX];
    size_t         plen, name_len;
    uint16_t       elen, vlen;
    uint64_t       size;
    MDB_cursor    *cur;
    MDB_val        k, v;
    zarr_dirrec_t  d;
    char           name[ZARR_NAME_MAX];

    mrc = mdb_cursor_open(f->txn, f->s->entries, &cur);
    if (mrc != 0) {
        return zarr_tree_mdb_err(f->s, f->err, mrc, "mdb_cursor_open()");
    }

    k.mv_data = kbuf;
    k.mv_size = zarr_entry_key(kbuf, id, ZARR_TYPE_DIR, NULL, 0);

    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    rc = ZARR_OK;

    while (mrc == 0) {
        if (k.mv_size <= ZARR_ID_LEN + 1
            || memcmp(k.mv_data, kbuf, ZARR_ID_LEN) != 0)
        {
            break;
        }

        name_len = k.mv_size - ZARR_ID_LEN - 1;
        if (name_len > ZARR_NAME_MAX) {
            rc = zarr_tree_err(f->err, ZARR_ERR_STORE, "corrupt entry");
            break;
        }

        memcpy(name, (char *) k.mv_data + ZARR_ID_LEN + 1, name_len);
        plen = f->path.len;

        if ((plen && zarr_buf_add(&f->path, "/", 1) != 0)
            || zarr_buf_add(&f->path, name, name_len) != 0)
        {
            rc = zarr_tree_err(f->err, ZARR_ERR_NOMEM, "out of memory");
            break;
        }

        if (((char *) k.mv_data)[ZARR_ID_LEN] == ZARR_TYPE_DIR) {
            if (zarr_dirrec_get(&v, &d) != ZARR_OK) {
                rc = zarr_tree_err(f->err, ZARR_ERR_STORE, "corrupt entry");
                break;
            }

            rc = zarr_files_dir(f, d.id);

        } else {
            if (v.mv_size < 10) {
                rc = zarr_tree_err(f->err, ZARR_ERR_STORE, "corrupt entry");
                break;
            }

            memcpy(&size, v.mv_data, 8);
            memcpy(&elen, (char *) v.mv_data + 8, 2);

            if (10 + (size_t) elen > v.mv_size) {
                rc = zarr_tree_err(f->err, ZARR_ERR_STORE, "corrupt entry");
                break;
            }

            vlen = 0;

            if (12 + (size_t) elen <= v.mv_size) {
                memcpy(&vlen, (char *) v.mv_data + 10 + elen, 2);

                if (12 + (size_t) elen + vlen > v.mv_size) {
                    rc = zarr_tree_err(f->err, ZARR_ERR_STORE,
                                       "corrupt entry");
                    break;
                }
            }

            if (f->cb(f->ctx, f->path.data, f->path.len,
                      (char *) v.mv_data + 10, elen, size,
                      (char *) v.mv_data + 12 + elen, vlen) != 0)
            {
                rc = zarr_tree_err(f->err, ZARR_ERR_INVALID, "stopped");
            }
        }

        f->path.len = plen;

        if (rc != ZARR_OK) {
            break;
        }

        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }

    if (rc == ZARR_OK && mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = zarr_tree_mdb_err(f->s, f->err, mrc, "reading entries");
    }

    mdb_cursor_close(cur);

    return rc;
}


int
zarr_store_files(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, zarr_file_cb cb, void *ctx,
    zarr_err_t *err)
{
    int            rc;
    MDB_txn       *txn;
    zarr_files_t   f;
    zarr_dirrec_t  root;

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    rc = zarr_get_root(s, txn, bucket, bucket_len, zarr_id, zarr_id_len,
                       &root, err);

    if (rc == ZARR_OK) {
        memset(&f, 0, sizeof(zarr_files_t));
        f.s = s;
        f.txn = txn;
        f.cb = cb;
        f.ctx = ctx;
        f.err = err;
        zarr_buf_init(&f.path);

        rc = zarr_files_dir(&f, root.id);

        zarr_buf_free(&f.path);
    }

    mdb_txn_abort(txn);

    return rc;
}
