
/*
 * Verification of the SigV4 signatures of the requests the gateway
 * receives (DESIGN 4b), the credential file and RGW admin answers.
 *
 * The canonical request is rebuilt from the request as received, with
 * the rules RGW applies to the same request (rgw_auth_s3.cc), which are
 * AWS's: the path decoded once and encoded once, '/' kept; the query's
 * names and values decoded ('+' is a space there, as RGW reads it) and
 * encoded again, sorted; the signed headers only.  Every input is read
 * within its given length; every field has a bound.
 */


#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * SHA256_Init() and co. are deprecated in OpenSSL 3 but still there; on
 * the short inputs of a signature check they cost a third of the EVP
 * calls, which fetch their algorithm on every call (measured with
 * tests/bench/bench_auth.c).
 */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <jansson.h>

#include "zarr_auth.h"
#include "zarr_hash.h"
#include "zarr_json.h"
#include "zarr_sigv4.h"


#define ZARR_AUTH_ALGORITHM       "AWS4-HMAC-SHA256"
#define ZARR_AUTH_ALGORITHM_V4A   "AWS4-ECDSA-P256-SHA256"
#define ZARR_AUTH_TERMINATOR      "aws4_request"
#define ZARR_AUTH_CONTENT_SHA256  "x-amz-content-sha256"

/* decoded X-Amz-Credential: key/date/region/service/aws4_request */
#define ZARR_AUTH_CREDENTIAL_MAX                                              \
    (ZARR_AUTH_ACCESS_KEY_MAX + 10 + 2 * (ZARR_AUTH_SCOPE_MAX + 1) + 13)

/* longer query names than this are none of ours */
#define ZARR_AUTH_QNAME_MAX       32

#define ZARR_AUTH_CACHE_DEFAULT   64


typedef struct {
    const char                *name;          /* raw, percent-encoded */
    size_t                     name_len;
    const char                *value;         /* raw; "" without '=' */
    size_t                     value_len;
} zarr_auth_param_t;


/* an encoded query pair of the canonical query */
typedef struct {
    const char                *name;
    size_t                     name_len;
    const char                *value;
    size_t                     value_len;
} zarr_auth_pair_t;


/* a name of the signed headers list */
typedef struct {
    const char                *name;
    size_t                     len;
} zarr_auth_name_t;


/* what parse learnt about the request's time */
typedef struct {
    time_t                     date;
    long                       expires;       /* presigned */
} zarr_auth_times_t;


typedef struct {
    uint64_t                   hash;
    uint64_t                   seq;           /* 0: free */
    size_t                     secret_len;
    char                       secret[ZARR_AUTH_SECRET_MAX + 1];
    char                       date[9];
    char                       region[ZARR_AUTH_SCOPE_MAX + 1];
    char                       service[ZARR_AUTH_SCOPE_MAX + 1];
    unsigned char              key[ZARR_SHA256_LEN];
} zarr_auth_cache_entry_t;


struct zarr_auth_cache_s {
    size_t                     nentries;
    uint64_t                   seq;
    zarr_auth_cache_entry_t   *entries;
};


static zarr_auth_rc_e zarr_auth_fail(zarr_auth_t *a, zarr_auth_rc_e rc,
    const char *error, const char *code);
static int zarr_auth_hexval(int c);
static int zarr_auth_valid_encoding(const char *p, size_t len);
static size_t zarr_auth_decode(char *dst, const char *src, size_t len,
    int plus);
static int zarr_auth_decode_to(char *dst, size_t size, const char *src,
    size_t len, size_t *out_len);
static int zarr_auth_ieq(const char *s, size_t len, const char *lit);
static int zarr_auth_icmp(const char *s, size_t len, const char *lower,
    size_t lower_len);
static void zarr_auth_trim(const char **p, size_t *len);
static const zarr_auth_header_t *zarr_auth_find_header(
    const zarr_auth_request_t *req, const char *name, size_t *count);
static int zarr_auth_next_param(const char **pos, const char *end,
    zarr_auth_param_t *param);
static int zarr_auth_param_is(const zarr_auth_param_t *param,
    const char *name);
static time_t zarr_auth_days(int y, int m, int d);
static int zarr_auth_digits(const char *p, size_t n, int *v);
static int zarr_auth_valid_day(int y, int m, int d);
static int zarr_auth_parse_iso(const char *p, size_t len, time_t *t);
static int zarr_auth_parse_rfc1123(const char *p, size_t len, time_t *t);
static int zarr_auth_valid_key(const char *p, size_t len);
static int zarr_auth_valid_scope(const char *p, size_t len);
static int zarr_auth_set_key(zarr_auth_t *a, const char *p, size_t len);
static zarr_auth_rc_e zarr_auth_credential(zarr_auth_t *a, const char *p,
    size_t len);
static zarr_auth_rc_e zarr_auth_signature(zarr_auth_t *a, const char *p,
    size_t len);
static int zarr_auth_valid_signed_headers(const char *p, size_t len);
static zarr_auth_rc_e zarr_auth_payload(zarr_auth_t *a,
    const zarr_auth_request_t *req, int required);
static zarr_auth_rc_e zarr_auth_parse_header(const zarr_auth_request_t *req,
    zarr_auth_t *a, const char *value, size_t len, zarr_auth_times_t *tm);
static zarr_auth_rc_e zarr_auth_parse_query(const zarr_auth_request_t *req,
    zarr_auth_t *a, const char *args, size_t len, zarr_auth_times_t *tm);
static zarr_auth_rc_e zarr_auth_parse_v2_query(zarr_auth_t *a,
    const char *args, size_t len);
static int zarr_auth_pair_cmp(const void *one, const void *two);
static int zarr_auth_canonical_query(zarr_buf_t *b, const char *args,
    size_t len, int presigned);
static void zarr_auth_put_value(zarr_buf_t *b, const char *v, size_t len);
static int zarr_auth_find_name(const zarr_auth_name_t *names, size_t n,
    const char *s, size_t len);
static zarr_auth_rc_e zarr_auth_canonical_headers(zarr_buf_t *b,
    const zarr_auth_request_t *req, zarr_auth_t *a, const char *sh,
    size_t sh_len);
static void zarr_auth_sts_add(char *sts, size_t *n, const char *s);
static void zarr_auth_hmac(const unsigned char key[32], const char *msg,
    size_t len, unsigned char out[32]);
static uint64_t zarr_auth_hash(const char *secret, size_t secret_len,
    const zarr_auth_t *a);
static int zarr_auth_strfit(char *dst, size_t size, const char *src);


/* request parsing */


static zarr_auth_rc_e
zarr_auth_fail(zarr_auth_t *a, zarr_auth_rc_e rc, const char *error,
    const char *code)
{
    a->error = error;
    a->code = code;

    return rc;
}


static int
zarr_auth_hexval(int c)
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


static int
zarr_auth_valid_encoding(const char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (p[i] != '%') {
            continue;
        }

        if (len - i < 3 || zarr_auth_hexval((unsigned char) p[i + 1]) < 0
            || zarr_auth_hexval((unsigned char) p[i + 2]) < 0)
        {
            return 0;
        }

        i += 2;
    }

    return 1;
}


/* decodes %XX (a malformed one is kept as is); dst holds len bytes */

static size_t
zarr_auth_decode(char *dst, const char *src, size_t len, int plus)
{
    int     hi, lo;
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; i++) {
        if (src[i] == '%' && len - i >= 3
            && (hi = zarr_auth_hexval((unsigned char) src[i + 1])) >= 0
            && (lo = zarr_auth_hexval((unsigned char) src[i + 2])) >= 0)
        {
            dst[n++] = (char) (hi << 4 | lo);
            i += 2;
            continue;
        }

        dst[n++] = (plus && src[i] == '+') ? ' ' : src[i];
    }

    return n;
}


/* the same, NUL-terminated, into size bytes; -1: too long or malformed */

static int
zarr_auth_decode_to(char *dst, size_t size, const char *src, size_t len,
    size_t *out_len)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; i++) {
        if (n + 1 >= size) {
            return -1;
        }

        if (src[i] == '%') {
            if (len - i < 3 || zarr_auth_hexval((unsigned char) src[i + 1]) < 0
                || zarr_auth_hexval((unsigned char) src[i + 2]) < 0)
            {
                return -1;
            }

            dst[n++] = (char) (zarr_auth_hexval((unsigned char) src[i + 1])
                               << 4
                               | zarr_auth_hexval((unsigned char) src[i + 2]));
            i += 2;
            continue;
        }

        dst[n++] = src[i] == '+' ? ' ' : src[i];
    }

    dst[n] = '\0';
    *out_len = n;

    return 0;
}


static int
zarr_auth_ieq(const char *s, size_t len, const char *lit)
{
    size_t  i;
    int     c;

    for (i = 0; i < len; i++) {
        if (lit[i] == '\0') {
            return 0;
        }

        c = (unsigned char) s[i];

        if (c >= 'A' && c <= 'Z') {
            c += 'a' - 'A';
        }

        if (c != (unsigned char) lit[i]) {
            return 0;
        }
    }

    return lit[len] == '\0';
}


/* s (any case) against a lowercase name: <0, 0, >0 */

static int
zarr_auth_icmp(const char *s, size_t len, const char *lower,
    size_t lower_len)
{
    int     c;
    size_t  i;

    for (i = 0; i < len && i < lower_len; i++) {
        c = (unsigned char) s[i];

        if (c >= 'A' && c <= 'Z') {
            c += 'a' - 'A';
        }

        if (c != (unsigned char) lower[i]) {
            return c - (unsigned char) lower[i];
        }
    }

    return len == lower_len ? 0 : (len < lower_len ? -1 : 1);
}


static void
zarr_auth_trim(const char **p, size_t *len)
{
    while (*len > 0 && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*len)--;
    }

    while (*len > 0 && ((*p)[*len - 1] == ' ' || (*p)[*len - 1] == '\t')) {
        (*len)--;
    }
}


/* the first header of that (lowercase) name; *count: how many there are */

static const zarr_auth_header_t *
zarr_auth_find_header(const zarr_auth_request_t *req, const char *name,
    size_t *count)
{
    size_t                     i;
    const zarr_auth_header_t  *h, *found;

    found = NULL;
    *count = 0;

    for (i = 0; i < req->nheaders; i++) {
        h = &req->headers[i];

        if (h->name != NULL && zarr_auth_ieq(h->name, h->name_len, name)) {
            if (found == NULL) {
                found = h;
            }

            (*count)++;
        }
    }

    return found;
}


static int
zarr_auth_next_param(const char **pos, const char *end,
    zarr_auth_param_t *param)
{
    const char  *p, *amp, *eq;

    /* empty pairs ("a&&b") are skipped, as RGW does */

    for (p = *pos; p < end && *p == '&'; p++) {
        /* void */
    }

    if (p >= end) {
        *pos = end;
        return 0;
    }

    amp = memchr(p, '&', end - p);
    if (amp == NULL) {
        amp = end;
    }

    eq = memchr(p, '=', amp - p);

    param->name = p;

    if (eq == NULL) {
        param->name_len = amp - p;
        param->value = "";
        param->value_len = 0;

    } else {
        param->name_len = eq - p;
        param->value = eq + 1;
        param->value_len = amp - eq - 1;
    }

    *pos = amp;

    return 1;
}


static int
zarr_auth_param_is(const zarr_auth_param_t *param, const char *name)
{
    char    buf[ZARR_AUTH_QNAME_MAX + 1];
    size_t  n;

    if (param->name_len > 3 * ZARR_AUTH_QNAME_MAX) {
        return 0;
    }

    if (memchr(param->name, '%', param->name_len) == NULL
        && memchr(param->name, '+', param->name_len) == NULL)
    {
        n = strlen(name);
        return param->name_len == n && memcmp(param->name, name, n) == 0;
    }

    if (zarr_auth_decode_to(buf, sizeof(buf), param->name, param->name_len,
                            &n)
        != 0)
    {
        return 0;
    }

    return strcmp(buf, name) == 0 && n == strlen(name);
}


/* days since 1970-01-01 of a proleptic Gregorian date */

static time_t
zarr_auth_days(int y, int m, int d)
{
    int       era;
    unsigned  yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned) (y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return (time_t) era * 146097 + (time_t) doe - 719468;
}


static int
zarr_auth_digits(const char *p, size_t n, int *v)
{
    size_t  i;

    *v = 0;

    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        *v = *v * 10 + (p[i] - '0');
    }

    return 0;
}


static int
zarr_auth_valid_day(int y, int m, int d)
{
    static const int  mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
                                  30, 31 };

    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1]) {
        return 0;
    }

    return !(m == 2 && d == 29
             && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)));
}


/* "YYYYMMDDTHHMMSSZ" */

static int
zarr_auth_parse_iso(const char *p, size_t len, time_t *t)
{
    int  y, mo, d, h, mi, s;

    if (len != ZARR_SIGV4_DATE_LEN || p[8] != 'T' || p[15] != 'Z'
        || zarr_auth_digits(p, 4, &y) != 0
        || zarr_auth_digits(p + 4, 2, &mo) != 0
        || zarr_auth_digits(p + 6, 2, &d) != 0
        || zarr_auth_digits(p + 9, 2, &h) != 0
        || zarr_auth_digits(p + 11, 2, &mi) != 0
        || zarr_auth_digits(p + 13, 2, &s) != 0
        || !zarr_auth_valid_day(y, mo, d) || h > 23 || mi > 59 || s > 59)
    {
        return -1;
    }

    *t = zarr_auth_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;

    return 0;
}


/* "Fri, 24 May 2013 00:00:00 GMT" */

static int
zarr_auth_parse_rfc1123(const char *p, size_t len, time_t *t)
{
    int                i, y, mo, d, h, mi, s;
    static const char  wdays[] = "MonTueWedThuFriSatSun";
    static const char  months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

    if (len != 29 || p[3] != ',' || p[4] != ' ' || p[7] != ' '
        || p[11] != ' ' || p[16] != ' ' || p[19] != ':' || p[22] != ':'
        || p[25] != ' ' || memcmp(p + 26, "GMT", 3) != 0)
    {
        return -1;
    }

    for (i = 0; i < 7; i++) {
        if (memcmp(p, wdays + 3 * i, 3) == 0) {
            break;
        }
    }

    if (i == 7) {
        return -1;
    }

    for (mo = 0; mo < 12; mo++) {
        if (memcmp(p + 8, months + 3 * mo, 3) == 0) {
            break;
        }
    }

    if (mo == 12
        || zarr_auth_digits(p + 5, 2, &d) != 0
        || zarr_auth_digits(p + 12, 4, &y) != 0
        || zarr_auth_digits(p + 17, 2, &h) != 0
        || zarr_auth_digits(p + 20, 2, &mi) != 0
        || zarr_auth_digits(p + 23, 2, &s) != 0
        || !zarr_auth_valid_day(y, mo + 1, d) || h > 23 || mi > 59
        || s > 59)
    {
        return -1;
    }

    *t = zarr_auth_days(y, mo + 1, d) * 86400 + h * 3600 + mi * 60 + s;

    return 0;
}


/* printable ASCII only: the key ends up in log lines and JSON */

static int
zarr_auth_valid_key(const char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > ZARR_AUTH_ACCESS_KEY_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if ((unsigned char) p[i] < 0x21 || (unsigned char) p[i] > 0x7e) {
            return 0;
        }
    }

    return 1;
}


static int
zarr_auth_valid_scope(const char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > ZARR_AUTH_SCOPE_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if ((unsigned char) p[i] < 0x21 || (unsigned char) p[i] > 0x7e
            || p[i] == '/')
        {
            return 0;
        }
    }

    return 1;
}


static int
zarr_auth_set_key(zarr_auth_t *a, const char *p, size_t len)
{
    if (!zarr_auth_valid_key(p, len)) {
        return -1;
    }

    memcpy(a->access_key, p, len);
    a->access_key[len] = '\0';
    a->access_key_len = len;

    return 0;
}


/* "AKID/YYYYMMDD/region/service/aws4_request" */

static zarr_auth_rc_e
zarr_auth_credential(zarr_auth_t *a, const char *p, size_t len)
{
    int          y, m, d;
    size_t       i, n, lens[5];
    const char  *parts[5], *s;

    n = 0;
    s = p;

    for (i = 0; i <= len; i++) {
        if (i < len && p[i] != '/') {
            continue;
        }

        if (n == 5) {
            return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                                  "the credential has too many parts", NULL);
        }

        parts[n] = s;
        lens[n] = p + i - s;
        n++;
        s = p + i + 1;
    }

    if (n != 5) {
        return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                              "the credential is not "
                              "KEY/DATE/REGION/SERVICE/aws4_request", NULL);
    }

    if (zarr_auth_set_key(a, parts[0], lens[0]) != 0) {
        return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                              "invalid access key id", NULL);
    }

    if (lens[1] != 8 || zarr_auth_digits(parts[1], 4, &y) != 0
        || zarr_auth_digits(parts[1] + 4, 2, &m) != 0
        || zarr_auth_digits(parts[1] + 6, 2, &d) != 0
        || !zarr_auth_valid_day(y, m, d))
    {
        return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                              "invalid credential date", NULL);
    }

    if (!zarr_auth_valid_scope(parts[2], lens[2])
        || !zarr_auth_valid_scope(parts[3], lens[3]))
    {
        return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                              "invalid credential region or service", NULL);
    }

    if (lens[4] != sizeof(ZARR_AUTH_TERMINATOR) - 1
        || memcmp(parts[4], ZARR_AUTH_TERMINATOR, lens[4]) != 0)
    {
        return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                              "the credential does not end in "
                              "aws4_request", NULL);
    }

    memcpy(a->scope_date, parts[1], 8);
    a->scope_date[8] = '\0';
    memcpy(a->region, parts[2], lens[2]);
    a->region[lens[2]] = '\0';
    memcpy(a->service, parts[3], lens[3]);
    a->service[lens[3]] = '\0';

    return ZARR_AUTH_OK;
}


static zarr_auth_rc_e
zarr_auth_signature(zarr_auth_t *a, const char *p, size_t len)
{
    size_t  i;

    if (len != 64) {
        return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                              "the signature is not 64 hex digits", NULL);
    }

    for (i = 0; i < len; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
            return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                                  "the signature is not 64 lowercase hex "
                                  "digits", NULL);
        }
    }

    memcpy(a->signature, p, 64);
    a->signature[64] = '\0';

    return ZARR_AUTH_OK;
}


/*
 * "host;range;x-amz-date": lowercase RFC 7230 tokens, sorted, no
 * duplicates or empty names (as every SDK writes it; S3 sorts the
 * canonical headers itself, so an unsorted list cannot be meant), host
 * among them.
 */

static int
zarr_auth_valid_signed_headers(const char *p, size_t len)
{
    int          host, order;
    size_t       i, n, prev_len;
    const char  *name, *prev;
    unsigned     c;

    if (len == 0 || len > ZARR_AUTH_SIGNED_HEADERS_MAX) {
        return 0;
    }

    host = 0;
    prev = NULL;
    prev_len = 0;
    name = p;

    for (i = 0; i <= len; i++) {
        if (i < len && p[i] != ';') {
            c = (unsigned char) p[i];

            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                  || strchr("!#$%&'*+-.^_`|~", (int) c) != NULL)
                || c == '\0')
            {
                return 0;
            }

            continue;
        }

        n = p + i - name;

        if (n == 0) {
            return 0;
        }

        if (prev != NULL) {
            order = memcmp(prev, name, prev_len < n ? prev_len : n);

            if (order > 0 || (order == 0 && prev_len >= n)) {
                return 0;
            }
        }

        if (n == 4 && memcmp(name, "host", 4) == 0) {
            host = 1;
        }

        prev = name;
        prev_len = n;
        name = p + i + 1;
    }

    return host;
}


/* x-amz-content-sha256 */

static zarr_auth_rc_e
zarr_auth_payload(zarr_auth_t *a, const zarr_auth_request_t *req,
    int required)
{
    size_t                     i, n, len;
    const char                *v;
    const zarr_auth_header_t  *h;
    static const char         *modes[] = {
        ZARR_SIGV4_UNSIGNED_PAYLOAD,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        NULL
    };

    h = zarr_auth_find_header(req, ZARR_AUTH_CONTENT_SHA256, &n);

    if (n == 0) {
        if (required) {
            return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                                  "missing required header for this "
                                  "request: x-amz-content-sha256",
                                  "InvalidRequest");
        }

        a->payload_hash = ZARR_SIGV4_UNSIGNED_PAYLOAD;
        a->payload_hash_len = sizeof(ZARR_SIGV4_UNSIGNED_PAYLOAD) - 1;

        return ZARR_AUTH_OK;
    }

    if (n > 1) {
        return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                              "more than one x-amz-content-sha256 header",
                              "InvalidArgument");
    }

    v = h->value ? h->value : "";
    len = h->value ? h->value_len : 0;
    zarr_auth_trim(&v, &len);

    a->payload_hash = v;
    a->payload_hash_len = len;

    if (len == ZARR_SHA256_HEX_LEN) {
        for (i = 0; i < len; i++) {
            if (!((v[i] >= '0' && v[i] <= '9')
                  || (v[i] >= 'a' && v[i] <= 'f')))
            {
                break;
            }
        }

        if (i == len) {
            return ZARR_AUTH_OK;
        }
    }

    for (i = 0; modes[i] != NULL; i++) {
        if (len == strlen(modes[i]) && memcmp(v, modes[i], len) == 0) {
            return ZARR_AUTH_OK;
        }
    }

    if (len >= 39 && memcmp(v, "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", 39)
                     == 0)
    {
        return zarr_auth_fail(a, ZARR_AUTH_UNSUPPORTED,
                              "SigV4a (ECDSA) streaming payloads are not "
                              "supported by this gateway", NULL);
    }

    return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                          "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                          "STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER], "
                          "STREAMING-UNSIGNED-PAYLOAD-TRAILER or a "
                          "lowercase hex sha256", "InvalidArgument");
}


static zarr_auth_rc_e
zarr_auth_parse_header(const zarr_auth_request_t *req, zarr_auth_t *a,
    const char *value, size_t len, zarr_auth_times_t *tm)
{
    int                        seen_cred, seen_sh, seen_sig;
    size_t                     n, nlen, vlen;
    const char                *p, *end, *scheme, *name, *v, *colon, *comma;
    zarr_auth_rc_e             rc;
    const zarr_auth_header_t  *h;

    p = value;
    end = value + len;

    scheme = p;

    while (p < end && *p != ' ' && *p != '\t') {
        p++;
    }

    n = p - scheme;

    if (n == 3 && memcmp(scheme, "AWS", 3) == 0) {

        /* SigV2: "AWS AKID:signature", recognised for the log only */

        a->kind = ZARR_AUTH_KIND_V2_HEADER;

        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }

        colon = end;

        while (colon > p && colon[-1] != ':') {
            colon--;
        }

        if (colon == p || zarr_auth_set_key(a, p, colon - 1 - p) != 0) {
            return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                                  "malformed SigV2 Authorization header",
                                  NULL);
        }

        return zarr_auth_fail(a, ZARR_AUTH_UNSUPPORTED,
                              "SigV2 signatures are not accepted by this "
                              "gateway: sign with SigV4", NULL);
    }

    if (n == sizeof(ZARR_AUTH_ALGORITHM_V4A) - 1
        && memcmp(scheme, ZARR_AUTH_ALGORITHM_V4A, n) == 0)
    {
        a->kind = ZARR_AUTH_KIND_V4A;

        /* the key for the log: "Credential=AKID/date/service/..." */

        v = NULL;

        for (name = p; end - name > 11; name++) {
            if (memcmp(name, "Credential=", 11) == 0) {
                v = name + 11;
                break;
            }
        }

        if (v != NULL) {
            for (n = 0; v + n < end && v[n] != '/' && v[n] != ','; n++) {
                /* void */
            }

            (void) zarr_auth_set_key(a, v, n);
        }

        return zarr_auth_fail(a, ZARR_AUTH_UNSUPPORTED,
                              "SigV4a (AWS4-ECDSA-P256-SHA256) signatures "
                              "are not supported by this gateway", NULL);
    }

    if (n != sizeof(ZARR_AUTH_ALGORITHM) - 1
        || memcmp(scheme, ZARR_AUTH_ALGORITHM, n) != 0)
    {
        return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                              "unsupported Authorization type",
                              "InvalidArgument");
    }

    a->kind = ZARR_AUTH_KIND_V4_HEADER;

    /* "Credential=..., SignedHeaders=..., Signature=...", in any order */

    seen_cred = 0;
    seen_sh = 0;
    seen_sig = 0;

    for ( ;; ) {
        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }

        comma = memchr(p, ',', end - p);
        if (comma == NULL) {
            comma = end;
        }

        name = p;
        v = memchr(p, '=', comma - p);

        if (v == NULL) {
            return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                                  "the Authorization header is not "
                                  "Credential=..., SignedHeaders=..., "
                                  "Signature=...", NULL);
        }

        nlen = v - name;
        v++;
        vlen = comma - v;
        zarr_auth_trim(&v, &vlen);

        if (nlen == 10 && memcmp(name, "Credential", 10) == 0) {
            if (seen_cred++) {
                goto duplicate;
            }

            rc = zarr_auth_credential(a, v, vlen);
            if (rc != ZARR_AUTH_OK) {
                return rc;
            }

        } else if (nlen == 13 && memcmp(name, "SignedHeaders", 13) == 0) {
            if (seen_sh++) {
                goto duplicate;
            }

            a->signed_headers = v;
            a->signed_headers_len = vlen;

        } else if (nlen == 9 && memcmp(name, "Signature", 9) == 0) {
            if (seen_sig++) {
                goto duplicate;
            }

            rc = zarr_auth_signature(a, v, vlen);
            if (rc != ZARR_AUTH_OK) {
                return rc;
            }

        } else {
            return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                                  "unknown component in the "
                                  "Authorization header", NULL);
        }

        if (comma == end) {
            break;
        }

        p = comma + 1;
    }

    if (!seen_cred || !seen_sh || !seen_sig) {
        return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                              "the Authorization header needs Credential, "
                              "SignedHeaders and Signature", NULL);
    }

    if (!zarr_auth_valid_signed_headers(a->signed_headers,
                                        a->signed_headers_len))
    {
        return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                              "SignedHeaders must be sorted lowercase header "
                              "names separated by ';', host among them",
                              NULL);
    }

    rc = zarr_auth_payload(a, req, 1);
    if (rc != ZARR_AUTH_OK) {
        return rc;
    }

    /* the request's time: x-amz-date, else Date */

    h = zarr_auth_find_header(req, "x-amz-date", &n);

    if (n == 1) {
        v = h->value ? h->value : "";
        vlen = h->value ? h->value_len : 0;
        zarr_auth_trim(&v, &vlen);

        if (zarr_auth_parse_iso(v, vlen, &tm->date) != 0) {
            goto bad_date;
        }

    } else if (n == 0) {
        h = zarr_auth_find_header(req, "date", &n);

        if (n != 1) {
            goto bad_date;
        }

        v = h->value ? h->value : "";
        vlen = h->value ? h->value_len : 0;
        zarr_auth_trim(&v, &vlen);

        /* RFC 1123, or ISO 8601 basic as RGW also reads it */

        if (zarr_auth_parse_rfc1123(v, vlen, &tm->date) != 0
            && zarr_auth_parse_iso(v, vlen, &tm->date) != 0)
        {
            goto bad_date;
        }

    } else {
        goto bad_date;
    }

    if (zarr_sigv4_format_date(tm->date, a->amz_date) != 0) {
        goto bad_date;
    }

    if (memcmp(a->amz_date, a->scope_date, 8) != 0) {
        return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                              "invalid credential date: not the day of the "
                              "request's date", NULL);
    }

    return ZARR_AUTH_OK;

duplicate:

    return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                          "a component of the Authorization header is "
                          "repeated", NULL);

bad_date:

    return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                          "AWS authentication requires one valid Date or "
                          "x-amz-date header", "AccessDenied");
}


static zarr_auth_rc_e
zarr_auth_parse_query(const zarr_auth_request_t *req, zarr_auth_t *a,
    const char *args, size_t len, zarr_auth_times_t *tm)
{
    int                 i, which, seen[6];
    char                algorithm[32], cred[ZARR_AUTH_CREDENTIAL_MAX + 1];
    char                date[ZARR_SIGV4_DATE_LEN + 2], expires[16];
    char                sig[66], *sh;
    char               *bufs[6];
    size_t              sizes[6], lens[6], n;
    const char         *pos, *end;
    zarr_auth_rc_e      rc;
    zarr_auth_param_t   param;
    static const char  *names[] = {
        "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
        "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"
    };

    a->kind = ZARR_AUTH_KIND_V4_QUERY;

    sh = malloc(ZARR_AUTH_SIGNED_HEADERS_MAX + 1);
    if (sh == NULL) {
        return zarr_auth_fail(a, ZARR_AUTH_NOMEM, "out of memory", NULL);
    }

    bufs[0] = algorithm;
    sizes[0] = sizeof(algorithm);
    bufs[1] = cred;
    sizes[1] = sizeof(cred);
    bufs[2] = date;
    sizes[2] = sizeof(date);
    bufs[3] = expires;
    sizes[3] = sizeof(expires);
    bufs[4] = sh;
    sizes[4] = ZARR_AUTH_SIGNED_HEADERS_MAX + 1;
    bufs[5] = sig;
    sizes[5] = sizeof(sig);

    memset(seen, 0, sizeof(seen));
    memset(lens, 0, sizeof(lens));

    pos = args;
    end = args + len;
    rc = ZARR_AUTH_OK;

    while (zarr_auth_next_param(&pos, end, &param)) {
        which = -1;

        for (i = 0; i < 6; i++) {
            if (zarr_auth_param_is(&param, names[i])) {
                which = i;
                break;
            }
        }

        if (which < 0) {
            continue;
        }

        if (seen[which]++) {
            rc = zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                                "a presigned URL parameter is repeated",
                                NULL);
            goto done;
        }

        if (zarr_auth_decode_to(bufs[which], sizes[which], param.value,
                                param.value_len, &lens[which])
            != 0)
        {
            rc = zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                                "a presigned URL parameter is too long or "
                                "badly encoded", NULL);
            goto done;
        }

        if (which == 4) {
            a->signed_headers = param.value;
            a->signed_headers_len = param.value_len;
            a->signed_headers_encoded = 1;
        }
    }

    if (seen[0] && lens[0] == sizeof(ZARR_AUTH_ALGORITHM_V4A) - 1
        && memcmp(algorithm, ZARR_AUTH_ALGORITHM_V4A, lens[0]) == 0)
    {
        a->kind = ZARR_AUTH_KIND_V4A;

        if (seen[1]) {
            for (n = 0; n < lens[1] && cred[n] != '/'; n++) {
                /* void */
            }

            (void) zarr_auth_set_key(a, cred, n);
        }

        rc = zarr_auth_fail(a, ZARR_AUTH_UNSUPPORTED,
                            "SigV4a (AWS4-ECDSA-P256-SHA256) signatures are "
                            "not supported by this gateway", NULL);
        goto done;
    }

    /* the key first, for the log line of whatever follows */

    if (seen[1]) {
        rc = zarr_auth_credential(a, cred, lens[1]);
        if (rc != ZARR_AUTH_OK) {
            goto done;
        }
    }

    for (i = 0; i < 6; i++) {
        if (!seen[i]) {
            rc = zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                                "a presigned URL needs X-Amz-Algorithm, "
                                "X-Amz-Credential, X-Amz-Date, "
                                "X-Amz-Expires, X-Amz-SignedHeaders and "
                                "X-Amz-Signature", NULL);
            goto done;
        }
    }

    if (lens[0] != sizeof(ZARR_AUTH_ALGORITHM) - 1
        || memcmp(algorithm, ZARR_AUTH_ALGORITHM, lens[0]) != 0)
    {
        rc = zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                            "X-Amz-Algorithm must be AWS4-HMAC-SHA256",
                            NULL);
        goto done;
    }

    rc = zarr_auth_signature(a, sig, lens[5]);
    if (rc != ZARR_AUTH_OK) {
        goto done;
    }

    if (zarr_auth_parse_iso(date, lens[2], &tm->date) != 0) {
        rc = zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                            "X-Amz-Date must be YYYYMMDDTHHMMSSZ", NULL);
        goto done;
    }

    memcpy(a->amz_date, date, ZARR_SIGV4_DATE_LEN);
    a->amz_date[ZARR_SIGV4_DATE_LEN] = '\0';

    if (memcmp(a->amz_date, a->scope_date, 8) != 0) {
        rc = zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                            "invalid credential date: not the day of "
                            "X-Amz-Date", NULL);
        goto done;
    }

    tm->expires = 0;

    for (n = 0; n < lens[3]; n++) {
        if (expires[n] < '0' || expires[n] > '9' || n >= 7) {
            break;
        }

        tm->expires = tm->expires * 10 + (expires[n] - '0');
    }

    if (lens[3] == 0 || n != lens[3] || tm->expires < 1
        || tm->expires > ZARR_AUTH_EXPIRES_MAX)
    {
        rc = zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                            "X-Amz-Expires must be a number of seconds "
                            "from 1 to 604800", NULL);
        goto done;
    }

    if (!zarr_auth_valid_signed_headers(sh, lens[4])) {
        rc = zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                            "X-Amz-SignedHeaders must be sorted lowercase "
                            "header names separated by ';', host among "
                            "them", NULL);
        goto done;
    }

    rc = zarr_auth_payload(a, req, 0);

done:

    free(sh);

    return rc;
}


static zarr_auth_rc_e
zarr_auth_parse_v2_query(zarr_auth_t *a, const char *args, size_t len)
{
    char               key[ZARR_AUTH_ACCESS_KEY_MAX + 1];
    size_t             n;
    const char        *pos, *end;
    zarr_auth_param_t  param;

    a->kind = ZARR_AUTH_KIND_V2_QUERY;

    pos = args;
    end = args + len;

    while (zarr_auth_next_param(&pos, end, &param)) {
        if (!zarr_auth_param_is(&param, "AWSAccessKeyId")) {
            continue;
        }

        if (zarr_auth_decode_to(key, sizeof(key), param.value,
                                param.value_len, &n)
            != 0
            || zarr_auth_set_key(a, key, n) != 0)
        {
            return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                                  "invalid AWSAccessKeyId", NULL);
        }

        break;
    }

    return zarr_auth_fail(a, ZARR_AUTH_UNSUPPORTED,
                          "SigV2 signatures are not accepted by this "
                          "gateway: sign with SigV4", NULL);
}


zarr_auth_rc_e
zarr_auth_parse(const zarr_auth_request_t *req, zarr_auth_t *a)
{
    int                        v4q, v2q;
    size_t                     nauth, path_len, args_len, vlen;
    const char                *q, *args, *v;
    zarr_auth_rc_e             rc;
    zarr_auth_times_t          tm;
    zarr_auth_param_t          param;
    const zarr_auth_header_t  *auth;

    memset(a, 0, sizeof(zarr_auth_t));
    memset(&tm, 0, sizeof(zarr_auth_times_t));

    if (req->uri == NULL) {
        return zarr_auth_fail(a, ZARR_AUTH_MALFORMED, "no request target",
                              "InvalidArgument");
    }

    q = memchr(req->uri, '?', req->uri_len);
    path_len = q ? (size_t) (q - req->uri) : req->uri_len;
    args = q ? q + 1 : req->uri + req->uri_len;
    args_len = req->uri_len - (q ? path_len + 1 : path_len);

    auth = zarr_auth_find_header(req, "authorization", &nauth);

    /* which query parameters speak of authentication */

    v4q = 0;
    v2q = 0;
    v = args;

    while (zarr_auth_next_param(&v, args + args_len, &param)) {
        if (zarr_auth_param_is(&param, "X-Amz-Algorithm")
            || zarr_auth_param_is(&param, "X-Amz-Credential")
            || zarr_auth_param_is(&param, "X-Amz-Signature"))
        {
            v4q = 1;

        } else if (zarr_auth_param_is(&param, "AWSAccessKeyId")
                   || zarr_auth_param_is(&param, "Signature"))
        {
            v2q = 1;
        }
    }

    if (nauth > 0) {
        a->kind = ZARR_AUTH_KIND_V4_HEADER;

        if (nauth > 1) {
            return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                                  "more than one Authorization header",
                                  NULL);
        }

        v = auth->value ? auth->value : "";
        vlen = auth->value ? auth->value_len : 0;
        zarr_auth_trim(&v, &vlen);

        rc = zarr_auth_parse_header(req, a, v, vlen, &tm);

        if (v4q || v2q) {
            return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                                  "only one auth mechanism allowed: the "
                                  "Authorization header or the query "
                                  "parameters", "InvalidArgument");
        }

    } else if (v4q) {
        rc = zarr_auth_parse_query(req, a, args, args_len, &tm);

    } else if (v2q) {
        return zarr_auth_parse_v2_query(a, args, args_len);

    } else {
        return zarr_auth_fail(a, ZARR_AUTH_ANONYMOUS,
                              "the request is not signed", NULL);
    }

    if (rc != ZARR_AUTH_OK) {
        return rc;
    }

    /* what verify() will rebuild must be readable */

    if (path_len == 0 || req->uri[0] != '/') {
        return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                              "the request target does not start with '/'",
                              "InvalidArgument");
    }

    if (!zarr_auth_valid_encoding(req->uri, path_len)
        || !zarr_auth_valid_encoding(args, args_len))
    {
        return zarr_auth_fail(a, ZARR_AUTH_MALFORMED,
                              "malformed percent-encoding in the request "
                              "target", "InvalidArgument");
    }

    if (req->method == NULL || req->method_len == 0) {
        return zarr_auth_fail(a, ZARR_AUTH_MALFORMED, "no method",
                              "InvalidArgument");
    }

    if (a->kind == ZARR_AUTH_KIND_V4_HEADER) {
        if (tm.date > req->now + ZARR_AUTH_SKEW_MAX
            || tm.date < req->now - ZARR_AUTH_SKEW_MAX)
        {
            return zarr_auth_fail(a, ZARR_AUTH_SKEWED,
                                  "the difference between the request time "
                                  "and the current time is too large", NULL);
        }

        return ZARR_AUTH_OK;
    }

    if (tm.date > req->now + ZARR_AUTH_SKEW_MAX) {
        return zarr_auth_fail(a, ZARR_AUTH_EXPIRED,
                              "the presigned URL is not valid yet", NULL);
    }

    if (req->now - tm.date > tm.expires) {
        return zarr_auth_fail(a, ZARR_AUTH_EXPIRED,
                              "the presigned URL has expired", NULL);
    }

    return ZARR_AUTH_OK;
}


/* verification */


static int
zarr_auth_pair_cmp(const void *one, const void *two)
{
    int                      rc;
    size_t                   n;
    const zarr_auth_pair_t  *a, *b;

    a = one;
    b = two;

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


static int
zarr_auth_canonical_query(zarr_buf_t *b, const char *args, size_t len,
    int presigned)
{
    char               *mem, *tmp, *arena;
    size_t              i, n, np, dn;
    const char         *pos, *end;
    zarr_auth_pair_t   *pairs;
    zarr_auth_param_t   param;
    zarr_auth_pair_t    small[16];

    if (len == 0) {
        return 0;
    }

    np = 1;

    for (i = 0; i < len; i++) {
        np += args[i] == '&';
    }

    if (np > SIZE_MAX / sizeof(zarr_auth_pair_t) || len > SIZE_MAX / 8) {
        return -1;
    }

    pairs = small;

    if (np > sizeof(small) / sizeof(small[0])) {
        pairs = malloc(np * sizeof(zarr_auth_pair_t));
        if (pairs == NULL) {
            return -1;
        }
    }

    /* decoded bytes in tmp, encoded again (3 bytes at most) in arena */

    mem = malloc(4 * len);
    if (mem == NULL) {
        if (pairs != small) {
            free(pairs);
        }

        return -1;
    }

    tmp = mem;
    arena = mem + len;

    n = 0;
    pos = args;
    end = args + len;

    while (zarr_auth_next_param(&pos, end, &param)) {
        dn = zarr_auth_decode(tmp, param.name, param.name_len, 1);

        /* the signature itself, however its name is spelled, as parse */

        if (presigned && dn == 15 && memcmp(tmp, "X-Amz-Signature", 15) == 0)
        {
            continue;
        }

        pairs[n].name = arena;
        pairs[n].name_len = zarr_sigv4_uri_encode(arena, tmp, dn, 0);
        arena += pairs[n].name_len;

        dn = zarr_auth_decode(tmp, param.value, param.value_len, 1);
        pairs[n].value = arena;
        pairs[n].value_len = zarr_sigv4_uri_encode(arena, tmp, dn, 0);
        arena += pairs[n].value_len;

        n++;
    }

    if (n > 1) {
        qsort(pairs, n, sizeof(zarr_auth_pair_t), zarr_auth_pair_cmp);
    }

    for (i = 0; i < n; i++) {
        if (i > 0) {
            zarr_buf_put(b, "&", 1);
        }

        zarr_buf_put(b, pairs[i].name, pairs[i].name_len);
        zarr_buf_put(b, "=", 1);
        zarr_buf_put(b, pairs[i].value, pairs[i].value_len);
    }

    free(mem);

    if (pairs != small) {
        free(pairs);
    }

    return b->failed ? -1 : 0;
}


/* a header value trimmed, inner runs of blanks made one space */

static void
zarr_auth_put_value(zarr_buf_t *b, const char *v, size_t len)
{
    int     space;
    char   *out;
    size_t  i, n;

    if (b->failed || zarr_buf_reserve(b, len + 1) != 0) {
        b->failed = 1;
        return;
    }

    out = b->data + b->len;
    n = 0;
    space = 0;

    for (i = 0; i < len; i++) {
        if (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' || v[i] == '\n'
            || v[i] == '\v' || v[i] == '\f')
        {
            space = 1;
            continue;
        }

        if (space && n > 0) {
            out[n++] = ' ';
        }

        space = 0;
        out[n++] = v[i];
    }

    b->len += n;
    b->data[b->len] = '\0';
}


static int
zarr_auth_find_name(const zarr_auth_name_t *names, size_t n, const char *s,
    size_t len)
{
    int     c;
    size_t  lo, hi, mid;

    lo = 0;
    hi = n;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        c = zarr_auth_icmp(s, len, names[mid].name, names[mid].len);

        if (c == 0) {
            return (int) mid;
        }

        if (c < 0) {
            hi = mid;

        } else {
            lo = mid + 1;
        }
    }

    return -1;
}


static zarr_auth_rc_e
zarr_auth_canonical_headers(zarr_buf_t *b, const zarr_auth_request_t *req,
    zarr_auth_t *a, const char *sh, size_t sh_len)
{
    int                        s;
    size_t                     i, k, ns, nh, *count, *start, *order, *mem;
    const char                *p;
    zarr_auth_rc_e             rc;
    zarr_auth_name_t          *names;
    const zarr_auth_header_t  *h;

    ns = 1;

    for (i = 0; i < sh_len; i++) {
        ns += sh[i] == ';';
    }

    nh = req->nheaders;

    if (nh > SIZE_MAX / (2 * sizeof(size_t)) - 2 * ns - 2) {
        return ZARR_AUTH_NOMEM;
    }

    names = malloc(ns * sizeof(zarr_auth_name_t));
    mem = malloc((2 * ns + 2 + 2 * nh) * sizeof(size_t));

    if (names == NULL || mem == NULL) {
        free(names);
        free(mem);
        return ZARR_AUTH_NOMEM;
    }

    count = mem;                     /* ns + 1 */
    start = count + ns + 1;          /* ns + 1 */
    order = start + ns + 1;          /* nh: the headers, by name */
    /* the signed name of each header, or ns */
    rc = ZARR_AUTH_OK;

    /* parse() checked the list: sorted, non-empty names */

    k = 0;
    p = sh;

    for (i = 0; i <= sh_len; i++) {
        if (i == sh_len || sh[i] == ';') {
            names[k].name = p;
            names[k].len = sh + i - p;
            k++;
            p = sh + i + 1;
        }
    }

    memset(count, 0, (ns + 1) * sizeof(size_t));

    for (i = 0; i < nh; i++) {
        h = &req->headers[i];
        order[nh + i] = ns;

        if (h->name == NULL) {
            continue;
        }

        s = zarr_auth_find_name(names, ns, h->name, h->name_len);

        if (s < 0) {

            /*
             * S3 refuses x-amz-* headers left out of the signature: they
             * could change what a replayed request does
             */

            if (h->name_len >= 6 && zarr_auth_icmp(h->name, 6, "x-amz-", 6)
                                    == 0
                && !zarr_auth_ieq(h->name, h->name_len,
                                  ZARR_AUTH_CONTENT_SHA256))
            {
                a->error = "there were x-amz-* headers in the request that "
                           "were not signed";
                rc = ZARR_AUTH_MISMATCH;
                goto done;
            }

            continue;
        }

        order[nh + i] = (size_t) s;
        count[s]++;
    }

    start[0] = 0;

    for (k = 0; k < ns; k++) {
        if (count[k] == 0) {
            a->error = "a signed header is not in the request";
            rc = ZARR_AUTH_MISMATCH;
            goto done;
        }

        start[k + 1] = start[k] + count[k];
        count[k] = 0;
    }

    /* headers of each name in request order: the repeats' join order */

    for (i = 0; i < nh; i++) {
        k = order[nh + i];

        if (k < ns) {
            order[start[k] + count[k]++] = i;
        }
    }

    for (k = 0; k < ns; k++) {
        zarr_buf_put(b, names[k].name, names[k].len);
        zarr_buf_put(b, ":", 1);

        for (i = start[k]; i < start[k + 1]; i++) {
            if (i > start[k]) {
                zarr_buf_put(b, ",", 1);
            }

            h = &req->headers[order[i]];

            if (h->value != NULL) {
                zarr_auth_put_value(b, h->value, h->value_len);
            }
        }

        zarr_buf_put(b, "\n", 1);
    }

    if (b->failed) {
        rc = ZARR_AUTH_NOMEM;
    }

done:

    free(names);
    free(mem);

    return rc;
}


static void
zarr_auth_sts_add(char *sts, size_t *n, const char *s)
{
    size_t  len;

    len = strlen(s);
    memcpy(sts + *n, s, len);
    *n += len;
}


/* HMAC-SHA256 with a 32-byte key (RFC 2104) */

static void
zarr_auth_hmac(const unsigned char key[32], const char *msg, size_t len,
    unsigned char out[32])
{
    size_t         i;
    SHA256_CTX     ctx;
    unsigned char  pad[64], inner[ZARR_SHA256_LEN];

    memset(pad, 0x36, sizeof(pad));

    for (i = 0; i < 32; i++) {
        pad[i] ^= key[i];
    }

    SHA256_Init(&ctx);
    SHA256_Update(&ctx, pad, sizeof(pad));
    SHA256_Update(&ctx, msg, len);
    SHA256_Final(inner, &ctx);

    memset(pad, 0x5c, sizeof(pad));

    for (i = 0; i < 32; i++) {
        pad[i] ^= key[i];
    }

    SHA256_Init(&ctx);
    SHA256_Update(&ctx, pad, sizeof(pad));
    SHA256_Update(&ctx, inner, sizeof(inner));
    SHA256_Final(out, &ctx);

    OPENSSL_cleanse(pad, sizeof(pad));
    OPENSSL_cleanse(&ctx, sizeof(ctx));
}


zarr_auth_rc_e
zarr_auth_verify(const zarr_auth_request_t *req, zarr_auth_t *a,
    const unsigned char signing_key[32])
{
    int             presigned;
    char           *sh, hash[ZARR_SHA256_HEX_LEN + 1];
    char            sts[320], mac_hex[ZARR_SHA256_HEX_LEN + 1];
    size_t          path_len, args_len, sh_len, dn, n;
    const char     *q, *args;
    zarr_buf_t      b;
    SHA256_CTX      ctx;
    zarr_auth_rc_e  rc;
    unsigned char   mac[ZARR_SHA256_LEN];

    if ((a->kind != ZARR_AUTH_KIND_V4_HEADER
         && a->kind != ZARR_AUTH_KIND_V4_QUERY)
        || a->signed_headers == NULL || a->payload_hash == NULL
        || req->uri == NULL)
    {
        a->error = "no SigV4 signature was parsed";
        return ZARR_AUTH_MISMATCH;
    }

    presigned = a->kind == ZARR_AUTH_KIND_V4_QUERY;

    q = memchr(req->uri, '?', req->uri_len);
    path_len = q ? (size_t) (q - req->uri) : req->uri_len;
    args = q ? q + 1 : req->uri + req->uri_len;
    args_len = req->uri_len - (q ? path_len + 1 : path_len);

    if (path_len > SIZE_MAX / 4) {
        return ZARR_AUTH_NOMEM;
    }

    zarr_buf_init(&b);
    sh = NULL;

    sh_len = a->signed_headers_len;

    if (a->signed_headers_encoded) {
        sh = malloc(sh_len + 1);
        if (sh == NULL) {
            rc = ZARR_AUTH_NOMEM;
            goto done;
        }

        sh_len = zarr_auth_decode(sh, a->signed_headers, sh_len, 1);
    }

    if (zarr_buf_reserve(&b, req->method_len + 4 * path_len + 2 * args_len
                             + 512)
        != 0)
    {
        rc = ZARR_AUTH_NOMEM;
        goto done;
    }

    /* method, path (decoded once, encoded once), query */

    zarr_buf_put(&b, req->method, req->method_len);
    zarr_buf_put(&b, "\n", 1);

    dn = zarr_auth_decode(b.data + b.len + 3 * path_len, req->uri, path_len,
                          0);
    n = zarr_sigv4_uri_encode(b.data + b.len,
                              b.data + b.len + 3 * path_len, dn, 1);

    /* the encoding of dn <= path_len bytes is written before them */

    b.len += n;
    zarr_buf_put(&b, "\n", 1);

    if (zarr_auth_canonical_query(&b, args, args_len, presigned) != 0) {
        rc = ZARR_AUTH_NOMEM;
        goto done;
    }

    zarr_buf_put(&b, "\n", 1);

    rc = zarr_auth_canonical_headers(&b, req, a,
                                     sh ? sh : a->signed_headers, sh_len);
    if (rc != ZARR_AUTH_OK) {
        goto done;
    }

    zarr_buf_put(&b, "\n", 1);
    zarr_buf_put(&b, sh ? sh : a->signed_headers, sh_len);
    zarr_buf_put(&b, "\n", 1);
    zarr_buf_put(&b, a->payload_hash, a->payload_hash_len);

    if (b.failed) {
        rc = ZARR_AUTH_NOMEM;
        goto done;
    }

    SHA256_Init(&ctx);
    SHA256_Update(&ctx, b.data, b.len);
    SHA256_Final(mac, &ctx);
    zarr_hex_encode(mac, sizeof(mac), hash);

    /* the string to sign: the parts are bounded, sts holds them all */

    n = 0;
    zarr_auth_sts_add(sts, &n, ZARR_AUTH_ALGORITHM "\n");
    zarr_auth_sts_add(sts, &n, a->amz_date);
    zarr_auth_sts_add(sts, &n, "\n");
    zarr_auth_sts_add(sts, &n, a->scope_date);
    zarr_auth_sts_add(sts, &n, "/");
    zarr_auth_sts_add(sts, &n, a->region);
    zarr_auth_sts_add(sts, &n, "/");
    zarr_auth_sts_add(sts, &n, a->service);
    zarr_auth_sts_add(sts, &n, "/" ZARR_AUTH_TERMINATOR "\n");
    zarr_auth_sts_add(sts, &n, hash);

    zarr_auth_hmac(signing_key, sts, n, mac);

    zarr_hex_encode(mac, sizeof(mac), mac_hex);

    if (CRYPTO_memcmp(mac_hex, a->signature, ZARR_SHA256_HEX_LEN) != 0) {
        a->error = "the request signature we calculated does not match the "
                   "signature you provided";
        rc = ZARR_AUTH_MISMATCH;
        goto done;
    }

    a->error = NULL;
    rc = ZARR_AUTH_OK;

done:

    if (rc == ZARR_AUTH_NOMEM) {
        a->error = "out of memory";
    }

    free(sh);
    zarr_buf_free(&b);

    return rc;
}


const char *
zarr_auth_s3_code(zarr_auth_rc_e rc, const zarr_auth_t *a, int *status)
{
    const char  *code;

    switch (rc) {

    case ZARR_AUTH_OK:
        *status = 200;
        return "";

    case ZARR_AUTH_MALFORMED:
        if (a != NULL && a->code != NULL) {
            code = a->code;

        } else if (a != NULL && (a->kind == ZARR_AUTH_KIND_V4_QUERY
                                 || a->kind == ZARR_AUTH_KIND_V2_QUERY))
        {
            code = "AuthorizationQueryParametersError";

        } else {
            code = "AuthorizationHeaderMalformed";
        }

        *status = strcmp(code, "AccessDenied") == 0 ? 403 : 400;
        return code;

    case ZARR_AUTH_UNKNOWN_KEY:
        *status = 403;
        return "InvalidAccessKeyId";

    case ZARR_AUTH_MISMATCH:
        *status = 403;
        return "SignatureDoesNotMatch";

    case ZARR_AUTH_SKEWED:
        *status = 403;
        return "RequestTimeTooSkewed";

    case ZARR_AUTH_ANONYMOUS:
    case ZARR_AUTH_UNSUPPORTED:
    case ZARR_AUTH_EXPIRED:
        *status = 403;
        return "AccessDenied";

    default:
        *status = 500;
        return "InternalError";
    }
}


const char *
zarr_auth_reason(zarr_auth_rc_e rc)
{
    switch (rc) {
    case ZARR_AUTH_OK:
        return "ok";
    case ZARR_AUTH_ANONYMOUS:
        return "anonymous";
    case ZARR_AUTH_MALFORMED:
        return "malformed";
    case ZARR_AUTH_UNSUPPORTED:
        return "unsupported";
    case ZARR_AUTH_UNKNOWN_KEY:
        return "unknown_key";
    case ZARR_AUTH_MISMATCH:
        return "mismatch";
    case ZARR_AUTH_SKEWED:
        return "skewed";
    case ZARR_AUTH_EXPIRED:
        return "expired";
    default:
        return "nomem";
    }
}


/* the signing key cache */


zarr_auth_cache_t *
zarr_auth_cache_create(size_t nentries)
{
    zarr_auth_cache_t  *c;

    if (nentries == 0) {
        nentries = ZARR_AUTH_CACHE_DEFAULT;
    }

    c = calloc(1, sizeof(zarr_auth_cache_t));
    if (c == NULL) {
        return NULL;
    }

    c->entries = calloc(nentries, sizeof(zarr_auth_cache_entry_t));
    if (c->entries == NULL) {
        free(c);
        return NULL;
    }

    c->nentries = nentries;

    return c;
}


void
zarr_auth_cache_destroy(zarr_auth_cache_t *c)
{
    if (c == NULL) {
        return;
    }

    /* no secrets or keys left in freed memory */

    OPENSSL_cleanse(c->entries, c->nentries * sizeof(zarr_auth_cache_entry_t));
    free(c->entries);
    free(c);
}


/* FNV-1a over the four parts, NUL-separated */

static uint64_t
zarr_auth_hash(const char *secret, size_t secret_len, const zarr_auth_t *a)
{
    size_t          i, k;
    uint64_t        h;
    const char     *s;
    const char     *parts[3];

    h = 14695981039346656037ULL;

    for (i = 0; i < secret_len; i++) {
        h = (h ^ (unsigned char) secret[i]) * 1099511628211ULL;
    }

    parts[0] = a->scope_date;
    parts[1] = a->region;
    parts[2] = a->service;

    for (k = 0; k < 3; k++) {
        h = h * 1099511628211ULL;

        for (s = parts[k]; *s; s++) {
            h = (h ^ (unsigned char) *s) * 1099511628211ULL;
        }
    }

    return h;
}


static int
zarr_auth_strfit(char *dst, size_t size, const char *src)
{
    size_t  n;

    n = strlen(src);

    if (n >= size) {
        return -1;
    }

    memcpy(dst, src, n + 1);

    return 0;
}


int
zarr_auth_cache_key(zarr_auth_cache_t *c, const char *secret,
    size_t secret_len, const zarr_auth_t *a, unsigned char out[32])
{
    int                       rc;
    char                     *s;
    size_t                    i;
    uint64_t                  h;
    zarr_auth_cache_entry_t  *e, *victim;

    h = zarr_auth_hash(secret, secret_len, a);

    victim = NULL;

    for (i = 0; i < c->nentries; i++) {
        e = &c->entries[i];

        if (e->seq == 0) {
            if (victim == NULL || victim->seq != 0) {
                victim = e;
            }

            continue;
        }

        if (e->hash == h && e->secret_len == secret_len
            && memcmp(e->secret, secret, secret_len) == 0
            && strcmp(e->date, a->scope_date) == 0
            && strcmp(e->region, a->region) == 0
            && strcmp(e->service, a->service) == 0)
        {
            memcpy(out, e->key, ZARR_SHA256_LEN);
            return 0;
        }

        if (victim == NULL || (victim->seq != 0 && e->seq < victim->seq)) {
            victim = e;
        }
    }

    /* the signing key wants a NUL-terminated secret */

    s = malloc(secret_len + 1);
    if (s == NULL) {
        return -1;
    }

    memcpy(s, secret, secret_len);
    s[secret_len] = '\0';

    rc = zarr_sigv4_signing_key(s, a->scope_date, a->region, a->service,
                                out);

    OPENSSL_cleanse(s, secret_len);
    free(s);

    if (rc != 0) {
        return -1;
    }

    if (victim == NULL || secret_len > ZARR_AUTH_SECRET_MAX
        || zarr_auth_strfit(victim->date, sizeof(victim->date),
                            a->scope_date) != 0
        || zarr_auth_strfit(victim->region, sizeof(victim->region),
                            a->region) != 0
        || zarr_auth_strfit(victim->service, sizeof(victim->service),
                            a->service) != 0)
    {
        if (victim != NULL) {
            OPENSSL_cleanse(victim, sizeof(zarr_auth_cache_entry_t));
        }

        return 0;
    }

    memcpy(victim->secret, secret, secret_len);
    victim->secret[secret_len] = '\0';
    victim->secret_len = secret_len;
    victim->hash = h;
    victim->seq = ++c->seq;
    memcpy(victim->key, out, ZARR_SHA256_LEN);

    return 0;
}


/* credential sources */


int
zarr_auth_keyfile_line(const char *line, size_t len, zarr_auth_cred_t *out,
    const char **err)
{
    size_t       i, n, nf, lens[4];
    const char  *p, *end, *fields[4];

    memset(out, 0, sizeof(zarr_auth_cred_t));
    *err = NULL;

    p = line;
    end = line + len;

    while (end > p && (end[-1] == '\n' || end[-1] == '\r')) {
        end--;
    }

    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    if (p == end || *p == '#') {
        return 1;
    }

    nf = 0;

    while (p < end) {
        for (n = 0; p + n < end && p[n] != ' ' && p[n] != '\t'; n++) {
            /* void */
        }

        if (nf == 3) {
            *err = "too many fields (ACCESS_KEY SECRET [OWNER])";
            return -1;
        }

        fields[nf] = p;
        lens[nf] = n;
        nf++;

        p += n;

        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }
    }

    if (nf < 2) {
        *err = "too few fields (ACCESS_KEY SECRET [OWNER])";
        return -1;
    }

    for (i = 0; i < nf; i++) {
        for (n = 0; n < lens[i]; n++) {
            if ((unsigned char) fields[i][n] < 0x20
                || fields[i][n] == 0x7f)
            {
                *err = "control bytes in a field";
                return -1;
            }
        }
    }

    if (!zarr_auth_valid_key(fields[0], lens[0])) {
        *err = "the access key is too long or not printable ASCII";
        return -1;
    }

    for (n = 0; n < lens[1]; n++) {
        if ((unsigned char) fields[1][n] > 0x7e) {
            break;
        }
    }

    if (lens[1] > ZARR_AUTH_SECRET_MAX || n != lens[1]) {
        *err = "the secret is too long or not printable ASCII";
        return -1;
    }

    if (nf == 3 && lens[2] > ZARR_AUTH_OWNER_MAX) {
        *err = "the owner is too long";
        return -1;
    }

    out->access_key = fields[0];
    out->access_key_len = lens[0];
    out->secret = fields[1];
    out->secret_len = lens[1];

    if (nf == 3) {
        out->owner = fields[2];
        out->owner_len = lens[2];

    } else {
        out->owner = "";
    }

    return 0;
}


int
zarr_auth_rgw_user(const char *json, size_t len, const char *access_key,
    char *secret, size_t secret_size, char *owner, size_t owner_size)
{
    int           rc;
    size_t        i, n;
    json_t       *root, *keys, *k, *v;
    const char   *s, *user, *colon;
    json_error_t  err;

    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (root == NULL) {
        return -1;
    }

    rc = -1;

    keys = json_object_get(root, "keys");

    if (!json_is_object(root) || !json_is_array(keys)) {
        goto done;
    }

    rc = 1;

    json_array_foreach(keys, i, k) {
        v = json_object_get(k, "access_key");

        if (!json_is_string(v) || strcmp(json_string_value(v), access_key)
                                  != 0
            || json_string_length(v) != strlen(access_key))
        {
            continue;
        }

        rc = -1;

        v = json_object_get(k, "secret_key");
        if (!json_is_string(v)) {
            goto done;
        }

        s = json_string_value(v);
        n = json_string_length(v);

        if (n == 0 || n >= secret_size || n > ZARR_AUTH_SECRET_MAX
            || strlen(s) != n)
        {
            goto done;
        }

        /* the owner is the user id: "alice" also for the key of
         * "alice:sub", a subuser's */

        v = json_object_get(root, "user_id");

        if (json_is_string(v)) {
            user = json_string_value(v);
            n = json_string_length(v);

        } else {
            v = json_object_get(k, "user");
            if (!json_is_string(v)) {
                goto done;
            }

            user = json_string_value(v);
            colon = strchr(user, ':');
            n = colon ? (size_t) (colon - user) : json_string_length(v);
        }

        if (n == 0 || n >= owner_size || n > ZARR_AUTH_OWNER_MAX) {
            goto done;
        }

        for (i = 0; i < n; i++) {
            if ((unsigned char) user[i] < 0x20 || user[i] == 0x7f) {
                goto done;
            }
        }

        memcpy(secret, s, strlen(s) + 1);
        memcpy(owner, user, n);
        owner[n] = '\0';

        rc = 0;
        goto done;
    }

done:

    json_decref(root);

    return rc;
}
