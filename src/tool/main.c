/* tally: the command-line client of a tally cluster; parses the global
 * options and hands the rest of argv to one command. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool/cmd_backup.h"
#include "tool/cmd_log.h"
#include "tool/util.h"

#ifndef TALLY_VERSION_STRING
#define TALLY_VERSION_STRING "unknown"
#endif

static const char main_help[] =
    "Usage: tally [OPTIONS] COMMAND [ARGS...]\n"
    "\n"
    "Client of a tally cluster: a replicated log of topics with dense offsets.\n"
    "The client finds the leader by itself from any node in the broker list.\n"
    "\n"
    "Commands:\n"
    "  topic create|alter|list|delete  manage topics\n"
    "  produce TOPIC [VALUE]      append records (one per stdin line without VALUE)\n"
    "  consume TOPIC              print records\n"
    "  group list|describe|reset|delete  consumer group positions\n"
    "  stream meta TOPIC KEY ...  truncate a stream, keep its last N or newest records\n"
    "  status [--json]            members, roles, leader, indexes, topics\n"
    "  member add|remove|transfer change the cluster's membership or leader\n"
    "  bench produce|consume TOPIC measure throughput and latency\n"
    "  log verify|dump DIR        check or print a node's data offline\n"
    "  backup --to DIR            copy a node's state at one Raft index (online)\n"
    "  restore --from DIR         build a new node's data directory from a backup\n"
    "  user add|passwd|remove|list  the cluster's users (SCRAM)\n"
    "  acl add|remove|list        access control lists (authorize = acl)\n"
    "\n"
    "Options (also accepted after the command):\n"
    "  -b, --brokers HOST:PORT[,...]  nodes to contact (default $TALLY_BROKERS,\n"
    "                                 else " TOOL_DEFAULT_BROKERS ")\n"
    "      --timeout MS               per-request timeout in milliseconds\n"
    "                                 (default 10000)\n"
    "  -h, --help                     show this help; 'tally COMMAND --help'\n"
    "                                 shows a command's\n"
    "      --version                  print the version\n"
    "\n"
    "Exit status: 0 success, 1 error from the cluster (the message names it),\n"
    "2 bad usage.\n";

enum { MAIN_OPT_VERSION = TOOL_OPT__FIRST_FREE };

struct main_command {
    const char *name;
    int (*run)(int argc, char **argv);
};

static const struct main_command main_commands[] = {
    {"topic", cmd_topic_main},     {"produce", cmd_produce_main},
    {"consume", cmd_consume_main}, {"status", cmd_status_main},
    {"member", cmd_member_main},   {"bench", cmd_bench_main},
    {"log", cmd_log_main},         {"backup", cmd_backup_main},
    {"restore", cmd_restore_main}, {"group", cmd_group_main},
    {"stream", cmd_stream_main}, /* streams */
    {"user", cmd_user_main},       {"acl", cmd_acl_main},
};

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        TOOL_COMMON_LONGOPTS,
        {"version", no_argument, NULL, MAIN_OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    size_t i;
    int c;
    int rc;

    /* Output errors are checked where we write; a reader that went away
     * (`tally consume t | head`) must not kill us mid-request. */
    signal(SIGPIPE, SIG_IGN);

    tool_getopt_reset();
    /* '+': stop at the command name; the command parses the rest. */
    while ((c = getopt_long(argc, argv, "+" TOOL_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(main_help, stdout);
            return TOOL_EXIT_OK;
        case MAIN_OPT_VERSION:
            printf("tally %s\n", TALLY_VERSION_STRING);
            return TOOL_EXIT_OK;
        case '?':
            return tool_bad_option(NULL, argv);
        default:
            rc = tool_common_option(NULL, c, optarg);
            if (rc != TOOL_EXIT_OK) {
                return rc < 0 ? TOOL_EXIT_USAGE : rc;
            }
        }
    }
    if (optind >= argc) {
        return tool_usage_error(NULL, "missing COMMAND");
    }
    (void)tool_tls_wanted(); /* $TALLY_TLS_*, once, before any thread starts */
    if (tool_g.user != NULL || getenv("TALLY_USER") != NULL) {
        /* The login too: bench threads only read it. A command's own
         * --user later reads it again (tool_connect). */
        if ((rc = tool_read_login(NULL)) != TOOL_EXIT_OK) {
            return rc;
        }
    }
    if (strcmp(argv[optind], "help") == 0) {
        fputs(main_help, stdout);
        return TOOL_EXIT_OK;
    }
    for (i = 0; i < sizeof main_commands / sizeof main_commands[0]; i++) {
        if (strcmp(argv[optind], main_commands[i].name) == 0) {
            int first = optind; /* the reset below clobbers optind */

            tool_getopt_reset();
            return main_commands[i].run(argc - first, argv + first);
        }
    }
    return tool_usage_error(NULL, "unknown command '%s'", argv[optind]);
}
