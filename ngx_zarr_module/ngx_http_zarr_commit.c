
/*
 * The worker's committer and resolver.
 *
 * Begins and releases are short transactions of the gate's environment
 * (no fsync) that the worker runs itself.  What must be durable goes to
 * the committer: the effect of a 2xx (finish) and the record of a batch
 * just opened (durable).  Such jobs queue up while a commit runs; the next
 * commit takes them all in one LMDB write transaction of the tree (group
 * commit: one fsync for many requests).  One commit task is under way at
 * a time per worker; LMDB's own lock orders the workers' transactions.
 * A job comes back through the done handler its poster set.  The HEADs of
 * a finish (copy, complete, versions) run before, in a task of their own.
 * The resolver (in worker 0) settles intents whose outcome is unknown: it
 * HEADs the key at the backend and applies what is there; it also drops
 * the durable records of ended batches.  All of these run in the thread
 * pool; the thread code touches no pool, log or request.
 */


#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

#include "ngx_http_zarr_module.h"


#define NGX_HTTP_ZARR_GROUP_MAX      512
#define NGX_HTTP_ZARR_RESOLVE_MAX    256
#define NGX_HTTP_ZARR_RESOLVE_EVERY  1000
#define NGX_HTTP_ZARR_SWEEP_EVERY    10      /* resolver rounds */
#define NGX_HTTP_ZARR_USERS_MAX      4
#define NGX_HTTP_ZARR_HOLD           200     /* ms, see w->hold */

/*
 * An answer lost with a 5xx or a timeout may be followed by the write
 * landing a little later: look at such keys after this long only.
 */
#define NGX_HTTP_ZARR_RESOLVE_GRACE  1000


typedef struct {
    uint64_t                    id;
    uint64_t                    seq;
    int                         op;
    int                         done;
    zarr_mutation_t             m;
    char                       *strings;     /* bucket, key, etag, ... */
    size_t                      bucket_len;
    size_t                      zarr_id_len;
    size_t                      path_len;
    size_t                      prefix_len;
} ngx_http_zarr_pending_t;


typedef struct {
    zarr_store_t               *store;
    ngx_thread_pool_t          *pool;
    ngx_log_t                  *log;
    zarr_proc_t                 proc;

    /* committer; pending is shared with the commit thread (mutex) */
    ngx_thread_task_t          *task;
    pthread_mutex_t             mutex;
    ngx_queue_t                 pending;
    ngx_queue_t                 running;
    ngx_uint_t                  busy;
    zarr_s3_conf_t              s3conf;
    ngx_uint_t                  commit_us;
    ngx_uint_t                  hbusy;       /* HEAD tasks under way */

    /* the other parts of the worker that use the store */
    ngx_http_zarr_busy_pt       users[NGX_HTTP_ZARR_USERS_MAX];
    ngx_uint_t                  nusers;

    /* resolver */
    ngx_thread_task_t          *rtask;
    ngx_event_t                 rtimer;

    /*
     * keeps a worker that exits (reload, quit) alive while thread tasks
     * run: nginx's graceful exit waits for timers only, and would cut the
     * requests that wait for a task ("open socket left")
     */
    ngx_event_t                 hold;
    ngx_uint_t                  rbusy;
    zarr_s3_t                  *rs3;
    ngx_uint_t                  resolved;
    ngx_uint_t                  failed;
    ngx_uint_t                  rounds;
    uint64_t                    swept;
    zarr_err_t                  rerr;
    int                         rrc;
} ngx_http_zarr_worker_t;


static void ngx_http_zarr_commit_start(void);
static void ngx_http_zarr_commit_thread(void *data, ngx_log_t *log);
static void ngx_http_zarr_commit_event(ngx_event_t *ev);
static void ngx_http_zarr_head(zarr_s3_t *s3, ngx_http_zarr_job_t *job);
static void ngx_http_zarr_head_thread(void *data, ngx_log_t *log);
static void ngx_http_zarr_head_event(ngx_event_t *ev);
static ngx_uint_t ngx_http_zarr_store_busy(void);
static void ngx_http_zarr_hold(ngx_event_t *ev);
static void ngx_http_zarr_resolve_timer(ngx_event_t *ev);
static void ngx_http_zarr_resolve_thread(void *data, ngx_log_t *log);
static void ngx_http_zarr_resolve_event(ngx_event_t *ev);
static int ngx_http_zarr_collect(void *ctx, const zarr_intent_info_t *in);
static uint64_t ngx_http_zarr_proc_start(uint32_t pid, char *state);


static ngx_http_zarr_worker_t  ngx_http_zarr_worker;


uint64_t
ngx_http_zarr_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


zarr_store_t *
ngx_http_zarr_get_store(void)
{
    return ngx_http_zarr_worker.store;
}


const zarr_proc_t *
ngx_http_zarr_proc(void)
{
    return &ngx_http_zarr_worker.proc;
}


/*
 * The start time of a process, from /proc (0: unknown), and its state
 * ('Z': a zombie, dead but not reaped yet)
 */

static uint64_t
ngx_http_zarr_proc_start(uint32_t pid, char *state)
{
    int                  n;
    char                 path[64], buf[1024], *p, c;
    FILE                *f;
    unsigned long long   start;

    snprintf(path, sizeof(path), "/proc/%u/stat", pid);

    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }

    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);

    if (n <= 0) {
        return 0;
    }

    buf[n] = '\0';

    /* after the command name in parentheses, field 22 is starttime */
    p = strrchr(buf, ')');
    if (p == NULL
        || sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u "
                  "%*u %*d %*d %*d %*d %*d %*d %llu", &c, &start) != 2)
    {
        return 0;
    }

    *state = c;

    return start;
}


/*
 * 1: the process of p is alive, the same (its start time), and not a
 * zombie (killed, and not reaped yet: its parent is gone too, and the
 * init process may take its time); any thread
 */

int
ngx_http_zarr_proc_alive(const zarr_proc_t *p)
{
    char  state;

    if (kill((pid_t) p->pid, 0) == -1 && errno == ESRCH) {
        return 0;
    }

    state = '?';

    return ngx_http_zarr_proc_start(p->pid, &state) == p->start
           && state != 'Z' && state != 'X';
}


ngx_int_t
ngx_http_zarr_commit_init(ngx_cycle_t *cycle)
{
    char                        err[256], state;
    zarr_err_t                  zerr;
    zarr_s3_conf_t              c;
    ngx_http_zarr_worker_t     *w;
    ngx_http_zarr_main_conf_t  *zmcf;

    zmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_zarr_module);
    w = &ngx_http_zarr_worker;

    ngx_memzero(w, sizeof(ngx_http_zarr_worker_t));
    pthread_mutex_init(&w->mutex, NULL);
    ngx_queue_init(&w->pending);
    ngx_queue_init(&w->running);
    w->log = cycle->log;
    w->pool = zmcf->thread_pool;
    w->proc.pid = (uint32_t) ngx_pid;
    w->proc.start = ngx_http_zarr_proc_start((uint32_t) ngx_pid, &state);

    if (zarr_store_open(&w->store, (char *) zmcf->store_path.data,
                        zmcf->store_size, 0, &zerr)
        != ZARR_OK)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "zarr_store \"%V\": %s", &zmcf->store_path, zerr.msg);
        return NGX_ERROR;
    }

    ngx_http_zarr_stats_store(w->store);

    if (zarr_s3_global_init() != 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "zarr: curl_global_init() failed");
        return NGX_ERROR;
    }

    ngx_memzero(&c, sizeof(zarr_s3_conf_t));
    c.endpoint = (char *) zmcf->backend.data;
    c.access_key = (char *) zmcf->access_key.data;
    c.secret_key = (char *) zmcf->secret_key.data;
    c.region = zmcf->region.len ? (char *) zmcf->region.data : NULL;
    c.connect_timeout_ms = 5000;
    c.timeout_ms = 30000;
    w->s3conf = c;

    w->rs3 = zarr_s3_create(&c, err, sizeof(err));

    if (w->rs3 == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "zarr_backend \"%V\": %s", &zmcf->backend, err);
        return NGX_ERROR;
    }

    w->task = ngx_thread_task_alloc(cycle->pool, 0);
    w->rtask = ngx_thread_task_alloc(cycle->pool, 0);

    if (w->task == NULL || w->rtask == NULL) {
        return NGX_ERROR;
    }

    w->task->ctx = w;
    w->task->handler = ngx_http_zarr_commit_thread;
    w->task->event.handler = ngx_http_zarr_commit_event;
    w->task->event.data = w;
    w->task->event.log = cycle->log;

    w->rtask->ctx = w;
    w->rtask->handler = ngx_http_zarr_resolve_thread;
    w->rtask->event.handler = ngx_http_zarr_resolve_event;
    w->rtask->event.data = w;
    w->rtask->event.log = cycle->log;

    w->hold.handler = ngx_http_zarr_hold;
    w->hold.data = w;
    w->hold.log = cycle->log;
    ngx_add_timer(&w->hold, NGX_HTTP_ZARR_HOLD);

    /* one resolver is enough; two would only repeat each other's HEADs */

    if (ngx_worker == 0) {
        w->rtimer.handler = ngx_http_zarr_resolve_timer;
        w->rtimer.data = w;
        w->rtimer.log = cycle->log;
        w->rtimer.cancelable = 1;
        ngx_add_timer(&w->rtimer, 200);
    }

    return NGX_OK;
}


void
ngx_http_zarr_commit_exit(ngx_cycle_t *cycle)
{
    ngx_http_zarr_worker_t  *w;

    w = &ngx_http_zarr_worker;

    if (w->store == NULL) {
        return;
    }

    /* a task may still run in the pool: it owns the store then */

    if (!ngx_http_zarr_store_busy()) {
        if (w->rs3) {
            zarr_s3_destroy(w->rs3);
        }

        ngx_http_zarr_stats_store(NULL);
        zarr_store_close(w->store);
        w->store = NULL;
    }
}


/* mirror, API: their tasks use the store too; it closes when all rest */

void
ngx_http_zarr_store_user(ngx_http_zarr_busy_pt busy)
{
    ngx_http_zarr_worker_t  *w;

    w = &ngx_http_zarr_worker;

    if (w->nusers < NGX_HTTP_ZARR_USERS_MAX) {
        w->users[w->nusers++] = busy;
    }
}


static ngx_uint_t
ngx_http_zarr_store_busy(void)
{
    ngx_uint_t               i;
    ngx_http_zarr_worker_t  *w;

    w = &ngx_http_zarr_worker;

    if (w->busy || w->rbusy || w->hbusy) {
        return 1;
    }

    for (i = 0; i < w->nusers; i++) {
        if (w->users[i]()) {
            return 1;
        }
    }

    return 0;
}


/*
 * A timer that is not cancelable: while it is set, an exiting worker
 * stays.  It is set again as long as the worker runs normally or some
 * task is under way; an exiting worker with nothing under way lets it go
 * (at most NGX_HTTP_ZARR_HOLD ms later than it would have gone).
 */

static void
ngx_http_zarr_hold(ngx_event_t *ev)
{
    if (!ngx_exiting || ngx_http_zarr_store_busy()) {
        ngx_add_timer(ev, NGX_HTTP_ZARR_HOLD);
    }
}


const zarr_s3_conf_t *
ngx_http_zarr_s3_conf(void)
{
    return &ngx_http_zarr_worker.s3conf;
}


ngx_http_zarr_job_t *
ngx_http_zarr_job_create(ngx_http_zarr_job_kind_e kind)
{
    ngx_http_zarr_job_t  *job;

    job = ngx_calloc(sizeof(ngx_http_zarr_job_t), ngx_cycle->log);
    if (job == NULL) {
        return NULL;
    }

    job->kind = kind;
    zarr_buf_init(&job->strings);
    zarr_buf_init(&job->heads);

    return job;
}


void
ngx_http_zarr_job_free(ngx_http_zarr_job_t *job)
{
    if (job) {
        zarr_buf_free(&job->strings);
        zarr_buf_free(&job->heads);
        free(job->owned);
        free(job->ids);
        ngx_free(job);
    }
}


ngx_int_t
ngx_http_zarr_job_post(ngx_http_zarr_job_t *job)
{
    if (ngx_http_zarr_worker.store == NULL) {
        return NGX_ERROR;
    }

    pthread_mutex_lock(&ngx_http_zarr_worker.mutex);
    ngx_queue_insert_tail(&ngx_http_zarr_worker.pending, &job->queue);
    pthread_mutex_unlock(&ngx_http_zarr_worker.mutex);

    if (!ngx_http_zarr_worker.busy) {
        ngx_http_zarr_commit_start();
    }

    return NGX_OK;
}


static void
ngx_http_zarr_commit_start(void)
{
    ngx_uint_t               n;
    ngx_queue_t             *q;
    ngx_http_zarr_job_t     *job;
    ngx_http_zarr_worker_t  *w;

    w = &ngx_http_zarr_worker;

    pthread_mutex_lock(&w->mutex);

    for (n = 0; n < NGX_HTTP_ZARR_GROUP_MAX; n++) {
        if (ngx_queue_empty(&w->pending)) {
            break;
        }

        q = ngx_queue_head(&w->pending);
        ngx_queue_remove(q);
        ngx_queue_insert_tail(&w->running, q);
    }

    pthread_mutex_unlock(&w->mutex);

    if (n == 0) {
        return;
    }

    w->busy = 1;

    if (ngx_thread_task_post(w->pool, w->task) != NGX_OK) {
        /* the queue is full: fail these requests rather than wait */
        w->busy = 0;

        for (q = ngx_queue_head(&w->running);
             q != ngx_queue_sentinel(&w->running);
             q = ngx_queue_next(q))
        {
            job = ngx_queue_data(q, ngx_http_zarr_job_t, queue);
            job->rc = ZARR_ERR_STORE;
            ngx_cpystrn((u_char *) job->err.msg,
                        (u_char *) "the thread pool queue is full",
                        sizeof(job->err.msg));
        }

        ngx_http_zarr_commit_event(&w->task->event);
    }
}


/*
 * HEADs the key of every mutation of a finish and makes the mutation what
 * the backend holds: a PUT with its ETag, size and version, or a DELETE.
 * When the backend cannot say, the finish leaves it to the resolver.
 * Thread code: malloc and libcurl only.
 */

static void
ngx_http_zarr_head(zarr_s3_t *s3, ngx_http_zarr_job_t *job)
{
    char                *bucket, *key;
    size_t               i, plen, len, *offs;
    zarr_mutation_t     *m;
    zarr_s3_request_t    req;
    zarr_s3_response_t   resp;

    plen = job->begin.prefix_len;
    bucket = NULL;
    key = NULL;

    offs = calloc(2 * job->finish.n + 1, sizeof(size_t));
    if (offs == NULL) {
        goto unknown;
    }

    for (i = 0; i < job->finish.n; i++) {
        m = &job->mutations[i];

        free(bucket);
        free(key);

        bucket = malloc(m->bucket_len + 1);
        key = malloc(plen + m->zarr_id_len + 1 + m->path_len);

        if (bucket == NULL || key == NULL) {
            goto unknown;
        }

        memcpy(bucket, m->bucket, m->bucket_len);
        bucket[m->bucket_len] = '\0';

        memcpy(key, job->begin.prefix, plen);
        memcpy(key + plen, m->zarr_id, m->zarr_id_len);
        key[plen + m->zarr_id_len] = '/';
        memcpy(key + plen + m->zarr_id_len + 1, m->path, m->path_len);
        len = plen + m->zarr_id_len + 1 + m->path_len;

        memset(&req, 0, sizeof(zarr_s3_request_t));
        req.method = "HEAD";
        req.bucket = bucket;
        req.key = key;
        req.key_len = len;

        if (zarr_s3_request(s3, &req, &resp) != ZARR_S3_OK
            || (resp.status != 200 && resp.status != 404))
        {
            zarr_s3_response_free(&resp);
            goto unknown;
        }

        if (resp.status == 404) {
            m->op = ZARR_MUT_DELETE;
            zarr_s3_response_free(&resp);
            continue;
        }

        m->op = ZARR_MUT_PUT;
        m->size = resp.content_length >= 0
                  ? (uint64_t) resp.content_length : 0;

        /* offsets now: the buffer may move while it grows */
        offs[2 * i] = job->heads.len;
        m->etag_len = strlen(resp.etag);
        m->version_id_len = strlen(resp.version_id);

        if (zarr_buf_add(&job->heads, resp.etag, m->etag_len + 1) != 0
            || zarr_buf_add(&job->heads, resp.version_id,
                            m->version_id_len + 1) != 0)
        {
            zarr_s3_response_free(&resp);
            goto unknown;
        }

        offs[2 * i + 1] = offs[2 * i] + m->etag_len + 1;
        zarr_s3_response_free(&resp);
    }

    for (i = 0; i < job->finish.n; i++) {
        m = &job->mutations[i];

        if (m->op == ZARR_MUT_PUT) {
            m->etag = job->heads.data + offs[2 * i];
            m->version_id = job->heads.data + offs[2 * i + 1];
        }
    }

    free(offs);
    free(bucket);
    free(key);

    return;

unknown:

    /* cannot tell: leave it to the resolver */
    job->finish.unknown = 1;
    job->finish.n = 0;

    free(offs);
    free(bucket);
    free(key);
}


/*
 * One group commit.  The HEADs come first: never while holding LMDB's
 * write lock.  Then, once the lock is ours (the other workers may have
 * held it meanwhile), the requests that queued up while we waited join
 * the same transaction: one fsync for all of them.
 */

static void
ngx_http_zarr_commit_thread(void *data, ngx_log_t *log)
{
    ngx_http_zarr_worker_t *w = data;

    int                   rc, pass;
    size_t                n;
    ngx_queue_t          *q, *next;
    zarr_err_t            err;
    struct timespec       t0, t1;
    zarr_gate_txn_t      *t;
    ngx_http_zarr_job_t  *job;

    n = 0;

    for (q = ngx_queue_head(&w->running);
         q != ngx_queue_sentinel(&w->running);
         q = ngx_queue_next(q))
    {
        n++;
    }

    clock_gettime(CLOCK_MONOTONIC, &t0);

    rc = zarr_gate_txn_start(w->store, ngx_http_zarr_now_ms(), &t, &err);

    if (rc == ZARR_OK) {
        pthread_mutex_lock(&w->mutex);

        for (q = ngx_queue_head(&w->pending);
             q != ngx_queue_sentinel(&w->pending)
             && n < NGX_HTTP_ZARR_GROUP_MAX;
             q = next)
        {
            next = ngx_queue_next(q);

            ngx_queue_remove(q);
            ngx_queue_insert_tail(&w->running, q);
            n++;
        }

        pthread_mutex_unlock(&w->mutex);

        /* finishes first, then the records of new batches */

        for (pass = 0; pass < 2; pass++) {
            for (q = ngx_queue_head(&w->running);
                 rc == ZARR_OK && q != ngx_queue_sentinel(&w->running);
                 q = ngx_queue_next(q))
            {
                job = ngx_queue_data(q, ngx_http_zarr_job_t, queue);

                if (pass == 0 && job->kind == NGX_HTTP_ZARR_JOB_FINISH) {
                    rc = zarr_gate_txn_finish(t, &job->finish);

                } else if (pass == 1
                           && job->kind == NGX_HTTP_ZARR_JOB_DURABLE)
                {
                    rc = zarr_gate_txn_durable(t, &job->begin, job->ids);
                }
            }
        }

        rc = zarr_gate_txn_end(t, rc);
    }

    clock_gettime(CLOCK_MONOTONIC, &t1);
    w->commit_us = (t1.tv_sec - t0.tv_sec) * 1000000
                   + (t1.tv_nsec - t0.tv_nsec) / 1000;

    for (q = ngx_queue_head(&w->running);
         q != ngx_queue_sentinel(&w->running);
         q = ngx_queue_next(q))
    {
        job = ngx_queue_data(q, ngx_http_zarr_job_t, queue);
        job->rc = rc;

        if (rc != ZARR_OK) {
            job->err = err;
        }
    }
}


static void
ngx_http_zarr_commit_event(ngx_event_t *ev)
{
    ngx_http_zarr_worker_t *w = ev->data;

    ngx_queue_t          *q;
    ngx_http_zarr_job_t  *job;

    w->busy = 0;
    ngx_http_zarr_stats_commit(w->commit_us);
    w->commit_us = 0;

    while (!ngx_queue_empty(&w->running)) {
        q = ngx_queue_head(&w->running);
        ngx_queue_remove(q);

        job = ngx_queue_data(q, ngx_http_zarr_job_t, queue);

        if (job->rc != ZARR_OK) {
            ngx_log_error(NGX_LOG_CRIT, w->log, 0,
                          "zarr: commit failed: %s", job->err.msg);
        }

        job->done(job);
    }

    ngx_http_zarr_commit_start();

    if (ngx_exiting && !ngx_http_zarr_store_busy()) {
        ngx_http_zarr_commit_exit((ngx_cycle_t *) ngx_cycle);
    }
}


void
ngx_http_zarr_finish_prepare(ngx_http_zarr_job_t *job)
{
    size_t  i, j, n;

    /* keyed intents, plus one for every zarr that had none */

    n = job->begin.nintents;

    for (i = 0; i < job->begin.nzarrs; i++) {
        for (j = 0; j < job->begin.nintents; j++) {
            if (job->begin.intents[j].zarr == i) {
                break;
            }
        }

        if (j == job->begin.nintents) {
            n++;
        }
    }

    job->finish.zarrs = job->begin.zarrs;
    job->finish.nzarrs = job->begin.nzarrs;
    job->finish.batch_id = job->begin.batch.id;
    job->finish.intent_id = job->begin.intent_id;
    job->finish.nintents = n;
}


/*
 * The end of a begun request without a tree effect, or after its effect
 * committed: its intents go (kept as unknown for the resolver when the
 * backend may or may not have done it), its batches' idle clocks start
 * again.  A short gate transaction, no fsync.
 */

void
ngx_http_zarr_job_release(ngx_http_zarr_job_t *job, int unknown)
{
    zarr_err_t  err;

    ngx_http_zarr_finish_prepare(job);

    if (unknown) {
        job->finish.unknown = 1;
    }

    if (zarr_gate_release(ngx_http_zarr_worker.store, &job->finish,
                          ngx_http_zarr_now_ms(), &err)
        != ZARR_OK)
    {
        ngx_log_error(NGX_LOG_CRIT, ngx_cycle->log, 0,
                      "zarr: releasing intents from %uL on: %s; they stay "
                      "until the next restart", job->finish.intent_id,
                      err.msg);
    }
}


/*
 * A begun request whose request went away: release it without a tree
 * effect; unknown when it may have reached the backend.
 */

ngx_int_t
ngx_http_zarr_finish_orphan(ngx_http_zarr_ctx_t *ctx, int unknown)
{
    ngx_http_zarr_job_t  *job;

    job = ctx->job;
    ctx->job = NULL;
    ctx->finished = 1;

    job->r = NULL;
    job->kind = NGX_HTTP_ZARR_JOB_FINISH;
    job->finish.m = NULL;
    job->finish.n = 0;
    job->finish.unknown = unknown;

    ngx_http_zarr_job_release(job, unknown);
    ngx_http_zarr_job_free(job);

    return NGX_OK;
}


/*
 * A finish whose mutations are what a HEAD says (copy, complete, deletes
 * of versions): the HEADs in a task of their own, then the commit.  The
 * keys stay busy (their intents) until the finish is released, so no
 * later write of a key can reach the backend before this HEAD's result
 * is applied.
 */

ngx_int_t
ngx_http_zarr_job_head(ngx_http_zarr_job_t *job)
{
    ngx_http_zarr_worker_t  *w;

    w = &ngx_http_zarr_worker;

    if (w->store == NULL) {
        return NGX_ERROR;
    }

    job->htask.ctx = job;
    job->htask.handler = ngx_http_zarr_head_thread;
    job->htask.event.handler = ngx_http_zarr_head_event;
    job->htask.event.data = job;
    job->htask.event.log = ngx_cycle->log;

    if (ngx_thread_task_post(w->pool, &job->htask) != NGX_OK) {
        return NGX_ERROR;
    }

    w->hbusy++;

    return NGX_OK;
}


static void
ngx_http_zarr_head_thread(void *data, ngx_log_t *log)
{
    ngx_http_zarr_job_t *job = data;

    char        msg[256];
    zarr_s3_t  *s3;

    s3 = zarr_s3_create(&ngx_http_zarr_worker.s3conf, msg, sizeof(msg));

    if (s3 == NULL) {
        /* cannot tell: leave it to the resolver */
        job->finish.unknown = 1;
        job->finish.n = 0;
        return;
    }

    ngx_http_zarr_head(s3, job);
    zarr_s3_destroy(s3);
}


static void
ngx_http_zarr_head_event(ngx_event_t *ev)
{
    ngx_http_zarr_job_t *job = ev->data;

    ngx_http_zarr_worker.hbusy--;
    job->headed = 1;

    if (ngx_http_zarr_job_post(job) != NGX_OK) {
        job->rc = ZARR_ERR_STORE;
        ngx_cpystrn((u_char *) job->err.msg, (u_char *) "exiting",
                    sizeof(job->err.msg));
        job->done(job);
    }
}


/* the resolver */

typedef struct {
    ngx_http_zarr_worker_t     *w;
    ngx_http_zarr_pending_t    *items;
    size_t                      n;
    uint64_t                    now;
} ngx_http_zarr_collect_t;


static int
ngx_http_zarr_collect(void *data, const zarr_intent_info_t *in)
{
    ngx_http_zarr_collect_t *c = data;

    char                     *p;
    ngx_http_zarr_pending_t  *it;

    if (in->state == ZARR_INTENT_UNKNOWN
        && in->created_ms + NGX_HTTP_ZARR_RESOLVE_GRACE > c->now)
    {
        return 0;
    }

    if (in->state == ZARR_INTENT_PENDING) {
        if (in->proc.pid == c->w->proc.pid
            && in->proc.start == c->w->proc.start)
        {
            /* ours and in flight */
            return 0;
        }

        if (ngx_http_zarr_proc_alive(&in->proc)) {
            return 0;
        }
    }

    it = &c->items[c->n];
    ngx_memzero(it, sizeof(ngx_http_zarr_pending_t));

    it->strings = malloc(in->bucket_len + in->prefix_len + in->zarr_id_len
                         + in->path_len + 4);
    if (it->strings == NULL) {
        return 1;
    }

    p = it->strings;
    p = (char *) ngx_cpymem(p, in->bucket, in->bucket_len);
    *p++ = '\0';
    p = (char *) ngx_cpymem(p, in->prefix, in->prefix_len);
    p = (char *) ngx_cpymem(p, in->zarr_id, in->zarr_id_len);
    *p++ = '/';
    p = (char *) ngx_cpymem(p, in->path, in->path_len);
    *p = '\0';

    it->id = in->id;
    it->op = in->op;
    it->bucket_len = in->bucket_len;
    it->prefix_len = in->prefix_len;
    it->zarr_id_len = in->zarr_id_len;
    it->path_len = in->path_len;

    return ++c->n == NGX_HTTP_ZARR_RESOLVE_MAX;
}


static void
ngx_http_zarr_resolve_thread(void *data, ngx_log_t *log)
{
    ngx_http_zarr_worker_t *w = data;

    int                       rc;
    size_t                    i;
    char                     *bucket, *key, *zarr_id;
    zarr_mutation_t          *m;
    zarr_s3_request_t         req;
    zarr_s3_response_t        resp;
    ngx_http_zarr_pending_t   items[NGX_HTTP_ZARR_RESOLVE_MAX];
    ngx_http_zarr_collect_t   c;

    c.w = w;
    c.items = items;
    c.n = 0;
    c.now = ngx_http_zarr_now_ms();

    w->rrc = zarr_gate_intents(w->store, ngx_http_zarr_collect, &c, &w->rerr);

    for (i = 0; i < c.n; i++) {
        bucket = items[i].strings;
        key = bucket + items[i].bucket_len + 1;
        zarr_id = key + items[i].prefix_len;

        m = NULL;

        if (items[i].op != 0) {
            ngx_memzero(&req, sizeof(zarr_s3_request_t));
            req.method = "HEAD";
            req.bucket = bucket;
            req.key = key;
            req.key_len = items[i].prefix_len + items[i].zarr_id_len + 1
                          + items[i].path_len;

            if (zarr_s3_request(w->rs3, &req, &resp) != ZARR_S3_OK
                || (resp.status != 200 && resp.status != 404))
            {
                zarr_s3_response_free(&resp);
                w->failed++;
                continue;
            }

            m = &items[i].m;
            ngx_memzero(m, sizeof(zarr_mutation_t));
            m->op = resp.status == 200 ? ZARR_MUT_PUT : ZARR_MUT_DELETE;
            m->bucket = bucket;
            m->bucket_len = items[i].bucket_len;
            m->zarr_id = zarr_id;
            m->zarr_id_len = items[i].zarr_id_len;
            m->path = zarr_id + items[i].zarr_id_len + 1;
            m->path_len = items[i].path_len;
            m->etag = resp.etag;
            m->etag_len = ngx_strlen(resp.etag);
            m->size = resp.content_length > 0 ? resp.content_length : 0;
            m->version_id = resp.version_id;
            m->version_id_len = ngx_strlen(resp.version_id);

            rc = zarr_gate_resolve(w->store, items[i].id, m,
                                   ngx_http_zarr_now_ms(), &w->rerr);
            zarr_s3_response_free(&resp);

        } else {
            rc = zarr_gate_resolve(w->store, items[i].id, NULL,
                                   ngx_http_zarr_now_ms(), &w->rerr);
        }

        if (rc == ZARR_OK) {
            w->resolved++;

        } else {
            w->failed++;
        }
    }

    for (i = 0; i < c.n; i++) {
        free(items[i].strings);
    }

    /* the durable records of batches that ended (one fsync, seldom) */

    if (w->rrc == ZARR_OK && ++w->rounds % NGX_HTTP_ZARR_SWEEP_EVERY == 0) {
        w->rrc = zarr_gate_sweep(w->store, ngx_http_zarr_now_ms(),
                                 &w->swept, &w->rerr);
    }
}


static void
ngx_http_zarr_resolve_timer(ngx_event_t *ev)
{
    ngx_http_zarr_worker_t *w = ev->data;

    if (ngx_exiting || w->rbusy || w->store == NULL) {
        return;
    }

    w->rbusy = 1;
    w->failed = 0;
    w->resolved = 0;

    if (ngx_thread_task_post(w->pool, w->rtask) != NGX_OK) {
        w->rbusy = 0;
        ngx_add_timer(&w->rtimer, NGX_HTTP_ZARR_RESOLVE_EVERY);
    }
}


static void
ngx_http_zarr_resolve_event(ngx_event_t *ev)
{
    ngx_http_zarr_worker_t *w = ev->data;

    w->rbusy = 0;
    ngx_http_zarr_stats_resolved(w->resolved, w->failed);

    if (w->rrc != ZARR_OK) {
        ngx_log_error(NGX_LOG_CRIT, w->log, 0,
                      "zarr resolver: %s", w->rerr.msg);
    }

    if (w->resolved) {
        ngx_log_error(NGX_LOG_NOTICE, w->log, 0,
                      "zarr resolver: %ui intents settled from the backend",
                      w->resolved);
    }

    if (w->failed) {
        ngx_log_error(NGX_LOG_WARN, w->log, 0,
                      "zarr resolver: %ui intents not settled yet (backend "
                      "unreachable or error), retrying", w->failed);
    }

    if (w->swept) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, w->log, 0,
                       "zarr resolver: %uL ended batches' records dropped",
                       w->swept);
        w->swept = 0;
    }

    if (ngx_exiting) {
        if (!ngx_http_zarr_store_busy()) {
            ngx_http_zarr_commit_exit((ngx_cycle_t *) ngx_cycle);
        }

        return;
    }

    ngx_add_timer(&w->rtimer, NGX_HTTP_ZARR_RESOLVE_EVERY);
}
