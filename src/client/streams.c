/* libtally's stream reads (tally.h, Streams): STREAM_READ requests
 * (docs/protocol.md) sent through client.c's retry and node-choice logic. */
#include "tally.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "lib/err.h"
#include "lib/glob.h"
#include "lib/name.h"
#include "proto/proto.h"

/* What this file uses of the handle (client.h). */
struct client_read_reply {
    uint8_t flags;   /* the response frame's flags (PROTO_FLAG_*) */
    struct rd body;  /* borrowed from the handle until its next request */
};

/* Send the read request of @type with @body (borrowed) to any node (or to
 * @node only, "HOST:PORT"), with the usual retries on another node, the
 * deadline extended by @extra_wait_ms (a server-side wait). 0 with a
 * success answer in @out, or a TALLY_* code with the message set. */
static int client_read_call(tally_client *c, const char *what, const char *node,
                            uint32_t extra_wait_ms, uint16_t type, const struct buf *body,
                            struct client_read_reply *out)
{
    struct client__op op;
    struct client__reply rep;
    size_t start;
    int rv;
    client__op_init(c, &op, what, false);
    if (node != NULL) {
        int i = client__node_add(c, node, strlen(node));
        if (i < 0) {
            err_printf(c->errmsg, "%s: bad node address '%s'", what, node);
            return TALLY_INVAL;
        }
        op.only = i;
    }
    op.deadline += extra_wait_ms;
    start = client__begin(c, type);
    buf_put(&c->req, body->data, body->len);
    if ((rv = client__end(c, start, what)) != 0 || (rv = client__call(c, &op, &rep)) != 0) {
        return rv;
    }
    out->flags = rep.f.flags;
    out->body = rep.body;
    return 0;
}

/* Take the last response frame out of the handle (owned by the caller,
 * free()); the body client_read_call gave points into it. */
static uint8_t *client_take_response(tally_client *c)
{
    uint8_t *frame = c->resp.data;
    buf_init(&c->resp);
    return frame;
}

static char *client_errmsg_buf(tally_client *c)
{
    return c->errmsg;
}

static bool client_linearizable(const tally_client *c)
{
    return c->linearizable;
}

#define STREAMS__DEFAULT_MAX_EVENTS 1000
#define STREAMS__DEFAULT_MAX_BYTES (1u << 20)
/* The server's wait for min_index when max_wait_ms is 0 (docs/protocol.md). */
#define STREAMS__MIN_INDEX_WAIT_MS 5000

TALLY_API void tally_stream_options_init(struct tally_stream_options *o)
{
    if (o == NULL) {
        return;
    }
    memset(o, 0, sizeof *o);
    o->max_events = STREAMS__DEFAULT_MAX_EVENTS;
    o->max_bytes = STREAMS__DEFAULT_MAX_BYTES;
}

TALLY_API void tally_stream_result_free(struct tally_stream_result *res)
{
    if (res == NULL) {
        return;
    }
    free(res->events);
    free(res->impl);
    memset(res, 0, sizeof *res);
}

/* Refuse what the server would refuse, before anything is sent. */
static int streams__check(tally_client *c, const char *what, const char *topic, const void *key,
                          size_t key_len, const struct tally_stream_options *o,
                          struct tally_stream_result *res)
{
    char *errmsg = client_errmsg_buf(c);
    char why[160];
    if (res == NULL) {
        err_printf(errmsg, "%s: the output argument 'res' is NULL: pass a pointer to fill", what);
        return TALLY_INVAL;
    }
    memset(res, 0, sizeof *res);
    if (topic == NULL || !name_topic_check(topic, why, sizeof why)) {
        err_printf(errmsg, "%s: %s", what, topic == NULL ? "no topic name" : why);
        return TALLY_INVAL;
    }
    if (key == NULL || key_len == 0 || key_len > PROTO_STREAM_KEY_MAX) {
        err_printf(errmsg, "%s: the key must be 1..%d bytes (got %s)", what, PROTO_STREAM_KEY_MAX,
                   key == NULL ? "none" : key_len == 0 ? "an empty key" : "a longer one");
        return TALLY_INVAL;
    }
    if (o->max_events == 0 || o->max_events > PROTO_STREAM_MAX_EVENTS) {
        err_printf(errmsg, "%s: max_events must be 1..%d", what, PROTO_STREAM_MAX_EVENTS);
        return TALLY_INVAL;
    }
    if (o->backward && o->max_wait_ms > 0) {
        err_printf(errmsg, "%s: a backward read cannot wait for new records (max_wait_ms)", what);
        return TALLY_INVAL;
    }
    return 0;
}

TALLY_API int tally_stream_read(tally_client *c, const char *topic, const void *key,
                                size_t key_len, const struct tally_stream_options *opts,
                                struct tally_stream_result *res)
{
    struct tally_stream_options o;
    struct proto_stream_read_req m;
    struct proto_stream_read_resp r;
    struct client_read_reply rep;
    struct buf body;
    char what[PROTO_NAME_MAX + 48];
    int rv;

    if (c == NULL) {
        return TALLY_INVAL;
    }
    client_errmsg_buf(c)[0] = '\0';
    snprintf(what, sizeof what, "read stream of %s", topic != NULL ? topic : "(null)");
    if (opts != NULL) {
        o = *opts;
    } else {
        tally_stream_options_init(&o);
    }
    if ((rv = streams__check(c, what, topic, key, key_len, &o, res)) != 0) {
        return rv;
    }
    if (client_linearizable(c)) {
        uint64_t index = 0;
        if ((rv = tally_read_index(c, &index)) != 0) {
            char why[ERR_MSG_SIZE];
            snprintf(why, sizeof why, "%s", client_errmsg_buf(c));
            err_printf(client_errmsg_buf(c), "%s (linearizable): %s", what, why);
            return rv;
        }
        o.min_index = index > o.min_index ? index : o.min_index;
    }
    memset(&m, 0, sizeof m);
    snprintf(m.topic, sizeof m.topic, "%s", topic);
    m.key = key;
    m.key_len = (uint32_t)key_len;
    m.from_version = o.from_version;
    m.backward = o.backward ? 1 : 0;
    m.max_events = o.max_events;
    m.max_bytes = o.max_bytes ? o.max_bytes : STREAMS__DEFAULT_MAX_BYTES;
    m.max_wait_ms = o.max_wait_ms;
    m.min_index = o.min_index;
    uint32_t wait = o.max_wait_ms;
    if (o.min_index > 0 && wait == 0) {
        wait = STREAMS__MIN_INDEX_WAIT_MS;
    }
    buf_init(&body);
    proto_put_stream_read_req(&body, &m);
    if (!buf_ok(&body)) {
        buf_free(&body);
        err_printf(client_errmsg_buf(c), "%s: out of memory", what);
        return TALLY_NOMEM;
    }
    rv = client_read_call(c, what, o.node, wait, PROTO_STREAM_READ, &body, &rep);
    buf_free(&body);
    if (rv != 0) {
        return rv;
    }
    if (proto_get_stream_read_resp(&rep.body, &r) != 0 || r.n_events > PROTO_STREAM_MAX_EVENTS) {
        err_printf(client_errmsg_buf(c), "%s: malformed answer", what);
        return TALLY_PROTO;
    }
    /* The events point into the response frame, which the result keeps. */
    res->impl = client_take_response(c);
    if (r.n_events > 0) {
        res->events = calloc(r.n_events, sizeof *res->events);
        if (res->events == NULL) {
            tally_stream_result_free(res);
            err_printf(client_errmsg_buf(c), "%s: out of memory", what);
            return TALLY_NOMEM;
        }
    }
    for (uint32_t i = 0; i < r.n_events; i++) {
        struct proto_stream_event ev;
        if (proto_get_stream_event(&rep.body, &ev) != 0) {
            tally_stream_result_free(res);
            err_printf(client_errmsg_buf(c), "%s: malformed answer (record %u)", what, i);
            return TALLY_PROTO;
        }
        struct tally_stream_event *e = &res->events[i];
        bool tombstone = (ev.flags & PROTO_STREAM_TOMBSTONE) != 0;
        e->version = ev.version;
        e->offset = ev.offset;
        e->timestamp_ms = ev.timestamp;
        /* An empty value is "", never NULL, which means a tombstone. */
        e->value = tombstone ? NULL : ev.value != NULL ? (const void *)ev.value : "";
        e->value_len = tombstone ? 0 : ev.value_len;
    }
    if (proto_get_end(&rep.body) != 0) {
        tally_stream_result_free(res);
        err_printf(client_errmsg_buf(c), "%s: malformed answer (trailing bytes)", what);
        return TALLY_PROTO;
    }
    res->n = r.n_events;
    res->version = r.version;
    res->first_version = r.first_version;
    res->next_version = r.next_version;
    res->applied_index = r.applied_index;
    return 0;
}

/* ------------------------------------------------------------------------
 * Filtered fetch (category subscriptions)
 * ------------------------------------------------------------------------ */

/* Requests one tally_fetch_filtered call may make over stretches without
 * a match (each moves at least PROTO_FILTER_SCAN_BYTES on, or to the end). */
#define STREAMS__FILTER_HOPS 4096

/* One FETCH_FILTERED and its answer. */
static int streams__filtered_one(tally_client *c, const char *what, const char *topic,
                                 uint64_t offset, const char *filter,
                                 const struct client__shares *shares,
                                 const struct tally_fetch_options *o,
                                 struct tally_fetch_result *res)
{
    struct proto_fetch_filtered_req m;
    struct proto_fetch_filtered_resp fr;
    struct client_read_reply rep;
    struct buf body;
    int rv;

    memset(res, 0, sizeof *res);
    memset(&m, 0, sizeof m);
    snprintf(m.topic, sizeof m.topic, "%s", topic);
    m.offset = offset;
    m.max_bytes = o->max_bytes ? o->max_bytes : STREAMS__DEFAULT_MAX_BYTES;
    m.max_wait_ms = o->max_wait_ms;
    m.min_index = o->min_index;
    m.filter = (const uint8_t *)filter;
    m.filter_len = filter != NULL ? (uint32_t)strlen(filter) : 0;
    uint32_t wait = o->max_wait_ms;
    if (o->min_index > 0 && wait == 0) {
        wait = STREAMS__MIN_INDEX_WAIT_MS;
    }
    buf_init(&body);
    proto_put_fetch_filtered_req(&body, &m);
    if (shares != NULL) {
        struct proto_fetch_shares sh = {
            .n_shares = (uint16_t)shares->n,
            .shares = shares->set.bits,
            .shares_len = (shares->n + 7) / 8,
        };
        proto_put_fetch_shares(&body, &sh);
    }
    if (!buf_ok(&body)) {
        buf_free(&body);
        err_printf(client_errmsg_buf(c), "%s: out of memory", what);
        return TALLY_NOMEM;
    }
    rv = client_read_call(c, what, o->node, wait, PROTO_FETCH_FILTERED, &body, &rep);
    buf_free(&body);
    if (rv != 0) {
        return rv;
    }
    if (proto_get_fetch_filtered_resp(&rep.body, &fr) != 0 || fr.scanned_to < offset) {
        err_printf(client_errmsg_buf(c), "%s: malformed answer", what);
        return TALLY_PROTO;
    }
    bool stale = !client_linearizable(c) && (rep.flags & PROTO_FLAG_NO_LEADER) != 0;
    uint8_t *frame = client_take_response(c);
    res->impl = client__fetch_impl_new(frame, stale);
    if (res->impl == NULL) {
        free(frame);
        err_printf(client_errmsg_buf(c), "%s: out of memory", what);
        return TALLY_NOMEM;
    }
    /* (each record takes at least 29 bytes: a count beyond that is a lie) */
    if (fr.n_records > rep.body.left / 29) {
        tally_fetch_result_free(res);
        err_printf(client_errmsg_buf(c), "%s: malformed answer", what);
        return TALLY_PROTO;
    }
    if (fr.n_records > 0) {
        res->records = calloc(fr.n_records, sizeof *res->records);
        if (res->records == NULL) {
            tally_fetch_result_free(res);
            err_printf(client_errmsg_buf(c), "%s: out of memory", what);
            return TALLY_NOMEM;
        }
    }
    for (uint32_t i = 0; i < fr.n_records; i++) {
        struct proto_filtered_record pr;
        if (proto_get_filtered_record(&rep.body, &pr) != 0) {
            tally_fetch_result_free(res);
            err_printf(client_errmsg_buf(c), "%s: malformed answer (record %u)", what, i);
            return TALLY_PROTO;
        }
        struct tally_record *tr = &res->records[i];
        bool tombstone = (pr.flags & PROTO_STREAM_TOMBSTONE) != 0;
        tr->offset = pr.offset;
        tr->timestamp_ms = pr.timestamp;
        tr->key = pr.key != NULL ? (const void *)pr.key : "";
        tr->key_len = pr.key_len;
        tr->value = tombstone ? NULL : pr.value != NULL ? (const void *)pr.value : "";
        tr->value_len = tombstone ? 0 : pr.value_len;
        res->n++;
    }
    if (proto_get_end(&rep.body) != 0) {
        tally_fetch_result_free(res);
        err_printf(client_errmsg_buf(c), "%s: malformed answer (trailing bytes)", what);
        return TALLY_PROTO;
    }
    res->next_offset = fr.scanned_to;
    res->high_offset = fr.next_offset;
    res->start_offset = fr.start_offset;
    res->applied_index = fr.applied_index;
    return 0;
}

TALLY_API int tally_fetch_filtered(tally_client *c, const char *topic, uint64_t offset,
                                   const char *filter, const struct tally_fetch_options *opts,
                                   struct tally_fetch_result *res)
{
    if (c != NULL && filter == NULL) {
        err_printf(client_errmsg_buf(c), "filtered fetch %s: no filter",
                   topic != NULL ? topic : "(null)");
        if (res != NULL) {
            memset(res, 0, sizeof *res);
        }
        return TALLY_INVAL;
    }
    return client__fetch_filtered(c, topic, offset, filter, NULL, opts, res);
}

int client__fetch_filtered(tally_client *c, const char *topic, uint64_t offset,
                           const char *filter, const struct client__shares *shares,
                           const struct tally_fetch_options *opts, struct tally_fetch_result *res)
{
    struct tally_fetch_options o;
    char what[PROTO_NAME_MAX + 48];
    char why[160];
    int64_t t0 = wire_now_ms();
    int rv;

    if (c == NULL) {
        return TALLY_INVAL;
    }
    char *errmsg = client_errmsg_buf(c);
    errmsg[0] = '\0';
    snprintf(what, sizeof what, "filtered fetch %s at %llu", topic != NULL ? topic : "(null)",
             (unsigned long long)offset);
    if (res == NULL) {
        err_printf(errmsg, "%s: the output argument 'res' is NULL: pass a pointer to fill", what);
        return TALLY_INVAL;
    }
    memset(res, 0, sizeof *res);
    if (topic == NULL || !name_topic_check(topic, why, sizeof why)) {
        err_printf(errmsg, "%s: %s", what, topic == NULL ? "no topic name" : why);
        return TALLY_INVAL;
    }
    if (filter != NULL && !glob_check((const uint8_t *)filter, strlen(filter), why, sizeof why)) {
        err_printf(errmsg, "%s: filter '%.64s': %s", what, filter, why);
        return TALLY_INVAL;
    }
    if (opts != NULL) {
        o = *opts;
    } else {
        tally_fetch_options_init(&o);
    }
    if (client_linearizable(c)) {
        uint64_t index = 0;
        if ((rv = tally_read_index(c, &index)) != 0) {
            char was[ERR_MSG_SIZE];
            snprintf(was, sizeof was, "%s", errmsg);
            err_printf(errmsg, "%s (linearizable): %s", what, was);
            return rv;
        }
        o.min_index = index > o.min_index ? index : o.min_index;
    }
    for (unsigned hop = 0;; hop++) {
        rv = streams__filtered_one(c, what, topic, offset, filter, shares, &o, res);
        if (rv != 0 || res->n > 0 || res->next_offset <= offset ||
            hop == STREAMS__FILTER_HOPS) {
            return rv;
        }
        /* A stretch without a match: go on, and at the end long-poll for
         * what is left of max_wait_ms. */
        if (res->next_offset >= res->high_offset) {
            int64_t waited = wire_now_ms() - t0;
            if (o.max_wait_ms == 0 || waited >= (int64_t)o.max_wait_ms) {
                return 0;
            }
            o.max_wait_ms -= (uint32_t)waited;
        }
        offset = res->next_offset;
        tally_fetch_result_free(res);
    }
}

/* ------------------------------------------------------------------------
 * Stream metadata (store/stream_read.h has the format the nodes read)
 * ------------------------------------------------------------------------ */

#define STREAMS__META_PREFIX "$$"
#define STREAMS__MAX_AGE_MS (1ull << 53)

TALLY_API int tally_stream_set_meta(tally_client *c, const char *topic, const void *key,
                                    size_t key_len, const struct tally_stream_meta *meta,
                                    struct tally_produce_result *result)
{
    char what[PROTO_NAME_MAX + 48];
    char why[160];
    char value[128];
    uint8_t mkey[PROTO_STREAM_KEY_MAX];
    struct tally_produce_result ignored;

    if (c == NULL) {
        return TALLY_INVAL;
    }
    char *errmsg = client_errmsg_buf(c);
    errmsg[0] = '\0';
    snprintf(what, sizeof what, "set stream metadata on %s", topic != NULL ? topic : "(null)");
    if (topic == NULL || !name_topic_check(topic, why, sizeof why)) {
        err_printf(errmsg, "%s: %s", what, topic == NULL ? "no topic name" : why);
        return TALLY_INVAL;
    }
    if (key == NULL || key_len == 0 || key_len + 2 > PROTO_STREAM_KEY_MAX) {
        err_printf(errmsg, "%s: the key must be 1..%d bytes", what, PROTO_STREAM_KEY_MAX - 2);
        return TALLY_INVAL;
    }
    if (meta != NULL && meta->max_age_ms > STREAMS__MAX_AGE_MS) {
        err_printf(errmsg, "%s: max_age_ms is above 2^53", what);
        return TALLY_INVAL;
    }
    memcpy(mkey, STREAMS__META_PREFIX, 2);
    memcpy(mkey + 2, key, key_len);
    size_t n = 0;
    if (meta != NULL) {
        n = (size_t)snprintf(value, sizeof value,
                             "truncate-before=%llu;max-count=%llu;max-age-ms=%llu",
                             (unsigned long long)meta->truncate_before,
                             (unsigned long long)meta->max_count,
                             (unsigned long long)meta->max_age_ms);
    }
    struct tally_record_in rec = {mkey, key_len + 2, meta != NULL ? value : NULL, n};
    return tally_produce(c, topic, &rec, 1, result != NULL ? result : &ignored);
}
