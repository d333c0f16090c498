/* A raft_uv_transport decorator that sets TCP_NODELAY on every Raft
 * connection (libraft never does; without it Nagle plus delayed ACKs
 * stall replication by ~40 ms: docs/raft.md, section 1). */
#ifndef TALLY_REPL_TRANSPORT_H_
#define TALLY_REPL_TRANSPORT_H_

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

struct transport {
    struct raft_uv_transport outer; /* handed to raft_uv_init */
    struct raft_uv_transport inner; /* the real raft_uv_tcp transport */
    raft_uv_accept_cb accept_cb;    /* raft's accept callback */
    raft_uv_transport_close_cb close_cb; /* raft's close callback */
};

/* Initialise the inner raft_uv_tcp transport on @loop and the wrapper.
 * Returns 0 or a RAFT_* code. */
int transport_init(struct transport *t, uv_loop_t *loop);

/* Release the inner transport; call after raft_close's callback. */
void transport_close(struct transport *t);

#endif
