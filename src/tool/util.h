/* Shared pieces of the tally CLI: global options, exit codes, error output,
 * number parsing, and the command entry points.
 *
 * Every command is `int cmd_<name>_main(int argc, char **argv)` with
 * argv[0] the command's own name; it returns the process exit status. */
#ifndef TALLY_TOOL_UTIL_H_
#define TALLY_TOOL_UTIL_H_

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tally.h"

/* Exit statuses, part of the user-facing contract. */
#define TOOL_EXIT_OK 0
#define TOOL_EXIT_CLUSTER 1 /* the cluster (or the network) said no */
#define TOOL_EXIT_USAGE 2   /* the command line was wrong */

#define TOOL_DEFAULT_BROKERS "127.0.0.1:7001"

/* Options every command accepts, before or after the command name. */
struct tool_global {
    const char *brokers; /* -b/--brokers, else $TALLY_BROKERS, else default */
    int timeout_ms;      /* --timeout; 0 = the library's default */
    /* TLS (docs/security.md): --tls-ca/--tls-cert/--tls-key, else
     * $TALLY_TLS_CA/$TALLY_TLS_CERT/$TALLY_TLS_KEY; NULL = not given. */
    const char *tls_ca, *tls_cert, *tls_key;
    /* Authentication: --user (else $TALLY_USER); its password from
     * --password-file (else $TALLY_PASSWORD), never from the command line. */
    const char *user, *password_file;
    const char *mechanism;   /* --sasl-mechanism, else $TALLY_SASL_MECHANISM; NULL: SHA-256 */
    char password[256];
};
extern struct tool_global tool_g;

/* getopt_long values of the common options (beyond the ASCII range). */
enum {
    TOOL_OPT_TIMEOUT = 0x100,
    TOOL_OPT_TLS_CA,
    TOOL_OPT_TLS_CERT,
    TOOL_OPT_TLS_KEY,
    TOOL_OPT_USER,
    TOOL_OPT_PASSWORD_FILE,
    TOOL_OPT_SASL_MECHANISM,
    TOOL_OPT__FIRST_FREE = 0x110, /* commands number their own from here */
};

/* Entries for a command's struct option table. */
#define TOOL_COMMON_LONGOPTS                                                   \
    {"brokers", required_argument, NULL, 'b'},                                 \
    {"timeout", required_argument, NULL, TOOL_OPT_TIMEOUT},                    \
    {"tls-ca", required_argument, NULL, TOOL_OPT_TLS_CA},                      \
    {"tls-cert", required_argument, NULL, TOOL_OPT_TLS_CERT},                  \
    {"tls-key", required_argument, NULL, TOOL_OPT_TLS_KEY},                    \
    {"user", required_argument, NULL, TOOL_OPT_USER},                          \
    {"password-file", required_argument, NULL, TOOL_OPT_PASSWORD_FILE},        \
    {"sasl-mechanism", required_argument, NULL, TOOL_OPT_SASL_MECHANISM},      \
    {"help", no_argument, NULL, 'h'}
/* The same for the short option string. */
#define TOOL_COMMON_SHORTOPTS "b:h"

/* Help lines for the common options, appended to every command's help. */
#define TOOL_COMMON_HELP                                                       \
    "Common options:\n"                                                        \
    "  -b, --brokers HOST:PORT[,...]  nodes to contact (default $TALLY_BROKERS,\n" \
    "                                 else " TOOL_DEFAULT_BROKERS ")\n"        \
    "      --timeout MS               per-request timeout in milliseconds\n"   \
    "      --tls-ca FILE              speak TLS; the cluster's CA ($TALLY_TLS_CA)\n" \
    "      --tls-cert FILE --tls-key FILE  client certificate for mutual TLS\n" \
    "                                 ($TALLY_TLS_CERT, $TALLY_TLS_KEY)\n"    \
    "      --user NAME                log in with SCRAM ($TALLY_USER); the password\n" \
    "      --password-file FILE       comes from FILE's first line, else $TALLY_PASSWORD\n" \
    "      --sasl-mechanism M         SCRAM-SHA-256 (default) or SCRAM-SHA-512\n" \
    "  -h, --help                     show this help\n"

/* Handle one common option seen by a command's getopt loop. Returns -1 if
 * @c is not a common option, otherwise an exit status: TOOL_EXIT_OK to
 * continue parsing, or TOOL_EXIT_USAGE after printing the error. -h is not
 * handled here: each command prints its own help. */
int tool_common_option(const char *cmd, int c, const char *arg);

/* Report the option getopt_long just rejected with '?' (unknown, or its
 * value missing) and return TOOL_EXIT_USAGE. */
int tool_bad_option(const char *cmd, char **argv);

/* Reset getopt before a (sub)command parses its own argv. */
void tool_getopt_reset(void);

/* Print "tally CMD: MESSAGE (see 'tally CMD --help')" on one line to
 * stderr and return TOOL_EXIT_USAGE. */
int tool_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Report error @rc of a request by command @cmd, using tally_errmsg()
 * (tally_strerror() when @c is NULL), and return TOOL_EXIT_CLUSTER. */
int tool_cluster_error(tally_client *c, const char *cmd, int rc);

/* The same, for errors found by the tool itself (no client). */
int tool_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Create a client for the global broker list and timeout. On failure prints
 * the reason and returns the exit status to use (2 for a malformed list). */
int tool_connect(const char *cmd, tally_client **out);

/* Fill the TLS paths of tool_g from the environment where no flag gave
 * them; true if TLS is on (a CA was given). */
bool tool_tls_wanted(void);

/* Turn on TLS on @c if tool_tg asks for it. TOOL_EXIT_OK, or the exit
 * status after printing why (a file that does not load: exit 2). */
int tool_apply_tls(const char *cmd, tally_client *c);

/* Read the login of tool_g (user from --user or $TALLY_USER, password as
 * above) into tool_g.password. 0 if no user is given or it was read;
 * otherwise prints why and returns the exit status. */
int tool_read_login(const char *cmd);

/* Read the first line of @path into @out (without its newline). 0 or -1
 * with errno. */
int tool_read_secret(const char *path, char *out, size_t cap);

/* Strict number parsing: the whole string, base 10, no sign for unsigned,
 * no overflow. Return true on success. */
bool tool_parse_u64(const char *s, uint64_t *out);
bool tool_parse_i64(const char *s, int64_t *out);

/* Policy names as the CLI and status --json spell them. */
const char *tool_policy_name(int policy);
/* Returns the enum tally_policy value, or -1 for an unknown name. */
int tool_policy_parse(const char *s);

/* Role names as status prints them. */
const char *tool_role_name(int role);

/* How tool_print_quoted writes a byte outside printable ASCII. */
enum tool_quote {
    TOOL_QUOTE_JSON, /* \u00XX: a valid JSON string (bytes read as Latin-1) */
    TOOL_QUOTE_C,    /* \xXX: every byte can be read back (tally log dump) */
};

/* Print the @n bytes at @p to stdout between double quotes, with '"',
 * '\\', newline, carriage return and tab escaped as in C and JSON, and
 * every other byte outside printable ASCII as @style says. The one string
 * escaper of the CLI (status --json, log dump). */
void tool_print_quoted(const void *p, size_t n, enum tool_quote style);

/* Milliseconds from a monotonic clock. */
int64_t tool_now_ms(void);
/* Microseconds from a monotonic clock. */
int64_t tool_now_us(void);

/* After stdout was written: if writing failed, report it and return an
 * exit status (0 for a closed pipe, which is how `| head` ends us);
 * otherwise return -1. */
int tool_check_stdout(const char *cmd);

/* Command entry points. */
int cmd_topic_main(int argc, char **argv);
int cmd_produce_main(int argc, char **argv);
int cmd_consume_main(int argc, char **argv);
int cmd_status_main(int argc, char **argv);
int cmd_member_main(int argc, char **argv);
int cmd_bench_main(int argc, char **argv);
int cmd_group_main(int argc, char **argv);
int cmd_stream_main(int argc, char **argv); /* streams (cmd_stream.c) */
int cmd_user_main(int argc, char **argv);
int cmd_acl_main(int argc, char **argv);

#endif
