
/*
 * Helpers shared by the libFuzzer harnesses: a property check that
 * aborts (so that libFuzzer keeps the input) and a deterministic chunker.
 */


#ifndef _ZARR_FUZZ_H_INCLUDED_
#define _ZARR_FUZZ_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define FUZZ_CHECK(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__,        \
                    __LINE__, #cond);                                        \
            abort();                                                         \
        }                                                                    \
    } while (0)

/* p[0 .. n) lies inside base[0 .. len) */
#define FUZZ_INSIDE(p, n, base, len)                                         \
    ((const char *) (p) >= (const char *) (base)                             \
     && (const char *) (p) + (n) <= (const char *) (base) + (len))


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/* the next chunk length, 1 .. max, from a small xorshift state */
static inline size_t
fuzz_chunk(uint32_t *state, size_t max)
{
    uint32_t  x;

    x = *state ? *state : 0x9e3779b9;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;

    /* mostly small chunks, sometimes large ones */
    if (x & 0x100) {
        return 1 + (x >> 16) % (max < 8 ? max : 8);
    }

    return 1 + (x >> 12) % max;
}


#endif /* _ZARR_FUZZ_H_INCLUDED_ */
