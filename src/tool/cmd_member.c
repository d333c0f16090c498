/* tally member add|remove|transfer: change the cluster's membership or
 * move its leadership. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tool/util.h"

static const char member_help[] =
    "Usage: tally member add ID CLIENT_HOST:PORT/RAFT_HOST:PORT\n"
    "       tally member remove ID\n"
    "       tally member transfer ID\n"
    "\n"
    "add       add node ID as a voting member; start its tallyd (without\n"
    "          --bootstrap) with the same addresses\n"
    "remove    remove node ID from the cluster\n"
    "transfer  make node ID the leader (0: any up-to-date voter)\n"
    "\n"
    "Each change is sent to the leader and committed through Raft.\n"
    "\n" TOOL_COMMON_HELP;

/* "HOST:PORT/HOST:PORT": check the shape only; the server checks the rest. */
static int member_check_addr(const char *addr)
{
    const char *slash = strchr(addr, '/');

    if (slash == NULL || slash == addr || slash[1] == '\0' || strchr(slash + 1, '/') != NULL) {
        return 0;
    }
    if (memchr(addr, ':', (size_t)(slash - addr)) == NULL || strchr(slash + 1, ':') == NULL) {
        return 0;
    }
    return 1;
}

int cmd_member_main(int argc, char **argv)
{
    static const char cmd[] = "member";
    static const struct option longopts[] = {
        TOOL_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    tally_client *client;
    const char *sub;
    uint64_t id;
    int nargs;
    int c;
    int rc;

    tool_getopt_reset();
    while ((c = getopt_long(argc, argv, TOOL_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(member_help, stdout);
            return TOOL_EXIT_OK;
        case '?':
            return tool_bad_option(cmd, argv);
        default:
            rc = tool_common_option(cmd, c, optarg);
            if (rc != TOOL_EXIT_OK) {
                return rc < 0 ? TOOL_EXIT_USAGE : rc;
            }
        }
    }
    if (optind >= argc) {
        return tool_usage_error(cmd, "missing SUBCOMMAND: add, remove or transfer");
    }
    sub = argv[optind++];
    if (strcmp(sub, "add") == 0) {
        nargs = 2;
    } else if (strcmp(sub, "remove") == 0 || strcmp(sub, "transfer") == 0) {
        nargs = 1;
    } else {
        return tool_usage_error(cmd, "unknown subcommand '%s': want add, remove or transfer", sub);
    }
    if (argc - optind < nargs) {
        return tool_usage_error(cmd, "%s: missing %s", sub,
                                argc - optind == 0 ? "ID" : "CLIENT_HOST:PORT/RAFT_HOST:PORT");
    }
    if (argc - optind > nargs) {
        return tool_usage_error(cmd, "%s: unexpected argument '%s'", sub, argv[optind + nargs]);
    }
    if (!tool_parse_u64(argv[optind], &id) || (id == 0 && strcmp(sub, "transfer") != 0)) {
        return tool_usage_error(cmd, "%s: ID must be a positive number, not '%s'", sub,
                                argv[optind]);
    }
    if (nargs == 2 && !member_check_addr(argv[optind + 1])) {
        return tool_usage_error(cmd, "add: address '%s' is not CLIENT_HOST:PORT/RAFT_HOST:PORT",
                                argv[optind + 1]);
    }
    rc = tool_connect(cmd, &client);
    if (rc != TOOL_EXIT_OK) {
        return rc;
    }
    if (strcmp(sub, "add") == 0) {
        rc = tally_member_add(client, id, argv[optind + 1]);
    } else if (strcmp(sub, "remove") == 0) {
        rc = tally_member_remove(client, id);
    } else {
        rc = tally_member_transfer(client, id);
    }
    if (rc != 0) {
        rc = tool_cluster_error(client, cmd, rc);
    } else {
        if (strcmp(sub, "add") == 0) {
            printf("added member %" PRIu64 " at %s\n", id, argv[optind + 1]);
        } else if (strcmp(sub, "remove") == 0) {
            printf("removed member %" PRIu64 "\n", id);
        } else if (id != 0) {
            printf("transferred leadership to %" PRIu64 "\n", id);
        } else {
            printf("transferred leadership\n");
        }
        rc = tool_check_stdout(cmd);
        rc = rc < 0 ? TOOL_EXIT_OK : rc;
    }
    tally_client_destroy(client);
    return rc;
}
