/* Access control lists: which principal may do what on which topic,
 * group or the cluster (docs/security.md). Replicated state: changed only
 * by the ACL command (store command 17, command.h), saved in the catalog and
 * every Raft snapshot after the users (catalog version 3).
 *
 * A rule: principal (a user name or certificate name; "*" = any
 * authenticated principal), resource (topic, group or cluster), pattern
 * (literal name, "*" = every name, or prefix), operation, allow or deny.
 * A request is allowed when some allow rule matches it and no deny rule
 * does (deny wins); with no matching rule it is denied. DESCRIBE is also
 * granted by READ, WRITE, DELETE and ALTER on the same resource; ALL
 * stands for every operation.
 *
 * ENCODING of a rule (the ACL command's body after its op byte, and each
 * rule of the catalog): str principal, u8 resource, u8 pattern, str name,
 * u8 operation, u8 allow (1 allow, 0 deny). */
#ifndef TALLY_STORE_ACL_H_
#define TALLY_STORE_ACL_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/byte.h"

#define ACL_MAX 4096
#define ACL_NAME_MAX 256
#define ACL_OP_ADD 1
#define ACL_OP_REMOVE 2

enum acl_resource { ACL_TOPIC = 1, ACL_GROUP = 2, ACL_CLUSTER = 3 };
enum acl_pattern { ACL_LITERAL = 1, ACL_PREFIX = 2 };
enum acl_operation {
    ACL_READ = 1,
    ACL_WRITE = 2,
    ACL_CREATE = 3,
    ACL_DELETE = 4,
    ACL_ALTER = 5,
    ACL_DESCRIBE = 6,
    ACL_ALL = 7,
};

struct acl_rule {
    char principal[ACL_NAME_MAX];
    uint8_t resource;  /* enum acl_resource */
    uint8_t pattern;   /* enum acl_pattern */
    char name[ACL_NAME_MAX];
    uint8_t operation; /* enum acl_operation */
    uint8_t allow;     /* 1 allow, 0 deny */
};

struct acls {
    struct acl_rule *v; /* owned, in the order they were added */
    unsigned n, cap;
};

void acls_init(struct acls *a);
void acls_free(struct acls *a);
void acls_move(struct acls *dst, struct acls *src);

/* May @principal do @op on @resource @name? ("" for the cluster) */
bool acls_allowed(const struct acls *a, const char *principal, enum acl_resource resource,
                  const char *name, enum acl_operation op);

void acl_rule_encode(const struct acl_rule *r, struct buf *b);
/* 0, or -1 with a reason (and @r marked bad if the bytes were short). */
int acl_rule_decode(struct rd *r, struct acl_rule *out, char *why, size_t cap);

void acls_encode(const struct acls *a, struct buf *b);
int acls_decode(struct rd *r, struct acls *a); /* 0, TALLY_NOMEM, TALLY_CORRUPT */

/* Apply an ACL command body (u8 op, then a rule). 0, or TALLY_INVAL /
 * TALLY_NOTFOUND / TALLY_EXISTS / TALLY_NOMEM with @why (state unchanged). */
int acls_apply(struct acls *a, struct rd *body, char *why, size_t cap);

/* Names for messages and the CLI: "topic", "read", ... and back (0 if
 * unknown). */
const char *acl_resource_name(unsigned r);
const char *acl_operation_name(unsigned op);
unsigned acl_resource_parse(const char *s);
unsigned acl_operation_parse(const char *s);

#endif
