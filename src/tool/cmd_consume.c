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

#include "tool/util.h"

static const char consume_help[] =
    "Usage: tally consume TOPIC [--from OFFSET|beginning|end] [-n COUNT] [-f]\n"
    "                     [--format FMT] [--node HOST:PORT] [--min-index N]\n"
    "\n"
    "Print the records of TOPIC in offset order. Reads are served by any node\n"
    "and return committed records only.\n"
    "\n"
    "  --from OFFSET|beginning|end  where to start (default beginning)\n"
    "  -n, --count COUNT    stop after COUNT records\n"
    "  -f, --follow         keep waiting for new records (long poll) until COUNT\n"
    "                       records were printed or SIGINT (then exit 0); without\n"
    "                       -f, stop at the end of the topic as the node reported\n"
    "                       it at the first read\n"
    "  --format FMT         how to print each record (default '%o\\t%k\\t%v\\n'):\n"
    "                       %o offset, %k key, %v value, %t timestamp (ms since\n"
    "                       the epoch, set by the leader), %% a '%', and the\n"
    "                       escapes \\t \\n \\\\; keys and values are printed as raw\n"
    "                       bytes; a missing key and a tombstone (deleted key)\n"
    "                       print as empty\n"
    "  --node HOST:PORT     read from this node rather than any\n"
    "  --min-index N        have the node wait until it has applied Raft index N\n"
    "                       before answering (read your own write on a follower;\n"
    "                       see 'tally produce --print-index')\n"
    "\n" TOOL_COMMON_HELP;

enum {
    CONSUME_OPT_FROM = TOOL_OPT__FIRST_FREE,
    CONSUME_OPT_FORMAT,
    CONSUME_OPT_NODE,
    CONSUME_OPT_MIN_INDEX,
};

enum consume_from { CONSUME_FROM_OFFSET, CONSUME_FROM_BEGINNING, CONSUME_FROM_END };

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
            if (strchr("okvt%", *p) == NULL) {
                return "has an unknown %-directive (want %o %k %v %t %%)";
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

static void consume_print(const char *fmt, const struct tally_record *r)
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

int cmd_consume_main(int argc, char **argv)
{
    static const char cmd[] = "consume";
    static const struct option longopts[] = {
        TOOL_COMMON_LONGOPTS,
        {"from", required_argument, NULL, CONSUME_OPT_FROM},
        {"count", required_argument, NULL, 'n'},
        {"follow", no_argument, NULL, 'f'},
        {"format", required_argument, NULL, CONSUME_OPT_FORMAT},
        {"node", required_argument, NULL, CONSUME_OPT_NODE},
        {"min-index", required_argument, NULL, CONSUME_OPT_MIN_INDEX},
        {NULL, 0, NULL, 0},
    };
    enum consume_from from = CONSUME_FROM_BEGINNING;
    struct tally_fetch_options opts;
    struct sigaction sa;
    tally_client *client;
    const char *fmt = "%o\\t%k\\t%v\\n";
    const char *topic;
    const char *why;
    uint64_t offset = 0;
    uint64_t count = 0; /* 0: no limit */
    uint64_t printed = 0;
    uint64_t stop = 0;
    uint64_t v;
    int have_stop = 0;
    int follow = 0;
    int c;
    int rc;

    tally_fetch_options_init(&opts);
    tool_getopt_reset();
    while ((c = getopt_long(argc, argv, TOOL_COMMON_SHORTOPTS "n:f", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(consume_help, stdout);
            return TOOL_EXIT_OK;
        case '?':
            return tool_bad_option(cmd, argv);
        case CONSUME_OPT_FROM:
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
        case 'n':
            if (!tool_parse_u64(optarg, &count) || count == 0) {
                return tool_usage_error(cmd, "-n needs a positive count, not '%s'", optarg);
            }
            break;
        case 'f':
            follow = 1;
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
    if (topic[0] == '\0' || strlen(topic) > 255) {
        return tool_usage_error(cmd, "topic name must be 1 to 255 bytes long");
    }
    if (optind < argc) {
        return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    }
    why = consume_check_format(fmt);
    if (why != NULL) {
        return tool_usage_error(cmd, "--format '%s' %s", fmt, why);
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
    if (follow) {
        /* Leave the request timeout room beyond the long poll. */
        opts.max_wait_ms = CONSUME_POLL_MS;
        if (tool_g.timeout_ms > 0 && (unsigned)tool_g.timeout_ms / 2 < opts.max_wait_ms) {
            opts.max_wait_ms = (unsigned)tool_g.timeout_ms / 2;
        }
    }
    if (from != CONSUME_FROM_OFFSET) {
        rc = consume_resolve(cmd, client, topic, from, &offset);
        if (rc != TOOL_EXIT_OK) {
            goto out;
        }
    }

    while (!consume_interrupted && (count == 0 || printed < count)) {
        struct tally_fetch_result res;
        uint64_t next;
        size_t i;
        int done = 0;

        memset(&res, 0, sizeof res);
        rc = tally_fetch(client, topic, offset, &opts, &res);
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
            consume_print(fmt, r);
            next = r->offset + 1;
            if (count > 0 && ++printed == count) {
                break;
            }
        }
        if (res.next_offset > next && (count == 0 || printed < count) && !done) {
            next = res.next_offset; /* skip gaps left by compaction */
        }
        tally_fetch_result_free(&res);
        rc = tool_check_stdout(cmd);
        if (rc >= 0) {
            goto out;
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
