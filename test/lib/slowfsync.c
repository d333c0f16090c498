/* slowfsync.so - an LD_PRELOAD library for tests and benchmarks: a node
 * whose disk syncs slowly.
 *
 *   LD_PRELOAD=build/test/lib/.libs/libslowfsync.so TALLY_SLOW_FSYNC_MS=200 tallyd ...
 *
 * Every fsync() and fdatasync() first waits TALLY_SLOW_FSYNC_MS milliseconds
 * (default 100), then syncs. Two optional settings make a test
 * deterministic:
 *
 *   TALLY_SLOW_FSYNC_MATCH=snapshot   only files whose path contains this
 *                                     wait (others sync at once)
 *   TALLY_SLOW_FSYNC_FLAG=/tmp/x      this file exists while a wait is on,
 *                                     so a test can act in the middle of it
 *
 * The wait counts time the process runs, in steps of 10 ms: a process
 * stopped by SIGSTOP in the middle of a wait still has the rest of it to
 * wait after SIGCONT (a plain sleep would have run out meanwhile).
 *
 * libuv's and raft_uv's syncs are calls into libc, so they are slowed too;
 * writes that sync by a flag (O_DSYNC, RWF_DSYNC) are not. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STEP_MS 10

static int slowfsync__matches(int fd)
{
    const char *match = getenv("TALLY_SLOW_FSYNC_MATCH");
    if (match == NULL || match[0] == '\0') {
        return 1;
    }
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0) {
        return 0;
    }
    path[n] = '\0';
    return strstr(path, match) != NULL;
}

static void slowfsync__wait(int fd)
{
    const char *env = getenv("TALLY_SLOW_FSYNC_MS");
    long ms = env != NULL ? strtol(env, NULL, 10) : 100;
    if (ms <= 0 || !slowfsync__matches(fd)) {
        return;
    }
    const char *flag = getenv("TALLY_SLOW_FSYNC_FLAG");
    if (flag != NULL && flag[0] != '\0') {
        int f = open(flag, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (f >= 0) {
            close(f);
        }
    }
    for (long waited = 0; waited < ms; waited += STEP_MS) {
        struct timespec ts = {0, STEP_MS * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    if (flag != NULL && flag[0] != '\0') {
        unlink(flag);
    }
}

int fsync(int fd)
{
    static int (*real)(int);
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    }
    slowfsync__wait(fd);
    return real(fd);
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    }
    slowfsync__wait(fd);
    return real(fd);
}
