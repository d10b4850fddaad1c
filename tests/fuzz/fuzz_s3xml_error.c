
/*
 * S3 <Error> documents, both ways: the gateway's own (zarr_s3xml_escape,
 * zarr_s3xml_error_body) must always be well-formed and read back as
 * written; any body given to zarr_s3_parse_error (the client's reader)
 * or to the result parsers as a 200 body is answered cleanly.
 *
 * Input: byte 0 and 1 split the rest into code, message and resource.
 */


#include "fuzz.h"
#include "zarr_json.h"
#include "zarr_s3.h"
#include "zarr_s3xml.h"


static int fuzz_xml_clean(const char *s, size_t len);


/* survives escaping and parsing unchanged */

static int
fuzz_xml_clean(const char *s, size_t len)
{
    size_t                i;
    const unsigned char  *p;

    if (zarr_utf8_valid_prefix(s, len) != len) {
        return 0;
    }

    p = (const unsigned char *) s;

    for (i = 0; i < len; i++) {
        if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') {
            return 0;
        }

        /* U+FFFE, U+FFFF */
        if (i + 2 < len && p[i] == 0xef && p[i + 1] == 0xbf
            && (p[i + 2] == 0xbe || p[i + 2] == 0xbf))
        {
            return 0;
        }
    }

    return 1;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                  rc;
    size_t               a, b, len;
    const char          *s;
    zarr_buf_t           buf;
    zarr_s3_error_t      err;
    zarr_s3xml_error_t   e;
    zarr_s3xml_result_t  res;

    if (size < 2) {
        return 0;
    }

    s = (const char *) data + 2;
    len = size - 2;

    /* the raw input as an error body, for both readers */

    memset(&err, 0, sizeof(err));
    if (zarr_s3_parse_error(s, len, &err) == 0) {
        FUZZ_CHECK(memchr(err.code, '\0', sizeof(err.code)) != NULL);
        FUZZ_CHECK(memchr(err.message, '\0', sizeof(err.message)) != NULL);
    }

    rc = zarr_s3xml_parse(ZARR_S3XML_COPY_RESULT, s, len, 0, 0, &res);
    FUZZ_CHECK(rc <= ZARR_S3XML_S3_ERROR && rc >= ZARR_S3XML_NOMEM);
    zarr_s3xml_result_free(&res);

    /* the same bytes as the fields of an error document we write */

    a = data[0] % (len + 1);
    b = a + data[1] % (len - a + 1);

    memset(&e, 0, sizeof(e));
    e.code = s;
    e.code_len = a;
    e.message = s + a;
    e.message_len = b - a;
    e.resource = (data[0] & 1) ? s + b : NULL;
    e.resource_len = len - b;

    zarr_buf_init(&buf);

    if (zarr_s3xml_error_body(&buf, &e) != 0) {
        zarr_buf_free(&buf);
        return 0;
    }

    memset(&err, 0, sizeof(err));
    FUZZ_CHECK(zarr_s3_parse_error(buf.data, buf.len, &err) == 0);

    if (fuzz_xml_clean(e.code, e.code_len)
        && e.code_len < sizeof(err.code))
    {
        FUZZ_CHECK(strlen(err.code) == e.code_len);
        FUZZ_CHECK(memcmp(err.code, e.code, e.code_len) == 0);
    }

    if (fuzz_xml_clean(e.message, e.message_len)
        && e.message_len < sizeof(err.message))
    {
        FUZZ_CHECK(strlen(err.message) == e.message_len);
        FUZZ_CHECK(memcmp(err.message, e.message, e.message_len) == 0);
    }

    /* and the gateway's reader of 200 bodies sees an <Error> in it */
    rc = zarr_s3xml_parse(ZARR_S3XML_COPY_RESULT, buf.data, buf.len, 0, 0,
                          &res);
    FUZZ_CHECK(rc == ZARR_S3XML_S3_ERROR || rc == ZARR_S3XML_TOO_LARGE
               || rc == ZARR_S3XML_NOMEM);
    zarr_s3xml_result_free(&res);

    zarr_buf_free(&buf);

    return 0;
}
