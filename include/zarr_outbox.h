
/*
 * The mirror's outbox (DESIGN section 3): directories whose .checksum
 * object is to be written or deleted, kept in LMDB with the tree, so that
 * it survives restarts.  The tree queues a directory whenever it becomes
 * dirty, appears or disappears (zarr_tree_apply.c); the mirror sends the
 * directory's state at the time it sends, and drops the entry only when
 * that state has not moved since (zarr_outbox_done), so an older document
 * never overwrites a newer one.
 *
 * tables:
 *   outbox  bucket NUL zarr_id NUL dir id (8, BE) -> directory path
 *   zmeta   bucket NUL zarr_id -> "c" checksum prefix
 */


#ifndef _ZARR_OUTBOX_H_INCLUDED_
#define _ZARR_OUTBOX_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "zarr_tree.h"


typedef struct {
    const char      *bucket;
    size_t           bucket_len;
    const char      *zarr_id;
    size_t           zarr_id_len;
    const char      *dir;               /* "" for the root */
    size_t           dir_len;
    uint64_t         id;
    const char      *checksum_prefix;   /* as recorded for the zarr */
    size_t           checksum_prefix_len;
} zarr_outbox_entry_t;


/* return nonzero to stop */
typedef int (*zarr_outbox_cb)(void *ctx, const zarr_outbox_entry_t *e);


/* entries in key order; bucket NULL: all zarrs */
int zarr_outbox_list(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, zarr_outbox_cb cb, void *ctx,
    zarr_err_t *err);

/* how many entries (of one zarr, or all when bucket is NULL) */
int zarr_outbox_count(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, uint64_t *n, zarr_err_t *err);

/*
 * The mirror sent e: digest is the digest of the document it wrote, NULL
 * when it deleted the object (the directory did not exist, or it is the
 * root of an empty zarr).  The entry is dropped when the directory is
 * still in that state (clean with that digest, or still absent or empty);
 * else it stays for the next round.
 */
int zarr_outbox_done(zarr_store_t *s, const zarr_outbox_entry_t *e,
    const char *digest, zarr_err_t *err);

/* queues every directory of a zarr (reconcile: rewrite the mirror) */
int zarr_outbox_queue_all(zarr_store_t *s, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    zarr_err_t *err);

/* the checksum prefix of a zarr's .checksum objects; set when it differs */
int zarr_zmeta_set(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, const char *checksum_prefix,
    size_t checksum_prefix_len, zarr_err_t *err);

/*
 * When the mirror's next round starts, in ms after the last one ended:
 * at once when the last round left entries for later (more), else after
 * the delay, or after idle_per_busy times the last round's duration when
 * that is longer (the duty cycle), at most max_ms.
 */
#define ZARR_MIRROR_IDLE_PER_BUSY  9
#define ZARR_MIRROR_MAX_IDLE_MS    30000

uint64_t zarr_mirror_next_ms(uint64_t delay_ms, uint64_t took_ms, int more);


#endif /* _ZARR_OUTBOX_H_INCLUDED_ */
