/* Backfill: a node that installed a snapshot from the leader lacks the
 * history before it (store.h: missing_from .. missing_to of a topic). This
 * fetches that range from a peer over the ordinary client protocol (FETCH
 * requests to the peer's client address, every batch verified by its
 * checksums), into a staging log, and hands it to the store, which moves
 * it in front of the topic's log (store_backfill_*). One topic at a time,
 * one request in flight; peers are tried in turn when one cannot serve
 * the range (it lacks it too, or is down). */
#ifndef TALLY_SERVER_BACKFILL_H_
#define TALLY_SERVER_BACKFILL_H_

#include <stdint.h>
#include <uv.h>

#include "store/store.h"

struct backfill;

/* Start looking for work once a second. @store is borrowed and must
 * outlive backfill_close. @self_id: this node (never asked). @fatal is
 * called when a finished backfill cannot be put in place (a disk
 * failure: the node must stop). */
int backfill_start(uv_loop_t *loop, struct store *store, uint64_t self_id,
                   void (*fatal)(void *arg, const char *why), void *fatal_arg,
                   struct backfill **out, char *errmsg);

/* Stop (dropping a backfill under way: it starts over after a restart)
 * and call @done(@arg) once every handle is closed. @b may be NULL. */
void backfill_close(struct backfill *b, void (*done)(void *arg), void *arg);

#endif
