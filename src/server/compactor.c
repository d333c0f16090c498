/* Background compaction: see compactor.h.
 *
 * The happy path of a job:
 *   1. the timer's tick plans it on the loop (store_compact_prepare);
 *   2. a thread of its own runs it (store_compact_run) at the nice value
 *      compaction_nice and I/O class idle, then wakes the loop through
 *      the async handle;
 *   3. the loop joins the thread and swaps the result in
 *      (store_compact_finish);
 *   4. another such thread frees the job (closing the replaced files,
 *      which frees their blocks), and the loop forgets it.
 * Possible failure modes: the thread cannot be created (the job is
 * dropped, or freed on the loop), the job fails (logged; the next tick
 * tries again), or the node closes meanwhile (the job is cancelled and
 * stops at its next batch).
 *
 * Why a thread of its own and not libuv's pool: a job is seconds of CPU
 * and gigabytes of reads, and at the same priority as the loop and Raft
 * it cut a busy node's batched produce by half or more
 * (docs/performance.md, "Produce during compaction (issue 20)"). So its
 * thread runs at a lower priority, and a thread of the pool could not be
 * given its priority back afterwards without privileges (setpriority(2):
 * lowering a nice value needs CAP_SYS_NICE), while the pool also runs
 * Raft's disk writes; and a job paced to compaction_io_rate sleeps on its
 * thread for most of its time, which a pool thread must not do. */
#include "server/compactor.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

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
    int nice;                     /* compaction_nice: the job thread's nice value */
    bool nice_warned;             /* said that it could not be set */
    uv_timer_t timer;
    uv_async_t async;             /* the job thread is done */
    uv_thread_t thread;
    bool thread_running;          /* joined by the async callback */
    void (*thread_fn)(struct compactor *c);   /* what the thread runs */
    void (*after_fn)(struct compactor *c);    /* then on the loop */
    int nice_err;                 /* the thread's setpriority errno, or 0 */
    struct store_compaction *job; /* the job on its thread, or NULL */
    int job_rv;                   /* what the worker returned */
    char job_err[ERR_MSG_SIZE];   /* and its message */
    uint64_t job_start_ns;
    bool freeing;                 /* the job is being freed on its thread */
    bool closing;
    unsigned open_handles;        /* the timer and the async, until closed */
    void (*done)(void *arg);      /* compactor_close's callback */
    void *done_arg;
};

static void compactor__handle_closed(uv_handle_t *h)
{
    struct compactor *c = h->data;
    void (*done)(void *) = c->done;
    void *arg = c->done_arg;
    if (--c->open_handles > 0) {
        return;
    }
    free(c);
    if (done != NULL) {
        done(arg);
    }
}

/* Once closing and no job is left: close the handles, then call back. */
static void compactor__maybe_finish_close(struct compactor *c)
{
    if (c->closing && c->job == NULL) {
        uv_close((uv_handle_t *)&c->timer, compactor__handle_closed);
        uv_close((uv_handle_t *)&c->async, compactor__handle_closed);
    }
}

/* ioprio_set(2) has no glibc wrapper: its constants, from the kernel's
 * uapi linux/ioprio.h. */
#define COMPACTOR__IOPRIO_WHO_PROCESS 1
#define COMPACTOR__IOPRIO_CLASS_IDLE 3
#define COMPACTOR__IOPRIO_CLASS_SHIFT 13

/* The calling thread's nice value becomes @nice, and with a nonzero one
 * its I/O class idle (Linux: both per thread). The class matters because
 * the job reads gigabytes: mq-deadline serves reads before writes, so
 * without it a job whose segments were not in the page cache held back
 * Raft's writes and fsyncs on the same disk; an idle-class request is
 * served when no other is waiting (mq-deadline, BFQ; ignored by "none").
 * The errno of a failure, else 0. */
static int compactor__set_nice(int nice)
{
#ifdef __linux__
    pid_t tid = (pid_t)syscall(SYS_gettid);
    if (nice == 0) {
        return 0;
    }
    if (setpriority(PRIO_PROCESS, (id_t)tid, nice) != 0) {
        return errno;
    }
    if (syscall(SYS_ioprio_set, COMPACTOR__IOPRIO_WHO_PROCESS, tid,
                COMPACTOR__IOPRIO_CLASS_IDLE << COMPACTOR__IOPRIO_CLASS_SHIFT) != 0) {
        return errno;
    }
#else
    (void)nice;
#endif
    return 0;
}

static void compactor__thread(void *arg)
{
    struct compactor *c = arg;
    c->nice_err = compactor__set_nice(c->nice);
    c->thread_fn(c);
    uv_async_send(&c->async);
}

static void compactor__thread_done(uv_async_t *a)
{
    struct compactor *c = a->data;
    if (!c->thread_running) {
        return;
    }
    uv_thread_join(&c->thread);
    c->thread_running = false;
    if (c->nice_err != 0 && !c->nice_warned) {
        TLOG_WARN("compact", "cannot lower the compaction thread's priority to nice %d and "
                             "I/O class idle: %s (compacting anyway)", c->nice,
                  strerror(c->nice_err));
        c->nice_warned = true;
    }
    c->after_fn(c);
}

/* Run @fn on a new thread at compaction_nice, then @after on the loop. */
static int compactor__spawn(struct compactor *c, void (*fn)(struct compactor *),
                            void (*after)(struct compactor *))
{
    int rv;
    c->thread_fn = fn;
    c->after_fn = after;
    c->nice_err = 0;
    rv = uv_thread_create(&c->thread, compactor__thread, c);
    c->thread_running = rv == 0;
    return rv;
}

static void compactor__work(struct compactor *c)
{
    c->job_rv = store_compact_run(c->job, c->job_err);
}

static void compactor__free_work(struct compactor *c)
{
    store_compact_free(c->job);
}

static void compactor__freed(struct compactor *c)
{
    c->job = NULL;
    c->freeing = false;
    compactor__maybe_finish_close(c);
}

static void compactor__after(struct compactor *c)
{
    struct log_compact_stats st;
    char errmsg[ERR_MSG_SIZE];
    double seconds = (double)(metrics_now_ns() - c->job_start_ns) / 1e9;
    int rv = c->job_rv;

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
                      "bytes, %llu of %llu records kept, %u segments merged away, %llu bytes "
                      "read and written (%.3f s paced to compaction_io_rate), %.3f s",
                      store_compaction_topic(c->job), st.segments, (unsigned long long)st.upto,
                      st.rewritten, (unsigned long long)st.bytes_in,
                      (unsigned long long)st.bytes_out, (unsigned long long)st.records_out,
                      (unsigned long long)st.records_in, st.merged,
                      (unsigned long long)st.bytes_io, (double)st.paced_ms / 1e3, seconds);
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
     * their disk blocks: on a thread, not here. */
    c->freeing = true;
    if (compactor__spawn(c, compactor__free_work, compactor__freed) != 0) {
        compactor__free_work(c);
        compactor__freed(c);
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
    rv = compactor__spawn(c, compactor__work, compactor__after);
    if (rv != 0) {
        TLOG_WARN("compact", "cannot start a compaction thread: %s", uv_strerror(rv));
        store_compact_free(c->job);
        c->job = NULL;
    }
}

int compactor_start(uv_loop_t *loop, const struct cfg *cfg, struct store *store,
                    struct metrics *metrics, struct gw *gw, struct compactor **out,
                    char *errmsg)
{
    struct compactor *c;
    int rv;
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
    c->cfg.io_rate = cfg->compaction_io_rate;
    c->nice = (int)cfg->compaction_nice;
    rv = uv_async_init(loop, &c->async, compactor__thread_done);
    if (rv != 0) {
        free(c);
        err_printf(errmsg, "start compaction: %s", uv_strerror(rv));
        return TALLY_IOERR;
    }
    c->async.data = c;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
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
        /* A running job stops at its next batch. (A job being freed is
         * left to finish: that is quick.) */
        store_compact_cancel(c->job);
    }
    compactor__maybe_finish_close(c);
}
