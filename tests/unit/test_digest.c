
/*
 * Manifests and digests: the vectors' manifest_cases, order rules, the
 * .checksum document.
 */


#include "zarr_test.h"
#include "zarr_digest.h"


static size_t
entries(json_t *list, zarr_entry_t *e)
{
    size_t   i;
    json_t  *x;

    json_array_foreach(list, i, x) {
        e[i].name = json_string_value(json_object_get(x, "name"));
        e[i].name_len = json_string_length(json_object_get(x, "name"));
        e[i].digest = json_string_value(json_object_get(x, "digest"));
        e[i].digest_len = json_string_length(json_object_get(x, "digest"));
        e[i].size = json_integer_value(json_object_get(x, "size"));
    }

    return json_array_size(list);
}


static void
test_manifest_cases(void **state)
{
    json_t          *v, *cases, *c;
    size_t           i, nd, nf;
    zarr_entry_t     dirs[16], files[16];
    zarr_buf_t       manifest;
    zarr_dir_sum_t   sum;
    const char      *want;

    (void) state;

    v = zarr_test_vectors();
    cases = json_object_get(v, "manifest_cases");
    assert_true(json_array_size(cases) >= 10);

    json_array_foreach(cases, i, c) {
        assert_true(json_array_size(json_object_get(c, "directories")) <= 16);
        assert_true(json_array_size(json_object_get(c, "files")) <= 16);

        nd = entries(json_object_get(c, "directories"), dirs);
        nf = entries(json_object_get(c, "files"), files);

        zarr_buf_init(&manifest);

        assert_int_equal(zarr_manifest_build(dirs, nd, files, nf, &sum,
                                             &manifest), ZARR_OK);

        want = json_string_value(json_object_get(c, "hashed_json"));
        assert_int_equal(manifest.len, strlen(want));
        assert_memory_equal(manifest.data, want, manifest.len);
        assert_string_equal(sum.digest,
            json_string_value(json_object_get(c, "expected_digest")));

        zarr_buf_free(&manifest);
    }

    json_decref(v);
}


static void
test_empty(void **state)
{
    zarr_manifest_t  m;
    zarr_dir_sum_t   sum;

    (void) state;

    assert_int_equal(zarr_manifest_init(&m, 1), ZARR_OK);
    assert_int_equal(zarr_manifest_finish(&m, &sum), ZARR_OK);
    assert_string_equal(sum.digest, ZARR_EMPTY_DIGEST);
    assert_int_equal(m.buf.len, strlen("{\"directories\":[],\"files\":[]}"));
    assert_memory_equal(m.buf.data, "{\"directories\":[],\"files\":[]}",
                        m.buf.len);
    assert_int_equal(sum.count, 0);
    assert_int_equal(sum.size, 0);
    zarr_manifest_free(&m);
}


static void
test_order_enforced(void **state)
{
    zarr_manifest_t  m;

    (void) state;

    assert_int_equal(zarr_manifest_init(&m, 0), ZARR_OK);
    assert_int_equal(zarr_manifest_add_file(&m, "b", 1, "e", 1, 1),
                     ZARR_OK);
    /* a file out of order, a duplicate, a directory after files */
    assert_int_equal(zarr_manifest_add_file(&m, "a", 1, "e", 1, 1),
                     ZARR_ERR_INVALID);
    assert_int_equal(zarr_manifest_add_file(&m, "b", 1, "e", 1, 1),
                     ZARR_ERR_INVALID);
    assert_int_equal(zarr_manifest_add_dir(&m, "c", 1, ZARR_EMPTY_DIGEST,
                                           0, 0), ZARR_ERR_INVALID);
    /* bad UTF-8 in a name */
    assert_int_equal(zarr_manifest_add_file(&m, "c\xff", 2, "e", 1, 1),
                     ZARR_ERR_INVALID);
    zarr_manifest_free(&m);
}


static void
test_byte_order(void **state)
{
    (void) state;

    /* shorter first, then bytes unsigned: '.' < '/' < 'A' < 'a' < 0xc3 */
    assert_true(zarr_name_cmp("a", 1, "ab", 2) < 0);
    assert_true(zarr_name_cmp("A", 1, "a", 1) < 0);
    assert_true(zarr_name_cmp("z", 1, "\xc3\xa9", 2) < 0);
    assert_true(zarr_name_cmp(".zarray", 7, "0", 1) < 0);
    assert_true(zarr_name_cmp("10", 2, "9", 1) < 0);
    assert_int_equal(zarr_name_cmp("x", 1, "x", 1), 0);
}


static void
test_sizes_64bit(void **state)
{
    zarr_manifest_t  m;
    zarr_dir_sum_t   sum;

    (void) state;

    assert_int_equal(zarr_manifest_init(&m, 1), ZARR_OK);
    assert_int_equal(zarr_manifest_add_file(&m, "a", 1,
                     "d41d8cd98f00b204e9800998ecf8427e", 32,
                     5497558138880ULL), ZARR_OK);
    assert_int_equal(zarr_manifest_add_file(&m, "b", 1,
                     "59001af1038981bbdd269feb61e11b79-2", 34,
                     4294967297ULL), ZARR_OK);
    assert_int_equal(zarr_manifest_finish(&m, &sum), ZARR_OK);
    assert_int_equal(sum.size, 5497558138880ULL + 4294967297ULL);
    assert_non_null(strstr(sum.digest, "-2--5501853106177"));
    assert_non_null(strstr(m.buf.data, "\"size\":5497558138880}"));
    zarr_manifest_free(&m);
}


static void
test_digest_count(void **state)
{
    uint64_t  n;

    (void) state;

    assert_int_equal(zarr_digest_count(ZARR_EMPTY_DIGEST,
                     strlen(ZARR_EMPTY_DIGEST), &n), ZARR_OK);
    assert_int_equal(n, 0);
    assert_int_equal(zarr_digest_count(
                     "26054e501f570a8bfa69a2bc75e7c82d-12--2", 38, &n),
                     ZARR_OK);
    assert_int_equal(n, 12);
    assert_int_equal(zarr_digest_count("26054e501f570a8bfa69a2bc75e7c82d",
                     32, &n), ZARR_ERR_INVALID);
    assert_int_equal(zarr_digest_count(
                     "26054e501f570a8bfa69a2bc75e7c82d-x--2", 37, &n),
                     ZARR_ERR_INVALID);
}


static void
test_checksum_document(void **state)
{
    zarr_buf_t      doc;
    zarr_dir_sum_t  sum;
    const char     *manifest = "{\"directories\":[],\"files\":[]}";
    const char     *want = "{\"checksums\":{\"directories\":[],\"files\":[]},"
                           "\"digest\":\"481a2f77ab786a0f45aafd5db0971caa"
                           "-0--0\",\"size\":0}";

    (void) state;

    strcpy(sum.digest, ZARR_EMPTY_DIGEST);
    sum.count = 0;
    sum.size = 0;

    zarr_buf_init(&doc);
    assert_int_equal(zarr_checksum_document(&doc, manifest, strlen(manifest),
                                            &sum), ZARR_OK);
    assert_int_equal(doc.len, strlen(want));
    assert_memory_equal(doc.data, want, doc.len);
    zarr_buf_free(&doc);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_cases),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_order_enforced),
        cmocka_unit_test(test_byte_order),
        cmocka_unit_test(test_sizes_64bit),
        cmocka_unit_test(test_digest_count),
        cmocka_unit_test(test_checksum_document),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
