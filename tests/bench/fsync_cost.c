
/*
 * What a durable write costs on this disk, the floor under every LMDB
 * commit: N random 4 KiB pages written, then made durable the way LMDB
 * does it (fdatasync; then the meta page through a second fdatasync).
 *
 * usage: fsync_cost FILE [PAGES] [ROUNDS]
 *   prints ms per commit for 1 and PAGES pages, one and two flushes
 * build: cc -O2 tests/bench/fsync_cost.c -o fsync_cost
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


#define FILE_PAGES  1024


static double
now(void)
{
    struct timespec  t;

    clock_gettime(CLOCK_MONOTONIC, &t);

    return t.tv_sec + t.tv_nsec / 1e9;
}


static double
run(int fd, const char *page, int pages, int flushes, int rounds)
{
    int     i, k;
    off_t   off;
    double  t0;

    t0 = now();

    for (i = 0; i < rounds; i++) {
        for (k = 0; k < pages; k++) {
            off = (off_t) (((i * 37 + k * 13) % (FILE_PAGES - 1)) + 1) * 4096;

            if (pwrite(fd, page, 4096, off) != 4096) {
                perror("pwrite");
                exit(1);
            }
        }

        if (fdatasync(fd) != 0) {
            perror("fdatasync");
            exit(1);
        }

        if (flushes == 2) {
            if (pwrite(fd, page, 4096, 0) != 4096 || fdatasync(fd) != 0) {
                perror("meta page");
                exit(1);
            }
        }
    }

    return (now() - t0) / rounds * 1000;
}


int
main(int argc, char **argv)
{
    int    fd, pages, rounds;
    char   page[4096];

    if (argc < 2) {
        fprintf(stderr, "usage: fsync_cost FILE [PAGES] [ROUNDS]\n");
        return 2;
    }

    pages = argc > 2 ? atoi(argv[2]) : 26;
    rounds = argc > 3 ? atoi(argv[3]) : 500;

    fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd == -1 || ftruncate(fd, (off_t) FILE_PAGES * 4096) != 0
        || fsync(fd) != 0)
    {
        perror(argv[1]);
        return 1;
    }

    memset(page, 1, sizeof(page));

    printf("1 page, 1 flush:      %.3f ms\n", run(fd, page, 1, 1, rounds));
    printf("1 page, 2 flushes:    %.3f ms\n", run(fd, page, 1, 2, rounds));
    printf("%d pages, 1 flush:    %.3f ms\n", pages,
           run(fd, page, pages, 1, rounds));
    printf("%d pages, 2 flushes:  %.3f ms\n", pages,
           run(fd, page, pages, 2, rounds));

    close(fd);
    unlink(argv[1]);

    return 0;
}
