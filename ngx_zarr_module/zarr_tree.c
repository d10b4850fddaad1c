
/*
 * The checksum tree store on LMDB: opening, transactions, keys and
 * records.  See zarr_tree.h for the layout; reading the tree is in
 * zarr_tree_read.c, changing it in zarr_tree_apply.c.
 */


#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "zarr_tree_int.h"


#define ZARR_SCHEMA_VERSION  "1"

/*
 * Pages of the map read by this process count in its RSS although they
 * are page cache.  Every this many entries visited (a mutation counts
 * several), the process's resident file-backed and shared pages are
 * looked at, and when they exceed s->trim_bytes (ZARR_TRIM_BYTES) the
 * map's pages are dropped from the process (not from the cache), so that
 * memory stays flat whatever the size of the tree.  A count of entries
 * alone did not bound it: under steady writes copy-on-write moves the
 * pages a mutation touches through the whole file, and a fault maps a
 * whole folio of the page cache, so that the 65,536 entries between two
 * drops mapped from 20 MB to 100 MB of data.mdb, more as the file grew.
 * Looking costs a read of /proc/self/statm (microseconds); the shorter
 * the interval, the less a process maps above the bound before it drops
 * them (with 8,192 entries, up to ~30 MB more at 1,000,000 files), for
 * about as many drops.
 */
#define ZARR_TRIM_ENTRIES    2048
#define ZARR_TRIM_BYTES      (32 << 20)


static void zarr_store_find_map(zarr_store_t *s);
static size_t zarr_tree_mapped(void);
static void zarr_store_flush_file(zarr_store_t *s, const char *dir);
static int zarr_store_gate_open(zarr_store_t *s, const char *dir,
    zarr_err_t *err);


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


/* flush.lock beside data.mdb, created when missing; none if it cannot be */

static void
zarr_store_flush_file(zarr_store_t *s, const char *dir)
{
    int  fd;

    s->flush_path = malloc(strlen(dir) + sizeof("/flush.lock"));

    if (s->flush_path == NULL) {
        return;
    }

    strcpy(s->flush_path, dir);
    strcat(s->flush_path, "/flush.lock");

    fd = open(s->flush_path, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);

    if (fd == -1) {
        free(s->flush_path);
        s->flush_path = NULL;
        return;
    }

    close(fd);
}


int
zarr_tree_flush_lock(zarr_store_t *s)
{
    int  fd;

    if (s->flush_path == NULL) {
        return -1;
    }

    /* a descriptor of its own: flock() excludes the threads of a process */

    fd = open(s->flush_path, O_RDONLY | O_CLOEXEC);

    if (fd == -1) {
        return -1;
    }

    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            close(fd);
            return -1;
        }
    }

    return fd;
}


void
zarr_tree_flush_unlock(int fd)
{
    if (fd != -1) {
        close(fd);
    }
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

    if (s->map_addr && zarr_tree_mapped() > s->trim_bytes) {
        (void) madvise(s->map_addr, s->map_len, MADV_DONTNEED);
    }
}


/*
 * The process's resident file-backed and shared pages in bytes (the
 * third field of /proc/self/statm: the map's pages, the binary and its
 * libraries, shared memory zones); when unknown, as many as to drop the
 * map's.  Opened each time: /proc/self is the process that opens it.
 */

static size_t
zarr_tree_mapped(void)
{
    int            fd;
    char           buf[256];
    ssize_t        n;
    unsigned long  size, resident, shared;

    fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return SIZE_MAX;
    }

    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);

    if (n <= 0) {
        return SIZE_MAX;
    }

    buf[n] = '\0';

    if (sscanf(buf, "%lu %lu %lu", &size, &resident, &shared) != 3) {
        return SIZE_MAX;
    }

    return (size_t) shared * (size_t) sysconf(_SC_PAGESIZE);
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
    s->calc_renew = ZARR_CALC_RENEW;
    s->trim_bytes = ZARR_TRIM_BYTES;

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

    mdb_env_set_maxdbs(s->env, 10);
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

        if (!(flags & ZARR_STORE_RDONLY)) {
            zarr_store_flush_file(s, path);
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
        || (mrc = mdb_dbi_open(txn, "opened", dflags, &s->batches)) != 0
        || (mrc = mdb_dbi_open(txn, "intents", dflags, &s->intents)) != 0
        || (mrc = mdb_dbi_open(txn, "outbox", dflags, &s->outbox)) != 0
        || (mrc = mdb_dbi_open(txn, "zmeta", dflags, &s->zmeta)) != 0
        || (mrc = mdb_dbi_open(txn, "recover", dflags, &s->recover)) != 0)
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

    if (!(flags & (ZARR_STORE_RDONLY|ZARR_STORE_NOGATE))) {
        rc = zarr_store_gate_open(s, dir, err);
        if (rc != ZARR_OK) {
            goto failed;
        }
    }

    *sp = s;

    return ZARR_OK;

failed:

    if (s->genv) {
        mdb_env_close(s->genv);
    }

    if (s->env) {
        mdb_env_close(s->env);
    }

    free(s->data_path);
    free(s);

    return rc;
}


/*
 * The gate's environment, DIR/gate: no fsync ever (MDB_NOSYNC); what it
 * holds survives the death of any process (the page cache keeps it), not
 * a crash of the system, which zarr_recover_startup() detects.
 */

static int
zarr_store_gate_open(zarr_store_t *s, const char *dir, zarr_err_t *err)
{
    int       mrc;
    char     *path;
    MDB_txn  *txn;

    path = malloc(strlen(dir) + sizeof("/" ZARR_GATE_DIR));
    if (path == NULL) {
        return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    strcpy(path, dir);
    strcat(path, "/" ZARR_GATE_DIR);

    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        mrc = errno;
        free(path);
        return zarr_tree_err(err, ZARR_ERR_STORE, "mkdir(\"%s/%s\") failed: "
                             "%s", dir, ZARR_GATE_DIR, strerror(mrc));
    }

    mrc = mdb_env_create(&s->genv);

    if (mrc == 0) {
        mdb_env_set_maxdbs(s->genv, 4);
        mdb_env_set_maxreaders(s->genv, 512);
        mrc = mdb_env_set_mapsize(s->genv, ZARR_GATE_MAP_SIZE);
    }

    if (mrc == 0) {
        mrc = mdb_env_open(s->genv, path,
                           MDB_NOTLS|MDB_NOSYNC|MDB_WRITEMAP, 0644);
    }

    free(path);

    if (mrc != 0) {
        return zarr_tree_err(err, ZARR_ERR_STORE, "cannot open the gate's "
                             "store \"%s/%s\": %s", dir, ZARR_GATE_DIR,
                             mdb_strerror(mrc));
    }

    mrc = mdb_txn_begin(s->genv, NULL, 0, &txn);
    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "mdb_txn_begin()");
    }

    if ((mrc = mdb_dbi_open(txn, "batches", MDB_CREATE, &s->gbatches)) != 0
        || (mrc = mdb_dbi_open(txn, "intents", MDB_CREATE, &s->gintents))
           != 0
        || (mrc = mdb_dbi_open(txn, "keys", MDB_CREATE, &s->gkeys)) != 0
        || (mrc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->gmeta)) != 0)
    {
        mdb_txn_abort(txn);
        return zarr_tree_mdb_err(s, err, mrc, "mdb_dbi_open()");
    }

    mrc = mdb_txn_commit(txn);
    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "mdb_txn_commit()");
    }

    return ZARR_OK;
}


void
zarr_store_close(zarr_store_t *s)
{
    if (s) {
        if (s->genv) {
            mdb_env_close(s->genv);
        }

        mdb_env_close(s->env);
        free(s->data_path);
        free(s->flush_path);
        free(s);
    }
}


void
zarr_store_set_flush_renew(zarr_store_t *s, uint64_t entries)
{
    s->calc_renew = entries ? entries : 1;
}


void
zarr_store_set_trim(zarr_store_t *s, size_t bytes)
{
    s->trim_bytes = bytes;
}


int
zarr_store_reader_check(zarr_store_t *s)
{
    int  dead, gdead;

    dead = 0;
    gdead = 0;

    if (mdb_reader_check(s->env, &dead) != 0) {
        return -1;
    }

    if (s->genv && mdb_reader_check(s->genv, &gdead) != 0) {
        return -1;
    }

    return dead + gdead;
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


void
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


size_t
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


void
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


void
zarr_dirrec_sum(const zarr_dirrec_t *d, zarr_dir_sum_t *sum)
{
    memcpy(sum->digest, d->digest, d->digest_len);
    sum->digest[d->digest_len] = '\0';
    sum->count = d->count;
    sum->size = d->size;
}


/* one item of a flush's list: key length (2), key, record */

int
zarr_kept_add(zarr_buf_t *kept, const char *key, size_t key_len,
    const zarr_dirrec_t *d)
{
    uint16_t  len;

    len = (uint16_t) key_len;

    if (zarr_buf_add(kept, &len, sizeof(uint16_t)) != 0
        || zarr_buf_add(kept, key, key_len) != 0
        || zarr_buf_add(kept, d, sizeof(zarr_dirrec_t)) != 0)
    {
        return ZARR_ERR_NOMEM;
    }

    return ZARR_OK;
}


/* the current flush epoch (meta "epoch"; 0 before the first flush) */

int
zarr_tree_epoch(zarr_store_t *s, MDB_txn *txn, uint32_t *epoch,
    zarr_err_t *err)
{
    int      mrc;
    MDB_val  k, v;

    k.mv_data = "epoch";
    k.mv_size = 5;

    mrc = mdb_get(txn, s->meta, &k, &v);

    if (mrc == MDB_NOTFOUND) {
        *epoch = 0;
        return ZARR_OK;
    }

    if (mrc != 0 || v.mv_size != sizeof(uint32_t)) {
        return zarr_tree_mdb_err(s, err, mrc ? mrc : MDB_CORRUPTED,
                                 "reading the flush epoch");
    }

    memcpy(epoch, v.mv_data, sizeof(uint32_t));

    return ZARR_OK;
}


int
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
