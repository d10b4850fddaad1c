
/*
 * zarr_listing: listing lines for zarrctl (see zarr_listing.h).
 */


#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "zarr_listing.h"


static size_t zarr_listing_chomp(const char *line, size_t len);
static int zarr_listing_etag(zarr_listing_entry_t *e, char *err,
    size_t errlen);
static void zarr_listing_quote(char *out, size_t size, const char *s,
    size_t len);


/* the length without the line end: "\n" or "\r\n" */

static size_t
zarr_listing_chomp(const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\n') {
        len--;

        if (len > 0 && line[len - 1] == '\r') {
            len--;
        }
    }

    return len;
}


/*
 * Cuts the quotes S3 lists ETags with and refuses control bytes: an ETag
 * is printed in manifests and documents, where a NUL, TAB or CR would
 * not survive (DESIGN section 2).
 */

static int
zarr_listing_etag(zarr_listing_entry_t *e, char *err, size_t errlen)
{
    size_t                i;
    const unsigned char  *p;

    if (e->etag_len >= 2 && e->etag[0] == '"'
        && e->etag[e->etag_len - 1] == '"')
    {
        e->etag++;
        e->etag_len -= 2;
    }

    p = (const unsigned char *) e->etag;

    for (i = 0; i < e->etag_len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f) {
            snprintf(err, errlen, "control byte 0x%02x in the ETag at "
                     "offset %zu", p[i], i);
            return ZARR_LISTING_MALFORMED;
        }
    }

    return ZARR_LISTING_OK;
}


/* s as a C-like quoted string, non-printable bytes as \xNN, cut short */

static void
zarr_listing_quote(char *out, size_t size, const char *s, size_t len)
{
    size_t          i, n;
    unsigned char   c;

    n = 0;

    for (i = 0; i < len && n + 8 < size; i++) {
        c = (unsigned char) s[i];

        if (i == 32) {
            n += snprintf(out + n, size - n, "...");
            break;
        }

        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            n += snprintf(out + n, size - n, "\\x%02x", c);

        } else {
            out[n++] = c;
        }
    }

    out[n] = '\0';
}


int
zarr_listing_tsv(const char *line, size_t len, zarr_listing_entry_t *e,
    char *err, size_t errlen)
{
    char         shown[64 * 4 + 8];
    size_t       i;
    uint64_t     v;
    const char  *tab1, *tab2, *end;

    memset(e, 0, sizeof(zarr_listing_entry_t));

    len = zarr_listing_chomp(line, len);

    if (len == 0) {
        return ZARR_LISTING_BLANK;
    }

    end = line + len;

    tab2 = memrchr(line, '\t', len);
    tab1 = tab2 ? memrchr(line, '\t', tab2 - line) : NULL;

    if (tab1 == NULL) {
        snprintf(err, errlen, "expected PATH<TAB>SIZE<TAB>ETAG");
        return ZARR_LISTING_MALFORMED;
    }

    v = 0;

    for (i = 1; tab1 + i < tab2; i++) {
        if (tab1[i] < '0' || tab1[i] > '9'
            || v > (UINT64_MAX - (tab1[i] - '0')) / 10)
        {
            break;
        }

        v = v * 10 + (tab1[i] - '0');
    }

    if (i == 1 || tab1 + i != tab2) {
        zarr_listing_quote(shown, sizeof(shown), tab1 + 1, tab2 - tab1 - 1);
        snprintf(err, errlen, "bad size \"%s\"", shown);
        return ZARR_LISTING_MALFORMED;
    }

    e->path = line;
    e->path_len = tab1 - line;
    e->size = v;
    e->etag = tab2 + 1;
    e->etag_len = end - tab2 - 1;

    return zarr_listing_etag(e, err, errlen);
}


int
zarr_listing_jsonl(const char *line, size_t len, zarr_listing_entry_t *e,
    char *err, size_t errlen)
{
    int            rc;
    size_t         i;
    json_t        *j, *path, *size, *etag;
    json_error_t   jerr;

    memset(e, 0, sizeof(zarr_listing_entry_t));

    for (i = 0; i < len; i++) {
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\n'
            && line[i] != '\r')
        {
            break;
        }
    }

    if (i == len) {
        return ZARR_LISTING_BLANK;
    }

    j = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
    if (j == NULL) {
        snprintf(err, errlen, "%s", jerr.text);
        return json_error_code(&jerr) == json_error_out_of_memory
               ? ZARR_LISTING_NOMEM : ZARR_LISTING_MALFORMED;
    }

    path = json_object_get(j, "path");
    size = json_object_get(j, "size");
    etag = json_object_get(j, "etag");

    if (!json_is_string(path) || !json_is_integer(size)
        || json_integer_value(size) < 0 || !json_is_string(etag))
    {
        json_decref(j);
        snprintf(err, errlen, "expected {\"path\":string,"
                 "\"size\":integer >= 0,\"etag\":string}");
        return ZARR_LISTING_MALFORMED;
    }

    e->path = json_string_value(path);
    e->path_len = json_string_length(path);
    e->size = (uint64_t) json_integer_value(size);
    e->etag = json_string_value(etag);
    e->etag_len = json_string_length(etag);
    e->json = j;

    rc = zarr_listing_etag(e, err, errlen);

    if (rc != ZARR_LISTING_OK) {
        zarr_listing_entry_free(e);
    }

    return rc;
}


void
zarr_listing_entry_free(zarr_listing_entry_t *e)
{
    if (e->json) {
        json_decref(e->json);
    }

    memset(e, 0, sizeof(zarr_listing_entry_t));
}
