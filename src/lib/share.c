/* Shares of a shared consumer group (share.h). */
#include "lib/share.h"

#include "lib/codec.h"

uint32_t share_of(const void *key, size_t key_len, uint64_t offset, uint32_t n_shares)
{
    if (n_shares <= 1) {
        return 0;
    }
    /* XXH3-64 (codec_checksum) is fixed by its specification, so the
     * mapping is the same on every node, client and version. */
    uint64_t h = key != NULL && key_len > 0 ? codec_checksum(key, key_len) : offset;
    return (uint32_t)(h % n_shares);
}
