/* tally bench produce|consume: measure throughput and latency.
 *
 * produce: P threads, each with its own client and asynchronous producer
 * (tally_producer_*: client-side batching, pipelined requests), keep up to
 * W records unacknowledged and record each record's latency from
 * tally_producer_send to its acknowledgement. With --batch B the old
 * synchronous path is used instead: tally_produce of B records per
 * request, one request in flight per thread.
 * consume: one client reads a topic with tally_fetch from an offset. */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/name.h"
#include "tool/util.h"

static const char bench_help[] =
    "Usage: tally bench produce TOPIC --count N --size BYTES [--producers P]\n"
    "                           [--inflight W] [--pipeline R] [--batch-bytes B]\n"
    "                           [--linger-ms L] [--keys K] [--compressible] [--compress]\n"
    "                           [--topics T]\n"
    "       tally bench produce TOPIC --count N --size BYTES [--producers P] --batch B\n"
    "       tally bench consume TOPIC [--from OFFSET] [--count N] [--node HOST:PORT]\n"
    "                           [--max-bytes B]\n"
    "\n"
    "produce writes N records of BYTES bytes to TOPIC, which must exist. P producer\n"
    "threads (default 1), each with its own connection, share the N records. Each\n"
    "uses the asynchronous producer of libtally: records are gathered into batches\n"
    "of up to B bytes (default 65536), sent when full or L ms after their first\n"
    "record (default 0) while a request slot is free, with up to R requests\n"
    "pipelined (default 8); a thread keeps at most W records unacknowledged\n"
    "(default 1: one record in flight, no batching). Values are random bytes, which\n"
    "lz4 cannot shrink, unless --compressible (text-like, about 4:1 for lz4);\n"
    "--compress makes the producer lz4-compress batches. --keys K gives records\n"
    "keys k0..k(K-1) in turn (default: no key). --topics T spreads the records\n"
    "round robin over the T topics TOPIC-0 .. TOPIC-(T-1), which must exist (each\n"
    "thread from its own start; with --batch, one topic per request). With\n"
    "--batch B, each thread instead sends B records per synchronous request and\n"
    "waits for the answer\n"
    "(the --inflight/--pipeline/--batch-bytes/--linger-ms/--compress options do\n"
    "not apply).\n"
    "\n"
    "consume reads TOPIC from OFFSET (default: the topic's start) until N records\n"
    "were read (default: up to the topic's end offset when the bench started; in a\n"
    "compacted topic that is fewer records than offsets), with\n"
    "fetches of up to B bytes (default 4194304), from node HOST:PORT (default:\n"
    "any broker).\n"
    "\n"
    "Progress goes to stderr once a second. The last line on stdout is\n"
    "  msgs/s=... MB/s=... p50_ms=... p99_ms=... p999_ms=...\n"
    "where MB is 10^6 bytes of record keys and values. For produce, the latency\n"
    "is per record, from the send to its acknowledgement (with --batch: that of\n"
    "the request that carried it); for consume it is per fetch request.\n"
    "\n" TOOL_COMMON_HELP;

enum {
    BENCH_OPT_COUNT = TOOL_OPT__FIRST_FREE,
    BENCH_OPT_SIZE,
    BENCH_OPT_PRODUCERS,
    BENCH_OPT_BATCH,
    BENCH_OPT_INFLIGHT,
    BENCH_OPT_PIPELINE,
    BENCH_OPT_BATCH_BYTES,
    BENCH_OPT_LINGER,
    BENCH_OPT_KEYS,
    BENCH_OPT_COMPRESSIBLE,
    BENCH_OPT_COMPRESS,
    BENCH_OPT_FROM,
    BENCH_OPT_NODE,
    BENCH_OPT_MAX_BYTES,
    BENCH_OPT_TOPICS,
};

/* Values are cut from a pool at a random start, so that they differ. */
#define BENCH_POOL_SLACK 65536u
#define BENCH_MAX_PRODUCERS 1024u

/* With --topics T, the names TOPIC-0 .. TOPIC-(T-1) in one allocation. */
#define BENCH_MAX_TOPICS 100000u

struct bench_cfg {
    const char *topic;
    char **topics;        /* --topics T: records go round robin over these */
    uint64_t n_topics;    /* 1 without --topics (topics[0] is TOPIC) */
    uint64_t size;
    uint64_t batch;       /* 0: asynchronous producer */
    uint64_t inflight;
    uint64_t keys;
    bool compressible;
    struct tally_producer_options po;
};

struct bench_producer {
    pthread_t thread;
    const struct bench_cfg *cfg;
    uint64_t count;       /* records this producer sends */
    unsigned seed;
    uint32_t *lat_us;     /* per record: send time, then latency */
    int64_t t0_us;        /* base of the send times in lat_us */
    uint64_t acked;
    int rc;               /* 0 or the TALLY_* code that stopped it */
    char errmsg[512];
};

static atomic_uint_fast64_t bench_done;  /* records acknowledged, all threads */
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

static void bench_fill(unsigned char *pool, size_t len, bool compressible, uint64_t *rnd)
{
    static const char *const words[] = {"order", "created", "customer", "amount", "EUR",
                                        "status", "shipped", "item", "quantity", "id"};
    size_t i = 0;
    if (!compressible) {
        for (i = 0; i < len; i++) {
            pool[i] = (unsigned char)bench_rand(rnd);
        }
        return;
    }
    /* Words from a small vocabulary and some digits: text-like data. */
    while (i < len) {
        uint64_t r = bench_rand(rnd);
        const char *w = words[r % 10];
        size_t n = strlen(w);
        for (size_t k = 0; k < n && i < len; k++) {
            pool[i++] = (unsigned char)w[k];
        }
        if (i < len) {
            pool[i++] = (unsigned char)((r >> 8) % 4 == 0 ? '0' + (r >> 16) % 10 : ' ');
        }
    }
}

/* Acknowledgement of one record: arg points at its lat_us slot, which
 * holds the send time relative to the thread's t0. */
static __thread struct bench_producer *bench_self;

static __thread int64_t bench_ack_us; /* when the current batch's acks came */

static void bench_ack(void *arg, const struct tally_ack *ack)
{
    struct bench_producer *p = bench_self;
    uint32_t *slot = arg;
    int64_t dt;
    /* The records of one batch are acknowledged together, one callback
     * after the other: read the clock once per batch. */
    if (ack->batch_index == 0) {
        bench_ack_us = tool_now_us();
    }
    dt = bench_ack_us - p->t0_us - (int64_t)*slot;
    if (ack->code != 0 && p->rc == 0) {
        p->rc = ack->code;
        snprintf(p->errmsg, sizeof p->errmsg, "%s", ack->errmsg);
        atomic_store(&bench_failed, 1);
    }
    *slot = dt < 0 ? 0 : dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
    p->acked++;
    atomic_fetch_add(&bench_done, 1);
}

static void *bench_producer_run(void *arg)
{
    struct bench_producer *p = arg;
    const struct bench_cfg *cfg = p->cfg;
    struct tally_record_in *recs = NULL;
    tally_client *client = NULL;
    tally_producer *prod = NULL;
    uint64_t rnd = 0x9e3779b97f4a7c15ull ^ ((uint64_t)p->seed << 17) ^ (uint64_t)tool_now_us();
    unsigned char *pool = NULL;
    size_t pool_len = cfg->size + BENCH_POOL_SLACK;
    size_t nrecs = cfg->batch ? cfg->batch : 1;
    char key[32];
    uint64_t sent = 0;
    int rc;

    bench_self = p;
    pool = malloc(pool_len);
    recs = calloc(nrecs, sizeof *recs);
    p->lat_us = calloc(p->count ? p->count : 1, sizeof *p->lat_us);
    if (pool == NULL || recs == NULL || p->lat_us == NULL) {
        p->rc = TALLY_NOMEM;
        snprintf(p->errmsg, sizeof p->errmsg, "out of memory");
        goto out;
    }
    bench_fill(pool, pool_len, cfg->compressible, &rnd);
    rc = tally_client_create(tool_g.brokers, &client);
    if (rc != 0) {
        p->rc = rc;
        snprintf(p->errmsg, sizeof p->errmsg, "%s", tally_strerror(rc));
        goto out;
    }
    if (tool_g.timeout_ms > 0) {
        tally_client_set_timeout(client, tool_g.timeout_ms);
    }
    if (tool_g.tls_ca != NULL && tool_g.tls_ca[0] != '\0' && /* main read the environment */
        tally_client_set_tls(client, tool_g.tls_ca, tool_g.tls_cert, tool_g.tls_key) != 0) {
        p->rc = TALLY_INVAL;
        snprintf(p->errmsg, sizeof p->errmsg, "%s", tally_errmsg(client));
        goto out;
    }
    if (tool_g.user != NULL && /* main read the login */
        (tally_client_set_auth(client, tool_g.user, tool_g.password) != 0 ||
         (tool_g.mechanism != NULL &&
          tally_client_set_auth_mechanism(client, tool_g.mechanism) != 0))) {
        p->rc = TALLY_INVAL;
        snprintf(p->errmsg, sizeof p->errmsg, "%s", tally_errmsg(client));
        goto out;
    }
    p->t0_us = tool_now_us();
    if (cfg->batch > 0) {
        /* Synchronous: B records per request, one request in flight. */
        while (sent < p->count && !atomic_load(&bench_failed)) {
            struct tally_produce_result res;
            size_t n = p->count - sent < cfg->batch ? (size_t)(p->count - sent) : cfg->batch;
            int64_t t0, dt;
            for (size_t i = 0; i < n; i++) {
                recs[i].key = NULL;
                recs[i].key_len = 0;
                if (cfg->keys > 0) {
                    /* One buffer per request is enough: keys are copied. */
                    recs[i].key = key;
                    recs[i].key_len = (size_t)snprintf(key, sizeof key, "k%" PRIu64,
                                                       (sent + i) % cfg->keys);
                }
                recs[i].value = pool + bench_rand(&rnd) % BENCH_POOL_SLACK;
                recs[i].value_len = cfg->size;
            }
            t0 = tool_now_us();
            /* Round robin per request, each thread from its own start. */
            rc = tally_produce(client, cfg->topics[(sent / cfg->batch + p->seed) % cfg->n_topics],
                               recs, n, &res);
            dt = tool_now_us() - t0;
            if (rc != 0) {
                p->rc = rc;
                snprintf(p->errmsg, sizeof p->errmsg, "%s", tally_errmsg(client));
                atomic_store(&bench_failed, 1);
                break;
            }
            for (size_t i = 0; i < n; i++) {
                p->lat_us[sent + i] = dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
            }
            sent += n;
            p->acked += n;
            atomic_fetch_add(&bench_done, n);
        }
        goto out;
    }

    rc = tally_producer_create(client, &cfg->po, &prod);
    if (rc != 0) {
        p->rc = rc;
        snprintf(p->errmsg, sizeof p->errmsg, "cannot create the producer: %s",
                 tally_strerror(rc));
        goto out;
    }
    while (sent < p->count && !atomic_load(&bench_failed)) {
        struct tally_record_in r;
        while (sent - p->acked >= cfg->inflight && !atomic_load(&bench_failed)) {
            tally_producer_poll(prod, 100);
        }
        r.key = NULL;
        r.key_len = 0;
        if (cfg->keys > 0) {
            r.key = key;
            r.key_len = (size_t)snprintf(key, sizeof key, "k%" PRIu64, sent % cfg->keys);
        }
        r.value = pool + bench_rand(&rnd) % BENCH_POOL_SLACK;
        r.value_len = cfg->size;
        p->lat_us[sent] = (uint32_t)(tool_now_us() - p->t0_us);
        rc = tally_producer_send(prod, cfg->topics[(sent + p->seed) % cfg->n_topics], &r,
                                 bench_ack, &p->lat_us[sent]);
        if (rc != 0) {
            p->rc = rc;
            snprintf(p->errmsg, sizeof p->errmsg, "%s", tally_producer_errmsg(prod));
            atomic_store(&bench_failed, 1);
            break;
        }
        sent++;
    }
    rc = tally_producer_flush(prod);
    if (rc != 0 && p->rc == 0) {
        p->rc = rc;
        snprintf(p->errmsg, sizeof p->errmsg, "%s", tally_producer_errmsg(prod));
        atomic_store(&bench_failed, 1);
    }
out:
    tally_producer_destroy(prod);
    if (client != NULL) {
        tally_client_destroy(client);
    }
    free(recs);
    free(pool);
    atomic_fetch_sub(&bench_running, 1);
    return NULL;
}

static int bench_u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a;
    uint32_t y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Latency in ms below which fraction @q of the sorted samples fall. */
static double bench_quantile(const uint32_t *s, size_t n, double q)
{
    size_t i;
    if (n == 0) {
        return 0.0;
    }
    i = (size_t)(q * (double)n + 0.999999);
    i = i == 0 ? 0 : i - 1;
    return (i < n ? s[i] : s[n - 1]) / 1000.0;
}

static void bench_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void bench_default_brokers(void)
{
    if (tool_g.brokers == NULL) {
        tool_g.brokers = getenv("TALLY_BROKERS");
        if (tool_g.brokers == NULL || tool_g.brokers[0] == '\0') {
            tool_g.brokers = TOOL_DEFAULT_BROKERS;
        }
    }
}

static const char *bench_opt_name(int c)
{
    switch (c) {
    case BENCH_OPT_COUNT: return "count";
    case BENCH_OPT_SIZE: return "size";
    case BENCH_OPT_PRODUCERS: return "producers";
    case BENCH_OPT_BATCH: return "batch";
    case BENCH_OPT_INFLIGHT: return "inflight";
    case BENCH_OPT_PIPELINE: return "pipeline";
    case BENCH_OPT_BATCH_BYTES: return "batch-bytes";
    case BENCH_OPT_LINGER: return "linger-ms";
    case BENCH_OPT_KEYS: return "keys";
    case BENCH_OPT_FROM: return "from";
    case BENCH_OPT_MAX_BYTES: return "max-bytes";
    case BENCH_OPT_TOPICS: return "topics";
    default: return "?";
    }
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
        {"inflight", required_argument, NULL, BENCH_OPT_INFLIGHT},
        {"pipeline", required_argument, NULL, BENCH_OPT_PIPELINE},
        {"batch-bytes", required_argument, NULL, BENCH_OPT_BATCH_BYTES},
        {"linger-ms", required_argument, NULL, BENCH_OPT_LINGER},
        {"keys", required_argument, NULL, BENCH_OPT_KEYS},
        {"compressible", no_argument, NULL, BENCH_OPT_COMPRESSIBLE},
        {"compress", no_argument, NULL, BENCH_OPT_COMPRESS},
        {"topics", required_argument, NULL, BENCH_OPT_TOPICS},
        {NULL, 0, NULL, 0},
    };
    struct bench_cfg cfg;
    uint64_t n_topics = 0;
    char *topic_names = NULL;
    struct bench_producer *prods = NULL;
    uint32_t *all = NULL;
    uint64_t count = 0, producers = 1, pipeline = 0;
    uint64_t last_done = 0, total = 0, records_sent = 0;
    size_t n_all = 0;
    int64_t start, last_tick;
    double secs;
    uint64_t i;
    int have_count = 0, have_size = 0;
    int c, rc;

    memset(&cfg, 0, sizeof cfg);
    cfg.inflight = 1;
    tally_producer_options_init(&cfg.po);
    tool_getopt_reset();
    while ((c = getopt_long(argc, argv, TOOL_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        uint64_t v;

        switch (c) {
        case 'h':
            fputs(bench_help, stdout);
            return TOOL_EXIT_OK;
        case '?':
            return tool_bad_option(cmd, argv);
        case BENCH_OPT_COMPRESSIBLE:
            cfg.compressible = true;
            break;
        case BENCH_OPT_COMPRESS:
            cfg.po.compress = 1;
            break;
        case BENCH_OPT_COUNT:
        case BENCH_OPT_SIZE:
        case BENCH_OPT_PRODUCERS:
        case BENCH_OPT_BATCH:
        case BENCH_OPT_INFLIGHT:
        case BENCH_OPT_PIPELINE:
        case BENCH_OPT_BATCH_BYTES:
        case BENCH_OPT_LINGER:
        case BENCH_OPT_KEYS:
        case BENCH_OPT_TOPICS:
            if (!tool_parse_u64(optarg, &v) ||
                (v == 0 && c != BENCH_OPT_SIZE && c != BENCH_OPT_LINGER && c != BENCH_OPT_KEYS)) {
                return tool_usage_error(cmd, "--%s needs a %snumber, not '%s'",
                                        bench_opt_name(c),
                                        c == BENCH_OPT_SIZE || c == BENCH_OPT_LINGER ||
                                                c == BENCH_OPT_KEYS
                                            ? ""
                                            : "positive ",
                                        optarg);
            }
            if (c == BENCH_OPT_COUNT) {
                count = v;
                have_count = 1;
            } else if (c == BENCH_OPT_SIZE) {
                cfg.size = v;
                have_size = 1;
            } else if (c == BENCH_OPT_PRODUCERS) {
                producers = v;
            } else if (c == BENCH_OPT_BATCH) {
                cfg.batch = v;
            } else if (c == BENCH_OPT_INFLIGHT) {
                cfg.inflight = v;
            } else if (c == BENCH_OPT_PIPELINE) {
                pipeline = v;
            } else if (c == BENCH_OPT_BATCH_BYTES) {
                cfg.po.batch_bytes = v > (16u << 20) ? (16u << 20) + 1 : (size_t)v;
            } else if (c == BENCH_OPT_LINGER) {
                cfg.po.linger_ms = v > 60000 ? 60001 : (int)v;
            } else if (c == BENCH_OPT_TOPICS) {
                n_topics = v;
            } else {
                cfg.keys = v;
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
    cfg.topic = argv[optind++];
    if (optind < argc) {
        return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    }
    if (!have_count || !have_size) {
        return tool_usage_error(cmd, "--count and --size are required");
    }
    if (cfg.size > (16u << 20) || cfg.batch > 1000000 || cfg.batch * cfg.size > (64u << 20)) {
        return tool_usage_error(cmd, "--size/--batch too large for one request");
    }
    if (cfg.po.batch_bytes > (16u << 20) || cfg.po.linger_ms > 60000) {
        return tool_usage_error(cmd, "--batch-bytes is at most 16777216, --linger-ms at most "
                                     "60000");
    }
    if (count > 1000000000) {
        return tool_usage_error(cmd, "--count is at most 1000000000");
    }
    if (producers > BENCH_MAX_PRODUCERS) {
        return tool_usage_error(cmd, "--producers is at most %u", BENCH_MAX_PRODUCERS);
    }
    if (n_topics > BENCH_MAX_TOPICS) {
        return tool_usage_error(cmd, "--topics is at most %u", BENCH_MAX_TOPICS);
    }
    if (n_topics > 0 && strlen(cfg.topic) + 6 > NAME_TOPIC_MAX) {
        return tool_usage_error(cmd, "TOPIC is too long to number with --topics");
    }
    /* Request slots: as many as useful for the window, at most 1024. */
    if (pipeline == 0) {
        pipeline = cfg.inflight < 8 ? cfg.inflight : 8;
    }
    if (pipeline > 1024) {
        return tool_usage_error(cmd, "--pipeline is at most 1024");
    }
    cfg.po.max_inflight = (int)pipeline;
    if (tool_g.timeout_ms > 0) {
        cfg.po.timeout_ms = tool_g.timeout_ms;
    }
    if (producers > count) {
        producers = count;
    }
    bench_default_brokers();
    if ((rc = tool_read_login(cmd)) != TOOL_EXIT_OK) {
        return rc; /* before any thread starts */
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

    /* The topics records go to: TOPIC alone, or TOPIC-0 .. TOPIC-(T-1). */
    cfg.n_topics = n_topics > 0 ? n_topics : 1;
    cfg.topics = calloc(cfg.n_topics, sizeof *cfg.topics);
    topic_names = n_topics > 0 ? malloc(n_topics * (NAME_TOPIC_MAX + 1)) : NULL;
    if (cfg.topics == NULL || (n_topics > 0 && topic_names == NULL)) {
        free(cfg.topics);
        free(topic_names);
        return tool_error(cmd, "out of memory");
    }
    cfg.topics[0] = (char *)cfg.topic;
    for (i = 0; i < n_topics; i++) {
        cfg.topics[i] = topic_names + i * (NAME_TOPIC_MAX + 1);
        snprintf(cfg.topics[i], NAME_TOPIC_MAX + 1, "%s-%" PRIu64, cfg.topic, i);
    }
    prods = calloc(producers, sizeof *prods);
    if (prods == NULL) {
        free(cfg.topics);
        free(topic_names);
        return tool_error(cmd, "out of memory");
    }
    atomic_store(&bench_running, (int)producers);
    start = tool_now_us();
    for (i = 0; i < producers; i++) {
        prods[i].cfg = &cfg;
        prods[i].count = count / producers + (i < count % producers ? 1 : 0);
        prods[i].seed = (unsigned)i;
        if (pthread_create(&prods[i].thread, NULL, bench_producer_run, &prods[i]) != 0) {
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
            uint64_t done = atomic_load(&bench_done);
            fprintf(stderr, "%6.1fs  %" PRIu64 "/%" PRIu64 " records acknowledged  %.0f msgs/s\n",
                    (now - start) / 1e6, done, count,
                    (double)(done - last_done) * 1e6 / (double)(now - last_tick));
            last_done = done;
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
                            prods[i].errmsg, (uint64_t)atomic_load(&bench_done));
            goto out;
        }
        records_sent += prods[i].count;
    }
    total = atomic_load(&bench_done);
    if (total != records_sent) {
        rc = tool_error(cmd, "%" PRIu64 " of %" PRIu64 " records acknowledged", total,
                        records_sent);
        goto out;
    }
    all = malloc((total > 0 ? total : 1) * sizeof *all);
    if (all == NULL) {
        rc = tool_error(cmd, "out of memory");
        goto out;
    }
    for (i = 0; i < producers; i++) {
        memcpy(all + n_all, prods[i].lat_us, prods[i].count * sizeof *all);
        n_all += prods[i].count;
    }
    qsort(all, n_all, sizeof *all, bench_u32_cmp);
    if (cfg.batch > 0) {
        fprintf(stderr,
                "%" PRIu64 " records of %" PRIu64 " bytes in %.3fs: %" PRIu64
                " producers, %" PRIu64 " records per synchronous request\n",
                total, cfg.size, secs, producers, cfg.batch);
    } else {
        fprintf(stderr,
                "%" PRIu64 " records of %" PRIu64 " bytes in %.3fs: %" PRIu64
                " producers, %" PRIu64 " records in flight, %d requests pipelined, "
                "batches up to %zu bytes, linger %d ms%s%s\n",
                total, cfg.size, secs, producers, cfg.inflight, cfg.po.max_inflight,
                cfg.po.batch_bytes, cfg.po.linger_ms, cfg.compressible ? ", compressible" : "",
                cfg.po.compress ? ", lz4" : "");
    }
    printf("msgs/s=%.0f MB/s=%.3f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f\n",
           secs > 0 ? (double)total / secs : 0.0,
           secs > 0 ? (double)total * (double)cfg.size / secs / 1e6 : 0.0,
           bench_quantile(all, n_all, 0.50), bench_quantile(all, n_all, 0.99),
           bench_quantile(all, n_all, 0.999));
    rc = tool_check_stdout(cmd);
    rc = rc < 0 ? TOOL_EXIT_OK : rc;
out:
    for (i = 0; i < producers; i++) {
        free(prods[i].lat_us);
    }
    free(all);
    free(prods);
    free(cfg.topics);
    free(topic_names);
    return rc;
}

static int bench_consume(int argc, char **argv)
{
    static const char cmd[] = "bench consume";
    static const struct option longopts[] = {
        TOOL_COMMON_LONGOPTS,
        {"from", required_argument, NULL, BENCH_OPT_FROM},
        {"count", required_argument, NULL, BENCH_OPT_COUNT},
        {"node", required_argument, NULL, BENCH_OPT_NODE},
        {"max-bytes", required_argument, NULL, BENCH_OPT_MAX_BYTES},
        {NULL, 0, NULL, 0},
    };
    struct tally_fetch_options fo;
    struct tally_topic_info *topics = NULL;
    tally_client *client = NULL;
    const char *topic;
    uint64_t from = 0, count = 0, got = 0, bytes = 0, last_got = 0, off, end = UINT64_MAX;
    uint32_t *lat = NULL;
    size_t n_lat = 0, cap_lat = 0, n_topics = 0;
    bool have_from = false, have_count = false, found = false;
    int64_t start, last_tick, deadline;
    double secs;
    int c, rc;

    tally_fetch_options_init(&fo);
    fo.max_bytes = 4u << 20;
    tool_getopt_reset();
    while ((c = getopt_long(argc, argv, TOOL_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        uint64_t v;
        switch (c) {
        case 'h':
            fputs(bench_help, stdout);
            return TOOL_EXIT_OK;
        case '?':
            return tool_bad_option(cmd, argv);
        case BENCH_OPT_NODE:
            fo.node = optarg;
            break;
        case BENCH_OPT_FROM:
        case BENCH_OPT_COUNT:
        case BENCH_OPT_MAX_BYTES:
            if (!tool_parse_u64(optarg, &v) || (v == 0 && c != BENCH_OPT_FROM) ||
                (c == BENCH_OPT_MAX_BYTES && v > UINT32_MAX)) {
                return tool_usage_error(cmd, "--%s needs a %snumber, not '%s'",
                                        bench_opt_name(c), c == BENCH_OPT_FROM ? "" : "positive ",
                                        optarg);
            }
            if (c == BENCH_OPT_FROM) {
                from = v;
                have_from = true;
            } else if (c == BENCH_OPT_COUNT) {
                count = v;
                have_count = true;
            } else {
                fo.max_bytes = (uint32_t)v;
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
    bench_default_brokers();
    if ((rc = tool_read_login(cmd)) != TOOL_EXIT_OK) {
        return rc; /* before any thread starts */
    }
    rc = tool_connect(cmd, &client);
    if (rc != TOOL_EXIT_OK) {
        return rc;
    }
    if (!have_from || !have_count) {
        /* Where the topic starts and ends, as the node read from sees it. */
        struct tally_fetch_result res;
        int frc;
        struct tally_fetch_options probe = fo;
        probe.max_bytes = 1;
        frc = tally_topic_list(client, &topics, &n_topics);
        if (frc != 0) {
            rc = tool_cluster_error(client, cmd, frc);
            goto out;
        }
        for (size_t i = 0; i < n_topics; i++) {
            if (strcmp(topics[i].name, topic) == 0) {
                found = true;
                if (!have_from) {
                    from = topics[i].start_offset;
                }
            }
        }
        if (!found) {
            rc = tool_error(cmd, "topic %s not found", topic);
            goto out;
        }
        frc = tally_fetch(client, topic, from, &probe, &res);
        if (frc != 0) {
            rc = tool_cluster_error(client, cmd, frc);
            goto out;
        }
        if (!have_count) {
            /* Up to the end offset, not a number of records: a compacted
             * topic has fewer records than offsets. */
            end = res.high_offset;
            count = UINT64_MAX;
        }
        tally_fetch_result_free(&res);
    }
    off = from;
    start = tool_now_us();
    last_tick = start;
    /* Waiting for records that do not come is bounded by the timeout. */
    deadline = start + (int64_t)(tool_g.timeout_ms > 0 ? tool_g.timeout_ms : 10000) * 1000;
    while (got < count && off < end) {
        struct tally_fetch_result res;
        int64_t t0 = tool_now_us(), now;
        int frc;
        fo.max_wait_ms = 0;
        frc = tally_fetch(client, topic, off, &fo, &res);
        now = tool_now_us();
        if (frc != 0) {
            rc = tool_cluster_error(client, cmd, frc);
            goto out;
        }
        if (n_lat == cap_lat) {
            size_t ncap = cap_lat ? cap_lat * 2 : 1024;
            uint32_t *l = realloc(lat, ncap * sizeof *l);
            if (l == NULL) {
                tally_fetch_result_free(&res);
                rc = tool_error(cmd, "out of memory");
                goto out;
            }
            lat = l;
            cap_lat = ncap;
        }
        lat[n_lat++] = (uint32_t)(now - t0);
        for (size_t i = 0; i < res.n && got < count && res.records[i].offset < end; i++) {
            got++;
            bytes += res.records[i].key_len + res.records[i].value_len;
        }
        if (res.n == 0) {
            if (now > deadline) {
                tally_fetch_result_free(&res);
                if (end != UINT64_MAX) {
                    rc = tool_error(cmd, "offsets up to %" PRIu64 " did not arrive in time "
                                         "(read %" PRIu64 " records up to offset %" PRIu64 ")",
                                    end, got, off);
                } else {
                    rc = tool_error(cmd, "only %" PRIu64 " of %" PRIu64 " records arrived in time",
                                    got, count);
                }
                goto out;
            }
            bench_sleep_ms(1);
        } else {
            deadline = now + (int64_t)(tool_g.timeout_ms > 0 ? tool_g.timeout_ms : 10000) * 1000;
        }
        off = res.next_offset;
        tally_fetch_result_free(&res);
        if (now - last_tick >= 1000000) {
            if (end != UINT64_MAX) {
                fprintf(stderr, "%6.1fs  %" PRIu64 " records read, offset %" PRIu64 "/%" PRIu64
                                "  %.0f msgs/s\n",
                        (now - start) / 1e6, got, off, end,
                        (double)(got - last_got) * 1e6 / (double)(now - last_tick));
            } else {
                fprintf(stderr, "%6.1fs  %" PRIu64 "/%" PRIu64 " records read  %.0f msgs/s\n",
                        (now - start) / 1e6, got, count,
                        (double)(got - last_got) * 1e6 / (double)(now - last_tick));
            }
            last_got = got;
            last_tick = now;
        }
    }
    secs = (double)(tool_now_us() - start) / 1e6;
    qsort(lat, n_lat, sizeof *lat, bench_u32_cmp);
    fprintf(stderr, "%" PRIu64 " records (%" PRIu64 " bytes) from offset %" PRIu64
            " in %.3fs, %zu fetches of up to %u bytes%s%s\n",
            got, bytes, from, secs, n_lat, fo.max_bytes, fo.node ? " from " : "",
            fo.node ? fo.node : "");
    printf("msgs/s=%.0f MB/s=%.3f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f\n",
           secs > 0 ? (double)got / secs : 0.0, secs > 0 ? (double)bytes / secs / 1e6 : 0.0,
           bench_quantile(lat, n_lat, 0.50), bench_quantile(lat, n_lat, 0.99),
           bench_quantile(lat, n_lat, 0.999));
    rc = tool_check_stdout(cmd);
    rc = rc < 0 ? TOOL_EXIT_OK : rc;
out:
    free(lat);
    free(topics);
    tally_client_destroy(client);
    return rc;
}

int cmd_bench_main(int argc, char **argv)
{
    if (argc < 2) {
        return tool_usage_error("bench", "missing SUBCOMMAND: produce or consume");
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(bench_help, stdout);
        return TOOL_EXIT_OK;
    }
    if (strcmp(argv[1], "produce") == 0) {
        return bench_produce(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "consume") == 0) {
        return bench_consume(argc - 1, argv + 1);
    }
    return tool_usage_error("bench", "unknown subcommand '%s': want produce or consume",
                            argv[1]);
}
