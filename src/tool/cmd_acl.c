/* tally acl add|remove|list: the cluster's access control lists
 * (docs/security.md), enforced by nodes with authorize = acl. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool/util.h"

static const char acl_help[] =
    "Usage: tally acl add|remove --principal NAME RESOURCE --operation OP [--deny]\n"
    "       tally acl list\n"
    "\n"
    "RESOURCE is one of:\n"
    "  --topic NAME | --topic-prefix PREFIX | --group NAME | --group-prefix PREFIX\n"
    "  | --cluster\n"
    "(NAME \"*\" is every topic or group). OP: read, write, create, delete,\n"
    "alter, describe or all. --principal is a user name or a client\n"
    "certificate's name; \"*\" is any authenticated principal. A rule allows,\n"
    "or with --deny forbids; deny wins, and what no rule allows is denied.\n"
    "describe is also granted by read, write, delete and alter.\n"
    "\n"
    "What each request needs: produce: write topic; consume: read topic;\n"
    "topic create/delete: create/delete topic; consume --group: read group\n"
    "and read topic; group list|describe: describe group; group delete:\n"
    "delete group; backup: read cluster; member changes, transfer, users\n"
    "and ACLs: alter cluster; user list, acl list: describe cluster.\n"
    "Principals listed in the nodes' super_users need no rule.\n"
    "\n" TOOL_COMMON_HELP;

enum {
    ACL_OPT_PRINCIPAL = TOOL_OPT__FIRST_FREE,
    ACL_OPT_TOPIC,
    ACL_OPT_TOPIC_PREFIX,
    ACL_OPT_GROUP,
    ACL_OPT_GROUP_PREFIX,
    ACL_OPT_CLUSTER,
    ACL_OPT_OPERATION,
    ACL_OPT_DENY,
};

static const char *const acl_ops[] = {NULL,    "read",  "write",    "create",
                                      "delete", "alter", "describe", "all"};
static const char *const acl_resources[] = {NULL, "topic", "group", "cluster"};

int cmd_acl_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        TOOL_COMMON_LONGOPTS,
        {"principal", required_argument, NULL, ACL_OPT_PRINCIPAL},
        {"topic", required_argument, NULL, ACL_OPT_TOPIC},
        {"topic-prefix", required_argument, NULL, ACL_OPT_TOPIC_PREFIX},
        {"group", required_argument, NULL, ACL_OPT_GROUP},
        {"group-prefix", required_argument, NULL, ACL_OPT_GROUP_PREFIX},
        {"cluster", no_argument, NULL, ACL_OPT_CLUSTER},
        {"operation", required_argument, NULL, ACL_OPT_OPERATION},
        {"deny", no_argument, NULL, ACL_OPT_DENY},
        {NULL, 0, NULL, 0},
    };
    struct tally_acl a;
    const char *sub;
    char cmd[32];
    tally_client *client;
    int c, rc, resources = 0;

    if (argc < 2) {
        return tool_usage_error("acl", "missing SUBCOMMAND: add, remove or list");
    }
    sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        fputs(acl_help, stdout);
        return TOOL_EXIT_OK;
    }
    if (strcmp(sub, "add") != 0 && strcmp(sub, "remove") != 0 && strcmp(sub, "list") != 0) {
        return tool_usage_error("acl", "unknown subcommand '%s': want add, remove or list", sub);
    }
    snprintf(cmd, sizeof cmd, "acl %s", sub);
    argc--;
    argv++;
    memset(&a, 0, sizeof a);
    a.allow = 1;
    tool_getopt_reset();
    while ((c = getopt_long(argc, argv, TOOL_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(acl_help, stdout);
            return TOOL_EXIT_OK;
        case '?':
            return tool_bad_option(cmd, argv);
        case ACL_OPT_PRINCIPAL:
            snprintf(a.principal, sizeof a.principal, "%s", optarg);
            break;
        case ACL_OPT_TOPIC:
        case ACL_OPT_TOPIC_PREFIX:
        case ACL_OPT_GROUP:
        case ACL_OPT_GROUP_PREFIX:
            a.resource = c == ACL_OPT_TOPIC || c == ACL_OPT_TOPIC_PREFIX ? TALLY_ACL_TOPIC
                                                                         : TALLY_ACL_GROUP;
            a.prefix = c == ACL_OPT_TOPIC_PREFIX || c == ACL_OPT_GROUP_PREFIX;
            snprintf(a.name, sizeof a.name, "%s", optarg);
            resources++;
            break;
        case ACL_OPT_CLUSTER:
            a.resource = TALLY_ACL_CLUSTER;
            a.name[0] = '\0';
            resources++;
            break;
        case ACL_OPT_OPERATION:
            for (a.operation = 1; a.operation <= 7; a.operation++) {
                if (strcmp(optarg, acl_ops[a.operation]) == 0) {
                    break;
                }
            }
            if (a.operation > 7) {
                return tool_usage_error(cmd, "--operation %s: want read, write, create, "
                                             "delete, alter, describe or all", optarg);
            }
            break;
        case ACL_OPT_DENY:
            a.allow = 0;
            break;
        default:
            rc = tool_common_option(cmd, c, optarg);
            if (rc != TOOL_EXIT_OK) {
                return rc;
            }
        }
    }
    if (optind != argc) {
        return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    }
    if (strcmp(sub, "list") != 0) {
        if (a.principal[0] == '\0' || resources != 1 || a.operation == 0) {
            return tool_usage_error(cmd, "needs --principal, exactly one of --topic, "
                                         "--topic-prefix, --group, --group-prefix, --cluster, "
                                         "and --operation");
        }
        if (a.resource != TALLY_ACL_CLUSTER && a.name[0] == '\0') {
            return tool_usage_error(cmd, "the topic or group name is empty");
        }
    }
    if ((rc = tool_connect(cmd, &client)) != TOOL_EXIT_OK) {
        return rc;
    }
    if (strcmp(sub, "list") == 0) {
        struct tally_acl *v = NULL;
        size_t n = 0;
        rc = tally_acl_list(client, &v, &n);
        if (rc == 0) {
            printf("%-20s %-6s %-8s %-24s %-9s %s\n", "PRINCIPAL", "ALLOW", "RESOURCE", "NAME",
                   "OPERATION", "PATTERN");
            for (size_t i = 0; i < n; i++) {
                int r = v[i].resource >= 1 && v[i].resource <= 3 ? v[i].resource : 0;
                int o = v[i].operation >= 1 && v[i].operation <= 7 ? v[i].operation : 0;
                printf("%-20s %-6s %-8s %-24s %-9s %s\n", v[i].principal,
                       v[i].allow ? "allow" : "deny", r ? acl_resources[r] : "?",
                       v[i].resource == TALLY_ACL_CLUSTER ? "-" : v[i].name,
                       o ? acl_ops[o] : "?", v[i].prefix ? "prefix" : "literal");
            }
            free(v);
        }
    } else {
        rc = strcmp(sub, "add") == 0 ? tally_acl_add(client, &a) : tally_acl_remove(client, &a);
        if (rc == 0) {
            printf("%s: %s %s %s %s%s%s\n", strcmp(sub, "add") == 0 ? "added" : "removed",
                   a.principal, a.allow ? "may" : "may not", acl_ops[a.operation],
                   acl_resources[a.resource], a.name[0] ? " " : "", a.name);
        }
    }
    if (rc != 0) {
        rc = tool_cluster_error(client, cmd, rc);
    }
    tally_client_destroy(client);
    return rc;
}
