/* One segment file: its header, appending batches, walking batch headers,
 * scanning and validating every batch. The byte layout is at the top of
 * seg.c and in docs/disk-format.md. A segment knows nothing of indexes or
 * of the other segments; log.c puts them together. */
#ifndef TALLY_LOG_SEG_H_
#define TALLY_LOG_SEG_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/batch.h"
#include "lib/err.h"

#define SEG_MAGIC "TLYS"
#define SEG_VERSION 1
#define SEG_HEADER_SIZE 32
/* Index files store positions as u32, so a segment never grows past this. */
#define SEG_MAX_SIZE 0xffffffffu
/* Room for "00000000000000000000.seg" and the longer temporary names. */
#define SEG_NAME_SIZE 40

struct seg {
    uint64_t base;            /* base offset: from the file name and the header */
    uint64_t next;            /* offset after the last batch (base if empty) */
    uint64_t size;            /* bytes of the file that belong to the log */
    int64_t first_ts;         /* first_timestamp of the first batch (INT64_MIN: unknown/empty) */
    int64_t max_ts;           /* highest max_timestamp of its batches (INT64_MIN if empty) */
    uint64_t last_pos;        /* position of the last batch (0 if empty) */
    uint64_t last_base;       /* base offset of the last batch (base if empty) */
    uint64_t last_raft_index; /* raft_index of the last batch (0 if empty) */
    int fd;                   /* open descriptor, -1 when closed */
    bool writable;            /* opened read-write */
    bool dirty;               /* written since the last fsync */
    char name[SEG_NAME_SIZE]; /* file name, e.g. "00000000000000000042.seg" */
    char *path;               /* directory + name (owned) */
};

/* "%020llu.<ext>" into @out (at least SEG_NAME_SIZE bytes). */
void seg_file_name(char *out, uint64_t base, const char *ext);

/* Parse a file name of the form 20 digits, dot, extension. On success
 * *base is the number and *ext points into @name after the dot. */
bool seg_parse_name(const char *name, uint64_t *base, const char **ext);

/* Join @dir and @name into a new malloc'd string (NULL on OOM). */
char *seg_join(const char *dir, const char *name);

/* Empty, closed segment with base offset @base. */
void seg_init(struct seg *s, uint64_t base);

/* Create the file for @s->base in @dir (it must not exist), write its
 * header and fsync the file (not the directory: the caller does that once
 * for all the names it changed). */
int seg_create(struct seg *s, const char *dir, char *errmsg);

enum {
    SEG_OPEN_WRITE = 1 << 0,  /* read-write (the active segment) */
    SEG_OPEN_REPAIR = 1 << 1, /* rewrite a torn header of a file with no batches */
};

/* Open the existing file for @s->base in @dir and check its header: bad
 * magic, checksum or base offset is TALLY_CORRUPT, an unknown format
 * version TALLY_VERSION. s->size is the file size; the batch fields are
 * left for the caller (scan or index) to fill. */
int seg_open(struct seg *s, const char *dir, unsigned flags, char *errmsg);

/* Close the descriptor and free the path. */
void seg_close(struct seg *s);

/* Descriptors are opened lazily: a segment whose descriptor was released
 * keeps its path, and every function below that needs the file reopens it
 * (read-write if s->writable). seg_release closes the descriptor of a
 * clean segment (false, and nothing done, for a dirty or closed one: a
 * write-back error reaches only descriptors open when it happened). */
int seg_ensure_open(struct seg *s, char *errmsg);
bool seg_release(struct seg *s);

/* Detach the descriptor (-1 if none) for the caller to close. */
int seg_take_fd(struct seg *s);

/* Read-only segment descriptors open in this process (any thread). */
size_t seg_readonly_open(void);

/* Append a verified batch (@h is its decoded header) at s->size and update
 * the batch fields. Page cache only: see seg_sync. */
int seg_append(struct seg *s, const void *batch, size_t len, const struct batch_header *h,
               char *errmsg);

/* fsync the file if anything was written since the last sync. */
int seg_sync(struct seg *s, char *errmsg);

/* Cut the file to @size (the caller fixes the batch fields). */
int seg_truncate(struct seg *s, uint64_t size, char *errmsg);

/* Read exactly @n bytes at @pos; fewer bytes in the file is TALLY_CORRUPT. */
int seg_read(struct seg *s, uint64_t pos, void *buf, size_t n, char *errmsg);

/* Reads batch headers one after another through a window buffer, so that
 * walking many small batches costs few system calls. Only the header
 * checksum is verified, not the payload. */
struct seg_walker {
    struct seg *s;     /* segment read (borrowed) */
    uint8_t *buf;      /* window buffer (borrowed) */
    size_t cap;        /* its size, at least BATCH_HEADER_SIZE */
    uint64_t win_pos;  /* file position of buf[0] */
    size_t win_len;    /* valid bytes in buf */
};

void seg_walker_init(struct seg_walker *w, struct seg *s, uint8_t *buf, size_t cap);

/* Decode the batch header at @pos. The batch must end at or before @end
 * (normally s->size). @ahead is how many bytes the caller expects to walk
 * from @pos, as a hint for the window size. Errors: TALLY_CORRUPT or
 * TALLY_VERSION, with "segment NAME: position P: what". */
int seg_walk_header(struct seg_walker *w, uint64_t pos, uint64_t end, size_t ahead,
                    struct batch_header *h, char *errmsg);

/* Outcome of seg_scan. */
struct seg_scan_info {
    uint64_t end;             /* position after the last good batch */
    uint64_t next;            /* offset after the last good batch */
    uint64_t batches;         /* good batches */
    uint64_t records;         /* records in them (header counts) */
    int64_t first_ts;         /* first_timestamp of the first batch, INT64_MIN if none */
    int64_t max_ts;           /* highest max_timestamp, INT64_MIN if none */
    uint64_t last_pos;        /* position of the last good batch, 0 if none */
    uint64_t last_base;       /* its base offset */
    uint64_t last_raft_index; /* its raft index */
    int bad;                  /* 0 if every byte up to the end was good, else
                               * TALLY_CORRUPT or TALLY_VERSION */
    bool torn;                /* the problem is an incomplete batch at the end */
    uint64_t bad_pos;         /* position of the first bad byte */
    char what[ERR_MSG_SIZE];  /* what is wrong, e.g. "batch payload checksum mismatch" */
    char why[ERR_MSG_SIZE];   /* the same as "segment NAME: position P: what" */
};

/* Called for each good batch with its position, header and bytes
 * (borrowed for the call). A non-zero return stops the scan and is
 * returned by seg_scan. */
typedef int (*seg_visit_fn)(void *arg, uint64_t pos, const struct batch_header *h,
                            const uint8_t *batch, char *errmsg);

/* Read and fully verify (both checksums, offsets contiguous from
 * @expect_offset) every batch from @from up to @end. Stops at the first bad
 * batch and describes it in @info; data problems are not an error of the
 * call. Returns 0, an I/O or memory error, or what @visit returned. */
int seg_scan(struct seg *s, uint64_t from, uint64_t end, uint64_t expect_offset,
             seg_visit_fn visit, void *arg, struct seg_scan_info *info, char *errmsg);

#endif
