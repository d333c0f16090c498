/* One client connection: read buffer, frame assembly, the FIFO of its
 * requests, in-order responses, limits and backpressure. */
#ifndef TALLY_SERVER_CONN_H_
#define TALLY_SERVER_CONN_H_

#include <openssl/ssl.h>
#include <stdbool.h>
#include <uv.h>

#include "server/req.h"

struct gw;
struct metrics;

/* Every open connection of one server; owned by the server (srv.c), zeroed
 * before use, then given to conn_accept. */
struct conn_set {
    struct conn *all;        /* open connections, linked through conn */
    unsigned n;              /* how many (the metrics read it) */
    struct metrics *metrics; /* counts every answered request; NULL: off */
    uv_loop_t *loop;         /* for thread-pool read-ahead; set on accept */
    char *tls_in;            /* TLS connections' network bytes, read and at
                              * once decrypted (NULL until one is served) */
};

/* Accept a new connection from @server (a listening uv_tcp_t) into @set.
 * Its requests go to @gw, which answers them through req->ops. */
int conn_accept(struct conn_set *set, uv_stream_t *server, struct gw *gw);

/* Close every connection of @set (shutdown). */
void conn_close_all(struct conn_set *set);

/* Serve a TLS connection in @set: @fd is its TCP socket (connected,
 * non-blocking) and @ssl the TLS connection on it after the handshake,
 * with memory BIOs (repl/tlspipe.c's hand-over; the read BIO may already
 * hold bytes); the connection reads and writes its records itself. @ssl
 * NULL: @fd is the plaintext end of a TLS pipe instead. @peer names it in
 * logs (copied); @principal: the name of its verified client certificate
 * (it is then authenticated as that), or NULL; @node_id: not 0 when that
 * certificate proves the peer is that node (auth_conn_certified). On
 * success the connection owns @fd and @ssl; on failure (a negative libuv
 * code) the caller still does. */
int conn_accept_fd(struct conn_set *set, uv_loop_t *loop, int fd, SSL *ssl, struct gw *gw,
                   const char *peer, const char *principal, uint64_t node_id);

/* Free what the set holds beyond its connections (after conn_close_all). */
void conn_set_free(struct conn_set *set);

/* Number of open connections in @set. */
unsigned conn_count(const struct conn_set *set);

#endif
