
/*
 * ngx_http_zarr_module: directives, configuration, variables and set-up.
 */


#include "ngx_http_zarr_module.h"


static ngx_int_t ngx_http_zarr_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_zarr_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_zarr_access_key_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static void *ngx_http_zarr_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_zarr_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_zarr_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_zarr_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_zarr_store(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_zarr_credentials(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_zarr_backend(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_zarr_prefix(ngx_conf_t *cf, void *post, void *data);
static char *ngx_http_zarr_domain(ngx_conf_t *cf, void *post, void *data);
static char *ngx_http_zarr_log_level(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_zarr_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
/* zarr_api (ngx_http_zarr_api.c) */
static char *ngx_http_zarr_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_zarr_log_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_zarr_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_zarr_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_zarr_recover_startup(ngx_cycle_t *cycle,
    ngx_http_zarr_main_conf_t *zmcf, ngx_core_conf_t *ccf);
static void ngx_http_zarr_exit_master(ngx_cycle_t *cycle);


/* the boot id this master started in (DESIGN 4, lost intents) */
static char  ngx_http_zarr_boot[ZARR_BOOT_ID_MAX + 1];
static ngx_int_t ngx_http_zarr_init_process(ngx_cycle_t *cycle);
static void ngx_http_zarr_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_zarr_log_levels[] = {
    { ngx_string("emerg"), NGX_LOG_EMERG },
    { ngx_string("alert"), NGX_LOG_ALERT },
    { ngx_string("crit"), NGX_LOG_CRIT },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_null_string, 0 }
};


static ngx_conf_post_handler_pt  ngx_http_zarr_prefix_p =
    ngx_http_zarr_prefix;

static ngx_conf_post_handler_pt  ngx_http_zarr_domain_p =
    ngx_http_zarr_domain;


static ngx_command_t  ngx_http_zarr_commands[] = {

    { ngx_string("zarr_store"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_zarr_store,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("zarr_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_zarr_main_conf_t, thread_pool_name),
      NULL },

    { ngx_string("zarr_backend"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_zarr_backend,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("zarr_backend_credentials"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_zarr_credentials,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("zarr_credentials"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_zarr_credentials_source,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("zarr_mirror_delay"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_zarr_main_conf_t, mirror_delay),
      NULL },

    { ngx_string("zarr_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_zarr_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /* zarr_api: the JSON admin API (ngx_http_zarr_api.c) */
    { ngx_string("zarr_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_zarr_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("zarr_gateway"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_zarr_loc_conf_t, gateway),
      NULL },

    { ngx_string("zarr_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_zarr_loc_conf_t, prefix),
      &ngx_http_zarr_prefix_p },

    { ngx_string("zarr_checksum_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_zarr_loc_conf_t, checksum_prefix),
      &ngx_http_zarr_prefix_p },

    { ngx_string("zarr_virtual_host_suffix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_zarr_loc_conf_t, virtual_host_suffix),
      &ngx_http_zarr_domain_p },

    { ngx_string("zarr_batch_owner"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_zarr_loc_conf_t, batch_owner),
      NULL },

    { ngx_string("zarr_batch_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_zarr_loc_conf_t, batch_timeout),
      NULL },

    { ngx_string("zarr_conflict_log_level"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_zarr_log_level,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_zarr_loc_conf_t, conflict_log_level),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_zarr_module_ctx = {
    ngx_http_zarr_add_variables,           /* preconfiguration */
    ngx_http_zarr_init,                    /* postconfiguration */

    ngx_http_zarr_create_main_conf,        /* create main configuration */
    ngx_http_zarr_init_main_conf,          /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_zarr_create_loc_conf,         /* create location configuration */
    ngx_http_zarr_merge_loc_conf           /* merge location configuration */
};


ngx_module_t  ngx_http_zarr_module = {
    NGX_MODULE_V1,
    &ngx_http_zarr_module_ctx,             /* module context */
    ngx_http_zarr_commands,                /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_zarr_init_module,             /* init module */
    ngx_http_zarr_init_process,            /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_zarr_exit_process,            /* exit process */
    ngx_http_zarr_exit_master,             /* exit master */
    NGX_MODULE_V1_PADDING
};


enum {
    NGX_HTTP_ZARR_VAR_ID = 0,
    NGX_HTTP_ZARR_VAR_BATCH,
    NGX_HTTP_ZARR_VAR_OP,
    NGX_HTTP_ZARR_VAR_RESULT
};


static ngx_http_variable_t  ngx_http_zarr_vars[] = {

    { ngx_string("zarr_id"), NULL, ngx_http_zarr_variable,
      NGX_HTTP_ZARR_VAR_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("zarr_batch"), NULL, ngx_http_zarr_variable,
      NGX_HTTP_ZARR_VAR_BATCH, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("zarr_op"), NULL, ngx_http_zarr_variable,
      NGX_HTTP_ZARR_VAR_OP, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("zarr_result"), NULL, ngx_http_zarr_variable,
      NGX_HTTP_ZARR_VAR_RESULT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("zarr_access_key"), NULL,
      ngx_http_zarr_access_key_variable, 0, 0, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_zarr_results[] = {
    ngx_string(""),
    ngx_string("ok"),
    ngx_string("conflict"),
    ngx_string("rejected"),
    ngx_string("backend_error")
};


static ngx_int_t
ngx_http_zarr_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_zarr_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_zarr_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    const char           *name;
    ngx_str_t            *s, tmp;
    ngx_http_zarr_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_zarr_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case NGX_HTTP_ZARR_VAR_ID:
        s = &ctx->zarr_id;
        break;

    case NGX_HTTP_ZARR_VAR_BATCH:
        s = &ctx->batch;
        break;

    case NGX_HTTP_ZARR_VAR_OP:
        name = zarr_s3op_name(ctx->op);
        tmp.data = (u_char *) name;
        tmp.len = ngx_strlen(name);
        s = &tmp;
        break;

    default: /* NGX_HTTP_ZARR_VAR_RESULT */
        s = &ngx_http_zarr_results[ctx->result];
        break;
    }

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = s->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_zarr_access_key_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char       *buf;
    size_t        size, len;
    const char   *key;
    ngx_str_t     auth;

    if (r->headers_in.authorization) {
        auth = r->headers_in.authorization->value;

    } else {
        ngx_str_null(&auth);
    }

    size = ZARR_S3_ACCESS_KEY_MAX;

    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    if (zarr_s3_access_key((char *) auth.data, auth.len,
                           (char *) r->args.data, r->args.len,
                           (char *) buf, size, &key, &len)
        != 0
        || len == 0)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = (u_char *) key;

    return NGX_OK;
}


static void *
ngx_http_zarr_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_zarr_main_conf_t  *zmcf;

    zmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_zarr_main_conf_t));
    if (zmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     zmcf->store_path = { 0, NULL };
     *     zmcf->thread_pool_name = { 0, NULL };
     *     zmcf->backend = { 0, NULL };
     *     zmcf->credentials = { 0, NULL };
     *     zmcf->enabled = 0;
     */

    zmcf->store_size = NGX_CONF_UNSET_SIZE;
    zmcf->mirror_delay = NGX_CONF_UNSET_MSEC;

    return zmcf;
}


static char *
ngx_http_zarr_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_zarr_main_conf_t *zmcf = conf;

    ngx_conf_init_size_value(zmcf->store_size, (size_t) 4 << 30);
    ngx_conf_init_msec_value(zmcf->mirror_delay, 1000);

    if (zmcf->thread_pool_name.data == NULL) {
        ngx_str_set(&zmcf->thread_pool_name, "default");
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_zarr_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_zarr_loc_conf_t  *zlcf;

    zlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_zarr_loc_conf_t));
    if (zlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     zlcf->prefix = { 0, NULL };
     *     zlcf->checksum_prefix = { 0, NULL };
     *     zlcf->virtual_host_suffix = { 0, NULL };
     */

    zlcf->gateway = NGX_CONF_UNSET;
    zlcf->batch_owner = NGX_CONF_UNSET_PTR;
    zlcf->batch_owner_set = NGX_CONF_UNSET;
    zlcf->batch_timeout = NGX_CONF_UNSET_MSEC;
    zlcf->conflict_log_level = NGX_CONF_UNSET_UINT;

    return zlcf;
}


static char *
ngx_http_zarr_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_zarr_loc_conf_t *prev = parent;
    ngx_http_zarr_loc_conf_t *conf = child;

    ngx_http_complex_value_t          *cv;
    ngx_http_zarr_main_conf_t         *zmcf;
    ngx_http_compile_complex_value_t   ccv;

    ngx_conf_merge_value(conf->gateway, prev->gateway, 0);
    ngx_conf_merge_str_value(conf->prefix, prev->prefix, "zarr/");
    ngx_conf_merge_str_value(conf->checksum_prefix, prev->checksum_prefix,
                             "zarr-checksums/");
    ngx_conf_merge_str_value(conf->virtual_host_suffix,
                             prev->virtual_host_suffix, "");
    ngx_conf_merge_msec_value(conf->batch_timeout, prev->batch_timeout,
                              60000);
    ngx_conf_merge_uint_value(conf->conflict_log_level,
                              prev->conflict_log_level, NGX_LOG_WARN);
    if (conf->batch_owner != NGX_CONF_UNSET_PTR) {
        /* given here: it wins over the verified identity */
        conf->batch_owner_set = 1;
    }

    if (prev->batch_owner != NGX_CONF_UNSET_PTR
        && prev->batch_owner_set == NGX_CONF_UNSET)
    {
        prev->batch_owner_set = 1;
    }

    ngx_conf_merge_value(conf->batch_owner_set, prev->batch_owner_set, 0);
    ngx_conf_merge_ptr_value(conf->batch_owner, prev->batch_owner, NULL);

    if (conf->batch_owner == NULL) {
        cv = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
        if (cv == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = ngx_palloc(cf->pool, sizeof(ngx_str_t));
        if (ccv.value == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_str_set(ccv.value, "$zarr_access_key");
        ccv.complex_value = cv;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        conf->batch_owner = cv;
    }

    if (conf->prefix.len
        && conf->checksum_prefix.len >= conf->prefix.len
        && ngx_strncmp(conf->checksum_prefix.data, conf->prefix.data,
                       conf->prefix.len) == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zarr_checksum_prefix \"%V\" must not be under "
                           "zarr_prefix \"%V\"", &conf->checksum_prefix,
                           &conf->prefix);
        return NGX_CONF_ERROR;
    }

    if (conf->gateway) {
        zmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_zarr_module);
        zmcf->enabled = 1;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_zarr_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_zarr_metrics_handler;

    return NGX_CONF_OK;
}


/* zarr_api: the JSON admin API (ngx_http_zarr_api.c) */

static char *
ngx_http_zarr_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_zarr_api_handler;

    return NGX_CONF_OK;
}


/* counts every request the gateway classified, by operation and result */

static ngx_int_t
ngx_http_zarr_log_handler(ngx_http_request_t *r)
{
    ngx_http_zarr_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_zarr_module);

    if (ctx) {
        ngx_http_zarr_stats_request(ctx->op, ctx->result);
    }

    return NGX_OK;
}


static char *
ngx_http_zarr_log_level(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_zarr_loc_conf_t *zlcf = conf;

    ngx_str_t        *value;
    ngx_conf_enum_t  *e;

    if (zlcf->conflict_log_level != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (e = ngx_http_zarr_log_levels; e->name.len; e++) {
        if (e->name.len == value[1].len
            && ngx_strcmp(e->name.data, value[1].data) == 0)
        {
            zlcf->conflict_log_level = e->value;
            return NGX_CONF_OK;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid log level \"%V\" in "
                       "\"zarr_conflict_log_level\": use emerg, alert, "
                       "crit, error, warn, notice or info", &value[1]);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_zarr_prefix(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *prefix = data;

    if (prefix->len && prefix->data[0] == '/') {
        return "must not start with \"/\": it is a key prefix within a "
               "bucket";
    }

    if (prefix->len && prefix->data[prefix->len - 1] != '/') {
        return "must end with \"/\"";
    }

    return NGX_CONF_OK;
}


/* a DNS domain as a Host header may end with: no port, no path */

static char *
ngx_http_zarr_domain(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *domain = data;

    u_char      c;
    ngx_uint_t  i;

    if (domain->len == 0) {
        return "must not be empty";
    }

    for (i = 0; i < domain->len; i++) {
        c = domain->data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '.'))
        {
            return "must be a domain name (letters, digits, \"-\" and "
                   "\".\"), without a port";
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_zarr_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_zarr_main_conf_t *zmcf = conf;

    ssize_t     size;
    ngx_str_t  *value, s;

    if (zmcf->store_path.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    zmcf->store_path = value[1];

    if (ngx_conf_full_name(cf->cycle, &zmcf->store_path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "size=", 5) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        s.data = value[2].data + 5;
        s.len = value[2].len - 5;

        size = ngx_parse_size(&s);
        if (size == NGX_ERROR) {
            size = (ssize_t) ngx_parse_offset(&s);
        }

        if (size < 1024 * 1024) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid store size \"%V\": at least 1m",
                               &value[2]);
            return NGX_CONF_ERROR;
        }

        zmcf->store_size = size;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_zarr_backend(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_zarr_main_conf_t *zmcf = conf;

    char        err[256];
    ngx_str_t  *value;
    zarr_s3_t  *s3;
    zarr_s3_conf_t  c;

    if (zmcf->backend.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    zmcf->backend = value[1];

    /* the client checks the form of the URL: try it now */

    ngx_memzero(&c, sizeof(zarr_s3_conf_t));
    c.endpoint = (char *) value[1].data;
    c.access_key = "x";
    c.secret_key = "x";

    s3 = zarr_s3_create(&c, err, sizeof(err));
    if (s3 == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zarr_backend \"%V\": %s", &value[1], err);
        return NGX_CONF_ERROR;
    }

    zarr_s3_destroy(s3);

    return NGX_CONF_OK;
}


static char *
ngx_http_zarr_credentials(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_zarr_main_conf_t *zmcf = conf;

    u_char      *p, *last, *eol, *eq;
    size_t       n;
    ngx_str_t   *value, name, val, text;

    if (zmcf->credentials.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    zmcf->credentials = value[1];

    if (ngx_conf_full_name(cf->cycle, &zmcf->credentials, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_zarr_conf_read_file(cf, &zmcf->credentials, 65536,
                                     "credentials file", &text)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    p = text.data;
    n = text.len;
    last = p + n;
    *last = '\0';

    while (p < last) {
        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {
            eol = last;
        }

        name.data = p;
        eq = ngx_strlchr(p, eol, '=');
        p = eol + 1;

        if (name.data[0] == '#' || eq == NULL) {
            continue;
        }

        name.len = eq - name.data;
        val.data = eq + 1;
        val.len = eol - val.data;

        while (val.len && (val.data[val.len - 1] == '\r'
                           || val.data[val.len - 1] == ' '))
        {
            val.len--;
        }

        /* the values are used as C strings */
        val.data[val.len] = '\0';

        if (name.len == 10 && ngx_strncmp(name.data, "access_key", 10) == 0) {
            zmcf->access_key = val;

        } else if (name.len == 10
                   && ngx_strncmp(name.data, "secret_key", 10) == 0)
        {
            zmcf->secret_key = val;

        } else if (name.len == 6 && ngx_strncmp(name.data, "region", 6) == 0)
        {
            zmcf->region = val;
        }
    }

    if (zmcf->access_key.len == 0 || zmcf->secret_key.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "credentials file \"%V\" needs access_key= and "
                           "secret_key= lines", &zmcf->credentials);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Reads a file of at most max bytes named in the configuration into the
 * configuration's pool, NUL-terminated (zarr_backend_credentials,
 * zarr_credentials file=); what names it in the messages.
 */

ngx_int_t
ngx_http_zarr_conf_read_file(ngx_conf_t *cf, ngx_str_t *name, off_t max,
    const char *what, ngx_str_t *out)
{
    u_char           *p;
    ssize_t           n;
    ngx_file_t        file;
    ngx_file_info_t   fi;

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = *name;
    file.log = cf->log;

    file.fd = ngx_open_file(file.name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN,
                            0);
    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &file.name);
        return NGX_ERROR;
    }

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > max)
    {
        ngx_close_file(file.fd);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s \"%V\" is unreadable or larger than %O "
                           "bytes", what, &file.name, max);
        return NGX_ERROR;
    }

    p = ngx_pnalloc(cf->pool, ngx_file_size(&fi) + 1);
    if (p == NULL) {
        ngx_close_file(file.fd);
        return NGX_ERROR;
    }

    n = ngx_read_file(&file, p, ngx_file_size(&fi), 0);
    ngx_close_file(file.fd);

    if (n != ngx_file_size(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "cannot read %s \"%V\"",
                           what, &file.name);
        return NGX_ERROR;
    }

    p[n] = '\0';
    out->data = p;
    out->len = n;

    return NGX_OK;
}


static ngx_int_t
ngx_http_zarr_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;
    ngx_http_zarr_main_conf_t  *zmcf;

    zmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_zarr_module);

    if (!zmcf->enabled) {
        return NGX_OK;
    }

    if (zmcf->store_path.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"zarr_gateway on\" needs \"zarr_store\"");
        return NGX_ERROR;
    }

    if (zmcf->backend.data == NULL || zmcf->access_key.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"zarr_gateway on\" needs \"zarr_backend\" and "
                           "\"zarr_backend_credentials\": the gateway HEADs "
                           "objects itself");
        return NGX_ERROR;
    }

    zmcf->thread_pool = ngx_thread_pool_add(cf, &zmcf->thread_pool_name);
    if (zmcf->thread_pool == NULL) {
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_zarr_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_zarr_log_handler;

    if (ngx_http_zarr_stats_add(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_zarr_auth_init_conf(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_zarr_body_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_zarr_filter_init(cf);
}


/*
 * In the master, before the workers exist: the store directory must be
 * there and writable by the workers' user (as nginx makes its temporary
 * directories).  Runs for "nginx -t" too.
 */

static ngx_int_t
ngx_http_zarr_init_module(ngx_cycle_t *cycle)
{
    ngx_uint_t                  ok;
    ngx_file_info_t             fi;
    ngx_core_conf_t            *ccf;
    ngx_http_zarr_main_conf_t  *zmcf;

    zmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_zarr_module);

    if (zmcf == NULL || !zmcf->enabled) {
        return NGX_OK;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (ngx_create_dir(zmcf->store_path.data, 0700) == NGX_FILE_ERROR
        && ngx_errno != NGX_EEXIST)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "zarr_store: " ngx_create_dir_n " \"%V\" failed",
                      &zmcf->store_path);
        return NGX_ERROR;
    }

    if (geteuid() == 0 && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT) {
        if (chown((char *) zmcf->store_path.data, ccf->user, -1) == -1) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "zarr_store: chown(\"%V\", %d) failed",
                          &zmcf->store_path, ccf->user);
            return NGX_ERROR;
        }
    }

    if (ngx_file_info(zmcf->store_path.data, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "zarr_store: " ngx_file_info_n " \"%V\" failed",
                      &zmcf->store_path);
        return NGX_ERROR;
    }

    if (ccf->user == (ngx_uid_t) NGX_CONF_UNSET_UINT) {
        ok = (fi.st_uid == geteuid() && (fi.st_mode & S_IWUSR))
             || (fi.st_mode & S_IWOTH);

    } else {
        ok = (fi.st_uid == ccf->user && (fi.st_mode & S_IWUSR))
             || (fi.st_gid == ccf->group && (fi.st_mode & S_IWGRP))
             || (fi.st_mode & S_IWOTH)
             || ccf->user == 0;
    }

    if (!ngx_is_dir(&fi) || !ok) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "zarr_store \"%V\" is not a directory writable by "
                      "the worker user \"%s\"", &zmcf->store_path,
                      ccf->username ? ccf->username : "(current)");
        return NGX_ERROR;
    }

    /* once, at the first start (not on reload, not for nginx -t) */

    if (ngx_test_config || !ngx_is_init_cycle(cycle->old_cycle)) {
        return NGX_OK;
    }

    return ngx_http_zarr_recover_startup(cycle, zmcf, ccf);
}


/*
 * Lost intents (DESIGN 4, contract v2): decided and marked before any
 * worker runs; worker 0 then rebuilds the marked zarrs from listings.
 * Nothing here stops start-up but a tree that cannot be written.
 */

static ngx_int_t
ngx_http_zarr_recover_startup(ngx_cycle_t *cycle,
    ngx_http_zarr_main_conf_t *zmcf, ngx_core_conf_t *ccf)
{
    u_char          path[NGX_MAX_PATH];
    zarr_err_t      err;
    ngx_uint_t      i;
    zarr_recover_t  res;

    static const char  *files[] = { "data.mdb", "lock.mdb",
                                    ZARR_GATE_STATE };

    if (zarr_recover_boot_id(NULL, ngx_http_zarr_boot,
                             sizeof(ngx_http_zarr_boot))
        != 0)
    {
        /* no boot id: every start without a clean stop counts as lost */
        ngx_cpystrn((u_char *) ngx_http_zarr_boot, (u_char *) "unknown",
                    sizeof(ngx_http_zarr_boot));
    }

    if (zarr_recover_startup((char *) zmcf->store_path.data,
                             ngx_http_zarr_boot, zmcf->store_size, &res,
                             &err)
        != ZARR_OK)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "zarr_store \"%V\": %s", &zmcf->store_path, err.msg);
        return NGX_ERROR;
    }

    if (res.lost && res.marked) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "zarr: intents lost (%s): %uL zarrs with batches are "
                      "rebuilt from listings before they take writes%s%s",
                      res.reason, res.marked,
                      res.moved[0] ? "; the old intent store is kept as "
                                   : "", res.moved);

    } else if (res.marked) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "zarr: %uL zarrs with intents of an earlier version "
                      "are rebuilt from listings", res.marked);

    } else if (res.lost) {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "zarr: intent store reset (%s); no zarr had a batch",
                      res.reason);
    }

    /* the master may be root: the workers must own what it created */

    if (geteuid() == 0 && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT) {
        for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
            ngx_snprintf(path, sizeof(path), "%V/%s%Z", &zmcf->store_path,
                         files[i]);
            (void) chown((char *) path, ccf->user, -1);
        }
    }

    return NGX_OK;
}


static void
ngx_http_zarr_exit_master(ngx_cycle_t *cycle)
{
    zarr_err_t                  err;
    ngx_http_zarr_main_conf_t  *zmcf;

    zmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_zarr_module);

    if (zmcf == NULL || !zmcf->enabled || ngx_http_zarr_boot[0] == '\0') {
        return;
    }

    if (zarr_recover_clean_exit((char *) zmcf->store_path.data,
                                ngx_http_zarr_boot, &err)
        != ZARR_OK)
    {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "zarr: the stop is not recorded as clean: %s",
                      err.msg);
    }
}


static ngx_int_t
ngx_http_zarr_init_process(ngx_cycle_t *cycle)
{
    ngx_http_zarr_main_conf_t  *zmcf;

    zmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_zarr_module);

    if (zmcf == NULL || !zmcf->enabled) {
        return NGX_OK;
    }

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    if (ngx_http_zarr_auth_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_zarr_commit_init(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    /* they use the store too: it stays open while their tasks run */
    ngx_http_zarr_store_user(ngx_http_zarr_mirror_busy);
    ngx_http_zarr_store_user(ngx_http_zarr_api_busy);

    if (ngx_http_zarr_mirror_init(cycle, ngx_http_zarr_get_store(),
                                  ngx_http_zarr_s3_conf())
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* worker 0 rebuilds the zarrs whose intents were lost */
    return ngx_http_zarr_api_recover_init(cycle);
}


static void
ngx_http_zarr_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_zarr_mirror_exit();
    ngx_http_zarr_commit_exit(cycle);
    ngx_http_zarr_auth_exit_process();
}
