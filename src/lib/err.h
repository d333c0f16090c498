/* Error codes and error messages shared by every layer. */
#ifndef TALLY_LIB_ERR_H_
#define TALLY_LIB_ERR_H_

#include <stdarg.h>

#include "tally.h"

/* Size of every errmsg buffer passed down the layers. */
#define ERR_MSG_SIZE 512

/* Write a message into @errmsg (may be NULL). Returns nothing. */
void err_printf(char *errmsg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefix the message already in @errmsg with "<what>: ", so each layer adds
 * what it was doing: "open topic orders: segment 42: checksum mismatch". */
void err_wrap(char *errmsg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Fill @errmsg with "<what>: strerror(errnum)" and return TALLY_IOERR, or
 * TALLY_NOSPACE for ENOSPC/EDQUOT, TALLY_NOMEM for ENOMEM. */
int err_os(char *errmsg, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Raised where corruption is detected: logs file:line at debug level and
 * returns TALLY_CORRUPT with the message. */
#define ERR_CORRUPT(errmsg, ...) err_corrupt_at(__FILE__, __LINE__, errmsg, __VA_ARGS__)
int err_corrupt_at(const char *file, int line, char *errmsg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Name of a code, e.g. "TALLY_NOTFOUND" -> "NOTFOUND"; "UNKNOWN" otherwise. */
const char *err_name(int code);

#endif
