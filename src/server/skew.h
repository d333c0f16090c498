/* Clock health: this node's wall clock against the cluster's time.
 *
 * The cluster's time is the leader's wall clock less the correction the
 * leader took over (below); it is what records are stamped with and what
 * retention is judged by (gw.c). Every SKEW_INTERVAL_MS a follower sends a
 * CLOCK request to the leader's client address (one connection, kept
 * open; over TLS with the node's own certificate when the client port
 * speaks TLS, peerdial.h) and takes its offset as NTP does: the leader's wall clock against
 * the middle of the round trip (error at most half the round trip), plus
 * the leader's correction. A node that becomes leader while its clock is
 * more than clock_warn_ms off the previous leader's takes over the
 * cluster's time (skew_take_over), so timestamps and retention do not jump
 * with a leadership change; its offset is then that correction. An offset
 * beyond clock_warn_ms is logged at WARN (again every minute while it
 * lasts); `tally status` and /metrics show it (docs/operations.md,
 * Clocks). */
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
struct tls_set;

/* @tls: the node's TLS contexts when its client port speaks TLS (borrowed
 * until skew_close, read at each connection so a SIGHUP reload applies),
 * NULL: plaintext. */
int skew_start(uv_loop_t *loop, const struct cfg *cfg, struct store *store, struct node *node,
               const struct tls_set *tls, struct skew **out);
/* Close its handles; freed when they are (the loop must run on). */
void skew_close(struct skew *k);

struct skew_state {
    bool known;          /* a measurement against the current leader, recent */
    int64_t offset_ms;   /* this node's clock minus the leader's */
    int64_t rtt_ms;      /* round trip of that measurement (0 on the leader) */
    uint64_t leader_id;  /* the leader it is against (0: none known) */
    bool warn;           /* |offset_ms| > clock_warn_ms */
};
/* @k may be NULL (nothing known). On the leader, offset_ms is the
 * correction it took over (skew_take_over). */
void skew_get(struct skew *k, struct skew_state *out);

/* This node just became the leader: the correction (ms) to subtract from
 * its wall clock to go on with the cluster's time, i.e. its last offset
 * against the previous leader when that is recent and beyond clock_warn_ms
 * (logged), else 0. Held until it becomes leader again. @k may be NULL. */
int64_t skew_take_over(struct skew *k);

#endif
