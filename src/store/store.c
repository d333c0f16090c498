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

/* Remove leftovers of deletes that crashed half-way: "NAME.deleted-INDEX". */
int store__sweep_deleted(struct store *s, char *errmsg)
{
    char path[PATH_MAX + 16], child[PATH_MAX + 300];
    char **names;
    size_t n;
    int rv;
    snprintf(path, sizeof path, "%s/topics", s->dir);
    if ((rv = fs_list(path, &names, &n, errmsg)) != 0) {
        return rv;
    }
    for (size_t i = 0; rv == 0 && i < n; i++) {
        if (strstr(names[i], ".deleted-") != NULL) {
            snprintf(child, sizeof child, "%s/%s", path, names[i]);
            rv = fs_remove_tree(child, errmsg);
        }
    }
    fs_list_free(names, n);
    return rv;
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
    if ((rv = fs_mkdir(dir, NULL, errmsg)) != 0 || (rv = fs_mkdir(path, NULL, errmsg)) != 0 ||
        (rv = store__sweep_deleted(s, errmsg)) != 0) {
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
    } else if (rv != TALLY_NOTFOUND) {
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
