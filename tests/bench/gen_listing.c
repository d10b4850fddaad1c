
/*
 * Writes the benchmark zarr (bench_layout.h) as a zarrctl listing:
 * PATH<TAB>SIZE<TAB>ETAG lines.
 *
 * usage: gen_listing [FILES] > listing.tsv
 */


#include <stdio.h>
#include <stdlib.h>

#include "bench_layout.h"


int
main(int argc, char **argv)
{
    char      path[64], etag[33];
    uint64_t  n, i, size;

    n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;

    for (i = 0; i < n; i++) {
        bench_file(i, n, path, sizeof(path), etag, &size);
        printf("%s\t%llu\t%s\n", path, (unsigned long long) size, etag);
    }

    return 0;
}
