
/*
 * zarrctl's listing lines (zarr_listing.c) and the in-memory tree they
 * feed (zarr_mtree.c), as zarrctl checksum --listing uses them.  Input:
 * byte 0 (bit 0: jsonl, else tsv), then the listing; lines are cut
 * after each LF, as getline() does.  The tree is computed with one thread
 * and then with two (the fuzz build splits any tree): the same directories
 * reported, the same digest or error.  A tsv listing is also read whole
 * by zarr_mtree_add_tsv() on two threads (split anywhere here), as
 * zarrctl does: the first bad line and its message, or the same digest.
 */


#include "fuzz.h"
#include "zarr_listing.h"
#include "zarr_mtree.h"


static void fuzz_check_entry(const zarr_listing_entry_t *e,
    const char *line, size_t len, int jsonl);
static int fuzz_record(void *ctx, const char *dir, size_t dir_len,
    const zarr_dir_sum_t *sum);


static int
fuzz_record(void *ctx, const char *dir, size_t dir_len,
    const zarr_dir_sum_t *sum)
{
    zarr_buf_t  *b = ctx;

    if (zarr_buf_add(b, dir, dir_len) != 0
        || zarr_buf_add(b, "\t", 1) != 0
        || zarr_buf_add_str(b, sum->digest) != 0
        || zarr_buf_add(b, "\n", 1) != 0)
    {
        return -1;
    }

    return 0;
}


static void
fuzz_check_entry(const zarr_listing_entry_t *e, const char *line,
    size_t len, int jsonl)
{
    size_t    i;
    uint64_t  v;

    FUZZ_CHECK(e->path != NULL && e->etag != NULL);

    for (i = 0; i < e->etag_len; i++) {
        FUZZ_CHECK((unsigned char) e->etag[i] >= 0x20
                   && e->etag[i] != 0x7f);
    }

    if (jsonl) {
        FUZZ_CHECK(e->json != NULL);
        FUZZ_CHECK(e->path_len + e->etag_len <= len);
        return;
    }

    /* PATH TAB SIZE TAB ["]ETAG["] [CR] LF, all inside the line */

    FUZZ_CHECK(e->json == NULL);
    FUZZ_CHECK(e->path == line);
    FUZZ_CHECK(FUZZ_INSIDE(e->etag, e->etag_len, line, len));
    FUZZ_CHECK(line[e->path_len] == '\t');

    /* the size field: decimal digits that make e->size */

    v = 0;

    for (i = e->path_len + 1; i < len && line[i] != '\t'; i++) {
        FUZZ_CHECK(line[i] >= '0' && line[i] <= '9');
        FUZZ_CHECK(v <= (UINT64_MAX - (line[i] - '0')) / 10);
        v = v * 10 + (line[i] - '0');
    }

    FUZZ_CHECK(i > e->path_len + 1 && i < len);
    FUZZ_CHECK(v == e->size);
    FUZZ_CHECK(e->etag == line + i + 1
               || (e->etag == line + i + 2
                   && e->etag[-1] == '"' && e->etag[e->etag_len] == '"'));
    FUZZ_CHECK(memchr(e->etag, '\t', e->etag_len) == NULL);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                    rc, rc2, jsonl;
    char                   err[ZARR_LISTING_ERR_MAX];
    size_t                 off, n;
    uint64_t               lineno, bad_line, tsv_line;
    const char            *s, *lf;
    zarr_buf_t             walk, walk2;
    zarr_err_t             zerr, zerr2, bad;
    zarr_mtree_t          *t, *t2;
    zarr_dir_sum_t         root, root2;
    zarr_listing_entry_t   e;

    if (size == 0) {
        return 0;
    }

    jsonl = data[0] & 1;
    s = (const char *) data + 1;
    size--;

    t = zarr_mtree_create();
    FUZZ_CHECK(t != NULL);

    off = 0;
    lineno = 0;
    bad_line = 0;

    while (off < size) {
        lf = memchr(s + off, '\n', size - off);
        n = lf ? (size_t) (lf + 1 - s - off) : size - off;
        lineno++;

        memset(err, 0x5a, sizeof(err));

        rc = jsonl ? zarr_listing_jsonl(s + off, n, &e, err, sizeof(err))
                   : zarr_listing_tsv(s + off, n, &e, err, sizeof(err));

        FUZZ_CHECK(rc == ZARR_LISTING_OK || rc == ZARR_LISTING_BLANK
                   || rc == ZARR_LISTING_MALFORMED
                   || rc == ZARR_LISTING_NOMEM);

        if (rc == ZARR_LISTING_MALFORMED) {
            FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
            FUZZ_CHECK(err[0] != '\0');
            FUZZ_CHECK(e.json == NULL);

            if (bad_line == 0) {
                bad_line = lineno;
                snprintf(bad.msg, sizeof(bad.msg), "%s", err);
            }
        }

        if (rc == ZARR_LISTING_OK) {
            fuzz_check_entry(&e, s + off, n, jsonl);

            /* zarrctl keeps a tsv listing whole: the tree points into it */

            if (jsonl) {
                rc = zarr_mtree_add(t, e.path, e.path_len, e.size, e.etag,
                                    e.etag_len, lineno, &zerr);

            } else {
                rc = zarr_mtree_add_ref(t, e.path, e.path_len, e.size,
                                        e.etag, e.etag_len, lineno, &zerr);
            }

            if (rc != ZARR_OK && bad_line == 0) {
                bad_line = lineno;
                bad = zerr;
            }

            zarr_listing_entry_free(&e);
        }

        off += n;
    }

    zarr_buf_init(&walk);
    zarr_buf_init(&walk2);
    memset(&zerr, 0, sizeof(zarr_err_t));
    memset(&zerr2, 0, sizeof(zarr_err_t));

    rc = zarr_mtree_compute(t, fuzz_record, &walk, &root, &zerr);

    zarr_mtree_threads(t, 2);
    rc2 = zarr_mtree_compute(t, fuzz_record, &walk2, &root2, &zerr2);

    FUZZ_CHECK(rc == rc2);
    FUZZ_CHECK(walk.len == walk2.len);
    FUZZ_CHECK(walk.len == 0
               || memcmp(walk.data, walk2.data, walk.len) == 0);

    if (rc == ZARR_OK) {
        FUZZ_CHECK(strcmp(root.digest, root2.digest) == 0);

    } else {
        FUZZ_CHECK(strcmp(zerr.msg, zerr2.msg) == 0);
    }

    /* the listing read whole, on two threads */

    if (!jsonl) {
        t2 = zarr_mtree_create();
        FUZZ_CHECK(t2 != NULL);
        zarr_mtree_threads(t2, 2);

        memset(&zerr2, 0, sizeof(zarr_err_t));
        rc2 = zarr_mtree_add_tsv(t2, s, size, &tsv_line, &zerr2);

        if (bad_line) {
            FUZZ_CHECK(rc2 == ZARR_ERR_INVALID);
            FUZZ_CHECK(tsv_line == bad_line);
            FUZZ_CHECK(strcmp(zerr2.msg, bad.msg) == 0);

        } else {
            FUZZ_CHECK(rc2 == ZARR_OK);

            rc2 = zarr_mtree_compute(t2, NULL, NULL, &root2, &zerr2);

            FUZZ_CHECK(rc == rc2);
            FUZZ_CHECK(rc != ZARR_OK
                       || strcmp(root.digest, root2.digest) == 0);
            FUZZ_CHECK(rc == ZARR_OK || strcmp(zerr.msg, zerr2.msg) == 0);
        }

        zarr_mtree_free(t2);
    }

    zarr_buf_free(&walk);
    zarr_buf_free(&walk2);
    zarr_mtree_free(t);

    return 0;
}
