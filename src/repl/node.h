/* The Raft node: canonical/raft with raft_uv and the NODELAY TCP transport
 * on one libuv loop; bootstrap, leadership tracking, proposals, membership.
 * Knows nothing of the wire format: callers hand it encoded store commands.
 *
 * Every function runs on the loop thread (canonical/raft is not
 * thread-safe). */
#ifndef TALLY_REPL_NODE_H_
#define TALLY_REPL_NODE_H_

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "lib/byte.h"
#include "lib/tls.h"
#include "repl/ident.h"
#include "store/store.h"

#define NODE_MAX_PEERS 16

struct node_peer {
    uint64_t id;
    char raft_addr[64];
};

struct node_config {
    uint64_t id;
    char raft_addr[64];
    char raft_dir[4096];          /* canonical/raft's own directory */
    struct node_peer peers[NODE_MAX_PEERS]; /* bootstrap configuration */
    unsigned n_peers;
    bool bootstrap;               /* form the cluster if the dir is empty */
    unsigned election_timeout_ms;
    unsigned heartbeat_timeout_ms;
    uint64_t segment_bytes;       /* raft_uv segment size */
    unsigned snapshot_threshold;  /* 0: both from log_budget_bytes (below) */
    unsigned snapshot_trailing;
    uint64_t log_budget_bytes;    /* memory for Raft's in-memory log */
    /* Identity (repl/ident.h): the hello of every Raft connection carries
     * it; the cluster id is written back to DATA/identity once known. */
    char data_dir[4096];
    struct ident ident;
    /* Mutual TLS on the Raft links (transport_set_tls), or NULL: borrowed
     * until the node is closed; its contexts may be swapped meanwhile. */
    const struct tls_set *tls;
};

struct node;

enum node_role { NODE_UNAVAILABLE = 0, NODE_FOLLOWER, NODE_CANDIDATE, NODE_LEADER };

struct node_events {
    void *arg;
    /* The role changed (also from leader to not leader: in-flight
     * proposals then complete with TALLY_LEADERSHIP_LOST by themselves). */
    void (*role_changed)(void *arg, int old_role, int new_role);
    /* Entries up to @index are applied (wake waiters on an index). */
    void (*applied)(void *arg, uint64_t index);
    /* The node cannot go on (Raft unavailable, a disk failure in apply):
     * the process should exit non-zero. @why is a message. */
    void (*fatal)(void *arg, const char *why);
};

/* Create the node on @loop with the state machine @store (borrowed for the
 * node's life). Bootstraps when asked and the directory holds no Raft
 * state, then starts Raft (which restores the latest snapshot and replays
 * the log). Returns 0 or TALLY_* with @errmsg. */
int node_create(uv_loop_t *loop, const struct node_config *cfg, struct store *store,
                const struct node_events *events, struct node **out, char *errmsg);

/* Disaster recovery (the majority is lost for good; docs/operations.md):
 * offline, with no tallyd running on the directory, append to the Raft log
 * in @cfg->raft_dir a configuration whose only voter is this node (@cfg->id
 * at @cfg->raft_addr), through raft_recover, and return. Started normally
 * afterwards, the node elects itself and serves alone; other nodes join
 * with a membership change. TALLY_NOTFOUND if the directory holds no Raft
 * state (nothing to recover). Runs its own loop; no other loop is needed. */
int node_recover(const struct node_config *cfg, char *errmsg);

/* Close: pending proposals complete with an error, then @cb(arg) runs when
 * every handle is closed and the node memory is freed. */
void node_close(struct node *n, void (*cb)(void *arg), void *arg);

int node_role(struct node *n);
/* Leader and its barrier of the current term has applied: safe to serve. */
bool node_ready(struct node *n);
uint64_t node_id(struct node *n);
uint64_t node_leader_id(struct node *n);
uint64_t node_term(struct node *n);
uint64_t node_commit_index(struct node *n);
/* The cluster's commit index as far as this node knows: the leader's own;
 * on any other node the highest leader commit index an AppendEntries
 * carried (heartbeats included), or its own commit index if higher. A
 * catching-up follower's own commit index never passes what it has
 * stored, so this is the one to measure its lag by. */
uint64_t node_leader_commit_index(struct node *n);
uint64_t node_applied_index(struct node *n);
uint64_t node_last_index(struct node *n);
/* How long the oldest pending write of the Raft log has waited without
 * any write completing, in ms (0: none pending). raft_uv retries failed
 * writes (full disk, I/O error) without reporting them. */
uint64_t node_write_stalled_ms(struct node *n);

/* Current Raft configuration: fills up to @cap members; returns the count. */
struct node_member {
    uint64_t id;
    char raft_addr[64];
    bool voter;
    bool spare; /* neither voting nor sent the log (an add cut short) */
};
unsigned node_members(struct node *n, struct node_member *out, unsigned cap);

/* Completion of a proposal: @status 0 and @res the store's result (borrowed:
 * valid only during the callback), or a TALLY_* code with @res NULL:
 * TALLY_LEADERSHIP_LOST when the outcome is unknown. */
typedef void (*node_propose_cb)(void *arg, int status, uint64_t index,
                                const struct store_result *res);

/* Propose one encoded command. @entry's data must have been allocated with
 * malloc (it is handed to raft, whose default heap is malloc) and its
 * length padded to 8 bytes; on 0 the buffer is taken (entry is reset). On
 * error nothing was appended: TALLY_NOTLEADER, TALLY_NOMEM. */
int node_propose(struct node *n, struct buf *entry, node_propose_cb cb, void *arg);

/* Membership (leader only). @cb(arg, status) with a TALLY_* status.
 * node_add_standby adds a node that is sent the log but does not vote;
 * node_promote makes a member a voter (Raft first catches it up; done at
 * once if it is one already). */
typedef void (*node_done_cb)(void *arg, int status, const char *message);
int node_add_standby(struct node *n, uint64_t id, const char *raft_addr, node_done_cb cb,
                     void *arg);
int node_promote(struct node *n, uint64_t id, node_done_cb cb, void *arg);
/* The Raft address of member @id when it is not @raft_addr (another node
 * under that id: an add must be refused), else NULL. */
const char *node_member_elsewhere(struct node *n, uint64_t id, const char *raft_addr);
int node_remove(struct node *n, uint64_t id, node_done_cb cb, void *arg);
int node_transfer(struct node *n, uint64_t id, node_done_cb cb, void *arg);

/* Linearizable reads: confirm that this node still leads (a Raft barrier
 * in the current term, committed by a majority), then @cb(arg, 0, applied
 * index), which covers every write acknowledged before the call; or a
 * TALLY_* status (TALLY_NOTLEADER, TALLY_LEADERSHIP_LOST). */
typedef void (*node_index_cb)(void *arg, int status, uint64_t index);
int node_read_index(struct node *n, node_index_cb cb, void *arg);

/* A problem with this node's identity (refused peers, a data directory
 * the cluster does not know as this node's), or NULL. */
const char *node_identity_problem(struct node *n);

/* Map a RAFT_* code to a TALLY_* code. */
int node_map_error(int raft_code);

#endif
