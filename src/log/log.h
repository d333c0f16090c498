/* One topic's local segmented log: open/recover, append, read, truncate,
 * roll, retention. Knows nothing of Raft or sockets.
 *
 * A log is a directory of segments named by their base offset:
 *   00000000000000000000.seg   batches, back to back (lib/batch.h format)
 *   00000000000000000000.idx   sparse offset index (rebuilt if missing/bad)
 *   00000000000000000000.tix   sparse time index   (rebuilt if missing/bad)
 * The highest segment is the active one; all others are sealed (immutable,
 * fsynced when sealed). docs/disk-format.md has the byte layouts.
 *
 * Threading: a log is used by one thread at a time (the node's loop).
 *
 * Durability: log_append writes to the page cache only. log_sync makes
 * everything appended so far durable (data, indexes, directory). After a
 * crash the log recovers to a whole-batch boundary at or after the last
 * synced position.
 *
 * Errors: functions return 0 or a TALLY_* code and fill @errmsg (size
 * ERR_MSG_SIZE, may be NULL). A failed write or fsync is sticky: every
 * later append/sync returns TALLY_IOERR (never retry an fsync and assume
 * the data is safe). */
#ifndef TALLY_LOG_LOG_H_
#define TALLY_LOG_LOG_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The one rule for a segment size, the node's segment_bytes setting and a
 * topic's --segment-bytes alike: 4 KiB to 1 GiB. */
#define LOG_SEGMENT_BYTES_MIN 4096u
#define LOG_SEGMENT_BYTES_MAX (1u << 30)

struct log_config {
    uint64_t segment_bytes;      /* roll when the active segment would exceed this */
    int64_t segment_ms;          /* roll when the active segment's first batch is older; 0 = never */
    uint32_t index_interval_bytes; /* one index entry per this many segment bytes */
    int64_t retention_ms;        /* log_retain: delete sealed segments older; -1 = keep */
    int64_t retention_bytes;     /* log_retain: keep total size under; -1 = keep */
};

/* Defaults: 64 MiB segments, no age roll, index every 4 KiB, keep all. */
void log_config_init(struct log_config *cfg);

struct tally_log;

/* Open (creating if needed) the log in directory @dir (copied). Recovery:
 * only the active segment is scanned; a torn or corrupt tail is truncated
 * to the last whole batch (logged at WARN); a missing or damaged index is
 * rebuilt from its segment. A sealed segment whose size or last batch does
 * not check out, or a gap between segments, fails the open with
 * TALLY_CORRUPT naming the file (and position). A file or batch written in
 * a format version this build does not know fails it with TALLY_VERSION
 * (nothing is truncated). TALLY_INVAL for segment_bytes == 0.
 * @start_offset is the offset an empty new log starts at (normally 0).
 * *out is owned by the caller: log_close. */
int log_open(const char *dir, const struct log_config *cfg, uint64_t start_offset,
             struct tally_log **out, char *errmsg);

/* Close without syncing (log_sync first for a clean shutdown). */
void log_close(struct tally_log *l);

/* Offset the next appended batch must have as its base_offset. */
uint64_t log_next_offset(const struct tally_log *l);
/* First offset still stored (after retention/truncation of the front). */
uint64_t log_start_offset(const struct tally_log *l);
/* raft_index of the last batch in the log, 0 if empty. */
uint64_t log_last_raft_index(const struct tally_log *l);
/* Bytes in all segments, and number of segments. */
uint64_t log_size_bytes(const struct tally_log *l);
unsigned log_segment_count(const struct tally_log *l);

/* Append one complete, stamped batch (batch_verify must pass and its
 * base_offset must equal log_next_offset(), else TALLY_INVAL). Rolls the
 * active segment first if the batch would not fit or the segment is too
 * old (@now_ms). The bytes are copied. */
int log_append(struct tally_log *l, const void *batch, size_t len, int64_t now_ms, char *errmsg);

/* Make everything appended so far durable: fsync data and index files and
 * the directory (only when names changed since the last directory fsync). */
int log_sync(struct tally_log *l, char *errmsg);

/* As log_sync, and also write the active segment's final index entry,
 * as sealing it would: for a log that is done being written and whose
 * segments become sealed ones of another log (backfill). Appending
 * afterwards is allowed (the entry is merely redundant). */
int log_seal(struct tally_log *l, char *errmsg);

/* A duplicate of the active segment's descriptor (the caller closes it),
 * or -1 with errno set: a snapshot fsyncs it from another thread to make
 * everything appended so far durable without holding up this one. */
int log_dup_active(const struct tally_log *l);

/* Whether the active segment was written since its last fsync (sealed
 * segments are synced when sealed): a snapshot fsyncs only such logs. */
bool log_unsynced(const struct tally_log *l);

/* Where the batches starting at @offset lie. The first batch is the one
 * that contains @offset (it may start before it: readers skip records
 * below the offset they asked for). Whole batches are returned up to
 * @max_bytes, but at least one batch even if it is larger; never past one
 * segment (call again from next_offset). @fd stays valid until the next
 * call that changes the log (append that rolls, truncate, retain, close);
 * read it with pread or sendfile right away.
 * Returns 0 (len may be 0 when offset == next offset: nothing yet),
 * TALLY_OUT_OF_RANGE if offset < start or > next, TALLY_INVAL if
 * max_bytes == 0. */
struct log_slice {
    int fd;               /* segment file (borrowed) */
    off_t pos;            /* file position of the first batch */
    size_t len;           /* bytes of whole batches */
    uint64_t next_offset; /* offset after the last batch in the slice */
    uint64_t records;     /* records in its batches (from their headers) */
};
int log_read(struct tally_log *l, uint64_t offset, size_t max_bytes, struct log_slice *out,
             char *errmsg);

/* Convenience: read the slice into a malloc'd buffer (*out owned by the
 * caller, free()). Every batch copied is verified (both checksums). */
int log_read_copy(struct tally_log *l, uint64_t offset, size_t max_bytes, void **out,
                  size_t *len, uint64_t *next_offset, char *errmsg);
/* The same, and *pos: the file position of the first batch copied in its
 * segment (the batches follow each other from there), for a reader that
 * remembers where a batch lies (log_segment_at). */
int log_read_copy_at(struct tally_log *l, uint64_t offset, size_t max_bytes, void **out,
                     size_t *len, uint64_t *next_offset, uint64_t *pos, char *errmsg);

/* The file position of the last batch appended, in the active segment
 * (0 when the log is empty). */
uint64_t log_last_batch_pos(const struct tally_log *l);

/* The segment file holding @offset, for a reader that already knows where
 * in it to read (a position from log_read, log_read_copy_at or
 * log_last_batch_pos, taken while that segment held @offset): *fd as
 * log_read's slice (borrowed, valid until the next change of the log),
 * *size the bytes of the file that belong to the log. No index is looked
 * at and nothing is read: the caller checks what it reads there (a
 * segment may have been rewritten by compaction since, which keeps
 * offsets but moves batches). *checked: every batch of this file had
 * both checksums verified by this process (it was written here through
 * log_append, or scanned whole at open as the active segment); false for
 * a sealed segment found at open and for a compacted copy, whose batches
 * a reader must verify itself before it trusts part of one.
 * TALLY_OUT_OF_RANGE outside [start, next). */
int log_segment_at(struct tally_log *l, uint64_t offset, int *fd, uint64_t *size,
                   bool *checked, char *errmsg);

/* First offset whose batch has max_timestamp >= @ts_ms (so the record
 * itself may need a scan within the batch); log_next_offset() if none. */
int log_find_time(struct tally_log *l, int64_t ts_ms, uint64_t *offset, char *errmsg);

/* Remove every batch holding an offset >= @offset (a batch straddling the
 * offset is removed whole, so the new next offset, returned in *next, may
 * be below @offset). Deletes later segments; durable on return (file,
 * index and directory fsynced). @offset >= next is a no-op;
 * @offset < start is TALLY_OUT_OF_RANGE. */
int log_truncate(struct tally_log *l, uint64_t offset, uint64_t *next, char *errmsg);

/* Retention plan: the start offset the log would have after deleting its
 * sealed segments older than retention_ms (judged by the segment's max
 * timestamp against @now_ms) and, oldest first, while the total size
 * exceeds retention_bytes: the base of the first segment kept (never past
 * the active segment). Changes nothing: in a cluster the leader computes
 * it and every node applies it with log_trim. */
uint64_t log_retention_start(const struct tally_log *l, int64_t now_ms);

/* Highest record timestamp in the log (INT64_MIN when empty). */
int64_t log_max_timestamp(const struct tally_log *l);

/* Delete the sealed segments that hold only offsets below @offset (the
 * active segment always stays; records below @offset in the first kept
 * segment are the caller's to hide). *deleted gets the number removed.
 * The directory is not fsynced (the next log_sync or seal does it): after
 * a crash the removed segments may be back, and the caller trims again. */
int log_trim(struct tally_log *l, uint64_t offset, unsigned *deleted, char *errmsg);

/* Files of segments taken out of logs, deleted by log_removals_run on any
 * thread (unlinks and the close of the last descriptor, which frees the
 * blocks, cost the caller's thread tens of microseconds to milliseconds
 * per segment). A crash before that leaves segments the caller trims again
 * at open. */
struct log_removals;
struct log_removals *log_removals_new(void); /* NULL: out of memory */
bool log_removals_empty(const struct log_removals *rm);
/* Delete what @rm holds, close its descriptors, free it. @rm may be NULL. */
void log_removals_run(struct log_removals *rm);
/* log_trim, but the segments' files go into @rm (when not NULL; without
 * memory for that, they are deleted at once). */
int log_trim_to(struct tally_log *l, uint64_t offset, struct log_removals *rm, unsigned *deleted,
                char *errmsg);

/* Retention on this node alone (the unit tests; a cluster uses
 * log_retention_start and log_trim): log_retention_start, but
 * never deleting a segment holding an offset at or above @limit
 * (UINT64_MAX: none); *held (if not NULL) is set when such a segment was
 * due; then log_trim. */
int log_retain(struct tally_log *l, int64_t now_ms, uint64_t limit, unsigned *deleted,
               bool *held, char *errmsg);

/* Keyed compaction of sealed segments, in three steps so that the heavy
 * work runs on a worker thread while the log goes on serving:
 *   log_compact_prepare  (the log's thread) picks the sealed segments to
 *                        compact and remembers which files they were;
 *   log_compact_run      (any thread) reads them and writes compacted
 *                        copies next to them (*.cmp files, fsynced);
 *   log_compact_commit   (the log's thread) swaps the copies in for the
 *                        segments that did not change meanwhile.
 * What is kept: for every key, only its latest record in the compacted
 * range (a later record anywhere in the range wins), every record without
 * a key, and tombstones until they are delete_retention_ms old and alone
 * (no earlier record of their key left: so a tombstone outlives the values
 * it deletes by one compaction, and a crash between two segment swaps
 * cannot bring a deleted value back). Offsets
 * never change: a batch keeps its base offset and span, and a run of
 * batches that lost every record becomes one gap batch (lib/batch.h).
 * Crash safety: each segment is either the old file or the new one; index
 * files of a swapped segment are removed first and rebuilt if the crash
 * comes before the new ones are in place; leftovers are removed at open.
 * Pace: with io_rate, the job sleeps (on its own thread) whenever the
 * bytes it read and wrote so far are ahead of that rate, and it logs a
 * progress line every COMPACT_PROGRESS_S seconds.
 * Memory: the key map takes at most map_bytes (a 32-byte slot per key, at
 * most 3/4 of the slots used, so up to map_bytes / 43 keys); where it fills, the
 * plan is cut after the last segment whose keys all fit. */
struct log_compact_params {
    uint64_t upto;               /* compact only segments that end at or below this offset */
    int64_t now_ms;              /* the clock for the two ages below */
    int64_t min_lag_ms;          /* only segments whose newest record is this old */
    int64_t delete_retention_ms; /* remove tombstones this old (-1: keep them) */
    size_t map_bytes;            /* memory for the key map */
    uint64_t tombstone_limit;    /* if not 0: remove tombstones at offsets below
                                  * this instead of by age (a cluster's decision,
                                  * the same on every node); -1 above still keeps */
    uint64_t io_rate;            /* bytes per second the job reads and writes at
                                  * most, on average (it sleeps); 0: no limit */
};

struct log_compact_stats {
    unsigned segments;       /* segments read */
    unsigned rewritten;      /* segments replaced by a compacted copy */
    uint64_t records_in;     /* records read */
    uint64_t records_out;    /* records kept */
    uint64_t bytes_in;       /* size of the segments read */
    uint64_t bytes_out;      /* their size after the swap */
    uint64_t upto;           /* offset the compacted range ends at */
    unsigned merged;         /* segments merged into the one before them (and removed) */
    uint64_t bytes_io;       /* bytes the job read and wrote (what io_rate paces) */
    uint64_t paced_ms;       /* time it slept to keep to io_rate */
};

struct log_compaction;

/* Plan a compaction: the sealed segments from the start of the log that
 * end at or below p->upto and are at least p->min_lag_ms old, provided
 * some of them were sealed since the last committed compaction (the log
 * remembers how far that one went; after an open, everything is new).
 * *out is NULL when there is nothing to do; else owned by the caller
 * (log_compact_free). */
int log_compact_prepare(struct tally_log *l, const struct log_compact_params *p,
                        struct log_compaction **out, char *errmsg);

/* Do the work (any thread; it touches no state of the log). Returns 0, or
 * TALLY_CORRUPT for a bad batch (naming file and position: nothing is
 * swapped), an I/O error, TALLY_NOMEM. */
int log_compact_run(struct log_compaction *c, char *errmsg);

/* Ask a running log_compact_run to stop at its next batch (any thread):
 * it then returns TALLY_SHUTDOWN and leaves no file behind. */
void log_compact_cancel(struct log_compaction *c);

/* Swap the compacted copies in (the log's thread), skipping segments that
 * retention, truncation or a reset removed meanwhile. @st (may be NULL)
 * gets what was done. A failed rename or fsync fails the log (sticky). */
int log_compact_commit(struct tally_log *l, struct log_compaction *c,
                       struct log_compact_stats *st, char *errmsg);

/* Free the job, remove any of its files that were not swapped in, and
 * close the replaced segment files (any thread: closing the last
 * descriptor of a replaced file frees its disk blocks, which takes time). */
void log_compact_free(struct log_compaction *c);

/* Drop everything and restart empty at @offset (used when a snapshot from
 * the leader replaces a log that is behind it). */
int log_reset(struct tally_log *l, uint64_t offset, char *errmsg);

/* Offline check of a log directory: every batch checksum of every segment,
 * and every index entry against its segment. Reports each problem through
 * @report (file name, file position, message) and returns the number of
 * problems found (0 = healthy), or -1 if the directory cannot be read. */
typedef void (*log_report_fn)(void *arg, const char *file, uint64_t pos, const char *msg);
int log_verify_dir(const char *dir, log_report_fn report, void *arg);

/* What log_verify_dir_stats looked at. */
struct log_verify_stats {
    unsigned segments;      /* segment files opened */
    uint64_t batches;       /* batches whose checksums passed */
    uint64_t records;       /* records decoded from them */
    uint64_t index_entries; /* index entries checked (both kinds) */
};

/* As log_verify_dir, also filling @st (may be NULL). Read-only: nothing in
 * @dir is changed, unlike log_open, which repairs. */
int log_verify_dir_stats(const char *dir, log_report_fn report, void *arg,
                         struct log_verify_stats *st);

/* Read-only, sequential reading of a log directory for offline tools
 * (tally log dump): no repair, no index needed. */
struct log_scan;

/* Start at the batch holding @from (batches that end below it are
 * skipped). *out is owned by the caller: log_scan_close. Returns 0,
 * TALLY_NOTFOUND if @dir has no segment files, or an I/O error. */
int log_scan_open(const char *dir, uint64_t from, struct log_scan **out, char *errmsg);

/* The next batch, checksums verified: 0 with *batch (borrowed until the
 * next call) and *len, *file (segment file name, borrowed likewise) and
 * *pos (its position in that file). TALLY_EOF after the last batch.
 * TALLY_CORRUPT (or TALLY_VERSION) for a bad batch, with *file and *pos
 * naming it: the rest of that segment is skipped and the next call goes
 * on with the next segment. */
int log_scan_next(struct log_scan *sc, const uint8_t **batch, size_t *len, const char **file,
                  uint64_t *pos, char *errmsg);

void log_scan_close(struct log_scan *sc);

/* The most read-only (sealed) segment files kept open by all logs of the
 * process together (0: no limit, the default). Sealed segments are opened
 * when read and closed, least recently used log first, past this number;
 * each log's active segment stays open. Loop thread only. */
void log_set_fd_cache(size_t n);

#endif
