/* A TLS connection on a libuv stream, handed to its user as a plaintext
 * socket: the pipe does the handshake with OpenSSL memory BIOs, then moves
 * bytes both ways between the TLS connection (the "net" stream) and one
 * end of a socketpair, whose other end the user reads and writes as if it
 * were the network. raft reads a plain uv_stream it was given, and the
 * client connections send answers with sendfile(2): neither needs to know
 * about TLS. Used by the Raft transport (transport.c) and the server's
 * listeners (server/tlsl.c); docs/security.md, "How TLS is wired". */
#ifndef TALLY_REPL_TLSPIPE_H_
#define TALLY_REPL_TLSPIPE_H_

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct tlspipe;

/* Pipes of one owner, so that it can close them all (shutdown). */
struct tlspipe_group {
    struct tlspipe *head;
    unsigned handshaking; /* pipes still in their handshake */
    unsigned open;        /* pipes in the group */
};

/* Called once per pipe. On success @plain_fd >= 0 is the user's end of
 * the socketpair (non-blocking, close-on-exec; the user owns it from now
 * on) and @ssl (borrowed for the call) shows the peer's certificate; the
 * user returns 0 to go on, or non-zero to refuse the peer (the pipe then
 * closes both ends, and @plain_fd must be left alone). On failure
 * @plain_fd is -1 and @why says what went wrong; the return value is
 * ignored. */
typedef int (*tlspipe_done_cb)(void *arg, SSL *ssl, int plain_fd, const char *why);
/* With tlspipe_opts.hand_over, success is different: there is no
 * socketpair, @plain_fd is the network socket itself (a duplicate of the
 * net stream's fd, which the pipe closes) and the user owns it and @ssl
 * from then on, whatever it returns: it reads and writes TLS records
 * itself through @ssl's memory BIOs (the read BIO may already hold bytes
 * that came after the handshake). That saves the socketpair hop both
 * ways, for a user that can speak TLS itself (server/conn.c). */

struct tlspipe_opts {
    SSL_CTX *ctx;               /* borrowed: the pipe's SSL holds a reference */
    bool server;                /* accept (true) or connect (false) */
    const char *expect_host;    /* client: the name or IP the server's
                                 * certificate must carry; NULL: none */
    const void *not_tls_reply;  /* server: bytes sent in clear to a peer
                                 * whose first byte is no TLS handshake
                                 * (copied), so that a plaintext client
                                 * learns why; NULL: none */
    size_t not_tls_reply_len;
    unsigned handshake_timeout_ms;
    uv_close_cb free_net;       /* frees the net stream once closed */
    tlspipe_done_cb done;
    void *arg;
    struct tlspipe_group *group; /* may be NULL */
    bool hand_over;             /* give the user the TLS connection itself
                                 * (see tlspipe_done_cb) */
};

/* Start TLS on @net (connected, not reading; the pipe owns it from now on,
 * and its data field). Returns 0 (done runs exactly once, later), or a
 * negative libuv code with @net closed and nothing called. */
int tlspipe_start(uv_loop_t *loop, uv_stream_t *net, const struct tlspipe_opts *o);

/* Close every pipe of @g at once (their done callbacks that have not run
 * yet run with a failure). */
void tlspipe_group_close(struct tlspipe_group *g);

#endif
