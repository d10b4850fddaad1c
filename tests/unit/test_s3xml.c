
/*
 * S3 XML bodies: error documents (escaping checked by parsing them back
 * with expat), DeleteObjects requests and responses, CopyObject and
 * CompleteMultipartUpload responses, limits, streaming.
 */


#include "zarr_test.h"
#include "zarr_json.h"
#include "zarr_s3xml.h"

#include <expat.h>


#define XML_DECL  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define S3_NS     "http://s3.amazonaws.com/doc/2006-03-01/"


/* parsing back what we write: the text of each child of the root */


#define FIELDS  4

static const char  *field_names[FIELDS] = {
    "Code", "Message", "Resource", "RequestId"
};


typedef struct {
    int          depth;
    int          current;                /* -1: none */
    int          root_ok;
    int          seen[FIELDS];
    zarr_buf_t   text[FIELDS];
} readback_t;


static void XMLCALL
rb_start(void *data, const XML_Char *name, const XML_Char **atts)
{
    readback_t  *rb = data;
    int          i;

    (void) atts;

    rb->depth++;
    rb->current = -1;

    if (rb->depth == 1) {
        rb->root_ok = strcmp(name, "Error") == 0;
        return;
    }

    assert_int_equal(rb->depth, 2);

    for (i = 0; i < FIELDS; i++) {
        if (strcmp(name, field_names[i]) == 0) {
            assert_false(rb->seen[i]);
            rb->seen[i] = 1;
            rb->current = i;
        }
    }

    assert_true(rb->current >= 0);
}


static void XMLCALL
rb_end(void *data, const XML_Char *name)
{
    readback_t  *rb = data;

    (void) name;

    rb->depth--;
    rb->current = -1;
}


static void XMLCALL
rb_text(void *data, const XML_Char *s, int len)
{
    readback_t  *rb = data;

    if (rb->current >= 0) {
        assert_int_equal(zarr_buf_add(&rb->text[rb->current], s, len), 0);
    }
}


static void
readback(const zarr_buf_t *b, readback_t *rb)
{
    int         i;
    XML_Parser  x;

    memset(rb, 0, sizeof(readback_t));

    for (i = 0; i < FIELDS; i++) {
        zarr_buf_init(&rb->text[i]);
    }

    x = XML_ParserCreate(NULL);
    assert_non_null(x);
    XML_SetUserData(x, rb);
    XML_SetElementHandler(x, rb_start, rb_end);
    XML_SetCharacterDataHandler(x, rb_text);

    if (XML_Parse(x, b->data, (int) b->len, 1) != XML_STATUS_OK) {
        fail_msg("error body does not parse: %s: %.*s",
                 XML_ErrorString(XML_GetErrorCode(x)), (int) b->len,
                 b->data);
    }

    XML_ParserFree(x);

    assert_true(rb->root_ok);
}


static void
readback_free(readback_t *rb)
{
    int  i;

    for (i = 0; i < FIELDS; i++) {
        zarr_buf_free(&rb->text[i]);
    }
}


static void
assert_field(readback_t *rb, int i, const char *s, size_t len)
{
    assert_true(rb->seen[i]);

    if (rb->text[i].len != len
        || (len > 0 && memcmp(rb->text[i].data, s, len) != 0))
    {
        fail_msg("%s: got \"%.*s\", expected \"%.*s\"", field_names[i],
                 (int) rb->text[i].len, rb->text[i].data, (int) len, s);
    }
}


static void
escape_is(const char *s, size_t len, const char *expected)
{
    zarr_buf_t  b;

    zarr_buf_init(&b);
    assert_int_equal(zarr_s3xml_escape(&b, s, len), 0);

    if (b.len != strlen(expected)
        || (b.len > 0 && memcmp(b.data, expected, b.len) != 0))
    {
        fail_msg("escape: got \"%.*s\", expected \"%s\"", (int) b.len,
                 b.data, expected);
    }

    zarr_buf_free(&b);
}


static void
test_escape(void **state)
{
    (void) state;

    escape_is("", 0, "");
    escape_is("zarr/x/0.0", 10, "zarr/x/0.0");
    escape_is("<a&b>\"'", 7, "&lt;a&amp;b&gt;&quot;&apos;");
    escape_is("a\tb\nc\rd", 7, "a&#9;b&#10;c&#13;d");
    escape_is("]]>", 3, "]]&gt;");

    /* not representable in XML 1.0: U+FFFD */
    escape_is("a\0b", 3, "a\xef\xbf\xbd" "b");
    escape_is("\x01\x08\x0b\x0c\x1f", 5,
              "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
              "\xef\xbf\xbd");
    escape_is("\xef\xbf\xbe\xef\xbf\xbf", 6,
              "\xef\xbf\xbd\xef\xbf\xbd");

    /* invalid UTF-8: one U+FFFD per byte, the rest kept */
    escape_is("a\xff" "b", 3, "a\xef\xbf\xbd" "b");
    escape_is("\xc3", 1, "\xef\xbf\xbd");
    escape_is("\xc3\xa9\xe2\x82", 4, "\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd");
    escape_is("\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    escape_is("\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd");

    /* legal but invisible: character references */
    escape_is("\x7f", 1, "&#127;");
    escape_is("\xc2\x80\xc2\x9f\xc2\xa0", 6, "&#128;&#159;\xc2\xa0");

    /* UTF-8 of every length kept as is */
    escape_is("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbd", 12,
              "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbd");
}


static void
test_error_body(void **state)
{
    zarr_buf_t          b;
    zarr_s3xml_error_t  e;

    (void) state;

    memset(&e, 0, sizeof(e));
    e.code = "OperationAborted";
    e.code_len = strlen(e.code);
    e.message = "zarr b/zarr/x is in a batch of another owner";
    e.message_len = strlen(e.message);
    e.resource = "/b/zarr/x/0.0";
    e.resource_len = strlen(e.resource);
    e.request_id = "0000000000000001";
    e.request_id_len = strlen(e.request_id);

    zarr_buf_init(&b);
    assert_int_equal(zarr_s3xml_error_body(&b, &e), 0);
    assert_int_equal(zarr_buf_add(&b, "", 1), 0);

    assert_string_equal(b.data,
        XML_DECL
        "<Error><Code>OperationAborted</Code>"
        "<Message>zarr b/zarr/x is in a batch of another owner</Message>"
        "<Resource>/b/zarr/x/0.0</Resource>"
        "<RequestId>0000000000000001</RequestId></Error>");

    /* without the optional fields, appended to what is there */

    b.len = 0;
    assert_int_equal(zarr_buf_add_str(&b, "X"), 0);
    e.resource = NULL;
    e.request_id = NULL;
    assert_int_equal(zarr_s3xml_error_body(&b, &e), 0);
    assert_int_equal(zarr_buf_add(&b, "", 1), 0);

    assert_string_equal(b.data,
        "X" XML_DECL
        "<Error><Code>OperationAborted</Code>"
        "<Message>zarr b/zarr/x is in a batch of another owner</Message>"
        "</Error>");

    /* NULL code and message: empty elements */

    b.len = 0;
    memset(&e, 0, sizeof(e));
    assert_int_equal(zarr_s3xml_error_body(&b, &e), 0);
    assert_int_equal(zarr_buf_add(&b, "", 1), 0);
    assert_string_equal(b.data,
        XML_DECL "<Error><Code></Code><Message></Message></Error>");

    zarr_buf_free(&b);
}


static void
test_error_body_roundtrip(void **state)
{
    zarr_buf_t          b;
    readback_t          rb;
    zarr_s3xml_error_t  e;

    /* every character XML can carry comes back byte for byte */
    static const char   key[] =
        "/b/zarr/x/<a>&b;\"c\"'d'/]]>/\t\n\r\r\n/"
        "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80/\x7f\xc2\x85/&amp;/&#0;";
    static const char   msg[] = "key \"<x>\" & 'y'\n second line";
    static const char   replaced[] =
        "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd[31m"
        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd";

    (void) state;

    memset(&e, 0, sizeof(e));
    e.code = "InvalidArgument";
    e.code_len = strlen(e.code);
    e.message = msg;
    e.message_len = sizeof(msg) - 1;
    e.resource = key;
    e.resource_len = sizeof(key) - 1;
    e.request_id = "<id>";
    e.request_id_len = 4;

    zarr_buf_init(&b);
    assert_int_equal(zarr_s3xml_error_body(&b, &e), 0);

    /* one line after the declaration */
    assert_null(memchr(b.data + strlen(XML_DECL), '\n',
                       b.len - strlen(XML_DECL)));

    readback(&b, &rb);
    assert_field(&rb, 0, "InvalidArgument", 15);
    assert_field(&rb, 1, msg, sizeof(msg) - 1);
    assert_field(&rb, 2, key, sizeof(key) - 1);
    assert_field(&rb, 3, "<id>", 4);
    readback_free(&rb);

    /* what XML cannot carry comes back as U+FFFD, still well-formed */

    b.len = 0;
    e.resource = "a\0b\x01\x1b[31m\xff\xfe\xef\xbf\xbf";
    e.resource_len = 14;

    assert_int_equal(zarr_s3xml_error_body(&b, &e), 0);
    readback(&b, &rb);
    assert_field(&rb, 2, replaced, sizeof(replaced) - 1);
    readback_free(&rb);

    zarr_buf_free(&b);
}


/* parsing: helpers */


/* the same body in one piece, then byte by byte: same result */
static int
parse_both(zarr_s3xml_kind_e kind, const char *body, size_t len,
    size_t max_body, size_t max_objects, zarr_s3xml_result_t *res)
{
    int                         rc, rc1;
    size_t                      i;
    zarr_s3xml_parser_t        *p;
    const zarr_s3xml_result_t  *r;

    rc = zarr_s3xml_parse(kind, body, len, max_body, max_objects, res);

    p = zarr_s3xml_create(kind, max_body, max_objects);
    assert_non_null(p);

    rc1 = ZARR_S3XML_OK;

    for (i = 0; i < len && rc1 == ZARR_S3XML_OK; i++) {
        rc1 = zarr_s3xml_feed(p, body + i, 1, 0);
    }

    if (rc1 == ZARR_S3XML_OK) {
        rc1 = zarr_s3xml_feed(p, body + len, 0, 1);
    }

    assert_int_equal(rc1, rc);

    r = zarr_s3xml_result(p);

    /* after a failure, how far each got differs */

    if (rc == ZARR_S3XML_OK || rc == ZARR_S3XML_S3_ERROR) {
        assert_int_equal(r->nobjects, res->nobjects);
        assert_int_equal(r->nerrors, res->nerrors);
        assert_int_equal(r->quiet, res->quiet);

        for (i = 0; i < r->nobjects; i++) {
            assert_int_equal(r->objects[i].key_len, res->objects[i].key_len);
            assert_memory_equal(r->objects[i].key, res->objects[i].key,
                                r->objects[i].key_len);
        }

        assert_string_equal(r->code, res->code);
        assert_string_equal(r->message, res->message);

        if (res->etag) {
            assert_non_null(r->etag);
            assert_string_equal(r->etag, res->etag);

        } else {
            assert_null(r->etag);
        }
    }

    /* the same answer again once failed or done */
    if (rc != ZARR_S3XML_OK) {
        assert_int_equal(zarr_s3xml_feed(p, "<x/>", 4, 1), rc);
    }

    zarr_s3xml_destroy(p);

    return rc;
}


static int
parse(zarr_s3xml_kind_e kind, const char *body, zarr_s3xml_result_t *res)
{
    return parse_both(kind, body, strlen(body), 0,
                      kind == ZARR_S3XML_DELETE ? ZARR_S3XML_DELETE_MAX : 0,
                      res);
}


static void
assert_object(const zarr_s3xml_object_t *o, const char *key, size_t len,
    const char *version)
{
    assert_int_equal(o->key_len, len);
    assert_memory_equal(o->key, key, len);
    assert_int_equal(o->key[len], '\0');

    if (version == NULL) {
        assert_null(o->version_id);

    } else {
        assert_non_null(o->version_id);
        assert_string_equal(o->version_id, version);
        assert_int_equal(o->version_id_len, strlen(version));
    }
}


static void
expect_fail(zarr_s3xml_kind_e kind, const char *body, int rc)
{
    zarr_s3xml_result_t  res;

    if (parse(kind, body, &res) != rc) {
        fail_msg("expected %d for %s (%s)", rc, body, res.message);
    }

    assert_string_equal(res.code, "");
    assert_true(strlen(res.message) > 0);

    zarr_s3xml_result_free(&res);
}


/* DeleteObjects requests */


static void
test_delete_request(void **state)
{
    zarr_s3xml_result_t  res;

    (void) state;

    /* as boto3 / s3fs send it */
    assert_int_equal(parse(ZARR_S3XML_DELETE,
        XML_DECL
        "<Delete xmlns=\"" S3_NS "\">"
        "<Object><Key>zarr/x/0.0</Key></Object>"
        "<Object><Key>zarr/x/.zarray</Key><VersionId>v1</VersionId>"
        "</Object>"
        "<Quiet>true</Quiet>"
        "</Delete>", &res), ZARR_S3XML_OK);

    assert_int_equal(res.nobjects, 2);
    assert_int_equal(res.nerrors, 0);
    assert_true(res.quiet);
    assert_object(&res.objects[0], "zarr/x/0.0", 10, NULL);
    assert_null(res.objects[0].code);
    assert_object(&res.objects[1], "zarr/x/.zarray", 14, "v1");
    assert_null(res.etag);
    zarr_s3xml_result_free(&res);
    assert_int_equal(res.nobjects, 0);
    assert_null(res.objects);

    /* no namespace, no declaration, pretty-printed, not quiet */
    assert_int_equal(parse(ZARR_S3XML_DELETE,
        "<Delete>\n  <Quiet>false</Quiet>\n"
        "  <Object>\n    <Key>a</Key>\n  </Object>\n</Delete>\n",
        &res), ZARR_S3XML_OK);
    assert_int_equal(res.nobjects, 1);
    assert_false(res.quiet);
    assert_object(&res.objects[0], "a", 1, NULL);
    zarr_s3xml_result_free(&res);

    /* S3's namespace repeated on inner elements */
    assert_int_equal(parse(ZARR_S3XML_DELETE,
        "<Delete xmlns=\"" S3_NS "\"><Object xmlns=\"" S3_NS "\">"
        "<Key xmlns=\"" S3_NS "\">a</Key></Object></Delete>",
        &res), ZARR_S3XML_OK);
    assert_int_equal(res.nobjects, 1);
    assert_object(&res.objects[0], "a", 1, NULL);
    zarr_s3xml_result_free(&res);

    /* nothing to delete: the backend answers that one */
    assert_int_equal(parse(ZARR_S3XML_DELETE, "<Delete/>", &res),
                     ZARR_S3XML_OK);
    assert_int_equal(res.nobjects, 0);
    assert_false(res.quiet);
    zarr_s3xml_result_free(&res);

    /* conditional deletes (ETag, Size...) and unknown elements skipped */
    assert_int_equal(parse(ZARR_S3XML_DELETE,
        "<Delete xmlns=\"" S3_NS "\" xml:lang=\"en\">"
        "<Object><Key>k</Key>"
        "<ETag>\"abc\"</ETag><Size>3</Size>"
        "<LastModifiedTime>2024-01-01T00:00:00Z</LastModifiedTime>"
        "<Extra><Key>deep</Key></Extra></Object>"
        "<Unknown><Object><Key>x</Key></Object></Unknown>"
        "<?pi ignored?><!-- comment -->"
        "</Delete>", &res), ZARR_S3XML_OK);
    assert_int_equal(res.nobjects, 1);
    assert_object(&res.objects[0], "k", 1, NULL);
    zarr_s3xml_result_free(&res);
}


static void
test_delete_request_keys(void **state)
{
    zarr_s3xml_result_t  res;

    (void) state;

    assert_int_equal(parse(ZARR_S3XML_DELETE,
        "<Delete>"
        /* entities, character references, CR that must survive */
        "<Object><Key>a&amp;b&lt;c&gt;d&quot;e&apos;f</Key></Object>"
        "<Object><Key>cr&#x0D;lf&#10;tab&#9;</Key></Object>"
        "<Object><Key>&#xE9;&#x1F600;\xc3\xa9</Key></Object>"
        /* whitespace is part of a key */
        "<Object><Key>  sp  </Key></Object>"
        "<Object><Key><![CDATA[<raw>&]]></Key></Object>"
        /* raw CR LF is an LF in XML */
        "<Object><Key>x\r\ny\rz</Key></Object>"
        "<Object><Key></Key><VersionId></VersionId></Object>"
        "<Object><Key>zarr//x/../y/</Key></Object>"
        "</Delete>", &res), ZARR_S3XML_OK);

    assert_int_equal(res.nobjects, 8);
    assert_object(&res.objects[0], "a&b<c>d\"e'f", 11, NULL);
    assert_object(&res.objects[1], "cr\rlf\ntab\t", 10, NULL);
    assert_object(&res.objects[2], "\xc3\xa9\xf0\x9f\x98\x80\xc3\xa9", 8,
                  NULL);
    assert_object(&res.objects[3], "  sp  ", 6, NULL);
    assert_object(&res.objects[4], "<raw>&", 6, NULL);
    assert_object(&res.objects[5], "x\ny\nz", 5, NULL);
    assert_object(&res.objects[6], "", 0, "");
    assert_object(&res.objects[7], "zarr//x/../y/", 13, NULL);

    zarr_s3xml_result_free(&res);
}


static void
test_delete_request_bad(void **state)
{
    (void) state;

    expect_fail(ZARR_S3XML_DELETE, "", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE, "   \n ", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE, "not xml", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE, "<Delete><Object><Key>a</Key></Object>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE,
                "<Delete><Object><Key>a</Object></Delete>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE, "<Delete></Delete><Delete></Delete>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE,
                "<Delete><Object><Key>a&bogus;</Key></Object></Delete>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE,
                "<Delete><Object><Key>a&#0;</Key></Object></Delete>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE,
                "<Delete><Object><Key>\x01</Key></Object></Delete>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE,
                "<Delete><Object><Key>\xff</Key></Object></Delete>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE,
                "<Delete><x:Object><Key>a</Key></x:Object></Delete>",
                ZARR_S3XML_MALFORMED);

    /*
     * what RGW (names as written) and a namespace-aware reader would
     * read otherwise: RGW deletes "a" here, AWS would not
     */
    expect_fail(ZARR_S3XML_DELETE,
                "<Delete><Object xmlns=\"urn:x\"><Key>a</Key></Object>"
                "</Delete>", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE,
                "<Delete xmlns=\"" S3_NS "\"><Object><Key xmlns=\"\">a"
                "</Key></Object></Delete>", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE,
                "<s3:Delete xmlns:s3=\"" S3_NS "\"><s3:Object><s3:Key>a"
                "</s3:Key></s3:Object></s3:Delete>", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE,
                "<Delete xmlns:s3=\"" S3_NS "\"><Object><Key>a</Key>"
                "</Object><s3:Object><s3:Key>b</s3:Key></s3:Object>"
                "</Delete>", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE,
                "<Delete xmlns:o=\"urn:o\"><Object><Key>a</Key></Object>"
                "</Delete>", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE,
                "<Delete><Object><Key>a</Key><o:Key xmlns:o=\"urn:o\">b"
                "</o:Key></Object></Delete>", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE,
                "<Delete><Unknown><o:Object xmlns:o=\"urn:o\"><Key>a</Key>"
                "</o:Object></Unknown></Delete>", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE,
                "<Delete><Object><Key>a</Key><Extra xmlns=\"urn:o\"/>"
                "</Object></Delete>", ZARR_S3XML_MALFORMED);

    /* wrong root */
    expect_fail(ZARR_S3XML_DELETE, "<Objects><Object><Key>a</Key></Object>"
                "</Objects>", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE, "<delete/>", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE, "<Error><Code>x</Code></Error>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE, "<Delete xmlns=\"urn:other\"/>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE, "<DeleteResult/>", ZARR_S3XML_MALFORMED);

    /* missing, repeated, structured keys */
    expect_fail(ZARR_S3XML_DELETE, "<Delete><Object></Object></Delete>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE,
                "<Delete><Object><VersionId>v</VersionId></Object></Delete>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE,
                "<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE,
                "<Delete><Object><Key>a<b/></Key></Object></Delete>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE,
                "<Delete><Object><Key>a</Key><VersionId>1</VersionId>"
                "<VersionId>2</VersionId></Object></Delete>",
                ZARR_S3XML_MALFORMED);

    /* Quiet */
    expect_fail(ZARR_S3XML_DELETE, "<Delete><Quiet>yes</Quiet></Delete>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE, "<Delete><Quiet>TRUE</Quiet></Delete>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE, "<Delete><Quiet></Quiet></Delete>",
                ZARR_S3XML_MALFORMED);
    /* RGW: not quiet; AWS: quiet */
    expect_fail(ZARR_S3XML_DELETE, "<Delete><Quiet>1</Quiet></Delete>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE, "<Delete><Quiet> true</Quiet></Delete>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE, "<Delete><Quiet>0</Quiet></Delete>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE,
                "<Delete><Quiet>true</Quiet><Quiet>false</Quiet></Delete>",
                ZARR_S3XML_MALFORMED);
}


static void
test_delete_request_doctype(void **state)
{
    (void) state;

    /* billion laughs and external entities never get expanded */

    expect_fail(ZARR_S3XML_DELETE,
        "<?xml version=\"1.0\"?>"
        "<!DOCTYPE lolz [<!ENTITY lol \"lol\">"
        "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>"
        "<Delete><Object><Key>&lol2;</Key></Object></Delete>",
        ZARR_S3XML_MALFORMED);

    expect_fail(ZARR_S3XML_DELETE,
        "<!DOCTYPE Delete SYSTEM \"file:///etc/passwd\">"
        "<Delete><Object><Key>a</Key></Object></Delete>",
        ZARR_S3XML_MALFORMED);
}


static void
build_delete(zarr_buf_t *b, size_t n)
{
    size_t  i;

    b->len = 0;
    assert_int_equal(zarr_buf_add_str(b, XML_DECL "<Delete>"), 0);

    for (i = 0; i < n; i++) {
        assert_int_equal(zarr_buf_add_str(b, "<Object><Key>zarr/x/"), 0);
        assert_int_equal(zarr_buf_add_u64(b, i), 0);
        assert_int_equal(zarr_buf_add_str(b, "</Key></Object>"), 0);
    }

    assert_int_equal(zarr_buf_add_str(b, "</Delete>"), 0);
}


static void
test_delete_request_limits(void **state)
{
    char                 *big;
    zarr_buf_t            b;
    zarr_s3xml_result_t   res;

    (void) state;

    zarr_buf_init(&b);

    /* S3's 1000 objects */

    build_delete(&b, ZARR_S3XML_DELETE_MAX);
    assert_int_equal(zarr_s3xml_parse(ZARR_S3XML_DELETE, b.data, b.len, 0,
                                      ZARR_S3XML_DELETE_MAX, &res),
                     ZARR_S3XML_OK);
    assert_int_equal(res.nobjects, ZARR_S3XML_DELETE_MAX);
    assert_object(&res.objects[999], "zarr/x/999", 10, NULL);
    zarr_s3xml_result_free(&res);

    build_delete(&b, ZARR_S3XML_DELETE_MAX + 1);
    assert_int_equal(zarr_s3xml_parse(ZARR_S3XML_DELETE, b.data, b.len, 0,
                                      ZARR_S3XML_DELETE_MAX, &res),
                     ZARR_S3XML_TOO_MANY);
    assert_non_null(strstr(res.message, "1000"));
    zarr_s3xml_result_free(&res);

    /* 0: no limit */
    assert_int_equal(zarr_s3xml_parse(ZARR_S3XML_DELETE, b.data, b.len, 0,
                                      0, &res),
                     ZARR_S3XML_OK);
    assert_int_equal(res.nobjects, ZARR_S3XML_DELETE_MAX + 1);
    zarr_s3xml_result_free(&res);

    /* a smaller limit, fed in pieces */
    build_delete(&b, 3);
    assert_int_equal(parse_both(ZARR_S3XML_DELETE, b.data, b.len, 0, 2,
                                &res), ZARR_S3XML_TOO_MANY);
    zarr_s3xml_result_free(&res);
    assert_int_equal(parse_both(ZARR_S3XML_DELETE, b.data, b.len, 0, 3,
                                &res), ZARR_S3XML_OK);
    zarr_s3xml_result_free(&res);

    /* the body size: exactly the limit passes, one byte more fails */
    assert_int_equal(parse_both(ZARR_S3XML_DELETE, b.data, b.len, b.len, 0,
                                &res), ZARR_S3XML_OK);
    zarr_s3xml_result_free(&res);
    assert_int_equal(parse_both(ZARR_S3XML_DELETE, b.data, b.len,
                                b.len - 1, 0, &res), ZARR_S3XML_TOO_LARGE);
    zarr_s3xml_result_free(&res);

    /* one text element over ZARR_S3XML_TEXT_MAX */

    big = malloc(ZARR_S3XML_TEXT_MAX + 2);
    assert_non_null(big);
    memset(big, 'k', ZARR_S3XML_TEXT_MAX + 1);
    big[ZARR_S3XML_TEXT_MAX + 1] = '\0';

    b.len = 0;
    assert_int_equal(zarr_buf_add_str(&b, "<Delete><Object><Key>"), 0);
    assert_int_equal(zarr_buf_add_str(&b, big), 0);
    assert_int_equal(zarr_buf_add_str(&b, "</Key></Object></Delete>"), 0);

    assert_int_equal(zarr_s3xml_parse(ZARR_S3XML_DELETE, b.data, b.len, 0,
                                      0, &res),
                     ZARR_S3XML_TOO_LARGE);
    zarr_s3xml_result_free(&res);

    b.len = 0;
    big[ZARR_S3XML_TEXT_MAX] = '\0';
    assert_int_equal(zarr_buf_add_str(&b, "<Delete><Object><Key>"), 0);
    assert_int_equal(zarr_buf_add_str(&b, big), 0);
    assert_int_equal(zarr_buf_add_str(&b, "</Key></Object></Delete>"), 0);

    assert_int_equal(zarr_s3xml_parse(ZARR_S3XML_DELETE, b.data, b.len, 0,
                                      0, &res),
                     ZARR_S3XML_OK);
    assert_int_equal(res.objects[0].key_len, ZARR_S3XML_TEXT_MAX);
    zarr_s3xml_result_free(&res);

    free(big);
    zarr_buf_free(&b);
}


static void
test_delete_request_partial(void **state)
{
    const char                 *body;
    zarr_s3xml_parser_t        *p;
    const zarr_s3xml_result_t  *r;

    (void) state;

    /* the objects so far are visible while feeding; destroy frees all */

    p = zarr_s3xml_create(ZARR_S3XML_DELETE, 0, ZARR_S3XML_DELETE_MAX);
    assert_non_null(p);

    body = "<Delete><Object><Key>a</Key></Object><Object><Key>b";
    assert_int_equal(zarr_s3xml_feed(p, body, strlen(body), 0),
                     ZARR_S3XML_OK);

    r = zarr_s3xml_result(p);
    assert_int_equal(r->nobjects, 1);
    assert_object(&r->objects[0], "a", 1, NULL);

    zarr_s3xml_destroy(p);
    zarr_s3xml_destroy(NULL);
}


/* DeleteObjects responses */


static void
test_delete_result(void **state)
{
    zarr_s3xml_result_t  res;

    (void) state;

    assert_int_equal(parse(ZARR_S3XML_DELETE_RESULT,
        XML_DECL
        "<DeleteResult xmlns=\"" S3_NS "\">"
        "<Deleted><Key>zarr/x/0.0</Key></Deleted>"
        "<Deleted><Key>zarr/x/0.1</Key><VersionId>v2</VersionId>"
        "<DeleteMarker>true</DeleteMarker>"
        "<DeleteMarkerVersionId>dm</DeleteMarkerVersionId></Deleted>"
        "<Error><Key>zarr/x/&amp;1</Key><Code>AccessDenied</Code>"
        "<Message>Access Denied</Message></Error>"
        "<Error><Key>zarr/x/2</Key><VersionId>v</VersionId>"
        "<Code>InternalError</Code></Error>"
        "</DeleteResult>", &res), ZARR_S3XML_OK);

    assert_int_equal(res.nobjects, 2);
    assert_object(&res.objects[0], "zarr/x/0.0", 10, NULL);
    assert_object(&res.objects[1], "zarr/x/0.1", 10, "v2");
    assert_null(res.objects[1].code);

    assert_int_equal(res.nerrors, 2);
    assert_object(&res.errors[0], "zarr/x/&1", 9, NULL);
    assert_string_equal(res.errors[0].code, "AccessDenied");
    assert_string_equal(res.errors[0].message, "Access Denied");
    assert_object(&res.errors[1], "zarr/x/2", 8, "v");
    assert_string_equal(res.errors[1].code, "InternalError");
    assert_null(res.errors[1].message);
    assert_string_equal(res.code, "");
    zarr_s3xml_result_free(&res);

    /* quiet and all deleted: nothing listed */
    assert_int_equal(parse(ZARR_S3XML_DELETE_RESULT,
        XML_DECL "<DeleteResult xmlns=\"" S3_NS "\"></DeleteResult>", &res),
        ZARR_S3XML_OK);
    assert_int_equal(res.nobjects, 0);
    assert_int_equal(res.nerrors, 0);
    zarr_s3xml_result_free(&res);

    /* RGW writes an empty one as <DeleteResult/> */
    assert_int_equal(parse(ZARR_S3XML_DELETE_RESULT, "<DeleteResult/>",
                           &res), ZARR_S3XML_OK);
    zarr_s3xml_result_free(&res);

    /* an error document in place of the result */
    assert_int_equal(parse(ZARR_S3XML_DELETE_RESULT,
        XML_DECL "<Error><Code>InternalError</Code><Message>We encountered "
        "an internal error. Please try again.</Message><RequestId>1"
        "</RequestId></Error>", &res), ZARR_S3XML_S3_ERROR);
    assert_string_equal(res.code, "InternalError");
    assert_string_equal(res.message,
                        "We encountered an internal error. Please try again.");
    zarr_s3xml_result_free(&res);

    expect_fail(ZARR_S3XML_DELETE_RESULT,
                "<DeleteResult><Error><Key>k</Key></Error></DeleteResult>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE_RESULT,
                "<DeleteResult><Deleted></Deleted></DeleteResult>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE_RESULT,
                "<DeleteResult><Deleted><Key>k</Key>", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE_RESULT, "", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_DELETE_RESULT, "<Delete/>",
                ZARR_S3XML_MALFORMED);
}


static void
test_delete_result_limit(void **state)
{
    size_t               i;
    zarr_buf_t           b;
    zarr_s3xml_result_t  res;

    (void) state;

    zarr_buf_init(&b);
    assert_int_equal(zarr_buf_add_str(&b, "<DeleteResult>"), 0);

    for (i = 0; i < 3; i++) {
        assert_int_equal(zarr_buf_add_str(&b, "<Deleted><Key>k</Key>"
                                              "</Deleted><Error><Key>e</Key>"
                                              "<Code>c</Code></Error>"), 0);
    }

    assert_int_equal(zarr_buf_add_str(&b, "</DeleteResult>"), 0);

    /* <Deleted> and <Error> count together */
    assert_int_equal(zarr_s3xml_parse(ZARR_S3XML_DELETE_RESULT, b.data,
                                      b.len, 0, 6, &res), ZARR_S3XML_OK);
    assert_int_equal(res.nobjects, 3);
    assert_int_equal(res.nerrors, 3);
    zarr_s3xml_result_free(&res);

    assert_int_equal(zarr_s3xml_parse(ZARR_S3XML_DELETE_RESULT, b.data,
                                      b.len, 0, 5, &res),
                     ZARR_S3XML_TOO_MANY);
    zarr_s3xml_result_free(&res);

    zarr_buf_free(&b);
}


/* CopyObject, UploadPartCopy, CompleteMultipartUpload responses */


static void
expect_etag(zarr_s3xml_kind_e kind, const char *body, const char *etag)
{
    zarr_s3xml_result_t  res;

    if (parse(kind, body, &res) != ZARR_S3XML_OK) {
        fail_msg("%s: %s", body, res.message);
    }

    if (etag == NULL) {
        assert_null(res.etag);

    } else {
        assert_non_null(res.etag);
        assert_string_equal(res.etag, etag);
        assert_int_equal(res.etag_len, strlen(etag));
    }

    zarr_s3xml_result_free(&res);
}


static void
test_copy_result(void **state)
{
    zarr_s3xml_result_t  res;

    (void) state;

    /* AWS */
    expect_etag(ZARR_S3XML_COPY_RESULT,
        XML_DECL "<CopyObjectResult xmlns=\"" S3_NS "\">"
        "<LastModified>2024-01-01T00:00:00.000Z</LastModified>"
        "<ETag>\"9b2cf535f27731c974343645a3985328\"</ETag>"
        "<ChecksumCRC32>abc=</ChecksumCRC32>"
        "</CopyObjectResult>", "9b2cf535f27731c974343645a3985328");

    /* RGW: unquoted */
    expect_etag(ZARR_S3XML_COPY_RESULT,
        "<CopyObjectResult><LastModified>2024-01-01T00:00:00.000Z"
        "</LastModified><ETag>9b2cf535f27731c974343645a3985328</ETag>"
        "</CopyObjectResult>", "9b2cf535f27731c974343645a3985328");

    /* entities, and a multipart ETag */
    expect_etag(ZARR_S3XML_COPY_RESULT,
        "<CopyObjectResult><ETag>&quot;d41d8cd98f00b204e9800998ecf8427e-3"
        "&quot;</ETag></CopyObjectResult>",
        "d41d8cd98f00b204e9800998ecf8427e-3");
    expect_etag(ZARR_S3XML_COPY_RESULT,
        "<CopyObjectResult><ETag>&#34;abc&#34;</ETag></CopyObjectResult>",
        "abc");

    /* indented */
    expect_etag(ZARR_S3XML_COPY_RESULT,
        "<CopyObjectResult>\n  <ETag>\n    \"abc\"\n  </ETag>\n"
        "</CopyObjectResult>", "abc");

    /* a lone quote is kept */
    expect_etag(ZARR_S3XML_COPY_RESULT,
        "<CopyObjectResult><ETag>\"</ETag></CopyObjectResult>", "\"");

    /* UploadPartCopy */
    expect_etag(ZARR_S3XML_COPY_RESULT,
        "<CopyPartResult><LastModified>x</LastModified><ETag>\"p1\"</ETag>"
        "</CopyPartResult>", "p1");

    /* AWS keeps the connection alive with whitespace before the body */
    expect_etag(ZARR_S3XML_COPY_RESULT,
        "  \n\n  \r\n\t" XML_DECL "\n\n<CopyObjectResult><ETag>\"e\"</ETag>"
        "</CopyObjectResult>\n", "e");

    /* a 200 whose body is an error */
    assert_int_equal(parse(ZARR_S3XML_COPY_RESULT,
        "   \n" XML_DECL "<Error><Code>SlowDown</Code>"
        "<Message>Please reduce your request rate &amp; retry.</Message>"
        "<Resource>/b/k</Resource><RequestId>1</RequestId></Error>",
        &res), ZARR_S3XML_S3_ERROR);
    assert_string_equal(res.code, "SlowDown");
    assert_string_equal(res.message,
                        "Please reduce your request rate & retry.");
    assert_null(res.etag);
    zarr_s3xml_result_free(&res);

    /* an error document without a message */
    assert_int_equal(parse(ZARR_S3XML_COPY_RESULT,
        "<Error xmlns=\"" S3_NS "\"><Code>InternalError</Code></Error>",
        &res), ZARR_S3XML_S3_ERROR);
    assert_string_equal(res.code, "InternalError");
    assert_string_equal(res.message, "");
    zarr_s3xml_result_free(&res);

    /* not a result: the copy's outcome is unknown */
    expect_fail(ZARR_S3XML_COPY_RESULT, "", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_COPY_RESULT, "   ", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_COPY_RESULT, "<CopyObjectResult><ETag>\"abc",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_COPY_RESULT,
                "<CopyObjectResult><LastModified>x</LastModified>"
                "</CopyObjectResult>", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_COPY_RESULT,
                "<CopyObjectResult><ETag>a</ETag><ETag>b</ETag>"
                "</CopyObjectResult>", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_COPY_RESULT,
                "<CompleteMultipartUploadResult><ETag>a</ETag>"
                "</CompleteMultipartUploadResult>", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_COPY_RESULT, "<Error><Code>x</Code>",
                ZARR_S3XML_MALFORMED);
}


static void
test_complete_result(void **state)
{
    zarr_s3xml_result_t  res;

    (void) state;

    expect_etag(ZARR_S3XML_COMPLETE_RESULT,
        XML_DECL "<CompleteMultipartUploadResult xmlns=\"" S3_NS "\">"
        "<Location>http://b.s3.amazonaws.com/zarr/x/0.0</Location>"
        "<Bucket>b</Bucket><Key>zarr/x/0.0</Key>"
        "<ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>"
        "</CompleteMultipartUploadResult>",
        "3858f62230ac3c915f300c664312c11f-9");

    /* RGW: an empty ETag */
    expect_etag(ZARR_S3XML_COMPLETE_RESULT,
        "<CompleteMultipartUploadResult><Location>l</Location>"
        "<Bucket>b</Bucket><Key>k</Key><ETag></ETag>"
        "</CompleteMultipartUploadResult>", "");

    /* none at all */
    expect_etag(ZARR_S3XML_COMPLETE_RESULT,
        "<CompleteMultipartUploadResult><Key>k</Key>"
        "</CompleteMultipartUploadResult>", NULL);

    /* the 200 with an error body, after keep-alive whitespace */
    assert_int_equal(parse(ZARR_S3XML_COMPLETE_RESULT,
        "\n\n\n" XML_DECL "\n<Error><Code>InvalidPart</Code>"
        "<Message>One or more of the specified parts could not be found."
        "</Message><UploadId>u</UploadId><PartNumber>2</PartNumber>"
        "</Error>", &res), ZARR_S3XML_S3_ERROR);
    assert_string_equal(res.code, "InvalidPart");
    zarr_s3xml_result_free(&res);

    expect_fail(ZARR_S3XML_COMPLETE_RESULT, "", ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_COMPLETE_RESULT, "<CopyObjectResult/>",
                ZARR_S3XML_MALFORMED);
    expect_fail(ZARR_S3XML_COMPLETE_RESULT,
                "<CompleteMultipartUploadResult><ETag>a<b/></ETag>"
                "</CompleteMultipartUploadResult>", ZARR_S3XML_MALFORMED);
}


static void
test_error_truncation(void **state)
{
    size_t               i;
    zarr_buf_t           b;
    zarr_s3xml_result_t  res;

    (void) state;

    /* long code and message: cut, never inside a UTF-8 sequence */

    zarr_buf_init(&b);
    assert_int_equal(zarr_buf_add_str(&b, "<Error><Code>"), 0);

    for (i = 0; i < 100; i++) {
        assert_int_equal(zarr_buf_add_str(&b, "C"), 0);
    }

    assert_int_equal(zarr_buf_add_str(&b, "</Code><Message>"), 0);

    for (i = 0; i < 600; i++) {
        assert_int_equal(zarr_buf_add_str(&b, "\xc3\xa9"), 0);
    }

    assert_int_equal(zarr_buf_add_str(&b, "</Message></Error>"), 0);

    assert_int_equal(zarr_s3xml_parse(ZARR_S3XML_COPY_RESULT, b.data, b.len,
                                      0, 0, &res), ZARR_S3XML_S3_ERROR);
    assert_int_equal(strlen(res.code), ZARR_S3XML_CODE_MAX - 1);
    assert_int_equal(strlen(res.message), ZARR_S3XML_MESSAGE_MAX - 2);
    assert_int_equal(zarr_utf8_valid_prefix(res.message,
                                            strlen(res.message)),
                     strlen(res.message));
    zarr_s3xml_result_free(&res);

    zarr_buf_free(&b);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_error_body),
        cmocka_unit_test(test_error_body_roundtrip),
        cmocka_unit_test(test_delete_request),
        cmocka_unit_test(test_delete_request_keys),
        cmocka_unit_test(test_delete_request_bad),
        cmocka_unit_test(test_delete_request_doctype),
        cmocka_unit_test(test_delete_request_limits),
        cmocka_unit_test(test_delete_request_partial),
        cmocka_unit_test(test_delete_result),
        cmocka_unit_test(test_delete_result_limit),
        cmocka_unit_test(test_copy_result),
        cmocka_unit_test(test_complete_result),
        cmocka_unit_test(test_error_truncation),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
