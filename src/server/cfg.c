/* tallyd's configuration: defaults, then the INI file named by --config,
 * then the command-line flags, then validation (docs/configuration.md). */
#include "server/cfg.h"

#include "log/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/batch.h"
#include "lib/err.h"
#include "lib/fs.h"
#include "lib/logger.h"

#ifndef TALLY_VERSION_STRING
#define TALLY_VERSION_STRING "unknown"
#endif

#define CFG__KIB (UINT64_C(1) << 10)
#define CFG__MIB (UINT64_C(1) << 20)
#define CFG__GIB (UINT64_C(1) << 30)

/* A tunable: a numeric field settable from the file and with --set. The
 * bounds live here, next to the name, so the file, --set and the docs
 * describe one table. */
enum cfg__kind { CFG__UINT, CFG__U32, CFG__U64 };

struct cfg__tunable {
    const char *name;
    size_t offset;
    enum cfg__kind kind;
    bool is_size; /* accepts K/M/G suffixes */
    uint64_t min;
    uint64_t max;
};

#define CFG__T(field, kind, is_size, min, max) \
    {#field, offsetof(struct cfg, field), kind, is_size, min, max}

static const struct cfg__tunable cfg__tunables[] = {
    CFG__T(election_timeout_ms, CFG__UINT, false, 10, 3600000),
    CFG__T(heartbeat_timeout_ms, CFG__UINT, false, 1, 3600000),
    CFG__T(raft_segment_bytes, CFG__U64, true, 64 * CFG__KIB, CFG__GIB),
    CFG__T(snapshot_threshold, CFG__UINT, false, 0, UINT_MAX),
    CFG__T(raft_log_budget_bytes, CFG__U64, true, CFG__MIB, 64 * CFG__GIB),
    CFG__T(snapshot_trailing, CFG__UINT, false, 1, UINT_MAX),
    CFG__T(segment_bytes, CFG__U64, true, LOG_SEGMENT_BYTES_MIN, LOG_SEGMENT_BYTES_MAX),
    CFG__T(max_batch_bytes, CFG__U32, true, CFG__KIB, BATCH_MAX_SIZE),
    CFG__T(group_commit_bytes, CFG__UINT, true, CFG__KIB, 64 * CFG__MIB),
    CFG__T(max_inflight_entries, CFG__UINT, false, 1, 1024),
    CFG__T(max_connections, CFG__UINT, false, 1, 1000000),
    CFG__T(segment_fd_cache, CFG__UINT, false, 16, 1000000),
    CFG__T(disk_reserve_bytes, CFG__U64, true, 0, 1024 * CFG__GIB),
    CFG__T(retention_interval_ms, CFG__UINT, false, 10, 86400000),
    CFG__T(compaction_interval_ms, CFG__UINT, false, 0, 86400000),
    CFG__T(min_compaction_lag_ms, CFG__U64, false, 0, UINT64_C(1) << 50),
    CFG__T(delete_retention_ms, CFG__U64, false, 0, UINT64_C(1) << 50),
    CFG__T(compaction_buffer_bytes, CFG__U64, true, CFG__MIB, 64 * CFG__GIB),
    CFG__T(compaction_nice, CFG__UINT, false, 0, 19),
    CFG__T(compaction_io_rate, CFG__U64, true, 0, 64 * CFG__GIB),
    CFG__T(max_clock_step_ms, CFG__U64, false, 1000, 86400000),
    CFG__T(clock_warn_ms, CFG__U64, false, 1, 86400000),
    CFG__T(metrics_topic_series, CFG__UINT, false, 0, 1000000),
    CFG__T(kafka_max_groups, CFG__UINT, false, 1, 1000000),
    CFG__T(kafka_group_max_members, CFG__UINT, false, 1, 100000),
    CFG__T(kafka_group_min_session_ms, CFG__UINT, false, 1, 3600000),
    CFG__T(kafka_group_max_session_ms, CFG__UINT, false, 1, 3600000),
    CFG__T(kafka_group_initial_delay_ms, CFG__UINT, false, 0, 300000),
};

#define CFG__N_TUNABLES (sizeof cfg__tunables / sizeof cfg__tunables[0])

/* What the loader remembers across the file and the flags. */
struct cfg__ctx {
    bool from_flags;      /* setting flags now, not the file */
    bool flag_peers_seen; /* the first flag peer replaces the file's list */
};

static void cfg__defaults(struct cfg *c)
{
    memset(c, 0, sizeof *c);
    /* logger_level() honours TALLY_LOG_LEVEL, so the environment keeps
     * working for tallyd unless the file or a flag says otherwise. */
    c->log_level = logger_level();
    /* Failover (SIGKILL of the leader -> next acknowledged write) takes
     * about 1.7-2x the election timeout with raft's pre-vote
     * (docs/configuration.md, Failover): 400 ms keeps it under a second. */
    c->election_timeout_ms = 400;
    c->heartbeat_timeout_ms = 50;
    c->raft_segment_bytes = 64 * CFG__MIB;
    c->snapshot_threshold = 0; /* from raft_log_budget_bytes */
    c->snapshot_trailing = 4096;
    c->raft_log_budget_bytes = 256 * CFG__MIB;
    c->segment_bytes = 64 * CFG__MIB;
    c->max_batch_bytes = (uint32_t)CFG__MIB;
    c->group_commit_bytes = (unsigned)CFG__MIB;
    c->max_inflight_entries = 4;
    c->max_connections = 1024;
    c->segment_fd_cache = 1024;

    c->retention_interval_ms = 30000;
    c->compaction_interval_ms = 15000;
    c->delete_retention_ms = 86400000;
    c->compaction_buffer_bytes = 64 * CFG__MIB;
    c->compaction_nice = 19;
    c->compaction_io_rate = 64 * CFG__MIB;
    c->max_clock_step_ms = 60000;
    c->clock_warn_ms = 1000;
    c->metrics_topic_series = 1000;
    c->kafka_max_groups = 10000;
    c->kafka_group_max_members = 1000;
    c->kafka_group_min_session_ms = 1000;
    c->kafka_group_max_session_ms = 1800000;
    c->kafka_group_initial_delay_ms = 1000;
}

/* Put "<prefix>" in front of the message already in @errmsg. Unlike
 * err_wrap it adds no separator, so callers choose "FILE:LINE: " or
 * "--id X: " themselves. */
static void cfg__prefix(char *errmsg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cfg__prefix(char *errmsg, const char *fmt, ...)
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
    snprintf(errmsg, ERR_MSG_SIZE, "%s%s", prefix, old);
}

/* Decimal digits only: strtoull alone would take "-1", " 7" and "0x10". */
static int cfg__parse_u64(const char *s, uint64_t *out, const char **end)
{
    uint64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9') {
        return -1;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    *out = v;
    if (end != NULL) {
        *end = p;
    } else if (*p != '\0') {
        return -1;
    }
    return 0;
}

/* "64M", "512k", "1G" (binary multiples) or a plain number of bytes. */
static int cfg__parse_size(const char *s, uint64_t *out)
{
    const char *end;
    uint64_t v;
    uint64_t mult = 1;
    if (cfg__parse_u64(s, &v, &end) != 0) {
        return -1;
    }
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        mult = CFG__KIB;
        break;
    case 'm':
    case 'M':
        mult = CFG__MIB;
        break;
    case 'g':
    case 'G':
        mult = CFG__GIB;
        break;
    default:
        return -1;
    }
    if (*end != '\0' && end[1] != '\0') {
        return -1;
    }
    if (v > UINT64_MAX / mult) {
        return -1;
    }
    *out = v * mult;
    return 0;
}

int cfg_parse_addr(const char *s, char *ip, unsigned ip_cap, unsigned *port)
{
    const char *colon;
    char host[INET_ADDRSTRLEN];
    struct in_addr a;
    uint64_t p;
    size_t n;
    if (s == NULL || (colon = strrchr(s, ':')) == NULL) {
        return -1;
    }
    n = (size_t)(colon - s);
    if (n == 0 || n >= sizeof host) {
        return -1;
    }
    memcpy(host, s, n);
    host[n] = '\0';
    /* inet_pton(AF_INET) takes only the strict dotted quad: no hostnames,
     * no "127.1", no octal. That is what raft's uv transport accepts. */
    if (inet_pton(AF_INET, host, &a) != 1) {
        return -1;
    }
    if (cfg__parse_u64(colon + 1, &p, NULL) != 0 || p == 0 || p > 65535) {
        return -1;
    }
    if (ip != NULL) {
        if (ip_cap <= n) {
            return -1;
        }
        memcpy(ip, host, n + 1);
    }
    if (port != NULL) {
        *port = (unsigned)p;
    }
    return 0;
}

const struct cfg_peer *cfg_peer_by_id(const struct cfg *c, uint64_t id)
{
    for (unsigned i = 0; i < c->n_peers; i++) {
        if (c->peers[i].id == id) {
            return &c->peers[i];
        }
    }
    return NULL;
}

static int cfg__set_addr(char *dst, const char *value, char *errmsg)
{
    if (cfg_parse_addr(value, NULL, 0, NULL) != 0) {
        err_printf(errmsg, "not an IPv4 address with port (A.B.C.D:PORT, port 1-65535)");
        return TALLY_INVAL;
    }
    snprintf(dst, CFG_ADDR_MAX, "%s", value);
    return 0;
}

/* "HOST:PORT" where HOST may be a name (an address Kafka clients are told
 * to use, perhaps through NAT): a non-empty host and a port 1-65535. */
static int cfg__set_host_port(char *dst, const char *value, char *errmsg)
{
    const char *colon = strrchr(value, ':');
    char *end;
    unsigned long port = colon != NULL ? strtoul(colon + 1, &end, 10) : 0;
    if (colon == NULL || colon == value || colon[1] == '\0' || *end != '\0' || port == 0 ||
        port > 65535 || strlen(value) >= CFG_ADDR_MAX) {
        err_printf(errmsg, "expected HOST:PORT (port 1-65535), got '%s'", value);
        return TALLY_INVAL;
    }
    snprintf(dst, CFG_ADDR_MAX, "%s", value);
    return 0;
}

/* kafka_peer: "ID=HOST:PORT", the Kafka address member ID advertises. */
static int cfg__add_kafka_peer(struct cfg *c, const char *value, char *errmsg)
{
    char id[32];
    const char *eq = strchr(value, '=');
    struct cfg_kafka_peer p;
    memset(&p, 0, sizeof p);
    if (eq == NULL || (size_t)(eq - value) >= sizeof id) {
        err_printf(errmsg, "expected ID=HOST:PORT");
        return TALLY_INVAL;
    }
    memcpy(id, value, (size_t)(eq - value));
    id[eq - value] = '\0';
    if (cfg__parse_u64(id, &p.id, NULL) != 0 || p.id == 0) {
        err_printf(errmsg, "peer id '%s' is not a positive integer", id);
        return TALLY_INVAL;
    }
    if (cfg__set_host_port(p.addr, eq + 1, errmsg) != 0) {
        return TALLY_INVAL;
    }
    for (unsigned i = 0; i < c->n_kafka_peers; i++) {
        if (c->kafka_peers[i].id == p.id) {
            c->kafka_peers[i] = p; /* a later setting replaces an earlier one */
            return 0;
        }
    }
    if (c->n_kafka_peers == CFG_MAX_PEERS) {
        err_printf(errmsg, "more than %d Kafka peers", CFG_MAX_PEERS);
        return TALLY_INVAL;
    }
    c->kafka_peers[c->n_kafka_peers++] = p;
    return 0;
}

/* "ID=CLIENT_HOST:PORT/RAFT_HOST:PORT" */
static int cfg__add_peer(struct cfg *c, const char *value, char *errmsg)
{
    char buf[2 * CFG_ADDR_MAX + 32];
    struct cfg_peer p;
    char *eq;
    char *slash;
    if (strlen(value) >= sizeof buf) {
        err_printf(errmsg, "too long");
        return TALLY_INVAL;
    }
    snprintf(buf, sizeof buf, "%s", value);
    eq = strchr(buf, '=');
    if (eq == NULL) {
        err_printf(errmsg, "expected ID=CLIENT_HOST:PORT/RAFT_HOST:PORT");
        return TALLY_INVAL;
    }
    *eq = '\0';
    memset(&p, 0, sizeof p);
    if (cfg__parse_u64(buf, &p.id, NULL) != 0 || p.id == 0) {
        err_printf(errmsg, "peer id '%s' is not a positive integer", buf);
        return TALLY_INVAL;
    }
    slash = strchr(eq + 1, '/');
    if (slash == NULL) {
        err_printf(errmsg, "missing /RAFT_HOST:PORT");
        return TALLY_INVAL;
    }
    *slash = '\0';
    if (cfg_parse_addr(eq + 1, NULL, 0, NULL) != 0) {
        err_printf(errmsg, "client address '%s' is not A.B.C.D:PORT", eq + 1);
        return TALLY_INVAL;
    }
    if (cfg_parse_addr(slash + 1, NULL, 0, NULL) != 0) {
        err_printf(errmsg, "raft address '%s' is not A.B.C.D:PORT", slash + 1);
        return TALLY_INVAL;
    }
    if (c->n_peers >= CFG_MAX_PEERS) {
        err_printf(errmsg, "too many peers (at most %d)", CFG_MAX_PEERS);
        return TALLY_INVAL;
    }
    snprintf(p.client_addr, sizeof p.client_addr, "%s", eq + 1);
    snprintf(p.raft_addr, sizeof p.raft_addr, "%s", slash + 1);
    c->peers[c->n_peers++] = p;
    return 0;
}

static int cfg__parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"true", "yes", "on", "1"};
    static const char *no[] = {"false", "no", "off", "0"};
    for (unsigned i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static int cfg__set_tunable(struct cfg *c, const struct cfg__tunable *t, const char *value,
                            char *errmsg)
{
    uint64_t v;
    char *field = (char *)c + t->offset;
    int rv = t->is_size ? cfg__parse_size(value, &v) : cfg__parse_u64(value, &v, NULL);
    if (rv != 0) {
        err_printf(errmsg, t->is_size ? "not a size (a number of bytes, or with K, M or G)"
                                      : "not a non-negative integer");
        return TALLY_INVAL;
    }
    if (v < t->min || v > t->max) {
        err_printf(errmsg, "out of range %llu..%llu", (unsigned long long)t->min,
                   (unsigned long long)t->max);
        return TALLY_INVAL;
    }
    switch (t->kind) {
    case CFG__UINT: {
        unsigned u = (unsigned)v;
        memcpy(field, &u, sizeof u);
        break;
    }
    case CFG__U32: {
        uint32_t u = (uint32_t)v;
        memcpy(field, &u, sizeof u);
        break;
    }
    case CFG__U64:
        memcpy(field, &v, sizeof v);
        break;
    }
    return 0;
}

/* Set one config key (file syntax: "log_level", "peer", ...). On error fills
 * @errmsg with the problem only and returns TALLY_INVAL, or TALLY_NOTFOUND
 * for an unknown key; the caller says where the setting came from. */
static int cfg__set(struct cfg *c, struct cfg__ctx *x, const char *key_in, const char *value,
                    char *errmsg)
{
    char key[64];
    size_t i;
    if (strlen(key_in) >= sizeof key) {
        err_printf(errmsg, "unknown key '%.60s...'", key_in);
        return TALLY_NOTFOUND;
    }
    /* "log-level" and "log_level" both work, like the flag. */
    for (i = 0; key_in[i] != '\0'; i++) {
        key[i] = key_in[i] == '-' ? '_' : key_in[i];
    }
    key[i] = '\0';

    if (strcmp(key, "id") == 0) {
        if (cfg__parse_u64(value, &c->id, NULL) != 0 || c->id == 0) {
            c->id = 0;
            err_printf(errmsg, "not a positive integer");
            return TALLY_INVAL;
        }
        return 0;
    }
    if (strcmp(key, "data") == 0) {
        if (value[0] == '\0') {
            err_printf(errmsg, "empty path");
            return TALLY_INVAL;
        }
        if (strlen(value) >= CFG_PATH_MAX) {
            err_printf(errmsg, "path too long");
            return TALLY_INVAL;
        }
        snprintf(c->data_dir, sizeof c->data_dir, "%s", value);
        return 0;
    }
    if (strcmp(key, "listen") == 0) {
        return cfg__set_addr(c->listen_addr, value, errmsg);
    }
    if (strcmp(key, "raft") == 0) {
        return cfg__set_addr(c->raft_addr, value, errmsg);
    }
    if (strcmp(key, "metrics") == 0) {
        if (value[0] == '\0') { /* "metrics =" turns it off again */
            c->metrics_addr[0] = '\0';
            return 0;
        }
        return cfg__set_addr(c->metrics_addr, value, errmsg);
    }
    if (strcmp(key, "kafka") == 0) {
        if (value[0] == '\0') {
            c->kafka_addr[0] = '\0';
            return 0;
        }
        return cfg__set_addr(c->kafka_addr, value, errmsg);
    }
    if (strcmp(key, "kafka_advertise") == 0) {
        if (value[0] == '\0') {
            c->kafka_advertise[0] = '\0';
            return 0;
        }
        return cfg__set_host_port(c->kafka_advertise, value, errmsg);
    }
    if (strcmp(key, "kafka_peer") == 0) {
        return cfg__add_kafka_peer(c, value, errmsg);
    }
    if (strcmp(key, "peer") == 0) {
        if (x->from_flags && !x->flag_peers_seen) {
            /* The command line names the whole membership, so it replaces
             * the file's list rather than adding to it. */
            x->flag_peers_seen = true;
            c->n_peers = 0;
        }
        return cfg__add_peer(c, value, errmsg);
    }
    if (strcmp(key, "kafka_auto_create_topics") == 0) {
        if (cfg__parse_bool(value, &c->kafka_auto_create_topics) != 0) {
            err_printf(errmsg, "expected true or false");
            return TALLY_INVAL;
        }
        return 0;
    }
    if (strcmp(key, "bootstrap") == 0) {
        if (cfg__parse_bool(value, &c->bootstrap) != 0) {
            err_printf(errmsg, "expected true or false");
            return TALLY_INVAL;
        }
        return 0;
    }
    /* TLS keys (docs/security.md). */
    if (strcmp(key, "tls_cert") == 0 || strcmp(key, "tls_key") == 0 ||
        strcmp(key, "tls_ca") == 0) {
        char *dst = key[4] == 'c' && key[5] == 'e' ? c->tls_cert
                    : key[4] == 'k'                ? c->tls_key
                                                   : c->tls_ca;
        if (strlen(value) >= CFG_PATH_MAX) {
            err_printf(errmsg, "path too long");
            return TALLY_INVAL;
        }
        snprintf(dst, CFG_PATH_MAX, "%s", value);
        return 0;
    }
    if (strcmp(key, "tls_min_version") == 0) {
        if (strcmp(value, "1.3") != 0 && strcmp(value, "1.2") != 0) {
            err_printf(errmsg, "expected 1.3 or 1.2");
            return TALLY_INVAL;
        }
        c->tls_allow_12 = strcmp(value, "1.2") == 0;
        return 0;
    }
    if (strcmp(key, "tls_client_auth") == 0) {
        if (strcmp(value, "optional") != 0 && strcmp(value, "required") != 0) {
            err_printf(errmsg, "expected optional or required");
            return TALLY_INVAL;
        }
        c->tls_client_cert_required = strcmp(value, "required") == 0;
        return 0;
    }
    if (strcmp(key, "auth") == 0) {
        if (strcmp(value, "none") != 0 && strcmp(value, "required") != 0) {
            err_printf(errmsg, "expected none or required");
            return TALLY_INVAL;
        }
        c->auth_required = strcmp(value, "required") == 0;
        return 0;
    }
    if (strcmp(key, "authorize") == 0) {
        if (strcmp(value, "none") != 0 && strcmp(value, "acl") != 0) {
            err_printf(errmsg, "expected none or acl");
            return TALLY_INVAL;
        }
        c->authorize_acl = strcmp(value, "acl") == 0;
        return 0;
    }
    if (strcmp(key, "super_users") == 0) {
        if (strlen(value) >= sizeof c->super_users) {
            err_printf(errmsg, "too long");
            return TALLY_INVAL;
        }
        snprintf(c->super_users, sizeof c->super_users, "%s", value);
        return 0;
    }
    if (strcmp(key, "metrics_tls") == 0) {
        if (cfg__parse_bool(value, &c->metrics_tls) != 0) {
            err_printf(errmsg, "expected true or false");
            return TALLY_INVAL;
        }
        return 0;
    }
    if (strcmp(key, "insecure") == 0) {
        if (cfg__parse_bool(value, &c->insecure) != 0) {
            err_printf(errmsg, "expected true or false");
            return TALLY_INVAL;
        }
        return 0;
    }
    if (strcmp(key, "log_level") == 0) {
        int l = logger_parse_level(value);
        if (l < 0) {
            err_printf(errmsg, "expected debug, info, warn, error or off");
            return TALLY_INVAL;
        }
        c->log_level = l;
        return 0;
    }
    for (i = 0; i < CFG__N_TUNABLES; i++) {
        if (strcmp(key, cfg__tunables[i].name) == 0) {
            return cfg__set_tunable(c, &cfg__tunables[i], value, errmsg);
        }
    }
    err_printf(errmsg, "unknown key '%s'", key_in);
    return TALLY_NOTFOUND;
}

static char *cfg__trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n')) {
        *--e = '\0';
    }
    return s;
}

/* One "key = value" line (already trimmed, not a comment or section). */
static int cfg__file_line(struct cfg *c, struct cfg__ctx *x, char *line, const char *path,
                          unsigned lineno, char *errmsg)
{
    char *eq = strchr(line, '=');
    char *key;
    char *value;
    size_t n;
    int rv;
    if (eq == NULL) {
        err_printf(errmsg, "%s:%u: expected 'key = value', got '%.80s'", path, lineno, line);
        return TALLY_INVAL;
    }
    *eq = '\0';
    key = cfg__trim(line);
    value = cfg__trim(eq + 1);
    if (key[0] == '\0') {
        err_printf(errmsg, "%s:%u: missing key before '='", path, lineno);
        return TALLY_INVAL;
    }
    /* A comment may follow a value after whitespace: "id = 1   # node one".
     * Requiring the whitespace keeps '#' usable inside paths. */
    for (char *p = value; *p != '\0'; p++) {
        if ((*p == '#' || *p == ';') && p > value && (p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            value = cfg__trim(value);
            break;
        }
    }
    n = strlen(value);
    if (n >= 2 && value[0] == '"' && value[n - 1] == '"') {
        value[n - 1] = '\0';
        value++;
    }
    rv = cfg__set(c, x, key, value, errmsg);
    if (rv == TALLY_NOTFOUND) {
        cfg__prefix(errmsg, "%s:%u: ", path, lineno);
        return TALLY_INVAL;
    }
    if (rv != 0) {
        cfg__prefix(errmsg, "%s:%u: %s = %s: ", path, lineno, key, value);
        return TALLY_INVAL;
    }
    return 0;
}

static int cfg__read_file(struct cfg *c, struct cfg__ctx *x, const char *path, char *errmsg)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    int rv = 0;
    if (f == NULL) {
        err_printf(errmsg, "--config %s: %s", path, strerror(errno));
        return TALLY_INVAL;
    }
    while (getline(&buf, &cap, f) != -1) {
        char *line = cfg__trim(buf);
        lineno++;
        if (line[0] == '\0' || line[0] == '#' || line[0] == ';') {
            continue;
        }
        if (line[0] == '[') {
            char *close = strchr(line, ']');
            char *name;
            if (close == NULL || *cfg__trim(close + 1) != '\0') {
                err_printf(errmsg, "%s:%u: malformed section header '%.80s'", path, lineno, line);
                rv = TALLY_INVAL;
                break;
            }
            *close = '\0';
            name = cfg__trim(line + 1);
            /* One program, one section: anything else is most likely a
             * file meant for another tool. */
            if (strcmp(name, "tallyd") != 0) {
                err_printf(errmsg, "%s:%u: unknown section [%.60s] (only [tallyd])", path,
                           lineno, name);
                rv = TALLY_INVAL;
                break;
            }
            continue;
        }
        rv = cfg__file_line(c, x, line, path, lineno, errmsg);
        if (rv != 0) {
            break;
        }
    }
    if (rv == 0 && ferror(f)) {
        err_printf(errmsg, "--config %s: read error", path);
        rv = TALLY_INVAL;
    }
    free(buf);
    fclose(f);
    return rv;
}

/* mkdir -p, then prove the directory takes a new file: access(2) says yes
 * to root on a read-only mount, a real create does not. */
static int cfg__prepare_data_dir(const char *dir, char *errmsg)
{
    char path[CFG_PATH_MAX], why[ERR_MSG_SIZE];
    struct stat st;
    size_t n;
    snprintf(path, sizeof path, "%s", dir);
    n = strlen(path);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0') {
            continue;
        }
        if (path[i - 1] == '/') {
            continue; /* "a//b" or a trailing slash */
        }
        path[i] = '\0';
        if (fs_mkdir(path, NULL, why) != 0) {
            err_printf(errmsg, "data dir %s: cannot %s", dir, why); /* "create directory P: ..." */
            return TALLY_INVAL;
        }
        if (i < n) {
            path[i] = '/';
        }
    }
    if (stat(dir, &st) != 0) {
        err_printf(errmsg, "data dir %s: %s", dir, strerror(errno));
        return TALLY_INVAL;
    }
    if (!S_ISDIR(st.st_mode)) {
        err_printf(errmsg, "data dir %s: not a directory", dir);
        return TALLY_INVAL;
    }
    if (fs_check_writable(dir, why) != 0) {
        err_printf(errmsg, "data dir %s: not writable: %s", dir, why);
        return TALLY_INVAL;
    }
    return 0;
}

/* True if the host part of "A.B.C.D:PORT" is a loopback address. */
static bool cfg__loopback(const char *addr)
{
    return strncmp(addr, "127.", 4) == 0;
}

/* TLS settings hang together, and plaintext stays on loopback unless the
 * operator says --insecure (docs/security.md, Secure defaults). */
static int cfg__validate_tls(const struct cfg *c, char *errmsg)
{
    bool cert = c->tls_cert[0] != '\0', key = c->tls_key[0] != '\0', ca = c->tls_ca[0] != '\0';
    if (cert != key) {
        err_printf(errmsg, "%s needs %s", cert ? "--tls-cert" : "--tls-key",
                   cert ? "--tls-key" : "--tls-cert");
        return TALLY_INVAL;
    }
    if (cert && !ca) {
        err_printf(errmsg, "--tls-cert needs --tls-ca: the CA that signed every node's "
                           "certificate (the Raft links use mutual TLS)");
        return TALLY_INVAL;
    }
    if (ca && !cert) {
        err_printf(errmsg, "--tls-ca needs --tls-cert and --tls-key");
        return TALLY_INVAL;
    }
    if (c->auth_required && !cert) {
        err_printf(errmsg, "auth = required needs TLS (--tls-cert, --tls-key, --tls-ca): "
                           "credentials are not sent in plaintext");
        return TALLY_INVAL;
    }
    if (c->authorize_acl && !c->auth_required) {
        err_printf(errmsg, "authorize = acl needs auth = required: ACLs name authenticated "
                           "principals");
        return TALLY_INVAL;
    }
    if (c->metrics_tls && !cert) {
        err_printf(errmsg, "metrics_tls needs --tls-cert, --tls-key and --tls-ca");
        return TALLY_INVAL;
    }
    if (!c->insecure) {
        /* Each listener in plaintext must be on loopback: the client,
         * Raft and Kafka ports are plaintext without a certificate, the
         * metrics port unless metrics_tls. */
        bool metrics_plain = c->metrics_addr[0] != '\0' && !c->metrics_tls;
        const char *open = !cert && !cfg__loopback(c->listen_addr)  ? c->listen_addr
                           : !cert && !cfg__loopback(c->raft_addr) ? c->raft_addr
                           : metrics_plain && !cfg__loopback(c->metrics_addr)
                               ? c->metrics_addr
                           : !cert && c->kafka_addr[0] != '\0' && !cfg__loopback(c->kafka_addr)
                               ? c->kafka_addr
                               : NULL;
        if (open == c->metrics_addr && open != NULL && cert) {
            err_printf(errmsg, "--metrics %s is not a loopback address and serves plain HTTP: "
                               "set metrics_tls = true for HTTPS, or give --insecure",
                       open);
            return TALLY_INVAL;
        }
        if (open != NULL) {
            err_printf(errmsg, "%s is not a loopback address and TLS is off: give --tls-cert, "
                               "--tls-key and --tls-ca (deploy/make-certs.sh makes them), or "
                               "--insecure to serve plaintext on the network",
                       open);
            return TALLY_INVAL;
        }
    }
    return 0;
}

static int cfg__validate(struct cfg *c, char *errmsg)
{
    const struct cfg_peer *self;
    int rv;
    if (c->id == 0) {
        err_printf(errmsg, "missing required --id N");
        return TALLY_INVAL;
    }
    if (c->data_dir[0] == '\0') {
        err_printf(errmsg, "missing required --data DIR");
        return TALLY_INVAL;
    }
    if (c->listen_addr[0] == '\0') {
        err_printf(errmsg, "missing required --listen HOST:PORT");
        return TALLY_INVAL;
    }
    if (c->raft_addr[0] == '\0') {
        err_printf(errmsg, "missing required --raft HOST:PORT");
        return TALLY_INVAL;
    }
    if (c->n_peers == 0) {
        err_printf(errmsg, "missing required --peer: list every member, this node included, "
                           "as --peer ID=CLIENT_HOST:PORT/RAFT_HOST:PORT");
        return TALLY_INVAL;
    }
    for (unsigned i = 0; i < c->n_peers; i++) {
        const struct cfg_peer *p = &c->peers[i];
        if (strcmp(p->client_addr, p->raft_addr) == 0) {
            err_printf(errmsg, "peer %llu: client and raft address are both %s",
                       (unsigned long long)p->id, p->client_addr);
            return TALLY_INVAL;
        }
        for (unsigned j = 0; j < i; j++) {
            const struct cfg_peer *q = &c->peers[j];
            const char *clash = NULL;
            if (p->id == q->id) {
                err_printf(errmsg, "duplicate peer id %llu", (unsigned long long)p->id);
                return TALLY_INVAL;
            }
            if (strcmp(p->client_addr, q->client_addr) == 0 ||
                strcmp(p->client_addr, q->raft_addr) == 0) {
                clash = p->client_addr;
            } else if (strcmp(p->raft_addr, q->client_addr) == 0 ||
                       strcmp(p->raft_addr, q->raft_addr) == 0) {
                clash = p->raft_addr;
            }
            if (clash != NULL) {
                err_printf(errmsg, "duplicate peer address %s (peers %llu and %llu)", clash,
                           (unsigned long long)q->id, (unsigned long long)p->id);
                return TALLY_INVAL;
            }
        }
    }
    self = cfg_peer_by_id(c, c->id);
    if (self == NULL) {
        err_printf(errmsg, "--id %llu is not in the --peer list", (unsigned long long)c->id);
        return TALLY_INVAL;
    }
    if (strcmp(self->client_addr, c->listen_addr) != 0) {
        err_printf(errmsg, "--listen %s does not match --peer %llu's client address %s",
                   c->listen_addr, (unsigned long long)c->id, self->client_addr);
        return TALLY_INVAL;
    }
    if (strcmp(self->raft_addr, c->raft_addr) != 0) {
        err_printf(errmsg, "--raft %s does not match --peer %llu's raft address %s", c->raft_addr,
                   (unsigned long long)c->id, self->raft_addr);
        return TALLY_INVAL;
    }
    if (c->kafka_addr[0] != '\0' &&
        (strcmp(c->kafka_addr, c->listen_addr) == 0 || strcmp(c->kafka_addr, c->raft_addr) == 0 ||
         strcmp(c->kafka_addr, c->metrics_addr) == 0)) {
        err_printf(errmsg, "--kafka %s: already used by --listen, --raft or --metrics",
                   c->kafka_addr);
        return TALLY_INVAL;
    }
    if (c->metrics_addr[0] != '\0' && (strcmp(c->metrics_addr, c->listen_addr) == 0 ||
                                       strcmp(c->metrics_addr, c->raft_addr) == 0)) {
        err_printf(errmsg, "--metrics %s: already used by --listen or --raft", c->metrics_addr);
        return TALLY_INVAL;
    }
    if ((rv = cfg__validate_tls(c, errmsg)) != 0) {
        return rv;
    }
    /* Raft needs several heartbeats per election timeout, or followers
     * start elections against a healthy leader. */
    if (c->heartbeat_timeout_ms >= c->election_timeout_ms) {
        err_printf(errmsg, "heartbeat_timeout_ms (%u) must be less than election_timeout_ms (%u)",
                   c->heartbeat_timeout_ms, c->election_timeout_ms);
        return TALLY_INVAL;
    }
    /* A produce batch travels inside one Raft entry, which sits inside one
     * Raft segment. */
    if (c->group_commit_bytes < c->max_batch_bytes) {
        err_printf(errmsg, "group_commit_bytes (%u) must be at least max_batch_bytes (%u)",
                   c->group_commit_bytes, (unsigned)c->max_batch_bytes);
        return TALLY_INVAL;
    }
    if (c->raft_segment_bytes < c->group_commit_bytes) {
        err_printf(errmsg, "raft_segment_bytes (%llu) must be at least group_commit_bytes (%u)",
                   (unsigned long long)c->raft_segment_bytes, c->group_commit_bytes);
        return TALLY_INVAL;
    }
    return cfg__prepare_data_dir(c->data_dir, errmsg);
}

void cfg_usage(FILE *out)
{
    fprintf(out,
            "Usage: tallyd --id N --data DIR --listen HOST:PORT --raft HOST:PORT\n"
            "              --peer ID=CLIENT_HOST:PORT/RAFT_HOST:PORT [--peer ...]\n"
            "              [--bootstrap] [--metrics HOST:PORT] [--config FILE]\n"
            "              [--log-level LEVEL] [--set KEY=VALUE ...]\n"
            "\n"
            "Run one node of a tally cluster.\n"
            "\n"
            "  tallyd recover FLAGS  (or --recover) offline disaster recovery after losing\n"
            "                     a majority: make this node the only voter and exit;\n"
            "                     see 'tallyd recover --help'\n"
            "\n"
            "  --id N             this node's id (a positive integer, unique in the cluster)\n"
            "  --data DIR         data directory (created if missing)\n"
            "  --listen A:P       client address; must equal this node's --peer client address\n"
            "  --raft A:P         Raft address; must equal this node's --peer raft address\n"
            "  --peer ID=C/R      one cluster member, repeated for every member including this\n"
            "                     node; C and R are its client and Raft addresses\n"
            "  --bootstrap        form a new cluster from the peer list if DIR holds no Raft\n"
            "                     state and no peer already belongs to a cluster; harmless\n"
            "                     otherwise, so the same command restarts\n"
            "  --metrics A:P      serve metrics over HTTP on this address (default: off)\n"
            "  --kafka A:P        serve Kafka clients on this address (default: off)\n"
            "  --kafka-advertise H:P  the Kafka address clients are told (default: --kafka;\n"
            "                     H may be a host name)\n"
            "  --kafka-peer ID=H:P    the Kafka address member ID advertises, repeated per\n"
            "                     other member (Kafka clients are sent to the leader there)\n"
            "  --tls-cert FILE    this node's certificate (PEM; CN=node<ID>, the node's IPs\n"
            "                     as subjectAltName): TLS on the client and Kafka ports,\n"
            "                     mutual TLS on the Raft links; reloaded on SIGHUP\n"
            "  --tls-key FILE     its private key (PEM)\n"
            "  --tls-ca FILE      the CA of the cluster (PEM): peers and client certificates\n"
            "                     must chain to it (tls_min_version=1.2 allows TLS 1.2;\n"
            "                     tls_client_auth=required refuses clients without one;\n"
            "                     auth=required makes every client log in: SCRAM user or\n"
            "                     client certificate)\n"
            "  --insecure         allow plaintext on non-loopback addresses (without TLS,\n"
            "                     tallyd refuses to listen anywhere but 127.0.0.0/8;\n"
            "                     metrics_tls=true serves --metrics over HTTPS)\n"
            "  --config FILE      read settings from an INI file first; flags override it\n"
            "  --log-level LEVEL  debug, info, warn, error or off (default: info, or\n"
            "                     $TALLY_LOG_LEVEL)\n"
            "  --set KEY=VALUE    set any config-file key, e.g. --set election_timeout_ms=500\n"
            "  -h, --help         print this help and exit\n"
            "  -V, --version      print the version and exit\n"
            "\n"
            "Addresses are IPv4 literals with a port (A.B.C.D:PORT); host names are not\n"
            "accepted. Tunables (config keys, also settable with --set):\n");
    fprintf(out,
            "  election_timeout_ms=400  heartbeat_timeout_ms=50  raft_segment_bytes=64M\n"
            "  snapshot_threshold=0 (from raft_log_budget_bytes=256M)\n"
            "  snapshot_trailing=4096 (used only with a snapshot_threshold)  segment_bytes=64M\n"
            "  max_batch_bytes=1M        group_commit_bytes=1M     max_inflight_entries=4\n"
            "  max_connections=1024      disk_reserve_bytes=0 (3 x raft_segment_bytes + 8M)\n"
            "  segment_fd_cache=1024 (open files of sealed segments, all topics together)\n"
            "  retention_interval_ms=30000\n"
            "  compaction_interval_ms=15000 (0: off)  min_compaction_lag_ms=0\n"
            "  delete_retention_ms=86400000           compaction_buffer_bytes=64M\n"
            "  compaction_nice=19 (the job thread's nice value; 0: the node's)\n"
            "  compaction_io_rate=64M (bytes per second a job reads and writes; 0: no limit)\n"
            "  max_clock_step_ms=60000   clock_warn_ms=1000\n"
            "  metrics_topic_series=1000 (topics with tally_topic_* series)\n"
            "  kafka_max_groups=10000    kafka_group_max_members=1000\n"
            "  kafka_group_min_session_ms=1000  kafka_group_max_session_ms=1800000\n"
            "  kafka_group_initial_delay_ms=1000\n"
            "\n"
            "Example (node 1 of 3 on one machine):\n"
            "  tallyd --id 1 --data run/node1 --listen 127.0.0.1:7001 --raft 127.0.0.1:7101 \\\n"
            "    --peer 1=127.0.0.1:7001/127.0.0.1:7101 --peer 2=127.0.0.1:7002/127.0.0.1:7102 \\\n"
            "    --peer 3=127.0.0.1:7003/127.0.0.1:7103 --bootstrap\n"
            "\n"
            "Exit status: 0 after a clean shutdown (SIGTERM/SIGINT), 2 on bad flags, an\n"
            "unusable data directory, another node's data directory or an address in use\n"
            "(nothing written then), 1 on a runtime failure. See docs/configuration.md.\n");
}

enum {
    CFG__OPT_ID = 256,
    CFG__OPT_DATA,
    CFG__OPT_LISTEN,
    CFG__OPT_RAFT,
    CFG__OPT_PEER,
    CFG__OPT_BOOTSTRAP,
    CFG__OPT_METRICS,
    CFG__OPT_CONFIG,
    CFG__OPT_LOG_LEVEL,
    CFG__OPT_SET,
    CFG__OPT_KAFKA,
    CFG__OPT_KAFKA_ADVERTISE,
    CFG__OPT_KAFKA_PEER,
    CFG__OPT_TLS_CERT,
    CFG__OPT_TLS_KEY,
    CFG__OPT_TLS_CA,
    CFG__OPT_INSECURE,
};

static const struct option cfg__options[] = {
    {"id", required_argument, NULL, CFG__OPT_ID},
    {"data", required_argument, NULL, CFG__OPT_DATA},
    {"listen", required_argument, NULL, CFG__OPT_LISTEN},
    {"raft", required_argument, NULL, CFG__OPT_RAFT},
    {"peer", required_argument, NULL, CFG__OPT_PEER},
    {"bootstrap", no_argument, NULL, CFG__OPT_BOOTSTRAP},
    {"metrics", required_argument, NULL, CFG__OPT_METRICS},
    {"config", required_argument, NULL, CFG__OPT_CONFIG},
    {"log-level", required_argument, NULL, CFG__OPT_LOG_LEVEL},
    {"set", required_argument, NULL, CFG__OPT_SET},
    {"kafka", required_argument, NULL, CFG__OPT_KAFKA},
    {"kafka-advertise", required_argument, NULL, CFG__OPT_KAFKA_ADVERTISE},
    {"kafka-peer", required_argument, NULL, CFG__OPT_KAFKA_PEER},
    {"tls-cert", required_argument, NULL, CFG__OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, CFG__OPT_TLS_KEY},
    {"tls-ca", required_argument, NULL, CFG__OPT_TLS_CA},
    {"insecure", no_argument, NULL, CFG__OPT_INSECURE},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* The config key a flag sets, or NULL. */
static const char *cfg__flag_key(int opt)
{
    switch (opt) {
    case CFG__OPT_ID:
        return "id";
    case CFG__OPT_DATA:
        return "data";
    case CFG__OPT_LISTEN:
        return "listen";
    case CFG__OPT_RAFT:
        return "raft";
    case CFG__OPT_PEER:
        return "peer";
    case CFG__OPT_BOOTSTRAP:
        return "bootstrap";
    case CFG__OPT_METRICS:
        return "metrics";
    case CFG__OPT_LOG_LEVEL:
        return "log_level";
    case CFG__OPT_KAFKA:
        return "kafka";
    case CFG__OPT_KAFKA_ADVERTISE:
        return "kafka_advertise";
    case CFG__OPT_KAFKA_PEER:
        return "kafka_peer";
    case CFG__OPT_TLS_CERT:
        return "tls_cert";
    case CFG__OPT_TLS_KEY:
        return "tls_key";
    case CFG__OPT_TLS_CA:
        return "tls_ca";
    }
    return NULL;
}

struct cfg__flag {
    int opt;
    const char *name; /* "--id" */
    const char *arg;  /* borrowed from argv */
};

static int cfg__apply_flag(struct cfg *c, struct cfg__ctx *x, const struct cfg__flag *f,
                           char *errmsg)
{
    int rv;
    if (f->opt == CFG__OPT_SET) {
        char key[128];
        const char *eq = strchr(f->arg, '=');
        size_t n = eq != NULL ? (size_t)(eq - f->arg) : 0;
        if (eq == NULL || n == 0 || n >= sizeof key) {
            err_printf(errmsg, "--set %s: expected KEY=VALUE", f->arg);
            return TALLY_INVAL;
        }
        memcpy(key, f->arg, n);
        key[n] = '\0';
        rv = cfg__set(c, x, key, eq + 1, errmsg);
        if (rv == TALLY_NOTFOUND) {
            cfg__prefix(errmsg, "--set: ");
        } else if (rv != 0) {
            cfg__prefix(errmsg, "--set %s: ", f->arg);
        }
        return rv == 0 ? 0 : TALLY_INVAL;
    }
    if (f->opt == CFG__OPT_BOOTSTRAP) {
        c->bootstrap = true;
        return 0;
    }
    if (f->opt == CFG__OPT_INSECURE) {
        c->insecure = true;
        return 0;
    }
    rv = cfg__set(c, x, cfg__flag_key(f->opt), f->arg, errmsg);
    if (rv != 0) {
        cfg__prefix(errmsg, "%s %s: ", f->name, f->arg);
        return TALLY_INVAL;
    }
    return 0;
}

int cfg_load(struct cfg *c, int argc, char **argv, char *errmsg)
{
    struct cfg__flag *flags;
    struct cfg__ctx x = {false, false};
    const char *config = NULL;
    bool help = false;
    bool version = false;
    unsigned n_flags = 0;
    int rv = 0;
    int opt;
    int idx;

    cfg__defaults(c);
    if (errmsg != NULL) {
        errmsg[0] = '\0';
    }
    flags = calloc((size_t)(argc > 0 ? argc : 1), sizeof *flags);
    if (flags == NULL) {
        err_printf(errmsg, "out of memory");
        return TALLY_NOMEM;
    }

    /* First collect every flag, so the file (wherever --config appears)
     * is read before any flag is applied. */
    optind = 0; /* glibc: full reset, so cfg_load can run more than once */
    opterr = 0; /* we print one line ourselves, not getopt's two */
    while ((idx = -1, opt = getopt_long(argc, argv, ":hV", cfg__options, &idx)) != -1) {
        const char *bad = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
        switch (opt) {
        case 'h':
            help = true;
            break;
        case 'V':
            version = true;
            break;
        /* Keep scanning after a bad flag: a --help further on still
         * wins. The first problem is the one reported. */
        case ':':
            if (rv == 0) {
                err_printf(errmsg, "option '%s' needs a value", bad);
                rv = TALLY_INVAL;
            }
            break;
        case '?':
            if (rv != 0) {
                break;
            }
            if (optopt != 0) {
                err_printf(errmsg, "unknown option '-%c' (see --help)", optopt);
            } else {
                err_printf(errmsg, "unknown option '%s' (see --help)", bad);
            }
            rv = TALLY_INVAL;
            break;
        case CFG__OPT_CONFIG:
            config = optarg;
            break;
        default:
            flags[n_flags].opt = opt;
            flags[n_flags].name = cfg__options[idx].name;
            flags[n_flags].arg = optarg;
            n_flags++;
            break;
        }
    }
    if (help || version) {
        if (help) {
            cfg_usage(stdout);
        } else {
            printf("tallyd (tally) %s\n", TALLY_VERSION_STRING);
        }
        rv = 1;
        goto out;
    }
    if (rv != 0) {
        goto out;
    }
    if (optind < argc) {
        err_printf(errmsg, "unexpected argument '%s' (see --help)", argv[optind]);
        rv = TALLY_INVAL;
        goto out;
    }

    if (config != NULL) {
        rv = cfg__read_file(c, &x, config, errmsg);
        if (rv != 0) {
            goto out;
        }
    }
    x.from_flags = true;
    for (unsigned i = 0; i < n_flags; i++) {
        /* cfg__options names lack the dashes users typed. */
        char name[32];
        struct cfg__flag f = flags[i];
        snprintf(name, sizeof name, "--%s", f.name);
        f.name = name;
        rv = cfg__apply_flag(c, &x, &f, errmsg);
        if (rv != 0) {
            goto out;
        }
    }
    rv = cfg__validate(c, errmsg);
out:
    free(flags);
    return rv;
}
