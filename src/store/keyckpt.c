/* The key index checkpoint of a topic (DATA/topics/NAME/keys.ckpt): its
 * format, loading it at open (or saying the log must be read instead), and
 * writing it (by the loop, the snapshot thread or the checkpoint thread). */
#include "store/store_int.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/codec.h"
#include "lib/err.h"
#include "lib/fs.h"
#include "lib/logger.h"
#include "lib/testbug.h"

/* The key index checkpoint of a topic: DATA/topics/NAME/keys.ckpt
 *   0  4  magic "TLYK"     4  4  version (2)     8  8  index
 *   16 8  next offset: the index counts the log's records below it
 *   24 .. keys_encode()    then 8  XXH3-64 of everything before
 * Version 1 (before 2026-11-22) had no next offset: it counted the batches
 * up to its index, found by walking back from the log's tail. */
#define STORE__KEYS_MAGIC "TLYK"
#define STORE__KEYS_VERSION 2

static void store__keys_path(const struct store *s, const struct store_topic *t, char *out,
                             size_t cap)
{
    snprintf(out, cap, "%s/topics/%s/keys.ckpt", s->dir, t->name);
}

/* The offset after the last batch of the log with a Raft index at or
 * below @index (the log's start if none): what a version 1 key checkpoint
 * at @index counted. */
static int store__offset_after_index(struct store_topic *t, uint64_t index, uint64_t *out,
                                     char *errmsg)
{
    uint64_t from = log_next_offset(t->log);
    while (from > log_start_offset(t->log)) {
        struct batch_header h;
        int rv = store__batch_before(t, from, &h, errmsg);
        if (rv != 0) {
            return rv;
        }
        if (h.raft_index <= index) {
            break;
        }
        from = h.base_offset;
    }
    *out = from;
    return 0;
}

/* Load the key checkpoint into t->keys; returns the offset it counts the
 * log up to, or the log's start (and an empty index) when it is missing or
 * unusable, which costs a full read of the log. */
uint64_t store__load_keys(const struct store *s, struct store_topic *t)
{
    char path[PATH_MAX + 320], why[ERR_MSG_SIZE];
    void *file = NULL;
    size_t n = 0;
    uint64_t next = log_start_offset(t->log);
    bool usable = false;
    int rv;
    store__keys_path(s, t, path, sizeof path);
    rv = fs_read_file(path, SIZE_MAX, &file, &n, why);
    if (rv == TALLY_NOTFOUND) {
        if (log_next_offset(t->log) > log_start_offset(t->log)) {
            TLOG_WARN("store", "topic %s: no key index checkpoint; rebuilding it from the log",
                      t->name);
        }
        return next;
    }
    if (rv == 0 && n >= 32) {
        const uint8_t *data = file;
        struct rd r;
        rd_init(&r, data, n - 8);
        const uint8_t *magic = rd_bytes(&r, 4);
        uint32_t version = rd_u32(&r);
        uint64_t at = rd_u64(&r);
        uint64_t counted = version >= 2 ? rd_u64(&r) : 0;
        if (codec_checksum(data, n - 8) == byte_get_u64(data + n - 8) && magic != NULL &&
            memcmp(magic, STORE__KEYS_MAGIC, 4) == 0 &&
            (version == 1 || version == STORE__KEYS_VERSION) && at >= t->created_index &&
            keys_decode(&t->keys, &r) == 0 && r.left == 0 &&
            (version == 2 || store__offset_after_index(t, at, &counted, why) == 0)) {
            /* (older than the topic: written for a deleted topic of the
             * same name by a snapshot still running; not ours) */
            next = counted;
            usable = true;
            if (testbug(TESTBUG_KEYS_LOST)) {
                keys_free(&t->keys);
                keys_init(&t->keys);
            }
        } else {
            keys_free(&t->keys);
            keys_init(&t->keys);
        }
    }
    if (!usable) {
        TLOG_WARN("store", "topic %s: key index checkpoint unusable; rebuilding it from the log",
                  t->name);
    }
    free(file);
    return next;
}

/* The Raft index of the key checkpoint at @path, 0 when there is none
 * (or it is not one): a checkpoint is put in place only over an older one.
 * Per file, since the snapshot thread, the checkpoint thread and the loop
 * each write the topics they hold in their own order. */
static uint64_t store__keys_index_in_place(const char *path)
{
    uint8_t head[16];
    size_t got = 0;
    char why[ERR_MSG_SIZE];
    int fd;
    if (fs_open(path, O_RDONLY, path, &fd, why) != 0) {
        return 0;
    }
    int rv = fs_pread(fd, head, sizeof head, 0, &got, path, why);
    fs_close(fd);
    if (rv != 0 || got != sizeof head || memcmp(head, STORE__KEYS_MAGIC, 4) != 0) {
        return 0;
    }
    return byte_get_u64(head + 8);
}

/* Write @k, which counts the log below @next_offset, as the key checkpoint
 * at @index into @dir ("tmp", "snap.tmp" or "ckpt.tmp" as the temporary
 * name: the loop's, the snapshot thread's and the checkpoint thread's).
 * *renamed (if not NULL) tells whether it was put in place or skipped for
 * a newer one. */
int store__write_keys_file(struct store *s, const char *dir, const struct keys *k,
                           uint64_t index, uint64_t next_offset, const char *tmp_suffix,
                           bool *renamed, char *errmsg)
{
    struct buf b;
    int rv;
    buf_init(&b);
    buf_put(&b, STORE__KEYS_MAGIC, 4);
    buf_put_u32(&b, STORE__KEYS_VERSION);
    buf_put_u64(&b, index);
    buf_put_u64(&b, next_offset);
    keys_encode(k, &b);
    if (buf_ok(&b)) {
        buf_put_u64(&b, codec_checksum(b.data, b.len));
    }
    if (!buf_ok(&b)) {
        buf_free(&b);
        return TALLY_NOMEM;
    }
    struct store__guard g = {&s->file_lock, NULL, store__keys_index_in_place, index, false};
    rv = store__write_file_as(dir, "keys.ckpt", tmp_suffix, &b, &g, errmsg);
    buf_free(&b);
    if (renamed != NULL) {
        *renamed = g.renamed;
    }
    return rv;
}

int store__write_keys(struct store *s, struct store_topic *t, uint64_t index,
                      char *errmsg)
{
    char dir[PATH_MAX + 300];
    uint64_t next = log_next_offset(t->log);
    bool renamed = false;
    int rv;
    if (t->keys_ckpt_next == next) {
        /* The file in place counts the same records (its Raft index is
         * older, which only its reader's created-index check uses): with
         * 10,000 topics, a checkpoint writes only those that changed. */
        return 0;
    }
    store__topic_dir(s, t->name, dir, sizeof dir);
    rv = store__write_keys_file(s, dir, &t->keys, index, next, "tmp", &renamed, errmsg);
    if (rv == 0 && renamed) {
        t->keys_ckpt_next = next;
    }
    return rv;
}
