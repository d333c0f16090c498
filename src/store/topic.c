/* One topic of the store: its directory and log settings, opening its log
 * and bringing its tables (producer table, key index) forward from their
 * checkpoints by reading the batches after them, finding the Raft index of
 * its tail (replay safety, store.h), and creating one for an import. */
#include "store/store_int.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/fs.h"
#include "lib/logger.h"
#include "lib/name.h"
#include "lib/testbug.h"
#include "store/stream_read.h"

uint64_t store_topic_start(const struct store_topic *t)
{
    uint64_t start = t->missing_to > t->missing_from ? t->missing_from : log_start_offset(t->log);
    return start > t->trim_offset ? start : t->trim_offset;
}

bool store_topic_name_valid(const char *name)
{
    return name_topic_check(name, NULL, 0);
}

void store__topic_dir(const struct store *s, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/topics/%s", s->dir, name);
}

void store__log_config(const struct store *s, const struct command_topic_config *c,
                       struct log_config *lc)
{
    *lc = s->defaults;
    if (c->segment_bytes > 0) {
        lc->segment_bytes = (uint64_t)c->segment_bytes;
    }
    lc->retention_ms = c->retention_ms;
    lc->retention_bytes = c->retention_bytes;
}

/* DATA/topics/NAME/topic.id names the incarnation a topic directory
 * holds: "tally-topic 1 CREATED_INDEX\n" (format version 1, the Raft index
 * of its TOPIC_CREATE). Written at create, not fsynced: it only lets a
 * restart keep the directory of a topic created after the catalog when
 * Raft replays that same create (store__reconcile_dirs, store__create
 * in apply.c); a missing or unreadable one reads as 0, and the directory
 * is rebuilt from the Raft log instead. */
#define STORE__TOPIC_ID_FILE "topic.id"

uint64_t store__topic_id_read(const struct store *s, const char *name)
{
    char path[PATH_MAX + 320], text[64], why[ERR_MSG_SIZE];
    void *data = NULL;
    size_t len = 0;
    unsigned version = 0;
    unsigned long long index = 0;
    snprintf(path, sizeof path, "%s/topics/%s/%s", s->dir, name, STORE__TOPIC_ID_FILE);
    if (fs_read_file(path, sizeof text - 1, &data, &len, why) != 0) {
        return 0;
    }
    memcpy(text, data, len);
    text[len] = '\0';
    free(data);
    if (sscanf(text, "tally-topic %u %llu\n", &version, &index) != 2 || version != 1) {
        return 0;
    }
    return index;
}

int store__topic_id_write(const struct store *s, const struct store_topic *t, char *errmsg)
{
    char path[PATH_MAX + 320], text[64];
    int fd = -1, n, rv;
    snprintf(path, sizeof path, "%s/topics/%s/%s", s->dir, t->name, STORE__TOPIC_ID_FILE);
    n = snprintf(text, sizeof text, "tally-topic 1 %llu\n", (unsigned long long)t->created_index);
    rv = fs_open(path, O_WRONLY | O_CREAT | O_TRUNC, STORE__TOPIC_ID_FILE, &fd, errmsg);
    if (rv == 0) {
        rv = fs_pwrite(fd, text, (size_t)n, 0, STORE__TOPIC_ID_FILE, errmsg);
        fs_close(fd);
    }
    return rv;
}

/* Free a topic and what it owns (closing its log if open). */
void store__topic_free(struct store_topic *t)
{
    if (t->log != NULL) {
        log_close(t->log);
    }
    free(t->producers);
    keys_free(&t->keys);
    streams_free(&t->streams); /* streams */
    free(t);
}

/* Move the producer table and key index of the snapshot's topic @from into
 * @t, replacing its own (each a no-op if @t already holds it: a topic
 * created from the snapshot is a copy of @from). The two are checked
 * separately: a topic may have keys and no producer table. */
void store__take_tables(struct store_topic *t, struct store_topic *from)
{
    if (t->producers != from->producers) {
        free(t->producers);
        t->producers = from->producers;
        t->n_producers = from->n_producers;
        t->cap_producers = from->cap_producers;
    }
    if (t->keys.chunks != from->keys.chunks) {
        keys_free(&t->keys);
        t->keys = from->keys;
    }
    t->keys_ckpt_next = UINT64_MAX; /* the file in place no longer matches */
    from->producers = NULL;
    keys_init(&from->keys);
}

/* Header of the batch that holds offset @before - 1 (the one ending at
 * @before), read from the log. Used to walk a log back from its tail. */
int store__batch_before(struct store_topic *t, uint64_t before, struct batch_header *h,
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

/* Find the Raft index of the log's last batch and how many batches at the
 * tail came from that same entry, walking back batch by batch. */
int store__load_tail(struct store_topic *t, char *errmsg)
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

/* Keyed records decoded ahead of their index updates (store__index_keys). */
#define STORE__AHEAD 16

int store__index_keys(struct store_topic *t, const uint8_t *batch, size_t len,
                      uint64_t batch_pos, char *errmsg)
{
    struct batch_iter it;
    struct batch_record r;
    struct {
        uint64_t h1, h2, offset;
        uint32_t at;
    } q[STORE__AHEAD];
    int rv = batch_iter_init(&it, batch, len, errmsg);
    /* streams: each record's stream version is the key's count, and where
     * it lies in the segment is a hint for reads (which know the batch is
     * verified when its segment was written by this process: the log's
     * checked segments); a place in a compressed batch is no use (a read
     * takes it whole) */
    uint64_t pos = (it.h.flags & BATCH_FLAG_LZ4) ? UINT64_MAX : batch_pos;
    const uint8_t *records = it.rd.p;
    bool more = rv == 0;
    while (more) {
        /* The keys of up to STORE__AHEAD records are hashed and their
         * slots in both tables asked for first: with many keys each slot
         * is a cache miss, and these overlap instead of coming one by one. */
        unsigned n = 0;
        while (n < STORE__AHEAD) {
            uint32_t at = (uint32_t)(it.rd.p - records);
            if ((rv = batch_iter_next(&it, &r, errmsg)) != 0) {
                more = false;
                break;
            }
            if (r.key != NULL) {
                keys_hash(r.key, r.key_len, &q[n].h1, &q[n].h2); /* (once for both) */
                keys_prefetch(&t->keys, q[n].h1);
                streams_prefetch(&t->streams, q[n].h1);
                q[n].offset = r.offset;
                q[n].at = at;
                n++;
            }
        }
        for (unsigned i = 0; i < n; i++) {
            uint64_t version;
            int err = keys_bump_hash(&t->keys, q[i].h1, q[i].h2, q[i].offset, &version);
            if (err == 0) {
                err = streams_add_hash_at(&t->streams, q[i].h1, q[i].h2, q[i].offset, version,
                                          pos, q[i].at);
            }
            if (err != 0) {
                rv = err;
                more = false;
                break;
            }
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
int store__rebuild(struct store_topic *t, uint64_t prod_from, uint64_t keys_from,
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
        uint64_t after, file_pos = 0;
        rv = log_read_copy_at(t->log, from, 4u << 20, &data, &len, &after, &file_pos, errmsg);
        while (rv == 0 && pos < len) {
            struct batch_header h;
            rv = batch_decode_header((uint8_t *)data + pos, len - pos, &h, errmsg);
            if (rv != 0 || h.batch_len > len - pos) {
                rv = rv != 0 ? rv : TALLY_CORRUPT;
                break;
            }
            if (h.producer_id != 0 && h.base_offset >= prod_from &&
                !testbug(TESTBUG_PRODUCER_REPLAY)) {
                rv = store__producer_record(t, &h, h.base_offset);
            }
            if (rv == 0 && (h.flags & BATCH_FLAG_KEYED) && h.base_offset >= keys_from) {
                rv = store__index_keys(t, (uint8_t *)data + pos, h.batch_len, file_pos + pos,
                                       errmsg);
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
int store__open_topic(struct store *s, struct store_topic *t, uint64_t start_offset,
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
        /* The file in place, if any, counts up to keys_from (a new log has
         * none, which reads as an empty index at its start); a bad one,
         * or none for a log opened at an offset (its keys come from a
         * snapshot or a backup), is written at the next checkpoint. */
        t->keys_ckpt_next = keys_bad || start_offset != 0 ? UINT64_MAX : keys_from;
        /* streams: the stream index, up to where the key index counts */
        rv = stream_topic_load(path, t, keys_from, errmsg);
        if (rv == 0) {
            rv = store__rebuild(t, prod_from, keys_from, errmsg);
        }
        /* Retention and compaction may touch what the checkpoints count. */
        t->compact_limit = t->damaged ? start : prod_from < keys_from ? prod_from : keys_from;
    }
    if (rv != 0) {
        err_wrap(errmsg, "topic %s", t->name);
    } else {
        store__digest_touch(s, t);
        store__note_replay(s, t);
    }
    return rv;
}

int store_import_topic(struct store *s, const char *name, const struct command_topic_config *config,
                       uint64_t start_offset, struct store_topic **out, char *errmsg)
{
    struct store_topic *t;
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
    if (store__topics_add(s, t) != 0) {
        free(t);
        return TALLY_NOMEM;
    }
    *out = t;
    return store__open_topic(s, t, start_offset, start_offset, errmsg);
}
