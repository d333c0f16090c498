/* bench-snapshot: how long a Raft snapshot's freeze holds the event loop
 * with many keys, and what the writes applied while its build runs cost
 * (bench/snapshot.sh; not part of make check).
 *
 *   bench-snapshot DIR KEYS [ROUNDS]
 *   bench-snapshot --topics DIR TOPICS [ROUNDS]
 *
 * Opens a store in DIR (which must not exist), creates topic "t" (policy
 * compact) and applies APPEND entries of 1,000 records (keys "key-%010u",
 * 16-byte values) until KEYS distinct keys are written. Then ROUNDS
 * times, alternating:
 *   (a) 200 entries of 1,000 updates to random existing keys, alone;
 *   (b) a freeze (store_snapshot_freeze, what the loop runs), the same 200
 *       entries while the frozen copy is held (as while the build runs on
 *       the thread pool), then the build and the release;
 * and prints per round the freeze's time, the apply time per entry (p50,
 * p99, max) in (a) and (b), and the build's time; then the medians and the
 * process's peak RSS. The first freeze also copies the stream index (its
 * checkpoint is due then); later ones only when the topic grew by a
 * quarter, as on a node.
 *
 * With --topics: TOPICS topics of one 100-record batch each (10 keys),
 * then ROUNDS times: one record appended to every tenth topic, then a
 * snapshot's freeze and a checkpoint's freeze (store_checkpoint_freeze,
 * the retention interval's), each built and released; prints the freeze
 * times (what the loop is held for) and their medians. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "lib/batch.h"
#include "lib/err.h"
#include "lib/logger.h"
#include "log/log.h"
#include "store/command.h"
#include "store/store.h"
#include "bench_util.h"

#define RECORDS 1000
#define UPDATE_ENTRIES 200

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* One APPEND entry of RECORDS records to "t": keys first.. first+RECORDS-1
 * (@sequential) or random ones below @keys. */
static int make_entry(struct buf *e, uint64_t first, uint64_t keys, int sequential)
{
    struct batch_builder b;
    struct buf out;
    char key[32], value[16];
    int rv = 0;
    batch_builder_init(&b, 0, 0);
    buf_init(&out);
    memset(value, 'v', sizeof value);
    for (unsigned j = 0; j < RECORDS && rv == 0; j++) {
        uint64_t k = sequential ? first + j : rng() % keys;
        int n = snprintf(key, sizeof key, "key-%010" PRIu64, k);
        rv = batch_builder_add(&b, key, (size_t)n, value, sizeof value);
    }
    if (rv == 0) {
        rv = batch_builder_finish(&b, false, &out);
    }
    if (rv == 0) {
        batch_stamp(out.data, 0, 1700000000000, 0);
        e->len = 0;
        command_append_begin(e);
        command_append_add(e, "t", out.data, (uint32_t)out.len, COMMAND_NO_EXPECT, NULL, 0);
        command_append_end(e, 1);
    }
    buf_free(&out);
    batch_builder_free(&b);
    return rv;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

/* UPDATE_ENTRIES entries of random updates; their apply times in @ms. */
static int updates(struct store *s, uint64_t *index, uint64_t keys, double *ms, char *errmsg)
{
    struct buf e;
    buf_init(&e);
    for (unsigned i = 0; i < UPDATE_ENTRIES; i++) {
        if (make_entry(&e, 0, keys, 0) != 0) {
            buf_free(&e);
            return TALLY_NOMEM;
        }
        double t0 = bench_now();
        int rv = store_apply(s, ++*index, e.data, e.len, NULL, errmsg);
        ms[i] = (bench_now() - t0) * 1e3;
        if (rv != 0) {
            buf_free(&e);
            return rv;
        }
    }
    buf_free(&e);
    return 0;
}

/* One APPEND entry of @n records with 10 keys to @topic. */
static int small_entry(struct buf *e, const char *topic, unsigned n)
{
    struct batch_builder b;
    struct buf out;
    char key[16];
    int rv = 0;
    batch_builder_init(&b, 0, 0);
    buf_init(&out);
    for (unsigned j = 0; j < n && rv == 0; j++) {
        int len = snprintf(key, sizeof key, "k%u", j % 10);
        rv = batch_builder_add(&b, key, (size_t)len, "value", 5);
    }
    if (rv == 0) {
        rv = batch_builder_finish(&b, false, &out);
    }
    if (rv == 0) {
        batch_stamp(out.data, 0, 1700000000000, 0);
        e->len = 0;
        command_append_begin(e);
        command_append_add(e, topic, out.data, (uint32_t)out.len, COMMAND_NO_EXPECT, NULL, 0);
        command_append_end(e, 1);
    }
    buf_free(&out);
    batch_builder_free(&b);
    return rv;
}

/* One record to every tenth topic, from topic @first on. */
static int append_to_tenth(struct store *s, struct buf *e, uint64_t *index, unsigned topics,
                           unsigned first, char *errmsg)
{
    char name[32];
    for (unsigned i = first; i < topics; i += 10) {
        snprintf(name, sizeof name, "topic-%05u", i);
        if (small_entry(e, name, 1) != 0) {
            err_printf(errmsg, "build a batch for %s: out of memory", name);
            return TALLY_NOMEM;
        }
        int rv = store_apply(s, ++*index, e->data, e->len, NULL, errmsg);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

static int many_topics(const char *dir, unsigned topics, int rounds)
{
    struct rlimit rl;
    /* A log keeps its active segment open, and a freeze duplicates it:
     * as tallyd does, take the hard limit. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    char errmsg[ERR_MSG_SIZE] = "", name[32];
    struct log_config lc;
    struct store *s;
    struct buf e;
    uint64_t index = 1;
    log_config_init(&lc);
    if (store_open(dir, &lc, &s, errmsg) != 0) {
        fprintf(stderr, "bench-snapshot: %s\n", errmsg);
        return 1;
    }
    struct command_topic_config cfg = {TALLY_POLICY_DELETE, -1, -1, 0};
    buf_init(&e);
    double t0 = bench_now();
    for (unsigned i = 0; i < topics; i++) {
        snprintf(name, sizeof name, "topic-%05u", i);
        e.len = 0;
        command_encode_topic_create(&e, name, &cfg);
        if (store_apply(s, ++index, e.data, e.len, NULL, errmsg) != 0 ||
            small_entry(&e, name, 100) != 0 ||
            store_apply(s, ++index, e.data, e.len, NULL, errmsg) != 0) {
            fprintf(stderr, "bench-snapshot: topic %u: %s\n", i, errmsg);
            return 1;
        }
    }
    printf("# %u topics made in %.1f s\n", topics, bench_now() - t0);
    double *snap_ms = calloc((size_t)rounds, sizeof *snap_ms);
    double *ckpt_ms = calloc((size_t)rounds, sizeof *ckpt_ms);
    for (int r = 0; r < rounds; r++) {
        struct store_frozen *f;
        struct buf snap;
        if (append_to_tenth(s, &e, &index, topics, (unsigned)r % 10, errmsg) != 0) {
            fprintf(stderr, "bench-snapshot: append: %s\n", errmsg);
            return 1;
        }
        t0 = bench_now();
        if (store_snapshot_freeze(s, index, &f, errmsg) != 0) {
            fprintf(stderr, "bench-snapshot: freeze: %s\n", errmsg);
            return 1;
        }
        snap_ms[r] = (bench_now() - t0) * 1e3;
        buf_init(&snap);
        double t1 = bench_now();
        int rv = store_snapshot_build(f, &snap, errmsg);
        double build = bench_now() - t1;
        store_snapshot_release(s, f);
        buf_free(&snap);
        if (rv != 0) {
            fprintf(stderr, "bench-snapshot: build: %s\n", errmsg);
            return 1;
        }
        if (append_to_tenth(s, &e, &index, topics, (unsigned)r % 10, errmsg) != 0) {
            fprintf(stderr, "bench-snapshot: append: %s\n", errmsg);
            return 1;
        }
        t0 = bench_now();
        if (store_checkpoint_freeze(s, &f, errmsg) != 0) {
            fprintf(stderr, "bench-snapshot: checkpoint freeze: %s\n", errmsg);
            return 1;
        }
        ckpt_ms[r] = (bench_now() - t0) * 1e3;
        rv = store_checkpoint_build(f, errmsg);
        if (store_checkpoint_release(s, f, rv == 0, NULL, errmsg) != 0 || rv != 0) {
            fprintf(stderr, "bench-snapshot: checkpoint: %s\n", errmsg);
            return 1;
        }
        printf("round %d: snapshot freeze %.2f ms (build %.2f s), checkpoint freeze %.2f ms\n",
               r + 1, snap_ms[r], build, ckpt_ms[r]);
        fflush(stdout);
    }
    double sm = pct(snap_ms, (size_t)rounds, 0.5), cm = pct(ckpt_ms, (size_t)rounds, 0.5);
    printf("snapshot: topics=%u snapshot_freeze_ms_median=%.2f checkpoint_freeze_ms_median=%.2f "
           "peak_rss_MB=%.0f\n", topics, sm, cm, (double)bench_peak_rss_kb() / 1024.0);
    free(snap_ms);
    free(ckpt_ms);
    buf_free(&e);
    store_close(s);
    return 0;
}

int main(int argc, char **argv)
{
    char errmsg[ERR_MSG_SIZE] = "";
    struct log_config lc;
    struct store *s;
    struct buf e;
    uint64_t index = 1, keys;
    logger_set_level(LOGGER_WARN);
    if (argc >= 4 && strcmp(argv[1], "--topics") == 0) {
        int n = atoi(argv[3]);
        int r = argc > 4 ? atoi(argv[4]) : 5;
        if (n < 1 || r < 1) {
            fprintf(stderr, "usage: bench-snapshot --topics DIR TOPICS [ROUNDS]\n");
            return 2;
        }
        return many_topics(argv[2], (unsigned)n, r);
    }
    int rounds = argc > 3 ? atoi(argv[3]) : 5;
    if (argc < 3 || bench_parse_size(argv[2], &keys) != 0 || keys < RECORDS || rounds < 1) {
        fprintf(stderr, "usage: bench-snapshot DIR KEYS [ROUNDS]\n");
        return 2;
    }
    log_config_init(&lc);
    if (store_open(argv[1], &lc, &s, errmsg) != 0) {
        fprintf(stderr, "bench-snapshot: %s\n", errmsg);
        return 1;
    }
    struct command_topic_config cfg = {TALLY_POLICY_COMPACT, -1, -1, 0};
    buf_init(&e);
    command_encode_topic_create(&e, "t", &cfg);
    if (store_apply(s, ++index, e.data, e.len, NULL, errmsg) != 0) {
        fprintf(stderr, "bench-snapshot: create: %s\n", errmsg);
        return 1;
    }
    double t0 = bench_now();
    for (uint64_t k = 0; k + RECORDS <= keys; k += RECORDS) {
        if (make_entry(&e, k, keys, 1) != 0 ||
            store_apply(s, ++index, e.data, e.len, NULL, errmsg) != 0) {
            fprintf(stderr, "bench-snapshot: load: %s\n", errmsg);
            return 1;
        }
    }
    buf_free(&e);
    printf("# %" PRIu64 " keys loaded in %.1f s\n", keys, bench_now() - t0);
    fflush(stdout);
    double *alone = calloc(UPDATE_ENTRIES, sizeof *alone);
    double *held = calloc(UPDATE_ENTRIES, sizeof *held);
    double *freeze = calloc((size_t)rounds, sizeof *freeze);
    double *ratio99 = calloc((size_t)rounds, sizeof *ratio99);
    for (int r = 0; r < rounds; r++) {
        struct store_frozen *f;
        struct buf snap;
        if (updates(s, &index, keys, alone, errmsg) != 0) {
            fprintf(stderr, "bench-snapshot: updates: %s\n", errmsg);
            return 1;
        }
        double a50 = pct(alone, UPDATE_ENTRIES, 0.5), a99 = pct(alone, UPDATE_ENTRIES, 0.99);
        t0 = bench_now();
        if (store_snapshot_freeze(s, index, &f, errmsg) != 0) {
            fprintf(stderr, "bench-snapshot: freeze: %s\n", errmsg);
            return 1;
        }
        freeze[r] = (bench_now() - t0) * 1e3;
        if (updates(s, &index, keys, held, errmsg) != 0) {
            fprintf(stderr, "bench-snapshot: updates: %s\n", errmsg);
            return 1;
        }
        double h50 = pct(held, UPDATE_ENTRIES, 0.5), h99 = pct(held, UPDATE_ENTRIES, 0.99);
        double hmax = held[UPDATE_ENTRIES - 1];
        buf_init(&snap);
        t0 = bench_now();
        if (store_snapshot_build(f, &snap, errmsg) != 0) {
            fprintf(stderr, "bench-snapshot: build: %s\n", errmsg);
            return 1;
        }
        double build = bench_now() - t0;
        store_snapshot_release(s, f);
        ratio99[r] = h99 / a99;
        printf("round %d: freeze %.2f ms; apply per entry of %d updates: alone p50 %.3f p99 %.3f "
               "ms, with the copy held p50 %.3f p99 %.3f max %.3f ms; build %.2f s (%zu bytes)\n",
               r + 1, freeze[r], RECORDS, a50, a99, h50, h99, hmax, build, snap.len);
        fflush(stdout);
        buf_free(&snap);
    }
    double f_first = freeze[0];
    double f_median = pct(freeze, (size_t)rounds, 0.5); /* (sorts) */
    double f_max = freeze[rounds - 1];
    double r_median = pct(ratio99, (size_t)rounds, 0.5);
    printf("snapshot: keys=%" PRIu64 " freeze_ms_first=%.2f freeze_ms_median=%.2f "
           "freeze_ms_max=%.2f p99_ratio_median=%.2f peak_rss_MB=%.0f\n",
           keys, f_first, f_median, f_max, r_median, (double)bench_peak_rss_kb() / 1024.0);
    free(alone);
    free(held);
    free(freeze);
    free(ratio99);
    store_close(s);
    return 0;
}
