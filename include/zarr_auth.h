/*
 * zarr_auth: verification of the signatures of requests the gateway
 * receives (DESIGN 4b), credential-file lines and RGW admin answers.
 *
 * Plain C, no nginx types, no static mutable state.  A zarr_auth_cache_t
 * belongs to one thread (one nginx worker's event loop).
 *
 * Verification is done in two steps, so that the secret can be looked up
 * (maybe asynchronously) in between:
 *   zarr_auth_parse()   reads the signature (Authorization header or
 *                       presigned query), checks its form and its times;
 *                       gives the access key id to look up;
 *   zarr_auth_verify()  rebuilds the canonical request from the request
 *                       as received and compares signatures in constant
 *                       time, with the signing key of that access key.
 *
 * The canonical request follows S3's rules: the path is percent-decoded
 * once and URI-encoded once ('/' kept; no normalisation of "//", "." or
 * ".."); the query's pairs are decoded, re-encoded and sorted (the
 * presigned X-Amz-Signature left out); only the signed headers, values
 * trimmed with inner runs of spaces collapsed, duplicates joined with
 * ','; the payload hash is x-amz-content-sha256 as sent (a hex sha256,
 * UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER],
 * STREAMING-UNSIGNED-PAYLOAD-TRAILER: the seed signature is checked
 * here, chunk and trailer signatures by the backend), UNSIGNED-PAYLOAD
 * for a presigned URL without that header.  In the query, '+' is a space
 * and a malformed %XX is MALFORMED, as RGW reads them; empty pairs
 * ("a&&b") are skipped.
 *
 * Where AWS and RGW 16.2 differ, this follows AWS (the fixtures of
 * tests/unit/auth_requests/rgw show both): repeated headers are joined
 * with ',' (RGW keeps the last), and an x-amz-* header left out of the
 * signature is refused (MISMATCH; RGW ignores it; x-amz-content-sha256
 * excepted, it is the payload hash).  SignedHeaders must be lowercase
 * names, sorted, unique, host among them, as every SDK writes it.
 */

#ifndef _ZARR_AUTH_H_INCLUDED_
#define _ZARR_AUTH_H_INCLUDED_


#include <stddef.h>
#include <time.h>


#define ZARR_AUTH_ACCESS_KEY_MAX   128      /* longer: malformed */
#define ZARR_AUTH_SECRET_MAX       256
#define ZARR_AUTH_OWNER_MAX        255
#define ZARR_AUTH_SCOPE_MAX        64       /* region or service */
#define ZARR_AUTH_SKEW_MAX         (15 * 60)
#define ZARR_AUTH_EXPIRES_MAX      (7 * 24 * 3600)
#define ZARR_AUTH_SIGNED_HEADERS_MAX  4096  /* the list, decoded */


typedef enum {
    ZARR_AUTH_KIND_NONE = 0,       /* anonymous */
    ZARR_AUTH_KIND_V4_HEADER,
    ZARR_AUTH_KIND_V4_QUERY,       /* presigned */
    ZARR_AUTH_KIND_V2_HEADER,      /* "AWS AKID:sig": recognised only */
    ZARR_AUTH_KIND_V2_QUERY,       /* AWSAccessKeyId=&Signature=: same */
    ZARR_AUTH_KIND_V4A             /* AWS4-ECDSA-P256-SHA256: same */
} zarr_auth_kind_e;


/* what to answer; the S3 code and status are zarr_auth_s3_code() */
typedef enum {
    ZARR_AUTH_OK = 0,
    ZARR_AUTH_ANONYMOUS,           /* 403 AccessDenied */
    ZARR_AUTH_MALFORMED,           /* 400 AuthorizationHeaderMalformed,
                                      AuthorizationQueryParametersError
                                      or InvalidArgument */
    ZARR_AUTH_UNSUPPORTED,         /* 403 AccessDenied: SigV2, SigV4a */
    ZARR_AUTH_UNKNOWN_KEY,         /* 403 InvalidAccessKeyId (the caller
                                      found no secret) */
    ZARR_AUTH_MISMATCH,            /* 403 SignatureDoesNotMatch */
    ZARR_AUTH_SKEWED,              /* 403 RequestTimeTooSkewed */
    ZARR_AUTH_EXPIRED,             /* 403 AccessDenied, presigned URL
                                      expired or not valid yet */
    ZARR_AUTH_NOMEM
} zarr_auth_rc_e;


/* a request header as received (every one, in order, repeats kept) */
typedef struct {
    const char                *name;
    size_t                     name_len;
    const char                *value;
    size_t                     value_len;
} zarr_auth_header_t;


typedef struct {
    const char                *method;
    size_t                     method_len;

    /* the request target as received: "/path?query", percent-encoded */
    const char                *uri;
    size_t                     uri_len;

    const zarr_auth_header_t  *headers;
    size_t                     nheaders;

    time_t                     now;
} zarr_auth_request_t;


typedef struct {
    zarr_auth_kind_e           kind;

    /* the access key id, NUL-terminated (valid after a parse that found
     * one, also for SigV2 and SigV4a, for log lines) */
    char                       access_key[ZARR_AUTH_ACCESS_KEY_MAX + 1];
    size_t                     access_key_len;

    char                       scope_date[9];          /* "YYYYMMDD" */
    char                       region[ZARR_AUTH_SCOPE_MAX + 1];
    char                       service[ZARR_AUTH_SCOPE_MAX + 1];
    char                       amz_date[17];           /* the request's */
    char                       signature[65];          /* lowercase hex */

    /* a static, human-readable reason for any rc but ZARR_AUTH_OK */
    const char                *error;

    /*
     * private to zarr_auth.c: where parse found the pieces; they point
     * into the request's headers and target, so the request given to
     * zarr_auth_parse() must stay in memory, unchanged, until
     * zarr_auth_verify() (also across an asynchronous secret lookup)
     */
    const char                *signed_headers;
    size_t                     signed_headers_len;
    const char                *payload_hash;
    size_t                     payload_hash_len;
    int                        signed_headers_encoded;  /* presigned */
    const char                *code;   /* S3 code of a MALFORMED, or NULL:
                                          by kind */
} zarr_auth_t;


/*
 * Reads the request's signature.  Returns ZARR_AUTH_OK for a well-formed
 * SigV4 signature (header or presigned) within its time limits: then
 * a->access_key is the key to look up and zarr_auth_verify() decides.
 * Otherwise the rc to answer with (a->error says why): ANONYMOUS when
 * the request carries no signature at all, UNSUPPORTED for SigV2 and
 * SigV4a, MALFORMED, SKEWED (x-amz-date or Date more than
 * ZARR_AUTH_SKEW_MAX from req->now), EXPIRED (presigned: X-Amz-Date +
 * X-Amz-Expires past, or X-Amz-Date more than ZARR_AUTH_SKEW_MAX ahead).
 * X-Amz-Expires over ZARR_AUTH_EXPIRES_MAX is MALFORMED.  Control bytes
 * or an over-long access key id are MALFORMED.
 *
 * Header signatures need x-amz-content-sha256 and one x-amz-date (or,
 * without it, one Date: RFC 1123 or ISO 8601 basic) on the credential's
 * day.  An access key id is 1 to ZARR_AUTH_ACCESS_KEY_MAX printable
 * ASCII bytes (0x21-0x7e).  An Authorization header together with
 * presigned or SigV2 query parameters is MALFORMED (InvalidArgument);
 * so is any other Authorization scheme.  a->code names the S3 code of a
 * MALFORMED when it is not the kind's (AuthorizationHeaderMalformed,
 * AuthorizationQueryParametersError): InvalidArgument, InvalidRequest
 * (no x-amz-content-sha256), AccessDenied (no valid date, as S3).
 */
zarr_auth_rc_e zarr_auth_parse(const zarr_auth_request_t *req,
    zarr_auth_t *a);

/*
 * Checks a parsed signature against the request with the signing key of
 * a->access_key (see zarr_auth_cache_key()).  Returns ZARR_AUTH_OK,
 * ZARR_AUTH_MISMATCH (also for a signed header missing from the request
 * and an unsigned x-amz-* header; a->error says which) or
 * ZARR_AUTH_NOMEM.  req must be the request given to zarr_auth_parse().
 */
zarr_auth_rc_e zarr_auth_verify(const zarr_auth_request_t *req,
    zarr_auth_t *a, const unsigned char signing_key[32]);

/*
 * The S3 error code and HTTP status for rc (a may be NULL); never NULL:
 * "" and 200 for ZARR_AUTH_OK, "InternalError" and 500 for NOMEM.
 */
const char *zarr_auth_s3_code(zarr_auth_rc_e rc, const zarr_auth_t *a,
    int *status);

/* "ok", "anonymous", "malformed", ...: the reason label of the metric */
const char *zarr_auth_reason(zarr_auth_rc_e rc);


/*
 * Signing keys cached per (secret, date, region, service), a fixed
 * number of entries, the oldest replaced.  One cache per thread.
 */
typedef struct zarr_auth_cache_s  zarr_auth_cache_t;

zarr_auth_cache_t *zarr_auth_cache_create(size_t nentries);
void zarr_auth_cache_destroy(zarr_auth_cache_t *c);

/* out: the signing key for a's scope; returns 0, or -1 (no memory) */
int zarr_auth_cache_key(zarr_auth_cache_t *c, const char *secret,
    size_t secret_len, const zarr_auth_t *a, unsigned char out[32]);


/*
 * A credential file line: "ACCESS_KEY SECRET [OWNER]", fields separated
 * by spaces or tabs; empty lines and lines starting with '#' are
 * skipped (returns 1).  Returns 0 with the fields pointing into line (no
 * owner: *owner_len 0), or -1 with *err set for a malformed line (too
 * few or too many fields, a field too long, control bytes).
 */
typedef struct {
    const char                *access_key;
    size_t                     access_key_len;
    const char                *secret;
    size_t                     secret_len;
    const char                *owner;
    size_t                     owner_len;
} zarr_auth_cred_t;

int zarr_auth_keyfile_line(const char *line, size_t len,
    zarr_auth_cred_t *out, const char **err);

/*
 * An RGW admin API answer to GET /admin/user?access-key=K&format=json:
 * finds the secret of access key K among "keys" and the "user_id" (for
 * a subuser key, its "user").  Copies them NUL-terminated into secret
 * and owner.  Returns 0, 1 when K is not in the answer, -1 for a
 * malformed answer.
 */
int zarr_auth_rgw_user(const char *json, size_t len, const char *access_key,
    char *secret, size_t secret_size, char *owner, size_t owner_size);


#endif /* _ZARR_AUTH_H_INCLUDED_ */
