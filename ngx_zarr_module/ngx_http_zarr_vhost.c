
/*
 * Virtual-hosted-style addressing: which Host the classification reads
 * (zarr_virtual_host_suffix), and the writes refused because their Host
 * may name a bucket under a domain the gateway was not told about.
 */


#include "ngx_http_zarr_module.h"
#include "zarr_path.h"


static ngx_int_t ngx_http_zarr_host_known(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, const char *name, size_t len);
static ngx_int_t ngx_http_zarr_zarr_key(ngx_http_zarr_loc_conf_t *zlcf,
    const char *key, size_t len);


/*
 * The Host header exactly as the backend gets it (proxy_set_header Host
 * $http_host), not r->headers_in.server, which an absolute request line
 * may set otherwise.
 */

void
ngx_http_zarr_host_request(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, zarr_s3op_request_t *req)
{
    ngx_table_elt_t  *host;

    host = r->headers_in.host;

    if (host == NULL || zlcf->virtual_host_suffix.len == 0) {
        return;
    }

    req->host = (char *) host->value.data;
    req->host_len = host->value.len;
    req->host_suffix = (char *) zlcf->virtual_host_suffix.data;
    req->host_suffix_len = zlcf->virtual_host_suffix.len;
}


/*
 * A write whose Host is a name the gateway does not know (neither under
 * zarr_virtual_host_suffix, nor the suffix itself, nor the server's name,
 * the first of its server_name) may be read virtual-hosted style by the
 * backend: the whole path is then the key.  When that reading touches a
 * zarr (a key under zarr_prefix or zarr_checksum_prefix), or is a
 * DeleteObjects or a form upload that the path-style reading takes for a
 * service request the gateway would not look into, the request is
 * refused: 400 InvalidRequest, nothing forwarded.
 *
 * Returns NGX_DECLINED (go on) or the response sent.
 */

ngx_int_t
ngx_http_zarr_host_check(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx,
    const zarr_s3op_request_t *req, const zarr_s3op_t *op)
{
    int               rc, ambiguous;
    char             *buf;
    size_t            size, len;
    ngx_str_t         h;
    const char       *name;
    zarr_s3op_t       vop;
    ngx_table_elt_t  *host;

    host = r->headers_in.host;

    if (op->op == ZARR_S3OP_READ || host == NULL) {
        return NGX_DECLINED;
    }

    if (!zarr_s3op_host_name((char *) host->value.data, host->value.len,
                             &name, &len))
    {
        /* an IP address, a single label: a bucket under no domain */
        return NGX_DECLINED;
    }

    if (ngx_http_zarr_host_known(r, zlcf, name, len)) {
        return NGX_DECLINED;
    }

    size = ZARR_S3OP_BUF_SIZE(r->unparsed_uri.len, 0) + 16;

    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = zarr_s3op_classify_unknown_host(req, buf, size, &vop);

    if (rc != ZARR_S3OP_OK) {
        /* the same path and query passed zarr_s3op_classify() */
        return NGX_DECLINED;
    }

    switch (vop.op) {

    case ZARR_S3OP_PUT_OBJECT:
    case ZARR_S3OP_COPY_OBJECT:
    case ZARR_S3OP_CREATE_MPU:
    case ZARR_S3OP_UPLOAD_PART:
    case ZARR_S3OP_UPLOAD_PART_COPY:
    case ZARR_S3OP_COMPLETE_MPU:
    case ZARR_S3OP_ABORT_MPU:
    case ZARR_S3OP_DELETE_OBJECT:
        ambiguous = ngx_http_zarr_zarr_key(zlcf, vop.key, vop.key_len);
        break;

    case ZARR_S3OP_DELETE_OBJECTS:
    case ZARR_S3OP_POST_OBJECT:
        /*
         * otherwise the gateway reads the body itself (DeleteObjects'
         * keys, the form's key field), which names the same keys in
         * either reading
         */
        ambiguous = (op->op == ZARR_S3OP_SERVICE);
        break;

    default:
        ambiguous = 0;
        break;
    }

    if (!ambiguous) {
        return NGX_DECLINED;
    }

    h.data = (u_char *) name;
    h.len = len;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "zarr: write refused: Host \"%V\" may name a bucket "
                  "under a domain that zarr_virtual_host_suffix does not "
                  "give", &h);

    ctx->result = NGX_HTTP_ZARR_RESULT_REJECTED;

    return ngx_http_zarr_send_error(r, NGX_HTTP_BAD_REQUEST,
                                    "InvalidRequest",
                                    "the Host header may name a bucket "
                                    "(virtual-hosted style) under a domain "
                                    "this gateway does not know: use its "
                                    "server name, an IP address, or a "
                                    "domain given by "
                                    "zarr_virtual_host_suffix");
}


/* the suffix, a name under it, or the server's name */

static ngx_int_t
ngx_http_zarr_host_known(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, const char *name, size_t len)
{
    size_t                       slen;
    u_char                      *s;
    const char                  *bucket;
    ngx_http_core_srv_conf_t    *cscf;

    if (zlcf->virtual_host_suffix.len) {
        if (zarr_s3op_host_bucket(name, len,
                                  (char *) zlcf->virtual_host_suffix.data,
                                  zlcf->virtual_host_suffix.len, &bucket,
                                  &slen)
            != 0)
        {
            return 1;
        }

        s = zlcf->virtual_host_suffix.data;
        slen = zlcf->virtual_host_suffix.len;

        if (slen && s[0] == '.') {
            s++;
            slen--;
        }

        if (slen && s[slen - 1] == '.') {
            slen--;
        }

        if (slen == len && ngx_strncasecmp(s, (u_char *) name, len) == 0) {
            return 1;
        }
    }

    /*
     * the server's name ($server_name): the server_names array itself is
     * freed with the configuration's temporary pool
     */

    cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);

    s = cscf->server_name.data;
    slen = cscf->server_name.len;

    /* an exact name only: not ".example.org", "*.", ".*", "~regex" */

    if (slen == 0 || s[0] == '.' || s[0] == '*' || s[0] == '~'
        || s[slen - 1] == '*')
    {
        return 0;
    }

    return slen == len && ngx_strncasecmp(s, (u_char *) name, len) == 0;
}


/* a key under zarr_checksum_prefix, or one zarr_key_split() takes */

static ngx_int_t
ngx_http_zarr_zarr_key(ngx_http_zarr_loc_conf_t *zlcf, const char *key,
    size_t len)
{
    zarr_key_t  zk;

    if (len >= zlcf->checksum_prefix.len
        && ngx_strncmp(key, zlcf->checksum_prefix.data,
                       zlcf->checksum_prefix.len) == 0)
    {
        return 1;
    }

    return zarr_key_split(key, len, (char *) zlcf->prefix.data,
                          zlcf->prefix.len, &zk)
           != ZARR_PATH_NOT_ZARR;
}
