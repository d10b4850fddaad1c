
/*
 * Job records (DESIGN section 7: reconcile as a job): the last long task
 * asked of a zarr, its state and progress, where every worker of the
 * gateway sees them.
 *
 * table of the gate's environment (never fsynced, like batches):
 *   jobs     bucket NUL zarr_id -> zarr_job_t up to its error text, then
 *            the error text (no NUL)
 *
 * One job per zarr at a time: zarr_job_start() refuses a new one while
 * the last is running in a process that is alive.  A job whose process
 * is gone (its pid and start time, as zarr_proc_t of the gate's intents)
 * reads as failed, "interrupted by a restart", and may be asked again.
 * Whether a process is alive is the caller's to say (a callback): the
 * core knows nothing of processes.
 */


#ifndef _ZARR_JOB_H_INCLUDED_
#define _ZARR_JOB_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "zarr_tree.h"
#include "zarr_gate.h"


#define ZARR_JOB_RUNNING      1
#define ZARR_JOB_DONE         2
#define ZARR_JOB_FAILED       3

#define ZARR_JOB_ERROR_MAX    512

#define ZARR_JOB_INTERRUPTED  "interrupted by a restart"


typedef struct {
    uint64_t         id;             /* increasing, never 0 */
    uint32_t         state;          /* ZARR_JOB_RUNNING, DONE, FAILED */
    uint32_t         status;         /* a failure's HTTP status, or 0 */
    zarr_proc_t      proc;           /* the process that runs it */
    uint64_t         batch_id;       /* the batch it holds, or 0 */
    uint64_t         started_ms;     /* wall clock */
    uint64_t         updated_ms;     /* its last record */
    uint64_t         ended_ms;       /* 0 while running */
    uint64_t         listed;         /* objects listed so far */
    uint64_t         total;          /* mutations to apply, once known */
    uint64_t         applied;        /* mutations applied */
    uint64_t         added;
    uint64_t         removed;
    uint64_t         changed;
    uint64_t         skipped;
    uint64_t         stale;          /* stale .checksum objects removed */
    char             digest_before[ZARR_DIGEST_MAX];   /* "" unknown */
    char             digest_after[ZARR_DIGEST_MAX];
    char             error[ZARR_JOB_ERROR_MAX];        /* "" none */
} zarr_job_t;


/* 1 if the process is alive; ctx is the caller's */
typedef int (*zarr_job_alive_pt)(void *ctx, const zarr_proc_t *proc);


/*
 * Starts a job of zarr z run by proc: one write transaction.  When the
 * zarr's last job is running in a live process: ZARR_ERR_CONFLICT, *job
 * is that one, nothing changes.  Otherwise *job is the new record
 * (running, started now) and *prev the one it replaces as it reads
 * (prev->id 0 when there was none; an interrupted one reads as failed,
 * its batch_id is the batch it may have left behind).
 */
int zarr_job_start(zarr_store_t *s, const zarr_zref_t *z,
    const zarr_proc_t *proc, uint64_t now_ms, zarr_job_alive_pt alive,
    void *ctx, zarr_job_t *job, zarr_job_t *prev, zarr_err_t *err);

/*
 * The zarr's last job; ZARR_ERR_NOTFOUND when none was ever started.  A
 * running one whose process is gone reads as failed (ZARR_JOB_INTERRUPTED,
 * ended at its last record).
 */
int zarr_job_get(zarr_store_t *s, const zarr_zref_t *z,
    zarr_job_alive_pt alive, void *ctx, zarr_job_t *job, zarr_err_t *err);

/*
 * Writes job (its progress, or its end), updated_ms now, if it is still
 * the zarr's last job (same id): else ZARR_ERR_CONFLICT and nothing
 * changes.
 */
int zarr_job_update(zarr_store_t *s, const zarr_zref_t *z, zarr_job_t *job,
    uint64_t now_ms, zarr_err_t *err);

/* "running", "done", "failed" */
const char *zarr_job_state_name(uint32_t state);


#endif /* _ZARR_JOB_H_INCLUDED_ */
