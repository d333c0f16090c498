/* The one blocking frame connection to a tally node (wire.h): socket
 * set-up, connect, send-all, receive with a poll(2) deadline, one frame.
 *
 * Sockets are non-blocking and every wait is a poll(2) bounded by the
 * caller's deadline, so no call blocks longer than the caller allowed,
 * whatever the node does. This file uses src/proto and src/lib only. */
#include "client/wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/tls.h"

int64_t wire_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int wire_parse_addr(const char *s, size_t len, struct sockaddr_in *sa, char *norm)
{
    char host[PROTO_ADDR_MAX];
    const char *colon = NULL;
    unsigned long port = 0;
    char ip[INET_ADDRSTRLEN];

    for (size_t i = 0; i < len; i++) {
        if (s[i] == ':') {
            colon = s + i;
        }
    }
    if (colon == NULL || colon == s || (size_t)(colon - s) >= sizeof host || colon + 1 == s + len) {
        return TALLY_INVAL;
    }
    for (const char *p = colon + 1; p < s + len; p++) {
        if (*p < '0' || *p > '9' || port > 65535) {
            return TALLY_INVAL;
        }
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port == 0 || port > 65535) {
        return TALLY_INVAL;
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';

    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_INET;
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL) {
            return TALLY_INVAL;
        }
        sa->sin_addr = ((const struct sockaddr_in *)(const void *)res->ai_addr)->sin_addr;
        freeaddrinfo(res);
    }
    inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof ip);
    snprintf(norm, PROTO_ADDR_MAX, "%s:%lu", ip, port);
    return 0;
}

void wire_init(struct wire *w, const char *addr)
{
    w->fd = -1;
    w->ssl = NULL;
    snprintf(w->addr, sizeof w->addr, "%s", addr);
}

int wire_open(struct wire *w, const struct sockaddr_in *sa, int64_t deadline, char *errmsg)
{
    int one = 1;
    int err = 0;
    socklen_t len = sizeof err;

    wire_close(w);
    w->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (w->fd < 0) {
        err_printf(errmsg, "%s: socket: %s", w->addr, strerror(errno));
        return TALLY_CONNECT;
    }
    /* Requests are small and each waits for its answer: Nagle would only
     * add delay. */
    (void)setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(w->fd, (const struct sockaddr *)sa, sizeof *sa) != 0) {
        if (errno != EINPROGRESS) {
            err_printf(errmsg, "%s: connect: %s", w->addr, strerror(errno));
            wire_close(w);
            return TALLY_CONNECT;
        }
        if (wire_wait(w->fd, POLLOUT, deadline) != 0) {
            err_printf(errmsg, "%s: connect: timed out", w->addr);
            wire_close(w);
            return TALLY_CONNECT;
        }
        if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            err_printf(errmsg, "%s: connect: %s", w->addr, strerror(err ? err : errno));
            wire_close(w);
            return TALLY_CONNECT;
        }
    }
    return 0;
}

void wire_close(struct wire *w)
{
    SSL_free(w->ssl);
    w->ssl = NULL;
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
}

/* Checking before sending turns the common "node restarted since" case
 * into a clean reconnect instead of an unknown outcome. */
bool wire_alive(const struct wire *w)
{
    struct pollfd p = {.fd = w->fd, .events = POLLIN};
    uint8_t b;
    if (w->ssl != NULL) {
        return tls_fd_idle_ok(w->ssl); /* TLS records without data are fine */
    }
    if (poll(&p, 1, 0) == 0) {
        return true;
    }
    /* Readable while idle: EOF, an error, or bytes nobody asked for. */
    (void)recv(w->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return false;
}

int wire_wait(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - wire_now_ms();
        struct pollfd p = {.fd = fd, .events = events};
        if (left <= 0) {
            return TALLY_TIMEOUT;
        }
        int rv = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (rv > 0) {
            return 0;
        }
        if (rv < 0 && errno != EINTR) {
            return TALLY_IOERR;
        }
    }
}

int wire_send_all(struct wire *w, const uint8_t *p, size_t n, int64_t deadline, bool *sent,
                  char *errmsg)
{
    size_t done = 0;
    if (w->ssl != NULL) {
        bool late = false;
        char why[ERR_MSG_SIZE / 2];
        if (tls_fd_send(w->ssl, p, n, deadline, &late, why, sizeof why) != 0) {
            err_printf(errmsg, "%s: %s", w->addr, late ? "timed out sending the request" : why);
            return late ? TALLY_TIMEOUT : TALLY_IOERR;
        }
        *sent = true;
        return 0;
    }
    while (done < n) {
        /* MSG_NOSIGNAL: a closed peer gives EPIPE, never SIGPIPE. */
        ssize_t k = send(w->fd, p + done, n - done, MSG_NOSIGNAL);
        if (k > 0) {
            done += (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wire_wait(w->fd, POLLOUT, deadline) != 0) {
                err_printf(errmsg, "%s: timed out sending the request", w->addr);
                return TALLY_TIMEOUT;
            }
            continue;
        }
        err_printf(errmsg, "%s: send: %s", w->addr, strerror(errno));
        return TALLY_IOERR;
    }
    *sent = true;
    return 0;
}

int wire_recv_exact(struct wire *w, uint8_t *p, size_t n, int64_t deadline, char *errmsg)
{
    size_t got = 0;
    while (got < n && w->ssl != NULL) {
        bool late = false;
        char why[ERR_MSG_SIZE / 2];
        ssize_t k = tls_fd_recv(w->ssl, p + got, n - got, deadline, &late, why, sizeof why);
        if (k > 0) {
            got += (size_t)k;
            continue;
        }
        if (k == 0) {
            err_printf(errmsg, "%s: connection closed by the node", w->addr);
            return TALLY_IOERR;
        }
        err_printf(errmsg, "%s: %s", w->addr, late ? "the node did not answer in time" : why);
        return late ? TALLY_TIMEOUT : TALLY_IOERR;
    }
    while (got < n) {
        ssize_t k = recv(w->fd, p + got, n - got, 0);
        if (k > 0) {
            got += (size_t)k;
            continue;
        }
        if (k == 0) {
            err_printf(errmsg, "%s: connection closed by the node", w->addr);
            return TALLY_IOERR;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wire_wait(w->fd, POLLIN, deadline) != 0) {
                err_printf(errmsg, "%s: the node did not answer in time", w->addr);
                return TALLY_TIMEOUT;
            }
            continue;
        }
        err_printf(errmsg, "%s: recv: %s", w->addr, strerror(errno));
        return TALLY_IOERR;
    }
    return 0;
}

int wire_recv_frame(struct wire *w, struct buf *into, int64_t deadline, struct proto_frame *f,
                    char *errmsg)
{
    uint8_t *p;
    size_t body;
    int rv;

    into->len = 0;
    into->oom = false;
    p = buf_reserve(into, PROTO_HEADER_SIZE);
    if (p == NULL) {
        err_printf(errmsg, "out of memory");
        return TALLY_NOMEM;
    }
    rv = wire_recv_exact(w, p, PROTO_HEADER_SIZE, deadline, errmsg);
    if (rv != 0) {
        return rv;
    }
    buf_commit(into, PROTO_HEADER_SIZE);
    rv = proto_decode_frame(into->data, into->len, PROTO_MAX_FRAME, f);
    if (rv != 0) {
        err_printf(errmsg, "%s: malformed response frame (%s)", w->addr,
                   rv == TALLY_TOOLARGE ? "over the size limit" : "bad magic or length");
        return TALLY_PROTO;
    }
    body = (size_t)f->frame_len + 4 - PROTO_HEADER_SIZE;
    p = buf_reserve(into, body);
    if (p == NULL) {
        err_printf(errmsg, "out of memory for a %zu-byte response", body);
        return TALLY_NOMEM;
    }
    rv = wire_recv_exact(w, p, body, deadline, errmsg);
    if (rv != 0) {
        return rv;
    }
    buf_commit(into, body);
    return 0;
}

int wire_recv_some(struct wire *w, struct buf *into, int64_t deadline, char *errmsg)
{
    for (;;) {
        uint8_t *dst = buf_reserve(into, 65536);
        ssize_t k;
        if (dst == NULL) {
            err_printf(errmsg, "out of memory");
            return TALLY_NOMEM;
        }
        if (w->ssl != NULL) { /* one TLS read, waiting until @deadline */
            bool late = false;
            char why[ERR_MSG_SIZE / 2];
            k = tls_fd_recv(w->ssl, dst, 65536, deadline, &late, why, sizeof why);
            if (k < 0) {
                if (late) {
                    return TALLY_TIMEOUT;
                }
                err_printf(errmsg, "%s: %s", w->addr, why);
                return TALLY_IOERR;
            }
        } else {
            k = recv(w->fd, dst, 65536, MSG_DONTWAIT);
        }
        if (k > 0) {
            buf_commit(into, (size_t)k);
            return 0;
        }
        if (k == 0) {
            err_printf(errmsg, "%s: connection closed by the node", w->addr);
            return TALLY_IOERR;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            err_printf(errmsg, "%s: recv: %s", w->addr, strerror(errno));
            return TALLY_IOERR;
        }
        if (wire_now_ms() >= deadline) {
            return TALLY_TIMEOUT;
        }
        if (wire_wait(w->fd, POLLIN, deadline) != 0) {
            return TALLY_TIMEOUT;
        }
    }
}

int wire_start_tls(struct wire *w, SSL_CTX *ctx, const char *host, int64_t deadline,
                   bool *refused, char *errmsg)
{
    char why[ERR_MSG_SIZE / 2];
    bool late = false;
    *refused = false;
    w->ssl = SSL_new(ctx);
    if (w->ssl == NULL || SSL_set_fd(w->ssl, w->fd) != 1 || tls_expect_host(w->ssl, host) != 0) {
        err_printf(errmsg, "%s: TLS: out of memory", w->addr);
        wire_close(w);
        return TALLY_CONNECT;
    }
    SSL_set_connect_state(w->ssl);
    if (tls_fd_handshake(w->ssl, deadline, &late, why, sizeof why) != 0) {
        err_printf(errmsg, "%s: %s", w->addr, late ? "TLS handshake timed out" : why);
        *refused = !late;
        wire_close(w);
        return TALLY_CONNECT;
    }
    return 0;
}
