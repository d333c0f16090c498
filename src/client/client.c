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
 * tally.h. Only symbols of tally.h are exported; everything here is
 * static. This file uses src/proto and src/lib only. */
#include "tally.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/random.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "lib/batch.h"
#include "lib/byte.h"
#include "lib/err.h"
#include "lib/name.h"
#include "lib/scram.h"
#include "lib/tls.h"
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
/* One connect attempt may take at most this long (or a third of the
 * request timeout, if longer), so that a host that drops SYNs does not eat
 * the whole timeout while other nodes are up. */
#define CLIENT__CONNECT_MS 1000
/* Records sections of at least this size are lz4-compressed. */
#define CLIENT__COMPRESS_MIN 1024
#define CLIENT__DEFAULT_FETCH_BYTES (1u << 20)
/* The server's wait for min_index when max_wait_ms is 0 (docs/protocol.md). */
#define CLIENT__MIN_INDEX_WAIT_MS 5000
/* Nodes learned from the network are bounded, so a confused server cannot
 * make the table grow without end. */
#define CLIENT__MAX_NODES 64

struct client__node {
    char addr[PROTO_ADDR_MAX]; /* client address, normalised "a.b.c.d:port" */
    struct sockaddr_in sa;     /* the same, resolved */
    uint64_t id;               /* node id from HELLO/METADATA; 0 = unknown */
    int fd;                    /* connected (HELLO done) socket, or -1 */
    SSL *ssl;                  /* TLS on fd, or NULL (plaintext) */
    char host[PROTO_ADDR_MAX]; /* the host as given, for the certificate check */
    char why[160];             /* why the last attempt in this call failed */
    int refused_code;          /* TALLY_AUTH when the refusal was the login's */
    bool refused;              /* in this call, the node refused us for good: a TLS
                                * handshake failed (CA, name, expiry) or HELLO was
                                * refused; retrying cannot help */
    /* Read-ahead (tally_fetch): a FETCH sent before it was asked for,
     * whose answer is the next frame on fd. */
    bool ahead;
    uint32_t ahead_id;
    struct proto_fetch_req ahead_req;
};

struct tally_client {
    struct client__node *nodes; /* owned; brokers first, then learned */
    size_t n_nodes;
    size_t cap_nodes;
    int timeout_ms;             /* per request */
    int leader;                 /* index of the last known leader, or -1 */
    int read_pref;              /* index of the node that answered the last read */
    bool linearizable;          /* tally_set_linearizable */
    char disagreement[256];     /* tally_status_disagreement */
    uint32_t next_id;           /* request id of the next request */
    struct buf req;             /* request frame being sent (owned, reused) */
    struct buf resp;            /* last response frame (owned, reused) */
    char errmsg[ERR_MSG_SIZE];  /* message of the last error */
    uint64_t producer_id;       /* idempotent producer id, never 0 */
    uint64_t actual;            /* actual value of the last failed condition */
    struct client__seq *seqs;   /* next sequence per topic (owned list) */
    SSL_CTX *tls;               /* tally_client_set_tls, or NULL (owned) */
    char user[SCRAM_USER_MAX];  /* tally_client_set_auth: "" = none */
    char password[256];         /* its password (wiped on destroy) */
    int mech;                   /* enum scram_mech of the login, SCRAM-SHA-256 by default */
};

/* Next batch sequence of this handle's producer on one topic. */
struct client__seq {
    char topic[PROTO_NAME_MAX];
    uint64_t next;
    struct client__seq *link;
};

static void client__new_producer(struct tally_client *c);

/* A decoded response. body borrows from c->resp until the next request. */
struct client__reply {
    struct proto_frame f;
    bool is_error;
    struct proto_error err; /* when is_error */
    struct rd body;         /* the body, when not an error */
};

/* What one call (with its retries) should do. */
struct client__op {
    const char *what;  /* context for messages: "produce to orders" */
    bool write;        /* leader only; no retry once sent */
    bool idempotent;   /* a write whose retry is safe (produce) */
    int only;          /* node index to use exclusively, or -1 */
    bool first_answer; /* with only: return its first answer, even a retryable
                        * error (a probe of that node's state) */
    int64_t deadline;  /* monotonic ms */
};

/* ------------------------------------------------------------------------
 * Time, addresses, node table
 * ------------------------------------------------------------------------ */

int64_t client_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void client__sleep_until(int64_t until)
{
    int64_t left = until - client_now_ms();
    if (left > 0) {
        struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
}

int client_parse_addr(const char *s, size_t len, struct sockaddr_in *sa, char *norm)
{
    char host[PROTO_ADDR_MAX];
    const char *colon = NULL;
    unsigned long port = 0;
    char ip[INET_ADDRSTRLEN];

    for (size_t i = 0; i < len; i++) {
        if (s[i] == ':') {
            colon = s + i;
        }
    }
    if (colon == NULL || colon == s || (size_t)(colon - s) >= sizeof host || colon + 1 == s + len) {
        return TALLY_INVAL;
    }
    for (const char *p = colon + 1; p < s + len; p++) {
        if (*p < '0' || *p > '9' || port > 65535) {
            return TALLY_INVAL;
        }
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port == 0 || port > 65535) {
        return TALLY_INVAL;
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';

    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_INET;
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL) {
            return TALLY_INVAL;
        }
        sa->sin_addr = ((const struct sockaddr_in *)(const void *)res->ai_addr)->sin_addr;
        freeaddrinfo(res);
    }
    inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof ip);
    snprintf(norm, PROTO_ADDR_MAX, "%s:%lu", ip, port);
    return 0;
}

/* Index of the node with client address @addr, added if new. Returns -1
 * if the address is malformed or the table is full. */
static int client__node_add(struct tally_client *c, const char *addr, size_t len)
{
    struct sockaddr_in sa;
    char norm[PROTO_ADDR_MAX];
    if (client_parse_addr(addr, len, &sa, norm) != 0) {
        return -1;
    }
    for (size_t i = 0; i < c->n_nodes; i++) {
        if (strcmp(c->nodes[i].addr, norm) == 0) {
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
    memcpy(n->addr, norm, sizeof n->addr);
    /* The host as given ("node1.example:7001" -> "node1.example"): a
     * node's certificate names the host the client was told to use. */
    snprintf(n->host, sizeof n->host, "%.*s", (int)(strrchr(norm, ':') - norm), norm);
    for (size_t k = len; k > 0; k--) {
        if (addr[k - 1] == ':') {
            snprintf(n->host, sizeof n->host, "%.*s", (int)(k - 1), addr);
            break;
        }
    }
    n->sa = sa;
    n->fd = -1;
    return (int)c->n_nodes++;
}

static void client__disconnect(struct client__node *n)
{
    SSL_free(n->ssl); /* TLS hook */
    n->ssl = NULL;
    if (n->fd >= 0) {
        close(n->fd);
        n->fd = -1;
    }
    n->ahead = false;
}

/* Learn a member from a METADATA answer or a redirect: its address and
 * id. Returns its index or -1. */
static int client__learn(struct tally_client *c, uint64_t id, const char *addr)
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
 * Socket I/O with deadlines
 * ------------------------------------------------------------------------ */

/* Wait until @fd is ready for @events or @deadline passes. Errors and
 * hang-ups count as ready: the next send/recv reports them. */
static int client__wait(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - client_now_ms();
        struct pollfd p = {.fd = fd, .events = events};
        if (left <= 0) {
            return TALLY_TIMEOUT;
        }
        int rv = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (rv > 0) {
            return 0;
        }
        if (rv < 0 && errno != EINTR) {
            return TALLY_IOERR;
        }
    }
}

/* Send all @n bytes. *sent becomes true only when the kernel has taken
 * every byte: before that, the node cannot have acted on the request. */
static int client__send_all(struct client__node *nd, const uint8_t *p, size_t n,
                            int64_t deadline, bool *sent, char *errmsg)
{
    size_t done = 0;
    if (nd->ssl != NULL) { /* TLS hook */
        bool late = false;
        char why[ERR_MSG_SIZE / 2];
        if (tls_fd_send(nd->ssl, p, n, deadline, &late, why, sizeof why) != 0) {
            err_printf(errmsg, "%s: %s", nd->addr, late ? "timed out sending the request" : why);
            return late ? TALLY_TIMEOUT : TALLY_IOERR;
        }
        *sent = true;
        return 0;
    }
    while (done < n) {
        /* MSG_NOSIGNAL: a closed peer gives EPIPE, never SIGPIPE. */
        ssize_t k = send(nd->fd, p + done, n - done, MSG_NOSIGNAL);
        if (k > 0) {
            done += (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (client__wait(nd->fd, POLLOUT, deadline) != 0) {
                err_printf(errmsg, "%s: timed out sending the request", nd->addr);
                return TALLY_TIMEOUT;
            }
            continue;
        }
        err_printf(errmsg, "%s: send: %s", nd->addr, strerror(errno));
        return TALLY_IOERR;
    }
    *sent = true;
    return 0;
}

static int client__recv_exact(struct client__node *nd, uint8_t *p, size_t n, int64_t deadline,
                              char *errmsg)
{
    size_t got = 0;
    while (got < n && nd->ssl != NULL) { /* TLS hook */
        bool late = false;
        char why[ERR_MSG_SIZE / 2];
        ssize_t k = tls_fd_recv(nd->ssl, p + got, n - got, deadline, &late, why, sizeof why);
        if (k > 0) {
            got += (size_t)k;
            continue;
        }
        if (k == 0) {
            err_printf(errmsg, "%s: connection closed by the node", nd->addr);
            return TALLY_IOERR;
        }
        err_printf(errmsg, "%s: %s", nd->addr, late ? "no answer in time" : why);
        return late ? TALLY_TIMEOUT : TALLY_IOERR;
    }
    while (got < n) {
        ssize_t k = recv(nd->fd, p + got, n - got, 0);
        if (k > 0) {
            got += (size_t)k;
            continue;
        }
        if (k == 0) {
            err_printf(errmsg, "%s: connection closed by the node", nd->addr);
            return TALLY_IOERR;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (client__wait(nd->fd, POLLIN, deadline) != 0) {
                err_printf(errmsg, "%s: no answer in time", nd->addr);
                return TALLY_TIMEOUT;
            }
            continue;
        }
        err_printf(errmsg, "%s: recv: %s", nd->addr, strerror(errno));
        return TALLY_IOERR;
    }
    return 0;
}

/* Read one whole frame into @into (replacing its contents). */
static int client__recv_frame(struct client__node *nd, struct buf *into, int64_t deadline,
                              struct proto_frame *f, char *errmsg)
{
    uint8_t *p;
    size_t body;
    int rv;

    into->len = 0;
    into->oom = false;
    p = buf_reserve(into, PROTO_HEADER_SIZE);
    if (p == NULL) {
        err_printf(errmsg, "out of memory");
        return TALLY_NOMEM;
    }
    rv = client__recv_exact(nd, p, PROTO_HEADER_SIZE, deadline, errmsg);
    if (rv != 0) {
        return rv;
    }
    buf_commit(into, PROTO_HEADER_SIZE);
    rv = proto_decode_frame(into->data, into->len, PROTO_MAX_FRAME, f);
    if (rv != 0) {
        err_printf(errmsg, "%s: malformed response frame (%s)", nd->addr,
                   rv == TALLY_TOOLARGE ? "over the size limit" : "bad magic or length");
        return TALLY_PROTO;
    }
    body = (size_t)f->frame_len + 4 - PROTO_HEADER_SIZE;
    p = buf_reserve(into, body);
    if (p == NULL) {
        err_printf(errmsg, "out of memory for a %zu-byte response", body);
        return TALLY_NOMEM;
    }
    rv = client__recv_exact(nd, p, body, deadline, errmsg);
    if (rv != 0) {
        return rv;
    }
    buf_commit(into, body);
    return 0;
}

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
        err_printf(c->errmsg, "%s: answer is not a version %d response", nd->addr, PROTO_VERSION);
        return TALLY_PROTO;
    }
    if (rep->is_error) {
        if (proto_get_error(&r, &rep->err) != 0 || proto_get_end(&r) != 0) {
            err_printf(c->errmsg, "%s: malformed error response", nd->addr);
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
                   nd->addr, rep->f.request_id, proto_type_name(rep->f.type), id,
                   proto_type_name(type));
        return TALLY_PROTO;
    }
    rep->body = r;
    return 0;
}

/* Send the frame in @frame on the open connection of @nd, patching in a
 * fresh request id, which goes to *@id. */
static int client__send_request(struct tally_client *c, struct client__node *nd,
                                struct buf *frame, int64_t deadline, bool *sent, uint32_t *id)
{
    *id = c->next_id++;
    byte_put_u32(frame->data + 12, *id);
    return client__send_all(nd, frame->data, frame->len, deadline, sent, c->errmsg);
}

/* Read the answer to request (@type, @id) from @nd into c->resp and @rep. */
static int client__recv_reply(struct tally_client *c, struct client__node *nd, uint16_t type,
                              uint32_t id, int64_t deadline, struct client__reply *rep)
{
    int rv = client__recv_frame(nd, &c->resp, deadline, &rep->f, c->errmsg);
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

/* True if a kept connection is still usable: not closed by the peer while
 * idle. Checking before sending turns the common "node restarted since"
 * case into a clean reconnect instead of an unknown outcome. */
static bool client__conn_alive(struct client__node *nd)
{
    struct pollfd p = {.fd = nd->fd, .events = POLLIN};
    uint8_t b;
    if (nd->ssl != NULL) {
        return tls_fd_idle_ok(nd->ssl); /* TLS hook */
    }
    if (poll(&p, 1, 0) == 0) {
        return true;
    }
    /* Readable while idle: EOF, an error, or bytes nobody asked for. */
    (void)recv(nd->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return false;
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

static int client__login(struct tally_client *c, struct client__node *nd, int64_t deadline);

/* Make sure @nd has an open connection that completed HELLO. Returns 0,
 * TALLY_CONNECT (with the reason in c->errmsg), TALLY_NOMEM. */
static int client__connect(struct tally_client *c, struct client__node *nd, int64_t deadline)
{
    int64_t cap = c->timeout_ms / 3 > CLIENT__CONNECT_MS ? c->timeout_ms / 3 : CLIENT__CONNECT_MS;
    int64_t until = client_now_ms() + cap;
    struct client__reply rep;
    struct proto_hello_resp hr;
    struct buf hello;
    bool sent = false;
    int one = 1;
    int err = 0;
    socklen_t len = sizeof err;
    int rv;

    if (nd->fd >= 0 && nd->ahead) {
        /* Another request wants the connection: the read-ahead's answer
         * comes first and is not wanted any more. */
        nd->ahead = false;
        if (client__recv_frame(nd, &c->resp, deadline, &rep.f, c->errmsg) != 0) {
            client__disconnect(nd);
        }
    }
    if (nd->fd >= 0) {
        if (client__conn_alive(nd)) {
            return 0;
        }
        client__disconnect(nd);
    }
    if (until > deadline) {
        until = deadline;
    }
    nd->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (nd->fd < 0) {
        err_printf(c->errmsg, "%s: socket: %s", nd->addr, strerror(errno));
        return TALLY_CONNECT;
    }
    /* Requests are small and each waits for its answer: Nagle would only
     * add delay. */
    (void)setsockopt(nd->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(nd->fd, (const struct sockaddr *)&nd->sa, sizeof nd->sa) != 0) {
        if (errno != EINPROGRESS) {
            err_printf(c->errmsg, "%s: connect: %s", nd->addr, strerror(errno));
            client__disconnect(nd);
            return TALLY_CONNECT;
        }
        if (client__wait(nd->fd, POLLOUT, until) != 0) {
            err_printf(c->errmsg, "%s: connect: timed out", nd->addr);
            client__disconnect(nd);
            return TALLY_CONNECT;
        }
        if (getsockopt(nd->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            err_printf(c->errmsg, "%s: connect: %s", nd->addr, strerror(err ? err : errno));
            client__disconnect(nd);
            return TALLY_CONNECT;
        }
    }

    if (c->tls != NULL) { /* TLS hook */
        nd->ssl = client_tls_open(c->tls, nd->fd, nd->host, nd->addr, until, c->errmsg);
        if (nd->ssl == NULL) {
            nd->refused = strstr(c->errmsg, "timed out") == NULL;
            client__disconnect(nd);
            return TALLY_CONNECT;
        }
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
        err_printf(c->errmsg, "%s: hello refused: %s: %s", nd->addr, err_name(rep.err.code),
                   rep.err.message);
        nd->refused = true;
        client__disconnect(nd);
        return TALLY_CONNECT;
    }
    if (proto_get_hello_resp(&rep.body, &hr) != 0 || proto_get_end(&rep.body) != 0 ||
        hr.version != PROTO_VERSION) {
        err_printf(c->errmsg, "%s: malformed hello answer", nd->addr);
        client__disconnect(nd);
        return TALLY_CONNECT;
    }
    nd->id = hr.node_id;
    if (c->user[0] != '\0') { /* auth hook: SCRAM after HELLO */
        rv = client__login(c, nd, until);
        if (rv != 0) {
            client__disconnect(nd);
            return rv == TALLY_NOMEM ? rv : TALLY_CONNECT;
        }
    }
    return 0;
}

/* One attempt of the request in c->req against node @i. Returns 0 with
 * @rep filled (which may be an error answer), or the transport failure:
 * TALLY_CONNECT (not sent), TALLY_IOERR / TALLY_TIMEOUT (*sent says
 * whether the whole request went out), TALLY_PROTO, TALLY_NOMEM. */
static int client__attempt(struct tally_client *c, size_t i, int64_t deadline, bool *sent,
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
static void client__set_why(struct client__node *nd, const char *msg)
{
    size_t n = strlen(nd->addr);
    if (strncmp(msg, nd->addr, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ') {
        msg += n + 2;
    }
    snprintf(nd->why, sizeof nd->why, "%s", msg);
}

/* "tried A (why), B (why)" for the final message. */
static void client__tried(struct tally_client *c, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < c->n_nodes && used + 1 < size; i++) {
        const struct client__node *nd = &c->nodes[i];
        if (nd->why[0] == '\0') {
            continue;
        }
        int k = snprintf(out + used, size - used, "%s%s (%s)", used ? ", " : "tried ", nd->addr,
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
static int client__call(struct tally_client *c, const struct client__op *op,
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

        if (client_now_ms() >= op->deadline) {
            break;
        }
        /* A retry-safe write does not wait the whole timeout on one node:
         * a leader that hangs (paused, partitioned) is given up after
         * CLIENT__ATTEMPT_MS and the batch goes to whoever leads next. */
        int64_t attempt_deadline = op->deadline;
        if (op->idempotent && client_now_ms() + CLIENT__ATTEMPT_MS < attempt_deadline) {
            attempt_deadline = client_now_ms() + CLIENT__ATTEMPT_MS;
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
                    err_printf(c->errmsg, "%s: %s: %s", op->what, nd->addr, rep->err.message);
                    c->actual = rep->err.actual;
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
                /* TLS hook: a wrong CA, name or certificate is not cured
                 * by waiting; say so now, not after the timeout. */
                client__tried(c, tried, sizeof tried);
                err_printf(c->errmsg, "%s: refused by every node: %s", op->what, tried);
                return nd->refused_code != 0 ? nd->refused_code : TALLY_CONNECT;
            }
            if (rv != TALLY_CONNECT) {
                saw_connected = true;
            }
            uncertain = uncertain || (op->write && sent);
            if (op->write && sent && (!op->idempotent || client_now_ms() >= op->deadline)) {
                /* The node may have received the write and acted on it. */
                if (rv == TALLY_TIMEOUT) {
                    err_printf(c->errmsg, "%s: %s: no answer within %d ms; it may or may not "
                                          "have been written", op->what, nd->addr, c->timeout_ms);
                    return TALLY_TIMEOUT;
                }
                err_printf(c->errmsg, "%s: %s: the connection failed after the request was "
                                      "sent (%s); it may or may not have been written",
                           op->what, nd->addr, nd->why);
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
        int64_t until = client_now_ms() + backoff;
        client__sleep_until(until < op->deadline ? until : op->deadline);
        backoff = backoff * 2 > CLIENT__BACKOFF_MAX_MS ? CLIENT__BACKOFF_MAX_MS : backoff * 2;
    }

    client__tried(c, tried, sizeof tried);
    if (uncertain) {
        /* Retried writes that all failed, but one may have been applied
         * (a leader that appended it before it lost its majority). */
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
static size_t client__begin(struct tally_client *c, uint16_t type)
{
    c->req.len = 0;
    c->req.oom = false;
    return proto_begin_frame(&c->req, type, 0, 0);
}

static int client__end(struct tally_client *c, size_t start, const char *what)
{
    proto_end_frame(&c->req, start);
    if (!buf_ok(&c->req)) {
        err_printf(c->errmsg, "%s: out of memory", what);
        return TALLY_NOMEM;
    }
    return 0;
}

static int client__malformed(struct tally_client *c, const char *what)
{
    err_printf(c->errmsg, "%s: malformed answer", what);
    return TALLY_PROTO;
}

static void client__op_init(struct tally_client *c, struct client__op *op, const char *what,
                            bool write)
{
    op->what = what;
    op->write = write;
    op->idempotent = false; /* set by the callers whose retry is safe */
    op->only = -1;
    op->first_answer = false;
    op->deadline = client_now_ms() + c->timeout_ms;
}

/* The server's rule (lib/name.h), so that a bad name is refused here with
 * the same reason, before anything is sent. */
static int client__check_name(struct tally_client *c, const char *name, const char *what)
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
static int client__null_output(struct tally_client *c, const char *what, const char *param)
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
    SSL_CTX_free(c->tls);
    scram_wipe(c->password, sizeof c->password);
    free(c);
}

TALLY_API void tally_client_set_timeout(tally_client *c, int timeout_ms)
{
    if (c == NULL) {
        return;
    }
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : CLIENT__DEFAULT_TIMEOUT_MS;
}

TALLY_API const char *tally_errmsg(tally_client *c)
{
    if (c == NULL) {
        return "no client handle (NULL)";
    }
    return c->errmsg;
}

/* ------------------------------------------------------------------------
 * Topics
 * ------------------------------------------------------------------------ */

TALLY_API void tally_topic_config_init(struct tally_topic_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    cfg->policy = TALLY_POLICY_RETAIN;
    cfg->retention_ms = -1;
    cfg->retention_bytes = -1;
    cfg->segment_bytes = 0;
}

/* A write answered by DONE (topic and member changes). */
static int client__done_call(struct tally_client *c, const char *what)
{
    struct client__op op;
    struct client__reply rep;
    struct proto_done_resp d;
    int rv;
    client__op_init(c, &op, what, true);
    rv = client__call(c, &op, &rep);
    if (rv != 0) {
        return rv;
    }
    if (proto_get_done_resp(&rep.body, &d) != 0 || proto_get_end(&rep.body) != 0) {
        return client__malformed(c, what);
    }
    return 0;
}

TALLY_API int tally_topic_create(tally_client *c, const char *name,
                                 const struct tally_topic_config *cfg)
{
    struct proto_topic_create_req m;
    struct tally_topic_config def;
    char what[PROTO_NAME_MAX + 32];
    size_t start;
    int rv;

    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "create topic %s", name != NULL ? name : "(null)");
    if ((rv = client__check_name(c, name, what)) != 0) {
        return rv;
    }
    if (cfg == NULL) {
        tally_topic_config_init(&def);
        cfg = &def;
    }
    if (cfg->policy < TALLY_POLICY_RETAIN || cfg->policy > TALLY_POLICY_COMPACT_DELETE) {
        err_printf(c->errmsg, "%s: unknown policy %d", what, cfg->policy);
        return TALLY_INVAL;
    }
    memset(&m, 0, sizeof m);
    snprintf(m.name, sizeof m.name, "%s", name);
    m.policy = (uint8_t)cfg->policy;
    m.retention_ms = cfg->retention_ms;
    m.retention_bytes = cfg->retention_bytes;
    m.segment_bytes = cfg->segment_bytes;
    start = client__begin(c, PROTO_TOPIC_CREATE);
    proto_put_topic_create_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    return client__done_call(c, what);
}

TALLY_API int tally_topic_delete(tally_client *c, const char *name)
{
    struct proto_topic_delete_req m;
    char what[PROTO_NAME_MAX + 32];
    size_t start;
    int rv;

    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "delete topic %s", name != NULL ? name : "(null)");
    if ((rv = client__check_name(c, name, what)) != 0) {
        return rv;
    }
    snprintf(m.name, sizeof m.name, "%s", name);
    start = client__begin(c, PROTO_TOPIC_DELETE);
    proto_put_topic_delete_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    return client__done_call(c, what);
}

/* TOPIC_LIST from any node, or from node index @only alone (>= 0). */
static int client__topic_list(tally_client *c, int only, struct tally_topic_info **topics,
                              size_t *n)
{
    static const char what[] = "list topics";
    /* Smallest encoded TOPIC: empty name, policy, five 8-byte fields. */
    const size_t min_item = 2 + 1 + 5 * 8;
    struct proto_topic_list_req m = {0};
    struct proto_topic_list_resp lr;
    struct client__op op;
    struct client__reply rep;
    struct tally_topic_info *out;
    size_t start;
    int rv;

    c->errmsg[0] = '\0';
    *topics = NULL;
    *n = 0;
    start = client__begin(c, PROTO_TOPIC_LIST);
    proto_put_topic_list_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    client__op_init(c, &op, what, false);
    op.only = only;
    if ((rv = client__call(c, &op, &rep)) != 0) {
        return rv;
    }
    if (proto_get_topic_list_resp(&rep.body, &lr) != 0 ||
        lr.n_topics > rep.body.left / min_item) {
        return client__malformed(c, what);
    }
    out = calloc(lr.n_topics ? lr.n_topics : 1, sizeof *out);
    if (out == NULL) {
        err_printf(c->errmsg, "%s: out of memory", what);
        return TALLY_NOMEM;
    }
    for (uint32_t i = 0; i < lr.n_topics; i++) {
        struct proto_topic t;
        if (proto_get_topic(&rep.body, &t) != 0) {
            free(out);
            return client__malformed(c, what);
        }
        snprintf(out[i].name, sizeof out[i].name, "%s", t.name);
        out[i].config.policy = t.policy;
        out[i].config.retention_ms = t.retention_ms;
        out[i].config.retention_bytes = t.retention_bytes;
        out[i].config.segment_bytes = t.segment_bytes;
        out[i].start_offset = t.start_offset;
        out[i].next_offset = t.next_offset;
    }
    if (proto_get_end(&rep.body) != 0) {
        free(out);
        return client__malformed(c, what);
    }
    *topics = out;
    *n = lr.n_topics;
    return 0;
}

TALLY_API int tally_topic_list(tally_client *c, struct tally_topic_info **topics, size_t *n)
{
    if (c == NULL) {
        return TALLY_INVAL;
    }
    if (topics == NULL || n == NULL) {
        return client__null_output(c, "list topics", topics == NULL ? "topics" : "n");
    }
    return client__topic_list(c, -1, topics, n);
}

/* ------------------------------------------------------------------------
 * Produce
 * ------------------------------------------------------------------------ */

/* A random producer id (never 0), and all sequences back to 0. */
static void client__new_producer(struct tally_client *c)
{
    uint64_t id = 0;
    while (id == 0) {
        if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id) {
            /* No entropy source: time and address still make a clash
             * between two live producers very unlikely. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            id = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)c;
        }
    }
    c->producer_id = id;
    for (struct client__seq *s = c->seqs; s != NULL; s = s->link) {
        s->next = 0;
    }
}

static struct client__seq *client__seq_of(struct tally_client *c, const char *topic)
{
    struct client__seq *s;
    for (s = c->seqs; s != NULL; s = s->link) {
        if (strcmp(s->topic, topic) == 0) {
            return s;
        }
    }
    s = calloc(1, sizeof *s);
    if (s != NULL) {
        snprintf(s->topic, sizeof s->topic, "%s", topic);
        s->link = c->seqs;
        c->seqs = s;
    }
    return s;
}

TALLY_API void tally_produce_options_init(struct tally_produce_options *o)
{
    if (o == NULL) {
        return;
    }
    memset(o, 0, sizeof *o);
    o->expect_offset = TALLY_NO_EXPECT;
}

TALLY_API uint64_t tally_condition_actual(tally_client *c)
{
    if (c == NULL) {
        return 0;
    }
    return c->actual;
}

TALLY_API int tally_produce(tally_client *c, const char *topic,
                            const struct tally_record_in *records, size_t n,
                            struct tally_produce_result *result)
{
    return tally_produce_ex(c, topic, records, n, NULL, result);
}

TALLY_API int tally_produce_ex(tally_client *c, const char *topic,
                               const struct tally_record_in *records, size_t n,
                               const struct tally_produce_options *opts,
                               struct tally_produce_result *result)
{
    struct batch_builder bb;
    struct buf batch;
    struct proto_produce_req m;
    struct proto_produce_resp pr;
    struct client__op op;
    struct client__reply rep;
    char what[PROTO_NAME_MAX + 32];
    size_t start;
    int rv;

    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "produce to %s", topic != NULL ? topic : "(null)");
    if (result == NULL) {
        return client__null_output(c, what, "result");
    }
    memset(result, 0, sizeof *result);
    if ((rv = client__check_name(c, topic, what)) != 0) {
        return rv;
    }
    if (n == 0 || records == NULL || n > UINT32_MAX) {
        err_printf(c->errmsg, "%s: at least one record is needed", what);
        return TALLY_INVAL;
    }
    if (opts != NULL && opts->n_conditions > PROTO_MAX_CONDITIONS) {
        err_printf(c->errmsg, "%s: at most %d key conditions", what, PROTO_MAX_CONDITIONS);
        return TALLY_INVAL;
    }
    if (opts != NULL && opts->n_conditions > 0 && opts->conditions == NULL) {
        err_printf(c->errmsg, "%s: n_conditions is %zu but conditions is NULL", what,
                   opts->n_conditions);
        return TALLY_INVAL;
    }
    for (size_t i = 0; opts != NULL && i < opts->n_conditions; i++) {
        if (opts->conditions[i].key == NULL && opts->conditions[i].key_len > 0) {
            err_printf(c->errmsg, "%s: key condition %zu has a NULL key of %zu bytes", what, i,
                       opts->conditions[i].key_len);
            return TALLY_INVAL;
        }
    }
    c->actual = 0;

    /* One batch with this handle's producer id and the topic's next
     * sequence, checksummed here and verified by the leader and by every
     * reader. */
    struct client__seq *seq = client__seq_of(c, topic);
    if (seq == NULL) {
        err_printf(c->errmsg, "%s: out of memory", what);
        return TALLY_NOMEM;
    }
    batch_builder_init(&bb, c->producer_id, seq->next);
    for (size_t i = 0; i < n; i++) {
        rv = batch_builder_add(&bb, records[i].key, records[i].key_len, records[i].value,
                               records[i].value_len);
        if (rv != 0) {
            batch_builder_free(&bb);
            err_printf(c->errmsg, "%s: record %zu: %s", what, i, tally_strerror(rv));
            return rv;
        }
    }
    buf_init(&batch);
    rv = batch_builder_finish(&bb, bb.records.len >= CLIENT__COMPRESS_MIN, &batch);
    batch_builder_free(&bb);
    if (rv != 0) {
        buf_free(&batch);
        if (rv == TALLY_TOOLARGE) {
            err_printf(c->errmsg, "%s: a batch of %zu record(s) is over the limit of %u bytes", what, n,
                       (unsigned)BATCH_MAX_SIZE);
        } else {
            err_printf(c->errmsg, "%s: %s", what, tally_strerror(rv));
        }
        return rv;
    }

    client__op_init(c, &op, what, true);
    op.idempotent = true;
    memset(&m, 0, sizeof m);
    snprintf(m.topic, sizeof m.topic, "%s", topic);
    m.timeout_ms = (uint32_t)c->timeout_ms;
    m.expect_offset = opts != NULL ? opts->expect_offset : PROTO_NO_EXPECT;
    m.n_conditions = opts != NULL ? (uint32_t)opts->n_conditions : 0;
    m.batch = batch.data;
    m.batch_len = (uint32_t)batch.len;
    start = client__begin(c, PROTO_PRODUCE);
    proto_put_produce_req(&c->req, &m);
    for (uint32_t i = 0; i < m.n_conditions; i++) {
        struct proto_condition pc = {opts->conditions[i].key,
                                     (uint32_t)opts->conditions[i].key_len,
                                     opts->conditions[i].expect_version};
        proto_put_condition(&c->req, &pc);
    }
    rv = client__end(c, start, what);
    buf_free(&batch);
    if (rv != 0) {
        return rv;
    }
    if ((rv = client__call(c, &op, &rep)) != 0) {
        if (rv == TALLY_TIMEOUT || rv == TALLY_LEADERSHIP_LOST || rv == TALLY_SEQUENCE) {
            /* The batch may be in the log under this sequence: start over
             * as a new producer rather than risk a gap or a duplicate. */
            client__new_producer(c);
        }
        return rv;
    }
    seq->next++;
    if (proto_get_produce_resp(&rep.body, &pr) != 0 || proto_get_end(&rep.body) != 0) {
        return client__malformed(c, what);
    }
    if (pr.count != (uint32_t)n) {
        err_printf(c->errmsg, "%s: the leader wrote %u records of %zu", what, pr.count, n);
        return TALLY_PROTO;
    }
    result->base_offset = pr.base_offset;
    result->count = pr.count;
    result->raft_index = pr.raft_index;
    return 0;
}

/* ------------------------------------------------------------------------
 * Fetch
 * ------------------------------------------------------------------------ */

/* What a fetch result owns besides its record array: the response frame
 * (uncompressed records point into it) and one decompressed copy per lz4
 * batch (their records point there). */
struct client__fetch_impl {
    bool possibly_stale;     /* tally_fetch_possibly_stale */
    uint8_t *frame;
    uint8_t **copies;
    size_t n_copies;
};

static void client__fetch_impl_free(struct client__fetch_impl *impl)
{
    if (impl == NULL) {
        return;
    }
    for (size_t i = 0; i < impl->n_copies; i++) {
        free(impl->copies[i]);
    }
    free(impl->copies);
    free(impl->frame);
    free(impl);
}

TALLY_API void tally_fetch_options_init(struct tally_fetch_options *o)
{
    if (o == NULL) {
        return;
    }
    o->max_bytes = CLIENT__DEFAULT_FETCH_BYTES;
    o->max_wait_ms = 0;
    o->min_index = 0;
    o->node = NULL;
}

TALLY_API void tally_set_linearizable(tally_client *c, int on)
{
    if (c == NULL) {
        return;
    }
    c->linearizable = on != 0;
}

TALLY_API int tally_fetch_possibly_stale(const struct tally_fetch_result *res)
{
    if (res == NULL) {
        return 0;
    }
    const struct client__fetch_impl *impl = res->impl;
    return impl != NULL && impl->possibly_stale ? 1 : 0;
}

TALLY_API void tally_fetch_result_free(struct tally_fetch_result *res)
{
    if (res == NULL) {
        return;
    }
    free(res->records);
    client__fetch_impl_free(res->impl);
    memset(res, 0, sizeof *res);
}

/* Decode the batches of a FETCH answer into @res, keeping records at or
 * above @offset. @impl owns the bytes the records will point into. */
static int client__decode_batches(struct tally_client *c, const char *what, const uint8_t *p,
                                  size_t len, uint64_t offset, struct tally_fetch_result *res,
                                  struct client__fetch_impl *impl)
{
    size_t pos = 0, cap = 0;
    char errmsg[ERR_MSG_SIZE];
    bool any = false;
    uint64_t next = offset;
    int rv;

    while (pos < len) {
        struct batch_header h;
        struct batch_iter it;
        struct batch_record rec;

        rv = batch_decode_header(p + pos, len - pos, &h, errmsg);
        if (rv == 0 && h.batch_len > len - pos) {
            rv = ERR_CORRUPT(errmsg, "batch of %u bytes but only %zu left", h.batch_len,
                             len - pos);
        }
        if (rv == 0) {
            rv = batch_iter_init(&it, p + pos, h.batch_len, errmsg);
        }
        if (rv != 0) {
            err_printf(c->errmsg, "%s: batch at byte %zu of the answer: %s", what, pos, errmsg);
            return rv;
        }
        if (it.owned != NULL) {
            uint8_t **copies = realloc(impl->copies, (impl->n_copies + 1) * sizeof *copies);
            if (copies == NULL) {
                batch_iter_close(&it);
                err_printf(c->errmsg, "%s: out of memory", what);
                return TALLY_NOMEM;
            }
            impl->copies = copies;
            impl->copies[impl->n_copies++] = it.owned; /* now owned by impl */
        }
        while ((rv = batch_iter_next(&it, &rec, errmsg)) == 0) {
            /* Whole batches come back: skip records before the one asked for. */
            if (rec.offset < offset) {
                continue;
            }
            if (res->n == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                struct tally_record *r = realloc(res->records, ncap * sizeof *r);
                if (r == NULL) {
                    it.owned = NULL;
                    err_printf(c->errmsg, "%s: out of memory", what);
                    return TALLY_NOMEM;
                }
                res->records = r;
                cap = ncap;
            }
            struct tally_record *out = &res->records[res->n++];
            out->offset = rec.offset;
            out->timestamp_ms = rec.timestamp;
            out->key = rec.key;
            out->key_len = rec.key_len;
            out->value = rec.value;
            out->value_len = rec.value_len;
        }
        it.owned = NULL; /* kept by impl, if any */
        batch_iter_close(&it);
        if (rv != TALLY_EOF) {
            err_printf(c->errmsg, "%s: batch at offset %llu: %s", what,
                       (unsigned long long)h.base_offset, errmsg);
            return rv;
        }
        /* Resume after the batch, not after its last surviving record:
         * compaction can leave the batch's last offsets empty. */
        if (batch_last_offset(&h) + 1 > next) {
            next = batch_last_offset(&h) + 1;
        }
        any = true;
        pos += h.batch_len;
    }
    res->next_offset = any ? next : offset;
    return 0;
}

/* Read-ahead, as Kafka's consumers fetch ahead: when an answer leaves
 * more records on the node, the FETCH that continues it (same topic,
 * options and node) is sent before this answer's records are verified,
 * decoded and handed to the caller, so the node streams the next answer
 * while the caller works. The next tally_fetch takes that answer if it
 * asks exactly for it; any other request on that connection reads and
 * drops it first (client__connect). A failed read-ahead is forgotten:
 * the request is then sent the usual way. */
static bool client__same_fetch(const struct proto_fetch_req *a, const struct proto_fetch_req *b)
{
    return strcmp(a->topic, b->topic) == 0 && a->offset == b->offset &&
           a->max_bytes == b->max_bytes && a->max_wait_ms == b->max_wait_ms &&
           a->min_index == b->min_index;
}

static void client__fetch_ahead(struct tally_client *c, int node, const struct proto_fetch_req *m)
{
    struct client__node *nd;
    bool sent = false;
    size_t start;
    if (node < 0 || (size_t)node >= c->n_nodes) {
        return;
    }
    nd = &c->nodes[node];
    if (nd->fd < 0 || nd->ahead) {
        return;
    }
    start = client__begin(c, PROTO_FETCH);
    proto_put_fetch_req(&c->req, m);
    if (client__end(c, start, "fetch ahead") == 0) {
        uint32_t id;
        if (client__send_request(c, nd, &c->req, client_now_ms() + c->timeout_ms, &sent, &id) ==
            0) {
            nd->ahead = true;
            nd->ahead_id = id;
            nd->ahead_req = *m;
        } else {
            client__disconnect(nd);
        }
    }
    c->errmsg[0] = '\0'; /* this fetch succeeded whatever happened here */
}

/* The answer to a read-ahead of exactly @m on node @node into c->resp and
 * @rep; false if there is none, or it failed or is an error answer (the
 * caller then sends @m the usual way, which handles errors and retries). */
static bool client__take_ahead(struct tally_client *c, int node, const struct proto_fetch_req *m,
                               int64_t deadline, struct client__reply *rep)
{
    struct client__node *nd;
    int rv;
    if (node < 0 || (size_t)node >= c->n_nodes) {
        return false;
    }
    nd = &c->nodes[node];
    if (!nd->ahead || nd->fd < 0 || !client__same_fetch(&nd->ahead_req, m)) {
        return false;
    }
    nd->ahead = false;
    rv = client__recv_reply(c, nd, PROTO_FETCH, nd->ahead_id, deadline, rep);
    if (rv != 0) {
        client__disconnect(nd);
    }
    c->errmsg[0] = '\0';
    return rv == 0 && !rep->is_error;
}

/* Where the batches of a FETCH answer end (the offset after the last
 * one), from their headers alone; false if the answer holds none or a
 * header is damaged (client__decode_batches then says so). */
static bool client__batches_end(const uint8_t *p, size_t len, uint64_t *end)
{
    char errmsg[ERR_MSG_SIZE];
    size_t pos = 0;
    bool any = false;
    while (pos < len) {
        struct batch_header h;
        if (batch_decode_header(p + pos, len - pos, &h, errmsg) != 0 || h.batch_len > len - pos) {
            return false;
        }
        *end = batch_last_offset(&h) + 1;
        any = true;
        pos += h.batch_len;
    }
    return any;
}

TALLY_API const char *tally_status_disagreement(tally_client *c)
{
    if (c == NULL) {
        return "";
    }
    return c->disagreement;
}

TALLY_API int tally_read_index(tally_client *c, uint64_t *index)
{
    static const char what[] = "read index (confirm the leader)";
    struct proto_read_index_req m = {0};
    struct client__op op;
    struct client__reply rep;
    struct proto_done_resp d;
    size_t start;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    if (index == NULL) {
        return client__null_output(c, what, "index");
    }
    start = client__begin(c, PROTO_READ_INDEX);
    proto_put_read_index_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    client__op_init(c, &op, what, true);
    if ((rv = client__call(c, &op, &rep)) != 0) {
        return rv;
    }
    if (proto_get_done_resp(&rep.body, &d) != 0 || proto_get_end(&rep.body) != 0) {
        return client__malformed(c, what);
    }
    *index = d.raft_index;
    return 0;
}

/* One FETCH request and its answer (tally_fetch goes on past gaps). */
static int client__fetch_one(tally_client *c, const char *what, const char *topic,
                             uint64_t offset, const struct tally_fetch_options *opts,
                             struct tally_fetch_result *res)
{
    struct proto_fetch_req m;
    struct proto_fetch_resp fr;
    struct client__op op;
    struct client__reply rep;
    struct client__fetch_impl *impl;
    int64_t wait;
    size_t start;
    int rv;

    memset(res, 0, sizeof *res);
    uint64_t min_index = opts->min_index;
    client__op_init(c, &op, what, false);
    if (opts->node != NULL) {
        int i = client__node_add(c, opts->node, strlen(opts->node));
        if (i < 0) {
            err_printf(c->errmsg, "%s: bad node address '%s'", what, opts->node);
            return TALLY_INVAL;
        }
        op.only = i;
    }
    /* The answer may legitimately take the long-poll time, or the
     * server's default wait for min_index, on top of the usual timeout. */
    wait = opts->max_wait_ms;
    if (min_index > 0 && wait == 0) {
        wait = CLIENT__MIN_INDEX_WAIT_MS;
    }
    op.deadline += wait;

    memset(&m, 0, sizeof m);
    snprintf(m.topic, sizeof m.topic, "%s", topic);
    m.offset = offset;
    m.max_bytes = opts->max_bytes ? opts->max_bytes : CLIENT__DEFAULT_FETCH_BYTES;
    m.max_wait_ms = opts->max_wait_ms;
    m.min_index = min_index;
    int via = op.only >= 0 ? op.only : c->read_pref;
    if (client__take_ahead(c, via, &m, op.deadline, &rep)) {
        c->read_pref = via; /* as client__call does for the node that answers a read */
    } else {
        start = client__begin(c, PROTO_FETCH);
        proto_put_fetch_req(&c->req, &m);
        if ((rv = client__end(c, start, what)) != 0) {
            return rv;
        }
        if ((rv = client__call(c, &op, &rep)) != 0) {
            return rv;
        }
        via = c->read_pref; /* the node that answered */
    }
    if (proto_get_fetch_resp(&rep.body, &fr) != 0 || proto_get_end(&rep.body) != 0) {
        return client__malformed(c, what);
    }
    uint64_t end;
    if (client__batches_end(fr.batches, fr.batches_len, &end) && end < fr.next_offset) {
        struct proto_fetch_req more = m;
        more.offset = end;
        client__fetch_ahead(c, via, &more);
    }

    /* Take the response frame: the records will point into it. */
    impl = calloc(1, sizeof *impl);
    if (impl == NULL) {
        err_printf(c->errmsg, "%s: out of memory", what);
        return TALLY_NOMEM;
    }
    impl->frame = c->resp.data;
    buf_init(&c->resp);
    res->impl = impl;
    res->high_offset = fr.next_offset;
    res->start_offset = fr.start_offset;
    res->applied_index = fr.applied_index;
    impl->possibly_stale = !c->linearizable && (rep.f.flags & PROTO_FLAG_NO_LEADER) != 0;
    rv = client__decode_batches(c, what, fr.batches, fr.batches_len, offset, res, impl);
    if (rv != 0) {
        tally_fetch_result_free(res);
        return rv;
    }
    return 0;
}

/* An answer can hold batches but no record at or above the offset asked
 * for: compaction replaces runs of emptied batches with gap batches, and
 * a segment it emptied holds nothing else, while the node answers from
 * one segment at a time. Handing the caller n == 0 there would read as
 * "nothing yet" (tally.h promises n == 0 only after max_wait_ms), and a
 * reader that stops or waits on it would miss the records after the
 * gap. So tally_fetch goes on from the answer's next_offset, at most
 * this many requests per call (each moves at least one segment on). */
#define CLIENT__GAP_HOPS 4096

TALLY_API int tally_fetch(tally_client *c, const char *topic, uint64_t offset,
                          const struct tally_fetch_options *opts, struct tally_fetch_result *res)
{
    struct tally_fetch_options o;
    char what[PROTO_NAME_MAX + 48];
    int64_t t0 = client_now_ms();
    uint64_t at = offset;
    int rv;

    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "fetch %s at %llu", topic != NULL ? topic : "(null)",
             (unsigned long long)offset);
    if (res == NULL) {
        return client__null_output(c, what, "res");
    }
    memset(res, 0, sizeof *res);
    if ((rv = client__check_name(c, topic, what)) != 0) {
        return rv;
    }
    if (opts != NULL) {
        o = *opts;
    } else {
        tally_fetch_options_init(&o);
    }
    if (c->linearizable) {
        uint64_t index = 0;
        if ((rv = tally_read_index(c, &index)) != 0) {
            char why[sizeof c->errmsg];
            snprintf(why, sizeof why, "%s", c->errmsg);
            err_printf(c->errmsg, "%s (linearizable): %s", what, why);
            return rv;
        }
        o.min_index = index > o.min_index ? index : o.min_index;
    }
    for (unsigned hop = 0;; hop++) {
        rv = client__fetch_one(c, what, topic, at, &o, res);
        if (rv != 0 || res->n > 0 || res->next_offset <= at || hop == CLIENT__GAP_HOPS) {
            return rv;
        }
        /* Only gap batches: nothing but emptied offsets up to next_offset. */
        if (res->next_offset >= res->high_offset) {
            /* The gap reaches the end: long-poll there for what is left
             * of max_wait_ms, as a fetch at the end would have. */
            int64_t waited = client_now_ms() - t0;
            if (o.max_wait_ms == 0 || waited >= (int64_t)o.max_wait_ms) {
                return 0;
            }
            o.max_wait_ms -= (uint32_t)waited;
        }
        at = res->next_offset;
        tally_fetch_result_free(res);
    }
}

/* ------------------------------------------------------------------------
 * Cluster status and membership
 * ------------------------------------------------------------------------ */

/* One node's own METADATA answer. */
struct client__md {
    bool ok;
    struct proto_metadata_resp md;
    struct proto_member *members; /* owned */
    bool clock_ok;                /* clk holds the node's CLOCK answer */
    struct proto_clock_resp clk;
};

/* CLOCK from node @i (after its METADATA answered): its clock offset
 * against the leader. A server that does not know CLOCK (older than
 * protocol type 19) leaves the offset unknown. */
static void client__clock_from(struct tally_client *c, size_t i, int64_t deadline,
                               struct client__md *out)
{
    struct proto_clock_req mq = {0};
    struct client__reply rep;
    bool sent;
    size_t start = client__begin(c, PROTO_CLOCK);
    proto_put_clock_req(&c->req, &mq);
    if (client__end(c, start, "status") != 0 ||
        client__attempt(c, i, deadline, &sent, &rep) != 0 || rep.is_error) {
        return;
    }
    out->clock_ok = proto_get_clock_resp(&rep.body, &out->clk) == 0 &&
                    proto_get_end(&rep.body) == 0;
}

/* METADATA from node @i into @out. */
static int client__metadata_from(struct tally_client *c, size_t i, int64_t deadline,
                                 struct client__md *out)
{
    /* Smallest encoded MEMBER: id, two empty strings, voter. */
    const size_t min_item = 8 + 2 + 2 + 1;
    struct proto_metadata_req mq = {0};
    struct client__reply rep;
    bool sent;
    size_t start;
    int rv;

    start = client__begin(c, PROTO_METADATA);
    proto_put_metadata_req(&c->req, &mq);
    if ((rv = client__end(c, start, "status")) != 0) {
        return rv;
    }
    /* One attempt only: a node that does not answer is reported as
     * unreachable rather than waited for. */
    rv = client__attempt(c, i, deadline, &sent, &rep);
    if (rv != 0) {
        client__set_why(&c->nodes[i], c->errmsg);
        return rv;
    }
    if (rep.is_error) {
        client__set_why(&c->nodes[i], rep.err.message);
        return rep.err.code;
    }
    if (proto_get_metadata_resp(&rep.body, &out->md) != 0 ||
        out->md.n_members > rep.body.left / min_item) {
        snprintf(c->nodes[i].why, sizeof c->nodes[i].why, "malformed answer");
        return TALLY_PROTO;
    }
    out->members = calloc(out->md.n_members ? out->md.n_members : 1, sizeof *out->members);
    if (out->members == NULL) {
        return TALLY_NOMEM;
    }
    for (uint32_t k = 0; k < out->md.n_members; k++) {
        if (proto_get_member(&rep.body, &out->members[k]) != 0) {
            free(out->members);
            out->members = NULL;
            snprintf(c->nodes[i].why, sizeof c->nodes[i].why, "malformed answer");
            return TALLY_PROTO;
        }
    }
    if (proto_get_end(&rep.body) != 0) {
        free(out->members);
        out->members = NULL;
        snprintf(c->nodes[i].why, sizeof c->nodes[i].why, "malformed answer");
        return TALLY_PROTO;
    }
    out->ok = true;
    c->nodes[i].id = out->md.node_id;
    char saved[ERR_MSG_SIZE];
    memcpy(saved, c->errmsg, sizeof saved); /* a failed CLOCK is no error */
    client__clock_from(c, i, deadline, out);
    memcpy(c->errmsg, saved, sizeof saved);
    return 0;
}

/* Fill a tally_member with @node's own view (if it answered). */
static void client__member_self(struct tally_member *tm, const struct client__md *a)
{
    if (a == NULL || !a->ok) {
        tm->reachable = 0;
        tm->role = TALLY_ROLE_UNKNOWN;
        return;
    }
    tm->reachable = 1;
    tm->role = a->md.role <= TALLY_ROLE_UNAVAILABLE ? a->md.role : TALLY_ROLE_UNKNOWN;
    tm->applied_index = a->md.applied_index;
    tm->term = a->md.term;
    tm->commit_index = a->md.commit_index;
    tm->clock_known = a->clock_ok && a->clk.offset_known;
    tm->clock_offset_ms = tm->clock_known ? a->clk.offset_ms : 0;
    tm->clock_warning = tm->clock_known && a->clk.offset_warn;
}

TALLY_API int tally_status_get(tally_client *c, struct tally_status *st)
{
    struct client__md *ans;
    int64_t deadline, per_node;
    const struct client__md *best = NULL;
    size_t n_ok = 0, cap;
    int last = TALLY_CONNECT;
    char tried[ERR_MSG_SIZE];

    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    if (st == NULL) {
        return client__null_output(c, "status", "st");
    }
    deadline = client_now_ms() + c->timeout_ms;
    per_node = c->timeout_ms / 3 > CLIENT__CONNECT_MS ? c->timeout_ms / 3 : CLIENT__CONNECT_MS;
    memset(st, 0, sizeof *st);
    ans = calloc(CLIENT__MAX_NODES, sizeof *ans);
    if (ans == NULL) {
        err_printf(c->errmsg, "status: out of memory");
        return TALLY_NOMEM;
    }
    for (size_t i = 0; i < c->n_nodes; i++) {
        c->nodes[i].why[0] = '\0';
    }
    /* Ask every known node; members learned from answers join the table
     * and are asked in turn (the loop bound grows with it). */
    for (size_t i = 0; i < c->n_nodes; i++) {
        int64_t until = client_now_ms() + per_node;
        int rv = client__metadata_from(c, i, until < deadline ? until : deadline, &ans[i]);
        if (rv == TALLY_NOMEM) {
            last = rv;
            break;
        }
        if (rv != 0) {
            last = rv;
            continue;
        }
        n_ok++;
        for (uint32_t k = 0; k < ans[i].md.n_members; k++) {
            client__learn(c, ans[i].members[k].id, ans[i].members[k].client_addr);
        }
    }
    if (n_ok == 0) {
        for (size_t i = 0; i < CLIENT__MAX_NODES; i++) {
            free(ans[i].members);
        }
        free(ans);
        client__tried(c, tried, sizeof tried);
        err_printf(c->errmsg, "status: no node answered: %s", tried);
        return last == TALLY_NOMEM ? TALLY_NOMEM : TALLY_CONNECT;
    }

    /* The cluster-wide view comes from the member with the highest term
     * that knows a leader (else the highest term at all): it is the most
     * recent. */
    for (size_t i = 0; i < c->n_nodes; i++) {
        const struct client__md *a = &ans[i];
        if (!a->ok) {
            continue;
        }
        bool a_leader = a->md.leader_id != 0;
        bool b_leader = best != NULL && best->md.leader_id != 0;
        if (best == NULL || (a_leader && !b_leader) ||
            (a_leader == b_leader && a->md.term > best->md.term)) {
            best = a;
        }
    }
    st->leader_id = best->md.leader_id;
    st->term = best->md.term;
    st->commit_index = best->md.commit_index;
    c->disagreement[0] = '\0';
    /* Two memberships in one cluster (issue: a first start that kept a
     * mistyped --peer): compare every answer's configuration with the
     * best one's. */
    for (size_t i = 0; i < c->n_nodes && c->disagreement[0] == '\0'; i++) {
        if (!ans[i].ok || &ans[i] == best) {
            continue;
        }
        for (uint32_t k = 0; k < ans[i].md.n_members; k++) {
            const struct proto_member *pm = &ans[i].members[k];
            for (uint32_t j = 0; j < best->md.n_members; j++) {
                const struct proto_member *bm = &best->members[j];
                if (bm->id == pm->id && strcmp(bm->raft_addr, pm->raft_addr) != 0 &&
                    c->disagreement[0] == '\0') {
                    snprintf(c->disagreement, sizeof c->disagreement,
                             "node %llu has node %llu at %s, node %llu has it at %s",
                             (unsigned long long)best->md.node_id, (unsigned long long)bm->id,
                             bm->raft_addr, (unsigned long long)ans[i].md.node_id,
                             pm->raft_addr);
                }
            }
        }
    }

    /* Members: the configuration the best answer reports, each with its own
     * view. A node that answers but is not in it (removed, and still
     * running) is no member: it is not listed (docs/operations.md). */
    cap = best->md.n_members;
    st->members = calloc(cap ? cap : 1, sizeof *st->members);
    if (st->members == NULL) {
        for (size_t i = 0; i < CLIENT__MAX_NODES; i++) {
            free(ans[i].members);
        }
        free(ans);
        err_printf(c->errmsg, "status: out of memory");
        return TALLY_NOMEM;
    }
    for (uint32_t k = 0; k < best->md.n_members; k++) {
        const struct proto_member *pm = &best->members[k];
        struct tally_member *tm = &st->members[st->n_members++];
        const struct client__md *self = NULL;
        tm->id = pm->id;
        snprintf(tm->client_addr, sizeof tm->client_addr, "%s", pm->client_addr);
        snprintf(tm->raft_addr, sizeof tm->raft_addr, "%s", pm->raft_addr);
        tm->voter = pm->voter == 1;
        tm->spare = pm->voter == 2;
        for (size_t i = 0; i < c->n_nodes; i++) {
            if (ans[i].ok && ans[i].md.node_id == pm->id) {
                self = &ans[i];
                break;
            }
        }
        client__member_self(tm, self);
        if (pm->id == st->leader_id && pm->client_addr[0] != '\0') {
            c->leader = client__learn(c, pm->id, pm->client_addr);
        }
    }
    for (size_t i = 0; i < CLIENT__MAX_NODES; i++) {
        free(ans[i].members);
    }
    free(ans);
    return 0;
}

TALLY_API void tally_status_free(struct tally_status *st)
{
    if (st == NULL) {
        return;
    }
    free(st->members);
    memset(st, 0, sizeof *st);
}

TALLY_API int tally_member_add(tally_client *c, uint64_t id, const char *addr)
{
    struct proto_member_add_req m;
    char what[64 + 2 * PROTO_ADDR_MAX];
    const char *slash = addr != NULL ? strchr(addr, '/') : NULL;
    struct sockaddr_in sa;
    char norm[PROTO_ADDR_MAX];
    size_t start;
    int rv;

    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "add member %llu at %s", (unsigned long long)id,
             addr != NULL ? addr : "(null)");
    if (id == 0 || slash == NULL ||
        client_parse_addr(addr, (size_t)(slash - addr), &sa, norm) != 0 ||
        (size_t)(slash - addr) >= PROTO_ADDR_MAX ||
        client_parse_addr(slash + 1, strlen(slash + 1), &sa, norm) != 0 ||
        strlen(slash + 1) >= PROTO_ADDR_MAX) {
        err_printf(c->errmsg, "%s: want a non-zero id and CLIENT_HOST:PORT/RAFT_HOST:PORT", what);
        return TALLY_INVAL;
    }
    memset(&m, 0, sizeof m);
    m.id = id;
    memcpy(m.client_addr, addr, (size_t)(slash - addr));
    snprintf(m.raft_addr, sizeof m.raft_addr, "%s", slash + 1);
    start = client__begin(c, PROTO_MEMBER_ADD);
    proto_put_member_add_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    return client__done_call(c, what);
}

/* MEMBER_REMOVE, MEMBER_TRANSFER or MEMBER_PROMOTE of @id (0 only for a
 * transfer: any up-to-date voter). */
static int client__member_op(tally_client *c, uint16_t type, uint64_t id, const char *what)
{
    size_t start;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    if (id == 0 && type != PROTO_MEMBER_TRANSFER) {
        err_printf(c->errmsg, "%s: the id must not be 0", what);
        return TALLY_INVAL;
    }
    start = client__begin(c, type);
    if (type == PROTO_MEMBER_REMOVE) {
        struct proto_member_remove_req m = {id};
        proto_put_member_remove_req(&c->req, &m);
    } else if (type == PROTO_MEMBER_PROMOTE) {
        struct proto_member_promote_req m = {id};
        proto_put_member_promote_req(&c->req, &m);
    } else {
        struct proto_member_transfer_req m = {id};
        proto_put_member_transfer_req(&c->req, &m);
    }
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    return client__done_call(c, what);
}

TALLY_API int tally_member_remove(tally_client *c, uint64_t id)
{
    char what[64];
    snprintf(what, sizeof what, "remove member %llu", (unsigned long long)id);
    return client__member_op(c, PROTO_MEMBER_REMOVE, id, what);
}

TALLY_API int tally_member_transfer(tally_client *c, uint64_t id)
{
    char what[64];
    snprintf(what, sizeof what, "transfer leadership to %llu", (unsigned long long)id);
    return client__member_op(c, PROTO_MEMBER_TRANSFER, id, what);
}

TALLY_API int tally_member_replace(tally_client *c, uint64_t id)
{
    char what[64];
    size_t start;
    int rv;
    struct proto_member_replace_req m = {id};
    if (c == NULL) {
        return TALLY_INVAL;
    }
    snprintf(what, sizeof what, "replace member %llu", (unsigned long long)id);
    c->errmsg[0] = '\0';
    if (id == 0) {
        err_printf(c->errmsg, "%s: the id must not be 0", what);
        return TALLY_INVAL;
    }
    start = client__begin(c, PROTO_MEMBER_REPLACE);
    proto_put_member_replace_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    return client__done_call(c, what);
}

TALLY_API int tally_member_promote(tally_client *c, uint64_t id)
{
    char what[64];
    snprintf(what, sizeof what, "promote member %llu to voter", (unsigned long long)id);
    return client__member_op(c, PROTO_MEMBER_PROMOTE, id, what);
}

/* Whether the node with index @only holds the history of @t, a topic as
 * that node lists it (whose start is where the history it lacks begins,
 * when it installed a snapshot and is still backfilling): a FETCH of one
 * byte there, answered by that node alone (no retry), which a node still
 * backfilling answers UNAVAILABLE. Any other error (retention moved its
 * start meanwhile) counts as "not yet" too: the caller asks again. */
static int client__member_has_history(tally_client *c, int only,
                                      const struct tally_topic_info *t, int *has)
{
    struct proto_fetch_req m;
    struct client__op op;
    struct client__reply rep;
    size_t start;
    int rv;
    *has = 1;
    if (t->next_offset == t->start_offset) {
        return 0;
    }
    client__op_init(c, &op, "probe a member's history", false);
    op.only = only;
    op.first_answer = true;
    memset(&m, 0, sizeof m);
    snprintf(m.topic, sizeof m.topic, "%s", t->name);
    m.offset = t->start_offset;
    m.max_bytes = 1;
    start = client__begin(c, PROTO_FETCH);
    proto_put_fetch_req(&c->req, &m);
    if ((rv = client__end(c, start, op.what)) != 0) {
        return rv;
    }
    rv = client__call(c, &op, &rep);
    if (rv != 0 && rv != TALLY_NOMEM) {
        *has = 0;
        rv = 0;
    }
    return rv;
}

TALLY_API int tally_member_catchup(tally_client *c, uint64_t id, uint64_t min_index,
                                   struct tally_catchup *out)
{
    struct tally_status st;
    struct tally_topic_info *topics = NULL, *theirs = NULL;
    const struct tally_member *m = NULL;
    char node[64], leader[64] = "";
    size_t n = 0, n_theirs = 0;
    int rv;

    if (c == NULL) {
        return TALLY_INVAL;
    }
    if (out == NULL) {
        return client__null_output(c, "member catch-up", "out");
    }
    memset(out, 0, sizeof *out);
    out->min_index = min_index;
    if ((rv = tally_status_get(c, &st)) != 0) {
        return rv;
    }
    for (size_t i = 0; i < st.n_members; i++) {
        if (st.members[i].id == id) {
            m = &st.members[i];
        }
        if (st.members[i].id == st.leader_id && st.leader_id != id) {
            snprintf(leader, sizeof leader, "%s", st.members[i].client_addr);
        }
    }
    if (m == NULL) {
        tally_status_free(&st);
        err_printf(c->errmsg, "node %llu is not a member of the cluster", (unsigned long long)id);
        return TALLY_NOTFOUND;
    }
    out->voter = m->voter;
    out->spare = m->spare;
    out->reachable = m->reachable;
    out->applied_index = m->applied_index;
    if (out->min_index == 0) {
        out->min_index = st.commit_index;
    }
    snprintf(node, sizeof node, "%s", m->client_addr);
    snprintf(out->addr, sizeof out->addr, "%s/%s", m->client_addr, m->raft_addr);
    tally_status_free(&st);
    if (out->spare || !out->reachable || out->applied_index < out->min_index) {
        return 0;
    }
    /* The member's own topic list: its start of a topic is where the
     * history it lacks begins. The probes must not make it the node this
     * client prefers for reads. */
    int only = client__node_add(c, node, strlen(node));
    int read_pref = c->read_pref;
    if (only < 0) {
        err_printf(c->errmsg, "member %llu: bad client address '%s'", (unsigned long long)id,
                   node);
        return TALLY_INVAL;
    }
    rv = client__topic_list(c, only, &topics, &n);
    /* Every topic the leader has must be on the member too: a member that
     * lacks a topic (say, one a restore created before it joined) does not
     * hold the cluster's history, whatever its applied index. */
    if (rv == 0 && leader[0] != '\0') {
        int lidx = client__node_add(c, leader, strlen(leader));
        if (lidx < 0 || client__topic_list(c, lidx, &theirs, &n_theirs) != 0) {
            /* Unknown is not caught up: asked again on the next round. */
            out->topics_missing++;
            snprintf(out->missing_topic, sizeof out->missing_topic, "%s",
                     "(the leader's topic list, which could not be read)");
        } else {
            for (size_t k = 0; k < n_theirs; k++) {
                bool found = false;
                for (size_t i = 0; i < n && !found; i++) {
                    found = strcmp(topics[i].name, theirs[k].name) == 0;
                }
                if (!found && out->topics_missing++ == 0) {
                    snprintf(out->missing_topic, sizeof out->missing_topic, "%s",
                             theirs[k].name);
                }
            }
        }
        free(theirs);
    }
    for (size_t i = 0; i < n && rv == 0; i++) {
        int has;
        rv = client__member_has_history(c, only, &topics[i], &has);
        if (rv == 0 && !has) {
            if (out->topics_missing++ == 0) {
                snprintf(out->missing_topic, sizeof out->missing_topic, "%s", topics[i].name);
            }
        }
    }
    c->read_pref = read_pref;
    free(topics);
    if (rv == 0) {
        out->caught_up = out->topics_missing == 0;
    }
    return rv;
}

/* ------------------------------------------------------------------------
 * Time lookup and durable consumer positions
 * ------------------------------------------------------------------------ */

/* Decode an OFFSET_RESP answer. */
static int client__offset_resp(struct tally_client *c, struct client__reply *rep,
                               const char *what, uint64_t *offset, int *found)
{
    struct proto_offset_resp m;
    if (proto_get_offset_resp(&rep->body, &m) != 0 || proto_get_end(&rep->body) != 0) {
        return client__malformed(c, what);
    }
    *offset = m.offset;
    if (found != NULL) {
        *found = m.found != 0;
    }
    return 0;
}

TALLY_API int tally_offset_for_time(tally_client *c, const char *topic, int64_t timestamp_ms,
                                    uint64_t *offset)
{
    struct proto_offset_for_time_req m;
    struct client__op op;
    struct client__reply rep;
    char what[PROTO_NAME_MAX + 32];
    size_t start;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "find time in %s", topic != NULL ? topic : "(null)");
    if (offset == NULL) {
        return client__null_output(c, what, "offset");
    }
    *offset = 0;
    if ((rv = client__check_name(c, topic, what)) != 0) {
        return rv;
    }
    memset(&m, 0, sizeof m);
    snprintf(m.topic, sizeof m.topic, "%s", topic);
    m.timestamp_ms = timestamp_ms;
    start = client__begin(c, PROTO_OFFSET_FOR_TIME);
    proto_put_offset_for_time_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    client__op_init(c, &op, what, false);
    if ((rv = client__call(c, &op, &rep)) != 0) {
        return rv;
    }
    return client__offset_resp(c, &rep, what, offset, NULL);
}

static int client__check_group(struct tally_client *c, const char *group, const char *what)
{
    if (group == NULL || group[0] == '\0' || strlen(group) >= PROTO_NAME_MAX) {
        err_printf(c->errmsg, "%s: group name must be 1-%d bytes", what, PROTO_NAME_MAX - 1);
        return TALLY_INVAL;
    }
    return 0;
}

/* Send a GROUP_COMMIT, GROUP_SET or GROUP_DELETE built in c->req and read
 * DONE_RESP. */
static int client__group_write(struct tally_client *c, const char *what)
{
    struct client__op op;
    struct client__reply rep;
    int rv;
    /* Committing or setting the same position twice, or deleting twice, is
     * harmless (a second delete answers NOTFOUND), so a write whose outcome
     * is unknown is simply sent again. */
    client__op_init(c, &op, what, true);
    op.idempotent = true;
    if ((rv = client__call(c, &op, &rep)) != 0) {
        return rv;
    }
    struct proto_done_resp d;
    if (proto_get_done_resp(&rep.body, &d) != 0 || proto_get_end(&rep.body) != 0) {
        return client__malformed(c, what);
    }
    return 0;
}

TALLY_API int tally_group_commit(tally_client *c, const char *group, const char *topic,
                                 uint64_t offset)
{
    struct proto_group_commit_req m;
    char what[2 * PROTO_NAME_MAX + 32];
    size_t start;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "commit group %s on %s", group != NULL ? group : "(null)",
             topic != NULL ? topic : "(null)");
    if ((rv = client__check_group(c, group, what)) != 0 ||
        (rv = client__check_name(c, topic, what)) != 0) {
        return rv;
    }
    memset(&m, 0, sizeof m);
    snprintf(m.group, sizeof m.group, "%s", group);
    snprintf(m.topic, sizeof m.topic, "%s", topic);
    m.offset = offset;
    start = client__begin(c, PROTO_GROUP_COMMIT);
    proto_put_group_commit_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    return client__group_write(c, what);
}

TALLY_API int tally_group_fetch(tally_client *c, const char *group, const char *topic,
                                uint64_t *offset, int *found)
{
    struct proto_group_fetch_req m;
    struct client__op op;
    struct client__reply rep;
    char what[2 * PROTO_NAME_MAX + 32];
    size_t start;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "fetch group %s on %s", group != NULL ? group : "(null)",
             topic != NULL ? topic : "(null)");
    if (offset == NULL || found == NULL) {
        return client__null_output(c, what, offset == NULL ? "offset" : "found");
    }
    *offset = 0;
    *found = 0;
    if ((rv = client__check_group(c, group, what)) != 0 ||
        (rv = client__check_name(c, topic, what)) != 0) {
        return rv;
    }
    memset(&m, 0, sizeof m);
    snprintf(m.group, sizeof m.group, "%s", group);
    snprintf(m.topic, sizeof m.topic, "%s", topic);
    start = client__begin(c, PROTO_GROUP_FETCH);
    proto_put_group_fetch_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    /* Read from the leader: a follower may not have applied the group's
     * latest commit yet, and a consumer must resume after it. */
    client__op_init(c, &op, what, true);
    op.idempotent = true;
    if ((rv = client__call(c, &op, &rep)) != 0) {
        return rv;
    }
    return client__offset_resp(c, &rep, what, offset, found);
}

TALLY_API int tally_group_list(tally_client *c, const char *group, const char *topic,
                               struct tally_group_position **positions, size_t *n)
{
    struct proto_group_list_req m;
    struct proto_group_list_resp lr;
    struct tally_group_position *out;
    struct client__op op;
    struct client__reply rep;
    char what[2 * PROTO_NAME_MAX + 32];
    size_t start;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "list group %s", group != NULL ? group : "positions");
    if (positions == NULL || n == NULL) {
        return client__null_output(c, what, positions == NULL ? "positions" : "n");
    }
    *positions = NULL;
    *n = 0;
    if ((group != NULL && (rv = client__check_group(c, group, what)) != 0) ||
        (topic != NULL && (rv = client__check_name(c, topic, what)) != 0)) {
        return rv;
    }
    memset(&m, 0, sizeof m);
    snprintf(m.group, sizeof m.group, "%s", group != NULL ? group : "");
    snprintf(m.topic, sizeof m.topic, "%s", topic != NULL ? topic : "");
    start = client__begin(c, PROTO_GROUP_LIST);
    proto_put_group_list_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    /* The leader, as tally_group_fetch: it has the latest commits. */
    client__op_init(c, &op, what, true);
    op.idempotent = true;
    if ((rv = client__call(c, &op, &rep)) != 0) {
        return rv;
    }
    /* A position is at least 2 + 2 + 4 x 8 bytes. */
    if (proto_get_group_list_resp(&rep.body, &lr) != 0 || lr.n_positions > rep.body.left / 36) {
        return client__malformed(c, what);
    }
    out = calloc(lr.n_positions ? lr.n_positions : 1, sizeof *out);
    if (out == NULL) {
        err_printf(c->errmsg, "%s: out of memory", what);
        return TALLY_NOMEM;
    }
    for (uint32_t i = 0; i < lr.n_positions; i++) {
        struct proto_group_position p;
        if (proto_get_group_position(&rep.body, &p) != 0) {
            free(out);
            return client__malformed(c, what);
        }
        snprintf(out[i].group, sizeof out[i].group, "%s", p.group);
        snprintf(out[i].topic, sizeof out[i].topic, "%s", p.topic);
        out[i].topic_id = p.topic_id;
        out[i].offset = p.offset;
        out[i].start_offset = p.start_offset;
        out[i].next_offset = p.next_offset;
    }
    if (proto_get_end(&rep.body) != 0) {
        free(out);
        return client__malformed(c, what);
    }
    *positions = out;
    *n = lr.n_positions;
    return 0;
}

TALLY_API int tally_group_commit_at(tally_client *c, const char *group, const char *topic,
                                    uint64_t topic_id, uint64_t offset)
{
    struct proto_group_set_req m;
    char what[2 * PROTO_NAME_MAX + 32];
    size_t start;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "commit group %s on %s", group != NULL ? group : "(null)",
             topic != NULL ? topic : "(null)");
    if ((rv = client__check_group(c, group, what)) != 0 ||
        (rv = client__check_name(c, topic, what)) != 0) {
        return rv;
    }
    memset(&m, 0, sizeof m);
    snprintf(m.group, sizeof m.group, "%s", group);
    snprintf(m.topic, sizeof m.topic, "%s", topic);
    m.topic_id = topic_id;
    m.offset = offset;
    start = client__begin(c, PROTO_GROUP_SET);
    proto_put_group_set_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    return client__group_write(c, what);
}

TALLY_API int tally_group_reset(tally_client *c, const char *group, const char *topic,
                                enum tally_group_reset_to to, int64_t value, uint64_t *offset)
{
    struct tally_topic_info *topics = NULL;
    char what[2 * PROTO_NAME_MAX + 32];
    size_t n = 0, i;
    uint64_t pos = 0;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "reset group %s on %s", group != NULL ? group : "(null)",
             topic != NULL ? topic : "(null)");
    if ((rv = client__check_group(c, group, what)) != 0 ||
        (rv = client__check_name(c, topic, what)) != 0) {
        return rv;
    }
    switch (to) {
    case TALLY_RESET_EARLIEST:
    case TALLY_RESET_LATEST:
        if ((rv = client__topic_list(c, -1, &topics, &n)) != 0) {
            return rv;
        }
        for (i = 0; i < n && strcmp(topics[i].name, topic) != 0; i++) {
        }
        if (i == n) {
            free(topics);
            err_printf(c->errmsg, "%s: topic %s not found", what, topic);
            return TALLY_NOTFOUND;
        }
        pos = to == TALLY_RESET_EARLIEST ? topics[i].start_offset : topics[i].next_offset;
        free(topics);
        break;
    case TALLY_RESET_OFFSET:
        if (value < 0) {
            err_printf(c->errmsg, "%s: offset %lld is negative", what, (long long)value);
            return TALLY_INVAL;
        }
        pos = (uint64_t)value;
        break;
    case TALLY_RESET_TIME:
        if ((rv = tally_offset_for_time(c, topic, value, &pos)) != 0) {
            return rv;
        }
        break;
    default:
        err_printf(c->errmsg, "%s: unknown reset target %d", what, (int)to);
        return TALLY_INVAL;
    }
    if ((rv = tally_group_commit_at(c, group, topic, TALLY_ANY_TOPIC_ID, pos)) != 0) {
        return rv;
    }
    if (offset != NULL) {
        *offset = pos;
    }
    return 0;
}

TALLY_API int tally_group_delete(tally_client *c, const char *group, const char *topic)
{
    struct proto_group_delete_req m;
    char what[2 * PROTO_NAME_MAX + 32];
    size_t start;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "delete group %s%s%s", group != NULL ? group : "(null)",
             topic != NULL ? " on " : "", topic != NULL ? topic : "");
    if ((rv = client__check_group(c, group, what)) != 0 ||
        (topic != NULL && (rv = client__check_name(c, topic, what)) != 0)) {
        return rv;
    }
    memset(&m, 0, sizeof m);
    snprintf(m.group, sizeof m.group, "%s", group);
    snprintf(m.topic, sizeof m.topic, "%s", topic != NULL ? topic : "");
    start = client__begin(c, PROTO_GROUP_DELETE);
    proto_put_group_delete_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    return client__group_write(c, what);
}

/* ------------------------------------------------------------------------
 * TLS (docs/security.md)
 * ------------------------------------------------------------------------ */

TALLY_API int tally_client_set_tls(tally_client *c, const char *ca_file, const char *cert_file,
                                   const char *key_file)
{
    struct tls_files f = {cert_file, key_file, ca_file, true};
    SSL_CTX *ctx;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    if (ca_file == NULL || ca_file[0] == '\0') {
        err_printf(c->errmsg, "TLS: a CA file is required (the CA of the cluster)");
        return TALLY_INVAL;
    }
    ctx = tls_client_ctx(&f, c->errmsg);
    if (ctx == NULL) {
        return TALLY_INVAL;
    }
    SSL_CTX_free(c->tls);
    c->tls = ctx;
    for (size_t i = 0; i < c->n_nodes; i++) {
        client__disconnect(&c->nodes[i]); /* reconnect with TLS */
    }
    return 0;
}

SSL_CTX *client_tls_ctx(struct tally_client *c)
{
    return c->tls;
}

SSL *client_tls_open(SSL_CTX *ctx, int fd, const char *host, const char *addr, int64_t deadline,
                     char *errmsg)
{
    SSL *ssl = SSL_new(ctx);
    char why[ERR_MSG_SIZE / 2];
    bool late = false;
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || tls_expect_host(ssl, host) != 0) {
        SSL_free(ssl);
        err_printf(errmsg, "%s: TLS: out of memory", addr);
        return NULL;
    }
    SSL_set_connect_state(ssl);
    if (tls_fd_handshake(ssl, deadline, &late, why, sizeof why) != 0) {
        SSL_free(ssl);
        err_printf(errmsg, "%s: %s", addr, late ? "TLS handshake timed out" : why);
        return NULL;
    }
    return ssl;
}

/* ------------------------------------------------------------------------
 * Authentication: SCRAM (docs/security.md)
 * ------------------------------------------------------------------------ */

struct client__login_arg {
    struct tally_client *c;
    struct client__node *nd;
    int64_t deadline;
};

static int client__login_rt(void *arg, struct buf *frame, struct proto_auth_reply *out,
                            char *errmsg)
{
    struct client__login_arg *a = arg;
    struct client__reply rep;
    bool sent = false;
    int rv = client__roundtrip(a->c, a->nd, frame, a->deadline, &sent, &rep);
    if (rv != 0) {
        if (errmsg != a->c->errmsg) {
            err_printf(errmsg, "%s", a->c->errmsg);
        }
        return rv;
    }
    out->is_error = rep.is_error;
    snprintf(out->message, sizeof out->message, "%s", rep.is_error ? rep.err.message : "");
    out->body = rep.body;
    return 0;
}

static int client__login(struct tally_client *c, struct client__node *nd, int64_t deadline)
{
    struct client__login_arg a = {c, nd, deadline};
    char why[ERR_MSG_SIZE];
    int rv = proto_auth_login_mech(c->mech != 0 ? c->mech : SCRAM_SHA_256, c->user, c->password,
                                   client__login_rt, &a, NULL, 0, why);
    if (rv != 0) {
        err_printf(c->errmsg, "%s: %s", nd->addr, why);
        if (rv == TALLY_AUTH) {
            nd->refused = true;
            nd->refused_code = TALLY_AUTH;
        }
    }
    return rv;
}

TALLY_API int tally_client_set_auth(tally_client *c, const char *user, const char *password)
{
    if (c == NULL) {
        return TALLY_INVAL;
    }
    if (user == NULL || user[0] == '\0' || strlen(user) >= sizeof c->user || password == NULL ||
        strlen(password) >= sizeof c->password) {
        err_printf(c->errmsg, "authentication: a user name (1..%zu bytes) and a password "
                              "(at most %zu bytes) are needed",
                   sizeof c->user - 1, sizeof c->password - 1);
        return TALLY_INVAL;
    }
    snprintf(c->user, sizeof c->user, "%s", user);
    snprintf(c->password, sizeof c->password, "%s", password);
    for (size_t i = 0; i < c->n_nodes; i++) {
        client__disconnect(&c->nodes[i]); /* log in on the next request */
    }
    return 0;
}

const char *client_auth_user(struct tally_client *c, const char **password, int *mech)
{
    *password = c->password;
    *mech = c->mech != 0 ? c->mech : SCRAM_SHA_256;
    return c->user[0] != '\0' ? c->user : NULL;
}

TALLY_API int tally_client_set_auth_mechanism(tally_client *c, const char *mechanism)
{
    enum scram_mech m;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    m = mechanism != NULL ? scram_mech_parse(mechanism) : 0;
    if (m == 0) {
        err_printf(c->errmsg, "authentication mechanism '%s' is not supported: SCRAM-SHA-256 "
                              "or SCRAM-SHA-512", mechanism != NULL ? mechanism : "(null)");
        return TALLY_INVAL;
    }
    c->mech = (int)m;
    for (size_t i = 0; i < c->n_nodes; i++) {
        client__disconnect(&c->nodes[i]);
    }
    return 0;
}

/* SECURITY_SET of store command @command (16 users, 17 ACLs) with @body. */
static int client__security_set(tally_client *c, uint8_t command, const struct buf *body,
                                const char *what)
{
    struct proto_security_set_req m;
    size_t start;
    int rv;
    m.command = command;
    m.body = body->data;
    m.body_len = (uint32_t)body->len;
    start = client__begin(c, PROTO_SECURITY_SET);
    proto_put_security_set_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    return client__done_call(c, what);
}

/* SECURITY_LIST of @kind; each item's bytes go to @each (which returns 0,
 * or non-zero to stop with TALLY_PROTO or TALLY_NOMEM). */
static int client__security_list(tally_client *c, uint8_t kind, const char *what,
                                 int (*each)(void *arg, struct rd *item, uint32_t i, uint32_t n),
                                 void *arg)
{
    struct proto_security_list_req m = {kind};
    struct proto_security_list_resp r;
    struct client__op op;
    struct client__reply rep;
    size_t start;
    int rv;
    start = client__begin(c, PROTO_SECURITY_LIST);
    proto_put_security_list_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    client__op_init(c, &op, what, false);
    if ((rv = client__call(c, &op, &rep)) != 0) {
        return rv;
    }
    if (proto_get_security_list_resp(&rep.body, &r) != 0 || r.n_items > rep.body.left / 4) {
        return client__malformed(c, what);
    }
    for (uint32_t i = 0; i < r.n_items; i++) {
        struct proto_security_item it;
        struct rd item;
        if (proto_get_security_item(&rep.body, &it) != 0) {
            return client__malformed(c, what);
        }
        rd_init(&item, it.item, it.item_len);
        if ((rv = each(arg, &item, i, r.n_items)) != 0) {
            if (rv == TALLY_NOMEM) {
                err_printf(c->errmsg, "%s: out of memory", what);
                return rv;
            }
            return client__malformed(c, what);
        }
    }
    if (proto_get_end(&rep.body) != 0) {
        return client__malformed(c, what);
    }
    return 0;
}

TALLY_API int tally_user_set(tally_client *c, const char *name, const char *password)
{
    char what[SCRAM_USER_MAX + 32];
    struct scram_credentials cred[2];
    struct buf body;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "set user %s", name != NULL ? name : "(null)");
    if (name == NULL || name[0] == '\0' || strlen(name) >= SCRAM_USER_MAX || password == NULL ||
        password[0] == '\0') {
        err_printf(c->errmsg, "%s: a user name (1..%d bytes) and a non-empty password are "
                              "needed", what, SCRAM_USER_MAX - 1);
        return TALLY_INVAL;
    }
    /* The credentials are derived here: the password never leaves. */
    if (scram_make_credentials(SCRAM_SHA_256, password, NULL, 0, SCRAM_MIN_ITERATIONS, &cred[0],
                               c->errmsg) != 0 ||
        scram_make_credentials(SCRAM_SHA_512, password, NULL, 0, SCRAM_MIN_ITERATIONS, &cred[1],
                               c->errmsg) != 0) {
        return TALLY_INVAL;
    }
    buf_init(&body);
    buf_put_u8(&body, 1); /* set (store/users.h) */
    buf_put_str(&body, name);
    buf_put_u8(&body, 2);
    for (int i = 0; i < 2; i++) {
        size_t ks = scram_key_size(cred[i].mech);
        buf_put_u8(&body, (uint8_t)cred[i].mech);
        buf_put_blob(&body, cred[i].salt, (uint32_t)cred[i].salt_len);
        buf_put_u32(&body, cred[i].iterations);
        buf_put_blob(&body, cred[i].stored_key, (uint32_t)ks);
        buf_put_blob(&body, cred[i].server_key, (uint32_t)ks);
    }
    scram_wipe(cred, sizeof cred);
    rv = buf_ok(&body) ? client__security_set(c, PROTO_SECURITY_USERS, &body, what) : TALLY_NOMEM;
    scram_wipe(body.data, body.cap);
    buf_free(&body);
    return rv;
}

TALLY_API int tally_user_remove(tally_client *c, const char *name)
{
    char what[SCRAM_USER_MAX + 32];
    struct buf body;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "remove user %s", name != NULL ? name : "(null)");
    if (name == NULL || name[0] == '\0' || strlen(name) >= SCRAM_USER_MAX) {
        err_printf(c->errmsg, "%s: a user name (1..%d bytes) is needed", what,
                   SCRAM_USER_MAX - 1);
        return TALLY_INVAL;
    }
    buf_init(&body);
    buf_put_u8(&body, 2); /* remove (store/users.h) */
    buf_put_str(&body, name);
    rv = buf_ok(&body) ? client__security_set(c, PROTO_SECURITY_USERS, &body, what) : TALLY_NOMEM;
    buf_free(&body);
    return rv;
}

struct client__names {
    char **v;
};

static int client__name_item(void *arg, struct rd *item, uint32_t i, uint32_t n)
{
    struct client__names *x = arg;
    char name[PROTO_NAME_MAX];
    if (x->v == NULL && (x->v = calloc(n + 1, sizeof *x->v)) == NULL) {
        return TALLY_NOMEM;
    }
    rd_str(item, name, sizeof name);
    (void)rd_u8(item); /* the mechanisms */
    if (!rd_ok(item)) {
        return TALLY_PROTO;
    }
    return (x->v[i] = strdup(name)) == NULL ? TALLY_NOMEM : 0;
}

TALLY_API int tally_user_list(tally_client *c, char ***names, size_t *n)
{
    static const char what[] = "list users";
    struct client__names x = {NULL};
    size_t k = 0;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    if (names == NULL || n == NULL) {
        return client__null_output(c, what, names == NULL ? "names" : "n");
    }
    *names = NULL;
    *n = 0;
    rv = client__security_list(c, PROTO_SECURITY_USERS, what, client__name_item, &x);
    while (x.v != NULL && x.v[k] != NULL) {
        k++;
    }
    if (rv != 0) {
        tally_user_list_free(x.v, k);
        return rv;
    }
    *names = x.v;
    *n = k;
    return 0;
}

TALLY_API void tally_user_list_free(char **names, size_t n)
{
    if (names == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
}

/* ---- ACLs (docs/security.md) ---- */

static int client__acl_change(tally_client *c, uint8_t op, const struct tally_acl *a,
                              const char *verb)
{
    char what[PROTO_NAME_MAX + 64];
    struct buf body;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "%s ACL", verb);
    if (a == NULL) {
        err_printf(c->errmsg, "%s: the rule is NULL", what);
        return TALLY_INVAL;
    }
    buf_init(&body);
    buf_put_u8(&body, op); /* store/acl.h */
    buf_put_str(&body, a->principal);
    buf_put_u8(&body, (uint8_t)a->resource);
    buf_put_u8(&body, a->prefix ? 2 : 1);
    buf_put_str(&body, a->name);
    buf_put_u8(&body, (uint8_t)a->operation);
    buf_put_u8(&body, a->allow ? 1 : 0);
    rv = buf_ok(&body) ? client__security_set(c, PROTO_SECURITY_ACLS, &body, what) : TALLY_NOMEM;
    buf_free(&body);
    return rv;
}

TALLY_API int tally_acl_add(tally_client *c, const struct tally_acl *acl)
{
    return client__acl_change(c, 1, acl, "add");
}

TALLY_API int tally_acl_remove(tally_client *c, const struct tally_acl *acl)
{
    return client__acl_change(c, 2, acl, "remove");
}

struct client__acls {
    struct tally_acl *v;
    size_t n;
};

static int client__acl_item(void *arg, struct rd *item, uint32_t i, uint32_t n)
{
    struct client__acls *x = arg;
    struct tally_acl *a;
    if (x->v == NULL && (x->v = calloc(n + 1, sizeof *x->v)) == NULL) {
        return TALLY_NOMEM;
    }
    x->n = n;
    a = &x->v[i];
    rd_str(item, a->principal, sizeof a->principal);
    a->resource = rd_u8(item);
    a->prefix = rd_u8(item) == 2;
    rd_str(item, a->name, sizeof a->name);
    a->operation = rd_u8(item);
    a->allow = rd_u8(item);
    return rd_ok(item) ? 0 : TALLY_PROTO;
}

TALLY_API int tally_acl_list(tally_client *c, struct tally_acl **acls, size_t *n)
{
    static const char what[] = "list ACLs";
    struct client__acls x = {NULL, 0};
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    if (acls == NULL || n == NULL) {
        return client__null_output(c, what, acls == NULL ? "acls" : "n");
    }
    *acls = NULL;
    *n = 0;
    rv = client__security_list(c, PROTO_SECURITY_ACLS, what, client__acl_item, &x);
    if (rv != 0) {
        free(x.v);
        return rv;
    }
    *n = x.n;
    *acls = x.v;
    return 0;
}
