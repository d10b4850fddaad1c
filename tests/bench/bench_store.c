
/*
 * Benchmark 7a: a 1,000,000-file zarr applied through the store in groups
 * of 1,000 mutations (one commit and fsync each), then the final root
 * digest.  Prints files/s, seconds from the last commit to the digest,
 * store size and peak memory; checks the digest against the in-memory
 * tree of the same listing.
 *
 * usage: bench_store STORE_DIR [FILES] [GROUP]
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "zarr_mtree.h"
#include "zarr_tree.h"
#include "bench_layout.h"


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


/* VmHWM, RssAnon and RssFile from /proc/self/status, in kB */
static void
mem(long *hwm, long *anon, long *file)
{
    char   line[256];
    FILE  *f;

    *hwm = *anon = *file = -1;

    f = fopen("/proc/self/status", "r");
    if (f == NULL) {
        return;
    }

    while (fgets(line, sizeof(line), f)) {
        sscanf(line, "VmHWM: %ld", hwm);
        sscanf(line, "RssAnon: %ld", anon);
        sscanf(line, "RssFile: %ld", file);
    }

    fclose(f);
}


int
main(int argc, char **argv)
{
    char               (*paths)[64], (*etags)[33];
    uint64_t           n, group, i, j, *sizes;
    double             t0, t1, t2, t3, t4;
    long               hwm, hwm_apply, anon, file, peak_anon;
    size_t             bad;
    zarr_store_t      *s;
    zarr_err_t         err;
    zarr_mutation_t   *m;
    zarr_dir_sum_t     sum, want;
    zarr_store_stat_t  st;
    zarr_mtree_t      *t;

    if (argc < 2) {
        fprintf(stderr, "usage: bench_store STORE_DIR [FILES] [GROUP]\n");
        return 2;
    }

    n = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
    group = argc > 3 ? strtoull(argv[3], NULL, 10) : 1000;

    if (zarr_store_open(&s, argv[1], 4ULL << 30, 0, &err) != ZARR_OK) {
        fprintf(stderr, "open: %s\n", err.msg);
        return 1;
    }

    m = calloc(group, sizeof(zarr_mutation_t));
    paths = calloc(group, 64);
    etags = calloc(group, 33);
    sizes = calloc(group, sizeof(uint64_t));
    peak_anon = 0;

    t0 = now();

    for (i = 0; i < n; i += group) {
        for (j = 0; j < group && i + j < n; j++) {
            bench_file(i + j, n, paths[j], 64, etags[j], &sizes[j]);
            m[j].op = ZARR_MUT_PUT;
            m[j].bucket = "bench";
            m[j].bucket_len = 5;
            m[j].zarr_id = "z";
            m[j].zarr_id_len = 1;
            m[j].path = paths[j];
            m[j].path_len = strlen(paths[j]);
            m[j].etag = etags[j];
            m[j].etag_len = 32;
            m[j].size = sizes[j];
        }

        if (zarr_store_apply(s, m, j, &bad, &err) != ZARR_OK) {
            fprintf(stderr, "apply: %s\n", err.msg);
            return 1;
        }

        if ((i / group) % 100 == 0) {
            mem(&hwm, &anon, &file);
            if (anon > peak_anon) {
                peak_anon = anon;
            }
        }
    }

    t1 = now();

    mem(&hwm_apply, &anon, &file);

    if (zarr_store_flush(s, NULL, 0, NULL, 0, &err) != ZARR_OK
        || zarr_store_get_zarr(s, "bench", 5, "z", 1, &sum, &err) != ZARR_OK)
    {
        fprintf(stderr, "digest: %s\n", err.msg);
        return 1;
    }

    t2 = now();

    mem(&hwm, &anon, &file);
    if (anon > peak_anon) {
        peak_anon = anon;
    }

    zarr_store_stat(s, &st, &err);

    /* a second burst: 1,000 overwrites into one deep directory */

    for (j = 0; j < group && j < 100; j++) {
        bench_file(j + 1, n, paths[j], 64, etags[j], &sizes[j]);
        m[j].path_len = strlen(paths[j]);
        etags[j][0] = 'f';
    }

    t3 = now();

    if (zarr_store_apply(s, m, j, &bad, &err) != ZARR_OK
        || zarr_store_flush(s, NULL, 0, NULL, 0, &err) != ZARR_OK
        || zarr_store_get_zarr(s, "bench", 5, "z", 1, &want, &err)
           != ZARR_OK)
    {
        fprintf(stderr, "update: %s\n", err.msg);
        return 1;
    }

    t4 = now();

    printf("files              %llu\n", (unsigned long long) n);
    printf("group              %llu\n", (unsigned long long) group);
    printf("apply_seconds      %.3f\n", t1 - t0);
    printf("files_per_second   %.0f\n", n / (t1 - t0));
    printf("final_digest_s     %.3f\n", t2 - t1);
    printf("root_digest        %s\n", sum.digest);
    printf("store_used_mb      %.1f\n", st.used / 1048576.0);
    printf("peak_rss_apply_mb  %.1f\n", hwm_apply / 1024.0);
    printf("peak_rss_mb        %.1f\n", hwm / 1024.0);
    printf("peak_anon_mb       %.1f\n", peak_anon / 1024.0);
    printf("rss_file_mb        %.1f\n", file / 1024.0);
    printf("update_100_s       %.4f\n", t4 - t3);

    zarr_store_close(s);

    /* check: the same listing through the in-memory tree */

    t = zarr_mtree_create();

    for (i = 0; i < n; i++) {
        bench_file(i, n, paths[0], 64, etags[0], &sizes[0]);

        if (zarr_mtree_add(t, paths[0], strlen(paths[0]), sizes[0],
                           etags[0], 32, i + 1, &err) != ZARR_OK)
        {
            fprintf(stderr, "mtree: %s\n", err.msg);
            return 1;
        }
    }

    if (zarr_mtree_compute(t, NULL, NULL, &want, &err) != ZARR_OK) {
        fprintf(stderr, "mtree: %s\n", err.msg);
        return 1;
    }

    zarr_mtree_free(t);

    printf("check              %s\n",
           strcmp(want.digest, sum.digest) == 0 ? "ok" : "MISMATCH");

    return strcmp(want.digest, sum.digest) == 0 ? 0 : 1;
}
