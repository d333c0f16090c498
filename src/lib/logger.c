/* Structured log lines to stderr: "TIME LEVEL COMPONENT: message".
 *
 * One line per call, written with a single write(2) so lines from several
 * threads never interleave. */
#include "lib/logger.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int logger__level = -1;

int logger_parse_level(const char *s)
{
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++) {
        if (strcmp(s, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

void logger_set_level(int level)
{
    logger__level = level;
}

int logger_level(void)
{
    if (logger__level < 0) {
        const char *env = getenv("TALLY_LOG_LEVEL");
        int l = env != NULL ? logger_parse_level(env) : -1;
        logger__level = l >= 0 ? l : LOGGER_INFO;
    }
    return logger__level;
}

void logger_write(int level, const char *component, const char *fmt, ...)
{
    static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n;
    va_list ap;

    if (level < logger_level() || level >= LOGGER_OFF) {
        return;
    }
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03dZ %-5s %s: ",
                          (int)(tv.tv_usec / 1000), names[level], component);
    va_start(ap, fmt);
    if (n < sizeof line) {
        int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
        n += m > 0 ? (size_t)m : 0;
    }
    va_end(ap);
    if (n > sizeof line - 2) {
        n = sizeof line - 2;
    }
    line[n++] = '\n';
    ssize_t rv = write(STDERR_FILENO, line, n);
    (void)rv;
}
