/*
 * A small synchronous S3 client: libcurl for HTTP, zarr_sigv4 for
 * signatures, expat (streaming) for the XML bodies.
 */

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <strings.h>
#include <inttypes.h>

#include <curl/curl.h>
#include <expat.h>

#include "zarr_hash.h"
#include "zarr_sigv4.h"
#include "zarr_json.h"
#include "zarr_s3.h"


/* longest text kept from one XML element (a key is at most 1024 bytes) */
#define ZARR_S3_XML_TEXT_MAX   65536

/* separates namespace URI and local name in expat element names */
#define ZARR_S3_XML_NS_SEP     '\n'

#define ZARR_S3_DEFAULT_REGION           "us-east-1"
#define ZARR_S3_DEFAULT_CONNECT_TIMEOUT  10000
#define ZARR_S3_DEFAULT_TIMEOUT          300000




typedef enum {
    ZARR_S3_ROOT_NONE = 0,
    ZARR_S3_ROOT_LIST,
    ZARR_S3_ROOT_VERSIONING,
    ZARR_S3_ROOT_LIFECYCLE,
    ZARR_S3_ROOT_UPLOAD,            /* InitiateMultipartUploadResult */
    ZARR_S3_ROOT_OTHER,             /* CompleteMultipartUploadResult */
    ZARR_S3_ROOT_ERROR
} zarr_s3_root_e;


typedef enum {
    ZARR_S3_FIELD_NONE = 0,
    ZARR_S3_FIELD_KEY,
    ZARR_S3_FIELD_SIZE,
    ZARR_S3_FIELD_ETAG,
    ZARR_S3_FIELD_TRUNCATED,
    ZARR_S3_FIELD_TOKEN,
    ZARR_S3_FIELD_ENCODING,
    ZARR_S3_FIELD_CODE,
    ZARR_S3_FIELD_MESSAGE,
    ZARR_S3_FIELD_VERSION_ID,
    ZARR_S3_FIELD_LATEST,
    ZARR_S3_FIELD_NEXT_KEY,
    ZARR_S3_FIELD_NEXT_VERSION,
    ZARR_S3_FIELD_STATUS,
    ZARR_S3_FIELD_RULE_STATUS,
    ZARR_S3_FIELD_UPLOAD_ID
} zarr_s3_field_e;


struct zarr_s3_list_parser_s {
    XML_Parser            parser;
    zarr_s3_object_pt     handler;
    void                 *data;
    zarr_s3_list_page_t   page;

    int                   rc;          /* ZARR_S3_OK / _STOPPED / _ERROR */
    int                   depth;
    zarr_s3_root_e        root;
    zarr_s3_field_e       field;
    int                   in_contents;
    int                   seen_contents;
    int                   complete;    /* the whole body was well-formed */

    zarr_buf_t         text;

    /* the <Contents> being read */
    zarr_buf_t         key;
    zarr_buf_t         etag;
    zarr_buf_t         version;
    uint64_t              size;
    int                   have_key;
    int                   have_size;
    int                   is_version;  /* a <Version> of a versions list */
    int                   is_latest;

    /* the <Rule> of a lifecycle configuration being read */
    int                   rule_enabled;
    int                   rule_noncurrent;
};


struct zarr_s3_s {
    CURL                 *curl;
    char                 *base;        /* "http://host:port" */
    char                 *host;        /* Host header value */
    char                 *access_key;
    char                 *secret_key;
    char                 *region;
    long                  connect_timeout_ms;
    long                  timeout_ms;
    size_t                max_response;
    char                  curl_error[CURL_ERROR_SIZE];
};


/* one transfer in progress */
typedef struct {
    zarr_s3_t              *s3;
    zarr_s3_response_t     *resp;
    zarr_buf_t           body;

    /* when set, a 2xx body is streamed into it instead of kept */
    zarr_s3_list_parser_t  *parser;
    int                     mode;      /* 0: undecided, 1: keep, 2: parse */
    int                     parser_rc;
    int                     too_large;
    int                     bad_header;
} zarr_s3_transfer_t;


static void zarr_s3_set_error(zarr_s3_error_t *err, long status,
    const char *code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static const char *zarr_s3_local_name(const XML_Char *name);
static void zarr_s3_xml_fail(zarr_s3_list_parser_t *p, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void XMLCALL zarr_s3_xml_start(void *data, const XML_Char *name,
    const XML_Char **atts);
static void XMLCALL zarr_s3_xml_end(void *data, const XML_Char *name);
static void XMLCALL zarr_s3_xml_text(void *data, const XML_Char *s, int len);
static void XMLCALL zarr_s3_xml_doctype(void *data,
    const XML_Char *doctype_name, const XML_Char *sysid,
    const XML_Char *pubid, int has_internal_subset);
static void zarr_s3_xml_field_done(zarr_s3_list_parser_t *p);
static void zarr_s3_xml_object_done(zarr_s3_list_parser_t *p);
static int zarr_s3_parse_u64(const char *s, size_t len, uint64_t *out);
static int zarr_s3_bucket_get(zarr_s3_t *s3, const char *bucket,
    zarr_sigv4_param_t *params, size_t n, zarr_s3_object_pt handler,
    void *data, zarr_s3_list_parser_t **pp, long *status,
    zarr_s3_error_t *err);
static void zarr_s3_param(zarr_sigv4_param_t *p, const char *name,
    const char *value, size_t value_len);
static int zarr_s3_hexval(int c);
static int zarr_s3_parse_endpoint(zarr_s3_t *s3, const char *endpoint,
    char *err, size_t errlen);
static char *zarr_s3_strdup_or(const char *s, const char *dflt);
static size_t zarr_s3_write(char *ptr, size_t size, size_t nmemb,
    void *userdata);
static size_t zarr_s3_header(char *ptr, size_t size, size_t nmemb,
    void *userdata);
static int zarr_s3_perform(zarr_s3_t *s3, const zarr_s3_request_t *req,
    zarr_s3_list_parser_t *parser, zarr_s3_response_t *resp);
static struct curl_slist *zarr_s3_add_header(struct curl_slist *list,
    const char *name, const char *value, int *failed);


/* string buffer */


static void
zarr_s3_set_error(zarr_s3_error_t *err, long status, const char *code,
    const char *fmt, ...)
{
    va_list  args;

    err->status = status;

    snprintf(err->code, sizeof(err->code), "%s", code ? code : "");

    va_start(args, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, args);
    va_end(args);
}


/* XML: ListObjectsV2 pages and <Error> documents */


static const char *
zarr_s3_local_name(const XML_Char *name)
{
    const char  *p;

    p = strrchr(name, ZARR_S3_XML_NS_SEP);

    return p ? p + 1 : name;
}


static void
zarr_s3_xml_fail(zarr_s3_list_parser_t *p, const char *fmt, ...)
{
    size_t   n;
    va_list  args;

    if (p->rc != ZARR_S3_OK) {
        return;
    }

    p->rc = ZARR_S3_ERROR;

    zarr_s3_set_error(&p->page.error, 0, NULL, "bad S3 XML: ");
    n = strlen(p->page.error.message);

    va_start(args, fmt);
    vsnprintf(p->page.error.message + n, sizeof(p->page.error.message) - n,
              fmt, args);
    va_end(args);

    XML_StopParser(p->parser, XML_FALSE);
}


static void XMLCALL
zarr_s3_xml_start(void *data, const XML_Char *name, const XML_Char **atts)
{
    zarr_s3_list_parser_t *p = data;

    const char       *local;
    zarr_s3_field_e   field;

    (void) atts;

    if (p->rc != ZARR_S3_OK) {
        return;
    }

    local = zarr_s3_local_name(name);
    p->depth++;

    if (p->field != ZARR_S3_FIELD_NONE) {
        zarr_s3_xml_fail(p, "unexpected element <%s> in a text element",
                         local);
        return;
    }

    if (p->depth == 1) {
        if (strcmp(local, "ListBucketResult") == 0
            || strcmp(local, "ListVersionsResult") == 0)
        {
            p->root = ZARR_S3_ROOT_LIST;

        } else if (strcmp(local, "VersioningConfiguration") == 0) {
            p->root = ZARR_S3_ROOT_VERSIONING;

        } else if (strcmp(local, "LifecycleConfiguration") == 0) {
            p->root = ZARR_S3_ROOT_LIFECYCLE;

        } else if (strcmp(local, "InitiateMultipartUploadResult") == 0) {
            p->root = ZARR_S3_ROOT_UPLOAD;

        } else if (strcmp(local, "CompleteMultipartUploadResult") == 0) {
            p->root = ZARR_S3_ROOT_OTHER;

        } else if (strcmp(local, "Error") == 0) {
            p->root = ZARR_S3_ROOT_ERROR;

        } else {
            zarr_s3_xml_fail(p, "unexpected root element <%s>", local);
        }

        return;
    }

    field = ZARR_S3_FIELD_NONE;

    if (p->root == ZARR_S3_ROOT_ERROR) {
        if (p->depth == 2) {
            if (strcmp(local, "Code") == 0) {
                field = ZARR_S3_FIELD_CODE;

            } else if (strcmp(local, "Message") == 0) {
                field = ZARR_S3_FIELD_MESSAGE;
            }
        }

    } else if (p->root == ZARR_S3_ROOT_VERSIONING) {
        if (p->depth == 2 && strcmp(local, "Status") == 0) {
            field = ZARR_S3_FIELD_STATUS;
        }

    } else if (p->root == ZARR_S3_ROOT_UPLOAD
               || p->root == ZARR_S3_ROOT_OTHER)
    {
        if (p->root == ZARR_S3_ROOT_UPLOAD && p->depth == 2
            && strcmp(local, "UploadId") == 0)
        {
            field = ZARR_S3_FIELD_UPLOAD_ID;
        }

    } else if (p->root == ZARR_S3_ROOT_LIFECYCLE) {
        if (p->depth == 2 && strcmp(local, "Rule") == 0) {
            p->rule_enabled = 0;
            p->rule_noncurrent = 0;

        } else if (p->depth == 3 && strcmp(local, "Status") == 0) {
            field = ZARR_S3_FIELD_RULE_STATUS;

        } else if (p->depth == 3
                   && strcmp(local, "NoncurrentVersionExpiration") == 0)
        {
            p->rule_noncurrent = 1;
        }

    } else if (p->depth == 2) {

        if (strcmp(local, "Contents") == 0
            || strcmp(local, "Version") == 0
            || strcmp(local, "DeleteMarker") == 0)
        {
            /* a delete marker is read and then skipped */
            p->in_contents = local[0] == 'D' ? 2 : 1;
            p->is_version = local[0] == 'V';
            p->is_latest = 0;
            p->seen_contents = 1;
            p->have_key = 0;
            p->have_size = 0;
            zarr_buf_reset(&p->key);
            zarr_buf_reset(&p->etag);
            zarr_buf_reset(&p->version);

        } else if (strcmp(local, "IsTruncated") == 0) {
            field = ZARR_S3_FIELD_TRUNCATED;

        } else if (strcmp(local, "NextContinuationToken") == 0) {
            field = ZARR_S3_FIELD_TOKEN;

        } else if (strcmp(local, "EncodingType") == 0) {
            field = ZARR_S3_FIELD_ENCODING;

        } else if (strcmp(local, "NextKeyMarker") == 0) {
            field = ZARR_S3_FIELD_NEXT_KEY;

        } else if (strcmp(local, "NextVersionIdMarker") == 0) {
            field = ZARR_S3_FIELD_NEXT_VERSION;
        }

    } else if (p->depth == 3 && p->in_contents) {

        if (strcmp(local, "Key") == 0) {
            field = ZARR_S3_FIELD_KEY;

        } else if (strcmp(local, "Size") == 0) {
            field = ZARR_S3_FIELD_SIZE;

        } else if (strcmp(local, "ETag") == 0) {
            field = ZARR_S3_FIELD_ETAG;

        } else if (strcmp(local, "VersionId") == 0) {
            field = ZARR_S3_FIELD_VERSION_ID;

        } else if (strcmp(local, "IsLatest") == 0) {
            field = ZARR_S3_FIELD_LATEST;
        }
    }

    if (field != ZARR_S3_FIELD_NONE) {
        p->field = field;
        zarr_buf_reset(&p->text);
    }
}


static void XMLCALL
zarr_s3_xml_end(void *data, const XML_Char *name)
{
    zarr_s3_list_parser_t *p = data;

    (void) name;

    if (p->rc != ZARR_S3_OK) {
        return;
    }

    if (p->field != ZARR_S3_FIELD_NONE) {
        zarr_s3_xml_field_done(p);
        p->field = ZARR_S3_FIELD_NONE;

    } else if (p->depth == 2 && p->in_contents) {
        zarr_s3_xml_object_done(p);
        p->in_contents = 0;

    } else if (p->depth == 2 && p->root == ZARR_S3_ROOT_LIFECYCLE) {
        /* the end of a <Rule> */
        if (p->rule_enabled && p->rule_noncurrent) {
            p->page.expires_noncurrent = 1;
        }
    }

    p->depth--;
}


static void XMLCALL
zarr_s3_xml_text(void *data, const XML_Char *s, int len)
{
    zarr_s3_list_parser_t *p = data;

    if (p->rc != ZARR_S3_OK || p->field == ZARR_S3_FIELD_NONE) {
        return;
    }

    if (p->text.len + (size_t) len > ZARR_S3_XML_TEXT_MAX) {
        zarr_s3_xml_fail(p, "element text too long");
        return;
    }

    zarr_buf_put(&p->text, s, (size_t) len);
}


static void XMLCALL
zarr_s3_xml_doctype(void *data, const XML_Char *doctype_name,
    const XML_Char *sysid, const XML_Char *pubid, int has_internal_subset)
{
    (void) doctype_name;
    (void) sysid;
    (void) pubid;
    (void) has_internal_subset;

    /* S3 never sends one; refusing DTDs rules out entity tricks */

    zarr_s3_xml_fail(data, "DOCTYPE not allowed");
}


static void
zarr_s3_xml_field_done(zarr_s3_list_parser_t *p)
{
    char            *dup;
    const char      *t;
    size_t           n;
    zarr_s3_field_e  field;

    if (p->text.failed) {
        zarr_s3_xml_fail(p, "out of memory");
        return;
    }

    t = p->text.data ? p->text.data : "";
    n = p->text.len;
    field = p->field;

    switch (field) {

    case ZARR_S3_FIELD_KEY:
        zarr_buf_reset(&p->key);
        zarr_buf_put(&p->key, t, n);
        p->have_key = 1;
        break;

    case ZARR_S3_FIELD_ETAG:
        zarr_buf_reset(&p->etag);
        zarr_buf_put(&p->etag, t, n);
        break;

    case ZARR_S3_FIELD_SIZE:
        if (zarr_s3_parse_u64(t, n, &p->size) != 0) {
            zarr_s3_xml_fail(p, "bad <Size> \"%s\"", t);
            return;
        }

        p->have_size = 1;
        break;

    case ZARR_S3_FIELD_TRUNCATED:
        if (strcmp(t, "true") == 0) {
            p->page.is_truncated = 1;

        } else if (strcmp(t, "false") == 0) {
            p->page.is_truncated = 0;

        } else {
            zarr_s3_xml_fail(p, "bad <IsTruncated> \"%s\"", t);
        }

        break;

    case ZARR_S3_FIELD_TOKEN:
        free(p->page.next_token);
        p->page.next_token = strdup(t);

        if (p->page.next_token == NULL) {
            zarr_s3_xml_fail(p, "out of memory");
        }

        break;

    case ZARR_S3_FIELD_ENCODING:
        if (strcmp(t, "url") != 0) {
            zarr_s3_xml_fail(p, "unknown <EncodingType> \"%s\"", t);
            return;
        }

        /*
         * the keys already reported were taken verbatim: they cannot be
         * fixed now, fail rather than report wrong keys
         */

        if (p->seen_contents) {
            zarr_s3_xml_fail(p, "<EncodingType> after <Contents>");
            return;
        }

        p->page.url_encoded = 1;
        break;

    case ZARR_S3_FIELD_VERSION_ID:
        zarr_buf_reset(&p->version);
        zarr_buf_put(&p->version, t, n);
        zarr_buf_put(&p->version, "", 1);
        break;

    case ZARR_S3_FIELD_LATEST:
        if (strcmp(t, "true") == 0) {
            p->is_latest = 1;

        } else if (strcmp(t, "false") == 0) {
            p->is_latest = 0;

        } else {
            zarr_s3_xml_fail(p, "bad <IsLatest> \"%s\"", t);
        }

        break;

    case ZARR_S3_FIELD_NEXT_KEY:
    case ZARR_S3_FIELD_NEXT_VERSION:
        if (field == ZARR_S3_FIELD_NEXT_KEY) {
            free(p->page.next_key);
            p->page.next_key = strdup(t);
            dup = p->page.next_key;

        } else {
            free(p->page.next_version);
            p->page.next_version = strdup(t);
            dup = p->page.next_version;
        }

        if (dup == NULL) {
            zarr_s3_xml_fail(p, "out of memory");
        }

        break;

    case ZARR_S3_FIELD_STATUS:
        snprintf(p->page.versioning, sizeof(p->page.versioning), "%s", t);
        break;

    case ZARR_S3_FIELD_RULE_STATUS:
        p->rule_enabled = (strcmp(t, "Enabled") == 0);
        break;

    case ZARR_S3_FIELD_UPLOAD_ID:
        free(p->page.upload_id);
        p->page.upload_id = strdup(t);

        if (p->page.upload_id == NULL) {
            zarr_s3_xml_fail(p, "out of memory");
        }

        break;

    case ZARR_S3_FIELD_CODE:
        snprintf(p->page.error.code, sizeof(p->page.error.code), "%s", t);
        break;

    case ZARR_S3_FIELD_MESSAGE:
        snprintf(p->page.error.message, sizeof(p->page.error.message),
                 "%s", t);
        break;

    case ZARR_S3_FIELD_NONE:
        break;
    }
}


static void
zarr_s3_xml_object_done(zarr_s3_list_parser_t *p)
{
    size_t            n;
    zarr_s3_object_t  obj;

    if (p->in_contents == 2) {
        /* a <DeleteMarker>: no object */
        return;
    }

    if (!p->have_key || !p->have_size) {
        zarr_s3_xml_fail(p, "<Contents> without <Key> or <Size>");
        return;
    }

    if (p->key.failed || p->etag.failed || p->version.failed) {
        zarr_s3_xml_fail(p, "out of memory");
        return;
    }

    obj.key = p->key.data ? p->key.data : "";
    obj.key_len = p->key.len;

    if (p->page.url_encoded) {
        if (zarr_s3_url_decode(p->key.data, &p->key.len) != 0) {
            zarr_s3_xml_fail(p, "bad URL encoding in key \"%s\"", obj.key);
            return;
        }

        obj.key_len = p->key.len;
    }

    /* the ETag verbatim, only the surrounding quotes cut */

    obj.etag = p->etag.data ? p->etag.data : "";
    n = p->etag.len;

    if (n >= 2 && obj.etag[0] == '"' && obj.etag[n - 1] == '"') {
        p->etag.data[n - 1] = '\0';
        obj.etag++;
        n -= 2;
    }

    obj.etag_len = n;
    obj.size = p->size;
    obj.version_id = NULL;
    obj.version_id_len = 0;

    if (p->is_version) {
        if (!p->is_latest) {
            /* an older version: not an object of the listing */
            return;
        }

        if (p->version.len == 0) {
            zarr_s3_xml_fail(p, "<Version> without <VersionId>");
            return;
        }

        obj.version_id = p->version.data;
        obj.version_id_len = p->version.len - 1;
    }

    p->page.objects++;

    if (p->handler && p->handler(&obj, p->data) != 0) {
        p->rc = ZARR_S3_STOPPED;
        XML_StopParser(p->parser, XML_FALSE);
    }
}


static int
zarr_s3_parse_u64(const char *s, size_t len, uint64_t *out)
{
    size_t    i;
    uint64_t  v;

    if (len == 0 || len > 20) {
        return -1;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        if (v > (UINT64_MAX - (uint64_t) (s[i] - '0')) / 10) {
            return -1;
        }

        v = v * 10 + (uint64_t) (s[i] - '0');
    }

    *out = v;

    return 0;
}


static int
zarr_s3_hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}


int
zarr_s3_url_decode(char *s, size_t *len)
{
    int     hi, lo;
    size_t  i, n;

    n = 0;

    for (i = 0; i < *len; i++) {

        if (s[i] == '+') {
            s[n++] = ' ';
            continue;
        }

        if (s[i] != '%') {
            s[n++] = s[i];
            continue;
        }

        if (i + 2 >= *len) {
            return -1;
        }

        hi = zarr_s3_hexval((unsigned char) s[i + 1]);
        lo = zarr_s3_hexval((unsigned char) s[i + 2]);

        if (hi < 0 || lo < 0) {
            return -1;
        }

        s[n++] = (char) (hi * 16 + lo);
        i += 2;
    }

    if (n < *len) {
        s[n] = '\0';
    }

    *len = n;

    return 0;
}


zarr_s3_list_parser_t *
zarr_s3_list_parser_create(zarr_s3_object_pt handler, void *data)
{
    zarr_s3_list_parser_t  *p;

    p = calloc(1, sizeof(zarr_s3_list_parser_t));
    if (p == NULL) {
        return NULL;
    }

    p->parser = XML_ParserCreateNS(NULL, ZARR_S3_XML_NS_SEP);
    if (p->parser == NULL) {
        free(p);
        return NULL;
    }

    p->handler = handler;
    p->data = data;
    p->rc = ZARR_S3_OK;

    XML_SetUserData(p->parser, p);
    XML_SetElementHandler(p->parser, zarr_s3_xml_start, zarr_s3_xml_end);
    XML_SetCharacterDataHandler(p->parser, zarr_s3_xml_text);
    XML_SetStartDoctypeDeclHandler(p->parser, zarr_s3_xml_doctype);

    return p;
}


int
zarr_s3_list_parser_feed(zarr_s3_list_parser_t *p, const char *buf,
    size_t len, int last)
{
    int             chunk;
    enum XML_Error  code;

    if (p->rc != ZARR_S3_OK) {
        return p->rc;
    }

    /* XML_Parse() takes an int length */

    do {
        chunk = len > 65536 ? 65536 : (int) len;

        if (XML_Parse(p->parser, buf, chunk, last && (size_t) chunk == len)
            != XML_STATUS_OK)
        {
            if (p->rc != ZARR_S3_OK) {
                return p->rc;
            }

            code = XML_GetErrorCode(p->parser);

            p->rc = ZARR_S3_ERROR;
            zarr_s3_set_error(&p->page.error, 0, NULL,
                              "bad S3 XML: %s at line %lu",
                              XML_ErrorString(code),
                              (unsigned long)
                                  XML_GetCurrentLineNumber(p->parser));
            return p->rc;
        }

        if (p->rc != ZARR_S3_OK) {
            return p->rc;
        }

        buf += chunk;
        len -= (size_t) chunk;

    } while (len > 0);

    if (!last) {
        return ZARR_S3_OK;
    }

    p->complete = 1;

    if (p->root == ZARR_S3_ROOT_ERROR) {
        p->rc = ZARR_S3_ERROR;
        return p->rc;
    }

    return ZARR_S3_OK;
}


const zarr_s3_list_page_t *
zarr_s3_list_parser_page(const zarr_s3_list_parser_t *p)
{
    return &p->page;
}


void
zarr_s3_list_parser_destroy(zarr_s3_list_parser_t *p)
{
    if (p == NULL) {
        return;
    }

    XML_ParserFree(p->parser);
    free(p->page.next_token);
    free(p->page.next_key);
    free(p->page.next_version);
    free(p->page.upload_id);
    free(p->text.data);
    free(p->key.data);
    free(p->etag.data);
    free(p->version.data);
    free(p);
}


int
zarr_s3_list_parse(const char *body, size_t len, zarr_s3_object_pt handler,
    void *data, zarr_s3_list_page_t *page)
{
    int                     rc;
    zarr_s3_list_parser_t  *p;

    memset(page, 0, sizeof(zarr_s3_list_page_t));

    p = zarr_s3_list_parser_create(handler, data);
    if (p == NULL) {
        zarr_s3_set_error(&page->error, 0, NULL, "out of memory");
        return ZARR_S3_ERROR;
    }

    rc = zarr_s3_list_parser_feed(p, body, len, 1);

    /* hand the page over, token included */

    *page = p->page;
    p->page.next_token = NULL;
    p->page.next_key = NULL;
    p->page.next_version = NULL;
    p->page.upload_id = NULL;

    zarr_s3_list_parser_destroy(p);

    return rc;
}


void
zarr_s3_list_page_free(zarr_s3_list_page_t *page)
{
    free(page->next_token);
    page->next_token = NULL;
    free(page->next_key);
    page->next_key = NULL;
    free(page->next_version);
    page->next_version = NULL;
    free(page->upload_id);
    page->upload_id = NULL;
}


int
zarr_s3_parse_error(const char *body, size_t len, zarr_s3_error_t *err)
{
    int                     rc;
    zarr_s3_list_parser_t  *p;

    p = zarr_s3_list_parser_create(NULL, NULL);
    if (p == NULL) {
        return -1;
    }

    rc = zarr_s3_list_parser_feed(p, body, len, 1);

    if (rc != ZARR_S3_ERROR || p->root != ZARR_S3_ROOT_ERROR
        || !p->complete)
    {
        zarr_s3_list_parser_destroy(p);
        return -1;
    }

    memcpy(err->code, p->page.error.code, sizeof(err->code));
    memcpy(err->message, p->page.error.message, sizeof(err->message));

    zarr_s3_list_parser_destroy(p);

    return 0;
}


/* the client */


int
zarr_s3_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}


void
zarr_s3_global_cleanup(void)
{
    curl_global_cleanup();
}


static char *
zarr_s3_strdup_or(const char *s, const char *dflt)
{
    return strdup((s && *s) ? s : dflt);
}


static int
zarr_s3_parse_endpoint(zarr_s3_t *s3, const char *endpoint, char *err,
    size_t errlen)
{
    int            rc;
    char          *scheme, *host, *port, *path, *query, *user;
    CURLU         *u;
    zarr_buf_t  b;

    scheme = NULL;
    host = NULL;
    port = NULL;
    path = NULL;
    query = NULL;
    user = NULL;
    rc = -1;

    u = curl_url();
    if (u == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    if (curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
    {
        snprintf(err, errlen, "invalid endpoint URL \"%s\"", endpoint);
        goto done;
    }

    if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
        snprintf(err, errlen, "endpoint \"%s\": scheme must be http or https",
                 endpoint);
        goto done;
    }

    /* no path: the signer encodes the whole path from bucket and key */

    if ((curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK
         && strcmp(path, "/") != 0 && path[0] != '\0')
        || curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK
        || curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
    {
        snprintf(err, errlen, "endpoint \"%s\" must be scheme://host[:port] "
                 "only", endpoint);
        goto done;
    }

    /* an explicit port only; a default one is left out, as clients do */

    if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK
        && ((strcasecmp(scheme, "http") == 0 && strcmp(port, "80") == 0)
            || (strcasecmp(scheme, "https") == 0 && strcmp(port, "443") == 0)))
    {
        curl_free(port);
        port = NULL;
    }

    memset(&b, 0, sizeof(zarr_buf_t));
    zarr_buf_puts(&b, host);

    if (port) {
        zarr_buf_put(&b, ":", 1);
        zarr_buf_puts(&b, port);
    }

    if (b.failed) {
        free(b.data);
        snprintf(err, errlen, "out of memory");
        goto done;
    }

    s3->host = b.data;

    memset(&b, 0, sizeof(zarr_buf_t));
    zarr_buf_puts(&b, strcasecmp(scheme, "https") == 0 ? "https://"
                                                          : "http://");
    zarr_buf_puts(&b, s3->host);

    if (b.failed) {
        free(b.data);
        snprintf(err, errlen, "out of memory");
        goto done;
    }

    s3->base = b.data;
    rc = 0;

done:

    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_free(user);
    curl_url_cleanup(u);

    return rc;
}


zarr_s3_t *
zarr_s3_create(const zarr_s3_conf_t *conf, char *err, size_t errlen)
{
    zarr_s3_t  *s3;

    if (conf->endpoint == NULL || conf->access_key == NULL
        || conf->secret_key == NULL || *conf->access_key == '\0')
    {
        snprintf(err, errlen, "endpoint, access key and secret key needed");
        return NULL;
    }

    s3 = calloc(1, sizeof(zarr_s3_t));
    if (s3 == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    if (zarr_s3_parse_endpoint(s3, conf->endpoint, err, errlen) != 0) {
        zarr_s3_destroy(s3);
        return NULL;
    }

    s3->access_key = strdup(conf->access_key);
    s3->secret_key = strdup(conf->secret_key);
    s3->region = zarr_s3_strdup_or(conf->region, ZARR_S3_DEFAULT_REGION);
    s3->curl = curl_easy_init();

    if (s3->access_key == NULL || s3->secret_key == NULL
        || s3->region == NULL || s3->curl == NULL)
    {
        snprintf(err, errlen, "out of memory");
        zarr_s3_destroy(s3);
        return NULL;
    }

    s3->connect_timeout_ms = conf->connect_timeout_ms > 0
                             ? conf->connect_timeout_ms
                             : ZARR_S3_DEFAULT_CONNECT_TIMEOUT;
    s3->timeout_ms = conf->timeout_ms > 0 ? conf->timeout_ms
                                          : ZARR_S3_DEFAULT_TIMEOUT;
    s3->max_response = conf->max_response;

    return s3;
}


void
zarr_s3_destroy(zarr_s3_t *s3)
{
    if (s3 == NULL) {
        return;
    }

    if (s3->curl) {
        curl_easy_cleanup(s3->curl);
    }

    if (s3->secret_key) {
        memset(s3->secret_key, 0, strlen(s3->secret_key));
    }

    free(s3->base);
    free(s3->host);
    free(s3->access_key);
    free(s3->secret_key);
    free(s3->region);
    free(s3);
}


static size_t
zarr_s3_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    zarr_s3_transfer_t *t = userdata;

    long    status;
    size_t  n;

    n = size * nmemb;

    if (t->mode == 0) {
        status = 0;
        curl_easy_getinfo(t->s3->curl, CURLINFO_RESPONSE_CODE, &status);

        t->mode = (t->parser && status >= 200 && status < 300) ? 2 : 1;
    }

    if (t->mode == 2) {
        t->parser_rc = zarr_s3_list_parser_feed(t->parser, ptr, n, 0);

        /* returning less than n makes curl abort the transfer */
        return t->parser_rc == ZARR_S3_OK ? n : 0;
    }

    if (t->s3->max_response && t->body.len + n > t->s3->max_response) {
        t->too_large = 1;
        return 0;
    }

    zarr_buf_put(&t->body, ptr, n);

    return t->body.failed ? 0 : n;
}


static size_t
zarr_s3_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    zarr_s3_transfer_t *t = userdata;

    char                *dst;
    size_t               n, i, vlen, max;
    const char          *v;
    uint64_t             cl;
    zarr_s3_response_t  *r;

    n = size * nmemb;
    r = t->resp;

    /* a new status line (after "100 Continue"): forget earlier headers */

    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        r->etag[0] = '\0';
        r->version_id[0] = '\0';
        r->content_length = -1;
        return n;
    }

    for (i = 0; i < n && ptr[i] != ':'; i++) {
        /* void */
    }

    if (i == n) {
        return n;
    }

    v = ptr + i + 1;
    vlen = n - i - 1;

    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }

    while (vlen > 0
           && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'
               || v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
    {
        vlen--;
    }

    dst = NULL;
    max = 0;

    if (i == 4 && strncasecmp(ptr, "etag", 4) == 0) {

        if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
            v++;
            vlen -= 2;
        }

        dst = r->etag;
        max = sizeof(r->etag);

    } else if (i == 16 && strncasecmp(ptr, "x-amz-version-id", 16) == 0) {
        dst = r->version_id;
        max = sizeof(r->version_id);

    } else if (i == 14 && strncasecmp(ptr, "content-length", 14) == 0) {
        if (zarr_s3_parse_u64(v, vlen, &cl) != 0 || cl > INT64_MAX) {
            t->bad_header = 1;
            return 0;
        }

        r->content_length = (int64_t) cl;
    }

    if (dst) {
        if (vlen >= max) {
            t->bad_header = 1;
            return 0;
        }

        memcpy(dst, v, vlen);
        dst[vlen] = '\0';
    }

    return n;
}


static struct curl_slist *
zarr_s3_add_header(struct curl_slist *list, const char *name,
    const char *value, int *failed)
{
    struct curl_slist  *l;
    zarr_buf_t       b;

    if (*failed) {
        return list;
    }

    memset(&b, 0, sizeof(zarr_buf_t));
    zarr_buf_puts(&b, name);

    /* "Name;" sends an empty header, "Name:" would remove it */

    if (value == NULL) {
        zarr_buf_put(&b, ":", 1);

    } else if (*value == '\0') {
        zarr_buf_put(&b, ";", 1);

    } else {
        zarr_buf_put(&b, ": ", 2);
        zarr_buf_puts(&b, value);
    }

    if (b.failed) {
        *failed = 1;
        return list;
    }

    l = curl_slist_append(list, b.data);
    free(b.data);

    if (l == NULL) {
        *failed = 1;
        return list;
    }

    return l;
}


static int
zarr_s3_perform(zarr_s3_t *s3, const zarr_s3_request_t *req,
    zarr_s3_list_parser_t *parser, zarr_s3_response_t *resp)
{
    int                   rc, failed, with_body, content_type;
    char                 *query, *enc;
    char                  date[ZARR_SIGV4_DATE_LEN + 1];
    char                  hash[ZARR_SHA256_HEX_LEN + 1];
    size_t                i;
    CURL                 *c;
    CURLcode              code;
    zarr_buf_t         path, url;
    zarr_s3_transfer_t    t;
    struct curl_slist    *list;
    zarr_sigv4_creds_t    creds;
    zarr_sigv4_header_t  *hdrs;
    zarr_sigv4_result_t   sig;
    zarr_sigv4_request_t  sreq;

    memset(resp, 0, sizeof(zarr_s3_response_t));
    resp->content_length = -1;

    memset(&t, 0, sizeof(zarr_s3_transfer_t));
    memset(&path, 0, sizeof(zarr_buf_t));
    memset(&url, 0, sizeof(zarr_buf_t));
    memset(&sig, 0, sizeof(zarr_sigv4_result_t));

    query = NULL;
    enc = NULL;
    list = NULL;
    hdrs = NULL;
    rc = ZARR_S3_ERROR;
    failed = 0;
    c = s3->curl;

    if (req->method == NULL
        || (req->key_len > 0 && (req->bucket == NULL || *req->bucket == '\0'))
        || (req->bucket && strchr(req->bucket, '/') != NULL))
    {
        zarr_s3_set_error(&resp->error, 0, NULL, "bad request arguments");
        return ZARR_S3_ERROR;
    }

    /* the raw path: "/", "/bucket" or "/bucket/key" */

    zarr_buf_put(&path, "/", 1);

    if (req->bucket && *req->bucket) {
        zarr_buf_puts(&path, req->bucket);

        if (req->key_len > 0) {
            zarr_buf_put(&path, "/", 1);
            zarr_buf_put(&path, req->key, req->key_len);
        }
    }

    hdrs = calloc(req->nheaders + 1, sizeof(zarr_sigv4_header_t));

    if (path.failed || hdrs == NULL) {
        zarr_s3_set_error(&resp->error, 0, NULL, "out of memory");
        goto done;
    }

    content_type = 0;
    hdrs[0].name = "host";
    hdrs[0].value = s3->host;

    for (i = 0; i < req->nheaders; i++) {
        hdrs[i + 1] = req->headers[i];

        if (req->headers[i].name == NULL) {
            continue;
        }

        if (strcasecmp(req->headers[i].name, "content-type") == 0) {
            content_type = 1;
        }

        /* set by the client or by curl from the body */

        if (strcasecmp(req->headers[i].name, "host") == 0
            || strcasecmp(req->headers[i].name, "content-length") == 0
            || strcasecmp(req->headers[i].name, "transfer-encoding") == 0
            || strcasecmp(req->headers[i].name, "expect") == 0)
        {
            zarr_s3_set_error(&resp->error, 0, NULL,
                              "header \"%s\" is set by the client",
                              req->headers[i].name);
            goto done;
        }
    }

    /* sign */

    if (zarr_sha256_hex(req->body ? req->body : "", req->body_len, hash) != 0
        || zarr_sigv4_now(date) != 0)
    {
        zarr_s3_set_error(&resp->error, 0, NULL, "sha256 or clock failed");
        goto done;
    }

    sreq.method = req->method;
    sreq.path = path.data;
    sreq.path_len = path.len;
    sreq.params = req->params;
    sreq.nparams = req->nparams;
    sreq.headers = hdrs;
    sreq.nheaders = req->nheaders + 1;
    sreq.payload_hash = hash;
    sreq.amz_date = date;

    creds.access_key = s3->access_key;
    creds.secret_key = s3->secret_key;
    creds.region = s3->region;
    creds.service = "s3";

    if (zarr_sigv4_sign(&sreq, &creds, &sig) != 0) {
        zarr_s3_set_error(&resp->error, 0, NULL, "cannot sign: %s",
                          sig.error);
        goto done;
    }

    /* the URL, encoded exactly as signed */

    query = zarr_sigv4_canonical_query(req->params, req->nparams);
    if (query == NULL) {
        zarr_s3_set_error(&resp->error, 0, NULL, "out of memory");
        goto done;
    }

    enc = malloc(3 * path.len + 1);
    if (enc == NULL) {
        zarr_s3_set_error(&resp->error, 0, NULL, "out of memory");
        goto done;
    }

    zarr_buf_puts(&url, s3->base);
    zarr_buf_put(&url, enc,
                    zarr_sigv4_uri_encode(enc, path.data, path.len, 1));

    if (*query) {
        zarr_buf_put(&url, "?", 1);
        zarr_buf_puts(&url, query);
    }

    /* headers: exactly those signed, plus curl defaults switched off */

    list = zarr_s3_add_header(list, "Host", s3->host, &failed);
    list = zarr_s3_add_header(list, "x-amz-date", sig.amz_date, &failed);
    list = zarr_s3_add_header(list, "x-amz-content-sha256", hash, &failed);
    list = zarr_s3_add_header(list, "Authorization", sig.authorization,
                              &failed);

    for (i = 0; i < req->nheaders; i++) {
        list = zarr_s3_add_header(list, req->headers[i].name,
                                  req->headers[i].value, &failed);
    }

    /* no "Expect: 100-continue" round trip */
    list = zarr_s3_add_header(list, "Expect", NULL, &failed);

    with_body = (req->body_len > 0 || strcmp(req->method, "PUT") == 0
                 || strcmp(req->method, "POST") == 0);

    /* curl would label a body application/x-www-form-urlencoded */
    if (with_body && !content_type) {
        list = zarr_s3_add_header(list, "Content-Type", NULL, &failed);
    }

    if (failed || url.failed) {
        zarr_s3_set_error(&resp->error, 0, NULL, "out of memory");
        goto done;
    }

    /* the transfer */

    t.s3 = s3;
    t.resp = resp;
    t.parser = parser;

    curl_easy_reset(c);
    s3->curl_error[0] = '\0';

    failed = 0;
    failed |= curl_easy_setopt(c, CURLOPT_URL, url.data) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500
    failed |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https")
              != CURLE_OK;
#else
    failed |= curl_easy_setopt(c, CURLOPT_PROTOCOLS,
                               (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS))
              != CURLE_OK;
#endif
    failed |= curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L) != CURLE_OK;
    failed |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    failed |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                               s3->connect_timeout_ms) != CURLE_OK;
    failed |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, s3->timeout_ms)
              != CURLE_OK;
    failed |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s3->curl_error)
              != CURLE_OK;
    failed |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, list) != CURLE_OK;
    failed |= curl_easy_setopt(c, CURLOPT_USERAGENT, "ngx_zarr") != CURLE_OK;
    failed |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, zarr_s3_write)
              != CURLE_OK;
    failed |= curl_easy_setopt(c, CURLOPT_WRITEDATA, &t) != CURLE_OK;
    failed |= curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, zarr_s3_header)
              != CURLE_OK;
    failed |= curl_easy_setopt(c, CURLOPT_HEADERDATA, &t) != CURLE_OK;

    if (strcmp(req->method, "HEAD") == 0) {
        failed |= curl_easy_setopt(c, CURLOPT_NOBODY, 1L) != CURLE_OK;

    } else if (with_body) {
        failed |= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                                   (curl_off_t) req->body_len) != CURLE_OK;
        failed |= curl_easy_setopt(c, CURLOPT_POSTFIELDS,
                                   req->body ? req->body : "") != CURLE_OK;
        failed |= curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method)
                  != CURLE_OK;

    } else if (strcmp(req->method, "GET") != 0) {
        failed |= curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method)
                  != CURLE_OK;
    }

    if (failed) {
        zarr_s3_set_error(&resp->error, 0, NULL, "curl_easy_setopt failed");
        goto done;
    }

    code = curl_easy_perform(c);

    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);

    if (code != CURLE_OK) {

        if (t.parser_rc == ZARR_S3_STOPPED) {
            rc = ZARR_S3_STOPPED;

        } else if (t.parser_rc == ZARR_S3_ERROR) {
            resp->error = zarr_s3_list_parser_page(parser)->error;
            resp->error.status = resp->status;

        } else if (t.too_large) {
            zarr_s3_set_error(&resp->error, resp->status, NULL,
                              "response body larger than %zu bytes",
                              s3->max_response);

        } else if (t.bad_header) {
            zarr_s3_set_error(&resp->error, resp->status, NULL,
                              "bad or too long response header");

        } else if (t.body.failed) {
            zarr_s3_set_error(&resp->error, resp->status, NULL,
                              "out of memory");

        } else {
            zarr_s3_set_error(&resp->error, 0, NULL, "%s %s: %s",
                              req->method, s3->base,
                              s3->curl_error[0] ? s3->curl_error
                                                : curl_easy_strerror(code));
        }

        goto done;
    }

    if (t.mode == 2) {
        rc = zarr_s3_list_parser_feed(parser, NULL, 0, 1);

        if (rc == ZARR_S3_ERROR) {
            resp->error = zarr_s3_list_parser_page(parser)->error;
            resp->error.status = resp->status;
        }

        goto done;
    }

    if (parser && resp->status >= 200 && resp->status < 300) {
        /* a 2xx without any body: not a listing */
        rc = zarr_s3_list_parser_feed(parser, NULL, 0, 1);

        if (rc == ZARR_S3_ERROR) {
            resp->error = zarr_s3_list_parser_page(parser)->error;
            resp->error.status = resp->status;
        }

        goto done;
    }

    resp->body = t.body.data;
    resp->body_len = t.body.len;
    t.body.data = NULL;

    if (resp->status < 200 || resp->status > 299) {
        resp->error.status = resp->status;

        if (resp->body == NULL
            || zarr_s3_parse_error(resp->body, resp->body_len, &resp->error)
               != 0)
        {
            resp->error.code[0] = '\0';
            resp->error.message[0] = '\0';
        }

    }

    rc = ZARR_S3_OK;

done:

    /* RGW sends an empty <Message/>: say at least what happened */

    if ((rc == ZARR_S3_ERROR || resp->status < 200 || resp->status > 299)
        && resp->error.message[0] == '\0')
    {
        snprintf(resp->error.message, sizeof(resp->error.message),
                 "HTTP %ld%s%s", resp->status,
                 resp->error.code[0] ? " " : "", resp->error.code);
    }

    curl_slist_free_all(list);
    free(t.body.data);
    free(hdrs);
    free(query);
    free(enc);
    free(path.data);
    free(url.data);
    zarr_sigv4_result_free(&sig);

    return rc;
}


int
zarr_s3_request(zarr_s3_t *s3, const zarr_s3_request_t *req,
    zarr_s3_response_t *resp)
{
    return zarr_s3_perform(s3, req, NULL, resp);
}


void
zarr_s3_response_free(zarr_s3_response_t *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}


/*
 * GET of the bucket with params (a page of a listing, a configuration),
 * parsed as it streams.  On ZARR_S3_OK *pp holds what was parsed (the
 * caller destroys it); *status is the HTTP status either way.
 */

static int
zarr_s3_bucket_get(zarr_s3_t *s3, const char *bucket,
    zarr_sigv4_param_t *params, size_t n, zarr_s3_object_pt handler,
    void *data, zarr_s3_list_parser_t **pp, long *status,
    zarr_s3_error_t *err)
{
    int                     rc;
    zarr_s3_request_t       req;
    zarr_s3_response_t      resp;
    zarr_s3_list_parser_t  *p;

    *status = 0;

    memset(&req, 0, sizeof(zarr_s3_request_t));
    req.method = "GET";
    req.bucket = bucket;
    req.params = params;
    req.nparams = n;

    p = zarr_s3_list_parser_create(handler, data);
    if (p == NULL) {
        zarr_s3_set_error(err, 0, NULL, "out of memory");
        return ZARR_S3_ERROR;
    }

    rc = zarr_s3_perform(s3, &req, p, &resp);

    if (rc == ZARR_S3_OK && (resp.status < 200 || resp.status > 299)) {
        rc = ZARR_S3_ERROR;
    }

    if (rc == ZARR_S3_ERROR) {
        *err = resp.error;
    }

    *status = resp.status;
    zarr_s3_response_free(&resp);

    if (rc != ZARR_S3_OK) {
        zarr_s3_list_parser_destroy(p);
        return rc;
    }

    *pp = p;

    return ZARR_S3_OK;
}


int
zarr_s3_list(zarr_s3_t *s3, const char *bucket, const char *prefix,
    size_t prefix_len, zarr_s3_object_pt handler, void *data,
    zarr_s3_error_t *err)
{
    int                         rc;
    long                        status;
    char                       *token;
    size_t                      n;
    zarr_sigv4_param_t          params[4];
    zarr_s3_list_parser_t      *p;
    const zarr_s3_list_page_t  *page;

    memset(err, 0, sizeof(zarr_s3_error_t));

    if (bucket == NULL || *bucket == '\0') {
        zarr_s3_set_error(err, 0, NULL, "no bucket");
        return ZARR_S3_ERROR;
    }

    token = NULL;

    for ( ;; ) {
        n = 0;

        params[n].name = "list-type";
        params[n].name_len = sizeof("list-type") - 1;
        params[n].value = "2";
        params[n].value_len = 1;
        n++;

        params[n].name = "encoding-type";
        params[n].name_len = sizeof("encoding-type") - 1;
        params[n].value = "url";
        params[n].value_len = 3;
        n++;

        if (prefix_len > 0) {
            params[n].name = "prefix";
            params[n].name_len = sizeof("prefix") - 1;
            params[n].value = prefix;
            params[n].value_len = prefix_len;
            n++;
        }

        if (token) {
            params[n].name = "continuation-token";
            params[n].name_len = sizeof("continuation-token") - 1;
            params[n].value = token;
            params[n].value_len = strlen(token);
            n++;
        }

        rc = zarr_s3_bucket_get(s3, bucket, params, n, handler, data, &p,
                               &status, err);
        if (rc != ZARR_S3_OK) {
            break;
        }

        page = zarr_s3_list_parser_page(p);

        if (!page->is_truncated) {
            zarr_s3_list_parser_destroy(p);
            break;
        }

        if (page->next_token == NULL || page->next_token[0] == '\0'
            || (token && strcmp(token, page->next_token) == 0))
        {
            zarr_s3_set_error(err, status, NULL,
                              "truncated listing without a new "
                              "NextContinuationToken");
            zarr_s3_list_parser_destroy(p);
            rc = ZARR_S3_ERROR;
            break;
        }

        /* the token now belongs to the loop */

        free(token);
        token = p->page.next_token;
        p->page.next_token = NULL;

        zarr_s3_list_parser_destroy(p);
    }

    free(token);

    return rc;
}


static void
zarr_s3_param(zarr_sigv4_param_t *p, const char *name, const char *value,
    size_t value_len)
{
    p->name = name;
    p->name_len = strlen(name);
    p->value = value;
    p->value_len = value_len;
}


int
zarr_s3_list_versions(zarr_s3_t *s3, const char *bucket, const char *prefix,
    size_t prefix_len, zarr_s3_object_pt handler, void *data,
    zarr_s3_error_t *err)
{
    int                         rc;
    long                        status;
    char                       *key, *version;
    size_t                      n;
    zarr_sigv4_param_t          params[5];
    zarr_s3_list_parser_t      *p;
    const zarr_s3_list_page_t  *page;

    memset(err, 0, sizeof(zarr_s3_error_t));

    if (bucket == NULL || *bucket == '\0') {
        zarr_s3_set_error(err, 0, NULL, "no bucket");
        return ZARR_S3_ERROR;
    }

    key = NULL;
    version = NULL;

    for ( ;; ) {
        n = 0;

        zarr_s3_param(&params[n++], "versions", "", 0);
        zarr_s3_param(&params[n++], "encoding-type", "url", 3);

        if (prefix_len > 0) {
            zarr_s3_param(&params[n++], "prefix", prefix, prefix_len);
        }

        if (key) {
            zarr_s3_param(&params[n++], "key-marker", key, strlen(key));

            if (version && version[0]) {
                zarr_s3_param(&params[n++], "version-id-marker", version,
                              strlen(version));
            }
        }

        rc = zarr_s3_bucket_get(s3, bucket, params, n, handler, data, &p,
                               &status, err);
        if (rc != ZARR_S3_OK) {
            break;
        }

        page = zarr_s3_list_parser_page(p);

        if (!page->is_truncated) {
            zarr_s3_list_parser_destroy(p);
            break;
        }

        if (page->next_key == NULL || page->next_key[0] == '\0'
            || (key && strcmp(key, page->next_key) == 0
                && (page->next_version == NULL || version == NULL
                    || strcmp(version, page->next_version) == 0)))
        {
            zarr_s3_set_error(err, status, NULL,
                              "truncated listing of versions without a "
                              "new NextKeyMarker");
            zarr_s3_list_parser_destroy(p);
            rc = ZARR_S3_ERROR;
            break;
        }

        /* the markers now belong to the loop (encoded as the body was) */

        free(key);
        free(version);
        key = p->page.next_key;
        version = p->page.next_version;
        p->page.next_key = NULL;
        p->page.next_version = NULL;

        if (p->page.url_encoded) {
            n = strlen(key);

            if (zarr_s3_url_decode(key, &n) != 0) {
                zarr_s3_set_error(err, 0, NULL, "bad NextKeyMarker");
                zarr_s3_list_parser_destroy(p);
                rc = ZARR_S3_ERROR;
                break;
            }

            key[n] = '\0';
        }

        zarr_s3_list_parser_destroy(p);
    }

    free(key);
    free(version);

    return rc;
}


int
zarr_s3_bucket_versioning(zarr_s3_t *s3, const char *bucket, int *enabled,
    zarr_s3_error_t *err)
{
    int                     rc;
    long                    status;
    zarr_sigv4_param_t      param;
    zarr_s3_list_parser_t  *p;

    memset(err, 0, sizeof(zarr_s3_error_t));
    *enabled = 0;

    if (bucket == NULL || *bucket == '\0') {
        zarr_s3_set_error(err, 0, NULL, "no bucket");
        return ZARR_S3_ERROR;
    }

    zarr_s3_param(&param, "versioning", "", 0);

    rc = zarr_s3_bucket_get(s3, bucket, &param, 1, NULL, NULL, &p, &status,
                            err);
    if (rc != ZARR_S3_OK) {
        return rc;
    }

    if (p->root != ZARR_S3_ROOT_VERSIONING) {
        zarr_s3_set_error(err, status, NULL, "not a VersioningConfiguration");
        rc = ZARR_S3_ERROR;

    } else {
        *enabled = strcmp(p->page.versioning, "Enabled") == 0;
    }

    zarr_s3_list_parser_destroy(p);

    return rc;
}


int
zarr_s3_bucket_lifecycle(zarr_s3_t *s3, const char *bucket, int *expires,
    zarr_s3_error_t *err)
{
    int                     rc;
    zarr_s3_request_t       req;
    zarr_s3_response_t      resp;
    zarr_sigv4_param_t      param;
    zarr_s3_list_parser_t  *p;

    memset(err, 0, sizeof(zarr_s3_error_t));
    *expires = 0;

    if (bucket == NULL || *bucket == '\0') {
        zarr_s3_set_error(err, 0, NULL, "no bucket");
        return ZARR_S3_ERROR;
    }

    zarr_s3_param(&param, "lifecycle", "", 0);

    memset(&req, 0, sizeof(zarr_s3_request_t));
    req.method = "GET";
    req.bucket = bucket;
    req.params = &param;
    req.nparams = 1;

    p = zarr_s3_list_parser_create(NULL, NULL);
    if (p == NULL) {
        zarr_s3_set_error(err, 0, NULL, "out of memory");
        return ZARR_S3_ERROR;
    }

    rc = zarr_s3_perform(s3, &req, p, &resp);

    if (rc == ZARR_S3_OK && resp.status == 404
        && strcmp(resp.error.code, "NoSuchLifecycleConfiguration") == 0)
    {
        /* no rules at all */

    } else if (rc == ZARR_S3_OK
               && (resp.status < 200 || resp.status > 299))
    {
        rc = ZARR_S3_ERROR;
        *err = resp.error;

    } else if (rc == ZARR_S3_ERROR) {
        *err = resp.error;

    } else if (p->root != ZARR_S3_ROOT_LIFECYCLE) {
        zarr_s3_set_error(err, resp.status, NULL,
                          "not a LifecycleConfiguration");
        rc = ZARR_S3_ERROR;

    } else {
        *expires = p->page.expires_noncurrent;
    }

    zarr_s3_response_free(&resp);
    zarr_s3_list_parser_destroy(p);

    return rc;
}



#define ZARR_S3_PART_SIZE  (8 << 20)


struct zarr_s3_writer_s {
    zarr_s3_t              *s3;
    char                   *bucket;
    char                   *key;
    size_t                  key_len;
    const char             *content_type;
    size_t                  part_size;
    zarr_buf_t              buf;
    char                   *upload_id;
    zarr_buf_t              parts;     /* the completion's body */
    unsigned                nparts;
    int                     failed;
};


zarr_s3_writer_t *
zarr_s3_writer_create(zarr_s3_t *s3, const char *bucket, const char *key,
    size_t key_len, const char *content_type, size_t part_size)
{
    zarr_s3_writer_t  *w;

    w = calloc(1, sizeof(zarr_s3_writer_t));
    if (w == NULL) {
        return NULL;
    }

    w->s3 = s3;
    w->bucket = strdup(bucket);
    w->key = malloc(key_len + 1);
    w->key_len = key_len;
    w->content_type = content_type;
    w->part_size = part_size ? part_size : ZARR_S3_PART_SIZE;

    if (w->bucket == NULL || w->key == NULL) {
        free(w->bucket);
        free(w->key);
        free(w);
        return NULL;
    }

    memcpy(w->key, key, key_len);
    w->key[key_len] = '\0';

    zarr_buf_init(&w->buf);
    zarr_buf_init(&w->parts);

    return w;
}


/* one request about the object; params: name, value pairs */

static int
zarr_s3_writer_call(zarr_s3_writer_t *w, const char *method,
    const zarr_sigv4_param_t *params, size_t nparams, const char *body,
    size_t len, zarr_s3_list_parser_t *p, zarr_s3_response_t *resp,
    zarr_s3_error_t *err)
{
    int                  rc;
    size_t               nh;
    zarr_s3_request_t    req;
    zarr_sigv4_header_t  h[2];

    nh = 0;

    if (params == NULL || strcmp(params[0].name, "uploads") == 0) {
        /* the bucket's owner reads what the gateway writes */
        h[nh].name = "x-amz-acl";
        h[nh].value = "bucket-owner-full-control";
        nh++;

        if (w->content_type) {
            h[nh].name = "content-type";
            h[nh].value = w->content_type;
            nh++;
        }
    }

    memset(&req, 0, sizeof(zarr_s3_request_t));
    req.method = method;
    req.bucket = w->bucket;
    req.key = w->key;
    req.key_len = w->key_len;
    req.params = params;
    req.nparams = nparams;
    req.headers = h;
    req.nheaders = nh;
    req.body = body;
    req.body_len = len;

    rc = zarr_s3_perform(w->s3, &req, p, resp);

    if (rc == ZARR_S3_OK && (resp->status < 200 || resp->status > 299)) {
        rc = ZARR_S3_ERROR;
    }

    if (rc == ZARR_S3_OK && p && p->root == ZARR_S3_ROOT_ERROR) {
        /* a 200 carrying <Error> (a completion may) */
        zarr_s3_set_error(&resp->error, resp->status, p->page.error.code,
                          "%s", p->page.error.message);
        rc = ZARR_S3_ERROR;
    }

    if (rc != ZARR_S3_OK) {
        *err = resp->error;
        w->failed = 1;
    }

    return rc;
}


static int
zarr_s3_writer_part(zarr_s3_writer_t *w, zarr_s3_error_t *err)
{
    int                     rc;
    char                    num[16];
    zarr_s3_response_t      resp;
    zarr_sigv4_param_t      params[2];
    zarr_s3_list_parser_t  *p;

    if (w->upload_id == NULL) {
        /* the first part: the upload begins */

        p = zarr_s3_list_parser_create(NULL, NULL);
        if (p == NULL) {
            zarr_s3_set_error(err, 0, NULL, "out of memory");
            w->failed = 1;
            return ZARR_S3_ERROR;
        }

        zarr_s3_param(&params[0], "uploads", "", 0);

        rc = zarr_s3_writer_call(w, "POST", params, 1, NULL, 0, p, &resp,
                                 err);

        if (rc == ZARR_S3_OK && p->page.upload_id == NULL) {
            zarr_s3_set_error(err, resp.status, NULL, "no UploadId");
            w->failed = 1;
            rc = ZARR_S3_ERROR;
        }

        if (rc == ZARR_S3_OK) {
            w->upload_id = p->page.upload_id;
            p->page.upload_id = NULL;
        }

        zarr_s3_response_free(&resp);
        zarr_s3_list_parser_destroy(p);

        if (rc != ZARR_S3_OK) {
            return rc;
        }

        zarr_buf_puts(&w->parts, "<CompleteMultipartUpload xmlns=\""
                      "http://s3.amazonaws.com/doc/2006-03-01/\">");
    }

    snprintf(num, sizeof(num), "%u", w->nparts + 1);

    zarr_s3_param(&params[0], "partNumber", num, strlen(num));
    zarr_s3_param(&params[1], "uploadId", w->upload_id,
                  strlen(w->upload_id));

    rc = zarr_s3_writer_call(w, "PUT", params, 2, w->buf.data, w->buf.len,
                             NULL, &resp, err);

    if (rc == ZARR_S3_OK) {
        w->nparts++;
        zarr_buf_puts(&w->parts, "<Part><PartNumber>");
        zarr_buf_puts(&w->parts, num);
        zarr_buf_puts(&w->parts, "</PartNumber><ETag>\"");
        zarr_buf_puts(&w->parts, resp.etag);
        zarr_buf_puts(&w->parts, "\"</ETag></Part>");
        zarr_buf_reset(&w->buf);

        if (w->parts.failed) {
            zarr_s3_set_error(err, 0, NULL, "out of memory");
            w->failed = 1;
            rc = ZARR_S3_ERROR;
        }
    }

    zarr_s3_response_free(&resp);

    return rc;
}


int
zarr_s3_writer_write(zarr_s3_writer_t *w, const char *buf, size_t len,
    zarr_s3_error_t *err)
{
    size_t  n;

    memset(err, 0, sizeof(zarr_s3_error_t));

    while (len) {
        if (w->failed) {
            zarr_s3_set_error(err, 0, NULL, "the upload failed before");
            return ZARR_S3_ERROR;
        }

        n = w->part_size - w->buf.len;
        n = n < len ? n : len;

        if (zarr_buf_add(&w->buf, buf, n) != 0) {
            zarr_s3_set_error(err, 0, NULL, "out of memory");
            w->failed = 1;
            return ZARR_S3_ERROR;
        }

        buf += n;
        len -= n;

        if (w->buf.len == w->part_size && len
            && zarr_s3_writer_part(w, err) != ZARR_S3_OK)
        {
            return ZARR_S3_ERROR;
        }
    }

    return ZARR_S3_OK;
}


int
zarr_s3_writer_close(zarr_s3_writer_t *w, int abort, zarr_s3_error_t *err)
{
    int                     rc;
    zarr_s3_response_t      resp;
    zarr_sigv4_param_t      param;
    zarr_s3_error_t         e;
    zarr_s3_list_parser_t  *p;

    memset(err, 0, sizeof(zarr_s3_error_t));
    rc = ZARR_S3_OK;

    if (abort || w->failed) {
        rc = ZARR_S3_ERROR;

        if (!w->failed) {
            zarr_s3_set_error(err, 0, NULL, "aborted");
        }

    } else if (w->upload_id == NULL) {
        rc = zarr_s3_writer_call(w, "PUT", NULL, 0, w->buf.data, w->buf.len,
                                 NULL, &resp, err);
        zarr_s3_response_free(&resp);

    } else if (zarr_s3_writer_part(w, err) == ZARR_S3_OK) {
        zarr_buf_puts(&w->parts, "</CompleteMultipartUpload>");

        p = zarr_s3_list_parser_create(NULL, NULL);

        if (p == NULL || w->parts.failed) {
            zarr_s3_set_error(err, 0, NULL, "out of memory");
            w->failed = 1;
            rc = ZARR_S3_ERROR;

        } else {
            zarr_s3_param(&param, "uploadId", w->upload_id,
                          strlen(w->upload_id));
            rc = zarr_s3_writer_call(w, "POST", &param, 1, w->parts.data,
                                     w->parts.len, p, &resp, err);
            zarr_s3_response_free(&resp);
        }

        zarr_s3_list_parser_destroy(p);

    } else {
        rc = ZARR_S3_ERROR;
    }

    if (rc != ZARR_S3_OK && w->upload_id) {
        /* no parts left behind */
        zarr_s3_param(&param, "uploadId", w->upload_id,
                      strlen(w->upload_id));
        (void) zarr_s3_writer_call(w, "DELETE", &param, 1, NULL, 0, NULL,
                                   &resp, &e);
        zarr_s3_response_free(&resp);
    }

    free(w->upload_id);
    free(w->bucket);
    free(w->key);
    zarr_buf_free(&w->buf);
    zarr_buf_free(&w->parts);
    free(w);

    return rc;
}
