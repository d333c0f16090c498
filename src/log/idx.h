/* The sparse offset index (.idx) and time index (.tix) of one segment.
 *
 * Both files hold one entry per indexed batch, at the same batches: the
 * first batch of the segment, then the first batch starting at least
 * index_interval_bytes after the previous entry, and, once the segment is
 * sealed, its last batch. In memory one array serves both.
 *
 * An index is a cache: it is rebuilt from its segment whenever it is
 * missing, short or inconsistent, and every entry used is checked against
 * the batch header it points at (log.c), so it is never trusted over the
 * segment. The byte layout is at the top of idx.c. */
#ifndef TALLY_LOG_IDX_H_
#define TALLY_LOG_IDX_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDX_MAGIC "TLYX"
#define IDX_VERSION 1
#define IDX_HEADER_SIZE 24
#define IDX_KIND_OFFSET 'O'
#define IDX_KIND_TIME 'T'
#define IDX_OFFSET_ENTRY_SIZE 8
#define IDX_TIME_ENTRY_SIZE 16
/* "No entry" result of the lookups. */
#define IDX_NONE ((size_t)-1)

struct idx_entry {
    uint32_t rel; /* batch base_offset - segment base offset */
    uint32_t pos; /* position of the batch in the segment file */
    int64_t ts;   /* highest max_timestamp from the segment start through this batch */
};

struct idx {
    struct idx_entry *e; /* entries, rel and pos strictly increasing (owned) */
    size_t n;            /* entries in use */
    size_t cap;          /* entries allocated */
    size_t flushed;      /* entries already written to the files; 0 means the
                          * files are rewritten from scratch at the next flush */
    bool loaded;         /* the entries are in memory */
};

void idx_init(struct idx *x);
/* Free the entries and mark the index not loaded. */
void idx_free(struct idx *x);
/* Drop every entry (the files are rewritten at the next flush). */
void idx_clear(struct idx *x);

/* Append an entry; TALLY_NOMEM. */
int idx_add(struct idx *x, uint32_t rel, uint32_t pos, int64_t ts);

/* The sparse rule: add an entry for the batch at @pos if it is the first
 * one or lies at least @interval bytes after the last entry. */
int idx_maybe_add(struct idx *x, uint32_t interval, uint32_t rel, uint32_t pos, int64_t ts);

/* Last entry with rel <= @rel, or IDX_NONE. */
size_t idx_find(const struct idx *x, uint32_t rel);

/* Last entry with ts < @ts, or IDX_NONE. The running maximum makes ts
 * non-decreasing, so every batch up to that entry is older than @ts. */
size_t idx_find_time(const struct idx *x, int64_t ts);

/* Drop the entries of batches at or after @pos (segment truncation). */
void idx_cut(struct idx *x, uint64_t pos);

/* Write the entries not yet in the files (all of them, with headers and
 * an exact file length, when x->flushed == 0), then fsync them if @sync.
 * Files are created when missing. */
int idx_flush(struct idx *x, const char *dir, uint64_t base, bool sync, char *errmsg);

/* Replace both files with the entries, durably: write temporary files,
 * fsync, rename over the old ones (the caller fsyncs the directory). */
int idx_replace(struct idx *x, const char *dir, uint64_t base, char *errmsg);

/* Write both files of the index as "<name>.<suffix>" (e.g. .idx.cmp),
 * complete and fsynced, for a caller that renames them into place. */
int idx_write_as(const struct idx *x, const char *dir, uint64_t base, const char *suffix,
                 char *errmsg);

/* Facts about the segment that a loaded index must agree with. */
struct idx_bounds {
    uint64_t base;     /* segment base offset */
    uint64_t next;     /* offset after its last batch */
    uint64_t size;     /* its size in bytes */
    uint64_t last_pos; /* position of its last batch (sealed: the last entry) */
};

/* Load both files into memory and check them against each other and
 * against @b. Returns 0, TALLY_NOTFOUND (a file is missing), TALLY_CORRUPT
 * (damaged: the message says how), or an I/O error. On error the index is
 * left empty. */
int idx_load(struct idx *x, const char *dir, const struct idx_bounds *b, char *errmsg);

/* Cheap check used when a log is opened: read only the headers and the
 * last entry of each file, which must agree. Same returns as idx_load. */
int idx_load_tail(const char *dir, uint64_t base, struct idx_entry *last, size_t *n,
                  char *errmsg);

/* One index file as stored, for the offline verifier: header checked
 * (TALLY_NOTFOUND, TALLY_CORRUPT, TALLY_VERSION), entries returned as they
 * are (for the offset kind, ts is 0). *e is owned by the caller (free());
 * *stray is the number of bytes after the last whole entry. */
int idx_read_file(const char *dir, uint64_t base, int kind, struct idx_entry **e, size_t *n,
                  size_t *stray, char *errmsg);

/* File name of an index kind for a segment: "<20 digits>.idx" / ".tix". */
void idx_file_name(char *out, uint64_t base, int kind);

/* Remove both files (missing ones are fine). */
int idx_remove(const char *dir, uint64_t base, char *errmsg);

#endif
