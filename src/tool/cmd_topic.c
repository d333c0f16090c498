/* tally topic create|alter|list|delete: manage topics. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/name.h"
#include "tool/util.h"

static const char topic_help[] =
    "Usage: tally topic create NAME [--policy P] [--retention-ms N]\n"
    "                          [--retention-bytes N] [--segment-bytes N]\n"
    "       tally topic alter NAME [--policy P] [--retention-ms N]\n"
    "                          [--retention-bytes N]\n"
    "       tally topic list\n"
    "       tally topic delete NAME\n"
    "\n"
    "create   make a new topic (exit 1 if it already exists)\n"
    "  --policy retain|delete|compact|compact,delete\n"
    "                        retain: keep every record (default)\n"
    "                        delete: drop old sealed segments by age and size\n"
    "                        compact: keep the latest record of each key\n"
    "  --retention-ms N      age limit for 'delete' (-1 = unlimited, default)\n"
    "  --retention-bytes N   size limit for 'delete' (-1 = unlimited, default)\n"
    "  --segment-bytes N     segment file size, 4096 to 1073741824 (0 = the server\n"
    "                        default)\n"
    "alter    change the settings given (the others stay; the segment size is\n"
    "         fixed at creation); retention and compaction act on them at their\n"
    "         next pass\n"
    "list     one line per topic: name, policy, start_offset, next_offset,\n"
    "         retention, as the answering node sees them\n"
    "delete   remove a topic and its records\n"
    "\n" TOOL_COMMON_HELP;

enum {
    TOPIC_OPT_POLICY = TOOL_OPT__FIRST_FREE,
    TOPIC_OPT_RETENTION_MS,
    TOPIC_OPT_RETENTION_BYTES,
    TOPIC_OPT_SEGMENT_BYTES,
};

/* The server's rule (lib/name.h), checked here so the user gets a usage
 * error with the reason. */
static int topic_check_name(const char *cmd, const char *name)
{
    char why[160];

    if (!name_topic_check(name, why, sizeof why)) {
        return tool_usage_error(cmd, "%s", why);
    }
    return TOOL_EXIT_OK;
}

/* topic create, and topic alter (@alter: only the settings given). */
static int topic_create(int argc, char **argv, bool alter)
{
    const char *cmd = alter ? "topic alter" : "topic create";
    unsigned set = 0;
    static const struct option longopts[] = {
        TOOL_COMMON_LONGOPTS,
        {"policy", required_argument, NULL, TOPIC_OPT_POLICY},
        {"retention-ms", required_argument, NULL, TOPIC_OPT_RETENTION_MS},
        {"retention-bytes", required_argument, NULL, TOPIC_OPT_RETENTION_BYTES},
        {"segment-bytes", required_argument, NULL, TOPIC_OPT_SEGMENT_BYTES},
        {NULL, 0, NULL, 0},
    };
    struct tally_topic_config cfg;
    tally_client *client;
    int64_t v;
    int c;
    int rc;

    tally_topic_config_init(&cfg);
    tool_getopt_reset();
    while ((c = getopt_long(argc, argv, TOOL_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(topic_help, stdout);
            return TOOL_EXIT_OK;
        case '?':
            return tool_bad_option(cmd, argv);
        case TOPIC_OPT_POLICY:
            cfg.policy = tool_policy_parse(optarg);
            set |= TALLY_SET_POLICY;
            if (cfg.policy < 0) {
                return tool_usage_error(cmd,
                                        "unknown policy '%s': want retain, delete, compact or "
                                        "compact,delete",
                                        optarg);
            }
            break;
        case TOPIC_OPT_RETENTION_MS:
        case TOPIC_OPT_RETENTION_BYTES:
            if (!tool_parse_i64(optarg, &v) || v < -1) {
                return tool_usage_error(cmd, "%s needs a number >= -1, not '%s'",
                                        c == TOPIC_OPT_RETENTION_MS ? "--retention-ms"
                                                                    : "--retention-bytes",
                                        optarg);
            }
            if (c == TOPIC_OPT_RETENTION_MS) {
                cfg.retention_ms = v;
                set |= TALLY_SET_RETENTION_MS;
            } else {
                cfg.retention_bytes = v;
                set |= TALLY_SET_RETENTION_BYTES;
            }
            break;
        case TOPIC_OPT_SEGMENT_BYTES:
            if (alter) {
                return tool_usage_error(cmd, "--segment-bytes is fixed when a topic is created");
            }
            if (!tool_parse_i64(optarg, &v) || v < 0) {
                return tool_usage_error(cmd, "--segment-bytes needs a number >= 0, not '%s'",
                                        optarg);
            }
            cfg.segment_bytes = v;
            break;
        default:
            rc = tool_common_option(cmd, c, optarg);
            if (rc != TOOL_EXIT_OK) {
                return rc < 0 ? TOOL_EXIT_USAGE : rc;
            }
        }
    }
    if (optind >= argc) {
        return tool_usage_error(cmd, "missing NAME");
    }
    if (optind + 1 < argc) {
        return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
    }
    if (alter && set == 0) {
        return tool_usage_error(cmd, "nothing to change: give --policy, --retention-ms or "
                                     "--retention-bytes");
    }
    rc = topic_check_name(cmd, argv[optind]);
    if (rc != TOOL_EXIT_OK) {
        return rc;
    }
    rc = tool_connect(cmd, &client);
    if (rc != TOOL_EXIT_OK) {
        return rc;
    }
    rc = alter ? tally_topic_alter(client, argv[optind], set, &cfg)
               : tally_topic_create(client, argv[optind], &cfg);
    if (rc != 0) {
        rc = tool_cluster_error(client, cmd, rc);
    } else if (alter) {
        printf("altered topic %s\n", argv[optind]);
        rc = tool_check_stdout(cmd);
        rc = rc < 0 ? TOOL_EXIT_OK : rc;
    } else {
        printf("created topic %s (policy %s)\n", argv[optind], tool_policy_name(cfg.policy));
        rc = tool_check_stdout(cmd);
        rc = rc < 0 ? TOOL_EXIT_OK : rc;
    }
    tally_client_destroy(client);
    return rc;
}

static void topic_format_retention(const struct tally_topic_config *cfg, char *out, size_t size)
{
    if (cfg->retention_ms < 0 && cfg->retention_bytes < 0) {
        snprintf(out, size, "unlimited");
    } else if (cfg->retention_bytes < 0) {
        snprintf(out, size, "%" PRId64 "ms", cfg->retention_ms);
    } else if (cfg->retention_ms < 0) {
        snprintf(out, size, "%" PRId64 "B", cfg->retention_bytes);
    } else {
        snprintf(out, size, "%" PRId64 "ms,%" PRId64 "B", cfg->retention_ms,
                 cfg->retention_bytes);
    }
}

static int topic_by_name(const void *a, const void *b)
{
    return strcmp(((const struct tally_topic_info *)a)->name,
                  ((const struct tally_topic_info *)b)->name);
}

/* list and delete take no options of their own. */
static int topic_parse_plain(const char *cmd, int argc, char **argv)
{
    static const struct option longopts[] = {
        TOOL_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int c;
    int rc;

    tool_getopt_reset();
    while ((c = getopt_long(argc, argv, TOOL_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(topic_help, stdout);
            return -1;
        case '?':
            return tool_bad_option(cmd, argv);
        default:
            rc = tool_common_option(cmd, c, optarg);
            if (rc != TOOL_EXIT_OK) {
                return rc < 0 ? TOOL_EXIT_USAGE : rc;
            }
        }
    }
    return TOOL_EXIT_OK;
}

static int topic_list(int argc, char **argv)
{
    static const char cmd[] = "topic list";
    struct tally_topic_info *topics = NULL;
    tally_client *client;
    char retention[64];
    size_t n = 0;
    size_t width = 4;
    size_t i;
    int rc;

    rc = topic_parse_plain(cmd, argc, argv);
    if (rc != TOOL_EXIT_OK) {
        return rc < 0 ? TOOL_EXIT_OK : rc;
    }
    if (optind < argc) {
        return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    }
    rc = tool_connect(cmd, &client);
    if (rc != TOOL_EXIT_OK) {
        return rc;
    }
    rc = tally_topic_list(client, &topics, &n);
    if (rc != 0) {
        rc = tool_cluster_error(client, cmd, rc);
        tally_client_destroy(client);
        return rc;
    }
    qsort(topics, n, sizeof topics[0], topic_by_name);
    for (i = 0; i < n; i++) {
        size_t len = strlen(topics[i].name);
        width = len > width ? len : width;
    }
    printf("%-*s  %-14s  %12s  %12s  %s\n", (int)width, "NAME", "POLICY", "START_OFFSET",
           "NEXT_OFFSET", "RETENTION");
    for (i = 0; i < n; i++) {
        topic_format_retention(&topics[i].config, retention, sizeof retention);
        printf("%-*s  %-14s  %12" PRIu64 "  %12" PRIu64 "  %s\n", (int)width, topics[i].name,
               tool_policy_name(topics[i].config.policy), topics[i].start_offset,
               topics[i].next_offset, retention);
    }
    free(topics);
    tally_client_destroy(client);
    rc = tool_check_stdout(cmd);
    return rc < 0 ? TOOL_EXIT_OK : rc;
}

static int topic_delete(int argc, char **argv)
{
    static const char cmd[] = "topic delete";
    tally_client *client;
    int rc;

    rc = topic_parse_plain(cmd, argc, argv);
    if (rc != TOOL_EXIT_OK) {
        return rc < 0 ? TOOL_EXIT_OK : rc;
    }
    if (optind >= argc) {
        return tool_usage_error(cmd, "missing NAME");
    }
    if (optind + 1 < argc) {
        return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
    }
    rc = topic_check_name(cmd, argv[optind]);
    if (rc != TOOL_EXIT_OK) {
        return rc;
    }
    rc = tool_connect(cmd, &client);
    if (rc != TOOL_EXIT_OK) {
        return rc;
    }
    rc = tally_topic_delete(client, argv[optind]);
    if (rc != 0) {
        rc = tool_cluster_error(client, cmd, rc);
    } else {
        printf("deleted topic %s\n", argv[optind]);
        rc = tool_check_stdout(cmd);
        rc = rc < 0 ? TOOL_EXIT_OK : rc;
    }
    tally_client_destroy(client);
    return rc;
}

int cmd_topic_main(int argc, char **argv)
{
    if (argc < 2) {
        return tool_usage_error("topic", "missing SUBCOMMAND: create, alter, list or delete");
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(topic_help, stdout);
        return TOOL_EXIT_OK;
    }
    if (strcmp(argv[1], "create") == 0) {
        return topic_create(argc - 1, argv + 1, false);
    }
    if (strcmp(argv[1], "alter") == 0) {
        return topic_create(argc - 1, argv + 1, true);
    }
    if (strcmp(argv[1], "list") == 0) {
        return topic_list(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "delete") == 0) {
        return topic_delete(argc - 1, argv + 1);
    }
    return tool_usage_error("topic",
                            "unknown subcommand '%s': want create, alter, list or delete",
                            argv[1]);
}
