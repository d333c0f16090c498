/* Shares: how a shared consumer group splits a topic among its members
 * (docs/groups.md). A group reading a topic in N shares (1..SHARE_MAX)
 * gives each record to share share_of(): a keyed record by a hash of its
 * key, so that every record of one key goes to the same share (and so to
 * one member at a time, in offset order); a record without a key by its
 * offset, so that keyless records are spread. The server filters by it
 * (FETCH_FILTERED) and the client checks the same function, so both sides
 * must agree: this is part of the wire protocol and must never change. */
#ifndef TALLY_LIB_SHARE_H_
#define TALLY_LIB_SHARE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHARE_MAX 256     /* shares per group */
#define SHARE_DEFAULT 16  /* a group that does not say */

/* The share (0..@n_shares-1) of the record at @offset with key @key
 * (NULL or empty: keyless, spread by offset). @n_shares is 1..SHARE_MAX. */
uint32_t share_of(const void *key, size_t key_len, uint64_t offset, uint32_t n_shares);

/* A set of shares as a bitmap of SHARE_MAX bits. */
struct share_set {
    uint8_t bits[SHARE_MAX / 8];
};

static inline bool share_set_has(const struct share_set *s, uint32_t share)
{
    return share < SHARE_MAX && (s->bits[share / 8] >> (share % 8)) & 1;
}

static inline void share_set_add(struct share_set *s, uint32_t share)
{
    if (share < SHARE_MAX) {
        s->bits[share / 8] |= (uint8_t)(1u << (share % 8));
    }
}

#endif
