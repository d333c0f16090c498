/* Unit tests of the file-system module (src/lib/fs.c) that every layer
 * uses: whole-file read and write, directories made, emptied and removed,
 * links and renames, and their error paths. The log's tests cover the
 * descriptor calls (open, pread, pwrite, fsync, truncate) and the fault
 * injection in use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/fs.h"
#include "../lib/tmpdir.h"

struct fixture {
    char *dir;
    char errmsg[ERR_MSG_SIZE];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tmpdir_make();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    fs_fault_reset();
    tmpdir_remove(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* @f->dir/@name into @out. */
static void path_in(const struct fixture *f, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", f->dir, name);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void put_file(const char *path, const char *text)
{
    char why[ERR_MSG_SIZE];
    assert_int_equal(fs_write_synced(path, text, strlen(text), why), 0);
}

static void test_write_then_read_whole_file(void **state)
{
    struct fixture *f = *state;
    char path[PATH_MAX];
    void *data = NULL;
    size_t len = 0;
    path_in(f, "a", path, sizeof path);
    put_file(path, "hello");
    assert_int_equal(fs_read_file(path, 1024, &data, &len, f->errmsg), 0);
    assert_int_equal(len, 5);
    assert_string_equal(data, "hello"); /* NUL-terminated */
    free(data);

    /* Replaced (truncated), not appended to. */
    put_file(path, "hi");
    assert_int_equal(fs_read_file(path, 1024, &data, &len, f->errmsg), 0);
    assert_int_equal(len, 2);
    assert_string_equal(data, "hi");
    free(data);

    /* An empty file reads as an empty string. */
    put_file(path, "");
    assert_int_equal(fs_read_file(path, 1024, &data, &len, f->errmsg), 0);
    assert_int_equal(len, 0);
    assert_string_equal(data, "");
    free(data);
}

static void test_read_file_errors(void **state)
{
    struct fixture *f = *state;
    char path[PATH_MAX];
    void *data = (void *)1;
    size_t len = 1;
    path_in(f, "missing", path, sizeof path);
    assert_int_equal(fs_read_file(path, 1024, &data, &len, f->errmsg), TALLY_NOTFOUND);
    assert_null(data);
    assert_int_equal(len, 0);
    assert_non_null(strstr(f->errmsg, "missing"));

    path_in(f, "big", path, sizeof path);
    put_file(path, "0123456789");
    assert_int_equal(fs_read_file(path, 9, &data, &len, f->errmsg), TALLY_CORRUPT);
    assert_null(data);
    assert_non_null(strstr(f->errmsg, "is too large (10 bytes)"));
    /* Exactly at the limit is fine. */
    assert_int_equal(fs_read_file(path, 10, &data, &len, f->errmsg), 0);
    free(data);

    /* A directory opens but cannot be read as a file. */
    assert_int_equal(fs_read_file(f->dir, 1 << 20, &data, &len, f->errmsg), TALLY_IOERR);
    assert_null(data);

    fs_fault_inject(FS_OP_OPEN, 0, EIO);
    assert_int_equal(fs_read_file(path, 1024, &data, &len, f->errmsg), TALLY_IOERR);
    assert_non_null(strstr(f->errmsg, "Input/output error"));
}

static void test_write_synced_into_a_missing_directory(void **state)
{
    struct fixture *f = *state;
    char path[PATH_MAX];
    path_in(f, "no/such/file", path, sizeof path);
    assert_int_equal(fs_write_synced(path, "x", 1, f->errmsg), TALLY_IOERR);
    assert_non_null(strstr(f->errmsg, "create "));
}

static void test_mkdir_and_rmdir(void **state)
{
    struct fixture *f = *state;
    char path[PATH_MAX], file[PATH_MAX + 8];
    bool existed = true;
    path_in(f, "d", path, sizeof path);
    assert_int_equal(fs_mkdir(path, &existed, f->errmsg), 0);
    assert_false(existed);
    assert_true(fs_is_dir(path));
    assert_int_equal(fs_mkdir(path, &existed, f->errmsg), 0);
    assert_true(existed);
    assert_int_equal(fs_mkdir(path, NULL, f->errmsg), 0);

    /* A directory that is not empty stays. */
    snprintf(file, sizeof file, "%s/x", path);
    put_file(file, "x");
    assert_int_equal(fs_rmdir(path, f->errmsg), TALLY_IOERR);
    assert_non_null(strstr(f->errmsg, "remove directory"));
    assert_true(fs_is_dir(path));

    assert_int_equal(fs_unlink(file, f->errmsg), 0);
    assert_int_equal(fs_rmdir(path, f->errmsg), 0);
    assert_false(exists(path));
    /* Gone already: not an error. */
    assert_int_equal(fs_rmdir(path, f->errmsg), 0);

    /* A missing parent is. */
    path_in(f, "no/such", path, sizeof path);
    assert_int_equal(fs_mkdir(path, NULL, f->errmsg), TALLY_IOERR);
    assert_non_null(strstr(f->errmsg, "create directory"));
}

static void test_remove_tree(void **state)
{
    struct fixture *f = *state;
    char top[PATH_MAX], path[PATH_MAX + 64], keep[PATH_MAX], keep_file[PATH_MAX + 8];
    path_in(f, "tree", top, sizeof top);
    path_in(f, "keep", keep, sizeof keep);
    assert_int_equal(fs_mkdir(top, NULL, f->errmsg), 0);
    assert_int_equal(fs_mkdir(keep, NULL, f->errmsg), 0);
    snprintf(keep_file, sizeof keep_file, "%s/k", keep);
    put_file(keep_file, "k");
    snprintf(path, sizeof path, "%s/a", top);
    assert_int_equal(fs_mkdir(path, NULL, f->errmsg), 0);
    snprintf(path, sizeof path, "%s/a/b", top);
    assert_int_equal(fs_mkdir(path, NULL, f->errmsg), 0);
    snprintf(path, sizeof path, "%s/a/b/file", top);
    put_file(path, "deep");
    snprintf(path, sizeof path, "%s/file", top);
    put_file(path, "top");
    /* A link to a directory outside: removed, never followed. */
    snprintf(path, sizeof path, "%s/link", top);
    assert_int_equal(symlink(keep, path), 0);

    assert_int_equal(fs_remove_tree(top, f->errmsg), 0);
    assert_false(exists(top));
    assert_true(exists(keep_file));

    /* Missing: not an error. A plain file is removed like a tree. */
    assert_int_equal(fs_remove_tree(top, f->errmsg), 0);
    assert_int_equal(fs_remove_tree(keep_file, f->errmsg), 0);
    assert_false(exists(keep_file));
}

static void test_remove_tree_stops_at_what_cannot_go(void **state)
{
    struct fixture *f = *state;
    /* Entries of /proc cannot be removed, even by root. */
    assert_int_not_equal(fs_remove_tree("/proc/self/fdinfo", f->errmsg), 0);
    assert_non_null(strstr(f->errmsg, "/proc/self/fdinfo/"));
    assert_true(fs_is_dir("/proc/self/fdinfo"));
}

static void test_clear_dir(void **state)
{
    struct fixture *f = *state;
    char dir[PATH_MAX], path[PATH_MAX + 64];
    char **names;
    size_t n;
    path_in(f, "c", dir, sizeof dir);
    assert_int_equal(fs_mkdir(dir, NULL, f->errmsg), 0);
    snprintf(path, sizeof path, "%s/one", dir);
    put_file(path, "1");
    snprintf(path, sizeof path, "%s/sub", dir);
    assert_int_equal(fs_mkdir(path, NULL, f->errmsg), 0);
    snprintf(path, sizeof path, "%s/sub/two", dir);
    put_file(path, "2");

    assert_int_equal(fs_clear_dir(dir, f->errmsg), 0);
    assert_true(fs_is_dir(dir));
    assert_int_equal(fs_list(dir, &names, &n, f->errmsg), 0);
    assert_int_equal(n, 0);
    fs_list_free(names, n);

    /* A missing directory cannot be emptied. */
    path_in(f, "missing", dir, sizeof dir);
    assert_int_equal(fs_clear_dir(dir, f->errmsg), TALLY_IOERR);
    assert_non_null(strstr(f->errmsg, "open directory"));
}

static void test_link_and_rename(void **state)
{
    struct fixture *f = *state;
    char a[PATH_MAX], b[PATH_MAX], c[PATH_MAX];
    void *data;
    size_t len;
    path_in(f, "a", a, sizeof a);
    path_in(f, "b", b, sizeof b);
    path_in(f, "c", c, sizeof c);
    put_file(a, "A");
    assert_int_equal(fs_link(a, b, f->errmsg), 0);
    assert_true(exists(a));
    assert_int_equal(fs_read_file(b, 16, &data, &len, f->errmsg), 0);
    assert_string_equal(data, "A");
    free(data);

    /* A link never replaces a file. */
    put_file(c, "C");
    assert_int_equal(fs_link(a, c, f->errmsg), TALLY_IOERR);
    assert_non_null(strstr(f->errmsg, "File exists"));
    assert_int_equal(fs_read_file(c, 16, &data, &len, f->errmsg), 0);
    assert_string_equal(data, "C");
    free(data);

    /* A rename does. */
    assert_int_equal(fs_rename(b, c, f->errmsg), 0);
    assert_false(exists(b));
    assert_int_equal(fs_read_file(c, 16, &data, &len, f->errmsg), 0);
    assert_string_equal(data, "A");
    free(data);

    /* A missing source is TALLY_NOTFOUND for both. */
    assert_int_equal(fs_link(b, a, f->errmsg), TALLY_NOTFOUND);
    assert_int_equal(fs_rename(b, a, f->errmsg), TALLY_NOTFOUND);
    assert_non_null(strstr(f->errmsg, "rename "));

    /* An injected failure is an I/O error. */
    fs_fault_inject(FS_OP_RENAME, 0, EIO);
    assert_int_equal(fs_rename(c, b, f->errmsg), TALLY_IOERR);
    assert_true(exists(c));
}

static void test_check_writable(void **state)
{
    struct fixture *f = *state;
    char missing[PATH_MAX];
    char **names;
    size_t n;
    assert_int_equal(fs_check_writable(f->dir, f->errmsg), 0);
    /* The probe is gone again. */
    assert_int_equal(fs_list(f->dir, &names, &n, f->errmsg), 0);
    assert_int_equal(n, 0);
    fs_list_free(names, n);

    /* Nothing can be created in /proc/self, even by root. */
    assert_int_not_equal(fs_check_writable("/proc/self", f->errmsg), 0);
    assert_non_null(strstr(f->errmsg, "create a file in /proc/self"));
    path_in(f, "missing", missing, sizeof missing);
    assert_int_equal(fs_check_writable(missing, f->errmsg), TALLY_IOERR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_then_read_whole_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_synced_into_a_missing_directory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mkdir_and_rmdir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_tree_stops_at_what_cannot_go, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_clear_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_and_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_writable, setup, teardown),
    };
    return cmocka_run_group_tests_name("fs", tests, NULL, NULL);
}
