
/*
 * zarr_form: the fields of an S3 POST object upload (a browser form,
 * multipart/form-data, RFC 7578) that the gateway must know before
 * forwarding it: the key the object will be stored under.
 *
 * S3 reads the form fields in order up to the part named "file", whose
 * content is the object; field names are case-insensitive; the key field
 * may hold "${filename}", replaced by the file part's filename.  The
 * parser reads only the head of the body, up to the file part's headers.
 *
 * Plain C, no nginx types, no allocation, no static mutable state.
 * Inputs are (pointer, length) byte ranges; outputs point into them or
 * into a caller buffer.  Anything the gateway could read otherwise than
 * the backend (a repeated key field, a filename with quotes, escapes or
 * ';' where the key uses it) is reported, never guessed.
 */


#ifndef _ZARR_FORM_H_INCLUDED_
#define _ZARR_FORM_H_INCLUDED_


#include <stddef.h>


#define ZARR_FORM_OK           0
#define ZARR_FORM_MALFORMED   -1     /* 400 MalformedPOSTRequest */
#define ZARR_FORM_INCOMPLETE  -2     /* no file part within the bytes given */
#define ZARR_FORM_NO_KEY      -3     /* 400 InvalidArgument */
#define ZARR_FORM_AMBIGUOUS   -4     /* 400 InvalidArgument */

/* RFC 2046: a boundary has 1 to 70 characters */
#define ZARR_FORM_BOUNDARY_MAX  70

/* the headers of one part, together */
#define ZARR_FORM_HEADERS_MAX   8192


typedef struct {
    /* the first "key" field's value, NULL when there is none */
    const char    *key;
    size_t         key_len;
    unsigned       key_count;

    /* the file part's filename parameter, NULL when absent */
    const char    *filename;
    size_t         filename_len;

    /* a quoted filename with '\\' or ';' inside: parsers differ */
    int            filename_odd;

    /* bytes from the start of the body to the file part's content */
    size_t         file_offset;

    /* a static description of what is wrong, else NULL */
    const char    *error;
} zarr_form_t;


/*
 * The boundary of a Content-Type value "multipart/form-data;
 * boundary=XYZ" (type and parameter name case-insensitive, the value
 * quoted or not).  Returns 0 with *boundary pointing into content_type,
 * or -1 when the type is another or the boundary is missing, empty,
 * longer than ZARR_FORM_BOUNDARY_MAX or repeated.
 */
int zarr_form_boundary(const char *content_type, size_t len,
    const char **boundary, size_t *boundary_len);

/*
 * Reads the fields of a form body up to the file part.  body holds len
 * bytes, the beginning of the body (or all of it).
 *
 * Returns ZARR_FORM_OK (the file part found, form filled), or with
 * form->error set:
 *  - ZARR_FORM_INCOMPLETE: no file part within len bytes (when len is the
 *    whole body: the form has none, which S3 refuses as well);
 *  - ZARR_FORM_MALFORMED: no opening boundary, a part without a
 *    Content-Disposition form-data name, headers without CRLF or longer
 *    than ZARR_FORM_HEADERS_MAX, a closing boundary before the file part;
 *  - ZARR_FORM_NO_KEY: no key field before the file part;
 *  - ZARR_FORM_AMBIGUOUS: the key field given more than once.
 */
int zarr_form_parse(const char *body, size_t len, const char *boundary,
    size_t boundary_len, zarr_form_t *form);

/*
 * The key the backend stores the object under: form->key with its first
 * "${filename}" replaced by the filename (RGW replaces the first one).
 * buf (size bytes, key_len + filename_len is enough) holds the result
 * when there is a replacement; otherwise *key is form->key.
 *
 * Returns ZARR_FORM_OK, or ZARR_FORM_AMBIGUOUS when the key holds
 * "${filename}" and the filename is missing, odd (filename_odd), or the
 * key holds "${filename}" more than once (backends differ), or -1 (buf
 * too small).
 */
int zarr_form_key(const zarr_form_t *form, char *buf, size_t size,
    const char **key, size_t *key_len);


#endif /* _ZARR_FORM_H_INCLUDED_ */
