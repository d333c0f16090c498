/* Clock health: see skew.h.
 *
 * With TLS on the client port, the leader is asked over TLS with the
 * node's own certificate (peerdial.h); a connection made with a context
 * that a SIGHUP replaced is dropped at the next tick. A failed TLS
 * handshake is logged once per streak of failures. */
#include "server/skew.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/err.h"
#include "lib/logger.h"
#include "lib/tls.h"
#include "proto/proto.h"
#include "repl/tlspipe.h"
#include "server/peerdial.h"

#define SKEW__TIMEOUT_MS 5000
#define SKEW__WARN_EVERY_MS 60000

struct skew__conn {
    struct skew *k;                /* NULL once the skew let go of it */
    struct peerdial *dial;
    uv_stream_t *io;               /* NULL until connected */
    uv_write_t write_req;
    struct buf out;
    struct buf in;
    uint64_t peer_id;
    bool connected;
    bool waiting;                  /* a request is out */
    uint32_t request_id;
    int64_t sent_wall;             /* wall clock (ms) when it was sent */
    uint64_t sent_mono;            /* uv_hrtime when it was sent */
};

struct skew {
    uv_loop_t *loop;
    const struct cfg *cfg;
    struct store *store;
    struct node *node;
    const struct tls_set *tls;     /* NULL: plaintext */
    struct tlspipe_group pipes;    /* TLS handshakes, ended by skew_close */
    bool tls_warned;               /* a TLS failure was logged since the last answer */
    uv_timer_t timer;
    struct skew__conn *conn;
    bool closing;
    unsigned handles;              /* the timer and an open connection */
    /* The last measurement. */
    bool have;
    int64_t offset_ms, rtt_ms;     /* against the leader's wall clock */
    int64_t leader_corr;           /* the leader's own offset then */
    uint64_t leader_id;
    uint64_t at_mono;              /* uv_hrtime of it */
    int64_t at_wall;               /* this node's wall clock then */
    bool warned;
    uint64_t warned_mono;
    int64_t correction;            /* taken over with the leadership */
};

static int64_t skew__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void skew__maybe_free(struct skew *k)
{
    if (k->closing && k->handles == 0) {
        free(k);
    }
}

static void skew__conn_closed(void *arg)
{
    struct skew__conn *c = arg;
    buf_free(&c->out);
    buf_free(&c->in);
    if (c->k != NULL) {
        c->k->handles--;
        skew__maybe_free(c->k);
    }
    free(c);
}

static void skew__drop(struct skew *k)
{
    struct skew__conn *c = k->conn;
    if (c == NULL) {
        return;
    }
    k->conn = NULL;
    peerdial_close(c->dial, skew__conn_closed, c);
}

static void skew__on_write(uv_write_t *req, int status)
{
    struct skew__conn *c = req->data;
    if (status != 0 && c->k != NULL && c->k->conn == c) {
        skew__drop(c->k);
    }
}

static void skew__send(struct skew *k)
{
    struct skew__conn *c = k->conn;
    struct proto_clock_req m = {0};
    uv_buf_t ub;
    size_t start;
    c->out.len = 0;
    start = proto_begin_frame(&c->out, PROTO_CLOCK, 0, ++c->request_id);
    proto_put_clock_req(&c->out, &m);
    proto_end_frame(&c->out, start);
    if (!buf_ok(&c->out)) {
        skew__drop(k);
        return;
    }
    c->sent_wall = skew__wall_ms();
    c->sent_mono = uv_hrtime();
    c->waiting = true;
    ub = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
    c->write_req.data = c;
    if (uv_write(&c->write_req, c->io, &ub, 1, skew__on_write) != 0) {
        skew__drop(k);
    }
}

static void skew__measured(struct skew *k, const struct proto_clock_resp *m, uint64_t now_mono,
                           const struct skew__conn *c)
{
    int64_t rtt = (int64_t)((now_mono - c->sent_mono) / 1000000);
    int64_t raw = c->sent_wall + rtt / 2 - m->wall_ms;
    int64_t corr = m->offset_known ? m->offset_ms : 0;
    int64_t offset = raw + corr; /* against the cluster's time */
    int64_t mag = offset < 0 ? -offset : offset;
    bool over = (uint64_t)mag > k->cfg->clock_warn_ms;
    k->have = true;
    k->offset_ms = raw;
    k->leader_corr = corr;
    k->rtt_ms = rtt;
    k->leader_id = m->node_id;
    k->at_mono = now_mono;
    k->at_wall = skew__wall_ms();
    if (over && (!k->warned || now_mono - k->warned_mono >= SKEW__WARN_EVERY_MS * 1000000ull)) {
        TLOG_WARN("clock", "this node's clock is %lld ms %s the cluster's (leader node %llu), more than "
                  "clock_warn_ms=%llu: synchronise the clocks of all nodes (NTP, chrony); "
                  "see docs/operations.md, Clocks", (long long)mag,
                  offset > 0 ? "ahead of" : "behind", (unsigned long long)m->node_id,
                  (unsigned long long)k->cfg->clock_warn_ms);
        k->warned = true;
        k->warned_mono = now_mono;
    } else if (!over && k->warned) {
        TLOG_INFO("clock", "this node's clock is within %lld ms of the cluster's (leader node %llu) again",
                  (long long)mag, (unsigned long long)m->node_id);
        k->warned = false;
    }
}

static void skew__on_frame(struct skew *k, const struct proto_frame *f, const uint8_t *body,
                           size_t len)
{
    struct skew__conn *c = k->conn;
    struct proto_clock_resp m;
    struct rd r;
    uint64_t now = uv_hrtime();
    rd_init(&r, body, len);
    if (!c->waiting || f->request_id != c->request_id || f->type != PROTO_CLOCK ||
        (f->flags & PROTO_FLAG_ERROR) || proto_get_clock_resp(&r, &m) != 0 ||
        proto_get_end(&r) != 0) {
        /* an old leader (UNKNOWN_REQUEST) or a bad answer: no measurement */
        skew__drop(k);
        return;
    }
    c->waiting = false;
    k->tls_warned = false; /* a later TLS failure is news again */
    if (m.node_id == c->peer_id && m.leader_id == m.node_id) {
        skew__measured(k, &m, now, c);
    }
}

static void skew__alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    struct skew__conn *c = h->data;
    size_t want = suggested < 4096 ? 4096 : suggested;
    uint8_t *p = buf_reserve(&c->in, want);
    *out = uv_buf_init((char *)p, p != NULL ? (unsigned)want : 0);
}

static void skew__on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *ub)
{
    struct skew__conn *c = s->data;
    struct skew *k = c->k;
    (void)ub;
    if (k == NULL || k->conn != c) {
        return;
    }
    if (n < 0) {
        skew__drop(k);
        return;
    }
    buf_commit(&c->in, (size_t)n);
    while (k->conn == c && c->in.len >= PROTO_HEADER_SIZE) {
        struct proto_frame f;
        size_t total;
        if (proto_decode_frame(c->in.data, c->in.len, PROTO_MAX_FRAME, &f) != 0) {
            skew__drop(k);
            return;
        }
        total = (size_t)f.frame_len + 4;
        if (c->in.len < total) {
            return;
        }
        skew__on_frame(k, &f, c->in.data + PROTO_HEADER_SIZE, total - PROTO_HEADER_SIZE);
        if (k->conn != c) {
            return;
        }
        memmove(c->in.data, c->in.data + total, c->in.len - total);
        c->in.len -= total;
    }
}

static void skew__on_ready(void *arg, struct peerdial *d, uv_stream_t *stream, const char *why)
{
    struct skew__conn *c = arg;
    struct skew *k = c->k;
    (void)d;
    if (k == NULL || k->conn != c) {
        return;
    }
    if (stream == NULL) {
        if (k->tls != NULL && strncmp(why, "TLS", 3) == 0 && !k->tls_warned) {
            k->tls_warned = true;
            TLOG_WARN("clock", "clock check with the leader (node %llu): %s (not logged again "
                      "until it answers)", (unsigned long long)c->peer_id, why);
        }
        skew__drop(k);
        return;
    }
    c->io = stream;
    stream->data = c;
    if (uv_read_start(stream, skew__alloc, skew__on_read) != 0) {
        skew__drop(k);
        return;
    }
    c->connected = true;
    skew__send(k);
}

static void skew__connect(struct skew *k, uint64_t leader)
{
    const struct store_member *m = store_member_find(k->store, leader);
    struct skew__conn *c;
    char why[ERR_MSG_SIZE];
    if (m == NULL || (c = calloc(1, sizeof *c)) == NULL) {
        return;
    }
    c->k = k;
    c->peer_id = leader;
    buf_init(&c->out);
    buf_init(&c->in);
    /* The handshake's timeout is below the answer's, so that the pipe
     * reports a leader that takes the connection but not the handshake. */
    c->dial = peerdial_start(k->loop, m->client_addr, k->tls, &k->pipes, SKEW__TIMEOUT_MS * 3 / 4,
                             skew__on_ready, c, why);
    if (c->dial == NULL) {
        buf_free(&c->out);
        buf_free(&c->in);
        free(c);
        return;
    }
    k->handles++;
    k->conn = c;
    c->sent_mono = uv_hrtime(); /* the connect counts against the timeout */
    c->waiting = true;
}

static void skew__tick(uv_timer_t *t)
{
    struct skew *k = t->data;
    uint64_t now = uv_hrtime();
    uint64_t leader = node_leader_id(k->node);
    if (k->closing) {
        return;
    }
    if (leader == node_id(k->node) || leader == 0) {
        skew__drop(k);
        return;
    }
    if (k->conn != NULL && (k->conn->peer_id != leader ||
                            peerdial_ctx_stale(k->conn->dial, k->tls) ||
                            (k->conn->waiting &&
                             now - k->conn->sent_mono > SKEW__TIMEOUT_MS * 1000000ull))) {
        skew__drop(k);
    }
    if (k->conn == NULL) {
        skew__connect(k, leader);
    } else if (k->conn->connected && !k->conn->waiting) {
        skew__send(k);
    }
}

int skew_start(uv_loop_t *loop, const struct cfg *cfg, struct store *store, struct node *node,
               const struct tls_set *tls, struct skew **out)
{
    struct skew *k = calloc(1, sizeof *k);
    if (k == NULL) {
        return TALLY_NOMEM;
    }
    k->loop = loop;
    k->cfg = cfg;
    k->store = store;
    k->node = node;
    k->tls = tls;
    uv_timer_init(loop, &k->timer);
    k->timer.data = k;
    k->handles = 1;
    uv_timer_start(&k->timer, skew__tick, SKEW_INTERVAL_MS / 4, SKEW_INTERVAL_MS);
    *out = k;
    return 0;
}

static void skew__timer_closed(uv_handle_t *h)
{
    struct skew *k = h->data;
    k->handles--;
    skew__maybe_free(k);
}

void skew_close(struct skew *k)
{
    if (k == NULL || k->closing) {
        return;
    }
    k->closing = true;
    skew__drop(k);
    tlspipe_group_close(&k->pipes); /* a handshake under way ends now */
    uv_close((uv_handle_t *)&k->timer, skew__timer_closed);
}

int64_t skew_take_over(struct skew *k)
{
    int64_t mag;
    if (k == NULL) {
        return 0;
    }
    uint64_t now_mono = uv_hrtime();
    k->correction = 0;
    if (!k->have || now_mono - k->at_mono > 3ull * SKEW_INTERVAL_MS * 1000000ull) {
        return 0;
    }
    /* The measurement compared the clocks as they were then. If this
     * node's own clock jumped since (it was set right, or wrong), its
     * wall clock moved more or less than the time that passed, and the
     * offset now differs by as much: a node whose clock was an hour behind
     * when it last asked, set right a moment before it became leader,
     * would otherwise run an hour ahead (the fault suite saw retention
     * delete a topic so). */
    int64_t jumped = (skew__wall_ms() - k->at_wall) -
                     (int64_t)((now_mono - k->at_mono) / 1000000ull);
    int64_t raw = k->offset_ms + jumped;
    /* Only when the two clocks disagree: when they agree, the cluster's
     * time comes back to the clocks (a correction is not passed on). */
    mag = raw < 0 ? -raw : raw;
    if ((uint64_t)mag <= k->cfg->clock_warn_ms || raw + k->leader_corr == 0) {
        return 0;
    }
    k->correction = raw + k->leader_corr;
    TLOG_WARN("clock", "this node became leader with its clock %lld ms %s the previous leader's "
              "(node %llu): it goes on with the cluster's time (its clock %+lld ms) so that "
              "timestamps and retention do not jump; synchronise the clocks (docs/operations.md, "
              "Clocks)", (long long)mag, raw > 0 ? "ahead of" : "behind",
              (unsigned long long)k->leader_id, (long long)-k->correction);
    return k->correction;
}

void skew_get(struct skew *k, struct skew_state *out)
{
    memset(out, 0, sizeof *out);
    if (k == NULL || k->closing) {
        return;
    }
    out->leader_id = node_leader_id(k->node);
    if (out->leader_id != 0 && out->leader_id == node_id(k->node)) {
        int64_t mag = k->correction < 0 ? -k->correction : k->correction;
        out->known = true; /* the cluster's time, its clock corrected */
        out->offset_ms = k->correction;
        out->warn = (uint64_t)mag > k->cfg->clock_warn_ms;
        return;
    }
    if (k->have && k->leader_id == out->leader_id &&
        uv_hrtime() - k->at_mono <= 3ull * SKEW_INTERVAL_MS * 1000000ull) {
        int64_t offset = k->offset_ms + k->leader_corr;
        int64_t mag = offset < 0 ? -offset : offset;
        out->known = true;
        out->offset_ms = offset;
        out->rtt_ms = k->rtt_ms;
        out->warn = (uint64_t)mag > k->cfg->clock_warn_ms;
    }
}
