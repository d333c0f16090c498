/* Deterministic simulation of a three-node tally cluster (issue 15).
 *
 * Each node runs tally's own FSM adapter (repl/fsm.c), store and logs over
 * its own data directory, with raft on the simulated world (world.h). A
 * seeded scheduler interleaves raft events with a workload, faults and the
 * work tallyd runs off the loop (compaction, backfill), all at steps the
 * seed chooses; check.c checks invariants after each step and at the end.
 *
 *   sim --seeds A-B [--steps N] [--bug NAME] [--quiet]   one line per failing seed
 *   sim --seed N --trace [--steps N] [--bug NAME]         replay one, every step printed
 *
 * Exit status: 0 no violation, 1 violations, 2 usage. */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/batch.h"
#include "lib/err.h"
#include "lib/logger.h"
#include "lib/testbug.h"
#include "repl/snapguard.h"
#include "log/log.h"
#include "sim.h"
#include "store/cmd.h"
#include "tally.h"

/* ---------------------------------------------------------------- output */

void sim_trace(struct sim *s, const char *fmt, ...)
{
    if (!s->trace) {
        return;
    }
    va_list ap;
    printf("[%6u t=%7llu] ", s->step, (unsigned long long)world_now(s->w));
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

void sim_violation(struct sim *s, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (s->violations++ == 0) {
        snprintf(s->first_violation, sizeof s->first_violation, "step %u: %s", s->step, msg);
    }
    if (s->trace) {
        printf("[%6u t=%7llu] VIOLATION: %s\n", s->step, (unsigned long long)world_now(s->w),
               msg);
    }
}

/* ----------------------------------------------------------------- nodes */

/* The raft_io of each node goes through tally's snapshot guard, as tallyd's
 * does (repl/snapguard.h); --no-snapguard leaves it out, to show the crash
 * it prevents. */
static bool use_snapguard = true;
static struct sim *cur_sim;

static struct sim_node *node_of(struct raft_io *io)
{
    for (unsigned i = 0; i < SIM_NODES; i++) {
        if (cur_sim->nodes[i].io == io) {
            return &cur_sim->nodes[i];
        }
    }
    abort();
}

static int node_snapshot_put(struct raft_io *io, unsigned trailing,
                             struct raft_io_snapshot_put *req, const struct raft_snapshot *snap,
                             raft_io_snapshot_put_cb cb)
{
    struct sim_node *n = node_of(io);
    return snapguard_snapshot_put(&n->guard, n->io_snapshot_put, io, trailing, req, snap, cb);
}

static void node_recv(struct raft_io *io, struct raft_message *msg)
{
    struct sim_node *n = node_of(io);
    uint64_t anchored = n->guard.anchored;
    if (snapguard_recv(&n->guard, msg)) {
        sim_trace(cur_sim, "node %u: InstallSnapshot dropped by the snapshot guard", n->idx + 1);
        return;
    }
    if (n->guard.anchored != anchored) {
        sim_trace(cur_sim, "node %u: AppendEntries anchored at its snapshot by the guard",
                  n->idx + 1);
    }
    n->raft_recv(io, msg);
}

static int node_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                             raft_io_snapshot_get_cb cb)
{
    struct sim_node *n = node_of(io);
    return snapguard_snapshot_get(&n->guard, n->io_snapshot_get, io, req, cb);
}

static int node_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m,
                     raft_io_send_cb cb)
{
    struct sim_node *n = node_of(io);
    return snapguard_send(&n->guard, n->io_send, io, req, m, cb);
}

static int node_load(struct raft_io *io, raft_term *term, raft_id *vote,
                     struct raft_snapshot **snapshot, raft_index *start, struct raft_entry **entries,
                     size_t *n_entries)
{
    struct sim_node *n = node_of(io);
    int rv = n->io_load(io, term, vote, snapshot, start, entries, n_entries);
    if (rv == 0) {
        snapguard_loaded(&n->guard, *snapshot);
    }
    return rv;
}

static int node_io_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                         raft_io_recv_cb recv)
{
    struct sim_node *n = node_of(io);
    n->raft_recv = recv;
    return n->io_start(io, msecs, tick, node_recv);
}

/* With --trace, every apply is printed: the node, the index, and where
 * each item of an APPEND went. */
static int (*fsm_apply_real)(struct raft_fsm *, const struct raft_buffer *, void **);

static int node_apply_traced(struct raft_fsm *rf, const struct raft_buffer *buf, void **result)
{
    struct fsm *f = rf->data;
    uint64_t index = raft_last_applied(f->raft) + 1;
    int rv = fsm_apply_real(rf, buf, result);
    struct store_result *res = f->results[index % FSM_RESULTS].index == index
                                   ? f->results[index % FSM_RESULTS].res
                                   : NULL;
    for (unsigned i = 0; i < SIM_NODES; i++) {
        if (&cur_sim->nodes[i].fsm == f && res != NULL) {
            char what[256] = "";
            size_t used = 0;
            for (uint32_t k = 0; k < res->n && used < sizeof what - 48; k++) {
                used += (size_t)snprintf(what + used, sizeof what - used, " [%d%s @%llu+%u]",
                                         res->items[k].code, res->items[k].duplicate ? " dup" : "",
                                         (unsigned long long)res->items[k].base_offset,
                                         res->items[k].count);
            }
            sim_trace(cur_sim, "node %u applied %llu:%s", i + 1, (unsigned long long)index, what);
        }
    }
    return rv;
}

static void node_fatal(void *arg, const char *why)
{
    struct sim_node *n = arg;
    fprintf(stderr, "sim: node %u stopped: %s\n", n->idx + 1, why);
}

static void node_raft_closed(struct raft *r)
{
    free(r);
}

static void node_start(struct sim *s, struct sim_node *n, bool bootstrap)
{
    char errmsg[ERR_MSG_SIZE] = "";
    struct log_config lc;
    log_config_init(&lc);
    lc.segment_bytes = 4096; /* many segments: rolls, retention, compaction */
    int rv = store_open(n->dir, &lc, &n->store, errmsg);
    if (rv != 0) {
        sim_violation(s, "node %u: store_open: %s", n->idx + 1, errmsg);
        return;
    }
    check_open(s, n);
    fsm_init(&n->fsm, n->store, node_fatal, n);
    if (s->trace) {
        fsm_apply_real = n->fsm.raft_fsm.apply;
        n->fsm.raft_fsm.apply = node_apply_traced;
    }
    n->raft = calloc(1, sizeof *n->raft);
    struct raft_io *io = world_io(s->w, n->idx);
    n->io = io;
    memset(&n->guard, 0, sizeof n->guard);
    if (use_snapguard) {
        n->io_snapshot_put = io->snapshot_put;
        io->snapshot_put = node_snapshot_put;
        n->io_start = io->start;
        io->start = node_io_start;
        n->io_snapshot_get = io->snapshot_get;
        io->snapshot_get = node_snapshot_get;
        n->io_send = io->send;
        io->send = node_send;
        n->io_load = io->load;
        io->load = node_load;
    }
    rv = raft_init(n->raft, io, &n->fsm.raft_fsm, n->id, n->addr);
    if (rv != 0) {
        sim_violation(s, "node %u: raft_init: %s", n->idx + 1, raft_strerror(rv));
        return;
    }
    n->fsm.raft = n->raft;
    raft_set_election_timeout(n->raft, 1000);
    raft_set_heartbeat_timeout(n->raft, 100);
    raft_set_install_snapshot_timeout(n->raft, 10000); /* as node.c */
    raft_set_snapshot_threshold(n->raft, s->snapshot_threshold);
    raft_set_snapshot_trailing(n->raft, s->snapshot_trailing);
    raft_set_pre_vote(n->raft, true);
    raft_set_capacity_threshold(n->raft, 0);
    if (bootstrap) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        for (unsigned i = 0; i < SIM_NODES; i++) {
            raft_configuration_add(&conf, s->nodes[i].id, s->nodes[i].addr, RAFT_VOTER);
        }
        rv = raft_bootstrap(n->raft, &conf);
        raft_configuration_close(&conf);
        if (rv != 0) {
            sim_violation(s, "node %u: bootstrap: %s", n->idx + 1, raft_strerror(rv));
        }
    }
    world_attach(s->w, n->idx, n->raft);
    rv = raft_start(n->raft);
    if (rv != 0) {
        sim_violation(s, "node %u: raft_start: %s", n->idx + 1, raft_strerror(rv));
        return;
    }
    n->fsm.started = true;
    n->up = true;
    n->last_digest_index = 0;
}

static void node_compact_drop(struct sim_node *n)
{
    if (n->job != NULL) {
        store_compact_cancel(n->job);
        store_compact_free(n->job);
        n->job = NULL;
        n->job_stage = 0;
    }
}

/* SIGKILL, optionally with power loss (unsynced bytes of tally's files go)
 * and torn or flipped tails (the fault suite's "corrupt"). Raft's
 * requests not yet durable are lost (world.h). */
static void node_crash(struct sim *s, struct sim_node *n, bool clean, bool power, bool tear)
{
    char errmsg[ERR_MSG_SIZE] = "";
    sim_trace(s, "%s node %u%s%s", clean ? "stop (SIGTERM)" : "crash", n->idx + 1,
              power ? " (power loss)" : "", tear ? " (torn tail)" : "");
    raft_close(n->raft, node_raft_closed);
    world_crash_io(s->w, n->idx);
    n->raft = NULL;
    node_compact_drop(n);
    fsm_close(&n->fsm);
    /* tallyd's clean shutdown: raft first, then the final checkpoint
     * (server/srv.c), so its checkpoints count every record. */
    if (clean && store_checkpoint(n->store, errmsg) != 0) {
        sim_violation(s, "node %u: final checkpoint: %s", n->idx + 1, errmsg);
    }
    store_close(n->store);
    n->store = NULL;
    n->up = false;
    if (power) {
        disk_power_loss(s, n->dir);
    }
    if (tear) {
        disk_tear_tail(s, n->dir);
        n->torn = true;
    }
}

static struct sim_node *leader(struct sim *s)
{
    struct sim_node *best = NULL;
    for (unsigned i = 0; i < SIM_NODES; i++) {
        struct sim_node *n = &s->nodes[i];
        if (n->up && raft_state(n->raft) == RAFT_LEADER &&
            (best == NULL || raft_current_term(n->raft) > raft_current_term(best->raft))) {
            best = n;
        }
    }
    return best;
}

/* -------------------------------------------------------------- workload */

/* A proposal in flight: the client learns its outcome in the callback. */
struct prop {
    struct raft_apply req;
    struct sim *s;
    struct sim_node *node;
    int client;
};

enum { C_PROD0, C_PROD1, C_COND0, C_COND1, C_ADMIN, N_CLIENTS };

struct client {
    bool busy;
    /* producers */
    uint64_t pid, seq;
    unsigned first, count; /* values of the current batch (retried as is) */
    bool have_batch;
    /* conditional writers */
    unsigned value;        /* the value of the attempt in flight */
};

static struct client clients[N_CLIENTS];
static uint64_t known_version[SIM_KEYS];
static unsigned n_proposals;

static unsigned value_new(struct sim *s, int topic, int key, uint64_t expect)
{
    if (s->n_values == SIM_MAX_VALUES) {
        return UINT32_MAX;
    }
    struct sim_value *v = &s->values[s->n_values];
    memset(v, 0, sizeof *v);
    snprintf(v->text, sizeof v->text, "v%u", s->n_values);
    v->topic = topic;
    v->key = key;
    v->expect = expect;
    return s->n_values++;
}

static void value_ok(struct sim *s, unsigned i, uint64_t offset)
{
    struct sim_value *v = &s->values[i];
    if (v->state == V_OK && v->offset != offset) {
        sim_violation(s, "value %s acknowledged at offset %llu, then at %llu", v->text,
                      (unsigned long long)v->offset, (unsigned long long)offset);
    }
    if (v->state == V_FAIL) {
        sim_violation(s, "value %s refused, then acknowledged", v->text);
    }
    v->state = V_OK;
    v->offset = offset;
}

static void value_unknown(struct sim *s, unsigned i)
{
    if (s->values[i].state == V_PENDING) {
        s->values[i].state = V_UNKNOWN;
    }
}

static void on_applied(struct raft_apply *req, int status, void *result)
{
    struct prop *p = req->data;
    struct sim *s = p->s;
    struct client *c = &clients[p->client];
    struct store_result *res = NULL;
    (void)result;
    if (status == 0 && p->node->up && p->node->raft != NULL) {
        res = fsm_take_result(&p->node->fsm, req->index);
    }
    c->busy = false;
    if (p->client == C_PROD0 || p->client == C_PROD1) {
        bool lost_reply = world_chance(s->w, 10); /* the answer never arrives */
        if (res != NULL && res->items[0].code == 0 && !testbug(TESTBUG_ACK_EARLY)) {
            for (unsigned k = 0; k < c->count; k++) {
                value_ok(s, c->first + k, res->items[0].base_offset + k);
            }
            if (res->items[0].duplicate && res->items[0].count != c->count) {
                sim_violation(s, "retry of producer %llu seq %llu answered with %u records, "
                              "sent %u", (unsigned long long)c->pid, (unsigned long long)c->seq,
                              res->items[0].count, c->count);
            }
            if (!lost_reply) {
                c->have_batch = false;
                c->seq++;
            }
        } else if (res != NULL && res->items[0].code == TALLY_SEQUENCE) {
            sim_violation(s, "producer %llu seq %llu refused: %s", (unsigned long long)c->pid,
                          (unsigned long long)c->seq, res->items[0].message);
            c->have_batch = false;
            c->seq++;
        } else if (res != NULL && res->items[0].code != 0) {
            for (unsigned k = 0; k < c->count; k++) {
                s->values[c->first + k].state = V_FAIL;
            }
            c->have_batch = false;
            c->seq++;
        } else {
            for (unsigned k = 0; k < c->count; k++) {
                value_unknown(s, c->first + k);
            }
        }
    } else if (p->client == C_COND0 || p->client == C_COND1) {
        for (unsigned k = 0; k < c->count; k++) {
            struct sim_value *v = &s->values[c->value + k];
            if (res != NULL && res->items[0].code == 0 && !testbug(TESTBUG_ACK_EARLY)) {
                value_ok(s, c->value + k, res->items[0].base_offset + k);
                known_version[v->key] = v->expect + 1;
            } else if (res != NULL && res->items[0].code != 0) {
                v->state = V_FAIL;
            } else {
                value_unknown(s, c->value + k);
            }
        }
        if (res != NULL && res->items[0].code == TALLY_CONDITION_FAILED) {
            /* The message names the key that failed; its actual version
             * is the answer. The other key keeps what the writer knew. */
            for (unsigned k = 0; k < c->count; k++) {
                struct sim_value *v = &s->values[c->value + k];
                char kname[16];
                snprintf(kname, sizeof kname, "key acct-%d ", v->key);
                if (c->count == 1 || strstr(res->items[0].message, kname) != NULL) {
                    known_version[v->key] = res->items[0].actual;
                }
            }
        }
    }
    sim_trace(s, "client %d: index %llu status %d -> %s", p->client,
              (unsigned long long)req->index, status,
              res == NULL ? "unknown" : res->items[0].code == 0 ? "ok" : res->items[0].message);
    free(res);
    free(p);
}

/* Propose @b on the leader for @client; false if there is no leader or it
 * refused at once (nothing written). */
static bool propose(struct sim *s, struct sim_node *n, int client, struct buf *b)
{
    struct prop *p = calloc(1, sizeof *p);
    struct raft_buffer rb;
    rb.len = b->len;
    rb.base = raft_malloc(b->len);
    memcpy(rb.base, b->data, b->len);
    p->s = s;
    p->node = n;
    p->client = client;
    p->req.data = p;
    int rv = raft_apply(n->raft, &p->req, &rb, 1, on_applied);
    if (rv != 0) {
        raft_free(rb.base);
        free(p);
        return false;
    }
    clients[client].busy = true;
    n_proposals++;
    return true;
}

/* An APPEND entry of one batch of @n records, record k keyed keys[k]
 * (keys NULL or keys[k] NULL: no key), with @n_conds conditions. */
static void build_append(struct sim *s, struct buf *b, const char *topic, uint64_t pid,
                         uint64_t seq, const char *const *keys, const unsigned *vals, unsigned n,
                         const struct cmd_condition *conds, uint32_t n_conds)
{
    struct batch_builder bb;
    struct buf batch;
    batch_builder_init(&bb, pid, seq);
    for (unsigned k = 0; k < n; k++) {
        const char *text = s->values[vals[k]].text;
        const char *key = keys != NULL ? keys[k] : NULL;
        batch_builder_add(&bb, key, key ? strlen(key) : 0, text, strlen(text));
    }
    buf_init(&batch);
    batch_builder_finish(&bb, false, &batch);
    batch_builder_free(&bb);
    cmd_append_begin(b);
    size_t at = cmd_append_add(b, topic, batch.data, (uint32_t)batch.len, CMD_NO_EXPECT, conds,
                               n_conds);
    cmd_append_end(b, 1);
    batch_stamp(b->data + at, 0, (int64_t)world_now(s->w), 0);
    buf_free(&batch);
}

static void client_producer(struct sim *s, struct sim_node *n, int ci)
{
    struct client *c = &clients[ci];
    struct buf b;
    if (!c->have_batch) {
        unsigned count = (unsigned)world_range(s->w, 1, 3);
        unsigned first = s->n_values;
        for (unsigned k = 0; k < count; k++) {
            if (value_new(s, 0, -1, 0) == UINT32_MAX) {
                return;
            }
        }
        c->first = first;
        c->count = count;
        c->have_batch = true;
    }
    unsigned vals[3];
    for (unsigned k = 0; k < c->count; k++) {
        vals[k] = c->first + k;
    }
    buf_init(&b);
    build_append(s, &b, "events", c->pid, c->seq, NULL, vals, c->count, NULL, 0);
    sim_trace(s, "client %d: produce seq %llu (%s..) on node %u", ci, (unsigned long long)c->seq,
              s->values[c->first].text, n->idx + 1);
    if (propose(s, n, ci, &b) && testbug(TESTBUG_ACK_EARLY)) {
        /* The doctored gateway: "acknowledged" before it commits. */
        struct store_topic *t = store_topic_find(n->store, "events");
        uint64_t next = t != NULL ? log_next_offset(t->log) : 0;
        for (unsigned k = 0; k < c->count; k++) {
            if (s->values[c->first + k].state == V_PENDING) {
                value_ok(s, c->first + k, next + k);
            }
        }
    }
    buf_free(&b);
}

/* One record on one hot key, or (a third of the time) one record on each
 * of two hot keys in one batch, conditioned on both versions. */
static void client_conditional(struct sim *s, struct sim_node *n, int ci)
{
    struct client *c = &clients[ci];
    unsigned nk = world_chance(s->w, 33) ? 2 : 1;
    int key[2];
    char kname[2][16];
    const char *keys[2];
    struct cmd_condition cond[2];
    unsigned v[2];
    key[0] = (int)world_range(s->w, 0, SIM_KEYS - 1);
    key[1] = (key[0] + 1 + (int)world_range(s->w, 0, SIM_KEYS - 2)) % SIM_KEYS;
    for (unsigned k = 0; k < nk; k++) {
        snprintf(kname[k], sizeof kname[k], "acct-%d", key[k]);
        keys[k] = kname[k];
        v[k] = value_new(s, 1, key[k], known_version[key[k]]);
        if (v[k] == UINT32_MAX) {
            return;
        }
        cond[k] = (struct cmd_condition){(const uint8_t *)kname[k], (uint32_t)strlen(kname[k]),
                                         known_version[key[k]]};
    }
    struct buf b;
    buf_init(&b);
    build_append(s, &b, "accounts", 0, 0, keys, v, nk, cond, nk);
    c->value = v[0];
    c->count = nk;
    sim_trace(s, "client %d: %s on %s if at version %llu%s, node %u", ci, s->values[v[0]].text,
              kname[0], (unsigned long long)cond[0].version, nk == 2 ? " (and a second key)" : "",
              n->idx + 1);
    if (!propose(s, n, ci, &b)) {
        for (unsigned k = 0; k < nk; k++) {
            s->values[v[k]].state = V_FAIL;
        }
    }
    buf_free(&b);
}

/* Topic churn, keyed writes to compacted and retention topics, group
 * commits and retention decisions: replica identity and the internal
 * checks cover them. */
static void client_admin(struct sim *s, struct sim_node *n)
{
    struct buf b;
    char name[16];
    buf_init(&b);
    snprintf(name, sizeof name, "t%u", (unsigned)world_range(s->w, 0, 1));
    struct store_topic *t = store_topic_find(n->store, name);
    unsigned what = (unsigned)world_range(s->w, 0, 99);
    if (t == NULL && what < 50) {
        struct cmd_topic_config cfg = {0};
        cfg.policy = world_chance(s->w, 50) ? TALLY_POLICY_COMPACT : TALLY_POLICY_DELETE;
        cfg.retention_ms = -1;
        cfg.retention_bytes = cfg.policy == TALLY_POLICY_DELETE ? 8192 : -1;
        cfg.segment_bytes = 2048;
        cmd_encode_topic_create(&b, name, &cfg);
        sim_trace(s, "admin: create %s (policy %u)", name, cfg.policy);
    } else if (t != NULL && what < 8) {
        cmd_encode_topic_delete(&b, name);
        sim_trace(s, "admin: delete %s", name);
    } else if (t != NULL && what < 80) {
        char key[8];
        unsigned v = value_new(s, 2, -1, 0);
        if (v == UINT32_MAX) {
            buf_free(&b);
            return;
        }
        snprintf(key, sizeof key, "k%u", (unsigned)world_range(s->w, 0, 4));
        const char *keys[1] = {world_chance(s->w, 10) ? NULL : key};
        build_append(s, &b, name, 0, 0, keys, &v, 1, NULL, 0);
        sim_trace(s, "admin: write %s to %s", key, name);
    } else if (what < 90) {
        struct store_topic *ev = store_topic_find(n->store, "events");
        if (ev == NULL) {
            buf_free(&b);
            return;
        }
        uint64_t off = world_range(s->w, 0, log_next_offset(ev->log));
        cmd_encode_group_commit(&b, "g", "events", off, ev->created_index);
        sim_trace(s, "admin: group g at %llu", (unsigned long long)off);
    } else if (t != NULL) {
        uint64_t start, tomb;
        if (!store_retention_due(t, (int64_t)world_now(s->w), 0, &start, &tomb)) {
            buf_free(&b);
            return;
        }
        cmd_encode_topic_trim(&b, name, t->created_index, start, tomb);
        sim_trace(s, "admin: trim %s to %llu (tombstones below %llu)", name,
                  (unsigned long long)start, (unsigned long long)tomb);
    } else {
        buf_free(&b);
        return;
    }
    propose(s, n, C_ADMIN, &b);
    buf_free(&b);
}

static void workload(struct sim *s)
{
    struct sim_node *n = leader(s);
    if (n == NULL) {
        return;
    }
    if (store_topic_find(n->store, "events") == NULL ||
        store_topic_find(n->store, "accounts") == NULL) {
        if (!clients[C_ADMIN].busy) {
            struct buf b;
            struct cmd_topic_config cfg = {0};
            cfg.retention_ms = -1;
            cfg.retention_bytes = -1;
            buf_init(&b);
            cmd_encode_topic_create(&b, store_topic_find(n->store, "events") ? "accounts"
                                                                              : "events", &cfg);
            propose(s, n, C_ADMIN, &b);
            buf_free(&b);
        }
        return;
    }
    int ci = (int)world_range(s->w, 0, N_CLIENTS - 1);
    if (clients[ci].busy) {
        return;
    }
    if (ci == C_PROD0 || ci == C_PROD1) {
        client_producer(s, n, ci);
    } else if (ci == C_COND0 || ci == C_COND1) {
        client_conditional(s, n, ci);
    } else {
        client_admin(s, n);
    }
}

/* ------------------------------------------------------ loop work seams */

/* Compaction as tallyd's compactor runs it (prepare on the loop, run on a
 * worker, finish on the loop), each stage at a step the seed chooses, with
 * applies in between. */
static void seam_compact(struct sim *s, struct sim_node *n)
{
    char errmsg[ERR_MSG_SIZE] = "";
    if (n->job == NULL) {
        struct store_compact_config cfg = {.min_lag_ms = 0, .map_bytes = 1u << 20};
        if (store_compact_prepare(n->store, &cfg, (int64_t)world_now(s->w), &n->job, errmsg) !=
            0) {
            sim_violation(s, "node %u: compact prepare: %s", n->idx + 1, errmsg);
            n->job = NULL;
        }
        n->job_stage = n->job != NULL ? 1 : 0;
        if (n->job != NULL) {
            sim_trace(s, "node %u: compaction of %s prepared", n->idx + 1,
                      store_compaction_topic(n->job));
        }
    } else if (n->job_stage == 1) {
        int rv = store_compact_run(n->job, errmsg);
        sim_trace(s, "node %u: compaction ran: %d %s", n->idx + 1, rv, errmsg);
        n->job_stage = rv == 0 ? 2 : 0;
        if (rv != 0) {
            node_compact_drop(n);
        }
    } else {
        struct log_compact_stats st;
        int rv = store_compact_finish(n->store, n->job, &st, errmsg);
        if (rv != 0) {
            sim_violation(s, "node %u: compact finish: %s", n->idx + 1, errmsg);
        }
        sim_trace(s, "node %u: compaction finished", n->idx + 1);
        store_compact_free(n->job);
        n->job = NULL;
        n->job_stage = 0;
    }
}

/* Backfill as server/backfill.c does it, reading the peer's files directly:
 * the history a snapshot install left out, from a peer that holds it. */
static bool seam_backfill(struct sim *s, struct sim_node *n)
{
    char topic[STORE_NAME_MAX], errmsg[ERR_MSG_SIZE] = "";
    uint64_t created, from, to;
    if (!store_backfill_pick(n->store, topic, sizeof topic, &created, &from, &to)) {
        return false;
    }
    for (unsigned i = 0; i < SIM_NODES; i++) {
        struct sim_node *p = &s->nodes[i];
        struct store_topic *pt = p != n && p->up ? store_topic_find(p->store, topic) : NULL;
        if (pt == NULL || pt->created_index != created || log_next_offset(pt->log) < to ||
            (pt->missing_to > pt->missing_from && pt->missing_to > from)) {
            continue;
        }
        uint64_t first = store_topic_start(pt) > from ? store_topic_start(pt) : from;
        first = first < to ? first : to;
        struct tally_log *staging = NULL;
        if (store_backfill_begin(n->store, topic, first, &staging, errmsg) != 0) {
            sim_violation(s, "node %u: backfill begin %s: %s", n->idx + 1, topic, errmsg);
            return false;
        }
        uint64_t next = first;
        int rv = 0;
        while (rv == 0 && next < to) {
            void *data = NULL;
            size_t len = 0, pos = 0;
            uint64_t after;
            rv = log_read_copy(pt->log, next, 1u << 20, &data, &len, &after, errmsg);
            while (rv == 0 && pos < len && next < to) {
                struct batch_header h;
                rv = batch_decode_header((uint8_t *)data + pos, len - pos, &h, errmsg);
                if (rv == 0 && h.base_offset >= next && batch_last_offset(&h) < to) {
                    rv = log_append(staging, (uint8_t *)data + pos, h.batch_len,
                                    h.first_timestamp, errmsg);
                    next = batch_last_offset(&h) + 1;
                } else if (rv == 0 && batch_last_offset(&h) >= next) {
                    rv = -1; /* straddles: give up, as backfill.c does */
                    snprintf(errmsg, sizeof errmsg, "batch straddles the range");
                }
                pos += h.batch_len;
            }
            free(data);
            if (len == 0) {
                break;
            }
        }
        if (rv != 0 || next < to) {
            sim_trace(s, "node %u: backfill of %s from node %u gave up: %s", n->idx + 1, topic,
                      i + 1, errmsg);
            store_backfill_abort(n->store, topic, staging);
            continue;
        }
        rv = store_backfill_finish(n->store, topic, created, from, to, staging, errmsg);
        sim_trace(s, "node %u: backfilled %s [%llu, %llu) from node %u: %d", n->idx + 1, topic,
                  (unsigned long long)first, (unsigned long long)to, i + 1, rv);
        if (rv != 0 && rv != TALLY_BUSY) {
            sim_violation(s, "node %u: backfill finish %s: %s", n->idx + 1, topic, errmsg);
        }
        return rv == 0;
    }
    return false;
}

/* ---------------------------------------------------------------- faults */

struct faults {
    unsigned crash_pct10;     /* per mille of fault steps that crash a node */
    unsigned partition_pm;    /* per mille that cut links or degrade the network */
    unsigned down_until[SIM_NODES];
    bool power[SIM_NODES];
    unsigned heal_at;         /* step at which links heal, 0: healed */
};

static void fault_step(struct sim *s, struct faults *f)
{
    struct world *w = s->w;
    /* Restart what is due. */
    for (unsigned i = 0; i < SIM_NODES; i++) {
        struct sim_node *n = &s->nodes[i];
        if (!n->up && f->down_until[i] <= s->step) {
            sim_trace(s, "restart node %u", i + 1);
            node_start(s, n, false);
        }
    }
    if (f->heal_at != 0 && f->heal_at <= s->step) {
        sim_trace(s, "heal the network");
        for (unsigned i = 0; i < SIM_NODES; i++) {
            for (unsigned j = 0; j < SIM_NODES; j++) {
                world_link(w, i, j, true);
            }
        }
        world_net(w, 0, 1, 10);
        f->heal_at = 0;
    }
    unsigned r = (unsigned)world_range(w, 0, 999);
    unsigned down = 0;
    for (unsigned i = 0; i < SIM_NODES; i++) {
        down += !s->nodes[i].up;
    }
    if (r < f->crash_pct10 && down == 0) {
        /* One node at a time, so that a majority keeps its disk. */
        unsigned i = (unsigned)world_range(w, 0, SIM_NODES - 1);
        struct sim_node *ld = leader(s);
        if (ld != NULL && world_chance(w, 50)) {
            i = ld->idx;
        }
        bool clean = world_chance(w, 25);
        bool power = world_chance(w, 50);
        bool tear = world_chance(w, 20);
        node_crash(s, &s->nodes[i], clean, power, tear);
        f->down_until[i] = s->step + (unsigned)world_range(w, 20, 600);
    } else if (r >= f->crash_pct10 && r < f->crash_pct10 + f->partition_pm && f->heal_at == 0) {
        unsigned i = (unsigned)world_range(w, 0, SIM_NODES - 1);
        unsigned kind = (unsigned)world_range(w, 0, 3);
        if (kind == 0) {
            sim_trace(s, "partition: node %u cut off", i + 1);
            for (unsigned j = 0; j < SIM_NODES; j++) {
                if (j != i) {
                    world_link(w, i, j, false);
                    world_link(w, j, i, false);
                }
            }
        } else if (kind == 1) {
            unsigned j = (i + 1 + (unsigned)world_range(w, 0, SIM_NODES - 2)) % SIM_NODES;
            sim_trace(s, "partition: one way, node %u -> node %u cut", i + 1, j + 1);
            world_link(w, i, j, false);
        } else if (kind == 2) {
            unsigned loss = (unsigned)world_range(w, 5, 40);
            sim_trace(s, "network: %u%% loss", loss);
            world_net(w, loss, 1, 10);
        } else {
            unsigned lat = (unsigned)world_range(w, 20, 400);
            sim_trace(s, "network: latency 1..%u ms (reordering)", lat);
            world_net(w, 0, 1, lat);
        }
        f->heal_at = s->step + (unsigned)world_range(w, 50, 800);
    } else if (r >= 600 && r < 630) {
        unsigned i = (unsigned)world_range(w, 0, SIM_NODES - 1);
        raft_time until = world_now(w) + world_range(w, 200, 3000);
        sim_trace(s, "disk of node %u stalls until t=%llu", i + 1, (unsigned long long)until);
        world_disk_stall(w, i, until);
    } else if (r >= 630 && r < 660) {
        struct sim_node *ld = leader(s);
        if (ld != NULL) {
            int rv = raft_transfer(ld->raft, &ld->xfer, 0, NULL);
            sim_trace(s, "leadership transfer from node %u: %d", ld->idx + 1, rv);
        }
    }
}

/* ------------------------------------------------------------------ run */

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

/* rm -rf, in process (a fork per seed is slow under ASan). */
static void remove_tree(const char *dir)
{
    if (nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT) {
        fprintf(stderr, "sim: cannot remove %s: %s\n", dir, strerror(errno));
    }
}

/* Heal: every node up, the network whole, then let it settle and fill
 * its gaps. Bounded in steps. */
static void heal_and_settle(struct sim *s, struct faults *f)
{
    sim_trace(s, "final: heal everything");
    for (unsigned i = 0; i < SIM_NODES; i++) {
        f->down_until[i] = 0;
    }
    f->heal_at = s->step;
    f->crash_pct10 = 0;
    f->partition_pm = 0;
    for (unsigned i = 0; i < SIM_NODES; i++) {
        world_disk_stall(s->w, i, 0);
    }
    fault_step(s, f);
    unsigned settle = 0;
    for (; settle < 200000 && s->violations == 0; settle++, s->step++) {
        world_step(s->w);
        check_step(s);
        if (settle % 500 == 499) {
            struct sim_node *ld = leader(s);
            bool same = ld != NULL;
            for (unsigned i = 0; same && i < SIM_NODES; i++) {
                same = raft_last_applied(s->nodes[i].raft) == raft_commit_index(ld->raft) &&
                       raft_commit_index(ld->raft) == raft_last_applied(ld->raft);
            }
            bool busy = false;
            for (unsigned c = 0; c < N_CLIENTS; c++) {
                busy |= clients[c].busy;
            }
            if (same && !busy) {
                for (unsigned i = 0; i < SIM_NODES; i++) {
                    while (seam_backfill(s, &s->nodes[i])) {
                    }
                }
                break;
            }
        }
    }
    if (settle == 200000) {
        struct sim_node *ld = leader(s);
        for (unsigned i = 0; i < SIM_NODES; i++) {
            sim_trace(s, "node %u: state %d applied %llu commit %llu persisted %llu, %llu "
                      "installs dropped by the guard (%u puts running)", i + 1,
                      raft_state(s->nodes[i].raft),
                      (unsigned long long)raft_last_applied(s->nodes[i].raft),
                      (unsigned long long)raft_commit_index(s->nodes[i].raft),
                      (unsigned long long)world_persisted_last(s->w, i),
                      (unsigned long long)s->nodes[i].guard.dropped, s->nodes[i].guard.taking);
        }
        for (unsigned c = 0; c < N_CLIENTS; c++) {
            sim_trace(s, "client %u busy %d", c, clients[c].busy);
        }
        sim_violation(s, "the cluster did not settle after healing (leader: node %u)",
                      ld != NULL ? ld->idx + 1 : 0);
    }
}

static int run_seed(uint64_t seed, unsigned steps, bool trace, const char *base)
{
    struct sim s;
    struct faults f;
    memset(&s, 0, sizeof s);
    memset(&f, 0, sizeof f);
    memset(clients, 0, sizeof clients);
    memset(known_version, 0, sizeof known_version);
    n_proposals = 0;
    s.seed = seed;
    cur_sim = &s;
    disk_reset();
    s.steps = steps;
    s.trace = trace;
    s.w = world_new(seed);
    s.values = calloc(SIM_MAX_VALUES, sizeof *s.values);
    snprintf(s.root, sizeof s.root, "%s/seed-%llu", base, (unsigned long long)seed);
    mkdir(s.root, 0755);
    s.snapshot_threshold = (unsigned)world_range(s.w, 8, 64);
    /* Trailing as tallyd sets it (node.c: trailing = threshold). With a
     * trailing well below the threshold libraft 0.22.1 can leave a
     * follower behind for good (docs/testing.md, "Found so far"). */
    s.snapshot_trailing = s.snapshot_threshold;
    f.crash_pct10 = (unsigned)world_range(s.w, 30, 200);
    f.partition_pm = (unsigned)world_range(s.w, 50, 300);
    sim_trace(&s, "seed %llu: snapshot threshold %u trailing %u, crash %u/1000, faults %u/1000",
              (unsigned long long)seed, s.snapshot_threshold, s.snapshot_trailing,
              f.crash_pct10, f.partition_pm);
    clients[C_PROD0].pid = 0x1000 + seed * 4;
    clients[C_PROD1].pid = 0x1001 + seed * 4;
    clients[C_PROD0].seq = clients[C_PROD1].seq = 1;
    for (unsigned i = 0; i < SIM_NODES; i++) {
        struct sim_node *n = &s.nodes[i];
        n->idx = i;
        n->id = i + 1;
        snprintf(n->addr, sizeof n->addr, "n%u", i + 1);
        snprintf(n->dir, sizeof n->dir, "%s/n%u", s.root, i + 1);
    }
    for (unsigned i = 0; i < SIM_NODES; i++) {
        node_start(&s, &s.nodes[i], true);
    }
    for (s.step = 0; s.step < steps && s.violations == 0; s.step++) {
        unsigned r = (unsigned)world_range(s.w, 0, 99);
        if (r < 25) {
            workload(&s);
        } else if (r < 27) {
            fault_step(&s, &f);
        } else if (r < 28) {
            struct sim_node *n = &s.nodes[world_range(s.w, 0, SIM_NODES - 1)];
            if (n->up) {
                seam_compact(&s, n);
            }
        } else if (r < 31) {
            /* tallyd's backfill starts as soon as a range is missing and
             * runs to the end; here every node with a missing range fills
             * it at this step (bounded: a few ranges at most). */
            for (unsigned i = 0; i < SIM_NODES; i++) {
                for (unsigned k = 0; k < 4 && s.nodes[i].up && seam_backfill(&s, &s.nodes[i]);
                     k++) {
                }
            }
        } else {
            world_step(s.w);
        }
        if (r >= 25 && r < 27) {
            /* restarts happen in fault_step; nothing more here */
        } else if (f.heal_at == 0) {
            for (unsigned i = 0; i < SIM_NODES; i++) {
                if (!s.nodes[i].up && f.down_until[i] <= s.step) {
                    fault_step(&s, &f);
                    break;
                }
            }
        }
        check_step(&s);
    }
    if (s.violations == 0) {
        heal_and_settle(&s, &f);
    }
    if (s.violations == 0) {
        check_final(&s);
    }
    /* Then every node stops at once (all crash, or all stop cleanly; all
     * lose power, or none), restarts, settles and is checked again: a
     * whole cluster's power loss must not lose an acknowledged write. */
    if (s.violations == 0) {
        bool clean = world_chance(s.w, 30), power = !clean && world_chance(s.w, 50);
        sim_trace(&s, "final: every node stops at once");
        for (unsigned i = 0; i < SIM_NODES; i++) {
            node_crash(&s, &s.nodes[i], clean, power, false);
        }
        heal_and_settle(&s, &f);
        if (s.violations == 0) {
            check_final(&s);
        }
    }
    for (unsigned i = 0; i < SIM_NODES; i++) {
        if (s.nodes[i].up) {
            node_crash(&s, &s.nodes[i], false, false, false);
        }
    }
    world_free(s.w);
    free(s.values);
    remove_tree(s.root);
    if (s.violations > 0) {
        printf("seed %llu FAILED: %s\n", (unsigned long long)seed, s.first_violation);
        return 1;
    }
    if (trace) {
        printf("seed %llu passed: %u steps, %u values, %u proposals\n", (unsigned long long)seed,
               s.step, s.n_values, n_proposals);
    }
    return 0;
}

/* The seeds run in a child process, one after another, so that a crash (a
 * signal) is one failing seed with its replay command, not the end of the
 * run. The child reports each finished seed on a pipe; after a crash the
 * parent reports the seed after the last finished one and starts a new
 * child after it (one fork per crash, not per seed: fork is slow under
 * ASan). */
struct outcome {
    uint64_t seed;
    int failed;
};

static void run_range(uint64_t a, uint64_t b, unsigned steps, bool trace, const char *base,
                      bool stop_first, const char *replay_args, unsigned *ran, unsigned *failed)
{
    uint64_t next = a;
    while (next <= b) {
        int fds[2];
        if (pipe(fds) != 0) {
            perror("sim: pipe");
            exit(2);
        }
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("sim: fork");
            exit(2);
        }
        if (pid == 0) {
            close(fds[0]);
            for (uint64_t seed = next; seed <= b; seed++) {
                struct outcome o = {seed, run_seed(seed, steps, trace, base)};
                if (o.failed) {
                    printf("  replay: test/sim/run --seed %llu --steps %u%s --trace\n",
                           (unsigned long long)seed, steps, replay_args);
                }
                fflush(stdout);
                if (write(fds[1], &o, sizeof o) != (ssize_t)sizeof o) {
                    _exit(2);
                }
                if (o.failed && stop_first) {
                    break;
                }
            }
            _exit(0);
        }
        close(fds[1]);
        struct outcome o;
        uint64_t last = next - 1;
        bool stop = false;
        while (read(fds[0], &o, sizeof o) == (ssize_t)sizeof o) {
            (*ran)++;
            *failed += o.failed != 0;
            last = o.seed;
            stop |= o.failed && stop_first;
        }
        close(fds[0]);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        next = last + 1;
        if (WIFSIGNALED(status) && next <= b) {
            char dir[PATH_MAX + 64];
            printf("seed %llu CRASHED: signal %d (%s)\n", (unsigned long long)next,
                   WTERMSIG(status), strsignal(WTERMSIG(status)));
            printf("  replay: test/sim/run --seed %llu --steps %u%s --trace\n",
                   (unsigned long long)next, steps, replay_args);
            snprintf(dir, sizeof dir, "%s/seed-%llu", base, (unsigned long long)next);
            remove_tree(dir);
            (*ran)++;
            (*failed)++;
            stop |= stop_first;
            next++;
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "sim: the child stopped (status %d)\n", status);
            exit(2);
        }
        if (stop) {
            break;
        }
    }
}

static const struct {
    const char *name;
    unsigned bit;
} bugs[] = {
    {"producer-replay", TESTBUG_PRODUCER_REPLAY}, {"apply-twice", TESTBUG_APPLY_TWICE},
    {"ckpt-unsynced", TESTBUG_CKPT_UNSYNCED},     {"keys-lost", TESTBUG_KEYS_LOST},
    {"ack-early", TESTBUG_ACK_EARLY},
};

static int usage(void)
{
    fprintf(stderr, "usage: sim --seeds A-B [--steps N] [--bug NAME] [--no-snapguard] [--stop-at-first]\n"
                    "       sim --seed N --trace [--steps N] [--bug NAME]\n"
                    "bugs: producer-replay apply-twice ckpt-unsynced keys-lost ack-early\n");
    return 2;
}

int main(int argc, char **argv)
{
    unsigned long long a = 0, b = 0;
    unsigned steps = 3000;
    bool trace = false, stop_first = false, have = false;
    const char *bug = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) {
            if (sscanf(argv[++i], "%llu-%llu", &a, &b) != 2 || b < a) {
                return usage();
            }
            have = true;
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            a = b = strtoull(argv[++i], NULL, 10);
            have = true;
        } else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
            steps = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--trace") == 0) {
            trace = true;
        } else if (strcmp(argv[i], "--no-snapguard") == 0) {
            use_snapguard = false;
        } else if (strcmp(argv[i], "--stop-at-first") == 0) {
            stop_first = true;
        } else if (strcmp(argv[i], "--bug") == 0 && i + 1 < argc) {
            bug = argv[++i];
        } else {
            return usage();
        }
    }
    if (!have) {
        return usage();
    }
    if (bug != NULL) {
        bool found = false;
        for (size_t k = 0; k < sizeof bugs / sizeof bugs[0]; k++) {
            if (strcmp(bugs[k].name, bug) == 0) {
                testbug_switches = bugs[k].bit;
                found = true;
            }
        }
        if (!found) {
            return usage();
        }
    }
    if (!trace) {
        logger_set_level(LOGGER_OFF);
    } else {
        setvbuf(stdout, NULL, _IOLBF, 0); /* in order with the store's log lines (stderr) */
    }
    const char *tmp = getenv("TALLY_SIM_DIR");
    char base[PATH_MAX];
    snprintf(base, sizeof base, "%s/tally-sim-%d", tmp != NULL ? tmp : "/dev/shm", (int)getpid());
    if (mkdir(base, 0755) != 0 && errno != EEXIST) {
        snprintf(base, sizeof base, "/tmp/tally-sim-%d", (int)getpid());
        mkdir(base, 0755);
    }
    unsigned failed = 0, ran = 0;
    char replay_args[128];
    snprintf(replay_args, sizeof replay_args, "%s%s%s", bug ? " --bug " : "", bug ? bug : "",
             use_snapguard ? "" : " --no-snapguard");
    run_range(a, b, steps, trace, base, stop_first, replay_args, &ran, &failed);
    rmdir(base);
    printf("%u seeds, %u failed\n", ran, failed);
    return failed > 0 ? 1 : 0;
}
