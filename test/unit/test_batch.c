/* Unit tests of the batch format (src/lib/batch.c): builder, iterator,
 * stamping, checksums and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/batch.h"
#include "lib/byte.h"
#include "lib/codec.h"
#include "lib/err.h"
#include "lib/logger.h"

struct shape {
    const void *key; /* NULL: no key */
    size_t key_len;
    const void *value; /* NULL: tombstone */
    size_t value_len;
    size_t n_headers;
};

static const uint8_t bin_key[] = {0, 'a', 0, 0xff, 0};
static const struct batch_kv two_headers[2] = {
    {(const uint8_t *)"trace", 5, (const uint8_t *)"\x00\x01", 2},
    {(const uint8_t *)"e", 1, (const uint8_t *)"", 0},
};

/* Build a batch of the given shapes, stamp it, and return it in @out. */
static void build(const struct shape *s, size_t n, bool compress, struct buf *out)
{
    struct batch_builder b;
    batch_builder_init(&b, 11, 22);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(batch_builder_add_at(&b, (uint32_t)i, (int64_t)i * 10, s[i].key,
                                              s[i].key_len, s[i].value, s[i].value_len,
                                              s[i].n_headers ? two_headers : NULL,
                                              s[i].n_headers),
                         0);
    }
    buf_init(out);
    assert_int_equal(batch_builder_finish(&b, compress, out), 0);
    batch_stamp(out->data, 1000, 5000, 3);
    batch_builder_free(&b);
}

/* Every record shape (empty value, tombstone, no key, binary key, 1 MiB value, headers) reads back exactly, compressed or not. */
static void test_roundtrip_shapes(void **state)
{
    size_t big_len = 1u << 20;
    uint8_t *big = malloc(big_len);
    (void)state;
    for (size_t i = 0; i < big_len; i++) {
        big[i] = (uint8_t)(i % 251);
    }
    const struct shape shapes[] = {
        {"k", 1, "", 0, 0},                   /* empty value */
        {"k", 1, NULL, 0, 0},                 /* tombstone */
        {NULL, 0, "v", 1, 0},                 /* no key */
        {NULL, 0, NULL, 0, 0},                /* neither */
        {bin_key, sizeof bin_key, bin_key, sizeof bin_key, 0},
        {"big", 3, big, big_len, 0},          /* large value */
        {"h", 1, "with headers", 12, 2},
    };
    size_t n = sizeof shapes / sizeof shapes[0];
    for (int compress = 0; compress < 2; compress++) {
        struct buf out;
        struct batch_iter it;
        struct batch_record r;
        char errmsg[ERR_MSG_SIZE];
        build(shapes, n, compress, &out);
        /* A repetitive megabyte compresses; the flag says so. */
        assert_int_equal((out.data[5] & BATCH_FLAG_LZ4) != 0, compress);
        assert_int_equal(batch_iter_init(&it, out.data, out.len, errmsg), 0);
        assert_int_equal(it.h.base_offset, 1000);
        assert_int_equal(it.h.record_count, n);
        assert_int_equal(it.h.producer_id, 11);
        assert_int_equal(it.h.producer_seq, 22);
        assert_int_equal(it.h.raft_index, 3);
        assert_int_equal(it.h.first_timestamp, 5000);
        assert_int_equal(it.h.max_timestamp, 5000 + 10 * (int64_t)(n - 1));
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(batch_iter_next(&it, &r, errmsg), 0);
            assert_int_equal(r.offset, 1000 + i);
            assert_int_equal(r.timestamp, 5000 + 10 * (int64_t)i);
            if (shapes[i].key == NULL) {
                assert_null(r.key);
            } else {
                assert_int_equal(r.key_len, shapes[i].key_len);
                assert_memory_equal(r.key, shapes[i].key, r.key_len);
            }
            if (shapes[i].value == NULL) {
                assert_null(r.value);
            } else {
                assert_non_null(r.value);
                assert_int_equal(r.value_len, shapes[i].value_len);
                assert_memory_equal(r.value, shapes[i].value, r.value_len);
            }
            assert_int_equal(r.header_count, shapes[i].n_headers);
            if (shapes[i].n_headers) {
                struct batch_headers hr;
                struct batch_kv kv;
                batch_headers_init(&hr, r.headers, r.headers_len, r.header_nulls);
                for (size_t h = 0; h < 2; h++) {
                    assert_true(batch_headers_next(&hr, &kv));
                    assert_int_equal(kv.name_len, two_headers[h].name_len);
                    assert_memory_equal(kv.name, two_headers[h].name, kv.name_len);
                    assert_int_equal(kv.value_len, two_headers[h].value_len);
                    assert_memory_equal(kv.value, two_headers[h].value, kv.value_len);
                }
                assert_false(batch_headers_next(&hr, &kv));
            }
        }
        assert_int_equal(batch_iter_next(&it, &r, errmsg), TALLY_EOF);
        batch_iter_close(&it);
        buf_free(&out);
    }
    free(big);
}

/* Incompressible records are stored uncompressed even when compression is asked for. */
static void test_incompressible_stays_plain(void **state)
{
    uint8_t noise[512];
    uint64_t x = 88172645463325252ull;
    struct shape s = {"k", 1, noise, sizeof noise, 0};
    struct buf out;
    (void)state;
    for (size_t i = 0; i < sizeof noise; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise[i] = (uint8_t)x;
    }
    build(&s, 1, true, &out);
    assert_int_equal(out.data[5] & BATCH_FLAG_LZ4, 0);
    buf_free(&out);
}

/* Flipping any single bit of a batch, header or payload, is caught by its checksums. */
static void test_every_flip_detected(void **state)
{
    const struct shape shapes[] = {{"key", 3, "value", 5, 2}, {NULL, 0, NULL, 0, 0}};
    (void)state;
    for (int compress = 0; compress < 2; compress++) {
        struct buf out;
        struct batch_header h;
        char errmsg[ERR_MSG_SIZE];
        build(shapes, 2, compress, &out);
        assert_int_equal(batch_verify(out.data, out.len, &h, errmsg), 0);
        for (size_t i = 0; i < out.len; i++) {
            for (int bit = 0; bit < 8; bit++) {
                out.data[i] ^= (uint8_t)(1u << bit);
                int rv = batch_verify(out.data, out.len, &h, errmsg);
                /* The version byte under a valid checksum could only be
                 * TALLY_VERSION, but the header checksum covers it too. */
                assert_int_equal(rv, TALLY_CORRUPT);
                out.data[i] ^= (uint8_t)(1u << bit);
            }
        }
        buf_free(&out);
    }
}

/* Stamping sets offset, timestamps and raft index in O(1), keeps the payload checksum valid and the timestamp spread. */
static void test_stamp(void **state)
{
    const struct shape shapes[] = {{"a", 1, "1", 1, 0}, {"b", 1, "2", 1, 0}};
    struct buf out;
    struct batch_header h;
    char errmsg[ERR_MSG_SIZE];
    (void)state;
    build(shapes, 2, false, &out);
    uint64_t payload_sum = byte_get_u64(out.data + 72);
    batch_stamp(out.data, 77, -3000, 99);
    assert_int_equal(batch_verify(out.data, out.len, &h, errmsg), 0);
    assert_int_equal(h.base_offset, 77);
    assert_int_equal(h.first_timestamp, -3000);
    assert_int_equal(h.max_timestamp, -2990);
    assert_int_equal(h.raft_index, 99);
    assert_int_equal(h.payload_checksum, payload_sum);
    assert_int_equal(batch_last_offset(&h), 78);
    buf_free(&out);
}

/* Offset gaps (as compaction leaves them) are kept, and the last offset delta is reported. */
static void test_offset_gaps(void **state)
{
    struct batch_builder b;
    struct buf out;
    struct batch_iter it;
    struct batch_record r;
    char errmsg[ERR_MSG_SIZE];
    (void)state;
    batch_builder_init(&b, 0, 0);
    assert_int_equal(batch_builder_add_at(&b, 0, 0, "a", 1, "x", 1, NULL, 0), 0);
    assert_int_equal(batch_builder_add_at(&b, 5, 1, "b", 1, "y", 1, NULL, 0), 0);
    assert_int_equal(batch_builder_add_at(&b, 5, 1, "c", 1, "z", 1, NULL, 0), TALLY_INVAL);
    assert_int_equal(batch_builder_add_at(&b, 9, -1, "c", 1, "z", 1, NULL, 0), TALLY_INVAL);
    buf_init(&out);
    assert_int_equal(batch_builder_finish(&b, false, &out), 0);
    batch_stamp(out.data, 10, 100, 1);
    assert_int_equal(batch_iter_init(&it, out.data, out.len, errmsg), 0);
    assert_int_equal(it.h.last_offset_delta, 5);
    assert_int_equal(batch_iter_next(&it, &r, errmsg), 0);
    assert_int_equal(r.offset, 10);
    assert_int_equal(batch_iter_next(&it, &r, errmsg), 0);
    assert_int_equal(r.offset, 15);
    assert_int_equal(batch_iter_next(&it, &r, errmsg), TALLY_EOF);
    batch_iter_close(&it);
    buf_free(&out);
    batch_builder_free(&b);
}

/* Create times (the Kafka producer's): kept per record, before or after
 * the base, compressed or not; a builder does not mix records with and
 * without; a section too short for its base is corrupt. */
static void test_create_times(void **state)
{
    static const int64_t times[3] = {1600000000000, 1599999999000, INT64_MAX};
    struct batch_builder b;
    struct buf out;
    struct batch_iter it;
    struct batch_record r;
    char errmsg[ERR_MSG_SIZE];
    (void)state;
    for (int compress = 0; compress < 2; compress++) {
        batch_builder_init(&b, 0, 0);
        for (uint32_t i = 0; i < 3; i++) {
            assert_int_equal(batch_builder_add_created(&b, i, 0, times[i], "k", 1, "vvvvvvvv",
                                                       8, two_headers, 2),
                             0);
        }
        assert_int_equal(batch_builder_add_at(&b, 3, 0, "k", 1, "v", 1, NULL, 0), TALLY_INVAL);
        buf_init(&out);
        assert_int_equal(batch_builder_finish(&b, compress, &out), 0);
        batch_stamp(out.data, 10, 777, 1);
        assert_int_equal(batch_iter_init(&it, out.data, out.len, errmsg), 0);
        assert_true(it.h.flags & BATCH_FLAG_CREATE_TIME);
        for (uint32_t i = 0; i < 3; i++) {
            assert_int_equal(batch_iter_next(&it, &r, errmsg), 0);
            assert_true(r.has_create_time);
            assert_int_equal(r.create_time, times[i]);
            assert_int_equal(r.timestamp, 777);
            assert_int_equal(r.header_count, 2);
            assert_int_equal(r.value_len, 8);
        }
        assert_int_equal(batch_iter_next(&it, &r, errmsg), TALLY_EOF);
        batch_iter_close(&it);
        buf_free(&out);
        batch_builder_free(&b);
    }
    /* The other way round: no create time first, then one. */
    batch_builder_init(&b, 0, 0);
    assert_int_equal(batch_builder_add(&b, "k", 1, "v", 1), 0);
    assert_int_equal(batch_builder_add_created(&b, 1, 0, 5, "k", 1, "v", 1, NULL, 0),
                     TALLY_INVAL);
    /* A plain batch claiming create times: its first record's length byte
     * is read as the base, and the records no longer parse. */
    buf_init(&out);
    assert_int_equal(batch_builder_finish(&b, false, &out), 0);
    out.data[5] |= BATCH_FLAG_CREATE_TIME;
    byte_put_u64(out.data + 80, codec_checksum(out.data, 80));
    assert_int_equal(batch_iter_init(&it, out.data, out.len, errmsg), 0);
    assert_int_equal(batch_iter_next(&it, &r, errmsg), TALLY_CORRUPT);
    batch_iter_close(&it);
    buf_free(&out);
    batch_builder_free(&b);
}

/* Read every header of @r and compare with @want (@n of them): names and
 * values byte for byte, a null value (value NULL) apart from an empty one. */
static void expect_headers(const struct batch_record *r, const struct batch_kv *want, size_t n)
{
    struct batch_headers hr;
    struct batch_kv kv;
    assert_int_equal(r->header_count, n);
    batch_headers_init(&hr, r->headers, r->headers_len, r->header_nulls);
    for (size_t i = 0; i < n; i++) {
        assert_true(batch_headers_next(&hr, &kv));
        assert_int_equal(kv.name_len, want[i].name_len);
        assert_memory_equal(kv.name, want[i].name, kv.name_len);
        if (want[i].value == NULL) {
            assert_null(kv.value);
            assert_int_equal(kv.value_len, 0);
        } else {
            assert_non_null(kv.value);
            assert_int_equal(kv.value_len, want[i].value_len);
            assert_memory_equal(kv.value, want[i].value, kv.value_len);
        }
    }
    assert_false(batch_headers_next(&hr, &kv));
    assert_false(hr.rd.bad);
}

/* A null header value reads back as null (value NULL), distinct from an
 * empty one, with and without create times and compression, including
 * the records added before the first null one (which the builder
 * re-encodes: a 100-byte value's length grows from one byte to two). A
 * batch without a null header value keeps the old encoding, no flag. */
static void test_null_header_values(void **state)
{
    static uint8_t long_value[100];
    const struct batch_kv plain[2] = {
        {(const uint8_t *)"long", 4, long_value, sizeof long_value},
        {(const uint8_t *)"e", 1, (const uint8_t *)"", 0},
    };
    const struct batch_kv with_null[3] = {
        {(const uint8_t *)"n", 1, NULL, 0},
        {(const uint8_t *)"e", 1, (const uint8_t *)"", 0},
        {(const uint8_t *)"v", 1, (const uint8_t *)"\x00z", 2},
    };
    const struct { const struct batch_kv *h; size_t n; } recs[4] = {
        {plain, 2}, {with_null, 3}, {NULL, 0}, {plain, 2},
    };
    struct batch_builder b;
    struct buf out;
    struct batch_iter it;
    struct batch_record r;
    char errmsg[ERR_MSG_SIZE];
    (void)state;
    memset(long_value, 'x', sizeof long_value);
    for (int variant = 0; variant < 4; variant++) {
        bool compress = variant & 1, created = variant & 2;
        batch_builder_init(&b, 0, 0);
        for (uint32_t i = 0; i < 4; i++) {
            int rv = created ? batch_builder_add_created(&b, i * 2, i, 1000 + i, "k", 1, "v", 1,
                                                         recs[i].h, recs[i].n)
                             : batch_builder_add_at(&b, i * 2, i, "k", 1, "v", 1, recs[i].h,
                                                    recs[i].n);
            assert_int_equal(rv, 0);
            /* The flag comes with the first null value, not before. */
            assert_int_equal(b.null_headers, i >= 1);
        }
        buf_init(&out);
        assert_int_equal(batch_builder_finish(&b, compress, &out), 0);
        batch_stamp(out.data, 50, 9000, 2);
        assert_int_equal(batch_iter_init(&it, out.data, out.len, errmsg), 0);
        assert_true(it.h.flags & BATCH_FLAG_NULL_HEADERS);
        assert_int_equal(it.h.records_len, b.records.len);
        for (uint32_t i = 0; i < 4; i++) {
            assert_int_equal(batch_iter_next(&it, &r, errmsg), 0);
            assert_int_equal(r.offset, 50 + i * 2);
            assert_int_equal(r.timestamp, 9000 + i);
            assert_int_equal(r.has_create_time, created);
            if (created) {
                assert_int_equal(r.create_time, 1000 + i);
            }
            assert_true(r.header_nulls);
            assert_int_equal(r.key_len, 1);
            assert_memory_equal(r.value, "v", 1);
            expect_headers(&r, recs[i].h, recs[i].n);
        }
        assert_int_equal(batch_iter_next(&it, &r, errmsg), TALLY_EOF);
        batch_iter_close(&it);
        buf_free(&out);
        /* reset starts the next batch in the old encoding again */
        batch_builder_reset(&b);
        assert_false(b.null_headers);
        assert_int_equal(batch_builder_add_at(&b, 0, 0, "k", 1, "v", 1, plain, 2), 0);
        buf_init(&out);
        assert_int_equal(batch_builder_finish(&b, compress, &out), 0);
        assert_int_equal(out.data[5] & BATCH_FLAG_NULL_HEADERS, 0);
        if (!compress) {
            /* Old encoding: the 100-byte value's length is the single byte
             * 100 (as an svarint it would be two). */
            static const uint8_t want[] = {'l', 'o', 'n', 'g', 100, 'x'};
            bool found = false;
            for (size_t at = 0; at + sizeof want <= out.len && !found; at++) {
                found = memcmp(out.data + at, want, sizeof want) == 0;
            }
            assert_true(found);
        }
        assert_int_equal(batch_iter_init(&it, out.data, out.len, errmsg), 0);
        assert_int_equal(batch_iter_next(&it, &r, errmsg), 0);
        assert_false(r.header_nulls);
        expect_headers(&r, plain, 2);
        batch_iter_close(&it);
        buf_free(&out);
        batch_builder_free(&b);
    }
}

/* A header value length below -1 in a batch with the flag is malformed:
 * the header reader stops with its reader marked bad. */
static void test_null_header_malformed(void **state)
{
    /* name "a", then svarint -2 (zigzag 3) */
    static const uint8_t bad[] = {1, 'a', 3};
    /* name "a", null; name "b", 1 byte "c" (svarint 1 = zigzag 2) */
    static const uint8_t good[] = {1, 'a', 1, 1, 'b', 2, 'c'};
    struct batch_headers hr;
    struct batch_kv kv;
    (void)state;
    batch_headers_init(&hr, bad, sizeof bad, true);
    assert_false(batch_headers_next(&hr, &kv));
    assert_true(hr.rd.bad);
    batch_headers_init(&hr, good, sizeof good, true);
    assert_true(batch_headers_next(&hr, &kv));
    assert_null(kv.value);
    assert_true(batch_headers_next(&hr, &kv));
    assert_int_equal(kv.value_len, 1);
    assert_memory_equal(kv.value, "c", 1);
    assert_false(batch_headers_next(&hr, &kv));
    assert_false(hr.rd.bad);
    /* The same bytes without the flag are uvarints: "a" has a 1-byte value. */
    batch_headers_init(&hr, good, sizeof good, false);
    assert_true(batch_headers_next(&hr, &kv));
    assert_int_equal(kv.value_len, 1);
    assert_memory_equal(kv.value, "\x01", 1);
}

/* byte_uvarint_len and byte_svarint_len, which the builder sizes records
 * by, say what buf_put_uvarint and buf_put_svarint write. */
static void test_varint_lengths(void **state)
{
    static const int64_t v[] = {0, 1, -1, 63, -64, 64, 127, 128, 16383, 16384, -8193,
                                INT64_MAX, INT64_MIN, 1600000000000};
    (void)state;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        struct buf u, z;
        buf_init(&u);
        buf_init(&z);
        buf_put_uvarint(&u, (uint64_t)v[i]);
        buf_put_svarint(&z, v[i]);
        assert_int_equal(byte_uvarint_len((uint64_t)v[i]), u.len);
        assert_int_equal(byte_svarint_len(v[i]), z.len);
        buf_free(&u);
        buf_free(&z);
    }
}

/* The builder refuses an empty batch and one over BATCH_MAX_SIZE, and can be reused after reset. */
static void test_builder_limits(void **state)
{
    struct batch_builder b;
    struct buf out;
    size_t len = BATCH_MAX_SIZE;
    uint8_t *big = calloc(1, len);
    (void)state;
    batch_builder_init(&b, 0, 0);
    buf_init(&out);
    assert_int_equal(batch_builder_finish(&b, false, &out), TALLY_INVAL);
    assert_int_equal(batch_builder_add(&b, NULL, 0, big, len), 0);
    assert_int_equal(batch_builder_finish(&b, false, &out), TALLY_TOOLARGE);
    assert_int_equal(out.len, 0);
    batch_builder_reset(&b);
    assert_int_equal(batch_builder_add(&b, "k", 1, "v", 1), 0);
    assert_int_equal(batch_builder_finish(&b, false, &out), 0);
    assert_int_equal(out.len, batch_builder_size(&b));
    batch_builder_free(&b);
    buf_free(&out);
    free(big);
}

/* Malformed input gets TALLY_CORRUPT, an unknown version under a valid checksum TALLY_VERSION, never a crash. */
static void test_malformed(void **state)
{
    const struct shape shapes[] = {{"k", 1, "v", 1, 0}};
    struct buf out;
    struct batch_header h;
    struct batch_iter it;
    char errmsg[ERR_MSG_SIZE];
    (void)state;
    build(shapes, 1, false, &out);
    /* Short input, wrong length. */
    assert_int_equal(batch_decode_header(out.data, 10, &h, errmsg), TALLY_CORRUPT);
    assert_int_equal(batch_verify(out.data, out.len - 1, &h, errmsg), TALLY_CORRUPT);
    assert_int_equal(batch_iter_init(&it, out.data, out.len - 1, errmsg), TALLY_CORRUPT);
    /* Unknown version with a valid header checksum. */
    out.data[4] = 2;
    byte_put_u64(out.data + 80, codec_checksum(out.data, 80));
    assert_int_equal(batch_decode_header(out.data, out.len, &h, errmsg), TALLY_VERSION);
    assert_non_null(strstr(errmsg, "version 2"));
    out.data[4] = BATCH_VERSION;
    /* Unknown flags, zero records, bad lengths, even with valid checksums. */
    out.data[5] = 0x80;
    byte_put_u64(out.data + 80, codec_checksum(out.data, 80));
    assert_int_equal(batch_decode_header(out.data, out.len, &h, errmsg), TALLY_CORRUPT);
    out.data[5] = 0;
    byte_put_u32(out.data + 12, 0);
    byte_put_u64(out.data + 80, codec_checksum(out.data, 80));
    assert_int_equal(batch_decode_header(out.data, out.len, &h, errmsg), TALLY_CORRUPT);
    byte_put_u32(out.data + 12, 1);
    byte_put_u32(out.data + 8, 10);
    byte_put_u64(out.data + 80, codec_checksum(out.data, 80));
    assert_int_equal(batch_decode_header(out.data, out.len, &h, errmsg), TALLY_CORRUPT);
    byte_put_u32(out.data + 8, (uint32_t)out.len);
    byte_put_u64(out.data + 80, codec_checksum(out.data, 80));
    assert_int_equal(batch_verify(out.data, out.len, &h, errmsg), 0);
    /* A record section that lies about its records, under valid checksums:
     * record count says 2, the section holds 1. */
    byte_put_u32(out.data + 12, 2);
    byte_put_u32(out.data + 68, 1);
    byte_put_u64(out.data + 80, codec_checksum(out.data, 80));
    assert_int_equal(batch_iter_init(&it, out.data, out.len, errmsg), 0);
    struct batch_record r;
    assert_int_equal(batch_iter_next(&it, &r, errmsg), 0);
    assert_int_equal(batch_iter_next(&it, &r, errmsg), TALLY_CORRUPT);
    batch_iter_close(&it);
    buf_free(&out);
}

/* A batch assembled by hand: @records is the records section (stored
 * uncompressed), header fields as given, both checksums valid. */
static void raw_batch(struct buf *out, const uint8_t *records, size_t len, uint64_t base,
                      int64_t first_ts, int64_t max_ts, uint32_t count, uint32_t last_delta)
{
    uint8_t *h;
    buf_init(out);
    h = buf_reserve(out, BATCH_HEADER_SIZE + len);
    assert_non_null(h);
    memset(h, 0, BATCH_HEADER_SIZE);
    memcpy(h, BATCH_MAGIC, 4);
    h[4] = BATCH_VERSION;
    byte_put_u32(h + 8, (uint32_t)(BATCH_HEADER_SIZE + len));
    byte_put_u32(h + 12, count);
    byte_put_u64(h + 16, base);
    byte_put_u64(h + 24, (uint64_t)first_ts);
    byte_put_u64(h + 32, (uint64_t)max_ts);
    byte_put_u32(h + 64, (uint32_t)len);
    byte_put_u32(h + 68, last_delta);
    memcpy(h + BATCH_HEADER_SIZE, records, len);
    byte_put_u64(h + 72, codec_checksum(h + BATCH_HEADER_SIZE, len));
    byte_put_u64(h + 80, codec_checksum(h, 80));
    buf_commit(out, BATCH_HEADER_SIZE + len);
}

/* Found by fuzz-batch: a timestamp span near 2^63 overflowed in batch_stamp
 * (signed overflow; the leader then proposed a batch with max < first that
 * every node refused to apply). Such a span is now refused by the header
 * check; the largest accepted span (2^62 ms) stamps and verifies. */
static void test_stamp_span_overflow(void **state)
{
    static const uint8_t rec[] = {5, 0, 0, 1, 1, 0}; /* key and value absent */
    struct buf out;
    struct batch_header h;
    char errmsg[ERR_MSG_SIZE];
    (void)state;
    raw_batch(&out, rec, sizeof rec, 0, INT64_MIN, INT64_MAX, 1, 0);
    assert_int_equal(batch_verify(out.data, out.len, &h, errmsg), TALLY_CORRUPT);
    assert_non_null(strstr(errmsg, "timestamp span"));
    buf_free(&out);
    raw_batch(&out, rec, sizeof rec, 0, 0, INT64_MAX - 1000, 1, 0);
    assert_int_equal(batch_verify(out.data, out.len, &h, errmsg), TALLY_CORRUPT);
    buf_free(&out);
    raw_batch(&out, rec, sizeof rec, 0, -5, (INT64_C(1) << 62) - 5, 1, 0);
    assert_int_equal(batch_verify(out.data, out.len, &h, errmsg), 0);
    batch_stamp(out.data, 0, INT64_C(1700000000000), 1);
    assert_int_equal(batch_verify(out.data, out.len, &h, errmsg), 0);
    assert_true(h.max_timestamp == INT64_C(1700000000000) + (INT64_C(1) << 62));
    buf_free(&out);
}

/* Spotted while writing fuzz-batch (its record range check), fixed with
 * the two bugs it found: a record timestamp delta of 2^63 or more wrapped to
 * a timestamp before first_timestamp and was accepted (or overflowed, near
 * INT64_MAX). Every delta beyond max - first is now malformed. */
static void test_record_timestamp_delta_wrap(void **state)
{
    /* len 14: offset delta 0, ts delta 2^64 - 1 (10 bytes), no key, no
     * value, no headers. */
    static const uint8_t wrap[] = {14, 0, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0x01, 1, 1, 0};
    static const uint8_t over[] = {5, 0, 2, 1, 1, 0}; /* ts delta 2 */
    struct buf out;
    struct batch_iter it;
    struct batch_record r;
    char errmsg[ERR_MSG_SIZE];
    (void)state;
    raw_batch(&out, wrap, sizeof wrap, 0, 1000, 1000, 1, 0);
    assert_int_equal(batch_iter_init(&it, out.data, out.len, errmsg), 0);
    assert_int_equal(batch_iter_next(&it, &r, errmsg), TALLY_CORRUPT);
    batch_iter_close(&it);
    buf_free(&out);
    raw_batch(&out, over, sizeof over, 0, INT64_MAX - 1, INT64_MAX, 1, 0);
    assert_int_equal(batch_iter_init(&it, out.data, out.len, errmsg), 0);
    assert_int_equal(batch_iter_next(&it, &r, errmsg), TALLY_CORRUPT);
    batch_iter_close(&it);
    buf_free(&out);
    /* The largest delta allowed is fine. */
    raw_batch(&out, over, sizeof over, 0, INT64_MAX - 2, INT64_MAX, 1, 0);
    assert_int_equal(batch_iter_init(&it, out.data, out.len, errmsg), 0);
    assert_int_equal(batch_iter_next(&it, &r, errmsg), 0);
    assert_true(r.timestamp == INT64_MAX);
    assert_int_equal(batch_iter_next(&it, &r, errmsg), TALLY_EOF);
    batch_iter_close(&it);
    buf_free(&out);
}

/* Found by fuzz-batch: base_offset + last_offset_delta could wrap past
 * 2^64 - 1, giving records offsets below the base offset. Refused now; the
 * highest batch whose next offset still fits is accepted. */
static void test_offset_overflow(void **state)
{
    static const uint8_t recs[] = {5, 0, 0, 1, 1, 0, 5, 1, 0, 1, 1, 0};
    struct buf out;
    struct batch_header h;
    char errmsg[ERR_MSG_SIZE];
    (void)state;
    raw_batch(&out, recs, sizeof recs, UINT64_MAX - 1, 0, 0, 2, 1);
    assert_int_equal(batch_verify(out.data, out.len, &h, errmsg), TALLY_CORRUPT);
    assert_non_null(strstr(errmsg, "offsets overflow"));
    buf_free(&out);
    raw_batch(&out, recs, sizeof recs, UINT64_C(0xffffffffffff0064), 0, 0, 2, 0xffff0000u);
    assert_int_equal(batch_verify(out.data, out.len, &h, errmsg), TALLY_CORRUPT);
    buf_free(&out);
    raw_batch(&out, recs, sizeof recs, UINT64_MAX - 2, 0, 0, 2, 1);
    assert_int_equal(batch_verify(out.data, out.len, &h, errmsg), 0);
    assert_true(batch_last_offset(&h) == UINT64_MAX - 1);
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_shapes),
        cmocka_unit_test(test_incompressible_stays_plain),
        cmocka_unit_test(test_every_flip_detected),
        cmocka_unit_test(test_stamp),
        cmocka_unit_test(test_offset_gaps),
        cmocka_unit_test(test_builder_limits),
        cmocka_unit_test(test_create_times),
        cmocka_unit_test(test_null_header_values),
        cmocka_unit_test(test_null_header_malformed),
        cmocka_unit_test(test_varint_lengths),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_stamp_span_overflow),
        cmocka_unit_test(test_record_timestamp_delta_wrap),
        cmocka_unit_test(test_offset_overflow),
    };
    if (getenv("TALLY_LOG_LEVEL") == NULL) {
        logger_set_level(LOGGER_OFF);
    }
    return cmocka_run_group_tests_name("batch", tests, NULL, NULL);
}
