/* Guard against libraft 0.22.1's crash on an install during a snapshot
 * put (snapguard.h). */
#include "repl/snapguard.h"

#include <stdlib.h>

#include "lib/logger.h"

/* The wrapper's own request: raft's stays untouched until its callback. */
struct snapguard__put {
    struct raft_io_snapshot_put inner;
    struct raft_io_snapshot_put *outer;
    struct snapguard *g;
    unsigned trailing;
};

static void snapguard__put_cb(struct raft_io_snapshot_put *inner, int status)
{
    struct snapguard__put *p = inner->data;
    struct raft_io_snapshot_put *outer = p->outer;
    if (p->trailing > 0) {
        p->g->taking--;
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

bool snapguard_drop(struct snapguard *g, struct raft_message *msg)
{
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
