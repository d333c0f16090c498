/* The node's state: topic catalog, member table, one log per topic; applies
 * committed commands deterministically (store.h says what the layer
 * promises). This file opens and closes the state directory and answers
 * the plain getters; each other concern has its own file:
 *   catalog.c    catalog format, checkpoint file replace, store_checkpoint
 *   topic.c      a topic's log and the tables brought forward from checkpoints
 *   producer.c   idempotent producer table
 *   keys.c       key index; keyckpt.c its checkpoint file
 *   apply.c      store_apply and the commands it applies
 *   groups.c     consumer group positions
 *   retention.c  TOPIC_TRIM, segment deletion, the backup's hold
 *   digest.c     catalog digest and CATALOG_CHECK
 *   snap.c       snapshot freeze/build/restore, adopting a restored state
 *   compaction.c keyed compaction of a topic's log
 *   backfill.c   the history a node lacks, moved in from a staging log
 * What they share is in store_int.h. */
#include "store/store_int.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/fs.h"
#include "lib/logger.h"

/* "NAME.deleted-INDEX": the directory of a deleted topic (apply.c). */
static bool store__trash_name(const char *entry, char *name, size_t cap, uint64_t *index)
{
    const char *mark = strstr(entry, ".deleted-");
    char *end;
    if (mark == NULL || (size_t)(mark - entry) >= cap) {
        return false;
    }
    memcpy(name, entry, (size_t)(mark - entry));
    name[mark - entry] = '\0';
    *index = strtoull(mark + strlen(".deleted-"), &end, 10);
    return *end == '\0';
}

/* Bring DATA/topics in line with the catalog just loaded (index @c_index,
 * its topics already in s->topics) before any log is opened. Topic
 * creates and deletes do not write the catalog: Raft replays every entry
 * after its index at start (Raft keeps every entry after its last
 * snapshot, and each snapshot writes the catalog), so the directory may be
 * ahead of the catalog:
 *  - NAME not in the catalog: created after it. Kept if its topic.id
 *    names a create after the catalog's index: the replayed create opens
 *    it again when it is that incarnation (apply.c), and the replayed
 *    appends skip what its log holds. Else removed.
 *  - NAME.deleted-D with D > @c_index and NAME in the catalog, the lowest
 *    such D: the incarnation the catalog names, deleted after it. Put
 *    back (the delete is replayed); a NAME directory in its way holds a
 *    later incarnation, created after the catalog, and is removed.
 *  - Any other NAME.deleted-D: a delete the catalog counts, or a later
 *    incarnation's. Removed.
 * docs/disk-format.md, "Topic directories at open". */
static int store__reconcile_dirs(struct store *s, uint64_t c_index, char *errmsg)
{
    char path[PATH_MAX + 16], child[PATH_MAX + 300], back[PATH_MAX + 300];
    char name[STORE_NAME_MAX];
    char **names;
    size_t n;
    uint64_t d;
    int rv;
    snprintf(path, sizeof path, "%s/topics", s->dir);
    if ((rv = fs_list(path, &names, &n, errmsg)) != 0) {
        return rv;
    }
    /* 1. Per catalog topic, the lowest delete index after the catalog
     *    (kept in its trim of nothing: a scratch field, reset below). */
    for (size_t i = 0; i < n; i++) {
        struct store_topic *t;
        if (store__trash_name(names[i], name, sizeof name, &d) && d > c_index &&
            (t = store_topic_find(s, name)) != NULL &&
            (t->restore_from == 0 || d < t->restore_from)) {
            t->restore_from = d;
        }
    }
    for (size_t i = 0; rv == 0 && i < n; i++) {
        struct store_topic *t;
        snprintf(child, sizeof child, "%s/%s", path, names[i]);
        if (store__trash_name(names[i], name, sizeof name, &d)) {
            t = store_topic_find(s, name);
            if (t == NULL || t->restore_from != d) {
                rv = fs_remove_tree(child, errmsg);
            }
        } else if (store_topic_find(s, names[i]) == NULL &&
                   store__topic_id_read(s, names[i]) <= c_index) {
            TLOG_INFO("store", "topic %s: not in the catalog (index %llu) and not created "
                      "after it: removed", names[i], (unsigned long long)c_index);
            rv = fs_remove_tree(child, errmsg);
        }
    }
    for (struct store_topic *t = s->topics; rv == 0 && t != NULL; t = t->next) {
        if (t->restore_from == 0) {
            continue;
        }
        store__topic_dir(s, t->name, back, sizeof back);
        snprintf(child, sizeof child, "%s.deleted-%llu", back,
                 (unsigned long long)t->restore_from);
        TLOG_INFO("store", "topic %s was deleted at index %llu, after the catalog (index "
                  "%llu): its directory is put back and the delete replayed", t->name,
                  (unsigned long long)t->restore_from, (unsigned long long)c_index);
        t->restore_from = 0;
        if ((rv = fs_remove_tree(back, errmsg)) == 0 || rv == TALLY_NOTFOUND) {
            rv = fs_rename(child, back, errmsg);
        }
    }
    fs_list_free(names, n);
    if (rv == 0) {
        rv = fs_sync_dir(path, errmsg);
    }
    return rv;
}

/* Deleted topics' directories wait (NAME.deleted-INDEX) until a catalog
 * at or past their delete is in place, so that a restart from an older
 * catalog can put them back (store__reconcile_dirs). Remove those whose
 * time has come. */
void store__sweep_trash(struct store *s)
{
    uint64_t written;
    unsigned k = 0;
    pthread_mutex_lock(&s->file_lock);
    written = s->catalog_written;
    pthread_mutex_unlock(&s->file_lock);
    for (unsigned i = 0; i < s->n_trash; i++) {
        char why[ERR_MSG_SIZE];
        if (s->trash[i].index > written) {
            s->trash[k++] = s->trash[i];
            continue;
        }
        /* A directory that cannot be removed now (a compaction worker
         * still writing into it) is tried again at the next sweep (after
         * that job ends, store_compact_finish), or at the next open. */
        if (fs_remove_tree(s->trash[i].path, why) != 0) {
            TLOG_WARN("store", "%s deleted; its files are removed later: %s", s->trash[i].path,
                      why);
            s->trash[k++] = s->trash[i];
            continue;
        }
        free(s->trash[i].path);
    }
    s->n_trash = k;
}

/* Highest record timestamp in any topic's log. */
int64_t store__scan_max_ts(const struct store *s)
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
    void *data = NULL;
    size_t len = 0;
    int rv;
    if (s == NULL) {
        return TALLY_NOMEM;
    }
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    s->defaults = *defaults;
    pthread_mutex_init(&s->file_lock, NULL);
    buf_init(&s->scratch);
    s->max_ts = INT64_MIN;
    snprintf(path, sizeof path, "%s/topics", dir);
    if ((rv = fs_mkdir(dir, NULL, errmsg)) != 0 || (rv = fs_mkdir(path, NULL, errmsg)) != 0) {
        free(s);
        return rv;
    }
    snprintf(path, sizeof path, "%s/catalog", dir);
    rv = fs_read_file(path, SIZE_MAX, &data, &len, errmsg);
    if (rv == 0) {
        struct store__catalog c;
        rv = store__decode_catalog(data, len, &c, errmsg);
        free(data);
        if (rv != 0) {
            err_wrap(errmsg, "load catalog %s", path);
            free(s);
            return rv;
        }
        s->catalog_index = c.index;
        s->catalog_written = c.index;
        s->applied_index = c.index;
        while (c.topics != NULL && rv == 0) {
            struct store_topic *t = c.topics;
            c.topics = t->next;
            if ((rv = store__topics_add(s, t)) != 0) {
                store__topic_free(t);
            }
        }
        if (rv == 0) {
            rv = store__reconcile_dirs(s, c.index, errmsg);
        }
        if (rv != 0) {
            store__catalog_free(&c);
            store_close(s);
            return rv;
        }
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
    } else if (rv != TALLY_NOTFOUND || (rv = store__reconcile_dirs(s, 0, errmsg)) != 0) {
        free(s);
        return rv;
    }
    *out = s;
    return 0;
}

void store_close(struct store *s)
{
    store__topics_clear(s);
    for (unsigned i = 0; i < s->n_trash; i++) {
        free(s->trash[i].path);
    }
    free(s->trash);
    store__groups_free_shares(s->groups, s->n_groups);
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

void store_set_fd_reserve(struct store *s, unsigned reserve)
{
    s->fd_reserve = reserve;
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

uint64_t store_applied(struct store *s)
{
    return s->applied_index;
}

const char *store_divergence(struct store *s)
{
    return s->divergence[0] != '\0' ? s->divergence : NULL;
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

int64_t store_max_timestamp(struct store *s)
{
    return s->max_ts;
}
