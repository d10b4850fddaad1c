
/*
 * zarrctl: DANDI zarr checksums of a local directory, a listing or an S3
 * prefix, and read-only queries of a gateway's store (DESIGN section 8).
 *
 * Exit status: 0 success, 2 bad input (usage, malformed listing, bad
 * path), 1 any other failure (I/O, backend, store).
 */


#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "zarr_digest.h"
#include "zarr_hash.h"
#include "zarr_listing.h"
#include "zarr_mtree.h"
#include "zarr_s3.h"
#include "zarr_tree.h"


#define ZARRCTL_OK       0
#define ZARRCTL_FAIL     1
#define ZARRCTL_BAD      2

/* the size of a transparent huge page on x86-64 and arm64 (4K pages) */
#define ZARRCTL_HUGE     (2 * 1024 * 1024)


typedef struct {
    int           tree;
    int           documents;
    const char   *listing;
    const char   *format;
    const char   *s3;
    const char   *endpoint;
    const char   *store;
    char        **args;
    int           nargs;
    int           progress;      /* -1: when stderr is a terminal */
} zarrctl_opts_t;


/* progress on stderr: how far a listing or a walk has come */
typedef struct {
    int           on;
    const char   *what;          /* "objects listed", "files read" */
    uint64_t      n;
    uint64_t      bytes;
    double        start;
    double        shown;
} zarrctl_progress_t;

static zarrctl_progress_t  zarrctl_progress;


static int zarrctl_usage(const char *fmt, ...);
static void zarrctl_progress_start(zarrctl_opts_t *o, const char *what);
static void zarrctl_progress_tick(uint64_t bytes);
static void zarrctl_progress_end(void);
static int zarrctl_fail(int rc, const char *fmt, ...);
static int zarrctl_print_dir(void *ctx, const char *dir, size_t dir_len,
    const zarr_dir_sum_t *sum);
static void zarrctl_threads(zarr_mtree_t *t);
static int zarrctl_report(zarr_mtree_t *t, zarrctl_opts_t *o);
static int zarrctl_print_document(void *ctx, const char *dir,
    size_t dir_len, const zarr_dir_sum_t *sum);
static void *zarrctl_alloc(size_t size);
static int zarrctl_slurp(int fd, const char *name, char **data,
    size_t *len);
static int zarrctl_read_listing(zarr_mtree_t *t, const char *data,
    size_t len, const char *name, int jsonl);
static int zarrctl_checksum_listing(zarrctl_opts_t *o);
static int zarrctl_walk_dir(zarr_mtree_t *t, zarr_buf_t *path,
    size_t root_len, zarr_hash_t **h, char *buf, size_t bufsize);
static int zarrctl_checksum_dir(zarrctl_opts_t *o);
static int zarrctl_s3_object(const zarr_s3_object_t *obj, void *data);
static int zarrctl_checksum_s3(zarrctl_opts_t *o);
static int zarrctl_print_zarr(void *ctx, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    const zarr_dir_sum_t *sum);
static int zarrctl_store(zarrctl_opts_t *o);


static const char  zarrctl_usage_text[] =
"usage:\n"
"  zarrctl checksum [--tree|--documents] DIR\n"
"  zarrctl checksum [--tree|--documents] --listing FILE|- "
"[--format tsv|jsonl]\n"
"  zarrctl checksum [--tree|--documents] --s3 s3://BUCKET/PREFIX/ "
"--endpoint URL\n"
"  zarrctl store --store DIR list\n"
"  zarrctl store --store DIR digest BUCKET ZARR_ID [--tree]\n"
"  zarrctl store --store DIR status\n"
"\n"
"checksum prints the DANDI zarr checksum of the tree; with --tree every\n"
"directory as DIR<TAB>DIGEST, children first, the root as \".\", last;\n"
"--documents the same with each directory's .checksum document (one\n"
"line of JSON) instead of its digest.\n"
"A tsv listing has lines PATH<TAB>SIZE<TAB>ETAG (split at the last two\n"
"TABs); jsonl has lines {\"path\":..,\"size\":..,\"etag\":..}.\n"
"--s3 reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION.\n"
"--progress / --no-progress: how far an --s3 listing or a DIR walk has\n"
"come, on stderr (default: when stderr is a terminal).\n";


static double
zarrctl_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static void
zarrctl_progress_start(zarrctl_opts_t *o, const char *what)
{
    zarrctl_progress_t  *p = &zarrctl_progress;

    memset(p, 0, sizeof(zarrctl_progress_t));
    p->on = o->progress < 0 ? isatty(STDERR_FILENO) : o->progress;
    p->what = what;
    p->start = zarrctl_now();
    p->shown = p->start;
}


static void
zarrctl_progress_show(int last)
{
    zarrctl_progress_t  *p = &zarrctl_progress;

    fprintf(stderr, "\rzarrctl: %llu %s", (unsigned long long) p->n,
            p->what);

    if (p->bytes) {
        fprintf(stderr, ", %.1f MB", p->bytes / 1e6);
    }

    fprintf(stderr, " (%.1f s)%s", zarrctl_now() - p->start,
            last ? "\n" : "");
    fflush(stderr);
}


/* one more object or file: shown at most four times a second */

static void
zarrctl_progress_tick(uint64_t bytes)
{
    double               now;
    zarrctl_progress_t  *p = &zarrctl_progress;

    p->n++;
    p->bytes += bytes;

    if (!p->on || (p->n & 255) != 0) {
        return;
    }

    now = zarrctl_now();

    if (now - p->shown >= 0.25) {
        p->shown = now;
        zarrctl_progress_show(0);
    }
}


static void
zarrctl_progress_end(void)
{
    if (zarrctl_progress.on) {
        zarrctl_progress_show(1);
        zarrctl_progress.on = 0;
    }
}


static int
zarrctl_usage(const char *fmt, ...)
{
    va_list  args;

    if (fmt) {
        fprintf(stderr, "zarrctl: ");
        va_start(args, fmt);
        vfprintf(stderr, fmt, args);
        va_end(args);
        fprintf(stderr, "\n");
    }

    fputs(zarrctl_usage_text, stderr);

    return ZARRCTL_BAD;
}


static int
zarrctl_fail(int rc, const char *fmt, ...)
{
    va_list  args;

    fprintf(stderr, "zarrctl: ");
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fprintf(stderr, "\n");

    return rc;
}


static int
zarrctl_print_dir(void *ctx, const char *dir, size_t dir_len,
    const zarr_dir_sum_t *sum)
{
    (void) ctx;

    if (dir_len == 0) {
        fputs(".", stdout);

    } else {
        fwrite(dir, 1, dir_len, stdout);
    }

    printf("\t%s\n", sum->digest);

    return 0;
}


/* DIR<TAB>{"checksums":...,"digest":...,"size":...} */

static int
zarrctl_print_document(void *ctx, const char *dir, size_t dir_len,
    const zarr_dir_sum_t *sum)
{
    zarr_mtree_t      *t = ctx;
    zarr_buf_t         doc;
    const zarr_buf_t  *m;

    m = zarr_mtree_manifest(t);
    zarr_buf_init(&doc);

    if (zarr_checksum_document(&doc, m->data, m->len, sum) != ZARR_OK) {
        zarr_buf_free(&doc);
        return -1;
    }

    if (dir_len == 0) {
        fputs(".", stdout);

    } else {
        fwrite(dir, 1, dir_len, stdout);
    }

    fputc('\t', stdout);
    fwrite(doc.data, 1, doc.len, stdout);
    fputc('\n', stdout);

    zarr_buf_free(&doc);

    return 0;
}


/* every core: for reading a listing and for the digests of subtrees */

static void
zarrctl_threads(zarr_mtree_t *t)
{
    long  cpus;

    cpus = sysconf(_SC_NPROCESSORS_ONLN);
    zarr_mtree_threads(t, cpus > 0 ? (int) cpus : 1);
}


static int
zarrctl_report(zarr_mtree_t *t, zarrctl_opts_t *o)
{
    int             rc;
    zarr_err_t      err;
    zarr_dir_sum_t  root;

    zarrctl_threads(t);

    if (o->documents) {
        zarr_mtree_keep_manifests(t);
        rc = zarr_mtree_compute(t, zarrctl_print_document, t, &root, &err);

    } else {
        rc = zarr_mtree_compute(t, o->tree ? zarrctl_print_dir : NULL, NULL,
                                &root, &err);
    }

    if (rc != ZARR_OK) {
        return zarrctl_fail(rc == ZARR_ERR_INVALID ? ZARRCTL_BAD
                                                   : ZARRCTL_FAIL,
                            "%s", err.msg);
    }

    if (!o->tree && !o->documents) {
        printf("%s\n", root.digest);
    }

    if (fflush(stdout) != 0) {
        return zarrctl_fail(ZARRCTL_FAIL, "write error: %s",
                            strerror(errno));
    }

    return ZARRCTL_OK;
}


/*
 * A block for the whole listing, on transparent huge pages where the
 * kernel gives them: page faults are most of the cost of reading a large
 * listing otherwise (a 1,000,000-line listing is ~50 MB).
 */

static void *
zarrctl_alloc(size_t size)
{
    void  *p;

    size = (size + ZARRCTL_HUGE - 1) & ~(size_t) (ZARRCTL_HUGE - 1);

    if (size == 0 || posix_memalign(&p, ZARRCTL_HUGE, size) != 0) {
        return NULL;
    }

    (void) madvise(p, size, MADV_HUGEPAGE);

    return p;
}


/*
 * All of fd into *data (*len bytes).  Read, not mapped: on a virtual
 * machine, a mapped file's pages cost a fault each on first touch, several
 * times the cost of copying them into huge pages.
 */

static int
zarrctl_slurp(int fd, const char *name, char **data, size_t *len)
{
    char         *p, *q;
    size_t        n, cap;
    ssize_t       r;
    struct stat   st;

    cap = ZARRCTL_HUGE;

    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0
        && (uint64_t) st.st_size < SIZE_MAX / 2)
    {
        cap = (size_t) st.st_size + 1;
    }

    p = zarrctl_alloc(cap);
    if (p == NULL) {
        return zarrctl_fail(ZARRCTL_FAIL, "out of memory");
    }

    n = 0;

    for ( ;; ) {
        if (n == cap) {
            q = zarrctl_alloc(cap * 2);
            if (q == NULL) {
                free(p);
                return zarrctl_fail(ZARRCTL_FAIL, "out of memory");
            }

            memcpy(q, p, n);
            free(p);
            p = q;
            cap *= 2;
        }

        r = read(fd, p + n, cap - n);

        if (r == 0) {
            break;
        }

        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }

            free(p);
            return zarrctl_fail(ZARRCTL_FAIL, "%s: read error: %s", name,
                                strerror(errno));
        }

        n += r;
    }

    *data = p;
    *len = n;

    return ZARRCTL_OK;
}


/*
 * The lines of data as getline() would cut them: a tsv listing read in
 * place by the tree (on every core), a jsonl one line by line.
 */

static int
zarrctl_read_listing(zarr_mtree_t *t, const char *data, size_t len,
    const char *name, int jsonl)
{
    int                    rc;
    char                   msg[ZARR_LISTING_ERR_MAX];
    size_t                 off, n;
    uint64_t               lineno;
    const char            *lf;
    zarr_err_t             err;
    zarr_listing_entry_t   e;

    if (!jsonl) {
        rc = zarr_mtree_add_tsv(t, data, len, &lineno, &err);

        if (rc == ZARR_OK) {
            return ZARRCTL_OK;
        }

        if (rc == ZARR_ERR_NOMEM) {
            return zarrctl_fail(ZARRCTL_FAIL, "out of memory");
        }

        return zarrctl_fail(ZARRCTL_BAD, "%s:%" PRIu64 ": %s", name, lineno,
                            err.msg);
    }

    lineno = 0;

    for (off = 0; off < len; off += n) {
        lf = memchr(data + off, '\n', len - off);
        n = lf ? (size_t) (lf + 1 - data - off) : len - off;
        lineno++;

        rc = zarr_listing_jsonl(data + off, n, &e, msg, sizeof(msg));

        if (rc == ZARR_LISTING_BLANK) {
            continue;
        }

        if (rc != ZARR_LISTING_OK) {
            if (rc == ZARR_LISTING_NOMEM) {
                return zarrctl_fail(ZARRCTL_FAIL, "out of memory");
            }

            return zarrctl_fail(ZARRCTL_BAD, "%s:%" PRIu64 ": %s", name,
                                lineno, msg);
        }

        rc = zarr_mtree_add(t, e.path, e.path_len, e.size, e.etag,
                            e.etag_len, lineno, &err);

        zarr_listing_entry_free(&e);

        if (rc != ZARR_OK) {
            return zarrctl_fail(rc == ZARR_ERR_NOMEM ? ZARRCTL_FAIL
                                                     : ZARRCTL_BAD,
                                "%s:%" PRIu64 ": %s", name, lineno,
                                err.msg);
        }
    }

    return ZARRCTL_OK;
}


static int
zarrctl_checksum_listing(zarrctl_opts_t *o)
{
    int            rc, jsonl, fd;
    char          *data;
    size_t         len;
    zarr_mtree_t  *t;

    if (o->nargs != 0) {
        return zarrctl_usage("--listing takes no DIR");
    }

    if (o->format == NULL || strcmp(o->format, "tsv") == 0) {
        jsonl = 0;

    } else if (strcmp(o->format, "jsonl") == 0) {
        jsonl = 1;

    } else {
        return zarrctl_usage("unknown --format \"%s\"", o->format);
    }

    if (strcmp(o->listing, "-") == 0) {
        fd = STDIN_FILENO;

    } else {
        fd = open(o->listing, O_RDONLY);
        if (fd == -1) {
            return zarrctl_fail(ZARRCTL_BAD, "cannot open \"%s\": %s",
                                o->listing, strerror(errno));
        }
    }

    data = NULL;
    len = 0;

    rc = zarrctl_slurp(fd, o->listing, &data, &len);

    if (fd != STDIN_FILENO) {
        close(fd);
    }

    if (rc != ZARRCTL_OK) {
        return rc;
    }

    t = zarr_mtree_create();
    if (t == NULL) {
        rc = zarrctl_fail(ZARRCTL_FAIL, "out of memory");

    } else {
        zarrctl_threads(t);
        rc = zarrctl_read_listing(t, data, len, o->listing, jsonl);

        if (rc == ZARRCTL_OK) {
            rc = zarrctl_report(t, o);
        }

        zarr_mtree_free(t);
    }

    free(data);

    return rc;
}


/*
 * Adds every regular file below path (path->data[0 .. root_len) is the
 * directory given on the command line) with the md5 of its bytes.
 */

static int
zarrctl_walk_dir(zarr_mtree_t *t, zarr_buf_t *path, size_t root_len,
    zarr_hash_t **h, char *buf, size_t bufsize)
{
    int             rc, fd;
    DIR            *dir;
    struct dirent  *de;
    struct stat     st;
    size_t          plen, nlen;
    ssize_t         n;
    uint64_t        size;
    char            hex[ZARR_MD5_HEX_LEN + 1];
    zarr_err_t      err;

    if (zarr_buf_add(path, "", 1) != 0) {
        return zarrctl_fail(ZARRCTL_FAIL, "out of memory");
    }

    path->len--;

    dir = opendir(path->data);
    if (dir == NULL) {
        return zarrctl_fail(ZARRCTL_FAIL, "cannot open directory \"%s\": %s",
                            path->data, strerror(errno));
    }

    rc = ZARRCTL_OK;
    plen = path->len;

    while (rc == ZARRCTL_OK && (errno = 0, de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }

        nlen = strlen(de->d_name);
        path->len = plen;

        if (zarr_buf_add(path, "/", 1) != 0
            || zarr_buf_add(path, de->d_name, nlen + 1) != 0)
        {
            rc = zarrctl_fail(ZARRCTL_FAIL, "out of memory");
            break;
        }

        path->len--;

        if (stat(path->data, &st) != 0) {
            rc = zarrctl_fail(ZARRCTL_FAIL, "cannot stat \"%s\": %s",
                              path->data, strerror(errno));
            break;
        }

        if (S_ISDIR(st.st_mode)) {
            rc = zarrctl_walk_dir(t, path, root_len, h, buf, bufsize);
            continue;
        }

        if (!S_ISREG(st.st_mode)) {
            rc = zarrctl_fail(ZARRCTL_BAD, "\"%s\" is not a regular file",
                              path->data);
            break;
        }

        fd = open(path->data, O_RDONLY);
        if (fd == -1) {
            rc = zarrctl_fail(ZARRCTL_FAIL, "cannot open \"%s\": %s",
                              path->data, strerror(errno));
            break;
        }

        if (*h == NULL) {
            *h = zarr_hash_create(ZARR_HASH_MD5);
            if (*h == NULL) {
                close(fd);
                rc = zarrctl_fail(ZARRCTL_FAIL, "out of memory");
                break;
            }
        }

        size = 0;

        while ((n = read(fd, buf, bufsize)) > 0) {
            zarr_hash_update(*h, buf, n);
            size += n;
        }

        close(fd);

        if (n < 0) {
            rc = zarrctl_fail(ZARRCTL_FAIL, "cannot read \"%s\": %s",
                              path->data, strerror(errno));
            break;
        }

        if (zarr_hash_final_hex(*h, hex) != 0) {
            rc = zarrctl_fail(ZARRCTL_FAIL, "md5 failed");
            break;
        }

        zarr_hash_destroy(*h);
        *h = NULL;

        if (zarr_mtree_add(t, path->data + root_len + 1,
                           path->len - root_len - 1, size, hex,
                           ZARR_MD5_HEX_LEN, 0, &err)
            != ZARR_OK)
        {
            rc = zarrctl_fail(ZARRCTL_BAD, "%s", err.msg);
            break;
        }

        zarrctl_progress_tick(size);
    }

    if (rc == ZARRCTL_OK && errno != 0) {
        rc = zarrctl_fail(ZARRCTL_FAIL, "cannot read directory: %s",
                          strerror(errno));
    }

    closedir(dir);
    path->len = plen;

    return rc;
}


static int
zarrctl_checksum_dir(zarrctl_opts_t *o)
{
    int            rc;
    char          *buf;
    size_t         len;
    struct stat    st;
    zarr_buf_t     path;
    zarr_hash_t   *h;
    zarr_mtree_t  *t;

    if (o->nargs != 1) {
        return zarrctl_usage("checksum takes one DIR");
    }

    if (stat(o->args[0], &st) != 0 || !S_ISDIR(st.st_mode)) {
        return zarrctl_fail(ZARRCTL_BAD, "\"%s\" is not a directory",
                            o->args[0]);
    }

    len = strlen(o->args[0]);

    while (len > 1 && o->args[0][len - 1] == '/') {
        len--;
    }

    zarr_buf_init(&path);
    t = zarr_mtree_create();
    buf = malloc(1 << 20);
    h = NULL;

    if (t == NULL || buf == NULL || zarr_buf_add(&path, o->args[0], len) != 0)
    {
        rc = zarrctl_fail(ZARRCTL_FAIL, "out of memory");
        goto done;
    }

    zarrctl_progress_start(o, "files read");
    rc = zarrctl_walk_dir(t, &path, len, &h, buf, 1 << 20);
    zarrctl_progress_end();

    if (rc == ZARRCTL_OK) {
        rc = zarrctl_report(t, o);
    }

done:

    if (h) {
        zarr_hash_destroy(h);
    }

    free(buf);
    zarr_buf_free(&path);
    zarr_mtree_free(t);

    return rc;
}


typedef struct {
    zarr_mtree_t   *tree;
    size_t          prefix_len;
    uint64_t        n;
    zarr_err_t      err;
    int             failed;
} zarrctl_s3_ctx_t;


static int
zarrctl_s3_object(const zarr_s3_object_t *obj, void *data)
{
    zarrctl_s3_ctx_t  *c = data;

    c->n++;
    zarrctl_progress_tick(0);

    if (zarr_mtree_add(c->tree, obj->key + c->prefix_len,
                       obj->key_len - c->prefix_len, obj->size, obj->etag,
                       obj->etag_len, c->n, &c->err)
        != ZARR_OK)
    {
        c->failed = 1;
        return 1;
    }

    return 0;
}


static int
zarrctl_checksum_s3(zarrctl_opts_t *o)
{
    int               rc;
    char             *bucket, *prefix, *slash, errbuf[256];
    size_t            plen;
    zarr_s3_t        *s3;
    zarr_s3_conf_t    conf;
    zarr_s3_error_t   err;
    zarrctl_s3_ctx_t  c;

    if (o->nargs != 0) {
        return zarrctl_usage("--s3 takes no DIR");
    }

    if (o->endpoint == NULL) {
        return zarrctl_usage("--s3 needs --endpoint URL");
    }

    if (strncmp(o->s3, "s3://", 5) != 0 || o->s3[5] == '\0'
        || o->s3[5] == '/')
    {
        return zarrctl_usage("expected s3://BUCKET/PREFIX/, not \"%s\"",
                             o->s3);
    }

    memset(&conf, 0, sizeof(zarr_s3_conf_t));
    conf.endpoint = o->endpoint;
    conf.access_key = getenv("AWS_ACCESS_KEY_ID");
    conf.secret_key = getenv("AWS_SECRET_ACCESS_KEY");
    conf.region = getenv("AWS_REGION");

    if (conf.access_key == NULL || conf.secret_key == NULL) {
        return zarrctl_usage("--s3 needs AWS_ACCESS_KEY_ID and "
                             "AWS_SECRET_ACCESS_KEY");
    }

    bucket = strdup(o->s3 + 5);
    if (bucket == NULL) {
        return zarrctl_fail(ZARRCTL_FAIL, "out of memory");
    }

    /* s3://b/zarr/ID and s3://b/zarr/ID/ both mean the directory */

    slash = strchr(bucket, '/');
    prefix = NULL;
    plen = 0;

    if (slash) {
        *slash = '\0';
        plen = strlen(slash + 1);

        prefix = malloc(plen + 2);
        if (prefix == NULL) {
            free(bucket);
            return zarrctl_fail(ZARRCTL_FAIL, "out of memory");
        }

        memcpy(prefix, slash + 1, plen);

        if (plen && prefix[plen - 1] != '/') {
            prefix[plen++] = '/';
        }

        prefix[plen] = '\0';
    }

    rc = ZARRCTL_FAIL;

    if (zarr_s3_global_init() != 0) {
        zarrctl_fail(rc, "curl_global_init() failed");
        goto done;
    }

    s3 = zarr_s3_create(&conf, errbuf, sizeof(errbuf));
    if (s3 == NULL) {
        rc = zarrctl_fail(ZARRCTL_BAD, "%s", errbuf);
        goto done;
    }

    memset(&c, 0, sizeof(zarrctl_s3_ctx_t));
    c.prefix_len = plen;
    c.tree = zarr_mtree_create();

    if (c.tree == NULL) {
        zarr_s3_destroy(s3);
        zarrctl_fail(rc, "out of memory");
        goto done;
    }

    memset(&err, 0, sizeof(zarr_s3_error_t));

    zarrctl_progress_start(o, "objects listed");

    rc = zarr_s3_list(s3, bucket, prefix ? prefix : "", plen,
                      zarrctl_s3_object, &c, &err);

    zarrctl_progress_end();

    zarr_s3_destroy(s3);

    if (c.failed) {
        rc = zarrctl_fail(ZARRCTL_BAD, "object %" PRIu64 " of the "
                          "listing: %s", c.n, c.err.msg);

    } else if (rc != ZARR_S3_OK) {
        rc = zarrctl_fail(ZARRCTL_FAIL, "listing s3://%s/%s failed: "
                          "HTTP %ld %s %s", bucket, prefix ? prefix : "",
                          err.status, err.code, err.message);

    } else {
        rc = zarrctl_report(c.tree, o);
    }

    zarr_mtree_free(c.tree);

done:

    zarr_s3_global_cleanup();
    free(bucket);
    free(prefix);

    return rc;
}


static int
zarrctl_print_zarr(void *ctx, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, const zarr_dir_sum_t *sum)
{
    (void) ctx;

    printf("%.*s\t%.*s\t%s\t%" PRIu64 "\t%" PRIu64 "\n", (int) bucket_len,
           bucket, (int) zarr_id_len, zarr_id, sum->digest, sum->count,
           sum->size);

    return 0;
}


static int
zarrctl_store(zarrctl_opts_t *o)
{
    int                rc;
    const char        *cmd;
    zarr_err_t         err;
    zarr_store_t      *s;
    zarr_dir_sum_t     sum;
    zarr_store_stat_t  st;

    if (o->store == NULL) {
        return zarrctl_usage("store needs --store DIR");
    }

    if (o->nargs < 1) {
        return zarrctl_usage("store needs a command: list, digest, status");
    }

    cmd = o->args[0];

    if (strcmp(cmd, "list") != 0 && strcmp(cmd, "status") != 0
        && strcmp(cmd, "digest") != 0)
    {
        return zarrctl_usage("unknown store command \"%s\"", cmd);
    }

    if ((strcmp(cmd, "digest") == 0 && o->nargs != 3)
        || (strcmp(cmd, "digest") != 0 && o->nargs != 1))
    {
        return zarrctl_usage("wrong number of arguments for \"%s\"", cmd);
    }

    rc = zarr_store_open(&s, o->store, 0, ZARR_STORE_RDONLY, &err);
    if (rc != ZARR_OK) {
        return zarrctl_fail(ZARRCTL_FAIL, "%s", err.msg);
    }

    if (strcmp(cmd, "list") == 0) {
        rc = zarr_store_list(s, zarrctl_print_zarr, NULL, &err);

    } else if (strcmp(cmd, "status") == 0) {
        rc = zarr_store_stat(s, &st, &err);

        if (rc == ZARR_OK) {
            printf("zarrs\t%" PRIu64 "\nentries\t%" PRIu64 "\n"
                   "map_size\t%" PRIu64 "\nmap_used\t%" PRIu64 "\n",
                   st.zarrs, st.entries, st.map_size, st.used);
        }

    } else if (o->tree) {
        rc = zarr_store_walk(s, o->args[1], strlen(o->args[1]), o->args[2],
                             strlen(o->args[2]), zarrctl_print_dir, NULL,
                             &err);

    } else {
        rc = zarr_store_get_zarr(s, o->args[1], strlen(o->args[1]),
                                 o->args[2], strlen(o->args[2]), &sum, &err);
        if (rc == ZARR_OK) {
            printf("%s\n", sum.digest);
        }
    }

    zarr_store_close(s);

    if (rc != ZARR_OK) {
        return zarrctl_fail(rc == ZARR_ERR_NOTFOUND ? ZARRCTL_BAD
                                                    : ZARRCTL_FAIL,
                            "%s", err.msg);
    }

    return ZARRCTL_OK;
}


int
main(int argc, char **argv)
{
    int             i, dashdash;
    char           *a, **value;
    zarrctl_opts_t  o;

    memset(&o, 0, sizeof(zarrctl_opts_t));
    o.progress = -1;

    /* a closed connection is an error to report, not a reason to die */
    signal(SIGPIPE, SIG_IGN);

    if (argc < 2) {
        return zarrctl_usage(NULL);
    }

    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(zarrctl_usage_text, stdout);
        return ZARRCTL_OK;
    }

    o.args = calloc(argc, sizeof(char *));
    if (o.args == NULL) {
        return zarrctl_fail(ZARRCTL_FAIL, "out of memory");
    }

    dashdash = 0;

    for (i = 2; i < argc; i++) {
        a = argv[i];

        if (dashdash || a[0] != '-' || strcmp(a, "-") == 0) {
            o.args[o.nargs++] = a;
            continue;
        }

        if (strcmp(a, "--") == 0) {
            dashdash = 1;
            continue;
        }

        if (strcmp(a, "--tree") == 0) {
            o.tree = 1;
            continue;
        }

        if (strcmp(a, "--documents") == 0) {
            o.documents = 1;
            continue;
        }

        if (strcmp(a, "--progress") == 0) {
            o.progress = 1;
            continue;
        }

        if (strcmp(a, "--no-progress") == 0) {
            o.progress = 0;
            continue;
        }

        if (strcmp(a, "--listing") == 0) {
            value = (char **) &o.listing;

        } else if (strcmp(a, "--format") == 0) {
            value = (char **) &o.format;

        } else if (strcmp(a, "--s3") == 0) {
            value = (char **) &o.s3;

        } else if (strcmp(a, "--endpoint") == 0) {
            value = (char **) &o.endpoint;

        } else if (strcmp(a, "--store") == 0) {
            value = (char **) &o.store;

        } else {
            free(o.args);
            return zarrctl_usage("unknown option \"%s\"", a);
        }

        if (i + 1 >= argc) {
            free(o.args);
            return zarrctl_usage("%s needs a value", a);
        }

        *value = argv[++i];
    }

    if (strcmp(argv[1], "checksum") == 0) {
        if (o.store) {
            i = zarrctl_usage("checksum takes no --store");

        } else if (o.listing && o.s3) {
            i = zarrctl_usage("--listing and --s3 exclude each other");

        } else if (o.listing) {
            i = zarrctl_checksum_listing(&o);

        } else if (o.s3) {
            i = zarrctl_checksum_s3(&o);

        } else {
            i = zarrctl_checksum_dir(&o);
        }

    } else if (strcmp(argv[1], "store") == 0) {
        i = zarrctl_store(&o);

    } else {
        i = zarrctl_usage("unknown command \"%s\"", argv[1]);
    }

    free(o.args);

    return i;
}
