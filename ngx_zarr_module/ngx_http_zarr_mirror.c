
/*
 * The mirror: writes each directory's .checksum object (DESIGN section 3)
 * from the persistent outbox, in worker 0 only, so that writes are
 * ordered.  Every zarr_mirror_delay it flushes the tree (dirty digests are
 * recomputed once for a whole burst), then sends the current document of
 * every queued directory, or deletes the object of a directory that is
 * gone.  Failures back off up to 30 s; the outbox survives restarts.
 *
 * The mirror keeps to a duty cycle while writes go on: after a round that
 * took T, the next one starts no sooner than 9 T later (and never sooner
 * than the delay).  Under a steady stream of writes into large
 * directories, each round rebuilds and uploads whole documents; the cycle
 * keeps that cost to about a tenth of one thread and of the backend's
 * time, whatever the sizes.  A round that left entries behind (a full
 * batch) is followed at once.
 *
 * Once writes stop, the rest no longer protects anything: a timer looks
 * at the workers' mutation counter every 100 ms, and when writes the last
 * round did not see were followed by a delay without any, a round starts
 * at once; one under way that began before them is asked to end after
 * its current document, and another follows at once.  So the .checksum
 * objects are written about a delay plus one flush after the last write,
 * not up to 10 T later.
 */


#include "ngx_http_zarr_module.h"
#include "zarr_outbox.h"


#define NGX_HTTP_ZARR_MIRROR_BATCH    1000
#define NGX_HTTP_ZARR_MIRROR_BACKOFF  30000
#define NGX_HTTP_ZARR_MIRROR_TICK     100


typedef struct {
    zarr_outbox_entry_t         e;
    char                       *strings;
} ngx_http_zarr_mirror_item_t;


typedef struct {
    zarr_store_t               *store;
    ngx_thread_pool_t          *pool;
    ngx_log_t                  *log;
    ngx_thread_task_t          *task;
    ngx_event_t                 timer;
    ngx_msec_t                  delay;
    ngx_msec_t                  tick;
    ngx_msec_t                  backoff;
    ngx_uint_t                  busy;
    ngx_msec_t                  started;
    ngx_msec_t                  due;        /* the duty cycle's next round */
    zarr_s3_t                  *s3;

    /* the workers' mutation counter: when it last moved, and its value */
    ngx_msec_t                  changed;
    uint64_t                    seen;
    uint64_t                    covered;    /* at the last round's start */

    /* set by the event loop: the round under way should end early */
    ngx_atomic_t                stop;

    /* the last round, written by the thread */
    ngx_uint_t                  sent;
    ngx_uint_t                  deleted;
    ngx_uint_t                  failed;
    ngx_uint_t                  more;
    int                         rc;
    zarr_err_t                  err;
    char                        error[768];
} ngx_http_zarr_mirror_t;


static void ngx_http_zarr_mirror_timer(ngx_event_t *ev);
static uint64_t ngx_http_zarr_mirror_mutations(void);
static void ngx_http_zarr_mirror_thread(void *data, ngx_log_t *log);
static void ngx_http_zarr_mirror_event(ngx_event_t *ev);
static int ngx_http_zarr_mirror_collect(void *ctx,
    const zarr_outbox_entry_t *e);
static int ngx_http_zarr_mirror_send(ngx_http_zarr_mirror_t *m,
    zarr_outbox_entry_t *e);


static ngx_http_zarr_mirror_t  ngx_http_zarr_mirror;


ngx_int_t
ngx_http_zarr_mirror_init(ngx_cycle_t *cycle, zarr_store_t *store,
    const zarr_s3_conf_t *conf)
{
    char                        err[256];
    ngx_http_zarr_mirror_t     *m;
    ngx_http_zarr_main_conf_t  *zmcf;

    zmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_zarr_module);
    m = &ngx_http_zarr_mirror;

    ngx_memzero(m, sizeof(ngx_http_zarr_mirror_t));

    if (ngx_worker != 0) {
        return NGX_OK;
    }

    m->store = store;
    m->pool = zmcf->thread_pool;
    m->log = cycle->log;
    m->delay = zmcf->mirror_delay;
    m->tick = ngx_max(ngx_min(m->delay, NGX_HTTP_ZARR_MIRROR_TICK), 1);
    m->due = ngx_current_msec + m->delay;
    m->changed = ngx_current_msec;
    m->seen = ngx_http_zarr_mirror_mutations();
    m->covered = m->seen;

    m->s3 = zarr_s3_create(conf, err, sizeof(err));
    if (m->s3 == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "zarr_backend \"%V\": %s", &zmcf->backend, err);
        return NGX_ERROR;
    }

    m->task = ngx_thread_task_alloc(cycle->pool, 0);
    if (m->task == NULL) {
        return NGX_ERROR;
    }

    m->task->ctx = m;
    m->task->handler = ngx_http_zarr_mirror_thread;
    m->task->event.handler = ngx_http_zarr_mirror_event;
    m->task->event.data = m;
    m->task->event.log = cycle->log;

    m->timer.handler = ngx_http_zarr_mirror_timer;
    m->timer.data = m;
    m->timer.log = cycle->log;
    m->timer.cancelable = 1;

    ngx_add_timer(&m->timer, m->tick);

    return NGX_OK;
}


ngx_uint_t
ngx_http_zarr_mirror_busy(void)
{
    return ngx_http_zarr_mirror.busy;
}


void
ngx_http_zarr_mirror_exit(void)
{
    if (ngx_http_zarr_mirror.s3 && !ngx_http_zarr_mirror.busy) {
        zarr_s3_destroy(ngx_http_zarr_mirror.s3);
        ngx_http_zarr_mirror.s3 = NULL;
    }
}


/* PUTs, copies, deletes... the backend accepted, all workers */

static uint64_t
ngx_http_zarr_mirror_mutations(void)
{
    ngx_http_zarr_counters_t  c;

    if (ngx_http_zarr_stats_get(&c) != NGX_OK) {
        return 0;
    }

    return c.mutations;
}


/* every tick: a round when the duty cycle allows it or writes stopped */

static void
ngx_http_zarr_mirror_timer(ngx_event_t *ev)
{
    ngx_http_zarr_mirror_t *m = ev->data;

    uint64_t    n;
    ngx_msec_t  now;
    ngx_uint_t  quiet;

    if (ngx_exiting) {
        return;
    }

    now = ngx_current_msec;
    n = ngx_http_zarr_mirror_mutations();

    if (n != m->seen) {
        m->seen = n;
        m->changed = now;
    }

    /* writes that the last round did not see, and none for a delay since */
    quiet = m->seen != m->covered && now - m->changed >= m->delay
            && m->backoff == 0;

    if (m->busy) {
        if (quiet) {
            m->stop = 1;
        }

        ngx_add_timer(&m->timer, m->tick);
        return;
    }

    if (!quiet && (ngx_msec_int_t) (m->due - now) > 0) {
        ngx_add_timer(&m->timer, ngx_min(m->tick, m->due - now));
        return;
    }

    m->busy = 1;
    m->started = now;
    m->covered = m->seen;
    m->stop = 0;

    if (ngx_thread_task_post(m->pool, m->task) != NGX_OK) {
        m->busy = 0;
        m->due = now + m->delay;
    }

    ngx_add_timer(&m->timer, m->tick);
}


typedef struct {
    ngx_http_zarr_mirror_item_t  *items;
    size_t                        n;
} ngx_http_zarr_mirror_list_t;


static int
ngx_http_zarr_mirror_collect(void *ctx, const zarr_outbox_entry_t *e)
{
    ngx_http_zarr_mirror_list_t *l = ctx;

    char                         *p;
    ngx_http_zarr_mirror_item_t  *it;

    it = &l->items[l->n];

    p = malloc(e->bucket_len + e->zarr_id_len + e->dir_len
               + e->checksum_prefix_len + 4);
    if (p == NULL) {
        return 1;
    }

    it->strings = p;
    it->e = *e;

    it->e.bucket = p;
    p = (char *) ngx_cpymem(p, e->bucket, e->bucket_len);
    *p++ = '\0';
    it->e.zarr_id = p;
    p = (char *) ngx_cpymem(p, e->zarr_id, e->zarr_id_len);
    *p++ = '\0';
    it->e.dir = p;
    p = (char *) ngx_cpymem(p, e->dir, e->dir_len);
    *p++ = '\0';
    it->e.checksum_prefix = p;
    p = (char *) ngx_cpymem(p, e->checksum_prefix, e->checksum_prefix_len);
    *p = '\0';

    return ++l->n == NGX_HTTP_ZARR_MIRROR_BATCH;
}


/*
 * Sends one directory's current state.  Returns 0, or -1 when the backend
 * failed (m->error says how).  Thread code.
 */

static int
ngx_http_zarr_mirror_send(ngx_http_zarr_mirror_t *m, zarr_outbox_entry_t *e)
{
    int                   rc, sent;
    char                 *key, *p;
    size_t                len;
    zarr_buf_t            manifest, doc;
    zarr_dir_sum_t        sum;
    zarr_s3_request_t     req;
    zarr_s3_response_t    resp;
    zarr_sigv4_header_t   headers[2];

    zarr_buf_init(&manifest);
    zarr_buf_init(&doc);

    rc = zarr_store_get_dir(m->store, e->bucket, e->bucket_len, e->zarr_id,
                            e->zarr_id_len, e->dir, e->dir_len, &sum,
                            &manifest, &m->err);

    if (rc != ZARR_OK && rc != ZARR_ERR_NOTFOUND) {
        snprintf(m->error, sizeof(m->error), "%s", m->err.msg);
        zarr_buf_free(&manifest);
        return -1;
    }

    if (rc == ZARR_OK && e->dir_len == 0 && sum.count == 0) {
        /* an empty zarr: its root's object goes like any empty directory */
        rc = ZARR_ERR_NOTFOUND;
    }

    if (rc == ZARR_OK
        && zarr_checksum_document(&doc, manifest.data, manifest.len, &sum)
           != ZARR_OK)
    {
        snprintf(m->error, sizeof(m->error), "out of memory");
        zarr_buf_free(&manifest);
        return -1;
    }

    zarr_buf_free(&manifest);

    /* <checksum prefix><zarr id>/<dir>/.checksum */

    len = e->checksum_prefix_len + e->zarr_id_len + 1 + e->dir_len + 1 + 9;

    key = malloc(len + 1);
    if (key == NULL) {
        zarr_buf_free(&doc);
        snprintf(m->error, sizeof(m->error), "out of memory");
        return -1;
    }

    p = key;
    p = (char *) ngx_cpymem(p, e->checksum_prefix, e->checksum_prefix_len);
    p = (char *) ngx_cpymem(p, e->zarr_id, e->zarr_id_len);
    *p++ = '/';

    if (e->dir_len) {
        p = (char *) ngx_cpymem(p, e->dir, e->dir_len);
        *p++ = '/';
    }

    p = (char *) ngx_cpymem(p, ".checksum", 9);
    *p = '\0';

    ngx_memzero(&req, sizeof(zarr_s3_request_t));
    req.bucket = e->bucket;
    req.key = key;
    req.key_len = p - key;

    if (rc == ZARR_OK) {
        headers[0].name = "x-amz-acl";
        headers[0].value = "bucket-owner-full-control";
        headers[1].name = "content-type";
        headers[1].value = "application/json";

        req.method = "PUT";
        req.headers = headers;
        req.nheaders = 2;
        req.body = doc.data;
        req.body_len = doc.len;

    } else {
        req.method = "DELETE";
    }

    sent = zarr_s3_request(m->s3, &req, &resp);

    free(key);
    zarr_buf_free(&doc);

    if (sent != ZARR_S3_OK
        || !((resp.status >= 200 && resp.status < 300)
             || (rc != ZARR_OK && resp.status == 404)))
    {
        snprintf(m->error, sizeof(m->error), "%s .checksum of \"%.63s/"
                 "%.100s/%.100s\": HTTP %ld %.64s %.150s", req.method,
                 e->bucket, e->zarr_id, e->dir, resp.error.status,
                 resp.error.code, resp.error.message);
        zarr_s3_response_free(&resp);
        return -1;
    }

    zarr_s3_response_free(&resp);

    if (rc == ZARR_OK) {
        m->sent++;

    } else {
        m->deleted++;
    }

    if (zarr_outbox_done(m->store, e, rc == ZARR_OK ? sum.digest : NULL,
                         &m->err)
        != ZARR_OK)
    {
        snprintf(m->error, sizeof(m->error), "%s", m->err.msg);
        return -1;
    }

    return 0;
}


static void
ngx_http_zarr_mirror_thread(void *data, ngx_log_t *log)
{
    ngx_http_zarr_mirror_t *m = data;

    int                          recovering;
    size_t                       i, skipped;
    zarr_zref_t                  z;
    zarr_outbox_entry_t         *e, *last;
    ngx_http_zarr_mirror_list_t  l;

    m->sent = 0;
    m->deleted = 0;
    m->failed = 0;
    m->more = 0;
    m->error[0] = '\0';

    /* the digests of a whole burst are recomputed once, here */

    m->rc = zarr_store_flush(m->store, NULL, 0, NULL, 0, &m->err);
    if (m->rc != ZARR_OK) {
        snprintf(m->error, sizeof(m->error), "%s", m->err.msg);
        m->failed = 1;
        return;
    }

    l.items = calloc(NGX_HTTP_ZARR_MIRROR_BATCH,
                     sizeof(ngx_http_zarr_mirror_item_t));
    l.n = 0;

    if (l.items == NULL) {
        m->failed = 1;
        return;
    }

    m->rc = zarr_outbox_list(m->store, NULL, 0, NULL, 0,
                             ngx_http_zarr_mirror_collect, &l, &m->err);

    m->more = (l.n == NGX_HTTP_ZARR_MIRROR_BATCH);

    skipped = 0;
    recovering = 0;
    last = NULL;

    for (i = 0; i < l.n; i++) {
        if (m->stop) {
            /* writes came after this round's flush, and stopped */
            m->more = 1;
            break;
        }

        /*
         * a zarr rebuilt after lost intents (DESIGN 4): its tree may be
         * wrong until then; the rebuild queues every directory again
         */

        e = &l.items[i].e;

        if (last == NULL || last->bucket_len != e->bucket_len
            || last->zarr_id_len != e->zarr_id_len
            || ngx_memcmp(last->bucket, e->bucket, e->bucket_len) != 0
            || ngx_memcmp(last->zarr_id, e->zarr_id, e->zarr_id_len) != 0)
        {
            z.bucket = e->bucket;
            z.bucket_len = e->bucket_len;
            z.zarr_id = e->zarr_id;
            z.zarr_id_len = e->zarr_id_len;

            if (zarr_gate_recovering(m->store, &z, &recovering, &m->err)
                != ZARR_OK)
            {
                recovering = 0;
            }

            last = e;
        }

        if (recovering) {
            skipped++;
            continue;
        }

        if (ngx_http_zarr_mirror_send(m, e) != 0) {
            /* the backend fails: back off, keep the order */
            m->failed = l.n - i;
            break;
        }
    }

    if (skipped) {
        /* left for later: no round at once for them */
        m->more = 0;
    }

    for (i = 0; i < l.n; i++) {
        free(l.items[i].strings);
    }

    free(l.items);
}


static void
ngx_http_zarr_mirror_event(ngx_event_t *ev)
{
    ngx_http_zarr_mirror_t *m = ev->data;

    ngx_msec_t  next, took;

    m->busy = 0;
    took = ngx_current_msec - m->started;
    ngx_http_zarr_stats_mirror(m->sent, m->deleted, m->failed != 0);

    if (m->failed) {
        m->backoff = m->backoff ? ngx_min(m->backoff * 2,
                                          NGX_HTTP_ZARR_MIRROR_BACKOFF)
                                : m->delay;

        ngx_log_error(NGX_LOG_WARN, m->log, 0,
                      "zarr mirror: %s; retrying in %M ms", m->error,
                      m->backoff);
        next = m->backoff;

    } else {
        m->backoff = 0;
        next = (ngx_msec_t) zarr_mirror_next_ms(m->delay, took, m->more != 0);
    }

    if (ngx_exiting) {
        ngx_http_zarr_mirror_exit();
        return;
    }

    m->due = ngx_current_msec + next;

    ngx_add_timer(&m->timer, ngx_min(m->tick, next));
}
