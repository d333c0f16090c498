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

void keys_free(struct keys *k)
{
    free(k->slots);
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

static struct keys_entry *keys__slot(const struct keys *k, uint64_t h1, uint64_t h2)
{
    size_t mask = k->cap - 1;
    for (size_t i = (size_t)h1 & mask;; i = (i + 1) & mask) {
        struct keys_entry *e = &k->slots[i];
        if ((e->h1 == h1 && e->h2 == h2) || (e->h1 == 0 && e->h2 == 0)) {
            return e;
        }
    }
}

void keys_prefetch(const struct keys *k, uint64_t h1)
{
    if (k->cap > 0) {
        __builtin_prefetch(&k->slots[h1 & (k->cap - 1)], 1);
    }
}

static int keys__grow(struct keys *k)
{
    size_t cap = k->cap ? k->cap * 2 : 1024;
    struct keys old = *k;
    k->slots = calloc(cap, sizeof *k->slots);
    if (k->slots == NULL) {
        *k = old;
        return TALLY_NOMEM;
    }
    k->cap = cap;
    for (size_t i = 0; i < old.cap; i++) {
        struct keys_entry *e = &old.slots[i];
        if (e->h1 != 0 || e->h2 != 0) {
            *keys__slot(k, e->h1, e->h2) = *e;
        }
    }
    free(old.slots);
    return 0;
}

uint64_t keys_version(const struct keys *k, const void *key, size_t len)
{
    uint64_t h1, h2;
    if (k->cap == 0) {
        return 0;
    }
    keys__hash(key, len, &h1, &h2);
    const struct keys_entry *e = keys__slot(k, h1, h2);
    return e->h1 == h1 && e->h2 == h2 ? e->version : 0;
}

uint64_t keys_version_hash(const struct keys *k, uint64_t h1, uint64_t h2)
{
    if (k->cap == 0) {
        return 0;
    }
    const struct keys_entry *e = keys__slot(k, h1, h2);
    return e->h1 == h1 && e->h2 == h2 ? e->version : 0;
}

void keys_hash(const void *key, size_t len, uint64_t *h1, uint64_t *h2)
{
    keys__hash(key, len, h1, h2);
}

static int keys__put(struct keys *k, const struct keys_entry *in, bool add)
{
    if ((k->n + 1) * 4 > k->cap * 3) {
        int rv = keys__grow(k);
        if (rv != 0) {
            return rv;
        }
    }
    struct keys_entry *e = keys__slot(k, in->h1, in->h2);
    if (e->h1 == 0 && e->h2 == 0) {
        e->h1 = in->h1;
        e->h2 = in->h2;
        e->version = 0;
        k->n++;
    }
    e->version = add ? e->version + in->version : in->version;
    e->offset = in->offset;
    return 0;
}

int keys_bump(struct keys *k, const void *key, size_t len, uint64_t offset)
{
    struct keys_entry in = {0, 0, 1, offset};
    keys__hash(key, len, &in.h1, &in.h2);
    return keys__put(k, &in, true);
}

int keys_bump_hash(struct keys *k, uint64_t h1, uint64_t h2, uint64_t offset, uint64_t *version)
{
    struct keys_entry in = {h1, h2, 1, offset};
    int rv = keys__put(k, &in, true);
    if (rv == 0) {
        *version = keys__slot(k, h1, h2)->version;
    }
    return rv;
}

int keys_copy_packed(struct keys *dst, const struct keys *src)
{
    size_t j = 0;
    keys_free(dst);
    if (src->n > 0) {
        dst->slots = malloc(src->n * sizeof *dst->slots);
        if (dst->slots == NULL) {
            return TALLY_NOMEM;
        }
        for (size_t i = 0; i < src->cap; i++) {
            const struct keys_entry *e = &src->slots[i];
            if (e->h1 != 0 || e->h2 != 0) {
                dst->slots[j++] = *e;
            }
        }
    }
    dst->cap = j; /* every slot full: keys_encode reads them all */
    dst->n = j;
    return 0;
}

void keys_encode(const struct keys *k, struct buf *b)
{
    buf_put_u64(b, k->n);
    for (size_t i = 0; i < k->cap; i++) {
        const struct keys_entry *e = &k->slots[i];
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
        if (keys__put(k, &e, false) != 0) {
            return TALLY_NOMEM;
        }
    }
    return 0;
}
