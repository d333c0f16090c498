/* struct raft_fsm adapter: committed entries -> store_apply, snapshots ->
 * store_snapshot / store_restore. */
#ifndef TALLY_REPL_FSM_H_
#define TALLY_REPL_FSM_H_

#include <raft.h>
#include <stdbool.h>

#include "store/store.h"

#define FSM_RESULTS 1024

struct fsm {
    struct raft_fsm raft_fsm;   /* handed to raft_init */
    struct store *store;        /* borrowed */
    struct raft *raft;          /* set before raft_start */
    bool started;               /* raft_start returned: restores are installs */
    /* Results of recent applies by index, until node.c's request callback
     * takes its own (fsm_take_result) or FSM_RESULTS later applies reuse
     * the slot: libraft 0.22 fires request callbacks after the loop
     * iteration that applied them, possibly after further applies. */
    struct {
        uint64_t index;
        struct store_result *res;
    } results[FSM_RESULTS];
    void (*fatal)(void *arg, const char *why);
    void *fatal_arg;
    void (*exit_now)(int status); /* _exit; the simulation (test/sim) ends
                                   * only the simulated node instead */
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

/* The result of the entry at @index, now the caller's to free(), or NULL if
 * it is gone (taken already, or FSM_RESULTS entries were applied since). */
struct store_result *fsm_take_result(struct fsm *f, uint64_t index);

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
