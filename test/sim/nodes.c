/* The simulated tally nodes (sim.h): start one over its data directory
 * with raft on the world's io (through tally's snapshot guard, as tallyd's
 * node.c wires it), crash or stop it, and find the leader. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "log/log.h"
#include "repl/snapguard.h"
#include "repl/snapmsg.h"
#include "sim.h"

/* The raft_io of each node goes through tally's snapshot guards, as
 * tallyd's node.c wires them (repl/snapguard.h: an install during a take;
 * repl/snapmsg.h: two message fixes); --no-snapguard leaves both out, to
 * show the crashes they prevent. */
bool sim_use_snapguard = true;
static struct sim *cur_sim;

static struct sim_node *node_of(struct raft_io *io)
{
    for (unsigned i = 0; i < SIM_NODES; i++) {
        if (cur_sim->nodes[i].io == io) {
            return &cur_sim->nodes[i];
        }
    }
    abort();
}

/* Takes through snapguard, installs straight on (node.c's rule). */
static int node_guarded_put(struct raft_io *io, unsigned trailing,
                            struct raft_io_snapshot_put *req, const struct raft_snapshot *snap,
                            raft_io_snapshot_put_cb cb)
{
    struct sim_node *n = node_of(io);
    if (trailing == 0) {
        return n->io_snapshot_put(io, trailing, req, snap, cb);
    }
    return snapguard_put_take(&n->guard, n->io_snapshot_put, io, trailing, req, snap, cb);
}

static int node_snapshot_put(struct raft_io *io, unsigned trailing,
                             struct raft_io_snapshot_put *req, const struct raft_snapshot *snap,
                             raft_io_snapshot_put_cb cb)
{
    struct sim_node *n = node_of(io);
    return snapmsg_snapshot_put(&n->msgfix, node_guarded_put, io, trailing, req, snap, cb);
}

static void node_recv(struct raft_io *io, struct raft_message *msg)
{
    struct sim_node *n = node_of(io);
    uint64_t anchored = n->msgfix.anchored, held = n->guard.installs_held;
    snapmsg_recv(&n->msgfix, msg);
    if (n->msgfix.anchored != anchored) {
        sim_trace(cur_sim, "node %u: AppendEntries anchored at its snapshot (snapmsg)",
                  n->idx + 1);
    }
    snapguard_recv(&n->guard, msg);
    if (n->guard.installs_held != held) {
        sim_trace(cur_sim, "node %u: InstallSnapshot held during a take (snapguard)", n->idx + 1);
    }
}

static int node_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                             raft_io_snapshot_get_cb cb)
{
    struct sim_node *n = node_of(io);
    return snapmsg_snapshot_get(&n->msgfix, n->io_snapshot_get, io, req, cb);
}

static int node_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m,
                     raft_io_send_cb cb)
{
    struct sim_node *n = node_of(io);
    return snapmsg_send(&n->msgfix, n->io_send, io, req, m, cb);
}

static int node_load(struct raft_io *io, raft_term *term, raft_id *vote,
                     struct raft_snapshot **snapshot, raft_index *start, struct raft_entry **entries,
                     size_t *n_entries)
{
    struct sim_node *n = node_of(io);
    int rv = n->io_load(io, term, vote, snapshot, start, entries, n_entries);
    if (rv == 0) {
        snapmsg_loaded(&n->msgfix, *snapshot);
    }
    return rv;
}

static int node_io_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                         raft_io_recv_cb recv)
{
    struct sim_node *n = node_of(io);
    snapguard_init(&n->guard, io, recv);
    return n->io_start(io, msecs, tick, node_recv);
}

/* With --trace, every apply is printed: the node, the index, and where
 * each item of an APPEND went. */
static int (*fsm_apply_real)(struct raft_fsm *, const struct raft_buffer *, void **);

static int node_apply_traced(struct raft_fsm *rf, const struct raft_buffer *buf, void **result)
{
    struct fsm *f = rf->data;
    uint64_t index = raft_last_applied(f->raft) + 1;
    int rv = fsm_apply_real(rf, buf, result);
    struct store_result *res = f->results[index % FSM_RESULTS].index == index
                                   ? f->results[index % FSM_RESULTS].res
                                   : NULL;
    for (unsigned i = 0; i < SIM_NODES; i++) {
        if (&cur_sim->nodes[i].fsm == f && res != NULL) {
            char what[256] = "";
            size_t used = 0;
            for (uint32_t k = 0; k < res->n && used < sizeof what - 48; k++) {
                used += (size_t)snprintf(what + used, sizeof what - used, " [%d%s @%llu+%u]",
                                         res->items[k].code, res->items[k].duplicate ? " dup" : "",
                                         (unsigned long long)res->items[k].base_offset,
                                         res->items[k].count);
            }
            sim_trace(cur_sim, "node %u applied %llu:%s", i + 1, (unsigned long long)index, what);
        }
    }
    return rv;
}

/* tallyd exits here (fsm.c, after a failed apply); the simulated node's
 * process ends: back to sim_step, which takes the node down. */
static void node_fatal(void *arg, const char *why)
{
    struct sim_node *n = arg;
    cur_sim->exiting = n->idx + 1;
    snprintf(cur_sim->exit_why, sizeof cur_sim->exit_why, "%s", why);
}

static void node_exit_now(int status)
{
    (void)status;
    if (!cur_sim->in_step) {
        /* Only raft's callbacks apply or restore; anything else is a bug
         * of the simulator: end the run (reported as a crashed seed). */
        fprintf(stderr, "sim: node %u exited outside a step: %s\n", cur_sim->exiting,
                cur_sim->exit_why);
        abort();
    }
    longjmp(cur_sim->exit_jmp, 1);
}

bool sim_step(struct sim *s)
{
    if (setjmp(s->exit_jmp) != 0) {
        struct sim_node *n = &s->nodes[s->exiting - 1];
        s->in_step = false;
        s->exiting = 0;
        sim_trace(s, "node %u exited (status 1): %s", n->idx + 1, s->exit_why);
        /* Its raft instance stays as the process left it (leaked, as the
         * process's memory would be gone): nothing calls into it again. */
        world_abandon_io(s->w, n->idx);
        if (sim_use_snapguard) {
            snapguard_close(&n->guard); /* messages it held die with the process */
        }
        /* It stopped inside an operation that failed half way (a snapshot
         * install's log reset, say): like a torn file, its checkpoints
         * may count records its logs lost; the next restore repairs it. */
        n->torn = true;
        n->raft = NULL;
        n->up = false;
        workload_exited(s, n);
        node_compact_drop(n);
        fsm_close(&n->fsm);
        store_close(n->store);
        n->store = NULL;
        n->up = false;
        return true;
    }
    s->in_step = true;
    bool stepped = world_step(s->w);
    s->in_step = false;
    return stepped;
}

static void node_raft_closed(struct raft *r)
{
    free(r);
}

void node_start(struct sim *s, struct sim_node *n, bool bootstrap)
{
    char errmsg[ERR_MSG_SIZE] = "";
    struct log_config lc;
    cur_sim = s;
    log_config_init(&lc);
    lc.segment_bytes = 4096; /* many segments: rolls, retention, compaction */
    int rv = store_open(n->dir, &lc, &n->store, errmsg);
    if (rv != 0) {
        sim_violation(s, "node %u: store_open: %s", n->idx + 1, errmsg);
        return;
    }
    check_open(s, n);
    fsm_init(&n->fsm, n->store, node_fatal, n);
    n->fsm.exit_now = node_exit_now;
    if (s->trace) {
        fsm_apply_real = n->fsm.raft_fsm.apply;
        n->fsm.raft_fsm.apply = node_apply_traced;
    }
    n->raft = calloc(1, sizeof *n->raft);
    struct raft_io *io = world_io(s->w, n->idx);
    n->io = io;
    memset(&n->guard, 0, sizeof n->guard);
    memset(&n->msgfix, 0, sizeof n->msgfix);
    if (sim_use_snapguard) {
        n->io_snapshot_put = io->snapshot_put;
        io->snapshot_put = node_snapshot_put;
        n->io_start = io->start;
        io->start = node_io_start;
        n->io_snapshot_get = io->snapshot_get;
        io->snapshot_get = node_snapshot_get;
        n->io_send = io->send;
        io->send = node_send;
        n->io_load = io->load;
        io->load = node_load;
    }
    rv = raft_init(n->raft, io, &n->fsm.raft_fsm, n->id, n->addr);
    if (rv != 0) {
        sim_violation(s, "node %u: raft_init: %s", n->idx + 1, raft_strerror(rv));
        return;
    }
    n->fsm.raft = n->raft;
    raft_set_election_timeout(n->raft, 1000);
    raft_set_heartbeat_timeout(n->raft, 100);
    raft_set_install_snapshot_timeout(n->raft, 10000); /* as node.c */
    raft_set_snapshot_threshold(n->raft, s->snapshot_threshold);
    raft_set_snapshot_trailing(n->raft, s->snapshot_trailing);
    raft_set_pre_vote(n->raft, true);
    raft_set_capacity_threshold(n->raft, 0);
    if (bootstrap) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        for (unsigned i = 0; i < SIM_NODES; i++) {
            raft_configuration_add(&conf, s->nodes[i].id, s->nodes[i].addr, RAFT_VOTER);
        }
        rv = raft_bootstrap(n->raft, &conf);
        raft_configuration_close(&conf);
        if (rv != 0) {
            sim_violation(s, "node %u: bootstrap: %s", n->idx + 1, raft_strerror(rv));
        }
    }
    world_attach(s->w, n->idx, n->raft);
    rv = raft_start(n->raft);
    if (rv != 0) {
        sim_violation(s, "node %u: raft_start: %s", n->idx + 1, raft_strerror(rv));
        return;
    }
    n->fsm.started = true;
    n->up = true;
    n->last_digest_index = 0;
}

void node_compact_drop(struct sim_node *n)
{
    if (n->job != NULL) {
        store_compact_cancel(n->job);
        store_compact_free(n->job);
        n->job = NULL;
        n->job_stage = 0;
    }
}

/* SIGKILL, optionally with power loss (unsynced bytes of tally's files go)
 * and torn or flipped tails (the fault suite's "corrupt"). Raft's
 * requests not yet durable are lost (world.h). */
void node_crash(struct sim *s, struct sim_node *n, bool clean, bool power, bool tear)
{
    char errmsg[ERR_MSG_SIZE] = "";
    sim_trace(s, "%s node %u%s%s", clean ? "stop (SIGTERM)" : "crash", n->idx + 1,
              power ? " (power loss)" : "", tear ? " (torn tail)" : "");
    raft_close(n->raft, node_raft_closed);
    world_crash_io(s->w, n->idx);
    if (sim_use_snapguard) {
        snapguard_close(&n->guard);
    }
    n->raft = NULL;
    node_compact_drop(n);
    fsm_close(&n->fsm);
    /* tallyd's clean shutdown: raft first, then the final checkpoint
     * (server/srv.c), so its checkpoints count every record. */
    if (clean && store_checkpoint(n->store, errmsg) != 0) {
        /* (a full disk: tallyd logs it and exits 1, files as they are) */
        sim_trace(s, "node %u: final checkpoint: %s", n->idx + 1, errmsg);
    }
    store_close(n->store);
    n->store = NULL;
    n->up = false;
    if (power) {
        disk_power_loss(s, n->dir);
    }
    if (tear) {
        disk_tear_tail(s, n->dir);
        n->torn = true;
    }
}

struct sim_node *sim_leader(struct sim *s)
{
    struct sim_node *best = NULL;
    for (unsigned i = 0; i < SIM_NODES; i++) {
        struct sim_node *n = &s->nodes[i];
        if (n->up && raft_state(n->raft) == RAFT_LEADER &&
            (best == NULL || raft_current_term(n->raft) > raft_current_term(best->raft))) {
            best = n;
        }
    }
    return best;
}
