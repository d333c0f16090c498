/* Dial a member's client port, plaintext or TLS, and hand back a
 * uv_stream_t to speak the client protocol on. Used by the server's own
 * connections to the other members' client ports: backfill (backfill.c),
 * the clock check (skew.c) and the console's member view (ui_peers.c).
 *
 * With TLS (a tls_set given), the connected TCP stream goes to a client
 * tlspipe (repl/tlspipe.h) with the node's own client context
 * (tls_set.peers_out: its certificate, the cluster's CA) and the member's
 * host as the name its certificate must carry; the stream handed back is
 * the plaintext end of the pipe. The context is read from the tls_set at
 * each dial, so a SIGHUP reload applies to the next connection
 * (peerdial_ctx_stale says when an open one was made with a replaced
 * context). docs/security.md, "How TLS is wired". */
#ifndef TALLY_SERVER_PEERDIAL_H_
#define TALLY_SERVER_PEERDIAL_H_

#include <stdbool.h>
#include <uv.h>

struct peerdial;
struct tls_set;
struct tlspipe_group;

/* Called at most once: @stream is the connected stream (owned by the dial:
 * the user may set its data field and read and write it, and ends it with
 * peerdial_close), or NULL on failure with @why saying what went wrong
 * (the user still calls peerdial_close). Never called after
 * peerdial_close. */
typedef void (*peerdial_ready_cb)(void *arg, struct peerdial *d, uv_stream_t *stream,
                                  const char *why);

/* Connect to @addr ("host:port"). @tls: the node's TLS contexts, or NULL
 * for plaintext; @group (may be NULL): the owner's tlspipes, so that it
 * can end handshakes under way at shutdown (tlspipe_group_close);
 * @handshake_timeout_ms bounds the TLS handshake. Returns the dial, or
 * NULL (with nothing called) when @addr cannot be used or memory is
 * short; @why (ERR_MSG_SIZE) then says why. */
struct peerdial *peerdial_start(uv_loop_t *loop, const char *addr, const struct tls_set *tls,
                                struct tlspipe_group *group, unsigned handshake_timeout_ms,
                                peerdial_ready_cb ready, void *arg, char *why);

/* End the dial at any stage (connecting, in the handshake, open, failed);
 * @closed(@closed_arg) runs once every handle is closed and the dial is
 * freed: later, or right away when nothing is left open. A handshake
 * under way ends with its timeout or the group's close. @closed may be
 * NULL. */
void peerdial_close(struct peerdial *d, void (*closed)(void *arg), void *closed_arg);

/* The dial is TLS and @tls (the node's, perhaps reloaded by a SIGHUP since)
 * holds another client context than the one it was made with. */
bool peerdial_ctx_stale(const struct peerdial *d, const struct tls_set *tls);

#endif
