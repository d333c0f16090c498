/* The store's topics: a doubly linked list in creation order (the order of
 * the catalog, the snapshot and `topic list`) and a hash index by name, so
 * that finding, adding and removing one topic costs the same with 10 topics
 * as with 10,000 (issue 24: every produce looks its topic up several
 * times, and each apply of a create or delete touches the list).
 *
 * The index is chained (store_topic.hash_next) over a power-of-two bucket
 * array that doubles when it holds more topics than buckets. Only this
 * file links or unlinks a topic; every other file walks s->topics forward
 * through ->next and must not change the links. */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "lib/codec.h"
#include "lib/err.h"

#define STORE__BUCKETS_MIN 64

static size_t store__bucket(const struct store *s, const char *name)
{
    return (size_t)(codec_checksum(name, strlen(name)) & (s->n_buckets - 1));
}

/* Double the bucket array (or make the first one). On failure to allocate
 * the old one stays: lookups stay right, only longer chains. */
static void store__topics_grow(struct store *s)
{
    size_t n = s->n_buckets == 0 ? STORE__BUCKETS_MIN : s->n_buckets * 2;
    struct store_topic **b = calloc(n, sizeof *b);
    if (b == NULL) {
        return;
    }
    free(s->buckets);
    s->buckets = b;
    s->n_buckets = n;
    for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
        size_t i = store__bucket(s, t->name);
        t->hash_next = b[i];
        b[i] = t;
    }
}

/* Take @t out of the creation-order list only. */
static void store__topics_unlink(struct store *s, struct store_topic *t)
{
    if (t->prev != NULL) {
        t->prev->next = t->next;
    } else {
        s->topics = t->next;
    }
    if (t->next != NULL) {
        t->next->prev = t->prev;
    } else {
        s->topics_last = t->prev;
    }
    t->next = t->prev = NULL;
}

int store__topics_add(struct store *s, struct store_topic *t)
{
    t->next = NULL;
    t->digest_dirty = false;
    t->digest_part = 0;
    t->prev = s->topics_last;
    if (s->topics_last != NULL) {
        s->topics_last->next = t;
    } else {
        s->topics = t;
    }
    s->topics_last = t;
    s->n_topics++;
    size_t before = s->n_buckets;
    if (s->n_topics > s->n_buckets) {
        store__topics_grow(s); /* on success, links every topic, @t too */
    }
    if (s->n_buckets == 0) {
        s->n_topics--;
        store__topics_unlink(s, t);
        return TALLY_NOMEM;
    }
    if (s->n_buckets == before) {
        size_t i = store__bucket(s, t->name);
        t->hash_next = s->buckets[i];
        s->buckets[i] = t;
    }
    store__digest_touch(s, t);
    return 0;
}

void store__topics_remove(struct store *s, struct store_topic *t)
{
    store__digest_forget(s, t);
    if (s->n_buckets > 0) {
        struct store_topic **pp = &s->buckets[store__bucket(s, t->name)];
        while (*pp != NULL && *pp != t) {
            pp = &(*pp)->hash_next;
        }
        if (*pp == t) {
            *pp = t->hash_next;
        }
    }
    store__topics_unlink(s, t);
    t->hash_next = NULL;
    s->n_topics--;
}

void store__topics_clear(struct store *s)
{
    while (s->topics != NULL) {
        struct store_topic *t = s->topics;
        store__topics_remove(s, t);
        store__topic_free(t);
    }
    free(s->buckets);
    s->buckets = NULL;
    s->n_buckets = 0;
}

struct store_topic *store_topic_find(struct store *s, const char *name)
{
    if (s->n_buckets == 0) {
        return NULL;
    }
    for (struct store_topic *t = s->buckets[store__bucket(s, name)]; t != NULL;
         t = t->hash_next) {
        if (strcmp(t->name, name) == 0) {
            return t;
        }
    }
    return NULL;
}

size_t store_topic_count(const struct store *s)
{
    return s->n_topics;
}
