
/*
 * zarr_s3xml: the S3 XML bodies the gateway writes (error documents) and
 * reads (DeleteObjects requests; DeleteObjects, CopyObject,
 * UploadPartCopy and CompleteMultipartUpload responses).
 *
 * Plain C, no nginx types, no static mutable state: safe from any thread
 * (one parser per thread at a time).  Parsing is expat's, streaming: feed
 * a body in chunks as they arrive.  A DOCTYPE is refused (S3 never sends
 * one; no entity expansion tricks).
 *
 * Request bodies are read as RGW reads them, element names as written
 * (expat without namespace processing), and whatever a namespace-aware
 * backend could read otherwise is refused as malformed: a prefixed
 * element name, a namespace declaration other than xmlns="S3's".  Known
 * elements repeated where one is read (<Quiet>, <Key>, <VersionId>) are
 * refused too, and <Quiet> takes "true" or "false" only.  Responses
 * match names in no namespace or in S3's and skip other elements.
 */


#ifndef _ZARR_S3XML_H_INCLUDED_
#define _ZARR_S3XML_H_INCLUDED_


#include <stddef.h>

#include "zarr_json.h"


#define ZARR_S3XML_NS           "http://s3.amazonaws.com/doc/2006-03-01/"

/* S3's own limit on a DeleteObjects request */
#define ZARR_S3XML_DELETE_MAX   1000

/* longest text kept from one element (S3 keys: 1024 bytes) */
#define ZARR_S3XML_TEXT_MAX     65536

#define ZARR_S3XML_CODE_MAX     64
#define ZARR_S3XML_MESSAGE_MAX  512


/* what feed() and parse() return */
#define ZARR_S3XML_OK           0
#define ZARR_S3XML_S3_ERROR     1      /* the body is an <Error> document */
#define ZARR_S3XML_MALFORMED   -1      /* 400 MalformedXML for a request */
#define ZARR_S3XML_TOO_LARGE   -2      /* over max_body or TEXT_MAX */
#define ZARR_S3XML_TOO_MANY    -3      /* over max_objects: MalformedXML */
#define ZARR_S3XML_NOMEM       -4


typedef enum {
    /* request: <Delete><Quiet/><Object><Key/><VersionId/></Object>... */
    ZARR_S3XML_DELETE = 0,

    /* response: <DeleteResult><Deleted>...</Deleted><Error>...</Error> */
    ZARR_S3XML_DELETE_RESULT,

    /* response: <CopyObjectResult> or <CopyPartResult> with an <ETag> */
    ZARR_S3XML_COPY_RESULT,

    /* response: <CompleteMultipartUploadResult>, <ETag> may be empty */
    ZARR_S3XML_COMPLETE_RESULT
} zarr_s3xml_kind_e;


/* one <Object>, <Deleted> or <Error> entry; strings NUL-terminated */
typedef struct {
    char          *key;            /* never NULL */
    size_t         key_len;
    char          *version_id;     /* NULL when absent */
    size_t         version_id_len;
    char          *code;           /* <Error> entries only, else NULL */
    char          *message;        /* <Error> entries only, may be NULL */
} zarr_s3xml_object_t;


typedef struct {
    /* DELETE: the objects to delete; DELETE_RESULT: the <Deleted> ones */
    zarr_s3xml_object_t  *objects;
    size_t                nobjects;

    /* DELETE_RESULT: the <Error> entries */
    zarr_s3xml_object_t  *errors;
    size_t                nerrors;

    int                   quiet;   /* DELETE: <Quiet>true</Quiet> */

    /*
     * COPY_RESULT, COMPLETE_RESULT: the <ETag> without surrounding
     * whitespace and quotes; NULL when absent (an error for COPY_RESULT)
     */
    char                 *etag;
    size_t                etag_len;

    /*
     * ZARR_S3XML_S3_ERROR: the document's <Code> and <Message>;
     * other failures: code "" and a description in message
     */
    char                  code[ZARR_S3XML_CODE_MAX];
    char                  message[ZARR_S3XML_MESSAGE_MAX];
} zarr_s3xml_result_t;


/* the fields of an error document; NULL resource / request_id: left out */
typedef struct {
    const char    *code;
    size_t         code_len;
    const char    *message;
    size_t         message_len;
    const char    *resource;
    size_t         resource_len;
    const char    *request_id;
    size_t         request_id_len;
} zarr_s3xml_error_t;


typedef struct zarr_s3xml_parser_s  zarr_s3xml_parser_t;


/*
 * Appends s, escaped for XML character data and attribute values:
 *  - & < > " ' as &amp; &lt; &gt; &quot; &apos;;
 *  - TAB, LF, CR, DEL and C1 controls (U+0080-U+009F) as &#N; so that
 *    they survive parsing (a raw CR would be read as LF) and show;
 *  - what XML 1.0 cannot carry at all, even as &#N; (NUL and the other
 *    C0 controls, U+FFFE, U+FFFF) and each byte of invalid UTF-8 as
 *    U+FFFD: lossy, but the document stays well-formed.
 * Returns 0, or -1 when out of memory.
 */
int zarr_s3xml_escape(zarr_buf_t *b, const char *s, size_t len);

/*
 * Appends '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>..
 * </Code><Message>..</Message><Resource>..</Resource><RequestId>..
 * </RequestId></Error>', every field escaped.  Returns 0 or -1 (no
 * memory).
 */
int zarr_s3xml_error_body(zarr_buf_t *b, const zarr_s3xml_error_t *e);

/*
 * A parser for one body of kind.  max_body: the most bytes fed (0: no
 * limit); max_objects: the most entries, <Deleted> and <Error> together
 * for DELETE_RESULT (0: no limit; ZARR_S3XML_DELETE_MAX for requests).
 * Returns NULL when out of memory.
 */
zarr_s3xml_parser_t *zarr_s3xml_create(zarr_s3xml_kind_e kind,
    size_t max_body, size_t max_objects);

/*
 * Feeds the next len bytes; last = 1 with the final chunk (which may be
 * empty).  Whitespace before the document is skipped (S3 may pad a 200
 * answer while it copies).  Returns ZARR_S3XML_OK (go on; with last: a
 * complete, valid body), ZARR_S3XML_S3_ERROR (only with last: the body
 * was an <Error> document) or a negative code; once it is not OK, it
 * returns the same code again.  The result tells more.
 */
int zarr_s3xml_feed(zarr_s3xml_parser_t *p, const char *buf, size_t len,
    int last);

/* the result so far; owned by the parser */
const zarr_s3xml_result_t *zarr_s3xml_result(const zarr_s3xml_parser_t *p);

void zarr_s3xml_destroy(zarr_s3xml_parser_t *p);

/*
 * The same on a whole body: res is filled in every case and released
 * with zarr_s3xml_result_free().  Returns as zarr_s3xml_feed(..., 1).
 */
int zarr_s3xml_parse(zarr_s3xml_kind_e kind, const char *body, size_t len,
    size_t max_body, size_t max_objects, zarr_s3xml_result_t *res);

void zarr_s3xml_result_free(zarr_s3xml_result_t *res);


#endif /* _ZARR_S3XML_H_INCLUDED_ */
