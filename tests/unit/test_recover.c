
/*
 * Lost intents at start-up (DESIGN 4, contract v2): the state file, the
 * check of the intent store in a child process, and which zarrs are
 * marked for each kind of loss.
 */


#include <sys/stat.h>
#include <unistd.h>

#include "zarr_test.h"
#include "zarr_gate.h"
#include "zarr_recover.h"


#define MAP   (16 << 20)
#define BOOT  "11111111-2222-3333-4444-555555555555"


static zarr_zref_t  busy = { "bkt", 3, "busy", 4 };
static zarr_zref_t  idle = { "bkt", 3, "idle", 4 };


/* a store where "busy" has an open batch and "idle" had one, now ended */

static char *
store_with_batches(void)
{
    char           *dir;
    uint64_t        ids[1];
    zarr_err_t      err;
    zarr_begin_t    b;
    zarr_store_t   *s;
    zarr_gate_txn_t *t;
    zarr_intent_t   in = { ZARR_MUT_PUT, 0, "a/0", 3 };
    const zarr_zref_t *zs[2] = { &idle, &busy };
    int             i;

    dir = zarr_test_tmpdir();
    assert_int_equal(zarr_store_open(&s, dir, MAP, ZARR_STORE_NOSYNC, &err),
                     ZARR_OK);

    for (i = 0; i < 2; i++) {
        memset(&b, 0, sizeof(zarr_begin_t));
        b.owner = "alice";
        b.owner_len = 5;
        b.timeout_ms = 60000;
        b.zarrs = zs[i];
        b.nzarrs = 1;
        b.intents = &in;
        b.nintents = 1;
        b.proc.pid = 4242;
        b.proc.start = 7;
        b.prefix = "zarr/";
        b.prefix_len = 5;
        b.checksum_prefix = "zarr-checksums/";
        b.checksum_prefix_len = 15;

        assert_int_equal(zarr_gate_begin(s, &b, 1000, &err), ZARR_OK);
        assert_int_equal(b.rc, ZARR_OK);
        assert_int_equal(b.nundurable, 1);

        assert_int_equal(zarr_gate_txn_start(s, 1000, &t, &err), ZARR_OK);
        assert_int_equal(zarr_gate_txn_durable(t, &b, ids), ZARR_OK);
        assert_int_equal(zarr_gate_txn_end(t, ZARR_OK), ZARR_OK);
        assert_int_equal(zarr_gate_mark_durable(s, &b, ids, &err), ZARR_OK);
    }

    /* idle's batch ends (its record goes) */
    assert_int_equal(zarr_gate_batch_end(s, &idle, 0, &err), ZARR_OK);

    zarr_store_close(s);

    return dir;
}


typedef struct {
    int   n;
    char  ids[4][16];
    char  rec[4][64];
} marks_t;


static int
collect(void *ctx, const zarr_zref_t *z, const char *rec, size_t rec_len)
{
    marks_t *m = ctx;

    assert_true(m->n < 4);
    snprintf(m->ids[m->n], 16, "%.*s", (int) z->zarr_id_len, z->zarr_id);
    memcpy(m->rec[m->n], rec, rec_len < 64 ? rec_len : 63);
    m->n++;

    return 0;
}


static marks_t
marks(const char *dir)
{
    marks_t        m;
    zarr_err_t     err;
    zarr_store_t  *s;

    memset(&m, 0, sizeof(marks_t));
    assert_int_equal(zarr_store_open(&s, dir, MAP, ZARR_STORE_NOGATE, &err),
                     ZARR_OK);
    assert_int_equal(zarr_gate_recover_list(s, collect, &m, &err), ZARR_OK);
    zarr_store_close(s);

    return m;
}


static void
test_state_file(void **state)
{
    int          found, clean;
    char        *dir, boot[65], path[512];
    FILE        *f;
    zarr_err_t   err;

    (void) state;
    dir = zarr_test_tmpdir();

    assert_int_equal(zarr_recover_state_read(dir, &found, boot, sizeof(boot),
                                             &clean), 0);
    assert_false(found);

    assert_int_equal(zarr_recover_state_write(dir, BOOT, 0, &err), ZARR_OK);
    assert_int_equal(zarr_recover_state_read(dir, &found, boot, sizeof(boot),
                                             &clean), 0);
    assert_true(found);
    assert_false(clean);
    assert_string_equal(boot, BOOT);

    assert_int_equal(zarr_recover_state_write(dir, BOOT, 1, &err), ZARR_OK);
    assert_int_equal(zarr_recover_state_read(dir, &found, boot, sizeof(boot),
                                             &clean), 0);
    assert_true(found && clean);

    /* half a file says nothing */
    snprintf(path, sizeof(path), "%s/%s", dir, ZARR_GATE_STATE);
    f = fopen(path, "w");
    fputs("clean=1\n", f);
    fclose(f);
    assert_int_equal(zarr_recover_state_read(dir, &found, boot, sizeof(boot),
                                             &clean), 0);
    assert_false(found);
    assert_false(clean);

    zarr_test_rmdir(dir);
    free(dir);
}


static void
test_boot_id(void **state)
{
    char  a[65], b[65];

    (void) state;

    assert_int_equal(zarr_recover_boot_id(NULL, a, sizeof(a)), 0);
    assert_int_equal(zarr_recover_boot_id(NULL, b, sizeof(b)), 0);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), 36);
    assert_int_equal(zarr_recover_boot_id("/nonexistent", a, sizeof(a)), -1);
}


static void
test_gate_check(void **state)
{
    char        *dir, path[512], junk[8192];
    FILE        *f;

    (void) state;

    dir = store_with_batches();
    assert_true(zarr_recover_gate_ok(dir));

    /* garbage: the child fails (or crashes), never the caller */
    snprintf(path, sizeof(path), "%s/gate/data.mdb", dir);
    memset(junk, 0x5a, sizeof(junk));
    f = fopen(path, "r+");
    assert_non_null(f);
    assert_int_equal(fwrite(junk, 1, sizeof(junk), f), sizeof(junk));
    fclose(f);
    assert_false(zarr_recover_gate_ok(dir));

    /* truncated */
    assert_int_equal(truncate(path, 100), 0);
    assert_false(zarr_recover_gate_ok(dir));

    zarr_test_rmdir(dir);
    free(dir);
}


/* the kinds of start, and what each marks */

static void
test_same_boot_keeps_intents(void **state)
{
    char            *dir;
    marks_t          m;
    zarr_err_t       err;
    zarr_recover_t   res;

    (void) state;

    dir = store_with_batches();
    assert_int_equal(zarr_recover_state_write(dir, BOOT, 0, &err), ZARR_OK);

    /* kill -9: same boot, not clean: nothing lost, nothing marked */
    assert_int_equal(zarr_recover_startup(dir, BOOT, MAP, &res, &err),
                     ZARR_OK);
    assert_false(res.lost);
    assert_int_equal(res.marked, 0);
    assert_int_equal(marks(dir).n, 0);
    assert_true(zarr_recover_gate_ok(dir));

    /* a clean stop, then a reboot: nothing lost either */
    assert_int_equal(zarr_recover_clean_exit(dir, BOOT, &err), ZARR_OK);
    assert_int_equal(zarr_recover_startup(dir, "another-boot", MAP, &res,
                                          &err), ZARR_OK);
    assert_false(res.lost);

    m = marks(dir);
    assert_int_equal(m.n, 0);

    zarr_test_rmdir(dir);
    free(dir);
}


static void
check_lost(const char *dir, const char *boot)
{
    char             path[512];
    marks_t          m;
    zarr_err_t       err;
    zarr_recover_t   res;
    struct stat      st;
    int              found, clean;
    char             sboot[65];

    assert_int_equal(zarr_recover_startup(dir, boot, MAP, &res, &err),
                     ZARR_OK);
    assert_true(res.lost);
    assert_non_null(res.reason);

    /* busy had a batch: marked with its prefixes; idle had none */
    assert_int_equal(res.marked, 1);
    m = marks(dir);
    assert_int_equal(m.n, 1);
    assert_string_equal(m.ids[0], "busy");
    assert_memory_equal(m.rec[0], "zarr/\0zarr-checksums/", 21);

    /* the old gate moved aside, a fresh start recorded */
    snprintf(path, sizeof(path), "%s/gate", dir);
    assert_int_not_equal(stat(path, &st), 0);
    assert_int_equal(zarr_recover_state_read(dir, &found, sboot,
                                             sizeof(sboot), &clean), 0);
    assert_true(found);
    assert_false(clean);
    assert_string_equal(sboot, boot);

    /* the next start finds no gate but no batch record either */
    assert_int_equal(zarr_recover_startup(dir, boot, MAP, &res, &err),
                     ZARR_OK);
    assert_int_equal(res.marked, 0);
    assert_int_equal(marks(dir).n, 1);
}


static void
test_lost_kinds(void **state)
{
    int          kind;
    char        *dir, path[512];
    FILE        *f;
    zarr_err_t   err;

    (void) state;

    for (kind = 0; kind < 4; kind++) {
        dir = store_with_batches();
        assert_int_equal(zarr_recover_state_write(dir, BOOT, 0, &err),
                         ZARR_OK);
        snprintf(path, sizeof(path), "%s/gate/data.mdb", dir);

        switch (kind) {
        case 0:     /* another boot, not clean */
            check_lost(dir, "another-boot");
            break;

        case 1:     /* the gate missing */
            snprintf(path, sizeof(path), "rm -rf '%s/gate'", dir);
            assert_int_equal(system(path), 0);
            check_lost(dir, BOOT);
            break;

        case 2:     /* truncated */
            assert_int_equal(truncate(path, 4096), 0);
            check_lost(dir, BOOT);
            break;

        default:    /* garbage */
            f = fopen(path, "r+");
            assert_non_null(f);
            fputs("not an lmdb file at all, not at all", f);
            fclose(f);
            check_lost(dir, BOOT);
            break;
        }

        zarr_test_rmdir(dir);
        free(dir);
    }
}


static void
test_recovering_refuses_begins(void **state)
{
    char            *dir;
    int              yes;
    zarr_err_t       err;
    zarr_recover_t   res;
    zarr_store_t    *s;
    zarr_begin_t     b;
    zarr_intent_t    in = { ZARR_MUT_PUT, 0, "x", 1 };

    (void) state;

    dir = store_with_batches();
    assert_int_equal(zarr_recover_startup(dir, "another-boot", MAP, &res,
                                          &err), ZARR_OK);
    assert_true(res.lost);

    assert_int_equal(zarr_store_open(&s, dir, MAP, ZARR_STORE_NOSYNC, &err),
                     ZARR_OK);

    memset(&b, 0, sizeof(zarr_begin_t));
    b.owner = "alice";
    b.owner_len = 5;
    b.timeout_ms = 60000;
    b.zarrs = &busy;
    b.nzarrs = 1;
    b.intents = &in;
    b.nintents = 1;
    b.prefix = "zarr/";
    b.prefix_len = 5;

    assert_int_equal(zarr_gate_begin(s, &b, 2000, &err), ZARR_OK);
    assert_int_equal(b.rc, ZARR_ERR_RECOVERING);

    /* the other zarr is not held up */
    b.zarrs = &idle;
    assert_int_equal(zarr_gate_begin(s, &b, 2000, &err), ZARR_OK);
    assert_int_equal(b.rc, ZARR_OK);

    assert_int_equal(zarr_gate_recovering(s, &busy, &yes, &err), ZARR_OK);
    assert_true(yes);
    assert_int_equal(zarr_gate_recover_done(s, &busy, &err), ZARR_OK);
    assert_int_equal(zarr_gate_recovering(s, &busy, &yes, &err), ZARR_OK);
    assert_false(yes);

    b.zarrs = &busy;
    b.intents = &in;
    in.path = "y";
    assert_int_equal(zarr_gate_begin(s, &b, 2000, &err), ZARR_OK);
    assert_int_equal(b.rc, ZARR_OK);

    zarr_store_close(s);
    zarr_test_rmdir(dir);
    free(dir);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_file),
        cmocka_unit_test(test_boot_id),
        cmocka_unit_test(test_gate_check),
        cmocka_unit_test(test_same_boot_keeps_intents),
        cmocka_unit_test(test_lost_kinds),
        cmocka_unit_test(test_recovering_refuses_begins),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
