/* The web console's routes; see ui.h and docs/console.md.
 *
 * Routes (GET and HEAD only; anything else under /ui answers 405):
 *   /ui, /ui/          the page (index.html)
 *   /ui/<file>         one of the page's built-in files (ui_assets.h); no
 *                      file system is read, so no path can reach outside
 *   /ui/api/node       this node's own Raft state and health
 *   /ui/api/cluster    every member's state (ui_peers.h)
 *   /ui/api/topics     the catalog with sizes and offsets
 *   /ui/api/rates      rate samples of the last UI_RATE_SAMPLES seconds
 *   /ui/api/records    records of a topic (ui_records.h)
 *   /ui/api/groups     consumer group positions and their lag
 * Other paths under /ui answer 404. A query string is checked before
 * anything is read: longer than UI_MAX_QUERY, malformed percent-encoding,
 * a parameter the route does not take, a repeated one or a bad number
 * answer 400 and read nothing.
 *
 * With auth = required, /ui/api/ asks for a login before anything else
 * (ui__login: 401 without one, 403 on a channel a password must not
 * cross), and with authorize = acl each route shows only what the user
 * may see, by the ACL check native requests pass (auth_allowed), mapped
 * as the native request that asks the same question is: a topic's row,
 * details and rates need DESCRIBE on it (TOPIC_LIST shows names only and
 * OFFSET_FOR_TIME needs DESCRIBE), its records READ (FETCH), a group's row
 * DESCRIBE on the group and its topic (GROUP_FETCH). The node and cluster
 * views are open to every authenticated user, as METADATA is. */
#include "server/ui.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/logger.h"
#include "log/log.h"
#include "server/auth.h"
#include "server/http.h"
#include "server/ui_assets.h"
#include "server/ui_json.h"
#include "server/ui_peers.h"
#include "server/ui_query.h"
#include "server/ui_records.h"

#define UI__JSON "application/json; charset=utf-8"

/* A 401's challenge. The page's own requests (X-Requested-With:
 * tally-console) get a scheme no browser knows: a Basic challenge on them
 * would open the browser's own login dialog over the page (and, once
 * cancelled or wrong, leave the page stuck on an error), where the page
 * shows its own form. Everyone else (curl, scripts) gets Basic. */
#define UI__CHALLENGE "Basic realm=\"tally\""
#define UI__PAGE_CHALLENGE "TallyConsole realm=\"tally\""
#define UI__PAGE_MARK "tally-console"

/* The rate ring: every second, the node's fetch and produce counters, and
 * per topic its next offset and the records fetched from it on this node;
 * the answers turn them into rates (or hand them to the page). */
struct ui__series {
    char name[STORE_NAME_MAX];   /* "" : free */
    uint32_t hash;               /* of name: a fetch finds its series fast */
    uint64_t created_index;      /* a topic re-created under the name starts over */
    uint64_t fetched_total;      /* records fetched from it on this node so far */
    uint64_t next[UI_RATE_SAMPLES];    /* next offset; UINT64_MAX: no sample */
    uint64_t fetched[UI_RATE_SAMPLES]; /* fetched_total then; UINT64_MAX: none */
};

struct ui {
    uv_loop_t *loop;
    const struct cfg *cfg;
    struct metrics *metrics;
    struct store *store;         /* NULL until ui_attach */
    struct node *node;
    struct ui_peers *peers;
    struct ui_auth auth;         /* logins already checked (auth = required) */
    uv_timer_t timer;            /* the rate sampler */
    bool timer_on;
    bool closing;
    /* Ring of samples: slot (head - 1) is the newest of count. */
    unsigned head, count;
    uint64_t at_ms[UI_RATE_SAMPLES];           /* uv_now of the sample */
    uint64_t fetch_records[UI_RATE_SAMPLES];   /* metrics counters then */
    uint64_t produce_records[UI_RATE_SAMPLES];
    struct ui__series series[UI_RATE_TOPICS];
};

/* ---- rate sampling --------------------------------------------------------- */

static uint32_t ui__hash(const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *name != '\0'; name++) {
        h = (h ^ (uint8_t)*name) * 16777619u;
    }
    return h;
}

/* Count a fetch of @topic (metrics' topic_fetched hook, on every fetch
 * answer with records: a scan of hashes, no allocation). A topic the
 * sampler has not seen yet (created within the last second) is not
 * counted. */
static void ui__on_fetch(void *arg, const char *topic, uint64_t records)
{
    struct ui *u = arg;
    uint32_t h = ui__hash(topic);
    for (unsigned i = 0; i < UI_RATE_TOPICS; i++) {
        struct ui__series *s = &u->series[i];
        if (s->hash == h && s->name[0] != '\0' && strcmp(s->name, topic) == 0) {
            s->fetched_total += records;
            return;
        }
    }
}

static struct ui__series *ui__series_for(struct ui *u, const struct store_topic *t)
{
    struct ui__series *free_slot = NULL;
    for (unsigned i = 0; i < UI_RATE_TOPICS; i++) {
        struct ui__series *s = &u->series[i];
        if (s->name[0] == '\0') {
            free_slot = free_slot != NULL ? free_slot : s;
        } else if (strcmp(s->name, t->name) == 0) {
            if (s->created_index == t->created_index) {
                return s;
            }
            free_slot = s; /* deleted and created again: a new series */
            break;
        }
    }
    if (free_slot == NULL) {
        return NULL; /* more than UI_RATE_TOPICS topics: the rest have no chart */
    }
    snprintf(free_slot->name, sizeof free_slot->name, "%s", t->name);
    free_slot->hash = ui__hash(t->name);
    free_slot->created_index = t->created_index;
    free_slot->fetched_total = 0;
    for (unsigned k = 0; k < UI_RATE_SAMPLES; k++) {
        free_slot->next[k] = UINT64_MAX;
        free_slot->fetched[k] = UINT64_MAX;
    }
    return free_slot;
}

static void ui__sample(uv_timer_t *timer)
{
    struct ui *u = timer->data;
    unsigned slot = u->head;
    u->at_ms[slot] = uv_now(u->loop);
    u->fetch_records[slot] = u->metrics->fetch_records;
    u->produce_records[slot] = u->metrics->produce_records;
    for (unsigned i = 0; i < UI_RATE_TOPICS; i++) {
        u->series[i].next[slot] = UINT64_MAX;
        u->series[i].fetched[slot] = UINT64_MAX;
    }
    for (struct store_topic *t = store_topics(u->store); t != NULL; t = t->next) {
        struct ui__series *s = ui__series_for(u, t);
        if (s != NULL) {
            s->next[slot] = log_next_offset(t->log);
            s->fetched[slot] = s->fetched_total;
        }
    }
    /* A series whose topic is gone for a whole ring frees its slot. */
    for (unsigned i = 0; i < UI_RATE_TOPICS; i++) {
        struct ui__series *s = &u->series[i];
        bool any = false;
        for (unsigned k = 0; k < UI_RATE_SAMPLES && s->name[0] != '\0' && !any; k++) {
            any = s->next[k] != UINT64_MAX;
        }
        if (s->name[0] != '\0' && !any) {
            s->name[0] = '\0';
        }
    }
    u->head = (u->head + 1) % UI_RATE_SAMPLES;
    if (u->count < UI_RATE_SAMPLES) {
        u->count++;
    }
}

/* ---- answers ------------------------------------------------------------------- */

static const char *ui__role_name(int tally_role)
{
    static const char *const names[] = {"unknown", "follower", "candidate", "leader",
                                        "unavailable"};
    return tally_role >= 0 && tally_role <= 4 ? names[tally_role] : "unknown";
}

static const char *ui__policy_name(int policy)
{
    static const char *const names[] = {"retain", "delete", "compact", "compact,delete"};
    return policy >= 0 && policy <= 3 ? names[policy] : "unknown";
}

static int ui__node(struct ui *u, struct buf *b)
{
    static const char *const roles[] = {"unavailable", "follower", "candidate", "leader"};
    struct node *n = u->node;
    int role = node_role(n);
    char why[800];
    bool healthy = metrics_health(u->metrics, why, sizeof why);
    ui_json_printf(b,
                   "{\"id\": %llu, \"version\": \"%s\", \"role\": \"%s\", \"term\": %llu, "
                   "\"leader_id\": %llu, \"commit_index\": %llu, \"leader_commit_index\": %llu, "
                   "\"applied_index\": %llu, \"last_index\": %llu, \"client\": ",
                   (unsigned long long)node_id(n), TALLY_VERSION_STRING,
                   role >= 0 && role <= 3 ? roles[role] : "unavailable",
                   (unsigned long long)node_term(n), (unsigned long long)node_leader_id(n),
                   (unsigned long long)node_commit_index(n),
                   (unsigned long long)node_leader_commit_index(n),
                   (unsigned long long)node_applied_index(n), (unsigned long long)node_last_index(n));
    ui_json_cstr(b, u->cfg->listen_addr);
    ui_json_printf(b, ", \"healthy\": %s, \"health\": ", healthy ? "true" : "false");
    ui_json_cstr(b, healthy ? "ok" : why);
    ui_json_printf(b, "}\n");
    return 200;
}

/* The cluster as `tally status` shows it: leader, term and commit index
 * from the member with the highest term that knows a leader, and in that
 * term from the leader's own answer. */
static int ui__cluster(struct ui *u, struct buf *b)
{
    struct ui_peers_member m[NODE_MAX_PEERS];
    ui_peers_wanted(u->peers);
    unsigned n = ui_peers_get(u->peers, m, NODE_MAX_PEERS);
    const struct ui_peers_member *best = NULL;
    for (unsigned i = 0; i < n; i++) {
        if (!m[i].reachable) {
            continue;
        }
        int rank = m[i].leader_id == 0 ? 0 : m[i].leader_id == m[i].id ? 2 : 1;
        int brank = best == NULL ? -1 : best->leader_id == 0 ? 0 : best->leader_id == best->id ? 2 : 1;
        if (best == NULL || (rank > 0 && brank == 0) ||
            ((rank > 0) == (brank > 0) &&
             (m[i].term > best->term || (m[i].term == best->term && rank > brank)))) {
            best = &m[i];
        }
    }
    uint64_t commit = best != NULL ? best->commit_index : 0;
    ui_json_printf(b, "{\"node_id\": %llu, \"leader_id\": %llu, \"term\": %llu, "
                      "\"commit_index\": %llu, \"members\": [",
                   (unsigned long long)node_id(u->node),
                   (unsigned long long)(best != NULL ? best->leader_id : 0),
                   (unsigned long long)(best != NULL ? best->term : 0), (unsigned long long)commit);
    for (unsigned i = 0; i < n; i++) {
        const struct ui_peers_member *x = &m[i];
        ui_json_printf(b, "%s\n  {\"id\": %llu, \"client\": ", i > 0 ? "," : "",
                       (unsigned long long)x->id);
        ui_json_cstr(b, x->client);
        ui_json_printf(b, ", \"raft\": ");
        ui_json_cstr(b, x->raft);
        ui_json_printf(b,
                       ", \"self\": %s, \"voter\": %s, \"spare\": %s, \"asked\": %s, "
                       "\"reachable\": %s, \"role\": \"%s\"",
                       x->self ? "true" : "false", x->voter ? "true" : "false",
                       x->spare ? "true" : "false", x->asked ? "true" : "false",
                       x->reachable ? "true" : "false",
                       !x->asked ? "unknown" : x->reachable ? ui__role_name(x->role) : "unavailable");
        if (x->asked) {
            ui_json_printf(b,
                           ", \"term\": %llu, \"commit_index\": %llu, \"applied_index\": %llu, "
                           "\"last_index\": %llu, \"leader_id\": %llu, \"lag\": %llu, "
                           "\"answered_ms_ago\": %llu",
                           (unsigned long long)x->term, (unsigned long long)x->commit_index,
                           (unsigned long long)x->applied_index, (unsigned long long)x->last_index,
                           (unsigned long long)x->leader_id,
                           (unsigned long long)(commit > x->applied_index ? commit - x->applied_index
                                                                          : 0),
                           (unsigned long long)x->answered_ms_ago);
        }
        ui_json_printf(b, "}");
    }
    ui_json_printf(b, "]}\n");
    return 200;
}

/* Per second over the last (up to) 10 samples of @ring, a series of
 * @t's; negative when unknown (fewer than two samples of it). */
static double ui__rate(const struct ui *u, const struct ui__series *s, const uint64_t *ring)
{
    unsigned span = u->count < 11 ? u->count : 11;
    if (s == NULL || span < 2) {
        return -1;
    }
    unsigned last = (u->head + UI_RATE_SAMPLES - 1) % UI_RATE_SAMPLES;
    unsigned first = (u->head + UI_RATE_SAMPLES - span) % UI_RATE_SAMPLES;
    while (first != last && ring[first] == UINT64_MAX) { /* the topic's oldest in the window */
        first = (first + 1) % UI_RATE_SAMPLES;
    }
    if (first == last || ring[last] == UINT64_MAX || ring[last] < ring[first] ||
        u->at_ms[last] <= u->at_ms[first]) {
        return -1;
    }
    return (double)(ring[last] - ring[first]) * 1000.0 / (double)(u->at_ms[last] - u->at_ms[first]);
}

static const struct ui__series *ui__series_of(const struct ui *u, const struct store_topic *t)
{
    for (unsigned i = 0; i < UI_RATE_TOPICS; i++) {
        if (strcmp(u->series[i].name, t->name) == 0 &&
            u->series[i].created_index == t->created_index) {
            return &u->series[i];
        }
    }
    return NULL;
}

static void ui__rate_field(struct buf *b, const char *name, double rate)
{
    if (rate >= 0) {
        ui_json_printf(b, ", \"%s\": %.3f", name, rate);
    } else {
        ui_json_printf(b, ", \"%s\": null", name);
    }
}

/* May @who (NULL: no login asked, anyone) do @op on @resource @name? */
static bool ui__may(struct ui *u, const char *who, enum acl_resource resource, const char *name,
                    enum acl_operation op)
{
    return who == NULL || auth_allowed(u->store, u->cfg, who, resource, name, op);
}

/* The 403 of a route @who may not see, worded as the native refusal. */
static int ui__denied(struct buf *b, const char *who, enum acl_operation op, const char *topic)
{
    char msg[USERS_NAME_MAX + STORE_NAME_MAX + 96];
    snprintf(msg, sizeof msg, "not authorized: %s may not %s topic %s (no ACL allows it: tally "
                              "acl add)", who, acl_operation_name(op), topic);
    b->len = 0;
    ui_json_error(b, msg);
    return 403;
}

static int ui__topics(struct ui *u, const char *who, struct buf *b)
{
    unsigned i = 0;
    ui_json_printf(b, "{\"node_id\": %llu, \"applied_index\": %llu, \"topics\": [",
                   (unsigned long long)node_id(u->node),
                   (unsigned long long)node_applied_index(u->node));
    for (struct store_topic *t = store_topics(u->store); t != NULL; t = t->next) {
        if (!ui__may(u, who, ACL_TOPIC, t->name, ACL_DESCRIBE)) {
            continue; /* as if it did not exist: its name is not for this user either */
        }
        ui_json_printf(b, "%s\n  {\"name\": ", i++ > 0 ? "," : "");
        ui_json_cstr(b, t->name);
        ui_json_printf(b,
                       ", \"policy\": \"%s\", \"retention_ms\": %lld, \"retention_bytes\": %lld, "
                       "\"segment_bytes\": %lld, \"size_bytes\": %llu, \"segments\": %u, "
                       "\"start_offset\": %llu, \"next_offset\": %llu, \"keys\": %llu, "
                       "\"missing\": [%llu, %llu]",
                       ui__policy_name(t->config.policy), (long long)t->config.retention_ms,
                       (long long)t->config.retention_bytes, (long long)t->config.segment_bytes,
                       (unsigned long long)log_size_bytes(t->log), log_segment_count(t->log),
                       (unsigned long long)store_topic_start(t),
                       (unsigned long long)log_next_offset(t->log),
                       (unsigned long long)t->keys.n, (unsigned long long)t->missing_from,
                       (unsigned long long)t->missing_to);
        const struct ui__series *s = ui__series_of(u, t);
        ui__rate_field(b, "produce_per_sec", ui__rate(u, s, s != NULL ? s->next : NULL));
        ui__rate_field(b, "fetch_per_sec", ui__rate(u, s, s != NULL ? s->fetched : NULL));
        ui_json_printf(b, "}");
    }
    ui_json_printf(b, "]}\n");
    return 200;
}

static void ui__u64_array(struct buf *b, const uint64_t *ring, unsigned head, unsigned count)
{
    for (unsigned k = 0; k < count; k++) {
        uint64_t v = ring[(head + UI_RATE_SAMPLES - count + k) % UI_RATE_SAMPLES];
        if (v == UINT64_MAX) {
            ui_json_printf(b, "%snull", k > 0 ? ", " : "");
        } else {
            ui_json_printf(b, "%s%llu", k > 0 ? ", " : "", (unsigned long long)v);
        }
    }
}

static int ui__rates(struct ui *u, const char *who, const char *topic, struct buf *b)
{
    if (topic != NULL && !ui__may(u, who, ACL_TOPIC, topic, ACL_DESCRIBE)) {
        return ui__denied(b, who, ACL_DESCRIBE, topic); /* before it says whether it exists */
    }
    uint64_t now = uv_now(u->loop);
    ui_json_printf(b, "{\"node_id\": %llu, \"interval_ms\": 1000, \"ago_ms\": [",
                   (unsigned long long)node_id(u->node));
    for (unsigned k = 0; k < u->count; k++) {
        uint64_t at = u->at_ms[(u->head + UI_RATE_SAMPLES - u->count + k) % UI_RATE_SAMPLES];
        ui_json_printf(b, "%s%llu", k > 0 ? ", " : "", (unsigned long long)(now - at));
    }
    ui_json_printf(b, "], \"fetch_records\": [");
    ui__u64_array(b, u->fetch_records, u->head, u->count);
    ui_json_printf(b, "], \"produce_records\": [");
    ui__u64_array(b, u->produce_records, u->head, u->count);
    ui_json_printf(b, "]");
    if (topic != NULL) {
        struct store_topic *t = store_topic_find(u->store, topic);
        const struct ui__series *s = t != NULL ? ui__series_of(u, t) : NULL;
        if (t == NULL) {
            char msg[STORE_NAME_MAX + 32];
            b->len = 0;
            snprintf(msg, sizeof msg, "no topic %s", topic);
            ui_json_error(b, msg);
            return 404;
        }
        ui_json_printf(b, ", \"topic\": ");
        ui_json_cstr(b, t->name);
        ui_json_printf(b, ", \"next_offset\": [");
        if (s != NULL) {
            ui__u64_array(b, s->next, u->head, u->count);
        }
        ui_json_printf(b, "], \"fetched_records\": [");
        if (s != NULL) {
            ui__u64_array(b, s->fetched, u->head, u->count);
        }
        ui_json_printf(b, "]");
    }
    ui_json_printf(b, "}\n");
    return 200;
}

static int ui__groups(struct ui *u, const char *who, struct buf *b)
{
    const char *group, *topic;
    uint64_t offset;
    unsigned i, shown = 0;
    ui_json_printf(b, "{\"node_id\": %llu, \"applied_index\": %llu, \"groups\": [",
                   (unsigned long long)node_id(u->node),
                   (unsigned long long)node_applied_index(u->node));
    for (i = 0; store_group_at(u->store, i, &group, &topic, &offset); i++) {
        if (!ui__may(u, who, ACL_GROUP, group, ACL_DESCRIBE) ||
            !ui__may(u, who, ACL_TOPIC, topic, ACL_DESCRIBE)) {
            continue;
        }
        struct store_topic *t = store_topic_find(u->store, topic);
        uint64_t next = t != NULL ? log_next_offset(t->log) : 0;
        ui_json_printf(b, "%s\n  {\"kind\": \"native\", \"group\": ", shown++ > 0 ? "," : "");
        ui_json_cstr(b, group);
        ui_json_printf(b, ", \"topic\": ");
        ui_json_cstr(b, topic);
        ui_json_printf(b, ", \"offset\": %llu", (unsigned long long)offset);
        if (t != NULL) {
            ui_json_printf(b, ", \"topic_next_offset\": %llu, \"lag\": %llu}",
                           (unsigned long long)next,
                           (unsigned long long)(next > offset ? next - offset : 0));
        } else {
            ui_json_printf(b, ", \"topic_next_offset\": null, \"lag\": null}");
        }
    }
    ui_json_printf(b, "]}\n");
    return 200;
}

/* The parameters of /ui/api/records, by their index in the array. */
enum { UI__P_TOPIC, UI__P_FROM, UI__P_TIME, UI__P_LIMIT, UI__P_KEY, UI__N_RECORDS_PARAMS };

static int ui__records(struct ui *u, const char *who, struct ui_query_param *p, struct buf *b)
{
    struct ui_records_req q = {.limit = 100, .max_bytes = UI_READ_MAX_BYTES};
    uint64_t v;
    if (!p[UI__P_TOPIC].set || p[UI__P_TOPIC].len == 0) {
        ui_json_error(b, "parameter 'topic' is required");
        return 400;
    }
    if (!store_topic_name_valid(p[UI__P_TOPIC].value)) {
        ui_json_error(b, "parameter 'topic': not a valid topic name");
        return 400;
    }
    q.topic = p[UI__P_TOPIC].value;
    if (!ui__may(u, who, ACL_TOPIC, q.topic, ACL_READ)) {
        return ui__denied(b, who, ACL_READ, q.topic);
    }
    if (p[UI__P_FROM].set && p[UI__P_TIME].set) {
        ui_json_error(b, "give 'from' or 'time', not both");
        return 400;
    }
    if (p[UI__P_FROM].set) {
        if (!ui_query_number(&p[UI__P_FROM], &v)) {
            ui_json_error(b, "parameter 'from': not an offset");
            return 400;
        }
        q.from = v;
    }
    if (p[UI__P_TIME].set) {
        if (!ui_query_number(&p[UI__P_TIME], &v)) {
            ui_json_error(b, "parameter 'time': not milliseconds since the epoch");
            return 400;
        }
        q.by_time = true;
        q.time_ms = (int64_t)v;
    }
    if (p[UI__P_LIMIT].set) {
        if (!ui_query_number(&p[UI__P_LIMIT], &v) || v == 0 || v > UI_MAX_RECORDS) {
            ui_json_printf(b, "{\"error\": \"parameter 'limit': a number from 1 to %u\"}\n",
                           (unsigned)UI_MAX_RECORDS);
            return 400;
        }
        q.limit = (unsigned)v;
    }
    if (p[UI__P_KEY].set) {
        q.key = (const uint8_t *)p[UI__P_KEY].value;
        q.key_len = p[UI__P_KEY].len;
    }
    return ui_records(u->store, &q, b);
}

/* An /ui/api/ route for @who (NULL: no login asked): its parameters,
 * checked before anything is read. */
static int ui__api(struct ui *u, const char *who, const char *route, const char *query,
                   struct buf *b)
{
    struct ui_query_param p[UI__N_RECORDS_PARAMS]; /* the most any route takes */
    unsigned n = 0;
    char why[256];
    int status;
    memset(p, 0, sizeof p);
    if (strcmp(route, "records") == 0) {
        p[UI__P_TOPIC].name = "topic";
        p[UI__P_FROM].name = "from";
        p[UI__P_TIME].name = "time";
        p[UI__P_LIMIT].name = "limit";
        p[UI__P_KEY].name = "key";
        n = UI__N_RECORDS_PARAMS;
    } else if (strcmp(route, "rates") == 0) {
        p[0].name = "topic";
        n = 1;
    } else if (strcmp(route, "node") != 0 && strcmp(route, "cluster") != 0 &&
               strcmp(route, "topics") != 0 && strcmp(route, "groups") != 0) {
        ui_json_error(b, "no such console endpoint (docs/console.md lists them)");
        return 404;
    }
    if ((status = ui_query_parse(query, p, n, why, sizeof why)) != 0) {
        ui_json_error(b, why);
        return status;
    }
    if (u->store == NULL || u->node == NULL) {
        ui_json_error(b, "the node is starting");
        return 503;
    }
    if (strcmp(route, "node") == 0) {
        return ui__node(u, b);
    }
    if (strcmp(route, "cluster") == 0) {
        return ui__cluster(u, b);
    }
    if (strcmp(route, "topics") == 0) {
        return ui__topics(u, who, b);
    }
    if (strcmp(route, "groups") == 0) {
        return ui__groups(u, who, b);
    }
    if (strcmp(route, "rates") == 0) {
        if (p[0].set && !store_topic_name_valid(p[0].value)) {
            ui_json_error(b, "parameter 'topic': not a valid topic name");
            return 400;
        }
        return ui__rates(u, who, p[0].set ? p[0].value : NULL, b);
    }
    return ui__records(u, who, p, b);
}

/* auth = required: who asks @req? 0 with @who set, or the answer's status
 * (with @body). Basic sends the password itself, so it is taken only on
 * a channel it cannot be read from on the way: HTTPS (metrics_tls) or a
 * loopback connection; elsewhere the answer is 403 before any password is
 * asked for. */
static int ui__login(struct ui *u, struct http_req *req, char who[USERS_NAME_MAX],
                     struct buf *body)
{
    char password[UI_AUTH_PASSWORD_MAX + 1];
    size_t len;
    bool ok;
    if (!req->private_channel) {
        ui_json_error(body, "this node has auth = required and the console takes passwords "
                            "only over HTTPS (metrics_tls = true) or from a loopback address");
        return 403;
    }
    req->challenge = strcmp(req->requested_with, UI__PAGE_MARK) == 0 ? UI__PAGE_CHALLENGE
                                                                     : UI__CHALLENGE;
    if (req->authorization[0] == '\0') {
        ui_json_error(body, "authentication required: log in as a user of the cluster "
                            "(HTTP Basic)");
        return 401;
    }
    if (ui_auth_parse_basic(req->authorization, who, password, &len) != 0) {
        ui_json_error(body, "authentication required: a malformed Authorization header (want "
                            "Basic base64(user:password))");
        return 401;
    }
    if (u->store == NULL) {
        scram_wipe(password, sizeof password);
        ui_json_error(body, "the node is starting");
        return 503;
    }
    ok = ui_auth_check(&u->auth, store_users(u->store), who, password, len);
    scram_wipe(password, sizeof password);
    if (!ok) {
        TLOG_WARN("ui", "console: authentication as user '%s' failed", who);
        ui_json_error(body, "authentication failed: wrong user name or password");
        return 401;
    }
    return 0;
}

int ui_http(void *arg, struct http_req *req, struct buf *body, const char **content_type)
{
    struct ui *u = arg;
    const char *path = req->path, *query = req->query;
    int method = req->method;
    char why[256];
    if (strcmp(path, "/ui") != 0 && strncmp(path, "/ui/", 4) != 0) {
        /* /metrics and /health: open, as before (docs/security.md) */
        return metrics_http(u->metrics, method, path, query, body, content_type);
    }
    if (method != HTTP_SRV_GET && method != HTTP_SRV_HEAD) {
        ui_json_printf(body, "method not allowed: the console is read-only; use GET\n");
        return 405;
    }
    if (strncmp(path, "/ui/api/", 8) == 0) {
        char who[USERS_NAME_MAX];
        int status;
        *content_type = UI__JSON;
        if (u->cfg->auth_required && (status = ui__login(u, req, who, body)) != 0) {
            return status;
        }
        return ui__api(u, u->cfg->auth_required ? who : NULL, path + 8, query, body);
    }
    const char *name = strcmp(path, "/ui") == 0 || strcmp(path, "/ui/") == 0 ? "index.html"
                                                                             : path + 4;
    for (const struct ui_assets_file *a = ui_assets; a->name != NULL; a++) {
        if (strcmp(a->name, name) != 0) {
            continue;
        }
        struct ui_query_param none;
        int status = ui_query_parse(query, &none, 0, why, sizeof why);
        if (status != 0) {
            ui_json_printf(body, "bad request: %s\n", why);
            return status;
        }
        *content_type = a->content_type;
        buf_put(body, a->data, a->len);
        return 200;
    }
    ui_json_printf(body, "not found: %s (the console is at /ui/)\n", path);
    return 404;
}

/* ---- lifecycle --------------------------------------------------------------- */

int ui_create(uv_loop_t *loop, const struct cfg *cfg, struct metrics *metrics, struct ui **out,
              char *errmsg)
{
    struct ui *u = calloc(1, sizeof *u);
    if (u == NULL) {
        err_printf(errmsg, "console: out of memory");
        return TALLY_NOMEM;
    }
    u->loop = loop;
    u->cfg = cfg;
    u->metrics = metrics;
    if (ui_auth_init(&u->auth) != 0) {
        free(u);
        err_printf(errmsg, "console: no random bytes for its login cache");
        return TALLY_IOERR;
    }
    *out = u;
    return 0;
}

void ui_attach(struct ui *u, struct store *store, struct node *node, const struct tls_set *tls)
{
    u->store = store;
    u->node = node;
    u->metrics->topic_fetched = ui__on_fetch;
    u->metrics->topic_fetched_arg = u;
    if (ui_peers_create(u->loop, store, node, tls, &u->peers) != 0) {
        u->store = NULL; /* out of memory: keep answering 503 */
        return;
    }
    uv_timer_init(u->loop, &u->timer);
    u->timer.data = u;
    u->timer_on = true;
    uv_timer_start(&u->timer, ui__sample, 0, 1000);
}

static void ui__timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void ui_close(struct ui *u)
{
    if (u == NULL || u->closing) {
        return;
    }
    u->closing = true;
    ui_auth_wipe(&u->auth);
    if (u->metrics->topic_fetched_arg == u) {
        u->metrics->topic_fetched = NULL;
        u->metrics->topic_fetched_arg = NULL;
    }
    ui_peers_close(u->peers);
    u->peers = NULL;
    if (u->timer_on) {
        uv_close((uv_handle_t *)&u->timer, ui__timer_closed);
    } else {
        free(u);
    }
}
