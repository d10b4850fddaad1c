
/*
 * Precontent phase: classify the S3 request; refuse bad keys and writes
 * under the checksum prefix; take the zarr's batch and record intents
 * (in the thread pool) before the request is proxied.
 */


#include "ngx_http_zarr_module.h"
#include "zarr_path.h"
#include "zarr_s3xml.h"


/* how long a begin may wait for a busy key before the client gets 503 */
#define NGX_HTTP_ZARR_BUSY_MAX  30000


static ngx_int_t ngx_http_zarr_classify(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_check_key(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_str_t *key, zarr_key_t *zk);
static ngx_int_t ngx_http_zarr_refuse(ngx_http_request_t *r,
    ngx_http_zarr_ctx_t *ctx, ngx_int_t status, ngx_str_t *key);
static ngx_int_t ngx_http_zarr_body_too_large(ngx_http_request_t *r);
static void ngx_http_zarr_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_zarr_delete_objects(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_read_body(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_zarr_begin(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx,
    zarr_key_t *keys, ngx_uint_t nkeys, int op);
static ngx_int_t ngx_http_zarr_admit(ngx_http_request_t *r,
    ngx_http_zarr_ctx_t *ctx, zarr_key_t *keys, ngx_uint_t nkeys, int op);
static void ngx_http_zarr_admit_done(ngx_http_request_t *r,
    ngx_http_zarr_auth_t *au);
static void ngx_http_zarr_admit_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_zarr_conflict(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx);
static void ngx_http_zarr_cleanup(void *data);
static ngx_int_t ngx_http_zarr_busy_wait(ngx_http_request_t *r,
    ngx_http_zarr_ctx_t *ctx);
static void ngx_http_zarr_busy_retry(ngx_event_t *ev);
static void ngx_http_zarr_begin_run(ngx_http_request_t *r,
    ngx_http_zarr_ctx_t *ctx);
static void ngx_http_zarr_durable_done(ngx_http_zarr_job_t *job);
static ngx_int_t ngx_http_zarr_begun(ngx_http_request_t *r,
    ngx_http_zarr_ctx_t *ctx, ngx_http_zarr_job_t *job);
static ngx_int_t ngx_http_zarr_recovering(ngx_http_request_t *r,
    ngx_http_zarr_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_finalize(ngx_http_request_t *r,
    ngx_int_t rc);


ngx_int_t
ngx_http_zarr_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_http_zarr_ctx_t       *ctx;
    ngx_http_zarr_loc_conf_t  *zlcf;

    zlcf = ngx_http_get_module_loc_conf(r, ngx_http_zarr_module);

    if (!zlcf->gateway || r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_zarr_module);

    if (ctx) {
        /* back from a begin */

        if (ctx->waiting) {
            return NGX_AGAIN;
        }

        if (ctx->snapshot) {
            rc = ngx_http_zarr_snapshot_resume(r, zlcf, ctx);

            if (rc == NGX_DECLINED || rc == NGX_AGAIN || rc == NGX_DONE) {
                return rc;
            }

            return ngx_http_zarr_finalize(r, rc);
        }

        if (ctx->admit_wait) {
            /* back from a credential lookup */
            ctx->admit_wait = 0;

            rc = ngx_http_zarr_begin(r, zlcf, ctx, ctx->keys, ctx->nkeys,
                                     ctx->mut_op);
            if (rc == NGX_AGAIN) {
                return NGX_AGAIN;
            }

            return ngx_http_zarr_finalize(r, rc);
        }

        if (ctx->conflict) {
            return ngx_http_zarr_finalize(r,
                                         ngx_http_zarr_conflict(r, zlcf, ctx));
        }

        if (ctx->recovering) {
            return ngx_http_zarr_finalize(r,
                                          ngx_http_zarr_recovering(r, ctx));
        }

        if (ctx->busy) {
            ctx->result = NGX_HTTP_ZARR_RESULT_BACKEND_ERROR;
            return ngx_http_zarr_finalize(r,
                       ngx_http_zarr_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                                "SlowDown",
                                                "another request writing "
                                                "this key has not ended; "
                                                "retry"));
        }

        if (ctx->tracked && !ctx->begun_ok) {
            ctx->result = NGX_HTTP_ZARR_RESULT_BACKEND_ERROR;
            return ngx_http_zarr_finalize(r,
                       ngx_http_zarr_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                                "ServiceUnavailable",
                                                "the gateway could not record "
                                                "the request; retry"));
        }

        return NGX_DECLINED;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_zarr_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_zarr_module);

    rc = ngx_http_zarr_classify(r, zlcf, ctx);

    /* NGX_DONE: a snapshot listing finalized the request (maybe freed) */

    if (rc == NGX_DECLINED || rc == NGX_AGAIN || rc == NGX_DONE) {
        return rc;
    }

    return ngx_http_zarr_finalize(r, rc);
}


/* a response sent from this phase: finish the request here */

static ngx_int_t
ngx_http_zarr_finalize(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


/* the first header called name in a list (headers_in or headers_out) */

ngx_table_elt_t *
ngx_http_zarr_find_header(ngx_list_t *headers, const char *name, size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &headers->part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash && h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


/*
 * Returns NGX_DECLINED (not a zarr member: proxy it), NGX_OK (a member,
 * zk filled), NGX_HTTP_FORBIDDEN (under the checksum prefix) or
 * NGX_HTTP_BAD_REQUEST (a bad member key, zk->error_offset says where).
 */

static ngx_int_t
ngx_http_zarr_check_key(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_str_t *key, zarr_key_t *zk)
{
    int  rc;

    if (key->len >= zlcf->checksum_prefix.len
        && ngx_strncmp(key->data, zlcf->checksum_prefix.data,
                       zlcf->checksum_prefix.len) == 0)
    {
        return NGX_HTTP_FORBIDDEN;
    }

    rc = zarr_key_split((char *) key->data, key->len,
                        (char *) zlcf->prefix.data, zlcf->prefix.len, zk);

    if (rc == ZARR_PATH_NOT_ZARR) {
        return NGX_DECLINED;
    }

    if (rc != ZARR_PATH_OK) {
        /* the reason, for ngx_http_zarr_refuse() */
        zk->path_len = (size_t) rc;
        return NGX_HTTP_BAD_REQUEST;
    }

    return NGX_OK;
}


/* answers a refused key: 403 or 400; returns what sending returned */

static ngx_int_t
ngx_http_zarr_refuse(ngx_http_request_t *r, ngx_http_zarr_ctx_t *ctx,
    ngx_int_t status, ngx_str_t *key)
{
    const char  *why;

    ctx->result = NGX_HTTP_ZARR_RESULT_REJECTED;

    if (status == NGX_HTTP_FORBIDDEN) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "zarr: write under the checksum prefix refused: "
                      "\"%V\"", key);
        return ngx_http_zarr_send_error(r, NGX_HTTP_FORBIDDEN,
                                        "AccessDenied",
                                        "only the gateway writes under the "
                                        "checksum prefix");
    }

    why = zarr_path_strerror((int) ctx->refused);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "zarr: bad key refused: %s", why);

    return ngx_http_zarr_send_error(r, NGX_HTTP_BAD_REQUEST,
                                    "InvalidArgument", why);
}


static ngx_int_t
ngx_http_zarr_classify(ngx_http_request_t *r, ngx_http_zarr_loc_conf_t *zlcf,
    ngx_http_zarr_ctx_t *ctx)
{
    char                 *buf;
    size_t                size;
    ngx_int_t             rc;
    zarr_key_t            zk;
    zarr_s3op_t           op;
    zarr_s3op_request_t   req;

    ngx_memzero(&req, sizeof(zarr_s3op_request_t));
    req.method = (char *) r->method_name.data;
    req.method_len = r->method_name.len;
    req.uri = (char *) r->unparsed_uri.data;
    req.uri_len = r->unparsed_uri.len;
    req.args = NULL;
    req.copy_source = ngx_http_zarr_find_header(&r->headers_in.headers,
                                                "x-amz-copy-source", 17)
                      != NULL;
    ngx_http_zarr_host_request(r, zlcf, &req);

    size = ZARR_S3OP_BUF_SIZE(r->unparsed_uri.len, 0) + 16;

    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = zarr_s3op_classify(&req, buf, size, &op);

    if (rc != ZARR_S3OP_OK) {
        /*
         * a request that the backend might read otherwise than the
         * gateway (an empty uploadId makes a DELETE a plain delete on
         * RGW): never forward it
         */
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "zarr: request refused: %s", op.error);
        ctx->result = NGX_HTTP_ZARR_RESULT_REJECTED;

        return ngx_http_zarr_send_error(r, NGX_HTTP_BAD_REQUEST,
                                        rc == ZARR_S3OP_BAD_URI
                                        ? "InvalidURI" : "InvalidArgument",
                                        op.error ? op.error
                                                 : "malformed request");
    }

    ctx->op = op.op;

    rc = ngx_http_zarr_host_check(r, zlcf, ctx, &req, &op);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    /*
     * the tree effect of these is not in the request: deleting a version
     * may leave another one current, an append grows the object
     */
    ctx->versioned = op.version_id != NULL || op.append;

    ctx->bucket.data = (u_char *) op.bucket;
    ctx->bucket.len = op.bucket_len;
    ctx->key.data = (u_char *) op.key;
    ctx->key.len = op.key_len;

    /* under the snapshot prefix: reads from the store, no writes */

    rc = ngx_http_zarr_snapshot_request(r, zlcf, ctx, op.op);
    if (rc != NGX_DECLINED || ctx->snapshot) {
        return rc;
    }

    switch (op.op) {

    case ZARR_S3OP_READ:
    case ZARR_S3OP_SERVICE:
    case ZARR_S3OP_BUCKET_OP:
        return NGX_DECLINED;

    case ZARR_S3OP_POST_OBJECT:
        /* the key is inside the form: ngx_http_zarr_post.c */
        return ngx_http_zarr_post_object(r, zlcf, ctx);

    case ZARR_S3OP_DELETE_OBJECTS:
        ctx->tracked = 1;

        /* the limit holds while the body arrives, chunked or not */

        rc = ngx_http_zarr_body_read(r, NGX_HTTP_ZARR_BODY_MAX,
                                     ngx_http_zarr_body_handler,
                                     ngx_http_zarr_body_too_large);

        if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
            return ngx_http_zarr_body_too_large(r);
        }

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        ngx_http_finalize_request(r, NGX_DONE);
        return NGX_AGAIN;

    default:
        break;
    }

    rc = ngx_http_zarr_check_key(r, zlcf, &ctx->key, &zk);

    if (rc == NGX_DECLINED) {
        return NGX_DECLINED;
    }

    if (rc != NGX_OK) {
        ctx->refused = zk.path_len;
        return ngx_http_zarr_refuse(r, ctx, rc, &ctx->key);
    }

    if (op.op == ZARR_S3OP_OTHER_WRITE) {
        /* ACLs, tags: no tree effect */
        return NGX_DECLINED;
    }

    if (op.op == ZARR_S3OP_DELETE_OBJECT && op.version_id) {
        /* a permanent delete of a version a snapshot may hold */
        rc = ngx_http_zarr_snapshot_held(r, ctx, &zk, op.version_id,
                                         op.version_id_len);
        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    ctx->tracked = 1;
    ctx->zarr_id.data = (u_char *) zk.zarr_id;
    ctx->zarr_id.len = zk.zarr_id_len;

    switch (op.op) {

    case ZARR_S3OP_PUT_OBJECT:
    case ZARR_S3OP_COPY_OBJECT:
    case ZARR_S3OP_COMPLETE_MPU:
        return ngx_http_zarr_begin(r, zlcf, ctx, &zk, 1, ZARR_MUT_PUT);

    case ZARR_S3OP_DELETE_OBJECT:
        return ngx_http_zarr_begin(r, zlcf, ctx, &zk, 1, ZARR_MUT_DELETE);

    default:
        /* multipart steps: the lock only */
        return ngx_http_zarr_begin(r, zlcf, ctx, &zk, 1, 0);
    }
}


static ngx_int_t
ngx_http_zarr_body_too_large(ngx_http_request_t *r)
{
    ngx_http_zarr_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_zarr_module);
    ctx->result = NGX_HTTP_ZARR_RESULT_REJECTED;

    return ngx_http_zarr_send_error(r, NGX_HTTP_BAD_REQUEST, "MalformedXML",
                                    "the request body is too large");
}


static void
ngx_http_zarr_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_http_zarr_ctx_t       *ctx;
    ngx_http_zarr_loc_conf_t  *zlcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_zarr_module);
    zlcf = ngx_http_get_module_loc_conf(r, ngx_http_zarr_module);

    ctx->body_read = 1;
    r->preserve_body = 1;
    r->write_event_handler = ngx_http_core_run_phases;

    rc = ngx_http_zarr_delete_objects(r, zlcf, ctx);

    if (rc == NGX_DECLINED) {
        ctx->tracked = 0;
        ngx_http_core_run_phases(r);
        return;
    }

    if (rc == NGX_AGAIN) {
        return;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_zarr_read_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    size_t        len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (r->request_body == NULL) {
        ngx_str_null(body);
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > NGX_HTTP_ZARR_BODY_MAX) {
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = len;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            /* a small temporary file, just written: in the page cache */
            n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                              b->file_pos);
            if (n != b->file_last - b->file_pos) {
                return NGX_ERROR;
            }

            p += n;

        } else {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_zarr_delete_objects(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx)
{
    int                   xrc;
    ngx_int_t             rc;
    ngx_str_t             body, key;
    ngx_uint_t            i, n;
    zarr_key_t           *keys;
    ngx_pool_cleanup_t   *cln;
    zarr_s3xml_result_t  *res;

    rc = ngx_http_zarr_read_body(r, &body);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->result = NGX_HTTP_ZARR_RESULT_REJECTED;

    if (rc == NGX_DECLINED) {
        return ngx_http_zarr_send_error(r, NGX_HTTP_BAD_REQUEST,
                                        "MalformedXML",
                                        "the request body is too large");
    }

    res = ngx_pcalloc(r->pool, sizeof(zarr_s3xml_result_t));
    if (res == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    xrc = zarr_s3xml_parse(ZARR_S3XML_DELETE, (char *) body.data, body.len,
                           NGX_HTTP_ZARR_BODY_MAX, ZARR_S3XML_DELETE_MAX,
                           res);

    cln->handler = (ngx_pool_cleanup_pt) zarr_s3xml_result_free;
    cln->data = res;

    if (xrc != ZARR_S3XML_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "zarr: malformed DeleteObjects body: %s",
                      res->message);
        return ngx_http_zarr_send_error(r, NGX_HTTP_BAD_REQUEST,
                                        "MalformedXML", res->message);
    }

    ctx->delete_req = res;

    for (i = 0; i < res->nobjects; i++) {
        if (res->objects[i].version_id) {
            ctx->versioned = 1;
        }
    }

    keys = ngx_palloc(r->pool, (res->nobjects + 1) * sizeof(zarr_key_t));
    if (keys == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* one bad key refuses the whole request: nothing is forwarded */

    n = 0;

    for (i = 0; i < res->nobjects; i++) {
        key.data = (u_char *) res->objects[i].key;
        key.len = res->objects[i].key_len;

        if (key.len >= zlcf->snapshot_prefix.len
            && ngx_strncmp(key.data, zlcf->snapshot_prefix.data,
                           zlcf->snapshot_prefix.len) == 0)
        {
            return ngx_http_zarr_send_error(r, NGX_HTTP_FORBIDDEN,
                                            "AccessDenied",
                                            "snapshots are read-only");
        }

        rc = ngx_http_zarr_check_key(r, zlcf, &key, &keys[n]);

        if (rc == NGX_OK) {
            if (res->objects[i].version_id) {
                rc = ngx_http_zarr_snapshot_held(r, ctx, &keys[n],
                                                 res->objects[i].version_id,
                                                 res->objects[i]
                                                     .version_id_len);
                if (rc != NGX_DECLINED) {
                    return rc;
                }
            }

            n++;
            continue;
        }

        if (rc != NGX_DECLINED) {
            ctx->refused = keys[n].path_len;
            return ngx_http_zarr_refuse(r, ctx, rc, &key);
        }
    }

    ctx->result = NGX_HTTP_ZARR_RESULT_NONE;

    if (n == 0) {
        return NGX_DECLINED;
    }

    ctx->zarr_id.data = (u_char *) keys[0].zarr_id;
    ctx->zarr_id.len = keys[0].zarr_id_len;

    return ngx_http_zarr_begin(r, zlcf, ctx, keys, n, ZARR_MUT_DELETE);
}


/*
 * Queues the begin of a request touching keys (all zarr members) for the
 * next group commit; the request waits.  op 0: the lock only.
 */

static ngx_int_t
ngx_http_zarr_begin(ngx_http_request_t *r, ngx_http_zarr_loc_conf_t *zlcf,
    ngx_http_zarr_ctx_t *ctx, zarr_key_t *keys, ngx_uint_t nkeys, int op)
{
    char                 *p;
    size_t                size;
    ngx_str_t             owner;
    ngx_uint_t            i, j, nzarrs;
    ngx_int_t             rc;
    ngx_pool_cleanup_t   *cln;
    ngx_http_zarr_job_t  *job;

    if (!ctx->admitted) {
        rc = ngx_http_zarr_admit(r, ctx, keys, nkeys, op);

        if (rc == NGX_DECLINED) {
            /* refused: what sending the refusal returned */
            return ctx->admit_rc;
        }

        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (ctx->auth.identity.len && !zlcf->batch_owner_set) {
        /* the verified identity: two keys of one user share a batch */
        owner = ctx->auth.identity;

    } else if (ngx_http_complex_value(r, zlcf->batch_owner, &owner)
               != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (owner.len == 0) {
        ngx_str_set(&owner, "anonymous");
    }

    if (owner.len > ZARR_OWNER_MAX) {
        owner.len = ZARR_OWNER_MAX;
    }

    ctx->owner = owner;

    job = ngx_http_zarr_job_create(NGX_HTTP_ZARR_JOB_DURABLE);
    if (job == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* one allocation for the arrays and every string they point to */

    size = owner.len + zlcf->prefix.len + zlcf->checksum_prefix.len
           + ctx->bucket.len;

    for (i = 0; i < nkeys; i++) {
        size += keys[i].zarr_id_len + keys[i].path_len;
    }

    size += nkeys * (sizeof(zarr_zref_t) + sizeof(zarr_intent_t)
                     + sizeof(zarr_mutation_t)) + 64;

    if (zarr_buf_reserve(&job->strings, size) != 0) {
        ngx_http_zarr_job_free(job);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = job->strings.data;

    job->zarrs = (zarr_zref_t *) p;
    p += nkeys * sizeof(zarr_zref_t);
    job->intents = (zarr_intent_t *) p;
    p += nkeys * sizeof(zarr_intent_t);
    job->mutations = (zarr_mutation_t *) p;
    p += nkeys * sizeof(zarr_mutation_t);

    job->begin.owner = p;
    job->begin.owner_len = owner.len;
    p = (char *) ngx_cpymem(p, owner.data, owner.len);

    job->begin.prefix = p;
    job->begin.prefix_len = zlcf->prefix.len;
    p = (char *) ngx_cpymem(p, zlcf->prefix.data, zlcf->prefix.len);

    job->begin.checksum_prefix = p;
    job->begin.checksum_prefix_len = zlcf->checksum_prefix.len;
    p = (char *) ngx_cpymem(p, zlcf->checksum_prefix.data,
                            zlcf->checksum_prefix.len);

    /* every key of a request is in the same bucket */

    nzarrs = 0;

    for (i = 0; i < nkeys; i++) {
        for (j = 0; j < nzarrs; j++) {
            if (job->zarrs[j].zarr_id_len == keys[i].zarr_id_len
                && ngx_memcmp(job->zarrs[j].zarr_id, keys[i].zarr_id,
                              keys[i].zarr_id_len) == 0)
            {
                break;
            }
        }

        if (j == nzarrs) {
            if (nzarrs == 0) {
                job->zarrs[0].bucket = p;
                p = (char *) ngx_cpymem(p, ctx->bucket.data,
                                        ctx->bucket.len);

            } else {
                job->zarrs[j].bucket = job->zarrs[0].bucket;
            }

            job->zarrs[j].bucket_len = ctx->bucket.len;
            job->zarrs[j].zarr_id = p;
            job->zarrs[j].zarr_id_len = keys[i].zarr_id_len;
            p = (char *) ngx_cpymem(p, keys[i].zarr_id, keys[i].zarr_id_len);
            nzarrs++;
        }

        job->intents[i].op = op;
        job->intents[i].zarr = j;
        job->intents[i].path = p;
        job->intents[i].path_len = keys[i].path_len;
        p = (char *) ngx_cpymem(p, keys[i].path, keys[i].path_len);
    }

    job->begin.timeout_ms = zlcf->batch_timeout;
    job->begin.zarrs = job->zarrs;
    job->begin.nzarrs = nzarrs;
    job->begin.intents = job->intents;
    job->begin.nintents = op ? nkeys : 0;
    job->begin.proc = *ngx_http_zarr_proc();

    if (!ctx->cleanup_set) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            ngx_http_zarr_job_free(job);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        cln->handler = ngx_http_zarr_cleanup;
        cln->data = r;
        ctx->cleanup_set = 1;
    }

    job->r = r;
    ctx->job = job;

    ngx_http_zarr_begin_run(r, ctx);

    return NGX_AGAIN;
}


/*
 * The begin itself: a short transaction of the gate's (no fsync), run
 * here.  A batch it opened must be durable before the request goes on: a
 * job for the committer (the one hand-off) and back in durable_done().
 * Else the phases go on from a posted event: the handler looks at what
 * the begin left in ctx.
 */

static void
ngx_http_zarr_begin_run(ngx_http_request_t *r, ngx_http_zarr_ctx_t *ctx)
{
    ngx_http_zarr_job_t  *job;

    job = ctx->job;

    job->kind = NGX_HTTP_ZARR_JOB_DURABLE;
    job->rc = zarr_gate_begin(ngx_http_zarr_get_store(), &job->begin,
                              ngx_http_zarr_now_ms(), &job->err);

    if (job->rc == ZARR_OK && job->begin.rc == ZARR_OK
        && job->begin.nundurable)
    {
        if (job->ids == NULL) {
            job->ids = calloc(job->begin.nzarrs, sizeof(uint64_t));
        }

        job->done = ngx_http_zarr_durable_done;

        if (job->ids != NULL && ngx_http_zarr_job_post(job) == NGX_OK) {
            ctx->waiting = 1;
            r->main->blocked++;
            return;
        }

        /* never forwarded: its intents go */
        ngx_http_zarr_job_release(job, 0);
        job->rc = ZARR_ERR_STORE;
    }

    if (ngx_http_zarr_begun(r, ctx, job) == NGX_AGAIN) {
        /* a busy key: the timer goes on */
        return;
    }

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_post_event(r->connection->write, &ngx_posted_events);
}


/*
 * DESIGN 4b: a mutation reaches the batch lock only once its signature
 * is verified.  Without a credential source (the fallback) it does once
 * its body is in, so that a client that the backend will refuse holds
 * the zarr no longer than the backend takes to refuse it.  Returns
 * NGX_OK (go on), NGX_AGAIN (a lookup or the body: the begin goes on
 * later, maybe already did), NGX_DECLINED (refused: ctx->admit_rc is
 * what sending the refusal returned) or an HTTP status.
 */

static ngx_int_t
ngx_http_zarr_admit(ngx_http_request_t *r, ngx_http_zarr_ctx_t *ctx,
    zarr_key_t *keys, ngx_uint_t nkeys, int op)
{
    int                   status;
    ngx_int_t             rc;
    const char           *code;
    ngx_http_zarr_auth_t *au;

    if (ctx->keys == NULL) {
        /* the begin goes on after a wait: keep its arguments */
        ctx->keys = ngx_palloc(r->pool, (nkeys + 1) * sizeof(zarr_key_t));
        if (ctx->keys == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memcpy(ctx->keys, keys, nkeys * sizeof(zarr_key_t));
        ctx->nkeys = nkeys;
        ctx->mut_op = op;
    }

    au = &ctx->auth;

    rc = ngx_http_zarr_auth(r, au, ngx_http_zarr_admit_done);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_AGAIN) {
        ctx->admit_wait = 1;
        ctx->waiting = 1;
        r->main->blocked++;
        return NGX_AGAIN;
    }

    if (rc == NGX_DECLINED) {
        /* no credential source: the lock once the body is in */

        if (ctx->body_read
            || (r->headers_in.content_length_n <= 0
                && r->headers_in.chunked == 0))
        {
            ctx->admitted = 1;
            return NGX_OK;
        }

        rc = ngx_http_read_client_request_body(r,
                                     ngx_http_zarr_admit_body_handler);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        ngx_http_finalize_request(r, NGX_DONE);
        return NGX_AGAIN;
    }

    if (au->rc == ZARR_AUTH_OK && !au->unavailable) {
        ctx->admitted = 1;
        return NGX_OK;
    }

    ngx_http_zarr_auth_log(r, au);

    if (au->unavailable) {
        ctx->result = NGX_HTTP_ZARR_RESULT_BACKEND_ERROR;

        if (ngx_http_zarr_retry_after(r, 5) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->admit_rc = ngx_http_zarr_send_error(r,
                                          NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "SlowDown",
                                          "the gateway cannot look up the "
                                          "access key now; retry");
        return NGX_DECLINED;
    }

    ctx->result = NGX_HTTP_ZARR_RESULT_REJECTED;

    code = zarr_auth_s3_code(au->rc, &au->a, &status);

    ctx->admit_rc = ngx_http_zarr_send_error(r, status, code,
                                             au->a.error ? au->a.error
                                                         : "access denied");
    return NGX_DECLINED;
}


/* a credential lookup ended: the begin goes on in the handler */

static void
ngx_http_zarr_admit_done(ngx_http_request_t *r, ngx_http_zarr_auth_t *au)
{
    ngx_http_zarr_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_zarr_module);

    ctx->waiting = 0;
    r->main->blocked--;

    r->write_event_handler = ngx_http_core_run_phases;
    r->connection->write->handler(r->connection->write);
}


/* fallback: the body is in, the begin goes on */

static void
ngx_http_zarr_admit_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_http_zarr_ctx_t       *ctx;
    ngx_http_zarr_loc_conf_t  *zlcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_zarr_module);
    zlcf = ngx_http_get_module_loc_conf(r, ngx_http_zarr_module);

    ctx->body_read = 1;
    ctx->admitted = 1;
    r->preserve_body = 1;
    r->write_event_handler = ngx_http_core_run_phases;

    rc = ngx_http_zarr_begin(r, zlcf, ctx, ctx->keys, ctx->nkeys,
                             ctx->mut_op);

    if (rc == NGX_AGAIN) {
        return;
    }

    ngx_http_finalize_request(r, rc);
}


/* the committer recorded the batches the begin opened */

static void
ngx_http_zarr_durable_done(ngx_http_zarr_job_t *job)
{
    zarr_err_t            err;
    ngx_http_request_t   *r;
    ngx_http_zarr_ctx_t  *ctx;

    if (job->rc == ZARR_OK
        && zarr_gate_mark_durable(ngx_http_zarr_get_store(), &job->begin,
                                  job->ids, &err)
           != ZARR_OK)
    {
        /* the records are in: the next begin only records them again */
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "zarr: marking batches durable: %s", err.msg);
    }

    r = job->r;

    if (r == NULL || job->rc != ZARR_OK) {
        /* the client left, or no record: never forwarded */
        ngx_http_zarr_job_release(job, 0);
    }

    if (r == NULL) {
        ngx_http_zarr_job_free(job);
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_zarr_module);

    ctx->waiting = 0;
    r->main->blocked--;

    if (ngx_http_zarr_begun(r, ctx, job) == NGX_AGAIN) {
        return;
    }

    r->write_event_handler = ngx_http_core_run_phases;
    r->connection->write->handler(r->connection->write);
}


/*
 * What a begin left: the request goes on (begun_ok), or is refused
 * (conflict, recovering, a store failure: the handler answers), or waits
 * for a busy key (NGX_AGAIN: the retry timer is set).
 */

static ngx_int_t
ngx_http_zarr_begun(ngx_http_request_t *r, ngx_http_zarr_ctx_t *ctx,
    ngx_http_zarr_job_t *job)
{
    u_char  *p;

    if (job->rc == ZARR_OK && job->begin.rc == ZARR_ERR_BUSY) {

        if (ngx_http_zarr_busy_wait(r, ctx) == NGX_OK) {
            return NGX_AGAIN;
        }

        /* the handler answers 503 */
        ctx->busy = 1;
        ctx->job = NULL;
        ngx_http_zarr_job_free(job);

    } else if (job->rc == ZARR_OK && job->begin.rc == ZARR_ERR_RECOVERING) {
        /* the handler answers 503 SlowDown */
        ctx->recovering = 1;
        ctx->job = NULL;
        ngx_http_zarr_job_free(job);

    } else if (job->rc != ZARR_OK
               || (job->begin.rc != ZARR_OK
                   && job->begin.rc != ZARR_ERR_CONFLICT))
    {
        /* the handler answers 503 */
        if (job->rc != ZARR_OK) {
            ngx_log_error(NGX_LOG_CRIT, r->connection->log, 0,
                          "zarr: begin failed: %s", job->err.msg);
        }

        ctx->job = NULL;
        ngx_http_zarr_job_free(job);

    } else if (job->begin.rc == ZARR_ERR_CONFLICT) {
        /* kept for the log line until the request ends */
        ctx->conflict = 1;
        ctx->begun = job->begin;

    } else {
        ctx->begun_ok = 1;
        ctx->begun = job->begin;

        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p) {
            ctx->batch.data = p;
            ctx->batch.len = ngx_sprintf(p, "%uL", job->begin.batch.id) - p;
        }
    }

    return NGX_OK;
}


/*
 * Another request on one of the keys is in flight, or its outcome is not
 * settled yet: the begin goes again a little later (5 ms, doubling up to
 * 100 ms), for at most NGX_HTTP_ZARR_BUSY_MAX.  So the backend sees one
 * write of a key at a time, in the order the tree applies them.
 */

static ngx_int_t
ngx_http_zarr_busy_wait(ngx_http_request_t *r, ngx_http_zarr_ctx_t *ctx)
{
    if (ctx->busy_delay == 0) {
        ctx->busy_since = ngx_current_msec;
        ctx->busy_delay = 5;

    } else {
        ctx->busy_delay = ngx_min(2 * ctx->busy_delay, 100);
    }

    if (ngx_current_msec - ctx->busy_since >= NGX_HTTP_ZARR_BUSY_MAX
        || ngx_exiting)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "zarr: key \"%V\" stayed busy for %M ms: another "
                      "request writing it has not ended",
                      &ctx->key, ngx_current_msec - ctx->busy_since);
        return NGX_DECLINED;
    }

    ctx->retry.handler = ngx_http_zarr_busy_retry;
    ctx->retry.data = r;
    ctx->retry.log = r->connection->log;

    ctx->waiting = 1;
    ctx->retrying = 1;
    r->main->blocked++;

    ngx_add_timer(&ctx->retry, ctx->busy_delay);

    return NGX_OK;
}


static void
ngx_http_zarr_busy_retry(ngx_event_t *ev)
{
    ngx_connection_t     *c;
    ngx_http_request_t   *r;
    ngx_http_zarr_ctx_t  *ctx;

    r = ev->data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_zarr_module);

    ngx_http_set_log_request(c->log, r);

    ctx->retrying = 0;
    ctx->waiting = 0;
    r->main->blocked--;

    ngx_http_zarr_begin_run(r, ctx);

    ngx_http_run_posted_requests(c);
}


/* the request goes away: a begun request must still be finished */

static void
ngx_http_zarr_cleanup(void *data)
{
    ngx_http_request_t *r = data;

    ngx_http_zarr_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_zarr_module);

    if (ctx == NULL || ctx->job == NULL) {
        return;
    }

    if (ctx->retrying) {
        /* nothing begun: the begin waited for a busy key */
        if (ctx->retry.timer_set) {
            ngx_del_timer(&ctx->retry);
        }

        ngx_http_zarr_job_free(ctx->job);
        ctx->job = NULL;
        return;
    }

    if (ctx->waiting) {
        /* the committer finishes it when it comes back */
        ctx->job->r = NULL;
        ctx->job = NULL;
        return;
    }

    if (ctx->begun_ok && !ctx->finished) {
        /* forwarded or not, nobody knows: let the resolver look */
        (void) ngx_http_zarr_finish_orphan(ctx, 1);
        return;
    }

    /* a conflict's job, kept for its log line */
    ctx->job->r = NULL;
    ngx_http_zarr_job_free(ctx->job);
    ctx->job = NULL;
}


/*
 * DESIGN 4, contract v2: the zarr's intents were lost with the operating
 * system; worker 0 rebuilds its tree from a listing, and no write goes in
 * meanwhile.
 */

static ngx_int_t
ngx_http_zarr_recovering(ngx_http_request_t *r, ngx_http_zarr_ctx_t *ctx)
{
    ctx->result = NGX_HTTP_ZARR_RESULT_BACKEND_ERROR;

    if (ngx_http_zarr_retry_after(r, 5) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_zarr_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "SlowDown",
                                    "the gateway is rebuilding this zarr's "
                                    "checksums after a crash; retry");
}


static ngx_int_t
ngx_http_zarr_conflict(ngx_http_request_t *r, ngx_http_zarr_loc_conf_t *zlcf,
    ngx_http_zarr_ctx_t *ctx)
{
    u_char               *p;
    uint64_t              now, wait;
    ngx_uint_t            i;
    zarr_batch_t         *b;
    const zarr_zref_t    *z;
    const zarr_intent_t  *in;

    b = &ctx->begun.batch;
    z = &ctx->begun.zarrs[ctx->begun.conflict];

    now = ngx_http_zarr_now_ms();
    wait = b->expires_ms > now ? (b->expires_ms - now + 999) / 1000 : 1;

    if (b->inflight && wait < 1) {
        wait = 1;
    }

    ctx->result = NGX_HTTP_ZARR_RESULT_CONFLICT;

    if (ctx->op == ZARR_S3OP_DELETE_OBJECTS) {
        /* name the first requested key in the zarr that is taken */

        for (i = 0; i < ctx->begun.nintents; i++) {
            in = &ctx->begun.intents[i];

            if (in->zarr != ctx->begun.conflict) {
                continue;
            }

            p = ngx_pnalloc(r->pool, zlcf->prefix.len + z->zarr_id_len + 1
                                     + in->path_len);
            if (p == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ctx->key.data = p;
            p = ngx_cpymem(p, zlcf->prefix.data, zlcf->prefix.len);
            p = ngx_cpymem(p, z->zarr_id, z->zarr_id_len);
            *p++ = '/';
            p = ngx_cpymem(p, in->path, in->path_len);
            ctx->key.len = p - ctx->key.data;
            break;
        }
    }

    ngx_log_error(zlcf->conflict_log_level, r->connection->log, 0,
                  "zarr batch conflict: zarr=\"%*s/%V%*s\" batch=\"%uL\" "
                  "holder=\"%*s\" requester=\"%V\" method=%V key=\"%V\"",
                  z->bucket_len, z->bucket, &zlcf->prefix,
                  z->zarr_id_len, z->zarr_id, b->id,
                  b->owner_len, b->owner, &ctx->owner, &r->method_name,
                  &ctx->key);

    if (ngx_http_zarr_retry_after(r, wait) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_zarr_send_error(r, NGX_HTTP_CONFLICT, "OperationAborted",
                                    "another upload batch is active on this "
                                    "zarr; retry later");
}


/* a Retry-After header of the answer: 409, 503 */

ngx_int_t
ngx_http_zarr_retry_after(ngx_http_request_t *r, uint64_t seconds)
{
    u_char           *p;
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);

    if (h == NULL || p == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    h->value.data = p;
    h->value.len = ngx_sprintf(p, "%uL", seconds) - p;

    return NGX_OK;
}


ngx_int_t
ngx_http_zarr_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    ngx_int_t             rc;
    ngx_buf_t            *b;
    zarr_buf_t            xml;
    ngx_chain_t           out;
    zarr_s3xml_error_t    e;
    ngx_http_zarr_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_zarr_module);

    if (ctx) {
        /* our own answer: the filters leave it alone */
        ctx->tracked = 0;
    }

    if (!r->request_body && ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    ngx_memzero(&e, sizeof(zarr_s3xml_error_t));
    e.code = code;
    e.code_len = ngx_strlen(code);
    e.message = message;
    e.message_len = ngx_strlen(message);
    e.resource = (char *) r->uri.data;
    e.resource_len = r->uri.len;

    zarr_buf_init(&xml);

    if (zarr_s3xml_error_body(&xml, &e) != 0) {
        zarr_buf_free(&xml);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_create_temp_buf(r->pool, xml.len);
    if (b == NULL) {
        zarr_buf_free(&xml);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, xml.data, xml.len);
    b->last_buf = 1;
    b->last_in_chain = 1;
    zarr_buf_free(&xml);

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/xml");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
