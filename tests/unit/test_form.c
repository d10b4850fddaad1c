
/*
 * POST object forms: boundaries, fields up to the file part, keys with
 * ${filename}, hostile and truncated bodies.
 */


#include "zarr_test.h"
#include "zarr_form.h"


#define B  "----b0undary"


static int
parse(const char *body, zarr_form_t *form)
{
    return zarr_form_parse(body, strlen(body), B, strlen(B), form);
}


static void
assert_str(const char *p, size_t len, const char *expected)
{
    assert_non_null(p);
    assert_int_equal(len, strlen(expected));
    assert_memory_equal(p, expected, len);
}


static void
test_boundary(void **state)
{
    size_t       len;
    const char  *b, *ct;

    (void) state;

#define BOUNDARY(v)  zarr_form_boundary(v, strlen(v), &b, &len)

    assert_int_equal(BOUNDARY("multipart/form-data; boundary=abc"), 0);
    assert_str(b, len, "abc");
    assert_int_equal(BOUNDARY("Multipart/Form-Data;BOUNDARY=\"a b\""), 0);
    assert_str(b, len, "a b");
    assert_int_equal(BOUNDARY("multipart/form-data; charset=utf-8; "
                              "boundary=xyz"), 0);
    assert_str(b, len, "xyz");

    assert_int_equal(BOUNDARY("application/x-www-form-urlencoded"), -1);
    assert_int_equal(BOUNDARY("multipart/form-data"), -1);
    assert_int_equal(BOUNDARY("multipart/form-data; boundary="), -1);
    assert_int_equal(BOUNDARY("multipart/form-data; boundary=\"\""), -1);
    assert_int_equal(BOUNDARY("multipart/form-data; boundary=a; "
                              "boundary=b"), -1);
    assert_int_equal(BOUNDARY("multipart/form-data; boundary=\"abc"), -1);
    assert_int_equal(BOUNDARY("multipart/mixed; boundary=abc"), -1);
    assert_int_equal(BOUNDARY("multipart/form-dataX; boundary=abc"), -1);
    assert_int_equal(BOUNDARY(""), -1);

    /* 70 characters at most */
    ct = "multipart/form-data; boundary="
         "0123456789012345678901234567890123456789"
         "012345678901234567890123456789";
    assert_int_equal(BOUNDARY(ct), 0);
    assert_int_equal(len, 70);
    ct = "multipart/form-data; boundary="
         "0123456789012345678901234567890123456789"
         "0123456789012345678901234567890";
    assert_int_equal(BOUNDARY(ct), -1);
    assert_null(b);

    assert_int_equal(zarr_form_boundary(NULL, 0, &b, &len), -1);

#undef BOUNDARY
}


static void
test_requests_form(void **state)
{
    zarr_form_t  f;
    char         buf[256];
    size_t       len;
    const char  *key, *body;

    (void) state;

    /* as python-requests sends it (files=OrderedDict(...)) */
    body = "--" B "\r\n"
           "Content-Disposition: form-data; name=\"key\"; filename=\"key\""
           "\r\n\r\n"
           "zarr/z/a/0.0\r\n"
           "--" B "\r\n"
           "Content-Disposition: form-data; name=\"policy\"\r\n"
           "Content-Type: text/plain\r\n\r\n"
           "eyJleHBpcmF0aW9uIjog\r\n"
           "--" B "\r\n"
           "Content-Disposition: form-data; name=\"file\"; "
           "filename=\"data.bin\"\r\n"
           "Content-Type: application/octet-stream\r\n\r\n"
           "BYTES\r\n--" B "--\r\n";

    assert_int_equal(parse(body, &f), ZARR_FORM_OK);
    assert_null(f.error);
    assert_str(f.key, f.key_len, "zarr/z/a/0.0");
    assert_int_equal(f.key_count, 1);
    assert_str(f.filename, f.filename_len, "data.bin");
    assert_memory_equal(body + f.file_offset, "BYTES", 5);

    assert_int_equal(zarr_form_key(&f, buf, sizeof(buf), &key, &len),
                     ZARR_FORM_OK);
    assert_str(key, len, "zarr/z/a/0.0");

    /* only the head is needed: the file's bytes may be missing */
    assert_int_equal(zarr_form_parse(body, f.file_offset, B, strlen(B), &f),
                     ZARR_FORM_OK);
}


static void
test_fields(void **state)
{
    zarr_form_t  f;
    const char  *body;

    (void) state;

    /* case-insensitive names, a preamble, white space after boundaries,
     * LWS around parameters, unquoted values, empty values */
    body = "preamble\r\n--" B "  \r\n"
           "content-disposition:form-data ;NAME=kEy\r\n\r\n"
           "a b/c\r\n\r\n"
           "--" B "\r\n"
           "Content-Disposition: form-data; name=\"acl\"\r\n\r\n"
           "\r\n"
           "--" B "\r\n"
           "Content-Disposition: form-data; name=\"x\"\r\n\r\n"
           "--" B "-not-it\r\n"
           "--" B "\r\n"
           "CONTENT-DISPOSITION: Form-Data; name=\"FILE\"\r\n\r\n";

    assert_int_equal(parse(body, &f), ZARR_FORM_OK);
    /* the value holds everything before CRLF--boundary */
    assert_str(f.key, f.key_len, "a b/c\r\n");
    assert_null(f.filename);

    /* a field holding a near-boundary is still one field */
    body = "--" B "\r\n"
           "Content-Disposition: form-data; name=key\r\n\r\n"
           "k\r\n--" B "X\r\n"
           "--" B "\r\n"
           "Content-Disposition: form-data; name=file\r\n\r\n";
    assert_int_equal(parse(body, &f), ZARR_FORM_MALFORMED);
}


static void
test_key_filename(void **state)
{
    zarr_form_t  f;
    char         buf[64];
    size_t       len;
    const char  *key;

    (void) state;

    memset(&f, 0, sizeof(f));
    f.key = "zarr/z/${filename}";
    f.key_len = strlen(f.key);
    f.filename = "0.0";
    f.filename_len = 3;

    assert_int_equal(zarr_form_key(&f, buf, sizeof(buf), &key, &len),
                     ZARR_FORM_OK);
    assert_str(key, len, "zarr/z/0.0");

    f.key = "${filename}.bak";
    f.key_len = strlen(f.key);
    assert_int_equal(zarr_form_key(&f, buf, sizeof(buf), &key, &len),
                     ZARR_FORM_OK);
    assert_str(key, len, "0.0.bak");

    /* backends differ on more than one: refused */
    f.key = "${filename}/${filename}";
    f.key_len = strlen(f.key);
    assert_int_equal(zarr_form_key(&f, buf, sizeof(buf), &key, &len),
                     ZARR_FORM_AMBIGUOUS);

    /* no filename, or one parsers read differently */
    f.key = "zarr/z/${filename}";
    f.key_len = strlen(f.key);
    f.filename_odd = 1;
    assert_int_equal(zarr_form_key(&f, buf, sizeof(buf), &key, &len),
                     ZARR_FORM_AMBIGUOUS);
    f.filename_odd = 0;
    f.filename = NULL;
    assert_int_equal(zarr_form_key(&f, buf, sizeof(buf), &key, &len),
                     ZARR_FORM_AMBIGUOUS);

    /* a key without the variable needs no filename */
    f.key = "zarr/z/plain";
    f.key_len = strlen(f.key);
    assert_int_equal(zarr_form_key(&f, buf, sizeof(buf), &key, &len),
                     ZARR_FORM_OK);
    assert_str(key, len, "zarr/z/plain");

    /* buffer too small */
    f.key = "${filename}";
    f.key_len = strlen(f.key);
    f.filename = "0123456789";
    f.filename_len = 10;
    assert_int_equal(zarr_form_key(&f, buf, 9, &key, &len), -1);

    f.key = NULL;
    assert_int_equal(zarr_form_key(&f, buf, sizeof(buf), &key, &len),
                     ZARR_FORM_NO_KEY);
}


static void
test_filename_parsed(void **state)
{
    zarr_form_t  f;
    char         buf[64];
    size_t       len;
    const char  *key, *body;

    (void) state;

    body = "--" B "\r\n"
           "Content-Disposition: form-data; name=\"key\"\r\n\r\n"
           "zarr/z/${filename}\r\n"
           "--" B "\r\n"
           "Content-Disposition: form-data; name=\"file\"; "
           "filename=\"0.1\"\r\n\r\n";
    assert_int_equal(parse(body, &f), ZARR_FORM_OK);
    assert_int_equal(zarr_form_key(&f, buf, sizeof(buf), &key, &len),
                     ZARR_FORM_OK);
    assert_str(key, len, "zarr/z/0.1");

    /* a ';' or '\\' in the quoted filename: odd */
    body = "--" B "\r\n"
           "Content-Disposition: form-data; name=\"key\"\r\n\r\n"
           "x/${filename}\r\n"
           "--" B "\r\n"
           "Content-Disposition: form-data; name=\"file\"; "
           "filename=\"a;b\"\r\n\r\n";
    assert_int_equal(parse(body, &f), ZARR_FORM_OK);
    assert_int_equal(f.filename_odd, 1);
    assert_int_equal(zarr_form_key(&f, buf, sizeof(buf), &key, &len),
                     ZARR_FORM_AMBIGUOUS);

    body = "--" B "\r\n"
           "Content-Disposition: form-data; name=\"key\"\r\n\r\n"
           "x/${filename}\r\n"
           "--" B "\r\n"
           "Content-Disposition: form-data; name=\"file\"; "
           "filename=\"a\\\\b\"\r\n\r\n";
    assert_int_equal(parse(body, &f), ZARR_FORM_OK);
    assert_int_equal(f.filename_odd, 1);
}


static void
test_malformed(void **state)
{
    zarr_form_t  f;
    char        *big;
    size_t       n;

    (void) state;

    /* no key, two keys */
    assert_int_equal(parse("--" B "\r\n"
                           "Content-Disposition: form-data; name=\"acl\""
                           "\r\n\r\nprivate\r\n"
                           "--" B "\r\n"
                           "Content-Disposition: form-data; name=\"file\""
                           "\r\n\r\n", &f), ZARR_FORM_NO_KEY);
    assert_non_null(f.error);
    assert_int_equal(parse("--" B "\r\n"
                           "Content-Disposition: form-data; name=\"key\""
                           "\r\n\r\nelsewhere\r\n"
                           "--" B "\r\n"
                           "Content-Disposition: form-data; name=\"KEY\""
                           "\r\n\r\nzarr/z/k\r\n"
                           "--" B "\r\n"
                           "Content-Disposition: form-data; name=\"file\""
                           "\r\n\r\n", &f), ZARR_FORM_AMBIGUOUS);

    /* closed before the file */
    assert_int_equal(parse("--" B "\r\n"
                           "Content-Disposition: form-data; name=\"key\""
                           "\r\n\r\nk\r\n--" B "--\r\n", &f),
                     ZARR_FORM_MALFORMED);
    assert_int_equal(parse("--" B "--\r\n", &f), ZARR_FORM_MALFORMED);

    /* parts without a usable Content-Disposition */
    assert_int_equal(parse("--" B "\r\nContent-Type: text/plain\r\n\r\n"
                           "x\r\n--" B "--", &f), ZARR_FORM_MALFORMED);
    assert_int_equal(parse("--" B "\r\nContent-Disposition: attachment; "
                           "name=\"key\"\r\n\r\n", &f), ZARR_FORM_MALFORMED);
    assert_int_equal(parse("--" B "\r\nContent-Disposition: form-data\r\n"
                           "\r\n", &f), ZARR_FORM_MALFORMED);
    assert_int_equal(parse("--" B "\r\nContent-Disposition: form-data; "
                           "name=\"key\r\n\r\n", &f), ZARR_FORM_MALFORMED);
    assert_int_equal(parse("--" B "\r\nContent-Disposition: form-data; "
                           "name=\"k\\\"ey\"\r\n\r\n", &f),
                     ZARR_FORM_MALFORMED);
    assert_int_equal(parse("--" B "\r\nContent-Disposition: form-data; "
                           "name=a; name=b\r\n\r\n", &f),
                     ZARR_FORM_MALFORMED);
    assert_int_equal(parse("--" B "\r\nContent-Disposition: form-data; "
                           "name=\"key\"\r\nContent-Disposition: form-data; "
                           "name=\"file\"\r\n\r\n", &f),
                     ZARR_FORM_MALFORMED);
    assert_int_equal(parse("--" B "\r\nContent-Disposition: form-data; "
                           "name=\"key\"\r\n folded\r\n\r\n", &f),
                     ZARR_FORM_MALFORMED);
    assert_int_equal(parse("--" B "\r\nno colon\r\n\r\n", &f),
                     ZARR_FORM_MALFORMED);
    /* bare LF */
    assert_int_equal(parse("--" B "\nContent-Disposition: form-data; "
                           "name=\"file\"\n\n", &f), ZARR_FORM_MALFORMED);

    /* truncated anywhere: incomplete, never OK */
    assert_int_equal(parse("", &f), ZARR_FORM_INCOMPLETE);
    assert_int_equal(parse("--" B, &f), ZARR_FORM_INCOMPLETE);
    assert_int_equal(parse("--" B "\r\nContent-Dispo", &f),
                     ZARR_FORM_INCOMPLETE);
    assert_int_equal(parse("--" B "\r\nContent-Disposition: form-data; "
                           "name=\"key\"\r\n\r\nzarr/z/k", &f),
                     ZARR_FORM_INCOMPLETE);

    /* no boundary at all in a large body; endless headers */
    n = 3 * ZARR_FORM_HEADERS_MAX;
    big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'x', n);
    big[n] = '\0';
    assert_int_equal(parse(big, &f), ZARR_FORM_MALFORMED);
    memcpy(big, "--" B "\r\nX: ", 4 + strlen(B) + 3);
    assert_int_equal(parse(big, &f), ZARR_FORM_MALFORMED);
    free(big);

    /* bad boundaries */
    assert_int_equal(zarr_form_parse("--\r\n", 4, "", 0, &f),
                     ZARR_FORM_MALFORMED);
}


/* every prefix of a valid form: no crash, and OK only with the file part */

static void
test_prefixes(void **state)
{
    int          rc;
    size_t       i, n;
    zarr_form_t  f;
    const char  *body;

    (void) state;

    body = "--" B "\r\n"
           "Content-Disposition: form-data; name=\"key\"\r\n\r\n"
           "zarr/z/k\r\n"
           "--" B "\r\n"
           "Content-Disposition: form-data; name=\"file\"; "
           "filename=\"f\"\r\n\r\nDATA";
    n = strlen(body);

    for (i = 0; i <= n; i++) {
        char  *copy = malloc(i + 1);

        assert_non_null(copy);
        memcpy(copy, body, i);
        rc = zarr_form_parse(copy, i, B, strlen(B), &f);

        if (i >= n - 4) {
            assert_int_equal(rc, ZARR_FORM_OK);
            assert_str(f.key, f.key_len, "zarr/z/k");

        } else {
            assert_int_not_equal(rc, ZARR_FORM_OK);
        }

        free(copy);
    }
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boundary),
        cmocka_unit_test(test_requests_form),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_key_filename),
        cmocka_unit_test(test_filename_parsed),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_prefixes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
