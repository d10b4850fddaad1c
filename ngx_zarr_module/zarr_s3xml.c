
/*
 * S3 XML bodies: error documents out, DeleteObjects / CopyObject /
 * CompleteMultipartUpload bodies in (expat, streaming).
 */


#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>

#include "zarr_json.h"
#include "zarr_s3xml.h"


/* separates namespace URI and local name in expat element names */
#define ZARR_S3XML_NS_SEP      '\n'

/* XML_Parse() takes an int length */
#define ZARR_S3XML_CHUNK       65536

#define ZARR_S3XML_REPLACEMENT "\xef\xbf\xbd"

#define zarr_s3xml_space(c)                                                  \
    ((c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n')


typedef enum {
    ZARR_S3XML_ROOT_NONE = 0,
    ZARR_S3XML_ROOT_DELETE,
    ZARR_S3XML_ROOT_DELETE_RESULT,
    ZARR_S3XML_ROOT_COPY,
    ZARR_S3XML_ROOT_COMPLETE,
    ZARR_S3XML_ROOT_ERROR
} zarr_s3xml_root_e;


typedef enum {
    ZARR_S3XML_ENTRY_NONE = 0,
    ZARR_S3XML_ENTRY_OBJECT,
    ZARR_S3XML_ENTRY_DELETED,
    ZARR_S3XML_ENTRY_ERROR
} zarr_s3xml_entry_e;


/* text elements, as bits so that repeats can be spotted */
#define ZARR_S3XML_F_KEY       0x01
#define ZARR_S3XML_F_VERSION   0x02
#define ZARR_S3XML_F_CODE      0x04
#define ZARR_S3XML_F_MESSAGE   0x08
#define ZARR_S3XML_F_QUIET     0x10
#define ZARR_S3XML_F_ETAG      0x20


struct zarr_s3xml_parser_s {
    XML_Parser            parser;
    zarr_s3xml_kind_e     kind;
    int                   literal;     /* names as written, as RGW reads */
    size_t                max_body;
    size_t                max_objects;
    size_t                fed;

    int                   rc;
    int                   parsing;     /* inside XML_Parse() */
    int                   started;     /* leading whitespace is behind */
    int                   depth;
    int                   skip;        /* depth of a skipped element */
    zarr_s3xml_root_e     root;
    zarr_s3xml_entry_e    entry;
    unsigned              field;       /* text element being read */
    unsigned              root_seen;   /* text elements seen at depth 2 */
    unsigned              entry_seen;  /* ... in the current entry */

    zarr_buf_t            text;
    zarr_s3xml_object_t   cur;
    size_t                objects_cap;
    size_t                errors_cap;

    zarr_s3xml_result_t   res;
};


static int zarr_s3xml_add_ref(zarr_buf_t *b, unsigned c);
static void zarr_s3xml_copy(char *dst, size_t size, const char *s,
    size_t len);
static void zarr_s3xml_fail(zarr_s3xml_parser_t *p, int rc,
    const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static const char *zarr_s3xml_local(const XML_Char *name);
static const char *zarr_s3xml_literal(zarr_s3xml_parser_t *p,
    const XML_Char *name, const XML_Char **atts);
static zarr_s3xml_root_e zarr_s3xml_root(zarr_s3xml_kind_e kind,
    const char *local);
static unsigned zarr_s3xml_field(zarr_s3xml_parser_t *p,
    const char *local);
static void zarr_s3xml_entry_start(zarr_s3xml_parser_t *p,
    zarr_s3xml_entry_e entry);
static void XMLCALL zarr_s3xml_start(void *data, const XML_Char *name,
    const XML_Char **atts);
static void XMLCALL zarr_s3xml_end(void *data, const XML_Char *name);
static void XMLCALL zarr_s3xml_text(void *data, const XML_Char *s,
    int len);
static void XMLCALL zarr_s3xml_doctype(void *data,
    const XML_Char *doctype_name, const XML_Char *sysid,
    const XML_Char *pubid, int has_internal_subset);
static char *zarr_s3xml_strdup(const char *s, size_t len);
static void zarr_s3xml_trim(const char **s, size_t *len);
static void zarr_s3xml_field_done(zarr_s3xml_parser_t *p);
static void zarr_s3xml_entry_done(zarr_s3xml_parser_t *p);
static void zarr_s3xml_object_free(zarr_s3xml_object_t *obj);
static int zarr_s3xml_finish(zarr_s3xml_parser_t *p);


/* escaping and error documents */


static int
zarr_s3xml_add_ref(zarr_buf_t *b, unsigned c)
{
    char  ref[16];
    int   n;

    n = snprintf(ref, sizeof(ref), "&#%u;", c);

    return zarr_buf_add(b, ref, (size_t) n);
}


int
zarr_s3xml_escape(zarr_buf_t *b, const char *s, size_t len)
{
    size_t                valid, n;
    unsigned              ref;
    const char           *rep;
    const unsigned char  *p, *end, *vend, *run;

    p = (const unsigned char *) s;
    end = p + len;

    while (p < end) {
        valid = zarr_utf8_valid_prefix((const char *) p, end - p);
        vend = p + valid;
        run = p;

        while (p < vend) {
            rep = NULL;
            ref = 0;
            n = 1;

            if (*p < 0x80) {
                switch (*p) {
                case '&':
                    rep = "&amp;";
                    break;
                case '<':
                    rep = "&lt;";
                    break;
                case '>':
                    rep = "&gt;";
                    break;
                case '"':
                    rep = "&quot;";
                    break;
                case '\'':
                    rep = "&apos;";
                    break;
                case '\t':
                case '\n':
                case '\r':
                case 0x7f:
                    ref = *p;
                    break;
                default:
                    if (*p < 0x20) {
                        rep = ZARR_S3XML_REPLACEMENT;
                    }
                }

            } else {
                n = *p >= 0xf0 ? 4 : (*p >= 0xe0 ? 3 : 2);

                if (*p == 0xc2 && p[1] < 0xa0) {
                    ref = p[1];

                } else if (*p == 0xef && p[1] == 0xbf && p[2] >= 0xbe) {
                    /* U+FFFE, U+FFFF */
                    rep = ZARR_S3XML_REPLACEMENT;
                }
            }

            if (rep == NULL && ref == 0) {
                p += n;
                continue;
            }

            if (zarr_buf_add(b, run, p - run) != 0) {
                return -1;
            }

            if (rep ? zarr_buf_add_str(b, rep) : zarr_s3xml_add_ref(b, ref))
            {
                return -1;
            }

            p += n;
            run = p;
        }

        if (zarr_buf_add(b, run, p - run) != 0) {
            return -1;
        }

        if (p < end) {
            /* one byte that does not start valid UTF-8 */

            if (zarr_buf_add_str(b, ZARR_S3XML_REPLACEMENT) != 0) {
                return -1;
            }

            p++;
        }
    }

    return 0;
}


int
zarr_s3xml_error_body(zarr_buf_t *b, const zarr_s3xml_error_t *e)
{
    if (zarr_buf_add_str(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                            "<Error><Code>") != 0
        || zarr_s3xml_escape(b, e->code ? e->code : "", e->code_len) != 0
        || zarr_buf_add_str(b, "</Code><Message>") != 0
        || zarr_s3xml_escape(b, e->message ? e->message : "",
                             e->message_len) != 0
        || zarr_buf_add_str(b, "</Message>") != 0)
    {
        return -1;
    }

    if (e->resource
        && (zarr_buf_add_str(b, "<Resource>") != 0
            || zarr_s3xml_escape(b, e->resource, e->resource_len) != 0
            || zarr_buf_add_str(b, "</Resource>") != 0))
    {
        return -1;
    }

    if (e->request_id
        && (zarr_buf_add_str(b, "<RequestId>") != 0
            || zarr_s3xml_escape(b, e->request_id, e->request_id_len) != 0
            || zarr_buf_add_str(b, "</RequestId>") != 0))
    {
        return -1;
    }

    return zarr_buf_add_str(b, "</Error>");
}


/* parsing */


/* copies at most size - 1 bytes, not cutting a UTF-8 sequence */

static void
zarr_s3xml_copy(char *dst, size_t size, const char *s, size_t len)
{
    size_t  n;

    n = len < size - 1 ? len : size - 1;

    if (n < len) {
        while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80) {
            n--;
        }
    }

    memcpy(dst, s, n);
    dst[n] = '\0';
}


static void
zarr_s3xml_fail(zarr_s3xml_parser_t *p, int rc, const char *fmt, ...)
{
    va_list  args;

    if (p->rc != ZARR_S3XML_OK) {
        return;
    }

    p->rc = rc;
    p->res.code[0] = '\0';

    va_start(args, fmt);
    vsnprintf(p->res.message, sizeof(p->res.message), fmt, args);
    va_end(args);

    if (p->parsing) {
        XML_StopParser(p->parser, XML_FALSE);
    }
}


/* the local name of an element in no namespace or S3's, else NULL */

static const char *
zarr_s3xml_local(const XML_Char *name)
{
    const char  *sep;

    sep = strchr(name, ZARR_S3XML_NS_SEP);

    if (sep == NULL) {
        return name;
    }

    if ((size_t) (sep - name) == sizeof(ZARR_S3XML_NS) - 1
        && memcmp(name, ZARR_S3XML_NS, sizeof(ZARR_S3XML_NS) - 1) == 0)
    {
        return sep + 1;
    }

    return NULL;
}


/*
 * A request body's element name, read literally as RGW does (expat
 * without namespace processing), or NULL when a namespace-aware reader
 * (AWS, MinIO's local names) could read the element otherwise: a
 * prefixed name, or a default namespace other than S3's.  Fails the
 * parse in that case.
 */

static const char *
zarr_s3xml_literal(zarr_s3xml_parser_t *p, const XML_Char *name,
    const XML_Char **atts)
{
    if (strchr(name, ':') != NULL) {
        zarr_s3xml_fail(p, ZARR_S3XML_MALFORMED,
                        "prefixed element name <%s>", name);
        return NULL;
    }

    for ( /* void */ ; atts[0]; atts += 2) {
        if (strncmp(atts[0], "xmlns", 5) != 0) {
            continue;
        }

        if (atts[0][5] == ':') {
            zarr_s3xml_fail(p, ZARR_S3XML_MALFORMED,
                            "namespace prefix declaration \"%s\"",
                            atts[0]);
            return NULL;
        }

        if (atts[0][5] == '\0' && strcmp(atts[1], ZARR_S3XML_NS) != 0) {
            zarr_s3xml_fail(p, ZARR_S3XML_MALFORMED,
                            "namespace other than S3's on <%s>", name);
            return NULL;
        }
    }

    return name;
}


static zarr_s3xml_root_e
zarr_s3xml_root(zarr_s3xml_kind_e kind, const char *local)
{
    if (local == NULL) {
        return ZARR_S3XML_ROOT_NONE;
    }

    if (kind == ZARR_S3XML_DELETE) {
        /* a request is never an error document */
        return strcmp(local, "Delete") == 0 ? ZARR_S3XML_ROOT_DELETE
                                            : ZARR_S3XML_ROOT_NONE;
    }

    if (strcmp(local, "Error") == 0) {
        return ZARR_S3XML_ROOT_ERROR;
    }

    switch (kind) {

    case ZARR_S3XML_DELETE_RESULT:
        if (strcmp(local, "DeleteResult") == 0) {
            return ZARR_S3XML_ROOT_DELETE_RESULT;
        }

        break;

    case ZARR_S3XML_COPY_RESULT:
        if (strcmp(local, "CopyObjectResult") == 0
            || strcmp(local, "CopyPartResult") == 0)
        {
            return ZARR_S3XML_ROOT_COPY;
        }

        break;

    case ZARR_S3XML_COMPLETE_RESULT:
        if (strcmp(local, "CompleteMultipartUploadResult") == 0) {
            return ZARR_S3XML_ROOT_COMPLETE;
        }

        break;

    default:
        break;
    }

    return ZARR_S3XML_ROOT_NONE;
}


/* which text element local is at the current depth, 0: none we read */

static unsigned
zarr_s3xml_field(zarr_s3xml_parser_t *p, const char *local)
{
    if (p->depth == 3) {
        if (strcmp(local, "Key") == 0) {
            return ZARR_S3XML_F_KEY;
        }

        if (strcmp(local, "VersionId") == 0) {
            return ZARR_S3XML_F_VERSION;
        }

        if (p->entry == ZARR_S3XML_ENTRY_ERROR) {
            if (strcmp(local, "Code") == 0) {
                return ZARR_S3XML_F_CODE;
            }

            if (strcmp(local, "Message") == 0) {
                return ZARR_S3XML_F_MESSAGE;
            }
        }

        return 0;
    }

    switch (p->root) {

    case ZARR_S3XML_ROOT_DELETE:
        return strcmp(local, "Quiet") == 0 ? ZARR_S3XML_F_QUIET : 0;

    case ZARR_S3XML_ROOT_COPY:
    case ZARR_S3XML_ROOT_COMPLETE:
        return strcmp(local, "ETag") == 0 ? ZARR_S3XML_F_ETAG : 0;

    case ZARR_S3XML_ROOT_ERROR:
        if (strcmp(local, "Code") == 0) {
            return ZARR_S3XML_F_CODE;
        }

        return strcmp(local, "Message") == 0 ? ZARR_S3XML_F_MESSAGE : 0;

    default:
        return 0;
    }
}


static void
zarr_s3xml_entry_start(zarr_s3xml_parser_t *p, zarr_s3xml_entry_e entry)
{
    if (p->max_objects
        && p->res.nobjects + p->res.nerrors >= p->max_objects)
    {
        zarr_s3xml_fail(p, ZARR_S3XML_TOO_MANY,
                        "more than %zu objects", p->max_objects);
        return;
    }

    p->entry = entry;
    p->entry_seen = 0;
    zarr_s3xml_object_free(&p->cur);
}


static void XMLCALL
zarr_s3xml_start(void *data, const XML_Char *name, const XML_Char **atts)
{
    zarr_s3xml_parser_t *p = data;

    unsigned     field, *seen;
    const char  *local;

    if (p->rc != ZARR_S3XML_OK) {
        return;
    }

    p->depth++;

    if (p->literal) {
        /* even inside skipped elements: nothing two readers may differ on */

        local = zarr_s3xml_literal(p, name, atts);
        if (local == NULL) {
            return;
        }

    } else {
        local = zarr_s3xml_local(name);
    }

    if (p->skip) {
        return;
    }

    if (p->field) {
        zarr_s3xml_fail(p, ZARR_S3XML_MALFORMED,
                        "element <%s> inside a text element",
                        local ? local : name);
        return;
    }

    if (p->depth == 1) {
        p->root = zarr_s3xml_root(p->kind, local);

        if (p->root == ZARR_S3XML_ROOT_NONE) {
            zarr_s3xml_fail(p, ZARR_S3XML_MALFORMED,
                            "unexpected root element <%s>",
                            local ? local : name);
        }

        return;
    }

    if (local == NULL) {
        p->skip = p->depth;
        return;
    }

    if (p->depth == 2) {
        if (p->root == ZARR_S3XML_ROOT_DELETE
            && strcmp(local, "Object") == 0)
        {
            zarr_s3xml_entry_start(p, ZARR_S3XML_ENTRY_OBJECT);
            return;
        }

        if (p->root == ZARR_S3XML_ROOT_DELETE_RESULT) {
            if (strcmp(local, "Deleted") == 0) {
                zarr_s3xml_entry_start(p, ZARR_S3XML_ENTRY_DELETED);
                return;
            }

            if (strcmp(local, "Error") == 0) {
                zarr_s3xml_entry_start(p, ZARR_S3XML_ENTRY_ERROR);
                return;
            }
        }
    }

    field = (p->depth == 2 || (p->depth == 3 && p->entry))
            ? zarr_s3xml_field(p, local) : 0;

    if (field == 0) {
        /* e.g. <LastModified>, <Location>, <DeleteMarker> */
        p->skip = p->depth;
        return;
    }

    seen = p->depth == 2 ? &p->root_seen : &p->entry_seen;

    if (*seen & field) {
        zarr_s3xml_fail(p, ZARR_S3XML_MALFORMED, "repeated <%s>", local);
        return;
    }

    *seen |= field;
    p->field = field;
    p->text.len = 0;
}


static void XMLCALL
zarr_s3xml_end(void *data, const XML_Char *name)
{
    zarr_s3xml_parser_t *p = data;

    (void) name;

    if (p->rc != ZARR_S3XML_OK) {
        return;
    }

    if (p->skip) {
        if (p->depth == p->skip) {
            p->skip = 0;
        }

    } else if (p->field) {
        zarr_s3xml_field_done(p);
        p->field = 0;

    } else if (p->depth == 2 && p->entry) {
        zarr_s3xml_entry_done(p);
        p->entry = ZARR_S3XML_ENTRY_NONE;
    }

    p->depth--;
}


static void XMLCALL
zarr_s3xml_text(void *data, const XML_Char *s, int len)
{
    zarr_s3xml_parser_t *p = data;

    if (p->rc != ZARR_S3XML_OK || p->field == 0 || p->skip) {
        return;
    }

    if (p->text.len + (size_t) len > ZARR_S3XML_TEXT_MAX) {
        zarr_s3xml_fail(p, ZARR_S3XML_TOO_LARGE,
                        "element text longer than %d bytes",
                        ZARR_S3XML_TEXT_MAX);
        return;
    }

    if (zarr_buf_add(&p->text, s, (size_t) len) != 0) {
        zarr_s3xml_fail(p, ZARR_S3XML_NOMEM, "out of memory");
    }
}


static void XMLCALL
zarr_s3xml_doctype(void *data, const XML_Char *doctype_name,
    const XML_Char *sysid, const XML_Char *pubid, int has_internal_subset)
{
    (void) doctype_name;
    (void) sysid;
    (void) pubid;
    (void) has_internal_subset;

    zarr_s3xml_fail(data, ZARR_S3XML_MALFORMED, "DOCTYPE not allowed");
}


static char *
zarr_s3xml_strdup(const char *s, size_t len)
{
    char  *d;

    d = malloc(len + 1);
    if (d == NULL) {
        return NULL;
    }

    memcpy(d, s, len);
    d[len] = '\0';

    return d;
}


/* cuts XML whitespace on both ends */

static void
zarr_s3xml_trim(const char **s, size_t *len)
{
    while (*len > 0 && zarr_s3xml_space((*s)[0])) {
        (*s)++;
        (*len)--;
    }

    while (*len > 0 && zarr_s3xml_space((*s)[*len - 1])) {
        (*len)--;
    }
}


static void
zarr_s3xml_field_done(zarr_s3xml_parser_t *p)
{
    char        *dup, *msg;
    size_t       n;
    const char  *t;

    t = p->text.data ? p->text.data : "";
    n = p->text.len;

    switch (p->field) {

    case ZARR_S3XML_F_QUIET:
        /*
         * RGW takes exactly "true" (any case) for quiet and anything else
         * for not, AWS any xs:boolean: only the two words all read alike
         */

        if (n == 4 && memcmp(t, "true", 4) == 0) {
            p->res.quiet = 1;

        } else if (n == 5 && memcmp(t, "false", 5) == 0) {
            p->res.quiet = 0;

        } else {
            zarr_s3xml_fail(p, ZARR_S3XML_MALFORMED, "bad <Quiet> value");
        }

        return;

    case ZARR_S3XML_F_ETAG:
        /* RGW sends it bare, AWS quoted; a pretty-printer may indent */

        zarr_s3xml_trim(&t, &n);

        if (n >= 2 && t[0] == '"' && t[n - 1] == '"') {
            t++;
            n -= 2;
        }

        p->res.etag = zarr_s3xml_strdup(t, n);
        p->res.etag_len = n;
        dup = p->res.etag;
        break;

    case ZARR_S3XML_F_CODE:
    case ZARR_S3XML_F_MESSAGE:
        if (p->root == ZARR_S3XML_ROOT_ERROR) {
            msg = p->field == ZARR_S3XML_F_CODE ? p->res.code
                                                : p->res.message;
            zarr_s3xml_copy(msg, p->field == ZARR_S3XML_F_CODE
                                 ? sizeof(p->res.code)
                                 : sizeof(p->res.message), t, n);
            return;
        }

        dup = zarr_s3xml_strdup(t, n);

        if (p->field == ZARR_S3XML_F_CODE) {
            p->cur.code = dup;

        } else {
            p->cur.message = dup;
        }

        break;

    case ZARR_S3XML_F_KEY:
        dup = zarr_s3xml_strdup(t, n);
        p->cur.key = dup;
        p->cur.key_len = n;
        break;

    case ZARR_S3XML_F_VERSION:
        dup = zarr_s3xml_strdup(t, n);
        p->cur.version_id = dup;
        p->cur.version_id_len = n;
        break;

    default:
        return;
    }

    if (dup == NULL) {
        zarr_s3xml_fail(p, ZARR_S3XML_NOMEM, "out of memory");
    }
}


static void
zarr_s3xml_entry_done(zarr_s3xml_parser_t *p)
{
    size_t                *n, *cap, ncap;
    zarr_s3xml_object_t  **list, *a;

    if (!(p->entry_seen & ZARR_S3XML_F_KEY)) {
        zarr_s3xml_fail(p, ZARR_S3XML_MALFORMED, "<%s> without <Key>",
                        p->entry == ZARR_S3XML_ENTRY_OBJECT ? "Object"
                        : p->entry == ZARR_S3XML_ENTRY_DELETED ? "Deleted"
                        : "Error");
        return;
    }

    if (p->entry == ZARR_S3XML_ENTRY_ERROR) {
        if (!(p->entry_seen & ZARR_S3XML_F_CODE)) {
            zarr_s3xml_fail(p, ZARR_S3XML_MALFORMED,
                            "<Error> without <Code>");
            return;
        }

        list = &p->res.errors;
        n = &p->res.nerrors;
        cap = &p->errors_cap;

    } else {
        list = &p->res.objects;
        n = &p->res.nobjects;
        cap = &p->objects_cap;
    }

    if (*n == *cap) {
        ncap = *cap ? *cap * 2 : 16;

        a = realloc(*list, ncap * sizeof(zarr_s3xml_object_t));
        if (a == NULL) {
            zarr_s3xml_fail(p, ZARR_S3XML_NOMEM, "out of memory");
            return;
        }

        *list = a;
        *cap = ncap;
    }

    (*list)[(*n)++] = p->cur;
    memset(&p->cur, 0, sizeof(zarr_s3xml_object_t));
}


static void
zarr_s3xml_object_free(zarr_s3xml_object_t *obj)
{
    free(obj->key);
    free(obj->version_id);
    free(obj->code);
    free(obj->message);
    memset(obj, 0, sizeof(zarr_s3xml_object_t));
}


zarr_s3xml_parser_t *
zarr_s3xml_create(zarr_s3xml_kind_e kind, size_t max_body,
    size_t max_objects)
{
    zarr_s3xml_parser_t  *p;

    p = calloc(1, sizeof(zarr_s3xml_parser_t));
    if (p == NULL) {
        return NULL;
    }

    /*
     * a request body is read as the backend will read it; responses come
     * from the backend and may use namespaces as they like
     */

    p->literal = kind == ZARR_S3XML_DELETE;
    p->parser = p->literal ? XML_ParserCreate(NULL)
                           : XML_ParserCreateNS(NULL, ZARR_S3XML_NS_SEP);
    if (p->parser == NULL) {
        free(p);
        return NULL;
    }

    p->kind = kind;
    p->max_body = max_body;
    p->max_objects = max_objects;
    p->rc = ZARR_S3XML_OK;
    zarr_buf_init(&p->text);

    XML_SetUserData(p->parser, p);
    XML_SetElementHandler(p->parser, zarr_s3xml_start, zarr_s3xml_end);
    XML_SetCharacterDataHandler(p->parser, zarr_s3xml_text);
    XML_SetStartDoctypeDeclHandler(p->parser, zarr_s3xml_doctype);

    return p;
}


/* the checks that need the whole document */

static int
zarr_s3xml_finish(zarr_s3xml_parser_t *p)
{
    if (p->root == ZARR_S3XML_ROOT_ERROR) {
        p->rc = ZARR_S3XML_S3_ERROR;
        return p->rc;
    }

    if (p->root == ZARR_S3XML_ROOT_COPY && p->res.etag == NULL) {
        zarr_s3xml_fail(p, ZARR_S3XML_MALFORMED, "no <ETag> in the result");
        return p->rc;
    }

    return ZARR_S3XML_OK;
}


int
zarr_s3xml_feed(zarr_s3xml_parser_t *p, const char *buf, size_t len,
    int last)
{
    int              chunk;
    enum XML_Status  st;

    if (p->rc != ZARR_S3XML_OK) {
        return p->rc;
    }

    p->fed += len;

    if (p->max_body && p->fed > p->max_body) {
        zarr_s3xml_fail(p, ZARR_S3XML_TOO_LARGE,
                        "body larger than %zu bytes", p->max_body);
        return p->rc;
    }

    /*
     * S3 sends spaces while a long copy or completion goes on, and they
     * may come before "<?xml", where XML allows nothing
     */

    while (!p->started && len > 0 && zarr_s3xml_space(*buf)) {
        buf++;
        len--;
    }

    if (len > 0) {
        p->started = 1;
    }

    do {
        chunk = len > ZARR_S3XML_CHUNK ? ZARR_S3XML_CHUNK : (int) len;

        p->parsing = 1;
        st = XML_Parse(p->parser, buf, chunk,
                       last && (size_t) chunk == len);
        p->parsing = 0;

        if (p->rc != ZARR_S3XML_OK) {
            return p->rc;
        }

        if (st != XML_STATUS_OK) {
            zarr_s3xml_fail(p, ZARR_S3XML_MALFORMED, "%s at line %lu",
                            XML_ErrorString(XML_GetErrorCode(p->parser)),
                            (unsigned long)
                                XML_GetCurrentLineNumber(p->parser));
            return p->rc;
        }

        buf += chunk;
        len -= (size_t) chunk;

    } while (len > 0);

    if (!last) {
        return ZARR_S3XML_OK;
    }

    return zarr_s3xml_finish(p);
}


const zarr_s3xml_result_t *
zarr_s3xml_result(const zarr_s3xml_parser_t *p)
{
    return &p->res;
}


void
zarr_s3xml_destroy(zarr_s3xml_parser_t *p)
{
    if (p == NULL) {
        return;
    }

    XML_ParserFree(p->parser);
    zarr_buf_free(&p->text);
    zarr_s3xml_object_free(&p->cur);
    zarr_s3xml_result_free(&p->res);
    free(p);
}


int
zarr_s3xml_parse(zarr_s3xml_kind_e kind, const char *body, size_t len,
    size_t max_body, size_t max_objects, zarr_s3xml_result_t *res)
{
    int                   rc;
    zarr_s3xml_parser_t  *p;

    memset(res, 0, sizeof(zarr_s3xml_result_t));

    p = zarr_s3xml_create(kind, max_body, max_objects);
    if (p == NULL) {
        snprintf(res->message, sizeof(res->message), "out of memory");
        return ZARR_S3XML_NOMEM;
    }

    rc = zarr_s3xml_feed(p, body, len, 1);

    /* hand the result over */

    *res = p->res;
    memset(&p->res, 0, sizeof(zarr_s3xml_result_t));

    zarr_s3xml_destroy(p);

    return rc;
}


void
zarr_s3xml_result_free(zarr_s3xml_result_t *res)
{
    size_t  i;

    for (i = 0; i < res->nobjects; i++) {
        zarr_s3xml_object_free(&res->objects[i]);
    }

    for (i = 0; i < res->nerrors; i++) {
        zarr_s3xml_object_free(&res->errors[i]);
    }

    free(res->objects);
    free(res->errors);
    free(res->etag);
    memset(res, 0, sizeof(zarr_s3xml_result_t));
}
