/*
 * Unit tests of the snapshots in the store (zarr_snap.c): taken in small
 * transactions, equal to the draft at that moment while the draft moves
 * on, listed, scanned as S3 lists, their .checksum documents, the held
 * versions, the errors, and nothing left behind by a failure or a delete.
 */

#include "zarr_test.h"

#include "zarr_tree.h"
#include "zarr_snap.h"


#define B   "bkt"
#define BL  3


typedef struct {
    const char  *path;
    const char  *etag;
    uint64_t     size;
    const char  *version;
} file_t;


static const file_t  files[] = {
    { ".zgroup", "e1", 2, "v1" },
    { "a/.zarray", "e2", 10, "v2" },
    { "a/0.0", "e3", 100, "v3" },
    { "a/0.1", "e4", 101, "v4" },
    { "a/b/c/deep", "e5", 5, "v5" },
    { "a.b", "e6", 6, "v6" },
    { "a/1.0", "e7", 102, "v7" },
    { "z", "e8", 8, "v8" },
};

#define NFILES  (sizeof(files) / sizeof(files[0]))


static zarr_mutation_t
mut(int op, const char *zarr, const char *path, const char *etag,
    uint64_t size, const char *version)
{
    zarr_mutation_t  m;

    memset(&m, 0, sizeof(zarr_mutation_t));
    m.op = op;
    m.bucket = B;
    m.bucket_len = BL;
    m.zarr_id = zarr;
    m.zarr_id_len = strlen(zarr);
    m.path = path;
    m.path_len = strlen(path);
    m.etag = etag;
    m.etag_len = etag ? strlen(etag) : 0;
    m.size = size;
    m.version_id = version;
    m.version_id_len = version ? strlen(version) : 0;

    return m;
}


static void
apply1(zarr_store_t *s, zarr_mutation_t m)
{
    size_t      bad;
    zarr_err_t  err;

    if (zarr_store_apply(s, &m, 1, &bad, &err) != ZARR_OK) {
        fail_msg("apply: %s", err.msg);
    }
}


static zarr_store_t *
setup(char **dir)
{
    size_t         i;
    zarr_err_t     err;
    zarr_store_t  *s;

    *dir = zarr_test_tmpdir();

    if (zarr_store_open(&s, *dir, 64 << 20, ZARR_STORE_NOSYNC, &err)
        != ZARR_OK)
    {
        fail_msg("open: %s", err.msg);
    }

    for (i = 0; i < NFILES; i++) {
        apply1(s, mut(ZARR_MUT_PUT, "z", files[i].path, files[i].etag,
                      files[i].size, files[i].version));
    }

    return s;
}


static void
teardown(zarr_store_t *s, char *dir)
{
    zarr_store_close(s);
    zarr_test_rmdir(dir);
    free(dir);
}


/* the .checksum document of a draft directory, as a string */

static char *
draft_doc(zarr_store_t *s, const char *dir)
{
    char        *out;
    zarr_buf_t   doc;
    zarr_err_t   err;

    zarr_buf_init(&doc);
    assert_int_equal(zarr_store_checksum_doc(s, B, BL, "z", 1, dir,
                                             strlen(dir), &doc, &err),
                     ZARR_OK);
    out = strndup(doc.data, doc.len);
    zarr_buf_free(&doc);

    return out;
}


static char *
snap_doc(zarr_store_t *s, const char *name, const char *dir, int *rc)
{
    char        *out;
    zarr_buf_t   doc;
    zarr_err_t   err;

    zarr_buf_init(&doc);
    *rc = zarr_snap_checksum_doc(s, B, BL, "z", 1, name, strlen(name), dir,
                                 strlen(dir), &doc, &err);
    out = *rc == ZARR_OK ? strndup(doc.data, doc.len) : NULL;
    zarr_buf_free(&doc);

    return out;
}


static const char  *dirs[] = { "", "a", "a/b", "a/b/c" };


static void
test_create_and_read(void **state)
{
    int              rc;
    char            *dir, *d1, *d2, name[ZARR_SNAP_NAME_MAX + 1];
    size_t           i;
    zarr_err_t       err;
    zarr_snap_t      snap, got;
    zarr_store_t    *s;
    zarr_dir_sum_t   sum;
    zarr_snap_file_t f;
    char            *before[4];

    (void) state;

    s = setup(&dir);

    assert_int_equal(zarr_store_get_zarr(s, B, BL, "z", 1, &sum, &err),
                     ZARR_OK);

    for (i = 0; i < 4; i++) {
        before[i] = draft_doc(s, dirs[i]);
    }

    /* chunk 3: many small transactions */
    rc = zarr_snap_create(s, B, BL, "z", 1, "v1", 2, 1700000000, 3, &snap,
                          &err);
    assert_int_equal(rc, ZARR_OK);
    assert_string_equal(snap.sum.digest, sum.digest);
    assert_true(snap.sum.count == NFILES);
    assert_true(snap.sum.size == sum.size);
    assert_true(snap.created == 1700000000);

    /* the draft moves on */
    apply1(s, mut(ZARR_MUT_PUT, "z", "a/0.0", "x3", 7, "v33"));
    apply1(s, mut(ZARR_MUT_DELETE, "z", "a/b/c/deep", NULL, 0, NULL));
    apply1(s, mut(ZARR_MUT_PUT, "z", "new", "x9", 9, "v9"));

    assert_int_equal(zarr_snap_get(s, B, BL, "z", 1, "v1", 2, &got, &err),
                     ZARR_OK);
    assert_string_equal(got.sum.digest, sum.digest);
    assert_true(got.id == snap.id);

    for (i = 0; i < 4; i++) {
        d1 = snap_doc(s, "v1", dirs[i], &rc);
        assert_int_equal(rc, ZARR_OK);
        assert_string_equal(d1, before[i]);
        free(d1);
        free(before[i]);
    }

    d2 = snap_doc(s, "v1", "a/0.0", &rc);
    assert_int_equal(rc, ZARR_ERR_NOTFOUND);
    d2 = snap_doc(s, "v1", "nope", &rc);
    assert_int_equal(rc, ZARR_ERR_NOTFOUND);
    d2 = snap_doc(s, "v9", "", &rc);
    assert_int_equal(rc, ZARR_ERR_NOTFOUND);
    (void) d2;

    /* files: the recorded versions */
    assert_int_equal(zarr_snap_file(s, snap.id, "a/0.0", 5, &f, &err),
                     ZARR_OK);
    assert_string_equal(f.etag, "e3");
    assert_string_equal(f.version, "v3");
    assert_true(f.size == 100);
    assert_int_equal(zarr_snap_file(s, snap.id, "a/b/c/deep", 10, &f, &err),
                     ZARR_OK);
    assert_int_equal(zarr_snap_file(s, snap.id, "new", 3, &f, &err),
                     ZARR_ERR_NOTFOUND);
    assert_int_equal(zarr_snap_file(s, snap.id, "a", 1, &f, &err),
                     ZARR_ERR_NOTFOUND);

    /* held: the snapshot's versions, not the draft's new ones */
    assert_int_equal(zarr_snap_held(s, B, BL, "z", 1, "a/0.0", 5, "v3", 2,
                                    name, &err), ZARR_OK);
    assert_string_equal(name, "v1");
    assert_int_equal(zarr_snap_held(s, B, BL, "z", 1, "a/0.0", 5, "v33", 3,
                                    name, &err), ZARR_ERR_NOTFOUND);
    assert_int_equal(zarr_snap_held(s, B, BL, "z", 1, "a/0.0", 5, "v", 1,
                                    name, &err), ZARR_ERR_NOTFOUND);
    assert_int_equal(zarr_snap_held(s, B, BL, "z", 1, "a/0.", 4, "v3", 2,
                                    name, &err), ZARR_ERR_NOTFOUND);
    assert_int_equal(zarr_snap_held(s, B, BL, "y", 1, "a/0.0", 5, "v3", 2,
                                    name, &err), ZARR_ERR_NOTFOUND);

    /* a second snapshot of the new state */
    rc = zarr_snap_create(s, B, BL, "z", 1, "v2", 2, 1700000001, 0, &got,
                          &err);
    assert_int_equal(rc, ZARR_OK);
    assert_string_not_equal(got.sum.digest, snap.sum.digest);
    assert_true(got.id != snap.id);
    assert_int_equal(zarr_store_get_zarr(s, B, BL, "z", 1, &sum, &err),
                     ZARR_OK);
    assert_string_equal(got.sum.digest, sum.digest);

    teardown(s, dir);
}


typedef struct {
    char      names[256];
    size_t    n;
} names_t;


static int
collect_name(void *ctx, const zarr_snap_t *snap)
{
    names_t  *c = ctx;
    size_t    len;

    len = strlen(c->names);
    snprintf(c->names + len, sizeof(c->names) - len, "%.*s;",
             (int) snap->name_len, snap->name);
    c->n++;

    return 0;
}


static void
test_errors_list_delete(void **state)
{
    char            *dir, name[ZARR_SNAP_NAME_MAX + 1];
    zarr_err_t       err;
    zarr_snap_t      snap;
    zarr_store_t    *s;
    names_t          c;
    zarr_store_stat_t st0, st1;
    char             long_name[66];

    (void) state;

    s = setup(&dir);

    assert_int_equal(zarr_store_stat(s, &st0, &err), ZARR_OK);

    assert_int_equal(zarr_snap_create(s, B, BL, "z", 1, "b", 1, 1, 0, &snap,
                                      &err), ZARR_OK);
    assert_int_equal(zarr_snap_create(s, B, BL, "z", 1, "a.1_-X", 6, 1, 0,
                                      &snap, &err), ZARR_OK);
    assert_int_equal(zarr_snap_create(s, B, BL, "z", 1, "b", 1, 1, 0, &snap,
                                      &err), ZARR_ERR_EXISTS);
    assert_int_equal(zarr_snap_create(s, B, BL, "none", 4, "b", 1, 1, 0,
                                      &snap, &err), ZARR_ERR_NOTFOUND);
    assert_int_equal(zarr_snap_create(s, B, BL, "z", 1, "a/b", 3, 1, 0,
                                      &snap, &err), ZARR_ERR_INVALID);
    assert_int_equal(zarr_snap_create(s, B, BL, "z", 1, "", 0, 1, 0,
                                      &snap, &err), ZARR_ERR_INVALID);
    assert_int_equal(zarr_snap_create(s, B, BL, "z", 1, ".", 1, 1, 0,
                                      &snap, &err), ZARR_ERR_INVALID);
    assert_int_equal(zarr_snap_create(s, B, BL, "z", 1, "..", 2, 1, 0,
                                      &snap, &err), ZARR_ERR_INVALID);
    assert_true(zarr_snap_name_valid("...", 3));
    assert_true(zarr_snap_name_valid(".v1", 3));
    assert_true(zarr_snap_name_valid("v1..", 4));
    memset(long_name, 'n', 65);
    assert_int_equal(zarr_snap_create(s, B, BL, "z", 1, long_name, 65, 1, 0,
                                      &snap, &err), ZARR_ERR_INVALID);
    assert_int_equal(zarr_snap_create(s, B, BL, "z", 1, long_name, 64, 1, 0,
                                      &snap, &err), ZARR_OK);

    memset(&c, 0, sizeof(c));
    assert_int_equal(zarr_snap_list(s, B, BL, "z", 1, collect_name, &c,
                                    &err), ZARR_OK);
    assert_int_equal(c.n, 3);
    assert_true(strncmp(c.names, "a.1_-X;b;nnnn", 13) == 0);

    /* per snapshot: 8 files, held 8 times, 4 directories */
    assert_int_equal(zarr_store_stat(s, &st1, &err), ZARR_OK);
    assert_true(st1.snapshots == 3);
    assert_true(st1.snap_entries == 3 * (8 + 8 + 4));

    /* a file without a version id: refused, nothing left behind */
    apply1(s, mut(ZARR_MUT_PUT, "z", "a/unversioned", "e", 1, NULL));
    assert_int_equal(zarr_snap_create(s, B, BL, "z", 1, "c", 1, 1, 2, &snap,
                                      &err), ZARR_ERR_UNVERSIONED);
    assert_non_null(strstr(err.msg, "a/unversioned"));
    assert_int_equal(zarr_snap_get(s, B, BL, "z", 1, "c", 1, &snap, &err),
                     ZARR_ERR_NOTFOUND);
    memset(&c, 0, sizeof(c));
    assert_int_equal(zarr_snap_list(s, B, BL, "z", 1, collect_name, &c,
                                    &err), ZARR_OK);
    assert_int_equal(c.n, 3);
    apply1(s, mut(ZARR_MUT_DELETE, "z", "a/unversioned", NULL, 0, NULL));

    /* delete: gone, its versions no longer held, its records gone */
    assert_int_equal(zarr_snap_held(s, B, BL, "z", 1, "z", 1, "v8", 2,
                                    name, &err), ZARR_OK);
    assert_int_equal(zarr_snap_delete(s, B, BL, "z", 1, "b", 1, 2, &err),
                     ZARR_OK);
    assert_int_equal(zarr_snap_delete(s, B, BL, "z", 1, "b", 1, 2, &err),
                     ZARR_ERR_NOTFOUND);
    assert_int_equal(zarr_snap_get(s, B, BL, "z", 1, "b", 1, &snap, &err),
                     ZARR_ERR_NOTFOUND);
    assert_int_equal(zarr_snap_held(s, B, BL, "z", 1, "z", 1, "v8", 2,
                                    name, &err), ZARR_OK);
    assert_string_not_equal(name, "b");

    assert_int_equal(zarr_snap_delete(s, B, BL, "z", 1, "a.1_-X", 6, 0,
                                      &err), ZARR_OK);
    assert_int_equal(zarr_snap_delete(s, B, BL, "z", 1, long_name, 64, 5,
                                      &err), ZARR_OK);
    assert_int_equal(zarr_snap_held(s, B, BL, "z", 1, "z", 1, "v8", 2,
                                    name, &err), ZARR_ERR_NOTFOUND);

    memset(&c, 0, sizeof(c));
    assert_int_equal(zarr_snap_list(s, B, BL, "z", 1, collect_name, &c,
                                    &err), ZARR_OK);
    assert_int_equal(c.n, 0);

    /* the same name again after the delete */
    assert_int_equal(zarr_snap_create(s, B, BL, "z", 1, "b", 1, 1, 0, &snap,
                                      &err), ZARR_OK);
    assert_int_equal(zarr_snap_delete(s, B, BL, "z", 1, "b", 1, 0, &err),
                     ZARR_OK);

    /* every record of the snapshots went (the tree's entries remain) */
    assert_int_equal(zarr_store_stat(s, &st1, &err), ZARR_OK);
    assert_true(st1.entries == st0.entries);
    assert_true(st0.snapshots == 0 && st0.snap_entries == 0);
    assert_true(st1.snapshots == 0 && st1.snap_entries == 0);

    teardown(s, dir);
}


typedef struct {
    char       out[1024];
    char       delim;
    size_t     prefix_len;
    size_t     max;
    size_t     n;
} scan_t;


static int
scan_cb(void *ctx, const char *path, size_t path_len,
    const zarr_snap_file_t *f, size_t *skip)
{
    scan_t  *c = ctx;
    size_t   len;
    char    *d;

    (void) f;

    if (c->n == c->max) {
        return ZARR_SNAP_STOP;
    }

    len = strlen(c->out);
    c->n++;

    d = c->delim ? memchr(path + c->prefix_len, c->delim,
                          path_len - c->prefix_len) : NULL;

    if (d) {
        /* a common prefix: once */
        *skip = d - path + 1;
        snprintf(c->out + len, sizeof(c->out) - len, "%.*s|", (int) *skip,
                 path);
        return ZARR_SNAP_SKIP;
    }

    snprintf(c->out + len, sizeof(c->out) - len, "%.*s;", (int) path_len,
             path);

    return 0;
}


static void
scan(zarr_store_t *s, uint64_t id, const char *prefix, const char *after,
    char delim, size_t max, const char *want)
{
    scan_t      c;
    zarr_err_t  err;

    memset(&c, 0, sizeof(c));
    c.delim = delim;
    c.prefix_len = strlen(prefix);
    c.max = max;

    assert_int_equal(zarr_snap_scan(s, id, prefix, strlen(prefix), after,
                                    strlen(after), scan_cb, &c, &err),
                     ZARR_OK);
    assert_string_equal(c.out, want);
}


static void
test_scan(void **state)
{
    char          *dir;
    zarr_err_t     err;
    zarr_snap_t    snap;
    zarr_store_t  *s;

    (void) state;

    s = setup(&dir);

    assert_int_equal(zarr_snap_create(s, B, BL, "z", 1, "v1", 2, 1, 0, &snap,
                                      &err), ZARR_OK);

    /* byte order, as S3 lists: "a.b" before "a/..." */
    scan(s, snap.id, "", "", 0, 100,
         ".zgroup;a.b;a/.zarray;a/0.0;a/0.1;a/1.0;a/b/c/deep;z;");
    scan(s, snap.id, "", "", '/', 100, ".zgroup;a.b;a/|z;");
    scan(s, snap.id, "a/", "", '/', 100, "a/.zarray;a/0.0;a/0.1;a/1.0;a/b/|");
    scan(s, snap.id, "a/", "a/0.0", 0, 100, "a/0.1;a/1.0;a/b/c/deep;");
    scan(s, snap.id, "a/", "", 0, 2, "a/.zarray;a/0.0;");
    scan(s, snap.id, "a/", "0", 0, 100,
         "a/.zarray;a/0.0;a/0.1;a/1.0;a/b/c/deep;");
    scan(s, snap.id, "a/", "b", 0, 100, "");
    scan(s, snap.id, "a/0", "", 0, 100, "a/0.0;a/0.1;");
    scan(s, snap.id, "q", "", 0, 100, "");
    scan(s, snap.id + 1, "", "", 0, 100, "");

    teardown(s, dir);
}



/* the keys and prefixes of a listing body, in order, "|" after each */

static void
list_page(zarr_store_t *s, uint64_t id, zarr_snap_listing_t *q, char *keys,
    char *next)
{
    char        *p, *e, *body;
    zarr_buf_t   out;
    zarr_err_t   err;

    zarr_buf_init(&out);
    assert_int_equal(zarr_snap_list_xml(s, id, q, &out, &err), ZARR_OK);
    body = out.data;

    keys[0] = '\0';
    next[0] = '\0';

    for (p = body; (p = strstr(p, "<Key>")) != NULL; p = e) {
        e = strstr(p, "</Key>");
        strncat(keys, p + 5, e - p - 5);
        strcat(keys, "|");
    }

    for (p = body; (p = strstr(p, "<Prefix>")) != NULL; p = e) {
        e = strstr(p, "</Prefix>");
        if (strstr(p, "<Prefix>") == strstr(body, "<Prefix>")) {
            continue;            /* the echoed request prefix */
        }
        strcat(keys, "P:");
        strncat(keys, p + 8, e - p - 8);
        strcat(keys, "|");
    }

    p = strstr(body, q->v2 ? "<NextContinuationToken>" : "<NextMarker>");

    if (p) {
        p = strchr(p, '>') + 1;
        e = strchr(p, '<');
        strncat(next, p, e - p);
        assert_non_null(strstr(body, "<IsTruncated>true</IsTruncated>"));

    } else {
        assert_non_null(strstr(body, "<IsTruncated>false</IsTruncated>"));
    }

    assert_non_null(strstr(body, "<Name>bkt</Name>"));
    zarr_buf_free(&out);
}


static void
test_list_xml(void **state)
{
    int                  n;
    char                *dir, keys[2048], next[1024], after[512];
    char                 token[1024];
    char                 all[4096];
    zarr_err_t           err;
    zarr_snap_t          snap;
    zarr_store_t        *s;
    zarr_snap_listing_t  q;

    (void) state;

    s = setup(&dir);
    apply1(s, mut(ZARR_MUT_PUT, "z", "sp ace+plus", "e9", 9, "v9"));
    assert_int_equal(zarr_snap_create(s, B, BL, "z", 1, "v1", 2, 0, 0, &snap,
                                      &err), ZARR_OK);

    memset(&q, 0, sizeof(q));
    q.bucket = B;
    q.bucket_len = BL;
    q.base = "snap/z/v1/";
    q.base_len = 10;
    q.prefix = "snap/z/v1/";
    q.prefix_len = 10;
    q.max_keys = 1000;
    q.v2 = 1;

    list_page(s, snap.id, &q, keys, next);
    assert_string_equal(keys, "snap/z/v1/.zgroup|snap/z/v1/a.b|"
                        "snap/z/v1/a/.zarray|snap/z/v1/a/0.0|"
                        "snap/z/v1/a/0.1|snap/z/v1/a/1.0|"
                        "snap/z/v1/a/b/c/deep|snap/z/v1/sp ace+plus|"
                        "snap/z/v1/z|");
    strcpy(all, keys);

    /* pages of 2 with the continuation token: the same keys */
    q.max_keys = 2;
    keys[0] = '\0';
    q.token = NULL;
    q.after = NULL;
    strcpy(after, "");

    for (n = 0; n < 10; n++) {
        char  page[1024];

        list_page(s, snap.id, &q, page, next);
        strcat(keys, page);

        if (next[0] == '\0') {
            break;
        }

        strcpy(token, next);
        q.token = token;
        q.token_len = strlen(token);
        q.after_len = zarr_snap_token_decode(next, strlen(next), after);
        assert_true((int) q.after_len > 0);
        q.after = after;
    }

    assert_int_equal(n, 4);
    assert_string_equal(keys, all);

    /* a delimiter: common prefixes once, across pages too */
    q.delimiter = "/";
    q.delimiter_len = 1;
    q.token = NULL;
    q.after = NULL;
    q.max_keys = 1000;
    list_page(s, snap.id, &q, keys, next);
    assert_string_equal(keys, "snap/z/v1/.zgroup|snap/z/v1/a.b|"
                        "snap/z/v1/sp ace+plus|snap/z/v1/z|"
                        "P:snap/z/v1/a/|");

    q.max_keys = 3;
    list_page(s, snap.id, &q, keys, next);
    assert_string_equal(keys, "snap/z/v1/.zgroup|snap/z/v1/a.b|"
                        "P:snap/z/v1/a/|");
    q.after_len = zarr_snap_token_decode(next, strlen(next), after);
    assert_int_equal(q.after_len, strlen("snap/z/v1/a/"));
    q.after = after;
    list_page(s, snap.id, &q, keys, next);
    assert_string_equal(keys, "snap/z/v1/sp ace+plus|snap/z/v1/z|");
    assert_string_equal(next, "");

    /* V1: marker, NextMarker; a deeper prefix; url encoding */
    q.v2 = 0;
    q.after = "snap/z/v1/a/";
    q.after_len = 12;
    q.marker = q.after;
    q.marker_len = q.after_len;
    q.prefix = "snap/z/v1/a/";
    q.prefix_len = 12;
    q.max_keys = 2;
    list_page(s, snap.id, &q, keys, next);
    assert_string_equal(keys, "snap/z/v1/a/.zarray|snap/z/v1/a/0.0|");
    assert_string_equal(next, "snap/z/v1/a/0.0");

    q.delimiter = NULL;
    q.delimiter_len = 0;
    q.after = NULL;
    q.marker = NULL;
    q.marker_len = 0;
    q.prefix = "snap/z/v1/sp";
    q.prefix_len = 12;
    q.url = 1;
    list_page(s, snap.id, &q, keys, next);
    assert_string_equal(keys, "snap/z/v1/sp%20ace%2Bplus|");

    /* outside the snapshot, or after it: nothing */
    q.url = 0;
    q.prefix = "snap/z/v2/";
    q.prefix_len = 10;
    list_page(s, snap.id, &q, keys, next);
    assert_string_equal(keys, "");
    q.prefix = "snap/z/v1/";
    q.after = "snap/z/v2";
    q.after_len = 9;
    list_page(s, snap.id, &q, keys, next);
    assert_string_equal(keys, "");
    q.after = "snap/";
    q.after_len = 5;
    q.max_keys = 1;
    list_page(s, snap.id, &q, keys, next);
    assert_string_equal(keys, "snap/z/v1/.zgroup|");

    assert_int_equal(zarr_snap_token_decode("0g", 2, after), -1);
    assert_int_equal(zarr_snap_token_decode("616", 3, after), -1);
    assert_int_equal(zarr_snap_token_decode("", 0, after), -1);

    teardown(s, dir);
}


typedef struct {
    zarr_buf_t   all;
    size_t       pieces;
    int          lasts;
} pieces_t;


static int
piece_cb(void *ctx, const char *buf, size_t len, int last)
{
    pieces_t  *p = ctx;

    assert_int_equal(p->lasts, 0);
    assert_int_equal(zarr_buf_add(&p->all, buf, len), 0);
    p->pieces++;
    p->lasts += last;

    return 0;
}


static json_t *
manifest(zarr_store_t *s, const zarr_snap_t *snap, size_t piece,
    size_t *pieces)
{
    json_t      *j;
    pieces_t     p;
    zarr_err_t   err;

    memset(&p, 0, sizeof(p));
    zarr_buf_init(&p.all);

    assert_int_equal(zarr_snap_manifest(s, snap, B, BL, "zarr/", 5, "z", 1,
                                        piece, piece_cb, &p, &err),
                     ZARR_OK);
    assert_int_equal(p.lasts, 1);

    j = json_loadb(p.all.data, p.all.len, 0, NULL);
    assert_non_null(j);
    *pieces = p.pieces;
    zarr_buf_free(&p.all);

    return j;
}


static void
test_manifest(void **state)
{
    char          *dir, path[64], etag[64], url[128];
    size_t         i, pieces;
    json_t        *j, *refs, *ref;
    zarr_err_t     err;
    zarr_snap_t    snap;
    zarr_store_t  *s;
    const char    *key;

    (void) state;

    s = setup(&dir);
    assert_int_equal(zarr_snap_create(s, B, BL, "z", 1, "v1", 2, 0, 0, &snap,
                                      &err), ZARR_OK);

    j = manifest(s, &snap, 64, &pieces);
    assert_true(pieces > 3);
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "digest")),
                        snap.sum.digest);
    assert_int_equal(json_integer_value(json_object_get(j, "file_count")),
                     NFILES);
    refs = json_object_get(j, "refs");
    assert_int_equal(json_object_size(refs), NFILES);

    for (i = 0; i < NFILES; i++) {
        ref = json_object_get(refs, files[i].path);
        assert_non_null(ref);
        assert_int_equal(json_array_size(ref), 1);
        snprintf(url, sizeof(url), "s3://bkt/zarr/z/%s?versionId=%s",
                 files[i].path, files[i].version);
        assert_string_equal(json_string_value(json_array_get(ref, 0)), url);
    }

    json_decref(j);

    /* one piece when it fits; more files than a read transaction takes */
    j = manifest(s, &snap, 1 << 20, &pieces);
    assert_int_equal(pieces, 1);
    json_decref(j);

    for (i = 0; i < ZARR_SNAP_CHUNK + 100; i++) {
        snprintf(path, sizeof(path), "big/%06zu", i);
        snprintf(etag, sizeof(etag), "%032zx", i);
        apply1(s, mut(ZARR_MUT_PUT, "z", path, etag, i, "v"));
    }

    assert_int_equal(zarr_snap_create(s, B, BL, "z", 1, "v2", 2, 0, 0, &snap,
                                      &err), ZARR_OK);
    j = manifest(s, &snap, 1 << 16, &pieces);
    refs = json_object_get(j, "refs");
    assert_int_equal(json_object_size(refs), NFILES + ZARR_SNAP_CHUNK + 100);

    i = 0;
    json_object_foreach(refs, key, ref) {
        if (strncmp(key, "big/", 4) == 0) {
            i++;
        }
    }

    assert_int_equal(i, ZARR_SNAP_CHUNK + 100);
    json_decref(j);

    teardown(s, dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_read),
        cmocka_unit_test(test_errors_list_delete),
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_list_xml),
        cmocka_unit_test(test_manifest),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
