/* libFuzzer target: the Kafka request decoder (src/kafka).
 *
 * The input is a byte stream as a Kafka connection would deliver it:
 * frames (int32 size + request) back to back, cut where the input ends.
 * Each frame goes through kafka_decode_header and, when the API and
 * version are supported, the body decoder of its API; a decoded request is
 * then answered by its response encoder (as the server would, with empty
 * answers). Every Produce partition's records go through
 * kafka_records_to_tally, including decompression.
 *
 * Beyond "no crash, no out-of-bounds read, no leak" (ASan/UBSan), it checks
 * one property: a record batch the converter accepts is a valid tally
 * batch (batch_verify), and converting it back to Kafka's format gives the
 * same number of records with a CRC that checks. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka/crc32c.h"
#include "kafka/msg.h"
#include "kafka/records.h"
#include "lib/batch.h"
#include "lib/err.h"

#define FUZZ_EXPORT __attribute__((visibility("default")))

static void fuzz_fail(const char *msg)
{
    fprintf(stderr, "fuzz-kafka: %s\n", msg);
    abort();
}

static void check_records(struct kafka_str rec)
{
    struct kafka_batch_info info;
    char errmsg[ERR_MSG_SIZE];
    struct buf t, back;
    struct batch_header h;
    buf_init(&t);
    buf_init(&back);
    if (kafka_records_to_tally(rec.p, rec.len < 0 ? 0 : (size_t)rec.len, &info, &t, errmsg) == 0) {
        if (batch_verify(t.data, t.len, &h, errmsg) != 0) {
            fuzz_fail("an accepted batch is not a valid tally batch");
        }
        batch_stamp(t.data, 0, 1700000000000, 1);
        size_t used;
        if (kafka_records_from_tally(t.data, t.len, 1, &back, &used, errmsg) != 0 ||
            used != t.len) {
            fuzz_fail("an accepted batch does not convert back");
        }
        if (back.len < KAFKA_BATCH_HEADER_SIZE) {
            fuzz_fail("converted back to nothing");
        }
        uint32_t count = (uint32_t)back.data[57] << 24 | (uint32_t)back.data[58] << 16 |
                         (uint32_t)back.data[59] << 8 | back.data[60];
        uint32_t crc = (uint32_t)back.data[17] << 24 | (uint32_t)back.data[18] << 16 |
                       (uint32_t)back.data[19] << 8 | back.data[20];
        if (count != h.record_count || (int32_t)count != info.record_count ||
            kafka_crc32c(back.data + 21, back.len - 21) != crc) {
            fuzz_fail("record count or CRC differs after the round trip");
        }
    }
    buf_free(&t);
    buf_free(&back);
}

static void decode_body(struct kafka_rd *r, const struct kafka_req_header *h)
{
    struct kafka_arena a;
    struct buf out;
    kafka_arena_init(&a);
    buf_init(&out);
    switch (h->api_key) {
    case KAFKA_API_VERSIONS:
        kafka_encode_api_versions(&out, h->api_version, 0);
        break;
    case KAFKA_METADATA: {
        struct kafka_metadata_req m;
        if (kafka_decode_metadata(r, h, &a, &m) == 0) {
            struct kafka_metadata_resp resp = {0};
            kafka_encode_metadata(&out, h, &resp);
        }
        break;
    }
    case KAFKA_PRODUCE: {
        struct kafka_produce_req m;
        if (kafka_decode_produce(r, h, &a, &m) == 0) {
            for (int32_t i = 0; i < m.n_topics; i++) {
                for (int32_t k = 0; k < m.topics[i].n_parts; k++) {
                    check_records(m.topics[i].parts[k].records);
                }
            }
            kafka_encode_produce(&out, h, &m);
        }
        break;
    }
    case KAFKA_FETCH: {
        struct kafka_fetch_req m;
        if (kafka_decode_fetch(r, h, &a, &m) == 0) {
            kafka_encode_fetch(&out, h, &m);
        }
        break;
    }
    case KAFKA_LIST_OFFSETS: {
        struct kafka_list_req m;
        if (kafka_decode_list_offsets(r, h, &a, &m) == 0) {
            kafka_encode_list_offsets(&out, h, &m);
        }
        break;
    }
    case KAFKA_CREATE_TOPICS: {
        struct kafka_create_req m;
        if (kafka_decode_create_topics(r, h, &a, &m) == 0) {
            kafka_encode_create_topics(&out, h, &m);
        }
        break;
    }
    case KAFKA_DELETE_TOPICS: {
        struct kafka_delete_req m;
        if (kafka_decode_delete_topics(r, h, &a, &m) == 0) {
            kafka_encode_delete_topics(&out, h, &m);
        }
        break;
    }
    case KAFKA_FIND_COORDINATOR: {
        struct kafka_find_coord_req m;
        if (kafka_decode_find_coordinator(r, h, &m) == 0) {
            struct kafka_broker coord = {.node_id = 1, .host = "localhost", .port = 9092};
            kafka_encode_find_coordinator(&out, h, 15, "none", NULL);
            kafka_encode_find_coordinator(&out, h, 0, NULL, &coord);
        }
        break;
    }
    case KAFKA_JOIN_GROUP: {
        struct kafka_join_req m;
        if (kafka_decode_join_group(r, h, &a, &m) == 0) {
            struct kafka_join_member member = {.member_id = "m", .group_instance_id = NULL};
            if (m.n_protocols > 0) {
                member.metadata = m.protocols[0].metadata.p;
                member.metadata_len = (size_t)m.protocols[0].metadata.len;
            }
            struct kafka_join_resp resp = {.member_id = "m", .n_members = 1, .members = &member};
            kafka_encode_join_group(&out, h, &resp);
        }
        break;
    }
    case KAFKA_SYNC_GROUP: {
        struct kafka_sync_req m;
        if (kafka_decode_sync_group(r, h, &a, &m) == 0) {
            if (m.n_assignments > 0) {
                kafka_encode_sync_group(&out, h, 0, m.assignments[0].assignment.p,
                                        (size_t)m.assignments[0].assignment.len);
            } else {
                kafka_encode_sync_group(&out, h, 27, NULL, 0);
            }
        }
        break;
    }
    case KAFKA_HEARTBEAT: {
        struct kafka_heartbeat_req m;
        if (kafka_decode_heartbeat(r, h, &m) == 0) {
            kafka_encode_heartbeat(&out, h, 0);
        }
        break;
    }
    case KAFKA_LEAVE_GROUP: {
        struct kafka_leave_req m;
        if (kafka_decode_leave_group(r, h, &a, &m) == 0) {
            kafka_encode_leave_group(&out, h, 0, &m);
        }
        break;
    }
    case KAFKA_OFFSET_COMMIT: {
        struct kafka_commit_req m;
        if (kafka_decode_offset_commit(r, h, &a, &m) == 0) {
            kafka_encode_offset_commit(&out, h, &m);
        }
        break;
    }
    case KAFKA_OFFSET_FETCH: {
        struct kafka_ofetch_req m;
        if (kafka_decode_offset_fetch(r, h, &a, &m) == 0) {
            kafka_encode_offset_fetch(&out, h, 0, m.n_topics, m.topics);
        }
        break;
    }
    case KAFKA_LIST_GROUPS:
        if (kafka_decode_list_groups(r, h) == 0) {
            struct kafka_group_listing g = {.group_id = "g", .protocol_type = "consumer"};
            kafka_encode_list_groups(&out, h, 0, 1, &g);
        }
        break;
    case KAFKA_DESCRIBE_GROUPS: {
        struct kafka_describe_groups_req m;
        if (kafka_decode_describe_groups(r, h, &a, &m) == 0) {
            struct kafka_dg_group *g = NULL;
            if (m.n_groups > 0) {
                g = kafka_arena_alloc(&a, (size_t)m.n_groups * sizeof *g);
            }
            if (m.n_groups == 0 || g != NULL) {
                kafka_encode_describe_groups(&out, h, m.n_groups, g);
            }
        }
        break;
    }
    case KAFKA_DESCRIBE_CONFIGS: {
        struct kafka_describe_configs_req m;
        if (kafka_decode_describe_configs(r, h, &a, &m) == 0) {
            static const struct kafka_dc_entry entry = {.name = "retention.ms", .value = "-1",
                                                        .source = 5};
            struct kafka_dc_result *res = NULL;
            if (m.n_resources > 0) {
                res = kafka_arena_alloc(&a, (size_t)m.n_resources * sizeof *res);
            }
            for (int32_t i = 0; res != NULL && i < m.n_resources; i++) {
                res[i].type = m.resources[i].type;
                res[i].n_configs = 1;
                res[i].configs = &entry;
            }
            if (m.n_resources == 0 || res != NULL) {
                kafka_encode_describe_configs(&out, h, m.n_resources, res);
            }
        }
        break;
    }
    case KAFKA_ALTER_CONFIGS:
    case KAFKA_INCREMENTAL_ALTER_CONFIGS: {
        struct kafka_alter_configs_req m;
        if (kafka_decode_alter_configs(r, h, &a, &m) == 0) {
            if (m.n_resources > 0) {
                m.resources[0].error = 40;
                m.resources[0].error_message = "invalid";
            }
            kafka_encode_alter_configs(&out, h, &m);
        }
        break;
    }
    case KAFKA_INIT_PRODUCER_ID: {
        struct kafka_init_pid_req m;
        if (kafka_decode_init_pid(r, h, &m) == 0) {
            kafka_encode_init_pid(&out, 0, 1, 0);
        }
        break;
    }
    }
    buf_free(&out);
    kafka_arena_free(&a);
}

FUZZ_EXPORT int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    while (size - pos >= 4) {
        uint32_t n = (uint32_t)data[pos] << 24 | (uint32_t)data[pos + 1] << 16 |
                     (uint32_t)data[pos + 2] << 8 | data[pos + 3];
        pos += 4;
        size_t len = n < size - pos ? n : size - pos;
        struct kafka_rd r;
        struct kafka_req_header h;
        kafka_rd_init(&r, data + pos, len);
        if (kafka_decode_header(&r, &h) == 0) {
            decode_body(&r, &h);
        }
        pos += len;
    }
    return 0;
}
