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
#include "server/req.h"
#include "server/gw.h"
#include "store/command.h"
#include "store/store.h"
#include "store/acl.h"
#include "store/users.h"

struct auth_conn {
    bool authenticated;
    bool started;                  /* a SCRAM exchange is under way */
    char principal[PROTO_NAME_MAX];
    uint64_t node_id;              /* a member's certificate (0: none) */
    struct scram_server scram;
};

struct auth_conn *auth_conn_certified(const char *principal, uint64_t node_id)
{
    struct auth_conn *a = calloc(1, sizeof *a);
    if (a != NULL) {
        a->authenticated = true;
        a->node_id = node_id;
        snprintf(a->principal, sizeof a->principal, "%s", principal);
    }
    return a;
}

const char *auth_conn_principal(const struct auth_conn *a)
{
    return a != NULL && a->authenticated ? a->principal : NULL;
}

void auth_conn_free(struct auth_conn *a)
{
    if (a != NULL) {
        scram_wipe(&a->scram, sizeof a->scram);
        free(a);
    }
}

/* The peer's name for logs, from the request's front door. */
static const char *auth__peer(const struct req *r)
{
    return r->ops->peer != NULL ? r->ops->peer(r) : "client";
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
    req_complete(r);
}

/* The connection's state, made on first use; NULL if the connection is
 * gone or memory is short (then @r is answered). */
static struct auth_conn *auth__conn(struct req *r)
{
    struct auth_conn **slot = r->ops->auth != NULL ? r->ops->auth(r) : NULL;
    if (slot == NULL) {
        req_complete(r);
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
    req_complete(r);
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
        TLOG_WARN("auth", "%s: authentication as user '%s' failed (%s)", auth__peer(r),
                  a->scram.user, errmsg);
        auth__error(r, TALLY_AUTH, "authentication failed: wrong user name or password");
        return;
    }
    a->authenticated = true;
    snprintf(a->principal, sizeof a->principal, "%s", a->scram.user);
    a->node_id = 0; /* a user now, whatever its certificate said */
    TLOG_INFO("auth", "%s: authenticated as user '%s' (%s)", auth__peer(r), a->principal,
              scram_mech_name(mech));
    auth__answer(r, true, out, a->principal);
}

/* SECURITY_SET: a user or an ACL rule, checked as apply will check it (on
 * a scratch copy), so that nothing malformed enters the Raft log, then
 * proposed. */
static void auth__security_set(struct gw *gw, struct store *store, struct req *r, struct rd *rd,
                               const char *by)
{
    struct proto_security_set_req m;
    struct rd body;
    struct buf entry;
    char why[256], name[USERS_NAME_MAX] = "";
    int rv;
    if (proto_get_security_set_req(rd, &m) != 0 || proto_get_end(rd) != 0 ||
        (m.command != PROTO_SECURITY_USERS && m.command != PROTO_SECURITY_ACLS) ||
        m.body_len == 0) {
        auth__error(r, TALLY_PROTO, "malformed SECURITY_SET");
        return;
    }
    rd_init(&body, m.body, m.body_len);
    if (m.command == PROTO_SECURITY_USERS) {
        struct rd peek;
        rd_init(&peek, m.body + 1, m.body_len - 1);
        rd_str(&peek, name, sizeof name);
        if (m.body[0] == USERS_OP_REMOVE) {
            rv = users_find(store_users(store), name) != NULL ? 0 : TALLY_NOTFOUND;
            snprintf(why, sizeof why, "user %s not found", name);
        } else {
            struct users check;
            users_init(&check);
            rv = users_apply(&check, &body, why, sizeof why);
            users_free(&check);
        }
    } else {
        /* The same check against the real rules, on a copy. */
        const struct acls *cur = store_acls(store);
        struct acls check;
        acls_init(&check);
        check.v = cur->n > 0 ? malloc(cur->n * sizeof *cur->v) : NULL;
        if (cur->n > 0 && check.v == NULL) {
            auth__error(r, TALLY_NOMEM, "out of memory");
            return;
        }
        if (cur->n > 0) {
            memcpy(check.v, cur->v, cur->n * sizeof *cur->v);
        }
        check.n = check.cap = cur->n;
        rv = acls_apply(&check, &body, why, sizeof why);
        acls_free(&check);
        snprintf(name, sizeof name, "rule");
    }
    if (rv == 0 && body.left != 0 && m.body[0] != USERS_OP_REMOVE) {
        rv = TALLY_INVAL;
        snprintf(why, sizeof why, "trailing bytes after the %s",
                 m.command == PROTO_SECURITY_USERS ? "user" : "rule");
    }
    if (rv != 0) {
        auth__error(r, rv, "%s", why);
        return;
    }
    TLOG_INFO("auth", "%s, as %s: %s %s%s%s", auth__peer(r), by,
              m.body[0] == 1 ? (m.command == PROTO_SECURITY_USERS ? "sets" : "adds")
                             : "removes",
              m.command == PROTO_SECURITY_USERS ? "user '" : "an ACL ",
              name, m.command == PROTO_SECURITY_USERS ? "'" : "");
    buf_init(&entry);
    command_encode_security(&entry, m.command, m.body, m.body_len);
    gw_propose_entry(gw, r, &entry);
}

static void auth__security_list(struct store *store, struct req *r, struct rd *rd)
{
    struct proto_security_list_req m;
    struct proto_security_list_resp resp;
    struct buf item;
    size_t start;
    if (proto_get_security_list_req(rd, &m) != 0 || proto_get_end(rd) != 0 ||
        (m.what != PROTO_SECURITY_USERS && m.what != PROTO_SECURITY_ACLS)) {
        auth__error(r, TALLY_PROTO, "malformed SECURITY_LIST");
        return;
    }
    buf_init(&item);
    start = proto_begin_frame(&r->resp, r->type, PROTO_FLAG_RESPONSE, r->id);
    if (m.what == PROTO_SECURITY_USERS) {
        const struct users *u = store_users(store);
        resp.n_items = u->n;
        proto_put_security_list_resp(&r->resp, &resp);
        for (unsigned i = 0; i < u->n; i++) {
            struct proto_security_item it;
            item.len = 0;
            buf_put_str(&item, u->v[i].name);
            buf_put_u8(&item, (uint8_t)((users_cred(&u->v[i], SCRAM_SHA_256) != NULL ? 1 : 0) |
                                        (users_cred(&u->v[i], SCRAM_SHA_512) != NULL ? 2 : 0)));
            it.item = item.data;
            it.item_len = (uint32_t)item.len;
            proto_put_security_item(&r->resp, &it);
        }
    } else {
        const struct acls *a = store_acls(store);
        resp.n_items = a->n;
        proto_put_security_list_resp(&r->resp, &resp);
        for (unsigned i = 0; i < a->n; i++) {
            struct proto_security_item it;
            item.len = 0;
            acl_rule_encode(&a->v[i], &item);
            it.item = item.data;
            it.item_len = (uint32_t)item.len;
            proto_put_security_item(&r->resp, &it);
        }
    }
    proto_end_frame(&r->resp, start);
    if (!buf_ok(&item)) {
        buf_free(&item);
        auth__error(r, TALLY_NOMEM, "out of memory");
        return;
    }
    buf_free(&item);
    req_complete(r);
}

/* What a request needs (docs/security.md, Authorization): at most two
 * (resource, name, operation) checks. */
struct auth__need {
    enum acl_resource resource;
    char name[PROTO_NAME_MAX];
    enum acl_operation op;
};

/* Fill @need from @r's type and the names its body starts with. Returns
 * the number of checks, or -1 if the body is too short to name them. */
static int auth__needs(struct req *r, const struct rd *rd, struct auth__need *need)
{
    struct rd peek = *rd;
    char first[PROTO_NAME_MAX] = "", second[PROTO_NAME_MAX] = "";
    switch (r->type) {
    case PROTO_HELLO:
    case PROTO_AUTH:
    case PROTO_METADATA:
    case PROTO_CLOCK:
    case PROTO_READ_INDEX:
    case PROTO_TOPIC_LIST:
        return 0;
    case PROTO_TOPIC_CREATE:
    case PROTO_TOPIC_DELETE:
    case PROTO_TOPIC_CONFIG:
    case PROTO_PRODUCE:
    case PROTO_FETCH:
    case PROTO_STREAM_READ:
    case PROTO_FETCH_FILTERED:
    case PROTO_OFFSET_FOR_TIME:
        rd_str(&peek, first, sizeof first);
        if (!rd_ok(&peek)) {
            return -1;
        }
        if (r->type == PROTO_FETCH && r->ops->is_backup(r)) {
            return 0; /* a backup's reads: BACKUP_CUT checked cluster READ */
        }
        need[0].resource = ACL_TOPIC;
        snprintf(need[0].name, sizeof need[0].name, "%s", first);
        need[0].op = r->type == PROTO_TOPIC_CREATE   ? ACL_CREATE
                     : r->type == PROTO_TOPIC_DELETE ? ACL_DELETE
                     : r->type == PROTO_TOPIC_CONFIG ? ACL_ALTER
                     : r->type == PROTO_PRODUCE      ? ACL_WRITE
                     : r->type == PROTO_FETCH || r->type == PROTO_STREAM_READ ||
                               r->type == PROTO_FETCH_FILTERED
                         ? ACL_READ
                         : ACL_DESCRIBE;
        return 1;
    case PROTO_GROUP_COMMIT:
    case PROTO_GROUP_SET:
    case PROTO_GROUP_FETCH:
    case PROTO_GROUP_LIST:
    case PROTO_GROUP_DELETE: {
        enum acl_operation op = r->type == PROTO_GROUP_COMMIT || r->type == PROTO_GROUP_SET
                                    ? ACL_READ
                                : r->type == PROTO_GROUP_DELETE ? ACL_DELETE
                                                                : ACL_DESCRIBE;
        int n = 0;
        rd_str(&peek, first, sizeof first);
        rd_str(&peek, second, sizeof second);
        if (!rd_ok(&peek)) {
            return -1;
        }
        if (first[0] == '\0') {
            need[n].resource = ACL_CLUSTER; /* every group */
            need[n].name[0] = '\0';
        } else {
            need[n].resource = ACL_GROUP;
            snprintf(need[n].name, sizeof need[n].name, "%s", first);
        }
        need[n++].op = op;
        if (second[0] != '\0' && r->type != PROTO_GROUP_DELETE) {
            need[n].resource = ACL_TOPIC;
            snprintf(need[n].name, sizeof need[n].name, "%s", second);
            need[n++].op = op == ACL_READ ? ACL_READ : ACL_DESCRIBE;
        }
        return n;
    }
    case PROTO_GROUP_JOIN:
    case PROTO_GROUP_HEARTBEAT:
    case PROTO_GROUP_LEAVE:
    case PROTO_GROUP_MEMBERS:
        /* A shared group's member reads the group (and, to join, the
         * topic); its member list is described. */
        rd_str(&peek, first, sizeof first);
        if (r->type == PROTO_GROUP_JOIN) {
            rd_str(&peek, second, sizeof second);
        }
        if (!rd_ok(&peek)) {
            return -1;
        }
        need[0].resource = ACL_GROUP;
        snprintf(need[0].name, sizeof need[0].name, "%s", first);
        need[0].op = r->type == PROTO_GROUP_MEMBERS ? ACL_DESCRIBE : ACL_READ;
        if (r->type != PROTO_GROUP_JOIN) {
            return 1;
        }
        need[1].resource = ACL_TOPIC;
        snprintf(need[1].name, sizeof need[1].name, "%s", second);
        need[1].op = ACL_READ;
        return 2;
    case PROTO_BACKUP_CUT:
    case PROTO_SECURITY_LIST:
        need[0].resource = ACL_CLUSTER;
        need[0].name[0] = '\0';
        need[0].op = r->type == PROTO_BACKUP_CUT ? ACL_READ : ACL_DESCRIBE;
        return 1;
    default:
        /* Membership, transfer, users and ACLs, and anything new. */
        need[0].resource = ACL_CLUSTER;
        need[0].name[0] = '\0';
        need[0].op = ACL_ALTER;
        return 1;
    }
}

/* True if @who is listed in super_users (ACLs do not apply to it). */
static bool auth__super(const struct cfg *cfg, const char *who)
{
    const char *p = cfg->super_users;
    size_t n = strlen(who);
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, who, n) == 0) {
            return true;
        }
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    return false;
}

bool auth_allowed(struct store *store, const struct cfg *cfg, const char *who,
                  enum acl_resource resource, const char *name, enum acl_operation op)
{
    return !cfg->authorize_acl || auth__super(cfg, who) ||
           acls_allowed(store_acls(store), who, resource, name, op);
}

/* The ACL check of @r for @who: true if allowed; else @r is answered. */
static bool auth__authorize(struct store *store, const struct cfg *cfg, struct req *r,
                            const struct rd *rd, const char *who, uint64_t node_id)
{
    struct auth__need need[2];
    int n;
    if (!cfg->authorize_acl || auth__super(cfg, who)) {
        return true;
    }
    if (node_id != 0 && r->type == PROTO_FETCH && store_member_find(store, node_id) != NULL) {
        /* Another member backfilling history a snapshot left out: it holds
         * every topic anyway (docs/security.md, Authorization). */
        return true;
    }
    n = auth__needs(r, rd, need);
    if (n < 0) {
        auth__error(r, TALLY_PROTO, "malformed %s", proto_type_name(r->type));
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (!auth_allowed(store, cfg, who, need[i].resource, need[i].name, need[i].op)) {
            const char *res = acl_resource_name(need[i].resource);
            const char *op = acl_operation_name(need[i].op);
            TLOG_WARN("auth", "%s: denied: %s may not %s %s%s%s (%s)", auth__peer(r), who, op,
                      res, need[i].name[0] ? " " : "", need[i].name, proto_type_name(r->type));
            auth__error(r, TALLY_DENIED, "not authorized: %s may not %s %s%s%s (no ACL allows "
                                         "it: tally acl add)",
                        who, op, res, need[i].name[0] ? " " : "", need[i].name);
            return false;
        }
    }
    return true;
}

/* The principal of @r's connection, or NULL when it has not
 * authenticated. */
static const char *auth__principal(struct req *r)
{
    struct auth_conn **slot = r->ops->auth != NULL ? r->ops->auth(r) : NULL;
    return slot != NULL && *slot != NULL && (*slot)->authenticated ? (*slot)->principal : NULL;
}

/* The member whose node certificate @r's connection presented, or 0. */
static uint64_t auth__node_id(struct req *r)
{
    struct auth_conn **slot = r->ops->auth != NULL ? r->ops->auth(r) : NULL;
    return slot != NULL && *slot != NULL && (*slot)->authenticated ? (*slot)->node_id : 0;
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
        TLOG_DEBUG("auth", "%s: %s refused: not authenticated", auth__peer(r),
                   proto_type_name(r->type));
        auth__error(r, TALLY_AUTH, "authentication required: this cluster needs --user (SCRAM) "
                                   "or a client certificate (--tls-cert)");
        return true;
    }
    if (who != NULL && !auth__authorize(store, cfg, r, rd, who, auth__node_id(r))) {
        return true;
    }
    if (r->type == PROTO_SECURITY_SET) {
        auth__security_set(gw, store, r, rd, who != NULL ? who : "anonymous");
        return true;
    }
    if (r->type == PROTO_SECURITY_LIST) {
        auth__security_list(store, r, rd);
        return true;
    }
    return false;
}
