/* tally consume: print the records of a topic, from any node, optionally
 * following it as it grows. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/glob.h"
#include "lib/name.h"
#include "tool/util.h"

static const char consume_help[] =
    "Usage: tally consume TOPIC [--from OFFSET|beginning|end | --from-time MS]\n"
    "                     [-n COUNT] [-f] [-k KEY] [--group NAME [--shares N]\n"
    "                     [--session-ms MS]] [--reset-policy earliest|latest|error]\n"
    "                     [--format FMT] [--node HOST:PORT] [--min-index N]\n"
    "                     [--linearizable]\n"
    "       tally consume TOPIC -k KEY [--from-version V] [--backward] [-n COUNT] [-f]\n"
    "       tally consume TOPIC --filter PATTERN [--group NAME] [--from ...] [-f] ...\n"
    "\n"
    "Print the records of TOPIC in offset order. Reads are served by any node\n"
    "and return committed records only.\n"
    "\n"
    "  --from OFFSET|beginning|end  where to start (default beginning)\n"
    "  --from-time MS       start at the first record with a timestamp at or\n"
    "                       after MS (milliseconds since the epoch)\n"
    "  -k, --key KEY        print only the records with this key (its stream), in\n"
    "                       offset order. Without --from, --from-time and\n"
    "                       --group, the nodes' stream index finds them: the\n"
    "                       cost is the key's records, not the topic's size.\n"
    "                       With one of those, the filter runs in tally, which\n"
    "                       reads every record from the start position\n"
    "  --from-version V     with -k: start at stream version V (the key's V-th\n"
    "                       record; the number --expect-version compares);\n"
    "                       exit 1 if the key has no record or V is beyond the\n"
    "                       stream's end + 1\n"
    "  --backward           with -k: newest first, from the end or from\n"
    "                       --from-version V down (-n N: the last N records)\n"
    "  --filter PATTERN     print only the records whose key matches PATTERN,\n"
    "                       filtered by the node (a category subscription):\n"
    "                       '*' any run of bytes, '?' one byte, '\\' quotes the\n"
    "                       next one; 'order-*' is a prefix, 'order-7' one key;\n"
    "                       1..256 bytes, at most 8 '*'. With --group, the\n"
    "                       position moves past the records that did not match\n"
    "  --group NAME         durable position: start where group NAME last\n"
    "                       committed on TOPIC (if it never did, at --from or\n"
    "                       --from-time, default beginning), and commit the\n"
    "                       position of what was printed and flushed (every\n"
    "                       second while reading, and when it stops):\n"
    "                       at-least-once delivery (a record printed just\n"
    "                       before a crash is printed again next time);\n"
    "                       a stored position beats --from and --from-time\n"
    "                       (move it with 'tally group reset'); reads as\n"
    "                       --linearizable does, so that a node that has not\n"
    "                       applied the latest records yet waits for them.\n"
    "                       Consumers of one group share the work: each\n"
    "                       record goes to one of them, all of a key's\n"
    "                       records to the same one while they stay, and a\n"
    "                       consumer that stops (or is killed) hands its share\n"
    "                       to the others from its last commit (docs/groups.md)\n"
    "  --shares N           with --group: the topic is dealt to the group's\n"
    "                       consumers in N shares (1..256, default 16; the same\n"
    "                       for every consumer of the group): at most N of them\n"
    "                       have work\n"
    "  --session-ms MS      with --group: a consumer not heard from for MS\n"
    "                       (default 10000) is out, and its share moves on\n"
    "  --reset-policy earliest|latest|error\n"
    "                       what --group does when its position is below the\n"
    "                       topic's first offset (retention removed records\n"
    "                       it had not read): earliest (default) goes on at\n"
    "                       the first offset still stored and says which\n"
    "                       offsets were lost on stderr; latest goes on at\n"
    "                       the end; error stops (exit 1) naming the gap and\n"
    "                       the command that moves the group\n"
    "  -n, --count COUNT    stop after COUNT records\n"
    "  -f, --follow         keep waiting for new records (long poll) until COUNT\n"
    "                       records were printed or SIGINT (then exit 0); without\n"
    "                       -f, stop at the end of the topic as the node reported\n"
    "                       it at the first read\n"
    "  --format FMT         how to print each record (default '%o\\t%k\\t%v\\n'):\n"
    "                       %o offset, %k key, %v value, %t timestamp (ms since\n"
    "                       the epoch, set by the leader), %V stream version\n"
    "                       (with -k on the stream index), %% a '%', and the\n"
    "                       escapes \\t \\n \\\\; keys and values are printed as raw\n"
    "                       bytes; a missing key and a tombstone (deleted key)\n"
    "                       print as empty\n"
    "  --node HOST:PORT     read from this node rather than any\n"
    "  --min-index N        have the node wait until it has applied Raft index N\n"
    "                       before answering (read your own write on a follower;\n"
    "                       see 'tally produce --print-index')\n"
    "  --linearizable       first have the leader confirm that it still leads (a\n"
    "                       Raft barrier), then read at its applied index: the\n"
    "                       records include every write acknowledged before the\n"
    "                       command started, or it fails (no leader, no quorum).\n"
    "                       Without it, a node that knows no leader still answers\n"
    "                       and a warning on stderr says the answer may be stale\n"
    "\n" TOOL_COMMON_HELP;

enum {
    CONSUME_OPT_FROM = TOOL_OPT__FIRST_FREE,
    CONSUME_OPT_FORMAT,
    CONSUME_OPT_NODE,
    CONSUME_OPT_MIN_INDEX,
    CONSUME_OPT_FROM_TIME,
    CONSUME_OPT_GROUP,
    CONSUME_OPT_LINEARIZABLE,
    CONSUME_OPT_RESET_POLICY,
    CONSUME_OPT_SHARES,
    CONSUME_OPT_SESSION_MS,
    CONSUME_OPT_FROM_VERSION, /* streams */
    CONSUME_OPT_BACKWARD,     /* streams */
    CONSUME_OPT_FILTER,       /* streams */
};

/* --reset-policy: where a group goes on when its position is below the
 * topic's first offset (as Kafka's auto.offset.reset). */
enum consume_reset {
    CONSUME_RESET_EARLIEST,
    CONSUME_RESET_LATEST,
    CONSUME_RESET_ERROR,
};

enum consume_from {
    CONSUME_FROM_OFFSET,
    CONSUME_FROM_BEGINNING,
    CONSUME_FROM_END,
    CONSUME_FROM_TIME,
};

/* Long-poll wait of one fetch in follow mode: short enough that SIGINT and
 * a moved leader are noticed quickly, long enough not to spin. */
#define CONSUME_POLL_MS 1000u
/* Pause before retrying a failed fetch in follow mode. */
#define CONSUME_RETRY_MS 500

static volatile sig_atomic_t consume_interrupted;

static void consume_on_signal(int sig)
{
    (void)sig;
    consume_interrupted = 1;
}

/* Check @fmt; returns NULL or a description of the first error. */
static const char *consume_check_format(const char *fmt)
{
    const char *p;

    for (p = fmt; *p != '\0'; p++) {
        if (*p == '%') {
            p++;
            if (*p == '\0') {
                return "ends with a lone '%'";
            }
            if (strchr("okvtV%", *p) == NULL) {
                return "has an unknown %-directive (want %o %k %v %t %V %%)";
            }
        } else if (*p == '\\') {
            p++;
            if (*p == '\0') {
                return "ends with a lone '\\'";
            }
            if (strchr("tn\\", *p) == NULL) {
                return "has an unknown escape (want \\t \\n \\\\)";
            }
        }
    }
    return NULL;
}

static void consume_print(const char *fmt, const struct tally_record *r, uint64_t version)
{
    const char *p;

    for (p = fmt; *p != '\0'; p++) {
        if (*p == '%') {
            switch (*++p) {
            case 'o':
                printf("%" PRIu64, r->offset);
                break;
            case 'k':
                if (r->key != NULL) {
                    fwrite(r->key, 1, r->key_len, stdout);
                }
                break;
            case 'v':
                if (r->value != NULL) {
                    fwrite(r->value, 1, r->value_len, stdout);
                }
                break;
            case 't':
                printf("%" PRId64, r->timestamp_ms);
                break;
            case 'V':
                printf("%" PRIu64, version);
                break;
            default:
                putchar('%');
            }
        } else if (*p == '\\') {
            switch (*++p) {
            case 't':
                putchar('\t');
                break;
            case 'n':
                putchar('\n');
                break;
            default:
                putchar('\\');
            }
        } else {
            putchar(*p);
        }
    }
}

static void consume_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Errors worth waiting out when following: the node or leader is away. */
static int consume_transient(int rc)
{
    return rc == TALLY_CONNECT || rc == TALLY_TIMEOUT || rc == TALLY_NOLEADER ||
           rc == TALLY_UNAVAILABLE || rc == TALLY_SHUTDOWN || rc == TALLY_IOERR ||
           rc == TALLY_BUSY;
}

/* Resolve 'beginning' or 'end' from the topic list. */
static int consume_resolve(const char *cmd, tally_client *client, const char *topic,
                           enum consume_from from, uint64_t *offset)
{
    struct tally_topic_info *topics = NULL;
    size_t n = 0;
    size_t i;
    int rc;

    rc = tally_topic_list(client, &topics, &n);
    if (rc != 0) {
        return tool_cluster_error(client, cmd, rc);
    }
    for (i = 0; i < n; i++) {
        if (strcmp(topics[i].name, topic) == 0) {
            *offset = from == CONSUME_FROM_END ? topics[i].next_offset : topics[i].start_offset;
            free(topics);
            return TOOL_EXIT_OK;
        }
    }
    free(topics);
    return tool_error(cmd, "topic '%s' not found", topic);
}

/* Errors after which committing a group position again may succeed. The
 * commit sets an absolute position, so repeating it is harmless even when
 * the first attempt's outcome is unknown. */
static int consume_commit_retryable(int rc)
{
    return consume_transient(rc) || rc == TALLY_NOTLEADER || rc == TALLY_LEADERSHIP_LOST;
}

/* Attempts and pause of one group commit before giving up on it. */
#define CONSUME_COMMIT_TRIES 3
#define CONSUME_COMMIT_RETRY_MS 300

/* Commit @pos as the position of @group on the incarnation @topic_id of
 * @topic. Returns 0, or the last error code with tally_errmsg() set. */
static int consume_commit(tally_client *client, const char *group, const char *topic,
                          uint64_t topic_id, uint64_t pos)
{
    int tries = 0;
    int rc;

    for (;;) {
        rc = tally_group_commit_at(client, group, topic, topic_id, pos);
        if (rc == 0 || !consume_commit_retryable(rc) || ++tries >= CONSUME_COMMIT_TRIES ||
            consume_interrupted) {
            return rc;
        }
        consume_sleep_ms(CONSUME_COMMIT_RETRY_MS);
    }
}

/* The stored position of @group on @topic, with its topic id and the
 * topic's offsets. A group with none yet gets one at @start (the start
 * that --from or --from-time chose), so that its commits can be bound to
 * the topic's incarnation from the first. *found says which it was. */
static int consume_group_position(tally_client *client, const char *group, const char *topic,
                                  struct tally_group_position *out, int *found)
{
    struct tally_group_position *ps = NULL;
    size_t n = 0;
    int rc = tally_group_list(client, group, topic, &ps, &n);
    if (rc == 0) {
        *found = n > 0;
        if (n > 0) {
            *out = ps[0];
        }
    }
    free(ps);
    return rc;
}

/* tally_errmsg(), or the code's description when the library set none. */
static const char *consume_errmsg(tally_client *client, int rc)
{
    const char *msg = tally_errmsg(client);

    return msg != NULL && msg[0] != '\0' ? msg : tally_strerror(rc);
}

static int consume_key_matches(const struct tally_record *r, const char *key, size_t key_len)
{
    return r->key != NULL && r->key_len == key_len &&
           (key_len == 0 || memcmp(r->key, key, key_len) == 0);
}

/* ------------------------------------------------------------------------
 * streams: -k KEY through the nodes' stream index (tally_stream_read)
 * ------------------------------------------------------------------------ */

struct consume_stream_args {
    const char *topic;
    const char *key;
    size_t key_len;
    uint64_t from_version; /* 0: from the start (forward) or the end (backward) */
    int backward;
    int strict;            /* a key without records is an error (--from-version,
                            * --backward); plain -k prints nothing, as the scan did */
    int follow;
    uint64_t count;        /* 0: no limit */
    const char *fmt;
    const char *node;
    uint64_t min_index;
    uint32_t wait_ms;      /* long-poll of one read when following */
};

/* Answers in a row that neither hold a record nor move the version on,
 * in follow mode, before giving up on the node (each waits the long-poll
 * time, so a sane node never comes close; bounds the loop anyway). */
#define CONSUME_STREAM_MAX_EMPTY 100000

static int consume_stream(const char *cmd, tally_client *client, const struct consume_stream_args *a)
{
    struct tally_stream_options o;
    uint64_t printed = 0;
    unsigned empty = 0;
    int rc;

    tally_stream_options_init(&o);
    o.from_version = a->from_version;
    o.backward = a->backward;
    o.node = a->node;
    o.min_index = a->min_index;
    while (!consume_interrupted && (a->count == 0 || printed < a->count)) {
        struct tally_stream_result res;
        if (a->count > 0 && a->count - printed < o.max_events) {
            o.max_events = (uint32_t)(a->count - printed);
        }
        o.max_wait_ms = a->follow ? a->wait_ms : 0;
        rc = tally_stream_read(client, a->topic, a->key, a->key_len, &o, &res);
        if (rc == TALLY_NOTFOUND && (!a->strict || a->follow) &&
            strstr(consume_errmsg(client, rc), "does not exist") != NULL) {
            if (!a->follow) {
                return TOOL_EXIT_OK; /* no record has the key: nothing to print */
            }
            consume_sleep_ms(CONSUME_RETRY_MS);
            continue;
        }
        if (rc != 0 && a->follow && consume_transient(rc)) {
            fprintf(stderr, "tally consume: %s; retrying\n", consume_errmsg(client, rc));
            consume_sleep_ms(CONSUME_RETRY_MS);
            continue;
        }
        if (rc != 0) {
            return tool_cluster_error(client, cmd, rc);
        }
        for (size_t i = 0; i < res.n; i++) {
            const struct tally_stream_event *e = &res.events[i];
            struct tally_record r = {e->offset, e->timestamp_ms, a->key, a->key_len, e->value,
                                     e->value_len};
            consume_print(a->fmt, &r, e->version);
            printed++;
        }
        fflush(stdout);
        /* Without -f, an answer with no record also ends the read: the
         * node has nothing more now (a stream whose records are gone or
         * hidden answers so at once). */
        int done = res.n == 0 ||
                   (a->backward ? res.next_version == 0 : res.next_version > res.version);
        int stuck = res.n == 0 && res.next_version == o.from_version;
        o.from_version = res.next_version;
        tally_stream_result_free(&res);
        if (done && !a->follow) {
            break;
        }
        if (stuck && ++empty > CONSUME_STREAM_MAX_EMPTY) {
            return tool_error(cmd, "stream read of %s makes no progress", a->topic);
        }
    }
    return TOOL_EXIT_OK;
}

/* Print @r in @fmt unless it is left out: older than @from_time while
 * *skip_old (--from-time: the first batch may begin before it; the first
 * record at or after it ends the skipping), or without the key @key (-k
 * with a scan). Returns 1 if printed. */
static int consume_print_wanted(const char *fmt, const struct tally_record *r, int *skip_old,
                                int64_t from_time, const char *key, size_t key_len)
{
    if (*skip_old) {
        if (r->timestamp_ms < from_time) {
            return 0;
        }
        *skip_old = 0;
    }
    if (key != NULL && !consume_key_matches(r, key, key_len)) {
        return 0;
    }
    consume_print(fmt, r, 0);
    return 1;
}

/* What consume_shared needs of the command line. */
struct consume_shared_args {
    const char *group, *topic, *filter, *key, *fmt;
    size_t key_len;
    struct tally_group_options *gopts;
    int follow;
    uint64_t count;
    int skip_old;       /* --from-time on a new group: skip older records */
    int64_t from_time;
    uint32_t wait_ms;   /* the long poll of -f */
};

/* --group: read as a member of the shared group (docs/groups.md), whose
 * position is in place: print the member's records, commit what was
 * flushed, and leave at the end (at the end of the topic as it was at
 * the first read, at COUNT records, or at SIGINT with -f). */
static int consume_shared(const char *cmd, tally_client *client,
                          const struct consume_shared_args *a)
{
    tally_group_member *m = NULL;
    uint64_t printed = 0, stop = 0, done_to = 0;
    int have_stop = 0, have_done = 0, skip_old = a->skip_old;
    int rc = 0;
    a->gopts->filter = a->filter;
    rc = tally_group_join(client, a->group, a->topic, a->gopts, &m);
    if (rc != 0) {
        return tool_cluster_error(client, cmd, rc);
    }
    while (!consume_interrupted && (a->count == 0 || printed < a->count)) {
        struct tally_fetch_result res;
        int done = 0;
        rc = tally_group_poll(m, a->follow ? a->wait_ms : 1000, &res);
        if (rc != 0) {
            if (consume_interrupted) {
                break;
            }
            if (a->follow && consume_transient(rc)) {
                fprintf(stderr, "tally consume: %s; retrying\n", tally_errmsg(client));
                consume_sleep_ms(CONSUME_RETRY_MS);
                continue;
            }
            rc = tool_cluster_error(client, cmd, rc);
            goto out;
        }
        if (!have_stop && res.impl != NULL) { /* the first poll that read */
            stop = res.high_offset;
            have_stop = 1;
        }
        for (size_t i = 0; i < res.n; i++) {
            const struct tally_record *r = &res.records[i];
            if (!a->follow && have_stop && r->offset >= stop) {
                done = 1;
                break;
            }
            done_to = r->offset + 1;
            have_done = 1;
            if (consume_print_wanted(a->fmt, r, &skip_old, a->from_time, a->key, a->key_len) &&
                a->count > 0 && ++printed == a->count) {
                break;
            }
        }
        if (res.impl != NULL && !done && (a->count == 0 || printed < a->count)) {
            done_to = res.next_offset; /* the member's read went past these */
            have_done = 1;
        }
        uint64_t next = res.next_offset;
        tally_fetch_result_free(&res);
        rc = tool_check_stdout(cmd);
        if (rc >= 0) {
            tally_group_member_free(m); /* nothing more committed */
            return rc;
        }
        if (!a->follow &&
            (done || (have_stop && next >= stop) || tally_group_member_shares(m, NULL, 0, NULL) == 0)) {
            break;
        }
    }
    rc = TOOL_EXIT_OK;
    /* At-least-once: commit only past what was printed and flushed. */
    if (have_done && (rc = tally_group_member_commit(m, done_to)) != 0) {
        rc = tool_error(cmd, "committing the position of group %s: %s (the records printed "
                        "after the last commit will be delivered again)", a->group,
                        consume_errmsg(client, rc));
    }
out:
    if (tally_group_leave(m) != 0 && rc == TOOL_EXIT_OK) {
        fprintf(stderr, "tally consume: leaving group %s: %s (its share moves on after the "
                "session timeout)\n", a->group, tally_errmsg(client));
    }
    return rc;
}

int cmd_consume_main(int argc, char **argv)
{
    static const char cmd[] = "consume";
    static const struct option longopts[] = {
        TOOL_COMMON_LONGOPTS,
        {"from", required_argument, NULL, CONSUME_OPT_FROM},
        {"from-time", required_argument, NULL, CONSUME_OPT_FROM_TIME},
        {"count", required_argument, NULL, 'n'},
        {"follow", no_argument, NULL, 'f'},
        {"key", required_argument, NULL, 'k'},
        {"group", required_argument, NULL, CONSUME_OPT_GROUP},
        {"reset-policy", required_argument, NULL, CONSUME_OPT_RESET_POLICY},
        {"shares", required_argument, NULL, CONSUME_OPT_SHARES},
        {"session-ms", required_argument, NULL, CONSUME_OPT_SESSION_MS},
        {"format", required_argument, NULL, CONSUME_OPT_FORMAT},
        {"node", required_argument, NULL, CONSUME_OPT_NODE},
        {"min-index", required_argument, NULL, CONSUME_OPT_MIN_INDEX},
        {"linearizable", no_argument, NULL, CONSUME_OPT_LINEARIZABLE},
        {"from-version", required_argument, NULL, CONSUME_OPT_FROM_VERSION},
        {"backward", no_argument, NULL, CONSUME_OPT_BACKWARD},
        {"filter", required_argument, NULL, CONSUME_OPT_FILTER},
        {NULL, 0, NULL, 0},
    };
    enum consume_from from = CONSUME_FROM_BEGINNING;
    struct tally_fetch_options opts;
    struct sigaction sa;
    tally_client *client;
    const char *fmt = "%o\\t%k\\t%v\\n";
    const char *topic;
    const char *why;
    const char *key = NULL; /* -k */
    size_t key_len = 0;
    const char *group = NULL; /* --group */
    struct tally_group_options gopts; /* --shares, --session-ms */
    int have_group_opt = 0;
    uint64_t n;
    uint64_t topic_id = TALLY_ANY_TOPIC_ID; /* the incarnation the group reads */
    enum consume_reset reset = CONSUME_RESET_EARLIEST;
    int have_reset = 0;
    int64_t from_time = 0;
    int skip_old = 0; /* --from-time: skip records older than from_time */
    int n_from = 0;   /* --from and --from-time seen */
    uint64_t offset = 0;
    uint64_t count = 0; /* 0: no limit */
    uint64_t printed = 0;
    uint64_t stop = 0;
    uint64_t v;
    int have_stop = 0;
    int follow = 0;
    int linearizable = 0, warned_stale = 0;
    uint64_t from_version = 0; /* streams: --from-version */
    int have_from_version = 0, backward = 0;
    const char *filter = NULL; /* streams: --filter */
    int c;
    int rc;

    tally_fetch_options_init(&opts);
    tally_group_options_init(&gopts);
    tool_getopt_reset();
    while ((c = getopt_long(argc, argv, TOOL_COMMON_SHORTOPTS "n:fk:", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(consume_help, stdout);
            return TOOL_EXIT_OK;
        case '?':
            return tool_bad_option(cmd, argv);
        case CONSUME_OPT_FROM:
            n_from++;
            if (strcmp(optarg, "beginning") == 0) {
                from = CONSUME_FROM_BEGINNING;
            } else if (strcmp(optarg, "end") == 0) {
                from = CONSUME_FROM_END;
            } else if (tool_parse_u64(optarg, &offset)) {
                from = CONSUME_FROM_OFFSET;
            } else {
                return tool_usage_error(cmd, "--from needs an offset, 'beginning' or 'end', not '%s'",
                                        optarg);
            }
            break;
        case CONSUME_OPT_FROM_TIME:
            n_from++;
            if (!tool_parse_i64(optarg, &from_time)) {
                return tool_usage_error(cmd,
                                        "--from-time needs milliseconds since the epoch, not '%s'",
                                        optarg);
            }
            from = CONSUME_FROM_TIME;
            break;
        case 'n':
            if (!tool_parse_u64(optarg, &count) || count == 0) {
                return tool_usage_error(cmd, "-n needs a positive count, not '%s'", optarg);
            }
            break;
        case 'f':
            follow = 1;
            break;
        case 'k':
            key = optarg;
            key_len = strlen(optarg);
            break;
        case CONSUME_OPT_GROUP:
            if (optarg[0] == '\0' || strlen(optarg) > 255) {
                return tool_usage_error(cmd, "--group name must be 1 to 255 bytes long");
            }
            group = optarg;
            break;
        case CONSUME_OPT_SHARES:
            if (!tool_parse_u64(optarg, &n) || n == 0 || n > 256) {
                return tool_usage_error(cmd, "--shares must be 1 to 256");
            }
            gopts.shares = (unsigned)n;
            have_group_opt = 1;
            break;
        case CONSUME_OPT_SESSION_MS:
            if (!tool_parse_u64(optarg, &n) || n == 0 || n > 3600000) {
                return tool_usage_error(cmd, "--session-ms must be 1 to 3600000");
            }
            gopts.session_ms = (uint32_t)n;
            have_group_opt = 1;
            break;
        case CONSUME_OPT_RESET_POLICY:
            if (strcmp(optarg, "earliest") == 0) {
                reset = CONSUME_RESET_EARLIEST;
            } else if (strcmp(optarg, "latest") == 0) {
                reset = CONSUME_RESET_LATEST;
            } else if (strcmp(optarg, "error") == 0) {
                reset = CONSUME_RESET_ERROR;
            } else {
                return tool_usage_error(
                    cmd, "--reset-policy needs 'earliest', 'latest' or 'error', not '%s'", optarg);
            }
            have_reset = 1;
            break;
        case CONSUME_OPT_FORMAT:
            fmt = optarg;
            break;
        case CONSUME_OPT_NODE:
            opts.node = optarg;
            break;
        case CONSUME_OPT_MIN_INDEX:
            if (!tool_parse_u64(optarg, &v)) {
                return tool_usage_error(cmd, "--min-index needs a Raft index, not '%s'", optarg);
            }
            opts.min_index = v;
            break;
        case CONSUME_OPT_LINEARIZABLE:
            linearizable = 1;
            break;
        case CONSUME_OPT_FROM_VERSION:
            if (!tool_parse_u64(optarg, &from_version) || from_version == 0) {
                return tool_usage_error(cmd, "--from-version needs a stream version (1 or more), "
                                        "not '%s'", optarg);
            }
            have_from_version = 1;
            break;
        case CONSUME_OPT_BACKWARD:
            backward = 1;
            break;
        case CONSUME_OPT_FILTER:
            filter = optarg;
            break;
        default:
            rc = tool_common_option(cmd, c, optarg);
            if (rc != TOOL_EXIT_OK) {
                return rc < 0 ? TOOL_EXIT_USAGE : rc;
            }
        }
    }
    if (optind >= argc) {
        return tool_usage_error(cmd, "missing TOPIC");
    }
    topic = argv[optind++];
    char bad_name[160];
    if (!name_topic_check(topic, bad_name, sizeof bad_name)) {
        return tool_usage_error(cmd, "%s", bad_name);
    }
    if (optind < argc) {
        return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    }
    if (have_group_opt && group == NULL) {
        return tool_usage_error(cmd, "--shares and --session-ms apply to --group: add --group");
    }
    if (have_reset && group == NULL) {
        return tool_usage_error(cmd, "--reset-policy applies to a --group position: add --group");
    }
    if (n_from > 1) {
        return tool_usage_error(cmd, "give one start position: --from or --from-time, once");
    }
    why = consume_check_format(fmt);
    if (why != NULL) {
        return tool_usage_error(cmd, "--format '%s' %s", fmt, why);
    }
    if (filter != NULL && key != NULL) {
        return tool_usage_error(cmd, "give -k KEY or --filter PATTERN, not both");
    }
    if (filter != NULL && !glob_check((const uint8_t *)filter, strlen(filter), bad_name,
                                      sizeof bad_name)) {
        return tool_usage_error(cmd, "--filter '%.64s': %s", filter, bad_name);
    }
    /* streams: -k on the stream index, unless a start position or a group
     * asks for the offset-ordered scan. */
    int on_index = key != NULL && n_from == 0 && group == NULL;
    if ((have_from_version || backward) && !on_index) {
        return tool_usage_error(cmd, "--from-version and --backward read one stream: they need "
                                "-k KEY and go without --from, --from-time and --group");
    }
    if (backward && follow) {
        return tool_usage_error(cmd, "--backward cannot follow (-f): it reads newest first");
    }
    if (strstr(fmt, "%V") != NULL && !on_index) {
        return tool_usage_error(cmd, "--format %%V (stream version) needs -k KEY without "
                                "--from, --from-time and --group");
    }
    if (on_index && (key_len == 0 || key_len > 4096)) {
        return tool_usage_error(cmd, "-k KEY must be 1 to 4096 bytes long");
    }

    /* No SA_RESTART: SIGINT must cut a long poll short. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = consume_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    rc = tool_connect(cmd, &client);
    if (rc != TOOL_EXIT_OK) {
        return rc;
    }
    if (linearizable || group != NULL) {
        /* Once, before anything is read: every read below is at or after
         * this index, so it includes every write acknowledged before now.
         * A group reads so always: its position comes from the leader, and
         * a follower a few entries behind would otherwise answer that the
         * topic ends before records the group was written after. */
        uint64_t index = 0;
        rc = tally_read_index(client, &index);
        if (rc != 0) {
            rc = tool_cluster_error(client, cmd, rc);
            goto out;
        }
        if (index > opts.min_index) {
            opts.min_index = index;
        }
    }
    if (follow) {
        /* Leave the request timeout room beyond the long poll. */
        opts.max_wait_ms = CONSUME_POLL_MS;
        if (tool_g.timeout_ms > 0 && (unsigned)tool_g.timeout_ms / 2 < opts.max_wait_ms) {
            opts.max_wait_ms = (unsigned)tool_g.timeout_ms / 2;
        }
    }
    if (on_index) {
        struct consume_stream_args sargs = {topic, key, key_len, from_version, backward,
                                         have_from_version || backward, follow, count, fmt,
                                         opts.node, opts.min_index, opts.max_wait_ms};
        rc = consume_stream(cmd, client, &sargs);
        goto out;
    }
    if (group != NULL) {
        struct tally_group_position gp;
        int found = 0;

        rc = consume_group_position(client, group, topic, &gp, &found);
        if (rc != 0) {
            rc = tool_cluster_error(client, cmd, rc);
            goto out;
        }
        if (found && gp.offset < gp.start_offset) {
            /* Retention removed records the group had not read. */
            uint64_t lost_to = gp.start_offset - 1;
            if (reset == CONSUME_RESET_ERROR) {
                rc = tool_error(cmd,
                                "group %s is at offset %" PRIu64 " of %s, but the topic now "
                                "starts at %" PRIu64 ": offsets %" PRIu64 "..%" PRIu64
                                " were removed by retention before the group read them; move "
                                "the group with 'tally group reset %s %s --to earliest' (or "
                                "--to latest), or consume with --reset-policy earliest",
                                group, gp.offset, topic, gp.start_offset, gp.offset, lost_to,
                                group, topic);
                goto out;
            }
            uint64_t to = reset == CONSUME_RESET_LATEST ? gp.next_offset : gp.start_offset;
            fprintf(stderr,
                    "tally consume: group %s was at offset %" PRIu64 " of %s, but offsets "
                    "%" PRIu64 "..%" PRIu64 " were removed by retention before it read them; "
                    "going on at %" PRIu64 " (--reset-policy %s)\n",
                    group, gp.offset, topic, gp.offset, lost_to, to,
                    reset == CONSUME_RESET_LATEST ? "latest" : "earliest");
            /* The group's members start from its stored positions: move
             * them, as 'tally group reset' would. */
            rc = consume_commit(client, group, topic, gp.topic_id, to);
            if (rc != 0) {
                rc = tool_cluster_error(client, cmd, rc);
                goto out;
            }
            gp.offset = to;
        }
        if (found && n_from > 0) {
            fprintf(stderr,
                    "tally consume: group %s resumes at its position %" PRIu64 " on %s; "
                    "--from and --from-time only place a new group (move this one with "
                    "'tally group reset %s %s --to ...')\n",
                    group, gp.offset, topic, group, topic);
        }
        if (found) {
            /* A stored position beats --from and --from-time, which only
             * say where a new group starts. */
            offset = gp.offset;
            from = CONSUME_FROM_OFFSET;
            topic_id = gp.topic_id;
        }
    }
    if (from == CONSUME_FROM_TIME) {
        rc = tally_offset_for_time(client, topic, from_time, &offset);
        if (rc != 0) {
            rc = tool_cluster_error(client, cmd, rc);
            goto out;
        }
        /* The offset is that of a batch holding a record at or after
         * from_time; the batch's older records are skipped below. */
        skip_old = 1;
    } else if (from != CONSUME_FROM_OFFSET) {
        rc = consume_resolve(cmd, client, topic, from, &offset);
        if (rc != TOOL_EXIT_OK) {
            goto out;
        }
    }

    if (group != NULL && topic_id == TALLY_ANY_TOPIC_ID) {
        /* A new group: store its start now, bound to the topic as it is;
         * its members' shares start there. */
        rc = consume_commit(client, group, topic, TALLY_ANY_TOPIC_ID, offset);
        if (rc != 0) {
            rc = tool_cluster_error(client, cmd, rc);
            goto out;
        }
    }
    if (group != NULL) {
        struct consume_shared_args sa_args = {group, topic, filter, key, fmt, key_len, &gopts,
                                              follow, count, skip_old, from_time,
                                              opts.max_wait_ms};
        rc = consume_shared(cmd, client, &sa_args);
        goto out;
    }
    while (!consume_interrupted && (count == 0 || printed < count)) {
        struct tally_fetch_result res;
        uint64_t next;
        size_t i;
        int done = 0;

        memset(&res, 0, sizeof res);
        rc = filter != NULL ? tally_fetch_filtered(client, topic, offset, filter, &opts, &res)
                            : tally_fetch(client, topic, offset, &opts, &res);
        if (rc == 0 && tally_fetch_possibly_stale(&res) && !warned_stale) {
            fprintf(stderr, "tally consume: warning: the node that answered knows no leader "
                    "(cut off from the majority?): these records may miss acknowledged "
                    "writes; use --linearizable for a read that includes them\n");
            warned_stale = 1;
        }
        if (rc != 0) {
            if (consume_interrupted) {
                break;
            }
            if (follow && consume_transient(rc)) {
                fprintf(stderr, "tally consume: %s; retrying\n", tally_errmsg(client));
                consume_sleep_ms(CONSUME_RETRY_MS);
                continue;
            }
            rc = tool_cluster_error(client, cmd, rc);
            goto out;
        }
        if (!have_stop) {
            stop = res.high_offset;
            have_stop = 1;
        }
        next = offset;
        for (i = 0; i < res.n; i++) {
            const struct tally_record *r = &res.records[i];

            if (r->offset < offset) {
                continue; /* the batch began before where we asked */
            }
            if (!follow && r->offset >= stop) {
                done = 1;
                break;
            }
            /* Past this record from here on, printed or filtered out. */
            next = r->offset + 1;
            if (consume_print_wanted(fmt, r, &skip_old, from_time, key, key_len) &&
                count > 0 && ++printed == count) {
                break;
            }
        }
        if (res.next_offset > next && (count == 0 || printed < count) && !done) {
            next = res.next_offset; /* skip gaps left by compaction */
        }
        tally_fetch_result_free(&res);
        rc = tool_check_stdout(cmd);
        if (rc >= 0) {
            goto out; /* nothing committed: the reader may not have seen it all */
        }
        if (!follow && (done || next >= stop || next == offset)) {
            break; /* the end, or a node that has nothing more to give */
        }
        offset = next;
    }
    rc = TOOL_EXIT_OK;
out:
    tally_client_destroy(client);
    return rc;
}
