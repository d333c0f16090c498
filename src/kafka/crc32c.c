/* CRC-32C (Castagnoli). On x86-64 processors with SSE4.2 (every one since
 * 2008) the crc32 instruction does 8 bytes per step; elsewhere a table
 * loop, "slicing by 8", does: eight 256-entry tables let it take 8 bytes
 * per step instead of one. A fetch answer checksums every byte it sends,
 * so this is on the consume path. */
#include "kafka/crc32c.h"

#include <stdbool.h>
#include <string.h>

static uint32_t crc32c__table[8][256];
static bool crc32c__ready;

/* Build the tables on first use; the loop is single-threaded (and the
 * tables are the same whoever builds them). Table 0 is the classic
 * byte-at-a-time table; table k advances a byte through k more zero bytes. */
static void crc32c__init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
        crc32c__table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        for (int t = 1; t < 8; t++) {
            uint32_t prev = crc32c__table[t - 1][i];
            crc32c__table[t][i] = crc32c__table[0][prev & 0xFFu] ^ (prev >> 8);
        }
    }
    crc32c__ready = true;
}

uint32_t kafka_crc32c_table(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t c = 0xFFFFFFFFu;
    if (!crc32c__ready) {
        crc32c__init();
    }
    while (n >= 8) {
        uint32_t lo = c ^ ((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                           (uint32_t)b[3] << 24);
        uint32_t hi = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 |
                      (uint32_t)b[7] << 24;
        c = crc32c__table[7][lo & 0xFFu] ^ crc32c__table[6][(lo >> 8) & 0xFFu] ^
            crc32c__table[5][(lo >> 16) & 0xFFu] ^ crc32c__table[4][lo >> 24] ^
            crc32c__table[3][hi & 0xFFu] ^ crc32c__table[2][(hi >> 8) & 0xFFu] ^
            crc32c__table[1][(hi >> 16) & 0xFFu] ^ crc32c__table[0][hi >> 24];
        b += 8;
        n -= 8;
    }
    while (n-- > 0) {
        c = crc32c__table[0][(c ^ *b++) & 0xFFu] ^ (c >> 8);
    }
    return c ^ 0xFFFFFFFFu;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRC32C__HW 1

/* The instruction computes exactly this CRC (reflected 0x1EDC6F41), with
 * the same pre- and post-inversion done here. Compiled for SSE4.2 alone,
 * called only after the CPU said it has it. */
__attribute__((target("sse4.2"))) static uint32_t crc32c__hw(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t c = 0xFFFFFFFFu;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, b, 8); /* unaligned, little-endian: what the instruction takes */
        c = __builtin_ia32_crc32di(c, v);
        b += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n-- > 0) {
        c32 = __builtin_ia32_crc32qi(c32, *b++);
    }
    return c32 ^ 0xFFFFFFFFu;
}
#endif

bool kafka_crc32c_hardware(void)
{
#ifdef CRC32C__HW
    return __builtin_cpu_supports("sse4.2");
#else
    return false;
#endif
}

uint32_t kafka_crc32c(const void *p, size_t n)
{
#ifdef CRC32C__HW
    /* Asked once; the answer cannot change while the process runs. */
    static int hw = -1;
    if (hw < 0) {
        hw = kafka_crc32c_hardware();
    }
    if (hw) {
        return crc32c__hw(p, n);
    }
#endif
    return kafka_crc32c_table(p, n);
}
