/* tally status: the cluster as its members see it, as a table or JSON. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool/util.h"

static const char status_help[] =
    "Usage: tally status [--json]\n"
    "\n"
    "Ask every member for its own view and print: the leader, term and commit\n"
    "index; each member of the configuration (a removed node that still runs\n"
    "is not listed) with its id, client and Raft addresses, role, applied\n"
    "index, whether it answered and its clock offset against the leader's\n"
    "(measured by the member every 2 s; '!' when beyond its clock_warn_ms, '-'\n"
    "when unknown); and the topics with their policy and offsets, as the first\n"
    "node that answers sees them.\n"
    "\n"
    "  --json   print one JSON object instead:\n"
    "           {\"leader_id\": N (0 when none is known), \"term\": N,\n"
    "            \"commit_index\": N,\n"
    "            \"members\": [{\"id\", \"client\", \"raft\", \"role\", \"voter\",\n"
    "                         \"spare\", \"applied_index\", \"reachable\",\n"
    "                         \"clock_offset_ms\" (null when unknown),\n"
    "                         \"clock_warning\"}],\n"
    "            \"topics\": [{\"name\", \"policy\", \"start_offset\",\n"
    "                        \"next_offset\"}]}\n"
    "           role is leader, follower, candidate, unavailable or unknown;\n"
    "           the table shows a non-voting member as standby, or spare\n"
    "           when it is not even sent the log (run its member add again);\n"
    "           policy is retain, delete, compact or compact,delete\n"
    "\n"
    "When the members disagree on the membership (a member's Raft address\n"
    "differs between their configurations), a warning on stderr says so.\n"
    "\n"
    "Exits 1 when no member answers, or when the topic list cannot be read\n"
    "(after printing the rest).\n"
    "\n" TOOL_COMMON_HELP;

enum { STATUS_OPT_JSON = TOOL_OPT__FIRST_FREE };

static int status_by_name(const void *a, const void *b)
{
    return strcmp(((const struct tally_topic_info *)a)->name,
                  ((const struct tally_topic_info *)b)->name);
}

static void status_print_json(const struct tally_status *st, const struct tally_topic_info *topics,
                              size_t n_topics)
{
    size_t i;

    printf("{\"leader_id\": %" PRIu64 ", \"term\": %" PRIu64 ", \"commit_index\": %" PRIu64
           ", \"members\": [",
           st->leader_id, st->term, st->commit_index);
    for (i = 0; i < st->n_members; i++) {
        const struct tally_member *m = &st->members[i];

        printf("%s{\"id\": %" PRIu64 ", \"client\": ", i > 0 ? ", " : "", m->id);
        tool_print_quoted(m->client_addr, strlen(m->client_addr), TOOL_QUOTE_JSON);
        fputs(", \"raft\": ", stdout);
        tool_print_quoted(m->raft_addr, strlen(m->raft_addr), TOOL_QUOTE_JSON);
        printf(", \"role\": \"%s\", \"voter\": %s, \"spare\": %s, \"applied_index\": %" PRIu64
               ", \"reachable\": %s",
               m->reachable ? tool_role_name(m->role) : "unavailable",
               m->voter ? "true" : "false", m->spare ? "true" : "false", m->applied_index,
               m->reachable ? "true" : "false");
        if (m->clock_known) {
            printf(", \"clock_offset_ms\": %" PRId64, m->clock_offset_ms);
        } else {
            fputs(", \"clock_offset_ms\": null", stdout);
        }
        printf(", \"clock_warning\": %s}", m->clock_warning ? "true" : "false");
    }
    fputs("], \"topics\": [", stdout);
    for (i = 0; i < n_topics; i++) {
        printf("%s{\"name\": ", i > 0 ? ", " : "");
        tool_print_quoted(topics[i].name, strlen(topics[i].name), TOOL_QUOTE_JSON);
        printf(", \"policy\": \"%s\", \"start_offset\": %" PRIu64 ", \"next_offset\": %" PRIu64
               "}",
               tool_policy_name(topics[i].config.policy), topics[i].start_offset,
               topics[i].next_offset);
    }
    fputs("]}\n", stdout);
}

static void status_print_table(const struct tally_status *st,
                               const struct tally_topic_info *topics, size_t n_topics,
                               int topics_ok)
{
    size_t width = 4;
    size_t i;

    if (st->leader_id != 0) {
        printf("leader: %" PRIu64 "  term: %" PRIu64 "  commit_index: %" PRIu64 "\n",
               st->leader_id, st->term, st->commit_index);
    } else {
        printf("leader: none known  term: %" PRIu64 "  commit_index: %" PRIu64 "\n", st->term,
               st->commit_index);
    }
    printf("\n%-4s  %-21s  %-21s  %-11s  %13s  %-9s  %s\n", "ID", "CLIENT", "RAFT", "ROLE",
           "APPLIED_INDEX", "REACHABLE", "CLOCK_OFFSET");
    for (i = 0; i < st->n_members; i++) {
        const struct tally_member *m = &st->members[i];
        char clock[40] = "-";

        if (m->reachable && m->clock_known) {
            snprintf(clock, sizeof clock, "%+" PRId64 " ms%s", m->clock_offset_ms,
                     m->clock_warning ? " !" : "");
        }
        printf("%-4" PRIu64 "  %-21s  %-21s  %-11s  %13" PRIu64 "  %-9s  %s\n", m->id, m->client_addr,
               m->raft_addr,
               m->spare        ? "spare"
               : !m->voter     ? "standby"
               : !m->reachable ? "unavailable"
                               : tool_role_name(m->role),
               m->applied_index, m->reachable ? "yes" : "no", clock);
    }
    if (!topics_ok) {
        return;
    }
    for (i = 0; i < n_topics; i++) {
        size_t len = strlen(topics[i].name);
        width = len > width ? len : width;
    }
    printf("\n%-*s  %-14s  %12s  %12s\n", (int)width, "TOPIC", "POLICY", "START_OFFSET",
           "NEXT_OFFSET");
    for (i = 0; i < n_topics; i++) {
        printf("%-*s  %-14s  %12" PRIu64 "  %12" PRIu64 "\n", (int)width, topics[i].name,
               tool_policy_name(topics[i].config.policy), topics[i].start_offset,
               topics[i].next_offset);
    }
}

int cmd_status_main(int argc, char **argv)
{
    static const char cmd[] = "status";
    static const struct option longopts[] = {
        TOOL_COMMON_LONGOPTS,
        {"json", no_argument, NULL, STATUS_OPT_JSON},
        {NULL, 0, NULL, 0},
    };
    struct tally_status st;
    struct tally_topic_info *topics = NULL;
    tally_client *client;
    size_t n_topics = 0;
    int json = 0;
    int topics_rc;
    int c;
    int rc;

    tool_getopt_reset();
    while ((c = getopt_long(argc, argv, TOOL_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(status_help, stdout);
            return TOOL_EXIT_OK;
        case '?':
            return tool_bad_option(cmd, argv);
        case STATUS_OPT_JSON:
            json = 1;
            break;
        default:
            rc = tool_common_option(cmd, c, optarg);
            if (rc != TOOL_EXIT_OK) {
                return rc < 0 ? TOOL_EXIT_USAGE : rc;
            }
        }
    }
    if (optind < argc) {
        return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    }
    rc = tool_connect(cmd, &client);
    if (rc != TOOL_EXIT_OK) {
        return rc;
    }
    memset(&st, 0, sizeof st);
    rc = tally_status_get(client, &st);
    if (rc != 0) {
        rc = tool_cluster_error(client, cmd, rc);
        tally_client_destroy(client);
        return rc;
    }
    topics_rc = tally_topic_list(client, &topics, &n_topics);
    if (topics_rc == 0) {
        qsort(topics, n_topics, sizeof topics[0], status_by_name);
    } else {
        n_topics = 0;
    }
    if (tally_status_disagreement(client)[0] != '\0') {
        fprintf(stderr, "tally status: warning: the members disagree on the membership (%s); "
                "see docs/operations.md, Changing a member's address\n",
                tally_status_disagreement(client));
    }
    if (json) {
        status_print_json(&st, topics, n_topics);
    } else {
        status_print_table(&st, topics, n_topics, topics_rc == 0);
    }
    rc = tool_check_stdout(cmd);
    if (rc < 0) {
        rc = TOOL_EXIT_OK;
        if (topics_rc != 0) {
            rc = tool_error(cmd, "listing topics: %s", tally_errmsg(client));
        }
    }
    free(topics);
    tally_status_free(&st);
    tally_client_destroy(client);
    return rc;
}
