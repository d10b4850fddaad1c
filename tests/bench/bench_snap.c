
/*
 * Benchmark: snapshots of the benchmark zarr (bench_layout.h) in the
 * store (docs/PERFORMANCE.md, issue 10): the time to take one (bounded
 * write transactions, fsync on), the LMDB space it takes, the time to
 * generate its manifest (to nowhere: no network), to list it in pages of
 * 1,000 keys (zarr_snap_list_xml, as the gateway answers ListObjectsV2)
 * and to delete it.
 *
 * usage: bench_snap STORE_DIR [FILES]     (FILES: 1,000,000)
 * The store directory must not exist: it is created, filled without
 * fsync, then reopened with fsync for the measured steps.
 *
 *        bench_snap STORE_DIR FILES BUCKET ZARR_ID
 * only fills: the zarr BUCKET/ZARR_ID of a gateway's store (not running)
 * gets the benchmark zarr, then the program prints its digest and stops
 * (tests/bench/snap_ratio.py MODES=create times the API's snapshot call
 * on it).
 */


#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zarr_tree.h"
#include "zarr_snap.h"
#include "bench_layout.h"


static const char  *B = "bench";
static const char  *Z = "z";
static size_t       B_LEN = 5;
static size_t       Z_LEN = 1;


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static int
count_out(void *ctx, const char *buf, size_t len, int last)
{
    (void) buf;
    (void) last;

    *(uint64_t *) ctx += len;

    return 0;
}


static void
die(const char *what, zarr_err_t *err)
{
    fprintf(stderr, "bench_snap: %s: %s\n", what, err->msg);
    exit(1);
}


int
main(int argc, char **argv)
{
    char                 path[256], etag[40], version[40];
    size_t               i, n, group, bad;
    double               t0, t;
    uint64_t             files, size, bytes, pages, keys;
    zarr_buf_t           xml;
    zarr_err_t           err;
    zarr_snap_t          snap;
    zarr_store_t        *s;
    zarr_mutation_t     *m;
    zarr_dir_sum_t       sum;
    zarr_store_stat_t    st0, st1, st2;
    zarr_snap_listing_t  q;
    char                *paths, *etags, *versions;

    if (argc < 2) {
        fprintf(stderr, "usage: bench_snap STORE_DIR [FILES]\n");
        return 2;
    }

    files = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;

    if (argc > 4) {
        B = argv[3];
        B_LEN = strlen(B);
        Z = argv[4];
        Z_LEN = strlen(Z);
    }
    group = 10000;

    if (zarr_store_open(&s, argv[1], 8ULL << 30, ZARR_STORE_NOSYNC, &err)
        != ZARR_OK)
    {
        die("open", &err);
    }

    m = calloc(group, sizeof(zarr_mutation_t));
    paths = malloc(group * 256);
    etags = malloc(group * 40);
    versions = malloc(group * 40);

    t0 = now();

    for (i = 0; i < files; i += n) {
        for (n = 0; n < group && i + n < files; n++) {
            bench_file(i + n, files, path, sizeof(path), etag, &size);

            /* RGW's version ids are 32 characters */
            snprintf(version, sizeof(version), "%032" PRIx64,
                     (uint64_t) ((i + n) * 2654435761ULL));

            strcpy(paths + n * 256, path);
            strcpy(etags + n * 40, etag);
            strcpy(versions + n * 40, version);

            memset(&m[n], 0, sizeof(zarr_mutation_t));
            m[n].op = ZARR_MUT_PUT;
            m[n].bucket = B;
            m[n].bucket_len = B_LEN;
            m[n].zarr_id = Z;
            m[n].zarr_id_len = Z_LEN;
            m[n].path = paths + n * 256;
            m[n].path_len = strlen(path);
            m[n].etag = etags + n * 40;
            m[n].etag_len = 32;
            m[n].size = size;
            m[n].version_id = versions + n * 40;
            m[n].version_id_len = 32;
        }

        if (zarr_store_apply(s, m, n, &bad, &err) != ZARR_OK) {
            die("apply", &err);
        }
    }

    if (zarr_store_sync_zarr(s, B, B_LEN, Z, Z_LEN, &sum,
                             &err) != ZARR_OK)
    {
        die("flush", &err);
    }

    printf("files            %" PRIu64 "\n", files);
    printf("fill (no fsync)  %.2f s\n", now() - t0);
    printf("digest           %s\n", sum.digest);

    zarr_store_close(s);

    if (argc > 4) {
        return 0;
    }

    if (zarr_store_open(&s, argv[1], 8ULL << 30, 0, &err) != ZARR_OK) {
        die("reopen", &err);
    }

    if (zarr_store_stat(s, &st0, &err) != ZARR_OK) {
        die("stat", &err);
    }

    t0 = now();

    if (zarr_snap_create(s, B, B_LEN, Z, Z_LEN, "v1", 2,
                         (uint64_t) time(NULL), 0, &snap, &err) != ZARR_OK)
    {
        die("create", &err);
    }

    t = now() - t0;

    if (strcmp(snap.sum.digest, sum.digest) != 0) {
        fprintf(stderr, "bench_snap: digest %s != %s\n", snap.sum.digest,
                sum.digest);
        return 1;
    }

    if (zarr_store_stat(s, &st1, &err) != ZARR_OK) {
        die("stat", &err);
    }

    printf("create           %.2f s (%" PRIu64 " records, chunks of %d)\n",
           t, st1.snap_entries, ZARR_SNAP_CHUNK);
    printf("store used       %.1f MB before, %.1f MB after: +%.1f MB "
           "(%.0f bytes per file)\n", st0.used / 1e6, st1.used / 1e6,
           (st1.used - st0.used) / 1e6,
           (double) (st1.used - st0.used) / files);

    bytes = 0;
    t0 = now();

    if (zarr_snap_manifest(s, &snap, B, B_LEN, "zarr/", 5, Z,
                           Z_LEN, 1 << 20, count_out, &bytes, &err)
        != ZARR_OK)
    {
        die("manifest", &err);
    }

    printf("manifest         %.2f s, %.1f MB (generation only)\n",
           now() - t0, bytes / 1e6);

    /* every page of 1,000, as a client pages through ListObjectsV2 */

    memset(&q, 0, sizeof(q));
    q.bucket = B;
    q.bucket_len = B_LEN;
    q.base = "zarr-snapshots/z/v1/";
    q.base_len = strlen(q.base);
    q.prefix = q.base;
    q.prefix_len = q.base_len;
    q.max_keys = 1000;
    q.v2 = 1;
    q.url = 1;

    zarr_buf_init(&xml);
    pages = 0;
    keys = 0;
    t0 = now();

    for ( ;; ) {
        char  *p, *e, *tok;
        char   after[512];
        int    len;

        zarr_buf_reset(&xml);

        if (zarr_snap_list_xml(s, snap.id, &q, &xml, &err) != ZARR_OK) {
            die("list", &err);
        }

        pages++;

        for (p = xml.data; (p = strstr(p, "<Key>")) != NULL; p += 5) {
            keys++;
        }

        tok = strstr(xml.data, "<NextContinuationToken>");
        if (tok == NULL) {
            break;
        }

        tok += sizeof("<NextContinuationToken>") - 1;
        e = strchr(tok, '<');
        len = zarr_snap_token_decode(tok, e - tok, after);

        if (len <= 0) {
            fprintf(stderr, "bench_snap: bad token\n");
            return 1;
        }

        q.after = after;
        q.after_len = len;
    }

    t = now() - t0;

    printf("list             %" PRIu64 " pages, %" PRIu64 " keys, %.2f s: "
           "%.2f ms per page of 1,000\n", pages, keys, t,
           t * 1000 / pages);

    zarr_buf_free(&xml);

    if (keys != files) {
        fprintf(stderr, "bench_snap: listed %" PRIu64 " keys\n", keys);
        return 1;
    }

    t0 = now();

    if (zarr_snap_delete(s, B, B_LEN, Z, Z_LEN, "v1", 2, 0,
                         &err) != ZARR_OK)
    {
        die("delete", &err);
    }

    if (zarr_store_stat(s, &st2, &err) != ZARR_OK) {
        die("stat", &err);
    }

    printf("delete           %.2f s (%" PRIu64 " records left)\n",
           now() - t0, st2.snap_entries);

    zarr_store_close(s);
    free(m);
    free(paths);
    free(etags);
    free(versions);

    return 0;
}
