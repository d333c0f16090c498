/* Holds back a leader's InstallSnapshot while this node takes its own
 * snapshot: a workaround for a libraft 0.22.1 bug (docs/raft.md, "A snapshot
 * install that arrives during a take").
 *
 * raft parks an install that arrives while a take is in flight, and when the
 * take completes it means to start the parked install but dereferences NULL
 * instead (the node dies by SIGSEGV); a take that fails leaves the install
 * parked for good. Both sides pass through the raft_io: a take is a
 * snapshot_put with trailing > 0, and messages reach raft through the
 * receive callback. So the guard keeps raft from ever parking an install:
 * from the first InstallSnapshot that arrives during a take, it holds every
 * message, in arrival order, until the take has completed, then hands them
 * to raft. A held message is only delayed, as by the network. */
#ifndef TALLY_REPL_SNAPGUARD_H
#define TALLY_REPL_SNAPGUARD_H

#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Messages held at most; later ones are dropped (raft resends). */
#define SNAPGUARD_MAX_HELD 4096

struct snapguard {
    raft_io_recv_cb deliver;            /* raft's receive callback */
    struct raft_io *io;                 /* the io raft receives from */
    bool taking;                        /* a take is in flight */
    struct raft_io_snapshot_put take;   /* passed to the io in raft's place */
    struct raft_io_snapshot_put *raft_req;
    raft_io_snapshot_put_cb raft_cb;
    struct raft_message *held;          /* held[head..n_held) wait, in order */
    size_t head, n_held, cap;
    uint64_t installs_held;             /* count, for the log and tests */
    uint64_t dropped;
};

typedef int (*snapguard_put_fn)(struct raft_io *, unsigned, struct raft_io_snapshot_put *,
                                const struct raft_snapshot *, raft_io_snapshot_put_cb);

void snapguard_init(struct snapguard *g, struct raft_io *io, raft_io_recv_cb deliver);

/* A message from the io: handed to raft now, or held. */
void snapguard_recv(struct snapguard *g, struct raft_message *msg);

/* A take (trailing > 0) that raft asks the io for; @put is the io's method. */
int snapguard_put_take(struct snapguard *g, snapguard_put_fn put, struct raft_io *io,
                       unsigned trailing, struct raft_io_snapshot_put *req,
                       const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb);

/* Frees the messages still held (the node is closing). */
void snapguard_close(struct snapguard *g);

#endif
