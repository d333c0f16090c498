/* The store's side of a backfill (the history a node lacks after
 * installing a snapshot, fetched from a peer by server/backfill.c): the
 * staging directory, picking the next range, moving the fetched segments
 * into the topic's directory, and reconciling at open what a crash left. */
#include "store/store_int.h"

#include <stdio.h>
#include <string.h>

#include "lib/err.h"
#include "lib/fs.h"
#include "lib/logger.h"

/* The staging directory of a backfill: DATA/topics/NAME/backfill. */
static void store__backfill_dir(const struct store *s, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/topics/%s/backfill", s->dir, name);
}

/* Remove a topic's staging directory (what is left of a backfill). */
static void store__backfill_drop_dir(struct store *s, const char *topic)
{
    char dir[PATH_MAX + 300], why[ERR_MSG_SIZE];
    store__backfill_dir(s, topic, dir, sizeof dir);
    if (fs_remove_tree(dir, why) != 0) {
        TLOG_WARN("store", "topic %s: cannot remove %s: %s", topic, dir, why);
    }
}

/* At open: a backfill that moved some or all of its segments into the log
 * before a crash shrank the missing range, whatever the catalog says; a
 * staging directory left behind is removed (the backfill starts over). */
void store__backfill_reconcile(struct store *s, struct store_topic *t)
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
    if ((rv = fs_remove_tree(dir, errmsg)) != 0) {
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
    int rv = fs_link(a, b, errmsg);
    if (rv != 0) {
        return rv == TALLY_NOTFOUND ? 0 : rv;
    }
    return fs_unlink(a, errmsg);
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
        rv = fs_sync_dir(tdir, errmsg);
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
