
/*
 * Signature verification at the gateway (DESIGN 4b).
 *
 * Credential sources (zarr_credentials), tried in the order given:
 *   file=PATH   "ACCESS_KEY SECRET [OWNER]" lines, read at configuration
 *               (so re-read by "nginx -s reload"; "nginx -t" names a
 *               malformed line), kept sorted in the cycle's pool;
 *   rgw         RGW's admin API (GET /admin/user?access-key=K) called with
 *               the gateway's credentials in the thread pool; answers,
 *               found or not, cached in a shared zone across workers for
 *               valid= (LRU, bounded by the zone's size).  One lookup per
 *               key and worker at a time: later requests wait for it.
 * Signing keys are cached per worker (zarr_auth_cache_t).
 */


#include "ngx_http_zarr_module.h"


#define NGX_HTTP_ZARR_CRED_FILE        0
#define NGX_HTTP_ZARR_CRED_RGW         1

#define NGX_HTTP_ZARR_CRED_ZONE_SIZE   (1024 * 1024)
#define NGX_HTTP_ZARR_CRED_FILE_MAX    (16 * 1024 * 1024)
#define NGX_HTTP_ZARR_KEY_CACHE        64
#define NGX_HTTP_ZARR_AUTH_HEADERS_MAX 200


typedef struct {
    ngx_str_t                   key;
    ngx_str_t                   secret;
    ngx_str_t                   owner;
} ngx_http_zarr_cred_t;


typedef struct {
    ngx_uint_t                  type;
    ngx_str_t                   path;
    ngx_array_t                 creds;         /* sorted by key */
    ngx_msec_t                  valid;
} ngx_http_zarr_cred_source_t;


/* the RGW answers cached in shared memory */
typedef struct {
    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 lru;
} ngx_http_zarr_cred_sh_t;


typedef struct {
    ngx_rbtree_node_t           node;          /* key: crc32 of the key */
    ngx_queue_t                 queue;
    uint64_t                    expires_ms;
    u_short                     key_len;
    u_short                     secret_len;
    u_short                     owner_len;
    u_char                      found;
    u_char                      data[1];
} ngx_http_zarr_cred_node_t;


/* one RGW lookup under way in this worker, and who waits for it */
typedef struct {
    ngx_thread_task_t           task;
    ngx_queue_t                 queue;         /* in the pending list */
    ngx_queue_t                 waiters;
    ngx_msec_t                  valid;

    /* the thread's input and output */
    zarr_s3_conf_t              s3conf;
    char                        key[ZARR_AUTH_ACCESS_KEY_MAX + 1];
    char                        secret[ZARR_AUTH_SECRET_MAX + 1];
    char                        owner[ZARR_AUTH_OWNER_MAX + 1];
    int                         rc;            /* 0, 1 not found, -1 */
    char                        err[256];
} ngx_http_zarr_lookup_t;


static ngx_int_t ngx_http_zarr_cred_file(ngx_conf_t *cf,
    ngx_http_zarr_cred_source_t *src);
static int ngx_libc_cdecl ngx_http_zarr_cred_cmp(const void *one,
    const void *two);
static ngx_http_zarr_cred_t *ngx_http_zarr_cred_find(ngx_array_t *creds,
    u_char *key, size_t len);
static ngx_int_t ngx_http_zarr_cred_zone_init(ngx_shm_zone_t *zone,
    void *data);
static void ngx_http_zarr_cred_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_http_zarr_cred_cache_get(ngx_http_request_t *r,
    ngx_http_zarr_auth_t *au);
static void ngx_http_zarr_cred_cache_put(ngx_http_zarr_lookup_t *lk);
static ngx_int_t ngx_http_zarr_auth_build(ngx_http_request_t *r,
    ngx_http_zarr_auth_t *au);
static ngx_int_t ngx_http_zarr_auth_lookup(ngx_http_request_t *r,
    ngx_http_zarr_auth_t *au, ngx_http_zarr_cred_source_t *src);
static void ngx_http_zarr_auth_cleanup(void *data);
static void ngx_http_zarr_lookup_thread(void *data, ngx_log_t *log);
static void ngx_http_zarr_lookup_event(ngx_event_t *ev);
static ngx_int_t ngx_http_zarr_auth_verify(ngx_http_request_t *r,
    ngx_http_zarr_auth_t *au, ngx_str_t *secret, ngx_str_t *owner);


static zarr_auth_cache_t  *ngx_http_zarr_key_cache;
static ngx_queue_t         ngx_http_zarr_lookups;


/* zarr_credentials file=PATH | rgw [valid=time] */

char *
ngx_http_zarr_credentials_source(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_zarr_main_conf_t *zmcf = conf;

    ngx_str_t                    *value, name, s;
    ngx_uint_t                    i;
    ngx_http_zarr_cred_source_t  *src;

    value = cf->args->elts;

    if (zmcf->cred_sources == NULL) {
        zmcf->cred_sources = ngx_array_create(cf->pool, 2,
                                       sizeof(ngx_http_zarr_cred_source_t));
        if (zmcf->cred_sources == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    src = ngx_array_push(zmcf->cred_sources);
    if (src == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(src, sizeof(ngx_http_zarr_cred_source_t));
    src->valid = 60000;

    if (value[1].len > 5 && ngx_strncmp(value[1].data, "file=", 5) == 0) {
        src->type = NGX_HTTP_ZARR_CRED_FILE;
        src->path.data = value[1].data + 5;
        src->path.len = value[1].len - 5;

        if (ngx_conf_full_name(cf->cycle, &src->path, 1) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        if (cf->args->nelts > 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\": valid= is for "
                               "\"rgw\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        if (ngx_http_zarr_cred_file(cf, src) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (value[1].len != 3 || ngx_strncmp(value[1].data, "rgw", 3) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid credential source \"%V\": use "
                           "file=PATH or rgw", &value[1]);
        return NGX_CONF_ERROR;
    }

    src->type = NGX_HTTP_ZARR_CRED_RGW;

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "valid=", 6) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        s.data = value[i].data + 6;
        s.len = value[i].len - 6;

        src->valid = ngx_parse_time(&s, 0);
        if (src->valid == (ngx_msec_t) NGX_ERROR || src->valid == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    if (zmcf->cred_zone == NULL) {
        ngx_str_set(&name, "ngx_http_zarr_credentials");

        zmcf->cred_zone = ngx_shared_memory_add(cf, &name,
                                                NGX_HTTP_ZARR_CRED_ZONE_SIZE,
                                                &ngx_http_zarr_module);
        if (zmcf->cred_zone == NULL) {
            return NGX_CONF_ERROR;
        }

        zmcf->cred_zone->init = ngx_http_zarr_cred_zone_init;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_zarr_cred_file(ngx_conf_t *cf, ngx_http_zarr_cred_source_t *src)
{
    u_char                *p, *last, *eol;
    ssize_t                n;
    ngx_str_t              text;
    ngx_uint_t             line;
    const char            *err;
    zarr_auth_cred_t       c;
    ngx_http_zarr_cred_t  *cr, *prev;

    if (ngx_http_zarr_conf_read_file(cf, &src->path,
                                     NGX_HTTP_ZARR_CRED_FILE_MAX,
                                     "zarr_credentials file", &text)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = text.data;
    n = text.len;

    if (ngx_array_init(&src->creds, cf->pool, 16,
                       sizeof(ngx_http_zarr_cred_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    last = p + n;
    line = 0;

    while (p < last) {
        line++;

        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {
            eol = last;
        }

        n = eol - p;

        if (n && p[n - 1] == '\r') {
            n--;
        }

        switch (zarr_auth_keyfile_line((char *) p, n, &c, &err)) {

        case 1:
            break;

        case 0:
            cr = ngx_array_push(&src->creds);
            if (cr == NULL) {
                return NGX_ERROR;
            }

            cr->key.data = (u_char *) c.access_key;
            cr->key.len = c.access_key_len;
            cr->secret.data = (u_char *) c.secret;
            cr->secret.len = c.secret_len;

            if (c.owner_len) {
                cr->owner.data = (u_char *) c.owner;
                cr->owner.len = c.owner_len;

            } else {
                /* no OWNER column: the key is its own identity */
                cr->owner = cr->key;
            }

            break;

        default:
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "malformed line %ui in zarr_credentials file "
                               "\"%V\": %s", line, &src->path, err);
            return NGX_ERROR;
        }

        p = eol + 1;
    }

    ngx_qsort(src->creds.elts, src->creds.nelts,
              sizeof(ngx_http_zarr_cred_t), ngx_http_zarr_cred_cmp);

    cr = src->creds.elts;

    for (n = 1; n < (ssize_t) src->creds.nelts; n++) {
        prev = &cr[n - 1];

        if (prev->key.len == cr[n].key.len
            && ngx_memcmp(prev->key.data, cr[n].key.data, prev->key.len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "zarr_credentials file \"%V\" names access "
                               "key \"%V\" twice", &src->path, &cr[n].key);
            return NGX_ERROR;
        }
    }

    if (src->creds.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "zarr_credentials file \"%V\" has no keys: "
                           "every zarr write will be refused", &src->path);
    }

    return NGX_OK;
}


static int ngx_libc_cdecl
ngx_http_zarr_cred_cmp(const void *one, const void *two)
{
    const ngx_http_zarr_cred_t *a = one;
    const ngx_http_zarr_cred_t *b = two;

    ngx_int_t  rc;

    rc = ngx_memcmp(a->key.data, b->key.data, ngx_min(a->key.len,
                                                      b->key.len));
    if (rc) {
        return rc;
    }

    return (int) a->key.len - (int) b->key.len;
}


static ngx_http_zarr_cred_t *
ngx_http_zarr_cred_find(ngx_array_t *creds, u_char *key, size_t len)
{
    int                    rc;
    ngx_uint_t             lo, hi, mid;
    ngx_http_zarr_cred_t  *cr, k;

    cr = creds->elts;
    k.key.data = key;
    k.key.len = len;

    lo = 0;
    hi = creds->nelts;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        rc = ngx_http_zarr_cred_cmp(&k, &cr[mid]);

        if (rc == 0) {
            return &cr[mid];
        }

        if (rc < 0) {
            hi = mid;

        } else {
            lo = mid + 1;
        }
    }

    return NULL;
}


/*
 * After the configuration: without a credential source the gateway
 * cannot verify writers (the fallback of DESIGN 4b); say so.
 */

ngx_int_t
ngx_http_zarr_auth_init_conf(ngx_conf_t *cf)
{
    ngx_http_zarr_main_conf_t  *zmcf;

    zmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_zarr_module);

    if (zmcf->cred_sources == NULL) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "no \"zarr_credentials\": signatures of zarr "
                           "writes are not verified at the gateway; a "
                           "batch is taken once the request body is in "
                           "and dropped when the backend refuses the "
                           "request (see docs/security.md)");
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_zarr_cred_zone_init(ngx_shm_zone_t *zone, void *data)
{
    ngx_queue_t                *q;
    ngx_slab_pool_t            *shpool;
    ngx_http_zarr_cred_sh_t    *sh;
    ngx_http_zarr_cred_node_t  *cn;

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (data) {
        /* a reload: keys may have changed behind RGW too, start afresh */
        sh = data;

        ngx_shmtx_lock(&shpool->mutex);

        while (!ngx_queue_empty(&sh->lru)) {
            q = ngx_queue_last(&sh->lru);
            cn = ngx_queue_data(q, ngx_http_zarr_cred_node_t, queue);
            ngx_queue_remove(q);
            ngx_rbtree_delete(&sh->rbtree, &cn->node);
            ngx_slab_free_locked(shpool, cn);
        }

        ngx_shmtx_unlock(&shpool->mutex);

        zone->data = sh;
        return NGX_OK;
    }

    if (zone->shm.exists) {
        zone->data = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_alloc(shpool, sizeof(ngx_http_zarr_cred_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;

    ngx_rbtree_init(&sh->rbtree, &sh->sentinel,
                    ngx_http_zarr_cred_rbtree_insert);
    ngx_queue_init(&sh->lru);

    shpool->log_nomem = 0;

    zone->data = sh;

    return NGX_OK;
}


static void
ngx_http_zarr_cred_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t  **p;

    for ( ;; ) {
        p = (node->key < temp->key) ? &temp->left : &temp->right;

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/*
 * The cached RGW answer for au's key: NGX_OK (au->found, secret and
 * owner copied into the request's pool) or NGX_DECLINED (none).
 */

static ngx_int_t
ngx_http_zarr_cred_cache_get(ngx_http_request_t *r, ngx_http_zarr_auth_t *au)
{
    uint32_t                    hash;
    ngx_int_t                   rc;
    ngx_slab_pool_t            *shpool;
    ngx_rbtree_node_t          *node, *sentinel;
    ngx_http_zarr_cred_sh_t    *sh;
    ngx_http_zarr_cred_node_t  *cn;
    ngx_http_zarr_main_conf_t  *zmcf;

    zmcf = ngx_http_get_module_main_conf(r, ngx_http_zarr_module);
    shpool = (ngx_slab_pool_t *) zmcf->cred_zone->shm.addr;
    sh = zmcf->cred_zone->data;

    hash = ngx_crc32_short((u_char *) au->a.access_key,
                           au->a.access_key_len);

    rc = NGX_DECLINED;

    ngx_shmtx_lock(&shpool->mutex);

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;

    while (node != sentinel) {
        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        cn = (ngx_http_zarr_cred_node_t *) node;

        if (cn->key_len == au->a.access_key_len
            && ngx_memcmp(cn->data, au->a.access_key, cn->key_len) == 0)
        {
            if (cn->expires_ms <= ngx_http_zarr_now_ms()) {
                ngx_queue_remove(&cn->queue);
                ngx_rbtree_delete(&sh->rbtree, node);
                ngx_slab_free_locked(shpool, cn);
                break;
            }

            ngx_queue_remove(&cn->queue);
            ngx_queue_insert_head(&sh->lru, &cn->queue);

            au->found = cn->found;
            au->secret.len = cn->secret_len;
            au->owner.len = cn->owner_len;
            au->secret.data = ngx_pnalloc(r->pool,
                                          cn->secret_len + cn->owner_len);

            if (au->secret.data) {
                ngx_memcpy(au->secret.data, cn->data + cn->key_len,
                           cn->secret_len + cn->owner_len);
                au->owner.data = au->secret.data + cn->secret_len;
                rc = NGX_OK;
            }

            break;
        }

        node = node->right;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


static void
ngx_http_zarr_cred_cache_put(ngx_http_zarr_lookup_t *lk)
{
    size_t                      klen, slen, olen, size;
    uint32_t                    hash;
    ngx_uint_t                  i;
    ngx_queue_t                *q;
    ngx_slab_pool_t            *shpool;
    ngx_http_zarr_cred_sh_t    *sh;
    ngx_http_zarr_cred_node_t  *cn, *old;
    ngx_http_zarr_main_conf_t  *zmcf;

    zmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_zarr_module);
    if (zmcf == NULL || zmcf->cred_zone == NULL) {
        return;
    }

    shpool = (ngx_slab_pool_t *) zmcf->cred_zone->shm.addr;
    sh = zmcf->cred_zone->data;

    klen = ngx_strlen(lk->key);
    slen = lk->rc == 0 ? ngx_strlen(lk->secret) : 0;
    olen = lk->rc == 0 ? ngx_strlen(lk->owner) : 0;
    size = offsetof(ngx_http_zarr_cred_node_t, data) + klen + slen + olen;
    hash = ngx_crc32_short((u_char *) lk->key, klen);

    ngx_shmtx_lock(&shpool->mutex);

    /* the least recently used entries make room (as limit_req does) */

    for (i = 0; ; i++) {
        cn = ngx_slab_alloc_locked(shpool, size);
        if (cn || i == 8 || ngx_queue_empty(&sh->lru)) {
            break;
        }

        q = ngx_queue_last(&sh->lru);
        old = ngx_queue_data(q, ngx_http_zarr_cred_node_t, queue);
        ngx_queue_remove(q);
        ngx_rbtree_delete(&sh->rbtree, &old->node);
        ngx_slab_free_locked(shpool, old);
    }

    if (cn) {
        cn->node.key = hash;
        cn->expires_ms = ngx_http_zarr_now_ms() + lk->valid;
        cn->key_len = (u_short) klen;
        cn->secret_len = (u_short) slen;
        cn->owner_len = (u_short) olen;
        cn->found = lk->rc == 0;
        ngx_memcpy(cn->data, lk->key, klen);
        ngx_memcpy(cn->data + klen, lk->secret, slen);
        ngx_memcpy(cn->data + klen + slen, lk->owner, olen);

        ngx_rbtree_insert(&sh->rbtree, &cn->node);
        ngx_queue_insert_head(&sh->lru, &cn->queue);
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


ngx_int_t
ngx_http_zarr_auth_init_process(ngx_cycle_t *cycle)
{
    ngx_queue_init(&ngx_http_zarr_lookups);

    ngx_http_zarr_key_cache = zarr_auth_cache_create(NGX_HTTP_ZARR_KEY_CACHE);
    if (ngx_http_zarr_key_cache == NULL) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "zarr: no memory for the signing key cache");
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_zarr_auth_exit_process(void)
{
    if (ngx_http_zarr_key_cache) {
        zarr_auth_cache_destroy(ngx_http_zarr_key_cache);
        ngx_http_zarr_key_cache = NULL;
    }
}


ngx_uint_t
ngx_http_zarr_auth_enabled(ngx_http_request_t *r)
{
    ngx_http_zarr_main_conf_t  *zmcf;

    zmcf = ngx_http_get_module_main_conf(r, ngx_http_zarr_module);

    return zmcf->cred_sources != NULL;
}


/* the request as received, for zarr_auth_parse() and _verify() */

static ngx_int_t
ngx_http_zarr_auth_build(ngx_http_request_t *r, ngx_http_zarr_auth_t *au)
{
    ngx_uint_t           i, n;
    ngx_list_part_t     *part;
    ngx_table_elt_t     *h;
    zarr_auth_header_t  *hs;

    n = 0;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        n += part->nelts;
    }

    if (n > NGX_HTTP_ZARR_AUTH_HEADERS_MAX) {
        n = NGX_HTTP_ZARR_AUTH_HEADERS_MAX;
    }

    hs = ngx_palloc(r->pool, (n + 1) * sizeof(zarr_auth_header_t));
    if (hs == NULL) {
        return NGX_ERROR;
    }

    n = 0;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (n == NGX_HTTP_ZARR_AUTH_HEADERS_MAX) {
                break;
            }

            hs[n].name = (char *) h[i].key.data;
            hs[n].name_len = h[i].key.len;
            hs[n].value = (char *) h[i].value.data;
            hs[n].value_len = h[i].value.len;
            n++;
        }
    }

    au->req.method = (char *) r->method_name.data;
    au->req.method_len = r->method_name.len;
    au->req.uri = (char *) r->unparsed_uri.data;
    au->req.uri_len = r->unparsed_uri.len;
    au->req.headers = hs;
    au->req.nheaders = n;
    au->built = 1;

    return NGX_OK;
}


/*
 * Checks r's signature.  Returns NGX_OK with au->rc (ZARR_AUTH_OK and
 * au->identity, or why not; au->unavailable when a credential lookup
 * failed), NGX_AGAIN when a lookup runs (done(r, au) is called from the
 * event loop when it ends: then call this again), NGX_DECLINED when no
 * credential source is configured, NGX_ERROR.
 */

ngx_int_t
ngx_http_zarr_auth(ngx_http_request_t *r, ngx_http_zarr_auth_t *au,
    ngx_http_zarr_auth_done_pt done)
{
    ngx_str_t                     secret, owner;
    ngx_uint_t                    i;
    ngx_http_zarr_cred_t         *cr;
    ngx_http_zarr_main_conf_t    *zmcf;
    ngx_http_zarr_cred_source_t  *src;

    zmcf = ngx_http_get_module_main_conf(r, ngx_http_zarr_module);

    if (zmcf->cred_sources == NULL || ngx_http_zarr_key_cache == NULL) {
        return NGX_DECLINED;
    }

    if (!au->built && ngx_http_zarr_auth_build(r, au) != NGX_OK) {
        return NGX_ERROR;
    }

    au->req.now = ngx_time();

    if (!au->parsed) {
        au->parsed = 1;
        au->rc = zarr_auth_parse(&au->req, &au->a);

        if (au->rc != ZARR_AUTH_OK) {
            return NGX_OK;
        }
    }

    if (au->unavailable) {
        return NGX_OK;
    }

    src = zmcf->cred_sources->elts;

    for (i = 0; i < zmcf->cred_sources->nelts; i++) {

        if (src[i].type == NGX_HTTP_ZARR_CRED_FILE) {
            cr = ngx_http_zarr_cred_find(&src[i].creds,
                                         (u_char *) au->a.access_key,
                                         au->a.access_key_len);
            if (cr) {
                return ngx_http_zarr_auth_verify(r, au, &cr->secret,
                                                 &cr->owner);
            }

            continue;
        }

        /* rgw: a lookup's own result, the cache, or a lookup */

        if (!au->looked_up
            && ngx_http_zarr_cred_cache_get(r, au) != NGX_OK)
        {
            au->done = done;
            return ngx_http_zarr_auth_lookup(r, au, &src[i]);
        }

        au->looked_up = 1;

        if (au->found) {
            secret = au->secret;
            owner = au->owner;
            return ngx_http_zarr_auth_verify(r, au, &secret, &owner);
        }
    }

    au->rc = ZARR_AUTH_UNKNOWN_KEY;
    au->a.error = "the access key id does not exist in our records";

    return NGX_OK;
}


static ngx_int_t
ngx_http_zarr_auth_verify(ngx_http_request_t *r, ngx_http_zarr_auth_t *au,
    ngx_str_t *secret, ngx_str_t *owner)
{
    unsigned char  key[32];

    if (zarr_auth_cache_key(ngx_http_zarr_key_cache, (char *) secret->data,
                            secret->len, &au->a, key)
        != 0)
    {
        return NGX_ERROR;
    }

    au->rc = zarr_auth_verify(&au->req, &au->a, key);

    ngx_explicit_memzero(key, sizeof(key));

    if (au->rc == ZARR_AUTH_NOMEM) {
        return NGX_ERROR;
    }

    if (au->rc == ZARR_AUTH_OK) {
        au->identity = *owner;

        if (au->identity.len > ZARR_OWNER_MAX) {
            au->identity.len = ZARR_OWNER_MAX;
        }
    }

    return NGX_OK;
}


/* joins this worker's lookup of au's key, or starts one */

static ngx_int_t
ngx_http_zarr_auth_lookup(ngx_http_request_t *r, ngx_http_zarr_auth_t *au,
    ngx_http_zarr_cred_source_t *src)
{
    ngx_queue_t                *q;
    ngx_pool_cleanup_t         *cln;
    ngx_http_zarr_lookup_t     *lk;
    ngx_http_zarr_main_conf_t  *zmcf;

    zmcf = ngx_http_get_module_main_conf(r, ngx_http_zarr_module);

    if (!au->cleanup_set) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        cln->handler = ngx_http_zarr_auth_cleanup;
        cln->data = au;
        au->cleanup_set = 1;
    }

    au->r = r;

    for (q = ngx_queue_head(&ngx_http_zarr_lookups);
         q != ngx_queue_sentinel(&ngx_http_zarr_lookups);
         q = ngx_queue_next(q))
    {
        lk = ngx_queue_data(q, ngx_http_zarr_lookup_t, queue);

        if (ngx_strcmp(lk->key, au->a.access_key) == 0) {
            ngx_queue_insert_tail(&lk->waiters, &au->queue);
            au->waiting = 1;
            return NGX_AGAIN;
        }
    }

    lk = ngx_calloc(sizeof(ngx_http_zarr_lookup_t), r->connection->log);
    if (lk == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(lk->key, au->a.access_key, au->a.access_key_len + 1);
    lk->valid = src->valid;
    lk->s3conf.endpoint = (char *) zmcf->backend.data;
    lk->s3conf.access_key = (char *) zmcf->access_key.data;
    lk->s3conf.secret_key = (char *) zmcf->secret_key.data;
    lk->s3conf.region = zmcf->region.len ? (char *) zmcf->region.data : NULL;
    lk->s3conf.timeout_ms = 10000;
    lk->s3conf.max_response = 1024 * 1024;

    lk->task.ctx = lk;
    lk->task.handler = ngx_http_zarr_lookup_thread;
    lk->task.event.handler = ngx_http_zarr_lookup_event;
    lk->task.event.data = lk;
    lk->task.event.log = ngx_cycle->log;

    ngx_queue_init(&lk->waiters);

    if (ngx_thread_task_post(zmcf->thread_pool, &lk->task) != NGX_OK) {
        ngx_free(lk);
        return NGX_ERROR;
    }

    ngx_queue_insert_tail(&ngx_http_zarr_lookups, &lk->queue);
    ngx_queue_insert_tail(&lk->waiters, &au->queue);
    au->waiting = 1;

    return NGX_AGAIN;
}


/* the request went away while it waited for a lookup */

static void
ngx_http_zarr_auth_cleanup(void *data)
{
    ngx_http_zarr_auth_t *au = data;

    if (au->waiting) {
        ngx_queue_remove(&au->queue);
        au->waiting = 0;
    }
}


/* in the thread pool: GET /admin/user?access-key=K&format=json */

static void
ngx_http_zarr_lookup_thread(void *data, ngx_log_t *log)
{
    ngx_http_zarr_lookup_t *lk = data;

    int                  rc;
    zarr_s3_t           *s3;
    zarr_s3_request_t    req;
    zarr_s3_response_t   resp;
    zarr_sigv4_param_t   params[2];

    lk->rc = -1;

    s3 = zarr_s3_create(&lk->s3conf, lk->err, sizeof(lk->err));
    if (s3 == NULL) {
        return;
    }

    params[0].name = "access-key";
    params[0].name_len = 10;
    params[0].value = lk->key;
    params[0].value_len = strlen(lk->key);
    params[1].name = "format";
    params[1].name_len = 6;
    params[1].value = "json";
    params[1].value_len = 4;

    memset(&req, 0, sizeof(zarr_s3_request_t));
    req.method = "GET";
    req.bucket = "admin";
    req.key = "user";
    req.key_len = 4;
    req.params = params;
    req.nparams = 2;

    memset(&resp, 0, sizeof(zarr_s3_response_t));

    rc = zarr_s3_request(s3, &req, &resp);

    if (rc == ZARR_S3_OK && resp.status == 200) {
        lk->rc = zarr_auth_rgw_user(resp.body, resp.body_len, lk->key,
                                    lk->secret, sizeof(lk->secret),
                                    lk->owner, sizeof(lk->owner));
        if (lk->rc < 0) {
            snprintf(lk->err, sizeof(lk->err),
                     "malformed answer of the RGW admin API");
        }

    } else if (rc == ZARR_S3_OK
               && (resp.status == 404
                   || (resp.status == 403
                       && (strcmp(resp.error.code, "AccessDenied") == 0
                           || (resp.body
                               && strstr(resp.body,
                                         "\"Code\":\"AccessDenied\"")
                                  != NULL)))))
    {
        /*
         * no such access key: RGW 16 answers 403 AccessDenied to a
         * system user (404 NoSuchUser elsewhere); a gateway refused for
         * its own signature gets SignatureDoesNotMatch or
         * InvalidAccessKeyId, a failure
         */
        lk->rc = 1;

    } else if (resp.status) {
        snprintf(lk->err, sizeof(lk->err), "RGW admin API answered %ld %s",
                 resp.status, resp.error.code);

    } else {
        snprintf(lk->err, sizeof(lk->err), "RGW admin API: %.200s",
                 resp.error.message);
    }

    zarr_s3_response_free(&resp);
    zarr_s3_destroy(s3);
}


/* in the event loop: cache the answer, wake the waiters */

static void
ngx_http_zarr_lookup_event(ngx_event_t *ev)
{
    ngx_http_zarr_lookup_t *lk = ev->data;

    size_t                 slen, olen;
    ngx_queue_t           *q;
    ngx_connection_t      *c;
    ngx_http_request_t    *r;
    ngx_http_zarr_auth_t  *au;

    ngx_queue_remove(&lk->queue);

    if (lk->rc >= 0) {
        ngx_http_zarr_cred_cache_put(lk);

    } else {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "zarr: credential lookup of \"%s\" failed: %s",
                      lk->key, lk->err);
    }

    slen = ngx_strlen(lk->secret);
    olen = ngx_strlen(lk->owner);

    while (!ngx_queue_empty(&lk->waiters)) {
        q = ngx_queue_head(&lk->waiters);
        ngx_queue_remove(q);

        au = ngx_queue_data(q, ngx_http_zarr_auth_t, queue);
        r = au->r;
        c = r->connection;

        au->waiting = 0;
        au->looked_up = 1;
        au->found = lk->rc == 0;
        au->unavailable = lk->rc < 0;

        if (au->found) {
            au->secret.data = ngx_pnalloc(r->pool, slen + olen);

            if (au->secret.data == NULL) {
                au->found = 0;
                au->unavailable = 1;

            } else {
                ngx_memcpy(au->secret.data, lk->secret, slen);
                ngx_memcpy(au->secret.data + slen, lk->owner, olen);
                au->secret.len = slen;
                au->owner.data = au->secret.data + slen;
                au->owner.len = olen;
            }
        }

        ngx_http_set_log_request(c->log, r);

        au->done(r, au);

        ngx_http_run_posted_requests(c);
    }

    ngx_explicit_memzero(lk->secret, sizeof(lk->secret));
    ngx_free(lk);
}


/* one info line and the metric for a refused signature */

void
ngx_http_zarr_auth_log(ngx_http_request_t *r, ngx_http_zarr_auth_t *au)
{
    ngx_uint_t  reason;

    reason = au->unavailable ? NGX_HTTP_ZARR_AUTH_UNAVAILABLE : au->rc;

    ngx_http_zarr_stats_auth(reason);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "zarr: signature refused: reason=%s access_key=\"%s\" "
                  "method=%V: %s",
                  au->unavailable ? "unavailable" : zarr_auth_reason(au->rc),
                  au->a.access_key, &r->method_name,
                  au->unavailable ? "the credential lookup failed"
                                  : (au->a.error ? au->a.error : ""));
}
