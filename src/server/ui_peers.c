/* The console's view of the other members; see ui_peers.h.
 *
 * Happy path, per member and tick: connect (once), send METADATA, read the
 * answer frame, keep it with the time it arrived. Failure modes: a refused
 * or broken connection, an error frame or an unreadable answer drop the
 * connection (the next tick reconnects); no answer within the timeout
 * drops it too. A dropped member shows as unreachable, with its last
 * answer's numbers, until it answers again.
 *
 * With TLS on the client port (tls_set given), peerdial.h dials: the TCP stream
 * goes to a client tlspipe (repl/tlspipe.h) with the node's own client
 * context (tls_set.peers_out: its certificate, the cluster's CA), the
 * member's host as the name its certificate must carry; the question and
 * the answer then go through the plaintext end of the pipe. The member
 * sees our certificate, so it authenticates us as our node's name (auth =
 * required), and METADATA needs no ACL. A failed handshake shows the
 * member as unreachable and is logged once per streak of failures, not
 * once per tick. A SIGHUP that loads new certificates makes the next tick
 * reconnect with them. */
#include "server/ui_peers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/logger.h"
#include "lib/tls.h"
#include "proto/proto.h"
#include "repl/tlspipe.h"
#include "server/cfg.h"
#include "server/peerdial.h"

struct ui_peers;

/* A connection: dialled by peerdial (plaintext or TLS); io is the
 * stream it handed back, NULL until then. */
struct ui_peers__conn {
    struct ui_peers *p;            /* set until the conn is freed */
    bool dropped;                  /* the slot let go of it */
    struct peerdial *dial;
    uv_stream_t *io;               /* NULL until connected (and TLS is up) */
    uv_write_t write_req;
    struct buf out, in;
    bool connected;
    bool waiting;                  /* a request (or the connect) is out */
    uint32_t request_id;
    uint64_t sent_mono;            /* uv_hrtime of the question */
};

struct ui_peers__slot {
    uint64_t id;                   /* 0: free */
    char addr[STORE_ADDR_MAX];     /* client address of the open connection */
    struct ui_peers__conn *conn;
    bool have;                     /* an answer arrived once */
    bool warned;                   /* a TLS failure was logged since the last answer */
    bool fresh;                    /* the latest question was answered */
    uint64_t answered_mono;
    struct proto_metadata_resp md;
};

struct ui_peers {
    uv_loop_t *loop;
    struct store *store;
    struct node *node;
    const struct tls_set *tls;     /* NULL: plaintext */
    struct tlspipe_group pipes;    /* TLS connections, for ui_peers_close */
    uv_timer_t timer;
    unsigned handles;              /* the timer and live connections */
    bool closing;
    uint64_t wanted_mono;          /* last cluster request (0: never) */
    struct ui_peers__slot slots[NODE_MAX_PEERS];
};

static void ui_peers__maybe_free(struct ui_peers *p)
{
    if (p->closing && p->handles == 0) {
        free(p);
    }
}

static void ui_peers__conn_closed(void *arg)
{
    struct ui_peers__conn *c = arg;
    struct ui_peers *p = c->p;
    buf_free(&c->out);
    buf_free(&c->in);
    free(c);
    p->handles--;
    ui_peers__maybe_free(p);
}

static void ui_peers__drop(struct ui_peers__slot *s)
{
    struct ui_peers__conn *c = s->conn;
    s->fresh = false;
    if (c == NULL) {
        return;
    }
    s->conn = NULL;
    c->dropped = true;
    /* In a TLS handshake, the dial waits for it to end (its timeout, or
     * the group's close at shutdown). */
    peerdial_close(c->dial, ui_peers__conn_closed, c);
}

static struct ui_peers__slot *ui_peers__slot_of(struct ui_peers__conn *c)
{
    if (c->dropped) {
        return NULL;
    }
    for (unsigned i = 0; i < NODE_MAX_PEERS; i++) {
        if (c->p->slots[i].conn == c) {
            return &c->p->slots[i];
        }
    }
    return NULL;
}

static void ui_peers__on_write(uv_write_t *req, int status)
{
    struct ui_peers__conn *c = req->data;
    struct ui_peers__slot *s = ui_peers__slot_of(c);
    if (status != 0 && s != NULL) {
        ui_peers__drop(s);
    }
}

static void ui_peers__send(struct ui_peers__slot *s)
{
    struct ui_peers__conn *c = s->conn;
    struct proto_metadata_req m = {0};
    c->out.len = 0;
    size_t start = proto_begin_frame(&c->out, PROTO_METADATA, 0, ++c->request_id);
    proto_put_metadata_req(&c->out, &m);
    proto_end_frame(&c->out, start);
    if (!buf_ok(&c->out)) {
        ui_peers__drop(s);
        return;
    }
    c->waiting = true;
    c->sent_mono = uv_hrtime();
    uv_buf_t ub = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
    c->write_req.data = c;
    if (uv_write(&c->write_req, c->io, &ub, 1, ui_peers__on_write) != 0) {
        ui_peers__drop(s);
    }
}

static void ui_peers__on_frame(struct ui_peers__slot *s, const struct proto_frame *f,
                               const uint8_t *body, size_t len)
{
    struct ui_peers__conn *c = s->conn;
    struct proto_metadata_resp md;
    struct rd r;
    rd_init(&r, body, len);
    /* The member list that follows is not needed: only the member's own
     * numbers are shown for it (the configuration comes from this node). */
    if (!c->waiting || f->request_id != c->request_id || f->type != PROTO_METADATA ||
        (f->flags & PROTO_FLAG_ERROR) || proto_get_metadata_resp(&r, &md) != 0 ||
        md.node_id != s->id) {
        ui_peers__drop(s); /* an error, a stranger at that address, or garbage */
        return;
    }
    c->waiting = false;
    s->warned = false; /* a later TLS failure is news again */
    s->md = md;
    s->have = true;
    s->fresh = true;
    s->answered_mono = uv_hrtime();
}

static void ui_peers__alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    struct ui_peers__conn *c = h->data;
    size_t want = suggested < 4096 ? 4096 : suggested;
    uint8_t *b = buf_reserve(&c->in, want);
    *out = uv_buf_init((char *)b, b != NULL ? (unsigned)want : 0);
}

static void ui_peers__on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *ub)
{
    struct ui_peers__conn *c = st->data;
    struct ui_peers__slot *s = ui_peers__slot_of(c);
    (void)ub;
    if (s == NULL) {
        return;
    }
    if (n < 0) {
        ui_peers__drop(s);
        return;
    }
    buf_commit(&c->in, (size_t)n);
    while (s->conn == c && c->in.len >= PROTO_HEADER_SIZE) {
        struct proto_frame f;
        /* A METADATA answer is small: a member that sends more than 64 KiB
         * is not answering what was asked. */
        if (proto_decode_frame(c->in.data, c->in.len, 1u << 16, &f) != 0) {
            ui_peers__drop(s);
            return;
        }
        size_t total = (size_t)f.frame_len + 4;
        if (c->in.len < total) {
            return;
        }
        ui_peers__on_frame(s, &f, c->in.data + PROTO_HEADER_SIZE, total - PROTO_HEADER_SIZE);
        if (s->conn != c) {
            return;
        }
        memmove(c->in.data, c->in.data + total, c->in.len - total);
        c->in.len -= total;
    }
}

/* The stream is ready for the question: @c->io set. */
static void ui_peers__ready(struct ui_peers__slot *s)
{
    struct ui_peers__conn *c = s->conn;
    if (uv_read_start(c->io, ui_peers__alloc, ui_peers__on_read) != 0) {
        ui_peers__drop(s);
        return;
    }
    c->connected = true;
    ui_peers__send(s);
}

static void ui_peers__on_ready(void *arg, struct peerdial *d, uv_stream_t *stream,
                               const char *why)
{
    struct ui_peers__conn *c = arg;
    struct ui_peers__slot *s = ui_peers__slot_of(c);
    (void)d;
    if (s == NULL || c->p->closing) {
        return;
    }
    if (stream == NULL) {
        /* A member that fails the TLS handshake is news, once until it
         * answers again. */
        if (c->p->tls != NULL && strncmp(why, "TLS", 3) == 0 && !s->warned) {
            s->warned = true;
            TLOG_WARN("ui", "console: member %llu at %s: %s (shown as unreachable until it "
                            "answers)",
                      (unsigned long long)s->id, s->addr, why);
        }
        ui_peers__drop(s);
        return;
    }
    c->io = stream;
    stream->data = c;
    ui_peers__ready(s);
}

static void ui_peers__connect(struct ui_peers *p, struct ui_peers__slot *s)
{
    const struct store_member *m = store_member_find(p->store, s->id);
    struct ui_peers__conn *c;
    char why[ERR_MSG_SIZE];
    if (m == NULL || (c = calloc(1, sizeof *c)) == NULL) {
        s->fresh = false;
        return;
    }
    snprintf(s->addr, sizeof s->addr, "%s", m->client_addr);
    c->p = p;
    buf_init(&c->out);
    buf_init(&c->in);
    /* The handshake's timeout is below the answer's, so that a member
     * that takes the connection but not the handshake (a stopped process)
     * is reported by the pipe, with its reason, before the tick gives up
     * on it. */
    c->dial = peerdial_start(p->loop, m->client_addr, p->tls, &p->pipes,
                             UI_PEERS_TIMEOUT_MS * 3 / 4, ui_peers__on_ready, c, why);
    if (c->dial == NULL) {
        buf_free(&c->out);
        buf_free(&c->in);
        free(c);
        s->fresh = false;
        return;
    }
    p->handles++;
    s->conn = c;
    c->waiting = true; /* the connect counts against the timeout */
    c->sent_mono = uv_hrtime();
}

/* Make the slots follow the Raft configuration: a slot per member but
 * this node, none for a removed member. */
static void ui_peers__sync_slots(struct ui_peers *p)
{
    struct node_member members[NODE_MAX_PEERS];
    unsigned n = node_members(p->node, members, NODE_MAX_PEERS);
    for (unsigned i = 0; i < NODE_MAX_PEERS; i++) {
        struct ui_peers__slot *s = &p->slots[i];
        bool still = false;
        for (unsigned j = 0; j < n && s->id != 0; j++) {
            still = still || members[j].id == s->id;
        }
        if (s->id != 0 && (!still || s->id == node_id(p->node))) {
            ui_peers__drop(s);
            memset(s, 0, sizeof *s);
        }
    }
    for (unsigned j = 0; j < n; j++) {
        bool have = members[j].id == node_id(p->node);
        for (unsigned i = 0; i < NODE_MAX_PEERS && !have; i++) {
            have = p->slots[i].id == members[j].id;
        }
        for (unsigned i = 0; i < NODE_MAX_PEERS && !have; i++) {
            if (p->slots[i].id == 0) {
                p->slots[i].id = members[j].id;
                have = true;
            }
        }
    }
}

static void ui_peers__tick(uv_timer_t *t)
{
    struct ui_peers *p = t->data;
    uint64_t now = uv_hrtime();
    if (p->closing) {
        return;
    }
    bool watched = p->wanted_mono != 0 && now - p->wanted_mono < UI_PEERS_LINGER_MS * 1000000ull;
    ui_peers__sync_slots(p);
    for (unsigned i = 0; i < NODE_MAX_PEERS; i++) {
        struct ui_peers__slot *s = &p->slots[i];
        if (s->id == 0) {
            continue;
        }
        if (!watched) {
            ui_peers__drop(s); /* nobody looks: hold no connections */
            s->fresh = false;
            continue;
        }
        const struct store_member *m = store_member_find(p->store, s->id);
        if (s->conn != NULL && ((s->conn->waiting &&
                                 now - s->conn->sent_mono > UI_PEERS_TIMEOUT_MS * 1000000ull) ||
                                m == NULL || strcmp(m->client_addr, s->addr) != 0 ||
                                peerdial_ctx_stale(s->conn->dial, p->tls))) {
            /* No answer in time, the member moved (member replace), or a
             * SIGHUP loaded new certificates: ask again with them. */
            ui_peers__drop(s);
        }
        if (s->conn == NULL) {
            ui_peers__connect(p, s);
        } else if (s->conn->connected && !s->conn->waiting) {
            ui_peers__send(s);
        }
    }
}

int ui_peers_create(uv_loop_t *loop, struct store *store, struct node *node,
                    const struct tls_set *tls, struct ui_peers **out)
{
    struct ui_peers *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return TALLY_NOMEM;
    }
    p->loop = loop;
    p->store = store;
    p->node = node;
    p->tls = tls;
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    p->handles = 1;
    uv_timer_start(&p->timer, ui_peers__tick, UI_PEERS_INTERVAL_MS, UI_PEERS_INTERVAL_MS);
    *out = p;
    return 0;
}

void ui_peers_wanted(struct ui_peers *p)
{
    bool asleep = p->wanted_mono == 0 ||
                  uv_hrtime() - p->wanted_mono >= UI_PEERS_LINGER_MS * 1000000ull;
    p->wanted_mono = uv_hrtime();
    if (asleep) {
        /* Ask at once rather than a tick later; until they answer, the
         * members show as not asked yet. */
        for (unsigned i = 0; i < NODE_MAX_PEERS; i++) {
            p->slots[i].have = false;
        }
        ui_peers__tick(&p->timer);
    }
}

unsigned ui_peers_get(struct ui_peers *p, struct ui_peers_member *out, unsigned cap)
{
    struct node_member members[NODE_MAX_PEERS];
    unsigned n = node_members(p->node, members, NODE_MAX_PEERS), k = 0;
    uint64_t now = uv_hrtime(), self = node_id(p->node);
    static const int tally_role_of_node[] = {
        [NODE_UNAVAILABLE] = 4 /* TALLY_ROLE_UNAVAILABLE */, [NODE_FOLLOWER] = 1,
        [NODE_CANDIDATE] = 2, [NODE_LEADER] = 3,
    };
    for (unsigned j = 0; j < n && k < cap; j++) {
        struct ui_peers_member *m = &out[k++];
        const struct store_member *sm = store_member_find(p->store, members[j].id);
        memset(m, 0, sizeof *m);
        m->id = members[j].id;
        snprintf(m->client, sizeof m->client, "%s", sm != NULL ? sm->client_addr : "");
        snprintf(m->raft, sizeof m->raft, "%s", members[j].raft_addr);
        m->voter = members[j].voter;
        m->spare = members[j].spare;
        m->answered_ms_ago = UINT64_MAX;
        if (m->id == self) {
            int role = node_role(p->node);
            m->self = m->reachable = m->asked = true;
            m->role = role >= 0 && role <= NODE_LEADER ? tally_role_of_node[role] : 0;
            m->term = node_term(p->node);
            m->commit_index = node_commit_index(p->node);
            m->applied_index = node_applied_index(p->node);
            m->last_index = node_last_index(p->node);
            m->leader_id = node_leader_id(p->node);
            m->answered_ms_ago = 0;
            continue;
        }
        for (unsigned i = 0; i < NODE_MAX_PEERS; i++) {
            const struct ui_peers__slot *s = &p->slots[i];
            if (s->id != m->id || !s->have) {
                continue;
            }
            m->asked = true;
            m->reachable = s->fresh;
            m->role = s->md.role;
            m->term = s->md.term;
            m->commit_index = s->md.commit_index;
            m->applied_index = s->md.applied_index;
            m->last_index = s->md.last_index;
            m->leader_id = s->md.leader_id;
            m->answered_ms_ago = (now - s->answered_mono) / 1000000;
        }
    }
    return k;
}

static void ui_peers__timer_closed(uv_handle_t *h)
{
    struct ui_peers *p = h->data;
    p->handles--;
    ui_peers__maybe_free(p);
}

void ui_peers_close(struct ui_peers *p)
{
    if (p == NULL || p->closing) {
        return;
    }
    p->closing = true;
    for (unsigned i = 0; i < NODE_MAX_PEERS; i++) {
        ui_peers__drop(&p->slots[i]);
    }
    tlspipe_group_close(&p->pipes); /* handshakes under way end now, their conns with them */
    uv_close((uv_handle_t *)&p->timer, ui_peers__timer_closed);
}
