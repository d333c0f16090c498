/* tally produce: append records to a topic, from the command line or one
 * per line of standard input, printing each record's offset. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "tool/util.h"

static const char produce_help[] =
    "Usage: tally produce TOPIC [-k KEY] [--keyed] [--print-index] [--tombstone]\n"
    "                     [--expect-offset N | --expect-version N] [VALUE]\n"
    "\n"
    "Append records to TOPIC and print the offset assigned to each, one per\n"
    "line, once the cluster has committed it.\n"
    "\n"
    "With VALUE, write one record. Without, write one record per line of\n"
    "standard input (the trailing newline is not part of the value; every\n"
    "other byte is). Lines are sent in batches of up to 1000 records or\n"
    "256 KiB; each batch is appended atomically with consecutive offsets.\n"
    "\n"
    "  -k, --key KEY     give every record this key\n"
    "      --keyed       each input line is KEY<TAB>VALUE (split at the first TAB)\n"
    "      --tombstone   with -k KEY and no VALUE: write one tombstone (a record\n"
    "                    with no value) for KEY, which marks it deleted; in a\n"
    "                    compacted topic it removes the key's older records\n"
    "      --print-index print 'OFFSET<TAB>RAFT_INDEX' instead of 'OFFSET'; pass\n"
    "                    the index to 'tally consume --min-index' to read the\n"
    "                    write back from any node\n"
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
};

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
             * The library usually says so itself; say it once. */
            if (strstr(msg, "may or may not") != NULL) {
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

static int produce_stdin(struct produce_state *s)
{
    struct produce_span *spans = NULL;
    struct tally_record_in *recs = NULL;
    char *buf = NULL; /* the pending batch's bytes */
    size_t buf_len = 0;
    size_t buf_cap = 0;
    size_t n = 0; /* records pending in buf */
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    uint64_t lineno = 0;
    int rc = TOOL_EXIT_OK;

    spans = calloc(PRODUCE_BATCH_RECORDS, sizeof *spans);
    recs = calloc(PRODUCE_BATCH_RECORDS, sizeof *recs);
    if (spans == NULL || recs == NULL) {
        rc = tool_error(s->cmd, "out of memory");
        goto out;
    }
    while ((len = getline(&line, &line_cap, stdin)) >= 0) {
        struct produce_span *sp = &spans[n];
        const char *tab = NULL;

        lineno++;
        if (len > 0 && line[len - 1] == '\n') {
            len--;
        }
        if (s->keyed) {
            tab = memchr(line, '\t', (size_t)len);
            if (tab == NULL) {
                /* Send the well-formed lines before it first, so that the
                 * offsets printed match the input up to the bad line. */
                if (n > 0) {
                    rc = produce_flush(s, spans, recs, buf, n);
                    if (rc != TOOL_EXIT_OK) {
                        goto out;
                    }
                }
                rc = tool_usage_error(s->cmd,
                                      "--keyed: stdin line %" PRIu64 " has no TAB between "
                                      "KEY and VALUE",
                                      lineno);
                goto out;
            }
        }
        if (buf_len + (size_t)len > buf_cap) {
            size_t cap = buf_cap > 0 ? buf_cap : PRODUCE_BATCH_BYTES;
            char *nb;

            while (cap < buf_len + (size_t)len) {
                cap *= 2;
            }
            nb = realloc(buf, cap);
            if (nb == NULL) {
                rc = tool_error(s->cmd, "out of memory");
                goto out;
            }
            buf = nb;
            buf_cap = cap;
        }
        memset(sp, 0, sizeof *sp);
        if (tab != NULL) {
            sp->has_key = 1;
            sp->key_off = buf_len;
            sp->key_len = (size_t)(tab - line);
            sp->value_off = buf_len + sp->key_len + 1;
            sp->value_len = (size_t)len - sp->key_len - 1;
        } else {
            sp->value_off = buf_len;
            sp->value_len = (size_t)len;
        }
        memcpy(buf + buf_len, line, (size_t)len);
        buf_len += (size_t)len;
        n++;
        if (n >= PRODUCE_BATCH_RECORDS || buf_len >= PRODUCE_BATCH_BYTES) {
            rc = produce_flush(s, spans, recs, buf, n);
            if (rc != TOOL_EXIT_OK) {
                goto out;
            }
            n = 0;
            buf_len = 0;
        }
    }
    if (ferror(stdin)) {
        rc = tool_error(s->cmd, "reading standard input failed");
        goto out;
    }
    if (n > 0) {
        rc = produce_flush(s, spans, recs, buf, n);
    }
out:
    free(line);
    free(buf);
    free(recs);
    free(spans);
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
    if (s.topic[0] == '\0' || strlen(s.topic) > 255) {
        return tool_usage_error(s.cmd, "topic name must be 1 to 255 bytes long");
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
