/* Little-endian encoding into a growable buffer, and bounds-checked decoding
 * from a cursor. memcpy-based: no unaligned loads, no host-order surprises.
 *
 * Writer: calls never fail individually; an allocation failure sets
 * b->oom and later calls do nothing, so a sequence of puts is checked once
 * at the end (buf_ok()).
 * Reader: a read past the end sets r->bad and returns zeroes, so a decoder
 * reads every field and checks rd_ok() once. Bytes from disk or the network
 * can therefore never cause an out-of-bounds access. */
#ifndef TALLY_LIB_BYTE_H_
#define TALLY_LIB_BYTE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct buf {
    uint8_t *data; /* owned; free with buf_free() */
    size_t len;    /* bytes written */
    size_t cap;    /* bytes allocated */
    bool oom;      /* an allocation failed; contents are incomplete */
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
/* Make room for @n more bytes; returns a pointer to them (not yet counted
 * in len), or NULL on allocation failure. */
uint8_t *buf_reserve(struct buf *b, size_t n);
/* Append @n bytes that buf_reserve() returned and the caller filled. */
static inline void buf_commit(struct buf *b, size_t n) { b->len += n; }
void buf_put(struct buf *b, const void *p, size_t n);
void buf_put_u8(struct buf *b, uint8_t v);
void buf_put_u16(struct buf *b, uint16_t v);
void buf_put_u32(struct buf *b, uint32_t v);
void buf_put_u64(struct buf *b, uint64_t v);
static inline void buf_put_i64(struct buf *b, int64_t v) { buf_put_u64(b, (uint64_t)v); }
/* u16 length + bytes. Strings longer than 65535 bytes are a caller bug. */
void buf_put_str(struct buf *b, const char *s);
/* u32 length + bytes. */
void buf_put_blob(struct buf *b, const void *p, uint32_t n);
/* LEB128 unsigned varint, and zigzag-encoded signed varint. */
void buf_put_uvarint(struct buf *b, uint64_t v);
void buf_put_svarint(struct buf *b, int64_t v);
/* Bytes buf_put_uvarint / buf_put_svarint write for @v (an encoder that
 * sizes a record before writing it; Kafka's varints are the same zigzag
 * LEB128). */
size_t byte_uvarint_len(uint64_t v);
static inline size_t byte_svarint_len(int64_t v)
{
    return byte_uvarint_len(((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}
/* Append zero bytes until len is a multiple of @align. */
void buf_pad(struct buf *b, size_t align);
static inline bool buf_ok(const struct buf *b) { return !b->oom; }

struct rd {
    const uint8_t *p; /* next unread byte (borrowed) */
    size_t left;      /* bytes left */
    bool bad;         /* a read went past the end or a value was invalid */
};

static inline void rd_init(struct rd *r, const void *p, size_t n)
{
    r->p = p;
    r->left = n;
    r->bad = false;
}
static inline bool rd_ok(const struct rd *r) { return !r->bad; }
/* Returns a pointer to the next @n bytes and skips them, or NULL. */
const uint8_t *rd_bytes(struct rd *r, size_t n);
uint8_t rd_u8(struct rd *r);
uint16_t rd_u16(struct rd *r);
uint32_t rd_u32(struct rd *r);
uint64_t rd_u64(struct rd *r);
static inline int64_t rd_i64(struct rd *r) { return (int64_t)rd_u64(r); }
uint64_t rd_uvarint(struct rd *r);
int64_t rd_svarint(struct rd *r);
/* u16 length + bytes, copied NUL-terminated into @out of size @cap; a
 * string that does not fit, or contains a NUL, marks the reader bad. */
void rd_str(struct rd *r, char *out, size_t cap);
/* u32 length + bytes; returns a pointer into the input (borrowed). */
const uint8_t *rd_blob(struct rd *r, uint32_t *n);

/* Fixed-position helpers for headers. */
static inline void byte_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void byte_put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline void byte_put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline uint16_t byte_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t byte_get_u32(const uint8_t *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = (v << 8) | p[i]; return v; }
static inline uint64_t byte_get_u64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = (v << 8) | p[i]; return v; }

#endif
