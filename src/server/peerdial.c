/* Dialling a member's client port: see peerdial.h.
 *
 * A dial's life: connecting (the tcp is ours), then with TLS the handshake
 * (the tcp belongs to the tlspipe, and the dial waits for its done
 * callback holding no handle), then open (the stream is the tcp, or the
 * plaintext end of the tlspipe, a uv_pipe_t), or failed. @pending counts
 * what peerdial_close must wait for: a handle being closed or the
 * tlspipe's done callback. */
#include "server/peerdial.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/tls.h"
#include "repl/tlspipe.h"
#include "server/cfg.h"

enum peerdial__state { PD_CONNECTING, PD_HANDSHAKING, PD_OPEN, PD_FAILED };

struct peerdial {
    uv_loop_t *loop;
    enum peerdial__state state;
    uv_tcp_t *tcp;                 /* malloc'ed; NULL once closed or the tlspipe's */
    uv_pipe_t *pipe;               /* TLS: the plaintext end, malloc'ed */
    uv_connect_t connect_req;
    SSL_CTX *ctx;                  /* TLS: the context it was made with (a reference) */
    const struct tls_set *tls;
    struct tlspipe_group *group;
    unsigned handshake_timeout_ms;
    char host[64];
    unsigned pending;              /* closes and the tlspipe's done to wait for */
    bool closing;                  /* peerdial_close was called */
    peerdial_ready_cb ready;
    void *arg;
    void (*closed)(void *arg);
    void *closed_arg;
};

static void peerdial__maybe_free(struct peerdial *d)
{
    if (d->closing && d->pending == 0) {
        void (*closed)(void *) = d->closed;
        void *arg = d->closed_arg;
        SSL_CTX_free(d->ctx); /* NULL: nothing */
        free(d);
        if (closed != NULL) {
            closed(arg);
        }
    }
}

static void peerdial__handle_closed(uv_handle_t *h)
{
    struct peerdial *d = h->data;
    free(h);
    d->pending--;
    peerdial__maybe_free(d);
}

static void peerdial__free_net(uv_handle_t *h)
{
    free(h);
}

static void peerdial__fail(struct peerdial *d, const char *why)
{
    d->state = PD_FAILED;
    if (!d->closing) {
        d->ready(d->arg, d, NULL, why);
    }
}

static void peerdial__open(struct peerdial *d, uv_stream_t *stream)
{
    d->state = PD_OPEN;
    d->ready(d->arg, d, stream, NULL);
}

static int peerdial__tls_done(void *arg, SSL *ssl, int fd, const char *why)
{
    struct peerdial *d = arg;
    char msg[ERR_MSG_SIZE];
    (void)ssl;
    d->pending--; /* the done callback came */
    if (fd < 0) {
        if (d->closing) {
            d->state = PD_FAILED;
            peerdial__maybe_free(d);
            return 0;
        }
        snprintf(msg, sizeof msg, "TLS handshake failed: %s", why != NULL ? why : "?");
        peerdial__fail(d, msg); /* the user may close (and free) it in there */
        return 0;
    }
    if (d->closing) {
        close(fd); /* the pipe sees the end and closes with close_notify */
        peerdial__maybe_free(d);
        return 0;
    }
    if ((d->pipe = malloc(sizeof *d->pipe)) == NULL) {
        close(fd);
        peerdial__fail(d, "out of memory");
        return 0;
    }
    uv_pipe_init(d->loop, d->pipe, 0);
    d->pipe->data = d;
    d->pending++;
    if (uv_pipe_open(d->pipe, fd) != 0) {
        close(fd);
        uv_close((uv_handle_t *)d->pipe, peerdial__handle_closed);
        d->pipe = NULL;
        peerdial__fail(d, "cannot open the TLS pipe");
        return 0;
    }
    d->pending--; /* counted again when closed */
    peerdial__open(d, (uv_stream_t *)d->pipe);
    return 0;
}

static void peerdial__on_connect(uv_connect_t *req, int status)
{
    struct peerdial *d = req->data;
    struct tlspipe_opts o;
    uv_tcp_t *tcp;
    char msg[ERR_MSG_SIZE];
    if (d->closing) {
        return; /* its tcp is being closed */
    }
    if (status != 0) {
        snprintf(msg, sizeof msg, "connect: %s", uv_strerror(status));
        d->pending++;
        uv_close((uv_handle_t *)d->tcp, peerdial__handle_closed);
        d->tcp = NULL;
        peerdial__fail(d, msg);
        return;
    }
    if (d->tls == NULL) {
        peerdial__open(d, (uv_stream_t *)d->tcp);
        return;
    }
    if (SSL_CTX_up_ref(d->tls->peers_out) != 1) {
        d->pending++;
        uv_close((uv_handle_t *)d->tcp, peerdial__handle_closed);
        d->tcp = NULL;
        peerdial__fail(d, "TLS: cannot take the client context");
        return;
    }
    d->ctx = d->tls->peers_out;
    memset(&o, 0, sizeof o);
    o.ctx = d->ctx;
    o.server = false;
    o.expect_host = d->host;
    o.handshake_timeout_ms = d->handshake_timeout_ms;
    o.free_net = peerdial__free_net;
    o.done = peerdial__tls_done;
    o.arg = d;
    o.group = d->group;
    tcp = d->tcp;
    d->tcp = NULL; /* the tlspipe's now */
    d->state = PD_HANDSHAKING;
    d->pending++; /* its done callback */
    status = tlspipe_start(d->loop, (uv_stream_t *)tcp, &o);
    if (status != 0) {
        /* tcp closed by tlspipe_start, done not called */
        d->pending--;
        snprintf(msg, sizeof msg, "TLS: %s", uv_strerror(status));
        peerdial__fail(d, msg);
    }
}

struct peerdial *peerdial_start(uv_loop_t *loop, const char *addr, const struct tls_set *tls,
                                struct tlspipe_group *group, unsigned handshake_timeout_ms,
                                peerdial_ready_cb ready, void *arg, char *why)
{
    struct sockaddr_in sin;
    struct peerdial *d;
    unsigned port;
    int rv;
    d = calloc(1, sizeof *d);
    if (d == NULL || (d->tcp = malloc(sizeof *d->tcp)) == NULL) {
        free(d);
        err_printf(why, "out of memory");
        return NULL;
    }
    if (cfg_parse_addr(addr, d->host, sizeof d->host, &port) != 0 ||
        uv_ip4_addr(d->host, (int)port, &sin) != 0) {
        free(d->tcp);
        free(d);
        err_printf(why, "bad address %s", addr);
        return NULL;
    }
    d->loop = loop;
    d->tls = tls;
    d->group = group;
    d->handshake_timeout_ms = handshake_timeout_ms;
    d->ready = ready;
    d->arg = arg;
    d->state = PD_CONNECTING;
    uv_tcp_init(loop, d->tcp);
    d->tcp->data = d;
    d->connect_req.data = d;
    rv = uv_tcp_connect(&d->connect_req, d->tcp, (const struct sockaddr *)&sin,
                        peerdial__on_connect);
    if (rv != 0) {
        /* No callback will come: the dial frees itself once its tcp is
         * closed, and the caller learns it now. */
        d->closing = true;
        d->pending = 1;
        uv_close((uv_handle_t *)d->tcp, peerdial__handle_closed);
        err_printf(why, "connect: %s", uv_strerror(rv));
        return NULL;
    }
    return d;
}

void peerdial_close(struct peerdial *d, void (*closed)(void *arg), void *closed_arg)
{
    if (d == NULL || d->closing) {
        return;
    }
    d->closing = true;
    d->closed = closed;
    d->closed_arg = closed_arg;
    if (d->tcp != NULL) {
        /* connecting, or open in plaintext */
        d->tcp->data = d;
        d->pending++;
        uv_close((uv_handle_t *)d->tcp, peerdial__handle_closed);
        d->tcp = NULL;
    }
    if (d->pipe != NULL) {
        /* open over TLS: the tlspipe sends close_notify and closes the tcp */
        d->pipe->data = d;
        d->pending++;
        uv_close((uv_handle_t *)d->pipe, peerdial__handle_closed);
        d->pipe = NULL;
    }
    /* In the handshake: its done callback frees the dial (pending). */
    peerdial__maybe_free(d);
}

bool peerdial_ctx_stale(const struct peerdial *d, const struct tls_set *tls)
{
    return d->ctx != NULL && tls != NULL && d->ctx != tls->peers_out;
}
