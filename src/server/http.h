/* A very small HTTP/1.1 server on the node's libuv loop, for the metrics
 * and health endpoints (no threads). Requests are parsed by Debian's
 * http-parser (libhttp-parser-dev); this file is only the glue.
 *
 * One request per connection: the answer carries "Connection: close" and
 * the connection is closed once it is written. Limits: a request (request
 * line, headers and any body) of at most HTTP_MAX_REQUEST bytes (413
 * beyond), HTTP_MAX_CONNS connections at once (more are accepted and
 * closed at once), and a connection that sends nothing for
 * HTTP_IDLE_MS is closed. A request http-parser rejects gets 400.
 *
 * Of the headers only two are kept for the handler: Authorization (the
 * console's logins) and X-Requested-With; the buffer that held the
 * Authorization value is wiped once the handler has answered. */
#ifndef TALLY_SERVER_HTTP_H_
#define TALLY_SERVER_HTTP_H_

#include <stdbool.h>
#include <uv.h>

#include "lib/byte.h"

#define HTTP_MAX_REQUEST 8192
#define HTTP_MAX_URL 2048
#define HTTP_MAX_CONNS 64
#define HTTP_IDLE_MS 10000
#define HTTP_MAX_AUTH 1024  /* longest Authorization value kept */

enum http_srv_method { HTTP_SRV_GET = 1, HTTP_SRV_HEAD, HTTP_SRV_OTHER };

/* One request, as the handler sees it. */
struct http_req {
    int method;                 /* enum http_srv_method */
    const char *path;           /* the URL's path, without query or fragment */
    const char *query;          /* the raw (still percent-encoded) query after '?'; "" */
    const char *authorization;  /* the Authorization header's value; "" when none, and
                                 * "!" when it came twice or longer than HTTP_MAX_AUTH */
    const char *requested_with; /* X-Requested-With (the console's page sends it); "" */
    bool private_channel;       /* HTTPS, or plain HTTP from a loopback peer: a
                                 * password sent on it does not cross a network in clear */
    const char *challenge;      /* set by the handler with a 401: the WWW-Authenticate
                                 * value to send (a static string) */
};

/* Answer one request: fill @body (may stay empty) and *@content_type (a
 * static string; "text/plain; charset=utf-8" if left NULL) and return the
 * status code. For HEAD, the body is measured and not sent. A 405 answer
 * gets "Allow: GET, HEAD"; a 401 the handler's challenge and every answer
 * "Cache-Control: no-store" when the request carried credentials. */
typedef int (*http_handler)(void *arg, struct http_req *req, struct buf *body,
                            const char **content_type);

struct http_srv;

/* Listen on @addr ("IPv4:PORT") on @loop. Returns 0, or TALLY_IOERR /
 * TALLY_NOMEM with @errmsg. */
int http_start(uv_loop_t *loop, const char *addr, http_handler fn, void *arg,
               struct http_srv **out, char *errmsg);

/* Serve HTTPS from now on (before any connection), with the client-port
 * context of @tls (borrowed until http_stop; swapped on reload). */
struct tls_set;
void http_set_tls(struct http_srv *h, const struct tls_set *tls);

/* Stop listening and close every connection; the memory is freed once the
 * last handle is closed (the loop must run). NULL is a no-op. */
void http_stop(struct http_srv *h);

#endif
