
/*
 * POST object (browser form uploads, multipart/form-data to POST
 * /bucket): the key is a form field in the body.  The body is read before
 * forwarding (as for DeleteObjects), its head parsed (zarr_form.c); a
 * form whose key is outside the zarrs and the checksum prefix goes to the
 * backend unchanged, one inside is refused, and so is a form the gateway
 * cannot read beyond doubt: nothing is forwarded then.
 */


#include "ngx_http_zarr_module.h"
#include "zarr_form.h"
#include "zarr_path.h"


/*
 * The form fields before the file part are read from at most this many
 * bytes of the body: S3 limits a POST policy to 20 KB, and the other
 * fields are short.
 */
#define NGX_HTTP_ZARR_FORM_HEAD_MAX  (256 * 1024)


static void ngx_http_zarr_post_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_zarr_post_check(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx);
static ngx_int_t ngx_http_zarr_post_head(ngx_http_request_t *r, size_t max,
    ngx_str_t *head, off_t *total);
static ngx_int_t ngx_http_zarr_post_boundary(ngx_http_request_t *r,
    ngx_str_t *boundary);
static ngx_int_t ngx_http_zarr_post_refuse(ngx_http_request_t *r,
    ngx_http_zarr_ctx_t *ctx, ngx_uint_t status, const char *code,
    const char *message);


/*
 * Called by the precontent handler for a POST object request.  Returns
 * NGX_AGAIN (the body is being read: the body handler goes on) or a
 * response code.
 */

ngx_int_t
ngx_http_zarr_post_object(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx)
{
    ngx_int_t  rc;
    ngx_str_t  boundary;

    if (ngx_http_zarr_post_boundary(r, &boundary) != NGX_OK) {
        return ngx_http_zarr_post_refuse(r, ctx, NGX_HTTP_BAD_REQUEST,
                                         "MalformedPOSTRequest",
                                         "a POST object request must be "
                                         "multipart/form-data with one "
                                         "Content-Type and a boundary");
    }

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_zarr_post_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    ngx_http_finalize_request(r, NGX_DONE);

    return NGX_AGAIN;
}


static void
ngx_http_zarr_post_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_http_zarr_ctx_t       *ctx;
    ngx_http_zarr_loc_conf_t  *zlcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_zarr_module);
    zlcf = ngx_http_get_module_loc_conf(r, ngx_http_zarr_module);

    ctx->body_read = 1;
    r->preserve_body = 1;
    r->write_event_handler = ngx_http_core_run_phases;

    rc = ngx_http_zarr_post_check(r, zlcf, ctx);

    if (rc == NGX_DECLINED) {
        /* outside the zarrs: forwarded as it came */
        ngx_http_core_run_phases(r);
        return;
    }

    ngx_http_finalize_request(r, rc);
}


/* NGX_DECLINED: forward it; else the response sent */

static ngx_int_t
ngx_http_zarr_post_check(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx)
{
    int           rc;
    char         *buf;
    off_t         total;
    size_t        len;
    ngx_str_t     boundary, head;
    zarr_key_t    zk;
    zarr_form_t   form;
    const char   *key;

    if (ngx_http_zarr_post_boundary(r, &boundary) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    switch (ngx_http_zarr_post_head(r, NGX_HTTP_ZARR_FORM_HEAD_MAX, &head,
                                    &total))
    {
    case NGX_OK:
        break;

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = zarr_form_parse((char *) head.data, head.len,
                         (char *) boundary.data, boundary.len, &form);

    switch (rc) {

    case ZARR_FORM_OK:
        break;

    case ZARR_FORM_INCOMPLETE:
        if ((off_t) head.len < total) {
            return ngx_http_zarr_post_refuse(r, ctx, NGX_HTTP_BAD_REQUEST,
                                             "MalformedPOSTRequest",
                                             "the form fields before the "
                                             "file field are too large");
        }

        return ngx_http_zarr_post_refuse(r, ctx, NGX_HTTP_BAD_REQUEST,
                                         "MalformedPOSTRequest",
                                         form.error);

    case ZARR_FORM_NO_KEY:
        return ngx_http_zarr_post_refuse(r, ctx, NGX_HTTP_BAD_REQUEST,
                                         "InvalidArgument",
                                         "Bucket POST must contain a field "
                                         "named 'key'");

    case ZARR_FORM_AMBIGUOUS:
        return ngx_http_zarr_post_refuse(r, ctx, NGX_HTTP_BAD_REQUEST,
                                         "InvalidArgument", form.error);

    default:
        return ngx_http_zarr_post_refuse(r, ctx, NGX_HTTP_BAD_REQUEST,
                                         "MalformedPOSTRequest",
                                         form.error);
    }

    buf = ngx_pnalloc(r->pool, form.key_len + form.filename_len + 1);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = zarr_form_key(&form, buf, form.key_len + form.filename_len + 1,
                       &key, &len);

    if (rc != ZARR_FORM_OK) {
        return ngx_http_zarr_post_refuse(r, ctx, NGX_HTTP_BAD_REQUEST,
                                         "InvalidArgument",
                                         "the key's ${filename} cannot be "
                                         "resolved beyond doubt: one "
                                         "${filename} and a plain quoted "
                                         "filename are needed");
    }

    ctx->key.data = (u_char *) key;
    ctx->key.len = len;

    if (len >= zlcf->checksum_prefix.len
        && ngx_strncmp(key, zlcf->checksum_prefix.data,
                       zlcf->checksum_prefix.len) == 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "zarr: POST object under the checksum prefix "
                      "refused: \"%V\"", &ctx->key);
        return ngx_http_zarr_post_refuse(r, ctx, NGX_HTTP_FORBIDDEN,
                                         "AccessDenied",
                                         "only the gateway writes under the "
                                         "checksum prefix");
    }

    rc = zarr_key_split(key, len, (char *) zlcf->prefix.data,
                        zlcf->prefix.len, &zk);

    if (rc == ZARR_PATH_NOT_ZARR) {
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "zarr: POST object into a zarr refused: \"%V\"",
                  &ctx->key);

    return ngx_http_zarr_post_refuse(r, ctx, NGX_HTTP_NOT_IMPLEMENTED,
                                     "NotImplemented",
                                     "POST object uploads into a zarr are "
                                     "not supported; use PUT");
}


/* the first max bytes of the request body (memory or temporary file) */

static ngx_int_t
ngx_http_zarr_post_head(ngx_http_request_t *r, size_t max, ngx_str_t *head,
    off_t *total)
{
    u_char       *p;
    off_t         size;
    size_t        len, n;
    ssize_t       got;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    *total = 0;
    ngx_str_null(head);

    if (r->request_body == NULL) {
        return NGX_OK;
    }

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        *total += ngx_buf_size(cl->buf);
    }

    len = (*total > (off_t) max) ? max : (size_t) *total;

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    head->data = p;
    head->len = len;

    for (cl = r->request_body->bufs; cl && len; cl = cl->next) {
        b = cl->buf;
        size = ngx_buf_size(b);
        n = (size > (off_t) len) ? len : (size_t) size;

        if (b->in_file) {
            /* a temporary file just written: in the page cache */
            got = ngx_read_file(b->file, p, n, b->file_pos);
            if (got != (ssize_t) n) {
                return NGX_ERROR;
            }

        } else {
            ngx_memcpy(p, b->pos, n);
        }

        p += n;
        len -= n;
    }

    return NGX_OK;
}


/*
 * The boundary of the one Content-Type header: with two, the backend
 * might read the body with the other one.
 */

static ngx_int_t
ngx_http_zarr_post_boundary(ngx_http_request_t *r, ngx_str_t *boundary)
{
    size_t            len;
    ngx_uint_t        i, n;
    const char       *b;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *ct;

    n = 0;
    ct = NULL;
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

        if (h[i].key.len == sizeof("Content-Type") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Content-Type",
                               sizeof("Content-Type") - 1) == 0)
        {
            ct = &h[i];
            n++;
        }
    }

    if (n != 1
        || zarr_form_boundary((char *) ct->value.data, ct->value.len, &b,
                              &len)
           != 0)
    {
        return NGX_DECLINED;
    }

    boundary->data = (u_char *) b;
    boundary->len = len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_zarr_post_refuse(ngx_http_request_t *r, ngx_http_zarr_ctx_t *ctx,
    ngx_uint_t status, const char *code, const char *message)
{
    ctx->result = NGX_HTTP_ZARR_RESULT_REJECTED;

    if (status == NGX_HTTP_BAD_REQUEST) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "zarr: POST object refused: %s", message);
    }

    return ngx_http_zarr_send_error(r, status, code, message);
}
