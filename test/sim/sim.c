/* Deterministic simulation of a three-node tally cluster (issue 15).
 *
 * Each node runs tally's own FSM adapter (repl/fsm.c), store and logs over
 * its own data directory, with raft on the simulated world (world.h). A
 * seeded scheduler interleaves raft events with a workload, faults and the
 * work tallyd runs off the loop (compaction, backfill), all at steps the
 * seed chooses; check.c checks invariants after each step and at the end.
 *
 *   sim --seeds A-B [--steps N] [--bug NAME] [--quiet]   one line per failing seed
 *   sim --seed N --trace [--steps N] [--bug NAME]         replay one, every step printed
 *
 * Exit status: 0 no violation, 1 violations, 2 usage. */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/logger.h"
#include "lib/testbug.h"
#include "sim.h"

/* ---------------------------------------------------------------- output */

void sim_trace(struct sim *s, const char *fmt, ...)
{
    if (!s->trace) {
        return;
    }
    va_list ap;
    printf("[%6u t=%7llu] ", s->step, (unsigned long long)world_now(s->w));
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

void sim_violation(struct sim *s, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (s->violations++ == 0) {
        snprintf(s->first_violation, sizeof s->first_violation, "step %u: %s", s->step, msg);
    }
    if (s->trace) {
        printf("[%6u t=%7llu] VIOLATION: %s\n", s->step, (unsigned long long)world_now(s->w),
               msg);
    }
}

/* ------------------------------------------------------------------ run */

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

/* rm -rf, in process (a fork per seed is slow under ASan). */
static void remove_tree(const char *dir)
{
    if (nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT) {
        fprintf(stderr, "sim: cannot remove %s: %s\n", dir, strerror(errno));
    }
}

static int run_seed(uint64_t seed, unsigned steps, bool trace, const char *base)
{
    struct sim s;
    struct faults f;
    memset(&s, 0, sizeof s);
    memset(&f, 0, sizeof f);
    s.seed = seed;
    disk_reset();
    s.steps = steps;
    s.trace = trace;
    s.w = world_new(seed);
    s.values = calloc(SIM_MAX_VALUES, sizeof *s.values);
    snprintf(s.root, sizeof s.root, "%s/seed-%llu", base, (unsigned long long)seed);
    mkdir(s.root, 0755);
    s.snapshot_threshold = (unsigned)world_range(s.w, 8, 64);
    /* Trailing as tallyd sets it (node.c: trailing = threshold). With a
     * trailing well below the threshold libraft 0.22.1 can leave a
     * follower behind for good (docs/testing.md, "Found so far"). */
    s.snapshot_trailing = s.snapshot_threshold;
    f.crash_pm = (unsigned)world_range(s.w, 30, 200);
    f.partition_pm = (unsigned)world_range(s.w, 50, 300);
    sim_trace(&s, "seed %llu: snapshot threshold %u trailing %u, crash %u/1000, faults %u/1000",
              (unsigned long long)seed, s.snapshot_threshold, s.snapshot_trailing,
              f.crash_pm, f.partition_pm);
    workload_reset(&s);
    for (unsigned i = 0; i < SIM_NODES; i++) {
        struct sim_node *n = &s.nodes[i];
        n->idx = i;
        n->id = i + 1;
        snprintf(n->addr, sizeof n->addr, "n%u", i + 1);
        snprintf(n->dir, sizeof n->dir, "%s/n%u", s.root, i + 1);
    }
    for (unsigned i = 0; i < SIM_NODES; i++) {
        node_start(&s, &s.nodes[i], true);
    }
    for (s.step = 0; s.step < steps && s.violations == 0; s.step++) {
        unsigned r = (unsigned)world_range(s.w, 0, 99);
        if (r < 25) {
            workload(&s);
        } else if (r < 27) {
            fault_step(&s, &f);
        } else if (r < 28) {
            struct sim_node *n = &s.nodes[world_range(s.w, 0, SIM_NODES - 1)];
            if (n->up) {
                seam_compact(&s, n);
            }
        } else if (r < 31) {
            /* tallyd's backfill starts as soon as a range is missing and
             * runs to the end; here every node with a missing range fills
             * it at this step (bounded: a few ranges at most). */
            for (unsigned i = 0; i < SIM_NODES; i++) {
                for (unsigned k = 0; k < 4 && s.nodes[i].up && seam_backfill(&s, &s.nodes[i]);
                     k++) {
                }
            }
        } else {
            sim_step(&s);
        }
        if (r >= 25 && r < 27) {
            /* restarts happen in fault_step; nothing more here */
        } else if (f.heal_at == 0) {
            for (unsigned i = 0; i < SIM_NODES; i++) {
                if (!s.nodes[i].up && f.down_until[i] <= s.step) {
                    fault_step(&s, &f);
                    break;
                }
            }
        }
        check_step(&s);
    }
    if (s.violations == 0) {
        heal_and_settle(&s, &f);
    }
    if (s.violations == 0) {
        check_final(&s);
    }
    /* Then every node stops at once (all crash, or all stop cleanly; all
     * lose power, or none), restarts, settles and is checked again: a
     * whole cluster's power loss must not lose an acknowledged write. */
    if (s.violations == 0) {
        bool clean = world_chance(s.w, 30), power = !clean && world_chance(s.w, 50);
        sim_trace(&s, "final: every node stops at once");
        for (unsigned i = 0; i < SIM_NODES; i++) {
            node_crash(&s, &s.nodes[i], clean, power, false);
        }
        heal_and_settle(&s, &f);
        if (s.violations == 0) {
            check_final(&s);
        }
    }
    for (unsigned i = 0; i < SIM_NODES; i++) {
        if (s.nodes[i].up) {
            node_crash(&s, &s.nodes[i], false, false, false);
        }
    }
    world_free(s.w);
    free(s.values);
    remove_tree(s.root);
    if (s.violations > 0) {
        printf("seed %llu FAILED: %s\n", (unsigned long long)seed, s.first_violation);
        return 1;
    }
    if (trace) {
        printf("seed %llu passed: %u steps, %u values, %u proposals\n", (unsigned long long)seed,
               s.step, s.n_values, workload_proposals());
    }
    return 0;
}

/* The seeds run in a child process, one after another, so that a crash (a
 * signal) is one failing seed with its replay command, not the end of the
 * run. The child reports each finished seed on a pipe; after a crash the
 * parent reports the seed after the last finished one and starts a new
 * child after it (one fork per crash, not per seed: fork is slow under
 * ASan). */
struct outcome {
    uint64_t seed;
    int failed;
};

static void run_range(uint64_t a, uint64_t b, unsigned steps, bool trace, const char *base,
                      bool stop_first, const char *replay_args, unsigned *ran, unsigned *failed)
{
    uint64_t next = a;
    while (next <= b) {
        int fds[2];
        if (pipe(fds) != 0) {
            perror("sim: pipe");
            exit(2);
        }
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("sim: fork");
            exit(2);
        }
        if (pid == 0) {
            close(fds[0]);
            for (uint64_t seed = next; seed <= b; seed++) {
                struct outcome o = {seed, run_seed(seed, steps, trace, base)};
                if (o.failed) {
                    printf("  replay: test/sim/run --seed %llu --steps %u%s --trace\n",
                           (unsigned long long)seed, steps, replay_args);
                }
                fflush(stdout);
                if (write(fds[1], &o, sizeof o) != (ssize_t)sizeof o) {
                    _exit(2);
                }
                if (o.failed && stop_first) {
                    break;
                }
            }
            _exit(0);
        }
        close(fds[1]);
        struct outcome o;
        uint64_t last = next - 1;
        bool stop = false;
        while (read(fds[0], &o, sizeof o) == (ssize_t)sizeof o) {
            (*ran)++;
            *failed += o.failed != 0;
            last = o.seed;
            stop |= o.failed && stop_first;
        }
        close(fds[0]);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        next = last + 1;
        /* A child that stops before its last seed crashed on the next one:
         * by a signal, or by an exit of its own, which is how a sanitizer
         * ends a process after its report (ASan exits with status 1). */
        bool died = WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
        if (died && next <= b) {
            char dir[PATH_MAX + 64];
            if (WIFSIGNALED(status)) {
                printf("seed %llu CRASHED: signal %d (%s)\n", (unsigned long long)next,
                       WTERMSIG(status), strsignal(WTERMSIG(status)));
            } else {
                printf("seed %llu CRASHED: exit status %d (a sanitizer's report, if any, "
                       "is on stderr)\n",
                       (unsigned long long)next, WEXITSTATUS(status));
            }
            printf("  replay: test/sim/run --seed %llu --steps %u%s --trace\n",
                   (unsigned long long)next, steps, replay_args);
            snprintf(dir, sizeof dir, "%s/seed-%llu", base, (unsigned long long)next);
            remove_tree(dir);
            (*ran)++;
            (*failed)++;
            stop |= stop_first;
            next++;
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "sim: the child stopped (status %d)\n", status);
            exit(2);
        }
        if (stop) {
            break;
        }
    }
}

static const struct {
    const char *name;
    unsigned bit;
} bugs[] = {
    {"producer-replay", TESTBUG_PRODUCER_REPLAY}, {"apply-twice", TESTBUG_APPLY_TWICE},
    {"ckpt-unsynced", TESTBUG_CKPT_UNSYNCED},     {"keys-lost", TESTBUG_KEYS_LOST},
    {"ack-early", TESTBUG_ACK_EARLY},
};

static int usage(void)
{
    fprintf(stderr, "usage: sim --seeds A-B [--steps N] [--bug NAME] [--no-snapguard] [--stop-at-first]\n"
                    "       sim --seed N --trace [--steps N] [--bug NAME]\n"
                    "bugs: producer-replay apply-twice ckpt-unsynced keys-lost ack-early\n");
    return 2;
}

int main(int argc, char **argv)
{
    unsigned long long a = 0, b = 0;
    unsigned steps = 3000;
    bool trace = false, stop_first = false, have = false;
    const char *bug = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) {
            if (sscanf(argv[++i], "%llu-%llu", &a, &b) != 2 || b < a) {
                return usage();
            }
            have = true;
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            a = b = strtoull(argv[++i], NULL, 10);
            have = true;
        } else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
            steps = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--trace") == 0) {
            trace = true;
        } else if (strcmp(argv[i], "--no-snapguard") == 0) {
            sim_use_snapguard = false;
        } else if (strcmp(argv[i], "--stop-at-first") == 0) {
            stop_first = true;
        } else if (strcmp(argv[i], "--bug") == 0 && i + 1 < argc) {
            bug = argv[++i];
        } else {
            return usage();
        }
    }
    if (!have) {
        return usage();
    }
    if (bug != NULL) {
        bool found = false;
        for (size_t k = 0; k < sizeof bugs / sizeof bugs[0]; k++) {
            if (strcmp(bugs[k].name, bug) == 0) {
                testbug_switches = bugs[k].bit;
                found = true;
            }
        }
        if (!found) {
            return usage();
        }
    }
    if (!trace) {
        logger_set_level(LOGGER_OFF);
    } else {
        setvbuf(stdout, NULL, _IOLBF, 0); /* in order with the store's log lines (stderr) */
    }
    const char *tmp = getenv("TALLY_SIM_DIR");
    char base[PATH_MAX];
    snprintf(base, sizeof base, "%s/tally-sim-%d", tmp != NULL ? tmp : "/dev/shm", (int)getpid());
    if (mkdir(base, 0755) != 0 && errno != EEXIST) {
        snprintf(base, sizeof base, "/tmp/tally-sim-%d", (int)getpid());
        mkdir(base, 0755);
    }
    unsigned failed = 0, ran = 0;
    char replay_args[128];
    snprintf(replay_args, sizeof replay_args, "%s%s%s", bug ? " --bug " : "", bug ? bug : "",
             sim_use_snapguard ? "" : " --no-snapguard");
    run_range(a, b, steps, trace, base, stop_first, replay_args, &ran, &failed);
    rmdir(base);
    printf("%u seeds, %u failed\n", ran, failed);
    return failed > 0 ? 1 : 0;
}
