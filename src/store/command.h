/* Raft entry commands: the only things the replicated state machine applies.
 *
 * ENTRY FORMAT, version 1 (little-endian; one Raft entry = one command)
 *
 *   offset size field
 *   0      1    command type (enum command_type)
 *   1      1    command format version (COMMAND_VERSION)
 *   2      2    reserved, zero
 *   4      4    body_len: bytes of body that follow
 *   8      ...  body (per type, below), then zero padding to a multiple of 8
 *
 * The padding is part of the format: libraft 0.15 silently corrupted
 * entries whose length is not a multiple of 8, and a 0.15 node may still
 * read these entries during an upgrade (docs/raft.md, section 2).
 *
 * Bodies (str = u16 length + bytes; blob = u32 length + bytes):
 *   TOPIC_CREATE  str name, u8 policy, i64 retention_ms, i64 retention_bytes,
 *                 i64 segment_bytes
 *   TOPIC_DELETE  str name
 *   APPEND        u32 n_items, then n_items x (str topic, blob batch,
 *                 u64 expect_offset, u32 n_conditions, n_conditions x
 *                 (blob key, u64 expect_version)); each batch is
 *                 lib/batch.h format with the leader's timestamp, its base
 *                 offset and raft index still to be stamped in apply;
 *                 expect_offset COMMAND_NO_EXPECT means no offset condition
 *   MEMBER_SET    u64 id, str client_addr, str raft_addr
 *   MEMBER_DEL    u64 id
 *   GROUP_COMMIT  str group, str topic, u64 offset, u64 topic_id
 *                 (topic_id: the Raft index of the TOPIC_CREATE of the
 *                 incarnation the position belongs to; entries written
 *                 before it was added end after offset and apply to the
 *                 topic as it is. A topic_id that is not the topic's, or
 *                 an offset past its end, is refused). The offset
 *                 replaces the position and any share positions (a
 *                 reset, a Kafka commit)
 *   GROUP_DELETE  str group, str topic (empty: every topic of the group)
 *   TOPIC_TRIM    str name, u64 created_index, u64 start_offset,
 *                 u64 tombstone_limit: the leader's retention decision for
 *                 the topic created at created_index (ignored for another
 *                 one of the same name). start_offset: offsets below are
 *                 gone on every node (whole segments deleted, the rest
 *                 hidden); tombstone_limit: compaction may remove
 *                 tombstones at offsets below it (0: none yet). Neither
 *                 ever moves back: a lower value than the node has keeps
 *                 the node's.
 *   CLUSTER_ID    u64 cluster_id, blob restored: the cluster's identity,
 *                 proposed by the first leader of a cluster that has none;
 *                 the first one applied stays (a later one is a no-op).
 *                 @restored (empty unless the cluster was restored from a
 *                 backup) is the restored state as a catalog with key
 *                 indexes (catalog.c format): a node that joins later
 *                 creates the restored topics from it and backfills their
 *                 history from a peer; a node that holds them checks them
 *   MEMBER_DIR    u64 id, u64 directory_id: the data directory member @id
 *                 runs on (DATA/identity); 0 forgets it (member replace)
 *   CATALOG_CHECK u64 at_index, u64 digest: the leader's catalog digest
 *                 (store_catalog_digest) right after it applied entry
 *                 at_index. A node that still knows its own digest at
 *                 at_index and finds it different reports its catalog as
 *                 differing from the leader's (store_divergence, /health
 *                 503); one that no longer knows it skips the check. A
 *                 build without this command stops at it (unknown command
 *                 type: a failed apply), see docs/operations.md, upgrades
 *   USER (16)     u8 op, then for op 1 (set) one user with its SCRAM
 *                 credentials (store/users.h), for op 2 (remove) str
 *                 name: the cluster's users, in the catalog (version 3)
 *   ACL (17)      u8 op (1 add, 2 remove), then one rule (store/acl.h):
 *                 the access control lists, in the catalog (version 3)
 *   TOPIC_CONFIG (18) str name, u64 created_index, u8 set (bit 0 policy,
 *                 bit 1 retention_ms, bit 2 retention_bytes), u8 policy,
 *                 i64 retention_ms, i64 retention_bytes: change the
 *                 settings @set names of the topic created at
 *                 created_index (refused for another one of the same
 *                 name); the others keep their values. segment_bytes is
 *                 fixed at creation (a log's segment size)
 *   GROUP_SHARES (19) str group, str topic, u64 topic_id, u16 n_shares
 *                 (1..256), u16 n_items, n_items x (u16 share, u64
 *                 offset): a shared group member's commit
 *                 (docs/groups.md). Each named share's position becomes
 *                 the higher of the one it has and the one given (a
 *                 share position never moves back), and the group's
 *                 offset the lowest share position. A group whose share
 *                 count changes, or that had no share positions, starts
 *                 every share at its offset (the topic's start if it had
 *                 no position at all). Refused as GROUP_COMMIT is for
 *                 another incarnation or an offset past the end; a build
 *                 without it stops at it (unknown command): upgrade every
 *                 node before running shared consumers
 */
#ifndef TALLY_STORE_COMMAND_H_
#define TALLY_STORE_COMMAND_H_

#include <stddef.h>
#include <stdint.h>

#include "lib/byte.h"

#define COMMAND_VERSION 1
#define COMMAND_HEADER_SIZE 8

enum command_type {
    COMMAND_TOPIC_CREATE = 1,
    COMMAND_TOPIC_DELETE = 2,
    COMMAND_APPEND = 3,
    COMMAND_MEMBER_SET = 4,
    COMMAND_MEMBER_DEL = 5,
    COMMAND_GROUP_COMMIT = 6,
    COMMAND_TOPIC_TRIM = 7,
    COMMAND_GROUP_DELETE = 8,
    COMMAND_CLUSTER_ID = 9,
    COMMAND_MEMBER_DIR = 10,
    COMMAND_CATALOG_CHECK = 11,
    COMMAND_USER = 16,
    COMMAND_ACL = 17,
    COMMAND_TOPIC_CONFIG = 18,
    COMMAND_GROUP_SHARES = 19,
};

#define COMMAND_NO_EXPECT UINT64_MAX

/* A condition of an APPEND item: @key must have had exactly @version
 * records. Pointers borrowed. */
struct command_condition {
    const uint8_t *key;
    uint32_t key_len;
    uint64_t version;
};

struct command_topic_config {
    uint8_t policy; /* enum tally_policy */
    int64_t retention_ms;
    int64_t retention_bytes;
    int64_t segment_bytes; /* 0 = node default */
};

/* Encoders append one whole, padded entry to @b (check buf_ok()). */
void command_encode_topic_create(struct buf *b, const char *name, const struct command_topic_config *c);
void command_encode_topic_delete(struct buf *b, const char *name);
void command_encode_member_set(struct buf *b, uint64_t id, const char *client_addr,
                           const char *raft_addr);
void command_encode_member_del(struct buf *b, uint64_t id);
/* One share position of a shared group's GROUP_COMMIT. */
struct command_share_pos {
    uint16_t share;
    uint64_t offset;
};
/* GROUP_SHARES (n_items >= 1). */
void command_encode_group_commit_shares(struct buf *b, const char *group, const char *topic,
                                        uint64_t topic_id, unsigned n_shares,
                                        const struct command_share_pos *items, unsigned n_items);
void command_encode_group_commit(struct buf *b, const char *group, const char *topic, uint64_t offset,
                             uint64_t topic_id);
void command_encode_topic_trim(struct buf *b, const char *name, uint64_t created_index,
                           uint64_t start_offset, uint64_t tombstone_limit);
void command_encode_group_delete(struct buf *b, const char *group, const char *topic);
#define COMMAND_CONFIG_POLICY 1u
#define COMMAND_CONFIG_RETENTION_MS 2u
#define COMMAND_CONFIG_RETENTION_BYTES 4u
void command_encode_topic_config(struct buf *b, const char *name, uint64_t created_index,
                                 unsigned set, const struct command_topic_config *c);
void command_encode_cluster_id(struct buf *b, uint64_t cluster_id, const struct buf *restored);
void command_encode_member_dir(struct buf *b, uint64_t id, uint64_t directory_id);
void command_encode_catalog_check(struct buf *b, uint64_t at_index, uint64_t digest);
/* USER: @body is the op byte and its user, as users.h describes. */
void command_encode_user(struct buf *b, const void *body, size_t len);
/* USER (16) or ACL (17) with @body as the store command's body. */
void command_encode_security(struct buf *b, uint8_t type, const void *body, size_t len);

/* APPEND is built incrementally (group commit adds items as they come):
 * begin, add items, end. */
void command_append_begin(struct buf *b);
/* Add an item; returns the position of the batch's first byte in @b (so the
 * leader can stamp its timestamp in place). */
size_t command_append_add(struct buf *b, const char *topic, const void *batch, uint32_t len,
                      uint64_t expect_offset, const struct command_condition *conds,
                      uint32_t n_conds);
void command_append_end(struct buf *b, uint32_t n_items);

/* Decode the entry header; @body reads the body. TALLY_CORRUPT if the
 * header is malformed, TALLY_VERSION for an unknown version. */
int command_decode(const void *p, size_t n, uint8_t *type, struct rd *body, char *errmsg);

#endif
