/* libtally: topics (tally_topic_create, _delete, _list in include/tally.h).
 *
 * Creating and deleting a topic are writes answered by DONE once committed
 * and applied; they are not retried once sent (client.c, the retry
 * driver), since a second create of the same topic would be refused. The
 * list is a read from any node. */
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
 * Topics
 * ------------------------------------------------------------------------ */

TALLY_API void tally_topic_config_init(struct tally_topic_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    cfg->policy = TALLY_POLICY_RETAIN;
    cfg->retention_ms = -1;
    cfg->retention_bytes = -1;
    cfg->segment_bytes = 0;
}

/* A write answered by DONE (topic and member changes). */
int client__done_call(struct tally_client *c, const char *what)
{
    struct client__op op;
    struct client__reply rep;
    struct proto_done_resp d;
    int rv;
    client__op_init(c, &op, what, true);
    rv = client__call(c, &op, &rep);
    if (rv != 0) {
        return rv;
    }
    if (proto_get_done_resp(&rep.body, &d) != 0 || proto_get_end(&rep.body) != 0) {
        return client__malformed(c, what);
    }
    return 0;
}

TALLY_API int tally_topic_create(tally_client *c, const char *name,
                                 const struct tally_topic_config *cfg)
{
    struct proto_topic_create_req m;
    struct tally_topic_config def;
    char what[PROTO_NAME_MAX + 32];
    size_t start;
    int rv;

    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "create topic %s", name != NULL ? name : "(null)");
    if ((rv = client__check_name(c, name, what)) != 0) {
        return rv;
    }
    if (cfg == NULL) {
        tally_topic_config_init(&def);
        cfg = &def;
    }
    if (cfg->policy < TALLY_POLICY_RETAIN || cfg->policy > TALLY_POLICY_COMPACT_DELETE) {
        err_printf(c->errmsg, "%s: unknown policy %d", what, cfg->policy);
        return TALLY_INVAL;
    }
    memset(&m, 0, sizeof m);
    snprintf(m.name, sizeof m.name, "%s", name);
    m.policy = (uint8_t)cfg->policy;
    m.retention_ms = cfg->retention_ms;
    m.retention_bytes = cfg->retention_bytes;
    m.segment_bytes = cfg->segment_bytes;
    start = client__begin(c, PROTO_TOPIC_CREATE);
    proto_put_topic_create_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    return client__done_call(c, what);
}

TALLY_API int tally_topic_delete(tally_client *c, const char *name)
{
    struct proto_topic_delete_req m;
    char what[PROTO_NAME_MAX + 32];
    size_t start;
    int rv;

    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "delete topic %s", name != NULL ? name : "(null)");
    if ((rv = client__check_name(c, name, what)) != 0) {
        return rv;
    }
    snprintf(m.name, sizeof m.name, "%s", name);
    start = client__begin(c, PROTO_TOPIC_DELETE);
    proto_put_topic_delete_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    return client__done_call(c, what);
}

TALLY_API int tally_topic_alter(tally_client *c, const char *name, unsigned set,
                                const struct tally_topic_config *cfg)
{
    struct proto_topic_config_req m;
    char what[PROTO_NAME_MAX + 32];
    size_t start;
    int rv;

    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "alter topic %s", name != NULL ? name : "(null)");
    if ((rv = client__check_name(c, name, what)) != 0) {
        return rv;
    }
    if (cfg == NULL || set == 0 || (set & ~7u) != 0 || cfg->policy < 0 || cfg->policy > 3 ||
        cfg->retention_ms < -1 || cfg->retention_bytes < -1) {
        snprintf(c->errmsg, sizeof c->errmsg, "%s: invalid settings", what);
        return TALLY_INVAL;
    }
    memset(&m, 0, sizeof m);
    snprintf(m.name, sizeof m.name, "%s", name);
    m.set = (uint8_t)set; /* TALLY_SET_* are PROTO_CONFIG_* */
    m.policy = (uint8_t)cfg->policy;
    m.retention_ms = cfg->retention_ms;
    m.retention_bytes = cfg->retention_bytes;
    start = client__begin(c, PROTO_TOPIC_CONFIG);
    proto_put_topic_config_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    return client__done_call(c, what);
}

/* Topics per TOPIC_LIST page: a node answers a page's worth at a time,
 * however many topics it has. */
#define CLIENT__TOPIC_PAGE 1000

/* One TOPIC_LIST: a page after (@after, *@after_id) when @paged, appended
 * to *@topics (*@n of *@cap); *@more says whether topics follow it. */
static int client__topic_page(tally_client *c, int only, bool paged, const char *after,
                              uint64_t *after_id, bool *more, struct tally_topic_info **topics,
                              size_t *n, size_t *cap)
{
    static const char what[] = "list topics";
    /* Smallest encoded TOPIC: empty name, policy, five 8-byte fields. */
    const size_t min_item = 2 + 1 + 5 * 8;
    struct proto_topic_list_req m = {paged ? PROTO_TOPIC_LIST_PAGED : 0};
    struct proto_topic_list_resp lr;
    struct proto_topic_page_resp tail = {0, 0};
    struct client__op op;
    struct client__reply rep;
    size_t start;
    int rv;

    start = client__begin(c, PROTO_TOPIC_LIST);
    proto_put_topic_list_req(&c->req, &m);
    if (paged) {
        struct proto_topic_page_req page = {.after_id = *after_id, .limit = CLIENT__TOPIC_PAGE};
        snprintf(page.after, sizeof page.after, "%s", after);
        proto_put_topic_page_req(&c->req, &page);
    }
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    client__op_init(c, &op, what, false);
    op.only = only;
    if ((rv = client__call(c, &op, &rep)) != 0) {
        return rv;
    }
    if (proto_get_topic_list_resp(&rep.body, &lr) != 0 ||
        lr.n_topics > rep.body.left / min_item) {
        return client__malformed(c, what);
    }
    if (*n + lr.n_topics > *cap) {
        size_t want = *n + lr.n_topics + (*cap > 0 ? *cap : 16);
        struct tally_topic_info *grown = realloc(*topics, want * sizeof *grown);
        if (grown == NULL) {
            err_printf(c->errmsg, "%s: out of memory", what);
            return TALLY_NOMEM;
        }
        *topics = grown;
        *cap = want;
    }
    for (uint32_t i = 0; i < lr.n_topics; i++) {
        struct tally_topic_info *out = &(*topics)[*n + i];
        struct proto_topic t;
        if (proto_get_topic(&rep.body, &t) != 0) {
            return client__malformed(c, what);
        }
        memset(out, 0, sizeof *out);
        snprintf(out->name, sizeof out->name, "%s", t.name);
        out->config.policy = t.policy;
        out->config.retention_ms = t.retention_ms;
        out->config.retention_bytes = t.retention_bytes;
        out->config.segment_bytes = t.segment_bytes;
        out->start_offset = t.start_offset;
        out->next_offset = t.next_offset;
    }
    if ((paged && proto_get_topic_page_resp(&rep.body, &tail) != 0) ||
        proto_get_end(&rep.body) != 0) {
        return client__malformed(c, what);
    }
    *n += lr.n_topics;
    *after_id = tail.last_id;
    *more = paged && tail.more != 0 && lr.n_topics > 0;
    return 0;
}

/* TOPIC_LIST from any node, or from node index @only alone (>= 0), a page
 * at a time; a server older than paging (it calls the paged request
 * malformed) is asked for the whole list at once. */
int client__topic_list(tally_client *c, int only, struct tally_topic_info **topics,
                              size_t *n)
{
    struct tally_topic_info *out = NULL;
    size_t got = 0, cap = 0;
    uint64_t after_id = 0;
    bool more = true, paged = true;
    int rv = 0;

    c->errmsg[0] = '\0';
    *topics = NULL;
    *n = 0;
    while (more) {
        char after[PROTO_NAME_MAX] = "";
        if (got > 0) {
            snprintf(after, sizeof after, "%s", out[got - 1].name);
        }
        rv = client__topic_page(c, only, paged, after, &after_id, &more, &out, &got, &cap);
        if (rv == TALLY_PROTO && paged && got == 0) {
            paged = false; /* an older server */
            c->errmsg[0] = '\0';
            more = true;
            continue;
        }
        if (rv != 0) {
            free(out);
            return rv;
        }
    }
    if (out == NULL && (out = calloc(1, sizeof *out)) == NULL) {
        err_printf(c->errmsg, "list topics: out of memory");
        return TALLY_NOMEM;
    }
    *topics = out;
    *n = got;
    return 0;
}

TALLY_API int tally_topic_list(tally_client *c, struct tally_topic_info **topics, size_t *n)
{
    if (c == NULL) {
        return TALLY_INVAL;
    }
    if (topics == NULL || n == NULL) {
        return client__null_output(c, "list topics", topics == NULL ? "topics" : "n");
    }
    return client__topic_list(c, -1, topics, n);
}

