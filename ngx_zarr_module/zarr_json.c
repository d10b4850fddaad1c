
/*
 * Growable buffer and Python-compatible JSON string escaping.
 */


#include <stdlib.h>
#include <string.h>

#include "zarr_json.h"


static int zarr_utf8_decode(const unsigned char *p, size_t len,
    uint32_t *cp);
static uint64_t zarr_load64(const unsigned char *p);


/*
 * Tests of 8 bytes at once: nonzero if some byte of x is below n (n <=
 * 127), above n (n <= 127) or zero; they may also be nonzero for other
 * bytes, never zero when such a byte is there.
 */
#define ZARR_ONES   0x0101010101010101ULL
#define ZARR_HIGHS  0x8080808080808080ULL

#define zarr_has_less(x, n)  (((x) - ZARR_ONES * (n)) & ZARR_HIGHS)
#define zarr_has_more(x, n)  ((((x) + ZARR_ONES * (127 - (n))) | (x))      \
                              & ZARR_HIGHS)
#define zarr_has_zero(x)     (((x) - ZARR_ONES) & ~(x) & ZARR_HIGHS)


void
zarr_buf_init(zarr_buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = 0;
}


void
zarr_buf_free(zarr_buf_t *b)
{
    free(b->data);
    zarr_buf_init(b);
}


int
zarr_buf_reserve(zarr_buf_t *b, size_t more)
{
    char    *p;
    size_t   cap;

    if (b->len + more <= b->cap) {
        return 0;
    }

    cap = b->cap ? b->cap : 256;

    while (cap < b->len + more) {
        cap *= 2;
    }

    p = realloc(b->data, cap);
    if (p == NULL) {
        return -1;
    }

    b->data = p;
    b->cap = cap;

    return 0;
}


int
zarr_buf_add(zarr_buf_t *b, const void *p, size_t n)
{
    if (zarr_buf_reserve(b, n) != 0) {
        return -1;
    }

    if (n) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }

    return 0;
}


void
zarr_buf_put(zarr_buf_t *b, const char *s, size_t n)
{
    if (b->failed || n == 0) {
        return;
    }

    if (zarr_buf_reserve(b, n + 1) != 0) {
        b->failed = 1;
        return;
    }

    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}


void
zarr_buf_puts(zarr_buf_t *b, const char *s)
{
    zarr_buf_put(b, s, strlen(s));
}


void
zarr_buf_reset(zarr_buf_t *b)
{
    b->len = 0;

    if (b->data) {
        b->data[0] = '\0';
    }
}


int
zarr_buf_add_str(zarr_buf_t *b, const char *s)
{
    return zarr_buf_add(b, s, strlen(s));
}


int
zarr_buf_add_u64(zarr_buf_t *b, uint64_t v)
{
    char   tmp[24], *p;

    p = tmp + sizeof(tmp);

    do {
        *--p = (char) ('0' + v % 10);
        v /= 10;
    } while (v);

    return zarr_buf_add(b, p, tmp + sizeof(tmp) - p);
}


/*
 * Decodes one UTF-8 sequence; returns its length or 0 when invalid.
 */

static int
zarr_utf8_decode(const unsigned char *p, size_t len, uint32_t *cp)
{
    uint32_t  c;
    size_t    n, i;

    c = p[0];

    if (c < 0x80) {
        *cp = c;
        return 1;
    }

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        c &= 0x1f;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        c &= 0x0f;

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        c &= 0x07;

    } else {
        return 0;
    }

    if (len < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }

        c = (c << 6) | (p[i] & 0x3f);
    }

    if ((n == 3 && c < 0x800)
        || (n == 4 && (c < 0x10000 || c > 0x10ffff))
        || (c >= 0xd800 && c <= 0xdfff))
    {
        return 0;
    }

    *cp = c;

    return (int) n;
}


static uint64_t
zarr_load64(const unsigned char *p)
{
    uint64_t  v;

    memcpy(&v, p, sizeof(uint64_t));

    return v;
}


size_t
zarr_utf8_valid_prefix(const char *s, size_t len)
{
    size_t     i;
    int        n;
    uint32_t   cp;

    i = 0;

    while (i < len) {
        if (len - i >= 8
            && (zarr_load64((const unsigned char *) s + i) & ZARR_HIGHS)
               == 0)
        {
            i += 8;
            continue;
        }

        if ((unsigned char) s[i] < 0x80) {
            i++;
            continue;
        }

        n = zarr_utf8_decode((const unsigned char *) s + i, len - i, &cp);
        if (n == 0) {
            return i;
        }

        i += n;
    }

    return len;
}


int
zarr_json_add_string(zarr_buf_t *b, const char *s, size_t len)
{
    size_t  n;

    if (len > (SIZE_MAX - 2) / 6
        || zarr_buf_reserve(b, ZARR_JSON_ESCAPED_MAX(len) + 2) != 0)
    {
        return -1;
    }

    n = zarr_json_escape(b->data + b->len + 1, s, len);
    if (n == (size_t) -1) {
        return -2;
    }

    b->data[b->len] = '"';
    b->data[b->len + 1 + n] = '"';
    b->len += n + 2;

    return 0;
}


size_t
zarr_json_escape(char *out, const char *s, size_t len)
{
    static const char      hex[] = "0123456789abcdef";
    const unsigned char   *p, *end;
    unsigned char          c;
    uint32_t               cp, hi, lo;
    uint64_t               v;
    char                  *o;
    int                    n;

    p = (const unsigned char *) s;
    end = p + len;
    o = out;

    while (p < end) {

        /* 8 printable ASCII bytes, no quote, no backslash: as they are */

        if (end - p >= 8) {
            v = zarr_load64(p);

            if ((zarr_has_less(v, 0x20) | zarr_has_more(v, 0x7e)
                 | zarr_has_zero(v ^ (ZARR_ONES * '"'))
                 | zarr_has_zero(v ^ (ZARR_ONES * '\\')))
                == 0)
            {
                memcpy(o, p, 8);
                o += 8;
                p += 8;
                continue;
            }
        }

        c = *p;

        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            *o++ = (char) c;
            p++;
            continue;
        }

        *o++ = '\\';

        switch (c) {
        case '"':  *o++ = '"'; p++; continue;
        case '\\': *o++ = '\\'; p++; continue;
        case '\n': *o++ = 'n'; p++; continue;
        case '\r': *o++ = 'r'; p++; continue;
        case '\t': *o++ = 't'; p++; continue;
        case '\b': *o++ = 'b'; p++; continue;
        case '\f': *o++ = 'f'; p++; continue;
        }

        n = zarr_utf8_decode(p, end - p, &cp);
        if (n == 0) {
            return (size_t) -1;
        }

        p += n;

        if (cp >= 0x10000) {
            cp -= 0x10000;
            hi = 0xd800 | (cp >> 10);
            lo = 0xdc00 | (cp & 0x3ff);

        } else {
            hi = cp;
            lo = 0;
        }

        *o++ = 'u';
        *o++ = hex[(hi >> 12) & 0xf];
        *o++ = hex[(hi >> 8) & 0xf];
        *o++ = hex[(hi >> 4) & 0xf];
        *o++ = hex[hi & 0xf];

        if (lo) {
            *o++ = '\\';
            *o++ = 'u';
            *o++ = hex[(lo >> 12) & 0xf];
            *o++ = hex[(lo >> 8) & 0xf];
            *o++ = hex[(lo >> 4) & 0xf];
            *o++ = hex[lo & 0xf];
        }
    }

    return o - out;
}
