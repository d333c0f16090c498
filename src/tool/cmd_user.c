/* tally user add|passwd|remove|list: the cluster's users, who log in with
 * SCRAM (docs/security.md). The new password is read from a file or from
 * the first line of standard input, never from the command line; the
 * client derives the salted, iterated credentials and sends only those. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool/util.h"

static const char user_help[] =
    "Usage: tally user add NAME [--new-password-file FILE]\n"
    "       tally user passwd NAME [--new-password-file FILE]\n"
    "       tally user remove NAME\n"
    "       tally user list\n"
    "\n"
    "Users log in with SCRAM-SHA-256 or SCRAM-SHA-512 ('tally --user NAME',\n"
    "libtally's tally_client_set_auth). The cluster keeps, per user, a salt,\n"
    "an iteration count and two keys derived from the password (RFC 5802),\n"
    "replicated through Raft; never the password.\n"
    "\n"
    "add, passwd  set NAME's password (add also makes the user): from the\n"
    "             first line of FILE, else of standard input\n"
    "remove       delete NAME; its open connections stay until they close\n"
    "list         the users' names\n"
    "\n"
    "On a cluster with auth = required, these commands need a login\n"
    "themselves: --user (an existing user) or a client certificate\n"
    "(--tls-cert/--tls-key), which is how the first user is added.\n"
    "\n" TOOL_COMMON_HELP;

enum { USER_OPT_NEW_PASSWORD_FILE = TOOL_OPT__FIRST_FREE };

int cmd_user_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        TOOL_COMMON_LONGOPTS,
        {"new-password-file", required_argument, NULL, USER_OPT_NEW_PASSWORD_FILE},
        {NULL, 0, NULL, 0},
    };
    const char *sub, *file = NULL;
    char cmd[32], password[256];
    tally_client *client;
    int c, rc;

    if (argc < 2) {
        return tool_usage_error("user", "missing SUBCOMMAND: add, passwd, remove or list");
    }
    sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        fputs(user_help, stdout);
        return TOOL_EXIT_OK;
    }
    if (strcmp(sub, "add") != 0 && strcmp(sub, "passwd") != 0 && strcmp(sub, "remove") != 0 &&
        strcmp(sub, "list") != 0) {
        return tool_usage_error("user", "unknown subcommand '%s': want add, passwd, remove or "
                                        "list", sub);
    }
    snprintf(cmd, sizeof cmd, "user %s", sub);
    argc--;
    argv++;
    tool_getopt_reset();
    while ((c = getopt_long(argc, argv, TOOL_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(user_help, stdout);
            return TOOL_EXIT_OK;
        case '?':
            return tool_bad_option(cmd, argv);
        case USER_OPT_NEW_PASSWORD_FILE:
            file = optarg;
            break;
        default:
            rc = tool_common_option(cmd, c, optarg);
            if (rc != TOOL_EXIT_OK) {
                return rc;
            }
        }
    }
    if (strcmp(sub, "list") == 0 ? optind != argc : optind + 1 != argc) {
        return tool_usage_error(cmd, strcmp(sub, "list") == 0 ? "takes no argument"
                                                                : "needs exactly one NAME");
    }
    if (file != NULL && (strcmp(sub, "add") != 0 && strcmp(sub, "passwd") != 0)) {
        return tool_usage_error(cmd, "--new-password-file belongs to add and passwd");
    }
    password[0] = '\0';
    if (strcmp(sub, "add") == 0 || strcmp(sub, "passwd") == 0) {
        if (file != NULL) {
            if (tool_read_secret(file, password, sizeof password) != 0) {
                return tool_usage_error(cmd, "--new-password-file %s: %s", file,
                                        strerror(errno));
            }
        } else if (fgets(password, sizeof password, stdin) != NULL) {
            password[strcspn(password, "\r\n")] = '\0';
        }
        if (password[0] == '\0') {
            return tool_usage_error(cmd, "no password: give --new-password-file FILE or one "
                                         "line on standard input");
        }
    }
    if ((rc = tool_connect(cmd, &client)) != TOOL_EXIT_OK) {
        memset(password, 0, sizeof password);
        return rc;
    }
    if (strcmp(sub, "list") == 0) {
        char **names = NULL;
        size_t n = 0;
        rc = tally_user_list(client, &names, &n);
        if (rc == 0) {
            for (size_t i = 0; i < n; i++) {
                printf("%s\n", names[i]);
            }
            tally_user_list_free(names, n);
        }
    } else if (strcmp(sub, "remove") == 0) {
        rc = tally_user_remove(client, argv[optind]);
        if (rc == 0) {
            printf("removed user %s\n", argv[optind]);
        }
    } else {
        rc = tally_user_set(client, argv[optind], password);
        memset(password, 0, sizeof password);
        if (rc == 0) {
            printf("%s user %s\n", strcmp(sub, "add") == 0 ? "added" : "changed the password of",
                   argv[optind]);
        }
    }
    if (rc != 0) {
        rc = tool_cluster_error(client, cmd, rc);
    }
    tally_client_destroy(client);
    return rc;
}
