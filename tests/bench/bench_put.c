
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
 *        bench_put ... -N TOTAL [-D DIRS] [-O spread|seq] [-P PER_DIR]
 *            [-p SECONDS] [-l LISTING]
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
 * A fixed set of files instead (-N TOTAL, no warm-up): the threads share
 * the files FIRST_N .. FIRST_N + TOTAL - 1, each PUT once, file i at key
 * zarr/<ZARR_ID>/<dir>/<i> in one of DIRS directories (-D, default 80):
 * -O spread puts file i in directory i % DIRS (every directory grows at
 * once), -O seq in (i / PER_DIR) % DIRS (one directory after the other;
 * -P PER_DIR, default TOTAL / DIRS rounded up).  Further options then:
 *   -p SECONDS      a progress line every SECONDS:
 *                   progress t=ELAPSED done=N errors=E rps=INTERVAL_RATE
 *                   cpu=CPU_SECONDS_OF_THIS_PROCESS
 *   -l LISTING      path<TAB>size<TAB>etag of every file that got a 2xx
 *                   (path relative to the zarr root, the answer's ETag),
 *                   for zarrctl checksum --listing
 * and the result line has first10_rps and last10_rps: the rate over the
 * first and the last tenth of the files.
 *
 * The last line of the output is machine-readable:
 *   result requests=R errors=E seconds=S rps=X p50_ms=A p99_ms=B ...
 * (client_cpu_s: this process's CPU time, warm-up included; last_epoch:
 * the wall-clock time of the last counted answer, Unix seconds).
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
#define BENCH_TENTHS      10


/* -N: the files, shared by the threads */
typedef struct {
    uint64_t               first;
    uint64_t               total;
    uint64_t               dirs;
    uint64_t               per_dir;    /* seq */
    int                    spread;

    uint64_t               next;       /* the next file to PUT (atomic) */
    uint64_t               done;       /* answers (atomic) */
    uint64_t               errors;     /* non-2xx answers (atomic) */
    int                    running;    /* threads not finished (atomic) */

    /* when the answer that completed each tenth of the files came */
    double                 tenth[BENCH_TENTHS + 1];
    double                 last;       /* the last answer */
    pthread_mutex_t        lock;
} bench_files_t;


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
    bench_files_t         *files;      /* -N, else NULL */
    int                    listing;    /* -l: keep path, size, ETag */

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

    /* -l: "path TAB size TAB etag" lines of the 2xx answers */
    char                  *list;
    size_t                 nlist;
    size_t                 alist;

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


static void bench_work(bench_thread_t *t);
static void bench_file_done(bench_thread_t *t, const char *key, size_t klen,
    long st, const zarr_s3_response_t *resp, double t1);


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
    bench_thread_t *t = arg;

    bench_work(t);

    if (t->files) {
        (void) __atomic_sub_fetch(&t->files->running, 1, __ATOMIC_RELEASE);
    }

    return NULL;
}


/* -N: the answer to file n (st: its status) is in */

static void
bench_file_done(bench_thread_t *t, const char *key, size_t klen, long st,
    const zarr_s3_response_t *resp, double t1)
{
    size_t          skip, need;
    uint64_t        d, step;
    bench_files_t  *f = t->files;

    d = __atomic_add_fetch(&f->done, 1, __ATOMIC_RELAXED);

    if (st < 200 || st > 299) {
        (void) __atomic_add_fetch(&f->errors, 1, __ATOMIC_RELAXED);

    } else if (t->listing) {
        /* the path under "zarr/<id>/", its size, the ETag answered */
        skip = 5 + strlen(t->zarr_id) + 1;
        need = klen - skip + strlen(resp->etag) + 32;

        if (t->alist - t->nlist < need) {
            t->alist = t->alist ? 2 * t->alist : 1 << 20;
            t->list = realloc(t->list, t->alist);
            if (t->list == NULL) {
                fprintf(stderr, "bench_put: no memory\n");
                exit(1);
            }
        }

        t->nlist += snprintf(t->list + t->nlist, t->alist - t->nlist,
                             "%.*s\t%zu\t%s\n", (int) (klen - skip),
                             key + skip, t->size, resp->etag);
    }

    step = f->total / BENCH_TENTHS;

    pthread_mutex_lock(&f->lock);

    if (step && d % step == 0 && d / step <= BENCH_TENTHS) {
        f->tenth[d / step] = t1;
    }

    if (t1 > f->last) {
        f->last = t1;
    }

    pthread_mutex_unlock(&f->lock);
}


static void
bench_work(bench_thread_t *t)
{
    char                 key[256], err[256];
    unsigned char       *body;
    uint64_t             n, rnd, done, dir;
    double               t0, t1, go;
    size_t               i;
    int                  counted, rc, klen;
    long                 st;
    bench_files_t       *f;
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
        return;
    }

    pthread_mutex_lock(t->go_lock);
    go = *t->t_go;
    pthread_mutex_unlock(t->go_lock);

    t->t_start = go + t->warmup;
    t->t_end = t->t_start + t->seconds;

    n = t->first_n;
    done = 0;
    f = t->files;

    for ( ;; ) {
        t0 = now();
        counted = t0 >= t->t_start;

        if (f) {
            n = __atomic_fetch_add(&f->next, 1, __ATOMIC_RELAXED);

            if (n >= f->first + f->total) {
                break;
            }

            dir = f->spread ? n % f->dirs : (n / f->per_dir) % f->dirs;

            klen = snprintf(key, sizeof(key),
                            "zarr/%s/%" PRIu64 "/%" PRIu64, t->zarr_id, dir,
                            n);

        } else {
            if (counted
                && (t->count ? done >= t->count : t0 >= t->t_end))
            {
                break;
            }

            klen = snprintf(key, sizeof(key), "zarr/%s/%d/%" PRIu64,
                            t->zarr_id, t->id, n);
        }

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

            if (f) {
                bench_file_done(t, key, (size_t) klen, st, &resp, t1);
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
}


static void
usage(void)
{
    fprintf(stderr,
        "usage: bench_put [-e ENDPOINT] [-a ACCESS_KEY] [-s SECRET_KEY]\n"
        "           [-r REGION] [-b BUCKET] [-z ZARR_ID] [-t THREADS]\n"
        "           [-d SECONDS | -n COUNT] [-w WARMUP_SECONDS] [-S SIZE]\n"
        "           [-k FIRST_N] [-L LATENCY_FILE]\n"
        "       bench_put ... -N TOTAL [-D DIRS] [-O spread|seq]\n"
        "           [-P PER_DIR] [-p SECONDS] [-l LISTING]\n"
        "env: BENCH_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY\n"
        "     AWS_REGION BENCH_BUCKET BENCH_ZARR_ID\n");
}


static const char *
env(const char *name, const char *def)
{
    const char  *v = getenv(name);

    return v && v[0] ? v : def;
}


/*
 * -p: a line every interval until the threads are done, then at once
 * (within 10 ms) "finished ... last_epoch=T": the wall-clock time of the
 * last answer, for whoever waits to measure what follows it
 */

static void
progress(bench_files_t *files, double interval, double *t_go,
    pthread_mutex_t *go_lock)
{
    double           go, t, next, prev_t, last, cpu;
    uint64_t         done, prev;
    struct rusage    ru;
    struct timespec  ts, rt;

    go = 0;
    next = 0;
    prev = 0;
    prev_t = 0;

    ts.tv_sec = 0;
    ts.tv_nsec = 10 * 1000 * 1000;

    while (__atomic_load_n(&files->running, __ATOMIC_ACQUIRE) > 0) {
        nanosleep(&ts, NULL);

        if (go == 0) {
            pthread_mutex_lock(go_lock);
            go = *t_go;
            pthread_mutex_unlock(go_lock);

            if (go == 0) {
                continue;
            }

            prev_t = go;
            next = go + interval;
        }

        t = now();

        if (t < next) {
            continue;
        }

        done = __atomic_load_n(&files->done, __ATOMIC_RELAXED);

        getrusage(RUSAGE_SELF, &ru);
        cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
              + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;

        printf("progress t=%.1f done=%" PRIu64 " errors=%" PRIu64
               " rps=%.1f cpu=%.2f\n", t - go, done,
               __atomic_load_n(&files->errors, __ATOMIC_RELAXED),
               (done - prev) / (t - prev_t), cpu);
        fflush(stdout);

        prev = done;
        prev_t = t;
        next += interval;
    }

    pthread_mutex_lock(&files->lock);
    last = files->last;
    pthread_mutex_unlock(&files->lock);

    clock_gettime(CLOCK_REALTIME, &rt);

    printf("finished t=%.1f done=%" PRIu64 " errors=%" PRIu64
           " last_epoch=%.3f\n", now() - go,
           __atomic_load_n(&files->done, __ATOMIC_RELAXED),
           __atomic_load_n(&files->errors, __ATOMIC_RELAXED),
           rt.tv_sec + rt.tv_nsec / 1e9 - now() + last);
    fflush(stdout);
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
    double               total_n, dirs, per_dir, interval, epoch;
    double               first10, last10;
    uint64_t             status[BENCH_STATUS_MAX], other, total, ok, warm;
    uint64_t             errors, warm_err;
    size_t               nlat, k;
    uint32_t            *lat;
    long double          sum;
    const char          *latfile, *listfile, *order;
    FILE                *f;
    bench_files_t        files;
    struct timespec      rt;
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
    total_n = 0;
    dirs = 80;
    per_dir = 0;
    interval = 0;
    listfile = NULL;
    order = "spread";

    while ((c = getopt(argc, argv, "e:a:s:r:b:z:t:d:n:w:S:k:L:N:D:O:P:p:l:h"))
           != -1)
    {
        switch (c) {
        case 'e': conf.endpoint = optarg; break;
        case 'a': conf.access_key = optarg; break;
        case 's': conf.secret_key = optarg; break;
        case 'r': conf.region = optarg; break;
        case 'b': bucket = optarg; break;
        case 'z': zarr_id = optarg; break;
        case 'L': latfile = optarg; break;
        case 'l': listfile = optarg; break;
        case 'O': order = optarg; break;

        case 't':
        case 'd':
        case 'n':
        case 'w':
        case 'S':
        case 'k':
        case 'N':
        case 'D':
        case 'P':
        case 'p':
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
            case 'N': total_n = v; break;
            case 'D': dirs = v; break;
            case 'P': per_dir = v; break;
            case 'p': interval = v; break;
            }
            break;

        default:
            usage();
            return 2;
        }
    }

    if (optind != argc || conf.endpoint == NULL || conf.access_key == NULL
        || conf.secret_key == NULL || bucket == NULL || zarr_id == NULL
        || threads < 1 || threads > 4096 || (count == 0 && seconds <= 0)
        || (total_n > 0 && (dirs < 1 || warmup > 0 || count > 0
                            || (strcmp(order, "spread") != 0
                                && strcmp(order, "seq") != 0)))
        || (total_n == 0 && (listfile || interval > 0)))
    {
        usage();
        return 2;
    }

    memset(&files, 0, sizeof(bench_files_t));

    if (total_n > 0) {
        files.first = (uint64_t) first_n;
        files.total = (uint64_t) total_n;
        files.next = files.first;
        files.dirs = (uint64_t) dirs;
        files.per_dir = per_dir >= 1
                        ? (uint64_t) per_dir
                        : (files.total + files.dirs - 1) / files.dirs;
        files.spread = strcmp(order, "spread") == 0;
        files.running = threads;
        pthread_mutex_init(&files.lock, NULL);
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
        th[i].files = total_n > 0 ? &files : NULL;
        th[i].listing = listfile != NULL;

        rc = pthread_create(&tid[i], NULL, bench_run, &th[i]);
        if (rc != 0) {
            fprintf(stderr, "bench_put: pthread_create: %s\n", strerror(rc));
            return 1;
        }
    }

    if (total_n > 0 && interval > 0) {
        progress(&files, interval, &t_go, &go_lock);
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

    if (listfile) {
        f = fopen(listfile, "w");
        if (f == NULL) {
            fprintf(stderr, "bench_put: %s: %s\n", listfile, strerror(errno));
            return 1;
        }

        for (i = 0; i < threads; i++) {
            if (th[i].nlist
                && fwrite(th[i].list, 1, th[i].nlist, f) != th[i].nlist)
            {
                break;
            }
        }

        if (fclose(f) != 0 || i < threads) {
            fprintf(stderr, "bench_put: %s: write failed\n", listfile);
            return 1;
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

    /* the wall clock of the last answer */
    clock_gettime(CLOCK_REALTIME, &rt);
    epoch = rt.tv_sec + rt.tv_nsec / 1e9 - now() + t_last;

    /* -N: the first and the last tenth of the files */
    first10 = 0;
    last10 = 0;

    if (total_n > 0 && files.total >= BENCH_TENTHS
        && files.tenth[1] > t_start && t_last > files.tenth[BENCH_TENTHS - 1])
    {
        first10 = (files.total / BENCH_TENTHS) / (files.tenth[1] - t_start);
        last10 = (files.total - (BENCH_TENTHS - 1)
                                * (files.total / BENCH_TENTHS))
                 / (t_last - files.tenth[BENCH_TENTHS - 1]);
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
           " warmup_errors=%" PRIu64 " last_epoch=%.3f",
           total, errors, elapsed, total / elapsed,
           percentile(lat, nlat, 50), percentile(lat, nlat, 90),
           percentile(lat, nlat, 99),
           nlat ? (double) (sum / nlat) / 1000.0 : 0.0,
           nlat ? lat[nlat - 1] / 1000.0 : 0.0, cpu, warm, warm_err, epoch);

    if (total_n > 0) {
        printf(" first10_rps=%.1f last10_rps=%.1f", first10, last10);
    }

    printf("\n");

    for (i = 0; i < threads; i++) {
        free(th[i].lat);
        free(th[i].list);
    }

    free(lat);
    free(th);
    free(tid);
    pthread_barrier_destroy(&barrier);
    zarr_s3_global_cleanup();

    return errors ? 1 : 0;
}
