/* libtally: the asynchronous, batching producer (tally_producer_* in
 * include/tally.h).
 *
 * Records are appended to an open batch per topic (lib/batch.h builder).
 * A batch is sealed into a PRODUCE request when it reaches batch_bytes, or
 * when linger_ms have passed since its first record and a request slot is
 * free, and up to max_inflight requests are pipelined on one connection to
 * the leader. The leader answers in request order (docs/protocol.md), so
 * the answers are matched against a FIFO of the requests sent. Nothing
 * runs in the background: the I/O happens inside tally_producer_send,
 * _poll and _flush, which also call the acknowledgement callbacks.
 *
 * Idempotence: the producer draws its own random producer id and numbers
 * its batches per topic 0, 1, 2... at the moment a batch is first sent (so
 * that batches go out in sequence order). A batch that is resent keeps its
 * sequence, so the leader answers a batch that was already written with its
 * original offsets and writes nothing.
 *
 * What happens when something goes wrong:
 * - An error answer: nothing more is sent until every request in flight
 *   has been answered ("draining"); the batches are then resent in their
 *   original order, or failed.
 *   - NOTLEADER (follow the address given), NOLEADER, UNAVAILABLE,
 *     SHUTDOWN, BUSY: not written; resent with the same sequence.
 *   - LEADERSHIP_LOST: maybe written; resent as an uncertain batch (below).
 *   After any of these but BUSY the batches are resent on a new
 *   connection, to the leader named or the one the cluster reports: the
 *   node that answered is not the leader (any more).
 *   - SEQUENCE after an earlier batch of the topic was refused in the same
 *     round: not written (it did not follow); resent after that batch.
 *   - Any other code (NOTFOUND, TOOLARGE, NOSPACE...): the batch fails with
 *     it. Its sequence was not used, and the later batches of that topic
 *     in flight were refused (SEQUENCE) or not written: they are numbered
 *     again from the failed batch's sequence and resent.
 * - The connection fails, or the leader does not answer within 3 s: every
 *   batch in flight may or may not have been written ("uncertain"). After
 *   reconnecting to the leader, uncertain batches are resent one at a time,
 *   in order, before anything else. Each answer settles one:
 *   - success: written now, or recognised as a retry (original offsets);
 *   - SEQUENCE: the leader's producer table already holds a later batch
 *     of ours, so this one was written earlier but its answer was lost.
 *     The producer then reads the topic from the end of its last
 *     acknowledged batch (FETCH on the leader) and finds the batch by
 *     producer id and sequence to report its offsets.
 * - A record not acknowledged within timeout_ms of being sent fails with
 *   TALLY_TIMEOUT. If its batch may have been written, the producer fails
 *   every pending batch the same way and draws a new producer id (the
 *   sequence state on the cluster is then unknown), like tally_produce.
 *
 * This file uses src/proto and src/lib, client/wire.h for the connection,
 * and tally.h's tally_status_get to find the leader. */
#include "tally.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "client/client.h"
#include "client/wire.h"
#include "lib/batch.h"
#include "lib/byte.h"
#include "lib/codec.h"
#include "lib/err.h"
#include "proto/auth.h"
#include "proto/proto.h"

#ifndef TALLY_VERSION_STRING
#define TALLY_VERSION_STRING "unknown"
#endif

#define PROD__DEFAULT_BATCH_BYTES (64u << 10)
#define PROD__DEFAULT_INFLIGHT 8
#define PROD__MAX_INFLIGHT 1024 /* the node's limit of unanswered requests */
#define PROD__DEFAULT_TIMEOUT_MS 30000
/* No answer from the leader for this long while requests are in flight:
 * the connection is given up and its batches become uncertain. */
#define PROD__PROGRESS_MS 3000
#define PROD__CONNECT_MS 1000
#define PROD__BACKOFF_MIN_MS 50
#define PROD__BACKOFF_MAX_MS 500
#define PROD__FETCH_BYTES (4u << 20)
/* tally_producer_send reads answers at least every this many records. */
#define PROD__PUMP_EVERY 64
/* Batch header fields the producer stamps (lib/batch.c layout). */
#define PROD__OFF_PRODUCER_ID 48
#define PROD__OFF_PRODUCER_SEQ 56
#define PROD__OFF_HEADER_SUM 80

struct prod__rec {
    tally_ack_fn fn;
    void *arg;
};

struct prod__batch {
    struct prod__batch *next;
    struct prod__topic *t;
    struct buf frame;      /* the whole PRODUCE request frame */
    size_t batch_at;       /* where the batch starts in frame */
    struct prod__rec *recs; /* one per record, in offset order */
    uint32_t n;
    bool stamped;          /* seq assigned (first sent) */
    bool uncertain;        /* sent, outcome unknown */
    uint64_t seq;
    uint32_t req_id;
    int64_t deadline;      /* ms: first record's send time + timeout */
};

struct prod__topic {
    struct prod__topic *link;
    char name[PROTO_NAME_MAX];
    uint64_t next_seq;
    bool renumber;         /* a batch failed for good while others were in flight */
    uint64_t scan_from;    /* offset after our last acknowledged batch here */
    struct batch_builder bb;
    struct prod__rec *open; /* callbacks of the records in bb */
    uint32_t n_open;
    uint32_t cap_open;
    int64_t open_since;    /* ms, first record of bb */
};

struct prod__q {
    struct prod__batch *head;
    struct prod__batch *tail;
    size_t n;
};

struct tally_producer {
    tally_client *c;       /* borrowed: finds the leader */
    struct tally_producer_options o;
    uint64_t pid;
    struct prod__topic *topics;
    struct prod__q ready;  /* sealed, to send, in order */
    struct prod__q retry;  /* answered "try again" while draining */
    struct prod__q inflight; /* sent on fd, answers come in this order */
    bool draining;
    bool moved;            /* an answer while draining sent us elsewhere */
    struct wire w;         /* the connection to the leader (fd -1: none) */
    char addr[PROTO_ADDR_MAX]; /* leader to try next ("" = ask) */
    struct buf rbuf;       /* received bytes; frames start at rpos */
    size_t rpos;
    uint32_t next_id;
    int64_t last_progress;
    int64_t retry_at;      /* after a failed connect: not before this (ms) */
    int first_err;         /* first failure since the last flush */
    char errmsg[ERR_MSG_SIZE];
    char ackmsg[ERR_MSG_SIZE];
    unsigned delivered;    /* callbacks run in this call */
    unsigned since_pump;   /* records sent since the last pump */
};

static void prod__sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void prod__new_id(struct tally_producer *p)
{
    uint64_t id = 0;
    while (id == 0) {
        if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            id = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)p;
        }
    }
    p->pid = id;
    for (struct prod__topic *t = p->topics; t != NULL; t = t->link) {
        t->next_seq = 0;
        t->renumber = false;
    }
}

/* ------------------------------------------------------------------------
 * Queues and completion
 * ------------------------------------------------------------------------ */

static void prod__push(struct prod__q *q, struct prod__batch *b)
{
    b->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = b;
    } else {
        q->head = b;
    }
    q->tail = b;
    q->n++;
}

static struct prod__batch *prod__pop(struct prod__q *q)
{
    struct prod__batch *b = q->head;
    if (b != NULL) {
        q->head = b->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
        q->n--;
        b->next = NULL;
    }
    return b;
}

/* Put all of @front before @q's contents, keeping both orders. */
static void prod__prepend(struct prod__q *q, struct prod__q *front)
{
    if (front->head == NULL) {
        return;
    }
    front->tail->next = q->head;
    if (q->tail == NULL) {
        q->tail = front->tail;
    }
    q->head = front->head;
    q->n += front->n;
    memset(front, 0, sizeof *front);
}

static void prod__free_batch(struct prod__batch *b)
{
    buf_free(&b->frame);
    free(b->recs);
    free(b);
}

/* Report @b's records and free it. code 0: written at @base. */
static void prod__complete(struct tally_producer *p, struct prod__batch *b, int code,
                           uint64_t base, uint64_t raft_index)
{
    struct tally_ack ack;
    memset(&ack, 0, sizeof ack);
    ack.code = code;
    ack.raft_index = raft_index;
    ack.errmsg = code != 0 ? p->ackmsg : "";
    if (code != 0 && p->first_err == 0) {
        p->first_err = code;
        snprintf(p->errmsg, sizeof p->errmsg, "%s", p->ackmsg);
    }
    if (code == 0 && base + b->n > b->t->scan_from) {
        b->t->scan_from = base + b->n;
    }
    for (uint32_t i = 0; i < b->n; i++) {
        ack.offset = code == 0 ? base + i : 0;
        ack.batch_index = i;
        if (b->recs[i].fn != NULL) {
            b->recs[i].fn(b->recs[i].arg, &ack);
        }
    }
    p->delivered += b->n;
    prod__free_batch(b);
}

static void prod__fail_queue(struct tally_producer *p, struct prod__q *q, int code)
{
    struct prod__batch *b;
    while ((b = prod__pop(q)) != NULL) {
        prod__complete(p, b, code, 0, 0);
    }
}

/* ------------------------------------------------------------------------
 * Batches
 * ------------------------------------------------------------------------ */

static struct prod__topic *prod__topic(struct tally_producer *p, const char *name)
{
    struct prod__topic *t;
    for (t = p->topics; t != NULL; t = t->link) {
        if (strcmp(t->name, name) == 0) {
            return t;
        }
    }
    t = calloc(1, sizeof *t);
    if (t == NULL) {
        return NULL;
    }
    snprintf(t->name, sizeof t->name, "%s", name);
    batch_builder_init(&t->bb, 0, 0);
    t->link = p->topics;
    p->topics = t;
    return t;
}

/* Turn @t's open batch into a PRODUCE request at the end of the ready
 * queue. The producer id and sequence are stamped when it is first sent. */
static int prod__seal(struct tally_producer *p, struct prod__topic *t)
{
    struct prod__batch *b;
    struct proto_produce_req m;
    size_t start;
    int rv;

    if (t->n_open == 0) {
        return 0;
    }
    b = calloc(1, sizeof *b);
    if (b == NULL) {
        return TALLY_NOMEM;
    }
    /* The batch is the request's last field: encode the request with an
     * empty batch, then let the builder append the batch to the frame and
     * patch the blob's length (one copy of the records, not two). */
    memset(&m, 0, sizeof m);
    snprintf(m.topic, sizeof m.topic, "%s", t->name);
    m.timeout_ms = (uint32_t)p->o.timeout_ms;
    m.expect_offset = PROTO_NO_EXPECT;
    m.n_conditions = 0;
    m.batch = NULL;
    m.batch_len = 0;
    buf_init(&b->frame);
    (void)buf_reserve(&b->frame, PROTO_HEADER_SIZE + PROTO_NAME_MAX + 32 +
                                     batch_builder_size(&t->bb));
    start = proto_begin_frame(&b->frame, PROTO_PRODUCE, 0, 0);
    proto_put_produce_req(&b->frame, &m);
    b->batch_at = b->frame.len;
    rv = buf_ok(&b->frame) ? batch_builder_finish(&t->bb, p->o.compress != 0, &b->frame)
                           : TALLY_NOMEM;
    if (rv == 0 && !buf_ok(&b->frame)) {
        rv = TALLY_NOMEM;
    }
    if (rv != 0) {
        prod__free_batch(b);
        return rv;
    }
    byte_put_u32(b->frame.data + b->batch_at - 4, (uint32_t)(b->frame.len - b->batch_at));
    proto_end_frame(&b->frame, start);
    b->t = t;
    b->recs = t->open;
    b->n = t->n_open;
    b->deadline = t->open_since + p->o.timeout_ms;
    t->open = NULL;
    t->n_open = 0;
    t->cap_open = 0;
    batch_builder_reset(&t->bb);
    prod__push(&p->ready, b);
    return 0;
}

/* Write the producer id and @b's sequence into its header. */
static void prod__stamp(struct tally_producer *p, struct prod__batch *b)
{
    uint8_t *h = b->frame.data + b->batch_at;
    if (!b->stamped) {
        b->seq = b->t->next_seq++;
        b->stamped = true;
    }
    byte_put_u64(h + PROD__OFF_PRODUCER_ID, p->pid);
    byte_put_u64(h + PROD__OFF_PRODUCER_SEQ, b->seq);
    byte_put_u64(h + PROD__OFF_HEADER_SUM, codec_checksum(h, PROD__OFF_HEADER_SUM));
}

/* ------------------------------------------------------------------------
 * Connection
 * ------------------------------------------------------------------------ */

/* The connection is gone: what was in flight may have been written. */
static void prod__disconnect(struct tally_producer *p)
{
    struct prod__batch *b;
    wire_close(&p->w);
    p->rbuf.len = 0;
    p->rpos = 0;
    while ((b = prod__pop(&p->inflight)) != NULL) {
        if (b->t->renumber) {
            /* Behind a batch of its topic that failed for good: refused
             * (SEQUENCE) even if it reached the leader. */
            b->stamped = false;
        } else {
            b->uncertain = true;
        }
        /* After the batches answered while draining: sent later. */
        prod__push(&p->retry, b);
    }
    /* Draining ends here: nothing more will be answered. */
    prod__prepend(&p->ready, &p->retry);
    p->draining = false;
    p->moved = false;
    for (struct prod__topic *t = p->topics; t != NULL; t = t->link) {
        t->renumber = false;
    }
}

static int prod__send_all(struct tally_producer *p, const uint8_t *data, size_t n,
                          int64_t deadline)
{
    bool sent = false;
    return wire_send_all(&p->w, data, n, deadline, &sent, p->ackmsg);
}

/* Read what the socket has (waiting until @deadline for the first byte if
 * @deadline > now). 0, or TALLY_IOERR on EOF/error, TALLY_TIMEOUT. */
static int prod__recv_some(struct tally_producer *p, int64_t deadline)
{
    if (p->rpos > 0 && p->rpos == p->rbuf.len) {
        p->rbuf.len = 0;
        p->rpos = 0;
    } else if (p->rpos > (1u << 20)) {
        memmove(p->rbuf.data, p->rbuf.data + p->rpos, p->rbuf.len - p->rpos);
        p->rbuf.len -= p->rpos;
        p->rpos = 0;
    }
    return wire_recv_some(&p->w, &p->rbuf, deadline, p->ackmsg);
}

/* A whole frame at rpos? Fills @f and @len (frame bytes). -1 if framing
 * is lost. */
static int prod__have_frame(struct tally_producer *p, struct proto_frame *f, size_t *len)
{
    size_t avail = p->rbuf.len - p->rpos;
    if (avail < PROTO_HEADER_SIZE) {
        return 0;
    }
    if (proto_decode_frame(p->rbuf.data + p->rpos, avail, PROTO_MAX_FRAME, f) != 0 ||
        !(f->flags & PROTO_FLAG_RESPONSE)) {
        return -1;
    }
    *len = (size_t)f->frame_len + 4;
    return avail >= *len;
}

/* Read one whole frame synchronously (nothing else in flight). */
static int prod__recv_frame(struct tally_producer *p, int64_t deadline, struct proto_frame *f,
                            struct rd *body)
{
    size_t len;
    int rv;
    for (;;) {
        int have = prod__have_frame(p, f, &len);
        if (have < 0) {
            snprintf(p->ackmsg, sizeof p->ackmsg, "%s: malformed answer", p->addr);
            return TALLY_PROTO;
        }
        if (have > 0) {
            rd_init(body, p->rbuf.data + p->rpos + PROTO_HEADER_SIZE, len - PROTO_HEADER_SIZE);
            p->rpos += len;
            return 0;
        }
        rv = prod__recv_some(p, deadline);
        if (rv == TALLY_TIMEOUT) {
            snprintf(p->ackmsg, sizeof p->ackmsg, "%s: no answer in time", p->addr);
        }
        if (rv != 0) {
            return rv;
        }
    }
}

struct prod__login_arg {
    struct tally_producer *p;
    int64_t deadline;
};

/* One AUTH round trip on the producer's connection (nothing else is in
 * flight while it connects). */
static int prod__login_rt(void *arg, struct buf *frame, struct proto_auth_reply *rep,
                          char *errmsg)
{
    struct prod__login_arg *a = arg;
    struct proto_frame f;
    int rv = prod__send_all(a->p, frame->data, frame->len, a->deadline);
    if (rv == 0) {
        rv = prod__recv_frame(a->p, a->deadline, &f, &rep->body);
    }
    if (rv != 0) {
        snprintf(errmsg, ERR_MSG_SIZE, "%s", a->p->ackmsg);
        return rv;
    }
    rep->is_error = (f.flags & PROTO_FLAG_ERROR) != 0;
    rep->message[0] = '\0';
    if (rep->is_error) {
        struct proto_error e;
        if (proto_get_error(&rep->body, &e) != 0) {
            snprintf(errmsg, ERR_MSG_SIZE, "malformed error answer");
            return TALLY_PROTO;
        }
        snprintf(rep->message, sizeof rep->message, "%s", e.message);
    }
    return 0;
}

/* Log in with the client handle's user, if it has one. */
static int prod__login(struct tally_producer *p, int64_t deadline)
{
    const char *password;
    int mech;
    const char *user = client_auth_user(p->c, &password, &mech);
    struct prod__login_arg a = {p, deadline};
    char why[ERR_MSG_SIZE];
    int rv;
    if (user == NULL) {
        return 0;
    }
    rv = proto_auth_login_mech(mech, user, password, prod__login_rt, &a, NULL, 0, why);
    if (rv != 0) {
        snprintf(p->ackmsg, sizeof p->ackmsg, "%s: %s", p->addr, why);
    }
    return rv;
}

/* Connect to p->addr and say HELLO. */
static int prod__open(struct tally_producer *p, int64_t deadline)
{
    struct sockaddr_in sa;
    struct proto_hello_req hq = {.min_version = PROTO_VERSION, .max_version = PROTO_VERSION};
    char norm[PROTO_ADDR_MAX];
    struct proto_hello_resp hr;
    struct proto_frame f;
    struct rd body;
    struct buf hello;
    int64_t until = wire_now_ms() + PROD__CONNECT_MS;
    size_t start;
    int rv;

    if (until > deadline) {
        until = deadline;
    }
    if (wire_parse_addr(p->addr, strlen(p->addr), &sa, norm) != 0) {
        snprintf(p->ackmsg, sizeof p->ackmsg, "bad leader address '%s'", p->addr);
        return TALLY_CONNECT;
    }
    wire_init(&p->w, p->addr);
    if (wire_open(&p->w, &sa, until, p->ackmsg) != 0) {
        prod__disconnect(p);
        return TALLY_CONNECT;
    }
    if (client_tls_ctx(p->c) != NULL) { /* TLS hook: the leader's certificate names its IP */
        char host[PROTO_ADDR_MAX];
        bool refused;
        snprintf(host, sizeof host, "%.*s", (int)(strrchr(norm, ':') - norm), norm);
        if (wire_start_tls(&p->w, client_tls_ctx(p->c), host, until, &refused, p->ackmsg) !=
            0) {
            prod__disconnect(p);
            return TALLY_CONNECT;
        }
    }
    snprintf(hq.client_name, sizeof hq.client_name, "libtally/%s producer",
             TALLY_VERSION_STRING);
    buf_init(&hello);
    start = proto_begin_frame(&hello, PROTO_HELLO, 0, p->next_id++);
    proto_put_hello_req(&hello, &hq);
    proto_end_frame(&hello, start);
    rv = buf_ok(&hello) ? prod__send_all(p, hello.data, hello.len, until) : TALLY_NOMEM;
    buf_free(&hello);
    if (rv == 0) {
        rv = prod__recv_frame(p, until, &f, &body);
    }
    if (rv == 0 && ((f.flags & PROTO_FLAG_ERROR) || f.type != PROTO_HELLO ||
                    proto_get_hello_resp(&body, &hr) != 0 || hr.version != PROTO_VERSION)) {
        snprintf(p->ackmsg, sizeof p->ackmsg, "%s: hello refused or malformed", p->addr);
        rv = TALLY_CONNECT;
    }
    if (rv == 0) {
        rv = prod__login(p, until); /* auth hook */
    }
    if (rv != 0) {
        prod__disconnect(p);
        return rv == TALLY_NOMEM || rv == TALLY_AUTH ? rv : TALLY_CONNECT;
    }
    p->last_progress = wire_now_ms();
    return 0;
}

/* Connect to the leader: the address a NOTLEADER named, else the one the
 * cluster status reports; retry with a backoff until @deadline. */
static int prod__connect(struct tally_producer *p, int64_t deadline)
{
    int64_t backoff = PROD__BACKOFF_MIN_MS;
    int rv = TALLY_TIMEOUT;
    for (int round = 0; wire_now_ms() < deadline && round < 100000; round++) {
        if (p->addr[0] != '\0') {
            if ((rv = prod__open(p, deadline)) == 0) {
                return 0;
            }
            if (rv == TALLY_NOMEM) {
                return rv;
            }
            p->addr[0] = '\0';
        }
        struct tally_status st;
        int srv = tally_status_get(p->c, &st);
        if (srv == 0) {
            for (size_t i = 0; i < st.n_members; i++) {
                if (st.leader_id != 0 && st.members[i].id == st.leader_id &&
                    st.members[i].client_addr[0] != '\0') {
                    snprintf(p->addr, sizeof p->addr, "%s", st.members[i].client_addr);
                }
            }
            tally_status_free(&st);
            if (p->addr[0] != '\0') {
                continue; /* try it at once */
            }
            snprintf(p->ackmsg, sizeof p->ackmsg, "no leader is known");
            rv = TALLY_NOLEADER;
        } else {
            snprintf(p->ackmsg, sizeof p->ackmsg, "%s", tally_errmsg(p->c));
            rv = srv;
        }
        int64_t left = deadline - wire_now_ms();
        prod__sleep_ms(backoff < left ? backoff : left);
        backoff = backoff * 2 > PROD__BACKOFF_MAX_MS ? PROD__BACKOFF_MAX_MS : backoff * 2;
    }
    if (rv == TALLY_TIMEOUT || rv == 0) {
        snprintf(p->ackmsg, sizeof p->ackmsg, "no leader reachable in time");
        rv = TALLY_TIMEOUT;
    }
    return rv;
}

/* ------------------------------------------------------------------------
 * Answers
 * ------------------------------------------------------------------------ */

/* Does @q hold a batch of @t? */
static bool prod__q_has_topic(const struct prod__q *q, const struct prod__topic *t)
{
    for (const struct prod__batch *b = q->head; b != NULL; b = b->next) {
        if (b->t == t) {
            return true;
        }
    }
    return false;
}

static bool prod__retryable(int code)
{
    return code == TALLY_NOTLEADER || code == TALLY_NOLEADER || code == TALLY_UNAVAILABLE ||
           code == TALLY_SHUTDOWN || code == TALLY_BUSY;
}

/* An uncertain batch got SEQUENCE: it was written before its answer was
 * lost. Find it in the topic (on the leader, nothing else in flight) by
 * producer id and sequence. */
static void prod__lookup(struct tally_producer *p, struct prod__batch *b)
{
    struct prod__topic *t = b->t;
    uint64_t from = t->scan_from;
    int64_t deadline = wire_now_ms() + PROD__PROGRESS_MS;

    for (int iter = 0; iter < 1000000; iter++) {
        struct proto_fetch_req m;
        struct proto_fetch_resp fr;
        struct proto_frame f;
        struct rd body;
        struct buf req;
        size_t start, pos = 0;
        uint64_t next = from;
        int rv;

        memset(&m, 0, sizeof m);
        snprintf(m.topic, sizeof m.topic, "%s", t->name);
        m.offset = from;
        m.max_bytes = PROD__FETCH_BYTES;
        buf_init(&req);
        start = proto_begin_frame(&req, PROTO_FETCH, 0, p->next_id++);
        proto_put_fetch_req(&req, &m);
        proto_end_frame(&req, start);
        rv = buf_ok(&req) ? prod__send_all(p, req.data, req.len, deadline) : TALLY_NOMEM;
        buf_free(&req);
        if (rv == 0) {
            rv = prod__recv_frame(p, deadline, &f, &body);
        }
        if (rv != 0) {
            /* Try again after reconnecting: the batch stays uncertain. */
            b->next = NULL;
            struct prod__q one = {b, b, 1};
            prod__prepend(&p->retry, &one);
            prod__disconnect(p);
            return;
        }
        if (f.flags & PROTO_FLAG_ERROR) {
            struct proto_error e;
            memset(&e, 0, sizeof e);
            (void)proto_get_error(&body, &e);
            snprintf(p->ackmsg, sizeof p->ackmsg,
                     "%s: batch %llu was written but its offsets cannot be read back: %s",
                     t->name, (unsigned long long)b->seq, e.message);
            prod__complete(p, b, TALLY_SEQUENCE, 0, 0);
            return;
        }
        if (f.type != PROTO_FETCH || proto_get_fetch_resp(&body, &fr) != 0) {
            snprintf(p->ackmsg, sizeof p->ackmsg, "%s: malformed fetch answer", p->addr);
            prod__complete(p, b, TALLY_PROTO, 0, 0);
            return;
        }
        while (pos + BATCH_HEADER_SIZE <= fr.batches_len) {
            struct batch_header h;
            char em[ERR_MSG_SIZE];
            if (batch_decode_header(fr.batches + pos, fr.batches_len - pos, &h, em) != 0 ||
                h.batch_len > fr.batches_len - pos) {
                break;
            }
            if (h.producer_id == p->pid && h.producer_seq == b->seq && h.record_count > 0) {
                if (h.record_count != b->n) {
                    snprintf(p->ackmsg, sizeof p->ackmsg,
                             "%s: batch %llu was written with %u records, not %u", t->name,
                             (unsigned long long)b->seq, h.record_count, b->n);
                    prod__complete(p, b, TALLY_PROTO, 0, 0);
                } else {
                    prod__complete(p, b, 0, h.base_offset, h.raft_index);
                }
                return;
            }
            next = batch_last_offset(&h) + 1;
            pos += h.batch_len;
        }
        if (next <= from || next >= fr.next_offset) {
            snprintf(p->ackmsg, sizeof p->ackmsg,
                     "%s: the leader refused batch %llu as out of sequence and it is not in "
                     "the topic after offset %llu", t->name, (unsigned long long)b->seq,
                     (unsigned long long)t->scan_from);
            prod__complete(p, b, TALLY_SEQUENCE, 0, 0);
            return;
        }
        from = next;
    }
}

/* Handle the answer (@f, @body) to the oldest request in flight. */
static void prod__answer(struct tally_producer *p, const struct proto_frame *f, struct rd *body)
{
    struct prod__batch *b = p->inflight.head;
    struct proto_error e;
    struct proto_produce_resp pr;
    struct prod__topic *t;

    if (b == NULL || f->request_id != b->req_id || f->type != PROTO_PRODUCE) {
        snprintf(p->ackmsg, sizeof p->ackmsg, "%s: answer to an unexpected request", p->addr);
        prod__disconnect(p);
        return;
    }
    prod__pop(&p->inflight);
    t = b->t;
    p->last_progress = wire_now_ms();
    if (!(f->flags & PROTO_FLAG_ERROR)) {
        if (proto_get_produce_resp(body, &pr) != 0 || proto_get_end(body) != 0 ||
            pr.count != b->n) {
            snprintf(p->ackmsg, sizeof p->ackmsg, "%s: malformed produce answer", p->addr);
            prod__complete(p, b, TALLY_PROTO, 0, 0);
            return;
        }
        prod__complete(p, b, 0, pr.base_offset, pr.raft_index);
        return;
    }
    memset(&e, 0, sizeof e);
    if (proto_get_error(body, &e) != 0) {
        e.code = TALLY_PROTO;
        snprintf(e.message, sizeof e.message, "malformed error answer");
    }
    p->draining = true;
    if (t->renumber) {
        /* Behind a failed batch of its topic: not written, number it again. */
        b->stamped = false;
        b->uncertain = false;
        prod__push(&p->retry, b);
        return;
    }
    /* Not the leader (any more): the batches are resent once every
     * request in flight is answered, on a new connection to the address
     * given or, without one, to the leader the cluster reports (p->moved:
     * prod__process reconnects). Resending them on this connection would
     * only be refused again, for as long as the batches live. */
    if (e.code == TALLY_NOTLEADER && e.leader_addr[0] != '\0') {
        snprintf(p->addr, sizeof p->addr, "%s", e.leader_addr);
        p->moved = true;
        prod__push(&p->retry, b);
        return;
    }
    if (prod__retryable(e.code)) {
        if (e.code != TALLY_BUSY) {
            p->addr[0] = '\0';
            p->moved = true;
        }
        prod__push(&p->retry, b);
        return;
    }
    if (e.code == TALLY_LEADERSHIP_LOST) {
        b->uncertain = true;
        p->addr[0] = '\0';
        p->moved = true;
        prod__push(&p->retry, b);
        return;
    }
    if (e.code == TALLY_SEQUENCE && b->uncertain) {
        prod__lookup(p, b);
        return;
    }
    if (e.code == TALLY_SEQUENCE && prod__q_has_topic(&p->retry, t)) {
        /* An earlier batch of this topic was refused as not written in
         * this round (NOTLEADER, NOLEADER, BUSY...: say a new leader that
         * became ready while our pipeline was arriving), so this one does
         * not follow the last written: not written either. Resent after
         * it, with the same sequence. */
        prod__push(&p->retry, b);
        return;
    }
    /* Failed for good; its sequence was not used. */
    snprintf(p->ackmsg, sizeof p->ackmsg, "produce to %s: %s: %s", t->name, p->addr, e.message);
    if (!b->uncertain) {
        t->next_seq = b->seq;
        t->renumber = true;
    }
    prod__complete(p, b, e.code, 0, 0);
}

/* Process the whole answers received so far. */
static void prod__process(struct tally_producer *p)
{
    struct proto_frame f;
    size_t len;
    int have;
    while (p->w.fd >= 0 && (have = prod__have_frame(p, &f, &len)) != 0) {
        struct rd body;
        if (have < 0) {
            snprintf(p->ackmsg, sizeof p->ackmsg, "%s: malformed answer", p->addr);
            prod__disconnect(p);
            return;
        }
        rd_init(&body, p->rbuf.data + p->rpos + PROTO_HEADER_SIZE, len - PROTO_HEADER_SIZE);
        p->rpos += len;
        prod__answer(p, &f, &body);
    }
    if (p->draining && p->inflight.n == 0 && p->moved) {
        /* Everything was answered, so nothing becomes uncertain: close
         * the connection to the node that is not the leader; the pump
         * connects to the leader. Without an address it asks the cluster,
         * after a short pause (an election may be under way). */
        bool ask = p->addr[0] == '\0';
        prod__disconnect(p);
        if (ask) {
            p->retry_at = wire_now_ms() + PROD__BACKOFF_MIN_MS;
        }
    } else if (p->draining && p->inflight.n == 0) {
        p->draining = false;
        prod__prepend(&p->ready, &p->retry);
        for (struct prod__topic *t = p->topics; t != NULL; t = t->link) {
            t->renumber = false;
        }
    }
}

/* ------------------------------------------------------------------------
 * The pump
 * ------------------------------------------------------------------------ */

/* Fail what waited too long. A batch that may be in the log takes every
 * pending batch with it and a new producer id (the cluster's sequence
 * state is then unknown). */
static void prod__expire(struct tally_producer *p, int64_t now)
{
    struct prod__batch *b;
    char why[ERR_MSG_SIZE];
    while ((b = p->ready.head) != NULL && now >= b->deadline) {
        snprintf(why, sizeof why, "%s", p->ackmsg[0] != '\0' ? p->ackmsg : "slow cluster");
        if (b->stamped) {
            snprintf(p->ackmsg, sizeof p->ackmsg,
                     "produce to %s: not acknowledged within %d ms (%s); it may or may not "
                     "have been written", b->t->name, p->o.timeout_ms, why);
            wire_close(&p->w);
            prod__fail_queue(p, &p->inflight, TALLY_TIMEOUT);
            prod__fail_queue(p, &p->retry, TALLY_TIMEOUT);
            prod__fail_queue(p, &p->ready, TALLY_TIMEOUT);
            p->draining = false;
            p->moved = false;
            p->rbuf.len = 0;
            p->rpos = 0;
            prod__new_id(p);
            return;
        }
        prod__pop(&p->ready);
        snprintf(p->ackmsg, sizeof p->ackmsg,
                 "produce to %s: not sent within %d ms (%s); not written", b->t->name,
                 p->o.timeout_ms, why);
        prod__complete(p, b, TALLY_TIMEOUT, 0, 0);
    }
}

/* Seal open batches that are due (linger passed, or @force) while request
 * slots are free. */
static int prod__seal_due(struct tally_producer *p, int64_t now, bool force)
{
    for (struct prod__topic *t = p->topics; t != NULL; t = t->link) {
        if (t->n_open > 0 &&
            (force || (now - t->open_since >= p->o.linger_ms &&
                       p->ready.n + p->inflight.n < (size_t)p->o.max_inflight))) {
            int rv = prod__seal(p, t);
            if (rv != 0) {
                return rv;
            }
        }
    }
    return 0;
}

/* Send what may be sent, then read what has arrived. Never waits for an
 * answer, but may wait to connect. */
static void prod__pump(struct tally_producer *p)
{
    int64_t now = wire_now_ms();
    for (int guard = 0; guard < 2 * PROD__MAX_INFLIGHT + 16; guard++) {
        struct prod__batch *b;
        int rv;
        prod__expire(p, now);
        (void)prod__seal_due(p, now, false);
        b = p->ready.head;
        if (b == NULL || p->draining || p->inflight.n >= (size_t)p->o.max_inflight ||
            (b->uncertain && p->inflight.n > 0)) {
            break;
        }
        if (p->w.fd < 0) {
            if (now < p->retry_at) {
                break; /* queue until the next attempt, do not block */
            }
            rv = prod__connect(p, b->deadline);
            now = wire_now_ms();
            if (rv != 0) {
                p->retry_at = now + PROD__BACKOFF_MAX_MS;
                prod__expire(p, now > b->deadline ? now : b->deadline);
                continue;
            }
        }
        prod__pop(&p->ready);
        prod__stamp(p, b);
        b->req_id = p->next_id++;
        byte_put_u32(b->frame.data + 12, b->req_id);
        if (p->inflight.n == 0) {
            p->last_progress = now;
        }
        prod__push(&p->inflight, b);
        rv = prod__send_all(p, b->frame.data, b->frame.len, now + PROD__PROGRESS_MS);
        if (rv != 0) {
            prod__disconnect(p);
        }
        now = wire_now_ms();
        if (b->uncertain) {
            break; /* one at a time: wait for its answer */
        }
    }
    if (p->w.fd >= 0 && p->inflight.n > 0) {
        int rv = prod__recv_some(p, 0);
        if (rv == 0) {
            prod__process(p);
        } else if (rv != TALLY_TIMEOUT) {
            prod__disconnect(p);
        }
    }
}

/* Pump, then wait up to @ms for answers (or a linger to expire). */
static void prod__step(struct tally_producer *p, int ms)
{
    int64_t now, until;
    prod__pump(p);
    now = wire_now_ms();
    until = now + ms;
    for (struct prod__topic *t = p->topics; t != NULL; t = t->link) {
        if (t->n_open > 0 && t->open_since + p->o.linger_ms < until) {
            until = t->open_since + p->o.linger_ms;
        }
    }
    if (p->w.fd >= 0 && p->inflight.n > 0) {
        int64_t stall = p->last_progress + PROD__PROGRESS_MS;
        if (now >= stall) {
            snprintf(p->ackmsg, sizeof p->ackmsg, "%s: no answer within %d ms", p->addr,
                     PROD__PROGRESS_MS);
            prod__disconnect(p);
            prod__pump(p);
            return;
        }
        if (stall < until) {
            until = stall;
        }
        if (until > now) {
            int rv = prod__recv_some(p, until);
            if (rv == 0) {
                prod__process(p);
            } else if (rv != TALLY_TIMEOUT) {
                prod__disconnect(p);
            }
        }
    } else if (until > now && p->ready.n == 0) {
        prod__sleep_ms(until - now);
    } else if (until > now && p->w.fd < 0) {
        /* Ready batches but no connection: the pump failed to connect and
         * will try again; do not spin. */
        prod__sleep_ms(until - now < PROD__BACKOFF_MIN_MS ? until - now : PROD__BACKOFF_MIN_MS);
    }
    prod__pump(p);
}

/* ------------------------------------------------------------------------
 * API
 * ------------------------------------------------------------------------ */

TALLY_API void tally_producer_options_init(struct tally_producer_options *o)
{
    if (o == NULL) {
        return;
    }
    memset(o, 0, sizeof *o);
    o->batch_bytes = PROD__DEFAULT_BATCH_BYTES;
    o->linger_ms = 0;
    o->max_inflight = PROD__DEFAULT_INFLIGHT;
    o->compress = 0;
    o->timeout_ms = PROD__DEFAULT_TIMEOUT_MS;
}

TALLY_API int tally_producer_create(tally_client *c, const struct tally_producer_options *opts,
                                    tally_producer **out)
{
    struct tally_producer *p;
    if (out == NULL) {
        return TALLY_INVAL;
    }
    *out = NULL;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    p = calloc(1, sizeof *p);
    if (p == NULL) {
        return TALLY_NOMEM;
    }
    if (opts != NULL) {
        p->o = *opts;
    } else {
        tally_producer_options_init(&p->o);
    }
    if (p->o.batch_bytes == 0 || p->o.batch_bytes > BATCH_MAX_SIZE || p->o.linger_ms < 0 ||
        p->o.max_inflight < 1 || p->o.max_inflight > PROD__MAX_INFLIGHT ||
        p->o.timeout_ms <= 0) {
        free(p);
        return TALLY_INVAL;
    }
    p->c = c;
    wire_init(&p->w, "");
    p->next_id = 1;
    buf_init(&p->rbuf);
    prod__new_id(p);
    *out = p;
    return 0;
}

TALLY_API int tally_producer_send(tally_producer *p, const char *topic,
                                  const struct tally_record_in *rec, tally_ack_fn fn, void *arg)
{
    struct prod__topic *t;
    bool first, sealed = false;
    size_t add;
    int rv;

    if (p == NULL) {
        return TALLY_INVAL;
    }
    p->delivered = 0;
    if (topic == NULL || topic[0] == '\0' || strlen(topic) >= PROTO_NAME_MAX || rec == NULL) {
        snprintf(p->errmsg, sizeof p->errmsg, "produce: bad topic name or record");
        return TALLY_INVAL;
    }
    /* The record's encoded size is at most its bytes plus 4 varints. */
    add = rec->key_len + rec->value_len + 48;
    if (BATCH_HEADER_SIZE + add > BATCH_MAX_SIZE) {
        snprintf(p->errmsg, sizeof p->errmsg, "produce to %s: a record of %zu bytes is over "
                 "the batch limit of %u bytes", topic, rec->key_len + rec->value_len,
                 (unsigned)BATCH_MAX_SIZE);
        return TALLY_TOOLARGE;
    }
    t = prod__topic(p, topic);
    if (t == NULL) {
        snprintf(p->errmsg, sizeof p->errmsg, "produce to %s: out of memory", topic);
        return TALLY_NOMEM;
    }
    if (t->n_open > 0 && batch_builder_size(&t->bb) + add > p->o.batch_bytes) {
        sealed = true;
        if ((rv = prod__seal(p, t)) != 0) {
            snprintf(p->errmsg, sizeof p->errmsg, "produce to %s: %s", topic,
                     tally_strerror(rv));
            return rv;
        }
    }
    /* Back-pressure: at most max_inflight sealed batches wait to be sent. */
    for (int i = 0; i < 1000000 && p->ready.n + p->retry.n > (size_t)p->o.max_inflight; i++) {
        prod__step(p, 100);
    }
    if (t->n_open == t->cap_open) {
        uint32_t cap = t->cap_open ? t->cap_open * 2 : 16;
        struct prod__rec *r = realloc(t->open, cap * sizeof *r);
        if (r == NULL) {
            snprintf(p->errmsg, sizeof p->errmsg, "produce to %s: out of memory", topic);
            return TALLY_NOMEM;
        }
        t->open = r;
        t->cap_open = cap;
    }
    rv = batch_builder_add(&t->bb, rec->key, rec->key_len, rec->value, rec->value_len);
    if (rv != 0) {
        snprintf(p->errmsg, sizeof p->errmsg, "produce to %s: %s", topic, tally_strerror(rv));
        return rv;
    }
    first = t->n_open == 0;
    if (first) {
        t->open_since = wire_now_ms();
    }
    t->open[t->n_open].fn = fn;
    t->open[t->n_open].arg = arg;
    t->n_open++;
    if (batch_builder_size(&t->bb) >= p->o.batch_bytes) {
        (void)prod__seal(p, t);
        sealed = true;
    }
    /* Send and read answers when there may be something to do: a batch
     * was sealed, a batch was started (it may go at once), or every
     * PROD__PUMP_EVERY records (answers, linger). Not on every record:
     * that would be a recv() and a clock read per record. */
    if (sealed || first || ++p->since_pump >= PROD__PUMP_EVERY) {
        p->since_pump = 0;
        prod__pump(p);
    }
    return 0;
}

TALLY_API int tally_producer_poll(tally_producer *p, int timeout_ms)
{
    if (p == NULL) {
        return TALLY_INVAL;
    }
    p->delivered = 0;
    prod__step(p, timeout_ms > 0 ? timeout_ms : 0);
    return (int)p->delivered;
}

static bool prod__idle(const struct tally_producer *p)
{
    if (p->ready.n || p->retry.n || p->inflight.n) {
        return false;
    }
    for (const struct prod__topic *t = p->topics; t != NULL; t = t->link) {
        if (t->n_open > 0) {
            return false;
        }
    }
    return true;
}

TALLY_API int tally_producer_flush(tally_producer *p)
{
    int rv;
    if (p == NULL) {
        return TALLY_INVAL;
    }
    p->delivered = 0;
    /* Every batch ends by its deadline; the bound only guards the loop. */
    for (int i = 0; i < 10000000 && !prod__idle(p); i++) {
        if ((rv = prod__seal_due(p, wire_now_ms(), true)) != 0) {
            snprintf(p->errmsg, sizeof p->errmsg, "flush: %s", tally_strerror(rv));
            return rv;
        }
        prod__step(p, 100);
    }
    rv = p->first_err;
    p->first_err = 0;
    return rv;
}

TALLY_API const char *tally_producer_errmsg(tally_producer *p)
{
    if (p == NULL) {
        return "no producer handle (NULL)";
    }
    return p->errmsg;
}

TALLY_API void tally_producer_destroy(tally_producer *p)
{
    if (p == NULL) {
        return;
    }
    (void)tally_producer_flush(p);
    wire_close(&p->w);
    while (p->topics != NULL) {
        struct prod__topic *t = p->topics;
        p->topics = t->link;
        batch_builder_free(&t->bb);
        free(t->open);
        free(t);
    }
    buf_free(&p->rbuf);
    free(p);
}
