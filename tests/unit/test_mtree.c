
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


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_duplicate),
        cmocka_unit_test(test_bad_paths),
        cmocka_unit_test(test_file_and_dir_same_name),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
