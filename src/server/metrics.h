/* Counters and histograms of one tallyd, and their rendering in the
 * Prometheus text format (version 0.0.4) for GET /metrics, plus the rule of
 * GET /health. docs/operations.md "Metrics and health" lists every metric.
 *
 * The struct is owned by the server (srv.c), lives for the process and is
 * only touched on the loop thread, so counters are plain integers. Gauges
 * (Raft state, topics, connections, disk) are read at scrape time from the
 * node, the store and statvfs; only events are counted here. */
#ifndef TALLY_SERVER_METRICS_H_
#define TALLY_SERVER_METRICS_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/byte.h"
#include "repl/node.h"
#include "server/cfg.h"
#include "store/store.h"

#define METRICS_MAX_TYPE 32   /* request types counted (others: "unknown") */
#define METRICS_MAX_CODE 64   /* error codes counted (others: "UNKNOWN") */
#define METRICS_LATENCY_BUCKETS 16
#define METRICS_ITEMS_BUCKETS 11

/* Health rule: a node is healthy when it knows a leader and has applied
 * all but at most this many committed entries. */
#define METRICS_HEALTH_MAX_LAG 1000

struct metrics_hist {
    uint64_t counts[METRICS_LATENCY_BUCKETS > METRICS_ITEMS_BUCKETS ? METRICS_LATENCY_BUCKETS
                                                                   : METRICS_ITEMS_BUCKETS];
    uint64_t count;
    double sum;
};

struct metrics {
    /* Where scrape-time gauges come from (borrowed; node may be NULL). */
    const struct cfg *cfg;
    struct store *store;
    struct node *node;
    struct skew *skew;      /* clock health (may be NULL) */
    const struct checkpointer_stats *checkpoints; /* may be NULL */
    const unsigned *connections; /* open client connections (the server's
                                  * conn_set.n); NULL: not counted */

    uint64_t requests[METRICS_MAX_TYPE];                     /* answered, by type */
    uint64_t errors[METRICS_MAX_TYPE][METRICS_MAX_CODE];     /* error answers */
    uint64_t produce_records, produce_bytes;  /* accepted into a Raft entry */
    uint64_t fetch_records, fetch_bytes;      /* returned by fetches */
    struct metrics_hist produce_latency;      /* seconds */
    struct metrics_hist fetch_latency;
    uint64_t gc_entries;                      /* APPEND entries proposed */
    struct metrics_hist gc_items;             /* produce requests per entry */
    uint64_t compaction_runs;                 /* compaction jobs finished */
    uint64_t compaction_failures;             /* jobs that failed or were cancelled */
    uint64_t compaction_bytes_read;           /* segment bytes compacted */
    uint64_t compaction_bytes_reclaimed;      /* bytes their copies saved */
    uint64_t compaction_records_removed;
    struct metrics_hist compaction_duration;  /* seconds per job */
    /* console (ui.c): told of every fetch answer that carries records,
     * for its per-topic consume rates; NULL: nobody listens. */
    void (*topic_fetched)(void *arg, const char *topic, uint64_t records);
    void *topic_fetched_arg;
    /* Problems with this node's identity or membership that /health
     * reports (empty: none); set by the server. */
    char identity_problem[768];
};

void metrics_init(struct metrics *m, const struct cfg *cfg, struct store *store);
void metrics_set_node(struct metrics *m, struct node *node);
struct skew;
void metrics_set_skew(struct metrics *m, struct skew *k);
struct checkpointer_stats;
void metrics_set_checkpoints(struct metrics *m, const struct checkpointer_stats *st);
/* Read the number of open client connections from *@n (borrowed). */
void metrics_set_connections(struct metrics *m, const unsigned *n);

/* Now, for metrics_request_done (monotonic nanoseconds). */
uint64_t metrics_now_ns(void);

/* A client request of @type that arrived at @start_ns was answered with
 * the frame(s) in @resp: count it, its error code if the first frame is an
 * error, and its latency (produce, fetch). @m may be NULL. */
void metrics_request_done(struct metrics *m, unsigned type, uint64_t start_ns,
                          const uint8_t *resp, size_t resp_len);

/* A produce of @records records in @bytes of batch was accepted into the
 * Raft entry being gathered. */
void metrics_produce(struct metrics *m, uint32_t records, size_t bytes);

/* A fetch returned the whole batches in @data (@len bytes). */
void metrics_fetch(struct metrics *m, const uint8_t *data, size_t len);

/* A fetch of @topic returned @records records (console hook; @m may be
 * NULL). */
void metrics_topic_fetched(struct metrics *m, const char *topic, uint64_t records);

/* An APPEND entry of @items produce requests was proposed. */
void metrics_group_commit(struct metrics *m, uint32_t items);

/* A compaction job ended after @seconds: @ok, reading @bytes_in bytes
 * of segments that take @bytes_out now, removing @records_removed. */
void metrics_compaction(struct metrics *m, bool ok, double seconds, uint64_t bytes_in,
                        uint64_t bytes_out, uint64_t records_removed);

/* Append the whole /metrics page to @out. */
void metrics_render(struct metrics *m, struct buf *out);

/* true when healthy; otherwise false with the reason in @why. */
bool metrics_health(struct metrics *m, char *why, size_t cap);

/* The HTTP handler for the metrics listener (http.h's http_handler):
 * GET|HEAD /metrics and /health; 404 and 405 otherwise. @arg is the
 * struct metrics. */
int metrics_http(void *arg, int method, const char *path, const char *query, struct buf *body,
                 const char **content_type);

#endif
