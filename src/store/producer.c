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

/* The producer check of a batch whose producer_seq counts records (a Kafka
 * idempotent producer, BATCH_FLAG_RECORD_SEQ): sequences run modulo 2^31
 * and the next batch starts at the last one's sequence + its record count.
 * A retry of the last batch answers with its offsets (as for native
 * producers); a batch before it is a retry of one already written
 * (TALLY_DUPLICATE: Kafka's DUPLICATE_SEQUENCE_NUMBER, which clients take
 * as written); any other sequence is out of order (TALLY_SEQUENCE). A
 * producer the table does not know starts anywhere. Returns true when the
 * batch must not be written (res says why). Deterministic: it reads only
 * the replicated table. */
bool store__record_seq_check(struct store_topic *t, const struct batch_header *h,
                             struct store_item_result *res)
{
    const uint64_t mask = (UINT64_C(1) << 31) - 1;
    const struct store_producer *p = store__producer_find(t, h->producer_id);
    if (p == NULL) {
        return false;
    }
    if (h->producer_seq == p->seq) {
        res->duplicate = true;
        res->base_offset = p->base_offset;
        res->count = p->count;
        return true;
    }
    if (h->producer_seq == ((p->seq + p->count) & mask)) {
        return false;
    }
    if (((p->seq - h->producer_seq) & mask) < (UINT64_C(1) << 30)) {
        store__result(res, TALLY_DUPLICATE,
                      "producer %016llx: sequence %llu is before its last batch's %llu on "
                      "topic %s: already written", (unsigned long long)h->producer_id,
                      (unsigned long long)h->producer_seq, (unsigned long long)p->seq, t->name);
        return true;
    }
    store__result(res, TALLY_SEQUENCE,
                  "producer %016llx: sequence %llu does not follow %llu + %u records on topic %s",
                  (unsigned long long)h->producer_id, (unsigned long long)h->producer_seq,
                  (unsigned long long)p->seq, p->count, t->name);
    return true;
}
