/* The sparse offset index and time index of one segment (see idx.h).
 *
 * INDEX FILES, format version 1 (all integers little-endian)
 *
 *   File names: the segment's name with ".idx" (offset index) or ".tix"
 *   (time index) instead of ".seg".
 *
 *   Header, both kinds:
 *   offset size field
 *   0      4    magic "TLYX"
 *   4      1    index format version (1)
 *   5      1    kind: 'O' offset index, 'T' time index
 *   6      2    entry size in bytes (8 for 'O', 16 for 'T')
 *   8      8    base offset of the segment
 *   16     8    header_checksum: XXH3-64 of bytes [0, 16)
 *   24     ...  entries, back to back, in increasing offset order
 *
 *   Offset index entry (8 bytes):
 *   0      4    rel: batch base_offset - segment base offset
 *   4      4    pos: file position of that batch in the segment
 *
 *   Time index entry (16 bytes):
 *   0      8    ts: highest max_timestamp of the batches from the start of
 *                the segment through this one (ms; so ts never decreases)
 *   8      4    rel, as above
 *   12     4    pos, as above
 *
 * Entries carry no checksum of their own: they are checked on load (both
 * files must agree entry by entry, rel and pos strictly increasing and
 * inside the segment, the first entry at the first batch, the last at the
 * last batch for a sealed segment) and each one used is checked against
 * the batch header it points at. Anything off means a rebuild from the
 * segment, which is the only source of truth. */
#include "log/idx.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/byte.h"
#include "lib/codec.h"
#include "lib/err.h"
#include "lib/fs.h"
#include "log/seg.h"

#define IDX__OFF_MAGIC 0
#define IDX__OFF_VERSION 4
#define IDX__OFF_KIND 5
#define IDX__OFF_ENTRY_SIZE 6
#define IDX__OFF_BASE 8
#define IDX__OFF_CHECKSUM 16

void idx_init(struct idx *x)
{
    memset(x, 0, sizeof *x);
}

void idx_free(struct idx *x)
{
    free(x->e);
    idx_init(x);
}

void idx_clear(struct idx *x)
{
    x->n = 0;
    x->flushed = 0;
}

int idx_add(struct idx *x, uint32_t rel, uint32_t pos, int64_t ts)
{
    if (x->n == x->cap) {
        size_t ncap = x->cap ? x->cap * 2 : 64;
        struct idx_entry *ne = realloc(x->e, ncap * sizeof *ne);
        if (ne == NULL) {
            return TALLY_NOMEM;
        }
        x->e = ne;
        x->cap = ncap;
    }
    x->e[x->n].rel = rel;
    x->e[x->n].pos = pos;
    x->e[x->n].ts = ts;
    x->n++;
    return 0;
}

int idx_maybe_add(struct idx *x, uint32_t interval, uint32_t rel, uint32_t pos, int64_t ts)
{
    if (x->n > 0 && pos - x->e[x->n - 1].pos < interval) {
        return 0;
    }
    return idx_add(x, rel, pos, ts);
}

size_t idx_find(const struct idx *x, uint32_t rel)
{
    size_t lo = 0, hi = x->n; /* answer is in [lo - 1, hi) */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (x->e[mid].rel <= rel) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo == 0 ? IDX_NONE : lo - 1;
}

size_t idx_find_time(const struct idx *x, int64_t ts)
{
    size_t lo = 0, hi = x->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (x->e[mid].ts < ts) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo == 0 ? IDX_NONE : lo - 1;
}

void idx_cut(struct idx *x, uint64_t pos)
{
    while (x->n > 0 && x->e[x->n - 1].pos >= pos) {
        x->n--;
    }
    x->flushed = 0;
}

void idx_file_name(char *out, uint64_t base, int kind)
{
    seg_file_name(out, base, kind == IDX_KIND_OFFSET ? "idx" : "tix");
}

static size_t idx__entry_size(int kind)
{
    return kind == IDX_KIND_OFFSET ? IDX_OFFSET_ENTRY_SIZE : IDX_TIME_ENTRY_SIZE;
}

static void idx__encode_header(uint8_t *b, uint64_t base, int kind)
{
    memset(b, 0, IDX_HEADER_SIZE);
    memcpy(b + IDX__OFF_MAGIC, IDX_MAGIC, 4);
    b[IDX__OFF_VERSION] = IDX_VERSION;
    b[IDX__OFF_KIND] = (uint8_t)kind;
    byte_put_u16(b + IDX__OFF_ENTRY_SIZE, (uint16_t)idx__entry_size(kind));
    byte_put_u64(b + IDX__OFF_BASE, base);
    byte_put_u64(b + IDX__OFF_CHECKSUM, codec_checksum(b, IDX__OFF_CHECKSUM));
}

static void idx__encode_entry(uint8_t *p, const struct idx_entry *e, int kind)
{
    if (kind == IDX_KIND_OFFSET) {
        byte_put_u32(p, e->rel);
        byte_put_u32(p + 4, e->pos);
    } else {
        byte_put_u64(p, (uint64_t)e->ts);
        byte_put_u32(p + 8, e->rel);
        byte_put_u32(p + 12, e->pos);
    }
}

static void idx__decode_entry(const uint8_t *p, struct idx_entry *e, int kind)
{
    if (kind == IDX_KIND_OFFSET) {
        e->rel = byte_get_u32(p);
        e->pos = byte_get_u32(p + 4);
        e->ts = 0;
    } else {
        e->ts = (int64_t)byte_get_u64(p);
        e->rel = byte_get_u32(p + 8);
        e->pos = byte_get_u32(p + 12);
    }
}

static int idx__check_header(const uint8_t *b, const char *name, uint64_t base, int kind,
                             char *errmsg)
{
    if (memcmp(b + IDX__OFF_MAGIC, IDX_MAGIC, 4) != 0) {
        return ERR_CORRUPT(errmsg, "index %s: bad magic", name);
    }
    if (codec_checksum(b, IDX__OFF_CHECKSUM) != byte_get_u64(b + IDX__OFF_CHECKSUM)) {
        return ERR_CORRUPT(errmsg, "index %s: header checksum mismatch", name);
    }
    if (b[IDX__OFF_VERSION] != IDX_VERSION) {
        err_printf(errmsg, "index %s: unsupported index format version %u (this build reads %u)",
                   name, b[IDX__OFF_VERSION], IDX_VERSION);
        return TALLY_VERSION;
    }
    if (b[IDX__OFF_KIND] != kind || byte_get_u16(b + IDX__OFF_ENTRY_SIZE) != idx__entry_size(kind)) {
        return ERR_CORRUPT(errmsg, "index %s: wrong kind or entry size", name);
    }
    if (byte_get_u64(b + IDX__OFF_BASE) != base) {
        return ERR_CORRUPT(errmsg, "index %s: header names base offset %" PRIu64, name,
                           byte_get_u64(b + IDX__OFF_BASE));
    }
    return 0;
}

/* Write the entries [from, n) of one file, preceded by the header when
 * @from is 0 (then the file is also cut to its exact length). */
static int idx__write_kind(const struct idx *x, const char *path, const char *name,
                           uint64_t base, int kind, size_t from, bool sync, bool trunc,
                           char *errmsg)
{
    size_t esz = idx__entry_size(kind);
    size_t off = from == 0 ? IDX_HEADER_SIZE : 0;
    size_t len = off + (x->n - from) * esz;
    uint8_t *buf = malloc(len ? len : 1);
    int fd = -1;
    int rv;

    if (buf == NULL) {
        err_printf(errmsg, "write index %s: out of memory", name);
        return TALLY_NOMEM;
    }
    if (from == 0) {
        idx__encode_header(buf, base, kind);
    }
    for (size_t i = from; i < x->n; i++) {
        idx__encode_entry(buf + off + (i - from) * esz, &x->e[i], kind);
    }
    rv = fs_open(path, O_RDWR | O_CREAT | (trunc ? O_TRUNC : 0), name, &fd, errmsg);
    if (rv == 0) {
        uint64_t pos = from == 0 ? 0 : IDX_HEADER_SIZE + from * esz;
        rv = fs_pwrite(fd, buf, len, pos, name, errmsg);
    }
    if (rv == 0 && from == 0) {
        rv = fs_truncate(fd, len, name, errmsg);
    }
    if (rv == 0 && sync) {
        rv = fs_fsync(fd, name, errmsg);
    }
    fs_close(fd);
    free(buf);
    return rv;
}

int idx_flush(struct idx *x, const char *dir, uint64_t base, bool sync, char *errmsg)
{
    static const int kinds[2] = {IDX_KIND_OFFSET, IDX_KIND_TIME};
    if (x->flushed == x->n && x->flushed > 0 && !sync) {
        return 0;
    }
    for (int k = 0; k < 2; k++) {
        char name[SEG_NAME_SIZE];
        char *path;
        int rv;
        idx_file_name(name, base, kinds[k]);
        path = seg_join(dir, name);
        if (path == NULL) {
            err_printf(errmsg, "write index %s: out of memory", name);
            return TALLY_NOMEM;
        }
        rv = idx__write_kind(x, path, name, base, kinds[k], x->flushed, sync, false, errmsg);
        free(path);
        if (rv != 0) {
            return rv;
        }
    }
    x->flushed = x->n;
    return 0;
}

int idx_replace(struct idx *x, const char *dir, uint64_t base, char *errmsg)
{
    static const int kinds[2] = {IDX_KIND_OFFSET, IDX_KIND_TIME};
    for (int k = 0; k < 2; k++) {
        char name[SEG_NAME_SIZE], tmp_name[SEG_NAME_SIZE + 8];
        char *path, *tmp;
        int rv;
        idx_file_name(name, base, kinds[k]);
        snprintf(tmp_name, sizeof tmp_name, "%s.tmp", name);
        path = seg_join(dir, name);
        tmp = seg_join(dir, tmp_name);
        if (path == NULL || tmp == NULL) {
            free(path);
            free(tmp);
            err_printf(errmsg, "write index %s: out of memory", name);
            return TALLY_NOMEM;
        }
        rv = idx__write_kind(x, tmp, tmp_name, base, kinds[k], 0, true, true, errmsg);
        if (rv == 0) {
            rv = fs_rename(tmp, path, errmsg);
        }
        free(path);
        free(tmp);
        if (rv != 0) {
            return rv;
        }
    }
    x->flushed = x->n;
    return 0;
}

int idx_write_as(const struct idx *x, const char *dir, uint64_t base, const char *suffix,
                 char *errmsg)
{
    static const int kinds[2] = {IDX_KIND_OFFSET, IDX_KIND_TIME};
    for (int k = 0; k < 2; k++) {
        char name[SEG_NAME_SIZE], out_name[SEG_NAME_SIZE + 16];
        char *path;
        int rv;
        idx_file_name(name, base, kinds[k]);
        snprintf(out_name, sizeof out_name, "%s.%s", name, suffix);
        path = seg_join(dir, out_name);
        if (path == NULL) {
            err_printf(errmsg, "write index %s: out of memory", out_name);
            return TALLY_NOMEM;
        }
        rv = idx__write_kind(x, path, out_name, base, kinds[k], 0, true, true, errmsg);
        free(path);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

int idx_read_file(const char *dir, uint64_t base, int kind, struct idx_entry **e, size_t *n,
                  size_t *stray, char *errmsg)
{
    char name[SEG_NAME_SIZE];
    char *path;
    uint8_t *buf = NULL;
    struct idx_entry *v = NULL;
    uint64_t size = 0;
    size_t got, esz = idx__entry_size(kind), count;
    int fd = -1;
    int rv;

    *e = NULL;
    *n = 0;
    *stray = 0;
    idx_file_name(name, base, kind);
    path = seg_join(dir, name);
    if (path == NULL) {
        err_printf(errmsg, "read index %s: out of memory", name);
        return TALLY_NOMEM;
    }
    rv = fs_open(path, O_RDONLY, name, &fd, errmsg);
    free(path);
    if (rv == 0) {
        rv = fs_size(fd, &size, name, errmsg);
    }
    if (rv == 0 && size < IDX_HEADER_SIZE) {
        rv = ERR_CORRUPT(errmsg, "index %s: header truncated (%" PRIu64 " of %d bytes)", name,
                         size, IDX_HEADER_SIZE);
    }
    /* An index of a 4 GiB segment with an entry per batch fits easily in
     * this; anything larger is not an index we wrote. */
    if (rv == 0 && size > ((uint64_t)SEG_MAX_SIZE / BATCH_HEADER_SIZE + 1) * esz + IDX_HEADER_SIZE) {
        rv = ERR_CORRUPT(errmsg, "index %s: implausibly large (%" PRIu64 " bytes)", name, size);
    }
    if (rv == 0) {
        buf = malloc((size_t)size);
        if (buf == NULL) {
            err_printf(errmsg, "read index %s: out of memory", name);
            rv = TALLY_NOMEM;
        }
    }
    if (rv == 0) {
        rv = fs_pread(fd, buf, (size_t)size, 0, &got, name, errmsg);
        if (rv == 0 && got != size) {
            rv = ERR_CORRUPT(errmsg, "index %s: changed size while read", name);
        }
    }
    if (rv == 0) {
        rv = idx__check_header(buf, name, base, kind, errmsg);
    }
    if (rv == 0) {
        count = (size_t)(size - IDX_HEADER_SIZE) / esz;
        v = malloc((count ? count : 1) * sizeof *v);
        if (v == NULL) {
            err_printf(errmsg, "read index %s: out of memory", name);
            rv = TALLY_NOMEM;
        } else {
            for (size_t i = 0; i < count; i++) {
                idx__decode_entry(buf + IDX_HEADER_SIZE + i * esz, &v[i], kind);
            }
            *e = v;
            *n = count;
            *stray = (size_t)(size - IDX_HEADER_SIZE) % esz;
        }
    }
    fs_close(fd);
    free(buf);
    return rv;
}

/* Check that the entries of both files agree and fit the segment. */
static int idx__check_entries(const struct idx_entry *o, const struct idx_entry *t, size_t n,
                              const struct idx_bounds *b, const char *name, char *errmsg)
{
    if (n == 0) {
        return ERR_CORRUPT(errmsg, "index %s: no entries", name);
    }
    if (o[0].rel != 0 || o[0].pos != SEG_HEADER_SIZE) {
        return ERR_CORRUPT(errmsg, "index %s: first entry is not the first batch", name);
    }
    for (size_t i = 0; i < n; i++) {
        if (o[i].rel != t[i].rel || o[i].pos != t[i].pos) {
            return ERR_CORRUPT(errmsg, "index %s: entry %zu differs from the time index", name, i);
        }
        if (o[i].pos >= b->size || b->base + o[i].rel >= b->next) {
            return ERR_CORRUPT(errmsg, "index %s: entry %zu points past the segment", name, i);
        }
        if (i > 0 && (o[i].rel <= o[i - 1].rel || o[i].pos <= o[i - 1].pos ||
                      t[i].ts < t[i - 1].ts)) {
            return ERR_CORRUPT(errmsg, "index %s: entry %zu out of order", name, i);
        }
    }
    if (b->last_pos != 0 && o[n - 1].pos != b->last_pos) {
        return ERR_CORRUPT(errmsg, "index %s: last entry is not the last batch", name);
    }
    return 0;
}

int idx_load(struct idx *x, const char *dir, const struct idx_bounds *b, char *errmsg)
{
    struct idx_entry *o = NULL, *t = NULL;
    size_t no = 0, nt = 0, stray_o = 0, stray_t = 0;
    char name[SEG_NAME_SIZE];
    int rv;

    idx_clear(x);
    x->loaded = false;
    idx_file_name(name, b->base, IDX_KIND_OFFSET);
    rv = idx_read_file(dir, b->base, IDX_KIND_OFFSET, &o, &no, &stray_o, errmsg);
    if (rv == 0) {
        rv = idx_read_file(dir, b->base, IDX_KIND_TIME, &t, &nt, &stray_t, errmsg);
    }
    if (rv == 0 && (stray_o != 0 || stray_t != 0 || no != nt)) {
        rv = ERR_CORRUPT(errmsg, "index %s: short or inconsistent (%zu and %zu entries)", name,
                         no, nt);
    }
    if (rv == 0) {
        rv = idx__check_entries(o, t, no, b, name, errmsg);
    }
    if (rv == 0) {
        for (size_t i = 0; i < no; i++) {
            o[i].ts = t[i].ts;
        }
        free(x->e);
        x->e = o;
        x->n = no;
        x->cap = no;
        x->flushed = no;
        x->loaded = true;
        o = NULL;
    }
    free(o);
    free(t);
    return rv;
}

/* Header and last entry of one file; *count is its number of entries. */
static int idx__read_tail(const char *dir, uint64_t base, int kind, struct idx_entry *last,
                          size_t *count, char *errmsg)
{
    char name[SEG_NAME_SIZE];
    uint8_t hdr[IDX_HEADER_SIZE], ent[IDX_TIME_ENTRY_SIZE];
    size_t esz = idx__entry_size(kind), got;
    uint64_t size = 0;
    char *path;
    int fd = -1;
    int rv;

    idx_file_name(name, base, kind);
    path = seg_join(dir, name);
    if (path == NULL) {
        err_printf(errmsg, "read index %s: out of memory", name);
        return TALLY_NOMEM;
    }
    rv = fs_open(path, O_RDONLY, name, &fd, errmsg);
    free(path);
    if (rv == 0) {
        rv = fs_size(fd, &size, name, errmsg);
    }
    if (rv == 0 && (size < IDX_HEADER_SIZE + esz || (size - IDX_HEADER_SIZE) % esz != 0)) {
        rv = ERR_CORRUPT(errmsg, "index %s: short (%" PRIu64 " bytes)", name, size);
    }
    if (rv == 0) {
        rv = fs_pread(fd, hdr, sizeof hdr, 0, &got, name, errmsg);
        if (rv == 0 && got != sizeof hdr) {
            rv = ERR_CORRUPT(errmsg, "index %s: short", name);
        }
    }
    if (rv == 0) {
        rv = idx__check_header(hdr, name, base, kind, errmsg);
    }
    if (rv == 0) {
        rv = fs_pread(fd, ent, esz, size - esz, &got, name, errmsg);
        if (rv == 0 && got != esz) {
            rv = ERR_CORRUPT(errmsg, "index %s: short", name);
        }
    }
    if (rv == 0) {
        idx__decode_entry(ent, last, kind);
        *count = (size_t)(size - IDX_HEADER_SIZE) / esz;
    }
    fs_close(fd);
    return rv;
}

int idx_load_tail(const char *dir, uint64_t base, struct idx_entry *last, size_t *n,
                  char *errmsg)
{
    struct idx_entry o, t;
    size_t no = 0, nt = 0;
    int rv = idx__read_tail(dir, base, IDX_KIND_OFFSET, &o, &no, errmsg);
    if (rv == 0) {
        rv = idx__read_tail(dir, base, IDX_KIND_TIME, &t, &nt, errmsg);
    }
    if (rv == 0 && (no != nt || o.rel != t.rel || o.pos != t.pos)) {
        char name[SEG_NAME_SIZE];
        idx_file_name(name, base, IDX_KIND_OFFSET);
        rv = ERR_CORRUPT(errmsg, "index %s: offset and time index disagree", name);
    }
    if (rv == 0) {
        *last = o;
        last->ts = t.ts;
        *n = no;
    }
    return rv;
}

int idx_remove(const char *dir, uint64_t base, char *errmsg)
{
    static const int kinds[2] = {IDX_KIND_OFFSET, IDX_KIND_TIME};
    for (int k = 0; k < 2; k++) {
        char name[SEG_NAME_SIZE];
        char *path;
        int rv;
        idx_file_name(name, base, kinds[k]);
        path = seg_join(dir, name);
        if (path == NULL) {
            err_printf(errmsg, "remove index %s: out of memory", name);
            return TALLY_NOMEM;
        }
        rv = fs_unlink(path, errmsg);
        free(path);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}
