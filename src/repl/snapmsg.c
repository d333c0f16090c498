/* Fixes for two libraft 0.22.1 snapshot bugs in raft's messages (snapmsg.h). */
#include "repl/snapmsg.h"

#include <stdlib.h>
#include <string.h>

#include "lib/logger.h"

void snapmsg_loaded(struct snapmsg *g, const struct raft_snapshot *snapshot)
{
    if (snapshot != NULL) {
        g->index = snapshot->index;
        g->term = snapshot->term;
    }
}

/* The wrapper's own request: raft's stays untouched until its callback. */
struct snapmsg__put {
    struct raft_io_snapshot_put inner;
    struct raft_io_snapshot_put *outer;
    struct snapmsg *g;
    raft_index index;
    raft_term term;
};

static void snapmsg__put_cb(struct raft_io_snapshot_put *inner, int status)
{
    struct snapmsg__put *p = inner->data;
    struct raft_io_snapshot_put *outer = p->outer;
    struct snapmsg *g = p->g;
    if (status == 0 && p->index > g->index) {
        g->index = p->index;
        g->term = p->term;
    }
    free(p);
    outer->cb(outer, status);
}

int snapmsg_snapshot_put(struct snapmsg *g, snapmsg_put_fn put, struct raft_io *io,
                           unsigned trailing, struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    struct snapmsg__put *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return RAFT_NOMEM;
    }
    p->inner.data = p;
    p->outer = req;
    p->g = g;
    p->index = snapshot->index;
    p->term = snapshot->term;
    req->cb = cb;
    int rv = put(io, trailing, &p->inner, snapshot, snapmsg__put_cb);
    if (rv != 0) {
        free(p); /* refused at once: no callback will come */
    }
    return rv;
}

struct snapmsg__get {
    struct raft_io_snapshot_get inner;
    struct raft_io_snapshot_get *outer;
    struct snapmsg *g;
};

static void snapmsg__get_cb(struct raft_io_snapshot_get *inner, struct raft_snapshot *snapshot,
                              int status)
{
    struct snapmsg__get *p = inner->data;
    struct raft_io_snapshot_get *outer = p->outer;
    if (status == 0 && snapshot != NULL) {
        p->g->read_index = snapshot->index;
        p->g->read_term = snapshot->term;
    }
    free(p);
    outer->cb(outer, snapshot, status);
}

int snapmsg_snapshot_get(struct snapmsg *g, snapmsg_get_fn get, struct raft_io *io,
                           struct raft_io_snapshot_get *req, raft_io_snapshot_get_cb cb)
{
    struct snapmsg__get *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return RAFT_NOMEM;
    }
    p->inner.data = p;
    p->outer = req;
    p->g = g;
    req->cb = cb;
    int rv = get(io, &p->inner, snapmsg__get_cb);
    if (rv != 0) {
        free(p);
    }
    return rv;
}

int snapmsg_send(struct snapmsg *g, snapmsg_send_fn send, struct raft_io *io,
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

/* Bug 2: drop the entries of @msg at or below this node's snapshot and
 * anchor the message there, if it reaches that far with the same term. */
static void snapmsg__anchor(struct snapmsg *g, struct raft_append_entries *ae)
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

void snapmsg_recv(struct snapmsg *g, struct raft_message *msg)
{
    if (msg->type == RAFT_APPEND_ENTRIES) {
        snapmsg__anchor(g, &msg->append_entries);
    }
}
