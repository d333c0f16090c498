/* Structured log lines to stderr: "TIME LEVEL COMPONENT: message". */
#ifndef TALLY_LIB_LOGGER_H_
#define TALLY_LIB_LOGGER_H_

enum logger_level { LOGGER_DEBUG = 0, LOGGER_INFO, LOGGER_WARN, LOGGER_ERROR, LOGGER_OFF };

/* Lines below @level are dropped. Default LOGGER_INFO; the environment
 * variable TALLY_LOG_LEVEL (debug|info|warn|error|off) overrides it at the
 * first call. */
void logger_set_level(int level);
int logger_level(void);

/* Parse "debug", "info", "warn", "error", "off"; -1 if unknown. */
int logger_parse_level(const char *s);

void logger_write(int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define TLOG_DEBUG(comp, ...) logger_write(LOGGER_DEBUG, comp, __VA_ARGS__)
#define TLOG_INFO(comp, ...) logger_write(LOGGER_INFO, comp, __VA_ARGS__)
#define TLOG_WARN(comp, ...) logger_write(LOGGER_WARN, comp, __VA_ARGS__)
#define TLOG_ERROR(comp, ...) logger_write(LOGGER_ERROR, comp, __VA_ARGS__)

#endif
