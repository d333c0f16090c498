/* Access control lists (acl.h). A plain array checked rule by rule: a
 * request is checked against every rule, which is cheap for the few
 * hundred rules a cluster has; deny wins over allow. */
#include "store/acl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

static const char *const acl__resources[] = {NULL, "topic", "group", "cluster"};
static const char *const acl__operations[] = {NULL,    "read",  "write",    "create",
                                              "delete", "alter", "describe", "all"};

const char *acl_resource_name(unsigned r)
{
    return r >= 1 && r <= 3 ? acl__resources[r] : "?";
}

const char *acl_operation_name(unsigned op)
{
    return op >= 1 && op <= 7 ? acl__operations[op] : "?";
}

unsigned acl_resource_parse(const char *s)
{
    for (unsigned i = 1; i <= 3; i++) {
        if (strcmp(s, acl__resources[i]) == 0) {
            return i;
        }
    }
    return 0;
}

unsigned acl_operation_parse(const char *s)
{
    for (unsigned i = 1; i <= 7; i++) {
        if (strcmp(s, acl__operations[i]) == 0) {
            return i;
        }
    }
    return 0;
}

void acls_init(struct acls *a)
{
    memset(a, 0, sizeof *a);
}

void acls_free(struct acls *a)
{
    free(a->v);
    acls_init(a);
}

void acls_move(struct acls *dst, struct acls *src)
{
    acls_free(dst);
    *dst = *src;
    acls_init(src);
}

/* Does @r's operation cover @op? */
static bool acl__op_covers(unsigned rule_op, enum acl_operation op, bool allow)
{
    if (rule_op == ACL_ALL || rule_op == (unsigned)op) {
        return true;
    }
    /* Anyone allowed to read, write, delete or alter a resource may see
     * that it exists; a deny of those does not deny DESCRIBE. */
    return allow && op == ACL_DESCRIBE &&
           (rule_op == ACL_READ || rule_op == ACL_WRITE || rule_op == ACL_DELETE ||
            rule_op == ACL_ALTER);
}

static bool acl__matches(const struct acl_rule *r, const char *principal,
                         enum acl_resource resource, const char *name, enum acl_operation op)
{
    if (r->resource != resource || !acl__op_covers(r->operation, op, r->allow)) {
        return false;
    }
    if (strcmp(r->principal, "*") != 0 && strcmp(r->principal, principal) != 0) {
        return false;
    }
    if (resource == ACL_CLUSTER) {
        return true;
    }
    if (r->pattern == ACL_PREFIX) {
        return strncmp(name, r->name, strlen(r->name)) == 0;
    }
    return strcmp(r->name, "*") == 0 || strcmp(r->name, name) == 0;
}

bool acls_allowed(const struct acls *a, const char *principal, enum acl_resource resource,
                  const char *name, enum acl_operation op)
{
    bool allowed = false;
    for (unsigned i = 0; i < a->n; i++) {
        const struct acl_rule *r = &a->v[i];
        if (acl__matches(r, principal, resource, name, op)) {
            if (!r->allow) {
                return false;
            }
            allowed = true;
        }
    }
    return allowed;
}

void acl_rule_encode(const struct acl_rule *r, struct buf *b)
{
    buf_put_str(b, r->principal);
    buf_put_u8(b, r->resource);
    buf_put_u8(b, r->pattern);
    buf_put_str(b, r->name);
    buf_put_u8(b, r->operation);
    buf_put_u8(b, r->allow);
}

int acl_rule_decode(struct rd *r, struct acl_rule *out, char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    rd_str(r, out->principal, sizeof out->principal);
    out->resource = rd_u8(r);
    out->pattern = rd_u8(r);
    rd_str(r, out->name, sizeof out->name);
    out->operation = rd_u8(r);
    out->allow = rd_u8(r);
    if (!rd_ok(r)) {
        snprintf(why, cap, "malformed ACL rule");
        return -1;
    }
    if (out->principal[0] == '\0' || out->resource < ACL_TOPIC || out->resource > ACL_CLUSTER ||
        out->pattern < ACL_LITERAL || out->pattern > ACL_PREFIX || out->operation < ACL_READ ||
        out->operation > ACL_ALL || out->allow > 1 ||
        (out->resource != ACL_CLUSTER && out->name[0] == '\0')) {
        snprintf(why, cap, "invalid ACL rule (principal, resource topic|group|cluster, "
                           "a name for topics and groups, operation)");
        return -1;
    }
    return 0;
}

void acls_encode(const struct acls *a, struct buf *b)
{
    buf_put_u32(b, a->n);
    for (unsigned i = 0; i < a->n; i++) {
        acl_rule_encode(&a->v[i], b);
    }
}

static bool acl__same(const struct acl_rule *x, const struct acl_rule *y)
{
    return strcmp(x->principal, y->principal) == 0 && x->resource == y->resource &&
           x->pattern == y->pattern && strcmp(x->name, y->name) == 0 &&
           x->operation == y->operation && x->allow == y->allow;
}

static int acl__add(struct acls *a, const struct acl_rule *r)
{
    if (a->n == ACL_MAX) {
        return TALLY_INVAL;
    }
    if (a->n == a->cap) {
        unsigned cap = a->cap ? a->cap * 2 : 16;
        struct acl_rule *v = realloc(a->v, cap * sizeof *v);
        if (v == NULL) {
            return TALLY_NOMEM;
        }
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = *r;
    return 0;
}

int acls_decode(struct rd *r, struct acls *a)
{
    char why[160];
    uint32_t n = rd_u32(r);
    if (!rd_ok(r) || n > ACL_MAX) {
        r->bad = true;
        return TALLY_CORRUPT;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct acl_rule rule;
        int rv;
        if (acl_rule_decode(r, &rule, why, sizeof why) != 0) {
            r->bad = true;
            return TALLY_CORRUPT;
        }
        if ((rv = acl__add(a, &rule)) != 0) {
            r->bad = true;
            return rv == TALLY_NOMEM ? TALLY_NOMEM : TALLY_CORRUPT;
        }
    }
    return 0;
}

int acls_apply(struct acls *a, struct rd *body, char *why, size_t cap)
{
    uint8_t op = rd_u8(body);
    struct acl_rule rule;
    unsigned i;
    if (op != ACL_OP_ADD && op != ACL_OP_REMOVE) {
        snprintf(why, cap, "unknown ACL operation %u", op);
        return TALLY_INVAL;
    }
    if (acl_rule_decode(body, &rule, why, cap) != 0) {
        return TALLY_INVAL;
    }
    for (i = 0; i < a->n && !acl__same(&a->v[i], &rule); i++) {
    }
    if (op == ACL_OP_ADD) {
        int rv;
        if (i < a->n) {
            snprintf(why, cap, "the rule exists already");
            return TALLY_EXISTS;
        }
        rv = acl__add(a, &rule);
        if (rv != 0) {
            snprintf(why, cap, rv == TALLY_NOMEM ? "out of memory" : "too many ACL rules");
        }
        return rv;
    }
    if (i == a->n) {
        snprintf(why, cap, "no such rule");
        return TALLY_NOTFOUND;
    }
    memmove(&a->v[i], &a->v[i + 1], (a->n - i - 1) * sizeof *a->v);
    a->n--;
    return 0;
}
