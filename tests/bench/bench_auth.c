
/*
 * Microseconds per signature check of a typical boto3 PutObject head (a
 * request captured in tests/unit/auth_requests): zarr_auth_parse(), the
 * signing key from a warm zarr_auth_cache_t, zarr_auth_verify().  Prints
 * the median of ROUNDS runs of N checks, in wall-clock time and in the
 * thread's CPU time (on a shared machine the first includes the time
 * other processes had the core), and the same with a cold cache (a miss
 * every time: the HMAC chain of the signing key).
 *
 * usage: bench_auth [N] [ROUNDS]          (make build/bench/bench_auth)
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zarr_auth.h"


#define SECRET  "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define URI     "/capture/zarr/x/.zgroup"

/* 2026-12-04T18:31:52Z, the request's x-amz-date */
#define SIGNED_AT  ((time_t) 1796409112)


static const zarr_auth_header_t  headers[] = {
#define H(n, v)  { n, sizeof(n) - 1, v, sizeof(v) - 1 }
    H("Accept-Encoding", "identity"),
    H("User-Agent", "Boto3/1.26.27 Python/3.11.2 Linux/6.18.44-fc-v1272 "
      "awscrt/1.0.0.dev0 Botocore/1.29.27"),
    H("Content-MD5", "ZP98rP1WO8skPuoHJdoYvw=="),
    H("Expect", "100-continue"),
    H("host", "127.0.0.1:39971"),
    H("X-Amz-Date", "20261204T183152Z"),
    H("x-amz-content-sha256",
      "bb8503b1300cb5a332e51ccf74c5d5b106809c6552e8bbc7f521088d0f38f13b"),
    H("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/"
      "20261204/us-east-1/s3/aws4_request, SignedHeaders=content-md5;host;"
      "x-amz-content-sha256;x-amz-date, Signature=d54727b3d345253b70abe64"
      "28fb11b9ab5c11495f123f6c215d0802f473782b1"),
    H("amz-sdk-invocation-id", "d8974de0-99b9-4a47-a7fb-8bd0aa9103c4"),
    H("amz-sdk-request", "attempt=1"),
    H("Content-Length", "17"),
#undef H
};


static double now(clockid_t clock);
static int cmp_double(const void *a, const void *b);
static void run(zarr_auth_cache_t *c, const zarr_auth_request_t *req,
    long n, int cold, double *wall, double *cpu);


static double
now(clockid_t clock)
{
    struct timespec  t;

    clock_gettime(clock, &t);

    return t.tv_sec + t.tv_nsec / 1e9;
}


static int
cmp_double(const void *a, const void *b)
{
    double  x, y;

    x = *(const double *) a;
    y = *(const double *) b;

    return (x > y) - (x < y);
}


/* microseconds per check */

static void
run(zarr_auth_cache_t *c, const zarr_auth_request_t *req, long n, int cold,
    double *wall, double *cpu)
{
    long            i;
    double          t0, c0;
    zarr_auth_t     a;
    unsigned char   key[32];
    char            secret[sizeof(SECRET)];

    memcpy(secret, SECRET, sizeof(SECRET));

    t0 = now(CLOCK_MONOTONIC);
    c0 = now(CLOCK_THREAD_CPUTIME_ID);

    for (i = 0; i < n; i++) {
        if (cold) {
            /* another secret each time: never in the cache */
            secret[0] = (char) ('A' + i % 26);
            secret[1] = (char) ('A' + i / 26 % 26);
        }

        if (zarr_auth_parse(req, &a) != ZARR_AUTH_OK
            || zarr_auth_cache_key(c, secret, sizeof(SECRET) - 1, &a, key)
               != 0
            || (zarr_auth_verify(req, &a, key) != ZARR_AUTH_OK && !cold))
        {
            fprintf(stderr, "bench_auth: check failed: %s\n",
                    a.error ? a.error : "?");
            exit(1);
        }
    }

    *cpu = (now(CLOCK_THREAD_CPUTIME_ID) - c0) / n * 1e6;
    *wall = (now(CLOCK_MONOTONIC) - t0) / n * 1e6;
}


int
main(int argc, char **argv)
{
    int                   r, rounds;
    long                  n;
    double               *warm, *cold, *warm_cpu, *cold_cpu;
    zarr_auth_cache_t    *c;
    zarr_auth_request_t   req;

    n = argc > 1 ? atol(argv[1]) : 100000;
    rounds = argc > 2 ? atoi(argv[2]) : 7;

    if (n < 1 || rounds < 1) {
        fprintf(stderr, "usage: bench_auth [N] [ROUNDS]\n");
        return 2;
    }

    memset(&req, 0, sizeof(req));
    req.method = "PUT";
    req.method_len = 3;
    req.uri = URI;
    req.uri_len = sizeof(URI) - 1;
    req.headers = headers;
    req.nheaders = sizeof(headers) / sizeof(headers[0]);
    req.now = SIGNED_AT + 1;

    c = zarr_auth_cache_create(64);
    warm = calloc(rounds, sizeof(double));
    cold = calloc(rounds, sizeof(double));
    warm_cpu = calloc(rounds, sizeof(double));
    cold_cpu = calloc(rounds, sizeof(double));

    if (c == NULL || warm == NULL || cold == NULL || warm_cpu == NULL
        || cold_cpu == NULL)
    {
        fprintf(stderr, "bench_auth: out of memory\n");
        return 1;
    }

    for (r = 0; r < rounds; r++) {
        run(c, &req, n, 0, &warm[r], &warm_cpu[r]);
        run(c, &req, n / 10 + 1, 1, &cold[r], &cold_cpu[r]);
    }

    qsort(warm, rounds, sizeof(double), cmp_double);
    qsort(cold, rounds, sizeof(double), cmp_double);
    qsort(warm_cpu, rounds, sizeof(double), cmp_double);
    qsort(cold_cpu, rounds, sizeof(double), cmp_double);

    printf("boto3 PUT head: parse + cached key + verify: %.2f us wall, "
           "%.2f us cpu (medians of %d x %ld; wall min %.2f, max %.2f)\n",
           warm[rounds / 2], warm_cpu[rounds / 2], rounds, n, warm[0],
           warm[rounds - 1]);
    printf("the same with a cache miss (signing key derived): %.2f us "
           "wall, %.2f us cpu\n", cold[rounds / 2], cold_cpu[rounds / 2]);

    zarr_auth_cache_destroy(c);
    free(warm);
    free(cold);
    free(warm_cpu);
    free(cold_cpu);

    return 0;
}
