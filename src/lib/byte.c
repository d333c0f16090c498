/* Little-endian encoding into a growable buffer, and bounds-checked decoding. */
#include "lib/byte.h"

#include <stdlib.h>

void buf_init(struct buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->oom = false;
}

void buf_free(struct buf *b)
{
    free(b->data);
    buf_init(b);
}

uint8_t *buf_reserve(struct buf *b, size_t n)
{
    if (b->oom) {
        return NULL;
    }
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) {
            cap *= 2;
        }
        uint8_t *p = realloc(b->data, cap);
        if (p == NULL) {
            b->oom = true;
            return NULL;
        }
        b->data = p;
        b->cap = cap;
    }
    return b->data + b->len;
}

void buf_put(struct buf *b, const void *p, size_t n)
{
    uint8_t *dst = buf_reserve(b, n);
    if (dst != NULL) {
        if (n > 0) {
            memcpy(dst, p, n);
        }
        b->len += n;
    }
}

void buf_put_u8(struct buf *b, uint8_t v) { buf_put(b, &v, 1); }

void buf_put_u16(struct buf *b, uint16_t v)
{
    uint8_t t[2];
    byte_put_u16(t, v);
    buf_put(b, t, 2);
}

void buf_put_u32(struct buf *b, uint32_t v)
{
    uint8_t t[4];
    byte_put_u32(t, v);
    buf_put(b, t, 4);
}

void buf_put_u64(struct buf *b, uint64_t v)
{
    uint8_t t[8];
    byte_put_u64(t, v);
    buf_put(b, t, 8);
}

void buf_put_str(struct buf *b, const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    buf_put_u16(b, (uint16_t)n);
    buf_put(b, s, n);
}

void buf_put_blob(struct buf *b, const void *p, uint32_t n)
{
    buf_put_u32(b, n);
    buf_put(b, p, n);
}

void buf_put_uvarint(struct buf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    while (v >= 0x80) {
        t[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    t[n++] = (uint8_t)v;
    buf_put(b, t, n);
}

size_t byte_uvarint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

void buf_put_svarint(struct buf *b, int64_t v)
{
    buf_put_uvarint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void buf_pad(struct buf *b, size_t align)
{
    static const uint8_t zeros[64];
    size_t rem = b->len % align;
    if (rem != 0) {
        buf_put(b, zeros, align - rem);
    }
}

const uint8_t *rd_bytes(struct rd *r, size_t n)
{
    const uint8_t *p;
    if (r->bad || r->left < n) {
        r->bad = true;
        return NULL;
    }
    p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

uint8_t rd_u8(struct rd *r)
{
    const uint8_t *p = rd_bytes(r, 1);
    return p != NULL ? p[0] : 0;
}

uint16_t rd_u16(struct rd *r)
{
    const uint8_t *p = rd_bytes(r, 2);
    return p != NULL ? byte_get_u16(p) : 0;
}

uint32_t rd_u32(struct rd *r)
{
    const uint8_t *p = rd_bytes(r, 4);
    return p != NULL ? byte_get_u32(p) : 0;
}

uint64_t rd_u64(struct rd *r)
{
    const uint8_t *p = rd_bytes(r, 8);
    return p != NULL ? byte_get_u64(p) : 0;
}

uint64_t rd_uvarint(struct rd *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        const uint8_t *p = rd_bytes(r, 1);
        if (p == NULL) {
            return 0;
        }
        v |= (uint64_t)(p[0] & 0x7f) << shift;
        if ((p[0] & 0x80) == 0) {
            return v;
        }
    }
    r->bad = true; /* more than 10 bytes: not a valid varint */
    return 0;
}

int64_t rd_svarint(struct rd *r)
{
    uint64_t u = rd_uvarint(r);
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

void rd_str(struct rd *r, char *out, size_t cap)
{
    uint16_t n = rd_u16(r);
    const uint8_t *p = rd_bytes(r, n);
    if (p == NULL || (size_t)n >= cap || memchr(p, 0, n) != NULL) {
        r->bad = true;
        if (cap > 0) {
            out[0] = '\0';
        }
        return;
    }
    memcpy(out, p, n);
    out[n] = '\0';
}

const uint8_t *rd_blob(struct rd *r, uint32_t *n)
{
    *n = rd_u32(r);
    const uint8_t *p = rd_bytes(r, *n);
    if (p == NULL) {
        *n = 0;
    }
    return p;
}
