/* CRC-32C (Castagnoli), table-driven, one byte at a time (see crc32c.h). */
#include "kafka/crc32c.h"

#include <stdbool.h>

static uint32_t crc32c__table[256];
static bool crc32c__ready;

/* Build the table on first use; the loop is single-threaded and the table
 * is the same whoever builds it, so a race would only compute it twice. */
static void crc32c__init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
        crc32c__table[i] = c;
    }
    crc32c__ready = true;
}

uint32_t kafka_crc32c(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t c = 0xFFFFFFFFu;
    if (!crc32c__ready) {
        crc32c__init();
    }
    for (size_t i = 0; i < n; i++) {
        c = crc32c__table[(c ^ b[i]) & 0xFFu] ^ (c >> 8);
    }
    return c ^ 0xFFFFFFFFu;
}
