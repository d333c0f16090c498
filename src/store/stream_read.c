/* A topic's stream index against its log: checkpoint file, rebuild,
 * reads (stream_read.h has the file format). */
#include "store/stream_read.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/codec.h"
#include "lib/err.h"
#include "lib/fs.h"
#include "lib/logger.h"

/* Largest streams.ckpt read (about 10 bytes per indexed record at worst). */
#define STREAM__CKPT_MAX ((size_t)1 << 34)

/* pread of exactly @n bytes at @pos of @fd; false otherwise. */
static bool stream__pread(int fd, void *buf, size_t n, uint64_t pos)
{
    char why[ERR_MSG_SIZE];
    size_t got = 0;
    return fs_pread(fd, buf, n, pos, &got, "segment", why) == 0 && got == n;
}

int stream_ckpt_write(const char *dir, const struct streams *st, uint64_t index,
                      uint64_t next_offset, const char *tmp_suffix, char *errmsg)
{
    char path[PATH_MAX + 320], tmp[PATH_MAX + 340];
    struct buf b;
    int rv;
    buf_init(&b);
    buf_put(&b, STREAM_CKPT_MAGIC, 4);
    buf_put_u32(&b, STREAM_CKPT_VERSION);
    buf_put_u64(&b, index);
    buf_put_u64(&b, next_offset);
    streams_encode(st, true, &b);
    if (buf_ok(&b)) {
        buf_put_u64(&b, codec_checksum(b.data, b.len));
    }
    if (!buf_ok(&b)) {
        buf_free(&b);
        err_printf(errmsg, "stream index checkpoint: out of memory");
        return TALLY_NOMEM;
    }
    snprintf(path, sizeof path, "%s/%s", dir, STREAM_CKPT_NAME);
    snprintf(tmp, sizeof tmp, "%s.%s", path, tmp_suffix);
    rv = fs_write_synced(tmp, b.data, b.len, errmsg);
    buf_free(&b);
    if (rv == 0) {
        rv = fs_rename(tmp, path, errmsg);
    }
    return rv != 0 ? rv : fs_sync_dir(dir, errmsg);
}

bool stream_ckpt_due(const struct store_topic *t)
{
    uint64_t next = log_next_offset(t->log);
    uint64_t step = t->streams.events / 4 > STREAM_CKPT_MIN_RECORDS ? t->streams.events / 4
                                                                    : STREAM_CKPT_MIN_RECORDS;
    return t->streams_counted == 0 || next < t->streams_counted ||
           next - t->streams_counted >= step;
}

/* Load @path into @st if it is whole, of this format, written for this
 * topic (not an older one of the same name) and counts the log below an
 * offset between the log's start and @upto (*counted); false otherwise
 * (and @st empty). */
static bool stream__load_file(const char *path, const struct store_topic *t, uint64_t upto,
                              struct streams *st, uint64_t *counted_out)
{
    char why[ERR_MSG_SIZE];
    void *file = NULL;
    uint8_t *data;
    size_t n = 0;
    bool ok = false;
    if (fs_read_file(path, STREAM__CKPT_MAX, &file, &n, why) != 0) {
        return false;
    }
    data = file;
    if (n >= 40) {
        struct rd r;
        rd_init(&r, data, n - 8);
        const uint8_t *magic = rd_bytes(&r, 4);
        uint32_t version = rd_u32(&r);
        uint64_t index = rd_u64(&r);
        uint64_t counted = rd_u64(&r);
        /* (version 1: no places, learnt again by reads) */
        ok = codec_checksum(data, n - 8) == byte_get_u64(data + n - 8) && magic != NULL &&
             memcmp(magic, STREAM_CKPT_MAGIC, 4) == 0 &&
             (version == 1 || version == STREAM_CKPT_VERSION) && index >= t->created_index &&
             counted <= upto && counted >= log_start_offset(t->log) &&
             streams_decode(st, version >= 2, &r) == 0 && r.left == 0;
        *counted_out = counted;
    }
    if (!ok) {
        streams_free(st);
    }
    free(file);
    return ok;
}

/* Collect the keyed records of [@from, @to) of @t's log into @into, in
 * offset order (their versions are meaningless: streams_prepend numbers
 * them). */
static int stream__scan(struct store_topic *t, uint64_t from, uint64_t to, struct streams *into,
                        char *errmsg)
{
    int rv = 0;
    if (from < log_start_offset(t->log)) {
        from = log_start_offset(t->log);
    }
    while (rv == 0 && from < to) {
        void *data = NULL;
        size_t len = 0, pos = 0;
        uint64_t after = from, file_pos = 0;
        rv = log_read_copy_at(t->log, from, 4u << 20, &data, &len, &after, &file_pos, errmsg);
        while (rv == 0 && pos < len) {
            struct batch_header h;
            rv = batch_decode_header((uint8_t *)data + pos, len - pos, &h, errmsg);
            if (rv == 0 && h.batch_len > len - pos) {
                rv = ERR_CORRUPT(errmsg, "batch at %llu runs past the read",
                                 (unsigned long long)h.base_offset);
            }
            if (rv != 0) {
                break;
            }
            if (h.flags & BATCH_FLAG_KEYED) {
                struct batch_iter it;
                struct batch_record rec;
                /* (log_read_copy_at verified the batch: its places may be learnt) */
                rv = batch_iter_init(&it, (uint8_t *)data + pos, h.batch_len, errmsg);
                const uint8_t *records = it.rd.p;
                bool placed = rv == 0 && !(h.flags & BATCH_FLAG_LZ4);
                while (rv == 0) {
                    uint32_t at = (uint32_t)(it.rd.p - records);
                    if ((rv = batch_iter_next(&it, &rec, errmsg)) != 0) {
                        break;
                    }
                    if (rec.key != NULL && rec.offset >= from && rec.offset < to) {
                        /* (numbered 1, 2, ... per key, so streams_add sees no gap) */
                        const struct streams_stream *st = streams_find(into, rec.key, rec.key_len);
                        uint64_t v = st != NULL && st->n > 0 ? streams_last_version(st) + 1 : 1;
                        rv = placed ? streams_add_at(into, rec.key, rec.key_len, rec.offset, v,
                                                     file_pos + pos, at)
                                    : streams_add(into, rec.key, rec.key_len, rec.offset, v);
                    }
                }
                batch_iter_close(&it);
                rv = rv == TALLY_EOF ? 0 : rv;
            }
            pos += h.batch_len;
        }
        free(data);
        if (len == 0 || after <= from) {
            break;
        }
        from = after;
    }
    return rv;
}

int stream_topic_prepend(struct store_topic *t, uint64_t from, uint64_t to, char *errmsg)
{
    struct streams tmp;
    streams_init(&tmp);
    int rv = stream__scan(t, from, to, &tmp, errmsg);
    if (rv == 0) {
        rv = streams_prepend(&t->streams, &tmp, &t->keys);
    }
    streams_free(&tmp);
    if (rv != 0) {
        err_wrap(errmsg, "index the streams of %s", t->name);
    }
    return rv;
}

int stream_topic_load(const char *dir, struct store_topic *t, uint64_t keys_from, char *errmsg)
{
    char path[PATH_MAX + 320];
    uint64_t counted = 0;
    snprintf(path, sizeof path, "%s/%s", dir, STREAM_CKPT_NAME);
    streams_free(&t->streams);
    t->streams_counted = 0;
    if (keys_from <= log_start_offset(t->log)) {
        return 0; /* nothing below keys_from */
    }
    if (stream__load_file(path, t, keys_from, &t->streams, &counted)) {
        t->streams_counted = counted;
        if (counted == keys_from) {
            return 0;
        }
        /* Older than keys.ckpt: the records between, numbered backwards
         * from keys.ckpt's versions. */
        struct streams tmp;
        streams_init(&tmp);
        int rv = stream__scan(t, counted, keys_from, &tmp, errmsg);
        if (rv == 0) {
            rv = streams_append(&t->streams, &tmp, &t->keys);
        }
        streams_free(&tmp);
        if (rv != 0) {
            err_wrap(errmsg, "index the streams of %s", t->name);
        }
        return rv;
    }
    TLOG_WARN("store", "topic %s: no usable stream index checkpoint at offset %llu; rebuilding "
              "the stream index from the log", t->name, (unsigned long long)keys_from);
    return stream_topic_prepend(t, log_start_offset(t->log), keys_from, errmsg);
}

/* ------------------------------------------------------------------------
 * Stream metadata
 * ------------------------------------------------------------------------ */

/* A decimal number of [@p, @end): false unless 1..19 digits. */
static bool stream__number(const char *p, const char *end, uint64_t *out)
{
    uint64_t v = 0;
    if (p == end || end - p > 19) {
        return false;
    }
    for (; p < end; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return true;
}

bool stream_meta_parse(const void *value, size_t n, struct stream_meta *out)
{
    const char *p = value, *end = p + n;
    memset(out, 0, sizeof *out);
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi != NULL ? semi : end;
        if (stop > p) {
            const char *eq = memchr(p, '=', (size_t)(stop - p));
            uint64_t v;
            if (eq == NULL || !stream__number(eq + 1, stop, &v)) {
                return false;
            }
            size_t len = (size_t)(eq - p);
            if (len == 15 && memcmp(p, "truncate-before", 15) == 0) {
                out->truncate_before = v;
            } else if (len == 9 && memcmp(p, "max-count", 9) == 0) {
                out->max_count = v;
            } else if (len == 10 && memcmp(p, "max-age-ms", 10) == 0) {
                if (v > INT64_MAX) {
                    return false;
                }
                out->max_age_ms = (int64_t)v;
            } /* (other names: ignored, for later versions) */
        }
        p = stop + 1;
    }
    return true;
}

/* ------------------------------------------------------------------------
 * Reading a stream
 * ------------------------------------------------------------------------ */

/* Bytes read at a record's place: its length prefix and the whole of most
 * records (a longer one costs a second read). */
#define STREAM__RECORD_READ 512
/* A record that starts this close to its batch's header is read together
 * with it, in one pread. */
#define STREAM__JOIN_BYTES 4096

/* One stream read: the stream's key (a record read alone must carry it),
 * and the last batch read whole, so that records of one batch cost one
 * read. */
struct stream__cursor {
    struct store_topic *t;
    const void *key;
    size_t key_len;
    void *data;        /* one batch, or NULL */
    size_t len;
    uint64_t base;     /* offsets [base, end) are in it */
    uint64_t end;
    uint64_t file_pos; /* where it lies in its segment */
    uint8_t buf[STREAM__JOIN_BYTES + STREAM__RECORD_READ];
};

/* The record at @offset read alone, at its place @pl (streams.h), with no
 * walk through the log's index: the batch header at pl->batch_pos (one
 * pread, or two when the record lies far into a large batch) and the
 * record. Served only when the header checks out (its own checksum; it
 * holds @offset; uncompressed), the batch's payload checksum was verified
 * in this process (the segment was written or scanned whole by it:
 * log_segment_at's checked, or the batch was read whole since:
 * streams_batch_known), and the record found there decodes with this
 * offset and the stream's key; so what is served lies inside a verified
 * batch, and a place made stale by compaction (which moves batches) is
 * caught. false (nothing called, *rv untouched) otherwise: the caller reads
 * the whole batch. */
static bool stream__fast(struct stream__cursor *c, uint64_t offset,
                         const struct streams_place *pl, uint64_t version, stream_event_fn fn,
                         void *arg, int *rv)
{
    char why[ERR_MSG_SIZE];
    struct batch_header h;
    int fd;
    uint64_t size;
    bool checked;
    if (pl->at == 0 || log_segment_at(c->t->log, offset, &fd, &size, &checked, why) != 0) {
        return false;
    }
    uint64_t at = pl->at - 1;
    uint64_t where = (uint64_t)pl->batch_pos + BATCH_HEADER_SIZE + at; /* the record */
    if (where >= size) {
        return false;
    }
    uint64_t stop = size - where > STREAM__RECORD_READ ? where + STREAM__RECORD_READ : size;
    const uint8_t *hb = c->buf, *rb;
    size_t got = (size_t)(stop - where);
    if (at + STREAM__RECORD_READ <= STREAM__JOIN_BYTES) {
        if (!stream__pread(fd, c->buf, (size_t)(stop - pl->batch_pos), pl->batch_pos)) {
            return false;
        }
        rb = c->buf + BATCH_HEADER_SIZE + at;
    } else {
        if (!stream__pread(fd, c->buf, BATCH_HEADER_SIZE, pl->batch_pos) ||
            !stream__pread(fd, c->buf + BATCH_HEADER_SIZE, got, where)) {
            return false;
        }
        rb = c->buf + BATCH_HEADER_SIZE;
    }
    if (batch_decode_header(hb, BATCH_HEADER_SIZE, &h, why) != 0 || (h.flags & BATCH_FLAG_LZ4) ||
        offset < h.base_offset || offset > batch_last_offset(&h) || at >= h.records_len ||
        h.batch_len > size - pl->batch_pos ||
        (!checked && !streams_batch_known(&c->t->streams, h.base_offset, h.payload_checksum))) {
        return false;
    }
    size_t avail = h.records_len - (size_t)at;
    got = got < avail ? got : avail;
    struct rd r;
    rd_init(&r, rb, got);
    uint64_t body = rd_uvarint(&r);
    size_t whole = got - r.left + (size_t)body; /* length prefix and record */
    if (!rd_ok(&r) || body > avail || whole > avail) {
        return false;
    }
    uint8_t *big = NULL;
    if (whole > got) {
        big = malloc(whole);
        if (big == NULL || !stream__pread(fd, big, whole, where)) {
            free(big);
            return false;
        }
        rb = big;
    }
    struct batch_iter it;
    struct batch_record rec;
    memset(&it, 0, sizeof it);
    it.h = h;
    rd_init(&it.rd, rb, whole);
    bool ok = batch_iter_next(&it, &rec, why) == 0 && rec.offset == offset &&
              rec.key != NULL && rec.key_len == c->key_len &&
              memcmp(rec.key, c->key, c->key_len) == 0;
    if (ok) {
        *rv = fn(arg, version, &rec);
    }
    free(big);
    return ok;
}

/* Hand the record at @offset to @fn; *found false (and nothing called)
 * when the log no longer holds it. Returns @fn's answer or an error.
 * @place (may be NULL) is the record's place in the index: used, and
 * learnt when the batch has to be read whole. */
static int stream__deliver(struct stream__cursor *c, uint64_t offset, uint64_t version,
                           struct streams_place *place, stream_event_fn fn, void *arg,
                           bool *found, char *errmsg)
{
    struct batch_iter it;
    struct batch_record rec;
    int rv = 0;
    *found = false;
    if (place != NULL && stream__fast(c, offset, place, version, fn, arg, &rv)) {
        *found = true;
        c->t->stream_direct++;
        return rv;
    }
    if (c->data == NULL || offset < c->base || offset >= c->end) {
        struct batch_header h;
        free(c->data);
        c->data = NULL;
        /* (log_read_copy_at verifies the batch's checksums) */
        rv = log_read_copy_at(c->t->log, offset, 1, &c->data, &c->len, &c->end, &c->file_pos,
                              errmsg);
        if (rv == 0 && c->len > 0) {
            rv = batch_decode_header(c->data, c->len, &h, errmsg);
            c->base = h.base_offset;
        }
        if (rv != 0 || c->len == 0) {
            free(c->data);
            c->data = NULL;
            return rv;
        }
    }
    rv = batch_iter_init(&it, c->data, c->len, errmsg);
    const uint8_t *records = it.rd.p;
    if (rv == 0) {
        streams_batch_seen(&c->t->streams, it.h.base_offset, it.h.payload_checksum);
    }
    while (rv == 0) {
        uint32_t at = (uint32_t)(it.rd.p - records);
        if ((rv = batch_iter_next(&it, &rec, errmsg)) != 0) {
            break;
        }
        if (rec.offset == offset) {
            *found = true;
            c->t->stream_whole++;
            if (place != NULL && !(it.h.flags & BATCH_FLAG_LZ4)) {
                *place = streams_place_of(c->file_pos, at);
            }
            rv = fn(arg, version, &rec);
            break;
        }
        if (rec.offset > offset) {
            rv = TALLY_EOF;
        }
    }
    batch_iter_close(&it);
    return rv == TALLY_EOF ? 0 : rv;
}

/* The callback of stream__meta: keep the record's value. */
struct stream__meta_rec {
    bool tombstone;
    bool ok;
    struct stream_meta meta;
};

static int stream__meta_take(void *arg, uint64_t version, const struct batch_record *rec)
{
    struct stream__meta_rec *m = arg;
    (void)version;
    m->tombstone = rec->value == NULL;
    m->ok = m->tombstone || stream_meta_parse(rec->value, rec->value_len, &m->meta);
    return 0;
}

/* The metadata of stream @key: the latest record of "$$" + key, parsed;
 * all zero when there is none, it is a tombstone, or it is malformed
 * (libtally and the CLI write only well-formed ones). */
static int stream__meta(struct store_topic *t, const void *key, size_t klen,
                        struct stream_meta *meta, char *errmsg)
{
    uint8_t mkey[STREAMS_KEY_MAX + sizeof STREAM_META_PREFIX];
    struct stream__meta_rec m;
    memset(meta, 0, sizeof *meta);
    if (klen > STREAMS_KEY_MAX) {
        return 0;
    }
    memcpy(mkey, STREAM_META_PREFIX, 2);
    memcpy(mkey + 2, key, klen);
    struct streams_stream *st = streams_find(&t->streams, mkey, klen + 2);
    if (st == NULL || st->n == 0) {
        return 0;
    }
    struct stream__cursor *c = calloc(1, sizeof *c);
    bool found;
    if (c == NULL) {
        return TALLY_NOMEM;
    }
    c->t = t;
    c->key = mkey;
    c->key_len = klen + 2;
    memset(&m, 0, sizeof m);
    int rv = stream__deliver(c, st->e[st->n - 1].offset, streams_last_version(st),
                             &st->e[st->n - 1].place, stream__meta_take, &m, &found, errmsg);
    free(c->data);
    free(c);
    if (rv == 0 && found && m.ok && !m.tombstone) {
        *meta = m.meta;
    }
    return rv;
}

/* Records older than a stream's max-age-ms are skipped, not counted. */
struct stream__aged {
    stream_event_fn fn;
    void *arg;
    int64_t cutoff; /* timestamps below are hidden (INT64_MIN: none) */
};

#define STREAM__SKIPPED 2

static int stream__aged_fn(void *arg, uint64_t version, const struct batch_record *rec)
{
    struct stream__aged *a = arg;
    if (rec->timestamp < a->cutoff) {
        return STREAM__SKIPPED;
    }
    return a->fn(a->arg, version, rec);
}

int stream_read(struct store_topic *t, const struct stream_read_req *q, stream_event_fn fn,
                void *arg, struct stream_read_info *info, char *errmsg)
{
    struct stream__cursor *cur = NULL;
    struct streams_stream *st = streams_find(&t->streams, q->key, q->key_len);
    uint64_t version = keys_version(&t->keys, q->key, q->key_len);
    uint64_t gone_below = log_start_offset(t->log) > t->trim_offset ? log_start_offset(t->log)
                                                                      : t->trim_offset;
    bool missing = t->missing_to > t->missing_from;
    int rv = 0;

    memset(info, 0, sizeof *info);
    info->version = version;
    if (version == 0) {
        err_printf(errmsg, "stream of topic %s does not exist (no record has its key)", t->name);
        return TALLY_NOTFOUND;
    }
    if (st != NULL) {
        /* Retention and trims remove a prefix of every stream. */
        streams_drop_front(&t->streams, st, streams_index_of_offset(st, gone_below));
    }
    struct stream_meta meta;
    if ((rv = stream__meta(t, q->key, q->key_len, &meta, errmsg)) != 0) {
        err_wrap(errmsg, "read the metadata of a stream of %s", t->name);
        return rv;
    }
    /* Versions below @floor are hidden by the stream's metadata. */
    uint64_t floor = meta.truncate_before;
    if (meta.max_count > 0 && version >= meta.max_count && version - meta.max_count + 1 > floor) {
        floor = version - meta.max_count + 1;
    }
    struct stream__aged aged = {fn, arg, INT64_MIN};
    if (meta.max_age_ms > 0 && q->now_ms > INT64_MIN + meta.max_age_ms) {
        aged.cutoff = q->now_ms - meta.max_age_ms;
    }
    uint64_t held = st != NULL && st->n > 0 ? st->first_version : version + 1;
    uint64_t first = held > floor ? held : floor;
    if (first > version + 1) {
        first = version + 1;
    }
    info->first_version = first;
    uint64_t from = q->from_version;
    if (!q->backward) {
        from = from == 0 ? 1 : from;
        info->next_version = from;
        if (from > version + 1) {
            err_printf(errmsg, "version %llu is beyond the end of the stream (at version %llu)",
                       (unsigned long long)from, (unsigned long long)version);
            return TALLY_OUT_OF_RANGE;
        }
    } else {
        from = from == 0 ? version : from;
        if (from > version) {
            err_printf(errmsg, "version %llu is beyond the end of the stream (at version %llu)",
                       (unsigned long long)from, (unsigned long long)version);
            return TALLY_OUT_OF_RANGE;
        }
    }
    /* Versions below @held that are not hidden lie in the history this
     * node lacks: a forward read that starts there, or a backward read
     * that would go on down there, is for another node. */
    uint64_t lowest = from > floor ? from : floor; /* what a forward read wants first */
    if (missing && ((!q->backward && lowest < held && lowest <= version) ||
                    (q->backward && floor < held && floor < version &&
                     (from < held || from - held + 1 < q->max_events)))) {
        err_printf(errmsg, "versions below %llu of this stream lie in history this node lacks "
                   "(it installed a snapshot and is fetching offsets %llu..%llu); read them "
                   "from another node", (unsigned long long)first,
                   (unsigned long long)t->missing_from, (unsigned long long)t->missing_to - 1);
        return TALLY_UNAVAILABLE;
    }
    if (st == NULL || st->n == 0 || first > version) {
        /* Nothing to show: forward goes on after the end, backward is at
         * the start. */
        info->next_version = q->backward ? 0 : version + 1;
        return 0;
    }
    if ((cur = calloc(1, sizeof *cur)) == NULL) {
        return TALLY_NOMEM;
    }
    cur->t = t;
    cur->key = q->key;
    cur->key_len = q->key_len;
    if (!q->backward) {
        bool any = false;
        uint64_t want = from > first ? from : first;
        uint64_t skip = want > st->first_version ? want - st->first_version : 0;
        uint32_t i = skip < st->n ? (uint32_t)skip : st->n;
        while (i < st->n && info->n < q->max_events) {
            bool found;
            uint64_t v = st->first_version + i;
            rv = stream__deliver(cur, st->e[i].offset, v, &st->e[i].place, stream__aged_fn,
                                 &aged, &found, errmsg);
            if (rv == STREAM__SKIPPED) {
                rv = 0; /* too old (max-age-ms): hidden like a truncated one */
                info->first_version = v + 1;
                info->next_version = v + 1;
                any = true; /* (it is in the log: nothing before it is to drop) */
                i++;
                continue;
            }
            if (rv != 0) {
                break;
            }
            if (!found) {
                if (!any) {
                    /* Gone (compaction), and so is everything before it. */
                    streams_drop_front(&t->streams, st, i + 1);
                    i = 0;
                    uint64_t now_first = st->n > 0 ? st->first_version : version + 1;
                    info->first_version = now_first > first ? now_first : first;
                    continue;
                }
                i++; /* (cannot happen: survivors are a suffix) */
                continue;
            }
            any = true;
            info->n++;
            info->next_version = v + 1;
            i++;
        }
        if (!any && info->next_version < info->first_version) {
            info->next_version = info->first_version;
        }
    } else {
        uint64_t last = streams_last_version(st);
        uint64_t v = from < last ? from : last;
        info->next_version = v;
        while (v >= st->first_version && v >= first && st->n > 0 && info->n < q->max_events) {
            bool found;
            uint32_t i = (uint32_t)(v - st->first_version);
            rv = stream__deliver(cur, st->e[i].offset, v, &st->e[i].place, stream__aged_fn,
                                 &aged, &found, errmsg);
            if (rv == STREAM__SKIPPED) {
                rv = 0; /* too old (max-age-ms), and so is everything before */
                info->first_version = v + 1;
                info->next_version = 0;
                break;
            }
            if (rv != 0) {
                break;
            }
            if (!found) {
                /* Gone, with everything before it. */
                streams_drop_front(&t->streams, st, i + 1);
                uint64_t now_first = st->n > 0 ? st->first_version : version + 1;
                info->first_version = now_first > first ? now_first : first;
                info->next_version = 0;
                break;
            }
            info->n++;
            info->next_version = --v;
        }
        if (info->next_version < info->first_version) {
            info->next_version = 0;
        }
    }
    free(cur->data);
    free(cur);
    if (rv == 1) {
        rv = 0; /* the callback stopped the read */
    }
    if (rv != 0 && rv != TALLY_NOMEM) {
        err_wrap(errmsg, "read stream of %s", t->name);
    }
    return rv;
}
