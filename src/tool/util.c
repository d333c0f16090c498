/* Shared helpers of the tally CLI: common options, errors, parsing. */
#include "tool/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct tool_global tool_g = {NULL, 0};

int tool_common_option(const char *cmd, int c, const char *arg)
{
    uint64_t v;

    switch (c) {
    case 'b':
        if (arg[0] == '\0') {
            return tool_usage_error(cmd, "--brokers needs HOST:PORT[,HOST:PORT...]");
        }
        tool_g.brokers = arg;
        return TOOL_EXIT_OK;
    case TOOL_OPT_TIMEOUT:
        if (!tool_parse_u64(arg, &v) || v == 0 || v > INT32_MAX) {
            return tool_usage_error(cmd, "--timeout needs a positive number of milliseconds, not '%s'",
                                    arg);
        }
        tool_g.timeout_ms = (int)v;
        return TOOL_EXIT_OK;
    case TOOL_OPT_TLS_CA:
        tool_g.tls_ca = arg;
        return TOOL_EXIT_OK;
    case TOOL_OPT_TLS_CERT:
        tool_g.tls_cert = arg;
        return TOOL_EXIT_OK;
    case TOOL_OPT_TLS_KEY:
        tool_g.tls_key = arg;
        return TOOL_EXIT_OK;
    case TOOL_OPT_USER:
        tool_g.user = arg;
        return TOOL_EXIT_OK;
    case TOOL_OPT_PASSWORD_FILE:
        tool_g.password_file = arg;
        return TOOL_EXIT_OK;
    case TOOL_OPT_SASL_MECHANISM:
        tool_g.mechanism = arg;
        return TOOL_EXIT_OK;
    default:
        return -1;
    }
}

void tool_getopt_reset(void)
{
    /* GNU getopt: 0 (not 1) also resets its internal state, which a
     * previous parse of a different argv may have left half-way. */
    optind = 0;
    opterr = 0; /* we print our own one-line errors */
}

int tool_bad_option(const char *cmd, char **argv)
{
    /* optopt holds the short option letter, or for a long option missing
     * its value the option's val; argv[optind - 1] is the word at fault
     * except inside a cluster of short options. */
    if (optopt > 0 && optopt < 128) {
        return tool_usage_error(cmd, "option -%c is unknown or needs a value", optopt);
    }
    return tool_usage_error(cmd, "option '%s' is unknown or needs a value", argv[optind - 1]);
}

static void tool_vprint(const char *cmd, const char *fmt, va_list ap)
{
    fprintf(stderr, "tally%s%s: ", cmd != NULL ? " " : "", cmd != NULL ? cmd : "");
    vfprintf(stderr, fmt, ap);
}

int tool_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    va_start(ap, fmt);
    tool_vprint(cmd, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'tally%s%s --help')\n", cmd != NULL ? " " : "", cmd != NULL ? cmd : "");
    return TOOL_EXIT_USAGE;
}

int tool_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    va_start(ap, fmt);
    tool_vprint(cmd, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return TOOL_EXIT_CLUSTER;
}

int tool_cluster_error(tally_client *c, const char *cmd, int rc)
{
    const char *msg = c != NULL ? tally_errmsg(c) : NULL;

    if (msg == NULL || msg[0] == '\0') {
        msg = tally_strerror(rc);
    }
    return tool_error(cmd, "%s", msg);
}

int tool_connect(const char *cmd, tally_client **out)
{
    const char *brokers = tool_g.brokers;
    int rc;

    if (brokers == NULL) {
        brokers = getenv("TALLY_BROKERS");
    }
    if (brokers == NULL || brokers[0] == '\0') {
        brokers = TOOL_DEFAULT_BROKERS;
    }
    rc = tally_client_create(brokers, out);
    if (rc == TALLY_INVAL) {
        return tool_usage_error(cmd, "bad broker list '%s': want HOST:PORT[,HOST:PORT...]", brokers);
    }
    if (rc != 0) {
        return tool_cluster_error(NULL, cmd, rc);
    }
    if (tool_g.timeout_ms > 0) {
        tally_client_set_timeout(*out, tool_g.timeout_ms);
    }
    rc = tool_apply_tls(cmd, *out);
    if (rc == TOOL_EXIT_OK && (rc = tool_read_login(cmd)) == TOOL_EXIT_OK && tool_g.user != NULL &&
        (tally_client_set_auth(*out, tool_g.user, tool_g.password) != 0 ||
         (tool_g.mechanism != NULL &&
          tally_client_set_auth_mechanism(*out, tool_g.mechanism) != 0))) {
        fprintf(stderr, "tally%s%s: %s\n", cmd != NULL ? " " : "", cmd != NULL ? cmd : "",
                tally_errmsg(*out));
        rc = TOOL_EXIT_USAGE;
    }
    if (rc != TOOL_EXIT_OK) {
        tally_client_destroy(*out);
        *out = NULL;
    }
    return rc;
}

bool tool_tls_wanted(void)
{
    if (tool_g.tls_ca == NULL) {
        tool_g.tls_ca = getenv("TALLY_TLS_CA");
    }
    if (tool_g.tls_cert == NULL) {
        tool_g.tls_cert = getenv("TALLY_TLS_CERT");
    }
    if (tool_g.tls_key == NULL) {
        tool_g.tls_key = getenv("TALLY_TLS_KEY");
    }
    return tool_g.tls_ca != NULL && tool_g.tls_ca[0] != '\0';
}

int tool_apply_tls(const char *cmd, tally_client *c)
{
    bool cert = tool_tls_wanted() , has_cert = tool_g.tls_cert != NULL && tool_g.tls_cert[0];
    if (!cert) {
        if (has_cert || (tool_g.tls_key != NULL && tool_g.tls_key[0])) {
            return tool_usage_error(cmd, "--tls-cert/--tls-key need --tls-ca (the cluster's CA)");
        }
        return TOOL_EXIT_OK;
    }
    if (tally_client_set_tls(c, tool_g.tls_ca, tool_g.tls_cert, tool_g.tls_key) != 0) {
        fprintf(stderr, "tally%s%s: %s\n", cmd != NULL ? " " : "", cmd != NULL ? cmd : "",
                tally_errmsg(c));
        return TOOL_EXIT_USAGE;
    }
    return TOOL_EXIT_OK;
}

bool tool_parse_u64(const char *s, uint64_t *out)
{
    unsigned long long v;
    char *end;

    if (s == NULL || s[0] < '0' || s[0] > '9') {
        return false; /* strtoull would accept a sign and spaces */
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

bool tool_parse_i64(const char *s, int64_t *out)
{
    long long v;
    char *end;

    if (s == NULL || s[0] == '\0' || s[0] == ' ' || s[0] == '+') {
        return false;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return false;
    }
    *out = (int64_t)v;
    return true;
}

static const char *const tool_policy_names[] = {
    [TALLY_POLICY_RETAIN] = "retain",
    [TALLY_POLICY_DELETE] = "delete",
    [TALLY_POLICY_COMPACT] = "compact",
    [TALLY_POLICY_COMPACT_DELETE] = "compact,delete",
};
#define TOOL__N_POLICIES (int)(sizeof tool_policy_names / sizeof tool_policy_names[0])

const char *tool_policy_name(int policy)
{
    if (policy < 0 || policy >= TOOL__N_POLICIES) {
        return "unknown";
    }
    return tool_policy_names[policy];
}

int tool_policy_parse(const char *s)
{
    int i;

    for (i = 0; i < TOOL__N_POLICIES; i++) {
        if (strcmp(s, tool_policy_names[i]) == 0) {
            return i;
        }
    }
    /* The other order reads just as naturally; accept it. */
    if (strcmp(s, "delete,compact") == 0) {
        return TALLY_POLICY_COMPACT_DELETE;
    }
    return -1;
}

const char *tool_role_name(int role)
{
    switch (role) {
    case TALLY_ROLE_FOLLOWER:
        return "follower";
    case TALLY_ROLE_CANDIDATE:
        return "candidate";
    case TALLY_ROLE_LEADER:
        return "leader";
    case TALLY_ROLE_UNAVAILABLE:
        return "unavailable";
    default:
        return "unknown";
    }
}

int64_t tool_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void tool_print_quoted(const void *p, size_t n, enum tool_quote style)
{
    const unsigned char *s = p;
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        switch (c) {
        case '"':
            fputs("\\\"", stdout);
            break;
        case '\\':
            fputs("\\\\", stdout);
            break;
        case '\n':
            fputs("\\n", stdout);
            break;
        case '\r':
            fputs("\\r", stdout);
            break;
        case '\t':
            fputs("\\t", stdout);
            break;
        default:
            if (c >= 0x20 && c < 0x7f) {
                putchar(c);
            } else if (style == TOOL_QUOTE_JSON) {
                printf("\\u%04x", c);
            } else {
                printf("\\x%02x", c);
            }
        }
    }
    putchar('"');
}

int64_t tool_now_ms(void)
{
    return tool_now_us() / 1000;
}

int tool_check_stdout(const char *cmd)
{
    if (fflush(stdout) == 0 && !ferror(stdout)) {
        return -1;
    }
    if (errno == EPIPE) {
        return TOOL_EXIT_OK; /* the reader has seen all it wanted */
    }
    return tool_error(cmd, "writing to standard output: %s", strerror(errno));
}

int tool_read_secret(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "re");
    size_t n;
    if (f == NULL) {
        return -1;
    }
    if (fgets(out, (int)cap, f) == NULL) {
        out[0] = '\0';
    }
    fclose(f);
    n = strcspn(out, "\r\n");
    out[n] = '\0';
    return 0;
}

int tool_read_login(const char *cmd)
{
    const char *env;
    if (tool_g.user == NULL) {
        tool_g.user = getenv("TALLY_USER");
    }
    if (tool_g.mechanism == NULL) {
        tool_g.mechanism = getenv("TALLY_SASL_MECHANISM");
    }
    if (tool_g.user == NULL || tool_g.user[0] == '\0') {
        tool_g.user = NULL;
        return TOOL_EXIT_OK;
    }
    if (tool_g.password_file != NULL) {
        if (tool_read_secret(tool_g.password_file, tool_g.password, sizeof tool_g.password) != 0) {
            return tool_usage_error(cmd, "--password-file %s: %s", tool_g.password_file,
                                    strerror(errno));
        }
    } else if ((env = getenv("TALLY_PASSWORD")) != NULL) {
        snprintf(tool_g.password, sizeof tool_g.password, "%s", env);
    } else {
        return tool_usage_error(cmd, "--user %s needs a password: --password-file FILE or "
                                     "$TALLY_PASSWORD (never on the command line)",
                                tool_g.user);
    }
    return TOOL_EXIT_OK;
}
