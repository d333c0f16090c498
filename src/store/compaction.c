/* Keyed compaction of the topics whose policy includes "compact": which
 * topic is next (round robin), and the glue around the log's
 * log_compact_prepare (loop), run (worker thread) and commit (loop). */
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

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
    p.io_rate = cfg->io_rate;
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
        store__sweep_trash(s);
        return 0;
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
