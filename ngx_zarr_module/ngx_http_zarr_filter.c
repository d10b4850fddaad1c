
/*
 * Header and body filters: a 2xx answer to a zarr mutation is held until
 * its tree update is committed, so that the client hears "OK" only for
 * what the tree already knows.  Other answers pass at once; their finish
 * (no tree effect, or an unknown outcome for the resolver) is committed
 * in the background.
 */


#include "ngx_http_zarr_module.h"
#include "zarr_s3xml.h"


static ngx_int_t ngx_http_zarr_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_zarr_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_zarr_hold(ngx_http_request_t *r,
    ngx_http_zarr_ctx_t *ctx, ngx_chain_t *in);
static ngx_int_t ngx_http_zarr_finish(ngx_http_request_t *r,
    ngx_http_zarr_ctx_t *ctx, int effect, int unknown);
static ngx_int_t ngx_http_zarr_effect(ngx_http_request_t *r,
    ngx_http_zarr_ctx_t *ctx, ngx_http_zarr_job_t *job);
static ngx_int_t ngx_http_zarr_release(ngx_http_request_t *r,
    ngx_http_zarr_ctx_t *ctx);
static ngx_table_elt_t *ngx_http_zarr_single_header(ngx_http_request_t *r,
    const char *name, size_t len);
static off_t ngx_http_zarr_request_size(ngx_http_request_t *r);
static ngx_uint_t ngx_http_zarr_same_key(ngx_http_zarr_job_t *job,
    zarr_mutation_t *m, const char *key, size_t len);
static void ngx_http_zarr_finish_done(ngx_http_zarr_job_t *job);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_zarr_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_zarr_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_zarr_body_filter;

    return NGX_OK;
}


/* is key the object key of m: prefix + zarr id + "/" + path? */

static ngx_uint_t
ngx_http_zarr_same_key(ngx_http_zarr_job_t *job, zarr_mutation_t *m,
    const char *key, size_t len)
{
    size_t  plen;

    plen = job->begin.prefix_len;

    return len == plen + m->zarr_id_len + 1 + m->path_len
           && ngx_memcmp(key, job->begin.prefix, plen) == 0
           && ngx_memcmp(key + plen, m->zarr_id, m->zarr_id_len) == 0
           && key[plen + m->zarr_id_len] == '/'
           && ngx_memcmp(key + plen + m->zarr_id_len + 1, m->path,
                         m->path_len) == 0;
}


/* the one header called name, NULL when absent or repeated */

static ngx_table_elt_t *
ngx_http_zarr_single_header(ngx_http_request_t *r, const char *name,
    size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *found;

    found = NULL;
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return found;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash && h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            if (found) {
                return NULL;
            }

            found = &h[i];
        }
    }
}


/*
 * The object's size, -1 when the gateway must ask the backend: the
 * decoded length of an aws-chunked body (the only one the backend
 * decodes: x-amz-decoded-content-length on any other PUT is the
 * client's word, not the object's size), else the body's length
 */

static off_t
ngx_http_zarr_request_size(ngx_http_request_t *r)
{
    ngx_int_t         rc;
    ngx_table_elt_t  *sha, *enc, *h;

    sha = ngx_http_zarr_find_header(&r->headers_in.headers,
                                    "x-amz-content-sha256", 20);
    enc = ngx_http_zarr_find_header(&r->headers_in.headers,
                                    "content-encoding", 16);

    rc = zarr_s3_aws_chunked(sha ? (char *) sha->value.data : NULL,
                             sha ? sha->value.len : 0,
                             enc ? (char *) enc->value.data : NULL,
                             enc ? enc->value.len : 0);

    if (rc == 1) {
        h = ngx_http_zarr_single_header(r, "x-amz-decoded-content-length",
                                        28);
        if (h == NULL) {
            return -1;
        }

        /* NGX_ERROR (-1) when not a number */
        return ngx_atoof(h->value.data, h->value.len);
    }

    if (rc != 0 || r->headers_in.chunked) {
        return -1;
    }

    return r->headers_in.content_length_n;
}


static ngx_int_t
ngx_http_zarr_header_filter(ngx_http_request_t *r)
{
    ngx_uint_t            status;
    ngx_http_zarr_ctx_t  *ctx;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_zarr_module);

    if (ctx == NULL || !ctx->tracked || !ctx->begun_ok || ctx->finished
        || ctx->holding)
    {
        return ngx_http_next_header_filter(r);
    }

    status = r->headers_out.status;
    ctx->status = status;

    if (status >= 200 && status < 300) {

        switch (ctx->op) {

        case ZARR_S3OP_CREATE_MPU:
        case ZARR_S3OP_UPLOAD_PART:
        case ZARR_S3OP_UPLOAD_PART_COPY:
        case ZARR_S3OP_ABORT_MPU:
            ctx->result = NGX_HTTP_ZARR_RESULT_OK;
            (void) ngx_http_zarr_finish(r, ctx, 0, 0);
            return ngx_http_next_header_filter(r);

        default:
            break;
        }

        /* hold it: the body (if any) comes through the body filter */

        ctx->holding = 1;
        ctx->held_last = &ctx->held;
        r->buffered |= NGX_HTTP_ZARR_BUFFERED;

        return NGX_OK;
    }

    /*
     * 4xx: the backend refused, nothing changed; 5xx or a gateway error:
     * the outcome is unknown, the resolver will look
     */

    ctx->result = NGX_HTTP_ZARR_RESULT_BACKEND_ERROR;

    if ((status == NGX_HTTP_UNAUTHORIZED || status == NGX_HTTP_FORBIDDEN)
        && ctx->job)
    {
        /*
         * refused as unauthenticated: a batch this request opened must
         * not keep the zarr from its rightful writer (DESIGN 4b)
         */
        ctx->job->finish.drop = ctx->job->begin.opened;
        ctx->job->finish.ndrop = ctx->job->begin.nopened;
    }

    (void) ngx_http_zarr_finish(r, ctx, 0, status >= 500);

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_zarr_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_http_zarr_ctx_t  *ctx;

    if (r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_zarr_module);

    if (ctx == NULL || !ctx->holding || ctx->released) {
        return ngx_http_next_body_filter(r, in);
    }

    if (in) {
        return ngx_http_zarr_hold(r, ctx, in);
    }

    if (ctx->waiting || !ctx->finished) {
        return NGX_AGAIN;
    }

    /* committed: send what was held */

    return ngx_http_zarr_release(r, ctx);
}


static ngx_int_t
ngx_http_zarr_hold(ngx_http_request_t *r, ngx_http_zarr_ctx_t *ctx,
    ngx_chain_t *in)
{
    off_t         size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_uint_t    last;
    ngx_chain_t  *cl;

    last = 0;

    for (cl = in; cl; cl = cl->next) {
        size = ngx_buf_size(cl->buf);

        if (cl->buf->last_buf || cl->buf->last_in_chain) {
            last = 1;
        }

        if (size == 0 || ngx_buf_special(cl->buf)) {
            continue;
        }

        if (ctx->held_size + size > NGX_HTTP_ZARR_BODY_MAX) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "zarr: the backend's answer is too large to hold");
            return NGX_ERROR;
        }

        b = ngx_create_temp_buf(r->pool, size);
        if (b == NULL) {
            return NGX_ERROR;
        }

        if (cl->buf->in_file) {
            n = ngx_read_file(cl->buf->file, b->pos, size,
                              cl->buf->file_pos);
            if (n != size) {
                return NGX_ERROR;
            }

            cl->buf->file_pos = cl->buf->file_last;

        } else {
            ngx_memcpy(b->pos, cl->buf->pos, size);
            cl->buf->pos = cl->buf->last;
        }

        b->last = b->pos + size;

        *ctx->held_last = ngx_alloc_chain_link(r->pool);
        if (*ctx->held_last == NULL) {
            return NGX_ERROR;
        }

        (*ctx->held_last)->buf = b;
        (*ctx->held_last)->next = NULL;
        ctx->held_last = &(*ctx->held_last)->next;
        ctx->held_size += size;
    }

    if (!last || ctx->finished) {
        return NGX_OK;
    }

    /* the answer is complete: commit its effect, then release it */

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last_buf = 1;

    *ctx->held_last = ngx_alloc_chain_link(r->pool);
    if (*ctx->held_last == NULL) {
        return NGX_ERROR;
    }

    (*ctx->held_last)->buf = b;
    (*ctx->held_last)->next = NULL;
    ctx->held_last = &(*ctx->held_last)->next;

    if (ngx_http_zarr_finish(r, ctx, 1, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    if (!ctx->waiting) {
        /* nothing to commit: send it now */
        return ngx_http_zarr_release(r, ctx);
    }

    return NGX_OK;
}


/* fills the finish's mutations from the request and the held answer */

static ngx_int_t
ngx_http_zarr_effect(ngx_http_request_t *r, ngx_http_zarr_ctx_t *ctx,
    ngx_http_zarr_job_t *job)
{
    int                   xrc, kind;
    u_char               *p;
    off_t                 size;
    size_t                i, j, n, len;
    ngx_str_t            *h, etag;
    ngx_table_elt_t      *vh;
    ngx_chain_t          *cl;
    zarr_mutation_t      *m;
    zarr_s3xml_result_t   res;

    m = job->mutations;
    n = job->begin.nintents ? job->begin.nintents : 0;

    for (i = 0; i < n; i++) {
        ngx_memzero(&m[i], sizeof(zarr_mutation_t));
        m[i].op = job->intents[i].op;
        m[i].bucket = job->zarrs[job->intents[i].zarr].bucket;
        m[i].bucket_len = job->zarrs[job->intents[i].zarr].bucket_len;
        m[i].zarr_id = job->zarrs[job->intents[i].zarr].zarr_id;
        m[i].zarr_id_len = job->zarrs[job->intents[i].zarr].zarr_id_len;
        m[i].path = job->intents[i].path;
        m[i].path_len = job->intents[i].path_len;
    }

    job->finish.m = m;
    job->finish.n = n;

    if (ctx->op == ZARR_S3OP_DELETE_OBJECT) {
        /* deleting a version may leave or bring back another one */
        job->head = ctx->versioned;
        return NGX_OK;
    }

    /* the held body as one string, for the XML answers */

    p = NULL;
    len = ctx->held_size;

    if (len) {
        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        len = 0;

        for (cl = ctx->held; cl; cl = cl->next) {
            ngx_memcpy(p + len, cl->buf->pos, cl->buf->last - cl->buf->pos);
            len += cl->buf->last - cl->buf->pos;
        }
    }

    if (ctx->op == ZARR_S3OP_DELETE_OBJECTS) {
        xrc = zarr_s3xml_parse(ZARR_S3XML_DELETE_RESULT, (char *) p, len,
                               NGX_HTTP_ZARR_BODY_MAX, 0, &res);

        if (xrc != ZARR_S3XML_OK) {
            zarr_s3xml_result_free(&res);
            return NGX_DECLINED;
        }

        /* every key the response does not list as an error is gone */

        for (i = 0; i < res.nerrors; i++) {
            for (j = 0; j < n; j++) {
                if (m[j].op != 0
                    && ngx_http_zarr_same_key(job, &m[j], res.errors[i].key,
                                              res.errors[i].key_len))
                {
                    m[j].op = 0;
                }
            }
        }

        zarr_s3xml_result_free(&res);

        for (i = 0, j = 0; i < n; i++) {
            if (m[i].op != 0) {
                m[j++] = m[i];
            }
        }

        job->finish.n = j;
        job->head = ctx->versioned;

        return NGX_OK;
    }

    if (ctx->op == ZARR_S3OP_COPY_OBJECT
        || ctx->op == ZARR_S3OP_COMPLETE_MPU)
    {
        kind = ctx->op == ZARR_S3OP_COPY_OBJECT ? ZARR_S3XML_COPY_RESULT
                                                : ZARR_S3XML_COMPLETE_RESULT;

        xrc = zarr_s3xml_parse(kind, (char *) p, len, NGX_HTTP_ZARR_BODY_MAX,
                               0, &res);
        zarr_s3xml_result_free(&res);

        if (xrc == ZARR_S3XML_S3_ERROR) {
            /* a 200 carrying <Error>: nothing was written */
            job->finish.n = 0;
            return NGX_OK;
        }

        if (xrc != ZARR_S3XML_OK) {
            return NGX_DECLINED;
        }

        /* size (and a reliable ETag) from a HEAD by the gateway */
        job->head = 1;
        return NGX_OK;
    }

    /* PutObject; an append's size is not its body's */

    size = ngx_http_zarr_request_size(r);

    if (r->headers_out.etag == NULL || size < 0 || ctx->versioned) {
        job->head = 1;
        return NGX_OK;
    }

    etag = r->headers_out.etag->value;

    if (etag.len >= 2 && etag.data[0] == '"'
        && etag.data[etag.len - 1] == '"')
    {
        etag.data++;
        etag.len -= 2;
    }

    vh = ngx_http_zarr_find_header(&r->headers_out.headers,
                                   "x-amz-version-id", 16);
    h = vh ? &vh->value : NULL;

    /* the strings live in r->pool: the job keeps its own copies */

    job->owned = malloc(etag.len + (h ? h->len : 0) + 1);
    if (job->owned == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(job->owned, etag.data, etag.len);
    m[0].etag = job->owned;
    m[0].etag_len = etag.len;
    m[0].size = size;

    if (h) {
        ngx_memcpy(job->owned + etag.len, h->data, h->len);
        m[0].version_id = job->owned + etag.len;
        m[0].version_id_len = h->len;
    }

    return NGX_OK;
}


/*
 * Queues the finish of a begun request: with effect, the tree update of
 * a 2xx answer (and the response waits); else no tree change, unknown
 * when the backend may or may not have done it.
 */

static ngx_int_t
ngx_http_zarr_finish(ngx_http_request_t *r, ngx_http_zarr_ctx_t *ctx,
    int effect, int unknown)
{
    ngx_int_t             rc;
    ngx_http_zarr_job_t  *job;

    job = ctx->job;

    if (job == NULL || ctx->finished) {
        return NGX_OK;
    }

    if (!effect) {
        return ngx_http_zarr_finish_orphan(ctx, unknown);
    }

    job->kind = NGX_HTTP_ZARR_JOB_FINISH;
    job->finish.m = NULL;
    job->finish.n = 0;
    job->finish.unknown = 0;

    rc = ngx_http_zarr_effect(r, ctx, job);

    if (rc == NGX_DECLINED) {
        /* an answer we cannot read: let the resolver HEAD the keys */
        job->finish.n = 0;
        job->finish.unknown = 1;

    } else if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_zarr_finish_prepare(job);

    ctx->finished = 1;

    if (job->finish.n == 0) {
        /* nothing for the tree (a lock only, or unknown): no hand-off */
        ctx->job = NULL;
        ctx->result = job->finish.unknown
                      ? NGX_HTTP_ZARR_RESULT_BACKEND_ERROR
                      : NGX_HTTP_ZARR_RESULT_OK;

        ngx_http_zarr_job_release(job, job->finish.unknown);
        ngx_http_zarr_job_free(job);

        return NGX_OK;
    }

    job->done = ngx_http_zarr_finish_done;

    rc = job->head ? ngx_http_zarr_job_head(job)
                   : ngx_http_zarr_job_post(job);

    if (rc != NGX_OK) {
        /* the backend did it, the tree cannot say: the resolver will */
        ctx->job = NULL;
        ngx_http_zarr_job_release(job, 1);
        ngx_http_zarr_job_free(job);
        return NGX_ERROR;
    }

    ctx->waiting = 1;
    r->main->blocked++;
    r->aio = 1;

    return NGX_OK;
}


/* the committer is done with a finish: release it, answer */

static void
ngx_http_zarr_finish_done(ngx_http_zarr_job_t *job)
{
    ngx_http_request_t   *r;
    ngx_http_zarr_ctx_t  *ctx;

    /* a failed commit: the resolver settles the keys from the backend */
    ngx_http_zarr_job_release(job, job->rc != ZARR_OK);

    r = job->r;

    if (r == NULL) {
        ngx_http_zarr_job_free(job);
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_zarr_module);

    ctx->waiting = 0;
    ctx->job = NULL;
    r->main->blocked--;
    r->aio = 0;

    if (job->rc != ZARR_OK) {
        ngx_log_error(NGX_LOG_CRIT, r->connection->log, 0,
                      "zarr: commit failed: %s", job->err.msg);

        ctx->result = NGX_HTTP_ZARR_RESULT_BACKEND_ERROR;
        ctx->commit_failed = 1;

    } else {
        ctx->result = job->finish.unknown ? NGX_HTTP_ZARR_RESULT_BACKEND_ERROR
                                          : NGX_HTTP_ZARR_RESULT_OK;
    }

    ngx_http_zarr_job_free(job);

    r->connection->write->handler(r->connection->write);
}


static ngx_int_t
ngx_http_zarr_release(ngx_http_request_t *r, ngx_http_zarr_ctx_t *ctx)
{
    ngx_int_t  rc;

    ctx->released = 1;
    r->buffered &= ~NGX_HTTP_ZARR_BUFFERED;

    if (ctx->commit_failed) {
        /* the backend has it, the tree not yet: say so, do not lie */
        r->headers_out.status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        ngx_http_clear_etag(r);
        ctx->held = NULL;
        ctx->holding = 0;
        ctx->tracked = 0;

        return ngx_http_zarr_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "InternalError",
                                        "the gateway could not record the "
                                        "change; retry the request");
    }

    rc = ngx_http_next_header_filter(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_next_body_filter(r, ctx->held);
}
