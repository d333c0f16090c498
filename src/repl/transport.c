/* A raft_uv_transport decorator that sets TCP_NODELAY on Raft connections.
 *
 * The happy path: raft_uv calls our outer vtable; each call forwards to the
 * inner raft_uv_tcp transport with our own callback, which turns on
 * TCP_NODELAY on the new stream and then calls raft's callback with the
 * outer transport. The wrapper and both transports live in one struct, so
 * callbacks find it with container_of and use neither transport's data
 * field (raft_uv owns those). */
#include "repl/transport.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "lib/logger.h"

#define TRANSPORT__OF(ptr, field) \
    ((struct transport *)((char *)(ptr)-offsetof(struct transport, field)))

struct transport__connect {
    struct raft_uv_connect inner_req;
    struct raft_uv_connect *outer_req;
};

static void transport__nodelay(struct uv_stream_s *stream)
{
    if (stream != NULL && stream->type == UV_TCP) {
        int rv = uv_tcp_nodelay((uv_tcp_t *)stream, 1);
        if (rv != 0) {
            TLOG_WARN("raft", "TCP_NODELAY on a raft connection: %s", uv_strerror(rv));
        }
    }
}

static int transport__init(struct raft_uv_transport *outer, raft_id id, const char *address)
{
    struct transport *t = TRANSPORT__OF(outer, outer);
    int rv = t->inner.init(&t->inner, id, address);
    if (rv != 0) {
        memcpy(outer->errmsg, t->inner.errmsg, sizeof outer->errmsg);
    }
    return rv;
}

static void transport__accept(struct raft_uv_transport *inner, raft_id id, const char *address,
                              struct uv_stream_s *stream)
{
    struct transport *t = TRANSPORT__OF(inner, inner);
    transport__nodelay(stream);
    t->accept_cb(&t->outer, id, address, stream);
}

static int transport__listen(struct raft_uv_transport *outer, raft_uv_accept_cb cb)
{
    struct transport *t = TRANSPORT__OF(outer, outer);
    int rv;
    t->accept_cb = cb;
    rv = t->inner.listen(&t->inner, transport__accept);
    if (rv != 0) {
        memcpy(outer->errmsg, t->inner.errmsg, sizeof outer->errmsg);
    }
    return rv;
}

static void transport__connect_cb(struct raft_uv_connect *inner_req, struct uv_stream_s *stream,
                                  int status)
{
    struct transport__connect *c = inner_req->data;
    struct raft_uv_connect *outer_req = c->outer_req;
    free(c);
    if (status == 0) {
        transport__nodelay(stream);
    }
    outer_req->cb(outer_req, stream, status);
}

static int transport__connect(struct raft_uv_transport *outer, struct raft_uv_connect *req,
                              raft_id id, const char *address, raft_uv_connect_cb cb)
{
    struct transport *t = TRANSPORT__OF(outer, outer);
    struct transport__connect *c = malloc(sizeof *c);
    int rv;
    if (c == NULL) {
        return RAFT_NOMEM;
    }
    req->cb = cb;
    c->outer_req = req;
    c->inner_req.data = c;
    rv = t->inner.connect(&t->inner, &c->inner_req, id, address, transport__connect_cb);
    if (rv != 0) {
        memcpy(outer->errmsg, t->inner.errmsg, sizeof outer->errmsg);
        free(c);
    }
    return rv;
}

static void transport__close_cb(struct raft_uv_transport *inner)
{
    struct transport *t = TRANSPORT__OF(inner, inner);
    if (t->close_cb != NULL) {
        t->close_cb(&t->outer);
    }
}

static void transport__close(struct raft_uv_transport *outer, raft_uv_transport_close_cb cb)
{
    struct transport *t = TRANSPORT__OF(outer, outer);
    t->close_cb = cb;
    t->inner.close(&t->inner, transport__close_cb);
}

int transport_init(struct transport *t, uv_loop_t *loop)
{
    int rv;
    memset(t, 0, sizeof *t);
    t->inner.version = 1; /* raft 0.22 refuses a transport of another version */
    t->outer.version = 1;
    rv = raft_uv_tcp_init(&t->inner, loop);
    if (rv != 0) {
        return rv;
    }
    t->outer.init = transport__init;
    t->outer.listen = transport__listen;
    t->outer.connect = transport__connect;
    t->outer.close = transport__close;
    return 0;
}

void transport_close(struct transport *t)
{
    raft_uv_tcp_close(&t->inner);
}
