/* struct raft_fsm adapter: committed entries -> store_apply, snapshots ->
 * store_snapshot / store_restore. */
#ifndef TALLY_REPL_FSM_H_
#define TALLY_REPL_FSM_H_

#include <raft.h>
#include <stdbool.h>

#include "store/store.h"

struct fsm {
    struct raft_fsm raft_fsm;   /* handed to raft_init */
    struct store *store;        /* borrowed */
    struct raft *raft;          /* set before raft_start */
    bool started;               /* raft_start returned: restores are installs */
    struct store_result *last;  /* result of the latest apply, freed by the next */
    void (*fatal)(void *arg, const char *why);
    void *fatal_arg;
    bool failed;                /* a fatal error was reported */
};

/* Version 2 of raft_fsm (snapshot + finalize on the loop thread). The
 * snapshot is the small catalog (topics, offsets, members), so it is built
 * on the loop; the expensive part is the fsync of the logs that precedes it.
 * Issue 4 (keyed state in snapshots) moves it to version 3. */
void fsm_init(struct fsm *f, struct store *store, void (*fatal)(void *, const char *), void *arg);
void fsm_close(struct fsm *f);

/* Snapshot counters of this process (one node per process), for metrics. */
struct fsm_stats {
    uint64_t taken;          /* snapshots taken (fsm snapshot callback succeeded) */
    uint64_t installed;      /* snapshots installed from the leader */
    uint64_t last_bytes;     /* size of the latest snapshot taken */
    double last_seconds;     /* time its store_snapshot took (logs fsync included) */
};
const struct fsm_stats *fsm_stats(void);

#endif
