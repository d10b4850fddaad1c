
/*
 * Test tool: applies mutations read from stdin to a store, in groups.
 *   put<TAB>PATH<TAB>SIZE<TAB>ETAG[<TAB>VERSION_ID]
 *   del<TAB>PATH
 *   flush
 * usage: store_apply STORE_DIR BUCKET ZARR_ID [GROUP]
 * Exit 0, or 1 with a message.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zarr_tree.h"


int
main(int argc, char **argv)
{
    char             *line, **saved, *f[5], *p;
    size_t            cap, n, group, bad, i, k;
    ssize_t           len;
    zarr_store_t     *s;
    zarr_err_t        err;
    zarr_mutation_t  *m;

    if (argc < 4) {
        fprintf(stderr, "usage: store_apply STORE BUCKET ZARR [GROUP]\n");
        return 2;
    }

    group = argc > 4 ? strtoul(argv[4], NULL, 10) : 100;

    if (zarr_store_open(&s, argv[1], 1ULL << 30, 0, &err) != ZARR_OK) {
        fprintf(stderr, "store_apply: %s\n", err.msg);
        return 1;
    }

    m = calloc(group, sizeof(zarr_mutation_t));
    saved = calloc(group, sizeof(char *));
    line = NULL;
    cap = 0;
    n = 0;

    for ( ;; ) {
        len = getline(&line, &cap, stdin);

        if (len > 0 && line[len - 1] == '\n') {
            line[--len] = '\0';
        }

        if (len > 0 && strcmp(line, "flush") != 0) {
            saved[n] = strdup(line);
            p = saved[n];

            for (k = 0; k < 5; k++) {
                f[k] = p;
                p = p ? strchr(p, '\t') : NULL;
                if (p) {
                    *p++ = '\0';
                }
            }

            memset(&m[n], 0, sizeof(zarr_mutation_t));
            m[n].op = strcmp(f[0], "del") == 0 ? ZARR_MUT_DELETE
                                               : ZARR_MUT_PUT;
            m[n].bucket = argv[2];
            m[n].bucket_len = strlen(argv[2]);
            m[n].zarr_id = argv[3];
            m[n].zarr_id_len = strlen(argv[3]);
            m[n].path = f[1] ? f[1] : "";
            m[n].path_len = strlen(m[n].path);

            if (m[n].op == ZARR_MUT_PUT) {
                if (f[2] == NULL || f[3] == NULL) {
                    fprintf(stderr, "store_apply: bad line\n");
                    return 2;
                }

                m[n].size = strtoull(f[2], NULL, 10);
                m[n].etag = f[3];
                m[n].etag_len = strlen(f[3]);

                if (f[4]) {
                    m[n].version_id = f[4];
                    m[n].version_id_len = strlen(f[4]);
                }
            }

            n++;
        }

        if (n && (n == group || len < 0 || strcmp(line, "flush") == 0)) {
            if (zarr_store_apply(s, m, n, &bad, &err) != ZARR_OK) {
                fprintf(stderr, "store_apply: %s\n", err.msg);
                return 1;
            }

            for (i = 0; i < n; i++) {
                free(saved[i]);
            }

            n = 0;
        }

        if (len >= 0 && strcmp(line, "flush") == 0) {
            if (zarr_store_flush(s, NULL, 0, NULL, 0, &err) != ZARR_OK) {
                fprintf(stderr, "store_apply: %s\n", err.msg);
                return 1;
            }
        }

        if (len < 0) {
            break;
        }
    }

    free(line);
    free(saved);
    free(m);
    zarr_store_close(s);

    return 0;
}
