
/*
 * Batches and intents: conflicts, idle expiry, requests in flight,
 * several zarrs at once, group commits, explicit batches, the resolver's
 * view and its optimistic check.
 */


#include "zarr_test.h"
#include "zarr_gate.h"


#define MIN  60000


static zarr_zref_t  z1 = { "bkt", 3, "z1", 2 };
static zarr_zref_t  z2 = { "bkt", 3, "z2", 2 };


static zarr_begin_t
begin(const char *owner, const zarr_zref_t *zarrs, size_t n,
    const zarr_intent_t *in, size_t nin)
{
    zarr_begin_t  b;

    memset(&b, 0, sizeof(zarr_begin_t));
    b.owner = owner;
    b.owner_len = strlen(owner);
    b.timeout_ms = MIN;
    b.zarrs = zarrs;
    b.nzarrs = n;
    b.intents = in;
    b.nintents = nin;
    b.proc.pid = 4242;
    b.proc.start = 7;
    b.prefix = "zarr/";
    b.prefix_len = 5;

    return b;
}


static zarr_finish_t
finish(const zarr_begin_t *b, const zarr_mutation_t *m, size_t n)
{
    zarr_finish_t  f;
    size_t         nin, i, j;

    memset(&f, 0, sizeof(zarr_finish_t));
    f.zarrs = b->zarrs;
    f.nzarrs = b->nzarrs;
    f.batch_id = b->batch.id;
    f.intent_id = b->intent_id;

    /* the keyed intents, plus one for every zarr without one */
    nin = b->nintents;

    for (i = 0; i < b->nzarrs; i++) {
        for (j = 0; j < b->nintents; j++) {
            if (b->intents[j].zarr == i) {
                break;
            }
        }

        if (j == b->nintents) {
            nin++;
        }
    }

    f.nintents = nin;
    f.m = m;
    f.n = n;

    return f;
}


static void
commit(zarr_store_t *s, zarr_finish_t *f, size_t nf, zarr_begin_t *b,
    size_t nb, uint64_t now)
{
    zarr_err_t  err;

    if (zarr_gate_commit(s, f, nf, b, nb, now, &err) != ZARR_OK) {
        fail_msg("commit: %s", err.msg);
    }
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


static zarr_mutation_t
put(const char *path, const char *etag, uint64_t size)
{
    zarr_mutation_t  m;

    memset(&m, 0, sizeof(zarr_mutation_t));
    m.op = ZARR_MUT_PUT;
    m.bucket = "bkt";
    m.bucket_len = 3;
    m.zarr_id = "z1";
    m.zarr_id_len = 2;
    m.path = path;
    m.path_len = strlen(path);
    m.etag = etag;
    m.etag_len = strlen(etag);
    m.size = size;

    return m;
}


static void
test_conflict_and_expiry(void **state)
{
    char            *dir;
    zarr_store_t    *s;
    zarr_begin_t     a, b;
    zarr_finish_t    f;
    zarr_mutation_t  m;
    zarr_batch_t     batch;
    zarr_err_t       err;
    zarr_dir_sum_t   sum;
    zarr_intent_t    in = { ZARR_MUT_PUT, 0, "f", 1 };
    zarr_intent_t    in2 = { ZARR_MUT_PUT, 0, "g", 1 };

    (void) state;
    s = fresh(&dir);

    a = begin("alice", &z1, 1, &in, 1);
    commit(s, NULL, 0, &a, 1, 1000);
    assert_int_equal(a.rc, ZARR_OK);
    assert_true(a.batch.id > 0);
    assert_int_equal(a.batch.inflight, 1);
    assert_int_equal(a.batch.expires_ms, 1000 + MIN);

    b = begin("bob", &z1, 1, &in, 1);
    commit(s, NULL, 0, &b, 1, 2000);
    assert_int_equal(b.rc, ZARR_ERR_CONFLICT);
    assert_int_equal(b.batch.id, a.batch.id);
    assert_memory_equal(b.batch.owner, "alice", 5);

    /* alice's parallel request (another key) joins her batch */
    b = begin("alice", &z1, 1, &in2, 1);
    commit(s, NULL, 0, &b, 1, 2000);
    assert_int_equal(b.rc, ZARR_OK);
    assert_int_equal(b.batch.id, a.batch.id);
    assert_int_equal(b.batch.inflight, 2);

    /* in flight: no expiry however long it takes */
    m = put("f", "etag1", 5);
    f = finish(&a, &m, 1);
    commit(s, &f, 1, NULL, 0, 3000);
    assert_int_equal(f.rc, ZARR_OK);

    a = begin("bob", &z1, 1, &in, 1);
    commit(s, NULL, 0, &a, 1, 10 * MIN);
    assert_int_equal(a.rc, ZARR_ERR_CONFLICT);

    f = finish(&b, NULL, 0);
    commit(s, &f, 1, NULL, 0, 10 * MIN);

    /* idle for less than the timeout: still alice's */
    assert_int_equal(zarr_gate_batch(s, &z1, 10 * MIN + MIN - 1, &batch,
                                     &err), ZARR_OK);
    assert_int_equal(batch.inflight, 0);
    a = begin("bob", &z1, 1, &in, 1);
    commit(s, NULL, 0, &a, 1, 10 * MIN + MIN - 1);
    assert_int_equal(a.rc, ZARR_ERR_CONFLICT);

    /* idle for the timeout: bob gets a new batch */
    assert_int_equal(zarr_gate_batch(s, &z1, 11 * MIN, &batch, &err),
                     ZARR_ERR_NOTFOUND);
    a = begin("bob", &z1, 1, &in, 1);
    commit(s, NULL, 0, &a, 1, 11 * MIN);
    assert_int_equal(a.rc, ZARR_OK);
    assert_true(a.batch.id > b.batch.id);
    assert_memory_equal(a.batch.owner, "bob", 3);

    /* alice's mutation reached the tree */
    assert_int_equal(zarr_store_get_zarr(s, "bkt", 3, "z1", 2, &sum, &err),
                     ZARR_OK);
    assert_int_equal(sum.count, 1);
    assert_int_equal(sum.size, 5);

    done(s, dir);
}


static int
count_intents(void *ctx, const zarr_intent_info_t *in)
{
    int  *n = ctx;

    n[in->state]++;

    return 0;
}


static void
test_several_zarrs_all_or_nothing(void **state)
{
    char           *dir;
    zarr_store_t   *s;
    zarr_begin_t    a, b;
    zarr_zref_t     both[2];
    zarr_err_t      err;
    int             n[2];

    (void) state;
    s = fresh(&dir);

    a = begin("alice", &z1, 1, NULL, 0);
    commit(s, NULL, 0, &a, 1, 1000);

    both[0] = z2;
    both[1] = z1;
    b = begin("bob", both, 2, NULL, 0);
    commit(s, NULL, 0, &b, 1, 1000);
    assert_int_equal(b.rc, ZARR_ERR_CONFLICT);
    assert_int_equal(b.conflict, 1);

    /* z2 was not taken by bob's refused request */
    b = begin("carol", &z2, 1, NULL, 0);
    commit(s, NULL, 0, &b, 1, 1000);
    assert_int_equal(b.rc, ZARR_OK);

    /* a lock-only begin leaves one intent per zarr */
    memset(n, 0, sizeof(n));
    assert_int_equal(zarr_gate_intents(s, count_intents, n, &err), ZARR_OK);
    assert_int_equal(n[ZARR_INTENT_PENDING], 2);

    done(s, dir);
}


static void
test_group_commit_in_order(void **state)
{
    char           *dir;
    zarr_store_t   *s;
    zarr_begin_t    b[3];

    (void) state;
    s = fresh(&dir);

    b[0] = begin("alice", &z1, 1, NULL, 0);
    b[1] = begin("bob", &z1, 1, NULL, 0);
    b[2] = begin("alice", &z1, 1, NULL, 0);
    commit(s, NULL, 0, b, 3, 1000);

    assert_int_equal(b[0].rc, ZARR_OK);
    assert_int_equal(b[1].rc, ZARR_ERR_CONFLICT);
    assert_int_equal(b[2].rc, ZARR_OK);
    assert_int_equal(b[2].batch.inflight, 2);
    assert_true(b[2].intent_id > b[0].intent_id);

    done(s, dir);
}


typedef struct {
    uint64_t  id;
    int       state;
    char      path[64];
} seen_t;


static int
first_intent(void *ctx, const zarr_intent_info_t *in)
{
    seen_t  *seen = ctx;

    seen->id = in->id;
    seen->state = in->state;
    assert_int_equal(in->prefix_len, 5);
    assert_memory_equal(in->prefix, "zarr/", 5);
    assert_memory_equal(in->zarr_id, "z1", 2);
    memcpy(seen->path, in->path, in->path_len);
    seen->path[in->path_len] = '\0';

    return 1;
}


static void
test_unknown_outcome_and_resolver(void **state)
{
    char            *dir;
    zarr_store_t    *s;
    zarr_begin_t     a, b;
    zarr_finish_t    f;
    zarr_mutation_t  m;
    zarr_batch_t     batch;
    zarr_err_t       err;
    zarr_dir_sum_t   sum;
    seen_t           seen;
    int              n[2];
    zarr_intent_t    in = { ZARR_MUT_PUT, 0, "a/b", 3 };

    (void) state;
    s = fresh(&dir);

    a = begin("alice", &z1, 1, &in, 1);
    commit(s, NULL, 0, &a, 1, 1000);

    /* the backend timed out: the intent stays, as unknown */
    f = finish(&a, NULL, 0);
    f.unknown = 1;
    commit(s, &f, 1, NULL, 0, 2000);

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(zarr_gate_intents(s, first_intent, &seen, &err),
                     ZARR_OK);
    assert_int_equal(seen.id, a.intent_id);
    assert_int_equal(seen.state, ZARR_INTENT_UNKNOWN);
    assert_string_equal(seen.path, "a/b");

    /* the batch does not wait for it */
    assert_int_equal(zarr_gate_batch(s, &z1, 2000, &batch, &err), ZARR_OK);
    assert_int_equal(batch.inflight, 0);

    /*
     * while its outcome is unknown the key stays taken: a begin on it is
     * busy and changes nothing; a begin without it goes ahead
     */
    b = begin("alice", &z1, 1, &in, 1);
    commit(s, NULL, 0, &b, 1, 3000);
    assert_int_equal(b.rc, ZARR_ERR_BUSY);
    assert_int_equal(b.busy, 0);
    b = begin("alice", &z1, 1, NULL, 0);
    commit(s, NULL, 0, &b, 1, 3000);
    assert_int_equal(b.rc, ZARR_OK);

    /* so the resolver applies what the backend holds, begins or not */
    m = put("a/b", "etag-from-head", 9);
    assert_int_equal(zarr_gate_resolve(s, seen.id, &m, 3000, &err),
                     ZARR_OK);
    assert_int_equal(zarr_store_get_zarr(s, "bkt", 3, "z1", 2, &sum, &err),
                     ZARR_OK);
    assert_int_equal(sum.count, 1);
    assert_int_equal(sum.size, 9);

    /* only b's lock-only intent is left; resolving twice is harmless */
    memset(n, 0, sizeof(n));
    zarr_gate_intents(s, count_intents, n, &err);
    assert_int_equal(n[ZARR_INTENT_PENDING], 1);
    assert_int_equal(n[ZARR_INTENT_UNKNOWN], 0);
    assert_int_equal(zarr_gate_resolve(s, seen.id, &m, 3000,
                                       &err), ZARR_OK);

    /* an orphan pending intent (dead process) releases its share */
    zarr_gate_batch(s, &z1, 3000, &batch, &err);
    assert_int_equal(batch.inflight, 1);
    memset(&seen, 0, sizeof(seen));
    zarr_gate_intents(s, first_intent, &seen, &err);
    assert_int_equal(seen.id, b.intent_id);
    assert_int_equal(zarr_gate_resolve(s, seen.id, NULL, 4000,
                                       &err), ZARR_OK);
    assert_int_equal(zarr_gate_batch(s, &z1, 4000, &batch, &err), ZARR_OK);
    assert_int_equal(batch.inflight, 0);
    assert_int_equal(batch.expires_ms, 4000 + MIN);

    done(s, dir);
}


/*
 * One request at a time per key: a second begin on a key in flight is
 * busy (in the same group commit too) and changes nothing; other keys,
 * and a request naming a key twice, go ahead; once the first finishes,
 * the key is free, in the same commit too.
 */
static void
test_one_request_per_key(void **state)
{
    char            *dir;
    zarr_store_t    *s;
    zarr_begin_t     a, b[3];
    zarr_finish_t    f;
    zarr_mutation_t  m;
    zarr_batch_t     batch;
    zarr_err_t       err;
    zarr_intent_t    k = { ZARR_MUT_PUT, 0, "c/0", 3 };
    zarr_intent_t    other = { ZARR_MUT_PUT, 0, "c/1", 3 };
    zarr_intent_t    twice[2] = { { ZARR_MUT_DELETE, 0, "d", 1 },
                                  { ZARR_MUT_DELETE, 0, "d", 1 } };
    zarr_intent_t    many[2] = { { ZARR_MUT_DELETE, 0, "e", 1 },
                                 { ZARR_MUT_DELETE, 0, "c/0", 3 } };

    (void) state;
    s = fresh(&dir);

    a = begin("alice", &z1, 1, &k, 1);
    commit(s, NULL, 0, &a, 1, 1000);
    assert_int_equal(a.rc, ZARR_OK);

    /* the same key again; another key; a key named twice */
    b[0] = begin("alice", &z1, 1, &k, 1);
    b[1] = begin("alice", &z1, 1, &other, 1);
    b[2] = begin("alice", &z1, 1, twice, 2);
    commit(s, NULL, 0, b, 3, 1000);
    assert_int_equal(b[0].rc, ZARR_ERR_BUSY);
    assert_int_equal(b[1].rc, ZARR_OK);
    assert_int_equal(b[2].rc, ZARR_OK);

    /* a DeleteObjects with the busy key among others: busy as a whole */
    b[0] = begin("alice", &z1, 1, many, 2);
    commit(s, NULL, 0, b, 1, 1000);
    assert_int_equal(b[0].rc, ZARR_ERR_BUSY);
    assert_int_equal(b[0].busy, 1);

    /* the busy begins took nothing: a, b[1] and b[2] are in flight */
    assert_int_equal(zarr_gate_batch(s, &z1, 1000, &batch, &err), ZARR_OK);
    assert_int_equal(batch.inflight, 3);

    /* two begins of one key in the same group commit: the second waits */
    b[0] = begin("alice", &z2, 1, &k, 1);
    b[1] = begin("alice", &z2, 1, &k, 1);
    commit(s, NULL, 0, b, 2, 1000);
    assert_int_equal(b[0].rc, ZARR_OK);
    assert_int_equal(b[1].rc, ZARR_ERR_BUSY);

    /* a finishes; in the same commit a begin on its key goes ahead */
    m = put("c/0", "etag", 3);
    f = finish(&a, &m, 1);
    b[0] = begin("alice", &z1, 1, &k, 1);
    commit(s, &f, 1, b, 1, 2000);
    assert_int_equal(f.rc, ZARR_OK);
    assert_int_equal(b[0].rc, ZARR_OK);

    done(s, dir);
}

static void
test_explicit_batch(void **state)
{
    char           *dir;
    zarr_store_t   *s;
    zarr_begin_t    a;
    zarr_batch_t    batch;
    zarr_err_t      err;

    (void) state;
    s = fresh(&dir);

    assert_int_equal(zarr_gate_batch_open(s, &z1, "uploader", 8, 5000, 1000,
                                          &batch, &err), ZARR_OK);
    assert_true(batch.explicit_batch);
    assert_int_equal(zarr_gate_batch_open(s, &z1, "other", 5, 5000, 1000,
                                          &batch, &err), ZARR_ERR_CONFLICT);

    a = begin("alice", &z1, 1, NULL, 0);
    commit(s, NULL, 0, &a, 1, 2000);
    assert_int_equal(a.rc, ZARR_ERR_CONFLICT);
    assert_memory_equal(a.batch.owner, "uploader", 8);

    /* the owner writes within it; its own timeout applies */
    a = begin("uploader", &z1, 1, NULL, 0);
    a.timeout_ms = 1;
    commit(s, NULL, 0, &a, 1, 2000);
    assert_int_equal(a.rc, ZARR_OK);
    assert_int_equal(a.batch.expires_ms, 2000 + 5000);

    /* ending another batch than the one named: refused */
    assert_int_equal(zarr_gate_batch_end(s, &z1, batch.id + 1, &err),
                     ZARR_ERR_CONFLICT);
    assert_int_equal(zarr_gate_batch(s, &z1, 2000, &batch, &err), ZARR_OK);

    /* cancel (takeover): alice proceeds */
    assert_int_equal(zarr_gate_batch_end(s, &z1, 0, &err), ZARR_OK);
    assert_int_equal(zarr_gate_batch_end(s, &z1, 0, &err), ZARR_ERR_NOTFOUND);
    a = begin("alice", &z1, 1, NULL, 0);
    commit(s, NULL, 0, &a, 1, 2000);
    assert_int_equal(a.rc, ZARR_OK);

    done(s, dir);
}


/* a long task (reconcile) keeps its explicit batch alive, and ends it */
static void
test_batch_touch(void **state)
{
    char           *dir;
    uint64_t        id;
    zarr_store_t   *s;
    zarr_begin_t    a;
    zarr_batch_t    batch;
    zarr_err_t      err;

    (void) state;
    s = fresh(&dir);

    assert_int_equal(zarr_gate_batch_open(s, &z1, "zarr-api:reconcile", 18,
                                          5000, 1000, &batch, &err),
                     ZARR_OK);
    id = batch.id;

    /* touched at 5000: alive until 10000, past its first expiry */
    assert_int_equal(zarr_gate_batch_touch(s, &z1, id, 5000, &err), ZARR_OK);
    a = begin("alice", &z1, 1, NULL, 0);
    commit(s, NULL, 0, &a, 1, 9999);
    assert_int_equal(a.rc, ZARR_ERR_CONFLICT);
    assert_int_equal(a.batch.id, id);

    /* another id is not ours to touch or end */
    assert_int_equal(zarr_gate_batch_touch(s, &z1, id + 1, 6000, &err),
                     ZARR_ERR_CONFLICT);
    assert_int_equal(zarr_gate_batch_end(s, &z1, id + 1, &err),
                     ZARR_ERR_CONFLICT);

    /* ended by its holder: writers proceed; a later touch is refused */
    assert_int_equal(zarr_gate_batch_end(s, &z1, id, &err), ZARR_OK);
    assert_int_equal(zarr_gate_batch_touch(s, &z1, id, 7000, &err),
                     ZARR_ERR_CONFLICT);
    a = begin("alice", &z1, 1, NULL, 0);
    commit(s, NULL, 0, &a, 1, 7000);
    assert_int_equal(a.rc, ZARR_OK);

    /* expired and taken over by alice: the old holder cannot touch it */
    assert_int_equal(zarr_gate_batch_touch(s, &z1, id, 8000, &err),
                     ZARR_ERR_CONFLICT);

    done(s, dir);
}


/*
 * DESIGN 4b fallback: a batch opened by a request that the backend then
 * refused as unauthenticated ends at once, unless another request is in
 * flight in it; a batch it only joined is left alone.
 */
static void
test_refused_opener_drops_batch(void **state)
{
    char            *dir;
    zarr_store_t    *s;
    zarr_begin_t     a, b, c;
    zarr_finish_t    f;
    zarr_mutation_t  m;
    zarr_batch_t     batch;
    zarr_err_t       err;
    zarr_intent_t    in = { ZARR_MUT_PUT, 0, "f", 1 };
    zarr_intent_t    in2 = { ZARR_MUT_PUT, 0, "g", 1 };

    (void) state;
    s = fresh(&dir);

    /* a forged request opens a batch, the backend refuses it: gone */
    a = begin("alice", &z1, 1, &in, 1);
    commit(s, NULL, 0, &a, 1, 1000);
    assert_int_equal(a.rc, ZARR_OK);
    assert_int_equal(a.nopened, 1);
    assert_int_equal(a.opened[0], a.batch.id);

    f = finish(&a, NULL, 0);
    f.drop = a.opened;
    f.ndrop = a.nopened;
    commit(s, &f, 1, NULL, 0, 1100);
    assert_int_equal(zarr_gate_batch(s, &z1, 1100, &batch, &err),
                     ZARR_ERR_NOTFOUND);

    /* bob, the rightful writer, gets the zarr at once */
    b = begin("bob", &z1, 1, &in, 1);
    commit(s, NULL, 0, &b, 1, 1200);
    assert_int_equal(b.rc, ZARR_OK);
    assert_int_equal(b.nopened, 1);

    /* a forged request joining bob's batch opens nothing, drops nothing */
    c = begin("bob", &z1, 1, &in2, 1);
    commit(s, NULL, 0, &c, 1, 1300);
    assert_int_equal(c.rc, ZARR_OK);
    assert_int_equal(c.nopened, 0);

    f = finish(&c, NULL, 0);
    f.drop = c.opened;
    f.ndrop = c.nopened;
    commit(s, &f, 1, NULL, 0, 1400);

    m = put("f", "etag1", 5);
    f = finish(&b, &m, 1);
    commit(s, &f, 1, NULL, 0, 1500);
    assert_int_equal(zarr_gate_batch(s, &z1, 1500, &batch, &err), ZARR_OK);
    assert_int_equal(batch.id, b.batch.id);

    /* the opener refused while another request is in flight: kept */
    done(s, dir);
    s = fresh(&dir);

    a = begin("alice", &z1, 1, &in, 1);
    commit(s, NULL, 0, &a, 1, 1000);
    b = begin("alice", &z1, 1, &in2, 1);
    commit(s, NULL, 0, &b, 1, 1000);
    assert_int_equal(b.nopened, 0);

    f = finish(&a, NULL, 0);
    f.drop = a.opened;
    f.ndrop = a.nopened;
    commit(s, &f, 1, NULL, 0, 1100);
    assert_int_equal(zarr_gate_batch(s, &z1, 1100, &batch, &err), ZARR_OK);
    assert_int_equal(batch.inflight, 1);

    done(s, dir);
}


static void
test_survives_reopen(void **state)
{
    char           *dir;
    zarr_store_t   *s;
    zarr_begin_t    a;
    zarr_err_t      err;
    zarr_intent_t   in = { ZARR_MUT_DELETE, 0, "x", 1 };
    seen_t          seen;

    (void) state;
    s = fresh(&dir);

    a = begin("alice", &z1, 1, &in, 1);
    commit(s, NULL, 0, &a, 1, 1000);
    zarr_store_close(s);

    assert_int_equal(zarr_store_open(&s, dir, 16 << 20, 0, &err), ZARR_OK);
    memset(&seen, 0, sizeof(seen));
    zarr_gate_intents(s, first_intent, &seen, &err);
    assert_int_equal(seen.id, a.intent_id);
    assert_int_equal(seen.state, ZARR_INTENT_PENDING);

    a = begin("bob", &z1, 1, &in, 1);
    commit(s, NULL, 0, &a, 1, 1000 + 5 * MIN);
    assert_int_equal(a.rc, ZARR_ERR_CONFLICT);

    done(s, dir);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conflict_and_expiry),
        cmocka_unit_test(test_several_zarrs_all_or_nothing),
        cmocka_unit_test(test_group_commit_in_order),
        cmocka_unit_test(test_unknown_outcome_and_resolver),
        cmocka_unit_test(test_one_request_per_key),
        cmocka_unit_test(test_explicit_batch),
        cmocka_unit_test(test_batch_touch),
        cmocka_unit_test(test_survives_reopen),
        cmocka_unit_test(test_refused_opener_drops_batch),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
