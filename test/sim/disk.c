/* Crash semantics of tally's own files in the simulation: which bytes a
 * power loss keeps, the fault suite's torn or flipped tails, and a full
 * disk (pwrite and write of one node's files fail with ENOSPC).
 *
 * The simulator is linked with -Wl,--wrap=fdatasync,--wrap=fsync (and
 * --wrap=pwrite,--wrap=write for the full disk), so every
 * sync of the log and store layers (lib, log and store are linked in
 * statically) passes through here first: it records, per inode, the size
 * the file had when it was last synced. A power loss then cuts each file
 * of a node's directory to that size plus a seeded part of the rest (a
 * file never synced may keep any prefix). Limits: overwrites inside the
 * synced part are not undone (tally's segments and checkpoints are
 * appended or replaced by rename, never overwritten), names are durable
 * at once (no directory fsync is modelled), and an inode reused after an
 * unlink may keep its predecessor's record (a milder loss, never a false
 * alarm). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/seg.h"
#include "sim.h"

int __real_fdatasync(int fd);
int __real_fsync(int fd);
ssize_t __real_pwrite(int fd, const void *buf, size_t n, off_t pos);
ssize_t __real_write(int fd, const void *buf, size_t n);

/* A full disk: writes to files under this directory fail with ENOSPC
 * ("" : none). */
static char disk__full[PATH_MAX];

void disk_set_full(const char *dir)
{
    snprintf(disk__full, sizeof disk__full, "%s", dir != NULL ? dir : "");
}

bool disk_is_full(const char *dir)
{
    return disk__full[0] != 0 && strcmp(disk__full, dir) == 0;
}

static bool disk__refuse(int fd)
{
    char link[64], path[PATH_MAX];
    if (disk__full[0] == 0) {
        return false;
    }
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) {
        return false;
    }
    path[n] = 0;
    size_t len = strlen(disk__full);
    return strncmp(path, disk__full, len) == 0 && path[len] == '/';
}

ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t pos)
{
    if (disk__refuse(fd)) {
        errno = ENOSPC;
        return -1;
    }
    return __real_pwrite(fd, buf, n, pos);
}

ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
    if (disk__refuse(fd)) {
        errno = ENOSPC;
        return -1;
    }
    return __real_write(fd, buf, n);
}

struct synced {
    dev_t dev;
    ino_t ino;
    off_t size;
};

static struct synced *disk__synced;
static size_t disk__n, disk__cap;

static struct synced *disk__find(dev_t dev, ino_t ino)
{
    for (size_t i = 0; i < disk__n; i++) {
        if (disk__synced[i].ino == ino && disk__synced[i].dev == dev) {
            return &disk__synced[i];
        }
    }
    return NULL;
}

static void disk__record(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        return;
    }
    struct synced *e = disk__find(st.st_dev, st.st_ino);
    if (e == NULL) {
        if (disk__n == disk__cap) {
            disk__cap = disk__cap ? disk__cap * 2 : 256;
            disk__synced = realloc(disk__synced, disk__cap * sizeof *disk__synced);
            if (disk__synced == NULL) {
                abort();
            }
        }
        e = &disk__synced[disk__n++];
        e->dev = st.st_dev;
        e->ino = st.st_ino;
    }
    e->size = st.st_size;
}

void disk_reset(void)
{
    disk__n = 0;
    disk__full[0] = 0;
}

int __wrap_fdatasync(int fd)
{
    int rv = __real_fdatasync(fd);
    if (rv == 0) {
        disk__record(fd);
    }
    return rv;
}

int __wrap_fsync(int fd)
{
    int rv = __real_fsync(fd);
    if (rv == 0) {
        disk__record(fd);
    }
    return rv;
}

/* Call @fn on every regular file under @dir, in name order (deterministic). */
static void disk__walk(struct sim *s, const char *dir, void (*fn)(struct sim *, const char *, void *),
                       void *arg)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX + 256];
        struct stat st;
        if (strcmp(names[i]->d_name, ".") != 0 && strcmp(names[i]->d_name, "..") != 0) {
            snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
            if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
                disk__walk(s, path, fn, arg);
            } else if (S_ISREG(st.st_mode)) {
                fn(s, path, arg);
            }
        }
        free(names[i]);
    }
    free(n >= 0 ? names : NULL);
}

static void disk__lose(struct sim *s, const char *path, void *arg)
{
    struct stat st;
    (void)arg;
    if (stat(path, &st) != 0) {
        return;
    }
    struct synced *e = disk__find(st.st_dev, st.st_ino);
    off_t keep = e != NULL && e->size < st.st_size ? e->size : (e != NULL ? st.st_size : 0);
    if (keep < st.st_size) {
        off_t cut = keep + (off_t)world_range(s->w, 0, (uint64_t)(st.st_size - keep));
        if (cut < st.st_size && truncate(path, cut) == 0) {
            sim_trace(s, "  power loss: %s %lld -> %lld bytes", path, (long long)st.st_size,
                      (long long)cut);
        }
    }
}

void disk_power_loss(struct sim *s, const char *dir)
{
    disk__walk(s, dir, disk__lose, NULL);
}

#define DISK__SEG_HEADER SEG_HEADER_SIZE

struct disk__pick {
    char path[PATH_MAX + 256];
    unsigned seen;
};

/* Reservoir choice of one topic's active segment: the last .seg file of
 * its directory in name order (names are zero-padded base offsets). */
static void disk__pick_seg(struct sim *s, const char *path, void *arg)
{
    struct disk__pick *p = arg;
    size_t n = strlen(path);
    if (n < 4 || strcmp(path + n - 4, ".seg") != 0 || strstr(path, "/backfill/") != NULL) {
        return;
    }
    /* Prefer the later segment of the same directory: replace when the
     * directory matches, else choose by reservoir sampling. */
    const char *slash = strrchr(path, '/');
    size_t dlen = (size_t)(slash - path);
    if (p->seen > 0 && strncmp(p->path, path, dlen) == 0 && p->path[dlen] == '/') {
        snprintf(p->path, sizeof p->path, "%s", path);
        return;
    }
    p->seen++;
    if (world_range(s->w, 1, p->seen) == 1) {
        snprintf(p->path, sizeof p->path, "%s", path);
    }
}

void disk_tear_tail(struct sim *s, const char *dir)
{
    struct disk__pick p = {.seen = 0};
    struct stat st;
    disk__walk(s, dir, disk__pick_seg, &p);
    /* The damage stays after the segment header: the header is synced
     * when the segment is created (log/seg.c), so no crash tears it, and
     * a flipped header is media corruption that tally reports and refuses
     * to open (by design, not the tail damage the fault suite means). */
    if (p.seen == 0 || stat(p.path, &st) != 0 || st.st_size <= DISK__SEG_HEADER) {
        return;
    }
    off_t body = st.st_size - DISK__SEG_HEADER;
    if (world_chance(s->w, 50)) {
        off_t cut = (off_t)world_range(s->w, 1, 400);
        cut = cut > body ? body : cut;
        if (truncate(p.path, st.st_size - cut) == 0) {
            sim_trace(s, "  torn tail: %s minus %lld bytes", p.path, (long long)cut);
        }
    } else {
        off_t span = body < 300 ? body : 300;
        off_t at = st.st_size - 1 - (off_t)world_range(s->w, 0, (uint64_t)span - 1);
        unsigned bit = (unsigned)world_range(s->w, 0, 7);
        int fd = open(p.path, O_RDWR);
        unsigned char c;
        if (fd >= 0 && pread(fd, &c, 1, at) == 1) {
            c ^= (unsigned char)(1u << bit);
            if (pwrite(fd, &c, 1, at) == 1) {
                sim_trace(s, "  flipped bit %u at byte %lld of %s", bit, (long long)at, p.path);
            }
        }
        if (fd >= 0) {
            close(fd);
        }
    }
}
