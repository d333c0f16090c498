/* libtally: reads of records (tally_fetch, tally_read_index and the fetch
 * options in include/tally.h).
 *
 * A fetch goes to any node; its answer holds whole stored batches, whose
 * checksums are verified here before their records are handed out. When
 * an answer leaves more records on the node, the FETCH that continues it
 * is sent before the answer is decoded (read-ahead, client__fetch_ahead),
 * so the node streams the next answer while the caller works. */
#include "tally.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "lib/batch.h"
#include "lib/byte.h"
#include "lib/err.h"
#include "proto/proto.h"

#define CLIENT__DEFAULT_FETCH_BYTES (1u << 20)
/* The server's wait for min_index when max_wait_ms is 0 (docs/protocol.md). */
#define CLIENT__MIN_INDEX_WAIT_MS 5000

/* ------------------------------------------------------------------------
 * Fetch
 * ------------------------------------------------------------------------ */

/* What a fetch result owns besides its record array: the response frame
 * (uncompressed records point into it) and one decompressed copy per lz4
 * batch (their records point there). */
struct client__fetch_impl {
    bool possibly_stale;     /* tally_fetch_possibly_stale */
    uint8_t *frame;
    uint8_t **copies;
    size_t n_copies;
};

static void client__fetch_impl_free(struct client__fetch_impl *impl)
{
    if (impl == NULL) {
        return;
    }
    for (size_t i = 0; i < impl->n_copies; i++) {
        free(impl->copies[i]);
    }
    free(impl->copies);
    free(impl->frame);
    free(impl);
}

TALLY_API void tally_fetch_options_init(struct tally_fetch_options *o)
{
    if (o == NULL) {
        return;
    }
    o->max_bytes = CLIENT__DEFAULT_FETCH_BYTES;
    o->max_wait_ms = 0;
    o->min_index = 0;
    o->node = NULL;
}

TALLY_API void tally_set_linearizable(tally_client *c, int on)
{
    if (c == NULL) {
        return;
    }
    c->linearizable = on != 0;
}

TALLY_API int tally_fetch_possibly_stale(const struct tally_fetch_result *res)
{
    if (res == NULL) {
        return 0;
    }
    const struct client__fetch_impl *impl = res->impl;
    return impl != NULL && impl->possibly_stale ? 1 : 0;
}

TALLY_API void tally_fetch_result_free(struct tally_fetch_result *res)
{
    if (res == NULL) {
        return;
    }
    free(res->records);
    client__fetch_impl_free(res->impl);
    memset(res, 0, sizeof *res);
}

/* Decode the batches of a FETCH answer into @res, keeping records at or
 * above @offset. @impl owns the bytes the records will point into. */
static int client__decode_batches(struct tally_client *c, const char *what, const uint8_t *p,
                                  size_t len, uint64_t offset, struct tally_fetch_result *res,
                                  struct client__fetch_impl *impl)
{
    size_t pos = 0, cap = 0;
    char errmsg[ERR_MSG_SIZE];
    bool any = false;
    uint64_t next = offset;
    int rv;

    while (pos < len) {
        struct batch_header h;
        struct batch_iter it;
        struct batch_record rec;

        rv = batch_decode_header(p + pos, len - pos, &h, errmsg);
        if (rv == 0 && h.batch_len > len - pos) {
            rv = ERR_CORRUPT(errmsg, "batch of %u bytes but only %zu left", h.batch_len,
                             len - pos);
        }
        if (rv == 0) {
            rv = batch_iter_init(&it, p + pos, h.batch_len, errmsg);
        }
        if (rv != 0) {
            err_printf(c->errmsg, "%s: batch at byte %zu of the answer: %s", what, pos, errmsg);
            return rv;
        }
        if (it.owned != NULL) {
            uint8_t **copies = realloc(impl->copies, (impl->n_copies + 1) * sizeof *copies);
            if (copies == NULL) {
                batch_iter_close(&it);
                err_printf(c->errmsg, "%s: out of memory", what);
                return TALLY_NOMEM;
            }
            impl->copies = copies;
            impl->copies[impl->n_copies++] = it.owned; /* now owned by impl */
        }
        while ((rv = batch_iter_next(&it, &rec, errmsg)) == 0) {
            /* Whole batches come back: skip records before the one asked for. */
            if (rec.offset < offset) {
                continue;
            }
            if (res->n == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                struct tally_record *r = realloc(res->records, ncap * sizeof *r);
                if (r == NULL) {
                    it.owned = NULL;
                    err_printf(c->errmsg, "%s: out of memory", what);
                    return TALLY_NOMEM;
                }
                res->records = r;
                cap = ncap;
            }
            struct tally_record *out = &res->records[res->n++];
            out->offset = rec.offset;
            out->timestamp_ms = rec.timestamp;
            out->key = rec.key;
            out->key_len = rec.key_len;
            out->value = rec.value;
            out->value_len = rec.value_len;
        }
        it.owned = NULL; /* kept by impl, if any */
        batch_iter_close(&it);
        if (rv != TALLY_EOF) {
            err_printf(c->errmsg, "%s: batch at offset %llu: %s", what,
                       (unsigned long long)h.base_offset, errmsg);
            return rv;
        }
        /* Resume after the batch, not after its last surviving record:
         * compaction can leave the batch's last offsets empty. */
        if (batch_last_offset(&h) + 1 > next) {
            next = batch_last_offset(&h) + 1;
        }
        any = true;
        pos += h.batch_len;
    }
    res->next_offset = any ? next : offset;
    return 0;
}

/* Read-ahead, as Kafka's consumers fetch ahead: when an answer leaves
 * more records on the node, the FETCH that continues it (same topic,
 * options and node) is sent before this answer's records are verified,
 * decoded and handed to the caller, so the node streams the next answer
 * while the caller works. The next tally_fetch takes that answer if it
 * asks exactly for it; any other request on that connection reads and
 * drops it first (client__connect). A failed read-ahead is forgotten:
 * the request is then sent the usual way. */
static bool client__same_fetch(const struct proto_fetch_req *a, const struct proto_fetch_req *b)
{
    return strcmp(a->topic, b->topic) == 0 && a->offset == b->offset &&
           a->max_bytes == b->max_bytes && a->max_wait_ms == b->max_wait_ms &&
           a->min_index == b->min_index;
}

static void client__fetch_ahead(struct tally_client *c, int node, const struct proto_fetch_req *m)
{
    struct client__node *nd;
    bool sent = false;
    size_t start;
    if (node < 0 || (size_t)node >= c->n_nodes) {
        return;
    }
    nd = &c->nodes[node];
    if (nd->w.fd < 0 || nd->ahead) {
        return;
    }
    start = client__begin(c, PROTO_FETCH);
    proto_put_fetch_req(&c->req, m);
    if (client__end(c, start, "fetch ahead") == 0) {
        uint32_t id;
        if (client__send_request(c, nd, &c->req, wire_now_ms() + c->timeout_ms, &sent, &id) ==
            0) {
            nd->ahead = true;
            nd->ahead_id = id;
            nd->ahead_req = *m;
        } else {
            client__disconnect(nd);
        }
    }
    c->errmsg[0] = '\0'; /* this fetch succeeded whatever happened here */
}

/* The answer to a read-ahead of exactly @m on node @node into c->resp and
 * @rep; false if there is none, or it failed or is an error answer (the
 * caller then sends @m the usual way, which handles errors and retries). */
static bool client__take_ahead(struct tally_client *c, int node, const struct proto_fetch_req *m,
                               int64_t deadline, struct client__reply *rep)
{
    struct client__node *nd;
    int rv;
    if (node < 0 || (size_t)node >= c->n_nodes) {
        return false;
    }
    nd = &c->nodes[node];
    if (!nd->ahead || nd->w.fd < 0 || !client__same_fetch(&nd->ahead_req, m)) {
        return false;
    }
    nd->ahead = false;
    rv = client__recv_reply(c, nd, PROTO_FETCH, nd->ahead_id, deadline, rep);
    if (rv != 0) {
        client__disconnect(nd);
    }
    c->errmsg[0] = '\0';
    return rv == 0 && !rep->is_error;
}

/* Where the batches of a FETCH answer end (the offset after the last
 * one), from their headers alone; false if the answer holds none or a
 * header is damaged (client__decode_batches then says so). */
static bool client__batches_end(const uint8_t *p, size_t len, uint64_t *end)
{
    char errmsg[ERR_MSG_SIZE];
    size_t pos = 0;
    bool any = false;
    while (pos < len) {
        struct batch_header h;
        if (batch_decode_header(p + pos, len - pos, &h, errmsg) != 0 || h.batch_len > len - pos) {
            return false;
        }
        *end = batch_last_offset(&h) + 1;
        any = true;
        pos += h.batch_len;
    }
    return any;
}

TALLY_API int tally_read_index(tally_client *c, uint64_t *index)
{
    static const char what[] = "read index (confirm the leader)";
    struct proto_read_index_req m = {0};
    struct client__op op;
    struct client__reply rep;
    struct proto_done_resp d;
    size_t start;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    if (index == NULL) {
        return client__null_output(c, what, "index");
    }
    start = client__begin(c, PROTO_READ_INDEX);
    proto_put_read_index_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    client__op_init(c, &op, what, true);
    if ((rv = client__call(c, &op, &rep)) != 0) {
        return rv;
    }
    if (proto_get_done_resp(&rep.body, &d) != 0 || proto_get_end(&rep.body) != 0) {
        return client__malformed(c, what);
    }
    *index = d.raft_index;
    return 0;
}

/* One FETCH request and its answer (tally_fetch goes on past gaps). */
static int client__fetch_one(tally_client *c, const char *what, const char *topic,
                             uint64_t offset, const struct tally_fetch_options *opts,
                             struct tally_fetch_result *res)
{
    struct proto_fetch_req m;
    struct proto_fetch_resp fr;
    struct client__op op;
    struct client__reply rep;
    struct client__fetch_impl *impl;
    int64_t wait;
    size_t start;
    int rv;

    memset(res, 0, sizeof *res);
    uint64_t min_index = opts->min_index;
    client__op_init(c, &op, what, false);
    if (opts->node != NULL) {
        int i = client__node_add(c, opts->node, strlen(opts->node));
        if (i < 0) {
            err_printf(c->errmsg, "%s: bad node address '%s'", what, opts->node);
            return TALLY_INVAL;
        }
        op.only = i;
    }
    /* The answer may legitimately take the long-poll time, or the
     * server's default wait for min_index, on top of the usual timeout. */
    wait = opts->max_wait_ms;
    if (min_index > 0 && wait == 0) {
        wait = CLIENT__MIN_INDEX_WAIT_MS;
    }
    op.deadline += wait;

    memset(&m, 0, sizeof m);
    snprintf(m.topic, sizeof m.topic, "%s", topic);
    m.offset = offset;
    m.max_bytes = opts->max_bytes ? opts->max_bytes : CLIENT__DEFAULT_FETCH_BYTES;
    m.max_wait_ms = opts->max_wait_ms;
    m.min_index = min_index;
    int via = op.only >= 0 ? op.only : c->read_pref;
    if (client__take_ahead(c, via, &m, op.deadline, &rep)) {
        c->read_pref = via; /* as client__call does for the node that answers a read */
    } else {
        start = client__begin(c, PROTO_FETCH);
        proto_put_fetch_req(&c->req, &m);
        if ((rv = client__end(c, start, what)) != 0) {
            return rv;
        }
        if ((rv = client__call(c, &op, &rep)) != 0) {
            return rv;
        }
        via = c->read_pref; /* the node that answered */
    }
    if (proto_get_fetch_resp(&rep.body, &fr) != 0 || proto_get_end(&rep.body) != 0) {
        return client__malformed(c, what);
    }
    uint64_t end;
    if (client__batches_end(fr.batches, fr.batches_len, &end) && end < fr.next_offset) {
        struct proto_fetch_req more = m;
        more.offset = end;
        client__fetch_ahead(c, via, &more);
    }

    /* Take the response frame: the records will point into it. */
    impl = calloc(1, sizeof *impl);
    if (impl == NULL) {
        err_printf(c->errmsg, "%s: out of memory", what);
        return TALLY_NOMEM;
    }
    impl->frame = c->resp.data;
    buf_init(&c->resp);
    res->impl = impl;
    res->high_offset = fr.next_offset;
    res->start_offset = fr.start_offset;
    res->applied_index = fr.applied_index;
    impl->possibly_stale = !c->linearizable && (rep.f.flags & PROTO_FLAG_NO_LEADER) != 0;
    rv = client__decode_batches(c, what, fr.batches, fr.batches_len, offset, res, impl);
    if (rv != 0) {
        tally_fetch_result_free(res);
        return rv;
    }
    return 0;
}

/* An answer can hold batches but no record at or above the offset asked
 * for: compaction replaces runs of emptied batches with gap batches, and
 * a segment it emptied holds nothing else, while the node answers from
 * one segment at a time. Handing the caller n == 0 there would read as
 * "nothing yet" (tally.h promises n == 0 only after max_wait_ms), and a
 * reader that stops or waits on it would miss the records after the
 * gap. So tally_fetch goes on from the answer's next_offset, at most
 * this many requests per call (each moves at least one segment on). */
#define CLIENT__GAP_HOPS 4096

TALLY_API int tally_fetch(tally_client *c, const char *topic, uint64_t offset,
                          const struct tally_fetch_options *opts, struct tally_fetch_result *res)
{
    struct tally_fetch_options o;
    char what[PROTO_NAME_MAX + 48];
    int64_t t0 = wire_now_ms();
    uint64_t at = offset;
    int rv;

    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "fetch %s at %llu", topic != NULL ? topic : "(null)",
             (unsigned long long)offset);
    if (res == NULL) {
        return client__null_output(c, what, "res");
    }
    memset(res, 0, sizeof *res);
    if ((rv = client__check_name(c, topic, what)) != 0) {
        return rv;
    }
    if (opts != NULL) {
        o = *opts;
    } else {
        tally_fetch_options_init(&o);
    }
    if (c->linearizable) {
        uint64_t index = 0;
        if ((rv = tally_read_index(c, &index)) != 0) {
            char why[sizeof c->errmsg];
            snprintf(why, sizeof why, "%s", c->errmsg);
            err_printf(c->errmsg, "%s (linearizable): %s", what, why);
            return rv;
        }
        o.min_index = index > o.min_index ? index : o.min_index;
    }
    for (unsigned hop = 0;; hop++) {
        rv = client__fetch_one(c, what, topic, at, &o, res);
        if (rv != 0 || res->n > 0 || res->next_offset <= at || hop == CLIENT__GAP_HOPS) {
            return rv;
        }
        /* Only gap batches: nothing but emptied offsets up to next_offset. */
        if (res->next_offset >= res->high_offset) {
            /* The gap reaches the end: long-poll there for what is left
             * of max_wait_ms, as a fetch at the end would have. */
            int64_t waited = wire_now_ms() - t0;
            if (o.max_wait_ms == 0 || waited >= (int64_t)o.max_wait_ms) {
                return 0;
            }
            o.max_wait_ms -= (uint32_t)waited;
        }
        at = res->next_offset;
        tally_fetch_result_free(res);
    }
}

