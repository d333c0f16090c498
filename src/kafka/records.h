/* Kafka's record batch (magic v2) <-> tally's batch (lib/batch.h).
 *
 * KAFKA RECORD BATCH v2 (big-endian; Kafka's DefaultRecordBatch)
 *   0   8  baseOffset
 *   8   4  batchLength: bytes after this field
 *   12  4  partitionLeaderEpoch
 *   16  1  magic (2)
 *   17  4  crc: CRC-32C (crc32c.h) of bytes [21, end)
 *   21  2  attributes: bits 0-2 compression (0 none, 1 gzip, 2 snappy,
 *          3 lz4, 4 zstd), bit 3 timestamp type (1 LogAppendTime),
 *          bit 4 transactional, bit 5 control batch
 *   23  4  lastOffsetDelta
 *   27  8  baseTimestamp
 *   35  8  maxTimestamp
 *   43  8  producerId (-1: none)
 *   51  2  producerEpoch
 *   53  4  baseSequence
 *   57  4  record count
 *   61  .. records: varint length, int8 attributes, varlong timestampDelta,
 *          varint offsetDelta, varint keyLength (-1 null), key, varint
 *          valueLength (-1 null), value, varint header count, then per
 *          header varint keyLength, key, varint valueLength (-1 null), value
 *
 * What is kept: a record's key, value (null = tombstone) and headers (names
 * and values, in order) are stored byte for byte in tally's record format,
 * which has the same fields; tally's native clients see them as the
 * record's key, value and headers. The producer's timestamps are kept as
 * the records' create times (BATCH_FLAG_CREATE_TIME) and a fetch returns
 * them as CreateTime; the leader still stamps its own time, which tally's
 * retention, time index and ListOffsets by time use. Records written
 * natively go out as LogAppendTime with the leader's time. A null header
 * value stays null, distinct from an empty one: the batch is then stored
 * with BATCH_FLAG_NULL_HEADERS (lib/batch.h). */
#ifndef TALLY_KAFKA_RECORDS_H_
#define TALLY_KAFKA_RECORDS_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/byte.h"

#define KAFKA_BATCH_HEADER_SIZE 61
#define KAFKA_COMPRESSION_MASK 0x07
#define KAFKA_ATTR_LOG_APPEND_TIME 0x08
#define KAFKA_ATTR_TRANSACTIONAL 0x10
#define KAFKA_ATTR_CONTROL 0x20

/* Producer ids handed out by InitProducerId are below 2^47, so that id and
 * epoch fit one tally producer id: 2^63 | (id << 16) | epoch, never 0. */
#define KAFKA_MAX_PRODUCER_ID (INT64_C(1) << 47)
static inline uint64_t kafka_tally_producer(int64_t id, int16_t epoch)
{
    return ((uint64_t)id << 16) | (uint16_t)epoch | (UINT64_C(1) << 63);
}

/* Producer fields of a produced batch. */
struct kafka_batch_info {
    int64_t producer_id;     /* -1: not idempotent */
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t record_count;
    int compression;         /* attributes & KAFKA_COMPRESSION_MASK */
};

/* Check the produced RECORDS field @p/@n (exactly one batch v2: length,
 * magic, CRC-32C, record framing) and append the equivalent tally batch
 * (not yet stamped; lz4-compressed, when that is smaller, if the producer
 * compressed the batch) to @out. Returns 0
 * or a Kafka error code (errors.h) with a message in @errmsg
 * (ERR_MSG_SIZE): CORRUPT_MESSAGE (lengths, CRC, record framing, a damaged
 * compressed section or one that inflates past BATCH_MAX_SIZE; gzip,
 * snappy, lz4 and zstd are read, compress.h),
 * UNSUPPORTED_FOR_MESSAGE_FORMAT (magic other than 2),
 * UNSUPPORTED_COMPRESSION_TYPE, INVALID_RECORD (control or transactional
 * batch, no records, offset deltas not 0..count-1), MESSAGE_TOO_LARGE,
 * UNKNOWN_PRODUCER_ID (a producer id, epoch or sequence out of range). An
 * idempotent producer's batch carries kafka_tally_producer(id, epoch) and
 * its base sequence, flagged BATCH_FLAG_RECORD_SEQ. */
int kafka_records_to_tally(const uint8_t *p, size_t n, struct kafka_batch_info *info,
                           struct buf *out, char *errmsg);

/* Append to @out one Kafka batch v2 (uncompressed; CreateTime with the
 * producer's times where the batch kept them, else LogAppendTime with the
 * leader's) for every tally batch with records in @p/@n
 * (whole batches back to back, as a FETCH answers them; gap batches are
 * skipped: Kafka consumers step over missing offsets), stopping before a
 * batch that would take the output past @max_out bytes (the first one is
 * always converted, as Kafka returns a first batch larger than the limit):
 * tally batches are often lz4-compressed, so their Kafka form can be many
 * times larger. *@used is set to the input bytes converted (whole batches).
 * Returns 0 or a tally error (TALLY_CORRUPT, TALLY_NOMEM) with a message. */
int kafka_records_from_tally(const uint8_t *p, size_t n, size_t max_out, struct buf *out,
                             size_t *used, char *errmsg);

#endif
