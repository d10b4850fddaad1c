
/*
 * Lost intents (DESIGN section 4, contract v2, 3): the gate's environment
 * is never fsynced, so an operating-system crash may lose or tear it.
 * At start-up, before any worker, zarr_recover_startup() decides from
 * DIR/gate.state (the boot id of the last start and whether the last stop
 * was clean) and from a check of DIR/gate whether the intents are lost;
 * then every zarr that had a batch is marked to be rebuilt from a listing
 * (zarr_gate_recover_mark()) and the gate is moved aside.  A torn or
 * unreadable gate never stops start-up: it is read by a child process.
 * zarr_recover_clean_exit() flushes the gate and records a clean stop.
 */


#ifndef _ZARR_RECOVER_H_INCLUDED_
#define _ZARR_RECOVER_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "zarr_tree.h"


#define ZARR_GATE_STATE  "gate.state"
#define ZARR_BOOT_ID_MAX 64


typedef struct {
    int              lost;          /* the intents are lost */
    const char      *reason;        /* why (lost), or why not */
    uint64_t         marked;        /* zarrs newly marked to recover */
    char             moved[64];     /* where the old gate went, if moved */
} zarr_recover_t;


/* the kernel's boot id (boot_id_path NULL: /proc/sys/kernel/random/...) */
int zarr_recover_boot_id(const char *boot_id_path, char *buf, size_t size);

/* what a state file says: *found 0 when it is missing or unreadable */
int zarr_recover_state_read(const char *dir, int *found, char *boot,
    size_t size, int *clean);
int zarr_recover_state_write(const char *dir, const char *boot, int clean,
    zarr_err_t *err);

/* 1: DIR/gate opens and reads back whole (checked in a child process) */
int zarr_recover_gate_ok(const char *dir);

int zarr_recover_startup(const char *dir, const char *boot, size_t map_size,
    zarr_recover_t *res, zarr_err_t *err);

int zarr_recover_clean_exit(const char *dir, const char *boot,
    zarr_err_t *err);


#endif /* _ZARR_RECOVER_H_INCLUDED_ */
