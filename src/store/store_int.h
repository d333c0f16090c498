/* What the files of the store layer share and nothing else may use: the
 * store's state (struct store), the decoded catalog, and the functions one
 * file of the layer calls in another. The layer's interface is store.h.
 * Names here take the prefix store__ (internal, not static). */
#ifndef TALLY_STORE_STORE_INT_H_
#define TALLY_STORE_STORE_INT_H_

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/batch.h"
#include "lib/byte.h"
#include "log/log.h"
#include "store/acl.h"
#include "store/store.h"
#include "store/users.h"

/* The committed position of one consumer group on one topic. A shared
 * group (docs/groups.md) also keeps one position per share: share i has
 * processed every record of share i below shares[i]; offset is then the
 * lowest of them, below which everything was processed. */
struct store__group {
    char group[STORE_NAME_MAX];
    char topic[STORE_NAME_MAX];
    uint64_t offset;
    uint16_t n_shares;  /* 0: no share positions */
    uint64_t *shares;   /* n_shares positions (owned), each >= offset */
};

/* The data directory a member runs on. */
struct store__dir {
    uint64_t id;
    uint64_t directory_id;
};

struct store {
    char dir[PATH_MAX];
    struct log_config defaults;
    uint64_t catalog_index;          /* index of the catalog file's checkpoint */
    uint64_t applied_index;          /* last entry applied */
    struct store_topic *topics;      /* in creation order (topicset.c) */
    struct store_topic *topics_last;
    size_t n_topics;
    uint64_t digest_topics;          /* sum of the clean topics' digest_part */
    struct store_topic *digest_dirty; /* topics whose part is stale (digest.c) */
    uint64_t replay_until;           /* highest tail or floor index of a log at open:
                                      * entries below are replayed, not live */
    struct store_topic **buckets;    /* index by name, n_buckets (a power of 2) */
    size_t n_buckets;
    struct store_member members[STORE_MAX_MEMBERS];
    unsigned n_members;
    uint64_t cluster_id;             /* COMMAND_CLUSTER_ID, 0: none */
    char divergence[384];            /* store_divergence, "" when none */
    struct {
        uint64_t index, digest;      /* index 0: none */
    } digests[STORE_DIGESTS];        /* store_catalog_digest: index / STORE_DIGEST_EVERY % STORE_DIGESTS */
    struct store__dir dirs[STORE_MAX_MEMBERS]; /* COMMAND_MEMBER_DIR */
    unsigned n_dirs;
    store_append_hook hook;
    void *hook_arg;
    struct buf scratch;              /* stamped copy of a batch being appended */
    struct store__group *groups;     /* consumer group positions */
    unsigned n_groups, cap_groups;
    char compact_last[STORE_NAME_MAX]; /* topic compacted last (round robin) */
    int64_t max_ts;                  /* highest record timestamp (INT64_MIN: none) */
    bool trim_held;                  /* a backup pins the logs: TOPIC_TRIM moves
                                      * trim_offset but deletes no segment
                                      * (store_hold_trim) */
    bool trims_waiting;              /* some topic may have trim_unsynced or
                                      * trim_undeleted (a scan clears it) */
    struct {
        char *path;                  /* DATA/topics/NAME.deleted-INDEX */
        uint64_t index;              /* removed once catalog_written >= index */
    } *trash;
    unsigned n_trash, cap_trash;
    /* Shared with the snapshot thread (store_snapshot_build): */
    pthread_mutex_t file_lock;       /* guards the two below */
    uint64_t catalog_written;        /* index of the catalog file in place */
    uint64_t restores;               /* store_restore calls so far: a checkpoint
                                      * frozen before one no longer describes
                                      * the files it wrote */
    unsigned fd_reserve;             /* store_set_fd_reserve */
    bool catalog_due;                /* a change only the catalog holds was
                                      * applied (members, users, ACLs, ...): a
                                      * checkpoint is wanted (store_checkpoint_wanted) */
    struct users users;              /* COMMAND_USER: SCRAM credentials (store/users.h) */
    struct acls acls;                /* COMMAND_ACL: access control lists (store/acl.h) */
};

/* Checkpoint files (catalog, keys.ckpt) are written by the loop, the
 * snapshot thread (store_snapshot_build) and the checkpoint thread
 * (store_checkpoint_build). Each writer has its own temporary name, and
 * the rename is guarded: under s->file_lock, a file is replaced only by
 * one of an equal or newer index, so an older checkpoint never lands over
 * a newer one. */
struct store__guard {
    pthread_mutex_t *lock;
    uint64_t *written; /* newest index renamed into place so far, or NULL: */
    uint64_t (*in_place)(const char *path); /* the index of the file in place
                        * (0: none), read under the lock: for the files of
                        * which each topic has its own (keys.ckpt) */
    uint64_t index;    /* this file's */
    bool renamed;      /* out: this file was put in place (not skipped) */
};

/* A decoded catalog: topics as a list of unopened store_topic. */
struct store__catalog {
    uint64_t index;
    struct store_topic *topics;
    uint64_t *start_offsets; /* parallel to topics, in list order */
    uint64_t *next_offsets;
    uint32_t n_topics;
    struct store_member members[STORE_MAX_MEMBERS];
    unsigned n_members;
    struct store__group *groups;
    unsigned n_groups;
    bool has_keys;           /* topics' keys were decoded */
    uint64_t cluster_id;     /* version 2 */
    struct store__dir dirs[STORE_MAX_MEMBERS];
    unsigned n_dirs;
    struct users users;      /* version 3 */
    struct acls acls;        /* version 3 */
};

/* catalog.c: the catalog format, the guarded atomic replace of a
 * checkpoint file, store_checkpoint. */
void store__encode_head(const struct store *s, uint64_t index, struct buf *b);
void store__encode_tail(const struct store *s, struct buf *b);
void store__encode_catalog(const struct store *s, uint64_t index, bool with_keys,
                           struct buf *b);
void store__catalog_free(struct store__catalog *c);
int store__decode_catalog(const void *p, size_t n, struct store__catalog *c,
                          char *errmsg);
int store__write_file_as(const char *dir, const char *name, const char *tmp_suffix,
                         const struct buf *b, struct store__guard *g, char *errmsg);
int store__write_catalog(struct store *s, char *errmsg);
/* A change only the catalog records was applied: the next checkpoint
 * writes it (store_checkpoint_wanted); until then a restart applies the
 * change again from Raft's log, which keeps every entry after the last
 * catalog (a Raft snapshot writes one at its index). */
static inline void store__catalog_changed(struct store *s) { s->catalog_due = true; }

/* topicset.c: the topics in creation order, indexed by name. Adding can
 * fail only for memory (TALLY_NOMEM, @t not added); removing does not free
 * @t; clearing frees every topic. */
int store__topics_add(struct store *s, struct store_topic *t);
void store__topics_remove(struct store *s, struct store_topic *t);
void store__topics_clear(struct store *s);

/* topic.c: a topic's log and the tables brought forward from its
 * checkpoints. */
void store__topic_dir(const struct store *s, const char *name, char *out, size_t cap);
void store__log_config(const struct store *s, const struct command_topic_config *c,
                       struct log_config *lc);
void store__topic_free(struct store_topic *t);
uint64_t store__topic_id_read(const struct store *s, const char *name);
int store__topic_id_write(const struct store *s, const struct store_topic *t, char *errmsg);
void store__take_tables(struct store_topic *t, struct store_topic *from);
int store__batch_before(struct store_topic *t, uint64_t before, struct batch_header *h,
                        char *errmsg);
int store__load_tail(struct store_topic *t, char *errmsg);
/* Bring the producer table and key index of @t forward over the log's
 * batches from offsets @prod_from and @keys_from (topic.c). */
int store__rebuild(struct store_topic *t, uint64_t prod_from, uint64_t keys_from,
                   char *errmsg);
/* Count the keys of an appended (stamped, verified) batch, which lies at
 * file position @batch_pos of its segment, into the key and stream
 * indexes. */
int store__index_keys(struct store_topic *t, const uint8_t *batch, size_t len,
                      uint64_t batch_pos, char *errmsg);
int store__open_topic(struct store *s, struct store_topic *t, uint64_t start_offset,
                      uint64_t prod_from, char *errmsg);

/* producer.c: the idempotent producer table of a topic. */
struct store_producer *store__producer_find(struct store_topic *t, uint64_t id);
int store__producer_record(struct store_topic *t, const struct batch_header *h,
                           uint64_t base_offset);
bool store__record_seq_check(struct store_topic *t, const struct batch_header *h,
                             struct store_item_result *res);

/* keyckpt.c: the key index checkpoint (keys.ckpt). */
uint64_t store__load_keys(const struct store *s, struct store_topic *t);
int store__write_keys_file(struct store *s, const char *dir, const struct keys *k,
                           uint64_t index, uint64_t next_offset, const char *tmp_suffix,
                           bool *renamed, char *errmsg);
int store__write_keys(struct store *s, struct store_topic *t, uint64_t index,
                      char *errmsg);

/* backfill.c: the staging directory and segment moves of a backfill. */
void store__backfill_reconcile(struct store *s, struct store_topic *t);

/* retention.c: TOPIC_TRIM and the segment deletion it allows. */
int store__apply_trim(struct store_topic *t, char *errmsg);
/* ... with the segments' files added to @rm (NULL: deleted at once). */
int store__apply_trim_to(struct store_topic *t, struct log_removals *rm, char *errmsg);
/* retention.c: @t's trim offset moved (TOPIC_TRIM): it waits for a
 * checkpoint, then for its deletion. */
void store__trim_waits(struct store *s, struct store_topic *t);
/* A checkpoint recorded trim offsets (@all: every topic's; else those
 * whose trim_unsynced it cleared): delete what waits (unless a backup
 * holds deletions), or add its files to @rm when not NULL. */
int store__trims_recorded(struct store *s, bool all, struct log_removals *rm, char *errmsg);
int store__trim_topic(struct store *s, uint64_t index, struct rd *body,
                      struct store_item_result *res, char *errmsg);

/* store.c: open and close of the state directory; deleted topics'
 * directories waiting for a catalog past their delete. */
void store__sweep_trash(struct store *s);
int64_t store__scan_max_ts(const struct store *s);

/* apply.c: commands applied to the state (store_apply). */
void store__result(struct store_item_result *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int store__unlink_topic(struct store *s, struct store_topic *t, uint64_t index,
                        char *errmsg);

/* digest.c: the catalog digest and CATALOG_CHECK. A topic whose digested
 * fields (settings, created index, trim offset, next offset) may have
 * changed is marked (store__digest_touch, O(1)); a topic leaving the state
 * is taken out (store__digest_forget); store__digest_all marks every topic
 * (rare paths: a snapshot installed or rewound). */
void store__digest_touch(struct store *s, struct store_topic *t);
void store__digest_forget(struct store *s, struct store_topic *t);
void store__digest_all(struct store *s);
void store__note_replay(struct store *s, const struct store_topic *t);
void store__record_digest(struct store *s, uint64_t index);
int store__catalog_check(struct store *s, uint64_t index, struct rd *body, char *errmsg);

/* groups.c: consumer group positions. */
unsigned store__groups_drop(struct store *s, const char *group, const char *topic);
int store__group_commit(struct store *s, struct rd *body, struct store_item_result *res);
int store__group_shares(struct store *s, struct rd *body, struct store_item_result *res);
/* Free the share positions of @n groups (not the array). */
void store__groups_free_shares(struct store__group *groups, unsigned n);
void store__group_delete(struct store *s, struct rd *body, struct store_item_result *res);

/* snap.c: snapshots, and the restored state a restored cluster adopts. */
int store__adopt_restored(struct store *s, uint64_t index, const uint8_t *p, uint32_t n,
                          char *errmsg);

#endif
