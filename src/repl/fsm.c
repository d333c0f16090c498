/* struct raft_fsm adapter: committed entries -> store_apply, snapshots ->
 * store_snapshot_freeze/_build/_release (fsm version 3) and store_restore.
 *
 * The index of the entry being applied is raft_last_applied() + 1: raft
 * bumps last_applied only after apply returns (docs/raft.md, section 2).
 *
 * Results: raft hands apply's result to the leader's request callback and
 * drops it on followers, so the fsm keeps each in a ring slot by index.
 * libraft 0.22 fires request callbacks only after the loop iteration that
 * applied their entries, when later entries may have been applied too, so
 * a result must outlive the next apply (a single "latest result" gave one
 * client another's offsets: test_raft_disk_full.py). The callback takes
 * its result by index (fsm_take_result); unclaimed ones (followers, entries
 * of earlier terms) are freed when their slot is reused. */
#include "repl/fsm.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "lib/err.h"
#include "lib/logger.h"

static struct fsm_stats fsm__stats;

const struct fsm_stats *fsm_stats(void)
{
    return &fsm__stats;
}

/* A committed entry that cannot be applied (a full disk under a topic log,
 * say) stops the node at once, exit 1, as a SIGKILL would: its files are
 * crash-consistent by design (the fault suite kills nodes at random), and
 * it replays the entry when it is restarted. It does not return the error
 * to raft and shut down cleanly: libraft 0.22's path after a failed apply
 * freed memory twice (the fault suite's disk faults died of "double free"
 * in the shutdown that followed), and a clean shutdown would write
 * checkpoints of a store that is part way through an entry. */
static void fsm__fail(struct fsm *f, const char *what, const char *errmsg)
{
    char why[ERR_MSG_SIZE + 64];
    snprintf(why, sizeof why, "%s: %s", what, errmsg);
    TLOG_ERROR("fsm", "%s", why);
    if (!f->failed && f->fatal != NULL) {
        f->failed = true;
        f->fatal(f->fatal_arg, why);
    }
    TLOG_ERROR("fsm", "exiting now (status 1) for the supervisor to restart this node");
    fflush(NULL);
    f->exit_now(1);
}

static int fsm__apply(struct raft_fsm *rf, const struct raft_buffer *buf, void **result)
{
    struct fsm *f = rf->data;
    uint64_t index = raft_last_applied(f->raft) + 1;
    char errmsg[ERR_MSG_SIZE] = "";
    struct store_result *res = NULL;
    int rv;

    *result = NULL;
    f->applied_entries++;
    f->applied_bytes += buf->len;
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
    unsigned slot = (unsigned)(index % FSM_RESULTS);
    free(f->results[slot].res);
    f->results[slot].index = index;
    f->results[slot].res = res;
    *result = res; /* unused: node.c takes it by index */
    return 0;
}

struct store_result *fsm_take_result(struct fsm *f, uint64_t index)
{
    unsigned slot = (unsigned)(index % FSM_RESULTS);
    struct store_result *res = NULL;
    if (f->results[slot].index == index) {
        res = f->results[slot].res;
        f->results[slot].res = NULL;
        f->results[slot].index = 0;
    }
    return res;
}

/* Loop: freeze a copy of the state at last_applied (cheap: copies of the
 * key indexes, no disk I/O). raft calls snapshot_async next, then always
 * snapshot_finalize. */
static int fsm__snapshot(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct fsm *f = rf->data;
    uint64_t index = raft_last_applied(f->raft);
    char errmsg[ERR_MSG_SIZE] = "";
    uint64_t t0 = uv_hrtime();
    int rv;

    if (f->frozen != NULL) {
        return RAFT_BUSY; /* cannot happen: raft takes one at a time */
    }
    rv = store_snapshot_freeze(f->store, index, &f->frozen, errmsg);
    if (rv != 0) {
        TLOG_WARN("fsm", "snapshot at %llu: %s", (unsigned long long)index, errmsg);
        return rv == TALLY_NOMEM ? RAFT_NOMEM : RAFT_IOERR;
    }
    *bufs = raft_malloc(sizeof **bufs);
    if (*bufs == NULL) {
        store_snapshot_release(f->store, f->frozen);
        f->frozen = NULL;
        return RAFT_NOMEM;
    }
    (*bufs)[0].base = NULL; /* filled by snapshot_async */
    (*bufs)[0].len = 0;
    *n_bufs = 1;
    f->frozen_index = index;
    f->snap_t0 = t0;
    fsm__stats.last_seconds = (double)(uv_hrtime() - t0) / 1e9;
    return 0;
}

/* Thread pool: fsync, checkpoints, and the snapshot bytes, from the copy. */
static int fsm__snapshot_async(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct fsm *f = rf->data;
    char errmsg[ERR_MSG_SIZE] = "";
    uint64_t t0 = uv_hrtime();
    struct buf b;
    int rv;

    (void)n_bufs;
    buf_init(&b);
    rv = store_snapshot_build(f->frozen, &b, errmsg);
    f->snap_build_seconds = (double)(uv_hrtime() - t0) / 1e9;
    if (rv != 0) {
        buf_free(&b);
        /* Logged from here: the loop only learns that it failed. */
        TLOG_WARN("fsm", "snapshot at %llu: %s", (unsigned long long)f->frozen_index, errmsg);
        return rv == TALLY_NOMEM ? RAFT_NOMEM : RAFT_IOERR;
    }
    (*bufs)[0].base = b.data; /* malloc'd; raft's default heap is malloc */
    (*bufs)[0].len = b.len;
    return 0;
}

/* Loop, always after a successful snapshot(): free the copy and the bytes. */
static int fsm__snapshot_finalize(struct raft_fsm *rf, struct raft_buffer *bufs[],
                                  unsigned *n_bufs)
{
    struct fsm *f = rf->data;
    size_t bytes = *n_bufs > 0 ? (*bufs)[0].len : 0;
    store_snapshot_release(f->store, f->frozen);
    f->frozen = NULL;
    for (unsigned i = 0; i < *n_bufs; i++) {
        free((*bufs)[i].base);
    }
    raft_free(*bufs);
    *bufs = NULL;
    *n_bufs = 0;
    if (bytes > 0) {
        fsm__stats.taken++;
        fsm__stats.last_bytes = bytes;
        fsm__stats.last_build_seconds = f->snap_build_seconds;
        TLOG_INFO("fsm",
                  "snapshot at index %llu (%zu bytes; %.3f s on the loop, %.3f s on the thread "
                  "pool, %.3f s in all)",
                  (unsigned long long)f->frozen_index, bytes, fsm__stats.last_seconds,
                  f->snap_build_seconds, (double)(uv_hrtime() - f->snap_t0) / 1e9);
    }
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
    f->exit_now = _exit;
    f->raft_fsm.version = 3;
    f->raft_fsm.data = f;
    f->raft_fsm.apply = fsm__apply;
    f->raft_fsm.snapshot = fsm__snapshot;
    f->raft_fsm.snapshot_async = fsm__snapshot_async;
    f->raft_fsm.snapshot_finalize = fsm__snapshot_finalize;
    f->raft_fsm.restore = fsm__restore;
}

void fsm_close(struct fsm *f)
{
    store_snapshot_release(f->store, f->frozen);
    f->frozen = NULL;
    for (unsigned i = 0; i < FSM_RESULTS; i++) {
        free(f->results[i].res);
        f->results[i].res = NULL;
        f->results[i].index = 0;
    }
}
