/* Applying one committed command (store_apply): the dispatch on its type,
 * and the commands that change topics, members, the cluster id and member
 * directories, and APPEND with its replay check, producer check and
 * conditions. Deterministic: every node applies the same entry to the same
 * state and gets the same result. */
#include "store/store_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/fs.h"
#include "lib/logger.h"
#include "lib/testbug.h"

void store__result(struct store_item_result *r, int code, const char *fmt, ...)
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
    /* A directory left from before a restart (store__reconcile_dirs) is
     * kept when it holds this very incarnation (the replay skips what its
     * log holds); anything else there is stale. */
    if (store__topic_id_read(s, t->name) != index) {
        char path[PATH_MAX + 300];
        store__topic_dir(s, t->name, path, sizeof path);
        if ((rv = fs_remove_tree(path, errmsg)) != 0) {
            free(t);
            return rv;
        }
    }
    if ((rv = store__topics_add(s, t)) != 0) {
        free(t);
        return rv;
    }
    if ((rv = store__open_topic(s, t, 0, 0, errmsg)) != 0) {
        return rv;
    }
    if (store__topic_id_write(s, t, errmsg) != 0) {
        TLOG_WARN("store", "topic %s: %s (a restart before the next checkpoint rebuilds it "
                  "from the Raft log)", t->name, errmsg);
        errmsg[0] = '\0';
    }
    TLOG_INFO("store", "created topic %s at index %llu", t->name, (unsigned long long)index);
    return 0;
}

/* TOPIC_CONFIG: the settings it names, for the incarnation it names.
 * Retention and compaction read them on their next pass. */
static void store__configure_topic(struct store *s, uint64_t index, struct rd *body,
                                   struct store_item_result *res)
{
    char name[STORE_NAME_MAX];
    struct command_topic_config c;
    rd_str(body, name, sizeof name);
    uint64_t created = rd_u64(body);
    unsigned set = rd_u8(body);
    c.policy = rd_u8(body);
    c.retention_ms = rd_i64(body);
    c.retention_bytes = rd_i64(body);
    if (!rd_ok(body) || set == 0 || (set & ~7u) != 0 || c.policy > 3 || c.retention_ms < -1 ||
        c.retention_bytes < -1) {
        store__result(res, TALLY_INVAL, "invalid topic settings");
        return;
    }
    struct store_topic *t = store_topic_find(s, name);
    if (t == NULL || (created != 0 && t->created_index != created)) {
        store__result(res, TALLY_NOTFOUND, "topic %s not found", name);
        return;
    }
    if (set & COMMAND_CONFIG_POLICY) {
        t->config.policy = c.policy;
    }
    if (set & COMMAND_CONFIG_RETENTION_MS) {
        t->config.retention_ms = c.retention_ms;
    }
    if (set & COMMAND_CONFIG_RETENTION_BYTES) {
        t->config.retention_bytes = c.retention_bytes;
    }
    store__digest_touch(s, t);
    TLOG_INFO("store", "topic %s: settings changed at index %llu: policy %u, retention_ms %lld, "
                       "retention_bytes %lld", name, (unsigned long long)index,
              (unsigned)t->config.policy, (long long)t->config.retention_ms,
              (long long)t->config.retention_bytes);
}

/* Take @t out of the state at @index. Its directory is renamed to
 * NAME.deleted-INDEX and removed only once a catalog at or past @index is
 * in place (store__sweep_trash): the catalog is not written here (that
 * would cost every topic's fsync on the loop, issue 24), so a restart
 * before then starts from a catalog that still names the topic, puts the
 * directory back and replays the delete (store__reconcile_dirs). */
int store__unlink_topic(struct store *s, struct store_topic *t, uint64_t index,
                        char *errmsg)
{
    char path[PATH_MAX + 300], trash[PATH_MAX + 340];
    int rv;
    store__topics_remove(s, t);
    store__groups_drop(s, NULL, t->name);
    store__topic_dir(s, t->name, path, sizeof path);
    snprintf(trash, sizeof trash, "%s.deleted-%llu", path, (unsigned long long)index);
    store__topic_free(t);
    if (s->n_trash == s->cap_trash) {
        unsigned cap = s->cap_trash == 0 ? 8 : 2 * s->cap_trash;
        void *p = realloc(s->trash, cap * sizeof *s->trash);
        if (p == NULL) {
            return TALLY_NOMEM;
        }
        s->trash = p;
        s->cap_trash = cap;
    }
    if ((s->trash[s->n_trash].path = strdup(trash)) == NULL) {
        return TALLY_NOMEM;
    }
    rv = fs_rename(path, trash, errmsg);
    if (rv == TALLY_NOTFOUND) {
        free(s->trash[s->n_trash].path);
        return 0;
    }
    if (rv != 0) {
        free(s->trash[s->n_trash].path);
        return rv;
    }
    s->trash[s->n_trash++].index = index;
    store__sweep_trash(s);
    return 0;
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

static int store__member_change(struct store *s, uint8_t type, struct rd *body,
                                struct store_item_result *res)
{
    struct store_member m;
    unsigned i;
    memset(&m, 0, sizeof m);
    m.id = rd_u64(body);
    if (type == COMMAND_MEMBER_SET) {
        rd_str(body, m.client_addr, sizeof m.client_addr);
        rd_str(body, m.raft_addr, sizeof m.raft_addr);
    }
    if (!rd_ok(body) || m.id == 0) {
        store__result(res, TALLY_INVAL, "invalid member");
        return 0;
    }
    for (i = 0; i < s->n_members && s->members[i].id != m.id; i++) {
    }
    if (type == COMMAND_MEMBER_SET) {
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
    store__catalog_changed(s);
    return 0;
}

/* CLUSTER_ID: the first one applied stays. */
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
static int store__member_dir(struct store *s, struct rd *body, struct store_item_result *res)
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
    store__catalog_changed(s);
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
    if (c->expect_offset != COMMAND_NO_EXPECT && c->expect_offset != log_next_offset(t->log)) {
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
    bool in_log = index < t->tail_index ||
                  (index == t->tail_index && earlier_items < t->tail_count);
    if (index <= t->created_index || index <= t->floor_index ||
        (in_log && !testbug(TESTBUG_APPLY_TWICE))) {
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
    if (h.producer_id != 0 && (h.flags & BATCH_FLAG_RECORD_SEQ)) {
        if (store__record_seq_check(t, &h, res)) {
            return 0; /* a duplicate or a refusal: nothing written */
        }
    } else if (h.producer_id != 0) {
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
        (rv = store__index_keys(t, s->scratch.data, len, log_last_batch_pos(t->log),
                                errmsg)) != 0) {
        err_wrap(errmsg, "index keys of %s at index %llu", t->name, (unsigned long long)index);
        return rv;
    }
    store__digest_touch(s, t);
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
    store__catalog_changed(s);
    return 0;
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
    store__catalog_changed(s);
    return 0;
}

int store_apply(struct store *s, uint64_t index, const void *entry, size_t len,
                struct store_result **out, char *errmsg)
{
    struct store_result *res;
    struct rd body;
    uint8_t type;
    uint32_t n = 1;
    int rv = command_decode(entry, len, &type, &body, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (type == COMMAND_APPEND) {
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
    case COMMAND_APPEND:
        rv = store__append(s, index, &body, res, errmsg);
        break;
    case COMMAND_TOPIC_CREATE:
        if (index > s->catalog_index) {
            rv = store__create_topic(s, index, &body, &res->items[0], errmsg);
        }
        break;
    case COMMAND_TOPIC_DELETE:
        if (index > s->catalog_index) {
            rv = store__delete_topic(s, index, &body, &res->items[0], errmsg);
        }
        break;
    case COMMAND_MEMBER_SET:
    case COMMAND_MEMBER_DEL:
        if (index > s->catalog_index) {
            rv = store__member_change(s, type, &body, &res->items[0]);
        }
        break;
    case COMMAND_GROUP_COMMIT:
        if (index > s->catalog_index) {
            rv = store__group_commit(s, &body, &res->items[0]);
        }
        break;
    case COMMAND_GROUP_SHARES:
        if (index > s->catalog_index) {
            rv = store__group_shares(s, &body, &res->items[0]);
        }
        break;
    case COMMAND_TOPIC_TRIM:
        if (index > s->catalog_index) {
            rv = store__trim_topic(s, index, &body, &res->items[0], errmsg);
        }
        break;
    case COMMAND_GROUP_DELETE:
        if (index > s->catalog_index) {
            store__group_delete(s, &body, &res->items[0]);
        }
        break;
    case COMMAND_CLUSTER_ID:
        if (index > s->catalog_index) {
            rv = store__cluster_id(s, index, &body, &res->items[0], errmsg);
        }
        break;
    case COMMAND_MEMBER_DIR:
        if (index > s->catalog_index) {
            rv = store__member_dir(s, &body, &res->items[0]);
        }
        break;
    case COMMAND_CATALOG_CHECK:
        rv = store__catalog_check(s, index, &body, errmsg);
        break;
    case COMMAND_USER:
        if (index > s->catalog_index) {
            rv = store__user(s, index, &body, &res->items[0], errmsg);
        }
        break;
    case COMMAND_ACL:
        if (index > s->catalog_index) {
            rv = store__acl(s, index, &body, &res->items[0], errmsg);
        }
        break;
    case COMMAND_TOPIC_CONFIG:
        if (index > s->catalog_index) {
            store__configure_topic(s, index, &body, &res->items[0]);
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
