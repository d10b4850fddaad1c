
/*
 * What the digest of a zarr costs when every directory is dirty, as
 * right after a write burst that touched them all (make bench-ingest):
 *
 *   recompute_floor STORE_DIR BUCKET ZARR_ID [RUNS]
 *
 * STORE_DIR must be a copy (it is changed): e.g. the store that
 * KEEP_BENCH_DIR=1 make bench-ingest keeps, data.mdb copied alone into an
 * empty directory while no gateway has it open.  Every directory record
 * of the store is marked dirty, then each run times:
 *
 *   get_zarr  zarr_store_get_zarr(): the recomputation the API's info
 *             does (a read: the directories stay dirty), one thread;
 *   walk      the cursor walk over the zarr's entries alone;
 *   md5       MD5 alone of as many bytes as the manifests hold (their
 *             size counted in the walk, names taken as needing no
 *             escapes).
 *
 * usage: make build/bench/recompute_floor
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zarr_hash.h"
#include "zarr_path.h"
#include "../../ngx_zarr_module/zarr_tree_int.h"


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


/* every directory record (and zarr root) dirty; returns how many */

static long
mark_dirty(zarr_store_t *s)
{
    int             mrc, i;
    long            n;
    MDB_txn        *txn;
    MDB_dbi         dbi;
    MDB_cursor     *cur;
    MDB_val         k, v;
    zarr_err_t      err;
    zarr_dirrec_t   d;

    if (zarr_tree_txn_begin(s, 0, &txn, &err) != ZARR_OK) {
        fprintf(stderr, "recompute_floor: %s\n", err.msg);
        return -1;
    }

    n = 0;

    for (i = 0; i < 2; i++) {
        dbi = i ? s->zarrs : s->entries;

        if (mdb_cursor_open(txn, dbi, &cur) != 0) {
            mdb_txn_abort(txn);
            return -1;
        }

        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
             mrc == 0;
             mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        {
            if (!i && (k.mv_size <= ZARR_ID_LEN
                       || ((char *) k.mv_data)[ZARR_ID_LEN] != ZARR_TYPE_DIR))
            {
                continue;
            }

            if (zarr_dirrec_get(&v, &d) != ZARR_OK) {
                continue;
            }

            d.flags |= ZARR_DIR_DIRTY;
            v.mv_data = &d;
            v.mv_size = sizeof(zarr_dirrec_t);

            if (mdb_cursor_put(cur, &k, &v, MDB_CURRENT) != 0) {
                mdb_cursor_close(cur);
                mdb_txn_abort(txn);
                return -1;
            }

            n += !i;
        }

        mdb_cursor_close(cur);
    }

    if (mdb_txn_commit(txn) != 0) {
        return -1;
    }

    return n;
}


/* the entries of the zarr: its root's and its subdirectories' */

static int
walk(zarr_store_t *s, const char *bucket, const char *zarr_id,
    uint64_t *entries, size_t *bytes)
{
    int             mrc;
    char            key[ZARR_KEY_MAX], num[24];
    uint16_t        elen;
    uint64_t        fsize;
    size_t          klen, n, i, cap;
    uint64_t       *ids, *p;
    MDB_txn        *txn;
    MDB_cursor     *cur;
    MDB_val         k, v;
    zarr_err_t      err;
    zarr_dirrec_t   root, d;

    if (zarr_tree_txn_begin(s, 1, &txn, &err) != ZARR_OK
        || zarr_get_root(s, txn, bucket, strlen(bucket), zarr_id,
                         strlen(zarr_id), &root, &err) != ZARR_OK
        || mdb_cursor_open(txn, s->entries, &cur) != 0)
    {
        fprintf(stderr, "recompute_floor: %s\n", err.msg);
        return -1;
    }

    cap = 1024;
    ids = malloc(cap * sizeof(uint64_t));
    if (ids == NULL) {
        return -1;
    }

    ids[0] = root.id;
    n = 1;
    *entries = 0;
    *bytes = 0;

    for (i = 0; i < n; i++) {
        klen = zarr_entry_key(key, ids[i], ZARR_TYPE_DIR, NULL, 0);
        k.mv_data = key;
        k.mv_size = klen;

        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
             mrc == 0;
             mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        {
            if (k.mv_size <= ZARR_ID_LEN
                || memcmp(k.mv_data, key, ZARR_ID_LEN) != 0)
            {
                break;
            }

            (*entries)++;

            /* {"digest":"D","name":"N","size":S}, */

            *bytes += 11 + 10 + (k.mv_size - ZARR_ID_LEN - 1) + 9 + 1 + 1;

            if (((char *) k.mv_data)[ZARR_ID_LEN] != ZARR_TYPE_DIR) {
                if (v.mv_size >= 10) {
                    memcpy(&fsize, v.mv_data, 8);
                    memcpy(&elen, (char *) v.mv_data + 8, 2);
                    *bytes += elen + snprintf(num, sizeof(num), "%llu",
                                              (unsigned long long) fsize);
                }

                continue;
            }

            if (zarr_dirrec_get(&v, &d) != ZARR_OK) {
                continue;
            }

            *bytes += d.digest_len + snprintf(num, sizeof(num), "%llu",
                                              (unsigned long long) d.size);

            if (n == cap) {
                cap *= 2;
                p = realloc(ids, cap * sizeof(uint64_t));
                if (p == NULL) {
                    free(ids);
                    return -1;
                }
                ids = p;
            }

            ids[n++] = d.id;
        }
    }

    free(ids);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);

    return 0;
}


int
main(int argc, char **argv)
{
    int              run, runs;
    long             dirs;
    char             hex[ZARR_MD5_HEX_LEN + 1];
    double           t0, t1, t2, t3;
    size_t           len, done, bytes;
    uint64_t         entries;
    zarr_err_t       err;
    zarr_hash_t     *h;
    zarr_store_t    *s;
    zarr_dir_sum_t   sum;
    static char      buf[65536];

    if (argc < 4) {
        fprintf(stderr, "usage: recompute_floor STORE_DIR BUCKET ZARR_ID "
                "[RUNS]\n");
        return 2;
    }

    runs = argc > 4 ? atoi(argv[4]) : 3;

    if (zarr_store_open(&s, argv[1], 0, ZARR_STORE_NOSYNC, &err) != ZARR_OK) {
        fprintf(stderr, "recompute_floor: %s\n", err.msg);
        return 1;
    }

    dirs = mark_dirty(s);
    if (dirs < 0) {
        fprintf(stderr, "recompute_floor: cannot mark the directories\n");
        return 1;
    }

    memset(buf, 'x', sizeof(buf));

    printf("%ld directories marked dirty\n", dirs);

    for (run = 0; run < runs; run++) {
        t0 = now();

        if (zarr_store_get_zarr(s, argv[2], strlen(argv[2]), argv[3],
                                strlen(argv[3]), &sum, &err)
            != ZARR_OK)
        {
            fprintf(stderr, "recompute_floor: %s\n", err.msg);
            return 1;
        }

        t1 = now();

        if (walk(s, argv[2], argv[3], &entries, &bytes) != 0) {
            return 1;
        }

        t2 = now();

        h = zarr_hash_create(ZARR_HASH_MD5);

        for (done = 0; done < bytes; done += len) {
            len = bytes - done < sizeof(buf) ? bytes - done : sizeof(buf);
            zarr_hash_update(h, buf, len);
        }

        zarr_hash_final_hex(h, hex);
        zarr_hash_destroy(h);

        t3 = now();

        printf("run %d: get_zarr %.3f s (%s), walk of %llu entries %.3f s, "
               "md5 of %zu bytes %.3f s\n", run + 1, t1 - t0, sum.digest,
               (unsigned long long) entries, t2 - t1, bytes, t3 - t2);
    }

    zarr_store_close(s);

    return 0;
}
