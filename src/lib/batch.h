/* The batch format: the unit of storage, replication and transfer.
 *
 * A batch is a fixed 88-byte header followed by the records section
 * (optionally lz4-compressed). The bytes on disk are exactly the bytes a
 * fetch sends, so this codec is shared by the log (storage), the server
 * (stamping and verifying) and the client (building and reading). The
 * byte-offset table is at the top of batch.c and in docs/disk-format.md. */
#ifndef TALLY_LIB_BATCH_H_
#define TALLY_LIB_BATCH_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/byte.h"

#define BATCH_MAGIC "TLYB"
#define BATCH_VERSION 1
#define BATCH_HEADER_SIZE 88
/* Largest batch accepted anywhere (disk, wire, raft entry). */
#define BATCH_MAX_SIZE (16u << 20)

#define BATCH_FLAG_LZ4 0x01u
/* At least one record has a key: apply reads the records of such batches
 * only, to maintain the key index. */
#define BATCH_FLAG_KEYED 0x02u
/* producer_seq is a Kafka idempotent producer's base sequence, which
 * counts records, not batches: the producer's next batch follows at
 * producer_seq + record_count (modulo 2^31), and the store checks it so
 * (store.c, store__record_seq_check). Set only by the Kafka front door
 * (kafka/records.c); a build older than this flag refuses such a batch
 * as corrupt (docs/disk-format.md). */
#define BATCH_FLAG_RECORD_SEQ 0x04u
/* Every record carries the time its producer gave it (a Kafka producer's
 * CreateTime) beside the leader's timestamp: the records section starts
 * with the batch's create-time base and each record holds its distance
 * from it (format at the top of batch.c). Only the Kafka front door sets
 * it; tally's own times (retention, the time index, --from-time) stay the
 * leader's. A build older than this flag refuses such a batch as corrupt. */
#define BATCH_FLAG_CREATE_TIME 0x08u
/* A record has a header whose value is null (a Kafka producer's header
 * value of length -1): every header value length in the batch is then an
 * svarint, -1 meaning null, instead of a uvarint (format at the top of
 * batch.c). The builder sets it by itself when a null header value is
 * added, so every other batch keeps the encoding older builds read; a
 * build older than this flag refuses such a batch as corrupt. */
#define BATCH_FLAG_NULL_HEADERS 0x10u
#define BATCH__KNOWN_FLAGS                                                        \
    (BATCH_FLAG_LZ4 | BATCH_FLAG_KEYED | BATCH_FLAG_RECORD_SEQ | BATCH_FLAG_CREATE_TIME | \
     BATCH_FLAG_NULL_HEADERS)

struct batch_header {
    uint8_t version;
    uint8_t flags;
    uint32_t batch_len;         /* whole batch, header included */
    uint32_t record_count;      /* 0 only in a gap batch (batch_encode_gap) */
    uint64_t base_offset;
    int64_t first_timestamp;    /* ms since the epoch */
    int64_t max_timestamp;
    uint64_t raft_index;        /* Raft entry this batch was applied from */
    uint64_t producer_id;       /* 0: not an idempotent producer */
    uint64_t producer_seq;
    uint32_t records_len;       /* uncompressed size of the records section */
    uint32_t last_offset_delta; /* offset of the last record - base_offset */
    uint64_t payload_checksum;
    uint64_t header_checksum;
};

/* Decode and check the header at @p (@n bytes available, at least
 * BATCH_HEADER_SIZE): magic, version, header checksum, lengths and flags.
 * Returns 0, TALLY_CORRUPT (bad magic, checksum or lengths) or
 * TALLY_VERSION (a version this build cannot read), with a message. */
int batch_decode_header(const void *p, size_t n, struct batch_header *h, char *errmsg);

/* As batch_decode_header, then check that @n == batch_len and that the
 * payload checksum matches. */
int batch_verify(const void *p, size_t n, struct batch_header *h, char *errmsg);

/* Assign the server-side fields of a verified batch in place and recompute
 * the header checksum (the payload is untouched, so this is O(1)):
 * base_offset, raft_index, and first_timestamp (max_timestamp keeps its
 * distance from first_timestamp). */
void batch_stamp(void *p, uint64_t base_offset, int64_t first_timestamp, uint64_t raft_index);

/* Last offset held by the batch (base_offset + last_offset_delta). */
static inline uint64_t batch_last_offset(const struct batch_header *h)
{
    return h->base_offset + h->last_offset_delta;
}

/* A record header (name/value pair). Pointers borrowed. A null value
 * (distinct from an empty one, which has a non-NULL pointer) is value
 * NULL, value_len 0, as for a record's key and value. */
struct batch_kv {
    const uint8_t *name;
    size_t name_len;
    const uint8_t *value; /* NULL: null */
    size_t value_len;
};

/* One decoded record. Pointers borrow from the iterator. */
struct batch_record {
    uint64_t offset;
    int64_t timestamp;    /* the leader's, ms since the epoch */
    bool has_create_time; /* the batch has BATCH_FLAG_CREATE_TIME */
    int64_t create_time;  /* then: the producer's time, ms (may be anything) */
    const uint8_t *key;   /* NULL: no key */
    size_t key_len;
    const uint8_t *value; /* NULL: tombstone */
    size_t value_len;
    uint32_t header_count;
    const uint8_t *headers; /* encoded headers, read with batch_headers_next */
    size_t headers_len;
    bool header_nulls;      /* the batch has BATCH_FLAG_NULL_HEADERS: pass it
                             * to batch_headers_init */
};

struct batch_iter {
    struct batch_header h;
    struct rd rd;          /* over the (decompressed) records section */
    int64_t create_base;   /* with BATCH_FLAG_CREATE_TIME: the section's base */
    uint8_t *owned;        /* decompressed copy, or NULL */
    uint32_t seen;         /* records returned so far */
};

/* Verify the batch (as batch_verify) and prepare to read its records,
 * decompressing if needed. Close with batch_iter_close. */
int batch_iter_init(struct batch_iter *it, const void *p, size_t n, char *errmsg);
/* 0 and *rec filled; TALLY_EOF after the last record; TALLY_CORRUPT. */
int batch_iter_next(struct batch_iter *it, struct batch_record *rec, char *errmsg);
void batch_iter_close(struct batch_iter *it);

/* Reader of a record's encoded headers. Their encoding depends on the
 * batch (BATCH_FLAG_NULL_HEADERS), so it cannot be read without it. */
struct batch_headers {
    struct rd rd;
    bool nullable; /* value lengths are svarints, -1 = null */
};

/* Start reading @n bytes of encoded headers at @p (a record's headers and
 * headers_len); @nullable: the record's header_nulls. */
void batch_headers_init(struct batch_headers *hs, const uint8_t *p, size_t n, bool nullable);
/* Read the next header. Returns false at the end or on malformed input
 * (hs->rd.bad set). */
bool batch_headers_next(struct batch_headers *hs, struct batch_kv *kv);

/* Builder: collects records, then writes one batch. */
struct batch_builder {
    struct buf records;         /* encoded records section */
    uint32_t count;
    uint32_t last_offset_delta;
    int64_t max_ts_delta;
    bool keyed;                 /* a record has a key */
    uint64_t producer_id;
    uint64_t producer_seq;
    bool record_seq;            /* set BATCH_FLAG_RECORD_SEQ (false after init) */
    bool create_time;           /* records carry create times (the first decides) */
    int64_t create_base;        /* the first record's create time */
    bool null_headers;          /* a header value is null: BATCH_FLAG_NULL_HEADERS */
};

void batch_builder_init(struct batch_builder *b, uint64_t producer_id, uint64_t producer_seq);
void batch_builder_reset(struct batch_builder *b);
void batch_builder_free(struct batch_builder *b);

/* Add a record with explicit deltas (offset deltas must increase; gaps are
 * allowed, as compaction leaves them). key NULL = no key, value NULL =
 * tombstone, a header's value NULL = a null header value (the batch then
 * gets BATCH_FLAG_NULL_HEADERS). All pointers are copied. Returns 0 or TALLY_NOMEM, TALLY_INVAL
 * (decreasing offset delta). */
int batch_builder_add_at(struct batch_builder *b, uint32_t offset_delta, int64_t ts_delta,
                         const void *key, size_t key_len, const void *value, size_t value_len,
                         const struct batch_kv *headers, size_t n_headers);

/* As batch_builder_add_at, with the producer's own time for the record
 * (BATCH_FLAG_CREATE_TIME). A builder's records all have a create time or
 * none do: mixing them returns TALLY_INVAL. */
int batch_builder_add_created(struct batch_builder *b, uint32_t offset_delta, int64_t ts_delta,
                              int64_t create_time, const void *key, size_t key_len,
                              const void *value, size_t value_len,
                              const struct batch_kv *headers, size_t n_headers);

/* Add the next record (offset delta = records so far, timestamp delta 0). */
int batch_builder_add(struct batch_builder *b, const void *key, size_t key_len,
                      const void *value, size_t value_len);

/* Bytes the batch would take uncompressed (header included). */
size_t batch_builder_size(const struct batch_builder *b);

/* Append the finished batch to @out. With @compress, the records section is
 * lz4-compressed when that makes it smaller. base_offset, timestamps and
 * raft_index are 0 until batch_stamp(). Returns 0, TALLY_NOMEM,
 * TALLY_INVAL (no records), TALLY_TOOLARGE (over BATCH_MAX_SIZE). */
int batch_builder_finish(struct batch_builder *b, bool compress, struct buf *out);

/* Append a gap batch to @out (see the format at the top of batch.c): no
 * records, covering offsets base_offset .. base_offset + last_offset_delta,
 * as compaction leaves for a run of batches it emptied. Returns 0,
 * TALLY_NOMEM, TALLY_INVAL (timestamps or offsets out of range). */
int batch_encode_gap(struct buf *out, uint64_t base_offset, uint32_t last_offset_delta,
                     int64_t first_timestamp, int64_t max_timestamp, uint64_t raft_index);

#endif
