/* Shared declarations of the deterministic simulation (test/sim): the
 * simulated tally nodes, the history the workload records, and the checks.
 * docs/testing.md, "Simulation", says how to run and replay it. */
#ifndef TALLY_SIM_SIM_H_
#define TALLY_SIM_SIM_H_

#include <limits.h>
#include <setjmp.h>
#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

#include "repl/fsm.h"
#include "repl/snapguard.h"
#include "repl/snapmsg.h"
#include "store/store.h"
#include "world.h"

#define SIM_NODES 3
#define SIM_KEYS 3            /* hot keys of the conditional writers */
#define SIM_MAX_VALUES 20000  /* values a run can write (bounded by steps) */

/* One tally node: tallyd's FSM adapter, store and logs over its own data
 * directory, with raft on the world's simulated io. */
struct sim_node {
    unsigned idx;
    raft_id id;
    char addr[16];
    char dir[PATH_MAX];
    bool up;
    struct raft *raft;        /* NULL while down */
    struct fsm fsm;
    struct store *store;
    bool torn;                /* its files were torn or flipped, or it exited
                               * half way through an operation, since an
                               * open last found no damage: damage is
                               * expected */
    struct store_compaction *job; /* compaction seam: prepared, not finished */
    int job_stage;            /* 1 prepared, 2 run */
    uint64_t last_digest_index;
    struct raft_transfer xfer; /* leadership transfer request (one at a time) */
    struct raft_io *io;       /* the world's io for this node */
    struct snapguard guard;   /* as tallyd's node.c wraps its raft_io */
    struct snapmsg msgfix;
    snapguard_put_fn io_snapshot_put;
    snapmsg_get_fn io_snapshot_get;
    snapmsg_send_fn io_send;
    int (*io_load)(struct raft_io *, raft_term *, raft_id *, struct raft_snapshot **,
                   raft_index *, struct raft_entry **, size_t *);
    int (*io_start)(struct raft_io *, unsigned, raft_io_tick_cb, raft_io_recv_cb);
    raft_io_recv_cb raft_recv;
};

/* One value written by the workload, and what its writer was told. */
enum { V_PENDING = 0, V_OK, V_FAIL, V_UNKNOWN };
struct sim_value {
    char text[24];
    int topic;                /* 0 events, 1 accounts */
    int key;                  /* accounts: hot key, -1 none */
    uint64_t expect;          /* accounts: the version it was conditioned on */
    int state;
    uint64_t offset;          /* V_OK: where it went */
};

struct sim {
    uint64_t seed;
    unsigned steps;
    bool trace;
    struct world *w;
    char root[PATH_MAX];
    struct sim_node nodes[SIM_NODES];
    struct sim_value *values;
    unsigned n_values;
    unsigned step;
    unsigned violations;
    char first_violation[512];
    unsigned snapshot_threshold, snapshot_trailing;
    jmp_buf exit_jmp;         /* sim_step: a node's process ended (fsm exit) */
    unsigned exiting;         /* 1 + index of that node */
    bool in_step;             /* inside sim_step: exit_jmp is valid */
    char exit_why[256];
};

/* Record a violation (and print it when tracing). */
void sim_violation(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* nodes.c: tally nodes. sim_use_snapguard: tally's snapshot guard
 * (repl/snapguard.h) sits on each node's raft_io, as in tallyd
 * (--no-snapguard clears it to show what it prevents). */
extern bool sim_use_snapguard;
void node_start(struct sim *s, struct sim_node *n, bool bootstrap);
/* SIGKILL, or with @clean tallyd's clean shutdown (raft closed, final
 * checkpoint); @power: a power loss (disk.c); @tear: a torn or flipped
 * tail (disk.c). Raft's requests not yet durable are lost (world.h). */
void node_crash(struct sim *s, struct sim_node *n, bool clean, bool power, bool tear);
/* One world step. A node whose fsm ends its process (a failed apply:
 * tallyd exits 1, repl/fsm.c) is taken down here as that process would
 * be: its raft abandoned where it stood, its store closed as it lies. */
bool sim_step(struct sim *s);
/* Drop a compaction job prepared or run but not finished. */
void node_compact_drop(struct sim_node *n);
/* The up node that leads with the highest term, or NULL. */
struct sim_node *sim_leader(struct sim *s);

/* workload.c: one client action on the leader (none without one). */
void workload_reset(struct sim *s);
void workload(struct sim *s);
bool workload_busy(void);      /* a proposal awaits its answer */
/* Node @n's process ended: its proposals' clients hear nothing. */
void workload_exited(struct sim *s, struct sim_node *n);
unsigned workload_proposals(void);

/* seams.c: compaction in three steps (prepare, run, finish: one per call),
 * and one backfill of a missing range from a peer's files (true if one
 * was filled). */
void seam_compact(struct sim *s, struct sim_node *n);
bool seam_backfill(struct sim *s, struct sim_node *n);

/* faults.c */
struct faults {
    unsigned crash_pm;              /* per mille of fault steps that crash a node */
    unsigned partition_pm;          /* per mille that cut links or degrade the network */
    unsigned down_until[SIM_NODES]; /* step at which a down node restarts */
    unsigned heal_at;               /* step at which the network heals, 0: whole */
    unsigned full_node;             /* 1 + index of the node whose disk is full */
    unsigned full_until;            /* step at which it has space again */
};
/* Restart what is due, heal what is due, maybe inject one fault. */
void fault_step(struct sim *s, struct faults *f);
/* Every node up, the network whole, raft's disks free; step until the
 * cluster has settled and every node has backfilled (bounded). */
void heal_and_settle(struct sim *s, struct faults *f);

/* check.c: after every step, replicas at the same applied index agree. */
void check_step(struct sim *s);
/* check.c: a node just reopened its store from disk. */
void check_open(struct sim *s, struct sim_node *n);
/* check.c: the end of a run, every node up and caught up. */
void check_final(struct sim *s);

/* disk.c: forget what was synced (a new seed: runs must not depend on the
 * seeds before them in the same process). */
void disk_reset(void);
/* disk.c: writes under @dir fail with ENOSPC from now on (NULL: none). */
void disk_set_full(const char *dir);
bool disk_is_full(const char *dir);
/* disk.c: power loss in @dir: every file loses a seeded part of what was
 * written since its last fsync (everything, if it was never synced). */
void disk_power_loss(struct sim *s, const char *dir);
/* disk.c: the fault suite's "corrupt": cut 1-400 bytes off, or flip one bit
 * in the last 300 bytes of, the active segment of one topic. */
void disk_tear_tail(struct sim *s, const char *dir);

#endif
