/* libtally: the client library behind include/tally.h.
 *
 * Blocking TCP with poll(2) deadlines; one connection per node, opened on
 * first use (with a HELLO) and kept for later requests. One request is in
 * flight per handle at a time, so a response is always the answer to the
 * request just sent.
 *
 * The happy path of a write (produce, topic and member changes) is:
 *   1. send it to the last known leader (at first: any broker);
 *   2. a follower answers NOTLEADER with the leader's client address: send
 *      it there and remember that node as the leader;
 *   3. the leader answers once the write is committed and applied.
 *
 * Possible failure modes, and what the client does:
 * - NOLEADER / UNAVAILABLE / SHUTDOWN / BUSY answered, cannot connect, or
 *   the connection failed before the whole request was sent: the write was
 *   certainly not made, so try the next node (brokers, then the members
 *   learned from METADATA), pausing 20 ms doubling to 100 ms after each
 *   round, until the request timeout; then TALLY_NOLEADER, TALLY_CONNECT or
 *   TALLY_TIMEOUT naming every node tried and why it failed.
 * - The connection failed after the whole request was sent, or the leader
 *   answered LEADERSHIP_LOST: the outcome is unknown. A produce is
 *   idempotent (see below), so it is sent again, same bytes, until the
 *   timeout: the leader answers a retry of a batch that was written with
 *   the original offsets. Other writes return TALLY_LEADERSHIP_LOST
 *   (TALLY_TIMEOUT if no answer came in time) and are not retried.
 *
 * Idempotent produce: each handle draws a random 64-bit producer id
 * (getrandom) and numbers its batches per topic 0, 1, 2...; the pair is in
 * the batch header. The cluster remembers the last sequence of up to 4096
 * producers per topic (the least recently written one is forgotten first)
 * in its replicated state, so retries are recognised across leader
 * failover and restarts. If a produce still ends with an unknown outcome
 * (timeout) or the cluster refuses a sequence, the handle draws a new
 * producer id, so its next batch starts a fresh sequence.
 * Reads (fetch, topic list, metadata) are idempotent and go to any node;
 * the node that answered last is asked first next time.
 *
 * Memory: every buffer is owned by the handle except what is handed to the
 * caller (tally_fetch_result, tally_status, topic lists), which says so in
 * tally.h. Only symbols of tally.h are exported.
 *
 * This file holds the handle, its node table, the request/answer exchange
 * on one node's connection (client/wire.c carries the bytes) and the retry
 * driver above, which every call goes through; the calls themselves are
 * in the files client/client.h lists. libtally uses src/proto and src/lib
 * only. */
#include "tally.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client.h"
#include "client/wire.h"
#include "lib/byte.h"
#include "lib/err.h"
#include "lib/name.h"
#include "proto/proto.h"

#ifndef TALLY_VERSION_STRING
#define TALLY_VERSION_STRING "unknown"
#endif

#define CLIENT__DEFAULT_TIMEOUT_MS 10000
/* The pause after a round of nodes that could not take the request. The
 * cap bounds how late a client notices a new leader after an election: at
 * 500 ms it added up to half a second to a failover (docs/configuration.md,
 * Failover); a round is one small request per node, so 10 rounds a second
 * cost the nodes little. */
#define CLIENT__BACKOFF_MIN_MS 20
#define CLIENT__BACKOFF_MAX_MS 100
/* Longest wait for one node's answer to a retry-safe write (produce) before
 * the batch is sent to the next node: above an election timeout plus a
 * commit, so a healthy leader is never abandoned. */
#define CLIENT__ATTEMPT_MS 3000

/* ------------------------------------------------------------------------
 * Time, addresses, node table
 * ------------------------------------------------------------------------ */

static void client__sleep_until(int64_t until)
{
    int64_t left = until - wire_now_ms();
    if (left > 0) {
        struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
}

/* Index of the node with client address @addr, added if new. Returns -1
 * if the address is malformed or the table is full. */
int client__node_add(struct tally_client *c, const char *addr, size_t len)
{
    struct sockaddr_in sa;
    char norm[PROTO_ADDR_MAX];
    if (wire_parse_addr(addr, len, &sa, norm) != 0) {
        return -1;
    }
    for (size_t i = 0; i < c->n_nodes; i++) {
        if (strcmp(c->nodes[i].w.addr, norm) == 0) {
            return (int)i;
        }
    }
    if (c->n_nodes == CLIENT__MAX_NODES) {
        return -1;
    }
    if (c->n_nodes == c->cap_nodes) {
        size_t cap = c->cap_nodes ? c->cap_nodes * 2 : 4;
        struct client__node *nodes = realloc(c->nodes, cap * sizeof *nodes);
        if (nodes == NULL) {
            return -1;
        }
        c->nodes = nodes;
        c->cap_nodes = cap;
    }
    struct client__node *n = &c->nodes[c->n_nodes];
    memset(n, 0, sizeof *n);
    wire_init(&n->w, norm);
    /* The host as given ("db1.example:7001" -> "db1.example"): a node's
     * TLS certificate names the host the client was told to use. */
    snprintf(n->host, sizeof n->host, "%.*s", (int)(strrchr(norm, ':') - norm), norm);
    for (size_t k = len; k > 0; k--) {
        if (addr[k - 1] == ':') {
            snprintf(n->host, sizeof n->host, "%.*s", (int)(k - 1), addr);
            break;
        }
    }
    n->sa = sa;
    return (int)c->n_nodes++;
}

void client__disconnect(struct client__node *n)
{
    wire_close(&n->w);
    n->ahead = false;
}

/* Learn a member from a METADATA answer or a redirect: its address and
 * id. Returns its index or -1. */
int client__learn(struct tally_client *c, uint64_t id, const char *addr)
{
    int i;
    if (addr == NULL || addr[0] == '\0') {
        return -1;
    }
    i = client__node_add(c, addr, strlen(addr));
    if (i >= 0 && id != 0) {
        c->nodes[i].id = id;
    }
    return i;
}

/* ------------------------------------------------------------------------
 * Requests and answers on one node's connection
 * ------------------------------------------------------------------------ */

/* Check that the frame in c->resp answers request (@type, @id) and decode
 * the error body if it is an error. */
static int client__parse_reply(struct tally_client *c, struct client__node *nd, uint16_t type,
                               uint32_t id, struct client__reply *rep)
{
    struct rd r;
    memset(&rep->err, 0, sizeof rep->err);
    rd_init(&r, c->resp.data + PROTO_HEADER_SIZE, c->resp.len - PROTO_HEADER_SIZE);
    rep->is_error = (rep->f.flags & PROTO_FLAG_ERROR) != 0;
    if (!(rep->f.flags & PROTO_FLAG_RESPONSE) || rep->f.version != PROTO_VERSION) {
        err_printf(c->errmsg, "%s: answer is not a version %d response", nd->w.addr, PROTO_VERSION);
        return TALLY_PROTO;
    }
    if (rep->is_error) {
        if (proto_get_error(&r, &rep->err) != 0 || proto_get_end(&r) != 0) {
            err_printf(c->errmsg, "%s: malformed error response", nd->w.addr);
            return TALLY_PROTO;
        }
        /* A node that lost framing answers with type 0 and id 0 and closes;
         * anything else must be the answer to our request. */
        if (rep->f.type == 0 && rep->f.request_id == 0) {
            client__disconnect(nd);
            return 0;
        }
    }
    if (rep->f.type != type || rep->f.request_id != id) {
        err_printf(c->errmsg, "%s: answer to request %u (%s) when %u (%s) was expected",
                   nd->w.addr, rep->f.request_id, proto_type_name(rep->f.type), id,
                   proto_type_name(type));
        return TALLY_PROTO;
    }
    rep->body = r;
    return 0;
}

/* Send the frame in @frame on the open connection of @nd, patching in a
 * fresh request id, which goes to *@id. */
int client__send_request(struct tally_client *c, struct client__node *nd,
                                struct buf *frame, int64_t deadline, bool *sent, uint32_t *id)
{
    *id = c->next_id++;
    byte_put_u32(frame->data + 12, *id);
    return wire_send_all(&nd->w, frame->data, frame->len, deadline, sent, c->errmsg);
}

/* Read the answer to request (@type, @id) from @nd into c->resp and @rep. */
int client__recv_reply(struct tally_client *c, struct client__node *nd, uint16_t type,
                              uint32_t id, int64_t deadline, struct client__reply *rep)
{
    int rv = wire_recv_frame(&nd->w, &c->resp, deadline, &rep->f, c->errmsg);
    return rv == 0 ? client__parse_reply(c, nd, type, id, rep) : rv;
}

/* Send the frame in @frame (patching in a fresh request id) on the open
 * connection of @nd and read the answer into c->resp. */
static int client__roundtrip(struct tally_client *c, struct client__node *nd, struct buf *frame,
                             int64_t deadline, bool *sent, struct client__reply *rep)
{
    uint16_t type = byte_get_u16(frame->data + 8);
    uint32_t id;
    int rv = client__send_request(c, nd, frame, deadline, sent, &id);
    if (rv == 0) {
        rv = client__recv_reply(c, nd, type, id, deadline, rep);
    }
    if (rv != 0) {
        /* The stream is no longer known to be in step: a late answer would
         * be taken for the next request's. Start afresh next time. */
        client__disconnect(nd);
    }
    return rv;
}

static void client__hello_frame(struct buf *b)
{
    struct proto_hello_req m = {.min_version = PROTO_VERSION, .max_version = PROTO_VERSION};
    size_t start;
    snprintf(m.client_name, sizeof m.client_name, "libtally/%s", TALLY_VERSION_STRING);
    start = proto_begin_frame(b, PROTO_HELLO, 0, 0);
    proto_put_hello_req(b, &m);
    proto_end_frame(b, start);
}

/* Make sure @nd has an open connection that completed HELLO. Returns 0,
 * TALLY_CONNECT (with the reason in c->errmsg), TALLY_NOMEM. */
int client__connect(struct tally_client *c, struct client__node *nd, int64_t deadline)
{
    int64_t cap = c->timeout_ms / 3 > CLIENT__CONNECT_MS ? c->timeout_ms / 3 : CLIENT__CONNECT_MS;
    int64_t until = wire_now_ms() + cap;
    struct client__reply rep;
    struct proto_hello_resp hr;
    struct buf hello;
    bool sent = false;
    int rv;

    if (nd->w.fd >= 0 && nd->ahead) {
        /* Another request wants the connection: the read-ahead's answer
         * comes first and is not wanted any more. */
        nd->ahead = false;
        if (wire_recv_frame(&nd->w, &c->resp, deadline, &rep.f, c->errmsg) != 0) {
            client__disconnect(nd);
        }
    }
    if (nd->w.fd >= 0) {
        if (wire_alive(&nd->w)) {
            return 0;
        }
        client__disconnect(nd);
    }
    if (until > deadline) {
        until = deadline;
    }
    rv = wire_open(&nd->w, &nd->sa, until, c->errmsg);
    if (rv == 0) {
        rv = client__secure(c, nd, until, false); /* TLS hook */
    }
    if (rv != 0) {
        client__disconnect(nd);
        return rv;
    }

    /* HELLO: agree on the protocol version and learn the node's id. */
    buf_init(&hello);
    client__hello_frame(&hello);
    if (!buf_ok(&hello)) {
        buf_free(&hello);
        client__disconnect(nd);
        err_printf(c->errmsg, "out of memory");
        return TALLY_NOMEM;
    }
    rv = client__roundtrip(c, nd, &hello, until, &sent, &rep);
    buf_free(&hello);
    if (rv == TALLY_NOMEM) {
        return rv;
    }
    if (rv != 0) {
        /* TLS 1.3: a node that refuses our certificate (or wants one) says
         * so with an alert after the handshake, read here. */
        nd->refused = c->tls != NULL && strstr(c->errmsg, "TLS: ") != NULL;
        err_wrap(c->errmsg, "hello");
        return TALLY_CONNECT;
    }
    if (rep.is_error) {
        err_printf(c->errmsg, "%s: hello refused: %s: %s", nd->w.addr, err_name(rep.err.code),
                   rep.err.message);
        nd->refused = true;
        client__disconnect(nd);
        return TALLY_CONNECT;
    }
    if (proto_get_hello_resp(&rep.body, &hr) != 0 || proto_get_end(&rep.body) != 0 ||
        hr.version != PROTO_VERSION) {
        err_printf(c->errmsg, "%s: malformed hello answer", nd->w.addr);
        client__disconnect(nd);
        return TALLY_CONNECT;
    }
    nd->id = hr.node_id;
    rv = client__secure(c, nd, until, true); /* auth hook: the login */
    if (rv != 0) {
        client__disconnect(nd);
    }
    return rv;
}

/* One attempt of the request in c->req against node @i. Returns 0 with
 * @rep filled (which may be an error answer), or the transport failure:
 * TALLY_CONNECT (not sent), TALLY_IOERR / TALLY_TIMEOUT (*sent says
 * whether the whole request went out), TALLY_PROTO, TALLY_NOMEM. */
int client__attempt(struct tally_client *c, size_t i, int64_t deadline, bool *sent,
                           struct client__reply *rep)
{
    struct client__node *nd = &c->nodes[i];
    int rv;
    *sent = false;
    rv = client__connect(c, nd, deadline);
    if (rv != 0) {
        return rv;
    }
    return client__roundtrip(c, nd, &c->req, deadline, sent, rep);
}

/* ------------------------------------------------------------------------
 * The retry driver
 * ------------------------------------------------------------------------ */

/* Record why the last attempt on @nd failed, without repeating its
 * address (the final message prints "ADDR (why)"). */
void client__set_why(struct client__node *nd, const char *msg)
{
    size_t n = strlen(nd->w.addr);
    if (strncmp(msg, nd->w.addr, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ') {
        msg += n + 2;
    }
    snprintf(nd->why, sizeof nd->why, "%s", msg);
}

/* "tried A (why), B (why)" for the final message. */
void client__tried(struct tally_client *c, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < c->n_nodes && used + 1 < size; i++) {
        const struct client__node *nd = &c->nodes[i];
        if (nd->why[0] == '\0') {
            continue;
        }
        int k = snprintf(out + used, size - used, "%s%s (%s)", used ? ", " : "tried ", nd->w.addr,
                         nd->why);
        if (k < 0) {
            break;
        }
        used += (size_t)k;
    }
}

/* Learn the members and the leader from METADATA of @i. Best effort: the
 * request frame in c->req is kept. */
static void client__refresh(struct tally_client *c, size_t i, int64_t deadline)
{
    struct client__node *nd = &c->nodes[i];
    struct client__reply rep;
    struct proto_metadata_resp md;
    struct proto_metadata_req mq = {0};
    struct buf frame;
    bool sent;
    size_t start;

    buf_init(&frame);
    start = proto_begin_frame(&frame, PROTO_METADATA, 0, 0);
    proto_put_metadata_req(&frame, &mq);
    proto_end_frame(&frame, start);
    if (!buf_ok(&frame) || client__connect(c, nd, deadline) != 0 ||
        client__roundtrip(c, nd, &frame, deadline, &sent, &rep) != 0 || rep.is_error ||
        proto_get_metadata_resp(&rep.body, &md) != 0) {
        buf_free(&frame);
        return;
    }
    buf_free(&frame);
    if (md.node_id != 0) {
        nd->id = md.node_id;
    }
    for (uint32_t k = 0; k < md.n_members; k++) {
        struct proto_member m;
        if (proto_get_member(&rep.body, &m) != 0) {
            return;
        }
        int j = client__learn(c, m.id, m.client_addr);
        if (j >= 0 && m.id != 0 && m.id == md.leader_id) {
            c->leader = j;
        }
    }
}

static bool client__retryable(int code)
{
    /* Answers that say the request was not carried out, and that another
     * node (or the same one, later) may take it. */
    return code == TALLY_NOLEADER || code == TALLY_UNAVAILABLE || code == TALLY_SHUTDOWN ||
           code == TALLY_BUSY;
}

/* Run the request in c->req per @op until it gets an answer or the
 * deadline passes. Returns 0 with a success answer in @rep, or a code
 * with c->errmsg set. */
/* True if every node this call may use refused us for good. */
static bool client__all_refused(struct tally_client *c, const struct client__op *op)
{
    if (op->only >= 0) {
        return c->nodes[op->only].refused;
    }
    for (size_t i = 0; i < c->n_nodes; i++) {
        if (!c->nodes[i].refused) {
            return false;
        }
    }
    return true;
}

int client__call(struct tally_client *c, const struct client__op *op,
                        struct client__reply *rep)
{
    int64_t backoff = CLIENT__BACKOFF_MIN_MS;
    size_t target;
    size_t in_round = 0;  /* attempts since the last pause */
    int answered = -1;    /* a node that answered in this round */
    bool saw_noleader = false;
    /* A write reached a node and its outcome is unknown (no answer, the
     * connection failed after it was sent, or "leadership lost"): if every
     * later attempt fails too, the caller must be told it may be in. */
    bool uncertain = false;
    bool saw_connected = false;
    int last_code = TALLY_TIMEOUT;
    char tried[ERR_MSG_SIZE];

    c->outcome_unknown = false;
    if (c->n_nodes == 0) {
        err_printf(c->errmsg, "%s: no brokers", op->what);
        return TALLY_INVAL;
    }
    for (size_t i = 0; i < c->n_nodes; i++) {
        c->nodes[i].why[0] = '\0';
        c->nodes[i].refused = false;
        c->nodes[i].refused_code = 0;
    }
    if (op->only >= 0) {
        target = (size_t)op->only;
    } else if (op->write && c->leader >= 0) {
        target = (size_t)c->leader;
    } else if (!op->write && c->read_pref >= 0) {
        target = (size_t)c->read_pref;
    } else {
        target = 0;
    }

    for (;;) {
        struct client__node *nd;
        bool sent = false;
        bool redirected = false;
        int rv;

        if (wire_now_ms() >= op->deadline) {
            break;
        }
        /* A retry-safe write does not wait the whole timeout on one node:
         * a leader that hangs (paused, partitioned) is given up after
         * CLIENT__ATTEMPT_MS and the batch goes to whoever leads next. */
        int64_t attempt_deadline = op->deadline;
        if (op->idempotent && wire_now_ms() + CLIENT__ATTEMPT_MS < attempt_deadline) {
            attempt_deadline = wire_now_ms() + CLIENT__ATTEMPT_MS;
        }
        rv = client__attempt(c, target, attempt_deadline, &sent, rep);
        nd = &c->nodes[target];
        if (rv == 0 && !rep->is_error) {
            if (op->write) {
                c->leader = (int)target;
            } else {
                c->read_pref = (int)target;
            }
            return 0;
        }
        if (rv == 0) {
            int code = rep->err.code;
            saw_connected = true;
            answered = (int)target;
            client__set_why(nd, rep->err.message);
            if (code == TALLY_NOTLEADER && op->only < 0 && rep->err.leader_addr[0] != '\0') {
                int j = client__learn(c, rep->err.leader_id, rep->err.leader_addr);
                if (j >= 0 && (size_t)j != target) {
                    c->leader = j;
                    target = (size_t)j;
                    redirected = true;
                }
            }
            if (!redirected) {
                uncertain = uncertain || (op->write && code == TALLY_LEADERSHIP_LOST);
                if (code == TALLY_NOTLEADER || code == TALLY_NOLEADER) {
                    saw_noleader = true;
                }
                if (op->first_answer ||
                    (code != TALLY_NOTLEADER && code != TALLY_NOLEADER &&
                     !client__retryable(code) &&
                     !(op->idempotent && code == TALLY_LEADERSHIP_LOST))) {
                    err_printf(c->errmsg, "%s: %s: %s", op->what, nd->w.addr, rep->err.message);
                    c->actual = rep->err.actual;
                    /* The leader appended the write and lost its majority
                     * before it was committed (its message says so). */
                    c->outcome_unknown = op->write && code == TALLY_LEADERSHIP_LOST;
                    return code;
                }
                if (c->leader == (int)target) {
                    c->leader = -1;
                }
                last_code = code;
            }
        } else {
            client__set_why(nd, c->errmsg);
            if (rv == TALLY_NOMEM) {
                err_wrap(c->errmsg, "%s", op->what);
                return rv;
            }
            if (nd->refused && client__all_refused(c, op)) {
                /* TLS or login hook: a wrong CA, name, certificate or
                 * password is not cured by waiting; say so now. */
                client__tried(c, tried, sizeof tried);
                err_printf(c->errmsg, "%s: refused by every node: %s", op->what, tried);
                return nd->refused_code != 0 ? nd->refused_code : TALLY_CONNECT;
            }
            if (rv != TALLY_CONNECT) {
                saw_connected = true;
            }
            uncertain = uncertain || (op->write && sent);
            if (op->write && sent && (!op->idempotent || wire_now_ms() >= op->deadline)) {
                /* The node may have received the write and acted on it. */
                c->outcome_unknown = true;
                if (rv == TALLY_TIMEOUT) {
                    err_printf(c->errmsg, "%s: %s: no answer within %d ms; it may or may not "
                                          "have been written", op->what, nd->w.addr, c->timeout_ms);
                    return TALLY_TIMEOUT;
                }
                err_printf(c->errmsg, "%s: %s: the connection failed after the request was "
                                      "sent (%s); it may or may not have been written",
                           op->what, nd->w.addr, nd->why);
                return TALLY_LEADERSHIP_LOST;
            }
            if (c->leader == (int)target) {
                c->leader = -1;
            }
            last_code = rv;
        }

        if (redirected) {
            /* Follow a redirect at once; a ping-pong between two confused
             * nodes is still bounded by the pause after each round. */
            if (++in_round <= c->n_nodes) {
                continue;
            }
        } else if (op->only < 0) {
            target = (target + 1) % c->n_nodes;
            if (++in_round < c->n_nodes) {
                continue;
            }
        }
        /* A whole round failed (or the only node did): ask a node that
         * answered for the members and leader, then pause. */
        if (answered >= 0 && op->only < 0) {
            client__refresh(c, (size_t)answered, op->deadline);
            if (op->write && c->leader >= 0) {
                target = (size_t)c->leader;
            }
        }
        in_round = 0;
        answered = -1;
        int64_t until = wire_now_ms() + backoff;
        client__sleep_until(until < op->deadline ? until : op->deadline);
        backoff = backoff * 2 > CLIENT__BACKOFF_MAX_MS ? CLIENT__BACKOFF_MAX_MS : backoff * 2;
    }

    client__tried(c, tried, sizeof tried);
    if (uncertain) {
        /* Retried writes that all failed, but one may have been applied
         * (a leader that appended it before it lost its majority). */
        c->outcome_unknown = true;
        err_printf(c->errmsg, "%s: %s within %d ms, after an attempt whose outcome is unknown: "
                   "it may or may not have been written: %s", op->what,
                   saw_noleader ? "no leader found" : "no node took it", c->timeout_ms, tried);
        return saw_noleader ? TALLY_LEADERSHIP_LOST : TALLY_TIMEOUT;
    }
    if (saw_noleader) {
        err_printf(c->errmsg, "%s: no leader found within %d ms: %s", op->what, c->timeout_ms,
                   tried);
        return TALLY_NOLEADER;
    }
    if (!saw_connected) {
        err_printf(c->errmsg, "%s: cannot reach any node within %d ms: %s", op->what,
                   c->timeout_ms, tried);
        return TALLY_CONNECT;
    }
    err_printf(c->errmsg, "%s: timed out after %d ms (last error: %s): %s", op->what,
               c->timeout_ms, err_name(last_code), tried);
    return TALLY_TIMEOUT;
}

/* Start the request frame in c->req. */
size_t client__begin(struct tally_client *c, uint16_t type)
{
    c->req.len = 0;
    c->req.oom = false;
    return proto_begin_frame(&c->req, type, 0, 0);
}

int client__end(struct tally_client *c, size_t start, const char *what)
{
    proto_end_frame(&c->req, start);
    if (!buf_ok(&c->req)) {
        err_printf(c->errmsg, "%s: out of memory", what);
        return TALLY_NOMEM;
    }
    return 0;
}

int client__malformed(struct tally_client *c, const char *what)
{
    err_printf(c->errmsg, "%s: malformed answer", what);
    return TALLY_PROTO;
}

void client__op_init(struct tally_client *c, struct client__op *op, const char *what,
                            bool write)
{
    op->what = what;
    op->write = write;
    op->idempotent = false; /* set by the callers whose retry is safe */
    op->only = -1;
    op->first_answer = false;
    op->deadline = wire_now_ms() + c->timeout_ms;
}

/* The server's rule (lib/name.h), so that a bad name is refused here with
 * the same reason, before anything is sent. */
int client__check_name(struct tally_client *c, const char *name, const char *what)
{
    char why[160];
    if (name == NULL) {
        err_printf(c->errmsg, "%s: no topic name", what);
        return TALLY_INVAL;
    }
    if (!name_topic_check(name, why, sizeof why)) {
        err_printf(c->errmsg, "%s: %s", what, why);
        return TALLY_INVAL;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Handle
 * ------------------------------------------------------------------------ */

/* A call given NULL where it must write its result: refused before
 * anything is sent or written. */
int client__null_output(struct tally_client *c, const char *what, const char *param)
{
    err_printf(c->errmsg, "%s: the output argument '%s' is NULL: pass a pointer to fill", what,
               param);
    return TALLY_INVAL;
}

TALLY_API int tally_client_create(const char *brokers, tally_client **out)
{
    struct tally_client *c;
    const char *p;

    if (out == NULL) {
        return TALLY_INVAL;
    }
    *out = NULL;
    if (brokers == NULL) {
        return TALLY_INVAL;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        return TALLY_NOMEM;
    }
    c->timeout_ms = CLIENT__DEFAULT_TIMEOUT_MS;
    c->leader = -1;
    c->read_pref = -1;
    c->next_id = 1;
    client__new_producer(c);
    buf_init(&c->req);
    buf_init(&c->resp);
    p = brokers;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        size_t before = c->n_nodes;
        /* Surrounding blanks are allowed: "a:1, b:2". */
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
            len--;
        }
        if (client__node_add(c, p, len) < 0 && c->n_nodes == before) {
            /* Malformed, unresolvable, or the table is full; a duplicate
             * returns its index and is fine. */
            tally_client_destroy(c);
            return TALLY_INVAL;
        }
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    *out = c;
    return 0;
}

TALLY_API void tally_client_destroy(tally_client *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n_nodes; i++) {
        client__disconnect(&c->nodes[i]);
    }
    free(c->nodes);
    buf_free(&c->req);
    buf_free(&c->resp);
    while (c->seqs != NULL) {
        struct client__seq *s = c->seqs;
        c->seqs = s->link;
        free(s);
    }
    client__security_free(c);
    free(c);
}

TALLY_API void tally_client_set_timeout(tally_client *c, int timeout_ms)
{
    if (c == NULL) {
        return;
    }
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : CLIENT__DEFAULT_TIMEOUT_MS;
}

TALLY_API int tally_outcome_unknown(tally_client *c)
{
    return c != NULL && c->outcome_unknown;
}

TALLY_API const char *tally_errmsg(tally_client *c)
{
    if (c == NULL) {
        return "no client handle (NULL)";
    }
    return c->errmsg;
}

