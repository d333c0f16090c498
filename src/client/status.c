/* libtally: tally_status_get, the cluster as every member sees it
 * (include/tally.h).
 *
 * Each member is asked for its own METADATA (and CLOCK), so the status
 * shows every member's applied index and role as that member reports it,
 * and where the members disagree (tally_status_disagreement). */
#include "tally.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "lib/batch.h"
#include "lib/byte.h"
#include "lib/err.h"
#include "proto/proto.h"

/* ------------------------------------------------------------------------
 * Cluster status and membership
 * ------------------------------------------------------------------------ */

/* One node's own METADATA answer. */
struct client__md {
    bool ok;
    struct proto_metadata_resp md;
    struct proto_member *members; /* owned */
    bool clock_ok;                /* clk holds the node's CLOCK answer */
    struct proto_clock_resp clk;
};

/* CLOCK from node @i (after its METADATA answered): its clock offset
 * against the leader. A server that does not know CLOCK (older than
 * protocol type 19) leaves the offset unknown. */
static void client__clock_from(struct tally_client *c, size_t i, int64_t deadline,
                               struct client__md *out)
{
    struct proto_clock_req mq = {0};
    struct client__reply rep;
    bool sent;
    size_t start = client__begin(c, PROTO_CLOCK);
    proto_put_clock_req(&c->req, &mq);
    if (client__end(c, start, "status") != 0 ||
        client__attempt(c, i, deadline, &sent, &rep) != 0 || rep.is_error) {
        return;
    }
    out->clock_ok = proto_get_clock_resp(&rep.body, &out->clk) == 0 &&
                    proto_get_end(&rep.body) == 0;
}

/* METADATA from node @i into @out. */
static int client__metadata_from(struct tally_client *c, size_t i, int64_t deadline,
                                 struct client__md *out)
{
    /* Smallest encoded MEMBER: id, two empty strings, voter. */
    const size_t min_item = 8 + 2 + 2 + 1;
    struct proto_metadata_req mq = {0};
    struct client__reply rep;
    bool sent;
    size_t start;
    int rv;

    start = client__begin(c, PROTO_METADATA);
    proto_put_metadata_req(&c->req, &mq);
    if ((rv = client__end(c, start, "status")) != 0) {
        return rv;
    }
    /* One attempt only: a node that does not answer is reported as
     * unreachable rather than waited for. */
    rv = client__attempt(c, i, deadline, &sent, &rep);
    if (rv != 0) {
        client__set_why(&c->nodes[i], c->errmsg);
        return rv;
    }
    if (rep.is_error) {
        client__set_why(&c->nodes[i], rep.err.message);
        return rep.err.code;
    }
    if (proto_get_metadata_resp(&rep.body, &out->md) != 0 ||
        out->md.n_members > rep.body.left / min_item) {
        snprintf(c->nodes[i].why, sizeof c->nodes[i].why, "malformed answer");
        return TALLY_PROTO;
    }
    out->members = calloc(out->md.n_members ? out->md.n_members : 1, sizeof *out->members);
    if (out->members == NULL) {
        return TALLY_NOMEM;
    }
    for (uint32_t k = 0; k < out->md.n_members; k++) {
        if (proto_get_member(&rep.body, &out->members[k]) != 0) {
            free(out->members);
            out->members = NULL;
            snprintf(c->nodes[i].why, sizeof c->nodes[i].why, "malformed answer");
            return TALLY_PROTO;
        }
    }
    if (proto_get_end(&rep.body) != 0) {
        free(out->members);
        out->members = NULL;
        snprintf(c->nodes[i].why, sizeof c->nodes[i].why, "malformed answer");
        return TALLY_PROTO;
    }
    out->ok = true;
    c->nodes[i].id = out->md.node_id;
    char saved[ERR_MSG_SIZE];
    memcpy(saved, c->errmsg, sizeof saved); /* a failed CLOCK is no error */
    client__clock_from(c, i, deadline, out);
    memcpy(c->errmsg, saved, sizeof saved);
    return 0;
}

/* Fill a tally_member with @node's own view (if it answered). */
/* How much a status answer knows of the cluster: 2 it is the leader's own,
 * 1 it names a leader, 0 neither. */
static int client__md_rank(const struct client__md *a)
{
    if (a->md.leader_id == 0) {
        return 0;
    }
    return a->md.leader_id == a->md.node_id ? 2 : 1;
}

static void client__member_self(struct tally_member *tm, const struct client__md *a)
{
    if (a == NULL || !a->ok) {
        tm->reachable = 0;
        tm->role = TALLY_ROLE_UNKNOWN;
        return;
    }
    tm->reachable = 1;
    tm->role = a->md.role <= TALLY_ROLE_UNAVAILABLE ? a->md.role : TALLY_ROLE_UNKNOWN;
    tm->applied_index = a->md.applied_index;
    tm->term = a->md.term;
    tm->commit_index = a->md.commit_index;
    tm->clock_known = a->clock_ok && a->clk.offset_known;
    tm->clock_offset_ms = tm->clock_known ? a->clk.offset_ms : 0;
    tm->clock_warning = tm->clock_known && a->clk.offset_warn;
}

TALLY_API int tally_status_get(tally_client *c, struct tally_status *st)
{
    struct client__md *ans;
    int64_t deadline, per_node;
    const struct client__md *best = NULL;
    size_t n_ok = 0, cap;
    int last = TALLY_CONNECT;
    char tried[ERR_MSG_SIZE];

    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    if (st == NULL) {
        return client__null_output(c, "status", "st");
    }
    deadline = wire_now_ms() + c->timeout_ms;
    per_node = c->timeout_ms / 3 > CLIENT__CONNECT_MS ? c->timeout_ms / 3 : CLIENT__CONNECT_MS;
    memset(st, 0, sizeof *st);
    ans = calloc(CLIENT__MAX_NODES, sizeof *ans);
    if (ans == NULL) {
        err_printf(c->errmsg, "status: out of memory");
        return TALLY_NOMEM;
    }
    for (size_t i = 0; i < c->n_nodes; i++) {
        c->nodes[i].why[0] = '\0';
    }
    /* Ask every known node; members learned from answers join the table
     * and are asked in turn (the loop bound grows with it). */
    for (size_t i = 0; i < c->n_nodes; i++) {
        int64_t until = wire_now_ms() + per_node;
        int rv = client__metadata_from(c, i, until < deadline ? until : deadline, &ans[i]);
        if (rv == TALLY_NOMEM) {
            last = rv;
            break;
        }
        if (rv != 0) {
            last = rv;
            continue;
        }
        n_ok++;
        for (uint32_t k = 0; k < ans[i].md.n_members; k++) {
            client__learn(c, ans[i].members[k].id, ans[i].members[k].client_addr);
        }
    }
    if (n_ok == 0) {
        for (size_t i = 0; i < CLIENT__MAX_NODES; i++) {
            free(ans[i].members);
        }
        free(ans);
        client__tried(c, tried, sizeof tried);
        err_printf(c->errmsg, "status: no node answered: %s", tried);
        return last == TALLY_NOMEM ? TALLY_NOMEM : TALLY_CONNECT;
    }

    /* The cluster-wide view comes from the member with the highest term
     * that knows a leader (else the highest term at all), and in that term
     * from the leader's own answer: it is the most recent. The leader's
     * matters for the commit index: a follower learns it only with the next
     * AppendEntries, so a follower's answer can miss a write acknowledged
     * just before. */
    for (size_t i = 0; i < c->n_nodes; i++) {
        const struct client__md *a = &ans[i];
        if (!a->ok) {
            continue;
        }
        if (best == NULL) {
            best = a;
            continue;
        }
        int a_rank = client__md_rank(a), b_rank = client__md_rank(best);
        bool a_knows = a_rank > 0, b_knows = b_rank > 0;
        if ((a_knows && !b_knows) ||
            (a_knows == b_knows &&
             (a->md.term > best->md.term || (a->md.term == best->md.term && a_rank > b_rank)))) {
            best = a;
        }
    }
    st->leader_id = best->md.leader_id;
    st->term = best->md.term;
    st->commit_index = best->md.commit_index;
    c->disagreement[0] = '\0';
    /* Two memberships in one cluster (issue: a first start that kept a
     * mistyped --peer): compare every answer's configuration with the
     * best one's. */
    for (size_t i = 0; i < c->n_nodes && c->disagreement[0] == '\0'; i++) {
        if (!ans[i].ok || &ans[i] == best) {
            continue;
        }
        for (uint32_t k = 0; k < ans[i].md.n_members; k++) {
            const struct proto_member *pm = &ans[i].members[k];
            for (uint32_t j = 0; j < best->md.n_members; j++) {
                const struct proto_member *bm = &best->members[j];
                if (bm->id == pm->id && strcmp(bm->raft_addr, pm->raft_addr) != 0 &&
                    c->disagreement[0] == '\0') {
                    snprintf(c->disagreement, sizeof c->disagreement,
                             "node %llu has node %llu at %s, node %llu has it at %s",
                             (unsigned long long)best->md.node_id, (unsigned long long)bm->id,
                             bm->raft_addr, (unsigned long long)ans[i].md.node_id,
                             pm->raft_addr);
                }
            }
        }
    }

    /* Members: the configuration the best answer reports, each with its own
     * view. A node that answers but is not in it (removed, and still
     * running) is no member: it is not listed (docs/operations.md). */
    cap = best->md.n_members;
    st->members = calloc(cap ? cap : 1, sizeof *st->members);
    if (st->members == NULL) {
        for (size_t i = 0; i < CLIENT__MAX_NODES; i++) {
            free(ans[i].members);
        }
        free(ans);
        err_printf(c->errmsg, "status: out of memory");
        return TALLY_NOMEM;
    }
    for (uint32_t k = 0; k < best->md.n_members; k++) {
        const struct proto_member *pm = &best->members[k];
        struct tally_member *tm = &st->members[st->n_members++];
        const struct client__md *self = NULL;
        tm->id = pm->id;
        snprintf(tm->client_addr, sizeof tm->client_addr, "%s", pm->client_addr);
        snprintf(tm->raft_addr, sizeof tm->raft_addr, "%s", pm->raft_addr);
        tm->voter = pm->voter == 1;
        tm->spare = pm->voter == 2;
        for (size_t i = 0; i < c->n_nodes; i++) {
            if (ans[i].ok && ans[i].md.node_id == pm->id) {
                self = &ans[i];
                break;
            }
        }
        client__member_self(tm, self);
        if (pm->id == st->leader_id && pm->client_addr[0] != '\0') {
            c->leader = client__learn(c, pm->id, pm->client_addr);
        }
    }
    for (size_t i = 0; i < CLIENT__MAX_NODES; i++) {
        free(ans[i].members);
    }
    free(ans);
    return 0;
}

TALLY_API const char *tally_status_disagreement(tally_client *c)
{
    if (c == NULL) {
        return "";
    }
    return c->disagreement;
}

TALLY_API void tally_status_free(struct tally_status *st)
{
    if (st == NULL) {
        return;
    }
    free(st->members);
    memset(st, 0, sizeof *st);
}
