/* The Kafka group coordinator (kgroup.h).
 *
 * A group is in one of Kafka's states:
 *   EMPTY       no members (kept only while a rebalance ends in it)
 *   PREPARING   a rebalance: waiting for every member's JoinGroup, at most
 *               until rebalance_deadline (members that did not rejoin by
 *               then are removed)
 *   COMPLETING  a generation started: the JoinGroup answers went out,
 *               waiting for the leader's SyncGroup with the assignment
 *   STABLE      every member has its assignment; heartbeats keep it so
 * A rebalance starts when a member joins, rejoins, leaves or expires.
 *
 * One timer (KGROUP__TICK_MS) expires sessions, pending member ids and
 * rebalance deadlines over every group: its cost is the number of members,
 * which the limits bound. */
#include "server/kgroup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "kafka/errors.h"
#include "lib/logger.h"

#define KGROUP__TICK_MS 100
#define KGROUP__ID_MAX 256 /* group and member ids, client ids (cut) */

enum kgroup__state { KGROUP__EMPTY, KGROUP__PREPARING, KGROUP__COMPLETING, KGROUP__STABLE };

static const char *const kgroup__state_names[] = {"Empty", "PreparingRebalance",
                                                  "CompletingRebalance", "Stable"};

struct kgroup__protocol {
    char *name;
    uint8_t *metadata;
    size_t metadata_len;
};

struct kgroup__member {
    struct kgroup__member *next;
    char *id;
    char *instance_id;            /* NULL: none */
    char client_id[KGROUP__ID_MAX];
    char client_host[64];
    uint32_t session_ms, rebalance_ms;
    uint64_t deadline;            /* session expiry (monotonic ms) */
    bool pending;                 /* given an id (MEMBER_ID_REQUIRED), not joined yet */
    struct kgroup__protocol *protocols;
    unsigned n_protocols;
    uint8_t *assignment;
    size_t assignment_len;
    kgroup_join_cb join_cb;       /* a JoinGroup waiting for the rebalance */
    void *join_arg;
    kgroup_sync_cb sync_cb;       /* a SyncGroup waiting for the leader's */
    void *sync_arg;
};

struct kgroup__group {
    struct kgroup__group *next;
    char *id;
    char *protocol_type;
    char *protocol;               /* the generation's protocol, NULL before the first */
    char *leader;                 /* a member id (owned copy), NULL: none */
    enum kgroup__state state;
    int32_t generation;
    uint64_t rebalance_deadline;  /* PREPARING: complete by then */
    uint64_t initial_until;       /* PREPARING from EMPTY: wait for more members until */
    struct kgroup__member *members;
    unsigned n_members;           /* pending ones included */
};

struct kgroups {
    uv_timer_t timer;
    struct kgroup_limits lim;
    char assigned_type[16];       /* kgroups_set_assignor */
    kgroup_assignor assignor;
    kgroup_had_members had_members;
    void *had_arg;
    uint64_t since;               /* when this node started coordinating */
    struct kgroup__group *groups;
    unsigned n_groups;
};

static uint64_t kgroup__now(struct kgroups *gs)
{
    return uv_now(gs->timer.loop);
}

static char *kgroup__strdup(struct kafka_str s)
{
    size_t n = s.len > 0 ? (size_t)s.len : 0;
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s.p, n);
        p[n] = '\0';
    }
    return p;
}

static bool kgroup__is(const char *c, struct kafka_str s)
{
    return c != NULL && s.len >= 0 && strlen(c) == (size_t)s.len && memcmp(c, s.p, (size_t)s.len) == 0;
}

static struct kgroup__group *kgroup__find(const struct kgroups *gs, struct kafka_str id)
{
    for (struct kgroup__group *g = gs->groups; g != NULL; g = g->next) {
        if (kgroup__is(g->id, id)) {
            return g;
        }
    }
    return NULL;
}

static struct kgroup__member *kgroup__member(const struct kgroup__group *g, struct kafka_str id)
{
    for (struct kgroup__member *m = g->members; m != NULL; m = m->next) {
        if (kgroup__is(m->id, id)) {
            return m;
        }
    }
    return NULL;
}

static void kgroup__free_protocols(struct kgroup__member *m)
{
    for (unsigned i = 0; i < m->n_protocols; i++) {
        free(m->protocols[i].name);
        free(m->protocols[i].metadata);
    }
    free(m->protocols);
    m->protocols = NULL;
    m->n_protocols = 0;
}

/* Answer a waiting JoinGroup with only an error. */
static void kgroup__join_error(struct kgroup__member *m, int16_t error)
{
    if (m->join_cb == NULL) {
        return;
    }
    kgroup_join_cb cb = m->join_cb;
    m->join_cb = NULL;
    struct kafka_join_resp r = {.error = error, .generation_id = -1, .member_id = m->id,
                                .leader = "", .protocol_name = NULL};
    cb(m->join_arg, &r);
}

static void kgroup__sync_answer(struct kgroup__member *m, int16_t error)
{
    if (m->sync_cb == NULL) {
        return;
    }
    kgroup_sync_cb cb = m->sync_cb;
    m->sync_cb = NULL;
    if (error != KAFKA_NONE) {
        cb(m->sync_arg, error, NULL, 0);
    } else {
        cb(m->sync_arg, KAFKA_NONE, m->assignment, m->assignment_len);
    }
}

static void kgroup__free_member(struct kgroup__member *m, int16_t error)
{
    kgroup__join_error(m, error);
    kgroup__sync_answer(m, error);
    kgroup__free_protocols(m);
    free(m->assignment);
    free(m->instance_id);
    free(m->id);
    free(m);
}

static void kgroup__free_group(struct kgroups *gs, struct kgroup__group *g, int16_t error)
{
    struct kgroup__group **pp = &gs->groups;
    while (*pp != g) {
        pp = &(*pp)->next;
    }
    *pp = g->next;
    gs->n_groups--;
    while (g->members != NULL) {
        struct kgroup__member *m = g->members;
        g->members = m->next;
        kgroup__free_member(m, error);
    }
    free(g->id);
    free(g->protocol_type);
    free(g->protocol);
    free(g->leader);
    free(g);
}

/* Take @m out of @g's list (not freed). */
static void kgroup__unlink(struct kgroup__group *g, struct kgroup__member *m)
{
    struct kgroup__member **pp = &g->members;
    while (*pp != m) {
        pp = &(*pp)->next;
    }
    *pp = m->next;
    g->n_members--;
    if (g->leader != NULL && strcmp(g->leader, m->id) == 0) {
        free(g->leader);
        g->leader = NULL;
    }
}

static unsigned kgroup__joined(const struct kgroup__group *g)
{
    unsigned n = 0;
    for (const struct kgroup__member *m = g->members; m != NULL; m = m->next) {
        n += !m->pending;
    }
    return n;
}

/* Does every joined member of @g list protocol @name? */
static bool kgroup__all_list(const struct kgroup__group *g, const char *name)
{
    for (const struct kgroup__member *m = g->members; m != NULL; m = m->next) {
        bool has = m->pending;
        for (unsigned i = 0; i < m->n_protocols && !has; i++) {
            has = strcmp(m->protocols[i].name, name) == 0;
        }
        if (!has) {
            return false;
        }
    }
    return true;
}

/* A name every joined member lists, chosen by vote: each member votes for
 * the first of its protocols that all support, as Kafka does; NULL if
 * none. The common names are found once (members x protocols of the first
 * member), then each member's vote costs its protocols x those names. */
static const char *kgroup__choose_protocol(const struct kgroup__group *g)
{
    const struct kgroup__member *first = NULL;
    for (const struct kgroup__member *m = g->members; m != NULL && first == NULL; m = m->next) {
        if (!m->pending) {
            first = m;
        }
    }
    if (first == NULL || first->n_protocols == 0) {
        return NULL;
    }
    /* The first member's names that every member lists, with their votes. */
    const char **common = calloc(first->n_protocols, sizeof *common);
    unsigned *votes = calloc(first->n_protocols, sizeof *votes);
    unsigned n_common = 0;
    const char *best = NULL;
    if (common == NULL || votes == NULL) {
        free(common);
        free(votes);
        return NULL;
    }
    for (unsigned c = 0; c < first->n_protocols; c++) {
        if (kgroup__all_list(g, first->protocols[c].name)) {
            common[n_common++] = first->protocols[c].name;
        }
    }
    for (const struct kgroup__member *m = g->members; m != NULL && n_common > 0; m = m->next) {
        bool voted = false;
        for (unsigned i = 0; !m->pending && !voted && i < m->n_protocols; i++) {
            for (unsigned k = 0; k < n_common && !voted; k++) {
                if (strcmp(m->protocols[i].name, common[k]) == 0) {
                    votes[k]++;
                    voted = true;
                }
            }
        }
    }
    unsigned best_votes = 0;
    for (unsigned k = 0; k < n_common; k++) {
        if (best == NULL || votes[k] > best_votes) {
            best = common[k];
            best_votes = votes[k];
        }
    }
    free(common);
    free(votes);
    return best;
}

static const struct kgroup__protocol *kgroup__protocol_of(const struct kgroup__member *m,
                                                          const char *name)
{
    for (unsigned i = 0; name != NULL && i < m->n_protocols; i++) {
        if (strcmp(m->protocols[i].name, name) == 0) {
            return &m->protocols[i];
        }
    }
    return NULL;
}

static bool kgroup__assigned_here(const struct kgroups *gs, const struct kgroup__group *g)
{
    return gs->assignor != NULL && g->protocol_type != NULL &&
           strcmp(g->protocol_type, gs->assigned_type) == 0;
}

/* COMPLETING -> STABLE for a group assigned here: the assignor's
 * assignment of the @n members in @list (in member order). */
static void kgroup__assign(struct kgroups *gs, struct kgroup__group *g,
                           const struct kafka_join_member *list, unsigned n)
{
    struct kgroup_assignment *out = calloc(n, sizeof *out);
    bool ok = out != NULL && gs->assignor(g->protocol, list, n, out);
    unsigned k = 0;
    for (struct kgroup__member *m = g->members; m != NULL; m = m->next) {
        if (m->pending) {
            continue;
        }
        free(m->assignment);
        m->assignment = ok ? out[k].data : NULL;
        m->assignment_len = ok ? out[k].len : 0;
        k++;
    }
    free(out);
    g->state = KGROUP__STABLE;
}

/* PREPARING -> COMPLETING: a new generation of the members that joined;
 * every waiting JoinGroup is answered, the leader's with every member's
 * metadata. */
static void kgroup__complete_join(struct kgroups *gs, struct kgroup__group *g)
{
    uint64_t now = kgroup__now(gs);
    /* Members that did not rejoin in time are out. */
    for (struct kgroup__member *m = g->members, *next; m != NULL; m = next) {
        next = m->next;
        if (!m->pending && m->join_cb == NULL) {
            TLOG_INFO("kafka", "group %s: member %s did not rejoin within the rebalance timeout; "
                               "removed", g->id, m->id);
            kgroup__unlink(g, m);
            kgroup__free_member(m, KAFKA_UNKNOWN_MEMBER_ID);
        }
    }
    g->generation++;
    if (kgroup__joined(g) == 0) {
        g->state = KGROUP__EMPTY;
        free(g->protocol);
        g->protocol = NULL;
        return;
    }
    const char *chosen = kgroup__choose_protocol(g);
    char *protocol = chosen != NULL ? strdup(chosen) : NULL;
    free(g->protocol);
    g->protocol = protocol;
    if (g->leader == NULL) {
        for (struct kgroup__member *m = g->members; m != NULL && g->leader == NULL; m = m->next) {
            if (!m->pending) {
                g->leader = strdup(m->id);
            }
        }
    }
    g->state = KGROUP__COMPLETING;
    unsigned n = kgroup__joined(g);
    bool assigned = kgroup__assigned_here(gs, g);
    struct kafka_join_member *list = calloc(n, sizeof *list);
    unsigned k = 0;
    for (struct kgroup__member *m = g->members; m != NULL && list != NULL; m = m->next) {
        if (m->pending) {
            continue;
        }
        const struct kgroup__protocol *p = kgroup__protocol_of(m, g->protocol);
        list[k].member_id = m->id;
        list[k].group_instance_id = m->instance_id;
        list[k].metadata = p != NULL ? p->metadata : NULL;
        list[k].metadata_len = p != NULL ? p->metadata_len : 0;
        k++;
    }
    TLOG_INFO("kafka", "group %s: generation %d with %u member(s), protocol %s, leader %s",
              g->id, g->generation, n, g->protocol != NULL ? g->protocol : "(none)",
              g->leader != NULL ? g->leader : "(none)");
    if (assigned && list != NULL && g->protocol != NULL) {
        kgroup__assign(gs, g, list, k);
    }
    for (struct kgroup__member *m = g->members; m != NULL; m = m->next) {
        if (m->pending || m->join_cb == NULL) {
            continue;
        }
        bool is_leader = g->leader != NULL && strcmp(g->leader, m->id) == 0;
        struct kafka_join_resp r = {
            .error = g->protocol == NULL || (list == NULL && is_leader)
                         ? KAFKA_INCONSISTENT_GROUP_PROTOCOL : KAFKA_NONE,
            .generation_id = g->generation,
            .protocol_name = g->protocol,
            .leader = g->leader,
            .member_id = m->id,
            .n_members = is_leader ? (int32_t)k : 0,
            .members = is_leader ? list : NULL,
        };
        kgroup_join_cb cb = m->join_cb;
        m->join_cb = NULL;
        m->deadline = now + m->session_ms;
        cb(m->join_arg, &r);
    }
    free(list);
}

/* Start a rebalance (or go on with the one under way). Assignments of the
 * old generation are void: waiting SyncGroups are told to rejoin. */
static void kgroup__prepare(struct kgroups *gs, struct kgroup__group *g)
{
    uint64_t now = kgroup__now(gs);
    if (g->state != KGROUP__PREPARING) {
        uint32_t timeout = 0;
        for (struct kgroup__member *m = g->members; m != NULL; m = m->next) {
            if (m->rebalance_ms > timeout) {
                timeout = m->rebalance_ms;
            }
            free(m->assignment);
            m->assignment = NULL;
            m->assignment_len = 0;
            kgroup__sync_answer(m, KAFKA_REBALANCE_IN_PROGRESS);
        }
        g->initial_until = 0;
        if (g->state == KGROUP__EMPTY && !kgroup__assigned_here(gs, g)) {
            g->initial_until = now + gs->lim.initial_delay_ms;
        } else if (g->state == KGROUP__EMPTY && gs->since + timeout > now &&
                   gs->had_members(gs->had_arg, g->id)) {
            /* A coordinator that just took over does not know the members
             * of the last one, which keep their shares until their
             * session runs out: the first generation of a group assigned
             * here waits until then, so that no share has two members. */
            g->initial_until = gs->since + timeout;
        }
        g->rebalance_deadline = now + timeout;
        g->state = KGROUP__PREPARING;
    }
}

/* PREPARING and every member is waiting in JoinGroup: the generation can
 * start (after an empty group's initial delay). */
static void kgroup__maybe_complete(struct kgroups *gs, struct kgroup__group *g)
{
    if (g->state != KGROUP__PREPARING) {
        return;
    }
    uint64_t now = kgroup__now(gs);
    bool all = true;
    for (struct kgroup__member *m = g->members; m != NULL && all; m = m->next) {
        all = m->pending || m->join_cb != NULL;
    }
    if ((all && now >= g->initial_until) || now >= g->rebalance_deadline) {
        kgroup__complete_join(gs, g);
    }
}

/* Members left @g (not pending ones): the others rebalance, or the
 * group is empty. */
static void kgroup__after_departure(struct kgroups *gs, struct kgroup__group *g)
{
    if (kgroup__joined(g) == 0) {
        if (g->state != KGROUP__EMPTY) {
            g->generation++;
        }
        g->state = KGROUP__EMPTY;
        for (struct kgroup__member *o = g->members; o != NULL; o = o->next) {
            kgroup__join_error(o, KAFKA_REBALANCE_IN_PROGRESS);
        }
        return;
    }
    kgroup__prepare(gs, g);
    kgroup__maybe_complete(gs, g);
}

/* @m left: out of @g, and the others rebalance. */
static void kgroup__remove(struct kgroups *gs, struct kgroup__group *g, struct kgroup__member *m,
                           int16_t error)
{
    bool pending = m->pending;
    kgroup__unlink(g, m);
    kgroup__free_member(m, error);
    if (!pending) {
        kgroup__after_departure(gs, g);
    }
}

/* A group with no member at all is forgotten (its offsets are in the
 * store). */
static void kgroup__gc(struct kgroups *gs, struct kgroup__group *g)
{
    if (g->members == NULL) {
        kgroup__free_group(gs, g, KAFKA_NOT_COORDINATOR);
    }
}

static void kgroup__tick(uv_timer_t *t)
{
    struct kgroups *gs = t->data;
    uint64_t now = kgroup__now(gs);
    for (struct kgroup__group *g = gs->groups, *gnext; g != NULL; g = gnext) {
        gnext = g->next;
        bool departed = false;
        for (struct kgroup__member *m = g->members, *next; m != NULL; m = next) {
            next = m->next;
            /* A member waiting in JoinGroup is governed by the rebalance
             * deadline; one waiting in SyncGroup is alive. */
            if (m->join_cb != NULL || m->sync_cb != NULL || now < m->deadline) {
                continue;
            }
            if (m->pending) { /* a flood of first joins would flood the log */
                TLOG_DEBUG("kafka", "group %s: member %s never joined with its id; removed",
                           g->id, m->id);
            } else {
                TLOG_INFO("kafka", "group %s: member %s missed its session timeout; removed",
                          g->id, m->id);
            }
            departed |= !m->pending;
            kgroup__unlink(g, m);
            kgroup__free_member(m, KAFKA_UNKNOWN_MEMBER_ID);
        }
        /* Every expired member at once, then one rebalance. */
        if (departed) {
            kgroup__after_departure(gs, g);
        }
        kgroup__maybe_complete(gs, g);
        kgroup__gc(gs, g);
    }
}

int kgroups_create(uv_loop_t *loop, const struct kgroup_limits *limits, struct kgroups **out)
{
    struct kgroups *gs = calloc(1, sizeof *gs);
    if (gs == NULL) {
        return -1;
    }
    gs->lim = *limits;
    gs->since = uv_now(loop);
    uv_timer_init(loop, &gs->timer);
    gs->timer.data = gs;
    uv_timer_start(&gs->timer, kgroup__tick, KGROUP__TICK_MS, KGROUP__TICK_MS);
    uv_unref((uv_handle_t *)&gs->timer);
    *out = gs;
    return 0;
}

void kgroups_reset(struct kgroups *gs)
{
    if (gs == NULL) {
        return;
    }
    if (gs->groups != NULL) {
        TLOG_INFO("kafka", "%u consumer group(s) dropped: this node no longer coordinates them",
                  gs->n_groups);
    }
    while (gs->groups != NULL) {
        kgroup__free_group(gs, gs->groups, KAFKA_NOT_COORDINATOR);
    }
    gs->since = kgroup__now(gs);
}

static void kgroup__closed(uv_handle_t *h)
{
    free(h->data);
}

void kgroups_destroy(struct kgroups *gs)
{
    if (gs == NULL) {
        return;
    }
    kgroups_reset(gs);
    uv_close((uv_handle_t *)&gs->timer, kgroup__closed);
}

/* A fresh member id: the client id (cut) and 16 random hex digits, as
 * Kafka's "<client.id>-<uuid>". */
static char *kgroup__new_member_id(const char *client_id)
{
    uint8_t r[8];
    char id[KGROUP__ID_MAX + 24];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        uint64_t t = (uint64_t)uv_hrtime();
        memcpy(r, &t, sizeof r);
    }
    int n = snprintf(id, sizeof id, "%.64s-", client_id[0] != '\0' ? client_id : "member");
    for (unsigned i = 0; i < sizeof r; i++) {
        n += snprintf(id + n, sizeof id - (size_t)n, "%02x", r[i]);
    }
    return strdup(id);
}

static bool kgroup__set_protocols(struct kgroup__member *m, const struct kafka_join_req *req)
{
    struct kgroup__protocol *p = calloc((size_t)req->n_protocols, sizeof *p);
    if (p == NULL) {
        return false;
    }
    for (int32_t i = 0; i < req->n_protocols; i++) {
        struct kafka_str md = req->protocols[i].metadata;
        p[i].name = kgroup__strdup(req->protocols[i].name);
        p[i].metadata_len = md.len > 0 ? (size_t)md.len : 0;
        p[i].metadata = malloc(p[i].metadata_len + 1);
        if (p[i].name == NULL || p[i].metadata == NULL) {
            struct kgroup__member tmp = {.protocols = p, .n_protocols = (unsigned)i + 1};
            kgroup__free_protocols(&tmp);
            return false;
        }
        if (p[i].metadata_len > 0) {
            memcpy(p[i].metadata, md.p, p[i].metadata_len);
        }
    }
    kgroup__free_protocols(m);
    m->protocols = p;
    m->n_protocols = (unsigned)req->n_protocols;
    return true;
}

/* Does @req's protocol list fit @g: same protocol type, and a protocol
 * every joined member (@self aside) also lists? */
static bool kgroup__fits(const struct kgroup__group *g, const struct kafka_join_req *req,
                         const struct kgroup__member *self)
{
    if (kgroup__joined(g) == 0 || (kgroup__joined(g) == 1 && self != NULL && !self->pending)) {
        return true;
    }
    if (!kgroup__is(g->protocol_type, req->protocol_type)) {
        return false;
    }
    for (int32_t i = 0; i < req->n_protocols; i++) {
        bool all = true;
        for (const struct kgroup__member *m = g->members; m != NULL && all; m = m->next) {
            if (m == self || m->pending) {
                continue;
            }
            bool has = false;
            for (unsigned k = 0; k < m->n_protocols && !has; k++) {
                has = kgroup__is(m->protocols[k].name, req->protocols[i].name);
            }
            all = has;
        }
        if (all) {
            return true;
        }
    }
    return false;
}

static void kgroup__join_fail(kgroup_join_cb cb, void *arg, int16_t error, const char *member_id)
{
    struct kafka_join_resp r = {.error = error, .generation_id = -1, .leader = "",
                                .member_id = member_id != NULL ? member_id : ""};
    cb(arg, &r);
}

/* Does a group of the other kind (kgroup.h: NAME vs NAME<SEP>TOPIC) have
 * members under the name of @id? */
static bool kgroup__name_taken(const struct kgroups *gs, struct kafka_str id)
{
    const uint8_t *sep = memchr(id.p, KGROUP_TOPIC_SEP, (size_t)id.len);
    size_t name_len = sep != NULL ? (size_t)(sep - id.p) : (size_t)id.len;
    for (const struct kgroup__group *g = gs->groups; g != NULL; g = g->next) {
        if (kgroup__joined(g) == 0 || strncmp(g->id, (const char *)id.p, name_len) != 0) {
            continue;
        }
        if (sep != NULL ? g->id[name_len] == '\0'
                        : g->id[name_len] == KGROUP_TOPIC_SEP) {
            return true;
        }
    }
    return false;
}

void kgroups_join(struct kgroups *gs, const struct kafka_join_req *req, int16_t version,
                  const char *client_id, const char *client_host, kgroup_join_cb cb, void *arg)
{
    if (req->group_id.len <= 0 || req->group_id.len >= KGROUP__ID_MAX) {
        kgroup__join_fail(cb, arg, KAFKA_INVALID_GROUP_ID, NULL);
        return;
    }
    if (req->session_timeout_ms < 0 || (uint32_t)req->session_timeout_ms < gs->lim.min_session_ms ||
        (uint32_t)req->session_timeout_ms > gs->lim.max_session_ms ||
        req->rebalance_timeout_ms < 0 ||
        (uint32_t)req->rebalance_timeout_ms > gs->lim.max_session_ms) {
        kgroup__join_fail(cb, arg, KAFKA_INVALID_SESSION_TIMEOUT, NULL);
        return;
    }
    if (req->protocol_type.len <= 0 || req->n_protocols <= 0 ||
        kgroup__name_taken(gs, req->group_id)) {
        kgroup__join_fail(cb, arg, KAFKA_INCONSISTENT_GROUP_PROTOCOL, NULL);
        return;
    }
    struct kgroup__group *g = kgroup__find(gs, req->group_id);
    bool new_member = req->member_id.len <= 0;
    if (g == NULL && !new_member) {
        kgroup__join_fail(cb, arg, KAFKA_UNKNOWN_MEMBER_ID, NULL);
        return;
    }
    if (g == NULL) {
        if (gs->n_groups >= gs->lim.max_groups) {
            TLOG_WARN("kafka", "a JoinGroup refused: kafka_max_groups (%u) groups have members",
                      gs->lim.max_groups);
            kgroup__join_fail(cb, arg, KAFKA_COORDINATOR_NOT_AVAILABLE, NULL);
            return;
        }
        g = calloc(1, sizeof *g);
        if (g == NULL || (g->id = kgroup__strdup(req->group_id)) == NULL) {
            free(g);
            kgroup__join_fail(cb, arg, KAFKA_COORDINATOR_NOT_AVAILABLE, NULL);
            return;
        }
        g->state = KGROUP__EMPTY;
        g->next = gs->groups;
        gs->groups = g;
        gs->n_groups++;
    }
    struct kgroup__member *m = new_member ? NULL : kgroup__member(g, req->member_id);
    if (!new_member && m == NULL) {
        kgroup__join_fail(cb, arg, KAFKA_UNKNOWN_MEMBER_ID, NULL);
        kgroup__gc(gs, g);
        return;
    }
    if (!kgroup__fits(g, req, m)) {
        kgroup__join_fail(cb, arg, KAFKA_INCONSISTENT_GROUP_PROTOCOL, NULL);
        kgroup__gc(gs, g);
        return;
    }
    uint64_t now = kgroup__now(gs);
    if (m == NULL) {
        if (g->n_members >= gs->lim.max_members) {
            TLOG_WARN("kafka", "group %s: a JoinGroup refused: kafka_group_max_members (%u)",
                      g->id, gs->lim.max_members);
            kgroup__join_fail(cb, arg, KAFKA_GROUP_MAX_SIZE_REACHED, NULL);
            kgroup__gc(gs, g);
            return;
        }
        m = calloc(1, sizeof *m);
        if (m == NULL || (m->id = kgroup__new_member_id(client_id)) == NULL) {
            free(m);
            kgroup__join_fail(cb, arg, KAFKA_COORDINATOR_NOT_AVAILABLE, NULL);
            kgroup__gc(gs, g);
            return;
        }
        snprintf(m->client_id, sizeof m->client_id, "%s", client_id);
        snprintf(m->client_host, sizeof m->client_host, "%s", client_host);
        m->next = g->members;
        g->members = m;
        g->n_members++;
        m->session_ms = (uint32_t)req->session_timeout_ms;
        m->deadline = now + m->session_ms;
        if (version >= 4) {
            /* KIP-394: the client must come back with this id. */
            m->pending = true;
            kgroup__join_fail(cb, arg, KAFKA_MEMBER_ID_REQUIRED, m->id);
            return;
        }
    }
    if (!kgroup__set_protocols(m, req)) {
        kgroup__join_fail(cb, arg, KAFKA_COORDINATOR_NOT_AVAILABLE, m->id);
        if (m->pending || kgroup__joined(g) == 1) {
            kgroup__remove(gs, g, m, KAFKA_UNKNOWN_MEMBER_ID);
            kgroup__gc(gs, g);
        }
        return;
    }
    if (kgroup__joined(g) == 0 || (kgroup__joined(g) == 1 && !m->pending)) {
        char *type = kgroup__strdup(req->protocol_type);
        if (type != NULL) {
            free(g->protocol_type);
            g->protocol_type = type;
        }
    }
    m->pending = false;
    m->session_ms = (uint32_t)req->session_timeout_ms;
    m->rebalance_ms = (uint32_t)req->rebalance_timeout_ms;
    free(m->instance_id);
    m->instance_id = req->group_instance_id.len >= 0 ? kgroup__strdup(req->group_instance_id)
                                                     : NULL;
    /* A second JoinGroup while one waits (a client that gave up on the
     * first): the earlier one is told to rejoin. */
    kgroup__join_error(m, KAFKA_REBALANCE_IN_PROGRESS);
    kgroup__sync_answer(m, KAFKA_REBALANCE_IN_PROGRESS);
    m->join_cb = cb;
    m->join_arg = arg;
    m->deadline = now + m->session_ms;
    kgroup__prepare(gs, g);
    if (m->rebalance_ms > 0 && now + m->rebalance_ms > g->rebalance_deadline) {
        g->rebalance_deadline = now + m->rebalance_ms;
    }
    if (g->initial_until != 0 && now < g->initial_until) {
        /* Kafka's delayed initial join: each new member extends the wait,
         * up to the rebalance timeout. */
        uint64_t until = now + gs->lim.initial_delay_ms;
        g->initial_until = until < g->rebalance_deadline ? until : g->rebalance_deadline;
    }
    kgroup__maybe_complete(gs, g);
}

void kgroups_sync(struct kgroups *gs, const struct kafka_sync_req *req, kgroup_sync_cb cb,
                  void *arg)
{
    struct kgroup__group *g = kgroup__find(gs, req->group_id);
    struct kgroup__member *m = g != NULL ? kgroup__member(g, req->member_id) : NULL;
    if (m == NULL || m->pending) {
        cb(arg, KAFKA_UNKNOWN_MEMBER_ID, NULL, 0);
        return;
    }
    if (req->generation_id != g->generation) {
        cb(arg, KAFKA_ILLEGAL_GENERATION, NULL, 0);
        return;
    }
    if (g->state == KGROUP__PREPARING || g->state == KGROUP__EMPTY) {
        cb(arg, KAFKA_REBALANCE_IN_PROGRESS, NULL, 0);
        return;
    }
    m->deadline = kgroup__now(gs) + m->session_ms;
    if (g->state == KGROUP__STABLE) {
        cb(arg, KAFKA_NONE, m->assignment, m->assignment_len);
        return;
    }
    /* COMPLETING: wait for the leader's assignment (or give it). */
    kgroup__sync_answer(m, KAFKA_REBALANCE_IN_PROGRESS);
    m->sync_cb = cb;
    m->sync_arg = arg;
    if (g->leader == NULL || strcmp(g->leader, m->id) != 0) {
        return;
    }
    for (int32_t i = 0; i < req->n_assignments; i++) {
        struct kgroup__member *o = kgroup__member(g, req->assignments[i].member_id);
        struct kafka_str a = req->assignments[i].assignment;
        if (o == NULL || a.len <= 0) {
            continue;
        }
        uint8_t *copy = malloc((size_t)a.len);
        if (copy == NULL) {
            continue; /* that member gets an empty assignment and rejoins */
        }
        memcpy(copy, a.p, (size_t)a.len);
        free(o->assignment);
        o->assignment = copy;
        o->assignment_len = (size_t)a.len;
    }
    g->state = KGROUP__STABLE;
    for (struct kgroup__member *o = g->members; o != NULL; o = o->next) {
        kgroup__sync_answer(o, KAFKA_NONE);
    }
}

int16_t kgroups_heartbeat(struct kgroups *gs, const struct kafka_heartbeat_req *req)
{
    struct kgroup__group *g = kgroup__find(gs, req->group_id);
    struct kgroup__member *m = g != NULL ? kgroup__member(g, req->member_id) : NULL;
    if (m == NULL || m->pending) {
        return KAFKA_UNKNOWN_MEMBER_ID;
    }
    m->deadline = kgroup__now(gs) + m->session_ms;
    if (g->state == KGROUP__PREPARING) {
        return KAFKA_REBALANCE_IN_PROGRESS;
    }
    if (req->generation_id != g->generation) {
        return KAFKA_ILLEGAL_GENERATION;
    }
    return KAFKA_NONE;
}

int16_t kgroups_leave(struct kgroups *gs, struct kafka_leave_req *req)
{
    struct kgroup__group *g = kgroup__find(gs, req->group_id);
    int16_t first = KAFKA_NONE;
    for (int32_t i = 0; i < req->n_members; i++) {
        struct kgroup__member *m = g != NULL ? kgroup__member(g, req->members[i].member_id)
                                             : NULL;
        req->members[i].error = m != NULL ? KAFKA_NONE : KAFKA_UNKNOWN_MEMBER_ID;
        if (i == 0) {
            first = req->members[i].error;
        }
        if (m != NULL) {
            TLOG_DEBUG("kafka", "group %s: member %s left", g->id, m->id);
            kgroup__remove(gs, g, m, KAFKA_UNKNOWN_MEMBER_ID);
        }
    }
    if (g != NULL) {
        kgroup__gc(gs, g);
    }
    return first;
}

int16_t kgroups_commit_check(struct kgroups *gs, struct kafka_str group, int32_t generation,
                             struct kafka_str member_id)
{
    struct kgroup__group *g = kgroup__find(gs, group);
    if (g == NULL || kgroup__joined(g) == 0) {
        /* No members: a commit from outside any generation (a consumer
         * with assign(), or an admin tool) is what Kafka accepts. */
        return generation < 0 ? KAFKA_NONE : KAFKA_UNKNOWN_MEMBER_ID;
    }
    struct kgroup__member *m = kgroup__member(g, member_id);
    if (m == NULL || m->pending) {
        return generation < 0 ? KAFKA_ILLEGAL_GENERATION : KAFKA_UNKNOWN_MEMBER_ID;
    }
    if (generation != g->generation) {
        return KAFKA_ILLEGAL_GENERATION;
    }
    if (g->state == KGROUP__COMPLETING) {
        return KAFKA_REBALANCE_IN_PROGRESS;
    }
    /* STABLE, and PREPARING too: members commit what they processed
     * before they rejoin (Kafka accepts the current generation's). */
    m->deadline = kgroup__now(gs) + m->session_ms;
    return KAFKA_NONE;
}

void kgroups_set_assignor(struct kgroups *gs, const char *protocol_type, kgroup_assignor fn,
                          kgroup_had_members had, void *arg)
{
    snprintf(gs->assigned_type, sizeof gs->assigned_type, "%s", protocol_type);
    gs->assignor = fn;
    gs->had_members = had;
    gs->had_arg = arg;
}

bool kgroups_assignment(const struct kgroups *gs, struct kafka_str group,
                        struct kafka_str member_id, int32_t *generation, const uint8_t **data,
                        size_t *len)
{
    const struct kgroup__group *g = kgroup__find(gs, group);
    const struct kgroup__member *m = g != NULL ? kgroup__member(g, member_id) : NULL;
    if (m == NULL || m->pending) {
        return false;
    }
    *generation = g->generation;
    *data = m->assignment;
    *len = m->assignment_len;
    return true;
}

bool kgroups_at(const struct kgroups *gs, unsigned i, const char **group_id,
                const char **protocol_type)
{
    const struct kgroup__group *g = gs->groups;
    while (g != NULL && i > 0) {
        g = g->next;
        i--;
    }
    if (g == NULL) {
        return false;
    }
    *group_id = g->id;
    *protocol_type = g->protocol_type != NULL ? g->protocol_type : "";
    return true;
}

bool kgroups_describe(const struct kgroups *gs, struct kafka_str group, struct kafka_arena *a,
                      struct kafka_dg_group *out)
{
    const struct kgroup__group *g = kgroup__find(gs, group);
    if (g == NULL) {
        return false;
    }
    unsigned n = kgroup__joined(g);
    struct kafka_dg_member *list = kafka_arena_alloc(a, (n > 0 ? n : 1) * sizeof *list);
    unsigned k = 0;
    for (const struct kgroup__member *m = g->members; m != NULL && list != NULL; m = m->next) {
        if (m->pending) {
            continue;
        }
        const struct kgroup__protocol *p = kgroup__protocol_of(m, g->protocol);
        list[k].member_id = m->id;
        list[k].group_instance_id = m->instance_id;
        list[k].client_id = m->client_id;
        list[k].client_host = m->client_host;
        list[k].metadata = p != NULL ? p->metadata : NULL;
        list[k].metadata_len = p != NULL ? p->metadata_len : 0;
        list[k].assignment = m->assignment;
        list[k].assignment_len = m->assignment_len;
        k++;
    }
    out->error = KAFKA_NONE;
    out->group_id = g->id;
    out->state = kgroup__state_names[g->state];
    out->protocol_type = g->protocol_type != NULL ? g->protocol_type : "";
    out->protocol_data = g->state == KGROUP__STABLE && g->protocol != NULL ? g->protocol : "";
    out->n_members = (int32_t)k;
    out->members = list;
    return true;
}

unsigned kgroups_members(const struct kgroups *gs, struct kafka_str group)
{
    const struct kgroup__group *g = kgroup__find(gs, group);
    return g != NULL ? kgroup__joined(g) : 0;
}

unsigned kgroups_count(const struct kgroups *gs, unsigned *members)
{
    unsigned n = 0;
    for (const struct kgroup__group *g = gs->groups; g != NULL; g = g->next) {
        n += kgroup__joined(g);
    }
    if (members != NULL) {
        *members = n;
    }
    return gs->n_groups;
}
