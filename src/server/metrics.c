/* Counters, histograms and the Prometheus text format; see metrics.h.
 *
 * Text format 0.0.4: for each metric family a "# HELP" and a "# TYPE"
 * line, then one "name{labels} value" line per series. Histograms have
 * cumulative _bucket{le=...} series ending with le="+Inf", then _sum and
 * _count. Label values escape backslash, double quote and newline. */
#include "server/metrics.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <uv.h>

#include "lib/batch.h"
#include "lib/err.h"
#include "proto/proto.h"
#include "repl/fsm.h"
#include "server/checkpointer.h"
#include "server/http.h"
#include "server/skew.h"

/* Seconds, from 0.1 ms to 10 s. */
static const double metrics__latency_le[METRICS_LATENCY_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,     10,
};
/* Produce requests per APPEND entry. */
static const double metrics__items_le[METRICS_ITEMS_BUCKETS] = {
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024,
};

void metrics_init(struct metrics *m, const struct cfg *cfg, struct store *store)
{
    memset(m, 0, sizeof *m);
    m->cfg = cfg;
    m->store = store;
}

void metrics_set_node(struct metrics *m, struct node *node)
{
    m->node = node;
}

void metrics_set_skew(struct metrics *m, struct skew *k)
{
    m->skew = k;
}

void metrics_set_checkpoints(struct metrics *m, const struct checkpointer_stats *st)
{
    m->checkpoints = st;
}

void metrics_set_connections(struct metrics *m, const unsigned *n)
{
    m->connections = n;
}

uint64_t metrics_now_ns(void)
{
    return uv_hrtime();
}

static void metrics__observe(struct metrics_hist *h, const double *le, unsigned n, double v)
{
    for (unsigned i = 0; i < n; i++) {
        if (v <= le[i]) {
            h->counts[i]++;
            break;
        }
    }
    h->count++;
    h->sum += v;
}

void metrics_request_done(struct metrics *m, unsigned type, uint64_t start_ns,
                          const uint8_t *resp, size_t resp_len)
{
    struct proto_frame f;
    if (m == NULL) {
        return;
    }
    unsigned t = type < METRICS_MAX_TYPE ? type : 0;
    m->requests[t]++;
    if (resp_len >= PROTO_HEADER_SIZE &&
        proto_decode_frame(resp, resp_len, PROTO_MAX_FRAME, &f) == 0 &&
        (f.flags & PROTO_FLAG_ERROR) && resp_len >= PROTO_HEADER_SIZE + 2) {
        unsigned code = byte_get_u16(resp + PROTO_HEADER_SIZE); /* proto_error.code */
        m->errors[t][code < METRICS_MAX_CODE ? code : 0]++;
    }
    double secs = (double)(metrics_now_ns() - start_ns) / 1e9;
    if (type == PROTO_PRODUCE) {
        metrics__observe(&m->produce_latency, metrics__latency_le, METRICS_LATENCY_BUCKETS, secs);
    } else if (type == PROTO_FETCH) {
        metrics__observe(&m->fetch_latency, metrics__latency_le, METRICS_LATENCY_BUCKETS, secs);
    }
}

void metrics_produce(struct metrics *m, uint32_t records, size_t bytes)
{
    if (m != NULL) {
        m->produce_records += records;
        m->produce_bytes += bytes;
    }
}

void metrics_fetch(struct metrics *m, const uint8_t *data, size_t len)
{
    struct batch_header h;
    char errmsg[ERR_MSG_SIZE];
    size_t pos = 0;
    if (m == NULL) {
        return;
    }
    m->fetch_bytes += len;
    while (len - pos >= BATCH_HEADER_SIZE &&
           batch_decode_header(data + pos, len - pos, &h, errmsg) == 0 && h.batch_len > 0) {
        m->fetch_records += h.record_count;
        pos += h.batch_len;
        if (pos > len) {
            break;
        }
    }
}

void metrics_topic_fetched(struct metrics *m, const char *topic, uint64_t records)
{
    if (m != NULL && m->topic_fetched != NULL) {
        m->topic_fetched(m->topic_fetched_arg, topic, records);
    }
}

void metrics_compaction(struct metrics *m, bool ok, double seconds, uint64_t bytes_in,
                        uint64_t bytes_out, uint64_t records_removed)
{
    if (m == NULL) {
        return;
    }
    if (!ok) {
        m->compaction_failures++;
        return;
    }
    m->compaction_runs++;
    m->compaction_bytes_read += bytes_in;
    m->compaction_bytes_reclaimed += bytes_in > bytes_out ? bytes_in - bytes_out : 0;
    m->compaction_records_removed += records_removed;
    metrics__observe(&m->compaction_duration, metrics__latency_le, METRICS_LATENCY_BUCKETS,
                     seconds);
}

void metrics_group_commit(struct metrics *m, uint32_t items)
{
    if (m != NULL) {
        m->gc_entries++;
        metrics__observe(&m->gc_items, metrics__items_le, METRICS_ITEMS_BUCKETS, items);
    }
}

/* ---- rendering ---------------------------------------------------------- */

static void metrics__printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void metrics__printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    uint8_t *p = buf_reserve(b, (size_t)n + 1);
    if (p == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf((char *)p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_commit(b, (size_t)n);
}

static void metrics__family(struct buf *b, const char *name, const char *type, const char *help)
{
    metrics__printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics__u64(struct buf *b, const char *name, const char *type, const char *help,
                   uint64_t v)
{
    metrics__family(b, name, type, help);
    metrics__printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* A label value, escaped. */
static void metrics__label_value(struct buf *b, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"') {
            metrics__printf(b, "\\%c", *s);
        } else if (*s == '\n') {
            metrics__printf(b, "\\n");
        } else {
            buf_put_u8(b, (uint8_t)*s);
        }
    }
}

static void metrics__hist(struct buf *b, const char *name, const char *help,
                    const struct metrics_hist *h, const double *le, unsigned n)
{
    uint64_t cum = 0;
    metrics__family(b, name, "histogram", help);
    for (unsigned i = 0; i < n; i++) {
        cum += h->counts[i];
        metrics__printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, le[i], (unsigned long long)cum);
    }
    metrics__printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
    metrics__printf(b, "%s_sum %.9g\n", name, h->sum);
    metrics__printf(b, "%s_count %llu\n", name, (unsigned long long)h->count);
}

static const char *metrics__type_label(unsigned t, char *out, size_t cap)
{
    const char *name = t == 0 ? "unknown" : proto_type_name(t);
    size_t i;
    for (i = 0; name[i] != '\0' && i + 1 < cap; i++) {
        out[i] = (char)tolower((unsigned char)name[i]);
    }
    out[i] = '\0';
    return out;
}

static void metrics__raft(struct metrics *m, struct buf *b)
{
    static const char *const roles[] = {"unavailable", "follower", "candidate", "leader"};
    struct node *n = m->node;
    int role = n != NULL ? node_role(n) : NODE_UNAVAILABLE;
    metrics__u64(b, "tally_node_id", "gauge", "This node's id (--id).", m->cfg->id);
    metrics__family(b, "tally_raft_role", "gauge", "1 for the node's current Raft role, 0 for the others.");
    for (int r = 0; r < 4; r++) {
        metrics__printf(b, "tally_raft_role{role=\"%s\"} %d\n", roles[r], r == role ? 1 : 0);
    }
    metrics__u64(b, "tally_raft_term", "gauge", "Current Raft term.", n ? node_term(n) : 0);
    metrics__u64(b, "tally_raft_commit_index", "gauge", "Highest Raft index known to be committed.",
           n ? node_commit_index(n) : 0);
    metrics__u64(b, "tally_raft_applied_index", "gauge", "Highest Raft index applied to the store.",
           n ? node_applied_index(n) : 0);
    metrics__u64(b, "tally_raft_leader_commit_index", "gauge",
           "The leader's commit index as this node last heard it (its own on the leader).",
           n ? node_leader_commit_index(n) : 0);
    uint64_t lc = n ? node_leader_commit_index(n) : 0, ap = n ? node_applied_index(n) : 0;
    metrics__u64(b, "tally_raft_lag_entries", "gauge",
           "Committed entries this node has not applied yet: leader commit index - applied.",
           lc > ap ? lc - ap : 0);
    metrics__u64(b, "tally_raft_last_index", "gauge", "Highest Raft index in the local Raft log.",
           n ? node_last_index(n) : 0);
    metrics__u64(b, "tally_raft_leader_id", "gauge", "Id of the leader this node knows, 0 if none.",
           n ? node_leader_id(n) : 0);
}

static void metrics__requests(struct metrics *m, struct buf *b)
{
    char tl[32];
    metrics__family(b, "tally_requests_total", "counter", "Client requests answered, by type.");
    for (unsigned t = 1; t <= PROTO__TYPE_MAX && t < METRICS_MAX_TYPE; t++) {
        if (strcmp(proto_type_name(t), "UNKNOWN") == 0) {
            continue; /* a type number not assigned */
        }
        metrics__printf(b, "tally_requests_total{type=\"%s\"} %llu\n", metrics__type_label(t, tl, sizeof tl),
                  (unsigned long long)m->requests[t]);
    }
    if (m->requests[0] > 0) {
        metrics__printf(b, "tally_requests_total{type=\"unknown\"} %llu\n",
                  (unsigned long long)m->requests[0]);
    }
    metrics__family(b, "tally_request_errors_total", "counter",
              "Client requests answered with an error, by type and error code.");
    for (unsigned t = 0; t < METRICS_MAX_TYPE; t++) {
        for (unsigned c = 0; c < METRICS_MAX_CODE; c++) {
            if (m->errors[t][c] > 0) {
                metrics__printf(b, "tally_request_errors_total{type=\"%s\",code=\"%s\"} %llu\n",
                          metrics__type_label(t, tl, sizeof tl), err_name((int)c),
                          (unsigned long long)m->errors[t][c]);
            }
        }
    }
    metrics__u64(b, "tally_produce_records_total", "counter",
           "Records of produce requests accepted into a Raft entry (leader).", m->produce_records);
    metrics__u64(b, "tally_produce_bytes_total", "counter",
           "Batch bytes of produce requests accepted into a Raft entry (leader).",
           m->produce_bytes);
    metrics__u64(b, "tally_fetch_records_total", "counter",
           "Records in the batches returned by fetch requests.", m->fetch_records);
    metrics__u64(b, "tally_fetch_bytes_total", "counter", "Batch bytes returned by fetch requests.",
           m->fetch_bytes);
    metrics__hist(b, "tally_produce_duration_seconds",
            "Time from a produce request's arrival to its answer.", &m->produce_latency,
            metrics__latency_le, METRICS_LATENCY_BUCKETS);
    metrics__hist(b, "tally_fetch_duration_seconds",
            "Time from a fetch request's arrival to its answer (long-poll waits included).",
            &m->fetch_latency, metrics__latency_le, METRICS_LATENCY_BUCKETS);
    metrics__u64(b, "tally_group_commit_entries_total", "counter",
           "Raft APPEND entries proposed by group commit (leader).", m->gc_entries);
    metrics__hist(b, "tally_group_commit_items", "Produce requests per proposed APPEND entry.",
            &m->gc_items, metrics__items_le, METRICS_ITEMS_BUCKETS);
    metrics__u64(b, "tally_compaction_runs_total", "counter",
           "Compaction jobs finished (each covers the sealed segments of one topic).",
           m->compaction_runs);
    metrics__u64(b, "tally_compaction_failures_total", "counter",
           "Compaction jobs that failed or were cancelled (the log says why).",
           m->compaction_failures);
    metrics__u64(b, "tally_compaction_bytes_read_total", "counter",
           "Segment bytes read by finished compaction jobs.", m->compaction_bytes_read);
    metrics__u64(b, "tally_compaction_bytes_reclaimed_total", "counter",
           "Disk bytes freed by compaction.", m->compaction_bytes_reclaimed);
    metrics__u64(b, "tally_compaction_records_removed_total", "counter",
           "Records removed by compaction (older values of a key, old tombstones).",
           m->compaction_records_removed);
    metrics__hist(b, "tally_compaction_duration_seconds",
            "Wall time of a compaction job, from plan to swap.", &m->compaction_duration,
            metrics__latency_le, METRICS_LATENCY_BUCKETS);
}

static void metrics__topics(struct metrics *m, struct buf *b)
{
    static const struct {
        const char *name, *help;
    } fam[] = {
        {"tally_topic_size_bytes", "Bytes in the topic's segments on this node."},
        {"tally_topic_segments", "Segments of the topic on this node."},
        {"tally_topic_next_offset", "Offset the topic's next record will get (on this node)."},
        {"tally_topic_start_offset",
         "First offset of the topic this node serves: what it stores, from the start offset "
         "retention set (the same on every node at the same applied index)."},
        {"tally_topic_missing_offsets",
         "Offsets of the topic's history this node lacks after a snapshot install, until "
         "backfill brings them (0: none)."},
    };
    size_t n = store_topic_count(m->store);
    /* Per-topic series for the first metrics_topic_series topics (in
     * creation order, so the set is stable from scrape to scrape): a scrape
     * costs at most that many topics, however many there are. */
    unsigned limit = m->cfg->metrics_topic_series;
    metrics__u64(b, "tally_topics", "gauge", "Topics in the catalog.", n);
    metrics__u64(b, "tally_topics_without_series", "gauge",
                  "Topics beyond metrics_topic_series, which have no tally_topic_* series.",
                  n > limit ? n - limit : 0);
    for (unsigned f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        metrics__family(b, fam[f].name, "gauge", fam[f].help);
        unsigned k = 0;
        for (struct store_topic *t = store_topics(m->store); t != NULL && k < limit;
             t = t->next, k++) {
            uint64_t v = f == 0   ? log_size_bytes(t->log)
                         : f == 1 ? log_segment_count(t->log)
                         : f == 2 ? log_next_offset(t->log)
                         : f == 3 ? (log_start_offset(t->log) > t->trim_offset
                                         ? log_start_offset(t->log) : t->trim_offset)
                                  : t->missing_to - t->missing_from;
            metrics__printf(b, "%s{topic=\"", fam[f].name);
            metrics__label_value(b, t->name);
            metrics__printf(b, "\"} %llu\n", (unsigned long long)v);
        }
    }
}

static void metrics__node(struct metrics *m, struct buf *b)
{
    struct statvfs sv;
    const struct fsm_stats *fs = fsm_stats();
    metrics__u64(b, "tally_connections", "gauge", "Client connections open.",
           m->connections != NULL ? *m->connections : 0);
    if (statvfs(m->cfg->data_dir, &sv) == 0) {
        metrics__u64(b, "tally_disk_free_bytes", "gauge",
               "Bytes available to tallyd on the data directory's file system.",
               (uint64_t)sv.f_bavail * sv.f_frsize);
        metrics__u64(b, "tally_disk_size_bytes", "gauge", "Size of the data directory's file system.",
               (uint64_t)sv.f_blocks * sv.f_frsize);
    }
    metrics__u64(b, "tally_snapshots_taken_total", "counter", "Raft snapshots taken by this node.",
           fs->taken);
    metrics__u64(b, "tally_snapshots_installed_total", "counter",
           "Raft snapshots installed from the leader.", fs->installed);
    metrics__u64(b, "tally_snapshot_last_size_bytes", "gauge", "Size of the latest snapshot taken.",
           fs->last_bytes);
    metrics__family(b, "tally_snapshot_last_duration_seconds", "gauge",
              "Time the latest snapshot held up the event loop (the freeze: copies of the "
              "key indexes).");
    metrics__printf(b, "tally_snapshot_last_duration_seconds %.9g\n", fs->last_seconds);
    metrics__family(b, "tally_snapshot_last_build_seconds", "gauge",
              "Time the latest snapshot took on the thread pool (log fsyncs, checkpoints, "
              "encoding).");
    metrics__printf(b, "tally_snapshot_last_build_seconds %.9g\n", fs->last_build_seconds);
    if (m->checkpoints != NULL) {
        const struct checkpointer_stats *cs = m->checkpoints;
        metrics__u64(b, "tally_checkpoints_total", "counter",
               "Store checkpoints written off the event loop (retention, membership, users, "
               "ACLs).", cs->done);
        metrics__u64(b, "tally_checkpoint_failures_total", "counter",
               "Store checkpoints that failed (tried again; the log says why).", cs->failed);
        metrics__family(b, "tally_checkpoint_last_loop_seconds", "gauge",
                  "Time the latest checkpoint held up the event loop (its freeze plus its "
                  "release, which deletes trimmed segments).");
        metrics__printf(b, "tally_checkpoint_last_loop_seconds %.9g\n",
                        cs->last_freeze_s + cs->last_release_s);
        metrics__family(b, "tally_checkpoint_last_write_seconds", "gauge",
                  "Time the latest checkpoint took on the thread pool (log fsyncs, key index "
                  "and catalog files).");
        metrics__printf(b, "tally_checkpoint_last_write_seconds %.9g\n", cs->last_build_s);
    }
    struct skew_state ks;
    skew_get(m->skew, &ks);
    metrics__u64(b, "tally_clock_offset_known", "gauge",
           "1 when tally_clock_offset_seconds holds a recent measurement against the leader.",
           ks.known);
    metrics__family(b, "tally_clock_offset_seconds", "gauge",
              "This node's wall clock minus the leader's (0 on the leader), measured every 2 s "
              "to within half a round trip.");
    metrics__printf(b, "tally_clock_offset_seconds %.3f\n", (double)ks.offset_ms / 1000.0);
    metrics__u64(b, "tally_clock_offset_warning", "gauge",
           "1 when the clock offset exceeds clock_warn_ms.", ks.warn);
}

void metrics_render(struct metrics *m, struct buf *out)
{
    metrics__family(out, "tally_build_info", "gauge", "Version of this tallyd (the value is 1).");
    metrics__printf(out, "tally_build_info{version=\"%s\"} 1\n", TALLY_VERSION_STRING);
    metrics__raft(m, out);
    metrics__requests(m, out);
    metrics__topics(m, out);
    metrics__node(m, out);
}

bool metrics_health(struct metrics *m, char *why, size_t cap)
{
    struct node *n = m->node;
    struct node_member members[NODE_MAX_PEERS];
    if (n == NULL) {
        snprintf(why, cap, "node is starting or stopping");
        return false;
    }
    int role = node_role(n);
    if (role == NODE_UNAVAILABLE) {
        snprintf(why, cap, "raft is unavailable on node %llu", (unsigned long long)node_id(n));
        return false;
    }
    unsigned nm = node_members(n, members, NODE_MAX_PEERS);
    bool member = false;
    for (unsigned i = 0; i < nm; i++) {
        member = member || members[i].id == node_id(n);
    }
    if (!member) {
        snprintf(why, cap, "node %llu is not in the cluster configuration",
                 (unsigned long long)node_id(n));
        return false;
    }
    if (m->identity_problem[0] != '\0') {
        snprintf(why, cap, "%s", m->identity_problem);
        return false;
    }
    uint64_t leader = node_leader_id(n);
    if (leader == 0) {
        snprintf(why, cap, "no known leader (node %llu is %s in term %llu; no quorum?)",
                 (unsigned long long)node_id(n), role == NODE_CANDIDATE ? "candidate" : "follower",
                 (unsigned long long)node_term(n));
        return false;
    }
    /* The leader's commit index, not this node's own: a follower's own
     * never passes what it has stored, so it would hide a follower that
     * is still receiving the log. */
    uint64_t commit = node_leader_commit_index(n), applied = node_applied_index(n);
    if (commit > applied && commit - applied > METRICS_HEALTH_MAX_LAG) {
        snprintf(why, cap, "applied index %llu is %llu entries behind the leader's commit index "
                           "%llu (max %u)",
                 (unsigned long long)applied, (unsigned long long)(commit - applied),
                 (unsigned long long)commit, (unsigned)METRICS_HEALTH_MAX_LAG);
        return false;
    }
    return true;
}

int metrics_http(void *arg, int method, const char *path, const char *query, struct buf *body,
                 const char **content_type)
{
    struct metrics *m = arg;
    (void)query; /* /metrics and /health take no parameters */
    bool metrics = strcmp(path, "/metrics") == 0, health = strcmp(path, "/health") == 0;
    if (!metrics && !health) {
        metrics__printf(body, "not found: %s (try /metrics or /health)\n", path);
        return 404;
    }
    if (method != HTTP_SRV_GET && method != HTTP_SRV_HEAD) {
        metrics__printf(body, "method not allowed: use GET\n");
        return 405;
    }
    if (metrics) {
        metrics_render(m, body);
        *content_type = "text/plain; version=0.0.4; charset=utf-8";
        return 200;
    }
    char why[800];
    if (metrics_health(m, why, sizeof why)) {
        metrics__printf(body, "ok\n");
        return 200;
    }
    metrics__printf(body, "%s\n", why);
    return 503;
}
