
/*
 * Reading snapshots through the gateway (DESIGN section 10): keys
 * B/<zarr_snapshot_prefix><id>/<name>/<path>.
 *
 *  - GET and HEAD of such a key: the recorded version is looked up in
 *    the store (a short read transaction, inline), the request becomes
 *    "GET B/<zarr_prefix><id>/<path>?versionId=V" signed with the
 *    gateway's credentials, and the location's proxy_pass streams the
 *    backend's answer through (Range and conditional headers go with
 *    it).  Needs "proxy_set_header Host $http_host": the Host header is
 *    set to zarr_backend's and signed.
 *  - ListObjectsV2 and ListObjects under one snapshot: answered from the
 *    store in S3 XML.
 *  - any write under the prefix: 403 AccessDenied.
 *
 * Who may read: zarr_snapshot_read, "authenticated" (a signature the
 * gateway verifies with zarr_credentials) or "public".
 */


#include "ngx_http_zarr_module.h"
#include "zarr_sigv4.h"
#include "zarr_snap.h"


#define NGX_HTTP_ZARR_SNAP_OBJECT   1
#define NGX_HTTP_ZARR_SNAP_LIST     2
#define NGX_HTTP_ZARR_SNAP_DONE     3

#define NGX_HTTP_ZARR_EMPTY_SHA256                                           \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


static ngx_int_t ngx_http_zarr_snapshot_auth(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx);
static void ngx_http_zarr_snapshot_auth_done(ngx_http_request_t *r,
    ngx_http_zarr_auth_t *au);
static ngx_int_t ngx_http_zarr_snapshot_serve(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_snapshot_split(ngx_http_zarr_loc_conf_t *zlcf,
    u_char *key, size_t len, ngx_str_t *zarr_id, ngx_str_t *name,
    ngx_str_t *path);
static ngx_int_t ngx_http_zarr_snapshot_object(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_snapshot_forward(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx,
    ngx_str_t *zarr_id, ngx_str_t *path, zarr_snap_file_t *f);
static ngx_int_t ngx_http_zarr_snapshot_list(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_snapshot_arg(ngx_http_request_t *r,
    const char *name, ngx_str_t *value, ngx_uint_t *present);
static ngx_int_t ngx_http_zarr_snapshot_no_key(ngx_http_request_t *r);
static ngx_table_elt_t *ngx_http_zarr_snapshot_header(ngx_http_request_t *r,
    ngx_list_t *list, const char *key, u_char *value, size_t len);


/* bucket sub-resources: a GET with one is not a listing */

static const char  *ngx_http_zarr_snapshot_subres[] = {
    "acl", "analytics", "accelerate", "cors", "encryption",
    "intelligent-tiering", "inventory", "lifecycle", "location", "logging",
    "metrics", "notification", "object-lock", "ownershipControls", "policy",
    "policyStatus", "publicAccessBlock", "replication", "requestPayment",
    "tagging", "uploads", "versioning", "versions", "website", NULL
};


/*
 * Called by the classifier for every request: NGX_DECLINED when it does
 * not touch a snapshot, else what the handler returns (an answer, or
 * NGX_AGAIN while a credential lookup runs).
 */

ngx_int_t
ngx_http_zarr_snapshot_request(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx,
    ngx_uint_t op)
{
    ngx_str_t    prefix, v;
    ngx_uint_t   i, present;
    ngx_str_t   *sp;

    sp = &zlcf->snapshot_prefix;

    if (ctx->key.len) {
        if (ctx->key.len < sp->len
            || ngx_strncmp(ctx->key.data, sp->data, sp->len) != 0)
        {
            return NGX_DECLINED;
        }

        if (op != ZARR_S3OP_READ) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "zarr: write under the snapshot prefix refused: "
                          "\"%V\"", &ctx->key);
            ctx->result = NGX_HTTP_ZARR_RESULT_REJECTED;

            return ngx_http_zarr_send_error(r, NGX_HTTP_FORBIDDEN,
                                            "AccessDenied",
                                            "snapshots are read-only");
        }

        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            return NGX_DECLINED;
        }

        ctx->snapshot = NGX_HTTP_ZARR_SNAP_OBJECT;

        return ngx_http_zarr_snapshot_auth(r, zlcf, ctx);
    }

    /* a listing of a bucket under one snapshot? */

    if (op != ZARR_S3OP_READ || ctx->bucket.len == 0
        || r->method != NGX_HTTP_GET)
    {
        return NGX_DECLINED;
    }

    for (i = 0; ngx_http_zarr_snapshot_subres[i]; i++) {
        if (ngx_http_zarr_snapshot_arg(r, ngx_http_zarr_snapshot_subres[i],
                                       &v, &present) != NGX_OK
            || present)
        {
            return NGX_DECLINED;
        }
    }

    if (ngx_http_zarr_snapshot_arg(r, "prefix", &prefix, &present) != NGX_OK
        || prefix.len <= sp->len
        || ngx_strncmp(prefix.data, sp->data, sp->len) != 0)
    {
        return NGX_DECLINED;
    }

    /* "<id>/<name>/" at least: else the backend lists the manifests */

    v.data = ngx_strlchr(prefix.data + sp->len, prefix.data + prefix.len,
                         '/');

    if (v.data == NULL
        || ngx_strlchr(v.data + 1, prefix.data + prefix.len, '/') == NULL)
    {
        return NGX_DECLINED;
    }

    ctx->snapshot = NGX_HTTP_ZARR_SNAP_LIST;

    return ngx_http_zarr_snapshot_auth(r, zlcf, ctx);
}


/* back in the handler after a credential lookup */

ngx_int_t
ngx_http_zarr_snapshot_resume(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx)
{
    if (ctx->waiting) {
        return NGX_AGAIN;
    }

    if (ctx->snapshot == NGX_HTTP_ZARR_SNAP_DONE) {
        /* forwarded: the proxy goes on */
        return NGX_DECLINED;
    }

    return ngx_http_zarr_snapshot_auth(r, zlcf, ctx);
}


static ngx_int_t
ngx_http_zarr_snapshot_auth(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx)
{
    int                    status;
    ngx_int_t              rc;
    const char            *code;
    ngx_http_zarr_auth_t  *au;

    if (zlcf->snapshot_read == NGX_HTTP_ZARR_SNAPSHOT_PUBLIC) {
        return ngx_http_zarr_snapshot_serve(r, zlcf, ctx);
    }

    au = &ctx->auth;

    rc = ngx_http_zarr_auth(r, au, ngx_http_zarr_snapshot_auth_done);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_AGAIN) {
        ctx->waiting = 1;
        r->main->blocked++;
        return NGX_AGAIN;
    }

    ctx->result = NGX_HTTP_ZARR_RESULT_REJECTED;

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "zarr: snapshot read refused: no zarr_credentials "
                      "to verify its signature");

        return ngx_http_zarr_send_error(r, NGX_HTTP_FORBIDDEN,
                                        "AccessDenied",
                                        "snapshots are read by verified "
                                        "keys, and this gateway verifies "
                                        "none (zarr_credentials)");
    }

    if (au->rc == ZARR_AUTH_OK && !au->unavailable) {
        ctx->result = 0;
        return ngx_http_zarr_snapshot_serve(r, zlcf, ctx);
    }

    ngx_http_zarr_auth_log(r, au);

    if (au->unavailable) {
        return ngx_http_zarr_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "SlowDown",
                                        "the gateway cannot look up the "
                                        "access key now; retry");
    }

    code = zarr_auth_s3_code(au->rc, &au->a, &status);

    return ngx_http_zarr_send_error(r, status, code,
                                    au->a.error ? au->a.error
                                                : "access denied");
}


static void
ngx_http_zarr_snapshot_auth_done(ngx_http_request_t *r,
    ngx_http_zarr_auth_t *au)
{
    ngx_http_zarr_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_zarr_module);

    ctx->waiting = 0;
    r->main->blocked--;

    r->write_event_handler = ngx_http_core_run_phases;
    r->connection->write->handler(r->connection->write);
}


static ngx_int_t
ngx_http_zarr_snapshot_serve(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx)
{
    if (ngx_http_zarr_get_store() == NULL) {
        return ngx_http_zarr_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "ServiceUnavailable",
                                        "the zarr store is not open");
    }

    if (ctx->snapshot == NGX_HTTP_ZARR_SNAP_LIST) {
        return ngx_http_zarr_snapshot_list(r, zlcf, ctx);
    }

    return ngx_http_zarr_snapshot_object(r, zlcf, ctx);
}


/* key without the snapshot prefix: "<id>/<name>[/<path>]" */

static ngx_int_t
ngx_http_zarr_snapshot_split(ngx_http_zarr_loc_conf_t *zlcf, u_char *key,
    size_t len, ngx_str_t *zarr_id, ngx_str_t *name, ngx_str_t *path)
{
    u_char  *p, *last, *s1, *s2;

    p = key + zlcf->snapshot_prefix.len;
    last = key + len;

    s1 = ngx_strlchr(p, last, '/');
    if (s1 == NULL) {
        return NGX_DECLINED;
    }

    zarr_id->data = p;
    zarr_id->len = s1 - p;

    s2 = ngx_strlchr(s1 + 1, last, '/');

    name->data = s1 + 1;
    name->len = (s2 ? s2 : last) - name->data;

    path->data = s2 ? s2 + 1 : last;
    path->len = s2 ? (size_t) (last - s2 - 1) : 0;

    if (zarr_id->len == 0 || zarr_id->len > ZARR_ID_MAX || s2 == NULL) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_zarr_snapshot_no_key(ngx_http_request_t *r)
{
    return ngx_http_zarr_send_error(r, NGX_HTTP_NOT_FOUND, "NoSuchKey",
                                    "The specified key does not exist.");
}


static ngx_int_t
ngx_http_zarr_snapshot_object(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx)
{
    int                rc;
    zarr_err_t         err;
    ngx_str_t          zarr_id, name, path;
    zarr_snap_t        snap;
    zarr_store_t      *store;
    zarr_snap_file_t   f;

    store = ngx_http_zarr_get_store();

    if (ngx_http_zarr_snapshot_split(zlcf, ctx->key.data, ctx->key.len,
                                     &zarr_id, &name, &path)
        != NGX_OK)
    {
        /* "<id>/<name>.json", a manifest: an object of the backend */
        ctx->snapshot = NGX_HTTP_ZARR_SNAP_DONE;
        return NGX_DECLINED;
    }

    rc = zarr_snap_get(store, (char *) ctx->bucket.data, ctx->bucket.len,
                       (char *) zarr_id.data, zarr_id.len,
                       (char *) name.data, name.len, &snap, &err);

    if (rc == ZARR_OK) {
        rc = zarr_snap_file(store, snap.id, (char *) path.data, path.len,
                            &f, &err);
    }

    if (rc == ZARR_ERR_NOTFOUND || rc == ZARR_ERR_INVALID) {
        return ngx_http_zarr_snapshot_no_key(r);
    }

    if (rc != ZARR_OK) {
        ngx_log_error(NGX_LOG_CRIT, r->connection->log, 0,
                      "zarr: snapshot read: %s", err.msg);
        return ngx_http_zarr_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "InternalError",
                                        "the gateway's store failed");
    }

    return ngx_http_zarr_snapshot_forward(r, zlcf, ctx, &zarr_id, &path, &f);
}


/*
 * The request becomes the backend's GET (or HEAD) of the version, signed
 * with the gateway's credentials; the proxy sends it.  The client's own
 * Authorization, Host and x-amz-* headers stay behind; Range, If-* and
 * the others go.
 */

static ngx_int_t
ngx_http_zarr_snapshot_forward(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx,
    ngx_str_t *zarr_id, ngx_str_t *path, zarr_snap_file_t *f)
{
    u_char                     *raw, *p, *host;
    char                       *query, date[ZARR_SIGV4_DATE_LEN + 1];
    size_t                      n, hlen;
    ngx_uint_t                  i;
    ngx_list_t                  headers;
    ngx_list_part_t            *part;
    ngx_table_elt_t            *h, *nh;
    zarr_sigv4_param_t          param;
    zarr_sigv4_header_t         sh;
    zarr_sigv4_creds_t          creds;
    zarr_sigv4_result_t         sig;
    zarr_sigv4_request_t        sreq;
    ngx_http_zarr_main_conf_t  *zmcf;

    zmcf = ngx_http_get_module_main_conf(r, ngx_http_zarr_module);

    if (zmcf->backend.data == NULL || zmcf->access_key.data == NULL) {
        return ngx_http_zarr_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "ServiceUnavailable",
                                        "no zarr_backend_credentials to "
                                        "read snapshots with");
    }

    /* zarr_backend's authority: "http://host:port" */

    /* (NUL-terminated, as zarr_backend's value is) */
    host = ngx_strstrn(zmcf->backend.data, "://", 2);
    host = host ? host + 3 : zmcf->backend.data;
    p = ngx_strlchr(host, zmcf->backend.data + zmcf->backend.len, '/');
    hlen = (p ? p : zmcf->backend.data + zmcf->backend.len) - host;

    /* "/<bucket>/<zarr_prefix><id>/<path>", raw */

    n = 1 + ctx->bucket.len + 1 + zlcf->prefix.len + zarr_id->len + 1
        + path->len;

    raw = ngx_pnalloc(r->pool, n + 1 + hlen + 1);
    if (raw == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = raw;
    *p++ = '/';
    p = ngx_cpymem(p, ctx->bucket.data, ctx->bucket.len);
    *p++ = '/';
    p = ngx_cpymem(p, zlcf->prefix.data, zlcf->prefix.len);
    p = ngx_cpymem(p, zarr_id->data, zarr_id->len);
    *p++ = '/';
    p = ngx_cpymem(p, path->data, path->len);

    host = ngx_cpymem(p + 1, host, hlen) - hlen;
    host[hlen] = '\0';

    param.name = "versionId";
    param.name_len = sizeof("versionId") - 1;
    param.value = f->version;
    param.value_len = f->version_len;

    sh.name = "host";
    sh.value = (char *) host;

    creds.access_key = (char *) zmcf->access_key.data;
    creds.secret_key = (char *) zmcf->secret_key.data;
    creds.region = zmcf->region.len ? (char *) zmcf->region.data
                                     : "us-east-1";
    creds.service = NULL;

    if (zarr_sigv4_format_date(ngx_time(), date) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(&sreq, sizeof(zarr_sigv4_request_t));
    sreq.method = (r->method == NGX_HTTP_HEAD) ? "HEAD" : "GET";
    sreq.path = (char *) raw;
    sreq.path_len = n;
    sreq.params = &param;
    sreq.nparams = 1;
    sreq.headers = &sh;
    sreq.nheaders = 1;
    sreq.payload_hash = NGX_HTTP_ZARR_EMPTY_SHA256;
    sreq.amz_date = date;

    ngx_memzero(&sig, sizeof(zarr_sigv4_result_t));

    query = zarr_sigv4_canonical_query(&param, 1);

    if (query == NULL || zarr_sigv4_sign(&sreq, &creds, &sig) != 0) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "zarr: cannot sign a snapshot read: %s",
                      sig.error ? sig.error : "out of memory");
        free(query);
        zarr_sigv4_result_free(&sig);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the URI as sent: encoded as signed */

    r->unparsed_uri.len = zarr_sigv4_uri_encode(NULL, (char *) raw, n, 1)
                          + 1 + ngx_strlen(query);
    r->unparsed_uri.data = ngx_pnalloc(r->pool, r->unparsed_uri.len);

    if (r->unparsed_uri.data == NULL) {
        free(query);
        zarr_sigv4_result_free(&sig);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = r->unparsed_uri.data;
    p += zarr_sigv4_uri_encode((char *) p, (char *) raw, n, 1);
    *p++ = '?';
    ngx_memcpy(p, query, ngx_strlen(query));
    free(query);

    r->valid_unparsed_uri = 1;

    /* the headers: the client's, less its credentials */

    if (ngx_list_init(&headers, r->pool, 16, sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        zarr_sigv4_result_free(&sig);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == 0
            || (h[i].key.len == 4
                && ngx_strncasecmp(h[i].key.data, (u_char *) "host", 4) == 0)
            || (h[i].key.len == 13
                && ngx_strncasecmp(h[i].key.data, (u_char *) "authorization",
                                   13) == 0)
            || (h[i].key.len >= 6
                && ngx_strncasecmp(h[i].key.data, (u_char *) "x-amz-", 6)
                   == 0))
        {
            continue;
        }

        nh = ngx_list_push(&headers);
        if (nh == NULL) {
            zarr_sigv4_result_free(&sig);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        *nh = h[i];
    }

    h = ngx_http_zarr_snapshot_header(r, &headers, "Host", host, hlen);
    nh = ngx_http_zarr_snapshot_header(r, &headers, "x-amz-date",
                                       (u_char *) sig.amz_date,
                                       ngx_strlen(sig.amz_date));

    if (h == NULL || nh == NULL
        || ngx_http_zarr_snapshot_header(r, &headers,
                                         "x-amz-content-sha256",
                                         (u_char *)
                                             NGX_HTTP_ZARR_EMPTY_SHA256,
                                         64) == NULL
        || ngx_http_zarr_snapshot_header(r, &headers, "Authorization",
                                         (u_char *) sig.authorization,
                                         ngx_strlen(sig.authorization))
           == NULL)
    {
        zarr_sigv4_result_free(&sig);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    zarr_sigv4_result_free(&sig);

    r->headers_in.headers = headers;
    r->headers_in.host = h;
    r->headers_in.authorization = NULL;

    ctx->snapshot = NGX_HTTP_ZARR_SNAP_DONE;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "zarr snapshot read: \"%V\" as \"%V\"", &ctx->key,
                   &r->unparsed_uri);

    return NGX_DECLINED;
}


static ngx_table_elt_t *
ngx_http_zarr_snapshot_header(ngx_http_request_t *r, ngx_list_t *list,
    const char *key, u_char *value, size_t len)
{
    size_t            n;
    ngx_table_elt_t  *h;

    h = ngx_list_push(list);
    if (h == NULL) {
        return NULL;
    }

    n = ngx_strlen(key);

    h->key.len = n;
    h->key.data = (u_char *) key;
    h->lowcase_key = ngx_pnalloc(r->pool, n);
    h->value.data = ngx_pnalloc(r->pool, len + 1);

    if (h->lowcase_key == NULL || h->value.data == NULL) {
        return NULL;
    }

    ngx_strlow(h->lowcase_key, (u_char *) key, n);
    h->hash = ngx_hash_key(h->lowcase_key, n);

    ngx_memcpy(h->value.data, value, len);
    h->value.data[len] = '\0';
    h->value.len = len;

    return h;
}


/*
 * An argument of the query, %XX and '+' decoded; *present says whether it
 * is there at all (with or without '=').
 */

static ngx_int_t
ngx_http_zarr_snapshot_arg(ngx_http_request_t *r, const char *name,
    ngx_str_t *value, ngx_uint_t *present)
{
    u_char  *p, *last, *end, *eq, *dst, *src, *start;
    size_t   n;

    *present = 0;
    value->len = 0;
    value->data = NULL;

    n = ngx_strlen(name);
    p = r->args.data;
    last = p + r->args.len;

    while (p < last) {
        end = ngx_strlchr(p, last, '&');
        if (end == NULL) {
            end = last;
        }

        eq = ngx_strlchr(p, end, '=');

        if ((size_t) ((eq ? eq : end) - p) == n
            && ngx_strncmp(p, name, n) == 0)
        {
            *present = 1;

            if (eq == NULL) {
                return NGX_OK;
            }

            /* '+' is a space in a query, as S3 reads it */

            start = ngx_pnalloc(r->pool, end - eq);
            if (start == NULL) {
                return NGX_ERROR;
            }

            dst = start;

            for (src = eq + 1; src < end; src++) {
                *dst++ = (*src == '+') ? ' ' : *src;
            }

            /* in place: the decoded bytes never outrun the encoded */
            n = dst - start;
            dst = start;
            src = start;
            ngx_unescape_uri(&dst, &src, n, 0);

            value->data = start;
            value->len = dst - start;

            return NGX_OK;
        }

        p = end + 1;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_zarr_snapshot_list(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx)
{
    int                  rc, len;
    u_char              *base;
    ngx_buf_t           *b;
    ngx_str_t            prefix, v, zarr_id, name, path, delim, after;
    ngx_str_t            token, start, marker, max;
    ngx_int_t            n;
    ngx_uint_t           present, has_delim, has_token, has_start;
    ngx_uint_t           has_marker;
    zarr_buf_t           xml;
    zarr_err_t           err;
    ngx_chain_t          out;
    zarr_snap_t          snap;
    zarr_store_t        *store;
    zarr_snap_listing_t  q;

    store = ngx_http_zarr_get_store();

    if (ngx_http_zarr_snapshot_arg(r, "prefix", &prefix, &present)
            != NGX_OK
        || ngx_http_zarr_snapshot_arg(r, "delimiter", &delim, &has_delim)
            != NGX_OK
        || ngx_http_zarr_snapshot_arg(r, "continuation-token", &token,
                                      &has_token) != NGX_OK
        || ngx_http_zarr_snapshot_arg(r, "start-after", &start, &has_start)
            != NGX_OK
        || ngx_http_zarr_snapshot_arg(r, "marker", &marker, &has_marker)
            != NGX_OK
        || ngx_http_zarr_snapshot_arg(r, "max-keys", &max, &present)
            != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(&q, sizeof(zarr_snap_listing_t));

    if (ngx_http_zarr_snapshot_arg(r, "list-type", &v, &present) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    q.v2 = present && v.len == 1 && v.data[0] == '2';

    if (ngx_http_zarr_snapshot_arg(r, "encoding-type", &v, &present)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (present) {
        if (v.len != 3 || ngx_strncmp(v.data, "url", 3) != 0) {
            return ngx_http_zarr_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            "InvalidArgument",
                                            "Invalid Encoding Method "
                                            "specified in Request");
        }

        q.url = 1;
    }

    q.max_keys = 1000;

    if (max.len) {
        n = ngx_atoi(max.data, max.len);

        if (n == NGX_ERROR) {
            return ngx_http_zarr_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            "InvalidArgument",
                                            "max-keys is not a number");
        }

        q.max_keys = (uint64_t) n;
    }

    /* "<prefix><id>/<name>/": the snapshot */

    (void) ngx_http_zarr_snapshot_split(zlcf, prefix.data, prefix.len,
                                        &zarr_id, &name, &path);

    rc = zarr_snap_get(store, (char *) ctx->bucket.data, ctx->bucket.len,
                       (char *) zarr_id.data, zarr_id.len,
                       (char *) name.data, name.len, &snap, &err);

    if (rc != ZARR_OK && rc != ZARR_ERR_NOTFOUND && rc != ZARR_ERR_INVALID) {
        ngx_log_error(NGX_LOG_CRIT, r->connection->log, 0,
                      "zarr: snapshot listing: %s", err.msg);
        return ngx_http_zarr_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "InternalError",
                                        "the gateway's store failed");
    }

    base = prefix.data;

    q.bucket = (char *) ctx->bucket.data;
    q.bucket_len = ctx->bucket.len;
    q.base = (char *) base;
    q.base_len = path.data - base;
    q.prefix = (char *) prefix.data;
    q.prefix_len = prefix.len;
    q.created = snap.created;

    if (has_delim && delim.len) {
        q.delimiter = (char *) delim.data;
        q.delimiter_len = delim.len;
    }

    after.len = 0;
    after.data = NULL;

    if (q.v2) {
        if (has_start) {
            q.start_after = (char *) start.data;
            q.start_after_len = start.len;
            after = start;
        }

        if (has_token) {
            q.token = (char *) token.data;
            q.token_len = token.len;

            after.data = ngx_pnalloc(r->pool, token.len / 2 + 1);
            if (after.data == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            len = zarr_snap_token_decode((char *) token.data, token.len,
                                         (char *) after.data);
            if (len < 0) {
                return ngx_http_zarr_send_error(r, NGX_HTTP_BAD_REQUEST,
                                                "InvalidArgument",
                                                "The continuation token "
                                                "provided is incorrect");
            }

            after.len = len;
        }

    } else if (has_marker) {
        q.marker = (char *) marker.data;
        q.marker_len = marker.len;
        after = marker;
    }

    if (after.len) {
        q.after = (char *) after.data;
        q.after_len = after.len;
    }

    zarr_buf_init(&xml);

    if (rc == ZARR_OK) {
        rc = zarr_snap_list_xml(store, snap.id, &q, &xml, &err);

    } else {
        /* an unknown snapshot: an empty listing, as S3 answers */
        q.base_len = prefix.len + 1;
        rc = zarr_snap_list_xml(store, 0, &q, &xml, &err);
    }

    if (rc != ZARR_OK) {
        zarr_buf_free(&xml);
        ngx_log_error(NGX_LOG_CRIT, r->connection->log, 0,
                      "zarr: snapshot listing: %s", err.msg);
        return ngx_http_zarr_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "InternalError",
                                        "the gateway's store failed");
    }

    b = ngx_create_temp_buf(r->pool, xml.len);
    if (b == NULL) {
        zarr_buf_free(&xml);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, xml.data, xml.len);
    b->last_buf = (r == r->main);
    b->last_in_chain = 1;
    zarr_buf_free(&xml);

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/xml");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    ctx->snapshot = NGX_HTTP_ZARR_SNAP_DONE;

    rc = ngx_http_send_header(r);

    if (rc != NGX_ERROR && rc <= NGX_OK && !r->header_only) {
        out.buf = b;
        out.next = NULL;

        rc = ngx_http_output_filter(r, &out);
    }

    /* a large body may still be going out: finalize sees to it */
    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


/*
 * Protection (DESIGN 10): a permanent delete of a version that a
 * snapshot holds gets 403 and is not forwarded.  NGX_DECLINED: not held.
 */

ngx_int_t
ngx_http_zarr_snapshot_held(ngx_http_request_t *r, ngx_http_zarr_ctx_t *ctx,
    zarr_key_t *zk, const char *version, size_t version_len)
{
    int            rc;
    u_char        *p;
    char           name[ZARR_SNAP_NAME_MAX + 1];
    zarr_err_t     err;
    zarr_store_t  *store;
    u_char         msg[ZARR_SNAP_NAME_MAX + 128];

    store = ngx_http_zarr_get_store();

    if (store == NULL) {
        return NGX_DECLINED;
    }

    rc = zarr_snap_held(store, (char *) ctx->bucket.data, ctx->bucket.len,
                        zk->zarr_id, zk->zarr_id_len, zk->path,
                        zk->path_len, version, version_len, name, &err);

    if (rc == ZARR_ERR_NOTFOUND || rc == ZARR_ERR_INVALID) {
        return NGX_DECLINED;
    }

    ctx->result = NGX_HTTP_ZARR_RESULT_REJECTED;

    if (rc != ZARR_OK) {
        ngx_log_error(NGX_LOG_CRIT, r->connection->log, 0,
                      "zarr: held versions: %s", err.msg);
        return ngx_http_zarr_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "InternalError",
                                        "the gateway's store failed");
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "zarr: delete of a version held by snapshot \"%s\" "
                  "refused", name);

    p = ngx_snprintf(msg, sizeof(msg) - 1, "this version is held by "
                     "snapshot \"%s\" of zarr \"%*s\"", name,
                     zk->zarr_id_len, zk->zarr_id);
    *p = '\0';

    return ngx_http_zarr_send_error(r, NGX_HTTP_FORBIDDEN, "AccessDenied",
                                    (char *) msg);
}
