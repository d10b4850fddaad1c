
/*
 * Benchmark load generator for snapshot reads (docs/PERFORMANCE.md,
 * issue 10): THREADS threads, each with its own zarr_s3_t client (one
 * keep-alive connection, SigV4 signed), GET the keys of KEYS_FILE round
 * robin ("KEY" or "KEY<TAB>VERSION_ID" lines: then ?versionId=) for
 * SECONDS; or, with -l PREFIX, list every page of 1,000 keys under
 * PREFIX (ListObjectsV2) again and again.  Prints requests (or pages)
 * per second and the failures.
 *
 * usage: bench_get -e ENDPOINT -a ACCESS_KEY -s SECRET_KEY -b BUCKET
 *            [-r REGION] [-t THREADS] [-d SECONDS] (-k KEYS_FILE | -l PREFIX)
 */


#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zarr_s3.h"


typedef struct {
    char          *key;
    size_t         key_len;
    char          *version;
} bench_key_t;


typedef struct {
    zarr_s3_conf_t   conf;
    const char      *bucket;
    const char      *prefix;
    bench_key_t     *keys;
    size_t           nkeys;
    double           until;
    int              index;
    int              threads;
    uint64_t         ok;
    uint64_t         failed;
    uint64_t         objects;
} bench_t;


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static int
count_object(const zarr_s3_object_t *obj, void *data)
{
    (void) obj;

    (*(uint64_t *) data)++;

    return 0;
}


typedef struct {
    bench_t    *b;
    int         id;
    uint64_t    ok;
    uint64_t    failed;
    uint64_t    objects;
} bench_thread_t;


static void *
bench_run(void *arg)
{
    bench_thread_t *th = arg;

    char                 err[256];
    size_t               i;
    bench_t             *b;
    zarr_s3_t           *s3;
    bench_key_t         *k;
    zarr_s3_error_t      e;
    zarr_s3_request_t    req;
    zarr_s3_response_t   resp;
    zarr_sigv4_param_t   p;

    b = th->b;

    s3 = zarr_s3_create(&b->conf, err, sizeof(err));
    if (s3 == NULL) {
        fprintf(stderr, "bench_get: %s\n", err);
        exit(1);
    }

    i = th->id;

    while (now() < b->until) {

        if (b->prefix) {
            if (zarr_s3_list(s3, b->bucket, b->prefix, strlen(b->prefix),
                             count_object, &th->objects, &e)
                == ZARR_S3_OK)
            {
                th->ok++;

            } else {
                th->failed++;
            }

            continue;
        }

        k = &b->keys[i % b->nkeys];
        i += b->threads;

        memset(&req, 0, sizeof(zarr_s3_request_t));
        req.method = "GET";
        req.bucket = b->bucket;
        req.key = k->key;
        req.key_len = k->key_len;

        if (k->version) {
            p.name = "versionId";
            p.name_len = 9;
            p.value = k->version;
            p.value_len = strlen(k->version);
            req.params = &p;
            req.nparams = 1;
        }

        if (zarr_s3_request(s3, &req, &resp) == ZARR_S3_OK
            && resp.status == 200)
        {
            th->ok++;

        } else {
            th->failed++;
        }

        zarr_s3_response_free(&resp);
    }

    zarr_s3_destroy(s3);

    return NULL;
}


int
main(int argc, char **argv)
{
    int              c, i;
    char            *line, *tab;
    size_t           cap;
    ssize_t          len;
    double           t0, t, secs;
    FILE            *f;
    bench_t          b;
    pthread_t       *tids;
    bench_thread_t  *ths;
    const char      *keys_file;

    memset(&b, 0, sizeof(bench_t));
    b.threads = 32;
    secs = 10;
    keys_file = NULL;

    while ((c = getopt(argc, argv, "e:a:s:r:b:t:d:k:l:")) != -1) {
        switch (c) {
        case 'e': b.conf.endpoint = optarg; break;
        case 'a': b.conf.access_key = optarg; break;
        case 's': b.conf.secret_key = optarg; break;
        case 'r': b.conf.region = optarg; break;
        case 'b': b.bucket = optarg; break;
        case 't': b.threads = atoi(optarg); break;
        case 'd': secs = atof(optarg); break;
        case 'k': keys_file = optarg; break;
        case 'l': b.prefix = optarg; break;
        default: return 2;
        }
    }

    if (b.conf.endpoint == NULL || b.bucket == NULL
        || (keys_file == NULL && b.prefix == NULL))
    {
        fprintf(stderr, "usage: bench_get -e ENDPOINT -a KEY -s SECRET "
                "-b BUCKET [-r REGION] [-t THREADS] [-d SECONDS] "
                "(-k KEYS_FILE | -l PREFIX)\n");
        return 2;
    }

    if (keys_file) {
        f = fopen(keys_file, "r");
        if (f == NULL) {
            perror(keys_file);
            return 1;
        }

        line = NULL;
        cap = 0;

        while ((len = getline(&line, &cap, f)) > 0) {
            if (line[len - 1] == '\n') {
                line[--len] = '\0';
            }

            b.keys = realloc(b.keys, (b.nkeys + 1) * sizeof(bench_key_t));
            tab = strchr(line, '\t');
            b.keys[b.nkeys].version = tab ? strdup(tab + 1) : NULL;

            if (tab) {
                *tab = '\0';
            }

            b.keys[b.nkeys].key = strdup(line);
            b.keys[b.nkeys].key_len = strlen(line);
            b.nkeys++;
        }

        free(line);
        fclose(f);

        if (b.nkeys == 0) {
            fprintf(stderr, "bench_get: no keys\n");
            return 1;
        }
    }

    zarr_s3_global_init();

    tids = calloc(b.threads, sizeof(pthread_t));
    ths = calloc(b.threads, sizeof(bench_thread_t));

    t0 = now();
    b.until = t0 + secs;

    for (i = 0; i < b.threads; i++) {
        ths[i].b = &b;
        ths[i].id = i;
        pthread_create(&tids[i], NULL, bench_run, &ths[i]);
    }

    for (i = 0; i < b.threads; i++) {
        pthread_join(tids[i], NULL);
        b.ok += ths[i].ok;
        b.failed += ths[i].failed;
        b.objects += ths[i].objects;
    }

    t = now() - t0;

    if (b.prefix) {
        /* pages of 1,000: the objects listed over 1,000 */
        printf("listings %" PRIu64 " failed %" PRIu64 " objects %" PRIu64
               " seconds %.2f pages/s %.1f\n", b.ok, b.failed, b.objects,
               t, (double) b.objects / 1000 / t);

    } else {
        printf("requests %" PRIu64 " failed %" PRIu64 " seconds %.2f "
               "req/s %.1f\n", b.ok, b.failed, t, b.ok / t);
    }

    zarr_s3_global_cleanup();

    return b.failed != 0;
}
