
/*
 * The checksum tree store on LMDB.  See zarr_tree.h for the layout.
 */


#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "zarr_outbox.h"
#include "zarr_path.h"
#include "zarr_tree_int.h"


#define ZARR_SCHEMA_VERSION  "1"

#define ZARR_TYPE_DIR        'd'
#define ZARR_TYPE_FILE       'f'

#define ZARR_DIR_DIRTY       0x01

/* a key of 1024 bytes has at most 512 components */
#define ZARR_DEPTH_MAX       520

/*
 * Pages of the map read by this process count in its RSS although they
 * are page cache: after this many entries are visited they are dropped
 * from the process (not from the cache), so that memory stays flat
 * whatever the size of the tree.
 */
#define ZARR_TRIM_ENTRIES    65536

#define ZARR_ID_LEN          8
#define ZARR_KEY_MAX         (ZARR_ID_LEN + 1 + ZARR_NAME_MAX)





/* a directory record: fixed size, so updates are in place */
typedef struct {
    uint8_t             flags;
    uint8_t             digest_len;
    uint8_t             pad[6];
    uint64_t            id;
    uint64_t            count;
    uint64_t            size;
    char                digest[ZARR_DIGEST_MAX];
} zarr_dirrec_t;


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


/* a recomputation over a transaction, read-only or persisting */
typedef struct {
    zarr_store_t       *s;
    MDB_txn            *txn;
    int                 persist;
    zarr_dir_cb         cb;
    void               *ctx;
    zarr_buf_t          path;
    zarr_err_t         *err;
} zarr_calc_t;


static void zarr_store_find_map(zarr_store_t *s);
static void zarr_make_zkey(zarr_buf_t *b, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len);
static size_t zarr_entry_key(char *key, uint64_t parent, int type,
    const char *name, size_t name_len);
static void zarr_dirrec_set(zarr_dirrec_t *d, const zarr_dir_sum_t *sum);
static void zarr_dirrec_sum(const zarr_dirrec_t *d, zarr_dir_sum_t *sum);
static int zarr_dirrec_get(MDB_val *v, zarr_dirrec_t *d);
static int zarr_calc_dir(zarr_calc_t *c, uint64_t id, int dirty,
    zarr_dir_sum_t *sum, zarr_buf_t *manifest);
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
static int zarr_find_dir(zarr_store_t *s, MDB_txn *txn, uint64_t root,
    const char *dir, size_t dir_len, zarr_dirrec_t *d, zarr_err_t *err);
static int zarr_get_root(zarr_store_t *s, MDB_txn *txn, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    zarr_dirrec_t *root, zarr_err_t *err);
static int zarr_flush_root(zarr_store_t *s, MDB_txn *txn, MDB_val *key,
    zarr_dirrec_t *root, zarr_err_t *err);


int
zarr_tree_err(zarr_err_t *err, int rc, const char *fmt, ...)
{
    va_list  args;

    if (err) {
        va_start(args, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, args);
        va_end(args);
    }

    return rc;
}


/*
 * Finds where LMDB mapped data.mdb (mdb_env_info() tells the address only
 * with MDB_FIXEDMAP) from /proc/self/maps.
 */

static void
zarr_store_find_map(zarr_store_t *s)
{
    FILE           *f;
    char            line[4096], *path;
    unsigned long   lo, hi;
    size_t          len;

    s->map_addr = NULL;
    s->map_len = 0;

    if (s->data_path == NULL) {
        return;
    }

    f = fopen("/proc/self/maps", "r");
    if (f == NULL) {
        return;
    }

    while (fgets(line, sizeof(line), f)) {
        len = strlen(line);

        if (len && line[len - 1] == '\n') {
            line[--len] = '\0';
        }

        path = strchr(line, '/');

        if (path == NULL || strcmp(path, s->data_path) != 0
            || sscanf(line, "%lx-%lx", &lo, &hi) != 2)
        {
            continue;
        }

        s->map_addr = (void *) lo;
        s->map_len = hi - lo;
        break;
    }

    fclose(f);
}


void
zarr_tree_visit(zarr_store_t *s, uint64_t n)
{
    if (__atomic_add_fetch(&s->visited, n, __ATOMIC_RELAXED)
        < ZARR_TRIM_ENTRIES)
    {
        return;
    }

    __atomic_store_n(&s->visited, 0, __ATOMIC_RELAXED);

    /*
     * The map is read-only and shared (no MDB_WRITEMAP): dropping its
     * pages only unmaps them here; a later access maps them again from
     * the page cache, unchanged, even inside a live transaction.
     */

    if (s->map_addr) {
        (void) madvise(s->map_addr, s->map_len, MADV_DONTNEED);
    }
}


int
zarr_tree_mdb_err(zarr_store_t *s, zarr_err_t *err, int mrc, const char *what)
{
    if (mrc == MDB_MAP_FULL) {
        return zarr_tree_err(err, ZARR_ERR_FULL,
                        "store is full: the LMDB map of %llu bytes is used "
                        "up (%s); raise the map size", 
                        (unsigned long long) s->map_size, what);
    }

    if (mrc == ENOMEM) {
        return zarr_tree_err(err, ZARR_ERR_NOMEM, "%s: out of memory", what);
    }

    return zarr_tree_err(err, ZARR_ERR_STORE, "%s failed: %s", what,
                    mdb_strerror(mrc));
}


int
zarr_store_open(zarr_store_t **sp, const char *dir, uint64_t map_size,
    int flags, zarr_err_t *err)
{
    int            rc, mrc;
    unsigned int   eflags, dflags;
    MDB_txn       *txn;
    MDB_val        k, v;
    char          *path;
    MDB_envinfo    info;
    zarr_store_t  *s;

    *sp = NULL;

    s = calloc(1, sizeof(zarr_store_t));
    if (s == NULL) {
        return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    s->flags = flags;
    s->map_size = map_size;

    if (!(flags & ZARR_STORE_RDONLY)) {
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            rc = zarr_tree_err(err, ZARR_ERR_STORE, "mkdir(\"%s\") failed: %s",
                          dir, strerror(errno));
            goto failed;
        }
    }

    mrc = mdb_env_create(&s->env);
    if (mrc != 0) {
        rc = zarr_tree_mdb_err(s, err, mrc, "mdb_env_create()");
        goto failed;
    }

    mdb_env_set_maxdbs(s->env, 8);
    mdb_env_set_maxreaders(s->env, 512);

    if (map_size) {
        mrc = mdb_env_set_mapsize(s->env, map_size);
        if (mrc != 0) {
            rc = zarr_tree_mdb_err(s, err, mrc, "mdb_env_set_mapsize()");
            goto failed;
        }
    }

    eflags = MDB_NOTLS;

    if (flags & ZARR_STORE_RDONLY) {
        eflags |= MDB_RDONLY;
    }

    if (flags & ZARR_STORE_NOSYNC) {
        eflags |= MDB_NOSYNC;
    }

    mrc = mdb_env_open(s->env, dir, eflags, 0644);
    if (mrc != 0) {
        rc = zarr_tree_err(err, mrc == MDB_MAP_FULL ? ZARR_ERR_FULL
                                               : ZARR_ERR_STORE,
                      "cannot open the store \"%s\": %s", dir,
                      mdb_strerror(mrc));
        goto failed;
    }

    /* the map may be larger than asked when the file already is */

    if (mdb_env_info(s->env, &info) == 0) {
        s->map_size = info.me_mapsize;
    }

    path = realpath(dir, NULL);

    if (path) {
        s->data_path = malloc(strlen(path) + sizeof("/data.mdb"));

        if (s->data_path) {
            strcpy(s->data_path, path);
            strcat(s->data_path, "/data.mdb");
        }

        free(path);
    }

    zarr_store_find_map(s);

    dflags = (flags & ZARR_STORE_RDONLY) ? 0 : MDB_CREATE;

    rc = zarr_tree_txn_begin(s, flags & ZARR_STORE_RDONLY, &txn, err);
    if (rc != ZARR_OK) {
        goto failed;
    }

    if ((mrc = mdb_dbi_open(txn, "zarrs", dflags, &s->zarrs)) != 0
        || (mrc = mdb_dbi_open(txn, "entries", dflags, &s->entries)) != 0
        || (mrc = mdb_dbi_open(txn, "meta", dflags, &s->meta)) != 0
        || (mrc = mdb_dbi_open(txn, "batches", dflags, &s->batches)) != 0
        || (mrc = mdb_dbi_open(txn, "intents", dflags, &s->intents)) != 0
        || (mrc = mdb_dbi_open(txn, "outbox", dflags, &s->outbox)) != 0
        || (mrc = mdb_dbi_open(txn, "zmeta", dflags, &s->zmeta)) != 0)
    {
        mdb_txn_abort(txn);

        if (mrc == MDB_NOTFOUND) {
            rc = zarr_tree_err(err, ZARR_ERR_NOTFOUND,
                          "\"%s\" is not an ngx_zarr store", dir);

        } else {
            rc = zarr_tree_mdb_err(s, err, mrc, "mdb_dbi_open()");
        }

        goto failed;
    }

    k.mv_data = "schema";
    k.mv_size = 6;

    mrc = mdb_get(txn, s->meta, &k, &v);

    if (mrc == MDB_NOTFOUND && !(flags & ZARR_STORE_RDONLY)) {
        v.mv_data = ZARR_SCHEMA_VERSION;
        v.mv_size = sizeof(ZARR_SCHEMA_VERSION) - 1;
        mrc = mdb_put(txn, s->meta, &k, &v, 0);

    } else if (mrc == 0
               && (v.mv_size != sizeof(ZARR_SCHEMA_VERSION) - 1
                   || memcmp(v.mv_data, ZARR_SCHEMA_VERSION, v.mv_size)))
    {
        mdb_txn_abort(txn);
        rc = zarr_tree_err(err, ZARR_ERR_STORE,
                      "store \"%s\" has schema \"%.*s\", expected \"%s\"",
                      dir, (int) v.mv_size, (char *) v.mv_data,
                      ZARR_SCHEMA_VERSION);
        goto failed;
    }

    if (mrc != 0) {
        mdb_txn_abort(txn);
        rc = zarr_tree_mdb_err(s, err, mrc, "reading the schema");
        goto failed;
    }

    /* even read-only: the commit keeps the database handles open */

    mrc = mdb_txn_commit(txn);
    if (mrc != 0) {
        rc = zarr_tree_mdb_err(s, err, mrc, "mdb_txn_commit()");
        goto failed;
    }

    *sp = s;

    return ZARR_OK;

failed:

    if (s->env) {
        mdb_env_close(s->env);
    }

    free(s->data_path);
    free(s);

    return rc;
}


void
zarr_store_close(zarr_store_t *s)
{
    if (s) {
        mdb_env_close(s->env);
        free(s->data_path);
        free(s);
    }
}


int
zarr_store_reader_check(zarr_store_t *s)
{
    int  dead;

    dead = 0;

    if (mdb_reader_check(s->env, &dead) != 0) {
        return -1;
    }

    return dead;
}


int
zarr_tree_txn_begin(zarr_store_t *s, int rdonly, MDB_txn **txn, zarr_err_t *err)
{
    int          mrc;
    MDB_envinfo  info;

    mrc = mdb_txn_begin(s->env, NULL, rdonly ? MDB_RDONLY : 0, txn);

    if (mrc == MDB_MAP_RESIZED) {
        /* another process grew the map: adopt its size */
        mdb_env_set_mapsize(s->env, 0);

        if (mdb_env_info(s->env, &info) == 0) {
            s->map_size = info.me_mapsize;
        }

        zarr_store_find_map(s);

        mrc = mdb_txn_begin(s->env, NULL, rdonly ? MDB_RDONLY : 0, txn);
    }

    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "mdb_txn_begin()");
    }

    return ZARR_OK;
}


static void
zarr_make_zkey(zarr_buf_t *b, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len)
{
    b->len = 0;

    /* the caller reserved bucket_len + zarr_id_len + 1 bytes */
    memcpy(b->data, bucket, bucket_len);
    b->data[bucket_len] = '\0';
    memcpy(b->data + bucket_len + 1, zarr_id, zarr_id_len);
    b->len = bucket_len + 1 + zarr_id_len;
}


static size_t
zarr_entry_key(char *key, uint64_t parent, int type, const char *name,
    size_t name_len)
{
    int  i;

    for (i = ZARR_ID_LEN - 1; i >= 0; i--) {
        key[i] = (char) (parent & 0xff);
        parent >>= 8;
    }

    key[ZARR_ID_LEN] = (char) type;
    memcpy(key + ZARR_ID_LEN + 1, name, name_len);

    return ZARR_ID_LEN + 1 + name_len;
}


static void
zarr_dirrec_set(zarr_dirrec_t *d, const zarr_dir_sum_t *sum)
{
    size_t  len;

    len = strlen(sum->digest);

    memset(d->digest, 0, sizeof(d->digest));
    memcpy(d->digest, sum->digest, len);
    d->digest_len = (uint8_t) len;
    d->count = sum->count;
    d->size = sum->size;
    d->flags &= ~ZARR_DIR_DIRTY;
}


static void
zarr_dirrec_sum(const zarr_dirrec_t *d, zarr_dir_sum_t *sum)
{
    memcpy(sum->digest, d->digest, d->digest_len);
    sum->digest[d->digest_len] = '\0';
    sum->count = d->count;
    sum->size = d->size;
}


static int
zarr_dirrec_get(MDB_val *v, zarr_dirrec_t *d)
{
    if (v->mv_size != sizeof(zarr_dirrec_t)) {
        return ZARR_ERR_STORE;
    }

    memcpy(d, v->mv_data, sizeof(zarr_dirrec_t));

    if (d->digest_len >= ZARR_DIGEST_MAX) {
        return ZARR_ERR_STORE;
    }

    return ZARR_OK;
}


/*
 * Computes directory id.  With dirty, its manifest is rebuilt from its
 * entries; dirty children are recomputed first (deepest first) and, with
 * c->persist, their records are written back clean.  Without dirty only
 * the walk callback is served.
 */

static int
zarr_calc_dir(zarr_calc_t *c, uint64_t id, int dirty, zarr_dir_sum_t *sum,
    zarr_buf_t *manifest)
{
    int              rc, mrc, child_dirty;
    char             kbuf[ZARR_KEY_MAX];
    char             name[ZARR_NAME_MAX];
    size_t           klen, name_len, plen, etag_len;
    uint64_t         fsize;
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

    if (dirty) {
        if (zarr_manifest_init(&m, manifest != NULL) != ZARR_OK) {
            zarr_manifest_free(&m);
            return zarr_tree_err(c->err, ZARR_ERR_NOMEM, "out of memory");
        }
    }

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

        if (((char *) k.mv_data)[ZARR_ID_LEN] == ZARR_TYPE_DIR) {

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

                    if (c->persist) {
                        /* same size: the record is rewritten in place */
                        klen = zarr_entry_key(kbuf, id, ZARR_TYPE_DIR, name,
                                              name_len);
                        k.mv_data = kbuf;
                        k.mv_size = klen;
                        v.mv_data = &d;
                        v.mv_size = sizeof(zarr_dirrec_t);

                        mrc = mdb_cursor_put(cur, &k, &v, MDB_CURRENT);
                        if (mrc != 0) {
                            rc = zarr_tree_mdb_err(c->s, c->err, mrc,
                                              "writing a directory digest");
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

        if (++visited == 1024) {
            zarr_tree_visit(c->s, visited);
            visited = 0;
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

    zarr_tree_visit(c->s, visited);

    if (cur) {
        mdb_cursor_close(cur);
    }

    if (dirty) {
        zarr_manifest_free(&m);
    }

    return rc;
}


static int
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


static int
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
zarr_store_stat(zarr_store_t *s, zarr_store_stat_t *st, zarr_err_t *err)
{
    int          rc, mrc;
    MDB_txn     *txn;
    MDB_envinfo  info;
    MDB_stat     ms;

    memset(st, 0, sizeof(zarr_store_stat_t));

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    if ((mrc = mdb_env_info(s->env, &info)) != 0
        || (mrc = mdb_env_stat(s->env, &ms)) != 0)
    {
        mdb_txn_abort(txn);
        return zarr_tree_mdb_err(s, err, mrc, "mdb_env_info()");
    }

    st->map_size = info.me_mapsize;
    st->used = (uint64_t) (info.me_last_pgno + 1) * ms.ms_psize;

    if (mdb_stat(txn, s->zarrs, &ms) == 0) {
        st->zarrs = ms.ms_entries;
    }

    if (mdb_stat(txn, s->entries, &ms) == 0) {
        st->entries = ms.ms_entries;
    }

    mdb_txn_abort(txn);

    return ZARR_OK;
}


static int
zarr_flush_root(zarr_store_t *s, MDB_txn *txn, MDB_val *key,
    zarr_dirrec_t *root, zarr_err_t *err)
{
    int             rc, mrc;
    MDB_val         v;
    zarr_dir_sum_t  sum;
    zarr_calc_t     c;

    memset(&c, 0, sizeof(zarr_calc_t));
    c.s = s;
    c.txn = txn;
    c.err = err;
    c.persist = 1;
    zarr_buf_init(&c.path);

    rc = zarr_calc_dir(&c, root->id, 1, &sum, NULL);

    zarr_buf_free(&c.path);

    if (rc != ZARR_OK) {
        return rc;
    }

    zarr_dirrec_set(root, &sum);

    v.mv_data = root;
    v.mv_size = sizeof(zarr_dirrec_t);

    mrc = mdb_put(txn, s->zarrs, key, &v, 0);
    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "writing a zarr digest");
    }

    return ZARR_OK;
}


int
zarr_store_flush(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, zarr_err_t *err)
{
    int             rc, mrc;
    MDB_txn        *txn;
    MDB_cursor     *cur;
    MDB_val         k, v;
    zarr_dirrec_t   root;
    zarr_buf_t      zkey;
    char            kcopy[ZARR_KEY_MAX + 64];

    rc = zarr_tree_txn_begin(s, 0, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    if (bucket) {
        zarr_buf_init(&zkey);

        if (zarr_buf_reserve(&zkey, bucket_len + zarr_id_len + 1) != 0) {
            mdb_txn_abort(txn);
            return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
        }

        zarr_make_zkey(&zkey, bucket, bucket_len, zarr_id, zarr_id_len);

        rc = zarr_get_root(s, txn, bucket, bucket_len, zarr_id, zarr_id_len,
                           &root, err);

        if (rc == ZARR_OK && (root.flags & ZARR_DIR_DIRTY)) {
            k.mv_data = zkey.data;
            k.mv_size = zkey.len;
            rc = zarr_flush_root(s, txn, &k, &root, err);
        }

        zarr_buf_free(&zkey);

    } else {
        mrc = mdb_cursor_open(txn, s->zarrs, &cur);
        if (mrc != 0) {
            mdb_txn_abort(txn);
            return zarr_tree_mdb_err(s, err, mrc, "mdb_cursor_open()");
        }

        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);

        while (mrc == 0) {
            if (zarr_dirrec_get(&v, &root) != ZARR_OK
                || k.mv_size > sizeof(kcopy))
            {
                rc = zarr_tree_err(err, ZARR_ERR_STORE, "corrupt zarr record");
                break;
            }

            if (root.flags & ZARR_DIR_DIRTY) {
                memcpy(kcopy, k.mv_data, k.mv_size);
                k.mv_data = kcopy;

                rc = zarr_flush_root(s, txn, &k, &root, err);
                if (rc != ZARR_OK) {
                    break;
                }

                /* puts may move the cursor's page: find our place again */
                mrc = mdb_cursor_get(cur, &k, &v, MDB_SET);
                if (mrc != 0) {
                    break;
                }
            }

            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }

        if (rc == ZARR_OK && mrc != 0 && mrc != MDB_NOTFOUND) {
            rc = zarr_tree_mdb_err(s, err, mrc, "listing zarrs");
        }

        mdb_cursor_close(cur);
    }

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

    a->have_zarr = 1;

    a->levels[0].id = a->root.id;
    a->levels[0].dirty = a->root.flags & ZARR_DIR_DIRTY;
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
        a->levels[a->nlevels].dirty = d.flags & ZARR_DIR_DIRTY;
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
 * Flags the first nlevels levels of the resolved chain dirty, deepest
 * first, up to a level that is dirty already.
 */

static int
zarr_apply_mark_dirty(zarr_apply_t *a, size_t nlevels, zarr_err_t *err)
{
    int            rc, mrc;
    char           kbuf[ZARR_KEY_MAX];
    size_t         i, start;
    MDB_val        k, v;
    zarr_dirrec_t  d;

    for (i = nlevels - 1; i > 0; i--) {
        if (a->levels[i].dirty) {
            /* a dirty directory has dirty ancestors */
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

        d.flags |= ZARR_DIR_DIRTY;
        v.mv_data = &d;
        v.mv_size = sizeof(zarr_dirrec_t);

        mrc = mdb_put(a->txn, a->s->entries, &k, &v, 0);
        if (mrc != 0) {
            return zarr_tree_mdb_err(a->s, err, mrc, "flagging a directory");
        }

        a->levels[i].dirty = 1;

        rc = zarr_apply_outbox(a, i, err);
        if (rc != ZARR_OK) {
            return rc;
        }
    }

    if (!a->levels[0].dirty) {
        a->root.flags |= ZARR_DIR_DIRTY;
        a->root_changed = 1;
        a->levels[0].dirty = 1;

        return zarr_apply_outbox(a, 0, err);
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
    uint16_t       elen;
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

            if (f->cb(f->ctx, f->path.data, f->path.len,
                      (char *) v.mv_data + 10, elen, size) != 0)
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
