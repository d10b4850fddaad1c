
/*
 * Growable buffer and Python-compatible JSON string escaping.
 */


#include <stdlib.h>
#include <string.h>

#include "zarr_json.h"


static int zarr_utf8_decode(const unsigned char *p, size_t len,
    uint32_t *cp);


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


size_t
zarr_utf8_valid_prefix(const char *s, size_t len)
{
    size_t     i;
    int        n;
    uint32_t   cp;

    i = 0;

    while (i < len) {
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
    static const char      hex[] = "0123456789abcdef";
    const unsigned char   *p, *end, *run;
    unsigned char          c;
    uint32_t               cp, hi, lo;
    char                   esc[12];
    size_t                 start, elen;
    int                    n;

    if (zarr_utf8_valid_prefix(s, len) != len) {
        return -2;
    }

    start = b->len;

    /* the common case, printable ASCII only, needs len + 2 bytes */
    if (zarr_buf_reserve(b, len + 2) != 0) {
        return -1;
    }

    b->data[b->len++] = '"';

    p = (const unsigned char *) s;
    end = p + len;
    run = p;

    while (p < end) {
        c = *p;

        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            p++;
            continue;
        }

        if (zarr_buf_add(b, run, p - run) != 0) {
            goto failed;
        }

        elen = 2;
        esc[0] = '\\';

        switch (c) {
        case '"':  esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            n = zarr_utf8_decode(p, end - p, &cp);
            /* validated above, n > 0 */
            p += n - 1;

            if (cp >= 0x10000) {
                cp -= 0x10000;
                hi = 0xd800 | (cp >> 10);
                lo = 0xdc00 | (cp & 0x3ff);

            } else {
                hi = cp;
                lo = 0;
            }

            esc[1] = 'u';
            esc[2] = hex[(hi >> 12) & 0xf];
            esc[3] = hex[(hi >> 8) & 0xf];
            esc[4] = hex[(hi >> 4) & 0xf];
            esc[5] = hex[hi & 0xf];
            elen = 6;

            if (lo) {
                esc[6] = '\\';
                esc[7] = 'u';
                esc[8] = hex[(lo >> 12) & 0xf];
                esc[9] = hex[(lo >> 8) & 0xf];
                esc[10] = hex[(lo >> 4) & 0xf];
                esc[11] = hex[lo & 0xf];
                elen = 12;
            }
        }

        if (zarr_buf_add(b, esc, elen) != 0) {
            goto failed;
        }

        p++;
        run = p;
    }

    if (zarr_buf_add(b, run, p - run) != 0 || zarr_buf_add(b, "\"", 1) != 0)
    {
        goto failed;
    }

    return 0;

failed:

    b->len = start;

    return -1;
}
