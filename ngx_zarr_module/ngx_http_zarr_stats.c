
/*
 * Counters shared by all workers (a shared memory zone of atomics) and
 * the Prometheus text exposition of zarr_metrics.
 */


#include "ngx_http_zarr_module.h"
#include "zarr_outbox.h"
#include "zarr_auth.h"


#define NGX_HTTP_ZARR_OPS          (ZARR_S3OP_SERVICE + 1)
#define NGX_HTTP_ZARR_RESULTS      5
#define NGX_HTTP_ZARR_BUCKETS      12

/* zarr_auth_rc_e, and one more: a credential lookup that failed */
#define NGX_HTTP_ZARR_AUTH_REASONS  (ZARR_AUTH_NOMEM + 2)


/* upper bounds of the commit latency histogram, in microseconds */
static const ngx_uint_t  ngx_http_zarr_bounds[NGX_HTTP_ZARR_BUCKETS] = {
    250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
    500000, 1000000
};


/* the worker's store, for the gauges: set by the committer that opens it */
static zarr_store_t  *ngx_http_zarr_stats_store_p;


typedef struct {
    ngx_atomic_t     requests[NGX_HTTP_ZARR_OPS][NGX_HTTP_ZARR_RESULTS];
    ngx_atomic_t     conflicts;
    ngx_atomic_t     backend_errors;
    ngx_atomic_t     mirror_puts;
    ngx_atomic_t     mirror_deletes;
    ngx_atomic_t     mirror_errors;
    ngx_atomic_t     resolved;
    ngx_atomic_t     resolve_errors;
    ngx_atomic_t     recoveries;
    ngx_atomic_t     commits;
    ngx_atomic_t     commit_us;
    ngx_atomic_t     commit_hist[NGX_HTTP_ZARR_BUCKETS + 1];
    ngx_atomic_t     auth_failures[NGX_HTTP_ZARR_AUTH_REASONS];
} ngx_http_zarr_stats_t;


static ngx_int_t ngx_http_zarr_stats_zone_init(ngx_shm_zone_t *zone,
    void *data);


static ngx_http_zarr_stats_t  *ngx_http_zarr_stats;


static ngx_str_t  ngx_http_zarr_result_names[] = {
    ngx_string("none"),
    ngx_string("ok"),
    ngx_string("conflict"),
    ngx_string("rejected"),
    ngx_string("backend_error")
};


ngx_int_t
ngx_http_zarr_stats_add(ngx_conf_t *cf)
{
    ngx_str_t        name;
    ngx_shm_zone_t  *zone;

    ngx_str_set(&name, "ngx_http_zarr_stats");

    zone = ngx_shared_memory_add(cf, &name,
                                 ngx_align(sizeof(ngx_http_zarr_stats_t)
                                           + 8192, ngx_pagesize),
                                 &ngx_http_zarr_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_http_zarr_stats_zone_init;
    zone->noreuse = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_zarr_stats_zone_init(ngx_shm_zone_t *zone, void *data)
{
    ngx_slab_pool_t  *shpool;

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    ngx_http_zarr_stats = ngx_slab_calloc(shpool,
                                          sizeof(ngx_http_zarr_stats_t));
    if (ngx_http_zarr_stats == NULL) {
        return NGX_ERROR;
    }

    zone->data = ngx_http_zarr_stats;

    return NGX_OK;
}


void
ngx_http_zarr_stats_request(ngx_uint_t op, ngx_uint_t result)
{
    if (ngx_http_zarr_stats == NULL || op >= NGX_HTTP_ZARR_OPS
        || result >= NGX_HTTP_ZARR_RESULTS)
    {
        return;
    }

    (void) ngx_atomic_fetch_add(&ngx_http_zarr_stats->requests[op][result],
                                1);

    if (result == NGX_HTTP_ZARR_RESULT_CONFLICT) {
        (void) ngx_atomic_fetch_add(&ngx_http_zarr_stats->conflicts, 1);
    }

    if (result == NGX_HTTP_ZARR_RESULT_BACKEND_ERROR) {
        (void) ngx_atomic_fetch_add(&ngx_http_zarr_stats->backend_errors, 1);
    }
}


/* reason: a zarr_auth_rc_e, or NGX_HTTP_ZARR_AUTH_UNAVAILABLE */

void
ngx_http_zarr_stats_auth(ngx_uint_t reason)
{
    if (ngx_http_zarr_stats == NULL
        || reason >= NGX_HTTP_ZARR_AUTH_REASONS)
    {
        return;
    }

    (void) ngx_atomic_fetch_add(&ngx_http_zarr_stats->auth_failures[reason],
                                1);
}


void
ngx_http_zarr_stats_mirror(ngx_uint_t puts, ngx_uint_t deletes,
    ngx_uint_t failed)
{
    if (ngx_http_zarr_stats == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(&ngx_http_zarr_stats->mirror_puts, puts);
    (void) ngx_atomic_fetch_add(&ngx_http_zarr_stats->mirror_deletes,
                                deletes);

    if (failed) {
        (void) ngx_atomic_fetch_add(&ngx_http_zarr_stats->mirror_errors, 1);
    }
}


void
ngx_http_zarr_stats_recovered(void)
{
    if (ngx_http_zarr_stats) {
        (void) ngx_atomic_fetch_add(&ngx_http_zarr_stats->recoveries, 1);
    }
}


void
ngx_http_zarr_stats_resolved(ngx_uint_t resolved, ngx_uint_t failed)
{
    if (ngx_http_zarr_stats == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(&ngx_http_zarr_stats->resolved, resolved);
    (void) ngx_atomic_fetch_add(&ngx_http_zarr_stats->resolve_errors,
                                failed);
}


void
ngx_http_zarr_stats_commit(ngx_uint_t us)
{
    ngx_uint_t  i;

    if (ngx_http_zarr_stats == NULL) {
        return;
    }

    for (i = 0; i < NGX_HTTP_ZARR_BUCKETS; i++) {
        if (us <= ngx_http_zarr_bounds[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&ngx_http_zarr_stats->commit_hist[i], 1);
    (void) ngx_atomic_fetch_add(&ngx_http_zarr_stats->commits, 1);
    (void) ngx_atomic_fetch_add(&ngx_http_zarr_stats->commit_us, us);
}


typedef struct {
    uint64_t  active;
    uint64_t  now;
} ngx_http_zarr_batches_t;


/* the store the gauges read; NULL once it is closed */

void
ngx_http_zarr_stats_store(zarr_store_t *store)
{
    ngx_http_zarr_stats_store_p = store;
}


/*
 * The Prometheus text of the counters, plus gauges read from the store in
 * short read transactions.
 */

ngx_int_t
ngx_http_zarr_metrics_handler(ngx_http_request_t *r)
{
    u_char                 *p;
    size_t                  size;
    uint64_t                backlog, batches, recovering;
    ngx_int_t               rc;
    ngx_buf_t              *b;
    ngx_uint_t              i, j, cum;
    ngx_chain_t             out;
    zarr_err_t              err;
    ngx_time_t             *tp;
    zarr_store_t           *store;
    zarr_store_stat_t       st;
    ngx_http_zarr_stats_t  *s;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    s = ngx_http_zarr_stats;
    store = ngx_http_zarr_stats_store_p;

    if (s == NULL || store == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    ngx_memzero(&st, sizeof(zarr_store_stat_t));
    (void) zarr_store_stat(store, &st, &err);

    backlog = 0;
    (void) zarr_outbox_count(store, NULL, 0, NULL, 0, &backlog, &err);

    recovering = 0;
    (void) zarr_gate_recover_count(store, &recovering, &err);

    batches = 0;
    tp = ngx_timeofday();
    (void) zarr_gate_count_active(store, (uint64_t) tp->sec * 1000 + tp->msec,
                                  &batches, &err);

    size = 16384 + NGX_HTTP_ZARR_OPS * NGX_HTTP_ZARR_RESULTS * 128;

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->last;

    p = ngx_slprintf(p, b->end,
            "# HELP zarr_requests_total S3 requests seen by the gateway, "
            "by operation and result.\n"
            "# TYPE zarr_requests_total counter\n");

    for (i = 1; i < NGX_HTTP_ZARR_OPS; i++) {
        for (j = 1; j < NGX_HTTP_ZARR_RESULTS; j++) {
            p = ngx_slprintf(p, b->end,
                             "zarr_requests_total{op=\"%s\",result=\"%V\"} "
                             "%uA\n", zarr_s3op_name(i),
                             &ngx_http_zarr_result_names[j],
                             s->requests[i][j]);
        }
    }

    p = ngx_slprintf(p, b->end,
            "# HELP zarr_conflicts_total Mutations refused with 409 "
            "because another owner's batch is active.\n"
            "# TYPE zarr_conflicts_total counter\n"
            "zarr_conflicts_total %uA\n"
            "# HELP zarr_backend_errors_total Mutations the backend did "
            "not accept or whose outcome is unknown.\n"
            "# TYPE zarr_backend_errors_total counter\n"
            "zarr_backend_errors_total %uA\n"
            "# HELP zarr_active_batches Batches currently active.\n"
            "# TYPE zarr_active_batches gauge\n"
            "zarr_active_batches %uL\n"
            "# HELP zarr_mirror_backlog Directories whose .checksum object "
            "is still to be written or deleted.\n"
            "# TYPE zarr_mirror_backlog gauge\n"
            "zarr_mirror_backlog %uL\n"
            "# HELP zarr_mirror_writes_total .checksum objects written "
            "(put) and deleted.\n"
            "# TYPE zarr_mirror_writes_total counter\n"
            "zarr_mirror_writes_total{kind=\"put\"} %uA\n"
            "zarr_mirror_writes_total{kind=\"delete\"} %uA\n"
            "# HELP zarr_mirror_errors_total Mirror rounds that failed "
            "(backend errors).\n"
            "# TYPE zarr_mirror_errors_total counter\n"
            "zarr_mirror_errors_total %uA\n"
            "# HELP zarr_intents_resolved_total Intents settled by the "
            "resolver from the backend.\n"
            "# TYPE zarr_intents_resolved_total counter\n"
            "zarr_intents_resolved_total %uA\n"
            "# HELP zarr_intent_resolve_errors_total Resolver attempts "
            "that failed and will be retried.\n"
            "# TYPE zarr_intent_resolve_errors_total counter\n"
            "zarr_intent_resolve_errors_total %uA\n"
            "# HELP zarr_recovering_zarrs Zarrs being rebuilt from a "
            "listing because their intents were lost (writes get 503).\n"
            "# TYPE zarr_recovering_zarrs gauge\n"
            "zarr_recovering_zarrs %uL\n"
            "# HELP zarr_recoveries_total Zarrs rebuilt from a backend "
            "listing after lost intents.\n"
            "# TYPE zarr_recoveries_total counter\n"
            "zarr_recoveries_total %uA\n",
            s->conflicts, s->backend_errors, batches, backlog,
            s->mirror_puts, s->mirror_deletes, s->mirror_errors,
            s->resolved, s->resolve_errors, recovering, s->recoveries);

    p = ngx_slprintf(p, b->end,
            "# HELP zarr_auth_failures_total Zarr mutations and signed "
            "API requests refused by signature verification, by reason.\n"
            "# TYPE zarr_auth_failures_total counter\n");

    for (i = 1; i < NGX_HTTP_ZARR_AUTH_REASONS; i++) {
        if (i == ZARR_AUTH_NOMEM) {
            continue;
        }

        p = ngx_slprintf(p, b->end,
                         "zarr_auth_failures_total{reason=\"%s\"} %uA\n",
                         i == NGX_HTTP_ZARR_AUTH_UNAVAILABLE
                         ? "unavailable" : zarr_auth_reason(i),
                         s->auth_failures[i]);
    }

    p = ngx_slprintf(p, b->end,
            "# HELP zarr_commit_seconds Duration of the gateway's LMDB "
            "group commits (with fsync).\n"
            "# TYPE zarr_commit_seconds histogram\n");

    cum = 0;

    for (i = 0; i < NGX_HTTP_ZARR_BUCKETS; i++) {
        cum += s->commit_hist[i];
        p = ngx_slprintf(p, b->end,
                         "zarr_commit_seconds_bucket{le=\"%.6f\"} %ui\n",
                         (double) ngx_http_zarr_bounds[i] / 1000000, cum);
    }

    cum += s->commit_hist[NGX_HTTP_ZARR_BUCKETS];

    p = ngx_slprintf(p, b->end,
            "zarr_commit_seconds_bucket{le=\"+Inf\"} %ui\n"
            "zarr_commit_seconds_sum %.6f\n"
            "zarr_commit_seconds_count %uA\n"
            "# HELP zarr_lmdb_map_bytes Size of the LMDB map.\n"
            "# TYPE zarr_lmdb_map_bytes gauge\n"
            "zarr_lmdb_map_bytes %uL\n"
            "# HELP zarr_lmdb_used_bytes Bytes of the LMDB map in use.\n"
            "# TYPE zarr_lmdb_used_bytes gauge\n"
            "zarr_lmdb_used_bytes %uL\n"
            "# HELP zarr_zarrs Zarrs the gateway knows.\n"
            "# TYPE zarr_zarrs gauge\n"
            "zarr_zarrs %uL\n",
            cum, (double) s->commit_us / 1000000, s->commits,
            st.map_size, st.used, st.zarrs);

    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* --- for ngx_http_zarr_api.c (GET v1/status): a copy of the counters --- */

ngx_int_t
ngx_http_zarr_stats_get(ngx_http_zarr_counters_t *c)
{
    ngx_uint_t              op;
    ngx_http_zarr_stats_t  *s;

    ngx_memzero(c, sizeof(ngx_http_zarr_counters_t));

    s = ngx_http_zarr_stats;

    if (s == NULL) {
        return NGX_DECLINED;
    }

    for (op = ZARR_S3OP_PUT_OBJECT; op <= ZARR_S3OP_DELETE_OBJECTS; op++) {
        c->mutations += s->requests[op][NGX_HTTP_ZARR_RESULT_OK];
    }

    c->conflicts = s->conflicts;
    c->backend_errors = s->backend_errors;
    c->mirror_puts = s->mirror_puts;
    c->mirror_deletes = s->mirror_deletes;
    c->mirror_errors = s->mirror_errors;
    c->resolved = s->resolved;
    c->resolve_errors = s->resolve_errors;
    c->commits = s->commits;

    return NGX_OK;
}

/* --- end of the ngx_http_zarr_api.c accessor --- */
