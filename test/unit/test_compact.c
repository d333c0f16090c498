/* Unit tests of keyed compaction (src/log/compact.c and the log_compact_*
 * steps of log.c): a model of which records must survive, checked after
 * compaction and after reopening; the swap interrupted at every file
 * operation; a key map too small; segments changed while the job ran. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/batch.h"
#include "lib/byte.h"
#include "lib/err.h"
#include "lib/fs.h"
#include "log/log.h"
#include "../lib/tmpdir.h"

#define N_KEYS 150
#define N_BATCHES 400
#define TS0 1000000

/* One record as written (the model). */
struct wrec {
    uint64_t offset;
    int key;       /* -1: no key */
    bool tomb;     /* tombstone */
    int64_t ts;
    int64_t create; /* kafka: the producer's time (create_time) */
};

struct fixture {
    char *dir;
    struct log_config cfg;
    struct tally_log *l;
    bool kafka;          /* batches as the Kafka front door writes them:
                          * create times and record-counting sequences */
    struct wrec *w;      /* every record written, by offset */
    size_t n_w;
    char errmsg[ERR_MSG_SIZE];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->dir = tmpdir_make();
    log_config_init(&f->cfg);
    f->cfg.segment_bytes = 4096;
    f->cfg.index_interval_bytes = 512;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    fs_fault_reset();
    log_close(f->l);
    tmpdir_remove(f->dir);
    free(f->dir);
    free(f->w);
    free(f);
    return 0;
}

static void open_log(struct fixture *f)
{
    int rv = log_open(f->dir, &f->cfg, 0, &f->l, f->errmsg);
    if (rv != 0) {
        fail_msg("log_open: %s (%s)", f->errmsg, err_name(rv));
    }
}

static void reopen_log(struct fixture *f)
{
    log_close(f->l);
    f->l = NULL;
    open_log(f);
}

/* Write N_BATCHES batches of 1-6 records: random keys among N_KEYS, one
 * tombstone in 8, one record without a key in 20, headers on some; values
 * are "v<offset>" so every record can be recognised. Deterministic. */
static void fill_n(struct fixture *f, unsigned seed, bool compress, unsigned n_keys,
                   unsigned n_batches)
{
    unsigned r = seed;
    f->w = calloc((size_t)n_batches * 6, sizeof *f->w);
    for (unsigned b = 0; b < n_batches; b++) {
        struct batch_builder bb;
        struct buf out;
        uint64_t base = log_next_offset(f->l);
        unsigned n = 1 + (r = r * 1103515245 + 12345) % 6;
        int64_t ts = TS0 + (int64_t)b * 10;
        batch_builder_init(&bb, f->kafka ? 77 : 0, f->kafka ? base : 0);
        bb.record_seq = f->kafka;
        buf_init(&out);
        for (unsigned i = 0; i < n; i++) {
            struct wrec *wr = &f->w[f->n_w++];
            char key[24], val[32];
            /* Kafka batches also carry a null header value (Kafka's -1). */
            struct batch_kv hdr[2] = {{(const uint8_t *)"h", 1, (const uint8_t *)"x", 1},
                                      {(const uint8_t *)"n", 1, NULL, 0}};
            r = r * 1103515245 + 12345;
            wr->offset = base + i;
            wr->key = (r >> 8) % 20 == 0 ? -1 : (int)((r >> 12) % n_keys);
            wr->tomb = wr->key >= 0 && (r >> 4) % 8 == 0;
            wr->ts = ts;
            int klen = snprintf(key, sizeof key, "key-%d", wr->key);
            int vlen = snprintf(val, sizeof val, "v%llu", (unsigned long long)wr->offset);
            /* Producer times that go back and forth, far from the leader's. */
            wr->create = 1600000000000 - (int64_t)wr->offset * 7 + (int64_t)(i % 2) * 1000;
            if (f->kafka) {
                assert_int_equal(batch_builder_add_created(&bb, i, 0, wr->create,
                                                           wr->key >= 0 ? key : NULL,
                                                           (size_t)klen, wr->tomb ? NULL : val,
                                                           (size_t)vlen, hdr, (i % 2) * 2),
                                 0);
            } else {
                assert_int_equal(batch_builder_add_at(&bb, i, 0, wr->key >= 0 ? key : NULL,
                                                      (size_t)klen, wr->tomb ? NULL : val,
                                                      (size_t)vlen, hdr, i % 2),
                                 0);
            }
        }
        assert_int_equal(batch_builder_finish(&bb, compress, &out), 0);
        batch_stamp(out.data, base, ts, 100 + b);
        assert_int_equal(log_append(f->l, out.data, out.len, ts, f->errmsg), 0);
        batch_builder_free(&bb);
        buf_free(&out);
    }
    assert_int_equal(log_sync(f->l, f->errmsg), 0);
}

static void fill(struct fixture *f, unsigned seed, bool compress)
{
    fill_n(f, seed, compress, N_KEYS, N_BATCHES);
}

/* Read every record of the log: offsets strictly increasing, every record
 * identical to the one written at its offset. Fills @seen[offset]. */
static void read_all(struct fixture *f, bool *seen)
{
    uint64_t off = log_start_offset(f->l), last = 0;
    bool any = false;
    memset(seen, 0, f->n_w * sizeof *seen);
    while (off < log_next_offset(f->l)) {
        void *data;
        size_t len, done = 0;
        uint64_t next;
        int rv = log_read_copy(f->l, off, 700, &data, &len, &next, f->errmsg);
        if (rv != 0) {
            fail_msg("log_read_copy at %llu: %s", (unsigned long long)off, f->errmsg);
        }
        assert_true(next > off);
        while (done < len) {
            struct batch_iter it;
            struct batch_record rec;
            uint32_t blen = byte_get_u32((uint8_t *)data + done + 8);
            assert_int_equal(batch_iter_init(&it, (uint8_t *)data + done, blen, f->errmsg), 0);
            while (batch_iter_next(&it, &rec, f->errmsg) == 0) {
                const struct wrec *wr;
                char key[24], val[32];
                if (rec.offset < off) {
                    continue;
                }
                assert_true(!any || rec.offset > last);
                any = true;
                last = rec.offset;
                assert_true(rec.offset < f->n_w);
                wr = &f->w[rec.offset];
                int klen = snprintf(key, sizeof key, "key-%d", wr->key);
                int vlen = snprintf(val, sizeof val, "v%llu", (unsigned long long)wr->offset);
                if (wr->key < 0) {
                    assert_null(rec.key);
                } else {
                    assert_int_equal(rec.key_len, klen);
                    assert_memory_equal(rec.key, key, (size_t)klen);
                }
                if (wr->tomb) {
                    assert_null(rec.value);
                } else {
                    assert_int_equal(rec.value_len, vlen);
                    assert_memory_equal(rec.value, val, (size_t)vlen);
                }
                assert_int_equal(rec.timestamp, wr->ts);
                /* A rewritten batch keeps what the Kafka front door set. */
                assert_int_equal(rec.has_create_time, f->kafka);
                if (f->kafka) {
                    assert_int_equal(rec.create_time, wr->create);
                }
                assert_int_equal((it.h.flags & BATCH_FLAG_RECORD_SEQ) != 0, f->kafka);
                /* make_batch put a header on every second record of a batch,
                 * and compaction keeps base offsets. */
                assert_int_equal(rec.header_count,
                                 (rec.offset - it.h.base_offset) % 2 * (f->kafka ? 2 : 1));
                if (rec.header_count > 0) {
                    struct batch_headers hr;
                    struct batch_kv kv;
                    batch_headers_init(&hr, rec.headers, rec.headers_len, rec.header_nulls);
                    assert_true(batch_headers_next(&hr, &kv));
                    assert_int_equal(kv.value_len, 1);
                    assert_memory_equal(kv.value, "x", 1);
                    if (f->kafka) {
                        /* The null value is still null after a rewrite. */
                        assert_true(it.h.flags & BATCH_FLAG_NULL_HEADERS);
                        assert_true(batch_headers_next(&hr, &kv));
                        assert_int_equal(kv.name_len, 1);
                        assert_null(kv.value);
                    }
                    assert_false(batch_headers_next(&hr, &kv));
                }
                seen[rec.offset] = true;
            }
            batch_iter_close(&it);
            done += blen;
        }
        free(data);
        off = next;
    }
}

/* Which records must survive a compaction of [0, upto). */
static void expected(const struct fixture *f, uint64_t upto, const struct log_compact_params *p,
                     bool *keep)
{
    uint64_t latest[N_KEYS];
    unsigned count[N_KEYS];
    memset(count, 0, sizeof count);
    for (size_t i = 0; i < f->n_w && f->w[i].offset < upto; i++) {
        if (f->w[i].key >= 0) {
            latest[f->w[i].key] = f->w[i].offset;
            count[f->w[i].key]++;
        }
    }
    for (size_t i = 0; i < f->n_w; i++) {
        const struct wrec *wr = &f->w[i];
        keep[i] = true;
        if (wr->offset >= upto || wr->key < 0) {
            continue;
        }
        if (latest[wr->key] != wr->offset) {
            keep[i] = false;
        } else if (wr->tomb && count[wr->key] == 1 && p->delete_retention_ms >= 0 &&
                   wr->ts <= p->now_ms - p->delete_retention_ms) {
            keep[i] = false;
        }
    }
}

static struct log_compact_params params(int64_t delete_retention_ms)
{
    struct log_compact_params p;
    memset(&p, 0, sizeof p);
    p.upto = UINT64_MAX;
    p.now_ms = TS0 + N_BATCHES * 10;
    p.min_lag_ms = 0;
    p.delete_retention_ms = delete_retention_ms;
    p.map_bytes = 1u << 20;
    return p;
}

static void compact(struct fixture *f, const struct log_compact_params *p,
                    struct log_compact_stats *st)
{
    struct log_compaction *c = NULL;
    assert_int_equal(log_compact_prepare(f->l, p, &c, f->errmsg), 0);
    assert_non_null(c);
    if (log_compact_run(c, f->errmsg) != 0) {
        fail_msg("log_compact_run: %s", f->errmsg);
    }
    if (log_compact_commit(f->l, c, st, f->errmsg) != 0) {
        fail_msg("log_compact_commit: %s", f->errmsg);
    }
    log_compact_free(c);
}

static void check_model(struct fixture *f, uint64_t upto, const struct log_compact_params *p)
{
    bool *seen = calloc(f->n_w, sizeof *seen), *keep = calloc(f->n_w, sizeof *keep);
    expected(f, upto, p, keep);
    read_all(f, seen);
    for (size_t i = 0; i < f->n_w; i++) {
        if (seen[i] != keep[i]) {
            fail_msg("offset %zu (key %d%s): %s but should %s", i, f->w[i].key,
                     f->w[i].tomb ? ", tombstone" : "", seen[i] ? "present" : "missing",
                     keep[i] ? "survive" : "be removed");
        }
    }
    free(seen);
    free(keep);
}

static void verify_dir(struct fixture *f)
{
    assert_int_equal(log_verify_dir(f->dir, NULL, NULL), 0);
}

static void run_model(void **state, bool compress, int64_t delete_retention_ms)
{
    struct fixture *f = *state;
    struct log_compact_stats st;
    struct log_compact_params p = params(delete_retention_ms);
    struct log_compaction *c = NULL;
    open_log(f);
    fill(f, 7, compress);
    assert_true(log_segment_count(f->l) > 10);
    compact(f, &p, &st);
    assert_true(st.segments > 5);
    assert_true(st.rewritten > 0);
    assert_true(st.records_out < st.records_in);
    assert_true(st.bytes_out < st.bytes_in);
    /* Everything below the active segment was compacted. */
    check_model(f, st.upto, &p);
    verify_dir(f);
    /* Nothing new sealed: nothing to do. */
    assert_int_equal(log_compact_prepare(f->l, &p, &c, f->errmsg), 0);
    assert_null(c);
    /* The same after reopening (indexes of the new files are used). */
    reopen_log(f);
    check_model(f, st.upto, &p);
    /* A second pass over the compacted log removes what the first left
     * (tombstones alone by now) and nothing else. */
    compact(f, &p, &st);
    verify_dir(f);
    {
        /* After the first pass every surviving tombstone is alone, so the
         * second removes the expired ones too, and nothing else. */
        bool *seen = calloc(f->n_w, sizeof *seen);
        bool *keep = calloc(f->n_w, sizeof *keep);
        read_all(f, seen);
        expected(f, st.upto, &p, keep);
        for (size_t i = 0; i < f->n_w; i++) {
            const struct wrec *wr = &f->w[i];
            bool expired = wr->tomb && wr->offset < st.upto && delete_retention_ms >= 0 &&
                           wr->ts <= p.now_ms - delete_retention_ms;
            assert_int_equal(seen[i], keep[i] && !expired);
        }
        free(seen);
        free(keep);
    }
}

static void test_model_plain(void **state)
{
    run_model(state, false, -1);
}

/* Batches with create times and record-counting sequences (the Kafka front
 * door's) keep both when compaction rewrites them. Failed on the old code:
 * the rewritten batch lost BATCH_FLAG_RECORD_SEQ. */
static void test_model_kafka_batches(void **state)
{
    struct fixture *f = *state;
    f->kafka = true;
    run_model(state, true, -1);
}

static void test_model_lz4_tombstones_expire(void **state)
{
    run_model(state, true, 1000);
}

/* Interrupt the swap at every rename/fsync: the reopened log must hold,
 * per segment, the old or the new file, so every key's latest record is
 * the one written, and nothing outside the written records appears. */
static void test_swap_interrupted_everywhere(void **state)
{
    struct fixture *f = *state;
    struct log_compact_params p = params(1000);
    bool committed = false;
    for (unsigned after = 0; after < 200 && !committed; after++) {
        struct log_compaction *c = NULL;
        struct log_compact_stats st;
        bool *seen;
        int rv;
        log_close(f->l);
        f->l = NULL;
        tmpdir_remove(f->dir);
        free(f->dir);
        free(f->w);
        f->w = NULL;
        f->n_w = 0;
        f->dir = tmpdir_make();
        open_log(f);
        fill(f, 11, after % 2 == 0);
        assert_int_equal(log_compact_prepare(f->l, &p, &c, f->errmsg), 0);
        assert_int_equal(log_compact_run(c, f->errmsg), 0);
        fs_fault_inject(FS_OP_RENAME | FS_OP_FSYNC, after, EIO);
        rv = log_compact_commit(f->l, c, &st, f->errmsg);
        fs_fault_reset();
        committed = rv == 0;
        /* "Crash": the job's leftovers stay on disk for the open to clean. */
        log_close(f->l);
        f->l = NULL;
        open_log(f);
        seen = calloc(f->n_w, sizeof *seen);
        read_all(f, seen);
        {
            /* Each key's latest written record is still there. */
            int64_t latest[N_KEYS];
            for (int k = 0; k < N_KEYS; k++) {
                latest[k] = -1;
            }
            for (size_t i = 0; i < f->n_w; i++) {
                if (f->w[i].key >= 0) {
                    latest[f->w[i].key] = (int64_t)i;
                }
            }
            for (int k = 0; k < N_KEYS; k++) {
                if (latest[k] >= 0 && !f->w[latest[k]].tomb) {
                    assert_true(seen[latest[k]]);
                }
            }
            /* No older value shows up as the latest of its key. */
            int64_t last_seen[N_KEYS];
            for (int k = 0; k < N_KEYS; k++) {
                last_seen[k] = -1;
            }
            for (size_t i = 0; i < f->n_w; i++) {
                if (seen[i] && f->w[i].key >= 0) {
                    last_seen[f->w[i].key] = (int64_t)i;
                }
            }
            for (int k = 0; k < N_KEYS; k++) {
                assert_true(last_seen[k] == latest[k] ||
                            (last_seen[k] == -1 && f->w[latest[k]].tomb));
            }
        }
        if (committed) {
            check_model(f, st.upto, &p);
        }
        free(seen);
        verify_dir(f);
        log_compact_free(c);
    }
    assert_true(committed);
}

/* A map that cannot hold one segment's keys: the job fails cleanly; a map
 * that holds some segments: the plan is cut there. */
static void test_small_map(void **state)
{
    struct fixture *f = *state;
    struct log_compact_params p = params(-1);
    struct log_compaction *c = NULL;
    struct log_compact_stats st;
    open_log(f);
    fill(f, 3, false);
    p.map_bytes = 1024 * 32; /* 1024 slots: 768 keys at most */
    assert_int_equal(log_compact_prepare(f->l, &p, &c, f->errmsg), 0);
    assert_int_equal(log_compact_run(c, f->errmsg), 0); /* 150 keys fit */
    assert_int_equal(log_compact_commit(f->l, c, &st, f->errmsg), 0);
    log_compact_free(c);
    check_model(f, st.upto, &p);
    p.map_bytes = 16;
    assert_int_equal(log_compact_prepare(f->l, &p, &c, f->errmsg), TALLY_INVAL);
    assert_null(c);
}

/* Compaction rounds (prepare, run, commit) until there is nothing left
 * to do; how many it took. *upto: where the last one's range ended. */
static unsigned compact_rounds(struct fixture *f, const struct log_compact_params *p,
                               unsigned max_rounds, uint64_t *upto)
{
    unsigned rounds = 0;
    for (;;) {
        struct log_compaction *c = NULL;
        struct log_compact_stats st;
        assert_int_equal(log_compact_prepare(f->l, p, &c, f->errmsg), 0);
        if (c == NULL) {
            return rounds;
        }
        if (++rounds > max_rounds) {
            fail_msg("still compacting after %u rounds", max_rounds);
        }
        if (log_compact_run(c, f->errmsg) != 0) {
            fail_msg("round %u: log_compact_run: %s", rounds, f->errmsg);
        }
        if (log_compact_commit(f->l, c, &st, f->errmsg) != 0) {
            fail_msg("round %u: log_compact_commit: %s", rounds, f->errmsg);
        }
        log_compact_free(c);
        *upto = st.upto;
    }
}

/* What check_fully_compacted expects of the latest record of a key when
 * it is a tombstone. */
enum tombs { TOMBS_KEPT, TOMBS_GONE, TOMBS_EITHER };

/* The log holds exactly, below @upto, the latest record of every key
 * (tombstones as @tombs says), every record without a key, and
 * everything at or above @upto. */
static void check_fully_compacted(struct fixture *f, unsigned n_keys, uint64_t upto,
                                  enum tombs tombs)
{
    uint64_t *latest = calloc(n_keys, sizeof *latest);
    bool *seen = calloc(f->n_w, sizeof *seen);
    for (size_t i = 0; i < f->n_w && f->w[i].offset < upto; i++) {
        if (f->w[i].key >= 0) {
            latest[f->w[i].key] = f->w[i].offset;
        }
    }
    read_all(f, seen);
    for (size_t i = 0; i < f->n_w; i++) {
        const struct wrec *wr = &f->w[i];
        bool keep = wr->offset >= upto || wr->key < 0 ||
                    (latest[wr->key] == wr->offset && !(wr->tomb && tombs == TOMBS_GONE));
        if (seen[i] != keep && !(wr->tomb && keep && tombs == TOMBS_EITHER)) {
            fail_msg("offset %zu (key %d%s): %s but should %s", i, wr->key,
                     wr->tomb ? ", tombstone" : "", seen[i] ? "present" : "missing",
                     keep ? "be there" : "be gone");
        }
    }
    free(latest);
    free(seen);
}

/* More keys than the key map holds (issue 20): each job maps the keys of
 * the segments written since the last one, as many as fit, and compacts
 * every segment below where it stopped against them; the next job goes on
 * from there. After as many jobs as it takes the log holds the latest
 * record of each key and nothing older (tombstones kept), across jobs
 * that each saw part of the keys. With expired tombstones, and a reopened
 * log (its jobs start again from the first segment), the tombstones go
 * too. Before, every job mapped from the first segment, stopped where
 * the map filled, at the same place each time, and never compacted the
 * rest. */
static void run_more_keys_than_the_map(void **state, bool expire_at_once)
{
    struct fixture *f = *state;
    struct log_compact_params p = params(expire_at_once ? 0 : -1);
    const unsigned n_keys = 3000, n_batches = 2400;
    uint64_t upto = 0, next;
    unsigned rounds, n_segs;
    open_log(f);
    fill_n(f, 11, false, n_keys, n_batches);
    next = log_next_offset(f->l);
    n_segs = log_segment_count(f->l);
    assert_true(n_segs > 40);
    p.now_ms = TS0 + (int64_t)n_batches * 10;
    p.map_bytes = 1024 * 32; /* the smallest map: 1024 slots, 768 keys */
    rounds = compact_rounds(f, &p, 100, &upto);
    /* The map holds a quarter of the keys at most: it took several jobs. */
    if (rounds < 4) {
        fail_msg("%u rounds: the map should have filled", rounds);
    }
    /* Every sealed segment was compacted (only the active one is left). */
    assert_true(upto > next - 200 && upto <= next);
    /* Expired tombstones go as soon as no earlier record of their key is
     * left; the ones whose earlier records went in the same job stay. */
    check_fully_compacted(f, n_keys, upto, expire_at_once ? TOMBS_EITHER : TOMBS_KEPT);
    verify_dir(f);
    assert_true(log_segment_count(f->l) < n_segs);
    /* Reopened, the jobs start from the first segment again, and this time
     * every tombstone has expired and is alone: they go, and nothing else. */
    reopen_log(f);
    p.delete_retention_ms = 0;
    rounds = compact_rounds(f, &p, 100, &upto);
    assert_true(rounds >= 1);
    check_fully_compacted(f, n_keys, upto, TOMBS_GONE);
    verify_dir(f);
    assert_int_equal(log_next_offset(f->l), next);
}

static void test_more_keys_than_the_map(void **state)
{
    run_more_keys_than_the_map(state, false);
}

static void test_more_keys_than_the_map_expiring(void **state)
{
    run_more_keys_than_the_map(state, true);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* compaction_io_rate: a job paced to R bytes per second takes at least
 * (bytes it read and wrote) / R, and reads every segment twice (the key
 * map, then the copies), so at least 2 x its input / R: here 1.5 s or
 * more for a job that takes milliseconds unpaced (a few fsyncs of small
 * files), a bound that cannot be met without the pacing. The result is
 * the unpaced one. */
static void test_io_rate_paces_the_job(void **state)
{
    struct fixture *f = *state;
    struct log_compact_params p = params(-1);
    struct log_compaction *c = NULL;
    struct log_compact_stats st;
    double t0, t1, least;
    open_log(f);
    fill(f, 7, false);
    assert_int_equal(log_compact_prepare(f->l, &p, &c, f->errmsg), 0);
    assert_non_null(c);
    /* 2 x the log's size in 1.5 s: a slower pace than that cannot be met */
    p.io_rate = log_size_bytes(f->l) * 2 * 2 / 3;
    log_compact_free(c);
    assert_int_equal(log_compact_prepare(f->l, &p, &c, f->errmsg), 0);
    t0 = now_s();
    if (log_compact_run(c, f->errmsg) != 0) {
        fail_msg("log_compact_run: %s", f->errmsg);
    }
    t1 = now_s();
    assert_int_equal(log_compact_commit(f->l, c, &st, f->errmsg), 0);
    log_compact_free(c);
    /* Both passes read all of every segment; the copies were written. */
    assert_true(st.bytes_io > 2 * (st.bytes_in - st.segments * 64u)); /* (headers: not paced) */
    least = (double)st.bytes_io / (double)p.io_rate;
    assert_true(least > 1.2);
    /* The pace sleeps only when more than 1 ms ahead. */
    if (t1 - t0 < least - 0.001) {
        fail_msg("%llu bytes paced to %llu bytes/s took %.3f s, less than %.3f s",
                 (unsigned long long)st.bytes_io, (unsigned long long)p.io_rate, t1 - t0, least);
    }
    assert_true(st.paced_ms > 0);
    check_model(f, st.upto, &p);
    verify_dir(f);
}

/* Segments removed by retention while the job ran are not swapped in, and
 * the job's files are removed. */
static void test_segment_gone_meanwhile(void **state)
{
    struct fixture *f = *state;
    struct log_compact_params p = params(-1);
    struct log_compaction *c = NULL;
    struct log_compact_stats st;
    unsigned deleted = 0;
    open_log(f);
    fill(f, 5, false);
    assert_int_equal(log_compact_prepare(f->l, &p, &c, f->errmsg), 0);
    assert_int_equal(log_compact_run(c, f->errmsg), 0);
    log_close(f->l);
    f->l = NULL;
    f->cfg.retention_bytes = 20000;
    open_log(f);
    assert_int_equal(log_retain(f->l, TS0, UINT64_MAX, &deleted, NULL, f->errmsg), 0);
    assert_true(deleted > 0);
    assert_int_equal(log_compact_commit(f->l, c, &st, f->errmsg), 0);
    log_compact_free(c);
    verify_dir(f);
    reopen_log(f);
    verify_dir(f);
    {
        bool *seen = calloc(f->n_w, sizeof *seen);
        read_all(f, seen);
        free(seen);
    }
}

/* A segment holding a bad batch is not compacted: the job names it and
 * leaves no file behind. */
static void test_corrupt_segment_stops_job(void **state)
{
    struct fixture *f = *state;
    struct log_compact_params p = params(-1);
    struct log_compaction *c = NULL;
    char path[4096];
    FILE *fp;
    open_log(f);
    fill(f, 9, false);
    snprintf(path, sizeof path, "%s/%020d.seg", f->dir, 0);
    fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, 32 + 88 + 3, SEEK_SET); /* inside the first batch's payload */
    fputc(0xff, fp);
    fclose(fp);
    assert_int_equal(log_compact_prepare(f->l, &p, &c, f->errmsg), 0);
    assert_int_equal(log_compact_run(c, f->errmsg), TALLY_CORRUPT);
    assert_non_null(strstr(f->errmsg, "00000000000000000000.seg"));
    log_compact_free(c);
    snprintf(path, sizeof path, "%s/%020d.seg.cmp", f->dir, 0);
    assert_int_equal(access(path, F_OK), -1);
}

/* Write @n batches of 4 keyed records each, keys key-0..key-9 in turn,
 * values "r<round>-<offset>", to the open log. */
static void fill_keys(struct fixture *f, unsigned round, unsigned n)
{
    for (unsigned b = 0; b < n; b++) {
        struct batch_builder bb;
        struct buf out;
        uint64_t base = log_next_offset(f->l);
        int64_t ts = TS0 + (int64_t)(round * n + b);
        batch_builder_init(&bb, 0, 0);
        buf_init(&out);
        for (unsigned i = 0; i < 4; i++) {
            char key[16], val[48];
            int klen = snprintf(key, sizeof key, "key-%u", (unsigned)((base + i) % 10));
            int vlen = snprintf(val, sizeof val, "r%u-%llu-padding-padding-padding", round,
                                (unsigned long long)(base + i));
            assert_int_equal(batch_builder_add_at(&bb, i, 0, key, (size_t)klen, val,
                                                  (size_t)vlen, NULL, 0),
                             0);
        }
        assert_int_equal(batch_builder_finish(&bb, false, &out), 0);
        batch_stamp(out.data, base, ts, 1 + round * n + b);
        assert_int_equal(log_append(f->l, out.data, out.len, ts, f->errmsg), 0);
        batch_builder_free(&bb);
        buf_free(&out);
    }
    assert_int_equal(log_sync(f->l, f->errmsg), 0);
}

/* Records of the log (offset order) as "offset key value" lines. */
static size_t count_records(struct fixture *f, uint64_t *last_of_key)
{
    uint64_t off = log_start_offset(f->l);
    size_t n = 0;
    for (int k = 0; k < 10; k++) {
        last_of_key[k] = UINT64_MAX;
    }
    while (off < log_next_offset(f->l)) {
        void *data;
        size_t len, pos = 0;
        uint64_t next;
        assert_int_equal(log_read_copy(f->l, off, 1 << 20, &data, &len, &next, f->errmsg), 0);
        while (pos < len) {
            struct batch_header h;
            struct batch_iter it;
            struct batch_record rec;
            assert_int_equal(batch_decode_header((uint8_t *)data + pos, len - pos, &h, f->errmsg),
                             0);
            assert_int_equal(batch_iter_init(&it, (uint8_t *)data + pos, h.batch_len, f->errmsg),
                             0);
            while (batch_iter_next(&it, &rec, f->errmsg) == 0) {
                int k = atoi((const char *)rec.key + 4);
                last_of_key[k] = rec.offset;
                n++;
            }
            batch_iter_close(&it);
            pos += h.batch_len;
        }
        free(data);
        assert_true(next > off);
        off = next;
    }
    return n;
}

/* The keys of a compact topic rewritten round after round (issue 30):
 * compaction empties whole segments every round. They are merged away,
 * so the segment count (and the files and descriptors that go with it)
 * stays bounded instead of growing with every round; every key's latest
 * record survives, offsets stay exact, and the log reopens and verifies,
 * also after a crash between a merge's rename and its removals (the
 * fault test above interrupts every rename and fsync). */
static void test_merge_keeps_segments_bounded(void **state)
{
    struct fixture *f = *state;
    struct log_compact_params p = params(-1);
    struct log_compact_stats st;
    uint64_t last[10];
    unsigned merged = 0;
    open_log(f);
    for (unsigned round = 0; round < 12; round++) {
        uint64_t end;
        fill_keys(f, round, 200); /* 800 records, about 12 segments of 4 KiB */
        end = log_next_offset(f->l);
        assert_true(log_segment_count(f->l) > 8);
        compact(f, &p, &st);
        merged += st.merged;
        /* Everything sealed is compacted: 10 live keys fit one segment,
         * plus the active one and at most the segment before it. */
        if (log_segment_count(f->l) > 4) {
            fail_msg("round %u: %u segments after compaction (%u merged away)", round,
                     log_segment_count(f->l), st.merged);
        }
        (void)count_records(f, last);
        for (int k = 0; k < 10; k++) {
            /* The last record of each key is among the last 10 offsets. */
            assert_true(last[k] != UINT64_MAX && last[k] >= end - 10 && last[k] < end);
        }
        verify_dir(f);
        reopen_log(f);
        assert_int_equal(log_next_offset(f->l), end);
    }
    assert_true(merged > 100);
}

/* Copy file @from to @to (whole). */
static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[65536];
    size_t n;
    assert_non_null(in);
    assert_non_null(out);
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        assert_int_equal(fwrite(buf, 1, n, out), n);
    }
    fclose(in);
    fclose(out);
}

/* A crash after a merged copy was renamed into place but before the
 * segments it holds were removed: the log opens, removes them (they lie
 * wholly inside the merged one), and reads the same records as after a
 * clean commit. */
static void test_merge_crash_before_removal(void **state)
{
    struct fixture *f = *state;
    struct log_compact_params p = params(-1);
    struct log_compaction *c = NULL;
    struct log_compact_stats st;
    uint64_t last[10], last2[10];
    char saved[64][4096];
    unsigned n_saved = 0, before, after;
    size_t n_rec;
    open_log(f);
    fill_keys(f, 0, 200);
    before = log_segment_count(f->l);
    /* Keep a copy of every sealed segment file as it was. */
    for (uint64_t off = 0; n_saved < 64 && off < log_next_offset(f->l); off++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%020llu.seg", f->dir, (unsigned long long)off);
        if (access(path, F_OK) == 0) {
            snprintf(saved[n_saved], sizeof saved[n_saved], "%s.saved", path);
            copy_file(path, saved[n_saved]);
            n_saved++;
        }
    }
    assert_int_equal(log_compact_prepare(f->l, &p, &c, f->errmsg), 0);
    assert_int_equal(log_compact_run(c, f->errmsg), 0);
    assert_int_equal(log_compact_commit(f->l, c, &st, f->errmsg), 0);
    log_compact_free(c);
    assert_true(st.merged > 2);
    after = log_segment_count(f->l);
    assert_true(after + st.merged == before);
    n_rec = count_records(f, last);
    log_close(f->l);
    f->l = NULL;
    /* "Crash" before the removals: the merged-away files come back. */
    for (unsigned i = 0; i < n_saved; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%.*s", (int)(strlen(saved[i]) - 6), saved[i]);
        if (access(path, F_OK) != 0) {
            copy_file(saved[i], path);
        }
        unlink(saved[i]);
    }
    open_log(f);
    assert_int_equal(log_segment_count(f->l), after);
    assert_int_equal(count_records(f, last2), n_rec);
    assert_memory_equal(last, last2, sizeof last);
    verify_dir(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_model_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model_lz4_tombstones_expire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model_kafka_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swap_interrupted_everywhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_more_keys_than_the_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_more_keys_than_the_map_expiring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_rate_paces_the_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_gone_meanwhile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_segment_stops_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_keeps_segments_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_crash_before_removal, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
