/* Client authentication on the client port (docs/security.md): SCRAM
 * (AUTH requests) or a client certificate of the cluster's CA, the
 * per-connection state, the gate that refuses requests of a connection
 * that has not authenticated when the node requires it (auth = required),
 * and the user administration requests (USER_SET, USER_LIST). */
#ifndef TALLY_SERVER_AUTH_H_
#define TALLY_SERVER_AUTH_H_

#include <stdbool.h>

#include "lib/byte.h"
#include "store/acl.h"

struct gw;
struct req;
struct store;
struct cfg;

/* A connection's authentication (owned by its conn; auth_conn_free). */
struct auth_conn;

/* A connection whose TLS client certificate named @principal: it is
 * authenticated as that name. @node_id: not 0 when the certificate proves
 * the peer is node @node_id (CN node<ID> and an IP SAN equal to the
 * connection's source address, tls_check_node): while that node is a
 * member, the connection may FETCH every topic under authorize = acl
 * (another member's backfill, backfill.c), and nothing more than its ACLs
 * allow otherwise. NULL when out of memory. */
struct auth_conn *auth_conn_certified(const char *principal, uint64_t node_id);

void auth_conn_free(struct auth_conn *a);

/* The principal @a authenticated as, or NULL (NULL @a: none yet). */
const char *auth_conn_principal(const struct auth_conn *a);

/* Called by the gateway for every request before dispatch. Answers AUTH,
 * SECURITY_SET and SECURITY_LIST itself; refuses (TALLY_AUTH) any request
 * but HELLO and AUTH on a connection that has not authenticated when @cfg
 * requires it, and (TALLY_DENIED) any request the ACLs do not allow when
 * @cfg has authorize = acl. Returns true if @r was handled here. */
bool auth_handle(struct gw *gw, struct store *store, const struct cfg *cfg, struct req *r,
                 struct rd *rd);

/* The ACL check every request passes (docs/security.md, Authorization),
 * for one resource: may @who do @op on @resource @name ("" for the
 * cluster)? True without authorize = acl, for a super user, and when a
 * rule allows it. The console (ui.c) asks it for what it shows. */
bool auth_allowed(struct store *store, const struct cfg *cfg, const char *who,
                  enum acl_resource resource, const char *name, enum acl_operation op);

#endif
