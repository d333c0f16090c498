/* The simulated world of test/sim (world.h): clock, random source, event
 * queue, network, and a raft_io with an in-memory disk per server. */
#include "world.h"

#include <assert.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

enum ev_type { EV_TICK = 1, EV_DISK, EV_SENT, EV_DELIVER };
enum disk_op { OP_APPEND = 1, OP_TRUNCATE, OP_SNAP_PUT, OP_SNAP_GET };

/* One queued disk request of a server; completed in order. */
struct disk_req {
    int op;
    struct raft_io_append *append;
    struct raft_entry *entries; /* OP_APPEND: deep copies (each buf its own) */
    unsigned n;
    raft_index index;           /* OP_TRUNCATE */
    unsigned trailing;          /* OP_SNAP_PUT */
    struct raft_snapshot *snap; /* OP_SNAP_PUT: deep copy */
    struct raft_io_snapshot_put *put;
    struct raft_io_snapshot_get *get;
    struct disk_req *next;
};

struct event {
    raft_time time;
    uint64_t seq;               /* order of queueing: ties go first-come */
    int type;
    unsigned node;              /* owner (tick, disk, sent) or destination */
    unsigned from;              /* EV_DELIVER: sender */
    uint64_t gen;               /* the owner's incarnation when queued */
    struct raft_io_send *send;  /* EV_SENT */
    struct raft_message msg;    /* EV_DELIVER: deep copy */
};

/* What survives a crash: raft's persisted state. */
struct durable {
    raft_term term;
    raft_id vote;
    struct raft_snapshot *snap; /* NULL: none; one buffer */
    raft_index start;           /* index of entries[0] */
    struct raft_entry *entries; /* each buf owned */
    size_t n, cap;
};

struct sim_io {
    struct world *w;
    unsigned idx;
    struct raft_io io;
    struct raft *raft;          /* running on it, or NULL */
    uint64_t gen;               /* bumped at each crash */
    raft_id id;
    char address[32];
    unsigned tick_ms;
    raft_io_tick_cb tick;
    raft_io_recv_cb recv;
    struct durable d;
    struct disk_req *queue, *queue_tail; /* pending disk requests, FIFO */
    bool disk_scheduled;        /* an EV_DISK for the queue head is queued */
    raft_time disk_free_at;     /* stalled until */
    raft_io_close_cb close_cb;  /* raft_close in progress: world_crash_io fires it */
    bool crashing;              /* world_crash_io runs: new requests are refused */
    struct raft_io_send **sends; /* sends whose EV_SENT has not fired */
    unsigned n_sends, cap_sends;
};

struct world {
    uint64_t rng;
    raft_time now;
    uint64_t seq;
    struct event **heap;
    size_t n_heap, cap_heap;
    bool link[WORLD_MAX_NODES][WORLD_MAX_NODES];
    unsigned loss_pct, lat_min, lat_max;
    struct sim_io *io[WORLD_MAX_NODES];
    struct world_link_counts sent[WORLD_MAX_NODES][WORLD_MAX_NODES]; /* [from][to] */
};

uint64_t world_rand(struct world *w)
{
    uint64_t z = (w->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t world_range(struct world *w, uint64_t lo, uint64_t hi)
{
    return lo + world_rand(w) % (hi - lo + 1);
}

bool world_chance(struct world *w, unsigned pct)
{
    return world_rand(w) % 100 < pct;
}

raft_time world_now(const struct world *w)
{
    return w->now;
}

/* ---- event heap, ordered by (time, seq) ---- */

static bool ev_before(const struct event *a, const struct event *b)
{
    return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

static void heap_push(struct world *w, struct event *e)
{
    if (w->n_heap == w->cap_heap) {
        w->cap_heap = w->cap_heap ? w->cap_heap * 2 : 256;
        w->heap = realloc(w->heap, w->cap_heap * sizeof *w->heap);
        assert(w->heap != NULL);
    }
    e->seq = w->seq++;
    size_t i = w->n_heap++;
    while (i > 0 && ev_before(e, w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = e;
}

static struct event *heap_pop(struct world *w)
{
    if (w->n_heap == 0) {
        return NULL;
    }
    struct event *top = w->heap[0];
    struct event *last = w->heap[--w->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->n_heap) {
            break;
        }
        if (c + 1 < w->n_heap && ev_before(w->heap[c + 1], w->heap[c])) {
            c++;
        }
        if (!ev_before(w->heap[c], last)) {
            break;
        }
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (w->n_heap > 0) {
        w->heap[i] = last;
    }
    return top;
}

static struct event *ev_new(struct world *w, int type, unsigned node, raft_time at)
{
    struct event *e = calloc(1, sizeof *e);
    assert(e != NULL);
    e->type = type;
    e->node = node;
    e->time = at;
    e->gen = w->io[node]->gen;
    return e;
}

/* ---- copies of raft objects ---- */

static void conf_copy(const struct raft_configuration *src, struct raft_configuration *dst)
{
    raft_configuration_init(dst);
    for (unsigned i = 0; i < src->n; i++) {
        int rv = raft_configuration_add(dst, src->servers[i].id, src->servers[i].address,
                                        src->servers[i].role);
        assert(rv == 0);
        (void)rv;
    }
}

/* Entries sharing one batch allocation, as raft_uv hands them over (raft
 * frees the batch once every entry of it is released). */
static struct raft_entry *entries_batch_copy(const struct raft_entry *src, size_t n)
{
    if (n == 0) {
        return NULL;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += (src[i].buf.len + 7) & ~(size_t)7;
    }
    struct raft_entry *out = raft_malloc(n * sizeof *out);
    uint8_t *batch = raft_malloc(total > 0 ? total : 8);
    assert(out != NULL && batch != NULL);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = src[i];
        out[i].buf.base = batch + pos;
        memcpy(out[i].buf.base, src[i].buf.base, src[i].buf.len);
        out[i].batch = batch;
        pos += (src[i].buf.len + 7) & ~(size_t)7;
    }
    return out;
}

static void entry_copy_own(const struct raft_entry *src, struct raft_entry *dst)
{
    *dst = *src;
    dst->batch = NULL;
    dst->buf.base = raft_malloc(src->buf.len > 0 ? src->buf.len : 8);
    assert(dst->buf.base != NULL);
    memcpy(dst->buf.base, src->buf.base, src->buf.len);
}

/* One snapshot with its buffers joined into one. */
static struct raft_snapshot *snap_copy(const struct raft_snapshot *src)
{
    struct raft_snapshot *s = raft_malloc(sizeof *s);
    assert(s != NULL);
    *s = *src;
    conf_copy(&src->configuration, &s->configuration);
    size_t total = 0;
    for (unsigned i = 0; i < src->n_bufs; i++) {
        total += src->bufs[i].len;
    }
    s->bufs = raft_malloc(sizeof *s->bufs);
    s->bufs[0].base = raft_malloc(total > 0 ? total : 8);
    assert(s->bufs != NULL && s->bufs[0].base != NULL);
    s->bufs[0].len = total;
    size_t pos = 0;
    for (unsigned i = 0; i < src->n_bufs; i++) {
        memcpy((uint8_t *)s->bufs[0].base + pos, src->bufs[i].base, src->bufs[i].len);
        pos += src->bufs[i].len;
    }
    s->n_bufs = 1;
    return s;
}

static void snap_free(struct raft_snapshot *s)
{
    if (s == NULL) {
        return;
    }
    raft_configuration_close(&s->configuration);
    for (unsigned i = 0; i < s->n_bufs; i++) {
        raft_free(s->bufs[i].base);
    }
    raft_free(s->bufs);
    raft_free(s);
}

static void msg_copy(const struct raft_message *src, struct raft_message *dst)
{
    *dst = *src;
    if (src->type == RAFT_APPEND_ENTRIES) {
        dst->append_entries.entries =
            entries_batch_copy(src->append_entries.entries, src->append_entries.n_entries);
    } else if (src->type == RAFT_INSTALL_SNAPSHOT) {
        conf_copy(&src->install_snapshot.conf, &dst->install_snapshot.conf);
        size_t len = src->install_snapshot.data.len;
        dst->install_snapshot.data.base = raft_malloc(len > 0 ? len : 8);
        assert(dst->install_snapshot.data.base != NULL);
        memcpy(dst->install_snapshot.data.base, src->install_snapshot.data.base, len);
    }
}

static void msg_free(struct raft_message *m)
{
    if (m->type == RAFT_APPEND_ENTRIES && m->append_entries.entries != NULL) {
        raft_free(m->append_entries.entries[0].batch);
        raft_free(m->append_entries.entries);
    } else if (m->type == RAFT_INSTALL_SNAPSHOT) {
        raft_configuration_close(&m->install_snapshot.conf);
        raft_free(m->install_snapshot.data.base);
    }
}

/* ---- the durable raft log ---- */

static void durable_drop_front(struct durable *d, size_t k)
{
    if (k > d->n) {
        k = d->n;
    }
    for (size_t i = 0; i < k; i++) {
        raft_free(d->entries[i].buf.base);
    }
    memmove(d->entries, d->entries + k, (d->n - k) * sizeof *d->entries);
    d->n -= k;
    d->start += k;
}

static void durable_truncate(struct durable *d, raft_index index)
{
    while (d->n > 0 && d->start + d->n - 1 >= index) {
        d->n--;
        raft_free(d->entries[d->n].buf.base);
    }
}

static void durable_free(struct durable *d)
{
    durable_truncate(d, 0);
    free(d->entries);
    snap_free(d->snap);
    memset(d, 0, sizeof *d);
}

struct world_link_counts world_sent(const struct world *w, unsigned from, unsigned to)
{
    return w->sent[from][to];
}

raft_index world_persisted_last(struct world *w, unsigned i)
{
    struct durable *d = &w->io[i]->d;
    if (d->n > 0) {
        return d->start + d->n - 1;
    }
    return d->snap != NULL ? d->snap->index : 0;
}

/* ---- disk queue ---- */

static void disk_schedule(struct sim_io *s)
{
    if (s->queue == NULL || s->disk_scheduled) {
        return;
    }
    struct world *w = s->w;
    raft_time at = w->now + world_range(w, 1, 6);
    if (at < s->disk_free_at) {
        at = s->disk_free_at;
    }
    heap_push(w, ev_new(w, EV_DISK, s->idx, at));
    s->disk_scheduled = true;
}

static void disk_push(struct sim_io *s, struct disk_req *r)
{
    assert(!s->crashing); /* raft makes no disk request while it closes */
    if (s->queue_tail != NULL) {
        s->queue_tail->next = r;
    } else {
        s->queue = r;
    }
    s->queue_tail = r;
    disk_schedule(s);
}

static void disk_req_free(struct disk_req *r)
{
    for (unsigned i = 0; i < r->n; i++) {
        raft_free(r->entries[i].buf.base);
    }
    free(r->entries);
    snap_free(r->snap);
    free(r);
}

/* Complete the head of the disk queue: it becomes durable. */
static void disk_complete(struct sim_io *s)
{
    struct disk_req *r = s->queue;
    struct durable *d = &s->d;
    s->queue = r->next;
    if (s->queue == NULL) {
        s->queue_tail = NULL;
    }
    switch (r->op) {
    case OP_APPEND:
        if (d->n + r->n > d->cap) {
            d->cap = (d->n + r->n) * 2;
            d->entries = realloc(d->entries, d->cap * sizeof *d->entries);
            assert(d->entries != NULL);
        }
        if (d->n == 0 && d->start == 0) {
            d->start = d->snap != NULL ? d->snap->index + 1 : 1;
        }
        memcpy(d->entries + d->n, r->entries, r->n * sizeof *r->entries);
        d->n += r->n;
        r->n = 0; /* moved */
        r->append->cb(r->append, 0);
        break;
    case OP_TRUNCATE:
        durable_truncate(d, r->index);
        break;
    case OP_SNAP_PUT: {
        raft_index si = r->snap->index;
        snap_free(d->snap);
        d->snap = r->snap;
        r->snap = NULL;
        if (r->trailing == 0) {
            durable_truncate(d, 0);
            d->start = si + 1;
        } else {
            raft_index keep = si > r->trailing ? si - r->trailing + 1 : 1;
            if (d->n > 0 && keep > d->start) {
                durable_drop_front(d, (size_t)(keep - d->start));
            }
            if (d->n == 0) {
                d->start = si + 1;
            }
        }
        r->put->cb(r->put, 0);
        break;
    }
    case OP_SNAP_GET:
        r->get->cb(r->get, snap_copy(d->snap), 0);
        break;
    }
    disk_req_free(r);
}

/* ---- raft_io methods ---- */

static int io_init(struct raft_io *io, raft_id id, const char *address)
{
    struct sim_io *s = io->impl;
    s->id = id;
    snprintf(s->address, sizeof s->address, "%s", address);
    return 0;
}

static void io_close(struct raft_io *io, raft_io_close_cb cb)
{
    /* world_crash_io finishes the close; raft_close only starts it. */
    struct sim_io *s = io->impl;
    s->close_cb = cb;
}

static int io_load(struct raft_io *io, raft_term *term, raft_id *vote,
                   struct raft_snapshot **snapshot, raft_index *start_index,
                   struct raft_entry *entries[], size_t *n_entries)
{
    struct sim_io *s = io->impl;
    struct durable *d = &s->d;
    *term = d->term;
    *vote = d->vote;
    *snapshot = d->snap != NULL ? snap_copy(d->snap) : NULL;
    *start_index = d->n > 0 ? d->start : (d->snap != NULL ? d->snap->index + 1 : 1);
    *entries = entries_batch_copy(d->entries, d->n);
    *n_entries = d->n;
    return 0;
}

static int io_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv)
{
    struct sim_io *s = io->impl;
    s->tick_ms = msecs;
    s->tick = tick;
    s->recv = recv;
    heap_push(s->w, ev_new(s->w, EV_TICK, s->idx, s->w->now + msecs));
    return 0;
}

static int io_bootstrap(struct raft_io *io, const struct raft_configuration *conf)
{
    struct sim_io *s = io->impl;
    struct durable *d = &s->d;
    if (d->term != 0 || d->n > 0 || d->snap != NULL) {
        return RAFT_CANTBOOTSTRAP;
    }
    struct raft_entry e = {0};
    int rv = raft_configuration_encode(conf, &e.buf);
    if (rv != 0) {
        return rv;
    }
    e.term = 1;
    e.type = RAFT_CHANGE;
    d->entries = malloc(8 * sizeof *d->entries);
    assert(d->entries != NULL);
    d->cap = 8;
    d->entries[0] = e;
    d->n = 1;
    d->start = 1;
    d->term = 1;
    return 0;
}

static int io_recover(struct raft_io *io, const struct raft_configuration *conf)
{
    (void)io;
    (void)conf;
    return RAFT_IOERR; /* tally never forces a configuration */
}

static int io_set_term(struct raft_io *io, raft_term term)
{
    struct sim_io *s = io->impl;
    s->d.term = term;
    s->d.vote = 0;
    return 0;
}

static int io_set_vote(struct raft_io *io, raft_id id)
{
    struct sim_io *s = io->impl;
    s->d.vote = id;
    return 0;
}

static int io_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m,
                   raft_io_send_cb cb)
{
    struct sim_io *s = io->impl;
    struct world *w = s->w;
    unsigned to = WORLD_MAX_NODES;
    if (s->crashing) {
        return RAFT_CANCELED;
    }
    req->cb = cb;
    for (unsigned j = 0; j < WORLD_MAX_NODES; j++) {
        if (w->io[j] != NULL && w->io[j]->id == m->server_id) {
            to = j;
        }
    }
    /* The write completes at once (the socket buffer took it). */
    struct event *sent = ev_new(w, EV_SENT, s->idx, w->now);
    sent->send = req;
    heap_push(w, sent);
    if (s->n_sends == s->cap_sends) {
        s->cap_sends = s->cap_sends ? s->cap_sends * 2 : 16;
        s->sends = realloc(s->sends, s->cap_sends * sizeof *s->sends);
        assert(s->sends != NULL);
    }
    s->sends[s->n_sends++] = req;
    if (to < WORLD_MAX_NODES) {
        struct world_link_counts *c = &w->sent[s->idx][to];
        c->appends += m->type == RAFT_APPEND_ENTRIES;
        c->with_entries += m->type == RAFT_APPEND_ENTRIES && m->append_entries.n_entries > 0;
        c->installs += m->type == RAFT_INSTALL_SNAPSHOT;
    }
    if (to < WORLD_MAX_NODES && !world_chance(w, w->loss_pct)) {
        struct event *e = ev_new(w, EV_DELIVER, to, w->now + world_range(w, w->lat_min, w->lat_max));
        e->from = s->idx;
        e->gen = w->io[to]->gen;
        msg_copy(m, &e->msg);
        e->msg.server_id = s->id;
        e->msg.server_address = s->address;
        heap_push(w, e);
    }
    return 0;
}

static int io_append(struct raft_io *io, struct raft_io_append *req,
                     const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    struct sim_io *s = io->impl;
    struct disk_req *r = calloc(1, sizeof *r);
    assert(r != NULL);
    req->cb = cb;
    r->op = OP_APPEND;
    r->append = req;
    r->n = n;
    r->entries = calloc(n > 0 ? n : 1, sizeof *r->entries);
    assert(r->entries != NULL);
    for (unsigned i = 0; i < n; i++) {
        entry_copy_own(&entries[i], &r->entries[i]);
    }
    disk_push(s, r);
    return 0;
}

static int io_truncate(struct raft_io *io, raft_index index)
{
    struct sim_io *s = io->impl;
    struct disk_req *r = calloc(1, sizeof *r);
    assert(r != NULL);
    r->op = OP_TRUNCATE;
    r->index = index;
    disk_push(s, r);
    return 0;
}

static int io_snapshot_put(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    struct sim_io *s = io->impl;
    struct disk_req *r = calloc(1, sizeof *r);
    assert(r != NULL);
    req->cb = cb;
    r->op = OP_SNAP_PUT;
    r->put = req;
    r->trailing = trailing;
    r->snap = snap_copy(snapshot);
    disk_push(s, r);
    return 0;
}

static int io_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                           raft_io_snapshot_get_cb cb)
{
    struct sim_io *s = io->impl;
    struct disk_req *r = calloc(1, sizeof *r);
    assert(r != NULL);
    req->cb = cb;
    r->op = OP_SNAP_GET;
    r->get = req;
    disk_push(s, r);
    return 0;
}

static raft_time io_time(struct raft_io *io)
{
    struct sim_io *s = io->impl;
    return s->w->now;
}

static int io_random(struct raft_io *io, int min, int max)
{
    struct sim_io *s = io->impl;
    return min + (int)(world_rand(s->w) % (uint64_t)(max - min > 0 ? max - min : 1));
}

struct raft_io *world_io(struct world *w, unsigned i)
{
    struct sim_io *s = w->io[i];
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        assert(s != NULL);
        s->w = w;
        s->idx = i;
        w->io[i] = s;
    }
    /* Fresh methods at every (re)start: raft_init fills nothing of ours. */
    memset(&s->io, 0, sizeof s->io);
    s->io.version = 2;
    s->io.capacity = 0xffff;
    s->io.impl = s;
    s->io.init = io_init;
    s->io.close = io_close;
    s->io.load = io_load;
    s->io.start = io_start;
    s->io.bootstrap = io_bootstrap;
    s->io.recover = io_recover;
    s->io.set_term = io_set_term;
    s->io.set_vote = io_set_vote;
    s->io.send = io_send;
    s->io.append = io_append;
    s->io.truncate = io_truncate;
    s->io.snapshot_put = io_snapshot_put;
    s->io.snapshot_get = io_snapshot_get;
    s->io.time = io_time;
    s->io.random = io_random;
    return &s->io;
}

void world_attach(struct world *w, unsigned i, struct raft *r)
{
    w->io[i]->raft = r;
}

static void sends_forget(struct sim_io *s, struct raft_io_send *req)
{
    for (unsigned k = 0; k < s->n_sends; k++) {
        if (s->sends[k] == req) {
            s->sends[k] = s->sends[--s->n_sends];
            return;
        }
    }
    assert(!"unknown send");
}

void world_crash_io(struct world *w, unsigned i)
{
    struct sim_io *s = w->io[i];
    s->crashing = true;
    s->gen++; /* queued ticks, disk completions and sends are void now */
    s->disk_scheduled = false;
    /* Not durable: cancelled, as raft_uv does on close. */
    while (s->queue != NULL) {
        struct disk_req *r = s->queue;
        s->queue = r->next;
        switch (r->op) {
        case OP_APPEND:
            r->append->cb(r->append, RAFT_CANCELED);
            break;
        case OP_SNAP_PUT:
            r->put->cb(r->put, RAFT_CANCELED);
            break;
        case OP_SNAP_GET:
            /* raft_uv finishes a snapshot read even while it closes (its
             * thread pool work completes), and libraft's legacy layer
             * frees fields it never set if the read fails. */
            r->get->cb(r->get, snap_copy(s->d.snap), 0);
            break;
        default:
            break;
        }
        disk_req_free(r);
    }
    s->queue_tail = NULL;
    while (s->n_sends > 0) {
        struct raft_io_send *req = s->sends[--s->n_sends];
        req->cb(req, RAFT_CANCELED);
    }
    raft_io_close_cb cb = s->close_cb;
    s->close_cb = NULL;
    s->raft = NULL;
    s->crashing = false;
    if (cb != NULL) {
        cb(&s->io);
    }
}

void world_abandon_io(struct world *w, unsigned i)
{
    struct sim_io *s = w->io[i];
    s->gen++;
    s->disk_scheduled = false;
    while (s->queue != NULL) {
        struct disk_req *r = s->queue;
        s->queue = r->next;
        disk_req_free(r);
    }
    s->queue_tail = NULL;
    s->n_sends = 0;
    s->close_cb = NULL;
    s->crashing = false;
    s->raft = NULL;
}

/* ---- network and faults ---- */

void world_link(struct world *w, unsigned i, unsigned j, bool up)
{
    w->link[i][j] = up;
}

bool world_link_up(const struct world *w, unsigned i, unsigned j)
{
    return w->link[i][j];
}

void world_net(struct world *w, unsigned loss_pct, unsigned lat_min, unsigned lat_max)
{
    w->loss_pct = loss_pct;
    w->lat_min = lat_min;
    w->lat_max = lat_max;
}

void world_disk_stall(struct world *w, unsigned i, raft_time until)
{
    w->io[i]->disk_free_at = until;
}

/* ---- stepping ---- */

bool world_step(struct world *w)
{
    struct event *e = heap_pop(w);
    if (e == NULL) {
        return false;
    }
    struct sim_io *s = w->io[e->node];
    if (e->time > w->now) {
        w->now = e->time;
    }
    bool live = s != NULL && s->raft != NULL && e->gen == s->gen;
    switch (e->type) {
    case EV_TICK:
        if (live) {
            heap_push(w, ev_new(w, EV_TICK, e->node, w->now + s->tick_ms));
            s->tick(&s->io);
        }
        break;
    case EV_DISK:
        if (live) {
            s->disk_scheduled = false;
            if (s->queue != NULL && w->now < s->disk_free_at) {
                disk_schedule(s); /* stalled: try again when it frees */
            } else if (s->queue != NULL) {
                disk_complete(s);
                disk_schedule(s);
            }
        }
        break;
    case EV_SENT:
        if (live) {
            sends_forget(s, e->send);
            e->send->cb(e->send, 0);
        }
        break;
    case EV_DELIVER:
        if (live && w->link[e->from][e->node]) {
            s->recv(&s->io, &e->msg); /* raft owns the message's memory now */
        } else {
            msg_free(&e->msg);
        }
        break;
    }
    free(e);
    for (unsigned i = 0; i < WORLD_MAX_NODES; i++) {
        if (w->io[i] != NULL && w->io[i]->raft != NULL) {
            LegacyFireCompletedRequests(w->io[i]->raft);
        }
    }
    return true;
}

struct world *world_new(uint64_t seed)
{
    struct world *w = calloc(1, sizeof *w);
    assert(w != NULL);
    w->rng = seed * 0x2545f4914f6cdd1dull + 1;
    w->now = 1000;
    w->lat_min = 1;
    w->lat_max = 10;
    for (unsigned i = 0; i < WORLD_MAX_NODES; i++) {
        for (unsigned j = 0; j < WORLD_MAX_NODES; j++) {
            w->link[i][j] = true;
        }
    }
    return w;
}

void world_free(struct world *w)
{
    struct event *e;
    while ((e = heap_pop(w)) != NULL) {
        if (e->type == EV_DELIVER) {
            msg_free(&e->msg);
        }
        free(e);
    }
    free(w->heap);
    for (unsigned i = 0; i < WORLD_MAX_NODES; i++) {
        struct sim_io *s = w->io[i];
        if (s == NULL) {
            continue;
        }
        while (s->queue != NULL) {
            struct disk_req *r = s->queue;
            s->queue = r->next;
            disk_req_free(r);
        }
        durable_free(&s->d);
        free(s->sends);
        free(s);
    }
    free(w);
}
