/* The stream index of one topic: key hash -> offsets by stream version
 * (streams.h says why one array per key is enough). */
#include "store/streams.h"

#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

void streams_init(struct streams *s)
{
    memset(s, 0, sizeof *s);
}

void streams_free(struct streams *s)
{
    if (s->block != NULL) {
        free(s->block);
    } else {
        for (size_t i = 0; i < s->cap; i++) {
            free(s->slots[i].e);
        }
    }
    free(s->slots);
    free(s->batches);
    streams_init(s);
}

static bool streams__free_slot(const struct streams_stream *st)
{
    return st->h1 == 0 && st->h2 == 0;
}

static struct streams_stream *streams__slot(const struct streams *s, uint64_t h1, uint64_t h2)
{
    size_t mask = s->cap - 1;
    for (size_t i = (size_t)h1 & mask;; i = (i + 1) & mask) {
        struct streams_stream *st = &s->slots[i];
        if ((st->h1 == h1 && st->h2 == h2) || streams__free_slot(st)) {
            return st;
        }
    }
}

void streams_prefetch(const struct streams *s, uint64_t h1)
{
    if (s->cap > 0) {
        __builtin_prefetch(&s->slots[h1 & (s->cap - 1)], 1);
    }
}

static int streams__grow(struct streams *s)
{
    size_t cap = s->cap ? s->cap * 2 : 1024;
    struct streams_stream *slots = calloc(cap, sizeof *slots);
    if (slots == NULL) {
        return TALLY_NOMEM;
    }
    struct streams old = *s;
    s->slots = slots;
    s->cap = cap;
    for (size_t i = 0; i < old.cap; i++) {
        if (!streams__free_slot(&old.slots[i])) {
            *streams__slot(s, old.slots[i].h1, old.slots[i].h2) = old.slots[i];
        }
    }
    free(old.slots);
    return 0;
}

/* The stream of hash @h1/@h2, created empty when missing. */
static int streams__get(struct streams *s, uint64_t h1, uint64_t h2, struct streams_stream **out)
{
    if ((s->used + 1) * 4 > s->cap * 3) {
        int rv = streams__grow(s);
        if (rv != 0) {
            return rv;
        }
    }
    struct streams_stream *st = streams__slot(s, h1, h2);
    if (streams__free_slot(st)) {
        memset(st, 0, sizeof *st);
        st->h1 = h1;
        st->h2 = h2;
        st->first_version = 1;
        s->used++;
    }
    *out = st;
    return 0;
}

struct streams_stream *streams_find(const struct streams *s, const void *key, size_t len)
{
    uint64_t h1, h2;
    if (s->cap == 0) {
        return NULL;
    }
    keys_hash(key, len, &h1, &h2);
    struct streams_stream *st = streams__slot(s, h1, h2);
    return streams__free_slot(st) ? NULL : st;
}

uint64_t streams_last_version(const struct streams_stream *st)
{
    return st->first_version + st->n - 1;
}

uint32_t streams_index_of_offset(const struct streams_stream *st, uint64_t offset)
{
    uint32_t lo = 0, hi = st->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (st->e[mid].offset < offset) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

void streams_drop_front(struct streams *s, struct streams_stream *st, uint32_t k)
{
    if (k == 0) {
        return;
    }
    if (k > st->n) {
        k = st->n;
    }
    memmove(st->e, st->e + k, (st->n - k) * sizeof *st->e);
    st->n -= k;
    st->first_version += k;
    s->events -= k;
}

static int streams__reserve(struct streams_stream *st, uint32_t want)
{
    if (want <= st->cap) {
        return 0;
    }
    uint32_t cap = st->cap ? st->cap : 4;
    while (cap < want) {
        cap = cap > UINT32_MAX / 2 ? UINT32_MAX : cap * 2;
    }
    struct streams_entry *p = realloc(st->e, (size_t)cap * sizeof *p);
    if (p == NULL) {
        return TALLY_NOMEM;
    }
    st->e = p;
    st->cap = cap;
    return 0;
}

static int streams__add_hash(struct streams *s, uint64_t h1, uint64_t h2, uint64_t offset,
                             uint64_t version, struct streams_place place)
{
    struct streams_stream *st;
    int rv;
    if ((rv = streams__get(s, h1, h2, &st)) != 0) {
        return rv;
    }
    /* Entries at or after this one's place are stale (not expected from
     * apply, which only appends; kept exact anyway). */
    while (st->n > 0 && (st->e[st->n - 1].offset >= offset || streams_last_version(st) >= version)) {
        st->n--;
        s->events--;
    }
    if (st->n > 0 && streams_last_version(st) + 1 != version) {
        /* The records between are gone, so the older ones are too. */
        s->events -= st->n;
        st->n = 0;
    }
    if (st->n == 0) {
        st->first_version = version;
    }
    if ((rv = streams__reserve(st, st->n + 1)) != 0) {
        return rv;
    }
    st->e[st->n].offset = offset;
    st->e[st->n++].place = place;
    s->events++;
    return 0;
}

static const struct streams_place streams__nowhere = {0, 0};

struct streams_place streams_place_of(uint64_t batch_pos, uint32_t at_in_batch)
{
    struct streams_place p = {(uint32_t)batch_pos, at_in_batch + 1};
    return batch_pos <= UINT32_MAX && at_in_batch < UINT32_MAX ? p : streams__nowhere;
}

int streams_add(struct streams *s, const void *key, size_t len, uint64_t offset,
                uint64_t version)
{
    uint64_t h1, h2;
    keys_hash(key, len, &h1, &h2);
    return streams__add_hash(s, h1, h2, offset, version, streams__nowhere);
}

int streams_add_hash_at(struct streams *s, uint64_t h1, uint64_t h2, uint64_t offset,
                        uint64_t version, uint64_t batch_pos, uint32_t at_in_batch)
{
    return streams__add_hash(s, h1, h2, offset, version,
                             streams_place_of(batch_pos, at_in_batch));
}

int streams_add_at(struct streams *s, const void *key, size_t len, uint64_t offset,
                   uint64_t version, uint64_t batch_pos, uint32_t at_in_batch)
{
    uint64_t h1, h2;
    keys_hash(key, len, &h1, &h2);
    return streams_add_hash_at(s, h1, h2, offset, version, batch_pos, at_in_batch);
}

/* Base offsets step by batch sizes, often multiples of a power of two:
 * scatter them (Fibonacci hashing) rather than take them modulo the size,
 * which left 1 slot in 16 used for 2048-record batches. */
static size_t streams__batch_slot(uint64_t base_offset, size_t n)
{
    return (size_t)((base_offset * 0x9E3779B97F4A7C15ull) >> 32) & (n - 1);
}

/* A table of @n slots holding what @s's table held. */
static void streams__batches_resize(struct streams *s, size_t n)
{
    struct streams_batch *t = calloc(n, sizeof *t);
    if (t == NULL) {
        return; /* (the old table stays) */
    }
    for (size_t i = 0; s->batches != NULL && i < s->n_batches; i++) {
        const struct streams_batch *b = &s->batches[i];
        if (b->base_offset != 0 || b->payload_checksum != 0) {
            t[streams__batch_slot(b->base_offset, n)] = *b;
        }
    }
    free(s->batches);
    s->batches = t;
    s->n_batches = n;
    s->batches_seen = 0;
}

void streams_batch_seen(struct streams *s, uint64_t base_offset, uint64_t payload_checksum)
{
    _Static_assert((STREAMS_BATCHES_MIN & (STREAMS_BATCHES_MIN - 1)) == 0, "a power of two");
    _Static_assert((STREAMS_BATCHES_MAX & (STREAMS_BATCHES_MAX - 1)) == 0, "a power of two");
    if (s->batches == NULL) {
        streams__batches_resize(s, STREAMS_BATCHES_MIN);
    } else if (s->batches_seen >= s->n_batches && s->n_batches < STREAMS_BATCHES_MAX) {
        streams__batches_resize(s, s->n_batches * 2);
    }
    if (s->batches == NULL) {
        return;
    }
    struct streams_batch *b = &s->batches[streams__batch_slot(base_offset, s->n_batches)];
    if (b->base_offset != base_offset || b->payload_checksum != payload_checksum) {
        b->base_offset = base_offset;
        b->payload_checksum = payload_checksum;
        s->batches_seen++;
    }
}

bool streams_batch_known(const struct streams *s, uint64_t base_offset, uint64_t payload_checksum)
{
    if (s->batches == NULL) {
        return false;
    }
    const struct streams_batch *b = &s->batches[streams__batch_slot(base_offset, s->n_batches)];
    /* (a zero entry never matches: a real payload checksum of 0 with base
     * offset 0 is merely not remembered) */
    return b->base_offset == base_offset && b->payload_checksum == payload_checksum &&
           (base_offset != 0 || payload_checksum != 0);
}

int streams_append(struct streams *s, const struct streams *from, const struct keys *k)
{
    for (size_t i = 0; i < from->cap; i++) {
        const struct streams_stream *f = &from->slots[i];
        if (streams__free_slot(f) || f->n == 0) {
            continue;
        }
        uint64_t last = keys_version_hash(k, f->h1, f->h2);
        uint32_t m = f->n < last ? f->n : (uint32_t)last;
        for (uint32_t j = 0; j < m; j++) {
            uint32_t at = f->n - m + j;
            int rv = streams__add_hash(s, f->h1, f->h2, f->e[at].offset, last - m + 1 + j,
                                       f->e[at].place);
            if (rv != 0) {
                return rv;
            }
        }
    }
    return 0;
}

void streams_cut(struct streams *s, uint64_t offset)
{
    for (size_t i = 0; i < s->cap; i++) {
        struct streams_stream *st = &s->slots[i];
        if (!streams__free_slot(st)) {
            uint32_t k = streams_index_of_offset(st, offset);
            s->events -= st->n - k;
            st->n = k;
        }
    }
}

void streams_trim(struct streams *s, uint64_t offset)
{
    for (size_t i = 0; i < s->cap; i++) {
        struct streams_stream *st = &s->slots[i];
        if (!streams__free_slot(st)) {
            streams_drop_front(s, st, streams_index_of_offset(st, offset));
        }
    }
}

void streams_clear(struct streams *s)
{
    streams_free(s);
}

int streams_prepend(struct streams *s, const struct streams *from, const struct keys *k)
{
    for (size_t i = 0; i < from->cap; i++) {
        const struct streams_stream *f = &from->slots[i];
        struct streams_stream *st;
        int rv;
        if (streams__free_slot(f) || f->n == 0) {
            continue;
        }
        if ((rv = streams__get(s, f->h1, f->h2, &st)) != 0) {
            return rv;
        }
        uint64_t last = st->n > 0 ? st->first_version - 1 : keys_version_hash(k, f->h1, f->h2);
        uint32_t m = f->n;
        if (last < m) {
            /* The key index counts fewer records than the log holds: it was
             * rebuilt from a shorter log. Keep the newest it accounts for. */
            m = (uint32_t)last;
        }
        if (m == 0) {
            continue;
        }
        if ((rv = streams__reserve(st, st->n + m)) != 0) {
            return rv;
        }
        memmove(st->e + m, st->e, st->n * sizeof *st->e);
        memcpy(st->e, f->e + (f->n - m), m * sizeof *st->e);
        st->n += m;
        st->first_version = last - m + 1;
        s->events += m;
    }
    return 0;
}

int streams_copy_packed(struct streams *dst, const struct streams *src, uint64_t min_offset)
{
    size_t j = 0;
    uint64_t at = 0;
    streams_free(dst);
    if (src->used > 0) {
        dst->slots = calloc(src->used, sizeof *dst->slots);
        /* (+1: never a zero-size allocation) */
        dst->block = malloc((size_t)(src->events + 1) * sizeof *dst->block);
        if (dst->slots == NULL || dst->block == NULL) {
            free(dst->slots);
            free(dst->block);
            streams_init(dst);
            return TALLY_NOMEM;
        }
    }
    dst->cap = src->used; /* every slot taken: good for encoding only */
    for (size_t i = 0; i < src->cap; i++) {
        const struct streams_stream *st = &src->slots[i];
        if (streams__free_slot(st)) {
            continue;
        }
        uint32_t k = streams_index_of_offset(st, min_offset);
        struct streams_stream *d = &dst->slots[j++];
        d->h1 = st->h1;
        d->h2 = st->h2;
        d->first_version = st->first_version + k;
        d->n = d->cap = st->n - k;
        d->e = dst->block + at;
        memcpy(d->e, st->e + k, (size_t)d->n * sizeof *d->e);
        at += d->n;
    }
    dst->events = at;
    dst->used = j;
    return 0;
}

void streams_encode(const struct streams *s, bool places, struct buf *b)
{
    uint64_t n = 0;
    for (size_t i = 0; i < s->cap; i++) {
        n += !streams__free_slot(&s->slots[i]) && s->slots[i].n > 0;
    }
    buf_put_u64(b, n);
    for (size_t i = 0; i < s->cap; i++) {
        const struct streams_stream *st = &s->slots[i];
        if (streams__free_slot(st) || st->n == 0) {
            continue;
        }
        buf_put_u64(b, st->h1);
        buf_put_u64(b, st->h2);
        buf_put_u64(b, st->first_version);
        buf_put_u32(b, st->n);
        buf_put_uvarint(b, st->e[0].offset);
        for (uint32_t j = 1; j < st->n; j++) {
            buf_put_uvarint(b, st->e[j].offset - st->e[j - 1].offset);
        }
        uint32_t prev = 0;
        for (uint32_t j = 0; places && j < st->n; j++) {
            const struct streams_place *p = &st->e[j].place;
            buf_put_uvarint(b, p->at);
            if (p->at != 0) {
                buf_put_svarint(b, (int64_t)p->batch_pos - (int64_t)prev);
                prev = p->batch_pos;
            }
        }
    }
}

int streams_decode(struct streams *s, bool places, struct rd *r)
{
    uint64_t n = rd_u64(r);
    streams_free(s);
    /* A stream takes at least 29 bytes: a count beyond that is a lie. */
    if (!rd_ok(r) || n > r->left / 29) {
        r->bad = true;
        return TALLY_CORRUPT;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t h1 = rd_u64(r), h2 = rd_u64(r), first = rd_u64(r);
        uint32_t count = rd_u32(r);
        struct streams_stream *st;
        int rv;
        if (!rd_ok(r) || (h1 == 0 && h2 == 0) || first == 0 || count == 0 ||
            count > r->left || first > UINT64_MAX - count) {
            r->bad = true;
            return TALLY_CORRUPT;
        }
        if ((rv = streams__get(s, h1, h2, &st)) != 0) {
            return rv;
        }
        if (st->n != 0 || (rv = streams__reserve(st, count)) != 0) {
            r->bad = st->n != 0; /* the same hash twice */
            return st->n != 0 ? TALLY_CORRUPT : rv;
        }
        st->first_version = first;
        uint64_t at = rd_uvarint(r);
        for (uint32_t j = 0; j < count && rd_ok(r); j++) {
            if (j > 0) {
                uint64_t d = rd_uvarint(r);
                if (d == 0 || at > UINT64_MAX - d) {
                    r->bad = true;
                }
                at += d;
            }
            st->e[j].offset = at;
            st->e[j].place = streams__nowhere;
        }
        int64_t prev = 0;
        for (uint32_t j = 0; places && j < count && rd_ok(r); j++) {
            uint64_t in_batch = rd_uvarint(r);
            if (in_batch == 0) {
                continue;
            }
            int64_t step = rd_svarint(r);
            /* (both ends within 32 bits: no overflow) */
            int64_t pos = step >= -(int64_t)UINT32_MAX && step <= (int64_t)UINT32_MAX
                              ? prev + step : -1;
            if (in_batch > UINT32_MAX || pos < 0 || pos > (int64_t)UINT32_MAX) {
                r->bad = true;
                break;
            }
            st->e[j].place.at = (uint32_t)in_batch;
            st->e[j].place.batch_pos = (uint32_t)pos;
            prev = pos;
        }
        if (!rd_ok(r)) {
            r->bad = true;
            return TALLY_CORRUPT;
        }
        st->n = count;
        s->events += count;
    }
    return 0;
}

uint64_t streams_memory(const struct streams *s)
{
    uint64_t bytes = s->cap * sizeof *s->slots;
    for (size_t i = 0; i < s->cap; i++) {
        bytes += (uint64_t)s->slots[i].cap * (sizeof(uint64_t) + sizeof(struct streams_place));
    }
    return bytes;
}
