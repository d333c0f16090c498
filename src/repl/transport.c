/* A raft_uv_transport decorator that sets TCP_NODELAY on Raft connections
 * and exchanges the tally hello (transport.h) on each of them before raft
 * sees it, so that a node of another cluster, or a member that came back
 * with another data directory, is refused on both sides.
 *
 * The happy path: raft_uv calls our outer vtable; each call forwards to the
 * inner raft_uv_tcp transport with our own callback, which turns on
 * TCP_NODELAY on the new stream and then calls raft's callback with the
 * outer transport. The wrapper and both transports live in one struct, so
 * callbacks find it with container_of and use neither transport's data
 * field (raft_uv owns those). */
#include "repl/transport.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/byte.h"
#include "lib/logger.h"
#include "lib/tls.h"

#define TRANSPORT__OF(ptr, field) \
    ((struct transport *)((char *)(ptr)-offsetof(struct transport, field)))

struct transport__connect {
    struct raft_uv_connect inner_req;
    struct raft_uv_connect *outer_req;
    struct transport *t;
    raft_id id;
    char address[256];
};

static void transport__nodelay(struct uv_stream_s *stream)
{
    if (stream != NULL && stream->type == UV_TCP) {
        int rv = uv_tcp_nodelay((uv_tcp_t *)stream, 1);
        if (rv != 0) {
            TLOG_WARN("raft", "TCP_NODELAY on a raft connection: %s", uv_strerror(rv));
        }
    }
}

static int transport__init(struct raft_uv_transport *outer, raft_id id, const char *address)
{
    struct transport *t = TRANSPORT__OF(outer, outer);
    int rv = t->inner.init(&t->inner, id, address);
    if (rv != 0) {
        memcpy(outer->errmsg, t->inner.errmsg, sizeof outer->errmsg);
    }
    return rv;
}

/* One hello exchange on a new connection.
 *
 * Inbound (accepted): read the peer's hello, check it, write ours; hand
 * the stream to raft if the check passed, else close it.
 * Outbound (connected): write ours, read the peer's, check it; hand the
 * stream to raft's connect callback, else close it and report
 * RAFT_NOCONNECTION (raft retries later).
 * Failure modes: the peer closes, sends something that is not a hello, or
 * says nothing within the timeout; the transport closes meanwhile (raft's
 * connect request then ends with RAFT_CANCELED). */
struct transport__hs {
    struct transport *t;
    struct transport__hs *next;
    uv_stream_t *stream;
    uv_timer_t timer;
    uv_write_t write;
    bool inbound;
    bool writing, timer_open, finished;
    int result;                       /* 0 while it may still succeed */
    uint8_t in[TRANSPORT_HELLO_SIZE];
    size_t got;
    uint8_t out[TRANSPORT_HELLO_SIZE];
    raft_id id;                       /* inbound: who raft's handshake said */
    uint64_t cert_id;                 /* TLS: the node id the peer's certificate proved */
    char address[256];
    struct raft_uv_connect *outer_req; /* outbound */
};

static void transport__hello_encode(const struct transport_hello *h, uint8_t *out)
{
    memcpy(out, "TLYH", 4);
    byte_put_u16(out + 4, TRANSPORT_HELLO_VERSION);
    byte_put_u16(out + 6, h->flags);
    byte_put_u64(out + 8, h->cluster_id);
    byte_put_u64(out + 16, h->node_id);
    byte_put_u64(out + 24, h->directory_id);
}

static int transport__hello_decode(const uint8_t *in, struct transport_hello *h)
{
    if (memcmp(in, "TLYH", 4) != 0 || byte_get_u16(in + 4) != TRANSPORT_HELLO_VERSION) {
        return -1;
    }
    h->flags = byte_get_u16(in + 6);
    h->cluster_id = byte_get_u64(in + 8);
    h->node_id = byte_get_u64(in + 16);
    h->directory_id = byte_get_u64(in + 24);
    return 0;
}

static void transport__local(struct transport *t, struct transport_hello *h)
{
    memset(h, 0, sizeof *h);
    if (t->guard.local != NULL) {
        t->guard.local(t->guard.arg, h);
    }
}

/* Log a refusal of @id at most every 10 s. */
static void transport__say(struct transport *t, uint64_t id, const char *why)
{
    uint64_t now = uv_now(t->loop);
    unsigned slot = 0;
    for (unsigned i = 0; i < sizeof t->said / sizeof t->said[0]; i++) {
        if (t->said[i].id == id) {
            slot = i;
            break;
        }
        if (t->said[i].at_ms < t->said[slot].at_ms) {
            slot = i;
        }
    }
    if (t->said[slot].id == id && t->said[slot].at_ms != 0 && now - t->said[slot].at_ms < 10000) {
        return;
    }
    t->said[slot].id = id;
    t->said[slot].at_ms = now == 0 ? 1 : now;
    TLOG_ERROR("raft", "%s", why);
}

static void transport__free_stream(uv_handle_t *h)
{
    raft_free(h);
}

static void transport__hs_maybe_free(struct transport__hs *hs)
{
    if (hs->finished && !hs->writing && !hs->timer_open) {
        free(hs);
    }
}

static void transport__hs_timer_closed(uv_handle_t *h)
{
    struct transport__hs *hs = h->data;
    hs->timer_open = false;
    transport__hs_maybe_free(hs);
}

/* End the exchange: unlink, stop the timer, hand the stream over or close
 * it. */
static void transport__hs_finish(struct transport__hs *hs, int result)
{
    struct transport *t = hs->t;
    struct transport__hs **pp;
    uv_stream_t *stream = hs->stream;
    if (hs->finished) {
        return;
    }
    hs->finished = true;
    for (pp = &t->handshakes; *pp != NULL && *pp != hs; pp = &(*pp)->next) {
    }
    if (*pp == hs) {
        *pp = hs->next;
    }
    uv_timer_stop(&hs->timer);
    uv_close((uv_handle_t *)&hs->timer, transport__hs_timer_closed);
    if (!uv_is_closing((uv_handle_t *)stream)) {
        uv_read_stop(stream);
    }
    if (result == 0 && !t->closing) {
        stream->data = NULL;
        if (hs->inbound) {
            t->accept_cb(&t->outer, hs->id, hs->address, stream);
        } else {
            hs->outer_req->cb(hs->outer_req, stream, 0);
        }
    } else {
        if (!uv_is_closing((uv_handle_t *)stream)) {
            uv_close((uv_handle_t *)stream, transport__free_stream);
        }
        if (!hs->inbound) {
            hs->outer_req->cb(hs->outer_req, NULL, t->closing ? RAFT_CANCELED : RAFT_NOCONNECTION);
        }
    }
    transport__hs_maybe_free(hs);
}

static void transport__hs_written(uv_write_t *req, int status)
{
    struct transport__hs *hs = req->data;
    hs->writing = false;
    if (status != 0 && hs->result == 0) {
        hs->result = -1;
    }
    /* Inbound: our answer is out; the exchange is complete. */
    if (hs->inbound && hs->got == TRANSPORT_HELLO_SIZE && !hs->finished) {
        transport__hs_finish(hs, hs->result);
        return;
    }
    if (hs->result != 0 && !hs->finished) {
        transport__hs_finish(hs, hs->result);
        return;
    }
    transport__hs_maybe_free(hs);
}

static void transport__hs_send(struct transport__hs *hs)
{
    struct transport_hello mine;
    uv_buf_t buf;
    transport__local(hs->t, &mine);
    transport__hello_encode(&mine, hs->out);
    buf = uv_buf_init((char *)hs->out, sizeof hs->out);
    hs->write.data = hs;
    if (uv_write(&hs->write, hs->stream, &buf, 1, transport__hs_written) == 0) {
        hs->writing = true;
    } else {
        hs->result = -1;
        transport__hs_finish(hs, -1);
    }
}

static void transport__hs_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct transport__hs *hs = h->data;
    (void)suggested;
    buf->base = (char *)hs->in + hs->got;
    buf->len = sizeof hs->in - hs->got; /* exactly the rest: never read past it */
}

static void transport__hs_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct transport__hs *hs = stream->data;
    struct transport *t = hs->t;
    struct transport_hello peer;
    char why[512] = "";
    (void)buf;
    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        if (hs->cert_id != 0) {
            /* Over TLS the peer checks our certificate after the handshake
             * and closes if it does not like it: say so on this side too. */
            snprintf(why, sizeof why, "raft connection %s node %llu at %s: closed by the peer "
                     "before the tally hello (it may have refused our certificate: see its "
                     "log)", hs->inbound ? "from" : "to", (unsigned long long)hs->cert_id,
                     hs->address);
            transport__say(t, hs->cert_id, why);
        }
        transport__hs_finish(hs, -1);
        return;
    }
    hs->got += (size_t)nread;
    if (hs->got < sizeof hs->in) {
        return;
    }
    uv_read_stop(stream);
    if (transport__hello_decode(hs->in, &peer) != 0) {
        snprintf(why, sizeof why, "raft connection %s node %llu at %s: no tally hello (a "
                 "tallyd older than this one, or not a tallyd): refused; upgrade every node "
                 "(docs/operations.md, Upgrade)", hs->inbound ? "from" : "to",
                 (unsigned long long)hs->id, hs->address);
        transport__say(t, hs->id, why);
        hs->result = -1;
    } else if (hs->cert_id != 0 && peer.node_id != hs->cert_id) {
        snprintf(why, sizeof why, "raft connection %s %s: refused: its hello says node %llu, "
                 "its certificate says node %llu", hs->inbound ? "from" : "to", hs->address,
                 (unsigned long long)peer.node_id, (unsigned long long)hs->cert_id);
        transport__say(t, peer.node_id, why);
        hs->result = -1;
    } else if (t->guard.check != NULL &&
               t->guard.check(t->guard.arg, &peer, hs->inbound, why, sizeof why) != 0) {
        transport__say(t, peer.node_id, why);
        hs->result = -1;
    }
    if (hs->inbound) {
        transport__hs_send(hs); /* answer also a refusal: the peer logs both ids */
    } else {
        transport__hs_finish(hs, hs->result);
    }
}

static void transport__hs_timeout(uv_timer_t *timer)
{
    struct transport__hs *hs = timer->data;
    transport__hs_finish(hs, -1);
}

static void transport__hs_start(struct transport *t, struct transport__hs *hs,
                                uv_stream_t *stream)
{
    hs->t = t;
    hs->stream = stream;
    stream->data = hs;
    hs->next = t->handshakes;
    t->handshakes = hs;
    uv_timer_init(t->loop, &hs->timer);
    hs->timer.data = hs;
    hs->timer_open = true;
    uv_timer_start(&hs->timer, transport__hs_timeout, TRANSPORT_HELLO_TIMEOUT_MS, 0);
    if (uv_read_start(stream, transport__hs_alloc, transport__hs_read) != 0) {
        transport__hs_finish(hs, -1);
        return;
    }
    if (!hs->inbound) {
        transport__hs_send(hs);
    }
}

static void transport__tls_start(struct transport *t, uv_stream_t *stream, bool inbound,
                                 raft_id id, const char *address,
                                 struct raft_uv_connect *outer_req);

static void transport__accept(struct raft_uv_transport *inner, raft_id id, const char *address,
                              struct uv_stream_s *stream)
{
    struct transport *t = TRANSPORT__OF(inner, inner);
    struct transport__hs *hs;
    transport__nodelay(stream);
    if (t->tls != NULL && !t->closing) {
        transport__tls_start(t, stream, true, id, address, NULL); /* TLS hook */
        return;
    }
    hs = calloc(1, sizeof *hs);
    if (hs == NULL || t->closing) {
        free(hs);
        uv_close((uv_handle_t *)stream, transport__free_stream);
        return;
    }
    hs->inbound = true;
    hs->id = id;
    snprintf(hs->address, sizeof hs->address, "%s", address);
    transport__hs_start(t, hs, stream);
}

static int transport__listen(struct raft_uv_transport *outer, raft_uv_accept_cb cb)
{
    struct transport *t = TRANSPORT__OF(outer, outer);
    int rv;
    t->accept_cb = cb;
    rv = t->inner.listen(&t->inner, transport__accept);
    if (rv != 0) {
        memcpy(outer->errmsg, t->inner.errmsg, sizeof outer->errmsg);
    }
    return rv;
}

static void transport__connect_cb(struct raft_uv_connect *inner_req, struct uv_stream_s *stream,
                                  int status)
{
    struct transport__connect *c = inner_req->data;
    struct raft_uv_connect *outer_req = c->outer_req;
    struct transport *t = c->t;
    struct transport__hs *hs;
    if (status != 0) {
        free(c);
        outer_req->cb(outer_req, stream, status);
        return;
    }
    transport__nodelay(stream);
    if (t->tls != NULL && !t->closing) { /* TLS hook */
        raft_id id = c->id;
        char address[sizeof c->address];
        memcpy(address, c->address, sizeof address);
        free(c);
        transport__tls_start(t, stream, false, id, address, outer_req);
        return;
    }
    hs = calloc(1, sizeof *hs);
    if (hs == NULL || t->closing) {
        free(hs);
        free(c);
        uv_close((uv_handle_t *)stream, transport__free_stream);
        outer_req->cb(outer_req, NULL, t->closing ? RAFT_CANCELED : RAFT_NOMEM);
        return;
    }
    hs->outer_req = outer_req;
    hs->id = c->id;
    snprintf(hs->address, sizeof hs->address, "%s", c->address);
    free(c);
    transport__hs_start(t, hs, stream);
}

static int transport__connect(struct raft_uv_transport *outer, struct raft_uv_connect *req,
                              raft_id id, const char *address, raft_uv_connect_cb cb)
{
    struct transport *t = TRANSPORT__OF(outer, outer);
    struct transport__connect *c = malloc(sizeof *c);
    int rv;
    if (c == NULL) {
        return RAFT_NOMEM;
    }
    req->cb = cb;
    c->outer_req = req;
    c->inner_req.data = c;
    c->t = t;
    c->id = id;
    snprintf(c->address, sizeof c->address, "%s", address);
    rv = t->inner.connect(&t->inner, &c->inner_req, id, address, transport__connect_cb);
    if (rv != 0) {
        memcpy(outer->errmsg, t->inner.errmsg, sizeof outer->errmsg);
        free(c);
    }
    return rv;
}

static void transport__close_cb(struct raft_uv_transport *inner)
{
    struct transport *t = TRANSPORT__OF(inner, inner);
    if (t->close_cb != NULL) {
        t->close_cb(&t->outer);
    }
}

static void transport__close(struct raft_uv_transport *outer, raft_uv_transport_close_cb cb)
{
    struct transport *t = TRANSPORT__OF(outer, outer);
    t->close_cb = cb;
    t->closing = true;
    tlspipe_group_close(&t->pipes);
    while (t->handshakes != NULL) {
        transport__hs_finish(t->handshakes, -1);
    }
    t->inner.close(&t->inner, transport__close_cb);
}

int transport_init(struct transport *t, uv_loop_t *loop)
{
    int rv;
    memset(t, 0, sizeof *t);
    t->loop = loop;
    /* raft 0.22 refuses a transport whose struct version is not filled
     * in (RAFT_INVALID, "Invalid parameter"): version 1 is what both
     * structs implement. */
    t->inner.version = 1;
    t->outer.version = 1;
    rv = raft_uv_tcp_init(&t->inner, loop);
    if (rv != 0) {
        return rv;
    }
    t->outer.init = transport__init;
    t->outer.listen = transport__listen;
    t->outer.connect = transport__connect;
    t->outer.close = transport__close;
    return 0;
}

void transport_close(struct transport *t)
{
    raft_uv_tcp_close(&t->inner);
}

void transport_set_guard(struct transport *t, const struct transport_guard *g)
{
    t->guard = *g;
}

/* ---- Mutual TLS on the Raft links (docs/security.md) -------------------
 *
 * The happy path: raft_uv_tcp made the connection and exchanged its own
 * handshake (which names the dialer's id and address, in clear); we run
 * TLS on that stream (repl/tlspipe.c: we accept inbound links as the TLS
 * server, dial outbound ones as the client; both sides must present a
 * certificate of the cluster's CA), check that the peer's certificate is
 * for the node id and address the link claims (CN=node<ID>, the IP in the
 * subjectAltName), and then do the tally hello and hand raft the
 * plaintext end of the pipe, exactly as without TLS.
 * Failure modes: a wrong CA, an expired or a misnamed certificate, a
 * certificate for another node id: the link is closed, raft retries later
 * (and the same refusal is logged again at most every 10 s), so such a
 * node never joins and never votes. Both sides log: the side that refuses
 * says why; the other sees the TLS alert or, when its own certificate was
 * refused after the handshake, the close before the hello. */
struct transport__tls {
    struct transport *t;
    bool inbound;
    raft_id id;                        /* who the link claims to be */
    char address[256];                 /* and its Raft address */
    struct raft_uv_connect *outer_req; /* outbound: raft's request */
};

void transport_set_tls(struct transport *t, const struct tls_set *tls)
{
    t->tls = tls;
}

/* The host part of "A.B.C.D:PORT" into @ip. */
static void transport__host(const char *address, char *ip, size_t cap)
{
    const char *colon = strrchr(address, ':');
    size_t n = colon != NULL ? (size_t)(colon - address) : strlen(address);
    snprintf(ip, cap, "%.*s", (int)(n < cap ? n : cap - 1), address);
}

static void transport__tls_fail(struct transport__tls *x, const char *why)
{
    struct transport *t = x->t;
    char line[512];
    if (!t->closing) {
        snprintf(line, sizeof line, "raft connection %s node %llu at %s: refused: %s",
                 x->inbound ? "from" : "to", (unsigned long long)x->id, x->address, why);
        transport__say(t, x->id, line);
    }
    if (!x->inbound) {
        x->outer_req->cb(x->outer_req, NULL, t->closing ? RAFT_CANCELED : RAFT_NOCONNECTION);
    }
    free(x);
}

static int transport__tls_done(void *arg, SSL *ssl, int fd, const char *why)
{
    struct transport__tls *x = arg;
    struct transport *t = x->t;
    struct transport__hs *hs;
    uv_pipe_t *plain;
    char ip[64], whose[256];
    if (fd < 0) {
        transport__tls_fail(x, why);
        return 0;
    }
    transport__host(x->address, ip, sizeof ip);
    if (tls_check_node(ssl, x->id, ip, whose, sizeof whose) != 0) {
        char line[300];
        snprintf(line, sizeof line, "its certificate does not prove it is that node: %s", whose);
        transport__tls_fail(x, line);
        return -1;
    }
    hs = calloc(1, sizeof *hs);
    plain = raft_malloc(sizeof *plain); /* raft frees the streams it is given */
    if (hs == NULL || plain == NULL || t->closing) {
        free(hs);
        raft_free(plain);
        transport__tls_fail(x, "out of memory");
        return -1;
    }
    uv_pipe_init(t->loop, plain, 0);
    if (uv_pipe_open(plain, fd) != 0) {
        close(fd); /* the pipe sees the end and closes the link */
        uv_close((uv_handle_t *)plain, transport__free_stream);
        free(hs);
        transport__tls_fail(x, "cannot open the plaintext end");
        return 0;
    }
    hs->inbound = x->inbound;
    hs->id = x->id;
    hs->cert_id = x->id;
    hs->outer_req = x->outer_req;
    snprintf(hs->address, sizeof hs->address, "%s", x->address);
    free(x);
    transport__hs_start(t, hs, (uv_stream_t *)plain);
    return 0;
}

static void transport__tls_start(struct transport *t, uv_stream_t *stream, bool inbound,
                                 raft_id id, const char *address,
                                 struct raft_uv_connect *outer_req)
{
    struct transport__tls *x = calloc(1, sizeof *x);
    struct tlspipe_opts o;
    if (x == NULL) {
        uv_close((uv_handle_t *)stream, transport__free_stream);
        if (!inbound) {
            outer_req->cb(outer_req, NULL, RAFT_NOMEM);
        }
        return;
    }
    x->t = t;
    x->inbound = inbound;
    x->id = id;
    x->outer_req = outer_req;
    snprintf(x->address, sizeof x->address, "%s", address);
    memset(&o, 0, sizeof o);
    o.ctx = inbound ? t->tls->peers_in : t->tls->peers_out;
    o.server = inbound;
    o.handshake_timeout_ms = TRANSPORT_HELLO_TIMEOUT_MS;
    o.free_net = transport__free_stream;
    o.done = transport__tls_done;
    o.arg = x;
    o.group = &t->pipes;
    if (tlspipe_start(t->loop, stream, &o) != 0) {
        transport__tls_fail(x, "out of memory");
    }
}

/* Wait for @fd to be ready for @events until @deadline_ms (monotonic). */
static int transport__wait(int fd, short events, uint64_t deadline_ms)
{
    for (int i = 0; i < 1000; i++) {
        uint64_t now = uv_hrtime() / 1000000u;
        struct pollfd p = {fd, events, 0};
        int rv;
        if (now >= deadline_ms) {
            return -1;
        }
        rv = poll(&p, 1, (int)(deadline_ms - now));
        if (rv > 0) {
            return (p.revents & (POLLERR | POLLNVAL)) != 0 && (p.revents & events) == 0 ? -1 : 0;
        }
        if (rv == 0 || errno != EINTR) {
            return -1;
        }
    }
    return -1;
}

/* Send all of @p on the non-blocking @fd by @deadline_ms. 0 or -1. */
static int transport__send_plain(int fd, const uint8_t *p, size_t len, uint64_t deadline_ms)
{
    for (size_t sent = 0; sent < len;) {
        ssize_t n = send(fd, p + sent, len - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
        } else if (n < 0 && errno == EAGAIN && transport__wait(fd, POLLOUT, deadline_ms) == 0) {
            continue;
        } else {
            return -1;
        }
    }
    return 0;
}

/* The probe's hello exchange over mutual TLS: the handshake, the peer's
 * certificate checked as on a Raft link (node @peer_id, the IP of
 * @address), then our hello out and the peer's in. 0 or -1. */
static int transport__probe_tls(int fd, const struct tls_set *tls, uint64_t peer_id,
                                const char *address, const uint8_t *hello, uint8_t *in,
                                uint64_t deadline_ms)
{
    SSL *ssl = SSL_new(tls->peers_out);
    char why[300], ip[64];
    int64_t deadline = (int64_t)deadline_ms; /* both clocks are CLOCK_MONOTONIC in ms */
    size_t got = 0;
    int rv = -1;
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        goto out;
    }
    SSL_set_connect_state(ssl);
    transport__host(address, ip, sizeof ip);
    if (tls_fd_handshake(ssl, deadline, NULL, why, sizeof why) != 0) {
        TLOG_WARN("raft", "probe of node %llu at %s: %s", (unsigned long long)peer_id, address,
                  why);
        goto out;
    }
    if (tls_check_node(ssl, peer_id, ip, why, sizeof why) != 0) {
        TLOG_ERROR("raft", "probe of node %llu at %s: refused: its certificate does not prove "
                   "it is that node: %s", (unsigned long long)peer_id, address, why);
        goto out;
    }
    if (tls_fd_send(ssl, hello, TRANSPORT_HELLO_SIZE, deadline, NULL, why, sizeof why) != 0) {
        goto out;
    }
    while (got < TRANSPORT_HELLO_SIZE) {
        ssize_t n = tls_fd_recv(ssl, in + got, TRANSPORT_HELLO_SIZE - got, deadline, NULL, why,
                                sizeof why);
        if (n <= 0) {
            goto out;
        }
        got += (size_t)n;
    }
    rv = 0;
out:
    SSL_free(ssl);
    return rv;
}

int transport_probe(const char *address, uint64_t peer_id, uint64_t my_id,
                    const char *my_address, const struct tls_set *tls,
                    const struct transport_hello *mine, struct transport_hello *peer,
                    int timeout_ms)
{
    char host[64];
    const char *colon = strrchr(address, ':');
    struct sockaddr_in sin;
    uint8_t msg[24 + 256 + TRANSPORT_HELLO_SIZE], in[TRANSPORT_HELLO_SIZE];
    size_t addr_len = strlen(my_address) + 1, padded = (addr_len + 7) / 8 * 8, len, got = 0;
    uint64_t deadline = uv_hrtime() / 1000000u + (uint64_t)timeout_ms;
    int fd, rv = -1;
    if (colon == NULL || (size_t)(colon - address) >= sizeof host || padded > 256) {
        return -1;
    }
    memcpy(host, address, (size_t)(colon - address));
    host[colon - address] = '\0';
    if (uv_ip4_addr(host, atoi(colon + 1), &sin) != 0) {
        return -1;
    }
    /* raft_uv_tcp's handshake: protocol 1, our id, the padded length of
     * our address, the address; then our hello (over TLS when on). */
    memset(msg, 0, sizeof msg);
    byte_put_u64(msg, 1);
    byte_put_u64(msg + 8, my_id);
    byte_put_u64(msg + 16, padded);
    memcpy(msg + 24, my_address, addr_len - 1);
    transport__hello_encode(mine, msg + 24 + padded);
    len = 24 + padded + (tls != NULL ? 0 : TRANSPORT_HELLO_SIZE);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0 && errno != EINPROGRESS) {
        goto out;
    }
    if (transport__wait(fd, POLLOUT, deadline) != 0) {
        goto out;
    }
    if (transport__send_plain(fd, msg, len, deadline) != 0) {
        goto out;
    }
    if (tls != NULL) {
        if (transport__probe_tls(fd, tls, peer_id, address, msg + 24 + padded, in, deadline) !=
            0) {
            goto out;
        }
        got = sizeof in;
    }
    while (got < sizeof in) {
        ssize_t n = recv(fd, in + got, sizeof in - got, 0);
        if (n > 0) {
            got += (size_t)n;
        } else if (n < 0 && errno == EAGAIN && transport__wait(fd, POLLIN, deadline) == 0) {
            continue;
        } else {
            goto out;
        }
    }
    rv = transport__hello_decode(in, peer);
out:
    close(fd);
    return rv;
}
