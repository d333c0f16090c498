/* Guards around three bugs of libraft 0.22.1 with snapshots, all found by
 * the deterministic simulation (test/sim; docs/raft.md section 2 has the
 * rules, docs/testing.md the seeds). Each would stop or corrupt a node:
 *
 * 1. An InstallSnapshot that arrives while the node stores a snapshot it
 *    took itself is put on hold, and when that put completes legacy.c
 *    (takeSnapshotCb) clears the pending pointer before reading it: NULL
 *    dereference, SIGSEGV. The guard counts the puts with trailing > 0
 *    between their start and their callback and drops an InstallSnapshot
 *    received meanwhile, as the network could have; the leader sends it
 *    again after its install-snapshot timeout.
 *
 * 2. To send a snapshot, raft reads it back (snapshot_get) and, when the
 *    read returns a newer snapshot than the one it asked for, takes the
 *    newer index but keeps the older term (legacyLoadSnapshotCb). The
 *    follower then stores the snapshot under the wrong term, and when the
 *    leader's entries disagree with that term at a committed index raft
 *    shuts the node down ("conflicting terms") and frees the message twice
 *    (abort). The guard remembers the index and term of the snapshot each
 *    read returned and sends an InstallSnapshot for that index with its
 *    term.
 *
 * 3. An AppendEntries whose previous entry lies before this node's
 *    snapshot and is no longer in its log is refused, the leader backs off
 *    to index 0, and raft then counts the entries it already holds in its
 *    snapshot as new ones (replication.c, "n_entries == n" is only an
 *    assert): it reads past the message's entries, SIGSEGV. Entries at or
 *    below this node's snapshot are committed and the leader's are the
 *    same (Raft's log matching), so the guard drops them from the message
 *    and anchors it at the snapshot's index and term, which raft accepts.
 *
 * Use: the raft_io's load, snapshot_put, snapshot_get and send go through
 * the snapguard_* calls below, and its receive callback calls
 * snapguard_recv first. */
#ifndef TALLY_REPL_SNAPGUARD_H_
#define TALLY_REPL_SNAPGUARD_H_

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

typedef int (*snapguard_put_fn)(struct raft_io *io, unsigned trailing,
                                struct raft_io_snapshot_put *req,
                                const struct raft_snapshot *snapshot,
                                raft_io_snapshot_put_cb cb);
typedef int (*snapguard_get_fn)(struct raft_io *io, struct raft_io_snapshot_get *req,
                                raft_io_snapshot_get_cb cb);
typedef int (*snapguard_send_fn)(struct raft_io *io, struct raft_io_send *req,
                                 const struct raft_message *message, raft_io_send_cb cb);

struct snapguard {
    unsigned taking;      /* puts of snapshots taken here, not yet called back */
    raft_index index;     /* this node's latest stored snapshot (0: none) */
    raft_term term;
    raft_index read_index; /* the snapshot the latest snapshot_get returned */
    raft_term read_term;
    uint64_t dropped;     /* InstallSnapshot messages dropped (bug 1) */
    uint64_t retermed;    /* InstallSnapshot terms corrected (bug 2) */
    uint64_t anchored;    /* AppendEntries anchored at the snapshot (bug 3) */
};

/* After the raft_io's load() succeeded: @snapshot (may be NULL) is the
 * node's stored snapshot. */
void snapguard_loaded(struct snapguard *g, const struct raft_snapshot *snapshot);

/* Call @put (the wrapped method) for @req, tracking it. Returns what @put
 * returns; RAFT_NOMEM if the wrapper's request cannot be allocated. */
int snapguard_snapshot_put(struct snapguard *g, snapguard_put_fn put, struct raft_io *io,
                           unsigned trailing, struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb);

/* Call @get for @req, noting the index and term of what it returns. */
int snapguard_snapshot_get(struct snapguard *g, snapguard_get_fn get, struct raft_io *io,
                           struct raft_io_snapshot_get *req, raft_io_snapshot_get_cb cb);

/* Call @send for @message, with an InstallSnapshot's term corrected. */
int snapguard_send(struct snapguard *g, snapguard_send_fn send, struct raft_io *io,
                   struct raft_io_send *req, const struct raft_message *message,
                   raft_io_send_cb cb);

/* Before raft sees a received message: false if it must not reach raft
 * (its memory is then freed here); an AppendEntries may be rewritten in
 * place. */
bool snapguard_recv(struct snapguard *g, struct raft_message *msg);

#endif
