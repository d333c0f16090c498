/* Snapshots of the state: freeze on the loop, build on the snapshot
 * thread, release; installing one (store_restore), which takes a topic
 * back to the snapshot or forward to it; and the restored state the first
 * leader of a restored cluster describes, which the other nodes adopt. */
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lib/codec.h"
#include "lib/err.h"
#include "lib/fs.h"
#include "lib/logger.h"
#include "lib/testbug.h"
#include "store/stream_read.h"

static int store__adopt_topic(struct store *s, const struct store_topic *ct, uint64_t start,
                              uint64_t next, struct store_topic **out, char *errmsg);

/* The restored state described by the first leader of a restored cluster
 * (COMMAND_CLUSTER_ID): a node that lacks a restored topic creates it, its
 * history to be backfilled from a peer, with the described producers and
 * key versions; a node that holds it checks that it is the same. Group
 * positions it lacks are taken. */
int store__adopt_restored(struct store *s, uint64_t index, const uint8_t *p, uint32_t n,
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
        store__note_replay(s, t);
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

/* What a freeze copies of one topic. */
struct store__frozen_topic {
    char name[STORE_NAME_MAX]; /* (its directory is made from the name by the
                                * build: with 10,000 topics, 44 MB less to
                                * allocate and touch on the loop) */
    uint64_t created_index;
    uint64_t next_offset;     /* the log's next offset at the freeze's index */
    struct keys keys;         /* a copy of the key index sharing its chunks:
                               * always for a snapshot, for a checkpoint only
                               * when its keys.ckpt is due */
    struct streams streams;   /* a packed copy of the stream index */
    bool streams_due;         /* a streams.ckpt is due (stream_ckpt_due) */
    bool has_log;             /* false while the topic is being created */
    int fd;                   /* a duplicate of the active segment's when it
                               * had writes not fsynced yet, else -1 */
    bool written;             /* its keys.ckpt was written by the build */
    bool keys_current;        /* the keys.ckpt in place counts up to next_offset */
    bool trim_unsynced;       /* its trim_offset was not in a catalog yet */
    uint64_t trim_offset;     /* ... and was this */
};

/* A copy of the state at one index: what a snapshot or a checkpoint is
 * built from off the loop. */
struct store_frozen {
    struct store *s;          /* the build touches only its file lock and marks */
    uint64_t index;
    bool snapshot;            /* false: a checkpoint (no snapshot bytes) */
    uint64_t restores;        /* s->restores at the freeze */
    struct buf head;          /* the catalog without key indexes */
    struct buf tail;          /* the catalog's version 2 fields */
    struct store__frozen_topic *topics; /* in catalog order */
    unsigned n;
    int syncfs_fd;            /* >= 0: the data directory, whose file system
                               * the build syncs whole (syncfs) instead of a
                               * duplicate descriptor per written log */
};

/* How many logs written since their last fsync a freeze may take a
 * duplicate descriptor of: what the limit leaves beside the topics' own
 * descriptors and the reserve (store_set_fd_reserve), and at most a
 * quarter of the limit. Past that, it takes none and the build syncs the
 * whole file system once (syncfs): with 10,000 topics written, 10,000
 * duplicates could double the node's open files (EMFILE). Since Linux 5.8
 * syncfs reports write-back errors of the file system, as fsync does for
 * its file; but it also waits for every other dirty file there, so it is
 * the fallback, not the rule. */
static size_t store__freeze_max_dups(const struct store *s)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) {
        return 1024;
    }
    uint64_t limit = rl.rlim_cur, used = (uint64_t)s->n_topics + s->fd_reserve;
    uint64_t left = limit > used ? limit - used : 0;
    return (size_t)(left < limit / 4 ? left : limit / 4);
}

static int store__freeze(struct store *s, uint64_t index, bool snapshot,
                         struct store_frozen **out, char *errmsg)
{
    struct store_frozen *f = calloc(1, sizeof *f);
    const char *what = snapshot ? "snapshot" : "checkpoint";
    unsigned n = 0;
    *out = NULL;
    for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
        n++;
    }
    if (f == NULL || (n > 0 && (f->topics = calloc(n, sizeof *f->topics)) == NULL)) {
        free(f);
        err_printf(errmsg, "%s: out of memory", what);
        return TALLY_NOMEM;
    }
    f->s = s;
    f->index = index;
    f->snapshot = snapshot;
    f->syncfs_fd = -1;
    f->restores = s->restores;
    if (index > s->applied_index) {
        s->applied_index = index; /* (Raft freezes at its last applied index) */
    }
    size_t unsynced = 0, max_dups = store__freeze_max_dups(s);
    for (struct store_topic *t = s->topics; t != NULL && unsynced <= max_dups; t = t->next) {
        unsynced += t->log != NULL && log_unsynced(t->log);
    }
    int rv;
    if (unsynced > max_dups &&
        (rv = fs_open(s->dir, O_RDONLY | O_DIRECTORY, "the data directory", &f->syncfs_fd,
                      errmsg)) != 0) {
        err_wrap(errmsg, "%s", what);
        free(f->topics);
        free(f);
        return rv;
    }
    buf_init(&f->head);
    store__encode_head(s, index, &f->head);
    buf_init(&f->tail);
    store__encode_tail(s, &f->tail);
    for (struct store_topic *t = s->topics; t != NULL; t = t->next, f->n++) {
        struct store__frozen_topic *ft = &f->topics[f->n];
        ft->fd = -1;
        snprintf(ft->name, sizeof ft->name, "%s", t->name);
        ft->created_index = t->created_index;
        ft->trim_unsynced = t->trim_unsynced;
        ft->trim_offset = t->trim_offset;
        keys_init(&ft->keys);
        streams_init(&ft->streams); /* streams */
        if (t->log != NULL) {
            ft->next_offset = log_next_offset(t->log);
            ft->keys_current = t->keys_ckpt_next == ft->next_offset;
            ft->has_log = true;
        }
        ft->streams_due = t->log != NULL && stream_ckpt_due(t);
        if (((snapshot || (ft->has_log && !ft->keys_current)) &&
             keys_share(&ft->keys, &t->keys) != 0) ||
            (ft->streams_due &&
             streams_copy_packed(&ft->streams, &t->streams, store_topic_start(t)) != 0)) {
            store_snapshot_release(s, f);
            err_printf(errmsg, "%s: out of memory copying the key index of %s", what, t->name);
            return TALLY_NOMEM;
        }
        /* A log with nothing unsynced needs no fsync, nor a descriptor:
         * with 10,000 idle topics that is 10,000 dups and closes less. */
        if (ft->has_log && f->syncfs_fd < 0 && log_unsynced(t->log) &&
            (ft->fd = log_dup_active(t->log)) < 0) {
            int e = errno;
            store_snapshot_release(s, f);
            return err_os(errmsg, e, "%s: duplicate the descriptor of %s", what, t->name);
        }
    }
    if (!buf_ok(&f->head) || !buf_ok(&f->tail)) {
        store_snapshot_release(s, f);
        err_printf(errmsg, "%s: out of memory", what);
        return TALLY_NOMEM;
    }
    *out = f;
    return 0;
}

int store_snapshot_freeze(struct store *s, uint64_t index, struct store_frozen **out,
                          char *errmsg)
{
    return store__freeze(s, index, true, out, errmsg);
}

/* Build what @f froze: on any thread (the snapshot's, the checkpoint's). */
static int store__frozen_build(struct store_frozen *f, struct buf *out, char *errmsg)
{
    const char *what = f->snapshot ? "snapshot" : "checkpoint";
    const char *tmp = f->snapshot ? "snap.tmp" : "ckpt.tmp";
    struct buf cat;
    int rv = 0;
    /* 1. The logs hold everything up to the index, durably: Raft may drop
     *    its entries once the snapshot is stored, and the catalog records
     *    the producer tables and group positions at the index. Sealed
     *    segments were fsynced when sealed, so the active one of each topic
     *    is enough, and only if it was written since its last fsync: with
     *    10,000 topics of which a few are busy, this fsyncs a few files, not
     *    10,000 (even a clean file's fsync took some 60 us on ext4 here:
     *    0.6 s of a worker each time). */
    if (f->syncfs_fd >= 0 && !testbug(TESTBUG_CKPT_UNSYNCED) && syncfs(f->syncfs_fd) != 0) {
        rv = err_os(errmsg, errno, "%s: sync the file system of the data directory", what);
    }
    for (unsigned i = 0; i < f->n && rv == 0 && !testbug(TESTBUG_CKPT_UNSYNCED); i++) {
        char name[STORE_NAME_MAX + 16];
        if (f->topics[i].fd < 0) {
            continue;
        }
        snprintf(name, sizeof name, "the log of %s", f->topics[i].name);
        if ((rv = fs_fsync(f->topics[i].fd, name, errmsg)) != 0) {
            err_wrap(errmsg, "%s", what);
        }
    }
    /* 2. Checkpoints at the index: the key indexes, then the catalog. */
    for (unsigned i = 0; i < f->n && rv == 0; i++) {
        struct store__frozen_topic *ft = &f->topics[i];
        if (!ft->has_log || ft->keys_current) {
            continue; /* being created: no log yet; or its file is up to date */
        }
        bool renamed = false;
        char dir[PATH_MAX + 300];
        store__topic_dir(f->s, ft->name, dir, sizeof dir);
        /* streams: the stream index checkpoint goes just before keys.ckpt */
        rv = ft->streams_due ? stream_ckpt_write(dir, &ft->streams, f->index,
                                                 ft->next_offset, tmp, errmsg)
                             : 0;
        if (rv != 0) {
            err_wrap(errmsg, "%s: checkpoint the stream index of %s", what, ft->name);
            break;
        }
        rv = store__write_keys_file(f->s, dir, &ft->keys, f->index, ft->next_offset, tmp,
                                    &renamed, errmsg);
        if (rv != 0) {
            err_wrap(errmsg, "%s: checkpoint the key index of %s", what, ft->name);
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
        struct store__guard g = {&f->s->file_lock, &f->s->catalog_written, NULL, f->index, false};
        rv = buf_ok(&cat) ? store__write_file_as(f->s->dir, "catalog", tmp, &cat, &g, errmsg)
                          : TALLY_NOMEM;
    }
    buf_free(&cat);
    /* 3. The snapshot: the catalog with every key index. */
    if (rv == 0 && out != NULL) {
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

int store_snapshot_build(struct store_frozen *f, struct buf *out, char *errmsg)
{
    return store__frozen_build(f, out, errmsg);
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
        /* The next checkpoint need not write it again, unless a restore
         * meanwhile replaced the file (the next checkpoint writes it). */
        if (ft->written && t != NULL && t->created_index == ft->created_index &&
            f->restores == s->restores) {
            t->keys_ckpt_next = ft->next_offset;
        }
        /* streams: the build wrote streams.ckpt when it wrote keys.ckpt */
        if (ft->written && ft->streams_due && t != NULL &&
            t->created_index == ft->created_index) {
            t->streams_counted = ft->next_offset;
        }
        fs_close(ft->fd);
        keys_free(&ft->keys);
        streams_free(&ft->streams); /* streams */
    }
    free(f->topics);
    buf_free(&f->head);
    buf_free(&f->tail);
    fs_close(f->syncfs_fd);
    free(f);
    store__sweep_trash(s); /* the build may have put a newer catalog in place */
}

int store_checkpoint_freeze(struct store *s, struct store_frozen **out, char *errmsg)
{
    s->catalog_due = false; /* (set again if the build fails) */
    return store__freeze(s, s->applied_index, false, out, errmsg);
}

int store_checkpoint_build(struct store_frozen *f, char *errmsg)
{
    return store__frozen_build(f, NULL, errmsg);
}

int store_checkpoint_release(struct store *s, struct store_frozen *f, bool built,
                             struct log_removals *rm, char *errmsg)
{
    bool recorded = false;
    int rv = 0;
    if (f == NULL) {
        return 0;
    }
    if (built) {
        /* This catalog, or a newer one, is in place; and every key index
         * counts its log up to the freeze's next offset or further. */
        pthread_mutex_lock(&s->file_lock);
        recorded = s->catalog_written >= f->index;
        pthread_mutex_unlock(&s->file_lock);
        recorded = recorded && f->restores == s->restores;
    } else {
        s->catalog_due = true; /* try again */
    }
    for (unsigned i = 0; i < f->n && recorded; i++) {
        const struct store__frozen_topic *ft = &f->topics[i];
        struct store_topic *t = ft->trim_unsynced ? store_topic_find(s, ft->name) : NULL;
        /* A trim applied after the freeze waits for the next checkpoint. */
        if (t != NULL && t->created_index == ft->created_index &&
            t->trim_offset == ft->trim_offset) {
            t->trim_unsynced = false;
        }
    }
    store_snapshot_release(s, f);
    if (recorded) {
        rv = store__trims_recorded(s, false, rm, errmsg);
    }
    return rv;
}

bool store_checkpoint_wanted(const struct store *s)
{
    return s->catalog_due || (s->trims_waiting && !s->trim_held);
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
        streams_cut(&t->streams, now); /* streams: Raft applies the rest again */
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
        streams_free(&t->streams); /* streams: the history is elsewhere now */
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
    int rv;
    *out = t;
    if (t == NULL) {
        return TALLY_NOMEM;
    }
    *t = *ct;
    t->next = NULL;
    t->prev = t->hash_next = NULL;
    t->log = NULL; /* (producers and keys still shared with @ct: take them) */
    /* A directory of that name is a leftover kept at open for a replayed
     * create (store__reconcile_dirs) that the snapshot now stands for:
     * the log starts empty at @next, as for any topic adopted. */
    char dir[PATH_MAX + 300];
    store__topic_dir(s, t->name, dir, sizeof dir);
    if ((rv = fs_remove_tree(dir, errmsg)) != 0) {
        free(t);
        *out = NULL;
        return rv;
    }
    if (store__topics_add(s, t) != 0) {
        free(t);
        *out = NULL;
        return TALLY_NOMEM;
    }
    t->missing_from = t->missing_to = 0;
    rv = store__open_topic(s, t, next, next, errmsg);
    if (next > start) {
        t->missing_from = start;
        t->missing_to = next;
    }
    return rv;
}

/* An installed snapshot at offset @next under a log that holds more: the
 * batches after @next came from entries after the snapshot's index (this
 * node applied them before a crash took them from its Raft log, not from
 * its topic log). The log keeps them and Raft's replay of those entries
 * is skipped as already written, so the snapshot's tables must count them
 * now, as an open counts the batches after a checkpoint (test/sim found a
 * retry written twice and key versions behind without this). */
static int store__count_kept_tail(struct store_topic *t, uint64_t next, char *errmsg)
{
    TLOG_INFO("store", "topic %s: the snapshot ends at offset %llu, the local log at %llu: "
              "keeping the batches after it and counting them in", t->name,
              (unsigned long long)next, (unsigned long long)log_next_offset(t->log));
    return store__rebuild(t, next, next, errmsg);
}

/* An install that did not finish (a crash, a full disk) may have reset a
 * topic's log to the snapshot's offset without the catalog recording the
 * history before it as missing: the log then starts above the snapshot's
 * start (and above the cluster's trim offset) with nothing to say so. The
 * install done again records it, so that backfill brings it back (test/sim
 * found such a node serving its topic from offset 47 on for good). */
static void store__note_unrecorded_gap(struct store_topic *t, const struct store_topic *ct,
                                       uint64_t snap_start)
{
    uint64_t from = snap_start, start = log_start_offset(t->log);
    from = ct->trim_offset > from ? ct->trim_offset : from;
    from = t->trim_offset > from ? t->trim_offset : from;
    if (t->missing_to <= t->missing_from && start > from) {
        t->missing_from = from;
        t->missing_to = start;
    }
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
    s->restores++;
    if (local_first && s->catalog_index < c.index) {
        /* Raft stores a snapshot it installs before the store restores it,
         * and the store's checkpoint at its index ends the restore: a node
         * that stopped in between (a crash, or a restore that failed on a
         * full disk) never had this snapshot's state. A snapshot the node
         * took was checkpointed before Raft stored it. */
        TLOG_WARN("store", "snapshot at index %llu is newer than the local checkpoint "
                  "(%llu): its install did not finish; installing it again",
                  (unsigned long long)c.index, (unsigned long long)s->catalog_index);
        local_first = false;
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
            store__digest_touch(s, t);
            store__note_replay(s, t);
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
            streams_free(&t->streams); /* streams: the history is elsewhere now */
            t->missing_from = c.start_offsets[i];
            t->missing_to = c.next_offsets[i];
        } else {
            store__note_unrecorded_gap(t, ct, c.start_offsets[i]);
        }
        if (t->missing_to > t->missing_from) {
            TLOG_WARN("store", "topic %s: history %llu..%llu is not on this node (installed a "
                      "snapshot; fetches of it are sent to other nodes)", t->name,
                      (unsigned long long)t->missing_from, (unsigned long long)t->missing_to);
        }
        /* The snapshot's producer table and key index replace ours. */
        store__take_tables(t, ct);
        if (rv == 0 && log_next_offset(t->log) > c.next_offsets[i]) {
            rv = store__count_kept_tail(t, c.next_offsets[i], errmsg);
        }
        t->floor_index = c.index;
        store__note_replay(s, t);
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
        store__groups_free_shares(s->groups, s->n_groups);
        free(s->groups);
        s->groups = c.groups;
        s->n_groups = s->cap_groups = c.n_groups;
        c.groups = NULL;
        users_move(&s->users, &c.users);
        acls_move(&s->acls, &c.acls);
        s->catalog_index = c.index;
        s->applied_index = c.index;
        memset(s->digests, 0, sizeof s->digests);
        store__digest_all(s);
        s->max_ts = store__scan_max_ts(s);
        rv = store_checkpoint(s, errmsg);
    }
    store__catalog_free(&c);
    return rv;
}
