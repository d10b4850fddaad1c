
/*
 * DANDI-compatible manifest serialisation and directory digests.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zarr_digest.h"
#include "zarr_hash.h"


/* hash pending bytes in chunks of this size when not keeping them */
#define ZARR_MANIFEST_CHUNK  65536


static int zarr_manifest_entry(zarr_manifest_t *m, int state,
    const char *name, size_t name_len);
static int zarr_manifest_drain(zarr_manifest_t *m);
static int zarr_entry_cmp(const void *a, const void *b);


int
zarr_name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int     rc;
    size_t  n;

    /* memcmp() must not see NULL, even for 0 bytes (an empty name) */

    n = alen < blen ? alen : blen;
    rc = n ? memcmp(a, b, n) : 0;

    if (rc != 0) {
        return rc;
    }

    return (alen > blen) - (alen < blen);
}


int
zarr_manifest_init(zarr_manifest_t *m, int keep)
{
    memset(m, 0, sizeof(zarr_manifest_t));
    zarr_buf_init(&m->buf);
    m->keep = keep;

    m->md5 = zarr_hash_create(ZARR_HASH_MD5);
    if (m->md5 == NULL) {
        return ZARR_ERR_NOMEM;
    }

    if (zarr_buf_add(&m->buf, "{\"directories\":[", 16) != 0) {
        return ZARR_ERR_NOMEM;
    }

    return ZARR_OK;
}


void
zarr_manifest_free(zarr_manifest_t *m)
{
    if (m->md5) {
        zarr_hash_destroy(m->md5);
        m->md5 = NULL;
    }

    zarr_buf_free(&m->buf);
    free(m->last);
    m->last = NULL;
}


static int
zarr_manifest_drain(zarr_manifest_t *m)
{
    if (m->keep || m->buf.len < ZARR_MANIFEST_CHUNK) {
        return ZARR_OK;
    }

    if (zarr_hash_update(m->md5, m->buf.data, m->buf.len) != 0) {
        return ZARR_ERR_NOMEM;
    }

    m->buf.len = 0;

    return ZARR_OK;
}


/*
 * Opens an entry of the given group: checks the order, writes the
 * separators and the "digest" key's prefix.
 */

static int
zarr_manifest_entry(zarr_manifest_t *m, int state, const char *name,
    size_t name_len)
{
    char  *p;

    if (state < m->state) {
        return ZARR_ERR_INVALID;
    }

    if (state == m->state) {
        if (zarr_name_cmp(m->last, m->last_len, name, name_len) >= 0) {
            return ZARR_ERR_INVALID;
        }

        if (zarr_buf_add(&m->buf, ",", 1) != 0) {
            return ZARR_ERR_NOMEM;
        }

    } else if (state == 2) {
        if (zarr_buf_add(&m->buf, "],\"files\":[", 11) != 0) {
            return ZARR_ERR_NOMEM;
        }
    }

    m->state = state;

    if (name_len > m->last_cap) {
        p = realloc(m->last, name_len + 64);
        if (p == NULL) {
            return ZARR_ERR_NOMEM;
        }

        m->last = p;
        m->last_cap = name_len + 64;
    }

    /* m->last is still NULL for a first, empty name */

    if (name_len) {
        memcpy(m->last, name, name_len);
    }

    m->last_len = name_len;

    if (zarr_buf_add(&m->buf, "{\"digest\":\"", 11) != 0) {
        return ZARR_ERR_NOMEM;
    }

    return ZARR_OK;
}


int
zarr_manifest_add_dir(zarr_manifest_t *m, const char *name, size_t name_len,
    const char *digest, uint64_t count, uint64_t size)
{
    int  rc;

    rc = zarr_manifest_entry(m, 1, name, name_len);
    if (rc != ZARR_OK) {
        return rc;
    }

    /* a digest is hex, digits and dashes: nothing to escape */

    if (zarr_buf_add_str(&m->buf, digest) != 0
        || zarr_buf_add(&m->buf, "\",\"name\":", 9) != 0)
    {
        return ZARR_ERR_NOMEM;
    }

    rc = zarr_json_add_string(&m->buf, name, name_len);
    if (rc != 0) {
        return rc == -2 ? ZARR_ERR_INVALID : ZARR_ERR_NOMEM;
    }

    if (zarr_buf_add(&m->buf, ",\"size\":", 8) != 0
        || zarr_buf_add_u64(&m->buf, size) != 0
        || zarr_buf_add(&m->buf, "}", 1) != 0)
    {
        return ZARR_ERR_NOMEM;
    }

    m->count += count;
    m->size += size;

    return zarr_manifest_drain(m);
}


int
zarr_manifest_add_file(zarr_manifest_t *m, const char *name,
    size_t name_len, const char *etag, size_t etag_len, uint64_t size)
{
    int     rc;
    size_t  start;

    rc = zarr_manifest_entry(m, 2, name, name_len);
    if (rc != ZARR_OK) {
        return rc;
    }

    /* the ETag is a JSON string too: escape it, minus its quotes */

    start = m->buf.len;

    rc = zarr_json_add_string(&m->buf, etag, etag_len);
    if (rc != 0) {
        return rc == -2 ? ZARR_ERR_INVALID : ZARR_ERR_NOMEM;
    }

    memmove(m->buf.data + start, m->buf.data + start + 1,
            m->buf.len - start - 1);
    m->buf.len--;

    if (zarr_buf_add(&m->buf, ",\"name\":", 8) != 0) {
        return ZARR_ERR_NOMEM;
    }

    rc = zarr_json_add_string(&m->buf, name, name_len);
    if (rc != 0) {
        return rc == -2 ? ZARR_ERR_INVALID : ZARR_ERR_NOMEM;
    }

    if (zarr_buf_add(&m->buf, ",\"size\":", 8) != 0
        || zarr_buf_add_u64(&m->buf, size) != 0
        || zarr_buf_add(&m->buf, "}", 1) != 0)
    {
        return ZARR_ERR_NOMEM;
    }

    m->count++;
    m->size += size;

    return zarr_manifest_drain(m);
}


int
zarr_manifest_finish(zarr_manifest_t *m, zarr_dir_sum_t *sum)
{
    char  hexmd[ZARR_MD5_HEX_LEN + 1];

    if (m->state < 2) {
        if (zarr_buf_add(&m->buf, "],\"files\":[", 11) != 0) {
            return ZARR_ERR_NOMEM;
        }
    }

    if (zarr_buf_add(&m->buf, "]}", 2) != 0) {
        return ZARR_ERR_NOMEM;
    }

    if (zarr_hash_update(m->md5, m->buf.data, m->buf.len) != 0
        || zarr_hash_final_hex(m->md5, hexmd) != 0)
    {
        return ZARR_ERR_NOMEM;
    }

    snprintf(sum->digest, ZARR_DIGEST_MAX, "%s-%llu--%llu", hexmd,
             (unsigned long long) m->count, (unsigned long long) m->size);
    sum->count = m->count;
    sum->size = m->size;

    return ZARR_OK;
}


int
zarr_checksum_document(zarr_buf_t *out, const char *manifest,
    size_t manifest_len, const zarr_dir_sum_t *sum)
{
    if (zarr_buf_add(out, "{\"checksums\":", 13) != 0
        || zarr_buf_add(out, manifest, manifest_len) != 0
        || zarr_buf_add(out, ",\"digest\":\"", 11) != 0
        || zarr_buf_add_str(out, sum->digest) != 0
        || zarr_buf_add(out, "\",\"size\":", 9) != 0
        || zarr_buf_add_u64(out, sum->size) != 0
        || zarr_buf_add(out, "}", 1) != 0)
    {
        return ZARR_ERR_NOMEM;
    }

    return ZARR_OK;
}


int
zarr_digest_count(const char *digest, size_t len, uint64_t *count)
{
    size_t    i;
    uint64_t  n;

    /* 32 hex digits, '-', digits, "--", digits */

    if (len < 37 || digest[32] != '-') {
        return ZARR_ERR_INVALID;
    }

    n = 0;

    for (i = 33; i < len && digest[i] >= '0' && digest[i] <= '9'; i++) {
        if (n > (UINT64_MAX - 9) / 10) {
            return ZARR_ERR_INVALID;
        }

        n = n * 10 + (digest[i] - '0');
    }

    if (i == 33 || i + 2 >= len || digest[i] != '-' || digest[i + 1] != '-')
    {
        return ZARR_ERR_INVALID;
    }

    *count = n;

    return ZARR_OK;
}


static int
zarr_entry_cmp(const void *a, const void *b)
{
    const zarr_entry_t  *x = a;
    const zarr_entry_t  *y = b;

    return zarr_name_cmp(x->name, x->name_len, y->name, y->name_len);
}


int
zarr_manifest_build(zarr_entry_t *dirs, size_t ndirs, zarr_entry_t *files,
    size_t nfiles, zarr_dir_sum_t *sum, zarr_buf_t *manifest)
{
    int              rc;
    char             digest[ZARR_DIGEST_MAX];
    size_t           i;
    uint64_t         count;
    zarr_manifest_t  m;

    /* qsort() must not see NULL, even with no entries (C99 7.20.5) */

    if (ndirs > 1) {
        qsort(dirs, ndirs, sizeof(zarr_entry_t), zarr_entry_cmp);
    }

    if (nfiles > 1) {
        qsort(files, nfiles, sizeof(zarr_entry_t), zarr_entry_cmp);
    }

    rc = zarr_manifest_init(&m, manifest != NULL);

    for (i = 0; rc == ZARR_OK && i < ndirs; i++) {
        if (dirs[i].digest_len >= ZARR_DIGEST_MAX
            || zarr_digest_count(dirs[i].digest, dirs[i].digest_len, &count)
               != ZARR_OK)
        {
            rc = ZARR_ERR_INVALID;
            break;
        }

        memcpy(digest, dirs[i].digest, dirs[i].digest_len);
        digest[dirs[i].digest_len] = '\0';

        rc = zarr_manifest_add_dir(&m, dirs[i].name, dirs[i].name_len,
                                   digest, count, dirs[i].size);
    }

    for (i = 0; rc == ZARR_OK && i < nfiles; i++) {
        rc = zarr_manifest_add_file(&m, files[i].name, files[i].name_len,
                                    files[i].digest, files[i].digest_len,
                                    files[i].size);
    }

    if (rc == ZARR_OK) {
        rc = zarr_manifest_finish(&m, sum);
    }

    if (rc == ZARR_OK && manifest
        && zarr_buf_add(manifest, m.buf.data, m.buf.len) != 0)
    {
        rc = ZARR_ERR_NOMEM;
    }

    zarr_manifest_free(&m);

    return rc;
}
