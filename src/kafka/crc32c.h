/* CRC-32C (Castagnoli), the checksum of Kafka's record batch v2.
 *
 * Debian 12 has no C library for CRC-32C (zlib's crc32 is the other
 * polynomial), so this is a small table-driven implementation: the
 * reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF
 * (RFC 3720, appendix B.4; check value of "123456789" is 0xE3069283). */
#ifndef TALLY_KAFKA_CRC32C_H_
#define TALLY_KAFKA_CRC32C_H_

#include <stddef.h>
#include <stdint.h>

uint32_t kafka_crc32c(const void *p, size_t n);

#endif
