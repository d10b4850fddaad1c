/*
 * zarr_hash: md5 and sha256 as lowercase hex, on top of OpenSSL's EVP API.
 *
 * Plain C, no nginx types, no static mutable state: safe from any thread.
 * Every function returns 0 on success and -1 when OpenSSL fails (which, for
 * these digests, only happens on allocation failure or with a provider
 * configuration that lacks md5, such as FIPS-only).
 */

#ifndef _ZARR_HASH_H_INCLUDED_
#define _ZARR_HASH_H_INCLUDED_


#include <stddef.h>


#define ZARR_MD5_LEN          16
#define ZARR_MD5_HEX_LEN      32
#define ZARR_SHA256_LEN       32
#define ZARR_SHA256_HEX_LEN   64

/* sha256 of the empty string, the payload hash of a request without body */
#define ZARR_SHA256_EMPTY_HEX                                                 \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


typedef enum {
    ZARR_HASH_MD5 = 0,
    ZARR_HASH_SHA256
} zarr_hash_type_e;


/* an incremental digest (wraps an EVP_MD_CTX) */
typedef struct zarr_hash_s  zarr_hash_t;


/* out must hold ZARR_MD5_HEX_LEN + 1 bytes; it is NUL-terminated */
int zarr_md5_hex(const void *data, size_t len, char *out);

/* out must hold ZARR_SHA256_HEX_LEN + 1 bytes; it is NUL-terminated */
int zarr_sha256_hex(const void *data, size_t len, char *out);

/* out must hold ZARR_SHA256_LEN bytes */
int zarr_hmac_sha256(const void *key, size_t key_len, const void *data,
    size_t data_len, unsigned char *out);

/* lowercase hex of n bytes into out (2 * n + 1 bytes, NUL-terminated) */
void zarr_hex_encode(const unsigned char *in, size_t n, char *out);

/*
 * Incremental hashing, e.g. md5 of a large file read in blocks:
 *     h = zarr_hash_create(ZARR_HASH_MD5);
 *     zarr_hash_update(h, buf, n); ...
 *     zarr_hash_final_hex(h, hex);
 *     zarr_hash_destroy(h);
 * zarr_hash_final_hex() writes the hex digest of the type's length + NUL;
 * the context may not be updated afterwards.
 */
zarr_hash_t *zarr_hash_create(zarr_hash_type_e type);
int zarr_hash_update(zarr_hash_t *h, const void *data, size_t len);
int zarr_hash_final_hex(zarr_hash_t *h, char *out);
/* starts a new digest of the same type, after zarr_hash_final_hex() too */
int zarr_hash_reset(zarr_hash_t *h);
void zarr_hash_destroy(zarr_hash_t *h);


#endif /* _ZARR_HASH_H_INCLUDED_ */
