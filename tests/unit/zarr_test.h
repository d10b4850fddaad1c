
/*
 * Helpers shared by the cmocka unit tests.
 */


#ifndef _ZARR_TEST_H_INCLUDED_
#define _ZARR_TEST_H_INCLUDED_


#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>


/* the vectors file: $ZARR_VECTORS or the repository's copy */
static inline json_t *
zarr_test_vectors(void)
{
    const char    *path;
    json_t        *j;
    json_error_t   err;

    path = getenv("ZARR_VECTORS");
    if (path == NULL) {
        path = "tests/zarr_checksum_vectors.json";
    }

    j = json_load_file(path, 0, &err);
    if (j == NULL) {
        fail_msg("cannot load %s: %s", path, err.text);
    }

    return j;
}


/* a fresh temporary directory; free() the result */
static inline char *
zarr_test_tmpdir(void)
{
    char  *d;

    d = strdup("/tmp/zarr-test-XXXXXX");
    assert_non_null(d);
    assert_non_null(mkdtemp(d));

    return d;
}


static inline void
zarr_test_rmdir(const char *d)
{
    char  cmd[512];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
}


#endif /* _ZARR_TEST_H_INCLUDED_ */
