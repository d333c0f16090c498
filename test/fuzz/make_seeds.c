/* Writes the seed corpora of the fuzz targets: a handful of valid inputs
 * built with tally's own encoders.
 *
 *   test/fuzz/make-seeds DIR    (run-fuzzers.sh: DIR = test/fuzz/corpus)
 *
 * writes DIR/fuzz-proto/, DIR/fuzz-batch/ and DIR/fuzz-log-recovery/.
 * The committed corpus was made with it; rerun it after a format change.
 * File names are stable (seed-<what>), so rerunning overwrites in place. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/batch.h"
#include "lib/byte.h"
#include "lib/codec.h"
#include "proto/proto.h"

static const char *out_dir;

static void die(const char *what)
{
    fprintf(stderr, "make-seeds: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void put_file(const char *target, const char *name, const void *p, size_t n)
{
    char path[1024];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", out_dir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        die(path);
    }
    snprintf(path, sizeof path, "%s/%s/seed-%s", out_dir, target, name);
    f = fopen(path, "wb");
    if (f == NULL || (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        die(path);
    }
}

/* Batches of a few shapes, unstamped. */
enum shape { SHAPE_SIMPLE, SHAPE_HEADERS, SHAPE_COMPRESSED, SHAPE_GAPS, SHAPE_NULL_HEADERS };

static void make_batch(struct buf *out, enum shape shape)
{
    static const struct batch_kv hdrs[2] = {
        {(const uint8_t *)"trace", 5, (const uint8_t *)"\x00\x01", 2},
        {(const uint8_t *)"e", 1, (const uint8_t *)"", 0},
    };
    char value[200];
    struct batch_builder b;
    int rv = 0;
    batch_builder_init(&b, shape == SHAPE_HEADERS ? 9 : 0, shape == SHAPE_HEADERS ? 3 : 0);
    switch (shape) {
    case SHAPE_SIMPLE:
        rv |= batch_builder_add(&b, "k1", 2, "v1", 2);
        rv |= batch_builder_add(&b, NULL, 0, "no key", 6);
        rv |= batch_builder_add(&b, "k1", 2, NULL, 0); /* tombstone */
        break;
    case SHAPE_HEADERS:
        rv |= batch_builder_add_at(&b, 0, 0, "key", 3, "", 0, hdrs, 2);
        rv |= batch_builder_add_at(&b, 1, 5, "\0b\xff", 3, "x", 1, hdrs + 1, 1);
        break;
    case SHAPE_COMPRESSED:
        memset(value, 'a', sizeof value);
        for (int i = 0; i < 4; i++) {
            rv |= batch_builder_add(&b, "same-key", 8, value, sizeof value);
        }
        break;
    case SHAPE_NULL_HEADERS: { /* as a Kafka producer writes: create times, a null value */
        static const struct batch_kv nulls[2] = {
            {(const uint8_t *)"n", 1, NULL, 0},
            {(const uint8_t *)"e", 1, (const uint8_t *)"", 0},
        };
        rv |= batch_builder_add_created(&b, 0, 0, 1600000000000, "k", 1, "v", 1, hdrs, 2);
        rv |= batch_builder_add_created(&b, 1, 3, 1599999999000, NULL, 0, "w", 1, nulls, 2);
        break;
    }
    case SHAPE_GAPS: /* compaction leaves offset gaps */
        rv |= batch_builder_add_at(&b, 0, 0, "a", 1, "1", 1, NULL, 0);
        rv |= batch_builder_add_at(&b, 3, 2, "b", 1, "2", 1, NULL, 0);
        rv |= batch_builder_add_at(&b, 7, 9, "c", 1, NULL, 0, NULL, 0);
        break;
    }
    if (rv != 0 || batch_builder_finish(&b, shape == SHAPE_COMPRESSED, out) != 0) {
        fprintf(stderr, "make-seeds: cannot build a batch\n");
        exit(1);
    }
    batch_builder_free(&b);
}

/* Build one batch at the end of @out and stamp it. Returns its last offset + 1. */
static uint64_t add_batch(struct buf *out, enum shape shape, uint64_t base, uint64_t raft_index)
{
    size_t at = out->len;
    struct batch_header h;
    make_batch(out, shape);
    batch_stamp(out->data + at, base, INT64_C(1700000000000) + (int64_t)base, raft_index);
    if (batch_decode_header(out->data + at, out->len - at, &h, NULL) != 0) {
        fprintf(stderr, "make-seeds: built batch does not decode\n");
        exit(1);
    }
    return batch_last_offset(&h) + 1;
}

static void batch_seeds(void)
{
    static const struct { enum shape shape; const char *name; } shapes[] = {
        {SHAPE_SIMPLE, "simple"},
        {SHAPE_HEADERS, "headers"},
        {SHAPE_COMPRESSED, "lz4"},
        {SHAPE_GAPS, "gaps"},
        {SHAPE_NULL_HEADERS, "null-headers"},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        struct buf b;
        buf_init(&b);
        add_batch(&b, shapes[i].shape, 100, 5);
        put_file("fuzz-batch", shapes[i].name, b.data, b.len);
        buf_free(&b);
    }
}

/* Frames: append one message as a frame of @type to @b. */
#define FRAME(b, type, flags, name, msg)                                       \
    do {                                                                       \
        size_t start_ = proto_begin_frame((b), (type), (flags), 77);           \
        proto_put_##name((b), (msg));                                          \
        proto_end_frame((b), start_);                                          \
    } while (0)

static void put_frame_seed(const char *name, struct buf *b)
{
    if (!buf_ok(b)) {
        fprintf(stderr, "make-seeds: out of memory\n");
        exit(1);
    }
    put_file("fuzz-proto", name, b->data, b->len);
    buf_free(b);
    buf_init(b);
}

static void proto_seeds(void)
{
    const uint8_t R = PROTO_FLAG_RESPONSE;
    struct buf b, batch;
    buf_init(&b);
    buf_init(&batch);
    add_batch(&batch, SHAPE_SIMPLE, 0, 1);
    add_batch(&batch, SHAPE_HEADERS, 3, 2);

    {
        struct proto_hello_req m = {1, 1, "seed-client"};
        struct proto_hello_resp r = {1, 2, "0.1.0"};
        FRAME(&b, PROTO_HELLO, 0, hello_req, &m);
        put_frame_seed("hello-req", &b);
        FRAME(&b, PROTO_HELLO, R, hello_resp, &r);
        put_frame_seed("hello-resp", &b);
    }
    {
        struct proto_metadata_req m = {0};
        struct proto_metadata_resp r = {1, 2, 1, 3, 40, 40, 41, 2};
        struct proto_member a = {1, "127.0.0.1:7001", "127.0.0.1:8001", 1};
        struct proto_member c = {2, "127.0.0.1:7002", "127.0.0.1:8002", 0};
        size_t start;
        FRAME(&b, PROTO_METADATA, 0, metadata_req, &m);
        put_frame_seed("metadata-req", &b);
        start = proto_begin_frame(&b, PROTO_METADATA, R, 77);
        proto_put_metadata_resp(&b, &r);
        proto_put_member(&b, &a);
        proto_put_member(&b, &c);
        proto_end_frame(&b, start);
        put_frame_seed("metadata-resp", &b);
    }
    {
        struct proto_topic_create_req m = {"orders", 2, 86400000, -1, 1 << 26};
        struct proto_topic_delete_req d = {"orders"};
        struct proto_done_resp r = {12};
        FRAME(&b, PROTO_TOPIC_CREATE, 0, topic_create_req, &m);
        put_frame_seed("topic-create-req", &b);
        FRAME(&b, PROTO_TOPIC_DELETE, 0, topic_delete_req, &d);
        put_frame_seed("topic-delete-req", &b);
        FRAME(&b, PROTO_TOPIC_CREATE, R, done_resp, &r);
        put_frame_seed("done-resp", &b);
    }
    {
        struct proto_topic_list_req m = {0};
        struct proto_topic_list_resp r = {2};
        struct proto_topic t1 = {"orders", 0, -1, -1, 1 << 26, 0, 10};
        struct proto_topic t2 = {"users", 1, 1000, 4096, 1 << 20, 5, 9};
        size_t start;
        FRAME(&b, PROTO_TOPIC_LIST, 0, topic_list_req, &m);
        put_frame_seed("topic-list-req", &b);
        start = proto_begin_frame(&b, PROTO_TOPIC_LIST, R, 77);
        proto_put_topic_list_resp(&b, &r);
        proto_put_topic(&b, &t1);
        proto_put_topic(&b, &t2);
        proto_end_frame(&b, start);
        put_frame_seed("topic-list-resp", &b);
    }
    {
        struct proto_produce_req m = {.topic = "orders", .timeout_ms = 5000, .batch = batch.data};
        struct proto_produce_resp r = {3, 2, 44};
        struct batch_header h;
        (void)batch_decode_header(batch.data, batch.len, &h, NULL);
        m.batch_len = h.batch_len; /* just the first batch */
#ifdef PROTO_NO_EXPECT
        m.expect_offset = PROTO_NO_EXPECT;
#endif
        FRAME(&b, PROTO_PRODUCE, 0, produce_req, &m);
        put_frame_seed("produce-req", &b);
#ifdef PROTO_SCHEMA_CONDITION
        {
            /* Conditional produce: expected next offset and two keys. */
            struct proto_condition c1 = {(const uint8_t *)"k1", 2, 0};
            struct proto_condition c2 = {(const uint8_t *)"k2", 2, 3};
            size_t start = proto_begin_frame(&b, PROTO_PRODUCE, 0, 77);
            m.expect_offset = 5;
            m.n_conditions = 2;
            proto_put_produce_req(&b, &m);
            proto_put_condition(&b, &c1);
            proto_put_condition(&b, &c2);
            proto_end_frame(&b, start);
            put_frame_seed("produce-req-conditions", &b);
        }
#endif
        FRAME(&b, PROTO_PRODUCE, R, produce_resp, &r);
        put_frame_seed("produce-resp", &b);
    }
    {
        struct proto_fetch_req m = {"orders", 0, 1 << 20, 500, 40};
        struct proto_fetch_resp r = {40, 0, 5, batch.data, (uint32_t)batch.len};
        FRAME(&b, PROTO_FETCH, 0, fetch_req, &m);
        put_frame_seed("fetch-req", &b);
        FRAME(&b, PROTO_FETCH, R, fetch_resp, &r);
        put_frame_seed("fetch-resp", &b);
    }
    {
        struct proto_member_add_req a = {4, "127.0.0.1:7004", "127.0.0.1:8004"};
        struct proto_member_remove_req rm = {4};
        struct proto_member_transfer_req t = {2};
        FRAME(&b, PROTO_MEMBER_ADD, 0, member_add_req, &a);
        put_frame_seed("member-add-req", &b);
        FRAME(&b, PROTO_MEMBER_REMOVE, 0, member_remove_req, &rm);
        put_frame_seed("member-remove-req", &b);
        FRAME(&b, PROTO_MEMBER_TRANSFER, 0, member_transfer_req, &t);
        put_frame_seed("member-transfer-req", &b);
        struct proto_member_promote_req pr = {4};
        FRAME(&b, PROTO_MEMBER_PROMOTE, 0, member_promote_req, &pr);
        put_frame_seed("member-promote-req", &b);
    }
#ifdef PROTO_SCHEMA_OFFSET_FOR_TIME_REQ
    {
        struct proto_offset_for_time_req m = {.topic = "orders", .timestamp_ms = 1700000000000};
        struct proto_offset_resp r = {.offset = 17, .found = 1};
        FRAME(&b, PROTO_OFFSET_FOR_TIME, 0, offset_for_time_req, &m);
        put_frame_seed("offset-for-time-req", &b);
        FRAME(&b, PROTO_OFFSET_FOR_TIME, R, offset_resp, &r);
        put_frame_seed("offset-resp", &b);
    }
#endif
#ifdef PROTO_SCHEMA_GROUP_COMMIT_REQ
    {
        struct proto_group_commit_req m = {.group = "billing", .topic = "orders", .offset = 9};
        FRAME(&b, PROTO_GROUP_COMMIT, 0, group_commit_req, &m);
        put_frame_seed("group-commit-req", &b);
    }
#endif
#ifdef PROTO_SCHEMA_GROUP_FETCH_REQ
    {
        struct proto_group_fetch_req m = {.group = "billing", .topic = "orders"};
        FRAME(&b, PROTO_GROUP_FETCH, 0, group_fetch_req, &m);
        put_frame_seed("group-fetch-req", &b);
    }
#endif
#ifdef PROTO_SCHEMA_BACKUP_CUT_RESP
    {
        struct proto_backup_cut_req m = {0};
        struct proto_backup_cut_resp r = {PROTO_BACKUP_CUT_VERSION, 2, 789, 3, 1};
        struct proto_topic t = {"orders", 0, -1, -1, 0, 0, 10};
        struct proto_backup_groups gs = {1};
        struct proto_backup_group g = {"billing", "orders", 4};
        size_t start;
        FRAME(&b, PROTO_BACKUP_CUT, 0, backup_cut_req, &m);
        put_frame_seed("backup-cut-req", &b);
        start = proto_begin_frame(&b, PROTO_BACKUP_CUT, R, 77);
        proto_put_backup_cut_resp(&b, &r);
        proto_put_topic(&b, &t);
        proto_put_backup_groups(&b, &gs);
        proto_put_backup_group(&b, &g);
        proto_end_frame(&b, start);
        put_frame_seed("backup-cut-resp", &b);
    }
#endif
#ifdef PROTO_SCHEMA_GROUP_LIST_RESP
    {
        struct proto_group_list_req m = {"billing", ""};
        struct proto_group_list_resp r = {1};
        struct proto_group_position p = {"billing", "orders", 3, 4, 0, 10};
        struct proto_group_delete_req d = {"billing", "orders"};
        struct proto_group_set_req st = {"billing", "orders", 3, 7};
        size_t start;
        FRAME(&b, PROTO_GROUP_LIST, 0, group_list_req, &m);
        put_frame_seed("group-list-req", &b);
        start = proto_begin_frame(&b, PROTO_GROUP_LIST, R, 77);
        proto_put_group_list_resp(&b, &r);
        proto_put_group_position(&b, &p);
        proto_end_frame(&b, start);
        put_frame_seed("group-list-resp", &b);
        FRAME(&b, PROTO_GROUP_DELETE, 0, group_delete_req, &d);
        put_frame_seed("group-delete-req", &b);
        FRAME(&b, PROTO_GROUP_SET, 0, group_set_req, &st);
        put_frame_seed("group-set-req", &b);
    }
#endif
    proto_put_error_frame(&b, PROTO_PRODUCE, 77, 9, "not the leader", 2, "127.0.0.1:7002");
    put_frame_seed("error", &b);
    {
        /* Pipelined: three frames on one connection. */
        struct proto_hello_req h = {1, 1, "pipe"};
        struct proto_topic_delete_req d = {"t"};
        struct proto_member_remove_req rm = {3};
        FRAME(&b, PROTO_HELLO, 0, hello_req, &h);
        FRAME(&b, PROTO_TOPIC_DELETE, 0, topic_delete_req, &d);
        FRAME(&b, PROTO_MEMBER_REMOVE, 0, member_remove_req, &rm);
        put_frame_seed("pipelined", &b);
    }
    buf_free(&b);
    buf_free(&batch);
}

/* fuzz-log-recovery input: mode byte, then the segment file (mode 1) or
 * what follows a valid header (mode 0). */
static void log_seeds(void)
{
    struct buf b;
    uint8_t mode0 = 0, mode1 = 1;
    uint8_t h[32];
    uint64_t next;

    buf_init(&b);
    buf_put(&b, &mode0, 1);
    put_file("fuzz-log-recovery", "empty", b.data, b.len);

    next = add_batch(&b, SHAPE_SIMPLE, 0, 1);
    next = add_batch(&b, SHAPE_HEADERS, next, 2);
    next = add_batch(&b, SHAPE_COMPRESSED, next, 3);
    next = add_batch(&b, SHAPE_GAPS, next, 4);
    (void)next;
    put_file("fuzz-log-recovery", "four-batches", b.data, b.len);
    /* A torn tail: the last batch cut in the middle. */
    put_file("fuzz-log-recovery", "torn-tail", b.data, b.len - 20);

    /* Mode 1: the whole file, header included (seg.c layout). */
    buf_free(&b);
    buf_init(&b);
    buf_put(&b, &mode1, 1);
    memset(h, 0, sizeof h);
    memcpy(h, "TLYS", 4);
    h[4] = 1;
    byte_put_u64(h + 24, codec_checksum(h, 24));
    buf_put(&b, h, sizeof h);
    next = add_batch(&b, SHAPE_SIMPLE, 0, 1);
    add_batch(&b, SHAPE_GAPS, next, 2);
    put_file("fuzz-log-recovery", "whole-file", b.data, b.len);
    put_file("fuzz-log-recovery", "torn-header", b.data, 1 + 20);
    buf_free(&b);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make-seeds DIR\n");
        return 2;
    }
    out_dir = argv[1];
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
        die(out_dir);
    }
    batch_seeds();
    proto_seeds();
    log_seeds();
    return 0;
}
