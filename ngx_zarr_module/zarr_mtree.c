
/*
 * In-memory zarr tree for listings and local directories.
 *
 * Files go into one array in the order they come, each with the index of
 * its directory; directories into another, found by (parent, name) in a
 * hash table, the last one kept for the next file (listings come a
 * directory at a time).  zarr_mtree_compute() then groups the files by
 * directory (a counting sort), sorts each directory's files on a 64-bit
 * prefix of their names, and streams each manifest into md5 through a
 * fixed buffer.  With zarr_mtree_threads(), whole subtrees below the top
 * directories are computed by several threads; the caller's callback
 * still sees every directory in the same order, from its own thread.
 */


#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "zarr_hash.h"
#include "zarr_listing.h"
#include "zarr_path.h"
#include "zarr_mtree.h"


/* the fuzz build makes these small: faster under ASan, more chunks used */
#ifndef ZARR_ARENA_CHUNK
#define ZARR_ARENA_CHUNK  (1024 * 1024)
#endif

/* files per chunk of the file array: 65536 x 32 bytes, a huge page */
#ifndef ZARR_MTREE_FILES_SHIFT
#define ZARR_MTREE_FILES_SHIFT  16
#endif

#define ZARR_MTREE_FILES_CHUNK  ((uint32_t) 1 << ZARR_MTREE_FILES_SHIFT)

/*
 * Large arrays go on transparent huge pages: on a virtual machine, the
 * first touch of each 4 KiB page costs more than all the work done on it.
 */
#define ZARR_MTREE_HUGE   (2 * 1024 * 1024)

/* lines past 2^48 - 1 are reported as 2^48 - 1 */
#define ZARR_MTREE_LINE_MAX  ((UINT64_C(1) << 48) - 1)

/* manifest bytes go to md5 once this many are pending */
#define ZARR_MTREE_FLUSH  65536

/*
 * room after ZARR_MTREE_FLUSH for one more entry: the longest is a file's,
 * an ETag (ZARR_ETAG_MAX) and a name (ZARR_NAME_MAX), 6 bytes a byte at
 * worst, with its keys and a 20-digit size
 */
#define ZARR_MTREE_ENTRY_MAX                                                  \
    (256 + ZARR_JSON_ESCAPED_MAX(ZARR_ETAG_MAX + ZARR_NAME_MAX))

#define ZARR_MTREE_NONE   UINT32_MAX

/* subtrees of at most 1/ZARR_MTREE_SPLIT of the files per thread */
#define ZARR_MTREE_SPLIT  8

/* fewer files than this: one thread (the fuzz build splits any tree) */
#ifndef ZARR_MTREE_MIN_THREADED
#define ZARR_MTREE_MIN_THREADED  4096
#endif

#define ZARR_MTREE_MAX_THREADS   64

/* a tsv listing shorter than this: read by one thread */
#ifndef ZARR_MTREE_MIN_SPLIT
#define ZARR_MTREE_MIN_SPLIT     (1024 * 1024)
#endif


/* 32 bytes: a million files take 32 MB */

typedef struct {
    const char         *name;
    uint64_t            size;
    uint32_t            dir;
    uint32_t            line_lo;
    uint16_t            line_hi;
    uint16_t            name_len;      /* <= ZARR_NAME_MAX */
    uint16_t            etag_len;      /* <= ZARR_ETAG_MAX */
    uint16_t            etag_off;      /* the ETag is at name + etag_off */
} zarr_mfile_t;

#define zarr_mfile_etag(f)  ((f)->name + (f)->etag_off)
#define zarr_mfile_line(f)  (((uint64_t) (f)->line_hi << 32) | (f)->line_lo)


typedef struct zarr_mdir_s  zarr_mdir_t;

struct zarr_mdir_s {
    const char         *name;
    uint32_t            name_len;
    uint32_t            parent;
    uint32_t            nfiles;
    uint32_t            files;         /* first in t->order */
    uint32_t            ndirs;
    uint32_t            dirs;          /* first in t->dir_order */
    uint32_t            task;          /* ZARR_MTREE_NONE or a task */
    uint32_t            done;          /* sum is known */
    uint64_t            total;         /* files in the subtree */
    zarr_dir_sum_t      sum;
};


/* a file's place in its directory while sorting: key, then index */
typedef struct {
    uint64_t            key;           /* the name's first 8 bytes */
    uint32_t            file;
} zarr_mkey_t;


typedef struct zarr_arena_s  zarr_arena_t;

struct zarr_arena_s {
    zarr_arena_t       *next;
    size_t              used;
    size_t              size;
    char                data[];
};


typedef struct {
    uint32_t            dir;
    uint64_t            total;         /* files in the subtree */
    int                 rc;
    zarr_err_t          err;
} zarr_mtask_t;


/*
 * Where files are added: the tree's own, or one part of a listing read by
 * several threads (its files merged into the tree's afterwards).
 */
typedef struct {
    zarr_mtree_t       *tree;

    /* file i is chunks[i >> ZARR_MTREE_FILES_SHIFT][i & (CHUNK - 1)] */
    zarr_mfile_t      **chunks;
    uint32_t            nfiles;        /* holes included (dir NONE) */
    uint32_t            nchunks;
    uint32_t            chunks_cap;

    /* the last directory, for consecutive files of one directory */
    char               *last;
    size_t              last_len;
    size_t              last_cap;
    uint32_t            last_dir;

    int                 shared;        /* other parts at work: lock */

    /* a part of a tsv listing */
    const char         *data;
    size_t              len;
    uint64_t            lines;
    int                 rc;
    zarr_err_t          err;
    pthread_t           thread;
} zarr_mpart_t;


typedef struct {
    zarr_mtree_t       *tree;
    zarr_hash_t        *md5;
    char               *out;           /* the manifest's pending bytes */
    size_t              len;
    zarr_mkey_t        *keys;
    zarr_mkey_t        *tmp;
    size_t              keys_cap;
    zarr_buf_t          path;          /* of the directory at hand */
    zarr_err_t         *err;
    pthread_t           thread;
} zarr_mwork_t;


struct zarr_mtree_s {
    zarr_arena_t       *arena;

    zarr_mpart_t        files;

    zarr_mdir_t        *dirs;          /* dirs[0] is the root */
    uint32_t            ndirs;
    uint32_t            dirs_cap;

    /* hash of directories by (parent, name): index + 1, 0 is free */
    uint32_t           *hash;
    size_t              hash_size;

    /* built by zarr_mtree_compute() */
    uint32_t           *order;         /* files grouped by directory */
    zarr_mdir_t       **dir_order;     /* directories by parent */

    int                 threads;
    zarr_mtask_t       *tasks;
    uint32_t            ntasks;
    uint32_t            next_task;
    pthread_mutex_t     lock;

    /* the manifest of the directory being reported, when asked for */
    int                 keep;
    zarr_buf_t          manifest;
};


static int zarr_mtree_err(zarr_err_t *err, int rc, const char *fmt, ...);
static void *zarr_mtree_alloc(size_t size);
static zarr_mfile_t *zarr_mtree_file(zarr_mtree_t *t, uint32_t i);
static void *zarr_arena_alloc(zarr_mtree_t *t, size_t n);
static uint64_t zarr_hash(uint32_t parent, const char *name, size_t len);
static int zarr_mtree_grow(zarr_mtree_t *t);
static uint32_t zarr_mtree_child(zarr_mtree_t *t, uint32_t parent,
    const char *name, size_t len);
static int zarr_mtree_segment_ok(const char *s, size_t len);
static int zarr_mtree_path_fast(const char *path, size_t len,
    size_t *dir_len);
static uint32_t zarr_mtree_find_dir(zarr_mpart_t *part, const char *path,
    size_t dir_len);
static int zarr_mtree_new_file(zarr_mpart_t *part, zarr_mfile_t **file,
    zarr_err_t *err);
static int zarr_mtree_insert(zarr_mpart_t *part, const char *path,
    size_t path_len, uint64_t size, const char *etag, size_t etag_len,
    uint64_t line, int copy, zarr_err_t *err);
static void zarr_mpart_free(zarr_mpart_t *part);
static void *zarr_mtree_read_part(void *data);
static int zarr_mtree_merge(zarr_mtree_t *t, zarr_mpart_t *parts, int n,
    uint64_t *line, zarr_err_t *err);
static int zarr_mtree_group(zarr_mtree_t *t);
static int zarr_mdir_cmp(const void *a, const void *b);
static uint64_t zarr_mkey(const char *name, size_t len);
static int zarr_mkey_less(zarr_mtree_t *t, const zarr_mkey_t *a,
    const zarr_mkey_t *b);
static void zarr_mkey_sort(zarr_mtree_t *t, zarr_mkey_t *a,
    zarr_mkey_t *tmp, size_t n);
static int zarr_mtree_sort_files(zarr_mwork_t *w, zarr_mdir_t *d);
static int zarr_mwork_init(zarr_mwork_t *w, zarr_mtree_t *t,
    zarr_err_t *err);
static void zarr_mwork_free(zarr_mwork_t *w);
static int zarr_mwork_flush(zarr_mwork_t *w);
static char *zarr_mwork_u64(char *p, uint64_t v);
static int zarr_mtree_manifest_of(zarr_mwork_t *w, zarr_mdir_t *d);
static int zarr_mtree_calc(zarr_mwork_t *w, zarr_mdir_t *d, zarr_dir_cb cb,
    void *ctx);
static int zarr_mtree_replay(zarr_mwork_t *w, zarr_mdir_t *d,
    zarr_dir_cb cb, void *ctx);
static int zarr_mtree_dir_path(zarr_mtree_t *t, zarr_mdir_t *d,
    zarr_buf_t *path);
static int zarr_mtree_plan(zarr_mtree_t *t, int threads);
static void zarr_mtree_plan_dir(zarr_mtree_t *t, zarr_mdir_t *d,
    uint64_t limit);
static int zarr_mtask_cmp(const void *a, const void *b);
static void *zarr_mtree_worker(void *data);


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


/* free()d as usual */

static void *
zarr_mtree_alloc(size_t size)
{
    void  *p;

    if (size < ZARR_MTREE_HUGE) {
        return malloc(size ? size : 1);
    }

    size = (size + ZARR_MTREE_HUGE - 1) & ~(size_t) (ZARR_MTREE_HUGE - 1);

    if (posix_memalign(&p, ZARR_MTREE_HUGE, size) != 0) {
        return NULL;
    }

    (void) madvise(p, size, MADV_HUGEPAGE);

    return p;
}


static zarr_mfile_t *
zarr_mtree_file(zarr_mtree_t *t, uint32_t i)
{
    return &t->files.chunks[i >> ZARR_MTREE_FILES_SHIFT]
                           [i & (ZARR_MTREE_FILES_CHUNK - 1)];
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

    t->dirs = calloc(16, sizeof(zarr_mdir_t));
    if (t->dirs == NULL) {
        free(t);
        return NULL;
    }

    t->dirs_cap = 16;
    t->ndirs = 1;
    t->dirs[0].name = "";
    t->dirs[0].parent = ZARR_MTREE_NONE;
    t->files.tree = t;
    t->threads = 1;
    zarr_buf_init(&t->manifest);

    return t;
}


static void
zarr_mpart_free(zarr_mpart_t *part)
{
    uint32_t  i;

    for (i = 0; i < part->nchunks; i++) {
        free(part->chunks[i]);
    }

    free(part->chunks);
    free(part->last);
}


void
zarr_mtree_free(zarr_mtree_t *t)
{
    zarr_arena_t  *a, *next;

    if (t == NULL) {
        return;
    }

    for (a = t->arena; a; a = next) {
        next = a->next;
        free(a);
    }

    zarr_mpart_free(&t->files);
    free(t->dirs);
    free(t->hash);
    free(t->order);
    free(t->dir_order);
    free(t->tasks);
    zarr_buf_free(&t->manifest);
    free(t);
}


void
zarr_mtree_threads(zarr_mtree_t *t, int n)
{
    t->threads = n < 1 ? 1
                 : n > ZARR_MTREE_MAX_THREADS ? ZARR_MTREE_MAX_THREADS : n;
}


static uint64_t
zarr_hash(uint32_t parent, const char *name, size_t len)
{
    uint64_t  h;
    size_t    i;

    /* FNV-1a over the name, mixed with the parent's index */

    h = 1469598103934665603ULL ^ ((uint64_t) parent * 0x9e3779b97f4a7c15ULL);

    for (i = 0; i < len; i++) {
        h ^= (unsigned char) name[i];
        h *= 1099511628211ULL;
    }

    return h ^ (h >> 29);
}


static int
zarr_mtree_grow(zarr_mtree_t *t)
{
    size_t        size, i, j;
    uint32_t     *hash;
    zarr_mdir_t  *d;

    size = t->hash_size ? t->hash_size * 2 : 1024;

    hash = calloc(size, sizeof(uint32_t));
    if (hash == NULL) {
        return -1;
    }

    for (i = 0; i < t->hash_size; i++) {
        if (t->hash[i] == 0) {
            continue;
        }

        d = &t->dirs[t->hash[i] - 1];
        j = zarr_hash(d->parent, d->name, d->name_len) & (size - 1);

        while (hash[j]) {
            j = (j + 1) & (size - 1);
        }

        hash[j] = t->hash[i];
    }

    free(t->hash);

    t->hash = hash;
    t->hash_size = size;

    return 0;
}


/* the index of the directory name in parent, created if new */

static uint32_t
zarr_mtree_child(zarr_mtree_t *t, uint32_t parent, const char *name,
    size_t len)
{
    size_t        i;
    char         *p;
    uint32_t      cap;
    zarr_mdir_t  *d, *dirs;

    /* the root is not in the hash: t->ndirs - 1 entries */

    if ((size_t) t->ndirs * 2 >= t->hash_size && zarr_mtree_grow(t) != 0) {
        return ZARR_MTREE_NONE;
    }

    i = zarr_hash(parent, name, len) & (t->hash_size - 1);

    while (t->hash[i]) {
        d = &t->dirs[t->hash[i] - 1];

        if (d->parent == parent && d->name_len == len
            && memcmp(d->name, name, len) == 0)
        {
            return t->hash[i] - 1;
        }

        i = (i + 1) & (t->hash_size - 1);
    }

    if (t->ndirs == t->dirs_cap) {
        if (t->dirs_cap >= ZARR_MTREE_NONE / 2) {
            return ZARR_MTREE_NONE;
        }

        cap = t->dirs_cap * 2;
        dirs = realloc(t->dirs, (size_t) cap * sizeof(zarr_mdir_t));
        if (dirs == NULL) {
            return ZARR_MTREE_NONE;
        }

        t->dirs = dirs;
        t->dirs_cap = cap;
    }

    p = zarr_arena_alloc(t, len);
    if (p == NULL) {
        return ZARR_MTREE_NONE;
    }

    memcpy(p, name, len);

    d = &t->dirs[t->ndirs];
    memset(d, 0, sizeof(zarr_mdir_t));
    d->name = p;
    d->name_len = (uint32_t) len;
    d->parent = parent;

    t->hash[i] = ++t->ndirs;

    return t->ndirs - 1;
}


int
zarr_mtree_add(zarr_mtree_t *t, const char *path, size_t path_len,
    uint64_t size, const char *etag, size_t etag_len, uint64_t line,
    zarr_err_t *err)
{
    return zarr_mtree_insert(&t->files, path, path_len, size, etag,
                             etag_len, line, 1, err);
}


int
zarr_mtree_add_ref(zarr_mtree_t *t, const char *path, size_t path_len,
    uint64_t size, const char *etag, size_t etag_len, uint64_t line,
    zarr_err_t *err)
{
    return zarr_mtree_insert(&t->files, path, path_len, size, etag,
                             etag_len, line, 0, err);
}


static int
zarr_mtree_segment_ok(const char *s, size_t len)
{
    return len > 0 && len <= ZARR_NAME_MAX
           && !(len == 1 && s[0] == '.')
           && !(len == 2 && s[0] == '.' && s[1] == '.');
}


/*
 * The common case of zarr_path_check() in one pass: ASCII without NUL,
 * no empty, "." or ".." segment, none longer than ZARR_NAME_MAX.  Returns
 * 1 and the length of the directory part (up to the last '/'), or 0 when
 * zarr_path_check() is to decide.
 */

static int
zarr_mtree_path_fast(const char *path, size_t len, size_t *dir_len)
{
    size_t         i, seg;
    unsigned char  c;

    seg = 0;

    for (i = 0; i < len; i++) {
        c = (unsigned char) path[i];

        if (c == '/') {
            if (!zarr_mtree_segment_ok(path + seg, i - seg)) {
                return 0;
            }

            seg = i + 1;
            continue;
        }

        if (c == 0 || c >= 0x80) {
            return 0;
        }
    }

    if (!zarr_mtree_segment_ok(path + seg, len - seg)) {
        return 0;
    }

    *dir_len = seg ? seg - 1 : 0;

    return 1;
}


/*
 * The directory path[0 .. dir_len), created with its parents if new;
 * under the tree's lock when other parts are at work.
 */

static uint32_t
zarr_mtree_find_dir(zarr_mpart_t *part, const char *path, size_t dir_len)
{
    char          *p;
    size_t         i, off;
    uint32_t       d;
    zarr_mtree_t  *t;

    if (part->last_len == dir_len
        && (dir_len == 0 || memcmp(part->last, path, dir_len) == 0))
    {
        return part->last_dir;
    }

    t = part->tree;

    if (part->shared) {
        pthread_mutex_lock(&t->lock);
    }

    d = 0;
    off = 0;

    for (i = 0; i <= dir_len && dir_len; i++) {
        if (i < dir_len && path[i] != '/') {
            continue;
        }

        d = zarr_mtree_child(t, d, path + off, i - off);
        if (d == ZARR_MTREE_NONE) {
            break;
        }

        off = i + 1;
    }

    if (part->shared) {
        pthread_mutex_unlock(&t->lock);
    }

    if (d == ZARR_MTREE_NONE) {
        return d;
    }

    if (dir_len > part->last_cap) {
        p = realloc(part->last, dir_len + 256);
        if (p == NULL) {
            return ZARR_MTREE_NONE;
        }

        part->last = p;
        part->last_cap = dir_len + 256;
    }

    if (dir_len) {
        memcpy(part->last, path, dir_len);
    }

    part->last_len = dir_len;
    part->last_dir = d;

    return d;
}


static int
zarr_mtree_new_file(zarr_mpart_t *part, zarr_mfile_t **file,
    zarr_err_t *err)
{
    uint32_t        cap;
    zarr_mfile_t   *f, **chunks;

    if ((part->nfiles & (ZARR_MTREE_FILES_CHUNK - 1)) == 0) {
        if (part->nfiles >= ZARR_MTREE_NONE - ZARR_MTREE_FILES_CHUNK) {
            return zarr_mtree_err(err, ZARR_ERR_INVALID, "too many files");
        }

        if (part->nchunks == part->chunks_cap) {
            cap = part->chunks_cap ? part->chunks_cap * 2 : 16;
            chunks = realloc(part->chunks,
                             (size_t) cap * sizeof(zarr_mfile_t *));
            if (chunks == NULL) {
                return zarr_mtree_err(err, ZARR_ERR_NOMEM, "out of memory");
            }

            part->chunks = chunks;
            part->chunks_cap = cap;
        }

        f = zarr_mtree_alloc(ZARR_MTREE_FILES_CHUNK * sizeof(zarr_mfile_t));
        if (f == NULL) {
            return zarr_mtree_err(err, ZARR_ERR_NOMEM, "out of memory");
        }

        part->chunks[part->nchunks++] = f;
    }

    *file = &part->chunks[part->nfiles >> ZARR_MTREE_FILES_SHIFT]
                         [part->nfiles & (ZARR_MTREE_FILES_CHUNK - 1)];
    part->nfiles++;

    return ZARR_OK;
}


static int
zarr_mtree_insert(zarr_mpart_t *part, const char *path, size_t path_len,
    uint64_t size, const char *etag, size_t etag_len, uint64_t line,
    int copy, zarr_err_t *err)
{
    int            rc;
    char          *p;
    size_t         start, dir_len, off;
    uint32_t       d;
    const char    *slash;
    zarr_mfile_t  *f;

    if (!zarr_mtree_path_fast(path, path_len, &dir_len)) {
        rc = zarr_path_check(path, path_len, &off);

        if (rc == ZARR_PATH_OK && path_len == 0) {
            rc = ZARR_PATH_EMPTY_SEGMENT;
        }

        if (rc != ZARR_PATH_OK) {
            return zarr_mtree_err(err, ZARR_ERR_INVALID,
                                  "path \"%.*s\": %s", (int) path_len, path,
                                  zarr_path_strerror(rc));
        }

        slash = memrchr(path, '/', path_len);
        dir_len = slash ? (size_t) (slash - path) : 0;
    }

    if (etag_len == 0 || etag_len > ZARR_ETAG_MAX
        || zarr_utf8_valid_prefix(etag, etag_len) != etag_len)
    {
        return zarr_mtree_err(err, ZARR_ERR_INVALID,
                              "path \"%.*s\": bad ETag", (int) path_len,
                              path);
    }

    start = dir_len ? dir_len + 1 : 0;            /* the file name */

    d = zarr_mtree_find_dir(part, path, dir_len);
    if (d == ZARR_MTREE_NONE) {
        return zarr_mtree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    /* the ETag is found from the name: copied beside it if far away */

    p = NULL;

    if (copy || (uintptr_t) etag < (uintptr_t) (path + start)
        || (uintptr_t) etag - (uintptr_t) (path + start) > UINT16_MAX)
    {
        if (part->shared) {
            pthread_mutex_lock(&part->tree->lock);
        }

        p = zarr_arena_alloc(part->tree, path_len - start + etag_len);

        if (part->shared) {
            pthread_mutex_unlock(&part->tree->lock);
        }

        if (p == NULL) {
            return zarr_mtree_err(err, ZARR_ERR_NOMEM, "out of memory");
        }
    }

    f = NULL;

    rc = zarr_mtree_new_file(part, &f, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    if (p) {
        memcpy(p, path + start, path_len - start);
        memcpy(p + path_len - start, etag, etag_len);
        f->name = p;
        f->etag_off = (uint16_t) (path_len - start);

    } else {
        f->name = path + start;
        f->etag_off = (uint16_t) (etag - path - start);
    }

    if (line > ZARR_MTREE_LINE_MAX) {
        line = ZARR_MTREE_LINE_MAX;
    }

    f->name_len = (uint16_t) (path_len - start);
    f->etag_len = (uint16_t) etag_len;
    f->size = size;
    f->line_lo = (uint32_t) line;
    f->line_hi = (uint16_t) (line >> 32);
    f->dir = d;

    return ZARR_OK;
}


/* one part of a tsv listing, lines numbered from 1 */

static void *
zarr_mtree_read_part(void *data)
{
    zarr_mpart_t          *part = data;
    int                    rc;
    char                   msg[ZARR_LISTING_ERR_MAX];
    size_t                 off, n;
    const char            *lf;
    zarr_listing_entry_t   e;

    part->rc = ZARR_OK;

    for (off = 0; off < part->len; off += n) {
        lf = memchr(part->data + off, '\n', part->len - off);
        n = lf ? (size_t) (lf + 1 - part->data - off) : part->len - off;
        part->lines++;

        rc = zarr_listing_tsv(part->data + off, n, &e, msg, sizeof(msg));

        if (rc == ZARR_LISTING_BLANK) {
            continue;
        }

        if (rc != ZARR_LISTING_OK) {
            part->rc = zarr_mtree_err(&part->err, ZARR_ERR_INVALID, "%s",
                                      msg);
            break;
        }

        rc = zarr_mtree_insert(part, e.path, e.path_len, e.size, e.etag,
                               e.etag_len, part->lines, 0, &part->err);

        if (rc != ZARR_OK) {
            part->rc = rc;
            break;
        }
    }

    return NULL;
}


/*
 * The parts' files after the tree's, in order: the end of each one's last
 * chunk a hole of files without a directory; their lines renumbered from
 * the lines before them.  The first error by line is the listing's.
 */

static int
zarr_mtree_merge(zarr_mtree_t *t, zarr_mpart_t *parts, int n,
    uint64_t *line, zarr_err_t *err)
{
    int            k;
    uint32_t       i, cap, chunks;
    uint64_t       base, l;
    zarr_mfile_t  *f, **p;
    zarr_mpart_t  *part;

    base = parts[0].lines;

    for (k = 1; k < n; k++) {
        part = &parts[k];

        if (parts[0].rc != ZARR_OK) {
            break;
        }

        for (i = 0; i < part->nfiles; i++) {
            f = &part->chunks[i >> ZARR_MTREE_FILES_SHIFT]
                             [i & (ZARR_MTREE_FILES_CHUNK - 1)];
            l = zarr_mfile_line(f) + base;
            l = l > ZARR_MTREE_LINE_MAX ? ZARR_MTREE_LINE_MAX : l;
            f->line_lo = (uint32_t) l;
            f->line_hi = (uint16_t) (l >> 32);
        }

        if (part->rc != ZARR_OK) {
            parts[0].rc = part->rc;
            parts[0].err = part->err;
            parts[0].lines = base + part->lines;
            break;
        }

        base += part->lines;

        /* the tree's last chunk ends in a hole */

        for (i = t->files.nfiles;
             i & (ZARR_MTREE_FILES_CHUNK - 1);
             i++)
        {
            zarr_mtree_file(t, i)->dir = ZARR_MTREE_NONE;
        }

        chunks = t->files.nchunks + part->nchunks;

        if ((uint64_t) chunks * ZARR_MTREE_FILES_CHUNK
            >= ZARR_MTREE_NONE - ZARR_MTREE_FILES_CHUNK)
        {
            parts[0].rc = zarr_mtree_err(&parts[0].err, ZARR_ERR_INVALID,
                                         "too many files");
            parts[0].lines = base;
            break;
        }

        if (chunks > t->files.chunks_cap) {
            cap = chunks + 16;
            p = realloc(t->files.chunks, (size_t) cap * sizeof(zarr_mfile_t *));
            if (p == NULL) {
                parts[0].rc = zarr_mtree_err(&parts[0].err, ZARR_ERR_NOMEM,
                                             "out of memory");
                parts[0].lines = base;
                break;
            }

            t->files.chunks = p;
            t->files.chunks_cap = cap;
        }

        if (part->nchunks) {
            memcpy(t->files.chunks + t->files.nchunks, part->chunks,
                   part->nchunks * sizeof(zarr_mfile_t *));

            t->files.nfiles = t->files.nchunks * ZARR_MTREE_FILES_CHUNK
                              + part->nfiles;
            t->files.nchunks = chunks;
        }

        part->nchunks = 0;
    }

    /* a part's directory cache stays with it: the tree's is kept */

    *line = parts[0].lines;

    if (parts[0].rc != ZARR_OK) {
        *err = parts[0].err;
    }

    return parts[0].rc;
}


int
zarr_mtree_add_tsv(zarr_mtree_t *t, const char *data, size_t len,
    uint64_t *line, zarr_err_t *err)
{
    int            n, k, started, rc;
    size_t         off, end;
    const char    *lf;
    zarr_mpart_t  *parts;

    n = t->threads;

    if (len < ZARR_MTREE_MIN_SPLIT) {
        n = 1;
    }

    parts = calloc(n, sizeof(zarr_mpart_t));
    if (parts == NULL) {
        *line = 0;
        return zarr_mtree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    /* part 0 goes into the tree's own files; the others after a line end */

    off = 0;

    for (k = 0; k < n; k++) {
        end = len / n * (k + 1);

        if (k == n - 1 || end <= off) {
            end = k == n - 1 ? len : off;

        } else {
            lf = memchr(data + end - 1, '\n', len - end + 1);
            end = lf ? (size_t) (lf + 1 - data) : len;
        }

        parts[k].tree = t;
        parts[k].data = data + off;
        parts[k].len = end - off;
        parts[k].shared = n > 1;
        off = end;
    }

    /* part 0 in the tree's own state (directory cache, last chunk) */

    t->files.data = parts[0].data;
    t->files.len = parts[0].len;
    t->files.lines = 0;
    t->files.shared = n > 1;
    parts[0] = t->files;

    started = 1;

    if (n > 1) {
        pthread_mutex_init(&t->lock, NULL);

        for (k = 1; k < n; k++) {
            if (pthread_create(&parts[k].thread, NULL, zarr_mtree_read_part,
                               &parts[k])
                != 0)
            {
                break;
            }

            started++;
        }
    }

    zarr_mtree_read_part(&parts[0]);

    for (k = 1; k < started; k++) {
        pthread_join(parts[k].thread, NULL);
    }

    /* parts whose thread did not start: read here, in order */

    for (k = started; k < n; k++) {
        zarr_mtree_read_part(&parts[k]);
    }

    if (n > 1) {
        pthread_mutex_destroy(&t->lock);
    }

    t->files = parts[0];
    t->files.shared = 0;
    t->files.data = NULL;
    t->files.len = 0;

    rc = zarr_mtree_merge(t, parts, n, line, err);

    if (rc == ZARR_OK) {
        *line = 0;
    }

    for (k = 1; k < n; k++) {
        zarr_mpart_free(&parts[k]);
    }

    free(parts);

    return rc;
}


/*
 * t->order: the files, directory by directory (a counting sort, in the
 * order they came within one); t->dir_order: the directories, parent by
 * parent; and every directory's file count in its subtree.
 */

static int
zarr_mtree_group(zarr_mtree_t *t)
{
    uint32_t       i, n, *pos;
    zarr_mdir_t   *d;
    zarr_mfile_t  *f;

    free(t->order);
    free(t->dir_order);

    t->order = zarr_mtree_alloc((size_t) t->files.nfiles * sizeof(uint32_t));
    t->dir_order = malloc((size_t) t->ndirs * sizeof(zarr_mdir_t *));
    pos = malloc((size_t) t->ndirs * sizeof(uint32_t));

    if (t->order == NULL || t->dir_order == NULL || pos == NULL) {
        free(pos);
        return ZARR_ERR_NOMEM;
    }

    /* a directory comes after its parent: children first, backwards */

    for (i = 0; i < t->ndirs; i++) {
        t->dirs[i].nfiles = 0;
        t->dirs[i].ndirs = 0;
        t->dirs[i].task = ZARR_MTREE_NONE;
        t->dirs[i].done = 0;
    }

    /* holes: the ends of chunks of a listing read in parts */

    for (i = 0; i < t->files.nfiles; i++) {
        f = zarr_mtree_file(t, i);

        if (f->dir != ZARR_MTREE_NONE) {
            t->dirs[f->dir].nfiles++;
        }
    }

    for (i = 0; i < t->ndirs; i++) {
        t->dirs[i].total = t->dirs[i].nfiles;
    }

    for (i = t->ndirs - 1; i > 0; i--) {
        d = &t->dirs[i];
        t->dirs[d->parent].total += d->total;
        t->dirs[d->parent].ndirs++;
    }

    n = 0;

    for (i = 0; i < t->ndirs; i++) {
        t->dirs[i].files = n;
        pos[i] = n;
        n += t->dirs[i].nfiles;
    }

    for (i = 0; i < t->files.nfiles; i++) {
        f = zarr_mtree_file(t, i);

        if (f->dir != ZARR_MTREE_NONE) {
            t->order[pos[f->dir]++] = i;
        }
    }

    n = 0;

    for (i = 0; i < t->ndirs; i++) {
        t->dirs[i].dirs = n;
        pos[i] = n;
        n += t->dirs[i].ndirs;
    }

    for (i = 1; i < t->ndirs; i++) {
        t->dir_order[pos[t->dirs[i].parent]++] = &t->dirs[i];
    }

    free(pos);

    return ZARR_OK;
}


static int
zarr_mdir_cmp(const void *a, const void *b)
{
    const zarr_mdir_t  *x = *(const zarr_mdir_t **) a;
    const zarr_mdir_t  *y = *(const zarr_mdir_t **) b;

    return zarr_name_cmp(x->name, x->name_len, y->name, y->name_len);
}


/* the first 8 bytes big-endian, 0 after the end: names hold no NUL */

static uint64_t
zarr_mkey(const char *name, size_t len)
{
    size_t               i;
    uint64_t             k;
    const unsigned char  *p;

    p = (const unsigned char *) name;
    k = 0;

    if (len >= 8) {
        for (i = 0; i < 8; i++) {
            k = (k << 8) | p[i];
        }

        return k;
    }

    for (i = 0; i < len; i++) {
        k = (k << 8) | p[i];
    }

    return k << (8 * (8 - len));
}


/* byte order of the names, shorter first, then the line */

static int
zarr_mkey_less(zarr_mtree_t *t, const zarr_mkey_t *a, const zarr_mkey_t *b)
{
    int                  rc;
    const zarr_mfile_t  *x, *y;

    if (a->key != b->key) {
        return a->key < b->key;
    }

    x = zarr_mtree_file(t, a->file);
    y = zarr_mtree_file(t, b->file);

    /* equal keys: both names start alike, up to the shorter's 8 bytes */

    if (x->name_len > 8 && y->name_len > 8) {
        rc = zarr_name_cmp(x->name + 8, x->name_len - 8, y->name + 8,
                           y->name_len - 8);

    } else {
        rc = (x->name_len > y->name_len) - (x->name_len < y->name_len);
    }

    if (rc != 0) {
        return rc < 0;
    }

    return zarr_mfile_line(x) < zarr_mfile_line(y);
}


/* a merge sort, stable; tmp holds n / 2 + 1 */

static void
zarr_mkey_sort(zarr_mtree_t *t, zarr_mkey_t *a, zarr_mkey_t *tmp, size_t n)
{
    size_t       i, j, k, m;
    zarr_mkey_t  v;

    if (n <= 16) {
        for (i = 1; i < n; i++) {
            v = a[i];

            for (j = i; j > 0 && zarr_mkey_less(t, &v, &a[j - 1]); j--) {
                a[j] = a[j - 1];
            }

            a[j] = v;
        }

        return;
    }

    m = n / 2;

    zarr_mkey_sort(t, a, tmp, m);
    zarr_mkey_sort(t, a + m, tmp, n - m);

    if (!zarr_mkey_less(t, &a[m], &a[m - 1])) {
        return;
    }

    memcpy(tmp, a, m * sizeof(zarr_mkey_t));

    i = 0;
    j = m;
    k = 0;

    while (i < m && j < n) {
        if (zarr_mkey_less(t, &a[j], &tmp[i])) {
            a[k++] = a[j++];

        } else {
            a[k++] = tmp[i++];
        }
    }

    while (i < m) {
        a[k++] = tmp[i++];
    }
}


/*
 * Sorts d's files by name into t->order and refuses a name given twice
 * (the lines of both in the message).
 */

static int
zarr_mtree_sort_files(zarr_mwork_t *w, zarr_mdir_t *d)
{
    size_t               i, n, cap;
    uint32_t            *order;
    zarr_mkey_t         *keys;
    zarr_mtree_t        *t;
    const zarr_mfile_t  *f, *g;

    t = w->tree;
    n = d->nfiles;
    order = t->order + d->files;

    if (n < 2) {
        return ZARR_OK;
    }

    if (n > w->keys_cap) {
        cap = n < 1024 ? 1024 : n;

        free(w->keys);
        free(w->tmp);
        w->keys = zarr_mtree_alloc(cap * sizeof(zarr_mkey_t));
        w->tmp = zarr_mtree_alloc((cap / 2 + 1) * sizeof(zarr_mkey_t));
        w->keys_cap = 0;

        if (w->keys == NULL || w->tmp == NULL) {
            return zarr_mtree_err(w->err, ZARR_ERR_NOMEM, "out of memory");
        }

        w->keys_cap = cap;
    }

    keys = w->keys;

    for (i = 0; i < n; i++) {
        f = zarr_mtree_file(t, order[i]);
        keys[i].key = zarr_mkey(f->name, f->name_len);
        keys[i].file = order[i];
    }

    /* listings from S3 come sorted */

    for (i = 1; i < n; i++) {
        if (zarr_mkey_less(t, &keys[i], &keys[i - 1])) {
            zarr_mkey_sort(t, keys, w->tmp, n);
            break;
        }
    }

    for (i = 0; i < n; i++) {
        order[i] = keys[i].file;
    }

    for (i = 1; i < n; i++) {
        if (keys[i].key != keys[i - 1].key) {
            continue;
        }

        f = zarr_mtree_file(t, order[i - 1]);
        g = zarr_mtree_file(t, order[i]);

        if (zarr_name_cmp(f->name, f->name_len, g->name, g->name_len) == 0) {
            return zarr_mtree_err(w->err, ZARR_ERR_INVALID,
                                  "\"%.*s%s%.*s\" is listed twice "
                                  "(lines %llu and %llu)",
                                  (int) w->path.len, w->path.data,
                                  w->path.len ? "/" : "",
                                  (int) g->name_len, g->name,
                                  (unsigned long long) zarr_mfile_line(f),
                                  (unsigned long long) zarr_mfile_line(g));
        }
    }

    return ZARR_OK;
}


static int
zarr_mwork_init(zarr_mwork_t *w, zarr_mtree_t *t, zarr_err_t *err)
{
    memset(w, 0, sizeof(zarr_mwork_t));
    w->tree = t;
    w->err = err;
    zarr_buf_init(&w->path);

    w->md5 = zarr_hash_create(ZARR_HASH_MD5);
    w->out = malloc(ZARR_MTREE_FLUSH + ZARR_MTREE_ENTRY_MAX);

    if (w->md5 == NULL || w->out == NULL) {
        return zarr_mtree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    return ZARR_OK;
}


static void
zarr_mwork_free(zarr_mwork_t *w)
{
    zarr_hash_destroy(w->md5);
    free(w->out);
    free(w->keys);
    free(w->tmp);
    zarr_buf_free(&w->path);
}


/* the pending bytes to md5, and to t->manifest when keeping them */

static int
zarr_mwork_flush(zarr_mwork_t *w)
{
    if (zarr_hash_update(w->md5, w->out, w->len) != 0) {
        return ZARR_ERR_NOMEM;
    }

    if (w->tree->keep
        && zarr_buf_add(&w->tree->manifest, w->out, w->len) != 0)
    {
        return ZARR_ERR_NOMEM;
    }

    w->len = 0;

    return ZARR_OK;
}


static char *
zarr_mwork_u64(char *p, uint64_t v)
{
    char   tmp[24], *q;
    size_t  n;

    q = tmp + sizeof(tmp);

    do {
        *--q = (char) ('0' + v % 10);
        v /= 10;
    } while (v);

    n = tmp + sizeof(tmp) - q;
    memcpy(p, q, n);

    return p + n;
}


#define zarr_mwork_add(p, s)  (memcpy(p, s, sizeof(s) - 1), p + sizeof(s) - 1)


/*
 * The manifest of d (its subdirectories' sums are known, its files
 * sorted) streamed into md5: d->sum.
 */

static int
zarr_mtree_manifest_of(zarr_mwork_t *w, zarr_mdir_t *d)
{
    int            rc;
    char          *p, hex[ZARR_MD5_HEX_LEN + 1];
    size_t         i, n, dlen;
    uint64_t       count, size;
    zarr_mdir_t   *c;
    zarr_mtree_t  *t;
    zarr_mfile_t  *f;

    t = w->tree;
    count = d->nfiles;
    size = 0;

    if (t->keep) {
        t->manifest.len = 0;
    }

    if (zarr_hash_reset(w->md5) != 0) {
        return ZARR_ERR_NOMEM;
    }

    p = w->out;
    p = zarr_mwork_add(p, "{\"directories\":[");

    for (i = 0; i < d->ndirs; i++) {
        c = t->dir_order[d->dirs + i];

        if (p - w->out >= ZARR_MTREE_FLUSH) {
            w->len = p - w->out;
            rc = zarr_mwork_flush(w);
            if (rc != ZARR_OK) {
                return rc;
            }

            p = w->out;
        }

        if (i) {
            *p++ = ',';
        }

        dlen = strlen(c->sum.digest);

        p = zarr_mwork_add(p, "{\"digest\":\"");
        memcpy(p, c->sum.digest, dlen);
        p += dlen;
        p = zarr_mwork_add(p, "\",\"name\":\"");

        n = zarr_json_escape(p, c->name, c->name_len);
        if (n == (size_t) -1) {
            return ZARR_ERR_INVALID;
        }

        p += n;
        p = zarr_mwork_add(p, "\",\"size\":");
        p = zarr_mwork_u64(p, c->sum.size);
        *p++ = '}';

        count += c->sum.count;
        size += c->sum.size;
    }

    p = zarr_mwork_add(p, "],\"files\":[");

    for (i = 0; i < d->nfiles; i++) {
        f = zarr_mtree_file(t, t->order[d->files + i]);

        if (p - w->out >= ZARR_MTREE_FLUSH) {
            w->len = p - w->out;
            rc = zarr_mwork_flush(w);
            if (rc != ZARR_OK) {
                return rc;
            }

            p = w->out;
        }

        if (i) {
            *p++ = ',';
        }

        p = zarr_mwork_add(p, "{\"digest\":\"");

        n = zarr_json_escape(p, zarr_mfile_etag(f), f->etag_len);
        if (n == (size_t) -1) {
            return ZARR_ERR_INVALID;
        }

        p += n;
        p = zarr_mwork_add(p, "\",\"name\":\"");

        n = zarr_json_escape(p, f->name, f->name_len);
        if (n == (size_t) -1) {
            return ZARR_ERR_INVALID;
        }

        p += n;
        p = zarr_mwork_add(p, "\",\"size\":");
        p = zarr_mwork_u64(p, f->size);
        *p++ = '}';

        size += f->size;
    }

    p = zarr_mwork_add(p, "]}");

    w->len = p - w->out;

    rc = zarr_mwork_flush(w);
    if (rc != ZARR_OK) {
        return rc;
    }

    if (zarr_hash_final_hex(w->md5, hex) != 0) {
        return ZARR_ERR_NOMEM;
    }

    snprintf(d->sum.digest, ZARR_DIGEST_MAX, "%s-%llu--%llu", hex,
             (unsigned long long) count, (unsigned long long) size);
    d->sum.count = count;
    d->sum.size = size;

    return ZARR_OK;
}


/*
 * d's digest after its subtree's, w->path being d's path; cb sees every
 * directory, children first.  A subdirectory that a task computed is
 * taken as it is (its directories replayed to cb).
 */

static int
zarr_mtree_calc(zarr_mwork_t *w, zarr_mdir_t *d, zarr_dir_cb cb, void *ctx)
{
    int            rc;
    size_t         i, plen;
    zarr_mdir_t   *c;
    zarr_mtree_t  *t;
    zarr_mtask_t  *task;

    t = w->tree;

    if (d->ndirs > 1) {
        qsort(t->dir_order + d->dirs, d->ndirs, sizeof(zarr_mdir_t *),
              zarr_mdir_cmp);
    }

    rc = zarr_mtree_sort_files(w, d);
    if (rc != ZARR_OK) {
        return rc;
    }

    for (i = 0; i < d->ndirs; i++) {
        c = t->dir_order[d->dirs + i];
        plen = w->path.len;

        if ((plen && zarr_buf_add(&w->path, "/", 1) != 0)
            || zarr_buf_add(&w->path, c->name, c->name_len) != 0)
        {
            return zarr_mtree_err(w->err, ZARR_ERR_NOMEM, "out of memory");
        }

        if (c->task != ZARR_MTREE_NONE) {

            /*
             * a subtree a task computed: reported as this walk would have
             * done it, up to the task's error if it met one
             */

            task = &t->tasks[c->task];
            rc = cb ? zarr_mtree_replay(w, c, cb, ctx) : ZARR_OK;

            if (rc == ZARR_OK && task->rc != ZARR_OK) {
                *w->err = task->err;
                rc = task->rc;
            }

        } else {
            rc = zarr_mtree_calc(w, c, cb, ctx);
        }

        w->path.len = plen;

        if (rc != ZARR_OK) {
            return rc;
        }
    }

    rc = zarr_mtree_manifest_of(w, d);

    if (rc != ZARR_OK) {
        if (rc == ZARR_ERR_NOMEM) {
            return zarr_mtree_err(w->err, rc, "out of memory");
        }

        return zarr_mtree_err(w->err, rc,
                              "cannot build the manifest of \"%.*s\"",
                              (int) w->path.len, w->path.data);
    }

    d->done = 1;

    if (cb && cb(ctx, w->path.data, w->path.len, &d->sum) != 0) {
        return zarr_mtree_err(w->err, ZARR_ERR_INVALID, "walk stopped");
    }

    return ZARR_OK;
}


/*
 * cb for every directory of a subtree that a task computed, in the order
 * of zarr_mtree_calc(); after an error, the directories done before it
 * (a prefix of that order: children come before their parent)
 */

static int
zarr_mtree_replay(zarr_mwork_t *w, zarr_mdir_t *d, zarr_dir_cb cb,
    void *ctx)
{
    int           rc;
    size_t        i, plen;
    zarr_mdir_t  *c;

    for (i = 0; i < d->ndirs; i++) {
        c = w->tree->dir_order[d->dirs + i];
        plen = w->path.len;

        if ((plen && zarr_buf_add(&w->path, "/", 1) != 0)
            || zarr_buf_add(&w->path, c->name, c->name_len) != 0)
        {
            return zarr_mtree_err(w->err, ZARR_ERR_NOMEM, "out of memory");
        }

        rc = zarr_mtree_replay(w, c, cb, ctx);

        w->path.len = plen;

        if (rc != ZARR_OK) {
            return rc;
        }
    }

    if (d->done && cb(ctx, w->path.data, w->path.len, &d->sum) != 0) {
        return zarr_mtree_err(w->err, ZARR_ERR_INVALID, "walk stopped");
    }

    return ZARR_OK;
}


static int
zarr_mtree_dir_path(zarr_mtree_t *t, zarr_mdir_t *d, zarr_buf_t *path)
{
    size_t  len;

    path->len = 0;

    if (d->parent == ZARR_MTREE_NONE) {
        return 0;
    }

    if (zarr_mtree_dir_path(t, &t->dirs[d->parent], path) != 0) {
        return -1;
    }

    len = path->len;

    if ((len && zarr_buf_add(path, "/", 1) != 0)
        || zarr_buf_add(path, d->name, d->name_len) != 0)
    {
        return -1;
    }

    return 0;
}


/*
 * The tasks: the highest subtrees of at most limit files, or without
 * subdirectories, below the root; the directories above them are left to
 * the caller's thread.
 */

static void
zarr_mtree_plan_dir(zarr_mtree_t *t, zarr_mdir_t *d, uint64_t limit)
{
    size_t        i;
    zarr_mdir_t  *c;

    for (i = 0; i < d->ndirs; i++) {
        c = t->dir_order[d->dirs + i];

        if (c->total <= limit || c->ndirs == 0) {
            t->tasks[t->ntasks].dir = (uint32_t) (c - t->dirs);
            t->tasks[t->ntasks].total = c->total;
            t->tasks[t->ntasks].rc = ZARR_OK;
            t->ntasks++;

        } else {
            zarr_mtree_plan_dir(t, c, limit);
        }
    }
}


static int
zarr_mtask_cmp(const void *a, const void *b)
{
    const zarr_mtask_t  *x = a;
    const zarr_mtask_t  *y = b;

    /* the biggest first */

    return (x->total < y->total) - (x->total > y->total);
}


static int
zarr_mtree_plan(zarr_mtree_t *t, int threads)
{
    uint32_t  i;
    uint64_t  limit;

    free(t->tasks);
    t->ntasks = 0;
    t->next_task = 0;

    t->tasks = malloc((size_t) t->ndirs * sizeof(zarr_mtask_t));
    if (t->tasks == NULL) {
        return ZARR_ERR_NOMEM;
    }

    limit = t->dirs[0].total / ((uint64_t) threads * ZARR_MTREE_SPLIT);

    zarr_mtree_plan_dir(t, &t->dirs[0], limit);

    if (t->ntasks > 1) {
        qsort(t->tasks, t->ntasks, sizeof(zarr_mtask_t), zarr_mtask_cmp);
    }

    for (i = 0; i < t->ntasks; i++) {
        t->dirs[t->tasks[i].dir].task = i;
    }

    return ZARR_OK;
}


static void *
zarr_mtree_worker(void *data)
{
    zarr_mwork_t  *w = data;
    uint32_t       i;
    zarr_mdir_t   *d;
    zarr_mtree_t  *t;
    zarr_mtask_t  *task;

    t = w->tree;

    for ( ;; ) {
        pthread_mutex_lock(&t->lock);
        i = t->next_task++;
        pthread_mutex_unlock(&t->lock);

        if (i >= t->ntasks) {
            break;
        }

        task = &t->tasks[i];
        d = &t->dirs[task->dir];
        w->err = &task->err;

        if (zarr_mtree_dir_path(t, d, &w->path) != 0) {
            task->rc = zarr_mtree_err(w->err, ZARR_ERR_NOMEM,
                                      "out of memory");
            continue;
        }

        task->rc = zarr_mtree_calc(w, d, NULL, NULL);
    }

    return NULL;
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
    int            rc, threads, i, started;
    zarr_mwork_t  *w;

    if (zarr_mtree_group(t) != ZARR_OK) {
        return zarr_mtree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    threads = t->threads;

    if (t->keep || t->dirs[0].total < ZARR_MTREE_MIN_THREADED) {
        threads = 1;
    }

    w = calloc(threads, sizeof(zarr_mwork_t));
    if (w == NULL) {
        return zarr_mtree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    rc = ZARR_OK;

    for (i = 0; i < threads && rc == ZARR_OK; i++) {
        rc = zarr_mwork_init(&w[i], t, err);
    }

    if (rc == ZARR_OK && threads > 1) {
        rc = zarr_mtree_plan(t, threads);

        if (rc != ZARR_OK) {
            zarr_mtree_err(err, rc, "out of memory");
        }
    }

    if (rc == ZARR_OK && threads > 1) {

        /* the caller's thread works too; without threads it does it all */

        pthread_mutex_init(&t->lock, NULL);
        started = 0;

        for (i = 1; i < threads; i++) {
            if (pthread_create(&w[i].thread, NULL, zarr_mtree_worker, &w[i])
                != 0)
            {
                break;
            }

            started++;
        }

        zarr_mtree_worker(&w[0]);

        for (i = 1; i <= started; i++) {
            pthread_join(w[i].thread, NULL);
        }

        pthread_mutex_destroy(&t->lock);
    }

    if (rc == ZARR_OK) {
        w[0].err = err;
        w[0].path.len = 0;

        rc = zarr_mtree_calc(&w[0], &t->dirs[0], cb, ctx);
    }

    if (rc == ZARR_OK) {
        *root = t->dirs[0].sum;
    }

    for (i = 0; i < threads; i++) {
        zarr_mwork_free(&w[i]);
    }

    free(w);

    return rc;
}
