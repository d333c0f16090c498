/* The gateway: dispatches decoded requests.
 *
 * Writes (produce, topic and member changes) go to Raft on the leader;
 * a follower answers NOTLEADER with the leader's client address. Produce
 * uses group commit: a write is proposed at once while fewer than
 * max_inflight_entries APPEND entries are in flight; once that many are,
 * requests are gathered and proposed together as one entry when one of
 * them completes. So one lone writer pays one round trip, a few writers
 * are pipelined, and many writers share fsyncs.
 *
 * Reads are served from the local store, up to what this node applied
 * (the store only ever sees committed entries). A fetch that must wait -
 * nothing at its offset yet (long-poll) or the node has not applied the
 * client's min_index - is parked, and woken by apply or expired by
 * gw_tick(). */
#include "server/gw.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "lib/batch.h"
#include "lib/err.h"
#include "lib/logger.h"
#include "lib/name.h"
#include "lib/share.h"
#include "proto/proto.h"
#include "server/auth.h"
#include "server/group_gw.h"
#include "server/kgroup.h"
#include "server/metrics.h"
#include "server/skew.h"
#include "server/stream_gw.h"
#include "store/command.h"

#define GW__MAX_FETCH_BYTES (4u << 20)
#define GW__DEFAULT_MIN_INDEX_WAIT_MS 5000
#define GW__MAX_PENDING_BYTES (32u << 20)

/* A proposal in flight: the requests whose answers its result carries. */
struct gw__proposal {
    struct gw *gw;
    struct req **reqs;
    uint32_t n;
};

struct gw__fetch {
    struct proto_fetch_req m;
    char topic[PROTO_NAME_MAX];
};

struct gw {
    const struct cfg *cfg;
    struct store *store;
    struct node *node;
    uv_loop_t *loop;
    /* Group commit. */
    struct buf entry;          /* APPEND entry being gathered */
    struct req **items;        /* its requests, one per item */
    uint32_t n_items, cap_items;
    unsigned inflight;         /* APPEND entries proposed, not completed */
    int64_t last_ts;           /* timestamps never go backwards on this leader */
    /* The leader's clock as timestamps see it (gw__clock): the last wall
     * clock reading it accepted, and the monotonic time of that reading;
     * and the correction it took over with its leadership (skew.h). */
    int64_t correction;
    bool anchored;
    int64_t anchor_ts;
    int64_t anchor_mono;
    uint64_t ahead_logged_ms;  /* monotonic time of the last "clock ahead" log */
    unsigned trims_inflight;   /* TOPIC_TRIM entries proposed, not completed */
    bool check_inflight;       /* a CATALOG_CHECK proposed, not completed */
    uint64_t checked_index;    /* the applied index the last one was made at */
    uint64_t check_entry;      /* the Raft index of the last one applied */
    struct skew *skew;         /* clock health, for CLOCK answers (may be NULL) */
    /* Parked fetches. */
    struct req *parked;
    struct metrics *metrics;   /* may be NULL */
    uv_check_t flusher;        /* proposes gathered writes once per loop turn */
    bool disk_low;             /* free space below the reserve: refuse writes */
    uint64_t disk_free, disk_reserve;
    unsigned backups;          /* connections holding a backup pin */
    struct stream_gw *streams; /* STREAM_READ requests (stream_gw.h) */
    struct kgroups *groups;    /* the group coordinator (kgroup.h): Kafka's
                                * consumer groups and tally's shared groups */
};

uint64_t gw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void gw_backup_begin(struct gw *gw, const char *peer)
{
    char errmsg[ERR_MSG_SIZE];
    gw->backups++;
    TLOG_INFO("gw", "backup from %s: compaction and segment deletion on this node wait until it "
                    "ends (%u backups)",
              peer, gw->backups);
    (void)store_hold_trim(gw->store, true, errmsg);
}

void gw_backup_end(struct gw *gw, const char *peer)
{
    if (gw->backups > 0) {
        gw->backups--;
    }
    TLOG_INFO("gw", "backup from %s ended (connection closed)%s", peer,
              gw->backups == 0 ? ": compaction and segment deletion resume" : "");
    if (gw->backups == 0) {
        char errmsg[ERR_MSG_SIZE];
        /* the segments retention cut off meanwhile go now */
        if (store_hold_trim(gw->store, false, errmsg) != 0) {
            TLOG_ERROR("gw", "retention after the backup: %s", errmsg);
        }
    }
}

unsigned gw_backups(const struct gw *gw)
{
    return gw != NULL ? gw->backups : 0;
}

static uint64_t gw__mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The time this leader stamps on records and judges retention by (the
 * cluster's time): its wall clock, corrected by the offset it measured
 * against the previous leader when that was beyond clock_warn_ms (so the
 * cluster's time goes on across a leadership change to a node whose clock
 * is wrong); never below the highest timestamp in the log (so time never
 * goes back); and never more than max_clock_step_ms ahead of the last
 * reading it accepted plus the monotonic time elapsed since (so a clock
 * that jumps forward does not carry records, or retention, into the
 * future). A clock that jumped forward is logged every 10 s while it is
 * refused. */
static int64_t gw__clock(struct gw *gw)
{
    int64_t wall = (int64_t)gw_now_ms() - gw->correction;
    int64_t mono = (int64_t)gw__mono_ms();
    int64_t floor = store_max_timestamp(gw->store);
    int64_t step = (int64_t)gw->cfg->max_clock_step_ms;
    int64_t limit;
    floor = gw->last_ts > floor ? gw->last_ts : floor;
    if (!gw->anchored) {
        /* A new leader starts from its own clock, or from the log's time
         * if its clock is behind it. */
        gw->anchored = true;
        gw->anchor_ts = wall > floor ? wall : floor;
        gw->anchor_mono = mono;
    }
    limit = gw->anchor_ts + (mono - gw->anchor_mono) + step;
    if (wall > limit) {
        if (gw->ahead_logged_ms == 0 || mono - (int64_t)gw->ahead_logged_ms >= 10000) {
            gw->ahead_logged_ms = (uint64_t)mono;
            TLOG_WARN("gw", "this node's clock jumped %lld ms ahead of the time it kept "
                      "(more than max_clock_step_ms=%lld): timestamps and retention go on from "
                      "%lld; fix the clock, or move leadership (tally member transfer) if it "
                      "was right", (long long)(wall - limit + step), (long long)step,
                      (long long)limit);
        }
        return limit > floor ? limit : floor;
    }
    gw->anchor_ts = wall;
    gw->anchor_mono = mono;
    return wall > floor ? wall : floor;
}

/* Writes gathered while entries were in flight are proposed from here,
 * after the loop's I/O callbacks, never from inside a Raft callback:
 * calling raft_apply from the callback that fails requests on a lost
 * leadership crashed libraft 0.15 (it was in the middle of stepping down;
 * the fault suite found it), and raft's callbacks are no place to start
 * new requests in any version. */
static void gw__flush_cb(uv_check_t *h)
{
    gw_flush(h->data);
}

int gw_create(const struct cfg *cfg, struct store *store, uv_loop_t *loop, struct gw **out)
{
    struct gw *gw = calloc(1, sizeof *gw);
    if (gw == NULL) {
        return TALLY_NOMEM;
    }
    gw->cfg = cfg;
    gw->store = store;
    gw->loop = loop;
    buf_init(&gw->entry);
    /* streams */
    if (stream_gw_create(store, &gw->streams) != 0) {
        free(gw);
        return TALLY_NOMEM;
    }
    struct kgroup_limits lim = {
        .max_groups = cfg->kafka_max_groups,
        .max_members = cfg->kafka_group_max_members,
        .min_session_ms = cfg->kafka_group_min_session_ms,
        .max_session_ms = cfg->kafka_group_max_session_ms,
        .initial_delay_ms = cfg->kafka_group_initial_delay_ms,
    };
    if (kgroups_create(loop, &lim, &gw->groups) != 0) {
        stream_gw_destroy(gw->streams);
        free(gw);
        return TALLY_NOMEM;
    }
    kgroups_set_assignor(gw->groups, GROUP_GW_PROTOCOL_TYPE, group_gw_assign,
                         group_gw_had_members, store);
    uv_check_init(loop, &gw->flusher);
    gw->flusher.data = gw;
    uv_check_start(&gw->flusher, gw__flush_cb);
    *out = gw;
    return 0;
}

void gw_set_node(struct gw *gw, struct node *node)
{
    gw->node = node;
    stream_gw_set_node(gw->streams, node); /* streams */
}

void gw_set_metrics(struct gw *gw, struct metrics *m)
{
    gw->metrics = m;
}

void gw_set_skew(struct gw *gw, struct skew *k)
{
    gw->skew = k;
}

static void gw__error_leader(struct req *r, int code, uint64_t leader_id, const char *leader_addr,
                             const char *msg)
{
    r->resp.len = 0;
    proto_put_error_frame(&r->resp, r->type, r->id, code, msg, leader_id, leader_addr);
    req_complete(r);
}

void gw_error(struct req *r, int code, const char *fmt, ...)
{
    char msg[PROTO_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    gw__error_leader(r, code, 0, "", msg);
}

/* Answer a write that reached a node that cannot take it now. */
static void gw__not_leader(struct gw *gw, struct req *r)
{
    uint64_t leader = gw->node != NULL ? node_leader_id(gw->node) : 0;
    const struct store_member *m = leader != 0 ? store_member_find(gw->store, leader) : NULL;
    if (leader != 0 && leader != node_id(gw->node) && m != NULL) {
        char msg[PROTO_MSG_MAX];
        snprintf(msg, sizeof msg, "node %llu is not the leader; the leader is node %llu at %s",
                 (unsigned long long)node_id(gw->node), (unsigned long long)leader, m->client_addr);
        gw__error_leader(r, TALLY_NOTLEADER, leader, m->client_addr, msg);
    } else if (leader == node_id(gw->node)) {
        gw_error(r, TALLY_NOLEADER, "node %llu was just elected leader and is catching up; retry",
                  (unsigned long long)leader);
    } else {
        gw_error(r, TALLY_NOLEADER, "no leader is known to node %llu (no quorum?)",
                  (unsigned long long)node_id(gw->node));
    }
}

void gw_not_leader(struct gw *gw, struct req *r)
{
    gw__not_leader(gw, r);
}

struct kgroups *gw_groups(struct gw *gw)
{
    return gw->groups;
}

void gw_set_disk_low(struct gw *gw, bool low, uint64_t free_bytes, uint64_t reserve_bytes)
{
    gw->disk_low = low;
    gw->disk_free = free_bytes;
    gw->disk_reserve = reserve_bytes;
}

static bool gw__can_write(struct gw *gw, struct req *r)
{
    if (gw->node == NULL || !node_ready(gw->node)) {
        gw__not_leader(gw, r);
        return false;
    }
    if (gw->disk_low) {
        /* Refuse before the disk is actually full (a full disk in apply
         * stops the node), or while raft_uv retries a failed write of the
         * Raft log (docs/raft.md). Nothing is written; the server also
         * hands leadership to another node (srv.c). */
        gw_error(r, TALLY_NOSPACE,
                  "node %llu cannot store writes now: %llu MiB free for its data (reserve "
                  "%llu MiB, disk_reserve_bytes), or its raft log writes are failing (its log "
                  "says which); writes are refused until that is fixed",
                  (unsigned long long)node_id(gw->node),
                  (unsigned long long)(gw->disk_free >> 20),
                  (unsigned long long)(gw->disk_reserve >> 20));
        return false;
    }
    return true;
}

/* ---- proposals ---------------------------------------------------------- */

static void gw__answer_item(struct req *r, int status, uint64_t index,
                            const struct store_item_result *item)
{
    if (r->conn == NULL) {
        req_complete(r); /* client gone: just free */
        return;
    }
    if (status != 0) {
        if (status == TALLY_LEADERSHIP_LOST) {
            gw_error(r, status, "leadership lost before the write was committed: "
                                 "it may or may not have been written");
        } else {
            gw_error(r, status, "write failed: %s", tally_strerror(status));
        }
        return;
    }
    if (item->code == TALLY_CONDITION_FAILED) {
        r->resp.len = 0;
        proto_put_condition_error_frame(&r->resp, r->type, r->id, item->message, item->actual);
        req_complete(r);
        return;
    }
    if (item->code != 0) {
        gw_error(r, item->code, "%s", item->message);
        return;
    }
    size_t start = proto_begin_frame(&r->resp, r->type, PROTO_FLAG_RESPONSE, r->id);
    if (r->type == PROTO_PRODUCE) {
        struct proto_produce_resp m = {item->base_offset, item->count, index};
        proto_put_produce_resp(&r->resp, &m);
    } else {
        struct proto_done_resp m = {index};
        proto_put_done_resp(&r->resp, &m);
    }
    proto_end_frame(&r->resp, start);
    req_complete(r);
}

static void gw__proposal_done(void *arg, int status, uint64_t index,
                              const struct store_result *res)
{
    struct gw__proposal *p = arg;
    struct gw *gw = p->gw;
    bool append = p->n > 0 && p->reqs[0]->type == PROTO_PRODUCE;
    for (uint32_t i = 0; i < p->n; i++) {
        const struct store_item_result *item = NULL;
        int st = status;
        if (st == 0 && (res == NULL || i >= res->n)) {
            st = TALLY_IOERR; /* cannot happen: the entry had n items */
        } else if (st == 0) {
            item = &res->items[i];
        }
        gw__answer_item(p->reqs[i], st, index, item);
    }
    free(p->reqs);
    free(p);
    if (gw != NULL && append) {
        gw->inflight--; /* gw__flush_cb proposes what waited for this */
    }
}

/* Propose @entry for @reqs (taken). On failure every request is answered
 * and the code returned. */
static int gw__propose(struct gw *gw, struct buf *entry, struct req **reqs, uint32_t n)
{
    struct gw__proposal *p = malloc(sizeof *p);
    int rv = p == NULL || !buf_ok(entry) ? TALLY_NOMEM
                                         : node_propose(gw->node, entry, gw__proposal_done, p);
    if (rv != 0) {
        for (uint32_t i = 0; i < n; i++) {
            if (rv == TALLY_NOTLEADER) {
                gw__not_leader(gw, reqs[i]);
            } else {
                gw_error(reqs[i], rv, "cannot propose the write: %s", tally_strerror(rv));
            }
        }
        free(reqs);
        free(p);
        buf_free(entry);
        return rv;
    }
    p->gw = gw;
    p->reqs = reqs;
    p->n = n;
    return 0;
}

static void gw__propose_single(struct gw *gw, struct req *r, struct buf *entry)
{
    struct req **reqs = malloc(sizeof *reqs);
    if (reqs == NULL || !buf_ok(entry)) {
        free(reqs);
        buf_free(entry);
        gw_error(r, TALLY_NOMEM, "out of memory");
        return;
    }
    reqs[0] = r;
    gw__propose(gw, entry, reqs, 1);
}

void gw_flush(struct gw *gw)
{
    if (gw->n_items == 0 || gw->node == NULL) {
        return;
    }
    /* Pipelined: what arrived is proposed at once while fewer than
     * max_inflight_entries entries are in flight, and gathered only once
     * that many are. Waiting for an in-flight entry whenever one was (the
     * rule before) cost a write that came in meanwhile one more Raft round
     * trip; on a network with 1 ms one way that round is ~2.5 ms, and 16
     * producers with one record each got 0.82x of what pipelining gives
     * (docs/performance.md, "Over a network"). Under load the gathered
     * entries still grow: a slot frees every quarter of a round. */
    if (gw->inflight >= gw->cfg->max_inflight_entries) {
        return; /* keep gathering until an entry completes */
    }
    struct req **reqs = gw->items;
    uint32_t n = gw->n_items;
    struct buf entry = gw->entry;
    gw->items = NULL;
    gw->n_items = gw->cap_items = 0;
    buf_init(&gw->entry);
    command_append_end(&entry, n);
    gw->inflight++;
    if (gw__propose(gw, &entry, reqs, n) != 0) {
        gw->inflight--;
    } else {
        metrics_group_commit(gw->metrics, n);
    }
}

/* Fail writes gathered but not proposed: they were certainly not written. */
static void gw__fail_gathered(struct gw *gw, int code, const char *why)
{
    for (uint32_t i = 0; i < gw->n_items; i++) {
        gw_error(gw->items[i], code, "%s", why);
    }
    free(gw->items);
    gw->items = NULL;
    gw->n_items = gw->cap_items = 0;
    buf_free(&gw->entry);
}

/* ---- requests ----------------------------------------------------------- */

static void gw__hello(struct gw *gw, struct req *r, struct rd *rd)
{
    struct proto_hello_req m;
    if (proto_get_hello_req(rd, &m) != 0) {
        gw_error(r, TALLY_PROTO, "malformed HELLO");
        return;
    }
    if (m.min_version > PROTO_VERSION || m.max_version < PROTO_VERSION) {
        gw_error(r, TALLY_VERSION, "client speaks protocol %u..%u, server speaks %u",
                  m.min_version, m.max_version, PROTO_VERSION);
        return;
    }
    struct proto_hello_resp resp = {PROTO_VERSION, gw->node ? node_id(gw->node) : gw->cfg->id, ""};
    snprintf(resp.server_version, sizeof resp.server_version, "%s", TALLY_VERSION_STRING);
    size_t start = proto_begin_frame(&r->resp, r->type, PROTO_FLAG_RESPONSE, r->id);
    proto_put_hello_resp(&r->resp, &resp);
    proto_end_frame(&r->resp, start);
    req_complete(r);
}

static void gw__metadata(struct gw *gw, struct req *r, uint8_t flags)
{
    struct node_member members[NODE_MAX_PEERS];
    unsigned n = node_members(gw->node, members, NODE_MAX_PEERS);
    struct proto_metadata_resp m = {
        .node_id = node_id(gw->node),
        .leader_id = node_leader_id(gw->node),
        .role = (uint8_t)(node_role(gw->node) == NODE_UNAVAILABLE ? 4 : node_role(gw->node)),
        .term = node_term(gw->node),
        .commit_index = node_commit_index(gw->node),
        .applied_index = node_applied_index(gw->node),
        .last_index = node_last_index(gw->node),
        .n_members = n,
    };
    size_t start = proto_begin_frame(&r->resp, r->type, PROTO_FLAG_RESPONSE, r->id);
    proto_put_metadata_resp(&r->resp, &m);
    for (unsigned i = 0; i < n; i++) {
        const struct store_member *sm = store_member_find(gw->store, members[i].id);
        struct proto_member pm = {.id = members[i].id,
                                  .voter = members[i].voter ? 1 : members[i].spare ? 2 : 0};
        snprintf(pm.client_addr, sizeof pm.client_addr, "%s", sm != NULL ? sm->client_addr : "");
        snprintf(pm.raft_addr, sizeof pm.raft_addr, "%s", members[i].raft_addr);
        proto_put_member(&r->resp, &pm);
    }
    if (flags & PROTO_METADATA_CLUSTER_ID) {
        buf_put_u64(&r->resp, store_cluster_id(gw->store));
    }
    proto_end_frame(&r->resp, start);
    req_complete(r);
}

static uint32_t gw__n_topics(struct gw *gw)
{
    uint32_t n = 0;
    for (struct store_topic *t = store_topics(gw->store); t != NULL; t = t->next) {
        n++;
    }
    return n;
}

static void gw__put_topic(struct buf *b, const struct store_topic *t)
{
    struct proto_topic pt = {
        .policy = t->config.policy,
        .retention_ms = t->config.retention_ms,
        .retention_bytes = t->config.retention_bytes,
        .segment_bytes = t->config.segment_bytes,
        .start_offset = store_topic_start(t),
        .next_offset = log_next_offset(t->log),
    };
    snprintf(pt.name, sizeof pt.name, "%s", t->name);
    proto_put_topic(b, &pt);
}

/* Every topic as a PROTO_SCHEMA_TOPIC, the list of TOPIC_LIST and
 * BACKUP_CUT answers. */
static void gw__put_topics(struct gw *gw, struct buf *b)
{
    for (struct store_topic *t = store_topics(gw->store); t != NULL; t = t->next) {
        gw__put_topic(b, t);
    }
}

/* The first topic of the page after (@after, @after_id): the one after
 * that topic in creation order, found by name; if it is gone (deleted
 * between pages), the first topic created after it (a walk, rare). */
static struct store_topic *gw__page_start(struct gw *gw, const char *after, uint64_t after_id)
{
    if (after[0] == '\0' && after_id == 0) {
        return store_topics(gw->store);
    }
    struct store_topic *t = store_topic_find(gw->store, after);
    if (t != NULL && t->created_index == after_id) {
        return t->next;
    }
    for (t = store_topics(gw->store); t != NULL && t->created_index <= after_id; t = t->next) {
    }
    return t;
}

/* TOPIC_LIST of the topics named (the Kafka front door asks so for the
 * topics of one request): the work is the names', not the catalog's. Two
 * passes over the names: count what exists, then write it. */
static void gw__topic_list_named(struct gw *gw, struct req *r, struct rd *rd)
{
    struct proto_topic_names_req q;
    struct proto_topic_name name;
    if (proto_get_topic_names_req(rd, &q) != 0 || q.n_names > PROTO_TOPIC_PAGE_MAX) {
        gw_error(r, TALLY_PROTO, "malformed TOPIC_LIST names (0 to %u)", PROTO_TOPIC_PAGE_MAX);
        return;
    }
    struct rd names = *rd;
    uint32_t found = 0;
    for (uint32_t i = 0; i < q.n_names; i++) {
        if (proto_get_topic_name(rd, &name) != 0) {
            gw_error(r, TALLY_PROTO, "malformed TOPIC_LIST names");
            return;
        }
        found += store_topic_find(gw->store, name.name) != NULL;
    }
    if (proto_get_end(rd) != 0) {
        gw_error(r, TALLY_PROTO, "malformed TOPIC_LIST names");
        return;
    }
    struct proto_topic_list_resp resp = {found};
    size_t start = proto_begin_frame(&r->resp, r->type, PROTO_FLAG_RESPONSE, r->id);
    proto_put_topic_list_resp(&r->resp, &resp);
    for (uint32_t i = 0; i < q.n_names && proto_get_topic_name(&names, &name) == 0; i++) {
        const struct store_topic *t = store_topic_find(gw->store, name.name);
        if (t != NULL) {
            gw__put_topic(&r->resp, t);
        }
    }
    proto_end_frame(&r->resp, start);
    req_complete(r);
}

static void gw__topic_list(struct gw *gw, struct req *r, const struct proto_topic_list_req *m,
                           struct rd *rd)
{
    struct proto_topic_page_req page;
    if (m->flags & PROTO_TOPIC_LIST_NAMED) {
        gw__topic_list_named(gw, r, rd);
        return;
    }
    if (!(m->flags & PROTO_TOPIC_LIST_PAGED)) {
        struct proto_topic_list_resp resp = {gw__n_topics(gw)};
        size_t start = proto_begin_frame(&r->resp, r->type, PROTO_FLAG_RESPONSE, r->id);
        proto_put_topic_list_resp(&r->resp, &resp);
        gw__put_topics(gw, &r->resp);
        proto_end_frame(&r->resp, start);
        req_complete(r);
        return;
    }
    if (proto_get_topic_page_req(rd, &page) != 0 || proto_get_end(rd) != 0 || page.limit == 0 ||
        page.limit > PROTO_TOPIC_PAGE_MAX) {
        gw_error(r, TALLY_PROTO, "malformed TOPIC_LIST page (limit 1 to %u)",
                  PROTO_TOPIC_PAGE_MAX);
        return;
    }
    /* One page: the work is the page's, not the catalog's. */
    struct store_topic *first = gw__page_start(gw, page.after, page.after_id), *t = first;
    uint32_t n = 0;
    for (; t != NULL && n < page.limit; t = t->next) {
        n++;
    }
    struct proto_topic_list_resp resp = {n};
    struct proto_topic_page_resp tail = {0, t != NULL};
    size_t start = proto_begin_frame(&r->resp, r->type, PROTO_FLAG_RESPONSE, r->id);
    proto_put_topic_list_resp(&r->resp, &resp);
    t = first;
    for (uint32_t i = 0; i < n; i++, t = t->next) {
        gw__put_topic(&r->resp, t);
        tail.last_id = t->created_index;
    }
    proto_put_topic_page_resp(&r->resp, &tail);
    proto_end_frame(&r->resp, start);
    req_complete(r);
}

static void gw__topic_create(struct gw *gw, struct req *r, struct rd *rd)
{
    struct proto_topic_create_req m;
    struct buf entry;
    if (proto_get_topic_create_req(rd, &m) != 0 || proto_get_end(rd) != 0) {
        gw_error(r, TALLY_PROTO, "malformed TOPIC_CREATE");
        return;
    }
    char why[160];
    if (!name_topic_check(m.name, why, sizeof why)) {
        gw_error(r, TALLY_INVAL, "%s", why);
        return;
    }
    if (m.segment_bytes != 0 && (m.segment_bytes < (int64_t)LOG_SEGMENT_BYTES_MIN ||
                                 m.segment_bytes > (int64_t)LOG_SEGMENT_BYTES_MAX)) {
        gw_error(r, TALLY_INVAL, "segment size %lld is out of range: 0 (the node's "
                  "segment_bytes) or %u (4K) to %u (1G), the same range as segment_bytes",
                  (long long)m.segment_bytes, LOG_SEGMENT_BYTES_MIN, LOG_SEGMENT_BYTES_MAX);
        return;
    }
    if (m.policy > TALLY_POLICY_COMPACT_DELETE || m.retention_ms < -1 || m.retention_bytes < -1) {
        gw_error(r, TALLY_INVAL, "invalid topic settings (policy 0-3, retention -1 or >= 0)");
        return;
    }
    if (!gw__can_write(gw, r)) {
        return;
    }
    if (store_topic_find(gw->store, m.name) != NULL) {
        gw_error(r, TALLY_EXISTS, "topic %s already exists", m.name);
        return;
    }
    /* Every topic keeps its active segment open: a create the open file
     * limit cannot hold would fail its apply with EMFILE, which stops the
     * node (issue 24). Refused here instead, on the leader's limit
     * (docs/architecture.md, open files). */
    struct rlimit rl;
    uint64_t want = (uint64_t)store_topic_count(gw->store) + 1 + gw->cfg->segment_fd_cache +
                    gw->cfg->max_connections + 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (uint64_t)rl.rlim_cur < want) {
        gw_error(r, TALLY_INVAL, "topic %s not created: %zu topics are as many as the open file "
                  "limit %llu holds beside segment_fd_cache=%u and max_connections=%u (each "
                  "topic keeps one file open): raise the limit or lower those settings",
                  m.name, store_topic_count(gw->store), (unsigned long long)rl.rlim_cur,
                  gw->cfg->segment_fd_cache, gw->cfg->max_connections);
        return;
    }
    struct command_topic_config c = {m.policy, m.retention_ms, m.retention_bytes, m.segment_bytes};
    buf_init(&entry);
    command_encode_topic_create(&entry, m.name, &c);
    gw__propose_single(gw, r, &entry);
}

static void gw__topic_delete(struct gw *gw, struct req *r, struct rd *rd)
{
    struct proto_topic_delete_req m;
    struct buf entry;
    if (proto_get_topic_delete_req(rd, &m) != 0 || proto_get_end(rd) != 0) {
        gw_error(r, TALLY_PROTO, "malformed TOPIC_DELETE");
        return;
    }
    if (!gw__can_write(gw, r)) {
        return;
    }
    if (store_topic_find(gw->store, m.name) == NULL) {
        gw_error(r, TALLY_NOTFOUND, "topic %s not found", m.name);
        return;
    }
    buf_init(&entry);
    command_encode_topic_delete(&entry, m.name);
    gw__propose_single(gw, r, &entry);
}

static void gw__topic_config(struct gw *gw, struct req *r, struct rd *rd)
{
    struct proto_topic_config_req m;
    struct buf entry;
    if (proto_get_topic_config_req(rd, &m) != 0 || proto_get_end(rd) != 0) {
        gw_error(r, TALLY_PROTO, "malformed TOPIC_CONFIG");
        return;
    }
    if (m.set == 0 || (m.set & ~7u) != 0 || m.policy > 3 || m.retention_ms < -1 ||
        m.retention_bytes < -1) {
        gw_error(r, TALLY_INVAL, "invalid topic settings (a policy 0-3, retentions -1 or more)");
        return;
    }
    if (!gw__can_write(gw, r)) {
        return;
    }
    struct store_topic *t = store_topic_find(gw->store, m.name);
    if (t == NULL) {
        gw_error(r, TALLY_NOTFOUND, "topic %s not found", m.name);
        return;
    }
    struct command_topic_config c = {
        .policy = m.policy,
        .retention_ms = m.retention_ms,
        .retention_bytes = m.retention_bytes,
    };
    buf_init(&entry);
    /* Bound to this incarnation: a topic deleted and created again in
     * between keeps its own settings. */
    command_encode_topic_config(&entry, m.name, t->created_index, m.set, &c);
    gw__propose_single(gw, r, &entry);
}

static void gw__produce_item(struct gw *gw, struct req *r, const struct proto_produce_req *mp,
                             const struct command_condition *conds);

static void gw__produce(struct gw *gw, struct req *r, struct rd *rd)
{
    struct proto_produce_req m;
    struct command_condition *conds = NULL;
    if (proto_get_produce_req(rd, &m) != 0 || m.n_conditions > PROTO_MAX_CONDITIONS) {
        gw_error(r, TALLY_PROTO, "malformed PRODUCE");
        return;
    }
    if (m.n_conditions > 0 && (conds = calloc(m.n_conditions, sizeof *conds)) == NULL) {
        gw_error(r, TALLY_NOMEM, "out of memory");
        return;
    }
    for (uint32_t i = 0; i < m.n_conditions; i++) {
        struct proto_condition pc;
        if (proto_get_condition(rd, &pc) != 0) {
            break;
        }
        conds[i].key = pc.key;
        conds[i].key_len = pc.key_len;
        conds[i].version = pc.expect_version;
    }
    if (!rd_ok(rd) || proto_get_end(rd) != 0) {
        free(conds);
        gw_error(r, TALLY_PROTO, "malformed PRODUCE");
        return;
    }
    gw__produce_item(gw, r, &m, conds);
    free(conds);
}

/* Add a decoded, well-formed produce to the APPEND entry being gathered. */
static void gw__produce_item(struct gw *gw, struct req *r, const struct proto_produce_req *mp,
                             const struct command_condition *conds)
{
    const struct proto_produce_req m = *mp;
    struct batch_header h;
    char errmsg[ERR_MSG_SIZE];
    int rv;
    if (m.batch_len > gw->cfg->max_batch_bytes) {
        gw_error(r, TALLY_TOOLARGE, "batch of %u bytes is over the limit of %u (max_batch_bytes)",
                  m.batch_len, gw->cfg->max_batch_bytes);
        return;
    }
    rv = batch_verify(m.batch, m.batch_len, &h, errmsg);
    if (rv != 0) {
        gw_error(r, rv, "batch rejected: %s", errmsg);
        return;
    }
    if (h.record_count == 0) {
        gw_error(r, TALLY_INVAL, "batch rejected: it holds no records");
        return;
    }
    if (!gw__can_write(gw, r)) {
        return;
    }
    if (store_topic_find(gw->store, m.topic) == NULL) {
        gw_error(r, TALLY_NOTFOUND, "topic %s not found", m.topic);
        return;
    }
    if (gw->entry.len + m.batch_len > GW__MAX_PENDING_BYTES) {
        gw_error(r, TALLY_BUSY, "too many writes waiting for the disk; retry");
        return;
    }
    if (gw->n_items == gw->cap_items) {
        uint32_t cap = gw->cap_items ? gw->cap_items * 2 : 64;
        struct req **items = realloc(gw->items, cap * sizeof *items);
        if (items == NULL) {
            gw_error(r, TALLY_NOMEM, "out of memory");
            return;
        }
        gw->items = items;
        gw->cap_items = cap;
    }
    if (gw->n_items == 0) {
        command_append_begin(&gw->entry);
    }
    size_t at = command_append_add(&gw->entry, m.topic, m.batch, m.batch_len, m.expect_offset, conds,
                               m.n_conditions);
    if (!buf_ok(&gw->entry)) {
        gw_error(r, TALLY_NOMEM, "out of memory");
        return;
    }
    /* The leader stamps the time, so every node stores the same bytes. */
    gw->last_ts = gw__clock(gw);
    batch_stamp(gw->entry.data + at, 0, gw->last_ts, 0);
    gw->items[gw->n_items++] = r;
    metrics_produce(gw->metrics, h.record_count, m.batch_len);
}

/* Try to answer a fetch; returns false if it must wait. */
static bool gw__fetch_try(struct gw *gw, struct req *r, bool expired)
{
    struct gw__fetch *f = r->gw_data;
    struct proto_fetch_req *m = &f->m;
    uint64_t applied = node_applied_index(gw->node);
    struct store_topic *t;
    struct log_slice sl = {.fd = -1};
    int fd = -1;
    char errmsg[ERR_MSG_SIZE] = "";
    int rv;

    if (applied < m->min_index) {
        if (!expired) {
            return false;
        }
        gw_error(r, TALLY_TIMEOUT, "node %llu has applied index %llu, not yet %llu; "
                                    "retry or read from the leader",
                  (unsigned long long)node_id(gw->node), (unsigned long long)applied,
                  (unsigned long long)m->min_index);
        return true;
    }
    t = store_topic_find(gw->store, m->topic);
    if (t == NULL) {
        gw_error(r, TALLY_NOTFOUND, "topic %s not found", m->topic);
        return true;
    }
    if (m->offset < t->trim_offset &&
        !(r->ops->is_backup(r) && store_trim_held(gw->store) &&
          m->offset >= log_start_offset(t->log))) {
        /* Below the cluster's start offset: gone on every node, or about to
         * be (the rest of a segment retention cut into is hidden). */
        gw_error(r, TALLY_OUT_OF_RANGE,
                  "offset %llu of topic %s is gone: retention moved the topic's start to %llu; "
                  "read from there", (unsigned long long)m->offset, m->topic,
                  (unsigned long long)t->trim_offset);
        return true;
    }
    if (m->offset >= t->missing_from && m->offset < t->missing_to) {
        /* UNAVAILABLE, not OUT_OF_RANGE: the records exist, on other nodes,
         * and libtally retries a read elsewhere on this code. */
        uint64_t leader = node_leader_id(gw->node);
        const struct store_member *lm = leader != 0 ? store_member_find(gw->store, leader) : NULL;
        gw_error(r, TALLY_UNAVAILABLE,
                  "offsets %llu..%llu of topic %s are not on node %llu yet (it installed a "
                  "snapshot and is fetching that history from its peers); read them from %s%s",
                  (unsigned long long)t->missing_from, (unsigned long long)t->missing_to - 1,
                  m->topic, (unsigned long long)node_id(gw->node),
                  lm != NULL && leader != node_id(gw->node) ? "the leader at " : "another node",
                  lm != NULL && leader != node_id(gw->node) ? lm->client_addr : "");
        return true;
    }
    if (m->offset < log_start_offset(t->log) || m->offset > log_next_offset(t->log)) {
        gw_error(r, TALLY_OUT_OF_RANGE, "offset %llu is outside %llu..%llu of topic %s on node %llu",
                  (unsigned long long)m->offset, (unsigned long long)log_start_offset(t->log),
                  (unsigned long long)log_next_offset(t->log), m->topic,
                  (unsigned long long)node_id(gw->node));
        return true;
    }
    if (m->offset == log_next_offset(t->log) && m->max_wait_ms > 0 && !expired) {
        return false; /* long-poll */
    }
    if (m->offset < log_next_offset(t->log)) {
        uint32_t max = m->max_bytes < GW__MAX_FETCH_BYTES ? m->max_bytes : GW__MAX_FETCH_BYTES;
        rv = log_read(t->log, m->offset, max, &sl, errmsg);
        if (rv == 0 && sl.len > 0 && (fd = fcntl(sl.fd, F_DUPFD_CLOEXEC, 0)) < 0) {
            rv = TALLY_IOERR;
            snprintf(errmsg, sizeof errmsg, "dup segment fd: %s", strerror(errno));
        }
        if (rv != 0) {
            TLOG_ERROR("gw", "fetch %s@%llu: %s", m->topic, (unsigned long long)m->offset, errmsg);
            gw_error(r, rv, "read %s at %llu: %s", m->topic, (unsigned long long)m->offset, errmsg);
            return true;
        }
    }
    /* Zero copy: the batches are sent from the segment file with sendfile
     * (conn.c) through an fd of the answer's own, so retention or a roll
     * that closes or deletes the segment before they are out does not
     * matter. The frame is encoded with an empty blob, the last field,
     * whose u32 length (the last 4 bytes) and the frame length are then
     * made to count the batches that follow. The node checked each batch
     * header while finding the slice; the payload checksums are checked by
     * the client, end to end (docs/protocol.md). */
    struct proto_fetch_resp resp = {
        .applied_index = applied,
        .start_offset = store_topic_start(t),
        .next_offset = log_next_offset(t->log),
        .batches = NULL,
        .batches_len = 0,
    };
    /* A node that knows no leader may be cut off from newer writes: say
     * so, and let the client warn (docs/protocol.md, FETCH). */
    uint8_t flags = PROTO_FLAG_RESPONSE |
                    (node_leader_id(gw->node) == 0 ? PROTO_FLAG_NO_LEADER : 0);
    size_t start = proto_begin_frame(&r->resp, r->type, flags, r->id);
    proto_put_fetch_resp(&r->resp, &resp);
    proto_end_frame(&r->resp, start);
    if (sl.len > 0 && buf_ok(&r->resp)) {
        uint8_t *frame = r->resp.data + start;
        byte_put_u32(r->resp.data + r->resp.len - 4, (uint32_t)sl.len);
        byte_put_u32(frame, byte_get_u32(frame) + (uint32_t)sl.len);
        r->file_fd = fd;
        r->file_pos = sl.pos;
        r->file_len = sl.len;
        fd = -1;
        if (gw->metrics != NULL) { /* metrics_fetch() counts from bytes we do not have */
            gw->metrics->fetch_records += sl.records;
            gw->metrics->fetch_bytes += sl.len;
        }
        metrics_topic_fetched(gw->metrics, t->name, sl.records); /* console: per-topic rate */
    }
    if (fd >= 0) {
        close(fd);
    }
    req_complete(r);
    return true;
}

static void gw__fetch(struct gw *gw, struct req *r, struct rd *rd)
{
    struct gw__fetch *f = calloc(1, sizeof *f);
    if (f == NULL) {
        gw_error(r, TALLY_NOMEM, "out of memory");
        return;
    }
    if (proto_get_fetch_req(rd, &f->m) != 0 || proto_get_end(rd) != 0) {
        free(f);
        gw_error(r, TALLY_PROTO, "malformed FETCH");
        return;
    }
    if (f->m.max_bytes == 0) {
        free(f);
        gw_error(r, TALLY_INVAL, "max_bytes must be at least 1");
        return;
    }
    r->gw_data = f;
    if (gw__fetch_try(gw, r, false)) {
        free(f);
        return;
    }
    uint64_t wait = f->m.max_wait_ms;
    if (node_applied_index(gw->node) < f->m.min_index && wait == 0) {
        wait = GW__DEFAULT_MIN_INDEX_WAIT_MS;
    }
    r->deadline_ms = gw__mono_ms() + wait;
    r->park_next = gw->parked;
    gw->parked = r;
}

/* Re-try parked fetches; answer those that can be answered or expired. */
static void gw__wake(struct gw *gw, bool only_expired)
{
    uint64_t now = gw__mono_ms();
    struct req **pp = &gw->parked;
    while (*pp != NULL) {
        struct req *r = *pp;
        /* An answered request may be freed before its answer call returns
         * (req_complete frees it when its connection is gone, or when a
         * zero-copy answer went out at once): read what follows first. */
        struct req *next = r->park_next;
        void *data = r->gw_data;
        bool expired = now >= r->deadline_ms;
        bool answered;
        if (r->conn == NULL) {
            answered = true;
            req_complete(r);
        } else if (only_expired && !expired) {
            answered = false;
        } else {
            answered = gw__fetch_try(gw, r, expired);
        }
        if (answered) {
            *pp = next;
            free(data);
        } else {
            pp = &r->park_next;
        }
    }
}

static void gw__offset_resp(struct req *r, uint64_t offset, bool found)
{
    struct proto_offset_resp m = {offset, found};
    size_t start = proto_begin_frame(&r->resp, r->type, PROTO_FLAG_RESPONSE, r->id);
    proto_put_offset_resp(&r->resp, &m);
    proto_end_frame(&r->resp, start);
    req_complete(r);
}

static void gw__offset_for_time(struct gw *gw, struct req *r, struct rd *rd)
{
    struct proto_offset_for_time_req m;
    struct store_topic *t;
    char errmsg[ERR_MSG_SIZE] = "";
    uint64_t offset;
    int rv;
    if (proto_get_offset_for_time_req(rd, &m) != 0 || proto_get_end(rd) != 0) {
        gw_error(r, TALLY_PROTO, "malformed OFFSET_FOR_TIME");
        return;
    }
    if ((t = store_topic_find(gw->store, m.topic)) == NULL) {
        gw_error(r, TALLY_NOTFOUND, "topic %s not found", m.topic);
        return;
    }
    if ((rv = log_find_time(t->log, m.timestamp_ms, &offset, errmsg)) != 0) {
        gw_error(r, rv, "find time %lld in %s: %s", (long long)m.timestamp_ms, m.topic, errmsg);
        return;
    }
    if (offset < t->trim_offset) {
        offset = t->trim_offset; /* the records below are hidden (retention) */
    }
    gw__offset_resp(r, offset, true);
}

/* CLOCK: this node's wall clock and its offset against the cluster's time.
 * A leader's offset is its wall clock against the time it stamps records
 * and judges retention by (gw__clock): the correction it took over, and
 * also the max_clock_step_ms bound on a clock that jumped ahead. The
 * other nodes measure the cluster's time from this answer, and the next
 * leader goes on from it (skew_take_over): from the raw wall clock alone,
 * a leader whose clock jumped an hour ahead would hand that hour to its
 * successor, whose retention would then delete an hour too early (the
 * fault suite saw acknowledged records deleted that way). */
static void gw__clock_answer(struct gw *gw, struct req *r, struct rd *rd)
{
    struct proto_clock_req m;
    struct proto_clock_resp a;
    struct skew_state ks;
    size_t start;
    if (proto_get_clock_req(rd, &m) != 0 || proto_get_end(rd) != 0) {
        gw_error(r, TALLY_PROTO, "malformed CLOCK");
        return;
    }
    skew_get(gw->skew, &ks);
    memset(&a, 0, sizeof a);
    a.node_id = gw->node != NULL ? node_id(gw->node) : 0;
    a.wall_ms = (int64_t)gw_now_ms();
    a.leader_id = ks.leader_id;
    a.offset_known = ks.known;
    a.offset_ms = ks.offset_ms;
    a.offset_warn = ks.warn;
    if (a.node_id != 0 && a.leader_id == a.node_id && node_role(gw->node) == NODE_LEADER) {
        int64_t offset = a.wall_ms - gw__clock(gw);
        int64_t mag = offset < 0 ? -offset : offset;
        a.offset_known = true;
        a.offset_ms = offset;
        a.offset_warn = (uint64_t)mag > gw->cfg->clock_warn_ms;
    }
    start = proto_begin_frame(&r->resp, r->type, PROTO_FLAG_RESPONSE, r->id);
    proto_put_clock_resp(&r->resp, &a);
    proto_end_frame(&r->resp, start);
    req_complete(r);
}

/* Propose a group position on the current incarnation of @topic
 * (@topic_id PROTO_ANY_TOPIC_ID) or on the one @topic_id names. */
static void gw__group_propose(struct gw *gw, struct req *r, const char *group, const char *topic,
                              uint64_t topic_id, uint64_t offset)
{
    struct store_topic *t;
    struct buf entry;
    if (group[0] == '\0') {
        gw_error(r, TALLY_INVAL, "a group name is needed");
        return;
    }
    if (!gw__can_write(gw, r)) {
        return;
    }
    if ((t = store_topic_find(gw->store, topic)) == NULL) {
        gw_error(r, TALLY_NOTFOUND, "topic %s not found", topic);
        return;
    }
    buf_init(&entry);
    command_encode_group_commit(&entry, group, topic, offset,
                            topic_id == PROTO_ANY_TOPIC_ID ? t->created_index : topic_id);
    gw__propose_single(gw, r, &entry);
}

/* A shared group member's commit (docs/groups.md): @sh and its share
 * positions in @rd, from a member of the current generation only. */
static void gw__group_commit_shares(struct gw *gw, struct req *r,
                                    const struct proto_group_commit_req *m,
                                    const struct proto_group_commit_shares *sh, struct rd *rd)
{
    struct command_share_pos items[SHARE_MAX];
    struct store_topic *t;
    struct buf entry;
    char why[PROTO_MSG_MAX];
    if (sh->n_shares == 0 || sh->n_shares > SHARE_MAX || sh->n_items == 0 ||
        sh->n_items > sh->n_shares) {
        gw_error(r, TALLY_INVAL, "GROUP_COMMIT: %u positions of %u shares (1..%u)",
                  sh->n_items, sh->n_shares, SHARE_MAX);
        return;
    }
    for (unsigned i = 0; i < sh->n_items; i++) {
        struct proto_share_pos p;
        if (proto_get_share_pos(rd, &p) != 0 || p.share >= sh->n_shares) {
            gw_error(r, TALLY_PROTO, "malformed GROUP_COMMIT share positions");
            return;
        }
        items[i].share = p.share;
        items[i].offset = p.offset;
    }
    if (proto_get_end(rd) != 0) {
        gw_error(r, TALLY_PROTO, "malformed GROUP_COMMIT");
        return;
    }
    if (!gw__can_write(gw, r)) {
        return;
    }
    if (group_gw_commit_check(gw->groups, m->group, m->topic, sh->generation, sh->member_id,
                              why, sizeof why) != 0) {
        gw_error(r, TALLY_CONDITION_FAILED, "%s", why);
        return;
    }
    if ((t = store_topic_find(gw->store, m->topic)) == NULL) {
        gw_error(r, TALLY_NOTFOUND, "topic %s not found", m->topic);
        return;
    }
    buf_init(&entry);
    command_encode_group_commit_shares(
        &entry, m->group, m->topic,
        sh->topic_id == PROTO_ANY_TOPIC_ID ? t->created_index : sh->topic_id, sh->n_shares,
        items, sh->n_items);
    gw__propose_single(gw, r, &entry);
}

static void gw__group_commit(struct gw *gw, struct req *r, struct rd *rd)
{
    struct proto_group_commit_req m;
    struct proto_group_commit_shares sh;
    if (proto_get_group_commit_req(rd, &m) != 0) {
        gw_error(r, TALLY_PROTO, "malformed GROUP_COMMIT");
        return;
    }
    if (rd->left > 0) {
        if (proto_get_group_commit_shares(rd, &sh) != 0) {
            gw_error(r, TALLY_PROTO, "malformed GROUP_COMMIT");
            return;
        }
        gw__group_commit_shares(gw, r, &m, &sh, rd);
        return;
    }
    gw__group_propose(gw, r, m.group, m.topic, PROTO_ANY_TOPIC_ID, m.offset);
}

static void gw__group_set(struct gw *gw, struct req *r, struct rd *rd)
{
    struct proto_group_set_req m;
    if (proto_get_group_set_req(rd, &m) != 0 || proto_get_end(rd) != 0) {
        gw_error(r, TALLY_PROTO, "malformed GROUP_SET");
        return;
    }
    gw__group_propose(gw, r, m.group, m.topic, m.topic_id, m.offset);
}

static void gw__group_delete(struct gw *gw, struct req *r, struct rd *rd)
{
    struct proto_group_delete_req m;
    struct buf entry;
    if (proto_get_group_delete_req(rd, &m) != 0 || proto_get_end(rd) != 0) {
        gw_error(r, TALLY_PROTO, "malformed GROUP_DELETE");
        return;
    }
    if (m.group[0] == '\0') {
        gw_error(r, TALLY_INVAL, "a group name is needed");
        return;
    }
    if (!gw__can_write(gw, r)) {
        return;
    }
    buf_init(&entry);
    command_encode_group_delete(&entry, m.group, m.topic);
    gw__propose_single(gw, r, &entry);
}

/* The @i-th group position whose topic exists and holds it (a data
 * directory from before positions were tied to their topic may keep one
 * of a deleted topic: it is not shown, nor backed up). */
static bool gw__live_group_at(struct gw *gw, unsigned i, const char **group, const char **topic,
                              uint64_t *offset, struct store_topic **t)
{
    if (!store_group_at(gw->store, i, group, topic, offset)) {
        return false;
    }
    *t = store_topic_find(gw->store, *topic);
    if (*t != NULL && *offset > log_next_offset((*t)->log)) {
        *t = NULL;
    }
    return true;
}

static void gw__group_list(struct gw *gw, struct req *r, struct rd *rd)
{
    struct proto_group_list_req m;
    const char *group, *topic;
    uint64_t offset;
    struct store_topic *t;
    uint32_t n = 0;
    if (proto_get_group_list_req(rd, &m) != 0 || proto_get_end(rd) != 0) {
        gw_error(r, TALLY_PROTO, "malformed GROUP_LIST");
        return;
    }
    /* As GROUP_FETCH: the leader has the latest positions. */
    uint64_t leader = node_leader_id(gw->node);
    if (leader != 0 && leader != node_id(gw->node)) {
        gw__not_leader(gw, r);
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        size_t start = 0;
        if (pass == 1) {
            struct proto_group_list_resp resp = {n};
            start = proto_begin_frame(&r->resp, r->type, PROTO_FLAG_RESPONSE, r->id);
            proto_put_group_list_resp(&r->resp, &resp);
        }
        for (unsigned i = 0; gw__live_group_at(gw, i, &group, &topic, &offset, &t); i++) {
            if (t == NULL || (m.group[0] != '\0' && strcmp(m.group, group) != 0) ||
                (m.topic[0] != '\0' && strcmp(m.topic, topic) != 0)) {
                continue;
            }
            if (pass == 0) {
                n++;
                continue;
            }
            struct proto_group_position pp = {
                .topic_id = t->created_index,
                .offset = offset,
                .start_offset = store_topic_start(t),
                .next_offset = log_next_offset(t->log),
            };
            snprintf(pp.group, sizeof pp.group, "%s", group);
            snprintf(pp.topic, sizeof pp.topic, "%s", topic);
            proto_put_group_position(&r->resp, &pp);
        }
        if (pass == 1) {
            proto_end_frame(&r->resp, start);
        }
    }
    req_complete(r);
}

static void gw__group_fetch(struct gw *gw, struct req *r, struct rd *rd)
{
    struct proto_group_fetch_req m;
    uint64_t offset;
    if (proto_get_group_fetch_req(rd, &m) != 0 || proto_get_end(rd) != 0) {
        gw_error(r, TALLY_PROTO, "malformed GROUP_FETCH");
        return;
    }
    /* The leader has the latest commit (and the topic, if it was just
     * created); send the reader there when one is known. Without a leader
     * any node answers with what it has applied: possibly an older
     * position, which only repeats records, as at-least-once allows. */
    uint64_t leader = node_leader_id(gw->node);
    if (leader != 0 && leader != node_id(gw->node)) {
        gw__not_leader(gw, r);
        return;
    }
    struct store_topic *t = store_topic_find(gw->store, m.topic);
    if (t == NULL) {
        gw_error(r, TALLY_NOTFOUND, "topic %s not found", m.topic);
        return;
    }
    bool found = store_group_offset(gw->store, m.group, m.topic, &offset);
    if (found && offset > log_next_offset(t->log)) {
        /* Left by a deleted topic in a data directory from before
         * positions were tied to their topic (as gw__live_group_at). */
        found = false;
        offset = 0;
    }
    gw__offset_resp(r, offset, found);
}

/* BACKUP_CUT: everything below is read in this one call on the loop, so
 * the applied index, every topic's offsets and every group position are
 * at the same Raft index (apply runs on this loop too). */
static void gw__backup_cut(struct gw *gw, struct req *r, struct rd *rd)
{
    struct proto_backup_cut_req m;
    const char *group, *topic;
    uint64_t offset;
    uint32_t n = 0;
    if (proto_get_backup_cut_req(rd, &m) != 0 || proto_get_end(rd) != 0) {
        gw_error(r, TALLY_PROTO, "malformed BACKUP_CUT");
        return;
    }
    struct proto_backup_cut_resp resp = {
        .cut_version = PROTO_BACKUP_CUT_VERSION,
        .node_id = node_id(gw->node),
        .applied_index = node_applied_index(gw->node),
        .term = node_term(gw->node),
        .n_topics = gw__n_topics(gw),
    };
    size_t start = proto_begin_frame(&r->resp, r->type, PROTO_FLAG_RESPONSE, r->id);
    proto_put_backup_cut_resp(&r->resp, &resp);
    gw__put_topics(gw, &r->resp);
    struct store_topic *t;
    for (unsigned i = 0; gw__live_group_at(gw, i, &group, &topic, &offset, &t); i++) {
        n += t != NULL;
    }
    struct proto_backup_groups groups = {n};
    proto_put_backup_groups(&r->resp, &groups);
    for (unsigned i = 0; gw__live_group_at(gw, i, &group, &topic, &offset, &t); i++) {
        if (t == NULL) {
            continue;
        }
        struct proto_backup_group pg = {.offset = offset};
        snprintf(pg.group, sizeof pg.group, "%s", group);
        snprintf(pg.topic, sizeof pg.topic, "%s", topic);
        proto_put_backup_group(&r->resp, &pg);
    }
    proto_end_frame(&r->resp, start);
    /* Pin the logs from the cut until the backup's connection closes:
     * the records below each topic's next offset must not change while
     * they are copied (docs/operations.md, section 14). */
    r->ops->hold_backup(r);
    req_complete(r);
}

struct gw__member_op {
    struct gw *gw;
    struct req *r;
    uint64_t id;
    char raft_addr[PROTO_ADDR_MAX];
    bool forgot; /* its stale directory record was forgotten (add) */
};

static void gw__member_done(void *arg, int status, const char *message)
{
    struct gw__member_op *op = arg;
    struct req *r = op->r;
    if (r->conn == NULL) {
        req_complete(r);
    } else if (status != 0 && r->type == PROTO_MEMBER_TRANSFER) {
        gw_error(r, status, "leadership transfer: %s", message);
    } else if (status != 0) {
        gw_error(r, status, "membership change of node %llu: %s", (unsigned long long)op->id,
                  message);
    } else {
        struct proto_done_resp m = {node_last_index(op->gw->node)};
        size_t start = proto_begin_frame(&r->resp, r->type, PROTO_FLAG_RESPONSE, r->id);
        proto_put_done_resp(&r->resp, &m);
        proto_end_frame(&r->resp, start);
        req_complete(r);
    }
    free(op);
}

/* MEMBER_ADD: first replicate the new member's client address (so every
 * node can redirect clients to it), then add it to Raft as a standby: it
 * is sent the log (a snapshot, then a backfill, if it is far behind) but
 * does not vote until MEMBER_PROMOTE, which the client sends once the node
 * holds the whole history. */
static void gw__member_addr_done(void *arg, int status, uint64_t index,
                                 const struct store_result *res);

/* The data directory recorded for a node that is not a member (removed,
 * or lost with a majority) is forgotten before it is added again: the node
 * that joins now is a new member, on whatever directory it has. */
static bool gw__forget_stale_dir(struct gw__member_op *op)
{
    struct node_member members[NODE_MAX_PEERS];
    unsigned n = node_members(op->gw->node, members, NODE_MAX_PEERS);
    struct buf entry;
    int rv;
    for (unsigned i = 0; i < n; i++) {
        if (members[i].id == op->id) {
            return false;
        }
    }
    if (store_member_dir(op->gw->store, op->id) == 0) {
        return false;
    }
    op->forgot = true;
    buf_init(&entry);
    command_encode_member_dir(&entry, op->id, 0);
    rv = buf_ok(&entry) ? node_propose(op->gw->node, &entry, gw__member_addr_done, op)
                        : TALLY_NOMEM;
    buf_free(&entry);
    if (rv != 0) {
        gw__member_done(op, rv, tally_strerror(rv));
    }
    return true;
}

static void gw__member_addr_done(void *arg, int status, uint64_t index,
                                 const struct store_result *res)
{
    struct gw__member_op *op = arg;
    (void)index;
    if (status == 0 && res != NULL && res->items[0].code != 0) {
        status = res->items[0].code;
    }
    if (status == 0 && !op->forgot && gw__forget_stale_dir(op)) {
        return;
    }
    if (status == 0) {
        status = node_add_standby(op->gw->node, op->id, op->raft_addr, gw__member_done, op);
        if (status == 0) {
            return;
        }
    }
    gw__member_done(op, status, tally_strerror(status));
}

static void gw__member(struct gw *gw, struct req *r, struct rd *rd)
{
    struct gw__member_op *op = calloc(1, sizeof *op);
    int rv = 0;
    if (op == NULL) {
        gw_error(r, TALLY_NOMEM, "out of memory");
        return;
    }
    op->gw = gw;
    op->r = r;
    if (r->type == PROTO_MEMBER_ADD) {
        struct proto_member_add_req m;
        struct buf entry;
        if (proto_get_member_add_req(rd, &m) != 0 || proto_get_end(rd) != 0 || m.id == 0) {
            free(op);
            gw_error(r, TALLY_PROTO, "malformed MEMBER_ADD");
            return;
        }
        if (!gw__can_write(gw, r)) {
            free(op);
            return;
        }
        /* Another node under that id: refused before its client address
         * would replace the member's. */
        const char *elsewhere = node_member_elsewhere(gw->node, m.id, m.raft_addr);
        if (elsewhere != NULL) {
            free(op);
            gw_error(r, TALLY_EXISTS, "node %llu is already a member, at Raft address %s",
                      (unsigned long long)m.id, elsewhere);
            return;
        }
        /* Another member at these addresses: two ids cannot share a node. */
        const struct store_member *sm;
        unsigned n_sm = store_members(gw->store, &sm);
        for (unsigned i = 0; i < n_sm; i++) {
            bool same_raft = strcmp(sm[i].raft_addr, m.raft_addr) == 0;
            if (sm[i].id != m.id && (same_raft || strcmp(sm[i].client_addr, m.client_addr) == 0)) {
                free(op);
                gw_error(r, TALLY_EXISTS,
                          "node %llu already uses %s address %s: give node %llu addresses of "
                          "its own",
                          (unsigned long long)sm[i].id, same_raft ? "Raft" : "client",
                          same_raft ? m.raft_addr : m.client_addr, (unsigned long long)m.id);
                return;
            }
        }
        op->id = m.id;
        snprintf(op->raft_addr, sizeof op->raft_addr, "%s", m.raft_addr);
        buf_init(&entry);
        command_encode_member_set(&entry, m.id, m.client_addr, m.raft_addr);
        rv = node_propose(gw->node, &entry, gw__member_addr_done, op);
        buf_free(&entry);
    } else {
        struct proto_member_remove_req m; /* same layout as transfer, promote */
        if (proto_get_member_remove_req(rd, &m) != 0 || proto_get_end(rd) != 0) {
            free(op);
            gw_error(r, TALLY_PROTO, "malformed %s", proto_type_name(r->type));
            return;
        }
        if (!gw__can_write(gw, r)) {
            free(op);
            return;
        }
        op->id = m.id;
        rv = r->type == PROTO_MEMBER_REMOVE    ? node_remove(gw->node, m.id, gw__member_done, op)
             : r->type == PROTO_MEMBER_PROMOTE ? node_promote(gw->node, m.id, gw__member_done, op)
                                               : node_transfer(gw->node, m.id, gw__member_done, op);
    }
    if (rv != 0) {
        free(op);
        gw_error(r, rv, "membership change: %s", tally_strerror(rv));
    }
}

/* READ_INDEX: a barrier confirms this node still leads; the answer is
 * its applied index then. */
static void gw__read_index_done(void *arg, int status, uint64_t index)
{
    struct req *r = arg;
    if (r->conn == NULL) {
        req_complete(r);
    } else if (status != 0) {
        gw_error(r, status, "read index: %s (leadership could not be confirmed; retry)",
                  tally_strerror(status));
    } else {
        struct proto_done_resp m = {index};
        size_t start = proto_begin_frame(&r->resp, r->type, PROTO_FLAG_RESPONSE, r->id);
        proto_put_done_resp(&r->resp, &m);
        proto_end_frame(&r->resp, start);
        req_complete(r);
    }
}

static void gw__read_index(struct gw *gw, struct req *r, struct rd *rd)
{
    struct proto_read_index_req m;
    int rv;
    if (proto_get_read_index_req(rd, &m) != 0 || proto_get_end(rd) != 0) {
        gw_error(r, TALLY_PROTO, "malformed READ_INDEX");
        return;
    }
    if (gw->node == NULL || !node_ready(gw->node)) {
        gw__not_leader(gw, r);
        return;
    }
    rv = node_read_index(gw->node, gw__read_index_done, r);
    if (rv != 0) {
        gw_error(r, rv, "read index: %s", tally_strerror(rv));
    }
}

/* MEMBER_REPLACE: the member's directory was lost; remove it from the
 * configuration (if it is in it), then forget its recorded directory. The
 * client then adds it again as for a new node (standby, catch-up,
 * promote), on its new directory. */
static void gw__replace_forgotten(void *arg, int status, uint64_t index,
                                  const struct store_result *res)
{
    struct gw__member_op *op = arg;
    (void)index;
    if (status == 0 && res != NULL && res->items[0].code != 0) {
        status = res->items[0].code;
    }
    gw__member_done(op, status, status == 0 ? "done" : tally_strerror(status));
}

static void gw__replace_removed(void *arg, int status, const char *message)
{
    struct gw__member_op *op = arg;
    struct buf entry;
    int rv;
    if (status != 0) {
        gw__member_done(op, status, message);
        return;
    }
    buf_init(&entry);
    command_encode_member_dir(&entry, op->id, 0);
    rv = buf_ok(&entry) ? node_propose(op->gw->node, &entry, gw__replace_forgotten, op)
                        : TALLY_NOMEM;
    buf_free(&entry);
    if (rv != 0) {
        gw__member_done(op, rv, tally_strerror(rv));
    }
}

static void gw__member_replace(struct gw *gw, struct req *r, struct rd *rd)
{
    struct proto_member_replace_req m;
    struct node_member members[NODE_MAX_PEERS];
    struct gw__member_op *op;
    unsigned n;
    bool member = false;
    int rv;
    if (proto_get_member_replace_req(rd, &m) != 0 || proto_get_end(rd) != 0 || m.id == 0) {
        gw_error(r, TALLY_PROTO, "malformed MEMBER_REPLACE");
        return;
    }
    if (!gw__can_write(gw, r)) {
        return;
    }
    if (m.id == node_id(gw->node)) {
        gw_error(r, TALLY_INVAL, "node %llu is the leader, so it has its data: nothing to "
                  "replace (to rebuild it anyway, move leadership first: tally member "
                  "transfer 0)", (unsigned long long)m.id);
        return;
    }
    if ((op = calloc(1, sizeof *op)) == NULL) {
        gw_error(r, TALLY_NOMEM, "out of memory");
        return;
    }
    op->gw = gw;
    op->r = r;
    op->id = m.id;
    n = node_members(gw->node, members, NODE_MAX_PEERS);
    for (unsigned i = 0; i < n; i++) {
        member = member || members[i].id == m.id;
    }
    TLOG_WARN("gw", "replacing member %llu: %s its recorded data directory",
              (unsigned long long)m.id,
              member ? "removing it from the configuration, then forgetting" : "forgetting");
    if (member) {
        rv = node_remove(gw->node, m.id, gw__replace_removed, op);
        if (rv != 0) {
            free(op);
            gw_error(r, rv, "replace member %llu: %s", (unsigned long long)m.id,
                      tally_strerror(rv));
        }
        return;
    }
    gw__replace_removed(op, 0, "not a member");
}

void gw_handle(struct gw *gw, struct req *r, uint8_t version, const uint8_t *body, size_t len)
{
    struct rd rd;
    if (version != PROTO_VERSION) {
        gw_error(r, TALLY_VERSION, "protocol version %u is not supported (server speaks %u)",
                  version, PROTO_VERSION);
        return;
    }
    if (gw->node == NULL) {
        gw_error(r, TALLY_UNAVAILABLE, "node is starting");
        return;
    }
    rd_init(&rd, body, len);
    if (auth_handle(gw, gw->store, gw->cfg, r, &rd)) {
        return; /* auth hook: AUTH, USER_*, or not authenticated */
    }
    switch (r->type) {
    case PROTO_HELLO:
        gw__hello(gw, r, &rd);
        break;
    case PROTO_METADATA: {
        struct proto_metadata_req m;
        if (proto_get_metadata_req(&rd, &m) != 0 || proto_get_end(&rd) != 0) {
            gw_error(r, TALLY_PROTO, "malformed METADATA");
        } else {
            gw__metadata(gw, r, m.flags);
        }
        break;
    }
    case PROTO_TOPIC_CREATE:
        gw__topic_create(gw, r, &rd);
        break;
    case PROTO_TOPIC_DELETE:
        gw__topic_delete(gw, r, &rd);
        break;
    case PROTO_TOPIC_CONFIG:
        gw__topic_config(gw, r, &rd);
        break;
    case PROTO_TOPIC_LIST: {
        struct proto_topic_list_req m;
        if (proto_get_topic_list_req(&rd, &m) != 0 ||
            (m.flags & ~(unsigned)(PROTO_TOPIC_LIST_PAGED | PROTO_TOPIC_LIST_NAMED)) != 0 ||
            (m.flags & PROTO_TOPIC_LIST_PAGED && m.flags & PROTO_TOPIC_LIST_NAMED) ||
            (m.flags == 0 && proto_get_end(&rd) != 0)) {
            gw_error(r, TALLY_PROTO, "malformed TOPIC_LIST");
        } else {
            gw__topic_list(gw, r, &m, &rd);
        }
        break;
    }
    case PROTO_PRODUCE:
        gw__produce(gw, r, &rd);
        break;
    case PROTO_FETCH:
        gw__fetch(gw, r, &rd);
        break;
    case PROTO_MEMBER_ADD:
    case PROTO_MEMBER_REMOVE:
    case PROTO_MEMBER_TRANSFER:
    case PROTO_MEMBER_PROMOTE:
        gw__member(gw, r, &rd);
        break;
    case PROTO_MEMBER_REPLACE:
        gw__member_replace(gw, r, &rd);
        break;
    case PROTO_READ_INDEX:
        gw__read_index(gw, r, &rd);
        break;
    case PROTO_OFFSET_FOR_TIME:
        gw__offset_for_time(gw, r, &rd);
        break;
    case PROTO_GROUP_COMMIT:
        gw__group_commit(gw, r, &rd);
        break;
    case PROTO_GROUP_FETCH:
        gw__group_fetch(gw, r, &rd);
        break;
    case PROTO_BACKUP_CUT:
        gw__backup_cut(gw, r, &rd);
        break;
    case PROTO_CLOCK:
        gw__clock_answer(gw, r, &rd);
        break;
    case PROTO_GROUP_LIST:
        gw__group_list(gw, r, &rd);
        break;
    case PROTO_GROUP_DELETE:
        gw__group_delete(gw, r, &rd);
        break;
    case PROTO_GROUP_SET:
        gw__group_set(gw, r, &rd);
        break;
    case PROTO_STREAM_READ: /* streams */
        stream_gw_handle(gw->streams, r, &rd);
        break;
    case PROTO_FETCH_FILTERED: /* streams */
        stream_gw_handle_filtered(gw->streams, r, &rd);
        break;
    case PROTO_GROUP_JOIN:
    case PROTO_GROUP_HEARTBEAT:
    case PROTO_GROUP_LEAVE:
    case PROTO_GROUP_MEMBERS:
        /* Membership is the leader's (kgroup.h). */
        if (!node_ready(gw->node)) {
            gw__not_leader(gw, r);
        } else {
            group_gw_handle(gw, gw->groups, gw->store, r, &rd);
        }
        break;
    default:
        gw_error(r, TALLY_UNKNOWN_REQUEST, "unknown request type %u", r->type);
    }
}

void gw_on_applied(struct gw *gw, uint64_t index)
{
    (void)index;
    if (gw->parked != NULL) {
        gw__wake(gw, false);
    }
    stream_gw_wake(gw->streams, false); /* streams */
}

void gw_on_append(struct gw *gw, struct store_topic *t)
{
    (void)t;
    (void)gw; /* woken once per loop iteration by gw_on_applied instead */
}

bool gw_allowed(struct gw *gw, const char *who, enum acl_resource resource, const char *name,
                enum acl_operation op)
{
    if (who == NULL) {
        return !gw->cfg->auth_required;
    }
    return auth_allowed(gw->store, gw->cfg, who, resource, name, op);
}

void gw_on_role(struct gw *gw, int old_role, int new_role)
{
    if (new_role != NODE_LEADER) {
        gw->anchored = false; /* the next leadership starts afresh */
        gw->correction = 0;
    } else if (old_role != NODE_LEADER) {
        gw->correction = skew_take_over(gw->skew);
    }
    if ((old_role == NODE_LEADER) != (new_role == NODE_LEADER)) {
        /* Membership is the leader's alone: a node that starts or stops
         * leading starts with no groups, and the members rejoin it. */
        kgroups_reset(gw->groups);
    }
    if (old_role == NODE_LEADER && new_role != NODE_LEADER) {
        gw__fail_gathered(gw, TALLY_NOTLEADER, "this node lost leadership before the write was "
                                               "proposed; it was not written");
    }
}

static void gw__trim_done(void *arg, int status, uint64_t index, const struct store_result *res)
{
    struct gw *gw = arg;
    (void)index;
    gw->trims_inflight--;
    if (status != 0) {
        TLOG_WARN("gw", "retention: proposal failed (%s); tried again at the next interval",
                  err_name(status));
    } else if (res != NULL && res->items[0].code != 0) {
        TLOG_INFO("gw", "retention: %s", res->items[0].message);
    }
}

void gw_retention(struct gw *gw)
{
    int64_t now;
    if (gw->node == NULL || !node_ready(gw->node) || gw->trims_inflight > 0) {
        return;
    }
    now = gw__clock(gw);
    for (struct store_topic *t = store_topics(gw->store); t != NULL; t = t->next) {
        uint64_t start, tombs;
        struct buf entry;
        int rv;
        if (!store_retention_due(t, now, (int64_t)gw->cfg->delete_retention_ms, &start, &tombs)) {
            continue;
        }
        buf_init(&entry);
        command_encode_topic_trim(&entry, t->name, t->created_index, start, tombs);
        rv = buf_ok(&entry) ? node_propose(gw->node, &entry, gw__trim_done, gw) : TALLY_NOMEM;
        buf_free(&entry);
        if (rv != 0) {
            TLOG_WARN("gw", "retention of %s: proposal failed (%s)", t->name, err_name(rv));
            return;
        }
        gw->trims_inflight++;
    }
}

static void gw__check_done(void *arg, int status, uint64_t index, const struct store_result *res)
{
    struct gw *gw = arg;
    (void)res;
    gw->check_inflight = false;
    if (status == 0) {
        gw->check_entry = index;
    }
    if (status != 0) {
        TLOG_DEBUG("gw", "catalog check: proposal failed (%s)", err_name(status));
    }
}

void gw_catalog_check(struct gw *gw)
{
    uint64_t at, digest;
    struct buf entry;
    int rv;
    if (gw->node == NULL || !node_ready(gw->node) || gw->check_inflight) {
        return;
    }
    at = store_applied(gw->store);
    at -= at % STORE_DIGEST_EVERY; /* the latest index with a digest */
    /* nothing applied since, or only the last check itself */
    if (at == gw->checked_index || at == gw->check_entry ||
        !store_catalog_digest(gw->store, at, &digest)) {
        return;
    }
    buf_init(&entry);
    command_encode_catalog_check(&entry, at, digest);
    rv = buf_ok(&entry) ? node_propose(gw->node, &entry, gw__check_done, gw) : TALLY_NOMEM;
    buf_free(&entry);
    if (rv != 0) {
        TLOG_DEBUG("gw", "catalog check: proposal failed (%s)", err_name(rv));
        return;
    }
    gw->check_inflight = true;
    gw->checked_index = at;
}

void gw_tick(struct gw *gw)
{
    if (gw->parked != NULL) {
        gw__wake(gw, true);
    }
    stream_gw_wake(gw->streams, true); /* streams */
}

static void gw__closed(uv_handle_t *h)
{
    free(h->data);
}

void gw_destroy(struct gw *gw)
{
    gw__fail_gathered(gw, TALLY_SHUTDOWN, "node is shutting down; the write was not proposed");
    while (gw->parked != NULL) {
        struct req *r = gw->parked;
        gw->parked = r->park_next;
        free(r->gw_data);
        gw_error(r, TALLY_SHUTDOWN, "node is shutting down");
    }
    stream_gw_destroy(gw->streams); /* streams */
    gw->streams = NULL;
    kgroups_destroy(gw->groups); /* waiting joins answered NOT_COORDINATOR */
    gw->groups = NULL;
    uv_close((uv_handle_t *)&gw->flusher, gw__closed);
}

/* ---- auth hook (server/auth.c) ---------------------------------------- */
void gw_propose_entry(struct gw *gw, struct req *r, struct buf *entry)
{
    if (!gw__can_write(gw, r)) {
        buf_free(entry);
        return;
    }
    gw__propose_single(gw, r, entry);
}
