/* Checkpoints off the loop: when the store wants one (trims waiting for
 * their deletion at the retention interval, or a change only the catalog
 * records: members, users, ACLs), the loop freezes a copy of what changed
 * (store_checkpoint_freeze), libuv's thread pool writes it (fsyncs of the
 * logs written since their last sync, the key and stream checkpoints that
 * are due, the catalog), and the loop then deletes the segments of the
 * trims it recorded. One at a time; a request meanwhile runs after it.
 *
 * Why: with thousands of topics written since the last one, a checkpoint
 * is seconds of fsyncs and file writes, and on the loop it held Raft's
 * heartbeats and every client for that long (docs/architecture.md, "What
 * one request or applied entry costs, with many topics"). */
#ifndef TALLY_SERVER_CHECKPOINTER_H_
#define TALLY_SERVER_CHECKPOINTER_H_

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "store/store.h"

struct checkpointer;

/* @store is borrowed and must outlive checkpointer_close. */
int checkpointer_start(uv_loop_t *loop, struct store *store, struct checkpointer **out,
                       char *errmsg);

/* Start a checkpoint if the store wants one and none is running (what
 * becomes due meanwhile is seen at the next kick). Cheap when nothing is
 * due: called from the server's tick. */
void checkpointer_kick(struct checkpointer *c);

/* What has been done so far (metrics and tests). */
struct checkpointer_stats {
    uint64_t done;          /* checkpoints built and released */
    uint64_t failed;        /* builds or releases that failed */
    double last_freeze_s;   /* the last freeze, on the loop */
    double last_build_s;    /* the last build, on a pool thread */
    double last_release_s;  /* the last release (deletions), on the loop */
};
const struct checkpointer_stats *checkpointer_stats(const struct checkpointer *c);

/* Stop: @done(@arg) runs once no build is left (at once when idle). Frees
 * @c; @c may be NULL. */
void checkpointer_close(struct checkpointer *c, void (*done)(void *arg), void *arg);

#endif
