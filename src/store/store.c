/* The node's state: topic catalog, member table, one log per topic; applies
 * committed commands deterministically.
 *
 * CATALOG FILE FORMAT, version 3 (DATA/catalog; also the snapshot body)
 *
 *   offset size field
 *   0      4    magic "TLYC"
 *   4      4    format version (2; version 1 is read too: it lacks every
 *               field marked "version 2" below, which then read as 0)
 *   8      8    index: Raft index of the last catalog change (file), or the
 *               snapshot index (snapshot)
 *   16     4    n_topics, then per topic:
 *                 str name, u8 policy, i64 retention_ms, i64 retention_bytes,
 *                 i64 segment_bytes, u64 created_index,
 *                 u64 start_offset, u64 next_offset  (informational in the
 *                 file; authoritative in a snapshot),
 *                 u64 missing_from, u64 missing_to (history this node lacks
 *                 after installing a snapshot; 0, 0 when none),
 *                 u32 n_producers, then per producer: u64 id, u64 seq,
 *                 u64 base_offset, u32 count, u64 raft_index,
 *                 since version 2: u64 trim_offset, u64 tombstone_limit
 *                 (the last TOPIC_TRIM applied; version 1: 0, 0)
 *          4    n_members, then per member: u64 id, str client, str raft
 *          4    n_groups, then per group: str group, str topic, u64 offset
 *          1    has_keys: 0 in the file, 1 in a snapshot, where the key
 *               index of each topic follows, in topic order (keys.h)
 *   since version 2, at the end of the catalog:
 *          8    cluster_id (CMD_CLUSTER_ID; 0: none yet)
 *          4    n_dirs, then per member: u64 id, u64 directory_id
 *               (CMD_MEMBER_DIR)
 *   since version 3:
 *          4    n_users, then per user: its SCRAM credentials (CMD_USER;
 *               encoding in store/users.h; version 2: no users)
 *          4    n_acls, then each ACL rule (CMD_ACL; store/acl.h)
 *          8    XXH3-64 of every byte before it
 *
 * The file is replaced atomically: write catalog.tmp, fsync, rename over
 * catalog, fsync the directory. It is a checkpoint of the whole non-log
 * state at its index: it is written (after the topic logs are synced) on
 * every catalog change, at every Raft snapshot and at clean shutdown. On
 * open, the producer tables are brought forward from it by reading the
 * headers of the batches after its index at the tail of each log, so the
 * cost depends on the entries since the last checkpoint, not on the size
 * of the log. */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/batch.h"
#include "lib/codec.h"
#include "lib/err.h"
#include "lib/file.h"
#include "lib/logger.h"
#include "lib/name.h"
#include "log/fs.h"
#include "store/acl.h"
#include "store/users.h"

#define STORE__MAGIC "TLYC"
#define STORE__VERSION 3
#define STORE__VERSION_MIN 1 /* oldest catalog format this build reads */

/* The committed position of one consumer group on one topic. */
struct store__group {
    char group[STORE_NAME_MAX];
    char topic[STORE_NAME_MAX];
    uint64_t offset;
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
    struct store_topic *topics;      /* in creation order */
    struct store_member members[STORE_MAX_MEMBERS];
    unsigned n_members;
    uint64_t cluster_id;             /* CMD_CLUSTER_ID, 0: none */
    char divergence[384];            /* store_divergence, "" when none */
    struct {
        uint64_t index, digest;      /* index 0: none */
    } digests[STORE_DIGESTS];        /* store_catalog_digest: index / STORE_DIGEST_EVERY % STORE_DIGESTS */
    struct store__dir dirs[STORE_MAX_MEMBERS]; /* CMD_MEMBER_DIR */
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
    /* Shared with the snapshot thread (store_snapshot_build): */
    pthread_mutex_t file_lock;       /* guards the two below */
    uint64_t catalog_written;        /* index of the catalog file in place */
    uint64_t keys_written;           /* newest index of a keys.ckpt in place */
    struct users users;              /* CMD_USER: SCRAM credentials (store/users.h) */
    struct acls acls;                /* CMD_ACL: access control lists (store/acl.h) */
};

static int store__mkdir(const char *path, char *errmsg)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        return err_os(errmsg, errno, "create directory %s", path);
    }
    return 0;
}

/* Remove a directory tree: a topic directory holds plain files and at
 * most the backfill staging directory, which holds plain files. */
static int store__remove_tree(const char *path, char *errmsg)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char child[PATH_MAX + 256];
    if (d == NULL) {
        return errno == ENOENT ? 0 : err_os(errmsg, errno, "open directory %s", path);
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        if (unlink(child) == 0 || errno == ENOENT) {
            continue;
        }
        /* EISDIR: the backfill staging directory, one level down */
        int rv = errno == EISDIR ? store__remove_tree(child, errmsg)
                                 : err_os(errmsg, errno, "remove %s", child);
        if (rv != 0) {
            closedir(d);
            return rv;
        }
    }
    closedir(d);
    if (rmdir(path) != 0 && errno != ENOENT) {
        return err_os(errmsg, errno, "remove directory %s", path);
    }
    return 0;
}

uint64_t store_topic_start(const struct store_topic *t)
{
    uint64_t start = t->missing_to > t->missing_from ? t->missing_from : log_start_offset(t->log);
    return start > t->trim_offset ? start : t->trim_offset;
}

bool store_topic_name_valid(const char *name)
{
    return name_topic_check(name, NULL, 0);
}

static void store__topic_dir(const struct store *s, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/topics/%s", s->dir, name);
}

static void store__log_config(const struct store *s, const struct cmd_topic_config *c,
                              struct log_config *lc)
{
    *lc = s->defaults;
    if (c->segment_bytes > 0) {
        lc->segment_bytes = (uint64_t)c->segment_bytes;
    }
    lc->retention_ms = c->retention_ms;
    lc->retention_bytes = c->retention_bytes;
}

/* Find the Raft index of the log's last batch and how many batches at the
 * tail came from that same entry, walking back batch by batch. */
/* Free a topic and what it owns (closing its log if open). */
static void store__topic_free(struct store_topic *t)
{
    if (t->log != NULL) {
        log_close(t->log);
    }
    free(t->producers);
    keys_free(&t->keys);
    free(t);
}

/* Move the producer table and key index of the snapshot's topic @from into
 * @t, replacing its own (each a no-op if @t already holds it: a topic
 * created from the snapshot is a copy of @from). The two are checked
 * separately: a topic may have keys and no producer table. */
static void store__take_tables(struct store_topic *t, struct store_topic *from)
{
    if (t->producers != from->producers) {
        free(t->producers);
        t->producers = from->producers;
        t->n_producers = from->n_producers;
        t->cap_producers = from->cap_producers;
    }
    if (t->keys.slots != from->keys.slots) {
        keys_free(&t->keys);
        t->keys = from->keys;
    }
    from->producers = NULL;
    keys_init(&from->keys);
}

/* Header of the batch that holds offset @before - 1 (the one ending at
 * @before), read from the log. Used to walk a log back from its tail. */
static int store__batch_before(struct store_topic *t, uint64_t before, struct batch_header *h,
                               char *errmsg)
{
    void *data = NULL;
    size_t len = 0;
    uint64_t after;
    int rv = log_read_copy(t->log, before - 1, 1, &data, &len, &after, errmsg);
    if (rv == 0) {
        rv = len >= BATCH_HEADER_SIZE ? batch_decode_header(data, len, h, errmsg) : TALLY_CORRUPT;
    }
    free(data);
    return rv;
}

static int store__load_tail(struct store_topic *t, char *errmsg)
{
    uint64_t next = log_next_offset(t->log);
    uint64_t start = log_start_offset(t->log);
    t->tail_index = 0;
    t->tail_count = 0;
    while (next > start) {
        struct batch_header h;
        int rv = store__batch_before(t, next, &h, errmsg);
        if (rv != 0) {
            return rv;
        }
        if (t->tail_count > 0 && h.raft_index != t->tail_index) {
            break;
        }
        t->tail_index = h.raft_index;
        t->tail_count++;
        next = h.base_offset;
    }
    return 0;
}

static struct store_producer *store__producer_find(struct store_topic *t, uint64_t id)
{
    for (unsigned i = 0; i < t->n_producers; i++) {
        if (t->producers[i].id == id) {
            return &t->producers[i];
        }
    }
    return NULL;
}

/* Remember the last batch of a producer. When the table is full, the
 * producer whose last write is oldest is forgotten: a choice that depends
 * only on applied entries, so every node makes the same one. */
static int store__producer_record(struct store_topic *t, const struct batch_header *h,
                                  uint64_t base_offset)
{
    struct store_producer *p = store__producer_find(t, h->producer_id);
    if (p == NULL) {
        if (t->n_producers == t->cap_producers && t->cap_producers < STORE_MAX_PRODUCERS) {
            unsigned cap = t->cap_producers ? t->cap_producers * 2 : 16;
            cap = cap > STORE_MAX_PRODUCERS ? STORE_MAX_PRODUCERS : cap;
            struct store_producer *np = realloc(t->producers, cap * sizeof *np);
            if (np == NULL) {
                return TALLY_NOMEM;
            }
            t->producers = np;
            t->cap_producers = cap;
        }
        if (t->n_producers < t->cap_producers) {
            p = &t->producers[t->n_producers++];
        } else {
            p = &t->producers[0];
            for (unsigned i = 1; i < t->n_producers; i++) {
                if (t->producers[i].index < p->index) {
                    p = &t->producers[i];
                }
            }
        }
    }
    p->id = h->producer_id;
    p->seq = h->producer_seq;
    p->base_offset = base_offset;
    p->count = h->last_offset_delta + 1;
    p->index = h->raft_index;
    return 0;
}

/* Count the keys of an appended (stamped) batch into the key index. */
static int store__index_keys(struct store_topic *t, const uint8_t *batch, size_t len,
                             char *errmsg)
{
    struct batch_iter it;
    struct batch_record r;
    int rv = batch_iter_init(&it, batch, len, errmsg);
    while (rv == 0 && (rv = batch_iter_next(&it, &r, errmsg)) == 0) {
        if (r.key != NULL) {
            rv = keys_bump(&t->keys, r.key, r.key_len, r.offset);
        }
    }
    batch_iter_close(&it);
    return rv == TALLY_EOF ? 0 : rv;
}

/* Bring the producer table and the key index of @t forward from their
 * checkpoints: each checkpoint counted the log below the next offset it
 * records (@prod_from, @keys_from), so read forward from the lower one and
 * record what apply recorded, oldest first. The cost is the batches since
 * the checkpoints, not the size of the log (unless a checkpoint is missing
 * or unusable: then its offset is the log's start and the log is read
 * once). Offsets, not Raft indexes: a checkpoint written while its topic
 * was behind the store's index (going back to a snapshot) is still exact. */
static int store__rebuild(struct store_topic *t, uint64_t prod_from, uint64_t keys_from,
                          char *errmsg)
{
    uint64_t from = prod_from < keys_from ? prod_from : keys_from;
    int rv = 0;
    if (from < log_start_offset(t->log)) {
        from = log_start_offset(t->log);
    }
    while (from < log_next_offset(t->log)) {
        void *data = NULL;
        size_t len = 0, pos = 0;
        uint64_t after;
        rv = log_read_copy(t->log, from, 4u << 20, &data, &len, &after, errmsg);
        while (rv == 0 && pos < len) {
            struct batch_header h;
            rv = batch_decode_header((uint8_t *)data + pos, len - pos, &h, errmsg);
            if (rv != 0 || h.batch_len > len - pos) {
                rv = rv != 0 ? rv : TALLY_CORRUPT;
                break;
            }
            if (h.producer_id != 0 && h.base_offset >= prod_from) {
                rv = store__producer_record(t, &h, h.base_offset);
            }
            if (rv == 0 && (h.flags & BATCH_FLAG_KEYED) && h.base_offset >= keys_from) {
                rv = store__index_keys(t, (uint8_t *)data + pos, h.batch_len, errmsg);
            }
            pos += h.batch_len;
        }
        free(data);
        if (rv != 0 || len == 0) {
            break;
        }
        from = after;
    }
    return rv;
}

/* The key index checkpoint of a topic: DATA/topics/NAME/keys.ckpt
 *   0  4  magic "TLYK"     4  4  version (2)     8  8  index
 *   16 8  next offset: the index counts the log's records below it
 *   24 .. keys_encode()    then 8  XXH3-64 of everything before
 * Version 1 (before 2026-11-22) had no next offset: it counted the batches
 * up to its index, found by walking back from the log's tail. */
#define STORE__KEYS_MAGIC "TLYK"
#define STORE__KEYS_VERSION 2

static void store__keys_path(const struct store *s, const struct store_topic *t, char *out,
                             size_t cap)
{
    snprintf(out, cap, "%s/topics/%s/keys.ckpt", s->dir, t->name);
}

/* The offset after the last batch of the log with a Raft index at or
 * below @index (the log's start if none): what a version 1 key checkpoint
 * at @index counted. */
static int store__offset_after_index(struct store_topic *t, uint64_t index, uint64_t *out,
                                     char *errmsg)
{
    uint64_t from = log_next_offset(t->log);
    while (from > log_start_offset(t->log)) {
        struct batch_header h;
        int rv = store__batch_before(t, from, &h, errmsg);
        if (rv != 0) {
            return rv;
        }
        if (h.raft_index <= index) {
            break;
        }
        from = h.base_offset;
    }
    *out = from;
    return 0;
}

/* Load the key checkpoint into t->keys; returns the offset it counts the
 * log up to, or the log's start (and an empty index) when it is missing or
 * unusable, which costs a full read of the log. */
static uint64_t store__load_keys(const struct store *s, struct store_topic *t)
{
    char path[PATH_MAX + 320];
    struct stat st;
    uint8_t *data = NULL;
    uint64_t next = log_start_offset(t->log);
    bool usable = false;
    int fd;
    store__keys_path(s, t, path, sizeof path);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT || log_next_offset(t->log) > log_start_offset(t->log)) {
            TLOG_WARN("store", "topic %s: no key index checkpoint; rebuilding it from the log",
                      t->name);
        }
        return next;
    }
    if (fstat(fd, &st) == 0 && st.st_size >= 32 && (data = malloc((size_t)st.st_size)) != NULL &&
        pread(fd, data, (size_t)st.st_size, 0) == st.st_size) {
        size_t n = (size_t)st.st_size;
        struct rd r;
        rd_init(&r, data, n - 8);
        const uint8_t *magic = rd_bytes(&r, 4);
        uint32_t version = rd_u32(&r);
        uint64_t at = rd_u64(&r);
        uint64_t counted = version >= 2 ? rd_u64(&r) : 0;
        char why[ERR_MSG_SIZE];
        if (codec_checksum(data, n - 8) == byte_get_u64(data + n - 8) && magic != NULL &&
            memcmp(magic, STORE__KEYS_MAGIC, 4) == 0 &&
            (version == 1 || version == STORE__KEYS_VERSION) && at >= t->created_index &&
            keys_decode(&t->keys, &r) == 0 && r.left == 0 &&
            (version == 2 || store__offset_after_index(t, at, &counted, why) == 0)) {
            /* (older than the topic: written for a deleted topic of the
             * same name by a snapshot still running; not ours) */
            next = counted;
            usable = true;
        } else {
            keys_free(&t->keys);
            keys_init(&t->keys);
        }
    }
    if (!usable) {
        TLOG_WARN("store", "topic %s: key index checkpoint unusable; rebuilding it from the log",
                  t->name);
    }
    free(data);
    close(fd);
    return next;
}

/* Checkpoint files (catalog, keys.ckpt) are written by the loop and by
 * the snapshot thread (store_snapshot_build). Each writer has its own
 * temporary name, and the rename is guarded: under s->file_lock, a file
 * is replaced only by one of an equal or newer index, so an older
 * checkpoint never lands over a newer one. */
struct store__guard {
    pthread_mutex_t *lock;
    uint64_t *written; /* newest index renamed into place so far */
    uint64_t index;    /* this file's */
    bool renamed;      /* out: this file was put in place (not skipped) */
};

static int store__write_file_as(const char *dir, const char *name, const char *tmp_suffix,
                                const struct buf *b, struct store__guard *g, char *errmsg);


/* Write @k, which counts the log below @next_offset, as the key checkpoint
 * at @index into @dir ("tmp" or "snap.tmp" as the temporary name: the
 * loop's and the snapshot thread's). *renamed (if not NULL) tells whether
 * it was put in place or skipped for a newer one. */
static int store__write_keys_file(struct store *s, const char *dir, const struct keys *k,
                                  uint64_t index, uint64_t next_offset, const char *tmp_suffix,
                                  bool *renamed, char *errmsg)
{
    struct buf b;
    int rv;
    buf_init(&b);
    buf_put(&b, STORE__KEYS_MAGIC, 4);
    buf_put_u32(&b, STORE__KEYS_VERSION);
    buf_put_u64(&b, index);
    buf_put_u64(&b, next_offset);
    keys_encode(k, &b);
    if (buf_ok(&b)) {
        buf_put_u64(&b, codec_checksum(b.data, b.len));
    }
    if (!buf_ok(&b)) {
        buf_free(&b);
        return TALLY_NOMEM;
    }
    struct store__guard g = {&s->file_lock, &s->keys_written, index, false};
    rv = store__write_file_as(dir, "keys.ckpt", tmp_suffix, &b, &g, errmsg);
    buf_free(&b);
    if (renamed != NULL) {
        *renamed = g.renamed;
    }
    return rv;
}

static int store__write_keys(struct store *s, struct store_topic *t, uint64_t index,
                             char *errmsg)
{
    char dir[PATH_MAX + 300];
    store__topic_dir(s, t->name, dir, sizeof dir);
    return store__write_keys_file(s, dir, &t->keys, index, log_next_offset(t->log), "tmp",
                                  NULL, errmsg);
}

/* Open the log of @t and bring its tables forward from their checkpoints:
 * the producer table (from the catalog, counting the log below @prod_from)
 * and the key index (keys.ckpt). A log opened at @start_offset > 0 is new
 * (a snapshot's or a backup's topic): its tables come from elsewhere.
 *
 * A checkpoint that counts records the log no longer holds (a damaged tail
 * cut at open, after the checkpoint was written) would make this node
 * refuse or skip those records when Raft replays them, and end with fewer
 * records than the others. Such a table is rebuilt from the whole log, and
 * the topic is marked damaged: store_restore takes it back to the Raft
 * snapshot, which is exact even where the log no longer starts at 0. */
static int store__open_topic(struct store *s, struct store_topic *t, uint64_t start_offset,
                             uint64_t prod_from, char *errmsg)
{
    char path[PATH_MAX + 300];
    struct log_config lc;
    int rv;
    store__topic_dir(s, t->name, path, sizeof path);
    store__log_config(s, &t->config, &lc);
    rv = log_open(path, &lc, start_offset, &t->log, errmsg);
    if (rv == 0) {
        rv = store__load_tail(t, errmsg);
    }
    if (rv == 0) {
        uint64_t next = log_next_offset(t->log), start = log_start_offset(t->log);
        uint64_t keys_from = start_offset == 0 ? store__load_keys(s, t) : next;
        if (start_offset != 0) {
            prod_from = next;
        }
        bool prod_bad = prod_from > next || prod_from < start;
        bool keys_bad = keys_from > next || keys_from < start;
        if (prod_bad || keys_bad) {
            const char *what = prod_bad && keys_bad ? "producer table and key index"
                               : prod_bad           ? "producer table"
                                                    : "key index";
            uint64_t at = prod_bad ? prod_from : keys_from;
            if (at > next) {
                TLOG_ERROR("store", "topic %s: the log ends at offset %llu but its checkpoints "
                           "count records up to %llu: the log lost records (a damaged segment "
                           "cut at open); rebuilding the %s from the log", t->name,
                           (unsigned long long)next, (unsigned long long)at, what);
            } else {
                TLOG_ERROR("store", "topic %s: the log starts at offset %llu but its "
                           "checkpoints count records only up to %llu: records they did not "
                           "count are gone; rebuilding the %s from the log", t->name,
                           (unsigned long long)start, (unsigned long long)at, what);
            }
            t->damaged = true;
        }
        if (prod_bad) {
            t->n_producers = 0;
            prod_from = start;
        }
        if (keys_bad) {
            keys_free(&t->keys);
            keys_init(&t->keys);
            keys_from = start;
        }
        rv = store__rebuild(t, prod_from, keys_from, errmsg);
        /* Retention and compaction may touch what the checkpoints count. */
        t->compact_limit = t->damaged ? start : prod_from < keys_from ? prod_from : keys_from;
    }
    if (rv != 0) {
        err_wrap(errmsg, "topic %s", t->name);
    }
    return rv;
}

/* The staging directory of a backfill: DATA/topics/NAME/backfill. */
static void store__backfill_dir(const struct store *s, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/topics/%s/backfill", s->dir, name);
}

/* At open: a backfill that moved some or all of its segments into the log
 * before a crash shrank the missing range, whatever the catalog says; a
 * staging directory left behind is removed (the backfill starts over). */
/* Remove a topic's staging directory (what is left of a backfill). */
static void store__backfill_drop_dir(struct store *s, const char *topic)
{
    char dir[PATH_MAX + 300], why[ERR_MSG_SIZE];
    store__backfill_dir(s, topic, dir, sizeof dir);
    if (store__remove_tree(dir, why) != 0) {
        TLOG_WARN("store", "topic %s: cannot remove %s: %s", topic, dir, why);
    }
}

static void store__backfill_reconcile(struct store *s, struct store_topic *t)
{
    uint64_t start = log_start_offset(t->log);
    store__backfill_drop_dir(s, t->name);
    if (t->missing_to > t->missing_from && start < t->missing_to) {
        if (start <= t->missing_from) {
            t->missing_from = t->missing_to = 0;
        } else {
            t->missing_to = start;
        }
        TLOG_INFO("store", "topic %s: backfilled history found in the log; missing now %llu..%llu",
                  t->name, (unsigned long long)t->missing_from, (unsigned long long)t->missing_to);
    }
}

/* The catalog up to its keys flag: everything but the key indexes. */
static void store__encode_head(const struct store *s, uint64_t index, struct buf *b)
{
    uint32_t n = 0;
    for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
        n++;
    }
    buf_put(b, STORE__MAGIC, 4);
    buf_put_u32(b, STORE__VERSION);
    buf_put_u64(b, index);
    buf_put_u32(b, n);
    for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
        buf_put_str(b, t->name);
        buf_put_u8(b, t->config.policy);
        buf_put_i64(b, t->config.retention_ms);
        buf_put_i64(b, t->config.retention_bytes);
        buf_put_i64(b, t->config.segment_bytes);
        buf_put_u64(b, t->created_index);
        buf_put_u64(b, t->log != NULL ? store_topic_start(t) : 0);
        buf_put_u64(b, t->log != NULL ? log_next_offset(t->log) : 0);
        buf_put_u64(b, t->missing_from);
        buf_put_u64(b, t->missing_to);
        buf_put_u32(b, t->n_producers);
        for (unsigned i = 0; i < t->n_producers; i++) {
            const struct store_producer *p = &t->producers[i];
            buf_put_u64(b, p->id);
            buf_put_u64(b, p->seq);
            buf_put_u64(b, p->base_offset);
            buf_put_u32(b, p->count);
            buf_put_u64(b, p->index);
        }
        buf_put_u64(b, t->trim_offset);
        buf_put_u64(b, t->tombstone_limit);
    }
    buf_put_u32(b, s->n_members);
    for (unsigned i = 0; i < s->n_members; i++) {
        buf_put_u64(b, s->members[i].id);
        buf_put_str(b, s->members[i].client_addr);
        buf_put_str(b, s->members[i].raft_addr);
    }
    buf_put_u32(b, s->n_groups);
    for (unsigned i = 0; i < s->n_groups; i++) {
        buf_put_str(b, s->groups[i].group);
        buf_put_str(b, s->groups[i].topic);
        buf_put_u64(b, s->groups[i].offset);
    }
}

/* The version 2 fields, after the key indexes. */
static void store__encode_tail(const struct store *s, struct buf *b)
{
    buf_put_u64(b, s->cluster_id);
    buf_put_u32(b, s->n_dirs);
    for (unsigned i = 0; i < s->n_dirs; i++) {
        buf_put_u64(b, s->dirs[i].id);
        buf_put_u64(b, s->dirs[i].directory_id);
    }
    users_encode(&s->users, b); /* version 3 */
    acls_encode(&s->acls, b);
}

static void store__encode_catalog(const struct store *s, uint64_t index, bool with_keys,
                                  struct buf *b)
{
    store__encode_head(s, index, b);
    buf_put_u8(b, with_keys);
    if (with_keys) {
        for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
            keys_encode(&t->keys, b);
        }
    }
    store__encode_tail(s, b);
    if (buf_ok(b)) {
        buf_put_u64(b, codec_checksum(b->data, b->len));
    }
}

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

static void store__catalog_free(struct store__catalog *c)
{
    users_free(&c->users);
    acls_free(&c->acls);
    free(c->groups);
    c->groups = NULL;
    while (c->topics != NULL) {
        struct store_topic *t = c->topics;
        c->topics = t->next;
        store__topic_free(t);
    }
    free(c->start_offsets);
    free(c->next_offsets);
}

static int store__decode_catalog(const void *p, size_t n, struct store__catalog *c,
                                 char *errmsg)
{
    struct rd r;
    struct store_topic **tail = &c->topics;
    memset(c, 0, sizeof *c);
    if (n < 4 + 4 + 8 + 4 + 4 + 8) { /* magic, version, index, 2 counts, checksum */
        return ERR_CORRUPT(errmsg, "catalog of %zu bytes is too short", n);
    }
    if (codec_checksum(p, n - 8) != byte_get_u64((const uint8_t *)p + n - 8)) {
        return ERR_CORRUPT(errmsg, "catalog checksum mismatch");
    }
    rd_init(&r, p, n - 8);
    const uint8_t *magic = rd_bytes(&r, 4);
    if (memcmp(magic, STORE__MAGIC, 4) != 0) {
        return ERR_CORRUPT(errmsg, "bad catalog magic");
    }
    uint32_t version = rd_u32(&r);
    if (version < STORE__VERSION_MIN || version > STORE__VERSION) {
        err_printf(errmsg, "catalog format version %u unknown (this build reads %u to %u)",
                   version, STORE__VERSION_MIN, STORE__VERSION);
        return TALLY_VERSION;
    }
    c->index = rd_u64(&r);
    c->n_topics = rd_u32(&r);
    if (c->n_topics > r.left) {
        return ERR_CORRUPT(errmsg, "catalog lists %u topics in %zu bytes", c->n_topics, r.left);
    }
    c->start_offsets = calloc(c->n_topics + 1, sizeof(uint64_t));
    c->next_offsets = calloc(c->n_topics + 1, sizeof(uint64_t));
    if (c->start_offsets == NULL || c->next_offsets == NULL) {
        store__catalog_free(c);
        return TALLY_NOMEM;
    }
    for (uint32_t i = 0; i < c->n_topics && rd_ok(&r); i++) {
        struct store_topic *t = calloc(1, sizeof *t);
        if (t == NULL) {
            store__catalog_free(c);
            return TALLY_NOMEM;
        }
        *tail = t;
        tail = &t->next;
        rd_str(&r, t->name, sizeof t->name);
        t->config.policy = rd_u8(&r);
        t->config.retention_ms = rd_i64(&r);
        t->config.retention_bytes = rd_i64(&r);
        t->config.segment_bytes = rd_i64(&r);
        t->created_index = rd_u64(&r);
        c->start_offsets[i] = rd_u64(&r);
        c->next_offsets[i] = rd_u64(&r);
        t->missing_from = rd_u64(&r);
        t->missing_to = rd_u64(&r);
        uint32_t np = rd_u32(&r);
        if (rd_ok(&r) && (!store_topic_name_valid(t->name) || np > STORE_MAX_PRODUCERS ||
                          np > r.left / 36)) {
            r.bad = true;
        }
        if (rd_ok(&r) && np > 0) {
            t->producers = calloc(np, sizeof *t->producers);
            if (t->producers == NULL) {
                store__catalog_free(c);
                return TALLY_NOMEM;
            }
            t->cap_producers = np;
            for (uint32_t k = 0; k < np; k++) {
                struct store_producer *pr = &t->producers[k];
                pr->id = rd_u64(&r);
                pr->seq = rd_u64(&r);
                pr->base_offset = rd_u64(&r);
                pr->count = rd_u32(&r);
                pr->index = rd_u64(&r);
            }
            t->n_producers = np;
        }
        if (version >= 2) {
            t->trim_offset = rd_u64(&r);
            t->tombstone_limit = rd_u64(&r);
        }
    }
    c->n_members = rd_u32(&r);
    if (c->n_members > STORE_MAX_MEMBERS) {
        r.bad = true;
    }
    for (unsigned i = 0; i < c->n_members && rd_ok(&r); i++) {
        c->members[i].id = rd_u64(&r);
        rd_str(&r, c->members[i].client_addr, sizeof c->members[i].client_addr);
        rd_str(&r, c->members[i].raft_addr, sizeof c->members[i].raft_addr);
    }
    c->n_groups = rd_u32(&r);
    if (rd_ok(&r) && c->n_groups > r.left / 12) {
        r.bad = true;
    }
    if (rd_ok(&r) && c->n_groups > 0) {
        c->groups = calloc(c->n_groups, sizeof *c->groups);
        if (c->groups == NULL) {
            store__catalog_free(c);
            return TALLY_NOMEM;
        }
    }
    for (unsigned i = 0; i < c->n_groups && rd_ok(&r); i++) {
        rd_str(&r, c->groups[i].group, sizeof c->groups[i].group);
        rd_str(&r, c->groups[i].topic, sizeof c->groups[i].topic);
        c->groups[i].offset = rd_u64(&r);
    }
    c->has_keys = rd_u8(&r) != 0;
    for (struct store_topic *t = c->topics; t != NULL && c->has_keys && rd_ok(&r); t = t->next) {
        if (keys_decode(&t->keys, &r) == TALLY_NOMEM) {
            store__catalog_free(c);
            return TALLY_NOMEM;
        }
    }
    if (version >= 2 && rd_ok(&r)) {
        c->cluster_id = rd_u64(&r);
        c->n_dirs = rd_u32(&r);
        if (c->n_dirs > STORE_MAX_MEMBERS) {
            r.bad = true;
        }
        for (unsigned i = 0; i < c->n_dirs && rd_ok(&r); i++) {
            c->dirs[i].id = rd_u64(&r);
            c->dirs[i].directory_id = rd_u64(&r);
        }
    }
    if (version >= 3 && rd_ok(&r) &&
        (users_decode(&r, &c->users) == TALLY_NOMEM ||
         (rd_ok(&r) && acls_decode(&r, &c->acls) == TALLY_NOMEM))) {
        store__catalog_free(c);
        return TALLY_NOMEM;
    }
    if (!rd_ok(&r) || r.left != 0) {
        store__catalog_free(c);
        return ERR_CORRUPT(errmsg, "catalog malformed");
    }
    return 0;
}

/* Replace DIR/NAME atomically with @b: write NAME.tmp, fsync, rename,
 * fsync the directory. */
static int store__write_file_as(const char *dir, const char *name, const char *tmp_suffix,
                                const struct buf *b, struct store__guard *g, char *errmsg)
{
    char path[PATH_MAX + 300], tmp[PATH_MAX + 320];
    bool skip;
    int rv;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.%s", path, tmp_suffix);
    if ((rv = file_write_synced(tmp, b->data, b->len, errmsg)) != 0) {
        return rv;
    }
    pthread_mutex_lock(g->lock);
    skip = g->index < *g->written;
    if (!skip && rename(tmp, path) != 0) {
        rv = err_os(errmsg, errno, "rename %s", tmp);
    } else if (!skip) {
        *g->written = g->index;
        g->renamed = true;
    }
    pthread_mutex_unlock(g->lock);
    if (skip) {
        unlink(tmp); /* a newer one is in place */
        return 0;
    }
    return rv != 0 ? rv : file_sync_dir(dir, errmsg);
}


static int store__write_catalog(struct store *s, char *errmsg)
{
    struct buf b;
    int rv;
    /* The catalog checkpoints the producer tables and group positions at
     * its index, so the logs must hold everything up to that index first. */
    if ((rv = store_sync(s, errmsg)) != 0) {
        return rv;
    }
    buf_init(&b);
    store__encode_catalog(s, s->catalog_index, false, &b);
    struct store__guard g = {&s->file_lock, &s->catalog_written, s->catalog_index, false};
    rv = buf_ok(&b) ? store__write_file_as(s->dir, "catalog", "tmp", &b, &g, errmsg)
                    : TALLY_NOMEM;
    buf_free(&b);
    return rv;
}

/* Remove leftovers of deletes that crashed half-way: "NAME.deleted-INDEX". */
static int store__sweep_deleted(struct store *s, char *errmsg)
{
    char path[PATH_MAX + 16], child[PATH_MAX + 300];
    DIR *d;
    struct dirent *e;
    int rv = 0;
    snprintf(path, sizeof path, "%s/topics", s->dir);
    d = opendir(path);
    if (d == NULL) {
        return err_os(errmsg, errno, "open directory %s", path);
    }
    while (rv == 0 && (e = readdir(d)) != NULL) {
        if (strstr(e->d_name, ".deleted-") != NULL) {
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            rv = store__remove_tree(child, errmsg);
        }
    }
    closedir(d);
    return rv;
}

/* Delete the whole segments of @t below its trim offset (the rest of the
 * records below it are hidden by store_topic_start and fetch), and drop
 * from the history it lacks what is below it. */
static int store__apply_trim(struct store_topic *t, char *errmsg)
{
    unsigned deleted = 0;
    int rv;
    if (t->missing_to > t->missing_from && t->trim_offset > t->missing_from) {
        if (t->trim_offset >= t->missing_to) {
            t->missing_from = t->missing_to = 0;
        } else {
            t->missing_from = t->trim_offset;
        }
    }
    rv = log_trim(t->log, t->trim_offset, &deleted, errmsg);
    if (rv != 0) {
        err_wrap(errmsg, "topic %s", t->name);
        return rv;
    }
    if (deleted > 0) {
        TLOG_INFO("store", "retention removed %u segment(s) of %s below offset %llu", deleted,
                  t->name, (unsigned long long)t->trim_offset);
    }
    return 0;
}

/* Highest record timestamp in any topic's log. */
static int64_t store__scan_max_ts(const struct store *s)
{
    int64_t ts = INT64_MIN;
    for (const struct store_topic *t = s->topics; t != NULL; t = t->next) {
        if (t->log != NULL) {
            int64_t x = log_max_timestamp(t->log);
            ts = x > ts ? x : ts;
        }
    }
    return ts;
}

int store_open(const char *dir, const struct log_config *defaults, struct store **out,
               char *errmsg)
{
    struct store *s = calloc(1, sizeof *s);
    char path[PATH_MAX + 32];
    int fd, rv;
    if (s == NULL) {
        return TALLY_NOMEM;
    }
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    s->defaults = *defaults;
    pthread_mutex_init(&s->file_lock, NULL);
    buf_init(&s->scratch);
    s->max_ts = INT64_MIN;
    snprintf(path, sizeof path, "%s/topics", dir);
    if ((rv = store__mkdir(dir, errmsg)) != 0 || (rv = store__mkdir(path, errmsg)) != 0 ||
        (rv = store__sweep_deleted(s, errmsg)) != 0) {
        free(s);
        return rv;
    }
    snprintf(path, sizeof path, "%s/catalog", dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        struct stat st;
        struct store__catalog c;
        uint8_t *data = NULL;
        rv = fstat(fd, &st) != 0 ? err_os(errmsg, errno, "stat %s", path) : 0;
        if (rv == 0 && (data = malloc((size_t)st.st_size + 1)) == NULL) {
            rv = TALLY_NOMEM;
        }
        if (rv == 0 && pread(fd, data, (size_t)st.st_size, 0) != st.st_size) {
            rv = err_os(errmsg, errno, "read %s", path);
        }
        close(fd);
        if (rv == 0) {
            rv = store__decode_catalog(data, (size_t)st.st_size, &c, errmsg);
        }
        free(data);
        if (rv != 0) {
            err_wrap(errmsg, "load catalog %s", path);
            free(s);
            return rv;
        }
        s->catalog_index = c.index;
        s->catalog_written = c.index;
        s->applied_index = c.index;
        s->topics = c.topics;
        c.topics = NULL;
        memcpy(s->members, c.members, sizeof c.members);
        s->n_members = c.n_members;
        s->cluster_id = c.cluster_id;
        memcpy(s->dirs, c.dirs, sizeof c.dirs);
        s->n_dirs = c.n_dirs;
        s->groups = c.groups;
        s->n_groups = s->cap_groups = c.n_groups;
        c.groups = NULL;
        users_move(&s->users, &c.users);
        acls_move(&s->acls, &c.acls);
        uint32_t i = 0;
        for (struct store_topic *t = s->topics; t != NULL; t = t->next, i++) {
            if ((rv = store__open_topic(s, t, 0, c.next_offsets[i], errmsg)) != 0) {
                store__catalog_free(&c);
                store_close(s);
                return rv;
            }
            store__backfill_reconcile(s, t);
            if ((rv = store__apply_trim(t, errmsg)) != 0) {
                store__catalog_free(&c);
                store_close(s);
                return rv;
            }
            /* (applied_index stays the catalog's: group commits after it
             * are replayed; batches the logs hold after it are found by
             * offset, and skipped on replay by their Raft index) */
        }
        store__catalog_free(&c);
        s->max_ts = store__scan_max_ts(s);
    } else if (errno != ENOENT) {
        rv = err_os(errmsg, errno, "open %s", path);
        free(s);
        return rv;
    }
    *out = s;
    return 0;
}

void store_close(struct store *s)
{
    while (s->topics != NULL) {
        struct store_topic *t = s->topics;
        s->topics = t->next;
        store__topic_free(t);
    }
    free(s->groups);
    users_free(&s->users);
    acls_free(&s->acls);
    buf_free(&s->scratch);
    pthread_mutex_destroy(&s->file_lock);
    free(s);
}

const struct users *store_users(struct store *s)
{
    return &s->users;
}

const struct acls *store_acls(struct store *s)
{
    return &s->acls;
}


void store_set_append_hook(struct store *s, store_append_hook fn, void *arg)
{
    s->hook = fn;
    s->hook_arg = arg;
}

int store_seed_members(struct store *s, const struct store_member *m, unsigned n, char *errmsg)
{
    if (s->n_members > 0) {
        return 0;
    }
    if (n > STORE_MAX_MEMBERS) {
        err_printf(errmsg, "too many members (%u, at most %d)", n, STORE_MAX_MEMBERS);
        return TALLY_INVAL;
    }
    memcpy(s->members, m, n * sizeof *m);
    s->n_members = n;
    return store__write_catalog(s, errmsg);
}

struct store_topic *store_topic_find(struct store *s, const char *name)
{
    for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
        if (strcmp(t->name, name) == 0) {
            return t;
        }
    }
    return NULL;
}

struct store_topic *store_topics(struct store *s)
{
    return s->topics;
}

unsigned store_members(struct store *s, const struct store_member **members)
{
    *members = s->members;
    return s->n_members;
}

const struct store_member *store_member_find(struct store *s, uint64_t id)
{
    for (unsigned i = 0; i < s->n_members; i++) {
        if (s->members[i].id == id) {
            return &s->members[i];
        }
    }
    return NULL;
}

static void store__result(struct store_item_result *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void store__result(struct store_item_result *r, int code, const char *fmt, ...)
{
    va_list ap;
    r->code = code;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
}

static int store__create_topic(struct store *s, uint64_t index, struct rd *body,
                               struct store_item_result *res, char *errmsg)
{
    struct store_topic *t = calloc(1, sizeof *t);
    int rv;
    if (t == NULL) {
        return TALLY_NOMEM;
    }
    rd_str(body, t->name, sizeof t->name);
    t->config.policy = rd_u8(body);
    t->config.retention_ms = rd_i64(body);
    t->config.retention_bytes = rd_i64(body);
    t->config.segment_bytes = rd_i64(body);
    t->created_index = index;
    if (!rd_ok(body) || !store_topic_name_valid(t->name) || t->config.policy > 3) {
        store__result(res, TALLY_INVAL, "invalid topic name or settings");
        free(t);
        return 0;
    }
    if (store_topic_find(s, t->name) != NULL) {
        store__result(res, TALLY_EXISTS, "topic %s already exists", t->name);
        free(t);
        return 0;
    }
    /* Catalog first: a crash after it reopens (creates) the empty log. */
    struct store_topic **tail = &s->topics;
    while (*tail != NULL) {
        tail = &(*tail)->next;
    }
    *tail = t;
    s->catalog_index = index;
    if ((rv = store__write_catalog(s, errmsg)) != 0 ||
        (rv = store__open_topic(s, t, 0, 0, errmsg)) != 0) {
        return rv;
    }
    TLOG_INFO("store", "created topic %s at index %llu", t->name, (unsigned long long)index);
    return 0;
}

/* Drop the positions of @group (every group if NULL) on @topic (every
 * topic if NULL); returns how many. Order of the others is kept. */
static unsigned store__groups_drop(struct store *s, const char *group, const char *topic)
{
    unsigned i, j = 0;
    for (i = 0; i < s->n_groups; i++) {
        if ((group == NULL || strcmp(s->groups[i].group, group) == 0) &&
            (topic == NULL || strcmp(s->groups[i].topic, topic) == 0)) {
            continue;
        }
        s->groups[j++] = s->groups[i];
    }
    unsigned dropped = s->n_groups - j;
    s->n_groups = j;
    return dropped;
}

static int store__unlink_topic(struct store *s, struct store_topic *t, uint64_t index,
                               char *errmsg)
{
    char path[PATH_MAX + 300], trash[PATH_MAX + 340];
    struct store_topic **pp = &s->topics;
    while (*pp != t) {
        pp = &(*pp)->next;
    }
    *pp = t->next;
    store__groups_drop(s, NULL, t->name);
    s->catalog_index = index;
    int rv = store__write_catalog(s, errmsg);
    if (rv != 0) {
        return rv;
    }
    store__topic_dir(s, t->name, path, sizeof path);
    snprintf(trash, sizeof trash, "%s.deleted-%llu", path, (unsigned long long)index);
    store__topic_free(t);
    if (rename(path, trash) == 0) {
        char why[ERR_MSG_SIZE];
        /* The catalog no longer names the topic: a directory that cannot be
         * removed now (a compaction worker still writing into it) is swept
         * later, and must not stop the node. */
        if (store__remove_tree(trash, why) != 0) {
            TLOG_WARN("store", "%s deleted; its files are removed later: %s", path, why);
        }
    } else if (errno != ENOENT) {
        rv = err_os(errmsg, errno, "rename %s", path);
    }
    return rv;
}

static int store__delete_topic(struct store *s, uint64_t index, struct rd *body,
                               struct store_item_result *res, char *errmsg)
{
    char name[STORE_NAME_MAX];
    struct store_topic *t;
    rd_str(body, name, sizeof name);
    t = rd_ok(body) ? store_topic_find(s, name) : NULL;
    if (t == NULL) {
        store__result(res, TALLY_NOTFOUND, "topic %s not found", name);
        return 0;
    }
    TLOG_INFO("store", "deleting topic %s at index %llu", name, (unsigned long long)index);
    return store__unlink_topic(s, t, index, errmsg);
}

/* TOPIC_TRIM: the leader's retention decision, applied at the same point of
 * the log on every node. */
static int store__trim_topic(struct store *s, uint64_t index, struct rd *body,
                             struct store_item_result *res, char *errmsg)
{
    char name[STORE_NAME_MAX];
    struct store_topic *t;
    uint64_t created, start, tombs;
    int rv;
    rd_str(body, name, sizeof name);
    created = rd_u64(body);
    start = rd_u64(body);
    tombs = rd_u64(body);
    if (!rd_ok(body)) {
        return ERR_CORRUPT(errmsg, "trim entry %llu malformed", (unsigned long long)index);
    }
    t = store_topic_find(s, name);
    if (t == NULL || t->created_index != created || t->log == NULL) {
        store__result(res, TALLY_NOTFOUND, "topic %s not found", name);
        return 0;
    }
    /* The same on every node: the next offset at this index is. */
    if (start > log_next_offset(t->log)) {
        start = log_next_offset(t->log);
    }
    if (start <= t->trim_offset && tombs <= t->tombstone_limit) {
        return 0;
    }
    /* The key index checkpoint must count every record deleted: a restart
     * could not count records that are gone (store__open_topic). */
    if (start > t->compact_limit && (rv = store_checkpoint(s, errmsg)) != 0) {
        err_wrap(errmsg, "checkpoint before trimming %s", name);
        return rv;
    }
    if (start > t->trim_offset) {
        TLOG_INFO("store", "topic %s: start offset %llu at index %llu (retention)", name,
                  (unsigned long long)start, (unsigned long long)index);
        t->trim_offset = start;
    }
    if (tombs > t->tombstone_limit) {
        t->tombstone_limit = tombs;
    }
    /* Catalog first: a crash before the segments are gone deletes them at
     * the next open. */
    s->catalog_index = index;
    if ((rv = store__write_catalog(s, errmsg)) != 0) {
        return rv;
    }
    if (s->trim_held) {
        /* The start offset moved like on every node (reads below it are
         * refused), but a backup copies this node's files from its cut:
         * the segments stay until it ends (store_hold_trim). */
        TLOG_INFO("store", "retention waits: a backup is copying this node's logs; the segments "
                           "of %s below offset %llu are deleted when it ends",
                  name, (unsigned long long)t->trim_offset);
        return 0;
    }
    return store__apply_trim(t, errmsg);
}

int store_hold_trim(struct store *s, bool hold, char *errmsg)
{
    int rv = 0;
    bool was = s->trim_held;
    s->trim_held = hold;
    if (hold || !was) {
        return 0;
    }
    /* Released: delete what TOPIC_TRIM entries applied meanwhile cut off
     * (idempotent: nothing for topics whose segments are all in use). */
    for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
        if (t->log == NULL || t->trim_offset == 0) {
            continue;
        }
        if ((rv = store__apply_trim(t, errmsg)) != 0) {
            return rv;
        }
    }
    return 0;
}

bool store_trim_held(const struct store *s)
{
    return s->trim_held;
}

static int store__member_change(struct store *s, uint64_t index, uint8_t type, struct rd *body,
                                struct store_item_result *res, char *errmsg)
{
    struct store_member m;
    unsigned i;
    memset(&m, 0, sizeof m);
    m.id = rd_u64(body);
    if (type == CMD_MEMBER_SET) {
        rd_str(body, m.client_addr, sizeof m.client_addr);
        rd_str(body, m.raft_addr, sizeof m.raft_addr);
    }
    if (!rd_ok(body) || m.id == 0) {
        store__result(res, TALLY_INVAL, "invalid member");
        return 0;
    }
    for (i = 0; i < s->n_members && s->members[i].id != m.id; i++) {
    }
    if (type == CMD_MEMBER_SET) {
        if (i == s->n_members) {
            if (s->n_members == STORE_MAX_MEMBERS) {
                store__result(res, TALLY_INVAL, "too many members");
                return 0;
            }
            s->n_members++;
        }
        s->members[i] = m;
    } else if (i < s->n_members) {
        s->members[i] = s->members[--s->n_members];
    }
    s->catalog_index = index;
    return store__write_catalog(s, errmsg);
}

/* CLUSTER_ID: the first one applied stays. */
static int store__adopt_topic(struct store *s, const struct store_topic *ct, uint64_t start,
                              uint64_t next, struct store_topic **out, char *errmsg);

/* The restored state described by the first leader of a restored cluster
 * (CMD_CLUSTER_ID): a node that lacks a restored topic creates it, its
 * history to be backfilled from a peer, with the described producers and
 * key versions; a node that holds it checks that it is the same. Group
 * positions it lacks are taken. */
static int store__adopt_restored(struct store *s, uint64_t index, const uint8_t *p, uint32_t n,
                                 char *errmsg)
{
    struct store__catalog c;
    uint32_t i = 0;
    int rv = store__decode_catalog(p, n, &c, errmsg);
    if (rv != 0) {
        err_wrap(errmsg, "the restored state described at index %llu",
                 (unsigned long long)index);
        return rv;
    }
    for (struct store_topic *ct = c.topics; ct != NULL && rv == 0; ct = ct->next, i++) {
        struct store_topic *t = store_topic_find(s, ct->name);
        if (ct->created_index != 0) {
            continue;
        }
        if (t != NULL) {
            uint64_t next = log_next_offset(t->log);
            if (t->created_index != 0 || next != c.next_offsets[i]) {
                snprintf(s->divergence, sizeof s->divergence,
                         "topic %s differs from the cluster's restored state (index %llu): "
                         "this node has it %s%llu, the leader's description ends at %llu; "
                         "this node's catalog is not the cluster's: rebuild it (tally member "
                         "replace)", ct->name, (unsigned long long)index,
                         t->created_index != 0 ? "created after the restore, ending at "
                                               : "ending at ",
                         (unsigned long long)next, (unsigned long long)c.next_offsets[i]);
                TLOG_ERROR("store", "%s", s->divergence);
            }
            continue;
        }
        rv = store__adopt_topic(s, ct, c.start_offsets[i], c.next_offsets[i], &t, errmsg);
        if (t == NULL) {
            break;
        }
        store__take_tables(t, ct);
        t->floor_index = index;
        TLOG_WARN("store", "topic %s: restored before this node joined; its history %llu..%llu "
                  "comes from a peer (backfill)", t->name, (unsigned long long)t->missing_from,
                  (unsigned long long)t->missing_to);
    }
    for (unsigned g = 0; g < c.n_groups && rv == 0; g++) {
        uint64_t have;
        if (!store_group_offset(s, c.groups[g].group, c.groups[g].topic, &have)) {
            rv = store_import_group(s, c.groups[g].group, c.groups[g].topic, c.groups[g].offset,
                                    errmsg);
        }
    }
    store__catalog_free(&c);
    return rv;
}

int store_describe_restored(struct store *s, struct buf *out)
{
    bool any = false;
    for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
        any = any || t->created_index == 0;
    }
    out->len = 0;
    if (any) {
        store__encode_catalog(s, s->applied_index, true, out);
    }
    return buf_ok(out) ? 0 : TALLY_NOMEM;
}

/* Order-independent: a sum of one hash per topic and per group position. */
static uint64_t store__digest_now(struct store *s)
{
    uint8_t b[2 * STORE_NAME_MAX + 64];
    uint64_t sum = 0;
    for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
        size_t n = strlen(t->name) + 1;
        uint64_t v[7] = {t->created_index, t->config.policy, (uint64_t)t->config.retention_ms,
                         (uint64_t)t->config.retention_bytes, (uint64_t)t->config.segment_bytes,
                         t->trim_offset, t->log != NULL ? log_next_offset(t->log) : 0};
        memcpy(b, t->name, n);
        for (unsigned i = 0; i < 7; i++) {
            for (unsigned k = 0; k < 8; k++) {
                b[n++] = (uint8_t)(v[i] >> (8 * k));
            }
        }
        sum += codec_checksum(b, n);
    }
    for (unsigned g = 0; g < s->n_groups; g++) {
        const struct store__group *p = &s->groups[g];
        size_t n = (size_t)snprintf((char *)b, sizeof b, "G%s%c%s%c", p->group, 0, p->topic, 0);
        for (unsigned k = 0; k < 8 && n < sizeof b; k++) {
            b[n++] = (uint8_t)(p->offset >> (8 * k));
        }
        sum += codec_checksum(b, n);
    }
    return sum;
}

/* After applying @index live: remember the digest. Not while replaying what
 * the logs already hold past @index, nor at or below the catalog
 * checkpoint (the state there is a later one). */
static void store__record_digest(struct store *s, uint64_t index)
{
    if (index <= s->catalog_index || index % STORE_DIGEST_EVERY != 0) {
        return;
    }
    for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
        if (t->tail_index > index || t->floor_index > index) {
            return;
        }
    }
    unsigned slot = (unsigned)(index / STORE_DIGEST_EVERY % STORE_DIGESTS);
    s->digests[slot].index = index;
    s->digests[slot].digest = store__digest_now(s);
}

bool store_catalog_digest(struct store *s, uint64_t index, uint64_t *digest)
{
    unsigned slot = (unsigned)(index / STORE_DIGEST_EVERY % STORE_DIGESTS);
    if (index == 0 || s->digests[slot].index != index) {
        return false;
    }
    *digest = s->digests[slot].digest;
    return true;
}

uint64_t store_applied(struct store *s)
{
    return s->applied_index;
}

static int store__catalog_check(struct store *s, uint64_t index, struct rd *body, char *errmsg)
{
    uint64_t at = rd_u64(body), theirs = rd_u64(body), mine;
    if (!rd_ok(body)) {
        return ERR_CORRUPT(errmsg, "catalog check entry %llu malformed",
                           (unsigned long long)index);
    }
    if (!store_catalog_digest(s, at, &mine) || mine == theirs || s->divergence[0] != '\0') {
        return 0;
    }
    snprintf(s->divergence, sizeof s->divergence,
             "catalog differs from the leader's at index %llu (checked at index %llu): this "
             "node's digest %016llx, the leader's %016llx; this node's catalog is not the "
             "cluster's: rebuild it (tally member replace)",
             (unsigned long long)at, (unsigned long long)index, (unsigned long long)mine,
             (unsigned long long)theirs);
    TLOG_ERROR("store", "%s", s->divergence);
    return 0;
}

const char *store_divergence(struct store *s)
{
    return s->divergence[0] != '\0' ? s->divergence : NULL;
}

static int store__cluster_id(struct store *s, uint64_t index, struct rd *body,
                             struct store_item_result *res, char *errmsg)
{
    uint64_t id = rd_u64(body);
    uint32_t n = 0;
    const uint8_t *restored = rd_blob(body, &n);
    int rv;
    if (!rd_ok(body) || id == 0) {
        store__result(res, TALLY_INVAL, "invalid cluster id");
        return 0;
    }
    if (s->cluster_id != 0) {
        return 0;
    }
    s->cluster_id = id;
    TLOG_INFO("store", "cluster id %016llx (index %llu)%s", (unsigned long long)id,
              (unsigned long long)index, n > 0 ? ", with the restored state" : "");
    if (n > 0 && (rv = store__adopt_restored(s, index, restored, n, errmsg)) != 0) {
        return rv;
    }
    s->catalog_index = index;
    return store__write_catalog(s, errmsg);
}

/* MEMBER_DIR: record (or, with 0, forget) a member's data directory. */
static int store__member_dir(struct store *s, uint64_t index, struct rd *body,
                             struct store_item_result *res, char *errmsg)
{
    uint64_t id = rd_u64(body), dir = rd_u64(body);
    unsigned i;
    if (!rd_ok(body) || id == 0) {
        store__result(res, TALLY_INVAL, "invalid member");
        return 0;
    }
    for (i = 0; i < s->n_dirs && s->dirs[i].id != id; i++) {
    }
    if (dir == 0) {
        if (i < s->n_dirs) {
            s->dirs[i] = s->dirs[--s->n_dirs];
        }
        TLOG_INFO("store", "member %llu: its data directory is forgotten (replaced)",
                  (unsigned long long)id);
    } else {
        if (i == s->n_dirs) {
            if (s->n_dirs == STORE_MAX_MEMBERS) {
                store__result(res, TALLY_INVAL, "too many members");
                return 0;
            }
            s->n_dirs++;
        }
        s->dirs[i].id = id;
        s->dirs[i].directory_id = dir;
        TLOG_INFO("store", "member %llu: data directory %016llx recorded",
                  (unsigned long long)id, (unsigned long long)dir);
    }
    s->catalog_index = index;
    return store__write_catalog(s, errmsg);
}

uint64_t store_cluster_id(struct store *s)
{
    return s->cluster_id;
}

uint64_t store_member_dir(struct store *s, uint64_t id)
{
    for (unsigned i = 0; i < s->n_dirs; i++) {
        if (s->dirs[i].id == id) {
            return s->dirs[i].directory_id;
        }
    }
    return 0;
}

/* The conditions of one APPEND item, as they lie in the entry. */
struct store__conds {
    uint64_t expect_offset;
    uint32_t n;
    struct rd rd; /* n x (blob key, u64 version) */
};

/* 0 if every condition holds; else fills @res with CONDITION_FAILED. */
static int store__check_conditions(struct store_topic *t, const struct store__conds *c,
                                   struct store_item_result *res)
{
    struct rd r = c->rd;
    if (c->expect_offset != CMD_NO_EXPECT && c->expect_offset != log_next_offset(t->log)) {
        store__result(res, TALLY_CONDITION_FAILED,
                      "topic %s is at offset %llu, expected %llu", t->name,
                      (unsigned long long)log_next_offset(t->log),
                      (unsigned long long)c->expect_offset);
        res->actual = log_next_offset(t->log);
        return TALLY_CONDITION_FAILED;
    }
    for (uint32_t i = 0; i < c->n; i++) {
        uint32_t klen;
        const uint8_t *key = rd_blob(&r, &klen);
        uint64_t want = rd_u64(&r);
        uint64_t have = keys_version(&t->keys, key, klen);
        if (have != want) {
            char shown[64];
            size_t k = 0;
            for (uint32_t j = 0; j < klen && k + 5 < sizeof shown; j++) {
                k += (size_t)snprintf(shown + k, sizeof shown - k,
                                      key[j] >= 0x20 && key[j] < 0x7f ? "%c" : "\\x%02x",
                                      key[j]);
            }
            shown[k] = '\0';
            store__result(res, TALLY_CONDITION_FAILED,
                          "key %s of topic %s is at version %llu, expected %llu", shown,
                          t->name, (unsigned long long)have, (unsigned long long)want);
            res->actual = have;
            return TALLY_CONDITION_FAILED;
        }
    }
    return 0;
}

static int store__append_item(struct store *s, uint64_t index, struct store_topic *t,
                              unsigned earlier_items, const uint8_t *batch, uint32_t len,
                              const struct store__conds *conds, struct store_item_result *res,
                              char *errmsg)
{
    struct batch_header h;
    int rv;
    if (index <= t->created_index || index <= t->floor_index || index < t->tail_index ||
        (index == t->tail_index && earlier_items < t->tail_count)) {
        return 0; /* replayed after a restart: already in the local log */
    }
    rv = batch_verify(batch, len, &h, errmsg);
    if (rv != 0) {
        /* The leader verified this batch before proposing it, so a bad one
         * here means local corruption: stop rather than diverge. */
        err_wrap(errmsg, "append to %s at index %llu", t->name, (unsigned long long)index);
        return rv;
    }
    if (h.record_count == 0) {
        /* Gap batches exist only in compacted segments. */
        store__result(res, TALLY_INVAL, "batch for %s holds no records", t->name);
        return 0;
    }
    if (h.producer_id != 0) {
        const struct store_producer *p = store__producer_find(t, h.producer_id);
        if (p != NULL && h.producer_seq == p->seq) {
            /* A retry of the producer's last batch: answer with where the
             * first copy went, write nothing. */
            res->duplicate = true;
            res->base_offset = p->base_offset;
            res->count = p->count;
            return 0;
        }
        if (p != NULL && h.producer_seq != p->seq + 1) {
            store__result(res, TALLY_SEQUENCE,
                          "producer %016llx: sequence %llu does not follow %llu on topic %s",
                          (unsigned long long)h.producer_id, (unsigned long long)h.producer_seq,
                          (unsigned long long)p->seq, t->name);
            return 0;
        }
    }
    if (store__check_conditions(t, conds, res) != 0) {
        return 0; /* nothing written; identical on every node */
    }
    s->scratch.len = 0;
    buf_put(&s->scratch, batch, len);
    if (!buf_ok(&s->scratch)) {
        return TALLY_NOMEM;
    }
    res->base_offset = log_next_offset(t->log);
    res->count = h.last_offset_delta + 1;
    batch_stamp(s->scratch.data, res->base_offset, h.first_timestamp, index);
    s->max_ts = h.max_timestamp > s->max_ts ? h.max_timestamp : s->max_ts;
    rv = log_append(t->log, s->scratch.data, len, h.first_timestamp, errmsg);
    if (rv != 0) {
        err_wrap(errmsg, "append to %s at index %llu", t->name, (unsigned long long)index);
        return rv;
    }
    if (h.producer_id != 0) {
        h.raft_index = index;
        if ((rv = store__producer_record(t, &h, res->base_offset)) != 0) {
            return rv;
        }
    }
    if ((h.flags & BATCH_FLAG_KEYED) &&
        (rv = store__index_keys(t, s->scratch.data, len, errmsg)) != 0) {
        err_wrap(errmsg, "index keys of %s at index %llu", t->name, (unsigned long long)index);
        return rv;
    }
    if (t->tail_index == index) {
        t->tail_count++;
    } else {
        t->tail_index = index;
        t->tail_count = 1;
    }
    if (s->hook != NULL) {
        s->hook(s->hook_arg, t);
    }
    return 0;
}

static int store__append(struct store *s, uint64_t index, struct rd *body,
                         struct store_result *out, char *errmsg)
{
    struct store_topic **seen = calloc(out->n + 1, sizeof *seen);
    int rv = 0;
    if (seen == NULL) {
        return TALLY_NOMEM;
    }
    for (uint32_t i = 0; i < out->n && rv == 0; i++) {
        char topic[STORE_NAME_MAX];
        uint32_t len;
        const uint8_t *batch;
        unsigned earlier = 0;
        struct store__conds conds;
        rd_str(body, topic, sizeof topic);
        batch = rd_blob(body, &len);
        conds.expect_offset = rd_u64(body);
        conds.n = rd_u32(body);
        conds.rd = *body;
        for (uint32_t k = 0; k < conds.n && rd_ok(body); k++) {
            uint32_t klen;
            (void)rd_blob(body, &klen);
            (void)rd_u64(body);
        }
        if (!rd_ok(body)) {
            rv = ERR_CORRUPT(errmsg, "append entry %llu malformed", (unsigned long long)index);
            break;
        }
        struct store_topic *t = store_topic_find(s, topic);
        if (t == NULL) {
            store__result(&out->items[i], TALLY_NOTFOUND, "topic %s not found", topic);
            continue;
        }
        for (uint32_t j = 0; j < i; j++) {
            earlier += seen[j] == t;
        }
        seen[i] = t;
        rv = store__append_item(s, index, t, earlier, batch, len, &conds, &out->items[i], errmsg);
    }
    free(seen);
    return rv;
}

bool store_group_offset(struct store *s, const char *group, const char *topic,
                        uint64_t *offset)
{
    for (unsigned i = 0; i < s->n_groups; i++) {
        if (strcmp(s->groups[i].group, group) == 0 && strcmp(s->groups[i].topic, topic) == 0) {
            *offset = s->groups[i].offset;
            return true;
        }
    }
    *offset = 0;
    return false;
}

/* A group position lives in memory and in the catalog checkpoint; after a
 * restart the commits since the checkpoint are re-applied from Raft's log,
 * like every catalog command. A position belongs to one incarnation of its
 * topic (its topic id, the Raft index of the TOPIC_CREATE): deleting the
 * topic deletes its positions, and a commit that names another incarnation
 * (made by a consumer that read the deleted topic) is refused, so a
 * recreated topic starts every group afresh. A position past the topic's
 * end is refused too: it would skip records not yet written. */
static int store__group_commit(struct store *s, struct rd *body, struct store_item_result *res)
{
    struct store__group g;
    struct store_topic *t;
    uint64_t topic_id = UINT64_MAX; /* entries without it: the topic as it is */
    unsigned i;
    memset(&g, 0, sizeof g);
    rd_str(body, g.group, sizeof g.group);
    rd_str(body, g.topic, sizeof g.topic);
    g.offset = rd_u64(body);
    if (rd_ok(body) && body->left >= 8) {
        topic_id = rd_u64(body);
    }
    if (!rd_ok(body) || g.group[0] == '\0') {
        store__result(res, TALLY_INVAL, "invalid group commit");
        return 0;
    }
    if ((t = store_topic_find(s, g.topic)) == NULL) {
        store__result(res, TALLY_NOTFOUND, "topic %s not found", g.topic);
        return 0;
    }
    if (topic_id != UINT64_MAX && topic_id != t->created_index) {
        store__result(res, TALLY_NOTFOUND,
                      "topic %s was deleted and created again since group %s read it; "
                      "the group starts afresh on the new topic",
                      g.topic, g.group);
        return 0;
    }
    if (t->log != NULL && g.offset > log_next_offset(t->log)) {
        store__result(res, TALLY_OUT_OF_RANGE,
                      "group %s: offset %llu is past the end of %s (next offset %llu)", g.group,
                      (unsigned long long)g.offset, g.topic,
                      (unsigned long long)log_next_offset(t->log));
        return 0;
    }
    for (i = 0; i < s->n_groups; i++) {
        if (strcmp(s->groups[i].group, g.group) == 0 && strcmp(s->groups[i].topic, g.topic) == 0) {
            s->groups[i].offset = g.offset;
            return 0;
        }
    }
    if (s->n_groups == s->cap_groups) {
        unsigned cap = s->cap_groups ? s->cap_groups * 2 : 16;
        struct store__group *ng = realloc(s->groups, cap * sizeof *ng);
        if (ng == NULL) {
            return TALLY_NOMEM;
        }
        s->groups = ng;
        s->cap_groups = cap;
    }
    s->groups[s->n_groups++] = g;
    return 0;
}

static void store__group_delete(struct store *s, struct rd *body, struct store_item_result *res)
{
    char group[STORE_NAME_MAX], topic[STORE_NAME_MAX];
    rd_str(body, group, sizeof group);
    rd_str(body, topic, sizeof topic);
    if (!rd_ok(body) || group[0] == '\0') {
        store__result(res, TALLY_INVAL, "invalid group delete");
        return;
    }
    unsigned n = store__groups_drop(s, group, topic[0] != '\0' ? topic : NULL);
    if (n == 0) {
        if (topic[0] != '\0') {
            store__result(res, TALLY_NOTFOUND, "group %s has no position on %s", group, topic);
        } else {
            store__result(res, TALLY_NOTFOUND, "group %s not found", group);
        }
        return;
    }
    res->count = n;
}

bool store_group_at(struct store *s, unsigned i, const char **group, const char **topic,
                    uint64_t *offset)
{
    if (i >= s->n_groups) {
        return false;
    }
    *group = s->groups[i].group;
    *topic = s->groups[i].topic;
    *offset = s->groups[i].offset;
    return true;
}

int store_import_topic(struct store *s, const char *name, const struct cmd_topic_config *config,
                       uint64_t start_offset, struct store_topic **out, char *errmsg)
{
    struct store_topic *t, **tail = &s->topics;
    if (s->applied_index != 0 || s->catalog_index != 0) {
        err_printf(errmsg, "restore needs a node that has applied nothing (index %llu)",
                   (unsigned long long)s->applied_index);
        return TALLY_INVAL;
    }
    if (!store_topic_name_valid(name) || config->policy > 3) {
        err_printf(errmsg, "invalid topic name or settings: %s", name);
        return TALLY_INVAL;
    }
    if (store_topic_find(s, name) != NULL) {
        err_printf(errmsg, "topic %s already exists", name);
        return TALLY_EXISTS;
    }
    if ((t = calloc(1, sizeof *t)) == NULL) {
        return TALLY_NOMEM;
    }
    snprintf(t->name, sizeof t->name, "%s", name);
    t->config = *config;
    while (*tail != NULL) {
        tail = &(*tail)->next;
    }
    *tail = t;
    *out = t;
    return store__open_topic(s, t, start_offset, start_offset, errmsg);
}

int store_import_group(struct store *s, const char *group, const char *topic, uint64_t offset,
                       char *errmsg)
{
    struct store_item_result res;
    struct buf b;
    struct rd r;
    int rv = TALLY_NOMEM;
    memset(&res, 0, sizeof res);
    buf_init(&b);
    buf_put_str(&b, group);
    buf_put_str(&b, topic);
    buf_put_u64(&b, offset);
    if (buf_ok(&b)) {
        rd_init(&r, b.data, b.len);
        rv = store__group_commit(s, &r, &res);
    }
    buf_free(&b);
    if (rv == 0 && res.code != 0) {
        err_printf(errmsg, "group %s on %s: %s", group, topic, res.message);
        rv = res.code;
    }
    return rv;
}

/* USER: add, change or remove a user's SCRAM credentials (users.h). */
static int store__user(struct store *s, uint64_t index, struct rd *body,
                       struct store_item_result *res, char *errmsg)
{
    char why[160];
    int rv = users_apply(&s->users, body, why, sizeof why);
    if (rv == TALLY_NOMEM) {
        err_printf(errmsg, "user change at %llu: out of memory", (unsigned long long)index);
        return rv;
    }
    if (rv != 0) {
        store__result(res, rv, "%s", why);
        return 0;
    }
    s->catalog_index = index;
    return store__write_catalog(s, errmsg);
}

/* ACL: add or remove an access control rule (acl.h). */
static int store__acl(struct store *s, uint64_t index, struct rd *body,
                      struct store_item_result *res, char *errmsg)
{
    char why[256];
    int rv = acls_apply(&s->acls, body, why, sizeof why);
    if (rv == TALLY_NOMEM) {
        err_printf(errmsg, "ACL change at %llu: out of memory", (unsigned long long)index);
        return rv;
    }
    if (rv != 0) {
        store__result(res, rv, "%s", why);
        return 0;
    }
    s->catalog_index = index;
    return store__write_catalog(s, errmsg);
}

int store_apply(struct store *s, uint64_t index, const void *entry, size_t len,
                struct store_result **out, char *errmsg)
{
    struct store_result *res;
    struct rd body;
    uint8_t type;
    uint32_t n = 1;
    int rv = cmd_decode(entry, len, &type, &body, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (type == CMD_APPEND) {
        struct rd peek = body;
        n = rd_u32(&peek);
        if (!rd_ok(&peek) || n == 0 || n > peek.left) {
            return ERR_CORRUPT(errmsg, "append entry %llu malformed", (unsigned long long)index);
        }
        body = peek;
    }
    res = calloc(1, sizeof *res + n * sizeof res->items[0]);
    if (res == NULL) {
        return TALLY_NOMEM;
    }
    res->index = index;
    res->n = n;
    switch (type) {
    case CMD_APPEND:
        rv = store__append(s, index, &body, res, errmsg);
        break;
    case CMD_TOPIC_CREATE:
        if (index > s->catalog_index) {
            rv = store__create_topic(s, index, &body, &res->items[0], errmsg);
        }
        break;
    case CMD_TOPIC_DELETE:
        if (index > s->catalog_index) {
            rv = store__delete_topic(s, index, &body, &res->items[0], errmsg);
        }
        break;
    case CMD_MEMBER_SET:
    case CMD_MEMBER_DEL:
        if (index > s->catalog_index) {
            rv = store__member_change(s, index, type, &body, &res->items[0], errmsg);
        }
        break;
    case CMD_GROUP_COMMIT:
        if (index > s->catalog_index) {
            rv = store__group_commit(s, &body, &res->items[0]);
        }
        break;
    case CMD_TOPIC_TRIM:
        if (index > s->catalog_index) {
            rv = store__trim_topic(s, index, &body, &res->items[0], errmsg);
        }
        break;
    case CMD_GROUP_DELETE:
        if (index > s->catalog_index) {
            store__group_delete(s, &body, &res->items[0]);
        }
        break;
    case CMD_CLUSTER_ID:
        if (index > s->catalog_index) {
            rv = store__cluster_id(s, index, &body, &res->items[0], errmsg);
        }
        break;
    case CMD_MEMBER_DIR:
        if (index > s->catalog_index) {
            rv = store__member_dir(s, index, &body, &res->items[0], errmsg);
        }
        break;
    case CMD_CATALOG_CHECK:
        rv = store__catalog_check(s, index, &body, errmsg);
        break;
    case CMD_USER:
        if (index > s->catalog_index) {
            rv = store__user(s, index, &body, &res->items[0], errmsg);
        }
        break;
    case CMD_ACL:
        if (index > s->catalog_index) {
            rv = store__acl(s, index, &body, &res->items[0], errmsg);
        }
        break;
    default:
        rv = ERR_CORRUPT(errmsg, "entry %llu has unknown command type %u",
                         (unsigned long long)index, type);
    }
    if (rv == 0 && index > s->applied_index) {
        s->applied_index = index;
        store__record_digest(s, index);
    }
    if (rv != 0 || out == NULL) {
        free(res);
    } else {
        *out = res;
    }
    return rv;
}

int store_sync(struct store *s, char *errmsg)
{
    for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
        if (t->log == NULL) {
            continue; /* being created: its log opens after the catalog is written */
        }
        int rv = log_sync(t->log, errmsg);
        if (rv != 0) {
            err_wrap(errmsg, "sync topic %s", t->name);
            return rv;
        }
    }
    return 0;
}

bool store_retention_due(struct store_topic *t, int64_t now_ms, int64_t delete_retention_ms,
                         uint64_t *start_offset, uint64_t *tombstone_limit)
{
    uint8_t policy = t->config.policy;
    *start_offset = t->trim_offset;
    *tombstone_limit = t->tombstone_limit;
    if (t->log == NULL) {
        return false;
    }
    if (policy == TALLY_POLICY_DELETE || policy == TALLY_POLICY_COMPACT_DELETE) {
        uint64_t start = log_retention_start(t->log, now_ms);
        *start_offset = start > t->trim_offset ? start : t->trim_offset;
    }
    if ((policy == TALLY_POLICY_COMPACT || policy == TALLY_POLICY_COMPACT_DELETE) &&
        delete_retention_ms >= 0 && now_ms > INT64_MIN + delete_retention_ms) {
        uint64_t limit;
        char why[ERR_MSG_SIZE];
        /* the first batch holding a record younger than delete_retention_ms */
        if (log_find_time(t->log, now_ms - delete_retention_ms + 1, &limit, why) != 0) {
            TLOG_WARN("store", "tombstone retention of %s skipped: %s", t->name, why);
        } else if (limit > t->tombstone_limit) {
            *tombstone_limit = limit;
        }
    }
    return *start_offset > t->trim_offset || *tombstone_limit > t->tombstone_limit;
}

int64_t store_max_timestamp(struct store *s)
{
    return s->max_ts;
}

int store_checkpoint(struct store *s, char *errmsg)
{
    int rv;
    if (s->applied_index > s->catalog_index) {
        s->catalog_index = s->applied_index;
    }
    /* Logs first (in store__write_catalog, and here for the keys), then
     * each topic's key index, then the catalog. */
    if ((rv = store_sync(s, errmsg)) != 0) {
        return rv;
    }
    for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
        if ((rv = store__write_keys(s, t, s->catalog_index, errmsg)) != 0) {
            err_wrap(errmsg, "checkpoint key index of %s", t->name);
            return rv;
        }
    }
    if ((rv = store__write_catalog(s, errmsg)) != 0) {
        return rv;
    }
    for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
        t->compact_limit = log_next_offset(t->log);
    }
    return 0;
}

/* What store_snapshot_freeze copies of one topic. */
struct store__frozen_topic {
    char dir[PATH_MAX + 300];
    char name[STORE_NAME_MAX];
    uint64_t created_index;
    uint64_t next_offset;     /* the log's next offset at the snapshot's index */
    struct keys keys;         /* a packed copy of the key index */
    int fd;                   /* a duplicate of the active segment's, or -1 */
    bool written;             /* its keys.ckpt was written by the build */
};

struct store_frozen {
    struct store *s;          /* the build touches only its file lock and marks */
    uint64_t index;
    struct buf head;          /* the catalog without key indexes */
    struct buf tail;          /* the catalog's version 2 fields */
    struct store__frozen_topic *topics; /* in catalog order */
    unsigned n;
};

int store_snapshot_freeze(struct store *s, uint64_t index, struct store_frozen **out,
                          char *errmsg)
{
    struct store_frozen *f = calloc(1, sizeof *f);
    unsigned n = 0;
    *out = NULL;
    for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
        n++;
    }
    if (f == NULL || (n > 0 && (f->topics = calloc(n, sizeof *f->topics)) == NULL)) {
        free(f);
        err_printf(errmsg, "snapshot: out of memory");
        return TALLY_NOMEM;
    }
    f->s = s;
    f->index = index;
    if (index > s->applied_index) {
        s->applied_index = index; /* (Raft freezes at its last applied index) */
    }
    buf_init(&f->head);
    store__encode_head(s, index, &f->head);
    buf_init(&f->tail);
    store__encode_tail(s, &f->tail);
    for (struct store_topic *t = s->topics; t != NULL; t = t->next, f->n++) {
        struct store__frozen_topic *ft = &f->topics[f->n];
        ft->fd = -1;
        store__topic_dir(s, t->name, ft->dir, sizeof ft->dir);
        snprintf(ft->name, sizeof ft->name, "%s", t->name);
        ft->created_index = t->created_index;
        keys_init(&ft->keys);
        if (keys_copy_packed(&ft->keys, &t->keys) != 0) {
            store_snapshot_release(s, f);
            err_printf(errmsg, "snapshot: out of memory copying the key index of %s", t->name);
            return TALLY_NOMEM;
        }
        if (t->log != NULL) {
            ft->next_offset = log_next_offset(t->log);
            ft->fd = log_dup_active(t->log);
            if (ft->fd < 0) {
                int e = errno;
                store_snapshot_release(s, f);
                return err_os(errmsg, e, "snapshot: duplicate the descriptor of %s", t->name);
            }
        }
    }
    if (!buf_ok(&f->head)) {
        store_snapshot_release(s, f);
        err_printf(errmsg, "snapshot: out of memory");
        return TALLY_NOMEM;
    }
    *out = f;
    return 0;
}

int store_snapshot_build(struct store_frozen *f, struct buf *out, char *errmsg)
{
    struct buf cat;
    int rv = 0;
    /* 1. The logs hold everything up to the index, durably: Raft may drop
     *    its entries once the snapshot is stored. Sealed segments were
     *    fsynced when sealed, so the active one of each topic is enough. */
    for (unsigned i = 0; i < f->n && rv == 0; i++) {
        if (f->topics[i].fd >= 0 && fdatasync(f->topics[i].fd) != 0) {
            rv = err_os(errmsg, errno, "snapshot: fsync the log of %s", f->topics[i].name);
        }
    }
    /* 2. Checkpoints at the index: the key indexes, then the catalog. */
    for (unsigned i = 0; i < f->n && rv == 0; i++) {
        struct store__frozen_topic *ft = &f->topics[i];
        if (ft->fd < 0) {
            continue; /* being created: no log yet */
        }
        bool renamed = false;
        rv = store__write_keys_file(f->s, ft->dir, &ft->keys, f->index, ft->next_offset,
                                    "snap.tmp", &renamed, errmsg);
        if (rv != 0) {
            err_wrap(errmsg, "snapshot: checkpoint the key index of %s", ft->name);
        }
        /* (skipped for a newer one, which may count less of the log after
         * a topic went back to a snapshot: not a reason to compact) */
        ft->written = rv == 0 && renamed;
    }
    buf_init(&cat);
    if (rv == 0) {
        buf_put(&cat, f->head.data, f->head.len);
        buf_put_u8(&cat, 0);
        buf_put(&cat, f->tail.data, f->tail.len);
        if (buf_ok(&cat)) {
            buf_put_u64(&cat, codec_checksum(cat.data, cat.len));
        }
        struct store__guard g = {&f->s->file_lock, &f->s->catalog_written, f->index, false};
        rv = buf_ok(&cat) ? store__write_file_as(f->s->dir, "catalog", "snap.tmp", &cat, &g,
                                                 errmsg)
                          : TALLY_NOMEM;
    }
    buf_free(&cat);
    /* 3. The snapshot: the catalog with every key index. */
    if (rv == 0) {
        buf_put(out, f->head.data, f->head.len);
        buf_put_u8(out, 1);
        for (unsigned i = 0; i < f->n; i++) {
            keys_encode(&f->topics[i].keys, out);
        }
        buf_put(out, f->tail.data, f->tail.len);
        if (buf_ok(out)) {
            buf_put_u64(out, codec_checksum(out->data, out->len));
        }
        if (!buf_ok(out)) {
            err_printf(errmsg, "snapshot: out of memory");
            rv = TALLY_NOMEM;
        }
    }
    return rv;
}

void store_snapshot_release(struct store *s, struct store_frozen *f)
{
    if (f == NULL) {
        return;
    }
    for (unsigned i = 0; i < f->n; i++) {
        struct store__frozen_topic *ft = &f->topics[i];
        struct store_topic *t = store_topic_find(s, ft->name);
        /* A topic compacts only below its newest key checkpoint. */
        if (ft->written && t != NULL && t->created_index == ft->created_index &&
            ft->next_offset > t->compact_limit) {
            t->compact_limit = ft->next_offset;
        }
        if (ft->fd >= 0) {
            close(ft->fd);
        }
        keys_free(&ft->keys);
    }
    free(f->topics);
    buf_free(&f->head);
    buf_free(&f->tail);
    free(f);
}

int store_snapshot(struct store *s, uint64_t index, struct buf *out, char *errmsg)
{
    struct store_frozen *f;
    int rv = store_snapshot_freeze(s, index, &f, errmsg);
    if (rv == 0) {
        rv = store_snapshot_build(f, out, errmsg);
        store_snapshot_release(s, f);
    }
    return rv;
}

/* Take @t back to its state @ct in the snapshot at @index, whose log held
 * offsets @start..@next - 1: the log is cut to @next when it holds more
 * (Raft replays the entries after @index), or restarted empty at @next
 * when it holds less, the range it lacks being left to a backfill. */
static int store__rewind_topic(struct store_topic *t, struct store_topic *ct, uint64_t index,
                               uint64_t start, uint64_t next, char *errmsg)
{
    uint64_t have = log_next_offset(t->log);
    int rv = 0;
    if (have >= next && next >= log_start_offset(t->log)) {
        uint64_t now = have;
        TLOG_ERROR("store", "topic %s: going back to the snapshot at index %llu (offset %llu); "
                   "the entries after it are applied again from the Raft log", t->name,
                   (unsigned long long)index, (unsigned long long)next);
        rv = log_truncate(t->log, next, &now, errmsg);
        have = now;
    }
    if (rv == 0 && have != next) {
        /* Shorter than the snapshot, or the snapshot's offset is below the
         * log's start (retention) or inside a batch (a compacted one). */
        TLOG_ERROR("store", "topic %s: the local log holds offsets [%llu, %llu) but the "
                   "snapshot at index %llu ends at %llu: records were lost here (damaged "
                   "segment?) or removed by retention; taking the snapshot's state, other nodes "
                   "serve offsets %llu..%llu", t->name,
                   (unsigned long long)log_start_offset(t->log), (unsigned long long)have,
                   (unsigned long long)index, (unsigned long long)next,
                   (unsigned long long)start, (unsigned long long)next - 1);
        rv = log_reset(t->log, next, errmsg);
        t->missing_from = start;
        t->missing_to = next;
    }
    if (rv == 0) {
        store__take_tables(t, ct);
        t->floor_index = index;
        t->damaged = false;
        if (t->compact_limit > log_next_offset(t->log)) {
            t->compact_limit = log_next_offset(t->log);
        }
        rv = store__load_tail(t, errmsg);
    }
    if (rv != 0) {
        err_wrap(errmsg, "topic %s: go back to the snapshot at index %llu", t->name,
                 (unsigned long long)index);
    }
    return rv;
}

/* Add topic @ct of a decoded catalog (snapshot, restored state) that this
 * node lacks: its log starts empty at @next, and [@start, @next) is the
 * history it lacks, which a backfill fetches from a peer. *out NULL when
 * out of memory. The caller takes the tables (store__take_tables). */
static int store__adopt_topic(struct store *s, const struct store_topic *ct, uint64_t start,
                              uint64_t next, struct store_topic **out, char *errmsg)
{
    struct store_topic *t = calloc(1, sizeof *t);
    struct store_topic **tail = &s->topics;
    int rv;
    *out = t;
    if (t == NULL) {
        return TALLY_NOMEM;
    }
    *t = *ct;
    t->next = NULL;
    t->log = NULL; /* (producers and keys still shared with @ct: take them) */
    while (*tail != NULL) {
        tail = &(*tail)->next;
    }
    *tail = t;
    t->missing_from = t->missing_to = 0;
    rv = store__open_topic(s, t, next, next, errmsg);
    if (next > start) {
        t->missing_from = start;
        t->missing_to = next;
    }
    return rv;
}

int store_restore(struct store *s, const void *p, size_t n, bool local_first, char *errmsg)
{
    struct store__catalog c;
    int rv = store__decode_catalog(p, n, &c, errmsg);
    uint32_t i = 0;
    if (rv != 0) {
        err_wrap(errmsg, "restore snapshot");
        return rv;
    }
    if (local_first) {
        /* Every snapshot this node took was preceded by a sync of its logs,
         * so the local state includes everything up to c.index - unless a
         * log lost records since (a damaged segment cut at open). Such a
         * topic goes back to the snapshot's state: Raft replays the entries
         * after it, and the records the snapshot covers but the log lost
         * are answered for by the other nodes (UNAVAILABLE here) until a
         * backfill brings them back. */
        bool changed = false;
        for (struct store_topic *ct = c.topics; ct != NULL && rv == 0; ct = ct->next, i++) {
            struct store_topic *t = store_topic_find(s, ct->name);
            if (t == NULL || t->created_index != ct->created_index ||
                (!t->damaged && log_next_offset(t->log) >= c.next_offsets[i])) {
                continue;
            }
            rv = store__rewind_topic(t, ct, c.index, c.start_offsets[i], c.next_offsets[i],
                                     errmsg);
            changed = true;
        }
        if (rv == 0 && changed) {
            rv = store_checkpoint(s, errmsg);
        }
        if (rv == 0) {
            TLOG_INFO("store", "snapshot at index %llu: keeping the local state%s",
                      (unsigned long long)c.index, changed ? " (but for the topics above)" : "");
        }
        store__catalog_free(&c);
        return rv;
    }
    TLOG_INFO("store", "installing snapshot at index %llu", (unsigned long long)c.index);
    /* Drop topics the snapshot does not have. */
    for (struct store_topic *t = s->topics, *next; t != NULL && rv == 0; t = next) {
        struct store_topic *ct = c.topics;
        next = t->next;
        while (ct != NULL && !(strcmp(ct->name, t->name) == 0 &&
                               ct->created_index == t->created_index)) {
            ct = ct->next;
        }
        if (ct == NULL) {
            rv = store__unlink_topic(s, t, s->catalog_index, errmsg);
        }
    }
    /* Create or move forward the snapshot's topics. */
    for (struct store_topic *ct = c.topics; ct != NULL && rv == 0; ct = ct->next, i++) {
        struct store_topic *t = store_topic_find(s, ct->name);
        if (t == NULL) {
            rv = store__adopt_topic(s, ct, c.start_offsets[i], c.next_offsets[i], &t, errmsg);
            if (t == NULL) {
                break;
            }
        } else if (log_next_offset(t->log) < c.next_offsets[i]) {
            rv = log_reset(t->log, c.next_offsets[i], errmsg);
            t->missing_from = c.start_offsets[i];
            t->missing_to = c.next_offsets[i];
        }
        if (t->missing_to > t->missing_from) {
            TLOG_WARN("store", "topic %s: history %llu..%llu is not on this node (installed a "
                      "snapshot; fetches of it are sent to other nodes)", t->name,
                      (unsigned long long)t->missing_from, (unsigned long long)t->missing_to);
        }
        /* The snapshot's producer table and key index replace ours. */
        store__take_tables(t, ct);
        t->floor_index = c.index;
        t->trim_offset = ct->trim_offset > t->trim_offset ? ct->trim_offset : t->trim_offset;
        t->tombstone_limit = ct->tombstone_limit > t->tombstone_limit ? ct->tombstone_limit
                                                                      : t->tombstone_limit;
        if (rv == 0) {
            rv = store__apply_trim(t, errmsg);
        }
    }
    if (rv == 0) {
        memcpy(s->members, c.members, sizeof c.members);
        s->n_members = c.n_members;
        if (c.cluster_id != 0 || s->cluster_id == 0) {
            s->cluster_id = c.cluster_id;
        }
        memcpy(s->dirs, c.dirs, sizeof c.dirs);
        s->n_dirs = c.n_dirs;
        free(s->groups);
        s->groups = c.groups;
        s->n_groups = s->cap_groups = c.n_groups;
        c.groups = NULL;
        users_move(&s->users, &c.users);
        acls_move(&s->acls, &c.acls);
        s->catalog_index = c.index;
        s->applied_index = c.index;
        memset(s->digests, 0, sizeof s->digests);
        s->max_ts = store__scan_max_ts(s);
        rv = store_checkpoint(s, errmsg);
    }
    store__catalog_free(&c);
    return rv;
}

/* ------------------------------------------------------------------------
 * Compaction
 * ------------------------------------------------------------------------ */

struct store_compaction {
    char topic[STORE_NAME_MAX];
    uint64_t created_index;      /* tells a topic from a later one of the same name */
    struct log_compaction *lc;
};

static bool store__compacted_policy(const struct store_topic *t)
{
    return t->config.policy == TALLY_POLICY_COMPACT ||
           t->config.policy == TALLY_POLICY_COMPACT_DELETE;
}

int store_compact_prepare(struct store *s, const struct store_compact_config *cfg,
                          int64_t now_ms, struct store_compaction **out, char *errmsg)
{
    struct store_topic *first = s->topics;
    struct log_compact_params p;
    unsigned n = 0;

    *out = NULL;
    /* Round robin: start after the topic compacted last. */
    for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
        if (strcmp(t->name, s->compact_last) == 0) {
            first = t->next != NULL ? t->next : s->topics;
        }
        n++;
    }
    memset(&p, 0, sizeof p);
    p.now_ms = now_ms;
    p.min_lag_ms = cfg->min_lag_ms;
    p.map_bytes = cfg->map_bytes;
    for (struct store_topic *t = first; n > 0; n--, t = t->next != NULL ? t->next : s->topics) {
        struct log_compaction *lc = NULL;
        int rv;
        if (!store__compacted_policy(t) || t->log == NULL || t->compact_limit == 0) {
            continue;
        }
        p.upto = t->compact_limit;
        /* Tombstones go below the leader's replicated limit only, never on
         * this node's clock. */
        p.tombstone_limit = t->tombstone_limit;
        p.delete_retention_ms = t->tombstone_limit > 0 ? 0 : -1;
        rv = log_compact_prepare(t->log, &p, &lc, errmsg);
        if (rv != 0) {
            err_wrap(errmsg, "compact topic %s", t->name);
            return rv;
        }
        if (lc == NULL) {
            continue;
        }
        *out = calloc(1, sizeof **out);
        if (*out == NULL) {
            log_compact_free(lc);
            err_printf(errmsg, "compact topic %s: out of memory", t->name);
            return TALLY_NOMEM;
        }
        snprintf((*out)->topic, sizeof (*out)->topic, "%s", t->name);
        (*out)->created_index = t->created_index;
        (*out)->lc = lc;
        snprintf(s->compact_last, sizeof s->compact_last, "%s", t->name);
        return 0;
    }
    return 0;
}

int store_compact_run(struct store_compaction *j, char *errmsg)
{
    int rv = log_compact_run(j->lc, errmsg);
    if (rv != 0) {
        err_wrap(errmsg, "compact topic %s", j->topic);
    }
    return rv;
}

void store_compact_cancel(struct store_compaction *j)
{
    log_compact_cancel(j->lc);
}

int store_compact_finish(struct store *s, struct store_compaction *j,
                         struct log_compact_stats *st, char *errmsg)
{
    struct store_topic *t = store_topic_find(s, j->topic);
    int rv;
    memset(st, 0, sizeof *st);
    if (t == NULL || t->created_index != j->created_index || t->log == NULL) {
        /* Deleted (and maybe created again) meanwhile: the job's copies
         * are removed by store_compact_free; a deleted directory the
         * worker kept busy is swept now. */
        return store__sweep_deleted(s, errmsg);
    }
    rv = log_compact_commit(t->log, j->lc, st, errmsg);
    if (rv != 0) {
        err_wrap(errmsg, "compact topic %s", t->name);
    }
    return rv;
}

const char *store_compaction_topic(const struct store_compaction *j)
{
    return j->topic;
}

void store_compact_free(struct store_compaction *j)
{
    if (j != NULL) {
        log_compact_free(j->lc);
        free(j);
    }
}

/* ------------------------------------------------------------------------
 * Backfill
 * ------------------------------------------------------------------------ */

bool store_backfill_pick(struct store *s, char *topic, size_t cap, uint64_t *created_index,
                         uint64_t *from, uint64_t *to)
{
    for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
        if (t->log != NULL && t->missing_to > t->missing_from) {
            snprintf(topic, cap, "%s", t->name);
            *created_index = t->created_index;
            *from = t->missing_from;
            *to = t->missing_to;
            return true;
        }
    }
    return false;
}

int store_backfill_begin(struct store *s, const char *topic, uint64_t from,
                         struct tally_log **staging, char *errmsg)
{
    struct store_topic *t = store_topic_find(s, topic);
    char dir[PATH_MAX + 300];
    struct log_config lc;
    int rv;
    *staging = NULL;
    if (t == NULL) {
        err_printf(errmsg, "backfill: topic %s not found", topic);
        return TALLY_NOTFOUND;
    }
    store__backfill_dir(s, topic, dir, sizeof dir);
    if ((rv = store__remove_tree(dir, errmsg)) != 0) {
        return rv;
    }
    store__log_config(s, &t->config, &lc);
    rv = log_open(dir, &lc, from, staging, errmsg);
    if (rv != 0) {
        err_wrap(errmsg, "backfill of %s", topic);
    }
    return rv;
}

void store_backfill_abort(struct store *s, const char *topic, struct tally_log *staging)
{
    log_close(staging);
    store__backfill_drop_dir(s, topic);
}

/* Move one file of the staging log into the topic's directory. */
static int store__backfill_move(const char *from_dir, const char *to_dir, const char *name,
                                char *errmsg)
{
    char a[PATH_MAX + 400], b[PATH_MAX + 400];
    snprintf(a, sizeof a, "%s/%s", from_dir, name);
    snprintf(b, sizeof b, "%s/%s", to_dir, name);
    /* link + unlink, not rename: never replace a file of the topic. */
    if (link(a, b) != 0) {
        return errno == ENOENT ? 0 : err_os(errmsg, errno, "move %s into %s", a, to_dir);
    }
    if (unlink(a) != 0) {
        return err_os(errmsg, errno, "remove %s", a);
    }
    return 0;
}

/* The topic's history is whole again (backfilled, or gone everywhere):
 * record it in the catalog. Only the catalog: the key index did not
 * change (and not keys.ckpt: store_checkpoint's label would be the applied
 * index, and a snapshot being built may hold an older one). */
static int store__history_whole(struct store *s, struct store_topic *t, char *errmsg)
{
    t->missing_from = t->missing_to = 0;
    if (s->applied_index > s->catalog_index) {
        s->catalog_index = s->applied_index;
    }
    return store__write_catalog(s, errmsg);
}

int store_backfill_finish(struct store *s, const char *topic, uint64_t created_index,
                          uint64_t from, uint64_t to, struct tally_log *staging, char *errmsg)
{
    struct store_topic *t = store_topic_find(s, topic);
    char sdir[PATH_MAX + 300], tdir[PATH_MAX + 300];
    struct log_config lc;
    char **names = NULL;
    size_t n = 0;
    int rv;

    if (t == NULL || t->created_index != created_index || t->missing_from != from ||
        t->missing_to != to || log_start_offset(t->log) != to ||
        log_next_offset(staging) != to || log_start_offset(staging) < from) {
        /* The topic changed meanwhile (deleted, another snapshot): drop it. */
        store_backfill_abort(s, topic, staging);
        err_printf(errmsg, "backfill of %s: the topic changed meanwhile; starting over", topic);
        return TALLY_BUSY;
    }
    if (log_next_offset(staging) == log_start_offset(staging)) {
        /* Nothing to move: the peer no longer has any of the range. */
        store_backfill_abort(s, topic, staging);
        TLOG_INFO("store", "topic %s: offsets %llu..%llu are gone everywhere (retention); the "
                  "history here starts at %llu", topic, (unsigned long long)from,
                  (unsigned long long)to - 1, (unsigned long long)to);
        return store__history_whole(s, t, errmsg);
    }
    if ((rv = log_seal(staging, errmsg)) != 0) {
        store_backfill_abort(s, topic, staging);
        return rv;
    }
    log_close(staging);
    store__backfill_dir(s, topic, sdir, sizeof sdir);
    store__topic_dir(s, topic, tdir, sizeof tdir);
    /* Segment files, newest first, each after its indexes: whatever a
     * crash leaves moved is a run of segments ending where the log
     * starts, which the next open adopts (store__backfill_reconcile). */
    rv = fs_list(sdir, &names, &n, errmsg); /* sorted: offset order */
    for (size_t i = n; rv == 0 && i > 0; i--) {
        const char *name = names[i - 1];
        char idx[32], tix[32];
        if (strlen(name) != 24 || strcmp(name + 20, ".seg") != 0) {
            continue;
        }
        snprintf(idx, sizeof idx, "%.20s.idx", name);
        snprintf(tix, sizeof tix, "%.20s.tix", name);
        if ((rv = store__backfill_move(sdir, tdir, idx, errmsg)) == 0 &&
            (rv = store__backfill_move(sdir, tdir, tix, errmsg)) == 0) {
            rv = store__backfill_move(sdir, tdir, name, errmsg);
        }
    }
    fs_list_free(names, n);
    if (rv == 0) {
        rv = file_sync_dir(tdir, errmsg);
    }
    if (rv == 0) {
        /* Reopen, so the log sees its new first segments. */
        log_close(t->log);
        t->log = NULL;
        store__log_config(s, &t->config, &lc);
        rv = log_open(tdir, &lc, 0, &t->log, errmsg);
    }
    if (rv != 0) {
        err_wrap(errmsg, "backfill of %s", topic);
        return rv; /* a disk failure: the caller stops the node */
    }
    store__backfill_drop_dir(s, topic);
    /* What the staging log does not hold, from its start down to @from,
     * was gone on the peer too (retention): not missing any more. */
    TLOG_INFO("store", "topic %s: backfilled offsets %llu..%llu; the node holds its whole "
              "history again", topic, (unsigned long long)log_start_offset(t->log),
              (unsigned long long)to - 1);
    return store__history_whole(s, t, errmsg);
}
