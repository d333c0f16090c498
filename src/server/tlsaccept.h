/* A client port with TLS: accepts a connection, runs the TLS handshake
 * on it (repl/tlspipe.c) and hands the plaintext end to its front door
 * (conn.c for the native port, kconn.c for the Kafka port). */
#ifndef TALLY_SERVER_TLSACCEPT_H_
#define TALLY_SERVER_TLSACCEPT_H_

#include <uv.h>

#include "lib/byte.h"
#include "lib/tls.h"
#include "repl/tlspipe.h"

/* Serve the plaintext end @fd of a finished handshake (the front door
 * owns it from here, even on failure). With the hand-over (tlsaccept_init)
 * @fd is the TCP socket itself and @ssl the TLS connection on it, which
 * the front door owns from here too (it reads and writes the records
 * through @ssl's memory BIOs); without it @ssl is NULL. @principal is the client
 * certificate's verified name (NULL: none) and @node_id the member it
 * proves the peer is (0: none). Returns 0, or non-zero (logged) if the
 * connection could not be served. */
typedef int (*tlsaccept_serve_fn)(void *arg, uv_loop_t *loop, int fd, SSL *ssl,
                                  const char *peer, const char *principal, uint64_t node_id);

struct tlsaccept {
    const struct tls_set *tls;  /* borrowed from srv (swapped on SIGHUP) */
    tlsaccept_serve_fn serve;   /* where connections go */
    void *serve_arg;
    unsigned max_handshakes;    /* connections in their handshake, at most */
    struct tlspipe_group group; /* every TLS client connection */
    struct buf not_tls;         /* reply to a plaintext client (may be empty) */
    bool hand_over;             /* the front door does TLS itself */
};

/* Set up; @tls and @serve_arg are borrowed until tlsaccept_close. A client
 * that speaks plaintext gets @not_tls (@not_tls_len bytes; 0: nothing) in
 * clear, then the connection closes. @hand_over: serve gets the TCP
 * socket and the SSL (the front door does TLS itself) instead of the
 * plaintext end of a socketpair. */
void tlsaccept_init(struct tlsaccept *a, const struct tls_set *tls, tlsaccept_serve_fn serve,
                    void *serve_arg, const void *not_tls, size_t not_tls_len,
                    unsigned max_handshakes, bool hand_over);

/* Accept one connection from @listener and start its handshake. */
void tlsaccept_one(struct tlsaccept *a, uv_stream_t *listener);

/* Close every TLS connection (shutdown) and free what init made. */
void tlsaccept_close(struct tlsaccept *a);

#endif
