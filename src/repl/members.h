/* The cluster's membership as this node's Raft storage holds it.
 *
 * libraft 0.22.1 has no accessor for the configuration (it is a field of
 * struct raft, whose layout is not a stable interface). Every configuration
 * raft acts on passes through its I/O interface first: the snapshot and the
 * entries that load() returns at start, each RAFT_CHANGE entry that
 * append() writes, the entries that truncate() removes, and the snapshot
 * that snapshot_put() installs from the leader. members_track() wraps
 * those four methods of a raft_io and keeps the configuration of the
 * newest RAFT_CHANGE entry still in the log, which is the one raft uses
 * (Raft applies a configuration as soon as it is appended, before it is
 * committed). docs/raft.md describes the rule. */
#ifndef TALLY_REPL_MEMBERS_H
#define TALLY_REPL_MEMBERS_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

/* Configuration changes remembered above the base: raft allows one
 * uncommitted change at a time, and only uncommitted entries are ever
 * truncated, so older ones can be folded into the base. */
#define MEMBERS_KEPT 8

struct members {
    struct raft_io io; /* raft_uv's, with four methods wrapped; first member */
    /* The wrapped methods of io. */
    int (*load)(struct raft_io *, raft_term *, raft_id *, struct raft_snapshot **,
                raft_index *, struct raft_entry **, size_t *);
    int (*append)(struct raft_io *, struct raft_io_append *, const struct raft_entry[],
                  unsigned, raft_io_append_cb);
    int (*truncate)(struct raft_io *, raft_index);
    int (*snapshot_put)(struct raft_io *, unsigned, struct raft_io_snapshot_put *,
                        const struct raft_snapshot *, raft_io_snapshot_put_cb);
    raft_index next_index; /* index of the next entry append() writes */
    struct raft_configuration base; /* from the snapshot, or folded changes */
    raft_index base_index;
    struct {
        raft_index index;
        struct raft_configuration conf;
    } changes[MEMBERS_KEPT];
    unsigned n_changes;
    bool failed; /* a configuration could not be decoded or copied */
};

/* Wrap load, append, truncate and snapshot_put of m->io, which
 * raft_uv_init has just set up. Call before anything else wraps m->io. */
void members_track(struct members *m);

void members_close(struct members *m);

/* The newest configuration and the index of its entry (0 when it came
 * from a snapshot taken before any change was seen), or NULL before
 * load(). */
const struct raft_configuration *members_current(const struct members *m, uint64_t *index);

#endif
