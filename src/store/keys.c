/* The key index of one topic: key hash -> version and latest offset. */
#include "store/keys.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/codec.h"
#include "lib/err.h"

void keys_init(struct keys *k)
{
    memset(k, 0, sizeof *k);
}

static void keys__drop_chunks(struct keys_chunk **chunks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (chunks[i] != NULL && --chunks[i]->refs == 0) {
            free(chunks[i]);
        }
    }
    free(chunks);
}

void keys_free(struct keys *k)
{
    keys__drop_chunks(k->chunks, k->cap / KEYS_CHUNK);
    keys_init(k);
}

static void keys__hash(const void *key, size_t len, uint64_t *h1, uint64_t *h2)
{
    struct codec_hash128 h = codec_hash128(key, len);
    *h1 = h.lo;
    *h2 = h.hi;
    if (*h1 == 0 && *h2 == 0) {
        *h2 = 1; /* 0/0 marks an empty slot */
    }
}

static inline struct keys_entry *keys__at(const struct keys *k, size_t i)
{
    return &k->chunks[i >> KEYS_CHUNK_SHIFT]->slots[i & (KEYS_CHUNK - 1)];
}

/* The slot of @h1/@h2, or the empty one where it would go. */
static size_t keys__find(const struct keys *k, uint64_t h1, uint64_t h2)
{
    size_t mask = k->cap - 1;
    for (size_t i = (size_t)h1 & mask;; i = (i + 1) & mask) {
        const struct keys_entry *e = keys__at(k, i);
        if ((e->h1 == h1 && e->h2 == h2) || (e->h1 == 0 && e->h2 == 0)) {
            return i;
        }
    }
}

/* Slot @i to write to: its chunk copied first while another table shares
 * it. NULL when out of memory. */
static struct keys_entry *keys__writable(struct keys *k, size_t i)
{
    struct keys_chunk **c = &k->chunks[i >> KEYS_CHUNK_SHIFT];
    if ((*c)->refs > 1) {
        struct keys_chunk *own = malloc(sizeof *own);
        if (own == NULL) {
            return NULL;
        }
        memcpy(own->slots, (*c)->slots, sizeof own->slots);
        own->refs = 1;
        (*c)->refs--;
        *c = own;
    }
    return &(*c)->slots[i & (KEYS_CHUNK - 1)];
}

void keys_prefetch(const struct keys *k, uint64_t h1)
{
    if (k->cap > 0) {
        __builtin_prefetch(keys__at(k, (size_t)h1 & (k->cap - 1)), 1);
    }
}

static int keys__grow(struct keys *k)
{
    size_t cap = k->cap ? k->cap * 2 : 1024;
    size_t nc = cap / KEYS_CHUNK;
    struct keys old = *k;
    struct keys_chunk **chunks = calloc(nc, sizeof *chunks);
    if (chunks == NULL) {
        return TALLY_NOMEM;
    }
    for (size_t i = 0; i < nc; i++) {
        if ((chunks[i] = calloc(1, sizeof *chunks[i])) == NULL) {
            keys__drop_chunks(chunks, nc);
            return TALLY_NOMEM;
        }
        chunks[i]->refs = 1;
    }
    k->chunks = chunks;
    k->cap = cap;
    for (size_t i = 0; i < old.cap; i++) {
        const struct keys_entry *e = keys__at(&old, i);
        if (e->h1 != 0 || e->h2 != 0) {
            *keys__at(k, keys__find(k, e->h1, e->h2)) = *e; /* (chunks all new) */
        }
    }
    keys__drop_chunks(old.chunks, old.cap / KEYS_CHUNK);
    return 0;
}

uint64_t keys_version(const struct keys *k, const void *key, size_t len)
{
    uint64_t h1, h2;
    if (k->cap == 0) {
        return 0;
    }
    keys__hash(key, len, &h1, &h2);
    return keys_version_hash(k, h1, h2);
}

uint64_t keys_version_hash(const struct keys *k, uint64_t h1, uint64_t h2)
{
    if (k->cap == 0) {
        return 0;
    }
    const struct keys_entry *e = keys__at(k, keys__find(k, h1, h2));
    return e->h1 == h1 && e->h2 == h2 ? e->version : 0;
}

void keys_hash(const void *key, size_t len, uint64_t *h1, uint64_t *h2)
{
    keys__hash(key, len, h1, h2);
}

/* Add @in (@add: its version to the key's) or set it; *out (if not NULL)
 * gets the key's new version. */
static int keys__put(struct keys *k, const struct keys_entry *in, bool add, uint64_t *out)
{
    if ((k->n + 1) * 4 > k->cap * 3) {
        int rv = keys__grow(k);
        if (rv != 0) {
            return rv;
        }
    }
    struct keys_entry *e = keys__writable(k, keys__find(k, in->h1, in->h2));
    if (e == NULL) {
        return TALLY_NOMEM;
    }
    if (e->h1 == 0 && e->h2 == 0) {
        e->h1 = in->h1;
        e->h2 = in->h2;
        e->version = 0;
        k->n++;
    }
    e->version = add ? e->version + in->version : in->version;
    e->offset = in->offset;
    if (out != NULL) {
        *out = e->version;
    }
    return 0;
}

int keys_bump(struct keys *k, const void *key, size_t len, uint64_t offset)
{
    struct keys_entry in = {0, 0, 1, offset};
    keys__hash(key, len, &in.h1, &in.h2);
    return keys__put(k, &in, true, NULL);
}

int keys_bump_hash(struct keys *k, uint64_t h1, uint64_t h2, uint64_t offset, uint64_t *version)
{
    struct keys_entry in = {h1, h2, 1, offset};
    return keys__put(k, &in, true, version);
}

int keys_share(struct keys *dst, const struct keys *src)
{
    size_t nc = src->cap / KEYS_CHUNK;
    keys_free(dst);
    if (nc == 0) {
        return 0;
    }
    dst->chunks = malloc(nc * sizeof *dst->chunks);
    if (dst->chunks == NULL) {
        return TALLY_NOMEM;
    }
    for (size_t i = 0; i < nc; i++) {
        dst->chunks[i] = src->chunks[i];
        dst->chunks[i]->refs++;
    }
    dst->cap = src->cap;
    dst->n = src->n;
    return 0;
}

const struct keys_entry *keys_slot(const struct keys *k, size_t i)
{
    const struct keys_entry *e = keys__at(k, i);
    return e->h1 != 0 || e->h2 != 0 ? e : NULL;
}

void keys_encode(const struct keys *k, struct buf *b)
{
    buf_put_u64(b, k->n);
    for (size_t i = 0; i < k->cap; i++) {
        const struct keys_entry *e = keys__at(k, i);
        if (e->h1 != 0 || e->h2 != 0) {
            buf_put_u64(b, e->h1);
            buf_put_u64(b, e->h2);
            buf_put_u64(b, e->version);
            buf_put_u64(b, e->offset);
        }
    }
}

int keys_decode(struct keys *k, struct rd *r)
{
    uint64_t n = rd_u64(r);
    keys_free(k);
    if (!rd_ok(r) || n > r->left / 32) {
        r->bad = true;
        return TALLY_CORRUPT;
    }
    for (uint64_t i = 0; i < n; i++) {
        struct keys_entry e;
        e.h1 = rd_u64(r);
        e.h2 = rd_u64(r);
        e.version = rd_u64(r);
        e.offset = rd_u64(r);
        if (!rd_ok(r) || (e.h1 == 0 && e.h2 == 0)) {
            r->bad = true;
            return TALLY_CORRUPT;
        }
        if (keys__put(k, &e, false, NULL) != 0) {
            return TALLY_NOMEM;
        }
    }
    return 0;
}
