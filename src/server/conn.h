/* One client connection: read buffer, frame assembly, the FIFO of its
 * requests, in-order responses, limits and backpressure. */
#ifndef TALLY_SERVER_CONN_H_
#define TALLY_SERVER_CONN_H_

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "lib/byte.h"

struct gw;
struct conn;

/* One request. Created by the connection when a whole frame arrived,
 * handled by the gateway, completed with conn_complete(). A request that is
 * not complete belongs to the gateway (parked fetch, pending write); if its
 * connection closes meanwhile, req->conn becomes NULL and conn_complete()
 * just frees it. */
struct req {
    struct conn *conn;      /* NULL once the connection is gone */
    struct req *next;       /* FIFO of the connection */
    uint16_t type;          /* enum proto_type */
    uint32_t id;            /* request id, echoed */
    bool done;
    struct buf resp;        /* the encoded response frame(s) */
    /* A FETCH answer's batches, sent with sendfile(2) right after resp
     * (which then holds the frame up to the blob's length): an fd of its
     * own (the connection closes it), the position and the byte count.
     * file_len 0: none. */
    int file_fd;
    off_t file_pos;
    size_t file_len;
    bool file_warm;         /* the file part was read into the page cache */
    /* Gateway state while the request waits. */
    struct req *park_next;  /* gateway's parked list */
    uint64_t deadline_ms;   /* when a parked request gives up */
    void *gw_data;          /* decoded request kept while parked (owned by gw) */
    uint64_t start_ns;      /* arrival (metrics_now_ns), for latency metrics */
};

/* Accept a new connection from @server (a listening uv_tcp_t). */
int conn_accept(uv_stream_t *server, struct gw *gw);

/* Serve a connection on @fd, the plaintext end of a TLS pipe (connected,
 * non-blocking); @peer names it in logs (copied); @principal: the name of
 * its verified client certificate (it is then authenticated as that), or
 * NULL. On success the connection owns @fd; on failure (a negative libuv
 * code) the caller still does. */
int conn_accept_fd(uv_loop_t *loop, int fd, struct gw *gw, const char *peer,
                   const char *principal);

/* The authentication state slot of @req's connection (server/auth.c), or
 * NULL once the connection is gone. */
struct auth_conn;
struct auth_conn **conn_auth(struct req *req);

/* The peer's name for logs ("IP:port", with the certificate's name). */
const char *conn_peer(const struct req *req);

/* The response in req->resp (and req->file_*, if set) is ready: send it
 * in request order. */
void conn_complete(struct req *req);

/* Close every connection (shutdown). */
void conn_close_all(void);

/* Number of open connections. */
unsigned conn_count(void);

/* @req's connection asked for a backup cut: hold the gateway's backup pin
 * (gw_backup_begin) until the connection closes, whichever way (the
 * backup finished, failed or was killed). Once per connection; nothing if
 * the connection is already gone. */
void conn_hold_backup(struct req *req);

/* @req came on a connection that holds a backup pin: its FETCHes may read
 * below a topic's start offset what this node still holds (store_hold_trim:
 * the backup copies the state of its cut). */
bool conn_is_backup(const struct req *req);

/* Count every answered request in @m (may be NULL: off). */
struct metrics;
void conn_set_metrics(struct metrics *m);

#endif
