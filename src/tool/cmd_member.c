/* tally member add|promote|replace|remove|transfer: change the cluster's membership
 * or move its leadership. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tool/util.h"

static const char member_help[] =
    "Usage: tally member add ID CLIENT_HOST:PORT/RAFT_HOST:PORT [--wait-timeout S]\n"
    "       tally member promote ID [--wait-timeout S]\n"
    "       tally member replace ID CLIENT_HOST:PORT/RAFT_HOST:PORT [--wait-timeout S]\n"
    "       tally member remove ID\n"
    "       tally member transfer ID\n"
    "\n"
    "add       add node ID to the cluster; start its tallyd (without\n"
    "          --bootstrap) with the same addresses. It joins as a standby\n"
    "          (sent the log, not voting), catches up (a snapshot and a\n"
    "          backfill of the history from a peer if the leader's Raft log\n"
    "          no longer reaches back far enough), and is made a voter once\n"
    "          it holds every topic's whole history. Progress goes to stderr.\n"
    "promote   wait for standby ID to catch up the same way, then make it a\n"
    "          voter (after an add that stopped waiting)\n"
    "replace   node ID lost its data directory and runs on a new, empty one\n"
    "          (the others refuse it: \"it runs on data directory X, but the\n"
    "          membership records Y\"): take it out of the configuration,\n"
    "          forget its old directory, then add it again as add does\n"
    "          (standby, catch-up, voter)\n"
    "remove    remove node ID from the cluster\n"
    "          (an add of a voter at its own addresses does nothing)\n"
    "transfer  make node ID the leader (0: any up-to-date voter; prints the\n"
    "          new leader); exit 1 if it does not take over\n"
    "\n"
    "Each change is sent to the leader and committed through Raft.\n"
    "\n"
    "      --wait-timeout S  give up waiting for the catch-up after S seconds\n"
    "                        (default 600): exit 1, the node stays a standby\n"
    "\n" TOOL_COMMON_HELP;

enum { MEMBER_OPT_WAIT = TOOL_OPT__FIRST_FREE };

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

/* Print @line on stderr unless it is the last one printed. */
static void member_say(const char *line, char *last, size_t cap)
{
    if (strcmp(line, last) != 0) {
        fprintf(stderr, "%s\n", line);
        snprintf(last, cap, "%s", line);
    }
}

/* One line of progress, printed when it differs from the last one. */
static void member_progress(uint64_t id, const struct tally_catchup *cu, char *last,
                            size_t cap)
{
    char line[512];
    if (cu->spare) {
        snprintf(line, sizeof line, "member %" PRIu64 ": a spare (not sent the log: its add "
                 "was cut short); adding it again", id);
    } else if (!cu->reachable) {
        snprintf(line, sizeof line, "member %" PRIu64 ": not answering yet (is its tallyd "
                 "running, with these addresses?)", id);
    } else if (cu->applied_index < cu->min_index) {
        snprintf(line, sizeof line, "member %" PRIu64 ": catching up on the log (applied index "
                 "%" PRIu64 " of %" PRIu64 ")", id, cu->applied_index, cu->min_index);
    } else if (cu->topics_missing > 0) {
        snprintf(line, sizeof line, "member %" PRIu64 ": fetching the history of topic %s%s "
                 "from a peer (backfill)", id, cu->missing_topic,
                 cu->topics_missing > 1 ? " and others" : "");
    } else {
        snprintf(line, sizeof line, "member %" PRIu64 ": caught up (applied index %" PRIu64
                 ", every topic's history); making it a voter", id, cu->applied_index);
    }
    member_say(line, last, cap);
}

/* Whether @id is a voter of the configuration at @addr
 * (CLIENT_HOST:PORT/RAFT_HOST:PORT). */
static bool member_is_voter_at(tally_client *client, uint64_t id, const char *addr)
{
    struct tally_status st;
    char have[140];
    bool yes = false;
    if (tally_status_get(client, &st) != 0) {
        return false; /* the add itself will say what is wrong */
    }
    for (size_t i = 0; i < st.n_members; i++) {
        const struct tally_member *m = &st.members[i];
        snprintf(have, sizeof have, "%s/%s", m->client_addr, m->raft_addr);
        yes = yes || (m->id == id && m->voter && strcmp(have, addr) == 0);
    }
    tally_status_free(&st);
    return yes;
}

/* Wait until member @id holds everything the cluster committed when the
 * wait began, then make it a voter. @just_added: the member was added a
 * moment ago, so a node that does not list it yet is no error. */
static int member_catch_up_and_promote(tally_client *client, const char *cmd, uint64_t id,
                                       uint64_t wait_s, bool just_added)
{
    int64_t deadline = tool_now_ms() + (int64_t)wait_s * 1000;
    uint64_t min_index = 0;
    struct tally_catchup cu;
    char last[512] = "";
    int rc;
    for (;;) {
        rc = tally_member_catchup(client, id, min_index, &cu);
        if (rc == TALLY_NOTFOUND && !just_added) {
            return tool_cluster_error(client, cmd, rc);
        }
        if (rc == 0) {
            min_index = cu.min_index; /* fixed at the first answer */
            member_progress(id, &cu, last, sizeof last);
            if (cu.caught_up || cu.voter) {
                break;
            }
            if (cu.spare && (rc = tally_member_add(client, id, cu.addr)) != 0) {
                tool_cluster_error(client, cmd, rc);
            }
        } else if (rc != TALLY_NOTFOUND) {
            /* Say what keeps it from answering, once per kind of error (a
             * member just added that a node does not list yet is none). */
            char line[512];
            snprintf(line, sizeof line, "tally %s: %s", cmd, tally_errmsg(client));
            member_say(line, last, sizeof last);
        }
        if (tool_now_ms() >= deadline) {
            return tool_error(cmd, "member %" PRIu64 " did not catch up within %" PRIu64
                              " s; it stays a standby (not voting). Once it runs and has "
                              "caught up: tally member promote %" PRIu64, id, wait_s, id);
        }
        struct timespec ts = {0, 500 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    rc = tally_member_promote(client, id);
    return rc == 0 ? TOOL_EXIT_OK : tool_cluster_error(client, cmd, rc);
}

int cmd_member_main(int argc, char **argv)
{
    static const char cmd[] = "member";
    static const struct option longopts[] = {
        TOOL_COMMON_LONGOPTS,
        {"wait-timeout", required_argument, NULL, MEMBER_OPT_WAIT},
        {NULL, 0, NULL, 0},
    };
    tally_client *client;
    const char *sub;
    uint64_t id, wait_s = 600;
    bool wait_given = false;
    int nargs;
    int c;
    int rc;

    tool_getopt_reset();
    while ((c = getopt_long(argc, argv, TOOL_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(member_help, stdout);
            return TOOL_EXIT_OK;
        case MEMBER_OPT_WAIT:
            if (!tool_parse_u64(optarg, &wait_s) || wait_s > 86400 * 7) {
                return tool_usage_error(cmd, "--wait-timeout wants seconds (0..604800), not '%s'",
                                        optarg);
            }
            wait_given = true;
            break;
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
        return tool_usage_error(cmd, "missing SUBCOMMAND: add, promote, replace, remove or "
                                "transfer");
    }
    sub = argv[optind++];
    if (strcmp(sub, "add") == 0 || strcmp(sub, "replace") == 0) {
        nargs = 2;
    } else if (strcmp(sub, "promote") == 0 || strcmp(sub, "remove") == 0 ||
               strcmp(sub, "transfer") == 0) {
        nargs = 1;
    } else {
        return tool_usage_error(cmd, "unknown subcommand '%s': want add, promote, replace, "
                                "remove or transfer", sub);
    }
    if (wait_given && strcmp(sub, "add") != 0 && strcmp(sub, "promote") != 0 &&
        strcmp(sub, "replace") != 0) {
        return tool_usage_error(cmd, "%s: --wait-timeout is for add, replace and promote", sub);
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
        return tool_usage_error(cmd, "%s: address '%s' is not CLIENT_HOST:PORT/RAFT_HOST:PORT",
                                sub, argv[optind + 1]);
    }
    rc = tool_connect(cmd, &client);
    if (rc != TOOL_EXIT_OK) {
        return rc;
    }
    if (strcmp(sub, "add") == 0 && member_is_voter_at(client, id, argv[optind + 1])) {
        /* An add run again (a voter has nothing to catch up). stdout says
         * what a completed add says, for scripts. */
        fprintf(stderr, "member %" PRIu64 " is already a voter at %s: nothing to do\n", id,
                argv[optind + 1]);
        printf("added member %" PRIu64 " at %s\n", id, argv[optind + 1]);
        tally_client_destroy(client);
        rc = tool_check_stdout(cmd);
        return rc < 0 ? TOOL_EXIT_OK : rc;
    }
    if (strcmp(sub, "replace") == 0) {
        rc = tally_member_replace(client, id);
        if (rc == 0) {
            fprintf(stderr, "member %" PRIu64 ": removed and its old data directory forgotten; "
                    "adding it again\n", id);
        } else {
            rc = tool_cluster_error(client, cmd, rc);
        }
    }
    if (rc != TOOL_EXIT_OK) {
        /* the replace step failed: said above */
    } else if (strcmp(sub, "add") == 0 || strcmp(sub, "replace") == 0) {
        rc = tally_member_add(client, id, argv[optind + 1]);
        if (rc == 0) {
            fprintf(stderr, "member %" PRIu64 ": added as a standby; waiting for it to catch "
                    "up before it votes\n", id);
            rc = member_catch_up_and_promote(client, cmd, id, wait_s, true);
        } else {
            rc = tool_cluster_error(client, cmd, rc);
        }
    } else if (strcmp(sub, "promote") == 0) {
        rc = member_catch_up_and_promote(client, cmd, id, wait_s, false);
    } else if (strcmp(sub, "remove") == 0) {
        rc = tally_member_remove(client, id);
        rc = rc == 0 ? TOOL_EXIT_OK : tool_cluster_error(client, cmd, rc);
    } else {
        rc = tally_member_transfer(client, id);
        rc = rc == 0 ? TOOL_EXIT_OK : tool_cluster_error(client, cmd, rc);
    }
    if (rc == TOOL_EXIT_OK) {
        if (strcmp(sub, "add") == 0) {
            printf("added member %" PRIu64 " at %s\n", id, argv[optind + 1]);
        } else if (strcmp(sub, "replace") == 0) {
            printf("replaced member %" PRIu64 " at %s\n", id, argv[optind + 1]);
        } else if (strcmp(sub, "promote") == 0) {
            printf("member %" PRIu64 " is a voter\n", id);
        } else if (strcmp(sub, "remove") == 0) {
            printf("removed member %" PRIu64 "\n", id);
        } else if (id != 0) {
            printf("transferred leadership to %" PRIu64 "\n", id);
        } else {
            struct tally_status st;
            uint64_t leader = 0;
            if (tally_status_get(client, &st) == 0) {
                leader = st.leader_id;
                tally_status_free(&st);
            }
            if (leader != 0) {
                printf("transferred leadership to %" PRIu64 "\n", leader);
            } else {
                printf("transferred leadership (no new leader is known yet: see 'tally "
                       "status')\n");
            }
        }
        rc = tool_check_stdout(cmd);
        rc = rc < 0 ? TOOL_EXIT_OK : rc;
    }
    tally_client_destroy(client);
    return rc;
}
