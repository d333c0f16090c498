/* The client port with TLS: accepts a connection, runs the TLS handshake
 * on it (repl/tlspipe.c) and hands the plaintext end to conn.c. */
#ifndef TALLY_SERVER_TLSACCEPT_H_
#define TALLY_SERVER_TLSACCEPT_H_

#include <uv.h>

#include "lib/byte.h"
#include "lib/tls.h"
#include "repl/tlspipe.h"

struct gw;
struct conn_set;

struct tlsaccept {
    const struct tls_set *tls;  /* borrowed from srv (swapped on SIGHUP) */
    struct conn_set *conns;     /* borrowed from srv: where connections go */
    struct gw *gw;
    unsigned max_handshakes;    /* connections in their handshake, at most */
    struct tlspipe_group group; /* every TLS client connection */
    struct buf not_tls;         /* error frame for a plaintext client */
};

/* Set up; @tls, @conns and @gw are borrowed until tlsaccept_close. */
void tlsaccept_init(struct tlsaccept *a, const struct tls_set *tls, struct conn_set *conns,
                    struct gw *gw, unsigned max_handshakes);

/* Accept one connection from @listener and start its handshake. */
void tlsaccept_one(struct tlsaccept *a, uv_stream_t *listener);

/* Close every TLS connection (shutdown) and free what init made. */
void tlsaccept_close(struct tlsaccept *a);

#endif
