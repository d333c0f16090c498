/* tally stream meta: per-stream lifecycle (truncate before a version,
 * keep the last N versions or the records of the last MS), written as the
 * stream's metadata record (tally.h, tally_stream_set_meta). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tool/util.h"

static const char stream_help[] =
    "Usage: tally stream meta TOPIC KEY [--truncate-before V] [--max-count N]\n"
    "                                   [--max-age-ms MS] [--clear]\n"
    "\n"
    "Set the metadata of stream KEY (the records with that key) of TOPIC,\n"
    "replacing what it had. Stream reads ('tally consume TOPIC -k KEY') then\n"
    "hide the versions below V, all but the last N versions, and the records\n"
    "older than MS milliseconds. Versions keep counting. Hidden records stay\n"
    "in the log (a read by offset still finds them) until retention or\n"
    "compaction removes them. The metadata is the latest record of key\n"
    "'$$KEY' in TOPIC. --clear removes it. Prints the record's offset.\n"
    "To delete a stream, write a tombstone: tally produce TOPIC -k KEY --tombstone\n"
    "\n" TOOL_COMMON_HELP;

enum {
    STREAM_OPT_TRUNCATE = TOOL_OPT__FIRST_FREE,
    STREAM_OPT_MAX_COUNT,
    STREAM_OPT_MAX_AGE,
    STREAM_OPT_CLEAR,
};

int cmd_stream_main(int argc, char **argv)
{
    static const char cmd[] = "stream meta";
    static const struct option longopts[] = {
        TOOL_COMMON_LONGOPTS,
        {"truncate-before", required_argument, NULL, STREAM_OPT_TRUNCATE},
        {"max-count", required_argument, NULL, STREAM_OPT_MAX_COUNT},
        {"max-age-ms", required_argument, NULL, STREAM_OPT_MAX_AGE},
        {"clear", no_argument, NULL, STREAM_OPT_CLEAR},
        {NULL, 0, NULL, 0},
    };
    struct tally_stream_meta meta = {0, 0, 0};
    struct tally_produce_result res;
    tally_client *client;
    int set = 0, clear = 0;
    int c, rc;

    if (argc < 2 || strcmp(argv[1], "meta") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
            fputs(stream_help, stdout);
            return TOOL_EXIT_OK;
        }
        return tool_usage_error("stream", "want 'tally stream meta TOPIC KEY ...'");
    }
    argc--;
    argv++;
    tool_getopt_reset();
    while ((c = getopt_long(argc, argv, TOOL_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        uint64_t *into = NULL;
        switch (c) {
        case 'h':
            fputs(stream_help, stdout);
            return TOOL_EXIT_OK;
        case '?':
            return tool_bad_option(cmd, argv);
        case STREAM_OPT_TRUNCATE:
            into = &meta.truncate_before;
            break;
        case STREAM_OPT_MAX_COUNT:
            into = &meta.max_count;
            break;
        case STREAM_OPT_MAX_AGE:
            into = &meta.max_age_ms;
            break;
        case STREAM_OPT_CLEAR:
            clear = 1;
            break;
        default:
            rc = tool_common_option(cmd, c, optarg);
            if (rc != TOOL_EXIT_OK) {
                return rc < 0 ? TOOL_EXIT_USAGE : rc;
            }
        }
        if (into != NULL) {
            if (!tool_parse_u64(optarg, into) || *into == 0 || *into > (1ull << 53)) {
                return tool_usage_error(cmd, "%s needs a number from 1 to 2^53, not '%s'",
                                        argv[optind - 1], optarg);
            }
            set = 1;
        }
    }
    if (argc - optind != 2) {
        return tool_usage_error(cmd, "want TOPIC and KEY");
    }
    const char *topic = argv[optind], *key = argv[optind + 1];
    if (key[0] == '\0' || strlen(key) > 4094) {
        return tool_usage_error(cmd, "KEY must be 1 to 4094 bytes long");
    }
    if (set == clear) {
        return tool_usage_error(cmd, "give --clear, or at least one of --truncate-before, "
                                "--max-count, --max-age-ms");
    }
    rc = tool_connect(cmd, &client);
    if (rc != TOOL_EXIT_OK) {
        return rc;
    }
    rc = tally_stream_set_meta(client, topic, key, strlen(key), clear ? NULL : &meta, &res);
    if (rc != 0) {
        rc = tool_cluster_error(client, cmd, rc);
    } else {
        printf("%" PRIu64 "\n", res.base_offset);
        rc = TOOL_EXIT_OK;
    }
    tally_client_destroy(client);
    return rc;
}
