/* A client port with TLS (tlsaccept.h).
 *
 * The happy path: accept the TCP connection, start a server tlspipe on it
 * with the client context current at that moment; once the handshake is
 * done, the front door's serve function (conn_accept_fd's caller for the
 * native port, kconn's for the Kafka port) serves the plaintext end like
 * any connection, or, with the hand-over (the native port), the TCP
 * socket and its SSL, on which conn.c does TLS itself.
 *
 * Failure modes: a handshake that fails (a client that does not trust our
 * CA, a client certificate from another CA, an expired one) is logged at
 * warn level with the peer address and closed; a client that speaks
 * plaintext to this port gets the front door's reply in clear (the native
 * port: one error frame saying TLS is required, which the client shows;
 * the Kafka port: nothing), then the connection closes; more than
 * max_handshakes handshakes at once: the new connection is dropped. */
#include "server/tlsaccept.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/logger.h"

#define TLSACCEPT__HANDSHAKE_MS 10000

struct tlsaccept__one {
    struct tlsaccept *a;
    uv_loop_t *loop;
    char peer[64];
    char ip[32];                   /* the peer's address ("": unknown) */
};

/* The node a certificate named node<ID> proves the peer is (CN and an IP
 * SAN equal to the connection's source address), or 0. */
static uint64_t tlsaccept__node_id(SSL *ssl, const char *name, const char *ip)
{
    char why[256], *end;
    unsigned long long id;
    if (strncmp(name, "node", 4) != 0 || name[4] < '1' || name[4] > '9' || ip[0] == '\0') {
        return 0;
    }
    id = strtoull(name + 4, &end, 10);
    if (*end != '\0' || id == 0 || tls_check_node(ssl, (uint64_t)id, ip, why, sizeof why) != 0) {
        return 0;
    }
    return (uint64_t)id;
}

static void tlsaccept__free_tcp(uv_handle_t *h)
{
    free(h);
}

static int tlsaccept__done(void *arg, SSL *ssl, int fd, const char *why)
{
    struct tlsaccept__one *one = arg;
    char peer[200];
    char name[128];
    bool certified = false;
    uint64_t node_id = 0;
    SSL *ssl_owned = ssl;
    int rv = 0;
    if (fd < 0) {
        TLOG_WARN("tls", "client %s: %s", one->peer, why);
        free(one);
        return 0;
    }
    if (!one->a->hand_over) {
        ssl_owned = NULL; /* the pipe keeps it */
    }
    if (tls_peer_name(ssl, name, sizeof name) == 0) {
        /* The handshake verified the certificate against the CA. */
        certified = true;
        node_id = tlsaccept__node_id(ssl, name, one->ip);
        snprintf(peer, sizeof peer, "%s (%s)", one->peer, name);
    } else {
        snprintf(peer, sizeof peer, "%s", one->peer);
    }
    if (one->a->serve(one->a->serve_arg, one->loop, fd, ssl_owned, peer,
                      certified ? name : NULL, node_id) != 0) {
        TLOG_WARN("tls", "client %s: cannot serve the connection", peer);
        rv = -1;
        if (ssl_owned != NULL) { /* handed over: the pipe has let go of both */
            SSL_free(ssl_owned);
            close(fd);
        }
    }
    free(one);
    return rv;
}

void tlsaccept_init(struct tlsaccept *a, const struct tls_set *tls, tlsaccept_serve_fn serve,
                    void *serve_arg, const void *not_tls, size_t not_tls_len,
                    unsigned max_handshakes, bool hand_over)
{
    memset(a, 0, sizeof *a);
    a->hand_over = hand_over;
    a->tls = tls;
    a->serve = serve;
    a->serve_arg = serve_arg;
    a->max_handshakes = max_handshakes;
    buf_init(&a->not_tls);
    buf_put(&a->not_tls, not_tls, not_tls_len);
}

void tlsaccept_one(struct tlsaccept *a, uv_stream_t *listener)
{
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    struct tlsaccept__one *one;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    struct tlspipe_opts o;
    if (tcp == NULL) {
        return;
    }
    uv_tcp_init(listener->loop, tcp);
    if (uv_accept(listener, (uv_stream_t *)tcp) != 0) {
        uv_close((uv_handle_t *)tcp, tlsaccept__free_tcp);
        return;
    }
    if (a->group.handshaking >= a->max_handshakes) {
        TLOG_WARN("tls", "connection refused: %u TLS handshakes in progress",
                  a->group.handshaking);
        uv_close((uv_handle_t *)tcp, tlsaccept__free_tcp);
        return;
    }
    one = calloc(1, sizeof *one);
    if (one == NULL) {
        uv_close((uv_handle_t *)tcp, tlsaccept__free_tcp);
        return;
    }
    one->a = a;
    one->loop = listener->loop;
    uv_tcp_nodelay(tcp, 1);
    snprintf(one->peer, sizeof one->peer, "client");
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_INET) {
        char ip[32];
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        uv_ip4_name(sin, ip, sizeof ip);
        snprintf(one->ip, sizeof one->ip, "%s", ip);
        snprintf(one->peer, sizeof one->peer, "%s:%u", ip, ntohs(sin->sin_port));
    }
    memset(&o, 0, sizeof o);
    o.ctx = a->tls->clients;
    o.server = true;
    o.not_tls_reply = buf_ok(&a->not_tls) && a->not_tls.len > 0 ? a->not_tls.data : NULL;
    o.not_tls_reply_len = a->not_tls.len;
    o.handshake_timeout_ms = TLSACCEPT__HANDSHAKE_MS;
    o.free_net = tlsaccept__free_tcp;
    o.done = tlsaccept__done;
    o.arg = one;
    o.group = &a->group;
    o.hand_over = a->hand_over;
    if (tlspipe_start(listener->loop, (uv_stream_t *)tcp, &o) != 0) {
        free(one);
    }
}

void tlsaccept_close(struct tlsaccept *a)
{
    tlspipe_group_close(&a->group);
    buf_free(&a->not_tls);
}
