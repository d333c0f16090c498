/* The batch format: the unit of storage, replication and transfer.
 *
 * BATCH FORMAT, version 1 (all integers little-endian)
 *
 *   offset size field
 *   0      4    magic "TLYB"
 *   4      1    format version (1)
 *   5      1    flags: bit 0 = records section is lz4-compressed (block
 *                format); bit 1 = a record has a key; bit 2 = producer_seq
 *                counts records (a Kafka producer's base sequence, see
 *                BATCH_FLAG_RECORD_SEQ); bit 3 = records carry their
 *                producer's create time (below); bit 4 = header value
 *                lengths are svarints, -1 = null (below); other bits must
 *                be zero
 *   6      2    reserved, zero
 *   8      4    batch_len: total bytes of the batch, header included
 *   12     4    record_count: at least 1, except in a gap batch (below)
 *   16     8    base_offset: offset of the first record (set in apply)
 *   24     8    first_timestamp, ms since the epoch (set by the leader)
 *   32     8    max_timestamp, ms
 *   40     8    raft_index: the Raft entry the batch came from (set in apply)
 *   48     8    producer_id (0 = not an idempotent producer)
 *   56     8    producer_seq: sequence number of this batch
 *   64     4    records_len: size of the records section uncompressed
 *   68     4    last_offset_delta: offset of the last record - base_offset
 *   72     8    payload_checksum: XXH3-64 of bytes [88, batch_len), as stored
 *   80     8    header_checksum: XXH3-64 of bytes [0, 80)
 *   88     ...  payload: the records section, lz4-compressed if flag bit 0
 *
 * Two checksums, so that the fields assigned by the server (offset,
 * timestamps, raft index) can be set without touching the payload: the
 * client computes the payload checksum once and it is verified end to end
 * by every node and by the reading client, while the header checksum is
 * recomputed in O(1) whenever the header is stamped.
 *
 * RECORD FORMAT (inside the records section, one after another; with flag
 * bit 3 the section starts with an svarint create_base, ms since the
 * epoch)
 *
 *   uvarint  length of the rest of the record, in bytes
 *   uvarint  offset_delta   (record offset - base_offset)
 *   uvarint  timestamp_delta (record timestamp - first_timestamp)
 *   svarint  create_delta   (only with flag bit 3: the producer's time for
 *                            the record - create_base)
 *   svarint  key_len        (-1: no key)
 *   bytes    key
 *   svarint  value_len      (-1: tombstone)
 *   bytes    value
 *   uvarint  header_count, then per header:
 *            uvarint name_len, name bytes, uvarint value_len, value bytes
 *            (with flag bit 4: svarint value_len, -1 = null, no bytes)
 *
 * uvarint is LEB128; svarint is zigzag + LEB128.
 *
 * Flag bit 4 exists because a uvarint cannot say "null", and a Kafka
 * header value may be null (length -1), which must come back as null, not
 * empty. The builder sets it only for a batch that has a null header
 * value, so every other batch keeps the encoding older builds read.
 *
 * GAP BATCH: compaction (log/compact.c) replaces a run of batches whose
 * records it all removed by one batch with record_count 0, no payload
 * (batch_len 88, records_len 0, flags 0) and the offsets of the run
 * (base_offset .. base_offset + last_offset_delta), so that the batches
 * of a segment still cover its offsets without holes. A produce request
 * may never carry one (the server refuses batches without records).
 */
#include "lib/batch.h"

#include <stdlib.h>
#include <string.h>

#include "lib/codec.h"
#include "lib/err.h"

#define OFF_MAGIC 0
#define OFF_VERSION 4
#define OFF_FLAGS 5
#define OFF_BATCH_LEN 8
#define OFF_COUNT 12
#define OFF_BASE_OFFSET 16
#define OFF_FIRST_TS 24
#define OFF_MAX_TS 32
#define OFF_RAFT_INDEX 40
#define OFF_PRODUCER_ID 48
#define OFF_PRODUCER_SEQ 56
#define OFF_RECORDS_LEN 64
#define OFF_LAST_DELTA 68
#define OFF_PAYLOAD_SUM 72
#define OFF_HEADER_SUM 80

/* Largest max_timestamp - first_timestamp accepted: 2^62 ms, so that a
 * stamp with any clock before the year 146 million cannot overflow. */
#define BATCH__MAX_TS_SPAN (UINT64_C(1) << 62)

int batch_decode_header(const void *p, size_t n, struct batch_header *h, char *errmsg)
{
    const uint8_t *b = p;
    if (n < BATCH_HEADER_SIZE) {
        return ERR_CORRUPT(errmsg, "batch header truncated (%zu of %d bytes)", n, BATCH_HEADER_SIZE);
    }
    if (memcmp(b + OFF_MAGIC, BATCH_MAGIC, 4) != 0) {
        return ERR_CORRUPT(errmsg, "bad batch magic");
    }
    h->version = b[OFF_VERSION];
    h->flags = b[OFF_FLAGS];
    h->header_checksum = byte_get_u64(b + OFF_HEADER_SUM);
    if (codec_checksum(b, OFF_HEADER_SUM) != h->header_checksum) {
        return ERR_CORRUPT(errmsg, "batch header checksum mismatch");
    }
    if (h->version != BATCH_VERSION) {
        err_printf(errmsg, "unsupported batch format version %u (this build reads %u)",
                   h->version, BATCH_VERSION);
        return TALLY_VERSION;
    }
    h->batch_len = byte_get_u32(b + OFF_BATCH_LEN);
    h->record_count = byte_get_u32(b + OFF_COUNT);
    h->base_offset = byte_get_u64(b + OFF_BASE_OFFSET);
    h->first_timestamp = (int64_t)byte_get_u64(b + OFF_FIRST_TS);
    h->max_timestamp = (int64_t)byte_get_u64(b + OFF_MAX_TS);
    h->raft_index = byte_get_u64(b + OFF_RAFT_INDEX);
    h->producer_id = byte_get_u64(b + OFF_PRODUCER_ID);
    h->producer_seq = byte_get_u64(b + OFF_PRODUCER_SEQ);
    h->records_len = byte_get_u32(b + OFF_RECORDS_LEN);
    h->last_offset_delta = byte_get_u32(b + OFF_LAST_DELTA);
    h->payload_checksum = byte_get_u64(b + OFF_PAYLOAD_SUM);
    if ((h->flags & ~BATCH__KNOWN_FLAGS) != 0) {
        return ERR_CORRUPT(errmsg, "unknown batch flags 0x%02x", h->flags);
    }
    if (h->batch_len < BATCH_HEADER_SIZE || h->batch_len > BATCH_MAX_SIZE) {
        return ERR_CORRUPT(errmsg, "bad batch length %u", h->batch_len);
    }
    if (h->record_count == 0 &&
        (h->records_len != 0 || h->batch_len != BATCH_HEADER_SIZE ||
         (h->flags & BATCH__KNOWN_FLAGS) != 0)) {
        return ERR_CORRUPT(errmsg, "gap batch (no records) with a payload or flags");
    }
    if (h->records_len > BATCH_MAX_SIZE * 4u ||
        (h->record_count > 0 && h->last_offset_delta < h->record_count - 1)) {
        return ERR_CORRUPT(errmsg, "bad record count %u (last delta %u)", h->record_count,
                           h->last_offset_delta);
    }
    /* The last offset and the offset after it must not wrap past 2^64 - 1. */
    if (h->base_offset >= UINT64_MAX - h->last_offset_delta) {
        return ERR_CORRUPT(errmsg, "batch offsets overflow (base %llu, last delta %u)",
                           (unsigned long long)h->base_offset, h->last_offset_delta);
    }
    if (h->max_timestamp < h->first_timestamp) {
        return ERR_CORRUPT(errmsg, "max timestamp before first timestamp");
    }
    /* batch_stamp moves first_timestamp to the leader's clock and keeps
     * the span, so a span near 2^63 would overflow there (and the leader
     * would propose a batch that every node then refuses to apply). The
     * difference is exact in uint64_t because max >= first. */
    if ((uint64_t)h->max_timestamp - (uint64_t)h->first_timestamp > BATCH__MAX_TS_SPAN) {
        return ERR_CORRUPT(errmsg, "timestamp span of the batch too large");
    }
    return 0;
}

int batch_verify(const void *p, size_t n, struct batch_header *h, char *errmsg)
{
    int rv = batch_decode_header(p, n, h, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (n != h->batch_len) {
        return ERR_CORRUPT(errmsg, "batch length %u but %zu bytes given", h->batch_len, n);
    }
    if (codec_checksum((const uint8_t *)p + BATCH_HEADER_SIZE, n - BATCH_HEADER_SIZE) !=
        h->payload_checksum) {
        return ERR_CORRUPT(errmsg, "batch payload checksum mismatch");
    }
    return 0;
}

void batch_stamp(void *p, uint64_t base_offset, int64_t first_timestamp, uint64_t raft_index)
{
    uint8_t *b = p;
    /* Unsigned: the span of a verified batch fits, and no signed overflow. */
    uint64_t span = byte_get_u64(b + OFF_MAX_TS) - byte_get_u64(b + OFF_FIRST_TS);
    byte_put_u64(b + OFF_BASE_OFFSET, base_offset);
    byte_put_u64(b + OFF_FIRST_TS, (uint64_t)first_timestamp);
    byte_put_u64(b + OFF_MAX_TS, (uint64_t)first_timestamp + span);
    byte_put_u64(b + OFF_RAFT_INDEX, raft_index);
    byte_put_u64(b + OFF_HEADER_SUM, codec_checksum(b, OFF_HEADER_SUM));
}

int batch_iter_init(struct batch_iter *it, const void *p, size_t n, char *errmsg)
{
    const uint8_t *payload = (const uint8_t *)p + BATCH_HEADER_SIZE;
    int rv;
    memset(it, 0, sizeof *it);
    rv = batch_verify(p, n, &it->h, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (it->h.flags & BATCH_FLAG_LZ4) {
        it->owned = malloc(it->h.records_len ? it->h.records_len : 1);
        if (it->owned == NULL) {
            err_printf(errmsg, "decompress batch: out of memory");
            return TALLY_NOMEM;
        }
        if (codec_lz4_decompress(payload, n - BATCH_HEADER_SIZE, it->owned,
                                 it->h.records_len) != 0) {
            free(it->owned);
            it->owned = NULL;
            return ERR_CORRUPT(errmsg, "batch records do not decompress");
        }
        rd_init(&it->rd, it->owned, it->h.records_len);
    } else {
        if (it->h.records_len != n - BATCH_HEADER_SIZE) {
            return ERR_CORRUPT(errmsg, "records length %u but payload is %zu bytes",
                               it->h.records_len, n - BATCH_HEADER_SIZE);
        }
        rd_init(&it->rd, payload, it->h.records_len);
    }
    if (it->h.flags & BATCH_FLAG_CREATE_TIME) {
        it->create_base = rd_svarint(&it->rd);
        if (!rd_ok(&it->rd)) {
            batch_iter_close(it);
            return ERR_CORRUPT(errmsg, "records section too short for its create-time base");
        }
    }
    return 0;
}

int batch_iter_next(struct batch_iter *it, struct batch_record *rec, char *errmsg)
{
    struct rd rec_rd;
    const uint8_t *body;
    uint64_t len, delta, ts_delta;
    int64_t klen, vlen, create_delta = 0;

    if (it->seen == it->h.record_count) {
        if (it->rd.left != 0) {
            return ERR_CORRUPT(errmsg, "%zu stray bytes after the last record", it->rd.left);
        }
        return TALLY_EOF;
    }
    len = rd_uvarint(&it->rd);
    body = rd_ok(&it->rd) && len <= it->rd.left ? rd_bytes(&it->rd, (size_t)len) : NULL;
    if (body == NULL) {
        return ERR_CORRUPT(errmsg, "record %u truncated", it->seen);
    }
    rd_init(&rec_rd, body, (size_t)len);
    delta = rd_uvarint(&rec_rd);
    ts_delta = rd_uvarint(&rec_rd);
    rec->has_create_time = (it->h.flags & BATCH_FLAG_CREATE_TIME) != 0;
    if (rec->has_create_time) {
        create_delta = rd_svarint(&rec_rd);
    }
    klen = rd_svarint(&rec_rd);
    rec->key = klen >= 0 ? rd_bytes(&rec_rd, (size_t)klen) : NULL;
    rec->key_len = klen >= 0 ? (size_t)klen : 0;
    vlen = rd_svarint(&rec_rd);
    rec->value = vlen >= 0 ? rd_bytes(&rec_rd, (size_t)vlen) : NULL;
    rec->value_len = vlen >= 0 ? (size_t)vlen : 0;
    rec->header_count = (uint32_t)rd_uvarint(&rec_rd);
    rec->header_nulls = (it->h.flags & BATCH_FLAG_NULL_HEADERS) != 0;
    rec->headers = rec_rd.p;
    rec->headers_len = rec_rd.left;
    /* The timestamp delta is checked before it is added (unsigned, exact
     * since max >= first): a huge delta must neither overflow nor wrap to a
     * timestamp before first_timestamp. */
    if (!rd_ok(&rec_rd) || klen < -1 || vlen < -1 || delta > it->h.last_offset_delta ||
        ts_delta > (uint64_t)it->h.max_timestamp - (uint64_t)it->h.first_timestamp) {
        return ERR_CORRUPT(errmsg, "record %u malformed", it->seen);
    }
    rec->timestamp = (int64_t)((uint64_t)it->h.first_timestamp + ts_delta);
    /* Wraps rather than overflows on hostile input: the value is only
     * passed on, never used to decide anything. */
    rec->create_time = (int64_t)((uint64_t)it->create_base + (uint64_t)create_delta);
    rec->offset = it->h.base_offset + delta;
    it->seen++;
    return 0;
}

void batch_iter_close(struct batch_iter *it)
{
    free(it->owned);
    it->owned = NULL;
}

void batch_headers_init(struct batch_headers *hs, const uint8_t *p, size_t n, bool nullable)
{
    rd_init(&hs->rd, p, n);
    hs->nullable = nullable;
}

bool batch_headers_next(struct batch_headers *hs, struct batch_kv *kv)
{
    struct rd *r = &hs->rd;
    bool null = false;
    if (r->left == 0) {
        return false;
    }
    kv->name_len = (size_t)rd_uvarint(r);
    kv->name = rd_bytes(r, kv->name_len);
    if (hs->nullable) {
        int64_t vlen = rd_svarint(r);
        if (vlen < -1) {
            r->bad = true;
            return false;
        }
        null = vlen == -1;
        kv->value_len = null ? 0 : (size_t)vlen;
    } else {
        kv->value_len = (size_t)rd_uvarint(r);
    }
    kv->value = null ? NULL : rd_bytes(r, kv->value_len);
    if (!rd_ok(r)) {
        return false;
    }
    if (!null && kv->value == NULL) {
        kv->value = (const uint8_t *)""; /* empty, which must not read as null */
    }
    return true;
}

void batch_builder_init(struct batch_builder *b, uint64_t producer_id, uint64_t producer_seq)
{
    buf_init(&b->records);
    b->producer_id = producer_id;
    b->producer_seq = producer_seq;
    b->record_seq = false;
    batch_builder_reset(b);
}

void batch_builder_reset(struct batch_builder *b)
{
    b->records.len = 0;
    b->records.oom = false;
    b->count = 0;
    b->last_offset_delta = 0;
    b->max_ts_delta = 0;
    b->keyed = false;
    b->create_time = false;
    b->create_base = 0;
    b->null_headers = false;
}

void batch_builder_free(struct batch_builder *b)
{
    buf_free(&b->records);
}

/* Bytes of one header value's length and value, in the builder's
 * current encoding. */
static size_t batch__hvalue_len(const struct batch_builder *b, const struct batch_kv *kv)
{
    if (b->null_headers) {
        return kv->value == NULL ? byte_svarint_len(-1)
                                 : byte_svarint_len((int64_t)kv->value_len) + kv->value_len;
    }
    return byte_uvarint_len(kv->value_len) + kv->value_len;
}

/* Rewrite the records added so far with svarint header value lengths
 * (BATCH_FLAG_NULL_HEADERS), when the first null header value arrives.
 * Null header values are rare, and re-encoding then, rather than choosing
 * the encoding up front, lets every caller add records as they come and
 * keeps every batch without one in the encoding older builds read. Only
 * the header value lengths change (and so each record's length). */
static int batch__make_nullable(struct batch_builder *b)
{
    struct buf out;
    struct rd r;
    bool bad = false;
    buf_init(&out);
    if (!buf_reserve(&out, b->records.len + b->records.len / 4 + 16)) {
        return TALLY_NOMEM;
    }
    rd_init(&r, b->records.data, b->records.len);
    if (b->create_time) {
        buf_put_svarint(&out, rd_svarint(&r));
    }
    for (uint32_t i = 0; i < b->count && !bad; i++) {
        uint64_t len = rd_uvarint(&r);
        const uint8_t *body = rd_ok(&r) && len <= r.left ? rd_bytes(&r, (size_t)len) : NULL;
        struct rd rr;
        if (body == NULL) {
            bad = true;
            break;
        }
        rd_init(&rr, body, (size_t)len);
        (void)rd_uvarint(&rr); /* offset delta */
        (void)rd_uvarint(&rr); /* timestamp delta */
        if (b->create_time) {
            (void)rd_svarint(&rr);
        }
        int64_t klen = rd_svarint(&rr);
        (void)rd_bytes(&rr, klen > 0 ? (size_t)klen : 0);
        int64_t vlen = rd_svarint(&rr);
        (void)rd_bytes(&rr, vlen > 0 ? (size_t)vlen : 0);
        uint64_t nh = rd_uvarint(&rr);
        size_t fixed = (size_t)len - rr.left; /* up to the header count, kept as is */
        struct batch_headers hs;
        struct batch_kv kv;
        size_t new_len = fixed;
        batch_headers_init(&hs, rr.p, rr.left, false);
        for (uint64_t j = 0; j < nh && batch_headers_next(&hs, &kv); j++) {
            new_len += byte_uvarint_len(kv.name_len) + kv.name_len +
                       byte_svarint_len((int64_t)kv.value_len) + kv.value_len;
        }
        if (!rd_ok(&rr) || !rd_ok(&hs.rd) || hs.rd.left != 0) {
            bad = true;
            break;
        }
        buf_put_uvarint(&out, new_len);
        buf_put(&out, body, fixed);
        batch_headers_init(&hs, rr.p, rr.left, false);
        for (uint64_t j = 0; j < nh && batch_headers_next(&hs, &kv); j++) {
            buf_put_uvarint(&out, kv.name_len);
            buf_put(&out, kv.name, kv.name_len);
            buf_put_svarint(&out, (int64_t)kv.value_len);
            buf_put(&out, kv.value, kv.value_len);
        }
    }
    if (bad || r.left != 0 || !buf_ok(&out)) {
        buf_free(&out);
        /* The builder wrote every byte it reads: only memory can fail. */
        return bad || r.left != 0 ? TALLY_INVAL : TALLY_NOMEM;
    }
    buf_free(&b->records);
    b->records = out;
    b->null_headers = true;
    return 0;
}

/* One record; @create_time NULL: the record has none. Written straight
 * into the records section, its length computed first (a Kafka produce or
 * a compaction adds every record of a batch through here). */
static int batch__add(struct batch_builder *b, uint32_t offset_delta, int64_t ts_delta,
                      const int64_t *create_time, const void *key, size_t key_len,
                      const void *value, size_t value_len, const struct batch_kv *headers,
                      size_t n_headers)
{
    struct buf *r = &b->records;
    int64_t create_delta = 0;
    if ((b->count > 0 && offset_delta <= b->last_offset_delta) || ts_delta < 0 ||
        (b->count > 0 && b->create_time != (create_time != NULL))) {
        return TALLY_INVAL;
    }
    if (!b->null_headers) {
        for (size_t i = 0; i < n_headers; i++) {
            if (headers[i].value == NULL) {
                int rv = batch__make_nullable(b);
                if (rv != 0) {
                    return rv;
                }
                break;
            }
        }
    }
    if (b->count == 0 && create_time != NULL) {
        /* The section starts with the base the records count from. */
        b->create_time = true;
        b->create_base = *create_time;
        buf_put_svarint(r, b->create_base);
    }
    if (create_time != NULL) {
        create_delta = (int64_t)((uint64_t)*create_time - (uint64_t)b->create_base);
    }
    size_t len = byte_uvarint_len(offset_delta) + byte_uvarint_len((uint64_t)ts_delta) +
                 (create_time != NULL ? byte_svarint_len(create_delta) : 0) +
                 byte_svarint_len(key != NULL ? (int64_t)key_len : -1) +
                 (key != NULL ? key_len : 0) +
                 byte_svarint_len(value != NULL ? (int64_t)value_len : -1) +
                 (value != NULL ? value_len : 0) + byte_uvarint_len(n_headers);
    for (size_t i = 0; i < n_headers; i++) {
        len += byte_uvarint_len(headers[i].name_len) + headers[i].name_len +
               batch__hvalue_len(b, &headers[i]);
    }
    if (buf_reserve(r, byte_uvarint_len(len) + len) == NULL) {
        return TALLY_NOMEM;
    }
    buf_put_uvarint(r, len);
    buf_put_uvarint(r, offset_delta);
    buf_put_uvarint(r, (uint64_t)ts_delta);
    if (create_time != NULL) {
        buf_put_svarint(r, create_delta);
    }
    buf_put_svarint(r, key != NULL ? (int64_t)key_len : -1);
    if (key != NULL) {
        buf_put(r, key, key_len);
    }
    buf_put_svarint(r, value != NULL ? (int64_t)value_len : -1);
    if (value != NULL) {
        buf_put(r, value, value_len);
    }
    buf_put_uvarint(r, n_headers);
    for (size_t i = 0; i < n_headers; i++) {
        buf_put_uvarint(r, headers[i].name_len);
        buf_put(r, headers[i].name, headers[i].name_len);
        if (!b->null_headers) {
            buf_put_uvarint(r, headers[i].value_len);
        } else if (headers[i].value == NULL) {
            buf_put_svarint(r, -1);
            continue;
        } else {
            buf_put_svarint(r, (int64_t)headers[i].value_len);
        }
        buf_put(r, headers[i].value, headers[i].value_len);
    }
    if (!buf_ok(r)) {
        return TALLY_NOMEM;
    }
    b->count++;
    b->keyed = b->keyed || key != NULL;
    b->last_offset_delta = offset_delta;
    if (ts_delta > b->max_ts_delta) {
        b->max_ts_delta = ts_delta;
    }
    return 0;
}

int batch_builder_add_at(struct batch_builder *b, uint32_t offset_delta, int64_t ts_delta,
                         const void *key, size_t key_len, const void *value, size_t value_len,
                         const struct batch_kv *headers, size_t n_headers)
{
    return batch__add(b, offset_delta, ts_delta, NULL, key, key_len, value, value_len, headers,
                      n_headers);
}

int batch_builder_add_created(struct batch_builder *b, uint32_t offset_delta, int64_t ts_delta,
                              int64_t create_time, const void *key, size_t key_len,
                              const void *value, size_t value_len,
                              const struct batch_kv *headers, size_t n_headers)
{
    return batch__add(b, offset_delta, ts_delta, &create_time, key, key_len, value, value_len,
                      headers, n_headers);
}

int batch_builder_add(struct batch_builder *b, const void *key, size_t key_len,
                      const void *value, size_t value_len)
{
    uint32_t delta = b->count == 0 ? 0 : b->last_offset_delta + 1;
    return batch_builder_add_at(b, delta, 0, key, key_len, value, value_len, NULL, 0);
}

size_t batch_builder_size(const struct batch_builder *b)
{
    return BATCH_HEADER_SIZE + b->records.len;
}

int batch_encode_gap(struct buf *out, uint64_t base_offset, uint32_t last_offset_delta,
                     int64_t first_timestamp, int64_t max_timestamp, uint64_t raft_index)
{
    uint8_t *h;
    if (max_timestamp < first_timestamp ||
        (uint64_t)max_timestamp - (uint64_t)first_timestamp > BATCH__MAX_TS_SPAN ||
        base_offset >= UINT64_MAX - last_offset_delta) {
        return TALLY_INVAL;
    }
    h = buf_reserve(out, BATCH_HEADER_SIZE);
    if (h == NULL) {
        return TALLY_NOMEM;
    }
    memset(h, 0, BATCH_HEADER_SIZE);
    memcpy(h + OFF_MAGIC, BATCH_MAGIC, 4);
    h[OFF_VERSION] = BATCH_VERSION;
    byte_put_u32(h + OFF_BATCH_LEN, BATCH_HEADER_SIZE);
    byte_put_u64(h + OFF_BASE_OFFSET, base_offset);
    byte_put_u64(h + OFF_FIRST_TS, (uint64_t)first_timestamp);
    byte_put_u64(h + OFF_MAX_TS, (uint64_t)max_timestamp);
    byte_put_u64(h + OFF_RAFT_INDEX, raft_index);
    byte_put_u32(h + OFF_LAST_DELTA, last_offset_delta);
    byte_put_u64(h + OFF_PAYLOAD_SUM, codec_checksum(h + BATCH_HEADER_SIZE, 0));
    byte_put_u64(h + OFF_HEADER_SUM, codec_checksum(h, OFF_HEADER_SUM));
    buf_commit(out, BATCH_HEADER_SIZE);
    return 0;
}

int batch_builder_finish(struct batch_builder *b, bool compress, struct buf *out)
{
    size_t records_len = b->records.len;
    size_t payload_len = records_len;
    uint8_t flags = 0;
    uint8_t *h;

    if (b->count == 0) {
        return TALLY_INVAL;
    }
    if (!buf_ok(&b->records)) {
        return TALLY_NOMEM;
    }
    if (BATCH_HEADER_SIZE + records_len > BATCH_MAX_SIZE) {
        return TALLY_TOOLARGE;
    }
    h = buf_reserve(out, BATCH_HEADER_SIZE + codec_lz4_bound(records_len) + records_len);
    if (h == NULL) {
        return TALLY_NOMEM;
    }
    if (compress && records_len > 0) {
        /* Keep the compressed form only if it is smaller. */
        size_t clen = codec_lz4_compress(b->records.data, records_len, h + BATCH_HEADER_SIZE,
                                         records_len - 1);
        if (clen > 0) {
            payload_len = clen;
            flags |= BATCH_FLAG_LZ4;
        }
    }
    if (!(flags & BATCH_FLAG_LZ4) && records_len > 0) {
        memcpy(h + BATCH_HEADER_SIZE, b->records.data, records_len);
    }
    if (b->keyed) {
        flags |= BATCH_FLAG_KEYED;
    }
    memset(h, 0, BATCH_HEADER_SIZE);
    memcpy(h + OFF_MAGIC, BATCH_MAGIC, 4);
    h[OFF_VERSION] = BATCH_VERSION;
    if (b->record_seq) {
        flags |= BATCH_FLAG_RECORD_SEQ;
    }
    if (b->create_time) {
        flags |= BATCH_FLAG_CREATE_TIME;
    }
    if (b->null_headers) {
        flags |= BATCH_FLAG_NULL_HEADERS;
    }
    h[OFF_FLAGS] = flags;
    byte_put_u32(h + OFF_BATCH_LEN, (uint32_t)(BATCH_HEADER_SIZE + payload_len));
    byte_put_u32(h + OFF_COUNT, b->count);
    byte_put_u64(h + OFF_MAX_TS, (uint64_t)b->max_ts_delta);
    byte_put_u64(h + OFF_PRODUCER_ID, b->producer_id);
    byte_put_u64(h + OFF_PRODUCER_SEQ, b->producer_seq);
    byte_put_u32(h + OFF_RECORDS_LEN, (uint32_t)records_len);
    byte_put_u32(h + OFF_LAST_DELTA, b->last_offset_delta);
    byte_put_u64(h + OFF_PAYLOAD_SUM, codec_checksum(h + BATCH_HEADER_SIZE, payload_len));
    byte_put_u64(h + OFF_HEADER_SUM, codec_checksum(h, OFF_HEADER_SUM));
    buf_commit(out, BATCH_HEADER_SIZE + payload_len);
    return 0;
}
