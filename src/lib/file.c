/* Durable-file helpers: see file.h. */
#include "lib/file.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "lib/err.h"

int file_sync_dir(const char *dir, char *errmsg)
{
    int e = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return err_os(errmsg, errno, "open directory %s", dir);
    }
    if (fsync(fd) != 0) {
        e = errno;
    }
    close(fd);
    return e != 0 ? err_os(errmsg, e, "fsync directory %s", dir) : 0;
}

int file_write_synced(const char *path, const void *data, size_t len, char *errmsg)
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
