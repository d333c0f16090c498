/* Small durable-file helpers shared by the layers that write whole files
 * (the store's checkpoints, a backup's manifest) and the log's directory
 * syncs. */
#ifndef TALLY_LIB_FILE_H_
#define TALLY_LIB_FILE_H_

#include <stddef.h>

/* fsync the directory @dir, so the names created, renamed or removed in it
 * are durable. Returns 0 or TALLY_IOERR with a message naming @dir. */
int file_sync_dir(const char *dir, char *errmsg);

/* Create (or truncate) @path, write @len bytes of @data and fsync it. The
 * caller renames it into place and syncs the directory. Returns 0 or
 * TALLY_IOERR with a message naming @path. */
int file_write_synced(const char *path, const void *data, size_t len, char *errmsg);

#endif
