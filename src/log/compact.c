/* The worker half of keyed compaction (log.h, log_compact_*): read sealed
 * segment files, decide which records survive, write compacted copies.
 *
 * Two passes over the planned segments:
 *   1. the key map: for every key (its XXH3-128 hash) of the segments
 *      from map_from on (those the last job did not cover), the offset of
 *      its latest record in the range. If the map fills, the plan is cut
 *      after the last segment read in full (a record is dropped only when
 *      a later record of its key exists, so what the map saw of the cut
 *      segment stays correct). Below map_from the last job left at most
 *      one record of each key, so a record there goes only when the map
 *      holds a later one of its key (or it is an expired tombstone).
 *   2. the copies: each batch is copied as it is when all its records
 *      survive, rebuilt with the survivors (same base offset, span,
 *      timestamps, Raft index and producer fields) when some do, and folded
 *      into a gap batch with its neighbours when none does. A segment that
 *      loses nothing is not rewritten.
 * Every batch read is verified (both checksums): compaction never carries
 * a damaged batch into a new file, it stops and names it. */
#include "log/compact.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "lib/batch.h"
#include "lib/byte.h"
#include "lib/codec.h"
#include "lib/err.h"
#include "lib/fs.h"
#include "lib/logger.h"
#include "log/seg.h"

#define COMPACT__WRITE_CHUNK (1u << 20)

/* A copy's writeback is started as each chunk is written and waited for
 * this far behind (fs_sync_range), so the fsync at its end has at most
 * this much left to write. */
#define COMPACT__SYNC_BEHIND (8u << 20)

/* ------------------------------------------------------------------------
 * The key map: open addressing, linear probing, never more than 3/4 full.
 * ------------------------------------------------------------------------ */

struct compact__slot {
    uint64_t h1, h2; /* h1 == h2 == 0: empty (a real hash of 0 is moved to 1) */
    uint64_t offset; /* latest record of the key in the range */
    uint64_t older;  /* 1 if the range holds an earlier record of the key too */
};

_Static_assert(sizeof(struct compact__slot) == COMPACT_SLOT_BYTES, "slot size");

struct compact__map {
    struct compact__slot *slots; /* mmap'd */
    size_t cap; /* power of two */
    size_t n;
};

static int compact__map_init(struct compact__map *m, size_t bytes)
{
    size_t cap = COMPACT_MIN_SLOTS;
    void *p;
    while (cap * 2 * sizeof(struct compact__slot) <= bytes) {
        cap *= 2;
    }
    /* Zeroed pages, asked to be huge ones: with 4 KiB pages a probe of a
     * map this size misses the TLB as well as the caches. Only a hint
     * (transparent huge pages may be off); the map works either way. */
    p = mmap(NULL, cap * sizeof *m->slots, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    if (p == MAP_FAILED) {
        return TALLY_NOMEM;
    }
    (void)madvise(p, cap * sizeof *m->slots, MADV_HUGEPAGE);
    m->slots = p;
    m->cap = cap;
    m->n = 0;
    return 0;
}

static void compact__map_free(struct compact__map *m)
{
    munmap(m->slots, m->cap * sizeof *m->slots);
}

static void compact__hash(const uint8_t *key, size_t len, uint64_t *h1, uint64_t *h2)
{
    struct codec_hash128 h = codec_hash128(key, len);
    *h1 = h.lo;
    *h2 = h.hi;
    if (*h1 == 0 && *h2 == 0) {
        *h1 = 1;
    }
}

static struct compact__slot *compact__map_slot(const struct compact__map *m, uint64_t h1,
                                               uint64_t h2)
{
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h1 & mask;; i = (i + 1) & mask) {
        struct compact__slot *e = &m->slots[i];
        if ((e->h1 == h1 && e->h2 == h2) || (e->h1 == 0 && e->h2 == 0)) {
            return e;
        }
    }
}

/* Record @offset as the latest of the key hashed @h1, @h2. false when the
 * map is full. */
static bool compact__map_put(struct compact__map *m, uint64_t h1, uint64_t h2, uint64_t offset)
{
    struct compact__slot *e = compact__map_slot(m, h1, h2);
    if (e->h1 == 0 && e->h2 == 0) {
        if ((m->n + 1) * 4 > m->cap * 3) {
            return false;
        }
        e->h1 = h1;
        e->h2 = h2;
        e->older = 0;
        m->n++;
    } else {
        e->older = 1;
    }
    e->offset = offset;
    return true;
}

/* The map's slot of the key hashed @h1, @h2, or NULL (a key of a record
 * below map_from that no mapped segment holds). */
static struct compact__slot *compact__map_get(const struct compact__map *m, uint64_t h1,
                                              uint64_t h2)
{
    struct compact__slot *e = compact__map_slot(m, h1, h2);
    return (e->h1 == 0 && e->h2 == 0) ? NULL : e;
}

/* Records are read a group at a time, and the home slots of a group's
 * keys are prefetched before any is probed. The map is far larger than
 * the caches and a key's slot is random, so nearly every probe misses;
 * one at a time, each waited for the one before (perf: 94-98% of the
 * samples in both passes' batch visitors were on the slot compare, on
 * bench/compaction.sh's 1 M keys). A group's misses overlap instead,
 * and its 32 cache lines (2 KiB) stay well within L1 until probed. */
#define COMPACT__GROUP 32

struct compact__group {
    struct batch_record rec[COMPACT__GROUP]; /* borrowed from the iterator */
    uint64_t h1[COMPACT__GROUP], h2[COMPACT__GROUP]; /* when rec[i].key != NULL */
    unsigned n;
};

/* Read the next (up to) COMPACT__GROUP records of @it into @g, hash their
 * keys and prefetch their home slots. 0 with g->n > 0, TALLY_EOF after the
 * last record, or batch_iter_next's error. */
static int compact__group_read(struct compact__group *g, const struct compact__map *m,
                               struct batch_iter *it, char *errmsg)
{
    g->n = 0;
    while (g->n < COMPACT__GROUP) {
        unsigned i = g->n;
        int rv = batch_iter_next(it, &g->rec[i], errmsg);
        if (rv != 0) {
            return rv == TALLY_EOF && g->n > 0 ? 0 : rv;
        }
        if (g->rec[i].key != NULL) {
            compact__hash(g->rec[i].key, g->rec[i].key_len, &g->h1[i], &g->h2[i]);
            __builtin_prefetch(&m->slots[(size_t)g->h1[i] & (m->cap - 1)]);
        }
        g->n++;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Reading: seg_scan over the planned size of a segment file, every batch
 * verified (both checksums, offsets contiguous), each handed to a visitor.
 * ------------------------------------------------------------------------ */

/* Run @visit over every batch of @cs (with @visit NULL: only read the
 * file's header into @hdr, if not NULL). A bad batch is TALLY_CORRUPT (or
 * TALLY_VERSION) naming the file and position. The file is read in order,
 * so the kernel may read ahead further (POSIX_FADV_SEQUENTIAL); with
 * @last_read, this is the job's last read of it, and if the job found it
 * outside the page cache its pages are dropped again: the job's reads
 * should not push out of the cache what the node's readers use. */
static int compact__scan(const struct log_compaction *c, const struct compact_seg *cs,
                         seg_visit_fn visit, void *arg, uint8_t *hdr, bool last_read,
                         char *errmsg)
{
    struct seg_scan_info info;
    struct seg s;
    int rv;
    memset(&info, 0, sizeof info);
    seg_init(&s, cs->base);
    rv = seg_open(&s, c->dir, 0, errmsg);
    if (rv == 0 && hdr != NULL) {
        rv = seg_read(&s, 0, hdr, SEG_HEADER_SIZE, errmsg);
    }
    if (rv == 0 && visit != NULL) {
        fs_advise(s.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        rv = seg_scan(&s, SEG_HEADER_SIZE, cs->size, cs->base, visit, arg, &info, errmsg);
        if (last_read && cs->cold) {
            fs_advise(s.fd, 0, 0, POSIX_FADV_DONTNEED);
        }
    }
    if (rv == 0 && info.bad != 0) {
        err_printf(errmsg, "%s", info.why);
        rv = info.bad;
    }
    seg_close(&s);
    return rv;
}

/* Checked at every batch, so that a shutdown does not wait for a job. */
static int compact__cancelled(const struct log_compaction *c, char *errmsg)
{
    if (atomic_load_explicit(&c->cancel, memory_order_relaxed)) {
        err_printf(errmsg, "compaction cancelled");
        return TALLY_SHUTDOWN;
    }
    return 0;
}

static uint64_t compact__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A pace this far behind io_rate (a slow disk, a busy machine) starts
 * afresh instead of being made up at full speed afterwards. */
#define COMPACT__PACE_SLACK_NS 1000000000u
/* Sleeps are cut into slices this long, so that a cancel is seen soon. */
#define COMPACT__SLEEP_SLICE_NS 50000000u

/* Count @bytes more read or written by the job, and sleep as long as it
 * takes for the bytes since pace_start_ns to stay within p.io_rate per
 * second: the job's share of the disk, as Kafka's cleaner has with
 * log.cleaner.io.max.bytes.per.second. The job's own thread sleeps; the
 * log's thread never waits for it. Also the cancel check, and every
 * COMPACT_PROGRESS_S seconds a line saying how far the job got. */
static int compact__pace(struct log_compaction *c, uint64_t bytes, char *errmsg)
{
    int rv = compact__cancelled(c, errmsg);
    uint64_t now;
    if (rv != 0) {
        return rv;
    }
    c->st.bytes_io += bytes;
    c->pace_bytes += bytes;
    now = compact__now_ns();
    if (c->p.io_rate > 0) {
        /* (double: bytes * 1e9 overflows 64 bits past 18 GB) */
        uint64_t due = c->pace_start_ns +
                       (uint64_t)((double)c->pace_bytes * 1e9 / (double)c->p.io_rate);
        if (due > now + 1000000u) {
            uint64_t from = now;
            while (rv == 0 && now < due) {
                uint64_t d = due - now < COMPACT__SLEEP_SLICE_NS ? due - now
                                                                 : COMPACT__SLEEP_SLICE_NS;
                struct timespec ts = {(time_t)(d / 1000000000u), (long)(d % 1000000000u)};
                nanosleep(&ts, NULL);
                rv = compact__cancelled(c, errmsg);
                now = compact__now_ns();
            }
            c->st.paced_ms += (now - from) / 1000000u;
        } else if (now > due + COMPACT__PACE_SLACK_NS) {
            c->pace_start_ns = now;
            c->pace_bytes = 0;
        }
    }
    if (now >= c->progress_ns) {
        TLOG_INFO("compact", "%s: %s, %.1f MB read and written in %.0f s (%.1f s of it paced "
                  "to %.1f MB/s)",
                  c->dir, c->doing, (double)c->st.bytes_io / 1e6,
                  (double)(now - c->start_ns) / 1e9, (double)c->st.paced_ms / 1e3,
                  (double)c->p.io_rate / 1e6);
        c->progress_ns = now + (uint64_t)COMPACT_PROGRESS_S * 1000000000u;
    }
    return rv;
}

/* ------------------------------------------------------------------------
 * Pass 1: the key map
 * ------------------------------------------------------------------------ */

struct compact__mapping {
    struct log_compaction *c;
    struct compact__map *m;
    bool full;
};

static int compact__map_visit(void *arg, uint64_t pos, const struct batch_header *h,
                              const uint8_t *batch, char *errmsg)
{
    struct compact__mapping *mp = arg;
    struct batch_iter it;
    struct compact__group g;
    int rv = compact__pace(mp->c, h->batch_len, errmsg);
    if (rv != 0 || !(h->flags & BATCH_FLAG_KEYED)) {
        return rv;
    }
    rv = batch_iter_init(&it, batch, h->batch_len, errmsg);
    while (rv == 0 && (rv = compact__group_read(&g, mp->m, &it, errmsg)) == 0) {
        for (unsigned i = 0; i < g.n; i++) {
            if (g.rec[i].key != NULL &&
                !compact__map_put(mp->m, g.h1[i], g.h2[i], g.rec[i].offset)) {
                mp->full = true;
                rv = TALLY_EOF; /* stops the scan: seg_scan returns what we return */
                break;
            }
        }
    }
    batch_iter_close(&it);
    if (rv != 0 && rv != TALLY_EOF) {
        err_wrap(errmsg, "position %" PRIu64, pos);
        return rv;
    }
    return mp->full ? TALLY_EOF : 0;
}

/* Put the keys of one segment into the map. *full is set if it filled. */
static int compact__map_segment(struct log_compaction *c, struct compact__map *m,
                                const struct compact_seg *cs, bool *full, char *errmsg)
{
    struct compact__mapping mp = {c, m, false};
    int rv = compact__scan(c, cs, compact__map_visit, &mp, NULL, false, errmsg);
    *full = mp.full;
    return rv == TALLY_EOF && mp.full ? 0 : rv;
}

/* ------------------------------------------------------------------------
 * Pass 2: the copies
 * ------------------------------------------------------------------------ */

/* The new file of one segment being written. */
struct compact__writer {
    struct log_compaction *c; /* paced by its io_rate */
    int fd;
    char name[SEG_NAME_SIZE + 8];
    struct buf out;           /* bytes not yet written */
    uint64_t flushed;         /* bytes of the file written so far */
    uint64_t synced;          /* of which written back to the disk for sure */
    struct compact_seg *cs;   /* results go here */
    uint32_t interval;        /* sparse index interval */
    int64_t run_ts;           /* running maximum timestamp (time index) */
    /* A run of emptied batches not written yet (gap_count 0: none). */
    unsigned gap_count;
    uint64_t gap_base, gap_last, gap_index;
    int64_t gap_first_ts, gap_max_ts;
};

/* Write what is buffered. Its writeback starts at once, from this thread
 * (so at the job's I/O priority), and what lies more than
 * COMPACT__SYNC_BEHIND behind is waited for: left to the kernel, a copy's
 * hundreds of megabytes would go to the disk all at once, at its fsync or
 * when the dirty pages expire, and hold back the node's Raft fsyncs queued
 * behind them. */
static int compact__writer_flush(struct compact__writer *w, char *errmsg)
{
    uint64_t at = w->flushed, len = w->out.len;
    int rv;
    if (len == 0) {
        return 0;
    }
    rv = fs_pwrite(w->fd, w->out.data, w->out.len, w->flushed, w->name, errmsg);
    if (rv != 0) {
        return rv;
    }
    w->flushed += len;
    w->out.len = 0;
    rv = fs_sync_range(w->fd, at, len, false, w->name, errmsg);
    if (rv == 0 && w->flushed - w->synced > COMPACT__SYNC_BEHIND) {
        uint64_t upto = w->flushed - COMPACT__SYNC_BEHIND;
        rv = fs_sync_range(w->fd, w->synced, upto - w->synced, true, w->name, errmsg);
        w->synced = upto;
    }
    return rv == 0 ? compact__pace(w->c, len, errmsg) : rv;
}

/* Append one finished batch (header @h, @len bytes at @p) to the copy. */
static int compact__emit(struct compact__writer *w, const uint8_t *p, size_t len,
                         const struct batch_header *h, char *errmsg)
{
    struct compact_seg *cs = w->cs;
    uint64_t pos = w->flushed + w->out.len;
    if (h->max_timestamp > w->run_ts) {
        w->run_ts = h->max_timestamp;
    }
    if (idx_maybe_add(&cs->x, w->interval, (uint32_t)(h->base_offset - cs->base),
                      (uint32_t)pos, w->run_ts) != 0) {
        err_printf(errmsg, "compact %s: out of memory", w->name);
        return TALLY_NOMEM;
    }
    if (cs->last_pos == 0) {
        cs->first_ts = h->first_timestamp;
    }
    if (h->max_timestamp > cs->max_ts) {
        cs->max_ts = h->max_timestamp;
    }
    cs->last_pos = pos;
    cs->last_base = h->base_offset;
    cs->last_raft_index = h->raft_index;
    buf_put(&w->out, p, len);
    if (!buf_ok(&w->out)) {
        err_printf(errmsg, "compact %s: out of memory", w->name);
        return TALLY_NOMEM;
    }
    return w->out.len >= COMPACT__WRITE_CHUNK ? compact__writer_flush(w, errmsg) : 0;
}

/* Write the pending run of emptied batches as one gap batch. */
static int compact__emit_gap(struct compact__writer *w, char *errmsg)
{
    struct buf b;
    struct batch_header h;
    int rv;
    if (w->gap_count == 0) {
        return 0;
    }
    buf_init(&b);
    rv = batch_encode_gap(&b, w->gap_base, (uint32_t)(w->gap_last - w->gap_base),
                          w->gap_first_ts, w->gap_max_ts, w->gap_index);
    if (rv == 0) {
        rv = batch_decode_header(b.data, b.len, &h, errmsg);
    }
    if (rv == 0) {
        rv = compact__emit(w, b.data, b.len, &h, errmsg);
    } else if (rv == TALLY_NOMEM) {
        err_printf(errmsg, "compact %s: out of memory", w->name);
    } else {
        err_printf(errmsg, "compact %s: cannot encode gap batch at offset %" PRIu64, w->name,
                   w->gap_base);
    }
    buf_free(&b);
    w->gap_count = 0;
    return rv;
}

/* Fold a batch that lost every record (or an existing gap batch) into the
 * pending run. A run's span must fit the u32 offset delta. */
static int compact__add_gap(struct compact__writer *w, const struct batch_header *h,
                            char *errmsg)
{
    if (w->gap_count > 0 && batch_last_offset(h) - w->gap_base > UINT32_MAX) {
        int rv = compact__emit_gap(w, errmsg);
        if (rv != 0) {
            return rv;
        }
    }
    if (w->gap_count == 0) {
        w->gap_base = h->base_offset;
        w->gap_first_ts = h->first_timestamp;
        w->gap_max_ts = h->max_timestamp;
    }
    w->gap_count++;
    w->gap_last = batch_last_offset(h);
    w->gap_index = h->raft_index;
    if (h->first_timestamp < w->gap_first_ts) {
        w->gap_first_ts = h->first_timestamp;
    }
    if (h->max_timestamp > w->gap_max_ts) {
        w->gap_max_ts = h->max_timestamp;
    }
    return 0;
}

/* Does record @rec survive? A tombstone goes only once it is old enough
 * and no earlier record of its key is left in the range: removed in the
 * same pass as those, a crash between two segment swaps could bring an
 * old value back to life. The segments are decided oldest first, so when
 * a record below map_from is dropped for a later one of its key, the
 * key's slot learns that an earlier record existed before that later
 * record (a tombstone, maybe) is decided. */
static bool compact__keep(const struct log_compaction *c, struct compact__map *m,
                          const struct compact__group *g, unsigned i)
{
    const struct batch_record *rec = &g->rec[i];
    struct compact__slot *e;
    if (rec->key == NULL) {
        return true; /* records without a key are never compacted away */
    }
    e = compact__map_get(m, g->h1[i], g->h2[i]);
    if (e != NULL && e->offset > rec->offset) {
        e->older = 1;
        return false; /* a later record of the key exists */
    }
    /* e == NULL: a record below map_from whose key was not written since;
     * the last job left it alone there (see the top of this file). */
    if (rec->value != NULL || (e != NULL && e->older) || c->p.delete_retention_ms < 0) {
        return true;
    }
    if (c->p.tombstone_limit != 0) {
        return rec->offset >= c->p.tombstone_limit;
    }
    return rec->timestamp > c->p.now_ms - c->p.delete_retention_ms;
}

/* The survivors of one keyed batch: *kept of its records. When some but
 * not all survive, the rebuilt batch is appended to @out. */
static int compact__filter(const struct log_compaction *c, struct compact__map *m,
                           const uint8_t *batch, const struct batch_header *h,
                           uint32_t *kept, struct buf *out, struct buf *decisions,
                           char *errmsg)
{
    struct batch_iter it;
    struct batch_record rec;
    struct compact__group g;
    struct batch_builder b;
    struct batch_kv *kv = NULL;
    size_t kv_cap = 0;
    uint8_t *keep;
    uint32_t i = 0;
    int rv;

    *kept = 0;
    /* One decision per record, made once (a hash and a map probe each). */
    decisions->len = 0;
    keep = buf_reserve(decisions, h->record_count ? h->record_count : 1);
    if (keep == NULL) {
        err_printf(errmsg, "compact: out of memory");
        return TALLY_NOMEM;
    }
    batch_builder_init(&b, h->producer_id, h->producer_seq);
    /* A rewritten batch is the same batch: its sequence keeps its meaning. */
    b.record_seq = (h->flags & BATCH_FLAG_RECORD_SEQ) != 0;
    /* First count, so that a batch that keeps everything is copied as is. */
    rv = batch_iter_init(&it, batch, h->batch_len, errmsg);
    while (rv == 0 && (rv = compact__group_read(&g, m, &it, errmsg)) == 0) {
        for (unsigned j = 0; j < g.n; j++) {
            keep[i] = compact__keep(c, m, &g, j);
            *kept += keep[i++];
        }
    }
    batch_iter_close(&it);
    if (rv != TALLY_EOF || *kept == 0 || *kept == h->record_count) {
        batch_builder_free(&b);
        return rv == TALLY_EOF ? 0 : rv;
    }
    i = 0;
    rv = batch_iter_init(&it, batch, h->batch_len, errmsg);
    while (rv == 0 && (rv = batch_iter_next(&it, &rec, errmsg)) == 0) {
        struct batch_headers hr;
        size_t nh = 0;
        if (!keep[i++]) {
            continue;
        }
        if (rec.header_count > kv_cap) {
            struct batch_kv *nkv = realloc(kv, rec.header_count * sizeof *nkv);
            if (nkv == NULL) {
                rv = TALLY_NOMEM;
                break;
            }
            kv = nkv;
            kv_cap = rec.header_count;
        }
        batch_headers_init(&hr, rec.headers, rec.headers_len, rec.header_nulls);
        while (nh < rec.header_count && batch_headers_next(&hr, &kv[nh])) {
            nh++;
        }
        if (nh != rec.header_count) {
            rv = ERR_CORRUPT(errmsg, "record at offset %" PRIu64 ": malformed headers",
                             rec.offset);
            break;
        }
        uint32_t off_delta = (uint32_t)(rec.offset - h->base_offset);
        int64_t ts_delta = rec.timestamp - h->first_timestamp;
        rv = rec.has_create_time
                 ? batch_builder_add_created(&b, off_delta, ts_delta, rec.create_time, rec.key,
                                             rec.key_len, rec.value, rec.value_len, kv, nh)
                 : batch_builder_add_at(&b, off_delta, ts_delta, rec.key, rec.key_len,
                                        rec.value, rec.value_len, kv, nh);
    }
    batch_iter_close(&it);
    free(kv);
    if (rv == TALLY_EOF) {
        /* The batch keeps its span and timestamps whatever survived. */
        b.last_offset_delta = h->last_offset_delta;
        b.max_ts_delta = (int64_t)((uint64_t)h->max_timestamp - (uint64_t)h->first_timestamp);
        size_t at = out->len;
        rv = batch_builder_finish(&b, (h->flags & BATCH_FLAG_LZ4) != 0, out);
        if (rv == 0) {
            batch_stamp(out->data + at, h->base_offset, h->first_timestamp, h->raft_index);
        }
    }
    batch_builder_free(&b);
    if (rv == TALLY_NOMEM) {
        err_printf(errmsg, "compact: out of memory");
    }
    return rv;
}

static int compact__open_output(struct compact__writer *w, const struct log_compaction *c,
                                const uint8_t *hdr, char *errmsg)
{
    char *path;
    int rv;
    snprintf(w->name, sizeof w->name, "%020" PRIu64 ".seg.%s", w->cs->base, COMPACT_SUFFIX);
    path = seg_join(c->dir, w->name);
    if (path == NULL) {
        err_printf(errmsg, "compact %s: out of memory", w->name);
        return TALLY_NOMEM;
    }
    rv = fs_open(path, O_RDWR | O_CREAT | O_TRUNC, w->name, &w->fd, errmsg);
    free(path);
    if (rv == 0) {
        /* The header is the original's: same format, same base offset. */
        buf_put(&w->out, hdr, SEG_HEADER_SIZE);
        rv = buf_ok(&w->out) ? 0 : TALLY_NOMEM;
    }
    return rv;
}

/* What the copying visitor works with. */
struct compact__copying {
    struct log_compaction *c;
    struct compact__map *m;
    struct compact__writer *w;
    struct buf rebuilt;        /* a batch rebuilt with its survivors */
    struct buf decisions;      /* compact__filter's scratch */
    uint64_t records_in, records_out;
    bool changed;              /* some record was removed */
};

static int compact__copy_visit(void *arg, uint64_t pos, const struct batch_header *hp,
                               const uint8_t *batch, char *errmsg)
{
    struct compact__copying *cp = arg;
    struct batch_header h = *hp;
    uint32_t kept = h.record_count;
    int rv = compact__pace(cp->c, h.batch_len, errmsg);
    if (rv != 0) {
        return rv;
    }
    cp->records_in += h.record_count;
    cp->rebuilt.len = 0;
    if (h.flags & BATCH_FLAG_KEYED) {
        rv = compact__filter(cp->c, cp->m, batch, &h, &kept, &cp->rebuilt, &cp->decisions,
                             errmsg);
        if (rv != 0) {
            err_wrap(errmsg, "position %" PRIu64, pos);
            return rv;
        }
    }
    cp->records_out += kept;
    if (kept == 0) {
        cp->changed = cp->changed || h.record_count > 0;
        return compact__add_gap(cp->w, &h, errmsg);
    }
    if ((rv = compact__emit_gap(cp->w, errmsg)) != 0) {
        return rv;
    }
    if (cp->rebuilt.len > 0) {
        struct batch_header nh;
        cp->changed = true;
        rv = batch_decode_header(cp->rebuilt.data, cp->rebuilt.len, &nh, errmsg);
        return rv != 0 ? rv : compact__emit(cp->w, cp->rebuilt.data, cp->rebuilt.len, &nh, errmsg);
    }
    return compact__emit(cp->w, batch, h.batch_len, &h, errmsg);
}

/* Write the compacted copy of one segment, or decide it needs none. */
static int compact__copy_segment(struct log_compaction *c, struct compact__map *m,
                                 struct compact_seg *cs, char *errmsg)
{
    struct compact__writer w;
    struct compact__copying cp;
    uint8_t hdr[SEG_HEADER_SIZE];
    int rv;

    memset(&w, 0, sizeof w);
    w.c = c;
    w.fd = -1;
    w.cs = cs;
    w.interval = c->index_interval;
    w.run_ts = INT64_MIN;
    buf_init(&w.out);
    memset(&cp, 0, sizeof cp);
    cp.c = c;
    cp.m = m;
    cp.w = &w;
    buf_init(&cp.rebuilt);
    buf_init(&cp.decisions);
    idx_init(&cs->x);
    cs->first_ts = INT64_MIN;
    cs->max_ts = INT64_MIN;
    cs->last_pos = 0;
    /* The copy is written as it is made (1 MiB at a time); if nothing was
     * removed it is dropped (log_compact_free removes it). */
    rv = compact__scan(c, cs, NULL, NULL, hdr, false, errmsg);
    if (rv == 0) {
        rv = compact__open_output(&w, c, hdr, errmsg);
    }
    if (rv == 0) {
        rv = compact__scan(c, cs, compact__copy_visit, &cp, NULL, true, errmsg);
    }
    if (rv == 0) {
        rv = compact__emit_gap(&w, errmsg);
    }
    buf_free(&cp.rebuilt);
    buf_free(&cp.decisions);
    c->st.records_in += cp.records_in;
    c->st.records_out += cp.records_out;
    if (rv == 0 && cp.changed) {
        rv = compact__writer_flush(&w, errmsg);
        if (rv == 0) {
            rv = fs_fsync(w.fd, w.name, errmsg);
        }
        /* The sealed segment's index ends with an entry for its last
         * batch (log.c relies on it when it opens the log). */
        if (rv == 0 && (cs->x.n == 0 || cs->x.e[cs->x.n - 1].pos != cs->last_pos) &&
            idx_add(&cs->x, (uint32_t)(cs->last_base - cs->base), (uint32_t)cs->last_pos,
                    w.run_ts) != 0) {
            rv = TALLY_NOMEM;
            err_printf(errmsg, "compact %s: out of memory", w.name);
        }
        if (rv == 0) {
            cs->x.loaded = true;
            rv = idx_write_as(&cs->x, c->dir, cs->base, COMPACT_SUFFIX, errmsg);
        }
        if (rv == 0) {
            cs->rewritten = true;
            cs->new_size = w.flushed;
        }
    }
    fs_close(w.fd);
    buf_free(&w.out);
    if (!cs->rewritten) {
        idx_free(&cs->x);
    }
    return rv;
}

static void compact__unlink(const char *dir, const char *name)
{
    char *path = seg_join(dir, name);
    char why[ERR_MSG_SIZE];
    if (path != NULL) {
        (void)fs_unlink(path, why); /* missing is fine; best effort */
        free(path);
    }
}

/* Remove the .cmp files of the segment at @base (missing ones are fine). */
static void compact__remove_seg_outputs(const char *dir, uint64_t base)
{
    static const char *const exts[] = {"seg", "idx", "tix"};
    for (size_t k = 0; k < 3; k++) {
        char name[SEG_NAME_SIZE + 16];
        snprintf(name, sizeof name, "%020" PRIu64 ".%s.%s", base, exts[k], COMPACT_SUFFIX);
        compact__unlink(dir, name);
    }
}

/* ------------------------------------------------------------------------
 * Pass 3: merging
 * ------------------------------------------------------------------------
 *
 * Compaction can leave a segment nearly or entirely empty (one gap batch
 * of 88 bytes, or a few surviving records), and a topic whose keys are
 * rewritten again and again would otherwise pile up such segments without
 * end, each with its two index files and open descriptor, and each costing
 * a reader one FETCH. So after the copies, runs of consecutive segments
 * whose results fit in merge_bytes (the log's segment size) together, and
 * whose offsets stay within 2^32 of the first one's base (index entries
 * are relative 32-bit), are written as one copy named after the first
 * segment: the batches back to back, as they are (verified again), with a
 * new index. log_compact_commit then swaps that copy in and removes the
 * others (log.c says how a crash in between is repaired). */

/* Size of segment @cs after pass 2. */
static uint64_t compact__result_size(const struct compact_seg *cs)
{
    return cs->rewritten ? cs->new_size : cs->size;
}

/* Open the file pass 2 left for @cs: its copy, or the original. */
static int compact__open_result(const struct log_compaction *c, const struct compact_seg *cs,
                                int *fd, char *errmsg)
{
    char name[SEG_NAME_SIZE + 16];
    char *path;
    int rv;
    if (cs->rewritten) {
        snprintf(name, sizeof name, "%020" PRIu64 ".seg.%s", cs->base, COMPACT_SUFFIX);
    } else {
        seg_file_name(name, cs->base, "seg");
    }
    path = seg_join(c->dir, name);
    if (path == NULL) {
        err_printf(errmsg, "compact %s: out of memory", name);
        return TALLY_NOMEM;
    }
    rv = fs_open(path, O_RDONLY, name, fd, errmsg);
    free(path);
    return rv;
}

/* Append every batch of [SEG_HEADER_SIZE, @size) of @fd to @w, verifying
 * each (both checksums) and that offsets go on from *@expect. */
static int compact__append_file(struct log_compaction *c, struct compact__writer *w,
                                int fd, uint64_t size, uint64_t *expect, struct buf *scratch,
                                char *errmsg)
{
    uint64_t pos = SEG_HEADER_SIZE;
    while (pos < size) {
        uint8_t hb[BATCH_HEADER_SIZE];
        struct batch_header h;
        size_t got = 0;
        int rv = compact__cancelled(c, errmsg);
        if (rv == 0) {
            rv = fs_pread(fd, hb, sizeof hb, pos, &got, w->name, errmsg);
        }
        if (rv == 0 && got != sizeof hb) {
            rv = ERR_CORRUPT(errmsg, "position %" PRIu64 ": batch header cut short", pos);
        }
        if (rv == 0) {
            rv = batch_decode_header(hb, sizeof hb, &h, errmsg);
        }
        if (rv == 0 && (h.batch_len > size - pos || h.base_offset != *expect)) {
            rv = ERR_CORRUPT(errmsg, "position %" PRIu64 ": batch at offset %" PRIu64
                             " of %u bytes does not continue offset %" PRIu64 " in %" PRIu64
                             " bytes", pos, h.base_offset, h.batch_len, *expect, size);
        }
        if (rv != 0) {
            return rv;
        }
        scratch->len = 0;
        if (buf_reserve(scratch, h.batch_len) == NULL) {
            err_printf(errmsg, "compact %s: out of memory", w->name);
            return TALLY_NOMEM;
        }
        rv = fs_pread(fd, scratch->data, h.batch_len, pos, &got, w->name, errmsg);
        if (rv == 0 && got != h.batch_len) {
            rv = ERR_CORRUPT(errmsg, "position %" PRIu64 ": batch cut short", pos);
        }
        if (rv == 0) {
            rv = compact__pace(c, h.batch_len, errmsg);
        }
        if (rv == 0) {
            rv = batch_verify(scratch->data, h.batch_len, &h, errmsg);
        }
        if (rv == 0) {
            rv = compact__emit(w, scratch->data, h.batch_len, &h, errmsg);
        }
        if (rv != 0) {
            err_wrap(errmsg, "merge: position %" PRIu64, pos);
            return rv;
        }
        *expect = batch_last_offset(&h) + 1;
        pos += h.batch_len;
    }
    return 0;
}

/* Write segments [@i, @j) of the plan as one copy named after segment @i. */
static int compact__merge_group(struct log_compaction *c, size_t i, size_t j, char *errmsg)
{
    struct compact_seg *lead = &c->segs[i];
    struct compact__writer w;
    struct buf scratch;
    uint8_t hdr[SEG_HEADER_SIZE];
    uint64_t expect = lead->base;
    uint64_t lead_size = compact__result_size(lead);
    int *fds;
    size_t got = 0;
    int rv = 0;

    if (j < i + 2 || (fds = malloc((j - i) * sizeof *fds)) == NULL) {
        err_printf(errmsg, "compact %s: out of memory", c->dir);
        return TALLY_NOMEM;
    }
    for (size_t k = 0; k < j - i; k++) {
        fds[k] = -1;
    }
    /* Open every source first: the leader's own copy, if it has one, is
     * read through its descriptor while a new file takes its name. */
    for (size_t k = i; rv == 0 && k < j; k++) {
        rv = compact__open_result(c, &c->segs[k], &fds[k - i], errmsg);
    }
    if (rv == 0) {
        rv = fs_pread(fds[0], hdr, sizeof hdr, 0, &got, "segment header", errmsg);
        if (rv == 0 && got != sizeof hdr) {
            rv = ERR_CORRUPT(errmsg, "segment %020" PRIu64 ".seg: header cut short", lead->base);
        }
    }
    if (rv != 0) {
        for (size_t k = i; k < j; k++) {
            fs_close(fds[k - i]);
        }
        free(fds);
        return rv;
    }
    /* The copies of pass 2 are read through their descriptors now. */
    for (size_t k = i; k < j; k++) {
        if (c->segs[k].rewritten) {
            compact__remove_seg_outputs(c->dir, c->segs[k].base);
        }
    }
    memset(&w, 0, sizeof w);
    w.c = c;
    w.fd = -1;
    w.cs = lead;
    w.interval = c->index_interval;
    w.run_ts = INT64_MIN;
    buf_init(&w.out);
    buf_init(&scratch);
    idx_free(&lead->x);
    idx_init(&lead->x);
    lead->rewritten = false;
    lead->first_ts = INT64_MIN;
    lead->max_ts = INT64_MIN;
    lead->last_pos = 0;
    rv = compact__open_output(&w, c, hdr, errmsg);
    for (size_t k = i; rv == 0 && k < j; k++) {
        rv = compact__append_file(c, &w, fds[k - i],
                                  k == i ? lead_size : compact__result_size(&c->segs[k]), &expect,
                                  &scratch, errmsg);
        if (rv != 0) {
            err_wrap(errmsg, "segment %020" PRIu64 ".seg", c->segs[k].base);
        }
    }
    for (size_t k = i; k < j; k++) {
        fs_close(fds[k - i]);
    }
    free(fds);
    buf_free(&scratch);
    if (rv == 0) {
        rv = compact__writer_flush(&w, errmsg);
    }
    if (rv == 0) {
        rv = fs_fsync(w.fd, w.name, errmsg);
    }
    if (rv == 0 && (lead->x.n == 0 || lead->x.e[lead->x.n - 1].pos != lead->last_pos) &&
        idx_add(&lead->x, (uint32_t)(lead->last_base - lead->base), (uint32_t)lead->last_pos,
                w.run_ts) != 0) {
        rv = TALLY_NOMEM;
        err_printf(errmsg, "compact %s: out of memory", w.name);
    }
    if (rv == 0) {
        lead->x.loaded = true;
        rv = idx_write_as(&lead->x, c->dir, lead->base, COMPACT_SUFFIX, errmsg);
    }
    fs_close(w.fd);
    buf_free(&w.out);
    if (rv != 0) {
        return rv;
    }
    lead->rewritten = true;
    lead->new_size = w.flushed;
    lead->n_merged = (unsigned)(j - i - 1);
    for (size_t k = i + 1; k < j; k++) {
        c->segs[k].merged = true;
        c->segs[k].rewritten = false;
        c->segs[k].new_size = 0;
        idx_free(&c->segs[k].x);
    }
    return 0;
}

static int compact__merge(struct log_compaction *c, char *errmsg)
{
    int rv = 0;
    for (size_t i = 0; rv == 0 && i < c->n;) {
        uint64_t size = compact__result_size(&c->segs[i]);
        size_t j = i + 1;
        while (j < c->n) {
            uint64_t add = compact__result_size(&c->segs[j]) - SEG_HEADER_SIZE;
            if (size + add > c->merge_bytes || c->segs[j].next - 1 - c->segs[i].base > UINT32_MAX) {
                break;
            }
            size += add;
            j++;
        }
        if (j - i >= 2) {
            rv = compact__merge_group(c, i, j, errmsg);
            c->st.merged += (unsigned)(j - i - 1);
        }
        i = j;
    }
    return rv;
}

/* ------------------------------------------------------------------------
 * The job
 * ------------------------------------------------------------------------ */

void compact_remove_outputs(struct log_compaction *c)
{
    for (size_t i = 0; i < c->n; i++) {
        compact__remove_seg_outputs(c->dir, c->segs[i].base);
    }
}

/* Which planned segments are not (all) in the page cache before the job
 * reads them: those it drops from the cache after its last read. */
static void compact__note_cold(struct log_compaction *c)
{
    for (size_t i = 0; i < c->n; i++) {
        struct seg s;
        char why[ERR_MSG_SIZE];
        seg_init(&s, c->segs[i].base);
        if (seg_open(&s, c->dir, 0, why) == 0) {
            c->segs[i].cold = !fs_cached(s.fd, c->segs[i].size);
        }
        seg_close(&s);
    }
}

int compact_run(struct log_compaction *c, char *errmsg)
{
    struct compact__map m;
    size_t mapped = c->map_from;
    int rv = compact__map_init(&m, c->p.map_bytes);
    if (rv != 0) {
        err_printf(errmsg, "compact %s: out of memory for the key map", c->dir);
        return rv;
    }
    c->start_ns = compact__now_ns();
    c->pace_start_ns = c->start_ns;
    c->progress_ns = c->start_ns + (uint64_t)COMPACT_PROGRESS_S * 1000000000u;
    compact__note_cold(c);
    c->doing = "mapping keys";
    while (rv == 0 && mapped < c->n) {
        bool full = false;
        rv = compact__map_segment(c, &m, &c->segs[mapped], &full, errmsg);
        if (rv == 0 && full) {
            if (mapped == c->map_from) {
                err_printf(errmsg,
                           "compact %s: the keys of segment %020" PRIu64 ".seg do not fit "
                           "in the key map (%zu bytes, %zu keys): raise compaction_buffer_bytes",
                           c->dir, c->segs[mapped].base, c->p.map_bytes, m.n);
                rv = TALLY_NOMEM;
            }
            break;
        }
        mapped++;
    }
    /* The plan ends where the map filled; the segments cut off were
     * never touched. */
    for (size_t i = mapped; i < c->n; i++) {
        c->segs[i].old_fd = -1;
    }
    c->n = mapped;
    c->doing = "copying";
    for (size_t i = 0; rv == 0 && i < c->n; i++) {
        c->st.segments++;
        c->st.bytes_in += c->segs[i].size;
        rv = compact__copy_segment(c, &m, &c->segs[i], errmsg);
    }
    compact__map_free(&m);
    if (rv == 0 && c->merge_bytes > SEG_HEADER_SIZE) {
        c->doing = "merging";
        rv = compact__merge(c, errmsg);
    }
    c->ran = rv == 0;
    return rv;
}
