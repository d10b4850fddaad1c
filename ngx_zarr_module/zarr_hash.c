/*
 * md5 / sha256 / hmac-sha256 helpers over OpenSSL 3 EVP (no deprecated API).
 */

#include <stdlib.h>
#include <limits.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "zarr_hash.h"


struct zarr_hash_s {
    EVP_MD_CTX    *ctx;
    const EVP_MD  *md;
};


static const EVP_MD *zarr_hash_md(zarr_hash_type_e type);
static int zarr_digest_hex(const EVP_MD *md, const void *data, size_t len,
    char *out);


static const EVP_MD *
zarr_hash_md(zarr_hash_type_e type)
{
    switch (type) {

    case ZARR_HASH_MD5:
        return EVP_md5();

    case ZARR_HASH_SHA256:
        return EVP_sha256();
    }

    return NULL;
}


static int
zarr_digest_hex(const EVP_MD *md, const void *data, size_t len, char *out)
{
    unsigned int   n;
    unsigned char  buf[EVP_MAX_MD_SIZE];

    if (md == NULL) {
        return -1;
    }

    if (EVP_Digest(data, len, buf, &n, md, NULL) != 1) {
        return -1;
    }

    zarr_hex_encode(buf, n, out);

    return 0;
}


int
zarr_md5_hex(const void *data, size_t len, char *out)
{
    return zarr_digest_hex(EVP_md5(), data, len, out);
}


int
zarr_sha256_hex(const void *data, size_t len, char *out)
{
    return zarr_digest_hex(EVP_sha256(), data, len, out);
}


int
zarr_hmac_sha256(const void *key, size_t key_len, const void *data,
    size_t data_len, unsigned char *out)
{
    unsigned int  n;

    if (key_len > INT_MAX) {
        return -1;
    }

    /* HMAC() with a non-NULL output buffer is reentrant */

    n = 0;

    if (HMAC(EVP_sha256(), key, (int) key_len, data, data_len, out, &n)
        == NULL
        || n != ZARR_SHA256_LEN)
    {
        return -1;
    }

    return 0;
}


void
zarr_hex_encode(const unsigned char *in, size_t n, char *out)
{
    size_t             i;
    static const char  hex[] = "0123456789abcdef";

    for (i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 0x0f];
    }

    out[2 * n] = '\0';
}


zarr_hash_t *
zarr_hash_create(zarr_hash_type_e type)
{
    zarr_hash_t   *h;
    const EVP_MD  *md;

    md = zarr_hash_md(type);
    if (md == NULL) {
        return NULL;
    }

    h = malloc(sizeof(zarr_hash_t));
    if (h == NULL) {
        return NULL;
    }

    h->ctx = EVP_MD_CTX_new();
    if (h->ctx == NULL) {
        free(h);
        return NULL;
    }

    if (EVP_DigestInit_ex(h->ctx, md, NULL) != 1) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
        return NULL;
    }

    h->md = md;

    return h;
}


int
zarr_hash_reset(zarr_hash_t *h)
{
    return EVP_DigestInit_ex(h->ctx, h->md, NULL) == 1 ? 0 : -1;
}


int
zarr_hash_update(zarr_hash_t *h, const void *data, size_t len)
{
    if (len == 0) {
        return 0;
    }

    return EVP_DigestUpdate(h->ctx, data, len) == 1 ? 0 : -1;
}


int
zarr_hash_final_hex(zarr_hash_t *h, char *out)
{
    unsigned int   n;
    unsigned char  buf[EVP_MAX_MD_SIZE];

    if (EVP_DigestFinal_ex(h->ctx, buf, &n) != 1) {
        return -1;
    }

    zarr_hex_encode(buf, n, out);

    return 0;
}


void
zarr_hash_destroy(zarr_hash_t *h)
{
    if (h == NULL) {
        return;
    }

    EVP_MD_CTX_free(h->ctx);
    free(h);
}
