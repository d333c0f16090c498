/* slowfsync.so - an LD_PRELOAD library for tests and benchmarks: a node
 * whose disk syncs slowly. Every fsync() and fdatasync() first sleeps
 * TALLY_SLOW_FSYNC_MS milliseconds (default 100), then syncs.
 *
 *   LD_PRELOAD=build/test/lib/.libs/libslowfsync.so TALLY_SLOW_FSYNC_MS=200 tallyd ...
 *
 * libuv's and raft_uv's syncs are calls into libc, so they are slowed too;
 * writes that sync by a flag (O_DSYNC, RWF_DSYNC) are not. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void slowfsync__wait(void)
{
    const char *env = getenv("TALLY_SLOW_FSYNC_MS");
    long ms = env != NULL ? strtol(env, NULL, 10) : 100;
    if (ms <= 0) {
        return;
    }
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int fsync(int fd)
{
    static int (*real)(int);
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    }
    slowfsync__wait();
    return real(fd);
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    }
    slowfsync__wait();
    return real(fd);
}
