/* tally group list|describe|reset|delete: inspect and move the durable
 * positions of consumer groups (tally consume --group). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tool/util.h"

static const char group_help[] =
    "Usage: tally group list\n"
    "       tally group describe GROUP\n"
    "       tally group reset GROUP TOPIC --to earliest|latest|OFFSET|TIME\n"
    "       tally group delete GROUP [TOPIC]\n"
    "\n"
    "A group is a named, durable consumer position per topic, committed by\n"
    "'tally consume --group'. A position belongs to the topic it was made on:\n"
    "deleting the topic deletes it, so a topic created again under the same\n"
    "name starts every group afresh.\n"
    "\n"
    "list      one line per group: its name and how many topics it has a\n"
    "          position on\n"
    "describe  one line per topic of GROUP: the position (the next offset\n"
    "          the group reads), the topic's start and next offsets, and the\n"
    "          lag (records from the position to the end); a position below\n"
    "          the start is marked: retention removed records the group had\n"
    "          not read. Then, when consumers are in the group now, its state\n"
    "          and generation and one line per consumer: its id, address,\n"
    "          shares, the lowest committed position of its shares and the lag\n"
    "          from there (docs/groups.md); a Kafka consumer group's members\n"
    "          are listed without shares\n"
    "reset     move GROUP's position on TOPIC (made if it had none):\n"
    "  --to earliest        the topic's first stored offset\n"
    "  --to latest          the topic's end: skip what is there now\n"
    "  --to OFFSET          that offset (at most the topic's next offset)\n"
    "  --to TIME            the first record at or after TIME: milliseconds\n"
    "                       since the epoch as @MS, or UTC as\n"
    "                       YYYY-MM-DDTHH:MM:SSZ\n"
    "delete    forget GROUP's position on TOPIC, or on every topic: its next\n"
    "          consume starts where a new group's would\n"
    "\n" TOOL_COMMON_HELP;

enum { GROUP_OPT_TO = TOOL_OPT__FIRST_FREE };

/* Parse the common options and -h; returns TOOL_EXIT_OK to go on, -1 after
 * printing help, or an exit status. */
static int group_parse(const char *cmd, int argc, char **argv, const char **to)
{
    static const struct option longopts[] = {
        TOOL_COMMON_LONGOPTS,
        {"to", required_argument, NULL, GROUP_OPT_TO},
        {NULL, 0, NULL, 0},
    };
    int c;
    int rc;

    tool_getopt_reset();
    while ((c = getopt_long(argc, argv, TOOL_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(group_help, stdout);
            return -1;
        case '?':
            return tool_bad_option(cmd, argv);
        case GROUP_OPT_TO:
            if (to == NULL) {
                return tool_usage_error(cmd, "--to belongs to 'tally group reset'");
            }
            *to = optarg;
            break;
        default:
            rc = tool_common_option(cmd, c, optarg);
            if (rc != TOOL_EXIT_OK) {
                return rc;
            }
        }
    }
    return TOOL_EXIT_OK;
}

/* The positions of @group (NULL: all) from the leader. */
static int group_fetch(const char *cmd, const char *group, tally_client **client,
                       struct tally_group_position **ps, size_t *n)
{
    int rc = tool_connect(cmd, client);
    if (rc != TOOL_EXIT_OK) {
        return rc;
    }
    rc = tally_group_list(*client, group, NULL, ps, n);
    if (rc != 0) {
        rc = tool_cluster_error(*client, cmd, rc);
        tally_client_destroy(*client);
        *client = NULL;
    }
    return rc;
}

static int group_list(int argc, char **argv)
{
    static const char cmd[] = "group list";
    struct tally_group_position *ps = NULL;
    tally_client *client;
    size_t n = 0;
    int rc = group_parse(cmd, argc, argv, NULL);

    if (rc != TOOL_EXIT_OK) {
        return rc < 0 ? TOOL_EXIT_OK : rc;
    }
    if (optind < argc) {
        return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    }
    if ((rc = group_fetch(cmd, NULL, &client, &ps, &n)) != TOOL_EXIT_OK) {
        return rc;
    }
    printf("%-24s  %s\n", "GROUP", "TOPICS");
    for (size_t i = 0; i < n; i++) {
        size_t j, topics = 0;
        for (j = 0; j < i && strcmp(ps[j].group, ps[i].group) != 0; j++) {
        }
        if (j < i) {
            continue; /* listed with its first position */
        }
        for (j = i; j < n; j++) {
            topics += strcmp(ps[j].group, ps[i].group) == 0;
        }
        printf("%-24s  %zu\n", ps[i].group, topics);
    }
    free(ps);
    tally_client_destroy(client);
    rc = tool_check_stdout(cmd);
    return rc < 0 ? TOOL_EXIT_OK : rc;
}

/* The consumers in the group now (tally group describe), with the lag of
 * each from the topic's next offset in @ps. */
static void group_print_members(const struct tally_group_members *gm,
                                const struct tally_group_position *ps, size_t n)
{
    if (gm->n == 0) {
        return;
    }
    uint64_t next = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ps[i].topic, gm->topic) == 0) {
            next = ps[i].next_offset;
        }
    }
    printf("\n");
    if (gm->n_shares > 0) {
        printf("CONSUMERS: %zu, %s, generation %" PRIu32 ", reading %s in %u shares\n", gm->n,
               gm->state, gm->generation, gm->topic, gm->n_shares);
    } else {
        printf("CONSUMERS: %zu, %s (a %s group)\n", gm->n, gm->state, gm->kind);
    }
    printf("%-40s  %-21s  %-24s  %12s  %12s\n", "MEMBER", "HOST", "SHARES", "POSITION", "LAG");
    for (size_t i = 0; i < gm->n; i++) {
        const struct tally_group_member_info *m = &gm->members[i];
        char shares[256] = "-";
        size_t len = 0;
        uint64_t low = UINT64_MAX;
        for (unsigned k = 0; k < m->n_shares && len + 8 < sizeof shares; k++) {
            len += (size_t)snprintf(shares + len, sizeof shares - len, "%s%u", k ? "," : "",
                                    m->shares[k]);
            low = m->positions[k] < low ? m->positions[k] : low;
        }
        if (low == UINT64_MAX) {
            printf("%-40s  %-21s  %-24s  %12s  %12s\n", m->member_id, m->host, shares, "-", "-");
        } else {
            printf("%-40s  %-21s  %-24s  %12" PRIu64 "  %12" PRIu64 "\n", m->member_id, m->host,
                   shares, low, next > low ? next - low : 0);
        }
    }
}

/* The consumers of @group on @topic (NULL: the Kafka group's) into @gm;
 * when the leader cannot say, none, with a note on stderr (the positions
 * are known to any node, the consumers only to the leader). False if
 * out of memory. */
static bool group_members(tally_client *client, const char *group, const char *topic,
                          struct tally_group_members *gm)
{
    int rc = tally_group_members_get(client, group, topic, gm);
    if (rc == TALLY_NOMEM) {
        tool_error("group describe", "out of memory");
        return false;
    }
    if (rc != 0) {
        fprintf(stderr, "tally group describe: the group's consumers are not known: %s\n",
                tally_errmsg(client));
        memset(gm, 0, sizeof *gm);
    }
    return true;
}

static int group_describe(int argc, char **argv)
{
    static const char cmd[] = "group describe";
    struct tally_group_position *ps = NULL;
    tally_client *client;
    size_t n = 0;
    int rc = group_parse(cmd, argc, argv, NULL);

    if (rc != TOOL_EXIT_OK) {
        return rc < 0 ? TOOL_EXIT_OK : rc;
    }
    if (optind >= argc) {
        return tool_usage_error(cmd, "missing GROUP");
    }
    if (optind + 1 < argc) {
        return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
    }
    const char *group = argv[optind];
    if (group[0] == '\0' || strlen(group) > 255) {
        return tool_usage_error(cmd, "GROUP must be 1 to 255 bytes long");
    }
    if ((rc = group_fetch(cmd, group, &client, &ps, &n)) != TOOL_EXIT_OK) {
        return rc;
    }
    /* The consumers: a Kafka group's under the group's name, tally's per
     * topic it has a position on. */
    struct tally_group_members kafka;
    if (!group_members(client, group, NULL, &kafka)) {
        free(ps);
        tally_client_destroy(client);
        return TOOL_EXIT_CLUSTER;
    }
    if (n == 0 && kafka.n == 0) {
        free(ps);
        tally_client_destroy(client);
        return tool_error(cmd, "group %s has no position on any topic ('tally group list' "
                               "shows the groups)", group);
    }
    printf("%-24s  %12s  %12s  %12s  %12s\n", "TOPIC", "POSITION", "START_OFFSET",
           "NEXT_OFFSET", "LAG");
    for (size_t i = 0; i < n; i++) {
        const struct tally_group_position *p = &ps[i];
        uint64_t lag = p->next_offset > p->offset ? p->next_offset - p->offset : 0;
        printf("%-24s  %12" PRIu64 "  %12" PRIu64 "  %12" PRIu64 "  %12" PRIu64 "%s\n", p->topic,
               p->offset, p->start_offset, p->next_offset, lag,
               p->offset < p->start_offset ? "  (below the start: records lost to retention)"
                                           : "");
    }
    group_print_members(&kafka, ps, n);
    tally_group_members_free(&kafka);
    for (size_t i = 0; i < n; i++) {
        struct tally_group_members gm;
        if (!group_members(client, group, ps[i].topic, &gm)) {
            break;
        }
        group_print_members(&gm, ps, n);
        tally_group_members_free(&gm);
    }
    free(ps);
    tally_client_destroy(client);
    rc = tool_check_stdout(cmd);
    return rc < 0 ? TOOL_EXIT_OK : rc;
}

/* "YYYY-MM-DDTHH:MM:SSZ" (UTC) to ms since the epoch. */
static bool group_parse_utc(const char *s, int64_t *ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (end == NULL || *end != '\0') {
        return false;
    }
    *ms = (int64_t)timegm(&tm) * 1000;
    return true;
}

static int group_reset(int argc, char **argv)
{
    static const char cmd[] = "group reset";
    const char *to = NULL;
    enum tally_group_reset_to kind;
    int64_t value = 0;
    uint64_t u;
    uint64_t before = 0, after = 0;
    int had = 0;
    tally_client *client;
    int rc = group_parse(cmd, argc, argv, &to);

    if (rc != TOOL_EXIT_OK) {
        return rc < 0 ? TOOL_EXIT_OK : rc;
    }
    if (argc - optind < 2) {
        return tool_usage_error(cmd, "missing %s", optind >= argc ? "GROUP and TOPIC" : "TOPIC");
    }
    if (argc - optind > 2) {
        return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind + 2]);
    }
    const char *group = argv[optind], *topic = argv[optind + 1];
    if (to == NULL) {
        return tool_usage_error(cmd, "missing --to earliest|latest|OFFSET|TIME");
    }
    if (strcmp(to, "earliest") == 0) {
        kind = TALLY_RESET_EARLIEST;
    } else if (strcmp(to, "latest") == 0) {
        kind = TALLY_RESET_LATEST;
    } else if (tool_parse_u64(to, &u) && u <= INT64_MAX) {
        kind = TALLY_RESET_OFFSET;
        value = (int64_t)u;
    } else if ((to[0] == '@' && tool_parse_i64(to + 1, &value)) || group_parse_utc(to, &value)) {
        kind = TALLY_RESET_TIME;
    } else {
        return tool_usage_error(cmd,
                                "--to needs earliest, latest, an offset, @MS or "
                                "YYYY-MM-DDTHH:MM:SSZ, not '%s'",
                                to);
    }
    if ((rc = tool_connect(cmd, &client)) != TOOL_EXIT_OK) {
        return rc;
    }
    struct tally_group_position *ps = NULL;
    size_t n = 0;
    rc = tally_group_list(client, group, topic, &ps, &n);
    if (rc == 0 && n > 0) {
        had = 1;
        before = ps[0].offset;
    }
    free(ps);
    if (rc == 0) {
        rc = tally_group_reset(client, group, topic, kind, value, &after);
    }
    if (rc != 0) {
        rc = tool_cluster_error(client, cmd, rc);
    } else {
        if (had) {
            printf("group %s on %s: position %" PRIu64 " -> %" PRIu64 "\n", group, topic,
                   before, after);
        } else {
            printf("group %s on %s: position %" PRIu64 " (new)\n", group, topic, after);
        }
        rc = tool_check_stdout(cmd);
        rc = rc < 0 ? TOOL_EXIT_OK : rc;
    }
    tally_client_destroy(client);
    return rc;
}

static int group_delete(int argc, char **argv)
{
    static const char cmd[] = "group delete";
    tally_client *client;
    int rc = group_parse(cmd, argc, argv, NULL);

    if (rc != TOOL_EXIT_OK) {
        return rc < 0 ? TOOL_EXIT_OK : rc;
    }
    if (optind >= argc) {
        return tool_usage_error(cmd, "missing GROUP");
    }
    if (argc - optind > 2) {
        return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind + 2]);
    }
    const char *group = argv[optind];
    const char *topic = argc - optind == 2 ? argv[optind + 1] : NULL;
    if ((rc = tool_connect(cmd, &client)) != TOOL_EXIT_OK) {
        return rc;
    }
    rc = tally_group_delete(client, group, topic);
    if (rc != 0) {
        rc = tool_cluster_error(client, cmd, rc);
    } else {
        if (topic != NULL) {
            printf("deleted the position of group %s on %s\n", group, topic);
        } else {
            printf("deleted group %s\n", group);
        }
        rc = tool_check_stdout(cmd);
        rc = rc < 0 ? TOOL_EXIT_OK : rc;
    }
    tally_client_destroy(client);
    return rc;
}

int cmd_group_main(int argc, char **argv)
{
    if (argc < 2) {
        return tool_usage_error("group", "missing SUBCOMMAND: list, describe, reset or delete");
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(group_help, stdout);
        return TOOL_EXIT_OK;
    }
    if (strcmp(argv[1], "list") == 0) {
        return group_list(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "describe") == 0) {
        return group_describe(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "reset") == 0) {
        return group_reset(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "delete") == 0) {
        return group_delete(argc - 1, argv + 1);
    }
    return tool_usage_error("group",
                            "unknown subcommand '%s': want list, describe, reset or delete",
                            argv[1]);
}
