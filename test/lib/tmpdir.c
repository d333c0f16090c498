/* Temporary directories for tests (see tmpdir.h). */
#include "tmpdir.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *tmpdir_make(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[PATH_MAX];
    char *dir;
    if (base == NULL || *base == '\0') {
        base = "/tmp";
    }
    snprintf(tmpl, sizeof tmpl, "%s/tally-test-XXXXXX", base);
    if (mkdtemp(tmpl) == NULL) {
        perror("tmpdir_make: mkdtemp");
        abort();
    }
    dir = strdup(tmpl);
    if (dir == NULL) {
        abort();
    }
    return dir;
}

void tmpdir_remove(const char *dir)
{
    DIR *d;
    struct dirent *ent;
    if (dir == NULL) {
        return;
    }
    d = opendir(dir);
    if (d != NULL) {
        while ((ent = readdir(d)) != NULL) {
            char path[PATH_MAX];
            struct stat st;
            if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) {
                continue;
            }
            snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
            /* lstat: follow no symlink out of the test directory. */
            if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
                tmpdir_remove(path);
            } else {
                unlink(path);
            }
        }
        closedir(d);
    }
    rmdir(dir);
}
