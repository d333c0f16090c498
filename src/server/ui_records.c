/* The console's record reads; see ui_records.h.
 *
 * The read goes through log_read_copy, a bounded pread of whole batches,
 * as `tally log dump` reads them, and decodes each batch with its
 * checksums verified (a damaged batch is an error, never shown). It reads
 * at most q->max_bytes of log, so a key search over a long topic comes
 * back in pieces: "resume" says where the next request carries on, and
 * the page asks again (docs/console.md, Records). */
#include "server/ui_records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/batch.h"
#include "lib/err.h"
#include "lib/logger.h"
#include "log/log.h"
#include "server/ui_json.h"

#define UI_RECORDS__CHUNK (1u << 20) /* bytes asked of the log per read */

static void ui_records__bytes(struct buf *b, const char *name, const uint8_t *p, size_t n)
{
    ui_json_printf(b, ", \"%s\": ", name);
    if (p == NULL) {
        ui_json_printf(b, "null");
        return;
    }
    ui_json_base64(b, p, n < UI_RECORDS_VALUE_MAX ? n : UI_RECORDS_VALUE_MAX);
    ui_json_printf(b, ", \"%s_len\": %zu", name, n);
}

static void ui_records__one(struct buf *b, bool first, const struct batch_record *r)
{
    ui_json_printf(b, "%s{\"offset\": %llu, \"timestamp\": %lld", first ? "" : ",\n  ",
                   (unsigned long long)r->offset, (long long)r->timestamp);
    ui_records__bytes(b, "key", r->key, r->key_len);
    ui_records__bytes(b, "value", r->value, r->value_len);
    ui_json_printf(b, ", \"headers\": [");
    struct batch_headers hr;
    struct batch_kv kv;
    batch_headers_init(&hr, r->headers, r->headers_len, r->header_nulls);
    for (unsigned i = 0; batch_headers_next(&hr, &kv); i++) {
        ui_json_printf(b, "%s[", i > 0 ? ", " : "");
        ui_json_base64(b, kv.name, kv.name_len);
        ui_json_printf(b, ", ");
        if (kv.value == NULL) {
            ui_json_printf(b, "null"); /* a null value (Kafka's), not an empty one */
        } else {
            ui_json_base64(b, kv.value,
                           kv.value_len < UI_RECORDS_VALUE_MAX ? kv.value_len : UI_RECORDS_VALUE_MAX);
        }
        ui_json_printf(b, "]");
    }
    ui_json_printf(b, "]}");
}

int ui_records(struct store *s, const struct ui_records_req *q, struct buf *body)
{
    char errmsg[ERR_MSG_SIZE];
    struct store_topic *t = store_topic_find(s, q->topic);
    if (t == NULL) {
        char msg[STORE_NAME_MAX + 32];
        snprintf(msg, sizeof msg, "no topic %s", q->topic);
        ui_json_error(body, msg);
        return 404;
    }
    uint64_t start = store_topic_start(t), next = log_next_offset(t->log);
    uint64_t from = q->from;
    int rv;
    if (q->by_time) {
        if (q->time_ms < 0) {
            from = start; /* before the epoch: from the start */
        } else if ((rv = log_find_time(t->log, q->time_ms, &from, errmsg)) != 0) {
            TLOG_ERROR("ui", "records of %s at time %lld: %s", t->name, (long long)q->time_ms,
                       errmsg);
            ui_json_error(body, errmsg);
            return 500;
        }
    }
    if (from < start) {
        from = start;
    }
    /* History this node lacks after a snapshot install (backfill brings
     * it): skipped, and the answer says which offsets were. */
    uint64_t gap_from = 0, gap_to = 0;
    if (from >= t->missing_from && from < t->missing_to) {
        gap_from = from;
        gap_to = t->missing_to;
        from = t->missing_to;
    }
    if (from > next) {
        from = next;
    }
    ui_json_printf(body, "{\"topic\": ");
    ui_json_cstr(body, t->name);
    ui_json_printf(body, ", \"start_offset\": %llu, \"next_offset\": %llu, \"from\": %llu",
                   (unsigned long long)start, (unsigned long long)next, (unsigned long long)from);
    if (gap_to > gap_from) {
        ui_json_printf(body, ", \"missing\": [%llu, %llu]", (unsigned long long)gap_from,
                       (unsigned long long)gap_to);
    }
    ui_json_printf(body, ", \"records\": [");

    uint64_t pos = from;     /* next offset not yet looked at */
    size_t read = 0;
    unsigned shown = 0;
    bool before_time = q->by_time && q->time_ms >= 0;
    while (pos < next && shown < q->limit && read < q->max_bytes) {
        void *data = NULL;
        size_t len = 0, want = q->max_bytes - read;
        uint64_t after = pos;
        if (want > UI_RECORDS__CHUNK) {
            want = UI_RECORDS__CHUNK;
        }
        rv = log_read_copy(t->log, pos, want, &data, &len, &after, errmsg);
        if (rv != 0) {
            free(data);
            TLOG_ERROR("ui", "records of %s at %llu: %s", t->name, (unsigned long long)pos, errmsg);
            body->len = 0;
            ui_json_error(body, errmsg);
            return 500;
        }
        if (len == 0) {
            free(data);
            break;
        }
        read += len;
        size_t at = 0;
        uint64_t resume = after;
        while (at < len && shown < q->limit) {
            struct batch_header h;
            struct batch_iter it;
            struct batch_record r;
            if ((rv = batch_decode_header((uint8_t *)data + at, len - at, &h, errmsg)) != 0 ||
                h.batch_len > len - at ||
                (rv = batch_iter_init(&it, (uint8_t *)data + at, h.batch_len, errmsg)) != 0) {
                rv = rv != 0 ? rv : TALLY_CORRUPT;
                free(data);
                TLOG_ERROR("ui", "records of %s at %llu: %s", t->name, (unsigned long long)pos,
                           errmsg);
                body->len = 0;
                ui_json_error(body, errmsg);
                return 500;
            }
            while (shown < q->limit && (rv = batch_iter_next(&it, &r, errmsg)) == 0) {
                if (r.offset < pos) {
                    continue; /* the batch began below the asked offset */
                }
                if (before_time && r.timestamp < q->time_ms) {
                    continue;
                }
                before_time = false;
                if (q->key != NULL &&
                    (r.key == NULL || r.key_len != q->key_len ||
                     memcmp(r.key, q->key, q->key_len) != 0)) {
                    continue;
                }
                ui_records__one(body, shown == 0, &r);
                shown++;
                resume = r.offset + 1;
            }
            batch_iter_close(&it);
            if (rv != 0 && rv != TALLY_EOF) {
                free(data);
                TLOG_ERROR("ui", "records of %s at %llu: %s", t->name, (unsigned long long)pos,
                           errmsg);
                body->len = 0;
                ui_json_error(body, errmsg);
                return 500;
            }
            at += h.batch_len;
        }
        free(data);
        pos = shown < q->limit ? after : resume;
    }
    /* "resume": where the next request carries on (the topic's next offset
     * when it read to the end); "end": nothing more to read for now. */
    ui_json_printf(body, "], \"resume\": %llu, \"end\": %s, \"bytes_read\": %zu}\n",
                   (unsigned long long)pos, pos >= next ? "true" : "false", read);
    return 200;
}
