/* CRC-32C (Castagnoli), the checksum of Kafka's record batch v2.
 *
 * Debian 12 has no C library for CRC-32C (zlib's crc32 is the other
 * polynomial), so this is a small implementation: the reflected polynomial
 * 0x82F63B78, initial value and final xor 0xFFFFFFFF (RFC 3720, appendix
 * B.4; check value of "123456789" is 0xE3069283), by the processor's
 * crc32 instruction where there is one (x86-64 with SSE4.2), else by
 * tables. */
#ifndef TALLY_KAFKA_CRC32C_H_
#define TALLY_KAFKA_CRC32C_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint32_t kafka_crc32c(const void *p, size_t n);

/* The table implementation alone (what kafka_crc32c uses without the
 * instruction), so that tests check both on any machine. */
uint32_t kafka_crc32c_table(const void *p, size_t n);

/* Whether kafka_crc32c uses the processor's instruction here. */
bool kafka_crc32c_hardware(void);

#endif
