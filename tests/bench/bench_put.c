
/*
 * Benchmark 9 load generator: THREADS threads, each with its own zarr_s3_t
 * client (one keep-alive connection, SigV4 signed), PUT objects of SIZE
 * bytes to keys zarr/<ZARR_ID>/<thread>/<n> as fast as they get answers,
 * for a fixed duration (or a fixed count per thread), after an optional
 * warm-up on the same connections.  Prints requests/s, latency p50/p99 and
 * the non-2xx count.
 *
 * usage: bench_put [-e ENDPOINT] [-a ACCESS_KEY] [-s SECRET_KEY]
 *            [-r REGION] [-b BUCKET] [-z ZARR_ID] [-t THREADS]
 *            [-d SECONDS | -n COUNT] [-w WARMUP_SECONDS] [-S SIZE]
 *            [-k FIRST_N] [-L LATENCY_FILE]
 *
 * Defaults from the environment: BENCH_ENDPOINT, AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_REGION (us-east-1), BENCH_BUCKET,
 * BENCH_ZARR_ID; THREADS 32, SECONDS 10, SIZE 4096, WARMUP 0, FIRST_N 0.
 *
 * Key numbers n start at FIRST_N in every thread (use a different FIRST_N
 * per run to write new keys instead of overwriting).  Only requests started
 * after the warm-up count; the measured time runs from the end of the
 * warm-up to the last counted answer.  LATENCY_FILE gets one line per
 * counted request: its latency in microseconds.
 *
 * The last line of the output is machine-readable:
 *   result requests=R errors=E seconds=S rps=X p50_ms=A p99_ms=B ...
 * (client_cpu_s: this process's CPU time, warm-up included).
 * Exit status: 0 when every counted request got a 2xx, 1 otherwise, 2 on
 * bad usage.
 */


#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "zarr_s3.h"


#define BENCH_STATUS_MAX  600          /* status 0: transport failure */


typedef struct {
    /* configuration, shared, read-only */
    const zarr_s3_conf_t  *conf;
    const char            *bucket;
    const char            *zarr_id;
    size_t                 size;
    uint64_t               count;      /* per thread; 0: by time */
    uint64_t               first_n;
    double                 t_start;    /* counting starts */
    double                 t_end;      /* no new request after; by time */
    pthread_barrier_t     *barrier;
    double                *t_go;       /* set by thread 0 after barrier */
    pthread_mutex_t       *go_lock;
    double                 warmup;
    double                 seconds;

    /* this thread */
    int                    id;
    int                    failed;     /* could not create the client */

    uint32_t              *lat;        /* microseconds, counted requests */
    size_t                 nlat;
    size_t                 alat;

    uint64_t               warm;       /* warm-up requests */
    uint64_t               warm_err;   /* of which not 2xx */
    double                 t_last;     /* last counted answer */
    uint64_t               status[BENCH_STATUS_MAX];
    uint64_t               other;      /* status outside 0..599 */

    /* the first failure seen, for the report */
    long                   err_status;
    char                   err_key[256];
    char                   err_text[ZARR_S3_CODE_MAX
                                    + ZARR_S3_MESSAGE_MAX + 4];
} bench_thread_t;


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static int
cmp_u32(const void *a, const void *b)
{
    uint32_t  x = *(const uint32_t *) a, y = *(const uint32_t *) b;

    return (x > y) - (x < y);
}


/* nearest-rank percentile of a sorted array, in ms */
static double
percentile(const uint32_t *v, size_t n, double p)
{
    size_t  rank;

    if (n == 0) {
        return 0;
    }

    rank = (size_t) (p / 100.0 * n + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > n) {
        rank = n;
    }

    return v[rank - 1] / 1000.0;
}


static uint64_t
xorshift(uint64_t *s)
{
    uint64_t  x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;

    return x;
}


static void *
bench_run(void *arg)
{
    bench_thread_t      *t = arg;
    char                 key[256], err[256];
    unsigned char       *body;
    uint64_t             n, rnd, done;
    double               t0, t1, go;
    size_t               i;
    int                  counted, rc, klen;
    long                 st;
    zarr_s3_t           *s3;
    zarr_s3_request_t    req;
    zarr_s3_response_t   resp;

    s3 = zarr_s3_create(t->conf, err, sizeof(err));
    body = malloc(t->size + 1);

    if (s3 == NULL || body == NULL) {
        fprintf(stderr, "bench_put: thread %d: %s\n", t->id,
                s3 ? "no memory" : err);
        t->failed = 1;
    }

    /* every object different: random bytes, the key written at the start */
    rnd = 0x9e3779b97f4a7c15ULL * (uint64_t) (t->id + 1);
    for (i = 0; body && i < t->size; i++) {
        body[i] = (unsigned char) xorshift(&rnd);
    }

    pthread_barrier_wait(t->barrier);

    if (t->id == 0) {
        pthread_mutex_lock(t->go_lock);
        *t->t_go = now();
        pthread_mutex_unlock(t->go_lock);
    }

    pthread_barrier_wait(t->barrier);

    if (t->failed) {
        return NULL;
    }

    pthread_mutex_lock(t->go_lock);
    go = *t->t_go;
    pthread_mutex_unlock(t->go_lock);

    t->t_start = go + t->warmup;
    t->t_end = t->t_start + t->seconds;

    n = t->first_n;
    done = 0;

    for ( ;; ) {
        t0 = now();
        counted = t0 >= t->t_start;

        if (counted) {
            if (t->count ? done >= t->count : t0 >= t->t_end) {
                break;
            }
        }

        klen = snprintf(key, sizeof(key), "zarr/%s/%d/%" PRIu64,
                        t->zarr_id, t->id, n);
        if (klen < 0 || (size_t) klen >= sizeof(key)) {
            fprintf(stderr, "bench_put: key too long\n");
            t->failed = 1;
            break;
        }

        memcpy(body, key, (size_t) klen < t->size ? (size_t) klen : t->size);

        memset(&req, 0, sizeof(req));
        req.method = "PUT";
        req.bucket = t->bucket;
        req.key = key;
        req.key_len = (size_t) klen;
        req.body = body;
        req.body_len = t->size;

        memset(&resp, 0, sizeof(resp));
        rc = zarr_s3_request(s3, &req, &resp);

        t1 = now();
        n++;

        st = rc == ZARR_S3_OK ? resp.status : 0;

        if (!counted) {
            t->warm++;
            t->warm_err += st < 200 || st > 299;

        } else {
            done++;

            if (t->nlat == t->alat) {
                t->alat = t->alat ? 2 * t->alat : 4096;
                t->lat = realloc(t->lat, t->alat * sizeof(uint32_t));
                if (t->lat == NULL) {
                    fprintf(stderr, "bench_put: no memory\n");
                    exit(1);
                }
            }

            t->lat[t->nlat++] = (uint32_t) ((t1 - t0) * 1e6 + 0.5);
            t->t_last = t1;

            if (st >= 0 && st < BENCH_STATUS_MAX) {
                t->status[st]++;
            } else {
                t->other++;
            }
        }

        if ((st < 200 || st > 299) && t->err_status == -1) {
            t->err_status = st;
            memcpy(t->err_key, key, (size_t) klen + 1);
            snprintf(t->err_text, sizeof(t->err_text), "%s%s%s",
                     resp.error.code, resp.error.code[0] ? ": " : "",
                     resp.error.message);
        }

        zarr_s3_response_free(&resp);
    }

    zarr_s3_destroy(s3);
    free(body);

    return NULL;
}


static void
usage(void)
{
    fprintf(stderr,
        "usage: bench_put [-e ENDPOINT] [-a ACCESS_KEY] [-s SECRET_KEY]\n"
        "           [-r REGION] [-b BUCKET] [-z ZARR_ID] [-t THREADS]\n"
        "           [-d SECONDS | -n COUNT] [-w WARMUP_SECONDS] [-S SIZE]\n"
        "           [-k FIRST_N] [-L LATENCY_FILE]\n"
        "env: BENCH_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY\n"
        "     AWS_REGION BENCH_BUCKET BENCH_ZARR_ID\n");
}


static const char *
env(const char *name, const char *def)
{
    const char  *v = getenv(name);

    return v && v[0] ? v : def;
}


static int
number(const char *s, double *v)
{
    char  *end;

    errno = 0;
    *v = strtod(s, &end);

    return errno == 0 && end != s && *end == '\0' && *v >= 0 ? 0 : -1;
}


int
main(int argc, char **argv)
{
    int                  c, i, threads, rc;
    double               seconds, warmup, count, size, first_n, v;
    double               elapsed, t_start, t_last, t_go, cpu;
    uint64_t             status[BENCH_STATUS_MAX], other, total, ok, warm;
    uint64_t             errors, warm_err;
    size_t               nlat, k;
    uint32_t            *lat;
    long double          sum;
    const char          *latfile;
    FILE                *f;
    pthread_t           *tid;
    bench_thread_t      *th;
    pthread_barrier_t    barrier;
    pthread_mutex_t      go_lock = PTHREAD_MUTEX_INITIALIZER;
    struct rusage        ru;
    zarr_s3_conf_t       conf;
    const char          *bucket, *zarr_id;

    memset(&conf, 0, sizeof(conf));
    conf.endpoint = env("BENCH_ENDPOINT", NULL);
    conf.access_key = env("AWS_ACCESS_KEY_ID", NULL);
    conf.secret_key = env("AWS_SECRET_ACCESS_KEY", NULL);
    conf.region = env("AWS_REGION", "us-east-1");
    bucket = env("BENCH_BUCKET", NULL);
    zarr_id = env("BENCH_ZARR_ID", NULL);

    threads = 32;
    seconds = 10;
    warmup = 0;
    count = 0;
    size = 4096;
    first_n = 0;
    latfile = NULL;

    while ((c = getopt(argc, argv, "e:a:s:r:b:z:t:d:n:w:S:k:L:h")) != -1) {
        switch (c) {
        case 'e': conf.endpoint = optarg; break;
        case 'a': conf.access_key = optarg; break;
        case 's': conf.secret_key = optarg; break;
        case 'r': conf.region = optarg; break;
        case 'b': bucket = optarg; break;
        case 'z': zarr_id = optarg; break;
        case 'L': latfile = optarg; break;

        case 't':
        case 'd':
        case 'n':
        case 'w':
        case 'S':
        case 'k':
            if (number(optarg, &v) != 0) {
                fprintf(stderr, "bench_put: bad number for -%c: %s\n", c,
                        optarg);
                return 2;
            }

            switch (c) {
            case 't': threads = (int) v; break;
            case 'd': seconds = v; break;
            case 'n': count = v; break;
            case 'w': warmup = v; break;
            case 'S': size = v; break;
            case 'k': first_n = v; break;
            }
            break;

        default:
            usage();
            return 2;
        }
    }

    if (optind != argc || conf.endpoint == NULL || conf.access_key == NULL
        || conf.secret_key == NULL || bucket == NULL || zarr_id == NULL
        || threads < 1 || threads > 4096 || (count == 0 && seconds <= 0))
    {
        usage();
        return 2;
    }

    if (zarr_s3_global_init() != 0) {
        fprintf(stderr, "bench_put: curl_global_init failed\n");
        return 1;
    }

    th = calloc(threads, sizeof(bench_thread_t));
    tid = calloc(threads, sizeof(pthread_t));
    if (th == NULL || tid == NULL
        || pthread_barrier_init(&barrier, NULL, threads) != 0)
    {
        fprintf(stderr, "bench_put: no memory\n");
        return 1;
    }

    t_go = 0;

    for (i = 0; i < threads; i++) {
        th[i].conf = &conf;
        th[i].bucket = bucket;
        th[i].zarr_id = zarr_id;
        th[i].size = (size_t) size;
        th[i].count = (uint64_t) count;
        th[i].first_n = (uint64_t) first_n;
        th[i].warmup = warmup;
        th[i].seconds = seconds;
        th[i].barrier = &barrier;
        th[i].t_go = &t_go;
        th[i].go_lock = &go_lock;
        th[i].id = i;
        th[i].err_status = -1;

        rc = pthread_create(&tid[i], NULL, bench_run, &th[i]);
        if (rc != 0) {
            fprintf(stderr, "bench_put: pthread_create: %s\n", strerror(rc));
            return 1;
        }
    }

    for (i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
    }

    memset(status, 0, sizeof(status));
    other = 0;
    warm = 0;
    warm_err = 0;
    nlat = 0;
    t_start = th[0].t_start;
    t_last = t_start;

    for (i = 0; i < threads; i++) {
        if (th[i].failed) {
            fprintf(stderr, "bench_put: thread %d failed\n", i);
            return 1;
        }

        for (k = 0; k < BENCH_STATUS_MAX; k++) {
            status[k] += th[i].status[k];
        }

        other += th[i].other;
        warm += th[i].warm;
        warm_err += th[i].warm_err;
        nlat += th[i].nlat;

        if (th[i].t_last > t_last) {
            t_last = th[i].t_last;
        }
    }

    lat = malloc((nlat ? nlat : 1) * sizeof(uint32_t));
    if (lat == NULL) {
        fprintf(stderr, "bench_put: no memory\n");
        return 1;
    }

    nlat = 0;
    for (i = 0; i < threads; i++) {
        if (th[i].nlat) {
            memcpy(lat + nlat, th[i].lat, th[i].nlat * sizeof(uint32_t));
            nlat += th[i].nlat;
        }
    }

    if (latfile) {
        f = fopen(latfile, "w");
        if (f == NULL) {
            fprintf(stderr, "bench_put: %s: %s\n", latfile, strerror(errno));
            return 1;
        }

        for (k = 0; k < nlat; k++) {
            fprintf(f, "%" PRIu32 "\n", lat[k]);
        }

        if (fclose(f) != 0) {
            fprintf(stderr, "bench_put: %s: write failed\n", latfile);
            return 1;
        }
    }

    qsort(lat, nlat, sizeof(uint32_t), cmp_u32);

    sum = 0;
    for (k = 0; k < nlat; k++) {
        sum += lat[k];
    }

    total = nlat;
    ok = 0;
    for (k = 200; k < 300; k++) {
        ok += status[k];
    }
    errors = total - ok;

    elapsed = t_last - t_start;
    if (elapsed <= 0) {
        elapsed = 1e-9;
    }

    getrusage(RUSAGE_SELF, &ru);
    cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
          + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;

    printf("bench_put: %s bucket=%s zarr=%s threads=%d size=%.0f "
           "warmup=%.1fs (%" PRIu64 " requests)\n",
           conf.endpoint, bucket, zarr_id, threads, size, warmup, warm);

    for (k = 0; k < BENCH_STATUS_MAX; k++) {
        if (status[k] && (k < 200 || k > 299)) {
            printf("status %zu%s: %" PRIu64 "\n", k,
                   k == 0 ? " (transport error)" : "", status[k]);
        }
    }

    if (other) {
        printf("status other: %" PRIu64 "\n", other);
    }

    for (i = 0; i < threads; i++) {
        if (th[i].err_status != -1) {
            printf("first failure (thread %d): status %ld key %s: %s\n", i,
                   th[i].err_status, th[i].err_key, th[i].err_text);
            break;
        }
    }

    printf("result requests=%" PRIu64 " errors=%" PRIu64 " seconds=%.3f "
           "rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f mean_ms=%.2f "
           "max_ms=%.2f client_cpu_s=%.2f warmup_requests=%" PRIu64
           " warmup_errors=%" PRIu64 "\n",
           total, errors, elapsed, total / elapsed,
           percentile(lat, nlat, 50), percentile(lat, nlat, 90),
           percentile(lat, nlat, 99),
           nlat ? (double) (sum / nlat) / 1000.0 : 0.0,
           nlat ? lat[nlat - 1] / 1000.0 : 0.0, cpu, warm, warm_err);

    for (i = 0; i < threads; i++) {
        free(th[i].lat);
    }

    free(lat);
    free(th);
    free(tid);
    pthread_barrier_destroy(&barrier);
    zarr_s3_global_cleanup();

    return errors ? 1 : 0;
}
