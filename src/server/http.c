/* A very small HTTP/1.1 server for the metrics endpoint; see http.h.
 *
 * A connection's life:
 *   reading   bytes go through http_parser until a whole request arrived
 *             (then the handler answers), the parser fails (400), or the
 *             request outgrows HTTP_MAX_REQUEST (413);
 *   answered  the response is being written; later input is discarded;
 *   shut      written and our side shut down (FIN sent): we wait briefly
 *             for the peer to close too, so that closing does not reset a
 *             connection with unread input and lose the response.
 * The idle timer closes a connection in any state that sees no progress.
 * Every handle is closed through uv_close and the memory freed in the
 * close callbacks; the server itself is freed when its listener and its
 * last connection are gone. */
#include "server/http.h"

#include <arpa/inet.h>
#include <http_parser.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/logger.h"
#include "lib/scram.h"
#include "lib/tls.h"
#include "repl/tlspipe.h"
#include "server/cfg.h"

#define HTTP__LINGER_MS 2000
#define HTTP__READ_CHUNK 4096

struct http_conn;

struct http_srv {
    uv_loop_t *loop;
    uv_tcp_t listener;
    http_handler fn;
    void *arg;
    struct http_conn *conns;
    unsigned n_conns;
    unsigned live;        /* the listener and the connections not yet freed */
    unsigned dropped;     /* connections refused (logged at most every 10 s) */
    uint64_t drop_logged_ms;
    bool stopping;
    const struct tls_set *tls;  /* HTTPS (http_set_tls), or NULL */
    struct tlspipe_group pipes; /* the HTTPS connections */
};

struct http_conn {
    struct http_srv *srv;
    uv_tcp_t tcp;
    uv_timer_t timer;
    unsigned handles;     /* handles of this connection not yet closed */
    http_parser parser;
    char rbuf[HTTP__READ_CHUNK];
    size_t received;
    char url[HTTP_MAX_URL];
    size_t url_len;
    bool url_too_long;
    /* The headers kept: Authorization and X-Requested-With (a field's
     * name and value may each come in pieces). */
    char field[32];
    size_t field_len;
    bool field_long;
    bool in_value;            /* the last piece was of a value */
    int want;                 /* the value being read: 0 none, 1 auth, 2 X-Requested-With */
    char auth[HTTP_MAX_AUTH];
    size_t auth_len;
    bool auth_bad;            /* twice, or too long */
    bool auth_seen;
    char xrw[64];
    size_t xrw_len;
    bool tls;                 /* came through the HTTPS listener */
    bool complete;        /* the parser saw the end of the request */
    bool answered;
    bool shut;
    bool peer_eof;
    bool closing;
    uv_write_t wr;
    uv_shutdown_t sh;
    struct buf resp;
    struct http_conn *next, *prev;
};

static void http__srv_release(struct http_srv *h)
{
    if (--h->live == 0) {
        free(h);
    }
}

static void http__conn_closed(uv_handle_t *handle)
{
    struct http_conn *c = handle->data;
    if (--c->handles > 0) {
        return;
    }
    struct http_srv *h = c->srv;
    buf_free(&c->resp);
    free(c);
    http__srv_release(h);
}

static void http__close(struct http_conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        c->srv->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->srv->n_conns--;
    uv_close((uv_handle_t *)&c->timer, http__conn_closed);
    uv_close((uv_handle_t *)&c->tcp, http__conn_closed);
}

static void http__idle(uv_timer_t *t)
{
    http__close(t->data);
}

static void http__touch(struct http_conn *c, uint64_t ms)
{
    uv_timer_start(&c->timer, http__idle, ms, 0);
}

static const char *http__reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 503: return "Service Unavailable";
    default: return status >= 500 ? "Internal Server Error" : "Error";
    }
}

static void http__shut(uv_shutdown_t *sh, int status)
{
    struct http_conn *c = sh->data;
    if (c->closing) {
        return;
    }
    c->shut = true;
    if (status != 0 || c->peer_eof) {
        http__close(c);
        return;
    }
    http__touch(c, HTTP__LINGER_MS);
}

static void http__written(uv_write_t *w, int status)
{
    struct http_conn *c = w->data;
    if (c->closing) {
        return;
    }
    c->sh.data = c;
    if (status != 0 || uv_shutdown(&c->sh, (uv_stream_t *)&c->tcp, http__shut) != 0) {
        http__close(c);
    }
}

/* Send the response and stop caring about input. */
static void http__answer(struct http_conn *c, int status, const char *ctype, const struct buf *body,
                         bool head_only, const char *challenge)
{
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "%s%s%s%s%s"
                     "Connection: close\r\n\r\n",
                     status, http__reason(status), ctype != NULL ? ctype : "text/plain; charset=utf-8",
                     body->len, status == 405 ? "Allow: GET, HEAD\r\n" : "",
                     status == 401 && challenge != NULL ? "WWW-Authenticate: " : "",
                     status == 401 && challenge != NULL ? challenge : "",
                     status == 401 && challenge != NULL ? "\r\n" : "",
                     c->auth_seen || status == 401 ? "Cache-Control: no-store\r\n" : "");
    c->answered = true;
    buf_put(&c->resp, hdr, (size_t)n);
    if (!head_only) {
        buf_put(&c->resp, body->data, body->len);
    }
    if (!buf_ok(&c->resp)) {
        http__close(c);
        return;
    }
    uv_buf_t ub = uv_buf_init((char *)c->resp.data, (unsigned)c->resp.len);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &ub, 1, http__written) != 0) {
        http__close(c);
        return;
    }
    http__touch(c, HTTP_IDLE_MS);
}

static void http__answer_text(struct http_conn *c, int status, const char *text)
{
    struct buf body;
    buf_init(&body);
    buf_put(&body, text, strlen(text));
    http__answer(c, status, NULL, &body, false, NULL);
    buf_free(&body);
}

static int http__on_url(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (c->url_len + len >= sizeof c->url) {
        c->url_too_long = true;
        return 0;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

static int http__on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (c->in_value) {
        c->in_value = false;
        c->field_len = 0;
        c->field_long = false;
    }
    if (c->field_len + len >= sizeof c->field) {
        c->field_long = true; /* not a header kept here */
        return 0;
    }
    memcpy(c->field + c->field_len, at, len);
    c->field_len += len;
    c->field[c->field_len] = '\0';
    return 0;
}

static int http__on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (!c->in_value) {
        c->in_value = true;
        c->want = c->field_long                                   ? 0
                  : strcasecmp(c->field, "authorization") == 0    ? 1
                  : strcasecmp(c->field, "x-requested-with") == 0 ? 2
                                                                  : 0;
        if (c->want == 1) {
            c->auth_bad = c->auth_bad || c->auth_seen; /* which one counts? neither */
            c->auth_seen = true;
        }
    }
    if (c->want == 1) {
        if (c->auth_len + len >= sizeof c->auth) {
            c->auth_bad = true;
        } else {
            memcpy(c->auth + c->auth_len, at, len);
            c->auth_len += len;
            c->auth[c->auth_len] = '\0';
        }
    } else if (c->want == 2 && c->xrw_len + len < sizeof c->xrw) {
        memcpy(c->xrw + c->xrw_len, at, len);
        c->xrw_len += len;
        c->xrw[c->xrw_len] = '\0';
    }
    return 0;
}

static int http__on_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    c->complete = true;
    http_parser_pause(p, 1); /* one request per connection */
    return 0;
}

static const http_parser_settings http__settings = {
    .on_url = http__on_url,
    .on_header_field = http__on_header_field,
    .on_header_value = http__on_header_value,
    .on_message_complete = http__on_complete,
};

/* Does the peer of plain-HTTP connection @c sit on a loopback address
 * (127.0.0.0/8)? Then what it sends never crossed a network. */
static bool http__loopback_peer(struct http_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0 ||
        ss.ss_family != AF_INET) {
        return false;
    }
    return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
}

/* A whole request arrived: route it through the handler. */
static void http__dispatch(struct http_conn *c)
{
    struct http_parser_url u;
    char path[HTTP_MAX_URL];
    char query[HTTP_MAX_URL] = "";
    int method = c->parser.method == HTTP_GET    ? HTTP_SRV_GET
                 : c->parser.method == HTTP_HEAD ? HTTP_SRV_HEAD
                                                 : HTTP_SRV_OTHER;
    if (c->url_too_long) {
        http__answer_text(c, 413, "request too large: URL too long\n");
        return;
    }
    http_parser_url_init(&u);
    if (http_parser_parse_url(c->url, c->url_len, c->parser.method == HTTP_CONNECT, &u) != 0) {
        http__answer_text(c, 400, "bad request: malformed URL\n");
        return;
    }
    if (u.field_set & (1u << UF_PATH)) {
        size_t n = u.field_data[UF_PATH].len;
        memcpy(path, c->url + u.field_data[UF_PATH].off, n);
        path[n] = '\0';
    } else {
        snprintf(path, sizeof path, "/");
    }
    if (u.field_set & (1u << UF_QUERY)) {
        size_t n = u.field_data[UF_QUERY].len;
        memcpy(query, c->url + u.field_data[UF_QUERY].off, n);
        query[n] = '\0';
    }
    struct http_req req = {
        .method = method,
        .path = path,
        .query = query,
        .authorization = c->auth_bad ? "!" : c->auth,
        .requested_with = c->xrw,
        .private_channel = c->tls || http__loopback_peer(c),
    };
    struct buf body;
    const char *ctype = NULL;
    buf_init(&body);
    int status = c->srv->fn(c->srv->arg, &req, &body, &ctype);
    if (!buf_ok(&body)) {
        body.len = 0;
        status = 500;
    }
    scram_wipe(c->auth, sizeof c->auth);
    http__answer(c, status, ctype, &body, method == HTTP_SRV_HEAD, req.challenge);
    buf_free(&body);
}

static void http__alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *out)
{
    struct http_conn *c = handle->data;
    (void)suggested;
    *out = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void http__read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct http_conn *c = s->data;
    if (c->closing || nread == 0) {
        return;
    }
    if (nread < 0) {
        if (!c->answered) {
            http__close(c); /* gone (or half-closed) before asking anything whole */
            return;
        }
        c->peer_eof = true;
        uv_read_stop(s);
        if (c->shut) {
            http__close(c);
        }
        return;
    }
    if (c->answered) {
        return; /* discard what follows the request */
    }
    http__touch(c, HTTP_IDLE_MS);
    c->received += (size_t)nread;
    http_parser_execute(&c->parser, &http__settings, b->base, (size_t)nread);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->complete) {
        http__dispatch(c);
    } else if (e != HPE_OK) {
        char text[256];
        snprintf(text, sizeof text, "bad request: %s\n", http_errno_description(e));
        TLOG_DEBUG("http", "bad request: %s", http_errno_name(e));
        http__answer_text(c, 400, text);
    } else if (c->received > HTTP_MAX_REQUEST) {
        char text[128];
        snprintf(text, sizeof text, "request too large: over %u bytes\n",
                 (unsigned)HTTP_MAX_REQUEST);
        http__answer_text(c, 413, text);
    }
}

static void http__free_handle(uv_handle_t *handle)
{
    free(handle);
}

/* Set up a new connection of @h (its tcp handle initialised, not yet
 * connected) and link it in. */
static void http__conn_init(struct http_srv *h, struct http_conn *c)
{
    c->srv = h;
    buf_init(&c->resp);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    uv_tcp_init(h->loop, &c->tcp);
    uv_timer_init(h->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    h->live++;
    c->next = h->conns;
    if (h->conns != NULL) {
        h->conns->prev = c;
    }
    h->conns = c;
    h->n_conns++;
}

static void http__tls_accept(struct http_srv *h, uv_stream_t *server);

static void http__accept(uv_stream_t *server, int status)
{
    struct http_srv *h = server->data;
    struct http_conn *c;
    if (status != 0) {
        return;
    }
    if (h->tls != NULL && !h->stopping && h->n_conns + h->pipes.handshaking < HTTP_MAX_CONNS) {
        http__tls_accept(h, server); /* HTTPS: the handshake first */
        return;
    }
    if (h->stopping || h->n_conns >= HTTP_MAX_CONNS || (c = calloc(1, sizeof *c)) == NULL) {
        uv_tcp_t *tmp = malloc(sizeof *tmp); /* accept and drop: keep the backlog moving */
        if (tmp == NULL) {
            return;
        }
        uv_tcp_init(server->loop, tmp);
        if (uv_accept(server, (uv_stream_t *)tmp) == 0 &&
            (h->dropped++ == 0 || uv_now(server->loop) >= h->drop_logged_ms + 10000)) {
            TLOG_WARN("http", "metrics connections dropped: %u connections open (%u dropped so far)",
                      h->n_conns, h->dropped);
            h->drop_logged_ms = uv_now(server->loop);
        }
        uv_close((uv_handle_t *)tmp, http__free_handle);
        return;
    }
    http__conn_init(h, c);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, http__alloc, http__read) != 0) {
        http__close(c);
        return;
    }
    http__touch(c, HTTP_IDLE_MS);
}

static void http__listener_closed(uv_handle_t *handle)
{
    http__srv_release(handle->data);
}

int http_start(uv_loop_t *loop, const char *addr, http_handler fn, void *arg,
               struct http_srv **out, char *errmsg)
{
    char ip[64];
    unsigned port;
    struct sockaddr_in sin;
    int rv;
    struct http_srv *h = calloc(1, sizeof *h);
    if (h == NULL) {
        err_printf(errmsg, "out of memory");
        return TALLY_NOMEM;
    }
    h->loop = loop;
    h->fn = fn;
    h->arg = arg;
    h->live = 1;
    if (cfg_parse_addr(addr, ip, sizeof ip, &port) != 0 ||
        uv_ip4_addr(ip, (int)port, &sin) != 0) {
        free(h);
        err_printf(errmsg, "--metrics %s: not an IPv4:PORT address", addr);
        return TALLY_INVAL;
    }
    uv_tcp_init(loop, &h->listener);
    h->listener.data = h;
    rv = uv_tcp_bind(&h->listener, (const struct sockaddr *)&sin, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&h->listener, 64, http__accept);
    }
    if (rv != 0) {
        err_printf(errmsg, "metrics: listen on %s: %s", addr, uv_strerror(rv));
        h->stopping = true;
        uv_close((uv_handle_t *)&h->listener, http__listener_closed);
        return TALLY_IOERR;
    }
    *out = h;
    return 0;
}

void http_stop(struct http_srv *h)
{
    if (h == NULL || h->stopping) {
        return;
    }
    h->stopping = true;
    tlspipe_group_close(&h->pipes);
    while (h->conns != NULL) {
        http__close(h->conns);
    }
    uv_close((uv_handle_t *)&h->listener, http__listener_closed);
}

/* ---- HTTPS (metrics_tls; docs/security.md) -----------------------------
 * The connection's TLS runs in a tlspipe (repl/tlspipe.c); this server
 * reads and writes the plaintext end like any connection. A plaintext
 * HTTP request to the HTTPS port is answered, in clear, with a 400 that
 * says to use https. */

static const char http__not_tls[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Connection: close\r\nContent-Length: 48\r\n\r\n"
    "this port speaks HTTPS (metrics_tls): use https\n";

void http_set_tls(struct http_srv *h, const struct tls_set *tls)
{
    h->tls = tls;
}

static int http__tls_done(void *arg, SSL *ssl, int fd, const char *why)
{
    struct http_srv *h = arg;
    struct http_conn *c;
    (void)ssl;
    if (fd < 0) {
        TLOG_DEBUG("http", "metrics connection: %s", why);
        return 0;
    }
    if (h->stopping || h->n_conns >= HTTP_MAX_CONNS || (c = calloc(1, sizeof *c)) == NULL) {
        return -1;
    }
    http__conn_init(h, c);
    c->tls = true;
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd); /* the pipe sees its end close */
        http__close(c);
        return 0;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, http__alloc, http__read) != 0) {
        http__close(c);
        return 0;
    }
    http__touch(c, HTTP_IDLE_MS);
    return 0;
}

static void http__tls_accept(struct http_srv *h, uv_stream_t *server)
{
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    struct tlspipe_opts o;
    if (tcp == NULL) {
        return;
    }
    uv_tcp_init(server->loop, tcp);
    if (uv_accept(server, (uv_stream_t *)tcp) != 0) {
        uv_close((uv_handle_t *)tcp, http__free_handle);
        return;
    }
    memset(&o, 0, sizeof o);
    o.ctx = h->tls->clients;
    o.server = true;
    o.not_tls_reply = http__not_tls;
    o.not_tls_reply_len = sizeof http__not_tls - 1;
    o.handshake_timeout_ms = HTTP_IDLE_MS;
    o.free_net = http__free_handle;
    o.done = http__tls_done;
    o.arg = h;
    o.group = &h->pipes;
    (void)tlspipe_start(server->loop, (uv_stream_t *)tcp, &o);
}
