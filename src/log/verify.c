/* Offline verification of a log directory (log_verify_dir, used only by
 * `tally log verify`): every batch checksum of every segment, the run of
 * offsets across segments, and every entry of both indexes against its
 * segment. Read-only: nothing is repaired, unlike log_open; each problem
 * is reported through the caller's callback. */
#include "log/log_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/batch.h"
#include "lib/err.h"
#include "lib/fs.h"
#include "log/idx.h"
#include "log/seg.h"

/* A good batch seen by the verifier: where it is, and the running
 * maximum timestamp through it (what the time index must say). */
struct log__vbatch {
    uint64_t pos;
    uint64_t base;
    int64_t run_ts;
};

struct log__verify {
    log_report_fn report;          /* caller's callback */
    void *arg;                     /* its argument */
    const char *seg_name;          /* segment being checked */
    struct log__vbatch *v;         /* its good batches, by position */
    size_t n;                      /* how many */
    size_t cap;                    /* allocated */
    int64_t run_ts;                /* running maximum timestamp */
    int problems;                  /* problems reported so far */
    struct log_verify_stats *st;   /* counters (never NULL here) */
    uint8_t hdr_buf[BATCH_HEADER_SIZE]; /* for reading one batch header */
};

/* Drop a "segment NAME: " or "index NAME: " prefix: the file is reported
 * separately. */
const char *log__strip(const char *msg, const char *name)
{
    const char *p = strstr(msg, name);
    if (p != NULL && (p == msg + 8 || p == msg + 6) && strncmp(p + strlen(name), ": ", 2) == 0) {
        return p + strlen(name) + 2;
    }
    return msg;
}

static void log__problem(struct log__verify *vf, const char *file, uint64_t pos,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void log__problem(struct log__verify *vf, const char *file, uint64_t pos,
                         const char *fmt, ...)
{
    char msg[ERR_MSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    vf->problems++;
    if (vf->report != NULL) {
        vf->report(vf->arg, file, pos, msg);
    }
}

/* Remember a batch start (for checking index entries). */
static int log__vpush(struct log__verify *vf, uint64_t pos, const struct batch_header *h,
                      char *errmsg)
{
    if (vf->n == vf->cap) {
        size_t ncap = vf->cap ? vf->cap * 2 : 256;
        struct log__vbatch *nv = realloc(vf->v, ncap * sizeof *nv);
        if (nv == NULL) {
            return log__nomem(errmsg, "verify");
        }
        vf->v = nv;
        vf->cap = ncap;
    }
    if (h->max_timestamp > vf->run_ts) {
        vf->run_ts = h->max_timestamp;
    }
    vf->v[vf->n].pos = pos;
    vf->v[vf->n].base = h->base_offset;
    vf->v[vf->n].run_ts = vf->run_ts;
    vf->n++;
    return 0;
}

static int log__verify_visit(void *arg, uint64_t pos, const struct batch_header *h,
                             const uint8_t *batch, char *errmsg)
{
    struct log__verify *vf = arg;
    struct batch_iter it;
    struct batch_record rec;
    char why[ERR_MSG_SIZE];
    int rv;

    if (log__vpush(vf, pos, h, errmsg) != 0) {
        return TALLY_NOMEM;
    }
    vf->st->batches++;
    /* The checksums passed; decode every record as well, so a batch that
     * was written wrong (not damaged later) is caught too. */
    rv = batch_iter_init(&it, batch, h->batch_len, why);
    if (rv == TALLY_NOMEM) {
        return log__nomem(errmsg, "verify");
    }
    if (rv != 0) {
        log__problem(vf, vf->seg_name, pos, "%s", why);
        return 0;
    }
    while ((rv = batch_iter_next(&it, &rec, why)) == 0) {
        vf->st->records++;
    }
    if (rv != TALLY_EOF) {
        log__problem(vf, vf->seg_name, pos, "%s", why);
    }
    batch_iter_close(&it);
    return 0;
}

/* Good batch at exactly @pos, or NULL. */
static const struct log__vbatch *log__vfind(const struct log__verify *vf, uint64_t pos)
{
    size_t lo = 0, hi = vf->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (vf->v[mid].pos == pos) {
            return &vf->v[mid];
        }
        if (vf->v[mid].pos < pos) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* Check every entry of one index file against the batches found. Returns
 * the number of entries (for the cross-check of both kinds). */
static size_t log__verify_index(struct log__verify *vf, const char *dir, const struct seg *s,
                                int kind, bool sealed, uint64_t judged)
{
    char name[SEG_NAME_SIZE];
    char why[ERR_MSG_SIZE];
    struct idx_entry *e = NULL;
    size_t n = 0, stray = 0;
    size_t esz = kind == IDX_KIND_OFFSET ? IDX_OFFSET_ENTRY_SIZE : IDX_TIME_ENTRY_SIZE;
    int rv;

    idx_file_name(name, s->base, kind);
    rv = idx_read_file(dir, s->base, kind, &e, &n, &stray, why);
    if (rv == TALLY_NOTFOUND) {
        log__problem(vf, name, 0, "index file missing (the next open rebuilds it)");
        return 0;
    }
    if (rv != 0) {
        log__problem(vf, name, 0, "%s", log__strip(why, name));
        return 0;
    }
    if (stray != 0) {
        log__problem(vf, name, IDX_HEADER_SIZE + n * esz,
                     "%zu stray bytes after the last whole entry", stray);
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t fpos = IDX_HEADER_SIZE + i * esz;
        const struct log__vbatch *b = log__vfind(vf, e[i].pos);
        if (e[i].pos >= judged) {
            continue; /* beyond damage that stopped the scan: cannot judge */
        }
        vf->st->index_entries++;
        if (i > 0 && (e[i].rel <= e[i - 1].rel || e[i].pos <= e[i - 1].pos)) {
            log__problem(vf, name, fpos, "entry %zu out of order", i);
        } else if (b == NULL) {
            log__problem(vf, name, fpos,
                         "entry %zu points at position %" PRIu32
                         ", which is not the start of a good batch",
                         i, e[i].pos);
        } else if (b->base != s->base + e[i].rel) {
            log__problem(vf, name, fpos,
                         "entry %zu says offset %" PRIu64 ", the batch there starts at %" PRIu64,
                         i, s->base + e[i].rel, b->base);
        } else if (kind == IDX_KIND_TIME && e[i].ts != b->run_ts) {
            log__problem(vf, name, fpos,
                         "entry %zu says max timestamp %" PRId64 ", the batches say %" PRId64, i,
                         e[i].ts, b->run_ts);
        }
    }
    /* The active segment's index files lag behind it until the next sync
     * (recovery rebuilds them anyway), so only sealed ones must be whole. */
    if (sealed && vf->n > 0 && n == 0) {
        log__problem(vf, name, IDX_HEADER_SIZE, "no entries for a segment with batches");
    } else if (n > 0 && e[0].pos != SEG_HEADER_SIZE) {
        log__problem(vf, name, IDX_HEADER_SIZE, "first entry is not the first batch");
    }
    if (sealed && n > 0 && vf->n > 0 && e[n - 1].pos != vf->v[vf->n - 1].pos) {
        log__problem(vf, name, IDX_HEADER_SIZE + (n - 1) * esz,
                     "last entry is not the last batch of the sealed segment");
    }
    free(e);
    return n;
}

int log_verify_dir_stats(const char *dir, log_report_fn report, void *arg,
                         struct log_verify_stats *st)
{
    struct log_verify_stats dummy;
    struct log__verify vf;
    char errmsg[ERR_MSG_SIZE];
    char **names = NULL;
    size_t n_names = 0, n_segs = 0, done = 0;
    bool have_prev = false;
    uint64_t prev_next = 0;

    if (st == NULL) {
        st = &dummy;
    }
    memset(st, 0, sizeof *st);
    memset(&vf, 0, sizeof vf);
    vf.report = report;
    vf.arg = arg;
    vf.st = st;
    if (fs_list(dir, &names, &n_names, errmsg) != 0) {
        return -1;
    }
    for (size_t i = 0; i < n_names; i++) {
        uint64_t base;
        n_segs += log__classify(names[i], &base) == 's';
    }
    for (size_t i = 0; i < n_names; i++) {
        struct seg s;
        struct seg_scan_info info;
        uint64_t base;
        bool last;
        int rv;

        if (log__classify(names[i], &base) != 's') {
            continue;
        }
        last = ++done == n_segs;
        seg_init(&s, base);
        vf.seg_name = s.name;
        vf.n = 0;
        vf.run_ts = INT64_MIN;
        rv = seg_open(&s, dir, 0, errmsg);
        if (rv != 0) {
            log__problem(&vf, s.name, 0, "%s", log__strip(errmsg, s.name));
            have_prev = false;
            continue;
        }
        st->segments++;
        if (have_prev && base != prev_next) {
            log__problem(&vf, s.name, 0,
                         "segment starts at offset %" PRIu64
                         " but the previous segment ends at %" PRIu64,
                         base, prev_next);
        }
        uint64_t from = SEG_HEADER_SIZE, expect = base, judged = s.size;
        uint64_t n_batches = 0;
        bool clean = true;
        for (;;) {
            struct seg_walker w;
            struct batch_header h;
            rv = seg_scan(&s, from, s.size, expect, log__verify_visit, &vf, &info, errmsg);
            n_batches += info.batches;
            if (rv != 0) {
                log__problem(&vf, s.name, info.end, "%s", log__strip(errmsg, s.name));
                judged = info.end;
                clean = false;
                break;
            }
            if (info.bad == 0) {
                break;
            }
            clean = false;
            log__problem(&vf, s.name, info.bad_pos, "%s%s", info.what,
                         info.torn && last ? " (torn tail: the next open cuts it off)" : "");
            /* A batch whose header checks out (payload damaged, or offsets
             * out of order) still says where the next one starts, so the
             * rest of the segment can be checked; otherwise stop here. */
            seg_walker_init(&w, &s, vf.hdr_buf, sizeof vf.hdr_buf);
            if (info.torn || seg_walk_header(&w, info.bad_pos, s.size, BATCH_HEADER_SIZE, &h,
                                             errmsg) != 0) {
                judged = info.bad_pos;
                break;
            }
            if (log__vpush(&vf, info.bad_pos, &h, errmsg) != 0) {
                log__problem(&vf, s.name, info.bad_pos, "%s", errmsg);
                judged = info.bad_pos;
                break;
            }
            from = info.bad_pos + h.batch_len;
            expect = batch_last_offset(&h) + 1;
        }
        if (!last && n_batches == 0 && clean) {
            log__problem(&vf, s.name, SEG_HEADER_SIZE, "sealed segment holds no batches");
        }
        size_t no = log__verify_index(&vf, dir, &s, IDX_KIND_OFFSET, !last && clean, judged);
        size_t nt = log__verify_index(&vf, dir, &s, IDX_KIND_TIME, !last && clean, judged);
        if (no != nt && no > 0 && nt > 0) {
            char name[SEG_NAME_SIZE];
            idx_file_name(name, base, IDX_KIND_TIME);
            log__problem(&vf, name, 0, "%zu entries but the offset index has %zu", nt, no);
        }
        have_prev = judged == s.size;
        prev_next = info.next;
        seg_close(&s);
    }
    fs_list_free(names, n_names);
    free(vf.v);
    return vf.problems;
}

int log_verify_dir(const char *dir, log_report_fn report, void *arg)
{
    return log_verify_dir_stats(dir, report, arg, NULL);
}
