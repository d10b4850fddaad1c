/*
 * Unit tests of zarr_sigv4 and zarr_hash.
 *
 * The known answers are the examples of the Amazon S3 API reference,
 * "Signature Calculations for the Authorization Header: Transferring
 * Payload in a Single Chunk (AWS Signature Version 4)" (GET Object, PUT
 * Object, GET Bucket Lifecycle, Get Bucket (List Objects)), and the signing
 * key of the AWS General Reference, "Examples of how to derive a signing
 * key for Signature Version 4".  They use virtual-hosted addressing: host
 * examplebucket.s3.amazonaws.com, path "/test.txt".
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <stdlib.h>
#include <cmocka.h>

#include "zarr_hash.h"
#include "zarr_sigv4.h"


#define EXAMPLE_HOST    "examplebucket.s3.amazonaws.com"
#define EXAMPLE_DATE    "20130524T000000Z"
#define EXAMPLE_SCOPE   "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/" \
                        "aws4_request"


static const zarr_sigv4_creds_t  example_creds = {
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "us-east-1",
    "s3"
};


static void
sign_ok(const zarr_sigv4_request_t *req, zarr_sigv4_result_t *res)
{
    int  rc;

    rc = zarr_sigv4_sign(req, &example_creds, res);
    if (rc != 0) {
        fail_msg("sign failed: %s", res->error ? res->error : "?");
    }
}


static void
test_get_object(void **state)
{
    zarr_sigv4_result_t   res;
    zarr_sigv4_request_t  req;
    zarr_sigv4_header_t   hdrs[] = {
        { "Host", EXAMPLE_HOST },
        { "Range", "bytes=0-9" },
    };

    (void) state;

    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.path = "/test.txt";
    req.path_len = strlen(req.path);
    req.headers = hdrs;
    req.nheaders = 2;
    req.payload_hash = ZARR_SHA256_EMPTY_HEX;
    req.amz_date = EXAMPLE_DATE;

    sign_ok(&req, &res);

    assert_string_equal(res.canonical_request,
        "GET\n"
        "/test.txt\n"
        "\n"
        "host:examplebucket.s3.amazonaws.com\n"
        "range:bytes=0-9\n"
        "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b9"
        "34ca495991b7852b855\n"
        "x-amz-date:20130524T000000Z\n"
        "\n"
        "host;range;x-amz-content-sha256;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    assert_string_equal(res.string_to_sign,
        "AWS4-HMAC-SHA256\n"
        "20130524T000000Z\n"
        "20130524/us-east-1/s3/aws4_request\n"
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");

    assert_string_equal(res.signature,
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");

    assert_string_equal(res.authorization,
        "AWS4-HMAC-SHA256 Credential=" EXAMPLE_SCOPE ","
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        "Signature="
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");

    assert_string_equal(res.amz_date, EXAMPLE_DATE);
    assert_string_equal(res.signed_headers,
                        "host;range;x-amz-content-sha256;x-amz-date");
    assert_null(res.error);

    zarr_sigv4_result_free(&res);
}


static void
test_put_object(void **state)
{
    char                  hash[ZARR_SHA256_HEX_LEN + 1];
    const char           *body = "Welcome to Amazon S3.";
    zarr_sigv4_result_t   res;
    zarr_sigv4_request_t  req;
    zarr_sigv4_header_t   hdrs[] = {
        { "Date", "Fri, 24 May 2013 00:00:00 GMT" },
        { "Host", EXAMPLE_HOST },
        { "x-amz-storage-class", "REDUCED_REDUNDANCY" },
    };

    (void) state;

    assert_int_equal(zarr_sha256_hex(body, strlen(body), hash), 0);
    assert_string_equal(hash,
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");

    /* the raw key: the signer encodes '$' */

    memset(&req, 0, sizeof(req));
    req.method = "PUT";
    req.path = "/test$file.text";
    req.path_len = strlen(req.path);
    req.headers = hdrs;
    req.nheaders = 3;
    req.payload_hash = hash;
    req.amz_date = EXAMPLE_DATE;

    sign_ok(&req, &res);

    assert_string_equal(res.canonical_request,
        "PUT\n"
        "/test%24file.text\n"
        "\n"
        "date:Fri, 24 May 2013 00:00:00 GMT\n"
        "host:examplebucket.s3.amazonaws.com\n"
        "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e9"
        "9e42034a8b803f8b072\n"
        "x-amz-date:20130524T000000Z\n"
        "x-amz-storage-class:REDUCED_REDUNDANCY\n"
        "\n"
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");

    assert_string_equal(res.string_to_sign,
        "AWS4-HMAC-SHA256\n"
        "20130524T000000Z\n"
        "20130524/us-east-1/s3/aws4_request\n"
        "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");

    assert_string_equal(res.authorization,
        "AWS4-HMAC-SHA256 Credential=" EXAMPLE_SCOPE ","
        "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;"
        "x-amz-storage-class,"
        "Signature="
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");

    zarr_sigv4_result_free(&res);
}


static void
test_get_bucket_lifecycle(void **state)
{
    zarr_sigv4_result_t   res;
    zarr_sigv4_request_t  req;
    zarr_sigv4_header_t   hdrs[] = {
        { "Host", EXAMPLE_HOST },
    };
    zarr_sigv4_param_t    params[] = {
        { "lifecycle", 9, NULL, 0 },
    };

    (void) state;

    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.path = "/";
    req.path_len = 1;
    req.params = params;
    req.nparams = 1;
    req.headers = hdrs;
    req.nheaders = 1;
    req.payload_hash = ZARR_SHA256_EMPTY_HEX;
    req.amz_date = EXAMPLE_DATE;

    sign_ok(&req, &res);

    assert_string_equal(res.canonical_request,
        "GET\n"
        "/\n"
        "lifecycle=\n"
        "host:examplebucket.s3.amazonaws.com\n"
        "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b9"
        "34ca495991b7852b855\n"
        "x-amz-date:20130524T000000Z\n"
        "\n"
        "host;x-amz-content-sha256;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    assert_string_equal(res.string_to_sign,
        "AWS4-HMAC-SHA256\n"
        "20130524T000000Z\n"
        "20130524/us-east-1/s3/aws4_request\n"
        "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca");

    assert_string_equal(res.authorization,
        "AWS4-HMAC-SHA256 Credential=" EXAMPLE_SCOPE ","
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
        "Signature="
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");

    zarr_sigv4_result_free(&res);

    /* an empty path is "/" as well */

    req.path = "";
    req.path_len = 0;
    sign_ok(&req, &res);
    assert_string_equal(res.signature,
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
    zarr_sigv4_result_free(&res);
}


static void
test_list_objects(void **state)
{
    zarr_sigv4_result_t   res;
    zarr_sigv4_request_t  req;
    zarr_sigv4_header_t   hdrs[] = {
        { "host", EXAMPLE_HOST },
    };

    /* given out of order on purpose: the signer sorts */
    zarr_sigv4_param_t    params[] = {
        zarr_sigv4_param("prefix", "J"),
        zarr_sigv4_param("max-keys", "2"),
    };

    (void) state;

    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.path = "/";
    req.path_len = 1;
    req.params = params;
    req.nparams = 2;
    req.headers = hdrs;
    req.nheaders = 1;
    req.payload_hash = ZARR_SHA256_EMPTY_HEX;
    req.amz_date = EXAMPLE_DATE;

    sign_ok(&req, &res);

    assert_string_equal(res.canonical_request,
        "GET\n"
        "/\n"
        "max-keys=2&prefix=J\n"
        "host:examplebucket.s3.amazonaws.com\n"
        "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b9"
        "34ca495991b7852b855\n"
        "x-amz-date:20130524T000000Z\n"
        "\n"
        "host;x-amz-content-sha256;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    assert_string_equal(res.string_to_sign,
        "AWS4-HMAC-SHA256\n"
        "20130524T000000Z\n"
        "20130524/us-east-1/s3/aws4_request\n"
        "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7");

    assert_string_equal(res.authorization,
        "AWS4-HMAC-SHA256 Credential=" EXAMPLE_SCOPE ","
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
        "Signature="
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");

    zarr_sigv4_result_free(&res);
}


static void
test_signing_key(void **state)
{
    char           hex[2 * ZARR_SHA256_LEN + 1];
    unsigned char  key[ZARR_SHA256_LEN];

    (void) state;

    assert_int_equal(zarr_sigv4_signing_key(
                         "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                         "20150830", "us-east-1", "iam", key), 0);

    zarr_hex_encode(key, sizeof(key), hex);

    assert_string_equal(hex,
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
}


static char *
encode(const char *s, size_t len, int keep_slash)
{
    char    *out;
    size_t   n;

    n = zarr_sigv4_uri_encode(NULL, s, len, keep_slash);
    out = malloc(n + 1);
    assert_non_null(out);

    assert_int_equal(zarr_sigv4_uri_encode(out, s, len, keep_slash), n);
    out[n] = '\0';

    return out;
}


static void
check_encode(const char *s, int keep_slash, const char *expected)
{
    char  *out;

    out = encode(s, strlen(s), keep_slash);
    assert_string_equal(out, expected);
    free(out);
}


static void
test_uri_encode(void **state)
{
    char               *out;
    static const char   nul[] = { 'a', '\0', 'b' };

    (void) state;

    check_encode("", 1, "");
    check_encode("AZaz09-._~", 1, "AZaz09-._~");
    check_encode("a b", 1, "a%20b");
    check_encode("a+b", 1, "a%2Bb");
    check_encode("100%", 1, "100%25");
    check_encode("a/b//c/", 1, "a/b//c/");
    check_encode("a/b", 0, "a%2Fb");
    check_encode("x=1&y=*", 0, "x%3D1%26y%3D%2A");
    check_encode("!'()$,;:@", 1, "%21%27%28%29%24%2C%3B%3A%40");

    /* UTF-8 byte by byte, uppercase hex: "é", "日", U+1F600 */
    check_encode("caf\xc3\xa9", 1, "caf%C3%A9");
    check_encode("\xe6\x97\xa5/x", 1, "%E6%97%A5/x");
    check_encode("\xf0\x9f\x98\x80", 1, "%F0%9F%98%80");

    /* control bytes, DEL, bytes >= 0x80 */
    check_encode("\t\n\x7f\xff", 1, "%09%0A%7F%FF");

    /* explicit length: NUL encoded, not the end */
    out = encode(nul, sizeof(nul), 1);
    assert_string_equal(out, "a%00b");
    free(out);

    /* a zarr chunk key as a path */
    check_encode("/bucket/zarr/1234/a b/0.0.1", 1,
                 "/bucket/zarr/1234/a%20b/0.0.1");
}


static void
test_path_encoding_in_canonical_request(void **state)
{
    char                 *p;
    zarr_sigv4_result_t   res;
    zarr_sigv4_request_t  req;
    zarr_sigv4_header_t   hdrs[] = {
        { "host", "127.0.0.1:8000" },
    };

    (void) state;

    /* path-style, a key with space, '+', '%', '~', "//" and UTF-8 */

    memset(&req, 0, sizeof(req));
    req.method = "PUT";
    req.path = "/bkt/zarr/x//a b+c%d~e/\xc3\xa9.txt";
    req.path_len = strlen(req.path);
    req.headers = hdrs;
    req.nheaders = 1;
    req.payload_hash = ZARR_SIGV4_UNSIGNED_PAYLOAD;
    req.amz_date = EXAMPLE_DATE;

    sign_ok(&req, &res);

    p = strchr(res.canonical_request, '\n');
    assert_non_null(p);
    assert_memory_equal(p + 1, "/bkt/zarr/x//a%20b%2Bc%25d~e/%C3%A9.txt\n\n",
                        strlen("/bkt/zarr/x//a%20b%2Bc%25d~e/%C3%A9.txt\n\n"));

    /* the payload hash line ends the canonical request */
    p = strrchr(res.canonical_request, '\n');
    assert_string_equal(p + 1, "UNSIGNED-PAYLOAD");
    assert_non_null(strstr(res.canonical_request,
                           "\nx-amz-content-sha256:UNSIGNED-PAYLOAD\n"));

    zarr_sigv4_result_free(&res);
}


static void
test_canonical_query(void **state)
{
    char               *q;
    zarr_sigv4_param_t  params[] = {
        zarr_sigv4_param("prefix", "zarr/a b/c+d~"),
        zarr_sigv4_param("list-type", "2"),
        zarr_sigv4_param("continuation-token", "1/Ab+c=="),
        zarr_sigv4_param("b", "2"),
        zarr_sigv4_param("b", "10"),
        { "uploads", 7, NULL, 0 },
        zarr_sigv4_param("encoding-type", "url"),
        zarr_sigv4_param("Z", "upper sorts first"),
    };

    (void) state;

    q = zarr_sigv4_canonical_query(params, 0);
    assert_string_equal(q, "");
    free(q);

    q = zarr_sigv4_canonical_query(params, sizeof(params) / sizeof(params[0]));
    assert_string_equal(q,
        "Z=upper%20sorts%20first"
        "&b=10&b=2"
        "&continuation-token=1%2FAb%2Bc%3D%3D"
        "&encoding-type=url"
        "&list-type=2"
        "&prefix=zarr%2Fa%20b%2Fc%2Bd~"
        "&uploads=");
    free(q);
}


static void
test_header_canonicalisation(void **state)
{
    zarr_sigv4_result_t   res;
    zarr_sigv4_request_t  req;
    zarr_sigv4_header_t   hdrs[] = {
        { "X-Amz-Meta-B", "  two   inner\t spaces  " },
        { "HOST", "127.0.0.1:8000" },
        { "x-amz-meta-a", "first" },
        { "X-AMZ-META-A", "second" },
        { "Content-Type", "application/json" },
        { "x-amz-acl", "bucket-owner-full-control" },
        { "Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg==" },
    };

    (void) state;

    memset(&req, 0, sizeof(req));
    req.method = "PUT";
    req.path = "/b/k";
    req.path_len = 4;
    req.headers = hdrs;
    req.nheaders = sizeof(hdrs) / sizeof(hdrs[0]);
    req.payload_hash = ZARR_SHA256_EMPTY_HEX;
    req.amz_date = EXAMPLE_DATE;

    sign_ok(&req, &res);

    assert_string_equal(res.signed_headers,
        "content-md5;content-type;host;x-amz-acl;x-amz-content-sha256;"
        "x-amz-date;x-amz-meta-a;x-amz-meta-b");

    assert_non_null(strstr(res.canonical_request,
        "\ncontent-md5:1B2M2Y8AsgTpgAmY7PhCfg==\n"
        "content-type:application/json\n"
        "host:127.0.0.1:8000\n"
        "x-amz-acl:bucket-owner-full-control\n"
        "x-amz-content-sha256:" ZARR_SHA256_EMPTY_HEX "\n"
        "x-amz-date:20130524T000000Z\n"
        "x-amz-meta-a:first,second\n"
        "x-amz-meta-b:two inner spaces\n"
        "\n"));

    zarr_sigv4_result_free(&res);
}


static void
expect_sign_error(zarr_sigv4_request_t *req, const zarr_sigv4_creds_t *creds)
{
    zarr_sigv4_result_t  res;

    assert_int_equal(zarr_sigv4_sign(req, creds, &res), -1);
    assert_non_null(res.error);
    assert_null(res.authorization);
    zarr_sigv4_result_free(&res);
}


static void
test_sign_errors(void **state)
{
    zarr_sigv4_creds_t    creds;
    zarr_sigv4_result_t   res;
    zarr_sigv4_request_t  req;
    zarr_sigv4_header_t   no_host[] = { { "range", "bytes=0-1" } };
    zarr_sigv4_header_t   dup_date[] = {
        { "host", "h" }, { "X-Amz-Date", EXAMPLE_DATE }
    };
    zarr_sigv4_header_t   crlf[] = {
        { "host", "h" }, { "x-amz-meta-a", "a\r\nInjected: yes" }
    };
    zarr_sigv4_header_t   bad_name[] = {
        { "host", "h" }, { "bad name", "v" }
    };
    zarr_sigv4_header_t   ok[] = { { "host", "h" } };

    (void) state;

    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.path = "/x";
    req.path_len = 2;
    req.payload_hash = ZARR_SHA256_EMPTY_HEX;
    req.amz_date = EXAMPLE_DATE;

    req.headers = no_host;
    req.nheaders = 1;
    expect_sign_error(&req, &example_creds);

    req.headers = dup_date;
    req.nheaders = 2;
    expect_sign_error(&req, &example_creds);

    req.headers = crlf;
    expect_sign_error(&req, &example_creds);

    req.headers = bad_name;
    expect_sign_error(&req, &example_creds);

    req.headers = ok;
    req.nheaders = 1;

    req.amz_date = "2013-05-24T00:00:00Z";
    expect_sign_error(&req, &example_creds);
    req.amz_date = "20130524";
    expect_sign_error(&req, &example_creds);
    req.amz_date = EXAMPLE_DATE;

    req.path = "x";
    req.path_len = 1;
    expect_sign_error(&req, &example_creds);
    req.path = "/x";
    req.path_len = 2;

    req.method = "G T";
    expect_sign_error(&req, &example_creds);
    req.method = "GET";

    req.payload_hash = "";
    expect_sign_error(&req, &example_creds);
    req.payload_hash = ZARR_SHA256_EMPTY_HEX;

    creds = example_creds;
    creds.access_key = "AK/ID";
    expect_sign_error(&req, &creds);

    creds = example_creds;
    creds.region = "";
    expect_sign_error(&req, &creds);

    /* and the same request, fixed, signs; service defaults to s3 */

    creds = example_creds;
    creds.service = NULL;

    assert_int_equal(zarr_sigv4_sign(&req, &creds, &res), 0);
    assert_non_null(strstr(res.authorization, "/us-east-1/s3/aws4_"));
    zarr_sigv4_result_free(&res);
}


static void
test_format_date(void **state)
{
    char  buf[ZARR_SIGV4_DATE_LEN + 1];

    (void) state;

    assert_int_equal(zarr_sigv4_format_date(0, buf), 0);
    assert_string_equal(buf, "19700101T000000Z");

    /* the examples' date, 2013-05-24 00:00:00 UTC */
    assert_int_equal(zarr_sigv4_format_date(1369353600, buf), 0);
    assert_string_equal(buf, EXAMPLE_DATE);

    assert_int_equal(zarr_sigv4_format_date(1700000000 + 59, buf), 0);
    assert_string_equal(buf, "20231114T221419Z");

    assert_int_equal(zarr_sigv4_now(buf), 0);
    assert_int_equal(strlen(buf), ZARR_SIGV4_DATE_LEN);
    assert_int_equal(buf[8], 'T');
    assert_int_equal(buf[15], 'Z');
}


static void
test_hashes(void **state)
{
    int           i;
    char          hex[ZARR_SHA256_HEX_LEN + 1];
    zarr_hash_t  *h;

    (void) state;

    assert_int_equal(zarr_md5_hex("", 0, hex), 0);
    assert_string_equal(hex, "d41d8cd98f00b204e9800998ecf8427e");

    assert_int_equal(zarr_md5_hex("abc", 3, hex), 0);
    assert_string_equal(hex, "900150983cd24fb0d6963f7d28e17f72");

    assert_int_equal(zarr_sha256_hex("", 0, hex), 0);
    assert_string_equal(hex, ZARR_SHA256_EMPTY_HEX);

    assert_int_equal(zarr_sha256_hex("abc", 3, hex), 0);
    assert_string_equal(hex,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

    /* incremental == one shot */

    h = zarr_hash_create(ZARR_HASH_MD5);
    assert_non_null(h);

    for (i = 0; i < 3; i++) {
        assert_int_equal(zarr_hash_update(h, "abc" + i, 1), 0);
    }

    assert_int_equal(zarr_hash_update(h, "", 0), 0);
    assert_int_equal(zarr_hash_final_hex(h, hex), 0);
    assert_string_equal(hex, "900150983cd24fb0d6963f7d28e17f72");
    zarr_hash_destroy(h);

    h = zarr_hash_create(ZARR_HASH_SHA256);
    assert_non_null(h);
    assert_int_equal(zarr_hash_update(h, "ab", 2), 0);
    assert_int_equal(zarr_hash_update(h, "c", 1), 0);
    assert_int_equal(zarr_hash_final_hex(h, hex), 0);
    assert_string_equal(hex,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    zarr_hash_destroy(h);

    zarr_hash_destroy(NULL);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_object),
        cmocka_unit_test(test_put_object),
        cmocka_unit_test(test_get_bucket_lifecycle),
        cmocka_unit_test(test_list_objects),
        cmocka_unit_test(test_signing_key),
        cmocka_unit_test(test_uri_encode),
        cmocka_unit_test(test_path_encoding_in_canonical_request),
        cmocka_unit_test(test_canonical_query),
        cmocka_unit_test(test_header_canonicalisation),
        cmocka_unit_test(test_sign_errors),
        cmocka_unit_test(test_format_date),
        cmocka_unit_test(test_hashes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
