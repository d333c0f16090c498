/* The node's state: the topic catalog with one segmented log per topic, and
 * the member table. Applies one committed command deterministically; knows
 * nothing of sockets or Raft.
 *
 * Layout of a node's data directory:
 *   DATA/catalog            topics and members, rewritten atomically on
 *                           each change (format at the top of catalog.c)
 *   DATA/topics/NAME/       one log directory per topic (log/log.h)
 *   DATA/raft/              canonical/raft's own files (not ours)
 *
 * Replay safety: after a restart Raft re-applies committed entries that the
 * local state may already contain. Catalog commands at or below the
 * catalog's index are skipped; an APPEND item is skipped when the topic's
 * log already holds a batch from that Raft entry (compared by index and, for
 * several items of one entry, by how many batches of that entry are at the
 * log's tail), or when the topic was created by a later entry. So a restart
 * never duplicates or loses a record.
 *
 * Idempotent producers: a batch whose producer id is not 0 and whose
 * sequence equals the producer's last one is a retry: it is not written
 * and its result carries the original offsets. A sequence that is neither
 * the last nor the next is refused with TALLY_SEQUENCE.
 *
 * Conditional appends: an APPEND item may require the topic's next offset
 * and the versions (record counts) of keys; if one does not hold, nothing
 * of the item is written and the result is TALLY_CONDITION_FAILED with the
 * actual value. The key index behind versions is checkpointed per topic
 * (DATA/topics/NAME/keys.ckpt) at each Raft snapshot and clean shutdown,
 * and brought forward on open from the batches after the checkpoint. */
#ifndef TALLY_STORE_STORE_H_
#define TALLY_STORE_STORE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/byte.h"
#include "log/log.h"
#include "store/command.h"
#include "store/keys.h"
#include "store/streams.h"

#define STORE_NAME_MAX 256
#define STORE_ADDR_MAX 64
#define STORE_MAX_MEMBERS 16

struct store;

/* Idempotent producers: the last batch each producer wrote to a topic, so
 * that a retried batch (same producer id and sequence) gets the original
 * offsets back instead of being written twice. At most
 * STORE_MAX_PRODUCERS per topic; beyond that, the producer whose last write
 * is oldest (lowest Raft index) is forgotten, the same way on every node. */
#define STORE_MAX_PRODUCERS 4096

struct store_producer {
    uint64_t id;
    uint64_t seq;         /* sequence of its last batch */
    uint64_t base_offset; /* where that batch went */
    uint32_t count;
    uint64_t index;       /* Raft index of that batch */
};

struct store_topic {
    char name[STORE_NAME_MAX];
    struct command_topic_config config;
    uint64_t created_index;   /* Raft index of its TOPIC_CREATE */
    struct tally_log *log;
    uint64_t tail_index;      /* raft index of the last batch in the log */
    unsigned tail_count;      /* batches of that entry at the log's tail */
    uint64_t floor_index;     /* entries at or below are in the state (snapshot) */
    bool damaged;             /* its log lost records its checkpoints counted:
                               * the next restore goes back to the snapshot */
    uint64_t missing_from;    /* [missing_from, missing_to): history this node */
    uint64_t missing_to;      /* lacks since it installed a snapshot (0, 0: none) */
    struct store_producer *producers; /* unordered, n_producers of cap */
    unsigned n_producers, cap_producers;
    struct keys keys;         /* key -> version and latest offset */
    struct streams streams;   /* key -> offsets by version (streams.h) */
    uint64_t streams_counted; /* next offset the last streams.ckpt written or
                               * loaded counts up to (0: none) */
    uint64_t stream_direct;   /* records stream reads took alone at their place */
    uint64_t stream_whole;    /* records they took from a batch read whole */
    uint64_t compact_limit;   /* offsets below are in the last key checkpoint:
                               * compaction may touch them (0 until one) */
    uint64_t trim_offset;     /* the cluster's start offset (TOPIC_TRIM): offsets
                               * below are gone or hidden on every node */
    uint64_t tombstone_limit; /* compaction removes tombstones only below this
                               * offset (TOPIC_TRIM; 0: none) */
    bool trim_unsynced;       /* trim_offset moved since the last checkpoint */
    bool trim_undeleted;      /* segments below trim_offset may still be on disk */
    uint64_t keys_ckpt_next;  /* next offset its keys.ckpt in place counts up to
                               * (UINT64_MAX: unknown): a checkpoint at the same
                               * offset is not written again (issue 24) */
    uint64_t digest_part;     /* its term of the catalog digest (digest.c) */
    bool digest_dirty;        /* on the store's dirty list: digest_part is stale */
    struct store_topic *dirty_next;
    uint64_t restore_from;    /* at open only: its directory is NAME.deleted-THIS */
    struct store_topic *next;      /* creation order; linked by topicset.c only */
    struct store_topic *prev;
    struct store_topic *hash_next; /* topicset.c's index by name */
};

struct store_member {
    uint64_t id;
    char client_addr[STORE_ADDR_MAX];
    char raft_addr[STORE_ADDR_MAX];
};

/* Result of one applied command (one per APPEND item). */
struct store_item_result {
    int code;                /* 0 or a TALLY_* code */
    bool duplicate;          /* a retried batch: offsets are the original ones */
    uint64_t actual;         /* CONDITION_FAILED: actual next offset / key version */
    uint64_t base_offset;
    uint32_t count;
    char message[160];
};

struct store_result {
    uint64_t index;          /* Raft index of the entry */
    uint32_t n;
    struct store_item_result items[]; /* n entries */
};

/* Called after records were appended to @t (wake long-polls). */
typedef void (*store_append_hook)(void *arg, struct store_topic *t);

/* Open the state in @dir (created if needed; copied), reopening every
 * topic's log (each recovers itself). @defaults are the node's log
 * defaults (copied). *out owned by the caller: store_close. */
int store_open(const char *dir, const struct log_config *defaults, struct store **out,
               char *errmsg);
void store_close(struct store *s);

void store_set_append_hook(struct store *s, store_append_hook fn, void *arg);

/* Descriptors the process keeps for other things than the topics' active
 * segments (cached sealed segments, connections, a margin): a snapshot or
 * checkpoint freeze duplicates the descriptors of the logs written since
 * their last fsync only while those fit beside them (and in a quarter of
 * the limit), else its build syncs the whole file system once. 0 until
 * set. */
void store_set_fd_reserve(struct store *s, unsigned reserve);

/* Seed the member table (from the command line) if it is empty. */
int store_seed_members(struct store *s, const struct store_member *m, unsigned n, char *errmsg);

/* Apply the entry at Raft @index. Per-item failures (unknown topic, bad
 * batch, topic exists) are results, identical on every node. A non-zero
 * return is a local failure (disk): the node must stop. On success *out
 * (may be NULL if not wanted) is owned by the caller, free(). */
int store_apply(struct store *s, uint64_t index, const void *entry, size_t len,
                struct store_result **out, char *errmsg);

/* fsync every topic log. */
int store_sync(struct store *s, char *errmsg);

/* Sync the logs and write the catalog checkpoint at the applied index
 * (clean shutdown), so the next open replays nothing. */
int store_checkpoint(struct store *s, char *errmsg);

struct store_topic *store_topic_find(struct store *s, const char *name);
/* The number of topics (O(1)). */
size_t store_topic_count(const struct store *s);
struct store_topic *store_topics(struct store *s); /* linked list, by creation */
unsigned store_members(struct store *s, const struct store_member **members);
const struct store_member *store_member_find(struct store *s, uint64_t id);

/* The cluster's identity (COMMAND_CLUSTER_ID), 0 while it has none. */
uint64_t store_cluster_id(struct store *s);
/* The restored state (topics created before Raft index 1 by a restore,
 * store/import.c, with their producers and key indexes, and the group
 * positions) as a catalog, for COMMAND_CLUSTER_ID: the first leader of a
 * restored cluster so describes it through Raft. @out left empty when this
 * store holds no restored topic. */
int store_describe_restored(struct store *s, struct buf *out);
/* A difference between this node's catalog and the cluster's that apply
 * found (a restored topic that differs from the leader's description), or
 * NULL. */
const char *store_divergence(struct store *s);
/* The digest of this node's catalog (topics with their creation index,
 * configuration, start and next offsets; group positions: what apply makes
 * identical on every node) right after it applied entry @index, if it still
 * knows it; false otherwise. For COMMAND_CATALOG_CHECK. Digests are taken
 * only at indexes that are multiples of STORE_DIGEST_EVERY (the digest
 * hashes every topic, too much for every entry with many topics) and kept
 * for the last STORE_DIGESTS of those applied live, not replayed. */
#define STORE_DIGESTS 256
#define STORE_DIGEST_EVERY 16
bool store_catalog_digest(struct store *s, uint64_t index, uint64_t *digest);

/* The cluster's users (COMMAND_USER), borrowed until the next apply. */
struct users;
const struct users *store_users(struct store *s);

/* The cluster's access control lists (COMMAND_ACL), borrowed likewise. */
struct acls;
const struct acls *store_acls(struct store *s);
/* The last entry applied. */
uint64_t store_applied(struct store *s);
/* The data directory recorded for member @id (COMMAND_MEMBER_DIR), 0 if none. */
uint64_t store_member_dir(struct store *s, uint64_t id);

/* Committed position of consumer group @group on @topic; false if none. */
bool store_group_offset(struct store *s, const char *group, const char *topic,
                        uint64_t *offset);

/* The share positions of @group on @topic (docs/groups.md): *n_shares
 * positions in *positions (borrowed until the next apply), or *n_shares 0
 * when the group has none (every share is then at its offset). False if
 * the group has no position on @topic. */
bool store_group_shares(struct store *s, const char *group, const char *topic,
                        unsigned *n_shares, const uint64_t **positions);

/* The @i-th consumer group position (0, 1, ... in first-commit order);
 * false past the last. Pointers borrowed until the next apply. */
bool store_group_at(struct store *s, unsigned i, const char **group, const char **topic,
                    uint64_t *offset);

/* Restore from a backup (store/import.c), offline, into a store that has
 * applied nothing: add topic @name as created before Raft index 1
 * (created_index 0), its log empty and starting at @start_offset. The
 * caller appends the batches, stamped with raft_index 0, to (*out)->log,
 * counts their keys into (*out)->keys, then calls store_checkpoint. */
int store_import_topic(struct store *s, const char *name, const struct command_topic_config *config,
                       uint64_t start_offset, struct store_topic **out, char *errmsg);
/* Set a group position without Raft (same restore). */
int store_import_group(struct store *s, const char *group, const char *topic, uint64_t offset,
                       char *errmsg);

/* First offset of @t in the cluster as far as this node knows: its log's
 * start, or the start of the history it lacks after a snapshot install,
 * and never below the start offset the leader set (trim_offset). */
uint64_t store_topic_start(const struct store_topic *t);

/* Valid topic name: lib/name.h's rule (1..249 bytes of [A-Za-z0-9._-],
 * not "." or ".."). */
bool store_topic_name_valid(const char *name);

/* Retention, decided on the leader only and applied by every node through
 * a TOPIC_TRIM entry. The leader's decision for @t at @now_ms (its clock;
 * @delete_retention_ms is the node setting for tombstones, -1: keep):
 * the new start offset (retention by age and size, for topics with a
 * delete policy) and tombstone limit (for topics with a compact policy:
 * the first offset whose batch is younger than delete_retention_ms).
 * Returns true when either moves forward, i.e. a TOPIC_TRIM is due. */
bool store_retention_due(struct store_topic *t, int64_t now_ms, int64_t delete_retention_ms,
                         uint64_t *start_offset, uint64_t *tombstone_limit);

/* Hold (@hold true) or release the physical deletion of segments while a
 * backup copies this node's logs (server/gw.c's backup pin). TOPIC_TRIM
 * entries applied while held move the topic's start offset (trim_offset)
 * as on every other node, so that replicas agree on what is readable, but
 * delete no segment file; the release deletes those a checkpoint already
 * recorded (the next checkpoint the others). A restart meanwhile deletes
 * them at open. Loop thread. */
int store_hold_trim(struct store *s, bool hold, char *errmsg);
bool store_trim_held(const struct store *s);

/* A TOPIC_TRIM only moves the topic's start offset (reads below it are
 * refused at once); its segments are deleted once a checkpoint records
 * the new start offset with key indexes that count every record deleted,
 * so a restart never needs what is gone: store_checkpoint_wanted is true
 * while trims wait (unless a backup holds deletions), and the server runs
 * one checkpoint off the loop each retention interval for all of them
 * (store_checkpoint_freeze), however many topics were trimmed. */

/* Highest record timestamp in any topic (INT64_MIN when none): a new leader
 * stamps no earlier than this. */
int64_t store_max_timestamp(struct store *s);

/* Snapshots, in three steps so that the loop only copies (Raft's fsm
 * version 3, docs/raft.md):
 *   store_snapshot_freeze  (loop) encodes the catalog (topics with their
 *                          offsets, producers, members, groups), takes a
 *                          copy of every topic's key index that shares
 *                          its chunks (keys_share: O(chunks), 4 KiB
 *                          each), copies the stream indexes whose
 *                          checkpoint is due, and duplicates each log's
 *                          active segment descriptor;
 *   store_snapshot_build   (any thread) fsyncs those logs, writes the key
 *                          checkpoints and the catalog at the snapshot's
 *                          index, and builds the snapshot: the catalog
 *                          with every key index, checksummed (XXH3-64);
 *   store_snapshot_release (loop) frees the copies and lets compaction
 *                          use the new checkpoints.
 * The build touches no store state but the checkpoint files and their
 * lock, so apply goes on meanwhile. Memory: while it runs, a write to a
 * key whose chunk the copy still shares copies that chunk (copy on
 * write), so at most a second key index (32 bytes per slot) if every
 * chunk is written meanwhile. */
struct store_frozen;
int store_snapshot_freeze(struct store *s, uint64_t index, struct store_frozen **out,
                          char *errmsg);
int store_snapshot_build(struct store_frozen *f, struct buf *out, char *errmsg);
void store_snapshot_release(struct store *s, struct store_frozen *f);
/* The three steps at once (tests, tools). */
int store_snapshot(struct store *s, uint64_t index, struct buf *out, char *errmsg);

/* Checkpoints off the loop, in the same three steps: the catalog and the
 * key indexes that changed, at the applied index, written by another
 * thread while apply goes on (the retention interval's, for the trims
 * waiting; and after a change only the catalog records: members, users,
 * ACLs, a backfilled history). store_checkpoint_wanted says whether one
 * is due. The freeze copies only the key indexes whose keys.ckpt is not
 * current. The release (loop; @built: the build returned 0) takes the
 * segments of the trims the checkpoint recorded out of their logs, their
 * files deleted at once or, with @rm, by log_removals_run (off the loop);
 * a failed build leaves the checkpoint due. At most one build runs at a time per store (a
 * snapshot's may run beside it). */
bool store_checkpoint_wanted(const struct store *s);
int store_checkpoint_freeze(struct store *s, struct store_frozen **out, char *errmsg);
int store_checkpoint_build(struct store_frozen *f, char *errmsg);
int store_checkpoint_release(struct store *s, struct store_frozen *f, bool built,
                             struct log_removals *rm, char *errmsg);

/* Restore a snapshot. @local_first: at start-up the local state is at least
 * as new as any snapshot this node took, so it is kept. Otherwise (a
 * snapshot installed from the leader) the state is replaced: topics are
 * created or dropped as in the snapshot, and a log that ends before the
 * snapshot's next offset restarts there, leaving a gap in its history
 * (reported by fetch as out of range below the new start). */
int store_restore(struct store *s, const void *p, size_t n, bool local_first, char *errmsg);

/* Backfill: the history [missing_from, missing_to) a snapshot install
 * left out of a topic is fetched from a peer (server/backfill.c) into a
 * staging log (DATA/topics/NAME/backfill), then its segments are moved in
 * front of the topic's log and the range is cleared. A crash at any point
 * leaves either the old state, or some moved segments that the next open
 * adopts (the range shrinks), with the staging directory removed. */
bool store_backfill_pick(struct store *s, char *topic, size_t cap, uint64_t *created_index,
                         uint64_t *from, uint64_t *to);
/* A new empty staging log starting at @from (*staging owned by the
 * caller until store_backfill_finish or _abort). */
int store_backfill_begin(struct store *s, const char *topic, uint64_t from,
                         struct tally_log **staging, char *errmsg);
/* The staging log holds [from, to): move it in. TALLY_BUSY (and nothing
 * done) when the topic changed meanwhile; another error is a disk
 * failure. Takes @staging in every case. */
int store_backfill_finish(struct store *s, const char *topic, uint64_t created_index,
                          uint64_t from, uint64_t to, struct tally_log *staging, char *errmsg);
void store_backfill_abort(struct store *s, const char *topic, struct tally_log *staging);

/* Keyed compaction of the topics whose policy includes "compact" (the
 * mechanics are log.h's log_compact_*). One job at a time: planned and
 * finished on the loop thread, run on a worker thread. Only offsets a key
 * index checkpoint already covers are compacted, because the checkpoint
 * holds the versions (record counts) of the keys; a key index rebuilt from
 * a compacted log would count fewer records. Tombstones are removed only
 * below the topic's tombstone_limit, which the leader sets (TOPIC_TRIM). */
struct store_compact_config {
    int64_t min_lag_ms;          /* leave segments younger than this */
    size_t map_bytes;            /* key map memory of one job */
    uint64_t io_rate;            /* bytes per second a job reads and writes (0: no limit) */
};

struct store_compaction;

/* The next topic (round robin) with compaction work, as a job; *out NULL
 * when no topic has any. *out owned by the caller: store_compact_free. */
int store_compact_prepare(struct store *s, const struct store_compact_config *cfg,
                          int64_t now_ms, struct store_compaction **out, char *errmsg);
/* The worker step (any thread; touches no store state). */
int store_compact_run(struct store_compaction *j, char *errmsg);
/* Ask a running job to stop soon (any thread). */
void store_compact_cancel(struct store_compaction *j);
/* Swap the result in, if the topic still exists (the loop thread). A
 * non-zero return is a disk failure of the topic's log. */
int store_compact_finish(struct store *s, struct store_compaction *j,
                         struct log_compact_stats *st, char *errmsg);
const char *store_compaction_topic(const struct store_compaction *j);
void store_compact_free(struct store_compaction *j);

#endif
