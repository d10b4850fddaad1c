/*
 * zarr_sigv4: AWS Signature Version 4 (header-based, AWS4-HMAC-SHA256) for
 * requests the gateway and zarrctl send to S3.
 *
 * Plain C, no nginx types, no static mutable state: safe from any thread.
 *
 * The signer does the S3 canonicalisation itself:
 *   - the path is given as raw bytes and URI-encoded once, segment by
 *     segment, '/' kept (S3 does not double-encode and does not normalise
 *     "//", "." or ".." segments);
 *   - query parameters are raw (name, value) pairs, encoded and sorted;
 *   - header names are lowercased, values trimmed and inner runs of spaces
 *     collapsed, duplicates joined with ',';
 *   - "x-amz-date" and "x-amz-content-sha256" are added to the signed
 *     headers by the signer (from amz_date and payload_hash): the caller
 *     must send them with exactly those values and must not list them in
 *     headers[]; "host" must be in headers[].
 * The request must then be sent with the same path and query encoding:
 * use zarr_sigv4_uri_encode() and zarr_sigv4_canonical_query() to build
 * the URL.
 */

#ifndef _ZARR_SIGV4_H_INCLUDED_
#define _ZARR_SIGV4_H_INCLUDED_


#include <stddef.h>
#include <time.h>


/* "YYYYMMDDTHHMMSSZ" */
#define ZARR_SIGV4_DATE_LEN          16
#define ZARR_SIGV4_SIGNATURE_LEN     64

#define ZARR_SIGV4_UNSIGNED_PAYLOAD  "UNSIGNED-PAYLOAD"


/* a query parameter; value may be NULL (same as empty: "name=") */
typedef struct {
    const char    *name;
    size_t         name_len;
    const char    *value;
    size_t         value_len;
} zarr_sigv4_param_t;

/* initialiser for string literals / NUL-terminated strings */
#define zarr_sigv4_param(n, v)  { (n), sizeof(n) - 1, (v), sizeof(v) - 1 }


/* a header to sign (and to send); NUL-terminated, any case */
typedef struct {
    const char    *name;
    const char    *value;
} zarr_sigv4_header_t;


typedef struct {
    const char    *access_key;
    const char    *secret_key;
    const char    *region;             /* e.g. "us-east-1" */
    const char    *service;            /* NULL: "s3" */
} zarr_sigv4_creds_t;


typedef struct {
    const char                 *method;        /* "GET", "PUT", ... */

    /*
     * raw, unencoded path bytes, e.g. "/bucket/a b/c+d" (path-style) or
     * "/test$file.text" (virtual-hosted); empty means "/"
     */
    const char                 *path;
    size_t                      path_len;

    const zarr_sigv4_param_t   *params;
    size_t                      nparams;

    const zarr_sigv4_header_t  *headers;       /* must include "host" */
    size_t                      nheaders;

    /* lowercase hex sha256 of the body, or ZARR_SIGV4_UNSIGNED_PAYLOAD */
    const char                 *payload_hash;

    /* "YYYYMMDDTHHMMSSZ", see zarr_sigv4_format_date() */
    const char                 *amz_date;
} zarr_sigv4_request_t;


typedef struct {
    /* the value of the "Authorization" header, malloc()ed */
    char          *authorization;

    /* the value of the "x-amz-date" header */
    char           amz_date[ZARR_SIGV4_DATE_LEN + 1];

    char           signature[ZARR_SIGV4_SIGNATURE_LEN + 1];

    /* diagnostics (what S3 shows in SignatureDoesNotMatch), malloc()ed */
    char          *signed_headers;
    char          *canonical_request;
    char          *string_to_sign;

    /* a static description of why signing failed, NULL on success */
    const char    *error;
} zarr_sigv4_result_t;


/*
 * Signs req.  Returns 0 and fills res, or -1 with res->error set (bad input
 * or allocation failure).  Release res with zarr_sigv4_result_free() in
 * both cases.
 */
int zarr_sigv4_sign(const zarr_sigv4_request_t *req,
    const zarr_sigv4_creds_t *creds, zarr_sigv4_result_t *res);

void zarr_sigv4_result_free(zarr_sigv4_result_t *res);

/*
 * The SigV4 signing key: HMAC chain over "AWS4" + secret, date
 * ("YYYYMMDD"), region, service, "aws4_request".  out: 32 bytes.
 */
int zarr_sigv4_signing_key(const char *secret_key, const char *date,
    const char *region, const char *service, unsigned char *out);

/*
 * S3 URI encoding: every byte except A-Z a-z 0-9 '-' '.' '_' '~' (and '/'
 * when keep_slash) becomes %XX with uppercase hex; UTF-8 is encoded byte by
 * byte.  Writes at most 3 * len bytes to dst (not NUL-terminated) and
 * returns the length; with dst == NULL only returns the length.
 */
size_t zarr_sigv4_uri_encode(char *dst, const char *src, size_t len,
    int keep_slash);

/*
 * The canonical query string ("a=1&b=&c=x%2Fy"): names and values encoded,
 * sorted by name then value.  Also valid as the query part of the URL sent.
 * Returns a malloc()ed NUL-terminated string (possibly empty) or NULL when
 * out of memory.
 */
char *zarr_sigv4_canonical_query(const zarr_sigv4_param_t *params,
    size_t nparams);

/*
 * Formats t (UTC) as "YYYYMMDDTHHMMSSZ" into out (ZARR_SIGV4_DATE_LEN + 1
 * bytes).  Uses gmtime_r(): thread-safe.  Returns 0 or -1.
 */
int zarr_sigv4_format_date(time_t t, char *out);

/* the same for the current time */
int zarr_sigv4_now(char *out);


#endif /* _ZARR_SIGV4_H_INCLUDED_ */
