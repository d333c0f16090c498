/* One segment file: header, append, batch walking and full scans.
 *
 * SEGMENT FILE, format version 1 (all integers little-endian)
 *
 *   File name: the base offset as 20 decimal digits, then ".seg"
 *   (00000000000000000042.seg), so names sort in offset order.
 *
 *   offset size field
 *   0      4    magic "TLYS"
 *   4      1    segment format version (1)
 *   5      3    reserved, zero
 *   8      8    base_offset: offset of the first batch (equals the name)
 *   16     8    reserved, zero
 *   24     8    header_checksum: XXH3-64 of bytes [0, 24)
 *   32     ...  batches back to back, each exactly as lib/batch.c lays it
 *                out (88-byte header + payload), with no padding
 *
 * The header is written and fsynced when the file is created, before any
 * batch, so a bad header on a file holding batches is corruption, while a
 * short or bad header on a file with no batches is a crash during creation
 * (repaired by SEG_OPEN_REPAIR). The file holds at most 4 GiB - 1 bytes,
 * because index files store positions as u32.
 *
 * Batches in a segment have contiguous offsets: each batch's base_offset
 * is the previous batch's last offset + 1, and the first one's is the
 * segment's base offset. */
#include "log/seg.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/byte.h"
#include "lib/codec.h"
#include "lib/fs.h"
#include "lib/logger.h"

#define SEG__OFF_MAGIC 0
#define SEG__OFF_VERSION 4
#define SEG__OFF_BASE 8
#define SEG__OFF_CHECKSUM 24

/* Read size of a scan: large enough that a scan is a few big reads. */
#define SEG__SCAN_CHUNK (1u << 20)

void seg_file_name(char *out, uint64_t base, const char *ext)
{
    snprintf(out, SEG_NAME_SIZE, "%020" PRIu64 ".%s", base, ext);
}

bool seg_parse_name(const char *name, uint64_t *base, const char **ext)
{
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        unsigned d;
        if (name[i] < '0' || name[i] > '9') {
            return false;
        }
        d = (unsigned)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    if (name[20] != '.') {
        return false;
    }
    *base = v;
    *ext = name + 21;
    return true;
}

char *seg_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p != NULL) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

void seg_init(struct seg *s, uint64_t base)
{
    memset(s, 0, sizeof *s);
    s->base = base;
    s->next = base;
    s->size = SEG_HEADER_SIZE;
    s->first_ts = INT64_MIN;
    s->max_ts = INT64_MIN;
    s->last_base = base;
    s->fd = -1;
    seg_file_name(s->name, base, "seg");
}

static void seg__encode_header(uint8_t *b, uint64_t base)
{
    memset(b, 0, SEG_HEADER_SIZE);
    memcpy(b + SEG__OFF_MAGIC, SEG_MAGIC, 4);
    b[SEG__OFF_VERSION] = SEG_VERSION;
    byte_put_u64(b + SEG__OFF_BASE, base);
    byte_put_u64(b + SEG__OFF_CHECKSUM, codec_checksum(b, SEG__OFF_CHECKSUM));
}

static int seg__check_header(const struct seg *s, const uint8_t *b, size_t got, char *errmsg)
{
    uint64_t base;
    if (got < SEG_HEADER_SIZE) {
        return ERR_CORRUPT(errmsg, "segment %s: header truncated (%zu of %d bytes)", s->name, got,
                           SEG_HEADER_SIZE);
    }
    if (memcmp(b + SEG__OFF_MAGIC, SEG_MAGIC, 4) != 0) {
        return ERR_CORRUPT(errmsg, "segment %s: position 0: bad segment magic", s->name);
    }
    if (codec_checksum(b, SEG__OFF_CHECKSUM) != byte_get_u64(b + SEG__OFF_CHECKSUM)) {
        return ERR_CORRUPT(errmsg, "segment %s: position 0: segment header checksum mismatch",
                           s->name);
    }
    if (b[SEG__OFF_VERSION] != SEG_VERSION) {
        err_printf(errmsg, "segment %s: unsupported segment format version %u (this build reads %u)",
                   s->name, b[SEG__OFF_VERSION], SEG_VERSION);
        return TALLY_VERSION;
    }
    base = byte_get_u64(b + SEG__OFF_BASE);
    if (base != s->base) {
        return ERR_CORRUPT(errmsg, "segment %s: header says base offset %" PRIu64, s->name, base);
    }
    return 0;
}

static int seg__write_header(struct seg *s, char *errmsg)
{
    uint8_t b[SEG_HEADER_SIZE];
    int rv;
    seg__encode_header(b, s->base);
    rv = fs_pwrite(s->fd, b, sizeof b, 0, s->name, errmsg);
    if (rv == 0) {
        rv = fs_truncate(s->fd, SEG_HEADER_SIZE, s->name, errmsg);
    }
    if (rv == 0) {
        rv = fs_fsync(s->fd, s->name, errmsg);
    }
    return rv;
}

/* Read-only descriptors open now, in the whole process: the log layer
 * keeps their number under its cache size (log_set_fd_cache). Atomic:
 * compaction workers open segments too. */
static atomic_size_t seg__readonly_open;

int seg_take_fd(struct seg *s)
{
    int fd = s->fd;
    if (fd >= 0 && !s->writable) {
        atomic_fetch_sub(&seg__readonly_open, 1);
    }
    s->fd = -1;
    return fd;
}

size_t seg_readonly_open(void)
{
    return atomic_load(&seg__readonly_open);
}

int seg_ensure_open(struct seg *s, char *errmsg)
{
    int rv;
    if (s->fd >= 0) {
        return 0;
    }
    if (s->path == NULL) {
        err_printf(errmsg, "segment %s: not open", s->name);
        return TALLY_INVAL;
    }
    rv = fs_open(s->path, s->writable ? O_RDWR : O_RDONLY, s->name, &s->fd, errmsg);
    if (rv == 0 && !s->writable) {
        atomic_fetch_add(&seg__readonly_open, 1);
    }
    return rv;
}

bool seg_release(struct seg *s)
{
    if (s->fd < 0 || s->dirty) {
        /* A dirty file keeps its descriptor until its fsync: a write-back
         * error is reported only to descriptors open when it happened. */
        return false;
    }
    fs_close(s->fd);
    s->fd = -1;
    if (!s->writable) {
        atomic_fetch_sub(&seg__readonly_open, 1);
    }
    return true;
}

int seg_create(struct seg *s, const char *dir, char *errmsg)
{
    int rv;
    s->path = seg_join(dir, s->name);
    if (s->path == NULL) {
        err_printf(errmsg, "create segment %s: out of memory", s->name);
        return TALLY_NOMEM;
    }
    rv = fs_open(s->path, O_RDWR | O_CREAT | O_EXCL, s->name, &s->fd, errmsg);
    if (rv != 0) {
        seg_close(s);
        return rv;
    }
    s->writable = true;
    rv = seg__write_header(s, errmsg);
    if (rv != 0) {
        /* Take back the file this call made (a full disk fails the header
         * write): left behind, an empty segment reads as damage to the
         * offline verifier and makes the next create of the same name fail
         * with EEXIST. Best effort: the header's error is the one to report. */
        char ignored[ERR_MSG_SIZE];
        (void)fs_unlink(s->path, ignored);
        seg_close(s);
        return rv;
    }
    s->size = SEG_HEADER_SIZE;
    return 0;
}

int seg_open(struct seg *s, const char *dir, unsigned flags, char *errmsg)
{
    uint8_t b[SEG_HEADER_SIZE];
    size_t got;
    uint64_t size;
    int rv;

    if (flags & SEG_OPEN_REPAIR) {
        flags |= SEG_OPEN_WRITE;
    }
    s->path = seg_join(dir, s->name);
    if (s->path == NULL) {
        err_printf(errmsg, "open segment %s: out of memory", s->name);
        return TALLY_NOMEM;
    }
    rv = fs_open(s->path, (flags & SEG_OPEN_WRITE) ? O_RDWR : O_RDONLY, s->name, &s->fd, errmsg);
    if (rv == 0) {
        rv = fs_size(s->fd, &size, s->name, errmsg);
    }
    if (rv == 0) {
        rv = fs_pread(s->fd, b, sizeof b, 0, &got, s->name, errmsg);
    }
    if (rv != 0) {
        seg_close(s);
        return rv;
    }
    s->writable = (flags & SEG_OPEN_WRITE) != 0;
    if (!s->writable) {
        atomic_fetch_add(&seg__readonly_open, 1);
    }
    rv = seg__check_header(s, b, got, errmsg);
    if (rv == TALLY_CORRUPT && (flags & SEG_OPEN_REPAIR) && size <= SEG_HEADER_SIZE) {
        /* No batch can follow a header that never made it to disk: this is
         * a crash while the file was being created. */
        TLOG_WARN("log", "%s: rewriting the header of an empty segment (%s)", s->path, errmsg);
        rv = seg__write_header(s, errmsg);
        size = SEG_HEADER_SIZE;
    }
    if (rv == 0 && size > SEG_MAX_SIZE) {
        rv = ERR_CORRUPT(errmsg, "segment %s: %" PRIu64 " bytes, more than the 4 GiB limit",
                         s->name, size);
    }
    if (rv != 0) {
        seg_close(s);
        return rv;
    }
    s->size = size;
    return 0;
}

void seg_close(struct seg *s)
{
    if (s->fd >= 0 && !s->writable) {
        atomic_fetch_sub(&seg__readonly_open, 1);
    }
    fs_close(s->fd);
    s->fd = -1;
    free(s->path);
    s->path = NULL;
}

int seg_append(struct seg *s, const void *batch, size_t len, const struct batch_header *h,
               char *errmsg)
{
    int rv = seg_ensure_open(s, errmsg);
    if (rv == 0) {
        rv = fs_pwrite(s->fd, batch, len, s->size, s->name, errmsg);
    }
    if (rv != 0 && s->fd >= 0) {
        /* Cut a partial write back rather than leave a torn batch for the
         * next append to land behind (best effort: the caller is about to
         * mark the log failed anyway). */
        char ignored[ERR_MSG_SIZE];
        (void)fs_truncate(s->fd, s->size, s->name, ignored);
        return rv;
    }
    if (s->next == s->base && s->size == SEG_HEADER_SIZE) {
        s->first_ts = h->first_timestamp;
    }
    s->last_pos = s->size;
    s->last_base = h->base_offset;
    s->size += len;
    s->next = batch_last_offset(h) + 1;
    if (h->max_timestamp > s->max_ts) {
        s->max_ts = h->max_timestamp;
    }
    s->last_raft_index = h->raft_index;
    s->dirty = true;
    return 0;
}

int seg_sync(struct seg *s, char *errmsg)
{
    int rv;
    if (!s->dirty) {
        return 0;
    }
    rv = fs_fsync(s->fd, s->name, errmsg); /* (a dirty segment is never released) */
    if (rv == 0) {
        s->dirty = false;
    }
    return rv;
}

int seg_truncate(struct seg *s, uint64_t size, char *errmsg)
{
    int rv = seg_ensure_open(s, errmsg);
    if (rv == 0) {
        rv = fs_truncate(s->fd, size, s->name, errmsg);
    }
    if (rv == 0) {
        s->dirty = true;
    }
    return rv;
}

int seg_read(struct seg *s, uint64_t pos, void *buf, size_t n, char *errmsg)
{
    size_t got;
    int rv = seg_ensure_open(s, errmsg);
    if (rv == 0) {
        rv = fs_pread(s->fd, buf, n, pos, &got, s->name, errmsg);
    }
    if (rv != 0) {
        return rv;
    }
    if (got != n) {
        return ERR_CORRUPT(errmsg, "segment %s: position %" PRIu64 ": file ends %zu bytes early",
                           s->name, pos, n - got);
    }
    return 0;
}

void seg_walker_init(struct seg_walker *w, struct seg *s, uint8_t *buf, size_t cap)
{
    w->s = s;
    w->buf = buf;
    w->cap = cap;
    w->win_pos = 0;
    w->win_len = 0;
}

int seg_walk_header(struct seg_walker *w, uint64_t pos, uint64_t end, size_t ahead,
                    struct batch_header *h, char *errmsg)
{
    char why[ERR_MSG_SIZE];
    int rv;

    if (pos > end || end - pos < BATCH_HEADER_SIZE) {
        return ERR_CORRUPT(errmsg,
                           "segment %s: position %" PRIu64 ": batch header cut short by the end "
                           "of the segment at %" PRIu64,
                           w->s->name, pos, end);
    }
    if (pos < w->win_pos || pos + BATCH_HEADER_SIZE > w->win_pos + w->win_len) {
        size_t want = ahead > BATCH_HEADER_SIZE ? ahead : BATCH_HEADER_SIZE;
        size_t got;
        if (want > w->cap) {
            want = w->cap;
        }
        if (want > end - pos) {
            want = (size_t)(end - pos);
        }
        w->win_len = 0;
        rv = seg_ensure_open(w->s, errmsg);
        if (rv == 0) {
            rv = fs_pread(w->s->fd, w->buf, want, pos, &got, w->s->name, errmsg);
        }
        if (rv != 0) {
            return rv;
        }
        if (got < BATCH_HEADER_SIZE) {
            return ERR_CORRUPT(errmsg, "segment %s: position %" PRIu64 ": file ends early",
                               w->s->name, pos);
        }
        w->win_pos = pos;
        w->win_len = got;
    }
    rv = batch_decode_header(w->buf + (pos - w->win_pos), BATCH_HEADER_SIZE, h, why);
    if (rv != 0) {
        err_printf(errmsg, "segment %s: position %" PRIu64 ": %s", w->s->name, pos, why);
        return rv;
    }
    if (h->batch_len > end - pos) {
        return ERR_CORRUPT(errmsg,
                           "segment %s: position %" PRIu64 ": batch of %u bytes runs past the "
                           "end of the segment at %" PRIu64,
                           w->s->name, pos, h->batch_len, end);
    }
    return 0;
}

/* Record a problem found by a scan. */
static void seg__scan_bad(struct seg *s, struct seg_scan_info *info, int code, bool torn,
                          uint64_t pos, const char *what)
{
    info->bad = code;
    info->torn = torn;
    info->bad_pos = pos;
    snprintf(info->what, sizeof info->what, "%s", what);
    snprintf(info->why, sizeof info->why, "segment %s: position %" PRIu64 ": %s", s->name, pos,
             what);
}

/* The read buffer of a scan: a window of the file. */
struct seg__win {
    uint8_t *buf;     /* owned */
    size_t cap;       /* allocated bytes */
    uint64_t pos;     /* file position of buf[0] */
    size_t len;       /* valid bytes */
};

/* Make [pos, pos + need) resident, reading ahead up to the window size but
 * never past @left bytes from @pos. *short_read is set when the file holds
 * fewer than @need bytes there. Grows the buffer for a batch larger than
 * it (batch_len is at most BATCH_MAX_SIZE, checked by the header decode). */
static int seg__fill(struct seg *s, struct seg__win *w, uint64_t pos, size_t need,
                     uint64_t left, bool *short_read, char *errmsg)
{
    size_t want, got;
    int rv;
    *short_read = false;
    if (pos >= w->pos && pos + need <= w->pos + w->len) {
        return 0;
    }
    if (need > w->cap) {
        uint8_t *nb = realloc(w->buf, need);
        if (nb == NULL) {
            err_printf(errmsg, "scan segment %s: out of memory", s->name);
            return TALLY_NOMEM;
        }
        w->buf = nb;
        w->cap = need;
    }
    want = w->cap;
    if (want > left) {
        want = (size_t)left;
    }
    w->len = 0;
    rv = seg_ensure_open(s, errmsg);
    if (rv == 0) {
        rv = fs_pread(s->fd, w->buf, want, pos, &got, s->name, errmsg);
    }
    if (rv != 0) {
        return rv;
    }
    w->pos = pos;
    w->len = got;
    *short_read = got < need;
    return 0;
}

int seg_scan(struct seg *s, uint64_t from, uint64_t end, uint64_t expect_offset,
             seg_visit_fn visit, void *arg, struct seg_scan_info *info, char *errmsg)
{
    struct seg__win w = {NULL, 0, from, 0};
    uint64_t pos = from;
    int rv = 0;

    memset(info, 0, sizeof *info);
    info->end = from;
    info->next = expect_offset;
    info->first_ts = INT64_MIN;
    info->max_ts = INT64_MIN;
    w.buf = malloc(SEG__SCAN_CHUNK);
    if (w.buf == NULL) {
        err_printf(errmsg, "scan segment %s: out of memory", s->name);
        return TALLY_NOMEM;
    }
    w.cap = SEG__SCAN_CHUNK;
    while (pos < end) {
        struct batch_header h;
        char why[ERR_MSG_SIZE];
        uint64_t left = end - pos;
        const uint8_t *p;
        bool short_read;
        int code;

        if (left < BATCH_HEADER_SIZE) {
            snprintf(why, sizeof why, "incomplete batch header (%" PRIu64 " of %d bytes)", left,
                     BATCH_HEADER_SIZE);
            seg__scan_bad(s, info, TALLY_CORRUPT, true, pos, why);
            break;
        }
        rv = seg__fill(s, &w, pos, BATCH_HEADER_SIZE, left, &short_read, errmsg);
        if (rv != 0) {
            break;
        }
        if (short_read) {
            seg__scan_bad(s, info, TALLY_CORRUPT, true, pos, "file ends early");
            break;
        }
        code = batch_decode_header(w.buf + (pos - w.pos), BATCH_HEADER_SIZE, &h, why);
        if (code != 0) {
            seg__scan_bad(s, info, code, false, pos, why);
            break;
        }
        if (h.batch_len > left) {
            snprintf(why, sizeof why, "incomplete batch (%" PRIu64 " of %u bytes)", left,
                     h.batch_len);
            seg__scan_bad(s, info, TALLY_CORRUPT, true, pos, why);
            break;
        }
        rv = seg__fill(s, &w, pos, h.batch_len, left, &short_read, errmsg);
        if (rv != 0) {
            break;
        }
        if (short_read) {
            seg__scan_bad(s, info, TALLY_CORRUPT, true, pos, "file ends early");
            break;
        }
        p = w.buf + (pos - w.pos);
        code = batch_verify(p, h.batch_len, &h, why);
        if (code != 0) {
            seg__scan_bad(s, info, code, false, pos, why);
            break;
        }
        if (h.base_offset != info->next) {
            snprintf(why, sizeof why, "batch base offset %" PRIu64 ", expected %" PRIu64,
                     h.base_offset, info->next);
            seg__scan_bad(s, info, TALLY_CORRUPT, false, pos, why);
            break;
        }
        if (h.base_offset > UINT64_MAX - 1 - h.last_offset_delta) {
            seg__scan_bad(s, info, TALLY_CORRUPT, false, pos, "batch offsets overflow");
            break;
        }
        if (visit != NULL) {
            rv = visit(arg, pos, &h, p, errmsg);
            if (rv != 0) {
                break;
            }
        }
        if (info->batches == 0) {
            info->first_ts = h.first_timestamp;
        }
        if (h.max_timestamp > info->max_ts) {
            info->max_ts = h.max_timestamp;
        }
        info->batches++;
        info->records += h.record_count;
        info->last_pos = pos;
        info->last_base = h.base_offset;
        info->last_raft_index = h.raft_index;
        info->next = batch_last_offset(&h) + 1;
        pos += h.batch_len;
        info->end = pos;
    }
    free(w.buf);
    return rv;
}
