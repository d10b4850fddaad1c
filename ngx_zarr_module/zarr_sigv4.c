/*
 * AWS Signature Version 4 for S3 (header-based).
 *
 * Reference: "Authenticating Requests: Using the Authorization Header (AWS
 * Signature Version 4)" in the Amazon S3 API reference; the known-answer
 * tests in tests/unit/test_sigv4.c are that page's examples.
 */

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zarr_hash.h"
#include "zarr_json.h"
#include "zarr_sigv4.h"


#define ZARR_SIGV4_ALGORITHM  "AWS4-HMAC-SHA256"
#define ZARR_SIGV4_TERMINATOR "aws4_request"




typedef struct {
    char          *name;
    size_t         name_len;
    char          *value;
    size_t         value_len;
} zarr_sigv4_pair_t;


typedef struct {
    char          *name;               /* lowercased, malloc()ed */
    char          *value;              /* trimmed, malloc()ed */
    size_t         index;              /* keeps duplicates in input order */
} zarr_sigv4_hdr_t;


static void zarr_sigv4_buf_add_encoded(zarr_buf_t *b, const char *s,
    size_t n, int keep_slash);
static char *zarr_sigv4_buf_detach(zarr_buf_t *b);
static int zarr_sigv4_pair_cmp(const void *one, const void *two);
static int zarr_sigv4_hdr_cmp(const void *one, const void *two);
static int zarr_sigv4_is_tchar(unsigned char c);
static int zarr_sigv4_valid_token(const char *s, const char *extra_bad);
static char *zarr_sigv4_lower(const char *s);
static char *zarr_sigv4_trim_value(const char *s);
static int zarr_sigv4_valid_date(const char *s);
static void zarr_sigv4_digits(char *out, int v, int n);
static void zarr_sigv4_free_hdrs(zarr_sigv4_hdr_t *hdrs, size_t n);
static int zarr_sigv4_build_headers(const zarr_sigv4_request_t *req,
    zarr_buf_t *canonical, zarr_buf_t *signed_headers,
    const char **error);


static void
zarr_sigv4_buf_add_encoded(zarr_buf_t *b, const char *s, size_t n,
    int keep_slash)
{
    size_t   i, start;
    char     esc[3];

    /* copy runs of bytes that need no encoding in one go */

    start = 0;

    for (i = 0; i < n; i++) {
        if (zarr_sigv4_uri_encode(NULL, s + i, 1, keep_slash) == 1) {
            continue;
        }

        zarr_buf_put(b, s + start, i - start);
        zarr_sigv4_uri_encode(esc, s + i, 1, keep_slash);
        zarr_buf_put(b, esc, 3);
        start = i + 1;
    }

    zarr_buf_put(b, s + start, n - start);
}


static char *
zarr_sigv4_buf_detach(zarr_buf_t *b)
{
    char  *p;

    if (b->failed) {
        free(b->data);
        b->data = NULL;
        return NULL;
    }

    p = b->data ? b->data : strdup("");
    b->data = NULL;
    b->len = 0;
    b->cap = 0;

    return p;
}


size_t
zarr_sigv4_uri_encode(char *dst, const char *src, size_t len, int keep_slash)
{
    size_t               i, n;
    unsigned char        c;
    static const char    hex[] = "0123456789ABCDEF";

    n = 0;

    for (i = 0; i < len; i++) {
        c = (unsigned char) src[i];

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
            || (c >= '0' && c <= '9')
            || c == '-' || c == '.' || c == '_' || c == '~'
            || (c == '/' && keep_slash))
        {
            if (dst) {
                dst[n] = (char) c;
            }

            n++;
            continue;
        }

        if (dst) {
            dst[n] = '%';
            dst[n + 1] = hex[c >> 4];
            dst[n + 2] = hex[c & 0x0f];
        }

        n += 3;
    }

    return n;
}


static int
zarr_sigv4_pair_cmp(const void *one, const void *two)
{
    int                       rc;
    size_t                    n;
    const zarr_sigv4_pair_t  *a, *b;

    a = one;
    b = two;

    /* encoded strings are ASCII: byte order is code point order */

    n = a->name_len < b->name_len ? a->name_len : b->name_len;
    rc = memcmp(a->name, b->name, n);

    if (rc != 0 || a->name_len != b->name_len) {
        return rc != 0 ? rc : (a->name_len < b->name_len ? -1 : 1);
    }

    n = a->value_len < b->value_len ? a->value_len : b->value_len;
    rc = memcmp(a->value, b->value, n);

    if (rc != 0 || a->value_len == b->value_len) {
        return rc;
    }

    return a->value_len < b->value_len ? -1 : 1;
}


char *
zarr_sigv4_canonical_query(const zarr_sigv4_param_t *params, size_t nparams)
{
    char               *out;
    size_t              i, n;
    zarr_buf_t    b;
    zarr_sigv4_pair_t  *pairs;

    if (nparams == 0) {
        return strdup("");
    }

    pairs = calloc(nparams, sizeof(zarr_sigv4_pair_t));
    if (pairs == NULL) {
        return NULL;
    }

    out = NULL;

    for (i = 0; i < nparams; i++) {
        n = zarr_sigv4_uri_encode(NULL, params[i].name, params[i].name_len,
                                  0);
        pairs[i].name = malloc(n + 1);
        if (pairs[i].name == NULL) {
            goto done;
        }

        pairs[i].name_len = zarr_sigv4_uri_encode(pairs[i].name,
                                                  params[i].name,
                                                  params[i].name_len, 0);

        n = params[i].value ? params[i].value_len : 0;

        pairs[i].value = malloc(3 * n + 1);
        if (pairs[i].value == NULL) {
            goto done;
        }

        pairs[i].value_len = zarr_sigv4_uri_encode(pairs[i].value,
                                                   params[i].value, n, 0);
    }

    qsort(pairs, nparams, sizeof(zarr_sigv4_pair_t), zarr_sigv4_pair_cmp);

    memset(&b, 0, sizeof(zarr_buf_t));

    for (i = 0; i < nparams; i++) {
        if (i > 0) {
            zarr_buf_put(&b, "&", 1);
        }

        zarr_buf_put(&b, pairs[i].name, pairs[i].name_len);
        zarr_buf_put(&b, "=", 1);
        zarr_buf_put(&b, pairs[i].value, pairs[i].value_len);
    }

    out = zarr_sigv4_buf_detach(&b);

done:

    for (i = 0; i < nparams; i++) {
        free(pairs[i].name);
        free(pairs[i].value);
    }

    free(pairs);

    return out;
}


static int
zarr_sigv4_hdr_cmp(const void *one, const void *two)
{
    int                      rc;
    const zarr_sigv4_hdr_t  *a, *b;

    a = one;
    b = two;

    rc = strcmp(a->name, b->name);
    if (rc != 0) {
        return rc;
    }

    return a->index < b->index ? -1 : (a->index > b->index);
}


static int
zarr_sigv4_is_tchar(unsigned char c)
{
    /* RFC 7230 token characters */

    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
        || (c >= '0' && c <= '9'))
    {
        return 1;
    }

    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}


static int
zarr_sigv4_valid_token(const char *s, const char *extra_bad)
{
    const unsigned char  *p;

    if (s == NULL || *s == '\0') {
        return 0;
    }

    for (p = (const unsigned char *) s; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f
            || (extra_bad && strchr(extra_bad, *p) != NULL))
        {
            return 0;
        }
    }

    return 1;
}


static char *
zarr_sigv4_lower(const char *s)
{
    char    *p;
    size_t   i, n;

    n = strlen(s);

    p = malloc(n + 1);
    if (p == NULL) {
        return NULL;
    }

    for (i = 0; i <= n; i++) {
        p[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char) (s[i] - 'A' + 'a')
                                            : s[i];
    }

    return p;
}


static char *
zarr_sigv4_trim_value(const char *s)
{
    char    *p;
    size_t   n;
    int      space;

    p = malloc(strlen(s) + 1);
    if (p == NULL) {
        return NULL;
    }

    /* drop leading and trailing blanks, collapse inner runs to one space */

    n = 0;
    space = 0;

    for ( /* void */ ; *s; s++) {
        if (*s == ' ' || *s == '\t') {
            space = 1;
            continue;
        }

        if (space && n > 0) {
            p[n++] = ' ';
        }

        space = 0;
        p[n++] = *s;
    }

    p[n] = '\0';

    return p;
}


static int
zarr_sigv4_valid_date(const char *s)
{
    size_t  i;

    if (s == NULL || strlen(s) != ZARR_SIGV4_DATE_LEN
        || s[8] != 'T' || s[15] != 'Z')
    {
        return 0;
    }

    for (i = 0; i < 15; i++) {
        if (i != 8 && (s[i] < '0' || s[i] > '9')) {
            return 0;
        }
    }

    return 1;
}


static void
zarr_sigv4_free_hdrs(zarr_sigv4_hdr_t *hdrs, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        free(hdrs[i].name);
        free(hdrs[i].value);
    }

    free(hdrs);
}


static int
zarr_sigv4_build_headers(const zarr_sigv4_request_t *req,
    zarr_buf_t *canonical, zarr_buf_t *signed_headers,
    const char **error)
{
    int                i, rc, host;
    size_t             k, n;
    const char        *p;
    zarr_sigv4_hdr_t  *hdrs;

    n = req->nheaders + 2;

    hdrs = calloc(n, sizeof(zarr_sigv4_hdr_t));
    if (hdrs == NULL) {
        *error = "out of memory";
        return -1;
    }

    rc = -1;
    host = 0;

    for (k = 0; k < req->nheaders; k++) {

        if (req->headers[k].name == NULL || req->headers[k].value == NULL
            || *req->headers[k].name == '\0')
        {
            *error = "empty header name or value";
            goto done;
        }

        for (p = req->headers[k].name; *p; p++) {
            if (!zarr_sigv4_is_tchar((unsigned char) *p)) {
                *error = "invalid header name";
                goto done;
            }
        }

        if (strpbrk(req->headers[k].value, "\r\n") != NULL) {
            *error = "CR or LF in a header value";
            goto done;
        }

        hdrs[k].name = zarr_sigv4_lower(req->headers[k].name);
        hdrs[k].value = zarr_sigv4_trim_value(req->headers[k].value);
        hdrs[k].index = k;

        if (hdrs[k].name == NULL || hdrs[k].value == NULL) {
            *error = "out of memory";
            goto done;
        }

        if (strcmp(hdrs[k].name, "x-amz-date") == 0
            || strcmp(hdrs[k].name, "x-amz-content-sha256") == 0
            || strcmp(hdrs[k].name, "authorization") == 0)
        {
            *error = "x-amz-date, x-amz-content-sha256 and authorization "
                     "are set by the signer";
            goto done;
        }

        if (strcmp(hdrs[k].name, "host") == 0) {
            host = 1;
        }
    }

    if (!host) {
        *error = "no host header";
        goto done;
    }

    hdrs[k].name = strdup("x-amz-content-sha256");
    hdrs[k].value = strdup(req->payload_hash);
    hdrs[k].index = k;
    k++;

    hdrs[k].name = strdup("x-amz-date");
    hdrs[k].value = strdup(req->amz_date);
    hdrs[k].index = k;

    for (k = n - 2; k < n; k++) {
        if (hdrs[k].name == NULL || hdrs[k].value == NULL) {
            *error = "out of memory";
            goto done;
        }
    }

    qsort(hdrs, n, sizeof(zarr_sigv4_hdr_t), zarr_sigv4_hdr_cmp);

    /* "name:value\n" per header name, repeated names joined with ',' */

    for (k = 0; k < n; k++) {
        i = (k > 0 && strcmp(hdrs[k].name, hdrs[k - 1].name) == 0);

        if (i) {
            zarr_buf_put(canonical, ",", 1);

        } else {
            if (k > 0) {
                zarr_buf_put(canonical, "\n", 1);
                zarr_buf_put(signed_headers, ";", 1);
            }

            zarr_buf_puts(canonical, hdrs[k].name);
            zarr_buf_put(canonical, ":", 1);
            zarr_buf_puts(signed_headers, hdrs[k].name);
        }

        zarr_buf_puts(canonical, hdrs[k].value);
    }

    zarr_buf_put(canonical, "\n", 1);

    if (canonical->failed || signed_headers->failed) {
        *error = "out of memory";
        goto done;
    }

    rc = 0;

done:

    zarr_sigv4_free_hdrs(hdrs, n);

    return rc;
}


int
zarr_sigv4_signing_key(const char *secret_key, const char *date,
    const char *region, const char *service, unsigned char *out)
{
    int            rc;
    char          *k;
    size_t         n;
    unsigned char  a[ZARR_SHA256_LEN], b[ZARR_SHA256_LEN];

    n = strlen(secret_key);

    k = malloc(n + 5);
    if (k == NULL) {
        return -1;
    }

    memcpy(k, "AWS4", 4);
    memcpy(k + 4, secret_key, n + 1);

    rc = zarr_hmac_sha256(k, n + 4, date, strlen(date), a);

    /* do not leave the secret in freed memory */
    memset(k, 0, n + 4);
    free(k);

    if (rc != 0
        || zarr_hmac_sha256(a, sizeof(a), region, strlen(region), b) != 0
        || zarr_hmac_sha256(b, sizeof(b), service, strlen(service), a) != 0
        || zarr_hmac_sha256(a, sizeof(a), ZARR_SIGV4_TERMINATOR,
                            sizeof(ZARR_SIGV4_TERMINATOR) - 1, out) != 0)
    {
        return -1;
    }

    return 0;
}


int
zarr_sigv4_sign(const zarr_sigv4_request_t *req,
    const zarr_sigv4_creds_t *creds, zarr_sigv4_result_t *res)
{
    char               *query, date[9];
    char                hash[ZARR_SHA256_HEX_LEN + 1];
    const char         *service;
    unsigned char       key[ZARR_SHA256_LEN], mac[ZARR_SHA256_LEN];
    zarr_buf_t    cr, sts, hdrs, sh, auth;

    memset(res, 0, sizeof(zarr_sigv4_result_t));
    memset(&cr, 0, sizeof(zarr_buf_t));
    memset(&sts, 0, sizeof(zarr_buf_t));
    memset(&hdrs, 0, sizeof(zarr_buf_t));
    memset(&sh, 0, sizeof(zarr_buf_t));
    memset(&auth, 0, sizeof(zarr_buf_t));

    service = creds->service ? creds->service : "s3";

    if (!zarr_sigv4_valid_token(req->method, NULL)) {
        res->error = "invalid method";
        return -1;
    }

    if (req->path_len > 0 && (req->path == NULL || req->path[0] != '/')) {
        res->error = "path must start with '/'";
        return -1;
    }

    if (!zarr_sigv4_valid_date(req->amz_date)) {
        res->error = "amz_date is not YYYYMMDDTHHMMSSZ";
        return -1;
    }

    if (!zarr_sigv4_valid_token(req->payload_hash, NULL)) {
        res->error = "invalid payload hash";
        return -1;
    }

    if (!zarr_sigv4_valid_token(creds->access_key, "/,;=")
        || !zarr_sigv4_valid_token(creds->region, "/,;=")
        || !zarr_sigv4_valid_token(service, "/,;=")
        || creds->secret_key == NULL)
    {
        res->error = "invalid access key, region or service";
        return -1;
    }

    memcpy(date, req->amz_date, 8);
    date[8] = '\0';

    /* the canonical request */

    zarr_buf_puts(&cr, req->method);
    zarr_buf_put(&cr, "\n", 1);

    if (req->path_len == 0) {
        zarr_buf_put(&cr, "/", 1);

    } else {
        zarr_sigv4_buf_add_encoded(&cr, req->path, req->path_len, 1);
    }

    zarr_buf_put(&cr, "\n", 1);

    query = zarr_sigv4_canonical_query(req->params, req->nparams);
    if (query == NULL) {
        res->error = "out of memory";
        goto failed;
    }

    zarr_buf_puts(&cr, query);
    zarr_buf_put(&cr, "\n", 1);
    free(query);

    if (zarr_sigv4_build_headers(req, &hdrs, &sh, &res->error) != 0) {
        goto failed;
    }

    zarr_buf_put(&cr, hdrs.data, hdrs.len);
    zarr_buf_put(&cr, "\n", 1);
    zarr_buf_put(&cr, sh.data, sh.len);
    zarr_buf_put(&cr, "\n", 1);
    zarr_buf_puts(&cr, req->payload_hash);

    if (cr.failed) {
        res->error = "out of memory";
        goto failed;
    }

    /* the string to sign */

    if (zarr_sha256_hex(cr.data, cr.len, hash) != 0) {
        res->error = "sha256 failed";
        goto failed;
    }

    zarr_buf_puts(&sts, ZARR_SIGV4_ALGORITHM "\n");
    zarr_buf_puts(&sts, req->amz_date);
    zarr_buf_put(&sts, "\n", 1);
    zarr_buf_puts(&sts, date);
    zarr_buf_put(&sts, "/", 1);
    zarr_buf_puts(&sts, creds->region);
    zarr_buf_put(&sts, "/", 1);
    zarr_buf_puts(&sts, service);
    zarr_buf_puts(&sts, "/" ZARR_SIGV4_TERMINATOR "\n");
    zarr_buf_puts(&sts, hash);

    if (sts.failed) {
        res->error = "out of memory";
        goto failed;
    }

    /* the signature */

    if (zarr_sigv4_signing_key(creds->secret_key, date, creds->region,
                               service, key)
        != 0
        || zarr_hmac_sha256(key, sizeof(key), sts.data, sts.len, mac) != 0)
    {
        memset(key, 0, sizeof(key));
        res->error = "hmac-sha256 failed";
        goto failed;
    }

    memset(key, 0, sizeof(key));

    zarr_hex_encode(mac, sizeof(mac), res->signature);
    memcpy(res->amz_date, req->amz_date, ZARR_SIGV4_DATE_LEN + 1);

    zarr_buf_puts(&auth, ZARR_SIGV4_ALGORITHM " Credential=");
    zarr_buf_puts(&auth, creds->access_key);
    zarr_buf_put(&auth, "/", 1);
    zarr_buf_puts(&auth, date);
    zarr_buf_put(&auth, "/", 1);
    zarr_buf_puts(&auth, creds->region);
    zarr_buf_put(&auth, "/", 1);
    zarr_buf_puts(&auth, service);
    zarr_buf_puts(&auth, "/" ZARR_SIGV4_TERMINATOR ",SignedHeaders=");
    zarr_buf_put(&auth, sh.data, sh.len);
    zarr_buf_puts(&auth, ",Signature=");
    zarr_buf_puts(&auth, res->signature);

    res->authorization = zarr_sigv4_buf_detach(&auth);
    res->signed_headers = zarr_sigv4_buf_detach(&sh);
    res->canonical_request = zarr_sigv4_buf_detach(&cr);
    res->string_to_sign = zarr_sigv4_buf_detach(&sts);

    free(hdrs.data);

    if (res->authorization == NULL || res->signed_headers == NULL
        || res->canonical_request == NULL || res->string_to_sign == NULL)
    {
        res->error = "out of memory";
        return -1;
    }

    return 0;

failed:

    free(cr.data);
    free(sts.data);
    free(hdrs.data);
    free(sh.data);
    free(auth.data);

    return -1;
}


void
zarr_sigv4_result_free(zarr_sigv4_result_t *res)
{
    free(res->authorization);
    free(res->signed_headers);
    free(res->canonical_request);
    free(res->string_to_sign);

    res->authorization = NULL;
    res->signed_headers = NULL;
    res->canonical_request = NULL;
    res->string_to_sign = NULL;
}


static void
zarr_sigv4_digits(char *out, int v, int n)
{
    while (n-- > 0) {
        out[n] = (char) ('0' + v % 10);
        v /= 10;
    }
}


int
zarr_sigv4_format_date(time_t t, char *out)
{
    struct tm  tm;

    if (gmtime_r(&t, &tm) == NULL
        || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
    {
        return -1;
    }

    /* digits by hand: no locale involved, unlike strftime */

    zarr_sigv4_digits(out, tm.tm_year + 1900, 4);
    zarr_sigv4_digits(out + 4, tm.tm_mon + 1, 2);
    zarr_sigv4_digits(out + 6, tm.tm_mday, 2);
    out[8] = 'T';
    zarr_sigv4_digits(out + 9, tm.tm_hour, 2);
    zarr_sigv4_digits(out + 11, tm.tm_min, 2);
    zarr_sigv4_digits(out + 13, tm.tm_sec, 2);
    out[15] = 'Z';
    out[16] = '\0';

    return 0;
}


int
zarr_sigv4_now(char *out)
{
    return zarr_sigv4_format_date(time(NULL), out);
}
