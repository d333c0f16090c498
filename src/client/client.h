/* Inside libtally: what client.c shares with producer.c (not exported:
 * the library is built with -fvisibility=hidden). */
#ifndef TALLY_CLIENT_CLIENT_H_
#define TALLY_CLIENT_CLIENT_H_

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

/* Monotonic clock in ms, for deadlines. */
int64_t client_now_ms(void);

/* Parse "HOST:PORT" (@len bytes at @s) into @sa and the normalised
 * dotted-quad form @norm (PROTO_ADDR_MAX bytes). HOST may be a name; it is
 * resolved to its first IPv4 address here, once. TALLY_INVAL if bad. */
int client_parse_addr(const char *s, size_t len, struct sockaddr_in *sa, char *norm);

/* ---- SCRAM login (docs/security.md) ---- */
#include "proto/auth.h"

/* The user and password tally_client_set_auth gave (NULL: none). */
struct tally_client;
const char *client_auth_user(struct tally_client *c, const char **password, int *mech);

/* ---- TLS (docs/security.md) ---- */
struct tally_client;

/* The context tally_client_set_tls made, or NULL for plaintext
 * (borrowed: lives as long as the handle). */
SSL_CTX *client_tls_ctx(struct tally_client *c);

/* TLS on @fd (connected, non-blocking) to the node reached as @host
 * (its certificate must name it), handshake done by @deadline. Returns
 * the connection (the caller frees it with SSL_free before closing @fd),
 * or NULL with a message naming @addr in @errmsg (ERR_MSG_SIZE). */
SSL *client_tls_open(SSL_CTX *ctx, int fd, const char *host, const char *addr, int64_t deadline,
                     char *errmsg);

#endif
