/* Retention: the leader's decision (store_retention_due), the TOPIC_TRIM
 * command that applies it at the same point on every node, the deletion
 * of whole segments below the trim offset, and the hold a backup puts on
 * that deletion (store_hold_trim). */
#include "store/store_int.h"

#include <stdint.h>

#include "lib/err.h"
#include "lib/logger.h"

void store__trim_waits(struct store *s, struct store_topic *t)
{
    s->trims_waiting = true;
    t->trim_unsynced = true;
    t->trim_undeleted = true;
}

/* Delete the whole segments of @t below its trim offset (the rest of the
 * records below it are hidden by store_topic_start and fetch), and drop
 * from the history it lacks what is below it. */
int store__apply_trim(struct store_topic *t, char *errmsg)
{
    return store__apply_trim_to(t, NULL, errmsg);
}

int store__apply_trim_to(struct store_topic *t, struct log_removals *rm, char *errmsg)
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
    rv = log_trim_to(t->log, t->trim_offset, rm, &deleted, errmsg);
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

/* TOPIC_TRIM: the leader's retention decision, applied at the same point of
 * the log on every node. */
int store__trim_topic(struct store *s, uint64_t index, struct rd *body,
                      struct store_item_result *res, char *errmsg)
{
    char name[STORE_NAME_MAX];
    struct store_topic *t;
    uint64_t created, start, tombs;
    (void)errmsg;
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
    if (start > t->trim_offset) {
        TLOG_INFO("store", "topic %s: start offset %llu at index %llu (retention)", name,
                  (unsigned long long)start, (unsigned long long)index);
        t->trim_offset = start;
        store__trim_waits(s, t);
    }
    store__digest_touch(s, t);
    if (tombs > t->tombstone_limit) {
        t->tombstone_limit = tombs;
    }
    /* Nothing is deleted here, and nothing written: the start offset holds
     * at once (reads below it are refused), the segments go at the next
     * checkpoint that records it (store_checkpoint_wanted). A restart
     * before that replays this entry from the Raft log. */
    if (s->trim_held && t->trim_undeleted) {
        /* A backup copies this node's files from its cut: the segments
         * stay until it ends (store_hold_trim). */
        TLOG_INFO("store", "retention waits: a backup is copying this node's logs; the segments "
                           "of %s below offset %llu are deleted when it ends",
                  name, (unsigned long long)t->trim_offset);
    }
    return 0;
}

/* Delete what the last checkpoint recorded for @t, if anything waits (or
 * add it to @rm). */
static int store__trim_delete(struct store_topic *t, struct log_removals *rm, char *errmsg)
{
    if (!t->trim_undeleted || t->trim_unsynced || t->log == NULL) {
        return 0;
    }
    int rv = store__apply_trim_to(t, rm, errmsg);
    if (rv == 0) {
        t->trim_undeleted = false;
    }
    return rv;
}

/* Delete what checkpoints recorded; trims_waiting stays set while anything
 * is left (held by a backup, or a deletion failed). */
static int store__trims_delete(struct store *s, bool recorded, struct log_removals *rm,
                               char *errmsg)
{
    int rv = 0;
    bool left = false;
    if (!s->trims_waiting) {
        return 0;
    }
    for (struct store_topic *t = s->topics; t != NULL; t = t->next) {
        if (recorded) {
            t->trim_unsynced = false;
        }
        if (rv == 0 && !s->trim_held) {
            rv = store__trim_delete(t, rm, errmsg);
        }
        left |= t->trim_unsynced || t->trim_undeleted;
    }
    s->trims_waiting = left;
    return rv;
}

int store__trims_recorded(struct store *s, bool all, struct log_removals *rm, char *errmsg)
{
    return store__trims_delete(s, all, rm, errmsg);
}

int store_hold_trim(struct store *s, bool hold, char *errmsg)
{
    int rv = 0;
    bool was = s->trim_held;
    s->trim_held = hold;
    if (hold || !was) {
        return 0;
    }
    /* Released: delete what checkpoints recorded meanwhile (the trims not
     * recorded yet go after the next checkpoint). */
    rv = store__trims_delete(s, false, NULL, errmsg);
    return rv;
}

bool store_trim_held(const struct store *s)
{
    return s->trim_held;
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
        /* Only segments this log holds and retention would remove move the
         * start. A log that lacks history (a snapshot installed over a
         * damaged or short log, backfill pending) starts above the
         * cluster's start; its own start says nothing about the records
         * it does not hold, and proposing it deleted them on every node
         * (the fault suite: a new leader right after such an install). */
        if (t->missing_to > t->missing_from || start <= log_start_offset(t->log)) {
            start = t->trim_offset;
        }
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
