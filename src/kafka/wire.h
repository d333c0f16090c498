/* Kafka's primitive wire types (big-endian), as its message schemas
 * (apache/kafka clients/src/main/resources/common/message/, one JSON file per message) use them:
 * fixed integers, varints, strings, bytes and arrays in their classic
 * (int16/int32 length) and flexible ("compact": unsigned varint length + 1)
 * forms, and tagged fields. Decoding is bounds-checked: a read past the
 * end or an impossible length sets rd->bad and returns zero/NULL, so a
 * decoder reads on and checks once at the end (lib/byte.h's style). */
#ifndef TALLY_KAFKA_WIRE_H_
#define TALLY_KAFKA_WIRE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/byte.h"

struct kafka_rd {
    const uint8_t *p; /* next unread byte (borrowed) */
    size_t left;      /* bytes left */
    bool bad;         /* a read went past the end or a length was invalid */
};

/* A string or bytes field: @p borrows from the input; @len -1 is null. */
struct kafka_str {
    const uint8_t *p;
    int32_t len;
};

void kafka_rd_init(struct kafka_rd *r, const void *p, size_t n);
int8_t kafka_rd_i8(struct kafka_rd *r);
int16_t kafka_rd_i16(struct kafka_rd *r);
int32_t kafka_rd_i32(struct kafka_rd *r);
int64_t kafka_rd_i64(struct kafka_rd *r);
uint32_t kafka_rd_uvarint(struct kafka_rd *r);
int32_t kafka_rd_varint(struct kafka_rd *r);   /* zigzag */
int64_t kafka_rd_varlong(struct kafka_rd *r);  /* zigzag */
const uint8_t *kafka_rd_raw(struct kafka_rd *r, size_t n);
/* STRING / NULLABLE_STRING (int16 length) or COMPACT_* (@flex). */
struct kafka_str kafka_rd_string(struct kafka_rd *r, bool flex);
/* BYTES / NULLABLE_BYTES / RECORDS (int32 length) or COMPACT_* (@flex). */
struct kafka_str kafka_rd_bytes(struct kafka_rd *r, bool flex);
/* An array's element count (-1: null). A count that cannot fit in the
 * bytes left (each element takes at least @min_elem bytes; 0: no check)
 * is bad. */
int32_t kafka_rd_array(struct kafka_rd *r, bool flex, size_t min_elem);
/* Skip a tagged-field section (flexible versions only; nothing if !@flex). */
void kafka_rd_tags(struct kafka_rd *r, bool flex);

void kafka_put_i8(struct buf *b, int8_t v);
void kafka_put_i16(struct buf *b, int16_t v);
void kafka_put_i32(struct buf *b, int32_t v);
void kafka_put_i64(struct buf *b, int64_t v);
void kafka_put_uvarint(struct buf *b, uint32_t v);
void kafka_put_varint(struct buf *b, int32_t v);
void kafka_put_varlong(struct buf *b, int64_t v);
/* @s NULL: null; @len bytes otherwise. */
void kafka_put_string(struct buf *b, bool flex, const void *s, size_t len);
void kafka_put_cstring(struct buf *b, bool flex, const char *s); /* NULL: null */
void kafka_put_bytes(struct buf *b, bool flex, const void *p, size_t len);
void kafka_put_array(struct buf *b, bool flex, int32_t n); /* -1: null */
/* An empty tagged-field section (nothing if !@flex). */
void kafka_put_tags(struct buf *b, bool flex);
/* Overwrite a big-endian int32 at @at (a length or CRC written later). */
void kafka_patch_i32(struct buf *b, size_t at, uint32_t v);
void kafka_patch_i64(struct buf *b, size_t at, uint64_t v);

#endif
