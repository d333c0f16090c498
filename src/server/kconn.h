/* The Kafka listener and its connections: Kafka framing (int32 size, then
 * the request), the FIFO that keeps answers in request order, limits and
 * backpressure. Requests are handled by kgw.c. */
#ifndef TALLY_SERVER_KCONN_H_
#define TALLY_SERVER_KCONN_H_

#include <uv.h>

#include "server/kgw.h"

struct kconn_listener;

/* Listen on @addr ("A.B.C.D:PORT"); at most @max_conns Kafka connections
 * at once (more are accepted and closed at once, logged). Returns 0 or a
 * TALLY_* code with a message in @errmsg. */
int kconn_listen(uv_loop_t *loop, const char *addr, unsigned max_conns, struct kgw *kg,
                 struct kconn_listener **out, char *errmsg);
/* Stop listening and close every Kafka connection (shutdown). NULL: no-op. */
void kconn_stop(struct kconn_listener *l);

/* @job's answer (job->resp, or nothing if job->silent) is ready. */
void kconn_job_done(struct kjob *job);

#endif
