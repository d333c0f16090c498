/* The console's view of the other members: each member's own answer to
 * METADATA (role, term, commit and applied index, the leader it knows),
 * asked over the client protocol at the member's client address, as
 * `tally status` asks it (over TLS when the client port speaks TLS). This node's own state is read from the node.
 *
 * Members are asked once every UI_PEERS_INTERVAL_MS, and only while the
 * console is being watched (a cluster request in the last
 * UI_PEERS_LINGER_MS): a node nobody looks at sends nothing. One
 * connection per member, kept open, one request in flight; a member that
 * does not answer within UI_PEERS_TIMEOUT_MS is unreachable until it
 * answers again. */
#ifndef TALLY_SERVER_UI_PEERS_H_
#define TALLY_SERVER_UI_PEERS_H_

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "repl/node.h"
#include "store/store.h"

#define UI_PEERS_INTERVAL_MS 1000
#define UI_PEERS_TIMEOUT_MS 2000
#define UI_PEERS_LINGER_MS 30000

struct ui_peers_member {
    uint64_t id;
    char client[STORE_ADDR_MAX]; /* client address ("" when not known) */
    char raft[STORE_ADDR_MAX];
    bool voter;
    bool spare;                  /* not even sent the log */
    bool self;                   /* the node answering */
    bool reachable;              /* answered its latest question in time */
    bool asked;                  /* asked at least once since the console woke */
    int role;                    /* enum tally_role as the member reports it */
    uint64_t term, commit_index, applied_index, last_index, leader_id;
    uint64_t answered_ms_ago;    /* age of the answer shown (UINT64_MAX: none) */
};

struct ui_peers;
struct tls_set;

/* @tls: the node's TLS contexts when its client port speaks TLS (the
 * members are then asked over TLS, with the node's certificate as client
 * certificate), borrowed until ui_peers_close and read at each new
 * connection, so a SIGHUP reload that swaps them in place is seen; NULL:
 * plaintext. */
int ui_peers_create(uv_loop_t *loop, struct store *store, struct node *node,
                    const struct tls_set *tls, struct ui_peers **out);
/* The console asked about the cluster: keep polling for a while. */
void ui_peers_wanted(struct ui_peers *p);
/* The members of the Raft configuration, this node included, in @out (at
 * most @cap); returns how many. */
unsigned ui_peers_get(struct ui_peers *p, struct ui_peers_member *out, unsigned cap);
/* Close every handle; the memory goes with the last one. NULL: no-op. */
void ui_peers_close(struct ui_peers *p);

#endif
