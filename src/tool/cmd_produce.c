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
    "Usage: tally produce TOPIC [-k KEY] [--keyed] [--print-index] [VALUE]\n"
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
    "      --print-index print 'OFFSET<TAB>RAFT_INDEX' instead of 'OFFSET'; pass\n"
    "                    the index to 'tally consume --min-index' to read the\n"
    "                    write back from any node\n"
    "\n"
    "If a batch cannot be acknowledged (timeout, leadership lost), tally exits 1\n"
    "and says that the batch may or may not have been written; the offsets\n"
    "printed before it are committed.\n"
    "\n" TOOL_COMMON_HELP;

enum {
    PRODUCE_OPT_KEYED = TOOL_OPT__FIRST_FREE,
    PRODUCE_OPT_PRINT_INDEX,
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

static int produce_send(struct produce_state *s, const struct tally_record_in *recs, size_t n)
{
    struct tally_produce_result res;
    int rc;

    memset(&res, 0, sizeof res);
    rc = tally_produce(s->client, s->topic, recs, n, &res);
    if (rc != 0) {
        const char *msg = tally_errmsg(s->client);
        if (msg == NULL || msg[0] == '\0') {
            msg = tally_strerror(rc);
        }
        switch (rc) {
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
        {NULL, 0, NULL, 0},
    };
    struct produce_state s;
    const char *value = NULL;
    int c;
    int rc;

    memset(&s, 0, sizeof s);
    s.cmd = "produce";
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
    rc = tool_connect(s.cmd, &s.client);
    if (rc != TOOL_EXIT_OK) {
        return rc;
    }
    if (value != NULL) {
        struct tally_record_in rec;

        rec.key = s.key;
        rec.key_len = s.key != NULL ? strlen(s.key) : 0;
        rec.value = value;
        rec.value_len = strlen(value);
        rc = produce_send(&s, &rec, 1);
    } else {
        rc = produce_stdin(&s);
    }
    tally_client_destroy(s.client);
    return rc;
}
