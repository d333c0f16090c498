/* Backups: the manifest of a backup directory, its verification, and the
 * offline restore of a backup into a new node's data directory.
 *
 * A backup directory (written by `tally backup`, read by `tally restore`):
 *   DIR/topics/NAME/   one log directory per topic (log/log.h), holding the
 *                      batches of [start_offset, next_offset) byte for byte
 *                      as the source node stored them
 *   DIR/MANIFEST       written last and atomically (MANIFEST.tmp, fsync,
 *                      rename, fsync DIR): a directory without it is not a
 *                      backup. Text, one item per line:
 *
 *     tally-backup 1
 *     created_ms MS
 *     node ID                      the node the cut was read on
 *     applied_index N              the Raft index of the cut
 *     term T
 *     topic NAME POLICY RETENTION_MS RETENTION_BYTES SEGMENT_BYTES START NEXT
 *     group GROUP TOPIC OFFSET     GROUP percent-encoded (%XX for bytes
 *                                  outside [A-Za-z0-9._-])
 *     file PATH SIZE XXH3          PATH relative to DIR, XXH3-64 in hex
 *     end
 *     checksum XXH3                XXH3-64 (hex) of every byte before this line
 *
 *   Topic lines come before group lines, and those before file lines.
 *
 * Restore (import_restore) re-creates the state of the cut in an empty data
 * directory for a node of a NEW cluster, before its first start: the
 * topics with their settings, logs holding the same batches at the same
 * offsets, each topic's key index, and the consumer group positions. The
 * new cluster's Raft log starts again at index 1, and the store skips an
 * APPEND whose Raft index is not above a topic's created_index or the index
 * of the log's last batch (store.h, replay safety). So every restored batch
 * is re-stamped with raft_index 0 (batch_stamp keeps the payload and its
 * checksum; the header checksum is recomputed) and every restored topic is
 * created at index 0, with the catalog at index 0: the new cluster's first
 * entries apply on top of it. Idempotent producer tables are not restored
 * (a producer's retry across a restore is not recognised). */
#ifndef TALLY_STORE_IMPORT_H_
#define TALLY_STORE_IMPORT_H_

#include <stdbool.h>
#include <stdint.h>

#include "log/log.h"
#include "store/command.h"
#include "store/store.h"

#define IMPORT_MANIFEST_NAME "MANIFEST"
#define IMPORT_MANIFEST_VERSION 1
#define IMPORT_PATH_MAX 512

struct import_topic {
    char name[STORE_NAME_MAX];
    struct command_topic_config config;
    uint64_t start_offset;
    uint64_t next_offset;
};

struct import_group {
    char group[STORE_NAME_MAX];
    char topic[STORE_NAME_MAX];
    uint64_t offset;
};

struct import_file {
    char path[IMPORT_PATH_MAX]; /* relative to the backup directory */
    uint64_t size;
    uint64_t checksum;          /* XXH3-64 of the whole file */
};

struct import_manifest {
    uint32_t version;
    int64_t created_ms;
    uint64_t node_id;
    uint64_t applied_index;
    uint64_t term;
    struct import_topic *topics;
    unsigned n_topics, cap_topics;
    struct import_group *groups;
    unsigned n_groups, cap_groups;
    struct import_file *files;
    unsigned n_files, cap_files;
};

void import_manifest_init(struct import_manifest *m);
void import_manifest_free(struct import_manifest *m);

/* Append a topic or a group (copied). 0 or TALLY_NOMEM. */
int import_manifest_add_topic(struct import_manifest *m, const struct import_topic *t);
int import_manifest_add_group(struct import_manifest *m, const struct import_group *g);

/* List every file under DIR/topics/NAME of each topic of @m with its size
 * and checksum (read now). */
int import_manifest_add_files(struct import_manifest *m, const char *dir, char *errmsg);

/* Write DIR/MANIFEST atomically. */
int import_manifest_write(const struct import_manifest *m, const char *dir, char *errmsg);

/* Read and check DIR/MANIFEST (its own checksum, version, syntax). */
int import_manifest_read(const char *dir, struct import_manifest *m, char *errmsg);

/* Progress of long work: @done of @total bytes (checked or restored). */
typedef void (*import_progress_fn)(void *arg, const char *phase, uint64_t done, uint64_t total);

/* Check every file the manifest lists (size and checksum), that the
 * topic directories hold no file it does not list, and that each topic's
 * log holds exactly its manifest range [START, NEXT): batches verified,
 * offsets contiguous, none from a Raft index after the cut. TALLY_CORRUPT
 * with the file named on the first mismatch. */
int import_verify(const struct import_manifest *m, const char *dir, import_progress_fn progress,
                  void *arg, char *errmsg);

/* What a restore did. */
struct import_stats {
    unsigned topics;
    unsigned groups;
    uint64_t batches;
    uint64_t records;
    uint64_t bytes;
};

/* Verify the backup in @backup_dir (as import_verify), then build the state
 * of its cut in @data_dir, which must not exist or be an empty directory.
 * The state is built in DATA_DIR.restoring (which must not exist) and
 * renamed to @data_dir at the end, and removed if the restore fails, so a
 * failed restore leaves no data directory a node would start from. @defaults: the log settings of the
 * node (segment size for topics that do not set one). */
int import_restore(const char *backup_dir, const char *data_dir,
                   const struct log_config *defaults, import_progress_fn progress, void *arg,
                   struct import_stats *st, char *errmsg);

#endif
