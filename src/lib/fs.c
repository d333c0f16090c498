/* File system calls of every layer, as thin wrappers that turn errno into
 * TALLY_* codes with a message naming the file (see fs.h). */
#include "lib/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "lib/err.h"

/* Injected failures (tests only). */
static unsigned fs__fault_ops;
static unsigned fs__fault_after;
static int fs__fault_errnum;

void fs_fault_inject(unsigned ops, unsigned after, int errnum)
{
    fs__fault_ops = ops;
    fs__fault_after = after;
    fs__fault_errnum = errnum;
}

void fs_fault_reset(void)
{
    fs__fault_ops = 0;
    fs__fault_errnum = 0;
}

/* Returns the errno to fail @op with, or 0 to run it for real. */
static int fs__fault(unsigned op)
{
    if (fs__fault_errnum == 0 || !(fs__fault_ops & op)) {
        return 0;
    }
    if (fs__fault_after > 0) {
        fs__fault_after--;
        return 0;
    }
    return fs__fault_errnum;
}

int fs_open(const char *path, int flags, const char *what, int *fd, char *errmsg)
{
    int e = fs__fault(FS_OP_OPEN);
    if (e != 0) {
        return err_os(errmsg, e, "open %s", what);
    }
    *fd = open(path, flags | O_CLOEXEC, 0644);
    if (*fd < 0) {
        if (errno == ENOENT) {
            err_printf(errmsg, "open %s: %s", what, strerror(ENOENT));
            return TALLY_NOTFOUND;
        }
        return err_os(errmsg, errno, "open %s", what);
    }
    return 0;
}

void fs_close(int fd)
{
    if (fd >= 0) {
        close(fd);
    }
}

int fs_pread(int fd, void *buf, size_t n, uint64_t pos, size_t *got, const char *what,
             char *errmsg)
{
    size_t done = 0;
    if (pos > (uint64_t)INT64_MAX - n) {
        return err_os(errmsg, EINVAL, "read %s at %llu", what, (unsigned long long)pos);
    }
    while (done < n) {
        ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)(pos + done));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return err_os(errmsg, errno, "read %s at %llu", what, (unsigned long long)pos);
        }
        if (r == 0) {
            break;
        }
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

int fs_pwrite(int fd, const void *buf, size_t n, uint64_t pos, const char *what, char *errmsg)
{
    size_t done = 0;
    int e = fs__fault(FS_OP_PWRITE);
    if (e != 0) {
        return err_os(errmsg, e, "write %s", what);
    }
    while (done < n) {
        ssize_t r = pwrite(fd, (const char *)buf + done, n - done, (off_t)(pos + done));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return err_os(errmsg, errno, "write %s at %llu", what, (unsigned long long)pos);
        }
        done += (size_t)r;
    }
    return 0;
}

int fs_fsync(int fd, const char *what, char *errmsg)
{
    int e = fs__fault(FS_OP_FSYNC);
    if (e == 0 && fdatasync(fd) != 0) {
        e = errno;
    }
    return e != 0 ? err_os(errmsg, e, "fsync %s", what) : 0;
}

int fs_truncate(int fd, uint64_t size, const char *what, char *errmsg)
{
    int e = fs__fault(FS_OP_TRUNCATE);
    if (e == 0 && ftruncate(fd, (off_t)size) != 0) {
        e = errno;
    }
    return e != 0 ? err_os(errmsg, e, "truncate %s to %llu", what, (unsigned long long)size)
                  : 0;
}

void fs_advise(int fd, uint64_t pos, uint64_t len, int advice)
{
    (void)posix_fadvise(fd, (off_t)pos, (off_t)len, advice);
}

int fs_sync_range(int fd, uint64_t pos, uint64_t len, bool wait, const char *what,
                  char *errmsg)
{
#ifdef SYNC_FILE_RANGE_WRITE
    unsigned flags = SYNC_FILE_RANGE_WRITE;
    int e = fs__fault(FS_OP_FSYNC);
    if (wait) {
        flags |= SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WAIT_AFTER;
    }
    if (e == 0 && sync_file_range(fd, (off_t)pos, (off_t)len, flags) != 0) {
        e = errno;
    }
    return e != 0 ? err_os(errmsg, e, "sync_file_range %s", what) : 0;
#else
    (void)fd, (void)pos, (void)len, (void)wait, (void)what, (void)errmsg;
    return 0;
#endif
}

bool fs_cached(int fd, uint64_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t pages;
    unsigned char *vec;
    bool cached = true;
    void *map;
    if (len == 0 || page <= 0 || len > SIZE_MAX / 2) {
        return true;
    }
    pages = (size_t)((len + (uint64_t)page - 1) / (uint64_t)page);
    vec = malloc(pages);
    if (vec == NULL) {
        return true;
    }
    map = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, fd, 0);
    if (map != MAP_FAILED) {
        if (mincore(map, (size_t)len, vec) == 0) {
            for (size_t i = 0; i < pages && cached; i++) {
                cached = (vec[i] & 1) != 0;
            }
        }
        munmap(map, (size_t)len);
    }
    free(vec);
    return cached;
}

int fs_size(int fd, uint64_t *size, const char *what, char *errmsg)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return err_os(errmsg, errno, "stat %s", what);
    }
    *size = (uint64_t)st.st_size;
    return 0;
}

int fs_rename(const char *from, const char *to, char *errmsg)
{
    int e = fs__fault(FS_OP_RENAME);
    if (e == 0 && rename(from, to) != 0) {
        e = errno;
    }
    if (e == ENOENT) {
        err_printf(errmsg, "rename %s to %s: %s", from, to, strerror(e));
        return TALLY_NOTFOUND;
    }
    return e != 0 ? err_os(errmsg, e, "rename %s to %s", from, to) : 0;
}

int fs_link(const char *from, const char *to, char *errmsg)
{
    if (link(from, to) == 0) {
        return 0;
    }
    if (errno == ENOENT) {
        err_printf(errmsg, "link %s to %s: %s", from, to, strerror(ENOENT));
        return TALLY_NOTFOUND;
    }
    return err_os(errmsg, errno, "link %s to %s", from, to);
}

int fs_unlink(const char *path, char *errmsg)
{
    if (unlink(path) != 0 && errno != ENOENT) {
        return err_os(errmsg, errno, "remove %s", path);
    }
    return 0;
}

int fs_write_synced(const char *path, const void *data, size_t len, char *errmsg)
{
    const char *p = data;
    size_t done = 0;
    int rv = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return err_os(errmsg, errno, "create %s", path);
    }
    while (rv == 0 && done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0 && errno != EINTR) {
            rv = err_os(errmsg, errno, "write %s", path);
        } else if (w > 0) {
            done += (size_t)w;
        }
    }
    if (rv == 0 && fsync(fd) != 0) {
        rv = err_os(errmsg, errno, "fsync %s", path);
    }
    close(fd);
    return rv;
}

int fs_read_file(const char *path, size_t max, void **data, size_t *len, char *errmsg)
{
    uint64_t size;
    size_t got = 0;
    char *p = NULL;
    int fd, rv = fs_open(path, O_RDONLY, path, &fd, errmsg);
    *data = NULL;
    *len = 0;
    if (rv != 0) {
        return rv;
    }
    rv = fs_size(fd, &size, path, errmsg);
    if (rv == 0 && size > max) {
        rv = ERR_CORRUPT(errmsg, "%s is too large (%llu bytes)", path, (unsigned long long)size);
    }
    if (rv == 0 && (size >= SIZE_MAX || (p = malloc((size_t)size + 1)) == NULL)) {
        err_printf(errmsg, "read %s: out of memory", path);
        rv = TALLY_NOMEM;
    }
    if (rv == 0) {
        rv = fs_pread(fd, p, (size_t)size, 0, &got, path, errmsg);
    }
    if (rv == 0 && got != size) {
        err_printf(errmsg, "read %s: it shrank while being read", path);
        rv = TALLY_IOERR;
    }
    fs_close(fd);
    if (rv != 0) {
        free(p);
        return rv;
    }
    p[got] = '\0';
    *data = p;
    *len = got;
    return 0;
}

int fs_mkdir(const char *dir, bool *existed, char *errmsg)
{
    bool there = false;
    if (mkdir(dir, 0755) != 0) {
        if (errno != EEXIST) {
            return err_os(errmsg, errno, "create directory %s", dir);
        }
        there = true;
    }
    if (existed != NULL) {
        *existed = there;
    }
    return 0;
}

int fs_rmdir(const char *dir, char *errmsg)
{
    if (rmdir(dir) != 0 && errno != ENOENT) {
        return err_os(errmsg, errno, "remove directory %s", dir);
    }
    return 0;
}

int fs_clear_dir(const char *dir, char *errmsg)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char child[PATH_MAX + 256];
    int rv = 0;
    if (d == NULL) {
        return err_os(errmsg, errno, "open directory %s", dir);
    }
    while (rv == 0 && (e = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        snprintf(child, sizeof child, "%s/%s", dir, e->d_name);
        if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode)) {
            rv = fs_remove_tree(child, errmsg);
        } else {
            rv = fs_unlink(child, errmsg);
        }
    }
    closedir(d);
    return rv;
}

int fs_remove_tree(const char *path, char *errmsg)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        return errno == ENOENT ? 0 : err_os(errmsg, errno, "stat %s", path);
    }
    if (!S_ISDIR(st.st_mode)) {
        return fs_unlink(path, errmsg);
    }
    int rv = fs_clear_dir(path, errmsg);
    return rv != 0 ? rv : fs_rmdir(path, errmsg);
}

int fs_check_writable(const char *dir, char *errmsg)
{
    char probe[PATH_MAX + 32];
    snprintf(probe, sizeof probe, "%s/.tallyd-probe-XXXXXX", dir);
    int fd = mkstemp(probe);
    if (fd < 0) {
        return err_os(errmsg, errno, "create a file in %s", dir);
    }
    close(fd);
    unlink(probe); /* (a probe left behind harms nothing) */
    return 0;
}

int fs_sync_dir(const char *dir, char *errmsg)
{
    int e = fs__fault(FS_OP_FSYNC);
    int fd;
    if (e != 0) {
        return err_os(errmsg, e, "fsync directory %s", dir);
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return err_os(errmsg, errno, "open directory %s", dir);
    }
    if (fsync(fd) != 0) {
        e = errno;
    }
    close(fd);
    return e != 0 ? err_os(errmsg, e, "fsync directory %s", dir) : 0;
}

bool fs_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int fs_mkdir_p(const char *dir, char *errmsg)
{
    char path[PATH_MAX];
    size_t len = strlen(dir);
    int rv;
    if (len == 0 || len >= sizeof path) {
        err_printf(errmsg, "bad directory name (%zu bytes)", len);
        return TALLY_INVAL;
    }
    if (fs_is_dir(dir)) {
        return 0;
    }
    memcpy(path, dir, len + 1);
    while (len > 1 && path[len - 1] == '/') {
        path[--len] = '\0';
    }
    /* Create the parent first, then this one, then make the new entry
     * durable in the parent. */
    char *slash = strrchr(path, '/');
    if (slash != NULL && slash != path) {
        *slash = '\0';
        rv = fs_mkdir_p(path, errmsg);
        if (rv != 0) {
            return rv;
        }
        *slash = '/';
    }
    if (mkdir(path, 0755) != 0) {
        if (errno == EEXIST && fs_is_dir(path)) {
            return 0;
        }
        return err_os(errmsg, errno, "create directory %s", path);
    }
    if (slash != NULL) {
        char parent[PATH_MAX];
        size_t plen = slash == path ? 1 : (size_t)(slash - path);
        memcpy(parent, path, plen);
        parent[plen] = '\0';
        return fs_sync_dir(parent, errmsg);
    }
    return fs_sync_dir(".", errmsg);
}

static int fs__cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int fs_list(const char *dir, char ***names, size_t *n, char *errmsg)
{
    DIR *d = opendir(dir);
    struct dirent *ent;
    char **v = NULL;
    size_t len = 0, cap = 0;
    if (d == NULL) {
        return err_os(errmsg, errno, "open directory %s", dir);
    }
    errno = 0;
    while ((ent = readdir(d)) != NULL) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) {
            continue;
        }
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **nv = realloc(v, ncap * sizeof *nv);
            if (nv == NULL) {
                goto oom;
            }
            v = nv;
            cap = ncap;
        }
        v[len] = strdup(ent->d_name);
        if (v[len] == NULL) {
            goto oom;
        }
        len++;
    }
    if (errno != 0) {
        int e = errno;
        closedir(d);
        fs_list_free(v, len);
        return err_os(errmsg, e, "read directory %s", dir);
    }
    closedir(d);
    if (len > 0) {
        qsort(v, len, sizeof *v, fs__cmp);
    }
    *names = v;
    *n = len;
    return 0;
oom:
    closedir(d);
    fs_list_free(v, len);
    err_printf(errmsg, "list directory %s: out of memory", dir);
    return TALLY_NOMEM;
}

void fs_list_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
}
