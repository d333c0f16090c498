/* Fixes, in the messages between raft and its io, for two libraft 0.22.1
 * bugs with snapshots, both found by the deterministic simulation
 * (test/sim; docs/raft.md section 2 has the rules, docs/testing.md the
 * seeds). Each stopped a node. (The third, an install during a take, is
 * snapguard.h's.)
 *
 * 1. To send a snapshot, raft reads it back (snapshot_get) and, when the
 *    read returns a newer snapshot than the one it asked for, takes the
 *    newer index but keeps the older term (legacyLoadSnapshotCb). The
 *    follower then stores the snapshot under the wrong term, and when the
 *    leader's entries disagree with that term at a committed index raft
 *    shuts the node down ("conflicting terms") and frees the message twice
 *    (abort). snapmsg remembers the index and term of the snapshot each
 *    read returned and sends an InstallSnapshot for that index with its
 *    term.
 *
 * 2. An AppendEntries whose previous entry lies before this node's
 *    snapshot and is no longer in its log is refused, the leader backs off
 *    to index 0, and raft then counts the entries it already holds in its
 *    snapshot as new ones (replication.c, "n_entries == n" is only an
 *    assert): it reads past the message's entries, SIGSEGV. Entries at or
 *    below this node's snapshot are committed and the leader's are the
 *    same (Raft's log matching), so snapmsg drops them from the message
 *    and anchors it at the snapshot's index and term, which raft accepts.
 *
 * Use: the raft_io's load, snapshot_put, snapshot_get and send go through
 * the snapmsg_* calls below, and its receive callback calls
 * snapmsg_recv first. */
#ifndef TALLY_REPL_SNAPMSG_H_
#define TALLY_REPL_SNAPMSG_H_

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

typedef int (*snapmsg_put_fn)(struct raft_io *io, unsigned trailing,
                                struct raft_io_snapshot_put *req,
                                const struct raft_snapshot *snapshot,
                                raft_io_snapshot_put_cb cb);
typedef int (*snapmsg_get_fn)(struct raft_io *io, struct raft_io_snapshot_get *req,
                                raft_io_snapshot_get_cb cb);
typedef int (*snapmsg_send_fn)(struct raft_io *io, struct raft_io_send *req,
                                 const struct raft_message *message, raft_io_send_cb cb);

struct snapmsg {
    raft_index index;     /* this node's latest stored snapshot (0: none) */
    raft_term term;
    raft_index read_index; /* the snapshot the latest snapshot_get returned */
    raft_term read_term;
    uint64_t retermed;    /* InstallSnapshot terms corrected (bug 1) */
    uint64_t anchored;    /* AppendEntries anchored at the snapshot (bug 2) */
};

/* After the raft_io's load() succeeded: @snapshot (may be NULL) is the
 * node's stored snapshot. */
void snapmsg_loaded(struct snapmsg *m, const struct raft_snapshot *snapshot);

/* Call @put (the wrapped method) for @req, noting the snapshot once it is
 * stored. Returns what @put returns; RAFT_NOMEM if the wrapper's request
 * cannot be allocated. */
int snapmsg_snapshot_put(struct snapmsg *m, snapmsg_put_fn put, struct raft_io *io,
                           unsigned trailing, struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb);

/* Call @get for @req, noting the index and term of what it returns. */
int snapmsg_snapshot_get(struct snapmsg *m, snapmsg_get_fn get, struct raft_io *io,
                           struct raft_io_snapshot_get *req, raft_io_snapshot_get_cb cb);

/* Call @send for @message, with an InstallSnapshot's term corrected. */
int snapmsg_send(struct snapmsg *m, snapmsg_send_fn send, struct raft_io *io,
                   struct raft_io_send *req, const struct raft_message *message,
                   raft_io_send_cb cb);

/* Before raft sees a received message: an AppendEntries may be rewritten
 * in place (its entries array and batch stay raft's to free, or are freed
 * here if none is left). */
void snapmsg_recv(struct snapmsg *m, struct raft_message *msg);

#endif
