/* What the files of the log layer (log.c, verify.c, scan.c) share and
 * nothing else may use. The layer's interface is log.h. */
#ifndef TALLY_LOG_LOG_INT_H_
#define TALLY_LOG_LOG_INT_H_

#include <stdint.h>

#include "log/log.h"

/* log.c: fill @errmsg with "@what: out of memory", return TALLY_NOMEM. */
int log__nomem(char *errmsg, const char *what);

/* log.c: the kind of a file in a log directory: 's' segment, 'i' index,
 * 't' leftover of an interrupted rewrite, 0 not ours; *base its offset. */
int log__classify(const char *name, uint64_t *base);

/* verify.c: @msg without its "segment NAME: " or "index NAME: " prefix. */
const char *log__strip(const char *msg, const char *name);

#endif
