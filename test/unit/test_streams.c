/* Unit tests of the stream index (store/streams.c) and of stream reads
 * against a store (store/stream_read.c): a model of every key's records is
 * compared with what stream_read returns after appends, restarts with and
 * without checkpoints, a lost or damaged checkpoint, compaction, a trim
 * and a snapshot install. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/batch.h"
#include "lib/byte.h"
#include "lib/codec.h"
#include "lib/err.h"
#include "lib/glob.h"
#include "lib/share.h"
#include "store/command.h"
#include "store/store.h"
#include "store/stream_read.h"
#include "store/streams.h"
#include "../lib/tmpdir.h"

#define N_KEYS 12
#define MAX_EVENTS 4096

/* ------------------------------------------------------------------------
 * The index alone
 * ------------------------------------------------------------------------ */

/* Versions map to offsets; a skipped version restarts the stream there. */
static void test_index_add_and_gap(void **state)
{
    struct streams s;
    (void)state;
    streams_init(&s);
    assert_null(streams_find(&s, "a", 1));
    assert_int_equal(streams_add(&s, "a", 1, 10, 1), 0);
    assert_int_equal(streams_add(&s, "a", 1, 12, 2), 0);
    assert_int_equal(streams_add(&s, "b", 1, 13, 1), 0);
    struct streams_stream *st = streams_find(&s, "a", 1);
    assert_non_null(st);
    assert_int_equal(st->n, 2);
    assert_int_equal(streams_last_version(st), 2);
    assert_int_equal(s.events, 3);
    /* Versions 3 and 4 are gone: so are 1 and 2 (survivors are a suffix). */
    assert_int_equal(streams_add(&s, "a", 1, 20, 5), 0);
    st = streams_find(&s, "a", 1);
    assert_int_equal(st->n, 1);
    assert_int_equal(st->first_version, 5);
    assert_int_equal(s.events, 2);
    streams_free(&s);
}

/* Cut, trim and drop_front keep versions attached to their offsets. */
static void test_index_cut_trim(void **state)
{
    struct streams s;
    (void)state;
    streams_init(&s);
    for (uint64_t v = 1; v <= 10; v++) {
        assert_int_equal(streams_add(&s, "k", 1, v * 10, v), 0);
    }
    streams_trim(&s, 35); /* offsets 10, 20, 30 go */
    struct streams_stream *st = streams_find(&s, "k", 1);
    assert_int_equal(st->first_version, 4);
    assert_int_equal(st->e[0].offset, 40);
    streams_cut(&s, 80); /* offsets 80.. go */
    assert_int_equal(streams_last_version(st), 7);
    assert_int_equal(s.events, 4);
    /* Apply goes on after the cut with the versions it had. */
    assert_int_equal(streams_add(&s, "k", 1, 80, 8), 0);
    assert_int_equal(streams_last_version(st), 8);
    streams_free(&s);
}

/* Encoding round-trips; damaged encodings are refused, not trusted. */
static void test_index_encode_decode(void **state)
{
    struct streams s, d;
    struct buf b;
    struct rd r;
    (void)state;
    streams_init(&s);
    streams_init(&d);
    for (uint64_t i = 0; i < 300; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%u", (unsigned)(i % 7));
        if (i % 5 == 0) { /* (some places unknown) */
            assert_int_equal(streams_add(&s, k, strlen(k), i * 3 + 1, i / 7 + 1), 0);
        } else { /* (positions that go back: another segment) */
            assert_int_equal(streams_add_at(&s, k, strlen(k), i * 3 + 1, i / 7 + 1,
                                            (i * 7919) % 100000 + 32, (uint32_t)i * 13), 0);
        }
    }
    buf_init(&b);
    streams_encode(&s, true, &b);
    assert_true(buf_ok(&b));
    rd_init(&r, b.data, b.len);
    assert_int_equal(streams_decode(&d, true, &r), 0);
    assert_int_equal(r.left, 0);
    assert_int_equal(d.events, 300);
    for (unsigned i = 0; i < 7; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%u", i);
        struct streams_stream *a = streams_find(&s, k, strlen(k)), *c = streams_find(&d, k, strlen(k));
        assert_non_null(c);
        assert_int_equal(a->n, c->n);
        assert_int_equal(a->first_version, c->first_version);
        assert_memory_equal(a->e, c->e, a->n * sizeof *a->e);
    }
    /* Version 1 (no places) of the same index: the places are unknown. */
    struct buf b1;
    buf_init(&b1);
    streams_encode(&s, false, &b1);
    assert_true(b1.len < b.len);
    rd_init(&r, b1.data, b1.len);
    assert_int_equal(streams_decode(&d, false, &r), 0);
    assert_int_equal(r.left, 0);
    assert_int_equal(d.events, 300);
    struct streams_stream *k0 = streams_find(&d, "k1", 2);
    assert_non_null(k0);
    for (uint32_t j = 0; j < k0->n; j++) {
        assert_int_equal(k0->e[j].place.at, 0);
    }
    buf_free(&b1);
    /* A packed copy encodes the same bytes. */
    struct streams p;
    struct buf bp;
    streams_init(&p);
    buf_init(&bp);
    assert_int_equal(streams_copy_packed(&p, &s, 0), 0);
    streams_encode(&p, true, &bp);
    rd_init(&r, bp.data, bp.len);
    assert_int_equal(streams_decode(&d, true, &r), 0);
    assert_int_equal(d.events, 300);
    for (unsigned i = 0; i < 7; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%u", i);
        struct streams_stream *a = streams_find(&s, k, strlen(k)), *c = streams_find(&d, k, strlen(k));
        assert_memory_equal(a->e, c->e, a->n * sizeof *a->e);
    }
    streams_free(&p);
    buf_free(&bp);
    /* Every truncation of the encoding is refused. */
    for (size_t cut = 0; cut < b.len; cut += 7) {
        rd_init(&r, b.data, cut);
        assert_int_not_equal(streams_decode(&d, true, &r), 0);
    }
    /* A zero delta (offsets not ascending) is refused. */
    struct streams one;
    streams_init(&one);
    assert_int_equal(streams_add(&one, "x", 1, 5, 1), 0);
    assert_int_equal(streams_add(&one, "x", 1, 6, 2), 0);
    b.len = 0;
    streams_encode(&one, false, &b);
    b.data[b.len - 1] = 0; /* the delta 1 -> 0 */
    rd_init(&r, b.data, b.len);
    assert_int_equal(streams_decode(&d, false, &r), TALLY_CORRUPT);
    streams_free(&one);
    streams_free(&s);
    streams_free(&d);
    buf_free(&b);
}

/* ------------------------------------------------------------------------
 * Against a store: the model
 * ------------------------------------------------------------------------ */

struct event {
    uint64_t offset;
    bool tombstone;
    char value[24];
};

struct model {
    struct event ev[N_KEYS][MAX_EVENTS]; /* ev[k][v - 1] is version v of key k */
    uint64_t version[N_KEYS];
};

struct fixture {
    char *dir;
    struct store *s;
    struct log_config lc;
    struct model m;
    uint64_t index;
    unsigned seed;
    bool plain; /* no compressed batches (append_random) */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char errmsg[ERR_MSG_SIZE];
    f->dir = tmpdir_make();
    log_config_init(&f->lc);
    assert_int_equal(store_open(f->dir, &f->lc, &f->s, errmsg), 0);
    f->index = 1;
    f->seed = 18;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->s != NULL) {
        store_close(f->s);
    }
    tmpdir_remove(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static unsigned rnd(struct fixture *f, unsigned n)
{
    f->seed = f->seed * 1103515245u + 12345u;
    return (f->seed >> 8) % n;
}

static void apply_entry(struct fixture *f, struct buf *e)
{
    char errmsg[ERR_MSG_SIZE] = "";
    struct store_result *res = NULL;
    int rv = store_apply(f->s, ++f->index, e->data, e->len, &res, errmsg);
    assert_int_equal(rv, 0);
    assert_int_equal(res->items[0].code, 0);
    free(res);
}

static void create(struct fixture *f, uint8_t policy)
{
    struct buf e;
    struct command_topic_config c = {policy, -1, -1, 2048};
    buf_init(&e);
    command_encode_topic_create(&e, "t", &c);
    apply_entry(f, &e);
    buf_free(&e);
}

static void key_name(unsigned k, char *out, size_t cap)
{
    snprintf(out, cap, "order-%u", k);
}

/* One APPEND entry of @n keyed records (random keys, some tombstones). */
static void append_random(struct fixture *f, unsigned n)
{
    struct batch_builder b;
    struct buf out, e;
    struct store_topic *t = store_topic_find(f->s, "t");
    uint64_t offset = log_next_offset(t->log);
    batch_builder_init(&b, 0, 0);
    buf_init(&out);
    buf_init(&e);
    for (unsigned i = 0; i < n; i++) {
        unsigned k = rnd(f, N_KEYS);
        char key[16];
        struct event *ev = &f->m.ev[k][f->m.version[k]++];
        assert_true(f->m.version[k] <= MAX_EVENTS);
        key_name(k, key, sizeof key);
        ev->offset = offset + i;
        ev->tombstone = rnd(f, 10) == 0;
        snprintf(ev->value, sizeof ev->value, "v%u-%llu", k, (unsigned long long)f->m.version[k]);
        assert_int_equal(batch_builder_add(&b, key, strlen(key), ev->tombstone ? NULL : ev->value,
                                           ev->tombstone ? 0 : strlen(ev->value)), 0);
    }
    bool lz4 = rnd(f, 2) == 0;
    assert_int_equal(batch_builder_finish(&b, lz4 && !f->plain, &out), 0);
    batch_stamp(out.data, 0, 1700000000000, 0);
    command_append_begin(&e);
    command_append_add(&e, "t", out.data, (uint32_t)out.len, COMMAND_NO_EXPECT, NULL, 0);
    command_append_end(&e, 1);
    apply_entry(f, &e);
    batch_builder_free(&b);
    buf_free(&out);
    buf_free(&e);
}

/* Offsets the log still holds a record at (the truth compaction left). */
static bool *surviving(struct fixture *f)
{
    struct store_topic *t = store_topic_find(f->s, "t");
    uint64_t next = log_next_offset(t->log);
    bool *alive = calloc(next + 1, 1);
    uint64_t from = log_start_offset(t->log);
    char errmsg[ERR_MSG_SIZE];
    while (from < next) {
        void *data = NULL;
        size_t len = 0, pos = 0;
        uint64_t after;
        assert_int_equal(log_read_copy(t->log, from, 1u << 20, &data, &len, &after, errmsg), 0);
        while (pos < len) {
            struct batch_header h;
            struct batch_iter it;
            struct batch_record rec;
            assert_int_equal(batch_decode_header((uint8_t *)data + pos, len - pos, &h, errmsg), 0);
            assert_int_equal(batch_iter_init(&it, (uint8_t *)data + pos, h.batch_len, errmsg), 0);
            while (batch_iter_next(&it, &rec, errmsg) == 0) {
                if (rec.offset >= t->trim_offset) {
                    alive[rec.offset] = true;
                }
            }
            batch_iter_close(&it);
            pos += h.batch_len;
        }
        free(data);
        assert_true(after > from);
        from = after;
    }
    return alive;
}

struct got {
    uint64_t version[MAX_EVENTS];
    uint64_t offset[MAX_EVENTS];
    bool tombstone[MAX_EVENTS];
    char value[MAX_EVENTS][24];
    unsigned n;
};

static int collect(void *arg, uint64_t version, const struct batch_record *rec)
{
    struct got *g = arg;
    g->version[g->n] = version;
    g->offset[g->n] = rec->offset;
    g->tombstone[g->n] = rec->value == NULL;
    snprintf(g->value[g->n], sizeof g->value[0], "%.*s", (int)rec->value_len,
             rec->value != NULL ? (const char *)rec->value : "");
    g->n++;
    return 0;
}

/* Every stream, forward from version 1 and from a random version, and
 * backward from the end and from a random version, equals the model's
 * records that the log still holds (which must be a suffix). */
static void check_all(struct fixture *f)
{
    struct store_topic *t = store_topic_find(f->s, "t");
    bool *alive = surviving(f);
    static struct got g;
    char errmsg[ERR_MSG_SIZE];
    for (unsigned k = 0; k < N_KEYS; k++) {
        char key[16];
        uint64_t first = f->m.version[k] + 1;
        key_name(k, key, sizeof key);
        for (uint64_t v = f->m.version[k]; v >= 1; v--) {
            if (!alive[f->m.ev[k][v - 1].offset]) {
                break;
            }
            first = v;
        }
        for (uint64_t v = 1; v < first; v++) {
            assert_false(alive[f->m.ev[k][v - 1].offset]); /* survivors: a suffix */
        }
        for (int mode = 0; mode < 4; mode++) {
            struct stream_read_req q = {key, strlen(key), 0, mode >= 2, MAX_EVENTS, 0};
            struct stream_read_info info;
            if (f->m.version[k] == 0) {
                assert_int_equal(stream_read(t, &q, collect, &g, &info, errmsg), TALLY_NOTFOUND);
                break;
            }
            if (mode == 1 || mode == 3) {
                q.from_version = 1 + rnd(f, (unsigned)f->m.version[k]);
            }
            g.n = 0;
            assert_int_equal(stream_read(t, &q, collect, &g, &info, errmsg), 0);
            assert_int_equal(info.version, f->m.version[k]);
            assert_int_equal(info.first_version, first);
            uint64_t lo, hi;
            if (!q.backward) {
                lo = q.from_version > first ? q.from_version : first;
                hi = f->m.version[k];
            } else {
                lo = first;
                hi = q.from_version != 0 ? q.from_version : f->m.version[k];
            }
            unsigned want = hi >= lo ? (unsigned)(hi - lo + 1) : 0;
            assert_int_equal(g.n, want);
            for (unsigned i = 0; i < g.n; i++) {
                uint64_t v = q.backward ? hi - i : lo + i;
                const struct event *ev = &f->m.ev[k][v - 1];
                assert_int_equal(g.version[i], v);
                assert_int_equal(g.offset[i], ev->offset);
                assert_int_equal(g.tombstone[i], ev->tombstone);
                if (!ev->tombstone) {
                    assert_string_equal(g.value[i], ev->value);
                }
            }
        }
    }
    free(alive);
}

static void reopen(struct fixture *f, bool clean)
{
    char errmsg[ERR_MSG_SIZE];
    if (clean) {
        assert_int_equal(store_checkpoint(f->s, errmsg), 0);
    }
    store_close(f->s);
    assert_int_equal(store_open(f->dir, &f->lc, &f->s, errmsg), 0);
}

static void streams_ckpt_path(struct fixture *f, char *out, size_t cap)
{
    snprintf(out, cap, "%s/topics/t/%s", f->dir, STREAM_CKPT_NAME);
}

/* Appends, then restarts: clean (checkpoint used), crash (replayed from
 * the last checkpoint), checkpoint lost, checkpoint damaged. */
static void test_reads_across_restarts(void **state)
{
    struct fixture *f = *state;
    char path[PATH_MAX + 64];
    create(f, TALLY_POLICY_RETAIN);
    for (int i = 0; i < 40; i++) {
        append_random(f, 1 + rnd(f, 20));
    }
    check_all(f);
    reopen(f, true);
    check_all(f);
    for (int i = 0; i < 20; i++) {
        append_random(f, 1 + rnd(f, 20));
    }
    reopen(f, false); /* a crash: the records since the checkpoint are replayed */
    check_all(f);
    streams_ckpt_path(f, path, sizeof path);
    assert_int_equal(unlink(path), 0);
    reopen(f, false);
    check_all(f);
    reopen(f, true);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, 30, SEEK_SET);
    fputc(0x5a, fp);
    fclose(fp);
    reopen(f, false);
    check_all(f);
    /* A checkpoint that counts another part of the log is not used. */
    for (int i = 0; i < 5; i++) {
        append_random(f, 3);
    }
    check_all(f);
}

/* A read stops where the callback says; bad requests get their codes. */
static int stop_after_two(void *arg, uint64_t version, const struct batch_record *rec)
{
    struct got *g = arg;
    if (g->n == 2) {
        return 1;
    }
    return collect(arg, version, rec);
}

static void test_read_limits_and_errors(void **state)
{
    struct fixture *f = *state;
    static struct got g;
    struct stream_read_info info;
    char errmsg[ERR_MSG_SIZE];
    create(f, TALLY_POLICY_RETAIN);
    for (int i = 0; i < 10; i++) {
        append_random(f, 10);
    }
    struct store_topic *t = store_topic_find(f->s, "t");
    char key[16];
    key_name(3, key, sizeof key);
    uint64_t version = f->m.version[3];
    assert_true(version >= 4);
    struct stream_read_req q = {key, strlen(key), 2, false, 3, 0};
    g.n = 0;
    assert_int_equal(stream_read(t, &q, collect, &g, &info, errmsg), 0);
    assert_int_equal(g.n, 3);
    assert_int_equal(info.next_version, 5);
    g.n = 0;
    assert_int_equal(stream_read(t, &q, stop_after_two, &g, &info, errmsg), 0);
    assert_int_equal(info.n, 2);
    assert_int_equal(info.next_version, 4);
    /* At the end: nothing, no error; beyond it: OUT_OF_RANGE. */
    q.from_version = version + 1;
    assert_int_equal(stream_read(t, &q, collect, &g, &info, errmsg), 0);
    assert_int_equal(info.n, 0);
    q.from_version = version + 2;
    assert_int_equal(stream_read(t, &q, collect, &g, &info, errmsg), TALLY_OUT_OF_RANGE);
    assert_non_null(strstr(errmsg, "beyond the end"));
    q.backward = true;
    q.from_version = version + 1;
    assert_int_equal(stream_read(t, &q, collect, &g, &info, errmsg), TALLY_OUT_OF_RANGE);
    /* Backward to the start: next_version 0. */
    q.from_version = 2;
    q.max_events = 10;
    g.n = 0;
    assert_int_equal(stream_read(t, &q, collect, &g, &info, errmsg), 0);
    assert_int_equal(g.n, 2);
    assert_int_equal(info.next_version, 0);
    q.key = "nobody";
    q.key_len = 6;
    assert_int_equal(stream_read(t, &q, collect, &g, &info, errmsg), TALLY_NOTFOUND);
}

/* Compaction removes all but the latest record per key below the
 * checkpoint: reads then give the survivors, with their versions. */
static void test_reads_after_compaction(void **state)
{
    struct fixture *f = *state;
    char errmsg[ERR_MSG_SIZE];
    create(f, TALLY_POLICY_COMPACT);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 30; i++) {
            append_random(f, 1 + rnd(f, 15));
        }
        assert_int_equal(store_checkpoint(f->s, errmsg), 0);
        struct store_compact_config cc = {0, 1u << 20};
        struct store_compaction *j = NULL;
        assert_int_equal(store_compact_prepare(f->s, &cc, 1800000000000, &j, errmsg), 0);
        assert_non_null(j);
        assert_int_equal(store_compact_run(j, errmsg), 0);
        struct log_compact_stats st;
        assert_int_equal(store_compact_finish(f->s, j, &st, errmsg), 0);
        store_compact_free(j);
        assert_true(st.rewritten > 0); /* records did go */
        check_all(f);
        reopen(f, round == 1);
        check_all(f);
    }
}

/* Each of @f's stream entries' places, in slot order, through @fn. */
static void each_place(struct fixture *f, void (*fn)(struct streams_place *p, void *arg),
                       void *arg)
{
    struct streams *s = &store_topic_find(f->s, "t")->streams;
    for (size_t i = 0; i < s->cap; i++) {
        struct streams_stream *st = &s->slots[i];
        for (uint32_t j = 0; (st->h1 != 0 || st->h2 != 0) && j < st->n; j++) {
            fn(&st->e[j].place, arg);
        }
    }
}

/* Gives every known place the one of the entry before it (another
 * record, of another key or another version), or a place one byte off. */
struct rotate {
    struct streams_place prev;
    unsigned n;
};

static void rotate_place(struct streams_place *p, void *arg)
{
    struct rotate *r = arg;
    struct streams_place mine = *p;
    if (p->at == 0) {
        return;
    }
    if (r->n++ % 4 == 3) {
        p->at++; /* in the middle of the record */
    } else if (r->prev.at != 0) {
        *p = r->prev;
    }
    r->prev = mine;
}

/* Rewrite @f's streams.ckpt (store closed) as version 1: the same index
 * without places. */
static void ckpt_to_version_1(struct fixture *f)
{
    char path[PATH_MAX + 64];
    streams_ckpt_path(f, path, sizeof path);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    static uint8_t data[1 << 20];
    size_t n = fread(data, 1, sizeof data, fp);
    fclose(fp);
    assert_true(n > 32 && n < sizeof data);
    assert_int_equal(byte_get_u32(data + 4), 2);
    struct streams st;
    struct rd r;
    streams_init(&st);
    rd_init(&r, data + 24, n - 32);
    assert_int_equal(streams_decode(&st, true, &r), 0);
    struct buf b;
    buf_init(&b);
    buf_put(&b, data, 4);
    buf_put_u32(&b, 1);
    buf_put(&b, data + 8, 16); /* Raft index, next offset */
    streams_encode(&st, false, &b);
    buf_put_u64(&b, codec_checksum(b.data, b.len));
    assert_true(buf_ok(&b) && b.len < n);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b.data, 1, b.len, fp), b.len);
    fclose(fp);
    buf_free(&b);
    streams_free(&st);
}

/* Reads take records alone at the place apply learnt; a wrong place (a
 * bug, or a batch that moved) is caught and the record is read from its
 * whole batch, which teaches the right place again. streams.ckpt keeps
 * the places over a restart (a batch of a segment written before it is
 * read whole once, to verify it); version 1 of the file, without places,
 * still loads, and reads learn them. */
static void test_read_places(void **state)
{
    struct fixture *f = *state;
    struct store_topic *t;
    char errmsg[ERR_MSG_SIZE];
    f->plain = true; /* (a compressed batch is always read whole) */
    create(f, TALLY_POLICY_RETAIN);
    for (int i = 0; i < 60; i++) {
        append_random(f, 1 + rnd(f, 20));
    }
    t = store_topic_find(f->s, "t");
    assert_true(log_segment_count(t->log) > 2);
    check_all(f);
    assert_true(t->stream_direct > 0);
    assert_int_equal(t->stream_whole, 0); /* apply taught every place */
    struct rotate r;
    memset(&r, 0, sizeof r);
    each_place(f, rotate_place, &r);
    assert_true(r.n > 20);
    check_all(f); /* (the same records, versions and values) */
    assert_true(t->stream_whole >= r.n / 2); /* each wrong place was caught */
    uint64_t whole = t->stream_whole;
    check_all(f);
    assert_int_equal(t->stream_whole, whole); /* and learnt again */

    /* Restart: the places come back from streams.ckpt. */
    reopen(f, true);
    t = store_topic_find(f->s, "t");
    assert_true(t->streams_counted > 0); /* (loaded, not rebuilt from the log) */
    check_all(f);
    assert_true(t->stream_whole * 10 < t->stream_direct);

    /* Version 1: loads, reads learn the places. */
    assert_int_equal(store_checkpoint(f->s, errmsg), 0);
    store_close(f->s);
    f->s = NULL;
    ckpt_to_version_1(f);
    assert_int_equal(store_open(f->dir, &f->lc, &f->s, errmsg), 0);
    t = store_topic_find(f->s, "t");
    assert_true(t->streams_counted > 0);
    check_all(f);
    assert_true(t->stream_whole * 4 > t->stream_direct); /* the first of 4 reads of each */
    whole = t->stream_whole;
    check_all(f);
    assert_int_equal(t->stream_whole, whole);
    /* And the next checkpoint is version 2 again. */
    reopen(f, true);
    t = store_topic_find(f->s, "t");
    check_all(f);
    assert_true(t->stream_whole * 10 < t->stream_direct);
}

/* A Raft snapshot writes keys.ckpt but not streams.ckpt while the topic
 * grew by less than STREAM_CKPT_MIN_RECORDS: after a crash the index comes
 * from the older streams.ckpt plus the records between the two, numbered
 * from keys.ckpt, also when compaction removed some of those records. */
static void test_stale_stream_checkpoint(void **state)
{
    struct fixture *f = *state;
    char errmsg[ERR_MSG_SIZE];
    struct buf snap;
    create(f, TALLY_POLICY_COMPACT);
    for (int i = 0; i < 20; i++) {
        append_random(f, 1 + rnd(f, 15));
    }
    assert_int_equal(store_checkpoint(f->s, errmsg), 0); /* both files */
    uint64_t counted = store_topic_find(f->s, "t")->streams_counted;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 30; i++) {
            append_random(f, 1 + rnd(f, 15));
        }
        buf_init(&snap);
        assert_int_equal(store_snapshot(f->s, f->index, &snap, errmsg), 0);
        buf_free(&snap);
        /* keys.ckpt moved on, streams.ckpt did not */
        assert_int_equal(store_topic_find(f->s, "t")->streams_counted, counted);
        if (round == 1) {
            struct store_compact_config cc = {0, 1u << 20};
            struct store_compaction *j = NULL;
            struct log_compact_stats st;
            assert_int_equal(store_compact_prepare(f->s, &cc, 1800000000000, &j, errmsg), 0);
            assert_non_null(j);
            assert_int_equal(store_compact_run(j, errmsg), 0);
            assert_int_equal(store_compact_finish(f->s, j, &st, errmsg), 0);
            store_compact_free(j);
            assert_true(st.upto > counted); /* it compacted what only keys.ckpt counts */
        }
        for (int i = 0; i < 5; i++) {
            append_random(f, 3);
        }
        reopen(f, false); /* a crash */
        assert_int_equal(store_topic_find(f->s, "t")->streams_counted, counted);
        check_all(f);
    }
}

/* A trim (retention) hides the oldest records of every stream. */
static void test_reads_after_trim(void **state)
{
    struct fixture *f = *state;
    struct buf e;
    create(f, TALLY_POLICY_DELETE);
    for (int i = 0; i < 30; i++) {
        append_random(f, 1 + rnd(f, 15));
    }
    struct store_topic *t = store_topic_find(f->s, "t");
    uint64_t cut = log_next_offset(t->log) / 2;
    buf_init(&e);
    command_encode_topic_trim(&e, "t", t->created_index, cut, 0);
    apply_entry(f, &e);
    buf_free(&e);
    check_all(f);
    reopen(f, true);
    check_all(f);
}

/* A snapshot installed on an empty node: its streams lie in history it
 * lacks (UNAVAILABLE); the records after the snapshot are read as usual. */
static void test_snapshot_install(void **state)
{
    struct fixture *f = *state;
    struct buf snap;
    char errmsg[ERR_MSG_SIZE];
    create(f, TALLY_POLICY_RETAIN);
    for (int i = 0; i < 10; i++) {
        append_random(f, 10);
    }
    buf_init(&snap);
    assert_int_equal(store_snapshot(f->s, f->index, &snap, errmsg), 0);
    char *dir2 = tmpdir_make();
    struct store *s2;
    assert_int_equal(store_open(dir2, &f->lc, &s2, errmsg), 0);
    assert_int_equal(store_restore(s2, snap.data, snap.len, false, errmsg), 0);
    struct store_topic *t2 = store_topic_find(s2, "t");
    char key[16];
    key_name(1, key, sizeof key);
    struct stream_read_req q = {key, strlen(key), 0, false, 100, 0};
    struct stream_read_info info;
    static struct got g;
    assert_int_equal(stream_read(t2, &q, collect, &g, &info, errmsg), TALLY_UNAVAILABLE);
    assert_non_null(strstr(errmsg, "another node"));
    /* Backward from the end too: the node holds none of the stream (the
     * fault suite found such reads answered as empty). */
    q.backward = true;
    assert_int_equal(stream_read(t2, &q, collect, &g, &info, errmsg), TALLY_UNAVAILABLE);
    q.backward = false;
    /* Forward from the end: nothing yet, no error. */
    q.from_version = f->m.version[1] + 1;
    g.n = 0;
    assert_int_equal(stream_read(t2, &q, collect, &g, &info, errmsg), 0);
    assert_int_equal(g.n, 0);
    store_close(s2);
    tmpdir_remove(dir2);
    free(dir2);
    buf_free(&snap);
}

/* ------------------------------------------------------------------------
 * Key filters (lib/glob.h)
 * ------------------------------------------------------------------------ */

static bool m(const char *pattern, const char *key)
{
    return glob_match((const uint8_t *)pattern, strlen(pattern), (const uint8_t *)key,
                      strlen(key));
}

/* Exact keys, prefixes, '?', escapes and several stars match as glob(7)
 * says, byte for byte. */
static void test_glob_match(void **state)
{
    (void)state;
    assert_true(m("order-1", "order-1"));
    assert_false(m("order-1", "order-12"));
    assert_false(m("order-1", "order-"));
    assert_true(m("order-*", "order-"));
    assert_true(m("order-*", "order-123"));
    assert_false(m("order-*", "orders-1"));
    assert_true(m("*", ""));
    assert_true(m("*-eu", "order-7-eu"));
    assert_false(m("*-eu", "order-7-us"));
    assert_true(m("o*r-*-e?", "order-7-eu"));
    assert_true(m("a*b*c", "aXbYbZc"));
    assert_false(m("a*b*c", "aXbYbZ"));
    assert_true(m("acct-??", "acct-12"));
    assert_false(m("acct-??", "acct-1"));
    assert_true(m("\\\\*", "\\anything")); /* an escaped backslash, then a star */
    assert_true(m("a\\*b", "a*b"));
    assert_false(m("a\\*b", "axb"));
    assert_true(m("a\\?", "a?"));
    assert_false(m("a\\?", "ab"));
    assert_true(m("**a**", "xxa"));
    /* Bytes, not characters: a NUL in a key is a byte like any other. */
    assert_true(glob_match((const uint8_t *)"a?b", 3, (const uint8_t *)"a\0b", 3));
}

/* Bad patterns are refused with a reason: empty, too long, too many stars,
 * a lone trailing backslash. */
static void test_glob_check(void **state)
{
    char why[160];
    char big[GLOB_MAX + 2];
    (void)state;
    assert_true(glob_check((const uint8_t *)"order-*", 7, why, sizeof why));
    assert_false(glob_check((const uint8_t *)"", 0, why, sizeof why));
    assert_non_null(strstr(why, "empty"));
    memset(big, 'a', sizeof big);
    assert_true(glob_check((const uint8_t *)big, GLOB_MAX, why, sizeof why));
    assert_false(glob_check((const uint8_t *)big, GLOB_MAX + 1, why, sizeof why));
    assert_non_null(strstr(why, "longer than 256"));
    assert_false(glob_check((const uint8_t *)"a*b*c*d*e*f*g*h*i*", 18, why, sizeof why));
    assert_non_null(strstr(why, "8 '*'"));
    assert_true(glob_check((const uint8_t *)"a\\*b\\*c\\*d\\*e\\*f\\*g\\*h\\*i\\*", 27, why,
                           sizeof why)); /* escaped stars do not count */
    assert_false(glob_check((const uint8_t *)"abc\\", 4, why, sizeof why));
    assert_non_null(strstr(why, "lone"));
}

/* Stream metadata values parse as NAME=NUMBER pairs; unknown names are
 * ignored, anything else malformed is refused. */
static void test_meta_parse(void **state)
{
    struct stream_meta m;
    (void)state;
    const char *ok = "truncate-before=4;max-count=10;max-age-ms=60000;later-thing=7";
    assert_true(stream_meta_parse(ok, strlen(ok), &m));
    assert_int_equal(m.truncate_before, 4);
    assert_int_equal(m.max_count, 10);
    assert_int_equal(m.max_age_ms, 60000);
    assert_true(stream_meta_parse("", 0, &m));
    assert_int_equal(m.max_count, 0);
    assert_true(stream_meta_parse("max-count=2;", 12, &m));
    assert_int_equal(m.max_count, 2);
    const char *bad[] = {"max-count", "max-count=", "max-count=x", "max-count=-1",
                         "max-count=12345678901234567890", "max-age-ms=9999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(stream_meta_parse(bad[i], strlen(bad[i]), &m));
    }
}

/* Shares of a shared consumer group (lib/share.h): part of the wire
 * protocol, since a node filters by them and libtally checks them, so the
 * values are pinned. A key's share does not depend on its offset; a
 * keyless (or empty) key's is its offset modulo the count. */
static void test_share_of(void **state)
{
    (void)state;
    assert_int_equal(share_of("order-1", 7, 0, 16), 6);
    assert_int_equal(share_of("order-1", 7, 12345, 16), 6);
    assert_int_equal(share_of("order-2", 7, 0, 16), 12);
    assert_int_equal(share_of("acct-7", 6, 0, 256), 179);
    assert_int_equal(share_of(NULL, 0, 37, 16), 37 % 16);
    assert_int_equal(share_of("", 0, 37, 16), 37 % 16);
    assert_int_equal(share_of("order-1", 7, 0, 1), 0);
    struct share_set set;
    memset(&set, 0, sizeof set);
    share_set_add(&set, 0);
    share_set_add(&set, 255);
    share_set_add(&set, 256); /* out of range: ignored */
    assert_true(share_set_has(&set, 0) && share_set_has(&set, 255));
    assert_false(share_set_has(&set, 1) || share_set_has(&set, 256));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_add_and_gap),
        cmocka_unit_test(test_share_of),
        cmocka_unit_test(test_index_cut_trim),
        cmocka_unit_test(test_index_encode_decode),
        cmocka_unit_test(test_glob_match),
        cmocka_unit_test(test_glob_check),
        cmocka_unit_test(test_meta_parse),
        cmocka_unit_test_setup_teardown(test_reads_across_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_limits_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_after_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_places, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_after_trim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_stream_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_install, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
