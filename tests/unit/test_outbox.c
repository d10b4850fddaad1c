
/*
 * The mirror's outbox: directories are queued when they become dirty,
 * appear or disappear; an entry is dropped only when the state sent is
 * still the current one.
 */


#include "zarr_test.h"
#include "zarr_outbox.h"


typedef struct {
    char      dirs[32][64];
    uint64_t  ids[32];
    char      prefix[64];
    size_t    n;
    zarr_outbox_entry_t  e[32];
} seen_t;


static int
collect(void *ctx, const zarr_outbox_entry_t *e)
{
    seen_t  *s = ctx;

    assert_true(s->n < 32);
    memcpy(s->dirs[s->n], e->dir, e->dir_len);
    s->dirs[s->n][e->dir_len] = '\0';
    s->ids[s->n] = e->id;
    memcpy(s->prefix, e->checksum_prefix, e->checksum_prefix_len);
    s->prefix[e->checksum_prefix_len] = '\0';
    s->e[s->n] = *e;
    s->e[s->n].dir = s->dirs[s->n];
    s->e[s->n].bucket = "b";
    s->e[s->n].zarr_id = "z";
    s->n++;

    return 0;
}


static void
list(zarr_store_t *st, seen_t *s)
{
    zarr_err_t  err;

    memset(s, 0, sizeof(seen_t));
    assert_int_equal(zarr_outbox_list(st, "b", 1, "z", 1, collect, s, &err),
                     ZARR_OK);
}


static int
has(seen_t *s, const char *dir)
{
    size_t  i;

    for (i = 0; i < s->n; i++) {
        if (strcmp(s->dirs[i], dir) == 0) {
            return 1;
        }
    }

    return 0;
}


static void
apply(zarr_store_t *st, int op, const char *path)
{
    size_t           bad;
    zarr_err_t       err;
    zarr_mutation_t  m;

    memset(&m, 0, sizeof(zarr_mutation_t));
    m.op = op;
    m.bucket = "b";
    m.bucket_len = 1;
    m.zarr_id = "z";
    m.zarr_id_len = 1;
    m.path = path;
    m.path_len = strlen(path);
    m.etag = "e";
    m.etag_len = 1;
    m.size = strlen(path);

    assert_int_equal(zarr_store_apply(st, &m, 1, &bad, &err), ZARR_OK);
}


/* sends every entry as the mirror would: the current document or a delete */

static void
send_all(zarr_store_t *st, seen_t *s)
{
    size_t          i;
    zarr_err_t      err;
    zarr_dir_sum_t  sum;
    int             rc;

    assert_int_equal(zarr_store_flush(st, NULL, 0, NULL, 0, &err), ZARR_OK);

    for (i = 0; i < s->n; i++) {
        rc = zarr_store_get_dir(st, "b", 1, "z", 1, s->e[i].dir,
                                s->e[i].dir_len, &sum, NULL, &err);
        assert_int_equal(zarr_outbox_done(st, &s->e[i],
                                          rc == ZARR_OK ? sum.digest : NULL,
                                          &err), ZARR_OK);
    }
}


static void
test_outbox(void **state)
{
    char           *dir;
    seen_t          s;
    zarr_store_t   *st;
    zarr_err_t      err;
    uint64_t        n;
    zarr_dir_sum_t  sum;

    (void) state;

    dir = zarr_test_tmpdir();
    assert_int_equal(zarr_store_open(&st, dir, 16 << 20, ZARR_STORE_NOSYNC,
                                     &err), ZARR_OK);

    apply(st, ZARR_MUT_PUT, "a/b/c");
    apply(st, ZARR_MUT_PUT, "d");
    list(st, &s);
    assert_int_equal(s.n, 3);
    assert_true(has(&s, "") && has(&s, "a") && has(&s, "a/b"));
    assert_string_equal(s.prefix, "zarr-checksums/");

    /* sent: gone */
    send_all(st, &s);
    assert_int_equal(zarr_outbox_count(st, NULL, 0, NULL, 0, &n, &err), 0);
    assert_int_equal(n, 0);

    /* a change in a/b queues the chain again */
    apply(st, ZARR_MUT_PUT, "a/b/e");
    list(st, &s);
    assert_int_equal(s.n, 3);

    /* what was sent is stale when the tree moved on meanwhile */
    assert_int_equal(zarr_store_flush(st, NULL, 0, NULL, 0, &err), ZARR_OK);
    assert_int_equal(zarr_store_get_zarr(st, "b", 1, "z", 1, &sum, &err), 0);
    apply(st, ZARR_MUT_PUT, "f");
    assert_int_equal(zarr_outbox_done(st, &s.e[0], sum.digest, &err),
                     ZARR_OK);
    list(st, &s);
    assert_true(has(&s, ""));
    send_all(st, &s);
    list(st, &s);
    assert_int_equal(s.n, 0);

    /* deleting a/b/c and a/b/e removes a/b and a: deletes are queued */
    apply(st, ZARR_MUT_DELETE, "a/b/c");
    apply(st, ZARR_MUT_DELETE, "a/b/e");
    list(st, &s);
    assert_true(has(&s, "") && has(&s, "a") && has(&s, "a/b"));

    /* a delete sent for a directory that exists is not enough */
    apply(st, ZARR_MUT_PUT, "a/x");
    list(st, &s);
    {
        size_t  i;

        for (i = 0; i < s.n; i++) {
            zarr_outbox_done(st, &s.e[i], NULL, &err);
        }
    }
    list(st, &s);
    assert_true(has(&s, "a") && has(&s, ""));
    assert_false(has(&s, "a/b"));
    send_all(st, &s);
    list(st, &s);
    assert_int_equal(s.n, 0);

    /* reconcile queues every directory, with the recorded prefix */
    assert_int_equal(zarr_zmeta_set(st, "b", 1, "z", 1, "other/", 6, &err),
                     ZARR_OK);
    assert_int_equal(zarr_outbox_queue_all(st, "b", 1, "z", 1, &err),
                     ZARR_OK);
    list(st, &s);
    assert_int_equal(s.n, 2);
    assert_true(has(&s, "") && has(&s, "a"));
    assert_string_equal(s.prefix, "other/");
    assert_int_equal(zarr_outbox_count(st, "b", 1, "z", 1, &n, &err), 0);
    assert_int_equal(n, 2);

    zarr_store_close(st);
    zarr_test_rmdir(dir);
    free(dir);
}


/* the mirror's duty cycle: rounds of T are followed by >= 9 T of rest */
static void
test_mirror_pacing(void **state)
{
    (void) state;

    /* short rounds: the delay */
    assert_int_equal(zarr_mirror_next_ms(1000, 0, 0), 1000);
    assert_int_equal(zarr_mirror_next_ms(1000, 100, 0), 1000);
    assert_int_equal(zarr_mirror_next_ms(500, 56, 0), 504);

    /* long rounds: nine times their length, at most 30 s */
    assert_int_equal(zarr_mirror_next_ms(1000, 400, 0), 3600);
    assert_int_equal(zarr_mirror_next_ms(1000, 3333, 0), 29997);
    assert_int_equal(zarr_mirror_next_ms(1000, 3334, 0), 30000);
    assert_int_equal(zarr_mirror_next_ms(1000, 600000, 0), 30000);

    /* a delay above the cap wins */
    assert_int_equal(zarr_mirror_next_ms(60000, 600000, 0), 60000);

    /* entries left for later: at once, however long the round */
    assert_int_equal(zarr_mirror_next_ms(1000, 5000, 1), 1);
    assert_int_equal(zarr_mirror_next_ms(1000, 0, 1), 1);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outbox),
        cmocka_unit_test(test_mirror_pacing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
