/* Background compaction: see compactor.h. */
#include "server/compactor.h"

#include <stdlib.h>

#include "lib/err.h"
#include "lib/logger.h"
#include "server/gw.h"

struct compactor {
    uv_loop_t *loop;
    struct store *store;
    struct metrics *metrics;
    struct gw *gw;                /* its backup pin holds compaction back */
    bool held_logged;             /* said that a backup holds compaction */
    struct store_compact_config cfg;
    uv_timer_t timer;
    uv_work_t work;
    struct store_compaction *job; /* the job on the thread pool, or NULL */
    int job_rv;                   /* what the worker returned */
    char job_err[ERR_MSG_SIZE];   /* and its message */
    uint64_t job_start_ns;
    bool freeing;                 /* the job is being freed on the thread pool */
    bool closing;
    void (*done)(void *arg);      /* compactor_close's callback */
    void *done_arg;
};

static void compactor__free_timer(uv_handle_t *h)
{
    struct compactor *c = h->data;
    void (*done)(void *) = c->done;
    void *arg = c->done_arg;
    free(c);
    if (done != NULL) {
        done(arg);
    }
}

/* Once closing and no job is left: close the timer, then call back. */
static void compactor__maybe_finish_close(struct compactor *c)
{
    if (c->closing && c->job == NULL) {
        uv_close((uv_handle_t *)&c->timer, compactor__free_timer);
    }
}

static void compactor__work(uv_work_t *w)
{
    struct compactor *c = w->data;
    c->job_rv = store_compact_run(c->job, c->job_err);
}

static void compactor__free_work(uv_work_t *w)
{
    struct compactor *c = w->data;
    store_compact_free(c->job);
}

static void compactor__freed(uv_work_t *w, int status)
{
    struct compactor *c = w->data;
    if (status == UV_ECANCELED) {
        store_compact_free(c->job); /* cancelled before it ran */
    }
    c->job = NULL;
    c->freeing = false;
    compactor__maybe_finish_close(c);
}

static void compactor__after(uv_work_t *w, int status)
{
    struct compactor *c = w->data;
    struct log_compact_stats st;
    char errmsg[ERR_MSG_SIZE];
    double seconds = (double)(metrics_now_ns() - c->job_start_ns) / 1e9;
    int rv = status == UV_ECANCELED ? TALLY_SHUTDOWN : c->job_rv;

    if (rv == 0 && !c->closing && gw_backups(c->gw) > 0) {
        /* A backup took its cut while the job ran: swapping the copies in
         * now would remove records the backup has yet to copy. The job's
         * files go with it; the next job after the backup does it again. */
        TLOG_INFO("compact", "topic %s: compaction not applied: a backup started while it "
                             "ran; it runs again when the backup ends",
                  store_compaction_topic(c->job));
    } else if (rv == 0 && !c->closing) {
        rv = store_compact_finish(c->store, c->job, &st, errmsg);
        if (rv != 0) {
            /* The log is marked failed (sticky) and refuses writes, so the
             * node's next apply stops it the usual way. */
            TLOG_ERROR("compact", "%s", errmsg);
        } else if (st.segments > 0) {
            TLOG_INFO("compact",
                      "topic %s: %u segments below offset %llu, %u rewritten: %llu -> %llu "
                      "bytes, %llu of %llu records kept, %u segments merged away, %.3f s",
                      store_compaction_topic(c->job), st.segments, (unsigned long long)st.upto,
                      st.rewritten, (unsigned long long)st.bytes_in,
                      (unsigned long long)st.bytes_out, (unsigned long long)st.records_out,
                      (unsigned long long)st.records_in, st.merged, seconds);
        }
        metrics_compaction(c->metrics, rv == 0, seconds, st.bytes_in, st.bytes_out,
                           st.records_in - st.records_out);
    } else {
        if (rv != TALLY_SHUTDOWN) {
            TLOG_WARN("compact", "%s", c->job_err);
        }
        metrics_compaction(c->metrics, false, seconds, 0, 0, 0);
    }
    /* Freeing the job closes the replaced segment files, which frees
     * their disk blocks: on the thread pool, not here. */
    c->work.data = c;
    c->freeing = true;
    if (uv_queue_work(c->loop, &c->work, compactor__free_work, compactor__freed) != 0) {
        compactor__free_work(&c->work);
        compactor__freed(&c->work, 0);
    }
}

static void compactor__tick(uv_timer_t *t)
{
    struct compactor *c = t->data;
    int rv;
    if (c->job != NULL || c->closing) {
        return;
    }
    if (gw_backups(c->gw) > 0) {
        if (!c->held_logged) {
            TLOG_INFO("compact", "compaction waits: a backup is copying this node's logs");
            c->held_logged = true;
        }
        return;
    }
    c->held_logged = false;
    /* wall clock, as record timestamps are: it only says when a segment is
     * old enough to compact (lag); which tombstones go is the leader's
     * replicated decision (store_retention_due) */
    rv = store_compact_prepare(c->store, &c->cfg, (int64_t)gw_now_ms(), &c->job, c->job_err);
    if (rv != 0) {
        TLOG_WARN("compact", "%s", c->job_err);
        metrics_compaction(c->metrics, false, 0, 0, 0, 0);
        return;
    }
    if (c->job == NULL) {
        return; /* nothing to do */
    }
    c->job_start_ns = metrics_now_ns();
    c->work.data = c;
    rv = uv_queue_work(c->loop, &c->work, compactor__work, compactor__after);
    if (rv != 0) {
        TLOG_WARN("compact", "cannot queue a compaction: %s", uv_strerror(rv));
        store_compact_free(c->job);
        c->job = NULL;
    }
}

int compactor_start(uv_loop_t *loop, const struct cfg *cfg, struct store *store,
                    struct metrics *metrics, struct gw *gw, struct compactor **out,
                    char *errmsg)
{
    struct compactor *c;
    *out = NULL;
    if (cfg->compaction_interval_ms == 0) {
        TLOG_INFO("compact", "compaction is off (compaction_interval_ms=0)");
        return 0;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        err_printf(errmsg, "start compaction: out of memory");
        return TALLY_NOMEM;
    }
    c->loop = loop;
    c->store = store;
    c->metrics = metrics;
    c->gw = gw;
    c->cfg.min_lag_ms = (int64_t)cfg->min_compaction_lag_ms;
    c->cfg.map_bytes = (size_t)cfg->compaction_buffer_bytes;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, compactor__tick, cfg->compaction_interval_ms,
                   cfg->compaction_interval_ms);
    *out = c;
    return 0;
}

void compactor_close(struct compactor *c, void (*done)(void *arg), void *arg)
{
    if (c == NULL) {
        done(arg);
        return;
    }
    c->closing = true;
    c->done = done;
    c->done_arg = arg;
    uv_timer_stop(&c->timer);
    if (c->job != NULL && !c->freeing) {
        /* A queued job that has not started is cancelled by libuv; a
         * running one stops at its next batch. (A job being freed is left
         * to finish: that is quick.) */
        if (uv_cancel((uv_req_t *)&c->work) != 0) {
            store_compact_cancel(c->job);
        }
    }
    compactor__maybe_finish_close(c);
}
