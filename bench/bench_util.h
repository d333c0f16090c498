/* Helpers shared by the in-process benchmarks (bench-log, bench-compact,
 * bench-snapshot, bench-apply). */
#ifndef TALLY_TEST_BENCH_UTIL_H_
#define TALLY_TEST_BENCH_UTIL_H_

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Monotonic seconds. */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A size with an optional K, M or G (powers of 1024): 0, or -1 if bad. */
static inline int bench_parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s) {
        return -1;
    }
    switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    default: break;
    }
    if (*end != '\0') {
        return -1;
    }
    *out = v;
    return 0;
}

/* Peak resident set size of this process, in kB (VmHWM), or -1. */
static inline long bench_peak_rss_kb(void)
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

#endif
