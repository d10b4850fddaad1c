
/*
 * ngx_http_zarr_module: types shared by the module's files.
 *
 *   ngx_http_zarr_module.c   directives, configuration, variables, set-up
 *   ngx_http_zarr_handler.c  precontent phase: classify, check, lock
 *   ngx_http_zarr_filter.c   header and body filters: hold 2xx responses
 *                            until the tree update is committed
 *   ngx_http_zarr_commit.c   the worker's group commits and resolver, run
 *                            in the thread pool
 *   ngx_http_zarr_api.c      the JSON admin API (zarr_api)
 *   ngx_http_zarr_auth.c     signature verification and credential
 *                            sources (zarr_credentials)
 */


#ifndef _NGX_HTTP_ZARR_MODULE_H_INCLUDED_
#define _NGX_HTTP_ZARR_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "zarr_auth.h"
#include "zarr_gate.h"
#include "zarr_path.h"
#include "zarr_recover.h"
#include "zarr_s3.h"
#include "zarr_s3op.h"
#include "zarr_s3xml.h"
#include "zarr_tree.h"


/* r->buffered bit while a response waits for its commit */
#define NGX_HTTP_ZARR_BUFFERED      0x08

/* the most a DeleteObjects body or a held response body may take */
#define NGX_HTTP_ZARR_BODY_MAX      (4 * 1024 * 1024)


/* a credential lookup failed (the RGW admin API is down): 503 */
#define NGX_HTTP_ZARR_AUTH_UNAVAILABLE  (ZARR_AUTH_NOMEM + 1)


/* $zarr_result */
typedef enum {
    NGX_HTTP_ZARR_RESULT_NONE = 0,
    NGX_HTTP_ZARR_RESULT_OK,
    NGX_HTTP_ZARR_RESULT_CONFLICT,
    NGX_HTTP_ZARR_RESULT_REJECTED,
    NGX_HTTP_ZARR_RESULT_BACKEND_ERROR
} ngx_http_zarr_result_e;


typedef enum {
    NGX_HTTP_ZARR_JOB_DURABLE = 0,     /* the tree records new batches */
    NGX_HTTP_ZARR_JOB_FINISH           /* the tree takes a 2xx's effect */
} ngx_http_zarr_job_kind_e;


typedef struct ngx_http_zarr_job_s  ngx_http_zarr_job_t;

/* called in the worker when the job's commit is done (job->rc) */
typedef void (*ngx_http_zarr_job_done_pt)(ngx_http_zarr_job_t *job);

/* a part of the worker that uses the store: may it be closed? */
typedef ngx_uint_t (*ngx_http_zarr_busy_pt)(void);


typedef struct {
    ngx_str_t                   store_path;
    size_t                      store_size;
    ngx_str_t                   thread_pool_name;
    ngx_thread_pool_t          *thread_pool;
    ngx_str_t                   backend;
    ngx_str_t                   credentials;
    ngx_str_t                   access_key;
    ngx_str_t                   secret_key;
    ngx_str_t                   region;
    ngx_flag_t                  enabled;       /* some zarr_gateway on */
    ngx_msec_t                  mirror_delay;

    /* zarr_credentials, in order; the RGW cache's shared zone */
    ngx_array_t                *cred_sources;
    ngx_shm_zone_t             *cred_zone;
} ngx_http_zarr_main_conf_t;


typedef struct ngx_http_zarr_auth_s  ngx_http_zarr_auth_t;

typedef void (*ngx_http_zarr_auth_done_pt)(ngx_http_request_t *r,
    ngx_http_zarr_auth_t *au);

/* a request's signature check (ngx_http_zarr_auth.c) */
struct ngx_http_zarr_auth_s {
    zarr_auth_request_t         req;
    zarr_auth_t                 a;
    zarr_auth_rc_e              rc;            /* valid once checked */
    ngx_str_t                   identity;      /* the verified owner */

    /* a credential lookup this request waits for, and its result */
    ngx_queue_t                 queue;
    ngx_http_request_t         *r;
    ngx_http_zarr_auth_done_pt  done;
    ngx_str_t                   secret;
    ngx_str_t                   owner;

    unsigned                    built:1;
    unsigned                    parsed:1;
    unsigned                    waiting:1;
    unsigned                    looked_up:1;   /* secret/owner are it */
    unsigned                    found:1;
    unsigned                    unavailable:1; /* the lookup failed */
    unsigned                    cleanup_set:1;
};


/* zarr_snapshot_read */
#define NGX_HTTP_ZARR_SNAPSHOT_AUTHENTICATED  1
#define NGX_HTTP_ZARR_SNAPSHOT_PUBLIC         2


typedef struct {
    ngx_flag_t                  gateway;
    ngx_str_t                   prefix;
    ngx_str_t                   checksum_prefix;
    ngx_str_t                   snapshot_prefix;
    ngx_uint_t                  snapshot_read;
    ngx_str_t                   virtual_host_suffix;  /* "": none */
    ngx_http_complex_value_t   *batch_owner;
    ngx_flag_t                  batch_owner_set;   /* not the default */
    ngx_msec_t                  batch_timeout;
    ngx_uint_t                  conflict_log_level;
} ngx_http_zarr_loc_conf_t;


/* a zarr a request touches, and its keys' intents (DeleteObjects: many) */
typedef struct {
    ngx_uint_t                  op;            /* zarr_s3op_e */
    ngx_str_t                   bucket;
    ngx_str_t                   key;
    ngx_str_t                   zarr_id;       /* of the first zarr */
    ngx_str_t                   owner;
    ngx_str_t                   batch;         /* $zarr_batch */
    ngx_uint_t                  result;        /* $zarr_result */
    ngx_uint_t                  refused;       /* zarr_path_rc_t */

    /* DeleteObjects: the requested keys, and which are zarr members */
    zarr_s3xml_result_t        *delete_req;

    /* the begin that waits for the signature check or the body */
    ngx_http_zarr_auth_t        auth;
    zarr_key_t                 *keys;
    ngx_uint_t                  nkeys;
    int                         mut_op;
    ngx_int_t                   admit_rc;      /* sending a refusal */

    ngx_http_zarr_job_t        *job;           /* begun, not finished */
    zarr_begin_t                begun;         /* copy of the begin's out */

    /* the begin found a key busy (ZARR_ERR_BUSY): it goes again later */
    ngx_event_t                 retry;
    ngx_msec_t                  busy_since;
    ngx_msec_t                  busy_delay;

    /* the held response */
    ngx_chain_t                *held;
    ngx_chain_t               **held_last;
    size_t                      held_size;
    ngx_uint_t                  status;
    ngx_str_t                   etag;
    ngx_str_t                   version_id;

    unsigned                    tracked:1;     /* mutates a zarr */
    unsigned                    waiting:1;     /* a job is under way */
    unsigned                    begun_ok:1;
    unsigned                    conflict:1;
    unsigned                    holding:1;
    unsigned                    released:1;
    unsigned                    finished:1;    /* finish enqueued */
    unsigned                    body_read:1;
    unsigned                    cleanup_set:1;
    unsigned                    commit_failed:1;
    unsigned                    versioned:1;   /* a version id, an append */
    unsigned                    retrying:1;    /* the job waits on retry */
    unsigned                    busy:1;        /* ...and waited too long */
    unsigned                    recovering:1;  /* the zarr is rebuilt */
    unsigned                    admitted:1;    /* verified, or fallback */
    unsigned                    admit_wait:1;  /* a lookup or the body */
    unsigned                    snapshot:2;    /* a snapshot read */
} ngx_http_zarr_ctx_t;


/*
 * One begin or finish, queued for the next group commit.  Allocated with
 * malloc, owned by the worker's committer: it outlives its request when
 * the client goes away (r is then NULL).
 */
struct ngx_http_zarr_job_s {
    ngx_queue_t                 queue;
    ngx_http_zarr_job_kind_e    kind;
    ngx_http_request_t         *r;
    ngx_http_zarr_job_done_pt   done;          /* set by who posts it */

    /* the HEADs of a finish, in a task of their own before its commit */
    ngx_thread_task_t           htask;

    /* durable: the batch ids recorded, one per zarr of the begin */
    uint64_t                   *ids;

    zarr_begin_t                begin;
    zarr_finish_t               finish;
    zarr_zref_t                *zarrs;
    zarr_intent_t              *intents;
    zarr_mutation_t            *mutations;

    /*
     * finish: HEAD every mutation's key before the commit and apply
     * what the backend holds (copy, complete, deletes of versions)
     */
    unsigned                    head:1;
    unsigned                    headed:1;

    /* malloc()ed strings the mutations point to (ETags, version ids) */
    char                       *owned;
    zarr_buf_t                  heads;

    /* strings the arrays point into */
    zarr_buf_t                  strings;

    int                         rc;            /* of the whole commit */
    zarr_err_t                  err;
};


extern ngx_module_t  ngx_http_zarr_module;


/* ngx_http_zarr_handler.c */
ngx_int_t ngx_http_zarr_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_zarr_retry_after(ngx_http_request_t *r, uint64_t seconds);
ngx_int_t ngx_http_zarr_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message);
ngx_table_elt_t *ngx_http_zarr_find_header(ngx_list_t *headers,
    const char *name, size_t len);


/* ngx_http_zarr_body.c */
typedef ngx_int_t (*ngx_http_zarr_body_refuse_pt)(ngx_http_request_t *r);

ngx_int_t ngx_http_zarr_body_init(ngx_conf_t *cf);
ngx_int_t ngx_http_zarr_body_read(ngx_http_request_t *r, off_t max,
    ngx_http_client_body_handler_pt post_handler,
    ngx_http_zarr_body_refuse_pt refuse);

/* ngx_http_zarr_vhost.c */
void ngx_http_zarr_host_request(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, zarr_s3op_request_t *req);
ngx_int_t ngx_http_zarr_host_check(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx,
    const zarr_s3op_request_t *req, const zarr_s3op_t *op);

/* ngx_http_zarr_post.c */
ngx_int_t ngx_http_zarr_post_object(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx);

/* ngx_http_zarr_filter.c */
ngx_int_t ngx_http_zarr_filter_init(ngx_conf_t *cf);

/* ngx_http_zarr_mirror.c */
ngx_int_t ngx_http_zarr_mirror_init(ngx_cycle_t *cycle, zarr_store_t *store,
    const zarr_s3_conf_t *conf);
ngx_uint_t ngx_http_zarr_mirror_busy(void);
void ngx_http_zarr_mirror_exit(void);

/* ngx_http_zarr_stats.c */
ngx_int_t ngx_http_zarr_stats_add(ngx_conf_t *cf);
void ngx_http_zarr_stats_request(ngx_uint_t op, ngx_uint_t result);
void ngx_http_zarr_stats_mirror(ngx_uint_t puts, ngx_uint_t deletes,
    ngx_uint_t failed);
void ngx_http_zarr_stats_resolved(ngx_uint_t resolved, ngx_uint_t failed);
void ngx_http_zarr_stats_recovered(void);
void ngx_http_zarr_stats_commit(ngx_uint_t us);
void ngx_http_zarr_stats_auth(ngx_uint_t reason);
void ngx_http_zarr_stats_store(zarr_store_t *store);
ngx_int_t ngx_http_zarr_metrics_handler(ngx_http_request_t *r);

/* ngx_http_zarr_stats.c: the shared counters, for the admin API */
typedef struct {
    uint64_t                    mutations;     /* zarr mutations, ok */
    uint64_t                    conflicts;
    uint64_t                    backend_errors;
    uint64_t                    mirror_puts;
    uint64_t                    mirror_deletes;
    uint64_t                    mirror_errors;
    uint64_t                    resolved;
    uint64_t                    resolve_errors;
    uint64_t                    commits;
} ngx_http_zarr_counters_t;

ngx_int_t ngx_http_zarr_stats_get(ngx_http_zarr_counters_t *c);

/* ngx_http_zarr_module.c */
ngx_int_t ngx_http_zarr_conf_read_file(ngx_conf_t *cf, ngx_str_t *name,
    off_t max, const char *what, ngx_str_t *out);

/* ngx_http_zarr_auth.c */
char *ngx_http_zarr_credentials_source(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_zarr_auth_init_conf(ngx_conf_t *cf);
ngx_int_t ngx_http_zarr_auth_init_process(ngx_cycle_t *cycle);
void ngx_http_zarr_auth_exit_process(void);
ngx_uint_t ngx_http_zarr_auth_enabled(ngx_http_request_t *r);
ngx_int_t ngx_http_zarr_auth(ngx_http_request_t *r, ngx_http_zarr_auth_t *au,
    ngx_http_zarr_auth_done_pt done);
void ngx_http_zarr_auth_log(ngx_http_request_t *r, ngx_http_zarr_auth_t *au);

/* ngx_http_zarr_api.c */
ngx_int_t ngx_http_zarr_api_handler(ngx_http_request_t *r);
ngx_uint_t ngx_http_zarr_api_busy(void);
ngx_int_t ngx_http_zarr_api_recover_init(ngx_cycle_t *cycle);

/* ngx_http_zarr_commit.c */
ngx_int_t ngx_http_zarr_commit_init(ngx_cycle_t *cycle);
void ngx_http_zarr_commit_exit(ngx_cycle_t *cycle);
ngx_http_zarr_job_t *ngx_http_zarr_job_create(ngx_http_zarr_job_kind_e kind);
void ngx_http_zarr_job_free(ngx_http_zarr_job_t *job);
ngx_int_t ngx_http_zarr_job_post(ngx_http_zarr_job_t *job);
ngx_int_t ngx_http_zarr_job_head(ngx_http_zarr_job_t *job);
void ngx_http_zarr_job_release(ngx_http_zarr_job_t *job, int unknown);
ngx_int_t ngx_http_zarr_finish_orphan(ngx_http_zarr_ctx_t *ctx,
    int unknown);
void ngx_http_zarr_finish_prepare(ngx_http_zarr_job_t *job);
void ngx_http_zarr_store_user(ngx_http_zarr_busy_pt busy);
const zarr_s3_conf_t *ngx_http_zarr_s3_conf(void);
uint64_t ngx_http_zarr_now_ms(void);
zarr_store_t *ngx_http_zarr_get_store(void);

/* ngx_http_zarr_snapshot.c */
ngx_int_t ngx_http_zarr_snapshot_request(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx,
    ngx_uint_t op);
ngx_int_t ngx_http_zarr_snapshot_resume(ngx_http_request_t *r,
    ngx_http_zarr_loc_conf_t *zlcf, ngx_http_zarr_ctx_t *ctx);
ngx_int_t ngx_http_zarr_snapshot_held(ngx_http_request_t *r,
    ngx_http_zarr_ctx_t *ctx, zarr_key_t *zk, const char *version,
    size_t version_len);
const zarr_proc_t *ngx_http_zarr_proc(void);
int ngx_http_zarr_proc_alive(const zarr_proc_t *p);


#endif /* _NGX_HTTP_ZARR_MODULE_H_INCLUDED_ */
