/* Faults of test/sim (sim.h), chosen by the seed: crashes (with power
 * loss, torn tails, or a clean stop), partitions of one node or of one
 * link one way, message loss, latency (reordering), a stalled raft disk,
 * leadership transfer, a full disk; and the final heal. */
#include <stdio.h>
#include <string.h>

#include "sim.h"

void fault_step(struct sim *s, struct faults *f)
{
    struct world *w = s->w;
    if (f->full_node != 0 && f->full_until <= s->step) {
        sim_trace(s, "disk of node %u has space again", f->full_node);
        disk_set_full(NULL);
        f->full_node = 0;
    }
    /* Restart what is due (not on a full disk: it would exit again). */
    for (unsigned i = 0; i < SIM_NODES; i++) {
        struct sim_node *n = &s->nodes[i];
        if (!n->up && f->down_until[i] <= s->step && f->full_node != i + 1) {
            sim_trace(s, "restart node %u", i + 1);
            node_start(s, n, false);
        }
    }
    if (f->heal_at != 0 && f->heal_at <= s->step) {
        sim_trace(s, "heal the network");
        for (unsigned i = 0; i < SIM_NODES; i++) {
            for (unsigned j = 0; j < SIM_NODES; j++) {
                world_link(w, i, j, true);
            }
        }
        world_net(w, 0, 1, 10);
        f->heal_at = 0;
    }
    if (f->crash_pm == 0 && f->partition_pm == 0) {
        return; /* healing: no new fault */
    }
    unsigned r = (unsigned)world_range(w, 0, 999);
    unsigned down = 0;
    for (unsigned i = 0; i < SIM_NODES; i++) {
        down += !s->nodes[i].up;
    }
    if (r < f->crash_pm && down == 0) {
        /* One node at a time, so that a majority keeps its disk. */
        unsigned i = (unsigned)world_range(w, 0, SIM_NODES - 1);
        struct sim_node *ld = sim_leader(s);
        if (ld != NULL && world_chance(w, 50)) {
            i = ld->idx;
        }
        bool clean = world_chance(w, 25);
        bool power = world_chance(w, 50);
        bool tear = world_chance(w, 20);
        node_crash(s, &s->nodes[i], clean, power, tear);
        f->down_until[i] = s->step + (unsigned)world_range(w, 20, 600);
    } else if (r >= f->crash_pm && r < f->crash_pm + f->partition_pm && f->heal_at == 0) {
        unsigned i = (unsigned)world_range(w, 0, SIM_NODES - 1);
        unsigned kind = (unsigned)world_range(w, 0, 3);
        if (kind == 0) {
            sim_trace(s, "partition: node %u cut off", i + 1);
            for (unsigned j = 0; j < SIM_NODES; j++) {
                if (j != i) {
                    world_link(w, i, j, false);
                    world_link(w, j, i, false);
                }
            }
        } else if (kind == 1) {
            unsigned j = (i + 1 + (unsigned)world_range(w, 0, SIM_NODES - 2)) % SIM_NODES;
            sim_trace(s, "partition: one way, node %u -> node %u cut", i + 1, j + 1);
            world_link(w, i, j, false);
        } else if (kind == 2) {
            unsigned loss = (unsigned)world_range(w, 5, 40);
            sim_trace(s, "network: %u%% loss", loss);
            world_net(w, loss, 1, 10);
        } else {
            unsigned lat = (unsigned)world_range(w, 20, 400);
            sim_trace(s, "network: latency 1..%u ms (reordering)", lat);
            world_net(w, 0, 1, lat);
        }
        f->heal_at = s->step + (unsigned)world_range(w, 50, 800);
    } else if (r >= 600 && r < 630) {
        unsigned i = (unsigned)world_range(w, 0, SIM_NODES - 1);
        raft_time until = world_now(w) + world_range(w, 200, 3000);
        sim_trace(s, "disk of node %u stalls until t=%llu", i + 1, (unsigned long long)until);
        world_disk_stall(w, i, until);
    } else if (r >= 660 && r < 700 && f->full_node == 0 && down == 0) {
        /* tally's files and raft's log on one node run out of space: its
         * next apply that writes fails and the node exits (fsm.c); raft_uv
         * retries its writes (a stalled disk). */
        unsigned i = (unsigned)world_range(w, 0, SIM_NODES - 1);
        f->full_node = i + 1;
        f->full_until = s->step + (unsigned)world_range(w, 50, 400);
        disk_set_full(s->nodes[i].dir);
        world_disk_stall(w, i, world_now(w) + 3000);
        sim_trace(s, "disk of node %u full until step %u", i + 1, f->full_until);
    } else if (r >= 630 && r < 660) {
        struct sim_node *ld = sim_leader(s);
        if (ld != NULL) {
            int rv = raft_transfer(ld->raft, &ld->xfer, 0, NULL);
            sim_trace(s, "leadership transfer from node %u: %d", ld->idx + 1, rv);
        }
    }
}

/* The settle steps after which a cluster that has not settled is looked
 * at for the libraft stall below (the last 50,000 of 200,000). */
#define STALL_WINDOW_START 150000

/* libraft 0.22.1's known stall (docs/testing.md, "Open"): a follower that
 * is up and behind (the leader's match index for it is below the leader's
 * last index) gets only heartbeats: over the whole window the leader sent
 * it AppendEntries, none with entries, and no snapshot. Nothing in tally
 * or the simulated world stops a leader from sending entries it has. @why gets ": libraft stall: ..." naming the first such
 * follower, or "" when no follower is stuck that way. */
static void stall_signature(struct sim *s, struct sim_node *ld,
                            struct world_link_counts mark[SIM_NODES][SIM_NODES], char *why,
                            size_t n)
{
    why[0] = '\0';
    if (ld == NULL || ld->raft == NULL) {
        return;
    }
    raft_index leader_last = raft_last_index(ld->raft);
    for (unsigned i = 0; i < SIM_NODES; i++) {
        struct sim_node *fo = &s->nodes[i];
        raft_index match = 0;
        if (fo == ld || fo->raft == NULL ||
            raft_last_applied(fo->raft) >= raft_commit_index(ld->raft) ||
            raft_match_index(ld->raft, fo->id, &match) != 0) {
            continue;
        }
        struct world_link_counts now = world_sent(s->w, ld->idx, i), *was = &mark[ld->idx][i];
        uint64_t appends = now.appends - was->appends;
        raft_index last = world_persisted_last(s->w, i);
        sim_trace(s, "node %u behind: leader's match index %llu, its last log index %llu, "
                  "the leader's %llu; in the window %llu AppendEntries, %llu with entries, "
                  "%llu InstallSnapshot", i + 1, (unsigned long long)match,
                  (unsigned long long)last, (unsigned long long)leader_last,
                  (unsigned long long)appends,
                  (unsigned long long)(now.with_entries - was->with_entries),
                  (unsigned long long)(now.installs - was->installs));
        if (appends > 0 && now.with_entries == was->with_entries &&
            now.installs == was->installs && match < leader_last) {
            snprintf(why, n,
                     ": libraft stall: the leader's match index for node %u is %llu (its log "
                     "ends at %llu), below the leader's %llu, and it got %llu heartbeats and "
                     "no entries",
                     i + 1, (unsigned long long)match, (unsigned long long)last,
                     (unsigned long long)leader_last, (unsigned long long)appends);
            return;
        }
    }
}

/* Heal: every node up, the network whole, then let it settle and fill
 * its gaps. Bounded in steps. */
void heal_and_settle(struct sim *s, struct faults *f)
{
    sim_trace(s, "final: heal everything");
    for (unsigned i = 0; i < SIM_NODES; i++) {
        f->down_until[i] = 0;
    }
    f->full_until = 0;
    f->heal_at = s->step;
    f->crash_pm = 0;
    f->partition_pm = 0;
    for (unsigned i = 0; i < SIM_NODES; i++) {
        world_disk_stall(s->w, i, 0);
    }
    fault_step(s, f);
    unsigned settle = 0;
    struct world_link_counts mark[SIM_NODES][SIM_NODES];
    for (; settle < 200000 && s->violations == 0; settle++, s->step++) {
        sim_step(s);
        check_step(s);
        if (settle == STALL_WINDOW_START) {
            for (unsigned i = 0; i < SIM_NODES; i++) {
                for (unsigned j = 0; j < SIM_NODES; j++) {
                    mark[i][j] = world_sent(s->w, i, j);
                }
            }
        }
        if (settle % 500 == 499) {
            struct sim_node *ld = sim_leader(s);
            bool same = ld != NULL;
            for (unsigned i = 0; same && i < SIM_NODES; i++) {
                same = raft_last_applied(s->nodes[i].raft) == raft_commit_index(ld->raft) &&
                       raft_commit_index(ld->raft) == raft_last_applied(ld->raft);
            }
            if (same && !workload_busy()) {
                for (unsigned i = 0; i < SIM_NODES; i++) {
                    while (seam_backfill(s, &s->nodes[i])) {
                    }
                }
                break;
            }
        }
    }
    if (settle == 200000) {
        struct sim_node *ld = sim_leader(s);
        for (unsigned i = 0; i < SIM_NODES; i++) {
            sim_trace(s, "node %u: state %d applied %llu commit %llu persisted %llu, %llu "
                      "installs dropped by the guard (%u puts running)", i + 1,
                      raft_state(s->nodes[i].raft),
                      (unsigned long long)raft_last_applied(s->nodes[i].raft),
                      (unsigned long long)raft_commit_index(s->nodes[i].raft),
                      (unsigned long long)world_persisted_last(s->w, i),
                      (unsigned long long)s->nodes[i].guard.dropped, s->nodes[i].guard.taking);
        }
        char why[256];
        stall_signature(s, ld, mark, why, sizeof why);
        sim_violation(s, "the cluster did not settle after healing (leader: node %u)%s",
                      ld != NULL ? ld->idx + 1 : 0, why);
    }
}
