/* struct raft_fsm adapter: committed entries -> store_apply, snapshots ->
 * store_snapshot / store_restore. */
#ifndef TALLY_REPL_FSM_H_
#define TALLY_REPL_FSM_H_

#include <raft.h>
#include <stdbool.h>

#include "store/store.h"

#define FSM_RESULTS 4096

struct fsm {
    struct raft_fsm raft_fsm;   /* handed to raft_init */
    struct store *store;        /* borrowed */
    struct raft *raft;          /* set before raft_start */
    bool started;               /* raft_start returned: restores are installs */
    /* Results of the latest FSM_RESULTS applies, by index % FSM_RESULTS
     * (each freed when its slot is reused): libraft 0.22 may apply several
     * entries before it calls their requests' callbacks. */
    struct store_result *results[FSM_RESULTS];
    void (*fatal)(void *arg, const char *why);
    void *fatal_arg;
    bool failed;                /* a fatal error was reported */
    struct store_frozen *frozen; /* the snapshot being taken, or NULL */
    uint64_t frozen_index;
    uint64_t snap_t0;           /* uv_hrtime() when it started */
    double snap_build_seconds;  /* set by the thread, read in finalize */
    uint64_t applied_entries;   /* entries applied, and their bytes, since start */
    uint64_t applied_bytes;
};

/* Version 3 of raft_fsm: snapshot() freezes a copy of the state on the
 * loop (store_snapshot_freeze), snapshot_async() makes the logs durable,
 * writes the checkpoints and serialises the copy on libuv's thread pool
 * (store_snapshot_build), snapshot_finalize() frees it on the loop. The
 * node's raft_io must say version 2 (node.c). */
void fsm_init(struct fsm *f, struct store *store, void (*fatal)(void *, const char *), void *arg);
void fsm_close(struct fsm *f);

/* Snapshot counters of this process (one node per process), for metrics. */
struct fsm_stats {
    uint64_t taken;          /* snapshots taken (fsm snapshot callback succeeded) */
    uint64_t installed;      /* snapshots installed from the leader */
    uint64_t last_bytes;     /* size of the latest snapshot taken */
    double last_seconds;     /* time the loop spent on it (the freeze) */
    double last_build_seconds; /* time the thread pool spent (fsyncs, checkpoints, encoding) */
};
const struct fsm_stats *fsm_stats(void);

#endif
