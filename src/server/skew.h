/* Clock health: this node's wall clock against the leader's.
 *
 * Every SKEW_INTERVAL_MS a follower sends a CLOCK request to the leader's
 * client address (one connection, kept open) and takes its offset as
 * NTP does: the leader's wall clock against the middle of the round trip,
 * so the error is at most half the round trip. The leader's own offset is
 * 0. An offset beyond clock_warn_ms is logged at WARN (again every minute
 * while it lasts); `tally status` and /metrics show it. Nothing else
 * depends on the measurement: retention and timestamps are the leader's
 * alone (docs/operations.md, Clocks). */
#ifndef TALLY_SERVER_SKEW_H_
#define TALLY_SERVER_SKEW_H_

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "repl/node.h"
#include "server/cfg.h"
#include "store/store.h"

#define SKEW_INTERVAL_MS 2000

struct skew;

int skew_start(uv_loop_t *loop, const struct cfg *cfg, struct store *store, struct node *node,
               struct skew **out);
/* Close its handles; freed when they are (the loop must run on). */
void skew_close(struct skew *k);

struct skew_state {
    bool known;          /* a measurement against the current leader, recent */
    int64_t offset_ms;   /* this node's clock minus the leader's */
    int64_t rtt_ms;      /* round trip of that measurement (0 on the leader) */
    uint64_t leader_id;  /* the leader it is against (0: none known) */
    bool warn;           /* |offset_ms| > clock_warn_ms */
};
/* @k may be NULL (nothing known). */
void skew_get(struct skew *k, struct skew_state *out);

#endif
