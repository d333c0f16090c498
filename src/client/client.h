/* Inside libtally: what client.c shares with producer.c (not exported:
 * the library is built with -fvisibility=hidden). */
#ifndef TALLY_CLIENT_CLIENT_H_
#define TALLY_CLIENT_CLIENT_H_

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

/* Monotonic clock in ms, for deadlines. */
int64_t client_now_ms(void);

/* Parse "HOST:PORT" (@len bytes at @s) into @sa and the normalised
 * dotted-quad form @norm (PROTO_ADDR_MAX bytes). HOST may be a name; it is
 * resolved to its first IPv4 address here, once. TALLY_INVAL if bad. */
int client_parse_addr(const char *s, size_t len, struct sockaddr_in *sa, char *norm);

/* streams: what client/streams.c uses of client.c. */
#include <stdbool.h>

#include "lib/byte.h"

struct tally_client;

struct client_read_reply {
    uint8_t flags;   /* the response frame's flags (PROTO_FLAG_*) */
    struct rd body;  /* borrowed from the handle until its next request */
};

/* Send the read request of @type with @body (borrowed) to any node (or to
 * @node only, "HOST:PORT"), with the usual retries on another node, the
 * deadline extended by @extra_wait_ms (a server-side wait). 0 with a
 * success answer in @out, or a TALLY_* code with the message set. */
int client_read_call(struct tally_client *c, const char *what, const char *node,
                     uint32_t extra_wait_ms, uint16_t type, const struct buf *body,
                     struct client_read_reply *out);
/* Take the last response frame out of the handle (owned by the caller,
 * free()); out->body of client_read_call points into it. */
uint8_t *client_take_response(struct tally_client *c);
/* The handle's message buffer (ERR_MSG_SIZE bytes): tally_errmsg's text. */
char *client_errmsg_buf(struct tally_client *c);
bool client_linearizable(const struct tally_client *c);
/* A tally_fetch_result's private part holding @frame (taken: freed by
 * tally_fetch_result_free), for results built outside client.c (the
 * filtered fetch). NULL when out of memory (@frame not taken). */
void *client_fetch_impl_new(uint8_t *frame, bool possibly_stale);

#endif
