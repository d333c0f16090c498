/* A topic's stream index against its log: the checkpoint file
 * (streams.ckpt), bringing the index forward from the log, and reading
 * one stream's records through it. The index itself is store/streams.h.
 *
 * STREAM CHECKPOINT FILE, version 2 (DATA/topics/NAME/streams.ckpt)
 *
 *   offset size field
 *   0      4    magic "TLYS"
 *   4      4    format version (2)
 *   8      8    index: the Raft index it was written at
 *   16     8    next offset: the index holds the log's records below it
 *   24     ..   streams_encode() with places (streams.h)
 *   end-8  8    XXH3-64 of every byte before it
 *
 * Version 1 (before the places) is the same without them, and still
 * loads: its records' places are unknown, and each is learnt when a read
 * first takes the record's batch whole. Places are hints checked on use
 * (stream_read.c), so one that a compaction made stale after the file was
 * written costs a read of the whole batch, never a wrong record.
 *
 * It is written at clean shutdown, and at a Raft snapshot when the topic
 * grew by a quarter of the index (at least STREAM_CKPT_MIN_RECORDS
 * offsets) since the last one (stream_ckpt_due), just before keys.ckpt,
 * atomically (a temporary name, fsync, rename, fsync of the directory):
 * copying the whole index at every snapshot would cost the loop time in
 * proportion to the index, not to what changed. On open it is used when
 * its next offset lies between the log's start and the offset keys.ckpt
 * counts up to: the records between the two are read from the log and
 * numbered backwards from each key's version in keys.ckpt, then the
 * records after keys.ckpt are added as apply adds them. Otherwise
 * (missing, damaged, another format version, newer than keys.ckpt) the
 * index is rebuilt from the log below keys.ckpt's offset the same way:
 * exact, since a key's surviving records hold consecutive versions
 * (streams.h). */
#ifndef TALLY_STORE_STREAM_READ_H_
#define TALLY_STORE_STREAM_READ_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/batch.h"
#include "store/store.h"

#define STREAM_CKPT_MAGIC "TLYS"
#define STREAM_CKPT_VERSION 2
#define STREAM_CKPT_NAME "streams.ckpt"

#define STREAM_CKPT_MIN_RECORDS 65536

/* Is a new streams.ckpt due for @t at a snapshot (stream_read.h)? */
bool stream_ckpt_due(const struct store_topic *t);

/* Write @st (holding the log below @next_offset) as @dir/streams.ckpt at
 * Raft @index, through the temporary name streams.ckpt.@tmp_suffix. */
int stream_ckpt_write(const char *dir, const struct streams *st, uint64_t index,
                      uint64_t next_offset, const char *tmp_suffix, char *errmsg);

/* At open, after keys.ckpt was loaded into t->keys, counting the log below
 * @keys_from: load @dir/streams.ckpt into t->streams, or rebuild what it
 * should hold from the log. The caller then replays the log from
 * @keys_from, which adds the later records. */
int stream_topic_load(const char *dir, struct store_topic *t, uint64_t keys_from, char *errmsg);

/* The log range [@from, @to) was put in front of what t->streams holds (a
 * backfill): index its keyed records, numbered backwards. */
int stream_topic_prepend(struct store_topic *t, uint64_t from, uint64_t to, char *errmsg);

/* Stream metadata (per-stream lifecycle): the latest record of key
 * "$$" + KEY in the same topic, a metadata stream as in EventStoreDB,
 * holds settings of stream KEY as text, pairs NAME=NUMBER separated by
 * ';' (docs/cli.md, tally stream):
 *   truncate-before=V   versions below V are hidden from stream reads
 *   max-count=N         only the last N versions are shown
 *   max-age-ms=MS       records older than MS (by their timestamp, against
 *                       the answering node's clock) are hidden
 * Unknown names are ignored (a later version may add some); a tombstone
 * clears them all. Hidden records stay in the log (a fetch by offset
 * still returns them) until compaction or retention removes them. */
#define STREAM_META_PREFIX "$$"

struct stream_meta {
    uint64_t truncate_before; /* 0: none */
    uint64_t max_count;       /* 0: none */
    int64_t max_age_ms;       /* 0: none */
};

/* Parse a metadata value (@n bytes); false if it is malformed (a pair
 * without '=', a number that is not one); *out zeroed first. */
bool stream_meta_parse(const void *value, size_t n, struct stream_meta *out);

/* One stream read. */
struct stream_read_req {
    const void *key;
    size_t key_len;
    uint64_t from_version; /* forward: first version wanted (0 = 1);
                            * backward: last version wanted (0 = the end) */
    bool backward;          /* newest first */
    uint32_t max_events;    /* at least 1 */
    int64_t now_ms;         /* the node's clock, for max-age-ms */
};

struct stream_read_info {
    uint64_t version;       /* the stream's version (records ever written) */
    uint64_t first_version; /* the oldest version this node still holds of it
                             * and shows (not hidden by the stream's
                             * metadata; version + 1 when none) */
    uint32_t n;             /* events handed to the callback */
    uint64_t next_version;  /* where to go on: forward, the version after the
                             * last one given (or the first wanted when none);
                             * backward, the version below the last one given
                             * (0: the start was reached) */
};

/* Called for each record of the stream, in the read's order; @rec borrows
 * from the log until the callback returns. Return 0 to go on, 1 to stop
 * before this record (it is not counted: e.g. a byte limit), or a
 * TALLY_* code to fail the read. */
typedef int (*stream_event_fn)(void *arg, uint64_t version, const struct batch_record *rec);

/* Read the stream @q->key of @t. Errors:
 *   TALLY_NOTFOUND     the key was never written;
 *   TALLY_OUT_OF_RANGE forward from beyond version + 1, or backward from
 *                      beyond the version;
 *   TALLY_UNAVAILABLE  versions wanted lie in history this node lacks
 *                      after a snapshot install (other nodes have them);
 *   TALLY_CORRUPT, TALLY_IOERR, TALLY_NOMEM from the log.
 * Versions that retention, compaction or a stream truncation removed
 * everywhere are passed over: info->first_version says where the stream
 * now starts. Entries found dead in the log are dropped from the index. */
int stream_read(struct store_topic *t, const struct stream_read_req *q, stream_event_fn fn,
                void *arg, struct stream_read_info *info, char *errmsg);

#endif
