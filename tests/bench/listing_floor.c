
/*
 * The floor of zarrctl checksum --listing: what no implementation of the
 * algorithm can skip, timed on one core.
 *
 *   read   the listing read with read() in 1 MiB blocks and its lines
 *          found with memchr() (the file is in the page cache)
 *   md5    the md5 of every directory's manifest, the exact bytes, one
 *          digest per directory (the manifests are built first, untimed,
 *          with zarr_mtree)
 *
 * usage: listing_floor LISTING     (tsv)
 * prints: lines, directories, manifest bytes, then "read S", "md5 S" and
 * "floor S" (their sum), in seconds, each the best of 5 runs.
 */


#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "zarr_hash.h"
#include "zarr_listing.h"
#include "zarr_mtree.h"


#define FLOOR_RUNS  5


typedef struct {
    zarr_mtree_t  *tree;
    zarr_buf_t     all;          /* every manifest, one after another */
    size_t        *ends;         /* where each one ends in all */
    size_t         n;
    size_t         cap;
} floor_ctx_t;


static double floor_now(void);
static int floor_manifest(void *ctx, const char *dir, size_t dir_len,
    const zarr_dir_sum_t *sum);
static int floor_load(const char *path, char **data, size_t *len);


static double
floor_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static int
floor_manifest(void *ctx, const char *dir, size_t dir_len,
    const zarr_dir_sum_t *sum)
{
    floor_ctx_t       *c = ctx;
    size_t            *p;
    const zarr_buf_t  *m;

    (void) dir;
    (void) dir_len;
    (void) sum;

    m = zarr_mtree_manifest(c->tree);

    if (zarr_buf_add(&c->all, m->data, m->len) != 0) {
        return -1;
    }

    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        p = realloc(c->ends, c->cap * sizeof(size_t));
        if (p == NULL) {
            return -1;
        }

        c->ends = p;
    }

    c->ends[c->n++] = c->all.len;

    return 0;
}


static int
floor_load(const char *path, char **data, size_t *len)
{
    int          fd;
    char        *p;
    size_t       n;
    ssize_t      r;
    struct stat  st;

    fd = open(path, O_RDONLY);
    if (fd == -1 || fstat(fd, &st) != 0) {
        return -1;
    }

    p = malloc(st.st_size + 1);
    if (p == NULL) {
        close(fd);
        return -1;
    }

    for (n = 0; n < (size_t) st.st_size; n += r) {
        r = read(fd, p + n, st.st_size - n);
        if (r <= 0) {
            free(p);
            close(fd);
            return -1;
        }
    }

    close(fd);

    *data = p;
    *len = n;

    return 0;
}


int
main(int argc, char **argv)
{
    int                    fd, run;
    char                  *data, *buf, hex[ZARR_MD5_HEX_LEN + 1];
    char                   msg[ZARR_LISTING_ERR_MAX];
    size_t                 len, off, n, i, start;
    ssize_t                r;
    uint64_t               lines, count;
    double                 t0, t_read, t_md5, best_read, best_md5;
    const char            *lf;
    zarr_err_t             err;
    zarr_hash_t           *h;
    floor_ctx_t            c;
    zarr_dir_sum_t         root;
    zarr_listing_entry_t   e;

    if (argc != 2) {
        fprintf(stderr, "usage: listing_floor LISTING\n");
        return 2;
    }

    /* the manifests, untimed */

    if (floor_load(argv[1], &data, &len) != 0) {
        fprintf(stderr, "cannot read %s: %s\n", argv[1], strerror(errno));
        return 1;
    }

    memset(&c, 0, sizeof(floor_ctx_t));
    zarr_buf_init(&c.all);
    c.tree = zarr_mtree_create();

    if (c.tree == NULL) {
        return 1;
    }

    lines = 0;

    for (off = 0; off < len; off += n) {
        lf = memchr(data + off, '\n', len - off);
        n = lf ? (size_t) (lf + 1 - data - off) : len - off;
        lines++;

        if (zarr_listing_tsv(data + off, n, &e, msg, sizeof(msg))
            != ZARR_LISTING_OK
            || zarr_mtree_add(c.tree, e.path, e.path_len, e.size, e.etag,
                              e.etag_len, lines, &err)
               != ZARR_OK)
        {
            fprintf(stderr, "line %llu: bad line\n",
                    (unsigned long long) lines);
            return 1;
        }
    }

    zarr_mtree_keep_manifests(c.tree);

    if (zarr_mtree_compute(c.tree, floor_manifest, &c, &root, &err)
        != ZARR_OK)
    {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }

    zarr_mtree_free(c.tree);
    free(data);

    buf = malloc(1 << 20);
    if (buf == NULL) {
        return 1;
    }

    best_read = 1e9;
    best_md5 = 1e9;

    for (run = 0; run < FLOOR_RUNS; run++) {

        /* read: the bytes and the line ends */

        t0 = floor_now();

        fd = open(argv[1], O_RDONLY);
        if (fd == -1) {
            return 1;
        }

        count = 0;

        while ((r = read(fd, buf, 1 << 20)) > 0) {
            for (lf = buf; (lf = memchr(lf, '\n', buf + r - lf)) != NULL;
                 lf++)
            {
                count++;
            }
        }

        close(fd);

        t_read = floor_now() - t0;

        if (count != lines && count + 1 != lines) {
            fprintf(stderr, "read %llu lines, expected %llu\n",
                    (unsigned long long) count, (unsigned long long) lines);
            return 1;
        }

        /* md5: one digest per manifest */

        t0 = floor_now();
        start = 0;

        for (i = 0; i < c.n; i++) {
            h = zarr_hash_create(ZARR_HASH_MD5);

            if (h == NULL
                || zarr_hash_update(h, c.all.data + start, c.ends[i] - start)
                   != 0
                || zarr_hash_final_hex(h, hex) != 0)
            {
                return 1;
            }

            zarr_hash_destroy(h);
            start = c.ends[i];
        }

        t_md5 = floor_now() - t0;

        /* the last manifest is the root's: its md5 starts the digest */

        if (strncmp(hex, root.digest, ZARR_MD5_HEX_LEN) != 0) {
            fprintf(stderr, "root md5 %s, digest %s\n", hex, root.digest);
            return 1;
        }

        best_read = t_read < best_read ? t_read : best_read;
        best_md5 = t_md5 < best_md5 ? t_md5 : best_md5;
    }

    printf("lines %llu\ndirectories %zu\nmanifest_bytes %zu\n"
           "read %.3f\nmd5 %.3f\nfloor %.3f\n",
           (unsigned long long) lines, c.n, c.all.len, best_read, best_md5,
           best_read + best_md5);

    zarr_buf_free(&c.all);
    free(c.ends);
    free(buf);

    return 0;
}
