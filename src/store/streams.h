/* The stream index of one topic: for every key (a stream, in event
 * sourcing), the offsets of its records by stream version.
 *
 * A key's version is the one `--expect-version` uses (store/keys.h): the
 * number of records ever written with the key, tombstones included, so the
 * key's n-th record is its version n. This index maps versions to offsets,
 * so that reading a stream from version V forward, or backward from its
 * end, costs a hash lookup, a binary search and the records read, not the
 * size of the topic.
 *
 * What is kept, and why a per-key array with one first version is enough:
 * records of a key only ever disappear as a prefix of its history.
 * Retention and trims remove the oldest offsets; keyed compaction keeps,
 * of each key, the latest record of the compacted range and everything
 * after it (log/compact.c); stream truncation removes versions below V.
 * So the surviving records of a key always hold consecutive versions, and
 * an array of ascending offsets plus the version of the first one says
 * everything. The index may still list offsets that compaction or
 * retention removed since (it is not told which): readers check each
 * record against the log and drop a dead prefix (store/stream_read.c).
 *
 * Derived state, like the key index: checkpointed next to keys.ckpt
 * (streams.ckpt, format in docs/disk-format.md and stream_read.c) and
 * brought forward from the log after it. Loop thread only, except a packed
 * copy, which the snapshot thread may encode. */
#ifndef TALLY_STORE_STREAMS_H_
#define TALLY_STORE_STREAMS_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/byte.h"
#include "store/keys.h"

/* Longest key the stream reads and filters accept (the produce path has
 * no smaller limit than the batch; a stream name is a short identifier). */
#define STREAMS_KEY_MAX 4096

/* Where a record lies in its segment file, so that a read goes straight
 * to it: no walk through the log's sparse index. A hint, learnt from a
 * batch whose checksums were verified (apply, a rebuild's read, or a read
 * of the whole batch), kept in streams.ckpt, and checked when used
 * (stream_read.c): compaction rewrites a segment and moves its batches,
 * keeping their offsets. */
struct streams_place {
    uint32_t batch_pos; /* file position of the record's batch in its segment */
    uint32_t at;        /* 1 + where the record starts in the batch's records
                         * section; 0: the place is unknown */
};

/* One record of a stream: its offset and where it lies, side by side, so
 * that apply's append of an entry touches one cache line, not two. */
struct streams_entry {
    uint64_t offset;
    struct streams_place place;
};

struct streams_stream {
    uint64_t h1, h2;        /* XXH3-128 of the key, as keys.c (0/0: free slot) */
    uint64_t first_version; /* version of e[0] */
    struct streams_entry *e; /* ascending offsets; e[i] holds version first_version + i */
    uint32_t n, cap;        /* entries held, allocated */
};

/* A batch known to be whole: its checksum was verified when it was
 * appended or first read, so a stream read may take single records from
 * it (stream_read.c). */
struct streams_batch {
    uint64_t base_offset;
    uint64_t payload_checksum; /* tells a compacted copy from the original */
};

/* Batches remembered per topic (direct-mapped): a table of
 * STREAMS_BATCHES_MIN slots at first, doubled (up to STREAMS_BATCHES_MAX,
 * 16 MiB) each time as many batches were remembered since, so that a
 * large topic's batches stop evicting each other. Only reads of segments
 * older than the process fill it (stream_read.c). */
#define STREAMS_BATCHES_MIN 4096
#define STREAMS_BATCHES_MAX (1u << 20)

struct streams {
    struct streams_stream *slots; /* open addressing, linear probing */
    size_t cap;                   /* power of two, or 0 */
    size_t used;                  /* slots taken (a stream emptied keeps its slot) */
    uint64_t events;              /* offsets held in all streams */
    struct streams_entry *block;  /* a packed copy's entries, one allocation
                                   * (NULL: each stream owns its array) */
    struct streams_batch *batches; /* n_batches slots, or NULL until one */
    size_t n_batches;              /* a power of two */
    size_t batches_seen;           /* remembered since the table last grew */
};

void streams_init(struct streams *s);
void streams_free(struct streams *s);

/* The stream of @key, or NULL if the index has none. Borrowed until the
 * next change of @s. */
struct streams_stream *streams_find(const struct streams *s, const void *key, size_t len);

/* Record that @key's record at @offset has @version (appends, replay).
 * Offsets and versions come in ascending order per key; a version beyond
 * the next one means the records in between are gone (the prefix rule
 * above), so the stream restarts at @version. An offset or version at or
 * below what the stream holds replaces the entries from there on. */
int streams_add(struct streams *s, const void *key, size_t len, uint64_t offset,
                uint64_t version);
/* The same, with the record's place in its segment (@batch_pos: its
 * batch's file position; @at_in_batch: where it starts in that batch's
 * records section). */
int streams_add_at(struct streams *s, const void *key, size_t len, uint64_t offset,
                   uint64_t version, uint64_t batch_pos, uint32_t at_in_batch);

/* The same for the key whose hash (keys_hash) is @h1/@h2. */
int streams_add_hash_at(struct streams *s, uint64_t h1, uint64_t h2, uint64_t offset,
                        uint64_t version, uint64_t batch_pos, uint32_t at_in_batch);

/* As keys_prefetch (keys.h), for the stream of hash @h1. */
void streams_prefetch(const struct streams *s, uint64_t h1);

/* The place of a record (streams_place), or an unknown one when it does
 * not fit (a position past 4 GiB: segments never grow that large). */
struct streams_place streams_place_of(uint64_t batch_pos, uint32_t at_in_batch);

/* Remember that the batch at @base_offset with @payload_checksum is whole
 * (verified). Out of memory: remembered nothing (reads verify again). */
void streams_batch_seen(struct streams *s, uint64_t base_offset, uint64_t payload_checksum);
bool streams_batch_known(const struct streams *s, uint64_t base_offset,
                         uint64_t payload_checksum);

/* The last version held (first_version - 1 when empty). */
uint64_t streams_last_version(const struct streams_stream *st);
/* Index of the first entry with an offset >= @offset (st->n if none). */
uint32_t streams_index_of_offset(const struct streams_stream *st, uint64_t offset);
/* Forget the first @k entries of @st (they are gone from the log). */
void streams_drop_front(struct streams *s, struct streams_stream *st, uint32_t k);
/* Forget every entry at or above @offset (the log was cut there; Raft
 * applies the entries after it again). */
void streams_cut(struct streams *s, uint64_t offset);
/* Forget every entry below @offset (retention moved the log's start). */
void streams_trim(struct streams *s, uint64_t offset);
void streams_clear(struct streams *s);

/* Put the offsets of @from (collected from a log range just below every
 * offset @s holds; its versions are meaningless) in front of @s's
 * streams, numbering them backwards: a key's last offset in @from gets the
 * version before the first one @s holds of it, or, when @s holds none,
 * its version in @k (a key index that counts the log up to the end of
 * that range). */
int streams_prepend(struct streams *s, const struct streams *from, const struct keys *k);

/* Put the offsets of @from (collected from a log range just above every
 * offset @s holds; its versions are meaningless) after @s's streams,
 * numbering each key's backwards from its version in @k (a key index that
 * counts the log up to the end of that range). Where the numbers leave a
 * gap after what @s holds of a key, the older entries are dropped (they
 * are gone: survivors hold consecutive versions). */
int streams_append(struct streams *s, const struct streams *from, const struct keys *k);

/* A copy of @src without free slots and without entries below
 * @min_offset, for the snapshot thread: two allocations in all (a slot
 * array and one block of entries), good for streams_encode and
 * streams_free only. */
int streams_copy_packed(struct streams *dst, const struct streams *src, uint64_t min_offset);

/* Encoding (streams.ckpt body):
 *   u64 n_streams, then per non-empty stream:
 *     u64 h1, u64 h2, u64 first_version, u32 n,
 *     uvarint offsets[0], then n - 1 uvarint deltas (offsets[i] - offsets[i-1]),
 *     with @places (streams.ckpt version 2), then per offset its place:
 *       uvarint at (0: unknown, nothing follows), then svarint batch_pos
 *       minus the previous known batch_pos of the stream (0 before the
 *       first): a key's records mostly lie in one segment, in file order
 * Decoding checks that the offsets ascend and the versions start at 1 or
 * more; TALLY_CORRUPT otherwise. Without @places the places are unknown
 * (version 1). */
void streams_encode(const struct streams *s, bool places, struct buf *b);
int streams_decode(struct streams *s, bool places, struct rd *r);

/* Bytes of memory the index holds (slots and offset arrays). */
uint64_t streams_memory(const struct streams *s);

#endif
