/* The client side of the AUTH exchange (proto/auth.c). */
#ifndef TALLY_PROTO_AUTH_H_
#define TALLY_PROTO_AUTH_H_

#include <stdbool.h>
#include <stddef.h>

#include "lib/byte.h"
#include "proto/proto.h"

/* An answer to an AUTH request, as a login round trip hands it back. */
struct proto_auth_reply {
    bool is_error;
    char message[PROTO_MSG_MAX]; /* the error's message */
    struct rd body;              /* the answer's body (borrowed), when not an error */
};

/* Send @frame (an AUTH request) and read its answer into @rep: 0, or a
 * transport failure with @errmsg. */
typedef int (*proto_auth_rt)(void *arg, struct buf *frame, struct proto_auth_reply *rep,
                              char *errmsg);

/* Log in as @user with SCRAM-SHA-256 over @rt: 0; TALLY_AUTH when the
 * node refused (or could not prove it knows the user); a transport code.
 * The principal the node confirmed goes to @principal (may be NULL). */
int proto_auth_login(const char *user, const char *password, proto_auth_rt rt, void *arg,
                       char *principal, size_t principal_cap, char *errmsg);

/* The same with @mech (enum scram_mech: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512). */
int proto_auth_login_mech(int mech, const char *user, const char *password, proto_auth_rt rt,
                          void *arg, char *principal, size_t principal_cap, char *errmsg);

#endif
