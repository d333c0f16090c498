/* The client side of the AUTH exchange (SCRAM-SHA-256 over two AUTH
 * requests, docs/protocol.md), over any connection: libtally's
 * connections, its producer's, and tally backup's. */
#include "proto/auth.h"

#include <stdio.h>
#include <string.h>

#include "lib/err.h"
#include "lib/scram.h"

int proto_auth_login(const char *user, const char *password, proto_auth_rt rt, void *arg,
                       char *principal, size_t principal_cap, char *errmsg)
{
    return proto_auth_login_mech(SCRAM_SHA_256, user, password, rt, arg, principal,
                                 principal_cap, errmsg);
}

int proto_auth_login_mech(int mech, const char *user, const char *password, proto_auth_rt rt,
                          void *arg, char *principal, size_t principal_cap, char *errmsg)
{
    struct scram_client sc;
    struct proto_auth_reply rep;
    struct proto_auth_req m;
    struct proto_auth_resp r;
    char msg[SCRAM_MSG_MAX], why[ERR_MSG_SIZE];
    struct buf frame;
    size_t start;
    int rv = 0;
    if (scram_client_first(&sc, (enum scram_mech)mech, user, NULL, msg, sizeof msg, errmsg) !=
        0) {
        return TALLY_INVAL;
    }
    buf_init(&frame);
    for (int step = 0; step < 2 && rv == 0; step++) {
        memset(&m, 0, sizeof m);
        snprintf(m.mechanism, sizeof m.mechanism, "%s", scram_mech_name((enum scram_mech)mech));
        m.message = (const uint8_t *)msg;
        m.message_len = (uint32_t)strlen(msg);
        frame.len = 0;
        start = proto_begin_frame(&frame, PROTO_AUTH, 0, 0);
        proto_put_auth_req(&frame, &m);
        proto_end_frame(&frame, start);
        if (!buf_ok(&frame)) {
            err_printf(errmsg, "out of memory");
            rv = TALLY_NOMEM;
            break;
        }
        if ((rv = rt(arg, &frame, &rep, errmsg)) != 0) {
            break;
        }
        if (rep.is_error) {
            err_printf(errmsg, "authentication as '%s' refused: %s", user, rep.message);
            rv = TALLY_AUTH;
            break;
        }
        memset(&r, 0, sizeof r);
        if (proto_get_auth_resp(&rep.body, &r) != 0 || proto_get_end(&rep.body) != 0 ||
            r.message_len >= sizeof msg || r.done != (step == 1)) {
            err_printf(errmsg, "malformed AUTH answer");
            rv = TALLY_PROTO;
            break;
        }
        if (step == 0) {
            char first[SCRAM_MSG_MAX];
            memcpy(first, r.message, r.message_len);
            first[r.message_len] = '\0';
            if (scram_client_final(&sc, password, first, r.message_len, msg, sizeof msg, why) !=
                0) {
                err_printf(errmsg, "authentication as '%s': %s", user, why);
                rv = TALLY_AUTH;
            }
        } else {
            if (scram_client_check(&sc, (const char *)r.message, r.message_len, why) != 0) {
                err_printf(errmsg, "authentication as '%s': %s", user, why);
                rv = TALLY_AUTH;
            } else if (principal != NULL) {
                snprintf(principal, principal_cap, "%s", r.principal);
            }
        }
    }
    buf_free(&frame);
    scram_wipe(&sc, sizeof sc);
    return rv;
}

