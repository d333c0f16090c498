/* A TLS connection on a libuv stream, handed over as a plaintext socket
 * (tlspipe.h).
 *
 * The happy path: the net stream's bytes go into the SSL's read memory
 * BIO; SSL_do_handshake runs until it completes, and whatever it writes
 * into the write memory BIO is sent on the net stream. Then a socketpair
 * is made: our end (a uv_pipe_t) is read, each chunk goes through
 * SSL_write and out on the net stream; the net stream's records go
 * through SSL_read and are written to our end, for the user to read from
 * the other. A user that asked for the hand-over gets the TCP socket and
 * the SSL instead, and does TLS itself.
 *
 * Failure modes:
 * - the handshake fails (wrong CA, expired certificate, wrong name, not
 *   TLS) or takes longer than handshake_timeout_ms: done() hears why, the
 *   alert OpenSSL made is still sent, the net stream is closed;
 * - the user refuses the peer from done(): both ends are closed;
 * - the user closes its end: close_notify is sent, then the net stream is
 *   shut down (queued bytes leave first) and closed;
 * - the peer closes, sends close_notify, or a record fails to decrypt:
 *   our end is shut down after the bytes already decrypted, so the user
 *   reads them and then end-of-file;
 * - a side that does not take its bytes: reading the other side stops
 *   while more than TLSPIPE__HIGH bytes wait for it, and resumes below
 *   TLSPIPE__LOW, so memory stays bounded; a teardown that cannot drain
 *   within TLSPIPE__LINGER_MS closes at once. */
#include "repl/tlspipe.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/tls.h"

#define TLSPIPE__CHUNK (64u << 10)
#define TLSPIPE__HIGH (4u << 20)
#define TLSPIPE__LOW (1u << 20)
#define TLSPIPE__LINGER_MS 5000
#define TLSPIPE__RECORD_HANDSHAKE 0x16 /* first byte of a TLS ClientHello */

enum tlspipe__state { TLSPIPE__HANDSHAKE, TLSPIPE__OPEN, TLSPIPE__CLOSING };

struct tlspipe {
    struct tlspipe_group *group;
    struct tlspipe *next, *prev;   /* in group */
    uv_loop_t *loop;
    uv_stream_t *net;              /* the TLS side (owned) */
    uv_close_cb free_net;
    uv_pipe_t plain;               /* our end of the socketpair */
    bool plain_open;
    uv_timer_t timer;              /* handshake timeout, then linger */
    uv_shutdown_t net_sd, plain_sd;
    SSL *ssl;
    BIO *rbio, *wbio;              /* owned by ssl */
    enum tlspipe__state state;
    bool server, first_seen, done_called;
    bool hand_over;                /* opts.hand_over */
    bool handing;                  /* handshake done; waiting for its last
                                    * flight to leave before the hand-over */
    bool net_reading, plain_reading;
    unsigned handles;              /* open uv handles: free at 0 */
    tlspipe_done_cb done;
    void *arg;
    void *not_tls_reply;
    size_t not_tls_reply_len;
};

struct tlspipe__write {
    uv_write_t req;
    struct tlspipe *p;
    char data[];
};

/* One buffer for every read: its bytes are consumed (copied into a BIO or
 * a write) inside the read callback, and tallyd runs one loop thread. */
static char tlspipe__rbuf[TLSPIPE__CHUNK];

static void tlspipe__end(struct tlspipe *p, bool graceful);
static void tlspipe__hand_over(struct tlspipe *p);
static void tlspipe__net_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void tlspipe__plain_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void tlspipe__alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    b->base = tlspipe__rbuf;
    b->len = sizeof tlspipe__rbuf;
}

static void tlspipe__maybe_free(struct tlspipe *p)
{
    if (p->handles > 0) {
        return;
    }
    SSL_free(p->ssl);
    free(p->not_tls_reply);
    free(p);
}

static void tlspipe__closed(uv_handle_t *h)
{
    struct tlspipe *p = h->data;
    if (h == (uv_handle_t *)p->net) {
        p->free_net(h);
    }
    p->handles--;
    /* Both streams are gone: the linger timer has nothing left to do. */
    if (p->handles == 1 && !uv_is_closing((uv_handle_t *)&p->timer)) {
        uv_close((uv_handle_t *)&p->timer, tlspipe__closed);
    }
    tlspipe__maybe_free(p);
}

static void tlspipe__fail(struct tlspipe *p, const char *why)
{
    if (!p->done_called) {
        p->done_called = true;
        p->done(p->arg, p->ssl, -1, why);
    }
}

static size_t tlspipe__queued(uv_stream_t *s)
{
    return uv_stream_get_write_queue_size(s);
}

static void tlspipe__start_net(struct tlspipe *p)
{
    if (!p->net_reading && p->state != TLSPIPE__CLOSING &&
        uv_read_start(p->net, tlspipe__alloc, tlspipe__net_read) == 0) {
        p->net_reading = true;
    }
}

static void tlspipe__stop_net(struct tlspipe *p)
{
    if (p->net_reading) {
        uv_read_stop(p->net);
        p->net_reading = false;
    }
}

static void tlspipe__start_plain(struct tlspipe *p)
{
    if (!p->plain_reading && p->plain_open && p->state == TLSPIPE__OPEN &&
        uv_read_start((uv_stream_t *)&p->plain, tlspipe__alloc, tlspipe__plain_read) == 0) {
        p->plain_reading = true;
    }
}

static void tlspipe__stop_plain(struct tlspipe *p)
{
    if (p->plain_reading) {
        uv_read_stop((uv_stream_t *)&p->plain);
        p->plain_reading = false;
    }
}

static void tlspipe__written(uv_write_t *req, int status)
{
    struct tlspipe__write *w = (struct tlspipe__write *)req;
    struct tlspipe *p = w->p;
    uv_stream_t *s = req->handle;
    free(w);
    if (p->state == TLSPIPE__CLOSING) {
        return;
    }
    if (status < 0) {
        tlspipe__end(p, false);
        return;
    }
    if (p->handing) {
        tlspipe__hand_over(p);
        return;
    }
    /* Room again on this side: read the side that feeds it. */
    if (tlspipe__queued(s) < TLSPIPE__LOW) {
        if (s == p->net) {
            tlspipe__start_plain(p);
        } else {
            tlspipe__start_net(p);
        }
    }
}

/* Queue a copy of @n bytes on @s. 0 or -1. */
static int tlspipe__write(struct tlspipe *p, uv_stream_t *s, const void *data, size_t n)
{
    struct tlspipe__write *w = malloc(sizeof *w + n);
    uv_buf_t b;
    if (w == NULL) {
        return -1;
    }
    w->p = p;
    memcpy(w->data, data, n);
    b = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->req, s, &b, 1, tlspipe__written) != 0) {
        free(w);
        return -1;
    }
    return 0;
}

/* Send what OpenSSL wrote into the write BIO. 0 or -1. */
static int tlspipe__flush(struct tlspipe *p)
{
    size_t n = BIO_ctrl_pending(p->wbio);
    struct tlspipe__write *w;
    uv_buf_t b;
    int got;
    if (n == 0 || uv_is_closing((uv_handle_t *)p->net)) {
        return 0;
    }
    w = malloc(sizeof *w + n);
    if (w == NULL) {
        return -1;
    }
    w->p = p;
    got = BIO_read(p->wbio, w->data, (int)n);
    if (got <= 0) {
        free(w);
        return -1;
    }
    b = uv_buf_init(w->data, (unsigned)got);
    if (uv_write(&w->req, p->net, &b, 1, tlspipe__written) != 0) {
        free(w);
        return -1;
    }
    if (tlspipe__queued(p->net) > TLSPIPE__HIGH) {
        tlspipe__stop_plain(p);
    }
    return 0;
}

static void tlspipe__shutdown_cb(uv_shutdown_t *req, int status)
{
    (void)status;
    if (!uv_is_closing((uv_handle_t *)req->handle)) {
        uv_close((uv_handle_t *)req->handle, tlspipe__closed);
    }
}

static void tlspipe__close_side(uv_stream_t *s, uv_shutdown_t *sd, bool graceful)
{
    if (uv_is_closing((uv_handle_t *)s)) {
        return;
    }
    if (graceful && uv_shutdown(sd, s, tlspipe__shutdown_cb) == 0) {
        return;
    }
    uv_close((uv_handle_t *)s, tlspipe__closed);
}

static void tlspipe__linger(uv_timer_t *t)
{
    struct tlspipe *p = t->data;
    if (!uv_is_closing((uv_handle_t *)p->net)) {
        uv_close((uv_handle_t *)p->net, tlspipe__closed);
    }
    if (p->plain_open && !uv_is_closing((uv_handle_t *)&p->plain)) {
        uv_close((uv_handle_t *)&p->plain, tlspipe__closed);
    }
}

static void tlspipe__leave_group(struct tlspipe *p)
{
    if (p->group != NULL) {
        if (p->prev != NULL) {
            p->prev->next = p->next;
        } else {
            p->group->head = p->next;
        }
        if (p->next != NULL) {
            p->next->prev = p->prev;
        }
        p->group->open--;
        p->group = NULL;
    }
}

/* Tear the pipe down; @graceful lets queued bytes (a TLS alert, the last
 * decrypted data) leave first, for at most TLSPIPE__LINGER_MS. */
static void tlspipe__end(struct tlspipe *p, bool graceful)
{
    if (p->state == TLSPIPE__CLOSING) {
        return;
    }
    if (p->state == TLSPIPE__HANDSHAKE && p->group != NULL) {
        p->group->handshaking--;
    }
    p->state = TLSPIPE__CLOSING;
    tlspipe__fail(p, "connection closed");
    tlspipe__leave_group(p);
    tlspipe__stop_net(p);
    tlspipe__stop_plain(p);
    tlspipe__close_side(p->net, &p->net_sd, graceful);
    if (p->plain_open) {
        tlspipe__close_side((uv_stream_t *)&p->plain, &p->plain_sd, graceful);
    }
    uv_timer_stop(&p->timer);
    if (graceful) {
        uv_timer_start(&p->timer, tlspipe__linger, TLSPIPE__LINGER_MS, 0);
    } else if (!uv_is_closing((uv_handle_t *)&p->timer)) {
        uv_close((uv_handle_t *)&p->timer, tlspipe__closed);
    }
}

/* Decrypt what arrived and hand it to the user's end. SSL_read returns
 * one record (at most 16 KiB) per call: records are gathered into the
 * buffer so that a bulk transfer costs one write per 64 KiB, not per
 * record. */
static void tlspipe__pump_in(struct tlspipe *p)
{
    size_t have = 0;
    for (int i = 0; i < 100000 && p->state == TLSPIPE__OPEN; i++) {
        size_t k = 0;
        int ret = SSL_read_ex(p->ssl, tlspipe__rbuf + have, sizeof tlspipe__rbuf - have, &k);
        if (ret == 1) {
            have += k;
            if (have == sizeof tlspipe__rbuf) {
                if (tlspipe__write(p, (uv_stream_t *)&p->plain, tlspipe__rbuf, have) != 0) {
                    tlspipe__end(p, false);
                    return;
                }
                have = 0;
            }
            continue;
        }
        int e = SSL_get_error(p->ssl, ret);
        if (have > 0 && tlspipe__write(p, (uv_stream_t *)&p->plain, tlspipe__rbuf, have) != 0) {
            tlspipe__end(p, false);
            return;
        }
        have = 0;
        if (e == SSL_ERROR_WANT_READ) {
            break;
        }
        /* close_notify, or a record that does not decrypt: the user gets
         * what was decrypted, then end-of-file. */
        ERR_clear_error();
        tlspipe__flush(p);
        tlspipe__end(p, true);
        return;
    }
    if (p->state == TLSPIPE__OPEN && tlspipe__queued((uv_stream_t *)&p->plain) > TLSPIPE__HIGH) {
        tlspipe__stop_net(p);
    }
}

/* The handshake completed and the user takes the TLS connection itself:
 * once the handshake's last flight has left (libuv would drop what is
 * still queued when the net stream closes), give it a duplicate of the
 * socket's fd and the SSL, and go. Reading stopped at the end of the
 * handshake, so whatever the peer sends next waits in the socket. */
static void tlspipe__hand_over(struct tlspipe *p)
{
    uv_os_fd_t net_fd;
    int fd;
    SSL *ssl;
    p->handing = true;
    tlspipe__stop_net(p);
    if (tlspipe__queued(p->net) > 0) {
        return; /* tlspipe__written calls again */
    }
    p->handing = false;
    if (uv_fileno((uv_handle_t *)p->net, &net_fd) != 0) {
        tlspipe__fail(p, "no socket to hand over");
        tlspipe__end(p, false);
        return;
    }
    if ((fd = fcntl(net_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
        tlspipe__fail(p, strerror(errno));
        tlspipe__end(p, false);
        return;
    }
    ssl = p->ssl;
    p->ssl = NULL;
    p->done_called = true;
    p->state = TLSPIPE__CLOSING;
    tlspipe__leave_group(p);
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)p->net, tlspipe__closed);
    uv_close((uv_handle_t *)&p->timer, tlspipe__closed);
    p->done(p->arg, ssl, fd, NULL);
}

/* The handshake completed: make the socketpair and ask the user. */
static void tlspipe__opened(struct tlspipe *p)
{
    int fds[2];
    uv_timer_stop(&p->timer);
    if (p->group != NULL) {
        p->group->handshaking--;
    }
    p->state = TLSPIPE__OPEN;
    if (p->hand_over) {
        tlspipe__hand_over(p);
        return;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
        tlspipe__fail(p, strerror(errno));
        tlspipe__end(p, false);
        return;
    }
    uv_pipe_init(p->loop, &p->plain, 0);
    p->plain.data = p;
    p->handles++;
    p->plain_open = true;
    if (uv_pipe_open(&p->plain, fds[0]) != 0) {
        close(fds[0]);
        close(fds[1]);
        tlspipe__fail(p, "uv_pipe_open failed");
        tlspipe__end(p, false);
        return;
    }
    p->done_called = true;
    if (p->done(p->arg, p->ssl, fds[1], NULL) != 0) {
        close(fds[1]);
        tlspipe__end(p, true); /* the peer hears close_notify */
        return;
    }
    tlspipe__start_plain(p);
    tlspipe__pump_in(p); /* data that came with the last handshake flight */
}

static void tlspipe__handshake(struct tlspipe *p)
{
    int ret = SSL_do_handshake(p->ssl);
    if (ret == 1) {
        if (tlspipe__flush(p) != 0) {
            tlspipe__fail(p, "out of memory");
            tlspipe__end(p, false);
            return;
        }
        tlspipe__opened(p);
        return;
    }
    if (SSL_get_error(p->ssl, ret) == SSL_ERROR_WANT_READ) {
        if (tlspipe__flush(p) != 0) {
            tlspipe__fail(p, "out of memory");
            tlspipe__end(p, false);
        }
        return;
    }
    char why[300];
    tls_explain(p->ssl, ret, why, sizeof why);
    tlspipe__flush(p); /* the alert tells the peer why */
    tlspipe__fail(p, why);
    tlspipe__end(p, true);
}

static void tlspipe__net_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct tlspipe *p = s->data;
    if (n == 0) {
        return;
    }
    if (n < 0) {
        if (p->state == TLSPIPE__HANDSHAKE) {
            tlspipe__fail(p, n == UV_EOF ? "the peer closed the connection during the TLS "
                                           "handshake (it may have refused our certificate)"
                                         : uv_strerror((int)n));
        }
        tlspipe__end(p, true);
        return;
    }
    if (p->server && !p->first_seen) {
        p->first_seen = true;
        if ((unsigned char)b->base[0] != TLSPIPE__RECORD_HANDSHAKE) {
            if (p->not_tls_reply != NULL) {
                tlspipe__write(p, p->net, p->not_tls_reply, p->not_tls_reply_len);
            }
            tlspipe__fail(p, "the peer does not speak TLS (a plaintext client on a TLS port)");
            tlspipe__end(p, true);
            return;
        }
    }
    if (BIO_write(p->rbio, b->base, (int)n) != (int)n) {
        tlspipe__fail(p, "out of memory");
        tlspipe__end(p, false);
        return;
    }
    if (p->state == TLSPIPE__HANDSHAKE) {
        tlspipe__handshake(p);
    } else if (p->state == TLSPIPE__OPEN) {
        tlspipe__pump_in(p);
        if (p->state == TLSPIPE__OPEN && tlspipe__flush(p) != 0) {
            tlspipe__end(p, false); /* a key update's answer could not be queued */
        }
    }
}

static void tlspipe__plain_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct tlspipe *p = s->data;
    size_t k = 0;
    if (n == 0) {
        return;
    }
    if (n < 0) {
        /* The user closed its end: say close_notify and go. */
        SSL_shutdown(p->ssl);
        ERR_clear_error();
        tlspipe__flush(p);
        tlspipe__end(p, true);
        return;
    }
    /* Writing into a memory BIO never blocks: one call takes it all. */
    if (SSL_write_ex(p->ssl, b->base, (size_t)n, &k) != 1 || k != (size_t)n ||
        tlspipe__flush(p) != 0) {
        ERR_clear_error();
        tlspipe__end(p, false);
    }
}

static void tlspipe__timeout(uv_timer_t *t)
{
    struct tlspipe *p = t->data;
    tlspipe__fail(p, "TLS handshake timed out");
    tlspipe__end(p, false);
}

int tlspipe_start(uv_loop_t *loop, uv_stream_t *net, const struct tlspipe_opts *o)
{
    struct tlspipe *p = calloc(1, sizeof *p);
    if (p == NULL) {
        uv_close((uv_handle_t *)net, o->free_net);
        return UV_ENOMEM;
    }
    p->loop = loop;
    p->net = net;
    p->free_net = o->free_net;
    p->server = o->server;
    p->hand_over = o->hand_over;
    p->done = o->done;
    p->arg = o->arg;
    p->ssl = SSL_new(o->ctx);
    p->rbio = BIO_new(BIO_s_mem());
    p->wbio = BIO_new(BIO_s_mem());
    if (o->not_tls_reply != NULL && o->not_tls_reply_len > 0) {
        p->not_tls_reply = malloc(o->not_tls_reply_len);
        if (p->not_tls_reply != NULL) {
            memcpy(p->not_tls_reply, o->not_tls_reply, o->not_tls_reply_len);
            p->not_tls_reply_len = o->not_tls_reply_len;
        }
    }
    if (p->ssl == NULL || p->rbio == NULL || p->wbio == NULL ||
        (!o->server && o->expect_host != NULL && tls_expect_host(p->ssl, o->expect_host) != 0)) {
        BIO_free(p->rbio);
        BIO_free(p->wbio);
        p->rbio = p->wbio = NULL;
        SSL_free(p->ssl);
        free(p->not_tls_reply);
        free(p);
        ERR_clear_error();
        uv_close((uv_handle_t *)net, o->free_net);
        return UV_ENOMEM;
    }
    /* A memory BIO that is empty says "retry", not "end of file". */
    BIO_set_mem_eof_return(p->rbio, -1);
    BIO_set_mem_eof_return(p->wbio, -1);
    SSL_set_bio(p->ssl, p->rbio, p->wbio);
    if (o->server) {
        SSL_set_accept_state(p->ssl);
    } else {
        SSL_set_connect_state(p->ssl);
    }
    net->data = p;
    p->handles = 2; /* net and timer */
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, tlspipe__timeout, o->handshake_timeout_ms, 0);
    p->group = o->group;
    if (p->group != NULL) {
        p->next = p->group->head;
        if (p->next != NULL) {
            p->next->prev = p;
        }
        p->group->head = p;
        p->group->open++;
        p->group->handshaking++;
    }
    tlspipe__start_net(p);
    if (!o->server) {
        tlspipe__handshake(p); /* the ClientHello */
    }
    return 0;
}

void tlspipe_group_close(struct tlspipe_group *g)
{
    for (int i = 0; g->head != NULL && i < 1000000; i++) {
        tlspipe__end(g->head, false);
    }
}
