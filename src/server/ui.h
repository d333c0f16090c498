/* The web console: GET /ui (the page, built into tallyd) and GET /ui/api/...
 * (read-only JSON about this node, the cluster, topics, records and
 * consumer groups) on the --metrics HTTP listener. docs/console.md is the
 * user's page and documents every endpoint and field.
 *
 * The console reads what the node holds itself: the store's catalog, logs
 * and group positions, and the node's Raft state. What other members know
 * of themselves (role, applied index, reachability) comes from their
 * METADATA answers over the client protocol (ui_peers.h), the same
 * question `tally status` asks, so the page needs no address but this
 * node's. Nothing here writes: every route is GET or HEAD.
 *
 * Everything runs on the loop thread. A records request reads at most
 * UI_READ_MAX_BYTES of the topic's log with pread (page cache in the
 * common case); the bound keeps the loop from stalling on one request. */
#ifndef TALLY_SERVER_UI_H_
#define TALLY_SERVER_UI_H_

#include <uv.h>

#include "lib/byte.h"
#include "repl/node.h"
#include "server/cfg.h"
#include "server/metrics.h"
#include "server/ui_auth.h"
#include "server/ui_query.h"
#include "store/store.h"

#define UI_MAX_RECORDS 500       /* records in one /ui/api/records answer */
#define UI_READ_MAX_BYTES (4u << 20) /* log bytes one records request may read */
#define UI_RATE_SAMPLES 300      /* rate history: one sample a second, 5 min */
#define UI_RATE_TOPICS 256       /* topics whose produce rate is kept */

struct ui;
struct tls_set;

/* Allocate the console; it serves only once ui_attach gave it a store and
 * a node (503 before). @cfg and @metrics are borrowed for the process's
 * life. Returns 0, or TALLY_NOMEM or TALLY_IOERR (no random bytes for the
 * login cache's key) with @errmsg. */
int ui_create(uv_loop_t *loop, const struct cfg *cfg, struct metrics *metrics, struct ui **out,
              char *errmsg);

/* The node is up: serve its state, and start sampling rates once a
 * second. @store, @node and @tls (the node's TLS contexts, NULL when its
 * client port is plaintext: see ui_peers_create) are borrowed until
 * ui_close. */
void ui_attach(struct ui *u, struct store *store, struct node *node, const struct tls_set *tls);

/* Stop sampling and polling members; freed once every handle is closed
 * (the loop must run). NULL is a no-op. */
void ui_close(struct ui *u);

/* The HTTP handler of the --metrics listener (http.h's http_handler,
 * @arg a struct ui): /ui and /ui/... here, every other path to
 * metrics_http (/metrics, /health, 404). With auth = required every
 * /ui/api/ request needs HTTP Basic credentials of a user of the catalog
 * (ui_auth.h), and with authorize = acl it shows only what that user may
 * describe or read (docs/console.md, Authentication). */
struct http_req;
int ui_http(void *arg, struct http_req *req, struct buf *body, const char **content_type);

#endif
