/* The client wire protocol: frame header codec and the encoders/decoders
 * generated from the message schemas in proto.h.
 *
 * FRAME, protocol version 1 (all integers little-endian)
 *
 *   offset size field
 *   0      4    frame_len: bytes that follow this field (12 + body length)
 *   4      2    magic 0x7974 (bytes 0x74 0x79, "ty")
 *   6      1    protocol version (PROTO_VERSION = 1)
 *   7      1    flags: bit 0 = response, bit 1 = error response, bit 2 =
 *               (FETCH response) the node knew no leader; others 0
 *   8      2    message type (enum proto_type); a response repeats the type
 *                of its request
 *   10     2    reserved, zero when sent, ignored when received
 *   12     4    request id, chosen by the client, echoed in the response
 *   16     ...  body: the fields of the message's schema, in order
 *
 * A whole frame is frame_len + 4 bytes and never more than PROTO_MAX_FRAME.
 *
 * FIELD ENCODINGS
 *
 *   u8 u16 u32 u64   unsigned little-endian integers of 1, 2, 4, 8 bytes
 *   i64              two's complement, 8 bytes
 *   str              u16 length + that many bytes; no NUL byte, no
 *                    terminator; at most (capacity - 1) bytes
 *   blob             u32 length + that many bytes
 *
 * Lists (members of METADATA, topics of TOPIC_LIST) are a u32 count in the
 * fixed part of the message followed by that many list items, each encoded
 * with its own schema (MEMBER, TOPIC), so a decoder reads the message, then
 * the count of items, then calls proto_get_end().
 *
 * The same tables, with every message, are in docs/protocol.md. */
#include "proto/proto.h"

#include <assert.h>
#include <string.h>

#include "lib/err.h"

#define PROTO__OFF_LEN 0
#define PROTO__OFF_MAGIC 4
#define PROTO__OFF_VERSION 6
#define PROTO__OFF_FLAGS 7
#define PROTO__OFF_TYPE 8
#define PROTO__OFF_RESERVED 10
#define PROTO__OFF_REQUEST_ID 12

static const char *const proto__type_names[] = {
    [PROTO_HELLO] = "HELLO",
    [PROTO_METADATA] = "METADATA",
    [PROTO_TOPIC_CREATE] = "TOPIC_CREATE",
    [PROTO_TOPIC_DELETE] = "TOPIC_DELETE",
    [PROTO_TOPIC_LIST] = "TOPIC_LIST",
    [PROTO_PRODUCE] = "PRODUCE",
    [PROTO_FETCH] = "FETCH",
    [PROTO_MEMBER_ADD] = "MEMBER_ADD",
    [PROTO_MEMBER_REMOVE] = "MEMBER_REMOVE",
    [PROTO_MEMBER_TRANSFER] = "MEMBER_TRANSFER",
    [PROTO_MEMBER_PROMOTE] = "MEMBER_PROMOTE",
    [PROTO_OFFSET_FOR_TIME] = "OFFSET_FOR_TIME",
    [PROTO_GROUP_COMMIT] = "GROUP_COMMIT",
    [PROTO_GROUP_FETCH] = "GROUP_FETCH",
    [PROTO_BACKUP_CUT] = "BACKUP_CUT",
    [PROTO_GROUP_LIST] = "GROUP_LIST",
    [PROTO_GROUP_DELETE] = "GROUP_DELETE",
    [PROTO_GROUP_SET] = "GROUP_SET",
    [PROTO_CLOCK] = "CLOCK",
    [PROTO_MEMBER_REPLACE] = "MEMBER_REPLACE",
    [PROTO_READ_INDEX] = "READ_INDEX",
    [PROTO_STREAM_READ] = "STREAM_READ",
    [PROTO_FETCH_FILTERED] = "FETCH_FILTERED",
    [PROTO_AUTH] = "AUTH",
    [PROTO_SECURITY_SET] = "SECURITY_SET",
    [PROTO_SECURITY_LIST] = "SECURITY_LIST",
    [PROTO_TOPIC_CONFIG] = "TOPIC_CONFIG",
    [PROTO_GROUP_JOIN] = "GROUP_JOIN",
    [PROTO_GROUP_HEARTBEAT] = "GROUP_HEARTBEAT",
    [PROTO_GROUP_LEAVE] = "GROUP_LEAVE",
    [PROTO_GROUP_MEMBERS] = "GROUP_MEMBERS",
};

const char *proto_type_name(unsigned type)
{
    if (type == 0 || type > PROTO__TYPE_MAX || proto__type_names[type] == NULL) {
        return "UNKNOWN";
    }
    return proto__type_names[type];
}

int proto_decode_frame(const void *p, size_t n, uint32_t max_frame, struct proto_frame *f)
{
    const uint8_t *h = p;
    memset(f, 0, sizeof *f);
    if (n < PROTO_HEADER_SIZE) {
        return TALLY_PROTO;
    }
    /* Fill every field before judging them: a caller answering TOOLARGE
     * still wants the type and request id for its error frame. */
    f->frame_len = byte_get_u32(h + PROTO__OFF_LEN);
    f->version = h[PROTO__OFF_VERSION];
    f->flags = h[PROTO__OFF_FLAGS];
    f->type = byte_get_u16(h + PROTO__OFF_TYPE);
    f->request_id = byte_get_u32(h + PROTO__OFF_REQUEST_ID);
    if (byte_get_u16(h + PROTO__OFF_MAGIC) != PROTO_MAGIC) {
        return TALLY_PROTO;
    }
    if (f->frame_len < PROTO_HEADER_SIZE - 4) {
        return TALLY_PROTO;
    }
    /* 64-bit sum: frame_len near UINT32_MAX must not wrap to a small size. */
    if ((uint64_t)f->frame_len + 4 > max_frame) {
        return TALLY_TOOLARGE;
    }
    return 0;
}

size_t proto_begin_frame(struct buf *b, uint16_t type, uint8_t flags, uint32_t request_id)
{
    uint8_t h[PROTO_HEADER_SIZE];
    size_t start = b->len;
    memset(h, 0, sizeof h);
    byte_put_u32(h + PROTO__OFF_LEN, 0); /* patched by proto_end_frame */
    byte_put_u16(h + PROTO__OFF_MAGIC, PROTO_MAGIC);
    h[PROTO__OFF_VERSION] = PROTO_VERSION;
    h[PROTO__OFF_FLAGS] = flags;
    byte_put_u16(h + PROTO__OFF_TYPE, type);
    byte_put_u16(h + PROTO__OFF_RESERVED, 0);
    byte_put_u32(h + PROTO__OFF_REQUEST_ID, request_id);
    buf_put(b, h, sizeof h);
    return start;
}

void proto_end_frame(struct buf *b, size_t start)
{
    if (!buf_ok(b)) {
        return; /* the caller checks buf_ok() and drops the frame */
    }
    assert(b->len >= start + PROTO_HEADER_SIZE);
    assert(b->len - start - 4 <= UINT32_MAX);
    byte_put_u32(b->data + start + PROTO__OFF_LEN, (uint32_t)(b->len - start - 4));
}

/* Strings live in fixed char arrays; strnlen keeps an unterminated array
 * (a caller bug) from being read past its end, and the cap of size - 1
 * keeps the encoder from sending what the decoder would refuse. */
static void proto__put_str(struct buf *b, const char *s, size_t size)
{
    size_t n = strnlen(s, size - 1);
    buf_put_u16(b, (uint16_t)n);
    buf_put(b, s, n);
}

#define PROTO__PUT_u8(name) buf_put_u8(b, m->name);
#define PROTO__PUT_u16(name) buf_put_u16(b, m->name);
#define PROTO__PUT_u32(name) buf_put_u32(b, m->name);
#define PROTO__PUT_u64(name) buf_put_u64(b, m->name);
#define PROTO__PUT_i64(name) buf_put_i64(b, m->name);
#define PROTO__PUT_str(name, cap) proto__put_str(b, m->name, sizeof m->name);
#define PROTO__PUT_blob(name) buf_put_blob(b, m->name, m->name##_len);
#define PROTO__PUT(kind, ...) PROTO__PUT_##kind(__VA_ARGS__)

#define PROTO__GET_u8(name) m->name = rd_u8(r);
#define PROTO__GET_u16(name) m->name = rd_u16(r);
#define PROTO__GET_u32(name) m->name = rd_u32(r);
#define PROTO__GET_u64(name) m->name = rd_u64(r);
#define PROTO__GET_i64(name) m->name = rd_i64(r);
#define PROTO__GET_str(name, cap) rd_str(r, m->name, sizeof m->name);
#define PROTO__GET_blob(name) m->name = rd_blob(r, &m->name##_len);
#define PROTO__GET(kind, ...) PROTO__GET_##kind(__VA_ARGS__)

/* Every decoder reads all fields and checks the reader once: rd_* calls
 * after a failure return zeroes and never touch memory out of bounds. */
#define PROTO__DEFINE(name, SCHEMA)                                            \
    void proto_put_##name(struct buf *b, const struct proto_##name *m)         \
    {                                                                          \
        PROTO_SCHEMA_##SCHEMA(PROTO__PUT)                                      \
    }                                                                          \
    int proto_get_##name(struct rd *r, struct proto_##name *m)                 \
    {                                                                          \
        PROTO_SCHEMA_##SCHEMA(PROTO__GET)                                      \
        return rd_ok(r) ? 0 : TALLY_PROTO;                                     \
    }
PROTO__MESSAGES(PROTO__DEFINE)
#undef PROTO__DEFINE

int proto_get_end(struct rd *r)
{
    return rd_ok(r) && r->left == 0 ? 0 : TALLY_PROTO;
}

/* Copy @s into @out (capacity @cap), cut so that it fits and, when cut,
 * cut on a UTF-8 character boundary so the reader never gets half a
 * character. */
static void proto__copy_cut(char *out, size_t cap, const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n > cap - 1) {
        n = cap - 1;
        /* Back off over continuation bytes (10xxxxxx) to a lead byte,
         * which then starts the character that did not fit. */
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    if (n > 0) {
        memcpy(out, s, n);
    }
    out[n] = '\0';
}

static void proto__put_error_frame(struct buf *b, uint16_t type, uint32_t request_id, int code,
                                   const char *message, uint64_t leader_id,
                                   const char *leader_addr, uint64_t actual)
{
    struct proto_error e;
    size_t start;
    memset(&e, 0, sizeof e);
    e.code = (uint16_t)code;
    proto__copy_cut(e.message, sizeof e.message, message);
    e.leader_id = leader_id;
    proto__copy_cut(e.leader_addr, sizeof e.leader_addr, leader_addr);
    e.actual = actual;
    start = proto_begin_frame(b, type, PROTO_FLAG_RESPONSE | PROTO_FLAG_ERROR, request_id);
    proto_put_error(b, &e);
    proto_end_frame(b, start);
}

void proto_put_error_frame(struct buf *b, uint16_t type, uint32_t request_id, int code,
                           const char *message, uint64_t leader_id, const char *leader_addr)
{
    proto__put_error_frame(b, type, request_id, code, message, leader_id, leader_addr, 0);
}

void proto_put_condition_error_frame(struct buf *b, uint16_t type, uint32_t request_id,
                                     const char *message, uint64_t actual)
{
    proto__put_error_frame(b, type, request_id, TALLY_CONDITION_FAILED, message, 0, "", actual);
}
