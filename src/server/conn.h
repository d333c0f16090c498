/* One client connection: read buffer, frame assembly, the FIFO of its
 * requests, in-order responses, limits and backpressure. */
#ifndef TALLY_SERVER_CONN_H_
#define TALLY_SERVER_CONN_H_

#include <stdbool.h>
#include <uv.h>

#include "server/req.h"

struct gw;
struct metrics;

/* Every open connection of one server; owned by the server (srv.c), zeroed
 * before use, then given to conn_accept. */
struct conn_set {
    struct conn *all;        /* open connections, linked through conn */
    unsigned n;              /* how many (the metrics read it) */
    struct metrics *metrics; /* counts every answered request; NULL: off */
    uv_loop_t *loop;         /* for thread-pool read-ahead; set on accept */
};

/* Accept a new connection from @server (a listening uv_tcp_t) into @set.
 * Its requests go to @gw, which answers them through req->ops. */
int conn_accept(struct conn_set *set, uv_stream_t *server, struct gw *gw);

/* Close every connection of @set (shutdown). */
void conn_close_all(struct conn_set *set);

/* Serve a connection on @fd, the plaintext end of a TLS pipe (connected,
 * non-blocking), in @set; @peer names it in logs (copied); @principal:
 * the name of its verified client certificate (it is then authenticated
 * as that), or NULL; @node_id: not 0 when that certificate proves the
 * peer is that node (auth_conn_certified). On success the connection owns
 * @fd; on failure (a negative libuv code) the caller still does. */
int conn_accept_fd(struct conn_set *set, uv_loop_t *loop, int fd, struct gw *gw,
                   const char *peer, const char *principal, uint64_t node_id);

/* Number of open connections in @set. */
unsigned conn_count(const struct conn_set *set);

#endif
