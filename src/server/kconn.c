/* The Kafka listener and its connections (kconn.h).
 *
 * The happy path: libuv reads bytes into the read buffer; every whole
 * frame (int32 size + request) becomes a struct kjob appended to the
 * connection's FIFO and handed to kgw_handle(); when a job is done, every
 * done job at the head of the FIFO is written out (a silent one, an
 * acks=0 produce, is dropped), so answers leave in request order as Kafka
 * requires.
 *
 * Failure modes (each logged once, at the connection's close):
 * - a size below 8 (no room for api key, version and correlation id) or
 *   above KCONN__MAX_FRAME: framing is lost or the frame will not be
 *   buffered; the connection is closed at once, nothing is answered;
 * - an unknown API, an unsupported version or a malformed request
 *   (kgw.c decides): Kafka brokers close such connections too, since
 *   the client cannot read an answer it did not expect; ApiVersions of an
 *   unknown version is answered in v0 with UNSUPPORTED_VERSION instead,
 *   as Kafka does, so that clients can fall back;
 * - a peer that sends many requests without reading answers: reading
 *   stops while KCONN__MAX_PENDING jobs are unanswered or more than
 *   KCONN__MAX_QUEUED answer bytes wait, and resumes once both are below;
 * - a failed write closes the connection.
 * Nothing from a rejected frame reaches the native gateway.
 *
 * Memory per connection: the read buffer holds at most one frame of
 * KCONN__MAX_FRAME plus a read chunk; the copies of unanswered requests
 * stay under KCONN__MAX_HELD plus one frame (reading stops beyond); answers:
 * at most KCONN__MAX_PENDING jobs, each answer at most one Fetch answer
 * (kgw.c caps those at 4 MiB), so 64 x 4 MiB = 256 MiB in the worst case
 * of a client that pipelines 64 large fetches and reads nothing. */
#include "server/kconn.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/logger.h"
#include "proto/proto.h"
#include "server/auth.h"
#include "server/cfg.h"
#include "server/tlsaccept.h"

#define KCONN__MAX_FRAME (PROTO_MAX_FRAME)  /* the native limit: one batch + headroom */
#define KCONN__MAX_PENDING 64
#define KCONN__MAX_QUEUED (16u << 20)
#define KCONN__READ_CHUNK (64u << 10)
#define KCONN__MAX_HELD (32u << 20)       /* request bytes of unanswered jobs */

struct kconn_listener {
    uv_tcp_t handle;
    struct kgw *kg;
    struct kconn *conns;    /* every open connection */
    unsigned n_conns;
    unsigned max_conns;     /* max_connections, counted apart from native ones */
    bool closing;
    bool tls_on;            /* connections start with a TLS handshake */
    struct tlsaccept tlsa;
};

struct kconn {
    uv_tcp_t handle;
    struct kconn_listener *l;
    struct kconn *next_conn, *prev_conn;
    struct buf rbuf;        /* bytes read, not yet parsed */
    struct kjob *head, *tail; /* FIFO of jobs, oldest first */
    unsigned pending;       /* jobs not yet written out */
    size_t queued;          /* bytes of answers done but not yet written */
    size_t held;            /* request bytes of the jobs in the FIFO */
    bool reading;
    bool closing;
    bool parsing;
    bool stop_parsing;      /* a request was rejected: the connection closes after
                             * the answers before it, and reads nothing more */
    struct auth_conn *auth; /* its authentication (server/auth.c), or NULL */
    char sasl_mech[KCONN_SASL_MECH_MAX]; /* SaslHandshake's choice ("": none yet) */
    char peer[200];
};

struct kconn__write {
    uv_write_t w;
    struct kconn *c;
    struct kjob *job;
};

static void kconn__drain(struct kconn *c);
static void kconn__parse(struct kconn *c);

static void kconn__closed(uv_handle_t *h)
{
    struct kconn *c = h->data;
    buf_free(&c->rbuf);
    auth_conn_free(c->auth);
    free(c);
}

static void kconn__close(struct kconn *c, const char *why)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    if (why != NULL) {
        TLOG_WARN("kafka", "%s: closing the connection: %s", c->peer, why);
    }
    for (struct kjob *j = c->head; j != NULL;) {
        struct kjob *next = j->next;
        j->conn = NULL;
        j->next = NULL;
        if (j->done) {
            kjob_unref(j); /* the connection's reference */
        } /* else kconn_job_done drops it later */
        j = next;
    }
    c->head = c->tail = NULL;
    if (c->prev_conn != NULL) {
        c->prev_conn->next_conn = c->next_conn;
    } else {
        c->l->conns = c->next_conn;
    }
    c->l->n_conns--;
    if (c->next_conn != NULL) {
        c->next_conn->prev_conn = c->prev_conn;
    }
    uv_close((uv_handle_t *)&c->handle, kconn__closed);
}

static void kconn__alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    struct kconn *c = h->data;
    (void)suggested;
    uint8_t *p = buf_reserve(&c->rbuf, KCONN__READ_CHUNK);
    out->base = (char *)p;
    out->len = p != NULL ? KCONN__READ_CHUNK : 0;
}

static void kconn__read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

/* Read while the connection has room for more requests and answers. */
static void kconn__update_reading(struct kconn *c)
{
    bool want = !c->closing && !c->stop_parsing && c->pending < KCONN__MAX_PENDING &&
                c->queued < KCONN__MAX_QUEUED && c->held < KCONN__MAX_HELD;
    if (want && !c->reading) {
        c->reading = uv_read_start((uv_stream_t *)&c->handle, kconn__alloc, kconn__read) == 0;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->handle);
        c->reading = false;
    }
}

static void kconn__written(uv_write_t *w, int status)
{
    struct kconn__write *cw = (struct kconn__write *)w;
    struct kconn *c = cw->c;
    struct kjob *job = cw->job;
    bool close_after = job->close_after;
    if (c != NULL && !c->closing) {
        c->queued -= job->resp.len;
    }
    kjob_unref(job);
    free(cw);
    if (c == NULL || c->closing) {
        return;
    }
    if (status < 0) {
        kconn__close(c, NULL);
        return;
    }
    if (close_after) {
        kconn__close(c, NULL);
        return;
    }
    kconn__parse(c); /* frames left waiting while reading was stopped */
    kconn__update_reading(c);
}

/* Write out every done job at the head of the FIFO. */
static void kconn__drain(struct kconn *c)
{
    while (!c->closing && c->head != NULL && c->head->done) {
        struct kjob *job = c->head;
        c->head = job->next;
        if (c->head == NULL) {
            c->tail = NULL;
        }
        job->next = NULL;
        c->pending--;
        c->held -= job->frame_len;
        if (job->silent || job->resp.len == 0) {
            bool close_after = job->close_after;
            job->conn = NULL;
            kjob_unref(job);
            if (close_after) {
                kconn__close(c, NULL);
                return;
            }
            continue;
        }
        struct kconn__write *cw = malloc(sizeof *cw);
        if (cw == NULL) {
            job->conn = NULL;
            kjob_unref(job);
            kconn__close(c, "out of memory");
            return;
        }
        cw->c = c;
        cw->job = job;
        job->conn = NULL; /* the write owns the connection's reference now */
        c->queued += job->resp.len;
        uv_buf_t b = uv_buf_init((char *)job->resp.data, (unsigned)job->resp.len);
        if (uv_write(&cw->w, (uv_stream_t *)&c->handle, &b, 1, kconn__written) != 0) {
            c->queued -= job->resp.len;
            kjob_unref(job);
            free(cw);
            kconn__close(c, NULL);
            return;
        }
    }
    if (!c->parsing && !c->stop_parsing && c->rbuf.len >= 4) {
        /* Frames may wait in the buffer for room that popping just made
         * (a silent answer writes nothing, so no write callback comes). */
        kconn__parse(c);
    } else {
        kconn__update_reading(c);
    }
}

void kconn_job_done(struct kjob *job)
{
    job->done = true;
    if (job->conn == NULL) {
        kjob_unref(job); /* the connection's reference, which it left behind */
        return;
    }
    if (!job->conn->parsing) {
        kconn__drain(job->conn);
    }
}

/* Turn every whole frame in the read buffer into a job. */
static void kconn__parse(struct kconn *c)
{
    size_t pos = 0;
    if (c->parsing) {
        return;
    }
    c->parsing = true;
    while (!c->closing && !c->stop_parsing && c->rbuf.len - pos >= 4 &&
           c->pending < KCONN__MAX_PENDING && c->queued < KCONN__MAX_QUEUED &&
           c->held < KCONN__MAX_HELD) {
        const uint8_t *p = c->rbuf.data + pos;
        uint32_t size = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (size < 8 || size > KCONN__MAX_FRAME - 4) {
            char why[96];
            snprintf(why, sizeof why, "Kafka frame size %u is outside 8..%u", size,
                     KCONN__MAX_FRAME - 4);
            c->parsing = false;
            kconn__close(c, why);
            return;
        }
        if (c->rbuf.len - pos - 4 < size) {
            break;
        }
        struct kjob *job = calloc(1, sizeof *job);
        uint8_t *frame = job != NULL ? malloc(size) : NULL;
        if (frame == NULL) {
            free(job);
            c->parsing = false;
            kconn__close(c, "out of memory");
            return;
        }
        memcpy(frame, p + 4, size);
        pos += 4 + (size_t)size;
        job->conn = c;
        job->refs = 1;
        job->frame = frame;
        job->frame_len = size;
        buf_init(&job->resp);
        kafka_arena_init(&job->arena);
        if (c->tail != NULL) {
            c->tail->next = job;
        } else {
            c->head = job;
        }
        c->tail = job;
        c->pending++;
        c->held += size;
        kgw_handle(c->l->kg, job);
        if (job->close_after) {
            /* Rejected: nothing after it reaches the gateway. */
            c->stop_parsing = true;
            pos = c->rbuf.len;
            break;
        }
        if (c->head->done) {
            kconn__drain(c); /* answered at once: make room (no re-entry: parsing) */
        }
    }
    if (!c->closing && pos > 0) {
        memmove(c->rbuf.data, c->rbuf.data + pos, c->rbuf.len - pos);
        c->rbuf.len -= pos;
    }
    c->parsing = false;
    kgw_flush(c->l->kg);
    if (!c->closing) {
        /* A job whose answer was ready at once, or one that asked to close. */
        if (c->head != NULL && c->head->done) {
            kconn__drain(c);
        } else {
            kconn__update_reading(c);
        }
    }
}

static void kconn__read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct kconn *c = s->data;
    (void)b;
    if (n < 0) {
        kconn__close(c, NULL);
        return;
    }
    if (n == 0) {
        return;
    }
    buf_commit(&c->rbuf, (size_t)n);
    kconn__parse(c);
}

static void kconn__free_handle(uv_handle_t *h)
{
    free(h);
}

/* A new connection of @l, its handle initialised (closed with
 * kconn__closed), not yet listed; NULL when out of memory. */
static struct kconn *kconn__new(struct kconn_listener *l, uv_loop_t *loop)
{
    struct kconn *c = calloc(1, sizeof *c);
    if (c != NULL) {
        uv_tcp_init(loop, &c->handle);
        c->handle.data = c;
        c->l = l;
        buf_init(&c->rbuf);
    }
    return c;
}

/* A connection on @c's handle (accepted or opened): listed and read. */
static void kconn__add(struct kconn_listener *l, struct kconn *c)
{
    uv_tcp_nodelay(&c->handle, 1); /* (fails harmlessly on a socketpair end) */
    c->next_conn = l->conns;
    if (l->conns != NULL) {
        l->conns->prev_conn = c;
    }
    l->conns = c;
    l->n_conns++;
    kconn__update_reading(c);
}

/* tlsaccept's serve function: the plaintext end of a TLS connection. */
static int kconn__serve_tls(void *arg, uv_loop_t *loop, int fd, SSL *ssl, const char *peer,
                            const char *principal, uint64_t node_id)
{
    struct kconn_listener *l = arg;
    (void)ssl; /* no hand-over: @fd is the plaintext end of the pipe */
    struct kconn *c = l->closing ? NULL : kconn__new(l, loop);
    if (c != NULL && principal != NULL &&
        (c->auth = auth_conn_certified(principal, node_id)) == NULL) {
        uv_close((uv_handle_t *)&c->handle, kconn__closed);
        c = NULL;
    }
    if (c == NULL) {
        close(fd);
        return -1;
    }
    if (uv_tcp_open(&c->handle, fd) != 0) {
        uv_close((uv_handle_t *)&c->handle, kconn__closed);
        return -1;
    }
    snprintf(c->peer, sizeof c->peer, "kafka client %s", peer);
    kconn__add(l, c);
    return 0;
}

static void kconn__accept(uv_stream_t *server, int status)
{
    struct kconn_listener *l = server->data;
    if (status != 0 || l->closing) {
        return;
    }
    if (l->n_conns >= l->max_conns) {
        /* Accept and drop, so the listen backlog does not fill up. */
        uv_tcp_t *tmp = malloc(sizeof *tmp);
        if (tmp == NULL) {
            return;
        }
        uv_tcp_init(server->loop, tmp);
        if (uv_accept(server, (uv_stream_t *)tmp) == 0) {
            TLOG_WARN("kafka", "connection refused: max_connections (%u) Kafka connections open",
                      l->max_conns);
        }
        uv_close((uv_handle_t *)tmp, kconn__free_handle);
        return;
    }
    if (l->tls_on) {
        tlsaccept_one(&l->tlsa, server); /* the handshake first: kconn__serve_tls */
        return;
    }
    struct kconn *c = kconn__new(l, server->loop);
    if (c == NULL) {
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&c->handle) != 0) {
        uv_close((uv_handle_t *)&c->handle, kconn__closed);
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    snprintf(c->peer, sizeof c->peer, "kafka client");
    if (uv_tcp_getpeername(&c->handle, (struct sockaddr *)&ss, &len) == 0 &&
        ss.ss_family == AF_INET) {
        char ip[32];
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
        uv_ip4_name(sin, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "kafka client %s:%u", ip, ntohs(sin->sin_port));
    }
    kconn__add(l, c);
}

static void kconn__listener_closed(uv_handle_t *h)
{
    free(h->data);
}

int kconn_listen(uv_loop_t *loop, const char *addr, unsigned max_conns, struct kgw *kg,
                 const struct tls_set *tls, struct kconn_listener **out, char *errmsg)
{
    char ip[64];
    unsigned port;
    struct sockaddr_in sin;
    struct kconn_listener *l = calloc(1, sizeof *l);
    if (l == NULL) {
        err_printf(errmsg, "out of memory");
        return TALLY_NOMEM;
    }
    cfg_parse_addr(addr, ip, sizeof ip, &port);
    uv_ip4_addr(ip, (int)port, &sin);
    uv_tcp_init(loop, &l->handle);
    l->handle.data = l;
    l->kg = kg;
    l->max_conns = max_conns;
    if (tls != NULL) {
        /* A Kafka client that speaks plaintext to it gets nothing: it could
         * not read an error in either protocol. */
        l->tls_on = true;
        tlsaccept_init(&l->tlsa, tls, kconn__serve_tls, l, NULL, 0, max_conns, false);
    }
    int rv = uv_tcp_bind(&l->handle, (const struct sockaddr *)&sin, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&l->handle, 511, kconn__accept);
    }
    if (rv != 0) {
        err_printf(errmsg, "kafka: listen on %s: %s", addr, uv_strerror(rv));
        if (l->tls_on) {
            tlsaccept_close(&l->tlsa);
        }
        uv_close((uv_handle_t *)&l->handle, kconn__listener_closed);
        return TALLY_INVAL;
    }
    *out = l;
    return 0;
}

void kconn_stop(struct kconn_listener *l)
{
    if (l == NULL || l->closing) {
        return;
    }
    l->closing = true;
    if (l->tls_on) {
        tlsaccept_close(&l->tlsa); /* connections still in their handshake */
    }
    while (l->conns != NULL) {
        kconn__close(l->conns, NULL);
    }
    uv_close((uv_handle_t *)&l->handle, kconn__listener_closed);
}

struct auth_conn **kconn_job_auth(struct kjob *job)
{
    return job->conn != NULL && !job->conn->closing ? &job->conn->auth : NULL;
}

const char *kconn_job_peer(const struct kjob *job)
{
    return job->conn != NULL ? job->conn->peer : "kafka client (gone)";
}

char *kconn_job_sasl_mech(struct kjob *job)
{
    return job->conn != NULL && !job->conn->closing ? job->conn->sasl_mech : NULL;
}
