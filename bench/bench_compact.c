/* bench-compact: throughput and memory of keyed compaction (src/log/
 * compact.c), for bench/compaction.sh (not part of make check).
 *
 *   bench-compact DIR TOTAL_BYTES KEYS VALUE_BYTES [MAP_BYTES]
 *
 * Writes a new log in DIR: batches of 1000 records (64 MiB segments),
 * each with a key drawn uniformly from KEYS keys ("key-%09u") and a value
 * of VALUE_BYTES random bytes, until TOTAL_BYTES are written; syncs it.
 * Then resets the process's peak RSS (/proc/self/clear_refs) and runs one
 * compaction of every sealed segment (prepare, run, commit), timing each
 * step, and prints one line:
 *   compaction: in=... MB out=... MB records_in=... records_out=...
 *   seconds=... (run, swap: what the log's thread waits for, free: closing
 *   the replaced files) MB/s=... peak_rss_MB=... (before: ...)
 * MB is 10^6 bytes; MB/s is bytes read per second of the whole job. The
 * page cache is warm (the log was just written), as it is on a node that
 * compacts what it recently sealed. */
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

#define BATCH_RECORDS 1000

/* Peak resident set size of this process, in kB (VmHWM). */
static long peak_rss_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) {
            break;
        }
    }
    fclose(f);
    return kb;
}

static void reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f != NULL) {
        fputs("5", f);
        fclose(f);
    }
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

int main(int argc, char **argv)
{
    uint64_t total, keys, vsize, map_bytes = 64u << 20, written = 0, records = 0;
    struct log_config cfg;
    struct tally_log *l;
    struct log_compaction *c = NULL;
    struct log_compact_params p;
    struct log_compact_stats st;
    char errmsg[ERR_MSG_SIZE];
    uint8_t *val;
    double t0, t1, t2, t3, t4;
    long rss_before;

    if (argc < 5 || bench_parse_size(argv[2], &total) != 0 ||
        bench_parse_size(argv[3], &keys) != 0 || bench_parse_size(argv[4], &vsize) != 0 ||
        keys == 0 ||
        (argc > 5 && bench_parse_size(argv[5], &map_bytes) != 0)) {
        fprintf(stderr, "usage: bench-compact DIR TOTAL_BYTES KEYS VALUE_BYTES [MAP_BYTES]\n");
        return 2;
    }
    logger_set_level(LOGGER_WARN);
    log_config_init(&cfg);
    if (log_open(argv[1], &cfg, 0, &l, errmsg) != 0) {
        fprintf(stderr, "bench-compact: %s\n", errmsg);
        return 1;
    }
    val = malloc(vsize + 1);
    t0 = bench_now();
    while (written < total) {
        struct batch_builder b;
        struct buf out;
        uint64_t base = log_next_offset(l);
        batch_builder_init(&b, 0, 0);
        buf_init(&out);
        for (unsigned i = 0; i < BATCH_RECORDS; i++) {
            char key[32];
            int klen = snprintf(key, sizeof key, "key-%09" PRIu64, rng() % keys);
            for (uint64_t j = 0; j < vsize; j += 8) {
                uint64_t r = rng();
                memcpy(val + j, &r, vsize - j < 8 ? vsize - j : 8);
            }
            if (batch_builder_add(&b, key, (size_t)klen, val, vsize) != 0) {
                fprintf(stderr, "bench-compact: out of memory\n");
                return 1;
            }
        }
        if (batch_builder_finish(&b, false, &out) != 0) {
            fprintf(stderr, "bench-compact: cannot build a batch\n");
            return 1;
        }
        batch_stamp(out.data, base, 1700000000000 + (int64_t)records / 1000, base + 1);
        if (log_append(l, out.data, out.len, 0, errmsg) != 0) {
            fprintf(stderr, "bench-compact: %s\n", errmsg);
            return 1;
        }
        written += out.len;
        records += BATCH_RECORDS;
        batch_builder_free(&b);
        buf_free(&out);
    }
    if (log_sync(l, errmsg) != 0) {
        fprintf(stderr, "bench-compact: %s\n", errmsg);
        return 1;
    }
    t1 = bench_now();
    fprintf(stderr, "wrote %.1f MB, %" PRIu64 " records over %" PRIu64 " keys in %u segments, "
            "%.1f s\n", (double)written / 1e6, records, keys, log_segment_count(l), t1 - t0);
    rss_before = peak_rss_kb();
    reset_peak_rss();

    memset(&p, 0, sizeof p);
    p.upto = UINT64_MAX;
    p.now_ms = 1800000000000;
    p.delete_retention_ms = -1;
    p.map_bytes = (size_t)map_bytes;
    t1 = bench_now();
    if (log_compact_prepare(l, &p, &c, errmsg) != 0 || c == NULL) {
        fprintf(stderr, "bench-compact: prepare: %s\n", c == NULL ? "nothing to do" : errmsg);
        return 1;
    }
    if (log_compact_run(c, errmsg) != 0) {
        fprintf(stderr, "bench-compact: run: %s\n", errmsg);
        return 1;
    }
    t2 = bench_now();
    if (log_compact_commit(l, c, &st, errmsg) != 0) {
        fprintf(stderr, "bench-compact: commit: %s\n", errmsg);
        return 1;
    }
    t3 = bench_now();
    log_compact_free(c);
    t4 = bench_now();
    printf("compaction: in=%.1f MB out=%.1f MB segments=%u rewritten=%u records_in=%" PRIu64
           " records_out=%" PRIu64 " seconds=%.2f (run %.2f, swap %.3f, free %.3f) MB/s=%.1f "
           "peak_rss_MB=%.1f (writer before: %.1f)\n",
           (double)st.bytes_in / 1e6, (double)st.bytes_out / 1e6, st.segments, st.rewritten,
           st.records_in, st.records_out, t4 - t1, t2 - t1, t3 - t2, t4 - t3,
           (double)st.bytes_in / 1e6 / (t4 - t1), (double)peak_rss_kb() / 1024.0,
           (double)rss_before / 1024.0);
    log_close(l);
    free(val);
    return 0;
}
