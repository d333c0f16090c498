/* Raft entry commands: encoding and header decoding (format in command.h). */
#include "store/command.h"

#include <string.h>

#include "lib/err.h"

static size_t command__begin(struct buf *b, uint8_t type)
{
    size_t start = b->len;
    buf_put_u8(b, type);
    buf_put_u8(b, COMMAND_VERSION);
    buf_put_u16(b, 0);
    buf_put_u32(b, 0); /* body_len, patched by command__end */
    return start;
}

static void command__end(struct buf *b, size_t start)
{
    if (buf_ok(b)) {
        byte_put_u32(b->data + start + 4, (uint32_t)(b->len - start - COMMAND_HEADER_SIZE));
    }
    buf_pad(b, 8);
}

void command_encode_topic_create(struct buf *b, const char *name, const struct command_topic_config *c)
{
    size_t start = command__begin(b, COMMAND_TOPIC_CREATE);
    buf_put_str(b, name);
    buf_put_u8(b, c->policy);
    buf_put_i64(b, c->retention_ms);
    buf_put_i64(b, c->retention_bytes);
    buf_put_i64(b, c->segment_bytes);
    command__end(b, start);
}

void command_encode_topic_delete(struct buf *b, const char *name)
{
    size_t start = command__begin(b, COMMAND_TOPIC_DELETE);
    buf_put_str(b, name);
    command__end(b, start);
}

void command_encode_member_set(struct buf *b, uint64_t id, const char *client_addr,
                           const char *raft_addr)
{
    size_t start = command__begin(b, COMMAND_MEMBER_SET);
    buf_put_u64(b, id);
    buf_put_str(b, client_addr);
    buf_put_str(b, raft_addr);
    command__end(b, start);
}

void command_encode_topic_trim(struct buf *b, const char *name, uint64_t created_index,
                           uint64_t start_offset, uint64_t tombstone_limit)
{
    size_t start = command__begin(b, COMMAND_TOPIC_TRIM);
    buf_put_str(b, name);
    buf_put_u64(b, created_index);
    buf_put_u64(b, start_offset);
    buf_put_u64(b, tombstone_limit);
    command__end(b, start);
}

void command_encode_topic_config(struct buf *b, const char *name, uint64_t created_index,
                                 unsigned set, const struct command_topic_config *c)
{
    size_t start = command__begin(b, COMMAND_TOPIC_CONFIG);
    buf_put_str(b, name);
    buf_put_u64(b, created_index);
    buf_put_u8(b, (uint8_t)set);
    buf_put_u8(b, c->policy);
    buf_put_i64(b, c->retention_ms);
    buf_put_i64(b, c->retention_bytes);
    command__end(b, start);
}

void command_encode_member_del(struct buf *b, uint64_t id)
{
    size_t start = command__begin(b, COMMAND_MEMBER_DEL);
    buf_put_u64(b, id);
    command__end(b, start);
}

void command_encode_cluster_id(struct buf *b, uint64_t cluster_id, const struct buf *restored)
{
    size_t start = command__begin(b, COMMAND_CLUSTER_ID);
    buf_put_u64(b, cluster_id);
    buf_put_blob(b, restored != NULL ? restored->data : NULL,
                 restored != NULL ? (uint32_t)restored->len : 0);
    command__end(b, start);
}

void command_encode_member_dir(struct buf *b, uint64_t id, uint64_t directory_id)
{
    size_t start = command__begin(b, COMMAND_MEMBER_DIR);
    buf_put_u64(b, id);
    buf_put_u64(b, directory_id);
    command__end(b, start);
}

void command_encode_catalog_check(struct buf *b, uint64_t at_index, uint64_t digest)
{
    size_t start = command__begin(b, COMMAND_CATALOG_CHECK);
    buf_put_u64(b, at_index);
    buf_put_u64(b, digest);
    command__end(b, start);
}

void command_append_begin(struct buf *b)
{
    b->len = 0;
    command__begin(b, COMMAND_APPEND);
    buf_put_u32(b, 0); /* n_items, patched by command_append_end */
}

size_t command_append_add(struct buf *b, const char *topic, const void *batch, uint32_t len,
                      uint64_t expect_offset, const struct command_condition *conds,
                      uint32_t n_conds)
{
    size_t at;
    buf_put_str(b, topic);
    buf_put_u32(b, len);
    at = b->len;
    buf_put(b, batch, len);
    buf_put_u64(b, expect_offset);
    buf_put_u32(b, n_conds);
    for (uint32_t i = 0; i < n_conds; i++) {
        buf_put_blob(b, conds[i].key, conds[i].key_len);
        buf_put_u64(b, conds[i].version);
    }
    return at;
}

void command_encode_group_commit(struct buf *b, const char *group, const char *topic, uint64_t offset,
                             uint64_t topic_id)
{
    size_t start = command__begin(b, COMMAND_GROUP_COMMIT);
    buf_put_str(b, group);
    buf_put_str(b, topic);
    buf_put_u64(b, offset);
    buf_put_u64(b, topic_id);
    command__end(b, start);
}

void command_encode_group_commit_shares(struct buf *b, const char *group, const char *topic,
                                        uint64_t topic_id, unsigned n_shares,
                                        const struct command_share_pos *items, unsigned n_items)
{
    size_t start = command__begin(b, COMMAND_GROUP_SHARES);
    buf_put_str(b, group);
    buf_put_str(b, topic);
    buf_put_u64(b, topic_id);
    buf_put_u16(b, (uint16_t)n_shares);
    buf_put_u16(b, (uint16_t)n_items);
    for (unsigned i = 0; i < n_items; i++) {
        buf_put_u16(b, items[i].share);
        buf_put_u64(b, items[i].offset);
    }
    command__end(b, start);
}

void command_encode_group_delete(struct buf *b, const char *group, const char *topic)
{
    size_t start = command__begin(b, COMMAND_GROUP_DELETE);
    buf_put_str(b, group);
    buf_put_str(b, topic);
    command__end(b, start);
}

void command_append_end(struct buf *b, uint32_t n_items)
{
    if (buf_ok(b)) {
        byte_put_u32(b->data + COMMAND_HEADER_SIZE, n_items);
    }
    command__end(b, 0);
}

int command_decode(const void *p, size_t n, uint8_t *type, struct rd *body, char *errmsg)
{
    const uint8_t *e = p;
    uint32_t body_len;
    if (n < COMMAND_HEADER_SIZE) {
        return ERR_CORRUPT(errmsg, "entry of %zu bytes is shorter than its header", n);
    }
    *type = e[0];
    if (e[1] != COMMAND_VERSION) {
        err_printf(errmsg, "entry format version %u unknown (this build applies %u)", e[1],
                   COMMAND_VERSION);
        return TALLY_VERSION;
    }
    body_len = byte_get_u32(e + 4);
    if (body_len > n - COMMAND_HEADER_SIZE) {
        return ERR_CORRUPT(errmsg, "entry body of %u bytes exceeds the entry", body_len);
    }
    rd_init(body, e + COMMAND_HEADER_SIZE, body_len);
    return 0;
}

void command_encode_user(struct buf *b, const void *body, size_t len)
{
    size_t start = command__begin(b, COMMAND_USER);
    buf_put(b, body, len);
    command__end(b, start);
}

void command_encode_security(struct buf *b, uint8_t type, const void *body, size_t len)
{
    size_t start = command__begin(b, type);
    buf_put(b, body, len);
    command__end(b, start);
}
