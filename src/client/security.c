/* libtally's security (docs/security.md): TLS to the nodes
 * (tally_client_set_tls; the connection itself is client/wire.c's), the
 * SCRAM login after HELLO on every new connection (tally_client_set_auth),
 * and the user and ACL administration calls (SECURITY_SET and
 * SECURITY_LIST requests). */
#include "tally.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "lib/err.h"
#include "lib/scram.h"
#include "lib/tls.h"
#include "proto/auth.h"
#include "proto/proto.h"

static int client__login(struct tally_client *c, struct client__node *nd, int64_t deadline);

int client__secure(struct tally_client *c, struct client__node *nd, int64_t deadline,
                   bool after_hello)
{
    if (!after_hello) {
        bool refused = false;
        int rv;
        if (c->tls == NULL) {
            return 0;
        }
        rv = wire_start_tls(&nd->w, c->tls, nd->host, deadline, &refused, c->errmsg);
        nd->refused = refused;
        return rv;
    }
    if (c->user[0] == '\0') {
        return 0;
    }
    int rv = client__login(c, nd, deadline);
    return rv == 0 || rv == TALLY_NOMEM ? rv : TALLY_CONNECT;
}

void client__security_free(struct tally_client *c)
{
    SSL_CTX_free(c->tls);
    c->tls = NULL;
    scram_wipe(c->password, sizeof c->password);
}

/* ------------------------------------------------------------------------
 * TLS (docs/security.md)
 * ------------------------------------------------------------------------ */

TALLY_API int tally_client_set_tls(tally_client *c, const char *ca_file, const char *cert_file,
                                   const char *key_file)
{
    struct tls_files f = {cert_file, key_file, ca_file, true};
    SSL_CTX *ctx;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    if (ca_file == NULL || ca_file[0] == '\0') {
        err_printf(c->errmsg, "TLS: a CA file is required (the CA of the cluster)");
        return TALLY_INVAL;
    }
    ctx = tls_client_ctx(&f, c->errmsg);
    if (ctx == NULL) {
        return TALLY_INVAL;
    }
    SSL_CTX_free(c->tls);
    c->tls = ctx;
    for (size_t i = 0; i < c->n_nodes; i++) {
        client__disconnect(&c->nodes[i]); /* reconnect with TLS */
    }
    return 0;
}

SSL_CTX *client_tls_ctx(struct tally_client *c)
{
    return c->tls;
}

/* ------------------------------------------------------------------------
 * Authentication: SCRAM (docs/security.md)
 * ------------------------------------------------------------------------ */

struct client__login_arg {
    struct tally_client *c;
    struct client__node *nd;
    int64_t deadline;
};

static int client__login_rt(void *arg, struct buf *frame, struct proto_auth_reply *out,
                            char *errmsg)
{
    struct client__login_arg *a = arg;
    struct client__reply rep;
    uint16_t type = byte_get_u16(frame->data + 8);
    bool sent = false;
    uint32_t id;
    int rv = client__send_request(a->c, a->nd, frame, a->deadline, &sent, &id);
    if (rv == 0) {
        rv = client__recv_reply(a->c, a->nd, type, id, a->deadline, &rep);
    }
    if (rv != 0) {
        if (errmsg != a->c->errmsg) {
            err_printf(errmsg, "%s", a->c->errmsg);
        }
        return rv;
    }
    out->is_error = rep.is_error;
    snprintf(out->message, sizeof out->message, "%s", rep.is_error ? rep.err.message : "");
    out->body = rep.body;
    return 0;
}

static int client__login(struct tally_client *c, struct client__node *nd, int64_t deadline)
{
    struct client__login_arg a = {c, nd, deadline};
    char why[ERR_MSG_SIZE];
    int rv = proto_auth_login_mech(c->mech != 0 ? c->mech : SCRAM_SHA_256, c->user, c->password,
                                   client__login_rt, &a, NULL, 0, why);
    if (rv != 0) {
        err_printf(c->errmsg, "%s: %s", nd->w.addr, why);
        if (rv == TALLY_AUTH) {
            nd->refused = true;
            nd->refused_code = TALLY_AUTH;
        }
    }
    return rv;
}

TALLY_API int tally_client_set_auth(tally_client *c, const char *user, const char *password)
{
    if (c == NULL) {
        return TALLY_INVAL;
    }
    if (user == NULL || user[0] == '\0' || strlen(user) >= sizeof c->user || password == NULL ||
        strlen(password) >= sizeof c->password) {
        err_printf(c->errmsg, "authentication: a user name (1..%zu bytes) and a password "
                              "(at most %zu bytes) are needed",
                   sizeof c->user - 1, sizeof c->password - 1);
        return TALLY_INVAL;
    }
    snprintf(c->user, sizeof c->user, "%s", user);
    snprintf(c->password, sizeof c->password, "%s", password);
    for (size_t i = 0; i < c->n_nodes; i++) {
        client__disconnect(&c->nodes[i]); /* log in on the next request */
    }
    return 0;
}

const char *client_auth_user(struct tally_client *c, const char **password, int *mech)
{
    *password = c->password;
    *mech = c->mech != 0 ? c->mech : SCRAM_SHA_256;
    return c->user[0] != '\0' ? c->user : NULL;
}

TALLY_API int tally_client_set_auth_mechanism(tally_client *c, const char *mechanism)
{
    enum scram_mech m;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    m = mechanism != NULL ? scram_mech_parse(mechanism) : 0;
    if (m == 0) {
        err_printf(c->errmsg, "authentication mechanism '%s' is not supported: SCRAM-SHA-256 "
                              "or SCRAM-SHA-512", mechanism != NULL ? mechanism : "(null)");
        return TALLY_INVAL;
    }
    c->mech = (int)m;
    for (size_t i = 0; i < c->n_nodes; i++) {
        client__disconnect(&c->nodes[i]);
    }
    return 0;
}

/* SECURITY_SET of store command @command (16 users, 17 ACLs) with @body. */
static int client__security_set(tally_client *c, uint8_t command, const struct buf *body,
                                const char *what)
{
    struct proto_security_set_req m;
    size_t start;
    int rv;
    m.command = command;
    m.body = body->data;
    m.body_len = (uint32_t)body->len;
    start = client__begin(c, PROTO_SECURITY_SET);
    proto_put_security_set_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    return client__done_call(c, what);
}

/* SECURITY_LIST of @kind; each item's bytes go to @each (which returns 0,
 * or non-zero to stop with TALLY_PROTO or TALLY_NOMEM). */
static int client__security_list(tally_client *c, uint8_t kind, const char *what,
                                 int (*each)(void *arg, struct rd *item, uint32_t i, uint32_t n),
                                 void *arg)
{
    struct proto_security_list_req m = {kind};
    struct proto_security_list_resp r;
    struct client__op op;
    struct client__reply rep;
    size_t start;
    int rv;
    start = client__begin(c, PROTO_SECURITY_LIST);
    proto_put_security_list_req(&c->req, &m);
    if ((rv = client__end(c, start, what)) != 0) {
        return rv;
    }
    client__op_init(c, &op, what, false);
    if ((rv = client__call(c, &op, &rep)) != 0) {
        return rv;
    }
    if (proto_get_security_list_resp(&rep.body, &r) != 0 || r.n_items > rep.body.left / 4) {
        return client__malformed(c, what);
    }
    for (uint32_t i = 0; i < r.n_items; i++) {
        struct proto_security_item it;
        struct rd item;
        if (proto_get_security_item(&rep.body, &it) != 0) {
            return client__malformed(c, what);
        }
        rd_init(&item, it.item, it.item_len);
        if ((rv = each(arg, &item, i, r.n_items)) != 0) {
            if (rv == TALLY_NOMEM) {
                err_printf(c->errmsg, "%s: out of memory", what);
                return rv;
            }
            return client__malformed(c, what);
        }
    }
    if (proto_get_end(&rep.body) != 0) {
        return client__malformed(c, what);
    }
    return 0;
}

TALLY_API int tally_user_set(tally_client *c, const char *name, const char *password)
{
    char what[SCRAM_USER_MAX + 32];
    struct scram_credentials cred[2];
    struct buf body;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "set user %s", name != NULL ? name : "(null)");
    if (name == NULL || name[0] == '\0' || strlen(name) >= SCRAM_USER_MAX || password == NULL ||
        password[0] == '\0') {
        err_printf(c->errmsg, "%s: a user name (1..%d bytes) and a non-empty password are "
                              "needed", what, SCRAM_USER_MAX - 1);
        return TALLY_INVAL;
    }
    /* The credentials are derived here: the password never leaves. */
    if (scram_make_credentials(SCRAM_SHA_256, password, NULL, 0, SCRAM_MIN_ITERATIONS, &cred[0],
                               c->errmsg) != 0 ||
        scram_make_credentials(SCRAM_SHA_512, password, NULL, 0, SCRAM_MIN_ITERATIONS, &cred[1],
                               c->errmsg) != 0) {
        return TALLY_INVAL;
    }
    buf_init(&body);
    buf_put_u8(&body, 1); /* set (store/users.h) */
    buf_put_str(&body, name);
    buf_put_u8(&body, 2);
    for (int i = 0; i < 2; i++) {
        size_t ks = scram_key_size(cred[i].mech);
        buf_put_u8(&body, (uint8_t)cred[i].mech);
        buf_put_blob(&body, cred[i].salt, (uint32_t)cred[i].salt_len);
        buf_put_u32(&body, cred[i].iterations);
        buf_put_blob(&body, cred[i].stored_key, (uint32_t)ks);
        buf_put_blob(&body, cred[i].server_key, (uint32_t)ks);
    }
    scram_wipe(cred, sizeof cred);
    rv = buf_ok(&body) ? client__security_set(c, PROTO_SECURITY_USERS, &body, what) : TALLY_NOMEM;
    scram_wipe(body.data, body.cap);
    buf_free(&body);
    return rv;
}

TALLY_API int tally_user_remove(tally_client *c, const char *name)
{
    char what[SCRAM_USER_MAX + 32];
    struct buf body;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "remove user %s", name != NULL ? name : "(null)");
    if (name == NULL || name[0] == '\0' || strlen(name) >= SCRAM_USER_MAX) {
        err_printf(c->errmsg, "%s: a user name (1..%d bytes) is needed", what,
                   SCRAM_USER_MAX - 1);
        return TALLY_INVAL;
    }
    buf_init(&body);
    buf_put_u8(&body, 2); /* remove (store/users.h) */
    buf_put_str(&body, name);
    rv = buf_ok(&body) ? client__security_set(c, PROTO_SECURITY_USERS, &body, what) : TALLY_NOMEM;
    buf_free(&body);
    return rv;
}

struct client__names {
    char **v;
};

static int client__name_item(void *arg, struct rd *item, uint32_t i, uint32_t n)
{
    struct client__names *x = arg;
    char name[PROTO_NAME_MAX];
    if (x->v == NULL && (x->v = calloc(n + 1, sizeof *x->v)) == NULL) {
        return TALLY_NOMEM;
    }
    rd_str(item, name, sizeof name);
    (void)rd_u8(item); /* the mechanisms */
    if (!rd_ok(item)) {
        return TALLY_PROTO;
    }
    return (x->v[i] = strdup(name)) == NULL ? TALLY_NOMEM : 0;
}

TALLY_API int tally_user_list(tally_client *c, char ***names, size_t *n)
{
    static const char what[] = "list users";
    struct client__names x = {NULL};
    size_t k = 0;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    if (names == NULL || n == NULL) {
        return client__null_output(c, what, names == NULL ? "names" : "n");
    }
    *names = NULL;
    *n = 0;
    rv = client__security_list(c, PROTO_SECURITY_USERS, what, client__name_item, &x);
    while (x.v != NULL && x.v[k] != NULL) {
        k++;
    }
    if (rv != 0) {
        tally_user_list_free(x.v, k);
        return rv;
    }
    *names = x.v;
    *n = k;
    return 0;
}

TALLY_API void tally_user_list_free(char **names, size_t n)
{
    if (names == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
}

/* ---- ACLs (docs/security.md) ---- */

static int client__acl_change(tally_client *c, uint8_t op, const struct tally_acl *a,
                              const char *verb)
{
    char what[PROTO_NAME_MAX + 64];
    struct buf body;
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    snprintf(what, sizeof what, "%s ACL", verb);
    if (a == NULL) {
        err_printf(c->errmsg, "%s: the rule is NULL", what);
        return TALLY_INVAL;
    }
    buf_init(&body);
    buf_put_u8(&body, op); /* store/acl.h */
    buf_put_str(&body, a->principal);
    buf_put_u8(&body, (uint8_t)a->resource);
    buf_put_u8(&body, a->prefix ? 2 : 1);
    buf_put_str(&body, a->name);
    buf_put_u8(&body, (uint8_t)a->operation);
    buf_put_u8(&body, a->allow ? 1 : 0);
    rv = buf_ok(&body) ? client__security_set(c, PROTO_SECURITY_ACLS, &body, what) : TALLY_NOMEM;
    buf_free(&body);
    return rv;
}

TALLY_API int tally_acl_add(tally_client *c, const struct tally_acl *acl)
{
    return client__acl_change(c, 1, acl, "add");
}

TALLY_API int tally_acl_remove(tally_client *c, const struct tally_acl *acl)
{
    return client__acl_change(c, 2, acl, "remove");
}

struct client__acls {
    struct tally_acl *v;
    size_t n;
};

static int client__acl_item(void *arg, struct rd *item, uint32_t i, uint32_t n)
{
    struct client__acls *x = arg;
    struct tally_acl *a;
    if (x->v == NULL && (x->v = calloc(n + 1, sizeof *x->v)) == NULL) {
        return TALLY_NOMEM;
    }
    x->n = n;
    a = &x->v[i];
    rd_str(item, a->principal, sizeof a->principal);
    a->resource = rd_u8(item);
    a->prefix = rd_u8(item) == 2;
    rd_str(item, a->name, sizeof a->name);
    a->operation = rd_u8(item);
    a->allow = rd_u8(item);
    return rd_ok(item) ? 0 : TALLY_PROTO;
}

TALLY_API int tally_acl_list(tally_client *c, struct tally_acl **acls, size_t *n)
{
    static const char what[] = "list ACLs";
    struct client__acls x = {NULL, 0};
    int rv;
    if (c == NULL) {
        return TALLY_INVAL;
    }
    c->errmsg[0] = '\0';
    if (acls == NULL || n == NULL) {
        return client__null_output(c, what, acls == NULL ? "acls" : "n");
    }
    *acls = NULL;
    *n = 0;
    rv = client__security_list(c, PROTO_SECURITY_ACLS, what, client__acl_item, &x);
    if (rv != 0) {
        free(x.v);
        return rv;
    }
    *n = x.n;
    *acls = x.v;
    return 0;
}
