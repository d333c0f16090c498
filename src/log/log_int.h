/* What the files of the log layer (log.c, compact_swap.c, verify.c,
 * scan.c) share and nothing else may use: the log's state and the helpers
 * one file calls in another. The layer's interface is log.h. */
#ifndef TALLY_LOG_LOG_INT_H_
#define TALLY_LOG_LOG_INT_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "log/idx.h"
#include "log/log.h"
#include "log/seg.h"

struct log__seg {
    struct seg s; /* the segment file and what we know of its batches */
    struct idx x; /* its index (always loaded for the active segment) */
    bool sealed;  /* immutable and fsynced; every segment but the last */
    bool checked; /* every batch in the file passed batch_verify in this
                   * process: created here (log_append verifies each
                   * batch), or the active segment scanned at open; not a
                   * sealed segment found at open, nor a compacted copy */
};

struct tally_log {
    char *dir;                     /* directory (owned) */
    struct log_config cfg;         /* copied at open */
    struct log__seg *segs;         /* oldest first; the last one is active */
    size_t n;                      /* segments */
    size_t cap;                    /* allocated */
    uint8_t *walk_buf;             /* LOG__WALK_BUF bytes for header walks */
    bool dir_dirty;                /* names changed since the last directory fsync */
    uint64_t clean_upto;           /* the last committed compaction covered offsets below */
    struct tally_log *lru_prev;    /* the logs holding read-only segment */
    struct tally_log *lru_next;    /* descriptors, most recently used first */
    bool in_lru;                   /* (log__lru_use) */
    int failed;                    /* first durability error, 0 if none */
    char failed_msg[ERR_MSG_SIZE]; /* its message */
};

/* log.c */

/* Fill @errmsg with "@what: out of memory", return TALLY_NOMEM. */
int log__nomem(char *errmsg, const char *what);

/* The kind of a file in a log directory: 's' segment, 'i' index, 't'
 * leftover of an interrupted rewrite, 0 not ours; *base its offset. */
int log__classify(const char *name, uint64_t *base);

/* now - then > limit, without overflow for any values. */
bool log__older(int64_t now, int64_t then, int64_t limit);

/* Mark @l failed after a durability error and return @rv; every later
 * change is refused (log__check_failed). */
int log__fail(struct tally_log *l, int rv, const char *errmsg);
int log__check_failed(const struct tally_log *l, char *errmsg);

/* @l just used its sealed segments: make it the most recently used log
 * and release the descriptors of the least recently used other logs while
 * more read-only descriptors are open than the cache allows
 * (log_set_fd_cache). Loop thread only. */
void log__lru_use(struct tally_log *l);

/* Close the segment's file and free its index. */
void log__seg_free(struct log__seg *ls);

/* Remove the segments that merged segment @i covers (a crash between the
 * two steps of a merging compaction). */
int log__drop_merged(struct tally_log *l, size_t i, char *errmsg);

/* verify.c: @msg without its "segment NAME: " or "index NAME: " prefix. */
const char *log__strip(const char *msg, const char *name);

#endif
