
/*
 * POST object forms: the boundary, the fields up to the file part, the
 * key with "${filename}" resolved.  See zarr_form.h.
 */


#include <string.h>
#include <strings.h>

#include "zarr_form.h"


#define ZARR_FORM_FILENAME_VAR      "${filename}"
#define ZARR_FORM_FILENAME_VAR_LEN  (sizeof(ZARR_FORM_FILENAME_VAR) - 1)


/* what zarr_form_disposition() found in a Content-Disposition value */
typedef struct {
    const char    *name;
    size_t         name_len;
    const char    *filename;
    size_t         filename_len;
    int            filename_odd;
} zarr_form_disposition_t;


static const char *zarr_form_find(const char *p, size_t len,
    const char *s, size_t n);
static int zarr_form_is(const char *p, size_t len, const char *name);
static const char *zarr_form_skip_ws(const char *p, const char *end);
static int zarr_form_param(const char **pos, const char *end,
    const char **name, size_t *name_len, const char **value,
    size_t *value_len, int *odd);
static int zarr_form_disposition(const char *p, size_t len,
    zarr_form_disposition_t *d);
static int zarr_form_fail(zarr_form_t *form, int rc, const char *error);
static int zarr_form_after_boundary(const char **pos, const char *end,
    zarr_form_t *form);


/* the first s (n bytes, n > 0) in p, or NULL: memmem() is not C99 */

static const char *
zarr_form_find(const char *p, size_t len, const char *s, size_t n)
{
    const char  *end;

    if (len < n) {
        return NULL;
    }

    end = p + len - n + 1;

    while (p < end) {
        p = memchr(p, s[0], end - p);

        if (p == NULL) {
            return NULL;
        }

        if (memcmp(p, s, n) == 0) {
            return p;
        }

        p++;
    }

    return NULL;
}


/* case-insensitive equality with a NUL-terminated name */

static int
zarr_form_is(const char *p, size_t len, const char *name)
{
    return len == strlen(name) && strncasecmp(p, name, len) == 0;
}


static const char *
zarr_form_skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    return p;
}


/*
 * The next "; name=value" of a header value from *pos.  A quoted value
 * ends at the next '"': escapes are not processed, and a '\\' or ';'
 * inside sets *odd (parsers differ on them).  Returns 1, 0 at the end, or
 * -1 when malformed.
 */

static int
zarr_form_param(const char **pos, const char *end, const char **name,
    size_t *name_len, const char **value, size_t *value_len, int *odd)
{
    const char  *p, *q;

    *odd = 0;

    p = zarr_form_skip_ws(*pos, end);

    if (p == end) {
        *pos = p;
        return 0;
    }

    if (*p != ';') {
        return -1;
    }

    p = zarr_form_skip_ws(p + 1, end);

    for (q = p; q < end && *q != '=' && *q != ';' && *q != ' '
                && *q != '\t' && *q != '"'; q++)
    {
        /* void */
    }

    if (q == p) {
        return -1;
    }

    *name = p;
    *name_len = q - p;

    p = zarr_form_skip_ws(q, end);

    if (p == end || *p != '=') {
        return -1;
    }

    p = zarr_form_skip_ws(p + 1, end);

    if (p < end && *p == '"') {
        p++;

        q = memchr(p, '"', end - p);
        if (q == NULL) {
            return -1;
        }

        *value = p;
        *value_len = q - p;

        if (memchr(p, '\\', q - p) || memchr(p, ';', q - p)) {
            *odd = 1;
        }

        *pos = q + 1;
        return 1;
    }

    for (q = p; q < end && *q != ';' && *q != ' ' && *q != '\t'; q++) {
        if (*q == '"' || *q == '\\') {
            return -1;
        }
    }

    *value = p;
    *value_len = q - p;
    *pos = q;

    return 1;
}


/* "form-data; name=...[; filename=...]" */

static int
zarr_form_disposition(const char *p, size_t len, zarr_form_disposition_t *d)
{
    int          rc, odd;
    size_t       name_len, value_len;
    const char  *end, *q, *name, *value;

    memset(d, 0, sizeof(zarr_form_disposition_t));

    end = p + len;
    p = zarr_form_skip_ws(p, end);

    for (q = p; q < end && *q != ';' && *q != ' ' && *q != '\t'; q++) {
        /* void */
    }

    if (!zarr_form_is(p, q - p, "form-data")) {
        return -1;
    }

    p = q;

    while ((rc = zarr_form_param(&p, end, &name, &name_len, &value,
                                 &value_len, &odd))
           == 1)
    {
        if (zarr_form_is(name, name_len, "name")) {
            if (d->name || odd) {
                return -1;
            }

            d->name = value;
            d->name_len = value_len;

        } else if (zarr_form_is(name, name_len, "filename")) {
            if (d->filename) {
                return -1;
            }

            d->filename = value;
            d->filename_len = value_len;
            d->filename_odd = odd;
        }
    }

    if (rc < 0 || d->name == NULL) {
        return -1;
    }

    return 0;
}


static int
zarr_form_fail(zarr_form_t *form, int rc, const char *error)
{
    form->error = error;

    return rc;
}


int
zarr_form_boundary(const char *content_type, size_t len,
    const char **boundary, size_t *boundary_len)
{
    int          rc, odd;
    size_t       name_len, value_len;
    const char  *p, *q, *end, *name, *value;

    *boundary = NULL;
    *boundary_len = 0;

    if (content_type == NULL) {
        return -1;
    }

    p = content_type;
    end = p + len;
    p = zarr_form_skip_ws(p, end);

    for (q = p; q < end && *q != ';' && *q != ' ' && *q != '\t'; q++) {
        /* void */
    }

    if (!zarr_form_is(p, q - p, "multipart/form-data")) {
        return -1;
    }

    p = q;

    while ((rc = zarr_form_param(&p, end, &name, &name_len, &value,
                                 &value_len, &odd))
           == 1)
    {
        if (!zarr_form_is(name, name_len, "boundary")) {
            continue;
        }

        if (*boundary || odd || value_len == 0
            || value_len > ZARR_FORM_BOUNDARY_MAX)
        {
            return -1;
        }

        *boundary = value;
        *boundary_len = value_len;
    }

    if (rc < 0 || *boundary == NULL) {
        *boundary = NULL;
        *boundary_len = 0;
        return -1;
    }

    return 0;
}


/*
 * After a delimiter: "--" closes the form, else optional white space and
 * CRLF start a part.  Returns 1 (a part follows, *pos at its headers), 0
 * (closed) or an error code.
 */

static int
zarr_form_after_boundary(const char **pos, const char *end,
    zarr_form_t *form)
{
    const char  *p;

    p = *pos;

    if (end - p < 2) {
        return zarr_form_fail(form, ZARR_FORM_INCOMPLETE,
                              "the form ends before its file field");
    }

    if (p[0] == '-' && p[1] == '-') {
        return 0;
    }

    p = zarr_form_skip_ws(p, end);

    if (end - p < 2) {
        return zarr_form_fail(form, ZARR_FORM_INCOMPLETE,
                              "the form ends before its file field");
    }

    if (p[0] != '\r' || p[1] != '\n') {
        return zarr_form_fail(form, ZARR_FORM_MALFORMED,
                              "no CRLF after a form boundary");
    }

    *pos = p + 2;

    return 1;
}


int
zarr_form_parse(const char *body, size_t len, const char *boundary,
    size_t boundary_len, zarr_form_t *form)
{
    int                       rc, file, have_cd;
    char                      delim[ZARR_FORM_BOUNDARY_MAX + 4];
    size_t                    delim_len, headers;
    const char               *p, *end, *eol, *colon, *data;
    zarr_form_disposition_t   d;

    memset(form, 0, sizeof(zarr_form_t));

    if (boundary_len == 0 || boundary_len > ZARR_FORM_BOUNDARY_MAX) {
        return zarr_form_fail(form, ZARR_FORM_MALFORMED, "bad boundary");
    }

    /* "\r\n--boundary" ends each part; the first may lack the CRLF */

    delim[0] = '\r';
    delim[1] = '\n';
    delim[2] = '-';
    delim[3] = '-';
    memcpy(delim + 4, boundary, boundary_len);
    delim_len = boundary_len + 4;

    end = body + len;

    if (len >= delim_len - 2 && memcmp(body, delim + 2, delim_len - 2) == 0) {
        p = body + delim_len - 2;

    } else {
        /* a preamble before the first delimiter */
        p = zarr_form_find(body, len, delim, delim_len);

        if (p == NULL) {
            return zarr_form_fail(form,
                                  len > ZARR_FORM_HEADERS_MAX + delim_len
                                  ? ZARR_FORM_MALFORMED
                                  : ZARR_FORM_INCOMPLETE,
                                  "no form boundary in the body");
        }

        p += delim_len;
    }

    for ( ;; ) {
        rc = zarr_form_after_boundary(&p, end, form);

        if (rc == 0) {
            return zarr_form_fail(form, ZARR_FORM_MALFORMED,
                                  "the form has no file field");
        }

        if (rc < 0) {
            return rc;
        }

        /* the part's headers, up to an empty line */

        headers = 0;
        have_cd = 0;
        memset(&d, 0, sizeof(zarr_form_disposition_t));

        for ( ;; ) {
            eol = zarr_form_find(p, end - p, "\r\n", 2);

            if (eol == NULL || headers + (eol - p) > ZARR_FORM_HEADERS_MAX) {
                if (eol || headers + (end - p) > ZARR_FORM_HEADERS_MAX) {
                    return zarr_form_fail(form, ZARR_FORM_MALFORMED,
                                          "form part headers too long");
                }

                return zarr_form_fail(form, ZARR_FORM_INCOMPLETE,
                                      "the form ends in part headers");
            }

            headers += eol - p + 2;

            if (eol == p) {
                p += 2;
                break;
            }

            if (*p == ' ' || *p == '\t') {
                return zarr_form_fail(form, ZARR_FORM_MALFORMED,
                                      "folded form part header");
            }

            colon = memchr(p, ':', eol - p);
            if (colon == NULL) {
                return zarr_form_fail(form, ZARR_FORM_MALFORMED,
                                      "form part header without \":\"");
            }

            if (zarr_form_is(p, colon - p, "Content-Disposition")) {
                if (have_cd
                    || zarr_form_disposition(colon + 1, eol - colon - 1, &d)
                       != 0)
                {
                    return zarr_form_fail(form, ZARR_FORM_MALFORMED,
                                          "bad Content-Disposition in a "
                                          "form part");
                }

                have_cd = 1;
            }

            p = eol + 2;
        }

        if (!have_cd) {
            return zarr_form_fail(form, ZARR_FORM_MALFORMED,
                                  "a form part without Content-Disposition");
        }

        file = zarr_form_is(d.name, d.name_len, "file");

        if (file) {
            form->filename = d.filename;
            form->filename_len = d.filename_len;
            form->filename_odd = d.filename_odd;
            form->file_offset = p - body;

            if (form->key_count == 0) {
                return zarr_form_fail(form, ZARR_FORM_NO_KEY,
                                      "the form has no key field before "
                                      "its file field");
            }

            if (form->key_count > 1) {
                return zarr_form_fail(form, ZARR_FORM_AMBIGUOUS,
                                      "the form has more than one key "
                                      "field");
            }

            return ZARR_FORM_OK;
        }

        data = p;
        p = zarr_form_find(p, end - p, delim, delim_len);

        if (p == NULL) {
            return zarr_form_fail(form, ZARR_FORM_INCOMPLETE,
                                  "the form ends in a field");
        }

        if (zarr_form_is(d.name, d.name_len, "key")) {
            if (form->key_count++ == 0) {
                form->key = data;
                form->key_len = p - data;
            }
        }

        p += delim_len;
    }
}


int
zarr_form_key(const zarr_form_t *form, char *buf, size_t size,
    const char **key, size_t *key_len)
{
    size_t       head, tail;
    const char  *var, *after;

    *key = form->key;
    *key_len = form->key_len;

    if (form->key == NULL) {
        return ZARR_FORM_NO_KEY;
    }

    var = zarr_form_find(form->key, form->key_len, ZARR_FORM_FILENAME_VAR,
                 ZARR_FORM_FILENAME_VAR_LEN);

    if (var == NULL) {
        return ZARR_FORM_OK;
    }

    after = var + ZARR_FORM_FILENAME_VAR_LEN;
    head = var - form->key;
    tail = form->key + form->key_len - after;

    if (form->filename == NULL || form->filename_odd
        || zarr_form_find(after, tail, ZARR_FORM_FILENAME_VAR,
                  ZARR_FORM_FILENAME_VAR_LEN))
    {
        return ZARR_FORM_AMBIGUOUS;
    }

    if (size < head + form->filename_len + tail) {
        return -1;
    }

    memcpy(buf, form->key, head);
    memcpy(buf + head, form->filename, form->filename_len);
    memcpy(buf + head + form->filename_len, after, tail);

    *key = buf;
    *key_len = head + form->filename_len + tail;

    return ZARR_FORM_OK;
}
