/* The idempotent producer table of a topic: the last batch of each
 * producer, so a retried batch gets its original offsets back (store.h). */
#include "store/store_int.h"

#include <stdlib.h>

#include "lib/err.h"

struct store_producer *store__producer_find(struct store_topic *t, uint64_t id)
{
    for (unsigned i = 0; i < t->n_producers; i++) {
        if (t->producers[i].id == id) {
            return &t->producers[i];
        }
    }
    return NULL;
}

/* Remember the last batch of a producer. When the table is full, the
 * producer whose last write is oldest is forgotten: a choice that depends
 * only on applied entries, so every node makes the same one. */
int store__producer_record(struct store_topic *t, const struct batch_header *h,
                           uint64_t base_offset)
{
    struct store_producer *p = store__producer_find(t, h->producer_id);
    if (p == NULL) {
        if (t->n_producers == t->cap_producers && t->cap_producers < STORE_MAX_PRODUCERS) {
            unsigned cap = t->cap_producers ? t->cap_producers * 2 : 16;
            cap = cap > STORE_MAX_PRODUCERS ? STORE_MAX_PRODUCERS : cap;
            struct store_producer *np = realloc(t->producers, cap * sizeof *np);
            if (np == NULL) {
                return TALLY_NOMEM;
            }
            t->producers = np;
            t->cap_producers = cap;
        }
        if (t->n_producers < t->cap_producers) {
            p = &t->producers[t->n_producers++];
        } else {
            p = &t->producers[0];
            for (unsigned i = 1; i < t->n_producers; i++) {
                if (t->producers[i].index < p->index) {
                    p = &t->producers[i];
                }
            }
        }
    }
    p->id = h->producer_id;
    p->seq = h->producer_seq;
    p->base_offset = base_offset;
    p->count = h->last_offset_delta + 1;
    p->index = h->raft_index;
    return 0;
}
