/* libtally: membership changes (tally_member_add, _remove, _transfer,
 * _replace, _promote, _catchup in include/tally.h).
 *
 * Each is a write to the leader answered by DONE (client__done_call), not
 * retried once sent; the checks a change needs first (a node's history,
 * its catch-up) are reads of the members' own state. */
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


TALLY_API int tally_member_add(tally_client *c, uint64_t id, const char *addr)
{
    struct proto_member_add_req m;
    char what[64 + 2 * PROTO_ADDR_MAX];
    const char *slash = addr != NULL ? strchr(addr, '/') : NULL;
    struct sockaddr_in sa;
    char norm[PROTO_ADDR_MAX];
    size_t start;
    int rv;

    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "add member %llu at %s", (unsigned long long)id,
             addr != NULL ? addr : "(null)");
    if (id == 0 || slash == NULL ||
        wire_parse_addr(addr, (size_t)(slash - addr), &sa, norm) != 0 ||
        (size_t)(slash - addr) >= PROTO_ADDR_MAX ||
        wire_parse_addr(slash + 1, strlen(slash + 1), &sa, norm) != 0 ||
        strlen(slash + 1) >= PROTO_ADDR_MAX) {
        err_printf(c->errmsg, "%s: want a non-zero id and CLIENT_HOST:PORT/RAFT_HOST:PORT", what);
        return TALLY_INVAL;
    }
    memset(&m, 0, sizeof m);
    m.id = id;
    memcpy(m.client_addr, addr, (size_t)(slash - addr));
    snprintf(m.raft_addr, sizeof m.raft_addr, "%s", slash + 1);
    start = client__begin(c, PROTO_MEMBER_ADD);
    proto_put_member_add_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    return client__done_call(c, what);
}

/* MEMBER_REMOVE, MEMBER_TRANSFER or MEMBER_PROMOTE of @id (0 only for a
 * transfer: any up-to-date voter). */
static int client__member_op(tally_client *c, uint16_t type, uint64_t id, const char *what)
{
    size_t start;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    if (id == 0 && type != PROTO_MEMBER_TRANSFER) {
        err_printf(c->errmsg, "%s: the id must not be 0", what);
        return TALLY_INVAL;
    }
    start = client__begin(c, type);
    if (type == PROTO_MEMBER_REMOVE) {
        struct proto_member_remove_req m = {id};
        proto_put_member_remove_req(&c->req, &m);
    } else if (type == PROTO_MEMBER_PROMOTE) {
        struct proto_member_promote_req m = {id};
        proto_put_member_promote_req(&c->req, &m);
    } else {
        struct proto_member_transfer_req m = {id};
        proto_put_member_transfer_req(&c->req, &m);
    }
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    return client__done_call(c, what);
}

TALLY_API int tally_member_remove(tally_client *c, uint64_t id)
{
    char what[64];
    snprintf(what, sizeof what, "remove member %llu", (unsigned long long)id);
    return client__member_op(c, PROTO_MEMBER_REMOVE, id, what);
}

TALLY_API int tally_member_transfer(tally_client *c, uint64_t id)
{
    char what[64];
    snprintf(what, sizeof what, "transfer leadership to %llu", (unsigned long long)id);
    return client__member_op(c, PROTO_MEMBER_TRANSFER, id, what);
}

TALLY_API int tally_member_replace(tally_client *c, uint64_t id)
{
    char what[64];
    size_t start;
    int rv;
    struct proto_member_replace_req m = {id};
    if (c == NULL) {
        return TALLY_INVAL;
    }
    snprintf(what, sizeof what, "replace member %llu", (unsigned long long)id);
    c->errmsg[0] = '\0';
    if (id == 0) {
        err_printf(c->errmsg, "%s: the id must not be 0", what);
        return TALLY_INVAL;
    }
    start = client__begin(c, PROTO_MEMBER_REPLACE);
    proto_put_member_replace_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    return client__done_call(c, what);
}

TALLY_API int tally_member_promote(tally_client *c, uint64_t id)
{
    char what[64];
    snprintf(what, sizeof what, "promote member %llu to voter", (unsigned long long)id);
    return client__member_op(c, PROTO_MEMBER_PROMOTE, id, what);
}

/* Whether the node with index @only holds the history of @t, a topic as
 * that node lists it (whose start is where the history it lacks begins,
 * when it installed a snapshot and is still backfilling): a FETCH of one
 * byte there, answered by that node alone (no retry), which a node still
 * backfilling answers UNAVAILABLE. Any other error (retention moved its
 * start meanwhile) counts as "not yet" too: the caller asks again. */
static int client__member_has_history(tally_client *c, int only,
                                      const struct tally_topic_info *t, int *has)
{
    struct proto_fetch_req m;
    struct client__op op;
    struct client__reply rep;
    size_t start;
    int rv;
    *has = 1;
    if (t->next_offset == t->start_offset) {
        return 0;
    }
    client__op_init(c, &op, "probe a member's history", false);
    op.only = only;
    op.first_answer = true;
    memset(&m, 0, sizeof m);
    snprintf(m.topic, sizeof m.topic, "%s", t->name);
    m.offset = t->start_offset;
    m.max_bytes = 1;
    start = client__begin(c, PROTO_FETCH);
    proto_put_fetch_req(&c->req, &m);
    if ((rv = client__end(c, start, op.what)) != 0) {
        return rv;
    }
    rv = client__call(c, &op, &rep);
    if (rv != 0 && rv != TALLY_NOMEM) {
        *has = 0;
        rv = 0;
    }
    return rv;
}

TALLY_API int tally_member_catchup(tally_client *c, uint64_t id, uint64_t min_index,
                                   struct tally_catchup *out)
{
    struct tally_status st;
    struct tally_topic_info *topics = NULL, *theirs = NULL;
    const struct tally_member *m = NULL;
    char node[64], leader[64] = "";
    size_t n = 0, n_theirs = 0;
    int rv;

    if (c == NULL) {
        return TALLY_INVAL;
    }
    if (out == NULL) {
        return client__null_output(c, "member catch-up", "out");
    }
    memset(out, 0, sizeof *out);
    out->min_index = min_index;
    if ((rv = tally_status_get(c, &st)) != 0) {
        return rv;
    }
    for (size_t i = 0; i < st.n_members; i++) {
        if (st.members[i].id == id) {
            m = &st.members[i];
        }
        if (st.members[i].id == st.leader_id && st.leader_id != id) {
            snprintf(leader, sizeof leader, "%s", st.members[i].client_addr);
        }
    }
    if (m == NULL) {
        tally_status_free(&st);
        err_printf(c->errmsg, "node %llu is not a member of the cluster", (unsigned long long)id);
        return TALLY_NOTFOUND;
    }
    out->voter = m->voter;
    out->spare = m->spare;
    out->reachable = m->reachable;
    out->applied_index = m->applied_index;
    if (out->min_index == 0) {
        out->min_index = st.commit_index;
    }
    snprintf(node, sizeof node, "%s", m->client_addr);
    snprintf(out->addr, sizeof out->addr, "%s/%s", m->client_addr, m->raft_addr);
    tally_status_free(&st);
    if (out->spare || !out->reachable || out->applied_index < out->min_index) {
        return 0;
    }
    /* The member's own topic list: its start of a topic is where the
     * history it lacks begins. The probes must not make it the node this
     * client prefers for reads. */
    int only = client__node_add(c, node, strlen(node));
    int read_pref = c->read_pref;
    if (only < 0) {
        err_printf(c->errmsg, "member %llu: bad client address '%s'", (unsigned long long)id,
                   node);
        return TALLY_INVAL;
    }
    rv = client__topic_list(c, only, &topics, &n);
    /* Every topic the leader has must be on the member too: a member that
     * lacks a topic (say, one a restore created before it joined) does not
     * hold the cluster's history, whatever its applied index. */
    if (rv == 0 && leader[0] != '\0') {
        int lidx = client__node_add(c, leader, strlen(leader));
        if (lidx < 0 || client__topic_list(c, lidx, &theirs, &n_theirs) != 0) {
            /* Unknown is not caught up: asked again on the next round. */
            out->topics_missing++;
            snprintf(out->missing_topic, sizeof out->missing_topic, "%s",
                     "(the leader's topic list, which could not be read)");
        } else {
            for (size_t k = 0; k < n_theirs; k++) {
                bool found = false;
                for (size_t i = 0; i < n && !found; i++) {
                    found = strcmp(topics[i].name, theirs[k].name) == 0;
                }
                if (!found && out->topics_missing++ == 0) {
                    snprintf(out->missing_topic, sizeof out->missing_topic, "%s",
                             theirs[k].name);
                }
            }
        }
        free(theirs);
    }
    for (size_t i = 0; i < n && rv == 0; i++) {
        int has;
        rv = client__member_has_history(c, only, &topics[i], &has);
        if (rv == 0 && !has) {
            if (out->topics_missing++ == 0) {
                snprintf(out->missing_topic, sizeof out->missing_topic, "%s", topics[i].name);
            }
        }
    }
    c->read_pref = read_pref;
    free(topics);
    if (rv == 0) {
        out->caught_up = out->topics_missing == 0;
    }
    return rv;
}

