/* One topic's segmented log: the log.h API over seg.c (files of batches)
 * and idx.c (their sparse indexes).
 *
 * The happy path for an append is:
 *   1. verify the batch and that it starts at the log's next offset;
 *   2. roll if the active segment is full or too old: seal it (final index
 *      entry, fsync data and indexes), create the next segment file (header
 *      fsynced), fsync the directory;
 *   3. write the batch at the end of the active segment (page cache) and
 *      add an index entry in memory if one is due.
 * log_sync then fsyncs the active segment, writes and fsyncs its pending
 * index entries, and fsyncs the directory if names changed.
 *
 * Possible failure modes are:
 *   - a bad batch or wrong base offset: TALLY_INVAL, nothing written;
 *   - a failed write, fsync, truncate, rename or unlink: the log is marked
 *     failed and every later change returns TALLY_IOERR (reads still work),
 *     because after a failed fsync the page cache may have dropped the data
 *     and nothing tells us what reached the disk.
 *
 * Recovery (log_open) looks at the last segment only: it is scanned batch
 * by batch with both checksums, and a torn or corrupt tail is cut off at
 * the last whole batch. A sealed segment costs a few small reads: its
 * header, the tail of its index, and its last batch, which must end
 * exactly at the end of the file and be followed by the next segment's
 * base offset. Only a missing or damaged index makes it read a sealed
 * segment in full (to rebuild the index).
 *
 * Beside this file: compact_swap.c plans a keyed compaction and swaps its
 * copies in (compact.c makes them on a worker); verify.c (log_verify_dir)
 * and scan.c (log_scan_*) are the offline readers of a log directory. What
 * they share with this file is in log_int.h. */
#include "log/log_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/batch.h"
#include "lib/err.h"
#include "lib/fs.h"
#include "lib/logger.h"
#include "log/compact.h"
#include "log/idx.h"
#include "log/seg.h"

#define LOG__DEFAULT_SEGMENT_BYTES (64u << 20)
#define LOG__DEFAULT_INDEX_INTERVAL 4096u
/* Window of header walks: covers many small batches per read. */
#define LOG__WALK_BUF (64u << 10)

void log_config_init(struct log_config *cfg)
{
    cfg->segment_bytes = LOG__DEFAULT_SEGMENT_BYTES;
    cfg->segment_ms = 0;
    cfg->index_interval_bytes = LOG__DEFAULT_INDEX_INTERVAL;
    cfg->retention_ms = -1;
    cfg->retention_bytes = -1;
}

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

static struct log__seg *log__active(struct tally_log *l)
{
    return &l->segs[l->n - 1];
}

static bool log__empty_seg(const struct log__seg *ls)
{
    return ls->s.size <= SEG_HEADER_SIZE;
}

/* now - then > limit, without overflow for any values (timestamps come
 * from disk and from callers). */
bool log__older(int64_t now, int64_t then, int64_t limit)
{
    return now > then && (uint64_t)now - (uint64_t)then > (uint64_t)limit;
}

/* Mark the log failed after a durability error and return @rv. */
int log__fail(struct tally_log *l, int rv, const char *errmsg)
{
    if (l->failed == 0) {
        l->failed = rv;
        snprintf(l->failed_msg, sizeof l->failed_msg, "%s", errmsg != NULL ? errmsg : "");
        TLOG_ERROR("log", "%s: failed, refusing further writes: %s", l->dir, l->failed_msg);
    }
    return rv;
}

int log__check_failed(const struct tally_log *l, char *errmsg)
{
    if (l->failed != 0) {
        err_printf(errmsg, "log failed earlier, refusing writes until reopened: %s",
                   l->failed_msg);
        return TALLY_IOERR;
    }
    return 0;
}

int log__nomem(char *errmsg, const char *what)
{
    err_printf(errmsg, "%s: out of memory", what);
    return TALLY_NOMEM;
}

/* Make room for one more segment in the array. */
static int log__reserve(struct tally_log *l, char *errmsg)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 8;
        struct log__seg *ns = realloc(l->segs, ncap * sizeof *ns);
        if (ns == NULL) {
            return log__nomem(errmsg, "grow segment list");
        }
        l->segs = ns;
        l->cap = ncap;
    }
    return 0;
}

/* The descriptor cache. Sealed segments are immutable and were fsynced
 * when sealed, so their descriptors can be closed at any time and opened
 * again when read (seg_ensure_open). The logs that hold some are kept in
 * least-recently-used order; when more read-only descriptors are open
 * than log__fd_cap, the least recently used logs release theirs. Active
 * segments keep theirs (one per topic): one that is dirty must, until its
 * fsync (seg_release). */
static struct {
    struct tally_log *head, *tail;
    size_t cap; /* 0: no limit */
} log__lru;

void log_set_fd_cache(size_t n)
{
    log__lru.cap = n;
}

static void log__lru_unlink(struct tally_log *l)
{
    if (!l->in_lru) {
        return;
    }
    if (l->lru_prev != NULL) {
        l->lru_prev->lru_next = l->lru_next;
    } else {
        log__lru.head = l->lru_next;
    }
    if (l->lru_next != NULL) {
        l->lru_next->lru_prev = l->lru_prev;
    } else {
        log__lru.tail = l->lru_prev;
    }
    l->lru_prev = l->lru_next = NULL;
    l->in_lru = false;
}

/* Close every sealed segment's descriptor of @l. */
static void log__release_sealed(struct tally_log *l)
{
    for (size_t i = 0; i + 1 < l->n; i++) {
        if (l->segs[i].sealed) {
            (void)seg_release(&l->segs[i].s);
        }
    }
}

void log__lru_use(struct tally_log *l)
{
    log__lru_unlink(l);
    l->lru_next = log__lru.head;
    if (log__lru.head != NULL) {
        log__lru.head->lru_prev = l;
    } else {
        log__lru.tail = l;
    }
    log__lru.head = l;
    l->in_lru = true;
    while (log__lru.cap > 0 && seg_readonly_open() > log__lru.cap && log__lru.tail != l) {
        struct tally_log *victim = log__lru.tail;
        log__release_sealed(victim);
        log__lru_unlink(victim);
    }
}

void log__seg_free(struct log__seg *ls)
{
    seg_close(&ls->s);
    idx_free(&ls->x);
}

/* Last segment whose base offset is <= @offset (the caller has checked
 * offset >= start). */
static size_t log__find_seg(const struct tally_log *l, uint64_t offset)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->segs[mid].s.base <= offset) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo == 0 ? 0 : lo - 1;
}

/* ------------------------------------------------------------------------
 * Indexes
 * ------------------------------------------------------------------------ */

/* Visitor state that builds an index during a scan. */
struct log__build {
    struct idx *x;     /* index being built */
    uint64_t base;     /* segment base offset */
    uint32_t interval; /* sparse interval */
    int64_t max_ts;    /* running maximum timestamp */
};

static int log__build_visit(void *arg, uint64_t pos, const struct batch_header *h,
                            const uint8_t *batch, char *errmsg)
{
    struct log__build *b = arg;
    (void)batch;
    if (h->max_timestamp > b->max_ts) {
        b->max_ts = h->max_timestamp;
    }
    if (h->base_offset - b->base > UINT32_MAX) {
        return ERR_CORRUPT(errmsg, "position %" PRIu64 ": offset %" PRIu64
                           " too far from the segment base for its index", pos, h->base_offset);
    }
    if (idx_maybe_add(b->x, b->interval, (uint32_t)(h->base_offset - b->base), (uint32_t)pos,
                      b->max_ts) != 0) {
        return log__nomem(errmsg, "build index");
    }
    return 0;
}

/* Copy what a scan learned into the segment. */
static void log__apply_scan(struct seg *s, const struct seg_scan_info *info)
{
    s->size = info->end;
    s->next = info->next;
    s->first_ts = info->first_ts;
    s->max_ts = info->max_ts;
    s->last_pos = info->last_pos;
    s->last_base = info->batches > 0 ? info->last_base : s->base;
    s->last_raft_index = info->last_raft_index;
}

/* The final entry of a sealed segment's index: its last batch. */
static int log__index_last(struct log__seg *ls)
{
    struct idx *x = &ls->x;
    if (log__empty_seg(ls) || (x->n > 0 && x->e[x->n - 1].pos == ls->s.last_pos)) {
        return 0;
    }
    return idx_add(x, (uint32_t)(ls->s.last_base - ls->s.base), (uint32_t)ls->s.last_pos,
                   ls->s.max_ts);
}

/* Rebuild the index of a segment from its batches (every byte read and
 * checked). A bad batch in a sealed segment is TALLY_CORRUPT naming file
 * and position. The new files replace the old ones durably. */
static int log__rebuild_index(struct tally_log *l, struct log__seg *ls, char *errmsg)
{
    struct seg_scan_info info;
    struct log__build b = {&ls->x, ls->s.base, l->cfg.index_interval_bytes, INT64_MIN};
    int rv;

    idx_clear(&ls->x);
    ls->x.loaded = false;
    rv = seg_scan(&ls->s, SEG_HEADER_SIZE, ls->s.size, ls->s.base, log__build_visit, &b, &info,
                  errmsg);
    if (rv != 0) {
        return rv;
    }
    if (info.bad != 0) {
        err_printf(errmsg, "%s", info.why);
        return info.bad;
    }
    log__apply_scan(&ls->s, &info);
    if (log__index_last(ls) != 0) {
        return log__nomem(errmsg, "build index");
    }
    ls->x.loaded = true;
    if (ls->s.size > SEG_HEADER_SIZE) {
        char why[ERR_MSG_SIZE];
        /* The index is a cache: failing to store it costs a rebuild next
         * time, not data, so reads go on with the in-memory copy. */
        if (idx_replace(&ls->x, l->dir, ls->s.base, why) != 0) {
            TLOG_WARN("log", "%s: segment %s: cannot store rebuilt index: %s", l->dir,
                      ls->s.name, why);
        }
        l->dir_dirty = true;
    }
    return 0;
}

/* Load the index of a sealed segment on first use, rebuilding it if it is
 * missing or damaged. */
static int log__load_index(struct tally_log *l, struct log__seg *ls, char *errmsg)
{
    struct idx_bounds b;
    char why[ERR_MSG_SIZE];
    int rv;

    if (ls->x.loaded) {
        return 0;
    }
    b.base = ls->s.base;
    b.next = ls->s.next;
    b.size = ls->s.size;
    b.last_pos = ls->s.last_pos;
    rv = idx_load(&ls->x, l->dir, &b, why);
    if (rv == 0) {
        return 0;
    }
    if (rv != TALLY_CORRUPT && rv != TALLY_NOTFOUND && rv != TALLY_VERSION) {
        err_printf(errmsg, "%s", why);
        return rv;
    }
    TLOG_WARN("log", "%s: rebuilding index of segment %s: %s", l->dir, ls->s.name, why);
    return log__rebuild_index(l, ls, errmsg);
}

/* Find the batch holding @offset in segment @ls (the first batch whose
 * last offset is >= @offset): its position and header. An index entry that
 * does not match the batch it points at makes us rebuild the index once;
 * a bad header met while walking is TALLY_CORRUPT naming file and
 * position. */
static int log__locate(struct tally_log *l, struct log__seg *ls, uint64_t offset,
                       struct seg_walker *w, uint64_t *pos_out, struct batch_header *h,
                       char *errmsg)
{
    size_t ahead = l->cfg.index_interval_bytes + (size_t)BATCH_HEADER_SIZE;
    for (int attempt = 0; attempt < 2; attempt++) {
        uint64_t pos, expect;
        size_t i;
        bool first = true;
        int rv = log__load_index(l, ls, errmsg);
        if (rv != 0) {
            return rv;
        }
        i = idx_find(&ls->x, (uint32_t)(offset - ls->s.base));
        if (i == IDX_NONE) {
            rv = ERR_CORRUPT(errmsg, "segment %s: index has no entry for offset %" PRIu64,
                             ls->s.name, offset);
            goto retry;
        }
        pos = ls->x.e[i].pos;
        expect = ls->s.base + ls->x.e[i].rel;
        for (;;) {
            rv = seg_walk_header(w, pos, ls->s.size, ahead, h, errmsg);
            if (rv == 0 && h->base_offset != expect) {
                rv = ERR_CORRUPT(errmsg,
                                 "segment %s: position %" PRIu64 ": batch base offset %" PRIu64
                                 ", expected %" PRIu64,
                                 ls->s.name, pos, h->base_offset, expect);
            }
            if (rv != 0) {
                if (first && rv == TALLY_CORRUPT) {
                    goto retry; /* the index entry may be what is wrong */
                }
                return rv;
            }
            first = false;
            if (batch_last_offset(h) >= offset) {
                *pos_out = pos;
                return 0;
            }
            pos += h->batch_len;
            expect = batch_last_offset(h) + 1;
            if (pos >= ls->s.size) {
                return ERR_CORRUPT(errmsg, "segment %s: offset %" PRIu64 " not found",
                                   ls->s.name, offset);
            }
        }
    retry:
        if (attempt > 0) {
            return rv;
        }
        TLOG_WARN("log", "%s: index of segment %s does not match it (%s); rebuilding", l->dir,
                  ls->s.name, errmsg != NULL ? errmsg : "");
        rv = log__rebuild_index(l, ls, errmsg);
        if (rv != 0) {
            return rv;
        }
    }
    return ERR_CORRUPT(errmsg, "segment %s: cannot locate offset %" PRIu64, ls->s.name, offset);
}

/* ------------------------------------------------------------------------
 * Creating, sealing, removing segments
 * ------------------------------------------------------------------------ */

/* Create a new empty active segment at @base and append it to the list.
 * The directory is fsynced by the caller. */
static int log__add_segment(struct tally_log *l, uint64_t base, char *errmsg)
{
    struct log__seg *ls;
    char why[ERR_MSG_SIZE];
    int rv = log__reserve(l, errmsg);
    if (rv != 0) {
        return rv;
    }
    ls = &l->segs[l->n];
    seg_init(&ls->s, base);
    idx_init(&ls->x);
    ls->sealed = false;
    ls->checked = true; /* empty, and only log_append writes it */
    rv = seg_create(&ls->s, l->dir, errmsg);
    if (rv != 0) {
        return rv;
    }
    ls->x.loaded = true;
    l->n++;
    l->dir_dirty = true;
    /* Index files with just their headers, so the directory is complete;
     * their content is rebuilt by recovery anyway, hence no fsync. */
    if (idx_flush(&ls->x, l->dir, base, false, why) != 0) {
        TLOG_WARN("log", "%s: segment %s: cannot create index files: %s", l->dir, ls->s.name,
                  why);
    }
    return 0;
}

/* Seal the active segment: final index entry, data and indexes fsynced. */
static int log__seal(struct tally_log *l, struct log__seg *ls, char *errmsg)
{
    int rv;
    if (log__index_last(ls) != 0) {
        return log__nomem(errmsg, "seal segment");
    }
    rv = seg_sync(&ls->s, errmsg);
    if (rv == 0) {
        rv = idx_flush(&ls->x, l->dir, ls->s.base, true, errmsg);
    }
    if (rv != 0) {
        return log__fail(l, rv, errmsg);
    }
    ls->sealed = true;
    /* Synced: its read-write descriptor goes; reads open it read-only. */
    if (seg_release(&ls->s)) {
        ls->s.writable = false;
    }
    return 0;
}

static int log__roll(struct tally_log *l, char *errmsg)
{
    struct log__seg *act = log__active(l);
    uint64_t base = act->s.next;
    int rv = log__reserve(l, errmsg);
    if (rv != 0) {
        return rv;
    }
    act = log__active(l);
    rv = log__seal(l, act, errmsg);
    if (rv != 0) {
        return rv;
    }
    rv = log__add_segment(l, base, errmsg);
    if (rv == 0) {
        rv = fs_sync_dir(l->dir, errmsg);
    }
    if (rv != 0) {
        return log__fail(l, rv, errmsg);
    }
    l->dir_dirty = false;
    return 0;
}

/* Delete the files of segment @i and drop it from the list. The segment
 * file goes first: an index left without its segment is removed at the
 * next open, while a segment left without its index is merely rebuilt. */
/* Files of segments taken out of their logs, to delete elsewhere. Each
 * is named relative to a descriptor of its log's directory, opened when it
 * was taken out: if the topic is deleted (its directory renamed away) and
 * created again meanwhile, the deletion still reaches the old files, never
 * the new topic's of the same names. */
struct log_removals {
    struct {
        int dir;      /* an index into dirs */
        char *name;   /* segment or index file */
    } *files;
    size_t n_files, cap_files;
    int *dirs;        /* directory descriptors (owned) */
    size_t n_dirs, cap_dirs;
    const struct tally_log *last; /* the log dirs[n_dirs - 1] is of */
    int *fds;         /* the segments' open descriptors, closed last */
    size_t n_fds, cap_fds;
};

struct log_removals *log_removals_new(void)
{
    return calloc(1, sizeof(struct log_removals));
}

/* Room for @n more of @size in *@p (of *@cap). */
static bool log__grow(void **p, size_t *cap, size_t have, size_t n, size_t size)
{
    if (have + n <= *cap) {
        return true;
    }
    size_t c = *cap ? *cap * 2 : 16;
    while (c < have + n) {
        c *= 2;
    }
    void *q = realloc(*p, c * size);
    if (q == NULL) {
        return false;
    }
    *p = q;
    *cap = c;
    return true;
}

/* Add segment @ls's three files and its descriptor to @rm: false when out
 * of memory or the directory cannot be opened (then nothing was added). */
static bool log__removals_add(struct log_removals *rm, const struct tally_log *l,
                              struct log__seg *ls)
{
    static const int kinds[2] = {IDX_KIND_OFFSET, IDX_KIND_TIME};
    char why[ERR_MSG_SIZE];
    char *names[3];
    if (!log__grow((void **)&rm->files, &rm->cap_files, rm->n_files, 3, sizeof *rm->files) ||
        !log__grow((void **)&rm->fds, &rm->cap_fds, rm->n_fds, 1, sizeof *rm->fds) ||
        !log__grow((void **)&rm->dirs, &rm->cap_dirs, rm->n_dirs, 1, sizeof *rm->dirs)) {
        return false;
    }
    if (rm->last != l || rm->n_dirs == 0) {
        int dfd;
        if (fs_open(l->dir, O_RDONLY | O_DIRECTORY, l->dir, &dfd, why) != 0) {
            return false;
        }
        rm->dirs[rm->n_dirs++] = dfd;
        rm->last = l;
    }
    names[0] = strdup(ls->s.name);
    for (int k = 0; k < 2; k++) {
        char name[SEG_NAME_SIZE];
        idx_file_name(name, ls->s.base, kinds[k]);
        names[k + 1] = strdup(name);
    }
    if (names[0] == NULL || names[1] == NULL || names[2] == NULL) {
        free(names[0]);
        free(names[1]);
        free(names[2]);
        return false;
    }
    for (int k = 0; k < 3; k++) {
        rm->files[rm->n_files].dir = (int)rm->n_dirs - 1;
        rm->files[rm->n_files++].name = names[k];
    }
    int fd = seg_take_fd(&ls->s);
    if (fd >= 0) {
        rm->fds[rm->n_fds++] = fd;
    }
    return true;
}

void log_removals_run(struct log_removals *rm)
{
    if (rm == NULL) {
        return;
    }
    for (size_t i = 0; i < rm->n_files; i++) {
        /* The segment first (index files follow it: a missing index is
         * rebuilt, an index without its segment is cleaned at open); a
         * failure leaves a file that the next open trims again. */
        if (unlinkat(rm->dirs[rm->files[i].dir], rm->files[i].name, 0) != 0 && errno != ENOENT) {
            TLOG_WARN("log", "remove %s: %s", rm->files[i].name, strerror(errno));
        }
        free(rm->files[i].name);
    }
    for (size_t i = 0; i < rm->n_fds; i++) {
        fs_close(rm->fds[i]); /* the last descriptor: the blocks are freed now */
    }
    for (size_t i = 0; i < rm->n_dirs; i++) {
        fs_close(rm->dirs[i]);
    }
    free(rm->files);
    free(rm->fds);
    free(rm->dirs);
    free(rm);
}

bool log_removals_empty(const struct log_removals *rm)
{
    return rm == NULL || rm->n_files == 0;
}

/* Take segment @i out of @l: its files are deleted now, or added to @rm
 * (when not NULL) for log_removals_run. */
static int log__remove_seg(struct tally_log *l, size_t i, struct log_removals *rm, char *errmsg)
{
    struct log__seg *ls = &l->segs[i];
    char why[ERR_MSG_SIZE];
    int rv;
    if (rm == NULL || !log__removals_add(rm, l, ls)) {
        char *path = seg_join(l->dir, ls->s.name);
        if (path == NULL) {
            return log__nomem(errmsg, "remove segment");
        }
        rv = fs_unlink(path, errmsg);
        free(path);
        if (rv != 0) {
            return rv;
        }
        if (idx_remove(l->dir, ls->s.base, why) != 0) {
            TLOG_WARN("log", "%s: %s", l->dir, why);
        }
    }
    log__seg_free(ls);
    memmove(&l->segs[i], &l->segs[i + 1], (l->n - i - 1) * sizeof *l->segs);
    l->n--;
    l->dir_dirty = true;
    return 0;
}

/* ------------------------------------------------------------------------
 * Open and recovery
 * ------------------------------------------------------------------------ */

/* Read the last batch of a sealed segment at @pos fully and verify it. */
static int log__verify_batch_at(struct tally_log *l, struct log__seg *ls, uint64_t pos,
                                const struct batch_header *h, char *errmsg)
{
    struct batch_header h2;
    char why[ERR_MSG_SIZE];
    uint8_t *buf = malloc(h->batch_len);
    int rv;
    (void)l;
    if (buf == NULL) {
        return log__nomem(errmsg, "check last batch");
    }
    rv = seg_read(&ls->s, pos, buf, h->batch_len, errmsg);
    if (rv == 0) {
        rv = batch_verify(buf, h->batch_len, &h2, why);
        if (rv != 0) {
            err_printf(errmsg, "segment %s: position %" PRIu64 ": %s", ls->s.name, pos, why);
        }
    }
    free(buf);
    return rv;
}

/* Open a sealed segment cheaply: header, index tail, last batch. Falls
 * back to a full scan (rebuilding the index) when the index is unusable. */
static int log__open_sealed(struct tally_log *l, struct log__seg *ls, uint64_t next_base,
                            char *errmsg)
{
    struct idx_entry last;
    struct batch_header h;
    struct seg_walker w;
    char why[ERR_MSG_SIZE];
    size_t count;
    int rv;

    rv = seg_open(&ls->s, l->dir, 0, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (ls->s.size <= SEG_HEADER_SIZE) {
        return ERR_CORRUPT(errmsg, "segment %s: sealed segment holds no batches", ls->s.name);
    }
    rv = idx_load_tail(l->dir, ls->s.base, &last, &count, why);
    if (rv == 0) {
        /* The last index entry must be the last batch, ending exactly at
         * the end of the file. */
        seg_walker_init(&w, &ls->s, l->walk_buf, LOG__WALK_BUF);
        if (last.pos < SEG_HEADER_SIZE || last.pos >= ls->s.size) {
            rv = ERR_CORRUPT(why, "last index entry points outside the segment");
        } else {
            rv = seg_walk_header(&w, last.pos, ls->s.size, BATCH_HEADER_SIZE, &h, why);
        }
        if (rv == 0 && (h.base_offset != ls->s.base + last.rel ||
                        last.pos + h.batch_len != ls->s.size || last.ts < h.max_timestamp)) {
            rv = ERR_CORRUPT(why, "last index entry is not the last batch");
        }
    }
    if (rv == 0) {
        rv = log__verify_batch_at(l, ls, last.pos, &h, errmsg);
        if (rv != 0) {
            return rv;
        }
        ls->s.next = batch_last_offset(&h) + 1;
        ls->s.max_ts = last.ts;
        ls->s.last_pos = last.pos;
        ls->s.last_base = h.base_offset;
        ls->s.last_raft_index = h.raft_index;
    } else if (rv == TALLY_CORRUPT || rv == TALLY_NOTFOUND || rv == TALLY_VERSION) {
        TLOG_WARN("log", "%s: rebuilding index of sealed segment %s: %s", l->dir, ls->s.name,
                  why);
        rv = log__rebuild_index(l, ls, errmsg);
        if (rv != 0) {
            return rv;
        }
    } else {
        err_printf(errmsg, "%s", why);
        return rv;
    }
    /* Past the next segment: a compaction merged the segments it covers
     * and a crash came before it removed them (log__drop_merged). */
    if (ls->s.next < next_base) {
        return ERR_CORRUPT(errmsg,
                           "segment %s: ends at offset %" PRIu64 " but the next segment starts "
                           "at %" PRIu64,
                           ls->s.name, ls->s.next, next_base);
    }
    ls->sealed = true;
    (void)seg_release(&ls->s); /* opened again when read (log__lru_use) */
    return 0;
}

/* Segment @i (sealed, checked) ends past the next segment's base. That is
 * what a crash leaves between the two steps of a merging compaction
 * (log_compact_commit): the merged copy was renamed into place, holding
 * the batches of the segments after it, which were not removed yet. They
 * are removed now, provided a segment starts exactly where segment @i
 * ends, so that every one removed lies wholly inside it (and the active
 * segment is never among them). Anything else is corruption. */
int log__drop_merged(struct tally_log *l, size_t i, char *errmsg)
{
    uint64_t end = l->segs[i].s.next;
    size_t m = i + 1;
    while (m < l->n && l->segs[m].s.base < end) {
        m++;
    }
    if (m == l->n || l->segs[m].s.base != end) {
        return ERR_CORRUPT(errmsg,
                           "segment %s: ends at offset %" PRIu64 " but the next segment starts "
                           "at %" PRIu64,
                           l->segs[i].s.name, end, l->segs[i + 1].s.base);
    }
    while (m-- > i + 1) {
        TLOG_WARN("log", "%s: removing segment %s: a compaction merged it into %s before the "
                         "node stopped",
                  l->dir, l->segs[i + 1].s.name, l->segs[i].s.name);
        int rv = log__remove_seg(l, i + 1, NULL, errmsg);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

/* Open the active segment: scan every batch, cut a torn or corrupt tail,
 * rebuild the index in memory and rewrite its files. */
static int log__open_active(struct tally_log *l, struct log__seg *ls, char *errmsg)
{
    struct seg_scan_info info;
    struct log__build b = {&ls->x, ls->s.base, l->cfg.index_interval_bytes, INT64_MIN};
    uint64_t file_size;
    char why[ERR_MSG_SIZE];
    int rv;

    rv = seg_open(&ls->s, l->dir, SEG_OPEN_REPAIR, errmsg);
    if (rv != 0) {
        return rv;
    }
    file_size = ls->s.size;
    rv = seg_scan(&ls->s, SEG_HEADER_SIZE, file_size, ls->s.base, log__build_visit, &b, &info,
                  errmsg);
    if (rv != 0) {
        return rv;
    }
    if (info.bad == TALLY_VERSION) {
        /* Written by a newer build: cutting it off would destroy data. */
        err_printf(errmsg, "%s", info.why);
        return TALLY_VERSION;
    }
    if (info.bad != 0) {
        TLOG_WARN("log",
                  "%s: segment %s: %s tail at position %" PRIu64 " (%" PRIu64
                  " bytes dropped): %s",
                  l->dir, ls->s.name, info.torn ? "truncating torn" : "truncating corrupt",
                  info.bad_pos, file_size - info.end, info.what);
        rv = seg_truncate(&ls->s, info.end, errmsg);
        if (rv == 0) {
            rv = seg_sync(&ls->s, errmsg);
        }
        if (rv != 0) {
            return rv;
        }
    }
    log__apply_scan(&ls->s, &info);
    /* Whether the previous process synced it is unknown: the next sync or
     * seal must fsync it. */
    ls->s.dirty = true;
    ls->x.loaded = true;
    ls->x.flushed = 0;
    ls->sealed = false;
    ls->checked = true; /* the scan verified every batch it kept */
    l->dir_dirty = true;
    if (idx_flush(&ls->x, l->dir, ls->s.base, false, why) != 0) {
        TLOG_WARN("log", "%s: segment %s: cannot rewrite index: %s", l->dir, ls->s.name, why);
    }
    return 0;
}

/* Is @name one of ours: 20 digits + .seg/.idx/.tix, or a leftover .tmp
 * (an interrupted index rewrite) or .cmp (a compaction not swapped in). */
int log__classify(const char *name, uint64_t *base)
{
    const char *ext;
    if (!seg_parse_name(name, base, &ext)) {
        return 0;
    }
    if (strcmp(ext, "seg") == 0) {
        return 's';
    }
    if (strcmp(ext, "idx") == 0 || strcmp(ext, "tix") == 0) {
        return 'i';
    }
    if (strcmp(ext, "idx.tmp") == 0 || strcmp(ext, "tix.tmp") == 0 ||
        strcmp(ext, "seg." COMPACT_SUFFIX) == 0 || strcmp(ext, "idx." COMPACT_SUFFIX) == 0 ||
        strcmp(ext, "tix." COMPACT_SUFFIX) == 0) {
        return 't';
    }
    return 0;
}

/* Remove leftovers: temporary index files of an interrupted rebuild,
 * copies written by a compaction that was not swapped in, and
 * index files whose segment is gone (retention removes the segment
 * first). */
static int log__clean_dir(struct tally_log *l, char **names, size_t n, char *errmsg)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t base;
        int kind = log__classify(names[i], &base);
        bool remove = kind == 't';
        if (kind == 'i') {
            char seg_name[SEG_NAME_SIZE];
            seg_file_name(seg_name, base, "seg");
            remove = true;
            for (size_t j = 0; j < n; j++) {
                if (strcmp(names[j], seg_name) == 0) {
                    remove = false;
                    break;
                }
            }
        }
        if (remove) {
            char *path = seg_join(l->dir, names[i]);
            int rv;
            if (path == NULL) {
                return log__nomem(errmsg, "clean directory");
            }
            TLOG_INFO("log", "%s: removing leftover file %s", l->dir, names[i]);
            rv = fs_unlink(path, errmsg);
            free(path);
            if (rv != 0) {
                return rv;
            }
            l->dir_dirty = true;
        }
    }
    return 0;
}

static int log__open_all(struct tally_log *l, uint64_t start_offset, char *errmsg)
{
    char **names = NULL;
    size_t n_names = 0;
    int rv;

    rv = fs_mkdir_p(l->dir, errmsg);
    if (rv == 0) {
        rv = fs_list(l->dir, &names, &n_names, errmsg);
    }
    if (rv != 0) {
        return rv;
    }
    rv = log__clean_dir(l, names, n_names, errmsg);
    /* Names are sorted and zero-padded, so this is offset order. */
    for (size_t i = 0; rv == 0 && i < n_names; i++) {
        uint64_t base;
        if (log__classify(names[i], &base) == 's') {
            rv = log__reserve(l, errmsg);
            if (rv == 0) {
                struct log__seg *ls = &l->segs[l->n++];
                seg_init(&ls->s, base);
                idx_init(&ls->x);
                ls->sealed = false;
                ls->checked = false;
            }
        }
    }
    fs_list_free(names, n_names);
    if (rv != 0) {
        return rv;
    }
    if (l->n == 0) {
        rv = log__add_segment(l, start_offset, errmsg);
    } else {
        for (size_t i = 0; rv == 0 && i + 1 < l->n; i++) {
            rv = log__open_sealed(l, &l->segs[i], l->segs[i + 1].s.base, errmsg);
            if (rv == 0 && l->segs[i].s.next > l->segs[i + 1].s.base) {
                rv = log__drop_merged(l, i, errmsg);
            }
        }
        if (rv == 0) {
            rv = log__open_active(l, log__active(l), errmsg);
        }
        if (rv == 0 && l->n > 1 && l->segs[l->n - 2].s.next != log__active(l)->s.base) {
            rv = ERR_CORRUPT(errmsg, "segment %s: starts at offset %" PRIu64
                             " but the previous segment ends at %" PRIu64,
                             log__active(l)->s.name, log__active(l)->s.base,
                             l->segs[l->n - 2].s.next);
        }
    }
    if (rv == 0 && l->dir_dirty) {
        rv = fs_sync_dir(l->dir, errmsg);
        l->dir_dirty = rv != 0;
    }
    return rv;
}

int log_open(const char *dir, const struct log_config *cfg, uint64_t start_offset,
             struct tally_log **out, char *errmsg)
{
    struct tally_log *l;
    int rv;

    if (dir == NULL || *dir == '\0' || cfg == NULL || out == NULL) {
        err_printf(errmsg, "open log: missing directory or configuration");
        return TALLY_INVAL;
    }
    if (cfg->segment_bytes == 0 || cfg->segment_ms < 0) {
        err_printf(errmsg, "open log %s: segment_bytes must be > 0 and segment_ms >= 0", dir);
        return TALLY_INVAL;
    }
    l = calloc(1, sizeof *l);
    if (l == NULL) {
        return log__nomem(errmsg, "open log");
    }
    l->cfg = *cfg;
    l->dir = strdup(dir);
    l->walk_buf = malloc(LOG__WALK_BUF);
    if (l->dir == NULL || l->walk_buf == NULL) {
        log_close(l);
        return log__nomem(errmsg, "open log");
    }
    rv = log__open_all(l, start_offset, errmsg);
    if (rv != 0) {
        err_wrap(errmsg, "open log %s", dir);
        log_close(l);
        return rv;
    }
    *out = l;
    return 0;
}

void log_close(struct tally_log *l)
{
    if (l == NULL) {
        return;
    }
    log__lru_unlink(l);
    for (size_t i = 0; i < l->n; i++) {
        /* Pending index entries of the active segment are written (not
         * fsynced): cheap, and it spares the next open a rewrite. */
        if (i + 1 == l->n && l->failed == 0 && l->segs[i].s.fd >= 0) {
            char why[ERR_MSG_SIZE];
            (void)idx_flush(&l->segs[i].x, l->dir, l->segs[i].s.base, false, why);
        }
        log__seg_free(&l->segs[i]);
    }
    free(l->segs);
    free(l->walk_buf);
    free(l->dir);
    free(l);
}

/* ------------------------------------------------------------------------
 * Accessors
 * ------------------------------------------------------------------------ */

uint64_t log_next_offset(const struct tally_log *l)
{
    return l->segs[l->n - 1].s.next;
}

uint64_t log_start_offset(const struct tally_log *l)
{
    return l->segs[0].s.base;
}

uint64_t log_last_raft_index(const struct tally_log *l)
{
    for (size_t i = l->n; i > 0; i--) {
        if (!log__empty_seg(&l->segs[i - 1])) {
            return l->segs[i - 1].s.last_raft_index;
        }
    }
    return 0;
}

uint64_t log_size_bytes(const struct tally_log *l)
{
    uint64_t total = 0;
    for (size_t i = 0; i < l->n; i++) {
        total += l->segs[i].s.size;
    }
    return total;
}

unsigned log_segment_count(const struct tally_log *l)
{
    return (unsigned)l->n;
}

/* ------------------------------------------------------------------------
 * Append and sync
 * ------------------------------------------------------------------------ */

static bool log__should_roll(const struct tally_log *l, const struct log__seg *act, size_t len,
                             const struct batch_header *h, int64_t now_ms)
{
    uint64_t size = act->s.size;
    if (log__empty_seg(act)) {
        return false; /* a batch larger than segment_bytes gets a segment of its own */
    }
    if (size + len > l->cfg.segment_bytes || size + len > SEG_MAX_SIZE) {
        return true;
    }
    /* Index entries store offsets relative to the segment base as u32. */
    if (batch_last_offset(h) - act->s.base > UINT32_MAX) {
        return true;
    }
    return l->cfg.segment_ms > 0 && log__older(now_ms, act->s.first_ts, l->cfg.segment_ms);
}

int log_append(struct tally_log *l, const void *batch, size_t len, int64_t now_ms, char *errmsg)
{
    struct batch_header h;
    struct log__seg *act;
    char why[ERR_MSG_SIZE];
    uint64_t pos;
    int64_t ts;
    size_t n_before;
    int rv;

    rv = log__check_failed(l, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (batch == NULL || len < BATCH_HEADER_SIZE) {
        err_printf(errmsg, "append: batch of %zu bytes is too short", len);
        return TALLY_INVAL;
    }
    rv = batch_verify(batch, len, &h, why);
    if (rv != 0) {
        err_printf(errmsg, "append: bad batch: %s", why);
        return TALLY_INVAL;
    }
    if (h.base_offset != log_next_offset(l)) {
        err_printf(errmsg, "append: batch base offset %" PRIu64 ", log next offset %" PRIu64,
                   h.base_offset, log_next_offset(l));
        return TALLY_INVAL;
    }
    if (h.base_offset > UINT64_MAX - 1 - h.last_offset_delta) {
        err_printf(errmsg, "append: batch offsets overflow");
        return TALLY_INVAL;
    }
    if (log__should_roll(l, log__active(l), len, &h, now_ms)) {
        rv = log__roll(l, errmsg);
        if (rv != 0) {
            err_wrap(errmsg, "append: roll segment");
            return rv;
        }
    }
    act = log__active(l);
    pos = act->s.size;
    ts = h.max_timestamp > act->s.max_ts ? h.max_timestamp : act->s.max_ts;
    n_before = act->x.n;
    /* The index entry is added first so that running out of memory leaves
     * nothing half done. */
    if (idx_maybe_add(&act->x, l->cfg.index_interval_bytes,
                      (uint32_t)(h.base_offset - act->s.base), (uint32_t)pos, ts) != 0) {
        return log__nomem(errmsg, "append");
    }
    rv = seg_append(&act->s, batch, len, &h, errmsg);
    if (rv != 0) {
        act->x.n = n_before;
        err_wrap(errmsg, "append");
        return log__fail(l, rv, errmsg);
    }
    return 0;
}

int log_sync(struct tally_log *l, char *errmsg)
{
    struct log__seg *act = log__active(l);
    int rv = log__check_failed(l, errmsg);
    if (rv != 0) {
        return rv;
    }
    rv = seg_sync(&act->s, errmsg);
    if (rv == 0) {
        rv = idx_flush(&act->x, l->dir, act->s.base, true, errmsg);
    }
    if (rv == 0 && l->dir_dirty) {
        rv = fs_sync_dir(l->dir, errmsg);
        if (rv == 0) {
            l->dir_dirty = false;
        }
    }
    if (rv != 0) {
        err_wrap(errmsg, "sync log %s", l->dir);
        return log__fail(l, rv, errmsg);
    }
    return 0;
}

int log_dup_active(const struct tally_log *l)
{
    int fd = l->segs[l->n - 1].s.fd;
    return fd < 0 ? (errno = EBADF, -1) : fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

bool log_unsynced(const struct tally_log *l)
{
    return l->segs[l->n - 1].s.dirty;
}

int log_seal(struct tally_log *l, char *errmsg)
{
    int rv = log__check_failed(l, errmsg);
    if (rv == 0) {
        rv = log__seal(l, log__active(l), errmsg);
    }
    if (rv == 0 && l->dir_dirty) {
        rv = fs_sync_dir(l->dir, errmsg);
        l->dir_dirty = rv != 0;
    }
    if (rv != 0) {
        err_wrap(errmsg, "seal log %s", l->dir);
        return log__fail(l, rv, errmsg);
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Reads
 * ------------------------------------------------------------------------ */

int log_read(struct tally_log *l, uint64_t offset, size_t max_bytes, struct log_slice *out,
             char *errmsg)
{
    struct log__seg *ls;
    struct seg_walker w;
    struct batch_header h;
    uint64_t pos, p;
    size_t total;
    int rv;

    if (max_bytes == 0) {
        err_printf(errmsg, "read: max_bytes must be > 0");
        return TALLY_INVAL;
    }
    if (offset < log_start_offset(l) || offset > log_next_offset(l)) {
        err_printf(errmsg, "read: offset %" PRIu64 " outside [%" PRIu64 ", %" PRIu64 "]", offset,
                   log_start_offset(l), log_next_offset(l));
        return TALLY_OUT_OF_RANGE;
    }
    if (offset == log_next_offset(l)) {
        ls = log__active(l);
        out->fd = ls->s.fd;
        out->pos = (off_t)ls->s.size;
        out->len = 0;
        out->next_offset = offset;
        out->records = 0;
        return 0;
    }
    ls = &l->segs[log__find_seg(l, offset)];
    seg_walker_init(&w, &ls->s, l->walk_buf, LOG__WALK_BUF);
    rv = log__locate(l, ls, offset, &w, &pos, &h, errmsg);
    if (rv != 0) {
        err_wrap(errmsg, "read log %s at offset %" PRIu64, l->dir, offset);
        return rv;
    }
    total = h.batch_len;
    out->next_offset = batch_last_offset(&h) + 1;
    out->records = h.record_count;
    p = pos + h.batch_len;
    /* Add whole batches while they fit; each header walked is checked. */
    while (p < ls->s.size && total < max_bytes) {
        uint64_t expect = out->next_offset;
        size_t ahead = max_bytes - total < LOG__WALK_BUF ? max_bytes - total + BATCH_HEADER_SIZE
                                                         : LOG__WALK_BUF;
        /* After a large batch, read just the next header: a window would
         * copy mostly payload (which fetch sends from the file) to find
         * it. */
        if (h.batch_len >= LOG__WALK_BUF / 4) {
            ahead = BATCH_HEADER_SIZE;
        }
        rv = seg_walk_header(&w, p, ls->s.size, ahead, &h, errmsg);
        if (rv == 0 && h.base_offset != expect) {
            rv = ERR_CORRUPT(errmsg,
                             "segment %s: position %" PRIu64 ": batch base offset %" PRIu64
                             ", expected %" PRIu64,
                             ls->s.name, p, h.base_offset, expect);
        }
        if (rv != 0) {
            err_wrap(errmsg, "read log %s at offset %" PRIu64, l->dir, offset);
            return rv;
        }
        if (h.batch_len > max_bytes - total) {
            break;
        }
        total += h.batch_len;
        out->next_offset = batch_last_offset(&h) + 1;
        out->records += h.record_count;
        p += h.batch_len;
    }
    if ((rv = seg_ensure_open(&ls->s, errmsg)) != 0) {
        return rv;
    }
    out->fd = ls->s.fd;
    out->pos = (off_t)pos;
    out->len = total;
    if (ls->sealed) {
        log__lru_use(l); /* (releases other logs' descriptors only) */
    }
    return 0;
}

int log_read_copy(struct tally_log *l, uint64_t offset, size_t max_bytes, void **out,
                  size_t *len, uint64_t *next_offset, char *errmsg)
{
    uint64_t pos;
    return log_read_copy_at(l, offset, max_bytes, out, len, next_offset, &pos, errmsg);
}

uint64_t log_last_batch_pos(const struct tally_log *l)
{
    const struct log__seg *act = &l->segs[l->n - 1];
    return log__empty_seg(act) ? 0 : act->s.last_pos;
}

int log_segment_at(struct tally_log *l, uint64_t offset, int *fd, uint64_t *size,
                   bool *checked, char *errmsg)
{
    if (offset < log_start_offset(l) || offset >= log_next_offset(l)) {
        err_printf(errmsg, "read: offset %" PRIu64 " outside [%" PRIu64 ", %" PRIu64 ")",
                   offset, log_start_offset(l), log_next_offset(l));
        return TALLY_OUT_OF_RANGE;
    }
    struct log__seg *ls = &l->segs[log__find_seg(l, offset)];
    int rv = seg_ensure_open(&ls->s, errmsg);
    if (rv != 0) {
        return rv;
    }
    *fd = ls->s.fd;
    *size = ls->s.size;
    *checked = ls->checked;
    if (ls->sealed) {
        log__lru_use(l); /* (releases other logs' descriptors only) */
    }
    return 0;
}

int log_read_copy_at(struct tally_log *l, uint64_t offset, size_t max_bytes, void **out,
                     size_t *len, uint64_t *next_offset, uint64_t *pos, char *errmsg)
{
    struct log_slice sl;
    size_t got, done = 0;
    uint8_t *buf;
    int rv;

    *out = NULL;
    *len = 0;
    *pos = 0;
    rv = log_read(l, offset, max_bytes, &sl, errmsg);
    if (rv != 0) {
        return rv;
    }
    *next_offset = sl.next_offset;
    if (sl.len == 0) {
        return 0;
    }
    buf = malloc(sl.len);
    if (buf == NULL) {
        return log__nomem(errmsg, "read log");
    }
    rv = fs_pread(sl.fd, buf, sl.len, (uint64_t)sl.pos, &got, "segment", errmsg);
    if (rv == 0 && got != sl.len) {
        rv = ERR_CORRUPT(errmsg, "segment file shrank while read");
    }
    /* The copy is in memory anyway, so check the payloads too: a reader of
     * the copy never gets a bad batch without an error. */
    while (rv == 0 && done < sl.len) {
        struct batch_header h;
        char why[ERR_MSG_SIZE];
        size_t blen = sl.len - done >= BATCH_HEADER_SIZE ? byte_get_u32(buf + done + 8) : 0;
        if (blen < BATCH_HEADER_SIZE || blen > sl.len - done) {
            blen = sl.len - done;
        }
        if (batch_verify(buf + done, blen, &h, why) != 0) {
            struct log__seg *ls = &l->segs[log__find_seg(l, offset)];
            rv = ERR_CORRUPT(errmsg, "segment %s: position %" PRIu64 ": %s", ls->s.name,
                             (uint64_t)sl.pos + done, why);
            break;
        }
        done += blen;
    }
    if (rv != 0) {
        free(buf);
        err_wrap(errmsg, "read log %s at offset %" PRIu64, l->dir, offset);
        return rv;
    }
    *out = buf;
    *len = sl.len;
    *pos = (uint64_t)sl.pos;
    return 0;
}

int log_find_time(struct tally_log *l, int64_t ts_ms, uint64_t *offset, char *errmsg)
{
    for (size_t i = 0; i < l->n; i++) {
        struct log__seg *ls = &l->segs[i];
        struct seg_walker w;
        struct batch_header h;
        uint64_t pos;
        size_t e;
        int rv;

        if (log__empty_seg(ls) || ls->s.max_ts < ts_ms) {
            continue;
        }
        rv = log__load_index(l, ls, errmsg);
        if (rv != 0) {
            err_wrap(errmsg, "find time in log %s", l->dir);
            return rv;
        }
        e = idx_find_time(&ls->x, ts_ms);
        pos = e == IDX_NONE ? SEG_HEADER_SIZE : ls->x.e[e].pos;
        seg_walker_init(&w, &ls->s, l->walk_buf, LOG__WALK_BUF);
        while (pos < ls->s.size) {
            rv = seg_walk_header(&w, pos, ls->s.size, LOG__WALK_BUF, &h, errmsg);
            if (rv != 0) {
                err_wrap(errmsg, "find time in log %s", l->dir);
                return rv;
            }
            if (h.max_timestamp >= ts_ms) {
                *offset = h.base_offset;
                log__lru_use(l);
                return 0;
            }
            pos += h.batch_len;
        }
    }
    *offset = log_next_offset(l);
    log__lru_use(l);
    return 0;
}

/* ------------------------------------------------------------------------
 * Truncate, retention, reset
 * ------------------------------------------------------------------------ */

#ifdef TALLY_DEBUG
/* Expensive check after a truncation: the active segment scans clean to
 * exactly the state we keep in memory. */
static int log__debug_check(struct tally_log *l, char *errmsg)
{
    struct log__seg *act = log__active(l);
    struct seg_scan_info info;
    int rv = seg_scan(&act->s, SEG_HEADER_SIZE, act->s.size, act->s.base, NULL, NULL, &info,
                      errmsg);
    if (rv == 0 && (info.bad != 0 || info.end != act->s.size || info.next != act->s.next ||
                    info.max_ts != act->s.max_ts || info.last_pos != act->s.last_pos)) {
        TLOG_ERROR("log", "%s: active segment disagrees with memory after truncate (%s)", l->dir,
                   info.bad ? info.why : "fields differ");
        rv = ERR_CORRUPT(errmsg, "segment %s: inconsistent after truncate", act->s.name);
    }
    return rv;
}
#endif

/* After cutting segment @ls at @pos, recompute what we know of its last
 * batches by walking from the last remaining index entry. */
static int log__recompute_tail(struct tally_log *l, struct log__seg *ls, char *errmsg)
{
    struct seg_walker w;
    struct batch_header h;
    struct idx_entry *e;
    uint64_t pos;
    int rv;

    ls->s.next = ls->s.base;
    ls->s.first_ts = INT64_MIN;
    ls->s.max_ts = INT64_MIN;
    ls->s.last_pos = 0;
    ls->s.last_base = ls->s.base;
    ls->s.last_raft_index = 0;
    if (ls->x.n == 0) {
        return 0; /* cut at the first batch: empty */
    }
    seg_walker_init(&w, &ls->s, l->walk_buf, LOG__WALK_BUF);
    rv = seg_walk_header(&w, SEG_HEADER_SIZE, ls->s.size, BATCH_HEADER_SIZE, &h, errmsg);
    if (rv != 0) {
        return rv;
    }
    ls->s.first_ts = h.first_timestamp;
    e = &ls->x.e[ls->x.n - 1];
    pos = e->pos;
    ls->s.max_ts = e->ts;
    while (pos < ls->s.size) {
        rv = seg_walk_header(&w, pos, ls->s.size, LOG__WALK_BUF, &h, errmsg);
        if (rv != 0) {
            return rv;
        }
        if (h.max_timestamp > ls->s.max_ts) {
            ls->s.max_ts = h.max_timestamp;
        }
        ls->s.last_pos = pos;
        ls->s.last_base = h.base_offset;
        ls->s.last_raft_index = h.raft_index;
        ls->s.next = batch_last_offset(&h) + 1;
        pos += h.batch_len;
    }
    return 0;
}

int log_truncate(struct tally_log *l, uint64_t offset, uint64_t *next, char *errmsg)
{
    struct log__seg *ls;
    struct seg_walker w;
    struct batch_header h;
    uint64_t pos;
    size_t k;
    int rv;

    rv = log__check_failed(l, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (offset >= log_next_offset(l)) {
        *next = log_next_offset(l);
        return 0;
    }
    if (offset < log_start_offset(l)) {
        err_printf(errmsg, "truncate: offset %" PRIu64 " is below the log start %" PRIu64,
                   offset, log_start_offset(l));
        return TALLY_OUT_OF_RANGE;
    }
    k = log__find_seg(l, offset);
    ls = &l->segs[k];
    /* Find the cut before changing anything, so a corrupt segment leaves
     * the log as it was. */
    seg_walker_init(&w, &ls->s, l->walk_buf, LOG__WALK_BUF);
    rv = log__locate(l, ls, offset, &w, &pos, &h, errmsg);
    if (rv != 0) {
        err_wrap(errmsg, "truncate log %s at %" PRIu64, l->dir, offset);
        return rv;
    }
    /* What is written again from @offset on was never compacted (the
     * next job maps its keys: compact_swap.c). */
    if (l->clean_upto > offset) {
        l->clean_upto = offset;
    }
    /* Later segments go first, newest first, so a crash at any point
     * leaves a log that is a prefix of this one. */
    while (l->n > k + 1) {
        rv = log__remove_seg(l, l->n - 1, NULL, errmsg);
        if (rv != 0) {
            goto fail;
        }
    }
    ls = &l->segs[k];
    if (!ls->s.writable) {
        seg_close(&ls->s);
        rv = seg_open(&ls->s, l->dir, SEG_OPEN_WRITE, errmsg);
        if (rv != 0) {
            goto fail;
        }
    }
    rv = seg_truncate(&ls->s, pos, errmsg);
    if (rv != 0) {
        goto fail;
    }
    ls->s.size = pos;
    ls->sealed = false;
    idx_cut(&ls->x, pos);
    rv = log__recompute_tail(l, ls, errmsg);
    if (rv != 0) {
        goto fail;
    }
    /* A truncation must not be undone by a crash: data, index and the
     * removed names are made durable now. */
    rv = seg_sync(&ls->s, errmsg);
    if (rv == 0) {
        rv = idx_flush(&ls->x, l->dir, ls->s.base, true, errmsg);
    }
    if (rv == 0) {
        rv = fs_sync_dir(l->dir, errmsg);
        l->dir_dirty = rv != 0;
    }
    if (rv != 0) {
        goto fail;
    }
#ifdef TALLY_DEBUG
    rv = log__debug_check(l, errmsg);
    if (rv != 0) {
        goto fail;
    }
#endif
    *next = log_next_offset(l);
    return 0;
fail:
    err_wrap(errmsg, "truncate log %s at %" PRIu64, l->dir, offset);
    return log__fail(l, rv, errmsg);
}

uint64_t log_retention_start(const struct tally_log *l, int64_t now_ms)
{
    uint64_t total = log_size_bytes(l);
    size_t i = 0;

    for (; i + 1 < l->n; i++) {
        const struct log__seg *ls = &l->segs[i];
        bool by_time = l->cfg.retention_ms >= 0 &&
                       log__older(now_ms, ls->s.max_ts, l->cfg.retention_ms);
        bool by_size = l->cfg.retention_bytes >= 0 && total > (uint64_t)l->cfg.retention_bytes;
        if (!by_time && !by_size) {
            break;
        }
        total -= ls->s.size;
    }
    return l->segs[i].s.base;
}

int64_t log_max_timestamp(const struct tally_log *l)
{
    int64_t ts = INT64_MIN;
    for (size_t i = 0; i < l->n; i++) {
        ts = l->segs[i].s.max_ts > ts ? l->segs[i].s.max_ts : ts;
    }
    return ts;
}

int log_trim(struct tally_log *l, uint64_t offset, unsigned *deleted, char *errmsg)
{
    return log_trim_to(l, offset, NULL, deleted, errmsg);
}

int log_trim_to(struct tally_log *l, uint64_t offset, struct log_removals *rm, unsigned *deleted,
                char *errmsg)
{
    int rv;

    *deleted = 0;
    rv = log__check_failed(l, errmsg);
    if (rv != 0) {
        return rv;
    }
    /* A segment goes when every offset it holds is below @offset: when the
     * next segment starts at or below it. The active one always stays. */
    while (l->n > 1 && l->segs[1].s.base <= offset) {
        TLOG_INFO("log", "%s: start offset %" PRIu64 " removes segment %s", l->dir, offset,
                  l->segs[0].s.name);
        rv = log__remove_seg(l, 0, rm, errmsg);
        if (rv != 0) {
            err_wrap(errmsg, "trim log %s", l->dir);
            return log__fail(l, rv, errmsg);
        }
        (*deleted)++;
    }
    /* No directory fsync here (the next log_sync or seal does it): a
     * removal a crash undoes brings back segments wholly below @offset,
     * which the caller trims again (the store does at open, from the start
     * offset its catalog recorded). With a thousand topics trimmed at once
     * that was a thousand fsyncs on the caller's thread. */
    return 0;
}

int log_retain(struct tally_log *l, int64_t now_ms, uint64_t limit, unsigned *deleted,
               bool *held, char *errmsg)
{
    uint64_t start = log_retention_start(l, now_ms);

    if (start > limit) {
        /* the cut ends at the last segment that lies wholly below @limit */
        size_t i = 0;
        while (i + 1 < l->n && l->segs[i + 1].s.base <= limit) {
            i++;
        }
        start = l->segs[i].s.base;
        if (held != NULL) {
            *held = true;
        }
    }
    return log_trim(l, start, deleted, errmsg);
}

int log_reset(struct tally_log *l, uint64_t offset, char *errmsg)
{
    int rv = log__check_failed(l, errmsg);
    if (rv != 0) {
        return rv;
    }
    l->clean_upto = 0;
    /* Newest first: a crash leaves a shorter log that the caller resets
     * again, never one with a hole. */
    while (l->n > 0) {
        rv = log__remove_seg(l, l->n - 1, NULL, errmsg);
        if (rv != 0) {
            goto fail;
        }
    }
    rv = log__add_segment(l, offset, errmsg);
    if (rv == 0) {
        rv = fs_sync_dir(l->dir, errmsg);
    }
    if (rv != 0) {
        goto fail;
    }
    l->dir_dirty = false;
    return 0;
fail:
    err_wrap(errmsg, "reset log %s to %" PRIu64, l->dir, offset);
    if (l->n == 0) {
        /* Keep the invariant that a log has an active segment, in memory
         * at least, so accessors stay valid; the log is failed anyway. */
        struct log__seg *ls = &l->segs[0];
        seg_init(&ls->s, offset);
        idx_init(&ls->x);
        ls->x.loaded = true;
        ls->sealed = false;
        ls->checked = false;
        l->n = 1;
    }
    return log__fail(l, rv, errmsg);
}
