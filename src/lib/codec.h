/* The only callers of xxhash and lz4: checksums and record compression. */
#ifndef TALLY_LIB_CODEC_H_
#define TALLY_LIB_CODEC_H_

#include <stddef.h>
#include <stdint.h>

/* XXH3 64-bit hash, seed 0. The algorithm is fixed by the batch format
 * version: changing it means a new format version. */
uint64_t codec_checksum(const void *p, size_t n);

/* XXH3 128-bit hash of a record key (the key index stores this, not the
 * key). */
struct codec_hash128 {
    uint64_t lo, hi;
};
struct codec_hash128 codec_hash128(const void *p, size_t n);

/* Worst-case compressed size of @n bytes. */
size_t codec_lz4_bound(size_t n);

/* lz4 block compression. Returns the compressed size, or 0 if @cap is too
 * small (or the data does not shrink, when the caller passes cap = n). */
size_t codec_lz4_compress(const void *src, size_t n, void *dst, size_t cap);

/* lz4 block decompression of exactly @out_len bytes. Returns 0 on success,
 * -1 if the input is malformed or does not decompress to exactly out_len. */
int codec_lz4_decompress(const void *src, size_t n, void *dst, size_t out_len);

#endif
