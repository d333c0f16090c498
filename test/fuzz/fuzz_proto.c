/* libFuzzer target: the wire-protocol decoders (src/proto/proto.c).
 *
 * The input is a byte stream as a connection would deliver it: frames back
 * to back. For each frame, proto_decode_frame judges the header; the body
 * (frame_len - 12 bytes, or what is left of the input when the frame is
 * cut short) then goes through the request, the response and the error
 * decoder of the frame's type, each with its list items (METADATA members,
 * TOPIC_LIST topics, BACKUP_CUT topics and groups) and proto_get_end.
 *
 * Beyond "no crash, no out-of-bounds read" (ASan/UBSan), it checks one
 * property: whatever a decoder accepts, its encoder turns back into exactly
 * the bytes that were consumed (the format has one encoding per value). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/byte.h"
#include "lib/err.h"
#include "proto/proto.h"

#define FUZZ_EXPORT __attribute__((visibility("default")))

static void fuzz_fail(const char *what, const char *msg)
{
    fprintf(stderr, "fuzz-proto: %s: %s\n", what, msg);
    abort();
}

/* check_<name>(r, m): decode one message; if accepted, re-encode it and
 * compare with the bytes it was decoded from. Generated for every message
 * of the schema list; "unused" so that a message added to proto.h does not
 * break this build before decode_body learns its type. */
#define FUZZ_DEFINE_CHECK(name, SCHEMA)                                        \
    __attribute__((unused))                                                    \
    static int check_##name(struct rd *r, struct proto_##name *m)              \
    {                                                                          \
        const uint8_t *start = r->p;                                           \
        struct buf b;                                                          \
        int rv;                                                                \
        memset(m, 0xa5, sizeof *m);                                            \
        rv = proto_get_##name(r, m);                                           \
        if (rv != 0) {                                                         \
            if (rv != TALLY_PROTO || rd_ok(r)) {                               \
                fuzz_fail(#name, "failure is not TALLY_PROTO with r->bad");    \
            }                                                                  \
            return rv;                                                         \
        }                                                                      \
        buf_init(&b);                                                          \
        proto_put_##name(&b, m);                                               \
        if (!buf_ok(&b)) {                                                     \
            fuzz_fail(#name, "out of memory re-encoding");                     \
        }                                                                      \
        if (b.len != (size_t)(r->p - start) ||                                 \
            (b.len > 0 && memcmp(b.data, start, b.len) != 0)) {                \
            fuzz_fail(#name, "re-encoding differs from the decoded bytes");    \
        }                                                                      \
        buf_free(&b);                                                          \
        return 0;                                                              \
    }
PROTO__MESSAGES(FUZZ_DEFINE_CHECK)
#undef FUZZ_DEFINE_CHECK

/* Borrowed blobs must lie inside the body they were decoded from. */
static void check_blob(const uint8_t *p, uint32_t n, const uint8_t *body, size_t body_len)
{
    if (p == NULL) {
        if (n != 0) {
            fuzz_fail("blob", "NULL pointer with a length");
        }
        return;
    }
    if (p < body || n > body_len || (size_t)(p - body) > body_len - n) {
        fuzz_fail("blob", "points outside the frame body");
    }
}

static void decode_members(struct rd *r, uint32_t n)
{
    struct proto_member m;
    for (uint32_t i = 0; i < n; i++) {
        if (check_member(r, &m) != 0) {
            return;
        }
    }
    (void)proto_get_end(r);
}

#ifdef PROTO_SCHEMA_CONDITION
/* PRODUCE conditions: n_conditions items after the batch. */
static void decode_conditions(struct rd *r, uint32_t n, const uint8_t *body, size_t len)
{
    struct proto_condition c;
    for (uint32_t i = 0; i < n; i++) {
        if (check_condition(r, &c) != 0) {
            return;
        }
        check_blob(c.key, c.key_len, body, len);
    }
    (void)proto_get_end(r);
}
#endif

static void decode_topics(struct rd *r, uint32_t n)
{
    struct proto_topic t;
    for (uint32_t i = 0; i < n; i++) {
        if (check_topic(r, &t) != 0) {
            return;
        }
    }
    (void)proto_get_end(r);
}

#ifdef PROTO_SCHEMA_BACKUP_CUT_RESP
/* BACKUP_CUT_RESP's lists: topics, then the group count and the groups. */
static void decode_backup_cut(struct rd *r, uint32_t n_topics)
{
    struct proto_topic t;
    struct proto_backup_groups gs;
    struct proto_backup_group g;
    for (uint32_t i = 0; i < n_topics; i++) {
        if (check_topic(r, &t) != 0) {
            return;
        }
    }
    if (check_backup_groups(r, &gs) != 0) {
        return;
    }
    for (uint32_t i = 0; i < gs.n_groups; i++) {
        if (check_backup_group(r, &g) != 0) {
            return;
        }
    }
    (void)proto_get_end(r);
}
#endif

#ifdef PROTO_SCHEMA_GROUP_LIST_RESP
static void decode_group_positions(struct rd *r, uint32_t n)
{
    struct proto_group_position p;
    for (uint32_t i = 0; i < n; i++) {
        if (check_group_position(r, &p) != 0) {
            return;
        }
    }
    (void)proto_get_end(r);
}
#endif

/* The request and the response decoder of @type over @body. */
static void decode_body(uint16_t type, const uint8_t *body, size_t len)
{
    struct rd r;
    union {
        struct proto_hello_req hello_req;
        struct proto_hello_resp hello_resp;
        struct proto_metadata_req metadata_req;
        struct proto_metadata_resp metadata_resp;
        struct proto_topic_create_req topic_create_req;
        struct proto_topic_delete_req topic_delete_req;
        struct proto_done_resp done_resp;
        struct proto_topic_list_req topic_list_req;
        struct proto_topic_list_resp topic_list_resp;
        struct proto_produce_req produce_req;
        struct proto_produce_resp produce_resp;
        struct proto_fetch_req fetch_req;
        struct proto_fetch_resp fetch_resp;
        struct proto_member_add_req member_add_req;
        struct proto_member_remove_req member_remove_req;
        struct proto_member_transfer_req member_transfer_req;
        struct proto_member_promote_req member_promote_req;
#ifdef PROTO_SCHEMA_OFFSET_FOR_TIME_REQ
        struct proto_offset_for_time_req offset_for_time_req;
        struct proto_offset_resp offset_resp;
#endif
#ifdef PROTO_SCHEMA_GROUP_COMMIT_REQ
        struct proto_group_commit_req group_commit_req;
#endif
#ifdef PROTO_SCHEMA_GROUP_FETCH_REQ
        struct proto_group_fetch_req group_fetch_req;
#endif
#ifdef PROTO_SCHEMA_BACKUP_CUT_RESP
        struct proto_backup_cut_req backup_cut_req;
        struct proto_backup_cut_resp backup_cut_resp;
#endif
#ifdef PROTO_SCHEMA_GROUP_LIST_RESP
        struct proto_group_list_req group_list_req;
        struct proto_group_list_resp group_list_resp;
        struct proto_group_delete_req group_delete_req;
        struct proto_group_set_req group_set_req;
#endif
    } m;

#define FUZZ_SIMPLE(name)                                                      \
    do {                                                                       \
        rd_init(&r, body, len);                                                \
        if (check_##name(&r, &m.name) == 0) {                                  \
            (void)proto_get_end(&r);                                           \
        }                                                                      \
    } while (0)

    switch (type) {
    case PROTO_HELLO:
        FUZZ_SIMPLE(hello_req);
        FUZZ_SIMPLE(hello_resp);
        break;
    case PROTO_METADATA:
        FUZZ_SIMPLE(metadata_req);
        rd_init(&r, body, len);
        if (check_metadata_resp(&r, &m.metadata_resp) == 0) {
            decode_members(&r, m.metadata_resp.n_members);
        }
        break;
    case PROTO_TOPIC_CREATE:
        FUZZ_SIMPLE(topic_create_req);
        FUZZ_SIMPLE(done_resp);
        break;
    case PROTO_TOPIC_DELETE:
        FUZZ_SIMPLE(topic_delete_req);
        FUZZ_SIMPLE(done_resp);
        break;
    case PROTO_TOPIC_LIST:
        FUZZ_SIMPLE(topic_list_req);
        rd_init(&r, body, len);
        if (check_topic_list_resp(&r, &m.topic_list_resp) == 0) {
            decode_topics(&r, m.topic_list_resp.n_topics);
        }
        break;
    case PROTO_PRODUCE:
        rd_init(&r, body, len);
        if (check_produce_req(&r, &m.produce_req) == 0) {
            check_blob(m.produce_req.batch, m.produce_req.batch_len, body, len);
#ifdef PROTO_SCHEMA_CONDITION
            decode_conditions(&r, m.produce_req.n_conditions, body, len);
#else
            (void)proto_get_end(&r);
#endif
        }
        FUZZ_SIMPLE(produce_resp);
        break;
    case PROTO_FETCH:
        FUZZ_SIMPLE(fetch_req);
        rd_init(&r, body, len);
        if (check_fetch_resp(&r, &m.fetch_resp) == 0) {
            check_blob(m.fetch_resp.batches, m.fetch_resp.batches_len, body, len);
            (void)proto_get_end(&r);
        }
        break;
    case PROTO_MEMBER_ADD:
        FUZZ_SIMPLE(member_add_req);
        FUZZ_SIMPLE(done_resp);
        break;
    case PROTO_MEMBER_REMOVE:
        FUZZ_SIMPLE(member_remove_req);
        FUZZ_SIMPLE(done_resp);
        break;
    case PROTO_MEMBER_TRANSFER:
        FUZZ_SIMPLE(member_transfer_req);
        FUZZ_SIMPLE(done_resp);
        break;
    case PROTO_MEMBER_PROMOTE:
        FUZZ_SIMPLE(member_promote_req);
        FUZZ_SIMPLE(done_resp);
        break;
#ifdef PROTO_SCHEMA_OFFSET_FOR_TIME_REQ
    case PROTO_OFFSET_FOR_TIME:
        FUZZ_SIMPLE(offset_for_time_req);
        FUZZ_SIMPLE(offset_resp);
        break;
#endif
#ifdef PROTO_SCHEMA_GROUP_COMMIT_REQ
    case PROTO_GROUP_COMMIT:
        FUZZ_SIMPLE(group_commit_req);
        FUZZ_SIMPLE(done_resp);
        break;
#endif
#ifdef PROTO_SCHEMA_GROUP_FETCH_REQ
    case PROTO_GROUP_FETCH:
        FUZZ_SIMPLE(group_fetch_req);
        FUZZ_SIMPLE(offset_resp);
        break;
#endif
#ifdef PROTO_SCHEMA_BACKUP_CUT_RESP
    case PROTO_BACKUP_CUT:
        FUZZ_SIMPLE(backup_cut_req);
        rd_init(&r, body, len);
        if (check_backup_cut_resp(&r, &m.backup_cut_resp) == 0) {
            decode_backup_cut(&r, m.backup_cut_resp.n_topics);
        }
        break;
#endif
#ifdef PROTO_SCHEMA_GROUP_LIST_RESP
    case PROTO_GROUP_LIST:
        FUZZ_SIMPLE(group_list_req);
        rd_init(&r, body, len);
        if (check_group_list_resp(&r, &m.group_list_resp) == 0) {
            decode_group_positions(&r, m.group_list_resp.n_positions);
        }
        break;
    case PROTO_GROUP_DELETE:
        FUZZ_SIMPLE(group_delete_req);
        FUZZ_SIMPLE(done_resp);
        break;
    case PROTO_GROUP_SET:
        FUZZ_SIMPLE(group_set_req);
        FUZZ_SIMPLE(done_resp);
        break;
#endif
    default:
        break;
    }
#undef FUZZ_SIMPLE
}

FUZZ_EXPORT int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

FUZZ_EXPORT int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    /* A frame is at least its header, so this loop ends. */
    while (size - pos >= PROTO_HEADER_SIZE) {
        struct proto_frame f;
        struct proto_error e;
        struct rd r;
        const uint8_t *body;
        size_t body_len;
        uint8_t *copy;
        int rv = proto_decode_frame(data + pos, size - pos, PROTO_MAX_FRAME, &f);
        const char *name = proto_type_name(f.type);
        if (name == NULL || name[0] == '\0') {
            fuzz_fail("proto_type_name", "empty name");
        }
        if (rv != 0) {
            if (rv != TALLY_PROTO && rv != TALLY_TOOLARGE) {
                fuzz_fail("proto_decode_frame", "unexpected error code");
            }
            return 0; /* framing lost: the server closes the connection */
        }
        if (f.frame_len < PROTO_HEADER_SIZE - 4 || (uint64_t)f.frame_len + 4 > PROTO_MAX_FRAME) {
            fuzz_fail("proto_decode_frame", "accepted a frame_len out of range");
        }
        body_len = f.frame_len - (PROTO_HEADER_SIZE - 4);
        if (body_len > size - pos - PROTO_HEADER_SIZE) {
            body_len = size - pos - PROTO_HEADER_SIZE; /* cut short: decode what is there */
        }
        /* An exact-size heap copy, so that ASan sees any read past the
         * body (the input buffer itself may go on with the next frame). */
        copy = malloc(body_len ? body_len : 1);
        if (copy == NULL) {
            return 0;
        }
        memcpy(copy, data + pos + PROTO_HEADER_SIZE, body_len);
        body = copy;
        decode_body(f.type, body, body_len);
        rd_init(&r, body, body_len);
        if (check_error(&r, &e) == 0) {
            (void)proto_get_end(&r);
        }
        free(copy);
        pos += PROTO_HEADER_SIZE + body_len;
    }
    return 0;
}
