/* tally produce: append records to a topic, from the command line or one
 * per line of standard input, printing each record's offset. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "lib/name.h"
#include "tool/util.h"

static const char produce_help[] =
    "Usage: tally produce TOPIC [-k KEY] [--keyed] [--print-index] [--tombstone]\n"
    "                     [--expect-offset N | --expect-version N]\n"
    "                     [--linger-ms MS] [VALUE]\n"
    "\n"
    "Append records to TOPIC and print the offset assigned to each, one per\n"
    "line, once the cluster has committed it.\n"
    "\n"
    "With VALUE, write one record. Without, write one record per line of\n"
    "standard input (the trailing newline is not part of the value; every\n"
    "other byte is). Lines are sent in batches of up to 1000 records or\n"
    "256 KiB; each batch is appended atomically with consecutive offsets. A\n"
    "line waits at most --linger-ms for more to join its batch, so slow input\n"
    "(tail -f app.log | tally produce T) is written as it comes, and fast\n"
    "input still goes in full batches. On SIGINT or SIGTERM, tally stops\n"
    "reading, sends the lines it has read, waits for them to be acknowledged\n"
    "(at most --timeout), prints how many records were written on stderr, and\n"
    "exits 0 if all were, 1 if not (a second signal ends it at once).\n"
    "\n"
    "  -k, --key KEY     give every record this key\n"
    "      --keyed       each input line is KEY<TAB>VALUE (split at the first TAB)\n"
    "      --tombstone   with -k KEY and no VALUE: write one tombstone (a record\n"
    "                    with no value) for KEY, which marks it deleted; in a\n"
    "                    compacted topic it removes the key's older records\n"
    "      --print-index print 'OFFSET<TAB>RAFT_INDEX' instead of 'OFFSET'; pass\n"
    "                    the index to 'tally consume --min-index' to read the\n"
    "                    write back from any node\n"
    "      --linger-ms MS\n"
    "                    longest a read line waits before it is sent (default\n"
    "                    50; 0 sends what has been read whenever input pauses)\n"
    "      --expect-offset N\n"
    "                    append only if the topic's next offset is N\n"
    "      --expect-version N\n"
    "                    append only if KEY (-k, required) has had exactly N\n"
    "                    records so far, tombstones included (0: KEY must not\n"
    "                    exist yet); the new record is then version N+1\n"
    "\n"
    "The condition is checked by the leader when it applies the write, so it is\n"
    "linearizable. If it does not hold, nothing is written and tally exits 1,\n"
    "naming the actual value: 'condition failed: key K is at version 5,\n"
    "expected 4'. With standard input, the first batch carries the condition\n"
    "and each later batch expects what the batches before it left (offset or\n"
    "version N plus the records written so far): the input is appended as one\n"
    "unbroken run, or stops at the first batch another writer got ahead of\n"
    "(the offsets printed before it are committed).\n"
    "\n"
    "Writes are exactly-once: a batch whose outcome is unknown (timeout, lost\n"
    "leader) is retried under the same producer id and sequence number, and the\n"
    "cluster answers a retry of a written batch with its original offsets. If a\n"
    "batch still cannot be acknowledged, tally exits 1 and says that the batch\n"
    "may or may not have been written; the offsets printed before it are\n"
    "committed.\n"
    "\n" TOOL_COMMON_HELP;

enum {
    PRODUCE_OPT_KEYED = TOOL_OPT__FIRST_FREE,
    PRODUCE_OPT_PRINT_INDEX,
    PRODUCE_OPT_TOMBSTONE,
    PRODUCE_OPT_EXPECT_OFFSET,
    PRODUCE_OPT_EXPECT_VERSION,
    PRODUCE_OPT_LINGER_MS,
};

/* Default --linger-ms: short enough that a line typed or logged is written
 * at once as far as a person can tell, long enough to gather a burst. */
#define PRODUCE_LINGER_MS 50
/* Bytes read from stdin at a time. */
#define PRODUCE_READ_BYTES (64u << 10)

static volatile sig_atomic_t produce_interrupted;

static void produce_on_signal(int sig)
{
    produce_interrupted = sig;
}

static int64_t produce_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Batch limits for stdin: large enough that a pipe of small events goes at
 * network speed, small enough to stay far below the 16 MiB batch limit and
 * to keep the unknown-outcome window of one failed request small. */
#define PRODUCE_BATCH_RECORDS 1000
#define PRODUCE_BATCH_BYTES (256u << 10)

/* Where one stdin record sits in the batch buffer. Offsets, not pointers,
 * because the buffer moves when it grows. */
struct produce_span {
    size_t key_off;
    size_t key_len;
    size_t value_off;
    size_t value_len;
    int has_key;
};

struct produce_state {
    const char *cmd;
    tally_client *client;
    const char *topic;
    const char *key; /* -k, or NULL */
    int keyed;       /* --keyed */
    int print_index; /* --print-index */
    int tombstone;   /* --tombstone */
    /* --expect-offset / --expect-version, or TALLY_NO_EXPECT. The first
     * batch carries them; each later one expects them plus what the
     * earlier batches wrote (produce_print advances them). */
    uint64_t expect_offset;
    uint64_t expect_version;
    uint64_t written; /* records acknowledged so far */
    int64_t linger_ms; /* --linger-ms */
};

/* Print the offsets of an acknowledged batch. */
static int produce_print(struct produce_state *s, const struct tally_produce_result *res,
                         size_t n)
{
    size_t i;
    int rc;

    for (i = 0; i < res->count; i++) {
        if (s->print_index) {
            printf("%" PRIu64 "\t%" PRIu64 "\n", res->base_offset + i, res->raft_index);
        } else {
            printf("%" PRIu64 "\n", res->base_offset + i);
        }
    }
    s->written += res->count;
    if (s->expect_offset != TALLY_NO_EXPECT) {
        s->expect_offset = res->base_offset + res->count;
    }
    if (s->expect_version != TALLY_NO_EXPECT) {
        s->expect_version += res->count; /* every record carries the key */
    }
    /* Flush per batch, so what a caller has seen is exactly what is
     * committed if we die on the next batch. */
    rc = tool_check_stdout(s->cmd);
    if (rc >= 0) {
        return rc == TOOL_EXIT_OK ? TOOL_EXIT_CLUSTER : rc;
    }
    if (res->count != n) {
        return tool_error(s->cmd, "the cluster acknowledged %" PRIu32 " of %zu records",
                          res->count, n);
    }
    return TOOL_EXIT_OK;
}

/* Report a failed condition: what was expected, what the leader found. */
static int produce_condition_failed(struct produce_state *s)
{
    uint64_t actual = tally_condition_actual(s->client);
    char earlier[80] = "";

    if (s->written > 0) {
        snprintf(earlier, sizeof earlier, " (%" PRIu64 " earlier record%s committed)",
                 s->written, s->written == 1 ? " was" : "s were");
    }
    if (s->expect_version != TALLY_NO_EXPECT) {
        return tool_error(s->cmd,
                          "condition failed: key %s is at version %" PRIu64
                          ", expected %" PRIu64 "; nothing written%s",
                          s->key, actual, s->expect_version, earlier);
    }
    return tool_error(s->cmd,
                      "condition failed: topic %s's next offset is %" PRIu64
                      ", expected %" PRIu64 "; nothing written%s",
                      s->topic, actual, s->expect_offset, earlier);
}

static int produce_send(struct produce_state *s, const struct tally_record_in *recs, size_t n)
{
    struct tally_produce_result res;
    struct tally_produce_options opts;
    struct tally_condition cond;
    int rc;

    memset(&res, 0, sizeof res);
    tally_produce_options_init(&opts);
    opts.expect_offset = s->expect_offset;
    if (s->expect_version != TALLY_NO_EXPECT) {
        cond.key = s->key;
        cond.key_len = strlen(s->key);
        cond.expect_version = s->expect_version;
        opts.conditions = &cond;
        opts.n_conditions = 1;
    }
    rc = tally_produce_ex(s->client, s->topic, recs, n, &opts, &res);
    if (rc != 0) {
        const char *msg = tally_errmsg(s->client);
        if (msg == NULL || msg[0] == '\0') {
            msg = tally_strerror(rc);
        }
        switch (rc) {
        case TALLY_CONDITION_FAILED:
            return produce_condition_failed(s);
        case TALLY_TIMEOUT:
        case TALLY_LEADERSHIP_LOST:
        case TALLY_IOERR:
        case TALLY_SHUTDOWN:
            /* The request may have reached the leader before the failure.
             * When libtally knows that, its message says so; say it once. */
            if (tally_outcome_unknown(s->client)) {
                return tool_error(s->cmd, "%s (%" PRIu64 " earlier record%s committed)", msg,
                                  s->written, s->written == 1 ? " was" : "s were");
            }
            return tool_error(s->cmd,
                              "%s: the write of %zu record%s may or may not have happened "
                              "(%" PRIu64 " earlier record%s committed)",
                              msg, n, n == 1 ? "" : "s", s->written,
                              s->written == 1 ? " was" : "s were");
        default:
            return tool_error(s->cmd, "%s", msg);
        }
    }
    return produce_print(s, &res, n);
}

/* Send the @n records whose bytes are in @buf at @spans. */
static int produce_flush(struct produce_state *s, const struct produce_span *spans,
                         struct tally_record_in *recs, const char *buf, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (spans[i].has_key) {
            recs[i].key = buf + spans[i].key_off;
            recs[i].key_len = spans[i].key_len;
        } else if (s->key != NULL) {
            recs[i].key = s->key;
            recs[i].key_len = strlen(s->key);
        } else {
            recs[i].key = NULL;
            recs[i].key_len = 0;
        }
        /* Never NULL: an empty line is an empty value, not a tombstone. */
        recs[i].value = spans[i].value_len > 0 ? buf + spans[i].value_off : "";
        recs[i].value_len = spans[i].value_len;
    }
    return produce_send(s, recs, n);
}

/* The batch being gathered from stdin. */
struct produce_batch {
    struct produce_span *spans;
    struct tally_record_in *recs;
    char *buf; /* the pending records' bytes */
    size_t buf_len;
    size_t buf_cap;
    size_t n;         /* records pending */
    int64_t deadline; /* when the first pending record must be sent */
};

static int produce_batch_send(struct produce_state *s, struct produce_batch *b)
{
    int rc = produce_flush(s, b->spans, b->recs, b->buf, b->n);
    b->n = 0;
    b->buf_len = 0;
    return rc;
}

/* Add stdin line @lineno (@len bytes, no newline) to the batch; sends the
 * batch when it is full. */
static int produce_add_line(struct produce_state *s, struct produce_batch *b, const char *line,
                            size_t len, uint64_t lineno)
{
    struct produce_span *sp = &b->spans[b->n];
    const char *tab = NULL;
    int rc;

    if (s->keyed) {
        tab = memchr(line, '\t', len);
        if (tab == NULL) {
            /* Send the well-formed lines before it first, so that the
             * offsets printed match the input up to the bad line. */
            if (b->n > 0 && (rc = produce_batch_send(s, b)) != TOOL_EXIT_OK) {
                return rc;
            }
            return tool_usage_error(s->cmd,
                                    "--keyed: stdin line %" PRIu64 " has no TAB between "
                                    "KEY and VALUE",
                                    lineno);
        }
    }
    if (b->buf_len + len > b->buf_cap) {
        size_t cap = b->buf_cap > 0 ? b->buf_cap : PRODUCE_BATCH_BYTES;
        char *nb;

        while (cap < b->buf_len + len) {
            cap *= 2;
        }
        nb = realloc(b->buf, cap);
        if (nb == NULL) {
            return tool_error(s->cmd, "out of memory");
        }
        b->buf = nb;
        b->buf_cap = cap;
    }
    memset(sp, 0, sizeof *sp);
    if (tab != NULL) {
        sp->has_key = 1;
        sp->key_off = b->buf_len;
        sp->key_len = (size_t)(tab - line);
        sp->value_off = b->buf_len + sp->key_len + 1;
        sp->value_len = len - sp->key_len - 1;
    } else {
        sp->value_off = b->buf_len;
        sp->value_len = len;
    }
    memcpy(b->buf + b->buf_len, line, len);
    b->buf_len += len;
    if (b->n++ == 0) {
        b->deadline = produce_now_ms() + s->linger_ms;
    }
    if (b->n >= PRODUCE_BATCH_RECORDS || b->buf_len >= PRODUCE_BATCH_BYTES) {
        return produce_batch_send(s, b);
    }
    return TOOL_EXIT_OK;
}

/* After SIGINT/SIGTERM: say what became of the input. */
static int produce_report_interrupt(struct produce_state *s, int rc, uint64_t lines,
                                    size_t partial)
{
    uint64_t lost = lines > s->written ? lines - s->written : 0;
    char tail[96] = "";
    if (partial > 0) {
        snprintf(tail, sizeof tail, "; an unfinished last line (%zu bytes, no newline) was not sent",
                 partial);
    }
    if (rc == TOOL_EXIT_OK && lost == 0) {
        fprintf(stderr, "tally produce: stopped by %s: all %" PRIu64 " records read were written%s\n",
                produce_interrupted == SIGTERM ? "SIGTERM" : "SIGINT", s->written, tail);
        return partial > 0 ? TOOL_EXIT_CLUSTER : TOOL_EXIT_OK;
    }
    fprintf(stderr,
            "tally produce: stopped by %s: %" PRIu64 " of %" PRIu64 " records read were written, "
            "%" PRIu64 " were not (or may not have been: see above)%s\n",
            produce_interrupted == SIGTERM ? "SIGTERM" : "SIGINT", s->written, lines, lost, tail);
    return rc != TOOL_EXIT_OK ? rc : TOOL_EXIT_CLUSTER;
}

/* Read stdin with poll(2), so that a batch is sent when it is full, when
 * its first line has waited linger_ms, or at the end of input, whichever
 * comes first: a slow writer's lines go out within the linger, a fast
 * one's in full batches (while a batch is in flight, the next one fills
 * in the pipe). */
static int produce_stdin(struct produce_state *s)
{
    struct produce_batch b;
    char *in = NULL; /* bytes read, not yet split into lines */
    size_t in_len = 0, in_cap = 0, scanned = 0;
    uint64_t lineno = 0;
    int eof = 0;
    int rc = TOOL_EXIT_OK;
    struct sigaction sa;

    memset(&b, 0, sizeof b);
    b.spans = calloc(PRODUCE_BATCH_RECORDS, sizeof *b.spans);
    b.recs = calloc(PRODUCE_BATCH_RECORDS, sizeof *b.recs);
    if (b.spans == NULL || b.recs == NULL) {
        rc = tool_error(s->cmd, "out of memory");
        goto out;
    }
    /* No SA_RESTART: the signal must cut the wait for input short. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = produce_on_signal;
    sa.sa_flags = SA_RESETHAND; /* a second signal ends tally at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    while (rc == TOOL_EXIT_OK) {
        /* Every whole line read so far joins the batch. */
        char *nl;
        size_t start = 0;
        while (rc == TOOL_EXIT_OK && in != NULL &&
               (nl = memchr(in + scanned, '\n', in_len - scanned)) != NULL) {
            size_t end = (size_t)(nl - in);
            rc = produce_add_line(s, &b, in + start, end - start, ++lineno);
            start = scanned = end + 1;
        }
        if (start > 0) {
            memmove(in, in + start, in_len - start);
            in_len -= start;
        }
        scanned = in_len;
        if (rc != TOOL_EXIT_OK || eof || produce_interrupted) {
            break;
        }
        int timeout = -1;
        if (b.n > 0) {
            int64_t left = b.deadline - produce_now_ms();
            if (left <= 0) {
                rc = produce_batch_send(s, &b);
                continue;
            }
            timeout = (int)left;
        }
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int k = poll(&pfd, 1, timeout);
        if (k < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = tool_error(s->cmd, "waiting for standard input: %s", strerror(errno));
            break;
        }
        if (k == 0) {
            continue; /* the linger is over: sent at the top */
        }
        if (in_cap - in_len < PRODUCE_READ_BYTES) {
            size_t cap = in_cap > 0 ? in_cap * 2 : 2 * PRODUCE_READ_BYTES;
            char *ni = realloc(in, cap);
            if (ni == NULL) {
                rc = tool_error(s->cmd, "out of memory");
                break;
            }
            in = ni;
            in_cap = cap;
        }
        ssize_t got = read(STDIN_FILENO, in + in_len, in_cap - in_len);
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            rc = tool_error(s->cmd, "reading standard input failed: %s", strerror(errno));
            break;
        }
        if (got == 0) {
            eof = 1;
        }
        in_len += (size_t)got;
    }
    if (rc == TOOL_EXIT_OK && eof && in_len > 0) {
        /* The last line has no newline: it is a record all the same. */
        rc = produce_add_line(s, &b, in, in_len, ++lineno);
        in_len = 0;
    }
    if (rc == TOOL_EXIT_OK && b.n > 0) {
        rc = produce_batch_send(s, &b);
    }
    if (produce_interrupted) {
        rc = produce_report_interrupt(s, rc, lineno, in_len);
    }
out:
    free(in);
    free(b.buf);
    free(b.recs);
    free(b.spans);
    return rc;
}

int cmd_produce_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        TOOL_COMMON_LONGOPTS,
        {"key", required_argument, NULL, 'k'},
        {"keyed", no_argument, NULL, PRODUCE_OPT_KEYED},
        {"print-index", no_argument, NULL, PRODUCE_OPT_PRINT_INDEX},
        {"tombstone", no_argument, NULL, PRODUCE_OPT_TOMBSTONE},
        {"expect-offset", required_argument, NULL, PRODUCE_OPT_EXPECT_OFFSET},
        {"expect-version", required_argument, NULL, PRODUCE_OPT_EXPECT_VERSION},
        {"linger-ms", required_argument, NULL, PRODUCE_OPT_LINGER_MS},
        {NULL, 0, NULL, 0},
    };
    struct produce_state s;
    const char *value = NULL;
    int c;
    int rc;

    memset(&s, 0, sizeof s);
    s.cmd = "produce";
    s.expect_offset = TALLY_NO_EXPECT;
    s.expect_version = TALLY_NO_EXPECT;
    s.linger_ms = PRODUCE_LINGER_MS;
    tool_getopt_reset();
    while ((c = getopt_long(argc, argv, TOOL_COMMON_SHORTOPTS "k:", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(produce_help, stdout);
            return TOOL_EXIT_OK;
        case '?':
            return tool_bad_option(s.cmd, argv);
        case 'k':
            s.key = optarg;
            break;
        case PRODUCE_OPT_KEYED:
            s.keyed = 1;
            break;
        case PRODUCE_OPT_PRINT_INDEX:
            s.print_index = 1;
            break;
        case PRODUCE_OPT_TOMBSTONE:
            s.tombstone = 1;
            break;
        case PRODUCE_OPT_EXPECT_OFFSET:
            if (!tool_parse_u64(optarg, &s.expect_offset) || s.expect_offset == TALLY_NO_EXPECT) {
                return tool_usage_error(s.cmd, "--expect-offset needs an offset, not '%s'", optarg);
            }
            break;
        case PRODUCE_OPT_EXPECT_VERSION:
            if (!tool_parse_u64(optarg, &s.expect_version) ||
                s.expect_version == TALLY_NO_EXPECT) {
                return tool_usage_error(s.cmd, "--expect-version needs a version count, not '%s'",
                                        optarg);
            }
            break;
        case PRODUCE_OPT_LINGER_MS:
            if (!tool_parse_i64(optarg, &s.linger_ms) || s.linger_ms < 0 ||
                s.linger_ms > 60000) {
                return tool_usage_error(s.cmd, "--linger-ms needs 0 to 60000 ms, not '%s'",
                                        optarg);
            }
            break;
        default:
            rc = tool_common_option(s.cmd, c, optarg);
            if (rc != TOOL_EXIT_OK) {
                return rc < 0 ? TOOL_EXIT_USAGE : rc;
            }
        }
    }
    if (optind >= argc) {
        return tool_usage_error(s.cmd, "missing TOPIC");
    }
    s.topic = argv[optind++];
    char why[160];
    if (!name_topic_check(s.topic, why, sizeof why)) {
        return tool_usage_error(s.cmd, "%s", why);
    }
    if (optind < argc) {
        value = argv[optind++];
    }
    if (optind < argc) {
        return tool_usage_error(s.cmd, "unexpected argument '%s' (quote a VALUE with spaces)",
                                argv[optind]);
    }
    if (s.keyed && s.key != NULL) {
        return tool_usage_error(s.cmd, "use either -k KEY or --keyed, not both");
    }
    if (s.keyed && value != NULL) {
        return tool_usage_error(s.cmd, "--keyed reads standard input; give no VALUE");
    }
    if (s.tombstone && (s.key == NULL || value != NULL)) {
        return tool_usage_error(s.cmd, "--tombstone needs -k KEY and no VALUE");
    }
    if (s.expect_offset != TALLY_NO_EXPECT && s.expect_version != TALLY_NO_EXPECT) {
        return tool_usage_error(s.cmd, "use either --expect-offset or --expect-version, not both");
    }
    if (s.expect_version != TALLY_NO_EXPECT && s.key == NULL) {
        return tool_usage_error(s.cmd, "--expect-version needs -k KEY (the key whose version "
                                       "is checked)");
    }
    rc = tool_connect(s.cmd, &s.client);
    if (rc != TOOL_EXIT_OK) {
        return rc;
    }
    if (value != NULL || s.tombstone) {
        struct tally_record_in rec;

        rec.key = s.key;
        rec.key_len = s.key != NULL ? strlen(s.key) : 0;
        rec.value = value; /* NULL: a tombstone */
        rec.value_len = value != NULL ? strlen(value) : 0;
        rc = produce_send(&s, &rec, 1);
    } else {
        rc = produce_stdin(&s);
    }
    tally_client_destroy(s.client);
    return rc;
}
