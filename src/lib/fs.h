/* File system calls of every layer: the only place that opens, writes,
 * fsyncs, renames, links, truncates or removes files and directories, and
 * fsyncs directories. Any layer may include it (it sits in lib/); a layer
 * that needs one more file operation adds it here rather than calling the
 * system itself.
 *
 * Every wrapper returns 0 or a TALLY_* code (through err_os: TALLY_IOERR,
 * TALLY_NOSPACE, TALLY_NOMEM) and fills @errmsg with "<what> <path>:
 * strerror". Keeping all system calls here gives the tests one place to
 * inject failures (fs_fault_inject) and keeps the error text uniform. */
#ifndef TALLY_LIB_FS_H_
#define TALLY_LIB_FS_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Open @path with open(2) @flags (O_CLOEXEC is added; mode 0644 when
 * creating). *fd is owned by the caller: fs_close. @what names the file in
 * messages (a short name such as "00000000000000000042.seg"). A missing
 * file is TALLY_NOTFOUND, so callers can tell it from an I/O error. */
int fs_open(const char *path, int flags, const char *what, int *fd, char *errmsg);

/* Close a descriptor; errors are ignored (nothing durable depends on them:
 * durability comes from fs_fsync before). Negative @fd is a no-op. */
void fs_close(int fd);

/* Read up to @n bytes at @pos, retrying short reads; *got < n only at end
 * of file. */
int fs_pread(int fd, void *buf, size_t n, uint64_t pos, size_t *got, const char *what,
             char *errmsg);

/* Write all @n bytes at @pos (retrying short writes) or fail. */
int fs_pwrite(int fd, const void *buf, size_t n, uint64_t pos, const char *what, char *errmsg);

/* fdatasync(2): data and the metadata needed to read it back (size). */
int fs_fsync(int fd, const char *what, char *errmsg);

int fs_truncate(int fd, uint64_t size, const char *what, char *errmsg);

/* posix_fadvise(2) on [@pos, @pos + @len) (@len 0: to the end) with
 * @advice, one of POSIX_FADV_* of fcntl.h. Only a hint: a failure changes
 * nothing that matters, so none is reported. */
void fs_advise(int fd, uint64_t pos, uint64_t len, int advice);

/* Have the kernel write [@pos, @pos + @len) of @fd to the disk now,
 * from this thread (sync_file_range(2)), and with @wait, wait until it is
 * written. Not a substitute for fs_fsync (no metadata, no device cache
 * flush); it spreads a big file's writeback over the time it is written,
 * at the writer's I/O priority, so the fsync at the end has little left
 * to do. Where the call does not exist it does nothing. */
int fs_sync_range(int fd, uint64_t pos, uint64_t len, bool wait, const char *what,
                  char *errmsg);

/* Whether every page of the first @len bytes of @fd is in the page cache
 * (mincore(2) of a mapping of it). true when it cannot tell. */
bool fs_cached(int fd, uint64_t len);

/* Size of an open file (fstat). */
int fs_size(int fd, uint64_t *size, const char *what, char *errmsg);

/* rename(2). Durable only after fs_sync_dir on the directory. A missing
 * @from is TALLY_NOTFOUND. */
int fs_rename(const char *from, const char *to, char *errmsg);

/* link(2): a second name @to for @from, never replacing an existing @to.
 * A missing @from is TALLY_NOTFOUND. */
int fs_link(const char *from, const char *to, char *errmsg);

/* unlink(2); a file that is already gone is not an error. */
int fs_unlink(const char *path, char *errmsg);

/* Create (or truncate) @path, write @len bytes of @data and fsync it. The
 * caller renames it into place and syncs the directory. */
int fs_write_synced(const char *path, const void *data, size_t len, char *errmsg);

/* Read the whole file @path: *data (owned by the caller: free) holds its
 * *len bytes and a NUL after them. A missing file is TALLY_NOTFOUND, one
 * larger than @max bytes TALLY_CORRUPT (nothing tally reads whole is that
 * large). */
int fs_read_file(const char *path, size_t max, void **data, size_t *len, char *errmsg);

/* mkdir(2) with mode 0755. A name that exists already is not an error
 * (the caller checks what it is where that matters); *existed (if not
 * NULL) tells whether it did. Not fsynced: see fs_mkdir_p. */
int fs_mkdir(const char *dir, bool *existed, char *errmsg);

/* rmdir(2): remove the empty directory @dir; a missing one is not an
 * error, one that is not empty is (TALLY_IOERR, "Directory not empty"). */
int fs_rmdir(const char *dir, char *errmsg);

/* Remove @path and everything below it (directories are descended, links
 * are removed, never followed). A missing @path is not an error. Stops at
 * the first name that cannot be removed. */
int fs_remove_tree(const char *path, char *errmsg);

/* Remove everything below the directory @dir, which stays. */
int fs_clear_dir(const char *dir, char *errmsg);

/* Whether a file can be created in @dir: creates a scratch file there
 * (".tallyd-probe-XXXXXX") and removes it again. */
int fs_check_writable(const char *dir, char *errmsg);

/* Create @dir and its missing parents (mode 0755), fsyncing each parent
 * whose entries changed so the new directory survives a crash. An
 * existing directory is fine. */
int fs_mkdir_p(const char *dir, char *errmsg);

/* fsync the directory itself, making created, renamed and removed names in
 * it durable. */
int fs_sync_dir(const char *dir, char *errmsg);

/* Names in @dir (without "." and ".."), sorted with strcmp. On success
 * *names is owned by the caller: fs_list_free. */
int fs_list(const char *dir, char ***names, size_t *n, char *errmsg);
void fs_list_free(char **names, size_t n);

/* Whether @path exists and is a directory. */
bool fs_is_dir(const char *path);

/* Fault injection for tests. After @after more successful calls of the
 * operations in @ops, every further call fails with @errnum (0 disables)
 * until fs_fault_reset. Not thread-safe; production code never sets it. */
enum {
    FS_OP_PWRITE = 1 << 0,
    FS_OP_FSYNC = 1 << 1,
    FS_OP_TRUNCATE = 1 << 2,
    FS_OP_RENAME = 1 << 3,
    FS_OP_OPEN = 1 << 4,
};
void fs_fault_inject(unsigned ops, unsigned after, int errnum);
void fs_fault_reset(void);

#endif
