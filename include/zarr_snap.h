
/*
 * Snapshots of zarrs in the store (DESIGN section 10): a frozen copy of a
 * zarr's file records (path, size, ETag, version id) and directory
 * records (digest, count, size), taken in bounded write transactions.
 *
 * Tables:
 *   snaps    bucket NUL zarr_id NUL name    -> snapshot record
 *   snapent  snapshot id (8, BE) 'f' path   -> file record
 *            snapshot id (8, BE) 'd' dir    -> directory record ("": root)
 *   held     zarr root id (8, BE) path NUL version NUL snapshot id (8)
 *                                           -> snapshot name
 *
 * snapent keys sort as S3 sorts the keys (byte order of the paths), so
 * that a listing is a cursor walk; held answers "does a snapshot hold
 * this version" with one seek.  Paths longer than ZARR_SNAP_PATH_MAX and
 * version ids longer than ZARR_SNAP_VERSION_MAX cannot be snapshotted
 * (LMDB keys are at most 511 bytes).
 */


#ifndef _ZARR_SNAP_H_INCLUDED_
#define _ZARR_SNAP_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "zarr_tree.h"


#define ZARR_SNAP_NAME_MAX     64
/* what zarr_snap_name_valid() accepts, for error messages */
#define ZARR_SNAP_NAME_RULE  "1 to 64 of A-Z a-z 0-9 . _ -, not . or .."
#define ZARR_SNAP_PATH_MAX     380
#define ZARR_SNAP_VERSION_MAX  96

/* records per write transaction while a snapshot is taken or deleted */
#define ZARR_SNAP_CHUNK        16384

/* a file of the zarr has no version id: the bucket is not versioned */
#define ZARR_ERR_UNVERSIONED   110


typedef struct {
    char            name[ZARR_SNAP_NAME_MAX + 1];
    size_t          name_len;
    uint64_t        id;
    uint64_t        created;           /* Unix seconds */
    zarr_dir_sum_t  sum;               /* the zarr's digest, count, size */
} zarr_snap_t;


typedef struct {
    uint64_t        size;
    char            etag[ZARR_ETAG_MAX + 1];
    size_t          etag_len;
    char            version[ZARR_SNAP_VERSION_MAX + 1];
    size_t          version_len;
} zarr_snap_file_t;


typedef int (*zarr_snap_cb)(void *ctx, const zarr_snap_t *snap);


/* a name of [A-Za-z0-9._-]{1,64}; 1 when valid */
int zarr_snap_name_valid(const char *name, size_t len);

/*
 * Takes a snapshot of a zarr: its current files and directories under
 * name.  The caller keeps the zarr still meanwhile (holds its batch).
 * Returns ZARR_ERR_NOTFOUND (unknown zarr), ZARR_ERR_EXISTS (the name is
 * taken), ZARR_ERR_UNVERSIONED (a file without a version id),
 * ZARR_ERR_INVALID (a bad name, a path or version id too long) with
 * nothing left behind; chunk: records per write transaction (0: the
 * default).
 */
int zarr_snap_create(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, const char *name,
    size_t name_len, uint64_t created, size_t chunk, zarr_snap_t *snap,
    zarr_err_t *err);

/* a complete snapshot; ZARR_ERR_NOTFOUND when none has that name */
int zarr_snap_get(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, const char *name,
    size_t name_len, zarr_snap_t *snap, zarr_err_t *err);

/* the complete snapshots of a zarr, by name */
int zarr_snap_list(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, zarr_snap_cb cb, void *ctx,
    zarr_err_t *err);

/* forgets a snapshot, in bounded transactions; ZARR_ERR_NOTFOUND */
int zarr_snap_delete(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, const char *name,
    size_t name_len, size_t chunk, zarr_err_t *err);

/* a file of snapshot id; ZARR_ERR_NOTFOUND */
int zarr_snap_file(zarr_store_t *s, uint64_t id, const char *path,
    size_t path_len, zarr_snap_file_t *f, zarr_err_t *err);

/*
 * The files of snapshot id whose paths sort after "after" (after_len 0:
 * from the first) and begin with prefix, in byte order, until cb returns
 * nonzero.  cb may return ZARR_SNAP_SKIP with *skip_to set (a path):
 * the walk goes on after every path beginning with skip_to.
 */
#define ZARR_SNAP_STOP   1
#define ZARR_SNAP_SKIP   2

typedef int (*zarr_snap_scan_cb)(void *ctx, const char *path,
    size_t path_len, const zarr_snap_file_t *f, size_t *skip_len);

int zarr_snap_scan(zarr_store_t *s, uint64_t id, const char *prefix,
    size_t prefix_len, const char *after, size_t after_len,
    zarr_snap_scan_cb cb, void *ctx, zarr_err_t *err);

/* the .checksum document of a directory of a snapshot, appended to doc */
int zarr_snap_checksum_doc(zarr_store_t *s, const char *bucket,
    size_t bucket_len, const char *zarr_id, size_t zarr_id_len,
    const char *name, size_t name_len, const char *dir, size_t dir_len,
    zarr_buf_t *doc, zarr_err_t *err);

/*
 * Whether a snapshot holds version of path in a zarr: ZARR_OK with the
 * first such snapshot's name in name (ZARR_SNAP_NAME_MAX + 1 bytes), or
 * ZARR_ERR_NOTFOUND.
 */
int zarr_snap_held(zarr_store_t *s, const char *bucket, size_t bucket_len,
    const char *zarr_id, size_t zarr_id_len, const char *path,
    size_t path_len, const char *version, size_t version_len, char *name,
    zarr_err_t *err);


/*
 * A ListObjectsV2 or ListObjects answer for keys under a snapshot, read
 * from the store.  Keys are base + path; every string is raw (decoded).
 */
typedef struct {
    const char     *bucket;
    size_t          bucket_len;
    const char     *base;              /* "<snapshot prefix><id>/<name>/" */
    size_t          base_len;
    const char     *prefix;            /* the whole prefix asked for */
    size_t          prefix_len;
    const char     *delimiter;         /* NULL: none */
    size_t          delimiter_len;
    const char     *after;             /* list after this key; NULL: none */
    size_t          after_len;

    /* echoed: V2 start-after and continuation-token, V1 marker */
    const char     *start_after;
    size_t          start_after_len;
    const char     *token;
    size_t          token_len;
    const char     *marker;
    size_t          marker_len;

    uint64_t        max_keys;          /* at most 1000 are listed */
    uint64_t        created;           /* LastModified of every key */
    int             v2;
    int             url;               /* encoding-type=url */
} zarr_snap_listing_t;


/* appends the XML body; ZARR_OK, ZARR_ERR_NOMEM or a store error */
int zarr_snap_list_xml(zarr_store_t *s, uint64_t id,
    const zarr_snap_listing_t *q, zarr_buf_t *out, zarr_err_t *err);

/*
 * A continuation token: the hex of the key it continues after.  decode
 * returns the key's length, or -1 for a token that is not one of ours
 * (out: len / 2 bytes).
 */
void zarr_snap_token_encode(zarr_buf_t *b, const char *key, size_t len);
int zarr_snap_token_decode(const char *token, size_t len, char *out);


/*
 * The snapshot's manifest in fsspec's reference format, version 1:
 * {"version":1,"digest":..,"file_count":..,"size":..,"refs":{"<path>":
 * ["s3://<bucket>/<zarr_prefix><zarr_id>/<path>?versionId=V"],..}},
 * handed to out() in pieces of about piece bytes (the last one smaller,
 * last = 1), never whole in memory: the files are read in short read
 * transactions of ZARR_SNAP_CHUNK files.  out() returns nonzero to stop
 * (then ZARR_ERR_INVALID).
 */
typedef int (*zarr_snap_out_cb)(void *ctx, const char *buf, size_t len,
    int last);

int zarr_snap_manifest(zarr_store_t *s, const zarr_snap_t *snap,
    const char *bucket, size_t bucket_len, const char *zarr_prefix,
    size_t zarr_prefix_len, const char *zarr_id, size_t zarr_id_len,
    size_t piece, zarr_snap_out_cb out, void *ctx, zarr_err_t *err);


#endif /* _ZARR_SNAP_H_INCLUDED_ */
