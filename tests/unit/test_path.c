
/*
 * Key rules: splitting keys into zarr id and path, rejecting bad paths.
 */


#include "zarr_test.h"
#include "zarr_path.h"


static int
split(const char *key, const char *prefix, zarr_key_t *k)
{
    return zarr_key_split(key, strlen(key), prefix, strlen(prefix), k);
}


static void
test_split_ok(void **state)
{
    zarr_key_t  k;

    (void) state;

    assert_int_equal(split("zarr/abc/a/b/0.0", "zarr/", &k), ZARR_PATH_OK);
    assert_int_equal(k.zarr_id_len, 3);
    assert_memory_equal(k.zarr_id, "abc", 3);
    assert_int_equal(k.path_len, 7);
    assert_memory_equal(k.path, "a/b/0.0", 7);

    assert_int_equal(split("zarr/abc/.zgroup", "zarr/", &k), ZARR_PATH_OK);
    assert_int_equal(k.path_len, 7);

    /* an empty prefix: the first component is the zarr id */
    assert_int_equal(split("id/x", "", &k), ZARR_PATH_OK);
    assert_memory_equal(k.zarr_id, "id", 2);
    assert_memory_equal(k.path, "x", 1);

    /* a prefix without a trailing slash is a plain byte prefix */
    assert_int_equal(split("zarr-abc/x", "zarr-", &k), ZARR_PATH_OK);
    assert_memory_equal(k.zarr_id, "abc", 3);

    /* names that only look special */
    assert_int_equal(split("zarr/i/...", "zarr/", &k), ZARR_PATH_OK);
    assert_int_equal(split("zarr/i/.a/..b", "zarr/", &k), ZARR_PATH_OK);
    assert_int_equal(split("zarr/i/\xc3\xa9 t", "zarr/", &k), ZARR_PATH_OK);
}


static void
test_not_zarr(void **state)
{
    zarr_key_t  k;

    (void) state;

    assert_int_equal(split("other/abc/x", "zarr/", &k), ZARR_PATH_NOT_ZARR);
    assert_int_equal(split("zarr/abc", "zarr/", &k), ZARR_PATH_NOT_ZARR);
    assert_int_equal(split("zarr/", "zarr/", &k), ZARR_PATH_NOT_ZARR);
    assert_int_equal(split("zar", "zarr/", &k), ZARR_PATH_NOT_ZARR);
    assert_int_equal(split("zarr-checksums/abc/.checksum", "zarr/", &k),
                     ZARR_PATH_NOT_ZARR);
}


static void
test_split_bad(void **state)
{
    zarr_key_t  k;
    char        longname[600];

    (void) state;

    assert_int_equal(split("zarr//x", "zarr/", &k), ZARR_PATH_EMPTY_SEGMENT);
    assert_int_equal(k.error_offset, 5);
    assert_int_equal(split("zarr/a//x", "zarr/", &k),
                     ZARR_PATH_EMPTY_SEGMENT);
    assert_int_equal(k.error_offset, 7);
    assert_int_equal(split("zarr/a/x/", "zarr/", &k),
                     ZARR_PATH_TRAILING_SLASH);
    assert_int_equal(split("zarr/a/", "zarr/", &k), ZARR_PATH_TRAILING_SLASH);
    assert_int_equal(split("zarr/a/./x", "zarr/", &k),
                     ZARR_PATH_DOT_SEGMENT);
    assert_int_equal(split("zarr/a/x/..", "zarr/", &k),
                     ZARR_PATH_DOTDOT_SEGMENT);
    assert_int_equal(split("zarr/../x", "zarr/", &k),
                     ZARR_PATH_DOTDOT_SEGMENT);
    assert_int_equal(split("zarr/./x", "zarr/", &k), ZARR_PATH_DOT_SEGMENT);
    assert_int_equal(split("zarr/a/\xff", "zarr/", &k), ZARR_PATH_BAD_UTF8);
    assert_int_equal(k.error_offset, 7);
    assert_int_equal(zarr_key_split("zarr/a/x\0y", 10, "zarr/", 5, &k),
                     ZARR_PATH_NUL);

    memset(longname, 'n', sizeof(longname));
    memcpy(longname, "zarr/a/", 7);
    longname[7 + ZARR_NAME_MAX + 1] = '\0';
    assert_int_equal(split(longname, "zarr/", &k), ZARR_PATH_TOO_LONG);
    longname[7 + ZARR_NAME_MAX] = '\0';
    assert_int_equal(split(longname, "zarr/", &k), ZARR_PATH_OK);

    /* the zarr id: at most ZARR_ID_MAX bytes, the store's limit */
    memset(longname, 'i', sizeof(longname));
    memcpy(longname, "zarr/", 5);
    memcpy(longname + 5 + ZARR_ID_MAX, "/x", 3);
    assert_int_equal(split(longname, "zarr/", &k), ZARR_PATH_OK);
    assert_int_equal(k.zarr_id_len, ZARR_ID_MAX);
    memcpy(longname + 5 + ZARR_ID_MAX, "i/x", 4);
    assert_int_equal(split(longname, "zarr/", &k), ZARR_PATH_ID_TOO_LONG);
    assert_int_equal(k.error_offset, 5 + ZARR_ID_MAX);
    /* a longer segment still says so first */
    memset(longname, 'i', sizeof(longname));
    memcpy(longname, "zarr/", 5);
    memcpy(longname + 5 + ZARR_NAME_MAX + 1, "/x", 3);
    assert_int_equal(split(longname, "zarr/", &k), ZARR_PATH_TOO_LONG);
    /* "zarr/<long id>" alone is still no member */
    longname[5 + ZARR_NAME_MAX + 1] = '\0';
    assert_int_equal(split(longname, "zarr/", &k), ZARR_PATH_NOT_ZARR);
}


static void
test_messages(void **state)
{
    int  rc;

    (void) state;

    for (rc = ZARR_PATH_OK; rc <= ZARR_PATH_ID_TOO_LONG; rc++) {
        assert_non_null(zarr_path_strerror(rc));
        assert_null(strstr(zarr_path_strerror(rc), "unknown"));
    }

    assert_non_null(strstr(zarr_path_strerror(ZARR_PATH_DOTDOT_SEGMENT),
                           "\"..\""));
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_ok),
        cmocka_unit_test(test_not_zarr),
        cmocka_unit_test(test_split_bad),
        cmocka_unit_test(test_messages),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
