/* The Kafka front door's consumer-group, committed-offset and config APIs
 * (kgw_int.h):
 *   FindCoordinator    METADATA: the Raft leader is every group's coordinator
 *   JoinGroup, SyncGroup, Heartbeat, LeaveGroup
 *                      the leader's group coordinator (kgroup.h); a
 *                      follower answers NOT_COORDINATOR
 *   OffsetCommit       GROUP_COMMIT per partition: Kafka's committed offset
 *                      is tally's replicated group position, the one
 *                      `tally consume --group` reads and moves
 *   OffsetFetch        READ_INDEX (the leader confirms it leads and has
 *                      applied every acknowledged commit) + GROUP_LIST
 *   ListGroups         the coordinator's groups + GROUP_LIST (groups with
 *                      positions only are listed too, as Kafka lists groups
 *                      with offsets and no members)
 *   DescribeGroups     the coordinator; a group without members is "Empty"
 *                      if it has positions, "Dead" if not (GROUP_LIST)
 *   DescribeConfigs    TOPIC_LIST: cleanup.policy, retention.ms,
 *                      retention.bytes, segment.bytes
 *   AlterConfigs, IncrementalAlterConfigs
 *                      TOPIC_LIST (the current settings) + TOPIC_CONFIG
 * Group ids are tally group names: 1 to PROTO_NAME_MAX-1 bytes. Under
 * authorize = acl, joining, syncing, heartbeats and leaving need READ on
 * the group, as committing does natively (docs/security.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka/errors.h"
#include "lib/err.h"
#include "lib/logger.h"
#include "proto/proto.h"
#include "server/auth.h"
#include "server/kconn.h"
#include "server/kgw_int.h"

/* ---- common --------------------------------------------------------------- */

static const char *kgw__principal(struct kjob *job)
{
    struct auth_conn **slot = kconn_job_auth(job);
    return slot != NULL ? auth_conn_principal(*slot) : NULL;
}

/* Whether @job may act in group @group (READ on it under authorize = acl);
 * logged when not. */
static bool kgw__group_allowed(struct kgw *kg, struct kjob *job, struct kafka_str group)
{
    char name[PROTO_NAME_MAX];
    if (!kg->cfg->authorize_acl) {
        return true;
    }
    if (!kgw__name_ok(group)) {
        return false;
    }
    kgw__name(name, group);
    const char *who = kgw__principal(job);
    if (gw_allowed(kg->gw, who, ACL_GROUP, name, ACL_READ)) {
        return true;
    }
    TLOG_WARN("auth", "%s: denied: %s may not read group %s (Kafka %s)", kconn_job_peer(job),
              who != NULL ? who : "(nobody)", name,
              kafka_api_find(job->h.api_key) != NULL ? kafka_api_find(job->h.api_key)->name : "");
    return false;
}

/* The error for a group request before it reaches the coordinator: not
 * the leader, a group id tally cannot name, or not allowed. */
static int16_t kgw__group_gate(struct kgw *kg, struct kjob *job, struct kafka_str group)
{
    if (!kgw__name_ok(group)) {
        return KAFKA_INVALID_GROUP_ID;
    }
    if (!kg->leading) {
        return KAFKA_NOT_COORDINATOR;
    }
    if (!kgw__group_allowed(kg, job, group)) {
        return KAFKA_GROUP_AUTHORIZATION_FAILED;
    }
    return KAFKA_NONE;
}

/* ---- FindCoordinator ------------------------------------------------------ */

struct kgw__fc {
    struct kafka_find_coord_req req;
    int16_t error;
    const char *message;
    struct kafka_broker coord;
    bool found;
};

static void kgw__fc_encode(struct kjob *job)
{
    struct kgw__fc *fc = job->state;
    kafka_encode_find_coordinator(&job->resp, &job->h, fc->error, fc->message,
                                  fc->found ? &fc->coord : NULL);
}

static void kgw__fc_meta(struct kgw__sub *sub, struct kgw__answer *a)
{
    struct kgw__fc *fc = sub->job->state;
    struct proto_metadata_resp meta;
    if (a->code != 0 || proto_get_metadata_resp(&a->body, &meta) != 0 || meta.leader_id == 0) {
        fc->error = KAFKA_COORDINATOR_NOT_AVAILABLE;
        fc->message = "no Raft leader is known yet: try again";
    } else if (!kgw__kafka_addr(sub->kg->cfg, meta.leader_id, &fc->coord)) {
        fc->error = KAFKA_COORDINATOR_NOT_AVAILABLE;
        fc->message = "the leader's Kafka address is not known here (kafka_peer)";
    } else {
        fc->found = true;
    }
    kgw__finish(sub->job, kgw__fc_encode);
}

void kgw__find_coordinator(struct kgw *kg, struct kjob *job, struct kafka_rd *rd)
{
    struct kgw__fc *fc = kafka_arena_alloc(&job->arena, sizeof *fc);
    if (fc == NULL) {
        kgw__reject(job, "out of memory");
        return;
    }
    job->state = fc; /* in the arena: freed with the job */
    if (kafka_decode_find_coordinator(rd, &job->h, &fc->req) != 0) {
        kgw__reject(job, "malformed FindCoordinator request");
        return;
    }
    if (fc->req.key_type != KAFKA_COORDINATOR_GROUP) {
        fc->error = KAFKA_COORDINATOR_NOT_AVAILABLE;
        fc->message = "tally has no transactions";
        kgw__finish(job, kgw__fc_encode);
        return;
    }
    if (!kgw__name_ok(fc->req.key)) {
        fc->error = KAFKA_INVALID_GROUP_ID;
        fc->message = "a group id is 1 to 255 bytes";
        kgw__finish(job, kgw__fc_encode);
        return;
    }
    struct buf body;
    struct proto_metadata_req mreq = {0};
    buf_init(&body);
    proto_put_metadata_req(&body, &mreq);
    kgw__native(kg, job, PROTO_METADATA, &body, kgw__fc_meta, 0, 0);
    buf_free(&body);
}

/* ---- JoinGroup, SyncGroup, Heartbeat, LeaveGroup --------------------------- */

struct kgw__join {
    struct kafka_join_req req;
    struct buf body;             /* the encoded answer body, made in the callback */
};

static void kgw__join_free(void *p)
{
    struct kgw__join *j = p;
    buf_free(&j->body);
    free(j);
}

static void kgw__join_encode(struct kjob *job)
{
    struct kgw__join *j = job->state;
    buf_put(&job->resp, j->body.data, j->body.len);
}

/* The coordinator's answer (now or after the rebalance). The answer's
 * strings live in the coordinator only during this call: encode now. */
static void kgw__join_answer(void *arg, const struct kafka_join_resp *resp)
{
    struct kjob *job = arg;
    struct kgw__join *j = job->state;
    kafka_encode_join_group(&j->body, &job->h, resp);
    kgw__finish(job, kgw__join_encode);
    kjob_unref(job);
}

/* @s as a C string in @job's arena ("" for null, or out of memory). */
static const char *kgw__cstr(struct kjob *job, struct kafka_str s)
{
    char *p = kafka_arena_alloc(&job->arena, s.len > 0 ? (size_t)s.len + 1 : 1);
    if (p != NULL && s.len > 0) {
        memcpy(p, s.p, (size_t)s.len); /* the arena zeroes: NUL-terminated */
    }
    return p != NULL ? p : "";
}

void kgw__join_group(struct kgw *kg, struct kjob *job, struct kafka_rd *rd)
{
    struct kgw__join *j = calloc(1, sizeof *j);
    if (j == NULL) {
        kgw__reject(job, "out of memory");
        return;
    }
    buf_init(&j->body);
    job->state = j;
    job->free_state = kgw__join_free;
    if (kafka_decode_join_group(rd, &job->h, &job->arena, &j->req) != 0) {
        kgw__reject(job, "malformed JoinGroup request");
        return;
    }
    int16_t error = kgw__group_gate(kg, job, j->req.group_id);
    job->refs++; /* the coordinator's, until it answers */
    if (error != KAFKA_NONE) {
        struct kafka_join_resp r = {.error = error, .generation_id = -1, .leader = "",
                                    .member_id = ""};
        kgw__join_answer(job, &r);
        return;
    }
    char host[64];
    const char *peer = kconn_job_peer(job);
    snprintf(host, sizeof host, "/%s",
             peer != NULL && strncmp(peer, "kafka client ", 13) == 0 ? peer + 13 : "");
    char *colon = strrchr(host, ':');
    if (colon != NULL) {
        *colon = '\0'; /* Kafka shows the client's host without its port */
    }
    kgroups_join(kg->groups, &j->req, job->h.api_version, kgw__cstr(job, job->h.client_id), host,
                 kgw__join_answer, job);
}

struct kgw__sync {
    struct kafka_sync_req req;
    int16_t error;
    struct buf assignment;
};

static void kgw__sync_free(void *p)
{
    struct kgw__sync *s = p;
    buf_free(&s->assignment);
    free(s);
}

static void kgw__sync_encode(struct kjob *job)
{
    struct kgw__sync *s = job->state;
    kafka_encode_sync_group(&job->resp, &job->h, s->error, s->assignment.data,
                            s->assignment.len);
}

static void kgw__sync_answer(void *arg, int16_t error, const uint8_t *assignment, size_t len)
{
    struct kjob *job = arg;
    struct kgw__sync *s = job->state;
    s->error = error;
    if (len > 0) {
        buf_put(&s->assignment, assignment, len);
    }
    kgw__finish(job, kgw__sync_encode);
    kjob_unref(job);
}

void kgw__sync_group(struct kgw *kg, struct kjob *job, struct kafka_rd *rd)
{
    struct kgw__sync *s = calloc(1, sizeof *s);
    if (s == NULL) {
        kgw__reject(job, "out of memory");
        return;
    }
    buf_init(&s->assignment);
    job->state = s;
    job->free_state = kgw__sync_free;
    if (kafka_decode_sync_group(rd, &job->h, &job->arena, &s->req) != 0) {
        kgw__reject(job, "malformed SyncGroup request");
        return;
    }
    int16_t error = kgw__group_gate(kg, job, s->req.group_id);
    job->refs++; /* the coordinator's, until it answers */
    if (error != KAFKA_NONE) {
        kgw__sync_answer(job, error, NULL, 0);
        return;
    }
    kgroups_sync(kg->groups, &s->req, kgw__sync_answer, job);
}

static void kgw__error_encode(struct kjob *job)
{
    const int16_t *error = job->state;
    if (job->h.api_key == KAFKA_HEARTBEAT) {
        kafka_encode_heartbeat(&job->resp, &job->h, *error);
    }
}

void kgw__heartbeat(struct kgw *kg, struct kjob *job, struct kafka_rd *rd)
{
    struct kafka_heartbeat_req req;
    int16_t *error = kafka_arena_alloc(&job->arena, sizeof *error);
    if (error == NULL) {
        kgw__reject(job, "out of memory");
        return;
    }
    if (kafka_decode_heartbeat(rd, &job->h, &req) != 0) {
        kgw__reject(job, "malformed Heartbeat request");
        return;
    }
    job->state = error;
    *error = kgw__group_gate(kg, job, req.group_id);
    if (*error == KAFKA_NONE) {
        *error = kgroups_heartbeat(kg->groups, &req);
    }
    kgw__finish(job, kgw__error_encode);
}

struct kgw__leave {
    struct kafka_leave_req req;
    int16_t error;
};

static void kgw__leave_encode(struct kjob *job)
{
    struct kgw__leave *l = job->state;
    kafka_encode_leave_group(&job->resp, &job->h, l->error, &l->req);
}

void kgw__leave_group(struct kgw *kg, struct kjob *job, struct kafka_rd *rd)
{
    struct kgw__leave *l = kafka_arena_alloc(&job->arena, sizeof *l);
    if (l == NULL) {
        kgw__reject(job, "out of memory");
        return;
    }
    job->state = l;
    if (kafka_decode_leave_group(rd, &job->h, &job->arena, &l->req) != 0) {
        kgw__reject(job, "malformed LeaveGroup request");
        return;
    }
    l->error = kgw__group_gate(kg, job, l->req.group_id);
    if (l->error == KAFKA_NONE) {
        l->error = kgroups_leave(kg->groups, &l->req);
        if (job->h.api_version >= 3) {
            l->error = KAFKA_NONE; /* v3+: per member */
        }
    } else {
        for (int32_t i = 0; i < l->req.n_members; i++) {
            l->req.members[i].error = l->error;
        }
    }
    kgw__finish(job, kgw__leave_encode);
}

/* ---- OffsetCommit ----------------------------------------------------------- */

static void kgw__commit_encode(struct kjob *job)
{
    kafka_encode_offset_commit(&job->resp, &job->h, job->state);
}

static void kgw__commit_answer(struct kgw__sub *sub, struct kgw__answer *a)
{
    struct kafka_commit_req *m = sub->job->state;
    struct kafka_commit_part *p = &m->topics[sub->t].parts[sub->p];
    switch (a->code) {
    case 0:
        p->error = KAFKA_NONE;
        break;
    case TALLY_NOTFOUND:
        p->error = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
        break;
    case TALLY_NOTLEADER:
    case TALLY_LEADERSHIP_LOST:
        /* The client finds the coordinator again and retries. */
        p->error = KAFKA_NOT_COORDINATOR;
        break;
    default:
        p->error = kafka_error_from_tally(a->code);
        TLOG_DEBUG("kafka", "OffsetCommit: %s", a->message);
    }
    if (sub->job->pending == 0) {
        kgw__finish(sub->job, kgw__commit_encode);
    }
}

void kgw__offset_commit(struct kgw *kg, struct kjob *job, struct kafka_rd *rd)
{
    struct kafka_commit_req *m = kafka_arena_alloc(&job->arena, sizeof *m);
    if (m == NULL) {
        kgw__reject(job, "out of memory");
        return;
    }
    job->state = m;
    if (kafka_decode_offset_commit(rd, &job->h, &job->arena, m) != 0) {
        kgw__reject(job, "malformed OffsetCommit request");
        return;
    }
    int16_t error = kgw__group_gate(kg, job, m->group_id);
    if (error == KAFKA_NONE) {
        error = kgroups_commit_check(kg->groups, m->group_id, m->generation_id, m->member_id);
    }
    job->pending++; /* until every commit is sent */
    for (int32_t t = 0; t < m->n_topics; t++) {
        struct kafka_commit_topic *topic = &m->topics[t];
        for (int32_t i = 0; i < topic->n_parts; i++) {
            struct kafka_commit_part *p = &topic->parts[i];
            p->error = error;
            if (error != KAFKA_NONE) {
                continue;
            }
            if (p->index != 0 || !kgw__name_ok(topic->name)) {
                p->error = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (p->offset < 0) {
                p->error = KAFKA_OFFSET_OUT_OF_RANGE;
                continue;
            }
            struct proto_group_commit_req c;
            struct buf body;
            memset(&c, 0, sizeof c);
            kgw__name(c.group, m->group_id);
            kgw__name(c.topic, topic->name);
            c.offset = (uint64_t)p->offset;
            buf_init(&body);
            proto_put_group_commit_req(&body, &c);
            kgw__native(kg, job, PROTO_GROUP_COMMIT, &body, kgw__commit_answer, t, i);
            buf_free(&body);
        }
    }
    if (--job->pending == 0) {
        kgw__finish(job, kgw__commit_encode);
    }
}

/* ---- the group positions of the store (GROUP_LIST) -------------------------- */

struct kgw__position {
    char group[PROTO_NAME_MAX];
    char topic[PROTO_NAME_MAX];
    uint64_t offset;
};

/* Decode a GROUP_LIST answer into @out (malloc'ed); -1 if malformed. */
static int kgw__positions(struct kgw__answer *a, struct kgw__position **out, uint32_t *n)
{
    struct proto_group_list_resp resp;
    *out = NULL;
    *n = 0;
    if (proto_get_group_list_resp(&a->body, &resp) != 0) {
        return -1;
    }
    struct kgw__position *v = calloc(resp.n_positions + 1, sizeof *v);
    if (v == NULL) {
        return -1;
    }
    for (uint32_t i = 0; i < resp.n_positions; i++) {
        struct proto_group_position pp;
        if (proto_get_group_position(&a->body, &pp) != 0) {
            free(v);
            return -1;
        }
        snprintf(v[i].group, sizeof v[i].group, "%s", pp.group);
        snprintf(v[i].topic, sizeof v[i].topic, "%s", pp.topic);
        v[i].offset = pp.offset;
    }
    *out = v;
    *n = resp.n_positions;
    return 0;
}

static void kgw__group_list_req(struct kgw *kg, struct kjob *job, const char *group,
                                void (*cb)(struct kgw__sub *, struct kgw__answer *))
{
    struct proto_group_list_req q;
    struct buf body;
    memset(&q, 0, sizeof q);
    snprintf(q.group, sizeof q.group, "%s", group);
    buf_init(&body);
    proto_put_group_list_req(&body, &q);
    kgw__native(kg, job, PROTO_GROUP_LIST, &body, cb, 0, 0);
    buf_free(&body);
}

/* ---- OffsetFetch ------------------------------------------------------------ */

struct kgw__ofetch {
    struct kafka_ofetch_req req;
    int16_t error;
    int32_t n_topics;                    /* answered */
    struct kafka_ofetch_topic *topics;
};

static void kgw__ofetch_encode(struct kjob *job)
{
    struct kgw__ofetch *o = job->state;
    kafka_encode_offset_fetch(&job->resp, &job->h, o->error, o->n_topics, o->topics);
}

/* Every partition of the answer gets @error (and offset -1). */
static void kgw__ofetch_fail(struct kjob *job, int16_t error)
{
    struct kgw__ofetch *o = job->state;
    o->error = error;
    for (int32_t t = 0; t < o->n_topics; t++) {
        for (int32_t i = 0; i < o->topics[t].n_parts; i++) {
            o->topics[t].parts[i].offset = -1;
            o->topics[t].parts[i].error = error;
        }
    }
    kgw__finish(job, kgw__ofetch_encode);
}

static void kgw__ofetch_positions(struct kgw__sub *sub, struct kgw__answer *a)
{
    struct kjob *job = sub->job;
    struct kgw__ofetch *o = job->state;
    struct kgw__position *v;
    uint32_t n;
    if (a->code != 0 || kgw__positions(a, &v, &n) != 0) {
        kgw__ofetch_fail(job, a->code == TALLY_NOTLEADER ? KAFKA_NOT_COORDINATOR
                                                         : KAFKA_COORDINATOR_NOT_AVAILABLE);
        return;
    }
    if (o->req.n_topics < 0) {
        /* Every topic the group has a position on. */
        o->topics = kafka_arena_alloc(&job->arena, (n + 1) * sizeof *o->topics);
        struct kafka_ofetch_part *parts = kafka_arena_alloc(&job->arena,
                                                            (n + 1) * sizeof *parts);
        if (o->topics == NULL || parts == NULL) {
            free(v);
            o->n_topics = 0;
            kgw__ofetch_fail(job, KAFKA_COORDINATOR_NOT_AVAILABLE);
            return;
        }
        for (uint32_t i = 0; i < n; i++) {
            char *name = kgw__arena_str(job, v[i].topic);
            o->topics[i].name.p = (const uint8_t *)(name != NULL ? name : "");
            o->topics[i].name.len = name != NULL ? (int32_t)strlen(name) : 0;
            o->topics[i].n_parts = 1;
            o->topics[i].parts = &parts[i];
            parts[i].index = 0;
            parts[i].offset = (int64_t)v[i].offset;
        }
        o->n_topics = (int32_t)n;
    } else {
        for (int32_t t = 0; t < o->n_topics; t++) {
            struct kafka_ofetch_topic *topic = &o->topics[t];
            const struct kgw__position *found = NULL;
            for (uint32_t i = 0; i < n && found == NULL; i++) {
                if (strlen(v[i].topic) == (size_t)topic->name.len &&
                    memcmp(v[i].topic, topic->name.p, (size_t)topic->name.len) == 0) {
                    found = &v[i];
                }
            }
            for (int32_t i = 0; i < topic->n_parts; i++) {
                struct kafka_ofetch_part *p = &topic->parts[i];
                /* No position: -1 and no error, as Kafka answers; the
                 * client starts where auto.offset.reset says. */
                p->offset = found != NULL && p->index == 0 ? (int64_t)found->offset : -1;
                p->error = KAFKA_NONE;
            }
        }
    }
    free(v);
    kgw__finish(job, kgw__ofetch_encode);
}

static void kgw__ofetch_barrier(struct kgw__sub *sub, struct kgw__answer *a)
{
    struct kjob *job = sub->job;
    struct kgw__ofetch *o = job->state;
    if (a->code != 0) {
        /* Not the leader any more (or not yet able to confirm it): the
         * client asks for the coordinator again. */
        kgw__ofetch_fail(job, KAFKA_NOT_COORDINATOR);
        return;
    }
    char group[PROTO_NAME_MAX];
    kgw__name(group, o->req.group_id);
    kgw__group_list_req(sub->kg, job, group, kgw__ofetch_positions);
}

void kgw__offset_fetch(struct kgw *kg, struct kjob *job, struct kafka_rd *rd)
{
    struct kgw__ofetch *o = kafka_arena_alloc(&job->arena, sizeof *o);
    if (o == NULL) {
        kgw__reject(job, "out of memory");
        return;
    }
    job->state = o;
    if (kafka_decode_offset_fetch(rd, &job->h, &job->arena, &o->req) != 0) {
        kgw__reject(job, "malformed OffsetFetch request");
        return;
    }
    o->n_topics = o->req.n_topics > 0 ? o->req.n_topics : 0;
    o->topics = o->req.topics;
    int16_t error = kgw__group_gate(kg, job, o->req.group_id);
    if (error != KAFKA_NONE) {
        kgw__ofetch_fail(job, error);
        return;
    }
    /* A leader elected a moment ago may not have applied the last
     * commits of its predecessor yet: the barrier makes it apply them, so
     * a committed offset read here never goes backwards. */
    struct proto_read_index_req q = {0};
    struct buf body;
    buf_init(&body);
    proto_put_read_index_req(&body, &q);
    kgw__native(kg, job, PROTO_READ_INDEX, &body, kgw__ofetch_barrier, 0, 0);
    buf_free(&body);
}

/* ---- ListGroups, DescribeGroups -------------------------------------------- */

struct kgw__groups {
    struct kafka_describe_groups_req req; /* DescribeGroups */
    int16_t error;
    int32_t n;
    struct kafka_group_listing *list;     /* ListGroups */
    struct kafka_dg_group *described;     /* DescribeGroups */
};

static void kgw__groups_encode(struct kjob *job)
{
    struct kgw__groups *g = job->state;
    if (job->h.api_key == KAFKA_LIST_GROUPS) {
        kafka_encode_list_groups(&job->resp, &job->h, g->error, g->n, g->list);
    } else {
        kafka_encode_describe_groups(&job->resp, &job->h, g->n, g->described);
    }
}

static bool kgw__has_position(const struct kgw__position *v, uint32_t n, const char *group)
{
    for (uint32_t i = 0; i < n; i++) {
        if (strcmp(v[i].group, group) == 0) {
            return true;
        }
    }
    return false;
}

static void kgw__list_groups_answer(struct kgw__sub *sub, struct kgw__answer *a)
{
    struct kjob *job = sub->job;
    struct kgw__groups *g = job->state;
    struct kgw__position *v = NULL;
    uint32_t n = 0;
    const char *id, *type;
    if (a->code != 0 || kgw__positions(a, &v, &n) != 0) {
        g->error = a->code == TALLY_NOTLEADER ? KAFKA_NOT_COORDINATOR
                                              : KAFKA_COORDINATOR_NOT_AVAILABLE;
        kgw__finish(job, kgw__groups_encode);
        return;
    }
    unsigned live = 0;
    while (kgroups_at(sub->kg->groups, live, &id, &type)) {
        live++;
    }
    g->list = kafka_arena_alloc(&job->arena, (live + n + 1) * sizeof *g->list);
    if (g->list == NULL) {
        free(v);
        g->error = KAFKA_COORDINATOR_NOT_AVAILABLE;
        kgw__finish(job, kgw__groups_encode);
        return;
    }
    for (unsigned i = 0; kgroups_at(sub->kg->groups, i, &id, &type); i++) {
        if (strchr(id, KGROUP_TOPIC_SEP) != NULL) {
            continue; /* a tally group on one topic: listed by its name below */
        }
        g->list[g->n].group_id = kgw__arena_str(job, id);
        g->list[g->n].protocol_type = kgw__arena_str(job, type);
        g->n++;
    }
    for (uint32_t i = 0; i < n; i++) {
        bool seen = false;
        for (int32_t k = 0; k < g->n && !seen; k++) {
            seen = g->list[k].group_id != NULL && strcmp(g->list[k].group_id, v[i].group) == 0;
        }
        if (!seen) {
            g->list[g->n].group_id = kgw__arena_str(job, v[i].group);
            g->list[g->n].protocol_type = ""; /* offsets only, as Kafka lists them */
            g->n++;
        }
    }
    free(v);
    kgw__finish(job, kgw__groups_encode);
}

void kgw__list_groups(struct kgw *kg, struct kjob *job, struct kafka_rd *rd)
{
    struct kgw__groups *g = kafka_arena_alloc(&job->arena, sizeof *g);
    if (g == NULL) {
        kgw__reject(job, "out of memory");
        return;
    }
    job->state = g;
    if (kafka_decode_list_groups(rd, &job->h) != 0) {
        kgw__reject(job, "malformed ListGroups request");
        return;
    }
    if (!kg->leading) {
        g->error = KAFKA_NONE; /* coordinates no group: an empty list (clients ask every broker) */
        kgw__finish(job, kgw__groups_encode);
        return;
    }
    kgw__group_list_req(kg, job, "", kgw__list_groups_answer);
}

static void kgw__describe_groups_answer(struct kgw__sub *sub, struct kgw__answer *a)
{
    struct kjob *job = sub->job;
    struct kgw__groups *g = job->state;
    struct kgw__position *v = NULL;
    uint32_t n = 0;
    bool have_positions = a->code == 0 && kgw__positions(a, &v, &n) == 0;
    for (int32_t i = 0; i < g->n; i++) {
        struct kafka_dg_group *d = &g->described[i];
        if (d->error != KAFKA_NONE || !kgw__name_ok(g->req.groups[i])) {
            continue; /* refused, or a name no group can have: Dead */
        }
        if (kgroups_describe(sub->kg->groups, g->req.groups[i], &job->arena, d)) {
            continue;
        }
        /* No members: "Empty" if it has committed offsets, "Dead" if not. */
        if (!have_positions) {
            d->error = KAFKA_COORDINATOR_NOT_AVAILABLE;
        } else if (kgw__has_position(v, n, d->group_id)) {
            d->state = "Empty";
        }
    }
    free(v);
    kgw__finish(job, kgw__groups_encode);
}

void kgw__describe_groups(struct kgw *kg, struct kjob *job, struct kafka_rd *rd)
{
    struct kgw__groups *g = kafka_arena_alloc(&job->arena, sizeof *g);
    if (g == NULL) {
        kgw__reject(job, "out of memory");
        return;
    }
    job->state = g;
    if (kafka_decode_describe_groups(rd, &job->h, &job->arena, &g->req) != 0) {
        kgw__reject(job, "malformed DescribeGroups request");
        return;
    }
    g->n = g->req.n_groups;
    g->described = kafka_arena_alloc(&job->arena, (size_t)(g->n + 1) * sizeof *g->described);
    if (g->described == NULL) {
        kgw__reject(job, "out of memory");
        return;
    }
    for (int32_t i = 0; i < g->n; i++) {
        struct kafka_dg_group *d = &g->described[i];
        struct kafka_str id = g->req.groups[i];
        d->group_id = kgw__cstr(job, id);
        d->state = "Dead";
        d->protocol_type = "";
        d->protocol_data = "";
        d->error = kgw__group_gate(kg, job, id);
        if (d->error == KAFKA_INVALID_GROUP_ID) {
            d->error = KAFKA_NONE; /* described as Dead, as Kafka does */
        }
    }
    if (!kg->leading) {
        kgw__finish(job, kgw__groups_encode);
        return;
    }
    kgw__group_list_req(kg, job, "", kgw__describe_groups_answer);
}

/* ---- DescribeConfigs -------------------------------------------------------- */

struct kgw__dc {
    struct kafka_describe_configs_req req;
    struct kafka_dc_result *results;
};

static void kgw__dc_encode(struct kjob *job)
{
    struct kgw__dc *dc = job->state;
    kafka_encode_describe_configs(&job->resp, &job->h, dc->req.n_resources, dc->results);
}

static bool kgw__wanted(const struct kafka_dc_resource *r, const char *name)
{
    if (r->n_keys < 0) {
        return true;
    }
    for (int32_t i = 0; i < r->n_keys; i++) {
        if (strlen(name) == (size_t)r->keys[i].len &&
            memcmp(name, r->keys[i].p, (size_t)r->keys[i].len) == 0) {
            return true;
        }
    }
    return false;
}

/* A topic's settings in Kafka's names; only the segment size is fixed
 * when the topic is created (AlterConfigs changes the others). */
static void kgw__dc_topic(struct kjob *job, const struct kafka_dc_resource *r,
                          const struct proto_topic *t, uint64_t node_segment_bytes,
                          struct kafka_dc_result *out)
{
    static const char *const policies[] = {"delete", "delete", "compact", "compact,delete"};
    char num[3][24];
    struct kafka_dc_entry all[4];
    int64_t segment = t->segment_bytes > 0 ? t->segment_bytes : (int64_t)node_segment_bytes;
    snprintf(num[0], sizeof num[0], "%lld", (long long)t->retention_ms);
    snprintf(num[1], sizeof num[1], "%lld", (long long)t->retention_bytes);
    snprintf(num[2], sizeof num[2], "%lld", (long long)segment);
    all[0] = (struct kafka_dc_entry){"cleanup.policy",
                                     policies[t->policy < 4 ? t->policy : 0], false,
                                     t->policy == TALLY_POLICY_RETAIN, 0};
    all[1] = (struct kafka_dc_entry){"retention.ms", num[0], false, t->retention_ms < 0, 0};
    all[2] = (struct kafka_dc_entry){"retention.bytes", num[1], false, t->retention_bytes < 0,
                                     0};
    all[3] = (struct kafka_dc_entry){"segment.bytes", num[2], true, t->segment_bytes <= 0, 0};
    struct kafka_dc_entry *v = kafka_arena_alloc(&job->arena, sizeof all);
    int32_t n = 0;
    for (unsigned i = 0; v != NULL && i < 4; i++) {
        if (!kgw__wanted(r, all[i].name)) {
            continue;
        }
        v[n] = all[i];
        v[n].value = kgw__arena_str(job, all[i].value);
        v[n].source = all[i].is_default ? KAFKA_CONFIG_SOURCE_DEFAULT
                                        : KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC;
        n++;
    }
    out->configs = v;
    out->n_configs = v != NULL ? n : 0;
    if (v == NULL) {
        out->error = KAFKA_UNKNOWN_SERVER_ERROR;
    }
}

static void kgw__dc_topics(struct kgw__sub *sub, struct kgw__answer *a)
{
    struct kjob *job = sub->job;
    struct kgw__dc *dc = job->state;
    struct proto_topic_list_resp tl;
    struct proto_topic *topics = NULL;
    bool ok = a->code == 0 && proto_get_topic_list_resp(&a->body, &tl) == 0 &&
              (topics = calloc(tl.n_topics + 1, sizeof *topics)) != NULL;
    for (uint32_t i = 0; ok && i < tl.n_topics; i++) {
        ok = proto_get_topic(&a->body, &topics[i]) == 0;
    }
    for (int32_t i = 0; i < dc->req.n_resources; i++) {
        const struct kafka_dc_resource *r = &dc->req.resources[i];
        struct kafka_dc_result *out = &dc->results[i];
        if (out->error != KAFKA_NONE || r->type != KAFKA_RESOURCE_TOPIC) {
            continue;
        }
        if (!ok) {
            out->error = kafka_error_from_tally(a->code != 0 ? a->code : TALLY_PROTO);
            continue;
        }
        const struct proto_topic *t = NULL;
        for (uint32_t k = 0; k < tl.n_topics && t == NULL; k++) {
            if (strlen(topics[k].name) == (size_t)r->name.len &&
                memcmp(topics[k].name, r->name.p, (size_t)r->name.len) == 0) {
                t = &topics[k];
            }
        }
        if (t == NULL) {
            out->error = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
            out->message = "no such topic";
            continue;
        }
        kgw__dc_topic(job, r, t, sub->kg->cfg->segment_bytes, out);
    }
    free(topics);
    kgw__finish(job, kgw__dc_encode);
}

void kgw__describe_configs(struct kgw *kg, struct kjob *job, struct kafka_rd *rd)
{
    struct kgw__dc *dc = kafka_arena_alloc(&job->arena, sizeof *dc);
    if (dc == NULL) {
        kgw__reject(job, "out of memory");
        return;
    }
    job->state = dc;
    if (kafka_decode_describe_configs(rd, &job->h, &job->arena, &dc->req) != 0) {
        kgw__reject(job, "malformed DescribeConfigs request");
        return;
    }
    int32_t n = dc->req.n_resources;
    dc->results = kafka_arena_alloc(&job->arena, (size_t)(n + 1) * sizeof *dc->results);
    if (dc->results == NULL) {
        kgw__reject(job, "out of memory");
        return;
    }
    for (int32_t i = 0; i < n; i++) {
        const struct kafka_dc_resource *r = &dc->req.resources[i];
        struct kafka_dc_result *out = &dc->results[i];
        out->type = r->type;
        out->name = kgw__cstr(job, r->name);
        /* A broker has no settings a Kafka client could change here: an
         * empty list, as for a broker with only static settings. */
        if (r->type != KAFKA_RESOURCE_TOPIC && r->type != KAFKA_RESOURCE_BROKER) {
            out->error = KAFKA_INVALID_REQUEST;
            out->message = "tally describes topics and brokers only";
        }
    }
    struct kgw__names q;
    kgw__names_init(&q);
    for (int32_t i = 0; i < n; i++) {
        if (dc->req.resources[i].type == KAFKA_RESOURCE_TOPIC) {
            kgw__names_add(&q, dc->req.resources[i].name);
        }
    }
    kgw__names_send(kg, job, &q, kgw__dc_topics);
}

/* ---- AlterConfigs, IncrementalAlterConfigs ---------------------------------- */

/* A topic's settings as Kafka's names see them: cleanup.policy is a set
 * of "delete" and "compact". tally's retain is "delete" without limits. */
struct kgw__settings {
    bool delete, compact;
    int64_t retention_ms, retention_bytes;
};

static void kgw__settings_from(const struct proto_topic *t, struct kgw__settings *s)
{
    s->compact = t->policy == TALLY_POLICY_COMPACT || t->policy == TALLY_POLICY_COMPACT_DELETE;
    s->delete = t->policy != TALLY_POLICY_COMPACT;
    s->retention_ms = t->retention_ms;
    s->retention_bytes = t->retention_bytes;
}

static uint8_t kgw__settings_policy(const struct kgw__settings *s)
{
    if (s->compact) {
        return s->delete ? TALLY_POLICY_COMPACT_DELETE : TALLY_POLICY_COMPACT;
    }
    return s->retention_ms < 0 && s->retention_bytes < 0 ? TALLY_POLICY_RETAIN
                                                         : TALLY_POLICY_DELETE;
}

/* Apply one entry (@op) to @s; KAFKA_NONE or INVALID_CONFIG with @why. */
static int16_t kgw__settings_apply(struct kgw__settings *s, const struct kafka_alter_entry *e,
                                   int64_t segment_bytes, char *why, size_t n)
{
    struct kafka_str v = e->value;
    bool set = e->op == KAFKA_CONFIG_OP_SET, del = e->op == KAFKA_CONFIG_OP_DELETE;
    if (kgw__str_is(e->name, "cleanup.policy")) {
        bool want_delete = kgw__str_is(v, "delete") || kgw__str_is(v, "compact,delete") ||
                           kgw__str_is(v, "delete,compact");
        bool want_compact = kgw__str_is(v, "compact") || kgw__str_is(v, "compact,delete") ||
                            kgw__str_is(v, "delete,compact");
        if (!del && !want_delete && !want_compact) {
            snprintf(why, n, "cleanup.policy must be delete, compact or compact,delete");
            return KAFKA_INVALID_CONFIG;
        }
        if (del) {
            s->delete = true; /* Kafka's default */
            s->compact = false;
        } else if (set) {
            s->delete = want_delete;
            s->compact = want_compact;
        } else if (e->op == KAFKA_CONFIG_OP_APPEND) {
            s->delete |= want_delete;
            s->compact |= want_compact;
        } else if (e->op == KAFKA_CONFIG_OP_SUBTRACT) {
            s->delete &= !want_delete;
            s->compact &= !want_compact;
            if (!s->delete && !s->compact) {
                snprintf(why, n, "cleanup.policy cannot be empty");
                return KAFKA_INVALID_CONFIG;
            }
        } else {
            snprintf(why, n, "unknown config operation %d", e->op);
            return KAFKA_INVALID_REQUEST;
        }
        return KAFKA_NONE;
    }
    bool ms = kgw__str_is(e->name, "retention.ms");
    if (ms || kgw__str_is(e->name, "retention.bytes")) {
        int64_t x = -1;
        if (!del && (!set || !kgw__config_int(v, &x))) {
            snprintf(why, n, "%s must be -1 or a number (set or delete)",
                     ms ? "retention.ms" : "retention.bytes");
            return KAFKA_INVALID_CONFIG;
        }
        *(ms ? &s->retention_ms : &s->retention_bytes) = x;
        return KAFKA_NONE;
    }
    if (kgw__str_is(e->name, "segment.bytes")) {
        int64_t x;
        if (set && kgw__config_int(v, &x) && x == segment_bytes) {
            return KAFKA_NONE; /* unchanged */
        }
        snprintf(why, n, "segment.bytes is fixed when a tally topic is created");
        return KAFKA_INVALID_CONFIG;
    }
    snprintf(why, n, "config %.*s is not supported by tally (only cleanup.policy, retention.ms, "
                     "retention.bytes; segment.bytes is fixed)",
             (int)e->name.len, (const char *)e->name.p);
    return KAFKA_INVALID_CONFIG;
}

struct kgw__ac {
    struct kafka_alter_configs_req req;
    struct kgw *kg;
};

static void kgw__ac_encode(struct kjob *job)
{
    struct kgw__ac *ac = job->state;
    kafka_encode_alter_configs(&job->resp, &job->h, &ac->req);
}

static void kgw__ac_answer(struct kgw__sub *sub, struct kgw__answer *a)
{
    struct kgw__ac *ac = sub->job->state;
    struct kafka_ac_resource *r = &ac->req.resources[sub->t];
    if (a->code != 0) {
        r->error = a->code == TALLY_NOTFOUND ? KAFKA_UNKNOWN_TOPIC_OR_PARTITION
                                             : kgw__admin_error(a->code);
        r->error_message = kgw__arena_str(sub->job, a->message);
    }
    if (sub->job->pending == 0) {
        kgw__finish(sub->job, kgw__ac_encode);
    }
}

static void kgw__ac_topics(struct kgw__sub *sub, struct kgw__answer *a)
{
    struct kjob *job = sub->job;
    struct kgw__ac *ac = job->state;
    struct proto_topic_list_resp tl;
    struct proto_topic *topics = NULL;
    bool ok = a->code == 0 && proto_get_topic_list_resp(&a->body, &tl) == 0 &&
              (topics = calloc(tl.n_topics + 1, sizeof *topics)) != NULL;
    for (uint32_t i = 0; ok && i < tl.n_topics; i++) {
        ok = proto_get_topic(&a->body, &topics[i]) == 0;
    }
    job->pending++; /* until every change is sent */
    for (int32_t i = 0; i < ac->req.n_resources; i++) {
        struct kafka_ac_resource *r = &ac->req.resources[i];
        char why[200] = "";
        if (r->error != KAFKA_NONE) {
            continue;
        }
        if (!ok) {
            r->error = kgw__admin_error(a->code != 0 ? a->code : TALLY_PROTO);
            continue;
        }
        const struct proto_topic *t = NULL;
        for (uint32_t k = 0; k < tl.n_topics && t == NULL; k++) {
            if (strlen(topics[k].name) == (size_t)r->name.len &&
                memcmp(topics[k].name, r->name.p, (size_t)r->name.len) == 0) {
                t = &topics[k];
            }
        }
        if (t == NULL) {
            r->error = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
            r->error_message = "no such topic";
            continue;
        }
        struct kgw__settings s;
        kgw__settings_from(t, &s);
        if (!ac->req.incremental) {
            /* AlterConfigs replaces the whole set: what it does not name
             * goes back to the default (the segment size stays). */
            s = (struct kgw__settings){.delete = true, .compact = false, .retention_ms = -1,
                                       .retention_bytes = -1};
        }
        int64_t segment = t->segment_bytes > 0 ? t->segment_bytes
                                               : (int64_t)sub->kg->cfg->segment_bytes;
        for (int32_t e = 0; e < r->n_entries && r->error == KAFKA_NONE; e++) {
            r->error = kgw__settings_apply(&s, &r->entries[e], segment, why, sizeof why);
        }
        if (r->error != KAFKA_NONE) {
            r->error_message = kgw__arena_str(job, why);
            continue;
        }
        if (ac->req.validate_only) {
            continue;
        }
        struct proto_topic_config_req c;
        struct buf body;
        memset(&c, 0, sizeof c);
        snprintf(c.name, sizeof c.name, "%s", t->name);
        c.set = PROTO_CONFIG_POLICY | PROTO_CONFIG_RETENTION_MS | PROTO_CONFIG_RETENTION_BYTES;
        c.policy = kgw__settings_policy(&s);
        c.retention_ms = s.retention_ms;
        c.retention_bytes = s.retention_bytes;
        buf_init(&body);
        proto_put_topic_config_req(&body, &c);
        kgw__native(sub->kg, job, PROTO_TOPIC_CONFIG, &body, kgw__ac_answer, i, 0);
        buf_free(&body);
    }
    free(topics);
    if (--job->pending == 0) {
        kgw__finish(job, kgw__ac_encode);
    }
}

void kgw__alter_configs(struct kgw *kg, struct kjob *job, struct kafka_rd *rd)
{
    struct kgw__ac *ac = kafka_arena_alloc(&job->arena, sizeof *ac);
    if (ac == NULL) {
        kgw__reject(job, "out of memory");
        return;
    }
    job->state = ac;
    ac->kg = kg;
    if (kafka_decode_alter_configs(rd, &job->h, &job->arena, &ac->req) != 0) {
        kgw__reject(job, "malformed AlterConfigs request");
        return;
    }
    for (int32_t i = 0; i < ac->req.n_resources; i++) {
        struct kafka_ac_resource *r = &ac->req.resources[i];
        if (r->type != KAFKA_RESOURCE_TOPIC) {
            r->error = KAFKA_INVALID_REQUEST;
            r->error_message = "tally alters topics only (node settings are in its config file)";
        }
    }
    struct kgw__names q;
    kgw__names_init(&q);
    for (int32_t i = 0; i < ac->req.n_resources; i++) {
        if (ac->req.resources[i].type == KAFKA_RESOURCE_TOPIC) {
            kgw__names_add(&q, ac->req.resources[i].name);
        }
    }
    kgw__names_send(kg, job, &q, kgw__ac_topics);
}
