/* The simulation's invariants (test/sim/sim.h):
 *   after every step   replicas at the same applied index have the same
 *                      state digest (catalog, offsets, producer tables,
 *                      key indexes, group positions);
 *   at every reopen    no checkpoint counts records the log does not hold,
 *                      unless the node's files were torn on purpose;
 *   at the end         every acknowledged write is where it was
 *                      acknowledged on every node, none twice, nothing
 *                      refused or never written appears, conditional
 *                      appends landed at the version they were conditioned
 *                      on (so none won twice), offsets are contiguous, and
 *                      the key index and producer table agree with the log.
 * These are test/fault/checker.py's checks plus the internal ones. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/batch.h"
#include "lib/byte.h"
#include "lib/codec.h"
#include "lib/err.h"
#include "log/log.h"
#include "sim.h"
#include "tally.h"

/* ------------------------------------------------------------- digests */

static uint64_t mix(uint64_t h, uint64_t v)
{
    uint64_t x[2] = {h, v};
    return codec_checksum(x, sizeof x);
}

/* Order-independent hash of a set of records of 8-byte words. */
static uint64_t set_hash(const uint64_t *words, size_t n)
{
    return codec_checksum(words, n * sizeof *words);
}

/* A node's state in parts, so that a difference can be named. */
#define DIGEST_TOPICS 8
struct digest {
    unsigned n;
    struct {
        char name[16];
        uint64_t created, policy, next, trim, tomb, producers, keys, n_keys;
    } t[DIGEST_TOPICS];
    uint64_t groups;
};

static void node_digest_parts(struct sim_node *n, struct digest *d)
{
    memset(d, 0, sizeof *d);
    for (struct store_topic *t = store_topics(n->store); t != NULL; t = t->next) {
        if (t->log == NULL || d->n == DIGEST_TOPICS) {
            continue;
        }
        typeof(d->t[0]) *x = &d->t[d->n++];
        snprintf(x->name, sizeof x->name, "%s", t->name);
        x->created = t->created_index;
        x->policy = t->config.policy;
        x->next = log_next_offset(t->log);
        x->trim = t->trim_offset;
        x->tomb = t->tombstone_limit;
        for (unsigned i = 0; i < t->n_producers; i++) {
            const struct store_producer *p = &t->producers[i];
            uint64_t w[5] = {p->id, p->seq, p->base_offset, p->count, p->index};
            x->producers += set_hash(w, 5);
        }
        for (size_t i = 0; i < t->keys.cap; i++) {
            const struct keys_entry *e = keys_slot(&t->keys, i);
            if (e != NULL) {
                uint64_t w[4] = {e->h1, e->h2, e->version, e->offset};
                x->keys += set_hash(w, 4);
            }
        }
        x->n_keys = t->keys.n;
    }
    const char *g, *topic;
    uint64_t off;
    for (unsigned i = 0; store_group_at(n->store, i, &g, &topic, &off); i++) {
        d->groups += mix(codec_checksum(g, strlen(g)), mix(codec_checksum(topic, strlen(topic)), off));
    }
}

/* What differs between two digests, in words ("" when nothing). */
static void digest_diff(const struct digest *a, const struct digest *b, char *out, size_t cap)
{
    out[0] = 0;
    if (a->n != b->n) {
        snprintf(out, cap, "%u topics against %u", a->n, b->n);
        return;
    }
    for (unsigned i = 0; i < a->n; i++) {
        const typeof(a->t[0]) *x = &a->t[i], *y = &b->t[i];
        if (strcmp(x->name, y->name) != 0 || x->created != y->created) {
            snprintf(out, cap, "topic %s@%llu against %s@%llu", x->name,
                     (unsigned long long)x->created, y->name, (unsigned long long)y->created);
        } else if (x->next != y->next) {
            snprintf(out, cap, "topic %s: next offset %llu against %llu", x->name,
                     (unsigned long long)x->next, (unsigned long long)y->next);
        } else if (x->policy != y->policy || x->trim != y->trim || x->tomb != y->tomb) {
            snprintf(out, cap, "topic %s: policy/trim/tombstones %llu/%llu/%llu against "
                     "%llu/%llu/%llu", x->name, (unsigned long long)x->policy,
                     (unsigned long long)x->trim, (unsigned long long)x->tomb,
                     (unsigned long long)y->policy, (unsigned long long)y->trim,
                     (unsigned long long)y->tomb);
        } else if (x->producers != y->producers) {
            snprintf(out, cap, "topic %s: producer tables", x->name);
        } else if (x->keys != y->keys || x->n_keys != y->n_keys) {
            snprintf(out, cap, "topic %s: key indexes (%llu keys against %llu)", x->name,
                     (unsigned long long)x->n_keys, (unsigned long long)y->n_keys);
        } else {
            continue;
        }
        return;
    }
    if (a->groups != b->groups) {
        snprintf(out, cap, "group positions");
    }
}

/* The store reflects exactly the entries up to raft's applied index: not
 * while a restarted node replays entries its logs already hold. */
static bool node_settled(struct sim_node *n, uint64_t applied)
{
    if (store_applied(n->store) > applied) {
        return false;
    }
    for (struct store_topic *t = store_topics(n->store); t != NULL; t = t->next) {
        if (t->tail_index > applied || t->created_index > applied) {
            return false;
        }
    }
    return true;
}

#define RING 1024
static struct {
    uint64_t index;
    struct digest d;
    unsigned node;
    uint64_t seed;
} ring[RING];

void check_step(struct sim *s)
{
    for (unsigned i = 0; i < SIM_NODES; i++) {
        struct sim_node *n = &s->nodes[i];
        if (!n->up) {
            continue;
        }
        uint64_t applied = raft_last_applied(n->raft);
        if (applied == n->last_digest_index || applied == 0 || !node_settled(n, applied)) {
            continue;
        }
        n->last_digest_index = applied;
        struct digest d;
        char diff[256];
        node_digest_parts(n, &d);
        unsigned slot = (unsigned)(applied % RING);
        if (ring[slot].seed == s->seed + 1 && ring[slot].index == applied) {
            digest_diff(&ring[slot].d, &d, diff, sizeof diff);
            if (diff[0] != 0 && ring[slot].node != i) {
                sim_violation(s, "replicas differ at index %llu: node %u and node %u: %s",
                              (unsigned long long)applied, ring[slot].node + 1, i + 1, diff);
            }
        } else {
            ring[slot].seed = s->seed + 1;
            ring[slot].index = applied;
            ring[slot].d = d;
            ring[slot].node = i;
        }
    }
}

/* ------------------------------------------------------ log scanning */

typedef void (*record_fn)(struct sim *s, struct sim_node *n, struct store_topic *t,
                          const struct batch_header *h, const struct batch_record *r, void *arg);

/* Every record of @t from its start, in order. False on a read error. */
static bool scan(struct sim *s, struct sim_node *n, struct store_topic *t, record_fn fn,
                 void *arg)
{
    char errmsg[ERR_MSG_SIZE] = "";
    uint64_t from = log_start_offset(t->log), expect = from;
    while (from < log_next_offset(t->log)) {
        void *data = NULL;
        size_t len = 0, pos = 0;
        uint64_t after;
        int rv = log_read_copy(t->log, from, 1u << 20, &data, &len, &after, errmsg);
        while (rv == 0 && pos < len) {
            struct batch_iter it;
            struct batch_record r;
            struct batch_header h;
            rv = batch_decode_header((uint8_t *)data + pos, len - pos, &h, errmsg);
            if (rv != 0) {
                break;
            }
            if (h.base_offset != expect && t->config.policy == TALLY_POLICY_RETAIN) {
                sim_violation(s, "node %u: topic %s: offsets not contiguous: batch at %llu, "
                              "expected %llu", n->idx + 1, t->name,
                              (unsigned long long)h.base_offset, (unsigned long long)expect);
            }
            expect = batch_last_offset(&h) + 1;
            rv = batch_iter_init(&it, (uint8_t *)data + pos, h.batch_len, errmsg);
            while (rv == 0 && (rv = batch_iter_next(&it, &r, errmsg)) == 0) {
                fn(s, n, t, &h, &r, arg);
            }
            if (rv == TALLY_EOF) {
                rv = 0;
            }
            batch_iter_close(&it);
            pos += h.batch_len;
        }
        free(data);
        if (rv != 0) {
            sim_violation(s, "node %u: topic %s: read at %llu: %s", n->idx + 1, t->name,
                          (unsigned long long)from, errmsg);
            return false;
        }
        if (len == 0) {
            break;
        }
        from = after;
    }
    return true;
}

/* ------------------------------------------------------------ history */

struct hist {
    unsigned char *seen;           /* per value: records found */
    uint64_t versions[SIM_KEYS];
};

static void hist_record(struct sim *s, struct sim_node *n, struct store_topic *t,
                        const struct batch_header *h, const struct batch_record *r, void *arg)
{
    struct hist *hs = arg;
    char text[32];
    unsigned vi;
    (void)h;
    size_t len = r->value_len < sizeof text - 1 ? r->value_len : sizeof text - 1;
    memcpy(text, r->value != NULL ? (const char *)r->value : "", r->value != NULL ? len : 0);
    text[r->value != NULL ? len : 0] = 0;
    int topic = strcmp(t->name, "events") == 0 ? 0 : 1;
    if (sscanf(text, "v%u", &vi) != 1 || vi >= s->n_values || s->values[vi].topic != topic) {
        sim_violation(s, "node %u: %s offset %llu: phantom record '%s'", n->idx + 1, t->name,
                      (unsigned long long)r->offset, text);
        return;
    }
    struct sim_value *v = &s->values[vi];
    if (hs->seen[vi]++ > 0) {
        sim_violation(s, "node %u: %s: value %s written twice (again at %llu)", n->idx + 1,
                      t->name, v->text, (unsigned long long)r->offset);
    }
    if (v->state == V_FAIL) {
        sim_violation(s, "node %u: %s offset %llu: value %s was refused yet is written",
                      n->idx + 1, t->name, (unsigned long long)r->offset, v->text);
    }
    if (v->state == V_OK && v->offset != r->offset) {
        sim_violation(s, "node %u: %s: value %s acknowledged at %llu, found at %llu",
                      n->idx + 1, t->name, v->text, (unsigned long long)v->offset,
                      (unsigned long long)r->offset);
    }
    if (topic == 1) {
        char kname[16];
        snprintf(kname, sizeof kname, "acct-%d", v->key);
        if (r->key == NULL || r->key_len != strlen(kname) || memcmp(r->key, kname, r->key_len)) {
            sim_violation(s, "node %u: accounts offset %llu: value %s under the wrong key",
                          n->idx + 1, (unsigned long long)r->offset, v->text);
            return;
        }
        uint64_t version = ++hs->versions[v->key];
        if (version != v->expect + 1) {
            sim_violation(s, "node %u: accounts: %s conditioned on %s at version %llu is "
                          "record %llu of the key (a conditional append won at the wrong "
                          "version)", n->idx + 1, v->text, kname, (unsigned long long)v->expect,
                          (unsigned long long)version);
        }
    }
}

static void check_history(struct sim *s, struct sim_node *n)
{
    struct hist hs;
    memset(&hs, 0, sizeof hs);
    hs.seen = calloc(s->n_values + 1, 1);
    const char *names[2] = {"events", "accounts"};
    for (int k = 0; k < 2; k++) {
        struct store_topic *t = store_topic_find(n->store, names[k]);
        if (t == NULL) {
            continue;
        }
        if (store_topic_start(t) != 0) {
            sim_violation(s, "node %u: %s starts at %llu: history lost", n->idx + 1, names[k],
                          (unsigned long long)store_topic_start(t));
        }
        scan(s, n, t, hist_record, &hs);
    }
    for (unsigned i = 0; i < s->n_values; i++) {
        if (s->values[i].state == V_OK && s->values[i].topic < 2 && hs.seen[i] == 0) {
            sim_violation(s, "node %u: acknowledged value %s (%s offset %llu) is lost",
                          n->idx + 1, s->values[i].text, names[s->values[i].topic],
                          (unsigned long long)s->values[i].offset);
        }
    }
    free(hs.seen);
}

/* ----------------------------------------------------- internal checks */

static void count_keys(struct sim *s, struct sim_node *n, struct store_topic *t,
                       const struct batch_header *h, const struct batch_record *r, void *arg)
{
    (void)s;
    (void)n;
    (void)t;
    (void)h;
    if (r->key != NULL) {
        keys_bump(arg, r->key, r->key_len, r->offset);
    }
}

/* The key index counts exactly the log's records per key (topics whose
 * whole history is in the log and never compacted). */
static void check_keys(struct sim *s, struct sim_node *n, struct store_topic *t)
{
    struct keys k;
    keys_init(&k);
    scan(s, n, t, count_keys, &k);
    bool same = k.n == t->keys.n;
    for (size_t i = 0; same && i < k.cap; i++) {
        const struct keys_entry *e = keys_slot(&k, i);
        if (e == NULL) {
            continue;
        }
        bool found = false;
        for (size_t j = 0; j < t->keys.cap && !found; j++) {
            const struct keys_entry *o = keys_slot(&t->keys, j);
            found = o != NULL && o->h1 == e->h1 && o->h2 == e->h2 &&
                    o->version == e->version && o->offset == e->offset;
        }
        same = found;
    }
    if (!same) {
        sim_violation(s, "node %u: topic %s: key index (%zu keys) disagrees with the log "
                      "(%zu keys)", n->idx + 1, t->name, t->keys.n, k.n);
    }
    keys_free(&k);
}

/* Each producer's last batch is in the log where the table says. */
static void check_producers(struct sim *s, struct sim_node *n, struct store_topic *t)
{
    char errmsg[ERR_MSG_SIZE];
    for (unsigned i = 0; i < t->n_producers; i++) {
        const struct store_producer *p = &t->producers[i];
        void *data = NULL;
        size_t len = 0;
        uint64_t after;
        struct batch_header h;
        if (p->base_offset < log_start_offset(t->log)) {
            continue;
        }
        int rv = log_read_copy(t->log, p->base_offset, 1, &data, &len, &after, errmsg);
        if (rv != 0 || len == 0 || batch_decode_header(data, len, &h, errmsg) != 0 ||
            h.base_offset != p->base_offset || h.producer_id != p->id || h.producer_seq != p->seq ||
            h.last_offset_delta + 1 != p->count) {
            sim_violation(s, "node %u: topic %s: producer %llu seq %llu at %llu is not the "
                          "log's batch there", n->idx + 1, t->name, (unsigned long long)p->id,
                          (unsigned long long)p->seq, (unsigned long long)p->base_offset);
        }
        free(data);
    }
}

/* keys.ckpt: "TLYK", u32 version, u64 index, u64 counted (version 2). */
static void check_checkpoint(struct sim *s, struct sim_node *n, struct store_topic *t)
{
    char path[PATH_MAX + 300];
    uint8_t head[24];
    snprintf(path, sizeof path, "%s/topics/%s/keys.ckpt", n->dir, t->name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        return;
    }
    if (pread(fd, head, sizeof head, 0) == (ssize_t)sizeof head &&
        memcmp(head, "TLYK", 4) == 0 && byte_get_u32(head + 4) >= 2) {
        uint64_t counted = byte_get_u64(head + 16);
        if (counted > log_next_offset(t->log)) {
            sim_violation(s, "node %u: topic %s: the key checkpoint counts records up to %llu, "
                          "the log ends at %llu", n->idx + 1, t->name,
                          (unsigned long long)counted,
                          (unsigned long long)log_next_offset(t->log));
        }
    }
    close(fd);
}

/* A torn tail makes checkpoints written before it count records the log
 * lost; until an open finds no such topic (the store wrote new ones),
 * damage is expected: n->torn stays set until then. */
void check_open(struct sim *s, struct sim_node *n)
{
    bool damaged = false;
    for (struct store_topic *t = store_topics(n->store); t != NULL; t = t->next) {
        damaged |= t->damaged;
        if (t->damaged && !n->torn) {
            sim_violation(s, "node %u: topic %s: after a crash its checkpoints count records "
                          "its log lost (no file was torn)", n->idx + 1, t->name);
        }
    }
    if (!damaged) {
        n->torn = false;
    }
}

void check_final(struct sim *s)
{
    struct digest d0, d;
    char diff[256];
    for (unsigned i = 0; i < SIM_NODES; i++) {
        struct sim_node *n = &s->nodes[i];
        node_digest_parts(n, i == 0 ? &d0 : &d);
        if (i > 0) {
            digest_diff(&d0, &d, diff, sizeof diff);
            if (diff[0] != 0) {
                sim_violation(s, "final: node %u's state differs from node 1's at index %llu: %s",
                              i + 1, (unsigned long long)raft_last_applied(n->raft), diff);
            }
        }
        check_history(s, n);
        for (struct store_topic *t = store_topics(n->store); t != NULL; t = t->next) {
            if (t->log == NULL) {
                continue;
            }
            if (t->missing_to > t->missing_from) {
                sim_violation(s, "final: node %u: topic %s still lacks [%llu, %llu)", i + 1,
                              t->name, (unsigned long long)t->missing_from,
                              (unsigned long long)t->missing_to);
            }
            if (log_start_offset(t->log) == 0 && t->config.policy == TALLY_POLICY_RETAIN) {
                check_keys(s, n, t);
            }
            check_producers(s, n, t);
            check_checkpoint(s, n, t);
        }
    }
}
