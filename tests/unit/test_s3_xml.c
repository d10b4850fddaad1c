/*
 * Unit tests of the S3 XML parsing in zarr_s3 (ListObjectsV2 pages and
 * <Error> documents) and of the client's argument checks (no network
 * beyond a refused connection to 127.0.0.1).
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <cmocka.h>

#include "zarr_s3.h"


#define MAX_OBJECTS  16


typedef struct {
    size_t     n;
    size_t     stop_after;              /* 0: never stop */
    char      *keys[MAX_OBJECTS];
    size_t     key_lens[MAX_OBJECTS];
    char      *etags[MAX_OBJECTS];
    char      *versions[MAX_OBJECTS];
    uint64_t   sizes[MAX_OBJECTS];
} collected_t;


static int
collect(const zarr_s3_object_t *obj, void *data)
{
    collected_t *c = data;

    assert_true(c->n < MAX_OBJECTS);
    assert_int_equal(strlen(obj->etag), obj->etag_len);

    c->keys[c->n] = malloc(obj->key_len + 1);
    assert_non_null(c->keys[c->n]);
    memcpy(c->keys[c->n], obj->key, obj->key_len);
    c->keys[c->n][obj->key_len] = '\0';
    c->key_lens[c->n] = obj->key_len;

    c->etags[c->n] = strdup(obj->etag);
    c->versions[c->n] = obj->version_id ? strdup(obj->version_id) : NULL;

    if (obj->version_id) {
        assert_int_equal(strlen(obj->version_id), obj->version_id_len);
    }

    c->sizes[c->n] = obj->size;
    c->n++;

    return c->stop_after && c->n >= c->stop_after;
}


static void
collected_free(collected_t *c)
{
    size_t  i;

    for (i = 0; i < c->n; i++) {
        free(c->keys[i]);
        free(c->etags[i]);
        free(c->versions[i]);
    }

    memset(c, 0, sizeof(collected_t));
}


/* a truncated page as AWS sends it, keys URL-encoded ('+' is a space) */
static const char page1[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>bucket</Name>"
    "<Prefix>zarr%2F</Prefix>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="
    "</NextContinuationToken>"
    "<KeyCount>5</KeyCount>"
    "<MaxKeys>5</MaxKeys>"
    "<EncodingType>url</EncodingType>"
    "<IsTruncated>true</IsTruncated>"
    "<Contents>"
      "<Key>zarr%2Fa+b%2Bc%25d</Key>"
      "<LastModified>2023-01-01T00:00:00.000Z</LastModified>"
      "<ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag>"
      "<Size>0</Size>"
      "<StorageClass>STANDARD</StorageClass>"
    "</Contents>"
    "<Contents>"
      "<Key>zarr%2F%2F%2Fcaf%C3%A9%2F%E6%97%A5</Key>"
      "<ETag>\"0123456789abcdef0123456789abcdef-12\"</ETag>"
      "<Size>18446744073709551615</Size>"
      "<Owner><ID>x</ID><DisplayName>y</DisplayName></Owner>"
    "</Contents>"
    "<Contents>"
      "<Size>4294967296</Size>"
      "<ETag>&#34;plain&#34;</ETag>"
      "<Key>zarr%2F%7E%21%2A%28%29%27%3B%3A%40%26%3D%24%2C%3F%23%5B%5D</Key>"
    "</Contents>"
    "<Contents>"
      "<Key>zarr%2Fspace%20encoded%20as%20%2520</Key>"
      "<ETag>unquoted-verbatim</ETag>"
      "<Size>7</Size>"
    "</Contents>"
    "<Contents>"
      "<Key>zarr%2F.zarray</Key>"
      "<ETag>&quot;abc&quot;</ETag>"
      "<Size>42</Size>"
    "</Contents>"
    "</ListBucketResult>";

/* the last page: RGW's order and spacing, no token */
static const char page2[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
    "  <EncodingType>url</EncodingType>\n"
    "  <Name>bucket</Name>\n"
    "  <Prefix>zarr%2F</Prefix>\n"
    "  <MaxKeys>1000</MaxKeys>\n"
    "  <IsTruncated>false</IsTruncated>\n"
    "  <ContinuationToken>abc</ContinuationToken>\n"
    "  <Contents>\n"
    "    <Key>zarr%2Fz</Key>\n"
    "    <ETag>&quot;e&quot;</ETag>\n"
    "    <Size>1</Size>\n"
    "  </Contents>\n"
    "  <KeyCount>1</KeyCount>\n"
    "</ListBucketResult>\n";


static void
check_page1(const collected_t *c)
{
    assert_int_equal(c->n, 5);

    assert_string_equal(c->keys[0], "zarr/a b+c%d");
    assert_string_equal(c->etags[0], "d41d8cd98f00b204e9800998ecf8427e");
    assert_true(c->sizes[0] == 0);

    assert_int_equal(c->key_lens[1], strlen("zarr///caf\xc3\xa9/\xe6\x97\xa5"));
    assert_string_equal(c->keys[1], "zarr///caf\xc3\xa9/\xe6\x97\xa5");
    assert_string_equal(c->etags[1], "0123456789abcdef0123456789abcdef-12");
    assert_true(c->sizes[1] == UINT64_MAX);

    assert_string_equal(c->keys[2], "zarr/~!*()';:@&=$,?#[]");
    assert_string_equal(c->etags[2], "plain");
    assert_true(c->sizes[2] == 4294967296ULL);

    assert_string_equal(c->keys[3], "zarr/space encoded as %20");
    assert_string_equal(c->etags[3], "unquoted-verbatim");
    assert_true(c->sizes[3] == 7);

    assert_string_equal(c->keys[4], "zarr/.zarray");
    assert_string_equal(c->etags[4], "abc");
    assert_true(c->sizes[4] == 42);
}


static void
test_truncated_page(void **state)
{
    int                  rc;
    collected_t          c;
    zarr_s3_list_page_t  page;

    (void) state;

    memset(&c, 0, sizeof(c));

    rc = zarr_s3_list_parse(page1, sizeof(page1) - 1, collect, &c, &page);
    assert_int_equal(rc, ZARR_S3_OK);

    assert_true(page.is_truncated);
    assert_true(page.url_encoded);
    assert_true(page.objects == 5);
    assert_non_null(page.next_token);

    /* the token is opaque: not decoded */
    assert_string_equal(page.next_token,
                        "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");

    check_page1(&c);

    zarr_s3_list_page_free(&page);
    assert_null(page.next_token);
    collected_free(&c);
}


static void
test_final_page(void **state)
{
    int                  rc;
    collected_t          c;
    zarr_s3_list_page_t  page;

    (void) state;

    memset(&c, 0, sizeof(c));

    rc = zarr_s3_list_parse(page2, sizeof(page2) - 1, collect, &c, &page);
    assert_int_equal(rc, ZARR_S3_OK);

    assert_false(page.is_truncated);
    assert_null(page.next_token);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.keys[0], "zarr/z");
    assert_string_equal(c.etags[0], "e");

    zarr_s3_list_page_free(&page);
    collected_free(&c);
}


static void
test_empty_listing(void **state)
{
    int                  rc;
    collected_t          c;
    zarr_s3_list_page_t  page;
    static const char    body[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Name>b</Name><Prefix>none%2F</Prefix><KeyCount>0</KeyCount>"
        "<MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType>"
        "<IsTruncated>false</IsTruncated></ListBucketResult>";

    (void) state;

    memset(&c, 0, sizeof(c));

    rc = zarr_s3_list_parse(body, sizeof(body) - 1, collect, &c, &page);
    assert_int_equal(rc, ZARR_S3_OK);
    assert_false(page.is_truncated);
    assert_true(page.objects == 0);
    assert_int_equal(c.n, 0);

    zarr_s3_list_page_free(&page);
}


static void
test_not_url_encoded(void **state)
{
    int                  rc;
    collected_t          c;
    zarr_s3_list_page_t  page;
    static const char    body[] =
        "<ListBucketResult>"
        "<IsTruncated>false</IsTruncated>"
        "<Contents><Key>a+b%20c &amp; d</Key><Size>1</Size>"
        "<ETag>&quot;x&quot;</ETag></Contents>"
        "</ListBucketResult>";

    (void) state;

    /* no <EncodingType>: keys verbatim, '+' and '%' stay */

    memset(&c, 0, sizeof(c));

    rc = zarr_s3_list_parse(body, sizeof(body) - 1, collect, &c, &page);
    assert_int_equal(rc, ZARR_S3_OK);
    assert_false(page.url_encoded);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.keys[0], "a+b%20c & d");

    zarr_s3_list_page_free(&page);
    collected_free(&c);
}


static void
test_streaming_feed(void **state)
{
    int                         rc;
    size_t                      i;
    collected_t                 c;
    zarr_s3_list_parser_t      *p;
    const zarr_s3_list_page_t  *page;

    (void) state;

    /* one byte at a time: entities and UTF-8 split across chunks */

    memset(&c, 0, sizeof(c));

    p = zarr_s3_list_parser_create(collect, &c);
    assert_non_null(p);

    for (i = 0; i < sizeof(page1) - 1; i++) {
        rc = zarr_s3_list_parser_feed(p, page1 + i, 1, 0);
        assert_int_equal(rc, ZARR_S3_OK);
    }

    assert_int_equal(zarr_s3_list_parser_feed(p, NULL, 0, 1), ZARR_S3_OK);

    page = zarr_s3_list_parser_page(p);
    assert_true(page->is_truncated);
    assert_string_equal(page->next_token,
                        "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");

    check_page1(&c);

    zarr_s3_list_parser_destroy(p);
    collected_free(&c);
}


static void
test_handler_stops(void **state)
{
    int                    rc;
    collected_t            c;
    zarr_s3_list_page_t    page;
    zarr_s3_list_parser_t *p;

    (void) state;

    memset(&c, 0, sizeof(c));
    c.stop_after = 2;

    rc = zarr_s3_list_parse(page1, sizeof(page1) - 1, collect, &c, &page);
    assert_int_equal(rc, ZARR_S3_STOPPED);
    assert_int_equal(c.n, 2);

    zarr_s3_list_page_free(&page);
    collected_free(&c);

    /* feeding more after a stop changes nothing */

    c.stop_after = 1;
    p = zarr_s3_list_parser_create(collect, &c);
    assert_non_null(p);

    rc = zarr_s3_list_parser_feed(p, page1, sizeof(page1) - 1, 0);
    assert_int_equal(rc, ZARR_S3_STOPPED);
    rc = zarr_s3_list_parser_feed(p, NULL, 0, 1);
    assert_int_equal(rc, ZARR_S3_STOPPED);
    assert_int_equal(c.n, 1);

    zarr_s3_list_parser_destroy(p);
    collected_free(&c);
}


static void
test_error_body(void **state)
{
    int                  rc;
    collected_t          c;
    zarr_s3_error_t      err;
    zarr_s3_list_page_t  page;
    static const char    aws[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<Error><Code>NoSuchBucket</Code>"
        "<Message>The specified bucket does not exist</Message>"
        "<BucketName>nope</BucketName><RequestId>4442587FB7D0A2F9</RequestId>"
        "<HostId>x</HostId></Error>";
    static const char    rgw[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>"
        "<Code>SignatureDoesNotMatch</Code><Message></Message>"
        "<RequestId>tx0000</RequestId><HostId>h</HostId></Error>";

    (void) state;

    memset(&c, 0, sizeof(c));

    rc = zarr_s3_list_parse(aws, sizeof(aws) - 1, collect, &c, &page);
    assert_int_equal(rc, ZARR_S3_ERROR);
    assert_string_equal(page.error.code, "NoSuchBucket");
    assert_string_equal(page.error.message,
                        "The specified bucket does not exist");
    assert_int_equal(c.n, 0);
    zarr_s3_list_page_free(&page);

    memset(&err, 0, sizeof(err));
    err.status = 404;
    assert_int_equal(zarr_s3_parse_error(aws, sizeof(aws) - 1, &err), 0);
    assert_int_equal(err.status, 404);
    assert_string_equal(err.code, "NoSuchBucket");
    assert_string_equal(err.message, "The specified bucket does not exist");

    /* RGW leaves <Message/> empty */
    assert_int_equal(zarr_s3_parse_error(rgw, sizeof(rgw) - 1, &err), 0);
    assert_string_equal(err.code, "SignatureDoesNotMatch");
    assert_string_equal(err.message, "");

    /* not error documents */
    assert_int_equal(zarr_s3_parse_error(page2, sizeof(page2) - 1, &err),
                     -1);
    assert_int_equal(zarr_s3_parse_error("<Error><Code>X</Code>", 21, &err),
                     -1);
    assert_int_equal(zarr_s3_parse_error("", 0, &err), -1);
    assert_int_equal(zarr_s3_parse_error("Bad Gateway", 11, &err), -1);
}


static void
expect_list_error(const char *body, const char *message_part)
{
    int                  rc;
    collected_t          c;
    zarr_s3_list_page_t  page;

    memset(&c, 0, sizeof(c));

    rc = zarr_s3_list_parse(body, strlen(body), collect, &c, &page);
    assert_int_equal(rc, ZARR_S3_ERROR);

    if (strstr(page.error.message, message_part) == NULL) {
        fail_msg("error \"%s\" lacks \"%s\"", page.error.message,
                 message_part);
    }

    zarr_s3_list_page_free(&page);
    collected_free(&c);
}


static void
test_malformed(void **state)
{
    (void) state;

    expect_list_error("", "bad S3 XML");
    expect_list_error("not xml at all", "bad S3 XML");
    expect_list_error("<ListBucketResult><IsTruncated>false</IsTruncated>",
                      "bad S3 XML");
    expect_list_error("<ListBucketResult><Contents><Key>a</Key>"
                      "<Size>1</Size></Content></ListBucketResult>",
                      "mismatched tag");
    expect_list_error("<ListBucketResult></ListBucketResult><x/>",
                      "junk after document element");
    expect_list_error("<ListAllMyBucketsResult/>", "unexpected root");
    expect_list_error("<ListBucketResult><Contents><Key>a</Key></Contents>"
                      "</ListBucketResult>", "without <Key> or <Size>");
    expect_list_error("<ListBucketResult><Contents><Size>1</Size>"
                      "</Contents></ListBucketResult>",
                      "without <Key> or <Size>");
    expect_list_error("<ListBucketResult><Contents><Key>a</Key>"
                      "<Size>12a</Size></Contents></ListBucketResult>",
                      "bad <Size>");
    expect_list_error("<ListBucketResult><Contents><Key>a</Key>"
                      "<Size>-1</Size></Contents></ListBucketResult>",
                      "bad <Size>");
    expect_list_error("<ListBucketResult><Contents><Key>a</Key>"
                      "<Size>18446744073709551616</Size></Contents>"
                      "</ListBucketResult>", "bad <Size>");
    expect_list_error("<ListBucketResult><Contents><Key>a</Key>"
                      "<Size></Size></Contents></ListBucketResult>",
                      "bad <Size>");
    expect_list_error("<ListBucketResult><IsTruncated>yes</IsTruncated>"
                      "</ListBucketResult>", "bad <IsTruncated>");
    expect_list_error("<ListBucketResult><EncodingType>url</EncodingType>"
                      "<Contents><Key>a%zz</Key><Size>1</Size></Contents>"
                      "</ListBucketResult>", "bad URL encoding");
    expect_list_error("<ListBucketResult><EncodingType>url</EncodingType>"
                      "<Contents><Key>a%2</Key><Size>1</Size></Contents>"
                      "</ListBucketResult>", "bad URL encoding");
    expect_list_error("<ListBucketResult><EncodingType>base64</EncodingType>"
                      "</ListBucketResult>", "unknown <EncodingType>");
    expect_list_error("<ListBucketResult><Contents><Key>a%41</Key>"
                      "<Size>1</Size></Contents>"
                      "<EncodingType>url</EncodingType></ListBucketResult>",
                      "<EncodingType> after <Contents>");
    expect_list_error("<ListBucketResult><Contents><Key>a<b/></Key>"
                      "<Size>1</Size></Contents></ListBucketResult>",
                      "unexpected element <b>");

    /* no DTD at all: no entity expansion tricks */
    expect_list_error("<?xml version=\"1.0\"?>"
                      "<!DOCTYPE lolz [<!ENTITY lol \"lol\">"
                      "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;\">]>"
                      "<ListBucketResult><Contents><Key>&lol2;</Key>"
                      "<Size>1</Size></Contents></ListBucketResult>",
                      "DOCTYPE not allowed");
    expect_list_error("<ListBucketResult><Contents><Key>&undefined;</Key>"
                      "<Size>1</Size></Contents></ListBucketResult>",
                      "undefined entity");
}


static void
test_long_key_text(void **state)
{
    char    *body;
    size_t   n, len;

    (void) state;

    /* a text element beyond the limit fails instead of growing forever */

    n = 70000;
    len = n + 200;
    body = malloc(len);
    assert_non_null(body);

    strcpy(body, "<ListBucketResult><Contents><Key>");
    memset(body + strlen(body), 'k', n);
    strcpy(body + 33 + n, "</Key><Size>1</Size></Contents>"
                          "</ListBucketResult>");

    expect_list_error(body, "element text too long");
    free(body);
}


static void
test_url_decode(void **state)
{
    char    buf[64];
    size_t  len;

    (void) state;

    strcpy(buf, "a+b%2Bc%25%20%c3%A9%2f");
    len = strlen(buf);
    assert_int_equal(zarr_s3_url_decode(buf, &len), 0);
    assert_int_equal(len, strlen("a b+c% \xc3\xa9/"));
    assert_memory_equal(buf, "a b+c% \xc3\xa9/", len);

    strcpy(buf, "%00x");
    len = strlen(buf);
    assert_int_equal(zarr_s3_url_decode(buf, &len), 0);
    assert_int_equal(len, 2);
    assert_memory_equal(buf, "\0x", 2);

    len = 0;
    assert_int_equal(zarr_s3_url_decode(buf, &len), 0);
    assert_int_equal(len, 0);

    strcpy(buf, "%");
    len = 1;
    assert_int_equal(zarr_s3_url_decode(buf, &len), -1);

    strcpy(buf, "ab%4");
    len = 4;
    assert_int_equal(zarr_s3_url_decode(buf, &len), -1);

    strcpy(buf, "%G0");
    len = 3;
    assert_int_equal(zarr_s3_url_decode(buf, &len), -1);
}


static void
test_client_config(void **state)
{
    char            err[256];
    zarr_s3_t      *s3;
    zarr_s3_conf_t  conf;

    (void) state;

    memset(&conf, 0, sizeof(conf));
    conf.access_key = "AK";
    conf.secret_key = "SK";

    conf.endpoint = "ftp://127.0.0.1:21";
    assert_null(zarr_s3_create(&conf, err, sizeof(err)));
    assert_non_null(strstr(err, "http or https"));

    conf.endpoint = "http://127.0.0.1:8000/prefix";
    assert_null(zarr_s3_create(&conf, err, sizeof(err)));
    assert_non_null(strstr(err, "scheme://host[:port]"));

    conf.endpoint = "http://user:pw@127.0.0.1:8000";
    assert_null(zarr_s3_create(&conf, err, sizeof(err)));

    conf.endpoint = "http://127.0.0.1:8000?x=1";
    assert_null(zarr_s3_create(&conf, err, sizeof(err)));

    conf.endpoint = "not a url";
    assert_null(zarr_s3_create(&conf, err, sizeof(err)));

    conf.endpoint = "http://127.0.0.1:8000";
    conf.access_key = NULL;
    assert_null(zarr_s3_create(&conf, err, sizeof(err)));
    conf.access_key = "AK";

    conf.endpoint = "http://127.0.0.1:8000/";
    s3 = zarr_s3_create(&conf, err, sizeof(err));
    assert_non_null(s3);
    zarr_s3_destroy(s3);

    conf.endpoint = "https://[::1]:443";
    s3 = zarr_s3_create(&conf, err, sizeof(err));
    assert_non_null(s3);
    zarr_s3_destroy(s3);

    zarr_s3_destroy(NULL);
}


static void
test_client_transport_error(void **state)
{
    int                  rc;
    char                 err[256];
    zarr_s3_t           *s3;
    zarr_s3_conf_t       conf;
    zarr_s3_error_t      lerr;
    zarr_s3_request_t    req;
    zarr_s3_response_t   resp;
    zarr_sigv4_header_t  bad[] = { { "Host", "elsewhere" } };

    (void) state;

    /* port 1 on loopback: connection refused at once */

    memset(&conf, 0, sizeof(conf));
    conf.endpoint = "http://127.0.0.1:1";
    conf.access_key = "AK";
    conf.secret_key = "SK";
    conf.connect_timeout_ms = 2000;

    s3 = zarr_s3_create(&conf, err, sizeof(err));
    assert_non_null(s3);

    memset(&req, 0, sizeof(req));
    req.method = "HEAD";
    req.bucket = "b";
    req.key = "a b";
    req.key_len = 3;

    rc = zarr_s3_request(s3, &req, &resp);
    assert_int_equal(rc, ZARR_S3_ERROR);
    assert_int_equal(resp.status, 0);
    assert_int_equal(resp.error.status, 0);
    assert_true(resp.error.message[0] != '\0');
    zarr_s3_response_free(&resp);

    rc = zarr_s3_list(s3, "b", "zarr/", 5, collect, NULL, &lerr);
    assert_int_equal(rc, ZARR_S3_ERROR);
    assert_int_equal(lerr.status, 0);
    assert_true(lerr.message[0] != '\0');

    /* arguments refused before any I/O */

    req.bucket = NULL;
    rc = zarr_s3_request(s3, &req, &resp);
    assert_int_equal(rc, ZARR_S3_ERROR);
    zarr_s3_response_free(&resp);

    req.bucket = "b";
    req.headers = bad;
    req.nheaders = 1;
    rc = zarr_s3_request(s3, &req, &resp);
    assert_int_equal(rc, ZARR_S3_ERROR);
    assert_non_null(strstr(resp.error.message, "set by the client"));
    zarr_s3_response_free(&resp);

    zarr_s3_destroy(s3);
}



/* ListObjectVersions as RGW answers it: older versions, delete markers */
static const char versions_page[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
    "<ListVersionsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>b</Name><Prefix>zarr%2Fz%2F</Prefix><KeyMarker></KeyMarker>"
    "<VersionIdMarker></VersionIdMarker>"
    "<NextKeyMarker>zarr%2Fz%2Fc</NextKeyMarker>"
    "<NextVersionIdMarker>v9</NextVersionIdMarker>"
    "<MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType>"
    "<IsTruncated>true</IsTruncated>"
    "<Version><Key>zarr%2Fz%2Fa</Key><VersionId>v2</VersionId>"
    "<IsLatest>true</IsLatest><ETag>&quot;e2&quot;</ETag><Size>2</Size>"
    "</Version>"
    "<Version><Key>zarr%2Fz%2Fa</Key><VersionId>v1</VersionId>"
    "<IsLatest>false</IsLatest><ETag>&quot;e1&quot;</ETag><Size>1</Size>"
    "</Version>"
    "<DeleteMarker><Key>zarr%2Fz%2Fb</Key><VersionId>v4</VersionId>"
    "<IsLatest>true</IsLatest></DeleteMarker>"
    "<Version><Key>zarr%2Fz%2Fb</Key><VersionId>v3</VersionId>"
    "<IsLatest>false</IsLatest><ETag>&quot;e3&quot;</ETag><Size>3</Size>"
    "</Version>"
    "<Version><Key>zarr%2Fz%2Fc</Key><VersionId>null</VersionId>"
    "<IsLatest>true</IsLatest><ETag>&quot;e5&quot;</ETag><Size>5</Size>"
    "</Version>"
    "</ListVersionsResult>";


static void
test_versions_page(void **state)
{
    int                  rc;
    collected_t          c;
    zarr_s3_list_page_t  page;

    (void) state;

    memset(&c, 0, sizeof(c));

    rc = zarr_s3_list_parse(versions_page, sizeof(versions_page) - 1,
                            collect, &c, &page);
    assert_int_equal(rc, ZARR_S3_OK);

    /* the latest versions only; b's latest is a delete marker */
    assert_int_equal(c.n, 2);
    assert_string_equal(c.keys[0], "zarr/z/a");
    assert_string_equal(c.versions[0], "v2");
    assert_string_equal(c.etags[0], "e2");
    assert_true(c.sizes[0] == 2);
    assert_string_equal(c.keys[1], "zarr/z/c");
    assert_string_equal(c.versions[1], "null");

    assert_true(page.is_truncated);
    assert_string_equal(page.next_key, "zarr%2Fz%2Fc");
    assert_string_equal(page.next_version, "v9");

    zarr_s3_list_page_free(&page);
    assert_null(page.next_key);
    assert_null(page.next_version);
    collected_free(&c);

    /* a plain listing reports no version ids */

    rc = zarr_s3_list_parse(page1, sizeof(page1) - 1, collect, &c, &page);
    assert_int_equal(rc, ZARR_S3_OK);
    assert_null(c.versions[0]);
    zarr_s3_list_page_free(&page);
    collected_free(&c);
}


static void
test_versioning_status(void **state)
{
    int                     rc;
    zarr_s3_list_parser_t  *p;

    static const char  on[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
        "<VersioningConfiguration "
        "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Status>Enabled</Status></VersioningConfiguration>";
    static const char  never[] =
        "<VersioningConfiguration "
        "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>";

    (void) state;

    p = zarr_s3_list_parser_create(NULL, NULL);
    assert_non_null(p);
    rc = zarr_s3_list_parser_feed(p, on, sizeof(on) - 1, 1);
    assert_int_equal(rc, ZARR_S3_OK);
    assert_string_equal(zarr_s3_list_parser_page(p)->versioning, "Enabled");
    zarr_s3_list_parser_destroy(p);

    p = zarr_s3_list_parser_create(NULL, NULL);
    assert_non_null(p);
    rc = zarr_s3_list_parser_feed(p, never, sizeof(never) - 1, 1);
    assert_int_equal(rc, ZARR_S3_OK);
    assert_string_equal(zarr_s3_list_parser_page(p)->versioning, "");
    zarr_s3_list_parser_destroy(p);
}


static void
lifecycle(const char *rules, int want)
{
    int                     rc;
    char                    doc[2048];
    zarr_s3_list_parser_t  *p;

    snprintf(doc, sizeof(doc), "<LifecycleConfiguration "
             "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">%s"
             "</LifecycleConfiguration>", rules);

    p = zarr_s3_list_parser_create(NULL, NULL);
    assert_non_null(p);
    rc = zarr_s3_list_parser_feed(p, doc, strlen(doc), 1);
    assert_int_equal(rc, ZARR_S3_OK);
    assert_int_equal(zarr_s3_list_parser_page(p)->expires_noncurrent, want);
    zarr_s3_list_parser_destroy(p);
}


static void
test_lifecycle(void **state)
{
    (void) state;

    lifecycle("", 0);
    lifecycle("<Rule><ID>a</ID><Filter><Prefix>x/</Prefix></Filter>"
              "<Status>Enabled</Status>"
              "<Expiration><Days>3</Days></Expiration></Rule>", 0);
    lifecycle("<Rule><ID>a</ID><Filter/><Status>Disabled</Status>"
              "<NoncurrentVersionExpiration><NoncurrentDays>1"
              "</NoncurrentDays></NoncurrentVersionExpiration></Rule>", 0);
    lifecycle("<Rule><ID>a</ID><Status>Disabled</Status></Rule>"
              "<Rule><ID>b</ID><Filter/>"
              "<NoncurrentVersionExpiration><NoncurrentDays>1"
              "</NoncurrentDays></NoncurrentVersionExpiration>"
              "<Status>Enabled</Status></Rule>", 1);
}

int
main(void)
{
    int  rc;

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncated_page),
        cmocka_unit_test(test_final_page),
        cmocka_unit_test(test_versions_page),
        cmocka_unit_test(test_versioning_status),
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_empty_listing),
        cmocka_unit_test(test_not_url_encoded),
        cmocka_unit_test(test_streaming_feed),
        cmocka_unit_test(test_handler_stops),
        cmocka_unit_test(test_error_body),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_long_key_text),
        cmocka_unit_test(test_url_decode),
        cmocka_unit_test(test_client_config),
        cmocka_unit_test(test_client_transport_error),
    };

    if (zarr_s3_global_init() != 0) {
        fprintf(stderr, "curl_global_init failed\n");
        return 1;
    }

    rc = cmocka_run_group_tests(tests, NULL, NULL);

    zarr_s3_global_cleanup();

    return rc;
}
