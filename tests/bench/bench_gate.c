
/*
 * The gate's cost per PUT (DESIGN 4, contract v2): what a worker does on
 * its event loop for every zarr mutation: one begin (batch extended,
 * intent and busy key recorded) and one release, both transactions of
 * the intent store without fsync.  One process, one zarr, distinct keys;
 * prints microseconds per begin, per release and per PUT.
 *
 * usage: bench_gate STORE_DIR [PUTS]
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zarr_gate.h"


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


int
main(int argc, char **argv)
{
    long            i, n;
    char            path[64];
    double          t0, tb, tr;
    uint64_t        ms;
    zarr_err_t      err;
    zarr_zref_t     z = { "bench", 5, "zarr-1", 6 };
    zarr_store_t   *s;
    zarr_begin_t    b;
    zarr_finish_t   f;
    zarr_intent_t   in;

    if (argc < 2) {
        fprintf(stderr, "usage: bench_gate STORE_DIR [PUTS]\n");
        return 2;
    }

    n = argc > 2 ? atol(argv[2]) : 100000;

    if (zarr_store_open(&s, argv[1], 1ULL << 30, 0, &err) != ZARR_OK) {
        fprintf(stderr, "bench_gate: %s\n", err.msg);
        return 1;
    }

    tb = 0;
    tr = 0;
    ms = 1000;

    for (i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "c/%ld/%ld", i % 257, i);

        in.op = ZARR_MUT_PUT;
        in.zarr = 0;
        in.path = path;
        in.path_len = strlen(path);

        memset(&b, 0, sizeof(zarr_begin_t));
        b.owner = "alice";
        b.owner_len = 5;
        b.timeout_ms = 60000;
        b.zarrs = &z;
        b.nzarrs = 1;
        b.intents = &in;
        b.nintents = 1;
        b.proc.pid = 1;
        b.proc.start = 1;
        b.prefix = "zarr/";
        b.prefix_len = 5;

        t0 = now();

        if (zarr_gate_begin(s, &b, ms, &err) != ZARR_OK || b.rc != ZARR_OK) {
            fprintf(stderr, "bench_gate: begin: %s (rc %d)\n", err.msg,
                    b.rc);
            return 1;
        }

        tb += now() - t0;

        if (b.nundurable) {
            /* the first one: its batch becomes durable */
            uint64_t          ids[1];
            zarr_gate_txn_t  *t;

            if (zarr_gate_txn_start(s, ms, &t, &err) != ZARR_OK
                || zarr_gate_txn_durable(t, &b, ids) != ZARR_OK
                || zarr_gate_txn_end(t, ZARR_OK) != ZARR_OK
                || zarr_gate_mark_durable(s, &b, ids, &err) != ZARR_OK)
            {
                fprintf(stderr, "bench_gate: durable: %s\n", err.msg);
                return 1;
            }
        }

        memset(&f, 0, sizeof(zarr_finish_t));
        f.zarrs = &z;
        f.nzarrs = 1;
        f.batch_id = b.batch.id;
        f.intent_id = b.intent_id;
        f.nintents = 1;

        t0 = now();

        if (zarr_gate_release(s, &f, ms, &err) != ZARR_OK) {
            fprintf(stderr, "bench_gate: release: %s\n", err.msg);
            return 1;
        }

        tr += now() - t0;
        ms++;
    }

    printf("puts %ld: begin %.1f us, release %.1f us, per PUT %.1f us\n",
           n, tb / n * 1e6, tr / n * 1e6, (tb + tr) / n * 1e6);

    zarr_store_close(s);

    return 0;
}
