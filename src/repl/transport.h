/* A raft_uv_transport decorator that sets TCP_NODELAY on every Raft
 * connection (libraft never does; without it Nagle plus delayed ACKs
 * stall replication by ~40 ms: docs/raft.md, section 1). */
#ifndef TALLY_REPL_TRANSPORT_H_
#define TALLY_REPL_TRANSPORT_H_

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/tls.h"
#include "repl/tlspipe.h"

/* THE TALLY HELLO, version 1. Every Raft connection starts, after
 * raft_uv_tcp's own handshake, with one hello each way (32 bytes,
 * little-endian): the connecting side sends its hello, the accepting side
 * checks it and answers with its own (also when it refuses, so that both
 * logs name both ids), and only then is the stream handed to raft:
 *
 *   0  4  magic "TLYH"
 *   4  2  version (1)
 *   6  2  flags: bit 0 = the node holds Raft state
 *   8  8  cluster_id (0: none known yet)
 *   16 8  node_id (the sender's Raft id)
 *   24 8  directory_id (DATA/identity of the sender)
 *
 * A peer that does not answer within TRANSPORT_HELLO_TIMEOUT_MS is
 * dropped; raft reconnects later, as for any failed connection. */
#define TRANSPORT_HELLO_SIZE 32
#define TRANSPORT_HELLO_VERSION 1
#define TRANSPORT_HELLO_HAS_STATE 0x1u
#define TRANSPORT_HELLO_TIMEOUT_MS 3000

struct transport_hello {
    uint16_t flags;
    uint64_t cluster_id;
    uint64_t node_id;
    uint64_t directory_id;
};

/* Who we are and whether a peer may talk to us (set by node.c). */
struct transport_guard {
    void *arg;
    void (*local)(void *arg, struct transport_hello *out);
    /* 0 to go on with @peer, else non-zero with a reason in @why (logged
     * by the transport, at most every few seconds per peer). */
    int (*check)(void *arg, const struct transport_hello *peer, bool inbound, char *why,
                 size_t cap);
};

struct transport__hs;

struct transport {
    struct raft_uv_transport outer; /* handed to raft_uv_init */
    struct raft_uv_transport inner; /* the real raft_uv_tcp transport */
    raft_uv_accept_cb accept_cb;    /* raft's accept callback */
    raft_uv_transport_close_cb close_cb; /* raft's close callback */
    uv_loop_t *loop;
    struct transport_guard guard;   /* no guard: hellos carry zeros */
    struct transport__hs *handshakes; /* in flight */
    bool closing;
    /* Mutual TLS (docs/security.md, Raft links): NULL = plaintext. Read
     * at every new connection, so a reload (SIGHUP) applies to the next
     * ones; the pipes of the links, to close them with the transport. */
    const struct tls_set *tls;
    struct tlspipe_group pipes;
    struct {
        uint64_t id;
        uint64_t at_ms;
    } said[16];                     /* last refusal logged, per peer */
};

/* Set who we are and the check of peers (before raft_start). */
void transport_set_guard(struct transport *t, const struct transport_guard *g);

/* Speak mutual TLS on every Raft link from now on (before raft_start):
 * a peer must present a certificate of the CA in @tls whose CN is
 * "node<ID>" for the id it claims and whose subjectAltName holds the IP of
 * the Raft address it claims. @tls is borrowed until transport_close; its
 * contexts may be swapped (reload) between connections. */
void transport_set_tls(struct transport *t, const struct tls_set *tls);

/* Blocking, before Raft starts: connect to @address (node @peer_id),
 * introduce ourselves (raft handshake as node @my_id at @my_address, then,
 * over mutual TLS if @tls is not NULL, @mine) and read the peer's hello
 * into @peer. 0, or -1 when it could not be reached, was not who it should
 * be, or did not answer within @timeout_ms. */
int transport_probe(const char *address, uint64_t peer_id, uint64_t my_id,
                    const char *my_address, const struct tls_set *tls,
                    const struct transport_hello *mine, struct transport_hello *peer,
                    int timeout_ms);

/* Initialise the inner raft_uv_tcp transport on @loop and the wrapper.
 * Returns 0 or a RAFT_* code. */
int transport_init(struct transport *t, uv_loop_t *loop);

/* Release the inner transport; call after raft_close's callback. */
void transport_close(struct transport *t);

#endif
