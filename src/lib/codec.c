/* The only callers of xxhash and lz4: checksums and record compression. */
#include "lib/codec.h"

#include <limits.h>
#include <lz4.h>
#include <xxhash.h>

uint64_t codec_checksum(const void *p, size_t n)
{
    return XXH3_64bits(p, n);
}

struct codec_hash128 codec_hash128(const void *p, size_t n)
{
    XXH128_hash_t h = XXH3_128bits(p, n);
    struct codec_hash128 out = {h.low64, h.high64};
    return out;
}

size_t codec_lz4_bound(size_t n)
{
    return n > (size_t)LZ4_MAX_INPUT_SIZE ? 0 : (size_t)LZ4_compressBound((int)n);
}

size_t codec_lz4_compress(const void *src, size_t n, void *dst, size_t cap)
{
    if (n > (size_t)LZ4_MAX_INPUT_SIZE || cap > INT_MAX) {
        return 0;
    }
    int rv = LZ4_compress_default(src, dst, (int)n, (int)cap);
    return rv > 0 ? (size_t)rv : 0;
}

int codec_lz4_decompress(const void *src, size_t n, void *dst, size_t out_len)
{
    if (n > INT_MAX || out_len > INT_MAX) {
        return -1;
    }
    int rv = LZ4_decompress_safe(src, dst, (int)n, (int)out_len);
    return rv == (int)out_len ? 0 : -1;
}
