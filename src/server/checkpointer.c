/* Checkpoints off the loop: see checkpointer.h.
 *
 * The happy path: a kick finds store_checkpoint_wanted, freezes on the
 * loop, queues the build on libuv's pool, and the pool's after-callback
 * (on the loop) releases: the trims it recorded lose their segments,
 * taken out of their logs there and deleted by a second pool job (with a
 * thousand topics trimmed, unlinking their files on the loop held it for
 * a second).
 * Failure modes: the freeze fails (out of memory, no descriptor: logged,
 * the checkpoint stays due and the next kick tries again, at most once a
 * second); the build fails (a full disk: logged, due again, same pace);
 * the node closes while a build runs (uv work cannot be cancelled once
 * started: the close waits for it). */
#include "server/checkpointer.h"

#include <stdlib.h>

#include "lib/err.h"
#include "lib/logger.h"
#include "log/log.h"

#define CHECKPOINTER__RETRY_NS 1000000000ull /* after a failure */

struct checkpointer {
    uv_loop_t *loop;
    struct store *store;
    uv_work_t work;
    bool running;                /* a build is queued or running */
    struct store_frozen *frozen; /* what it builds */
    struct log_removals *removals; /* what the release took out, deleted next */
    int build_rv;
    char build_err[ERR_MSG_SIZE];
    uint64_t build_ns;
    uint64_t retry_at_ns;        /* no kick before this after a failure */
    struct checkpointer_stats stats;
    bool closing;
    void (*done)(void *arg);
    void *done_arg;
};

int checkpointer_start(uv_loop_t *loop, struct store *store, struct checkpointer **out,
                       char *errmsg)
{
    struct checkpointer *c = calloc(1, sizeof *c);
    if (c == NULL) {
        err_printf(errmsg, "checkpointer: out of memory");
        return TALLY_NOMEM;
    }
    c->loop = loop;
    c->store = store;
    c->work.data = c;
    *out = c;
    return 0;
}

static void checkpointer__build(uv_work_t *w)
{
    struct checkpointer *c = w->data;
    uint64_t t0 = uv_hrtime();
    c->build_err[0] = '\0';
    c->build_rv = store_checkpoint_build(c->frozen, c->build_err);
    c->build_ns = uv_hrtime() - t0;
}

/* The end of a checkpoint (on the loop). */
static void checkpointer__done(struct checkpointer *c)
{
    c->running = false;
    if (c->closing) {
        void (*done)(void *) = c->done;
        void *arg = c->done_arg;
        free(c);
        if (done != NULL) {
            done(arg);
        }
    }
}

static void checkpointer__remove(uv_work_t *w)
{
    struct checkpointer *c = w->data;
    log_removals_run(c->removals);
    c->removals = NULL;
}

static void checkpointer__removed(uv_work_t *w, int status)
{
    struct checkpointer *c = w->data;
    (void)status; /* (never cancelled) */
    checkpointer__done(c);
}

static void checkpointer__built(uv_work_t *w, int status)
{
    struct checkpointer *c = w->data;
    char errmsg[ERR_MSG_SIZE] = "";
    bool built = status == 0 && c->build_rv == 0;
    uint64_t t0 = uv_hrtime();
    if (!built) {
        TLOG_ERROR("checkpoint", "writing the checkpoint failed: %s (tried again)",
                   status != 0 ? uv_strerror(status) : c->build_err);
    }
    c->removals = log_removals_new(); /* (NULL: the files go at once) */
    int rv = store_checkpoint_release(c->store, c->frozen, built, c->removals, errmsg);
    c->frozen = NULL;
    if (rv != 0) {
        TLOG_ERROR("checkpoint", "retention: deleting trimmed segments: %s (tried again)",
                   errmsg);
    }
    c->stats.last_build_s = (double)c->build_ns / 1e9;
    c->stats.last_release_s = (double)(uv_hrtime() - t0) / 1e9;
    if (built && rv == 0) {
        c->stats.done++;
    } else {
        c->stats.failed++;
        c->retry_at_ns = uv_hrtime() + CHECKPOINTER__RETRY_NS;
    }
    TLOG_INFO("checkpoint", "%s: %.1f ms on the loop to freeze, %.3f s to write, %.1f ms "
              "on the loop to release", built ? "written" : "failed",
              c->stats.last_freeze_s * 1e3, c->stats.last_build_s,
              c->stats.last_release_s * 1e3);
    if (!log_removals_empty(c->removals) &&
        uv_queue_work(c->loop, &c->work, checkpointer__remove, checkpointer__removed) == 0) {
        return; /* still running, until the files are gone */
    }
    log_removals_run(c->removals); /* (nothing, or the pool refused: here) */
    c->removals = NULL;
    checkpointer__done(c);
}

void checkpointer_kick(struct checkpointer *c)
{
    char errmsg[ERR_MSG_SIZE] = "";
    if (c == NULL || c->running || c->closing || !store_checkpoint_wanted(c->store) ||
        uv_hrtime() < c->retry_at_ns) {
        return;
    }
    uint64_t t0 = uv_hrtime();
    int rv = store_checkpoint_freeze(c->store, &c->frozen, errmsg);
    c->stats.last_freeze_s = (double)(uv_hrtime() - t0) / 1e9;
    if (rv == 0) {
        rv = uv_queue_work(c->loop, &c->work, checkpointer__build, checkpointer__built);
        if (rv != 0) {
            err_printf(errmsg, "queue the build: %s", uv_strerror(rv));
            (void)store_checkpoint_release(c->store, c->frozen, false, NULL, errmsg);
            c->frozen = NULL;
        }
    }
    if (rv != 0) {
        TLOG_ERROR("checkpoint", "%s (tried again)", errmsg);
        c->stats.failed++;
        c->retry_at_ns = uv_hrtime() + CHECKPOINTER__RETRY_NS;
        return;
    }
    c->running = true;
}

const struct checkpointer_stats *checkpointer_stats(const struct checkpointer *c)
{
    return &c->stats;
}

void checkpointer_close(struct checkpointer *c, void (*done)(void *arg), void *arg)
{
    if (c == NULL || !c->running) {
        free(c);
        if (done != NULL) {
            done(arg);
        }
        return;
    }
    c->closing = true;
    c->done = done;
    c->done_arg = arg;
}
