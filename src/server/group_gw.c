/* tally's shared consumer groups on the wire (group_gw.h, docs/groups.md). */
#include "server/group_gw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka/errors.h"
#include "lib/err.h"
#include "lib/glob.h"
#include "lib/logger.h"
#include "lib/share.h"
#include "proto/proto.h"
#include "server/gw.h"

/* The protocol name of a native member: "tally-shares/N/TOPIC/FILTER",
 * FILTER in hex (a filter is bytes). Members whose names differ cannot
 * be in one generation (kgroup.c refuses the join). */
#define GROUP_GW__PREFIX "tally-shares/"
#define GROUP_GW__PROTOCOL_MAX (sizeof GROUP_GW__PREFIX + 8 + PROTO_NAME_MAX + 2 * GLOB_MAX + 2)

/* What a protocol name says: the share count, the topic, the filter (hex). */
struct group_gw__reads {
    unsigned n_shares;
    char topic[PROTO_NAME_MAX];
    char filter_hex[2 * GLOB_MAX + 1];
};

static void group_gw__protocol(char *out, size_t size, unsigned n_shares, const char *topic,
                               const uint8_t *filter, size_t filter_len)
{
    int n = snprintf(out, size, "%s%u/%s/", GROUP_GW__PREFIX, n_shares, topic);
    for (size_t i = 0; i < filter_len && n > 0 && (size_t)n + 3 <= size; i++) {
        n += snprintf(out + n, size - (size_t)n, "%02x", filter[i]);
    }
}

static bool group_gw__parse(const char *protocol, struct group_gw__reads *out)
{
    size_t plen = strlen(GROUP_GW__PREFIX);
    memset(out, 0, sizeof *out);
    if (protocol == NULL || strncmp(protocol, GROUP_GW__PREFIX, plen) != 0) {
        return false;
    }
    char *end;
    unsigned long n = strtoul(protocol + plen, &end, 10);
    const char *last = strrchr(protocol, '/');
    if (*end != '/' || n == 0 || n > SHARE_MAX || last <= end ||
        (size_t)(last - end - 1) >= sizeof out->topic ||
        strlen(last + 1) >= sizeof out->filter_hex) {
        return false;
    }
    out->n_shares = (unsigned)n;
    memcpy(out->topic, end + 1, (size_t)(last - end - 1));
    snprintf(out->filter_hex, sizeof out->filter_hex, "%s", last + 1);
    return true;
}

/* group_gw__parse of a member's metadata (its protocol name, not
 * NUL-terminated). */
static bool group_gw__parse_md(const struct kafka_dg_member *m, struct group_gw__reads *out)
{
    char name[GROUP_GW__PROTOCOL_MAX];
    if (m->metadata == NULL || m->metadata_len >= sizeof name) {
        return false;
    }
    memcpy(name, m->metadata, m->metadata_len);
    name[m->metadata_len] = '\0';
    return group_gw__parse(name, out);
}

/* ---- the assignor ------------------------------------------------------- */

static int group_gw__by_id(const void *a, const void *b)
{
    const struct kafka_join_member *const *x = a, *const *y = b;
    return strcmp((*x)->member_id, (*y)->member_id);
}

bool group_gw_assign(const char *protocol, const struct kafka_join_member *members, unsigned n,
                     struct kgroup_assignment *out)
{
    struct group_gw__reads reads;
    const struct kafka_join_member **sorted = calloc(n, sizeof *sorted);
    if (sorted == NULL || !group_gw__parse(protocol, &reads)) {
        free(sorted);
        return false;
    }
    /* Round robin over the members in id order: share s goes to the
     * (s mod n)-th, so every member has n_shares / n shares, give or take
     * one, and the same members always get the same shares. */
    for (unsigned i = 0; i < n; i++) {
        sorted[i] = &members[i];
    }
    qsort(sorted, n, sizeof *sorted, group_gw__by_id);
    bool ok = true;
    for (unsigned i = 0; i < n && ok; i++) {
        unsigned rank = 0;
        while (sorted[rank] != &members[i]) {
            rank++;
        }
        unsigned count = rank < reads.n_shares ? (reads.n_shares - rank + n - 1) / n : 0;
        out[i].len = 2u * count;
        out[i].data = malloc(out[i].len + 1);
        ok = out[i].data != NULL;
        for (unsigned k = 0, s = rank; ok && k < count; k++, s += n) {
            out[i].data[2 * k] = (uint8_t)s;
            out[i].data[2 * k + 1] = (uint8_t)(s >> 8);
        }
    }
    if (!ok) {
        for (unsigned i = 0; i < n; i++) {
            free(out[i].data);
            out[i].data = NULL;
        }
    }
    free(sorted);
    return ok;
}

bool group_gw_had_members(void *arg, const char *id)
{
    char group[PROTO_NAME_MAX];
    const char *sep = strchr(id, KGROUP_TOPIC_SEP);
    unsigned n_shares = 0;
    const uint64_t *pos;
    if (sep == NULL || (size_t)(sep - id) >= sizeof group) {
        return false;
    }
    memcpy(group, id, (size_t)(sep - id));
    group[sep - id] = '\0';
    return store_group_shares(arg, group, sep + 1, &n_shares, &pos) && n_shares > 0;
}

/* ---- requests ----------------------------------------------------------- */

static struct kafka_str group_gw__str(const char *s)
{
    struct kafka_str k = {(const uint8_t *)s, (int32_t)strlen(s)};
    return k;
}

/* The coordinator id of shared group @group on @topic (kgroup.h). */
#define GROUP_GW__ID_MAX (2 * PROTO_NAME_MAX)
static void group_gw__id(char *out, const char *group, const char *topic)
{
    snprintf(out, GROUP_GW__ID_MAX, "%s%c%s", group, KGROUP_TOPIC_SEP, topic);
}

/* Why a join of @group on @topic was refused, in words, for the codes
 * the coordinator gives. */
static void group_gw__join_refused(struct gw *gw, struct kgroups *gs, struct req *r,
                                   const char *group, const char *topic, int16_t error)
{
    switch (error) {
    case KAFKA_INCONSISTENT_GROUP_PROTOCOL: {
        struct kafka_arena a;
        struct kafka_dg_group d;
        struct group_gw__reads reads;
        char id[GROUP_GW__ID_MAX];
        group_gw__id(id, group, topic);
        kafka_arena_init(&a);
        if (kgroups_members(gs, group_gw__str(group)) > 0) {
            gw_error(r, TALLY_INVAL, "group %s is a Kafka consumer group with live members: "
                     "a tally consumer cannot join it while they are there; use another group "
                     "name", group);
        } else if (kgroups_describe(gs, group_gw__str(id), &a, &d) && d.n_members > 0 &&
                   group_gw__parse_md(&d.members[0], &reads)) {
            gw_error(r, TALLY_INVAL, "group %s is reading topic %s in %u shares%s%s with live "
                     "members: every member must read it with the same shares and filter (use "
                     "another group name)", group, reads.topic, reads.n_shares,
                     reads.filter_hex[0] != '\0' ? " with filter (hex) " : "", reads.filter_hex);
        } else {
            gw_error(r, TALLY_INVAL, "group %s has live members that read %s otherwise; use "
                     "another group name", group, topic);
        }
        kafka_arena_free(&a);
        return;
    }
    case KAFKA_INVALID_SESSION_TIMEOUT:
        gw_error(r, TALLY_INVAL, "session timeout out of the range the node allows "
                 "(kafka_group_min_session_ms .. kafka_group_max_session_ms)");
        return;
    case KAFKA_GROUP_MAX_SIZE_REACHED:
        gw_error(r, TALLY_BUSY, "group %s has kafka_group_max_members members already", group);
        return;
    case KAFKA_UNKNOWN_MEMBER_ID:
        gw_error(r, TALLY_NOTFOUND, "not a member of group %s (any more): join afresh", group);
        return;
    case KAFKA_REBALANCE_IN_PROGRESS:
        gw_error(r, TALLY_BUSY, "this join of group %s was replaced by a newer one", group);
        return;
    case KAFKA_NOT_COORDINATOR:
        gw_not_leader(gw, r);
        return;
    default:
        gw_error(r, TALLY_UNAVAILABLE, "group %s: cannot join now (Kafka error %d)", group,
                 error);
    }
}

/* @group's position on topic @t, or the topic's first offset if it has
 * none (*found says which; may be NULL). */
static uint64_t group_gw__position(struct store *s, const struct store_topic *t,
                                   const char *group, bool *found)
{
    uint64_t offset;
    bool has = store_group_offset(s, group, t->name, &offset);
    if (found != NULL) {
        *found = has;
    }
    return has ? offset : store_topic_start(t);
}

/* Append @n_owned share positions of the u16 share numbers in @shares:
 * the group's committed position of each share (its position, if the
 * group has no share positions of @n_shares shares). */
static void group_gw__put_shares(struct buf *b, const uint8_t *shares, size_t n_owned,
                                 struct store *s, const char *group,
                                 const struct store_topic *t, unsigned n_shares)
{
    uint64_t offset = group_gw__position(s, t, group, NULL);
    unsigned n_have = 0;
    const uint64_t *have = NULL;
    store_group_shares(s, group, t->name, &n_have, &have);
    for (size_t i = 0; i < n_owned; i++) {
        struct proto_share_pos p = {.share = (uint16_t)(shares[2 * i] | shares[2 * i + 1] << 8)};
        p.offset = n_have == n_shares && p.share < n_have ? have[p.share] : offset;
        proto_put_share_pos(b, &p);
    }
}

/* A GROUP_JOIN waiting for its generation. */
struct group_gw__join {
    struct gw *gw;
    struct kgroups *gs;
    struct store *store;
    struct req *r;
    char group[PROTO_NAME_MAX];
    char topic[PROTO_NAME_MAX];
    char id[GROUP_GW__ID_MAX];  /* the coordinator's (group_gw__id) */
    unsigned n_shares;
};

static void group_gw__joined(void *arg, const struct kafka_join_resp *resp)
{
    struct group_gw__join *j = arg;
    struct req *r = j->r;
    int32_t generation;
    const uint8_t *assignment;
    size_t len;
    if (r->conn == NULL) {
        req_complete(r); /* client gone: the member expires with its session */
        free(j);
        return;
    }
    if (resp->error != KAFKA_NONE) {
        group_gw__join_refused(j->gw, j->gs, r, j->group, j->topic, resp->error);
        free(j);
        return;
    }
    if (!kgroups_assignment(j->gs, group_gw__str(j->id), group_gw__str(resp->member_id),
                            &generation, &assignment, &len)) {
        gw_error(r, TALLY_UNAVAILABLE, "group %s: membership changed at once; join again",
                 j->group);
        free(j);
        return;
    }
    /* The member's shares with their committed positions, from this
     * node's (the leader's) state: a member that left committed first,
     * and its commit was applied here before it was answered. */
    struct store_topic *t = store_topic_find(j->store, j->topic);
    if (t == NULL) {
        gw_error(r, TALLY_NOTFOUND, "topic %s not found", j->topic);
        free(j);
        return;
    }
    bool found;
    uint64_t offset = group_gw__position(j->store, t, j->group, &found);
    struct proto_group_join_resp m = {
        .generation = (uint32_t)generation,
        .topic_id = t->created_index,
        .found = found,
        .offset = offset,
        .n_owned = (uint16_t)(len / 2),
    };
    m.n_members = kgroups_members(j->gs, group_gw__str(j->id));
    snprintf(m.member_id, sizeof m.member_id, "%s", resp->member_id);
    size_t start = proto_begin_frame(&r->resp, r->type, PROTO_FLAG_RESPONSE, r->id);
    proto_put_group_join_resp(&r->resp, &m);
    group_gw__put_shares(&r->resp, assignment, len / 2, j->store, j->group, t, j->n_shares);
    proto_end_frame(&r->resp, start);
    free(j);
    if (!buf_ok(&r->resp)) {
        gw_error(r, TALLY_NOMEM, "out of memory");
        return;
    }
    req_complete(r);
}

static void group_gw__join(struct gw *gw, struct kgroups *gs, struct store *s, struct req *r,
                           struct rd *rd)
{
    struct proto_group_join_req m;
    char why[160];
    if (proto_get_group_join_req(rd, &m) != 0 || proto_get_end(rd) != 0) {
        gw_error(r, TALLY_PROTO, "malformed GROUP_JOIN");
        return;
    }
    if (m.group[0] == '\0' || strchr(m.group, KGROUP_TOPIC_SEP) != NULL || m.n_shares == 0 ||
        m.n_shares > SHARE_MAX) {
        gw_error(r, TALLY_INVAL, "GROUP_JOIN: a group name (without byte 0x1f) and 1..%u "
                 "shares are needed", SHARE_MAX);
        return;
    }
    if (m.filter_len > 0 && !glob_check(m.filter, m.filter_len, why, sizeof why)) {
        gw_error(r, TALLY_INVAL, "GROUP_JOIN: %s", why);
        return;
    }
    if (store_topic_find(s, m.topic) == NULL) {
        gw_error(r, TALLY_NOTFOUND, "topic %s not found", m.topic);
        return;
    }
    struct group_gw__join *j = calloc(1, sizeof *j);
    char protocol[GROUP_GW__PROTOCOL_MAX];
    if (j == NULL) {
        gw_error(r, TALLY_NOMEM, "out of memory");
        return;
    }
    *j = (struct group_gw__join){.gw = gw, .gs = gs, .store = s, .r = r,
                                 .n_shares = m.n_shares};
    snprintf(j->group, sizeof j->group, "%s", m.group);
    snprintf(j->topic, sizeof j->topic, "%s", m.topic);
    group_gw__id(j->id, m.group, m.topic);
    group_gw__protocol(protocol, sizeof protocol, m.n_shares, m.topic, m.filter, m.filter_len);
    /* The protocol name is also its metadata, so that a refusal can say
     * what the group reads (kgroups_describe gives the metadata). */
    struct kafka_join_protocol p = {group_gw__str(protocol), group_gw__str(protocol)};
    struct kafka_join_req k = {
        .group_id = group_gw__str(j->id),
        .session_timeout_ms = (int32_t)m.session_ms,
        /* A member that does not rejoin within its session is out; it
         * stops by then too (its last heartbeat answered is older), so
         * two members never hold one share at once (docs/groups.md). */
        .rebalance_timeout_ms = (int32_t)m.session_ms,
        .member_id = group_gw__str(m.member_id),
        .group_instance_id = {NULL, -1},
        .protocol_type = group_gw__str(GROUP_GW_PROTOCOL_TYPE),
        .n_protocols = 1,
        .protocols = &p,
    };
    if (m.session_ms > INT32_MAX) {
        k.session_timeout_ms = k.rebalance_timeout_ms = -1; /* refused as out of range */
    }
    kgroups_join(gs, &k, 3, "tally", r->ops->peer(r), group_gw__joined, j);
}

static void group_gw__heartbeat(struct kgroups *gs, struct req *r, struct rd *rd)
{
    struct proto_group_heartbeat_req m;
    if (proto_get_group_heartbeat_req(rd, &m) != 0 || proto_get_end(rd) != 0) {
        gw_error(r, TALLY_PROTO, "malformed GROUP_HEARTBEAT");
        return;
    }
    char id[GROUP_GW__ID_MAX];
    group_gw__id(id, m.group, m.topic);
    struct kafka_heartbeat_req k = {
        .group_id = group_gw__str(id),
        .generation_id = (int32_t)m.generation,
        .member_id = group_gw__str(m.member_id),
        .group_instance_id = {NULL, -1},
    };
    int16_t e = kgroups_heartbeat(gs, &k);
    struct proto_group_heartbeat_resp a = {
        .status = e == KAFKA_NONE                    ? PROTO_GROUP_GO_ON
                  : e == KAFKA_UNKNOWN_MEMBER_ID     ? PROTO_GROUP_NOT_MEMBER
                                                     : PROTO_GROUP_REJOIN,
    };
    size_t start = proto_begin_frame(&r->resp, r->type, PROTO_FLAG_RESPONSE, r->id);
    proto_put_group_heartbeat_resp(&r->resp, &a);
    proto_end_frame(&r->resp, start);
    req_complete(r);
}

static void group_gw__leave(struct kgroups *gs, struct req *r, struct rd *rd)
{
    struct proto_group_leave_req m;
    if (proto_get_group_leave_req(rd, &m) != 0 || proto_get_end(rd) != 0) {
        gw_error(r, TALLY_PROTO, "malformed GROUP_LEAVE");
        return;
    }
    struct kafka_leave_member who = {.member_id = group_gw__str(m.member_id),
                                     .group_instance_id = {NULL, -1}};
    char id[GROUP_GW__ID_MAX];
    group_gw__id(id, m.group, m.topic);
    struct kafka_leave_req k = {.group_id = group_gw__str(id), .n_members = 1,
                                .members = &who};
    (void)kgroups_leave(gs, &k); /* an unknown member has left already */
    struct proto_done_resp d = {0};
    size_t start = proto_begin_frame(&r->resp, r->type, PROTO_FLAG_RESPONSE, r->id);
    proto_put_done_resp(&r->resp, &d);
    proto_end_frame(&r->resp, start);
    req_complete(r);
}

static void group_gw__members(struct kgroups *gs, struct store *s, struct req *r,
                              struct rd *rd)
{
    struct proto_group_members_req m;
    struct kafka_arena a;
    struct kafka_dg_group d;
    if (proto_get_group_members_req(rd, &m) != 0 || proto_get_end(rd) != 0) {
        gw_error(r, TALLY_PROTO, "malformed GROUP_MEMBERS");
        return;
    }
    kafka_arena_init(&a);
    struct proto_group_members_resp resp;
    memset(&resp, 0, sizeof resp);
    snprintf(resp.state, sizeof resp.state, "Empty");
    /* A shared group on a topic, or the Kafka group of that name. */
    char id[GROUP_GW__ID_MAX];
    if (m.topic[0] != '\0') {
        group_gw__id(id, m.group, m.topic);
    } else {
        snprintf(id, sizeof id, "%s", m.group);
    }
    bool live = kgroups_describe(gs, group_gw__str(id), &a, &d);
    if (live) {
        struct group_gw__reads reads;
        snprintf(resp.state, sizeof resp.state, "%s", d.state);
        snprintf(resp.kind, sizeof resp.kind, "%s", d.protocol_type);
        if (d.n_members > 0 && group_gw__parse_md(&d.members[0], &reads)) {
            snprintf(resp.topic, sizeof resp.topic, "%s", reads.topic);
            resp.n_shares = (uint16_t)reads.n_shares;
        }
        resp.n_members = (uint32_t)d.n_members;
        int32_t generation = 0;
        const uint8_t *unused;
        size_t unused_len;
        if (d.n_members > 0 &&
            kgroups_assignment(gs, group_gw__str(id), group_gw__str(d.members[0].member_id),
                               &generation, &unused, &unused_len)) {
            resp.generation = (uint32_t)generation;
        }
    }
    /* A Kafka member's assignment is its client's own encoding: shares
     * are shown for tally members only (of a topic that still exists). */
    const struct store_topic *t = resp.n_shares > 0 ? store_topic_find(s, resp.topic) : NULL;
    size_t start = proto_begin_frame(&r->resp, r->type, PROTO_FLAG_RESPONSE, r->id);
    proto_put_group_members_resp(&r->resp, &resp);
    for (uint32_t i = 0; i < resp.n_members; i++) {
        struct proto_group_member pm;
        memset(&pm, 0, sizeof pm);
        snprintf(pm.member_id, sizeof pm.member_id, "%s", d.members[i].member_id);
        snprintf(pm.client_host, sizeof pm.client_host, "%s", d.members[i].client_host);
        pm.n_owned = t != NULL ? (uint16_t)(d.members[i].assignment_len / 2) : 0;
        proto_put_group_member(&r->resp, &pm);
        if (t != NULL) {
            group_gw__put_shares(&r->resp, d.members[i].assignment, pm.n_owned, s, m.group, t,
                                 resp.n_shares);
        }
    }
    proto_end_frame(&r->resp, start);
    kafka_arena_free(&a);
    if (!buf_ok(&r->resp)) {
        gw_error(r, TALLY_NOMEM, "out of memory");
        return;
    }
    req_complete(r);
}

void group_gw_handle(struct gw *gw, struct kgroups *gs, struct store *s, struct req *r,
                     struct rd *rd)
{
    switch (r->type) {
    case PROTO_GROUP_JOIN:
        group_gw__join(gw, gs, s, r, rd);
        break;
    case PROTO_GROUP_HEARTBEAT:
        group_gw__heartbeat(gs, r, rd);
        break;
    case PROTO_GROUP_LEAVE:
        group_gw__leave(gs, r, rd);
        break;
    default:
        group_gw__members(gs, s, r, rd);
        break;
    }
}

int group_gw_commit_check(struct kgroups *gs, const char *group, const char *topic,
                          uint32_t generation, const char *member_id, char *why, size_t why_len)
{
    char id[GROUP_GW__ID_MAX];
    group_gw__id(id, group, topic);
    int16_t e = kgroups_commit_check(gs, group_gw__str(id), (int32_t)generation,
                                     group_gw__str(member_id));
    if (e == KAFKA_NONE) {
        return 0;
    }
    snprintf(why, why_len, "member %s of group %s is not in generation %u (%s): it was fenced "
             "and must join again", member_id, group, generation,
             e == KAFKA_REBALANCE_IN_PROGRESS ? "a rebalance is completing"
             : e == KAFKA_ILLEGAL_GENERATION  ? "a newer generation started"
                                              : "not a member");
    return TALLY_CONDITION_FAILED;
}
