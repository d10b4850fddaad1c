
/*
 * zarr_listing: the lines of a listing given to zarrctl checksum
 * --listing: "PATH<TAB>SIZE<TAB>ETAG" (tsv) or
 * {"path":..,"size":..,"etag":..} (jsonl).
 *
 * Plain C, no nginx types, no static mutable state.  One call reads one
 * line as getline() returns it (with its "\n" or "\r\n", or without at
 * the end of the input); the caller counts lines and reports them.
 */


#ifndef _ZARR_LISTING_H_INCLUDED_
#define _ZARR_LISTING_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define ZARR_LISTING_OK          0
#define ZARR_LISTING_BLANK       1     /* nothing on the line: skip it */
#define ZARR_LISTING_MALFORMED  -1     /* err says why */
#define ZARR_LISTING_NOMEM      -2

/* room for any message the parsers write into err */
#define ZARR_LISTING_ERR_MAX     160


typedef struct {
    /* path: not NUL-terminated, may hold any byte (checked by the tree) */
    const char    *path;
    size_t         path_len;
    uint64_t       size;

    /* surrounding double quotes cut; never a byte below 0x20 or 0x7f */
    const char    *etag;
    size_t         etag_len;

    /* private: what path and etag point into for a jsonl line */
    void          *json;
} zarr_listing_entry_t;


/*
 * A tsv line: split at its last two TABs (a path may hold TABs); SIZE is
 * decimal digits only, at most UINT64_MAX.  path and etag point into
 * line.  Returns ZARR_LISTING_OK, ZARR_LISTING_BLANK or
 * ZARR_LISTING_MALFORMED with a message in err (errlen bytes).
 */
int zarr_listing_tsv(const char *line, size_t len, zarr_listing_entry_t *e,
    char *err, size_t errlen);

/*
 * A jsonl line: one JSON object with a string "path" (NUL allowed as
 * \u0000), an integer "size" >= 0 and a string "etag".  Returns as
 * zarr_listing_tsv(), or ZARR_LISTING_NOMEM; after ZARR_LISTING_OK,
 * release e with zarr_listing_entry_free().
 */
int zarr_listing_jsonl(const char *line, size_t len,
    zarr_listing_entry_t *e, char *err, size_t errlen);

void zarr_listing_entry_free(zarr_listing_entry_t *e);


#endif /* _ZARR_LISTING_H_INCLUDED_ */
