/* tallyd's server: the loop, listeners, signals, orderly shutdown. */
#ifndef TALLY_SERVER_SRV_H_
#define TALLY_SERVER_SRV_H_

#include "server/cfg.h"

/* Run a node until SIGTERM/SIGINT (returns 0) or a fatal error (returns 1;
 * the message was logged). */
int srv_run(const struct cfg *cfg);

#endif
