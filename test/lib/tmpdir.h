/* Temporary directories for tests: a fresh one under /tmp, removed
 * recursively at the end. */
#ifndef TALLY_TEST_TMPDIR_H_
#define TALLY_TEST_TMPDIR_H_

/* Create a new empty directory /tmp/tally-test-XXXXXX (or under $TMPDIR).
 * Returns its path, owned by the caller (free()); aborts the test program
 * if it cannot be created, since no test can run without it. */
char *tmpdir_make(void);

/* Remove @dir and everything below it (the path itself is not freed).
 * Errors are ignored: a leftover directory must not fail a test. */
void tmpdir_remove(const char *dir);

#endif
