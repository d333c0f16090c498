/* libtally: tally_produce and tally_produce_ex, one idempotent batch
 * written synchronously (include/tally.h).
 *
 * The handle's producer id and its per-topic sequence numbers live here:
 * each batch carries (producer id, sequence), so the retry driver
 * (client.c) may send it again after an unknown outcome and the leader
 * answers a batch it already wrote with the original offsets. */
#include "tally.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "client/client.h"
#include "lib/batch.h"
#include "lib/byte.h"
#include "lib/err.h"
#include "proto/proto.h"

/* Records sections of at least this size are lz4-compressed. */
#define CLIENT__COMPRESS_MIN 1024

/* ------------------------------------------------------------------------
 * Produce
 * ------------------------------------------------------------------------ */

/* A random producer id (never 0), and all sequences back to 0. */
void client__new_producer(struct tally_client *c)
{
    uint64_t id = 0;
    while (id == 0) {
        if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id) {
            /* No entropy source: time and address still make a clash
             * between two live producers very unlikely. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            id = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)c;
        }
    }
    c->producer_id = id;
    for (struct client__seq *s = c->seqs; s != NULL; s = s->link) {
        s->next = 0;
    }
}

static struct client__seq *client__seq_of(struct tally_client *c, const char *topic)
{
    struct client__seq *s;
    for (s = c->seqs; s != NULL; s = s->link) {
        if (strcmp(s->topic, topic) == 0) {
            return s;
        }
    }
    s = calloc(1, sizeof *s);
    if (s != NULL) {
        snprintf(s->topic, sizeof s->topic, "%s", topic);
        s->link = c->seqs;
        c->seqs = s;
    }
    return s;
}

TALLY_API void tally_produce_options_init(struct tally_produce_options *o)
{
    if (o == NULL) {
        return;
    }
    memset(o, 0, sizeof *o);
    o->expect_offset = TALLY_NO_EXPECT;
}

TALLY_API uint64_t tally_condition_actual(tally_client *c)
{
    if (c == NULL) {
        return 0;
    }
    return c->actual;
}

TALLY_API int tally_produce(tally_client *c, const char *topic,
                            const struct tally_record_in *records, size_t n,
                            struct tally_produce_result *result)
{
    return tally_produce_ex(c, topic, records, n, NULL, result);
}

TALLY_API int tally_produce_ex(tally_client *c, const char *topic,
                               const struct tally_record_in *records, size_t n,
                               const struct tally_produce_options *opts,
                               struct tally_produce_result *result)
{
    struct batch_builder bb;
    struct buf batch;
    struct proto_produce_req m;
    struct proto_produce_resp pr;
    struct client__op op;
    struct client__reply rep;
    char what[PROTO_NAME_MAX + 32];
    size_t start;
    int rv;

    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "produce to %s", topic != NULL ? topic : "(null)");
    if (result == NULL) {
        return client__null_output(c, what, "result");
    }
    memset(result, 0, sizeof *result);
    if ((rv = client__check_name(c, topic, what)) != 0) {
        return rv;
    }
    if (n == 0 || records == NULL || n > UINT32_MAX) {
        err_printf(c->errmsg, "%s: at least one record is needed", what);
        return TALLY_INVAL;
    }
    if (opts != NULL && opts->n_conditions > PROTO_MAX_CONDITIONS) {
        err_printf(c->errmsg, "%s: at most %d key conditions", what, PROTO_MAX_CONDITIONS);
        return TALLY_INVAL;
    }
    if (opts != NULL && opts->n_conditions > 0 && opts->conditions == NULL) {
        err_printf(c->errmsg, "%s: n_conditions is %zu but conditions is NULL", what,
                   opts->n_conditions);
        return TALLY_INVAL;
    }
    for (size_t i = 0; opts != NULL && i < opts->n_conditions; i++) {
        if (opts->conditions[i].key == NULL && opts->conditions[i].key_len > 0) {
            err_printf(c->errmsg, "%s: key condition %zu has a NULL key of %zu bytes", what, i,
                       opts->conditions[i].key_len);
            return TALLY_INVAL;
        }
    }
    c->actual = 0;

    /* One batch with this handle's producer id and the topic's next
     * sequence, checksummed here and verified by the leader and by every
     * reader. */
    struct client__seq *seq = client__seq_of(c, topic);
    if (seq == NULL) {
        err_printf(c->errmsg, "%s: out of memory", what);
        return TALLY_NOMEM;
    }
    batch_builder_init(&bb, c->producer_id, seq->next);
    for (size_t i = 0; i < n; i++) {
        rv = batch_builder_add(&bb, records[i].key, records[i].key_len, records[i].value,
                               records[i].value_len);
        if (rv != 0) {
            batch_builder_free(&bb);
            err_printf(c->errmsg, "%s: record %zu: %s", what, i, tally_strerror(rv));
            return rv;
        }
    }
    buf_init(&batch);
    rv = batch_builder_finish(&bb, bb.records.len >= CLIENT__COMPRESS_MIN, &batch);
    batch_builder_free(&bb);
    if (rv != 0) {
        buf_free(&batch);
        if (rv == TALLY_TOOLARGE) {
            err_printf(c->errmsg, "%s: a batch of %zu record(s) is over the limit of %u bytes", what, n,
                       (unsigned)BATCH_MAX_SIZE);
        } else {
            err_printf(c->errmsg, "%s: %s", what, tally_strerror(rv));
        }
        return rv;
    }

    client__op_init(c, &op, what, true);
    op.idempotent = true;
    memset(&m, 0, sizeof m);
    snprintf(m.topic, sizeof m.topic, "%s", topic);
    m.timeout_ms = (uint32_t)c->timeout_ms;
    m.expect_offset = opts != NULL ? opts->expect_offset : PROTO_NO_EXPECT;
    m.n_conditions = opts != NULL ? (uint32_t)opts->n_conditions : 0;
    m.batch = batch.data;
    m.batch_len = (uint32_t)batch.len;
    start = client__begin(c, PROTO_PRODUCE);
    proto_put_produce_req(&c->req, &m);
    for (uint32_t i = 0; i < m.n_conditions; i++) {
        struct proto_condition pc = {opts->conditions[i].key,
                                     (uint32_t)opts->conditions[i].key_len,
                                     opts->conditions[i].expect_version};
        proto_put_condition(&c->req, &pc);
    }
    rv = client__end(c, start, what);
    buf_free(&batch);
    if (rv != 0) {
        return rv;
    }
    if ((rv = client__call(c, &op, &rep)) != 0) {
        if (rv == TALLY_TIMEOUT || rv == TALLY_LEADERSHIP_LOST || rv == TALLY_SEQUENCE) {
            /* The batch may be in the log under this sequence: start over
             * as a new producer rather than risk a gap or a duplicate. */
            client__new_producer(c);
        }
        return rv;
    }
    seq->next++;
    if (proto_get_produce_resp(&rep.body, &pr) != 0 || proto_get_end(&rep.body) != 0) {
        return client__malformed(c, what);
    }
    if (pr.count != (uint32_t)n) {
        err_printf(c->errmsg, "%s: the leader wrote %u records of %zu", what, pr.count, n);
        return TALLY_PROTO;
    }
    result->base_offset = pr.base_offset;
    result->count = pr.count;
    result->raft_index = pr.raft_index;
    return 0;
}

