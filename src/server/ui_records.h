/* The console's record reads (GET /ui/api/records): one topic from this
 * node's log, from an offset or a time, optionally only the records of one
 * key, as JSON (docs/console.md). */
#ifndef TALLY_SERVER_UI_RECORDS_H_
#define TALLY_SERVER_UI_RECORDS_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/byte.h"
#include "store/store.h"

#define UI_RECORDS_VALUE_MAX (64u << 10) /* value and key bytes shown per record */

struct ui_records_req {
    const char *topic;
    bool by_time;          /* start at the first record stamped >= time_ms */
    uint64_t from;         /* else at this offset (raised to the topic's start) */
    int64_t time_ms;
    unsigned limit;        /* 1..UI_MAX_RECORDS */
    const uint8_t *key;    /* only records with this key (NULL: all) */
    size_t key_len;
    size_t max_bytes;      /* log bytes this request may read */
};

/* Answer @q into @body (JSON); returns the HTTP status: 200, 404 (no such
 * topic) or 500 (the log could not be read; logged). */
int ui_records(struct store *s, const struct ui_records_req *q, struct buf *body);

#endif
