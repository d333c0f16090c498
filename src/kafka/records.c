/* Kafka's record batch v2 <-> tally's batch: format in records.h. */
#include "kafka/records.h"

#include <stdlib.h>
#include <string.h>

#include "kafka/compress.h"
#include "kafka/crc32c.h"
#include "kafka/errors.h"
#include "kafka/wire.h"
#include "lib/batch.h"
#include "lib/err.h"

#define KAFKA__CRC_START 21 /* the CRC covers attributes .. end */

/* One Kafka record, its fields borrowed from the batch. */
struct kafka__record {
    int64_t timestamp_delta; /* from the batch's baseTimestamp */
    int32_t offset_delta;
    struct kafka_str key, value;
    uint32_t n_headers;
    struct batch_kv *headers; /* points into the caller's scratch array */
};

/* Decode the record at @r (whose varint length frames it) into @rec; the
 * headers go to *@scratch (grown as needed, *@cap entries). Returns 0 or
 * KAFKA_CORRUPT_MESSAGE / KAFKA_UNKNOWN_SERVER_ERROR (out of memory). */
static int kafka__record_next(struct kafka_rd *r, struct kafka__record *rec,
                              struct batch_kv **scratch, size_t *cap)
{
    int32_t len = kafka_rd_varint(r);
    if (r->bad || len < 0 || (size_t)len > r->left) {
        return KAFKA_CORRUPT_MESSAGE;
    }
    struct kafka_rd body;
    kafka_rd_init(&body, kafka_rd_raw(r, (size_t)len), (size_t)len);
    (void)kafka_rd_i8(&body);      /* record attributes: unused by Kafka */
    rec->timestamp_delta = kafka_rd_varlong(&body);
    rec->offset_delta = kafka_rd_varint(&body);
    int32_t klen = kafka_rd_varint(&body);
    rec->key.len = -1;
    rec->key.p = NULL;
    if (klen >= 0) {
        rec->key.p = kafka_rd_raw(&body, (size_t)klen);
        rec->key.len = klen;
    } else if (klen != -1) {
        body.bad = true;
    }
    int32_t vlen = kafka_rd_varint(&body);
    rec->value.len = -1;
    rec->value.p = NULL;
    if (vlen >= 0) {
        rec->value.p = kafka_rd_raw(&body, (size_t)vlen);
        rec->value.len = vlen;
    } else if (vlen != -1) {
        body.bad = true;
    }
    int32_t nh = kafka_rd_varint(&body);
    if (body.bad || nh < 0 || (size_t)nh > body.left) { /* each header takes >= 2 bytes */
        return KAFKA_CORRUPT_MESSAGE;
    }
    if ((size_t)nh > *cap) {
        struct batch_kv *h = realloc(*scratch, (size_t)nh * sizeof *h);
        if (h == NULL) {
            return KAFKA_UNKNOWN_SERVER_ERROR;
        }
        *scratch = h;
        *cap = (size_t)nh;
    }
    for (int32_t i = 0; i < nh; i++) {
        struct batch_kv *kv = &(*scratch)[i];
        int32_t hk = kafka_rd_varint(&body);
        if (hk < 0) {
            return KAFKA_CORRUPT_MESSAGE;
        }
        kv->name = kafka_rd_raw(&body, (size_t)hk);
        kv->name_len = (size_t)hk;
        int32_t hv = kafka_rd_varint(&body);
        if (hv < -1) {
            return KAFKA_CORRUPT_MESSAGE;
        }
        /* A null header value stays null (value NULL), an empty one empty:
         * the builder then marks the batch BATCH_FLAG_NULL_HEADERS. */
        kv->value = hv > 0 ? kafka_rd_raw(&body, (size_t)hv) : hv == 0 ? (const uint8_t *)"" : NULL;
        kv->value_len = hv > 0 ? (size_t)hv : 0;
    }
    if (body.bad || body.left != 0) {
        return KAFKA_CORRUPT_MESSAGE; /* the length lied, or bytes are left over */
    }
    rec->n_headers = (uint32_t)nh;
    rec->headers = *scratch;
    return 0;
}

int kafka_records_to_tally(const uint8_t *p, size_t n, struct kafka_batch_info *info,
                           struct buf *out, char *errmsg)
{
    struct kafka_rd r;
    struct batch_builder bb;
    struct batch_kv *scratch = NULL;
    size_t cap = 0;
    int rv = 0;

    if (p == NULL || n < KAFKA_BATCH_HEADER_SIZE) {
        err_printf(errmsg, "record batch of %zu bytes is shorter than its %d-byte header", n,
                   KAFKA_BATCH_HEADER_SIZE);
        return KAFKA_CORRUPT_MESSAGE;
    }
    kafka_rd_init(&r, p, n);
    (void)kafka_rd_i64(&r); /* baseOffset: the leader assigns offsets */
    int32_t batch_len = kafka_rd_i32(&r);
    (void)kafka_rd_i32(&r); /* partitionLeaderEpoch */
    int8_t magic = kafka_rd_i8(&r);
    uint32_t crc = (uint32_t)kafka_rd_i32(&r);
    int16_t attributes = kafka_rd_i16(&r);
    int32_t last_offset_delta = kafka_rd_i32(&r);
    int64_t base_timestamp = kafka_rd_i64(&r);
    (void)kafka_rd_i64(&r); /* maxTimestamp: follows from the records */
    info->producer_id = kafka_rd_i64(&r);
    info->producer_epoch = kafka_rd_i16(&r);
    info->base_sequence = kafka_rd_i32(&r);
    info->record_count = kafka_rd_i32(&r);
    info->compression = attributes & KAFKA_COMPRESSION_MASK;
    if (magic != 2) {
        err_printf(errmsg, "record batch magic %d: only magic 2 (Kafka 0.11 and later) is "
                           "supported", magic);
        return KAFKA_UNSUPPORTED_FOR_MESSAGE_FORMAT;
    }
    if (batch_len < KAFKA_BATCH_HEADER_SIZE - 12 || (size_t)batch_len != n - 12) {
        err_printf(errmsg, "record batch length %d does not match the %zu bytes sent "
                           "(exactly one batch per partition)", batch_len, n - 12);
        return KAFKA_CORRUPT_MESSAGE;
    }
    if (kafka_crc32c(p + KAFKA__CRC_START, n - KAFKA__CRC_START) != crc) {
        err_printf(errmsg, "record batch CRC-32C mismatch");
        return KAFKA_CORRUPT_MESSAGE;
    }
    if (attributes & (KAFKA_ATTR_TRANSACTIONAL | KAFKA_ATTR_CONTROL)) {
        err_printf(errmsg, "transactional and control batches are not supported");
        return KAFKA_INVALID_RECORD;
    }
    struct buf plain; /* the records section decompressed, if it was compressed */
    buf_init(&plain);
    if (info->compression != 0) {
        int crv = kafka_decompress(info->compression, r.p, r.left, BATCH_MAX_SIZE, &plain,
                                   errmsg);
        if (crv != 0) {
            buf_free(&plain);
            return crv;
        }
        kafka_rd_init(&r, plain.data != NULL ? plain.data : (const uint8_t *)"", plain.len);
    }
    if (info->record_count <= 0 || last_offset_delta != info->record_count - 1 ||
        (size_t)info->record_count > r.left) {
        buf_free(&plain);
        err_printf(errmsg, "record batch with %d records and last offset delta %d",
                   info->record_count, last_offset_delta);
        return KAFKA_INVALID_RECORD;
    }
    if (info->producer_id >= 0) {
        /* An idempotent producer: id and epoch name one tally producer (a
         * new epoch starts a new sequence, as in Kafka), and its base
         * sequence, which counts records, is checked by the store. */
        if (info->producer_id >= KAFKA_MAX_PRODUCER_ID || info->producer_epoch < 0 ||
            info->base_sequence < 0) {
            err_printf(errmsg, "producer id %lld, epoch %d, sequence %d: not one this cluster "
                               "hands out", (long long)info->producer_id, info->producer_epoch,
                       info->base_sequence);
            buf_free(&plain);
            return KAFKA_UNKNOWN_PRODUCER_ID;
        }
        batch_builder_init(&bb, kafka_tally_producer(info->producer_id, info->producer_epoch),
                           (uint64_t)info->base_sequence);
        bb.record_seq = true;
    } else {
        batch_builder_init(&bb, 0, 0);
    }
    for (int32_t i = 0; i < info->record_count && rv == 0; i++) {
        struct kafka__record rec;
        rv = kafka__record_next(&r, &rec, &scratch, &cap);
        if (rv != 0) {
            err_printf(errmsg, "record %d of the batch is malformed", i);
            break;
        }
        if (rec.offset_delta != i) {
            err_printf(errmsg, "record %d has offset delta %d", i, rec.offset_delta);
            rv = KAFKA_INVALID_RECORD;
            break;
        }
        size_t klen = rec.key.len < 0 ? 0 : (size_t)rec.key.len;
        size_t vlen = rec.value.len < 0 ? 0 : (size_t)rec.value.len;
        /* The producer's timestamps are kept as the records' create times
         * (a baseTimestamp of -1, Kafka's "no timestamp", keeps none); the
         * leader still stamps its own time, which retention and the time
         * index use. */
        int brv = base_timestamp < 0
                      ? batch_builder_add_at(&bb, (uint32_t)i, 0, rec.key.p, klen, rec.value.p,
                                             vlen, rec.headers, rec.n_headers)
                      : batch_builder_add_created(
                            &bb, (uint32_t)i, 0,
                            (int64_t)((uint64_t)base_timestamp + (uint64_t)rec.timestamp_delta),
                            rec.key.p, klen, rec.value.p, vlen, rec.headers, rec.n_headers);
        if (brv != 0) {
            err_printf(errmsg, "record %d: %s", i, tally_strerror(brv));
            rv = KAFKA_UNKNOWN_SERVER_ERROR;
        }
    }
    if (rv == 0 && r.left != 0) {
        err_printf(errmsg, "%zu bytes after the last record", r.left);
        rv = KAFKA_CORRUPT_MESSAGE;
    }
    if (rv == 0) {
        /* Stored lz4-compressed only when the producer compressed: a
         * producer that did not gains nothing from the attempt (random or
         * already packed values) and the leader pays for it. */
        int brv = batch_builder_finish(&bb, info->compression != 0, out);
        if (brv == TALLY_TOOLARGE) {
            err_printf(errmsg, "batch is over %u bytes", BATCH_MAX_SIZE);
            rv = KAFKA_MESSAGE_TOO_LARGE;
        } else if (brv != 0) {
            err_printf(errmsg, "%s", tally_strerror(brv));
            rv = KAFKA_UNKNOWN_SERVER_ERROR;
        }
    }
    batch_builder_free(&bb);
    buf_free(&plain);
    free(scratch);
    return rv;
}

/* Write @v as a zigzag varint at @p; returns the byte after it. */
static uint8_t *kafka__varint_put(uint8_t *p, int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (u >= 0x80) {
        *p++ = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    *p++ = (uint8_t)u;
    return p;
}

static uint8_t *kafka__bytes_put(uint8_t *p, const uint8_t *b, size_t n)
{
    p = kafka__varint_put(p, (int64_t)n);
    memcpy(p, b, n);
    return p + n;
}

/* Append one tally record as a Kafka record (framed by its varint length),
 * written in place: its size is computed first, so the record is copied
 * once, straight into @out (the fetch path converts every record). */
static void kafka__put_record(struct buf *out, const struct batch_header *h,
                              int64_t base_timestamp, const struct batch_record *rec)
{
    struct batch_headers hr;
    struct batch_kv kv;
    int64_t ts_delta = rec->has_create_time
                           ? (int64_t)((uint64_t)rec->create_time - (uint64_t)base_timestamp)
                           : rec->timestamp - h->first_timestamp;
    int64_t off_delta = (int64_t)(rec->offset - h->base_offset);
    size_t body = 1 + byte_svarint_len(ts_delta) + byte_svarint_len(off_delta) +
                  (rec->key == NULL ? 1 : byte_svarint_len((int64_t)rec->key_len) + rec->key_len) +
                  (rec->value == NULL ? 1
                                      : byte_svarint_len((int64_t)rec->value_len) + rec->value_len) +
                  byte_svarint_len(rec->header_count);
    batch_headers_init(&hr, rec->headers, rec->headers_len, rec->header_nulls);
    for (uint32_t i = 0; i < rec->header_count && batch_headers_next(&hr, &kv); i++) {
        body += byte_svarint_len((int64_t)kv.name_len) + kv.name_len +
                (kv.value == NULL ? 1 : byte_svarint_len((int64_t)kv.value_len) + kv.value_len);
    }
    uint8_t *p = buf_reserve(out, byte_svarint_len((int64_t)body) + body);
    if (p == NULL) {
        return; /* out->oom is set: the caller sees it */
    }
    uint8_t *start = p;
    p = kafka__varint_put(p, (int64_t)body);
    *p++ = 0; /* record attributes */
    p = kafka__varint_put(p, ts_delta);
    p = kafka__varint_put(p, off_delta);
    p = rec->key == NULL ? kafka__varint_put(p, -1) : kafka__bytes_put(p, rec->key, rec->key_len);
    p = rec->value == NULL ? kafka__varint_put(p, -1)
                           : kafka__bytes_put(p, rec->value, rec->value_len);
    p = kafka__varint_put(p, rec->header_count);
    batch_headers_init(&hr, rec->headers, rec->headers_len, rec->header_nulls);
    for (uint32_t i = 0; i < rec->header_count && batch_headers_next(&hr, &kv); i++) {
        p = kafka__bytes_put(p, kv.name, kv.name_len);
        p = kv.value == NULL ? kafka__varint_put(p, -1)
                             : kafka__bytes_put(p, kv.value, kv.value_len);
    }
    buf_commit(out, (size_t)(p - start));
}

int kafka_records_from_tally(const uint8_t *p, size_t n, size_t max_out, struct buf *out,
                             size_t *used, char *errmsg)
{
    size_t pos = 0, out_start = out->len;
    int rv = 0;
    *used = 0;
    while (pos < n && rv == 0) {
        struct batch_header h;
        struct batch_iter it;
        struct batch_record rec;
        if ((rv = batch_decode_header(p + pos, n - pos, &h, errmsg)) != 0) {
            break;
        }
        if (h.batch_len > n - pos) {
            rv = ERR_CORRUPT(errmsg, "batch at %zu runs past the answer", pos);
            break;
        }
        if (h.record_count == 0) { /* a gap batch */
            pos += h.batch_len;
            *used = pos;
            continue;
        }
        if ((rv = batch_iter_init(&it, p + pos, h.batch_len, errmsg)) != 0) {
            break;
        }
        /* Room for the whole batch at once: records grow by a few bytes
         * each in Kafka's format. */
        (void)buf_reserve(out, KAFKA_BATCH_HEADER_SIZE + h.records_len + 16 * h.record_count);
        size_t start = out->len;
        kafka_put_i64(out, (int64_t)h.base_offset);
        kafka_put_i32(out, 0); /* batchLength, patched below */
        kafka_put_i32(out, -1); /* partitionLeaderEpoch: tally has none */
        kafka_put_i8(out, 2);
        kafka_put_i32(out, 0); /* crc, patched below */
        size_t crc_start = out->len;
        /* Records a Kafka producer wrote carry its timestamps (CreateTime);
         * others the leader's (LogAppendTime, as Kafka marks a broker's). */
        bool created = (h.flags & BATCH_FLAG_CREATE_TIME) != 0;
        int64_t base_ts = created ? it.create_base : h.first_timestamp;
        kafka_put_i16(out, created ? 0 : KAFKA_ATTR_LOG_APPEND_TIME); /* uncompressed */
        kafka_put_i32(out, (int32_t)h.last_offset_delta);
        kafka_put_i64(out, base_ts);
        size_t max_ts_at = out->len;
        kafka_put_i64(out, h.max_timestamp);
        kafka_put_i64(out, -1); /* producerId */
        kafka_put_i16(out, -1);
        kafka_put_i32(out, -1);
        size_t count_at = out->len;
        kafka_put_i32(out, 0);
        int32_t count = 0;
        int64_t max_ts = INT64_MIN;
        while ((rv = batch_iter_next(&it, &rec, errmsg)) == 0) {
            kafka__put_record(out, &h, base_ts, &rec);
            if (created && rec.create_time > max_ts) {
                max_ts = rec.create_time;
            }
            count++;
        }
        batch_iter_close(&it);
        if (rv != TALLY_EOF) {
            break;
        }
        rv = 0;
        if (!buf_ok(out)) {
            rv = TALLY_NOMEM;
            err_printf(errmsg, "out of memory");
            break;
        }
        kafka_patch_i32(out, count_at, (uint32_t)count);
        if (created) {
            kafka_patch_i64(out, max_ts_at, (uint64_t)max_ts);
        }
        kafka_patch_i32(out, start + 8, (uint32_t)(out->len - start - 12));
        if (out->len - out_start > max_out && start > out_start) {
            out->len = start; /* over the limit: this batch goes in the next answer */
            break;
        }
        kafka_patch_i32(out, crc_start - 4,
                        kafka_crc32c(out->data + crc_start, out->len - crc_start));
        pos += h.batch_len;
        *used = pos;
    }
    return rv;
}
