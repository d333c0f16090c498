/* The compression codecs of Kafka record batches, through Debian's
 * libraries: gzip (zlib), snappy (libsnappy; raw, or in the "xerial"
 * framing the Java client writes), lz4 (liblz4's frame format, which
 * Kafka uses from magic 1 on) and zstd (libzstd). Only decompression:
 * tally stores records in its own batch format (lz4 block compression,
 * lib/batch.h) and answers fetches uncompressed. */
#ifndef TALLY_KAFKA_COMPRESS_H_
#define TALLY_KAFKA_COMPRESS_H_

#include <stddef.h>
#include <stdint.h>

#include "lib/byte.h"

enum kafka_codec {
    KAFKA_CODEC_NONE = 0,
    KAFKA_CODEC_GZIP = 1,
    KAFKA_CODEC_SNAPPY = 2,
    KAFKA_CODEC_LZ4 = 3,
    KAFKA_CODEC_ZSTD = 4,
};

/* Append the decompressed form of @p/@n (codec @codec, 1-4) to @out,
 * refusing more than @max bytes of output (a decompression bomb). Returns
 * 0 or a Kafka error (errors.h) with a message: CORRUPT_MESSAGE (damaged
 * input, over @max), UNSUPPORTED_COMPRESSION_TYPE (another codec). */
int kafka_decompress(int codec, const uint8_t *p, size_t n, size_t max, struct buf *out,
                     char *errmsg);

#endif
