/* bench-compact: throughput and memory of keyed compaction (src/log/
 * compact.c), for bench/compaction.sh (not part of make check).
 *
 *   bench-compact DIR TOTAL_BYTES KEYS VALUE_BYTES [MAP_BYTES]
 *   bench-compact --rounds DIR TOTAL_BYTES KEYS VALUE_BYTES [MAP_BYTES [IO_RATE]]
 *
 * Writes a new log in DIR: batches of 1000 records (64 MiB segments),
 * each with a key drawn uniformly from KEYS keys ("key-%09u") and a value
 * of VALUE_BYTES bytes, until TOTAL_BYTES are written; syncs it.
 *
 * Without --rounds: random values. Then resets the process's peak RSS
 * (/proc/self/clear_refs) and runs one compaction of every sealed segment
 * (prepare, run, commit), timing each step, and prints one line:
 *   compaction: in=... MB out=... MB records_in=... records_out=...
 *   seconds=... (run, swap: what the log's thread waits for, free: closing
 *   the replaced files) MB/s=... peak_rss_MB=... (before: ...)
 * MB is 10^6 bytes; MB/s is bytes read per second of the whole job. The
 * page cache is warm (the log was just written), as it is on a node that
 * compacts what it recently sealed.
 *
 * --rounds (the long mode: more keys than the key map holds, issue 20):
 * values are made from the record's offset, so the result can be checked.
 * A child process writes the log; this process
 * then runs compactions (as a node's compactor does, one job after
 * another, each with MAP_BYTES of key map, default 64M, paced to IO_RATE
 * bytes/s, default 0: none) until there is nothing left to do, a line per
 * job on stderr; then a second child reads the whole log and checks that
 * it holds the latest record of every key, with its value, and nothing
 * else (below the active segment, which is never compacted). Prints
 *   rounds: total=... MB keys=... rounds=... seconds=... MB/s=...
 *   peak_rss_MB=... out=... MB records_out=... verified=yes|NO (...)
 * where MB/s is the log's size over the rounds' seconds, and peak_rss_MB
 * this process's ru_maxrss (getrusage): the compactions alone, as the
 * writer and the checker (which needs 8 bytes per key) are children. Exits
 * 1 if the check fails. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/batch.h"
#include "lib/err.h"
#include "lib/logger.h"
#include "log/log.h"
#include "bench_util.h"

#define BATCH_RECORDS 1000

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

/* The long mode (--rounds): see the top of the file. */

/* A record's value, made from its offset (splitmix64 steps). */
static void value_of(uint64_t offset, uint8_t *val, uint64_t vsize)
{
    uint64_t x = offset * 0x9E3779B97F4A7C15ull + 1;
    for (uint64_t j = 0; j < vsize; j += 8) {
        uint64_t z = (x += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        memcpy(val + j, &z, vsize - j < 8 ? vsize - j : 8);
    }
}

/* Write the log: records with keys from rng() in turn, values value_of()
 * their offsets, until @total bytes. The number of
 * records written goes to *records. */
static int rounds_write(const char *dir, uint64_t total, uint64_t keys, uint64_t vsize,
                        uint64_t *records)
{
    struct log_config cfg;
    struct tally_log *l;
    char errmsg[ERR_MSG_SIZE];
    uint8_t *val = malloc(vsize + 8);
    uint64_t written = 0;
    log_config_init(&cfg);
    if (val == NULL || log_open(dir, &cfg, 0, &l, errmsg) != 0) {
        fprintf(stderr, "bench-compact: %s\n", val == NULL ? "out of memory" : errmsg);
        return 1;
    }
    *records = 0;
    while (written < total) {
        struct batch_builder b;
        struct buf out;
        uint64_t base = log_next_offset(l);
        batch_builder_init(&b, 0, 0);
        buf_init(&out);
        for (unsigned i = 0; i < BATCH_RECORDS; i++) {
            char key[32];
            int klen = snprintf(key, sizeof key, "key-%09" PRIu64, rng() % keys);
            value_of(base + i, val, vsize);
            if (batch_builder_add(&b, key, (size_t)klen, val, vsize) != 0) {
                fprintf(stderr, "bench-compact: out of memory\n");
                return 1;
            }
        }
        if (batch_builder_finish(&b, false, &out) != 0) {
            fprintf(stderr, "bench-compact: cannot build a batch\n");
            return 1;
        }
        batch_stamp(out.data, base, 1700000000000 + (int64_t)(base / 1000), base + 1);
        if (log_append(l, out.data, out.len, 0, errmsg) != 0) {
            fprintf(stderr, "bench-compact: %s\n", errmsg);
            return 1;
        }
        written += out.len;
        *records += BATCH_RECORDS;
        batch_builder_free(&b);
        buf_free(&out);
    }
    if (log_sync(l, errmsg) != 0) {
        fprintf(stderr, "bench-compact: %s\n", errmsg);
        return 1;
    }
    fprintf(stderr, "wrote %.1f MB, %" PRIu64 " records over %" PRIu64 " keys in %u segments\n",
            (double)written / 1e6, *records, keys, log_segment_count(l));
    log_close(l);
    free(val);
    return 0;
}

/* Check the compacted log: replay the writer's keys to find each key's
 * latest offset below @upto (where the compacted range ends: the active
 * segment's records are never compacted), then read every record and
 * require that it is that record of its key (below @upto), with its
 * value, and that every key was seen. */
static int rounds_check(const char *dir, uint64_t keys, uint64_t vsize, uint64_t records,
                        uint64_t upto)
{
    struct log_config cfg;
    struct tally_log *l;
    char errmsg[ERR_MSG_SIZE];
    uint64_t *latest = calloc(keys, sizeof *latest); /* offset + 1; 0: no record */
    uint8_t *val = malloc(vsize + 8);
    uint64_t distinct = 0, seen = 0, bad = 0, above = 0, off;
    log_config_init(&cfg);
    if (latest == NULL || val == NULL || log_open(dir, &cfg, 0, &l, errmsg) != 0) {
        fprintf(stderr, "bench-compact: check: %s\n",
                latest == NULL || val == NULL ? "out of memory" : errmsg);
        return 1;
    }
    rng_state = 88172645463325252ull;
    for (uint64_t r = 0; r < records && r < upto; r++) {
        uint64_t k = rng() % keys;
        distinct += latest[k] == 0;
        latest[k] = r + 1;
    }
    off = log_start_offset(l);
    while (off < log_next_offset(l)) {
        void *data;
        size_t len, pos = 0;
        uint64_t next;
        if (log_read_copy(l, off, 4u << 20, &data, &len, &next, errmsg) != 0) {
            fprintf(stderr, "bench-compact: check: read at %" PRIu64 ": %s\n", off, errmsg);
            return 1;
        }
        while (pos < len) {
            struct batch_header h;
            struct batch_iter it;
            struct batch_record rec;
            if (batch_decode_header((uint8_t *)data + pos, len - pos, &h, errmsg) != 0 ||
                batch_iter_init(&it, (uint8_t *)data + pos, h.batch_len, errmsg) != 0) {
                fprintf(stderr, "bench-compact: check: %s\n", errmsg);
                return 1;
            }
            while (batch_iter_next(&it, &rec, errmsg) == 0) {
                uint64_t k;
                if (rec.offset < off) {
                    continue;
                }
                if (rec.offset >= upto) {
                    value_of(rec.offset, val, vsize);
                    above++;
                    if (rec.value_len != vsize || memcmp(rec.value, val, vsize) != 0) {
                        bad++;
                    }
                    continue;
                }
                seen++;
                if (rec.key == NULL || rec.key_len != 13 ||
                    sscanf((const char *)rec.key + 4, "%9" SCNu64, &k) != 1 || k >= keys ||
                    latest[k] != rec.offset + 1 || rec.value_len != vsize) {
                    if (bad++ < 5) {
                        fprintf(stderr, "check: offset %" PRIu64 ": not the latest record of "
                                "its key\n", rec.offset);
                    }
                    continue;
                }
                value_of(rec.offset, val, vsize);
                if (memcmp(rec.value, val, vsize) != 0) {
                    if (bad++ < 5) {
                        fprintf(stderr, "check: offset %" PRIu64 ": wrong value\n", rec.offset);
                    }
                }
                latest[k] = 0; /* seen once; a second copy fails above */
            }
            batch_iter_close(&it);
            pos += h.batch_len;
        }
        free(data);
        off = next;
    }
    log_close(l);
    if (seen != distinct || above != records - upto) {
        fprintf(stderr, "check: %" PRIu64 " records, %" PRIu64 " keys below offset %" PRIu64
                "; %" PRIu64 " records above it, of %" PRIu64 " written\n", seen, distinct,
                upto, above, records - upto);
        bad++;
    }
    printf("checked: %" PRIu64 " records below offset %" PRIu64 " (where the compacted range "
           "ends), %" PRIu64 " keys written there, %" PRIu64 " bad; %" PRIu64 " records above "
           "it (the active segment)\n", seen, upto, distinct, bad, above);
    free(latest);
    free(val);
    return bad == 0 ? 0 : 1;
}

/* Run @fn(...) in a child; its exit status (0 when it succeeded). */
static int rounds_child_status(pid_t pid)
{
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        return 1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int rounds_main(int argc, char **argv)
{
    uint64_t total, keys, vsize, map_bytes = 64u << 20, io_rate = 0, records = 0;
    struct log_config cfg;
    struct tally_log *l;
    struct log_compact_params p;
    char errmsg[ERR_MSG_SIZE];
    struct rusage ru;
    unsigned rounds = 0;
    uint64_t upto = 0;
    double t0, t1;
    int fds[2], rv;
    pid_t pid;

    if (argc < 4 || bench_parse_size(argv[1], &total) != 0 ||
        bench_parse_size(argv[2], &keys) != 0 || bench_parse_size(argv[3], &vsize) != 0 ||
        keys == 0 || keys > 1000000000 || vsize == 0 ||
        (argc > 4 && bench_parse_size(argv[4], &map_bytes) != 0) ||
        (argc > 5 && bench_parse_size(argv[5], &io_rate) != 0)) {
        fprintf(stderr, "usage: bench-compact --rounds DIR TOTAL_BYTES KEYS VALUE_BYTES "
                        "[MAP_BYTES [IO_RATE]]\n");
        return 2;
    }
    /* argv[0] is DIR here */
    if (pipe(fds) != 0) {
        perror("pipe");
        return 1;
    }
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        close(fds[0]);
        rv = rounds_write(argv[0], total, keys, vsize, &records);
        if (rv == 0 && write(fds[1], &records, sizeof records) != sizeof records) {
            rv = 1;
        }
        fflush(NULL);
        _exit(rv);
    }
    close(fds[1]);
    if (read(fds[0], &records, sizeof records) != sizeof records ||
        rounds_child_status(pid) != 0) {
        fprintf(stderr, "bench-compact: the writer failed\n");
        return 1;
    }
    close(fds[0]);
    log_config_init(&cfg);
    if (log_open(argv[0], &cfg, 0, &l, errmsg) != 0) {
        fprintf(stderr, "bench-compact: %s\n", errmsg);
        return 1;
    }
    memset(&p, 0, sizeof p);
    p.upto = UINT64_MAX;
    p.now_ms = 1800000000000;
    p.delete_retention_ms = -1;
    p.map_bytes = (size_t)map_bytes;
    p.io_rate = io_rate;
    t0 = bench_now();
    for (;;) {
        struct log_compaction *c = NULL;
        struct log_compact_stats st;
        double r0 = bench_now();
        if (log_compact_prepare(l, &p, &c, errmsg) != 0) {
            fprintf(stderr, "bench-compact: prepare: %s\n", errmsg);
            return 1;
        }
        if (c == NULL) {
            break;
        }
        if (log_compact_run(c, errmsg) != 0 || log_compact_commit(l, c, &st, errmsg) != 0) {
            fprintf(stderr, "bench-compact: round %u: %s\n", rounds + 1, errmsg);
            return 1;
        }
        log_compact_free(c);
        rounds++;
        upto = st.upto;
        fprintf(stderr, "round %u: %u segments below offset %" PRIu64 ", %u rewritten, "
                "%u merged away: %.1f -> %.1f MB, %.1f MB read and written, %.2f s; "
                "log %.1f MB in %u segments\n",
                rounds, st.segments, st.upto, st.rewritten, st.merged,
                (double)st.bytes_in / 1e6, (double)st.bytes_out / 1e6,
                (double)st.bytes_io / 1e6, bench_now() - r0, (double)log_size_bytes(l) / 1e6,
                log_segment_count(l));
    }
    t1 = bench_now();
    getrusage(RUSAGE_SELF, &ru);
    printf("rounds: total=%.1f MB keys=%" PRIu64 " records=%" PRIu64 " map=%.0f MB "
           "rounds=%u seconds=%.1f MB/s=%.1f peak_rss_MB=%.1f out=%.1f MB\n",
           (double)total / 1e6, keys, records, (double)map_bytes / 1048576.0, rounds, t1 - t0,
           (double)total / 1e6 / (t1 - t0), (double)ru.ru_maxrss / 1024.0,
           (double)log_size_bytes(l) / 1e6);
    log_close(l);
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        rv = rounds_check(argv[0], keys, vsize, records, upto);
        fflush(NULL);
        _exit(rv);
    }
    rv = rounds_child_status(pid);
    printf("verified=%s\n", rv == 0 ? "yes" : "NO");
    return rv == 0 ? 0 : 1;
}

/* One job over a log of random values: see the top of the file. */
static int single_main(int argc, char **argv)
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
    rss_before = bench_peak_rss_kb();
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
           (double)st.bytes_in / 1e6 / (t4 - t1), (double)bench_peak_rss_kb() / 1024.0,
           (double)rss_before / 1024.0);
    log_close(l);
    free(val);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--rounds") == 0) {
        logger_set_level(LOGGER_WARN);
        return rounds_main(argc - 2, argv + 2);
    }
    return single_main(argc, argv);
}
