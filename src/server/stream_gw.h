/* The reads of issue 18 (docs/protocol.md): STREAM_READ, one key's records
 * through the store's stream index, with read-your-writes (min_index) and
 * a long-poll for a stream's next record; and FETCH_FILTERED, a scan that
 * sends only the records whose key matches a filter. Requests that must wait are parked here and
 * retried when the node applies entries (the gateway calls
 * stream_gw_wake), like parked fetches. Loop thread only. */
#ifndef TALLY_SERVER_STREAM_GW_H_
#define TALLY_SERVER_STREAM_GW_H_

#include <stdbool.h>

#include "lib/byte.h"
#include "repl/node.h"
#include "server/req.h"
#include "store/store.h"

struct stream_gw;

/* *out owned by the caller: stream_gw_destroy. @store borrowed for life. */
int stream_gw_create(struct store *store, struct stream_gw **out);
/* The node whose applied index and leader the answers report (borrowed). */
void stream_gw_set_node(struct stream_gw *sg, struct node *node);
/* Handle one STREAM_READ whose body is @rd (borrowed for the call). */
void stream_gw_handle(struct stream_gw *sg, struct req *r, struct rd *rd);
/* Handle one FETCH_FILTERED whose body is @rd (borrowed for the call). */
void stream_gw_handle_filtered(struct stream_gw *sg, struct req *r, struct rd *rd);
/* Retry the parked requests (@only_expired: just answer those whose time
 * is up). */
void stream_gw_wake(struct stream_gw *sg, bool only_expired);
/* Answer every parked request with SHUTDOWN and free @sg. */
void stream_gw_destroy(struct stream_gw *sg);

#endif
