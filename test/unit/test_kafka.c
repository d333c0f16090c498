/* Unit tests of the Kafka codec (src/kafka): CRC-32C, wire types, the
 * request header and API table, request decoders on good and malformed
 * input, response encoders byte for byte, and the record batch v2 <->
 * tally batch conversion with its refusals (CRC, lengths, magic,
 * compression, framing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include "kafka/compress.h"
#include "kafka/crc32c.h"
#include "kafka/errors.h"
#include "kafka/msg.h"
#include "kafka/records.h"
#include "kafka/wire.h"
#include "lib/batch.h"
#include "lib/err.h"

/* RFC 3720's check value: CRC-32C("123456789") = 0xE3069283; the
 * processor's instruction (where kafka_crc32c uses it) and the tables
 * agree with a bit-at-a-time reference. */
static void test_crc32c_check_value(void **state)
{
    (void)state;
    print_message("crc32c: %s\n", kafka_crc32c_hardware() ? "instruction and tables" : "tables");
    assert_int_equal(kafka_crc32c("123456789", 9), 0xE3069283u);
    assert_int_equal(kafka_crc32c_table("123456789", 9), 0xE3069283u);
    assert_int_equal(kafka_crc32c("", 0), 0);
    /* Every length and alignment against a bit-at-a-time reference. */
    uint8_t buf[64];
    for (size_t i = 0; i < sizeof buf; i++) {
        buf[i] = (uint8_t)(i * 37 + 11);
    }
    for (size_t off = 0; off < 8; off++) {
        for (size_t len = 0; off + len <= sizeof buf; len++) {
            uint32_t c = 0xFFFFFFFFu;
            for (size_t i = 0; i < len; i++) {
                c ^= buf[off + i];
                for (int k = 0; k < 8; k++) {
                    c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
                }
            }
            assert_int_equal(kafka_crc32c(buf + off, len), c ^ 0xFFFFFFFFu);
            assert_int_equal(kafka_crc32c_table(buf + off, len), c ^ 0xFFFFFFFFu);
        }
    }
}

/* Varints, classic and compact strings and arrays read back what was put. */
static void test_wire_round_trip(void **state)
{
    struct buf b;
    struct kafka_rd r;
    (void)state;
    buf_init(&b);
    kafka_put_i16(&b, -2);
    kafka_put_i32(&b, 0x01020304);
    kafka_put_i64(&b, -5);
    kafka_put_varint(&b, -1);
    kafka_put_varlong(&b, INT64_MIN);
    kafka_put_string(&b, false, "abc", 3);
    kafka_put_string(&b, true, "de", 2);
    kafka_put_string(&b, true, NULL, 0);
    kafka_put_array(&b, true, 3);
    kafka_put_tags(&b, true);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_rd_i16(&r), -2);
    assert_int_equal(kafka_rd_i32(&r), 0x01020304);
    assert_true(kafka_rd_i64(&r) == -5);
    assert_int_equal(kafka_rd_varint(&r), -1);
    assert_true(kafka_rd_varlong(&r) == INT64_MIN);
    struct kafka_str s = kafka_rd_string(&r, false);
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.p, "abc", 3);
    s = kafka_rd_string(&r, true);
    assert_int_equal(s.len, 2);
    s = kafka_rd_string(&r, true);
    assert_int_equal(s.len, -1);
    assert_int_equal(kafka_rd_array(&r, true, 0), 3);
    kafka_rd_tags(&r, true);
    assert_false(r.bad);
    assert_int_equal(r.left, 0);
    buf_free(&b);
}

/* Lengths past the end, negative lengths other than -1, array counts that
 * cannot fit and overlong varints are all refused. */
static void test_wire_refuses_lies(void **state)
{
    struct kafka_rd r;
    (void)state;
    const uint8_t long_str[] = {0x00, 0x10, 'a'};
    kafka_rd_init(&r, long_str, sizeof long_str);
    (void)kafka_rd_string(&r, false);
    assert_true(r.bad);
    const uint8_t neg[] = {0xFF, 0xFE};
    kafka_rd_init(&r, neg, sizeof neg);
    (void)kafka_rd_string(&r, false);
    assert_true(r.bad);
    const uint8_t big_array[] = {0x00, 0x10, 0x00, 0x00, 1, 2, 3};
    kafka_rd_init(&r, big_array, sizeof big_array);
    (void)kafka_rd_array(&r, false, 4);
    assert_true(r.bad);
    const uint8_t overlong[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    kafka_rd_init(&r, overlong, sizeof overlong);
    (void)kafka_rd_uvarint(&r);
    assert_true(r.bad);
}

static size_t t__header(uint8_t *p, int16_t key, int16_t version)
{
    p[0] = (uint8_t)(key >> 8);
    p[1] = (uint8_t)key;
    p[2] = (uint8_t)(version >> 8);
    p[3] = (uint8_t)version;
    memcpy(p + 4, "\x00\x00\x00\x07\xff\xff", 6); /* correlation 7, null client id */
    return 10;
}

/* The header decoder knows the table: supported, unknown API, a version
 * out of range, Produce below v3, and a truncated header. */
static void test_header_versions(void **state)
{
    uint8_t f[16];
    struct kafka_rd r;
    struct kafka_req_header h;
    (void)state;
    kafka_rd_init(&r, f, t__header(f, KAFKA_METADATA, 9));
    f[10] = 0; /* no tagged fields: header v2 */
    r.left++;
    assert_int_equal(kafka_decode_header(&r, &h), 0);
    assert_true(h.flex);
    assert_int_equal(h.correlation_id, 7);
    kafka_rd_init(&r, f, t__header(f, KAFKA_METADATA, 4));
    assert_int_equal(kafka_decode_header(&r, &h), 0);
    assert_false(h.flex);
    kafka_rd_init(&r, f, t__header(f, 999, 0));
    assert_int_equal(kafka_decode_header(&r, &h), 1);
    kafka_rd_init(&r, f, t__header(f, KAFKA_FETCH, 12));
    assert_int_equal(kafka_decode_header(&r, &h), 1);
    kafka_rd_init(&r, f, t__header(f, KAFKA_PRODUCE, 2));
    assert_int_equal(kafka_decode_header(&r, &h), 1);
    kafka_rd_init(&r, f, 5);
    assert_int_equal(kafka_decode_header(&r, &h), -1);
}

/* A Kafka batch of @n records "k<i>"/"v<i>" with one header each. */
static void t__kafka_batch(struct buf *b, int n, int16_t attributes)
{
    struct buf recs, one;
    buf_init(&recs);
    buf_init(&one);
    for (int i = 0; i < n; i++) {
        char k[16], v[16];
        int kl = snprintf(k, sizeof k, "k%d", i), vl = snprintf(v, sizeof v, "v%d", i);
        one.len = 0;
        kafka_put_i8(&one, 0);
        kafka_put_varlong(&one, i);
        kafka_put_varint(&one, i);
        kafka_put_varint(&one, kl);
        buf_put(&one, k, (size_t)kl);
        kafka_put_varint(&one, vl);
        buf_put(&one, v, (size_t)vl);
        kafka_put_varint(&one, 1);
        kafka_put_varint(&one, 1);
        buf_put(&one, "h", 1);
        kafka_put_varint(&one, 2);
        buf_put(&one, "hv", 2);
        kafka_put_varint(&recs, (int32_t)one.len);
        buf_put(&recs, one.data, one.len);
    }
    kafka_put_i64(b, 0);
    kafka_put_i32(b, 0);
    kafka_put_i32(b, 0);
    kafka_put_i8(b, 2);
    kafka_put_i32(b, 0);
    kafka_put_i16(b, attributes);
    kafka_put_i32(b, n - 1);
    kafka_put_i64(b, 1000);
    kafka_put_i64(b, 1000 + n - 1);
    kafka_put_i64(b, -1);
    kafka_put_i16(b, -1);
    kafka_put_i32(b, -1);
    kafka_put_i32(b, n);
    buf_put(b, recs.data, recs.len);
    kafka_patch_i32(b, 8, (uint32_t)(b->len - 12));
    kafka_patch_i32(b, 17, kafka_crc32c(b->data + 21, b->len - 21));
    buf_free(&recs);
    buf_free(&one);
}

static uint64_t t__be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* Kafka -> tally keeps keys, values, headers and the producer's
 * timestamps; tally -> Kafka gives a batch whose CRC checks and whose
 * records read back the same, timestamps included (CreateTime). */
static void test_records_round_trip(void **state)
{
    struct buf k, t, back;
    struct kafka_batch_info info;
    char errmsg[ERR_MSG_SIZE];
    struct batch_iter it;
    struct batch_record rec;
    (void)state;
    buf_init(&k);
    buf_init(&t);
    buf_init(&back);
    t__kafka_batch(&k, 3, 0);
    assert_int_equal(kafka_records_to_tally(k.data, k.len, &info, &t, errmsg), 0);
    assert_int_equal(info.record_count, 3);
    assert_true(info.producer_id == -1);
    batch_stamp(t.data, 40, 5000, 9);
    assert_int_equal(batch_iter_init(&it, t.data, t.len, errmsg), 0);
    for (int i = 0; i < 3; i++) {
        char want[16];
        assert_int_equal(batch_iter_next(&it, &rec, errmsg), 0);
        assert_true(rec.offset == (uint64_t)(40 + i));
        snprintf(want, sizeof want, "k%d", i);
        assert_memory_equal(rec.key, want, rec.key_len);
        assert_int_equal(rec.header_count, 1);
        /* The leader's time, and the producer's beside it. */
        assert_int_equal(rec.timestamp, 5000);
        assert_true(rec.has_create_time);
        assert_int_equal(rec.create_time, 1000 + i);
    }
    batch_iter_close(&it);
    size_t used;
    assert_int_equal(kafka_records_from_tally(t.data, t.len, 1 << 20, &back, &used, errmsg), 0);
    assert_int_equal(used, t.len);
    assert_int_equal(kafka_crc32c(back.data + 21, back.len - 21), t__be(back.data + 17, 4));
    assert_int_equal(t__be(back.data + 21, 2), 0); /* CreateTime, uncompressed */
    assert_int_equal(t__be(back.data + 27, 8), 1000);
    assert_int_equal(t__be(back.data + 35, 8), 1002);
    /* Read it again as a produce: the same three records, same times. */
    struct buf again;
    buf_init(&again);
    assert_int_equal(kafka_records_to_tally(back.data, back.len, &info, &again, errmsg), 0);
    assert_int_equal(info.record_count, 3);
    assert_int_equal(batch_iter_init(&it, again.data, again.len, errmsg), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(batch_iter_next(&it, &rec, errmsg), 0);
        assert_int_equal(rec.create_time, 1000 + i);
    }
    batch_iter_close(&it);
    buf_free(&again);
    /* A batch written natively goes out with the leader's time, marked
     * LogAppendTime. */
    struct batch_builder bb;
    buf_init(&again);
    back.len = 0;
    batch_builder_init(&bb, 0, 0);
    assert_int_equal(batch_builder_add(&bb, "k", 1, "v", 1), 0);
    assert_int_equal(batch_builder_finish(&bb, false, &again), 0);
    batch_stamp(again.data, 7, 6000, 3);
    assert_int_equal(kafka_records_from_tally(again.data, again.len, 1 << 20, &back, &used,
                                              errmsg), 0);
    assert_int_equal(t__be(back.data + 21, 2), KAFKA_ATTR_LOG_APPEND_TIME);
    assert_int_equal(t__be(back.data + 27, 8), 6000);
    assert_int_equal(t__be(back.data + 35, 8), 6000);
    batch_builder_free(&bb);
    buf_free(&again);
    buf_free(&k);
    buf_free(&t);
    buf_free(&back);
}

/* A null header value (Kafka's length -1) is stored as null, apart from
 * an empty one, and a fetch gives it back as -1: the Kafka records that
 * come out are the ones that went in, byte for byte. */
static void test_records_null_header(void **state)
{
    struct buf k, recs, one, t, back;
    struct kafka_batch_info info;
    char errmsg[ERR_MSG_SIZE];
    struct batch_iter it;
    struct batch_record rec;
    struct batch_headers hr;
    struct batch_kv kv;
    (void)state;
    buf_init(&k);
    buf_init(&recs);
    buf_init(&one);
    buf_init(&t);
    buf_init(&back);
    /* Record 0: h = "" (empty); record 1: n = null, e = "". */
    for (int i = 0; i < 2; i++) {
        one.len = 0;
        kafka_put_i8(&one, 0);
        kafka_put_varlong(&one, i);
        kafka_put_varint(&one, i);
        kafka_put_varint(&one, 1);
        buf_put(&one, "k", 1);
        kafka_put_varint(&one, 1);
        buf_put(&one, "v", 1);
        if (i == 0) {
            kafka_put_varint(&one, 1);
            kafka_put_varint(&one, 1);
            buf_put(&one, "h", 1);
            kafka_put_varint(&one, 0);
        } else {
            kafka_put_varint(&one, 2);
            kafka_put_varint(&one, 1);
            buf_put(&one, "n", 1);
            kafka_put_varint(&one, -1);
            kafka_put_varint(&one, 1);
            buf_put(&one, "e", 1);
            kafka_put_varint(&one, 0);
        }
        kafka_put_varint(&recs, (int32_t)one.len);
        buf_put(&recs, one.data, one.len);
    }
    kafka_put_i64(&k, 0);
    kafka_put_i32(&k, 0);
    kafka_put_i32(&k, 0);
    kafka_put_i8(&k, 2);
    kafka_put_i32(&k, 0);
    kafka_put_i16(&k, 0);
    kafka_put_i32(&k, 1);
    kafka_put_i64(&k, 1000);
    kafka_put_i64(&k, 1001);
    kafka_put_i64(&k, -1);
    kafka_put_i16(&k, -1);
    kafka_put_i32(&k, -1);
    kafka_put_i32(&k, 2);
    buf_put(&k, recs.data, recs.len);
    kafka_patch_i32(&k, 8, (uint32_t)(k.len - 12));
    kafka_patch_i32(&k, 17, kafka_crc32c(k.data + 21, k.len - 21));

    assert_int_equal(kafka_records_to_tally(k.data, k.len, &info, &t, errmsg), 0);
    batch_stamp(t.data, 0, 5000, 1);
    assert_int_equal(batch_iter_init(&it, t.data, t.len, errmsg), 0);
    assert_true(it.h.flags & BATCH_FLAG_NULL_HEADERS);
    assert_int_equal(batch_iter_next(&it, &rec, errmsg), 0);
    batch_headers_init(&hr, rec.headers, rec.headers_len, rec.header_nulls);
    assert_true(batch_headers_next(&hr, &kv));
    assert_non_null(kv.value); /* empty, not null */
    assert_int_equal(kv.value_len, 0);
    assert_int_equal(batch_iter_next(&it, &rec, errmsg), 0);
    batch_headers_init(&hr, rec.headers, rec.headers_len, rec.header_nulls);
    assert_true(batch_headers_next(&hr, &kv));
    assert_memory_equal(kv.name, "n", 1);
    assert_null(kv.value); /* null */
    assert_true(batch_headers_next(&hr, &kv));
    assert_memory_equal(kv.name, "e", 1);
    assert_non_null(kv.value);
    assert_int_equal(kv.value_len, 0);
    assert_false(batch_headers_next(&hr, &kv));
    batch_iter_close(&it);

    size_t used;
    assert_int_equal(kafka_records_from_tally(t.data, t.len, 1 << 20, &back, &used, errmsg), 0);
    assert_int_equal(back.len, k.len);
    assert_memory_equal(back.data + KAFKA_BATCH_HEADER_SIZE, k.data + KAFKA_BATCH_HEADER_SIZE,
                        k.len - KAFKA_BATCH_HEADER_SIZE);
    buf_free(&k);
    buf_free(&recs);
    buf_free(&one);
    buf_free(&t);
    buf_free(&back);
}

/* The Kafka output of a fetch is bounded: past the limit the next batch is
 * left for the next answer (the first one always goes). */
static void test_records_from_tally_limit(void **state)
{
    struct buf k, t, back;
    struct kafka_batch_info info;
    char errmsg[ERR_MSG_SIZE];
    size_t used, first;
    (void)state;
    buf_init(&k);
    buf_init(&t);
    buf_init(&back);
    t__kafka_batch(&k, 3, 0);
    assert_int_equal(kafka_records_to_tally(k.data, k.len, &info, &t, errmsg), 0);
    first = t.len;
    assert_int_equal(kafka_records_to_tally(k.data, k.len, &info, &t, errmsg), 0);
    batch_stamp(t.data, 0, 5000, 1);
    batch_stamp(t.data + first, 3, 5000, 2);
    assert_int_equal(kafka_records_from_tally(t.data, t.len, 1, &back, &used, errmsg), 0);
    assert_int_equal(used, first);
    size_t one = back.len;
    back.len = 0;
    assert_int_equal(kafka_records_from_tally(t.data, t.len, 1 << 20, &back, &used, errmsg), 0);
    assert_int_equal(used, t.len);
    assert_int_equal(back.len, 2 * one);
    buf_free(&k);
    buf_free(&t);
    buf_free(&back);
}

/* Every broken batch is refused with its Kafka error and nothing is
 * appended to the output. */
static void test_records_refused(void **state)
{
    struct buf k, t;
    struct kafka_batch_info info;
    char errmsg[ERR_MSG_SIZE];
    (void)state;
    buf_init(&k);
    buf_init(&t);
    t__kafka_batch(&k, 2, 0);
    k.data[k.len - 1] ^= 1; /* payload changed: CRC mismatch */
    assert_int_equal(kafka_records_to_tally(k.data, k.len, &info, &t, errmsg),
                     KAFKA_CORRUPT_MESSAGE);
    assert_non_null(strstr(errmsg, "CRC"));
    k.len = 0;
    t__kafka_batch(&k, 2, 0);
    assert_int_equal(kafka_records_to_tally(k.data, k.len - 1, &info, &t, errmsg),
                     KAFKA_CORRUPT_MESSAGE); /* batchLength lies */
    assert_int_equal(kafka_records_to_tally(k.data, 20, &info, &t, errmsg),
                     KAFKA_CORRUPT_MESSAGE);
    k.data[16] = 1; /* magic 1 */
    assert_int_equal(kafka_records_to_tally(k.data, k.len, &info, &t, errmsg),
                     KAFKA_UNSUPPORTED_FOR_MESSAGE_FORMAT);
    k.len = 0;
    t__kafka_batch(&k, 2, 0x20); /* control batch */
    assert_int_equal(kafka_records_to_tally(k.data, k.len, &info, &t, errmsg),
                     KAFKA_INVALID_RECORD);
    k.len = 0;
    t__kafka_batch(&k, 2, 7); /* compression 7 does not exist */
    assert_int_equal(kafka_records_to_tally(k.data, k.len, &info, &t, errmsg),
                     KAFKA_UNSUPPORTED_COMPRESSION_TYPE);
    k.len = 0;
    t__kafka_batch(&k, 2, 0);
    k.data[57 + 3] = 3; /* record count says 3, two follow */
    kafka_patch_i32(&k, 17, kafka_crc32c(k.data + 21, k.len - 21));
    assert_int_equal(kafka_records_to_tally(k.data, k.len, &info, &t, errmsg),
                     KAFKA_INVALID_RECORD);
    k.len = 0;
    t__kafka_batch(&k, 2, 0);
    k.data[61] = 0x7E; /* first record's length is far too long */
    kafka_patch_i32(&k, 17, kafka_crc32c(k.data + 21, k.len - 21));
    assert_int_equal(kafka_records_to_tally(k.data, k.len, &info, &t, errmsg),
                     KAFKA_CORRUPT_MESSAGE);
    assert_int_equal(t.len, 0);
    buf_free(&k);
    buf_free(&t);
}

/* Compress @in with @codec as a Kafka client does; returns the length. */
static size_t t__compress(int codec, const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    switch (codec) {
    case KAFKA_CODEC_GZIP: {
        z_stream z;
        memset(&z, 0, sizeof z);
        assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
                         Z_OK);
        z.next_in = (Bytef *)(uintptr_t)in;
        z.avail_in = (uInt)n;
        z.next_out = out;
        z.avail_out = (uInt)cap;
        assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
        size_t len = cap - z.avail_out;
        deflateEnd(&z);
        return len;
    }
    case KAFKA_CODEC_SNAPPY: {
        size_t len = cap;
        assert_int_equal(snappy_compress((const char *)in, n, (char *)out, &len), SNAPPY_OK);
        return len;
    }
    case KAFKA_CODEC_LZ4: {
        size_t len = LZ4F_compressFrame(out, cap, in, n, NULL);
        assert_false(LZ4F_isError(len));
        return len;
    }
    case KAFKA_CODEC_ZSTD: {
        size_t len = ZSTD_compress(out, cap, in, n, 3);
        assert_false(ZSTD_isError(len));
        return len;
    }
    }
    fail();
    return 0;
}

/* A batch whose records section is compressed with each codec converts to
 * the same records as the uncompressed one; a damaged or truncated
 * compressed section, and one that inflates past the limit, are refused. */
static void test_records_compressed(void **state)
{
    (void)state;
    for (int codec = 1; codec <= 4; codec++) {
        struct buf k, z, t;
        struct kafka_batch_info info;
        char errmsg[ERR_MSG_SIZE];
        static uint8_t packed[1 << 16];
        buf_init(&k);
        buf_init(&z);
        buf_init(&t);
        t__kafka_batch(&k, 40, 0);
        size_t len = t__compress(codec, k.data + 61, k.len - 61, packed, sizeof packed);
        buf_put(&z, k.data, 61);
        buf_put(&z, packed, len);
        z.data[22] = (uint8_t)codec; /* attributes, low byte */
        kafka_patch_i32(&z, 8, (uint32_t)(z.len - 12));
        kafka_patch_i32(&z, 17, kafka_crc32c(z.data + 21, z.len - 21));
        assert_int_equal(kafka_records_to_tally(z.data, z.len, &info, &t, errmsg), 0);
        assert_int_equal(info.compression, codec);
        struct batch_header h;
        assert_int_equal(batch_verify(t.data, t.len, &h, errmsg), 0);
        assert_int_equal(h.record_count, 40);
        /* Truncated inside the compressed section (CRC recomputed). */
        z.len -= 3;
        kafka_patch_i32(&z, 8, (uint32_t)(z.len - 12));
        kafka_patch_i32(&z, 17, kafka_crc32c(z.data + 21, z.len - 21));
        t.len = 0;
        assert_int_equal(kafka_records_to_tally(z.data, z.len, &info, &t, errmsg),
                         KAFKA_CORRUPT_MESSAGE);
        assert_int_equal(t.len, 0);
        /* Over the output limit. */
        struct buf big;
        buf_init(&big);
        assert_int_equal(kafka_decompress(codec, packed, len, 100, &big, errmsg),
                         KAFKA_CORRUPT_MESSAGE);
        buf_free(&big);
        buf_free(&k);
        buf_free(&z);
        buf_free(&t);
    }
}

/* A Produce v3 body decodes; the same body cut short does not. */
static void test_decode_produce(void **state)
{
    struct buf b;
    struct kafka_rd r;
    struct kafka_arena a;
    struct kafka_produce_req m;
    struct kafka_req_header h = {.api_key = KAFKA_PRODUCE, .api_version = 3};
    (void)state;
    buf_init(&b);
    kafka_put_string(&b, false, NULL, 0);
    kafka_put_i16(&b, -1);
    kafka_put_i32(&b, 1000);
    kafka_put_array(&b, false, 1);
    kafka_put_string(&b, false, "t", 1);
    kafka_put_array(&b, false, 1);
    kafka_put_i32(&b, 0);
    kafka_put_bytes(&b, false, "xyz", 3);
    kafka_arena_init(&a);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_produce(&r, &h, &a, &m), 0);
    assert_int_equal(m.acks, -1);
    assert_int_equal(m.topics[0].parts[0].records.len, 3);
    for (size_t cut = 0; cut < b.len; cut++) {
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_produce(&r, &h, &a, &m), -1);
    }
    kafka_arena_free(&a);
    buf_free(&b);
}

/* ApiVersions lists every API of the table; an unsupported version gets
 * error 35 in v0's layout. */
static void test_api_versions(void **state)
{
    struct buf b;
    struct kafka_rd r;
    (void)state;
    buf_init(&b);
    kafka_encode_api_versions(&b, 3, KAFKA_NONE);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_rd_i16(&r), 0);
    assert_int_equal(kafka_rd_array(&r, true, 0), (int32_t)kafka_n_apis);
    b.len = 0;
    kafka_encode_api_versions(&b, 0, KAFKA_UNSUPPORTED_VERSION);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_rd_i16(&r), 35);
    assert_int_equal(kafka_rd_i32(&r), (int32_t)kafka_n_apis);
    buf_free(&b);
}

/* The group, offset and config APIs' table entries: their version ranges
 * and first flexible versions, as the schemas' "flexibleVersions". */
static void test_header_group_apis(void **state)
{
    static const struct {
        int16_t key, version;
        int rv;
        bool flex;
    } cases[] = {
        {KAFKA_FIND_COORDINATOR, 2, 0, false}, {KAFKA_FIND_COORDINATOR, 3, 0, true},
        {KAFKA_FIND_COORDINATOR, 4, 1, false}, {KAFKA_OFFSET_COMMIT, 1, 1, false},
        {KAFKA_OFFSET_COMMIT, 7, 0, false},    {KAFKA_OFFSET_COMMIT, 8, 1, false},
        {KAFKA_OFFSET_FETCH, 0, 1, false},     {KAFKA_OFFSET_FETCH, 5, 0, false},
        {KAFKA_OFFSET_FETCH, 6, 0, true},      {KAFKA_OFFSET_FETCH, 7, 0, true},
        {KAFKA_OFFSET_FETCH, 8, 1, false},     {KAFKA_JOIN_GROUP, 5, 0, false},
        {KAFKA_JOIN_GROUP, 6, 1, false},       {KAFKA_HEARTBEAT, 3, 0, false},
        {KAFKA_LEAVE_GROUP, 3, 0, false},      {KAFKA_SYNC_GROUP, 3, 0, false},
        {KAFKA_DESCRIBE_GROUPS, 4, 0, false},  {KAFKA_DESCRIBE_GROUPS, 5, 1, false},
        {KAFKA_LIST_GROUPS, 2, 0, false},      {KAFKA_LIST_GROUPS, 3, 1, false},
        {KAFKA_DESCRIBE_CONFIGS, 3, 0, false}, {KAFKA_ALTER_CONFIGS, 0, 0, false},
        {KAFKA_ALTER_CONFIGS, 1, 0, false},    {KAFKA_ALTER_CONFIGS, 2, 1, false},
        {KAFKA_INCREMENTAL_ALTER_CONFIGS, 0, 0, false},
        {KAFKA_INCREMENTAL_ALTER_CONFIGS, 1, 1, false},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t f[16];
        struct kafka_rd r;
        struct kafka_req_header h;
        size_t n = t__header(f, cases[i].key, cases[i].version);
        f[n] = 0; /* tagged fields, read only by a flexible header */
        kafka_rd_init(&r, f, n + (cases[i].flex ? 1 : 0));
        assert_int_equal(kafka_decode_header(&r, &h), cases[i].rv);
        if (cases[i].rv == 0) {
            assert_int_equal(h.flex, cases[i].flex);
            assert_int_equal(r.left, 0);
        }
    }
}

/* @b holds exactly the @n bytes @want. */
static void t__bytes(const struct buf *b, const char *want, size_t n)
{
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
}
#define T_BYTES(b, literal) t__bytes((b), literal, sizeof literal - 1)

/* A request header of @key at @version (flexible or not). */
static struct kafka_req_header t__h(int16_t key, int16_t version, bool flex)
{
    struct kafka_req_header h = {.api_key = key, .api_version = version, .flex = flex};
    return h;
}

/* FindCoordinator v0 (key only) and v3 (flexible, key type) decode; cut
 * short they do not; the answer names the coordinator, or none. */
static void test_find_coordinator(void **state)
{
    struct buf b;
    struct kafka_rd r;
    struct kafka_find_coord_req m;
    struct kafka_req_header h0 = t__h(KAFKA_FIND_COORDINATOR, 0, false);
    struct kafka_req_header h3 = t__h(KAFKA_FIND_COORDINATOR, 3, true);
    (void)state;
    buf_init(&b);
    kafka_put_string(&b, false, "grp", 3);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_find_coordinator(&r, &h0, &m), 0);
    assert_int_equal(m.key.len, 3);
    assert_memory_equal(m.key.p, "grp", 3);
    assert_int_equal(m.key_type, KAFKA_COORDINATOR_GROUP);
    for (size_t cut = 0; cut < b.len; cut++) {
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_find_coordinator(&r, &h0, &m), -1);
    }
    b.len = 0;
    kafka_put_string(&b, false, NULL, 0); /* a null key is refused */
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_find_coordinator(&r, &h0, &m), -1);
    b.len = 0;
    kafka_put_string(&b, true, "tx", 2);
    kafka_put_i8(&b, KAFKA_COORDINATOR_TRANSACTION);
    kafka_put_tags(&b, true);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_find_coordinator(&r, &h3, &m), 0);
    assert_int_equal(m.key.len, 2);
    assert_int_equal(m.key_type, KAFKA_COORDINATOR_TRANSACTION);
    for (size_t cut = 0; cut < b.len; cut++) {
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_find_coordinator(&r, &h3, &m), -1);
    }
    b.len = 0;
    kafka_encode_find_coordinator(&b, &h0, KAFKA_COORDINATOR_NOT_AVAILABLE, "x", NULL);
    T_BYTES(&b, "\x00\x0f" "\xff\xff\xff\xff" "\x00\x00" "\xff\xff\xff\xff");
    b.len = 0;
    struct kafka_broker coord = {.node_id = 1, .host = "h", .port = 9092};
    kafka_encode_find_coordinator(&b, &h3, KAFKA_NONE, NULL, &coord);
    T_BYTES(&b,
             "\x00\x00\x00\x00" /* throttle_time_ms */
             "\x00\x00"         /* error_code */
             "\x00"             /* error_message: null */
             "\x00\x00\x00\x01" "\x02h" "\x00\x00\x23\x84" "\x00");
    buf_free(&b);
}

/* JoinGroup v0 (rebalance timeout from the session timeout, no instance
 * id) and v5 decode; cut short they do not; the answer at v0 and v5. */
static void test_join_group(void **state)
{
    struct buf b;
    struct kafka_rd r;
    struct kafka_arena a;
    struct kafka_join_req m;
    struct kafka_req_header h0 = t__h(KAFKA_JOIN_GROUP, 0, false);
    struct kafka_req_header h5 = t__h(KAFKA_JOIN_GROUP, 5, false);
    (void)state;
    buf_init(&b);
    kafka_arena_init(&a);
    kafka_put_string(&b, false, "g", 1);
    kafka_put_i32(&b, 10000);
    kafka_put_string(&b, false, "", 0);
    kafka_put_string(&b, false, "consumer", 8);
    kafka_put_array(&b, false, 2);
    kafka_put_string(&b, false, "range", 5);
    kafka_put_bytes(&b, false, "\x00\x01", 2);
    kafka_put_string(&b, false, "roundrobin", 10);
    kafka_put_bytes(&b, false, "", 0);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_join_group(&r, &h0, &a, &m), 0);
    assert_int_equal(m.group_id.len, 1);
    assert_int_equal(m.session_timeout_ms, 10000);
    assert_int_equal(m.rebalance_timeout_ms, 10000);
    assert_int_equal(m.member_id.len, 0);
    assert_int_equal(m.group_instance_id.len, -1);
    assert_int_equal(m.protocol_type.len, 8);
    assert_int_equal(m.n_protocols, 2);
    assert_memory_equal(m.protocols[0].name.p, "range", 5);
    assert_int_equal(m.protocols[0].metadata.len, 2);
    assert_int_equal(m.protocols[1].name.len, 10);
    assert_int_equal(m.protocols[1].metadata.len, 0);
    for (size_t cut = 0; cut < b.len; cut++) {
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_join_group(&r, &h0, &a, &m), -1);
    }
    b.len = 0;
    kafka_put_string(&b, false, "g", 1);
    kafka_put_i32(&b, 10000);
    kafka_put_i32(&b, 300000);
    kafka_put_string(&b, false, "m-1", 3);
    kafka_put_string(&b, false, "inst", 4);
    kafka_put_string(&b, false, "consumer", 8);
    kafka_put_array(&b, false, 1);
    kafka_put_string(&b, false, "range", 5);
    kafka_put_bytes(&b, false, "\x00\x01", 2);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_join_group(&r, &h5, &a, &m), 0);
    assert_int_equal(m.session_timeout_ms, 10000);
    assert_int_equal(m.rebalance_timeout_ms, 300000);
    assert_memory_equal(m.member_id.p, "m-1", 3);
    assert_int_equal(m.group_instance_id.len, 4);
    assert_memory_equal(m.group_instance_id.p, "inst", 4);
    assert_int_equal(m.n_protocols, 1);
    for (size_t cut = 0; cut < b.len; cut++) {
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_join_group(&r, &h5, &a, &m), -1);
    }
    /* A null protocol type is refused (the field is not nullable). */
    b.len = 0;
    kafka_put_string(&b, false, "g", 1);
    kafka_put_i32(&b, 10000);
    kafka_put_string(&b, false, "", 0);
    kafka_put_string(&b, false, NULL, 0);
    kafka_put_array(&b, false, 0);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_join_group(&r, &h0, &a, &m), -1);

    struct kafka_join_member members[2] = {
        {.member_id = "m1", .group_instance_id = "i1", .metadata = (const uint8_t *)"\x01\x02",
         .metadata_len = 2},
        {.member_id = "m2", .group_instance_id = NULL, .metadata = NULL, .metadata_len = 0},
    };
    struct kafka_join_resp resp = {.error = KAFKA_NONE, .generation_id = 3,
                                   .protocol_name = "range", .leader = "m1", .member_id = "m1",
                                   .n_members = 2, .members = members};
    b.len = 0;
    kafka_encode_join_group(&b, &h0, &resp);
    T_BYTES(&b,
             "\x00\x00" "\x00\x00\x00\x03" "\x00\x05range" "\x00\x02m1" "\x00\x02m1"
             "\x00\x00\x00\x02"
             "\x00\x02m1" "\x00\x00\x00\x02\x01\x02"
             "\x00\x02m2" "\x00\x00\x00\x00");
    b.len = 0;
    resp.protocol_name = NULL; /* not nullable before v7: "" */
    kafka_encode_join_group(&b, &h5, &resp);
    T_BYTES(&b,
             "\x00\x00\x00\x00" /* throttle_time_ms (v2+) */
             "\x00\x00" "\x00\x00\x00\x03" "\x00\x00" "\x00\x02m1" "\x00\x02m1"
             "\x00\x00\x00\x02"
             "\x00\x02m1" "\x00\x02i1" "\x00\x00\x00\x02\x01\x02"
             "\x00\x02m2" "\xff\xff" "\x00\x00\x00\x00");
    kafka_arena_free(&a);
    buf_free(&b);
}

/* SyncGroup v0 (the leader's assignments) and v3 (instance id, no
 * assignments) decode; cut short they do not; the answer at v0 and v3. */
static void test_sync_group(void **state)
{
    struct buf b;
    struct kafka_rd r;
    struct kafka_arena a;
    struct kafka_sync_req m;
    struct kafka_req_header h0 = t__h(KAFKA_SYNC_GROUP, 0, false);
    struct kafka_req_header h3 = t__h(KAFKA_SYNC_GROUP, 3, false);
    (void)state;
    buf_init(&b);
    kafka_arena_init(&a);
    kafka_put_string(&b, false, "g", 1);
    kafka_put_i32(&b, 4);
    kafka_put_string(&b, false, "m1", 2);
    kafka_put_array(&b, false, 2);
    kafka_put_string(&b, false, "m1", 2);
    kafka_put_bytes(&b, false, "\x00\x01\x02", 3);
    kafka_put_string(&b, false, "m2", 2);
    kafka_put_bytes(&b, false, "", 0);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_sync_group(&r, &h0, &a, &m), 0);
    assert_int_equal(m.generation_id, 4);
    assert_memory_equal(m.member_id.p, "m1", 2);
    assert_int_equal(m.group_instance_id.len, -1);
    assert_int_equal(m.n_assignments, 2);
    assert_int_equal(m.assignments[0].assignment.len, 3);
    assert_memory_equal(m.assignments[1].member_id.p, "m2", 2);
    assert_int_equal(m.assignments[1].assignment.len, 0);
    for (size_t cut = 0; cut < b.len; cut++) {
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_sync_group(&r, &h0, &a, &m), -1);
    }
    b.len = 0;
    kafka_put_string(&b, false, "g", 1);
    kafka_put_i32(&b, 4);
    kafka_put_string(&b, false, "m2", 2);
    kafka_put_string(&b, false, "i2", 2);
    kafka_put_array(&b, false, 0);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_sync_group(&r, &h3, &a, &m), 0);
    assert_int_equal(m.group_instance_id.len, 2);
    assert_int_equal(m.n_assignments, 0);
    for (size_t cut = 0; cut < b.len; cut++) {
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_sync_group(&r, &h3, &a, &m), -1);
    }
    b.len = 0;
    kafka_encode_sync_group(&b, &h0, KAFKA_NONE, "\x00\x01", 2);
    T_BYTES(&b, "\x00\x00" "\x00\x00\x00\x02\x00\x01");
    b.len = 0;
    kafka_encode_sync_group(&b, &h3, KAFKA_REBALANCE_IN_PROGRESS, NULL, 0);
    T_BYTES(&b, "\x00\x00\x00\x00" "\x00\x1b" "\x00\x00\x00\x00");
    kafka_arena_free(&a);
    buf_free(&b);
}

/* Heartbeat v0 and v3 decode; cut short they do not; the answer. */
static void test_heartbeat(void **state)
{
    struct buf b;
    struct kafka_rd r;
    struct kafka_heartbeat_req m;
    struct kafka_req_header h0 = t__h(KAFKA_HEARTBEAT, 0, false);
    struct kafka_req_header h3 = t__h(KAFKA_HEARTBEAT, 3, false);
    (void)state;
    buf_init(&b);
    kafka_put_string(&b, false, "g", 1);
    kafka_put_i32(&b, 2);
    kafka_put_string(&b, false, "m1", 2);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_heartbeat(&r, &h0, &m), 0);
    assert_int_equal(m.generation_id, 2);
    assert_int_equal(m.member_id.len, 2);
    assert_int_equal(m.group_instance_id.len, -1);
    for (size_t cut = 0; cut < b.len; cut++) {
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_heartbeat(&r, &h0, &m), -1);
    }
    kafka_put_string(&b, false, NULL, 0); /* v3's group_instance_id: null */
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_heartbeat(&r, &h3, &m), 0);
    assert_int_equal(m.group_instance_id.len, -1);
    for (size_t cut = 0; cut < b.len; cut++) {
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_heartbeat(&r, &h3, &m), -1);
    }
    b.len = 0;
    kafka_encode_heartbeat(&b, &h0, KAFKA_REBALANCE_IN_PROGRESS);
    T_BYTES(&b, "\x00\x1b");
    b.len = 0;
    kafka_encode_heartbeat(&b, &h3, KAFKA_NONE);
    T_BYTES(&b, "\x00\x00\x00\x00" "\x00\x00");
    buf_free(&b);
}

/* LeaveGroup v0 (one member id) and v3 (a members array) decode into the
 * same members; cut short they do not; the answer at v0 and v3. */
static void test_leave_group(void **state)
{
    struct buf b;
    struct kafka_rd r;
    struct kafka_arena a;
    struct kafka_leave_req m;
    struct kafka_req_header h0 = t__h(KAFKA_LEAVE_GROUP, 0, false);
    struct kafka_req_header h3 = t__h(KAFKA_LEAVE_GROUP, 3, false);
    (void)state;
    buf_init(&b);
    kafka_arena_init(&a);
    kafka_put_string(&b, false, "g", 1);
    kafka_put_string(&b, false, "m1", 2);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_leave_group(&r, &h0, &a, &m), 0);
    assert_int_equal(m.group_id.len, 1);
    assert_int_equal(m.n_members, 1);
    assert_memory_equal(m.members[0].member_id.p, "m1", 2);
    assert_int_equal(m.members[0].group_instance_id.len, -1);
    for (size_t cut = 0; cut < b.len; cut++) {
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_leave_group(&r, &h0, &a, &m), -1);
    }
    b.len = 0;
    kafka_encode_leave_group(&b, &h0, KAFKA_NONE, &m);
    T_BYTES(&b, "\x00\x00");
    b.len = 0;
    kafka_put_string(&b, false, "g", 1);
    kafka_put_array(&b, false, 2);
    kafka_put_string(&b, false, "m1", 2);
    kafka_put_string(&b, false, NULL, 0);
    kafka_put_string(&b, false, "m2", 2);
    kafka_put_string(&b, false, "i2", 2);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_leave_group(&r, &h3, &a, &m), 0);
    assert_int_equal(m.n_members, 2);
    assert_int_equal(m.members[0].group_instance_id.len, -1);
    assert_memory_equal(m.members[1].member_id.p, "m2", 2);
    assert_memory_equal(m.members[1].group_instance_id.p, "i2", 2);
    for (size_t cut = 0; cut < b.len; cut++) {
        struct kafka_leave_req cut_m;
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_leave_group(&r, &h3, &a, &cut_m), -1);
    }
    m.members[1].error = KAFKA_UNKNOWN_MEMBER_ID;
    struct buf out;
    buf_init(&out);
    kafka_encode_leave_group(&out, &h3, KAFKA_NONE, &m);
    T_BYTES(&out,
             "\x00\x00\x00\x00" "\x00\x00" "\x00\x00\x00\x02"
             "\x00\x02m1" "\xff\xff" "\x00\x00"
             "\x00\x02m2" "\x00\x02i2" "\x00\x19");
    buf_free(&out);
    kafka_arena_free(&a);
    buf_free(&b);
}

/* OffsetCommit v2 (retention time) and v7 (leader epoch, instance id)
 * decode; cut short they do not; the answer at v2 and v7. */
static void test_offset_commit(void **state)
{
    struct buf b, out;
    struct kafka_rd r;
    struct kafka_arena a;
    struct kafka_commit_req m;
    struct kafka_req_header h2 = t__h(KAFKA_OFFSET_COMMIT, 2, false);
    struct kafka_req_header h7 = t__h(KAFKA_OFFSET_COMMIT, 7, false);
    (void)state;
    buf_init(&b);
    buf_init(&out);
    kafka_arena_init(&a);
    kafka_put_string(&b, false, "g", 1);
    kafka_put_i32(&b, -1);
    kafka_put_string(&b, false, "", 0);
    kafka_put_i64(&b, -1); /* retention_time_ms */
    kafka_put_array(&b, false, 1);
    kafka_put_string(&b, false, "t", 1);
    kafka_put_array(&b, false, 2);
    kafka_put_i32(&b, 0);
    kafka_put_i64(&b, 42);
    kafka_put_string(&b, false, "md", 2);
    kafka_put_i32(&b, 1);
    kafka_put_i64(&b, 7);
    kafka_put_string(&b, false, NULL, 0);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_offset_commit(&r, &h2, &a, &m), 0);
    assert_int_equal(m.generation_id, -1);
    assert_int_equal(m.member_id.len, 0);
    assert_int_equal(m.group_instance_id.len, -1);
    assert_int_equal(m.n_topics, 1);
    assert_int_equal(m.topics[0].n_parts, 2);
    assert_true(m.topics[0].parts[0].offset == 42);
    assert_int_equal(m.topics[0].parts[0].metadata.len, 2);
    assert_int_equal(m.topics[0].parts[1].index, 1);
    assert_true(m.topics[0].parts[1].offset == 7);
    assert_int_equal(m.topics[0].parts[1].metadata.len, -1);
    for (size_t cut = 0; cut < b.len; cut++) {
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_offset_commit(&r, &h2, &a, &m), -1);
    }
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_offset_commit(&r, &h2, &a, &m), 0);
    m.topics[0].parts[1].error = KAFKA_ILLEGAL_GENERATION;
    kafka_encode_offset_commit(&out, &h2, &m);
    T_BYTES(&out,
             "\x00\x00\x00\x01" "\x00\x01t" "\x00\x00\x00\x02"
             "\x00\x00\x00\x00" "\x00\x00" "\x00\x00\x00\x01" "\x00\x16");
    b.len = 0;
    kafka_put_string(&b, false, "g", 1);
    kafka_put_i32(&b, 5);
    kafka_put_string(&b, false, "m1", 2);
    kafka_put_string(&b, false, "i1", 2);
    kafka_put_array(&b, false, 1);
    kafka_put_string(&b, false, "t", 1);
    kafka_put_array(&b, false, 1);
    kafka_put_i32(&b, 3);
    kafka_put_i64(&b, 100);
    kafka_put_i32(&b, 9); /* committed_leader_epoch */
    kafka_put_string(&b, false, "", 0);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_offset_commit(&r, &h7, &a, &m), 0);
    assert_int_equal(m.generation_id, 5);
    assert_memory_equal(m.group_instance_id.p, "i1", 2);
    assert_int_equal(m.topics[0].parts[0].index, 3);
    assert_true(m.topics[0].parts[0].offset == 100);
    assert_int_equal(m.topics[0].parts[0].metadata.len, 0);
    for (size_t cut = 0; cut < b.len; cut++) {
        struct kafka_commit_req cut_m;
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_offset_commit(&r, &h7, &a, &cut_m), -1);
    }
    out.len = 0;
    kafka_encode_offset_commit(&out, &h7, &m);
    T_BYTES(&out,
             "\x00\x00\x00\x00" "\x00\x00\x00\x01" "\x00\x01t" "\x00\x00\x00\x01"
             "\x00\x00\x00\x03" "\x00\x00");
    kafka_arena_free(&a);
    buf_free(&out);
    buf_free(&b);
}

/* OffsetFetch v1, null topics (every topic: v2+ only), flexible v6 and v7
 * (require_stable) decode; cut short they do not; the answer at v1 and v7. */
static void test_offset_fetch(void **state)
{
    struct buf b, out;
    struct kafka_rd r;
    struct kafka_arena a;
    struct kafka_ofetch_req m;
    struct kafka_req_header h1 = t__h(KAFKA_OFFSET_FETCH, 1, false);
    struct kafka_req_header h2 = t__h(KAFKA_OFFSET_FETCH, 2, false);
    struct kafka_req_header h6 = t__h(KAFKA_OFFSET_FETCH, 6, true);
    struct kafka_req_header h7 = t__h(KAFKA_OFFSET_FETCH, 7, true);
    (void)state;
    buf_init(&b);
    buf_init(&out);
    kafka_arena_init(&a);
    kafka_put_string(&b, false, "g", 1);
    kafka_put_array(&b, false, 1);
    kafka_put_string(&b, false, "t", 1);
    kafka_put_array(&b, false, 2);
    kafka_put_i32(&b, 0);
    kafka_put_i32(&b, 1);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_offset_fetch(&r, &h1, &a, &m), 0);
    assert_int_equal(m.n_topics, 1);
    assert_int_equal(m.topics[0].n_parts, 2);
    assert_int_equal(m.topics[0].parts[1].index, 1);
    assert_true(m.topics[0].parts[1].offset == -1);
    assert_false(m.require_stable);
    for (size_t cut = 0; cut < b.len; cut++) {
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_offset_fetch(&r, &h1, &a, &m), -1);
    }
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_offset_fetch(&r, &h1, &a, &m), 0);
    m.topics[0].parts[0].offset = 42;
    kafka_encode_offset_fetch(&out, &h1, KAFKA_NOT_COORDINATOR, m.n_topics, m.topics);
    /* No top-level error_code before v2; metadata "" (tally keeps none). */
    T_BYTES(&out,
             "\x00\x00\x00\x01" "\x00\x01t" "\x00\x00\x00\x02"
             "\x00\x00\x00\x00" "\x00\x00\x00\x00\x00\x00\x00\x2a" "\x00\x00" "\x00\x00"
             "\x00\x00\x00\x01" "\xff\xff\xff\xff\xff\xff\xff\xff" "\x00\x00" "\x00\x00");
    /* Null topics: every topic, from v2; refused at v1. */
    b.len = 0;
    kafka_put_string(&b, false, "g", 1);
    kafka_put_array(&b, false, -1);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_offset_fetch(&r, &h2, &a, &m), 0);
    assert_int_equal(m.n_topics, -1);
    assert_null(m.topics);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_offset_fetch(&r, &h1, &a, &m), -1);
    out.len = 0;
    kafka_encode_offset_fetch(&out, &h2, KAFKA_NONE, -1, NULL);
    T_BYTES(&out, "\x00\x00\x00\x00" "\x00\x00");
    /* v6: compact strings and arrays, tagged fields. */
    b.len = 0;
    kafka_put_string(&b, true, "g", 1);
    kafka_put_array(&b, true, 1);
    kafka_put_string(&b, true, "t", 1);
    kafka_put_array(&b, true, 1);
    kafka_put_i32(&b, 4);
    kafka_put_tags(&b, true);
    kafka_put_tags(&b, true);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_offset_fetch(&r, &h6, &a, &m), 0);
    assert_int_equal(m.group_id.len, 1);
    assert_int_equal(m.topics[0].name.len, 1);
    assert_int_equal(m.topics[0].parts[0].index, 4);
    for (size_t cut = 0; cut < b.len; cut++) {
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_offset_fetch(&r, &h6, &a, &m), -1);
    }
    /* v7: require_stable after the topics; a null topics array too. */
    b.len = 0;
    kafka_put_string(&b, true, "g", 1);
    kafka_put_array(&b, true, 2);
    kafka_put_string(&b, true, "t", 1);
    kafka_put_array(&b, true, 2);
    kafka_put_i32(&b, 0);
    kafka_put_i32(&b, 1);
    kafka_put_tags(&b, true);
    kafka_put_string(&b, true, "u", 1);
    kafka_put_array(&b, true, 0);
    kafka_put_tags(&b, true);
    kafka_put_i8(&b, 1);
    kafka_put_tags(&b, true);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_offset_fetch(&r, &h7, &a, &m), 0);
    assert_int_equal(m.n_topics, 2);
    assert_int_equal(m.topics[0].n_parts, 2);
    assert_int_equal(m.topics[1].n_parts, 0);
    assert_true(m.require_stable);
    for (size_t cut = 0; cut < b.len; cut++) {
        struct kafka_ofetch_req cut_m;
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_offset_fetch(&r, &h7, &a, &cut_m), -1);
    }
    m.topics[0].parts[0].offset = 42;
    m.topics[0].parts[1].error = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
    out.len = 0;
    kafka_encode_offset_fetch(&out, &h7, KAFKA_NONE, 1, m.topics);
    T_BYTES(&out,
             "\x00\x00\x00\x00" /* throttle_time_ms (v3+) */
             "\x02" "\x02t" "\x03"
             "\x00\x00\x00\x00" "\x00\x00\x00\x00\x00\x00\x00\x2a" "\xff\xff\xff\xff" "\x01"
             "\x00\x00" "\x00"
             "\x00\x00\x00\x01" "\xff\xff\xff\xff\xff\xff\xff\xff" "\xff\xff\xff\xff" "\x01"
             "\x00\x03" "\x00"
             "\x00"             /* the topic's tagged fields */
             "\x00\x00" "\x00"); /* error_code (v2+), tagged fields */
    b.len = 0;
    kafka_put_string(&b, true, "g", 1);
    kafka_put_array(&b, true, -1);
    kafka_put_i8(&b, 0);
    kafka_put_tags(&b, true);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_offset_fetch(&r, &h7, &a, &m), 0);
    assert_int_equal(m.n_topics, -1);
    kafka_arena_free(&a);
    buf_free(&out);
    buf_free(&b);
}

/* ListGroups v0-v2 has an empty body (more is refused); the answer at v0
 * and v1. */
static void test_list_groups(void **state)
{
    struct buf b;
    struct kafka_rd r;
    struct kafka_req_header h0 = t__h(KAFKA_LIST_GROUPS, 0, false);
    struct kafka_req_header h2 = t__h(KAFKA_LIST_GROUPS, 2, false);
    (void)state;
    buf_init(&b);
    kafka_rd_init(&r, "", 0);
    assert_int_equal(kafka_decode_list_groups(&r, &h0), 0);
    kafka_rd_init(&r, "", 0);
    assert_int_equal(kafka_decode_list_groups(&r, &h2), 0);
    kafka_rd_init(&r, "\x00", 1);
    assert_int_equal(kafka_decode_list_groups(&r, &h2), -1);
    struct kafka_group_listing groups[2] = {{"g", "consumer"}, {"h", NULL}};
    kafka_encode_list_groups(&b, &h0, KAFKA_NONE, 2, groups);
    T_BYTES(&b, "\x00\x00" "\x00\x00\x00\x02" "\x00\x01g" "\x00\x08" "consumer"
                "\x00\x01h" "\x00\x00");
    b.len = 0;
    kafka_encode_list_groups(&b, &h2, KAFKA_COORDINATOR_NOT_AVAILABLE, 0, NULL);
    T_BYTES(&b, "\x00\x00\x00\x00" "\x00\x0f" "\x00\x00\x00\x00");
    buf_free(&b);
}

/* DescribeGroups v0 and v4 decode; cut short they do not; the answer at v0
 * and v4 (instance ids, authorized operations not computed). */
static void test_describe_groups(void **state)
{
    struct buf b;
    struct kafka_rd r;
    struct kafka_arena a;
    struct kafka_describe_groups_req m;
    struct kafka_req_header h0 = t__h(KAFKA_DESCRIBE_GROUPS, 0, false);
    struct kafka_req_header h4 = t__h(KAFKA_DESCRIBE_GROUPS, 4, false);
    (void)state;
    buf_init(&b);
    kafka_arena_init(&a);
    kafka_put_array(&b, false, 2);
    kafka_put_string(&b, false, "g", 1);
    kafka_put_string(&b, false, "hh", 2);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_describe_groups(&r, &h0, &a, &m), 0);
    assert_int_equal(m.n_groups, 2);
    assert_memory_equal(m.groups[1].p, "hh", 2);
    assert_false(m.include_authorized_operations);
    for (size_t cut = 0; cut < b.len; cut++) {
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_describe_groups(&r, &h0, &a, &m), -1);
    }
    kafka_put_i8(&b, 1);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_describe_groups(&r, &h4, &a, &m), 0);
    assert_true(m.include_authorized_operations);
    for (size_t cut = 0; cut < b.len; cut++) {
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_describe_groups(&r, &h4, &a, &m), -1);
    }
    b.len = 0;
    kafka_put_array(&b, false, -1); /* not nullable */
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_describe_groups(&r, &h0, &a, &m), -1);

    struct kafka_dg_member mem = {.member_id = "m1", .group_instance_id = "i1",
                                  .client_id = "c", .client_host = "/h",
                                  .metadata = (const uint8_t *)"\x01", .metadata_len = 1,
                                  .assignment = (const uint8_t *)"\x02", .assignment_len = 1};
    struct kafka_dg_group g = {.error = KAFKA_NONE, .group_id = "g", .state = "Stable",
                               .protocol_type = "consumer", .protocol_data = "range",
                               .n_members = 1, .members = &mem};
    b.len = 0;
    kafka_encode_describe_groups(&b, &h0, 1, &g);
    T_BYTES(&b,
             "\x00\x00\x00\x01" "\x00\x00" "\x00\x01g" "\x00\x06Stable" "\x00\x08" "consumer"
             "\x00\x05range" "\x00\x00\x00\x01"
             "\x00\x02m1" "\x00\x01" "c" "\x00\x02/h" "\x00\x00\x00\x01\x01"
             "\x00\x00\x00\x01\x02");
    b.len = 0;
    kafka_encode_describe_groups(&b, &h4, 1, &g);
    T_BYTES(&b,
             "\x00\x00\x00\x00" /* throttle_time_ms (v1+) */
             "\x00\x00\x00\x01" "\x00\x00" "\x00\x01g" "\x00\x06Stable" "\x00\x08" "consumer"
             "\x00\x05range" "\x00\x00\x00\x01"
             "\x00\x02m1" "\x00\x02i1" "\x00\x01" "c" "\x00\x02/h" "\x00\x00\x00\x01\x01"
             "\x00\x00\x00\x01\x02"
             "\x80\x00\x00\x00"); /* authorized_operations (v3+): INT32_MIN */
    kafka_arena_free(&a);
    buf_free(&b);
}

/* DescribeConfigs v0 (every key: null) and v3 decode; cut short they do
 * not; the answer at v0 (is_default) and v3 (source, synonyms, type,
 * documentation). */
static void test_describe_configs(void **state)
{
    struct buf b;
    struct kafka_rd r;
    struct kafka_arena a;
    struct kafka_describe_configs_req m;
    struct kafka_req_header h0 = t__h(KAFKA_DESCRIBE_CONFIGS, 0, false);
    struct kafka_req_header h3 = t__h(KAFKA_DESCRIBE_CONFIGS, 3, false);
    (void)state;
    buf_init(&b);
    kafka_arena_init(&a);
    kafka_put_array(&b, false, 2);
    kafka_put_i8(&b, KAFKA_RESOURCE_TOPIC);
    kafka_put_string(&b, false, "t", 1);
    kafka_put_array(&b, false, -1);
    kafka_put_i8(&b, KAFKA_RESOURCE_BROKER);
    kafka_put_string(&b, false, "1", 1);
    kafka_put_array(&b, false, 1);
    kafka_put_string(&b, false, "log.retention.ms", 16);
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_describe_configs(&r, &h0, &a, &m), 0);
    assert_int_equal(m.n_resources, 2);
    assert_int_equal(m.resources[0].type, KAFKA_RESOURCE_TOPIC);
    assert_int_equal(m.resources[0].n_keys, -1);
    assert_int_equal(m.resources[1].type, KAFKA_RESOURCE_BROKER);
    assert_int_equal(m.resources[1].n_keys, 1);
    assert_int_equal(m.resources[1].keys[0].len, 16);
    for (size_t cut = 0; cut < b.len; cut++) {
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_describe_configs(&r, &h0, &a, &m), -1);
    }
    kafka_put_i8(&b, 1); /* include_synonyms (v1+) */
    kafka_put_i8(&b, 1); /* include_documentation (v3+) */
    kafka_rd_init(&r, b.data, b.len);
    assert_int_equal(kafka_decode_describe_configs(&r, &h3, &a, &m), 0);
    assert_true(m.include_synonyms);
    assert_true(m.include_documentation);
    for (size_t cut = 0; cut < b.len; cut++) {
        kafka_rd_init(&r, b.data, cut);
        assert_int_equal(kafka_decode_describe_configs(&r, &h3, &a, &m), -1);
    }

    struct kafka_dc_entry e[2] = {
        {.name = "a", .value = "1", .read_only = false, .is_default = true,
         .source = KAFKA_CONFIG_SOURCE_DEFAULT},
        {.name = "b", .value = NULL, .read_only = true, .is_default = false,
         .source = KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC},
    };
    struct kafka_dc_result res = {.error = KAFKA_NONE, .message = NULL,
                                  .type = KAFKA_RESOURCE_TOPIC, .name = "t", .n_configs = 2,
                                  .configs = e};
    b.len = 0;
    kafka_encode_describe_configs(&b, &h0, 1, &res);
    T_BYTES(&b,
             "\x00\x00\x00\x00" "\x00\x00\x00\x01" "\x00\x00" "\xff\xff" "\x02" "\x00\x01t"
             "\x00\x00\x00\x02"
             "\x00\x01" "a" "\x00\x01" "1" "\x00" "\x01" "\x00"
             "\x00\x01" "b" "\xff\xff" "\x01" "\x00" "\x00");
    b.len = 0;
    kafka_encode_describe_configs(&b, &h3, 1, &res);
    T_BYTES(&b,
             "\x00\x00\x00\x00" "\x00\x00\x00\x01" "\x00\x00" "\xff\xff" "\x02" "\x00\x01t"
             "\x00\x00\x00\x02"
             "\x00\x01" "a" "\x00\x01" "1" "\x00" "\x05" "\x00" "\x00\x00\x00\x00" "\x00" "\xff\xff"
             "\x00\x01" "b" "\xff\xff" "\x01" "\x01" "\x00" "\x00\x00\x00\x00" "\x00" "\xff\xff");
    kafka_arena_free(&a);
    buf_free(&b);
}

/* @n bytes at @p decode under @h into @m; every shorter cut does not. */
static void t__alter_decodes(const char *p, size_t n, const struct kafka_req_header *h,
                             struct kafka_arena *a, struct kafka_alter_configs_req *m)
{
    struct kafka_rd r;
    for (size_t cut = 0; cut < n; cut++) {
        kafka_rd_init(&r, p, cut);
        assert_int_equal(kafka_decode_alter_configs(&r, h, a, m), -1);
    }
    kafka_rd_init(&r, p, n);
    assert_int_equal(kafka_decode_alter_configs(&r, h, a, m), 0);
}
#define T_ALTER_DECODES(literal, h, a, m) t__alter_decodes(literal, sizeof literal - 1, h, a, m)

/* @n bytes at @p do not decode under @h. */
static void t__alter_refused(const char *p, size_t n, const struct kafka_req_header *h,
                             struct kafka_arena *a)
{
    struct kafka_rd r;
    struct kafka_alter_configs_req m;
    kafka_rd_init(&r, p, n);
    assert_int_equal(kafka_decode_alter_configs(&r, h, a, &m), -1);
}
#define T_ALTER_REFUSED(literal, h, a) t__alter_refused(literal, sizeof literal - 1, h, a)

/* AlterConfigs v0 and v1 (the same layout; a null value) and
 * IncrementalAlterConfigs v0 (an op per entry) decode; cut short, with a
 * byte more, a negative count or a null name they do not; a flexible
 * header reads the compact forms and tags. The answers byte for byte. */
static void test_alter_configs(void **state)
{
    struct buf b;
    struct kafka_arena a;
    struct kafka_alter_configs_req m;
    struct kafka_req_header h0 = t__h(KAFKA_ALTER_CONFIGS, 0, false);
    struct kafka_req_header h1 = t__h(KAFKA_ALTER_CONFIGS, 1, false);
    struct kafka_req_header h2 = t__h(KAFKA_ALTER_CONFIGS, 2, true);
    struct kafka_req_header hi0 = t__h(KAFKA_INCREMENTAL_ALTER_CONFIGS, 0, false);
    (void)state;
    buf_init(&b);
    kafka_arena_init(&a);
#define T_ALTER_V0                                                               \
    "\x00\x00\x00\x02"                                   /* resources */         \
    "\x02" "\x00\x01" "t" "\x00\x00\x00\x02"             /* topic t, 2 configs */ \
    "\x00\x0c" "retention.ms" "\x00\x04" "1000"                                  \
    "\x00\x0e" "cleanup.policy" "\xff\xff"               /* value: null */       \
    "\x04" "\x00\x01" "1" "\x00\x00\x00\x00"             /* broker 1, none */    \
    "\x01"                                               /* validate_only */
    const struct kafka_req_header *hs[2] = {&h0, &h1};
    for (int v = 0; v < 2; v++) {
        T_ALTER_DECODES(T_ALTER_V0, hs[v], &a, &m);
        assert_false(m.incremental);
        assert_true(m.validate_only);
        assert_int_equal(m.n_resources, 2);
        assert_int_equal(m.resources[0].type, KAFKA_RESOURCE_TOPIC);
        assert_int_equal(m.resources[0].name.len, 1);
        assert_memory_equal(m.resources[0].name.p, "t", 1);
        assert_int_equal(m.resources[0].n_entries, 2);
        assert_int_equal(m.resources[0].entries[0].name.len, 12);
        assert_memory_equal(m.resources[0].entries[0].name.p, "retention.ms", 12);
        assert_int_equal(m.resources[0].entries[0].value.len, 4);
        assert_memory_equal(m.resources[0].entries[0].value.p, "1000", 4);
        assert_int_equal(m.resources[0].entries[0].op, KAFKA_CONFIG_OP_SET);
        assert_int_equal(m.resources[0].entries[1].name.len, 14);
        assert_int_equal(m.resources[0].entries[1].value.len, -1);
        assert_int_equal(m.resources[0].entries[1].op, KAFKA_CONFIG_OP_SET);
        assert_int_equal(m.resources[1].type, KAFKA_RESOURCE_BROKER);
        assert_memory_equal(m.resources[1].name.p, "1", 1);
        assert_int_equal(m.resources[1].n_entries, 0);
        assert_int_equal(m.resources[0].error, KAFKA_NONE);
        assert_null(m.resources[0].error_message);
    }
    T_ALTER_REFUSED(T_ALTER_V0 "\x00", &h0, &a); /* a byte more */
    T_ALTER_REFUSED("\xff\xff\xff\xff" "\x00", &h0, &a); /* resources: null */
    T_ALTER_REFUSED("\x00\x00\x00\x01" "\x02" "\xff\xff" "\x00\x00\x00\x00" "\x00", &h0, &a);
    T_ALTER_REFUSED("\x00\x00\x00\x01" "\x02" "\x00\x01" "t" "\xff\xff\xff\xff" "\x00", &h0, &a);
    T_ALTER_REFUSED("\x00\x00\x00\x01" "\x02" "\x00\x01" "t" "\x00\x00\x00\x01"
                    "\xff\xff" "\x00\x01" "v" "\x00", &h0, &a); /* config name: null */

    /* The answer: per resource error, message, type, name. */
    T_ALTER_DECODES(T_ALTER_V0, &h1, &a, &m);
    m.resources[0].error = KAFKA_INVALID_CONFIG;
    m.resources[0].error_message = "bad";
    kafka_encode_alter_configs(&b, &h1, &m);
    T_BYTES(&b, "\x00\x00\x00\x00" "\x00\x00\x00\x02"
                "\x00\x28" "\x00\x03" "bad" "\x02" "\x00\x01" "t"
                "\x00\x00" "\xff\xff" "\x04" "\x00\x01" "1");

    /* IncrementalAlterConfigs v0: config_operation between name and value. */
    T_ALTER_DECODES("\x00\x00\x00\x01" "\x02" "\x00\x01" "t" "\x00\x00\x00\x03"
                    "\x00\x0c" "retention.ms" "\x00" "\x00\x04" "1000"
                    "\x00\x0e" "cleanup.policy" "\x01" "\xff\xff"
                    "\x00\x0e" "cleanup.policy" "\x02" "\x00\x07" "compact"
                    "\x00",
                    &hi0, &a, &m);
    assert_true(m.incremental);
    assert_false(m.validate_only);
    assert_int_equal(m.n_resources, 1);
    assert_int_equal(m.resources[0].n_entries, 3);
    assert_int_equal(m.resources[0].entries[0].op, KAFKA_CONFIG_OP_SET);
    assert_memory_equal(m.resources[0].entries[0].value.p, "1000", 4);
    assert_int_equal(m.resources[0].entries[1].op, KAFKA_CONFIG_OP_DELETE);
    assert_int_equal(m.resources[0].entries[1].value.len, -1);
    assert_int_equal(m.resources[0].entries[2].op, KAFKA_CONFIG_OP_APPEND);
    assert_int_equal(m.resources[0].entries[2].value.len, 7);
    /* AlterConfigs' bytes do not parse as IncrementalAlterConfigs. */
    T_ALTER_REFUSED(T_ALTER_V0, &hi0, &a);
    b.len = 0;
    kafka_encode_alter_configs(&b, &hi0, &m);
    T_BYTES(&b, "\x00\x00\x00\x00" "\x00\x00\x00\x01" "\x00\x00" "\xff\xff" "\x02" "\x00\x01"
                "t");

    /* A flexible header (AlterConfigs v2, not advertised): compact forms
     * and tagged fields, in the request and in the answer. */
    T_ALTER_DECODES("\x02" "\x02" "\x02" "t" "\x02" "\x0d" "retention.ms" "\x00" "\x00" "\x00"
                    "\x01" "\x00",
                    &h2, &a, &m);
    assert_int_equal(m.n_resources, 1);
    assert_int_equal(m.resources[0].n_entries, 1);
    assert_int_equal(m.resources[0].entries[0].value.len, -1);
    assert_true(m.validate_only);
    b.len = 0;
    kafka_encode_alter_configs(&b, &h2, &m);
    T_BYTES(&b, "\x00\x00\x00\x00" "\x02" "\x00\x00" "\x00" "\x02" "\x02" "t" "\x00" "\x00");
#undef T_ALTER_V0
    kafka_arena_free(&a);
    buf_free(&b);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_check_value),
        cmocka_unit_test(test_wire_round_trip),
        cmocka_unit_test(test_wire_refuses_lies),
        cmocka_unit_test(test_header_versions),
        cmocka_unit_test(test_records_round_trip),
        cmocka_unit_test(test_records_null_header),
        cmocka_unit_test(test_records_refused),
        cmocka_unit_test(test_records_from_tally_limit),
        cmocka_unit_test(test_records_compressed),
        cmocka_unit_test(test_decode_produce),
        cmocka_unit_test(test_api_versions),
        cmocka_unit_test(test_header_group_apis),
        cmocka_unit_test(test_find_coordinator),
        cmocka_unit_test(test_join_group),
        cmocka_unit_test(test_sync_group),
        cmocka_unit_test(test_heartbeat),
        cmocka_unit_test(test_leave_group),
        cmocka_unit_test(test_offset_commit),
        cmocka_unit_test(test_offset_fetch),
        cmocka_unit_test(test_list_groups),
        cmocka_unit_test(test_describe_groups),
        cmocka_unit_test(test_describe_configs),
        cmocka_unit_test(test_alter_configs),
    };
    return cmocka_run_group_tests_name("kafka", tests, NULL, NULL);
}
