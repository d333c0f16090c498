/* Background compaction of the topics whose policy includes "compact":
 * a timer looks for work every compaction_interval_ms and runs one job at
 * a time on a thread of its own at nice compaction_nice (store.h,
 * store_compact_*), its reads and writes paced to compaction_io_rate (the
 * thread sleeps: log.h, log_compact_params.io_rate), so the loop only
 * plans the job and swaps its result in. */
#ifndef TALLY_SERVER_COMPACTOR_H_
#define TALLY_SERVER_COMPACTOR_H_

#include <uv.h>

#include "server/cfg.h"
#include "server/metrics.h"
#include "store/store.h"

struct compactor;

/* Start the timer (nothing at all if cfg->compaction_interval_ms is 0).
 * @store, @metrics and @gw are borrowed and must outlive compactor_close.
 * While a backup holds the gateway's pin (gw_backups), no job starts and
 * a job that was running is not swapped in (it runs again afterwards). */
struct gw;
int compactor_start(uv_loop_t *loop, const struct cfg *cfg, struct store *store,
                    struct metrics *metrics, struct gw *gw, struct compactor **out,
                    char *errmsg);

/* Stop: cancel a running job, and call @done(@arg) once no job is left
 * (at once when idle, else when the worker has returned). Frees the
 * compactor. @c may be NULL (then @done runs at once). */
void compactor_close(struct compactor *c, void (*done)(void *arg), void *arg);

#endif
