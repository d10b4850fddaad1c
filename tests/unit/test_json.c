
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


/* one byte as the reference escapes it, alone */

static size_t
ref_escape(unsigned char c, char *out)
{
    switch (c) {
    case '"':  return (size_t) sprintf(out, "\\\"");
    case '\\': return (size_t) sprintf(out, "\\\\");
    case '\n': return (size_t) sprintf(out, "\\n");
    case '\r': return (size_t) sprintf(out, "\\r");
    case '\t': return (size_t) sprintf(out, "\\t");
    case '\b': return (size_t) sprintf(out, "\\b");
    case '\f': return (size_t) sprintf(out, "\\f");
    }

    if (c < 0x20 || c == 0x7f) {
        return (size_t) sprintf(out, "\\u%04x", c);
    }

    out[0] = (char) c;

    return 1;
}


/*
 * Long strings, escaped 8 bytes at a time where they can be: every byte
 * value that matters at every position of two words and a tail.
 */

static void
test_long_strings(void **state)
{
    char           in[20], want[200], *p;
    size_t         i, pos, v, n;
    zarr_buf_t     b;
    const int      bytes[] = { 0x00, 0x01, 0x08, 0x0a, 0x1f, 0x20, 0x21,
                               '"', '\\', '/', 0x5b, 0x5d, 0x7e, 0x7f };

    (void) state;

    zarr_buf_init(&b);

    for (v = 0; v < sizeof(bytes) / sizeof(bytes[0]); v++) {
        for (pos = 0; pos < sizeof(in); pos++) {
            for (i = 0; i < sizeof(in); i++) {
                in[i] = (char) ('a' + i % 26);
            }

            in[pos] = (char) bytes[v];

            p = want;
            *p++ = '"';

            for (i = 0; i < sizeof(in); i++) {
                p += ref_escape((unsigned char) in[i], p);
            }

            *p++ = '"';
            n = p - want;

            b.len = 0;
            assert_int_equal(zarr_json_add_string(&b, in, sizeof(in)), 0);
            assert_int_equal(b.len, n);
            assert_memory_equal(b.data, want, n);
        }
    }

    /* a 2-byte sequence across the words, and at their ends */

    for (pos = 0; pos + 1 < sizeof(in); pos++) {
        memset(in, 'x', sizeof(in));
        in[pos] = (char) 0xc3;
        in[pos + 1] = (char) 0xa9;

        p = want;
        *p++ = '"';
        p += sprintf(p, "%.*s\\u00e9%.*s", (int) pos, in,
                     (int) (sizeof(in) - pos - 2), in + pos + 2);
        *p++ = '"';
        n = p - want;

        b.len = 0;
        assert_int_equal(zarr_json_add_string(&b, in, sizeof(in)), 0);
        assert_int_equal(b.len, n);
        assert_memory_equal(b.data, want, n);

        /* cut in the middle: invalid */
        b.len = 0;
        assert_int_equal(zarr_json_add_string(&b, in, pos + 1), -2);
        assert_int_equal(b.len, 0);
        assert_int_equal(zarr_utf8_valid_prefix(in, pos + 1), pos);

        /* a bad byte after 8 good ones is found */
        in[pos + 1] = 'x';
        assert_int_equal(zarr_utf8_valid_prefix(in, sizeof(in)), pos);
    }

    /* the worst case fits ZARR_JSON_ESCAPED_MAX: control bytes */

    memset(in, 0x01, sizeof(in));
    assert_int_equal(zarr_json_escape(want, in, sizeof(in)),
                     ZARR_JSON_ESCAPED_MAX(sizeof(in)));

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
        cmocka_unit_test(test_long_strings),
        cmocka_unit_test(test_u64),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
