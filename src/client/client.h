/* Inside libtally: what the files that implement tally.h share (not
 * exported: the library is built with -fvisibility=hidden).
 *
 * libtally is one module split by concern; its files share the prefix
 * client__ for what they share with each other (libuv's uv__ rule for
 * internal, non-static names), and tally_ for what tally.h exports:
 *   client.c   the handle, its node table, the request/answer exchange on
 *              one node's connection, and the retry driver (client__call)
 *              that every call below goes through
 *   wire.c     the blocking frame connection (socket, deadlines, frames)
 *   topic.c    topic create/delete/list
 *   produce.c  tally_produce: one idempotent batch, synchronously
 *   fetch.c    tally_fetch and its read-ahead, tally_read_index
 *   status.c   tally_status_get: every member's own view, merged
 *   member.c   membership changes (add, remove, transfer, replace...)
 *   group.c    time lookup and durable consumer positions
 *   shared.c   a member of a shared consumer group (docs/groups.md)
 *   producer.c the asynchronous batching producer (prefix prod__) */
#ifndef TALLY_CLIENT_CLIENT_H_
#define TALLY_CLIENT_CLIENT_H_

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/wire.h"
#include "lib/byte.h"
#include "lib/err.h"
#include "lib/share.h"
#include "proto/proto.h"
#include "tally.h"

/* One connect attempt may take at most this long (or a third of the
 * request timeout, if longer), so that a host that drops SYNs does not eat
 * the whole timeout while other nodes are up. */
#define CLIENT__CONNECT_MS 1000
/* Nodes learned from the network are bounded, so a confused server cannot
 * make the table grow without end. */
#define CLIENT__MAX_NODES 64

struct client__node {
    struct wire w;             /* client address, normalised "a.b.c.d:port",
                                * and the connection (HELLO done), fd -1 if none */
    struct sockaddr_in sa;     /* the same address, resolved */
    uint64_t id;               /* node id from HELLO/METADATA; 0 = unknown */
    char why[160];             /* why the last attempt in this call failed */
    char host[PROTO_ADDR_MAX]; /* the host as given, for the TLS certificate check */
    bool refused;              /* in this call, the node refused us for good: a TLS
                                * handshake failed (CA, name, expiry), HELLO or the
                                * login was refused; retrying cannot help */
    int refused_code;          /* TALLY_AUTH when the refusal was the login's */
    /* Read-ahead (tally_fetch): a FETCH sent before it was asked for,
     * whose answer is the next frame on fd. */
    bool ahead;
    uint32_t ahead_id;
    struct proto_fetch_req ahead_req;
};

struct tally_client {
    struct client__node *nodes; /* owned; brokers first, then learned */
    size_t n_nodes;
    size_t cap_nodes;
    int timeout_ms;             /* per request */
    int leader;                 /* index of the last known leader, or -1 */
    int read_pref;              /* index of the node that answered the last read */
    bool linearizable;          /* tally_set_linearizable */
    char disagreement[256];     /* tally_status_disagreement */
    uint32_t next_id;           /* request id of the next request */
    struct buf req;             /* request frame being sent (owned, reused) */
    struct buf resp;            /* last response frame (owned, reused) */
    char errmsg[ERR_MSG_SIZE];  /* message of the last error */
    uint64_t producer_id;       /* idempotent producer id, never 0 */
    uint64_t actual;            /* actual value of the last failed condition */
    bool outcome_unknown;       /* tally_outcome_unknown: set by client__call */
    struct client__seq *seqs;   /* next sequence per topic (owned list) */
    /* Security (security.c, docs/security.md). */
    SSL_CTX *tls;               /* tally_client_set_tls, or NULL (owned) */
    char user[128];             /* tally_client_set_auth: "" = none */
    char password[256];         /* its password (wiped on destroy) */
    int mech;                   /* enum scram_mech of the login, 0: SCRAM-SHA-256 */
};

/* Next batch sequence of this handle's producer on one topic. */
struct client__seq {
    char topic[PROTO_NAME_MAX];
    uint64_t next;
    struct client__seq *link;
};

/* A decoded response. body borrows from c->resp until the next request. */
struct client__reply {
    struct proto_frame f;
    bool is_error;
    struct proto_error err; /* when is_error */
    struct rd body;         /* the body, when not an error */
};

/* What one call (with its retries) should do. */
struct client__op {
    const char *what;  /* context for messages: "produce to orders" */
    bool write;        /* leader only; no retry once sent */
    bool idempotent;   /* a write whose retry is safe (produce) */
    int only;          /* node index to use exclusively, or -1 */
    bool first_answer; /* with only: return its first answer, even a retryable
                        * error (a probe of that node's state) */
    int64_t deadline;  /* monotonic ms */
};

/* ---- client.c: node table ---------------------------------------------- */

/* Index of the node with client address @addr, added if new. Returns -1
 * if the address is malformed or the table is full. */
int client__node_add(struct tally_client *c, const char *addr, size_t len);
/* Close @n's connection (and forget its read-ahead). */
void client__disconnect(struct client__node *n);
/* Learn a member from a METADATA answer or a redirect: its address and
 * id. Returns its index or -1. */
int client__learn(struct tally_client *c, uint64_t id, const char *addr);

/* ---- client.c: one node's connection ------------------------------------ */

/* Send the frame in @frame on the open connection of @nd, patching in a
 * fresh request id, which goes to *@id. */
int client__send_request(struct tally_client *c, struct client__node *nd, struct buf *frame,
                         int64_t deadline, bool *sent, uint32_t *id);
/* Read the answer to request (@type, @id) from @nd into c->resp and @rep. */
int client__recv_reply(struct tally_client *c, struct client__node *nd, uint16_t type,
                       uint32_t id, int64_t deadline, struct client__reply *rep);
/* Make sure @nd has an open connection that completed HELLO. Returns 0,
 * TALLY_CONNECT (with the reason in c->errmsg), TALLY_NOMEM. */
int client__connect(struct tally_client *c, struct client__node *nd, int64_t deadline);
/* One attempt of the request in c->req against node @i. Returns 0 with
 * @rep filled (which may be an error answer), or the transport failure:
 * TALLY_CONNECT (not sent), TALLY_IOERR / TALLY_TIMEOUT (*sent says
 * whether the whole request went out), TALLY_PROTO, TALLY_NOMEM. */
int client__attempt(struct tally_client *c, size_t i, int64_t deadline, bool *sent,
                    struct client__reply *rep);

/* ---- client.c: the retry driver and request helpers ------------------- */

/* Record why the last attempt on @nd failed, without repeating its
 * address (the final message prints "ADDR (why)"). */
void client__set_why(struct client__node *nd, const char *msg);
/* "tried A (why), B (why)" for the final message. */
void client__tried(struct tally_client *c, char *out, size_t size);
/* Run the request in c->req per @op until it gets an answer or the
 * deadline passes. Returns 0 with a success answer in @rep, or a code
 * with c->errmsg set. */
int client__call(struct tally_client *c, const struct client__op *op, struct client__reply *rep);
/* Start the request frame of @type in c->req; returns its start for
 * client__end. */
size_t client__begin(struct tally_client *c, uint16_t type);
/* Finish the request frame in c->req: 0, or TALLY_NOMEM with a message. */
int client__end(struct tally_client *c, size_t start, const char *what);
/* "WHAT: malformed answer", TALLY_PROTO. */
int client__malformed(struct tally_client *c, const char *what);
/* An op for a request made now: any node (or the leader, for @write),
 * not idempotent, the handle's timeout. */
void client__op_init(struct tally_client *c, struct client__op *op, const char *what, bool write);
/* The server's rule (lib/name.h), so that a bad name is refused here with
 * the same reason, before anything is sent. */
int client__check_name(struct tally_client *c, const char *name, const char *what);
/* group.c: a group name's length rule, refused here (TALLY_INVAL with
 * "WHAT: group name must be 1-255 bytes") before anything is sent. */
int client__check_group(struct tally_client *c, const char *group, const char *what);
/* A call given NULL where it must write its result: refused before
 * anything is sent or written. */
int client__null_output(struct tally_client *c, const char *what, const char *param);

/* ---- the calls that others reuse ------------------------------------------ */

/* topic.c: a write answered by DONE (topic and member changes). */
int client__done_call(struct tally_client *c, const char *what);
/* topic.c: TOPIC_LIST, from node @only (or any node if -1). */
int client__topic_list(tally_client *c, int only, struct tally_topic_info **topics, size_t *n);
/* produce.c: a random producer id (never 0), and all sequences back to 0. */
void client__new_producer(struct tally_client *c);

/* fetch.c: a tally_fetch_result's private part holding @frame (taken:
 * freed by tally_fetch_result_free), for results built elsewhere (the
 * filtered fetch of streams.c). NULL when out of memory (@frame not
 * taken). */
void *client__fetch_impl_new(uint8_t *frame, bool possibly_stale);
/* streams.c: tally_fetch_filtered, also for a shared group's member
 * (shared.c): only the records of @shares (NULL: no share selection);
 * @filter may then be NULL (every key). */
struct client__shares {
    unsigned n;             /* the group's share count, 1..SHARE_MAX */
    struct share_set set;   /* the member's shares */
};
int client__fetch_filtered(tally_client *c, const char *topic, uint64_t offset,
                           const char *filter, const struct client__shares *shares,
                           const struct tally_fetch_options *opts, struct tally_fetch_result *res);

/* ---- security.c: TLS and logins (docs/security.md) ---- */

/* TLS (if the handle has it) and the login (if it has a user) on @nd's
 * new connection, after HELLO. 0, or TALLY_CONNECT / TALLY_AUTH /
 * TALLY_NOMEM with c->errmsg; sets nd->refused when retrying cannot help. */
int client__secure(struct tally_client *c, struct client__node *nd, int64_t deadline,
                   bool after_hello);

/* The context tally_client_set_tls made, or NULL (borrowed). */
SSL_CTX *client_tls_ctx(struct tally_client *c);

/* The user, password and mechanism tally_client_set_auth gave (NULL: none). */
const char *client_auth_user(struct tally_client *c, const char **password, int *mech);

/* Wipe the handle's secrets and free its TLS context (destroy). */
void client__security_free(struct tally_client *c);

#endif
