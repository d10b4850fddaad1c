
/*
 * The benchmark zarr: 9 arrays of 100,000 chunks four directories deep
 * (aN/0/X/Y/Z), one flat directory of 100,000 files, and metadata files:
 * the shape of a large OME-Zarr.  File i of n is described by
 * bench_file(); the order is the order a writer would upload them in.
 */


#ifndef _BENCH_LAYOUT_H_INCLUDED_
#define _BENCH_LAYOUT_H_INCLUDED_


#include <stdint.h>
#include <stdio.h>


#define BENCH_FLAT  100000


static inline void
bench_file(uint64_t i, uint64_t n, char *path, size_t path_size, char *etag,
    uint64_t *size)
{
    uint64_t  nested, a, c;

    nested = n > BENCH_FLAT ? n - BENCH_FLAT : 0;

    if (i < nested) {
        a = i / 100000;
        c = i % 100000;

        if (c == 0) {
            snprintf(path, path_size, "a%llu/.zarray", (unsigned long long) a);

        } else {
            snprintf(path, path_size, "a%llu/0/%llu/%llu/%llu",
                     (unsigned long long) a, (unsigned long long) c / 10000,
                     (unsigned long long) (c / 100) % 100,
                     (unsigned long long) c % 100);
        }

    } else {
        snprintf(path, path_size, "flat/%llu",
                 (unsigned long long) (i - nested));
    }

    /* a made-up md5: distinct, deterministic */
    snprintf(etag, 33, "%016llx%016llx",
             (unsigned long long) (i * 0x9e3779b97f4a7c15ULL),
             (unsigned long long) i);

    *size = 4096 + i % 1000;
}


#endif /* _BENCH_LAYOUT_H_INCLUDED_ */
