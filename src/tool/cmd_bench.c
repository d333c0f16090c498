/* tally bench produce: measure produce throughput and latency with several
 * synchronous producers, each a thread with its own client. */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tool/util.h"

static const char bench_help[] =
    "Usage: tally bench produce TOPIC --count N --size BYTES [--producers P]\n"
    "                           [--batch B]\n"
    "\n"
    "Write N records of BYTES random bytes (no key) to TOPIC, which must exist.\n"
    "P producer threads (default 1), each with its own connection, share the N\n"
    "records; each sends batches of B records (default 1) per request and waits\n"
    "for the answer before sending the next.\n"
    "\n"
    "Progress goes to stderr once a second. The last line on stdout is\n"
    "  msgs/s=... MB/s=... p50_ms=... p99_ms=... p999_ms=...\n"
    "where MB is 10^6 bytes of record values and a record's latency is that of\n"
    "the request that carried it (from send to acknowledgement).\n"
    "\n" TOOL_COMMON_HELP;

enum {
    BENCH_OPT_COUNT = TOOL_OPT__FIRST_FREE,
    BENCH_OPT_SIZE,
    BENCH_OPT_PRODUCERS,
    BENCH_OPT_BATCH,
};

/* Random bytes each record's value is cut from, at a random start, so that
 * values differ and lz4 cannot shrink them. */
#define BENCH_POOL_SLACK 65536u
#define BENCH_MAX_PRODUCERS 1024u

/* One request's outcome: its latency counts once per record it carried. */
struct bench_sample {
    uint32_t latency_us;
    uint32_t records;
};

struct bench_producer {
    pthread_t thread;
    const char *topic;
    uint64_t count;  /* records this producer sends */
    uint64_t size;   /* bytes per value */
    uint64_t batch;  /* records per request */
    unsigned seed;
    struct bench_sample *samples; /* one per request */
    size_t n_samples;
    int rc;          /* 0 or the TALLY_* code that stopped it */
    char errmsg[256];
};

static atomic_uint_fast64_t bench_sent;  /* records acknowledged, all threads */
static atomic_int bench_running;         /* threads still working */
static atomic_int bench_failed;          /* set by the first failing thread */

static uint64_t bench_rand(uint64_t *s)
{
    /* xorshift64*: plenty for filling buffers, and no shared state. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static void *bench_producer_run(void *arg)
{
    struct bench_producer *p = arg;
    struct tally_record_in *recs = NULL;
    tally_client *client = NULL;
    uint64_t rnd = 0x9e3779b97f4a7c15ull ^ ((uint64_t)p->seed << 17) ^ (uint64_t)tool_now_us();
    unsigned char *pool = NULL;
    size_t pool_len = p->size + BENCH_POOL_SLACK;
    uint64_t left = p->count;
    size_t i;
    int rc;

    pool = malloc(pool_len);
    recs = calloc(p->batch, sizeof *recs);
    p->samples = calloc((p->count + p->batch - 1) / p->batch + 1, sizeof *p->samples);
    if (pool == NULL || recs == NULL || p->samples == NULL) {
        p->rc = TALLY_NOMEM;
        snprintf(p->errmsg, sizeof p->errmsg, "out of memory");
        goto out;
    }
    for (i = 0; i < pool_len; i++) {
        pool[i] = (unsigned char)bench_rand(&rnd);
    }
    rc = tally_client_create(tool_g.brokers, &client);
    if (rc != 0) {
        p->rc = rc;
        snprintf(p->errmsg, sizeof p->errmsg, "%s", tally_strerror(rc));
        goto out;
    }
    if (tool_g.timeout_ms > 0) {
        tally_client_set_timeout(client, tool_g.timeout_ms);
    }
    while (left > 0 && !atomic_load(&bench_failed)) {
        struct tally_produce_result res;
        size_t n = left < p->batch ? (size_t)left : (size_t)p->batch;
        int64_t t0;
        int64_t dt;

        for (i = 0; i < n; i++) {
            recs[i].key = NULL;
            recs[i].key_len = 0;
            recs[i].value = pool + bench_rand(&rnd) % BENCH_POOL_SLACK;
            recs[i].value_len = p->size;
        }
        t0 = tool_now_us();
        rc = tally_produce(client, p->topic, recs, n, &res);
        dt = tool_now_us() - t0;
        if (rc != 0) {
            p->rc = rc;
            snprintf(p->errmsg, sizeof p->errmsg, "%s", tally_errmsg(client));
            atomic_store(&bench_failed, 1);
            break;
        }
        p->samples[p->n_samples].latency_us = dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
        p->samples[p->n_samples].records = (uint32_t)n;
        p->n_samples++;
        left -= n;
        atomic_fetch_add(&bench_sent, n);
    }
out:
    if (client != NULL) {
        tally_client_destroy(client);
    }
    free(recs);
    free(pool);
    atomic_fetch_sub(&bench_running, 1);
    return NULL;
}

static int bench_by_latency(const void *a, const void *b)
{
    uint32_t x = ((const struct bench_sample *)a)->latency_us;
    uint32_t y = ((const struct bench_sample *)b)->latency_us;

    return x < y ? -1 : x > y;
}

/* Latency in ms below which fraction @q of the records fall. */
static double bench_quantile(const struct bench_sample *s, size_t n, uint64_t total, double q)
{
    uint64_t want = (uint64_t)(q * (double)total + 0.999999);
    uint64_t seen = 0;
    size_t i;

    if (n == 0) {
        return 0.0;
    }
    for (i = 0; i < n; i++) {
        seen += s[i].records;
        if (seen >= want) {
            return s[i].latency_us / 1000.0;
        }
    }
    return s[n - 1].latency_us / 1000.0;
}

static void bench_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static int bench_produce(int argc, char **argv)
{
    static const char cmd[] = "bench produce";
    static const struct option longopts[] = {
        TOOL_COMMON_LONGOPTS,
        {"count", required_argument, NULL, BENCH_OPT_COUNT},
        {"size", required_argument, NULL, BENCH_OPT_SIZE},
        {"producers", required_argument, NULL, BENCH_OPT_PRODUCERS},
        {"batch", required_argument, NULL, BENCH_OPT_BATCH},
        {NULL, 0, NULL, 0},
    };
    struct bench_producer *prods = NULL;
    struct bench_sample *all = NULL;
    const char *topic;
    uint64_t count = 0;
    uint64_t size = 0;
    uint64_t producers = 1;
    uint64_t batch = 1;
    uint64_t last_sent = 0;
    uint64_t total = 0;
    size_t n_all = 0;
    int64_t start;
    int64_t last_tick;
    double secs;
    uint64_t i;
    int have_count = 0;
    int have_size = 0;
    int c;
    int rc;

    tool_getopt_reset();
    while ((c = getopt_long(argc, argv, TOOL_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        uint64_t v;

        switch (c) {
        case 'h':
            fputs(bench_help, stdout);
            return TOOL_EXIT_OK;
        case '?':
            return tool_bad_option(cmd, argv);
        case BENCH_OPT_COUNT:
        case BENCH_OPT_SIZE:
        case BENCH_OPT_PRODUCERS:
        case BENCH_OPT_BATCH:
            if (!tool_parse_u64(optarg, &v) || (v == 0 && c != BENCH_OPT_SIZE)) {
                return tool_usage_error(cmd, "--%s needs a %snumber, not '%s'",
                                        c == BENCH_OPT_COUNT       ? "count"
                                        : c == BENCH_OPT_SIZE      ? "size"
                                        : c == BENCH_OPT_PRODUCERS ? "producers"
                                                                   : "batch",
                                        c == BENCH_OPT_SIZE ? "" : "positive ", optarg);
            }
            if (c == BENCH_OPT_COUNT) {
                count = v;
                have_count = 1;
            } else if (c == BENCH_OPT_SIZE) {
                size = v;
                have_size = 1;
            } else if (c == BENCH_OPT_PRODUCERS) {
                producers = v;
            } else {
                batch = v;
            }
            break;
        default:
            rc = tool_common_option(cmd, c, optarg);
            if (rc != TOOL_EXIT_OK) {
                return rc < 0 ? TOOL_EXIT_USAGE : rc;
            }
        }
    }
    if (optind >= argc) {
        return tool_usage_error(cmd, "missing TOPIC");
    }
    topic = argv[optind++];
    if (optind < argc) {
        return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    }
    if (!have_count || !have_size) {
        return tool_usage_error(cmd, "--count and --size are required");
    }
    if (size > (16u << 20) || batch > 1000000 || batch * size > (64u << 20)) {
        return tool_usage_error(cmd, "--size/--batch too large for one request");
    }
    if (producers > BENCH_MAX_PRODUCERS) {
        return tool_usage_error(cmd, "--producers is at most %u", BENCH_MAX_PRODUCERS);
    }
    if (producers > count) {
        producers = count;
    }
    if (tool_g.brokers == NULL) {
        tool_g.brokers = getenv("TALLY_BROKERS");
        if (tool_g.brokers == NULL || tool_g.brokers[0] == '\0') {
            tool_g.brokers = TOOL_DEFAULT_BROKERS;
        }
    }
    {
        /* Check the broker list once here, for a usage error rather than
         * one per thread. */
        tally_client *probe;

        rc = tool_connect(cmd, &probe);
        if (rc != TOOL_EXIT_OK) {
            return rc;
        }
        tally_client_destroy(probe);
    }

    prods = calloc(producers, sizeof *prods);
    if (prods == NULL) {
        return tool_error(cmd, "out of memory");
    }
    atomic_store(&bench_running, (int)producers);
    start = tool_now_us();
    for (i = 0; i < producers; i++) {
        prods[i].topic = topic;
        prods[i].count = count / producers + (i < count % producers ? 1 : 0);
        prods[i].size = size;
        prods[i].batch = batch;
        prods[i].seed = (unsigned)i;
        if (pthread_create(&prods[i].thread, NULL, bench_producer_run, &prods[i]) != 0) {
            /* Stop the ones started; they notice bench_failed. */
            atomic_store(&bench_failed, 1);
            atomic_fetch_sub(&bench_running, (int)(producers - i));
            producers = i;
            rc = tool_error(cmd, "cannot start a producer thread");
            goto join;
        }
    }
    last_tick = start;
    while (atomic_load(&bench_running) > 0) {
        int64_t now;

        bench_sleep_ms(50);
        now = tool_now_us();
        if (now - last_tick >= 1000000) {
            uint64_t sent = atomic_load(&bench_sent);
            fprintf(stderr, "%6.1fs  %" PRIu64 "/%" PRIu64 " records  %.0f msgs/s\n",
                    (now - start) / 1e6, sent, count,
                    (double)(sent - last_sent) * 1e6 / (double)(now - last_tick));
            last_sent = sent;
            last_tick = now;
        }
    }
    rc = TOOL_EXIT_OK;
join:
    for (i = 0; i < producers; i++) {
        pthread_join(prods[i].thread, NULL);
    }
    secs = (double)(tool_now_us() - start) / 1e6;
    if (rc != TOOL_EXIT_OK) {
        goto out;
    }
    for (i = 0; i < producers; i++) {
        if (prods[i].rc != 0) {
            rc = tool_error(cmd, "producer %" PRIu64 ": %s (after %" PRIu64 " records in all)", i,
                            prods[i].errmsg, (uint64_t)atomic_load(&bench_sent));
            goto out;
        }
        n_all += prods[i].n_samples;
    }
    all = malloc((n_all > 0 ? n_all : 1) * sizeof *all);
    if (all == NULL) {
        rc = tool_error(cmd, "out of memory");
        goto out;
    }
    n_all = 0;
    for (i = 0; i < producers; i++) {
        memcpy(all + n_all, prods[i].samples, prods[i].n_samples * sizeof *all);
        n_all += prods[i].n_samples;
    }
    qsort(all, n_all, sizeof *all, bench_by_latency);
    total = atomic_load(&bench_sent);
    fprintf(stderr,
            "%" PRIu64 " records of %" PRIu64 " bytes in %.3fs: %" PRIu64 " producers, %" PRIu64
            " records per request\n",
            total, size, secs, producers, batch);
    printf("msgs/s=%.0f MB/s=%.3f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f\n",
           secs > 0 ? (double)total / secs : 0.0,
           secs > 0 ? (double)total * (double)size / secs / 1e6 : 0.0,
           bench_quantile(all, n_all, total, 0.50), bench_quantile(all, n_all, total, 0.99),
           bench_quantile(all, n_all, total, 0.999));
    rc = tool_check_stdout(cmd);
    rc = rc < 0 ? TOOL_EXIT_OK : rc;
out:
    for (i = 0; i < producers; i++) {
        free(prods[i].samples);
    }
    free(all);
    free(prods);
    return rc;
}

int cmd_bench_main(int argc, char **argv)
{
    if (argc < 2) {
        return tool_usage_error("bench", "missing SUBCOMMAND: produce");
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(bench_help, stdout);
        return TOOL_EXIT_OK;
    }
    if (strcmp(argv[1], "produce") == 0) {
        return bench_produce(argc - 1, argv + 1);
    }
    return tool_usage_error("bench", "unknown subcommand '%s': want produce", argv[1]);
}
