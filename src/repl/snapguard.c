/* Holding a leader's InstallSnapshot while a take is in flight; why is in
 * snapguard.h and docs/raft.md. */
#include "repl/snapguard.h"

#include <stdlib.h>
#include <string.h>

#include "lib/logger.h"

void snapguard_init(struct snapguard *g, struct raft_io *io, raft_io_recv_cb deliver)
{
    memset(g, 0, sizeof *g);
    g->io = io;
    g->deliver = deliver;
}

/* The memory a received message owns (raft_uv hands it to the receiver). */
static void snapguard__free(struct raft_message *m)
{
    if (m->type == RAFT_APPEND_ENTRIES) {
        if (m->append_entries.n_entries > 0) {
            raft_free(m->append_entries.entries[0].batch);
        }
        raft_free(m->append_entries.entries);
    } else if (m->type == RAFT_INSTALL_SNAPSHOT) {
        raft_configuration_close(&m->install_snapshot.conf);
        raft_free(m->install_snapshot.data.base);
    }
}

static bool snapguard__hold(struct snapguard *g, struct raft_message *msg)
{
    if (g->head > 0 && g->head == g->n_held) {
        g->head = g->n_held = 0;
    }
    if (g->n_held - g->head >= SNAPGUARD_MAX_HELD) {
        return false;
    }
    if (g->n_held == g->cap) {
        if (g->head > 0) {
            memmove(g->held, g->held + g->head, (g->n_held - g->head) * sizeof *g->held);
            g->n_held -= g->head;
            g->head = 0;
        } else {
            size_t cap = g->cap ? g->cap * 2 : 16;
            struct raft_message *h = realloc(g->held, cap * sizeof *h);
            if (h == NULL) {
                return false;
            }
            g->held = h;
            g->cap = cap;
        }
    }
    g->held[g->n_held++] = *msg;
    return true;
}

void snapguard_recv(struct snapguard *g, struct raft_message *msg)
{
    bool holding = g->n_held > g->head;
    if (!holding && !(g->taking && msg->type == RAFT_INSTALL_SNAPSHOT)) {
        g->deliver(g->io, msg);
        return;
    }
    if (msg->type == RAFT_INSTALL_SNAPSHOT) {
        g->installs_held++;
        TLOG_INFO("raft",
                  "holding the leader's snapshot (index %llu) until this node's own "
                  "snapshot is written",
                  (unsigned long long)msg->install_snapshot.last_index);
    }
    if (!snapguard__hold(g, msg)) {
        /* Lost as on a network: the leader sends it again. */
        g->dropped++;
        snapguard__free(msg);
    }
}

/* Hands the held messages to raft, in order, until none is left or one of
 * them made raft start another take. */
static void snapguard__release(struct snapguard *g)
{
    while (!g->taking && g->head < g->n_held) {
        struct raft_message m = g->held[g->head++];
        g->deliver(g->io, &m);
    }
}

static void snapguard__take_cb(struct raft_io_snapshot_put *put, int status)
{
    struct snapguard *g = put->data;
    struct raft_io_snapshot_put *req = g->raft_req;
    raft_io_snapshot_put_cb cb = g->raft_cb;
    g->taking = false;
    g->raft_req = NULL;
    g->raft_cb = NULL;
    cb(req, status);
    snapguard__release(g);
}

int snapguard_put_take(struct snapguard *g, snapguard_put_fn put, struct raft_io *io,
                       unsigned trailing, struct raft_io_snapshot_put *req,
                       const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    /* raft takes one snapshot at a time, so one slot is enough. */
    if (g->taking) {
        return put(io, trailing, req, snapshot, cb);
    }
    memset(&g->take, 0, sizeof g->take);
    g->take.data = g;
    g->raft_req = req;
    g->raft_cb = cb;
    int rv = put(io, trailing, &g->take, snapshot, snapguard__take_cb);
    if (rv != 0) {
        g->raft_req = NULL;
        g->raft_cb = NULL;
        return rv;
    }
    g->taking = true;
    return 0;
}

void snapguard_close(struct snapguard *g)
{
    while (g->head < g->n_held) {
        snapguard__free(&g->held[g->head++]);
    }
    free(g->held);
    g->held = NULL;
    g->head = g->n_held = g->cap = 0;
}
