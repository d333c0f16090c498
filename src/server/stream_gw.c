/* The reads of issue 18. STREAM_READ: one stream's records through the
 * stream index. FETCH_FILTERED: a topic scanned from an offset, sending
 * only the records whose key matches a filter (lib/glob.h). Both are
 * parked while the node has not applied the client's min_index or, for a
 * long-poll, while there is nothing new to send.
 *
 * The records are decoded from the log's batches (each batch checksum is
 * verified by the store's read) and sent as fields, not as batches: a
 * stream's records are scattered over many batches whose other records
 * belong to other keys, which the node must not send. */
#include "server/stream_gw.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/err.h"
#include "lib/glob.h"
#include "lib/share.h"
#include "lib/logger.h"
#include "proto/proto.h"
#include "store/stream_read.h"

/* Server's wait for min_index when the request gives no max_wait_ms, as
 * for FETCH (docs/protocol.md). */
#define STREAM_GW__MIN_INDEX_WAIT_MS 5000
/* Room left in a frame for the response's fixed fields. */
#define STREAM_GW__FRAME_ROOM (PROTO_MAX_FRAME - 4096)

struct stream_gw {
    struct store *store;
    struct node *node;
    struct req *parked; /* linked through req->park_next */
};

/* A decoded STREAM_READ kept while parked (its key copied). */
struct stream_gw__req {
    struct proto_stream_read_req m;
    uint8_t key[PROTO_STREAM_KEY_MAX];
};

/* A decoded FETCH_FILTERED kept while parked (its filter copied). */
struct stream_gw__filter {
    struct proto_fetch_filtered_req m;
    uint8_t filter[GLOB_MAX];
    unsigned n_shares;          /* a shared group member's: 0 none */
    struct share_set shares;    /* the shares it wants */
};

/* Does the record pass @q's key filter and share selection? */
static bool stream_gw__wanted(const struct stream_gw__filter *q, const struct batch_record *rec)
{
    if (q->m.filter_len > 0 &&
        (rec->key == NULL || !glob_match(q->filter, q->m.filter_len, rec->key, rec->key_len))) {
        return false;
    }
    return q->n_shares == 0 ||
           share_set_has(&q->shares, share_of(rec->key, rec->key_len, rec->offset, q->n_shares));
}

static uint64_t stream_gw__mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int stream_gw_create(struct store *store, struct stream_gw **out)
{
    struct stream_gw *sg = calloc(1, sizeof *sg);
    if (sg == NULL) {
        return TALLY_NOMEM;
    }
    sg->store = store;
    *out = sg;
    return 0;
}

void stream_gw_set_node(struct stream_gw *sg, struct node *node)
{
    sg->node = node;
}

static void stream_gw__error(struct req *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void stream_gw__error(struct req *r, int code, const char *fmt, ...)
{
    char msg[PROTO_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->resp.len = 0;
    proto_put_error_frame(&r->resp, r->type, r->id, code, msg, 0, "");
    req_complete(r);
}

/* The records encoded so far, for the callback. */
struct stream_gw__out {
    struct buf events;
    uint32_t max_bytes;
    uint32_t n;
};

static int stream_gw__put_event(void *arg, uint64_t version, const struct batch_record *rec)
{
    struct stream_gw__out *o = arg;
    size_t need = 48 + rec->value_len + rec->headers_len;
    if (o->n > 0 && (o->events.len + need > o->max_bytes ||
                     o->events.len + need > STREAM_GW__FRAME_ROOM)) {
        return 1; /* full: the client goes on from next_version */
    }
    if (o->events.len + need > STREAM_GW__FRAME_ROOM) {
        return TALLY_TOOLARGE; /* (one record never is: a batch fits a frame) */
    }
    struct proto_stream_event ev = {
        .version = version,
        .offset = rec->offset,
        .timestamp = rec->timestamp,
        .flags = (rec->value == NULL ? PROTO_STREAM_TOMBSTONE : 0) |
                 (rec->header_nulls ? PROTO_STREAM_NULL_HEADERS : 0),
        .value = rec->value,
        .value_len = (uint32_t)rec->value_len,
        .headers = rec->headers,
        .headers_len = (uint32_t)rec->headers_len,
    };
    proto_put_stream_event(&o->events, &ev);
    o->n++;
    return buf_ok(&o->events) ? 0 : TALLY_NOMEM;
}

/* Answer @r, or return false if it must wait (@expired: it may not). */
static bool stream_gw__try(struct stream_gw *sg, struct req *r, bool expired)
{
    struct stream_gw__req *q = r->gw_data;
    struct proto_stream_read_req *m = &q->m;
    uint64_t applied = node_applied_index(sg->node);
    char errmsg[ERR_MSG_SIZE] = "";

    if (applied < m->min_index) {
        if (!expired) {
            return false;
        }
        stream_gw__error(r, TALLY_TIMEOUT, "node %llu has applied index %llu, not yet %llu; "
                         "retry or read from the leader", (unsigned long long)node_id(sg->node),
                         (unsigned long long)applied, (unsigned long long)m->min_index);
        return true;
    }
    struct store_topic *t = store_topic_find(sg->store, m->topic);
    if (t == NULL) {
        stream_gw__error(r, TALLY_NOTFOUND, "topic %s not found", m->topic);
        return true;
    }
    uint64_t version = keys_version(&t->keys, q->key, m->key_len);
    bool at_end = !m->backward && (m->from_version > version ||
                                   (version == 0 && m->from_version <= 1));
    if (at_end && m->max_wait_ms > 0 && !expired && m->from_version <= version + 1) {
        return false; /* long-poll: the stream's next record is not there yet */
    }
    struct stream_gw__out o;
    struct stream_read_info info;
    memset(&info, 0, sizeof info);
    buf_init(&o.events);
    o.max_bytes = m->max_bytes;
    o.n = 0;
    int rv = 0;
    if (version == 0 && m->max_wait_ms > 0 && at_end) {
        info.next_version = 1; /* waited for a stream that is still empty */
        info.first_version = 1;
    } else {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        struct stream_read_req sq = {q->key, m->key_len, m->from_version, m->backward != 0,
                                     m->max_events,
                                     (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000};
        rv = stream_read(t, &sq, stream_gw__put_event, &o, &info, errmsg);
    }
    if (rv != 0) {
        if (rv == TALLY_IOERR || rv == TALLY_CORRUPT) {
            TLOG_ERROR("gw", "stream read of %s: %s", m->topic, errmsg);
        }
        buf_free(&o.events);
        stream_gw__error(r, rv, "%s", errmsg);
        return true;
    }
    struct proto_stream_read_resp resp = {
        .applied_index = applied,
        .version = info.version,
        .first_version = info.first_version,
        .next_version = info.next_version,
        .n_events = o.n,
    };
    /* As FETCH: a node that knows no leader may be cut off from newer
     * writes (docs/protocol.md). */
    uint8_t flags = PROTO_FLAG_RESPONSE |
                    (node_leader_id(sg->node) == 0 ? PROTO_FLAG_NO_LEADER : 0);
    size_t start = proto_begin_frame(&r->resp, r->type, flags, r->id);
    proto_put_stream_read_resp(&r->resp, &resp);
    buf_put(&r->resp, o.events.data, o.events.len);
    proto_end_frame(&r->resp, start);
    buf_free(&o.events);
    if (!buf_ok(&r->resp)) {
        stream_gw__error(r, TALLY_NOMEM, "out of memory");
        return true;
    }
    req_complete(r);
    return true;
}

/* FETCH_FILTERED: answer @r, or return false if it must wait. */
static bool stream_gw__filter_try(struct stream_gw *sg, struct req *r, bool expired)
{
    struct stream_gw__filter *q = r->gw_data;
    struct proto_fetch_filtered_req *m = &q->m;
    uint64_t applied = node_applied_index(sg->node);
    char errmsg[ERR_MSG_SIZE] = "";

    if (applied < m->min_index) {
        if (!expired) {
            return false;
        }
        stream_gw__error(r, TALLY_TIMEOUT, "node %llu has applied index %llu, not yet %llu; "
                         "retry or read from the leader", (unsigned long long)node_id(sg->node),
                         (unsigned long long)applied, (unsigned long long)m->min_index);
        return true;
    }
    struct store_topic *t = store_topic_find(sg->store, m->topic);
    if (t == NULL) {
        stream_gw__error(r, TALLY_NOTFOUND, "topic %s not found", m->topic);
        return true;
    }
    /* The same range rules as FETCH (gw.c). */
    if (m->offset < t->trim_offset) {
        stream_gw__error(r, TALLY_OUT_OF_RANGE, "offset %llu of topic %s is gone: retention "
                         "moved the topic's start to %llu; read from there",
                         (unsigned long long)m->offset, m->topic,
                         (unsigned long long)t->trim_offset);
        return true;
    }
    if (m->offset >= t->missing_from && m->offset < t->missing_to) {
        stream_gw__error(r, TALLY_UNAVAILABLE, "offsets %llu..%llu of topic %s are not on node "
                         "%llu yet (it installed a snapshot and is fetching that history from "
                         "its peers); read them from another node",
                         (unsigned long long)t->missing_from,
                         (unsigned long long)t->missing_to - 1, m->topic,
                         (unsigned long long)node_id(sg->node));
        return true;
    }
    uint64_t next = log_next_offset(t->log);
    if (m->offset < log_start_offset(t->log) || m->offset > next) {
        stream_gw__error(r, TALLY_OUT_OF_RANGE, "offset %llu is outside %llu..%llu of topic %s "
                         "on node %llu", (unsigned long long)m->offset,
                         (unsigned long long)log_start_offset(t->log), (unsigned long long)next,
                         m->topic, (unsigned long long)node_id(sg->node));
        return true;
    }
    if (m->offset == next && m->max_wait_ms > 0 && !expired) {
        return false; /* long-poll */
    }
    struct buf recs;
    uint32_t n = 0;
    uint64_t scanned_to = m->offset;
    void *data = NULL;
    size_t len = 0, pos = 0;
    int rv = 0;
    bool full = false;
    buf_init(&recs);
    if (m->offset < next) {
        rv = log_read_copy(t->log, m->offset, PROTO_FILTER_SCAN_BYTES, &data, &len, &scanned_to,
                           errmsg);
    }
    while (rv == 0 && pos < len && !full) {
        struct batch_header h;
        struct batch_iter it;
        struct batch_record rec;
        rv = batch_decode_header((uint8_t *)data + pos, len - pos, &h, errmsg);
        if (rv == 0 && h.batch_len > len - pos) {
            rv = TALLY_CORRUPT;
            err_printf(errmsg, "batch at %llu runs past the read",
                       (unsigned long long)h.base_offset);
        }
        if (rv != 0) {
            break;
        }
        /* A key filter passes over batches without keys; shares take
         * keyless records too. */
        if ((h.flags & BATCH_FLAG_KEYED) || m->filter_len == 0) {
            /* (verifies the batch's checksum before a record is read) */
            rv = batch_iter_init(&it, (uint8_t *)data + pos, h.batch_len, errmsg);
            while (rv == 0 && (rv = batch_iter_next(&it, &rec, errmsg)) == 0) {
                if (rec.offset < m->offset || !stream_gw__wanted(q, &rec)) {
                    continue;
                }
                size_t need = 64 + rec.key_len + rec.value_len + rec.headers_len;
                if (n > 0 && (recs.len + need > m->max_bytes ||
                              recs.len + need > STREAM_GW__FRAME_ROOM)) {
                    scanned_to = rec.offset; /* the first one not sent */
                    full = true;
                    break;
                }
                struct proto_filtered_record fr = {
                    .offset = rec.offset,
                    .timestamp = rec.timestamp,
                    .flags = (rec.value == NULL ? PROTO_STREAM_TOMBSTONE : 0) |
                             (rec.header_nulls ? PROTO_STREAM_NULL_HEADERS : 0),
                    .key = rec.key,
                    .key_len = (uint32_t)rec.key_len,
                    .value = rec.value,
                    .value_len = (uint32_t)rec.value_len,
                    .headers = rec.headers,
                    .headers_len = (uint32_t)rec.headers_len,
                };
                proto_put_filtered_record(&recs, &fr);
                n++;
            }
            batch_iter_close(&it);
            rv = rv == TALLY_EOF ? 0 : rv;
        }
        pos += h.batch_len;
    }
    free(data);
    if (rv == 0 && !buf_ok(&recs)) {
        rv = TALLY_NOMEM;
        err_printf(errmsg, "out of memory");
    }
    if (rv != 0) {
        TLOG_ERROR("gw", "filtered fetch %s@%llu: %s", m->topic, (unsigned long long)m->offset,
                   errmsg);
        buf_free(&recs);
        stream_gw__error(r, rv, "read %s at %llu: %s", m->topic, (unsigned long long)m->offset,
                         errmsg);
        return true;
    }
    struct proto_fetch_filtered_resp resp = {
        .applied_index = applied,
        .start_offset = store_topic_start(t),
        .next_offset = next,
        .scanned_to = scanned_to,
        .n_records = n,
    };
    uint8_t flags = PROTO_FLAG_RESPONSE |
                    (node_leader_id(sg->node) == 0 ? PROTO_FLAG_NO_LEADER : 0);
    size_t start = proto_begin_frame(&r->resp, r->type, flags, r->id);
    proto_put_fetch_filtered_resp(&r->resp, &resp);
    buf_put(&r->resp, recs.data, recs.len);
    proto_end_frame(&r->resp, start);
    buf_free(&recs);
    if (!buf_ok(&r->resp)) {
        stream_gw__error(r, TALLY_NOMEM, "out of memory");
        return true;
    }
    req_complete(r);
    return true;
}

static bool stream_gw__any_try(struct stream_gw *sg, struct req *r, bool expired)
{
    return r->type == PROTO_FETCH_FILTERED ? stream_gw__filter_try(sg, r, expired)
                                           : stream_gw__try(sg, r, expired);
}

/* Park @r until @wait ms from now (or its min_index, by default for the
 * usual time). */
static void stream_gw__park(struct stream_gw *sg, struct req *r, uint64_t wait,
                            uint64_t min_index)
{
    if (node_applied_index(sg->node) < min_index && wait == 0) {
        wait = STREAM_GW__MIN_INDEX_WAIT_MS;
    }
    r->deadline_ms = stream_gw__mono_ms() + wait;
    r->park_next = sg->parked;
    sg->parked = r;
}

void stream_gw_handle_filtered(struct stream_gw *sg, struct req *r, struct rd *rd)
{
    struct stream_gw__filter *q = calloc(1, sizeof *q);
    char why[160];
    if (q == NULL) {
        stream_gw__error(r, TALLY_NOMEM, "out of memory");
        return;
    }
    struct proto_fetch_shares sh = {0};
    if (proto_get_fetch_filtered_req(rd, &q->m) != 0 ||
        (rd->left > 0 && proto_get_fetch_shares(rd, &sh) != 0) || proto_get_end(rd) != 0) {
        free(q);
        stream_gw__error(r, TALLY_PROTO, "malformed FETCH_FILTERED");
        return;
    }
    if (sh.n_shares > SHARE_MAX || sh.shares_len != (sh.n_shares + 7u) / 8u) {
        free(q);
        stream_gw__error(r, TALLY_INVAL, "FETCH_FILTERED: %u shares (1..%u) with %u bytes of "
                         "share bits", sh.n_shares, SHARE_MAX, sh.shares_len);
        return;
    }
    q->n_shares = sh.n_shares;
    if (sh.shares_len > 0) {
        memcpy(q->shares.bits, sh.shares, sh.shares_len);
    }
    if (!(q->n_shares > 0 && q->m.filter_len == 0) &&
        !glob_check(q->m.filter, q->m.filter_len, why, sizeof why)) {
        free(q);
        stream_gw__error(r, TALLY_INVAL, "FETCH_FILTERED: %s", why);
        return;
    }
    if (q->m.max_bytes == 0) {
        free(q);
        stream_gw__error(r, TALLY_INVAL, "FETCH_FILTERED: max_bytes must be at least 1");
        return;
    }
    memcpy(q->filter, q->m.filter, q->m.filter_len);
    q->m.filter = q->filter;
    r->gw_data = q;
    if (stream_gw__filter_try(sg, r, false)) {
        free(q);
        return;
    }
    stream_gw__park(sg, r, q->m.max_wait_ms, q->m.min_index);
}

void stream_gw_handle(struct stream_gw *sg, struct req *r, struct rd *rd)
{
    struct stream_gw__req *q = calloc(1, sizeof *q);
    if (q == NULL) {
        stream_gw__error(r, TALLY_NOMEM, "out of memory");
        return;
    }
    if (proto_get_stream_read_req(rd, &q->m) != 0 || proto_get_end(rd) != 0) {
        free(q);
        stream_gw__error(r, TALLY_PROTO, "malformed STREAM_READ");
        return;
    }
    const char *bad = q->m.key_len == 0                          ? "the key is empty"
                      : q->m.key_len > PROTO_STREAM_KEY_MAX       ? "the key is too long"
                      : q->m.max_events == 0                      ? "max_events must be at least 1"
                      : q->m.max_events > PROTO_STREAM_MAX_EVENTS ? "max_events is too large"
                      : q->m.max_bytes == 0                       ? "max_bytes must be at least 1"
                      : q->m.backward > 1                         ? "backward must be 0 or 1"
                      : q->m.backward && q->m.max_wait_ms > 0
                          ? "a backward read cannot wait for new records"
                          : NULL;
    if (bad != NULL) {
        stream_gw__error(r, TALLY_INVAL, "STREAM_READ: %s (key at most %d bytes, max_events at "
                         "most %d)", bad, PROTO_STREAM_KEY_MAX, PROTO_STREAM_MAX_EVENTS);
        free(q);
        return;
    }
    memcpy(q->key, q->m.key, q->m.key_len);
    q->m.key = q->key;
    r->gw_data = q;
    if (stream_gw__try(sg, r, false)) {
        free(q);
        return;
    }
    stream_gw__park(sg, r, q->m.max_wait_ms, q->m.min_index);
}

void stream_gw_wake(struct stream_gw *sg, bool only_expired)
{
    uint64_t now = stream_gw__mono_ms();
    struct req **pp = &sg->parked;
    while (*pp != NULL) {
        struct req *r = *pp;
        /* An answered request may be freed by its answer (conn_complete,
         * when its connection is gone): read what follows first. */
        struct req *next = r->park_next;
        void *data = r->gw_data;
        bool expired = now >= r->deadline_ms;
        bool answered;
        if (r->conn == NULL) {
            answered = true;
            req_complete(r);
        } else if (only_expired && !expired) {
            answered = false;
        } else {
            answered = stream_gw__any_try(sg, r, expired);
        }
        if (answered) {
            *pp = next;
            free(data);
        } else {
            pp = &r->park_next;
        }
    }
}

void stream_gw_destroy(struct stream_gw *sg)
{
    if (sg == NULL) {
        return;
    }
    while (sg->parked != NULL) {
        struct req *r = sg->parked;
        sg->parked = r->park_next;
        free(r->gw_data);
        stream_gw__error(r, TALLY_SHUTDOWN, "node is shutting down");
    }
    free(sg);
}
