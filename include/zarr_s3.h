/*
 * zarr_s3: a small synchronous S3 client (libcurl + SigV4 + expat) for
 * zarrctl and for the gateway's own background calls.
 *
 * Plain C, no nginx types, no static mutable state.  A zarr_s3_t owns one
 * curl easy handle (reused, so connections are kept alive): use one per
 * thread, never the same one from two threads at once.  Call
 * zarr_s3_global_init() once per process before any other thread starts.
 *
 * Buckets are addressed path-style: <endpoint>/<bucket>/<key>.
 */

#ifndef _ZARR_S3_H_INCLUDED_
#define _ZARR_S3_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "zarr_sigv4.h"


#define ZARR_S3_OK             0
#define ZARR_S3_ERROR         -1
#define ZARR_S3_STOPPED        1        /* a callback asked to stop */

#define ZARR_S3_CODE_MAX       64
#define ZARR_S3_MESSAGE_MAX    512
#define ZARR_S3_ETAG_MAX       256
#define ZARR_S3_VERSION_MAX    1024


typedef struct {
    /* "http://127.0.0.1:8000"; scheme and authority only, no path */
    const char    *endpoint;
    const char    *access_key;
    const char    *secret_key;
    const char    *region;             /* NULL or "": "us-east-1" */

    long           connect_timeout_ms; /* 0: 10 s */
    long           timeout_ms;         /* whole transfer, 0: 300 s */

    /* a larger response body fails the request; 0: no limit */
    size_t         max_response;
} zarr_s3_conf_t;


typedef struct zarr_s3_s  zarr_s3_t;


/*
 * Why a call failed.  status is the HTTP status (0: no HTTP answer);
 * code is the S3 <Code> of an error body ("" when none, e.g. for HEAD);
 * message is the S3 <Message>, or a transport / parse error text.
 */
typedef struct {
    long           status;
    char           code[ZARR_S3_CODE_MAX];
    char           message[ZARR_S3_MESSAGE_MAX];
} zarr_s3_error_t;


typedef struct {
    const char                 *method;    /* "GET", "PUT", "HEAD", ... */
    const char                 *bucket;    /* NULL or "": the service root */
    const char                 *key;       /* raw key bytes, may be empty */
    size_t                      key_len;

    const zarr_sigv4_param_t   *params;    /* raw, encoded by the client */
    size_t                      nparams;

    /*
     * extra headers, all sent and signed (e.g. x-amz-acl, content-type,
     * content-md5); host, x-amz-date, x-amz-content-sha256 and
     * authorization are set by the client
     */
    const zarr_sigv4_header_t  *headers;
    size_t                      nheaders;

    /* body; PUT and POST always send a Content-Length (0 when empty) */
    const void                 *body;
    size_t                      body_len;
} zarr_s3_request_t;


typedef struct {
    long           status;             /* HTTP status, 0: none */

    /* selected response headers; "" / -1 when absent */
    char           etag[ZARR_S3_ETAG_MAX];      /* surrounding quotes cut */
    char           version_id[ZARR_S3_VERSION_MAX];
    int64_t        content_length;

    /* the body, malloc()ed and NUL-terminated (NULL when empty) */
    char          *body;
    size_t         body_len;

    /* filled for transport failures and non-2xx answers */
    zarr_s3_error_t  error;
} zarr_s3_response_t;


/* one object of a listing; strings are valid during the callback only */
typedef struct {
    const char    *key;                /* decoded key bytes, not NUL-safe */
    size_t         key_len;
    uint64_t       size;
    const char    *etag;               /* quotes cut, NUL-terminated */
    size_t         etag_len;
    /* ListObjectVersions: the latest version's id, else NULL */
    const char    *version_id;         /* NUL-terminated */
    size_t         version_id_len;
} zarr_s3_object_t;

/* return 0 to go on, nonzero to stop the listing */
typedef int (*zarr_s3_object_pt)(const zarr_s3_object_t *obj, void *data);


/* what one ListObjectsV2 page said besides its objects */
typedef struct {
    int            is_truncated;
    char          *next_token;         /* NextContinuationToken or NULL */
    int            url_encoded;        /* <EncodingType>url</EncodingType> */
    uint64_t       objects;            /* objects reported on this page */

    /* ListObjectVersions: NextKeyMarker, NextVersionIdMarker or NULL */
    char          *next_key;
    char          *next_version;

    /* a <VersioningConfiguration>: its <Status> ("" when none) */
    char           versioning[16];

    /*
     * a <LifecycleConfiguration>: an enabled <Rule> has a
     * <NoncurrentVersionExpiration>
     */
    int            expires_noncurrent;

    /* an <InitiateMultipartUploadResult>: its <UploadId>, or NULL */
    char          *upload_id;

    zarr_s3_error_t  error;
} zarr_s3_list_page_t;


typedef struct zarr_s3_list_parser_s  zarr_s3_list_parser_t;


/* curl_global_init(); returns 0 or -1 */
int zarr_s3_global_init(void);
void zarr_s3_global_cleanup(void);

/*
 * Creates a client; the configuration strings are copied.  Returns NULL
 * with a message in err (errlen bytes) on bad configuration or no memory.
 */
zarr_s3_t *zarr_s3_create(const zarr_s3_conf_t *conf, char *err,
    size_t errlen);
void zarr_s3_destroy(zarr_s3_t *s3);

/*
 * Sends one signed request and waits for the answer.  Returns ZARR_S3_OK
 * when an HTTP answer arrived, whatever its status (check resp->status;
 * for a non-2xx answer resp->error holds the S3 error code and message),
 * or ZARR_S3_ERROR on transport failure or bad input (resp->error).
 * Release resp with zarr_s3_response_free() in both cases.
 */
int zarr_s3_request(zarr_s3_t *s3, const zarr_s3_request_t *req,
    zarr_s3_response_t *resp);
void zarr_s3_response_free(zarr_s3_response_t *resp);

/*
 * Lists every object of bucket under prefix (ListObjectsV2, pages of 1000,
 * encoding-type=url), calling handler once per object in key order.
 * Returns ZARR_S3_OK when the listing is complete, ZARR_S3_STOPPED when the
 * handler returned nonzero, ZARR_S3_ERROR with err filled otherwise.
 */
int zarr_s3_list(zarr_s3_t *s3, const char *bucket, const char *prefix,
    size_t prefix_len, zarr_s3_object_pt handler, void *data,
    zarr_s3_error_t *err);


/*
 * Lists the latest versions of the objects of a versioned bucket under
 * prefix (ListObjectVersions, pages of 1000, encoding-type=url), calling
 * handler once per object whose latest version is not a delete marker,
 * in key order, with obj->version_id set.  Returns as zarr_s3_list().
 */
int zarr_s3_list_versions(zarr_s3_t *s3, const char *bucket,
    const char *prefix, size_t prefix_len, zarr_s3_object_pt handler,
    void *data, zarr_s3_error_t *err);

/*
 * GetBucketVersioning: *enabled is 1 when the bucket's versioning status
 * is Enabled, 0 when it was never enabled or is Suspended.  Returns
 * ZARR_S3_OK or ZARR_S3_ERROR with err filled.
 */
int zarr_s3_bucket_versioning(zarr_s3_t *s3, const char *bucket,
    int *enabled, zarr_s3_error_t *err);


/*
 * An object written as its bytes come, never whole in memory: the bytes
 * are kept until part_size of them are there (0: 8 MiB; S3 wants at
 * least 5 MiB), then a multipart upload begins and each part goes as it
 * fills; close() sends a small object with one PUT, or the last part and
 * the completion, with "x-amz-acl: bucket-owner-full-control".  close()
 * with abort (or after any failure) drops the upload.  Each call
 * returns ZARR_S3_OK or ZARR_S3_ERROR with err filled; after an error
 * only close() is valid.
 */
typedef struct zarr_s3_writer_s  zarr_s3_writer_t;

zarr_s3_writer_t *zarr_s3_writer_create(zarr_s3_t *s3, const char *bucket,
    const char *key, size_t key_len, const char *content_type,
    size_t part_size);
int zarr_s3_writer_write(zarr_s3_writer_t *w, const char *buf, size_t len,
    zarr_s3_error_t *err);
int zarr_s3_writer_close(zarr_s3_writer_t *w, int abort,
    zarr_s3_error_t *err);


/*
 * GetBucketLifecycleConfiguration: *expires is 1 when an enabled rule
 * expires noncurrent versions, 0 otherwise (no configuration at all
 * included).  Returns ZARR_S3_OK or ZARR_S3_ERROR with err filled.
 */
int zarr_s3_bucket_lifecycle(zarr_s3_t *s3, const char *bucket,
    int *expires, zarr_s3_error_t *err);


/*
 * The ListObjectsV2 body parser (ListObjectVersions, GetBucketVersioning
 * and GetBucketLifecycleConfiguration bodies too), streaming (no tree is
 * built): feed the
 * body in chunks of any size, last = 1 with the final one (which may be
 * empty).  Keys are URL-decoded when the body says
 * <EncodingType>url</EncodingType> before the first <Contents> ('+' is a
 * space, as botocore decodes them).  feed returns ZARR_S3_OK,
 * ZARR_S3_STOPPED (the handler returned nonzero; stop feeding) or
 * ZARR_S3_ERROR (malformed body, an <Error> document, or no memory;
 * page->error says which, with the S3 code for an <Error> document).
 */
zarr_s3_list_parser_t *zarr_s3_list_parser_create(zarr_s3_object_pt handler,
    void *data);
int zarr_s3_list_parser_feed(zarr_s3_list_parser_t *p, const char *buf,
    size_t len, int last);
/* the page state so far; owned by the parser */
const zarr_s3_list_page_t *zarr_s3_list_parser_page(
    const zarr_s3_list_parser_t *p);
void zarr_s3_list_parser_destroy(zarr_s3_list_parser_t *p);

/*
 * The same on a whole body: page is filled (caller releases it with
 * zarr_s3_list_page_free()).  Returns as zarr_s3_list_parser_feed().
 */
int zarr_s3_list_parse(const char *body, size_t len,
    zarr_s3_object_pt handler, void *data, zarr_s3_list_page_t *page);
void zarr_s3_list_page_free(zarr_s3_list_page_t *page);

/*
 * Reads an S3 <Error> document: fills err->code and err->message (status
 * untouched) and returns 0; returns -1 when body is not one.
 */
int zarr_s3_parse_error(const char *body, size_t len, zarr_s3_error_t *err);

/*
 * Decodes %XX and '+' (space) in place, *len updated; returns 0, or -1 on
 * a malformed escape.
 */
int zarr_s3_url_decode(char *s, size_t *len);


#endif /* _ZARR_S3_H_INCLUDED_ */
