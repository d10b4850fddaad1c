
/*
 * JSON string escaping as Python's json.dumps(ensure_ascii=True).
 */


#include "zarr_test.h"
#include "zarr_json.h"


static void
check(const char *in, size_t len, const char *want)
{
    zarr_buf_t  b;

    zarr_buf_init(&b);
    assert_int_equal(zarr_json_add_string(&b, in, len), 0);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    zarr_buf_free(&b);
}


static void
test_ascii(void **state)
{
    (void) state;

    check("", 0, "\"\"");
    check("abc", 3, "\"abc\"");
    check("a/b <&'>", 8, "\"a/b <&'>\"");
    check("~ }", 3, "\"~ }\"");
}


static void
test_escapes(void **state)
{
    (void) state;

    check("\"", 1, "\"\\\"\"");
    check("\\", 1, "\"\\\\\"");
    check("\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"");
    check("\x01\x1f", 2, "\"\\u0001\\u001f\"");
    check("\x7f", 1, "\"\\u007f\"");
    check("a\0b", 3, "\"a\\u0000b\"");
}


static void
test_unicode(void **state)
{
    (void) state;

    /* e acute, 2 bytes */
    check("\xc3\xa9", 2, "\"\\u00e9\"");
    /* euro sign, 3 bytes, lowercase hex */
    check("\xe2\x82\xac", 3, "\"\\u20ac\"");
    /* U+FFFF */
    check("\xef\xbf\xbf", 3, "\"\\uffff\"");
    /* U+1F600 as a surrogate pair */
    check("\xf0\x9f\x98\x80", 4, "\"\\ud83d\\ude00\"");
    /* U+10FFFF */
    check("\xf4\x8f\xbf\xbf", 4, "\"\\udbff\\udfff\"");
}


static void
test_invalid_utf8(void **state)
{
    zarr_buf_t   b;
    const char  *bad[] = {
        "\xff", "\xc3", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80",
        "\xf4\x90\x80\x80", "\x80", "a\xc3(",
    };
    size_t       i;

    (void) state;

    zarr_buf_init(&b);
    zarr_buf_add(&b, "x", 1);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(zarr_json_add_string(&b, bad[i], strlen(bad[i])),
                         -2);
        /* nothing appended */
        assert_int_equal(b.len, 1);
    }

    assert_int_equal(zarr_utf8_valid_prefix("ab\xff", 3), 2);
    assert_int_equal(zarr_utf8_valid_prefix("\xc3\xa9", 2), 2);

    zarr_buf_free(&b);
}


static void
test_u64(void **state)
{
    zarr_buf_t  b;

    (void) state;

    zarr_buf_init(&b);
    assert_int_equal(zarr_buf_add_u64(&b, 0), 0);
    assert_int_equal(zarr_buf_add_u64(&b, UINT64_MAX), 0);
    assert_int_equal(b.len, 21);
    assert_memory_equal(b.data, "018446744073709551615", 21);
    zarr_buf_free(&b);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ascii),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_unicode),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_u64),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
