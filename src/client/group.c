/* libtally: offsets by time and durable consumer positions
 * (tally_offset_for_time and tally_group_* in include/tally.h).
 *
 * A time lookup and the position reads (GROUP_FETCH, GROUP_LIST) are reads
 * from any node, except where a reset bases a commit on them: those read
 * the leader (client__fresh_node). Commit, set and delete are writes through Raft
 * answered by DONE; sending one twice is harmless, so they are resent
 * after an unknown outcome, like a produce. */
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
 * Time lookup and durable consumer positions
 * ------------------------------------------------------------------------ */

/* Decode an OFFSET_RESP answer. */
static int client__offset_resp(struct tally_client *c, struct client__reply *rep,
                               const char *what, uint64_t *offset, int *found)
{
    struct proto_offset_resp m;
    if (proto_get_offset_resp(&rep->body, &m) != 0 || proto_get_end(&rep->body) != 0) {
        return client__malformed(c, what);
    }
    *offset = m.offset;
    if (found != NULL) {
        *found = m.found != 0;
    }
    return 0;
}

/* OFFSET_FOR_TIME from any node, or from node index @only alone (>= 0). */
static int client__offset_for_time(tally_client *c, int only, const char *topic,
                                   int64_t timestamp_ms, uint64_t *offset)
{
    struct proto_offset_for_time_req m;
    struct client__op op;
    struct client__reply rep;
    char what[PROTO_NAME_MAX + 32];
    size_t start;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "find time in %s", topic != NULL ? topic : "(null)");
    if (offset == NULL) {
        return client__null_output(c, what, "offset");
    }
    *offset = 0;
    if ((rv = client__check_name(c, topic, what)) != 0) {
        return rv;
    }
    memset(&m, 0, sizeof m);
    snprintf(m.topic, sizeof m.topic, "%s", topic);
    m.timestamp_ms = timestamp_ms;
    start = client__begin(c, PROTO_OFFSET_FOR_TIME);
    proto_put_offset_for_time_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    client__op_init(c, &op, what, false);
    op.only = only;
    if ((rv = client__call(c, &op, &rep)) != 0) {
        return rv;
    }
    return client__offset_resp(c, &rep, what, offset, NULL);
}

TALLY_API int tally_offset_for_time(tally_client *c, const char *topic, int64_t timestamp_ms,
                                    uint64_t *offset)
{
    if (c == NULL) {
        return TALLY_INVAL;
    }
    return client__offset_for_time(c, -1, topic, timestamp_ms, offset);
}

/* The node to read a position from that a write will then be based on:
 * the leader, confirmed by READ_INDEX, whose state covers every write
 * acknowledged before this call. A follower one apply behind would give
 * the offsets of a topic deleted and created again a moment ago, and the
 * commit would be refused (or land on the wrong incarnation's offset).
 * Returns the node index, or -1 with c->errmsg set (*rv the code). */
static int client__fresh_node(tally_client *c, int *rv)
{
    uint64_t index;
    if ((*rv = tally_read_index(c, &index)) != 0) {
        return -1;
    }
    return c->leader; /* READ_INDEX is answered by the leader, which it records */
}

int client__check_group(struct tally_client *c, const char *group, const char *what)
{
    if (group == NULL || group[0] == '\0' || strlen(group) >= PROTO_NAME_MAX) {
        err_printf(c->errmsg, "%s: group name must be 1-%d bytes", what, PROTO_NAME_MAX - 1);
        return TALLY_INVAL;
    }
    return 0;
}

/* Send a GROUP_COMMIT, GROUP_SET or GROUP_DELETE built in c->req and read
 * DONE_RESP. */
static int client__group_write(struct tally_client *c, const char *what)
{
    struct client__op op;
    struct client__reply rep;
    int rv;
    /* Committing or setting the same position twice, or deleting twice, is
     * harmless (a second delete answers NOTFOUND), so a write whose outcome
     * is unknown is simply sent again. */
    client__op_init(c, &op, what, true);
    op.idempotent = true;
    if ((rv = client__call(c, &op, &rep)) != 0) {
        return rv;
    }
    struct proto_done_resp d;
    if (proto_get_done_resp(&rep.body, &d) != 0 || proto_get_end(&rep.body) != 0) {
        return client__malformed(c, what);
    }
    return 0;
}

TALLY_API int tally_group_commit(tally_client *c, const char *group, const char *topic,
                                 uint64_t offset)
{
    struct proto_group_commit_req m;
    char what[2 * PROTO_NAME_MAX + 32];
    size_t start;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "commit group %s on %s", group != NULL ? group : "(null)",
             topic != NULL ? topic : "(null)");
    if ((rv = client__check_group(c, group, what)) != 0 ||
        (rv = client__check_name(c, topic, what)) != 0) {
        return rv;
    }
    memset(&m, 0, sizeof m);
    snprintf(m.group, sizeof m.group, "%s", group);
    snprintf(m.topic, sizeof m.topic, "%s", topic);
    m.offset = offset;
    start = client__begin(c, PROTO_GROUP_COMMIT);
    proto_put_group_commit_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    return client__group_write(c, what);
}

TALLY_API int tally_group_fetch(tally_client *c, const char *group, const char *topic,
                                uint64_t *offset, int *found)
{
    struct proto_group_fetch_req m;
    struct client__op op;
    struct client__reply rep;
    char what[2 * PROTO_NAME_MAX + 32];
    size_t start;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "fetch group %s on %s", group != NULL ? group : "(null)",
             topic != NULL ? topic : "(null)");
    if (offset == NULL || found == NULL) {
        return client__null_output(c, what, offset == NULL ? "offset" : "found");
    }
    *offset = 0;
    *found = 0;
    if ((rv = client__check_group(c, group, what)) != 0 ||
        (rv = client__check_name(c, topic, what)) != 0) {
        return rv;
    }
    memset(&m, 0, sizeof m);
    snprintf(m.group, sizeof m.group, "%s", group);
    snprintf(m.topic, sizeof m.topic, "%s", topic);
    start = client__begin(c, PROTO_GROUP_FETCH);
    proto_put_group_fetch_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    /* Read from the leader: a follower may not have applied the group's
     * latest commit yet, and a consumer must resume after it. */
    client__op_init(c, &op, what, true);
    op.idempotent = true;
    if ((rv = client__call(c, &op, &rep)) != 0) {
        return rv;
    }
    return client__offset_resp(c, &rep, what, offset, found);
}

TALLY_API int tally_group_list(tally_client *c, const char *group, const char *topic,
                               struct tally_group_position **positions, size_t *n)
{
    struct proto_group_list_req m;
    struct proto_group_list_resp lr;
    struct tally_group_position *out;
    struct client__op op;
    struct client__reply rep;
    char what[2 * PROTO_NAME_MAX + 32];
    size_t start;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "list group %s", group != NULL ? group : "positions");
    if (positions == NULL || n == NULL) {
        return client__null_output(c, what, positions == NULL ? "positions" : "n");
    }
    *positions = NULL;
    *n = 0;
    if ((group != NULL && (rv = client__check_group(c, group, what)) != 0) ||
        (topic != NULL && (rv = client__check_name(c, topic, what)) != 0)) {
        return rv;
    }
    memset(&m, 0, sizeof m);
    snprintf(m.group, sizeof m.group, "%s", group != NULL ? group : "");
    snprintf(m.topic, sizeof m.topic, "%s", topic != NULL ? topic : "");
    start = client__begin(c, PROTO_GROUP_LIST);
    proto_put_group_list_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    /* The leader, as tally_group_fetch: it has the latest commits. */
    client__op_init(c, &op, what, true);
    op.idempotent = true;
    if ((rv = client__call(c, &op, &rep)) != 0) {
        return rv;
    }
    /* A position is at least 2 + 2 + 4 x 8 bytes. */
    if (proto_get_group_list_resp(&rep.body, &lr) != 0 || lr.n_positions > rep.body.left / 36) {
        return client__malformed(c, what);
    }
    out = calloc(lr.n_positions ? lr.n_positions : 1, sizeof *out);
    if (out == NULL) {
        err_printf(c->errmsg, "%s: out of memory", what);
        return TALLY_NOMEM;
    }
    for (uint32_t i = 0; i < lr.n_positions; i++) {
        struct proto_group_position p;
        if (proto_get_group_position(&rep.body, &p) != 0) {
            free(out);
            return client__malformed(c, what);
        }
        snprintf(out[i].group, sizeof out[i].group, "%s", p.group);
        snprintf(out[i].topic, sizeof out[i].topic, "%s", p.topic);
        out[i].topic_id = p.topic_id;
        out[i].offset = p.offset;
        out[i].start_offset = p.start_offset;
        out[i].next_offset = p.next_offset;
    }
    if (proto_get_end(&rep.body) != 0) {
        free(out);
        return client__malformed(c, what);
    }
    *positions = out;
    *n = lr.n_positions;
    return 0;
}

TALLY_API int tally_group_commit_at(tally_client *c, const char *group, const char *topic,
                                    uint64_t topic_id, uint64_t offset)
{
    struct proto_group_set_req m;
    char what[2 * PROTO_NAME_MAX + 32];
    size_t start;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "commit group %s on %s", group != NULL ? group : "(null)",
             topic != NULL ? topic : "(null)");
    if ((rv = client__check_group(c, group, what)) != 0 ||
        (rv = client__check_name(c, topic, what)) != 0) {
        return rv;
    }
    memset(&m, 0, sizeof m);
    snprintf(m.group, sizeof m.group, "%s", group);
    snprintf(m.topic, sizeof m.topic, "%s", topic);
    m.topic_id = topic_id;
    m.offset = offset;
    start = client__begin(c, PROTO_GROUP_SET);
    proto_put_group_set_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    return client__group_write(c, what);
}

TALLY_API int tally_group_reset(tally_client *c, const char *group, const char *topic,
                                enum tally_group_reset_to to, int64_t value, uint64_t *offset)
{
    struct tally_topic_info *topics = NULL;
    char what[2 * PROTO_NAME_MAX + 32];
    size_t n = 0, i;
    uint64_t pos = 0;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "reset group %s on %s", group != NULL ? group : "(null)",
             topic != NULL ? topic : "(null)");
    if ((rv = client__check_group(c, group, what)) != 0 ||
        (rv = client__check_name(c, topic, what)) != 0) {
        return rv;
    }
    int fresh = -1;
    if (to == TALLY_RESET_EARLIEST || to == TALLY_RESET_LATEST || to == TALLY_RESET_TIME) {
        if ((fresh = client__fresh_node(c, &rv)) < 0) {
            return rv;
        }
    }
    switch (to) {
    case TALLY_RESET_EARLIEST:
    case TALLY_RESET_LATEST:
        if ((rv = client__topic_list(c, fresh, &topics, &n)) != 0) {
            return rv;
        }
        for (i = 0; i < n && strcmp(topics[i].name, topic) != 0; i++) {
        }
        if (i == n) {
            free(topics);
            err_printf(c->errmsg, "%s: topic %s not found", what, topic);
            return TALLY_NOTFOUND;
        }
        pos = to == TALLY_RESET_EARLIEST ? topics[i].start_offset : topics[i].next_offset;
        free(topics);
        break;
    case TALLY_RESET_OFFSET:
        if (value < 0) {
            err_printf(c->errmsg, "%s: offset %lld is negative", what, (long long)value);
            return TALLY_INVAL;
        }
        pos = (uint64_t)value;
        break;
    case TALLY_RESET_TIME:
        if ((rv = client__offset_for_time(c, fresh, topic, value, &pos)) != 0) {
            return rv;
        }
        break;
    default:
        err_printf(c->errmsg, "%s: unknown reset target %d", what, (int)to);
        return TALLY_INVAL;
    }
    if ((rv = tally_group_commit_at(c, group, topic, TALLY_ANY_TOPIC_ID, pos)) != 0) {
        return rv;
    }
    if (offset != NULL) {
        *offset = pos;
    }
    return 0;
}

TALLY_API int tally_group_delete(tally_client *c, const char *group, const char *topic)
{
    struct proto_group_delete_req m;
    char what[2 * PROTO_NAME_MAX + 32];
    size_t start;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "delete group %s%s%s", group != NULL ? group : "(null)",
             topic != NULL ? " on " : "", topic != NULL ? topic : "");
    if ((rv = client__check_group(c, group, what)) != 0 ||
        (topic != NULL && (rv = client__check_name(c, topic, what)) != 0)) {
        return rv;
    }
    memset(&m, 0, sizeof m);
    snprintf(m.group, sizeof m.group, "%s", group);
    snprintf(m.topic, sizeof m.topic, "%s", topic != NULL ? topic : "");
    start = client__begin(c, PROTO_GROUP_DELETE);
    proto_put_group_delete_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    return client__group_write(c, what);
}

