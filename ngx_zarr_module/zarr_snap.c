
/*
 * Snapshots of zarrs (zarr_snap.h): taken from the tree with its own
 * walks, written in bounded write transactions so that no writer of
 * other zarrs waits long; read with plain lookups and cursor walks.
 */


#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zarr_path.h"
#include "zarr_s3xml.h"
#include "zarr_sigv4.h"
#include "zarr_snap.h"
#include "zarr_tree_int.h"


#define ZARR_SNAP_BUILDING   1
#define ZARR_SNAP_READY      2
#define ZARR_SNAP_DELETING   3

#define ZARR_SNAP_KEY_MAX    (ZARR_ID_LEN + 1 + ZARR_SNAP_PATH_MAX)
#define ZARR_HELD_KEY_MAX    (ZARR_ID_LEN + ZARR_SNAP_PATH_MAX + 1          \
                              + ZARR_SNAP_VERSION_MAX + 1 + ZARR_ID_LEN)
#define ZARR_SNAPS_KEY_MAX   (ZARR_BUCKET_MAX + 1 + ZARR_ID_MAX + 1          \
                              + ZARR_SNAP_NAME_MAX)


/* the snapshot record: fixed size */
typedef struct {
    uint8_t             state;
    uint8_t             pad[7];
    uint64_t            id;
    uint64_t            root;          /* the zarr's root directory id */
    uint64_t            created;
    uint64_t            count;
    uint64_t            size;
    char                digest[ZARR_DIGEST_MAX];
} zarr_snaprec_t;


/* a snapshot being taken: records waiting for their transaction */
typedef struct {
    zarr_store_t       *s;
    uint64_t            id;
    uint64_t            root;
    const char         *name;
    size_t              name_len;
    size_t              chunk;
    size_t              pending;
    zarr_buf_t          recs;          /* dbi, klen, key, vlen, value */
    zarr_dir_sum_t      sum;           /* of the root, from the walk */
    uint64_t            files;
    int                 rc;
    zarr_err_t         *err;
} zarr_snap_build_t;


static size_t zarr_snap_key(char *key, uint64_t id, int type,
    const char *path, size_t path_len);
static void zarr_snap_put_id(char *p, uint64_t id);
static size_t zarr_snaps_key(char *key, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    const char *name, size_t name_len);
static int zarr_snap_check(zarr_store_t *s, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    zarr_err_t *err);
static int zarr_snap_children(zarr_store_t *s, MDB_txn *txn, uint64_t id,
    int type, const char *dir, size_t dir_len, zarr_entry_t **ents,
    size_t *n, size_t *cap, zarr_buf_t *strings, zarr_err_t *err);
static int zarr_snap_read(zarr_store_t *s, MDB_txn *txn, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    const char *name, size_t name_len, zarr_snaprec_t *rec,
    zarr_err_t *err);
static void zarr_snap_from_rec(zarr_snap_t *snap, const zarr_snaprec_t *rec,
    const char *name, size_t name_len);
static int zarr_snap_add(zarr_snap_build_t *b, MDB_dbi dbi, const char *key,
    size_t klen, const void *val, size_t vlen);
static int zarr_snap_write(zarr_snap_build_t *b);
static int zarr_snap_build_file(void *ctx, const char *path, size_t path_len,
    const char *etag, size_t etag_len, uint64_t size, const char *version,
    size_t version_len);
static int zarr_snap_build_dir(void *ctx, const char *dir, size_t dir_len,
    const zarr_dir_sum_t *sum);
static int zarr_snap_set_state(zarr_store_t *s, const char *skey,
    size_t sklen, uint64_t id, int state, const zarr_snap_build_t *b,
    zarr_err_t *err);
static int zarr_snap_purge(zarr_store_t *s, const char *skey, size_t sklen,
    const zarr_snaprec_t *rec, size_t chunk, zarr_err_t *err);
static int zarr_snap_file_rec(const MDB_val *v, zarr_snap_file_t *f);
static int zarr_snap_hex(int c);


int
zarr_snap_name_valid(const char *name, size_t len)
{
    size_t  i;
    char    c;

    if (len == 0 || len > ZARR_SNAP_NAME_MAX) {
        return 0;
    }

    /*
     * "." and ".." would be dot segments of the snapshot's keys and of
     * its API URL: clients and nginx resolve those away
     */

    if (name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.'))) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = name[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
        {
            return 0;
        }
    }

    return 1;
}


static void
zarr_snap_put_id(char *p, uint64_t id)
{
    int  i;

    for (i = ZARR_ID_LEN - 1; i >= 0; i--) {
        p[i] = (char) (id & 0xff);
        id >>= 8;
    }
}


static size_t
zarr_snap_key(char *key, uint64_t id, int type, const char *path,
    size_t path_len)
{
    zarr_snap_put_id(key, id);
    key[ZARR_ID_LEN] = (char) type;

    if (path_len) {
        memcpy(key + ZARR_ID_LEN + 1, path, path_len);
    }

    return ZARR_ID_LEN + 1 + path_len;
}


static size_t
zarr_snaps_key(char *key, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, const char *name,
    size_t name_len)
{
    size_t  n;

    memcpy(key, bucket, bucket_len);
    n = bucket_len;
    key[n++] = '\0';
    memcpy(key + n, zarr_id, zarr_id_len);
    n += zarr_id_len;
    key[n++] = '\0';

    if (name_len) {
        memcpy(key + n, name, name_len);
        n += name_len;
    }

    return n;
}


static int
zarr_snap_check(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, zarr_err_t *err)
{
    (void) bucket;
    (void) zarr_id;

    if (s->nosnaps) {
        return zarr_tree_err(err, ZARR_ERR_NOTFOUND, "no snapshots in this "
                             "store");
    }

    if (bucket_len == 0 || bucket_len > ZARR_BUCKET_MAX
        || zarr_id_len == 0 || zarr_id_len > ZARR_ID_MAX)
    {
        return zarr_tree_err(err, ZARR_ERR_INVALID, "invalid zarr");
    }

    return ZARR_OK;
}


static int
zarr_snap_read(zarr_store_t *s, MDB_txn *txn, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    const char *name, size_t name_len, zarr_snaprec_t *rec, zarr_err_t *err)
{
    int      mrc;
    char     key[ZARR_SNAPS_KEY_MAX];
    MDB_val  k, v;

    k.mv_data = key;
    k.mv_size = zarr_snaps_key(key, bucket, bucket_len, zarr_id, zarr_id_len,
                               name, name_len);

    mrc = mdb_get(txn, s->snaps, &k, &v);

    if (mrc == MDB_NOTFOUND) {
        return zarr_tree_err(err, ZARR_ERR_NOTFOUND, "no snapshot \"%.*s\"",
                             (int) name_len, name);
    }

    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "reading a snapshot");
    }

    if (v.mv_size != sizeof(zarr_snaprec_t)) {
        return zarr_tree_err(err, ZARR_ERR_STORE, "corrupt snapshot record");
    }

    memcpy(rec, v.mv_data, sizeof(zarr_snaprec_t));

    return ZARR_OK;
}


static void
zarr_snap_from_rec(zarr_snap_t *snap, const zarr_snaprec_t *rec,
    const char *name, size_t name_len)
{
    memset(snap, 0, sizeof(zarr_snap_t));
    memcpy(snap->name, name, name_len);
    snap->name_len = name_len;
    snap->id = rec->id;
    snap->created = rec->created;
    snap->sum.count = rec->count;
    snap->sum.size = rec->size;
    memcpy(snap->sum.digest, rec->digest, ZARR_DIGEST_MAX);
    snap->sum.digest[ZARR_DIGEST_MAX - 1] = '\0';
}


/* queues one record; writes the queue once it holds b->chunk of them */

static int
zarr_snap_add(zarr_snap_build_t *b, MDB_dbi dbi, const char *key,
    size_t klen, const void *val, size_t vlen)
{
    uint32_t  d, kl, vl;

    d = dbi;
    kl = (uint32_t) klen;
    vl = (uint32_t) vlen;

    if (zarr_buf_add(&b->recs, &d, 4) != 0
        || zarr_buf_add(&b->recs, &kl, 4) != 0
        || zarr_buf_add(&b->recs, key, klen) != 0
        || zarr_buf_add(&b->recs, &vl, 4) != 0
        || zarr_buf_add(&b->recs, val, vlen) != 0)
    {
        b->rc = zarr_tree_err(b->err, ZARR_ERR_NOMEM, "out of memory");
        return b->rc;
    }

    if (++b->pending >= b->chunk) {
        return zarr_snap_write(b);
    }

    return ZARR_OK;
}


/* the queued records in one write transaction */

static int
zarr_snap_write(zarr_snap_build_t *b)
{
    int       rc, mrc;
    char     *p, *last;
    uint32_t  d, kl, vl;
    MDB_txn  *txn;
    MDB_val   k, v;

    if (b->pending == 0) {
        return ZARR_OK;
    }

    rc = zarr_tree_txn_begin(b->s, 0, &txn, b->err);
    if (rc != ZARR_OK) {
        b->rc = rc;
        return rc;
    }

    p = b->recs.data;
    last = p + b->recs.len;

    while (p < last) {
        memcpy(&d, p, 4);
        memcpy(&kl, p + 4, 4);
        k.mv_data = p + 8;
        k.mv_size = kl;
        p += 8 + kl;
        memcpy(&vl, p, 4);
        v.mv_data = p + 4;
        v.mv_size = vl;
        p += 4 + vl;

        mrc = mdb_put(txn, (MDB_dbi) d, &k, &v, 0);
        if (mrc != 0) {
            mdb_txn_abort(txn);
            b->rc = zarr_tree_mdb_err(b->s, b->err, mrc,
                                      "writing a snapshot");
            return b->rc;
        }
    }

    mrc = mdb_txn_commit(txn);
    if (mrc != 0) {
        b->rc = zarr_tree_mdb_err(b->s, b->err, mrc, "mdb_txn_commit()");
        return b->rc;
    }

    zarr_tree_visit(b->s, b->pending);

    b->pending = 0;
    b->recs.len = 0;

    return ZARR_OK;
}


static int
zarr_snap_build_file(void *ctx, const char *path, size_t path_len,
    const char *etag, size_t etag_len, uint64_t size, const char *version,
    size_t version_len)
{
    zarr_snap_build_t *b = ctx;

    char      key[ZARR_HELD_KEY_MAX];
    char      val[8 + 2 + ZARR_ETAG_MAX + 2 + ZARR_SNAP_VERSION_MAX];
    size_t    klen, vlen;
    uint16_t  len16;

    if (version_len == 0) {
        b->rc = zarr_tree_err(b->err, ZARR_ERR_UNVERSIONED, "\"%.*s\" has "
                              "no version id (is the bucket versioned?)",
                              (int) path_len, path);
        return 1;
    }

    if (path_len > ZARR_SNAP_PATH_MAX || version_len > ZARR_SNAP_VERSION_MAX
        || etag_len > ZARR_ETAG_MAX)
    {
        b->rc = zarr_tree_err(b->err, ZARR_ERR_INVALID, "\"%.*s\": path or "
                              "version id too long for a snapshot",
                              (int) path_len, path);
        return 1;
    }

    memcpy(val, &size, 8);
    len16 = (uint16_t) etag_len;
    memcpy(val + 8, &len16, 2);
    memcpy(val + 10, etag, etag_len);
    len16 = (uint16_t) version_len;
    memcpy(val + 10 + etag_len, &len16, 2);
    memcpy(val + 12 + etag_len, version, version_len);
    vlen = 12 + etag_len + version_len;

    klen = zarr_snap_key(key, b->id, ZARR_TYPE_FILE, path, path_len);

    if (zarr_snap_add(b, b->s->snapent, key, klen, val, vlen) != ZARR_OK) {
        return 1;
    }

    /* held: root path NUL version NUL id -> name */

    zarr_snap_put_id(key, b->root);
    memcpy(key + ZARR_ID_LEN, path, path_len);
    klen = ZARR_ID_LEN + path_len;
    key[klen++] = '\0';
    memcpy(key + klen, version, version_len);
    klen += version_len;
    key[klen++] = '\0';
    zarr_snap_put_id(key + klen, b->id);
    klen += ZARR_ID_LEN;

    if (zarr_snap_add(b, b->s->held, key, klen, b->name, b->name_len)
        != ZARR_OK)
    {
        return 1;
    }

    b->files++;

    return 0;
}


static int
zarr_snap_build_dir(void *ctx, const char *dir, size_t dir_len,
    const zarr_dir_sum_t *sum)
{
    zarr_snap_build_t *b = ctx;

    char            key[ZARR_SNAP_KEY_MAX];
    size_t          klen;
    zarr_dirrec_t   d;

    if (dir_len > ZARR_SNAP_PATH_MAX) {
        b->rc = zarr_tree_err(b->err, ZARR_ERR_INVALID, "\"%.*s\": path "
                              "too long for a snapshot", (int) dir_len, dir);
        return 1;
    }

    memset(&d, 0, sizeof(zarr_dirrec_t));
    zarr_dirrec_set(&d, sum);

    klen = zarr_snap_key(key, b->id, ZARR_TYPE_DIR, dir, dir_len);

    if (zarr_snap_add(b, b->s->snapent, key, klen, &d, sizeof(zarr_dirrec_t))
        != ZARR_OK)
    {
        return 1;
    }

    if (dir_len == 0) {
        b->sum = *sum;
    }

    return 0;
}


/*
 * Moves the record of snapshot "id" to a state.  The name's record may
 * be gone or another snapshot's by now (a concurrent delete, then a
 * create of the same name): then the caller's snapshot no longer exists,
 * ZARR_ERR_NOTFOUND, and nothing of the other one is touched.
 */

static int
zarr_snap_set_state(zarr_store_t *s, const char *skey, size_t sklen,
    uint64_t id, int state, const zarr_snap_build_t *b, zarr_err_t *err)
{
    int             rc, mrc;
    MDB_txn        *txn;
    MDB_val         k, v;
    zarr_snaprec_t  rec;

    rc = zarr_tree_txn_begin(s, 0, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    k.mv_data = (void *) skey;
    k.mv_size = sklen;

    mrc = mdb_get(txn, s->snaps, &k, &v);

    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return zarr_tree_mdb_err(s, err, mrc, "reading a snapshot");
    }

    if (mrc == 0 && v.mv_size != sizeof(zarr_snaprec_t)) {
        mdb_txn_abort(txn);
        return zarr_tree_err(err, ZARR_ERR_STORE, "corrupt snapshot record");
    }

    if (mrc == 0) {
        memcpy(&rec, v.mv_data, sizeof(zarr_snaprec_t));
    }

    if (mrc == MDB_NOTFOUND || rec.id != id) {
        mdb_txn_abort(txn);
        return zarr_tree_err(err, ZARR_ERR_NOTFOUND, "the snapshot was "
                             "deleted meanwhile");
    }

    rec.state = (uint8_t) state;

    if (b) {
        rec.count = b->sum.count;
        rec.size = b->sum.size;
        memset(rec.digest, 0, sizeof(rec.digest));
        memcpy(rec.digest, b->sum.digest, strlen(b->sum.digest));
    }

    v.mv_data = &rec;
    v.mv_size = sizeof(zarr_snaprec_t);

    mrc = mdb_put(txn, s->snaps, &k, &v, 0);
    if (mrc == 0) {
        mrc = mdb_txn_commit(txn);

    } else {
        mdb_txn_abort(txn);
    }

    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "writing a snapshot record");
    }

    return ZARR_OK;
}


int
zarr_snap_create(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, const char *name,
    size_t name_len, uint64_t created, size_t chunk, zarr_snap_t *snap,
    zarr_err_t *err)
{
    int                 rc, mrc;
    char                skey[ZARR_SNAPS_KEY_MAX];
    size_t              sklen;
    uint64_t            next;
    MDB_txn            *txn;
    MDB_val             k, v;
    zarr_dirrec_t       root;
    zarr_snaprec_t      rec;
    zarr_snap_build_t   b;
    zarr_err_t          e2, berr;

    rc = zarr_snap_check(s, bucket, bucket_len, zarr_id, zarr_id_len, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    if (!zarr_snap_name_valid(name, name_len)) {
        return zarr_tree_err(err, ZARR_ERR_INVALID, "a snapshot name is "
                             ZARR_SNAP_NAME_RULE);
    }

    sklen = zarr_snaps_key(skey, bucket, bucket_len, zarr_id, zarr_id_len,
                           name, name_len);

    /* the record, "building", and its id */

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

    k.mv_data = skey;
    k.mv_size = sklen;

    mrc = mdb_get(txn, s->snaps, &k, &v);

    if (mrc == 0) {
        mdb_txn_abort(txn);
        return zarr_tree_err(err, ZARR_ERR_EXISTS, "snapshot \"%.*s\" "
                             "exists", (int) name_len, name);
    }

    if (mrc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return zarr_tree_mdb_err(s, err, mrc, "reading a snapshot");
    }

    k.mv_data = "snap_next_id";
    k.mv_size = sizeof("snap_next_id") - 1;

    mrc = mdb_get(txn, s->meta, &k, &v);

    if (mrc == 0 && v.mv_size == 8) {
        memcpy(&next, v.mv_data, 8);

    } else if (mrc == MDB_NOTFOUND) {
        next = 1;

    } else {
        mdb_txn_abort(txn);
        return zarr_tree_err(err, ZARR_ERR_STORE, "bad snap_next_id");
    }

    memset(&rec, 0, sizeof(zarr_snaprec_t));
    rec.state = ZARR_SNAP_BUILDING;
    rec.id = next++;
    rec.root = root.id;
    rec.created = created;

    v.mv_data = &next;
    v.mv_size = 8;

    mrc = mdb_put(txn, s->meta, &k, &v, 0);

    if (mrc == 0) {
        k.mv_data = skey;
        k.mv_size = sklen;
        v.mv_data = &rec;
        v.mv_size = sizeof(zarr_snaprec_t);

        mrc = mdb_put(txn, s->snaps, &k, &v, 0);
    }

    if (mrc == 0) {
        mrc = mdb_txn_commit(txn);

    } else {
        mdb_txn_abort(txn);
    }

    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "writing a snapshot record");
    }

    /* the files, then the directories (their digests up to date) */

    memset(&b, 0, sizeof(zarr_snap_build_t));
    b.s = s;
    b.id = rec.id;
    b.root = rec.root;
    b.name = name;
    b.name_len = name_len;
    b.chunk = chunk ? chunk : ZARR_SNAP_CHUNK;
    b.err = &berr;
    zarr_buf_init(&b.recs);

    /* the callbacks' own errors win over the walks' "stopped" */

    rc = zarr_store_files(s, bucket, bucket_len, zarr_id, zarr_id_len,
                          zarr_snap_build_file, &b, err);

    if (rc == ZARR_OK) {
        rc = zarr_store_walk(s, bucket, bucket_len, zarr_id, zarr_id_len,
                             zarr_snap_build_dir, &b, err);
    }

    if (rc == ZARR_OK && b.rc == ZARR_OK) {
        zarr_snap_write(&b);
    }

    if (b.rc != ZARR_OK) {
        rc = b.rc;
        *err = berr;
    }

    if (rc == ZARR_OK && b.sum.count != b.files) {
        rc = zarr_tree_err(err, ZARR_ERR_STORE, "the zarr changed while a "
                           "snapshot was taken");
    }

    if (rc == ZARR_OK) {
        rc = zarr_snap_set_state(s, skey, sklen, rec.id, ZARR_SNAP_READY,
                                 &b, err);
    }

    zarr_buf_free(&b.recs);

    if (rc != ZARR_OK) {
        /* nothing left behind: the partial snapshot goes */
        (void) zarr_snap_purge(s, skey, sklen, &rec, b.chunk, &e2);
        return rc;
    }

    memcpy(rec.digest, b.sum.digest, strlen(b.sum.digest) + 1);
    rec.count = b.sum.count;
    rec.size = b.sum.size;
    zarr_snap_from_rec(snap, &rec, name, name_len);

    return ZARR_OK;
}


int
zarr_snap_get(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, const char *name,
    size_t name_len, zarr_snap_t *snap, zarr_err_t *err)
{
    int             rc;
    MDB_txn        *txn;
    zarr_snaprec_t  rec;

    rc = zarr_snap_check(s, bucket, bucket_len, zarr_id, zarr_id_len, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    if (!zarr_snap_name_valid(name, name_len)) {
        return zarr_tree_err(err, ZARR_ERR_NOTFOUND, "no such snapshot");
    }

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    rc = zarr_snap_read(s, txn, bucket, bucket_len, zarr_id, zarr_id_len,
                        name, name_len, &rec, err);

    mdb_txn_abort(txn);

    if (rc != ZARR_OK) {
        return rc;
    }

    if (rec.state != ZARR_SNAP_READY) {
        return zarr_tree_err(err, ZARR_ERR_NOTFOUND, "snapshot \"%.*s\" is "
                             "not complete", (int) name_len, name);
    }

    zarr_snap_from_rec(snap, &rec, name, name_len);

    return ZARR_OK;
}


int
zarr_snap_list(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, zarr_snap_cb cb, void *ctx,
    zarr_err_t *err)
{
    int             rc, mrc;
    char            key[ZARR_SNAPS_KEY_MAX];
    size_t          klen;
    MDB_txn        *txn;
    MDB_cursor     *cur;
    MDB_val         k, v;
    zarr_snaprec_t  rec;
    zarr_snap_t     snap;

    rc = zarr_snap_check(s, bucket, bucket_len, zarr_id, zarr_id_len, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    klen = zarr_snaps_key(key, bucket, bucket_len, zarr_id, zarr_id_len,
                          NULL, 0);

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    mrc = mdb_cursor_open(txn, s->snaps, &cur);
    if (mrc != 0) {
        mdb_txn_abort(txn);
        return zarr_tree_mdb_err(s, err, mrc, "mdb_cursor_open()");
    }

    k.mv_data = key;
    k.mv_size = klen;

    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);

    while (mrc == 0) {
        if (k.mv_size <= klen || memcmp(k.mv_data, key, klen) != 0) {
            break;
        }

        if (v.mv_size != sizeof(zarr_snaprec_t)
            || k.mv_size - klen > ZARR_SNAP_NAME_MAX)
        {
            rc = zarr_tree_err(err, ZARR_ERR_STORE, "corrupt snapshot "
                               "record");
            break;
        }

        memcpy(&rec, v.mv_data, sizeof(zarr_snaprec_t));

        if (rec.state == ZARR_SNAP_READY) {
            zarr_snap_from_rec(&snap, &rec, (char *) k.mv_data + klen,
                               k.mv_size - klen);

            if (cb(ctx, &snap) != 0) {
                break;
            }
        }

        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }

    if (rc == ZARR_OK && mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = zarr_tree_mdb_err(s, err, mrc, "listing snapshots");
    }

    mdb_cursor_close(cur);
    mdb_txn_abort(txn);

    return rc;
}


/*
 * Deletes a snapshot's records, chunk by chunk, then its record.  The
 * record is marked "deleting" first: readers no longer see it.
 */

static int
zarr_snap_purge(zarr_store_t *s, const char *skey, size_t sklen,
    const zarr_snaprec_t *rec, size_t chunk, zarr_err_t *err)
{
    int          rc, mrc, done;
    char         key[ZARR_SNAP_KEY_MAX], hkey[ZARR_HELD_KEY_MAX];
    size_t       n, hlen, plen;
    MDB_txn     *txn;
    MDB_cursor  *cur;
    MDB_val      k, v, hk;
    zarr_snap_file_t  f;

    rc = zarr_snap_set_state(s, skey, sklen, rec->id, ZARR_SNAP_DELETING,
                             NULL, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    zarr_snap_key(key, rec->id, 0, NULL, 0);

    done = 0;

    while (!done) {
        rc = zarr_tree_txn_begin(s, 0, &txn, err);
        if (rc != ZARR_OK) {
            return rc;
        }

        mrc = mdb_cursor_open(txn, s->snapent, &cur);
        if (mrc != 0) {
            mdb_txn_abort(txn);
            return zarr_tree_mdb_err(s, err, mrc, "mdb_cursor_open()");
        }

        k.mv_data = key;
        k.mv_size = ZARR_ID_LEN;
        n = 0;

        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);

        while (mrc == 0 && n < chunk) {
            if (k.mv_size <= ZARR_ID_LEN
                || memcmp(k.mv_data, key, ZARR_ID_LEN) != 0)
            {
                mrc = MDB_NOTFOUND;
                break;
            }

            if (((char *) k.mv_data)[ZARR_ID_LEN] == ZARR_TYPE_FILE
                && zarr_snap_file_rec(&v, &f) == ZARR_OK)
            {
                plen = k.mv_size - ZARR_ID_LEN - 1;

                zarr_snap_put_id(hkey, rec->root);
                memcpy(hkey + ZARR_ID_LEN, (char *) k.mv_data + ZARR_ID_LEN + 1,
                       plen);
                hlen = ZARR_ID_LEN + plen;
                hkey[hlen++] = '\0';
                memcpy(hkey + hlen, f.version, f.version_len);
                hlen += f.version_len;
                hkey[hlen++] = '\0';
                zarr_snap_put_id(hkey + hlen, rec->id);
                hlen += ZARR_ID_LEN;

                hk.mv_data = hkey;
                hk.mv_size = hlen;

                mrc = mdb_del(txn, s->held, &hk, NULL);
                if (mrc != 0 && mrc != MDB_NOTFOUND) {
                    break;
                }
            }

            mrc = mdb_cursor_del(cur, 0);
            if (mrc != 0) {
                break;
            }

            n++;

            /* the first record left is the next one */
            k.mv_data = key;
            k.mv_size = ZARR_ID_LEN;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        }

        mdb_cursor_close(cur);

        if (mrc == MDB_NOTFOUND) {
            done = 1;

        } else if (mrc != 0) {
            mdb_txn_abort(txn);
            return zarr_tree_mdb_err(s, err, mrc, "deleting a snapshot");
        }

        if (done) {
            /* the name's record, unless it names a newer snapshot now */
            k.mv_data = (void *) skey;
            k.mv_size = sklen;

            mrc = mdb_get(txn, s->snaps, &k, &v);

            if (mrc == 0
                && (v.mv_size != sizeof(zarr_snaprec_t)
                    || memcmp((char *) v.mv_data
                              + offsetof(zarr_snaprec_t, id),
                              &rec->id, sizeof(rec->id)) == 0))
            {
                mrc = mdb_del(txn, s->snaps, &k, NULL);
            }

            if (mrc != 0 && mrc != MDB_NOTFOUND) {
                mdb_txn_abort(txn);
                return zarr_tree_mdb_err(s, err, mrc, "deleting a snapshot");
            }
        }

        mrc = mdb_txn_commit(txn);
        if (mrc != 0) {
            return zarr_tree_mdb_err(s, err, mrc, "mdb_txn_commit()");
        }

        zarr_tree_visit(s, n);
    }

    return ZARR_OK;
}


int
zarr_snap_delete(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, const char *name,
    size_t name_len, size_t chunk, zarr_err_t *err)
{
    int             rc;
    char            skey[ZARR_SNAPS_KEY_MAX];
    size_t          sklen;
    MDB_txn        *txn;
    zarr_snaprec_t  rec;

    rc = zarr_snap_check(s, bucket, bucket_len, zarr_id, zarr_id_len, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    if (!zarr_snap_name_valid(name, name_len)) {
        return zarr_tree_err(err, ZARR_ERR_NOTFOUND, "no such snapshot");
    }

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    rc = zarr_snap_read(s, txn, bucket, bucket_len, zarr_id, zarr_id_len,
                        name, name_len, &rec, err);

    mdb_txn_abort(txn);

    if (rc != ZARR_OK) {
        return rc;
    }

    if (rec.state == ZARR_SNAP_BUILDING) {
        return zarr_tree_err(err, ZARR_ERR_NOTFOUND, "snapshot \"%.*s\" is "
                             "not complete", (int) name_len, name);
    }

    sklen = zarr_snaps_key(skey, bucket, bucket_len, zarr_id, zarr_id_len,
                           name, name_len);

    return zarr_snap_purge(s, skey, sklen, &rec, chunk ? chunk
                                                       : ZARR_SNAP_CHUNK,
                           err);
}


static int
zarr_snap_file_rec(const MDB_val *v, zarr_snap_file_t *f)
{
    const char  *p;
    uint16_t     len16;

    p = v->mv_data;

    if (v->mv_size < 12) {
        return ZARR_ERR_STORE;
    }

    memcpy(&f->size, p, 8);
    memcpy(&len16, p + 8, 2);
    f->etag_len = len16;

    if (f->etag_len > ZARR_ETAG_MAX || 12 + f->etag_len > v->mv_size) {
        return ZARR_ERR_STORE;
    }

    memcpy(f->etag, p + 10, f->etag_len);
    f->etag[f->etag_len] = '\0';
    memcpy(&len16, p + 10 + f->etag_len, 2);
    f->version_len = len16;

    if (f->version_len > ZARR_SNAP_VERSION_MAX
        || 12 + f->etag_len + f->version_len != v->mv_size)
    {
        return ZARR_ERR_STORE;
    }

    memcpy(f->version, p + 12 + f->etag_len, f->version_len);
    f->version[f->version_len] = '\0';

    return ZARR_OK;
}


int
zarr_snap_file(zarr_store_t *s, uint64_t id, const char *path,
    size_t path_len, zarr_snap_file_t *f, zarr_err_t *err)
{
    int       rc, mrc;
    char      key[ZARR_SNAP_KEY_MAX];
    MDB_txn  *txn;
    MDB_val   k, v;

    if (s->nosnaps || path_len == 0 || path_len > ZARR_SNAP_PATH_MAX) {
        return zarr_tree_err(err, ZARR_ERR_NOTFOUND, "no such file");
    }

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    k.mv_data = key;
    k.mv_size = zarr_snap_key(key, id, ZARR_TYPE_FILE, path, path_len);

    mrc = mdb_get(txn, s->snapent, &k, &v);

    if (mrc == 0) {
        rc = zarr_snap_file_rec(&v, f);
        if (rc != ZARR_OK) {
            zarr_tree_err(err, rc, "corrupt snapshot file record");
        }

    } else if (mrc == MDB_NOTFOUND) {
        rc = zarr_tree_err(err, ZARR_ERR_NOTFOUND, "no such file");

    } else {
        rc = zarr_tree_mdb_err(s, err, mrc, "reading a snapshot");
    }

    mdb_txn_abort(txn);

    return rc;
}


int
zarr_snap_scan(zarr_store_t *s, uint64_t id, const char *prefix,
    size_t prefix_len, const char *after, size_t after_len,
    zarr_snap_scan_cb cb, void *ctx, zarr_err_t *err)
{
    int               rc, mrc, r;
    char              key[ZARR_SNAP_KEY_MAX + 1];
    char             *path;
    size_t            klen, plen, skip;
    MDB_txn          *txn;
    MDB_cursor       *cur;
    MDB_val           k, v;
    zarr_snap_file_t  f;

    if (s->nosnaps) {
        return ZARR_OK;
    }

    if (prefix_len > ZARR_SNAP_PATH_MAX) {
        return ZARR_OK;
    }

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    mrc = mdb_cursor_open(txn, s->snapent, &cur);
    if (mrc != 0) {
        mdb_txn_abort(txn);
        return zarr_tree_mdb_err(s, err, mrc, "mdb_cursor_open()");
    }

    /* from max(prefix, after + NUL) */

    if (after_len > ZARR_SNAP_PATH_MAX) {
        after_len = ZARR_SNAP_PATH_MAX;
    }

    if (after_len && zarr_name_cmp(after, after_len, prefix, prefix_len) >= 0)
    {
        klen = zarr_snap_key(key, id, ZARR_TYPE_FILE, after, after_len);
        key[klen++] = '\0';

    } else {
        klen = zarr_snap_key(key, id, ZARR_TYPE_FILE, prefix, prefix_len);
    }

    k.mv_data = key;
    k.mv_size = klen;

    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);

    while (mrc == 0) {
        if (k.mv_size < ZARR_ID_LEN + 1
            || memcmp(k.mv_data, key, ZARR_ID_LEN) != 0
            || ((char *) k.mv_data)[ZARR_ID_LEN] != ZARR_TYPE_FILE)
        {
            break;
        }

        path = (char *) k.mv_data + ZARR_ID_LEN + 1;
        plen = k.mv_size - ZARR_ID_LEN - 1;

        if (plen < prefix_len || memcmp(path, prefix, prefix_len) != 0) {
            break;
        }

        if (zarr_snap_file_rec(&v, &f) != ZARR_OK) {
            rc = zarr_tree_err(err, ZARR_ERR_STORE, "corrupt snapshot file "
                               "record");
            break;
        }

        skip = 0;
        r = cb(ctx, path, plen, &f, &skip);

        if (r == ZARR_SNAP_STOP) {
            break;
        }

        if (r == ZARR_SNAP_SKIP && skip > 0 && skip <= plen
            && (unsigned char) path[skip - 1] != 0xff)
        {
            /* past every path that begins with path[0 .. skip) */
            klen = zarr_snap_key(key, id, ZARR_TYPE_FILE, path, skip);
            key[klen - 1]++;
            k.mv_data = key;
            k.mv_size = klen;

            mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            continue;
        }

        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }

    if (rc == ZARR_OK && mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = zarr_tree_mdb_err(s, err, mrc, "reading a snapshot");
    }

    mdb_cursor_close(cur);
    mdb_txn_abort(txn);

    return rc;
}


/* the direct children of dir in one of snapshot id's two kinds */

static int
zarr_snap_children(zarr_store_t *s, MDB_txn *txn, uint64_t id, int type,
    const char *dir, size_t dir_len, zarr_entry_t **ents, size_t *n,
    size_t *cap, zarr_buf_t *strings, zarr_err_t *err)
{
    int             mrc;
    char            key[ZARR_SNAP_KEY_MAX + 2], *rest, *slash;
    size_t          klen, plen, rlen;
    MDB_cursor     *cur;
    MDB_val         k, v;
    zarr_entry_t   *e;
    zarr_dirrec_t   d;
    zarr_snap_file_t  f;

    mrc = mdb_cursor_open(txn, s->snapent, &cur);
    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "mdb_cursor_open()");
    }

    klen = zarr_snap_key(key, id, type, dir, dir_len);

    if (dir_len) {
        key[klen++] = '/';
    }

    plen = klen;

    k.mv_data = key;
    k.mv_size = klen;

    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);

    while (mrc == 0) {
        if (k.mv_size < plen || memcmp(k.mv_data, key, plen) != 0) {
            break;
        }

        rest = (char *) k.mv_data + plen;
        rlen = k.mv_size - plen;

        if (rlen == 0) {
            /* the directory itself (the root's record) */
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }

        slash = memchr(rest, '/', rlen);

        if (slash) {
            /* deeper: past everything under rest up to the slash */
            klen = plen + (slash - rest);
            memcpy(key + plen, rest, slash - rest);
            key[klen++] = '/' + 1;
            k.mv_data = key;
            k.mv_size = klen;

            mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            continue;
        }

        if (*n == *cap) {
            *cap = *cap ? 2 * *cap : 64;
            e = realloc(*ents, *cap * sizeof(zarr_entry_t));
            if (e == NULL) {
                mdb_cursor_close(cur);
                return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
            }

            *ents = e;
        }

        e = &(*ents)[*n];
        memset(e, 0, sizeof(zarr_entry_t));

        /* offsets for now: the strings' buffer moves as it grows */

        e->name = (char *) (uintptr_t) strings->len;
        e->name_len = rlen;

        if (zarr_buf_add(strings, rest, rlen) != 0) {
            mdb_cursor_close(cur);
            return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
        }

        e->digest = (char *) (uintptr_t) strings->len;

        if (type == ZARR_TYPE_DIR) {
            if (zarr_dirrec_get(&v, &d) != ZARR_OK) {
                mdb_cursor_close(cur);
                return zarr_tree_err(err, ZARR_ERR_STORE, "corrupt snapshot "
                                     "directory record");
            }

            e->digest_len = strlen(d.digest);
            e->size = d.size;

            if (zarr_buf_add(strings, d.digest, e->digest_len) != 0) {
                mdb_cursor_close(cur);
                return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
            }

        } else {
            if (zarr_snap_file_rec(&v, &f) != ZARR_OK) {
                mdb_cursor_close(cur);
                return zarr_tree_err(err, ZARR_ERR_STORE, "corrupt snapshot "
                                     "file record");
            }

            e->digest_len = f.etag_len;
            e->size = f.size;

            if (zarr_buf_add(strings, f.etag, f.etag_len) != 0) {
                mdb_cursor_close(cur);
                return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
            }
        }

        (*n)++;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }

    mdb_cursor_close(cur);

    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        return zarr_tree_mdb_err(s, err, mrc, "reading a snapshot");
    }

    return ZARR_OK;
}


int
zarr_snap_checksum_doc(zarr_store_t *s, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    const char *name, size_t name_len, const char *dir, size_t dir_len,
    zarr_buf_t *doc, zarr_err_t *err)
{
    int             rc, mrc;
    char            key[ZARR_SNAP_KEY_MAX];
    size_t          i, nd, nf, cd, cf;
    MDB_txn        *txn;
    MDB_val         k, v;
    zarr_buf_t      strings, manifest;
    zarr_entry_t   *dirs, *files;
    zarr_snaprec_t  rec;
    zarr_dir_sum_t  sum;

    rc = zarr_snap_check(s, bucket, bucket_len, zarr_id, zarr_id_len, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    if (!zarr_snap_name_valid(name, name_len)) {
        return zarr_tree_err(err, ZARR_ERR_NOTFOUND, "no such snapshot");
    }

    if (dir_len > ZARR_SNAP_PATH_MAX) {
        return zarr_tree_err(err, ZARR_ERR_NOTFOUND, "no such directory");
    }

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    dirs = NULL;
    files = NULL;
    nd = nf = cd = cf = 0;
    zarr_buf_init(&strings);
    zarr_buf_init(&manifest);

    rc = zarr_snap_read(s, txn, bucket, bucket_len, zarr_id, zarr_id_len,
                        name, name_len, &rec, err);
    if (rc != ZARR_OK) {
        goto done;
    }

    if (rec.state != ZARR_SNAP_READY) {
        rc = zarr_tree_err(err, ZARR_ERR_NOTFOUND, "no such snapshot");
        goto done;
    }

    k.mv_data = key;
    k.mv_size = zarr_snap_key(key, rec.id, ZARR_TYPE_DIR, dir, dir_len);

    mrc = mdb_get(txn, s->snapent, &k, &v);

    if (mrc == MDB_NOTFOUND) {
        rc = zarr_tree_err(err, ZARR_ERR_NOTFOUND, "no such directory");
        goto done;
    }

    if (mrc != 0) {
        rc = zarr_tree_mdb_err(s, err, mrc, "reading a snapshot");
        goto done;
    }

    rc = zarr_snap_children(s, txn, rec.id, ZARR_TYPE_DIR, dir, dir_len,
                            &dirs, &nd, &cd, &strings, err);
    if (rc != ZARR_OK) {
        goto done;
    }

    rc = zarr_snap_children(s, txn, rec.id, ZARR_TYPE_FILE, dir, dir_len,
                            &files, &nf, &cf, &strings, err);
    if (rc != ZARR_OK) {
        goto done;
    }

    for (i = 0; i < nd; i++) {
        dirs[i].name = strings.data + (uintptr_t) dirs[i].name;
        dirs[i].digest = strings.data + (uintptr_t) dirs[i].digest;
    }

    for (i = 0; i < nf; i++) {
        files[i].name = strings.data + (uintptr_t) files[i].name;
        files[i].digest = strings.data + (uintptr_t) files[i].digest;
    }

    rc = zarr_manifest_build(dirs, nd, files, nf, &sum, &manifest);

    if (rc == ZARR_OK) {
        rc = zarr_checksum_document(doc, manifest.data, manifest.len, &sum);
    }

    if (rc != ZARR_OK) {
        zarr_tree_err(err, rc, "cannot build a checksum document");
    }

done:

    mdb_txn_abort(txn);
    free(dirs);
    free(files);
    zarr_buf_free(&strings);
    zarr_buf_free(&manifest);

    return rc;
}


int
zarr_snap_held(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, const char *path,
    size_t path_len, const char *version, size_t version_len, char *name,
    zarr_err_t *err)
{
    int            rc, mrc;
    char           key[ZARR_HELD_KEY_MAX];
    size_t         klen;
    MDB_txn       *txn;
    MDB_cursor    *cur;
    MDB_val        k, v;
    zarr_dirrec_t  root;

    rc = zarr_snap_check(s, bucket, bucket_len, zarr_id, zarr_id_len, err);
    if (rc != ZARR_OK) {
        return rc == ZARR_ERR_INVALID ? ZARR_ERR_NOTFOUND : rc;
    }

    if (path_len > ZARR_SNAP_PATH_MAX || version_len > ZARR_SNAP_VERSION_MAX)
    {
        return zarr_tree_err(err, ZARR_ERR_NOTFOUND, "not held");
    }

    rc = zarr_tree_txn_begin(s, 1, &txn, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    rc = zarr_get_root(s, txn, bucket, bucket_len, zarr_id, zarr_id_len,
                       &root, err);
    if (rc != ZARR_OK) {
        mdb_txn_abort(txn);
        return rc;
    }

    zarr_snap_put_id(key, root.id);
    memcpy(key + ZARR_ID_LEN, path, path_len);
    klen = ZARR_ID_LEN + path_len;
    key[klen++] = '\0';
    memcpy(key + klen, version, version_len);
    klen += version_len;
    key[klen++] = '\0';

    mrc = mdb_cursor_open(txn, s->held, &cur);
    if (mrc != 0) {
        mdb_txn_abort(txn);
        return zarr_tree_mdb_err(s, err, mrc, "mdb_cursor_open()");
    }

    k.mv_data = key;
    k.mv_size = klen;

    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);

    if (mrc == 0 && k.mv_size == klen + ZARR_ID_LEN
        && memcmp(k.mv_data, key, klen) == 0
        && v.mv_size <= ZARR_SNAP_NAME_MAX)
    {
        memcpy(name, v.mv_data, v.mv_size);
        name[v.mv_size] = '\0';
        rc = ZARR_OK;

    } else if (mrc == 0 || mrc == MDB_NOTFOUND) {
        rc = zarr_tree_err(err, ZARR_ERR_NOTFOUND, "not held");

    } else {
        rc = zarr_tree_mdb_err(s, err, mrc, "reading held versions");
    }

    mdb_cursor_close(cur);
    mdb_txn_abort(txn);

    return rc;
}


/* listing a snapshot as S3 lists a bucket */

typedef struct {
    const zarr_snap_listing_t  *q;
    size_t                      rel_len;      /* prefix beyond base */
    uint64_t                    max;
    uint64_t                    n;
    int                         truncated;
    zarr_buf_t                 *contents;
    zarr_buf_t                 *prefixes;
    zarr_buf_t                  last;         /* the last key or prefix */
    int                         nomem;
} zarr_snap_lister_t;


static void
zarr_snap_xml_key(zarr_buf_t *b, const zarr_snap_listing_t *q,
    const char *s1, size_t n1, const char *s2, size_t n2)
{
    char    *p;
    size_t   n;

    if (!q->url) {
        if (zarr_s3xml_escape(b, s1, n1) != 0
            || zarr_s3xml_escape(b, s2, n2) != 0)
        {
            b->failed = 1;
        }

        return;
    }

    /* unreserved bytes and '/' as they are, the rest as %XX */

    n = zarr_sigv4_uri_encode(NULL, s1, n1, 1)
        + zarr_sigv4_uri_encode(NULL, s2, n2, 1);

    if (zarr_buf_reserve(b, n + 1) != 0) {
        b->failed = 1;
        return;
    }

    p = b->data + b->len;
    p += zarr_sigv4_uri_encode(p, s1, n1, 1);
    p += zarr_sigv4_uri_encode(p, s2, n2, 1);
    b->len = p - b->data;
    b->data[b->len] = '\0';
}


static void
zarr_snap_xml_elt(zarr_buf_t *b, const zarr_snap_listing_t *q,
    const char *name, const char *s, size_t n, int key)
{
    zarr_buf_puts(b, "<");
    zarr_buf_puts(b, name);
    zarr_buf_puts(b, ">");

    if (key) {
        zarr_snap_xml_key(b, q, s, n, NULL, 0);

    } else if (zarr_s3xml_escape(b, s, n) != 0) {
        b->failed = 1;
    }

    zarr_buf_puts(b, "</");
    zarr_buf_puts(b, name);
    zarr_buf_puts(b, ">");
}


static int
zarr_snap_list_cb(void *ctx, const char *path, size_t path_len,
    const zarr_snap_file_t *f, size_t *skip)
{
    zarr_snap_lister_t *l = ctx;

    char                       date[32];
    size_t                     i, cp;
    struct tm                  tm;
    time_t                     t;
    const zarr_snap_listing_t *q;

    q = l->q;
    cp = 0;

    if (q->delimiter_len) {
        for (i = l->rel_len; i + q->delimiter_len <= path_len; i++) {
            if (memcmp(path + i, q->delimiter, q->delimiter_len) == 0) {
                cp = i + q->delimiter_len;
                break;
            }
        }
    }

    if (cp) {
        /* a common prefix the previous page ended with: not again */
        *skip = cp;

        if (q->after && q->after_len >= q->base_len + cp
            && memcmp(q->after + q->base_len, path, cp) == 0)
        {
            return ZARR_SNAP_SKIP;
        }
    }

    if (l->n == l->max) {
        l->truncated = 1;
        return ZARR_SNAP_STOP;
    }

    l->n++;
    l->last.len = 0;

    if (zarr_buf_add(&l->last, q->base, q->base_len) != 0
        || zarr_buf_add(&l->last, path, cp ? cp : path_len) != 0)
    {
        l->nomem = 1;
        return ZARR_SNAP_STOP;
    }

    if (cp) {
        zarr_buf_puts(l->prefixes, "<CommonPrefixes><Prefix>");
        zarr_snap_xml_key(l->prefixes, q, q->base, q->base_len, path, cp);
        zarr_buf_puts(l->prefixes, "</Prefix></CommonPrefixes>");

        return ZARR_SNAP_SKIP;
    }

    t = (time_t) q->created;
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S.000Z", &tm);

    zarr_buf_puts(l->contents, "<Contents><Key>");
    zarr_snap_xml_key(l->contents, q, q->base, q->base_len, path, path_len);
    zarr_buf_puts(l->contents, "</Key><LastModified>");
    zarr_buf_puts(l->contents, date);
    zarr_buf_puts(l->contents, "</LastModified><ETag>&quot;");
    if (zarr_s3xml_escape(l->contents, f->etag, f->etag_len) != 0) {
        l->contents->failed = 1;
    }

    zarr_buf_puts(l->contents, "&quot;</ETag><Size>");
    snprintf(date, sizeof(date), "%" PRIu64, f->size);
    zarr_buf_puts(l->contents, date);
    zarr_buf_puts(l->contents, "</Size><StorageClass>STANDARD"
                  "</StorageClass></Contents>");

    return 0;
}


int
zarr_snap_list_xml(zarr_store_t *s, uint64_t id,
    const zarr_snap_listing_t *q, zarr_buf_t *out, zarr_err_t *err)
{
    int                  rc, empty;
    char                 num[32];
    size_t               after_len;
    zarr_buf_t           contents, prefixes;
    const char          *after;
    zarr_snap_lister_t   l;

    memset(&l, 0, sizeof(zarr_snap_lister_t));
    zarr_buf_init(&contents);
    zarr_buf_init(&prefixes);
    zarr_buf_init(&l.last);

    l.q = q;
    l.max = q->max_keys < 1000 ? q->max_keys : 1000;
    l.contents = &contents;
    l.prefixes = &prefixes;

    rc = ZARR_OK;

    /* the keys of the snapshot that the prefix and "after" leave */

    empty = q->prefix_len < q->base_len
            || memcmp(q->prefix, q->base, q->base_len) != 0;

    after = NULL;
    after_len = 0;

    if (!empty && q->after && q->after_len) {
        if (q->after_len >= q->base_len
            && memcmp(q->after, q->base, q->base_len) == 0)
        {
            after = q->after + q->base_len;
            after_len = q->after_len - q->base_len;

        } else if (zarr_name_cmp(q->after, q->after_len, q->base,
                                 q->base_len) > 0)
        {
            empty = 1;
        }
    }

    if (!empty && l.max) {
        l.rel_len = q->prefix_len - q->base_len;

        rc = zarr_snap_scan(s, id, q->prefix + q->base_len, l.rel_len,
                            after, after_len, zarr_snap_list_cb, &l, err);
    }

    if (rc == ZARR_OK && l.nomem) {
        rc = zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    if (rc != ZARR_OK) {
        goto done;
    }

    zarr_buf_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<ListBucketResult xmlns=\"" ZARR_S3XML_NS "\">");
    zarr_snap_xml_elt(out, q, "Name", q->bucket, q->bucket_len, 0);
    zarr_snap_xml_elt(out, q, "Prefix", q->prefix, q->prefix_len, 1);

    if (q->v2) {
        if (q->start_after) {
            zarr_snap_xml_elt(out, q, "StartAfter", q->start_after,
                              q->start_after_len, 1);
        }

        if (q->token) {
            zarr_snap_xml_elt(out, q, "ContinuationToken", q->token,
                              q->token_len, 0);
        }

        snprintf(num, sizeof(num), "%" PRIu64, l.n);
        zarr_buf_puts(out, "<KeyCount>");
        zarr_buf_puts(out, num);
        zarr_buf_puts(out, "</KeyCount>");

        if (l.truncated) {
            zarr_buf_puts(out, "<NextContinuationToken>");
            zarr_snap_token_encode(out, l.last.data, l.last.len);
            zarr_buf_puts(out, "</NextContinuationToken>");
        }

    } else {
        zarr_snap_xml_elt(out, q, "Marker", q->marker ? q->marker : "",
                          q->marker_len, 1);

        if (l.truncated) {
            zarr_snap_xml_elt(out, q, "NextMarker", l.last.data, l.last.len,
                              1);
        }
    }

    snprintf(num, sizeof(num), "%" PRIu64, q->max_keys);
    zarr_buf_puts(out, "<MaxKeys>");
    zarr_buf_puts(out, num);
    zarr_buf_puts(out, "</MaxKeys>");

    if (q->delimiter) {
        zarr_snap_xml_elt(out, q, "Delimiter", q->delimiter,
                          q->delimiter_len, 1);
    }

    if (q->url) {
        zarr_buf_puts(out, "<EncodingType>url</EncodingType>");
    }

    zarr_buf_puts(out, l.truncated ? "<IsTruncated>true</IsTruncated>"
                                   : "<IsTruncated>false</IsTruncated>");

    if (contents.len) {
        zarr_buf_put(out, contents.data, contents.len);
    }

    if (prefixes.len) {
        zarr_buf_put(out, prefixes.data, prefixes.len);
    }

    zarr_buf_puts(out, "</ListBucketResult>");

    if (out->failed || contents.failed || prefixes.failed) {
        rc = zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

done:

    zarr_buf_free(&contents);
    zarr_buf_free(&prefixes);
    zarr_buf_free(&l.last);

    return rc;
}


void
zarr_snap_token_encode(zarr_buf_t *b, const char *key, size_t len)
{
    char                 hex[2];
    size_t               i;
    static const char    digits[] = "0123456789abcdef";

    for (i = 0; i < len; i++) {
        hex[0] = digits[(unsigned char) key[i] >> 4];
        hex[1] = digits[(unsigned char) key[i] & 0xf];
        zarr_buf_put(b, hex, 2);
    }
}


int
zarr_snap_token_decode(const char *token, size_t len, char *out)
{
    int     hi, lo;
    size_t  i;

    if (len % 2 || len == 0) {
        return -1;
    }

    for (i = 0; i < len; i += 2) {
        hi = zarr_snap_hex(token[i]);
        lo = zarr_snap_hex(token[i + 1]);

        if (hi < 0 || lo < 0) {
            return -1;
        }

        out[i / 2] = (char) (hi << 4 | lo);
    }

    return (int) (len / 2);
}


static int
zarr_snap_hex(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/* the manifest */

typedef struct {
    zarr_buf_t          buf;
    zarr_buf_t          last;          /* the last path written */
    const char         *url;           /* "s3://b/<prefix><id>/" */
    size_t              url_len;
    size_t              piece;
    size_t              files;         /* in this read transaction */
    uint64_t            total;
    zarr_snap_out_cb    out;
    void               *ctx;
    int                 stopped;
    int                 nomem;
} zarr_snap_man_t;


static int
zarr_snap_man_flush(zarr_snap_man_t *m, int last)
{
    if (m->buf.failed) {
        m->nomem = 1;
        return -1;
    }

    if (m->out(m->ctx, m->buf.data ? m->buf.data : "", m->buf.len, last)
        != 0)
    {
        m->stopped = 1;
        return -1;
    }

    zarr_buf_reset(&m->buf);

    return 0;
}


static int
zarr_snap_man_file(void *ctx, const char *path, size_t path_len,
    const zarr_snap_file_t *f, size_t *skip)
{
    zarr_snap_man_t *m = ctx;

    zarr_buf_t  *b;

    (void) skip;

    if (m->files == ZARR_SNAP_CHUNK) {
        /* a new read transaction from here on */
        return ZARR_SNAP_STOP;
    }

    b = &m->buf;

    if (m->total++) {
        zarr_buf_put(b, ",", 1);
    }

    if (b->failed || zarr_json_add_string(b, path, path_len) != 0) {
        m->nomem = 1;
        return ZARR_SNAP_STOP;
    }

    zarr_buf_put(b, ":[", 2);

    /* the URL, raw as fsspec splits it: bucket, key, ?versionId= */

    m->last.len = 0;

    if (zarr_buf_add(&m->last, m->url, m->url_len) != 0
        || zarr_buf_add(&m->last, path, path_len) != 0
        || zarr_buf_add(&m->last, "?versionId=", 11) != 0
        || zarr_buf_add(&m->last, f->version, f->version_len) != 0
        || zarr_json_add_string(b, m->last.data, m->last.len) != 0)
    {
        m->nomem = 1;
        return ZARR_SNAP_STOP;
    }

    zarr_buf_put(b, "]", 1);

    /* where the next read transaction starts: after this path */
    m->last.len = 0;

    if (zarr_buf_add(&m->last, path, path_len) != 0) {
        m->nomem = 1;
        return ZARR_SNAP_STOP;
    }

    m->files++;

    if (b->len >= m->piece && zarr_snap_man_flush(m, 0) != 0) {
        return ZARR_SNAP_STOP;
    }

    return 0;
}


int
zarr_snap_manifest(zarr_store_t *s, const zarr_snap_t *snap,
    const char *bucket, size_t bucket_len, const char *zarr_prefix,
    size_t zarr_prefix_len, const char *zarr_id, size_t zarr_id_len,
    size_t piece, zarr_snap_out_cb out, void *ctx, zarr_err_t *err)
{
    int               rc;
    char              num[64];
    char             *after;
    size_t            after_len;
    zarr_buf_t        url;
    zarr_snap_man_t   m;

    memset(&m, 0, sizeof(zarr_snap_man_t));
    zarr_buf_init(&m.buf);
    zarr_buf_init(&m.last);
    zarr_buf_init(&url);

    zarr_buf_put(&url, "s3://", 5);
    zarr_buf_put(&url, bucket, bucket_len);
    zarr_buf_put(&url, "/", 1);
    zarr_buf_put(&url, zarr_prefix, zarr_prefix_len);
    zarr_buf_put(&url, zarr_id, zarr_id_len);
    zarr_buf_put(&url, "/", 1);

    m.url = url.data;
    m.url_len = url.len;
    m.piece = piece ? piece : 1;
    m.out = out;
    m.ctx = ctx;

    zarr_buf_puts(&m.buf, "{\"version\":1,\"digest\":\"");
    zarr_buf_puts(&m.buf, snap->sum.digest);
    snprintf(num, sizeof(num), "\",\"file_count\":%" PRIu64
             ",\"size\":%" PRIu64 ",\"refs\":{", snap->sum.count,
             snap->sum.size);
    zarr_buf_puts(&m.buf, num);

    rc = ZARR_OK;
    after = NULL;
    after_len = 0;

    if (url.failed) {
        m.nomem = 1;
    }

    while (!m.nomem && !m.stopped) {
        m.files = 0;

        rc = zarr_snap_scan(s, snap->id, "", 0, after, after_len,
                            zarr_snap_man_file, &m, err);

        if (rc != ZARR_OK || m.files < ZARR_SNAP_CHUNK) {
            break;
        }

        /* the scan stopped at a chunk's end: go on after the last path */

        free(after);
        after_len = m.last.len;
        after = malloc(after_len + 1);

        if (after == NULL) {
            m.nomem = 1;
            break;
        }

        memcpy(after, m.last.data, after_len);
    }

    free(after);

    if (rc == ZARR_OK && !m.nomem && !m.stopped) {
        zarr_buf_puts(&m.buf, "}}");
        (void) zarr_snap_man_flush(&m, 1);
    }

    if (rc == ZARR_OK && m.nomem) {
        rc = zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");

    } else if (rc == ZARR_OK && m.stopped) {
        rc = zarr_tree_err(err, ZARR_ERR_INVALID, "manifest stopped");
    }

    zarr_buf_free(&m.buf);
    zarr_buf_free(&m.last);
    zarr_buf_free(&url);

    return rc;
}
