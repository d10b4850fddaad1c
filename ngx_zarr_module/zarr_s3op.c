
/*
 * S3 request classification: operation, bucket and key, requester's
 * access key id, copy source.
 *
 * The rules follow what the backend does with the same request (RGW's
 * RGWHandler_REST_{Obj,Bucket}_S3::op_*() and AWS's documented
 * sub-resources), so that the gateway never takes a request for another
 * operation than the backend performs.  Where a request could be read two
 * ways, it is refused (ZARR_S3OP_BAD_ARGS) rather than guessed.
 */


#include <string.h>
#include <strings.h>

#include "zarr_s3op.h"


/* the query parameters that select an operation */
#define ZARR_S3OP_Q_UPLOADS      0x0001
#define ZARR_S3OP_Q_UPLOAD_ID    0x0002
#define ZARR_S3OP_Q_PART_NUMBER  0x0004
#define ZARR_S3OP_Q_VERSION_ID   0x0008
#define ZARR_S3OP_Q_DELETE       0x0010
#define ZARR_S3OP_Q_ACL          0x0020
#define ZARR_S3OP_Q_TAGGING      0x0040
#define ZARR_S3OP_Q_RETENTION    0x0080
#define ZARR_S3OP_Q_LEGAL_HOLD   0x0100
#define ZARR_S3OP_Q_RESTORE      0x0200
#define ZARR_S3OP_Q_SELECT       0x0400
#define ZARR_S3OP_Q_MDSEARCH     0x0800
#define ZARR_S3OP_Q_APPEND       0x1000

/* longer than any name above: no need to decode further */
#define ZARR_S3OP_NAME_MAX       16


typedef enum {
    ZARR_S3OP_M_READ = 0,
    ZARR_S3OP_M_PUT,
    ZARR_S3OP_M_POST,
    ZARR_S3OP_M_DELETE,
    ZARR_S3OP_M_OTHER
} zarr_s3op_method_e;


typedef struct {
    const char    *name;
    size_t         len;
    unsigned       flag;
} zarr_s3op_name_t;


/* one raw "name[=value]" of a query */
typedef struct {
    const char    *name;
    size_t         name_len;
    const char    *value;          /* "" when there is no '=' */
    size_t         value_len;
} zarr_s3op_param_t;


/* a query as far as classification needs it; values raw, valid */
typedef struct {
    unsigned       seen;
    unsigned       repeated;
    int            malformed;
    zarr_s3op_param_t  upload_id;
    zarr_s3op_param_t  part_number;
    zarr_s3op_param_t  version_id;
} zarr_s3op_query_t;


static int zarr_s3op_hexval(int c);
static int zarr_s3op_decode_char(const char *p, const char *end, int plus,
    char *c);
static int zarr_s3op_decode(char *dst, const char *src, size_t len,
    int plus, size_t *out);
static int zarr_s3op_next_param(const char **pos, const char *end,
    zarr_s3op_param_t *param);
static int zarr_s3op_param_is(const zarr_s3op_param_t *param,
    const char *name, size_t len);
static void zarr_s3op_parse_query(const char *args, size_t len,
    zarr_s3op_query_t *q);
static zarr_s3op_method_e zarr_s3op_method(const char *m, size_t len);
static int zarr_s3op_fail(zarr_s3op_t *op, int rc, const char *error);
static int zarr_s3op_classify_as(const zarr_s3op_request_t *req, char *buf,
    size_t size, zarr_s3op_t *op, int unknown);
static int zarr_s3op_keyed(zarr_s3op_t *op, zarr_s3op_method_e method,
    const zarr_s3op_query_t *q, int copy_source);
static int zarr_s3op_value(const zarr_s3op_param_t *raw, char **pos,
    const char **value, size_t *len);
static int zarr_s3_sigv4_credential(const char *p, const char *end,
    const char **key, size_t *key_len);
static int zarr_s3_access_key_check(const char *key, size_t len);
static int zarr_s3_access_key_find(const char *auth, size_t auth_len,
    const char *args, size_t args_len, char *buf, size_t size,
    const char **key, size_t *key_len);


static const zarr_s3op_name_t  zarr_s3op_params[] = {
    { "uploads", 7, ZARR_S3OP_Q_UPLOADS },
    { "uploadId", 8, ZARR_S3OP_Q_UPLOAD_ID },
    { "partNumber", 10, ZARR_S3OP_Q_PART_NUMBER },
    { "versionId", 9, ZARR_S3OP_Q_VERSION_ID },
    { "delete", 6, ZARR_S3OP_Q_DELETE },
    { "acl", 3, ZARR_S3OP_Q_ACL },
    { "tagging", 7, ZARR_S3OP_Q_TAGGING },
    { "retention", 9, ZARR_S3OP_Q_RETENTION },
    { "legal-hold", 10, ZARR_S3OP_Q_LEGAL_HOLD },
    { "restore", 7, ZARR_S3OP_Q_RESTORE },
    { "select", 6, ZARR_S3OP_Q_SELECT },
    { "mdsearch", 8, ZARR_S3OP_Q_MDSEARCH },
    { "append", 6, ZARR_S3OP_Q_APPEND },
    { NULL, 0, 0 }
};


/* percent-decoding */


static int
zarr_s3op_hexval(int c)
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


/*
 * Decodes the character at p into *c; returns the number of bytes read
 * (1 or 3), or -1 on a malformed escape.  plus: '+' is a space (queries).
 */

static int
zarr_s3op_decode_char(const char *p, const char *end, int plus, char *c)
{
    int  hi, lo;

    if (*p == '+' && plus) {
        *c = ' ';
        return 1;
    }

    if (*p != '%') {
        *c = *p;
        return 1;
    }

    if (end - p < 3) {
        return -1;
    }

    hi = zarr_s3op_hexval((unsigned char) p[1]);
    lo = zarr_s3op_hexval((unsigned char) p[2]);

    if (hi < 0 || lo < 0) {
        return -1;
    }

    *c = (char) (hi * 16 + lo);

    return 3;
}


/* decodes src into dst (len bytes are enough); dst NULL: only checks */

static int
zarr_s3op_decode(char *dst, const char *src, size_t len, int plus,
    size_t *out)
{
    int          n;
    char         c;
    size_t       k;
    const char  *p, *end;

    k = 0;
    end = src + len;

    for (p = src; p < end; p += n) {
        n = zarr_s3op_decode_char(p, end, plus, &c);
        if (n < 0) {
            return -1;
        }

        if (dst) {
            dst[k] = c;
        }

        k++;
    }

    *out = k;

    return 0;
}


/* queries */


/* the next parameter from *pos; returns 0 at the end of the query */

static int
zarr_s3op_next_param(const char **pos, const char *end,
    zarr_s3op_param_t *param)
{
    const char  *p, *amp, *eq;

    p = *pos;

    /* "a&&b" and a trailing '&' hold no parameter */

    while (p < end && *p == '&') {
        p++;
    }

    if (p == end) {
        *pos = p;
        return 0;
    }

    amp = memchr(p, '&', end - p);
    if (amp == NULL) {
        amp = end;
    }

    eq = memchr(p, '=', amp - p);

    param->name = p;

    if (eq) {
        param->name_len = eq - p;
        param->value = eq + 1;
        param->value_len = amp - eq - 1;

    } else {
        param->name_len = amp - p;
        param->value = "";
        param->value_len = 0;
    }

    *pos = amp;

    return 1;
}


/* 1: the decoded name is name, 0: it is not, -1: malformed name */

static int
zarr_s3op_param_is(const zarr_s3op_param_t *param, const char *name,
    size_t len)
{
    int          n;
    char         c;
    size_t       k;
    const char  *p, *end;

    k = 0;
    end = param->name + param->name_len;

    for (p = param->name; p < end; p += n) {
        n = zarr_s3op_decode_char(p, end, 1, &c);
        if (n < 0) {
            return -1;
        }

        if (k >= len || c != name[k]) {
            /* finish the walk: a malformed tail must still be seen */
            return zarr_s3op_decode(NULL, p, end - p, 1, &k) == 0 ? 0 : -1;
        }

        k++;
    }

    return k == len;
}


static void
zarr_s3op_parse_query(const char *args, size_t len, zarr_s3op_query_t *q)
{
    char                     name[ZARR_S3OP_NAME_MAX];
    size_t                   n;
    const char              *pos, *end;
    zarr_s3op_param_t        param;
    const zarr_s3op_name_t  *known;

    memset(q, 0, sizeof(zarr_s3op_query_t));

    pos = args;
    end = args + len;

    while (zarr_s3op_next_param(&pos, end, &param)) {

        /* a parameter that cannot be decoded is not matched at all */

        if (zarr_s3op_decode(NULL, param.value, param.value_len, 1, &n)
            != 0)
        {
            q->malformed = 1;
            continue;
        }

        if (zarr_s3op_decode(NULL, param.name, param.name_len, 1, &n)
            != 0)
        {
            q->malformed = 1;
            continue;
        }

        if (n > sizeof(name)) {
            continue;
        }

        (void) zarr_s3op_decode(name, param.name, param.name_len, 1, &n);

        for (known = zarr_s3op_params; known->name; known++) {
            if (n == known->len && memcmp(name, known->name, n) == 0) {
                break;
            }
        }

        if (known->name == NULL) {
            continue;
        }

        if (q->seen & known->flag) {
            q->repeated |= known->flag;
            continue;
        }

        q->seen |= known->flag;

        switch (known->flag) {

        case ZARR_S3OP_Q_UPLOAD_ID:
            q->upload_id = param;
            break;

        case ZARR_S3OP_Q_PART_NUMBER:
            q->part_number = param;
            break;

        case ZARR_S3OP_Q_VERSION_ID:
            q->version_id = param;
            break;

        default:
            break;
        }
    }
}


/* classification */


static zarr_s3op_method_e
zarr_s3op_method(const char *m, size_t len)
{
    /* HTTP methods are case-sensitive; nginx passes them as sent */

    switch (len) {

    case 3:
        if (memcmp(m, "GET", 3) == 0) {
            return ZARR_S3OP_M_READ;
        }

        if (memcmp(m, "PUT", 3) == 0) {
            return ZARR_S3OP_M_PUT;
        }

        break;

    case 4:
        if (memcmp(m, "HEAD", 4) == 0) {
            return ZARR_S3OP_M_READ;
        }

        if (memcmp(m, "POST", 4) == 0) {
            return ZARR_S3OP_M_POST;
        }

        break;

    case 6:
        if (memcmp(m, "DELETE", 6) == 0) {
            return ZARR_S3OP_M_DELETE;
        }

        break;

    case 7:
        /* CORS preflight */
        if (memcmp(m, "OPTIONS", 7) == 0) {
            return ZARR_S3OP_M_READ;
        }

        break;
    }

    return ZARR_S3OP_M_OTHER;
}


static int
zarr_s3op_fail(zarr_s3op_t *op, int rc, const char *error)
{
    op->error = error;

    return rc;
}


/* a write to a key: PUT, POST, DELETE or an unknown method */

static int
zarr_s3op_keyed(zarr_s3op_t *op, zarr_s3op_method_e method,
    const zarr_s3op_query_t *q, int copy_source)
{
    unsigned  mpu;

    mpu = q->seen & (ZARR_S3OP_Q_UPLOAD_ID | ZARR_S3OP_Q_PART_NUMBER);

    /*
     * which upload or part a request means must be beyond doubt: RGW,
     * for one, deletes the object on "DELETE key?uploadId=" (empty)
     */

    if (q->repeated & (ZARR_S3OP_Q_UPLOAD_ID | ZARR_S3OP_Q_PART_NUMBER)) {
        return zarr_s3op_fail(op, ZARR_S3OP_BAD_ARGS,
                              "repeated uploadId or partNumber");
    }

    if (((mpu & ZARR_S3OP_Q_UPLOAD_ID) && q->upload_id.value_len == 0)
        || ((mpu & ZARR_S3OP_Q_PART_NUMBER) && q->part_number.value_len == 0))
    {
        return zarr_s3op_fail(op, ZARR_S3OP_BAD_ARGS,
                              "empty uploadId or partNumber");
    }

    switch (method) {

    case ZARR_S3OP_M_PUT:
        if (q->seen & (ZARR_S3OP_Q_ACL | ZARR_S3OP_Q_TAGGING
                       | ZARR_S3OP_Q_RETENTION | ZARR_S3OP_Q_LEGAL_HOLD))
        {
            op->op = ZARR_S3OP_OTHER_WRITE;

        } else if (mpu) {
            /*
             * RGW decides on uploadId, AWS needs both: with one of them
             * the backends disagree on what is done
             */

            if (mpu != (ZARR_S3OP_Q_UPLOAD_ID | ZARR_S3OP_Q_PART_NUMBER)) {
                return zarr_s3op_fail(op, ZARR_S3OP_BAD_ARGS,
                                      "partNumber without uploadId, "
                                      "or uploadId without partNumber");
            }

            op->op = copy_source ? ZARR_S3OP_UPLOAD_PART_COPY
                                 : ZARR_S3OP_UPLOAD_PART;

        } else {
            op->op = copy_source ? ZARR_S3OP_COPY_OBJECT
                                 : ZARR_S3OP_PUT_OBJECT;

            /* RGW appends on "append" with or without a value */
            op->append = (q->seen & ZARR_S3OP_Q_APPEND) != 0;
        }

        break;

    case ZARR_S3OP_M_POST:
        if (q->seen & ZARR_S3OP_Q_UPLOAD_ID) {
            op->op = ZARR_S3OP_COMPLETE_MPU;

        } else if (q->seen & ZARR_S3OP_Q_UPLOADS) {
            op->op = ZARR_S3OP_CREATE_MPU;

        } else if (q->seen & (ZARR_S3OP_Q_RESTORE | ZARR_S3OP_Q_SELECT)) {
            op->op = ZARR_S3OP_OTHER_WRITE;

        } else {
            /* RGW takes any other POST to a key for a form upload */
            op->op = ZARR_S3OP_POST_OBJECT;
        }

        break;

    case ZARR_S3OP_M_DELETE:
        if (q->seen & ZARR_S3OP_Q_TAGGING) {
            op->op = ZARR_S3OP_OTHER_WRITE;

        } else if (q->seen & ZARR_S3OP_Q_UPLOAD_ID) {
            op->op = ZARR_S3OP_ABORT_MPU;

        } else {
            op->op = ZARR_S3OP_DELETE_OBJECT;
        }

        break;

    default:
        op->op = ZARR_S3OP_OTHER_WRITE;
        break;
    }

    return ZARR_S3OP_OK;
}


/* decodes a raw query value to *pos, advancing it */

static int
zarr_s3op_value(const zarr_s3op_param_t *raw, char **pos,
    const char **value, size_t *len)
{
    if (raw->name == NULL) {
        return 0;
    }

    if (zarr_s3op_decode(*pos, raw->value, raw->value_len, 1, len) != 0) {
        return -1;
    }

    *value = *pos;
    *pos += *len;

    return 0;
}


int
zarr_s3op_host_bucket(const char *host, size_t host_len, const char *domain,
    size_t domain_len, const char **bucket, size_t *bucket_len)
{
    size_t       i, len;
    const char  *colon;

    *bucket = NULL;
    *bucket_len = 0;

    if (host == NULL || domain == NULL) {
        return 0;
    }

    /* "example.org." is "example.org"; ".example.org" as well */

    if (domain_len > 0 && domain[0] == '.') {
        domain++;
        domain_len--;
    }

    if (domain_len > 0 && domain[domain_len - 1] == '.') {
        domain_len--;
    }

    if (domain_len == 0 || host_len == 0 || host[0] == '[') {
        /* no domain, no host, an IPv6 literal */
        return 0;
    }

    colon = memchr(host, ':', host_len);
    len = colon ? (size_t) (colon - host) : host_len;

    if (len > 0 && host[len - 1] == '.') {
        len--;
    }

    if (len < domain_len + 2
        || host[len - domain_len - 1] != '.'
        || strncasecmp(host + len - domain_len, domain, domain_len) != 0)
    {
        return 0;
    }

    len -= domain_len + 1;

    for (i = 0; i < len; i++) {
        if (host[i] >= 'A' && host[i] <= 'Z') {
            return -1;
        }
    }

    *bucket = host;
    *bucket_len = len;

    return 1;
}


int
zarr_s3op_host_name(const char *host, size_t host_len, const char **name,
    size_t *name_len)
{
    size_t       i, len;
    const char  *colon;

    *name = NULL;
    *name_len = 0;

    if (host == NULL || host_len == 0 || host[0] == '[') {
        return 0;
    }

    colon = memchr(host, ':', host_len);
    len = colon ? (size_t) (colon - host) : host_len;

    if (len > 0 && host[len - 1] == '.') {
        len--;
    }

    /*
     * an IPv4 address; a single label ("localhost") is a name: RGW with
     * rgw_dns_name takes any Host outside its domains for a bucket name
     */

    for (i = 0; i < len; i++) {
        if (host[i] != '.' && (host[i] < '0' || host[i] > '9')) {
            break;
        }
    }

    if (i == len) {
        return 0;
    }

    *name = host;
    *name_len = len;

    return 1;
}


int
zarr_s3op_classify(const zarr_s3op_request_t *req, char *buf, size_t size,
    zarr_s3op_t *op)
{
    return zarr_s3op_classify_as(req, buf, size, op, 0);
}


int
zarr_s3op_classify_unknown_host(const zarr_s3op_request_t *req, char *buf,
    size_t size, zarr_s3op_t *op)
{
    return zarr_s3op_classify_as(req, buf, size, op, 1);
}


/* unknown: virtual-hosted style under an unknown domain, bucket "" */

static int
zarr_s3op_classify_as(const zarr_s3op_request_t *req, char *buf,
    size_t size, zarr_s3op_t *op, int unknown)
{
    int                  vhost;
    char                *pos;
    size_t               uri_len, args_len, host_bucket_len;
    const char          *uri, *args, *p, *end, *slash, *q, *host_bucket;
    zarr_s3op_query_t    query;
    zarr_s3op_method_e   method;

    memset(op, 0, sizeof(zarr_s3op_t));
    op->bucket = "";
    op->key = "";

    uri = req->uri ? req->uri : "";
    uri_len = req->uri ? req->uri_len : 0;
    args = req->args;
    args_len = req->args_len;

    if (args == NULL) {
        q = memchr(uri, '?', uri_len);

        if (q) {
            args = q + 1;
            args_len = uri + uri_len - args;
            uri_len = q - uri;

        } else {
            args = "";
            args_len = 0;
        }
    }

    if (size < ZARR_S3OP_BUF_SIZE(uri_len, args_len)) {
        return zarr_s3op_fail(op, ZARR_S3OP_SMALL_BUF, "buffer too small");
    }

    if (uri_len == 0 || uri[0] != '/') {
        return zarr_s3op_fail(op, ZARR_S3OP_BAD_URI,
                              "the path does not start with \"/\"");
    }

    method = zarr_s3op_method(req->method, req->method_len);

    if (unknown) {
        vhost = 1;
        host_bucket = "";
        host_bucket_len = 0;

    } else {
        vhost = zarr_s3op_host_bucket(req->host, req->host_len,
                                      req->host_suffix, req->host_suffix_len,
                                      &host_bucket, &host_bucket_len);
    }

    if (vhost < 0) {
        return zarr_s3op_fail(op, ZARR_S3OP_BAD_URI,
                              "upper-case bucket name in the Host header");
    }

    p = uri + 1;
    end = uri + uri_len;
    pos = buf;

    if (vhost) {
        /* "bucket.domain" + "/[key]": the whole path is the key */

        op->bucket = host_bucket;
        op->bucket_len = host_bucket_len;
        slash = uri;

    } else {
        /* "/bucket[/key]": split at the first raw '/', then decode each */

        slash = memchr(p, '/', end - p);

        if (zarr_s3op_decode(pos, p, (slash ? slash : end) - p, 0,
                             &op->bucket_len)
            != 0)
        {
            return zarr_s3op_fail(op, ZARR_S3OP_BAD_URI,
                                  "malformed percent-encoding in the path");
        }

        op->bucket = pos;
        pos += op->bucket_len;
    }

    if (slash) {
        if (zarr_s3op_decode(pos, slash + 1, end - slash - 1, 0,
                             &op->key_len)
            != 0)
        {
            return zarr_s3op_fail(op, ZARR_S3OP_BAD_URI,
                                  "malformed percent-encoding in the path");
        }

        op->key = pos;
        pos += op->key_len;
    }

    if (op->bucket_len == 0 && !unknown) {
        if (uri_len != 1) {
            return zarr_s3op_fail(op, ZARR_S3OP_BAD_URI,
                                  "empty bucket name in the path");
        }

        op->op = ZARR_S3OP_SERVICE;
        return ZARR_S3OP_OK;
    }

    /* RGW decodes the whole path before splitting: "/a%2Fb/k" is "a" */

    if (memchr(op->bucket, '/', op->bucket_len)) {
        return zarr_s3op_fail(op, ZARR_S3OP_BAD_URI,
                              "\"/\" in the bucket name");
    }

    zarr_s3op_parse_query(args, args_len, &query);

    if (zarr_s3op_value(&query.upload_id, &pos, &op->upload_id,
                        &op->upload_id_len) != 0
        || zarr_s3op_value(&query.part_number, &pos, &op->part_number,
                           &op->part_number_len) != 0
        || zarr_s3op_value(&query.version_id, &pos, &op->version_id,
                           &op->version_id_len) != 0)
    {
        /* parse_query() kept valid values only */
        return zarr_s3op_fail(op, ZARR_S3OP_BAD_ARGS,
                              "malformed percent-encoding in the query");
    }

    if (method == ZARR_S3OP_M_READ) {
        op->op = ZARR_S3OP_READ;
        return ZARR_S3OP_OK;
    }

    if (query.malformed) {
        return zarr_s3op_fail(op, ZARR_S3OP_BAD_ARGS,
                              "malformed percent-encoding in the query");
    }

    if (op->key_len > 0) {
        return zarr_s3op_keyed(op, method, &query, req->copy_source);
    }

    if (method == ZARR_S3OP_M_POST) {
        if (query.seen & ZARR_S3OP_Q_DELETE) {
            op->op = ZARR_S3OP_DELETE_OBJECTS;

        } else if (query.seen & ZARR_S3OP_Q_MDSEARCH) {
            op->op = ZARR_S3OP_BUCKET_OP;

        } else {
            op->op = ZARR_S3OP_POST_OBJECT;
        }

        return ZARR_S3OP_OK;
    }

    op->op = ZARR_S3OP_BUCKET_OP;

    return ZARR_S3OP_OK;
}


const char *
zarr_s3op_name(zarr_s3op_e op)
{
    switch (op) {
    case ZARR_S3OP_READ:
        return "read";
    case ZARR_S3OP_PUT_OBJECT:
        return "put";
    case ZARR_S3OP_COPY_OBJECT:
        return "copy";
    case ZARR_S3OP_CREATE_MPU:
        return "mpu_create";
    case ZARR_S3OP_UPLOAD_PART:
        return "mpu_part";
    case ZARR_S3OP_UPLOAD_PART_COPY:
        return "mpu_part_copy";
    case ZARR_S3OP_COMPLETE_MPU:
        return "mpu_complete";
    case ZARR_S3OP_ABORT_MPU:
        return "mpu_abort";
    case ZARR_S3OP_DELETE_OBJECT:
        return "delete";
    case ZARR_S3OP_DELETE_OBJECTS:
        return "multi_delete";
    case ZARR_S3OP_POST_OBJECT:
        return "post";
    case ZARR_S3OP_OTHER_WRITE:
        return "other";
    case ZARR_S3OP_BUCKET_OP:
        return "bucket";
    case ZARR_S3OP_SERVICE:
        return "service";
    }

    return "unknown";
}


/* access key id */


/*
 * Finds "Credential=AKID/..." among the comma and/or space separated
 * "name=value" pairs of a SigV4 Authorization header after its scheme.
 * Returns 1 when found, 0 when not, -1 when malformed.
 */

static int
zarr_s3_sigv4_credential(const char *p, const char *end, const char **key,
    size_t *key_len)
{
    const char  *name, *value, *slash;
    size_t       name_len, value_len;

    for ( ;; ) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        if (p == end) {
            return 0;
        }

        name = p;

        while (p < end && *p != '=' && *p != ' ' && *p != '\t'
               && *p != ',')
        {
            p++;
        }

        name_len = p - name;

        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }

        value = p;
        value_len = 0;

        if (p < end && *p == '=') {
            p++;

            while (p < end && (*p == ' ' || *p == '\t')) {
                p++;
            }

            value = p;

            while (p < end && *p != ',' && *p != ' ' && *p != '\t') {
                p++;
            }

            value_len = p - value;
        }

        if (name_len == 10 && strncasecmp(name, "Credential", 10) == 0) {
            slash = memchr(value, '/', value_len);

            if (slash == NULL || slash == value) {
                return -1;
            }

            *key = value;
            *key_len = slash - value;

            return 1;
        }
    }
}


/* 0: a key id we may use (as an owner, in a log line), -1: not */

static int
zarr_s3_access_key_check(const char *key, size_t len)
{
    size_t  i;

    if (len > ZARR_S3_ACCESS_KEY_MAX) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if ((unsigned char) key[i] < 0x20 || key[i] == 0x7f) {
            return -1;
        }
    }

    return 0;
}


int
zarr_s3_access_key(const char *auth, size_t auth_len, const char *args,
    size_t args_len, char *buf, size_t size, const char **key,
    size_t *key_len)
{
    if (zarr_s3_access_key_find(auth, auth_len, args, args_len, buf, size,
                                key, key_len)
        != 0
        || zarr_s3_access_key_check(*key, *key_len) != 0)
    {
        *key = "";
        *key_len = 0;
        return -1;
    }

    return 0;
}


static int
zarr_s3_access_key_find(const char *auth, size_t auth_len,
    const char *args, size_t args_len, char *buf, size_t size,
    const char **key, size_t *key_len)
{
    int                 n, v4;
    char                c;
    size_t              k;
    const char         *p, *end, *scheme, *colon, *pos;
    zarr_s3op_param_t   param;

    *key = "";
    *key_len = 0;

    /* nginx leaves data NULL for an absent value */

    if (auth == NULL) {
        auth = "";
        auth_len = 0;
    }

    if (args == NULL) {
        args = "";
        args_len = 0;
    }

    p = auth;
    end = auth + auth_len;

    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }

    if (p < end) {
        scheme = p;

        while (p < end && *p != ' ' && *p != '\t') {
            p++;
        }

        if (p - scheme == 3 && memcmp(scheme, "AWS", 3) == 0) {

            /* SigV2: "AWS AKID:base64-signature" (no ':' in base64) */

            while (p < end && (*p == ' ' || *p == '\t')) {
                p++;
            }

            for (colon = end; colon > p && colon[-1] != ':'; colon--) {
                /* void */
            }

            if (colon == p) {
                return -1;
            }

            for (colon--; colon > p; colon--) {
                if (colon[-1] != ' ' && colon[-1] != '\t') {
                    break;
                }
            }

            if (colon == p) {
                return -1;
            }

            *key = p;
            *key_len = colon - p;

            return 0;
        }

        if (p - scheme > 5 && memcmp(scheme, "AWS4-", 5) == 0) {
            return zarr_s3_sigv4_credential(p, end, key, key_len) == 1
                   ? 0 : -1;
        }

        return -1;
    }

    /* a presigned URL */

    pos = args;
    end = args + args_len;

    while (zarr_s3op_next_param(&pos, end, &param)) {

        v4 = zarr_s3op_param_is(&param, "X-Amz-Credential", 16);

        if (v4 != 1
            && zarr_s3op_param_is(&param, "AWSAccessKeyId", 14) != 1)
        {
            continue;
        }

        /* the key id is what comes before the first decoded '/' */

        k = 0;
        p = param.value;

        while (p < param.value + param.value_len) {
            n = zarr_s3op_decode_char(p, param.value + param.value_len, 1,
                                      &c);
            if (n < 0) {
                return -1;
            }

            if (c == '/' && v4) {
                break;
            }

            if (k == size) {
                return -1;
            }

            buf[k++] = c;
            p += n;
        }

        if (k == 0 || (v4 && p == param.value + param.value_len)) {
            return -1;
        }

        *key = buf;
        *key_len = k;

        return 0;
    }

    return 0;
}


/* aws-chunked bodies */


int
zarr_s3_aws_chunked(const char *sha256, size_t sha256_len,
    const char *encoding, size_t encoding_len)
{
    const char  *p, *end, *tok, *tend;

    if (sha256 && sha256_len >= 10 && memcmp(sha256, "STREAMING-", 10) == 0)
    {
        return 1;
    }

    if (encoding == NULL) {
        return 0;
    }

    /* a list of tokens: "aws-chunked", "aws-chunked, gzip", ... */

    p = encoding;
    end = encoding + encoding_len;

    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        tok = p;

        while (p < end && *p != ',') {
            p++;
        }

        tend = p;

        while (tend > tok && (tend[-1] == ' ' || tend[-1] == '\t')) {
            tend--;
        }

        if (tend - tok == 11 && strncasecmp(tok, "aws-chunked", 11) == 0) {
            return -1;
        }
    }

    return 0;
}


/* x-amz-copy-source */


int
zarr_s3_copy_source(const char *value, size_t len, char *buf, size_t size,
    zarr_s3_copy_source_t *out)
{
    size_t              n;
    const char         *p, *end, *q, *pos;
    char               *slash;
    zarr_s3op_param_t   param;

    memset(out, 0, sizeof(zarr_s3_copy_source_t));

    if (value == NULL) {
        return -1;
    }

    p = value;
    end = value + len;

    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }

    if (size < (size_t) (end - p)) {
        return -1;
    }

    /* split before decoding: "%3F" is part of the key */

    q = memchr(p, '?', end - p);

    if (p < end && *p == '/') {
        p++;
    }

    if (end - p >= 4 && memcmp(p, "arn:", 4) == 0) {
        return -1;
    }

    if (zarr_s3op_decode(buf, p, (q ? q : end) - p, 0, &n) != 0) {
        return -1;
    }

    /* as RGW does it: decode first, then split at the first '/' */

    slash = memchr(buf, '/', n);

    if (slash == NULL || slash == buf || slash == buf + n - 1) {
        return -1;
    }

    out->bucket = buf;
    out->bucket_len = slash - buf;
    out->key = slash + 1;
    out->key_len = buf + n - slash - 1;

    if (q == NULL) {
        return 0;
    }

    pos = q + 1;

    while (zarr_s3op_next_param(&pos, end, &param)) {
        if (zarr_s3op_param_is(&param, "versionId", 9) != 1) {
            continue;
        }

        if (zarr_s3op_decode(buf + n, param.value, param.value_len, 1,
                             &out->version_id_len)
            != 0)
        {
            return -1;
        }

        out->version_id = buf + n;

        return 0;
    }

    return 0;
}
