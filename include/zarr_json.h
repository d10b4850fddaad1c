
/*
 * Growable byte buffer and JSON string escaping exactly as Python's
 * json.dumps(..., ensure_ascii=True) does it (DESIGN section 2).
 * Plain C: no nginx types, unit-tested on its own.
 */


#ifndef _ZARR_JSON_H_INCLUDED_
#define _ZARR_JSON_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


typedef struct {
    char       *data;
    size_t      len;
    size_t      cap;
    int         failed;     /* zarr_buf_put() ran out of memory */
} zarr_buf_t;


void zarr_buf_init(zarr_buf_t *b);
void zarr_buf_free(zarr_buf_t *b);
int zarr_buf_reserve(zarr_buf_t *b, size_t more);
int zarr_buf_add(zarr_buf_t *b, const void *p, size_t n);
int zarr_buf_add_str(zarr_buf_t *b, const char *s);
int zarr_buf_add_u64(zarr_buf_t *b, uint64_t v);

/*
 * The same for long builders that check once at the end: a failure is
 * remembered in b->failed and later puts do nothing; the data stays
 * NUL-terminated (not counted in len).
 */
void zarr_buf_put(zarr_buf_t *b, const char *s, size_t n);
void zarr_buf_puts(zarr_buf_t *b, const char *s);
void zarr_buf_reset(zarr_buf_t *b);

/*
 * Appends s as a quoted JSON string.  Returns 0, -1 on allocation
 * failure, -2 when s is not valid UTF-8 (nothing is appended then).
 */
int zarr_json_add_string(zarr_buf_t *b, const char *s, size_t len);

/*
 * Writes s escaped as zarr_json_add_string() does, without the quotes,
 * into out, which must have room for ZARR_JSON_ESCAPED_MAX(len) bytes.
 * Returns the bytes written, or (size_t) -1 when s is not valid UTF-8
 * (out then holds garbage).
 */
#define ZARR_JSON_ESCAPED_MAX(len)  ((len) * 6)

size_t zarr_json_escape(char *out, const char *s, size_t len);

/*
 * Returns the length of the longest valid UTF-8 prefix of s; equals len
 * when s is entirely valid (no overlongs, no surrogates, <= U+10FFFF).
 */
size_t zarr_utf8_valid_prefix(const char *s, size_t len);


#endif /* _ZARR_JSON_H_INCLUDED_ */
