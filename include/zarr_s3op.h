
/*
 * zarr_s3op: what an S3 request asks for, as the gateway must know it
 * before forwarding (DESIGN section 4): the operation, the bucket and the
 * key, the owner's access key id and the source of a copy.
 *
 * Plain C, no nginx types, no static mutable state: safe from any thread.
 * Inputs are (pointer, length) byte ranges, not NUL-terminated; outputs
 * point into a caller buffer or into the input.  Buckets are addressed
 * path-style (/bucket/key), or virtual-hosted style (Host: bucket.domain,
 * the whole path is the key) when the request names the domain.
 */


#ifndef _ZARR_S3OP_H_INCLUDED_
#define _ZARR_S3OP_H_INCLUDED_


#include <stddef.h>


#define ZARR_S3OP_OK             0
#define ZARR_S3OP_BAD_URI       -1     /* 400 InvalidURI */
#define ZARR_S3OP_BAD_ARGS      -2     /* 400 InvalidArgument */
#define ZARR_S3OP_SMALL_BUF     -3     /* caller error */

/* the longest access key id read (AWS: 16-128 bytes); longer: malformed */
#define ZARR_S3_ACCESS_KEY_MAX  128

/* the buffer zarr_s3op_classify() needs: decoding never grows a string */
#define ZARR_S3OP_BUF_SIZE(uri_len, args_len)  ((uri_len) + (args_len))


/*
 * The operations.  Those from ZARR_S3OP_PUT_OBJECT to
 * ZARR_S3OP_DELETE_OBJECTS mutate a zarr (or need its batch lock);
 * ZARR_S3OP_POST_OBJECT is a browser-form upload whose key is in the
 * multipart/form-data body: the caller reads the form (zarr_form.h)
 * before deciding.
 */
typedef enum {
    ZARR_S3OP_READ = 0,          /* GET, HEAD, OPTIONS: changes nothing */
    ZARR_S3OP_PUT_OBJECT,        /* PUT key */
    ZARR_S3OP_COPY_OBJECT,       /* PUT key + x-amz-copy-source */
    ZARR_S3OP_CREATE_MPU,        /* POST key?uploads */
    ZARR_S3OP_UPLOAD_PART,       /* PUT key?partNumber&uploadId */
    ZARR_S3OP_UPLOAD_PART_COPY,  /* the same + x-amz-copy-source */
    ZARR_S3OP_COMPLETE_MPU,      /* POST key?uploadId */
    ZARR_S3OP_ABORT_MPU,         /* DELETE key?uploadId */
    ZARR_S3OP_DELETE_OBJECT,     /* DELETE key */
    ZARR_S3OP_DELETE_OBJECTS,    /* POST bucket?delete */
    ZARR_S3OP_POST_OBJECT,       /* POST bucket or key, form upload */

    /*
     * writes to an object's sub-resources (PUT ?acl, ?tagging,
     * ?retention, ?legal-hold; DELETE ?tagging; POST ?restore, ?select),
     * and methods S3 does not know, on a key: no tree effect
     */
    ZARR_S3OP_OTHER_WRITE,

    ZARR_S3OP_BUCKET_OP,         /* any other write without a key */
    ZARR_S3OP_SERVICE            /* path "/" */
} zarr_s3op_e;


typedef struct {
    const char    *method;         /* "GET", ...: case-sensitive */
    size_t         method_len;

    /*
     * the path exactly as the client sent it, percent-encoded (nginx:
     * r->unparsed_uri, never the decoded and normalised r->uri)
     */
    const char    *uri;
    size_t         uri_len;

    /*
     * the raw query without '?', possibly empty; NULL: uri still holds
     * it, after its first '?' (so r->unparsed_uri can be passed as is)
     */
    const char    *args;
    size_t         args_len;

    int            copy_source;    /* an x-amz-copy-source header is there */

    /*
     * virtual-hosted style: the Host header as sent (NULL when absent)
     * and the domain under which a Host names a bucket
     * (zarr_virtual_host_suffix); no domain: path-style only
     */
    const char    *host;
    size_t         host_len;
    const char    *host_suffix;
    size_t         host_suffix_len;
} zarr_s3op_request_t;


typedef struct {
    zarr_s3op_e    op;

    /* decoded; bucket "" for the service, key "" when there is none */
    const char    *bucket;
    size_t         bucket_len;
    const char    *key;
    size_t         key_len;

    /* decoded query values; NULL when the parameter is absent */
    const char    *upload_id;
    size_t         upload_id_len;
    const char    *part_number;
    size_t         part_number_len;
    const char    *version_id;
    size_t         version_id_len;

    /*
     * PUT_OBJECT, COPY_OBJECT: RGW's ?append (the parameter is there,
     * with a value or not): the object grows, its size is not the body's
     */
    int            append;

    /* a static description of why classification failed, else NULL */
    const char    *error;
} zarr_s3op_t;


/* where the x-amz-copy-source header points */
typedef struct {
    const char    *bucket;
    size_t         bucket_len;
    const char    *key;
    size_t         key_len;
    const char    *version_id;     /* NULL when absent */
    size_t         version_id_len;
} zarr_s3_copy_source_t;


/*
 * Classifies req.  buf (size bytes, at least ZARR_S3OP_BUF_SIZE()) holds
 * the decoded strings op points to.
 *
 * The path is split at its first '/' after the leading one: "/b" and "/b/"
 * are the bucket b, "/b//x" is the key "/x".  When req->host names a
 * bucket under req->host_suffix (zarr_s3op_host_bucket()), that is the
 * bucket and the whole path after its leading '/' is the key: "/" is the
 * bucket, "/a/b" the key "a/b", "//x" the key "/x".  %XX is decoded, '+'
 * in the path is a literal plus; in the query '+' is a space, as S3
 * decodes it.
 * Query parameters match sub-resource names exactly and in any order,
 * with or without '='; other parameters (x-id, X-Amz-*) are ignored.
 *
 * Returns ZARR_S3OP_OK, or with op->error set:
 *  - ZARR_S3OP_BAD_URI: a malformed %XX in the path, a path not starting
 *    with '/', an empty bucket before a key, '/' in the decoded bucket,
 *    a Host naming a bucket with an upper-case letter;
 *  - ZARR_S3OP_BAD_ARGS: a write the backend could take for another
 *    operation than the gateway: a malformed %XX in its query, an empty
 *    or repeated uploadId or partNumber, a PUT with only one of them.
 *    GET, HEAD and OPTIONS never get this: they are reads whatever their
 *    query says.
 */
int zarr_s3op_classify(const zarr_s3op_request_t *req, char *buf,
    size_t size, zarr_s3op_t *op);

/*
 * Whether a PUT's body is aws-chunked, from its x-amz-content-sha256 and
 * Content-Encoding values (NULL when absent): 1 when the hash is
 * "STREAMING-..." (the backend decodes the body: the object's size is
 * x-amz-decoded-content-length), 0 when neither says so (the size is the
 * body's), -1 when only Content-Encoding names aws-chunked (backends
 * differ: the size must be asked for).
 */
int zarr_s3_aws_chunked(const char *sha256, size_t sha256_len,
    const char *encoding, size_t encoding_len);

/*
 * The bucket a Host header names under domain: host is "<bucket>.<domain>"
 * once a ":port" and one trailing '.' are dropped, the domain compared
 * case-insensitively.  Returns 1 with *bucket pointing into host, 0 when
 * host does not name a bucket under domain (path-style: the domain itself
 * or another name), -1 when it names one with an upper-case letter (no
 * DNS name does; the backend may fold it or not: refuse).
 */
int zarr_s3op_host_bucket(const char *host, size_t host_len,
    const char *domain, size_t domain_len, const char **bucket,
    size_t *bucket_len);

/*
 * Whether a Host header may name a bucket at some backend: returns 1 for
 * a name, *name pointing into host without the ":port" and one trailing
 * '.'; 0 for an absent or empty Host or an IP address, which no backend
 * reads as a bucket.  A single label counts as a name: RGW with
 * rgw_dns_name (and AWS) reads any Host outside its domains as a bucket
 * name, "localhost" included.
 */
int zarr_s3op_host_name(const char *host, size_t host_len, const char **name,
    size_t *name_len);

/*
 * Classifies req as a backend would that serves virtual hosts under a
 * domain the gateway does not know, or takes the whole Host for a bucket
 * name: the whole path is the key, the bucket is "" (unknown), "/" is a
 * bucket-level request.  The gateway asks it
 * for a Host that may name a bucket (zarr_s3op_host_name()) but is
 * neither under zarr_virtual_host_suffix nor a name it serves path-style,
 * to refuse writes that would touch a zarr under that reading.  Returns
 * and fills op as zarr_s3op_classify().
 */
int zarr_s3op_classify_unknown_host(const zarr_s3op_request_t *req,
    char *buf, size_t size, zarr_s3op_t *op);

/* the $zarr_op value: "put", "copy", ..., "service" */
const char *zarr_s3op_name(zarr_s3op_e op);

/*
 * The access key id of the requester: from a SigV4 Authorization header
 * ("AWS4-HMAC-SHA256 Credential=AKID/date/region/s3/aws4_request, ..."),
 * a SigV2 one ("AWS AKID:signature"), or, when auth is empty, from a
 * presigned URL's X-Amz-Credential (SigV4) or AWSAccessKeyId (SigV2)
 * query parameter.  auth and args may be NULL when absent.  *key points
 * into auth or into buf (size bytes, ZARR_S3_ACCESS_KEY_MAX is enough).
 *
 * Returns 0 (*key_len 0 for an anonymous request), or -1 with *key_len 0
 * when credentials are there but cannot be read, or when the key id is
 * longer than ZARR_S3_ACCESS_KEY_MAX bytes or holds a control byte
 * (below 0x20, or 0x7f: never in a key id, and unfit for log lines).
 */
int zarr_s3_access_key(const char *auth, size_t auth_len, const char *args,
    size_t args_len, char *buf, size_t size, const char **key,
    size_t *key_len);

/*
 * Parses an x-amz-copy-source value: "[/]bucket/key[?versionId=v]",
 * percent-encoded ('+' is a literal plus in bucket/key, as RGW reads it).
 * buf must hold len bytes.  Returns 0, or -1 when the value is malformed,
 * has no bucket or no key, or is an access point ARN.
 */
int zarr_s3_copy_source(const char *value, size_t len, char *buf,
    size_t size, zarr_s3_copy_source_t *out);


#endif /* _ZARR_S3OP_H_INCLUDED_ */
