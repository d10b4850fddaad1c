
/*
 * Signature verification at the gateway (include/zarr_auth.h):
 * zarr_auth_parse then zarr_auth_verify with a fixed secret, credential
 * file lines, and RGW admin answers.  Input: byte 0 selects (modulo 3):
 *   0: METHOD LF URI LF (NAME ":" VALUE LF)*  a request at FUZZ_NOW,
 *   1: a credential file, one line per LF,
 *   2: an RGW user document, looked up for access key FUZZ_KEY.
 */


#include "fuzz.h"
#include "zarr_auth.h"


/* 2026-12-04T12:00:00Z */
#define FUZZ_NOW         1796385600
#define FUZZ_KEY         "ALICEACCESSKEY000001"
#define FUZZ_SECRET      "alice-secret-key-0000000000000000000001"
#define FUZZ_HEADERS_MAX 32


static void fuzz_request(const char *s, size_t len,
    unsigned data_byte);
static void fuzz_keyfile(const char *s, size_t len);
static void fuzz_rgw_user(const char *s, size_t len);


static zarr_auth_cache_t  *fuzz_cache;


static void
fuzz_request(const char *s, size_t len, unsigned data_byte)
{
    int                  status;
    size_t               off, n, i;
    const char          *lf, *colon, *code;
    unsigned char        key[32];
    zarr_auth_t          a;
    zarr_auth_rc_e       rc;
    zarr_auth_header_t   h[FUZZ_HEADERS_MAX];
    zarr_auth_request_t  req;

    memset(&req, 0, sizeof(req));
    req.now = FUZZ_NOW;
    req.headers = h;

    for (off = 0, i = 0; off < len && req.nheaders < FUZZ_HEADERS_MAX; i++)
    {
        lf = memchr(s + off, '\n', len - off);
        n = lf ? (size_t) (lf - s - off) : len - off;

        if (i == 0) {
            req.method = s + off;
            req.method_len = n;

        } else if (i == 1) {
            req.uri = s + off;
            req.uri_len = n;

        } else {
            colon = memchr(s + off, ':', n);

            h[req.nheaders].name = s + off;
            h[req.nheaders].name_len = colon ? (size_t) (colon - s - off)
                                             : n;
            h[req.nheaders].value = colon ? colon + 1 : s + off + n;
            h[req.nheaders].value_len = colon ? (size_t) (s + off + n
                                                          - colon - 1)
                                              : 0;

            /* nginx strips the spaces after the colon */
            while (h[req.nheaders].value_len
                   && h[req.nheaders].value[0] == ' ')
            {
                h[req.nheaders].value++;
                h[req.nheaders].value_len--;
            }

            req.nheaders++;
        }

        off += n + 1;
    }

    if (req.method == NULL) {
        req.method = "GET";
        req.method_len = 3;
    }

    if (req.uri == NULL) {
        req.uri = "/";
        req.uri_len = 1;
    }

    memset(&a, 0x5a, sizeof(a));
    rc = zarr_auth_parse(&req, &a);

    FUZZ_CHECK(rc >= ZARR_AUTH_OK && rc <= ZARR_AUTH_NOMEM);
    FUZZ_CHECK(rc != ZARR_AUTH_UNKNOWN_KEY && rc != ZARR_AUTH_MISMATCH);
    FUZZ_CHECK(zarr_auth_reason(rc) != NULL);

    status = 0;
    code = zarr_auth_s3_code(rc, &a, &status);

    if (rc != ZARR_AUTH_OK) {
        FUZZ_CHECK(a.error != NULL);
        FUZZ_CHECK(code != NULL);
        FUZZ_CHECK(status == 400 || status == 403 || status == 500
                   || status == 503);
        return;
    }

    /* a key id to look up: short, NUL-terminated, no control bytes */
    FUZZ_CHECK(a.kind == ZARR_AUTH_KIND_V4_HEADER
               || a.kind == ZARR_AUTH_KIND_V4_QUERY);
    FUZZ_CHECK(a.access_key_len > 0
               && a.access_key_len <= ZARR_AUTH_ACCESS_KEY_MAX);
    FUZZ_CHECK(strlen(a.access_key) == a.access_key_len);

    for (i = 0; i < a.access_key_len; i++) {
        FUZZ_CHECK((unsigned char) a.access_key[i] >= 0x20
                   && a.access_key[i] != 0x7f);
    }

    FUZZ_CHECK(strlen(a.scope_date) == 8);
    FUZZ_CHECK(strlen(a.signature) == 64);
    FUZZ_CHECK(memchr(a.region, '\0', sizeof(a.region)) != NULL);
    FUZZ_CHECK(memchr(a.service, '\0', sizeof(a.service)) != NULL);

    if (zarr_auth_cache_key(fuzz_cache, FUZZ_SECRET, sizeof(FUZZ_SECRET) - 1,
                            &a, key)
        != 0)
    {
        return;
    }

    rc = zarr_auth_verify(&req, &a, key);

    FUZZ_CHECK(rc == ZARR_AUTH_OK || rc == ZARR_AUTH_MISMATCH
               || rc == ZARR_AUTH_NOMEM);

    if (rc != ZARR_AUTH_OK) {
        return;
    }

    /* the seeds are signed: one hex digit changed must not verify */

    i = data_byte % 64;
    a.signature[i] = a.signature[i] == '0' ? '1' : '0';

    rc = zarr_auth_verify(&req, &a, key);

    FUZZ_CHECK(rc == ZARR_AUTH_MISMATCH || rc == ZARR_AUTH_NOMEM);
}


static void
fuzz_keyfile(const char *s, size_t len)
{
    int                rc;
    size_t             off, n;
    const char        *lf, *err, *line;
    zarr_auth_cred_t   c;

    for (off = 0; off < len; off += n + 1) {
        lf = memchr(s + off, '\n', len - off);
        n = lf ? (size_t) (lf - s - off) : len - off;
        line = s + off;

        err = NULL;
        rc = zarr_auth_keyfile_line(line, n, &c, &err);

        FUZZ_CHECK(rc == 0 || rc == 1 || rc == -1);

        if (rc == -1) {
            FUZZ_CHECK(err != NULL);
        }

        if (rc == 0) {
            FUZZ_CHECK(c.access_key_len > 0 && c.secret_len > 0);
            FUZZ_CHECK(FUZZ_INSIDE(c.access_key, c.access_key_len, line, n));
            FUZZ_CHECK(FUZZ_INSIDE(c.secret, c.secret_len, line, n));
            FUZZ_CHECK(c.access_key_len <= ZARR_AUTH_ACCESS_KEY_MAX);
            FUZZ_CHECK(c.secret_len <= ZARR_AUTH_SECRET_MAX);
            FUZZ_CHECK(c.owner_len <= ZARR_AUTH_OWNER_MAX);

            if (c.owner_len) {
                FUZZ_CHECK(FUZZ_INSIDE(c.owner, c.owner_len, line, n));
            }

            FUZZ_CHECK(memchr(c.access_key, ' ', c.access_key_len) == NULL);
            FUZZ_CHECK(memchr(c.secret, '\t', c.secret_len) == NULL);
        }
    }
}


static void
fuzz_rgw_user(const char *s, size_t len)
{
    int   rc;
    char  secret[ZARR_AUTH_SECRET_MAX + 1], owner[ZARR_AUTH_OWNER_MAX + 1];

    memset(secret, 0x5a, sizeof(secret));
    memset(owner, 0x5a, sizeof(owner));

    rc = zarr_auth_rgw_user(s, len, FUZZ_KEY, secret, sizeof(secret), owner,
                            sizeof(owner));

    FUZZ_CHECK(rc == 0 || rc == 1 || rc == -1);

    if (rc == 0) {
        FUZZ_CHECK(memchr(secret, '\0', sizeof(secret)) != NULL);
        FUZZ_CHECK(memchr(owner, '\0', sizeof(owner)) != NULL);
        FUZZ_CHECK(secret[0] != '\0');
        FUZZ_CHECK(strlen(secret) <= len && strlen(owner) <= len);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_cache == NULL) {
        fuzz_cache = zarr_auth_cache_create(8);
        FUZZ_CHECK(fuzz_cache != NULL);
    }

    if (size == 0) {
        return 0;
    }

    switch (data[0] % 3) {

    case 0:
        fuzz_request((const char *) data + 1, size - 1, data[0] / 3);
        break;

    case 1:
        fuzz_keyfile((const char *) data + 1, size - 1);
        break;

    default:
        fuzz_rgw_user((const char *) data + 1, size - 1);
        break;
    }

    return 0;
}
