/* The seams of test/sim (sim.h): the work tallyd runs off its loop or
 * between loop iterations, run here at steps the seed chooses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/batch.h"
#include "lib/err.h"
#include "log/log.h"
#include "sim.h"
#include "tally.h"

/* Compaction as tallyd's compactor runs it (prepare on the loop, run on a
 * worker, finish on the loop), each stage at a step the seed chooses, with
 * applies in between. */
/* A failed step is a violation unless the node's disk is full (then
 * tallyd logs it and tries again later; a compaction's failed finish
 * marks the log failed and the next apply stops the node). */
static void seam_error(struct sim *s, struct sim_node *n, const char *what, const char *errmsg)
{
    if (disk_is_full(n->dir)) {
        sim_trace(s, "node %u: %s: %s", n->idx + 1, what, errmsg);
    } else {
        sim_violation(s, "node %u: %s: %s", n->idx + 1, what, errmsg);
    }
}

void seam_compact(struct sim *s, struct sim_node *n)
{
    char errmsg[ERR_MSG_SIZE] = "";
    if (n->job == NULL) {
        struct store_compact_config cfg = {.min_lag_ms = 0, .map_bytes = 1u << 20};
        if (store_compact_prepare(n->store, &cfg, (int64_t)world_now(s->w), &n->job, errmsg) !=
            0) {
            seam_error(s, n, "compact prepare", errmsg);
            n->job = NULL;
        }
        n->job_stage = n->job != NULL ? 1 : 0;
        if (n->job != NULL) {
            sim_trace(s, "node %u: compaction of %s prepared", n->idx + 1,
                      store_compaction_topic(n->job));
        }
    } else if (n->job_stage == 1) {
        int rv = store_compact_run(n->job, errmsg);
        sim_trace(s, "node %u: compaction ran: %d %s", n->idx + 1, rv, errmsg);
        n->job_stage = rv == 0 ? 2 : 0;
        if (rv != 0) {
            node_compact_drop(n);
        }
    } else {
        struct log_compact_stats st;
        int rv = store_compact_finish(n->store, n->job, &st, errmsg);
        if (rv != 0) {
            seam_error(s, n, "compact finish", errmsg);
        }
        sim_trace(s, "node %u: compaction finished", n->idx + 1);
        store_compact_free(n->job);
        n->job = NULL;
        n->job_stage = 0;
    }
}

/* Backfill as server/backfill.c does it, reading the peer's files directly:
 * the history a snapshot install left out, from a peer that holds it. */
bool seam_backfill(struct sim *s, struct sim_node *n)
{
    char topic[STORE_NAME_MAX], errmsg[ERR_MSG_SIZE] = "";
    uint64_t created, from, to;
    if (!store_backfill_pick(n->store, topic, sizeof topic, &created, &from, &to)) {
        return false;
    }
    for (unsigned i = 0; i < SIM_NODES; i++) {
        struct sim_node *p = &s->nodes[i];
        struct store_topic *pt = p != n && p->up ? store_topic_find(p->store, topic) : NULL;
        if (pt == NULL || pt->created_index != created || log_next_offset(pt->log) < to ||
            (pt->missing_to > pt->missing_from && pt->missing_to > from)) {
            continue;
        }
        uint64_t first = store_topic_start(pt) > from ? store_topic_start(pt) : from;
        first = first < to ? first : to;
        struct tally_log *staging = NULL;
        if (store_backfill_begin(n->store, topic, first, &staging, errmsg) != 0) {
            seam_error(s, n, "backfill begin", errmsg);
            return false;
        }
        uint64_t next = first;
        int rv = 0;
        while (rv == 0 && next < to) {
            void *data = NULL;
            size_t len = 0, pos = 0;
            uint64_t after;
            rv = log_read_copy(pt->log, next, 1u << 20, &data, &len, &after, errmsg);
            while (rv == 0 && pos < len && next < to) {
                struct batch_header h;
                rv = batch_decode_header((uint8_t *)data + pos, len - pos, &h, errmsg);
                if (rv == 0 && h.base_offset >= next && batch_last_offset(&h) < to) {
                    rv = log_append(staging, (uint8_t *)data + pos, h.batch_len,
                                    h.first_timestamp, errmsg);
                    next = batch_last_offset(&h) + 1;
                } else if (rv == 0 && batch_last_offset(&h) >= next) {
                    rv = -1; /* straddles: give up, as backfill.c does */
                    snprintf(errmsg, sizeof errmsg, "batch straddles the range");
                }
                pos += h.batch_len;
            }
            free(data);
            if (len == 0) {
                break;
            }
        }
        if (rv != 0 || next < to) {
            sim_trace(s, "node %u: backfill of %s from node %u gave up: %s", n->idx + 1, topic,
                      i + 1, errmsg);
            store_backfill_abort(n->store, topic, staging);
            continue;
        }
        rv = store_backfill_finish(n->store, topic, created, from, to, staging, errmsg);
        sim_trace(s, "node %u: backfilled %s [%llu, %llu) from node %u: %d", n->idx + 1, topic,
                  (unsigned long long)first, (unsigned long long)to, i + 1, rv);
        if (rv != 0 && rv != TALLY_BUSY) {
            seam_error(s, n, "backfill finish", errmsg);
        }
        return rv == 0;
    }
    return false;
}
