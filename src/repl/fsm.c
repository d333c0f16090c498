/* struct raft_fsm adapter: committed entries -> store_apply, snapshots ->
 * store_snapshot / store_restore.
 *
 * The index of the entry being applied is raft_last_applied() + 1: raft
 * bumps last_applied only after apply returns (RAFT-GUIDE.md 5.1).
 *
 * Results: raft hands apply's result to the leader's request callback and
 * drops it on followers, so the fsm owns it: it stays valid until the next
 * apply, and callbacks (which run right after their entry's apply) copy
 * what they need. */
#include "repl/fsm.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "lib/err.h"
#include "lib/logger.h"

static struct fsm_stats fsm__stats;

const struct fsm_stats *fsm_stats(void)
{
    return &fsm__stats;
}

static void fsm__fail(struct fsm *f, const char *what, const char *errmsg)
{
    char why[ERR_MSG_SIZE + 64];
    snprintf(why, sizeof why, "%s: %s", what, errmsg);
    TLOG_ERROR("fsm", "%s", why);
    if (!f->failed && f->fatal != NULL) {
        f->failed = true;
        f->fatal(f->fatal_arg, why);
    }
}

static int fsm__apply(struct raft_fsm *rf, const struct raft_buffer *buf, void **result)
{
    struct fsm *f = rf->data;
    uint64_t index = raft_last_applied(f->raft) + 1;
    char errmsg[ERR_MSG_SIZE] = "";
    struct store_result *res = NULL;
    int rv;

    free(f->last);
    f->last = NULL;
    *result = NULL;
    if (f->failed) {
        return RAFT_IOERR; /* stay put until the process exits */
    }
    rv = store_apply(f->store, index, buf->base, buf->len, &res, errmsg);
    if (rv != 0) {
        /* Returning an error only makes raft retry this entry forever; a
         * node whose state cannot apply must stop (supervisor restarts). */
        fsm__fail(f, "apply", errmsg);
        return RAFT_IOERR;
    }
    f->last = res;
    *result = res;
    return 0;
}

static int fsm__snapshot(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct fsm *f = rf->data;
    uint64_t index = raft_last_applied(f->raft);
    char errmsg[ERR_MSG_SIZE] = "";
    struct buf b;
    uint64_t t0 = uv_hrtime();
    int rv;

    buf_init(&b);
    /* store_snapshot fsyncs the topic logs first: once raft stores this
     * snapshot it may delete the log entries the local logs came from. */
    rv = store_snapshot(f->store, index, &b, errmsg);
    if (rv != 0) {
        buf_free(&b);
        TLOG_WARN("fsm", "snapshot at %llu: %s", (unsigned long long)index, errmsg);
        return rv == TALLY_NOMEM ? RAFT_NOMEM : RAFT_IOERR;
    }
    *bufs = raft_malloc(sizeof **bufs);
    if (*bufs == NULL) {
        buf_free(&b);
        return RAFT_NOMEM;
    }
    (*bufs)[0].base = b.data; /* malloc'd; raft's default heap is malloc */
    (*bufs)[0].len = b.len;
    *n_bufs = 1;
    fsm__stats.taken++;
    fsm__stats.last_bytes = b.len;
    fsm__stats.last_seconds = (double)(uv_hrtime() - t0) / 1e9;
    TLOG_INFO("fsm", "snapshot at index %llu (%zu bytes, %.3f s on the loop)",
              (unsigned long long)index, b.len, fsm__stats.last_seconds);
    return 0;
}

static int fsm__snapshot_finalize(struct raft_fsm *rf, struct raft_buffer *bufs[],
                                  unsigned *n_bufs)
{
    (void)rf;
    for (unsigned i = 0; i < *n_bufs; i++) {
        free((*bufs)[i].base);
    }
    raft_free(*bufs);
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm__restore(struct raft_fsm *rf, struct raft_buffer *buf)
{
    struct fsm *f = rf->data;
    char errmsg[ERR_MSG_SIZE] = "";
    int rv = store_restore(f->store, buf->base, buf->len, !f->started, errmsg);
    if (rv != 0) {
        fsm__fail(f, "restore snapshot", errmsg);
        return RAFT_IOERR; /* buffer stays raft's on failure */
    }
    if (f->started) {
        fsm__stats.installed++;
    }
    raft_free(buf->base);
    return 0;
}

void fsm_init(struct fsm *f, struct store *store, void (*fatal)(void *, const char *), void *arg)
{
    memset(f, 0, sizeof *f);
    f->store = store;
    f->fatal = fatal;
    f->fatal_arg = arg;
    f->raft_fsm.version = 2;
    f->raft_fsm.data = f;
    f->raft_fsm.apply = fsm__apply;
    f->raft_fsm.snapshot = fsm__snapshot;
    f->raft_fsm.snapshot_finalize = fsm__snapshot_finalize;
    f->raft_fsm.restore = fsm__restore;
}

void fsm_close(struct fsm *f)
{
    free(f->last);
    f->last = NULL;
}
