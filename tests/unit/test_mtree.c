
/*
 * The in-memory tree (zarrctl checksum): every vector case, duplicates,
 * bad paths.
 */


#include "zarr_test.h"
#include "zarr_mtree.h"


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

    assert_true(dir_len < sizeof(key));
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
test_vectors(void **state)
{
    json_t          *v, *c, *f;
    size_t           i, j;
    zarr_mtree_t    *t;
    zarr_err_t       err;
    zarr_dir_sum_t   root;
    walk_ctx_t       w;

    (void) state;

    v = zarr_test_vectors();

    json_array_foreach(json_object_get(v, "cases"), i, c) {
        t = zarr_mtree_create();
        assert_non_null(t);

        json_array_foreach(json_object_get(c, "files"), j, f) {
            json_t  *p = json_object_get(f, "path");
            json_t  *e = json_object_get(f, "md5");

            assert_int_equal(zarr_mtree_add(t, json_string_value(p),
                             json_string_length(p),
                             json_integer_value(json_object_get(f, "size")),
                             json_string_value(e), json_string_length(e),
                             j + 1, &err), ZARR_OK);
        }

        memset(&w, 0, sizeof(walk_ctx_t));
        w.want = json_object_get(c, "directories");

        assert_int_equal(zarr_mtree_compute(t, walk_check, &w, &root, &err),
                         ZARR_OK);
        assert_int_equal(w.seen, json_object_size(w.want));
        assert_true(w.root_last);
        assert_string_equal(root.digest,
            json_string_value(json_object_get(c, "root_digest")));
        assert_int_equal(root.count,
            json_integer_value(json_object_get(c, "file_count")));
        assert_int_equal(root.size,
            json_integer_value(json_object_get(c, "total_size")));

        zarr_mtree_free(t);
    }

    json_decref(v);
}


static void
test_duplicate(void **state)
{
    zarr_mtree_t    *t;
    zarr_err_t       err;
    zarr_dir_sum_t   root;

    (void) state;

    t = zarr_mtree_create();
    assert_int_equal(zarr_mtree_add(t, "a/b", 3, 1, "e1", 2, 1, &err),
                     ZARR_OK);
    assert_int_equal(zarr_mtree_add(t, "c", 1, 1, "e2", 2, 2, &err),
                     ZARR_OK);
    assert_int_equal(zarr_mtree_add(t, "a/b", 3, 1, "e3", 2, 3, &err),
                     ZARR_OK);
    assert_int_equal(zarr_mtree_compute(t, NULL, NULL, &root, &err),
                     ZARR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "\"a/b\" is listed twice"));
    assert_non_null(strstr(err.msg, "lines 1 and 3"));
    zarr_mtree_free(t);
}


static void
test_bad_paths(void **state)
{
    zarr_mtree_t  *t;
    zarr_err_t     err;
    const char    *bad[] = { "", "/a", "a/", "a//b", "./a", "a/../b",
                             "a/\xff" };
    size_t         i;

    (void) state;

    t = zarr_mtree_create();

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(zarr_mtree_add(t, bad[i], strlen(bad[i]), 1, "e",
                                        1, i, &err), ZARR_ERR_INVALID);
        assert_non_null(strstr(err.msg, "path"));
    }

    /* an empty ETag is refused too */
    assert_int_equal(zarr_mtree_add(t, "x", 1, 1, "", 0, 1, &err),
                     ZARR_ERR_INVALID);

    zarr_mtree_free(t);
}


static void
test_file_and_dir_same_name(void **state)
{
    zarr_mtree_t    *t;
    zarr_err_t       err;
    zarr_dir_sum_t   a, b;

    (void) state;

    /* the same set in another order gives the same digest */

    t = zarr_mtree_create();
    assert_int_equal(zarr_mtree_add(t, "x", 1, 1, "e1", 2, 1, &err), 0);
    assert_int_equal(zarr_mtree_add(t, "x/y", 3, 2, "e2", 2, 2, &err), 0);
    assert_int_equal(zarr_mtree_compute(t, NULL, NULL, &a, &err), ZARR_OK);
    zarr_mtree_free(t);

    t = zarr_mtree_create();
    assert_int_equal(zarr_mtree_add(t, "x/y", 3, 2, "e2", 2, 1, &err), 0);
    assert_int_equal(zarr_mtree_add(t, "x", 1, 1, "e1", 2, 2, &err), 0);
    assert_int_equal(zarr_mtree_compute(t, NULL, NULL, &b, &err), ZARR_OK);
    zarr_mtree_free(t);

    assert_string_equal(a.digest, b.digest);
    assert_int_equal(a.count, 2);
    assert_int_equal(a.size, 3);
}


/*
 * The threaded computation (zarr_mtree_threads) against one thread: a
 * tree of 20,000 files in random order, names that need escaping, some
 * files beside directories of the same name.
 */

#define BIG_FILES  20000

typedef struct {
    zarr_buf_t   out;          /* every directory reported, in order */
    size_t       calls;
    size_t       stop_at;      /* 0: never stop */
} record_ctx_t;


static int
record(void *data, const char *dir, size_t dir_len,
    const zarr_dir_sum_t *sum)
{
    record_ctx_t  *c = data;

    assert_int_equal(zarr_buf_add(&c->out, dir, dir_len), 0);
    assert_int_equal(zarr_buf_add(&c->out, "\t", 1), 0);
    assert_int_equal(zarr_buf_add_str(&c->out, sum->digest), 0);
    assert_int_equal(zarr_buf_add(&c->out, "\n", 1), 0);

    return ++c->calls == c->stop_at;
}


static uint64_t
big_rand(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;

    return *s >> 33;
}


/* file i of the big tree: a path and an ETag in path (NUL-terminated) */

static void
big_file(uint64_t i, char *path, size_t size, char *etag)
{
    static const char  *names[] = { "a", "b", "0", "10", "9", ".zarray",
                                    "x", "\xc3\xa9", "\xf0\x9f\x98\x80",
                                    "q\"uote", "t\tab", "A", "long-name-1" };
    uint64_t            s, depth, k;
    size_t              n;

    s = i * 0x9e3779b97f4a7c15ULL + 1;
    depth = big_rand(&s) % 4;
    n = 0;

    for (k = 0; k < depth; k++) {
        n += snprintf(path + n, size - n, "%s/",
                      names[big_rand(&s) % (sizeof(names) / sizeof(names[0]))]);
    }

    /* unique per i: a number, or a name and a number */

    if (big_rand(&s) % 3) {
        snprintf(path + n, size - n, "%llu", (unsigned long long) i);

    } else {
        snprintf(path + n, size - n, "%s-%llu", names[big_rand(&s) % 6],
                 (unsigned long long) i);
    }

    snprintf(etag, 40, "%016llx%016llx", (unsigned long long) s,
             (unsigned long long) i);
}


/* the big tree, files in a shuffled order; dup: file j again at the end */

static zarr_mtree_t *
big_tree(int threads, int64_t dup1, int64_t dup2)
{
    char           path[256], etag[40];
    uint64_t       i, *order, s, j, tmp;
    zarr_err_t     err;
    zarr_mtree_t  *t;

    t = zarr_mtree_create();
    assert_non_null(t);
    zarr_mtree_threads(t, threads);

    order = malloc(BIG_FILES * sizeof(uint64_t));
    assert_non_null(order);

    for (i = 0; i < BIG_FILES; i++) {
        order[i] = i;
    }

    s = 42;

    for (i = BIG_FILES - 1; i > 0; i--) {
        j = big_rand(&s) % (i + 1);
        tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }

    for (i = 0; i < BIG_FILES; i++) {
        big_file(order[i], path, sizeof(path), etag);
        assert_int_equal(zarr_mtree_add(t, path, strlen(path), order[i],
                                        etag, strlen(etag), i + 1, &err),
                         ZARR_OK);
    }

    if (dup1 >= 0) {
        big_file(dup1, path, sizeof(path), etag);
        assert_int_equal(zarr_mtree_add(t, path, strlen(path), 1, etag,
                                        strlen(etag), BIG_FILES + 1, &err),
                         ZARR_OK);
    }

    if (dup2 >= 0) {
        big_file(dup2, path, sizeof(path), etag);
        assert_int_equal(zarr_mtree_add(t, path, strlen(path), 1, etag,
                                        strlen(etag), BIG_FILES + 2, &err),
                         ZARR_OK);
    }

    free(order);

    return t;
}


static int
big_run(int threads, int64_t dup1, int64_t dup2, size_t stop_at,
    record_ctx_t *c, zarr_dir_sum_t *root, zarr_err_t *err)
{
    int            rc;
    zarr_mtree_t  *t;

    memset(c, 0, sizeof(record_ctx_t));
    zarr_buf_init(&c->out);
    c->stop_at = stop_at;

    t = big_tree(threads, dup1, dup2);
    memset(err, 0, sizeof(zarr_err_t));
    rc = zarr_mtree_compute(t, record, c, root, err);
    zarr_mtree_free(t);

    return rc;
}


static void
test_threads_same_walk(void **state)
{
    int             threads;
    zarr_err_t      err;
    record_ctx_t    one, many;
    zarr_dir_sum_t  a, b;

    (void) state;

    assert_int_equal(big_run(1, -1, -1, 0, &one, &a, &err), ZARR_OK);
    assert_int_equal(a.count, BIG_FILES);
    assert_true(one.calls > 100);

    for (threads = 2; threads <= 5; threads++) {
        assert_int_equal(big_run(threads, -1, -1, 0, &many, &b, &err),
                         ZARR_OK);
        assert_string_equal(a.digest, b.digest);
        assert_int_equal(one.calls, many.calls);
        assert_int_equal(one.out.len, many.out.len);
        assert_memory_equal(one.out.data, many.out.data, one.out.len);
        zarr_buf_free(&many.out);
    }

    /* without a callback too */

    {
        zarr_mtree_t  *t = big_tree(2, -1, -1);

        assert_int_equal(zarr_mtree_compute(t, NULL, NULL, &b, &err),
                         ZARR_OK);
        assert_string_equal(a.digest, b.digest);

        /* and again, on the same tree */
        assert_int_equal(zarr_mtree_compute(t, NULL, NULL, &b, &err),
                         ZARR_OK);
        assert_string_equal(a.digest, b.digest);
        zarr_mtree_free(t);
    }

    zarr_buf_free(&one.out);
}


/* the first error of the one-thread walk, whichever thread meets it */

static void
test_threads_same_errors(void **state)
{
    int            rc1, rc2;
    size_t         i;
    zarr_err_t     e1, e2;
    record_ctx_t   one, many;
    zarr_dir_sum_t root;
    const int64_t  dups[][2] = { { 5, -1 }, { 19999, 3 }, { 3, 19999 },
                                 { 100, 7000 }, { 12345, 54 } };

    (void) state;

    for (i = 0; i < sizeof(dups) / sizeof(dups[0]); i++) {
        rc1 = big_run(1, dups[i][0], dups[i][1], 0, &one, &root, &e1);
        rc2 = big_run(2, dups[i][0], dups[i][1], 0, &many, &root, &e2);

        assert_int_equal(rc1, ZARR_ERR_INVALID);
        assert_int_equal(rc2, ZARR_ERR_INVALID);
        assert_non_null(strstr(e1.msg, "is listed twice"));
        assert_string_equal(e1.msg, e2.msg);

        /* the same directories reported before the error */
        assert_int_equal(one.out.len, many.out.len);
        assert_memory_equal(one.out.data, many.out.data, one.out.len);

        zarr_buf_free(&one.out);
        zarr_buf_free(&many.out);
    }

    /* the callback stops the walk: at the same place */

    for (i = 1; i < 2000; i = i * 3 + 1) {
        rc1 = big_run(1, -1, -1, i, &one, &root, &e1);
        rc2 = big_run(3, -1, -1, i, &many, &root, &e2);

        assert_int_equal(rc1, ZARR_ERR_INVALID);
        assert_int_equal(rc2, ZARR_ERR_INVALID);
        assert_string_equal(e1.msg, e2.msg);
        assert_int_equal(one.calls, i);
        assert_int_equal(many.calls, i);
        assert_memory_equal(one.out.data, many.out.data, one.out.len);

        zarr_buf_free(&one.out);
        zarr_buf_free(&many.out);
    }
}


/* zarr_mtree_add_ref: the same digests; an ETag anywhere in memory */

static void
test_add_ref(void **state)
{
    char            line[64];
    zarr_err_t      err;
    zarr_mtree_t   *t1, *t2;
    zarr_dir_sum_t  a, b;
    static char     far_etag[] = "0123456789abcdef0123456789abcdef";

    (void) state;

    t1 = zarr_mtree_create();
    t2 = zarr_mtree_create();
    assert_non_null(t1);
    assert_non_null(t2);

    /* path and ETag in one line, as zarrctl's listing has them */

    snprintf(line, sizeof(line), "d/e/f.txt\t12\t\"%s\"", far_etag);

    assert_int_equal(zarr_mtree_add_ref(t1, line, 9, 12, line + 14, 32, 1,
                                        &err), ZARR_OK);
    assert_int_equal(zarr_mtree_add_ref(t1, "d/g", 3, 5, far_etag, 32, 2,
                                        &err), ZARR_OK);
    assert_int_equal(zarr_mtree_add_ref(t1, "d/e/\xc3\xa9", 6, 7,
                                        "\"x\"", 3, 3, &err), ZARR_OK);
    assert_int_equal(zarr_mtree_add_ref(t1, "d/e", 3, 7, "x", 1, 4, &err),
                     ZARR_OK);

    assert_int_equal(zarr_mtree_add(t2, "d/e/f.txt", 9, 12, far_etag, 32, 1,
                                    &err), ZARR_OK);
    assert_int_equal(zarr_mtree_add(t2, "d/g", 3, 5, far_etag, 32, 2, &err),
                     ZARR_OK);
    assert_int_equal(zarr_mtree_add(t2, "d/e/\xc3\xa9", 6, 7, "\"x\"", 3,
                                    3, &err), ZARR_OK);
    assert_int_equal(zarr_mtree_add(t2, "d/e", 3, 7, "x", 1, 4, &err),
                     ZARR_OK);

    assert_int_equal(zarr_mtree_compute(t1, NULL, NULL, &a, &err), ZARR_OK);
    assert_int_equal(zarr_mtree_compute(t2, NULL, NULL, &b, &err), ZARR_OK);
    assert_string_equal(a.digest, b.digest);
    assert_int_equal(a.count, 4);
    assert_int_equal(a.size, 12 + 5 + 7 + 7);

    zarr_mtree_free(t1);
    zarr_mtree_free(t2);
}


/*
 * zarr_mtree_add_tsv(): a listing of more than 1 MiB read by two threads,
 * against the files added one by one; a bad line anywhere is found by
 * its number, the first of two.
 */

#define TSV_FILES  40000

static void
test_add_tsv(void **state)
{
    char            path[256], etag[40], *data, *p;
    size_t          len, cap, i, bad_at[] = { 1, 17, TSV_FILES / 2 - 1,
                                              TSV_FILES / 2,
                                              TSV_FILES / 2 + 1,
                                              TSV_FILES - 1, TSV_FILES };
    uint64_t        line;
    zarr_err_t      err;
    zarr_mtree_t   *t1, *t2;
    zarr_dir_sum_t  a, b;

    (void) state;

    cap = TSV_FILES * 128;
    data = malloc(cap);
    assert_non_null(data);

    t1 = zarr_mtree_create();
    assert_non_null(t1);

    /* blank lines, CRLF, quotes; no LF at the end */

    len = 0;

    for (i = 0; i < TSV_FILES; i++) {
        big_file(i, path, sizeof(path), etag);

        if (strchr(path, '\t') != NULL) {
            path[strcspn(path, "\t")] = '_';
        }

        len += snprintf(data + len, cap - len, "%s%s\t%zu\t%s%s%s%s",
                        i % 1000 == 5 ? "\n" : "", path, i,
                        i % 3 ? "" : "\"", etag, i % 3 ? "" : "\"",
                        i == TSV_FILES - 1 ? "" : i % 7 ? "\n" : "\r\n");

        assert_int_equal(zarr_mtree_add(t1, path, strlen(path), i, etag,
                                        strlen(etag), i + 1, &err),
                         ZARR_OK);
    }

    assert_true(len > 1024 * 1024);
    assert_int_equal(zarr_mtree_compute(t1, NULL, NULL, &a, &err), ZARR_OK);
    zarr_mtree_free(t1);

    t2 = zarr_mtree_create();
    zarr_mtree_threads(t2, 2);
    assert_int_equal(zarr_mtree_add_tsv(t2, data, len, &line, &err),
                     ZARR_OK);
    assert_int_equal(zarr_mtree_compute(t2, NULL, NULL, &b, &err), ZARR_OK);
    assert_string_equal(a.digest, b.digest);
    assert_int_equal(b.count, TSV_FILES);
    zarr_mtree_free(t2);

    /* a line without TABs inserted as line bad_at[i] */

    for (i = 0; i < sizeof(bad_at) / sizeof(bad_at[0]); i++) {
        size_t   n, k, off;
        char    *copy;

        copy = malloc(len + 2);
        assert_non_null(copy);

        /* the offset of line bad_at[i], counting lines as they are */

        n = 1;
        off = 0;

        for (k = 0; k < len && n < bad_at[i]; k++) {
            if (data[k] == '\n') {
                n++;
                off = k + 1;
            }
        }

        memcpy(copy, data, off);
        memcpy(copy + off, "x\n", 2);
        memcpy(copy + off + 2, data + off, len - off);

        for (k = 1; k <= 2; k++) {
            t2 = zarr_mtree_create();
            zarr_mtree_threads(t2, (int) k);
            assert_int_equal(zarr_mtree_add_tsv(t2, copy, len + 2, &line,
                                                &err),
                             ZARR_ERR_INVALID);
            assert_int_equal(line, bad_at[i]);
            assert_string_equal(err.msg, "expected PATH<TAB>SIZE<TAB>ETAG");
            zarr_mtree_free(t2);
        }

        /* and a bad path further on: still the first */

        p = memchr(copy + off + 2 + (len - off) / 2, '\n',
                   len - off - (len - off) / 2);

        if (p != NULL && p[1] != '\n' && p[1] != '\r') {
            p[1] = '/';
            t2 = zarr_mtree_create();
            zarr_mtree_threads(t2, 2);
            assert_int_equal(zarr_mtree_add_tsv(t2, copy, len + 2, &line,
                                                &err),
                             ZARR_ERR_INVALID);
            assert_int_equal(line, bad_at[i]);
            zarr_mtree_free(t2);
        }

        free(copy);
    }

    free(data);
}


/* line numbers past 32 bits in the duplicate message */

static void
test_duplicate_long_lines(void **state)
{
    zarr_mtree_t    *t;
    zarr_err_t       err;
    zarr_dir_sum_t   root;

    (void) state;

    t = zarr_mtree_create();
    assert_int_equal(zarr_mtree_add(t, "a/b", 3, 1, "e1", 2, 5000000000ULL,
                                    &err), ZARR_OK);
    assert_int_equal(zarr_mtree_add(t, "a/b", 3, 1, "e2", 2, 7, &err),
                     ZARR_OK);
    assert_int_equal(zarr_mtree_compute(t, NULL, NULL, &root, &err),
                     ZARR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "lines 7 and 5000000000"));
    zarr_mtree_free(t);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_duplicate),
        cmocka_unit_test(test_bad_paths),
        cmocka_unit_test(test_file_and_dir_same_name),
        cmocka_unit_test(test_threads_same_walk),
        cmocka_unit_test(test_threads_same_errors),
        cmocka_unit_test(test_add_ref),
        cmocka_unit_test(test_add_tsv),
        cmocka_unit_test(test_duplicate_long_lines),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
