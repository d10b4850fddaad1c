
/*
 * In-memory zarr tree for listings and local directories.
 */


#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zarr_path.h"
#include "zarr_mtree.h"


/* the fuzz build makes it small: faster under ASan, more chunks used */
#ifndef ZARR_ARENA_CHUNK
#define ZARR_ARENA_CHUNK  (1024 * 1024)
#endif
#define ZARR_MTREE_DEPTH  520


typedef struct zarr_mdir_s  zarr_mdir_t;

typedef struct {
    const char         *name;
    const char         *etag;
    uint64_t            size;
    uint64_t            line;
    uint32_t            name_len;
    uint32_t            etag_len;
} zarr_mfile_t;


struct zarr_mdir_s {
    const char         *name;
    size_t              name_len;
    zarr_mdir_t       **dirs;
    size_t              ndirs;
    size_t              dirs_cap;
    zarr_mfile_t       *files;
    size_t              nfiles;
    size_t              files_cap;
};


typedef struct zarr_arena_s  zarr_arena_t;

struct zarr_arena_s {
    zarr_arena_t       *next;
    size_t              used;
    size_t              size;
    char                data[];
};


struct zarr_mtree_s {
    zarr_arena_t       *arena;
    zarr_mdir_t         root;

    /* hash of directories by (parent, name) */
    zarr_mdir_t       **hash_dir;
    zarr_mdir_t       **hash_parent;
    size_t              hash_size;
    size_t              hash_used;

    /* the last directory chain, for consecutive files of one directory */
    char               *last;
    size_t              last_len;
    size_t              last_cap;
    zarr_mdir_t        *last_dir;

    zarr_buf_t          path;

    /* the manifest of the directory being reported, when asked for */
    int                 keep;
    zarr_buf_t          manifest;
};


static int zarr_mtree_err(zarr_err_t *err, int rc, const char *fmt, ...);
static void *zarr_arena_alloc(zarr_mtree_t *t, size_t n);
static uint64_t zarr_hash(const void *parent, const char *name, size_t len);
static int zarr_mtree_grow(zarr_mtree_t *t);
static zarr_mdir_t *zarr_mtree_child(zarr_mtree_t *t, zarr_mdir_t *parent,
    const char *name, size_t len);
static int zarr_mdir_cmp(const void *a, const void *b);
static int zarr_mfile_cmp(const void *a, const void *b);
static int zarr_mtree_calc(zarr_mtree_t *t, zarr_mdir_t *d, zarr_dir_cb cb,
    void *ctx, zarr_dir_sum_t *sum, zarr_err_t *err);
static void zarr_mdir_free(zarr_mdir_t *d);


static int
zarr_mtree_err(zarr_err_t *err, int rc, const char *fmt, ...)
{
    va_list  args;

    if (err) {
        va_start(args, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, args);
        va_end(args);
    }

    return rc;
}


static void *
zarr_arena_alloc(zarr_mtree_t *t, size_t n)
{
    void          *p;
    size_t         size;
    zarr_arena_t  *a;

    n = (n + 7) & ~(size_t) 7;
    a = t->arena;

    if (a == NULL || a->size - a->used < n) {
        size = n > ZARR_ARENA_CHUNK ? n : ZARR_ARENA_CHUNK;

        a = malloc(sizeof(zarr_arena_t) + size);
        if (a == NULL) {
            return NULL;
        }

        a->next = t->arena;
        a->used = 0;
        a->size = size;
        t->arena = a;
    }

    p = a->data + a->used;
    a->used += n;

    return p;
}


zarr_mtree_t *
zarr_mtree_create(void)
{
    zarr_mtree_t  *t;

    t = calloc(1, sizeof(zarr_mtree_t));
    if (t == NULL) {
        return NULL;
    }

    t->root.name = "";
    t->last_dir = &t->root;
    zarr_buf_init(&t->path);

    return t;
}


static void
zarr_mdir_free(zarr_mdir_t *d)
{
    size_t  i;

    for (i = 0; i < d->ndirs; i++) {
        zarr_mdir_free(d->dirs[i]);
    }

    free(d->dirs);
    free(d->files);
}


void
zarr_mtree_free(zarr_mtree_t *t)
{
    zarr_arena_t  *a, *next;

    if (t == NULL) {
        return;
    }

    zarr_mdir_free(&t->root);

    for (a = t->arena; a; a = next) {
        next = a->next;
        free(a);
    }

    free(t->hash_dir);
    free(t->hash_parent);
    free(t->last);
    zarr_buf_free(&t->path);
    zarr_buf_free(&t->manifest);
    free(t);
}


static uint64_t
zarr_hash(const void *parent, const char *name, size_t len)
{
    uint64_t  h;
    size_t    i;

    /* FNV-1a over the name, mixed with the parent's address */

    h = 1469598103934665603ULL ^ (uint64_t) (uintptr_t) parent;

    for (i = 0; i < len; i++) {
        h ^= (unsigned char) name[i];
        h *= 1099511628211ULL;
    }

    return h ^ (h >> 29);
}


static int
zarr_mtree_grow(zarr_mtree_t *t)
{
    size_t         size, i, j;
    zarr_mdir_t  **dirs, **parents;

    size = t->hash_size ? t->hash_size * 2 : 1024;

    dirs = calloc(size, sizeof(zarr_mdir_t *));
    parents = calloc(size, sizeof(zarr_mdir_t *));

    if (dirs == NULL || parents == NULL) {
        free(dirs);
        free(parents);
        return -1;
    }

    for (i = 0; i < t->hash_size; i++) {
        if (t->hash_dir[i] == NULL) {
            continue;
        }

        j = zarr_hash(t->hash_parent[i], t->hash_dir[i]->name,
                      t->hash_dir[i]->name_len) & (size - 1);

        while (dirs[j]) {
            j = (j + 1) & (size - 1);
        }

        dirs[j] = t->hash_dir[i];
        parents[j] = t->hash_parent[i];
    }

    free(t->hash_dir);
    free(t->hash_parent);

    t->hash_dir = dirs;
    t->hash_parent = parents;
    t->hash_size = size;

    return 0;
}


static zarr_mdir_t *
zarr_mtree_child(zarr_mtree_t *t, zarr_mdir_t *parent, const char *name,
    size_t len)
{
    size_t         i;
    char          *p;
    zarr_mdir_t   *d, **dirs;

    if (t->hash_used * 2 >= t->hash_size && zarr_mtree_grow(t) != 0) {
        return NULL;
    }

    i = zarr_hash(parent, name, len) & (t->hash_size - 1);

    while (t->hash_dir[i]) {
        d = t->hash_dir[i];

        if (t->hash_parent[i] == parent && d->name_len == len
            && memcmp(d->name, name, len) == 0)
        {
            return d;
        }

        i = (i + 1) & (t->hash_size - 1);
    }

    d = zarr_arena_alloc(t, sizeof(zarr_mdir_t));
    p = zarr_arena_alloc(t, len);

    if (d == NULL || p == NULL) {
        return NULL;
    }

    memset(d, 0, sizeof(zarr_mdir_t));
    memcpy(p, name, len);
    d->name = p;
    d->name_len = len;

    if (parent->ndirs == parent->dirs_cap) {
        parent->dirs_cap = parent->dirs_cap ? parent->dirs_cap * 2 : 4;
        dirs = realloc(parent->dirs, parent->dirs_cap * sizeof(zarr_mdir_t *));
        if (dirs == NULL) {
            return NULL;
        }

        parent->dirs = dirs;
    }

    parent->dirs[parent->ndirs++] = d;

    t->hash_dir[i] = d;
    t->hash_parent[i] = parent;
    t->hash_used++;

    return d;
}


int
zarr_mtree_add(zarr_mtree_t *t, const char *path, size_t path_len,
    uint64_t size, const char *etag, size_t etag_len, uint64_t line,
    zarr_err_t *err)
{
    int            rc;
    size_t         i, start, dir_len, off;
    char          *p;
    zarr_mdir_t   *d;
    zarr_mfile_t  *f, *files;

    rc = zarr_path_check(path, path_len, &off);

    if (rc == ZARR_PATH_OK && path_len == 0) {
        rc = ZARR_PATH_EMPTY_SEGMENT;
    }

    if (rc != ZARR_PATH_OK) {
        return zarr_mtree_err(err, ZARR_ERR_INVALID,
                              "path \"%.*s\": %s", (int) path_len, path,
                              zarr_path_strerror(rc));
    }

    if (etag_len == 0 || etag_len > ZARR_ETAG_MAX
        || zarr_utf8_valid_prefix(etag, etag_len) != etag_len)
    {
        return zarr_mtree_err(err, ZARR_ERR_INVALID,
                              "path \"%.*s\": bad ETag", (int) path_len,
                              path);
    }

    for (dir_len = path_len; dir_len > 0; dir_len--) {
        if (path[dir_len - 1] == '/') {
            break;
        }
    }

    start = dir_len;              /* the file name */
    dir_len = dir_len ? dir_len - 1 : 0;

    if (t->last && t->last_len == dir_len
        && memcmp(t->last, path, dir_len) == 0)
    {
        d = t->last_dir;

    } else {
        d = &t->root;
        off = 0;

        for (i = 0; i <= dir_len && dir_len; i++) {
            if (i < dir_len && path[i] != '/') {
                continue;
            }

            d = zarr_mtree_child(t, d, path + off, i - off);
            if (d == NULL) {
                return zarr_mtree_err(err, ZARR_ERR_NOMEM, "out of memory");
            }

            off = i + 1;
        }

        if (dir_len > t->last_cap) {
            p = realloc(t->last, dir_len + 256);
            if (p == NULL) {
                return zarr_mtree_err(err, ZARR_ERR_NOMEM, "out of memory");
            }

            t->last = p;
            t->last_cap = dir_len + 256;
        }

        if (t->last == NULL) {
            t->last = malloc(256);
            if (t->last == NULL) {
                return zarr_mtree_err(err, ZARR_ERR_NOMEM, "out of memory");
            }

            t->last_cap = 256;
        }

        memcpy(t->last, path, dir_len);
        t->last_len = dir_len;
        t->last_dir = d;
    }

    if (d->nfiles == d->files_cap) {
        d->files_cap = d->files_cap ? d->files_cap * 2 : 4;
        files = realloc(d->files, d->files_cap * sizeof(zarr_mfile_t));
        if (files == NULL) {
            return zarr_mtree_err(err, ZARR_ERR_NOMEM, "out of memory");
        }

        d->files = files;
    }

    p = zarr_arena_alloc(t, path_len - start + etag_len);
    if (p == NULL) {
        return zarr_mtree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    f = &d->files[d->nfiles++];

    memcpy(p, path + start, path_len - start);
    f->name = p;
    f->name_len = (uint32_t) (path_len - start);
    memcpy(p + f->name_len, etag, etag_len);
    f->etag = p + f->name_len;
    f->etag_len = (uint32_t) etag_len;
    f->size = size;
    f->line = line;

    return ZARR_OK;
}


static int
zarr_mdir_cmp(const void *a, const void *b)
{
    const zarr_mdir_t  *x = *(const zarr_mdir_t **) a;
    const zarr_mdir_t  *y = *(const zarr_mdir_t **) b;

    return zarr_name_cmp(x->name, x->name_len, y->name, y->name_len);
}


static int
zarr_mfile_cmp(const void *a, const void *b)
{
    const zarr_mfile_t  *x = a;
    const zarr_mfile_t  *y = b;
    int                  rc;

    rc = zarr_name_cmp(x->name, x->name_len, y->name, y->name_len);
    if (rc) {
        return rc;
    }

    return (x->line > y->line) - (x->line < y->line);
}


static int
zarr_mtree_calc(zarr_mtree_t *t, zarr_mdir_t *d, zarr_dir_cb cb, void *ctx,
    zarr_dir_sum_t *sum, zarr_err_t *err)
{
    int              rc;
    size_t           i, plen;
    zarr_mfile_t    *f;
    zarr_manifest_t  m;
    zarr_dir_sum_t  *sums;

    /* qsort() must not see NULL, even with no entries (C99 7.20.5) */

    if (d->ndirs > 1) {
        qsort(d->dirs, d->ndirs, sizeof(zarr_mdir_t *), zarr_mdir_cmp);
    }

    if (d->nfiles > 1) {
        qsort(d->files, d->nfiles, sizeof(zarr_mfile_t), zarr_mfile_cmp);
    }

    for (i = 1; i < d->nfiles; i++) {
        f = &d->files[i];

        if (zarr_name_cmp(f[-1].name, f[-1].name_len, f->name, f->name_len)
            == 0)
        {
            return zarr_mtree_err(err, ZARR_ERR_INVALID,
                                  "\"%.*s%s%.*s\" is listed twice "
                                  "(lines %llu and %llu)",
                                  (int) t->path.len, t->path.data,
                                  t->path.len ? "/" : "",
                                  (int) f->name_len, f->name,
                                  (unsigned long long) f[-1].line,
                                  (unsigned long long) f->line);
        }
    }

    sums = NULL;

    if (d->ndirs) {
        sums = malloc(d->ndirs * sizeof(zarr_dir_sum_t));
        if (sums == NULL) {
            return zarr_mtree_err(err, ZARR_ERR_NOMEM, "out of memory");
        }
    }

    for (i = 0; i < d->ndirs; i++) {
        plen = t->path.len;

        if ((plen && zarr_buf_add(&t->path, "/", 1) != 0)
            || zarr_buf_add(&t->path, d->dirs[i]->name,
                            d->dirs[i]->name_len) != 0)
        {
            free(sums);
            return zarr_mtree_err(err, ZARR_ERR_NOMEM, "out of memory");
        }

        rc = zarr_mtree_calc(t, d->dirs[i], cb, ctx, &sums[i], err);

        t->path.len = plen;

        if (rc != ZARR_OK) {
            free(sums);
            return rc;
        }
    }

    rc = zarr_manifest_init(&m, t->keep);

    for (i = 0; rc == ZARR_OK && i < d->ndirs; i++) {
        rc = zarr_manifest_add_dir(&m, d->dirs[i]->name, d->dirs[i]->name_len,
                                   sums[i].digest, sums[i].count,
                                   sums[i].size);
    }

    for (i = 0; rc == ZARR_OK && i < d->nfiles; i++) {
        f = &d->files[i];
        rc = zarr_manifest_add_file(&m, f->name, f->name_len, f->etag,
                                    f->etag_len, f->size);
    }

    if (rc == ZARR_OK) {
        rc = zarr_manifest_finish(&m, sum);
    }

    if (rc == ZARR_OK && t->keep) {
        t->manifest.len = 0;

        if (zarr_buf_add(&t->manifest, m.buf.data, m.buf.len) != 0) {
            rc = ZARR_ERR_NOMEM;
        }
    }

    zarr_manifest_free(&m);
    free(sums);

    if (rc != ZARR_OK) {
        return zarr_mtree_err(err, rc, "cannot build the manifest of \"%.*s\"",
                              (int) t->path.len, t->path.data);
    }

    if (cb && cb(ctx, t->path.data, t->path.len, sum) != 0) {
        return zarr_mtree_err(err, ZARR_ERR_INVALID, "walk stopped");
    }

    return ZARR_OK;
}


void
zarr_mtree_keep_manifests(zarr_mtree_t *t)
{
    t->keep = 1;
}


const zarr_buf_t *
zarr_mtree_manifest(zarr_mtree_t *t)
{
    return &t->manifest;
}


int
zarr_mtree_compute(zarr_mtree_t *t, zarr_dir_cb cb, void *ctx,
    zarr_dir_sum_t *root, zarr_err_t *err)
{
    t->path.len = 0;

    return zarr_mtree_calc(t, &t->root, cb, ctx, root, err);
}
