
/*
 * The LMDB tree store: vectors (digests, manifests, .checksum documents),
 * put / overwrite / delete / re-add, empty directories, reopen, two
 * processes, a full map, and random mutations checked against a model.
 */


#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "zarr_test.h"
#include "zarr_mtree.h"
#include "zarr_tree.h"


#define B    "bucket"
#define BL   6


static zarr_mutation_t
put(const char *zarr, const char *path, const char *etag, uint64_t size)
{
    zarr_mutation_t  m;

    memset(&m, 0, sizeof(zarr_mutation_t));
    m.op = ZARR_MUT_PUT;
    m.bucket = B;
    m.bucket_len = BL;
    m.zarr_id = zarr;
    m.zarr_id_len = strlen(zarr);
    m.path = path;
    m.path_len = strlen(path);
    m.etag = etag;
    m.etag_len = strlen(etag);
    m.size = size;

    return m;
}


static zarr_mutation_t
del(const char *zarr, const char *path)
{
    zarr_mutation_t  m;

    m = put(zarr, path, "", 0);
    m.op = ZARR_MUT_DELETE;

    return m;
}


static void
apply(zarr_store_t *s, zarr_mutation_t *m, size_t n)
{
    size_t      bad;
    zarr_err_t  err;

    if (zarr_store_apply(s, m, n, &bad, &err) != ZARR_OK) {
        fail_msg("apply: %s (mutation %zu)", err.msg, bad);
    }
}


static void
digest(zarr_store_t *s, const char *zarr, char *out)
{
    zarr_err_t      err;
    zarr_dir_sum_t  sum;

    if (zarr_store_get_zarr(s, B, BL, zarr, strlen(zarr), &sum, &err)
        != ZARR_OK)
    {
        fail_msg("get_zarr: %s", err.msg);
    }

    strcpy(out, sum.digest);
}


static zarr_store_t *
open_store(const char *dir, uint64_t map, int flags)
{
    zarr_store_t  *s;
    zarr_err_t     err;

    if (zarr_store_open(&s, dir, map, flags, &err) != ZARR_OK) {
        fail_msg("open: %s", err.msg);
    }

    return s;
}


/* the digest of a tree of one file, from the in-memory tree */

static void
one_file_digest(const char *path, const char *etag, uint64_t size,
    char *out)
{
    zarr_mtree_t    *t;
    zarr_err_t       err;
    zarr_dir_sum_t   sum;

    t = zarr_mtree_create();
    assert_int_equal(zarr_mtree_add(t, path, strlen(path), size, etag,
                                    strlen(etag), 1, &err), ZARR_OK);
    assert_int_equal(zarr_mtree_compute(t, NULL, NULL, &sum, &err), ZARR_OK);
    strcpy(out, sum.digest);
    zarr_mtree_free(t);
}


/* vectors: every directory digest, manifest and document */

typedef struct {
    json_t  *want;
    size_t   seen;
    int      root_last;
} walk_ctx_t;


static int
walk_check(void *data, const char *dir, size_t dir_len,
    const zarr_dir_sum_t *sum)
{
    walk_ctx_t  *c = data;
    char         key[1200];
    json_t      *w;

    memcpy(key, dir, dir_len);
    key[dir_len] = '\0';

    w = json_object_get(c->want, key);
    assert_non_null(w);
    assert_string_equal(sum->digest, json_string_value(w));

    c->seen++;
    c->root_last = (dir_len == 0);

    return 0;
}


static void
check_case(zarr_store_t *s, const char *zarr, json_t *c)
{
    const char      *dir;
    json_t          *want, *man;
    zarr_buf_t       b, doc, expect;
    zarr_err_t       err;
    zarr_dir_sum_t   sum;
    walk_ctx_t       w;

    want = json_object_get(c, "directories");

    json_object_foreach(want, dir, man) {
        zarr_buf_init(&b);

        assert_int_equal(zarr_store_get_dir(s, B, BL, zarr, strlen(zarr),
                         dir, strlen(dir), &sum, &b, &err), ZARR_OK);
        assert_string_equal(sum.digest, json_string_value(man));

        man = json_object_get(json_object_get(c, "manifests"), dir);
        assert_non_null(man);
        assert_int_equal(b.len, json_string_length(man));
        assert_memory_equal(b.data, json_string_value(man), b.len);

        /* the document embeds the same manifest */
        zarr_buf_init(&doc);
        zarr_buf_init(&expect);
        assert_int_equal(zarr_store_checksum_doc(s, B, BL, zarr,
                         strlen(zarr), dir, strlen(dir), &doc, &err),
                         ZARR_OK);
        zarr_checksum_document(&expect, b.data, b.len, &sum);
        assert_int_equal(doc.len, expect.len);
        assert_memory_equal(doc.data, expect.data, doc.len);
        assert_memory_equal(doc.data, "{\"checksums\":{\"directories\":[",
                            29);

        zarr_buf_free(&expect);
        zarr_buf_free(&doc);
        zarr_buf_free(&b);
    }

    memset(&w, 0, sizeof(walk_ctx_t));
    w.want = want;
    assert_int_equal(zarr_store_walk(s, B, BL, zarr, strlen(zarr),
                                     walk_check, &w, &err), ZARR_OK);
    assert_int_equal(w.seen, json_object_size(want));
    assert_true(w.root_last);
}


static void
test_vectors(void **state)
{
    char             *dir, id[64], one[64];
    json_t           *v, *c, *f;
    size_t            i, j, n;
    zarr_store_t     *s;
    zarr_err_t        err;
    zarr_mutation_t   m[512];

    (void) state;

    dir = zarr_test_tmpdir();
    s = open_store(dir, 64 << 20, ZARR_STORE_NOSYNC);
    v = zarr_test_vectors();

    json_array_foreach(json_object_get(v, "cases"), i, c) {
        snprintf(id, sizeof(id), "case%zu", i);
        snprintf(one, sizeof(one), "one%zu", i);

        n = json_array_size(json_object_get(c, "files"));
        assert_true(n <= 512);

        if (n == 0) {
            assert_int_equal(zarr_store_create_zarr(s, B, BL, id, strlen(id),
                                                    &err), ZARR_OK);
            assert_int_equal(zarr_store_create_zarr(s, B, BL, one,
                                                    strlen(one), &err),
                             ZARR_OK);
        }

        json_array_foreach(json_object_get(c, "files"), j, f) {
            m[j] = put(id, json_string_value(json_object_get(f, "path")),
                       json_string_value(json_object_get(f, "md5")),
                       json_integer_value(json_object_get(f, "size")));
            m[j].path_len = json_string_length(json_object_get(f, "path"));
        }

        /* all in one group */
        apply(s, m, n);

        /* the same files one commit each, in reverse order */
        for (j = n; j > 0; j--) {
            m[j - 1].zarr_id = one;
            m[j - 1].zarr_id_len = strlen(one);
            apply(s, &m[j - 1], 1);
        }

        /* dirty: computed on the fly by a reader */
        check_case(s, id, c);
        check_case(s, one, c);

        /* persisted by a flush */
        assert_int_equal(zarr_store_flush(s, NULL, 0, NULL, 0, &err),
                         ZARR_OK);
        check_case(s, id, c);
        check_case(s, one, c);
    }

    json_decref(v);
    zarr_store_close(s);
    zarr_test_rmdir(dir);
    free(dir);
}


static void
test_put_overwrite_delete(void **state)
{
    char              *dir, d0[ZARR_DIGEST_MAX], d1[ZARR_DIGEST_MAX];
    char               d2[ZARR_DIGEST_MAX], d3[ZARR_DIGEST_MAX];
    zarr_store_t      *s;
    zarr_err_t         err;
    zarr_dir_sum_t     sum;
    zarr_store_stat_t  st;
    zarr_mutation_t    m[2];

    (void) state;

    dir = zarr_test_tmpdir();
    s = open_store(dir, 16 << 20, 0);

    /* the upstream anchor: a/b and c, root 26054e50...-2--2 */
    m[0] = put("z", "a/b", "9dd4e461268c8034f5c8564e155c67a6", 1);
    m[1] = put("z", "c", "415290769594460e2e485922904f345d", 1);
    apply(s, m, 2);
    digest(s, "z", d0);
    assert_string_equal(d0, "26054e501f570a8bfa69a2bc75e7c82d-2--2");

    /* overwrite changes the digest; the old value restores it */
    m[0] = put("z", "a/b", "00000000000000000000000000000000", 1);
    apply(s, m, 1);
    digest(s, "z", d1);
    assert_string_not_equal(d1, d0);

    m[0] = put("z", "a/b", "9dd4e461268c8034f5c8564e155c67a6", 1);
    apply(s, m, 1);
    digest(s, "z", d2);
    assert_string_equal(d2, d0);

    /* the same put again (a retried request) changes nothing */
    apply(s, m, 1);
    digest(s, "z", d2);
    assert_string_equal(d2, d0);

    /* delete a/b: directory a disappears */
    m[0] = del("z", "a/b");
    apply(s, m, 1);
    assert_int_equal(zarr_store_get_dir(s, B, BL, "z", 1, "a", 1, &sum,
                                        NULL, &err), ZARR_ERR_NOTFOUND);
    digest(s, "z", d3);
    one_file_digest("c", "415290769594460e2e485922904f345d", 1, d1);
    assert_string_equal(d3, d1);

    /* deleting it again, or something never there, is harmless */
    apply(s, m, 1);
    m[0] = del("z", "no/such/file");
    apply(s, m, 1);
    m[0] = del("unknown", "x");
    apply(s, m, 1);
    digest(s, "z", d2);
    assert_string_equal(d2, d3);
    assert_int_equal(zarr_store_get_zarr(s, B, BL, "unknown", 7, &sum, &err),
                     ZARR_ERR_NOTFOUND);

    /* re-add: back to the anchor */
    m[0] = put("z", "a/b", "9dd4e461268c8034f5c8564e155c67a6", 1);
    apply(s, m, 1);
    digest(s, "z", d2);
    assert_string_equal(d2, d0);

    /* delete everything: the empty digest, no entries left */
    m[0] = del("z", "a/b");
    m[1] = del("z", "c");
    apply(s, m, 2);
    digest(s, "z", d2);
    assert_string_equal(d2, ZARR_EMPTY_DIGEST);
    assert_int_equal(zarr_store_flush(s, B, BL, "z", 1, &err), ZARR_OK);
    assert_int_equal(zarr_store_stat(s, &st, &err), ZARR_OK);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.zarrs, 1);

    zarr_store_close(s);
    zarr_test_rmdir(dir);
    free(dir);
}


static void
test_empty_directories(void **state)
{
    char               *dir, d[ZARR_DIGEST_MAX];
    zarr_store_t       *s;
    zarr_err_t          err;
    zarr_dir_sum_t      sum;
    zarr_store_stat_t   st;
    zarr_mutation_t     m[4];

    (void) state;

    dir = zarr_test_tmpdir();
    s = open_store(dir, 16 << 20, 0);

    m[0] = put("z", "a/b/c/d/f1", "e1", 1);
    m[1] = put("z", "a/b/x/f2", "e2", 2);
    m[2] = put("z", "a/f3", "e3", 3);
    apply(s, m, 3);

    /* removing f1 removes d and c, not b */
    m[0] = del("z", "a/b/c/d/f1");
    apply(s, m, 1);
    assert_int_equal(zarr_store_get_dir(s, B, BL, "z", 1, "a/b/c", 5, &sum,
                                        NULL, &err), ZARR_ERR_NOTFOUND);
    assert_int_equal(zarr_store_get_dir(s, B, BL, "z", 1, "a/b", 3, &sum,
                                        NULL, &err), ZARR_OK);
    assert_int_equal(sum.count, 1);
    assert_int_equal(sum.size, 2);

    /* in one group: delete f2 then f3, everything goes */
    m[0] = del("z", "a/b/x/f2");
    m[1] = del("z", "a/f3");
    apply(s, m, 2);
    assert_int_equal(zarr_store_get_dir(s, B, BL, "z", 1, "a", 1, &sum,
                                        NULL, &err), ZARR_ERR_NOTFOUND);
    digest(s, "z", d);
    assert_string_equal(d, ZARR_EMPTY_DIGEST);
    assert_int_equal(zarr_store_stat(s, &st, &err), ZARR_OK);
    assert_int_equal(st.entries, 0);

    /* a group that adds and removes in the same directories */
    m[0] = put("z", "p/q/f", "e", 1);
    m[1] = del("z", "p/q/f");
    m[2] = put("z", "p/q/g", "e", 1);
    m[3] = del("z", "p/q/g");
    apply(s, m, 4);
    assert_int_equal(zarr_store_stat(s, &st, &err), ZARR_OK);
    assert_int_equal(st.entries, 0);
    digest(s, "z", d);
    assert_string_equal(d, ZARR_EMPTY_DIGEST);

    zarr_store_close(s);
    zarr_test_rmdir(dir);
    free(dir);
}


static void
test_reopen(void **state)
{
    char             *dir, d0[ZARR_DIGEST_MAX], d1[ZARR_DIGEST_MAX];
    zarr_store_t     *s, *r;
    zarr_err_t        err;
    zarr_mutation_t   m[2];

    (void) state;

    dir = zarr_test_tmpdir();

    /* a reader cannot open what does not exist */
    assert_int_not_equal(zarr_store_open(&r, dir, 0, ZARR_STORE_RDONLY,
                                         &err), ZARR_OK);

    s = open_store(dir, 16 << 20, 0);
    m[0] = put("z", "a/b", "9dd4e461268c8034f5c8564e155c67a6", 1);
    m[1] = put("z", "c", "415290769594460e2e485922904f345d", 1);
    apply(s, m, 2);

    /* a read-only opener beside the writer sees committed state */
    r = open_store(dir, 0, ZARR_STORE_RDONLY);
    digest(r, "z", d0);
    assert_string_equal(d0, "26054e501f570a8bfa69a2bc75e7c82d-2--2");
    zarr_store_close(r);
    zarr_store_close(s);

    /* dirty state survives the restart and is computed after it */
    s = open_store(dir, 16 << 20, 0);
    digest(s, "z", d1);
    assert_string_equal(d1, d0);
    assert_int_equal(zarr_store_flush(s, NULL, 0, NULL, 0, &err), ZARR_OK);
    zarr_store_close(s);

    r = open_store(dir, 0, ZARR_STORE_RDONLY);
    digest(r, "z", d1);
    assert_string_equal(d1, d0);
    zarr_store_close(r);

    zarr_test_rmdir(dir);
    free(dir);
}


static void
model_digest(char (*etags)[16], size_t n, const char *fmt,
    char *out)
{
    char             path[64];
    size_t           i;
    zarr_mtree_t    *t;
    zarr_err_t       err;
    zarr_dir_sum_t   sum;

    t = zarr_mtree_create();

    for (i = 0; i < n; i++) {
        if (etags[i][0]) {
            snprintf(path, sizeof(path), fmt, i % 7, i);
            assert_int_equal(zarr_mtree_add(t, path, strlen(path), i,
                             etags[i], strlen(etags[i]), i, &err), ZARR_OK);
        }
    }

    assert_int_equal(zarr_mtree_compute(t, NULL, NULL, &sum, &err), ZARR_OK);
    strcpy(out, sum.digest);
    zarr_mtree_free(t);
}


static void
test_two_processes(void **state)
{
    char             *dir, d[ZARR_DIGEST_MAX];
    char              want[ZARR_DIGEST_MAX];
    char              etags[1000][16];
    int               child, status;
    pid_t             pids[2];
    size_t            i, j;
    zarr_store_t     *s;
    zarr_mutation_t   m[10];

    (void) state;

    dir = zarr_test_tmpdir();
    s = open_store(dir, 64 << 20, 0);
    zarr_store_close(s);

    /* two writers, interleaved commits of 10 into the same zarr */

    for (child = 0; child < 2; child++) {
        pids[child] = fork();
        assert_true(pids[child] >= 0);

        if (pids[child] == 0) {
            zarr_err_t  err;
            size_t      bad;
            char        cpaths[10][64], ctags[10][16];


            if (zarr_store_open(&s, dir, 64 << 20, 0, &err) != ZARR_OK) {
                free(dir);
                _exit(10);
            }

            for (i = child; i < 1000; i += 20) {
                for (j = 0; j < 10; j++) {
                    snprintf(cpaths[j], sizeof(cpaths[j]), "d%zu/f%zu",
                             (i + 2 * j) % 7, i + 2 * j);
                    snprintf(ctags[j], sizeof(ctags[j]), "e%zu", i + 2 * j);
                    m[j] = put("z", cpaths[j], ctags[j], i + 2 * j);
                }

                if (zarr_store_apply(s, m, 10, &bad, &err) != ZARR_OK) {
                    free(dir);
                    _exit(11);
                }
            }

            zarr_store_close(s);
            free(dir);
            _exit(0);
        }
    }

    for (child = 0; child < 2; child++) {
        assert_int_equal(waitpid(pids[child], &status, 0), pids[child]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }

    for (i = 0; i < 1000; i++) {
        snprintf(etags[i], sizeof(etags[i]), "e%zu", i);
    }

    model_digest(etags, 1000, "d%zu/f%zu", want);

    s = open_store(dir, 64 << 20, 0);
    digest(s, "z", d);
    assert_string_equal(d, want);
    assert_true(strstr(d, "-1000--") != NULL);
    zarr_store_close(s);

    zarr_test_rmdir(dir);
    free(dir);
}


/*
 * Flushes beside writers: two processes write while this one flushes
 * again and again (a flush computes from a snapshot and writes back only
 * what did not change since).  Each writer fills directories in two
 * commits (f0-f4, then f5-f9 and f0 deleted) and never touches them
 * again: a directory written back with the digest of its first half would
 * stay wrong (clean directories are not recomputed), so the digest must
 * equal the model's, and after a last flush the stored one too.  Every
 * other round the flush takes a new snapshot every 7 entries (it does
 * every 4,096), finding its place again after deletes.
 */

#define FLUSH_BATCHES  400

static void
test_flush_beside_writers(void **state)
{
    char             *dir, p[64], e[16];
    char              want[ZARR_DIGEST_MAX], got[ZARR_DIGEST_MAX];
    int               child, status, running, rc;
    pid_t             pids[2];
    size_t            b, j, n, flushes;
    zarr_store_t     *s;
    zarr_err_t        err;
    zarr_mtree_t     *t;
    zarr_dir_sum_t    sum;

    (void) state;

    dir = zarr_test_tmpdir();
    s = open_store(dir, 64 << 20, ZARR_STORE_NOSYNC);
    zarr_store_close(s);

    for (child = 0; child < 2; child++) {
        pids[child] = fork();
        assert_true(pids[child] >= 0);

        if (pids[child] == 0) {
            zarr_store_t     *w;
            zarr_mutation_t   m[10];
            size_t            bad;
            char              paths[10][64], tags[10][16];

            rc = zarr_store_open(&w, dir, 64 << 20, ZARR_STORE_NOSYNC, &err);
            free(dir);

            if (rc != ZARR_OK) {
                _exit(10);
            }

            for (b = 0; b < FLUSH_BATCHES; b++) {
                for (j = 0; j < 10; j++) {
                    snprintf(paths[j], sizeof(paths[j]), "c%d/b%zu/f%zu",
                             child, b, j);
                    snprintf(tags[j], sizeof(tags[j]), "e%zu", b * 10 + j);
                    m[j] = put("z", paths[j], tags[j], j);
                }

                if (zarr_store_apply(w, m, 5, &bad, &err) != ZARR_OK) {
                    _exit(11);
                }

                m[0] = del("z", paths[0]);

                if (zarr_store_apply(w, m, 1, &bad, &err) != ZARR_OK
                    || zarr_store_apply(w, m + 5, 5, &bad, &err) != ZARR_OK)
                {
                    _exit(12);
                }
            }

            zarr_store_close(w);
            _exit(0);
        }
    }

    /* opened after the fork: the writers inherit nothing of it */
    s = open_store(dir, 64 << 20, ZARR_STORE_NOSYNC);

    flushes = 0;
    running = 2;

    while (running) {
        if (flushes % 2) {
            zarr_store_set_flush_renew(s, flushes % 4 == 1 ? 7 : 4096);
            assert_int_equal(zarr_store_flush(s, NULL, 0, NULL, 0, &err),
                             ZARR_OK);

        } else {
            /* the zarr may not be there yet */
            rc = zarr_store_sync_zarr(s, B, BL, "z", 1, &sum, &err);
            assert_true(rc == ZARR_OK || rc == ZARR_ERR_NOTFOUND);
        }

        flushes++;

        for (child = 0; child < 2; child++) {
            if (pids[child]
                && waitpid(pids[child], &status, WNOHANG) == pids[child])
            {
                assert_true(WIFEXITED(status));
                assert_int_equal(WEXITSTATUS(status), 0);
                pids[child] = 0;
                running--;
            }
        }
    }

    t = zarr_mtree_create();
    n = 0;

    for (child = 0; child < 2; child++) {
        for (b = 0; b < FLUSH_BATCHES; b++) {
            for (j = 1; j < 10; j++) {
                snprintf(p, sizeof(p), "c%d/b%zu/f%zu", child, b, j);
                snprintf(e, sizeof(e), "e%zu", b * 10 + j);
                assert_int_equal(zarr_mtree_add(t, p, strlen(p), j, e,
                                                strlen(e), n++, &err), 0);
            }
        }
    }

    assert_int_equal(zarr_mtree_compute(t, NULL, NULL, &sum, &err), 0);
    strcpy(want, sum.digest);
    zarr_mtree_free(t);

    digest(s, "z", got);
    assert_string_equal(got, want);

    /* synced: then the stored digest, no recomputation left */
    assert_int_equal(zarr_store_sync_zarr(s, B, BL, "z", 1, &sum, &err),
                     ZARR_OK);
    assert_string_equal(sum.digest, want);
    assert_int_equal(zarr_store_sync_zarr(s, B, BL, "z", 1, &sum, &err),
                     ZARR_OK);
    assert_string_equal(sum.digest, want);
    digest(s, "z", got);
    assert_string_equal(got, want);

    print_message("test_flush_beside_writers: %zu flushes\n", flushes);
    assert_true(flushes >= 4);

    zarr_store_close(s);
    zarr_test_rmdir(dir);
    free(dir);
}


static void
test_map_full(void **state)
{
    char              *dir, path[64], etag[16], d[ZARR_DIGEST_MAX];
    char               want[ZARR_DIGEST_MAX];
    char               (*etags)[16];
    size_t             i, j, bad, committed;
    int                rc;
    zarr_store_t      *s;
    zarr_err_t         err;
    zarr_mutation_t    m[100];
    char               paths[100][64], tags[100][16];

    (void) state;

    dir = zarr_test_tmpdir();
    s = open_store(dir, 1 << 20, 0);

    etags = calloc(100000, 16);
    committed = 0;
    rc = ZARR_OK;

    for (i = 0; i < 100000 && rc == ZARR_OK; i += 100) {
        for (j = 0; j < 100; j++) {
            snprintf(paths[j], sizeof(paths[j]), "d%zu/f%zu",
                     (i + j) % 7, i + j);
            snprintf(tags[j], sizeof(tags[j]), "e%zu", i + j);
            m[j] = put("z", paths[j], tags[j], i + j);
        }

        rc = zarr_store_apply(s, m, 100, &bad, &err);

        if (rc == ZARR_OK) {
            for (j = 0; j < 100; j++) {
                strcpy(etags[i + j], tags[j]);
            }

            committed = i + 100;
        }
    }

    assert_int_equal(rc, ZARR_ERR_FULL);
    assert_non_null(strstr(err.msg, "store is full"));
    assert_true(committed > 0);

    /* what was committed is intact and readable */
    model_digest(etags, committed, "d%zu/f%zu", want);
    digest(s, "z", d);
    assert_string_equal(d, want);
    zarr_store_close(s);

    /* and after a reopen with a larger map, writes go on */
    s = open_store(dir, 64 << 20, 0);
    digest(s, "z", d);
    assert_string_equal(d, want);
    snprintf(path, sizeof(path), "d%zu/f%zu", committed % 7, committed);
    snprintf(etag, sizeof(etag), "e%zu", committed);
    m[0] = put("z", path, etag, committed);
    apply(s, m, 1);
    strcpy(etags[committed], etag);
    model_digest(etags, committed + 1, "d%zu/f%zu", want);
    digest(s, "z", d);
    assert_string_equal(d, want);
    zarr_store_close(s);

    free(etags);
    zarr_test_rmdir(dir);
    free(dir);
}


static void
test_invalid_group(void **state)
{
    char              *dir, d[ZARR_DIGEST_MAX];
    size_t             bad;
    zarr_store_t      *s;
    zarr_err_t         err;
    zarr_dir_sum_t     sum;
    zarr_mutation_t    m[3];

    (void) state;

    dir = zarr_test_tmpdir();
    s = open_store(dir, 16 << 20, 0);

    m[0] = put("z", "ok", "e", 1);
    m[1] = put("z", "a//b", "e", 1);
    m[2] = put("z", "ok2", "e", 1);

    assert_int_equal(zarr_store_apply(s, m, 3, &bad, &err),
                     ZARR_ERR_INVALID);
    assert_int_equal(bad, 1);
    assert_non_null(strstr(err.msg, "empty path segment"));

    /* nothing of the group was applied */
    assert_int_equal(zarr_store_get_zarr(s, B, BL, "z", 1, &sum, &err),
                     ZARR_ERR_NOTFOUND);

    m[1] = put("z/x", "a", "e", 1);
    assert_int_equal(zarr_store_apply(s, m, 3, &bad, &err),
                     ZARR_ERR_INVALID);
    m[1] = put("z", "a/..", "e", 1);
    assert_int_equal(zarr_store_apply(s, m, 3, &bad, &err),
                     ZARR_ERR_INVALID);
    m[1] = put("z", "a/\xc3", "e", 1);
    assert_int_equal(zarr_store_apply(s, m, 3, &bad, &err),
                     ZARR_ERR_INVALID);

    assert_int_equal(zarr_store_create_zarr(s, B, BL, "z", 1, &err),
                     ZARR_OK);
    assert_int_equal(zarr_store_create_zarr(s, B, BL, "z", 1, &err),
                     ZARR_ERR_EXISTS);
    digest(s, "z", d);
    assert_string_equal(d, ZARR_EMPTY_DIGEST);

    zarr_store_close(s);
    zarr_test_rmdir(dir);
    free(dir);
}


/* random mutations, random groups and flushes, checked against a model */

#define NPATHS  300

static const char  *rnd_fmt[] = {
    "%zu/%zu", "a/%zu/x/%zu", "a/%zu/%zu", "%zu.%zu", "a/b/c/d/e/%zu/%zu",
};


static void
rnd_path(size_t i, char *out)
{
    /* mix of depths, names that are also directories, byte-order edges */
    snprintf(out, 64, rnd_fmt[i % 5], i % 4, i);
}


static void
test_random_model(void **state)
{
    char             *dir;
    char              paths[16][64], tags[16][16];
    char              etags[NPATHS][16];
    size_t            round, j, n, k;
    unsigned int      seed;
    zarr_store_t     *s;
    zarr_err_t        err;
    zarr_mutation_t   m[16];
    zarr_mtree_t     *t;
    zarr_dir_sum_t    sum, got;
    char              p[64];

    (void) state;

    seed = 12345;
    memset(etags, 0, sizeof(etags));

    dir = zarr_test_tmpdir();
    s = open_store(dir, 64 << 20, ZARR_STORE_NOSYNC);

    for (round = 0; round < 400; round++) {
        n = 1 + rand_r(&seed) % 16;

        for (j = 0; j < n; j++) {
            k = rand_r(&seed) % NPATHS;
            rnd_path(k, paths[j]);

            if (rand_r(&seed) % 3 == 0) {
                m[j] = del("z", paths[j]);
                etags[k][0] = '\0';

            } else {
                snprintf(tags[j], sizeof(tags[j]), "e%u", rand_r(&seed) % 5);
                m[j] = put("z", paths[j], tags[j], k);
                strcpy(etags[k], tags[j]);
            }
        }

        apply(s, m, n);

        if (rand_r(&seed) % 4 == 0) {
            assert_int_equal(zarr_store_flush(s, NULL, 0, NULL, 0, &err),
                             ZARR_OK);
        }

        t = zarr_mtree_create();

        for (k = 0; k < NPATHS; k++) {
            if (etags[k][0]) {
                rnd_path(k, p);
                assert_int_equal(zarr_mtree_add(t, p, strlen(p), k,
                                 etags[k], strlen(etags[k]), k, &err), 0);
            }
        }

        assert_int_equal(zarr_mtree_compute(t, NULL, NULL, &sum, &err), 0);
        zarr_mtree_free(t);

        if (zarr_store_get_zarr(s, B, BL, "z", 1, &got, &err) != ZARR_OK) {
            fail_msg("round %zu: %s", round, err.msg);
        }

        if (strcmp(got.digest, sum.digest) != 0) {
            fail_msg("round %zu: store %s, model %s", round, got.digest,
                     sum.digest);
        }
    }

    zarr_store_close(s);
    zarr_test_rmdir(dir);
    free(dir);
}


typedef struct {
    char      all[1024];
    uint64_t  total;
} files_t;


static int
files_cb(void *ctx, const char *path, size_t path_len, const char *etag,
    size_t etag_len, uint64_t size, const char *version, size_t version_len)
{
    files_t  *f = ctx;
    size_t    n;

    n = strlen(f->all);
    snprintf(f->all + n, sizeof(f->all) - n, "%.*s=%.*s%s%.*s;",
             (int) path_len, path, (int) etag_len, etag,
             version_len ? "@" : "", (int) version_len, version);
    f->total += size;

    return 0;
}


static void
test_files(void **state)
{
    char             *dir;
    zarr_store_t     *s;
    zarr_err_t        err;
    files_t           f;
    zarr_mutation_t   m[4];

    (void) state;

    dir = zarr_test_tmpdir();
    s = open_store(dir, 16 << 20, 0);

    m[0] = put("z", "b/c", "e1", 1);
    m[1] = put("z", "a", "e2", 2);
    m[2] = put("z", "b/a/x", "e3", 4);
    m[3] = put("y", "q", "e4", 8);
    m[1].version_id = "v.2";
    m[1].version_id_len = 3;
    apply(s, m, 4);

    memset(&f, 0, sizeof(f));
    assert_int_equal(zarr_store_files(s, B, BL, "z", 1, files_cb, &f, &err),
                     ZARR_OK);
    /* per directory: subdirectories first, then files, by name */
    assert_string_equal(f.all, "b/a/x=e3;b/c=e1;a=e2@v.2;");
    assert_int_equal(f.total, 7);
    assert_int_equal(zarr_store_files(s, B, BL, "none", 4, files_cb, &f,
                                      &err), ZARR_ERR_NOTFOUND);

    zarr_store_close(s);
    zarr_test_rmdir(dir);
    free(dir);
}


typedef struct {
    char  all[256];
    int   stop_after;
    int   n;
} zarrs_t;


static int
zarrs_cb(void *ctx, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, const zarr_dir_sum_t *sum)
{
    zarrs_t  *z = ctx;
    size_t    len;

    len = strlen(z->all);
    snprintf(z->all + len, sizeof(z->all) - len, "%.*s/%.*s=%llu;",
             (int) bucket_len, bucket, (int) zarr_id_len, zarr_id,
             (unsigned long long) sum->count);

    return ++z->n == z->stop_after;
}


static void
test_list_from(void **state)
{
    char             *dir;
    const char       *ids[] = { "a", "ab", "b", "c" };
    size_t            i;
    zarr_store_t     *s;
    zarr_err_t        err;
    zarrs_t           z;
    zarr_mutation_t   m;

    (void) state;

    dir = zarr_test_tmpdir();
    s = open_store(dir, 16 << 20, 0);

    /* zarrs in three buckets; "bb" sorts between "b" and "c" */
    for (i = 0; i < 4; i++) {
        assert_int_equal(zarr_store_create_zarr(s, "b", 1, ids[i],
                                                strlen(ids[i]), &err),
                         ZARR_OK);
        assert_int_equal(zarr_store_create_zarr(s, "bb", 2, ids[i],
                                                strlen(ids[i]), &err),
                         ZARR_OK);
    }

    assert_int_equal(zarr_store_create_zarr(s, "a", 1, "x", 1, &err),
                     ZARR_OK);
    m = put("ab", "f", "e1", 1);
    m.bucket = "b";
    m.bucket_len = 1;
    apply(s, &m, 1);

    memset(&z, 0, sizeof(z));
    assert_int_equal(zarr_store_list_from(s, "b", 1, NULL, 0, zarrs_cb, &z,
                                          &err), ZARR_OK);
    assert_string_equal(z.all, "b/a=0;b/ab=1;b/b=0;b/c=0;");

    /* after an id: strictly after it, whether or not it exists */
    memset(&z, 0, sizeof(z));
    assert_int_equal(zarr_store_list_from(s, "b", 1, "a", 1, zarrs_cb, &z,
                                          &err), ZARR_OK);
    assert_string_equal(z.all, "b/ab=1;b/b=0;b/c=0;");

    memset(&z, 0, sizeof(z));
    assert_int_equal(zarr_store_list_from(s, "bb", 2, "aa", 2, zarrs_cb,
                                          &z, &err), ZARR_OK);
    assert_string_equal(z.all, "bb/ab=0;bb/b=0;bb/c=0;");

    memset(&z, 0, sizeof(z));
    assert_int_equal(zarr_store_list_from(s, "b", 1, "c", 1, zarrs_cb, &z,
                                          &err), ZARR_OK);
    assert_string_equal(z.all, "");

    /* a bucket with no zarrs, and the callback stopping early */
    memset(&z, 0, sizeof(z));
    assert_int_equal(zarr_store_list_from(s, "ba", 2, NULL, 0, zarrs_cb, &z,
                                          &err), ZARR_OK);
    assert_string_equal(z.all, "");

    memset(&z, 0, sizeof(z));
    z.stop_after = 2;
    assert_int_equal(zarr_store_list_from(s, "bb", 2, NULL, 0, zarrs_cb, &z,
                                          &err), ZARR_OK);
    assert_string_equal(z.all, "bb/a=0;bb/ab=0;");

    /* everything, in bucket then id order */
    memset(&z, 0, sizeof(z));
    assert_int_equal(zarr_store_list(s, zarrs_cb, &z, &err), ZARR_OK);
    assert_string_equal(z.all, "a/x=0;b/a=0;b/ab=1;b/b=0;b/c=0;bb/a=0;"
                        "bb/ab=0;bb/b=0;bb/c=0;");

    zarr_store_close(s);
    zarr_test_rmdir(dir);
    free(dir);
}


/* kB of data.mdb's pages mapped in this process (its line in smaps) */

static long
map_rss_kb(void)
{
    int    in;
    long   kb, v;
    char   line[512];
    FILE  *f;

    f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);

    in = 0;
    kb = -1;

    while (fgets(line, sizeof(line), f)) {
        if (strchr(line, '-') && strchr(line, '/')
            && strstr(line, " r") != NULL)
        {
            in = strstr(line, "/data.mdb") != NULL;
            continue;
        }

        if (in && sscanf(line, "Rss: %ld kB", &v) == 1) {
            kb = v;
            in = 0;
        }
    }

    fclose(f);

    return kb;
}


/*
 * The map's pages that a recomputation maps in are dropped when it ends,
 * not every so many entries while it goes (each dropped page would be
 * faulted in again by the next one): after the digest of a zarr of
 * 70,000 dirty files (more than the 65,536 entries between drops of the
 * old rule), nothing of data.mdb stays mapped in the process once the
 * process maps more than the bound (0 here); under the bound (1 GiB)
 * they stay.
 */

#define TRIM_FILES  70000

static void
test_trim_after_recompute(void **state)
{
    char             *dir;
    char              (*paths)[32];
    size_t            i, j;
    long              first, second;
    zarr_store_t     *s;
    zarr_mutation_t   m[1000];
    char              d1[ZARR_DIGEST_MAX], d2[ZARR_DIGEST_MAX];

    (void) state;

    dir = zarr_test_tmpdir();
    s = open_store(dir, 64 << 20, ZARR_STORE_NOSYNC);
    paths = malloc(1000 * sizeof(*paths));
    assert_non_null(paths);

    for (i = 0; i < TRIM_FILES; i += 1000) {
        for (j = 0; j < 1000; j++) {
            snprintf(paths[j], sizeof(paths[j]), "d%zu/%zu", (i + j) % 10,
                     i + j);
            m[j] = put("z", paths[j], "0123456789abcdef0123456789abcdef",
                       64);
        }

        apply(s, m, 1000);
    }

    /* every directory is dirty: each call recomputes 70,000 entries */

    zarr_store_set_trim(s, 0);
    digest(s, "z", d1);
    first = map_rss_kb();
    digest(s, "z", d2);
    second = map_rss_kb();

    print_message("test_trim_after_recompute: data.mdb mapped after a "
                  "recomputation: %ld kB, %ld kB\n", first, second);

    assert_string_equal(d1, d2);
    assert_true(first >= 0 && first <= 16);
    assert_true(second >= 0 && second <= 16);

    /* below the bound: kept */

    zarr_store_set_trim(s, (size_t) 1 << 30);
    digest(s, "z", d2);
    first = map_rss_kb();

    print_message("test_trim_after_recompute: under a bound of 1 GiB: "
                  "%ld kB\n", first);

    assert_string_equal(d1, d2);
    assert_true(first > 1024);

    free(paths);
    zarr_store_close(s);
    zarr_test_rmdir(dir);
    free(dir);
}


/*
 * One flush at a time: a flush waits while another holds flush.lock (here
 * the test holds it), then does its work; a flush that finds nothing
 * dirty once it has the lock writes nothing.
 */

typedef struct {
    zarr_store_t     *s;
    zarr_dir_sum_t    sum;
    int               rc;
    int               done;
} flush_arg_t;


static void *
flush_thread(void *data)
{
    flush_arg_t *a = data;

    zarr_err_t  err;

    a->rc = zarr_store_sync_zarr(a->s, B, BL, "z", 1, &a->sum, &err);
    __atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);

    return NULL;
}


static void
test_flush_one_at_a_time(void **state)
{
    int               fd;
    char             *dir, path[512], want[ZARR_DIGEST_MAX];
    pthread_t         th;
    flush_arg_t       a;
    zarr_mutation_t   m[2];
    struct timespec   ts;

    (void) state;

    dir = zarr_test_tmpdir();
    a.s = open_store(dir, 64 << 20, ZARR_STORE_NOSYNC);
    a.done = 0;

    m[0] = put("z", "a/b", "e1", 1);
    m[1] = put("z", "c", "e2", 2);
    apply(a.s, m, 2);
    digest(a.s, "z", want);

    /* the store made its lock file; another holder of it */

    snprintf(path, sizeof(path), "%s/flush.lock", dir);
    fd = open(path, O_RDONLY);
    assert_true(fd != -1);
    assert_int_equal(flock(fd, LOCK_EX), 0);

    assert_int_equal(pthread_create(&th, NULL, flush_thread, &a), 0);

    /* a flush of two files takes well under a millisecond: it waits */

    ts.tv_sec = 0;
    ts.tv_nsec = 300 * 1000000;
    nanosleep(&ts, NULL);
    assert_int_equal(__atomic_load_n(&a.done, __ATOMIC_ACQUIRE), 0);

    close(fd);
    assert_int_equal(pthread_join(th, NULL), 0);

    assert_int_equal(a.done, 1);
    assert_int_equal(a.rc, ZARR_OK);
    assert_string_equal(a.sum.digest, want);

    /* flushed: a second one finds the digest stored */

    a.done = 0;
    flush_thread(&a);
    assert_int_equal(a.rc, ZARR_OK);
    assert_string_equal(a.sum.digest, want);

    zarr_store_close(a.s);
    zarr_test_rmdir(dir);
    free(dir);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_put_overwrite_delete),
        cmocka_unit_test(test_empty_directories),
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_two_processes),
        cmocka_unit_test(test_flush_beside_writers),
        cmocka_unit_test(test_map_full),
        cmocka_unit_test(test_invalid_group),
        cmocka_unit_test(test_random_model),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_list_from),
        cmocka_unit_test(test_trim_after_recompute),
        cmocka_unit_test(test_flush_one_at_a_time),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
