/* Consumer group positions: one committed offset per group and topic,
 * and a shared group's share positions (docs/groups.md), kept in memory
 * and in the catalog checkpoint. */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/share.h"
#include "store/command.h"

void store__groups_free_shares(struct store__group *groups, unsigned n)
{
    for (unsigned i = 0; groups != NULL && i < n; i++) {
        free(groups[i].shares);
        groups[i].shares = NULL;
        groups[i].n_shares = 0;
    }
}

/* Drop the positions of @group (every group if NULL) on @topic (every
 * topic if NULL); returns how many. Order of the others is kept. */
unsigned store__groups_drop(struct store *s, const char *group, const char *topic)
{
    unsigned i, j = 0;
    for (i = 0; i < s->n_groups; i++) {
        if ((group == NULL || strcmp(s->groups[i].group, group) == 0) &&
            (topic == NULL || strcmp(s->groups[i].topic, topic) == 0)) {
            free(s->groups[i].shares);
            continue;
        }
        s->groups[j++] = s->groups[i];
    }
    unsigned dropped = s->n_groups - j;
    s->n_groups = j;
    return dropped;
}

bool store_group_shares(struct store *s, const char *group, const char *topic,
                        unsigned *n_shares, const uint64_t **positions)
{
    *n_shares = 0;
    *positions = NULL;
    for (unsigned i = 0; i < s->n_groups; i++) {
        if (strcmp(s->groups[i].group, group) == 0 && strcmp(s->groups[i].topic, topic) == 0) {
            *n_shares = s->groups[i].n_shares;
            *positions = s->groups[i].shares;
            return true;
        }
    }
    return false;
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

/* Append @g (its shares taken over) to the positions. */
static int store__group_add(struct store *s, const struct store__group *g)
{
    if (s->n_groups == s->cap_groups) {
        unsigned cap = s->cap_groups ? s->cap_groups * 2 : 16;
        struct store__group *ng = realloc(s->groups, cap * sizeof *ng);
        if (ng == NULL) {
            return TALLY_NOMEM;
        }
        s->groups = ng;
        s->cap_groups = cap;
    }
    s->groups[s->n_groups++] = *g;
    return 0;
}

/* Is @offset past the end of @g's topic @t? Then @res says so: a position
 * there would skip records not yet written. */
static bool store__past_end(const struct store_topic *t, const struct store__group *g,
                            uint64_t offset, struct store_item_result *res)
{
    if (t->log == NULL || offset <= log_next_offset(t->log)) {
        return false;
    }
    store__result(res, TALLY_OUT_OF_RANGE,
                  "group %s: offset %llu is past the end of %s (next offset %llu)", g->group,
                  (unsigned long long)offset, g->topic,
                  (unsigned long long)log_next_offset(t->log));
    return true;
}

/* The share positions of a GROUP_SHARES (store/command.h) for @g on topic
 * @t; @have is the group's entry, NULL if it has none. Checks every item
 * before it changes anything. */
static int store__share_commit(struct store *s, struct store_topic *t, struct store__group *have,
                               struct store__group *g, struct rd *body,
                               struct store_item_result *res)
{
    unsigned n_shares = rd_u16(body), n_items = rd_u16(body);
    struct command_share_pos items[SHARE_MAX];
    if (!rd_ok(body) || n_shares == 0 || n_shares > SHARE_MAX || n_items == 0 ||
        n_items > n_shares) {
        store__result(res, TALLY_INVAL, "invalid share positions");
        return 0;
    }
    for (unsigned k = 0; k < n_items; k++) {
        items[k].share = rd_u16(body);
        items[k].offset = rd_u64(body);
        if (!rd_ok(body) || items[k].share >= n_shares) {
            store__result(res, TALLY_INVAL, "invalid share positions");
            return 0;
        }
        if (store__past_end(t, g, items[k].offset, res)) {
            return 0;
        }
    }
    if (have == NULL || have->n_shares != n_shares) {
        /* Every share starts at the group's position: at-least-once, as
         * a share count change reads again what a share may have done. */
        uint64_t base = have != NULL ? have->offset : store_topic_start(t);
        uint64_t *pos = malloc(n_shares * sizeof *pos);
        if (pos == NULL) {
            return TALLY_NOMEM;
        }
        for (unsigned k = 0; k < n_shares; k++) {
            pos[k] = base;
        }
        if (have == NULL) {
            g->offset = base;
            g->n_shares = (uint16_t)n_shares;
            g->shares = pos;
            int rv = store__group_add(s, g);
            if (rv != 0) {
                free(pos);
                return rv;
            }
            have = &s->groups[s->n_groups - 1];
        } else {
            free(have->shares);
            have->shares = pos;
            have->n_shares = (uint16_t)n_shares;
        }
    }
    for (unsigned k = 0; k < n_items; k++) {
        if (items[k].offset > have->shares[items[k].share]) {
            have->shares[items[k].share] = items[k].offset;
        }
    }
    uint64_t low = have->shares[0];
    for (unsigned k = 1; k < n_shares; k++) {
        low = have->shares[k] < low ? have->shares[k] : low;
    }
    have->offset = low;
    return 0;
}

/* The group position @g names (NULL if it has none). */
static struct store__group *store__group_find(struct store *s, const struct store__group *g)
{
    for (unsigned i = 0; i < s->n_groups; i++) {
        if (strcmp(s->groups[i].group, g->group) == 0 && strcmp(s->groups[i].topic, g->topic) == 0) {
            return &s->groups[i];
        }
    }
    return NULL;
}

/* The topic of a commit of @g bound to @topic_id (UINT64_MAX: the topic as
 * it is), or NULL with @res set. */
static struct store_topic *store__group_topic(struct store *s, const struct store__group *g,
                                              uint64_t topic_id, struct store_item_result *res)
{
    struct store_topic *t;
    if (g->group[0] == '\0') {
        store__result(res, TALLY_INVAL, "invalid group commit");
        return NULL;
    }
    if ((t = store_topic_find(s, g->topic)) == NULL) {
        store__result(res, TALLY_NOTFOUND, "topic %s not found", g->topic);
        return NULL;
    }
    if (topic_id != UINT64_MAX && topic_id != t->created_index) {
        store__result(res, TALLY_NOTFOUND,
                      "topic %s was deleted and created again since group %s read it; "
                      "the group starts afresh on the new topic",
                      g->topic, g->group);
        return NULL;
    }
    return t;
}

/* A group position lives in memory and in the catalog checkpoint; after a
 * restart the commits since the checkpoint are re-applied from Raft's log,
 * like every catalog command. A position belongs to one incarnation of its
 * topic (its topic id, the Raft index of the TOPIC_CREATE): deleting the
 * topic deletes its positions, and a commit that names another incarnation
 * (made by a consumer that read the deleted topic) is refused, so a
 * recreated topic starts every group afresh. A position past the topic's
 * end is refused too: it would skip records not yet written. */
int store__group_commit(struct store *s, struct rd *body, struct store_item_result *res)
{
    struct store__group g;
    struct store_topic *t;
    uint64_t topic_id = UINT64_MAX; /* entries without it: the topic as it is */
    memset(&g, 0, sizeof g);
    rd_str(body, g.group, sizeof g.group);
    rd_str(body, g.topic, sizeof g.topic);
    g.offset = rd_u64(body);
    if (rd_ok(body) && body->left >= 8) {
        topic_id = rd_u64(body);
    }
    if (!rd_ok(body)) {
        store__result(res, TALLY_INVAL, "invalid group commit");
        return 0;
    }
    if ((t = store__group_topic(s, &g, topic_id, res)) == NULL) {
        return 0;
    }
    if (store__past_end(t, &g, g.offset, res)) {
        return 0;
    }
    struct store__group *have = store__group_find(s, &g);
    if (have != NULL) {
        have->offset = g.offset;
        free(have->shares); /* a plain commit is every share's position */
        have->shares = NULL;
        have->n_shares = 0;
        return 0;
    }
    return store__group_add(s, &g);
}

int store__group_shares(struct store *s, struct rd *body, struct store_item_result *res)
{
    struct store__group g;
    struct store_topic *t;
    memset(&g, 0, sizeof g);
    rd_str(body, g.group, sizeof g.group);
    rd_str(body, g.topic, sizeof g.topic);
    uint64_t topic_id = rd_u64(body);
    if (!rd_ok(body)) {
        store__result(res, TALLY_INVAL, "invalid group commit");
        return 0;
    }
    if ((t = store__group_topic(s, &g, topic_id, res)) == NULL) {
        return 0;
    }
    return store__share_commit(s, t, store__group_find(s, &g), &g, body, res);
}

void store__group_delete(struct store *s, struct rd *body, struct store_item_result *res)
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
