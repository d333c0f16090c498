/* TLS with OpenSSL 3: contexts built from certificate files, peer checks
 * (CA chain, host name or IP, node identity) and TLS over a non-blocking
 * socket with deadlines for the blocking clients (libtally, the producer,
 * tally backup, the raft probe). Every listener, raft link and client of
 * tally gets its TLS from here, so the rules are the same everywhere
 * (docs/security.md). No cryptography is written here: OpenSSL does it. */
#ifndef TALLY_LIB_TLS_H_
#define TALLY_LIB_TLS_H_

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Paths of the PEM files; NULL or "" = not given. Borrowed for the call. */
struct tls_files {
    const char *cert; /* our certificate chain (leaf first) */
    const char *key;  /* its private key */
    const char *ca;   /* the CA(s) the peer's certificate must chain to */
    bool allow_tls12; /* accept TLS 1.2 as well as 1.3 (tls_min_version=1.2) */
};

/* Names a node's certificate must carry: CN "node<ID>" (docs/security.md),
 * so a peer's certificate proves which Raft id it may use. */
#define TLS_NODE_CN_PREFIX "node"

/* A server context (a listener, or the accepting end of a Raft link):
 * cert and key required; with @require_peer_cert the peer must present a
 * certificate that chains to ca (mutual TLS), else a client certificate
 * is checked against ca when one is sent (and ca may be absent).
 * Returns NULL with a one-line reason in @errmsg (ERR_MSG_SIZE). The
 * caller owns the context (SSL_CTX_free); connections hold their own
 * reference, so a reload can drop the old one at once. */
SSL_CTX *tls_server_ctx(const struct tls_files *f, bool require_peer_cert, char *errmsg);

/* A client context: the server must chain to ca (required); cert and key,
 * when given, are sent for mutual TLS. NULL with a reason in @errmsg. */
SSL_CTX *tls_client_ctx(const struct tls_files *f, char *errmsg);

/* The contexts of one tallyd, loaded together from one set of files and
 * swapped together on SIGHUP: a connection takes a reference to the
 * context current when it starts and keeps it, so connections that are
 * up stay up across a reload. */
struct tls_set {
    SSL_CTX *clients;   /* the client port: client certificates optional */
    SSL_CTX *peers_in;  /* Raft links accepted: mutual TLS required */
    SSL_CTX *peers_out; /* Raft links dialled: our certificate, CA checked */
};

/* Load all three from @f (cert, key and ca required); with
 * @clients_need_cert the client port refuses clients that present no
 * certificate of the CA (mutual TLS for clients too). 0, or -1 with the
 * reason in @errmsg and @s untouched. */
int tls_set_load(struct tls_set *s, const struct tls_files *f, bool clients_need_cert,
                 char *errmsg);

/* Free the contexts (connections keep theirs alive). */
void tls_set_free(struct tls_set *s);

/* Make @ssl check that the server's certificate names @host (an IPv4/IPv6
 * literal is matched against IP SANs, a name against DNS SANs). 0 or -1. */
int tls_expect_host(SSL *ssl, const char *host);

/* The peer's principal: the common name of its certificate's subject, or
 * its first DNS SAN when it has no CN. 0, or -1 when there is no
 * certificate or no usable name. */
int tls_peer_name(SSL *ssl, char *out, size_t cap);

/* 0 if the peer's certificate (already verified against the CA) has CN
 * "node<@id>" and, when @ip is not NULL, an IP SAN equal to @ip; else -1
 * with the reason in @why. */
int tls_check_node(SSL *ssl, uint64_t id, const char *ip, char *why, size_t cap);

/* Why the last TLS call on @ssl (which returned @ret) failed, in words a
 * user can act on: "certificate verify failed: certificate has expired",
 * "peer did not speak TLS". Written into @out. */
void tls_explain(SSL *ssl, int ret, char *out, size_t cap);

/* Blocking use over a non-blocking socket: each call waits with poll(2)
 * until @deadline_ms (monotonic ms, as client_now_ms) at most. They return
 * 0 / a byte count, or -1 with a reason in @errmsg (and *timed_out set when
 * the deadline passed, if not NULL). */
int tls_fd_handshake(SSL *ssl, int64_t deadline_ms, bool *timed_out, char *errmsg, size_t cap);
/* Sends all @n bytes. */
int tls_fd_send(SSL *ssl, const void *p, size_t n, int64_t deadline_ms, bool *timed_out,
                char *errmsg, size_t cap);
/* Receives 1..@n bytes; 0 = the peer closed the connection. */
ssize_t tls_fd_recv(SSL *ssl, void *p, size_t n, int64_t deadline_ms, bool *timed_out,
                    char *errmsg, size_t cap);
/* True if an idle connection is still usable: nothing but TLS records
 * that carry no data (tickets, key updates) arrived, and no close. */
bool tls_fd_idle_ok(SSL *ssl);

/* The monotonic clock the deadlines use, in ms. */
int64_t tls_now_ms(void);

#endif
