/* libtally: a member of a shared consumer group (tally_group_join and
 * friends in include/tally.h; docs/groups.md).
 *
 * The member's life: GROUP_JOIN (the leader deals the shares and answers
 * this member's, each with its committed position), then polls: each poll
 * heartbeats when a third of the session has passed since the last one,
 * commits what earlier polls returned at most every commit_ms, and reads
 * its shares' records with a FETCH_FILTERED that names them. A heartbeat
 * answered "rejoin" (a rebalance) commits and joins again; "not a member"
 * or a session without any answered heartbeat (the coordinator has
 * dropped us, or we cannot reach it) joins afresh without committing,
 * and returns nothing meanwhile. That last rule is what keeps two members
 * off one share: the coordinator removes a member a session after the
 * last heartbeat it received, and the member stops a session after the
 * last heartbeat it sent that was answered, which is earlier.
 *
 * Positions: records below processed_to have been processed (returned by
 * a poll before the last); a commit raises each held share's position to
 * it. A share whose committed position is above the read position (its
 * last holder got further) has its records below that position dropped
 * here, so they are not processed twice. */
#include "tally.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client.h"
#include "client/wire.h"
#include "lib/err.h"
#include "lib/glob.h"
#include "lib/share.h"
#include "proto/proto.h"

#define SHARED__DEFAULT_SESSION_MS 10000u
#define SHARED__DEFAULT_COMMIT_MS 1000u
#define SHARED__DEFAULT_MAX_BYTES (1u << 20)
/* Joins in a row a member makes while others keep joining (each new one
 * starts another rebalance) before it gives up. */
#define SHARED__JOIN_ROUNDS 10
/* Requests of one join, and the pause between them, while the leader
 * moves (within the join's deadline). */
#define SHARED__JOIN_ATTEMPTS 50
#define SHARED__RETRY_MS 100

struct tally_group_member {
    tally_client *c;
    char group[PROTO_NAME_MAX];
    char topic[PROTO_NAME_MAX];
    char filter[GLOB_MAX + 1];   /* "" : none */
    struct tally_group_options o;
    char member_id[PROTO_NAME_MAX];
    bool joined;                 /* holds the shares of generation */
    uint32_t generation;
    uint64_t topic_id;
    unsigned n_owned;
    uint16_t owned[SHARE_MAX];
    uint64_t pos[SHARE_MAX];     /* committed position, by share number */
    struct client__shares sel;   /* the owned shares, for FETCH_FILTERED */
    uint64_t min_index;          /* reads wait for this index: the leader's
                                  * at the join, or the highest a read was
                                  * answered at */
    uint64_t read_at;            /* next offset to read */
    uint64_t returned_to;        /* the last poll returned records below */
    uint64_t processed_to;       /* processed: records below (earlier polls) */
    int64_t last_ok;             /* send time of the last answered heartbeat */
    int64_t last_beat;           /* send time of the last heartbeat */
    int64_t last_commit;
};

TALLY_API void tally_group_options_init(struct tally_group_options *o)
{
    memset(o, 0, sizeof *o);
}

/* ---- requests ------------------------------------------------------------ */

/* Send the request in c->req to the leader until @deadline. A heartbeat,
 * commit or leave is safe to repeat, so it is sent again after an unknown
 * outcome (and given up on one node after a few seconds, as a produce
 * is); a join waits for its answer as long as the deadline allows (up to
 * a session: the other members rejoin first), since a repeated first join
 * would make a second member. */
static int shared__call(struct tally_client *c, const char *what, int64_t deadline,
                        bool repeatable, struct client__reply *rep)
{
    struct client__op op;
    client__op_init(c, &op, what, true);
    op.idempotent = repeatable;
    op.deadline = deadline;
    return client__call(c, &op, rep);
}

/* GROUP_HEARTBEAT: its status, or -1 (c->errmsg says why). */
static int shared__heartbeat(struct tally_group_member *m)
{
    struct proto_group_heartbeat_req q;
    struct proto_group_heartbeat_resp a;
    struct client__reply rep;
    char what[PROTO_NAME_MAX + 32];
    snprintf(what, sizeof what, "heartbeat of group %s", m->group);
    memset(&q, 0, sizeof q);
    snprintf(q.group, sizeof q.group, "%s", m->group);
    snprintf(q.member_id, sizeof q.member_id, "%s", m->member_id);
    snprintf(q.topic, sizeof q.topic, "%s", m->topic);
    q.generation = m->generation;
    size_t start = client__begin(m->c, PROTO_GROUP_HEARTBEAT);
    proto_put_group_heartbeat_req(&m->c->req, &q);
    int64_t sent = wire_now_ms();
    m->last_beat = sent;
    if (client__end(m->c, start, what) != 0 ||
        shared__call(m->c, what, sent + m->o.session_ms / 3 + 1, true, &rep) != 0) {
        return -1;
    }
    if (proto_get_group_heartbeat_resp(&rep.body, &a) != 0 || proto_get_end(&rep.body) != 0) {
        client__malformed(m->c, what);
        return -1;
    }
    if (a.status == PROTO_GROUP_GO_ON) {
        m->last_ok = sent;
    }
    return a.status;
}

/* Decode a GROUP_JOIN answer into @m. */
static int shared__take_join(struct tally_group_member *m, struct client__reply *rep,
                             const char *what)
{
    struct proto_group_join_resp a;
    if (proto_get_group_join_resp(&rep->body, &a) != 0 || a.n_owned > SHARE_MAX) {
        return client__malformed(m->c, what);
    }
    memset(&m->sel, 0, sizeof m->sel);
    m->sel.n = m->o.shares;
    m->n_owned = 0;
    uint64_t low = UINT64_MAX;
    for (unsigned i = 0; i < a.n_owned; i++) {
        struct proto_share_pos p;
        if (proto_get_share_pos(&rep->body, &p) != 0 || p.share >= m->o.shares) {
            return client__malformed(m->c, what);
        }
        m->owned[m->n_owned++] = p.share;
        m->pos[p.share] = p.offset;
        share_set_add(&m->sel.set, p.share);
        low = p.offset < low ? p.offset : low;
    }
    if (proto_get_end(&rep->body) != 0) {
        return client__malformed(m->c, what);
    }
    snprintf(m->member_id, sizeof m->member_id, "%s", a.member_id);
    m->generation = a.generation;
    m->topic_id = a.topic_id;
    m->read_at = m->returned_to = m->processed_to = low != UINT64_MAX ? low : a.offset;
    m->joined = true;
    return 0;
}

/* Errors after which the leader may answer if asked again. */
static bool shared__leader_moving(int rv)
{
    return rv == TALLY_LEADERSHIP_LOST || rv == TALLY_NOTLEADER || rv == TALLY_NOLEADER ||
           rv == TALLY_IOERR || rv == TALLY_CONNECT || rv == TALLY_UNAVAILABLE ||
           rv == TALLY_SHUTDOWN;
}

/* One GROUP_JOIN, until it is answered. */
static int shared__join_once(struct tally_group_member *m)
{
    struct proto_group_join_req q;
    struct client__reply rep;
    char what[2 * PROTO_NAME_MAX + 32];
    int rv = 0;
    snprintf(what, sizeof what, "join group %s on %s", m->group, m->topic);
    m->joined = false;
    /* The answer comes when the generation starts: up to a session later,
     * when others must rejoin first (or after a leader change). */
    int64_t deadline = wire_now_ms() + m->o.session_ms + m->c->timeout_ms;
    for (int attempt = 0; attempt < SHARED__JOIN_ATTEMPTS && wire_now_ms() < deadline;
         attempt++) {
        memset(&q, 0, sizeof q);
        snprintf(q.group, sizeof q.group, "%s", m->group);
        snprintf(q.topic, sizeof q.topic, "%s", m->topic);
        snprintf(q.member_id, sizeof q.member_id, "%s", m->member_id);
        q.n_shares = (uint16_t)m->o.shares;
        q.session_ms = m->o.session_ms;
        q.filter = (const uint8_t *)m->filter;
        q.filter_len = (uint32_t)strlen(m->filter);
        size_t start = client__begin(m->c, PROTO_GROUP_JOIN);
        proto_put_group_join_req(&m->c->req, &q);
        if ((rv = client__end(m->c, start, what)) != 0) {
            return rv;
        }
        rv = shared__call(m->c, what, deadline, false, &rep);
        if (rv == TALLY_NOTFOUND && m->member_id[0] != '\0') {
            m->member_id[0] = '\0'; /* dropped by the coordinator: join afresh */
            continue;
        }
        if (rv == TALLY_BUSY) {
            continue; /* superseded by our own retry */
        }
        if (shared__leader_moving(rv)) {
            /* The leader went away under the join (so did its groups), or
             * none is known yet: join whoever leads next. A join that did
             * reach a leader that lives on makes a member that expires
             * after its session, without holding records. */
            struct timespec ts = {0, SHARED__RETRY_MS * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        break;
    }
    if (rv != 0) {
        return rv;
    }
    return shared__take_join(m, &rep, what);
}

/* GROUP_JOIN until this member holds a generation's shares. A heartbeat
 * follows at once: its send time, not the join's (which may have waited a
 * session), starts the session this member counts; and if another member
 * joined meanwhile, the rebalance it started is joined at once (nothing
 * was read yet). Then the leader's index, so that reads from a lagging
 * node wait for what the shares' positions were committed after. */
static int shared__join(struct tally_group_member *m)
{
    int rv;
    for (int round = 0; round < SHARED__JOIN_ROUNDS; round++) {
        if ((rv = shared__join_once(m)) != 0) {
            return rv;
        }
        int st = shared__heartbeat(m);
        if (st == PROTO_GROUP_GO_ON) {
            break;
        }
        m->joined = false;
        if (st < 0) {
            return TALLY_UNAVAILABLE; /* c->errmsg says why */
        }
        if (st == PROTO_GROUP_NOT_MEMBER) {
            m->member_id[0] = '\0';
        }
    }
    if (!m->joined) {
        err_printf(m->c->errmsg, "join group %s on %s: the group kept rebalancing (%d joins); "
                   "try again", m->group, m->topic, SHARED__JOIN_ROUNDS);
        return TALLY_BUSY;
    }
    uint64_t index;
    if ((rv = tally_read_index(m->c, &index)) != 0) {
        m->joined = false;
        return rv;
    }
    m->min_index = index > m->min_index ? index : m->min_index;
    m->last_commit = wire_now_ms();
    return 0;
}

/* Commit the held shares' positions up to @upto. */
static int shared__commit(struct tally_group_member *m, uint64_t upto)
{
    struct proto_group_commit_req q;
    struct proto_group_commit_shares sh;
    struct client__reply rep;
    char what[2 * PROTO_NAME_MAX + 32];
    unsigned n = 0;
    for (unsigned i = 0; i < m->n_owned; i++) {
        n += m->pos[m->owned[i]] < upto;
    }
    if (!m->joined || n == 0) {
        return 0;
    }
    snprintf(what, sizeof what, "commit group %s on %s", m->group, m->topic);
    memset(&q, 0, sizeof q);
    snprintf(q.group, sizeof q.group, "%s", m->group);
    snprintf(q.topic, sizeof q.topic, "%s", m->topic);
    memset(&sh, 0, sizeof sh);
    sh.generation = m->generation;
    snprintf(sh.member_id, sizeof sh.member_id, "%s", m->member_id);
    sh.topic_id = m->topic_id;
    sh.n_shares = (uint16_t)m->o.shares;
    sh.n_items = (uint16_t)n;
    size_t start = client__begin(m->c, PROTO_GROUP_COMMIT);
    proto_put_group_commit_req(&m->c->req, &q);
    proto_put_group_commit_shares(&m->c->req, &sh);
    for (unsigned i = 0; i < m->n_owned; i++) {
        struct proto_share_pos p = {.share = m->owned[i], .offset = upto};
        if (m->pos[p.share] < upto) {
            proto_put_share_pos(&m->c->req, &p);
        }
    }
    int rv = client__end(m->c, start, what);
    if (rv == 0) {
        rv = shared__call(m->c, what, wire_now_ms() + m->c->timeout_ms, true, &rep);
    }
    if (rv == TALLY_CONDITION_FAILED) {
        m->joined = false; /* fenced: another member may hold our shares now */
        return rv;
    }
    if (rv != 0) {
        return rv;
    }
    for (unsigned i = 0; i < m->n_owned; i++) {
        if (m->pos[m->owned[i]] < upto) {
            m->pos[m->owned[i]] = upto;
        }
    }
    m->last_commit = wire_now_ms();
    return 0;
}

/* ---- the API ------------------------------------------------------------- */

TALLY_API int tally_group_join(tally_client *c, const char *group, const char *topic,
                               const struct tally_group_options *o, tally_group_member **out)
{
    char what[2 * PROTO_NAME_MAX + 32];
    char why[160];
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "join group %s on %s", group != NULL ? group : "(null)",
             topic != NULL ? topic : "(null)");
    if (out == NULL) {
        return client__null_output(c, what, "out");
    }
    *out = NULL;
    if ((rv = client__check_group(c, group, what)) != 0) {
        return rv;
    }
    if ((rv = client__check_name(c, topic, what)) != 0) {
        return rv;
    }
    struct tally_group_member *m = calloc(1, sizeof *m);
    if (m == NULL) {
        err_printf(c->errmsg, "%s: out of memory", what);
        return TALLY_NOMEM;
    }
    m->c = c;
    snprintf(m->group, sizeof m->group, "%s", group);
    snprintf(m->topic, sizeof m->topic, "%s", topic);
    if (o != NULL) {
        m->o = *o;
    }
    m->o.shares = m->o.shares ? m->o.shares : SHARE_DEFAULT;
    m->o.session_ms = m->o.session_ms ? m->o.session_ms : SHARED__DEFAULT_SESSION_MS;
    m->o.commit_ms = m->o.commit_ms ? m->o.commit_ms : SHARED__DEFAULT_COMMIT_MS;
    m->o.max_bytes = m->o.max_bytes ? m->o.max_bytes : SHARED__DEFAULT_MAX_BYTES;
    if (m->o.shares > SHARE_MAX) {
        err_printf(c->errmsg, "%s: %u shares (1..%d)", what, m->o.shares, SHARE_MAX);
        free(m);
        return TALLY_INVAL;
    }
    if (m->o.filter != NULL) {
        size_t len = strlen(m->o.filter);
        if (!glob_check((const uint8_t *)m->o.filter, len, why, sizeof why)) {
            err_printf(c->errmsg, "%s: filter '%.64s': %s", what, m->o.filter, why);
            free(m);
            return TALLY_INVAL;
        }
        memcpy(m->filter, m->o.filter, len + 1);
    }
    m->o.filter = NULL; /* m->filter is the copy */
    if ((rv = shared__join(m)) != 0) {
        free(m);
        return rv;
    }
    *out = m;
    return 0;
}

/* Sleep @ms (a member without shares waits for the next rebalance). */
static void shared__sleep(uint32_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Drop from @res the records this member must not process: those of a
 * share it does not hold, and those below their share's committed
 * position (processed already by the share's last holder). */
static void shared__keep_own(struct tally_group_member *m, struct tally_fetch_result *res)
{
    size_t k = 0;
    for (size_t i = 0; i < res->n; i++) {
        const struct tally_record *r = &res->records[i];
        uint32_t s = share_of(r->key_len > 0 ? r->key : NULL, r->key_len, r->offset,
                              m->o.shares);
        if (share_set_has(&m->sel.set, s) && r->offset >= m->pos[s]) {
            res->records[k++] = *r;
        }
    }
    res->n = k;
}

TALLY_API int tally_group_poll(tally_group_member *m, uint32_t max_wait_ms,
                               struct tally_fetch_result *res)
{
    if (m == NULL || res == NULL) {
        return TALLY_INVAL;
    }
    memset(res, 0, sizeof *res);
    m->c->errmsg[0] = '\0';
    int64_t now = wire_now_ms();
    uint32_t beat = m->o.session_ms / 3;
    m->processed_to = m->returned_to;
    if (m->joined && now - m->last_beat >= (int64_t)beat) {
        int st = shared__heartbeat(m);
        if (st == PROTO_GROUP_REJOIN) {
            (void)shared__commit(m, m->processed_to); /* fenced or not, rejoin */
            m->joined = false;
        } else if (st == PROTO_GROUP_NOT_MEMBER ||
                   wire_now_ms() - m->last_ok >= (int64_t)m->o.session_ms) {
            m->joined = false; /* our shares may be someone else's now */
            if (st == PROTO_GROUP_NOT_MEMBER) {
                m->member_id[0] = '\0';
            }
        }
    }
    if (!m->joined) {
        int rv = shared__join(m);
        if (rv != 0) {
            return rv;
        }
    }
    if (wire_now_ms() - m->last_commit >= (int64_t)m->o.commit_ms) {
        (void)shared__commit(m, m->processed_to); /* retried at the next poll */
        if (!m->joined) {
            return 0; /* fenced: the next poll joins again */
        }
    }
    uint32_t wait = max_wait_ms < beat ? max_wait_ms : beat;
    if (m->n_owned == 0) {
        shared__sleep(wait);
        return 0;
    }
    struct tally_fetch_options fo;
    tally_fetch_options_init(&fo);
    fo.max_bytes = m->o.max_bytes;
    fo.max_wait_ms = wait;
    fo.min_index = m->min_index;
    int rv = client__fetch_filtered(m->c, m->topic, m->read_at, m->filter[0] ? m->filter : NULL,
                                    &m->sel, &fo, res);
    if (rv != 0) {
        return rv;
    }
    shared__keep_own(m, res);
    m->read_at = m->returned_to = res->next_offset;
    /* The next read may go to another node (this one may fail): it must
     * have applied what this answer was read from, or it would say the
     * topic ends before read_at. */
    if (res->applied_index > m->min_index) {
        m->min_index = res->applied_index;
    }
    return 0;
}

TALLY_API int tally_group_member_commit(tally_group_member *m, uint64_t upto)
{
    if (m == NULL) {
        return TALLY_INVAL;
    }
    m->c->errmsg[0] = '\0';
    return shared__commit(m, upto < m->returned_to ? upto : m->returned_to);
}

TALLY_API unsigned tally_group_member_shares(const tally_group_member *m, uint16_t *shares,
                                             unsigned cap, uint32_t *generation)
{
    if (m == NULL) {
        return 0;
    }
    for (unsigned i = 0; shares != NULL && i < m->n_owned && i < cap; i++) {
        shares[i] = m->owned[i];
    }
    if (generation != NULL) {
        *generation = m->generation;
    }
    return m->joined ? m->n_owned : 0;
}

TALLY_API int tally_group_leave(tally_group_member *m)
{
    struct proto_group_leave_req q;
    struct client__reply rep;
    char what[PROTO_NAME_MAX + 32];
    if (m == NULL) {
        return TALLY_INVAL;
    }
    m->c->errmsg[0] = '\0';
    int rv = 0;
    if (m->member_id[0] != '\0') {
        snprintf(what, sizeof what, "leave group %s", m->group);
        memset(&q, 0, sizeof q);
        snprintf(q.group, sizeof q.group, "%s", m->group);
        snprintf(q.member_id, sizeof q.member_id, "%s", m->member_id);
        snprintf(q.topic, sizeof q.topic, "%s", m->topic);
        size_t start = client__begin(m->c, PROTO_GROUP_LEAVE);
        proto_put_group_leave_req(&m->c->req, &q);
        if ((rv = client__end(m->c, start, what)) == 0) {
            rv = shared__call(m->c, what, wire_now_ms() + m->c->timeout_ms, true, &rep);
        }
    }
    free(m);
    return rv;
}

TALLY_API void tally_group_member_free(tally_group_member *m)
{
    free(m);
}

TALLY_API int tally_group_members_get(tally_client *c, const char *group, const char *topic,
                                      struct tally_group_members *out)
{
    struct proto_group_members_req q;
    struct proto_group_members_resp a;
    struct client__reply rep;
    char what[PROTO_NAME_MAX + 32];
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "members of group %s", group != NULL ? group : "(null)");
    if (out == NULL) {
        return client__null_output(c, what, "out");
    }
    memset(out, 0, sizeof *out);
    if ((rv = client__check_group(c, group, what)) != 0) {
        return rv;
    }
    if (topic != NULL && (rv = client__check_name(c, topic, what)) != 0) {
        return rv;
    }
    memset(&q, 0, sizeof q);
    snprintf(q.group, sizeof q.group, "%s", group);
    snprintf(q.topic, sizeof q.topic, "%s", topic != NULL ? topic : "");
    size_t start = client__begin(c, PROTO_GROUP_MEMBERS);
    proto_put_group_members_req(&c->req, &q);
    if ((rv = client__end(c, start, what)) != 0 ||
        (rv = shared__call(c, what, wire_now_ms() + c->timeout_ms, true, &rep)) != 0) {
        return rv;
    }
    if (proto_get_group_members_resp(&rep.body, &a) != 0 ||
        a.n_members > rep.body.left / 4) {
        return client__malformed(c, what);
    }
    snprintf(out->state, sizeof out->state, "%s", a.state);
    snprintf(out->kind, sizeof out->kind, "%s", a.kind);
    snprintf(out->topic, sizeof out->topic, "%s", a.topic);
    out->generation = a.generation;
    out->n_shares = a.n_shares;
    if (a.n_members > 0 && (out->members = calloc(a.n_members, sizeof *out->members)) == NULL) {
        err_printf(c->errmsg, "%s: out of memory", what);
        return TALLY_NOMEM;
    }
    for (uint32_t i = 0; i < a.n_members; i++) {
        struct proto_group_member pm;
        struct tally_group_member_info *mi = &out->members[i];
        if (proto_get_group_member(&rep.body, &pm) != 0 || pm.n_owned > SHARE_MAX) {
            tally_group_members_free(out);
            return client__malformed(c, what);
        }
        snprintf(mi->member_id, sizeof mi->member_id, "%s", pm.member_id);
        snprintf(mi->host, sizeof mi->host, "%s", pm.client_host);
        for (unsigned k = 0; k < pm.n_owned; k++) {
            struct proto_share_pos p;
            if (proto_get_share_pos(&rep.body, &p) != 0) {
                tally_group_members_free(out);
                return client__malformed(c, what);
            }
            mi->shares[k] = p.share;
            mi->positions[k] = p.offset;
        }
        mi->n_shares = pm.n_owned;
        out->n++;
    }
    if (proto_get_end(&rep.body) != 0) {
        tally_group_members_free(out);
        return client__malformed(c, what);
    }
    return 0;
}

TALLY_API void tally_group_members_free(struct tally_group_members *m)
{
    if (m != NULL) {
        free(m->members);
        m->members = NULL;
        m->n = 0;
    }
}
