/* Kafka's primitive wire types: see wire.h. */
#include "kafka/wire.h"

void kafka_rd_init(struct kafka_rd *r, const void *p, size_t n)
{
    r->p = p;
    r->left = n;
    r->bad = false;
}

const uint8_t *kafka_rd_raw(struct kafka_rd *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static uint64_t kafka__rd_be(struct kafka_rd *r, size_t n)
{
    const uint8_t *p = kafka_rd_raw(r, n);
    uint64_t v = 0;
    if (p == NULL) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

int8_t kafka_rd_i8(struct kafka_rd *r) { return (int8_t)kafka__rd_be(r, 1); }
int16_t kafka_rd_i16(struct kafka_rd *r) { return (int16_t)kafka__rd_be(r, 2); }
int32_t kafka_rd_i32(struct kafka_rd *r) { return (int32_t)kafka__rd_be(r, 4); }
int64_t kafka_rd_i64(struct kafka_rd *r) { return (int64_t)kafka__rd_be(r, 8); }

/* Unsigned LEB128 of at most @max_bytes bytes. */
static uint64_t kafka__rd_leb(struct kafka_rd *r, unsigned max_bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < max_bytes; i++) {
        const uint8_t *p = kafka_rd_raw(r, 1);
        if (p == NULL) {
            return 0;
        }
        v |= (uint64_t)(*p & 0x7F) << (7 * i);
        if ((*p & 0x80) == 0) {
            return v;
        }
    }
    r->bad = true; /* too long */
    return 0;
}

uint32_t kafka_rd_uvarint(struct kafka_rd *r)
{
    uint64_t v = kafka__rd_leb(r, 5);
    if (v > UINT32_MAX) {
        r->bad = true;
        return 0;
    }
    return (uint32_t)v;
}

int32_t kafka_rd_varint(struct kafka_rd *r)
{
    uint32_t u = kafka_rd_uvarint(r);
    return (int32_t)((u >> 1) ^ (~(u & 1) + 1));
}

int64_t kafka_rd_varlong(struct kafka_rd *r)
{
    uint64_t u = kafka__rd_leb(r, 10);
    return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

static struct kafka_str kafka__rd_len_bytes(struct kafka_rd *r, int64_t len)
{
    struct kafka_str s = {NULL, -1};
    if (len < 0) {
        if (len != -1) {
            r->bad = true;
        }
        return s;
    }
    if ((uint64_t)len > r->left) {
        r->bad = true;
        return s;
    }
    s.p = kafka_rd_raw(r, (size_t)len);
    s.len = (int32_t)len;
    if (s.p == NULL) {
        s.len = -1;
    }
    return s;
}

struct kafka_str kafka_rd_string(struct kafka_rd *r, bool flex)
{
    int64_t len = flex ? (int64_t)kafka_rd_uvarint(r) - 1 : kafka_rd_i16(r);
    return kafka__rd_len_bytes(r, r->bad ? 0 : len);
}

struct kafka_str kafka_rd_bytes(struct kafka_rd *r, bool flex)
{
    int64_t len = flex ? (int64_t)kafka_rd_uvarint(r) - 1 : kafka_rd_i32(r);
    return kafka__rd_len_bytes(r, r->bad ? 0 : len);
}

int32_t kafka_rd_array(struct kafka_rd *r, bool flex, size_t min_elem)
{
    int64_t n = flex ? (int64_t)kafka_rd_uvarint(r) - 1 : kafka_rd_i32(r);
    if (r->bad || n < -1 || (n > 0 && (uint64_t)n * min_elem > r->left)) {
        r->bad = true;
        return 0;
    }
    return (int32_t)n;
}

void kafka_rd_tags(struct kafka_rd *r, bool flex)
{
    if (!flex) {
        return;
    }
    uint32_t n = kafka_rd_uvarint(r);
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        (void)kafka_rd_uvarint(r); /* tag: none is known to this build */
        uint32_t size = kafka_rd_uvarint(r);
        (void)kafka_rd_raw(r, size);
    }
}

static void kafka__put_be(struct buf *b, uint64_t v, size_t n)
{
    uint8_t *p = buf_reserve(b, n);
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    }
    buf_commit(b, n);
}

void kafka_put_i8(struct buf *b, int8_t v) { kafka__put_be(b, (uint8_t)v, 1); }
void kafka_put_i16(struct buf *b, int16_t v) { kafka__put_be(b, (uint16_t)v, 2); }
void kafka_put_i32(struct buf *b, int32_t v) { kafka__put_be(b, (uint32_t)v, 4); }
void kafka_put_i64(struct buf *b, int64_t v) { kafka__put_be(b, (uint64_t)v, 8); }
/* Kafka's varints are LEB128 (zigzag for the signed ones), as lib/byte's. */
void kafka_put_uvarint(struct buf *b, uint32_t v) { buf_put_uvarint(b, v); }
void kafka_put_varint(struct buf *b, int32_t v) { buf_put_svarint(b, v); }
void kafka_put_varlong(struct buf *b, int64_t v) { buf_put_svarint(b, v); }

static void kafka__put_len(struct buf *b, bool flex, bool wide, int64_t len)
{
    if (flex) {
        kafka_put_uvarint(b, (uint32_t)(len + 1));
    } else if (wide) {
        kafka_put_i32(b, (int32_t)len);
    } else {
        kafka_put_i16(b, (int16_t)len);
    }
}

void kafka_put_string(struct buf *b, bool flex, const void *s, size_t len)
{
    kafka__put_len(b, flex, false, s == NULL ? -1 : (int64_t)len);
    if (s != NULL) {
        buf_put(b, s, len);
    }
}

void kafka_put_cstring(struct buf *b, bool flex, const char *s)
{
    kafka_put_string(b, flex, s, s != NULL ? strlen(s) : 0);
}

void kafka_put_bytes(struct buf *b, bool flex, const void *p, size_t len)
{
    kafka__put_len(b, flex, true, p == NULL ? -1 : (int64_t)len);
    if (p != NULL) {
        buf_put(b, p, len);
    }
}

void kafka_put_array(struct buf *b, bool flex, int32_t n)
{
    kafka__put_len(b, flex, true, n);
}

void kafka_put_tags(struct buf *b, bool flex)
{
    if (flex) {
        kafka_put_uvarint(b, 0);
    }
}

void kafka_patch_i32(struct buf *b, size_t at, uint32_t v)
{
    if (!buf_ok(b) || at + 4 > b->len) {
        return;
    }
    for (int i = 0; i < 4; i++) {
        b->data[at + (size_t)i] = (uint8_t)(v >> (8 * (3 - i)));
    }
}

void kafka_patch_i64(struct buf *b, size_t at, uint64_t v)
{
    kafka_patch_i32(b, at, (uint32_t)(v >> 32));
    kafka_patch_i32(b, at + 4, (uint32_t)v);
}
