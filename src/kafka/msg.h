/* Kafka request and response codec: the request header, the table of
 * APIs and versions tally speaks, request decoders and response encoders,
 * written from Kafka's message schemas (apache/kafka
 * clients/src/main/resources/common/message/<Name>Request.json and
 * <Name>Response.json). Only the versions in kafka_apis[] are decoded.
 *
 * FRAME: int32 size (bytes after it), then the request header, then the
 * body. REQUEST HEADER v1: int16 api_key, int16 api_version, int32
 * correlation_id, NULLABLE_STRING client_id; v2 (the API's flexible
 * versions) adds a tagged-field section. RESPONSE HEADER v0: int32
 * correlation_id; v1 (flexible versions, except ApiVersions, whose response
 * header is always v0 so that a client can read it whatever it asked)
 * adds a tagged-field section.
 *
 * Decoded requests borrow strings and record bytes from the frame and
 * allocate their arrays from a kafka_arena, freed all at once. The request
 * structs also carry each partition's answer, filled by the server, which
 * the response encoder reads. */
#ifndef TALLY_KAFKA_MSG_H_
#define TALLY_KAFKA_MSG_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafka/wire.h"
#include "lib/byte.h"

enum kafka_api_key {
    KAFKA_PRODUCE = 0,
    KAFKA_FETCH = 1,
    KAFKA_LIST_OFFSETS = 2,
    KAFKA_METADATA = 3,
    KAFKA_OFFSET_COMMIT = 8,
    KAFKA_OFFSET_FETCH = 9,
    KAFKA_FIND_COORDINATOR = 10,
    KAFKA_JOIN_GROUP = 11,
    KAFKA_HEARTBEAT = 12,
    KAFKA_LEAVE_GROUP = 13,
    KAFKA_SYNC_GROUP = 14,
    KAFKA_DESCRIBE_GROUPS = 15,
    KAFKA_LIST_GROUPS = 16,
    KAFKA_SASL_HANDSHAKE = 17,
    KAFKA_API_VERSIONS = 18,
    KAFKA_CREATE_TOPICS = 19,
    KAFKA_DELETE_TOPICS = 20,
    KAFKA_INIT_PRODUCER_ID = 22,
    KAFKA_DESCRIBE_CONFIGS = 32,
    KAFKA_ALTER_CONFIGS = 33,
    KAFKA_INCREMENTAL_ALTER_CONFIGS = 44,
    KAFKA_SASL_AUTHENTICATE = 36,
};

struct kafka_api {
    int16_t key;
    int16_t min_version, max_version; /* what ApiVersions advertises */
    int16_t min_accepted;             /* lowest version decoded (Produce: 3) */
    int16_t flex_from;                /* first flexible version (INT16_MAX: none here) */
    const char *name;
};

extern const struct kafka_api kafka_apis[];
extern const size_t kafka_n_apis;

/* The table entry of @key, or NULL. */
const struct kafka_api *kafka_api_find(int16_t key);

/* A bump allocator: every array of a decoded request comes from it. */
struct kafka_arena {
    struct kafka__chunk *chunks;
    bool oom;
};
void kafka_arena_init(struct kafka_arena *a);
void *kafka_arena_alloc(struct kafka_arena *a, size_t n); /* zeroed; NULL on OOM */
void kafka_arena_free(struct kafka_arena *a);

struct kafka_req_header {
    int16_t api_key;
    int16_t api_version;
    int32_t correlation_id;
    struct kafka_str client_id;
    bool flex;                 /* this api_version is a flexible one */
};

/* Decode the request header. Returns 0; -1 if the frame is too short for
 * key, version and correlation id (nothing can be answered: close); 1 if
 * the API or version is not one of kafka_apis[] (answer it with
 * UNSUPPORTED_VERSION where the API allows, else close), with the fixed
 * fields filled. */
int kafka_decode_header(struct kafka_rd *r, struct kafka_req_header *h);

/* Start a response frame: int32 size (patched by kafka_end_response),
 * correlation id, and the tagged fields of a flexible response header.
 * Returns the frame's start in @b. */
size_t kafka_begin_response(struct buf *b, const struct kafka_req_header *h);
void kafka_end_response(struct buf *b, size_t start);

/* ---- ApiVersions (v0-v3) ---- */
/* The whole response body; @error UNSUPPORTED_VERSION answers a version
 * this build does not know (then always in v0's layout). */
void kafka_encode_api_versions(struct buf *b, int16_t version, int16_t error);

/* ---- Metadata (v1-v9) ---- */
struct kafka_metadata_req {
    int32_t n_topics;          /* -1: every topic */
    struct kafka_str *topics;
    bool allow_auto_create;    /* v4+; true before */
};
int kafka_decode_metadata(struct kafka_rd *r, const struct kafka_req_header *h,
                          struct kafka_arena *a, struct kafka_metadata_req *m);

struct kafka_broker {
    int32_t node_id;
    char host[64];
    int32_t port;
};
struct kafka_md_topic {
    int16_t error;             /* topic-level error */
    const char *name;          /* borrowed */
    size_t name_len;
    int16_t partition_error;   /* partition 0's error */
    int32_t leader;            /* -1: none */
    int32_t n_replicas;
    const int32_t *replicas;   /* replica and ISR list (borrowed) */
    bool has_partition;        /* false: the topic has no partition listed */
};
struct kafka_metadata_resp {
    int32_t n_brokers;
    const struct kafka_broker *brokers;
    const char *cluster_id;
    int32_t controller_id;
    int32_t n_topics;
    const struct kafka_md_topic *topics;
};
void kafka_encode_metadata(struct buf *b, const struct kafka_req_header *h,
                           const struct kafka_metadata_resp *m);

/* ---- Produce (v3-v8) ---- */
struct kafka_produce_part {
    int32_t index;
    struct kafka_str records;
    /* the answer */
    int16_t error;
    int64_t base_offset;
    int64_t log_start_offset;
    char *error_message;       /* NULL, or arena-allocated */
};
struct kafka_produce_topic {
    struct kafka_str name;
    int32_t n_parts;
    struct kafka_produce_part *parts;
};
struct kafka_produce_req {
    struct kafka_str transactional_id;
    int16_t acks;
    int32_t timeout_ms;
    int32_t n_topics;
    struct kafka_produce_topic *topics;
};
int kafka_decode_produce(struct kafka_rd *r, const struct kafka_req_header *h,
                         struct kafka_arena *a, struct kafka_produce_req *m);
void kafka_encode_produce(struct buf *b, const struct kafka_req_header *h,
                          const struct kafka_produce_req *m);

/* ---- Fetch (v4-v11) ---- */
struct kafka_fetch_part {
    int32_t index;
    int64_t fetch_offset;
    int32_t max_bytes;
    /* the answer */
    int16_t error;
    int64_t high_watermark;
    int64_t log_start_offset;
    struct buf records;        /* Kafka batches (owned; freed by the caller) */
};
struct kafka_fetch_topic {
    struct kafka_str name;
    int32_t n_parts;
    struct kafka_fetch_part *parts;
};
struct kafka_fetch_req {
    int32_t replica_id;
    int32_t max_wait_ms;
    int32_t min_bytes;
    int32_t max_bytes;
    int8_t isolation_level;
    int32_t n_topics;
    struct kafka_fetch_topic *topics;
};
int kafka_decode_fetch(struct kafka_rd *r, const struct kafka_req_header *h,
                       struct kafka_arena *a, struct kafka_fetch_req *m);
void kafka_encode_fetch(struct buf *b, const struct kafka_req_header *h,
                        const struct kafka_fetch_req *m);

/* ---- ListOffsets (v1-v5) ---- */
#define KAFKA_TIME_LATEST (-1)
#define KAFKA_TIME_EARLIEST (-2)
struct kafka_list_part {
    int32_t index;
    int64_t timestamp;
    /* the answer */
    int16_t error;
    int64_t found_timestamp;
    int64_t offset;
};
struct kafka_list_topic {
    struct kafka_str name;
    int32_t n_parts;
    struct kafka_list_part *parts;
};
struct kafka_list_req {
    int32_t replica_id;
    int8_t isolation_level;
    int32_t n_topics;
    struct kafka_list_topic *topics;
};
int kafka_decode_list_offsets(struct kafka_rd *r, const struct kafka_req_header *h,
                              struct kafka_arena *a, struct kafka_list_req *m);
void kafka_encode_list_offsets(struct buf *b, const struct kafka_req_header *h,
                               const struct kafka_list_req *m);

/* ---- CreateTopics (v0-v4) ---- */
struct kafka_config {
    struct kafka_str name;
    struct kafka_str value;    /* len -1: null */
};
struct kafka_create_topic {
    struct kafka_str name;
    int32_t num_partitions;    /* -1: the default (1) */
    int16_t replication_factor;
    int32_t n_assignments;
    int32_t n_configs;
    struct kafka_config *configs;
    /* the answer */
    int16_t error;
    char *error_message;       /* NULL, or arena-allocated */
};
struct kafka_create_req {
    int32_t n_topics;
    struct kafka_create_topic *topics;
    int32_t timeout_ms;
    bool validate_only;        /* v1+ */
};
int kafka_decode_create_topics(struct kafka_rd *r, const struct kafka_req_header *h,
                               struct kafka_arena *a, struct kafka_create_req *m);
void kafka_encode_create_topics(struct buf *b, const struct kafka_req_header *h,
                                const struct kafka_create_req *m);

/* ---- DeleteTopics (v0-v3) ---- */
struct kafka_delete_topic {
    struct kafka_str name;
    int16_t error;             /* the answer */
};
struct kafka_delete_req {
    int32_t n_topics;
    struct kafka_delete_topic *topics;
    int32_t timeout_ms;
};
int kafka_decode_delete_topics(struct kafka_rd *r, const struct kafka_req_header *h,
                               struct kafka_arena *a, struct kafka_delete_req *m);
void kafka_encode_delete_topics(struct buf *b, const struct kafka_req_header *h,
                                const struct kafka_delete_req *m);

/* ---- FindCoordinator (v0-v3) ---- */
#define KAFKA_COORDINATOR_GROUP 0
#define KAFKA_COORDINATOR_TRANSACTION 1
struct kafka_find_coord_req {
    struct kafka_str key;      /* the group id (or transactional id) */
    int8_t key_type;           /* v1+; 0 (group) before */
};
int kafka_decode_find_coordinator(struct kafka_rd *r, const struct kafka_req_header *h,
                                  struct kafka_find_coord_req *m);
/* @coord NULL: no coordinator (node_id -1, host "", port -1). */
void kafka_encode_find_coordinator(struct buf *b, const struct kafka_req_header *h,
                                   int16_t error, const char *message,
                                   const struct kafka_broker *coord);

/* ---- Consumer groups: JoinGroup (v0-v5), SyncGroup (v0-v3), Heartbeat
 * (v0-v3), LeaveGroup (v0-v3) ----
 * Response strings are NUL-terminated C strings (NULL: a null string). */
struct kafka_join_protocol {
    struct kafka_str name;
    struct kafka_str metadata;
};
struct kafka_join_req {
    struct kafka_str group_id;
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms;  /* v1+; v0: session_timeout_ms */
    struct kafka_str member_id;    /* "" on a first join */
    struct kafka_str group_instance_id; /* v5+; len -1 (null) before */
    struct kafka_str protocol_type;
    int32_t n_protocols;
    struct kafka_join_protocol *protocols;
};
struct kafka_join_member {
    const char *member_id;
    const char *group_instance_id;  /* NULL: null */
    const uint8_t *metadata;
    size_t metadata_len;
};
struct kafka_join_resp {
    int16_t error;
    int32_t generation_id;
    const char *protocol_name;
    const char *leader;
    const char *member_id;
    int32_t n_members;               /* the leader's answer lists every member */
    const struct kafka_join_member *members;
};
int kafka_decode_join_group(struct kafka_rd *r, const struct kafka_req_header *h,
                            struct kafka_arena *a, struct kafka_join_req *m);
void kafka_encode_join_group(struct buf *b, const struct kafka_req_header *h,
                             const struct kafka_join_resp *m);

struct kafka_sync_assignment {
    struct kafka_str member_id;
    struct kafka_str assignment;
};
struct kafka_sync_req {
    struct kafka_str group_id;
    int32_t generation_id;
    struct kafka_str member_id;
    struct kafka_str group_instance_id; /* v3+ */
    int32_t n_assignments;              /* only the group leader sends them */
    struct kafka_sync_assignment *assignments;
};
int kafka_decode_sync_group(struct kafka_rd *r, const struct kafka_req_header *h,
                            struct kafka_arena *a, struct kafka_sync_req *m);
void kafka_encode_sync_group(struct buf *b, const struct kafka_req_header *h, int16_t error,
                             const void *assignment, size_t len);

struct kafka_heartbeat_req {
    struct kafka_str group_id;
    int32_t generation_id;
    struct kafka_str member_id;
    struct kafka_str group_instance_id; /* v3+ */
};
int kafka_decode_heartbeat(struct kafka_rd *r, const struct kafka_req_header *h,
                           struct kafka_heartbeat_req *m);
void kafka_encode_heartbeat(struct buf *b, const struct kafka_req_header *h, int16_t error);

struct kafka_leave_member {
    struct kafka_str member_id;
    struct kafka_str group_instance_id;
    int16_t error;                 /* the answer (v3+: per member) */
};
struct kafka_leave_req {
    struct kafka_str group_id;
    int32_t n_members;             /* v0-v2: one, from the request's member_id */
    struct kafka_leave_member *members;
};
int kafka_decode_leave_group(struct kafka_rd *r, const struct kafka_req_header *h,
                             struct kafka_arena *a, struct kafka_leave_req *m);
void kafka_encode_leave_group(struct buf *b, const struct kafka_req_header *h, int16_t error,
                              const struct kafka_leave_req *m);

/* ---- OffsetCommit (v2-v7), OffsetFetch (v1-v7) ---- */
struct kafka_commit_part {
    int32_t index;
    int64_t offset;
    struct kafka_str metadata;     /* not kept by tally */
    int16_t error;                 /* the answer */
};
struct kafka_commit_topic {
    struct kafka_str name;
    int32_t n_parts;
    struct kafka_commit_part *parts;
};
struct kafka_commit_req {
    struct kafka_str group_id;
    int32_t generation_id;         /* -1: a commit from outside any generation */
    struct kafka_str member_id;
    struct kafka_str group_instance_id; /* v7+ */
    int32_t n_topics;
    struct kafka_commit_topic *topics;
};
int kafka_decode_offset_commit(struct kafka_rd *r, const struct kafka_req_header *h,
                               struct kafka_arena *a, struct kafka_commit_req *m);
void kafka_encode_offset_commit(struct buf *b, const struct kafka_req_header *h,
                                const struct kafka_commit_req *m);

struct kafka_ofetch_part {
    int32_t index;
    /* the answer */
    int64_t offset;                /* -1: no committed offset */
    int16_t error;
};
struct kafka_ofetch_topic {
    struct kafka_str name;
    int32_t n_parts;
    struct kafka_ofetch_part *parts;
};
struct kafka_ofetch_req {
    struct kafka_str group_id;
    int32_t n_topics;              /* -1 (v2+): every topic the group has an offset for */
    struct kafka_ofetch_topic *topics;
    bool require_stable;           /* v7+ */
};
int kafka_decode_offset_fetch(struct kafka_rd *r, const struct kafka_req_header *h,
                              struct kafka_arena *a, struct kafka_ofetch_req *m);
/* Answers @n_topics @topics (the request's, or the server's own list when
 * the request asked for every topic) and the top-level @error (v2+). */
void kafka_encode_offset_fetch(struct buf *b, const struct kafka_req_header *h, int16_t error,
                               int32_t n_topics, const struct kafka_ofetch_topic *topics);

/* ---- ListGroups (v0-v2), DescribeGroups (v0-v4) ---- */
struct kafka_group_listing {
    const char *group_id;
    const char *protocol_type;
};
int kafka_decode_list_groups(struct kafka_rd *r, const struct kafka_req_header *h);
void kafka_encode_list_groups(struct buf *b, const struct kafka_req_header *h, int16_t error,
                              int32_t n, const struct kafka_group_listing *groups);

struct kafka_describe_groups_req {
    int32_t n_groups;
    struct kafka_str *groups;
    bool include_authorized_operations; /* v3+ */
};
struct kafka_dg_member {
    const char *member_id;
    const char *group_instance_id; /* v4+; NULL: null */
    const char *client_id;
    const char *client_host;
    const uint8_t *metadata;
    size_t metadata_len;
    const uint8_t *assignment;
    size_t assignment_len;
};
struct kafka_dg_group {
    int16_t error;
    const char *group_id;
    const char *state;             /* "Empty", "PreparingRebalance", "CompletingRebalance",
                                    * "Stable", "Dead" */
    const char *protocol_type;
    const char *protocol_data;     /* the chosen protocol's name ("" if none) */
    int32_t n_members;
    const struct kafka_dg_member *members;
};
int kafka_decode_describe_groups(struct kafka_rd *r, const struct kafka_req_header *h,
                                 struct kafka_arena *a, struct kafka_describe_groups_req *m);
void kafka_encode_describe_groups(struct buf *b, const struct kafka_req_header *h, int32_t n,
                                  const struct kafka_dg_group *groups);

/* ---- DescribeConfigs (v0-v3) ---- */
#define KAFKA_RESOURCE_TOPIC 2
#define KAFKA_RESOURCE_BROKER 4
#define KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC 1
#define KAFKA_CONFIG_SOURCE_DEFAULT 5
struct kafka_dc_resource {
    int8_t type;
    struct kafka_str name;
    int32_t n_keys;                /* -1: every setting */
    struct kafka_str *keys;
};
struct kafka_describe_configs_req {
    int32_t n_resources;
    struct kafka_dc_resource *resources;
    bool include_synonyms;         /* v1+ */
    bool include_documentation;    /* v3+ */
};
struct kafka_dc_entry {
    const char *name;
    const char *value;             /* NULL: null */
    bool read_only;
    bool is_default;               /* v0's is_default; v1+ config_source says it */
    int8_t source;                 /* v1+: KAFKA_CONFIG_SOURCE_* */
};
struct kafka_dc_result {
    int16_t error;
    const char *message;           /* NULL: null */
    int8_t type;
    const char *name;
    int32_t n_configs;
    const struct kafka_dc_entry *configs;
};
int kafka_decode_describe_configs(struct kafka_rd *r, const struct kafka_req_header *h,
                                  struct kafka_arena *a, struct kafka_describe_configs_req *m);
void kafka_encode_describe_configs(struct buf *b, const struct kafka_req_header *h, int32_t n,
                                   const struct kafka_dc_result *results);

/* ---- AlterConfigs (v0-v1), IncrementalAlterConfigs (v0) ----
 * One request struct for both: AlterConfigs' entries have op SET (its
 * request replaces the resource's whole set: what it does not name goes
 * back to the default); IncrementalAlterConfigs names an op per entry. */
#define KAFKA_CONFIG_OP_SET 0
#define KAFKA_CONFIG_OP_DELETE 1
#define KAFKA_CONFIG_OP_APPEND 2
#define KAFKA_CONFIG_OP_SUBTRACT 3
struct kafka_alter_entry {
    struct kafka_str name;
    struct kafka_str value;        /* len -1: null */
    int8_t op;                     /* KAFKA_CONFIG_OP_*; SET for AlterConfigs */
};
struct kafka_ac_resource {
    int8_t type;
    struct kafka_str name;
    int32_t n_entries;
    struct kafka_alter_entry *entries;
    /* the answer */
    int16_t error;
    const char *error_message;     /* NULL: null */
};
struct kafka_alter_configs_req {
    bool incremental;              /* IncrementalAlterConfigs */
    int32_t n_resources;
    struct kafka_ac_resource *resources;
    bool validate_only;
};
/* Decodes an AlterConfigs or an IncrementalAlterConfigs request (by
 * h->api_key). */
int kafka_decode_alter_configs(struct kafka_rd *r, const struct kafka_req_header *h,
                               struct kafka_arena *a, struct kafka_alter_configs_req *m);
/* Both responses have the same shape: throttle_time_ms, then per resource
 * error_code, error_message, resource_type, resource_name. */
void kafka_encode_alter_configs(struct buf *b, const struct kafka_req_header *h,
                                const struct kafka_alter_configs_req *m);


/* ---- InitProducerId (v0-v1) ---- */
struct kafka_init_pid_req {
    struct kafka_str transactional_id; /* tally has no transactions: must be null */
    int32_t transaction_timeout_ms;
};
int kafka_decode_init_pid(struct kafka_rd *r, const struct kafka_req_header *h,
                          struct kafka_init_pid_req *m);
void kafka_encode_init_pid(struct buf *b, int16_t error, int64_t producer_id, int16_t epoch);

/* ---- SaslHandshake (v0-v1) and SaslAuthenticate (v0-v2) ----
 * Handshake: the client names a mechanism; the answer lists the enabled
 * ones. Authenticate: one SASL message each way (for SCRAM, two rounds);
 * v1+ answers a session lifetime (0: no re-authentication needed). */
int kafka_decode_sasl_handshake(struct kafka_rd *r, const struct kafka_req_header *h,
                                struct kafka_str *mechanism);
void kafka_encode_sasl_handshake(struct buf *b, int16_t error, const char *const *mechanisms,
                                 int n);
int kafka_decode_sasl_authenticate(struct kafka_rd *r, const struct kafka_req_header *h,
                                   struct kafka_str *auth_bytes);
void kafka_encode_sasl_authenticate(struct buf *b, const struct kafka_req_header *h,
                                    int16_t error, const char *message, const void *auth_bytes,
                                    size_t auth_len);

#endif
