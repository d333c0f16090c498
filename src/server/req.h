/* One client request on its way through the server: created by a front
 * door that reads frames off a socket (conn.c), answered by the gateway
 * (gw.c), which hands it back through the front door's callbacks
 * (struct req_ops). The gateway knows nothing else of the connection, so
 * a second front door (another protocol's listener) can bring requests to
 * the same gateway. */
#ifndef TALLY_SERVER_REQ_H_
#define TALLY_SERVER_REQ_H_

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/byte.h"

struct auth_conn;
struct conn;
struct conn_set;
struct req;

/* What the gateway may ask of the front door that made a request. */
struct req_ops {
    /* The answer in req->resp (and req->file_*, if set) is ready: send it
     * in request order. The request belongs to the front door again. */
    void (*complete)(struct req *req);
    /* @req asked for a backup cut: hold the gateway's backup pin
     * (gw_backup_begin) until its connection closes, whichever way (the
     * backup finished, failed or was killed). Once per connection;
     * nothing if the connection is already gone. */
    void (*hold_backup)(struct req *req);
    /* @req came on a connection that holds a backup pin: its FETCHes may
     * read below a topic's start offset what this node still holds
     * (store_hold_trim: the backup copies the state of its cut). */
    bool (*is_backup)(const struct req *req);
    /* The authentication state slot of @req's connection (server/auth.c),
     * or NULL once the connection is gone. */
    struct auth_conn **(*auth)(struct req *req);
    /* The peer's name for logs ("IP:port (certificate name)"). */
    const char *(*peer)(const struct req *req);
};

/* One request. Created by the connection when a whole frame arrived,
 * handled by the gateway, completed with req_complete(). A request that is
 * not complete belongs to the gateway (parked fetch, pending write); if its
 * connection closes meanwhile, req->conn becomes NULL and req_complete()
 * just frees it. */
struct req {
    const struct req_ops *ops; /* the front door's (static) */
    struct conn *conn;      /* NULL once the connection is gone */
    struct conn_set *set;   /* the front door's connections (outlives conn) */
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

/* The gateway is done with @req: hand it back to its front door. */
static inline void req_complete(struct req *req)
{
    req->ops->complete(req);
}

#endif
