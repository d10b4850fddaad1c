
/*
 * Job records: one running job per zarr, a dead process's job reads as
 * failed and may be asked again, updates only of the zarr's last job,
 * the error text kept, records survive a reopen.
 */


#include "zarr_test.h"
#include "zarr_job.h"


static zarr_zref_t  z1 = { "bkt", 3, "z1", 2 };
static zarr_zref_t  z2 = { "bkt", 3, "z2", 2 };

static zarr_proc_t  p1 = { 4242, 7 };
static zarr_proc_t  p2 = { 4343, 9 };


/* ctx: the one process alive (NULL: none) */
static int
alive(void *ctx, const zarr_proc_t *p)
{
    const zarr_proc_t *live = ctx;

    return live && live->pid == p->pid && live->start == p->start;
}


static zarr_store_t *
fresh(char **dir)
{
    zarr_store_t  *s;
    zarr_err_t     err;

    *dir = zarr_test_tmpdir();

    if (zarr_store_open(&s, *dir, 16 << 20, ZARR_STORE_NOSYNC, &err)
        != ZARR_OK)
    {
        fail_msg("open: %s", err.msg);
    }

    return s;
}


static void
done(zarr_store_t *s, char *dir)
{
    zarr_store_close(s);
    zarr_test_rmdir(dir);
    free(dir);
}


static void
test_one_running_job_per_zarr(void **state)
{
    char          *dir;
    zarr_store_t  *s;
    zarr_job_t     job, prev, other, got;
    zarr_err_t     err;

    (void) state;
    s = fresh(&dir);

    assert_int_equal(zarr_job_get(s, &z1, alive, &p1, &got, &err),
                     ZARR_ERR_NOTFOUND);

    assert_int_equal(zarr_job_start(s, &z1, &p1, 1000, alive, &p1, &job,
                                    &prev, &err), ZARR_OK);
    assert_int_equal(prev.id, 0);
    assert_int_equal(job.state, ZARR_JOB_RUNNING);
    assert_int_equal(job.started_ms, 1000);
    assert_int_equal(job.ended_ms, 0);
    assert_true(job.id != 0);

    /* a second while it runs: the running one, nothing changed */
    assert_int_equal(zarr_job_start(s, &z1, &p1, 2000, alive, &p1, &other,
                                    &prev, &err), ZARR_ERR_CONFLICT);
    assert_int_equal(other.id, job.id);
    assert_int_equal(other.started_ms, 1000);

    assert_int_equal(zarr_job_get(s, &z1, alive, &p1, &got, &err), ZARR_OK);
    assert_int_equal(got.id, job.id);
    assert_int_equal(got.state, ZARR_JOB_RUNNING);
    assert_string_equal(got.error, "");

    /* another zarr is another job */
    assert_int_equal(zarr_job_start(s, &z2, &p1, 2000, alive, &p1, &other,
                                    &prev, &err), ZARR_OK);
    assert_true(other.id != job.id);

    /* done: a new one may start, and it replaces the last */
    job.state = ZARR_JOB_DONE;
    job.ended_ms = 3000;
    job.listed = 3000;
    job.added = 2;
    strcpy(job.digest_after, "abc-1--2");
    assert_int_equal(zarr_job_update(s, &z1, &job, 3000, &err), ZARR_OK);

    assert_int_equal(zarr_job_get(s, &z1, alive, &p1, &got, &err), ZARR_OK);
    assert_int_equal(got.state, ZARR_JOB_DONE);
    assert_int_equal(got.listed, 3000);
    assert_int_equal(got.added, 2);
    assert_int_equal(got.updated_ms, 3000);
    assert_string_equal(got.digest_after, "abc-1--2");

    assert_int_equal(zarr_job_start(s, &z1, &p1, 4000, alive, &p1, &other,
                                    &prev, &err), ZARR_OK);
    assert_int_equal(prev.id, job.id);
    assert_int_equal(prev.state, ZARR_JOB_DONE);
    assert_true(other.id > job.id);

    /* the old job cannot write over the new one */
    job.state = ZARR_JOB_FAILED;
    assert_int_equal(zarr_job_update(s, &z1, &job, 5000, &err),
                     ZARR_ERR_CONFLICT);
    assert_int_equal(zarr_job_get(s, &z1, alive, &p1, &got, &err), ZARR_OK);
    assert_int_equal(got.id, other.id);
    assert_int_equal(got.state, ZARR_JOB_RUNNING);

    done(s, dir);
}


static void
test_dead_process_reads_failed(void **state)
{
    char          *dir;
    zarr_store_t  *s;
    zarr_job_t     job, prev, got, next;
    zarr_err_t     err;

    (void) state;
    s = fresh(&dir);

    assert_int_equal(zarr_job_start(s, &z1, &p1, 1000, alive, &p1, &job,
                                    &prev, &err), ZARR_OK);
    job.listed = 10;
    job.batch_id = 77;
    assert_int_equal(zarr_job_update(s, &z1, &job, 1500, &err), ZARR_OK);

    /* p1 is gone, p2 runs now (a restart) */
    assert_int_equal(zarr_job_get(s, &z1, alive, &p2, &got, &err), ZARR_OK);
    assert_int_equal(got.state, ZARR_JOB_FAILED);
    assert_string_equal(got.error, ZARR_JOB_INTERRUPTED);
    assert_int_equal(got.ended_ms, 1500);
    assert_int_equal(got.listed, 10);

    /* a pid used again by another process is not the same process */
    p1.start++;
    assert_int_equal(zarr_job_get(s, &z1, alive, &p1, &got, &err), ZARR_OK);
    assert_int_equal(got.state, ZARR_JOB_FAILED);
    p1.start--;

    /* a new job is accepted; prev tells the batch left behind */
    assert_int_equal(zarr_job_start(s, &z1, &p2, 2000, alive, &p2, &next,
                                    &prev, &err), ZARR_OK);
    assert_int_equal(prev.id, job.id);
    assert_int_equal(prev.state, ZARR_JOB_FAILED);
    assert_int_equal(prev.batch_id, 77);
    assert_int_equal(next.batch_id, 0);
    assert_int_equal(next.listed, 0);
    assert_int_equal(next.proc.pid, p2.pid);

    /* the new one is alive: refused */
    assert_int_equal(zarr_job_start(s, &z1, &p2, 2001, alive, &p2, &got,
                                    &prev, &err), ZARR_ERR_CONFLICT);
    assert_int_equal(got.id, next.id);

    done(s, dir);
}


static void
test_error_text_and_reopen(void **state)
{
    char          *dir;
    size_t         i;
    zarr_store_t  *s;
    zarr_job_t     job, prev, got;
    zarr_err_t     err;

    (void) state;
    s = fresh(&dir);

    assert_int_equal(zarr_job_start(s, &z1, &p1, 1000, alive, &p1, &job,
                                    &prev, &err), ZARR_OK);

    /* a long error is cut to what fits */
    job.state = ZARR_JOB_FAILED;
    job.status = 502;
    job.ended_ms = 2000;

    for (i = 0; i < sizeof(job.error) - 1; i++) {
        job.error[i] = 'a' + i % 26;
    }

    job.error[i] = '\0';

    assert_int_equal(zarr_job_update(s, &z1, &job, 2000, &err), ZARR_OK);
    zarr_store_close(s);

    assert_int_equal(zarr_store_open(&s, dir, 16 << 20, 0, &err), ZARR_OK);
    assert_int_equal(zarr_job_get(s, &z1, alive, NULL, &got, &err), ZARR_OK);
    assert_int_equal(got.state, ZARR_JOB_FAILED);
    assert_int_equal(got.status, 502);
    assert_int_equal(strlen(got.error), sizeof(job.error) - 1);
    assert_memory_equal(got.error, job.error, sizeof(job.error));

    /* a short one replaces it whole */
    assert_int_equal(zarr_job_start(s, &z1, &p1, 3000, alive, &p1, &job,
                                    &prev, &err), ZARR_OK);
    job.state = ZARR_JOB_FAILED;
    strcpy(job.error, "no such bucket at the backend");
    assert_int_equal(zarr_job_update(s, &z1, &job, 3100, &err), ZARR_OK);
    assert_int_equal(zarr_job_get(s, &z1, alive, &p1, &got, &err), ZARR_OK);
    assert_string_equal(got.error, "no such bucket at the backend");
    assert_string_equal(zarr_job_state_name(got.state), "failed");

    done(s, dir);
}


static void
test_no_gate(void **state)
{
    char          *dir;
    zarr_store_t  *s;
    zarr_job_t     got;
    zarr_err_t     err;

    (void) state;
    s = fresh(&dir);
    zarr_store_close(s);

    assert_int_equal(zarr_store_open(&s, dir, 16 << 20, ZARR_STORE_RDONLY,
                                     &err), ZARR_OK);
    assert_int_equal(zarr_job_get(s, &z1, alive, &p1, &got, &err),
                     ZARR_ERR_STORE);

    done(s, dir);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_running_job_per_zarr),
        cmocka_unit_test(test_dead_process_reads_failed),
        cmocka_unit_test(test_error_text_and_reopen),
        cmocka_unit_test(test_no_gate),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
