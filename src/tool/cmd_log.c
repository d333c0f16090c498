/* `tally log verify|dump DIR`: read a node's data directory offline.
 *
 * DIR is either a node's data directory (DIR/topics/<topic>/ holds one log
 * per topic; DIR/raft/ and anything else is ignored) or one topic folder
 * (it holds *.seg files). Nothing is modified: unlike opening the log,
 * which repairs a torn tail and rebuilds indexes, these commands only
 * report. They talk to no server, so the global broker options are
 * accepted and ignored. */
#include "tool/cmd_log.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/batch.h"
#include "lib/err.h"
#include "lib/fs.h"
#include "log/log.h"
#include "tool/util.h"

#define CMD_LOG_EXIT_OK 0
#define CMD_LOG_EXIT_DAMAGE 1
#define CMD_LOG_EXIT_USAGE 2

static const char cmd_log_help[] =
    "Usage: tally log verify DIR [--topic TOPIC]\n"
    "       tally log dump DIR [--topic TOPIC] [--from OFFSET]\n"
    "\n"
    "Read a node's data offline (stop the node first, or expect its active\n"
    "segment to change under you). DIR is a node's data directory, whose\n"
    "topics/<name>/ folders each hold one topic's log, or one topic folder.\n"
    "Nothing is modified.\n"
    "\n"
    "  verify   check both checksums of every batch, decode every record, and\n"
    "           check every index entry against its segment. Prints one line\n"
    "           per problem, FILE:POSITION: what, then a summary line.\n"
    "  dump     print every batch (base offset, record count, raft index,\n"
    "           timestamps, producer id/sequence, compression, bytes, file and\n"
    "           position) and its records (offset, timestamp, key, value,\n"
    "           headers). Bytes that are not printable ASCII are shown as \\xHH;\n"
    "           a missing key is (none), a missing value (tombstone).\n"
    "\n"
    "Options:\n"
    "      --topic TOPIC   only this topic of a node's data directory\n"
    "      --from OFFSET   dump: start at this offset\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit status: 0 healthy (verify) or printed (dump), 1 damage found or an\n"
    "error, 2 bad usage.\n";

static int cmd_log__usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int cmd_log__usage(const char *fmt, ...)
{
    va_list ap;
    fputs("tally log: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see 'tally log --help')\n", stderr);
    return CMD_LOG_EXIT_USAGE;
}

/* Options of both subcommands. */
struct cmd_log_opts {
    const char *dir;   /* DIR */
    const char *topic; /* --topic, or NULL */
    uint64_t from;     /* --from */
    bool has_from;     /* --from given */
};

static bool cmd_log__parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (*s < '0' || *s > '9') {
        return false;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return false;
    }
    *out = v;
    return true;
}

/* Parse argv[2..] of `tally log SUB ...`. Returns -1 to go on, else an
 * exit status (help printed, or a usage error). */
static int cmd_log__parse(int argc, char **argv, bool dump, struct cmd_log_opts *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        size_t name_len = eq != NULL && strncmp(a, "--", 2) == 0 ? (size_t)(eq - a) : strlen(a);

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(cmd_log_help, stdout);
            return CMD_LOG_EXIT_OK;
        }
        if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++) {
                if (o->dir != NULL) {
                    return cmd_log__usage("unexpected argument '%s'", argv[i]);
                }
                o->dir = argv[i];
            }
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (o->dir != NULL) {
                return cmd_log__usage("unexpected argument '%s'", a);
            }
            o->dir = a;
            continue;
        }
        /* Options that take a value: --name VALUE or --name=VALUE. */
        static const char *const with_value[] = {"--topic", "--from", "--brokers", "-b",
                                                 "--timeout"};
        bool known = false;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++) {
            if (strlen(with_value[k]) == name_len && strncmp(a, with_value[k], name_len) == 0) {
                known = true;
                if (eq != NULL && a[name_len] == '=') {
                    val = eq + 1;
                } else if (i + 1 < argc) {
                    val = argv[++i];
                } else {
                    return cmd_log__usage("option '%s' needs a value", a);
                }
                break;
            }
        }
        if (!known) {
            return cmd_log__usage("unknown option '%s'", a);
        }
        if (strncmp(a, "--topic", name_len) == 0 && name_len == 7) {
            if (*val == '\0' || strchr(val, '/') != NULL || strcmp(val, ".") == 0 ||
                strcmp(val, "..") == 0) {
                return cmd_log__usage("bad topic name '%s'", val);
            }
            o->topic = val;
        } else if (strncmp(a, "--from", name_len) == 0 && name_len == 6) {
            if (!dump) {
                return cmd_log__usage("--from is an option of dump only");
            }
            if (!cmd_log__parse_u64(val, &o->from)) {
                return cmd_log__usage("--from wants an offset, got '%s'", val);
            }
            o->has_from = true;
        }
        /* --brokers/-b/--timeout: global options, meaningless offline. */
    }
    if (o->dir == NULL) {
        return cmd_log__usage("missing DIR");
    }
    return -1;
}

/* One log directory to read, and how to name it in output. */
struct cmd_log_target {
    char path[PATH_MAX];
};

static bool cmd_log__has_segments(const char *dir)
{
    char why[ERR_MSG_SIZE];
    char **names;
    size_t n_names;
    bool found = false;
    if (fs_list(dir, &names, &n_names, why) != 0) {
        return false;
    }
    for (size_t i = 0; !found && i < n_names; i++) {
        size_t n = strlen(names[i]);
        found = n > 4 && strcmp(names[i] + n - 4, ".seg") == 0;
    }
    fs_list_free(names, n_names);
    return found;
}

/* The log directories under @o->dir. Returns 0, or 1 after printing why
 * none can be read. *out is malloc'd (free()). */
static int cmd_log__targets(const struct cmd_log_opts *o, struct cmd_log_target **out,
                            size_t *n)
{
    char topics[PATH_MAX];
    struct cmd_log_target *v = NULL;
    size_t len = 0, cap = 0;
    char why[ERR_MSG_SIZE];
    char **names;
    size_t n_names;

    *out = NULL;
    *n = 0;
    if (!fs_is_dir(o->dir)) {
        fprintf(stderr, "tally log: %s: not a directory\n", o->dir);
        return CMD_LOG_EXIT_DAMAGE;
    }
    snprintf(topics, sizeof topics, "%s/topics", o->dir);
    if (!fs_is_dir(topics)) {
        if (!cmd_log__has_segments(o->dir)) {
            fprintf(stderr,
                    "tally log: %s: neither a node data directory (no topics/ folder) nor a "
                    "topic folder (no *.seg files)\n",
                    o->dir);
            return CMD_LOG_EXIT_DAMAGE;
        }
        /* One topic folder; --topic does not apply. */
        v = malloc(sizeof *v);
        if (v == NULL) {
            fprintf(stderr, "tally log: out of memory\n");
            return CMD_LOG_EXIT_DAMAGE;
        }
        snprintf(v->path, sizeof v->path, "%s", o->dir);
        *out = v;
        *n = 1;
        return 0;
    }
    if (o->topic != NULL) {
        v = malloc(sizeof *v);
        if (v == NULL) {
            fprintf(stderr, "tally log: out of memory\n");
            return CMD_LOG_EXIT_DAMAGE;
        }
        snprintf(v->path, sizeof v->path, "%s/%s", topics, o->topic);
        if (!fs_is_dir(v->path)) {
            fprintf(stderr, "tally log: %s: no topic '%s' here\n", o->dir, o->topic);
            free(v);
            return CMD_LOG_EXIT_DAMAGE;
        }
        *out = v;
        *n = 1;
        return 0;
    }
    /* (sorted by name, so the topics are read in name order) */
    if (fs_list(topics, &names, &n_names, why) != 0) {
        fprintf(stderr, "tally log: %s\n", why); /* "open directory TOPICS: ..." */
        return CMD_LOG_EXIT_DAMAGE;
    }
    for (size_t i = 0; i < n_names; i++) {
        char path[PATH_MAX];
        if (names[i][0] == '.') {
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", topics, names[i]);
        if (!fs_is_dir(path)) {
            continue;
        }
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct cmd_log_target *nv = realloc(v, ncap * sizeof *nv);
            if (nv == NULL) {
                fs_list_free(names, n_names);
                free(v);
                fprintf(stderr, "tally log: out of memory\n");
                return CMD_LOG_EXIT_DAMAGE;
            }
            v = nv;
            cap = ncap;
        }
        snprintf(v[len++].path, sizeof v->path, "%s", path);
    }
    fs_list_free(names, n_names);
    *out = v;
    *n = len;
    return 0;
}

/* ------------------------------------------------------------------------
 * verify
 * ------------------------------------------------------------------------ */

static void cmd_log__report(void *arg, const char *file, uint64_t pos, const char *msg)
{
    const char *dir = arg;
    printf("%s/%s:%" PRIu64 ": %s\n", dir, file, pos, msg);
}

static int cmd_log__verify(const struct cmd_log_opts *o)
{
    struct cmd_log_target *t;
    size_t n;
    uint64_t segments = 0, batches = 0, records = 0, problems = 0;
    int rc = cmd_log__targets(o, &t, &n);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        struct log_verify_stats st;
        int p = log_verify_dir_stats(t[i].path, cmd_log__report, t[i].path, &st);
        if (p < 0) {
            printf("%s:0: cannot read the directory\n", t[i].path);
            problems++;
            continue;
        }
        segments += st.segments;
        batches += st.batches;
        records += st.records;
        problems += (uint64_t)p;
    }
    free(t);
    printf("verified %" PRIu64 " segments, %" PRIu64 " batches, %" PRIu64 " records: ", segments,
           batches, records);
    if (problems == 0) {
        printf("OK\n");
    } else {
        printf("%" PRIu64 " problem%s\n", problems, problems == 1 ? "" : "s");
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        return CMD_LOG_EXIT_DAMAGE;
    }
    return problems == 0 ? CMD_LOG_EXIT_OK : CMD_LOG_EXIT_DAMAGE;
}

/* ------------------------------------------------------------------------
 * dump
 * ------------------------------------------------------------------------ */

/* ISO 8601 UTC form of a millisecond timestamp, or "?" out of range. */
static void cmd_log__time(int64_t ms, char *out, size_t cap)
{
    struct tm tm;
    time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int msec = (int)(ms - (int64_t)secs * 1000);
    size_t n;
    if (ms < -62135596800000LL || ms > 253402300799999LL || gmtime_r(&secs, &tm) == NULL) {
        snprintf(out, cap, "?");
        return;
    }
    n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03dZ", msec);
}

static int cmd_log__dump_batch(const uint8_t *batch, size_t len, const char *file, uint64_t pos,
                               uint64_t from)
{
    struct batch_iter it;
    struct batch_record r;
    char errmsg[ERR_MSG_SIZE], t1[40], t2[40];
    int rv = batch_iter_init(&it, batch, len, errmsg);
    if (rv != 0) {
        fprintf(stderr, "tally log: %s:%" PRIu64 ": %s\n", file, pos, errmsg);
        return CMD_LOG_EXIT_DAMAGE;
    }
    cmd_log__time(it.h.first_timestamp, t1, sizeof t1);
    cmd_log__time(it.h.max_timestamp, t2, sizeof t2);
    printf("batch base_offset=%" PRIu64 " last_offset=%" PRIu64 " count=%" PRIu32
           " raft_index=%" PRIu64 " first_ts=%" PRId64 " (%s) max_ts=%" PRId64 " (%s)"
           " producer_id=%" PRIu64 " producer_seq=%" PRIu64 " %s bytes=%" PRIu32
           " records_bytes=%" PRIu32 " at=%s:%" PRIu64 "\n",
           it.h.base_offset, batch_last_offset(&it.h), it.h.record_count, it.h.raft_index,
           it.h.first_timestamp, t1, it.h.max_timestamp, t2, it.h.producer_id,
           it.h.producer_seq, (it.h.flags & BATCH_FLAG_LZ4) ? "lz4" : "uncompressed",
           it.h.batch_len, it.h.records_len, file, pos);
    while ((rv = batch_iter_next(&it, &r, errmsg)) == 0) {
        if (r.offset < from) {
            continue;
        }
        printf("  offset=%" PRIu64 " ts=%" PRId64, r.offset, r.timestamp);
        if (r.has_create_time) {
            /* The producer's own time (a Kafka producer's CreateTime). */
            printf(" create_ts=%" PRId64, r.create_time);
        }
        fputs(" key=", stdout);
        if (r.key == NULL) {
            fputs("(none)", stdout);
        } else {
            tool_print_quoted(r.key, r.key_len, TOOL_QUOTE_C);
        }
        fputs(" value=", stdout);
        if (r.value == NULL) {
            fputs("(tombstone)", stdout);
        } else {
            tool_print_quoted(r.value, r.value_len, TOOL_QUOTE_C);
        }
        if (r.header_count > 0) {
            struct batch_headers hr;
            struct batch_kv kv;
            batch_headers_init(&hr, r.headers, r.headers_len, r.header_nulls);
            fputs(" headers:", stdout);
            while (batch_headers_next(&hr, &kv)) {
                putchar(' ');
                tool_print_quoted(kv.name, kv.name_len, TOOL_QUOTE_C);
                putchar('=');
                if (kv.value == NULL) {
                    fputs("null", stdout); /* unquoted: a value is always quoted */
                } else {
                    tool_print_quoted(kv.value, kv.value_len, TOOL_QUOTE_C);
                }
            }
        }
        putchar('\n');
    }
    batch_iter_close(&it);
    if (rv != TALLY_EOF) {
        fprintf(stderr, "tally log: %s:%" PRIu64 ": %s\n", file, pos, errmsg);
        return CMD_LOG_EXIT_DAMAGE;
    }
    return CMD_LOG_EXIT_OK;
}

static int cmd_log__dump(const struct cmd_log_opts *o)
{
    struct cmd_log_target *t;
    size_t n;
    int status = CMD_LOG_EXIT_OK;
    int rc = cmd_log__targets(o, &t, &n);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < n && !ferror(stdout); i++) {
        struct log_scan *sc;
        char errmsg[ERR_MSG_SIZE];
        const uint8_t *batch;
        size_t len;
        const char *file;
        uint64_t pos;

        printf("# log %s\n", t[i].path);
        rc = log_scan_open(t[i].path, o->from, &sc, errmsg);
        if (rc == TALLY_NOTFOUND) {
            continue; /* a topic folder with no segment yet */
        }
        if (rc != 0) {
            fprintf(stderr, "tally log: %s\n", errmsg);
            status = CMD_LOG_EXIT_DAMAGE;
            continue;
        }
        while (!ferror(stdout) &&
               (rc = log_scan_next(sc, &batch, &len, &file, &pos, errmsg)) != TALLY_EOF) {
            char where[PATH_MAX + 64];
            snprintf(where, sizeof where, "%s/%s", t[i].path, file);
            if (rc != 0) {
                /* errmsg names the segment file and position already. */
                fprintf(stderr, "tally log: %s: %s\n", t[i].path, errmsg);
                status = CMD_LOG_EXIT_DAMAGE;
                continue;
            }
            if (cmd_log__dump_batch(batch, len, where, pos, o->from) != 0) {
                status = CMD_LOG_EXIT_DAMAGE;
            }
        }
        log_scan_close(sc);
    }
    free(t);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        return CMD_LOG_EXIT_DAMAGE;
    }
    return status;
}

int cmd_log_main(int argc, char **argv)
{
    struct cmd_log_opts o;
    int rc;
    if (argc < 2) {
        return cmd_log__usage("missing subcommand: verify or dump");
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(cmd_log_help, stdout);
        return CMD_LOG_EXIT_OK;
    }
    if (strcmp(argv[1], "verify") == 0 || strcmp(argv[1], "dump") == 0) {
        bool dump = argv[1][0] == 'd';
        rc = cmd_log__parse(argc, argv, dump, &o);
        if (rc >= 0) {
            return rc;
        }
        return dump ? cmd_log__dump(&o) : cmd_log__verify(&o);
    }
    return cmd_log__usage("unknown subcommand '%s' (verify or dump)", argv[1]);
}
