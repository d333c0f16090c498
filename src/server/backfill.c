/* Backfill of history a snapshot install left out: see backfill.h.
 *
 * One job = one topic's missing range [from, to), fetched from one peer:
 * first a TOPIC_LIST, to learn where the peer's copy of the topic starts
 * (retention may have removed the oldest part everywhere: offsets below
 * the peer's start are then not fetched, and the node's history starts
 * there too), then FETCH requests of up to 4 MiB, one at a time, appended
 * to a staging log. The peer answers with whole batches; each is verified
 * (header and payload checksums) before it is written. A gap batch (a run
 * compaction emptied) that reaches past either end of the range is cut to
 * it; a batch with records that does is refused, because its records
 * cannot be split without re-encoding them. Anything unexpected ends the
 * attempt (the staging log is dropped) and the next peer is tried a
 * second later.
 *
 * With TLS on the client port, the peer is dialled over TLS with the
 * node's own certificate (peerdial.h); with auth = required it
 * authenticates us as node<ID>, a cluster node, which may read every
 * topic (auth.c). A TLS failure is logged once per streak of failures. */
#include "server/backfill.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/batch.h"
#include "lib/err.h"
#include "lib/logger.h"
#include "proto/proto.h"
#include "lib/tls.h"
#include "repl/tlspipe.h"
#include "server/cfg.h"
#include "server/peerdial.h"

#define BACKFILL__TICK_MS 1000
#define BACKFILL__FETCH_BYTES (4u << 20)
#define BACKFILL__REQUEST_TIMEOUT_MS 15000

struct backfill__conn;

struct backfill {
    uv_loop_t *loop;
    struct store *store;
    uint64_t self_id;
    const struct tls_set *tls;     /* NULL: plaintext */
    struct tlspipe_group pipes;    /* TLS handshakes, ended by backfill_close */
    bool tls_warned;               /* a TLS failure was logged since the last success */
    void (*fatal)(void *arg, const char *why);
    void *fatal_arg;
    uv_timer_t timer;
    unsigned handles;              /* open handles: the timer, a connection */
    bool closing;
    void (*done)(void *arg);
    void *done_arg;
    unsigned peer_cursor;          /* which member to ask next */
    /* The job under way (conn != NULL). */
    struct backfill__conn *conn;
    char topic[STORE_NAME_MAX];
    uint64_t created_index, from, to, next;
    struct tally_log *staging;
    uint64_t peer_id;
    char peer_addr[STORE_ADDR_MAX];
    uint64_t started_ms;
    bool listing;                  /* the TOPIC_LIST answer is awaited */
};

struct backfill__conn {
    struct backfill *b;            /* NULL once the job let go of it */
    struct peerdial *dial;
    uv_stream_t *io;               /* NULL until connected */
    uv_write_t write_req;
    uv_timer_t timeout;
    unsigned open_handles;         /* dial and timeout, until both closed */
    struct buf out;                /* the request being written */
    struct buf in;                 /* bytes of the answer so far */
    uint32_t request_id;
};

static void backfill__maybe_done(struct backfill *b)
{
    if (b->closing && b->handles == 0) {
        void (*done)(void *) = b->done;
        void *arg = b->done_arg;
        free(b);
        if (done != NULL) {
            done(arg);
        }
    }
}

static void backfill__conn_release(struct backfill__conn *c)
{
    if (--c->open_handles > 0) {
        return;
    }
    buf_free(&c->out);
    buf_free(&c->in);
    if (c->b != NULL) {
        struct backfill *b = c->b;
        b->handles--;
        backfill__maybe_done(b);
    }
    free(c);
}

static void backfill__conn_closed(uv_handle_t *h)
{
    backfill__conn_release(h->data);
}

static void backfill__dial_closed(void *arg)
{
    backfill__conn_release(arg);
}

/* End the job's connection (the job itself is ended by the caller). */
static void backfill__drop_conn(struct backfill *b)
{
    struct backfill__conn *c = b->conn;
    if (c == NULL) {
        return;
    }
    b->conn = NULL;
    uv_close((uv_handle_t *)&c->timeout, backfill__conn_closed);
    peerdial_close(c->dial, backfill__dial_closed, c);
}

/* The attempt failed: drop what was staged, try another peer later. */
static void backfill__fail(struct backfill *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void backfill__fail(struct backfill *b, const char *fmt, ...)
{
    char why[ERR_MSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    TLOG_WARN("backfill", "topic %s, offsets %" PRIu64 "..%" PRIu64 " from node %" PRIu64
              " (%s): %s; trying another node", b->topic, b->from, b->to - 1, b->peer_id,
              b->peer_addr, why);
    backfill__drop_conn(b);
    if (b->staging != NULL) {
        store_backfill_abort(b->store, b->topic, b->staging);
        b->staging = NULL;
    }
    b->peer_cursor++;
}

static void backfill__complete(struct backfill *b)
{
    char errmsg[ERR_MSG_SIZE];
    struct tally_log *staging = b->staging;
    int rv;
    backfill__drop_conn(b);
    b->staging = NULL;
    rv = store_backfill_finish(b->store, b->topic, b->created_index, b->from, b->to, staging,
                               errmsg);
    if (rv == TALLY_BUSY) {
        TLOG_INFO("backfill", "%s", errmsg);
    } else if (rv != 0) {
        /* The topic's log could not be reopened: stop the node. */
        if (b->fatal != NULL) {
            b->fatal(b->fatal_arg, errmsg);
        }
    } else {
        TLOG_INFO("backfill", "topic %s: %" PRIu64 " offsets from node %" PRIu64 " in %.1f s",
                  b->topic, b->to - b->from, b->peer_id,
                  (double)(uv_now(b->loop) - b->started_ms) / 1000.0);
    }
}

static void backfill__on_timeout(uv_timer_t *t)
{
    struct backfill__conn *c = t->data;
    if (c->b != NULL && c->b->conn == c) {
        backfill__fail(c->b, "no answer within %d ms", BACKFILL__REQUEST_TIMEOUT_MS);
    }
}

static void backfill__on_write(uv_write_t *req, int status)
{
    struct backfill__conn *c = req->data;
    if (status != 0 && c->b != NULL && c->b->conn == c) {
        backfill__fail(c->b, "send: %s", uv_strerror(status));
    }
}

/* Write the request in the connection's out buffer and time it. */
static int backfill__send(struct backfill *b)
{
    struct backfill__conn *c = b->conn;
    uv_buf_t ub;
    int rv;
    ub = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
    c->write_req.data = c;
    rv = uv_write(&c->write_req, c->io, &ub, 1, backfill__on_write);
    if (rv != 0) {
        backfill__fail(b, "send: %s", uv_strerror(rv));
        return rv;
    }
    uv_timer_start(&c->timeout, backfill__on_timeout, BACKFILL__REQUEST_TIMEOUT_MS, 0);
    return 0;
}

static void backfill__send_list(struct backfill *b)
{
    struct backfill__conn *c = b->conn;
    struct proto_topic_list_req m = {0};
    size_t start;
    c->out.len = 0;
    start = proto_begin_frame(&c->out, PROTO_TOPIC_LIST, 0, ++c->request_id);
    proto_put_topic_list_req(&c->out, &m);
    proto_end_frame(&c->out, start);
    if (!buf_ok(&c->out)) {
        backfill__fail(b, "out of memory");
        return;
    }
    b->listing = true;
    backfill__send(b);
}

static void backfill__send_fetch(struct backfill *b)
{
    struct backfill__conn *c = b->conn;
    struct proto_fetch_req m;
    size_t start;
    memset(&m, 0, sizeof m);
    snprintf(m.topic, sizeof m.topic, "%s", b->topic);
    m.offset = b->next;
    m.max_bytes = BACKFILL__FETCH_BYTES;
    c->out.len = 0;
    start = proto_begin_frame(&c->out, PROTO_FETCH, 0, ++c->request_id);
    proto_put_fetch_req(&c->out, &m);
    proto_end_frame(&c->out, start);
    if (!buf_ok(&c->out)) {
        backfill__fail(b, "out of memory");
        return;
    }
    backfill__send(b);
}

/* Write one verified batch (@h) into the staging log, cut to [next, to)
 * if it is a gap batch reaching past an end. Returns false (after
 * backfill__fail) on a problem. */
static bool backfill__write_batch(struct backfill *b, const uint8_t *p,
                                  const struct batch_header *h)
{
    char errmsg[ERR_MSG_SIZE];
    uint64_t first = h->base_offset, last = batch_last_offset(h);
    struct buf cut;
    int rv;
    if (last < b->next) {
        return true; /* before what we need (cannot happen, harmless) */
    }
    if (first < b->next || last >= b->to) {
        if (h->record_count != 0) {
            backfill__fail(b, "batch %" PRIu64 "..%" PRIu64 " straddles the range", first, last);
            return false;
        }
        first = first < b->next ? b->next : first;
        last = last >= b->to ? b->to - 1 : last;
        buf_init(&cut);
        rv = batch_encode_gap(&cut, first, (uint32_t)(last - first), h->first_timestamp,
                              h->max_timestamp, h->raft_index);
        if (rv == 0) {
            rv = log_append(b->staging, cut.data, cut.len, h->first_timestamp, errmsg);
        }
        buf_free(&cut);
    } else {
        rv = log_append(b->staging, p, h->batch_len, h->first_timestamp, errmsg);
    }
    if (rv != 0) {
        backfill__fail(b, "staging log: %s", rv == TALLY_NOMEM ? "out of memory" : errmsg);
        return false;
    }
    b->next = last + 1;
    return true;
}

/* The peer's TOPIC_LIST answer: where its copy of the topic starts. */
static void backfill__on_list(struct backfill *b, struct rd *r)
{
    struct proto_topic_list_resp lr;
    char errmsg[ERR_MSG_SIZE];
    uint64_t first;
    int rv;
    b->listing = false;
    if (proto_get_topic_list_resp(r, &lr) != 0) {
        backfill__fail(b, "malformed TOPIC_LIST answer");
        return;
    }
    for (uint32_t i = 0; i < lr.n_topics; i++) {
        struct proto_topic t;
        if (proto_get_topic(r, &t) != 0) {
            backfill__fail(b, "malformed TOPIC_LIST answer");
            return;
        }
        if (strcmp(t.name, b->topic) != 0) {
            continue;
        }
        if (t.next_offset < b->to) {
            backfill__fail(b, "its copy of the topic ends at %" PRIu64, t.next_offset);
            return;
        }
        first = t.start_offset > b->from ? t.start_offset : b->from;
        first = first < b->to ? first : b->to;
        if (first > b->from) {
            TLOG_INFO("backfill", "topic %s: offsets %" PRIu64 "..%" PRIu64 " are gone (retention)"
                      " on node %" PRIu64 ": the history here starts at %" PRIu64, b->topic,
                      b->from, first - 1, b->peer_id, first);
        }
        rv = store_backfill_begin(b->store, b->topic, first, &b->staging, errmsg);
        if (rv != 0) {
            backfill__fail(b, "%s", errmsg);
            return;
        }
        b->next = first;
        if (first >= b->to) {
            backfill__complete(b); /* nothing left to fetch */
        } else {
            backfill__send_fetch(b);
        }
        return;
    }
    backfill__fail(b, "it has no topic %s", b->topic);
}

/* One whole answer frame. */
static void backfill__on_frame(struct backfill *b, const struct proto_frame *f,
                               const uint8_t *body, size_t len)
{
    struct backfill__conn *c = b->conn;
    struct proto_fetch_resp resp;
    char errmsg[ERR_MSG_SIZE];
    struct rd r;
    size_t pos = 0;

    uv_timer_stop(&c->timeout);
    if (f->request_id != c->request_id ||
        f->type != (b->listing ? PROTO_TOPIC_LIST : PROTO_FETCH) ||
        !(f->flags & PROTO_FLAG_RESPONSE)) {
        backfill__fail(b, "unexpected answer (type %u, id %u)", f->type, f->request_id);
        return;
    }
    rd_init(&r, body, len);
    if (f->flags & PROTO_FLAG_ERROR) {
        struct proto_error e;
        if (proto_get_error(&r, &e) != 0) {
            backfill__fail(b, "malformed error answer");
        } else {
            backfill__fail(b, "%s: %s", err_name((int)e.code), e.message);
        }
        return;
    }
    if (b->listing) {
        backfill__on_list(b, &r);
        return;
    }
    if (proto_get_fetch_resp(&r, &resp) != 0) {
        backfill__fail(b, "malformed FETCH answer");
        return;
    }
    if (resp.batches_len == 0) {
        backfill__fail(b, "it has nothing at offset %" PRIu64 " (its topic ends at %" PRIu64 ")",
                       b->next, resp.next_offset);
        return;
    }
    while (pos < resp.batches_len && b->next < b->to) {
        struct batch_header h;
        const uint8_t *p = resp.batches + pos;
        size_t left = resp.batches_len - pos;
        if (batch_decode_header(p, left, &h, errmsg) != 0 || h.batch_len > left ||
            batch_verify(p, h.batch_len, &h, errmsg) != 0) {
            backfill__fail(b, "bad batch at byte %zu of its answer: %s", pos, errmsg);
            return;
        }
        if (!backfill__write_batch(b, p, &h)) {
            return;
        }
        pos += h.batch_len;
    }
    if (b->next >= b->to) {
        backfill__complete(b);
    } else {
        backfill__send_fetch(b);
    }
}

static void backfill__alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    struct backfill__conn *c = h->data;
    size_t want = suggested < 65536 ? 65536 : suggested;
    uint8_t *p = buf_reserve(&c->in, want);
    *out = uv_buf_init((char *)p, p != NULL ? (unsigned)want : 0);
}

static void backfill__on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *ub)
{
    struct backfill__conn *c = s->data;
    struct backfill *b = c->b;
    (void)ub;
    if (b == NULL || b->conn != c) {
        return;
    }
    if (n < 0) {
        backfill__fail(b, "connection: %s", uv_strerror((int)n));
        return;
    }
    buf_commit(&c->in, (size_t)n);
    while (b->conn == c && c->in.len >= PROTO_HEADER_SIZE) {
        struct proto_frame f;
        size_t total;
        if (proto_decode_frame(c->in.data, c->in.len, PROTO_MAX_FRAME, &f) != 0) {
            backfill__fail(b, "bad frame");
            return;
        }
        total = (size_t)f.frame_len + 4;
        if (c->in.len < total) {
            return; /* wait for the rest */
        }
        backfill__on_frame(b, &f, c->in.data + PROTO_HEADER_SIZE, total - PROTO_HEADER_SIZE);
        if (b->conn != c) {
            return;
        }
        memmove(c->in.data, c->in.data + total, c->in.len - total);
        c->in.len -= total;
    }
}

static void backfill__on_ready(void *arg, struct peerdial *d, uv_stream_t *stream,
                               const char *why)
{
    struct backfill__conn *c = arg;
    struct backfill *b = c->b;
    (void)d;
    if (b == NULL || b->conn != c) {
        return;
    }
    if (stream == NULL) {
        if (b->tls != NULL && strncmp(why, "TLS", 3) == 0) {
            /* One WARN per streak of TLS failures, not one a second. */
            if (!b->tls_warned) {
                b->tls_warned = true;
                backfill__fail(b, "%s (not logged again until a backfill connects)", why);
            } else {
                TLOG_DEBUG("backfill", "node %" PRIu64 " (%s): %s", b->peer_id, b->peer_addr,
                           why);
                backfill__drop_conn(b);
                if (b->staging != NULL) {
                    store_backfill_abort(b->store, b->topic, b->staging);
                    b->staging = NULL;
                }
                b->peer_cursor++;
            }
            return;
        }
        backfill__fail(b, "%s", why);
        return;
    }
    b->tls_warned = false;
    c->io = stream;
    stream->data = c;
    if (uv_read_start(stream, backfill__alloc, backfill__on_read) != 0) {
        backfill__fail(b, "cannot read the connection");
        return;
    }
    backfill__send_list(b);
}

/* A member to ask: not this node, in turn. */
static const struct store_member *backfill__peer(struct backfill *b)
{
    const struct store_member *m;
    unsigned n = store_members(b->store, &m);
    for (unsigned i = 0; i < n; i++) {
        const struct store_member *p = &m[(b->peer_cursor + i) % n];
        if (p->id != b->self_id && p->client_addr[0] != '\0') {
            b->peer_cursor += i;
            return p;
        }
    }
    return NULL;
}

static void backfill__tick(uv_timer_t *t)
{
    struct backfill *b = t->data;
    const struct store_member *peer;
    struct backfill__conn *c;
    char why[ERR_MSG_SIZE];

    if (b->conn != NULL || b->closing ||
        !store_backfill_pick(b->store, b->topic, sizeof b->topic, &b->created_index, &b->from,
                             &b->to)) {
        return;
    }
    if ((peer = backfill__peer(b)) == NULL) {
        return; /* alone: nobody to ask */
    }
    b->peer_id = peer->id;
    snprintf(b->peer_addr, sizeof b->peer_addr, "%s", peer->client_addr);
    b->next = b->from;
    b->listing = false;
    b->started_ms = uv_now(b->loop);
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        return;
    }
    c->b = b;
    buf_init(&c->out);
    buf_init(&c->in);
    c->dial = peerdial_start(b->loop, b->peer_addr, b->tls, &b->pipes,
                             BACKFILL__REQUEST_TIMEOUT_MS * 2 / 3, backfill__on_ready, c, why);
    if (c->dial == NULL) {
        buf_free(&c->out);
        buf_free(&c->in);
        free(c);
        b->peer_cursor++;
        return;
    }
    uv_timer_init(b->loop, &c->timeout);
    c->timeout.data = c;
    c->open_handles = 2;
    b->handles++;
    b->conn = c;
    if (!b->tls_warned) {
        TLOG_INFO("backfill", "topic %s: fetching offsets %" PRIu64 "..%" PRIu64
                  " from node %" PRIu64 " (%s)%s", b->topic, b->from, b->to - 1, b->peer_id,
                  b->peer_addr, b->tls != NULL ? " over TLS" : "");
    }
    uv_timer_start(&c->timeout, backfill__on_timeout, BACKFILL__REQUEST_TIMEOUT_MS, 0);
}

static void backfill__timer_closed(uv_handle_t *h)
{
    struct backfill *b = h->data;
    b->handles--;
    backfill__maybe_done(b);
}

int backfill_start(uv_loop_t *loop, struct store *store, uint64_t self_id,
                   const struct tls_set *tls, void (*fatal)(void *arg, const char *why), void *fatal_arg,
                   struct backfill **out, char *errmsg)
{
    struct backfill *b = calloc(1, sizeof *b);
    if (b == NULL) {
        err_printf(errmsg, "start backfill: out of memory");
        return TALLY_NOMEM;
    }
    b->loop = loop;
    b->store = store;
    b->self_id = self_id;
    b->tls = tls;
    b->fatal = fatal;
    b->fatal_arg = fatal_arg;
    uv_timer_init(loop, &b->timer);
    b->timer.data = b;
    b->handles = 1;
    uv_timer_start(&b->timer, backfill__tick, BACKFILL__TICK_MS, BACKFILL__TICK_MS);
    *out = b;
    return 0;
}

void backfill_close(struct backfill *b, void (*done)(void *arg), void *arg)
{
    if (b == NULL) {
        done(arg);
        return;
    }
    b->closing = true;
    b->done = done;
    b->done_arg = arg;
    if (b->conn != NULL) {
        b->conn->b = b; /* its close callback still counts it */
        backfill__drop_conn(b);
    }
    tlspipe_group_close(&b->pipes); /* a handshake under way ends now */
    if (b->staging != NULL) {
        store_backfill_abort(b->store, b->topic, b->staging);
        b->staging = NULL;
    }
    uv_close((uv_handle_t *)&b->timer, backfill__timer_closed);
}
