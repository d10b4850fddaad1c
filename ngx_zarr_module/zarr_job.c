
/*
 * Job records in the gate's environment: see zarr_job.h.
 */


#include <stdlib.h>
#include <string.h>

#include "zarr_job.h"
#include "zarr_tree_int.h"


#define ZARR_JOB_FIXED  offsetof(zarr_job_t, error)


static int zarr_job_txn(zarr_store_t *s, int rdonly, const zarr_zref_t *z,
    MDB_txn **txn, MDB_val *key, zarr_err_t *err);
static int zarr_job_read(zarr_store_t *s, MDB_txn *txn, MDB_val *key,
    zarr_job_t *job, zarr_err_t *err);
static int zarr_job_write(zarr_store_t *s, MDB_txn *txn, MDB_val *key,
    const zarr_job_t *job, zarr_err_t *err);
static void zarr_job_check(zarr_job_t *job, zarr_job_alive_pt alive,
    void *ctx);
static int zarr_job_end(zarr_store_t *s, MDB_txn *txn, MDB_val *key,
    int rc, zarr_err_t *err);


/*
 * Begins a transaction of the gate's and builds z's key in key->mv_data
 * (malloc()ed).  On failure nothing is left to free.
 */

static int
zarr_job_txn(zarr_store_t *s, int rdonly, const zarr_zref_t *z,
    MDB_txn **txn, MDB_val *key, zarr_err_t *err)
{
    int    mrc;
    char  *k;

    if (s->genv == NULL) {
        return zarr_tree_err(err, ZARR_ERR_STORE,
                             "the store is open without its gate");
    }

    k = malloc(z->bucket_len + 1 + z->zarr_id_len);
    if (k == NULL) {
        return zarr_tree_err(err, ZARR_ERR_NOMEM, "out of memory");
    }

    memcpy(k, z->bucket, z->bucket_len);
    k[z->bucket_len] = '\0';
    memcpy(k + z->bucket_len + 1, z->zarr_id, z->zarr_id_len);

    key->mv_data = k;
    key->mv_size = z->bucket_len + 1 + z->zarr_id_len;

    mrc = mdb_txn_begin(s->genv, NULL, rdonly ? MDB_RDONLY : 0, txn);
    if (mrc != 0) {
        free(k);
        return zarr_tree_mdb_err(s, err, mrc, "mdb_txn_begin() (jobs)");
    }

    return ZARR_OK;
}


/* commits a write that went well, else aborts; frees the key */

static int
zarr_job_end(zarr_store_t *s, MDB_txn *txn, MDB_val *key, int rc,
    zarr_err_t *err)
{
    int  mrc;

    free(key->mv_data);

    if (rc != ZARR_OK) {
        mdb_txn_abort(txn);
        return rc;
    }

    mrc = mdb_txn_commit(txn);
    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "mdb_txn_commit() (jobs)");
    }

    return ZARR_OK;
}


static int
zarr_job_read(zarr_store_t *s, MDB_txn *txn, MDB_val *key, zarr_job_t *job,
    zarr_err_t *err)
{
    int      mrc;
    size_t   n;
    MDB_val  v;

    mrc = mdb_get(txn, s->gjobs, key, &v);

    if (mrc == MDB_NOTFOUND) {
        return zarr_tree_err(err, ZARR_ERR_NOTFOUND, "no job");
    }

    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "mdb_get() (jobs)");
    }

    if (v.mv_size < ZARR_JOB_FIXED
        || v.mv_size - ZARR_JOB_FIXED >= ZARR_JOB_ERROR_MAX)
    {
        return zarr_tree_err(err, ZARR_ERR_STORE, "corrupt job record");
    }

    n = v.mv_size - ZARR_JOB_FIXED;

    memcpy(job, v.mv_data, ZARR_JOB_FIXED);
    memcpy(job->error, (char *) v.mv_data + ZARR_JOB_FIXED, n);
    job->error[n] = '\0';

    job->digest_before[ZARR_DIGEST_MAX - 1] = '\0';
    job->digest_after[ZARR_DIGEST_MAX - 1] = '\0';

    return ZARR_OK;
}


static int
zarr_job_write(zarr_store_t *s, MDB_txn *txn, MDB_val *key,
    const zarr_job_t *job, zarr_err_t *err)
{
    int      mrc;
    size_t   n;
    MDB_val  v;

    n = strnlen(job->error, ZARR_JOB_ERROR_MAX - 1);

    v.mv_size = ZARR_JOB_FIXED + n;
    v.mv_data = NULL;

    mrc = mdb_put(txn, s->gjobs, key, &v, MDB_RESERVE);
    if (mrc != 0) {
        return zarr_tree_mdb_err(s, err, mrc, "mdb_put() (jobs)");
    }

    memcpy(v.mv_data, job, ZARR_JOB_FIXED);
    memcpy((char *) v.mv_data + ZARR_JOB_FIXED, job->error, n);

    return ZARR_OK;
}


/* a running job whose process is gone: failed */

static void
zarr_job_check(zarr_job_t *job, zarr_job_alive_pt alive, void *ctx)
{
    if (job->state != ZARR_JOB_RUNNING || alive(ctx, &job->proc)) {
        return;
    }

    job->state = ZARR_JOB_FAILED;
    job->ended_ms = job->updated_ms;
    strcpy(job->error, ZARR_JOB_INTERRUPTED);
}


int
zarr_job_start(zarr_store_t *s, const zarr_zref_t *z,
    const zarr_proc_t *proc, uint64_t now_ms, zarr_job_alive_pt alive,
    void *ctx, zarr_job_t *job, zarr_job_t *prev, zarr_err_t *err)
{
    int       rc;
    MDB_txn  *txn;
    MDB_val   key;

    memset(prev, 0, sizeof(zarr_job_t));

    rc = zarr_job_txn(s, 0, z, &txn, &key, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    rc = zarr_job_read(s, txn, &key, prev, err);

    if (rc == ZARR_ERR_NOTFOUND) {
        memset(prev, 0, sizeof(zarr_job_t));

    } else if (rc != ZARR_OK) {
        return zarr_job_end(s, txn, &key, rc, err);

    } else {
        zarr_job_check(prev, alive, ctx);

        if (prev->state == ZARR_JOB_RUNNING) {
            *job = *prev;
            memset(prev, 0, sizeof(zarr_job_t));
            zarr_tree_err(err, ZARR_ERR_CONFLICT, "a job is running on "
                          "this zarr");
            return zarr_job_end(s, txn, &key, ZARR_ERR_CONFLICT,
                                err);
        }
    }

    /* zeroed, padding too: the record is written as it is in memory */
    memset(job, 0, sizeof(zarr_job_t));

    /* ids increase even across a new gate: from the clock, in us */
    job->id = now_ms * 1000;

    if (prev->id >= job->id) {
        job->id = prev->id + 1;
    }

    job->state = ZARR_JOB_RUNNING;
    job->proc = *proc;
    job->started_ms = now_ms;
    job->updated_ms = now_ms;

    rc = zarr_job_write(s, txn, &key, job, err);

    return zarr_job_end(s, txn, &key, rc, err);
}


int
zarr_job_get(zarr_store_t *s, const zarr_zref_t *z, zarr_job_alive_pt alive,
    void *ctx, zarr_job_t *job, zarr_err_t *err)
{
    int       rc;
    MDB_txn  *txn;
    MDB_val   key;

    rc = zarr_job_txn(s, 1, z, &txn, &key, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    rc = zarr_job_read(s, txn, &key, job, err);

    free(key.mv_data);
    mdb_txn_abort(txn);

    if (rc == ZARR_OK) {
        zarr_job_check(job, alive, ctx);
    }

    return rc;
}


int
zarr_job_update(zarr_store_t *s, const zarr_zref_t *z, zarr_job_t *job,
    uint64_t now_ms, zarr_err_t *err)
{
    int         rc;
    MDB_txn    *txn;
    MDB_val     key;
    zarr_job_t  cur;

    rc = zarr_job_txn(s, 0, z, &txn, &key, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    rc = zarr_job_read(s, txn, &key, &cur, err);

    if (rc == ZARR_OK && cur.id != job->id) {
        rc = zarr_tree_err(err, ZARR_ERR_CONFLICT, "the job was replaced");
    }

    if (rc == ZARR_OK) {
        job->updated_ms = now_ms;
        rc = zarr_job_write(s, txn, &key, job, err);
    }

    return zarr_job_end(s, txn, &key, rc, err);
}


const char *
zarr_job_state_name(uint32_t state)
{
    switch (state) {
    case ZARR_JOB_RUNNING:
        return "running";
    case ZARR_JOB_DONE:
        return "done";
    default:
        return "failed";
    }
}
