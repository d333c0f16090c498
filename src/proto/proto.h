/* The client wire protocol: frames and message schemas, encode/decode.
 *
 * server/ and client/ include this, and so does tool/cmd_backup.c, which
 * sends raw requests to one node over client/wire.h (test/check_layers.sh
 * allows it). Byte layouts are at the top of proto.c and in
 * docs/protocol.md.
 *
 * FRAME (little-endian)
 *   0   4  frame_len: bytes after this field (PROTO_HEADER_SIZE - 4 + body)
 *   4   2  magic 0x7974 ("ty" on the wire)
 *   6   1  protocol version (PROTO_VERSION)
 *   7   1  flags: bit 0 = response, bit 1 = error response
 *   8   2  message type (enum proto_type); a response repeats its request's
 *   10  2  reserved, zero
 *   12  4  request id, chosen by the client, echoed in the response
 *   16  .. body
 * Requests on one connection may be pipelined; responses come in request
 * order. An error response's body is struct proto_error.
 *
 * Each message body is a sequence of fields:
 *   u8/u16/u32/u64/i64: fixed little-endian integers
 *   str: u16 length + bytes (no NUL); blob: u32 length + bytes
 * The schemas below are the single source of truth: an X-macro list
 * generates the struct, the encoder and the decoder of every message. */
#ifndef TALLY_PROTO_PROTO_H_
#define TALLY_PROTO_PROTO_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/batch.h"
#include "lib/byte.h"

#define PROTO_MAGIC 0x7974u
#define PROTO_VERSION 1
#define PROTO_HEADER_SIZE 16
/* Largest frame either side accepts (frame_len + 4). A larger frame_len is
 * answered with TALLY_TOOLARGE and the connection is closed, because the
 * rest of that frame cannot be skipped safely. */
#define PROTO_MAX_FRAME (BATCH_MAX_SIZE + (1u << 16))

#define PROTO_FLAG_RESPONSE 0x01u
#define PROTO_FLAG_ERROR 0x02u
/* On a FETCH response: the answering node knew no leader, so its answer
 * may miss acknowledged writes (possibly stale). Older clients ignore it. */
#define PROTO_FLAG_NO_LEADER 0x04u

#define PROTO_NAME_MAX 256  /* topic names: 1..255 bytes */
#define PROTO_ADDR_MAX 64   /* "255.255.255.255:65535" and more */
#define PROTO_MSG_MAX 256   /* error messages (longer ones are cut) */

enum proto_type {
    PROTO_HELLO = 1,
    PROTO_METADATA = 2,
    PROTO_TOPIC_CREATE = 3,
    PROTO_TOPIC_DELETE = 4,
    PROTO_TOPIC_LIST = 5,
    PROTO_PRODUCE = 6,
    PROTO_FETCH = 7,
    PROTO_MEMBER_ADD = 8,
    PROTO_MEMBER_REMOVE = 9,
    PROTO_MEMBER_TRANSFER = 10,
    PROTO_OFFSET_FOR_TIME = 11,
    PROTO_GROUP_COMMIT = 12,
    PROTO_GROUP_FETCH = 13,
    PROTO_BACKUP_CUT = 14,
    PROTO_MEMBER_PROMOTE = 15,
    PROTO_GROUP_LIST = 16,
    PROTO_GROUP_DELETE = 17,
    PROTO_GROUP_SET = 18,
    PROTO_CLOCK = 19,
    PROTO_MEMBER_REPLACE = 20,
    PROTO_READ_INDEX = 21,
    /* 22-23, 26: unused (reserved while features were built in parallel) */
    PROTO_STREAM_READ = 24,
    PROTO_FETCH_FILTERED = 25,
    PROTO_AUTH = 27,      /* SCRAM authentication of the connection */
    PROTO_SECURITY_SET = 28,  /* add, change or remove a user or an ACL rule */
    PROTO_SECURITY_LIST = 29, /* the users or the ACL rules */
    PROTO_TOPIC_CONFIG = 30,  /* change a topic's policy or retention */
    PROTO_GROUP_JOIN = 31,      /* shared groups (docs/groups.md): join, */
    PROTO_GROUP_HEARTBEAT = 32, /* stay a member, */
    PROTO_GROUP_LEAVE = 33,     /* leave, */
    PROTO_GROUP_MEMBERS = 34,   /* and who holds which shares */
    PROTO__TYPE_MAX = 34,
};

/* Name of a message type for logs and errors ("PRODUCE"), "UNKNOWN". */
const char *proto_type_name(unsigned type);

struct proto_frame {
    uint32_t frame_len;
    uint8_t version;
    uint8_t flags;
    uint16_t type;
    uint32_t request_id;
};

/* Decode the 16-byte frame header at @p (@n >= PROTO_HEADER_SIZE).
 * Returns 0; TALLY_PROTO for a bad magic or a frame_len below the header
 * (framing is lost: close the connection); TALLY_TOOLARGE for frame_len +
 * 4 > @max_frame (close too). A version other than PROTO_VERSION is NOT
 * rejected here: the caller answers it with TALLY_VERSION and skips the
 * frame, since its length is still trustworthy. */
int proto_decode_frame(const void *p, size_t n, uint32_t max_frame, struct proto_frame *f);

/* Start a frame in @b (appends the 16-byte header with frame_len 0) and
 * return its start position; then append the body; then proto_end_frame
 * patches frame_len. */
size_t proto_begin_frame(struct buf *b, uint16_t type, uint8_t flags, uint32_t request_id);
void proto_end_frame(struct buf *b, size_t start);

/* Field kinds for the schemas. STR fields are char arrays of the given
 * capacity; BLOB fields are a pointer + length that borrow from the
 * decoded input (and are borrowed by the encoder). */
#define PROTO_SCHEMA_HELLO_REQ(X)                                              \
    X(u8, min_version)                                                         \
    X(u8, max_version)                                                         \
    X(str, client_name, 64)
#define PROTO_SCHEMA_HELLO_RESP(X)                                             \
    X(u8, version)                                                             \
    X(u64, node_id)                                                            \
    X(str, server_version, 32)
/* METADATA: this node's own view of the cluster. */
/* METADATA: flags bit 0 (PROTO_METADATA_CLUSTER_ID): append the cluster
 * id after the members (older servers ignore the flag and never append;
 * older clients send 0 and get the answer they know). */
#define PROTO_METADATA_CLUSTER_ID 1
#define PROTO_SCHEMA_METADATA_REQ(X) X(u8, flags)
#define PROTO_SCHEMA_METADATA_RESP(X)                                          \
    X(u64, node_id)                                                            \
    X(u64, leader_id)    /* 0: none known */                                   \
    X(u8, role)          /* enum tally_role */                                 \
    X(u64, term)                                                               \
    X(u64, commit_index)                                                       \
    X(u64, applied_index)                                                      \
    X(u64, last_index)                                                         \
    X(u32, n_members)    /* followed by n_members PROTO_SCHEMA_MEMBER */
#define PROTO_SCHEMA_MEMBER(X)                                                 \
    X(u64, id)                                                                 \
    X(str, client_addr, PROTO_ADDR_MAX)                                        \
    X(str, raft_addr, PROTO_ADDR_MAX)                                          \
    X(u8, voter)         /* 1 voter, 0 standby, 2 spare (not sent the log) */
#define PROTO_SCHEMA_TOPIC_CREATE_REQ(X)                                       \
    X(str, name, PROTO_NAME_MAX)                                               \
    X(u8, policy)        /* enum tally_policy */                               \
    X(i64, retention_ms)                                                       \
    X(i64, retention_bytes)                                                    \
    X(i64, segment_bytes)
#define PROTO_SCHEMA_TOPIC_DELETE_REQ(X) X(str, name, PROTO_NAME_MAX)
/* TOPIC_CONFIG (leader, through Raft): change the settings @set names
 * (PROTO_CONFIG_* bits) of topic @name; the others keep their values.
 * Answered by DONE_RESP; NOTFOUND, INVAL (retention below -1, policy
 * above 3, nothing set). */
#define PROTO_CONFIG_POLICY 1
#define PROTO_CONFIG_RETENTION_MS 2
#define PROTO_CONFIG_RETENTION_BYTES 4
#define PROTO_SCHEMA_TOPIC_CONFIG_REQ(X)                                       \
    X(str, name, PROTO_NAME_MAX)                                               \
    X(u8, set)                                                                 \
    X(u8, policy)                                                              \
    X(i64, retention_ms)                                                       \
    X(i64, retention_bytes)
/* Response of TOPIC_CREATE, TOPIC_DELETE and the MEMBER_* requests. */
#define PROTO_SCHEMA_DONE_RESP(X) X(u64, raft_index)
/* TOPIC_LIST: flags bit 0 (PROTO_TOPIC_LIST_PAGED): the request goes on
 * with PROTO_SCHEMA_TOPIC_PAGE_REQ (one page of topics after a cursor), and
 * the answer's topics are followed by PROTO_SCHEMA_TOPIC_PAGE_RESP. Without
 * it (every older client), the answer lists every topic. */
#define PROTO_TOPIC_LIST_PAGED 1
/* flags bit 1 (PROTO_TOPIC_LIST_NAMED): the request goes on with
 * PROTO_SCHEMA_TOPIC_NAMES_REQ and PROTO_SCHEMA_TOPIC_NAME items, and the
 * answer lists those of them that exist (in the order asked). */
#define PROTO_TOPIC_LIST_NAMED 2
#define PROTO_TOPIC_PAGE_MAX 10000
#define PROTO_SCHEMA_TOPIC_LIST_REQ(X) X(u8, flags)
#define PROTO_SCHEMA_TOPIC_PAGE_REQ(X)                                         \
    X(str, after, PROTO_NAME_MAX) /* the last topic of the previous page ("": */\
    X(u64, after_id)     /* from the first); after_id its topic id */          \
    X(u32, limit)        /* at most this many (1..PROTO_TOPIC_PAGE_MAX) */
#define PROTO_SCHEMA_TOPIC_NAMES_REQ(X)                                        \
    X(u32, n_names)      /* 0..PROTO_TOPIC_PAGE_MAX PROTO_SCHEMA_TOPIC_NAME follow */
#define PROTO_SCHEMA_TOPIC_NAME(X) X(str, name, PROTO_NAME_MAX)
#define PROTO_SCHEMA_TOPIC_PAGE_RESP(X)                                        \
    X(u64, last_id)      /* topic id of the page's last topic (0: empty) */    \
    X(u8, more)          /* 1: topics follow it */
#define PROTO_SCHEMA_TOPIC_LIST_RESP(X)                                        \
    X(u32, n_topics)     /* followed by n_topics PROTO_SCHEMA_TOPIC */
#define PROTO_SCHEMA_TOPIC(X)                                                  \
    X(str, name, PROTO_NAME_MAX)                                               \
    X(u8, policy)                                                              \
    X(i64, retention_ms)                                                       \
    X(i64, retention_bytes)                                                    \
    X(i64, segment_bytes)                                                      \
    X(u64, start_offset)                                                       \
    X(u64, next_offset)
#define PROTO_SCHEMA_PRODUCE_REQ(X)                                            \
    X(str, topic, PROTO_NAME_MAX)                                              \
    X(u32, timeout_ms)                                                         \
    X(u64, expect_offset) /* append only if the topic's next offset is this; */\
                          /* PROTO_NO_EXPECT: no condition */                  \
    X(u32, n_conditions) /* followed, after batch, by n PROTO_SCHEMA_CONDITION */\
    X(blob, batch)       /* one batch, lib/batch.h format, checksummed */
/* A per-key condition of a produce: the key must have had exactly
 * expect_version records (0: the key must not exist yet). */
#define PROTO_SCHEMA_CONDITION(X)                                              \
    X(blob, key)                                                               \
    X(u64, expect_version)
#define PROTO_NO_EXPECT UINT64_MAX
#define PROTO_MAX_CONDITIONS 1024
#define PROTO_SCHEMA_PRODUCE_RESP(X)                                           \
    X(u64, base_offset)                                                        \
    X(u32, count)                                                              \
    X(u64, raft_index)
#define PROTO_SCHEMA_FETCH_REQ(X)                                              \
    X(str, topic, PROTO_NAME_MAX)                                              \
    X(u64, offset)                                                             \
    X(u32, max_bytes)                                                          \
    X(u32, max_wait_ms)  /* long-poll when nothing is there yet */             \
    X(u64, min_index)    /* wait until this node applied this index */
#define PROTO_SCHEMA_FETCH_RESP(X)                                             \
    X(u64, applied_index)                                                      \
    X(u64, start_offset)                                                       \
    X(u64, next_offset)  /* the topic's next offset on this node */            \
    X(blob, batches)     /* whole batches, back to back; last field so the */  \
                         /* server can send them straight from the file */
#define PROTO_SCHEMA_MEMBER_ADD_REQ(X)                                         \
    X(u64, id)                                                                 \
    X(str, client_addr, PROTO_ADDR_MAX)                                        \
    X(str, raft_addr, PROTO_ADDR_MAX)
#define PROTO_SCHEMA_MEMBER_REMOVE_REQ(X) X(u64, id)
#define PROTO_SCHEMA_MEMBER_TRANSFER_REQ(X) X(u64, id)
#define PROTO_SCHEMA_MEMBER_PROMOTE_REQ(X) X(u64, id)
/* MEMBER_REPLACE: member @id lost its data directory; take it out of the
 * configuration and forget its directory, so that it can be added again
 * (MEMBER_ADD, catch-up, MEMBER_PROMOTE) on its new one. */
#define PROTO_SCHEMA_MEMBER_REPLACE_REQ(X) X(u64, id)
/* READ_INDEX: the leader confirms it still leads (a Raft barrier) and
 * answers DONE_RESP with its applied index, which covers every write
 * acknowledged before the request: a FETCH with that min_index, from any
 * node, is a linearizable read. */
#define PROTO_SCHEMA_READ_INDEX_REQ(X) X(u8, unused)
/* AUTH: one step of a SCRAM exchange (docs/security.md). The first request
 * carries the client-first-message, the second the client-final-message;
 * the answers carry server-first and server-final. done = 1 on the last
 * answer; principal: the name the connection is now authenticated as. */
#define PROTO_SCHEMA_AUTH_REQ(X)                                               \
    X(str, mechanism, 32)  /* "SCRAM-SHA-256" or "SCRAM-SHA-512" */            \
    X(blob, message)
#define PROTO_SCHEMA_AUTH_RESP(X)                                              \
    X(u8, done)                                                                \
    X(blob, message)                                                           \
    X(str, principal, PROTO_NAME_MAX)
/* SECURITY_SET: @command is PROTO_SECURITY_USERS (store command USER, 16)
 * or PROTO_SECURITY_ACLS (ACL, 17); @body is that store command's body
 * (store/users.h: op 1 set with the user's SCRAM credentials, derived by
 * the client, so the password never leaves it, op 2 remove; store/acl.h:
 * op 1 add, 2 remove, then a rule). Answered with DONE_RESP. */
#define PROTO_SECURITY_USERS 16
#define PROTO_SECURITY_ACLS 17
#define PROTO_SCHEMA_SECURITY_SET_REQ(X)                                       \
    X(u8, command)                                                             \
    X(blob, body)
/* SECURITY_LIST: @what as above; the answer lists n_items items, each a
 * blob: for users, str name and u8 mechanisms (bit 0 SCRAM-SHA-256, bit 1
 * SCRAM-SHA-512); for ACLs, one rule (store/acl.h encoding). */
#define PROTO_SCHEMA_SECURITY_LIST_REQ(X) X(u8, what)
#define PROTO_SCHEMA_SECURITY_LIST_RESP(X)                                     \
    X(u32, n_items)      /* followed by n_items PROTO_SCHEMA_SECURITY_ITEM */
#define PROTO_SCHEMA_SECURITY_ITEM(X) X(blob, item)
/* OFFSET_FOR_TIME: the first offset whose batch has a timestamp at or
 * after timestamp_ms (the topic's next offset if none). */
#define PROTO_SCHEMA_OFFSET_FOR_TIME_REQ(X)                                    \
    X(str, topic, PROTO_NAME_MAX)                                              \
    X(i64, timestamp_ms)
#define PROTO_SCHEMA_OFFSET_RESP(X)                                            \
    X(u64, offset)                                                             \
    X(u8, found)         /* GROUP_FETCH: 0 if the group has no position */
/* GROUP_COMMIT (leader, through Raft) and GROUP_FETCH (any node): a durable
 * named consumer position: the next offset the group will read. */
#define PROTO_SCHEMA_GROUP_COMMIT_REQ(X)                                       \
    X(str, group, PROTO_NAME_MAX)                                              \
    X(str, topic, PROTO_NAME_MAX)                                              \
    X(u64, offset)
/* A shared group member's GROUP_COMMIT (docs/groups.md) appends
 * GROUP_COMMIT_SHARES and n_items SHARE_POS after the offset (which is
 * then ignored): the leader checks that @member_id is a member of
 * generation @generation (CONDITION_FAILED otherwise: the member was
 * fenced and must join again) and proposes the share positions
 * (store/command.h GROUP_COMMIT). */
#define PROTO_SCHEMA_GROUP_COMMIT_SHARES(X)                                    \
    X(u32, generation)                                                         \
    X(str, member_id, PROTO_NAME_MAX)                                          \
    X(u64, topic_id)                                                           \
    X(u16, n_shares)                                                           \
    X(u16, n_items)      /* followed by n PROTO_SCHEMA_SHARE_POS */
#define PROTO_SCHEMA_SHARE_POS(X)                                              \
    X(u16, share)                                                              \
    X(u64, offset)
/* GROUP_JOIN (leader): become a member of shared group @group reading
 * @topic in @n_shares shares (1..256) with the key filter @filter (empty:
 * every record; otherwise as FETCH_FILTERED), or rejoin as @member_id
 * ("" the first time). Waits until the group's next generation starts
 * (every member rejoined, or the session timeout passed), then answers
 * the member's shares, each with its committed position. A group is
 * coordinated per topic; every member of a group on a topic must name the
 * same share count and filter while any is live, and a group name with
 * live Kafka members refuses tally members (INVAL, saying which). */
#define PROTO_SCHEMA_GROUP_JOIN_REQ(X)                                         \
    X(str, group, PROTO_NAME_MAX)                                              \
    X(str, topic, PROTO_NAME_MAX)                                              \
    X(u16, n_shares)                                                           \
    X(u32, session_ms)                                                         \
    X(str, member_id, PROTO_NAME_MAX)                                          \
    X(blob, filter)
#define PROTO_SCHEMA_GROUP_JOIN_RESP(X)                                        \
    X(u32, generation)                                                         \
    X(str, member_id, PROTO_NAME_MAX)                                          \
    X(u32, n_members)                                                          \
    X(u64, topic_id)                                                           \
    X(u8, found)         /* the group had a position on the topic */          \
    X(u64, offset)       /* that position (the lowest share position) */      \
    X(u16, n_owned)      /* followed by n PROTO_SCHEMA_SHARE_POS */
/* GROUP_HEARTBEAT (leader): @member_id of @generation is alive. status 0:
 * go on; 1: a rebalance started: stop, commit, and GROUP_JOIN again with
 * the same member id; 2: not a member (any more): GROUP_JOIN afresh. */
#define PROTO_SCHEMA_GROUP_HEARTBEAT_REQ(X)                                    \
    X(str, group, PROTO_NAME_MAX)                                              \
    X(u32, generation)                                                         \
    X(str, member_id, PROTO_NAME_MAX)                                          \
    X(str, topic, PROTO_NAME_MAX)
#define PROTO_SCHEMA_GROUP_HEARTBEAT_RESP(X) X(u8, status)
#define PROTO_GROUP_GO_ON 0
#define PROTO_GROUP_REJOIN 1
#define PROTO_GROUP_NOT_MEMBER 2
/* GROUP_LEAVE (leader): @member_id leaves @group at once (the others
 * rebalance). Answered by DONE_RESP (also for an unknown member). */
#define PROTO_SCHEMA_GROUP_LEAVE_REQ(X)                                        \
    X(str, group, PROTO_NAME_MAX)                                              \
    X(str, member_id, PROTO_NAME_MAX)                                          \
    X(str, topic, PROTO_NAME_MAX)
/* GROUP_MEMBERS (leader): the live members of shared group @group on
 * @topic ("": of the Kafka group @group) and their shares; n_members 0
 * when it has none. */
#define PROTO_SCHEMA_GROUP_MEMBERS_REQ(X)                                      \
    X(str, group, PROTO_NAME_MAX)                                              \
    X(str, topic, PROTO_NAME_MAX)
#define PROTO_SCHEMA_GROUP_MEMBERS_RESP(X)                                     \
    X(str, state, 32)    /* Stable, PreparingRebalance, ... */               \
    X(u32, generation)                                                         \
    X(str, kind, 32)     /* "tally", or the Kafka group's protocol type */     \
    X(str, topic, PROTO_NAME_MAX)                                              \
    X(u16, n_shares)                                                           \
    X(u32, n_members)    /* followed by n PROTO_SCHEMA_GROUP_MEMBER */
#define PROTO_SCHEMA_GROUP_MEMBER(X)                                           \
    X(str, member_id, PROTO_NAME_MAX)                                          \
    X(str, client_host, PROTO_ADDR_MAX)                                        \
    X(u16, n_owned)      /* followed by n PROTO_SCHEMA_SHARE_POS: its shares   \
                          * with their committed positions */
#define PROTO_SCHEMA_GROUP_FETCH_REQ(X)                                        \
    X(str, group, PROTO_NAME_MAX)                                              \
    X(str, topic, PROTO_NAME_MAX)
/* GROUP_LIST (leader when one is known, like GROUP_FETCH): the positions
 * of @group ("" = every group) on @topic ("" = every topic), each with its
 * topic's id and offsets, so a reader sees position and lag at once.
 * Answered by GROUP_LIST_RESP and n_positions PROTO_SCHEMA_GROUP_POSITION.
 * A topic id is the Raft index of the topic's creation: it names one
 * incarnation of a topic, and a topic deleted and created again has a new
 * one. */
#define PROTO_SCHEMA_GROUP_LIST_REQ(X)                                         \
    X(str, group, PROTO_NAME_MAX)                                              \
    X(str, topic, PROTO_NAME_MAX)
#define PROTO_SCHEMA_GROUP_LIST_RESP(X)                                        \
    X(u32, n_positions)  /* followed by n PROTO_SCHEMA_GROUP_POSITION */
#define PROTO_SCHEMA_GROUP_POSITION(X)                                         \
    X(str, group, PROTO_NAME_MAX)                                              \
    X(str, topic, PROTO_NAME_MAX)                                              \
    X(u64, topic_id)                                                           \
    X(u64, offset)       /* the next offset the group reads */                \
    X(u64, start_offset) /* the topic's first and next offsets */             \
    X(u64, next_offset)
/* GROUP_DELETE (leader, through Raft): forget the position of @group on
 * @topic ("" = on every topic). Answered by DONE_RESP; NOTFOUND when the
 * group has no such position. */
#define PROTO_SCHEMA_GROUP_DELETE_REQ(X)                                       \
    X(str, group, PROTO_NAME_MAX)                                              \
    X(str, topic, PROTO_NAME_MAX)
/* GROUP_SET (leader, through Raft): GROUP_COMMIT bound to one incarnation
 * of the topic: refused (NOTFOUND) if the topic's id is no longer
 * @topic_id (PROTO_ANY_TOPIC_ID: the topic as it is), and refused
 * (OUT_OF_RANGE) past the topic's next offset. Answered by DONE_RESP. */
#define PROTO_SCHEMA_GROUP_SET_REQ(X)                                          \
    X(str, group, PROTO_NAME_MAX)                                              \
    X(str, topic, PROTO_NAME_MAX)                                              \
    X(u64, topic_id)                                                           \
    X(u64, offset)
#define PROTO_ANY_TOPIC_ID UINT64_MAX
/* BACKUP_CUT (any node, since protocol version 1 of tally 0.x with this
 * type; older servers answer UNKNOWN_REQUEST): the state this node has
 * applied, read at one moment on its loop, so every field is at the same
 * Raft index. Followed by n_topics PROTO_SCHEMA_TOPIC (start and next
 * offset at that index), then PROTO_SCHEMA_BACKUP_GROUPS and its
 * n_groups PROTO_SCHEMA_BACKUP_GROUP. */
#define PROTO_SCHEMA_BACKUP_CUT_REQ(X) X(u8, unused)
#define PROTO_SCHEMA_BACKUP_CUT_RESP(X)                                        \
    X(u32, cut_version)  /* PROTO_BACKUP_CUT_VERSION */                        \
    X(u64, node_id)                                                            \
    X(u64, applied_index)                                                      \
    X(u64, term)                                                               \
    X(u32, n_topics)     /* followed by n_topics PROTO_SCHEMA_TOPIC */
#define PROTO_SCHEMA_BACKUP_GROUPS(X)                                          \
    X(u32, n_groups)     /* followed by n_groups PROTO_SCHEMA_BACKUP_GROUP */
#define PROTO_SCHEMA_BACKUP_GROUP(X)                                           \
    X(str, group, PROTO_NAME_MAX)                                              \
    X(str, topic, PROTO_NAME_MAX)                                              \
    X(u64, offset)
#define PROTO_BACKUP_CUT_VERSION 1
/* CLOCK (any node; older servers answer UNKNOWN_REQUEST): the node's wall
 * clock and its offset against the cluster's time (the leader's clock, less
 * the correction the leader took over; docs/operations.md, Clocks).
 * Followers send it to the leader every 2 s to measure their offset
 * (NTP-style: the leader's wall_ms against the middle of the round trip,
 * plus the leader's own offset_ms); tally status asks every member. */
#define PROTO_SCHEMA_CLOCK_REQ(X) X(u8, unused)
#define PROTO_SCHEMA_CLOCK_RESP(X)                                             \
    X(u64, node_id)                                                            \
    X(i64, wall_ms)      /* its wall clock when it answered, ms since 1970 */  \
    X(u64, leader_id)    /* the leader it measured against (0: none known) */  \
    X(u8, offset_known)  /* 1: offset_ms is a recent measurement, or the leader's*/\
    X(i64, offset_ms)    /* its clock minus the cluster's time */              \
    X(u8, offset_warn)   /* 1: |offset_ms| exceeds its clock_warn_ms */
/* STREAM_READ (any node; older servers answer UNKNOWN_REQUEST): the
 * records of one key (a stream) of @topic by stream version, through the
 * node's stream index (the version is the key's record count, the number
 * --expect-version compares). Forward: versions from_version (0 = 1) up,
 * oldest first; backward: from from_version (0 = the end) down, newest
 * first. At most max_events (1..PROTO_STREAM_MAX_EVENTS) records and about
 * max_bytes of values (at least one record). min_index as FETCH
 * (read-your-writes). max_wait_ms > 0 on a forward read at the stream's
 * end (from_version = version + 1, or 0/1 for a key never written) parks
 * the request until the stream's next record is applied or the time is
 * up (then an empty answer). Answered by STREAM_READ_RESP and n_events
 * PROTO_SCHEMA_STREAM_EVENT. Errors: NOTFOUND (no such topic; no record
 * has the key, unless waiting), OUT_OF_RANGE (a version beyond the end),
 * INVAL (empty key or longer than PROTO_STREAM_KEY_MAX, max_events 0 or
 * too large), UNAVAILABLE (history this node lacks after a snapshot
 * install: read from another node), TIMEOUT (min_index not reached). */
#define PROTO_SCHEMA_STREAM_READ_REQ(X)                                        \
    X(str, topic, PROTO_NAME_MAX)                                              \
    X(blob, key)                                                               \
    X(u64, from_version)                                                       \
    X(u8, backward)      /* 1: newest first */                                 \
    X(u32, max_events)                                                         \
    X(u32, max_bytes)                                                          \
    X(u32, max_wait_ms)  /* long-poll for the next record (forward only) */   \
    X(u64, min_index)    /* wait until this node applied this index */
#define PROTO_SCHEMA_STREAM_READ_RESP(X)                                       \
    X(u64, applied_index)                                                      \
    X(u64, version)      /* the stream's version: records ever written */      \
    X(u64, first_version) /* oldest version this node still holds */          \
    X(u64, next_version) /* where to go on (backward: 0 = start reached) */    \
    X(u32, n_events)     /* followed by n PROTO_SCHEMA_STREAM_EVENT */
#define PROTO_SCHEMA_STREAM_EVENT(X)                                           \
    X(u64, version)                                                            \
    X(u64, offset)                                                             \
    X(i64, timestamp)                                                          \
    X(u8, flags)         /* PROTO_STREAM_TOMBSTONE, PROTO_STREAM_NULL_HEADERS */ \
    X(blob, value)                                                             \
    X(blob, headers)     /* the record's encoded headers (docs/disk-format.md) */
/* FETCH_FILTERED (any node; older servers answer UNKNOWN_REQUEST): FETCH
 * with a server-side key filter (a category subscription): the node scans
 * the topic from @offset and sends only the records whose key matches
 * @filter (lib/glob.h: exact key, `prefix-*`, small glob), decoded, as
 * FILTERED_RECORD items. scanned_to says where the scan stopped: the
 * records between @offset and it that are not in the answer did not
 * match, so a reader (or a group's committed position) goes on from
 * there. One request scans at most PROTO_FILTER_SCAN_BYTES of batches,
 * so an answer may hold no record and still move scanned_to on. At the
 * topic's end, max_wait_ms parks the request as FETCH does. Errors as
 * FETCH, and INVAL for a malformed or too long filter. */
#define PROTO_SCHEMA_FETCH_FILTERED_REQ(X)                                     \
    X(str, topic, PROTO_NAME_MAX)                                              \
    X(u64, offset)                                                             \
    X(u32, max_bytes)                                                          \
    X(u32, max_wait_ms)                                                        \
    X(u64, min_index)                                                          \
    X(blob, filter)      /* 1..256 bytes, lib/glob.h; 0 with shares */
/* A shared group member's FETCH_FILTERED appends FETCH_SHARES: only
 * records whose share (lib/share.h) among @n_shares is in @shares (a
 * bitmap, bit s of byte s/8, (n_shares + 7) / 8 bytes) are sent, keyless
 * ones included; with an empty filter, whatever their key. */
#define PROTO_SCHEMA_FETCH_SHARES(X)                                           \
    X(u16, n_shares)                                                           \
    X(blob, shares)
#define PROTO_SCHEMA_FETCH_FILTERED_RESP(X)                                    \
    X(u64, applied_index)                                                      \
    X(u64, start_offset)                                                       \
    X(u64, next_offset)  /* the topic's next offset on this node */            \
    X(u64, scanned_to)   /* go on from here */                                 \
    X(u32, n_records)    /* followed by n PROTO_SCHEMA_FILTERED_RECORD */
#define PROTO_SCHEMA_FILTERED_RECORD(X)                                        \
    X(u64, offset)                                                             \
    X(i64, timestamp)                                                          \
    X(u8, flags)         /* PROTO_STREAM_TOMBSTONE, PROTO_STREAM_NULL_HEADERS */ \
    X(blob, key)                                                               \
    X(blob, value)                                                             \
    X(blob, headers)
#define PROTO_FILTER_SCAN_BYTES (8u << 20)
#define PROTO_STREAM_MAX_EVENTS 65536
#define PROTO_STREAM_KEY_MAX 4096
#define PROTO_STREAM_TOMBSTONE 0x01u /* the value is empty: a tombstone */
/* The headers blob is encoded as in a batch with BATCH_FLAG_NULL_HEADERS
 * (value lengths are svarints, -1 = null), which the blob cannot say by
 * itself. A reader that ignores headers may ignore the bit. */
#define PROTO_STREAM_NULL_HEADERS 0x02u
/* Body of every error response. */
#define PROTO_SCHEMA_ERROR(X)                                                  \
    X(u16, code)         /* TALLY_* */                                         \
    X(str, message, PROTO_MSG_MAX)                                             \
    X(u64, leader_id)    /* NOTLEADER: the leader, if known (else 0) */        \
    X(str, leader_addr, PROTO_ADDR_MAX) /* its client address, or "" */      \
    X(u64, actual)       /* CONDITION_FAILED: the actual next offset or key */ \
                         /* version; 0 otherwise */

/* Struct generation. */
#define PROTO__FIELD_u8(name) uint8_t name;
#define PROTO__FIELD_u16(name) uint16_t name;
#define PROTO__FIELD_u32(name) uint32_t name;
#define PROTO__FIELD_u64(name) uint64_t name;
#define PROTO__FIELD_i64(name) int64_t name;
#define PROTO__FIELD_str(name, cap) char name[cap];
#define PROTO__FIELD_blob(name) const uint8_t *name; uint32_t name##_len;
#define PROTO__FIELD(kind, ...) PROTO__FIELD_##kind(__VA_ARGS__)

#define PROTO__MESSAGES(X)                                                     \
    X(hello_req, HELLO_REQ)                                                    \
    X(hello_resp, HELLO_RESP)                                                  \
    X(metadata_req, METADATA_REQ)                                              \
    X(metadata_resp, METADATA_RESP)                                            \
    X(member, MEMBER)                                                          \
    X(topic_create_req, TOPIC_CREATE_REQ)                                      \
    X(topic_delete_req, TOPIC_DELETE_REQ)                                      \
    X(topic_config_req, TOPIC_CONFIG_REQ)                                      \
    X(topic_page_req, TOPIC_PAGE_REQ)                                          \
    X(topic_names_req, TOPIC_NAMES_REQ)                                        \
    X(topic_name, TOPIC_NAME)                                                  \
    X(topic_page_resp, TOPIC_PAGE_RESP)                                        \
    X(done_resp, DONE_RESP)                                                    \
    X(topic_list_req, TOPIC_LIST_REQ)                                          \
    X(topic_list_resp, TOPIC_LIST_RESP)                                        \
    X(topic, TOPIC)                                                            \
    X(produce_req, PRODUCE_REQ)                                                \
    X(produce_resp, PRODUCE_RESP)                                              \
    X(fetch_req, FETCH_REQ)                                                    \
    X(fetch_resp, FETCH_RESP)                                                  \
    X(member_add_req, MEMBER_ADD_REQ)                                          \
    X(member_remove_req, MEMBER_REMOVE_REQ)                                    \
    X(member_transfer_req, MEMBER_TRANSFER_REQ)                                \
    X(member_promote_req, MEMBER_PROMOTE_REQ)                                  \
    X(member_replace_req, MEMBER_REPLACE_REQ)                                  \
    X(read_index_req, READ_INDEX_REQ)                                          \
    X(auth_req, AUTH_REQ)                                                      \
    X(auth_resp, AUTH_RESP)                                                    \
    X(security_set_req, SECURITY_SET_REQ)                                      \
    X(security_list_req, SECURITY_LIST_REQ)                                    \
    X(security_list_resp, SECURITY_LIST_RESP)                                  \
    X(security_item, SECURITY_ITEM)                                            \
    X(condition, CONDITION)                                                    \
    X(offset_for_time_req, OFFSET_FOR_TIME_REQ)                                \
    X(offset_resp, OFFSET_RESP)                                                \
    X(group_commit_req, GROUP_COMMIT_REQ)                                      \
    X(group_fetch_req, GROUP_FETCH_REQ)                                        \
    X(group_commit_shares, GROUP_COMMIT_SHARES)                                \
    X(share_pos, SHARE_POS)                                                    \
    X(group_join_req, GROUP_JOIN_REQ)                                          \
    X(group_join_resp, GROUP_JOIN_RESP)                                        \
    X(group_heartbeat_req, GROUP_HEARTBEAT_REQ)                                \
    X(group_heartbeat_resp, GROUP_HEARTBEAT_RESP)                              \
    X(group_leave_req, GROUP_LEAVE_REQ)                                        \
    X(group_members_req, GROUP_MEMBERS_REQ)                                    \
    X(group_members_resp, GROUP_MEMBERS_RESP)                                  \
    X(group_member, GROUP_MEMBER)                                              \
    X(backup_cut_req, BACKUP_CUT_REQ)                                          \
    X(backup_cut_resp, BACKUP_CUT_RESP)                                        \
    X(backup_groups, BACKUP_GROUPS)                                            \
    X(backup_group, BACKUP_GROUP)                                              \
    X(group_list_req, GROUP_LIST_REQ)                                          \
    X(group_list_resp, GROUP_LIST_RESP)                                        \
    X(group_position, GROUP_POSITION)                                          \
    X(group_delete_req, GROUP_DELETE_REQ)                                      \
    X(group_set_req, GROUP_SET_REQ)                                            \
    X(clock_req, CLOCK_REQ)                                                    \
    X(clock_resp, CLOCK_RESP)                                                  \
    X(stream_read_req, STREAM_READ_REQ)                                        \
    X(stream_read_resp, STREAM_READ_RESP)                                      \
    X(stream_event, STREAM_EVENT)                                              \
    X(fetch_filtered_req, FETCH_FILTERED_REQ)                                  \
    X(fetch_shares, FETCH_SHARES)                                              \
    X(fetch_filtered_resp, FETCH_FILTERED_RESP)                                \
    X(filtered_record, FILTERED_RECORD)                                        \
    X(error, ERROR)

/* For each message: struct proto_<name>, and
 *   void proto_put_<name>(struct buf *b, const struct proto_<name> *m);
 *   int  proto_get_<name>(struct rd *r, struct proto_<name> *m);
 * proto_get_ returns 0 or TALLY_PROTO (truncated input, string too long or
 * holding a NUL). It does not require the reader to be exhausted: lists
 * follow some messages. Use proto_get_end() to check nothing is left. */
#define PROTO__DECLARE(name, SCHEMA)                                           \
    struct proto_##name {                                                      \
        PROTO_SCHEMA_##SCHEMA(PROTO__FIELD)                                    \
    };                                                                         \
    void proto_put_##name(struct buf *b, const struct proto_##name *m);        \
    int proto_get_##name(struct rd *r, struct proto_##name *m);
PROTO__MESSAGES(PROTO__DECLARE)
#undef PROTO__DECLARE

/* 0 if the reader consumed its input exactly, else TALLY_PROTO. */
int proto_get_end(struct rd *r);

/* Append a complete error response frame to @b. @message is cut to fit. */
void proto_put_error_frame(struct buf *b, uint16_t type, uint32_t request_id, int code,
                           const char *message, uint64_t leader_id, const char *leader_addr);
/* As proto_put_error_frame, with the actual value of a failed condition. */
void proto_put_condition_error_frame(struct buf *b, uint16_t type, uint32_t request_id,
                                     const char *message, uint64_t actual);

#endif
