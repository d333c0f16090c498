/* The one blocking frame connection to a tally node: socket set-up
 * (non-blocking, TCP_NODELAY), connect, send-all and receive with a poll(2)
 * deadline, and reading one whole frame. libtally's calls (client.c), its
 * producer (producer.c) and `tally backup` (tool/cmd_backup.c) all talk to
 * nodes through it; what they send and how they retry is theirs.
 *
 * Messages written to @errmsg start with the node's address, "ADDR: ...",
 * and every failure returns a tally.h code:
 *   TALLY_CONNECT  the connection could not be made (nothing was sent)
 *   TALLY_TIMEOUT  the deadline passed
 *   TALLY_IOERR    the peer closed the connection, or a socket error
 *   TALLY_PROTO    a frame header that is not tally's (magic or length)
 *   TALLY_NOMEM    no memory for a frame
 * After any failure but TALLY_CONNECT the stream is out of step (part of a
 * frame may have gone or come): close it. Deadlines are wire_now_ms()
 * values. Internal to libtally and the tally CLI; not exported. */
#ifndef TALLY_CLIENT_WIRE_H_
#define TALLY_CLIENT_WIRE_H_

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/byte.h"
#include "proto/proto.h"

struct wire {
    int fd;                    /* connected socket, or -1 */
    SSL *ssl;                  /* TLS on fd (wire_start_tls), or NULL: plaintext */
    char addr[PROTO_ADDR_MAX]; /* the node's "host:port", for messages */
};

/* Monotonic clock in ms, for deadlines. */
int64_t wire_now_ms(void);

/* Parse "HOST:PORT" (@len bytes at @s) into @sa and the normalised
 * dotted-quad form @norm (PROTO_ADDR_MAX bytes). HOST may be a name; it is
 * resolved to its first IPv4 address here, once. TALLY_INVAL if bad. */
int wire_parse_addr(const char *s, size_t len, struct sockaddr_in *sa, char *norm);

/* A closed connection to the node called @addr (copied, cut to fit). */
void wire_init(struct wire *w, const char *addr);

/* Connect to @sa before @deadline. 0, or TALLY_CONNECT with the reason. */
int wire_open(struct wire *w, const struct sockaddr_in *sa, int64_t deadline, char *errmsg);

/* Close the socket, if open. */
void wire_close(struct wire *w);

/* TLS on the open connection (docs/security.md): the handshake with
 * @ctx by @deadline; the node's certificate must name @host (a name or an
 * IP literal). From then on every call of this file goes through TLS. 0,
 * or TALLY_CONNECT with the reason (the connection is closed); *@refused
 * is set when the node or its certificate refused us (not a timeout):
 * retrying cannot help. */
int wire_start_tls(struct wire *w, SSL_CTX *ctx, const char *host, int64_t deadline,
                   bool *refused, char *errmsg);

/* True if an idle open connection is still usable: not closed by the
 * peer, no error, no bytes nobody asked for. */
bool wire_alive(const struct wire *w);

/* Wait until @fd is ready for @events (POLLIN, POLLOUT) or @deadline
 * passes: 0, TALLY_TIMEOUT or TALLY_IOERR. Errors and hang-ups count as
 * ready: the next send or recv reports them. */
int wire_wait(int fd, short events, int64_t deadline);

/* Send all @n bytes. *@sent becomes true only when the kernel has taken
 * every byte: before that, the node cannot have acted on the request. */
int wire_send_all(struct wire *w, const uint8_t *p, size_t n, int64_t deadline, bool *sent,
                  char *errmsg);

/* Receive exactly @n bytes into @p. */
int wire_recv_exact(struct wire *w, uint8_t *p, size_t n, int64_t deadline, char *errmsg);

/* Receive one whole frame into @into (replacing its contents) and decode
 * its header into @f. Frames over PROTO_MAX_FRAME are TALLY_PROTO. */
int wire_recv_frame(struct wire *w, struct buf *into, int64_t deadline, struct proto_frame *f,
                    char *errmsg);

/* Append what the socket has (up to 64 KiB) to @into, waiting until
 * @deadline for the first byte: for a caller that pipelines requests and
 * cuts frames out of its own buffer. 0 once bytes were added. A timeout
 * returns TALLY_TIMEOUT and leaves @errmsg alone: a deadline already past
 * is the way to ask "anything there?". */
int wire_recv_some(struct wire *w, struct buf *into, int64_t deadline, char *errmsg);

#endif
