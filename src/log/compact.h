/* Inside the log layer: the compaction job shared by compact_swap.c
 * (which plans it and swaps its result in, on the log's thread) and
 * compact.c (which does the heavy reading and writing, on any thread). Not
 * a public header: the API is in log.h. */
#ifndef TALLY_LOG_COMPACT_H_
#define TALLY_LOG_COMPACT_H_

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "log/idx.h"
#include "log/log.h"

/* Suffix of the files a compaction writes before they replace the
 * originals: 00000000000000000042.seg.cmp, .idx.cmp, .tix.cmp. A leftover
 * one (a crash before the swap) is removed when the log is opened. */
#define COMPACT_SUFFIX "cmp"

/* The key map's smallest size: 1024 slots of 32 bytes. A job is refused a
 * smaller map_bytes (log_compact_prepare), so the map never exceeds it. */
#define COMPACT_MIN_SLOTS 1024u
#define COMPACT_SLOT_BYTES 32u

/* How often a job logs how far it got (seconds). */
#define COMPACT_PROGRESS_S 10

/* One sealed segment of the job. */
struct compact_seg {
    /* Planned (log's thread): which file, as it was. */
    uint64_t base;
    uint64_t next;            /* offset after its last batch */
    uint64_t size;
    dev_t dev;
    ino_t ino;
    bool cold;                /* not all in the page cache when the job began */
    /* Results (worker): the new file, when records were removed. */
    bool rewritten;
    uint64_t new_size;
    struct idx x;             /* index of the new file (loaded) */
    int64_t first_ts, max_ts;
    uint64_t last_pos, last_base, last_raft_index;
    /* Merging (worker): a leader's copy also holds the batches of the
     * n_merged segments after it, which are marked merged and removed
     * when the leader is swapped in (compact__merge). */
    unsigned n_merged;
    bool merged;
    /* After the swap: the replaced file's descriptor, closed by
     * log_compact_free, because the close of the last reference to an
     * unlinked file frees its blocks (a second or so for gigabytes on
     * ext4), which must not happen on the log's thread. */
    int old_fd;
};

struct log_compaction {
    char *dir;                      /* the log's directory (owned) */
    struct log_compact_params p;    /* copied */
    uint32_t index_interval;        /* the log's sparse index interval */
    uint64_t merge_bytes;           /* merged copies stay at or below this size */
    struct compact_seg *segs;       /* oldest first */
    size_t n;                       /* segments planned; the worker may cut it */
    size_t map_from;                /* the first segment whose keys go into the map:
                                     * the first one above the log's clean_upto */
    bool ran;                       /* compact_run finished without error */
    atomic_bool cancel;             /* log_compact_cancel: stop soon */
    struct log_compact_stats st;    /* what the worker did */
    /* Pacing to p.io_rate, and the progress lines (compact__pace). */
    uint64_t start_ns;              /* when the worker began */
    uint64_t pace_start_ns;         /* the pace is counted from here ... */
    uint64_t pace_bytes;            /* ... with these bytes read and written since */
    uint64_t progress_ns;           /* when the next progress line is due */
    const char *doing;              /* for that line: "mapping keys", ... */
};

/* The worker: build the key map over the planned segments from map_from
 * on (cutting the plan where the map fills), then write a compacted copy of every segment
 * that loses records, fsynced, with its index files, and finally merge
 * runs of consecutive segments whose results fit in merge_bytes together
 * into one copy named after the first (so segments that compaction
 * emptied or shrank do not pile up, each with its files and
 * descriptors). Touches only @c and the files. */
int compact_run(struct log_compaction *c, char *errmsg);

/* Remove the .cmp files the job may have left (missing ones are fine). */
void compact_remove_outputs(struct log_compaction *c);

#endif
