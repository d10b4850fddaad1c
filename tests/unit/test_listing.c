
/*
 * Listing lines for zarrctl checksum --listing: tsv and jsonl, the
 * malformed ones refused with a message.
 */


#include "zarr_test.h"
#include "zarr_listing.h"


static int tsv(const char *line, size_t len, zarr_listing_entry_t *e,
    char *err);
static int jsonl(const char *line, size_t len, zarr_listing_entry_t *e,
    char *err);


static int
tsv(const char *line, size_t len, zarr_listing_entry_t *e, char *err)
{
    err[0] = '\0';
    return zarr_listing_tsv(line, len, e, err, ZARR_LISTING_ERR_MAX);
}


static int
jsonl(const char *line, size_t len, zarr_listing_entry_t *e, char *err)
{
    err[0] = '\0';
    return zarr_listing_jsonl(line, len, e, err, ZARR_LISTING_ERR_MAX);
}


#define TSV(s, e, err)    tsv(s, sizeof(s) - 1, e, err)
#define JSONL(s, e, err)  jsonl(s, sizeof(s) - 1, e, err)


static void
test_tsv_ok(void **state)
{
    char                  err[ZARR_LISTING_ERR_MAX];
    zarr_listing_entry_t  e;

    (void) state;

    assert_int_equal(TSV("a/b\t12\tabc\n", &e, err), ZARR_LISTING_OK);
    assert_int_equal(e.path_len, 3);
    assert_memory_equal(e.path, "a/b", 3);
    assert_int_equal(e.size, 12);
    assert_int_equal(e.etag_len, 3);
    assert_memory_equal(e.etag, "abc", 3);

    /* CRLF, no line end at all, quotes cut, TABs in the path */
    assert_int_equal(TSV("x\t0\t\"q\"\r\n", &e, err), ZARR_LISTING_OK);
    assert_int_equal(e.etag_len, 1);
    assert_memory_equal(e.etag, "q", 1);
    assert_int_equal(TSV("x\t7\te", &e, err), ZARR_LISTING_OK);
    assert_int_equal(e.size, 7);
    assert_int_equal(TSV("a\tb\tc\t1\te\n", &e, err), ZARR_LISTING_OK);
    assert_int_equal(e.path_len, 5);
    assert_memory_equal(e.path, "a\tb\tc", 5);

    /* the largest size, an empty ETag, a NUL in the path (for the tree) */
    assert_int_equal(TSV("x\t18446744073709551615\t\n", &e, err),
                     ZARR_LISTING_OK);
    assert_true(e.size == UINT64_MAX);
    assert_int_equal(e.etag_len, 0);
    assert_int_equal(TSV("a\0b\t1\te\n", &e, err), ZARR_LISTING_OK);
    assert_int_equal(e.path_len, 3);

    assert_int_equal(TSV("\n", &e, err), ZARR_LISTING_BLANK);
    assert_int_equal(TSV("\r\n", &e, err), ZARR_LISTING_BLANK);
    assert_int_equal(TSV("", &e, err), ZARR_LISTING_BLANK);
}


static void
test_tsv_bad(void **state)
{
    char                  err[ZARR_LISTING_ERR_MAX];
    zarr_listing_entry_t  e;

    (void) state;

    assert_int_equal(TSV("bad line\n", &e, err), ZARR_LISTING_MALFORMED);
    assert_non_null(strstr(err, "PATH<TAB>SIZE<TAB>ETAG"));
    assert_int_equal(TSV("a\t1\n", &e, err), ZARR_LISTING_MALFORMED);

    /* the line that made zarrctl print freed memory */
    assert_int_equal(TSV("a\tx\te\n", &e, err), ZARR_LISTING_MALFORMED);
    assert_string_equal(err, "bad size \"x\"");

    assert_int_equal(TSV("a\t\te\n", &e, err), ZARR_LISTING_MALFORMED);
    assert_string_equal(err, "bad size \"\"");
    assert_int_equal(TSV("a\t-1\te\n", &e, err), ZARR_LISTING_MALFORMED);
    assert_int_equal(TSV("a\t+1\te\n", &e, err), ZARR_LISTING_MALFORMED);
    assert_int_equal(TSV("a\t 1\te\n", &e, err), ZARR_LISTING_MALFORMED);
    assert_int_equal(TSV("a\t1\0\te\n", &e, err), ZARR_LISTING_MALFORMED);
    assert_string_equal(err, "bad size \"1\\x00\"");
    assert_int_equal(TSV("x\t18446744073709551616\te\n", &e, err),
                     ZARR_LISTING_MALFORMED);
    assert_int_equal(TSV("x\t99999999999999999999\te\n", &e, err),
                     ZARR_LISTING_MALFORMED);
    assert_non_null(strstr(err, "bad size"));

    /* control bytes in the ETag */
    assert_int_equal(TSV("a\t1\te\0f\n", &e, err), ZARR_LISTING_MALFORMED);
    assert_non_null(strstr(err, "0x00"));
    assert_int_equal(TSV("a\t1\te\rf\n", &e, err), ZARR_LISTING_MALFORMED);
    assert_non_null(strstr(err, "0x0d"));
    assert_int_equal(TSV("a\t1\te\r\r\n", &e, err), ZARR_LISTING_MALFORMED);
    assert_int_equal(TSV("a\t1\t\"\x1b\"\n", &e, err),
                     ZARR_LISTING_MALFORMED);
    assert_int_equal(TSV("a\t1\te\x7f\n", &e, err), ZARR_LISTING_MALFORMED);
    assert_non_null(strstr(err, "ETag"));
}


static void
test_tsv_long_size_message(void **state)
{
    char                  err[ZARR_LISTING_ERR_MAX], line[4096];
    zarr_listing_entry_t  e;

    (void) state;

    memset(line, '\xff', sizeof(line));
    line[0] = 'a';
    line[1] = '\t';
    line[sizeof(line) - 3] = '\t';
    line[sizeof(line) - 2] = 'e';
    line[sizeof(line) - 1] = '\n';

    assert_int_equal(tsv(line, sizeof(line), &e, err),
                     ZARR_LISTING_MALFORMED);
    assert_true(strlen(err) < ZARR_LISTING_ERR_MAX);
    assert_non_null(strstr(err, "\\xff..."));
}


static void
test_jsonl(void **state)
{
    char                  err[ZARR_LISTING_ERR_MAX];
    zarr_listing_entry_t  e;

    (void) state;

    assert_int_equal(JSONL("{\"path\":\"a\\u0000b\",\"size\":3,"
                           "\"etag\":\"\\\"x\\\"\"}\n", &e, err),
                     ZARR_LISTING_OK);
    assert_int_equal(e.path_len, 3);
    assert_memory_equal(e.path, "a\0b", 3);
    assert_int_equal(e.size, 3);
    assert_int_equal(e.etag_len, 1);
    assert_memory_equal(e.etag, "x", 1);
    zarr_listing_entry_free(&e);
    assert_null(e.json);

    assert_int_equal(JSONL("  \r\n", &e, err), ZARR_LISTING_BLANK);

    assert_int_equal(JSONL("{\"path\":\"a\",\n", &e, err),
                     ZARR_LISTING_MALFORMED);
    assert_int_equal(JSONL("{\"path\":\"a\"}\n", &e, err),
                     ZARR_LISTING_MALFORMED);
    assert_non_null(strstr(err, "expected"));
    assert_int_equal(JSONL("{\"path\":\"a\",\"size\":-1,\"etag\":\"e\"}",
                           &e, err),
                     ZARR_LISTING_MALFORMED);
    assert_int_equal(JSONL("{\"path\":\"a\",\"size\":1.5,\"etag\":\"e\"}",
                           &e, err),
                     ZARR_LISTING_MALFORMED);
    assert_int_equal(JSONL("{\"path\":\"a\",\"size\":1,\"etag\":"
                           "\"e\\u0000\"}", &e, err),
                     ZARR_LISTING_MALFORMED);
    assert_non_null(strstr(err, "0x00"));
    assert_int_equal(JSONL("{\"path\":\"a\",\"size\":1,\"etag\":\"\\t\"}",
                           &e, err),
                     ZARR_LISTING_MALFORMED);
    assert_null(e.json);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tsv_ok),
        cmocka_unit_test(test_tsv_bad),
        cmocka_unit_test(test_tsv_long_size_message),
        cmocka_unit_test(test_jsonl),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
