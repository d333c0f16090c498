/* The catalog digest (an order-independent hash of the topics and group
 * positions at an applied index) and CATALOG_CHECK, which compares it with
 * the leader's and records a divergence (store_divergence). */
#include "store/store_int.h"

#include <stdio.h>
#include <string.h>

#include "lib/codec.h"
#include "lib/err.h"
#include "lib/logger.h"

/* One topic's term of the digest. */
static uint64_t store__digest_part(const struct store_topic *t)
{
    uint8_t b[STORE_NAME_MAX + 64];
    size_t n = strlen(t->name) + 1;
    uint64_t v[7] = {t->created_index, t->config.policy, (uint64_t)t->config.retention_ms,
                     (uint64_t)t->config.retention_bytes, (uint64_t)t->config.segment_bytes,
                     t->trim_offset, t->log != NULL ? log_next_offset(t->log) : 0};
    memcpy(b, t->name, n);
    for (unsigned i = 0; i < 7; i++) {
        for (unsigned k = 0; k < 8; k++) {
            b[n++] = (uint8_t)(v[i] >> (8 * k));
        }
    }
    return codec_checksum(b, n);
}

void store__digest_touch(struct store *s, struct store_topic *t)
{
    if (!t->digest_dirty) {
        s->digest_topics -= t->digest_part;
        t->digest_part = 0;
        t->digest_dirty = true;
        t->dirty_next = s->digest_dirty;
        s->digest_dirty = t;
    }
}

void store__digest_forget(struct store *s, struct store_topic *t)
{
    if (t->digest_dirty) {
        struct store_topic **pp = &s->digest_dirty;
        while (*pp != t) {
            pp = &(*pp)->dirty_next;
        }
        *pp = t->dirty_next;
        t->digest_dirty = false;
    } else {
        s->digest_topics -= t->digest_part;
    }
    t->digest_part = 0;
}

void store__digest_all(struct store *s)
{
    for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
        store__digest_touch(s, t);
    }
}

void store__note_replay(struct store *s, const struct store_topic *t)
{
    uint64_t x = t->tail_index > t->floor_index ? t->tail_index : t->floor_index;
    if (x > s->replay_until) {
        s->replay_until = x;
    }
}

/* Order-independent: a sum of one hash per topic and per group position.
 * The topics' sum is kept up to date: only the topics touched since the
 * last digest are hashed again, so a digest costs the topics that changed
 * (plus the group positions), not every topic. */
static uint64_t store__digest_now(struct store *s)
{
    uint8_t b[2 * STORE_NAME_MAX + 64];
    while (s->digest_dirty != NULL) {
        struct store_topic *t = s->digest_dirty;
        s->digest_dirty = t->dirty_next;
        t->dirty_next = NULL;
        t->digest_dirty = false;
        t->digest_part = store__digest_part(t);
        s->digest_topics += t->digest_part;
    }
    uint64_t sum = s->digest_topics;
    for (unsigned g = 0; g < s->n_groups; g++) {
        const struct store__group *p = &s->groups[g];
        size_t n = (size_t)snprintf((char *)b, sizeof b, "G%s%c%s%c", p->group, 0, p->topic, 0);
        for (unsigned k = 0; k < 8 && n < sizeof b; k++) {
            b[n++] = (uint8_t)(p->offset >> (8 * k));
        }
        sum += codec_checksum(b, n);
        /* Share positions (docs/groups.md), by value and place: plain
         * arithmetic, the same on every node. */
        for (unsigned k = 0; k < p->n_shares; k++) {
            sum += (p->shares[k] ^ ((uint64_t)(k + 1) * 0x9E3779B97F4A7C15ull)) *
                   0xff51afd7ed558ccdull;
        }
    }
    return sum;
}

/* After applying @index live: remember the digest. Not while replaying what
 * the logs already hold past @index, nor at or below the catalog
 * checkpoint (the state there is a later one). */
void store__record_digest(struct store *s, uint64_t index)
{
    if (index <= s->catalog_index || index % STORE_DIGEST_EVERY != 0 ||
        s->replay_until > index) {
        return;
    }
    unsigned slot = (unsigned)(index / STORE_DIGEST_EVERY % STORE_DIGESTS);
    s->digests[slot].index = index;
    s->digests[slot].digest = store__digest_now(s);
}

bool store_catalog_digest(struct store *s, uint64_t index, uint64_t *digest)
{
    unsigned slot = (unsigned)(index / STORE_DIGEST_EVERY % STORE_DIGESTS);
    if (index == 0 || s->digests[slot].index != index) {
        return false;
    }
    *digest = s->digests[slot].digest;
    return true;
}

int store__catalog_check(struct store *s, uint64_t index, struct rd *body, char *errmsg)
{
    uint64_t at = rd_u64(body), theirs = rd_u64(body), mine;
    if (!rd_ok(body)) {
        return ERR_CORRUPT(errmsg, "catalog check entry %llu malformed",
                           (unsigned long long)index);
    }
    if (!store_catalog_digest(s, at, &mine) || mine == theirs || s->divergence[0] != '\0') {
        return 0;
    }
    snprintf(s->divergence, sizeof s->divergence,
             "catalog differs from the leader's at index %llu (checked at index %llu): this "
             "node's digest %016llx, the leader's %016llx; this node's catalog is not the "
             "cluster's: rebuild it (tally member replace)",
             (unsigned long long)at, (unsigned long long)index, (unsigned long long)mine,
             (unsigned long long)theirs);
    TLOG_ERROR("store", "%s", s->divergence);
    return 0;
}
