/* Client authentication and user administration (auth.h).
 *
 * SCRAM on the native protocol: the client sends AUTH(mechanism,
 * client-first); we look the user up in the replicated users (store
 * command 16, store/users.h) and answer server-first (a made-up salt for
 * an unknown user, so the answer does not say whether it exists); the
 * client sends AUTH(client-final) with its proof; if it is right the
 * connection is authenticated as that user and the answer carries
 * server-final, which proves to the client that this node knows the
 * user's keys. A wrong proof is answered TALLY_AUTH, logged with the user
 * name and the peer (never a password: none reaches the server), and the
 * exchange may start again on the same connection.
 *
 * With auth = required, every request but HELLO and AUTH on a connection
 * that is not authenticated is refused with TALLY_AUTH. A connection whose
 * TLS client certificate chains to the cluster's CA is authenticated as
 * the certificate's name (tls_peer_name) from the start: that is how the
 * first user is added to a cluster that has none. */
#include "server/auth.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/logger.h"
#include "lib/scram.h"
#include "proto/proto.h"
#include "server/cfg.h"
#include "server/conn.h"
#include "server/gw.h"
#include "store/cmd.h"
#include "store/store.h"
#include "store/users.h"

struct auth_conn {
    bool authenticated;
    bool started;                  /* a SCRAM exchange is under way */
    char principal[PROTO_NAME_MAX];
    struct scram_server scram;
};

struct auth_conn *auth_conn_certified(const char *principal)
{
    struct auth_conn *a = calloc(1, sizeof *a);
    if (a != NULL) {
        a->authenticated = true;
        snprintf(a->principal, sizeof a->principal, "%s", principal);
    }
    return a;
}

void auth_conn_free(struct auth_conn *a)
{
    if (a != NULL) {
        scram_wipe(&a->scram, sizeof a->scram);
        free(a);
    }
}

static void auth__error(struct req *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void auth__error(struct req *r, int code, const char *fmt, ...)
{
    char msg[PROTO_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->resp.len = 0;
    proto_put_error_frame(&r->resp, r->type, r->id, code, msg, 0, "");
    conn_complete(r);
}

/* The connection's state, made on first use; NULL if the connection is
 * gone or memory is short (then @r is answered). */
static struct auth_conn *auth__conn(struct req *r)
{
    struct auth_conn **slot = conn_auth(r);
    if (slot == NULL) {
        conn_complete(r);
        return NULL;
    }
    if (*slot == NULL && (*slot = calloc(1, sizeof **slot)) == NULL) {
        auth__error(r, TALLY_NOMEM, "out of memory");
        return NULL;
    }
    return *slot;
}

static void auth__answer(struct req *r, bool done, const char *msg, const char *principal)
{
    struct proto_auth_resp m;
    size_t start;
    memset(&m, 0, sizeof m);
    m.done = done;
    m.message = (const uint8_t *)msg;
    m.message_len = (uint32_t)strlen(msg);
    snprintf(m.principal, sizeof m.principal, "%s", principal);
    start = proto_begin_frame(&r->resp, r->type, PROTO_FLAG_RESPONSE, r->id);
    proto_put_auth_resp(&r->resp, &m);
    proto_end_frame(&r->resp, start);
    conn_complete(r);
}

static void auth__step(struct store *store, struct req *r, struct rd *rd)
{
    struct proto_auth_req m;
    struct auth_conn *a;
    enum scram_mech mech;
    char out[SCRAM_MSG_MAX], errmsg[ERR_MSG_SIZE];
    if (proto_get_auth_req(rd, &m) != 0 || proto_get_end(rd) != 0) {
        auth__error(r, TALLY_PROTO, "malformed AUTH");
        return;
    }
    if ((a = auth__conn(r)) == NULL) {
        return;
    }
    mech = scram_mech_parse(m.mechanism);
    if (mech == 0) {
        auth__error(r, TALLY_AUTH, "mechanism '%s' is not supported (SCRAM-SHA-256, "
                                   "SCRAM-SHA-512)", m.mechanism);
        return;
    }
    if (!a->started) {
        const struct users_entry *u;
        if (scram_server_start(&a->scram, mech, (const char *)m.message, m.message_len,
                               errmsg) != 0) {
            auth__error(r, TALLY_AUTH, "%s", errmsg);
            return;
        }
        u = users_find(store_users(store), a->scram.user);
        if (scram_server_first(&a->scram, u != NULL ? users_cred(u, mech) : NULL, NULL, out,
                               sizeof out, errmsg) != 0) {
            auth__error(r, TALLY_AUTH, "%s", errmsg);
            return;
        }
        a->started = true;
        auth__answer(r, false, out, "");
        return;
    }
    a->started = false;
    if (mech != a->scram.mech ||
        scram_server_final(&a->scram, (const char *)m.message, m.message_len, out, sizeof out,
                           errmsg) != 0) {
        TLOG_WARN("auth", "%s: authentication as user '%s' failed (%s)", conn_peer(r),
                  a->scram.user, errmsg);
        auth__error(r, TALLY_AUTH, "authentication failed: wrong user name or password");
        return;
    }
    a->authenticated = true;
    snprintf(a->principal, sizeof a->principal, "%s", a->scram.user);
    TLOG_INFO("auth", "%s: authenticated as user '%s' (%s)", conn_peer(r), a->principal,
              scram_mech_name(mech));
    auth__answer(r, true, out, a->principal);
}

static void auth__user_set(struct gw *gw, struct store *store, struct req *r, struct rd *rd,
                           const char *by)
{
    struct proto_user_set_req m;
    struct users check;
    struct rd body;
    struct buf entry;
    char why[160], name[USERS_NAME_MAX] = "";
    int rv;
    if (proto_get_user_set_req(rd, &m) != 0 || proto_get_end(rd) != 0) {
        auth__error(r, TALLY_PROTO, "malformed USER_SET");
        return;
    }
    /* Check the body as apply will (on a scratch copy of the users), so
     * that nothing malformed enters the Raft log. */
    users_init(&check);
    rd_init(&body, m.body, m.body_len);
    if (m.body_len > 1) {
        struct rd peek;
        rd_init(&peek, m.body + 1, m.body_len - 1);
        rd_str(&peek, name, sizeof name);
    }
    if (m.body_len > 0 && m.body[0] == USERS_OP_REMOVE &&
        users_find(store_users(store), name) == NULL) {
        auth__error(r, TALLY_NOTFOUND, "user %s not found", name);
        return;
    }
    if (m.body_len > 0 && m.body[0] == USERS_OP_REMOVE) {
        rv = 0;
    } else {
        rv = users_apply(&check, &body, why, sizeof why);
    }
    users_free(&check);
    if (rv != 0 || (m.body_len > 0 && m.body[0] == USERS_OP_SET && body.left != 0)) {
        auth__error(r, rv == TALLY_NOMEM ? TALLY_NOMEM : TALLY_INVAL, "%s",
                    rv != 0 ? why : "trailing bytes after the user");
        return;
    }
    TLOG_INFO("auth", "%s, as %s: %s user '%s'", conn_peer(r), by,
              m.body[0] == USERS_OP_SET ? "sets" : "removes", name);
    buf_init(&entry);
    cmd_encode_user(&entry, m.body, m.body_len);
    gw_propose_entry(gw, r, &entry);
}

static void auth__user_list(struct store *store, struct req *r, struct rd *rd)
{
    struct proto_user_list_req m;
    const struct users *u = store_users(store);
    struct proto_user_list_resp resp;
    size_t start;
    if (proto_get_user_list_req(rd, &m) != 0 || proto_get_end(rd) != 0) {
        auth__error(r, TALLY_PROTO, "malformed USER_LIST");
        return;
    }
    resp.n_users = u->n;
    start = proto_begin_frame(&r->resp, r->type, PROTO_FLAG_RESPONSE, r->id);
    proto_put_user_list_resp(&r->resp, &resp);
    for (unsigned i = 0; i < u->n; i++) {
        struct proto_user_info info;
        memset(&info, 0, sizeof info);
        snprintf(info.name, sizeof info.name, "%s", u->v[i].name);
        info.mechanisms = (uint8_t)((users_cred(&u->v[i], SCRAM_SHA_256) != NULL ? 1 : 0) |
                                    (users_cred(&u->v[i], SCRAM_SHA_512) != NULL ? 2 : 0));
        proto_put_user_info(&r->resp, &info);
    }
    proto_end_frame(&r->resp, start);
    conn_complete(r);
}

/* The principal of @r's connection, or NULL when it has not
 * authenticated. */
static const char *auth__principal(struct req *r)
{
    struct auth_conn **slot = conn_auth(r);
    return slot != NULL && *slot != NULL && (*slot)->authenticated ? (*slot)->principal : NULL;
}

bool auth_handle(struct gw *gw, struct store *store, const struct cfg *cfg, struct req *r,
                 struct rd *rd)
{
    const char *who;
    if (r->type == PROTO_HELLO) {
        return false;
    }
    if (r->type == PROTO_AUTH) {
        auth__step(store, r, rd);
        return true;
    }
    who = auth__principal(r);
    if (who == NULL && cfg->auth_required) {
        TLOG_DEBUG("auth", "%s: %s refused: not authenticated", conn_peer(r),
                   proto_type_name(r->type));
        auth__error(r, TALLY_AUTH, "authentication required: this cluster needs --user (SCRAM) "
                                   "or a client certificate (--tls-cert)");
        return true;
    }
    if (r->type == PROTO_USER_SET) {
        auth__user_set(gw, store, r, rd, who != NULL ? who : "anonymous");
        return true;
    }
    if (r->type == PROTO_USER_LIST) {
        auth__user_list(store, r, rd);
        return true;
    }
    return false;
}
