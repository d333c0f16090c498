/* libFuzzer target: the batch decoder (src/lib/batch.c).
 *
 * Each input is tried three ways:
 *   1. as given: batch_decode_header, batch_verify, batch_iter;
 *   2. with both checksums re-stamped over the mutated bytes (payload XXH3
 *      of [88, n), header XXH3 of [0, 80)), so that random mutations get
 *      past the checksums into the record parser;
 *   3. as 2, with batch_len also set to the input size.
 * For every batch that verifies: every record through batch_iter_next,
 * every header of every record through batch_headers_next, then
 * batch_stamp as the leader does and batch_verify again (a stamped batch
 * must still verify). Keys, values and headers are read in full (hashed),
 * so ASan sees any pointer that leaves the batch. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/batch.h"
#include "lib/byte.h"
#include "lib/codec.h"
#include "lib/err.h"

#define FUZZ_EXPORT __attribute__((visibility("default")))

/* Byte positions in the batch header (the table at the top of batch.c). */
#define FUZZ_OFF_BATCH_LEN 8
#define FUZZ_OFF_PAYLOAD_SUM 72
#define FUZZ_OFF_HEADER_SUM 80

/* A leader's clock: what gw.c passes to batch_stamp. */
#define FUZZ_NOW_MS INT64_C(1700000000000)

static void fuzz_fail(const char *what, const char *msg)
{
    fprintf(stderr, "fuzz-batch: %s: %s\n", what, msg);
    abort();
}

/* Read every byte of [p, p + n) (ASan checks them); the hash is kept in a
 * volatile so the reads are not optimised away. */
static volatile uint64_t fuzz_sink;
static void touch(const uint8_t *p, size_t n)
{
    if (p != NULL) {
        fuzz_sink ^= codec_checksum(p, n);
    }
}

static void restamp(uint8_t *b, size_t n, int set_len)
{
    if (n < BATCH_HEADER_SIZE) {
        return;
    }
    if (set_len && n <= UINT32_MAX) {
        byte_put_u32(b + FUZZ_OFF_BATCH_LEN, (uint32_t)n);
    }
    byte_put_u64(b + FUZZ_OFF_PAYLOAD_SUM,
                 codec_checksum(b + BATCH_HEADER_SIZE, n - BATCH_HEADER_SIZE));
    byte_put_u64(b + FUZZ_OFF_HEADER_SUM, codec_checksum(b, FUZZ_OFF_HEADER_SUM));
}

static void iterate(uint8_t *b, size_t n)
{
    char errmsg[ERR_MSG_SIZE];
    struct batch_header h;
    struct batch_iter it;
    struct batch_record rec;
    uint32_t got = 0;
    int rv;

    rv = batch_decode_header(b, n, &h, errmsg);
    if (rv != 0) {
        if (rv != TALLY_CORRUPT && rv != TALLY_VERSION) {
            fuzz_fail("batch_decode_header", "unexpected error code");
        }
        return;
    }
    rv = batch_verify(b, n, &h, errmsg);
    if (rv != 0) {
        if (rv != TALLY_CORRUPT) {
            fuzz_fail("batch_verify", "unexpected error code");
        }
        return;
    }
    rv = batch_iter_init(&it, b, n, errmsg);
    if (rv != 0) {
        if (rv != TALLY_CORRUPT && rv != TALLY_NOMEM) {
            fuzz_fail("batch_iter_init", "unexpected error code");
        }
        batch_iter_close(&it);
        return;
    }
    while ((rv = batch_iter_next(&it, &rec, errmsg)) == 0) {
        struct batch_headers hr;
        struct batch_kv kv;
        uint32_t nh = 0;
        if (++got > h.record_count) {
            fuzz_fail("batch_iter_next", "more records than record_count");
        }
        if (rec.offset < h.base_offset || rec.offset > batch_last_offset(&h) ||
            rec.timestamp < h.first_timestamp || rec.timestamp > h.max_timestamp) {
            fuzz_fail("batch_iter_next", "record offset or timestamp outside the header's range");
        }
        touch(rec.key, rec.key_len);
        touch(rec.value, rec.value_len);
        touch(rec.headers, rec.headers_len);
        batch_headers_init(&hr, rec.headers, rec.headers_len, rec.header_nulls);
        while (nh < rec.header_count && batch_headers_next(&hr, &kv)) {
            touch(kv.name, kv.name_len);
            touch(kv.value, kv.value_len);
            nh++;
        }
    }
    if (rv != TALLY_EOF && rv != TALLY_CORRUPT) {
        fuzz_fail("batch_iter_next", "unexpected error code");
    }
    if (rv == TALLY_EOF && got != h.record_count) {
        fuzz_fail("batch_iter_next", "EOF before record_count records");
    }
    batch_iter_close(&it);

    /* The leader stamps a verified batch; it must still verify. */
    batch_stamp(b, 42, FUZZ_NOW_MS, 7);
    rv = batch_verify(b, n, &h, errmsg);
    if (rv != 0) {
        fprintf(stderr, "fuzz-batch: after batch_stamp: %s\n", errmsg);
        fuzz_fail("batch_stamp", "a stamped batch no longer verifies");
    }
    if (h.base_offset != 42 || h.first_timestamp != FUZZ_NOW_MS || h.raft_index != 7) {
        fuzz_fail("batch_stamp", "stamped fields do not read back");
    }
}

FUZZ_EXPORT int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

FUZZ_EXPORT int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exact-size heap copies: a read past the batch is an ASan report. */
    uint8_t *b = malloc(size ? size : 1);
    if (b == NULL) {
        return 0;
    }
    for (int pass = 0; pass < 3; pass++) {
        if (size > 0) {
            memcpy(b, data, size);
        }
        if (pass > 0) {
            if (size < BATCH_HEADER_SIZE) {
                break;
            }
            restamp(b, size, pass == 2);
        }
        iterate(b, size);
    }
    free(b);
    return 0;
}
