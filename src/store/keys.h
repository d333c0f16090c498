/* The key index of one topic: for every key ever written, how many records
 * it has had (its version) and the offset of its latest record. Keys are
 * held as their 128-bit XXH3 hash (32 bytes per slot in memory; the table
 * is doubled when 3/4 full, so 43 to 85 bytes per key: 512 MiB for 10
 * million keys).
 *
 * The table is cut into chunks of KEYS_CHUNK slots that copies share
 * (keys_share): a snapshot's freeze takes a copy in time proportional to
 * the number of chunks, not of keys, and a write to a chunk still shared
 * copies that chunk first (copy on write), at most once per chunk and
 * copy. Every function here runs on one thread (the loop), but a shared
 * copy may be read (keys_encode) on another while the loop writes to the
 * index it was taken from. */
#ifndef TALLY_STORE_KEYS_H_
#define TALLY_STORE_KEYS_H_

#include <stddef.h>
#include <stdint.h>

#include "lib/byte.h"

#define KEYS_CHUNK_SHIFT 8
#define KEYS_CHUNK (1u << KEYS_CHUNK_SHIFT) /* slots per chunk: 8 KiB */

struct keys_entry {
    uint64_t h1, h2;     /* XXH3-128 of the key; h1 == h2 == 0: empty slot */
    uint64_t version;    /* records with this key so far */
    uint64_t offset;     /* offset of the latest one */
};

struct keys_chunk {
    unsigned refs;       /* tables holding it: written only when 1 */
    struct keys_entry slots[KEYS_CHUNK];
};

struct keys {
    struct keys_chunk **chunks; /* cap / KEYS_CHUNK of them */
    size_t cap;                 /* slots: a power of two (>= KEYS_CHUNK), or 0;
                                 * open addressing, linear probing */
    size_t n;                   /* keys held */
};

void keys_init(struct keys *k);
void keys_free(struct keys *k);

/* Version of @key (0 if never written). */
uint64_t keys_version(const struct keys *k, const void *key, size_t len);

/* Version of the key whose hash is @h1/@h2 (as keys_hash gives it; 0 if
 * never written): for the stream index, which holds hashes only. */
uint64_t keys_version_hash(const struct keys *k, uint64_t h1, uint64_t h2);
/* The hash keys are held by (never 0/0). */
void keys_hash(const void *key, size_t len, uint64_t *h1, uint64_t *h2);
/* Start loading the memory where the key whose hash is @h1 is looked up
 * first (a hint to the CPU, no effect on the table): apply hashes the keys
 * of several records ahead of updating them, so that their cache misses
 * overlap. */
void keys_prefetch(const struct keys *k, uint64_t h1);

/* One more record with @key, at @offset. Returns 0 or TALLY_NOMEM. */
int keys_bump(struct keys *k, const void *key, size_t len, uint64_t offset);

/* keys_bump for the key whose hash (keys_hash) is @h1/@h2; *version
 * gets its new version (for the stream index, which takes both at once). */
int keys_bump_hash(struct keys *k, uint64_t h1, uint64_t h2, uint64_t offset, uint64_t *version);

/* Replace @dst with a copy of @src that shares its chunks (O(chunks)):
 * what a snapshot freezes. Returns 0 (it cannot fail but for memory:
 * TALLY_NOMEM). */
int keys_share(struct keys *dst, const struct keys *src);

/* Slot @i (< k->cap) of the table, or NULL when it is empty: to walk every
 * entry. */
const struct keys_entry *keys_slot(const struct keys *k, size_t i);

/* Serialise: u64 n, then n x (u64 h1, u64 h2, u64 version, u64 offset). */
void keys_encode(const struct keys *k, struct buf *b);
/* Replace @k with what @r holds. TALLY_CORRUPT on malformed input. */
int keys_decode(struct keys *k, struct rd *r);

#endif
