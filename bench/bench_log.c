/* bench-log: throughput of log_append and the cost of log_open, for
 * bench/log-append.sh (not part of make check).
 *
 *   bench-log append DIR TOTAL_BYTES RECORD_BYTES BATCH_BYTES [lz4]
 *       Append TOTAL_BYTES of batches of RECORD_BYTES-value records, each
 *       batch about BATCH_BYTES, to a new log in DIR, then log_sync. Prints
 *       one line with MB/s and records/s, with and without the final sync.
 *   bench-log open DIR [RUNS]
 *       Time log_open + log_close of an existing log RUNS times (default 5)
 *       and print the fastest, median and slowest.
 *
 * One batch is built once and re-stamped for every append (batch_stamp is
 * O(1)), so the numbers measure the log, not the batch builder. MB is 10^6
 * bytes, as dd prints it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/batch.h"
#include "lib/err.h"
#include "lib/logger.h"
#include "log/log.h"
#include "bench_util.h"

static int bench__append(const char *dir, uint64_t total, uint64_t record_bytes,
                         uint64_t batch_bytes, int compress)
{
    struct log_config cfg;
    struct tally_log *l;
    struct batch_builder b;
    struct buf batch;
    char errmsg[ERR_MSG_SIZE];
    uint8_t *value = malloc(record_bytes ? record_bytes : 1);
    uint64_t x = 0x9e3779b97f4a7c15ull, appended = 0, records = 0, batches = 0;
    uint32_t per_batch;
    double t0, t_append, t_sync;
    int64_t ts = 1700000000000LL;

    /* Values are pseudo-random so that lz4 (when asked) has no easy win. */
    for (uint64_t i = 0; i < record_bytes; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        value[i] = (uint8_t)x;
    }
    batch_builder_init(&b, 1, 0);
    buf_init(&batch);
    do {
        char key[32];
        int klen = snprintf(key, sizeof key, "key-%u", b.count);
        if (batch_builder_add(&b, key, (size_t)klen, value, record_bytes) != 0) {
            fprintf(stderr, "bench-log: out of memory\n");
            return 1;
        }
    } while (batch_builder_size(&b) + record_bytes + 16 <= batch_bytes);
    per_batch = b.count;
    if (batch_builder_finish(&b, compress, &batch) != 0) {
        fprintf(stderr, "bench-log: cannot build the batch\n");
        return 1;
    }
    log_config_init(&cfg);
    if (log_open(dir, &cfg, 0, &l, errmsg) != 0) {
        fprintf(stderr, "bench-log: %s\n", errmsg);
        return 1;
    }
    t0 = bench_now();
    while (appended < total) {
        batch_stamp(batch.data, log_next_offset(l), ts, batches + 1);
        if (log_append(l, batch.data, batch.len, ts, errmsg) != 0) {
            fprintf(stderr, "bench-log: %s\n", errmsg);
            return 1;
        }
        appended += batch.len;
        records += per_batch;
        batches++;
        ts++;
    }
    t_append = bench_now() - t0;
    if (log_sync(l, errmsg) != 0) {
        fprintf(stderr, "bench-log: %s\n", errmsg);
        return 1;
    }
    t_sync = bench_now() - t0;
    printf("append record_bytes=%" PRIu64 " batch_bytes=%zu records_per_batch=%u%s"
           " bytes=%" PRIu64 " records=%" PRIu64 " segments=%u"
           " seconds=%.3f MB/s=%.1f records/s=%.0f"
           " synced_seconds=%.3f synced_MB/s=%.1f synced_records/s=%.0f\n",
           record_bytes, batch.len, per_batch, compress ? " lz4" : "", appended, records,
           log_segment_count(l), t_append, (double)appended / t_append / 1e6,
           (double)records / t_append, t_sync, (double)appended / t_sync / 1e6,
           (double)records / t_sync);
    log_close(l);
    batch_builder_free(&b);
    buf_free(&batch);
    free(value);
    return 0;
}

static int bench__cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int bench__open(const char *dir, unsigned runs)
{
    struct log_config cfg;
    char errmsg[ERR_MSG_SIZE];
    double *t = calloc(runs, sizeof *t);
    uint64_t size = 0;
    unsigned segs = 0;
    log_config_init(&cfg);
    for (unsigned i = 0; i < runs; i++) {
        struct tally_log *l;
        double t0 = bench_now();
        if (log_open(dir, &cfg, 0, &l, errmsg) != 0) {
            fprintf(stderr, "bench-log: %s\n", errmsg);
            return 1;
        }
        size = log_size_bytes(l);
        segs = log_segment_count(l);
        log_close(l);
        t[i] = bench_now() - t0;
    }
    qsort(t, runs, sizeof *t, bench__cmp);
    printf("open bytes=%" PRIu64 " segments=%u runs=%u min_ms=%.2f median_ms=%.2f max_ms=%.2f\n",
           size, segs, runs, t[0] * 1e3, t[runs / 2] * 1e3, t[runs - 1] * 1e3);
    free(t);
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t total, rec, batch, runs = 5;
    logger_set_level(LOGGER_WARN);
    if (argc >= 6 && strcmp(argv[1], "append") == 0 && bench_parse_size(argv[3], &total) == 0 &&
        bench_parse_size(argv[4], &rec) == 0 && bench_parse_size(argv[5], &batch) == 0) {
        return bench__append(argv[2], total, rec, batch, argc > 6 && strcmp(argv[6], "lz4") == 0);
    }
    if (argc >= 3 && strcmp(argv[1], "open") == 0 &&
        (argc < 4 || (bench_parse_size(argv[3], &runs) == 0 && runs > 0))) {
        return bench__open(argv[2], (unsigned)runs);
    }
    fprintf(stderr,
            "usage: bench-log append DIR TOTAL_BYTES RECORD_BYTES BATCH_BYTES [lz4]\n"
            "       bench-log open DIR [RUNS]\n"
            "sizes take a K, M or G suffix (powers of 1024)\n");
    return 2;
}
