/* Backfill: a node that installed a snapshot from the leader lacks the
 * history before it (store.h: missing_from .. missing_to of a topic). This
 * fetches that range from a peer over the ordinary client protocol (FETCH
 * requests to the peer's client address, every batch verified by its
 * checksums), into a staging log, and hands it to the store, which moves
 * it in front of the topic's log (store_backfill_*). One topic at a time,
 * one request in flight; peers are tried in turn when one cannot serve
 * the range (it lacks it too, or is down). With TLS on the client port
 * the peers are asked over TLS, with the node's own certificate
 * (peerdial.h). */
#ifndef TALLY_SERVER_BACKFILL_H_
#define TALLY_SERVER_BACKFILL_H_

#include <stdint.h>
#include <uv.h>

#include "store/store.h"

struct backfill;
struct tls_set;

/* Start looking for work once a second. @store is borrowed and must
 * outlive backfill_close. @self_id: this node (never asked). @fatal is
 * called when a finished backfill cannot be put in place (a disk
 * failure: the node must stop). @tls: the node's TLS contexts when its
 * client port speaks TLS (borrowed until backfill_close, read at each
 * connection so a SIGHUP reload applies), NULL: plaintext. */
int backfill_start(uv_loop_t *loop, struct store *store, uint64_t self_id,
                   const struct tls_set *tls, void (*fatal)(void *arg, const char *why), void *fatal_arg,
                   struct backfill **out, char *errmsg);

/* Stop (dropping a backfill under way: it starts over after a restart)
 * and call @done(@arg) once every handle is closed. @b may be NULL. */
void backfill_close(struct backfill *b, void (*done)(void *arg), void *arg);

#endif
