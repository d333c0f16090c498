/* The Kafka listener and its connections: Kafka framing (int32 size, then
 * the request), the FIFO that keeps answers in request order, limits and
 * backpressure. Requests are handled by kgw.c. */
#ifndef TALLY_SERVER_KCONN_H_
#define TALLY_SERVER_KCONN_H_

#include <uv.h>

#include "lib/tls.h"
#include "server/kgw.h"

struct auth_conn;
struct kconn_listener;

/* Listen on @addr ("A.B.C.D:PORT"); at most @max_conns Kafka connections
 * at once (more are accepted and closed at once, logged). With @tls (the
 * node's, borrowed; swapped on SIGHUP), every connection starts with a TLS
 * handshake (Kafka's SSL and SASL_SSL listeners). Returns 0 or a TALLY_*
 * code with a message in @errmsg. */
int kconn_listen(uv_loop_t *loop, const char *addr, unsigned max_conns, struct kgw *kg,
                 const struct tls_set *tls, struct kconn_listener **out, char *errmsg);
/* Stop listening and close every Kafka connection (shutdown). NULL: no-op. */
void kconn_stop(struct kconn_listener *l);

/* @job's answer (job->resp, or nothing if job->silent) is ready. */
void kconn_job_done(struct kjob *job);

/* The authentication slot of @job's connection (server/auth.c), or NULL
 * once the connection is gone. */
struct auth_conn **kconn_job_auth(struct kjob *job);
/* The connection's name for logs. */
const char *kconn_job_peer(const struct kjob *job);
/* The SASL mechanism the connection's SaslHandshake chose (a buffer of
 * KCONN_SASL_MECH_MAX bytes, "" before), or NULL once it is gone. */
#define KCONN_SASL_MECH_MAX 32
char *kconn_job_sasl_mech(struct kjob *job);

#endif
