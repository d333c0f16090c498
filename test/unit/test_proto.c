/* Unit tests of the wire protocol codec (src/proto): frames, every message
 * schema, and the refusal of malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"
#include "tally.h"

/* ------------------------------------------------------------------------
 * Generated helpers: for every message of PROTO__MESSAGES, a filler that
 * sets every field to a known value, an encoder and a checking decoder.
 * Generating them from the same X-macro as the codec means a field added
 * to a schema is covered here without touching this file.
 * ------------------------------------------------------------------------ */

static const uint8_t t__blob[] = "some blob bytes, \0 NULs included \xff\xfe";

/* A deterministic value sequence, so the decoder side can rebuild the
 * expected struct instead of keeping the encoded one around. */
static uint64_t t__next(uint64_t *seed)
{
    *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
    return *seed ^ (*seed >> 29);
}

/* full: the longest string the field can carry; else the empty string. */
static void t__fill_str(char *s, size_t size, bool full, uint64_t *seed)
{
    size_t n = full ? size - 1 : 0;
    for (size_t i = 0; i < n; i++) {
        s[i] = (char)('a' + t__next(seed) % 26);
    }
    s[n] = '\0';
}

#define T__FILL_u8(name) m->name = full ? (uint8_t)t__next(seed) : 0;
#define T__FILL_u16(name) m->name = full ? (uint16_t)t__next(seed) : 0;
#define T__FILL_u32(name) m->name = full ? (uint32_t)t__next(seed) : 0;
#define T__FILL_u64(name) m->name = full ? t__next(seed) : 0;
#define T__FILL_i64(name) m->name = full ? -(int64_t)(t__next(seed) >> 1) : 0;
#define T__FILL_str(name, cap) t__fill_str(m->name, sizeof m->name, full, seed);
#define T__FILL_blob(name)                                                     \
    m->name = full ? t__blob : NULL;                                           \
    m->name##_len = full ? (uint32_t)sizeof t__blob : 0;
#define T__FILL(kind, ...) T__FILL_##kind(__VA_ARGS__)

#define T__CMP_u8(name) assert_int_equal(a->name, b->name);
#define T__CMP_u16(name) assert_int_equal(a->name, b->name);
#define T__CMP_u32(name) assert_int_equal(a->name, b->name);
#define T__CMP_u64(name) assert_true(a->name == b->name);
#define T__CMP_i64(name) assert_true(a->name == b->name);
#define T__CMP_str(name, cap) assert_string_equal(a->name, b->name);
#define T__CMP_blob(name)                                                      \
    assert_int_equal(a->name##_len, b->name##_len);                            \
    if (a->name##_len > 0) {                                                   \
        assert_memory_equal(a->name, b->name, a->name##_len);                  \
    }
#define T__CMP(kind, ...) T__CMP_##kind(__VA_ARGS__)

#define T__DEFINE(name, SCHEMA)                                                \
    static void t__fill_##name(struct proto_##name *m, bool full)              \
    {                                                                          \
        uint64_t seed_value = 42;                                              \
        uint64_t *seed = &seed_value;                                          \
        (void)seed;                                                            \
        memset(m, 0, sizeof *m);                                               \
        PROTO_SCHEMA_##SCHEMA(T__FILL)                                         \
    }                                                                          \
    static void t__cmp_##name(const struct proto_##name *a,                   \
                              const struct proto_##name *b)                    \
    {                                                                          \
        PROTO_SCHEMA_##SCHEMA(T__CMP)                                          \
    }                                                                          \
    static void t__encode_##name(struct buf *b, bool full)                     \
    {                                                                          \
        struct proto_##name m;                                                 \
        t__fill_##name(&m, full);                                              \
        proto_put_##name(b, &m);                                               \
    }                                                                          \
    /* Decode @n bytes at @p; on success they must be exactly the message */  \
    /* t__encode_ wrote. Returns the decoder's code. */                        \
    static int t__decode_##name(const uint8_t *p, size_t n, bool full)         \
    {                                                                          \
        struct proto_##name want, got;                                         \
        struct rd r;                                                           \
        int rv;                                                                \
        rd_init(&r, p, n);                                                     \
        rv = proto_get_##name(&r, &got);                                       \
        if (rv != 0) {                                                         \
            return rv;                                                         \
        }                                                                      \
        rv = proto_get_end(&r);                                                \
        if (rv != 0) {                                                         \
            return rv;                                                         \
        }                                                                      \
        t__fill_##name(&want, full);                                           \
        t__cmp_##name(&want, &got);                                            \
        return 0;                                                              \
    }
PROTO__MESSAGES(T__DEFINE)
#undef T__DEFINE

struct t__msg {
    const char *name;
    void (*encode)(struct buf *b, bool full);
    int (*decode)(const uint8_t *p, size_t n, bool full);
};

#define T__ENTRY(name, SCHEMA) {#name, t__encode_##name, t__decode_##name},
static const struct t__msg t__msgs[] = {PROTO__MESSAGES(T__ENTRY)};
#undef T__ENTRY
#define T__N_MSGS (sizeof t__msgs / sizeof t__msgs[0])

/* Copy into an allocation of exactly @n bytes, so that AddressSanitizer
 * catches any read past the end of a truncated input. */
static uint8_t *t__exact(const void *p, size_t n)
{
    uint8_t *q = malloc(n > 0 ? n : 1);
    assert_non_null(q);
    if (n > 0) {
        memcpy(q, p, n);
    }
    return q;
}

/* ------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------ */

/* Every message decodes back to what was encoded, with all fields set to
 * their extremes (longest strings) and with all fields empty. */
static void test_round_trip_every_message(void **state)
{
    (void)state;
    for (size_t i = 0; i < T__N_MSGS; i++) {
        for (int full = 0; full <= 1; full++) {
            struct buf b;
            buf_init(&b);
            t__msgs[i].encode(&b, full);
            assert_true(buf_ok(&b));
            uint8_t *p = t__exact(b.data, b.len);
            int rv = t__msgs[i].decode(p, b.len, full);
            if (rv != 0) {
                fail_msg("%s (full=%d): decode returned %d", t__msgs[i].name, full, rv);
            }
            free(p);
            buf_free(&b);
        }
    }
}

/* Every proper prefix of every encoded message is refused with
 * TALLY_PROTO, without reading out of bounds. */
static void test_truncated_prefixes_are_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < T__N_MSGS; i++) {
        for (int full = 0; full <= 1; full++) {
            struct buf b;
            buf_init(&b);
            t__msgs[i].encode(&b, full);
            assert_true(buf_ok(&b));
            for (size_t k = 0; k < b.len; k++) {
                uint8_t *p = t__exact(b.data, k);
                int rv = t__msgs[i].decode(p, k, full);
                if (rv != TALLY_PROTO) {
                    fail_msg("%s (full=%d): prefix of %zu/%zu bytes gave %d", t__msgs[i].name,
                             full, k, b.len, rv);
                }
                free(p);
            }
            buf_free(&b);
        }
    }
}

/* A message followed by stray bytes decodes, but proto_get_end refuses it. */
static void test_trailing_bytes_are_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < T__N_MSGS; i++) {
        struct buf b;
        buf_init(&b);
        t__msgs[i].encode(&b, true);
        buf_put_u8(&b, 0);
        assert_true(buf_ok(&b));
        assert_int_equal(t__msgs[i].decode(b.data, b.len, true), TALLY_PROTO);
        buf_free(&b);
    }
}

/* Fixed fields have the documented sizes and byte order. */
static void test_produce_resp_layout(void **state)
{
    static const uint8_t want[] = {
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* base_offset */
        0x03, 0x00, 0x00, 0x00,                         /* count */
        0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* raft_index */
    };
    struct proto_produce_resp m = {.base_offset = 0x0102030405060708ull, .count = 3,
                                   .raft_index = 42};
    struct buf b;
    (void)state;
    buf_init(&b);
    proto_put_produce_resp(&b, &m);
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    buf_free(&b);
}

/* Strings are a u16 length and the bytes, without terminator. */
static void test_string_layout(void **state)
{
    struct proto_topic_delete_req m;
    struct buf b;
    (void)state;
    strcpy(m.name, "orders");
    buf_init(&b);
    proto_put_topic_delete_req(&b, &m);
    assert_int_equal(b.len, 2 + 6);
    assert_memory_equal(b.data, "\x06\x00orders", 8);
    buf_free(&b);
}

/* Encode a TOPIC_DELETE body whose name is @n copies of @c. */
static void t__put_name(struct buf *b, size_t n, char c)
{
    buf_put_u16(b, (uint16_t)n);
    for (size_t i = 0; i < n; i++) {
        buf_put_u8(b, (uint8_t)c);
    }
}

/* A string of capacity - 1 bytes fits; one byte more is refused. */
static void test_string_too_long_is_refused(void **state)
{
    struct proto_topic_delete_req m;
    struct buf b;
    struct rd r;
    (void)state;

    buf_init(&b);
    t__put_name(&b, PROTO_NAME_MAX - 1, 'x');
    rd_init(&r, b.data, b.len);
    assert_int_equal(proto_get_topic_delete_req(&r, &m), 0);
    assert_int_equal(proto_get_end(&r), 0);
    assert_int_equal(strlen(m.name), PROTO_NAME_MAX - 1);
    buf_free(&b);

    buf_init(&b);
    t__put_name(&b, PROTO_NAME_MAX, 'x');
    rd_init(&r, b.data, b.len);
    assert_int_equal(proto_get_topic_delete_req(&r, &m), TALLY_PROTO);
    buf_free(&b);

    /* The largest length a u16 can claim, with the bytes present. */
    buf_init(&b);
    t__put_name(&b, 65535, 'x');
    rd_init(&r, b.data, b.len);
    assert_int_equal(proto_get_topic_delete_req(&r, &m), TALLY_PROTO);
    buf_free(&b);
}

/* A string holding a NUL byte is refused (it would silently be cut). */
static void test_string_with_nul_is_refused(void **state)
{
    static const uint8_t body[] = {0x05, 0x00, 'a', 'b', 0x00, 'c', 'd'};
    struct proto_topic_delete_req m;
    struct rd r;
    (void)state;
    rd_init(&r, body, sizeof body);
    assert_int_equal(proto_get_topic_delete_req(&r, &m), TALLY_PROTO);
}

/* A blob length beyond the input is refused. */
static void test_blob_longer_than_input_is_refused(void **state)
{
    struct proto_produce_req m;
    struct buf b;
    struct rd r;
    (void)state;
    buf_init(&b);
    buf_put_str(&b, "t");
    buf_put_u32(&b, 1000);
    buf_put_u32(&b, 0xffffffffu);
    buf_put(&b, "abc", 3);
    rd_init(&r, b.data, b.len);
    assert_int_equal(proto_get_produce_req(&r, &m), TALLY_PROTO);
    buf_free(&b);
}

/* The encoder never sends a string the decoder would refuse, even from an
 * array that lacks its terminator. */
static void test_encoder_caps_unterminated_string(void **state)
{
    struct proto_topic_delete_req in, out;
    struct buf b;
    struct rd r;
    (void)state;
    memset(in.name, 'z', sizeof in.name);
    buf_init(&b);
    proto_put_topic_delete_req(&b, &in);
    rd_init(&r, b.data, b.len);
    assert_int_equal(proto_get_topic_delete_req(&r, &out), 0);
    assert_int_equal(proto_get_end(&r), 0);
    assert_int_equal(strlen(out.name), PROTO_NAME_MAX - 1);
    buf_free(&b);
}

/* A METADATA answer is the fixed part followed by n_members MEMBER items;
 * the same holds for TOPIC_LIST and TOPIC. */
static void test_lists_follow_their_message(void **state)
{
    struct proto_metadata_resp md = {.node_id = 2, .leader_id = 1, .role = 1, .term = 7,
                                     .commit_index = 10, .applied_index = 9,
                                     .last_index = 11, .n_members = 3};
    struct proto_topic_list_resp tl = {.n_topics = 2};
    struct buf b;
    struct rd r;
    (void)state;

    buf_init(&b);
    proto_put_metadata_resp(&b, &md);
    for (uint64_t i = 1; i <= 3; i++) {
        struct proto_member m = {.id = i, .voter = 1};
        snprintf(m.client_addr, sizeof m.client_addr, "127.0.0.1:700%u", (unsigned)i);
        snprintf(m.raft_addr, sizeof m.raft_addr, "127.0.0.1:710%u", (unsigned)i);
        proto_put_member(&b, &m);
    }
    rd_init(&r, b.data, b.len);
    struct proto_metadata_resp md2;
    assert_int_equal(proto_get_metadata_resp(&r, &md2), 0);
    assert_int_equal(md2.n_members, 3);
    assert_true(md2.last_index == 11);
    for (uint64_t i = 1; i <= 3; i++) {
        struct proto_member m;
        char want[64];
        assert_int_equal(proto_get_member(&r, &m), 0);
        assert_true(m.id == i);
        snprintf(want, sizeof want, "127.0.0.1:710%u", (unsigned)i);
        assert_string_equal(m.raft_addr, want);
    }
    assert_int_equal(proto_get_end(&r), 0);
    buf_free(&b);

    buf_init(&b);
    proto_put_topic_list_resp(&b, &tl);
    for (int i = 0; i < 2; i++) {
        struct proto_topic t = {.policy = (uint8_t)i, .retention_ms = -1,
                                .retention_bytes = -1, .next_offset = 100u + (unsigned)i};
        snprintf(t.name, sizeof t.name, "topic-%d", i);
        proto_put_topic(&b, &t);
    }
    rd_init(&r, b.data, b.len);
    struct proto_topic_list_resp tl2;
    assert_int_equal(proto_get_topic_list_resp(&r, &tl2), 0);
    assert_int_equal(tl2.n_topics, 2);
    for (int i = 0; i < 2; i++) {
        struct proto_topic t;
        assert_int_equal(proto_get_topic(&r, &t), 0);
        assert_true(t.retention_ms == -1);
        assert_true(t.next_offset == 100u + (unsigned)i);
    }
    assert_int_equal(proto_get_end(&r), 0);
    buf_free(&b);
}

/* ------------------------------------------------------------------------
 * Frames
 * ------------------------------------------------------------------------ */

/* A frame built with begin/end decodes to its header fields, frame_len
 * counts the bytes after the length field, and the body follows. */
static void test_frame_round_trip(void **state)
{
    struct proto_fetch_req req = {.offset = 5, .max_bytes = 1 << 20, .max_wait_ms = 100,
                                  .min_index = 9};
    struct proto_fetch_req got;
    struct proto_frame f;
    struct buf b;
    struct rd r;
    size_t start;
    (void)state;

    strcpy(req.topic, "orders");
    buf_init(&b);
    buf_put(&b, "xyz", 3); /* a frame may start anywhere in a buffer */
    start = proto_begin_frame(&b, PROTO_FETCH, 0, 0xdeadbeef);
    assert_int_equal(start, 3);
    proto_put_fetch_req(&b, &req);
    proto_end_frame(&b, start);
    assert_true(buf_ok(&b));

    assert_int_equal(proto_decode_frame(b.data + start, b.len - start, PROTO_MAX_FRAME, &f), 0);
    assert_int_equal(f.frame_len, b.len - start - 4);
    assert_int_equal(f.version, PROTO_VERSION);
    assert_int_equal(f.flags, 0);
    assert_int_equal(f.type, PROTO_FETCH);
    assert_int_equal(f.request_id, 0xdeadbeef);
    /* Magic "ty" on the wire. */
    assert_int_equal(b.data[start + 4], 't');
    assert_int_equal(b.data[start + 5], 'y');

    rd_init(&r, b.data + start + PROTO_HEADER_SIZE, b.len - start - PROTO_HEADER_SIZE);
    assert_int_equal(proto_get_fetch_req(&r, &got), 0);
    assert_int_equal(proto_get_end(&r), 0);
    assert_string_equal(got.topic, "orders");
    assert_true(got.min_index == 9);
    buf_free(&b);
}

/* Build a bare header with the given fields. */
static void t__header(uint8_t h[PROTO_HEADER_SIZE], uint32_t frame_len, uint16_t magic,
                      uint8_t version, uint16_t type, uint32_t id)
{
    memset(h, 0, PROTO_HEADER_SIZE);
    byte_put_u32(h, frame_len);
    byte_put_u16(h + 4, magic);
    h[6] = version;
    byte_put_u16(h + 8, type);
    byte_put_u32(h + 12, id);
}

/* Fewer than 16 header bytes are refused. */
static void test_frame_header_truncated(void **state)
{
    uint8_t h[PROTO_HEADER_SIZE];
    struct proto_frame f;
    (void)state;
    t__header(h, 12, PROTO_MAGIC, PROTO_VERSION, PROTO_HELLO, 1);
    for (size_t n = 0; n < PROTO_HEADER_SIZE; n++) {
        uint8_t *p = t__exact(h, n);
        assert_int_equal(proto_decode_frame(p, n, PROTO_MAX_FRAME, &f), TALLY_PROTO);
        free(p);
    }
    assert_int_equal(proto_decode_frame(h, sizeof h, PROTO_MAX_FRAME, &f), 0);
}

/* A bad magic means framing is lost. */
static void test_frame_bad_magic(void **state)
{
    uint8_t h[PROTO_HEADER_SIZE];
    struct proto_frame f;
    (void)state;
    t__header(h, 12, 0x7479, PROTO_VERSION, PROTO_HELLO, 1); /* bytes swapped */
    assert_int_equal(proto_decode_frame(h, sizeof h, PROTO_MAX_FRAME, &f), TALLY_PROTO);
    t__header(h, 12, 0, PROTO_VERSION, PROTO_HELLO, 1);
    assert_int_equal(proto_decode_frame(h, sizeof h, PROTO_MAX_FRAME, &f), TALLY_PROTO);
}

/* frame_len must cover the rest of the header (12 bytes); 12 is an empty
 * body. */
static void test_frame_len_too_small(void **state)
{
    uint8_t h[PROTO_HEADER_SIZE];
    struct proto_frame f;
    (void)state;
    for (uint32_t len = 0; len < PROTO_HEADER_SIZE - 4; len++) {
        t__header(h, len, PROTO_MAGIC, PROTO_VERSION, PROTO_HELLO, 1);
        assert_int_equal(proto_decode_frame(h, sizeof h, PROTO_MAX_FRAME, &f), TALLY_PROTO);
    }
    t__header(h, PROTO_HEADER_SIZE - 4, PROTO_MAGIC, PROTO_VERSION, PROTO_HELLO, 1);
    assert_int_equal(proto_decode_frame(h, sizeof h, PROTO_MAX_FRAME, &f), 0);
}

/* A frame over the limit is TALLY_TOOLARGE, with type and request id still
 * decoded for the error answer; the limit itself is accepted, and a length
 * near 2^32 does not wrap around. */
static void test_frame_too_large(void **state)
{
    uint8_t h[PROTO_HEADER_SIZE];
    struct proto_frame f;
    (void)state;
    t__header(h, PROTO_MAX_FRAME - 4, PROTO_MAGIC, PROTO_VERSION, PROTO_PRODUCE, 77);
    assert_int_equal(proto_decode_frame(h, sizeof h, PROTO_MAX_FRAME, &f), 0);
    t__header(h, PROTO_MAX_FRAME - 3, PROTO_MAGIC, PROTO_VERSION, PROTO_PRODUCE, 77);
    assert_int_equal(proto_decode_frame(h, sizeof h, PROTO_MAX_FRAME, &f), TALLY_TOOLARGE);
    assert_int_equal(f.type, PROTO_PRODUCE);
    assert_int_equal(f.request_id, 77);
    t__header(h, 0xfffffffcu, PROTO_MAGIC, PROTO_VERSION, PROTO_PRODUCE, 77);
    assert_int_equal(proto_decode_frame(h, sizeof h, PROTO_MAX_FRAME, &f), TALLY_TOOLARGE);
    t__header(h, 0xffffffffu, PROTO_MAGIC, PROTO_VERSION, PROTO_PRODUCE, 77);
    assert_int_equal(proto_decode_frame(h, sizeof h, PROTO_MAX_FRAME, &f), TALLY_TOOLARGE);
    /* A smaller limit chosen by the caller is honoured. */
    t__header(h, 100, PROTO_MAGIC, PROTO_VERSION, PROTO_PRODUCE, 77);
    assert_int_equal(proto_decode_frame(h, sizeof h, 103, &f), TALLY_TOOLARGE);
    assert_int_equal(proto_decode_frame(h, sizeof h, 104, &f), 0);
}

/* Another protocol version is not a framing error: its length can be
 * trusted, so the caller answers TALLY_VERSION and keeps the connection. */
static void test_frame_other_version_is_decoded(void **state)
{
    uint8_t h[PROTO_HEADER_SIZE];
    struct proto_frame f;
    (void)state;
    t__header(h, 20, PROTO_MAGIC, 2, PROTO_METADATA, 5);
    assert_int_equal(proto_decode_frame(h, sizeof h, PROTO_MAX_FRAME, &f), 0);
    assert_int_equal(f.version, 2);
    assert_int_equal(f.frame_len, 20);
}

/* An error frame carries the request's type and id, both flags, and the
 * message cut to fit on a UTF-8 character boundary. */
static void test_error_frame(void **state)
{
    char msg[400];
    struct proto_frame f;
    struct proto_error e;
    struct buf b;
    struct rd r;
    (void)state;

    /* 254 ASCII bytes, then 3-byte characters: the one straddling byte 255
     * must be dropped whole. */
    memset(msg, 'm', 254);
    msg[254] = '\0';
    for (int i = 0; i < 20; i++) {
        strcat(msg, "\xe2\x82\xac"); /* EURO SIGN */
    }

    buf_init(&b);
    proto_put_error_frame(&b, PROTO_PRODUCE, 31, TALLY_NOTLEADER, msg, 3, "127.0.0.1:7003");
    assert_true(buf_ok(&b));
    assert_int_equal(proto_decode_frame(b.data, b.len, PROTO_MAX_FRAME, &f), 0);
    assert_int_equal(f.frame_len + 4, b.len);
    assert_int_equal(f.flags, PROTO_FLAG_RESPONSE | PROTO_FLAG_ERROR);
    assert_int_equal(f.type, PROTO_PRODUCE);
    assert_int_equal(f.request_id, 31);
    rd_init(&r, b.data + PROTO_HEADER_SIZE, b.len - PROTO_HEADER_SIZE);
    assert_int_equal(proto_get_error(&r, &e), 0);
    assert_int_equal(proto_get_end(&r), 0);
    assert_int_equal(e.code, TALLY_NOTLEADER);
    assert_int_equal(strlen(e.message), 254);
    assert_true(e.leader_id == 3);
    assert_string_equal(e.leader_addr, "127.0.0.1:7003");
    buf_free(&b);

    /* Short message, no leader: NULL address is sent as "". */
    buf_init(&b);
    proto_put_error_frame(&b, 0, 0, TALLY_PROTO, "bad magic", 0, NULL);
    rd_init(&r, b.data + PROTO_HEADER_SIZE, b.len - PROTO_HEADER_SIZE);
    assert_int_equal(proto_get_error(&r, &e), 0);
    assert_string_equal(e.message, "bad magic");
    assert_string_equal(e.leader_addr, "");
    buf_free(&b);
}

/* Every type has a name; anything else is UNKNOWN. */
static void test_type_names(void **state)
{
    (void)state;
    assert_string_equal(proto_type_name(PROTO_HELLO), "HELLO");
    assert_string_equal(proto_type_name(PROTO_PRODUCE), "PRODUCE");
    assert_string_equal(proto_type_name(PROTO_MEMBER_TRANSFER), "MEMBER_TRANSFER");
    for (unsigned t = 1; t <= PROTO__TYPE_MAX; t++) {
        if (t == 22 || t == 23 || t == 26) {
            continue; /* unused */
        }
        assert_string_not_equal(proto_type_name(t), "UNKNOWN");
    }
    assert_string_equal(proto_type_name(PROTO_AUTH), "AUTH");
    assert_string_equal(proto_type_name(PROTO_SECURITY_LIST), "SECURITY_LIST");
    assert_string_equal(proto_type_name(PROTO_GROUP_LIST), "GROUP_LIST");
    assert_string_equal(proto_type_name(PROTO_GROUP_DELETE), "GROUP_DELETE");
    assert_string_equal(proto_type_name(PROTO_GROUP_SET), "GROUP_SET");
    assert_string_equal(proto_type_name(PROTO_CLOCK), "CLOCK");
    assert_string_equal(proto_type_name(PROTO_MEMBER_REPLACE), "MEMBER_REPLACE");
    assert_string_equal(proto_type_name(PROTO_READ_INDEX), "READ_INDEX");
    assert_string_equal(proto_type_name(PROTO_STREAM_READ), "STREAM_READ");
    assert_string_equal(proto_type_name(PROTO_FETCH_FILTERED), "FETCH_FILTERED");
    assert_string_equal(proto_type_name(0), "UNKNOWN");
    assert_string_equal(proto_type_name(PROTO__TYPE_MAX + 1), "UNKNOWN");
    assert_string_equal(proto_type_name(65535), "UNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_message),
        cmocka_unit_test(test_truncated_prefixes_are_refused),
        cmocka_unit_test(test_trailing_bytes_are_refused),
        cmocka_unit_test(test_produce_resp_layout),
        cmocka_unit_test(test_string_layout),
        cmocka_unit_test(test_string_too_long_is_refused),
        cmocka_unit_test(test_string_with_nul_is_refused),
        cmocka_unit_test(test_blob_longer_than_input_is_refused),
        cmocka_unit_test(test_encoder_caps_unterminated_string),
        cmocka_unit_test(test_lists_follow_their_message),
        cmocka_unit_test(test_frame_round_trip),
        cmocka_unit_test(test_frame_header_truncated),
        cmocka_unit_test(test_frame_bad_magic),
        cmocka_unit_test(test_frame_len_too_small),
        cmocka_unit_test(test_frame_too_large),
        cmocka_unit_test(test_frame_other_version_is_decoded),
        cmocka_unit_test(test_error_frame),
        cmocka_unit_test(test_type_names),
    };
    return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
