/* Keyed compaction on the log's thread: plan a job over a prefix of sealed
 * segments (log_compact_prepare) and swap its compacted copies in
 * (log_compact_commit), so the log's segment list and files change only
 * here and in log.c. The copying itself runs on a worker, in compact.c
 * (log_compact_run). */
#include "log/log_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/batch.h"
#include "lib/err.h"
#include "lib/fs.h"
#include "lib/logger.h"
#include "log/compact.h"

/* The file of a segment, by its descriptor if open, else by its path
 * (descriptors of sealed segments are released by the cache). */
static int log__seg_stat(const struct log__seg *ls, struct stat *st)
{
    return ls->s.fd >= 0 ? fstat(ls->s.fd, st) : stat(ls->s.path, st);
}

int log_compact_prepare(struct tally_log *l, const struct log_compact_params *p,
                        struct log_compaction **out, char *errmsg)
{
    struct log_compaction *c;
    size_t n = 0;

    *out = NULL;
    if (p->map_bytes < (size_t)COMPACT_MIN_SLOTS * COMPACT_SLOT_BYTES) {
        err_printf(errmsg, "compact %s: key map of %zu bytes is too small", l->dir, p->map_bytes);
        return TALLY_INVAL;
    }
    /* A prefix of sealed segments: compaction never leaves an uncompacted
     * segment below a compacted one. */
    while (n + 1 < l->n) {
        const struct log__seg *ls = &l->segs[n];
        if (!ls->sealed || ls->s.next > p->upto || ls->s.path == NULL ||
            (p->min_lag_ms > 0 && !log__older(p->now_ms, ls->s.max_ts, p->min_lag_ms))) {
            break;
        }
        n++;
    }
    if (n == 0 || l->segs[n - 1].s.next <= l->clean_upto) {
        return 0;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL || (c->segs = calloc(n, sizeof *c->segs)) == NULL ||
        (c->dir = strdup(l->dir)) == NULL) {
        log_compact_free(c);
        return log__nomem(errmsg, "plan compaction");
    }
    c->p = *p;
    c->index_interval = l->cfg.index_interval_bytes;
    /* Merged copies are segments like the others: at most segment_bytes,
     * and positions in a segment are 32-bit (index entries). */
    c->merge_bytes = l->cfg.segment_bytes < UINT32_MAX ? l->cfg.segment_bytes : UINT32_MAX;
    c->n = n;
    /* Only the keys of the segments above the last job's range go into
     * the map: below it that job left at most one record of each key, so
     * what can go there is an older record of a key written since, and
     * the map says which. So a log with more keys than the map holds is
     * compacted over several jobs, each mapping as far as its map holds
     * and starting where the last one stopped (as Kafka's cleaner does
     * from its dirty offset), instead of every job mapping the same
     * first segments and stopping at the same place. */
    while (c->map_from + 1 < n && l->segs[c->map_from].s.next <= l->clean_upto) {
        c->map_from++;
    }
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (log__seg_stat(&l->segs[i], &st) != 0) {
            err_os(errmsg, errno, "compact: stat segment %s", l->segs[i].s.name);
            log_compact_free(c);
            return TALLY_IOERR;
        }
        c->segs[i].base = l->segs[i].s.base;
        c->segs[i].next = l->segs[i].s.next;
        c->segs[i].size = l->segs[i].s.size;
        c->segs[i].dev = st.st_dev;
        c->segs[i].ino = st.st_ino;
        c->segs[i].old_fd = -1;
    }
    *out = c;
    return 0;
}

int log_compact_run(struct log_compaction *c, char *errmsg)
{
    int rv = compact_run(c, errmsg);
    if (rv != 0) {
        compact_remove_outputs(c);
    }
    return rv;
}

void log_compact_cancel(struct log_compaction *c)
{
    atomic_store(&c->cancel, true);
}

/* The segment of @l that @cs planned, if it is still the same file and
 * its compacted copy is still there (the log may have been reset, cut by
 * retention, or reopened, which removes copies, while the job ran). */
static struct log__seg *log__planned_seg(struct tally_log *l, const struct compact_seg *cs)
{
    struct stat st;
    for (size_t i = 0; i + 1 < l->n; i++) {
        struct log__seg *ls = &l->segs[i];
        if (ls->s.base == cs->base) {
            return ls->sealed && ls->s.size == cs->size && ls->s.path != NULL &&
                           log__seg_stat(ls, &st) == 0 && st.st_dev == cs->dev &&
                           st.st_ino == cs->ino
                       ? ls
                       : NULL;
        }
    }
    return NULL;
}

static struct log__seg *log__compacted_seg(struct tally_log *l, const struct compact_seg *cs)
{
    char name[SEG_NAME_SIZE + 16];
    struct stat st;
    char *path;
    bool copy_ok;
    snprintf(name, sizeof name, "%020" PRIu64 ".seg.%s", cs->base, COMPACT_SUFFIX);
    path = seg_join(l->dir, name);
    copy_ok = path != NULL && stat(path, &st) == 0 && (uint64_t)st.st_size == cs->new_size;
    free(path);
    return copy_ok ? log__planned_seg(l, cs) : NULL;
}

/* A merged copy (leader @i of the plan) goes in only if each segment it
 * holds is still the file the job read, right after the previous one. */
static bool log__merge_intact(struct tally_log *l, const struct log_compaction *c, size_t i,
                              const struct log__seg *lead)
{
    const struct log__seg *prev = lead;
    for (size_t k = i + 1; k <= i + c->segs[i].n_merged; k++) {
        const struct log__seg *ls = log__planned_seg(l, &c->segs[k]);
        if (ls == NULL || ls != prev + 1) {
            return false;
        }
        prev = ls;
    }
    return true;
}

/* The descriptor of segment @ls's file, opened if the cache released it,
 * taken from @ls: for compact_seg.old_fd, to be the file's last reference
 * once a rename or unlink drops its name. Without it that rename or unlink
 * would free the file's blocks and cached pages on this thread (0.6 s for
 * the 2 GiB of bench/compaction.sh). An open that fails costs only that. */
static int log__take_old_fd(struct log__seg *ls)
{
    char why[ERR_MSG_SIZE];
    (void)seg_ensure_open(&ls->s, why);
    return seg_take_fd(&ls->s);
}

/* "<20 digits>.<ext>.cmp" and "<20 digits>.<ext>" joined to the log dir. */
static int log__rename_output(struct tally_log *l, uint64_t base, const char *ext,
                              char *errmsg)
{
    char from_name[SEG_NAME_SIZE + 16], to_name[SEG_NAME_SIZE];
    char *from, *to;
    int rv;
    seg_file_name(to_name, base, ext);
    snprintf(from_name, sizeof from_name, "%s.%s", to_name, COMPACT_SUFFIX);
    from = seg_join(l->dir, from_name);
    to = seg_join(l->dir, to_name);
    rv = from != NULL && to != NULL ? fs_rename(from, to, errmsg)
                                    : log__nomem(errmsg, "compaction swap");
    free(from);
    free(to);
    return rv;
}

int log_compact_commit(struct tally_log *l, struct log_compaction *c,
                       struct log_compact_stats *st, char *errmsg)
{
    struct log__seg **target;
    int rv;

    if (st != NULL) {
        memset(st, 0, sizeof *st);
    }
    if (!c->ran || c->n == 0) {
        err_printf(errmsg, "compact %s: nothing to commit", l->dir);
        return TALLY_INVAL;
    }
    if ((rv = log__check_failed(l, errmsg)) != 0) {
        return rv;
    }
    target = calloc(c->n, sizeof *target);
    if (target == NULL) {
        return log__nomem(errmsg, "compaction swap");
    }
    for (size_t i = 0; i < c->n; i++) {
        if (c->segs[i].rewritten) {
            target[i] = log__compacted_seg(l, &c->segs[i]);
            if (target[i] != NULL && c->segs[i].n_merged > 0 &&
                !log__merge_intact(l, c, i, target[i])) {
                target[i] = NULL;
            }
        }
    }
    /* 1. The old index files go first, durably: if the crash comes after
     *    the segment is swapped, no stale index describes the new file
     *    (nor one of a segment merged into it). */
    for (size_t i = 0; rv == 0 && i < c->n; i++) {
        for (size_t k = i; rv == 0 && target[i] != NULL && k <= i + c->segs[i].n_merged; k++) {
            rv = idx_remove(l->dir, c->segs[k].base, errmsg);
        }
    }
    if (rv == 0) {
        rv = fs_sync_dir(l->dir, errmsg);
    }
    /* 2. Each segment is swapped by one rename: old or new, never a mix. */
    for (size_t i = 0; rv == 0 && i < c->n; i++) {
        struct compact_seg *cs = &c->segs[i];
        struct log__seg *ls = target[i];
        uint64_t next;
        if (ls == NULL) {
            continue;
        }
        next = (ls + cs->n_merged)->s.next; /* a merged copy ends where its last segment did */
        cs->old_fd = log__take_old_fd(ls); /* closed by log_compact_free, off this thread */
        rv = log__rename_output(l, cs->base, "seg", errmsg);
        if (rv != 0) {
            break;
        }
        seg_close(&ls->s);
        seg_init(&ls->s, cs->base);
        ls->checked = false; /* written by the job, not through log_append */
        rv = seg_open(&ls->s, l->dir, 0, errmsg);
        if (rv == 0 && ls->s.size != cs->new_size) {
            rv = ERR_CORRUPT(errmsg, "segment %s: compacted copy is %" PRIu64
                             " bytes, expected %" PRIu64, ls->s.name, ls->s.size, cs->new_size);
        }
        if (rv != 0) {
            break;
        }
        ls->s.next = next;
        ls->s.first_ts = cs->first_ts;
        ls->s.max_ts = cs->max_ts;
        ls->s.last_pos = cs->last_pos;
        ls->s.last_base = cs->last_base;
        ls->s.last_raft_index = cs->last_raft_index;
        idx_free(&ls->x);
        ls->x = cs->x;
        ls->x.flushed = ls->x.n;
        idx_init(&cs->x);
        cs->rewritten = false; /* swapped in: nothing left to remove */
        cs->new_size = 0;
        if (st != NULL) {
            st->rewritten++;
        }
    }
    if (rv == 0) {
        rv = fs_sync_dir(l->dir, errmsg);
    }
    /* 2b. Only now, with the merged copies durably in place, the segments
     *     they hold go. A crash before this leaves segments that the one
     *     before them covers: log_open removes them (log__drop_merged). */
    bool unlinked = false;
    for (size_t i = 0; rv == 0 && i < c->n; i++) {
        for (size_t k = i + 1; rv == 0 && target[i] != NULL && k <= i + c->segs[i].n_merged;
             k++) {
            struct log__seg *ms = target[i] + (k - i);
            char *path = seg_join(l->dir, ms->s.name);
            c->segs[k].old_fd = log__take_old_fd(ms); /* closed by log_compact_free */
            rv = path != NULL ? fs_unlink(path, errmsg) : log__nomem(errmsg, "compaction swap");
            free(path);
            unlinked = unlinked || rv == 0;
        }
    }
    if (rv == 0 && unlinked) {
        rv = fs_sync_dir(l->dir, errmsg);
    }
    if (rv != 0) {
        free(target);
        err_wrap(errmsg, "compaction swap in %s", l->dir);
        return log__fail(l, rv, errmsg);
    }
    /* 3. The new index files. They are a cache: failing here costs a
     *    rebuild at the next open, not data. */
    for (size_t i = 0; i < c->n; i++) {
        char why[ERR_MSG_SIZE];
        if (target[i] != NULL && (log__rename_output(l, c->segs[i].base, "idx", why) != 0 ||
                                  log__rename_output(l, c->segs[i].base, "tix", why) != 0)) {
            TLOG_WARN("log", "%s: segment %s: cannot put the compacted index in place: %s",
                      l->dir, target[i]->s.name, why);
        }
    }
    {
        char why[ERR_MSG_SIZE];
        if (fs_sync_dir(l->dir, why) != 0) {
            TLOG_WARN("log", "%s: %s", l->dir, why);
        }
    }
    /* The merged segments leave the list (their files are gone). */
    for (size_t i = c->n; i-- > 0;) {
        if (target[i] == NULL || c->segs[i].n_merged == 0) {
            continue;
        }
        size_t at = (size_t)(target[i] - l->segs) + 1, m = c->segs[i].n_merged;
        for (size_t k = at; k < at + m; k++) {
            log__seg_free(&l->segs[k]);
        }
        memmove(&l->segs[at], &l->segs[at + m], (l->n - at - m) * sizeof *l->segs);
        l->n -= m;
        if (st != NULL) {
            st->merged += (unsigned)m;
        }
    }
    if (st != NULL) {
        st->segments = (unsigned)c->n;
        st->records_in = c->st.records_in;
        st->records_out = c->st.records_out;
        st->bytes_in = c->st.bytes_in;
        st->bytes_io = c->st.bytes_io;
        st->paced_ms = c->st.paced_ms;
        st->upto = c->segs[c->n - 1].base;
        for (size_t i = 0; i < l->n && l->segs[i].s.base <= c->segs[c->n - 1].base; i++) {
            if (l->segs[i].s.base >= c->segs[0].base) {
                st->bytes_out += l->segs[i].s.size;
                st->upto = l->segs[i].s.next;
            }
        }
    }
    for (size_t i = 0; i < l->n; i++) {
        if (l->segs[i].s.base <= c->segs[c->n - 1].base &&
            l->segs[i].s.next == c->segs[c->n - 1].next && l->segs[i].s.next > l->clean_upto) {
            l->clean_upto = l->segs[i].s.next;
        }
    }
    free(target);
    log__lru_use(l); /* the swapped-in segments' files count in the cache */
    return 0;
}

void log_compact_free(struct log_compaction *c)
{
    if (c == NULL) {
        return;
    }
    if (c->segs != NULL && c->dir != NULL) {
        compact_remove_outputs(c);
        for (size_t i = 0; i < c->n; i++) {
            idx_free(&c->segs[i].x);
            fs_close(c->segs[i].old_fd); /* (see compact.h: old_fd) */
        }
    }
    free(c->segs);
    free(c->dir);
    free(c);
}
