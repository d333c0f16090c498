/* Kafka request and response codec: see msg.h. Each decoder follows its
 * request's schema field by field, for the versions in kafka_apis[]; each
 * "vN+" comment is the version that added the field. */
#include "kafka/msg.h"

#include <stdlib.h>
#include <string.h>

#include "kafka/errors.h"

const struct kafka_api kafka_apis[] = {
    /* Produce: advertised from v0 because librdkafka turns compression
     * off against a broker that does not list v0-v2; only v3+ (record
     * batch v2) is decoded, an older version is answered UNSUPPORTED. */
    {KAFKA_PRODUCE, 0, 8, 3, INT16_MAX, "Produce"},
    {KAFKA_FETCH, 4, 11, 4, INT16_MAX, "Fetch"},
    {KAFKA_LIST_OFFSETS, 1, 5, 1, INT16_MAX, "ListOffsets"},
    {KAFKA_METADATA, 1, 9, 1, 9, "Metadata"},
    {KAFKA_OFFSET_COMMIT, 2, 7, 2, INT16_MAX, "OffsetCommit"},
    {KAFKA_OFFSET_FETCH, 1, 7, 1, 6, "OffsetFetch"},
    /* FindCoordinator: librdkafka enables LZ4 only for brokers that list
     * it (its feature map ties LZ4 to Kafka 0.8.2, which added it). */
    {KAFKA_FIND_COORDINATOR, 0, 3, 0, 3, "FindCoordinator"},
    {KAFKA_JOIN_GROUP, 0, 5, 0, INT16_MAX, "JoinGroup"},
    {KAFKA_HEARTBEAT, 0, 3, 0, INT16_MAX, "Heartbeat"},
    {KAFKA_LEAVE_GROUP, 0, 3, 0, INT16_MAX, "LeaveGroup"},
    {KAFKA_SYNC_GROUP, 0, 3, 0, INT16_MAX, "SyncGroup"},
    {KAFKA_DESCRIBE_GROUPS, 0, 4, 0, INT16_MAX, "DescribeGroups"},
    {KAFKA_LIST_GROUPS, 0, 2, 0, INT16_MAX, "ListGroups"},
    {KAFKA_API_VERSIONS, 0, 3, 0, 3, "ApiVersions"},
    {KAFKA_CREATE_TOPICS, 0, 4, 0, INT16_MAX, "CreateTopics"},
    {KAFKA_DELETE_TOPICS, 0, 3, 0, INT16_MAX, "DeleteTopics"},
    {KAFKA_INIT_PRODUCER_ID, 0, 1, 0, INT16_MAX, "InitProducerId"},
    {KAFKA_DESCRIBE_CONFIGS, 0, 3, 0, INT16_MAX, "DescribeConfigs"},
    {KAFKA_ALTER_CONFIGS, 0, 1, 0, INT16_MAX, "AlterConfigs"},
    {KAFKA_INCREMENTAL_ALTER_CONFIGS, 0, 0, 0, INT16_MAX, "IncrementalAlterConfigs"},
    {KAFKA_SASL_HANDSHAKE, 0, 1, 0, INT16_MAX, "SaslHandshake"},
    {KAFKA_SASL_AUTHENTICATE, 0, 2, 0, 2, "SaslAuthenticate"},
};
const size_t kafka_n_apis = sizeof kafka_apis / sizeof kafka_apis[0];

const struct kafka_api *kafka_api_find(int16_t key)
{
    for (size_t i = 0; i < kafka_n_apis; i++) {
        if (kafka_apis[i].key == key) {
            return &kafka_apis[i];
        }
    }
    return NULL;
}

/* ---- arena ---- */

struct kafka__chunk {
    struct kafka__chunk *next;
    max_align_t data[];
};

void kafka_arena_init(struct kafka_arena *a)
{
    a->chunks = NULL;
    a->oom = false;
}

void *kafka_arena_alloc(struct kafka_arena *a, size_t n)
{
    struct kafka__chunk *c = calloc(1, sizeof *c + (n ? n : 1));
    if (c == NULL) {
        a->oom = true;
        return NULL;
    }
    c->next = a->chunks;
    a->chunks = c;
    return c->data;
}

void kafka_arena_free(struct kafka_arena *a)
{
    while (a->chunks != NULL) {
        struct kafka__chunk *c = a->chunks;
        a->chunks = c->next;
        free(c);
    }
}

/* Read an array's count (each element at least @min_elem bytes) and
 * allocate its elements of @size bytes from @a: the elements, or NULL with
 * *@n 0 for an empty array. A null or impossible count, or no memory, sets
 * r->bad. */
static void *kafka__rd_elems(struct kafka_rd *r, bool f, size_t min_elem, struct kafka_arena *a,
                             size_t size, int32_t *n)
{
    void *v = NULL;
    *n = kafka_rd_array(r, f, min_elem);
    if (*n < 0) {
        r->bad = true;
    } else if (*n > 0 && !r->bad && (v = kafka_arena_alloc(a, (size_t)*n * size)) == NULL) {
        r->bad = true;
    }
    if (r->bad) {
        *n = 0;
        return NULL;
    }
    return v;
}

/* ---- header ---- */

int kafka_decode_header(struct kafka_rd *r, struct kafka_req_header *h)
{
    memset(h, 0, sizeof *h);
    h->api_key = kafka_rd_i16(r);
    h->api_version = kafka_rd_i16(r);
    h->correlation_id = kafka_rd_i32(r);
    if (r->bad) {
        return -1;
    }
    const struct kafka_api *api = kafka_api_find(h->api_key);
    if (api == NULL || h->api_version < api->min_accepted || h->api_version > api->max_version) {
        return 1;
    }
    h->flex = h->api_version >= api->flex_from;
    h->client_id = kafka_rd_string(r, false); /* never compact, even in v2 */
    kafka_rd_tags(r, h->flex);
    return r->bad ? -1 : 0;
}

size_t kafka_begin_response(struct buf *b, const struct kafka_req_header *h)
{
    size_t start = b->len;
    kafka_put_i32(b, 0);
    kafka_put_i32(b, h->correlation_id);
    kafka_put_tags(b, h->flex && h->api_key != KAFKA_API_VERSIONS);
    return start;
}

void kafka_end_response(struct buf *b, size_t start)
{
    kafka_patch_i32(b, start, (uint32_t)(b->len - start - 4));
}

/* ---- ApiVersions ---- */

void kafka_encode_api_versions(struct buf *b, int16_t version, int16_t error)
{
    bool flex = version >= 3 && error == KAFKA_NONE;
    kafka_put_i16(b, error);
    kafka_put_array(b, flex, (int32_t)kafka_n_apis);
    for (size_t i = 0; i < kafka_n_apis; i++) {
        kafka_put_i16(b, kafka_apis[i].key);
        kafka_put_i16(b, kafka_apis[i].min_version);
        kafka_put_i16(b, kafka_apis[i].max_version);
        kafka_put_tags(b, flex);
    }
    if (version >= 1 && error == KAFKA_NONE) {
        kafka_put_i32(b, 0); /* throttle_time_ms */
    }
    kafka_put_tags(b, flex);
}

/* ---- Metadata ---- */

int kafka_decode_metadata(struct kafka_rd *r, const struct kafka_req_header *h,
                          struct kafka_arena *a, struct kafka_metadata_req *m)
{
    int16_t v = h->api_version;
    memset(m, 0, sizeof *m);
    m->allow_auto_create = true;
    m->n_topics = kafka_rd_array(r, h->flex, 2);
    if (m->n_topics > 0) {
        m->topics = kafka_arena_alloc(a, (size_t)m->n_topics * sizeof *m->topics);
        if (m->topics == NULL) {
            return -1;
        }
    }
    for (int32_t i = 0; i < m->n_topics && !r->bad; i++) {
        m->topics[i] = kafka_rd_string(r, h->flex);
        if (m->topics[i].len < 0) {
            r->bad = true; /* topic names are not nullable before v10 */
        }
        kafka_rd_tags(r, h->flex);
    }
    if (v >= 4) {
        m->allow_auto_create = kafka_rd_i8(r) != 0;
    }
    if (v >= 8) {
        (void)kafka_rd_i8(r); /* include_cluster_authorized_operations */
        (void)kafka_rd_i8(r); /* include_topic_authorized_operations */
    }
    kafka_rd_tags(r, h->flex);
    return r->bad || r->left != 0 ? -1 : 0;
}

void kafka_encode_metadata(struct buf *b, const struct kafka_req_header *h,
                           const struct kafka_metadata_resp *m)
{
    int16_t v = h->api_version;
    bool f = h->flex;
    if (v >= 3) {
        kafka_put_i32(b, 0); /* throttle_time_ms */
    }
    kafka_put_array(b, f, m->n_brokers);
    for (int32_t i = 0; i < m->n_brokers; i++) {
        kafka_put_i32(b, m->brokers[i].node_id);
        kafka_put_cstring(b, f, m->brokers[i].host);
        kafka_put_i32(b, m->brokers[i].port);
        kafka_put_cstring(b, f, NULL); /* rack (v1+) */
        kafka_put_tags(b, f);
    }
    if (v >= 2) {
        kafka_put_cstring(b, f, m->cluster_id);
    }
    kafka_put_i32(b, m->controller_id); /* v1+ */
    kafka_put_array(b, f, m->n_topics);
    for (int32_t i = 0; i < m->n_topics; i++) {
        const struct kafka_md_topic *t = &m->topics[i];
        kafka_put_i16(b, t->error);
        kafka_put_string(b, f, t->name, t->name_len);
        kafka_put_i8(b, 0); /* is_internal (v1+) */
        kafka_put_array(b, f, t->has_partition ? 1 : 0);
        if (t->has_partition) {
            kafka_put_i16(b, t->partition_error);
            kafka_put_i32(b, 0); /* partition_index */
            kafka_put_i32(b, t->leader);
            if (v >= 7) {
                kafka_put_i32(b, -1); /* leader_epoch: none (no KIP-320 validation) */
            }
            for (int list = 0; list < 2; list++) { /* replica_nodes, isr_nodes */
                kafka_put_array(b, f, t->n_replicas);
                for (int32_t k = 0; k < t->n_replicas; k++) {
                    kafka_put_i32(b, t->replicas[k]);
                }
            }
            if (v >= 5) {
                kafka_put_array(b, f, 0); /* offline_replicas */
            }
            kafka_put_tags(b, f);
        }
        if (v >= 8) {
            kafka_put_i32(b, INT32_MIN); /* topic_authorized_operations: not asked */
        }
        kafka_put_tags(b, f);
    }
    if (v >= 8) {
        kafka_put_i32(b, INT32_MIN); /* cluster_authorized_operations */
    }
    kafka_put_tags(b, f);
}

/* ---- Produce ---- */

int kafka_decode_produce(struct kafka_rd *r, const struct kafka_req_header *h,
                         struct kafka_arena *a, struct kafka_produce_req *m)
{
    bool f = h->flex;
    memset(m, 0, sizeof *m);
    m->transactional_id = kafka_rd_string(r, f);
    m->acks = kafka_rd_i16(r);
    m->timeout_ms = kafka_rd_i32(r);
    m->topics = kafka__rd_elems(r, f, 6, a, sizeof *m->topics, &m->n_topics);
    if (r->bad) {
        return -1;
    }
    for (int32_t i = 0; i < m->n_topics && !r->bad; i++) {
        struct kafka_produce_topic *t = &m->topics[i];
        t->name = kafka_rd_string(r, f);
        t->parts = kafka__rd_elems(r, f, 8, a, sizeof *t->parts, &t->n_parts);
        if (t->name.len < 0 || r->bad) {
            return -1;
        }
        for (int32_t k = 0; k < t->n_parts && !r->bad; k++) {
            t->parts[k].index = kafka_rd_i32(r);
            t->parts[k].records = kafka_rd_bytes(r, f);
            t->parts[k].log_start_offset = -1;
            t->parts[k].base_offset = -1;
            kafka_rd_tags(r, f);
        }
        kafka_rd_tags(r, f);
    }
    kafka_rd_tags(r, f);
    return r->bad || r->left != 0 ? -1 : 0;
}

void kafka_encode_produce(struct buf *b, const struct kafka_req_header *h,
                          const struct kafka_produce_req *m)
{
    int16_t v = h->api_version;
    bool f = h->flex;
    kafka_put_array(b, f, m->n_topics);
    for (int32_t i = 0; i < m->n_topics; i++) {
        const struct kafka_produce_topic *t = &m->topics[i];
        kafka_put_string(b, f, t->name.p, (size_t)t->name.len);
        kafka_put_array(b, f, t->n_parts);
        for (int32_t k = 0; k < t->n_parts; k++) {
            const struct kafka_produce_part *p = &t->parts[k];
            kafka_put_i32(b, p->index);
            kafka_put_i16(b, p->error);
            kafka_put_i64(b, p->base_offset);
            kafka_put_i64(b, -1); /* log_append_time_ms (v2+): not known here */
            if (v >= 5) {
                kafka_put_i64(b, p->log_start_offset);
            }
            if (v >= 8) {
                kafka_put_array(b, f, 0); /* record_errors */
                kafka_put_cstring(b, f, p->error_message);
            }
            kafka_put_tags(b, f);
        }
        kafka_put_tags(b, f);
    }
    kafka_put_i32(b, 0); /* throttle_time_ms */
    kafka_put_tags(b, f);
}

/* ---- Fetch ---- */

int kafka_decode_fetch(struct kafka_rd *r, const struct kafka_req_header *h,
                       struct kafka_arena *a, struct kafka_fetch_req *m)
{
    int16_t v = h->api_version;
    bool f = h->flex;
    memset(m, 0, sizeof *m);
    m->replica_id = kafka_rd_i32(r);
    m->max_wait_ms = kafka_rd_i32(r);
    m->min_bytes = kafka_rd_i32(r);
    m->max_bytes = kafka_rd_i32(r);      /* v3+ */
    m->isolation_level = kafka_rd_i8(r); /* v4+ */
    if (v >= 7) {
        (void)kafka_rd_i32(r); /* session_id: tally keeps no fetch sessions */
        (void)kafka_rd_i32(r); /* session_epoch */
    }
    m->topics = kafka__rd_elems(r, f, 6, a, sizeof *m->topics, &m->n_topics);
    if (r->bad) {
        return -1;
    }
    for (int32_t i = 0; i < m->n_topics && !r->bad; i++) {
        struct kafka_fetch_topic *t = &m->topics[i];
        t->name = kafka_rd_string(r, f);
        t->parts = kafka__rd_elems(r, f, 16, a, sizeof *t->parts, &t->n_parts);
        if (t->name.len < 0 || r->bad) {
            return -1;
        }
        for (int32_t k = 0; k < t->n_parts && !r->bad; k++) {
            struct kafka_fetch_part *p = &t->parts[k];
            p->index = kafka_rd_i32(r);
            if (v >= 9) {
                (void)kafka_rd_i32(r); /* current_leader_epoch */
            }
            p->fetch_offset = kafka_rd_i64(r);
            if (v >= 5) {
                (void)kafka_rd_i64(r); /* log_start_offset: a follower's, unused */
            }
            p->max_bytes = kafka_rd_i32(r);
            p->high_watermark = -1;
            p->log_start_offset = -1;
            buf_init(&p->records);
            kafka_rd_tags(r, f);
        }
        kafka_rd_tags(r, f);
    }
    if (v >= 7) {
        int32_t n = kafka_rd_array(r, f, 6); /* forgotten_topics_data */
        for (int32_t i = 0; i < n && !r->bad; i++) {
            (void)kafka_rd_string(r, f);
            int32_t np = kafka_rd_array(r, f, 4);
            for (int32_t k = 0; k < np && !r->bad; k++) {
                (void)kafka_rd_i32(r);
            }
            kafka_rd_tags(r, f);
        }
    }
    if (v >= 11) {
        (void)kafka_rd_string(r, f); /* rack_id */
    }
    kafka_rd_tags(r, f);
    return r->bad || r->left != 0 ? -1 : 0;
}

void kafka_encode_fetch(struct buf *b, const struct kafka_req_header *h,
                        const struct kafka_fetch_req *m)
{
    int16_t v = h->api_version;
    bool f = h->flex;
    kafka_put_i32(b, 0); /* throttle_time_ms (v1+) */
    if (v >= 7) {
        kafka_put_i16(b, KAFKA_NONE); /* error_code */
        kafka_put_i32(b, 0);          /* session_id: no session */
    }
    kafka_put_array(b, f, m->n_topics);
    for (int32_t i = 0; i < m->n_topics; i++) {
        const struct kafka_fetch_topic *t = &m->topics[i];
        kafka_put_string(b, f, t->name.p, (size_t)t->name.len);
        kafka_put_array(b, f, t->n_parts);
        for (int32_t k = 0; k < t->n_parts; k++) {
            const struct kafka_fetch_part *p = &t->parts[k];
            kafka_put_i32(b, p->index);
            kafka_put_i16(b, p->error);
            kafka_put_i64(b, p->high_watermark);
            kafka_put_i64(b, p->high_watermark); /* last_stable_offset (v4+): no transactions */
            if (v >= 5) {
                kafka_put_i64(b, p->log_start_offset);
            }
            kafka_put_array(b, f, 0); /* aborted_transactions (v4+) */
            if (v >= 11) {
                kafka_put_i32(b, -1); /* preferred_read_replica */
            }
            kafka_put_bytes(b, f, p->records.data != NULL ? p->records.data : (const uint8_t *)"",
                            p->records.len);
            kafka_put_tags(b, f);
        }
        kafka_put_tags(b, f);
    }
    kafka_put_tags(b, f);
}

/* ---- ListOffsets ---- */

int kafka_decode_list_offsets(struct kafka_rd *r, const struct kafka_req_header *h,
                              struct kafka_arena *a, struct kafka_list_req *m)
{
    int16_t v = h->api_version;
    bool f = h->flex;
    memset(m, 0, sizeof *m);
    m->replica_id = kafka_rd_i32(r);
    if (v >= 2) {
        m->isolation_level = kafka_rd_i8(r);
    }
    m->topics = kafka__rd_elems(r, f, 6, a, sizeof *m->topics, &m->n_topics);
    if (r->bad) {
        return -1;
    }
    for (int32_t i = 0; i < m->n_topics && !r->bad; i++) {
        struct kafka_list_topic *t = &m->topics[i];
        t->name = kafka_rd_string(r, f);
        t->parts = kafka__rd_elems(r, f, 12, a, sizeof *t->parts, &t->n_parts);
        if (t->name.len < 0 || r->bad) {
            return -1;
        }
        for (int32_t k = 0; k < t->n_parts && !r->bad; k++) {
            struct kafka_list_part *p = &t->parts[k];
            p->index = kafka_rd_i32(r);
            if (v >= 4) {
                (void)kafka_rd_i32(r); /* current_leader_epoch */
            }
            p->timestamp = kafka_rd_i64(r);
            p->offset = -1;
            p->found_timestamp = -1;
            kafka_rd_tags(r, f);
        }
        kafka_rd_tags(r, f);
    }
    kafka_rd_tags(r, f);
    return r->bad || r->left != 0 ? -1 : 0;
}

void kafka_encode_list_offsets(struct buf *b, const struct kafka_req_header *h,
                               const struct kafka_list_req *m)
{
    int16_t v = h->api_version;
    bool f = h->flex;
    if (v >= 2) {
        kafka_put_i32(b, 0); /* throttle_time_ms */
    }
    kafka_put_array(b, f, m->n_topics);
    for (int32_t i = 0; i < m->n_topics; i++) {
        const struct kafka_list_topic *t = &m->topics[i];
        kafka_put_string(b, f, t->name.p, (size_t)t->name.len);
        kafka_put_array(b, f, t->n_parts);
        for (int32_t k = 0; k < t->n_parts; k++) {
            const struct kafka_list_part *p = &t->parts[k];
            kafka_put_i32(b, p->index);
            kafka_put_i16(b, p->error);
            kafka_put_i64(b, p->found_timestamp);
            kafka_put_i64(b, p->offset);
            if (v >= 4) {
                kafka_put_i32(b, -1); /* leader_epoch */
            }
            kafka_put_tags(b, f);
        }
        kafka_put_tags(b, f);
    }
    kafka_put_tags(b, f);
}

/* ---- InitProducerId ---- */

int kafka_decode_init_pid(struct kafka_rd *r, const struct kafka_req_header *h,
                          struct kafka_init_pid_req *m)
{
    m->transactional_id = kafka_rd_string(r, h->flex);
    m->transaction_timeout_ms = kafka_rd_i32(r);
    kafka_rd_tags(r, h->flex);
    return r->bad || r->left != 0 ? -1 : 0;
}

void kafka_encode_init_pid(struct buf *b, int16_t error, int64_t producer_id, int16_t epoch)
{
    kafka_put_i32(b, 0); /* throttle_time_ms */
    kafka_put_i16(b, error);
    kafka_put_i64(b, producer_id);
    kafka_put_i16(b, epoch);
}

/* ---- CreateTopics ---- */

int kafka_decode_create_topics(struct kafka_rd *r, const struct kafka_req_header *h,
                               struct kafka_arena *a, struct kafka_create_req *m)
{
    bool f = h->flex;
    memset(m, 0, sizeof *m);
    m->topics = kafka__rd_elems(r, f, 12, a, sizeof *m->topics, &m->n_topics);
    if (r->bad) {
        return -1;
    }
    for (int32_t i = 0; i < m->n_topics && !r->bad; i++) {
        struct kafka_create_topic *t = &m->topics[i];
        t->name = kafka_rd_string(r, f);
        t->num_partitions = kafka_rd_i32(r);
        t->replication_factor = kafka_rd_i16(r);
        t->n_assignments = kafka_rd_array(r, f, 8);
        for (int32_t k = 0; k < t->n_assignments && !r->bad; k++) {
            (void)kafka_rd_i32(r); /* partition_index */
            int32_t nb = kafka_rd_array(r, f, 4);
            for (int32_t j = 0; j < nb && !r->bad; j++) {
                (void)kafka_rd_i32(r); /* broker_ids */
            }
            kafka_rd_tags(r, f);
        }
        t->n_configs = kafka_rd_array(r, f, 4);
        if (r->bad || t->name.len < 0 || t->n_configs < 0) {
            return -1;
        }
        if (t->n_configs > 0 && (t->configs = kafka_arena_alloc(
                                     a, (size_t)t->n_configs * sizeof *t->configs)) == NULL) {
            return -1;
        }
        for (int32_t k = 0; k < t->n_configs && !r->bad; k++) {
            t->configs[k].name = kafka_rd_string(r, f);
            t->configs[k].value = kafka_rd_string(r, f);
            if (t->configs[k].name.len < 0) {
                r->bad = true;
            }
            kafka_rd_tags(r, f);
        }
        kafka_rd_tags(r, f);
    }
    m->timeout_ms = kafka_rd_i32(r);
    if (h->api_version >= 1) {
        m->validate_only = kafka_rd_i8(r) != 0;
    }
    kafka_rd_tags(r, f);
    return r->bad || r->left != 0 ? -1 : 0;
}

void kafka_encode_create_topics(struct buf *b, const struct kafka_req_header *h,
                                const struct kafka_create_req *m)
{
    bool f = h->flex;
    if (h->api_version >= 2) {
        kafka_put_i32(b, 0); /* throttle_time_ms */
    }
    kafka_put_array(b, f, m->n_topics);
    for (int32_t i = 0; i < m->n_topics; i++) {
        const struct kafka_create_topic *t = &m->topics[i];
        kafka_put_string(b, f, t->name.p, (size_t)t->name.len);
        kafka_put_i16(b, t->error);
        if (h->api_version >= 1) {
            kafka_put_cstring(b, f, t->error_message);
        }
        kafka_put_tags(b, f);
    }
    kafka_put_tags(b, f);
}

/* ---- DeleteTopics ---- */

int kafka_decode_delete_topics(struct kafka_rd *r, const struct kafka_req_header *h,
                               struct kafka_arena *a, struct kafka_delete_req *m)
{
    bool f = h->flex;
    memset(m, 0, sizeof *m);
    m->topics = kafka__rd_elems(r, f, 2, a, sizeof *m->topics, &m->n_topics);
    if (r->bad) {
        return -1;
    }
    for (int32_t i = 0; i < m->n_topics && !r->bad; i++) {
        m->topics[i].name = kafka_rd_string(r, f);
        if (m->topics[i].name.len < 0) {
            r->bad = true;
        }
    }
    m->timeout_ms = kafka_rd_i32(r);
    kafka_rd_tags(r, f);
    return r->bad || r->left != 0 ? -1 : 0;
}

void kafka_encode_delete_topics(struct buf *b, const struct kafka_req_header *h,
                                const struct kafka_delete_req *m)
{
    bool f = h->flex;
    if (h->api_version >= 1) {
        kafka_put_i32(b, 0); /* throttle_time_ms */
    }
    kafka_put_array(b, f, m->n_topics);
    for (int32_t i = 0; i < m->n_topics; i++) {
        kafka_put_string(b, f, m->topics[i].name.p, (size_t)m->topics[i].name.len);
        kafka_put_i16(b, m->topics[i].error);
        kafka_put_tags(b, f);
    }
    kafka_put_tags(b, f);
}

/* ---- response helpers ---- */

/* A string the schema does not let be null: NULL goes out as "". */
static void kafka__put_nonnull(struct buf *b, bool f, const char *s)
{
    kafka_put_cstring(b, f, s != NULL ? s : "");
}

/* A request's string echoed back: len -1 goes out as null. */
static void kafka__put_str(struct buf *b, bool f, struct kafka_str s)
{
    kafka_put_string(b, f, s.len >= 0 ? s.p : NULL, s.len >= 0 ? (size_t)s.len : 0);
}

/* A request's non-nullable string echoed back: len -1 goes out as "". */
static void kafka__put_nonnull_str(struct buf *b, bool f, struct kafka_str s)
{
    kafka_put_string(b, f, s.len >= 0 && s.p != NULL ? (const void *)s.p : "",
                     s.len >= 0 && s.p != NULL ? (size_t)s.len : 0);
}

/* Non-nullable bytes: NULL goes out as empty. */
static void kafka__put_nonnull_bytes(struct buf *b, bool f, const void *p, size_t len)
{
    kafka_put_bytes(b, f, p != NULL ? p : "", p != NULL ? len : 0);
}

/* ---- FindCoordinator ---- */

int kafka_decode_find_coordinator(struct kafka_rd *r, const struct kafka_req_header *h,
                                  struct kafka_find_coord_req *m)
{
    memset(m, 0, sizeof *m);
    m->key = kafka_rd_string(r, h->flex);
    m->key_type = KAFKA_COORDINATOR_GROUP;
    if (h->api_version >= 1) {
        m->key_type = kafka_rd_i8(r); /* v1+ */
    }
    kafka_rd_tags(r, h->flex);
    return r->bad || r->left != 0 || m->key.len < 0 ? -1 : 0;
}

void kafka_encode_find_coordinator(struct buf *b, const struct kafka_req_header *h,
                                   int16_t error, const char *message,
                                   const struct kafka_broker *coord)
{
    bool f = h->flex;
    if (h->api_version >= 1) {
        kafka_put_i32(b, 0); /* throttle_time_ms */
    }
    kafka_put_i16(b, error);
    if (h->api_version >= 1) {
        kafka_put_cstring(b, f, message); /* error_message */
    }
    kafka_put_i32(b, coord != NULL ? coord->node_id : -1);
    kafka_put_cstring(b, f, coord != NULL ? coord->host : "");
    kafka_put_i32(b, coord != NULL ? coord->port : -1);
    kafka_put_tags(b, f);
}

/* ---- JoinGroup ---- */

int kafka_decode_join_group(struct kafka_rd *r, const struct kafka_req_header *h,
                            struct kafka_arena *a, struct kafka_join_req *m)
{
    int16_t v = h->api_version;
    bool f = h->flex;
    memset(m, 0, sizeof *m);
    m->group_id = kafka_rd_string(r, f);
    m->session_timeout_ms = kafka_rd_i32(r);
    m->rebalance_timeout_ms = m->session_timeout_ms;
    if (v >= 1) {
        m->rebalance_timeout_ms = kafka_rd_i32(r);
    }
    m->member_id = kafka_rd_string(r, f);
    m->group_instance_id.len = -1;
    if (v >= 5) {
        m->group_instance_id = kafka_rd_string(r, f);
    }
    m->protocol_type = kafka_rd_string(r, f);
    m->n_protocols = kafka_rd_array(r, f, 6);
    if (r->bad || m->group_id.len < 0 || m->member_id.len < 0 || m->protocol_type.len < 0 ||
        m->n_protocols < 0) {
        return -1;
    }
    if (m->n_protocols > 0 && (m->protocols = kafka_arena_alloc(
                                   a, (size_t)m->n_protocols * sizeof *m->protocols)) == NULL) {
        return -1;
    }
    for (int32_t i = 0; i < m->n_protocols && !r->bad; i++) {
        struct kafka_join_protocol *p = &m->protocols[i];
        p->name = kafka_rd_string(r, f);
        p->metadata = kafka_rd_bytes(r, f);
        if (p->name.len < 0 || p->metadata.len < 0) {
            r->bad = true;
        }
        kafka_rd_tags(r, f);
    }
    kafka_rd_tags(r, f);
    return r->bad || r->left != 0 || a->oom ? -1 : 0;
}

void kafka_encode_join_group(struct buf *b, const struct kafka_req_header *h,
                             const struct kafka_join_resp *m)
{
    int16_t v = h->api_version;
    bool f = h->flex;
    if (v >= 2) {
        kafka_put_i32(b, 0); /* throttle_time_ms */
    }
    kafka_put_i16(b, m->error);
    kafka_put_i32(b, m->generation_id);
    kafka__put_nonnull(b, f, m->protocol_name); /* nullable only from v7 */
    kafka__put_nonnull(b, f, m->leader);
    kafka__put_nonnull(b, f, m->member_id);
    kafka_put_array(b, f, m->n_members);
    for (int32_t i = 0; i < m->n_members; i++) {
        const struct kafka_join_member *p = &m->members[i];
        kafka__put_nonnull(b, f, p->member_id);
        if (v >= 5) {
            kafka_put_cstring(b, f, p->group_instance_id);
        }
        kafka__put_nonnull_bytes(b, f, p->metadata, p->metadata_len);
        kafka_put_tags(b, f);
    }
    kafka_put_tags(b, f);
}

/* ---- SyncGroup ---- */

int kafka_decode_sync_group(struct kafka_rd *r, const struct kafka_req_header *h,
                            struct kafka_arena *a, struct kafka_sync_req *m)
{
    bool f = h->flex;
    memset(m, 0, sizeof *m);
    m->group_id = kafka_rd_string(r, f);
    m->generation_id = kafka_rd_i32(r);
    m->member_id = kafka_rd_string(r, f);
    m->group_instance_id.len = -1;
    if (h->api_version >= 3) {
        m->group_instance_id = kafka_rd_string(r, f);
    }
    m->n_assignments = kafka_rd_array(r, f, 6);
    if (r->bad || m->group_id.len < 0 || m->member_id.len < 0 || m->n_assignments < 0) {
        return -1;
    }
    if (m->n_assignments > 0 &&
        (m->assignments = kafka_arena_alloc(
             a, (size_t)m->n_assignments * sizeof *m->assignments)) == NULL) {
        return -1;
    }
    for (int32_t i = 0; i < m->n_assignments && !r->bad; i++) {
        struct kafka_sync_assignment *s = &m->assignments[i];
        s->member_id = kafka_rd_string(r, f);
        s->assignment = kafka_rd_bytes(r, f);
        if (s->member_id.len < 0 || s->assignment.len < 0) {
            r->bad = true;
        }
        kafka_rd_tags(r, f);
    }
    kafka_rd_tags(r, f);
    return r->bad || r->left != 0 || a->oom ? -1 : 0;
}

void kafka_encode_sync_group(struct buf *b, const struct kafka_req_header *h, int16_t error,
                             const void *assignment, size_t len)
{
    bool f = h->flex;
    if (h->api_version >= 1) {
        kafka_put_i32(b, 0); /* throttle_time_ms */
    }
    kafka_put_i16(b, error);
    kafka__put_nonnull_bytes(b, f, assignment, len);
    kafka_put_tags(b, f);
}

/* ---- Heartbeat ---- */

int kafka_decode_heartbeat(struct kafka_rd *r, const struct kafka_req_header *h,
                           struct kafka_heartbeat_req *m)
{
    bool f = h->flex;
    memset(m, 0, sizeof *m);
    m->group_id = kafka_rd_string(r, f);
    m->generation_id = kafka_rd_i32(r);
    m->member_id = kafka_rd_string(r, f);
    m->group_instance_id.len = -1;
    if (h->api_version >= 3) {
        m->group_instance_id = kafka_rd_string(r, f);
    }
    kafka_rd_tags(r, f);
    return r->bad || r->left != 0 || m->group_id.len < 0 || m->member_id.len < 0 ? -1 : 0;
}

void kafka_encode_heartbeat(struct buf *b, const struct kafka_req_header *h, int16_t error)
{
    if (h->api_version >= 1) {
        kafka_put_i32(b, 0); /* throttle_time_ms */
    }
    kafka_put_i16(b, error);
    kafka_put_tags(b, h->flex);
}

/* ---- LeaveGroup ---- */

int kafka_decode_leave_group(struct kafka_rd *r, const struct kafka_req_header *h,
                             struct kafka_arena *a, struct kafka_leave_req *m)
{
    bool f = h->flex;
    memset(m, 0, sizeof *m);
    m->group_id = kafka_rd_string(r, f);
    if (h->api_version < 3) {
        m->n_members = 1; /* member_id (v0-v2) */
    } else {
        m->n_members = kafka_rd_array(r, f, 4); /* members (v3+) */
    }
    if (r->bad || m->group_id.len < 0 || m->n_members < 0) {
        return -1;
    }
    if (m->n_members > 0 &&
        (m->members = kafka_arena_alloc(a, (size_t)m->n_members * sizeof *m->members)) == NULL) {
        return -1;
    }
    for (int32_t i = 0; i < m->n_members && !r->bad; i++) {
        struct kafka_leave_member *p = &m->members[i];
        p->member_id = kafka_rd_string(r, f);
        p->group_instance_id.len = -1;
        if (h->api_version >= 3) {
            p->group_instance_id = kafka_rd_string(r, f);
            kafka_rd_tags(r, f);
        }
        if (p->member_id.len < 0) {
            r->bad = true;
        }
    }
    kafka_rd_tags(r, f);
    return r->bad || r->left != 0 || a->oom ? -1 : 0;
}

void kafka_encode_leave_group(struct buf *b, const struct kafka_req_header *h, int16_t error,
                              const struct kafka_leave_req *m)
{
    bool f = h->flex;
    if (h->api_version >= 1) {
        kafka_put_i32(b, 0); /* throttle_time_ms */
    }
    kafka_put_i16(b, error);
    if (h->api_version >= 3) {
        kafka_put_array(b, f, m->n_members); /* members */
        for (int32_t i = 0; i < m->n_members; i++) {
            const struct kafka_leave_member *p = &m->members[i];
            kafka__put_str(b, f, p->member_id);
            kafka__put_str(b, f, p->group_instance_id);
            kafka_put_i16(b, p->error);
            kafka_put_tags(b, f);
        }
    }
    kafka_put_tags(b, f);
}

/* ---- OffsetCommit ---- */

int kafka_decode_offset_commit(struct kafka_rd *r, const struct kafka_req_header *h,
                               struct kafka_arena *a, struct kafka_commit_req *m)
{
    int16_t v = h->api_version;
    bool f = h->flex;
    memset(m, 0, sizeof *m);
    m->group_id = kafka_rd_string(r, f);
    m->generation_id = kafka_rd_i32(r);   /* v1+ */
    m->member_id = kafka_rd_string(r, f); /* v1+ */
    m->group_instance_id.len = -1;
    if (v >= 7) {
        m->group_instance_id = kafka_rd_string(r, f);
    }
    if (v <= 4) {
        (void)kafka_rd_i64(r); /* retention_time_ms (v2-v4): the broker's setting rules */
    }
    m->topics = kafka__rd_elems(r, f, 6, a, sizeof *m->topics, &m->n_topics);
    if (r->bad || m->group_id.len < 0 || m->member_id.len < 0 || r->bad) {
        return -1;
    }
    for (int32_t i = 0; i < m->n_topics && !r->bad; i++) {
        struct kafka_commit_topic *t = &m->topics[i];
        t->name = kafka_rd_string(r, f);
        t->parts = kafka__rd_elems(r, f, 14, a, sizeof *t->parts, &t->n_parts);
        if (t->name.len < 0 || r->bad) {
            return -1;
        }
        for (int32_t k = 0; k < t->n_parts && !r->bad; k++) {
            struct kafka_commit_part *p = &t->parts[k];
            p->index = kafka_rd_i32(r);
            p->offset = kafka_rd_i64(r);
            if (v >= 6) {
                (void)kafka_rd_i32(r); /* committed_leader_epoch */
            }
            p->metadata = kafka_rd_string(r, f); /* nullable */
            kafka_rd_tags(r, f);
        }
        kafka_rd_tags(r, f);
    }
    kafka_rd_tags(r, f);
    return r->bad || r->left != 0 || a->oom ? -1 : 0;
}

void kafka_encode_offset_commit(struct buf *b, const struct kafka_req_header *h,
                                const struct kafka_commit_req *m)
{
    bool f = h->flex;
    if (h->api_version >= 3) {
        kafka_put_i32(b, 0); /* throttle_time_ms */
    }
    kafka_put_array(b, f, m->n_topics);
    for (int32_t i = 0; i < m->n_topics; i++) {
        const struct kafka_commit_topic *t = &m->topics[i];
        kafka_put_string(b, f, t->name.p, (size_t)t->name.len);
        kafka_put_array(b, f, t->n_parts);
        for (int32_t k = 0; k < t->n_parts; k++) {
            kafka_put_i32(b, t->parts[k].index);
            kafka_put_i16(b, t->parts[k].error);
            kafka_put_tags(b, f);
        }
        kafka_put_tags(b, f);
    }
    kafka_put_tags(b, f);
}

/* ---- OffsetFetch ---- */

int kafka_decode_offset_fetch(struct kafka_rd *r, const struct kafka_req_header *h,
                              struct kafka_arena *a, struct kafka_ofetch_req *m)
{
    int16_t v = h->api_version;
    bool f = h->flex;
    memset(m, 0, sizeof *m);
    m->group_id = kafka_rd_string(r, f);
    m->n_topics = kafka_rd_array(r, f, f ? 3 : 6);
    if (r->bad || m->group_id.len < 0 || (m->n_topics < 0 && v < 2)) {
        return -1; /* topics nullable (every topic) from v2 */
    }
    if (m->n_topics > 0 &&
        (m->topics = kafka_arena_alloc(a, (size_t)m->n_topics * sizeof *m->topics)) == NULL) {
        return -1;
    }
    for (int32_t i = 0; i < m->n_topics && !r->bad; i++) {
        struct kafka_ofetch_topic *t = &m->topics[i];
        t->name = kafka_rd_string(r, f);
        t->n_parts = kafka_rd_array(r, f, 4); /* partition_indexes */
        if (t->name.len < 0 || t->n_parts < 0) {
            return -1;
        }
        if (t->n_parts > 0 &&
            (t->parts = kafka_arena_alloc(a, (size_t)t->n_parts * sizeof *t->parts)) == NULL) {
            return -1;
        }
        for (int32_t k = 0; k < t->n_parts && !r->bad; k++) {
            t->parts[k].index = kafka_rd_i32(r);
            t->parts[k].offset = -1;
        }
        kafka_rd_tags(r, f);
    }
    if (v >= 7) {
        m->require_stable = kafka_rd_i8(r) != 0;
    }
    kafka_rd_tags(r, f);
    return r->bad || r->left != 0 || a->oom ? -1 : 0;
}

void kafka_encode_offset_fetch(struct buf *b, const struct kafka_req_header *h, int16_t error,
                               int32_t n_topics, const struct kafka_ofetch_topic *topics)
{
    int16_t v = h->api_version;
    bool f = h->flex;
    if (v >= 3) {
        kafka_put_i32(b, 0); /* throttle_time_ms */
    }
    if (n_topics < 0) {
        n_topics = 0; /* the response's topics are never null */
    }
    kafka_put_array(b, f, n_topics);
    for (int32_t i = 0; i < n_topics; i++) {
        const struct kafka_ofetch_topic *t = &topics[i];
        kafka_put_string(b, f, t->name.p, (size_t)t->name.len);
        kafka_put_array(b, f, t->n_parts);
        for (int32_t k = 0; k < t->n_parts; k++) {
            const struct kafka_ofetch_part *p = &t->parts[k];
            kafka_put_i32(b, p->index);
            kafka_put_i64(b, p->offset);
            if (v >= 5) {
                kafka_put_i32(b, -1); /* committed_leader_epoch */
            }
            kafka_put_cstring(b, f, ""); /* metadata: not kept (Kafka's "no metadata") */
            kafka_put_i16(b, p->error);
            kafka_put_tags(b, f);
        }
        kafka_put_tags(b, f);
    }
    if (v >= 2) {
        kafka_put_i16(b, error);
    }
    kafka_put_tags(b, f);
}

/* ---- ListGroups ---- */

int kafka_decode_list_groups(struct kafka_rd *r, const struct kafka_req_header *h)
{
    kafka_rd_tags(r, h->flex); /* no fields before v4's states_filter */
    return r->bad || r->left != 0 ? -1 : 0;
}

void kafka_encode_list_groups(struct buf *b, const struct kafka_req_header *h, int16_t error,
                              int32_t n, const struct kafka_group_listing *groups)
{
    bool f = h->flex;
    if (h->api_version >= 1) {
        kafka_put_i32(b, 0); /* throttle_time_ms */
    }
    kafka_put_i16(b, error);
    kafka_put_array(b, f, n);
    for (int32_t i = 0; i < n; i++) {
        kafka__put_nonnull(b, f, groups[i].group_id);
        kafka__put_nonnull(b, f, groups[i].protocol_type);
        kafka_put_tags(b, f);
    }
    kafka_put_tags(b, f);
}

/* ---- DescribeGroups ---- */

int kafka_decode_describe_groups(struct kafka_rd *r, const struct kafka_req_header *h,
                                 struct kafka_arena *a, struct kafka_describe_groups_req *m)
{
    bool f = h->flex;
    memset(m, 0, sizeof *m);
    m->groups = kafka__rd_elems(r, f, 2, a, sizeof *m->groups, &m->n_groups);
    if (r->bad) {
        return -1;
    }
    for (int32_t i = 0; i < m->n_groups && !r->bad; i++) {
        m->groups[i] = kafka_rd_string(r, f);
        if (m->groups[i].len < 0) {
            r->bad = true;
        }
    }
    if (h->api_version >= 3) {
        m->include_authorized_operations = kafka_rd_i8(r) != 0;
    }
    kafka_rd_tags(r, f);
    return r->bad || r->left != 0 || a->oom ? -1 : 0;
}

void kafka_encode_describe_groups(struct buf *b, const struct kafka_req_header *h, int32_t n,
                                  const struct kafka_dg_group *groups)
{
    int16_t v = h->api_version;
    bool f = h->flex;
    if (v >= 1) {
        kafka_put_i32(b, 0); /* throttle_time_ms */
    }
    kafka_put_array(b, f, n);
    for (int32_t i = 0; i < n; i++) {
        const struct kafka_dg_group *g = &groups[i];
        kafka_put_i16(b, g->error);
        kafka__put_nonnull(b, f, g->group_id);
        kafka__put_nonnull(b, f, g->state);
        kafka__put_nonnull(b, f, g->protocol_type);
        kafka__put_nonnull(b, f, g->protocol_data);
        kafka_put_array(b, f, g->n_members);
        for (int32_t k = 0; k < g->n_members; k++) {
            const struct kafka_dg_member *p = &g->members[k];
            kafka__put_nonnull(b, f, p->member_id);
            if (v >= 4) {
                kafka_put_cstring(b, f, p->group_instance_id);
            }
            kafka__put_nonnull(b, f, p->client_id);
            kafka__put_nonnull(b, f, p->client_host);
            kafka__put_nonnull_bytes(b, f, p->metadata, p->metadata_len);
            kafka__put_nonnull_bytes(b, f, p->assignment, p->assignment_len);
            kafka_put_tags(b, f);
        }
        if (v >= 3) {
            kafka_put_i32(b, INT32_MIN); /* authorized_operations: none computed */
        }
        kafka_put_tags(b, f);
    }
    kafka_put_tags(b, f);
}

/* ---- DescribeConfigs ---- */

int kafka_decode_describe_configs(struct kafka_rd *r, const struct kafka_req_header *h,
                                  struct kafka_arena *a, struct kafka_describe_configs_req *m)
{
    int16_t v = h->api_version;
    bool f = h->flex;
    memset(m, 0, sizeof *m);
    m->n_resources = kafka_rd_array(r, f, 7);
    if (r->bad || m->n_resources < 0) {
        return -1;
    }
    if (m->n_resources > 0 && (m->resources = kafka_arena_alloc(
                                   a, (size_t)m->n_resources * sizeof *m->resources)) == NULL) {
        return -1;
    }
    for (int32_t i = 0; i < m->n_resources && !r->bad; i++) {
        struct kafka_dc_resource *res = &m->resources[i];
        res->type = kafka_rd_i8(r);
        res->name = kafka_rd_string(r, f);
        res->n_keys = kafka_rd_array(r, f, 2); /* nullable: every setting */
        if (r->bad || res->name.len < 0) {
            return -1;
        }
        if (res->n_keys > 0 &&
            (res->keys = kafka_arena_alloc(a, (size_t)res->n_keys * sizeof *res->keys)) == NULL) {
            return -1;
        }
        for (int32_t k = 0; k < res->n_keys && !r->bad; k++) {
            res->keys[k] = kafka_rd_string(r, f);
            if (res->keys[k].len < 0) {
                r->bad = true;
            }
        }
        kafka_rd_tags(r, f);
    }
    if (v >= 1) {
        m->include_synonyms = kafka_rd_i8(r) != 0;
    }
    if (v >= 3) {
        m->include_documentation = kafka_rd_i8(r) != 0;
    }
    kafka_rd_tags(r, f);
    return r->bad || r->left != 0 || a->oom ? -1 : 0;
}

void kafka_encode_describe_configs(struct buf *b, const struct kafka_req_header *h, int32_t n,
                                   const struct kafka_dc_result *results)
{
    int16_t v = h->api_version;
    bool f = h->flex;
    kafka_put_i32(b, 0); /* throttle_time_ms */
    kafka_put_array(b, f, n);
    for (int32_t i = 0; i < n; i++) {
        const struct kafka_dc_result *res = &results[i];
        kafka_put_i16(b, res->error);
        kafka_put_cstring(b, f, res->message);
        kafka_put_i8(b, res->type);
        kafka__put_nonnull(b, f, res->name);
        kafka_put_array(b, f, res->n_configs);
        for (int32_t k = 0; k < res->n_configs; k++) {
            const struct kafka_dc_entry *e = &res->configs[k];
            kafka__put_nonnull(b, f, e->name);
            kafka_put_cstring(b, f, e->value);
            kafka_put_i8(b, e->read_only ? 1 : 0);
            if (v == 0) {
                kafka_put_i8(b, e->is_default ? 1 : 0); /* is_default (v0 only) */
            } else {
                kafka_put_i8(b, e->source); /* config_source (v1+) */
            }
            kafka_put_i8(b, 0); /* is_sensitive */
            if (v >= 1) {
                kafka_put_array(b, f, 0); /* synonyms */
            }
            if (v >= 3) {
                kafka_put_i8(b, 0);            /* config_type: UNKNOWN */
                kafka_put_cstring(b, f, NULL); /* documentation */
            }
            kafka_put_tags(b, f);
        }
        kafka_put_tags(b, f);
    }
    kafka_put_tags(b, f);
}

/* ---- AlterConfigs, IncrementalAlterConfigs ----
 * Flexible from AlterConfigs v2 and IncrementalAlterConfigs v1, beyond
 * kafka_apis[]; h->flex is honoured all the same. */

int kafka_decode_alter_configs(struct kafka_rd *r, const struct kafka_req_header *h,
                               struct kafka_arena *a, struct kafka_alter_configs_req *m)
{
    bool f = h->flex;
    memset(m, 0, sizeof *m);
    m->incremental = h->api_key == KAFKA_INCREMENTAL_ALTER_CONFIGS;
    m->n_resources = kafka_rd_array(r, f, f ? 4 : 7);
    if (r->bad || m->n_resources < 0) {
        return -1;
    }
    if (m->n_resources > 0 && (m->resources = kafka_arena_alloc(
                                   a, (size_t)m->n_resources * sizeof *m->resources)) == NULL) {
        return -1;
    }
    /* name, (config_operation,) value, (tags) */
    size_t entry_min = (f ? 3 : 4) + (m->incremental ? 1 : 0);
    for (int32_t i = 0; i < m->n_resources && !r->bad; i++) {
        struct kafka_ac_resource *res = &m->resources[i];
        res->type = kafka_rd_i8(r);
        res->name = kafka_rd_string(r, f);
        res->n_entries = kafka_rd_array(r, f, entry_min);
        if (r->bad || res->name.len < 0 || res->n_entries < 0) {
            return -1;
        }
        if (res->n_entries > 0 && (res->entries = kafka_arena_alloc(
                                       a, (size_t)res->n_entries * sizeof *res->entries)) == NULL) {
            return -1;
        }
        for (int32_t k = 0; k < res->n_entries && !r->bad; k++) {
            struct kafka_alter_entry *e = &res->entries[k];
            e->name = kafka_rd_string(r, f);
            e->op = m->incremental ? kafka_rd_i8(r) : KAFKA_CONFIG_OP_SET;
            e->value = kafka_rd_string(r, f); /* nullable */
            if (e->name.len < 0) {
                r->bad = true;
            }
            kafka_rd_tags(r, f);
        }
        kafka_rd_tags(r, f);
    }
    m->validate_only = kafka_rd_i8(r) != 0;
    kafka_rd_tags(r, f);
    return r->bad || r->left != 0 || a->oom ? -1 : 0;
}

void kafka_encode_alter_configs(struct buf *b, const struct kafka_req_header *h,
                                const struct kafka_alter_configs_req *m)
{
    bool f = h->flex;
    kafka_put_i32(b, 0); /* throttle_time_ms */
    kafka_put_array(b, f, m->n_resources);
    for (int32_t i = 0; i < m->n_resources; i++) {
        const struct kafka_ac_resource *res = &m->resources[i];
        kafka_put_i16(b, res->error);
        kafka_put_cstring(b, f, res->error_message);
        kafka_put_i8(b, res->type);
        kafka__put_nonnull_str(b, f, res->name);
        kafka_put_tags(b, f);
    }
    kafka_put_tags(b, f);
}


/* ---- SaslHandshake, SaslAuthenticate ---- */

int kafka_decode_sasl_handshake(struct kafka_rd *r, const struct kafka_req_header *h,
                                struct kafka_str *mechanism)
{
    *mechanism = kafka_rd_string(r, h->flex);
    kafka_rd_tags(r, h->flex);
    return r->bad || r->left != 0 || mechanism->len < 0 ? -1 : 0;
}

void kafka_encode_sasl_handshake(struct buf *b, int16_t error, const char *const *mechanisms,
                                 int n)
{
    kafka_put_i16(b, error);
    kafka_put_array(b, false, n);
    for (int i = 0; i < n; i++) {
        kafka_put_cstring(b, false, mechanisms[i]);
    }
}

int kafka_decode_sasl_authenticate(struct kafka_rd *r, const struct kafka_req_header *h,
                                   struct kafka_str *auth_bytes)
{
    *auth_bytes = kafka_rd_bytes(r, h->flex);
    kafka_rd_tags(r, h->flex);
    return r->bad || r->left != 0 || auth_bytes->len < 0 ? -1 : 0;
}

void kafka_encode_sasl_authenticate(struct buf *b, const struct kafka_req_header *h,
                                    int16_t error, const char *message, const void *auth_bytes,
                                    size_t auth_len)
{
    kafka_put_i16(b, error);
    kafka_put_cstring(b, h->flex, message);
    kafka_put_bytes(b, h->flex, auth_bytes != NULL ? auth_bytes : "", auth_len);
    if (h->api_version >= 1) {
        kafka_put_i64(b, 0); /* session_lifetime_ms: no re-authentication */
    }
    kafka_put_tags(b, h->flex);
}
