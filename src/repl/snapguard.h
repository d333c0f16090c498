/* Guard against libraft 0.22.1's crash when an InstallSnapshot arrives
 * while the node is storing a snapshot it took itself.
 *
 * legacy.c of libraft 0.22.1 (and cowsql/raft's main branch as of this
 * writing) puts such an install on hold (snapshot_pending) and, when the
 * snapshot it was taking is stored (takeSnapshotCb), clears the pending
 * pointer before reading it: it then dereferences NULL and the process
 * dies with SIGSEGV. The deterministic simulation (test/sim, seed 20 of
 * its first run) found it; docs/raft.md section 2 has the rule.
 *
 * The guard counts the snapshot puts with trailing > 0 (snapshots taken
 * by this node; an install is a put with trailing 0) between their start
 * and their callback, and drops an InstallSnapshot message received
 * meanwhile, as the network could have: the leader sends the snapshot
 * again after its install-snapshot timeout.
 *
 * Use: the raft_io's snapshot_put goes through snapguard_snapshot_put,
 * and its receive callback asks snapguard_drop first. */
#ifndef TALLY_REPL_SNAPGUARD_H_
#define TALLY_REPL_SNAPGUARD_H_

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

typedef int (*snapguard_put_fn)(struct raft_io *io, unsigned trailing,
                                struct raft_io_snapshot_put *req,
                                const struct raft_snapshot *snapshot,
                                raft_io_snapshot_put_cb cb);

struct snapguard {
    unsigned taking;   /* puts of snapshots taken here, not yet called back */
    uint64_t dropped;  /* InstallSnapshot messages dropped so far */
};

/* Call @put (the wrapped raft_io's method) for @req, counting it while it
 * runs when @trailing > 0. Returns what @put returns; RAFT_NOMEM if the
 * wrapper's request cannot be allocated. */
int snapguard_snapshot_put(struct snapguard *g, snapguard_put_fn put, struct raft_io *io,
                           unsigned trailing, struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb);

/* True if @msg must not reach raft; the message's memory is then freed
 * here (raft would have owned it). */
bool snapguard_drop(struct snapguard *g, struct raft_message *msg);

#endif
