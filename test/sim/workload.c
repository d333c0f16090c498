/* The simulation's workload (sim.h): two idempotent producers on
 * "events", two conditional writers on hot keys of "accounts" (one key or
 * two at once), and an admin client (topic churn, keyed writes to
 * compacted and retention topics, group commits, retention decisions).
 * Every value is recorded in the history with what its writer was told;
 * check.c compares the history with every node's log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/batch.h"
#include "lib/testbug.h"
#include "log/log.h"
#include "sim.h"
#include "store/command.h"
#include "tally.h"

/* A proposal in flight: the client learns its outcome in the callback. */
struct prop {
    struct raft_apply req;
    struct sim *s;
    struct sim_node *node;
    int client;
    struct prop *next;     /* in flight, newest first (props) */
};

/* Proposals whose callback has not fired: a node whose process ends
 * takes its raft with it, and their clients hear nothing (workload_exited). */
static struct prop *props;

static void props_remove(struct prop *p)
{
    for (struct prop **pp = &props; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            return;
        }
    }
}

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
    props_remove(p);
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
    p->next = props;
    props = p;
    n_proposals++;
    return true;
}

/* An APPEND entry of one batch of @n records, record k keyed keys[k]
 * (keys NULL or keys[k] NULL: no key), with @n_conds conditions. */
static void build_append(struct sim *s, struct buf *b, const char *topic, uint64_t pid,
                         uint64_t seq, const char *const *keys, const unsigned *vals, unsigned n,
                         const struct command_condition *conds, uint32_t n_conds)
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
    command_append_begin(b);
    size_t at = command_append_add(b, topic, batch.data, (uint32_t)batch.len, COMMAND_NO_EXPECT, conds,
                               n_conds);
    command_append_end(b, 1);
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
    struct command_condition cond[2];
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
        cond[k] = (struct command_condition){(const uint8_t *)kname[k], (uint32_t)strlen(kname[k]),
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
        struct command_topic_config cfg = {0};
        cfg.policy = world_chance(s->w, 50) ? TALLY_POLICY_COMPACT : TALLY_POLICY_DELETE;
        cfg.retention_ms = -1;
        cfg.retention_bytes = cfg.policy == TALLY_POLICY_DELETE ? 8192 : -1;
        cfg.segment_bytes = 2048;
        command_encode_topic_create(&b, name, &cfg);
        sim_trace(s, "admin: create %s (policy %u)", name, cfg.policy);
    } else if (t != NULL && what < 8) {
        command_encode_topic_delete(&b, name);
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
        command_encode_group_commit(&b, "g", "events", off, ev->created_index);
        sim_trace(s, "admin: group g at %llu", (unsigned long long)off);
    } else if (t != NULL) {
        uint64_t start, tomb;
        if (!store_retention_due(t, (int64_t)world_now(s->w), 0, &start, &tomb)) {
            buf_free(&b);
            return;
        }
        command_encode_topic_trim(&b, name, t->created_index, start, tomb);
        sim_trace(s, "admin: trim %s to %llu (tombstones below %llu)", name,
                  (unsigned long long)start, (unsigned long long)tomb);
    } else {
        buf_free(&b);
        return;
    }
    propose(s, n, C_ADMIN, &b);
    buf_free(&b);
}

void workload(struct sim *s)
{
    struct sim_node *n = sim_leader(s);
    if (n == NULL) {
        return;
    }
    if (store_topic_find(n->store, "events") == NULL ||
        store_topic_find(n->store, "accounts") == NULL) {
        if (!clients[C_ADMIN].busy) {
            struct buf b;
            struct command_topic_config cfg = {0};
            cfg.retention_ms = -1;
            cfg.retention_bytes = -1;
            buf_init(&b);
            command_encode_topic_create(&b, store_topic_find(n->store, "events") ? "accounts"
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

void workload_exited(struct sim *s, struct sim_node *n)
{
    struct prop *p = props;
    (void)s;
    while (p != NULL) {
        struct prop *next = p->next;
        if (p->node == n) {
            /* The connection broke: the outcome is unknown. */
            on_applied(&p->req, RAFT_SHUTDOWN, NULL);
        }
        p = next;
    }
}

void workload_reset(struct sim *s)
{
    props = NULL;
    memset(clients, 0, sizeof clients);
    memset(known_version, 0, sizeof known_version);
    n_proposals = 0;
    clients[C_PROD0].pid = 0x1000 + s->seed * 4;
    clients[C_PROD1].pid = 0x1001 + s->seed * 4;
    clients[C_PROD0].seq = clients[C_PROD1].seq = 1;
}

bool workload_busy(void)
{
    for (unsigned c = 0; c < N_CLIENTS; c++) {
        if (clients[c].busy) {
            return true;
        }
    }
    return false;
}

unsigned workload_proposals(void)
{
    return n_proposals;
}
