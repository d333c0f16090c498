/* Guards around libraft 0.22.1's snapshot bugs (snapguard.h). */
#include "repl/snapguard.h"

#include <stdlib.h>
#include <string.h>

#include "lib/logger.h"

void snapguard_loaded(struct snapguard *g, const struct raft_snapshot *snapshot)
{
    if (snapshot != NULL) {
        g->index = snapshot->index;
        g->term = snapshot->term;
    }
}

/* The wrapper's own request: raft's stays untouched until its callback. */
struct snapguard__put {
    struct raft_io_snapshot_put inner;
    struct raft_io_snapshot_put *outer;
    struct snapguard *g;
    unsigned trailing;
    raft_index index;
    raft_term term;
};

static void snapguard__put_cb(struct raft_io_snapshot_put *inner, int status)
{
    struct snapguard__put *p = inner->data;
    struct raft_io_snapshot_put *outer = p->outer;
    struct snapguard *g = p->g;
    if (p->trailing > 0) {
        g->taking--;
    }
    if (status == 0 && p->index > g->index) {
        g->index = p->index;
        g->term = p->term;
    }
    free(p);
    outer->cb(outer, status);
}

int snapguard_snapshot_put(struct snapguard *g, snapguard_put_fn put, struct raft_io *io,
                           unsigned trailing, struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    struct snapguard__put *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return RAFT_NOMEM;
    }
    p->inner.data = p;
    p->outer = req;
    p->g = g;
    p->trailing = trailing;
    p->index = snapshot->index;
    p->term = snapshot->term;
    req->cb = cb;
    if (trailing > 0) {
        g->taking++; /* before: a callback could in principle come at once */
    }
    int rv = put(io, trailing, &p->inner, snapshot, snapguard__put_cb);
    if (rv != 0) {
        if (trailing > 0) {
            g->taking--;
        }
        free(p); /* refused at once: no callback will come */
    }
    return rv;
}

struct snapguard__get {
    struct raft_io_snapshot_get inner;
    struct raft_io_snapshot_get *outer;
    struct snapguard *g;
};

static void snapguard__get_cb(struct raft_io_snapshot_get *inner, struct raft_snapshot *snapshot,
                              int status)
{
    struct snapguard__get *p = inner->data;
    struct raft_io_snapshot_get *outer = p->outer;
    if (status == 0 && snapshot != NULL) {
        p->g->read_index = snapshot->index;
        p->g->read_term = snapshot->term;
    }
    free(p);
    outer->cb(outer, snapshot, status);
}

int snapguard_snapshot_get(struct snapguard *g, snapguard_get_fn get, struct raft_io *io,
                           struct raft_io_snapshot_get *req, raft_io_snapshot_get_cb cb)
{
    struct snapguard__get *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return RAFT_NOMEM;
    }
    p->inner.data = p;
    p->outer = req;
    p->g = g;
    req->cb = cb;
    int rv = get(io, &p->inner, snapguard__get_cb);
    if (rv != 0) {
        free(p);
    }
    return rv;
}

int snapguard_send(struct snapguard *g, snapguard_send_fn send, struct raft_io *io,
                   struct raft_io_send *req, const struct raft_message *message,
                   raft_io_send_cb cb)
{
    if (message->type == RAFT_INSTALL_SNAPSHOT && g->read_index != 0 &&
        message->install_snapshot.last_index == g->read_index &&
        message->install_snapshot.last_term != g->read_term) {
        /* The message is encoded when it is submitted (raft_uv) or copied
         * (the simulation): a corrected copy on the stack is enough. */
        struct raft_message fixed = *message;
        fixed.install_snapshot.last_term = g->read_term;
        g->retermed++;
        TLOG_WARN("raft", "InstallSnapshot to node %llu: snapshot %llu has term %llu, not %llu "
                          "(libraft 0.22.1 kept an older term); sending the right one",
                  (unsigned long long)message->server_id, (unsigned long long)g->read_index,
                  (unsigned long long)g->read_term,
                  (unsigned long long)message->install_snapshot.last_term);
        return send(io, req, &fixed, cb);
    }
    return send(io, req, message, cb);
}

/* Bug 3: drop the entries of @msg at or below this node's snapshot and
 * anchor the message there, if it reaches that far with the same term. */
static void snapguard__anchor(struct snapguard *g, struct raft_append_entries *ae)
{
    if (g->index == 0 || ae->prev_log_index >= g->index ||
        ae->prev_log_index + ae->n_entries < g->index) {
        return;
    }
    unsigned k = (unsigned)(g->index - ae->prev_log_index); /* entries to drop */
    if (ae->entries[k - 1].term != g->term) {
        return; /* cannot happen (committed entries); leave it to raft */
    }
    void *batch = ae->entries[0].batch;
    memmove(ae->entries, ae->entries + k, (ae->n_entries - k) * sizeof *ae->entries);
    ae->n_entries -= k;
    ae->prev_log_index = g->index;
    ae->prev_log_term = g->term;
    g->anchored++;
    if (ae->n_entries == 0) {
        /* raft frees the entries only when there are some. */
        raft_free(batch);
        raft_free(ae->entries);
        ae->entries = NULL;
    }
}

bool snapguard_recv(struct snapguard *g, struct raft_message *msg)
{
    if (msg->type == RAFT_APPEND_ENTRIES) {
        snapguard__anchor(g, &msg->append_entries);
        return false;
    }
    if (msg->type != RAFT_INSTALL_SNAPSHOT || g->taking == 0) {
        return false;
    }
    g->dropped++;
    TLOG_INFO("raft", "InstallSnapshot (index %llu) from node %llu dropped while this node "
                      "stores a snapshot of its own (libraft 0.22.1 would crash); the leader "
                      "sends it again", (unsigned long long)msg->install_snapshot.last_index,
              (unsigned long long)msg->server_id);
    raft_configuration_close(&msg->install_snapshot.conf);
    raft_free(msg->install_snapshot.data.base);
    return true;
}
