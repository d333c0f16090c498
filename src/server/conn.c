/* One client connection: read buffer, frame assembly, request FIFO,
 * in-order responses, limits and backpressure.
 *
 * The happy path: libuv reads bytes into the read buffer; every whole frame
 * becomes a struct req appended to the FIFO and handed to the gateway; when
 * the gateway completes a request, every completed request at the head of
 * the FIFO is written out, so responses leave in request order even when
 * a later request (a read) finishes before an earlier one (a write).
 *
 * Failure modes:
 * - bad magic or a frame_len shorter than the header: framing is lost, the
 *   connection gets one error frame and is closed;
 * - a frame larger than PROTO_MAX_FRAME: TOOLARGE error, then closed (we
 *   will not buffer it and cannot skip it safely);
 * - a frame with another protocol version: VERSION error, frame skipped,
 *   connection kept;
 * - a peer that sends many requests without reading answers: parsing and
 *   reading stop while CONN__MAX_PENDING requests are unanswered or more
 *   than CONN__MAX_QUEUED answer bytes are queued (backpressure), and
 *   resume, from a write callback, once both are below half;
 * - a failed write closes the connection (it may not be reading).
 * Nothing from a rejected frame reaches the gateway.
 *
 * Zero-copy FETCH answers: a FETCH answer whose batches are in a segment
 * file carries a dup'd fd, position and length (req->file_*), and req->resp
 * holds only the frame up to the blob's length. When it reaches the head of
 * the FIFO its head is queued with uv_write like any answer; the write
 * callback (every earlier answer and the head are in the kernel then)
 * sends the batches with sendfile(2) on the non-blocking socket. On EAGAIN a
 * uv_poll_t on a dup of the socket fd (so it does not share the stream's
 * epoll watcher) waits for room. Nothing else is written while such an
 * answer is being sent (c->raw), so answers stay in request order. The fd
 * is the answer's own, so retention, truncation or a roll that closes or
 * deletes the segment meanwhile does not matter (a deleted file stays
 * readable through it); a file that shrank under it (truncation) cannot
 * complete the frame, so the connection is closed. sendfile reads the page
 * cache and would make the loop wait for the disk on a segment that is not
 * cached: conn__complete() checks with mincore(2) first and has a worker of
 * libuv's thread pool read such a range into the page cache before the
 * answer is sent (the request counts as not done until then, so the
 * answers keep their order).
 *
 * TLS (the client port with TLS on): the connection does TLS itself, on
 * the TCP socket and the SSL that server/tlsaccept.c hands over after the
 * handshake (repl/tlspipe.c), through the SSL's memory BIOs: each read's
 * bytes are decrypted at once into the read buffer; the answers that are
 * ready are encrypted together and leave in one write, which frees them
 * once written. There is no sendfile(2) then: a FETCH answer's batches
 * are read into the answer (on a worker of the thread pool when they are
 * not in the page cache, as above) and encrypted like any answer. Closing
 * sends close_notify. Before, a TLS pipe sat between the socket and a
 * plaintext socketpair end read by this code: every request and every
 * answer crossed the socketpair and one more turn of the loop.
 *
 * Memory bound per connection, whatever the peer does:
 * - read buffer: between reads it holds only the unparsed prefix of one
 *   frame, whose header was checked against PROTO_MAX_FRAME, and a read
 *   adds at most CONN__READ_CHUNK (with TLS: the plaintext of at most
 *   CONN__READ_CHUNK bytes of records; the SSL's read BIO keeps at most
 *   one partial record); whole frames are only left unparsed
 *   while reading is stopped. So at most PROTO_MAX_FRAME + CONN__READ_CHUNK
 *   bytes (16.1 MiB; buf_reserve's doubling may allocate up to 32 MiB, the
 *   rest untouched). An empty buffer over CONN__RBUF_KEEP is freed.
 * - answers: "queued" = libuv's write queue + completed answers waiting
 *   behind an earlier request + CONN__FETCH_RESERVE for every FETCH not
 *   answered yet (a parked long-poll may complete with up to 4 MiB at any
 *   time). No frame is dispatched while queued > CONN__MAX_QUEUED, so it
 *   stays under CONN__MAX_QUEUED + one answer = 8 + 4 MiB (answers other
 *   than FETCH are small).
 * - at most CONN__MAX_PENDING + 1 struct req (~100 bytes each).
 * Per connection: 16.1 + 12 + 0.1 ~ 28.2 MiB; the server: max_connections
 * x that (1024 x 28.2 MiB ~ 28 GiB), reached only if every peer holds a
 * 16 MiB frame half-sent AND 12 MiB of unread answers; slow readers that
 * send small requests: ~12 MiB each (1024 x 12 MiB = 12 GiB). */
#include "server/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/logger.h"
#include "lib/tls.h"
#include "proto/proto.h"
#include "server/auth.h"
#include "server/gw.h"
#include "server/metrics.h"

#define CONN__MAX_PENDING 1024
#define CONN__READ_CHUNK (64u << 10)
#define CONN__MAX_QUEUED (8u << 20)       /* answer bytes the peer has not taken */
#define CONN__FETCH_RESERVE (4u << 20)    /* = GW__MAX_FETCH_BYTES, per open FETCH */
#define CONN__RBUF_KEEP (1u << 20)        /* free an empty read buffer above this */
#define CONN__TLS_RECORD (16u << 10)      /* the most plaintext one TLS record holds */

struct conn {
    uv_tcp_t handle;
    struct conn_set *set;   /* the server's connections, this one among them */
    struct gw *gw;
    struct buf rbuf;        /* bytes read, not yet parsed */
    struct req *head, *tail; /* FIFO of requests, oldest first */
    unsigned pending;       /* requests not yet written out */
    size_t queued;          /* done answers in the FIFO + open FETCH reserves */
    bool parsing;           /* in conn__parse (no re-entry) */
    bool reading;
    bool closing;
    bool close_after_write; /* framing lost: close once the error is out */
    char peer[64];
    bool backup;            /* holds a backup pin (conn__hold_backup) */
    struct conn *next_conn, *prev_conn;
    /* The zero-copy answer being sent (see the top), NULL if none. */
    struct req *raw;        /* its head is written, its batches are being sent */
    uv_poll_t poll;         /* writability of poll_fd, once needed */
    int poll_fd;            /* dup of the socket fd, -1 until needed */
    unsigned handles;       /* open uv handles: free the conn at 0 */
    struct auth_conn *auth; /* its authentication (server/auth.c), NULL: none yet */
    SSL *ssl;               /* TLS done here (see the top); NULL: plaintext */
};

struct conn__write {
    uv_write_t w;
    struct req *req;
    struct conn *conn;
    bool raw_head;          /* the head of c->raw: its batches follow */
    char *sealed;           /* TLS: the records written (owned) */
    struct req *sent;       /* TLS: the answers they carry, linked by next */
};

static void conn__parse(struct conn *c);
static void conn__drain(struct conn *c);
static int conn__raw_send(struct conn *c);
static void conn__resume(struct conn *c);
static size_t conn__queued(struct conn *c);

static void conn__complete(struct req *req);
static void conn__hold_backup(struct req *req);
static bool conn__is_backup(const struct req *req);
static struct auth_conn **conn__auth(struct req *req);
static const char *conn__peer(const struct req *req);

/* How the gateway hands this front door's requests back (server/req.h). */
static const struct req_ops conn__req_ops = {
    .complete = conn__complete,
    .hold_backup = conn__hold_backup,
    .is_backup = conn__is_backup,
    .auth = conn__auth,
    .peer = conn__peer,
};

unsigned conn_count(const struct conn_set *set)
{
    return set->n;
}

/* Free a request and whatever its answer holds. */
static void conn__free_req(struct req *r)
{
    buf_free(&r->resp);
    if (r->file_fd >= 0) {
        close(r->file_fd);
    }
    free(r);
}

static void conn__closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (h == (uv_handle_t *)&c->poll) {
        close(c->poll_fd);
        c->poll_fd = -1;
    }
    if (--c->handles > 0) {
        return;
    }
    SSL_free(c->ssl);
    buf_free(&c->rbuf);
    free(c);
}

static void conn__written(uv_write_t *w, int status);

/* TLS: send what the SSL wrote into its write BIO (answers' records, a
 * close_notify, an answer to a key update) in one write; @sent: the
 * answers those records carry, freed once written. 0, or -1 (the caller
 * closes the connection). */
static int conn__tls_send(struct conn *c, struct req *sent)
{
    BIO *wbio = SSL_get_wbio(c->ssl);
    size_t n = BIO_ctrl_pending(wbio);
    struct conn__write *cw = NULL;
    char *block = NULL;
    uv_buf_t ub;
    if (n > 0 && n <= INT_MAX) {
        cw = calloc(1, sizeof *cw);
        block = malloc(n);
    }
    if (cw == NULL || block == NULL || BIO_read(wbio, block, (int)n) != (int)n) {
        free(cw);
        free(block);
        for (struct req *r = sent, *next; r != NULL; r = next) {
            next = r->next;
            conn__free_req(r);
        }
        return n == 0 ? 0 : -1;
    }
    cw->conn = c;
    cw->sealed = block;
    cw->sent = sent;
    ub = uv_buf_init(block, (unsigned)n);
    if (uv_write(&cw->w, (uv_stream_t *)&c->handle, &ub, 1, conn__written) != 0) {
        cw->conn = NULL;
        conn__written(&cw->w, 0); /* frees */
        return -1;
    }
    return 0;
}

static void conn__close(struct conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    if (c->ssl != NULL) {
        /* close_notify, so that the client sees an orderly end; the
         * write goes out at once if the socket takes it (uv_close below
         * drops what is still queued). */
        (void)SSL_shutdown(c->ssl);
        ERR_clear_error();
        (void)conn__tls_send(c, NULL);
    }
    auth_conn_free(c->auth); /* auth hook */
    c->auth = NULL;
    if (c->backup) {
        c->backup = false;
        gw_backup_end(c->gw, c->peer);
    }
    /* Requests the gateway still holds outlive the connection. */
    for (struct req *r = c->head, *next; r != NULL; r = next) {
        next = r->next;
        if (r->done) {
            conn__free_req(r);
        } else {
            r->conn = NULL;
        }
    }
    c->head = c->tail = NULL;
    if (c->raw != NULL) {
        conn__free_req(c->raw);
        c->raw = NULL;
    }
    if (c->poll_fd >= 0) {
        uv_close((uv_handle_t *)&c->poll, conn__closed);
    }
    if (c->prev_conn != NULL) {
        c->prev_conn->next_conn = c->next_conn;
    } else {
        c->set->all = c->next_conn;
    }
    if (c->next_conn != NULL) {
        c->next_conn->prev_conn = c->prev_conn;
    }
    c->set->n--;
    uv_close((uv_handle_t *)&c->handle, conn__closed);
}

static void conn__hold_backup(struct req *req)
{
    struct conn *c = req->conn;
    if (c != NULL && !c->closing && !c->backup) {
        c->backup = true;
        gw_backup_begin(c->gw, c->peer);
    }
}

static bool conn__is_backup(const struct req *req)
{
    return req->conn != NULL && req->conn->backup;
}

void conn_close_all(struct conn_set *set)
{
    while (set->all != NULL) {
        conn__close(set->all);
    }
}

static void conn__alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    struct conn *c = h->data;
    uint8_t *p;
    (void)suggested;
    if (c->ssl != NULL) {
        /* Records: decrypted into the read buffer in conn__read. */
        out->base = c->set->tls_in;
        out->len = CONN__READ_CHUNK;
        return;
    }
    p = buf_reserve(&c->rbuf, CONN__READ_CHUNK);
    out->base = (char *)p;
    out->len = p != NULL ? CONN__READ_CHUNK : 0;
}

static void conn__written(uv_write_t *w, int status)
{
    struct conn__write *cw = (struct conn__write *)w;
    struct conn *c = cw->conn;
    bool raw_head = cw->raw_head;
    if (!raw_head && cw->req != NULL) {
        conn__free_req(cw->req); /* a raw head's request is c->raw's to free */
    }
    for (struct req *r = cw->sent, *next; r != NULL; r = next) {
        next = r->next;
        conn__free_req(r);
    }
    free(cw->sealed);
    free(cw);
    if (c == NULL || c->closing) {
        return;
    }
    if (status < 0) {
        /* The peer is gone; we may not be reading, so no read error comes. */
        TLOG_DEBUG("conn", "%s: write: %s", c->peer, uv_strerror(status));
        conn__close(c);
        return;
    }
    if (raw_head) {
        /* Every earlier answer and this one's head are in the kernel: send
         * the batches. Until they are all out (here or from the poll
         * callback) nothing else is written. */
        if (conn__raw_send(c) != 1) {
            return;
        }
        conn__drain(c);
        if (c->closing) {
            return;
        }
    }
    conn__resume(c);
}

static void conn__read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

/* Answer bytes the peer has not taken yet (see the bound at the top). */
static size_t conn__queued(struct conn *c)
{
    size_t raw = c->raw != NULL ? c->raw->file_len : 0;
    return uv_stream_get_write_queue_size((uv_stream_t *)&c->handle) + c->queued + raw;
}

static void conn__start_reading(struct conn *c)
{
    if (!c->reading && !c->closing && !c->close_after_write) {
        if (uv_read_start((uv_stream_t *)&c->handle, conn__alloc, conn__read) == 0) {
            c->reading = true;
        }
    }
}

static void conn__stop_reading(struct conn *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->handle);
        c->reading = false;
    }
}

static void conn__poll_cb(uv_poll_t *h, int status, int events);

/* Send as much of the batches of c->raw (its head is out) as the socket
 * takes. Returns 1 when they are all sent (c->raw is then NULL), 0 when the
 * socket is full (the poll handle calls again), -1 when the connection was
 * closed. */
static int conn__raw_send(struct conn *c)
{
    struct req *r = c->raw;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->handle, &fd) != 0) {
        conn__close(c);
        return -1;
    }
    while (r->file_len > 0) {
        size_t want = r->file_len < (1u << 30) ? r->file_len : (1u << 30);
        ssize_t n = sendfile(fd, r->file_fd, &r->file_pos, want);
        if (n == 0) {
            /* The file ends before the bytes the frame announced (it was
             * truncated): the frame cannot be completed. */
            TLOG_WARN("conn", "%s: segment file shrank under a fetch answer; closing the "
                              "connection", c->peer);
            conn__close(c);
            return -1;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            TLOG_DEBUG("conn", "%s: send: %s", c->peer, strerror(errno));
            conn__close(c);
            return -1;
        }
        r->file_len -= (size_t)n;
    }
    if (r->file_len == 0) {
        c->raw = NULL;
        conn__free_req(r);
        if (c->poll_fd >= 0) {
            uv_poll_stop(&c->poll);
        }
        return 1;
    }
    /* The socket is full: wait for room on a dup of its fd, which has an
     * epoll registration of its own (libuv keeps one watcher per fd). */
    if (c->poll_fd < 0) {
        int pfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (pfd < 0 || uv_poll_init_socket(c->handle.loop, &c->poll, pfd) != 0) {
            TLOG_WARN("conn", "%s: cannot wait for the socket: %s", c->peer,
                      pfd < 0 ? strerror(errno) : "uv_poll_init_socket failed");
            if (pfd >= 0) {
                close(pfd);
            }
            conn__close(c);
            return -1;
        }
        c->poll_fd = pfd;
        c->poll.data = c;
        c->handles++;
    }
    if (uv_poll_start(&c->poll, UV_WRITABLE, conn__poll_cb) != 0) {
        conn__close(c);
        return -1;
    }
    return 0;
}

static void conn__poll_cb(uv_poll_t *h, int status, int events)
{
    struct conn *c = h->data;
    (void)events;
    if (c->closing || c->raw == NULL) {
        return;
    }
    if (status < 0) {
        TLOG_DEBUG("conn", "%s: poll: %s", c->peer, uv_strerror(status));
        conn__close(c);
        return;
    }
    if (conn__raw_send(c) == 1) {
        conn__drain(c);
        if (!c->closing) {
            conn__resume(c);
        }
    }
}

/* TLS: encrypt every completed answer at the head of the FIFO and send
 * their records in one write. */
static void conn__drain_tls(struct conn *c)
{
    struct req *sent = NULL, **tail = &sent;
    while (c->head != NULL && c->head->done) {
        struct req *r = c->head;
        size_t k = 0;
        c->head = r->next;
        if (c->head == NULL) {
            c->tail = NULL;
        }
        c->pending--;
        c->queued -= r->resp.len + r->file_len;
        r->next = NULL;
        *tail = r;
        tail = &r->next;
        /* Into a memory BIO: one call takes it all (file_len is 0 here:
         * conn__complete read the batches into the answer). */
        if (r->file_len > 0 ||
            (r->resp.len > 0 && (SSL_write_ex(c->ssl, r->resp.data, r->resp.len, &k) != 1 ||
                                 k != r->resp.len))) {
            ERR_clear_error();
            (void)conn__tls_send(c, sent); /* frees them */
            conn__close(c);
            return;
        }
    }
    if (sent != NULL && conn__tls_send(c, sent) != 0) {
        conn__close(c);
        return;
    }
    if (c->head == NULL && c->close_after_write) {
        conn__close(c);
    }
}

/* Write out every completed request at the head of the FIFO. */
static void conn__drain(struct conn *c)
{
    if (c->ssl != NULL) {
        conn__drain_tls(c);
        return;
    }
    while (c->raw == NULL && c->head != NULL && c->head->done) {
        struct req *r = c->head;
        struct conn__write *cw = calloc(1, sizeof *cw);
        uv_buf_t ub;
        c->head = r->next;
        if (c->head == NULL) {
            c->tail = NULL;
        }
        c->pending--;
        c->queued -= r->resp.len + r->file_len;
        if (cw == NULL) {
            conn__free_req(r);
            conn__close(c);
            return;
        }
        cw->req = r;
        cw->conn = c;
        /* A zero-copy answer: its head goes through libuv's queue like any
         * answer; its write callback sends the batches (conn__raw_send),
         * and until then c->raw stops this loop. Completing only from
         * callbacks keeps conn__complete() from freeing the request or
         * parsing more frames under its caller. */
        cw->raw_head = r->file_len > 0;
        if (cw->raw_head) {
            c->raw = r;
        }
        ub = uv_buf_init((char *)r->resp.data, (unsigned)r->resp.len);
        if (uv_write(&cw->w, (uv_stream_t *)&c->handle, &ub, 1, conn__written) != 0) {
            if (cw->raw_head) {
                c->raw = NULL;
            }
            conn__free_req(r);
            free(cw);
            conn__close(c);
            return;
        }
    }
    if (c->head == NULL && c->raw == NULL && c->close_after_write) {
        conn__close(c); /* uv_close lets queued writes finish or cancel */
        return;
    }
    /* Reading resumes from conn__written, once the peer takes answers. */
}

/* Is every page of the answer's file range in the page cache? An error
 * (no mapping) says yes: sendfile then does what it would have done. */
static bool conn__cached(const struct req *r)
{
    long page = sysconf(_SC_PAGESIZE);
    off_t start = r->file_pos & ~((off_t)page - 1);
    size_t len = (size_t)(r->file_pos - start) + r->file_len;
    size_t pages = (len + (size_t)page - 1) / (size_t)page;
    unsigned char small[1024];
    unsigned char *vec = pages <= sizeof small ? small : malloc(pages);
    bool cached = true;
    void *map;
    if (vec == NULL) {
        return true;
    }
    map = mmap(NULL, len, PROT_READ, MAP_SHARED, r->file_fd, start);
    if (map != MAP_FAILED) {
        if (mincore(map, len, vec) == 0) {
            for (size_t i = 0; i < pages && cached; i++) {
                cached = (vec[i] & 1) != 0;
            }
        }
        munmap(map, len);
    }
    if (vec != small) {
        free(vec);
    }
    return cached;
}

/* Read the answer's batches (file_fd, file_pos, file_len) into its
 * frame after the head, and let go of the file: a TLS connection
 * encrypts them like any answer. 0, or -1 with the answer as it was (the
 * file ends early, or cannot be read or the memory had). Touches only
 * @r, so a worker may call it. */
static int conn__read_into(struct req *r)
{
    uint8_t *dst = buf_reserve(&r->resp, r->file_len);
    size_t got = 0;
    if (dst == NULL) {
        return -1;
    }
    while (got < r->file_len) {
        ssize_t n = pread(r->file_fd, dst + got, r->file_len - got, r->file_pos + (off_t)got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        got += (size_t)n;
    }
    buf_commit(&r->resp, got);
    close(r->file_fd);
    r->file_fd = -1;
    r->file_pos += (off_t)got;
    r->file_len = 0;
    return 0;
}

struct conn__warm {
    uv_work_t w;
    struct req *req;
    bool into_answer;       /* TLS: read the batches into the answer */
};

/* On a worker thread: read the range once, so that it is in the page
 * cache when the loop sends it (or, for TLS, into the answer). The fd is
 * the answer's own. */
static void conn__warm_work(uv_work_t *w)
{
    struct req *r = ((struct conn__warm *)w)->req;
    char buf[32 << 10];
    if (((struct conn__warm *)w)->into_answer) {
        (void)conn__read_into(r); /* on failure the loop tries again, and says so */
        return;
    }
    off_t pos = r->file_pos;
    size_t left = r->file_len;
    while (left > 0) {
        ssize_t n = pread(r->file_fd, buf, left < sizeof buf ? left : sizeof buf, pos);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break; /* sendfile meets the same error or end of file, and says so */
        }
        pos += n;
        left -= (size_t)n;
    }
}

static void conn__warm_done(uv_work_t *w, int status)
{
    struct req *r = ((struct conn__warm *)w)->req;
    (void)status;
    free(w);
    r->file_warm = true;
    conn__complete(r);
}

static void conn__complete(struct req *req)
{
    bool tls = req->conn != NULL && req->conn->ssl != NULL;
    if (req->file_len > 0 && !req->file_warm && req->conn != NULL && req->set->loop != NULL &&
        !conn__cached(req)) {
        /* Not done yet: the FIFO waits, the fd stays the request's. */
        struct conn__warm *cw = malloc(sizeof *cw);
        if (cw != NULL) {
            cw->req = req;
            cw->into_answer = tls;
            if (uv_queue_work(req->set->loop, &cw->w, conn__warm_work, conn__warm_done) == 0) {
                TLOG_DEBUG("conn", "fetch answer of %zu bytes is not in the page cache: "
                                   "reading it on a worker first", req->file_len);
                return;
            }
            free(cw);
        }
    }
    if (tls && req->file_len > 0 && conn__read_into(req) != 0) {
        TLOG_WARN("conn", "%s: cannot read a fetch answer's %zu bytes of batches (the segment "
                  "file shrank, or out of memory); closing the connection", req->conn->peer,
                  req->file_len);
        conn__close(req->conn); /* req->conn is NULL now: freed below */
    }
    req->done = true;
    metrics_request_done(req->set->metrics, req->type, req->start_ns, req->resp.data, req->resp.len);
    if (req->conn == NULL) {
        conn__free_req(req);
        return;
    }
    if (req->type == PROTO_FETCH) {
        req->conn->queued -= CONN__FETCH_RESERVE;
    }
    req->conn->queued += req->resp.len + req->file_len;
    conn__drain(req->conn);
}

/* Parse buffered frames and read again if the peer took enough answers. */
static void conn__resume(struct conn *c)
{
    if (c->closing || c->close_after_write || c->parsing ||
        c->pending >= CONN__MAX_PENDING / 2 || conn__queued(c) >= CONN__MAX_QUEUED / 2) {
        return;
    }
    if (c->rbuf.len >= PROTO_HEADER_SIZE && !c->reading) {
        conn__parse(c);
        gw_flush(c->gw);
    }
    if (!c->closing && c->pending < CONN__MAX_PENDING && conn__queued(c) <= CONN__MAX_QUEUED) {
        conn__start_reading(c);
    }
}

static struct req *conn__new_req(struct conn *c, uint16_t type, uint32_t id)
{
    struct req *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return NULL;
    }
    r->ops = &conn__req_ops;
    r->conn = c;
    r->set = c->set;
    r->type = type;
    r->id = id;
    r->start_ns = metrics_now_ns();
    r->file_fd = -1;
    buf_init(&r->resp);
    if (c->tail != NULL) {
        c->tail->next = r;
    } else {
        c->head = r;
    }
    c->tail = r;
    c->pending++;
    if (type == PROTO_FETCH) {
        c->queued += CONN__FETCH_RESERVE;
    }
    return r;
}

/* Answer with an error and close once it is written: framing is lost. */
static void conn__fatal_frame(struct conn *c, uint16_t type, uint32_t id, int code,
                              const char *msg)
{
    struct req *r = conn__new_req(c, type, id);
    TLOG_WARN("conn", "%s: %s; closing the connection", c->peer, msg);
    c->close_after_write = true;
    conn__stop_reading(c);
    if (r == NULL) {
        conn__close(c);
        return;
    }
    proto_put_error_frame(&r->resp, type, id, code, msg, 0, "");
    conn__complete(r);
}

/* Parse and dispatch every whole frame in the read buffer. */
static void conn__parse(struct conn *c)
{
    size_t pos = 0;
    c->parsing = true;
    while (!c->closing && !c->close_after_write && c->rbuf.len - pos >= PROTO_HEADER_SIZE) {
        if (c->pending >= CONN__MAX_PENDING || conn__queued(c) > CONN__MAX_QUEUED) {
            break; /* backpressure: the rest waits in the buffer */
        }
        struct proto_frame f;
        const uint8_t *p = c->rbuf.data + pos;
        int rv = proto_decode_frame(p, c->rbuf.len - pos, PROTO_MAX_FRAME, &f);
        if (rv == TALLY_TOOLARGE) {
            char msg[128];
            snprintf(msg, sizeof msg, "frame of %u bytes is over the limit of %u",
                     f.frame_len + 4, (unsigned)PROTO_MAX_FRAME);
            conn__fatal_frame(c, f.type, f.request_id, TALLY_TOOLARGE, msg);
            break;
        }
        if (rv != 0) {
            conn__fatal_frame(c, 0, 0, TALLY_PROTO, "malformed frame header (bad magic or length)");
            break;
        }
        if (c->rbuf.len - pos < (size_t)f.frame_len + 4) {
            break; /* wait for the rest */
        }
        pos += (size_t)f.frame_len + 4;
        struct req *r = conn__new_req(c, f.type, f.request_id);
        if (r == NULL) {
            conn__close(c);
            return;
        }
        if (f.flags & PROTO_FLAG_RESPONSE) {
            proto_put_error_frame(&r->resp, f.type, f.request_id, TALLY_PROTO,
                                  "a response frame was sent to the server", 0, "");
            conn__complete(r);
            continue;
        }
        gw_handle(c->gw, r, f.version, p + PROTO_HEADER_SIZE, f.frame_len + 4 - PROTO_HEADER_SIZE);
        if (c->closing) {
            return;
        }
    }
    c->parsing = false;
    if (c->closing) {
        return;
    }
    if (pos > 0) {
        memmove(c->rbuf.data, c->rbuf.data + pos, c->rbuf.len - pos);
        c->rbuf.len -= pos;
    }
    if (c->rbuf.len == 0 && c->rbuf.cap > CONN__RBUF_KEEP) {
        buf_free(&c->rbuf);
    }
    if (c->pending >= CONN__MAX_PENDING || conn__queued(c) > CONN__MAX_QUEUED) {
        conn__stop_reading(c);
    }
}

/* TLS: decrypt @n network bytes into the read buffer (n 0: what the
 * read BIO already holds). 0, or -1 when the connection is over: the
 * peer's close_notify, a record that does not decrypt, out of memory;
 * what was decrypted before stays in the read buffer. */
static int conn__tls_in(struct conn *c, const char *data, size_t n)
{
    if (n > 0 && BIO_write(SSL_get_rbio(c->ssl), data, (int)n) != (int)n) {
        return -1;
    }
    for (int i = 0; i < 1000000; i++) {
        uint8_t *p;
        size_t k = 0;
        int ret, e;
        if (SSL_has_pending(c->ssl) == 0 && BIO_ctrl_pending(SSL_get_rbio(c->ssl)) == 0) {
            /* All taken: spare OpenSSL a read that can only fail. */
            return conn__tls_send(c, NULL); /* e.g. the answer to a key update */
        }
        p = buf_reserve(&c->rbuf, CONN__TLS_RECORD);
        if (p == NULL) {
            return -1;
        }
        ret = SSL_read_ex(c->ssl, p, CONN__TLS_RECORD, &k);
        if (ret == 1) {
            buf_commit(&c->rbuf, k);
            continue;
        }
        e = SSL_get_error(c->ssl, ret);
        if (e == SSL_ERROR_WANT_READ) {
            return conn__tls_send(c, NULL); /* e.g. the answer to a key update */
        }
        if (e != SSL_ERROR_ZERO_RETURN) {
            char why[300];
            tls_explain(c->ssl, ret, why, sizeof why);
            TLOG_DEBUG("conn", "%s: %s", c->peer, why);
        }
        ERR_clear_error();
        return -1;
    }
    return -1;
}

static void conn__read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = s->data;
    (void)b;
    if (nread > 0 && c->ssl != NULL) {
        /* Requests decrypted before the end are handled, as without TLS
         * (they were read before the end-of-file). */
        int over = conn__tls_in(c, b->base, (size_t)nread);
        conn__parse(c);
        gw_flush(c->gw);
        if (over != 0 && !c->closing) {
            conn__close(c);
        }
        return;
    }
    if (nread < 0) {
        if (nread != UV_EOF) {
            TLOG_DEBUG("conn", "%s: read: %s", c->peer, uv_strerror((int)nread));
        }
        conn__close(c);
        return;
    }
    if (nread == 0) {
        return;
    }
    if (b->base == NULL) {
        conn__close(c); /* out of memory in alloc */
        return;
    }
    buf_commit(&c->rbuf, (size_t)nread);
    conn__parse(c);
    gw_flush(c->gw);
}

int conn_accept(struct conn_set *set, uv_stream_t *server, struct gw *gw)
{
    struct conn *c = calloc(1, sizeof *c);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    int rv;
    if (c == NULL) {
        return UV_ENOMEM;
    }
    set->loop = server->loop;
    c->set = set;
    c->gw = gw;
    c->poll_fd = -1;
    c->handles = 1;
    buf_init(&c->rbuf);
    uv_tcp_init(server->loop, &c->handle);
    c->handle.data = c;
    rv = uv_accept(server, (uv_stream_t *)&c->handle);
    if (rv != 0) {
        uv_close((uv_handle_t *)&c->handle, conn__closed);
        return rv;
    }
    uv_tcp_nodelay(&c->handle, 1);
    snprintf(c->peer, sizeof c->peer, "client");
    if (uv_tcp_getpeername(&c->handle, (struct sockaddr *)&ss, &len) == 0 &&
        ss.ss_family == AF_INET) {
        char ip[32];
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        uv_ip4_name(sin, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "%s:%u", ip, ntohs(sin->sin_port));
    }
    c->next_conn = set->all;
    if (set->all != NULL) {
        set->all->prev_conn = c;
    }
    set->all = c;
    set->n++;
    conn__start_reading(c);
    return 0;
}

/* ---- TLS hook (server/tlsaccept.c) ------------------------------------
 * A TLS connection reaches us as its TCP socket and SSL after the
 * handshake (see the top); or, with @ssl NULL, as the plaintext end of a
 * socketpair that repl/tlspipe.c feeds, on which the plaintext code runs,
 * sendfile(2) included. */
int conn_accept_fd(struct conn_set *set, uv_loop_t *loop, int fd, SSL *ssl, struct gw *gw,
                   const char *peer, const char *principal, uint64_t node_id)
{
    struct conn *c;
    int rv;
    if (ssl != NULL && set->tls_in == NULL && (set->tls_in = malloc(CONN__READ_CHUNK)) == NULL) {
        return UV_ENOMEM;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        return UV_ENOMEM;
    }
    if (principal != NULL && (c->auth = auth_conn_certified(principal, node_id)) == NULL) {
        free(c);
        return UV_ENOMEM;
    }
    set->loop = loop;
    c->set = set;
    c->gw = gw;
    c->poll_fd = -1;
    c->handles = 1;
    buf_init(&c->rbuf);
    uv_tcp_init(loop, &c->handle);
    c->handle.data = c;
    rv = uv_tcp_open(&c->handle, fd);
    if (rv != 0) {
        auth_conn_free(c->auth);
        c->auth = NULL;
        uv_close((uv_handle_t *)&c->handle, conn__closed);
        return rv;
    }
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->next_conn = set->all;
    if (set->all != NULL) {
        set->all->prev_conn = c;
    }
    set->all = c;
    set->n++;
    c->ssl = ssl;
    conn__start_reading(c);
    if (ssl != NULL && BIO_ctrl_pending(SSL_get_rbio(ssl)) > 0) {
        /* Requests that came with the end of the handshake. */
        int over = conn__tls_in(c, NULL, 0);
        conn__parse(c);
        gw_flush(c->gw);
        if (over != 0 && !c->closing) {
            conn__close(c);
        }
    }
    return 0;
}

void conn_set_free(struct conn_set *set)
{
    free(set->tls_in);
    set->tls_in = NULL;
}

/* ---- auth hook (server/auth.c, through req_ops) ----------------------- */
static struct auth_conn **conn__auth(struct req *req)
{
    return req->conn != NULL && !req->conn->closing ? &req->conn->auth : NULL;
}

static const char *conn__peer(const struct req *req)
{
    return req->conn != NULL ? req->conn->peer : "client (gone)";
}
