
/*
 * The JSON admin API (DESIGN section 7), the content handler of a
 * location with "zarr_api"; see docs/api.md.
 *
 * A batch lookup is one LMDB read, run inline.  Every read whose cost
 * grows with the store (status, the list of zarrs, a zarr's digest, a
 * checksum document: dirty directories are recomputed on the fly) and
 * every write (create, batch open and end, reconcile) runs in the thread
 * pool, so that a large tree never stalls the worker's other
 * connections: the task is malloc()ed, the
 * request is suspended (r->main->blocked) meanwhile, and a pool cleanup
 * marks the task aborted should the request go all the same, so that the
 * completion handler then only frees it.  Thread code uses libc, LMDB and
 * libcurl only; each task that talks to the backend has its own client.
 * "batch/complete" waits for the zarr's mirror backlog on a timer.
 */


#include <openssl/rand.h>
#include <openssl/sha.h>
#include <jansson.h>

#include "ngx_http_zarr_module.h"
#include "zarr_job.h"
#include "zarr_outbox.h"
#include "zarr_path.h"
#include "zarr_snap.h"


#define NGX_HTTP_ZARR_API_BODY_MAX       (64 * 1024)
#define NGX_HTTP_ZARR_API_LIMIT          100
#define NGX_HTTP_ZARR_API_LIMIT_MAX      1000
#define NGX_HTTP_ZARR_API_APPLY_MAX      1000
#define NGX_HTTP_ZARR_API_RECONCILE_OWNER  "zarr-api:reconcile"
#define NGX_HTTP_ZARR_API_SNAPSHOT_OWNER   "zarr-api:snapshot"
#define NGX_HTTP_ZARR_API_POLL           100
#define NGX_HTTP_ZARR_API_WAIT           60000
#define NGX_HTTP_ZARR_API_TIMEOUT_MAX    86400
#define NGX_HTTP_ZARR_API_PROGRESS       1000    /* ms between records */

#define NGX_HTTP_ZARR_API_JSON_FLAGS     (JSON_COMPACT|JSON_PRESERVE_ORDER)

/* a route's flag: its handler reads the request body (JSON) */
#define NGX_HTTP_ZARR_API_BODY           0x01

/* the most "{name}"s in one route's pattern */
#define NGX_HTTP_ZARR_API_CAPTURES       4


typedef enum {
    NGX_HTTP_ZARR_API_TASK_CREATE = 0,
    NGX_HTTP_ZARR_API_TASK_OPEN,
    NGX_HTTP_ZARR_API_TASK_END,
    NGX_HTTP_ZARR_API_TASK_COMPLETE,
    NGX_HTTP_ZARR_API_TASK_RECONCILE,
    NGX_HTTP_ZARR_API_TASK_STATUS,
    NGX_HTTP_ZARR_API_TASK_LIST,
    NGX_HTTP_ZARR_API_TASK_INFO,
    NGX_HTTP_ZARR_API_TASK_CHECKSUM,
    NGX_HTTP_ZARR_API_TASK_SNAPSHOT
} ngx_http_zarr_api_task_e;


/* a task's failure that is not the store's: the HTTP status to answer */
#define NGX_HTTP_ZARR_API_BACKEND        1000


typedef struct ngx_http_zarr_api_ctx_s  ngx_http_zarr_api_ctx_t;

typedef ngx_int_t (*ngx_http_zarr_api_handler_pt)(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx);


/* a row of ngx_http_zarr_api_routes[]: an endpoint and its methods */

typedef struct {
    ngx_uint_t                     methods;
    const char                    *pattern;
    ngx_http_zarr_api_handler_pt   handler;
    ngx_uint_t                     flags;
} ngx_http_zarr_api_route_t;


/* a "{name}" of a pattern: where its segment goes, how it is checked */

typedef struct {
    ngx_str_t                   name;
    size_t                      offset;           /* of a ctx's ngx_str_t */
    ngx_int_t                 (*valid)(u_char *p, size_t len);
    const char                 *invalid;          /* the 400's message */
} ngx_http_zarr_api_capture_t;


/* a "{name}" of a pattern matched by a request: the segment it took */

typedef struct {
    ngx_str_t                   name;
    ngx_str_t                   value;
} ngx_http_zarr_api_cap_t;


typedef struct {
    ngx_uint_t                  method;
    ngx_str_t                   name;
} ngx_http_zarr_api_method_t;


struct ngx_http_zarr_api_ctx_s {
    ngx_http_request_t         *r;
    ngx_http_zarr_api_route_t  *route;            /* a row of routes[] */
    ngx_str_t                   bucket;
    ngx_str_t                   zarr_id;
    ngx_str_t                   snap;             /* a snapshot's name */
    json_t                     *body;

    /* batch/complete */
    ngx_event_t                 poll;
    ngx_msec_t                  started;
    uint64_t                    batch_id;
    ngx_str_t                   expected;
    zarr_dir_sum_t              sum;
    unsigned                    has_expected:1;
    unsigned                    match:1;

    /* a signed request: its check, and the body's sha256 (hex) */
    ngx_http_zarr_auth_t        auth;
    u_char                      body_sha256[65];
    unsigned                    has_body:1;
    unsigned                    authed:1;
};


typedef struct ngx_http_zarr_api_task_s  ngx_http_zarr_api_task_t;

typedef ngx_int_t (*ngx_http_zarr_api_done_pt)(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t);


/*
 * One thread task, malloc()ed with its strings: it may outlive its
 * request (r is NULL then).
 */
struct ngx_http_zarr_api_task_s {
    ngx_thread_task_t           task;
    ngx_http_request_t         *r;
    ngx_http_zarr_api_ctx_t    *ctx;
    ngx_pool_cleanup_t         *cln;
    ngx_http_zarr_api_done_pt   done;
    ngx_uint_t                  kind;

    /* in */
    zarr_store_t               *store;
    char                       *strings;
    zarr_zref_t                 z;
    /*
     * open: the owner; checksum: the path; list: "after";
     * complete: the expected digest
     */
    const char                 *arg;
    size_t                      arg_len;
    ngx_uint_t                  limit;            /* list */
    uint64_t                    timeout_ms;
    const char                 *prefix;           /* zarr_prefix */
    size_t                      prefix_len;
    const char                 *checksum_prefix;
    size_t                      checksum_prefix_len;
    zarr_s3_conf_t              s3conf;

    /* out */
    int                         rc;
    zarr_err_t                  err;
    zarr_batch_t                batch;

    /* status, info, checksum */
    zarr_store_stat_t           stat;
    uint64_t                    pending;          /* mirror backlog */
    uint64_t                    active;           /* active batches */
    zarr_buf_t                  doc;
    unsigned                    has_batch:1;
    unsigned                    no_zarr:1;        /* checksum: no zarr */
    unsigned                    has_expected:1;   /* complete */
    unsigned                    match:1;

    /* list: ids[i] is ids_buf at id_offs[i], id_offs[i + 1] */
    ngx_uint_t                  n;
    zarr_buf_t                  ids_buf;
    size_t                     *id_offs;
    zarr_dir_sum_t             *sums;
    zarr_batch_t               *batches;
    u_char                     *has;              /* batches[i] is one */
    unsigned                    nomem:1;

    /* reconcile */
    uint64_t                    added;
    uint64_t                    removed;
    uint64_t                    changed;
    uint64_t                    skipped;
    uint64_t                    stale;
    zarr_dir_sum_t              before;
    zarr_dir_sum_t              after;
    ngx_uint_t                  status;           /* backend failure */
    uint64_t                    touched_ms;       /* t->batch's clock */
    unsigned                    locked:1;         /* holds t->batch */
    unsigned                    lost:1;           /* ...and lost it */

    /* reconcile as a job (zarr_job.h): its record, kept up to date */
    zarr_job_t                  job;
    uint64_t                    listed;
    uint64_t                    total;
    uint64_t                    applied;
    unsigned                    jobbed:1;         /* a job, not a recovery */
    unsigned                    started:1;        /* recorded, batch held */
    unsigned                    second:1;         /* the reconcile posted */
    unsigned                    running:1;        /* another job runs */
    unsigned                    wait:1;           /* ?wait=1 */
    unsigned                    unrecorded:1;     /* its end was not */
    /* snapshots: create, list (snaps of n), get, delete, checksum */
    ngx_uint_t                  snap_op;
    char                        snap_name[ZARR_SNAP_NAME_MAX + 1];
    size_t                      snap_name_len;
    zarr_snap_t                 snap;
    zarr_buf_t                  snaps;
    uint64_t                    created;
    unsigned                    unversioned:1;
    unsigned                    mismatch:1;
    unsigned                    lifecycle:1;      /* expires old versions */
    unsigned                    manifest_failed:1;
    char                       *mkey;             /* the manifest's key */
    size_t                      mkey_len;
    char                        mmsg[256];

    /* info, checksum: the zarr is rebuilt (DESIGN 4); reconcile: do it */
    unsigned                    recovering:1;
    ngx_queue_t                 queue;            /* recoveries to run */
};


/* reconcile: a zarr's files, from the store or from a listing */

typedef struct {
    const char                 *path;
    size_t                      path_len;
    const char                 *etag;
    size_t                      etag_len;
    const char                 *version;          /* "": none */
    size_t                      version_len;
    uint64_t                    size;
    size_t                      path_off;
    size_t                      etag_off;
    size_t                      version_off;
} ngx_http_zarr_api_file_t;


typedef struct {
    ngx_http_zarr_api_file_t   *files;
    size_t                      n;
    size_t                      cap;
    zarr_buf_t                  strings;
    size_t                      cut;              /* listing: key prefix */
    uint64_t                    skipped;
    int                         nomem;
    int                         checksums;        /* .checksum listing */
    int                         versions;         /* ListObjectVersions */

    /* a listing under reconcile's batch: its idle clock, kept going */
    ngx_http_zarr_api_task_t   *holder;
    int                         stopped;          /* the batch is lost */
} ngx_http_zarr_api_files_t;


static ngx_uint_t ngx_http_zarr_api_route(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx, ngx_uint_t *allow, const char **msg);
static ngx_int_t ngx_http_zarr_api_match(const char *pattern, u_char *p,
    u_char *last, ngx_http_zarr_api_cap_t *caps);
static ngx_int_t ngx_http_zarr_api_not_allowed(ngx_http_request_t *r,
    ngx_uint_t allow);
static ngx_int_t ngx_http_zarr_api_valid_id(u_char *p, size_t len);
static ngx_int_t ngx_http_zarr_api_valid_bucket(u_char *p, size_t len);
static ngx_int_t ngx_http_zarr_api_valid_snap(u_char *p, size_t len);
static void ngx_http_zarr_api_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_zarr_api_too_large(ngx_http_request_t *r);
static ngx_uint_t ngx_http_zarr_api_read_body(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx, const char **msg);
static ngx_int_t ngx_http_zarr_api_dispatch(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_api_authenticate(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx);
static void ngx_http_zarr_api_auth_done(ngx_http_request_t *r,
    ngx_http_zarr_auth_t *au);
static ngx_http_zarr_api_ctx_t *ngx_http_zarr_api_get_ctx(
    ngx_http_request_t *r);
static void ngx_http_zarr_api_ctx_cleanup(void *data);

static ngx_int_t ngx_http_zarr_api_status(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_api_status_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t);
static ngx_int_t ngx_http_zarr_api_list(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_api_list_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t);
static ngx_int_t ngx_http_zarr_api_create(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_api_create_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t);
static ngx_int_t ngx_http_zarr_api_info(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_api_info_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t);
static ngx_int_t ngx_http_zarr_api_checksum(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_api_recovering(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t);
static ngx_int_t ngx_http_zarr_api_checksum_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t);
static ngx_int_t ngx_http_zarr_api_batch_get(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_api_batch_open(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_api_open_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t);
static ngx_int_t ngx_http_zarr_api_batch_cancel(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_api_cancel_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t);
static ngx_int_t ngx_http_zarr_api_complete(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_api_complete_step(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx);
static void ngx_http_zarr_api_poll_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_zarr_api_complete_send(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx, ngx_uint_t status);
static ngx_int_t ngx_http_zarr_api_complete_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t);
static ngx_int_t ngx_http_zarr_api_reconcile(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_api_reconcile_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t);
static ngx_int_t ngx_http_zarr_api_reconcile_get(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx);
static void ngx_http_zarr_api_job_event(ngx_event_t *ev);
static ngx_int_t ngx_http_zarr_api_job_accepted(ngx_http_request_t *r,
    zarr_job_t *job);
static void ngx_http_zarr_api_job_log(ngx_http_zarr_api_task_t *t,
    ngx_log_t *log);
static json_t *ngx_http_zarr_api_job_json(const zarr_job_t *job);
static json_t *ngx_http_zarr_api_time(uint64_t ms);
static int ngx_http_zarr_api_job_alive(void *ctx, const zarr_proc_t *p);
static void ngx_http_zarr_api_job_start_thread(ngx_http_zarr_api_task_t *t);
static void ngx_http_zarr_api_job_progress(ngx_http_zarr_api_task_t *t,
    int end);
static const char *ngx_http_zarr_api_job_error(ngx_http_zarr_api_task_t *t,
    uint32_t *status);
static ngx_int_t ngx_http_zarr_api_snapshot(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_api_snapshot_create(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_api_snapshot_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t);
static json_t *ngx_http_zarr_api_snapshot_json(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx, const zarr_snap_t *snap);
static void ngx_http_zarr_api_snapshot_thread(ngx_http_zarr_api_task_t *t);
static void ngx_http_zarr_api_snapshot_create_thread(
    ngx_http_zarr_api_task_t *t);
static int ngx_http_zarr_api_snapshot_add(void *ctx,
    const zarr_snap_t *snap);
static ngx_int_t ngx_http_zarr_api_snapshot_key(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx, ngx_http_zarr_api_task_t *t);
static void ngx_http_zarr_api_manifest_put(ngx_http_zarr_api_task_t *t);
static void ngx_http_zarr_api_manifest_delete(ngx_http_zarr_api_task_t *t);
static int ngx_http_zarr_api_manifest_out(void *ctx, const char *buf,
    size_t len, int last);

static ngx_http_zarr_api_task_t *ngx_http_zarr_api_task_create(
    ngx_http_request_t *r, ngx_http_zarr_api_ctx_t *ctx, ngx_uint_t kind,
    ngx_http_zarr_api_done_pt done, ngx_str_t *arg);
static void ngx_http_zarr_api_task_free(ngx_http_zarr_api_task_t *t);
static ngx_int_t ngx_http_zarr_api_task_post(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t);
static ngx_int_t ngx_http_zarr_api_run(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx, ngx_uint_t kind,
    ngx_http_zarr_api_done_pt done, ngx_str_t *arg);
static void ngx_http_zarr_api_task_abort(void *data);
static void ngx_http_zarr_api_thread(void *data, ngx_log_t *log);
static void ngx_http_zarr_api_task_event(ngx_event_t *ev);

static void ngx_http_zarr_api_complete_thread(ngx_http_zarr_api_task_t *t);
static void ngx_http_zarr_api_read_thread(ngx_http_zarr_api_task_t *t);
static int ngx_http_zarr_api_list_zarr(void *data, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    const zarr_dir_sum_t *sum);
static void ngx_http_zarr_api_reconcile_thread(ngx_http_zarr_api_task_t *t);
static int ngx_http_zarr_api_keep(ngx_http_zarr_api_task_t *t);
static char *ngx_http_zarr_api_dir_prefix(const char *prefix,
    size_t prefix_len, const zarr_zref_t *z, size_t *len);
static int ngx_http_zarr_api_list_dir(ngx_http_zarr_api_task_t *t,
    zarr_s3_t *s3, const char *p, size_t plen,
    ngx_http_zarr_api_files_t *l, char **prefix, size_t *n,
    const char *what);
static int ngx_http_zarr_api_files_add(ngx_http_zarr_api_files_t *l,
    const char *path, size_t path_len, const char *etag, size_t etag_len,
    uint64_t size, const char *version, size_t version_len);
static void ngx_http_zarr_api_files_done(ngx_http_zarr_api_files_t *l);
static void ngx_http_zarr_api_files_free(ngx_http_zarr_api_files_t *l);
static int ngx_http_zarr_api_file_cmp(const void *a, const void *b);
static int ngx_http_zarr_api_store_file(void *data, const char *path,
    size_t path_len, const char *etag, size_t etag_len, uint64_t size,
    const char *version, size_t version_len);
static int ngx_http_zarr_api_listed(const zarr_s3_object_t *obj,
    void *data);
static int ngx_http_zarr_api_apply(ngx_http_zarr_api_task_t *t,
    zarr_mutation_t *m, u_char *kinds, size_t n);
static int ngx_http_zarr_api_stale(ngx_http_zarr_api_task_t *t,
    zarr_s3_t *s3);
static int ngx_http_zarr_api_backend_err(ngx_http_zarr_api_task_t *t,
    const char *what, const zarr_s3_error_t *e);

static json_t *ngx_http_zarr_api_string(const char *p, size_t len);
static json_t *ngx_http_zarr_api_batch_json(const zarr_batch_t *b);
static ngx_int_t ngx_http_zarr_api_send(ngx_http_request_t *r,
    ngx_uint_t status, u_char *data, size_t len);
static ngx_int_t ngx_http_zarr_api_send_json(ngx_http_request_t *r,
    ngx_uint_t status, json_t *j);
static ngx_int_t ngx_http_zarr_api_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *fmt, ...);
static ngx_int_t ngx_http_zarr_api_store_error(ngx_http_request_t *r,
    int rc, zarr_err_t *err);
static ngx_int_t ngx_http_zarr_api_not_found(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_api_unavailable(ngx_http_request_t *r);
static void ngx_http_zarr_api_zref(ngx_http_zarr_api_ctx_t *ctx,
    zarr_zref_t *z);
static int ngx_http_zarr_api_batch_of(ngx_http_zarr_api_ctx_t *ctx,
    zarr_batch_t *b, zarr_err_t *err);
static ngx_int_t ngx_http_zarr_api_no_batch(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_api_batch_conflict(ngx_http_request_t *r,
    const char *message, const zarr_batch_t *b);
static ngx_int_t ngx_http_zarr_api_arg(ngx_http_request_t *r,
    const char *name, ngx_str_t *value);


/*
 * The endpoints: the methods, the path after the location's prefix, the
 * handler, and NGX_HTTP_ZARR_API_BODY if the handler wants the request
 * body as JSON in ctx->body (other requests' bodies are discarded).  A
 * pattern's segment is a literal or a "{name}" of
 * ngx_http_zarr_api_captures[]; a "{name}" takes any one segment, which
 * is then checked.  Rows with one path but other methods repeat its
 * pattern as it is: the first row matching a path gives the captures,
 * the first that also has the request's method the handler, and all
 * those matching the path the Allow header of a 405.
 */

static ngx_http_zarr_api_route_t  ngx_http_zarr_api_routes[] = {

    { NGX_HTTP_GET|NGX_HTTP_HEAD, "v1/status",
      ngx_http_zarr_api_status, 0 },

    { NGX_HTTP_GET|NGX_HTTP_HEAD, "v1/buckets/{b}/zarrs",
      ngx_http_zarr_api_list, 0 },

    { NGX_HTTP_POST, "v1/buckets/{b}/zarrs",
      ngx_http_zarr_api_create, NGX_HTTP_ZARR_API_BODY },

    { NGX_HTTP_GET|NGX_HTTP_HEAD, "v1/buckets/{b}/zarrs/{id}",
      ngx_http_zarr_api_info, 0 },

    { NGX_HTTP_GET|NGX_HTTP_HEAD, "v1/buckets/{b}/zarrs/{id}/checksum",
      ngx_http_zarr_api_checksum, 0 },

    { NGX_HTTP_GET|NGX_HTTP_HEAD, "v1/buckets/{b}/zarrs/{id}/batch",
      ngx_http_zarr_api_batch_get, 0 },

    { NGX_HTTP_POST, "v1/buckets/{b}/zarrs/{id}/batch",
      ngx_http_zarr_api_batch_open, NGX_HTTP_ZARR_API_BODY },

    { NGX_HTTP_DELETE, "v1/buckets/{b}/zarrs/{id}/batch",
      ngx_http_zarr_api_batch_cancel, 0 },

    { NGX_HTTP_POST, "v1/buckets/{b}/zarrs/{id}/batch/complete",
      ngx_http_zarr_api_complete, NGX_HTTP_ZARR_API_BODY },

    { NGX_HTTP_POST, "v1/buckets/{b}/zarrs/{id}/reconcile",
      ngx_http_zarr_api_reconcile, 0 },

    { NGX_HTTP_GET|NGX_HTTP_HEAD, "v1/buckets/{b}/zarrs/{id}/reconcile",
      ngx_http_zarr_api_reconcile_get, 0 },
    { NGX_HTTP_GET|NGX_HTTP_HEAD, "v1/buckets/{b}/zarrs/{id}/snapshots",
      ngx_http_zarr_api_snapshot, 0 },

    { NGX_HTTP_POST, "v1/buckets/{b}/zarrs/{id}/snapshots",
      ngx_http_zarr_api_snapshot_create, NGX_HTTP_ZARR_API_BODY },

    { NGX_HTTP_GET|NGX_HTTP_HEAD,
      "v1/buckets/{b}/zarrs/{id}/snapshots/{name}",
      ngx_http_zarr_api_snapshot, 0 },

    { NGX_HTTP_DELETE, "v1/buckets/{b}/zarrs/{id}/snapshots/{name}",
      ngx_http_zarr_api_snapshot, 0 },

    { NGX_HTTP_GET|NGX_HTTP_HEAD,
      "v1/buckets/{b}/zarrs/{id}/snapshots/{name}/checksum",
      ngx_http_zarr_api_snapshot, 0 },

    { 0, NULL, NULL, 0 }
};


/* checked in the order of the path: a bad bucket first */

static ngx_http_zarr_api_capture_t  ngx_http_zarr_api_captures[] = {

    { ngx_string("b"), offsetof(ngx_http_zarr_api_ctx_t, bucket),
      ngx_http_zarr_api_valid_bucket, "invalid bucket name" },

    { ngx_string("id"), offsetof(ngx_http_zarr_api_ctx_t, zarr_id),
      ngx_http_zarr_api_valid_id,
      "invalid zarr id: 1 to 255 bytes of UTF-8, no \"/\", "
      "not \".\" or \"..\"" },

    { ngx_string("name"), offsetof(ngx_http_zarr_api_ctx_t, snap),
      ngx_http_zarr_api_valid_snap,
      "invalid snapshot name: " ZARR_SNAP_NAME_RULE },

    { ngx_null_string, 0, NULL, NULL }
};


/* the Allow header lists its methods in this order */

static ngx_http_zarr_api_method_t  ngx_http_zarr_api_methods[] = {
    { NGX_HTTP_GET, ngx_string("GET") },
    { NGX_HTTP_HEAD, ngx_string("HEAD") },
    { NGX_HTTP_POST, ngx_string("POST") },
    { NGX_HTTP_PUT, ngx_string("PUT") },
    { NGX_HTTP_DELETE, ngx_string("DELETE") },
    { NGX_HTTP_PATCH, ngx_string("PATCH") },
    { 0, ngx_null_string }
};


/* thread tasks under way in this worker */
static ngx_uint_t  ngx_http_zarr_api_tasks;

/* recoveries (DESIGN 4, lost intents): worker 0, one zarr at a time */
static ngx_queue_t         ngx_http_zarr_api_recoveries;
static ngx_thread_pool_t  *ngx_http_zarr_api_pool;
static ngx_event_t         ngx_http_zarr_api_recover_timer;

static void ngx_http_zarr_api_recover_next(void);
static void ngx_http_zarr_api_recover_event(ngx_event_t *ev);
static void ngx_http_zarr_api_recover_retry(ngx_event_t *ev);
static void ngx_http_zarr_api_thread(void *data, ngx_log_t *log);
static void ngx_http_zarr_api_task_free(ngx_http_zarr_api_task_t *t);


/* a zarr marked to recover: its rebuild, as a reconcile task */

static int
ngx_http_zarr_api_recover_collect(void *data, const zarr_zref_t *z,
    const char *rec, size_t rec_len)
{
    ngx_uint_t *n = data;

    char                      *p;
    size_t                     plen;
    ngx_http_zarr_api_task_t  *t;

    t = ngx_calloc(sizeof(ngx_http_zarr_api_task_t), ngx_cycle->log);
    if (t == NULL) {
        return 1;
    }

    t->strings = ngx_alloc(z->bucket_len + z->zarr_id_len + rec_len + 4,
                           ngx_cycle->log);
    if (t->strings == NULL) {
        ngx_free(t);
        return 1;
    }

    /* rec: key prefix NUL checksum prefix */
    plen = ngx_strnlen((u_char *) rec, rec_len);

    p = t->strings;

    t->z.bucket = p;
    t->z.bucket_len = z->bucket_len;
    p = (char *) ngx_cpymem(p, z->bucket, z->bucket_len);
    *p++ = '\0';

    t->z.zarr_id = p;
    t->z.zarr_id_len = z->zarr_id_len;
    p = (char *) ngx_cpymem(p, z->zarr_id, z->zarr_id_len);
    *p++ = '\0';

    t->prefix = p;
    t->prefix_len = plen;
    p = (char *) ngx_cpymem(p, rec, plen);
    *p++ = '\0';

    t->checksum_prefix = p;
    t->checksum_prefix_len = plen < rec_len ? rec_len - plen - 1 : 0;
    p = (char *) ngx_cpymem(p, rec + plen + 1, t->checksum_prefix_len);
    *p = '\0';

    t->arg = p;
    t->kind = NGX_HTTP_ZARR_API_TASK_RECONCILE;
    t->recovering = 1;
    t->store = ngx_http_zarr_get_store();
    t->s3conf = *ngx_http_zarr_s3_conf();
    t->s3conf.timeout_ms = 60000;
    t->timeout_ms = 60000;

    ngx_queue_insert_tail(&ngx_http_zarr_api_recoveries, &t->queue);
    (*n)++;

    return 0;
}


ngx_int_t
ngx_http_zarr_api_recover_init(ngx_cycle_t *cycle)
{
    ngx_uint_t                  n;
    zarr_err_t                  err;
    ngx_http_zarr_main_conf_t  *zmcf;

    ngx_queue_init(&ngx_http_zarr_api_recoveries);

    if (ngx_worker != 0) {
        return NGX_OK;
    }

    zmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_zarr_module);
    ngx_http_zarr_api_pool = zmcf->thread_pool;

    ngx_http_zarr_api_recover_timer.handler =
                                        ngx_http_zarr_api_recover_retry;
    ngx_http_zarr_api_recover_timer.log = cycle->log;
    ngx_http_zarr_api_recover_timer.cancelable = 1;

    n = 0;

    if (zarr_gate_recover_list(ngx_http_zarr_get_store(),
                               ngx_http_zarr_api_recover_collect, &n, &err)
        != ZARR_OK)
    {
        ngx_log_error(NGX_LOG_CRIT, cycle->log, 0,
                      "zarr recovery: %s", err.msg);
        return NGX_OK;
    }

    if (n) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "zarr recovery: %ui zarrs to rebuild from listings",
                      n);
        ngx_http_zarr_api_recover_next();
    }

    return NGX_OK;
}


static void
ngx_http_zarr_api_recover_next(void)
{
    ngx_queue_t               *q;
    ngx_http_zarr_api_task_t  *t;

    if (ngx_queue_empty(&ngx_http_zarr_api_recoveries) || ngx_exiting) {
        return;
    }

    q = ngx_queue_head(&ngx_http_zarr_api_recoveries);
    t = ngx_queue_data(q, ngx_http_zarr_api_task_t, queue);

    t->task.ctx = t;
    t->task.handler = ngx_http_zarr_api_thread;
    t->task.event.handler = ngx_http_zarr_api_recover_event;
    t->task.event.data = t;
    t->task.event.log = ngx_cycle->log;

    if (ngx_thread_task_post(ngx_http_zarr_api_pool, &t->task) != NGX_OK) {
        ngx_add_timer(&ngx_http_zarr_api_recover_timer, 1000);
        return;
    }

    ngx_queue_remove(q);
    ngx_http_zarr_api_tasks++;
}


static void
ngx_http_zarr_api_recover_retry(ngx_event_t *ev)
{
    ngx_http_zarr_api_recover_next();
}


static void
ngx_http_zarr_api_recover_event(ngx_event_t *ev)
{
    ngx_http_zarr_api_task_t *t = ev->data;

    ngx_http_zarr_api_tasks--;

    if (t->rc == ZARR_OK) {
        ngx_http_zarr_stats_recovered();

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "zarr recovery: rebuilt \"%s/%s\" from a listing: "
                      "%uL added, %uL removed, %uL changed, digest %s",
                      t->z.bucket, t->z.zarr_id, t->added, t->removed,
                      t->changed, t->after.digest);

        ngx_http_zarr_api_task_free(t);
        ngx_http_zarr_api_recover_next();
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "zarr recovery of \"%s/%s\": %s; it stays refused, "
                  "retrying in 5 s", t->z.bucket, t->z.zarr_id,
                  t->err.msg[0] ? t->err.msg : "failed");

    /* again from the start, last in line */
    t->rc = ZARR_OK;
    t->err.msg[0] = '\0';
    t->added = 0;
    t->removed = 0;
    t->changed = 0;
    t->skipped = 0;
    t->stale = 0;
    ngx_queue_insert_tail(&ngx_http_zarr_api_recoveries, &t->queue);

    if (!ngx_http_zarr_api_recover_timer.timer_set && !ngx_exiting) {
        ngx_add_timer(&ngx_http_zarr_api_recover_timer, 5000);
    }
}


ngx_uint_t
ngx_http_zarr_api_busy(void)
{
    return ngx_http_zarr_api_tasks;
}


ngx_int_t
ngx_http_zarr_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_uint_t                  status, allow;
    const char                 *msg;
    ngx_pool_cleanup_t         *cln;
    ngx_http_zarr_api_ctx_t    *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_zarr_api_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the context is found again through its cleanup (see get_ctx) */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_zarr_api_ctx_cleanup;
    cln->data = ctx;

    ctx->r = r;

    status = ngx_http_zarr_api_route(r, ctx, &allow, &msg);

    if (status == NGX_HTTP_NOT_ALLOWED) {
        return ngx_http_zarr_api_not_allowed(r, allow);
    }

    if (status) {
        return ngx_http_zarr_api_error(r, status,
                                       status == NGX_HTTP_NOT_FOUND
                                       ? "not_found"
                                       : status == NGX_HTTP_BAD_REQUEST
                                       ? "bad_request" : "internal_error",
                                       "%s", msg);
    }

    if (ctx->route->flags & NGX_HTTP_ZARR_API_BODY) {
        r->request_body_in_single_buf = 1;

        /* the limit holds while the body arrives, chunked or not */

        rc = ngx_http_zarr_body_read(r, NGX_HTTP_ZARR_API_BODY_MAX,
                                     ngx_http_zarr_api_body_handler,
                                     ngx_http_zarr_api_too_large);

        if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
            return ngx_http_zarr_api_too_large(r);
        }

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_zarr_api_dispatch(r, ctx);
}


static ngx_int_t
ngx_http_zarr_api_too_large(ngx_http_request_t *r)
{
    return ngx_http_zarr_api_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                   "bad_request",
                                   "the request body is larger than %d "
                                   "bytes", NGX_HTTP_ZARR_API_BODY_MAX);
}


static ngx_http_zarr_api_ctx_t *
ngx_http_zarr_api_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *c;

    for (c = r->pool->cleanup; c; c = c->next) {
        if (c->handler == ngx_http_zarr_api_ctx_cleanup) {
            return c->data;
        }
    }

    return NULL;
}


static void
ngx_http_zarr_api_ctx_cleanup(void *data)
{
    ngx_http_zarr_api_ctx_t *ctx = data;

    if (ctx->poll.timer_set) {
        ngx_del_timer(&ctx->poll);
    }

    if (ctx->body) {
        json_decref(ctx->body);
        ctx->body = NULL;
    }
}


/*
 * Finds the route of the path after the location's prefix: sets
 * ctx->route, and the ctx's fields of the pattern's "{name}"s.  Returns
 * 0; or an HTTP status with *msg; or NGX_HTTP_NOT_ALLOWED with the
 * methods of the path in *allow.  In this order: no route matches the
 * path (404), a "{name}"'s segment is invalid (400, the first in the
 * path), no route of the path has the method (405).
 */

static ngx_uint_t
ngx_http_zarr_api_route(ngx_http_request_t *r, ngx_http_zarr_api_ctx_t *ctx,
    ngx_uint_t *allow, const char **msg)
{
    u_char                       *p, *last, *s;
    ngx_int_t                     n, i;
    ngx_http_zarr_api_cap_t       caps[NGX_HTTP_ZARR_API_CAPTURES];
    ngx_http_zarr_api_cap_t       other[NGX_HTTP_ZARR_API_CAPTURES];
    ngx_http_zarr_api_route_t    *rt, *found;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_zarr_api_capture_t  *c;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    p = r->uri.data;
    last = r->uri.data + r->uri.len;

    if (
#if (NGX_PCRE)
        clcf->regex == NULL &&
#endif
        r->uri.len >= clcf->name.len
        && ngx_strncmp(r->uri.data, clcf->name.data, clcf->name.len) == 0)
    {
        p += clcf->name.len;

    } else {
        /* a regex location: from the first "/v1/" on */
        s = ngx_strlcasestrn(p, last, (u_char *) "/v1/", 4 - 1);
        p = s ? s + 1 : last;
    }

    if (p < last && *p == '/') {
        p++;
    }

    *allow = 0;
    found = NULL;
    n = NGX_DECLINED;

    for (rt = ngx_http_zarr_api_routes; rt->pattern; rt++) {

        i = ngx_http_zarr_api_match(rt->pattern, p, last,
                                    found ? other : caps);
        if (i == NGX_DECLINED) {
            continue;
        }

        if (found == NULL) {
            found = rt;
            n = i;
        }

        *allow |= rt->methods;

        if (ctx->route == NULL && (r->method & rt->methods)) {
            ctx->route = rt;
        }
    }

    if (found == NULL) {
        *msg = "no such endpoint";
        return NGX_HTTP_NOT_FOUND;
    }

    for (i = 0; i < n; i++) {

        for (c = ngx_http_zarr_api_captures; c->name.len; c++) {
            if (c->name.len == caps[i].name.len
                && ngx_strncmp(c->name.data, caps[i].name.data,
                               c->name.len) == 0)
            {
                break;
            }
        }

        if (c->name.len == 0) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "zarr api: unknown \"{%V}\" in \"%s\"",
                          &caps[i].name, found->pattern);
            *msg = "unknown capture in a route";
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (c->valid(caps[i].value.data, caps[i].value.len) != NGX_OK) {
            *msg = c->invalid;
            return NGX_HTTP_BAD_REQUEST;
        }

        *(ngx_str_t *) ((u_char *) ctx + c->offset) = caps[i].value;
    }

    if (ctx->route == NULL) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    return 0;
}


/*
 * Matches the path [p, last) against a route's pattern, one segment at a
 * time: a literal segment matches itself, a "{name}" any one segment,
 * even an empty one ("zarrs/" has an empty id, found invalid later).
 * Returns the number of "{name}"s, with their segments in caps[], or
 * NGX_DECLINED.
 */

static ngx_int_t
ngx_http_zarr_api_match(const char *pattern, u_char *p, u_char *last,
    ngx_http_zarr_api_cap_t *caps)
{
    u_char      *s;
    size_t       len;
    ngx_int_t    n;
    const char  *q, *e;

    n = 0;
    q = pattern;

    for ( ;; ) {
        /* the pattern's segment [q, e), the path's [s, p) */

        e = ngx_strchr(q, '/');
        if (e == NULL) {
            e = q + ngx_strlen(q);
        }

        s = p;

        while (p < last && *p != '/') {
            p++;
        }

        len = e - q;

        if (len > 2 && q[0] == '{' && q[len - 1] == '}') {
            if (n == NGX_HTTP_ZARR_API_CAPTURES) {
                /* a route with more never matches: raise the limit */
                return NGX_DECLINED;
            }

            caps[n].name.data = (u_char *) q + 1;
            caps[n].name.len = len - 2;
            caps[n].value.data = s;
            caps[n].value.len = p - s;
            n++;

        } else if (len != (size_t) (p - s)
                   || ngx_strncmp(s, q, len) != 0)
        {
            return NGX_DECLINED;
        }

        if (*e == '\0' || p == last) {
            /* both end here, or the path is shorter or longer */
            return (*e == '\0' && p == last) ? n : NGX_DECLINED;
        }

        q = e + 1;
        p++;
    }
}


/* 405, with an Allow header of the path's methods */

static ngx_int_t
ngx_http_zarr_api_not_allowed(ngx_http_request_t *r, ngx_uint_t allow)
{
    u_char                      *p;
    size_t                       len;
    ngx_str_t                    value;
    ngx_table_elt_t             *h;
    ngx_http_zarr_api_method_t  *m;

    len = 0;

    for (m = ngx_http_zarr_api_methods; m->method; m++) {
        len += m->name.len + sizeof(", ") - 1;
    }

    value.data = ngx_pnalloc(r->pool, len);
    if (value.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = value.data;

    for (m = ngx_http_zarr_api_methods; m->method; m++) {
        if (!(allow & m->method)) {
            continue;
        }

        if (p != value.data) {
            *p++ = ',';
            *p++ = ' ';
        }

        p = ngx_cpymem(p, m->name.data, m->name.len);
    }

    value.len = p - value.data;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value = value;

    return ngx_http_zarr_api_error(r, NGX_HTTP_NOT_ALLOWED,
                                   "method_not_allowed",
                                   "method %V not allowed here; "
                                   "allowed: %V", &r->method_name, &value);
}


/* a zarr id: one valid key segment of at most ZARR_ID_MAX bytes */

static ngx_int_t
ngx_http_zarr_api_valid_id(u_char *p, size_t len)
{
    size_t  off;

    if (len == 0 || len > ZARR_ID_MAX
        || ngx_strlchr(p, p + len, '/') != NULL
        || zarr_path_check((char *) p, len, &off) != ZARR_PATH_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_zarr_api_valid_snap(u_char *p, size_t len)
{
    return zarr_snap_name_valid((char *) p, len) ? NGX_OK : NGX_ERROR;
}


static ngx_int_t
ngx_http_zarr_api_valid_bucket(u_char *p, size_t len)
{
    if (len == 0 || len > ZARR_BUCKET_MAX
        || ngx_strlchr(p, p + len, '\0') != NULL
        || zarr_utf8_valid_prefix((char *) p, len) != len)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_zarr_api_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                 rc;
    ngx_uint_t                status;
    const char               *msg;
    ngx_http_zarr_api_ctx_t  *ctx;

    ctx = ngx_http_zarr_api_get_ctx(r);

    if (ctx == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    status = ngx_http_zarr_api_read_body(r, ctx, &msg);

    if (status) {
        rc = ngx_http_zarr_api_error(r, status, status == 500
                                     ? "internal_error" : "bad_request",
                                     "%s", msg);

    } else {
        rc = ngx_http_zarr_api_dispatch(r, ctx);
    }

    if (ctx->auth.waiting) {
        /* a credential lookup: the body is needed when it ends */
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (ctx->body) {
        json_decref(ctx->body);
        ctx->body = NULL;
    }

    ngx_http_finalize_request(r, rc);
}


/*
 * A request signed with SigV4 (DESIGN 4b): verified against the
 * credential sources; its signer is then the default batch owner.  An
 * unsigned one goes on (nginx's allow/deny decide who reaches the API);
 * a badly signed one gets 403.  Sets ctx->authed and returns NGX_OK to
 * go on; else NGX_DONE while a credential lookup runs, or what
 * answering returned.
 */

static ngx_int_t
ngx_http_zarr_api_authenticate(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx)
{
    int                    status;
    ngx_int_t              rc;
    const char            *code;
    ngx_http_zarr_auth_t  *au;

    au = &ctx->auth;

    rc = ngx_http_zarr_auth(r, au, ngx_http_zarr_api_auth_done);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_AGAIN) {
        r->main->count++;
        return NGX_DONE;
    }

    if (rc == NGX_DECLINED || au->rc == ZARR_AUTH_ANONYMOUS) {
        /* no credential source, or not signed */
        ctx->authed = 1;
        return NGX_OK;
    }

    if (au->rc == ZARR_AUTH_OK && !au->unavailable && ctx->has_body
        && au->a.payload_hash_len == 64
        && ngx_strncmp(au->a.payload_hash, ctx->body_sha256, 64) != 0)
    {
        au->rc = ZARR_AUTH_MISMATCH;
        au->a.error = "the body does not match x-amz-content-sha256";
        au->identity.len = 0;
    }

    if (au->rc == ZARR_AUTH_OK && !au->unavailable) {
        ctx->authed = 1;
        return NGX_OK;
    }

    ngx_http_zarr_auth_log(r, au);

    if (au->unavailable) {
        return ngx_http_zarr_api_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "unavailable", "%s",
                                       "the gateway cannot look up the "
                                       "access key now; retry");
    }

    code = zarr_auth_s3_code(au->rc, &au->a, &status);

    return ngx_http_zarr_api_error(r, NGX_HTTP_FORBIDDEN, code, "%s",
                                   au->a.error ? au->a.error
                                               : "access denied");
}


static void
ngx_http_zarr_api_auth_done(ngx_http_request_t *r, ngx_http_zarr_auth_t *au)
{
    ngx_int_t                 rc;
    ngx_http_zarr_api_ctx_t  *ctx;

    ctx = ngx_http_zarr_api_get_ctx(r);

    rc = ngx_http_zarr_api_dispatch(r, ctx);

    if (!au->waiting && ctx->body) {
        json_decref(ctx->body);
        ctx->body = NULL;
    }

    ngx_http_finalize_request(r, rc);
}


/*
 * The request body as a JSON object in ctx->body (NULL when the body is
 * empty).  Returns 0, or an HTTP status with *msg.
 */

static ngx_uint_t
ngx_http_zarr_api_read_body(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx, const char **msg)
{
    u_char        *data, *p;
    u_char         md[SHA256_DIGEST_LENGTH];
    size_t         len, size;
    ssize_t        n;
    ngx_buf_t     *b;
    ngx_chain_t   *cl;
    json_error_t   jerr;

    len = 0;

    if (r->request_body) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            len += ngx_buf_size(cl->buf);
        }
    }

    if (len > NGX_HTTP_ZARR_API_BODY_MAX) {
        *msg = "the request body is too large";
        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    data = ngx_pnalloc(r->pool, len + 1);
    if (data == NULL) {
        *msg = "out of memory";
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = data;

    for (cl = r->request_body ? r->request_body->bufs : NULL;
         cl;
         cl = cl->next)
    {
        b = cl->buf;

        if (ngx_buf_size(b) == 0) {
            continue;
        }

        if (!b->in_file) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        /* a body larger than client_body_buffer_size: a small file */

        size = (size_t) (b->file_last - b->file_pos);

        n = ngx_read_file(b->file, p, size, b->file_pos);

        if (n != (ssize_t) size) {
            *msg = "cannot read the request body";
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p += size;
    }

    len = p - data;

    /* a signed body: x-amz-content-sha256 is checked against this */
    SHA256(data, len, md);
    ngx_hex_dump(ctx->body_sha256, md, SHA256_DIGEST_LENGTH);
    ctx->body_sha256[64] = '\0';
    ctx->has_body = 1;

    while (len && (data[len - 1] == ' ' || data[len - 1] == '\n'
                   || data[len - 1] == '\r' || data[len - 1] == '\t'))
    {
        len--;
    }

    if (len == 0) {
        ctx->body = NULL;
        return 0;
    }

    ctx->body = json_loadb((char *) data, len, JSON_REJECT_DUPLICATES,
                           &jerr);

    if (ctx->body == NULL) {
        *msg = "the request body is not valid JSON";
        return NGX_HTTP_BAD_REQUEST;
    }

    if (!json_is_object(ctx->body)) {
        *msg = "the request body must be a JSON object";
        return NGX_HTTP_BAD_REQUEST;
    }

    return 0;
}


static ngx_int_t
ngx_http_zarr_api_dispatch(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx)
{
    ngx_int_t  rc;

    if (ngx_http_zarr_get_store() == NULL) {
        return ngx_http_zarr_api_unavailable(r);
    }

    if (!ctx->authed) {
        rc = ngx_http_zarr_api_authenticate(r, ctx);

        if (!ctx->authed) {
            /* a lookup runs (NGX_DONE), or refused: what answering
             * returned */
            return rc;
        }
    }

    return ctx->route->handler(r, ctx);
}


/* GET v1/status */

static ngx_int_t
ngx_http_zarr_api_status(ngx_http_request_t *r, ngx_http_zarr_api_ctx_t *ctx)
{
    return ngx_http_zarr_api_run(r, ctx, NGX_HTTP_ZARR_API_TASK_STATUS,
                                 ngx_http_zarr_api_status_done, NULL);
}


static ngx_int_t
ngx_http_zarr_api_status_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t)
{
    json_t                    *j;
    ngx_http_zarr_counters_t   c;

    if (t->rc != ZARR_OK) {
        return ngx_http_zarr_api_store_error(r, t->rc, &t->err);
    }

    (void) ngx_http_zarr_stats_get(&c);

    j = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
                  "s:{s:I,s:I,s:I}}",
                  "zarrs", (json_int_t) t->stat.zarrs,
                  "active_batches", (json_int_t) t->active,
                  "mirror_backlog", (json_int_t) t->pending,
                  "mutations", (json_int_t) c.mutations,
                  "conflicts", (json_int_t) c.conflicts,
                  "backend_errors", (json_int_t) c.backend_errors,
                  "mirror_puts", (json_int_t) c.mirror_puts,
                  "mirror_deletes", (json_int_t) c.mirror_deletes,
                  "mirror_errors", (json_int_t) c.mirror_errors,
                  "intents_resolved", (json_int_t) c.resolved,
                  "intent_resolve_errors", (json_int_t) c.resolve_errors,
                  "commits", (json_int_t) c.commits,
                  "lmdb",
                      "map_size", (json_int_t) t->stat.map_size,
                      "used", (json_int_t) t->stat.used,
                      "entries", (json_int_t) t->stat.entries);

    return ngx_http_zarr_api_send_json(r, NGX_HTTP_OK, j);
}


/* GET v1/buckets/{b}/zarrs?after=&limit= */

static ngx_int_t
ngx_http_zarr_api_list(ngx_http_request_t *r, ngx_http_zarr_api_ctx_t *ctx)
{
    ngx_int_t                  rc, limit;
    ngx_str_t                  arg, after;
    ngx_http_zarr_api_task_t  *t;

    rc = ngx_http_zarr_api_arg(r, "limit", &arg);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    limit = NGX_HTTP_ZARR_API_LIMIT;

    if (rc != NGX_DECLINED) {
        limit = rc == NGX_OK ? ngx_atoi(arg.data, arg.len) : NGX_ERROR;

        if (limit <= 0) {
            return ngx_http_zarr_api_error(r, NGX_HTTP_BAD_REQUEST,
                                           "bad_request",
                                           "limit must be a positive "
                                           "integer (at most %d)",
                                           NGX_HTTP_ZARR_API_LIMIT_MAX);
        }

        limit = ngx_min(limit, NGX_HTTP_ZARR_API_LIMIT_MAX);
    }

    rc = ngx_http_zarr_api_arg(r, "after", &after);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_HTTP_BAD_REQUEST) {
        return ngx_http_zarr_api_error(r, NGX_HTTP_BAD_REQUEST,
                                       "bad_request",
                                       "bad escape in \"after\"");
    }

    t = ngx_http_zarr_api_task_create(r, ctx, NGX_HTTP_ZARR_API_TASK_LIST,
                                      ngx_http_zarr_api_list_done,
                                      rc == NGX_OK ? &after : NULL);
    if (t == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    t->limit = limit;

    return ngx_http_zarr_api_task_post(r, t);
}


static ngx_int_t
ngx_http_zarr_api_list_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t)
{
    json_t      *j, *zarrs, *item, *next;
    ngx_uint_t   i, n;
    zarr_zref_t  z;

    if (t->nomem) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (t->rc != ZARR_OK) {
        return ngx_http_zarr_api_store_error(r, t->rc, &t->err);
    }

    j = json_object();
    zarrs = json_array();

    if (j == NULL || zarrs == NULL || json_object_set_new(j, "zarrs", zarrs))
    {
        json_decref(j);
        json_decref(zarrs);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* one more than asked was looked for: whether more remain */

    n = ngx_min(t->n, t->limit);

    for (i = 0; i < n; i++) {
        z.zarr_id = t->ids_buf.data + t->id_offs[i];
        z.zarr_id_len = t->id_offs[i + 1] - t->id_offs[i];

        item = json_pack("{s:o,s:s,s:I,s:I,s:o}",
                         "zarr_id",
                         ngx_http_zarr_api_string(z.zarr_id, z.zarr_id_len),
                         "digest", t->sums[i].digest,
                         "file_count", (json_int_t) t->sums[i].count,
                         "size", (json_int_t) t->sums[i].size,
                         "batch", t->has[i]
                                  ? ngx_http_zarr_api_batch_json(
                                                           &t->batches[i])
                                  : json_null());

        if (item == NULL || json_array_append_new(zarrs, item) != 0) {
            json_decref(j);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (t->n > t->limit) {
        next = ngx_http_zarr_api_string(t->ids_buf.data + t->id_offs[n - 1],
                                        t->id_offs[n] - t->id_offs[n - 1]);
    } else {
        next = json_null();
    }

    if (json_object_set_new(j, "next", next) != 0) {
        json_decref(j);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_zarr_api_send_json(r, NGX_HTTP_OK, j);
}


/* POST v1/buckets/{b}/zarrs {"zarr_id": ...} */

static ngx_int_t
ngx_http_zarr_api_create(ngx_http_request_t *r, ngx_http_zarr_api_ctx_t *ctx)
{
    u_char  *p, uuid[16];
    json_t  *v;

    v = ctx->body ? json_object_get(ctx->body, "zarr_id") : NULL;

    if (v && !json_is_null(v)) {
        if (!json_is_string(v)
            || ngx_http_zarr_api_valid_id((u_char *) json_string_value(v),
                                          json_string_length(v))
               != NGX_OK)
        {
            return ngx_http_zarr_api_error(r, NGX_HTTP_BAD_REQUEST,
                                           "bad_request",
                                           "invalid zarr_id: a string of 1 "
                                           "to %d bytes of UTF-8, no \"/\", "
                                           "not \".\" or \"..\"",
                                           ZARR_ID_MAX);
        }

        ctx->zarr_id.len = json_string_length(v);
        ctx->zarr_id.data = ngx_pnalloc(r->pool, ctx->zarr_id.len);
        if (ctx->zarr_id.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memcpy(ctx->zarr_id.data, json_string_value(v),
                   ctx->zarr_id.len);

    } else {
        /* a random UUID (version 4), as DANDI makes them */

        if (RAND_bytes(uuid, 16) != 1) {
            return ngx_http_zarr_api_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                           "internal_error",
                                           "RAND_bytes() failed");
        }

        uuid[6] = (uuid[6] & 0x0f) | 0x40;
        uuid[8] = (uuid[8] & 0x3f) | 0x80;

        p = ngx_pnalloc(r->pool, 36);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->zarr_id.data = p;
        p = ngx_hex_dump(p, uuid, 4);
        *p++ = '-';
        p = ngx_hex_dump(p, uuid + 4, 2);
        *p++ = '-';
        p = ngx_hex_dump(p, uuid + 6, 2);
        *p++ = '-';
        p = ngx_hex_dump(p, uuid + 8, 2);
        *p++ = '-';
        p = ngx_hex_dump(p, uuid + 10, 6);
        ctx->zarr_id.len = p - ctx->zarr_id.data;
    }

    return ngx_http_zarr_api_run(r, ctx, NGX_HTTP_ZARR_API_TASK_CREATE,
                                 ngx_http_zarr_api_create_done, NULL);
}


static ngx_int_t
ngx_http_zarr_api_create_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t)
{
    json_t  *j;

    if (t->rc == ZARR_ERR_EXISTS) {
        return ngx_http_zarr_api_error(r, NGX_HTTP_CONFLICT, "conflict",
                                       "zarr \"%V/%V\" exists",
                                       &t->ctx->bucket, &t->ctx->zarr_id);
    }

    if (t->rc != ZARR_OK) {
        return ngx_http_zarr_api_store_error(r, t->rc, &t->err);
    }

    j = json_pack("{s:o,s:s}",
                  "zarr_id", ngx_http_zarr_api_string(t->z.zarr_id,
                                                      t->z.zarr_id_len),
                  "digest", ZARR_EMPTY_DIGEST);

    return ngx_http_zarr_api_send_json(r, NGX_HTTP_CREATED, j);
}


/* GET v1/buckets/{b}/zarrs/{id} */

static ngx_int_t
ngx_http_zarr_api_info(ngx_http_request_t *r, ngx_http_zarr_api_ctx_t *ctx)
{
    return ngx_http_zarr_api_run(r, ctx, NGX_HTTP_ZARR_API_TASK_INFO,
                                 ngx_http_zarr_api_info_done, NULL);
}


static ngx_int_t
ngx_http_zarr_api_info_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t)
{
    json_t  *j;

    if (t->rc == ZARR_ERR_NOTFOUND) {
        return ngx_http_zarr_api_not_found(r, t->ctx);
    }

    if (t->rc != ZARR_OK) {
        return ngx_http_zarr_api_store_error(r, t->rc, &t->err);
    }

    /* no digest while it is rebuilt: it may be wrong (DESIGN 4) */

    j = json_pack("{s:o,s:o,s:s,s:o,s:I,s:I,s:o,s:I}",
                  "bucket", ngx_http_zarr_api_string(t->z.bucket,
                                                     t->z.bucket_len),
                  "zarr_id", ngx_http_zarr_api_string(t->z.zarr_id,
                                                      t->z.zarr_id_len),
                  "state", t->recovering ? "recovering" : "ready",
                  "digest", t->recovering ? json_null()
                                          : json_string(t->after.digest),
                  "file_count", (json_int_t) t->after.count,
                  "size", (json_int_t) t->after.size,
                  "batch", t->has_batch
                           ? ngx_http_zarr_api_batch_json(&t->batch)
                           : json_null(),
                  "mirror_pending", (json_int_t) t->pending);

    return ngx_http_zarr_api_send_json(r, NGX_HTTP_OK, j);
}


/* GET v1/buckets/{b}/zarrs/{id}/checksum?path=D */

static ngx_int_t
ngx_http_zarr_api_checksum(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx)
{
    ngx_int_t  rc;
    ngx_str_t  path;

    rc = ngx_http_zarr_api_arg(r, "path", &path);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_HTTP_BAD_REQUEST) {
        return ngx_http_zarr_api_error(r, NGX_HTTP_BAD_REQUEST,
                                       "bad_request",
                                       "bad escape in \"path\"");
    }

    /* "a/b/" is "a/b" */
    while (path.len && path.data[path.len - 1] == '/') {
        path.len--;
    }

    return ngx_http_zarr_api_run(r, ctx, NGX_HTTP_ZARR_API_TASK_CHECKSUM,
                                 ngx_http_zarr_api_checksum_done, &path);
}


/* 503 for a zarr rebuilt from a listing after a crash (DESIGN 4) */

static ngx_int_t
ngx_http_zarr_api_recovering(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t)
{
    if (ngx_http_zarr_retry_after(r, 5) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_zarr_api_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "recovering",
                                   "zarr \"%V/%V\" is being rebuilt "
                                   "from a listing after a crash; retry",
                                   &t->ctx->bucket, &t->ctx->zarr_id);
}


static ngx_int_t
ngx_http_zarr_api_checksum_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t)
{
    ngx_str_t  path;

    if (t->rc == ZARR_OK && t->recovering) {
        return ngx_http_zarr_api_recovering(r, t);
    }

    if (t->rc == ZARR_ERR_NOTFOUND) {

        if (t->no_zarr) {
            return ngx_http_zarr_api_not_found(r, t->ctx);
        }

        path.data = (u_char *) t->arg;
        path.len = t->arg_len;

        return ngx_http_zarr_api_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                       "no directory \"%V\" in zarr "
                                       "\"%V/%V\"", &path, &t->ctx->bucket,
                                       &t->ctx->zarr_id);
    }

    if (t->rc != ZARR_OK) {
        return ngx_http_zarr_api_store_error(r, t->rc, &t->err);
    }

    return ngx_http_zarr_api_send(r, NGX_HTTP_OK, (u_char *) t->doc.data,
                                  t->doc.len);
}


/* GET v1/buckets/{b}/zarrs/{id}/batch */

static ngx_int_t
ngx_http_zarr_api_batch_get(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx)
{
    int            rc;
    zarr_err_t     err;
    zarr_batch_t   b;

    rc = ngx_http_zarr_api_batch_of(ctx, &b, &err);

    if (rc == ZARR_ERR_NOTFOUND) {
        return ngx_http_zarr_api_no_batch(r, ctx);
    }

    if (rc != ZARR_OK) {
        return ngx_http_zarr_api_store_error(r, rc, &err);
    }

    return ngx_http_zarr_api_send_json(r, NGX_HTTP_OK,
                                       ngx_http_zarr_api_batch_json(&b));
}


/* POST v1/buckets/{b}/zarrs/{id}/batch {"owner": .., "timeout": s} */

static ngx_int_t
ngx_http_zarr_api_batch_open(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx)
{
    int                        rc;
    json_t                    *owner, *timeout, *signer;
    double                     secs;
    ngx_str_t                  o;
    zarr_err_t                 err;
    zarr_dir_sum_t             sum;
    ngx_http_zarr_api_task_t  *t;
    ngx_http_zarr_loc_conf_t  *zlcf;

    zlcf = ngx_http_get_module_loc_conf(r, ngx_http_zarr_module);

    owner = ctx->body ? json_object_get(ctx->body, "owner") : NULL;
    timeout = ctx->body ? json_object_get(ctx->body, "timeout") : NULL;

    if (owner == NULL && ctx->auth.identity.len) {
        /* a signed request: the signer's identity by default */
        if (ctx->body == NULL) {
            ctx->body = json_object();
        }

        signer = json_stringn((char *) ctx->auth.identity.data,
                              ctx->auth.identity.len);

        if (ctx->body == NULL || signer == NULL
            || json_object_set_new(ctx->body, "owner", signer) != 0)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        owner = json_object_get(ctx->body, "owner");
    }

    if (owner == NULL || !json_is_string(owner)
        || json_string_length(owner) == 0
        || json_string_length(owner) > ZARR_OWNER_MAX
        || ngx_strlchr((u_char *) json_string_value(owner),
                       (u_char *) json_string_value(owner)
                       + json_string_length(owner), '\0')
           != NULL)
    {
        return ngx_http_zarr_api_error(r, NGX_HTTP_BAD_REQUEST,
                                       "bad_request",
                                       "\"owner\" must be a string of 1 to "
                                       "%d bytes (the batch owner, by "
                                       "default an access key id)",
                                       ZARR_OWNER_MAX);
    }

    secs = (double) zlcf->batch_timeout / 1000;

    if (timeout && !json_is_null(timeout)) {
        if (!json_is_number(timeout)
            || json_number_value(timeout) <= 0
            || json_number_value(timeout) > NGX_HTTP_ZARR_API_TIMEOUT_MAX)
        {
            return ngx_http_zarr_api_error(r, NGX_HTTP_BAD_REQUEST,
                                           "bad_request",
                                           "\"timeout\" must be a number of "
                                           "seconds, more than 0 and at "
                                           "most %d",
                                           NGX_HTTP_ZARR_API_TIMEOUT_MAX);
        }

        secs = json_number_value(timeout);
    }

    /* the zarr must be known: register a new one first */

    rc = zarr_store_get_zarr(ngx_http_zarr_get_store(),
                             (char *) ctx->bucket.data, ctx->bucket.len,
                             (char *) ctx->zarr_id.data, ctx->zarr_id.len,
                             &sum, &err);

    if (rc == ZARR_ERR_NOTFOUND) {
        return ngx_http_zarr_api_not_found(r, ctx);
    }

    if (rc != ZARR_OK) {
        return ngx_http_zarr_api_store_error(r, rc, &err);
    }

    o.data = (u_char *) json_string_value(owner);
    o.len = json_string_length(owner);

    t = ngx_http_zarr_api_task_create(r, ctx, NGX_HTTP_ZARR_API_TASK_OPEN,
                                      ngx_http_zarr_api_open_done, &o);
    if (t == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    t->timeout_ms = (uint64_t) (secs * 1000 + 0.5);

    if (t->timeout_ms == 0) {
        t->timeout_ms = 1;
    }

    return ngx_http_zarr_api_task_post(r, t);
}


static ngx_int_t
ngx_http_zarr_api_open_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t)
{
    if (t->rc == ZARR_ERR_CONFLICT) {
        return ngx_http_zarr_api_batch_conflict(r,
                   "another batch is active on this zarr", &t->batch);
    }

    if (t->rc != ZARR_OK) {
        return ngx_http_zarr_api_store_error(r, t->rc, &t->err);
    }

    return ngx_http_zarr_api_send_json(r, NGX_HTTP_CREATED,
                                     ngx_http_zarr_api_batch_json(&t->batch));
}


/* DELETE v1/buckets/{b}/zarrs/{id}/batch: cancel, or take over */

static ngx_int_t
ngx_http_zarr_api_batch_cancel(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx)
{
    int            rc;
    zarr_err_t     err;
    zarr_batch_t   b;

    rc = ngx_http_zarr_api_batch_of(ctx, &b, &err);

    if (rc == ZARR_ERR_NOTFOUND) {
        return ngx_http_zarr_api_no_batch(r, ctx);
    }

    if (rc != ZARR_OK) {
        return ngx_http_zarr_api_store_error(r, rc, &err);
    }

    return ngx_http_zarr_api_run(r, ctx, NGX_HTTP_ZARR_API_TASK_END,
                                 ngx_http_zarr_api_cancel_done, NULL);
}


static ngx_int_t
ngx_http_zarr_api_cancel_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t)
{
    if (t->rc != ZARR_OK && t->rc != ZARR_ERR_NOTFOUND) {
        return ngx_http_zarr_api_store_error(r, t->rc, &t->err);
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "zarr api: batch of \"%V/%V\" cancelled",
                  &t->ctx->bucket, &t->ctx->zarr_id);

    return NGX_HTTP_NO_CONTENT;
}


/*
 * POST v1/buckets/{b}/zarrs/{id}/batch/complete {"expected_digest": ..}:
 * waits until the batch has no request in flight and the zarr's mirror
 * backlog is empty, then compares and ends the batch.
 */

static ngx_int_t
ngx_http_zarr_api_complete(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx)
{
    json_t  *v;

    v = ctx->body ? json_object_get(ctx->body, "expected_digest") : NULL;

    if (v && !json_is_null(v)) {
        if (!json_is_string(v)) {
            return ngx_http_zarr_api_error(r, NGX_HTTP_BAD_REQUEST,
                                           "bad_request",
                                           "\"expected_digest\" must be a "
                                           "string");
        }

        ctx->expected.len = json_string_length(v);
        ctx->expected.data = ngx_pnalloc(r->pool, ctx->expected.len + 1);
        if (ctx->expected.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memcpy(ctx->expected.data, json_string_value(v),
                   ctx->expected.len + 1);
        ctx->has_expected = 1;
    }

    ctx->started = ngx_current_msec;

    ctx->poll.handler = ngx_http_zarr_api_poll_handler;
    ctx->poll.data = ctx;
    ctx->poll.log = r->connection->log;

    return ngx_http_zarr_api_complete_step(r, ctx);
}


static ngx_int_t
ngx_http_zarr_api_complete_step(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx)
{
    int                        rc, active;
    uint64_t                   pending;
    zarr_err_t                 err;
    zarr_zref_t                z;
    zarr_store_t              *store;
    zarr_batch_t               b;
    ngx_http_zarr_api_task_t  *t;

    store = ngx_http_zarr_get_store();

    if (store == NULL) {
        return ngx_http_zarr_api_unavailable(r);
    }

    ngx_http_zarr_api_zref(ctx, &z);

    rc = ngx_http_zarr_api_batch_of(ctx, &b, &err);

    if (rc != ZARR_OK && rc != ZARR_ERR_NOTFOUND) {
        return ngx_http_zarr_api_store_error(r, rc, &err);
    }

    active = (rc == ZARR_OK);

    if (ctx->batch_id == 0) {
        if (!active) {
            return ngx_http_zarr_api_no_batch(r, ctx);
        }

        ctx->batch_id = b.id;

    } else if (active && b.id != ctx->batch_id) {
        return ngx_http_zarr_api_error(r, NGX_HTTP_CONFLICT, "conflict",
                                       "the batch ended while waiting for "
                                       "the mirror and another one "
                                       "started");
    }

    rc = zarr_outbox_count(store, z.bucket, z.bucket_len, z.zarr_id,
                           z.zarr_id_len, &pending, &err);

    if (rc != ZARR_OK) {
        return ngx_http_zarr_api_store_error(r, rc, &err);
    }

    if (pending || (active && b.inflight)) {
        if (ngx_exiting
            || ngx_current_msec - ctx->started >= NGX_HTTP_ZARR_API_WAIT)
        {
            return ngx_http_zarr_api_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "unavailable",
                                           "the mirror of zarr \"%V/%V\" "
                                           "has not caught up (%uL "
                                           "directories pending, %uL "
                                           "requests in flight); retry",
                                           &ctx->bucket, &ctx->zarr_id,
                                           pending,
                                           active ? b.inflight : 0);
        }

        ngx_add_timer(&ctx->poll, NGX_HTTP_ZARR_API_POLL);
        r->main->count++;

        return NGX_DONE;
    }

    /* the digest (maybe recomputed), its check and the end: a task */

    t = ngx_http_zarr_api_task_create(r, ctx,
                                      NGX_HTTP_ZARR_API_TASK_COMPLETE,
                                      ngx_http_zarr_api_complete_done,
                                      ctx->has_expected ? &ctx->expected
                                                        : NULL);
    if (t == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    t->has_expected = ctx->has_expected;
    t->has_batch = active;
    t->batch.id = ctx->batch_id;

    return ngx_http_zarr_api_task_post(r, t);
}


static void
ngx_http_zarr_api_poll_handler(ngx_event_t *ev)
{
    ngx_int_t                 rc;
    ngx_connection_t         *c;
    ngx_http_request_t       *r;
    ngx_http_zarr_api_ctx_t  *ctx;

    ctx = ev->data;
    r = ctx->r;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    rc = ngx_http_zarr_api_complete_step(r, ctx);

    /* drops the reference the wait took */
    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_zarr_api_complete_send(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx, ngx_uint_t status)
{
    json_t  *j;

    if (status == NGX_HTTP_PRECONDITION_FAILED) {
        j = json_pack("{s:s,s:s,s:s,s:I,s:I,s:b}",
                      "error", "digest_mismatch",
                      "message", "the zarr's digest is not the expected "
                                 "one; the batch stays open",
                      "digest", ctx->sum.digest,
                      "file_count", (json_int_t) ctx->sum.count,
                      "size", (json_int_t) ctx->sum.size,
                      "match", 0);

    } else {
        j = json_pack("{s:s,s:I,s:I,s:o}",
                      "digest", ctx->sum.digest,
                      "file_count", (json_int_t) ctx->sum.count,
                      "size", (json_int_t) ctx->sum.size,
                      "match", ctx->has_expected ? json_boolean(ctx->match)
                                                 : json_null());
    }

    return ngx_http_zarr_api_send_json(r, status, j);
}


static ngx_int_t
ngx_http_zarr_api_complete_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t)
{
    if (t->rc == ZARR_ERR_CONFLICT) {
        return ngx_http_zarr_api_error(r, NGX_HTTP_CONFLICT, "conflict",
                                       "the batch ended while completing "
                                       "and another one started");
    }

    if (t->rc != ZARR_OK && t->rc != ZARR_ERR_NOTFOUND) {
        return ngx_http_zarr_api_store_error(r, t->rc, &t->err);
    }

    t->ctx->sum = t->after;
    t->ctx->match = t->match;

    if (t->has_expected && !t->match) {
        /* the batch stays: the client fixes its upload and completes */
        return ngx_http_zarr_api_complete_send(r, t->ctx,
                                               NGX_HTTP_PRECONDITION_FAILED);
    }

    return ngx_http_zarr_api_complete_send(r, t->ctx, NGX_HTTP_OK);
}


/*
 * POST v1/buckets/{b}/zarrs/{id}/reconcile[?wait=1]
 *
 * A job (zarr_job.h), in two thread tasks on one task structure: the
 * first records the job and opens the zarr's batch, then the request is
 * answered (202, or 409 while another job runs or a batch is active) and
 * the second, the reconcile itself, runs without it.  With wait=1 the
 * request waits for the second and gets the job's end (the answer of
 * reconcile before it became a job).
 */

static ngx_int_t
ngx_http_zarr_api_reconcile(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx)
{
    ngx_int_t                   rc;
    ngx_str_t                   wait;
    ngx_http_zarr_api_task_t   *t;
    ngx_http_zarr_loc_conf_t   *zlcf;
    ngx_http_zarr_main_conf_t  *zmcf;

    zmcf = ngx_http_get_module_main_conf(r, ngx_http_zarr_module);

    if (zmcf->backend.data == NULL || zmcf->access_key.data == NULL) {
        return ngx_http_zarr_api_unavailable(r);
    }

    rc = ngx_http_zarr_api_arg(r, "wait", &wait);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_HTTP_BAD_REQUEST
        || (rc == NGX_OK
            && !(wait.len == 1 && (wait.data[0] == '0'
                                   || wait.data[0] == '1'))))
    {
        return ngx_http_zarr_api_error(r, NGX_HTTP_BAD_REQUEST,
                                       "bad_request",
                                       "wait: 0 or 1");
    }

    t = ngx_http_zarr_api_task_create(r, ctx,
                                      NGX_HTTP_ZARR_API_TASK_RECONCILE,
                                      ngx_http_zarr_api_reconcile_done,
                                      NULL);
    if (t == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    t->jobbed = 1;
    t->wait = (rc == NGX_OK && wait.data[0] == '1');

    /* the batch reconcile holds while it runs: touched as it goes */

    zlcf = ngx_http_get_module_loc_conf(r, ngx_http_zarr_module);
    t->timeout_ms = ngx_max(zlcf->batch_timeout, 1);

    rc = ngx_http_zarr_api_task_post(r, t);

    if (rc == NGX_DONE) {
        /* posted: it comes back here, not to ngx_http_zarr_api_task_event */
        t->task.event.handler = ngx_http_zarr_api_job_event;
    }

    return rc;
}


/*
 * A reconcile job's task back from the thread pool: its first part
 * (recorded and holding the batch: the second is posted, the request
 * answered 202 unless it waits) or its end.
 */

static void
ngx_http_zarr_api_job_event(ngx_event_t *ev)
{
    ngx_int_t                   rc;
    zarr_err_t                  err;
    zarr_job_t                 *job;
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_zarr_api_task_t   *t;
    ngx_http_zarr_main_conf_t  *zmcf;

    t = ev->data;
    r = t->r;

    ngx_http_zarr_api_tasks--;

    if (t->started && !t->second) {
        t->second = 1;

        zmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                                   ngx_http_zarr_module);

        /* the job as accepted: the thread updates t->job from now on */

        job = NULL;

        if (r && !t->wait) {
            job = ngx_palloc(r->pool, sizeof(zarr_job_t));
            if (job) {
                *job = t->job;
            }
        }

        if (zmcf->thread_pool
            && ngx_thread_task_post(zmcf->thread_pool, &t->task) == NGX_OK)
        {
            ngx_http_zarr_api_tasks++;

            if (r == NULL || t->wait) {
                /* it runs on; a waiting request stays blocked */
                return;
            }

            c = r->connection;
            ngx_http_set_log_request(c->log, r);

            /* the request goes, the task stays */
            t->cln->handler = NULL;
            t->r = NULL;
            t->ctx = NULL;
            r->main->blocked--;

            rc = job ? ngx_http_zarr_api_job_accepted(r, job)
                     : NGX_HTTP_INTERNAL_SERVER_ERROR;

            ngx_http_finalize_request(r, rc);
            ngx_http_run_posted_requests(c);
            return;
        }

        /* not posted: the batch is let go, the job recorded as failed */

        (void) zarr_gate_batch_end(t->store, &t->z, t->batch.id, &err);

        t->locked = 0;
        t->rc = NGX_HTTP_ZARR_API_BACKEND;
        t->status = NGX_HTTP_SERVICE_UNAVAILABLE;
        ngx_cpystrn((u_char *) t->err.msg,
                    (u_char *) "the thread pool is busy; retry",
                    sizeof(t->err.msg));
        ngx_http_zarr_api_job_progress(t, 1);
    }

    if (t->started) {
        ngx_http_zarr_api_job_log(t, r ? r->connection->log
                                       : ngx_cycle->log);
    }

    if (r == NULL) {
        ngx_http_zarr_api_task_free(t);
        return;
    }

    t->cln->handler = NULL;

    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    r->main->blocked--;

    rc = t->done(r, t);

    ngx_http_zarr_api_task_free(t);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* 202 with the job and where to see it */

static ngx_int_t
ngx_http_zarr_api_job_accepted(ngx_http_request_t *r, zarr_job_t *job)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the same path (no arguments), relative: GET it */
    h->hash = 1;
    ngx_str_set(&h->key, "Location");
    h->value = r->uri;

    return ngx_http_zarr_api_send_json(r, NGX_HTTP_ACCEPTED,
                                       ngx_http_zarr_api_job_json(job));
}


/* the end of a job, in the error log as reconcile has always logged it */

static void
ngx_http_zarr_api_job_log(ngx_http_zarr_api_task_t *t, ngx_log_t *log)
{
    if (t->unrecorded) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "zarr api: the end of the reconcile of \"%s/%s\" "
                      "could not be recorded: %s", t->z.bucket,
                      t->z.zarr_id, t->job.error);
    }

    if (t->rc == ZARR_OK) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "zarr api: reconciled \"%s/%s\": %uL added, "
                      "%uL removed, %uL changed, %uL skipped, %uL stale "
                      ".checksum removed, digest %s -> %s", t->z.bucket,
                      t->z.zarr_id, t->added, t->removed, t->changed,
                      t->skipped, t->stale, t->before.digest,
                      t->after.digest);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "zarr api: reconcile of \"%s/%s\": %s", t->z.bucket,
                  t->z.zarr_id, t->job.error);
}


static ngx_int_t
ngx_http_zarr_api_reconcile_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t)
{
    json_t  *j;

    if (t->running) {
        j = json_pack("{s:s,s:s,s:o}", "error", "conflict",
                      "message", "a reconcile of this zarr is running: "
                      "GET it to follow it", "job",
                      ngx_http_zarr_api_job_json(&t->job));

        return ngx_http_zarr_api_send_json(r, NGX_HTTP_CONFLICT, j);
    }

    if (t->rc == ZARR_ERR_CONFLICT) {
        return ngx_http_zarr_api_batch_conflict(r, t->lost
                   ? "the reconcile's batch was ended while it ran "
                     "(cancel or takeover); a part of the changes may be "
                     "applied: run it again"
                   : "a batch is active on this zarr: reconcile needs the "
                     "zarr to itself", &t->batch);
    }

    if (t->rc == NGX_HTTP_ZARR_API_BACKEND) {
        return ngx_http_zarr_api_error(r, t->status,
                                       t->status == NGX_HTTP_NOT_FOUND
                                       ? "not_found" : "backend_error",
                                       "%s", t->err.msg);
    }

    if (t->rc != ZARR_OK) {
        return ngx_http_zarr_api_store_error(r, t->rc, &t->err);
    }

    /* ?wait=1: the job as it ended */

    return ngx_http_zarr_api_send_json(r, NGX_HTTP_OK,
                                       ngx_http_zarr_api_job_json(&t->job));
}


/*
 * GET v1/buckets/{b}/zarrs/{id}/reconcile: the zarr's last job, whichever
 * worker runs or ran it; one LMDB read, inline
 */

static ngx_int_t
ngx_http_zarr_api_reconcile_get(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx)
{
    int            rc;
    zarr_err_t     err;
    zarr_job_t    *job;
    zarr_zref_t    z;
    zarr_store_t  *store;

    store = ngx_http_zarr_get_store();
    if (store == NULL) {
        return ngx_http_zarr_api_unavailable(r);
    }

    job = ngx_palloc(r->pool, sizeof(zarr_job_t));
    if (job == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_zarr_api_zref(ctx, &z);

    rc = zarr_job_get(store, &z, ngx_http_zarr_api_job_alive, NULL, job,
                      &err);

    if (rc == ZARR_ERR_NOTFOUND) {
        return ngx_http_zarr_api_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                       "no reconcile of \"%V/%V\" was "
                                       "asked", &ctx->bucket,
                                       &ctx->zarr_id);
    }

    if (rc != ZARR_OK) {
        return ngx_http_zarr_api_store_error(r, rc, &err);
    }

    return ngx_http_zarr_api_send_json(r, NGX_HTTP_OK,
                                       ngx_http_zarr_api_job_json(job));
}


static json_t *
ngx_http_zarr_api_job_json(const zarr_job_t *job)
{
    json_t  *j;

    j = json_pack("{s:s,s:I,s:I,s:o,s:o,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
                  "s:I,s:o,s:o,s:o}",
                  "state", zarr_job_state_name(job->state),
                  "job_id", (json_int_t) job->id,
                  "pid", (json_int_t) job->proc.pid,
                  "started", ngx_http_zarr_api_time(job->started_ms),
                  "updated", ngx_http_zarr_api_time(job->updated_ms),
                  "ended", ngx_http_zarr_api_time(job->ended_ms),
                  "objects_listed", (json_int_t) job->listed,
                  "mutations_total", (json_int_t) job->total,
                  "mutations_applied", (json_int_t) job->applied,
                  "added", (json_int_t) job->added,
                  "removed", (json_int_t) job->removed,
                  "changed", (json_int_t) job->changed,
                  "skipped", (json_int_t) job->skipped,
                  "stale_checksums_removed", (json_int_t) job->stale,
                  "digest_before", job->digest_before[0]
                                   ? json_string(job->digest_before)
                                   : json_null(),
                  "digest_after", job->digest_after[0]
                                  ? json_string(job->digest_after)
                                  : json_null(),
                  "error", job->error[0]
                           ? json_string(job->error) : json_null());

    return j;
}


/* RFC 3339, UTC, to the second; null for 0 */

static json_t *
ngx_http_zarr_api_time(uint64_t ms)
{
    char       buf[32];
    time_t     sec;
    struct tm  tm;

    if (ms == 0) {
        return json_null();
    }

    sec = (time_t) (ms / 1000);

    if (gmtime_r(&sec, &tm) == NULL
        || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    {
        return json_null();
    }

    return json_string(buf);
}


/* is the process of a job alive (any thread) */

static int
ngx_http_zarr_api_job_alive(void *ctx, const zarr_proc_t *p)
{
    return ngx_http_zarr_proc_alive(p);
}


/* thread tasks */

static ngx_http_zarr_api_task_t *
ngx_http_zarr_api_task_create(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx, ngx_uint_t kind,
    ngx_http_zarr_api_done_pt done, ngx_str_t *arg)
{
    char                       *p;
    size_t                      len;
    ngx_http_zarr_api_task_t   *t;
    ngx_http_zarr_loc_conf_t   *zlcf;
    ngx_http_zarr_main_conf_t  *zmcf;

    zlcf = ngx_http_get_module_loc_conf(r, ngx_http_zarr_module);
    zmcf = ngx_http_get_module_main_conf(r, ngx_http_zarr_module);

    t = ngx_calloc(sizeof(ngx_http_zarr_api_task_t), r->connection->log);
    if (t == NULL) {
        return NULL;
    }

    len = ctx->bucket.len + ctx->zarr_id.len + zlcf->prefix.len
          + zlcf->checksum_prefix.len + (arg ? arg->len : 0) + 5;

    t->strings = ngx_alloc(len, r->connection->log);
    if (t->strings == NULL) {
        ngx_free(t);
        return NULL;
    }

    /* NUL-terminated copies: the thread must not read the request's */

    p = t->strings;

    t->z.bucket = p;
    t->z.bucket_len = ctx->bucket.len;
    p = (char *) ngx_cpymem(p, ctx->bucket.data, ctx->bucket.len);
    *p++ = '\0';

    t->z.zarr_id = p;
    t->z.zarr_id_len = ctx->zarr_id.len;
    p = (char *) ngx_cpymem(p, ctx->zarr_id.data, ctx->zarr_id.len);
    *p++ = '\0';

    t->prefix = p;
    t->prefix_len = zlcf->prefix.len;
    p = (char *) ngx_cpymem(p, zlcf->prefix.data, zlcf->prefix.len);
    *p++ = '\0';

    t->checksum_prefix = p;
    t->checksum_prefix_len = zlcf->checksum_prefix.len;
    p = (char *) ngx_cpymem(p, zlcf->checksum_prefix.data,
                            zlcf->checksum_prefix.len);
    *p++ = '\0';

    t->arg = p;
    t->arg_len = arg ? arg->len : 0;

    if (arg) {
        p = (char *) ngx_cpymem(p, arg->data, arg->len);
    }

    *p = '\0';

    t->kind = kind;
    t->done = done;
    t->ctx = ctx;
    t->store = ngx_http_zarr_get_store();

    /* the configuration outlives the worker's tasks */
    t->s3conf.endpoint = (char *) zmcf->backend.data;
    t->s3conf.access_key = (char *) zmcf->access_key.data;
    t->s3conf.secret_key = (char *) zmcf->secret_key.data;
    t->s3conf.region = zmcf->region.len ? (char *) zmcf->region.data : NULL;
    t->s3conf.connect_timeout_ms = 5000;
    t->s3conf.timeout_ms = 60000;

    return t;
}


static void
ngx_http_zarr_api_task_free(ngx_http_zarr_api_task_t *t)
{
    zarr_buf_free(&t->doc);
    zarr_buf_free(&t->snaps);
    ngx_free(t->mkey);
    zarr_buf_free(&t->ids_buf);
    ngx_free(t->id_offs);
    ngx_free(t->sums);
    ngx_free(t->batches);
    ngx_free(t->has);
    ngx_free(t->strings);
    ngx_free(t);
}


/*
 * Posts t; returns NGX_DONE with a reference on the request taken until
 * the task comes back (ngx_http_zarr_api_task_event), or an answer.
 */

static ngx_int_t
ngx_http_zarr_api_task_post(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t)
{
    ngx_pool_cleanup_t         *cln;
    ngx_http_zarr_main_conf_t  *zmcf;

    zmcf = ngx_http_get_module_main_conf(r, ngx_http_zarr_module);

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_http_zarr_api_task_free(t);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    t->r = r;
    t->cln = cln;

    t->task.ctx = t;
    t->task.handler = ngx_http_zarr_api_thread;
    t->task.event.handler = ngx_http_zarr_api_task_event;
    t->task.event.data = t;

    /* not the connection's log: the connection may go first */
    t->task.event.log = ngx_cycle->log;

    if (zmcf->thread_pool == NULL
        || ngx_thread_task_post(zmcf->thread_pool, &t->task) != NGX_OK)
    {
        ngx_http_zarr_api_task_free(t);
        return ngx_http_zarr_api_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "unavailable",
                                       "the thread pool is busy; retry");
    }

    cln->handler = ngx_http_zarr_api_task_abort;
    cln->data = t;

    ngx_http_zarr_api_tasks++;

    r->main->blocked++;
    r->main->count++;

    return NGX_DONE;
}


/* a task that needs nothing more than its kind and arg, posted */

static ngx_int_t
ngx_http_zarr_api_run(ngx_http_request_t *r, ngx_http_zarr_api_ctx_t *ctx,
    ngx_uint_t kind, ngx_http_zarr_api_done_pt done, ngx_str_t *arg)
{
    ngx_http_zarr_api_task_t  *t;

    t = ngx_http_zarr_api_task_create(r, ctx, kind, done, arg);
    if (t == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_zarr_api_task_post(r, t);
}


/* the request goes: its task, still in a thread, frees itself on return */

static void
ngx_http_zarr_api_task_abort(void *data)
{
    ngx_http_zarr_api_task_t *t = data;

    t->r = NULL;
    t->ctx = NULL;
}


static void
ngx_http_zarr_api_task_event(ngx_event_t *ev)
{
    ngx_int_t                  rc;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_zarr_api_task_t  *t;

    t = ev->data;
    r = t->r;

    ngx_http_zarr_api_tasks--;

    if (r == NULL) {
        ngx_http_zarr_api_task_free(t);
        return;
    }

    t->cln->handler = NULL;

    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    r->main->blocked--;

    rc = t->done(r, t);

    ngx_http_zarr_api_task_free(t);

    /* drops the task's reference */
    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* thread code from here on: libc, LMDB and libcurl only */

static void
ngx_http_zarr_api_thread(void *data, ngx_log_t *log)
{
    ngx_http_zarr_api_task_t *t = data;

    switch (t->kind) {

    case NGX_HTTP_ZARR_API_TASK_CREATE:
        t->rc = zarr_store_create_zarr(t->store, t->z.bucket,
                                       t->z.bucket_len, t->z.zarr_id,
                                       t->z.zarr_id_len, &t->err);
        break;

    case NGX_HTTP_ZARR_API_TASK_OPEN:
        t->rc = zarr_gate_batch_open(t->store, &t->z, t->arg,
                                     t->arg_len, t->timeout_ms,
                                     ngx_http_zarr_now_ms(), &t->batch,
                                     &t->err);
        break;

    case NGX_HTTP_ZARR_API_TASK_END:
        t->rc = zarr_gate_batch_end(t->store, &t->z, 0, &t->err);
        break;

    case NGX_HTTP_ZARR_API_TASK_COMPLETE:
        ngx_http_zarr_api_complete_thread(t);
        break;

    case NGX_HTTP_ZARR_API_TASK_RECONCILE:
        if (t->jobbed && !t->started) {
            ngx_http_zarr_api_job_start_thread(t);
            break;
        }

        ngx_http_zarr_api_reconcile_thread(t);
        break;

    case NGX_HTTP_ZARR_API_TASK_SNAPSHOT:
        ngx_http_zarr_api_snapshot_thread(t);
        break;

    default: /* status, list, info, checksum */
        ngx_http_zarr_api_read_thread(t);
        break;
    }
}


/*
 * complete, once the mirror has caught up: the digest, compared with the
 * expected one; the batch (t->batch.id, if t->has_batch: it was active)
 * ends unless they differ
 */

static void
ngx_http_zarr_api_complete_thread(ngx_http_zarr_api_task_t *t)
{
    t->rc = zarr_store_get_zarr(t->store, t->z.bucket, t->z.bucket_len,
                                t->z.zarr_id, t->z.zarr_id_len, &t->after,
                                &t->err);

    if (t->rc == ZARR_ERR_NOTFOUND) {
        /* a batch, but no file committed yet */
        memset(&t->after, 0, sizeof(zarr_dir_sum_t));
        strcpy(t->after.digest, ZARR_EMPTY_DIGEST);
        t->rc = ZARR_OK;

    } else if (t->rc != ZARR_OK) {
        return;
    }

    t->match = t->has_expected && strcmp(t->arg, t->after.digest) == 0;

    if ((t->has_expected && !t->match) || !t->has_batch) {
        /* a mismatch keeps the batch; one that expired needs no end */
        return;
    }

    /* this batch only: another may have followed it meanwhile */
    t->rc = zarr_gate_batch_end(t->store, &t->z, t->batch.id, &t->err);
}


/* the reads: short read transactions each, one after the other */

static void
ngx_http_zarr_api_read_thread(ngx_http_zarr_api_task_t *t)
{
    int          rc;
    size_t       i;
    zarr_zref_t  z;

    switch (t->kind) {

    case NGX_HTTP_ZARR_API_TASK_STATUS:
        t->rc = zarr_store_stat(t->store, &t->stat, &t->err);

        if (t->rc == ZARR_OK) {
            t->rc = zarr_outbox_count(t->store, NULL, 0, NULL, 0,
                                      &t->pending, &t->err);
        }

        if (t->rc == ZARR_OK) {
            t->rc = zarr_gate_count_active(t->store, ngx_http_zarr_now_ms(),
                                           &t->active, &t->err);
        }

        return;

    case NGX_HTTP_ZARR_API_TASK_LIST:

        /* one more than asked: whether more remain */

        t->id_offs = malloc((t->limit + 2) * sizeof(size_t));
        t->sums = malloc((t->limit + 1) * sizeof(zarr_dir_sum_t));

        if (t->id_offs == NULL || t->sums == NULL) {
            t->nomem = 1;
            return;
        }

        t->id_offs[0] = 0;

        t->rc = zarr_store_list_from(t->store, t->z.bucket, t->z.bucket_len,
                                     t->arg, t->arg_len,
                                     ngx_http_zarr_api_list_zarr, t, &t->err);

        if (t->rc != ZARR_OK || t->nomem) {
            return;
        }

        t->batches = malloc((t->n + 1) * sizeof(zarr_batch_t));
        t->has = calloc(t->n + 1, 1);

        if (t->batches == NULL || t->has == NULL) {
            t->nomem = 1;
            return;
        }

        z.bucket = t->z.bucket;
        z.bucket_len = t->z.bucket_len;

        for (i = 0; i < t->n && i < t->limit; i++) {
            z.zarr_id = t->ids_buf.data + t->id_offs[i];
            z.zarr_id_len = t->id_offs[i + 1] - t->id_offs[i];

            rc = zarr_gate_batch(t->store, &z, ngx_http_zarr_now_ms(),
                                 &t->batches[i], &t->err);

            if (rc == ZARR_OK) {
                t->has[i] = 1;

            } else if (rc != ZARR_ERR_NOTFOUND) {
                t->rc = rc;
                return;
            }
        }

        return;

    case NGX_HTTP_ZARR_API_TASK_INFO:
        t->rc = zarr_gate_recovering(t->store, &t->z, &rc, &t->err);

        if (t->rc != ZARR_OK) {
            return;
        }

        t->recovering = rc;

        /*
         * a dirty zarr is flushed, not only computed: the next call (or
         * the mirror) finds its digests, unless writes go on meanwhile
         */
        t->rc = zarr_store_sync_zarr(t->store, t->z.bucket, t->z.bucket_len,
                                     t->z.zarr_id, t->z.zarr_id_len,
                                     &t->after, &t->err);

        if (t->rc != ZARR_OK && t->rc != ZARR_ERR_NOTFOUND) {
            /* the store takes no write (a full map): computed only */
            t->rc = zarr_store_get_zarr(t->store, t->z.bucket,
                                        t->z.bucket_len, t->z.zarr_id,
                                        t->z.zarr_id_len, &t->after, &t->err);
        }

        if (t->rc != ZARR_OK) {
            return;
        }

        rc = zarr_gate_batch(t->store, &t->z, ngx_http_zarr_now_ms(),
                             &t->batch, &t->err);

        if (rc == ZARR_OK) {
            t->has_batch = 1;

        } else if (rc != ZARR_ERR_NOTFOUND) {
            t->rc = rc;
            return;
        }

        t->rc = zarr_outbox_count(t->store, t->z.bucket, t->z.bucket_len,
                                  t->z.zarr_id, t->z.zarr_id_len,
                                  &t->pending, &t->err);
        return;

    default: /* NGX_HTTP_ZARR_API_TASK_CHECKSUM */
        t->rc = zarr_gate_recovering(t->store, &t->z, &rc, &t->err);

        if (t->rc != ZARR_OK || (t->recovering = rc)) {
            return;
        }

        t->rc = zarr_store_checksum_doc(t->store, t->z.bucket,
                                        t->z.bucket_len, t->z.zarr_id,
                                        t->z.zarr_id_len, t->arg,
                                        t->arg_len, &t->doc, &t->err);

        if (t->rc == ZARR_ERR_NOTFOUND) {

            /* which one is missing: the zarr, or the directory? */

            rc = zarr_store_get_zarr(t->store, t->z.bucket, t->z.bucket_len,
                                     t->z.zarr_id, t->z.zarr_id_len,
                                     &t->after, &t->err);

            t->no_zarr = (rc != ZARR_OK);
        }

        return;
    }
}


/* the store lists the bucket's zarrs after "after", in byte order */

static int
ngx_http_zarr_api_list_zarr(void *data, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    const zarr_dir_sum_t *sum)
{
    ngx_http_zarr_api_task_t *t = data;

    if (zarr_buf_add(&t->ids_buf, zarr_id, zarr_id_len) != 0) {
        t->nomem = 1;
        return 1;
    }

    t->sums[t->n] = *sum;
    t->id_offs[++t->n] = t->ids_buf.len;

    return t->n > t->limit;
}


/* "<prefix><zarr id>/", malloc()ed and NUL-terminated; thread code */

static char *
ngx_http_zarr_api_dir_prefix(const char *prefix, size_t prefix_len,
    const zarr_zref_t *z, size_t *len)
{
    char    *p;
    size_t   n;

    n = prefix_len + z->zarr_id_len + 1;

    p = malloc(n + 1);
    if (p == NULL) {
        return NULL;
    }

    memcpy(p, prefix, prefix_len);
    memcpy(p + prefix_len, z->zarr_id, z->zarr_id_len);
    p[n - 1] = '/';
    p[n] = '\0';

    *len = n;

    return p;
}


#define NGX_HTTP_ZARR_API_NOMEM    -100
#define NGX_HTTP_ZARR_API_STOPPED  -101


/*
 * Lists the backend under "<p><zarr id>/" into l; *prefix (malloc()ed,
 * the caller frees it) and *n are that prefix.  Returns ZARR_S3_OK,
 * NGX_HTTP_ZARR_API_NOMEM, or another code with t's error set.  Thread
 * code.
 */

static int
ngx_http_zarr_api_list_dir(ngx_http_zarr_api_task_t *t, zarr_s3_t *s3,
    const char *p, size_t plen, ngx_http_zarr_api_files_t *l, char **prefix,
    size_t *n, const char *what)
{
    int              rc;
    zarr_s3_error_t  e;

    *prefix = ngx_http_zarr_api_dir_prefix(p, plen, &t->z, n);
    if (*prefix == NULL) {
        return NGX_HTTP_ZARR_API_NOMEM;
    }

    l->cut = *n;

    memset(&e, 0, sizeof(zarr_s3_error_t));

    if (l->versions) {
        rc = zarr_s3_list_versions(s3, t->z.bucket, *prefix, *n,
                                   ngx_http_zarr_api_listed, l, &e);

    } else {
        rc = zarr_s3_list(s3, t->z.bucket, *prefix, *n,
                          ngx_http_zarr_api_listed, l, &e);
    }

    if (l->nomem) {
        return NGX_HTTP_ZARR_API_NOMEM;
    }

    if (l->stopped) {
        /* t->rc and t->err say why */
        return NGX_HTTP_ZARR_API_STOPPED;
    }

    if (rc != ZARR_S3_OK) {
        ngx_http_zarr_api_backend_err(t, what, &e);
    }

    return rc;
}


/*
 * Reconcile: the tree of the zarr becomes what the backend lists.  The
 * store is read before the backend is listed, so that a write the gateway
 * commits meanwhile is at worst applied twice, never undone.
 */

static void
ngx_http_zarr_api_reconcile_thread(ngx_http_zarr_api_task_t *t)
{
    int                         rc, known, c;
    char                        msg[256], *prefix;
    zarr_err_t                  err;
    size_t                      i, j, n;
    u_char                     *kinds;
    zarr_s3_error_t             e;
    zarr_s3_t                  *s3;
    zarr_mutation_t            *m, *mu;
    ngx_http_zarr_api_file_t   *sf, *bf;
    ngx_http_zarr_api_files_t   store, backend;

    memset(&store, 0, sizeof(ngx_http_zarr_api_files_t));
    memset(&backend, 0, sizeof(ngx_http_zarr_api_files_t));
    zarr_buf_init(&store.strings);
    zarr_buf_init(&backend.strings);

    s3 = NULL;
    m = NULL;
    kinds = NULL;
    prefix = NULL;

    /*
     * the zarr's batch, so that no S3 write races with the rebuild; a
     * recovery needs none: every write of the zarr is refused meanwhile
     */

    if (t->recovering || t->locked) {
        /* a job opened the batch before it was accepted */
        t->rc = ZARR_OK;
        goto locked;
    }

    t->rc = zarr_gate_batch_open(t->store, &t->z,
                                 NGX_HTTP_ZARR_API_RECONCILE_OWNER,
                                 sizeof(NGX_HTTP_ZARR_API_RECONCILE_OWNER) - 1,
                                 t->timeout_ms, ngx_http_zarr_now_ms(),
                                 &t->batch, &t->err);
    if (t->rc != ZARR_OK) {
        goto done;
    }

    t->locked = 1;
    t->touched_ms = ngx_http_zarr_now_ms();

locked:

    t->rc = zarr_store_get_zarr(t->store, t->z.bucket, t->z.bucket_len,
                                t->z.zarr_id, t->z.zarr_id_len, &t->before,
                                &t->err);

    if (t->rc == ZARR_ERR_NOTFOUND) {
        known = 0;
        memset(&t->before, 0, sizeof(zarr_dir_sum_t));
        strcpy(t->before.digest, ZARR_EMPTY_DIGEST);

    } else if (t->rc == ZARR_OK) {
        known = 1;

        t->rc = zarr_store_files(t->store, t->z.bucket, t->z.bucket_len,
                                 t->z.zarr_id, t->z.zarr_id_len,
                                 ngx_http_zarr_api_store_file, &store,
                                 &t->err);
        if (t->rc != ZARR_OK) {
            goto done;
        }

    } else {
        goto done;
    }

    if (store.nomem) {
        goto nomem;
    }

    /* the backend's listing under <zarr_prefix><id>/ */

    s3 = zarr_s3_create(&t->s3conf, msg, sizeof(msg));
    if (s3 == NULL) {
        t->rc = NGX_HTTP_ZARR_API_BACKEND;
        t->status = NGX_HTTP_SERVICE_UNAVAILABLE;
        snprintf(t->err.msg, sizeof(t->err.msg), "zarr_backend: %s", msg);
        goto done;
    }

    backend.holder = t;

    /* a versioned bucket: the latest versions, with their ids */

    memset(&e, 0, sizeof(zarr_s3_error_t));

    if (zarr_s3_bucket_versioning(s3, t->z.bucket, &backend.versions, &e)
        != ZARR_S3_OK)
    {
        ngx_http_zarr_api_backend_err(t, "GetBucketVersioning", &e);
        goto done;
    }

    rc = ngx_http_zarr_api_list_dir(t, s3, t->prefix, t->prefix_len,
                                    &backend, &prefix, &n, "listing");
    if (rc == NGX_HTTP_ZARR_API_NOMEM) {
        goto nomem;
    }

    if (rc != ZARR_S3_OK) {
        goto done;
    }

    ngx_http_zarr_api_files_done(&store);
    ngx_http_zarr_api_files_done(&backend);

    if (ngx_http_zarr_api_keep(t) != ZARR_OK) {
        goto done;
    }

    t->skipped = backend.skipped;
    ngx_http_zarr_api_job_progress(t, 0);

    /* the difference, as mutations */

    m = calloc(store.n + backend.n + 1, sizeof(zarr_mutation_t));
    kinds = calloc(store.n + backend.n + 1, 1);

    if (m == NULL || kinds == NULL) {
        goto nomem;
    }

    i = 0;
    j = 0;
    n = 0;

    while (i < store.n || j < backend.n) {
        sf = i < store.n ? &store.files[i] : NULL;
        bf = j < backend.n ? &backend.files[j] : NULL;

        if (sf && bf) {
            c = zarr_name_cmp(sf->path, sf->path_len, bf->path,
                              bf->path_len);
        } else {
            c = sf ? -1 : 1;
        }

        mu = &m[n];
        mu->bucket = t->z.bucket;
        mu->bucket_len = t->z.bucket_len;
        mu->zarr_id = t->z.zarr_id;
        mu->zarr_id_len = t->z.zarr_id_len;

        if (c < 0) {
            /* gone from the backend */
            mu->op = ZARR_MUT_DELETE;
            mu->path = sf->path;
            mu->path_len = sf->path_len;
            kinds[n++] = 'r';
            i++;
            continue;
        }

        if (c == 0) {
            i++;
            j++;

            if (sf->size == bf->size && sf->etag_len == bf->etag_len
                && memcmp(sf->etag, bf->etag, sf->etag_len) == 0
                && sf->version_len == bf->version_len
                && memcmp(sf->version, bf->version, sf->version_len) == 0)
            {
                continue;
            }

            kinds[n] = 'c';

        } else {
            kinds[n] = 'a';
            j++;
        }

        mu->op = ZARR_MUT_PUT;
        mu->path = bf->path;
        mu->path_len = bf->path_len;
        mu->etag = bf->etag;
        mu->etag_len = bf->etag_len;
        mu->version_id = bf->version;
        mu->version_id_len = bf->version_len;
        mu->size = bf->size;
        n++;
    }

    t->total = n;

    if (!known) {
        t->rc = zarr_store_create_zarr(t->store, t->z.bucket,
                                       t->z.bucket_len, t->z.zarr_id,
                                       t->z.zarr_id_len, &t->err);

        if (t->rc != ZARR_OK && t->rc != ZARR_ERR_EXISTS) {
            goto done;
        }
    }

    t->rc = ngx_http_zarr_api_apply(t, m, kinds, n);
    if (t->rc != ZARR_OK) {
        goto done;
    }

    t->rc = zarr_store_get_zarr(t->store, t->z.bucket, t->z.bucket_len,
                                t->z.zarr_id, t->z.zarr_id_len, &t->after,
                                &t->err);
    if (t->rc != ZARR_OK) {
        goto done;
    }

    /* every .checksum object is written again */

    if (ngx_http_zarr_api_keep(t) != ZARR_OK) {
        goto done;
    }

    t->rc = zarr_outbox_queue_all(t->store, t->z.bucket, t->z.bucket_len,
                                  t->z.zarr_id, t->z.zarr_id_len, &t->err);
    if (t->rc != ZARR_OK) {
        goto done;
    }

    if (ngx_http_zarr_api_stale(t, s3) != 0) {
        goto done;
    }

    t->rc = ZARR_OK;

    if (t->recovering) {
        /* rebuilt: it takes writes and serves digests again */
        t->rc = zarr_gate_recover_done(t->store, &t->z, &t->err);
    }

    goto done;

nomem:

    t->rc = ZARR_ERR_NOMEM;
    snprintf(t->err.msg, sizeof(t->err.msg), "out of memory");

done:

    if (t->locked && !t->lost) {
        rc = zarr_gate_batch_end(t->store, &t->z, t->batch.id, &err);

        if (rc == ZARR_ERR_CONFLICT || rc == ZARR_ERR_NOTFOUND) {
            t->lost = 1;

        } else if (rc != ZARR_OK && t->rc == ZARR_OK) {
            t->rc = rc;
            t->err = err;
        }
    }

    if (t->lost && t->rc == ZARR_OK) {
        t->rc = ZARR_ERR_CONFLICT;
    }

    if (s3) {
        zarr_s3_destroy(s3);
    }

    free(prefix);
    free(m);
    free(kinds);
    ngx_http_zarr_api_files_free(&store);
    ngx_http_zarr_api_files_free(&backend);

    /* the job's end, recorded */
    ngx_http_zarr_api_job_progress(t, 1);
}


/*
 * A reconcile job's first part: records the job (ZARR_ERR_CONFLICT and
 * t->running when another runs), lets go of the batch an interrupted job
 * left behind, and opens the zarr's batch (a conflict is recorded as the
 * job's failure).
 */

static void
ngx_http_zarr_api_job_start_thread(ngx_http_zarr_api_task_t *t)
{
    int         rc;
    uint64_t    now;
    zarr_err_t  err;
    zarr_job_t  prev;

    now = ngx_http_zarr_now_ms();

    t->rc = zarr_job_start(t->store, &t->z, ngx_http_zarr_proc(), now,
                           ngx_http_zarr_api_job_alive, NULL, &t->job, &prev,
                           &t->err);

    if (t->rc == ZARR_ERR_CONFLICT) {
        t->running = 1;
        return;
    }

    if (t->rc != ZARR_OK) {
        return;
    }

    if (prev.batch_id && strcmp(prev.error, ZARR_JOB_INTERRUPTED) == 0) {
        /* that batch only: ZARR_ERR_CONFLICT if another followed it */
        (void) zarr_gate_batch_end(t->store, &t->z, prev.batch_id, &err);
    }

    t->rc = zarr_gate_batch_open(t->store, &t->z,
                                 NGX_HTTP_ZARR_API_RECONCILE_OWNER,
                                 sizeof(NGX_HTTP_ZARR_API_RECONCILE_OWNER) - 1,
                                 t->timeout_ms, now, &t->batch, &t->err);

    if (t->rc == ZARR_OK) {
        t->locked = 1;
        t->touched_ms = now;
        t->job.batch_id = t->batch.id;

        rc = zarr_job_update(t->store, &t->z, &t->job, now, &t->err);

        if (rc == ZARR_OK) {
            t->started = 1;
            return;
        }

        (void) zarr_gate_batch_end(t->store, &t->z, t->batch.id, &err);
        t->locked = 0;
        t->rc = rc;
    }

    /* refused: the job that was asked failed */
    ngx_http_zarr_api_job_progress(t, 1);
}


/*
 * Records a job's progress, at most every NGX_HTTP_ZARR_API_PROGRESS ms
 * (a short write of the gate's, no fsync), or its end (from t->rc).  A
 * recovery is no job: nothing.
 */

static void
ngx_http_zarr_api_job_progress(ngx_http_zarr_api_task_t *t, int end)
{
    uint64_t     now;
    zarr_err_t   err;
    zarr_job_t  *job;

    if (!t->jobbed) {
        return;
    }

    job = &t->job;
    now = ngx_http_zarr_now_ms();

    if (!end && now - job->updated_ms < NGX_HTTP_ZARR_API_PROGRESS) {
        return;
    }

    job->listed = t->listed;
    job->total = t->total;
    job->applied = t->applied;
    job->added = t->added;
    job->removed = t->removed;
    job->changed = t->changed;
    job->skipped = t->skipped;
    job->stale = t->stale;

    if (t->before.digest[0]) {
        memcpy(job->digest_before, t->before.digest, ZARR_DIGEST_MAX);
        job->digest_before[ZARR_DIGEST_MAX - 1] = '\0';
    }

    if (end) {
        job->ended_ms = now;
        job->batch_id = 0;

        if (t->rc == ZARR_OK) {
            job->state = ZARR_JOB_DONE;
            memcpy(job->digest_after, t->after.digest, ZARR_DIGEST_MAX);
            job->digest_after[ZARR_DIGEST_MAX - 1] = '\0';

        } else {
            job->state = ZARR_JOB_FAILED;
            snprintf(job->error, sizeof(job->error), "%s",
                     ngx_http_zarr_api_job_error(t, &job->status));
        }
    }

    if (zarr_job_update(t->store, &t->z, job, now, &err) != ZARR_OK) {
        /* progress is best effort; a lost end is logged (job_log) */
        if (end) {
            t->unrecorded = 1;
        }

        job->updated_ms = now;
    }
}


/* why a job failed, and the HTTP status reconcile answered it with */

static const char *
ngx_http_zarr_api_job_error(ngx_http_zarr_api_task_t *t, uint32_t *status)
{
    if (t->rc == ZARR_ERR_CONFLICT) {
        *status = NGX_HTTP_CONFLICT;

        return t->lost
               ? "the reconcile's batch was ended while it ran (cancel or "
                 "takeover); a part of the changes may be applied: run it "
                 "again"
               : "a batch is active on this zarr: reconcile needs the "
                 "zarr to itself";
    }

    if (t->rc == NGX_HTTP_ZARR_API_BACKEND) {
        *status = t->status;
        return t->err.msg;
    }

    *status = t->rc == ZARR_ERR_INVALID ? NGX_HTTP_BAD_REQUEST
                                        : NGX_HTTP_INTERNAL_SERVER_ERROR;

    return t->err.msg[0] ? t->err.msg : "failed";
}


/*
 * Snapshots (DESIGN 10): GET .../snapshots, GET and DELETE
 * .../snapshots/{name}, GET .../snapshots/{name}/checksum?path=D
 */

#define NGX_HTTP_ZARR_API_SNAP_CREATE     0
#define NGX_HTTP_ZARR_API_SNAP_LIST       1
#define NGX_HTTP_ZARR_API_SNAP_GET        2
#define NGX_HTTP_ZARR_API_SNAP_DELETE     3
#define NGX_HTTP_ZARR_API_SNAP_CHECKSUM   4


static ngx_int_t
ngx_http_zarr_api_snapshot(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx)
{
    size_t                     n;
    ngx_int_t                  rc;
    ngx_str_t                  path, *arg;
    ngx_uint_t                 op;
    ngx_http_zarr_api_task_t  *t;

    arg = NULL;
    n = ngx_strlen(ctx->route->pattern);

    if (ctx->snap.len == 0) {
        op = NGX_HTTP_ZARR_API_SNAP_LIST;

    } else if (r->method == NGX_HTTP_DELETE) {
        op = NGX_HTTP_ZARR_API_SNAP_DELETE;

    } else if (n > 9
               && ngx_strcmp(ctx->route->pattern + n - 9, "/checksum") == 0)
    {
        op = NGX_HTTP_ZARR_API_SNAP_CHECKSUM;

        rc = ngx_http_zarr_api_arg(r, "path", &path);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc == NGX_HTTP_BAD_REQUEST) {
            return ngx_http_zarr_api_error(r, NGX_HTTP_BAD_REQUEST,
                                           "bad_request",
                                           "bad escape in \"path\"");
        }

        while (path.len && path.data[path.len - 1] == '/') {
            path.len--;
        }

        arg = &path;

    } else {
        op = NGX_HTTP_ZARR_API_SNAP_GET;
    }

    t = ngx_http_zarr_api_task_create(r, ctx, NGX_HTTP_ZARR_API_TASK_SNAPSHOT,
                                      ngx_http_zarr_api_snapshot_done, arg);
    if (t == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    t->snap_op = op;
    t->snap_name_len = ctx->snap.len;
    ngx_memcpy(t->snap_name, ctx->snap.data, ctx->snap.len);

    if (op == NGX_HTTP_ZARR_API_SNAP_DELETE
        && ngx_http_zarr_api_snapshot_key(r, ctx, t) != NGX_OK)
    {
        ngx_http_zarr_api_task_free(t);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_zarr_api_task_post(r, t);
}


/*
 * POST v1/buckets/{b}/zarrs/{id}/snapshots
 * {"name": .., "expected_digest": ..}: both optional
 */

static ngx_int_t
ngx_http_zarr_api_snapshot_create(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx)
{
    u_char                     *p;
    json_t                     *name, *expected;
    ngx_str_t                   e, *arg;
    ngx_tm_t                    tm;
    ngx_http_zarr_api_task_t   *t;
    ngx_http_zarr_loc_conf_t   *zlcf;
    ngx_http_zarr_main_conf_t  *zmcf;
    u_char                      def[ZARR_SNAP_NAME_MAX + 1];

    zmcf = ngx_http_get_module_main_conf(r, ngx_http_zarr_module);

    if (zmcf->backend.data == NULL || zmcf->access_key.data == NULL) {
        return ngx_http_zarr_api_unavailable(r);
    }

    name = ctx->body ? json_object_get(ctx->body, "name") : NULL;
    expected = ctx->body ? json_object_get(ctx->body, "expected_digest")
                         : NULL;

    if ((name && !json_is_string(name) && !json_is_null(name))
        || (expected && !json_is_string(expected)
            && !json_is_null(expected)))
    {
        return ngx_http_zarr_api_error(r, NGX_HTTP_BAD_REQUEST,
                                       "bad_request", "\"name\" and "
                                       "\"expected_digest\" are strings");
    }

    if (name && json_is_string(name)) {
        if (!zarr_snap_name_valid(json_string_value(name),
                                  json_string_length(name)))
        {
            return ngx_http_zarr_api_error(r, NGX_HTTP_BAD_REQUEST,
                                           "bad_request",
                                           "invalid snapshot name: "
                                           ZARR_SNAP_NAME_RULE);
        }

        ctx->snap.data = (u_char *) json_string_value(name);
        ctx->snap.len = json_string_length(name);

    } else {
        /* a UTC timestamp, e.g. "20261205T071523Z" */
        ngx_gmtime(ngx_time(), &tm);
        p = ngx_sprintf(def, "%4d%02d%02dT%02d%02d%02dZ", tm.ngx_tm_year,
                        tm.ngx_tm_mon, tm.ngx_tm_mday, tm.ngx_tm_hour,
                        tm.ngx_tm_min, tm.ngx_tm_sec);
        ctx->snap.data = def;
        ctx->snap.len = p - def;
    }

    arg = NULL;

    if (expected && json_is_string(expected)) {
        e.data = (u_char *) json_string_value(expected);
        e.len = json_string_length(expected);
        arg = &e;
    }

    t = ngx_http_zarr_api_task_create(r, ctx, NGX_HTTP_ZARR_API_TASK_SNAPSHOT,
                                      ngx_http_zarr_api_snapshot_done, arg);
    if (t == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    t->snap_op = NGX_HTTP_ZARR_API_SNAP_CREATE;
    t->has_expected = (arg != NULL);
    t->snap_name_len = ctx->snap.len;
    ngx_memcpy(t->snap_name, ctx->snap.data, ctx->snap.len);
    t->created = ngx_time();

    /* the name lives in the task from now on */
    ctx->snap.data = (u_char *) t->snap_name;

    if (ngx_http_zarr_api_snapshot_key(r, ctx, t) != NGX_OK) {
        ngx_http_zarr_api_task_free(t);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    zlcf = ngx_http_get_module_loc_conf(r, ngx_http_zarr_module);
    t->timeout_ms = ngx_max(zlcf->batch_timeout, 1);

    return ngx_http_zarr_api_task_post(r, t);
}


static ngx_int_t
ngx_http_zarr_api_snapshot_done(ngx_http_request_t *r,
    ngx_http_zarr_api_task_t *t)
{
    json_t       *j, *a;
    size_t        i, n;
    ngx_str_t     name;
    zarr_snap_t  *snaps;

    name.data = (u_char *) t->snap_name;
    name.len = t->snap_name_len;

    if (t->rc == ZARR_ERR_CONFLICT && t->snap_op
                                      == NGX_HTTP_ZARR_API_SNAP_CREATE)
    {
        return ngx_http_zarr_api_batch_conflict(r, "a batch is active on "
                                                "this zarr: complete it "
                                                "before a snapshot",
                                                &t->batch);
    }

    if (t->rc == ZARR_ERR_RECOVERING) {
        return ngx_http_zarr_api_recovering(r, t);
    }

    if (t->rc == NGX_HTTP_ZARR_API_BACKEND) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "zarr api: snapshot of \"%V/%V\": %s",
                      &t->ctx->bucket, &t->ctx->zarr_id, t->err.msg);

        return ngx_http_zarr_api_error(r, t->status,
                                       t->status == NGX_HTTP_NOT_FOUND
                                       ? "not_found" : "backend_error",
                                       "%s", t->err.msg);
    }

    if (t->unversioned || t->rc == ZARR_ERR_UNVERSIONED) {
        return ngx_http_zarr_api_error(r, NGX_HTTP_CONFLICT, "unversioned",
                                       "bucket \"%V\" is not versioned "
                                       "(enable versioning, then "
                                       "reconcile the zarr): %s",
                                       &t->ctx->bucket,
                                       t->unversioned ? "no version ids"
                                                      : t->err.msg);
    }

    if (t->mismatch) {
        j = json_pack("{s:s,s:s,s:s,s:I,s:I}",
                      "error", "digest_mismatch",
                      "message", "the zarr's digest is not the expected "
                                 "one; no snapshot taken",
                      "digest", t->after.digest,
                      "file_count", (json_int_t) t->after.count,
                      "size", (json_int_t) t->after.size);

        return ngx_http_zarr_api_send_json(r, NGX_HTTP_PRECONDITION_FAILED,
                                           j);
    }

    if (t->rc == ZARR_ERR_EXISTS) {
        return ngx_http_zarr_api_error(r, NGX_HTTP_CONFLICT, "conflict",
                                       "snapshot \"%V\" of zarr \"%V/%V\" "
                                       "exists", &name, &t->ctx->bucket,
                                       &t->ctx->zarr_id);
    }

    if (t->rc == ZARR_ERR_NOTFOUND) {
        if (t->no_zarr) {
            return ngx_http_zarr_api_not_found(r, t->ctx);
        }

        if (t->snap_op == NGX_HTTP_ZARR_API_SNAP_CHECKSUM && !t->nomem) {
            name.data = (u_char *) t->arg;
            name.len = t->arg_len;

            return ngx_http_zarr_api_error(r, NGX_HTTP_NOT_FOUND,
                                           "not_found", "no directory "
                                           "\"%V\" in snapshot \"%s\"",
                                           &name, t->snap_name);
        }

        return ngx_http_zarr_api_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                       "no snapshot \"%V\" of zarr "
                                       "\"%V/%V\"", &name, &t->ctx->bucket,
                                       &t->ctx->zarr_id);
    }

    if (t->rc != ZARR_OK) {
        return ngx_http_zarr_api_store_error(r, t->rc, &t->err);
    }

    switch (t->snap_op) {

    case NGX_HTTP_ZARR_API_SNAP_CREATE:
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "zarr api: snapshot \"%V\" of \"%V/%V\": %uL files, "
                      "digest %s", &name, &t->ctx->bucket, &t->ctx->zarr_id,
                      t->snap.sum.count, t->snap.sum.digest);

        j = ngx_http_zarr_api_snapshot_json(r, t->ctx, &t->snap);
        a = json_array();

        if (j == NULL || a == NULL) {
            json_decref(j);
            json_decref(a);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (t->lifecycle) {
            json_array_append_new(a, json_string(
                "a lifecycle rule of the bucket expires noncurrent "
                "versions: the snapshot's files may disappear"));
        }

        if (t->manifest_failed) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "zarr api: the manifest of snapshot \"%V\" of "
                          "\"%V/%V\" was not written: %s", &name,
                          &t->ctx->bucket, &t->ctx->zarr_id, t->mmsg);

            json_array_append_new(a, json_pack("s+", "the manifest was "
                                               "not written: ", t->mmsg));
        }

        if (json_array_size(a)) {
            json_object_set_new(j, "warnings", a);

        } else {
            json_decref(a);
        }

        return ngx_http_zarr_api_send_json(r, NGX_HTTP_CREATED, j);

    case NGX_HTTP_ZARR_API_SNAP_LIST:
        a = json_array();
        snaps = (zarr_snap_t *) t->snaps.data;
        n = t->snaps.len / sizeof(zarr_snap_t);

        for (i = 0; a && i < n; i++) {
            json_array_append_new(a, ngx_http_zarr_api_snapshot_json(r,
                                                     t->ctx, &snaps[i]));
        }

        return ngx_http_zarr_api_send_json(r, NGX_HTTP_OK,
                                           json_pack("{s:o}", "snapshots",
                                                     a ? a : json_null()));

    case NGX_HTTP_ZARR_API_SNAP_GET:
        return ngx_http_zarr_api_send_json(r, NGX_HTTP_OK,
                   ngx_http_zarr_api_snapshot_json(r, t->ctx, &t->snap));

    case NGX_HTTP_ZARR_API_SNAP_DELETE:
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "zarr api: snapshot \"%V\" of \"%V/%V\" deleted",
                      &name, &t->ctx->bucket, &t->ctx->zarr_id);

        r->headers_out.status = NGX_HTTP_NO_CONTENT;
        r->header_only = 1;
        r->headers_out.content_length_n = 0;

        return ngx_http_send_header(r);

    default: /* NGX_HTTP_ZARR_API_SNAP_CHECKSUM */
        return ngx_http_zarr_api_send(r, NGX_HTTP_OK,
                                      (u_char *) t->doc.data, t->doc.len);
    }
}


static json_t *
ngx_http_zarr_api_snapshot_json(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx, const zarr_snap_t *snap)
{
    u_char                    *p, *key;
    size_t                     len;
    json_t                    *j;
    ngx_tm_t                   tm;
    ngx_http_zarr_loc_conf_t  *zlcf;
    u_char                     created[sizeof("2026-12-05T07:15:23Z")];

    zlcf = ngx_http_get_module_loc_conf(r, ngx_http_zarr_module);

    ngx_gmtime((time_t) snap->created, &tm);
    ngx_sprintf(created, "%4d-%02d-%02dT%02d:%02d:%02dZ%Z", tm.ngx_tm_year,
                tm.ngx_tm_mon, tm.ngx_tm_mday, tm.ngx_tm_hour,
                tm.ngx_tm_min, tm.ngx_tm_sec);

    /* <zarr_snapshot_prefix><id>/<name>.json */

    len = zlcf->snapshot_prefix.len + ctx->zarr_id.len + 1 + snap->name_len
          + sizeof(".json") - 1;

    key = ngx_pnalloc(r->pool, len);
    if (key == NULL) {
        return NULL;
    }

    p = ngx_cpymem(key, zlcf->snapshot_prefix.data, zlcf->snapshot_prefix.len);
    p = ngx_cpymem(p, ctx->zarr_id.data, ctx->zarr_id.len);
    *p++ = '/';
    p = ngx_cpymem(p, snap->name, snap->name_len);
    ngx_memcpy(p, ".json", sizeof(".json") - 1);

    j = json_pack("{s:o,s:s,s:I,s:I,s:s,s:o}",
                  "name", ngx_http_zarr_api_string(snap->name,
                                                   snap->name_len),
                  "digest", snap->sum.digest,
                  "file_count", (json_int_t) snap->sum.count,
                  "size", (json_int_t) snap->sum.size,
                  "created", (char *) created,
                  "manifest_key", ngx_http_zarr_api_string((char *) key,
                                                           len));

    return j;
}


static int
ngx_http_zarr_api_snapshot_add(void *ctx, const zarr_snap_t *snap)
{
    zarr_buf_t  *b = ctx;

    return zarr_buf_add(b, snap, sizeof(zarr_snap_t)) != 0;
}


static void
ngx_http_zarr_api_snapshot_thread(ngx_http_zarr_api_task_t *t)
{
    int             rc;
    zarr_dir_sum_t  sum;
    zarr_err_t      err;

    switch (t->snap_op) {

    case NGX_HTTP_ZARR_API_SNAP_CREATE:
        ngx_http_zarr_api_snapshot_create_thread(t);
        return;

    case NGX_HTTP_ZARR_API_SNAP_LIST:
        t->rc = zarr_snap_list(t->store, t->z.bucket, t->z.bucket_len,
                               t->z.zarr_id, t->z.zarr_id_len,
                               ngx_http_zarr_api_snapshot_add, &t->snaps,
                               &t->err);
        if (t->rc == ZARR_OK && t->snaps.failed) {
            t->rc = ZARR_ERR_NOMEM;
            snprintf(t->err.msg, sizeof(t->err.msg), "out of memory");
        }

        break;

    case NGX_HTTP_ZARR_API_SNAP_GET:
        t->rc = zarr_snap_get(t->store, t->z.bucket, t->z.bucket_len,
                              t->z.zarr_id, t->z.zarr_id_len, t->snap_name,
                              t->snap_name_len, &t->snap, &t->err);
        break;

    case NGX_HTTP_ZARR_API_SNAP_DELETE:
        t->rc = zarr_snap_delete(t->store, t->z.bucket, t->z.bucket_len,
                                 t->z.zarr_id, t->z.zarr_id_len,
                                 t->snap_name, t->snap_name_len, 0,
                                 &t->err);

        if (t->rc == ZARR_OK) {
            ngx_http_zarr_api_manifest_delete(t);
        }

        break;

    default: /* NGX_HTTP_ZARR_API_SNAP_CHECKSUM */
        t->rc = zarr_snap_get(t->store, t->z.bucket, t->z.bucket_len,
                              t->z.zarr_id, t->z.zarr_id_len, t->snap_name,
                              t->snap_name_len, &t->snap, &t->err);

        if (t->rc == ZARR_OK) {
            t->rc = zarr_snap_checksum_doc(t->store, t->z.bucket,
                                           t->z.bucket_len, t->z.zarr_id,
                                           t->z.zarr_id_len, t->snap_name,
                                           t->snap_name_len, t->arg,
                                           t->arg_len, &t->doc, &t->err);

            /* a missing directory, not a missing snapshot */
            t->nomem = 0;

        } else {
            t->nomem = 1;
        }

        break;
    }

    if (t->rc == ZARR_ERR_NOTFOUND) {
        /* which one is missing: the zarr, or the snapshot? */
        rc = zarr_store_get_zarr(t->store, t->z.bucket, t->z.bucket_len,
                                 t->z.zarr_id, t->z.zarr_id_len, &sum, &err);
        t->no_zarr = (rc != ZARR_OK);
    }
}


/*
 * create: the bucket must be versioned; the zarr's batch, held as
 * "zarr-api:snapshot", keeps writers out while the records are copied
 */

static void
ngx_http_zarr_api_snapshot_create_thread(ngx_http_zarr_api_task_t *t)
{
    int              rc, enabled;
    char             msg[256];
    zarr_s3_t       *s3;
    zarr_err_t       err;
    zarr_s3_error_t  e;

    /* a zarr rebuilt after a crash: 503 without asking the backend */

    t->rc = zarr_gate_recovering(t->store, &t->z, &rc, &t->err);

    if (t->rc == ZARR_OK && rc) {
        t->rc = ZARR_ERR_RECOVERING;
    }

    if (t->rc != ZARR_OK) {
        return;
    }

    s3 = zarr_s3_create(&t->s3conf, msg, sizeof(msg));
    if (s3 == NULL) {
        t->rc = NGX_HTTP_ZARR_API_BACKEND;
        t->status = NGX_HTTP_SERVICE_UNAVAILABLE;
        snprintf(t->err.msg, sizeof(t->err.msg), "zarr_backend: %s", msg);
        return;
    }

    rc = zarr_s3_bucket_versioning(s3, t->z.bucket, &enabled, &e);

    if (rc == ZARR_S3_OK && enabled) {
        rc = zarr_s3_bucket_lifecycle(s3, t->z.bucket, &enabled, &e);
        t->lifecycle = (rc == ZARR_S3_OK && enabled);
        rc = ZARR_S3_OK;
        enabled = 1;
    }

    zarr_s3_destroy(s3);

    if (rc != ZARR_S3_OK) {
        ngx_http_zarr_api_backend_err(t, "GetBucketVersioning", &e);
        return;
    }

    if (!enabled) {
        t->unversioned = 1;
        t->rc = ZARR_ERR_UNVERSIONED;
        return;
    }

    t->rc = zarr_gate_batch_open(t->store, &t->z,
                                 NGX_HTTP_ZARR_API_SNAPSHOT_OWNER,
                                 sizeof(NGX_HTTP_ZARR_API_SNAPSHOT_OWNER) - 1,
                                 t->timeout_ms, ngx_http_zarr_now_ms(),
                                 &t->batch, &t->err);
    if (t->rc != ZARR_OK) {
        if (t->rc == ZARR_ERR_NOTFOUND) {
            t->no_zarr = 1;
        }

        return;
    }

    t->rc = zarr_store_sync_zarr(t->store, t->z.bucket, t->z.bucket_len,
                                 t->z.zarr_id, t->z.zarr_id_len, &t->after,
                                 &t->err);

    if (t->rc == ZARR_ERR_NOTFOUND) {
        t->no_zarr = 1;

    } else if (t->rc == ZARR_OK && t->has_expected
               && strcmp(t->arg, t->after.digest) != 0)
    {
        t->mismatch = 1;

    } else if (t->rc == ZARR_OK) {
        t->rc = zarr_snap_create(t->store, t->z.bucket, t->z.bucket_len,
                                 t->z.zarr_id, t->z.zarr_id_len,
                                 t->snap_name, t->snap_name_len, t->created,
                                 0, &t->snap, &t->err);
    }

    rc = zarr_gate_batch_end(t->store, &t->z, t->batch.id, &err);

    if (rc != ZARR_OK && rc != ZARR_ERR_NOTFOUND && rc != ZARR_ERR_CONFLICT
        && t->rc == ZARR_OK)
    {
        t->rc = rc;
        t->err = err;
    }

    /* the manifest, from the snapshot's records: writers go on meanwhile */

    if (t->rc == ZARR_OK && !t->mismatch) {
        ngx_http_zarr_api_manifest_put(t);
    }
}


/* "<zarr_snapshot_prefix><id>/<name>.json" into t->mkey */

static ngx_int_t
ngx_http_zarr_api_snapshot_key(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx, ngx_http_zarr_api_task_t *t)
{
    u_char                    *p;
    ngx_http_zarr_loc_conf_t  *zlcf;

    zlcf = ngx_http_get_module_loc_conf(r, ngx_http_zarr_module);

    t->mkey_len = zlcf->snapshot_prefix.len + ctx->zarr_id.len + 1
                  + t->snap_name_len + sizeof(".json") - 1;

    t->mkey = ngx_alloc(t->mkey_len + 1, r->connection->log);
    if (t->mkey == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(t->mkey, zlcf->snapshot_prefix.data,
                   zlcf->snapshot_prefix.len);
    p = ngx_cpymem(p, ctx->zarr_id.data, ctx->zarr_id.len);
    *p++ = '/';
    p = ngx_cpymem(p, t->snap_name, t->snap_name_len);
    ngx_memcpy(p, ".json", sizeof(".json"));

    return NGX_OK;
}


typedef struct {
    zarr_s3_writer_t           *w;
    zarr_s3_error_t             e;
    int                         failed;
} ngx_http_zarr_api_man_t;


static int
ngx_http_zarr_api_manifest_out(void *ctx, const char *buf, size_t len,
    int last)
{
    ngx_http_zarr_api_man_t *m = ctx;

    if (zarr_s3_writer_write(m->w, buf, len, &m->e) != ZARR_S3_OK) {
        m->failed = 1;
        return 1;
    }

    return 0;
}


/* streams the manifest to the backend (thread code) */

static void
ngx_http_zarr_api_manifest_put(ngx_http_zarr_api_task_t *t)
{
    int                       rc;
    char                      msg[256];
    zarr_s3_t                *s3;
    zarr_err_t                err;
    zarr_s3_error_t           e;
    ngx_http_zarr_api_man_t   m;

    s3 = zarr_s3_create(&t->s3conf, msg, sizeof(msg));
    if (s3 == NULL) {
        t->manifest_failed = 1;
        snprintf(t->mmsg, sizeof(t->mmsg), "zarr_backend: %.200s", msg);
        return;
    }

    memset(&m, 0, sizeof(ngx_http_zarr_api_man_t));

    m.w = zarr_s3_writer_create(s3, t->z.bucket, t->mkey, t->mkey_len,
                                "application/json", 0);
    if (m.w == NULL) {
        zarr_s3_destroy(s3);
        t->manifest_failed = 1;
        snprintf(t->mmsg, sizeof(t->mmsg), "out of memory");
        return;
    }

    rc = zarr_snap_manifest(t->store, &t->snap, t->z.bucket, t->z.bucket_len,
                            t->prefix, t->prefix_len, t->z.zarr_id,
                            t->z.zarr_id_len, 1 << 20,
                            ngx_http_zarr_api_manifest_out, &m, &err);

    if (zarr_s3_writer_close(m.w, rc != ZARR_OK, &e) != ZARR_S3_OK) {
        t->manifest_failed = 1;

        if (m.failed) {
            e = m.e;
        }

        if (rc != ZARR_OK && !m.failed) {
            snprintf(t->mmsg, sizeof(t->mmsg), "%.200s", err.msg);

        } else {
            snprintf(t->mmsg, sizeof(t->mmsg), "HTTP %ld %.64s %.128s",
                     e.status, e.code, e.message);
        }
    }

    zarr_s3_destroy(s3);
}


/* the manifest of a deleted snapshot goes too (best effort) */

static void
ngx_http_zarr_api_manifest_delete(ngx_http_zarr_api_task_t *t)
{
    char                 msg[256];
    zarr_s3_t           *s3;
    zarr_s3_request_t    req;
    zarr_s3_response_t   resp;

    s3 = zarr_s3_create(&t->s3conf, msg, sizeof(msg));
    if (s3 == NULL) {
        return;
    }

    memset(&req, 0, sizeof(zarr_s3_request_t));
    req.method = "DELETE";
    req.bucket = t->z.bucket;
    req.key = t->mkey;
    req.key_len = t->mkey_len;

    (void) zarr_s3_request(s3, &req, &resp);

    zarr_s3_response_free(&resp);
    zarr_s3_destroy(s3);
}


/*
 * Keeps reconcile's batch: once a third of its timeout has passed since
 * it was opened or last touched, starts its idle clock again.  When it is
 * not the zarr's batch any more (cancelled, or expired and taken over),
 * sets t->rc (ZARR_ERR_CONFLICT) and reconcile stops.
 */

static int
ngx_http_zarr_api_keep(ngx_http_zarr_api_task_t *t)
{
    int       rc;
    uint64_t  now;

    if (!t->locked) {
        /* a recovery: no batch to keep */
        return ZARR_OK;
    }

    now = ngx_http_zarr_now_ms();

    if (now - t->touched_ms < t->timeout_ms / 3) {
        return ZARR_OK;
    }

    rc = zarr_gate_batch_touch(t->store, &t->z, t->batch.id, now, &t->err);

    if (rc != ZARR_OK) {
        t->rc = rc;
        t->lost = (rc == ZARR_ERR_CONFLICT);
        return rc;
    }

    t->touched_ms = now;

    return ZARR_OK;
}


/*
 * Applies n mutations in groups; a mutation the store refuses (a key the
 * gateway would have refused) is left out and counted as skipped.
 */

static int
ngx_http_zarr_api_apply(ngx_http_zarr_api_task_t *t, zarr_mutation_t *m,
    u_char *kinds, size_t n)
{
    int     rc;
    size_t  start, len, bad, i;

    start = 0;

    while (start < n) {
        len = n - start;

        if (len > NGX_HTTP_ZARR_API_APPLY_MAX) {
            len = NGX_HTTP_ZARR_API_APPLY_MAX;
        }

        if (ngx_http_zarr_api_keep(t) != ZARR_OK) {
            return t->rc;
        }

        rc = zarr_store_apply(t->store, m + start, len, &bad, &t->err);

        if (rc == ZARR_ERR_INVALID && bad < len) {
            memmove(&m[start + bad], &m[start + bad + 1],
                    (n - start - bad - 1) * sizeof(zarr_mutation_t));
            memmove(&kinds[start + bad], &kinds[start + bad + 1],
                    n - start - bad - 1);
            n--;
            t->skipped++;
            continue;
        }

        if (rc != ZARR_OK) {
            return rc;
        }

        for (i = start; i < start + len; i++) {
            switch (kinds[i]) {
            case 'a':
                t->added++;
                break;
            case 'c':
                t->changed++;
                break;
            default:
                t->removed++;
                break;
            }
        }

        start += len;
        t->applied += len;
        ngx_http_zarr_api_job_progress(t, 0);
    }

    return ZARR_OK;
}


/*
 * Deletes the .checksum objects under <checksum_prefix><id>/ whose
 * directory the tree does not have.  Returns 0, or -1 with t->rc set.
 */

static int
ngx_http_zarr_api_stale(ngx_http_zarr_api_task_t *t, zarr_s3_t *s3)
{
    int                         rc;
    char                       *prefix, *key;
    size_t                      i, n;
    zarr_dir_sum_t              sum;
    zarr_s3_request_t           req;
    zarr_s3_response_t          resp;
    ngx_http_zarr_api_files_t   l;

    memset(&l, 0, sizeof(ngx_http_zarr_api_files_t));
    zarr_buf_init(&l.strings);
    l.checksums = 1;
    l.holder = t;

    key = NULL;
    rc = ngx_http_zarr_api_list_dir(t, s3, t->checksum_prefix,
                                    t->checksum_prefix_len, &l, &prefix, &n,
                                    "listing .checksum objects");
    if (rc == NGX_HTTP_ZARR_API_NOMEM) {
        goto nomem;
    }

    if (rc != ZARR_S3_OK) {
        goto failed;
    }

    ngx_http_zarr_api_files_done(&l);

    for (i = 0; i < l.n; i++) {
        if (ngx_http_zarr_api_keep(t) != ZARR_OK) {
            goto failed;
        }

        /* "<dir>/.checksum": the root's is never stale */

        rc = zarr_store_get_dir(t->store, t->z.bucket, t->z.bucket_len,
                                t->z.zarr_id, t->z.zarr_id_len,
                                l.files[i].path, l.files[i].path_len, &sum,
                                NULL, &t->err);

        if (rc == ZARR_OK) {
            continue;
        }

        if (rc != ZARR_ERR_NOTFOUND) {
            t->rc = rc;
            goto failed;
        }

        free(key);

        key = malloc(n + l.files[i].path_len + sizeof("/.checksum"));
        if (key == NULL) {
            goto nomem;
        }

        memcpy(key, prefix, n);
        memcpy(key + n, l.files[i].path, l.files[i].path_len);
        memcpy(key + n + l.files[i].path_len, "/.checksum",
               sizeof("/.checksum"));

        memset(&req, 0, sizeof(zarr_s3_request_t));
        req.method = "DELETE";
        req.bucket = t->z.bucket;
        req.key = key;
        req.key_len = n + l.files[i].path_len + sizeof("/.checksum") - 1;

        rc = zarr_s3_request(s3, &req, &resp);

        if (rc != ZARR_S3_OK
            || ((resp.status < 200 || resp.status >= 300)
                && resp.status != 404))
        {
            ngx_http_zarr_api_backend_err(t, "deleting a stale .checksum",
                                          &resp.error);
            zarr_s3_response_free(&resp);
            goto failed;
        }

        if (resp.status != 404) {
            t->stale++;
        }

        zarr_s3_response_free(&resp);
    }

    free(key);
    free(prefix);
    ngx_http_zarr_api_files_free(&l);

    return 0;

nomem:

    t->rc = ZARR_ERR_NOMEM;
    snprintf(t->err.msg, sizeof(t->err.msg), "out of memory");

failed:

    free(key);
    free(prefix);
    ngx_http_zarr_api_files_free(&l);

    return -1;
}


static int
ngx_http_zarr_api_backend_err(ngx_http_zarr_api_task_t *t, const char *what,
    const zarr_s3_error_t *e)
{
    t->rc = NGX_HTTP_ZARR_API_BACKEND;

    if (e->status == 404 && strcmp(e->code, "NoSuchBucket") == 0) {
        t->status = NGX_HTTP_NOT_FOUND;
        snprintf(t->err.msg, sizeof(t->err.msg), "no such bucket at the "
                 "backend");
        return -1;
    }

    t->status = NGX_HTTP_BAD_GATEWAY;
    snprintf(t->err.msg, sizeof(t->err.msg), "backend %s failed: HTTP %ld "
             "%.64s %.300s", what, e->status, e->code, e->message);

    return -1;
}


static int
ngx_http_zarr_api_store_file(void *data, const char *path, size_t path_len,
    const char *etag, size_t etag_len, uint64_t size, const char *version,
    size_t version_len)
{
    return ngx_http_zarr_api_files_add(data, path, path_len, etag, etag_len,
                                       size, version, version_len);
}


static int
ngx_http_zarr_api_listed(const zarr_s3_object_t *obj, void *data)
{
    ngx_http_zarr_api_files_t *l = data;

    size_t       len, off;
    const char  *rel;

    if (l->holder && ngx_http_zarr_api_keep(l->holder) != ZARR_OK) {
        l->stopped = 1;
        return 1;
    }

    if (l->holder && !l->checksums) {
        l->holder->listed++;
        ngx_http_zarr_api_job_progress(l->holder, 0);
    }

    if (obj->key_len < l->cut) {
        return 0;
    }

    rel = obj->key + l->cut;
    len = obj->key_len - l->cut;

    if (l->checksums) {
        /* "<dir>/.checksum"; other objects are none of our business */

        if (len <= 10 || memcmp(rel + len - 10, "/.checksum", 10) != 0) {
            return 0;
        }

        return ngx_http_zarr_api_files_add(l, rel, len - 10, "", 0, 0, "",
                                           0);
    }

    if (len == 0 || zarr_path_check(rel, len, &off) != ZARR_PATH_OK
        || obj->etag_len > ZARR_ETAG_MAX
        || obj->version_id_len > ZARR_VERSION_ID_MAX)
    {
        /* a key the gateway would refuse: not part of the tree */
        l->skipped++;
        return 0;
    }

    return ngx_http_zarr_api_files_add(l, rel, len, obj->etag, obj->etag_len,
                                       obj->size,
                                       obj->version_id ? obj->version_id : "",
                                       obj->version_id_len);
}


static int
ngx_http_zarr_api_files_add(ngx_http_zarr_api_files_t *l, const char *path,
    size_t path_len, const char *etag, size_t etag_len, uint64_t size,
    const char *version, size_t version_len)
{
    size_t                     cap;
    ngx_http_zarr_api_file_t  *f;

    if (l->n == l->cap) {
        cap = l->cap ? 2 * l->cap : 256;

        f = realloc(l->files, cap * sizeof(ngx_http_zarr_api_file_t));
        if (f == NULL) {
            l->nomem = 1;
            return 1;
        }

        l->files = f;
        l->cap = cap;
    }

    f = &l->files[l->n];

    /* offsets: the strings' buffer moves as it grows */

    f->path_off = l->strings.len;
    f->path_len = path_len;
    f->etag_len = etag_len;
    f->size = size;

    if (zarr_buf_add(&l->strings, path, path_len) != 0
        || zarr_buf_add(&l->strings, "", 1) != 0)
    {
        l->nomem = 1;
        return 1;
    }

    f->etag_off = l->strings.len;

    if (zarr_buf_add(&l->strings, etag, etag_len) != 0
        || zarr_buf_add(&l->strings, "", 1) != 0)
    {
        l->nomem = 1;
        return 1;
    }

    f->version_off = l->strings.len;
    f->version_len = version_len;

    if (zarr_buf_add(&l->strings, version, version_len) != 0
        || zarr_buf_add(&l->strings, "", 1) != 0)
    {
        l->nomem = 1;
        return 1;
    }

    l->n++;

    return 0;
}


/* pointers from the offsets, sorted by path */

static void
ngx_http_zarr_api_files_done(ngx_http_zarr_api_files_t *l)
{
    size_t  i;

    for (i = 0; i < l->n; i++) {
        l->files[i].path = l->strings.data + l->files[i].path_off;
        l->files[i].etag = l->strings.data + l->files[i].etag_off;
        l->files[i].version = l->strings.data + l->files[i].version_off;
    }

    if (l->n > 1) {
        qsort(l->files, l->n, sizeof(ngx_http_zarr_api_file_t),
              ngx_http_zarr_api_file_cmp);
    }
}


static void
ngx_http_zarr_api_files_free(ngx_http_zarr_api_files_t *l)
{
    free(l->files);
    zarr_buf_free(&l->strings);
}


static int
ngx_http_zarr_api_file_cmp(const void *a, const void *b)
{
    const ngx_http_zarr_api_file_t  *fa = a, *fb = b;

    return zarr_name_cmp(fa->path, fa->path_len, fb->path, fb->path_len);
}


/* helpers */

/* a JSON string; null for bytes that are not UTF-8 (never expected) */

static json_t *
ngx_http_zarr_api_string(const char *p, size_t len)
{
    json_t  *s;

    s = json_stringn(p, len);

    return s ? s : json_null();
}


static json_t *
ngx_http_zarr_api_batch_json(const zarr_batch_t *b)
{
    uint64_t  now, left;

    now = ngx_http_zarr_now_ms();
    left = b->expires_ms > now ? (b->expires_ms - now + 999) / 1000 : 0;

    return json_pack("{s:I,s:o,s:I,s:b,s:I}",
                     "batch_id", (json_int_t) b->id,
                     "owner", ngx_http_zarr_api_string(b->owner,
                                                       b->owner_len),
                     "expires_in", (json_int_t) left,
                     "explicit", b->explicit_batch ? 1 : 0,
                     "inflight", (json_int_t) b->inflight);
}


/* an optional query argument, URL-decoded ('+' is a space) */

static ngx_int_t
ngx_http_zarr_api_arg(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    u_char  *p;
    size_t   len;

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), value) != NGX_OK) {
        ngx_str_null(value);
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(r->pool, value->len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, value->data, value->len);
    p[value->len] = '\0';
    len = value->len;

    if (zarr_s3_url_decode((char *) p, &len) != 0) {
        return NGX_HTTP_BAD_REQUEST;
    }

    p[len] = '\0';
    value->data = p;
    value->len = len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_zarr_api_send(ngx_http_request_t *r, ngx_uint_t status,
    u_char *data, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (len == 0) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->last, data, len);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* sends j (and releases it); NULL, from a failed json_pack(): 500 */

static ngx_int_t
ngx_http_zarr_api_send_json(ngx_http_request_t *r, ngx_uint_t status,
    json_t *j)
{
    char       *s;
    ngx_int_t   rc;

    if (j == NULL) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "zarr api: cannot build the JSON answer");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s = json_dumps(j, NGX_HTTP_ZARR_API_JSON_FLAGS);
    json_decref(j);

    if (s == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_zarr_api_send(r, status, (u_char *) s, ngx_strlen(s));

    free(s);

    return rc;
}


/* {"error": code, "message": text} */

static ngx_int_t
ngx_http_zarr_api_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *fmt, ...)
{
    u_char    msg[1024], *p;
    json_t   *j;
    size_t    len;
    va_list   args;

    va_start(args, fmt);
    p = ngx_vslprintf(msg, msg + sizeof(msg), fmt, args);
    va_end(args);

    len = p - msg;

    /* a message quoting bytes that are not UTF-8: cut them */
    len = zarr_utf8_valid_prefix((char *) msg, len);

    j = json_pack("{s:s,s:s%}", "error", code, "message", (char *) msg, len);

    return ngx_http_zarr_api_send_json(r, status, j);
}


static ngx_int_t
ngx_http_zarr_api_store_error(ngx_http_request_t *r, int rc,
    zarr_err_t *err)
{
    if (rc == ZARR_ERR_INVALID) {
        return ngx_http_zarr_api_error(r, NGX_HTTP_BAD_REQUEST,
                                       "bad_request", "%s", err->msg);
    }

    ngx_log_error(NGX_LOG_CRIT, r->connection->log, 0,
                  "zarr api: store: %s", err->msg);

    return ngx_http_zarr_api_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "internal_error", "store: %s", err->msg);
}


static ngx_int_t
ngx_http_zarr_api_not_found(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx)
{
    return ngx_http_zarr_api_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                   "zarr \"%V/%V\" is unknown to the "
                                   "gateway", &ctx->bucket, &ctx->zarr_id);
}


static ngx_int_t
ngx_http_zarr_api_unavailable(ngx_http_request_t *r)
{
    return ngx_http_zarr_api_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "unavailable",
                                   "the zarr store is not open in this "
                                   "worker (no \"zarr_gateway on\", or "
                                   "shutting down)");
}


static void
ngx_http_zarr_api_zref(ngx_http_zarr_api_ctx_t *ctx, zarr_zref_t *z)
{
    z->bucket = (char *) ctx->bucket.data;
    z->bucket_len = ctx->bucket.len;
    z->zarr_id = (char *) ctx->zarr_id.data;
    z->zarr_id_len = ctx->zarr_id.len;
}


/* the active batch of the request's zarr; ZARR_ERR_NOTFOUND: none */

static int
ngx_http_zarr_api_batch_of(ngx_http_zarr_api_ctx_t *ctx, zarr_batch_t *b,
    zarr_err_t *err)
{
    zarr_zref_t  z;

    ngx_http_zarr_api_zref(ctx, &z);

    return zarr_gate_batch(ngx_http_zarr_get_store(), &z,
                           ngx_http_zarr_now_ms(), b, err);
}


static ngx_int_t
ngx_http_zarr_api_no_batch(ngx_http_request_t *r,
    ngx_http_zarr_api_ctx_t *ctx)
{
    return ngx_http_zarr_api_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                   "zarr \"%V/%V\" has no active batch",
                                   &ctx->bucket, &ctx->zarr_id);
}


/* 409: another batch is in the way; the body has it */

static ngx_int_t
ngx_http_zarr_api_batch_conflict(ngx_http_request_t *r, const char *message,
    const zarr_batch_t *b)
{
    json_t  *j;

    j = json_pack("{s:s,s:s,s:o}", "error", "conflict", "message", message,
                  "batch", ngx_http_zarr_api_batch_json(b));

    return ngx_http_zarr_api_send_json(r, NGX_HTTP_CONFLICT, j);
}
