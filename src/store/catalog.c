/* The catalog: the whole non-log state of the node (topics, their producer
 * tables, members, group positions, cluster and directory ids) as one
 * checkpoint file, and the same bytes with the key indexes as the Raft
 * snapshot. Owns the format below, its encoding and decoding, the guarded
 * atomic replace of a checkpoint file (store__write_file_as) and
 * store_checkpoint.
 *
 * CATALOG FILE FORMAT, version 4 (DATA/catalog; also the snapshot body)
 *
 *   offset size field
 *   0      4    magic "TLYC"
 *   4      4    format version (4; versions 1 to 3 are read too: they lack
 *               every field marked with a later version below, which then
 *               read as 0 or empty)
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
 *          8    cluster_id (COMMAND_CLUSTER_ID; 0: none yet)
 *          4    n_dirs, then per member: u64 id, u64 directory_id
 *               (COMMAND_MEMBER_DIR)
 *   since version 3:
 *          4    n_users, then per user: its SCRAM credentials (COMMAND_USER;
 *               encoding in store/users.h)
 *          4    n_acls, then each ACL rule (COMMAND_ACL; store/acl.h)
 *   since version 4:
 *          4    n_share_tables, then per shared group position: u32 its
 *               index in the groups above, u16 n_shares (1..256), then
 *               n_shares x u64 share positions (docs/groups.md)
 *          8    XXH3-64 of every byte before it
 *
 * The file is replaced atomically: write catalog.tmp, fsync, rename over
 * catalog, fsync the directory. It is a checkpoint of the whole non-log
 * state at its index: it is written (after the topic logs are synced) at
 * every Raft snapshot, at clean shutdown and on member changes, trims and
 * backfills; not on topic creates and deletes, which Raft replays after
 * its index (docs/disk-format.md, "Topic directories at open"). On
 * open, the producer tables are brought forward from it by reading the
 * headers of the batches after its index at the tail of each log, so the
 * cost depends on the entries since the last checkpoint, not on the size
 * of the log. */
#include "store/store_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/codec.h"
#include "lib/err.h"
#include "lib/share.h"
#include "lib/fs.h"
#include "store/stream_read.h"

#define STORE__MAGIC "TLYC"
#define STORE__VERSION 4
#define STORE__VERSION_MIN 1 /* oldest catalog format this build reads */

/* The catalog up to its keys flag: everything but the key indexes. */
void store__encode_head(const struct store *s, uint64_t index, struct buf *b)
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
void store__encode_tail(const struct store *s, struct buf *b)
{
    buf_put_u64(b, s->cluster_id);
    buf_put_u32(b, s->n_dirs);
    for (unsigned i = 0; i < s->n_dirs; i++) {
        buf_put_u64(b, s->dirs[i].id);
        buf_put_u64(b, s->dirs[i].directory_id);
    }
    users_encode(&s->users, b); /* version 3 */
    acls_encode(&s->acls, b);
    uint32_t n_tables = 0; /* version 4 */
    for (unsigned i = 0; i < s->n_groups; i++) {
        n_tables += s->groups[i].n_shares > 0;
    }
    buf_put_u32(b, n_tables);
    for (unsigned i = 0; i < s->n_groups; i++) {
        if (s->groups[i].n_shares == 0) {
            continue;
        }
        buf_put_u32(b, i);
        buf_put_u16(b, s->groups[i].n_shares);
        for (unsigned k = 0; k < s->groups[i].n_shares; k++) {
            buf_put_u64(b, s->groups[i].shares[k]);
        }
    }
}

void store__encode_catalog(const struct store *s, uint64_t index, bool with_keys,
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

void store__catalog_free(struct store__catalog *c)
{
    users_free(&c->users);
    acls_free(&c->acls);
    store__groups_free_shares(c->groups, c->n_groups);
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

/* The version 4 share tables into @c's groups (a malformed one marks @r
 * bad). TALLY_NOMEM, or 0. */
static int store__decode_share_tables(struct rd *r, struct store__catalog *c)
{
    uint32_t n = rd_u32(r);
    for (uint32_t i = 0; i < n && rd_ok(r); i++) {
        uint32_t at = rd_u32(r);
        unsigned n_shares = rd_u16(r);
        if (!rd_ok(r) || at >= c->n_groups || c->groups[at].n_shares != 0 || n_shares == 0 ||
            n_shares > SHARE_MAX || r->left / 8 < n_shares) {
            r->bad = true;
            break;
        }
        struct store__group *g = &c->groups[at];
        if ((g->shares = malloc(n_shares * sizeof *g->shares)) == NULL) {
            return TALLY_NOMEM;
        }
        g->n_shares = (uint16_t)n_shares;
        for (unsigned k = 0; k < n_shares; k++) {
            g->shares[k] = rd_u64(r);
        }
    }
    return 0;
}

int store__decode_catalog(const void *p, size_t n, struct store__catalog *c,
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
    if (version >= 4 && rd_ok(&r) && store__decode_share_tables(&r, c) != 0) {
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
int store__write_file_as(const char *dir, const char *name, const char *tmp_suffix,
                         const struct buf *b, struct store__guard *g, char *errmsg)
{
    char path[PATH_MAX + 300], tmp[PATH_MAX + 320];
    bool skip;
    int rv;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.%s", path, tmp_suffix);
    if ((rv = fs_write_synced(tmp, b->data, b->len, errmsg)) != 0) {
        return rv;
    }
    pthread_mutex_lock(g->lock);
    skip = g->index < (g->written != NULL ? *g->written : g->in_place(path));
    if (!skip && (rv = fs_rename(tmp, path, errmsg)) == 0) {
        if (g->written != NULL) {
            *g->written = g->index;
        }
        g->renamed = true;
    }
    pthread_mutex_unlock(g->lock);
    if (skip) {
        char why[ERR_MSG_SIZE];
        (void)fs_unlink(tmp, why); /* a newer one is in place */
        return 0;
    }
    return rv != 0 ? rv : fs_sync_dir(dir, errmsg);
}

int store__write_catalog(struct store *s, char *errmsg)
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
    struct store__guard g = {&s->file_lock, &s->catalog_written, NULL, s->catalog_index, false};
    rv = buf_ok(&b) ? store__write_file_as(s->dir, "catalog", "tmp", &b, &g, errmsg)
                    : TALLY_NOMEM;
    buf_free(&b);
    return rv;
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
        /* streams: the stream index checkpoint goes just before keys.ckpt */
        char sdir[PATH_MAX + 300];
        store__topic_dir(s, t->name, sdir, sizeof sdir);
        if ((rv = stream_ckpt_write(sdir, &t->streams, s->catalog_index,
                                    log_next_offset(t->log), "tmp", errmsg)) != 0) {
            err_wrap(errmsg, "checkpoint stream index of %s", t->name);
            return rv;
        }
        t->streams_counted = log_next_offset(t->log);
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
    store__sweep_trash(s);
    /* The catalog records every trim offset, and the key indexes count
     * every record below them: their segments may go. */
    return store__trims_recorded(s, true, NULL, errmsg);
}
