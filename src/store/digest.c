/* The catalog digest (an order-independent hash of the topics and group
 * positions at an applied index) and CATALOG_CHECK, which compares it with
 * the leader's and records a divergence (store_divergence). */
#include "store/store_int.h"

#include <stdio.h>
#include <string.h>

#include "lib/codec.h"
#include "lib/err.h"
#include "lib/logger.h"

/* Order-independent: a sum of one hash per topic and per group position. */
static uint64_t store__digest_now(struct store *s)
{
    uint8_t b[2 * STORE_NAME_MAX + 64];
    uint64_t sum = 0;
    for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
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
        sum += codec_checksum(b, n);
    }
    for (unsigned g = 0; g < s->n_groups; g++) {
        const struct store__group *p = &s->groups[g];
        size_t n = (size_t)snprintf((char *)b, sizeof b, "G%s%c%s%c", p->group, 0, p->topic, 0);
        for (unsigned k = 0; k < 8 && n < sizeof b; k++) {
            b[n++] = (uint8_t)(p->offset >> (8 * k));
        }
        sum += codec_checksum(b, n);
    }
    return sum;
}

/* After applying @index live: remember the digest. Not while replaying what
 * the logs already hold past @index, nor at or below the catalog
 * checkpoint (the state there is a later one). */
void store__record_digest(struct store *s, uint64_t index)
{
    if (index <= s->catalog_index || index % STORE_DIGEST_EVERY != 0) {
        return;
    }
    for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
        if (t->tail_index > index || t->floor_index > index) {
            return;
        }
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
