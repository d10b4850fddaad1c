
/*
 * Lost intents at start-up (DESIGN section 4, contract v2, 3): see
 * zarr_recover.h.
 */


#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "zarr_gate.h"
#include "zarr_recover.h"
#include "zarr_tree_int.h"


int
zarr_recover_boot_id(const char *path, char *buf, size_t size)
{
    FILE    *f;
    size_t   n;

    f = fopen(path ? path : "/proc/sys/kernel/random/boot_id", "r");
    if (f == NULL) {
        return -1;
    }

    n = fread(buf, 1, size - 1, f);
    fclose(f);

    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) {
        n--;
    }

    buf[n] = '\0';

    return n > 0 ? 0 : -1;
}


int
zarr_recover_state_read(const char *dir, int *found, char *boot,
    size_t size, int *clean)
{
    int    c;
    char   path[4096], line[256], *p;
    FILE  *f;

    *found = 0;
    *clean = 0;
    boot[0] = '\0';

    snprintf(path, sizeof(path), "%s/%s", dir, ZARR_GATE_STATE);

    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }

    c = 0;

    while (fgets(line, sizeof(line), f)) {
        p = strchr(line, '\n');
        if (p) {
            *p = '\0';
        }

        if (strncmp(line, "boot=", 5) == 0 && strlen(line + 5) < size) {
            strcpy(boot, line + 5);
            c |= 1;

        } else if (strcmp(line, "clean=1") == 0) {
            *clean = 1;
            c |= 2;

        } else if (strcmp(line, "clean=0") == 0) {
            *clean = 0;
            c |= 2;
        }
    }

    fclose(f);

    /* both lines, or it says nothing */
    *found = (c == 3 && boot[0] != '\0');

    if (!*found) {
        *clean = 0;
    }

    return 0;
}


/* written whole or not at all: a temporary file, fsync, rename, fsync */

int
zarr_recover_state_write(const char *dir, const char *boot, int clean,
    zarr_err_t *err)
{
    int     fd, n, len;
    char    path[4096], tmp[4096], text[256];

    snprintf(path, sizeof(path), "%s/%s", dir, ZARR_GATE_STATE);
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, ZARR_GATE_STATE);

    len = snprintf(text, sizeof(text), "boot=%s\nclean=%d\n", boot, clean);

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd == -1) {
        return zarr_tree_err(err, ZARR_ERR_STORE, "open(\"%s\"): %s", tmp,
                             strerror(errno));
    }

    n = write(fd, text, len);

    if (n != len || fsync(fd) != 0) {
        close(fd);
        return zarr_tree_err(err, ZARR_ERR_STORE, "writing \"%s\": %s",
                             tmp, strerror(errno));
    }

    close(fd);

    if (rename(tmp, path) != 0) {
        return zarr_tree_err(err, ZARR_ERR_STORE, "rename(\"%s\"): %s", tmp,
                             strerror(errno));
    }

    fd = open(dir, O_RDONLY | O_DIRECTORY);

    if (fd != -1) {
        (void) fsync(fd);
        close(fd);
    }

    return ZARR_OK;
}


/* in the child: every record of every table of the gate, read */

static int
zarr_recover_gate_read(const char *path)
{
    int           i, mrc;
    MDB_env      *env;
    MDB_txn      *txn;
    MDB_dbi       dbi;
    MDB_val       k, v;
    MDB_cursor   *cur;
    volatile unsigned char  sum;

    static const char  *names[] = { "batches", "intents", "keys", "meta" };

    if (mdb_env_create(&env) != 0
        || mdb_env_set_maxdbs(env, 8) != 0
        || mdb_env_open(env, path, MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS,
                        0644) != 0
        || mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
    {
        return 1;
    }

    sum = 0;

    for (i = 0; i < 4; i++) {
        if (mdb_dbi_open(txn, names[i], 0, &dbi) != 0
            || mdb_cursor_open(txn, dbi, &cur) != 0)
        {
            return 1;
        }

        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);

        while (mrc == 0) {
            if (k.mv_size) {
                sum ^= ((unsigned char *) k.mv_data)[k.mv_size - 1];
            }

            if (v.mv_size) {
                sum ^= ((unsigned char *) v.mv_data)[v.mv_size - 1];
            }

            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }

        if (mrc != MDB_NOTFOUND) {
            return 1;
        }

        mdb_cursor_close(cur);
    }

    mdb_txn_abort(txn);
    mdb_env_close(env);

    /* the pages were read: the value itself does not matter */
    return sum & 0;
}


int
zarr_recover_gate_ok(const char *dir)
{
    int            status;
    char           path[4096];
    pid_t          pid;
    struct stat    st;
    struct rlimit  rl;

    snprintf(path, sizeof(path), "%s/%s", dir, ZARR_GATE_DIR);

    if (stat(path, &st) != 0) {
        return 0;
    }

    pid = fork();

    if (pid == -1) {
        return 0;
    }

    if (pid == 0) {
        /* garbage may crash LMDB: here, not in the caller; no core */
        rl.rlim_cur = 0;
        rl.rlim_max = 0;
        (void) setrlimit(RLIMIT_CORE, &rl);
        alarm(60);
        _exit(zarr_recover_gate_read(path));
    }

    while (waitpid(pid, &status, 0) == -1) {
        if (errno != EINTR) {
            return 0;
        }
    }

    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}


int
zarr_recover_startup(const char *dir, const char *boot, size_t map_size,
    zarr_recover_t *res, zarr_err_t *err)
{
    int            rc, found, clean, exists;
    char           sboot[ZARR_BOOT_ID_MAX + 1], path[4096], to[4096];
    struct stat    st;
    zarr_store_t  *s;

    memset(res, 0, sizeof(zarr_recover_t));

    if (zarr_recover_state_read(dir, &found, sboot, sizeof(sboot), &clean)
        != 0)
    {
        found = 0;
    }

    snprintf(path, sizeof(path), "%s/%s", dir, ZARR_GATE_DIR);
    exists = (stat(path, &st) == 0);

    if (!exists) {
        res->lost = 1;
        res->reason = "the intent store is missing";

    } else if (!zarr_recover_gate_ok(dir)) {
        res->lost = 1;
        res->reason = "the intent store cannot be read back";

    } else if (!found) {
        res->lost = 1;
        res->reason = "no record of how the gateway last stopped";

    } else if (!clean && strcmp(sboot, boot) != 0) {
        res->lost = 1;
        res->reason = "the system restarted since the gateway last ran, "
                      "and the gateway did not stop cleanly";

    } else {
        res->reason = clean ? "the gateway stopped cleanly"
                            : "the same system boot: the intents survive";
    }

    rc = zarr_store_open(&s, dir, map_size, ZARR_STORE_NOGATE, err);
    if (rc != ZARR_OK) {
        return rc;
    }

    rc = zarr_gate_recover_mark(s, res->lost, &res->marked, err);

    zarr_store_close(s);

    if (rc != ZARR_OK) {
        return rc;
    }

    /* the marks are durable: the old intents can go */

    if (res->lost && exists) {
        snprintf(to, sizeof(to), "%s/%s.lost.%ld", dir, ZARR_GATE_DIR,
                 (long) time(NULL));

        if (rename(path, to) != 0) {
            return zarr_tree_err(err, ZARR_ERR_STORE,
                                 "rename(\"%s\", \"%s\"): %s", path, to,
                                 strerror(errno));
        }

        snprintf(res->moved, sizeof(res->moved), "%s.lost.%ld",
                 ZARR_GATE_DIR, (long) time(NULL));
    }

    return zarr_recover_state_write(dir, boot, 0, err);
}


/* the gate on disk, then "clean": the next start may trust it */

int
zarr_recover_clean_exit(const char *dir, const char *boot, zarr_err_t *err)
{
    int   fd;
    char  path[4096];

    snprintf(path, sizeof(path), "%s/%s/data.mdb", dir, ZARR_GATE_DIR);

    fd = open(path, O_RDONLY);
    if (fd == -1) {
        return zarr_tree_err(err, ZARR_ERR_STORE, "open(\"%s\"): %s", path,
                             strerror(errno));
    }

    if (fsync(fd) != 0) {
        close(fd);
        return zarr_tree_err(err, ZARR_ERR_STORE, "fsync(\"%s\"): %s", path,
                             strerror(errno));
    }

    close(fd);

    return zarr_recover_state_write(dir, boot, 1, err);
}
