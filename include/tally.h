/* tally.h - the public client API of tally, a small replicated log.
 *
 * libtally talks to a tally cluster over TCP (docs/protocol.md). A client
 * handle is given any subset of the cluster's nodes; it finds the leader for
 * writes by itself and follows it across failover with bounded retries.
 *
 * Conventions
 * - Every function that can fail returns 0 or a positive TALLY_* code.
 *   tally_errmsg() then gives a human-readable message for the last error on
 *   that handle (valid until the next call on the handle).
 * - A handle is not thread-safe: use one per thread.
 * - Ownership is stated per function: "copied" means the library keeps its
 *   own copy; "borrowed" means the pointer must stay valid for the stated
 *   time; "owned by the caller" means the caller frees it with the named
 *   function.
 */
#ifndef TALLY_H_
#define TALLY_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef TALLY_API
#define TALLY_API __attribute__((visibility("default")))
#endif

/* Error codes. Values are part of the wire protocol and must never change;
 * add new codes at the end. The third column says whether a client handle
 * stays usable after the error (it always does, unless noted). */
#define TALLY_ERRORS(X)                                                        \
    X(TALLY_NOMEM, 1, "out of memory")                                         \
    X(TALLY_INVAL, 2, "invalid argument")                                      \
    X(TALLY_IOERR, 3, "I/O error")                                             \
    X(TALLY_CORRUPT, 4, "data is corrupt")                                     \
    X(TALLY_NOTFOUND, 5, "not found")                                          \
    X(TALLY_EXISTS, 6, "already exists")                                       \
    X(TALLY_NOTLEADER, 7, "not the leader")                                    \
    X(TALLY_NOLEADER, 8, "no leader is known")                                 \
    X(TALLY_LEADERSHIP_LOST, 9, "leadership lost, outcome unknown")            \
    X(TALLY_TIMEOUT, 10, "timed out")                                          \
    X(TALLY_TOOLARGE, 11, "too large")                                         \
    X(TALLY_PROTO, 12, "malformed request")                                    \
    X(TALLY_VERSION, 13, "unsupported version")                                \
    X(TALLY_UNKNOWN_REQUEST, 14, "unknown request type")                       \
    X(TALLY_OUT_OF_RANGE, 15, "offset out of range")                           \
    X(TALLY_CONDITION_FAILED, 16, "condition failed")                          \
    X(TALLY_NOSPACE, 17, "no space left on device")                            \
    X(TALLY_SHUTDOWN, 18, "node is shutting down")                             \
    X(TALLY_CONNECT, 19, "cannot connect")                                     \
    X(TALLY_UNAVAILABLE, 20, "unavailable")                                    \
    X(TALLY_BUSY, 21, "busy, retry later")                                     \
    X(TALLY_EOF, 22, "end of data")                                            \
    X(TALLY_SEQUENCE, 23, "producer sequence out of order")                   \
    X(TALLY_DUPLICATE, 24, "duplicate of an earlier batch, already written")   \
    X(TALLY_AUTH, 25, "authentication required or failed")                    \
    X(TALLY_DENIED, 26, "not authorized")

enum {
    TALLY_OK = 0,
#define TALLY__ENUM(name, value, text) name = value,
    TALLY_ERRORS(TALLY__ENUM)
#undef TALLY__ENUM
};

/* Static description of an error code; never NULL. */
TALLY_API const char *tally_strerror(int code);

/* ------------------------------------------------------------------------
 * Client handle
 * ------------------------------------------------------------------------ */

typedef struct tally_client tally_client;

/* NULL arguments: every call that returns an int refuses a NULL handle or
 * a NULL output pointer (result, res, out, offset, found, topics, n, st,
 * index) with TALLY_INVAL before it sends or writes anything (the message,
 * when there is a handle, names the argument). The *_init, *_free and
 * *_destroy calls, and tally_set_linearizable, do nothing when given NULL;
 * tally_fetch_possibly_stale(NULL) is 0, tally_status_disagreement(NULL)
 * is "". */

/* Create a client for the nodes in @brokers, a comma-separated list of
 * IPv4 HOST:PORT client addresses (copied). No connection is made until the
 * first request. On success *out is owned by the caller: tally_client_destroy.
 * Returns TALLY_INVAL on a malformed list, TALLY_NOMEM. */
TALLY_API int tally_client_create(const char *brokers, tally_client **out);

TALLY_API void tally_client_destroy(tally_client *c);

/* Per-request timeout in milliseconds (default 10000). A produce that gets
 * no answer within it fails with TALLY_TIMEOUT: it may or may not have been
 * written. */
TALLY_API void tally_client_set_timeout(tally_client *c, int timeout_ms);

/* Speak TLS to the nodes (docs/security.md): @ca_file (PEM, required) is
 * the CA the nodes' certificates must chain to, and each node's
 * certificate must name the host or IP address it was reached at;
 * @cert_file and @key_file (PEM, both or neither; NULL = none) are this
 * client's certificate for mutual TLS. Paths are read now (not kept).
 * Applies to connections made after the call, producers included.
 * Returns 0, TALLY_INVAL with the reason in tally_errmsg() (a file that
 * does not load, a key that does not match), TALLY_NOMEM. */
TALLY_API int tally_client_set_tls(tally_client *c, const char *ca_file, const char *cert_file,
                                   const char *key_file);

/* Authenticate every connection as @user with SCRAM-SHA-256 (RFC 7677;
 * docs/security.md). Both strings are copied; the password stays in this
 * handle's memory (wiped by tally_client_destroy) and is never sent: the
 * exchange proves it. Applies to connections made after the call,
 * producers included. A node that refuses the login makes requests fail
 * with TALLY_AUTH. Returns 0 or TALLY_INVAL (empty or too long). */
TALLY_API int tally_client_set_auth(tally_client *c, const char *user, const char *password);

/* The SCRAM mechanism of the login: "SCRAM-SHA-256" (the default) or
 * "SCRAM-SHA-512". 0 or TALLY_INVAL. */
TALLY_API int tally_client_set_auth_mechanism(tally_client *c, const char *mechanism);

/* Add a user, or change its password (a write: committed through Raft).
 * The SCRAM-SHA-256 and -512 credentials (salted, iterated) are derived
 * here; the password never leaves the client. */
TALLY_API int tally_user_set(tally_client *c, const char *name, const char *password);
TALLY_API int tally_user_remove(tally_client *c, const char *name);
/* The users' names, sorted: *names (n entries) is the caller's, freed
 * with tally_user_list_free. */
TALLY_API int tally_user_list(tally_client *c, char ***names, size_t *n);
TALLY_API void tally_user_list_free(char **names, size_t n);

/* Access control (docs/security.md): a rule lets (allow = 1) or forbids
 * (allow = 0) @principal ("*": any authenticated principal) @operation on
 * a topic or group named @name (with prefix = 1: every name that starts
 * with @name; "*": every name) or on the cluster (@name ""). Enforced by
 * nodes with authorize = acl. The numbers are wire values. */
enum tally_acl_resource { TALLY_ACL_TOPIC = 1, TALLY_ACL_GROUP = 2, TALLY_ACL_CLUSTER = 3 };
enum tally_acl_operation {
    TALLY_ACL_READ = 1,
    TALLY_ACL_WRITE = 2,
    TALLY_ACL_CREATE = 3,
    TALLY_ACL_DELETE = 4,
    TALLY_ACL_ALTER = 5,
    TALLY_ACL_DESCRIBE = 6,
    TALLY_ACL_ALL = 7,
};
struct tally_acl {
    char principal[256];
    int resource;  /* enum tally_acl_resource */
    int prefix;    /* 1: @name is a prefix */
    char name[256];
    int operation; /* enum tally_acl_operation */
    int allow;     /* 1 allow, 0 deny */
};
/* Add or remove one rule (a write, through Raft; EXISTS / NOTFOUND). */
TALLY_API int tally_acl_add(tally_client *c, const struct tally_acl *acl);
TALLY_API int tally_acl_remove(tally_client *c, const struct tally_acl *acl);
/* Every rule, in the order added: *acls (n entries) is the caller's
 * (free()). */
TALLY_API int tally_acl_list(tally_client *c, struct tally_acl **acls, size_t *n);

/* Message of the last error on @c (owned by @c, valid until the next call). */
TALLY_API const char *tally_errmsg(tally_client *c);

/* After a write (produce, topic, member or group change) failed with
 * TALLY_TIMEOUT or TALLY_LEADERSHIP_LOST: 1 if its outcome is unknown,
 * because the request reached a node that may have carried it out before
 * the failure (no answer in time, the connection failed after the whole
 * request was sent, or the leader lost its majority after appending it):
 * it may or may not have been written, and tally_errmsg() says so. 0 if it
 * certainly was not written (no node took it). Read it right after the
 * call that failed: every call that sends a request sets it again.
 * tally_produce already resent the batch, under the same producer id and
 * sequence, until its timeout; after an unknown outcome the handle starts
 * a new producer id, so sending the records again may write them twice:
 * read the topic to find out. NULL: 0. */
TALLY_API int tally_outcome_unknown(tally_client *c);

/* ------------------------------------------------------------------------
 * Topics
 * ------------------------------------------------------------------------ */

enum tally_policy {
    TALLY_POLICY_RETAIN = 0,  /* keep everything (default) */
    TALLY_POLICY_DELETE = 1,  /* delete sealed segments by age and size */
    TALLY_POLICY_COMPACT = 2, /* keep the latest record of each key */
    TALLY_POLICY_COMPACT_DELETE = 3,
};

struct tally_topic_config {
    int policy;              /* enum tally_policy */
    int64_t retention_ms;    /* -1: unlimited */
    int64_t retention_bytes; /* -1: unlimited */
    int64_t segment_bytes;   /* 0: server default */
};

/* Defaults: retain, unlimited retention, server-default segment size. */
TALLY_API void tally_topic_config_init(struct tally_topic_config *cfg);

/* Create topic @name (copied). TALLY_EXISTS if it already exists. */
TALLY_API int tally_topic_create(tally_client *c, const char *name,
                                 const struct tally_topic_config *cfg);

TALLY_API int tally_topic_delete(tally_client *c, const char *name);

/* Change topic @name's settings that @set names (TALLY_SET_* bits) to
 * @cfg's values; the others stay. The segment size is fixed at creation.
 * Retention and compaction act on the new settings at their next pass.
 * TALLY_NOTFOUND if there is no such topic, TALLY_INVAL for a value out of
 * range or an empty @set. */
#define TALLY_SET_POLICY 1u
#define TALLY_SET_RETENTION_MS 2u
#define TALLY_SET_RETENTION_BYTES 4u
TALLY_API int tally_topic_alter(tally_client *c, const char *name, unsigned set,
                                const struct tally_topic_config *cfg);

struct tally_topic_info {
    char name[256];
    struct tally_topic_config config;
    uint64_t start_offset; /* first offset still stored */
    uint64_t next_offset;  /* offset the next record will get */
};

/* List topics as seen by the node answering. On success *topics is owned by
 * the caller (free()), *n is its length. */
TALLY_API int tally_topic_list(tally_client *c, struct tally_topic_info **topics,
                               size_t *n);

/* ------------------------------------------------------------------------
 * Producing
 * ------------------------------------------------------------------------ */

/* One record to produce. All pointers are borrowed for the duration of the
 * call. key == NULL: no key. value == NULL: a tombstone (delete marker for
 * the key). */
struct tally_record_in {
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
};

struct tally_produce_result {
    uint64_t base_offset; /* offset of the first record */
    uint32_t count;       /* records written; offsets are consecutive */
    uint64_t raft_index;  /* write token: pass as min_index to read it back */
};

/* Produce @n records to @topic as one batch (applied atomically, consecutive
 * offsets). Sent to the leader, found and followed automatically. Retries
 * only when the batch was certainly not written (not leader, cannot
 * connect). TALLY_LEADERSHIP_LOST and TALLY_TIMEOUT mean the outcome is
 * unknown. */
TALLY_API int tally_produce(tally_client *c, const char *topic,
                            const struct tally_record_in *records, size_t n,
                            struct tally_produce_result *result);

/* Conditional append (optimistic concurrency). A produce with options is
 * applied only if every condition holds when the leader applies it, which
 * makes the check linearizable; otherwise nothing of the batch is written
 * and the call returns TALLY_CONDITION_FAILED, with the actual value in
 * tally_condition_actual(). */
#define TALLY_NO_EXPECT UINT64_MAX

/* The key must have had exactly @expect_version records so far (records
 * with that key, tombstones included; 0: the key must not exist yet). The
 * key is borrowed for the call. */
struct tally_condition {
    const void *key;
    size_t key_len;
    uint64_t expect_version;
};

struct tally_produce_options {
    uint64_t expect_offset;                 /* topic's next offset must be this */
    const struct tally_condition *conditions; /* borrowed for the call */
    size_t n_conditions;                    /* at most 1024 */
};

/* No conditions: expect_offset = TALLY_NO_EXPECT, no key conditions. */
TALLY_API void tally_produce_options_init(struct tally_produce_options *o);

/* tally_produce with conditions (@opts may be NULL: none). */
TALLY_API int tally_produce_ex(tally_client *c, const char *topic,
                               const struct tally_record_in *records, size_t n,
                               const struct tally_produce_options *opts,
                               struct tally_produce_result *result);

/* After TALLY_CONDITION_FAILED: the actual value of the condition that
 * failed (the topic's next offset, or the key's version). */
TALLY_API uint64_t tally_condition_actual(tally_client *c);

/* ------------------------------------------------------------------------
 * Asynchronous producer (client-side batching, pipelining)
 * ------------------------------------------------------------------------
 *
 * A producer gathers records sent one at a time into one batch per topic,
 * like a Kafka producer, and keeps several PRODUCE requests in flight on
 * one connection to the leader. Each record gets exactly one
 * acknowledgement callback: its offset, or an error. Records of one topic
 * are written in the order they were sent, each exactly once, also when
 * the leader changes or dies (idempotent producer id and sequences, as
 * tally_produce; see src/client/producer.c for the retry rules). The
 * records that share a batch are written, or fail, together.
 *
 * Nothing runs in the background: sends, answers, retries and callbacks
 * happen inside tally_producer_send, tally_producer_poll and
 * tally_producer_flush, on the calling thread. Call poll (or flush) to
 * make progress when not sending. A producer and its client handle must
 * be used from one thread; callbacks must not call producer functions. */

typedef struct tally_producer tally_producer;

struct tally_producer_options {
    size_t batch_bytes; /* a batch is sent when it reaches this size (64 KiB;
                           the node refuses batches over its max_batch_bytes,
                           1 MiB by default) */
    int linger_ms;      /* ... or when its first record is this old (0) and a
                           request slot is free; while all slots are busy,
                           records keep filling the open batch */
    int max_inflight;   /* PRODUCE requests pipelined on the connection (8, at
                           most 1024) */
    int compress;       /* 1: lz4-compress each batch's records section when
                           that makes it smaller (0) */
    int timeout_ms;     /* a record not acknowledged this long after its batch
                           started fails with TALLY_TIMEOUT (30000) */
};

/* The defaults given above. */
TALLY_API void tally_producer_options_init(struct tally_producer_options *o);

/* The outcome of one record, passed to its callback. */
struct tally_ack {
    int code;            /* 0: written; else a TALLY_* code */
    uint64_t offset;     /* the record's offset when code == 0 */
    uint64_t raft_index; /* write token of its batch (tally_fetch min_index) */
    const char *errmsg;  /* when code != 0; valid during the callback only */
    uint32_t batch_index; /* the record's place in its batch (0: first); the
                             records of a batch are reported together, in
                             order, one callback after the other */
};

typedef void (*tally_ack_fn)(void *arg, const struct tally_ack *ack);

/* Create a producer that finds the leader through @c (borrowed: it must
 * outlive the producer). @opts may be NULL for the defaults. On success
 * *out is owned by the caller: tally_producer_destroy. TALLY_INVAL for
 * options out of range, TALLY_NOMEM. */
TALLY_API int tally_producer_create(tally_client *c, const struct tally_producer_options *opts,
                                    tally_producer **out);

/* Queue one record for @topic (the record is copied). Returns 0: @fn will
 * be called exactly once with @arg and the outcome (possibly during this
 * call). Otherwise (TALLY_INVAL, TALLY_TOOLARGE, TALLY_NOMEM, message in
 * tally_producer_errmsg) the record was not queued and @fn is not called.
 * Blocks while max_inflight sealed batches wait to be sent (back-pressure)
 * and while the leader is being found. */
TALLY_API int tally_producer_send(tally_producer *p, const char *topic,
                                  const struct tally_record_in *rec, tally_ack_fn fn, void *arg);

/* Send what is due and deliver the acknowledgements that arrived, waiting
 * up to @timeout_ms for some. Returns the number of callbacks run. */
TALLY_API int tally_producer_poll(tally_producer *p, int timeout_ms);

/* Send every record queued so far and wait until each is acknowledged or
 * has failed. Returns 0 if no record failed since the previous flush,
 * else the code of the first that did (message in tally_producer_errmsg). */
TALLY_API int tally_producer_flush(tally_producer *p);

/* Message of the first failure reported by the last flush or send. */
TALLY_API const char *tally_producer_errmsg(tally_producer *p);

/* Flush, then free the producer. */
TALLY_API void tally_producer_destroy(tally_producer *p);

/* ------------------------------------------------------------------------
 * Fetching
 * ------------------------------------------------------------------------ */

/* One record read back. Pointers are borrowed from the tally_fetch_result
 * that holds it. key == NULL: no key; value == NULL: tombstone. */
struct tally_record {
    uint64_t offset;
    int64_t timestamp_ms;
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
};

struct tally_fetch_result {
    struct tally_record *records; /* owned by the result */
    size_t n;
    uint64_t next_offset;    /* where the next fetch should start */
    uint64_t high_offset;    /* topic's next offset on the answering node */
    uint64_t start_offset;   /* first offset still stored there */
    uint64_t applied_index;  /* answering node's applied Raft index */
    void *impl;              /* private: the raw batches */
};

/* 1 if the node that answered @res knew no leader, so the answer may miss
 * acknowledged writes (never for a linearizable fetch, which fails then);
 * 0 otherwise. (An accessor, not a field, so that the struct keeps its
 * size for programs built against an older tally.h.) */
TALLY_API int tally_fetch_possibly_stale(const struct tally_fetch_result *res);

struct tally_fetch_options {
    uint32_t max_bytes;  /* soft limit; at least one batch is returned */
    uint32_t max_wait_ms; /* long-poll: wait this long for new data */
    uint64_t min_index;  /* wait until the node has applied this index */
    const char *node;    /* "HOST:PORT" to read from (borrowed), NULL = any */
};

/* Linearizable reads on @c (@on 1) or not (0, the default): each
 * tally_fetch first has the leader confirm (tally_read_index) and reads at
 * that index, so its answer includes every write acknowledged before the
 * call, or the fetch fails (no leader, no quorum). */
TALLY_API void tally_set_linearizable(tally_client *c, int on);

/* The leader confirms it still leads (a Raft barrier) and gives its
 * applied index in *index: every write acknowledged before this call is at
 * or below it. Fetching with min_index = *index (from any node) is a
 * linearizable read. Fails (TALLY_TIMEOUT, TALLY_UNAVAILABLE...) when no
 * leader can confirm, e.g. in a minority partition. */
TALLY_API int tally_read_index(tally_client *c, uint64_t *index);

TALLY_API void tally_fetch_options_init(struct tally_fetch_options *o);

/* Fetch records of @topic from @offset. Each batch's checksum is verified
 * end to end (TALLY_CORRUPT otherwise). An empty result after max_wait_ms
 * is success with n == 0; offsets that compaction emptied are passed over
 * (more requests inside this call), so n == 0 means no record at or after
 * @offset arrived within max_wait_ms. Offsets may have gaps: continue from
 * res->next_offset. TALLY_OUT_OF_RANGE if @offset is below the start
 * or past the end. On success, release @res with tally_fetch_result_free.
 * Read-ahead: when the answer leaves more records on the node, the fetch
 * that continues it (same topic and options, from res->next_offset) is
 * sent at once, and the next tally_fetch asking exactly that takes its
 * answer; any other request to that node first reads and drops it. */
TALLY_API int tally_fetch(tally_client *c, const char *topic, uint64_t offset,
                          const struct tally_fetch_options *opts,
                          struct tally_fetch_result *res);

TALLY_API void tally_fetch_result_free(struct tally_fetch_result *res);

/* First offset of @topic whose batch holds a record with a timestamp at or
 * after @timestamp_ms (the topic's next offset if none): start a fetch
 * there and skip records older than @timestamp_ms. Any node answers. */
TALLY_API int tally_offset_for_time(tally_client *c, const char *topic, int64_t timestamp_ms,
                                    uint64_t *offset);

/* ------------------------------------------------------------------------
 * Durable consumer positions ("groups")
 * ------------------------------------------------------------------------ */

/* Commit @offset (the next offset to read) as the position of consumer
 * group @group on @topic as it is when the leader receives the call (see
 * tally_group_commit_at). Goes through Raft (leader), so it survives
 * failover and restarts; any node then answers tally_group_fetch.
 * TALLY_OUT_OF_RANGE past the topic's next offset. */
TALLY_API int tally_group_commit(tally_client *c, const char *group, const char *topic,
                                 uint64_t offset);

/* The committed position of @group on @topic: *found = 0 if there is none
 * (then *offset = 0). */
TALLY_API int tally_group_fetch(tally_client *c, const char *group, const char *topic,
                                uint64_t *offset, int *found);

/* A group's position on one topic. A position belongs to one incarnation
 * of its topic, named by @topic_id (the Raft index of the topic's
 * creation): deleting a topic deletes the positions on it, so a topic
 * created again under the same name starts every group afresh. */
struct tally_group_position {
    char group[256];
    char topic[256];
    uint64_t topic_id;
    uint64_t offset;       /* the next offset the group reads */
    uint64_t start_offset; /* the topic's first offset still stored: a */
                           /* position below it lost records to retention */
    uint64_t next_offset;  /* the topic's next offset: lag = next - offset */
};

/* The positions of @group (NULL: every group) on @topic (NULL: every
 * topic), in first-commit order, read on the leader. On success
 * *positions is owned by the caller (free()), *n its length (0 and a
 * non-NULL pointer when there are none). */
TALLY_API int tally_group_list(tally_client *c, const char *group, const char *topic,
                               struct tally_group_position **positions, size_t *n);

/* Any incarnation: the topic as it is when the leader receives the call. */
#define TALLY_ANY_TOPIC_ID UINT64_MAX

/* As tally_group_commit, bound to the incarnation @topic_id (from
 * tally_group_list): TALLY_NOTFOUND if the topic was deleted (and maybe
 * created again) since. Every commit is TALLY_OUT_OF_RANGE past the
 * topic's next offset. */
TALLY_API int tally_group_commit_at(tally_client *c, const char *group, const char *topic,
                                    uint64_t topic_id, uint64_t offset);

enum tally_group_reset_to {
    TALLY_RESET_EARLIEST = 0, /* the topic's first stored offset */
    TALLY_RESET_LATEST = 1,   /* the topic's next offset: skip what is there */
    TALLY_RESET_OFFSET = 2,   /* @value, at most the next offset */
    TALLY_RESET_TIME = 3,     /* the first record at or after @value ms */
};

/* Move @group's position on @topic (created if it had none) to @to; on
 * success *offset (may be NULL) is the new position. */
TALLY_API int tally_group_reset(tally_client *c, const char *group, const char *topic,
                                enum tally_group_reset_to to, int64_t value, uint64_t *offset);

/* Forget @group's position on @topic (NULL: on every topic): the group's
 * next read starts where a new group's would. TALLY_NOTFOUND if it has no
 * such position. */
TALLY_API int tally_group_delete(tally_client *c, const char *group, const char *topic);

/* ------------------------------------------------------------------------
 * Shared consumer groups (docs/groups.md)
 *
 * Members of a shared group split a topic between them: the topic is cut
 * into shares (a record's share comes from its key, so one key's records
 * are all in one share; keyless records are spread by offset), each share
 * is held by one member at a time, and each share has its own committed
 * position. A member reads only its shares' records, in offset order;
 * when members come or go (or one stops heartbeating for its session
 * timeout) the shares are dealt again, and a share's new holder starts
 * from the position its last holder committed: at-least-once, never a
 * skip. One member alone reads the whole topic, with the same positions a
 * plain group position (tally_group_commit) has. A group is coordinated
 * per topic: one group name may be read on several topics at once.
 * ------------------------------------------------------------------------ */

typedef struct tally_group_member tally_group_member;

struct tally_group_options {
    unsigned shares;         /* 1..256, the same for every member; 0: 16 */
    uint32_t session_ms;     /* without a heartbeat for this long a member is
                              * out, and stops by itself; 0: 10000 */
    uint32_t commit_ms;      /* commit what was processed at least this
                              * often; 0: 1000 */
    const char *filter;      /* key filter as tally_fetch_filtered (NULL:
                              * every record), the same for every member */
    uint32_t max_bytes;      /* per poll, soft; 0: 1 MiB */
};

TALLY_API void tally_group_options_init(struct tally_group_options *o);

/* Join @group on @topic as a new member (blocking until the group's next
 * generation starts: up to the session timeout when other members must
 * rejoin first). A group with no position on @topic starts at the
 * topic's first stored offset. TALLY_INVAL if the group has live members
 * reading another topic, share count or filter, or is a Kafka consumer
 * group with live members (the message says which). Free with
 * tally_group_leave (or tally_group_member_free, which does not leave). */
TALLY_API int tally_group_join(tally_client *c, const char *group, const char *topic,
                               const struct tally_group_options *o, tally_group_member **out);

/* The member's next records: those of its shares past their committed
 * positions, in offset order, waiting up to @max_wait_ms for some. The
 * records of the previous poll count as processed once this is called
 * (commit what was processed: at most every commit_ms here, and always
 * before the shares are dealt again). res->next_offset is where the
 * member's read goes on, res->high_offset the topic's end. Heartbeats, rejoins after a
 * rebalance or a leader change, and commits happen inside; a member that
 * could not heartbeat for its session timeout returns no record until it
 * has joined again. n == 0 is not an error. Release @res with
 * tally_fetch_result_free. */
TALLY_API int tally_group_poll(tally_group_member *m, uint32_t max_wait_ms,
                               struct tally_fetch_result *res);

/* Commit, now, that the member processed the records polls returned
 * below @upto (UINT64_MAX: every record returned so far). */
TALLY_API int tally_group_member_commit(tally_group_member *m, uint64_t upto);

/* The member's shares now (its generation's), into @shares (room for
 * @cap); returns how many, and the generation in *generation (may be NULL). */
TALLY_API unsigned tally_group_member_shares(const tally_group_member *m, uint16_t *shares,
                                             unsigned cap, uint32_t *generation);

/* Leave the group (the others take the member's shares at once) and free
 * @m. Nothing more is committed: commit first what was processed. */
TALLY_API int tally_group_leave(tally_group_member *m);

/* Free @m without leaving (as a crash would: its shares move on after its
 * session timeout). NULL: no-op. */
TALLY_API void tally_group_member_free(tally_group_member *m);

/* A live member of a shared group, as the leader sees it. */
struct tally_group_member_info {
    char member_id[256];
    char host[64];
    unsigned n_shares;          /* shares it holds */
    uint16_t shares[256];
    uint64_t positions[256];    /* each one's committed position */
};

struct tally_group_members {
    char state[32];        /* Empty, PreparingRebalance, Stable, ... */
    char kind[32];         /* "tally", or a Kafka group's protocol type */
    char topic[256];       /* what a tally group reads ("" otherwise) */
    uint32_t generation;
    unsigned n_shares;     /* the group's share count (0: not a tally group) */
    size_t n;
    struct tally_group_member_info *members;
};

/* The live members of shared group @group on @topic (NULL: the members
 * of the Kafka consumer group @group), from the leader. Free with
 * tally_group_members_free. */
TALLY_API int tally_group_members_get(tally_client *c, const char *group, const char *topic,
                                      struct tally_group_members *out);
TALLY_API void tally_group_members_free(struct tally_group_members *m);

/* ------------------------------------------------------------------------
 * Cluster
 * ------------------------------------------------------------------------ */

enum tally_role {
    TALLY_ROLE_UNKNOWN = 0,
    TALLY_ROLE_FOLLOWER = 1,
    TALLY_ROLE_CANDIDATE = 2,
    TALLY_ROLE_LEADER = 3,
    TALLY_ROLE_UNAVAILABLE = 4,
};

struct tally_member {
    uint64_t id;
    char client_addr[64];
    char raft_addr[64];
    int voter;           /* 1 if a voting member */
    int reachable;       /* 1 if its own status answered */
    int role;            /* enum tally_role, as the member itself reports */
    uint64_t applied_index;
    uint64_t term;
    uint64_t commit_index;
    int spare;           /* 1: not even sent the log (an add cut short: add it again) */
    int clock_known;     /* 1: clock_offset_ms holds the member's own measurement */
    int64_t clock_offset_ms; /* its wall clock minus the leader's (0 on the leader) */
    int clock_warning;   /* 1: beyond its clock_warn_ms setting */
};

struct tally_status {
    uint64_t leader_id;     /* 0 when no leader is known */
    uint64_t term;
    uint64_t commit_index;
    struct tally_member *members; /* owned by the status */
    size_t n_members;
};

/* Ask every known member for its own view and combine them. Succeeds when
 * at least one member answered. @members is the configuration as the most
 * recent answer (highest term, knowing a leader) reports it; a node that
 * answers but is not in it (a removed node still running) is not listed.
 * Release with tally_status_free. */
TALLY_API int tally_status_get(tally_client *c, struct tally_status *st);
TALLY_API void tally_status_free(struct tally_status *st);
/* After tally_status_get: "" when the members that answered agree on the
 * membership, else the first difference (a member's Raft address differs
 * between their configurations), as "node 1 has node 2 at A, node 3 has it
 * at B". Valid until the next call on @c. */
TALLY_API const char *tally_status_disagreement(tally_client *c);

/* Membership changes, sent to the leader. @addr is
 * "CLIENT_HOST:PORT/RAFT_HOST:PORT" (borrowed for the call).
 *
 * tally_member_add adds node @id as a standby: it is sent the log (and,
 * when the leader's log no longer reaches back far enough, a snapshot,
 * after which it fetches the history before it from a peer) but does not
 * vote. Wait with tally_member_catchup until it holds everything, then
 * make it a voter with tally_member_promote (`tally member add` does all
 * three). Promoting earlier would count a node without the history
 * towards a majority. */
TALLY_API int tally_member_add(tally_client *c, uint64_t id, const char *addr);
TALLY_API int tally_member_remove(tally_client *c, uint64_t id);
/* Transfer leadership to @id (0 = any up-to-date voter). */
TALLY_API int tally_member_transfer(tally_client *c, uint64_t id);
/* Make member @id a voter (Raft first catches it up on the log; nothing
 * happens if it is a voter already). */
TALLY_API int tally_member_promote(tally_client *c, uint64_t id);
/* Member @id lost its data directory (its tallyd came back on a new one,
 * which the others refuse): take it out of the configuration and forget
 * its recorded directory. Then add it again as a new node:
 * tally_member_add, tally_member_catchup, tally_member_promote (`tally
 * member replace` does all of it). */
TALLY_API int tally_member_replace(tally_client *c, uint64_t id);

/* How far member @id has caught up: filled by tally_member_catchup. */
struct tally_catchup {
    int caught_up;          /* 1: applied min_index and holds every topic's history */
    int voter;              /* 1 if it votes already */
    int spare;              /* 1 if it is not even sent the log (add it again) */
    int reachable;          /* 1 if it answered */
    uint64_t applied_index; /* its applied Raft index */
    uint64_t min_index;     /* the index it must have applied */
    size_t topics_missing;  /* topics whose history it still lacks (backfill) */
    char missing_topic[256]; /* the first of them */
    char addr[132];         /* its CLIENT_HOST:PORT/RAFT_HOST:PORT */
};

/* Ask member @id (directly, at its client address) how far it has caught
 * up: it must have applied @min_index (0: the commit index now) and hold
 * the history of every topic it lists, from the start it reports (where
 * the history it still lacks begins). Returns 0 with out->caught_up set,
 * or an error (TALLY_NOTFOUND: not a member). */
TALLY_API int tally_member_catchup(tally_client *c, uint64_t id, uint64_t min_index,
                                   struct tally_catchup *out);

/* ------------------------------------------------------------------------
 * Streams (event sourcing): one key's records by stream version
 * ------------------------------------------------------------------------ */

/* A key's records form its stream. The stream version of a record is the
 * key's version after it was written, the number tally_produce_ex's
 * expect_version compares: the key's first record is version 1, and a
 * version counts every record ever written with the key, tombstones
 * included, so it survives compaction and retention. Reads go through
 * each node's stream index: their cost is the records returned, not the
 * topic's size. */

/* One record of a stream. Pointers are borrowed from the result. */
struct tally_stream_event {
    uint64_t version;
    uint64_t offset;
    int64_t timestamp_ms;
    const void *value;       /* NULL: a tombstone */
    size_t value_len;
};

struct tally_stream_result {
    struct tally_stream_event *events; /* owned by the result */
    size_t n;
    uint64_t version;        /* the stream's version on the answering node */
    uint64_t first_version;  /* the oldest version still stored (compaction
                              * and retention remove the oldest ones);
                              * version + 1 when none is */
    uint64_t next_version;   /* forward: the version to read next; backward:
                              * the version below the last one returned, 0
                              * once the start was reached */
    uint64_t applied_index;  /* answering node's applied Raft index */
    void *impl;              /* private: the response */
};

struct tally_stream_options {
    uint64_t from_version;   /* forward: first version (0 = 1); backward:
                              * last version (0 = the stream's end) */
    int backward;            /* 1: newest first */
    uint32_t max_events;     /* 1..65536; default 1000 */
    uint32_t max_bytes;      /* soft limit of values; at least one record */
    uint32_t max_wait_ms;    /* forward only: at the stream's end, wait this
                              * long for its next record (long-poll) */
    uint64_t min_index;      /* read-your-writes: wait until the node has
                              * applied this index (a produce's raft index) */
    const char *node;        /* "HOST:PORT" to read from (borrowed), NULL = any */
};

TALLY_API void tally_stream_options_init(struct tally_stream_options *o);

/* Read the stream of @key (@key_len bytes, 1..4096) of @topic: up to
 * max_events records from from_version on (or backward), through any
 * node, with tally_fetch's read-your-writes (min_index) and linearizable
 * (tally_set_linearizable) rules. Continue from res->next_version. Errors
 * (the handle stays usable after each):
 *   TALLY_NOTFOUND      no such topic, or no record ever had @key (a
 *                       long-poll on such a key waits instead);
 *   TALLY_OUT_OF_RANGE  from_version beyond the stream's end (forward:
 *                       more than version + 1; backward: more than version);
 *   TALLY_INVAL         bad arguments (NULL, empty or too long key, a
 *                       backward read that waits, max_events too large);
 *   TALLY_TIMEOUT, TALLY_CONNECT, TALLY_UNAVAILABLE as tally_fetch.
 * On success release @res with tally_stream_result_free. */
TALLY_API int tally_stream_read(tally_client *c, const char *topic, const void *key,
                                size_t key_len, const struct tally_stream_options *opts,
                                struct tally_stream_result *res);
TALLY_API void tally_stream_result_free(struct tally_stream_result *res);

/* Per-stream lifecycle. A stream's metadata is the latest record of the
 * key "$$" + KEY in the same topic (a metadata stream, as in EventStoreDB),
 * whose value is "truncate-before=V;max-count=N;max-age-ms=MS" (the pairs
 * set). Stream reads (tally_stream_read, `tally consume -k`) then hide
 * the versions below V, all but the last N versions, and the records
 * older than MS against the answering node's clock; res->first_version
 * says where the visible stream starts. Versions keep counting (the next
 * record of a stream truncated before 10 at version 12 is version 13).
 * Hidden records stay in the log, where a fetch by offset still finds them,
 * until retention or compaction removes them. Deleting a stream is a
 * tombstone (tally_produce with value NULL): stream reads return it as the
 * stream's last record (value NULL). */
struct tally_stream_meta {
    uint64_t truncate_before; /* 0: none */
    uint64_t max_count;       /* 0: none */
    uint64_t max_age_ms;      /* 0: none; at most 2^53 */
};

/* Write @meta (copied) as the metadata of stream @key (1..4094 bytes) of
 * @topic, replacing what it had; @meta NULL clears it (a tombstone on
 * the metadata stream). Sent as a produce (idempotent, to the leader):
 * @result (may be NULL) says where it went, and its raft_index is the
 * read-your-writes token. TALLY_INVAL for bad arguments; else as
 * tally_produce. */
TALLY_API int tally_stream_set_meta(tally_client *c, const char *topic, const void *key,
                                    size_t key_len, const struct tally_stream_meta *meta,
                                    struct tally_produce_result *result);

/* Category subscriptions: tally_fetch with a key filter applied by the
 * node, which scans the topic from @offset and sends only the records
 * whose key matches @filter (a NUL-terminated pattern of 1..256 bytes):
 * `*` any run of bytes, `?` any one byte, `\` takes the next byte as it
 * is, anything else matches itself; at most 8 `*`. So "order-123" is one
 * key, "order-*" a category (prefix), "order-*-eu" a small glob. Records
 * without a key never match. Continue from res->next_offset, which moves
 * past the records that did not match (commit it as a group's position to
 * skip them for good); res->n may be 0 with next_offset moved on when a
 * stretch of the topic held no match (the call goes on by itself up to
 * the end or max_wait_ms, as tally_fetch does over compacted gaps).
 * TALLY_INVAL for a malformed or too long filter (the message says why);
 * otherwise as tally_fetch. Release @res with tally_fetch_result_free. */
TALLY_API int tally_fetch_filtered(tally_client *c, const char *topic, uint64_t offset,
                                   const char *filter, const struct tally_fetch_options *opts,
                                   struct tally_fetch_result *res);

#ifdef __cplusplus
}
#endif

#endif /* TALLY_H_ */
