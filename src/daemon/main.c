/* tallyd: one node of a tally cluster. argv -> cfg -> srv, nothing else;
 * or, for `tallyd recover FLAGS` (also `tallyd --recover FLAGS`), argv ->
 * cfg -> node_recover: the offline disaster recovery after losing a
 * majority (docs/operations.md, "Losing two of three nodes"). */
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>

#include "lib/err.h"
#include "lib/fs.h"
#include "lib/logger.h"
#include "repl/node.h"
#include "server/cfg.h"
#include "server/srv.h"

static const char recover_help[] =
    "Usage: tallyd recover --id N --data DIR --listen HOST:PORT --raft HOST:PORT\n"
    "                      --peer ... [other flags of this node]\n"
    "       (tallyd --recover ... is the same)\n"
    "\n"
    "Disaster recovery when a majority of the cluster is lost for good. Offline:\n"
    "stop this node first. Takes the node's usual flags (or --config FILE),\n"
    "appends to the Raft log in DIR/raft a configuration whose only voter is this\n"
    "node (--id at --raft), and exits. Start the node again with its usual\n"
    "command line: it elects itself and serves reads and writes alone. Then add\n"
    "new nodes with 'tally member add' (each starts with an empty data directory,\n"
    "without --bootstrap).\n"
    "\n"
    "Run it on ONE survivor only: the one with the most data (highest\n"
    "'tally log dump' offsets; raft term and last index in its log). Entries\n"
    "that only the lost nodes had are gone. Never start the lost nodes again\n"
    "with their old data: wipe them and add them as new members.\n"
    "\n"
    "Exit status: 0 recovered, 1 recovery failed (the message says why; a\n"
    "running tallyd on DIR, no Raft state in DIR), 2 bad flags.\n";

static int recover(int argc, char **argv)
{
    struct cfg cfg;
    struct node_config nc;
    char errmsg[ERR_MSG_SIZE] = "";
    char path[CFG_PATH_MAX + 16];
    int rv, fd;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(recover_help, stdout);
            return 0;
        }
    }
    rv = cfg_load(&cfg, argc, argv, errmsg);
    if (rv == 1) {
        return 0; /* --version */
    }
    if (rv != 0) {
        fprintf(stderr, "tallyd recover: %s\n", errmsg);
        fprintf(stderr, "Try 'tallyd recover --help'.\n");
        return 2;
    }
    logger_set_level(cfg.log_level);
    /* The same lock a running tallyd holds: never rewrite its log under it. */
    snprintf(path, sizeof path, "%s/LOCK", cfg.data_dir);
    if (fs_open(path, O_RDWR | O_CREAT, path, &fd, errmsg) != 0) {
        fprintf(stderr, "tallyd recover: %s\n", errmsg); /* "open PATH: ..." */
        return 1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "tallyd recover: data directory %s is in use by a running tallyd; "
                        "stop it first\n", cfg.data_dir);
        fs_close(fd);
        return 1;
    }
    memset(&nc, 0, sizeof nc);
    nc.id = cfg.id;
    snprintf(nc.raft_addr, sizeof nc.raft_addr, "%s", cfg.raft_addr);
    snprintf(nc.raft_dir, sizeof nc.raft_dir, "%s/raft", cfg.data_dir);
    rv = node_recover(&nc, errmsg);
    fs_close(fd);
    if (rv != 0) {
        fprintf(stderr, "tallyd recover: %s\n", errmsg);
        return 1;
    }
    printf("node %llu recovered: its Raft configuration now holds only itself (%s).\n"
           "Start it with its usual command line, then add new members with "
           "'tally member add'.\n",
           (unsigned long long)cfg.id, cfg.raft_addr);
    return 0;
}

/* glibc's default heap policy hands the memory of a freed multi-MiB
 * buffer back to the kernel, so the next one of the same size takes fresh
 * pages the kernel must zero on first touch: a Kafka fetch answer (read,
 * converted and encoded in three such buffers) spent half of the leader's
 * CPU there (perf, docs/performance.md). Below 32 MiB (every batch, Raft
 * entry and answer) memory comes from the heap, and up to 64 MiB that was
 * freed stays there to be reused: a bound on what a burst leaves behind. */
static void main__heap_policy(void)
{
    (void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
    (void)mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

int main(int argc, char **argv)
{
    main__heap_policy();
    struct cfg cfg;
    char errmsg[ERR_MSG_SIZE] = "";
    int rv;
    if (argc > 1 && strcmp(argv[1], "recover") == 0) {
        return recover(argc - 1, argv + 1);
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--recover") == 0) {
            /* Drop the word and keep argv[0]: cfg_load sees the usual flags. */
            memmove(&argv[i], &argv[i + 1], (size_t)(argc - i) * sizeof argv[0]);
            return recover(argc - 1, argv);
        }
    }
    rv = cfg_load(&cfg, argc, argv, errmsg);
    if (rv == 1) {
        return 0; /* --help or --version */
    }
    if (rv != 0) {
        fprintf(stderr, "tallyd: %s\n", errmsg);
        fprintf(stderr, "Try 'tallyd --help'.\n");
        return 2;
    }
    logger_set_level(cfg.log_level);
    return srv_run(&cfg);
}
