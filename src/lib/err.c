/* Error codes and error messages shared by every layer. */
#include "lib/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/logger.h"

const char *tally_strerror(int code)
{
    switch (code) {
    case TALLY_OK:
        return "success";
#define ERR__TEXT(name, value, text) \
    case name:                       \
        return text;
        TALLY_ERRORS(ERR__TEXT)
#undef ERR__TEXT
    }
    return "unknown error";
}

const char *err_name(int code)
{
    switch (code) {
    case TALLY_OK:
        return "OK";
#define ERR__NAME(name, value, text) \
    case name:                       \
        return #name + 6;
        TALLY_ERRORS(ERR__NAME)
#undef ERR__NAME
    }
    return "UNKNOWN";
}

void err_printf(char *errmsg, const char *fmt, ...)
{
    va_list ap;
    if (errmsg == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(errmsg, ERR_MSG_SIZE, fmt, ap);
    va_end(ap);
}

void err_wrap(char *errmsg, const char *fmt, ...)
{
    char prefix[ERR_MSG_SIZE];
    char old[ERR_MSG_SIZE];
    va_list ap;
    if (errmsg == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    snprintf(old, sizeof old, "%s", errmsg);
    snprintf(errmsg, ERR_MSG_SIZE, "%s: %s", prefix, old);
}

int err_os(char *errmsg, int errnum, const char *fmt, ...)
{
    char what[ERR_MSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    err_printf(errmsg, "%s: %s", what, strerror(errnum));
    switch (errnum) {
    case ENOSPC:
    case EDQUOT:
        return TALLY_NOSPACE;
    case ENOMEM:
        return TALLY_NOMEM;
    default:
        return TALLY_IOERR;
    }
}

int err_corrupt_at(const char *file, int line, char *errmsg, const char *fmt, ...)
{
    char what[ERR_MSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    err_printf(errmsg, "%s", what);
    TLOG_DEBUG("corrupt", "%s (detected at %s:%d)", what, file, line);
    return TALLY_CORRUPT;
}
