/* The gateway: dispatches decoded requests. Writes become Raft proposals
 * (group commit on the leader), reads are served from the local store, and
 * fetches that must wait (long-poll, min_index) are parked. */
#ifndef TALLY_SERVER_GW_H_
#define TALLY_SERVER_GW_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repl/node.h"
#include "server/cfg.h"
#include "server/req.h"
#include "store/acl.h"
#include "store/store.h"

struct gw;

int gw_create(const struct cfg *cfg, struct store *store, uv_loop_t *loop, struct gw **out);
void gw_set_node(struct gw *gw, struct node *node);
struct metrics;
void gw_set_metrics(struct gw *gw, struct metrics *m);
struct skew;
void gw_set_skew(struct gw *gw, struct skew *k);
/* Fail everything pending or parked (shutdown) and free the gateway. */
void gw_destroy(struct gw *gw);

/* Handle one request whose frame header is decoded; @body is its body
 * (borrowed for the call). */
void gw_handle(struct gw *gw, struct req *req, uint8_t version, const uint8_t *body, size_t len);

/* End of a burst of requests: propose what group commit gathered. */
void gw_flush(struct gw *gw);

/* Events from below. */
void gw_on_applied(struct gw *gw, uint64_t index);
void gw_on_append(struct gw *gw, struct store_topic *t);
void gw_on_role(struct gw *gw, int old_role, int new_role);
/* Called every few seconds: on the leader, when its applied index moved,
 * propose a CATALOG_CHECK of its catalog digest at that index (followers
 * compare theirs, store_catalog_digest). */
void gw_catalog_check(struct gw *gw);

/* Called every retention_interval_ms: on the leader, propose a TOPIC_TRIM
 * for every topic whose retention (by age and size) or tombstone limit
 * moved on, judged by the leader's clock (gw.c, gw__clock). Followers do
 * nothing: every node deletes only what such an entry says. */
void gw_retention(struct gw *gw);
/* Called every few ms: expire parked requests. */
void gw_tick(struct gw *gw);

uint64_t gw_now_ms(void);

/* Backups in progress on this node: a connection that asked for a backup
 * cut pins the node's logs until it closes, so that what the backup
 * copies afterwards is still the state of the cut (compaction, which
 * removes records below the cut once later records of their keys exist,
 * and retention wait: compactor.c, srv.c). @peer names the client for the
 * log. */
void gw_backup_begin(struct gw *gw, const char *peer);
void gw_backup_end(struct gw *gw, const char *peer);
unsigned gw_backups(const struct gw *gw);

/* The data directory's free space fell below (or rose back above) the
 * reserve: while low, writes are refused with TALLY_NOSPACE. */
void gw_set_disk_low(struct gw *gw, bool low, uint64_t free_bytes, uint64_t reserve_bytes);

/* The ACL check native requests pass (auth_allowed), for a front door's
 * request that has no native request of its own (a Kafka JoinGroup): may
 * @who (NULL: not authenticated) do @op on @resource @name? */
bool gw_allowed(struct gw *gw, const char *who, enum acl_resource resource, const char *name,
                enum acl_operation op);

/* For the gateway's helpers (group_gw.c): answer @r with an error; answer
 * it as a node that does not lead (with the leader, if known); the group
 * coordinator. */
void gw_error(struct req *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void gw_not_leader(struct gw *gw, struct req *r);
struct kgroups;
struct kgroups *gw_groups(struct gw *gw);

/* Propose @entry (a store command; taken over) for @r, answered with
 * DONE once applied, or refused if this node cannot write (not the
 * leader, disk low). */
struct buf;
void gw_propose_entry(struct gw *gw, struct req *r, struct buf *entry);

#endif
