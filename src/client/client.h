/* Inside libtally: what client.c shares with producer.c (not exported:
 * the library is built with -fvisibility=hidden). */
#ifndef TALLY_CLIENT_CLIENT_H_
#define TALLY_CLIENT_CLIENT_H_

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

/* Monotonic clock in ms, for deadlines. */
int64_t client_now_ms(void);

/* Parse "HOST:PORT" (@len bytes at @s) into @sa and the normalised
 * dotted-quad form @norm (PROTO_ADDR_MAX bytes). HOST may be a name; it is
 * resolved to its first IPv4 address here, once. TALLY_INVAL if bad. */
int client_parse_addr(const char *s, size_t len, struct sockaddr_in *sa, char *norm);

#endif
