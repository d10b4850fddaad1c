
/*
 * Request bodies the module reads itself (DeleteObjects, the admin API)
 * with a limit enforced while they arrive, whatever their transfer
 * encoding: a request body filter counts the decoded bytes and stops the
 * read at the first byte over the limit, before the body is spooled to a
 * temporary file.  nginx's own client_max_body_size works the same way
 * for chunked bodies, but is one setting per location (0 where the
 * gateway proxies uploads) and answers with its HTML page; here the
 * caller answers (an S3 XML error, a JSON error).
 */


#include "ngx_http_zarr_module.h"


typedef struct {
    off_t                             max;
    off_t                             received;
    ngx_http_zarr_body_refuse_pt      refuse;
    unsigned                          too_large:1;
} ngx_http_zarr_body_t;


static ngx_http_zarr_body_t *ngx_http_zarr_body_get(ngx_http_request_t *r);
static void ngx_http_zarr_body_cleanup(void *data);
static void ngx_http_zarr_body_unread(ngx_http_request_t *r);
static void ngx_http_zarr_body_read_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_zarr_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_request_body_filter_pt  ngx_http_next_request_body_filter;


ngx_int_t
ngx_http_zarr_body_init(ngx_conf_t *cf)
{
    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_http_zarr_body_filter;

    return NGX_OK;
}


/*
 * Reads r's body as ngx_http_read_client_request_body() does and calls
 * post_handler with it, unless it is longer than max bytes.  Returns as
 * ngx_http_read_client_request_body(); NGX_HTTP_REQUEST_ENTITY_TOO_LARGE
 * when the body is too long already (declared so, or what came with the
 * header): the caller answers, with refuse or as it likes.  Found too
 * long later, refuse(r) sends the answer and returns what to finalize
 * the request with.  Either way a body left unread closes the connection
 * after the answer.
 */

ngx_int_t
ngx_http_zarr_body_read(ngx_http_request_t *r, off_t max,
    ngx_http_client_body_handler_pt post_handler,
    ngx_http_zarr_body_refuse_pt refuse)
{
    ngx_int_t              rc;
    ngx_pool_cleanup_t    *cln;
    ngx_http_zarr_body_t  *zb;

    if (r->headers_in.content_length_n > max) {
        /* nothing read yet: the answer discards the body as usual */
        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    zb = ngx_pcalloc(r->pool, sizeof(ngx_http_zarr_body_t));
    if (zb == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* found again through its cleanup: the module's ctx is the caller's */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_zarr_body_cleanup;
    cln->data = zb;

    zb->max = max;
    zb->refuse = refuse;

    rc = ngx_http_read_client_request_body(r, post_handler);

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        /* ours, or nginx's client_max_body_size on a chunked body */
        ngx_http_zarr_body_unread(r);
        return rc;
    }

#if (NGX_HTTP_V2)
    if (r->stream) {
        /* HTTP/2 reads with its own handler: nginx answers a 413 there */
        return rc;
    }
#endif

    if (rc == NGX_AGAIN) {
        /* the rest arrives later: a limit hit then is answered here too */
        r->read_event_handler = ngx_http_zarr_body_read_handler;
    }

    return rc;
}


static ngx_http_zarr_body_t *
ngx_http_zarr_body_get(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *c;

    for (c = r->pool->cleanup; c; c = c->next) {
        if (c->handler == ngx_http_zarr_body_cleanup) {
            return c->data;
        }
    }

    return NULL;
}


static void
ngx_http_zarr_body_cleanup(void *data)
{
    /* a marker for ngx_http_zarr_body_get() */

    (void) data;
}


static void
ngx_http_zarr_body_unread(ngx_http_request_t *r)
{
    /*
     * the rest of the body is never read: no keepalive (it would be read
     * as the next request); a lingering close lets the client see the
     * answer
     */

    r->keepalive = 0;
    r->lingering_close = 1;
    r->read_event_handler = ngx_http_block_reading;
}


/*
 * ngx_http_read_client_request_body_handler(), with the limit's answer
 * instead of nginx's 413 page: ngx_http_read_unbuffered_request_body()
 * is nginx's way in to the same reading loop (the timeout check
 * included); with buffering on it calls the post handler at the end.
 */

static void
ngx_http_zarr_body_read_handler(ngx_http_request_t *r)
{
    ngx_int_t              rc;
    ngx_http_zarr_body_t  *zb;

    /*
     * a reference of our own: the post handler may finalize the request,
     * and nginx's function still writes to it after (r->reading_body)
     */
    r->main->count++;

    rc = ngx_http_read_unbuffered_request_body(r);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        zb = ngx_http_zarr_body_get(r);

        if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE && zb) {
            ngx_http_zarr_body_unread(r);
            rc = zb->refuse(r);
        }

        ngx_http_finalize_request(r, rc);
    }

    ngx_http_finalize_request(r, NGX_DONE);
}


static ngx_int_t
ngx_http_zarr_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t           *cl;
    ngx_http_zarr_body_t  *zb;

    zb = ngx_http_zarr_body_get(r);

    if (zb == NULL) {
        return ngx_http_next_request_body_filter(r, in);
    }

    if (zb->too_large) {
        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    for (cl = in; cl; cl = cl->next) {
        zb->received += ngx_buf_size(cl->buf);
    }

    if (zb->received > zb->max) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "zarr: request body larger than %O bytes refused "
                      "after %O bytes", zb->max, zb->received);

        zb->too_large = 1;

        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    return ngx_http_next_request_body_filter(r, in);
}
